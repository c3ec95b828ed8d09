/* `stratus mothership`: the control plane's REST API, its SQLite store, placement, PSC
 * authoring and the status summary. This header is the module's internal contract: the
 * process context and what each file provides (README.md has the design).
 *
 * Every request runs on the loop thread, one at a time (libmicrohttpd inside our loop),
 * and a mutating request (POST, PATCH, DELETE) is one store transaction: routes.c begins
 * it, the handler changes rows and queues the PSCs it rewrote, and routes.c commits (with
 * the Idempotency-Key record) then publishes them, or rolls everything back on an error.
 * A PSC is therefore in SQLite before it is on the bus (an outbox): a crash in between is
 * repaired by the republish at every start. */
#ifndef STRATUS_MOTHERSHIP_MOTHERSHIP_H
#define STRATUS_MOTHERSHIP_MOTHERSHIP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/map.h"
#include "mothership/store.h"

struct loop;
struct bus;
struct http_server;
struct http_server_request;
struct http_reply;
struct psc_policy;

/* Heartbeats are sent every second; a satellite silent for this long is stale. */
#define MOTHERSHIP_STALE_MS 5000
#define IDEMPOTENCY_KEEP_MS (24 * 3600 * 1000LL)

/* A PSC written in the current transaction, published after it commits. */
struct outbox_entry {
        char *satellite;
        char *pkc_id;
        char *json; /* NULL: a tombstone */
};

struct mothership {
        struct loop *loop;
        struct store *store;
        struct bus *bus;
        struct http_server *http;
        const struct psc_policy *policy;
        struct psc_policy *owned_policy; /* from --policy; NULL: the built-in one */
        char **tokens;                   /* bearer tokens accepted */
        size_t ntokens;
        struct outbox_entry *outbox; /* queued in the open transaction */
        size_t noutbox;
        struct map ensured_topics; /* psc.<sat> topics known to exist */
        struct loop_timer *purge_timer;
        int64_t started_wall_ms;
};

/* ---- routes.c: the router, auth, errors, idempotency ---------------------------------- */

/* One API request as a handler sees it. */
struct api_req {
        struct mothership *ms;
        const struct http_server_request *http;
        const char *id;  /* the {id} of the path, or NULL */
        const char *key; /* the {key} of the path, or NULL */
        json_t *body;    /* the parsed JSON object of a POST/PATCH, else NULL */
        struct http_reply *reply;
        char *idem_response; /* heap: what an idempotent replay returns instead
                              * of the reply body (the API key without its secret) */
};

typedef void api_fn(struct api_req *req);

struct api_route {
        const char *method;
        const char *path; /* "/v1/clusters/{id}" */
        api_fn *fn;
        bool public; /* served without a bearer token */
};

extern const struct api_route api_routes[];
extern const size_t api_nroutes;

/* The http_server handler: routes <req> and answers it. */
void api_handle(void *arg, const struct http_server_request *req, struct http_reply *reply);

/* Replies with the error shape {"error": {"code", "message", "field"}}; <field> may be
 * NULL. */
void api_error(struct api_req *req, unsigned status, const char *code, const char *field, const char *fmt,
               ...) __attribute__((format(printf, 5, 6)));
/* Replies <status> with <obj> (taken). */
void api_json(struct api_req *req, unsigned status, json_t *obj);
/* Replies 400 unless <req->body> has only fields in <allowed> (NULL-terminated). */
bool api_check_fields(struct api_req *req, const char *const *allowed);
/* Replies 412 unless If-Match is absent, "*" or names <resource_version>. */
bool api_check_if_match(struct api_req *req, int64_t resource_version);
/* Sets ETag: "<resource_version>". */
void api_set_etag(struct api_req *req, int64_t resource_version);

/* Pagination: page_size (default 50, 1..500) and page_token (opaque: a cursor). */
struct api_page {
        int size;
        int64_t after_seq;
};
bool api_page_parse(struct api_req *req, struct api_page *page);
/* Adds "next_page_token" to <list> when <more> (the last item's <last_seq>). */
void api_page_finish(json_t *list, bool more, int64_t last_seq);

/* RFC 3339 UTC text of <wall_ms> ("2024-05-01T12:00:00.000Z"). */
void api_time(int64_t wall_ms, char out[32]);

