/* A thin blocking HTTP client over libcurl (easy interface), for the CLI and `stratus up`:
 * one request, a JSON (or any) body, a timeout, the status, body and headers of the
 * answer. Not for the loop: it blocks the calling thread up to the timeout. */
#ifndef STRATUS_HTTP_CLIENT_H
#define STRATUS_HTTP_CLIENT_H

#include <stddef.h>

struct http_response {
        long status;            /* HTTP status code; 0 when no answer */
        char *body;             /* heap, NUL-terminated (also when binary: body_len counts) */
        size_t body_len;        /* bytes of <body> */
        char **headers;         /* heap "Name: value" lines, as received */
        size_t nheaders;
};

struct http_request {
        const char *method;            /* "GET", "POST", "PATCH", "DELETE", ... */
        const char *url;               /* "http://127.0.0.1:8480/v1/clusters" */
        const char *const *headers;    /* "Name: value" lines, NULL-terminated; may be NULL */
        const char *body;              /* NULL: none */
        size_t body_len;
        const char *content_type;      /* of <body>; NULL: application/json */
        const char *bearer_token;      /* NULL: no Authorization header */
        int timeout_ms;                /* the whole exchange; 0: 10 s */
};

/* Performs <req>. Returns 0 with <resp> filled (whatever the HTTP status), or a negative
 * errno with a sentence for a person in <err> and <resp> empty: -ECONNREFUSED (nothing
 * listens), -ETIMEDOUT, -EHOSTUNREACH (cannot resolve or route), -EINVAL (bad URL), -EIO.
 * http_response_deinit() <resp> in every case. */
int http_request(const struct http_request *req, struct http_response *resp, char *err, size_t err_len);

/* The value of header <name> (case-insensitive, surrounding spaces removed) in <resp>, or
 * NULL. The pointer is into <resp>. */
const char *http_response_header(const struct http_response *resp, const char *name, size_t *len);

void http_response_deinit(struct http_response *resp);

#endif
