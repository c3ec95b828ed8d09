/* A small HTTP server over libmicrohttpd that runs inside a struct loop: no thread of its
 * own. libmicrohttpd's epoll fd is watched by the loop, and a timer follows
 * MHD_get_timeout() so that its connection timeouts and buffered data are handled without
 * events. Two ways to serve:
 *  - a route table of exact GET paths (metrics, health): the server itself answers 405 to
 *    anything but GET and 404 to unknown paths (naming the paths it serves);
 *  - a handler (http_server_options.handler) that sees every request, any method, with
 *    its headers, query arguments and body (read whole, up to a size cap), and may set
 *    response headers (an API with its own router: `stratus mothership`).
 * Requests are answered one at a time on the loop thread, so handlers never run
 * concurrently. Loop thread only. */
#ifndef STRATUS_HTTP_SERVER_H
#define STRATUS_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

struct loop;
struct http_server;

#define HTTP_REPLY_MAX_HEADERS 8

struct http_header {
        char *name;               /* heap, owned by the reply */
        char *value;              /* heap, owned by the reply */
};

/* What a route fills in. The server preset <status> 200, <content_type> "text/plain;
 * charset=utf-8" and an empty body. */
struct http_reply {
        unsigned status;          /* HTTP status code */
        const char *content_type; /* a static string */
        char *body;               /* heap (malloc), taken by the server; NULL = empty */
        size_t body_len;          /* bytes of <body> */
        struct http_header headers[HTTP_REPLY_MAX_HEADERS]; /* set with http_reply_header() */
        size_t nheaders;
};

/* Adds the response header <name>: <value> to <reply> (both copied). Headers past
 * HTTP_REPLY_MAX_HEADERS are dropped with a warning. */
void http_reply_header(struct http_reply *reply, const char *name, const char *value);

/* One request as a handler sees it; every pointer is valid only during the call. */
struct http_server_request {
        const char *method;       /* "GET", "POST", ... */
        const char *path;         /* the path, query string removed, not decoded */
        const char *body;         /* the whole body ("" when none), NUL-terminated */
        size_t body_len;
        bool body_too_large;      /* longer than max_body_bytes: <body> is empty */
        void *conn;               /* libmicrohttpd's connection (for the lookups below) */
};

/* The value of request header <name> (case-insensitive), or NULL. */
const char *http_server_header(const struct http_server_request *req, const char *name);
/* The decoded value of query argument <name> ("?page_size=10"), or NULL. */
const char *http_server_query(const struct http_server_request *req, const char *name);

/* Answers <req>; must fill <reply> and return without blocking. <arg> is the server's. */
typedef void http_handler_fn(void *arg, const struct http_server_request *req, struct http_reply *reply);

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
        http_handler_fn *handler; /* when set, every request goes here and <routes> are unused */
        size_t max_body_bytes;    /* bodies longer are read and dropped (0: 1 MiB) */
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
