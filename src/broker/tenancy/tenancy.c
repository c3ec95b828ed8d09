/* Tenant states, namespaces and quotas; see tenancy.h. */
#define LOG_TOPIC "tenancy"
#include "broker/tenancy/tenancy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/dispatch.h"
#include "kafka/api.h"
#include "loop/loop.h"

/* Longest topic name Kafka accepts; a tenant's visible names are shorter by the prefix. */
#define TOPIC_NAME_MAX 249

static struct tenant_state *state_get(struct broker *broker, const char *id)
{
        struct tenant_state *ts = map_get(&broker->tenant_states, id, strlen(id));
        if (ts)
                return ts;
        ts = xcalloc(1, sizeof(*ts));
        ts->id = xstrdup(id);
        size_t n = strlen(id);
        ts->prefix = xmalloc(n + 2);
        memcpy(ts->prefix, id, n);
        ts->prefix[n] = '_';
        ts->prefix[n + 1] = '\0';
        ts->names.prefix = ts->prefix;
        ts->names.prefix_len = n + 1;
        struct token_bucket unlimited = BUCKET_UNLIMITED;
        ts->produce = ts->fetch = ts->requests = ts->connects = unlimited;
        map_put(&broker->tenant_states, id, n, ts);
        return ts;
}

/* <rate> a second with <burst_seconds> of it banked (at least one unit). */
static void configure(struct token_bucket *b, double rate, double burst_seconds, int64_t now_ms)
{
        bucket_configure(b, rate, rate < 0 ? 0 : rate * burst_seconds, now_ms);
}

void tenancy_sync(struct broker *broker)
{
        int64_t now = loop_now_ms(broker->loop);
        const char *key;
        void *value;
        for (size_t i = 0; map_next(&broker->tenant_states, &i, &key, &value);)
                ((struct tenant_state *)value)->present = false;
        for (int i = 0; broker->tenants && i < broker->tenants->ntenants; i++) {
                const struct tenant *t = &broker->tenants->tenants[i];
                struct tenant_state *ts = state_get(broker, t->id);
                const struct tenant_quotas *q = &t->quotas;
                bool changed = memcmp(&ts->quotas, q, sizeof(*q)) != 0;
                ts->present = true;
                ts->quotas = *q;
                configure(&ts->produce, q->produce_bytes_per_sec, q->burst_seconds, now);
                configure(&ts->fetch, q->fetch_bytes_per_sec, q->burst_seconds, now);
                configure(&ts->requests, q->requests_per_sec, q->burst_seconds, now);
                configure(&ts->connects, q->connections_per_sec, q->burst_seconds, now);
                if (changed)
                        log_debug("quotas tenant=%s produce_bytes_per_sec=%.0f fetch_bytes_per_sec=%.0f "
                                  "requests_per_sec=%.0f max_connections=%lld max_partitions=%lld",
                                  t->id, q->produce_bytes_per_sec, q->fetch_bytes_per_sec, q->requests_per_sec,
                                  (long long)q->max_connections, (long long)q->max_partitions);
        }
}

void tenancy_stop(struct broker *broker)
{
        const char *key;
        void *value;
        for (size_t i = 0; map_next(&broker->tenant_states, &i, &key, &value);) {
                struct tenant_state *ts = value;
                free(ts->id);
                free(ts->prefix);
                free(ts);
        }
        map_deinit(&broker->tenant_states);
        map_init(&broker->tenant_states);
}

int tenancy_attach(struct conn *conn, const char *tenant_id, int64_t *delay_ms, char *err, size_t err_len)
{
        struct broker *broker = conn->broker;
        struct tenant_state *ts = state_get(broker, tenant_id);
        int64_t now = loop_now_ms(broker->loop);
        *delay_ms = 0;
        if (ts->quotas.max_connections >= 0 && ts->connections >= ts->quotas.max_connections) {
                ts->connections_rejected++;
                snprintf(err, err_len, "logical cluster %s is at its connection limit (%lld connections)", ts->id,
                         (long long)ts->quotas.max_connections);
                return -EDQUOT;
        }
        bucket_take(&ts->connects, 1, now);
        *delay_ms = MIN(bucket_delay_ms(&ts->connects, now), TENANCY_MAX_THROTTLE_MS);
        ts->connections++;
        ts->connections_total++;
        conn->tenant = ts;
        return 0;
}

void tenancy_detach(struct conn *conn)
{
        if (!conn->tenant)
                return;
        conn->tenant->connections--;
        conn->tenant = NULL;
}

