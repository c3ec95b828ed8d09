/* The HTTP server: libmicrohttpd in "external epoll" mode driven by our loop. */
#define LOG_TOPIC "http"
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/log.h"
#include "loop/loop.h"
#include "loop/net.h"

#define DEFAULT_MAX_CONNECTIONS 64
#define DEFAULT_TIMEOUT_S 10
#define DEFAULT_MAX_BODY_BYTES (1024 * 1024)
#define LISTEN_BACKLOG 64
/* The longest the loop waits before running libmicrohttpd without an event, even when it
 * asks for no timeout (belt and braces: a missed wake-up costs at most this). */
#define MAX_IDLE_MS 1000

struct http_server {
        struct loop *loop;
        struct MHD_Daemon *daemon;
        int epoll_fd;                 /* libmicrohttpd's, watched by <loop> */
        struct loop_timer *timer;     /* the next run without an event */
        const struct http_route *routes;
        size_t nroutes;
        void *arg;
        char addr[INET6_ADDRSTRLEN + 8]; /* bound "ip:port" */
        int port;
        char *not_found_hint;         /* "try /metrics or /healthz" */
        http_handler_fn *handler;     /* NULL: serve <routes> */
        size_t max_body_bytes;
};

/* A request being read, for a handler: libmicrohttpd calls on_request once with the
 * headers, once per chunk of body, and once more when the body is complete. */
struct pending {
        struct buf body;
        bool too_large;
};

void http_reply_header(struct http_reply *reply, const char *name, const char *value)
{
        if (reply->nheaders >= HTTP_REPLY_MAX_HEADERS) {
                log_warn("response header dropped (more than %d): %s", HTTP_REPLY_MAX_HEADERS, name);
                return;
        }
        reply->headers[reply->nheaders].name = xstrdup(name);
        reply->headers[reply->nheaders].value = xstrdup(value);
        reply->nheaders++;
}

static void reply_free_headers(struct http_reply *reply)
{
        for (size_t i = 0; i < reply->nheaders; i++) {
                free(reply->headers[i].name);
                free(reply->headers[i].value);
        }
        reply->nheaders = 0;
}

