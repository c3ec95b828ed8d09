/* Unit tests of the scheduler (src/scheduler): placement over many scenarios, under the
 * built-in policy's capacities (multi-tenant: 100/300 MB/s, 1000 partitions, 50 tenants;
 * dedicated: 250/750 MB/s, 4000 partitions). */
#include <errno.h>
#include <string.h>

#include "psc/psc.h"
#include "scheduler/scheduler.h"
#include "test.h"

static struct scheduler_pkc mt_pkc(const char *id, const char *region, double in, double out, int64_t parts,
                                   int64_t tenants)
{
        struct scheduler_pkc p = {.id = id, .region = region, .type = PSC_MULTI_TENANT, .accepting = true};
        psc_policy_capacity(psc_policy_default(), PSC_MULTI_TENANT, &p.capacity);
        p.load = (struct scheduler_load){in, out, parts, tenants};
        return p;
}

static struct scheduler_request basic(double in, double out, int64_t parts)
{
        return (struct scheduler_request){.lkc_id = "lkc-new001",
                                          .region = "r1",
                                          .type = SCHEDULER_BASIC,
                                          .ingress_mbps = in,
                                          .egress_mbps = out,
                                          .partitions = parts};
}

static int place(const struct scheduler_request *req, const struct scheduler_pkc *pkcs, size_t n,
                 struct scheduler_decision *d)
{
        return scheduler_place(psc_policy_default(), req, pkcs, n, d);
}

#define HAS(d, s) (strstr((d).reason, (s)) != NULL || (fprintf(stderr, "  reason: %s\n", (d).reason), 0))

TEST(scheduler_empty_region_plans_a_multi_tenant_pkc)
{
        struct scheduler_request req = basic(10, 20, 10);
        struct scheduler_decision d;
        CHECK_EQ(place(&req, NULL, 0, &d), 0);
        CHECK(d.action == SCHEDULER_PLAN_NEW && d.new_type == PSC_MULTI_TENANT);
        CHECK(d.new_capacity.ingress_mbps == 100 && d.new_capacity.tenants == 50);
        CHECK(HAS(d, "new multi-tenant PKC: no multi-tenant PKC in region r1 accepts LKCs"));
}

TEST(scheduler_places_on_the_best_fit_with_the_reason)
{
        struct scheduler_pkc pkcs[] = {
            mt_pkc("pkc-aaaaaa", "r1", 10, 20, 100, 2),
            mt_pkc("pkc-bbbbbb", "r1", 20, 50, 110, 2), /* fuller: best fit */
            mt_pkc("pkc-cccccc", "r1", 0, 0, 0, 0),
        };
        struct scheduler_request req = basic(10, 10, 10);
        struct scheduler_decision d;
        CHECK_EQ(place(&req, pkcs, 3, &d), 0);
        CHECK(d.action == SCHEDULER_PLACE_EXISTING);
        CHECK(strcmp(d.pkc_id, "pkc-bbbbbb") == 0);
        CHECK(strcmp(d.reason,
                     "placed on pkc-bbbbbb: best fit of 3 PKCs with room in region r1; after placement "
                     "ingress 30/100 MB/s, egress 60/300, partitions 120/1000, tenants 3/50") == 0 ||
              HAS(d, "(exact text)"));
}

TEST(scheduler_all_full_plans_a_new_pkc_saying_why)
{
        struct scheduler_pkc pkcs[] = {
            mt_pkc("pkc-aaaaaa", "r1", 95, 10, 10, 1),
            mt_pkc("pkc-bbbbbb", "r1", 10, 295, 10, 1),
            mt_pkc("pkc-cccccc", "r1", 10, 10, 995, 1),
            mt_pkc("pkc-dddddd", "r1", 10, 10, 10, 50),
        };
        struct scheduler_request req = basic(10, 10, 10);
        struct scheduler_decision d;
        CHECK_EQ(place(&req, pkcs, 4, &d), 0);
        CHECK(d.action == SCHEDULER_PLAN_NEW && d.new_type == PSC_MULTI_TENANT);
        CHECK(HAS(d, "new multi-tenant PKC: none of 4 PKCs in region r1 has room"));
        CHECK(HAS(d, "pkc-aaaaaa: ingress 95+10 > 100"));
        CHECK(HAS(d, "pkc-bbbbbb: egress 295+10 > 300"));
        CHECK(HAS(d, "pkc-cccccc: partitions 995+10 > 1000"));
        CHECK(HAS(d, "pkc-dddddd: tenants 50+1 > 50"));
}