static void add_throttle(struct request *req, int64_t delay_ms)
{
        if (delay_ms > TENANCY_MAX_THROTTLE_MS)
                delay_ms = TENANCY_MAX_THROTTLE_MS;
        if (delay_ms > req->throttle_ms)
                req->throttle_ms = (int32_t)delay_ms;
}

void tenancy_on_request(struct request *req)
{
        struct tenant_state *ts = req->conn->tenant;
        if (!ts)
                return;
        int64_t now = loop_now_ms(req->broker->loop);
        ts->requests_total++;
        bucket_take(&ts->requests, 1, now);
        add_throttle(req, bucket_delay_ms(&ts->requests, now));
        if (req->api->key == KAFKA_API_PRODUCE) {
                /* The request's size stands for its record bytes, as in Kafka. */
                ts->bytes_in += req->frame_len;
                bucket_take(&ts->produce, (double)req->frame_len, now);
                add_throttle(req, bucket_delay_ms(&ts->produce, now));
        }
}

void tenancy_on_fetch(struct request *req, int64_t bytes)
{
        struct tenant_state *ts = req->conn ? req->conn->tenant : NULL;
        if (!ts)
                return;
        int64_t now = loop_now_ms(req->broker->loop);
        ts->bytes_out += (uint64_t)bytes;
        bucket_take(&ts->fetch, (double)bytes, now);
        add_throttle(req, bucket_delay_ms(&ts->fetch, now));
}

void tenancy_on_throttle(struct request *req)
{
        struct tenant_state *ts = req->conn ? req->conn->tenant : NULL;
        if (!ts || req->throttle_ms <= 0)
                return;
        ts->throttled_requests++;
        ts->throttle_ms_total += req->throttle_ms;
}

int32_t tenancy_fetch_allowance(const struct conn *conn, int32_t max_bytes)
{
        struct tenant_state *ts = conn ? conn->tenant : NULL;
        if (!ts || bucket_unlimited(&ts->fetch))
                return max_bytes;
        double tokens = bucket_tokens(&ts->fetch, loop_now_ms(conn->broker->loop));
        /* In debt: one batch still goes (a fetch must make progress); the connection is
         * muted afterwards for the debt. */
        if (tokens < 1)
                return 1;
        return tokens < max_bytes ? (int32_t)tokens : max_bytes;
}

bool tenancy_namespace(const struct conn *conn, const char **ns, size_t *len)
{
        const struct tenant_state *ts = conn ? conn->tenant : NULL;
        if (!ts)
                return false;
        *ns = ts->names.prefix;
        *len = ts->names.prefix_len;
        return true;
}

bool tenancy_visible(const struct conn *conn, const char *internal, size_t len)
{
        const struct tenant_state *ts = conn ? conn->tenant : NULL;
        if (!ts)
                return true;
        return len > ts->names.prefix_len && memcmp(internal, ts->names.prefix, ts->names.prefix_len) == 0;
}

const char *tenancy_cluster_id(const struct conn *conn)
{
        return conn->tenant ? conn->tenant->id : conn->broker->cluster_id;
}

struct kafka_str tenancy_internal_name(struct request *req, struct kafka_str name)
{
        const struct tenant_state *ts = req->conn ? req->conn->tenant : NULL;
        if (!ts || name.len < 0)
                return name;
        size_t plen = ts->names.prefix_len;
        char *p = kafka_arena_alloc(&req->out, plen + (size_t)name.len + 1);
        memcpy(p, ts->names.prefix, plen);
        if (name.len)
                memcpy(p + plen, name.ptr, (size_t)name.len);
        p[plen + (size_t)name.len] = '\0';
        return (struct kafka_str){ p, (int32_t)(plen + (size_t)name.len) };
}

const char *tenancy_check_topic_name(const struct conn *conn, const char *internal, size_t len)
{
        const struct tenant_state *ts = conn ? conn->tenant : NULL;
        if (!ts)
                return broker_check_topic_name(internal, len);
        static char msg[96];
        size_t plen = ts->names.prefix_len;
        if (len < plen || memcmp(internal, ts->names.prefix, plen) != 0)
                return "topic name is outside the logical cluster"; /* not reachable through the codecs */
        if (len - plen > TOPIC_NAME_MAX - plen) {
                snprintf(msg, sizeof(msg), "topic name is longer than %zu characters", TOPIC_NAME_MAX - plen);
                return msg;
        }
        return broker_check_topic_name(internal + plen, len - plen);
}

