/* Logical clusters: POST/GET/PATCH/DELETE /v1/clusters[/{id}]. Each mutation runs in the
 * request's transaction (routes.c) and rewrites the PSC of the PKC it touches. */
#define LOG_TOPIC "api"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "http/server.h"
#include "mothership/mothership.h"
#include "psc/psc.h"

#define MAX_MBPS       100000.0
#define MAX_PARTITIONS 1000000

json_t *api_cluster_json(const struct store_lkc *lkc, const struct store_pkc *pkc)
{
        char created[32], updated[32], rv[32];
        api_time(lkc->created_at_ms, created);
        api_time(lkc->updated_at_ms, updated);
        snprintf(rv, sizeof(rv), "%lld", (long long)lkc->resource_version);
        const char *phase = summary_lkc_phase(lkc, pkc);
        bool serving = strcmp(phase, "running") == 0 || strcmp(phase, "degraded") == 0;
        json_t *status =
            json_pack("{s:s, s:s, s:s, s:I, s:I}", "phase", phase, "pkc_id", lkc->pkc_id, "placement_reason",
                      lkc->reason, "generation",
                      (json_int_t)(lkc->deleting ? lkc->delete_generation : lkc->first_generation),
                      "observed_generation", (json_int_t)(pkc ? pkc->observed_generation : 0));
        json_object_set_new(status, "bootstrap",
                            serving && pkc && pkc->bootstrap[0] ? json_string(pkc->bootstrap) : json_null());
        if (pkc && pkc->message[0] && strcmp(phase, "provisioning") != 0)
                json_object_set_new(status, "message", json_string(pkc->message));
        return json_pack("{s:s, s:s, s:s, s:s, s:f, s:f, s:I, s:s, s:s, s:s, s:o}", "id", lkc->id, "name",
                         lkc->name, "region", lkc->region, "type", lkc->type, "ingress_mbps",
                         lkc->ingress_mbps, "egress_mbps", lkc->egress_mbps, "partitions",
                         (json_int_t)lkc->partitions, "resource_version", rv, "created_at", created,
                         "updated_at", updated, "status", status);
}

/* Loads the LKC {id} and its PKC; replies 404 when there is none. */
static bool load(struct api_req *req, struct store_lkc *lkc, struct store_pkc *pkc, bool *has_pkc)
{
        int rc = strlen(req->id) <= STORE_ID_MAX ? store_lkc_get(req->ms->store, req->id, lkc) : -ENOENT;
        if (rc == -ENOENT) {
                api_error(req, 404, "not_found", "id", "no logical cluster %s (GET /v1/clusters lists them)",
                          req->id);
                return false;
        }
        if (rc < 0) {
                api_error(req, 500, "internal", NULL, "the store failed: see the mothership log");
                return false;
        }
        *has_pkc = store_pkc_get(req->ms->store, lkc->pkc_id, pkc) == 0;
        return true;
}

static void reply_cluster(struct api_req *req, unsigned status, const struct store_lkc *lkc,
                          const struct store_pkc *pkc)
{
        api_set_etag(req, lkc->resource_version);
        if (status == 202 && strcmp(req->http->method, "POST") == 0) {
                char location[64];
                snprintf(location, sizeof(location), "/v1/clusters/%s", lkc->id);
                http_reply_header(req->reply, "Location", location);
        }
        api_json(req, status, api_cluster_json(lkc, pkc));
}

/* ---- validation ------------------------------------------------------------------------ */

static bool text_field(struct api_req *req, const char *field, size_t max, const char *allowed, bool lower,
                       char *out, size_t out_len)
{
        json_t *v = json_object_get(req->body, field);
        if (!v) {
                api_error(req, 400, "invalid_argument", field, "%s is required", field);
                return false;
        }
        const char *s = json_string_value(v);
        size_t n = s ? strlen(s) : 0;
        bool ok = s && n >= 1 && n <= max;
        for (size_t i = 0; ok && i < n; i++) {
                char c = s[i];
                ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (!lower && c >= 'A' && c <= 'Z') ||
                     strchr(allowed, c) != NULL;
        }
        if (!ok) {
                api_error(req, 400, "invalid_argument", field,
                          "%s must be a string of 1 to %zu %sletters, digits or %s", field, max,
                          lower ? "lower-case " : "", allowed);
                return false;
        }
        snprintf(out, out_len, "%s", s);
        return true;
}

