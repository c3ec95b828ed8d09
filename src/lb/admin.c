/* The admin endpoint: GET /metrics (Prometheus text format) and GET /healthz, served by
 * src/http/server.h inside our loop (no thread of its own). */
#define LOG_TOPIC "admin"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/log.h"
#include "http/server.h"
#include "lb/lb.h"

struct lb_admin {
        struct lb *lb;
        struct http_server *server;
};

/* Listeners that were removed but still drain are left out: their name may be in use
 * again, and Prometheus refuses two series with the same labels; their connections are
 * counted in stratus_lb_draining_connections. */
char *lb_metrics_text(const struct lb *lb)
{
        struct buf b;
        buf_init(&b);
        buf_printf(&b, "# HELP stratus_lb_connections_total Connections accepted.\n# TYPE stratus_lb_connections_total counter\n");
        for (const struct lb_listener *l = lb->listeners; l; l = l->next) {
                if (l->removed)
                        continue;
                buf_printf(&b, "stratus_lb_connections_total{listener=\"%s\"} %lld\n", l->cfg.name, (long long)l->accepted);
        }
        buf_printf(&b, "# HELP stratus_lb_connections_active Connections open now.\n# TYPE stratus_lb_connections_active gauge\n");
        for (const struct lb_listener *l = lb->listeners; l; l = l->next) {
                if (l->removed)
                        continue;
                buf_printf(&b, "stratus_lb_connections_active{listener=\"%s\"} %lld\n", l->cfg.name, (long long)l->active);
        }
        buf_printf(&b, "# HELP stratus_lb_connections_rejected_total Connections closed at once.\n"
                    "# TYPE stratus_lb_connections_rejected_total counter\n");
        for (const struct lb_listener *l = lb->listeners; l; l = l->next) {
                if (l->removed)
                        continue;
                buf_printf(&b, "stratus_lb_connections_rejected_total{listener=\"%s\",reason=\"no_target\"} %lld\n",
                        l->cfg.name, (long long)l->rejected_no_target);
                buf_printf(&b, "stratus_lb_connections_rejected_total{listener=\"%s\",reason=\"max_connections\"} %lld\n",
                        l->cfg.name, (long long)l->rejected_max);
                buf_printf(&b, "stratus_lb_connections_rejected_total{listener=\"%s\",reason=\"connect_failed\"} %lld\n",
                        l->cfg.name, (long long)l->rejected_connect);
        }
        buf_printf(&b, "# HELP stratus_lb_bytes_total Bytes relayed (in: client to target).\n# TYPE stratus_lb_bytes_total counter\n");
        for (const struct lb_listener *l = lb->listeners; l; l = l->next) {
                if (l->removed)
                        continue;
                buf_printf(&b, "stratus_lb_bytes_total{listener=\"%s\",direction=\"in\"} %lld\n", l->cfg.name,
                        (long long)l->bytes_in);
                buf_printf(&b, "stratus_lb_bytes_total{listener=\"%s\",direction=\"out\"} %lld\n", l->cfg.name,
                        (long long)l->bytes_out);
        }
        buf_printf(&b, "# HELP stratus_lb_target_up 1 when the target takes new connections.\n# TYPE stratus_lb_target_up gauge\n");
        const char *key;
        void *value;
        for (size_t i = 0; map_next(&lb->targets, &i, &key, &value);) {
                const struct lb_target *t = value;
                if (t->listener_refs > 0)
                        buf_printf(&b, "stratus_lb_target_up{target=\"%s\"} %d\n", t->addr.text, t->up ? 1 : 0);
        }
        buf_printf(&b, "# HELP stratus_lb_target_connections_active Connections open to the target.\n"
                    "# TYPE stratus_lb_target_connections_active gauge\n");
        for (size_t i = 0; map_next(&lb->targets, &i, &key, &value);) {
                const struct lb_target *t = value;
                buf_printf(&b, "stratus_lb_target_connections_active{target=\"%s\"} %lld\n", t->addr.text,
                        (long long)t->active);
        }
        buf_printf(&b, "# HELP stratus_lb_target_checks_total Health checks.\n# TYPE stratus_lb_target_checks_total counter\n");
        for (size_t i = 0; map_next(&lb->targets, &i, &key, &value);) {
                const struct lb_target *t = value;
                buf_printf(&b, "stratus_lb_target_checks_total{target=\"%s\",result=\"ok\"} %lld\n", t->addr.text,
                        (long long)t->checks_ok);
                buf_printf(&b, "stratus_lb_target_checks_total{target=\"%s\",result=\"fail\"} %lld\n", t->addr.text,
                        (long long)t->checks_fail);
        }
        buf_printf(&b, "# HELP stratus_lb_reloads_total Configuration reloads.\n# TYPE stratus_lb_reloads_total counter\n");
        buf_printf(&b, "stratus_lb_reloads_total{result=\"ok\"} %lld\n", (long long)lb->reloads_ok);
        buf_printf(&b, "stratus_lb_reloads_total{result=\"error\"} %lld\n", (long long)lb->reloads_error);
        buf_printf(&b, "# HELP stratus_lb_draining_connections Connections of removed targets or listeners.\n"
                    "# TYPE stratus_lb_draining_connections gauge\n");
        buf_printf(&b, "stratus_lb_draining_connections %lld\n", (long long)lb->draining);
        buf_append(&b, "", 1);
        return (char *)b.data;
}

static void route_metrics(void *arg, const char *method, const char *url, struct http_reply *reply)
{
        struct lb_admin *a = arg;
        reply->content_type = "text/plain; version=0.0.4";
        reply->body = lb_metrics_text(a->lb);
        reply->body_len = strlen(reply->body);
}

static void route_healthz(void *arg, const char *method, const char *url, struct http_reply *reply)
{
        reply->content_type = "text/plain";
        reply->body = xstrdup("ok\n");
        reply->body_len = 3;
}

static const struct http_route routes[] = {
        { "/metrics", route_metrics },
        { "/healthz", route_healthz },
};

struct lb_admin *admin_start(struct lb *lb, const char *addr)
{
        struct lb_admin *a = xcalloc(1, sizeof(*a));
        a->lb = lb;
        char err[400];
        int rc = http_server_start(lb->loop, addr, routes, ARRAY_LEN(routes), a, NULL, &a->server, err,
                                   sizeof(err));
        if (rc < 0) {
                log_error("admin endpoint: %s", err);
                free(a);
                return NULL;
        }
        log_info("admin endpoint on http://%s/metrics", http_server_addr(a->server));
        return a;
}

void admin_stop(struct lb_admin *a)
{
        if (!a)
                return;
        http_server_stop(a->server);
        free(a);
}
