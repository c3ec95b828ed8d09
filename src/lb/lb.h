/* `stratus lb`: the layer-4 load balancer (docs/lb.md). One loop thread owns everything:
 * listeners, targets with their health, relayed connections, the admin endpoint.
 *
 *   lb.c      lifecycle and reload (diff of old and new configuration), accepting
 *   relay.c   one client connection relayed to one target with splice() through pipes
 *   health.c  active checks per target (TCP connect, or a Kafka ApiVersions probe)
 *   admin.c   GET /metrics (Prometheus text) and /healthz, via src/http/server.h */
#ifndef STRATUS_LB_LB_H
#define STRATUS_LB_LB_H

#include <stdbool.h>
#include <stdint.h>

#include "base/map.h"
#include "lb/config.h"

struct loop;
struct loop_timer;
struct relay;

/* A target address, shared by every listener that names it (checked the stricter way
 * any of them asks for). */
struct lb_target {
        struct lb *lb;
        char *key;                 /* the address as written */
        struct lb_addr addr;
        enum lb_check check;
        int refs;                  /* listeners naming it + relays connected to it */
        int listener_refs;         /* listeners naming it: checked while > 0 */
        bool up;
        int streak;                /* consecutive checks agreeing against the current state */
        /* The check in flight. */
        int check_fd;
        int64_t check_started_ms;
        uint8_t check_buf[64];
        int check_got;
        struct loop_timer *check_timer; /* next check, or the in-flight check's timeout */
        /* Counters. */
        int64_t active;
        int64_t checks_ok, checks_fail;
        struct relay *relays;      /* connections to this target (linked through target_next) */
};

struct lb_listener {
        struct lb_listener_config cfg; /* owned copy */
        struct lb *lb;
        int fd;                    /* -1 once removed */
        struct lb_target **targets;
        int ntargets;
        bool removed;              /* no longer configured: draining */
        struct relay *relays;      /* connections accepted here (linked through listener_next) */
        struct loop_timer *accept_pause; /* out of descriptors: accepting again later */
        /* Counters. */
        int64_t accepted, active;
        int64_t rejected_no_target, rejected_max, rejected_connect;
        int64_t bytes_in, bytes_out;
        struct lb_listener *next;
};

struct lb {
        struct loop *loop;
        char *config_path;
        struct lb_config cfg;       /* the running configuration's settings */
        struct lb_listener *listeners;
        struct map targets;         /* key -> struct lb_target */
        int64_t reloads_ok, reloads_error;
        int64_t draining;           /* connections of removed targets or listeners */
        /* Relays that hit their fairness budget and must continue next iteration. */
        struct relay *ready;
        struct loop_timer *ready_timer;
        /* Spare pipes for splice (empty ones only). */
        int *spare_pipes;           /* pairs */
        int nspare;
        struct lb_admin *admin;
        bool stopping;
};

/* Starts with the configuration at <path>: binds every listener, starts health checks
 * and the admin endpoint. Returns 0, or -errno with the reason in <err>. */
int lb_start(struct lb *lb, struct loop *loop, const char *path, char *err, size_t err_len);
/* Reloads the configuration file and applies the difference. An invalid file (or a bind
 * that fails) changes nothing. Returns 0 or -errno (logged with the line). */
int lb_reload(struct lb *lb);
/* Closes everything. */
void lb_stop(struct lb *lb);

/* Called by the listener's accept path: relays <fd> to a target of <l>. */
void relay_start(struct lb_listener *l, int fd);
/* Closes a relay (both sockets, its pipes), updating counters. */
void relay_close(struct relay *r, const char *why);
/* Puts every relay of <l> (or of <t>) into draining: closed after drain_timeout_ms. */
void relay_drain_listener(struct lb_listener *l);
void relay_drain_target(struct lb_listener *l, struct lb_target *t);
/* Closes every relay (stop). */
void relay_close_all(struct lb *lb);
/* Continues relays that used up their budget (before the loop sleeps). */
void relay_run_ready(struct lb *lb);

/* Health checks: start one target's checks; stop them (target no longer configured). */
void health_start(struct lb *lb, struct lb_target *t);
void health_stop(struct lb *lb, struct lb_target *t);
/* A connection to <t> was refused or timed out: it goes down now. */
void health_connect_failed(struct lb *lb, struct lb_target *t);

/* A target reference dropped; frees it when unused. */
void lb_target_unref(struct lb *lb, struct lb_target *t);
/* Frees a removed listener once its last relay closed (not while stopping). */
void lb_listener_maybe_free(struct lb *lb, struct lb_listener *l);

/* Admin endpoint at <addr> ("host:port"); NULL when none could start (logged). */
struct lb_admin *admin_start(struct lb *lb, const char *addr);
void admin_stop(struct lb_admin *a);
/* The Prometheus text of every counter, in a new heap string (caller frees). */
char *lb_metrics_text(const struct lb *lb);

#endif
