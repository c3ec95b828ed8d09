/* The REST router: the route table, bearer-token auth, the error shape, JSON bodies,
 * Idempotency-Key replays, If-Match, pagination, and one transaction per mutating
 * request (mothership.h). */
#define LOG_TOPIC "api"
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "http/server.h"
#include "mothership/mothership.h"

const struct api_route api_routes[] = {
    {"GET", "/healthz", api_healthz, true},
    {"GET", "/v1/openapi.json", api_openapi, true},
    {"POST", "/v1/clusters", api_cluster_create, false},
    {"GET", "/v1/clusters", api_cluster_list, false},
    {"GET", "/v1/clusters/{id}", api_cluster_get, false},
    {"PATCH", "/v1/clusters/{id}", api_cluster_update, false},
    {"DELETE", "/v1/clusters/{id}", api_cluster_delete, false},
    {"POST", "/v1/clusters/{id}/api-keys", api_key_create, false},
    {"GET", "/v1/clusters/{id}/api-keys", api_key_list, false},
    {"DELETE", "/v1/clusters/{id}/api-keys/{key}", api_key_delete, false},
    {"GET", "/v1/physical-clusters", api_pkc_list, false},
    {"GET", "/v1/physical-clusters/{id}", api_pkc_get, false},
    {"GET", "/v1/satellites", api_satellite_list, false},
    {"GET", "/v1/regions", api_region_list, false},
};
const size_t api_nroutes = sizeof(api_routes) / sizeof(api_routes[0]);

/* ---- replies --------------------------------------------------------------------------- */

static void reply_text(struct http_reply *reply, unsigned status, char *json)
{
        free(reply->body);
        reply->status = status;
        reply->content_type = "application/json";
        reply->body = json;
        reply->body_len = strlen(json);
}

void api_json(struct api_req *req, unsigned status, json_t *obj)
{
        char *text = json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(obj);
        ASSERT(text);
        size_t len = strlen(text);
        char *body = xmalloc(len + 2);
        memcpy(body, text, len);
        body[len] = '\n';
        body[len + 1] = '\0';
        free(text);
        reply_text(req->reply, status, body);
}

