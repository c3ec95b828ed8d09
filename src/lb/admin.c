/* The admin endpoint: GET /metrics (Prometheus text format) and GET /healthz, served by
 * libmicrohttpd inside our loop (its epoll fd is watched; no thread of its own). */
#define LOG_TOPIC "admin"
#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/log.h"
#include "lb/lb.h"
#include "loop/loop.h"

struct lb_admin {
        struct lb *lb;
        struct MHD_Daemon *daemon;
        int epoll_fd;
        struct loop_timer *timer;
};

static void printfb(struct buf *b, const char *fmt, ...)
{
        char line[1024];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        if (n > 0)
                buf_append(b, line, (size_t)MIN(n, (int)sizeof(line) - 1));
}

/* Listeners that were removed but still drain are left out: their name may be in use
 * again, and Prometheus refuses two series with the same labels; their connections are
 * counted in stratus_lb_draining_connections. */
char *lb_metrics_text(const struct lb *lb)
{
        struct buf b;
        buf_init(&b);
        printfb(&b, "# HELP stratus_lb_connections_total Connections accepted.\n# TYPE stratus_lb_connections_total counter\n");
        for (const struct lb_listener *l = lb->listeners; l; l = l->next) {
                if (l->removed)
                        continue;
                printfb(&b, "stratus_lb_connections_total{listener=\"%s\"} %lld\n", l->cfg.name, (long long)l->accepted);
        }
        printfb(&b, "# HELP stratus_lb_connections_active Connections open now.\n# TYPE stratus_lb_connections_active gauge\n");
        for (const struct lb_listener *l = lb->listeners; l; l = l->next) {
                if (l->removed)
                        continue;
                printfb(&b, "stratus_lb_connections_active{listener=\"%s\"} %lld\n", l->cfg.name, (long long)l->active);
        }
        printfb(&b, "# HELP stratus_lb_connections_rejected_total Connections closed at once.\n"
                    "# TYPE stratus_lb_connections_rejected_total counter\n");
        for (const struct lb_listener *l = lb->listeners; l; l = l->next) {
                if (l->removed)
                        continue;
                printfb(&b, "stratus_lb_connections_rejected_total{listener=\"%s\",reason=\"no_target\"} %lld\n",
                        l->cfg.name, (long long)l->rejected_no_target);
                printfb(&b, "stratus_lb_connections_rejected_total{listener=\"%s\",reason=\"max_connections\"} %lld\n",
                        l->cfg.name, (long long)l->rejected_max);
                printfb(&b, "stratus_lb_connections_rejected_total{listener=\"%s\",reason=\"connect_failed\"} %lld\n",
                        l->cfg.name, (long long)l->rejected_connect);
        }
        printfb(&b, "# HELP stratus_lb_bytes_total Bytes relayed (in: client to target).\n# TYPE stratus_lb_bytes_total counter\n");
        for (const struct lb_listener *l = lb->listeners; l; l = l->next) {
                if (l->removed)
                        continue;
                printfb(&b, "stratus_lb_bytes_total{listener=\"%s\",direction=\"in\"} %lld\n", l->cfg.name,
                        (long long)l->bytes_in);
                printfb(&b, "stratus_lb_bytes_total{listener=\"%s\",direction=\"out\"} %lld\n", l->cfg.name,
                        (long long)l->bytes_out);
        }
        printfb(&b, "# HELP stratus_lb_target_up 1 when the target takes new connections.\n# TYPE stratus_lb_target_up gauge\n");
        const char *key;
        void *value;
        for (size_t i = 0; map_next(&lb->targets, &i, &key, &value);) {
                const struct lb_target *t = value;
                if (t->listener_refs > 0)
                        printfb(&b, "stratus_lb_target_up{target=\"%s\"} %d\n", t->addr.text, t->up ? 1 : 0);
        }
        printfb(&b, "# HELP stratus_lb_target_connections_active Connections open to the target.\n"
                    "# TYPE stratus_lb_target_connections_active gauge\n");
        for (size_t i = 0; map_next(&lb->targets, &i, &key, &value);) {
                const struct lb_target *t = value;
                printfb(&b, "stratus_lb_target_connections_active{target=\"%s\"} %lld\n", t->addr.text,
                        (long long)t->active);
        }
        printfb(&b, "# HELP stratus_lb_target_checks_total Health checks.\n# TYPE stratus_lb_target_checks_total counter\n");
        for (size_t i = 0; map_next(&lb->targets, &i, &key, &value);) {
                const struct lb_target *t = value;
                printfb(&b, "stratus_lb_target_checks_total{target=\"%s\",result=\"ok\"} %lld\n", t->addr.text,
                        (long long)t->checks_ok);
                printfb(&b, "stratus_lb_target_checks_total{target=\"%s\",result=\"fail\"} %lld\n", t->addr.text,
                        (long long)t->checks_fail);
        }
        printfb(&b, "# HELP stratus_lb_reloads_total Configuration reloads.\n# TYPE stratus_lb_reloads_total counter\n");
        printfb(&b, "stratus_lb_reloads_total{result=\"ok\"} %lld\n", (long long)lb->reloads_ok);
        printfb(&b, "stratus_lb_reloads_total{result=\"error\"} %lld\n", (long long)lb->reloads_error);
        printfb(&b, "# HELP stratus_lb_draining_connections Connections of removed targets or listeners.\n"
                    "# TYPE stratus_lb_draining_connections gauge\n");
        printfb(&b, "stratus_lb_draining_connections %lld\n", (long long)lb->draining);
        buf_append(&b, "", 1);
        return (char *)b.data;
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned code, const char *type, char *body)
{
        struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(resp, "Content-Type", type);
        enum MHD_Result rc = MHD_queue_response(conn, code, resp);
        MHD_destroy_response(resp);
        return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
        struct lb_admin *a = cls;
        if (strcmp(method, "GET") != 0)
                return respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", xstrdup("only GET is served\n"));
        if (strcmp(url, "/metrics") == 0)
                return respond(conn, MHD_HTTP_OK, "text/plain; version=0.0.4", lb_metrics_text(a->lb));
        if (strcmp(url, "/healthz") == 0)
                return respond(conn, MHD_HTTP_OK, "text/plain", xstrdup("ok\n"));
        return respond(conn, MHD_HTTP_NOT_FOUND, "text/plain", xstrdup("not found: try /metrics or /healthz\n"));
}

