/* The operator: desired PSC vs observed world -> the next idempotent step. A pure
 * function of its arguments (no I/O, no clock), so every rule is unit-tested without
 * processes (tests/unit/test_operator.c). docs/satellite.md lists the steps in order. */
#include <string.h>

#include "base/alloc.h"
#include "satellite/satellite.h"

static const char *const step_names[] = {
    [OP_NONE] = "none",
    [OP_WAIT] = "wait",
    [OP_TEARDOWN] = "teardown",
    [OP_ALLOCATE_PORTS] = "allocate-ports",
    [OP_WRITE_BROKER_CONFIG] = "write-broker-config",
    [OP_WRITE_TENANTS] = "write-tenants",
    [OP_START_BROKER] = "start-broker",
    [OP_RESTART_BROKER] = "restart-broker",
    [OP_STOP_BROKER] = "stop-broker",
    [OP_WRITE_LB_CONFIG] = "write-lb-config",
    [OP_START_LB] = "start-lb",
    [OP_DELETE_TENANT_DATA] = "delete-tenant-data",
    [OP_MARK_APPLIED] = "mark-applied",
};

const char *op_step_name(enum op_step_kind kind)
{
        if ((size_t)kind >= ARRAY_LEN(step_names) || !step_names[kind])
                return "unknown";
        return step_names[kind];
}

static void set(struct op_step *out, enum op_step_kind kind, int broker, const char *why)
{
        out->kind = kind;
        out->broker = broker;
        out->wait_ms = 0;
        out->why = why;
}

/* Remembers the soonest wait among the things that cannot go on yet. */
static void note_wait(int64_t *wait_ms, int64_t ms)
{
        if (ms < 1)
                ms = 1;
        if (*wait_ms < 0 || ms < *wait_ms)
                *wait_ms = ms;
}

static bool others_healthy(const struct op_view *view, int count, int except)
{
        for (int i = 0; i < count && i < view->nbrokers; i++)
                if (i != except && !view->brokers[i].healthy)
                        return false;
        return true;
}

static bool all_healthy(const struct op_view *view, int count)
{
        if (view->nbrokers < count)
                return false;
        for (int i = 0; i < count; i++)
                if (!view->brokers[i].running || !view->brokers[i].healthy)
                        return false;
        return true;
}

static bool all_tenants_in_force(const struct op_view *view, int count)
{
        for (int i = 0; i < count; i++)
                if (!view->brokers[i].tenants_matches || !view->brokers[i].tenants_in_force)
                        return false;
        return true;
}

void operator_next_step(const struct op_view *view, const struct psc *psc, struct op_step *out)
{
        set(out, OP_NONE, -1, "converged");
        if (!psc || psc->deleted) {
                if (view->exists)
                        set(out, OP_TEARDOWN, -1, psc ? "the PSC is deleted" : "no PSC for this PKC");
                return;
        }
        if (view->exists && view->revision && psc->revision && strcmp(view->revision, psc->revision) != 0) {
                set(out, OP_TEARDOWN, -1, "a new revision: the PKC was re-created");
                return;
        }
        if (!view->ports_allocated) {
                set(out, OP_ALLOCATE_PORTS, -1, "new PKC");
                return;
        }
        int count = psc->broker_count;
        /* Scale down first: brokers beyond broker_count stop. */
        for (int i = count; i < view->nbrokers; i++)
                if (view->brokers[i].running) {
                        set(out, OP_STOP_BROKER, i, "beyond broker_count");
                        return;
                }
        /* Files first, so a start or restart reads the new ones. */
        for (int i = 0; i < count; i++) {
                const struct op_proc_view *b = &view->brokers[i];
                if (!b->config_matches) {
                        set(out, OP_WRITE_BROKER_CONFIG, i, "server.properties differs");
                        return;
                }
                if (!b->tenants_matches) {
                        set(out, OP_WRITE_TENANTS, i, "tenants differ");
                        return;
                }
        }
        if (!view->lb.config_matches) {
                set(out, OP_WRITE_LB_CONFIG, -1, "lb.conf differs");
                return;
        }
        int64_t wait_ms = -1;
        for (int i = 0; i < count; i++) {
                const struct op_proc_view *b = &view->brokers[i];
                if (!b->running) {
                        if (b->start_not_before_ms > view->now_ms) {
                                note_wait(&wait_ms, b->start_not_before_ms - view->now_ms);
                                continue;
                        }
                        set(out, OP_START_BROKER, i, "not running");
                        return;
                }
        }
        for (int i = 0; i < count; i++) {
                const struct op_proc_view *b = &view->brokers[i];
                if (b->running && !b->started_with_config) {
                        if (!others_healthy(view, count, i)) {
                                note_wait(&wait_ms, 100); /* one broker at a time */
                                continue;
                        }
                        set(out, OP_RESTART_BROKER, i, "server.properties changed");
                        return;
                }
        }
        if (!view->lb.running) {
                if (view->lb.start_not_before_ms > view->now_ms) {
                        note_wait(&wait_ms, view->lb.start_not_before_ms - view->now_ms);
                } else {
                        set(out, OP_START_LB, -1, "not running");
                        return;
                }
        }
        /* Removed tenants' data goes once the newest PSC is known and every broker runs
         * the tenants file without them; while a broker is down the sweep waits for it
         * without holding back mark-applied (tenant changes must not stall on it). */
        int64_t sweep_wait_ms = -1;
        if (view->tenant_data_due && view->caught_up && all_healthy(view, count)) {
                if (!all_tenants_in_force(view, count)) {
                        note_wait(&wait_ms, 100);
                } else if (view->tenant_data_not_before_ms > view->now_ms) {
                        note_wait(&sweep_wait_ms, view->tenant_data_not_before_ms - view->now_ms);
                } else {
                        set(out, OP_DELETE_TENANT_DATA, -1, "data of tenants not in the PSC may remain");
                        return;
                }
        }
        if (wait_ms < 0 && view->applied_generation != psc->generation) {
                set(out, OP_MARK_APPLIED, -1, "every file and process is in force");
                return;
        }
        if (wait_ms < 0)
                wait_ms = sweep_wait_ms;
        if (wait_ms >= 0) {
                set(out, OP_WAIT, -1, "backoff or a broker not healthy yet");
                out->wait_ms = wait_ms;
        }
}