static bool mbps_field(struct api_req *req, const char *field, bool required, double *out)
{
        json_t *v = json_object_get(req->body, field);
        if (!v) {
                if (required)
                        api_error(req, 400, "invalid_argument", field,
                                  "%s is required (MB/s, 1 MB = 10^6 bytes)", field);
                return !required;
        }
        double d = json_number_value(v);
        if (!json_is_number(v) || !isfinite(d) || d <= 0 || d > MAX_MBPS) {
                api_error(req, 400, "invalid_argument", field,
                          "%s must be a number of MB/s above 0 and at most %.0f (1 MB = 10^6 bytes)", field,
                          MAX_MBPS);
                return false;
        }
        *out = d;
        return true;
}

static bool partitions_field(struct api_req *req, bool required, int64_t *out)
{
        json_t *v = json_object_get(req->body, "partitions");
        if (!v) {
                if (required)
                        api_error(req, 400, "invalid_argument", "partitions", "partitions is required");
                return !required;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > MAX_PARTITIONS) {
                api_error(req, 400, "invalid_argument", "partitions",
                          "partitions must be an integer from 1 to %d", MAX_PARTITIONS);
                return false;
        }
        *out = json_integer_value(v);
        return true;
}

/* ---- handlers -------------------------------------------------------------------------- */

void api_cluster_create(struct api_req *req)
{
        static const char *const fields[] = {"name",        "region",     "type", "ingress_mbps",
                                             "egress_mbps", "partitions", NULL};
        if (!api_check_fields(req, fields))
                return;
        struct store_lkc lkc;
        memset(&lkc, 0, sizeof(lkc));
        if (!text_field(req, "name", STORE_NAME_MAX, "-_.", false, lkc.name, sizeof(lkc.name)) ||
            !text_field(req, "region", STORE_REGION_MAX, "-", true, lkc.region, sizeof(lkc.region)))
                return;
        const char *type = json_string_value(json_object_get(req->body, "type"));
        if (!type ||
            (strcmp(type, "basic") != 0 && strcmp(type, "standard") != 0 && strcmp(type, "dedicated") != 0)) {
                api_error(req, 400, "invalid_argument", "type",
                          "type must be one of basic, standard, dedicated");
                return;
        }
        snprintf(lkc.type, sizeof(lkc.type), "%s", type);
        if (!mbps_field(req, "ingress_mbps", true, &lkc.ingress_mbps) ||
            !mbps_field(req, "egress_mbps", true, &lkc.egress_mbps) ||
            !partitions_field(req, true, &lkc.partitions))
                return;
        struct store_lkc exists;
        do
                provision_random_id("lkc-", lkc.id);
        while (store_lkc_get(req->ms->store, lkc.id, &exists) == 0);
        char err[1024];
        const char *field = NULL;
        int rc = provision_place(req->ms, &lkc, err, sizeof(err), &field);
        if (rc == -EINVAL) {
                api_error(req, 422, "unprocessable", field, "%s", err);
                return;
        }
        if (rc < 0) {
                api_error(req, 500, "internal", NULL, "placement failed: %s", err);
                return;
        }
        lkc.resource_version = 1;
        lkc.created_at_ms = lkc.updated_at_ms = clock_wall_ms();
        rc = store_lkc_insert(req->ms->store, &lkc);
        int64_t generation = 0;
        if (rc == 0)
                rc = provision_pkc_changed(req->ms, lkc.pkc_id, &generation, err, sizeof(err));
        if (rc == -EINVAL) {
                api_error(req, 422, "unprocessable", NULL,
                          "the completion policy cannot serve this cluster: %s", err);
                return;
        }
        if (rc < 0) {
                api_error(req, 500, "internal", NULL, "the store failed: see the mothership log");
                return;
        }
        ASSERT(generation == lkc.first_generation);
        struct store_pkc pkc;
        bool has_pkc = store_pkc_get(req->ms->store, lkc.pkc_id, &pkc) == 0;
        log_info("cluster created id=%s name=%s type=%s region=%s pkc=%s generation=%lld reason=\"%s\"",
                 lkc.id, lkc.name, lkc.type, lkc.region, lkc.pkc_id, (long long)generation, lkc.reason);
        reply_cluster(req, 202, &lkc, has_pkc ? &pkc : NULL);
}