TEST(scheduler_exact_fit_is_placed)
{
        struct scheduler_pkc pkcs[] = {mt_pkc("pkc-aaaaaa", "r1", 90, 290, 990, 49)};
        struct scheduler_request req = basic(10, 10, 10);
        struct scheduler_decision d;
        CHECK_EQ(place(&req, pkcs, 1, &d), 0);
        CHECK(d.action == SCHEDULER_PLACE_EXISTING && strcmp(d.pkc_id, "pkc-aaaaaa") == 0);
        CHECK(HAS(d, "ingress 100/100 MB/s, egress 300/300, partitions 1000/1000, tenants 50/50"));
        /* MB/s summed from decimals that land a rounding error over the capacity fit. */
        struct scheduler_pkc sums = mt_pkc("pkc-bbbbbb", "r1", 0, 0, 0, 0);
        for (int i = 0; i < 37; i++)
                sums.load.ingress_mbps += 0.3; /* 11.100000000000005 */
        struct scheduler_request rest = basic(88.9, 1, 1);
        CHECK(sums.load.ingress_mbps + rest.ingress_mbps > 100.0);
        CHECK_EQ(place(&rest, &sums, 1, &d), 0);
        CHECK(d.action == SCHEDULER_PLACE_EXISTING);
        /* One partition more does not fit. */
        req.partitions = 11;
        CHECK_EQ(place(&req, pkcs, 1, &d), 0);
        CHECK(d.action == SCHEDULER_PLAN_NEW);
}

TEST(scheduler_ties_go_to_the_smaller_id)
{
        struct scheduler_pkc pkcs[] = {
            mt_pkc("pkc-zzzzzz", "r1", 10, 10, 10, 1),
            mt_pkc("pkc-mmmmmm", "r1", 10, 10, 10, 1),
            mt_pkc("pkc-nnnnnn", "r1", 10, 10, 10, 1),
        };
        struct scheduler_request req = basic(1, 1, 1);
        struct scheduler_decision d;
        CHECK_EQ(place(&req, pkcs, 3, &d), 0);
        CHECK(strcmp(d.pkc_id, "pkc-mmmmmm") == 0);
}

TEST(scheduler_dedicated_gets_a_pkc_of_its_own)
{
        struct scheduler_pkc pkcs[] = {
            mt_pkc("pkc-aaaaaa", "r1", 0, 0, 0, 0),
            mt_pkc("pkc-dddddd", "r1", 0, 0, 0, 0),
        };
        pkcs[1].type = PSC_DEDICATED;
        psc_policy_capacity(psc_policy_default(), PSC_DEDICATED, &pkcs[1].capacity);
        struct scheduler_request req = basic(50, 150, 600);
        req.type = SCHEDULER_DEDICATED;
        struct scheduler_decision d;
        CHECK_EQ(place(&req, pkcs, 2, &d), 0);
        CHECK(d.action == SCHEDULER_PLAN_NEW && d.new_type == PSC_DEDICATED);
        CHECK(d.new_capacity.ingress_mbps == 250);
        CHECK(HAS(d,
                  "dedicated: a PKC of its own in region r1 sized for ingress 50 MB/s, egress 150 MB/s, 600 "
                  "partitions"));
        /* A multi-tenant LKC never goes onto a dedicated PKC. */
        req.type = SCHEDULER_BASIC;
        pkcs[0].accepting = false;
        CHECK_EQ(place(&req, pkcs, 2, &d), 0);
        CHECK(d.action == SCHEDULER_PLAN_NEW && d.new_type == PSC_MULTI_TENANT);
        CHECK(HAS(d, "(skipped: 1 deleting, 1 dedicated)"));
}