void api_error(struct api_req *req, unsigned status, const char *code, const char *field, const char *fmt,
               ...)
{
        char message[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(message, sizeof(message), fmt, ap);
        va_end(ap);
        json_t *err = json_pack("{s:s, s:s}", "code", code, "message", message);
        if (field)
                json_object_set_new(err, "field", json_string(field));
        api_json(req, status, json_pack("{s:o}", "error", err));
        log_debug("error status=%u code=%s field=%s message=\"%s\"", status, code, field ? field : "",
                  message);
}

bool api_check_fields(struct api_req *req, const char *const *allowed)
{
        const char *name;
        json_t *value;
        json_object_foreach(req->body, name, value)
        {
                bool ok = false;
                for (size_t i = 0; allowed[i] && !ok; i++)
                        ok = strcmp(allowed[i], name) == 0;
                if (!ok) {
                        struct buf b;
                        buf_init(&b);
                        for (size_t i = 0; allowed[i]; i++) {
                                if (i)
                                        buf_append(&b, ", ", 2);
                                buf_append(&b, allowed[i], strlen(allowed[i]));
                        }
                        buf_append(&b, "", 1);
                        api_error(req, 400, "invalid_argument", name,
                                  "unknown field \"%s\": the fields are %s", name, (char *)b.data);
                        buf_deinit(&b);
                        return false;
                }
        }
        return true;
}

void api_set_etag(struct api_req *req, int64_t resource_version)
{
        char etag[32];
        snprintf(etag, sizeof(etag), "\"%lld\"", (long long)resource_version);
        http_reply_header(req->reply, "ETag", etag);
}

bool api_check_if_match(struct api_req *req, int64_t resource_version)
{
        const char *want = http_server_header(req->http, "If-Match");
        if (!want || strcmp(want, "*") == 0)
                return true;
        char quoted[32], bare[32];
        snprintf(quoted, sizeof(quoted), "\"%lld\"", (long long)resource_version);
        snprintf(bare, sizeof(bare), "%lld", (long long)resource_version);
        const char *w = want;
        if (strncmp(w, "W/", 2) == 0)
                w += 2;
        if (strcmp(w, quoted) == 0 || strcmp(w, bare) == 0)
                return true;
        api_error(
            req, 412, "precondition_failed", NULL,
            "If-Match %s does not match the current resource_version \"%lld\": read the resource again and "
            "retry",
            want, (long long)resource_version);
        return false;
}

void api_time(int64_t wall_ms, char out[32])
{
        time_t s = (time_t)(wall_ms / 1000);
        struct tm tm;
        gmtime_r(&s, &tm);
        char base[24];
        strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(out, 32, "%s.%03dZ", base, (int)(wall_ms % 1000));
}

/* ---- pagination ------------------------------------------------------------------------ */

#define PAGE_DEFAULT 50
#define PAGE_MAX     500

/* The token is base64url("p1:<seq>"): opaque to clients, stable across restarts. */
static void page_token(int64_t seq, char *out, size_t len)
{
        char plain[32];
        int n = snprintf(plain, sizeof(plain), "p1:%lld", (long long)seq);
        unsigned char b64[64];
        int m = EVP_EncodeBlock(b64, (const unsigned char *)plain, n);
        size_t j = 0;
        for (int i = 0; i < m && j + 1 < len; i++) {
                char c = (char)b64[i];
                if (c == '=')
                        break;
                out[j++] = c == '+' ? '-' : c == '/' ? '_' : c;
        }
        out[j] = '\0';
}

static bool page_token_parse(const char *token, int64_t *seq)
{
        size_t n = strlen(token);
        if (n == 0 || n > 40)
                return false;
        char b64[48];
        size_t j = 0;
        for (size_t i = 0; i < n; i++) {
                char c = token[i];
                if (c == '-')
                        c = '+';
                else if (c == '_')
                        c = '/';
                else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
                        return false;
                b64[j++] = c;
        }
        while (j % 4)
                b64[j++] = '=';
        b64[j] = '\0';
        unsigned char plain[48];
        int m = EVP_DecodeBlock(plain, (const unsigned char *)b64, (int)j);
        if (m < 0)
                return false;
        plain[m] = '\0';
        long long v;
        char tail;
        if (sscanf((const char *)plain, "p1:%lld%c", &v, &tail) != 1 || v < 0)
                return false;
        *seq = v;
        return true;
}

bool api_page_parse(struct api_req *req, struct api_page *page)
{
        page->size = PAGE_DEFAULT;
        page->after_seq = 0;
        const char *size = http_server_query(req->http, "page_size");
        if (size) {
                char *end;
                long v = strtol(size, &end, 10);
                if (!*size || *end || v < 1 || v > PAGE_MAX) {
                        api_error(req, 400, "invalid_argument", "page_size",
                                  "page_size must be an integer from 1 to %d (default %d)", PAGE_MAX,
                                  PAGE_DEFAULT);
                        return false;
                }
                page->size = (int)v;
        }
        const char *token = http_server_query(req->http, "page_token");
        if (token && *token && !page_token_parse(token, &page->after_seq)) {
                api_error(
                    req, 400, "invalid_argument", "page_token",
                    "page_token is not one this API returned: pass next_page_token from the previous page "
                    "unchanged");
                return false;
        }
        return true;
}

void api_page_finish(json_t *list, bool more, int64_t last_seq)
{
        if (!more)
                return;
        char token[64];
        page_token(last_seq, token, sizeof(token));
        json_object_set_new(list, "next_page_token", json_string(token));
}

/* ---- auth ------------------------------------------------------------------------------ */

static bool authenticated(struct mothership *ms, const struct http_server_request *http)
{
        const char *auth = http_server_header(http, "Authorization");
        if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
                return false;
        const char *token = auth + 7;
        while (*token == ' ')
                token++;
        size_t len = strlen(token);
        bool ok = false;
        /* Compare every token in constant time for its length. */
        for (size_t i = 0; i < ms->ntokens; i++)
                if (strlen(ms->tokens[i]) == len && CRYPTO_memcmp(ms->tokens[i], token, len) == 0)
                        ok = true;
        return ok;
}

/* ---- matching -------------------------------------------------------------------------- */

/* Whether <path> matches <pattern>, capturing {id} and {key} into <id>/<key> (each up to
 * <cap> bytes). */
static bool match(const char *pattern, const char *path, char *id, char *key, size_t cap)
{
        const char *p = pattern, *u = path;
        while (*p && *u) {
                if (*p == '{') {
                        const char *close = strchr(p, '}');
                        char *dst = strncmp(p, "{id}", 4) == 0 ? id : key;
                        size_t n = strcspn(u, "/");
                        if (n == 0 || n >= cap)
                                return false;
                        memcpy(dst, u, n);
                        dst[n] = '\0';
                        p = close + 1;
                        u += n;
                        continue;
                }
                if (*p != *u)
                        return false;
                p++;
                u++;
        }
        return *p == '\0' && *u == '\0';
}

/* ---- idempotency ----------------------------------------------------------------------- */

static void body_hash(const struct http_server_request *http, char out[65])
{
        unsigned char digest[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)http->body, http->body_len, digest);
        for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
                snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

/* ---- dispatch -------------------------------------------------------------------------- */

static bool mutating(const char *method)
{
        return strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0 || strcmp(method, "DELETE") == 0 ||
               strcmp(method, "PUT") == 0;
}

static void run_mutation(struct api_req *req, const struct api_route *route)
{
        struct mothership *ms = req->ms;
        const char *idem_key =
            strcmp(route->method, "POST") == 0 ? http_server_header(req->http, "Idempotency-Key") : NULL;
        char scope[300], hash[65] = "";
        snprintf(scope, sizeof(scope), "%s %s", req->http->method, req->http->path);
        if (idem_key) {
                if (!*idem_key || strlen(idem_key) > 255) {
                        api_error(req, 400, "invalid_argument", "Idempotency-Key",
                                  "the Idempotency-Key header must be 1 to 255 characters");
                        return;
                }
                body_hash(req->http, hash);
                char stored_hash[65];
                unsigned status;
                char *response = NULL;
                int rc = store_idem_get(ms->store, scope, idem_key, stored_hash, &status, &response);
                if (rc == 0) {
                        if (strcmp(stored_hash, hash) != 0) {
                                free(response);
                                api_error(
                                    req, 422, "idempotency_key_reused", "Idempotency-Key",
                                    "Idempotency-Key \"%s\" was used for a different request body within "
                                    "24 hours: use a new key for a new request",
                                    idem_key);
                                return;
                        }
                        reply_text(req->reply, status, response);
                        http_reply_header(req->reply, "Idempotent-Replayed", "true");
                        log_debug("idempotent replay scope=\"%s\" status=%u", scope, status);
                        return;
                }
                if (rc != -ENOENT) {
                        api_error(req, 500, "internal", NULL, "the store failed: see the mothership log");
                        return;
                }
        }
        if (store_begin(ms->store) < 0) {
                api_error(req, 500, "internal", NULL, "the store failed: see the mothership log");
                return;
        }
        route->fn(req);
        unsigned status = req->reply->status;
        bool ok = status >= 200 && status < 300;
        if (ok && idem_key) {
                const char *resp = req->idem_response ? req->idem_response
                                   : req->reply->body ? req->reply->body
                                                      : "";
                ok = store_idem_put(ms->store, scope, idem_key, hash, status, resp, clock_wall_ms()) == 0;
        }
        if (ok && store_commit(ms->store) == 0) {
                provision_flush(ms);
                return;
        }
        store_rollback(ms->store);
        provision_discard(ms);
        if (status >= 200 && status < 300) {
                for (size_t i = 0; i < req->reply->nheaders; i++) {
                        free(req->reply->headers[i].name);
                        free(req->reply->headers[i].value);
                }
                req->reply->nheaders = 0;
                api_error(req, 500, "internal", NULL, "the store failed to commit: see the mothership log");
        }
}

void api_handle(void *arg, const struct http_server_request *http, struct http_reply *reply)
{
        struct mothership *ms = arg;
        struct api_req req = {.ms = ms, .http = http, .reply = reply};
        char id[128], key[128];
        const struct api_route *route = NULL;
        bool path_known = false, path_public = false;
        struct buf allow;
        buf_init(&allow);
        for (size_t i = 0; i < api_nroutes; i++) {
                if (!match(api_routes[i].path, http->path, id, key, sizeof(id)))
                        continue;
                path_known = true;
                path_public = api_routes[i].public;
                if (allow.len)
                        buf_append(&allow, ", ", 2);
                buf_append(&allow, api_routes[i].method, strlen(api_routes[i].method));
                if (strcmp(api_routes[i].method, http->method) == 0) {
                        route = &api_routes[i];
                        req.id = strstr(route->path, "{id}") ? id : NULL;
                        req.key = strstr(route->path, "{key}") ? key : NULL;
                }
        }
        buf_append(&allow, "", 1);
        log_debug("request method=%s path=%s", http->method, http->path);
        if (!(route ? route->public : path_public) && !authenticated(ms, http)) {
                http_reply_header(reply, "WWW-Authenticate", "Bearer realm=\"stratus\"");
                api_error(
                    &req, 401, "unauthenticated", NULL,
                    http_server_header(http, "Authorization")
                        ? "the bearer token is not valid: use a token from the mothership's token file"
                        : "send Authorization: Bearer <token> (a token from the mothership's token file)");
        } else if (!path_known) {
                api_error(&req, 404, "not_found", NULL,
                          "no such path: %s (GET /v1/openapi.json lists the API)", http->path);
        } else if (!route) {
                http_reply_header(reply, "Allow", (char *)allow.data);
                api_error(&req, 405, "method_not_allowed", NULL, "%s is not served on %s: use %s",
                          http->method, http->path, (char *)allow.data);
        } else if (http->body_too_large) {
                api_error(&req, 413, "payload_too_large", NULL,
                          "the request body is too large (at most 64 KiB)");
        } else if (strcmp(route->method, "POST") == 0 || strcmp(route->method, "PATCH") == 0) {
                json_error_t jerr;
                req.body = http->body_len
                               ? json_loadb(http->body, http->body_len, JSON_REJECT_DUPLICATES, &jerr)
                               : json_object();
                if (!req.body)
                        api_error(&req, 400, "invalid_argument", NULL,
                                  "the body is not JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                                  jerr.column);
                else if (!json_is_object(req.body))
                        api_error(&req, 400, "invalid_argument", NULL, "the body must be a JSON object");
                else
                        run_mutation(&req, route);
        } else if (mutating(route->method)) {
                run_mutation(&req, route);
        } else {
                route->fn(&req);
        }
        json_decref(req.body);
        free(req.idem_response);
        buf_deinit(&allow);
        if (reply->status >= 500)
                log_warn("request failed method=%s path=%s status=%u", http->method, http->path,
                         reply->status);
}

void api_healthz(struct api_req *req)
{
        api_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

void api_openapi(struct api_req *req)
{
        size_t len;
        const char *doc = openapi_document(&len);
        free(req->reply->body);
        req->reply->status = 200;
        req->reply->content_type = "application/json";
        req->reply->body = xstrndup(doc, len);
        req->reply->body_len = len;
}