const char *http_server_header(const struct http_server_request *req, const char *name)
{
        return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_server_query(const struct http_server_request *req, const char *name)
{
        return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

static void mhd_log(void *arg, const char *fmt, va_list ap)
{
        char line[512];
        vsnprintf(line, sizeof(line), fmt, ap);
        line[strcspn(line, "\r\n")] = '\0';
        log_warn("libmicrohttpd: %s", line);
}

/* Queues <len> bytes of <body> (taken; NULL when empty) with <status> and the headers of
 * <extra> (may be NULL; its headers are freed). */
static enum MHD_Result respond_with(struct MHD_Connection *conn, unsigned status, const char *type, char *body,
                                    size_t len, struct http_reply *extra)
{
        struct MHD_Response *resp;
        if (len == 0) {
                free(body);
                resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        } else {
                resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
                if (!resp)
                        free(body);
        }
        if (!resp) {
                if (extra)
                        reply_free_headers(extra);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        if (status == MHD_HTTP_METHOD_NOT_ALLOWED && !extra)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET");
        if (extra) {
                for (size_t i = 0; i < extra->nheaders; i++)
                        MHD_add_response_header(resp, extra->headers[i].name, extra->headers[i].value);
                reply_free_headers(extra);
        }
        enum MHD_Result rc = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        return rc;
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *type, char *body,
                               size_t len)
{
        return respond_with(conn, status, type, body, len, NULL);
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned status, char *text)
{
        return respond(conn, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* With a handler: collects the body (dropping what is past the cap), then calls the
 * handler once the body is complete. */
static enum MHD_Result on_handler_request(struct http_server *srv, struct MHD_Connection *conn, const char *url,
                                          const char *method, const char *upload_data,
                                          size_t *upload_data_size, void **con_cls)
{
        struct pending *p = *con_cls;
        if (!p) {
                p = xcalloc(1, sizeof(*p));
                buf_init(&p->body);
                *con_cls = p;
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                if (!p->too_large && p->body.len + *upload_data_size > srv->max_body_bytes) {
                        p->too_large = true;
                        buf_reset(&p->body);
                }
                if (!p->too_large)
                        buf_append(&p->body, upload_data, *upload_data_size);
                *upload_data_size = 0;
                return MHD_YES;
        }
        buf_append(&p->body, "", 1);
        struct http_server_request req = {
                .method = method,
                .path = url,
                .body = (const char *)p->body.data,
                .body_len = p->body.len - 1,
                .body_too_large = p->too_large,
                .conn = conn,
        };
        struct http_reply reply = { .status = MHD_HTTP_OK, .content_type = "text/plain; charset=utf-8" };
        srv->handler(srv->arg, &req, &reply);
        return respond_with(conn, reply.status, reply.content_type, reply.body, reply.body ? reply.body_len : 0,
                            &reply);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        struct pending *p = *con_cls;
        if (!p)
                return;
        buf_deinit(&p->body);
        free(p);
        *con_cls = NULL;
}

/* With a route table every request is answered on its first call, before any body is
 * read: only GET is served, and a GET carries no body we would use. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
        struct http_server *srv = cls;
        if (srv->handler)
                return on_handler_request(srv, conn, url, method, upload_data, upload_data_size, con_cls);
        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
                return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, xstrdup("only GET is served\n"));
        const struct http_route *route = NULL;
        for (size_t i = 0; i < srv->nroutes && !route; i++)
                if (strcmp(srv->routes[i].path, url) == 0)
                        route = &srv->routes[i];
        if (!route)
                return respond_text(conn, MHD_HTTP_NOT_FOUND, xasprintf("not found: %s\n", srv->not_found_hint));
        struct http_reply reply = { .status = MHD_HTTP_OK, .content_type = "text/plain; charset=utf-8" };
        route->fn(srv->arg, method, url, &reply);
        return respond(conn, reply.status, reply.content_type, reply.body, reply.body ? reply.body_len : 0);
}

static void on_timer(struct loop *loop, void *arg);

/* Runs libmicrohttpd, then arms the timer for when it next needs to run without an event
 * (a connection timeout, or data it already holds: it must not wait longer than
 * MHD_get_timeout() says). */
static void run(struct http_server *srv)
{
        MHD_run(srv->daemon);
        MHD_UNSIGNED_LONG_LONG timeout_ms;
        int64_t delay_ms = MAX_IDLE_MS;
        if (MHD_get_timeout(srv->daemon, &timeout_ms) == MHD_YES && timeout_ms < MAX_IDLE_MS)
                delay_ms = (int64_t)timeout_ms;
        loop_cancel_timer(srv->loop, srv->timer);
        srv->timer = loop_add_timer(srv->loop, delay_ms, on_timer, srv);
}

static void on_epoll(struct loop *loop, int fd, uint32_t events, void *arg)
{
        run(arg);
}

static void on_timer(struct loop *loop, void *arg)
{
        struct http_server *srv = arg;
        srv->timer = NULL;
        run(srv);
}

static void format_addr(int fd, char *out, size_t len)
{
        struct sockaddr_storage ss = { 0 };
        socklen_t sl = sizeof(ss);
        char ip[INET6_ADDRSTRLEN] = "?";
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET6) {
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof(ip));
                snprintf(out, len, "[%s]:%d", ip, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
                return;
        }
        if (ss.ss_family == AF_INET)
                inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
        snprintf(out, len, "%s:%d", ip, ntohs(((struct sockaddr_in *)&ss)->sin_port));
}

static char *not_found_hint(const struct http_route *routes, size_t nroutes)
{
        struct buf b;
        buf_init(&b);
        buf_append(&b, "try ", 4);
        for (size_t i = 0; i < nroutes; i++) {
                if (i > 0)
                        buf_append(&b, " or ", 4);
                buf_append(&b, routes[i].path, strlen(routes[i].path));
        }
        buf_append(&b, "", 1);
        return (char *)b.data;
}

int http_server_start(struct loop *loop, const char *addr, const struct http_route *routes, size_t nroutes,
                      void *arg, const struct http_server_options *opts, struct http_server **out,
                      char *err, size_t err_len)
{
        char host[256];
        int port;
        if (net_parse_hostport(addr, host, sizeof(host), &port) < 0) {
                snprintf(err, err_len, "\"%s\" is not host:port", addr);
                return -EINVAL;
        }
        unsigned max_connections = opts && opts->max_connections ? opts->max_connections : DEFAULT_MAX_CONNECTIONS;
        unsigned timeout_s = opts && opts->timeout_s ? opts->timeout_s : DEFAULT_TIMEOUT_S;
        int fd = net_listen(host, port, LISTEN_BACKLOG);
        if (fd < 0) {
                snprintf(err, err_len, "cannot listen on %s: %s", addr, strerror(-fd));
                return fd;
        }
        struct http_server *srv = xcalloc(1, sizeof(*srv));
        srv->loop = loop;
        srv->routes = routes;
        srv->nroutes = nroutes;
        srv->arg = arg;
        srv->handler = opts ? opts->handler : NULL;
        srv->max_body_bytes = opts && opts->max_body_bytes ? opts->max_body_bytes : DEFAULT_MAX_BODY_BYTES;
        srv->port = net_local_port(fd);
        format_addr(fd, srv->addr, sizeof(srv->addr));
        /* On success libmicrohttpd owns <fd> (MHD_stop_daemon closes it); a failed start
         * leaves it to us. */
        srv->daemon = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, srv,
                                       MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
                                       MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                                       MHD_OPTION_LISTEN_SOCKET, fd,
                                       MHD_OPTION_CONNECTION_LIMIT, max_connections,
                                       MHD_OPTION_CONNECTION_TIMEOUT, timeout_s, MHD_OPTION_END);
        if (!srv->daemon) {
                snprintf(err, err_len, "%s: libmicrohttpd could not start", addr);
                close(fd);
                free(srv);
                return -EIO;
        }
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_EPOLL_FD);
        srv->epoll_fd = info ? info->epoll_fd : -1;
        int rc = srv->epoll_fd < 0 ? -EIO : loop_add_fd(loop, srv->epoll_fd, LOOP_READABLE, on_epoll, srv);
        if (rc < 0) {
                snprintf(err, err_len, "%s: cannot watch libmicrohttpd: %s", addr, strerror(-rc));
                MHD_stop_daemon(srv->daemon);
                free(srv);
                return rc;
        }
        srv->not_found_hint = not_found_hint(routes, nroutes);
        srv->timer = loop_add_timer(loop, MAX_IDLE_MS, on_timer, srv);
        *out = srv;
        return 0;
}

const char *http_server_addr(const struct http_server *srv)
{
        return srv->addr;
}

int http_server_port(const struct http_server *srv)
{
        return srv->port;
}

void http_server_stop(struct http_server *srv)
{
        if (!srv)
                return;
        loop_del_fd(srv->loop, srv->epoll_fd);
        loop_cancel_timer(srv->loop, srv->timer);
        MHD_stop_daemon(srv->daemon);
        free(srv->not_found_hint);
        free(srv);
}