void api_cluster_get(struct api_req *req)
{
        struct store_lkc lkc;
        struct store_pkc pkc;
        bool has_pkc;
        if (load(req, &lkc, &pkc, &has_pkc))
                reply_cluster(req, 200, &lkc, has_pkc ? &pkc : NULL);
}

void api_cluster_list(struct api_req *req)
{
        struct api_page page;
        if (!api_page_parse(req, &page))
                return;
        struct store_lkc *lkcs = NULL;
        int n = store_lkc_list(req->ms->store, NULL, page.after_seq, page.size + 1, &lkcs);
        if (n < 0) {
                api_error(req, 500, "internal", NULL, "the store failed: see the mothership log");
                return;
        }
        bool more = n > page.size;
        if (more)
                n = page.size;
        /* PKCs are few: read each once per page. */
        struct map pkcs;
        map_init(&pkcs);
        json_t *items = json_array();
        for (int i = 0; i < n; i++) {
                struct store_pkc *pkc = map_get(&pkcs, lkcs[i].pkc_id, strlen(lkcs[i].pkc_id));
                if (!pkc) {
                        pkc = xcalloc(1, sizeof(*pkc));
                        if (store_pkc_get(req->ms->store, lkcs[i].pkc_id, pkc) < 0)
                                pkc->id[0] = '\0';
                        map_put(&pkcs, lkcs[i].pkc_id, strlen(lkcs[i].pkc_id), pkc);
                }
                json_array_append_new(items, api_cluster_json(&lkcs[i], pkc->id[0] ? pkc : NULL));
        }
        const char *k;
        void *v;
        for (size_t it = 0; map_next(&pkcs, &it, &k, &v);)
                free(v);
        map_deinit(&pkcs);
        json_t *list = json_pack("{s:o}", "clusters", items);
        api_page_finish(list, more, n ? lkcs[n - 1].seq : 0);
        free(lkcs);
        api_json(req, 200, list);
}