int64_t tenancy_partitions(struct broker *broker, const struct tenant_state *ts)
{
        int n;
        struct topic *const *topics = broker_namespace_topics(broker, ts->names.prefix, ts->names.prefix_len, &n);
        int64_t partitions = 0;
        for (int i = 0; i < n; i++)
                partitions += topics[i]->partition_count;
        return partitions;
}

int tenancy_check_partitions(const struct conn *conn, int64_t adding, char *err, size_t err_len)
{
        const struct tenant_state *ts = conn ? conn->tenant : NULL;
        if (!ts || ts->quotas.max_partitions < 0)
                return 0;
        int64_t have = tenancy_partitions(conn->broker, ts);
        if (have + adding <= ts->quotas.max_partitions)
                return 0;
        snprintf(err, err_len,
                 "partition limit of logical cluster %s reached: it has %lld of %lld partitions, "
                 "%lld more do not fit",
                 ts->id, (long long)have, (long long)ts->quotas.max_partitions, (long long)adding);
        return -EDQUOT;
}

/* One metric family: HELP and TYPE, then a sample per tenant. */
enum family_value {
        FV_BYTES_IN, FV_BYTES_OUT, FV_REQUESTS, FV_THROTTLED, FV_THROTTLE_SECONDS, FV_CONNECTIONS,
        FV_CONNECTIONS_TOTAL, FV_CONNECTIONS_REJECTED, FV_PARTITIONS,
};

static const struct family {
        const char *name, *type, *help;
        enum family_value value;
} families[] = {
        { "stratus_tenant_bytes_in_total", "counter", "Produce request bytes received.", FV_BYTES_IN },
        { "stratus_tenant_bytes_out_total", "counter", "Fetch record bytes sent.", FV_BYTES_OUT },
        { "stratus_tenant_requests_total", "counter", "Requests handled.", FV_REQUESTS },
        { "stratus_tenant_throttled_requests_total", "counter", "Responses that carried a throttle time.",
          FV_THROTTLED },
        { "stratus_tenant_throttle_seconds_total", "counter", "Throttle time handed out.", FV_THROTTLE_SECONDS },
        { "stratus_tenant_connections", "gauge", "Authenticated connections open now.", FV_CONNECTIONS },
        { "stratus_tenant_connections_total", "counter", "Connections authenticated.", FV_CONNECTIONS_TOTAL },
        { "stratus_tenant_connections_rejected_total", "counter", "Authentications refused by the connection limit.",
          FV_CONNECTIONS_REJECTED },
        { "stratus_tenant_partitions", "gauge", "Partitions of the tenant's topics.", FV_PARTITIONS },
};

void tenancy_metrics(struct broker *broker, struct buf *out)
{
        for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
                const struct family *fam = &families[f];
                buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name, fam->type);
                const char *key;
                void *value;
                for (size_t i = 0; map_next(&broker->tenant_states, &i, &key, &value);) {
                        const struct tenant_state *ts = value;
                        /* Ids are [A-Za-z0-9-] (tenants.c): no label escaping needed. */
                        switch (fam->value) {
                        case FV_THROTTLE_SECONDS:
                                buf_printf(out, "%s{tenant=\"%s\"} %.3f\n", fam->name, ts->id,
                                        (double)ts->throttle_ms_total / 1000.0);
                                continue;
                        default:
                                break;
                        }
                        int64_t n = 0;
                        switch (fam->value) {
                        case FV_BYTES_IN: n = (int64_t)ts->bytes_in; break;
                        case FV_BYTES_OUT: n = (int64_t)ts->bytes_out; break;
                        case FV_REQUESTS: n = (int64_t)ts->requests_total; break;
                        case FV_THROTTLED: n = (int64_t)ts->throttled_requests; break;
                        case FV_CONNECTIONS: n = ts->connections; break;
                        case FV_CONNECTIONS_TOTAL: n = (int64_t)ts->connections_total; break;
                        case FV_CONNECTIONS_REJECTED: n = (int64_t)ts->connections_rejected; break;
                        case FV_PARTITIONS: n = tenancy_partitions(broker, ts); break; /* its namespace's topics */
                        case FV_THROTTLE_SECONDS: break;
                        }
                        buf_printf(out, "%s{tenant=\"%s\"} %lld\n", fam->name, ts->id, (long long)n);
                }
        }
}
