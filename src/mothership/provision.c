/* Placement and PSC authoring: choose a PKC for a new LKC (src/scheduler), build the
 * partial PSC of a PKC from the store, complete it (src/psc), keep it in the outbox table
 * and publish it to psc.<satellite> after the transaction commits. */
#define LOG_TOPIC "provision"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "bus/bus.h"
#include "mothership/mothership.h"
#include "psc/psc.h"
#include "scheduler/scheduler.h"

#define ENSURE_TOPIC_TIMEOUT_MS 5000

static void random_bytes(void *out, size_t n)
{
        size_t got = 0;
        while (got < n) {
                ssize_t r = getrandom((char *)out + got, n - got, 0);
                ASSERT(r > 0 || errno == EINTR);
                if (r > 0)
                        got += (size_t)r;
        }
}

void provision_random_text(char *out, size_t n, bool upper)
{
        static const char lower_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
        static const char upper_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        unsigned char raw[128];
        ASSERT(n <= sizeof(raw));
        random_bytes(raw, n);
        for (size_t i = 0; i < n; i++)
                out[i] = (upper ? upper_alphabet : lower_alphabet)[raw[i] & 31];
        out[n] = '\0';
}

void provision_random_id(const char *prefix, char *out)
{
        size_t p = strlen(prefix);
        memcpy(out, prefix, p);
        provision_random_text(out + p, 6, false);
}

int provision_load(struct mothership *ms, const char *pkc_id, const char *except_lkc,
                   struct provision_load *out)
{
        struct store_load load;
        int rc = store_pkc_load(ms->store, pkc_id, except_lkc, &load);
        out->ingress_mbps = load.ingress_mbps;
        out->egress_mbps = load.egress_mbps;
        out->partitions = load.partitions;
        out->tenants = load.tenants;
        return rc;
}

/* ---- the partial PSC ------------------------------------------------------------------- */

/* Request and connection limits per LKC type (docs/api.md "Quotas"); the byte rates come
 * from the LKC's sizing. */
static void tenant_quotas(const struct store_lkc *lkc, struct psc_quotas *q)
{
        q->produce_bytes_per_sec = lkc->ingress_mbps * 1e6; /* MB = 10^6 bytes */
        q->fetch_bytes_per_sec = lkc->egress_mbps * 1e6;
        q->burst_seconds = 1;
        q->max_partitions = lkc->partitions;
        if (strcmp(lkc->type, "basic") == 0) {
                q->requests_per_sec = 2000;
                q->max_connections = 500;
                q->connections_per_sec = 50;
        } else if (strcmp(lkc->type, "standard") == 0) {
                q->requests_per_sec = 10000;
                q->max_connections = 2000;
                q->connections_per_sec = 200;
        } else {
                q->requests_per_sec = -1;
                q->max_connections = -1;
                q->connections_per_sec = -1;
        }
}

static void copy_scram(struct psc_scram *dst, const struct store_scram *src)
{
        dst->salt = xstrdup(src->salt);
        dst->iterations = src->iterations;
        dst->stored_key = xstrdup(src->stored_key);
        dst->server_key = xstrdup(src->server_key);
}

