/* The HTTP client: one libcurl easy handle per request. */
#define LOG_TOPIC "http"
#include "http/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "base/buf.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
        curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
        buf_append(arg, ptr, size * nmemb);
        return size * nmemb;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
        struct http_response *resp = arg;
        size_t len = size * nmemb;
        size_t n = len;
        while (n > 0 && (ptr[n - 1] == '\r' || ptr[n - 1] == '\n'))
                n--;
        /* A new status line (after a redirect or 100 Continue) starts a new header set. */
        if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
                for (size_t i = 0; i < resp->nheaders; i++)
                        free(resp->headers[i]);
                resp->nheaders = 0;
                return len;
        }
        if (n == 0 || !memchr(ptr, ':', n))
                return len;
        resp->headers = xrealloc(resp->headers, (resp->nheaders + 1) * sizeof(char *));
        resp->headers[resp->nheaders++] = xstrndup(ptr, n);
        return len;
}

static int map_error(CURLcode code, const char *url, const char *detail, char *err, size_t err_len)
{
        const char *what = detail && *detail ? detail : curl_easy_strerror(code);
        switch (code) {
        case CURLE_COULDNT_CONNECT:
                snprintf(err, err_len, "cannot reach %s: connection refused (%s)", url, what);
                return -ECONNREFUSED;
        case CURLE_OPERATION_TIMEDOUT:
                snprintf(err, err_len, "no answer from %s in time (%s)", url, what);
                return -ETIMEDOUT;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                snprintf(err, err_len, "cannot reach %s: unknown host (%s)", url, what);
                return -EHOSTUNREACH;
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
                snprintf(err, err_len, "bad URL %s (%s)", url, what);
                return -EINVAL;
        default:
                snprintf(err, err_len, "request to %s failed: %s", url, what);
                return -EIO;
        }
}

int http_request(const struct http_request *req, struct http_response *resp, char *err, size_t err_len)
{
        memset(resp, 0, sizeof(*resp));
        pthread_once(&curl_once, curl_init_once);
        CURL *curl = curl_easy_init();
        if (!curl) {
                snprintf(err, err_len, "libcurl: cannot create a handle");
                return -ENOMEM;
        }
        struct buf body;
        buf_init(&body);
        struct curl_slist *hdrs = NULL;
        char *line;
        if (req->body) {
                line = xasprintf("Content-Type: %s", req->content_type ? req->content_type : "application/json");
                hdrs = curl_slist_append(hdrs, line);
                free(line);
        }
        if (req->bearer_token) {
                line = xasprintf("Authorization: Bearer %s", req->bearer_token);
                hdrs = curl_slist_append(hdrs, line);
                free(line);
        }
        hdrs = curl_slist_append(hdrs, "Accept: application/json");
        /* No "Expect: 100-continue" round trip for small bodies. */
        hdrs = curl_slist_append(hdrs, "Expect:");
        for (const char *const *h = req->headers; h && *h; h++)
                hdrs = curl_slist_append(hdrs, *h);

        char detail[CURL_ERROR_SIZE] = "";
        curl_easy_setopt(curl, CURLOPT_URL, req->url);
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)(req->timeout_ms > 0 ? req->timeout_ms : 10000));
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, detail);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
        curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(curl, CURLOPT_HEADERDATA, resp);
        curl_easy_setopt(curl, CURLOPT_USERAGENT, "stratus-cli");
        if (strcmp(req->method, "HEAD") == 0)
                curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
        if (req->body) {
                curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body);
                curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        }
        CURLcode code = curl_easy_perform(curl);
        int rc = 0;
        if (code != CURLE_OK) {
                rc = map_error(code, req->url, detail, err, err_len);
                buf_deinit(&body);
                http_response_deinit(resp);
        } else {
                curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
                buf_append(&body, "", 1);
                resp->body_len = body.len - 1;
                resp->body = (char *)body.data; /* taken from <body> */
        }
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(curl);
        return rc;
}

const char *http_response_header(const struct http_response *resp, const char *name, size_t *len)
{
        size_t nlen = strlen(name);
        for (size_t i = 0; i < resp->nheaders; i++) {
                const char *h = resp->headers[i];
                if (strncasecmp(h, name, nlen) != 0 || h[nlen] != ':')
                        continue;
                const char *v = h + nlen + 1;
                while (*v == ' ' || *v == '\t')
                        v++;
                size_t n = strlen(v);
                while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                        n--;
                if (len)
                        *len = n;
                return v;
        }
        return NULL;
}

void http_response_deinit(struct http_response *resp)
{
        free(resp->body);
        for (size_t i = 0; i < resp->nheaders; i++)
                free(resp->headers[i]);
        free(resp->headers);
        memset(resp, 0, sizeof(*resp));
}
