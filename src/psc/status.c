/* The status a satellite reports for one PKC and the heartbeat it sends for itself, both on
 * the shared topic stratus.status (docs/psc.md "Status" and "Heartbeat"); see psc.h. */
#include "psc/psc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "psc/psc_json.h"

#define ERR(...) ((err && err_len) ? (void)snprintf(err, err_len, __VA_ARGS__) : (void)0)

static const char *const phase_names[] = {
    [PSC_PHASE_PROVISIONING] = "provisioning", [PSC_PHASE_RUNNING] = "running",
    [PSC_PHASE_DEGRADED] = "degraded",         [PSC_PHASE_DELETING] = "deleting",
    [PSC_PHASE_DELETED] = "deleted",           [PSC_PHASE_FAILED] = "failed",
};

const char *psc_phase_name(enum psc_phase phase)
{
        if ((unsigned)phase >= ARRAY_LEN(phase_names))
                return "unknown";
        return phase_names[phase];
}

int psc_phase_parse(const char *name, enum psc_phase *out)
{
        for (size_t i = 0; i < ARRAY_LEN(phase_names); i++)
                if (name && strcmp(name, phase_names[i]) == 0) {
                        *out = (enum psc_phase)i;
                        return 0;
                }
        return -EINVAL;
}

/* The optional "api_version" and "kind" of a status or heartbeat: when present they must
 * be ours, so a PSC or another document on the topic is never read as one. */
static int check_kind(json_t *root, const char *kind, char *err, size_t err_len)
{
        json_t *v = json_object_get(root, "api_version");
        if (v && (!json_is_string(v) || strcmp(json_string_value(v), PSC_API_VERSION) != 0)) {
                ERR("api_version: must be \"%s\"", PSC_API_VERSION);
                return -EINVAL;
        }
        v = json_object_get(root, "kind");
        if (v && (!json_is_string(v) || strcmp(json_string_value(v), kind) != 0)) {
                ERR("kind: must be \"%s\"", kind);
                return -EINVAL;
        }
        return 0;
}

/* ---- status ------------------------------------------------------------------------- */

void psc_status_init(struct psc_status *st)
{
        memset(st, 0, sizeof(*st));
}

void psc_status_deinit(struct psc_status *st)
{
        free(st->pkc_id);
        free(st->satellite);
        free(st->revision);
        free(st->message);
        free(st->bootstrap);
        for (int i = 0; i < st->nbrokers; i++)
                free(st->brokers[i].address);
        free(st->brokers);
        memset(st, 0, sizeof(*st));
}

static int parse_broker(json_t *bj, const char *path, struct psc_broker_status *b, char *err, size_t err_len)
{
        static const char *const known[] = {"id", "healthy", "pid", "restarts", "address", NULL};
        int64_t id = 0, pid = 0, restarts = 0;
        if (pj_fields(bj, path, known, err, err_len) < 0 ||
            pj_integer(bj, path, "id", true, 0, INT32_MAX, &id, err, err_len) < 0 ||
            pj_bool(bj, path, "healthy", true, &b->healthy, err, err_len) < 0 ||
            pj_integer(bj, path, "pid", false, 0, INT32_MAX, &pid, err, err_len) < 0 ||
            pj_integer(bj, path, "restarts", false, 0, INT32_MAX, &restarts, err, err_len) < 0 ||
            pj_string(bj, path, "address", false, &b->address, err, err_len) < 0)
                return -EINVAL;
        b->id = (int)id;
        b->pid = (int)pid;
        b->restarts = (int)restarts;
        return 0;
}

int psc_status_parse(const char *json, size_t len, struct psc_status *out, char *err, size_t err_len)
{
        static const char *const known[] = {
            "api_version", "kind",    "pkc_id",    "satellite",  "revision", "observed_generation",
            "phase",       "message", "bootstrap", "lb_healthy", "brokers",  "time_ms",
            NULL};
        psc_status_init(out);
        json_t *root = pj_load(json, len, "status", err, err_len);
        if (!root)
                return -EINVAL;
        int rc = -EINVAL;
        char *phase = NULL;
        if (pj_fields(root, "", known, err, err_len) < 0 ||
            check_kind(root, PSC_STATUS_KIND, err, err_len) < 0 ||
            pj_string(root, "", "pkc_id", true, &out->pkc_id, err, err_len) < 0 ||
            pj_string(root, "", "satellite", true, &out->satellite, err, err_len) < 0 ||
            pj_string(root, "", "revision", false, &out->revision, err, err_len) < 0 ||
            pj_integer(root, "", "observed_generation", true, 0, INT64_MAX, &out->observed_generation, err,
                       err_len) < 0 ||
            pj_string(root, "", "phase", true, &phase, err, err_len) < 0 ||
            pj_string(root, "", "message", false, &out->message, err, err_len) < 0 ||
            pj_string(root, "", "bootstrap", false, &out->bootstrap, err, err_len) < 0 ||
            pj_bool(root, "", "lb_healthy", false, &out->lb_healthy, err, err_len) < 0 ||
            pj_integer(root, "", "time_ms", false, 0, INT64_MAX, &out->time_ms, err, err_len) < 0)
                goto out;
        if (psc_phase_parse(phase, &out->phase) < 0) {
                ERR("phase: \"%s\" is not provisioning, running, degraded, deleting, deleted or failed",
                    phase);
                goto out;
        }
        json_t *brokers = json_object_get(root, "brokers");
        if (brokers && !json_is_null(brokers)) {
                if (!json_is_array(brokers)) {
                        ERR("brokers: must be an array");
                        goto out;
                }
                size_t n = json_array_size(brokers);
                out->brokers = n ? xcalloc(n, sizeof(*out->brokers)) : NULL;
                for (size_t i = 0; i < n; i++) {
                        char where[64];
                        snprintf(where, sizeof(where), "brokers[%zu]", i);
                        out->nbrokers++;
                        if (parse_broker(json_array_get(brokers, i), where, &out->brokers[i], err, err_len) <
                            0)
                                goto out;
                }
        }
        rc = 0;
out:
        free(phase);
        json_decref(root);
        if (rc < 0)
                psc_status_deinit(out);
        return rc;
}