/* ---- api_cluster.c, api_key.c, api_fleet.c: the handlers -------------------------------- */

void api_cluster_create(struct api_req *req);
void api_cluster_list(struct api_req *req);
void api_cluster_get(struct api_req *req);
void api_cluster_update(struct api_req *req);
void api_cluster_delete(struct api_req *req);
void api_key_create(struct api_req *req);
void api_key_list(struct api_req *req);
void api_key_delete(struct api_req *req);
void api_pkc_list(struct api_req *req);
void api_pkc_get(struct api_req *req);
void api_satellite_list(struct api_req *req);
void api_region_list(struct api_req *req);
void api_openapi(struct api_req *req);
void api_healthz(struct api_req *req);

/* The cluster resource of <lkc> (its status from <pkc>, which may be NULL). */
json_t *api_cluster_json(const struct store_lkc *lkc, const struct store_pkc *pkc);

/* ---- openapi.c ----------------------------------------------------------------------- */

/* The OpenAPI 3 document (src/mothership/openapi.json, embedded). */
const char *openapi_document(size_t *len);

/* ---- provision.c: placement, PSCs, the outbox ------------------------------------------ */

/* Random ids: <prefix> + 6 base32 characters ("lkc-", "pkc-"); <out> holds 16. */
void provision_random_id(const char *prefix, char *out);
/* <n> random characters of the base32 alphabet <upper> or lower case, NUL-terminated. */
void provision_random_text(char *out, size_t n, bool upper);

/* The load placed on <pkc_id> by its LKCs not being deleted, leaving <except_lkc> out
 * (may be NULL). */
struct provision_load {
        double ingress_mbps;
        double egress_mbps;
        int64_t partitions;
        int64_t tenants;
};
int provision_load(struct mothership *ms, const char *pkc_id, const char *except_lkc,
                   struct provision_load *out);

/* Places a new LKC of <lkc> (region, type, sizing filled in): chooses or creates its PKC
 * (the pkc row is inserted for a new one) and fills lkc->pkc_id and lkc->reason. Returns
 * 0, or -EINVAL with a message for the API in <err> and the offending field in *<field>
 * (422: no satellite in the region, a request no PKC can hold). In the open transaction. */
int provision_place(struct mothership *ms, struct store_lkc *lkc, char *err, size_t err_len,
                    const char **field);

/* Rewrites the PSC of <pkc_id> after a change of its tenants: bumps its generation,
 * builds the partial PSC from the store, completes it under the policy, stores it and
 * queues it for publishing. Sets *<generation> (may be NULL). Returns 0, or -EINVAL with
 * <err> (the policy cannot serve the sizing), -ENOENT, -EIO. In the open transaction. */
int provision_pkc_changed(struct mothership *ms, const char *pkc_id, int64_t *generation, char *err,
                          size_t err_len);
/* Queues a tombstone for <pkc_id> on psc.<satellite>. */
void provision_queue_tombstone(struct mothership *ms, const char *satellite, const char *pkc_id);
/* After commit: produces every queued PSC. After rollback: forgets them. */
void provision_flush(struct mothership *ms);
void provision_discard(struct mothership *ms);
/* Produces the stored PSC of every PKC (at start). Returns how many. */
int provision_republish_all(struct mothership *ms);
/* Creates psc.<satellite> (retention.ms=-1) unless known to exist. Blocks up to 5 s. */
int provision_ensure_topic(struct mothership *ms, const char *satellite);

/* ---- summary.c: status and heartbeats in, LKC phase out -------------------------------- */

/* The bus_message_fn for stratus.status; <arg> is the mothership. */
void summary_on_status(void *arg, const char *topic, const char *key, size_t key_len, const char *value,
                       size_t value_len, int64_t offset);
void summary_on_caught_up(void *arg, const char *topic);

/* The user-facing phase of <lkc> on <pkc> (NULL when unknown) and its bootstrap address
 * ("" until running). */
const char *summary_lkc_phase(const struct store_lkc *lkc, const struct store_pkc *pkc);
/* The phase of <pkc> for the API: its reported phase, "provisioning" before any status,
 * "deleting" while a deletion is not reported. */
const char *summary_pkc_phase(const struct store_pkc *pkc);
bool summary_satellite_stale(const struct store_satellite *sat, int64_t now_wall_ms);

#endif