static int build_partial(struct mothership *ms, const struct store_pkc *pkc, struct psc *psc)
{
        psc_init(psc);
        psc->id = xstrdup(pkc->id);
        psc->product = xstrdup("kafka");
        psc->satellite = xstrdup(pkc->satellite);
        psc->region = xstrdup(pkc->region);
        psc->generation = pkc->generation;
        psc->revision = xstrdup(pkc->revision);
        psc->deleted = pkc->deleted;
        psc->type = strcmp(pkc->type, "dedicated") == 0 ? PSC_DEDICATED : PSC_MULTI_TENANT;
        if (pkc->deleted)
                return 0;
        struct store_lkc *lkcs = NULL;
        int n = store_lkc_list(ms->store, pkc->id, 0, 0, &lkcs);
        if (n < 0)
                return n;
        psc->tenants = xcalloc((size_t)(n ? n : 1), sizeof(*psc->tenants));
        for (int i = 0; i < n; i++) {
                const struct store_lkc *lkc = &lkcs[i];
                if (lkc->deleting)
                        continue;
                struct psc_tenant *t = &psc->tenants[psc->ntenants++];
                t->id = xstrdup(lkc->id);
                tenant_quotas(lkc, &t->quotas);
                psc->ingress_mbps += lkc->ingress_mbps;
                psc->egress_mbps += lkc->egress_mbps;
                psc->partitions += lkc->partitions;
                struct store_api_key *keys = NULL;
                int nkeys = store_api_key_list(ms->store, lkc->id, 0, 0, &keys);
                if (nkeys < 0) {
                        free(lkcs);
                        return nkeys;
                }
                t->api_keys = xcalloc((size_t)(nkeys ? nkeys : 1), sizeof(*t->api_keys));
                for (int k = 0; k < nkeys; k++) {
                        struct psc_api_key *ak = &t->api_keys[t->napi_keys++];
                        ak->key = xstrdup(keys[k].key);
                        ak->has_sha256 = ak->has_sha512 = true;
                        copy_scram(&ak->sha256, &keys[k].sha256);
                        copy_scram(&ak->sha512, &keys[k].sha512);
                }
                free(keys);
        }
        free(lkcs);
        return 0;
}

/* ---- the outbox ------------------------------------------------------------------------ */

static void queue(struct mothership *ms, const char *satellite, const char *pkc_id, char *json)
{
        ms->outbox = xrealloc(ms->outbox, (ms->noutbox + 1) * sizeof(*ms->outbox));
        ms->outbox[ms->noutbox++] = (struct outbox_entry){
            .satellite = xstrdup(satellite),
            .pkc_id = xstrdup(pkc_id),
            .json = json,
        };
}

void provision_queue_tombstone(struct mothership *ms, const char *satellite, const char *pkc_id)
{
        queue(ms, satellite, pkc_id, NULL);
}

int provision_pkc_changed(struct mothership *ms, const char *pkc_id, int64_t *generation, char *err,
                          size_t err_len)
{
        struct store_pkc pkc;
        int rc = store_pkc_get(ms->store, pkc_id, &pkc);
        if (rc < 0) {
                snprintf(err, err_len, "physical cluster %s: %s", pkc_id,
                         rc == -ENOENT ? "not found" : "store failed");
                return rc;
        }
        pkc.generation++;
        if ((rc = store_pkc_update(ms->store, &pkc)) < 0) {
                snprintf(err, err_len, "physical cluster %s: store failed", pkc_id);
                return rc;
        }
        struct psc partial, full;
        if ((rc = build_partial(ms, &pkc, &partial)) < 0) {
                psc_deinit(&partial);
                snprintf(err, err_len, "physical cluster %s: store failed", pkc_id);
                return rc;
        }
        rc = psc_complete(&partial, ms->policy, &full, err, err_len);
        psc_deinit(&partial);
        if (rc < 0)
                return -EINVAL;
        char *json = psc_to_json(&full);
        psc_deinit(&full);
        if (store_psc_put(ms->store, pkc.id, pkc.generation, json) < 0) {
                free(json);
                snprintf(err, err_len, "physical cluster %s: store failed", pkc_id);
                return -EIO;
        }
        queue(ms, pkc.satellite, pkc.id, json);
        if (generation)
                *generation = pkc.generation;
        return 0;
}

static void entry_free(struct outbox_entry *e)
{
        free(e->satellite);
        free(e->pkc_id);
        free(e->json);
}

int provision_ensure_topic(struct mothership *ms, const char *satellite)
{
        char *topic = psc_topic(satellite);
        if (map_get(&ms->ensured_topics, topic, strlen(topic))) {
                free(topic);
                return 0;
        }
        /* Compacted: the newest PSC per PKC (docs/api.md "Transport"). A tombstone a
         * satellite misses (down longer than delete.retention.ms) is still honoured: it
         * deletes every PKC the topic no longer names once it has read it all. */
        static const char *const configs[] = {"cleanup.policy", "compact", "segment.ms", "3600000", NULL};
        char err[512];
        int rc = bus_ensure_topic(ms->bus, topic, 1, configs, ENSURE_TOPIC_TIMEOUT_MS, err, sizeof(err));
        if (rc < 0)
                log_warn("cannot create topic=%s: %s (retried with the next PSC)", topic, err);
        else
                map_put(&ms->ensured_topics, topic, strlen(topic), (void *)1);
        free(topic);
        return rc;
}