TEST(scheduler_skips_deleting_pkcs)
{
        struct scheduler_pkc pkcs[] = {
            mt_pkc("pkc-aaaaaa", "r1", 50, 50, 50, 5),
            mt_pkc("pkc-bbbbbb", "r1", 0, 0, 0, 0),
        };
        pkcs[0].accepting = false; /* fuller, so best fit if it were accepting */
        struct scheduler_request req = basic(10, 10, 10);
        struct scheduler_decision d;
        CHECK_EQ(place(&req, pkcs, 2, &d), 0);
        CHECK(strcmp(d.pkc_id, "pkc-bbbbbb") == 0);
        CHECK(HAS(d, "best fit of 1 PKC with room"));
        CHECK(HAS(d, "(skipped: 1 deleting)"));
        pkcs[1].accepting = false;
        CHECK_EQ(place(&req, pkcs, 2, &d), 0);
        CHECK(d.action == SCHEDULER_PLAN_NEW);
        CHECK(HAS(d, "no multi-tenant PKC in region r1 accepts LKCs (skipped: 2 deleting)"));
}

TEST(scheduler_only_looks_at_the_requests_region)
{
        struct scheduler_pkc pkcs[] = {
            mt_pkc("pkc-aaaaaa", "r2", 0, 0, 0, 0),
            mt_pkc("pkc-bbbbbb", "r10", 0, 0, 0, 0),
            mt_pkc("pkc-cccccc", "r1", 99, 0, 0, 0),
        };
        struct scheduler_request req = basic(10, 10, 10);
        struct scheduler_decision d;
        CHECK_EQ(place(&req, pkcs, 3, &d), 0);
        CHECK(d.action == SCHEDULER_PLAN_NEW);
        CHECK(HAS(d, "none of 1 PKC in region r1 has room"));
        req.region = "r2";
        CHECK_EQ(place(&req, pkcs, 3, &d), 0);
        CHECK(d.action == SCHEDULER_PLACE_EXISTING && strcmp(d.pkc_id, "pkc-aaaaaa") == 0);
}

TEST(scheduler_decision_does_not_depend_on_input_order)
{
        struct scheduler_pkc base[] = {
            mt_pkc("pkc-aaaaaa", "r1", 40, 40, 400, 10), mt_pkc("pkc-bbbbbb", "r1", 40, 40, 400, 10),
            mt_pkc("pkc-cccccc", "r1", 95, 10, 10, 1),   mt_pkc("pkc-dddddd", "r2", 90, 90, 900, 40),
            mt_pkc("pkc-eeeeee", "r1", 30, 30, 300, 9),
        };
        base[4].accepting = false;
        struct scheduler_request req = basic(10, 10, 10);
        struct scheduler_decision first;
        CHECK_EQ(place(&req, base, 5, &first), 0);
        CHECK(strcmp(first.pkc_id, "pkc-aaaaaa") == 0);
        /* Every rotation and the reversal give the same decision and the same text. */
        for (int rot = 0; rot < 10; rot++) {
                struct scheduler_pkc perm[5];
                for (int i = 0; i < 5; i++)
                        perm[i] = rot < 5 ? base[(i + rot) % 5] : base[(4 - i + rot) % 5];
                struct scheduler_decision d;
                CHECK_EQ(place(&req, perm, 5, &d), 0);
                CHECK(d.action == first.action);
                CHECK(strcmp(d.pkc_id, first.pkc_id) == 0);
                CHECK(strcmp(d.reason, first.reason) == 0);
        }
        /* The same for a "plan new" decision with its list of reasons. */
        req = basic(70, 10, 10);
        CHECK_EQ(place(&req, base, 5, &first), 0);
        CHECK(first.action == SCHEDULER_PLAN_NEW);
        for (int rot = 0; rot < 5; rot++) {
                struct scheduler_pkc perm[5];
                for (int i = 0; i < 5; i++)
                        perm[i] = base[(i + rot) % 5];
                struct scheduler_decision d;
                CHECK_EQ(place(&req, perm, 5, &d), 0);
                CHECK(strcmp(d.reason, first.reason) == 0);
        }
}

