/* The status summary: stratus.status in (pkc- keys: a PKC's status; sat- keys: a
 * satellite's heartbeat), the LKC and PKC phases the API shows out. Deletions complete
 * here: an LKC being deleted is gone once its PKC reports a generation without it, and a
 * deleted PKC is tombstoned once its satellite reports it deleted. */
#define LOG_TOPIC "summary"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "mothership/mothership.h"
#include "psc/psc.h"

bool summary_satellite_stale(const struct store_satellite *sat, int64_t now_wall_ms)
{
        return now_wall_ms - sat->last_heartbeat_ms > MOTHERSHIP_STALE_MS;
}

const char *summary_pkc_phase(const struct store_pkc *pkc)
{
        if (pkc->deleted && strcmp(pkc->phase, "deleted") != 0)
                return "deleting";
        return pkc->phase[0] ? pkc->phase : "provisioning";
}

const char *summary_lkc_phase(const struct store_lkc *lkc, const struct store_pkc *pkc)
{
        if (lkc->deleting)
                return "deleting";
        if (!pkc || pkc->observed_generation < lkc->first_generation)
                return "provisioning";
        if (strcmp(pkc->phase, "running") == 0 || strcmp(pkc->phase, "degraded") == 0 ||
            strcmp(pkc->phase, "failed") == 0)
                return pkc->phase;
        return "provisioning";
}

static void on_heartbeat(struct mothership *ms, const char *key, const char *value, size_t len)
{
        struct psc_heartbeat hb;
        memset(&hb, 0, sizeof(hb));
        char err[256];
        if (psc_heartbeat_parse(value, len, &hb, err, sizeof(err)) < 0) {
                log_warn("heartbeat ignored key=%s: %s", key, err);
                return;
        }
        struct store_satellite sat = {
            .last_heartbeat_ms = hb.time_ms, .first_seen_ms = clock_wall_ms(), .pkcs = hb.pkcs};
        const char *id = hb.satellite ? hb.satellite : key;
        bool fits =
            strlen(id) <= STORE_SATELLITE_MAX && (!hb.region || strlen(hb.region) <= STORE_REGION_MAX);
        snprintf(sat.id, sizeof(sat.id), "%.64s", id);
        snprintf(sat.region, sizeof(sat.region), "%.32s", hb.region ? hb.region : "");
        snprintf(sat.version, sizeof(sat.version), "%.31s", hb.version ? hb.version : "");
        psc_heartbeat_deinit(&hb);
        if (!fits || !sat.region[0]) {
                log_warn("heartbeat ignored key=%s: satellite id or region missing or too long", key);
                return;
        }
        if (strcmp(sat.id, key) != 0) {
                log_warn("heartbeat ignored: key=%s names satellite=%s", key, sat.id);
                return;
        }
        int rc = store_satellite_upsert(ms->store, &sat);
        if (rc == 1) {
                log_info("satellite registered id=%s region=%s version=%s", sat.id, sat.region, sat.version);
                provision_ensure_topic(ms, sat.id);
        }
}

/* Removes the LKCs of <pkc> whose deletion it has applied; for a deleted PKC reported
 * deleted, removes the PKC itself and queues its tombstone. In the open transaction. */
static int complete_deletions(struct mothership *ms, const struct store_pkc *pkc)
{
        struct store_lkc *lkcs = NULL;
        int n = store_lkc_list(ms->store, pkc->id, 0, 0, &lkcs);
        if (n < 0)
                return n;
        bool pkc_gone = pkc->deleted && strcmp(pkc->phase, "deleted") == 0;
        for (int i = 0; i < n; i++) {
                const struct store_lkc *lkc = &lkcs[i];
                if (!lkc->deleting || (!pkc_gone && pkc->observed_generation < lkc->delete_generation))
                        continue;
                if (store_api_key_delete_all(ms->store, lkc->id) < 0 ||
                    store_lkc_delete(ms->store, lkc->id) < 0) {
                        free(lkcs);
                        return -EIO;
                }
                log_info("cluster deleted id=%s pkc=%s observed_generation=%lld", lkc->id, pkc->id,
                         (long long)pkc->observed_generation);
        }
        free(lkcs);
        if (pkc_gone) {
                if (store_pkc_delete(ms->store, pkc->id) < 0)
                        return -EIO;
                provision_queue_tombstone(ms, pkc->satellite, pkc->id);
                log_info("physical cluster deleted pkc=%s satellite=%s", pkc->id, pkc->satellite);
        }
        return 0;
}