void api_cluster_update(struct api_req *req)
{
        static const char *const fields[] = {"ingress_mbps", "egress_mbps", "partitions", NULL};
        struct store_lkc lkc;
        struct store_pkc pkc;
        bool has_pkc;
        if (!load(req, &lkc, &pkc, &has_pkc))
                return;
        const char *name;
        json_t *value;
        json_object_foreach(req->body, name, value)
        {
                if (strcmp(name, "name") == 0 || strcmp(name, "region") == 0 || strcmp(name, "type") == 0 ||
                    strcmp(name, "id") == 0) {
                        api_error(req, 400, "invalid_argument", name,
                                  "%s cannot be changed: only ingress_mbps, egress_mbps and partitions can "
                                  "be updated",
                                  name);
                        return;
                }
        }
        if (!api_check_fields(req, fields) || !api_check_if_match(req, lkc.resource_version))
                return;
        if (lkc.deleting) {
                api_error(req, 409, "conflict", NULL, "logical cluster %s is being deleted", lkc.id);
                return;
        }
        struct store_lkc want = lkc;
        if (!mbps_field(req, "ingress_mbps", false, &want.ingress_mbps) ||
            !mbps_field(req, "egress_mbps", false, &want.egress_mbps) ||
            !partitions_field(req, false, &want.partitions))
                return;
        if (want.ingress_mbps == lkc.ingress_mbps && want.egress_mbps == lkc.egress_mbps &&
            want.partitions == lkc.partitions) {
                reply_cluster(req, 200, &lkc, has_pkc ? &pkc : NULL);
                return;
        }
        /* The LKC stays on its PKC: the new sizing must fit beside the others there. */
        struct psc_capacity cap;
        psc_policy_capacity(req->ms->policy,
                            strcmp(lkc.type, "dedicated") == 0 ? PSC_DEDICATED : PSC_MULTI_TENANT, &cap);
        struct provision_load others;
        if (provision_load(req->ms, lkc.pkc_id, lkc.id, &others) < 0) {
                api_error(req, 500, "internal", NULL, "the store failed: see the mothership log");
                return;
        }
        const char *field = NULL;
        double room = 0;
        if (others.ingress_mbps + want.ingress_mbps > cap.ingress_mbps) {
                field = "ingress_mbps";
                room = cap.ingress_mbps - others.ingress_mbps;
        } else if (others.egress_mbps + want.egress_mbps > cap.egress_mbps) {
                field = "egress_mbps";
                room = cap.egress_mbps - others.egress_mbps;
        } else if (others.partitions + want.partitions > cap.partitions) {
                field = "partitions";
                room = (double)(cap.partitions - others.partitions);
        }
        if (field) {
                api_error(
                    req, 409, "conflict", field,
                    "%s does not fit on %s: at most %g is left there beside its other clusters; clusters are "
                    "not moved between physical clusters, so create a new cluster for more",
                    field, lkc.pkc_id, room);
                return;
        }
        want.resource_version++;
        want.updated_at_ms = clock_wall_ms();
        char err[1024];
        int64_t generation;
        int rc = store_lkc_update(req->ms->store, &want);
        if (rc == 0)
                rc = provision_pkc_changed(req->ms, lkc.pkc_id, &generation, err, sizeof(err));
        if (rc == -EINVAL) {
                api_error(req, 409, "conflict", NULL, "the completion policy cannot serve this sizing: %s",
                          err);
                return;
        }
        if (rc < 0) {
                api_error(req, 500, "internal", NULL, "the store failed: see the mothership log");
                return;
        }
        store_pkc_get(req->ms->store, lkc.pkc_id, &pkc);
        log_info("cluster updated id=%s ingress_mbps=%g egress_mbps=%g partitions=%lld generation=%lld",
                 want.id, want.ingress_mbps, want.egress_mbps, (long long)want.partitions,
                 (long long)generation);
        reply_cluster(req, 200, &want, has_pkc ? &pkc : NULL);
}

void api_cluster_delete(struct api_req *req)
{
        struct store_lkc lkc;
        struct store_pkc pkc;
        bool has_pkc;
        if (!load(req, &lkc, &pkc, &has_pkc) || !api_check_if_match(req, lkc.resource_version))
                return;
        if (lkc.deleting) {
                reply_cluster(req, 202, &lkc, has_pkc ? &pkc : NULL);
                return;
        }
        lkc.deleting = true;
        lkc.resource_version++;
        lkc.updated_at_ms = clock_wall_ms();
        char err[1024];
        int64_t generation = 0;
        /* Its keys go at once: the next PSC has neither the tenant nor its keys. */
        int rc = store_api_key_delete_all(req->ms->store, lkc.id);
        if (rc == 0 && has_pkc && strcmp(pkc.type, "dedicated") == 0) {
                pkc.deleted = true;
                rc = store_pkc_update(req->ms->store, &pkc);
        }
        if (rc == 0)
                rc = store_lkc_update(req->ms->store, &lkc);
        if (rc == 0 && has_pkc)
                rc = provision_pkc_changed(req->ms, lkc.pkc_id, &generation, err, sizeof(err));
        lkc.delete_generation = generation;
        if (rc == 0)
                rc = store_lkc_update(req->ms->store, &lkc);
        if (rc == 0 && !has_pkc)
                rc = store_lkc_delete(req->ms->store, lkc.id);
        if (rc < 0) {
                api_error(req, 500, "internal", NULL, "the store failed: see the mothership log");
                return;
        }
        if (has_pkc)
                store_pkc_get(req->ms->store, lkc.pkc_id, &pkc);
        log_info("cluster deleting id=%s pkc=%s generation=%lld%s", lkc.id, lkc.pkc_id, (long long)generation,
                 has_pkc && pkc.deleted ? " (dedicated: the PKC is deleted too)" : "");
        reply_cluster(req, 202, &lkc, has_pkc ? &pkc : NULL);
}