static void produce(struct mothership *ms, const char *satellite, const char *pkc_id, const char *json)
{
        provision_ensure_topic(ms, satellite);
        char *topic = psc_topic(satellite);
        int rc = bus_produce(ms->bus, topic, pkc_id, json, json ? strlen(json) : 0);
        if (rc < 0)
                log_warn("cannot queue PSC pkc=%s topic=%s: %s (republished at the next start)", pkc_id,
                         topic, strerror(-rc));
        else
                log_info("PSC published pkc=%s topic=%s%s", pkc_id, topic, json ? "" : " tombstone");
        free(topic);
}

void provision_flush(struct mothership *ms)
{
        for (size_t i = 0; i < ms->noutbox; i++) {
                produce(ms, ms->outbox[i].satellite, ms->outbox[i].pkc_id, ms->outbox[i].json);
                entry_free(&ms->outbox[i]);
        }
        free(ms->outbox);
        ms->outbox = NULL;
        ms->noutbox = 0;
}

void provision_discard(struct mothership *ms)
{
        for (size_t i = 0; i < ms->noutbox; i++)
                entry_free(&ms->outbox[i]);
        free(ms->outbox);
        ms->outbox = NULL;
        ms->noutbox = 0;
}

static void republish_one(void *arg, const char *pkc_id, const char *satellite, int64_t generation,
                          const char *json)
{
        produce(arg, satellite, pkc_id, json);
}

int provision_republish_all(struct mothership *ms)
{
        return store_psc_each(ms->store, republish_one, ms);
}

/* ---- placement ------------------------------------------------------------------------- */

/* The satellite of <region> with the freshest heartbeat into <out>. Returns 0 or -ENOENT. */
static int pick_satellite(struct mothership *ms, const char *region, char *out, size_t len)
{
        struct store_satellite *sats = NULL;
        int n = store_satellite_list(ms->store, region, 0, 0, &sats);
        if (n < 0)
                return n;
        int best = -1;
        for (int i = 0; i < n; i++)
                if (best < 0 || sats[i].last_heartbeat_ms > sats[best].last_heartbeat_ms)
                        best = i;
        if (best >= 0)
                snprintf(out, len, "%s", sats[best].id);
        free(sats);
        return best >= 0 ? 0 : -ENOENT;
}

static void known_regions(struct mothership *ms, char *out, size_t len)
{
        struct store_region *regions = NULL;
        int n = store_region_list(ms->store, 0, &regions);
        size_t used = 0;
        out[0] = '\0';
        for (int i = 0; i < n && used < len; i++)
                used += (size_t)snprintf(out + used, len - used, "%s%s", i ? ", " : "", regions[i].name);
        if (n <= 0)
                snprintf(out, len, "none yet: start a satellite (stratus satellite --region R)");
        free(regions);
}

static int new_pkc(struct mothership *ms, const struct store_lkc *lkc, const char *satellite,
                   struct store_pkc *pkc)
{
        memset(pkc, 0, sizeof(*pkc));
        snprintf(pkc->region, sizeof(pkc->region), "%s", lkc->region);
        snprintf(pkc->type, sizeof(pkc->type), "%s",
                 strcmp(lkc->type, "dedicated") == 0 ? "dedicated" : "multi_tenant");
        snprintf(pkc->satellite, sizeof(pkc->satellite), "%s", satellite);
        provision_random_text(pkc->revision, 16, false);
        pkc->generation = 0; /* provision_pkc_changed() makes it 1 */
        pkc->created_at_ms = clock_wall_ms();
        for (int attempt = 0; attempt < 8; attempt++) {
                provision_random_id("pkc-", pkc->id);
                int rc = store_pkc_insert(ms->store, pkc);
                if (rc != -EEXIST)
                        return rc;
        }
        return -EEXIST;
}

