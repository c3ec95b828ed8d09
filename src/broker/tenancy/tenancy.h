/* Tenancy in the broker (docs/tenancy.md): each tenant's runtime state (its namespace,
 * the token buckets of its quotas, its counters), and the views handlers use so that a
 * tenant sees only its own resources.
 *
 * Names: a tenant's topics, group ids and transactional ids are stored as "<id>_<name>".
 * The codecs map them (struct kafka_names on the request's reader and the response's
 * writer), so most handlers never see the difference; the handlers that enumerate
 * (Metadata, ListGroups, ...) filter with tenancy_visible().
 *
 * Quotas are enforced the Kafka way: a request is served, the bytes or the request are
 * charged to the tenant's buckets, the response carries throttle_time_ms and the
 * connection is muted (not read) until the debt is paid, so clients that ignore the
 * hint are held back too. A connection without a tenant (PLAINTEXT listener) is not
 * limited and sees every name as stored. Loop thread only. */
#ifndef STRATUS_BROKER_TENANCY_TENANCY_H
#define STRATUS_BROKER_TENANCY_TENANCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "broker/auth/tenants.h"
#include "broker/tenancy/bucket.h"
#include "kafka/wire.h"

struct broker;
struct conn;
struct request;

/* Longest throttle handed out at once; a larger debt is paid over several requests. */
#define TENANCY_MAX_THROTTLE_MS 30000

struct tenant_state {
        char *id;                     /* the LKC id */
        char *prefix;                 /* "<id>_" */
        struct kafka_names names;     /* over <prefix> */
        struct tenant_quotas quotas;  /* from the tenants file, updated on reload */
        bool present;                 /* in the tenants file now */
        struct token_bucket produce, fetch, requests, connects;
        int64_t connections;          /* open and authenticated now */
        /* Counters since start (Prometheus). */
        uint64_t bytes_in, bytes_out, requests_total, throttled_requests;
        uint64_t connections_total, connections_rejected;
        int64_t throttle_ms_total;
};

/* Brings the states in line with the tenants file just loaded: new tenants get a state,
 * changed quotas apply at once, removed tenants are marked absent. */
void tenancy_sync(struct broker *broker);
/* Frees every state (broker stop). */
void tenancy_stop(struct broker *broker);

/* Attaches an authenticated <conn> to tenant <tenant_id>. Returns 0 with *<delay_ms> the
 * connection-rate throttle to apply, or -EDQUOT with a message in <err> when the tenant
 * is at its connection limit (the caller fails the authentication). */
int tenancy_attach(struct conn *conn, const char *tenant_id, int64_t *delay_ms, char *err, size_t err_len);
/* Detaches a closing connection from its tenant. */
void tenancy_detach(struct conn *conn);

/* Before a request's handler runs: counts it, charges the request-rate quota and, for a
 * Produce, the produce quota with the request's size; raises req->throttle_ms to the
 * resulting debt. */
void tenancy_on_request(struct request *req);
/* A Fetch is about to answer with <bytes> of records: charges the fetch quota. */
void tenancy_on_fetch(struct request *req, int64_t bytes);
/* The response of <req> goes out with req->throttle_ms > 0: counts it. */
void tenancy_on_throttle(struct request *req);
/* The most bytes a Fetch of <conn> may return now (at least 1: one batch always goes). */
int32_t tenancy_fetch_allowance(const struct conn *conn, int32_t max_bytes);

/* <conn>'s tenant's namespace (its "<lkc-id>_" prefix; see broker_namespace_topics()).
 * Returns false, setting nothing, without a tenant. */
bool tenancy_namespace(const struct conn *conn, const char **ns, size_t *len);
/* Whether stored name <internal> belongs to <conn>'s namespace (always, without a tenant). */
bool tenancy_visible(const struct conn *conn, const char *internal, size_t len);
/* The cluster id <conn> sees: its LKC id, or the broker's. */
const char *tenancy_cluster_id(const struct conn *conn);
/* Checks the topic name a tenant asked for (<internal>, prefix included) the Kafka way,
 * with the length limit less the prefix. Returns NULL, or what is wrong. */
const char *tenancy_check_topic_name(const struct conn *conn, const char *internal, size_t len);
/* <name> as stored for <req>'s tenant (prefixed, copied into the response arena), for
 * fields the codecs cannot map themselves (DescribeConfigs resource names). */
struct kafka_str tenancy_internal_name(struct request *req, struct kafka_str name);
/* Partitions of <ts>'s topics. */
int64_t tenancy_partitions(struct broker *broker, const struct tenant_state *ts);
/* Whether <conn>'s tenant may add <adding> partitions. Returns 0, or -EDQUOT with a
 * message (POLICY_VIOLATION) in <err>. */
int tenancy_check_partitions(const struct conn *conn, int64_t adding, char *err, size_t err_len);

/* Appends per-tenant counters in Prometheus text format. */
void tenancy_metrics(struct broker *broker, struct buf *out);

#endif
