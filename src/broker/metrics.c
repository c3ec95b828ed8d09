/* Broker metrics in Prometheus text format, and the HTTP listener serving them. */
#define LOG_TOPIC "metrics"
#include "broker/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/tenancy/tenancy.h"
#include "http/server.h"
#include "kafka/api.h"

/* One metric family's header. <help> is a constant without backslashes or newlines. */
static void family(struct buf *out, const char *name, const char *type, const char *help)
{
        buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Appends <s> as a label value: backslash, double quote and newline escaped. */
static void put_label_value(struct buf *out, const char *s)
{
        for (; *s; s++) {
                if (*s == '\\')
                        buf_append(out, "\\\\", 2);
                else if (*s == '"')
                        buf_append(out, "\\\"", 2);
                else if (*s == '\n')
                        buf_append(out, "\\n", 2);
                else
                        buf_append(out, s, 1);
        }
}

/* "<name>{<label>="<value>"} <v>\n" */
static void sample_labeled(struct buf *out, const char *name, const char *label, const char *value, uint64_t v)
{
        buf_printf(out, "%s{%s=\"", name, label);
        put_label_value(out, value);
        buf_printf(out, "\"} %llu\n", (unsigned long long)v);
}

void broker_metrics_text(struct broker *broker, struct buf *out)
{
        /* Open connections per listener: counted from the list, so no counter can drift. */
        uint64_t *open = xcalloc((size_t)broker->nlisteners + 1, sizeof(*open));
        for (const struct conn *conn = broker->conns; conn; conn = conn->next) {
                ptrdiff_t i = conn->listener - broker->listeners;
                if (i >= 0 && i < broker->nlisteners)
                        open[i]++;
        }
        family(out, "stratus_broker_connections", "gauge", "Client connections open now.");
        for (int i = 0; i < broker->nlisteners; i++)
                sample_labeled(out, "stratus_broker_connections", "listener", broker->listeners[i].name, open[i]);
        free(open);
        family(out, "stratus_broker_connections_total", "counter", "Client connections accepted since start.");
        for (int i = 0; i < broker->nlisteners; i++)
                sample_labeled(out, "stratus_broker_connections_total", "listener", broker->listeners[i].name,
                               broker->listeners[i].connections_total);

        family(out, "stratus_broker_requests_total", "counter",
               "Kafka requests handed to their API's handler since start.");
        for (int i = 0; i < kafka_api_count; i++) {
                const struct kafka_api *api = &kafka_api_table[i];
                if (api->key >= 0 && api->key <= KAFKA_API_KEY_MAX)
                        sample_labeled(out, "stratus_broker_requests_total", "api", api->name,
                                       broker->requests_total[api->key]);
        }

        uint64_t topics = 0, partitions = 0;
        const char *key;
        void *value;
        for (size_t it = 0; map_next(&broker->topics, &it, &key, &value);) {
                const struct topic *topic = value;
                topics++;
                partitions += (uint64_t)topic->partition_count;
        }
        family(out, "stratus_broker_topics", "gauge", "Topics.");
        buf_printf(out, "stratus_broker_topics %llu\n", (unsigned long long)topics);
        family(out, "stratus_broker_partitions", "gauge", "Partitions of all topics.");
        buf_printf(out, "stratus_broker_partitions %llu\n", (unsigned long long)partitions);

        family(out, "stratus_broker_bytes_in_total", "counter", "Bytes read from client connections.");
        buf_printf(out, "stratus_broker_bytes_in_total %llu\n", (unsigned long long)broker->bytes_in);
        family(out, "stratus_broker_bytes_out_total", "counter", "Bytes written to client connections.");
        buf_printf(out, "stratus_broker_bytes_out_total %llu\n", (unsigned long long)broker->bytes_out);

        tenancy_metrics(broker, out);
}

static void route_metrics(void *arg, const char *method, const char *url, struct http_reply *reply)
{
        struct buf b;
        buf_init(&b);
        broker_metrics_text(arg, &b);
        reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
        reply->body = (char *)b.data;
        reply->body_len = b.len;
}

static void route_healthz(void *arg, const char *method, const char *url, struct http_reply *reply)
{
        reply->body = xstrdup("ok\n");
        reply->body_len = 3;
}

static const struct http_route routes[] = {
        { "/metrics", route_metrics },
        { "/healthz", route_healthz },
};

int broker_metrics_start(struct broker *broker)
{
        const char *addr = broker->cfg.metrics_listener;
        if (!addr[0])
                return 0;
        char err[512];
        int rc = http_server_start(broker->loop, addr, routes, ARRAY_LEN(routes), broker, NULL,
                                   &broker->metrics_server, err, sizeof(err));
        if (rc < 0) {
                log_error("metrics.listener: %s", err);
                return rc;
        }
        log_info("metrics listener on http://%s/metrics", http_server_addr(broker->metrics_server));
        return 0;
}

void broker_metrics_stop(struct broker *broker)
{
        http_server_stop(broker->metrics_server);
        broker->metrics_server = NULL;
}
