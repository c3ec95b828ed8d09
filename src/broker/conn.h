/* A client connection: a state machine reading size-prefixed request frames, handing
 * them one at a time to dispatch, and writing responses (memory and sendfile() slices)
 * in request order. Reading pauses while a request is in flight and the input buffer
 * holds a complete next frame, or while output is backed up, so memory per connection
 * stays bounded. Loop thread only. */
#ifndef STRATUS_BROKER_CONN_H
#define STRATUS_BROKER_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "kafka/wire.h"

struct broker;
struct listener;
struct request;
struct tenant_state;
struct loop_timer;
struct tls_conn;

enum conn_state { CONN_OPEN = 0, CONN_CLOSING, CONN_CLOSED };

struct conn {
        struct conn *prev, *next; /* in broker->conns */
        struct broker *broker;
        struct listener *listener;
        int fd;
        enum conn_state state;
        char peer[64];             /* "ip:port" for logs */
        struct buf in;             /* bytes read, not yet handed to a request */
        struct buf out;            /* encoded responses not yet sent */
        struct kafka_writer w;     /* writer over <out>, holding file slices */
        size_t out_sent;           /* bytes of <out> (and slices) already sent */
        int out_part;              /* next file slice to send */
        int64_t out_part_sent;     /* bytes of that slice already sent */
        struct request *inflight;  /* the request being handled, or NULL */
        bool in_dispatch;          /* inside dispatch: don't recurse into processing */
        bool close_after_write;    /* close once <out> is flushed */
        int64_t last_active_ms;
        uint64_t requests;
        /* Authentication (SASL listeners); PLAINTEXT connections start authenticated. */
        bool authenticated;
        bool sasl_raw;             /* after SaslHandshake v0: frames are raw SASL tokens */
        struct sasl_session *sasl; /* the exchange in progress */
        char *principal;           /* the API key it authenticated with */
        char *tenant_id;           /* its tenant (LKC id) */
        struct tenant_state *tenant; /* its tenant's namespace and quotas; NULL: none */
        struct loop_timer *mute_timer; /* set while muted (a quota throttle): not read */
        int64_t muted_until_ms;
        bool ready;                /* in broker->ready_conns */
        struct conn *ready_next;
        struct tls_conn *tls;      /* TLS listeners: the session; NULL on plaintext */
        bool read_ready;           /* queued to read bytes buffered inside OpenSSL */
};

/* Accepted socket <fd> on <listener>: creates the connection and starts reading. */
void conn_accept(struct broker *broker, struct listener *listener, int fd);
/* Unregisters <conn> and marks it closed; memory is freed before the loop sleeps. A
 * pending request is cancelled. <reason> goes into the log line. */
void conn_close(struct conn *conn, const char *reason);
/* Frees connections closed this iteration (before-sleep hook). */
void conn_free_closed(struct broker *broker);
/* Called when the in-flight request completed. Outside the connection's own dispatch
 * (a deferred answer: long poll, group commit, a rebalance completing) the connection is
 * queued, and conn_process_ready() sends its output and handles its further buffered
 * frames, so that no handler runs nested inside another handler or a callback. */
void conn_request_done(struct conn *conn);
/* Queues <len> bytes of <data> as one size-prefixed frame without a Kafka header (SASL
 * tokens after a v0 handshake). */
void conn_write_raw_frame(struct conn *conn, const uint8_t *data, size_t len);
/* Processes the connections queued by conn_request_done() (before-sleep hook). */
void conn_process_ready(struct broker *broker);
/* Stops reading <conn> for <ms> (a quota throttle, Kafka's channel muting): requests
 * already buffered wait too; responses still go out. A longer mute replaces a shorter. */
void conn_mute(struct conn *conn, int64_t ms);
/* Closes connections idle longer than connections.max.idle.ms. */
void conn_sweep_idle(struct broker *broker, int64_t now_ms);

#endif
