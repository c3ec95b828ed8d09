/* The scheduler: where a new logical cluster (LKC) goes. A pure, deterministic function of
 * the request, the PKCs the mothership knows with their capacity and load, and the
 * completion policy: the same inputs in any order give the same decision and the same
 * reason text, which the mothership records with the LKC.
 *
 * Rules (src/scheduler/README.md has the why):
 *   - basic and standard are multi-tenant: they go onto an accepting multi-tenant PKC of
 *     their region with room in every dimension (ingress, egress, partitions, tenants);
 *     standard keeps SCHEDULER_STANDARD_HEADROOM of every dimension free after placement,
 *     basic may fill a PKC to its capacity;
 *   - among PKCs with room, best fit: the one with the least room left after placement
 *     (the sum over the four dimensions of the free fraction), ties broken by the smaller id;
 *   - none with room: plan a new multi-tenant PKC;
 *   - dedicated: always a new PKC of its own, sized from the request;
 *   - a request bigger than a whole PKC of its kind can take is an error (-E2BIG) whose
 *     reason the API returns. */
#ifndef STRATUS_SCHEDULER_SCHEDULER_H
#define STRATUS_SCHEDULER_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "psc/psc.h"

/* The share of each capacity dimension a standard LKC leaves free after it is placed. */
#define SCHEDULER_STANDARD_HEADROOM 0.2

enum scheduler_lkc_type { SCHEDULER_BASIC = 0, SCHEDULER_STANDARD, SCHEDULER_DEDICATED };

/* "basic", "standard", "dedicated". */
const char *scheduler_lkc_type_name(enum scheduler_lkc_type type);
/* Returns 0 and sets *<out>, or -EINVAL for another name. */
int scheduler_lkc_type_parse(const char *name, enum scheduler_lkc_type *out);

struct scheduler_request {
        const char *lkc_id; /* lkc-xxxxxx, for the reason text */
        const char *region;
        enum scheduler_lkc_type type;
        double ingress_mbps; /* asked for, MB/s */
        double egress_mbps;
        int64_t partitions;
};

/* What is placed on a PKC: the sums over its LKCs (each LKC is one tenant). */
struct scheduler_load {
        double ingress_mbps;
        double egress_mbps;
        int64_t partitions;
        int64_t tenants;
};

struct scheduler_pkc {
        const char *id; /* pkc-xxxxxx */
        const char *region;
        enum psc_pkc_type type;
        struct psc_capacity capacity; /* psc_policy_capacity() of the policy it was made under */
        struct scheduler_load load;
        bool accepting; /* false while it is being deleted (never placed on) */
};

enum scheduler_action {
        SCHEDULER_PLACE_EXISTING = 0, /* onto pkc_id */
        SCHEDULER_PLAN_NEW,           /* a new PKC of new_type, to be made by the caller */
};

struct scheduler_decision {
        enum scheduler_action action;
        char pkc_id[72];                  /* SCHEDULER_PLACE_EXISTING: the chosen PKC */
        enum psc_pkc_type new_type;       /* SCHEDULER_PLAN_NEW: multi-tenant or dedicated */
        struct psc_capacity new_capacity; /* SCHEDULER_PLAN_NEW: its capacity under the policy */
        char reason[1024];                /* one human-readable line, also set on errors */
};

/* Decides where <req> goes among <pkcs> (any regions and order; only accepting PKCs of
 * <req>'s region and kind are candidates) under <policy>. Returns 0 with *<out> filled;
 * -EINVAL for a malformed request or -E2BIG for one no single PKC can ever hold, with the
 * message in out->reason. Borrows everything; keeps nothing. Any thread. */
int scheduler_place(const struct psc_policy *policy, const struct scheduler_request *req,
                    const struct scheduler_pkc *pkcs, size_t npkcs, struct scheduler_decision *out);

#endif
