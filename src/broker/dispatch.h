/* Request dispatch: a table of handlers indexed by API key, and the request object a
 * handler receives. A handler reads as decode -> check -> act -> encode:
 *
 *   static int handle_x(struct request *req)
 *   {
 *           struct x_request msg;
 *           if (x_request_decode(&req->body, req->hdr.api_version, &msg) < 0)
 *                   return -EPROTO;                  (dispatch closes the connection)
 *           struct x_response resp; x_response_init(&resp);
 *           ...
 *           request_respond(req, &resp);
 *           return 0;
 *   }
 *
 * A handler completes its request exactly once, now or later (long-poll fetch), with
 * request_respond() or request_no_response(); it returns a negative errno only when the
 * connection must close, in which case it must not have completed the request. */
#ifndef STRATUS_BROKER_DISPATCH_H
#define STRATUS_BROKER_DISPATCH_H

#include <stdint.h>

#include "kafka/api.h"
#include "kafka/wire.h"

struct broker;
struct conn;
struct loop_timer;

struct request {
        struct broker *broker;
        struct conn *conn;               /* NULL once the connection has closed */
        struct kafka_request_header hdr;
        const struct kafka_api *api;
        struct kafka_reader body;        /* positioned after the header */
        struct kafka_arena arena;        /* decoded arrays, bounded by the frame size */
        struct kafka_arena out;          /* response arrays and strings; freed with the request */
        uint8_t *frame;                  /* the request bytes, inside <frame_alloc> */
        size_t frame_len;
        void *frame_alloc;               /* the allocation holding the frame (owned) */
        int64_t received_ms;
        int32_t throttle_ms;             /* quota throttle: sent as throttle_time_ms, then muted */
        /* Deferred completion (long-poll fetch, group commit). */
        struct request *next;            /* in a broker waiter list */
        struct loop_timer *timer;
        void *state;                     /* the handler's own, freed by <cancel> or the handler */
        void (*cancel)(struct request *req); /* the connection closed while pending */
};

typedef int handler_fn(struct request *req);

/* Runs the handler for a request whose frame (without the size prefix) is the <len>
 * bytes at <frame>, which lie inside the heap block <alloc> (ownership of <alloc> taken:
 * freed with the request). Returns 0, or -errno when the connection must close. */
int dispatch_request(struct conn *conn, void *alloc, uint8_t *frame, size_t len);

/* Encodes <resp> (the generated response struct of req->api) after the response header
 * into the connection's output, then frees <req>. The response's throttle_time_ms is
 * raised to req->throttle_ms first (hence <resp> is not const). */
void request_respond(struct request *req, void *resp);
/* Completes a request that gets no response (Produce acks=0), then frees <req>. */
void request_no_response(struct request *req);
/* <count> zeroed elements of <size> for the response, freed with <req>. */
void *request_alloc(struct request *req, int32_t count, size_t size);
/* A copy of <s> in the response arena. */
struct kafka_str request_str(struct request *req, const char *s);

/* Frees <req> without responding (cancelled). */
void request_free(struct request *req);

/* Removes <req> from the waiter list at *<list> (linked through req->next), if there. */
void request_unlink(struct request **list, struct request *req);

/* Handlers, one file each in broker/handle/. */
handler_fn handle_api_versions, handle_metadata, handle_produce, handle_fetch,
        handle_list_offsets, handle_create_topics, handle_delete_topics, handle_create_partitions,
        handle_describe_configs, handle_delete_records, handle_describe_cluster,
        handle_init_producer_id, handle_find_coordinator, handle_join_group, handle_sync_group,
        handle_heartbeat, handle_leave_group, handle_offset_commit, handle_offset_fetch,
        handle_describe_groups, handle_list_groups, handle_delete_groups, handle_offset_delete,
        handle_sasl_handshake, handle_sasl_authenticate;

/* Long-poll fetches re-check their partitions (before-sleep, after appends). */
void fetch_wake_waiters(struct broker *broker);
/* Group commit: fsyncs logs with unflushed appends and answers waiting produces. */
void produce_sync_waiters(struct broker *broker);
/* Group commit for OffsetCommit: fsyncs the group store and answers waiting commits. */
void offset_commit_sync_waiters(struct broker *broker);

#endif
