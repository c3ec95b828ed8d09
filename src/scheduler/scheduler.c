/* LKC placement: best fit over the PKCs of a region with room; see scheduler.h. */
#include "scheduler/scheduler.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"

static const char *const type_names[] = {
    [SCHEDULER_BASIC] = "basic", [SCHEDULER_STANDARD] = "standard", [SCHEDULER_DEDICATED] = "dedicated"};

const char *scheduler_lkc_type_name(enum scheduler_lkc_type type)
{
        return (unsigned)type < ARRAY_LEN(type_names) ? type_names[type] : "unknown";
}

int scheduler_lkc_type_parse(const char *name, enum scheduler_lkc_type *out)
{
        for (size_t i = 0; i < ARRAY_LEN(type_names); i++)
                if (name && strcmp(name, type_names[i]) == 0) {
                        *out = (enum scheduler_lkc_type)i;
                        return 0;
                }
        return -EINVAL;
}

/* Appends to a fixed buffer, truncating (with "...") rather than overflowing. */
struct text {
        char *buf;
        size_t size, len;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(struct text *t, const char *fmt, ...)
{
        if (t->len + 1 >= t->size)
                return;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->size - t->len, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if ((size_t)n >= t->size - t->len) {
                t->len = t->size - 1;
                if (t->size > 4)
                        memcpy(t->buf + t->size - 4, "...", 4);
        } else {
                t->len += (size_t)n;
        }
}

/* The share of capacity an LKC of <type> may fill: 1 for basic, less for standard. */
static double fill_limit(enum scheduler_lkc_type type)
{
        return type == SCHEDULER_STANDARD ? 1.0 - SCHEDULER_STANDARD_HEADROOM : 1.0;
}

/* Whether <req> fits on a PKC with <cap> and <load> under <limit>; if not, the first
 * dimension that does not fit goes into <why> ("ingress 95+10 > 100"). */
static bool fits(const struct scheduler_request *req, const struct psc_capacity *cap,
                 const struct scheduler_load *load, double limit, struct text *why)
{
        double lim_in = cap->ingress_mbps * limit, lim_out = cap->egress_mbps * limit;
        double lim_parts = floor((double)cap->partitions * limit),
               lim_tenants = floor((double)cap->tenants * limit);
        /* MB/s are sums of decimals: a sum that is over its limit by rounding only fits. */
        lim_in += 1e-9 * lim_in;
        lim_out += 1e-9 * lim_out;
        if (load->ingress_mbps + req->ingress_mbps > lim_in) {
                text_add(why, "ingress %g+%g > %g", load->ingress_mbps, req->ingress_mbps, lim_in);
                return false;
        }
        if (load->egress_mbps + req->egress_mbps > lim_out) {
                text_add(why, "egress %g+%g > %g", load->egress_mbps, req->egress_mbps, lim_out);
                return false;
        }
        if ((double)(load->partitions + req->partitions) > lim_parts) {
                text_add(why, "partitions %" PRId64 "+%" PRId64 " > %g", load->partitions, req->partitions,
                         lim_parts);
                return false;
        }
        if ((double)(load->tenants + 1) > lim_tenants) {
                text_add(why, "tenants %" PRId64 "+1 > %g", load->tenants, lim_tenants);
                return false;
        }
        return true;
}

/* Room left after placing <req>: the sum of the free fraction of each dimension (0 to 4;
 * smaller is a better fit). */
static double room_after(const struct scheduler_request *req, const struct psc_capacity *cap,
                         const struct scheduler_load *load)
{
        return (cap->ingress_mbps - load->ingress_mbps - req->ingress_mbps) / cap->ingress_mbps +
               (cap->egress_mbps - load->egress_mbps - req->egress_mbps) / cap->egress_mbps +
               (double)(cap->partitions - load->partitions - req->partitions) / (double)cap->partitions +
               (double)(cap->tenants - load->tenants - 1) / (double)cap->tenants;
}

static int fail(struct scheduler_decision *out, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct scheduler_decision *out, int rc, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
        va_end(ap);
        return rc;
}

static bool capacity_ok(const struct psc_capacity *cap)
{
        return cap->ingress_mbps > 0 && cap->egress_mbps > 0 && cap->partitions > 0 && cap->tenants > 0;
}

static int check_request(const struct scheduler_request *req, struct scheduler_decision *out)
{
        if (!req->lkc_id || !req->lkc_id[0])
                return fail(out, -EINVAL, "lkc_id: missing");
        if (!req->region || !req->region[0])
                return fail(out, -EINVAL, "region: missing");
        if ((unsigned)req->type >= ARRAY_LEN(type_names))
                return fail(out, -EINVAL, "type: must be basic, standard or dedicated");
        if (!isfinite(req->ingress_mbps) || req->ingress_mbps < 0)
                return fail(out, -EINVAL, "ingress_mbps: must be a number of MB/s, 0 or more");
        if (!isfinite(req->egress_mbps) || req->egress_mbps < 0)
                return fail(out, -EINVAL, "egress_mbps: must be a number of MB/s, 0 or more");
        if (req->partitions < 1)
                return fail(out, -EINVAL, "partitions: must be 1 or more");
        return 0;
}

/* "<prefix> 20% headroom" (+ ")" when <prefix> opens one), from SCHEDULER_STANDARD_HEADROOM. */
static const char *headroom_note(const char *prefix)
{
        static _Thread_local char note[64];
        snprintf(note, sizeof(note), "%s %g%% headroom%s", prefix, SCHEDULER_STANDARD_HEADROOM * 100,
                 strchr(prefix, '(') ? ")" : "");
        return note;
}

/* -E2BIG when <req> could not fit even an empty PKC of <cap> under <limit>. */
static int check_whole(const struct scheduler_request *req, const struct psc_capacity *cap, double limit,
                       const struct psc_capacity *dedicated, struct scheduler_decision *out)
{
        struct scheduler_load empty = {0};
        char whybuf[160] = "";
        struct text why = {whybuf, sizeof(whybuf), 0};
        if (fits(req, cap, &empty, limit, &why))
                return 0;
        const char *kind = req->type == SCHEDULER_DEDICATED ? "a dedicated" : "a multi-tenant";
        char hint[200] = "";
        if (req->type != SCHEDULER_DEDICATED) {
                struct text h = {hint, sizeof(hint), 0};
                struct text none = {whybuf, 0, 0};
                if (fits(req, dedicated, &empty, 1.0, &none))
                        text_add(&h, "; ask for type dedicated");
                else
                        text_add(&h,
                                 "; even a dedicated PKC takes at most ingress %g MB/s, egress %g MB/s, "
                                 "%" PRId64 " partitions",
                                 dedicated->ingress_mbps, dedicated->egress_mbps, dedicated->partitions);
        }
        return fail(out, -E2BIG,
                    "%s %s LKC of ingress %g MB/s, egress %g MB/s, %" PRId64
                    " partitions can never fit %s PKC "
                    "(%s%s)%s",
                    req->lkc_id, type_names[req->type], req->ingress_mbps, req->egress_mbps, req->partitions,
                    kind, whybuf, req->type == SCHEDULER_STANDARD ? headroom_note(", keeping") : "", hint);
}

int scheduler_place(const struct psc_policy *policy, const struct scheduler_request *req,
                    const struct scheduler_pkc *pkcs, size_t npkcs, struct scheduler_decision *out)
{
        memset(out, 0, sizeof(*out));
        int rc = check_request(req, out);
        if (rc < 0)
                return rc;
        struct psc_capacity mt, ded;
        psc_policy_capacity(policy, PSC_MULTI_TENANT, &mt);
        psc_policy_capacity(policy, PSC_DEDICATED, &ded);

        if (req->type == SCHEDULER_DEDICATED) {
                rc = check_whole(req, &ded, 1.0, &ded, out);
                if (rc < 0)
                        return rc;
                out->action = SCHEDULER_PLAN_NEW;
                out->new_type = PSC_DEDICATED;
                out->new_capacity = ded;
                snprintf(
                    out->reason, sizeof(out->reason),
                    "dedicated: a PKC of its own in region %s sized for ingress %g MB/s, egress %g MB/s, "
                    "%" PRId64 " partitions (a dedicated PKC takes up to %g/%g MB/s, %" PRId64
                    " partitions under policy %s)",
                    req->region, req->ingress_mbps, req->egress_mbps, req->partitions, ded.ingress_mbps,
                    ded.egress_mbps, ded.partitions, psc_policy_version(policy));
                return 0;
        }

        double limit = fill_limit(req->type);
        rc = check_whole(req, &mt, limit, &ded, out);
        if (rc < 0)
                return rc;

        /* Candidates in id order, so the "why not" list reads the same whatever the input
         * order; the choice itself only depends on (room, id). */
        const struct scheduler_pkc *best = NULL;
        double best_room = 0;
        int candidates = 0, with_room = 0, skipped_deleting = 0, skipped_dedicated = 0;
        char whybuf[700] = "";
        struct text why = {whybuf, sizeof(whybuf), 0};
        const char *prev_id = NULL;
        for (;;) {
                /* The next PKC of this region by id after <prev_id>. */
                const struct scheduler_pkc *next = NULL;
                for (size_t i = 0; i < npkcs; i++) {
                        const struct scheduler_pkc *p = &pkcs[i];
                        if (!p->id || !p->region || strcmp(p->region, req->region) != 0)
                                continue;
                        if (prev_id && strcmp(p->id, prev_id) <= 0)
                                continue;
                        if (!next || strcmp(p->id, next->id) < 0)
                                next = p;
                }
                if (!next)
                        break;
                prev_id = next->id;
                if (next->type == PSC_DEDICATED) {
                        skipped_dedicated++;
                        continue;
                }
                if (!next->accepting) {
                        skipped_deleting++;
                        continue;
                }
                candidates++;
                if (!capacity_ok(&next->capacity)) {
                        text_add(&why, "%s%s: no capacity", why.len ? "; " : "", next->id);
                        continue;
                }
                char onebuf[160] = "";
                struct text one = {onebuf, sizeof(onebuf), 0};
                if (!fits(req, &next->capacity, &next->load, limit, &one)) {
                        text_add(&why, "%s%s: %s", why.len ? "; " : "", next->id, onebuf);
                        continue;
                }
                with_room++;
                double room = room_after(req, &next->capacity, &next->load);
                if (!best || room < best_room) { /* ids ascend: a tie keeps the smaller id */
                        best = next;
                        best_room = room;
                }
        }

        char skipped[120] = "";
        if (skipped_deleting || skipped_dedicated) {
                struct text s = {skipped, sizeof(skipped), 0};
                text_add(&s, " (skipped:");
                if (skipped_deleting)
                        text_add(&s, " %d deleting", skipped_deleting);
                if (skipped_dedicated)
                        text_add(&s, "%s %d dedicated", skipped_deleting ? "," : "", skipped_dedicated);
                text_add(&s, ")");
        }
        const char *headroom = req->type == SCHEDULER_STANDARD ? headroom_note(" (standard keeps") : "";
        if (best) {
                const struct psc_capacity *c = &best->capacity;
                const struct scheduler_load *l = &best->load;
                out->action = SCHEDULER_PLACE_EXISTING;
                snprintf(out->pkc_id, sizeof(out->pkc_id), "%s", best->id);
                snprintf(
                    out->reason, sizeof(out->reason),
                    "placed on %s: best fit of %d PKC%s with room in region %s%s; after placement ingress "
                    "%g/%g MB/s, egress %g/%g, partitions %" PRId64 "/%" PRId64 ", tenants %" PRId64
                    "/%" PRId64 "%s",
                    best->id, with_room, with_room == 1 ? "" : "s", req->region, headroom,
                    l->ingress_mbps + req->ingress_mbps, c->ingress_mbps, l->egress_mbps + req->egress_mbps,
                    c->egress_mbps, l->partitions + req->partitions, c->partitions, l->tenants + 1,
                    c->tenants, skipped);
                return 0;
        }
        out->action = SCHEDULER_PLAN_NEW;
        out->new_type = PSC_MULTI_TENANT;
        out->new_capacity = mt;
        if (candidates == 0)
                snprintf(out->reason, sizeof(out->reason),
                         "new multi-tenant PKC: no multi-tenant PKC in region %s accepts LKCs%s", req->region,
                         skipped);
        else
                snprintf(out->reason, sizeof(out->reason),
                         "new multi-tenant PKC: none of %d PKC%s in region %s has room for ingress %g MB/s, "
                         "egress %g MB/s, %" PRId64 " partitions%s (%s)%s",
                         candidates, candidates == 1 ? "" : "s", req->region, req->ingress_mbps,
                         req->egress_mbps, req->partitions, headroom, whybuf, skipped);
        return 0;
}