static void run(struct lb_admin *a)
{
        MHD_run(a->daemon);
}

static void on_epoll(struct loop *loop, int fd, uint32_t events, void *arg)
{
        run(arg);
}

/* libmicrohttpd's own timeouts need it to run now and then even without events. */
static void on_timer(struct loop *loop, void *arg)
{
        struct lb_admin *a = arg;
        run(a);
        a->timer = loop_add_timer(loop, 1000, on_timer, a);
}

struct lb_admin *admin_start(struct lb *lb, const char *addr)
{
        struct lb_addr parsed;
        char err[400];
        if (lb_addr_resolve(addr, true, &parsed, err, sizeof(err)) < 0) {
                log_error("admin endpoint: %s", err);
                return NULL;
        }
        struct lb_admin *a = xcalloc(1, sizeof(*a));
        a->lb = lb;
        a->daemon = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, a,
                                     MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&parsed.sa,
                                     MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_CONNECTION_TIMEOUT,
                                     (unsigned)10, MHD_OPTION_END);
        free(parsed.text);
        if (!a->daemon) {
                log_error("admin endpoint %s could not start (address in use?)", addr);
                free(a);
                return NULL;
        }
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->daemon, MHD_DAEMON_INFO_EPOLL_FD);
        a->epoll_fd = info ? info->epoll_fd : -1;
        if (a->epoll_fd < 0 || loop_add_fd(lb->loop, a->epoll_fd, LOOP_READABLE, on_epoll, a) < 0) {
                log_error("admin endpoint %s: cannot watch libmicrohttpd", addr);
                MHD_stop_daemon(a->daemon);
                free(a);
                return NULL;
        }
        a->timer = loop_add_timer(lb->loop, 1000, on_timer, a);
        log_info("admin endpoint on http://%s/metrics", addr);
        return a;
}

void admin_stop(struct lb_admin *a)
{
        if (!a)
                return;
        loop_del_fd(a->lb->loop, a->epoll_fd);
        loop_cancel_timer(a->lb->loop, a->timer);
        MHD_stop_daemon(a->daemon);
        free(a);
}