TEST(scheduler_standard_keeps_headroom)
{
        struct scheduler_pkc pkcs[] = {mt_pkc("pkc-aaaaaa", "r1", 75, 10, 10, 1)};
        struct scheduler_request req = basic(10, 10, 10);
        struct scheduler_decision d;
        CHECK_EQ(place(&req, pkcs, 1, &d), 0);
        CHECK(d.action == SCHEDULER_PLACE_EXISTING); /* basic: up to 100 */
        req.type = SCHEDULER_STANDARD;
        CHECK_EQ(place(&req, pkcs, 1, &d), 0);
        CHECK(d.action == SCHEDULER_PLAN_NEW);
        CHECK(HAS(d, "pkc-aaaaaa: ingress 75+10 > 80"));
        CHECK(HAS(d, "(standard keeps 20% headroom)"));
        req.ingress_mbps = 5;
        CHECK_EQ(place(&req, pkcs, 1, &d), 0);
        CHECK(d.action == SCHEDULER_PLACE_EXISTING);
}

TEST(scheduler_refuses_what_no_pkc_can_hold)
{
        struct scheduler_request req = basic(150, 10, 10);
        struct scheduler_decision d;
        CHECK_EQ(place(&req, NULL, 0, &d), -E2BIG);
        CHECK(HAS(d,
                  "lkc-new001 basic LKC of ingress 150 MB/s, egress 10 MB/s, 10 partitions can never fit a "
                  "multi-tenant PKC (ingress 0+150 > 100); ask for type dedicated"));
        req.type = SCHEDULER_STANDARD;
        req.ingress_mbps = 90;
        CHECK_EQ(place(&req, NULL, 0, &d), -E2BIG);
        CHECK(HAS(d, "keeping 20% headroom"));
        req.type = SCHEDULER_BASIC;
        req.ingress_mbps = 1000;
        CHECK_EQ(place(&req, NULL, 0, &d), -E2BIG);
        CHECK(HAS(d, "even a dedicated PKC takes at most ingress 250 MB/s"));
        req.type = SCHEDULER_DEDICATED;
        CHECK_EQ(place(&req, NULL, 0, &d), -E2BIG);
        CHECK(HAS(d, "can never fit a dedicated PKC (ingress 0+1000 > 250)"));
        req.ingress_mbps = 10;
        req.partitions = 5000;
        CHECK_EQ(place(&req, NULL, 0, &d), -E2BIG);
        CHECK(HAS(d, "partitions 0+5000 > 4000"));
}

TEST(scheduler_rejects_malformed_requests)
{
        struct scheduler_request req = basic(10, 10, 0);
        struct scheduler_decision d;
        CHECK_EQ(place(&req, NULL, 0, &d), -EINVAL);
        CHECK(HAS(d, "partitions: must be 1 or more"));
        req = basic(-1, 10, 1);
        CHECK_EQ(place(&req, NULL, 0, &d), -EINVAL);
        CHECK(HAS(d, "ingress_mbps"));
        req = basic(1, 1, 1);
        req.region = "";
        CHECK_EQ(place(&req, NULL, 0, &d), -EINVAL);
        CHECK(HAS(d, "region: missing"));
        enum scheduler_lkc_type type;
        CHECK_EQ(scheduler_lkc_type_parse("standard", &type), 0);
        CHECK(type == SCHEDULER_STANDARD);
        CHECK_EQ(scheduler_lkc_type_parse("premium", &type), -EINVAL);
        CHECK(strcmp(scheduler_lkc_type_name(SCHEDULER_DEDICATED), "dedicated") == 0);
}

TEST(scheduler_fills_one_pkc_then_plans_the_next)
{
        /* Three basic LKCs share one PKC; the one that exhausts it plans a second. */
        struct scheduler_pkc pkc = mt_pkc("pkc-aaaaaa", "r1", 0, 0, 0, 0);
        struct scheduler_request req = basic(30, 90, 300);
        struct scheduler_decision d;
        for (int i = 0; i < 3; i++) {
                CHECK_EQ(place(&req, &pkc, 1, &d), 0);
                CHECK(d.action == SCHEDULER_PLACE_EXISTING);
                pkc.load.ingress_mbps += req.ingress_mbps;
                pkc.load.egress_mbps += req.egress_mbps;
                pkc.load.partitions += req.partitions;
                pkc.load.tenants++;
        }
        CHECK_EQ(place(&req, &pkc, 1, &d), 0);
        CHECK(d.action == SCHEDULER_PLAN_NEW);
        CHECK(HAS(d, "pkc-aaaaaa: ingress 90+30 > 100"));
}
