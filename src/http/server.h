/* A small HTTP server over libmicrohttpd that runs inside a struct loop: no thread of its
 * own. libmicrohttpd's epoll fd is watched by the loop, and a timer follows
 * MHD_get_timeout() so that its connection timeouts and buffered data are handled without
 * events. Requests are answered at once from a route table; the server itself answers 405
 * to anything but GET and 404 to unknown paths (naming the paths it serves). Loop thread
 * only. */
#ifndef STRATUS_HTTP_SERVER_H
#define STRATUS_HTTP_SERVER_H

#include <stddef.h>

struct loop;
struct http_server;

/* What a route fills in. The server preset <status> 200, <content_type> "text/plain;
 * charset=utf-8" and an empty body. */
struct http_reply {
        unsigned status;          /* HTTP status code */
        const char *content_type; /* a static string */
        char *body;               /* heap (malloc), taken by the server; NULL = empty */
        size_t body_len;          /* bytes of <body> */
};

/* Answers one request for <url> (the path, query string removed). Must fill <reply> and
 * return without blocking. <arg> is the server's. */
typedef void http_route_fn(void *arg, const char *method, const char *url, struct http_reply *reply);

struct http_route {
        const char *path;         /* exact path, "/metrics" */
        http_route_fn *fn;
};

struct http_server_options {
        unsigned max_connections; /* open at once; further ones are refused (0: 64) */
        unsigned timeout_s;       /* idle connections close after this (0: 10) */
};

/* Listens on <addr> ("host:port", "[v6]:port"; an empty host is every interface, port 0
 * picks a free one) and serves <routes> (<nroutes> entries, kept by pointer: static) with
 * <arg> on <loop>. <opts> may be NULL for the defaults. Returns 0 with *<out> set, or
 * -errno with a message in <err> (-EINVAL: not host:port; else the bind's errno). */
int http_server_start(struct loop *loop, const char *addr, const struct http_route *routes, size_t nroutes,
                      void *arg, const struct http_server_options *opts, struct http_server **out,
                      char *err, size_t err_len);

/* The bound address as "ip:port" ("[ip]:port" for IPv6), with the real port. */
const char *http_server_addr(const struct http_server *srv);
int http_server_port(const struct http_server *srv);

/* Closes the listening socket and every connection, and frees <srv>. NULL does nothing. */
void http_server_stop(struct http_server *srv);

#endif