static void on_pkc_status(struct mothership *ms, const char *key, const char *value, size_t len)
{
        struct psc_status st;
        psc_status_init(&st);
        char err[256];
        if (psc_status_parse(value, len, &st, err, sizeof(err)) < 0) {
                log_warn("status ignored key=%s: %s", key, err);
                psc_status_deinit(&st);
                return;
        }
        struct store_pkc pkc;
        int rc = store_pkc_get(ms->store, key, &pkc);
        if (rc < 0 || (st.pkc_id && strcmp(st.pkc_id, key) != 0) ||
            (st.revision && strcmp(st.revision, pkc.revision) != 0)) {
                /* Unknown (deleted earlier, or from before a re-creation): nothing to do. */
                log_debug("status ignored pkc=%s (unknown or another revision)", key);
                psc_status_deinit(&st);
                return;
        }
        /* Replayed older statuses (the topic is read from the beginning) do not win over
         * a newer one already applied. */
        if (st.observed_generation < pkc.observed_generation ||
            (st.observed_generation == pkc.observed_generation && st.time_ms < pkc.status_time_ms)) {
                psc_status_deinit(&st);
                return;
        }
        const char *old_phase = pkc.phase[0] ? pkc.phase : "none";
        char was[16];
        snprintf(was, sizeof(was), "%s", old_phase);
        int64_t was_generation = pkc.observed_generation;
        pkc.observed_generation = st.observed_generation;
        snprintf(pkc.phase, sizeof(pkc.phase), "%s", psc_phase_name(st.phase));
        snprintf(pkc.bootstrap, sizeof(pkc.bootstrap), "%s", st.bootstrap ? st.bootstrap : "");
        snprintf(pkc.message, sizeof(pkc.message), "%s", st.message ? st.message : "");
        pkc.brokers = st.nbrokers;
        pkc.healthy_brokers = 0;
        for (int i = 0; i < st.nbrokers; i++)
                pkc.healthy_brokers += st.brokers[i].healthy ? 1 : 0;
        pkc.lb_healthy = st.lb_healthy;
        pkc.status_time_ms = st.time_ms;
        psc_status_deinit(&st);
        if (store_begin(ms->store) < 0)
                return;
        if (store_pkc_update(ms->store, &pkc) < 0 || complete_deletions(ms, &pkc) < 0 ||
            store_commit(ms->store) < 0) {
                store_rollback(ms->store);
                provision_discard(ms);
                log_warn("status of pkc=%s not stored (the store failed)", pkc.id);
                return;
        }
        provision_flush(ms);
        if (strcmp(was, pkc.phase) != 0 || was_generation != pkc.observed_generation)
                log_info("status pkc=%s phase=%s observed_generation=%lld generation=%lld bootstrap=%s",
                         pkc.id, pkc.phase, (long long)pkc.observed_generation, (long long)pkc.generation,
                         pkc.bootstrap[0] ? pkc.bootstrap : "-");
}

void summary_on_status(void *arg, const char *topic, const char *key, size_t key_len, const char *value,
                       size_t value_len, int64_t offset)
{
        struct mothership *ms = arg;
        if (!key || !value || key_len == 0 || key_len > 127)
                return; /* tombstones and unkeyed messages carry nothing for us */
        char k[128];
        memcpy(k, key, key_len);
        k[key_len] = '\0';
        if (strncmp(k, "sat-", 4) == 0)
                on_heartbeat(ms, k, value, value_len);
        else if (strncmp(k, "pkc-", 4) == 0)
                on_pkc_status(ms, k, value, value_len);
        else
                log_debug("status topic: key=%s ignored offset=%lld", k, (long long)offset);
}

void summary_on_caught_up(void *arg, const char *topic)
{
        log_info("caught up with topic=%s", topic);
}