int provision_place(struct mothership *ms, struct store_lkc *lkc, char *err, size_t err_len,
                    const char **field)
{
        *field = NULL;
        char satellite[STORE_SATELLITE_MAX + 1];
        int rc = pick_satellite(ms, lkc->region, satellite, sizeof(satellite));
        if (rc == -ENOENT) {
                char regions[512];
                known_regions(ms, regions, sizeof(regions));
                snprintf(err, err_len, "no satellite serves region \"%s\"; known regions: %s", lkc->region,
                         regions);
                *field = "region";
                return -EINVAL;
        }
        if (rc < 0) {
                snprintf(err, err_len, "the store failed");
                return -EIO;
        }
        struct scheduler_request sreq = {.lkc_id = lkc->id[0] ? lkc->id : "the new cluster",
                                         .region = lkc->region,
                                         .ingress_mbps = lkc->ingress_mbps,
                                         .egress_mbps = lkc->egress_mbps,
                                         .partitions = lkc->partitions};
        if (scheduler_lkc_type_parse(lkc->type, &sreq.type) < 0) {
                snprintf(err, err_len, "type must be one of basic, standard, dedicated");
                *field = "type";
                return -EINVAL;
        }
        struct store_pkc_loaded *pkcs = NULL;
        int n = store_pkc_list_loaded(ms->store, lkc->region, &pkcs);
        if (n < 0) {
                snprintf(err, err_len, "the store failed");
                return -EIO;
        }
        struct scheduler_pkc *cands = xcalloc((size_t)(n ? n : 1), sizeof(*cands));
        for (int i = 0; i < n; i++) {
                const struct store_pkc *p = &pkcs[i].pkc;
                const struct store_load *load = &pkcs[i].load;
                struct scheduler_pkc *c = &cands[i];
                c->id = p->id;
                c->region = p->region;
                c->type = strcmp(p->type, "dedicated") == 0 ? PSC_DEDICATED : PSC_MULTI_TENANT;
                psc_policy_capacity(ms->policy, c->type, &c->capacity);
                c->load = (struct scheduler_load){load->ingress_mbps, load->egress_mbps, load->partitions,
                                                  load->tenants};
                c->accepting = !p->deleted;
        }
        struct scheduler_decision decision;
        rc = scheduler_place(ms->policy, &sreq, cands, (size_t)n, &decision);
        free(cands);
        if (rc < 0) {
                free(pkcs);
                snprintf(err, err_len, "%s", decision.reason);
                struct psc_capacity cap;
                psc_policy_capacity(
                    ms->policy, sreq.type == SCHEDULER_DEDICATED ? PSC_DEDICATED : PSC_MULTI_TENANT, &cap);
                *field = lkc->ingress_mbps > cap.ingress_mbps ? "ingress_mbps"
                         : lkc->egress_mbps > cap.egress_mbps ? "egress_mbps"
                         : lkc->partitions > cap.partitions   ? "partitions"
                                                              : NULL;
                return -EINVAL;
        }
        snprintf(lkc->reason, sizeof(lkc->reason), "%s", decision.reason);
        struct store_pkc chosen;
        bool found = false;
        if (decision.action == SCHEDULER_PLACE_EXISTING) {
                for (int i = 0; i < n && !found; i++)
                        if (strcmp(pkcs[i].pkc.id, decision.pkc_id) == 0) {
                                chosen = pkcs[i].pkc;
                                found = true;
                        }
                ASSERT(found);
        }
        free(pkcs);
        if (!found) {
                struct store_lkc as = *lkc;
                snprintf(as.type, sizeof(as.type), "%s",
                         decision.new_type == PSC_DEDICATED ? "dedicated" : "basic");
                if ((rc = new_pkc(ms, &as, satellite, &chosen)) < 0) {
                        snprintf(err, err_len, "the store failed");
                        return -EIO;
                }
                log_info("physical cluster planned pkc=%s region=%s type=%s satellite=%s", chosen.id,
                         chosen.region, chosen.type, chosen.satellite);
        }
        snprintf(lkc->pkc_id, sizeof(lkc->pkc_id), "%s", chosen.id);
        lkc->first_generation = chosen.generation + 1;
        return 0;
}