char *psc_status_to_json(const struct psc_status *st)
{
        json_t *o = json_object();
        pj_set_str(o, "api_version", PSC_API_VERSION);
        pj_set_str(o, "kind", PSC_STATUS_KIND);
        pj_set_str(o, "pkc_id", st->pkc_id);
        pj_set_str(o, "satellite", st->satellite);
        pj_set_str(o, "revision", st->revision);
        pj_set(o, "observed_generation", json_integer(st->observed_generation));
        pj_set_str(o, "phase", psc_phase_name(st->phase));
        pj_set_str(o, "message", st->message);
        pj_set_str(o, "bootstrap", st->bootstrap);
        pj_set(o, "lb_healthy", json_boolean(st->lb_healthy));
        json_t *brokers = json_array();
        for (int i = 0; i < st->nbrokers; i++) {
                const struct psc_broker_status *b = &st->brokers[i];
                json_t *bo = json_object();
                pj_set(bo, "id", json_integer(b->id));
                pj_set(bo, "healthy", json_boolean(b->healthy));
                pj_set(bo, "pid", json_integer(b->pid));
                pj_set(bo, "restarts", json_integer(b->restarts));
                pj_set_str(bo, "address", b->address);
                json_array_append_new(brokers, bo);
        }
        pj_set(o, "brokers", brokers);
        pj_set(o, "time_ms", json_integer(st->time_ms));
        return pj_dump(o);
}

/* ---- heartbeat ---------------------------------------------------------------------- */

void psc_heartbeat_deinit(struct psc_heartbeat *hb)
{
        free(hb->satellite);
        free(hb->region);
        free(hb->version);
        memset(hb, 0, sizeof(*hb));
}

int psc_heartbeat_parse(const char *json, size_t len, struct psc_heartbeat *out, char *err, size_t err_len)
{
        static const char *const known[] = {"api_version", "kind",    "satellite", "region",
                                            "version",     "time_ms", "pkcs",      NULL};
        memset(out, 0, sizeof(*out));
        json_t *root = pj_load(json, len, "heartbeat", err, err_len);
        if (!root)
                return -EINVAL;
        int64_t pkcs = 0;
        int rc = -EINVAL;
        if (pj_fields(root, "", known, err, err_len) < 0 ||
            check_kind(root, PSC_HEARTBEAT_KIND, err, err_len) < 0 ||
            pj_string(root, "", "satellite", true, &out->satellite, err, err_len) < 0 ||
            pj_string(root, "", "region", true, &out->region, err, err_len) < 0 ||
            pj_string(root, "", "version", false, &out->version, err, err_len) < 0 ||
            pj_integer(root, "", "time_ms", true, 0, INT64_MAX, &out->time_ms, err, err_len) < 0 ||
            pj_integer(root, "", "pkcs", false, 0, INT32_MAX, &pkcs, err, err_len) < 0)
                goto out;
        out->pkcs = (int)pkcs;
        rc = 0;
out:
        json_decref(root);
        if (rc < 0)
                psc_heartbeat_deinit(out);
        return rc;
}

char *psc_heartbeat_to_json(const struct psc_heartbeat *hb)
{
        json_t *o = json_object();
        pj_set_str(o, "api_version", PSC_API_VERSION);
        pj_set_str(o, "kind", PSC_HEARTBEAT_KIND);
        pj_set_str(o, "satellite", hb->satellite);
        pj_set_str(o, "region", hb->region);
        pj_set_str(o, "version", hb->version);
        pj_set(o, "time_ms", json_integer(hb->time_ms));
        pj_set(o, "pkcs", json_integer(hb->pkcs));
        return pj_dump(o);
}
