/* Read-only views of the fleet: /v1/physical-clusters[/{id}], /v1/satellites,
 * /v1/regions. */
#define LOG_TOPIC "api"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "http/server.h"
#include "mothership/mothership.h"
#include "psc/psc.h"

/* The ?region= filter of a list, or NULL. */
static const char *region_filter(struct api_req *req)
{
        const char *region = http_server_query(req->http, "region");
        return region && *region ? region : NULL;
}

static json_t *pkc_json(struct mothership *ms, const struct store_pkc *pkc)
{
        struct psc_capacity cap;
        bool dedicated = strcmp(pkc->type, "dedicated") == 0;
        psc_policy_capacity(ms->policy, dedicated ? PSC_DEDICATED : PSC_MULTI_TENANT, &cap);
        struct provision_load load;
        provision_load(ms, pkc->id, NULL, &load);
        json_t *tenants = json_array();
        struct store_lkc *lkcs = NULL;
        int n = store_lkc_list(ms->store, pkc->id, 0, 0, &lkcs);
        for (int i = 0; i < n; i++)
                json_array_append_new(tenants, json_string(lkcs[i].id));
        free(lkcs);
        char created[32], reported[32];
        api_time(pkc->created_at_ms, created);
        api_time(pkc->status_time_ms, reported);
        json_t *obj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:b}", "id", pkc->id, "type",
                                pkc->type, "region", pkc->region, "satellite", pkc->satellite, "revision",
                                pkc->revision, "generation", (json_int_t)pkc->generation,
                                "observed_generation", (json_int_t)pkc->observed_generation, "phase",
                                summary_pkc_phase(pkc), "deleted", pkc->deleted);
        json_object_set_new(obj, "bootstrap", pkc->bootstrap[0] ? json_string(pkc->bootstrap) : json_null());
        json_object_set_new(obj, "message", pkc->message[0] ? json_string(pkc->message) : json_null());
        json_object_set_new(
            obj, "brokers",
            json_pack("{s:i, s:i}", "reported", pkc->brokers, "healthy", pkc->healthy_brokers));
        json_object_set_new(obj, "lb_healthy", json_boolean(pkc->lb_healthy));
        json_object_set_new(obj, "capacity",
                            json_pack("{s:f, s:f, s:I, s:I}", "ingress_mbps", cap.ingress_mbps, "egress_mbps",
                                      cap.egress_mbps, "partitions", (json_int_t)cap.partitions, "tenants",
                                      (json_int_t)cap.tenants));
        json_object_set_new(obj, "load",
                            json_pack("{s:f, s:f, s:I, s:I}", "ingress_mbps", load.ingress_mbps,
                                      "egress_mbps", load.egress_mbps, "partitions",
                                      (json_int_t)load.partitions, "tenants", (json_int_t)load.tenants));
        json_object_set_new(obj, "tenants", tenants);
        json_object_set_new(obj, "created_at", json_string(created));
        json_object_set_new(obj, "status_reported_at",
                            pkc->status_time_ms ? json_string(reported) : json_null());
        return obj;
}

void api_pkc_list(struct api_req *req)
{
        struct api_page page;
        if (!api_page_parse(req, &page))
                return;
        const char *region = region_filter(req);
        struct store_pkc *pkcs = NULL;
        int n = store_pkc_list(req->ms->store, region, page.after_seq, page.size + 1, &pkcs);
        if (n < 0) {
                api_error(req, 500, "internal", NULL, "the store failed: see the mothership log");
                return;
        }
        bool more = n > page.size;
        if (more)
                n = page.size;
        json_t *items = json_array();
        for (int i = 0; i < n; i++)
                json_array_append_new(items, pkc_json(req->ms, &pkcs[i]));
        json_t *list = json_pack("{s:o}", "physical_clusters", items);
        api_page_finish(list, more, n ? pkcs[n - 1].seq : 0);
        free(pkcs);
        api_json(req, 200, list);
}

void api_pkc_get(struct api_req *req)
{
        struct store_pkc pkc;
        int rc = strlen(req->id) <= STORE_ID_MAX ? store_pkc_get(req->ms->store, req->id, &pkc) : -ENOENT;
        if (rc == -ENOENT) {
                api_error(req, 404, "not_found", "id",
                          "no physical cluster %s (GET /v1/physical-clusters lists them)", req->id);
                return;
        }
        if (rc < 0) {
                api_error(req, 500, "internal", NULL, "the store failed: see the mothership log");
                return;
        }
        api_json(req, 200, pkc_json(req->ms, &pkc));
}

void api_satellite_list(struct api_req *req)
{
        struct api_page page;
        if (!api_page_parse(req, &page))
                return;
        const char *region = region_filter(req);
        struct store_satellite *sats = NULL;
        int n = store_satellite_list(req->ms->store, region, page.after_seq, page.size + 1, &sats);
        if (n < 0) {
                api_error(req, 500, "internal", NULL, "the store failed: see the mothership log");
                return;
        }
        bool more = n > page.size;
        if (more)
                n = page.size;
        int64_t now = clock_wall_ms();
        json_t *items = json_array();
        for (int i = 0; i < n; i++) {
                char last[32], first[32];
                api_time(sats[i].last_heartbeat_ms, last);
                api_time(sats[i].first_seen_ms, first);
                json_array_append_new(
                    items, json_pack("{s:s, s:s, s:s, s:s, s:I, s:b, s:i, s:s}", "id", sats[i].id, "region",
                                     sats[i].region, "version", sats[i].version, "last_heartbeat", last,
                                     "heartbeat_age_ms", (json_int_t)(now - sats[i].last_heartbeat_ms),
                                     "stale", summary_satellite_stale(&sats[i], now), "pkcs", sats[i].pkcs,
                                     "registered_at", first));
        }
        json_t *list = json_pack("{s:o}", "satellites", items);
        api_page_finish(list, more, n ? sats[n - 1].seq : 0);
        free(sats);
        api_json(req, 200, list);
}

void api_region_list(struct api_req *req)
{
        struct store_region *regions = NULL;
        int n = store_region_list(req->ms->store, clock_wall_ms() - MOTHERSHIP_STALE_MS, &regions);
        if (n < 0) {
                api_error(req, 500, "internal", NULL, "the store failed: see the mothership log");
                return;
        }
        json_t *items = json_array();
        for (int i = 0; i < n; i++)
                json_array_append_new(items, json_pack("{s:s, s:i, s:i, s:i, s:i}", "name", regions[i].name,
                                                       "satellites", regions[i].satellites,
                                                       "stale_satellites", regions[i].stale_satellites,
                                                       "physical_clusters", regions[i].physical_clusters,
                                                       "logical_clusters", regions[i].logical_clusters));
        free(regions);
        api_json(req, 200, json_pack("{s:o}", "regions", items));
}