bool operator_name_tenant(const char *name, size_t len, char id[OP_LKC_ID_LEN + 1])
{
        if (len <= OP_LKC_ID_LEN || memcmp(name, "lkc-", 4) != 0 || name[OP_LKC_ID_LEN] != '_')
                return false;
        for (int i = 4; i < OP_LKC_ID_LEN; i++) {
                char c = name[i];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
                        return false;
        }
        memcpy(id, name, OP_LKC_ID_LEN);
        id[OP_LKC_ID_LEN] = '\0';
        return true;
}

bool operator_name_is_stale(const struct psc *psc, const char *name, size_t len)
{
        char id[OP_LKC_ID_LEN + 1];
        if (!operator_name_tenant(name, len, id))
                return false;
        for (int i = 0; i < psc->ntenants; i++)
                if (psc->tenants[i].id && strcmp(psc->tenants[i].id, id) == 0)
                        return false;
        return true;
}

char *operator_tenant_set(const struct psc *psc)
{
        size_t len = 1;
        for (int i = 0; i < psc->ntenants; i++)
                len += strlen(psc->tenants[i].id ? psc->tenants[i].id : "") + 1;
        char *out = xmalloc(len);
        out[0] = '\0';
        for (int i = 0; i < psc->ntenants; i++) {
                if (i)
                        strcat(out, ",");
                strcat(out, psc->tenants[i].id ? psc->tenants[i].id : "");
        }
        return out;
}

bool operator_accepts(const struct psc *current, const char *applied_revision, int64_t applied_generation,
                      const struct psc *incoming)
{
        const char *rev = incoming->revision ? incoming->revision : "";
        if (current) {
                const char *cur = current->revision ? current->revision : "";
                if (strcmp(cur, rev) != 0)
                        return true;
                return incoming->generation > current->generation;
        }
        if (applied_revision && strcmp(applied_revision, rev) == 0)
                return incoming->generation >= applied_generation;
        return true;
}

enum psc_phase operator_phase(const struct op_view *view, const struct psc *psc, bool failed,
                              bool was_running)
{
        if (!psc || psc->deleted)
                return view->exists ? PSC_PHASE_DELETING : PSC_PHASE_DELETED;
        if (failed)
                return PSC_PHASE_FAILED;
        bool healthy = view->ports_allocated && view->lb.running && view->lb.healthy &&
                       view->nbrokers >= psc->broker_count;
        for (int i = 0; healthy && i < psc->broker_count; i++)
                healthy = view->brokers[i].running && view->brokers[i].healthy;
        if (healthy)
                return view->tenant_data_error ? PSC_PHASE_DEGRADED : PSC_PHASE_RUNNING;
        return was_running ? PSC_PHASE_DEGRADED : PSC_PHASE_PROVISIONING;
}

int64_t operator_backoff_ms(int failures)
{
        if (failures <= 0)
                return 0;
        int64_t ms = 100;
        for (int i = 1; i < failures && ms < 10000; i++)
                ms *= 2;
        return MIN(ms, 10000);
}

bool operator_tenants_removed(const char *set, const struct psc *psc)
{
        for (const char *p = set; *p;) {
                const char *end = strchr(p, ',');
                size_t len = end ? (size_t)(end - p) : strlen(p);
                bool found = false;
                for (int i = 0; i < psc->ntenants && !found; i++) {
                        const char *id = psc->tenants[i].id ? psc->tenants[i].id : "";
                        found = strlen(id) == len && memcmp(id, p, len) == 0;
                }
                if (!found)
                        return true;
                p = end ? end + 1 : p + len;
        }
        return false;
}
