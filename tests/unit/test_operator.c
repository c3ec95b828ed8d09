/* The satellite's operator as a pure function: observed world + desired PSC -> next
 * step, PSC acceptance by generation and revision, phases and the restart backoff. No
 * processes, files or network. */
#include <stdlib.h>
#include <string.h>

#include "satellite/satellite.h"
#include "test.h"

/* A full-enough PSC built by hand (the operator reads only these fields). */
static struct psc make_psc(int brokers, int64_t generation, const char *revision)
{
        struct psc psc;
        memset(&psc, 0, sizeof(psc));
        psc.id = (char *)"pkc-abc123";
        psc.revision = (char *)revision;
        psc.generation = generation;
        psc.broker_count = brokers;
        psc.lb_bootstrap = true;
        return psc;
}

/* A view where every file matches and every process runs healthy with its config. */
static struct op_view converged(struct op_proc_view *brokers, int n, int64_t generation, const char *revision)
{
        for (int i = 0; i < n; i++)
                brokers[i] = (struct op_proc_view){.config_matches = true,
                                                   .tenants_matches = true,
                                                   .running = true,
                                                   .started_with_config = true,
                                                   .healthy = true};
        struct op_view view = {
            .exists = true,
            .revision = revision,
            .applied_generation = generation,
            .ports_allocated = true,
            .nbrokers = n,
            .brokers = brokers,
            .now_ms = 1000,
        };
        view.lb = brokers[0];
        return view;
}

/* Applies what a step would do to a view, like the driver would. */
static void simulate(struct op_view *view, struct op_proc_view *brokers, const struct op_step *step,
                     int64_t gen)
{
        switch (step->kind) {
        case OP_ALLOCATE_PORTS:
                view->ports_allocated = true;
                view->exists = true;
                break;
        case OP_WRITE_BROKER_CONFIG:
                brokers[step->broker].config_matches = true;
                break;
        case OP_WRITE_TENANTS:
                brokers[step->broker].tenants_matches = true;
                break;
        case OP_START_BROKER:
        case OP_RESTART_BROKER:
                brokers[step->broker].running = true;
                brokers[step->broker].started_with_config = true;
                brokers[step->broker].healthy = true;
                break;
        case OP_WRITE_LB_CONFIG:
                view->lb.config_matches = true;
                break;
        case OP_START_LB:
                view->lb.running = view->lb.healthy = true;
                break;
        case OP_MARK_APPLIED:
                view->applied_generation = gen;
                break;
        default:
                break;
        }
}

TEST(operator_new_pkc_takes_each_step_once_in_order)
{
        struct psc psc = make_psc(2, 1, "r1");
        struct op_proc_view brokers[2];
        memset(brokers, 0, sizeof(brokers));
        struct op_view view = {.brokers = brokers, .nbrokers = 2, .now_ms = 1000};
        view.lb.started_with_config = view.lb.tenants_matches = true;
        const enum op_step_kind want[] = {
            OP_ALLOCATE_PORTS, OP_WRITE_BROKER_CONFIG, OP_WRITE_TENANTS, OP_WRITE_BROKER_CONFIG,
            OP_WRITE_TENANTS,  OP_WRITE_LB_CONFIG,     OP_START_BROKER,  OP_START_BROKER,
            OP_START_LB,       OP_MARK_APPLIED,        OP_NONE,
        };
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
                struct op_step step;
                operator_next_step(&view, &psc, &step);
                CHECK_EQ(step.kind, want[i]);
                simulate(&view, brokers, &step, psc.generation);
        }
        CHECK_EQ(view.applied_generation, 1);
}

TEST(operator_converged_pkc_needs_nothing)
{
        struct psc psc = make_psc(3, 7, "r1");
        struct op_proc_view brokers[3];
        struct op_view view = converged(brokers, 3, 7, "r1");
        struct op_step step;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_NONE);
        CHECK_EQ(operator_phase(&view, &psc, false, false), PSC_PHASE_RUNNING);
}

TEST(operator_tenants_change_rewrites_tenants_without_restart)
{
        struct psc psc = make_psc(2, 8, "r1");
        struct op_proc_view brokers[2];
        struct op_view view = converged(brokers, 2, 7, "r1");
        brokers[0].tenants_matches = brokers[1].tenants_matches = false;
        int writes = 0;
        for (int i = 0; i < 10; i++) {
                struct op_step step;
                operator_next_step(&view, &psc, &step);
                if (step.kind == OP_NONE)
                        break;
                CHECK(step.kind != OP_RESTART_BROKER && step.kind != OP_START_BROKER &&
                      step.kind != OP_WRITE_BROKER_CONFIG && step.kind != OP_START_LB);
                writes += step.kind == OP_WRITE_TENANTS;
                simulate(&view, brokers, &step, psc.generation);
        }
        CHECK_EQ(writes, 2);
        CHECK_EQ(view.applied_generation, 8);
}

TEST(operator_new_generation_with_same_files_only_marks_applied)
{
        struct psc psc = make_psc(1, 9, "r1");
        struct op_proc_view brokers[1];
        struct op_view view = converged(brokers, 1, 8, "r1");
        struct op_step step;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_MARK_APPLIED);
}

TEST(operator_config_change_restarts_one_broker_at_a_time)
{
        struct psc psc = make_psc(2, 3, "r1");
        struct op_proc_view brokers[2];
        struct op_view view = converged(brokers, 2, 2, "r1");
        brokers[0].config_matches = brokers[1].config_matches = false;
        struct op_step step;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_WRITE_BROKER_CONFIG);
        CHECK_EQ(step.broker, 0);
        /* Written: both run with the old file now. */
        brokers[0].config_matches = brokers[1].config_matches = true;
        brokers[0].started_with_config = brokers[1].started_with_config = false;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_RESTART_BROKER);
        CHECK_EQ(step.broker, 0);
        /* Broker 0 restarted but not healthy yet: broker 1 waits for it. */
        brokers[0].started_with_config = true;
        brokers[0].healthy = false;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_WAIT);
        CHECK(step.wait_ms > 0);
        brokers[0].healthy = true;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_RESTART_BROKER);
        CHECK_EQ(step.broker, 1);
}

TEST(operator_dead_broker_restarts_after_backoff)
{
        struct psc psc = make_psc(1, 1, "r1");
        struct op_proc_view brokers[1];
        struct op_view view = converged(brokers, 1, 1, "r1");
        brokers[0].running = brokers[0].healthy = false;
        brokers[0].start_not_before_ms = 1400;
        struct op_step step;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_WAIT);
        CHECK_EQ(step.wait_ms, 400);
        CHECK_EQ(operator_phase(&view, &psc, false, true), PSC_PHASE_DEGRADED);
        CHECK_EQ(operator_phase(&view, &psc, false, false), PSC_PHASE_PROVISIONING);
        view.now_ms = 1400;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_START_BROKER);
}

TEST(operator_new_revision_tears_down_first)
{
        struct psc psc = make_psc(1, 1, "r2");
        struct op_proc_view brokers[1];
        struct op_view view = converged(brokers, 1, 5, "r1");
        struct op_step step;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_TEARDOWN);
        /* After the teardown nothing exists: allocation for the new revision. */
        struct op_view empty = {.brokers = brokers, .nbrokers = 0, .now_ms = 1000};
        operator_next_step(&empty, &psc, &step);
        CHECK_EQ(step.kind, OP_ALLOCATE_PORTS);
}

TEST(operator_deleted_or_missing_psc_tears_down_then_nothing)
{
        struct psc psc = make_psc(1, 4, "r1");
        psc.deleted = true;
        struct op_proc_view brokers[1];
        struct op_view view = converged(brokers, 1, 3, "r1");
        struct op_step step;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_TEARDOWN);
        CHECK_EQ(operator_phase(&view, &psc, false, true), PSC_PHASE_DELETING);
        operator_next_step(&view, NULL, &step);
        CHECK_EQ(step.kind, OP_TEARDOWN);
        view.exists = false;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_NONE);
        CHECK_EQ(operator_phase(&view, NULL, false, true), PSC_PHASE_DELETED);
}

TEST(operator_scale_down_stops_extra_brokers)
{
        struct psc psc = make_psc(1, 2, "r1");
        struct op_proc_view brokers[2];
        struct op_view view = converged(brokers, 2, 1, "r1");
        struct op_step step;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_STOP_BROKER);
        CHECK_EQ(step.broker, 1);
}

TEST(operator_accepts_only_newer_generations_of_a_revision)
{
        struct psc cur = make_psc(1, 5, "r1");
        struct psc older = make_psc(1, 4, "r1"), same = make_psc(1, 5, "r1"), newer = make_psc(1, 6, "r1");
        struct psc other = make_psc(1, 1, "r2");
        CHECK(!operator_accepts(&cur, "r1", 5, &older));
        CHECK(!operator_accepts(&cur, "r1", 5, &same));
        CHECK(operator_accepts(&cur, "r1", 5, &newer));
        CHECK(operator_accepts(&cur, "r1", 5, &other)); /* re-created PKC */
        /* After a restart nothing is held yet: the applied generation decides. */
        CHECK(!operator_accepts(NULL, "r1", 5, &older));
        CHECK(operator_accepts(NULL, "r1", 5, &same));
        CHECK(operator_accepts(NULL, "r1", 5, &newer));
        CHECK(operator_accepts(NULL, NULL, 0, &older));
        CHECK(operator_accepts(NULL, "r1", 5, &other));
}

TEST(operator_failed_and_unhealthy_lb_phases)
{
        struct psc psc = make_psc(1, 1, "r1");
        struct op_proc_view brokers[1];
        struct op_view view = converged(brokers, 1, 1, "r1");
        CHECK_EQ(operator_phase(&view, &psc, true, true), PSC_PHASE_FAILED);
        view.lb.healthy = false;
        CHECK_EQ(operator_phase(&view, &psc, false, true), PSC_PHASE_DEGRADED);
        CHECK_EQ(operator_phase(&view, &psc, false, false), PSC_PHASE_PROVISIONING);
}

TEST(operator_backoff_doubles_to_ten_seconds)
{
        CHECK_EQ(operator_backoff_ms(0), 0);
        CHECK_EQ(operator_backoff_ms(1), 100);
        CHECK_EQ(operator_backoff_ms(2), 200);
        CHECK_EQ(operator_backoff_ms(4), 800);
        CHECK_EQ(operator_backoff_ms(8), 10000);
        CHECK_EQ(operator_backoff_ms(1000), 10000);
        CHECK_EQ(strcmp(op_step_name(OP_START_BROKER), "start-broker"), 0);
}

/* ---- the data of removed tenants ---- */

static struct psc_tenant two_tenants[] = {{.id = (char *)"lkc-abc123"}, {.id = (char *)"lkc-2xy7zq"}};

static bool stale(const struct psc *psc, const char *name)
{
        return operator_name_is_stale(psc, name, strlen(name));
}

TEST(operator_deletes_only_names_of_lkcs_not_in_the_psc)
{
        struct psc psc = make_psc(1, 1, "r1");
        psc.tenants = two_tenants;
        psc.ntenants = 2;
        /* Tenants of the PSC keep their topics and groups. */
        CHECK(!stale(&psc, "lkc-abc123_orders"));
        CHECK(!stale(&psc, "lkc-2xy7zq_app"));
        /* A removed LKC's names go, whatever follows the underscore. */
        CHECK(stale(&psc, "lkc-zzz999_orders"));
        CHECK(stale(&psc, "lkc-zzz999_lkc-abc123_x"));
        CHECK(stale(&psc, "lkc-abc124_orders"));
        /* Names that are not "lkc-" + 6 of [a-z0-9] + "_" are never touched. */
        CHECK(!stale(&psc, "__consumer_offsets"));
        CHECK(!stale(&psc, "orders"));
        CHECK(!stale(&psc, "lkc-zzz999"));
        CHECK(!stale(&psc, "lkc-zzz99_orders"));
        CHECK(!stale(&psc, "lkc-zzz9999_orders"));
        CHECK(!stale(&psc, "lkc-ZZZ999_orders"));
        CHECK(!stale(&psc, "lkc-zz_999_orders"));
        CHECK(!stale(&psc, "tenant-1_orders"));
        CHECK(!stale(&psc, "pkc-zzz999_orders"));
        /* Views need not be NUL-terminated: only <len> bytes are read. */
        CHECK(!operator_name_is_stale(&psc, "lkc-zzz999_orders", 10));
        CHECK(operator_name_is_stale(&psc, "lkc-zzz999_orders", 11));
        char id[OP_LKC_ID_LEN + 1];
        CHECK(operator_name_tenant("lkc-zzz999_orders", 17, id));
        CHECK_EQ(strcmp(id, "lkc-zzz999"), 0);
        /* A PSC without tenants: every LKC's data is stale. */
        struct psc empty = make_psc(1, 1, "r1");
        CHECK(stale(&empty, "lkc-abc123_orders"));
}

TEST(operator_tenant_set_and_removals)
{
        struct psc psc = make_psc(1, 1, "r1");
        char *none = operator_tenant_set(&psc);
        CHECK_EQ(strcmp(none, ""), 0);
        free(none);
        psc.tenants = two_tenants;
        psc.ntenants = 2;
        char *both = operator_tenant_set(&psc);
        CHECK_EQ(strcmp(both, "lkc-abc123,lkc-2xy7zq"), 0);
        /* Only a removal makes a sweep due; an addition or the same set does not. */
        CHECK(!operator_tenants_removed(both, &psc));
        CHECK(!operator_tenants_removed("", &psc));
        CHECK(!operator_tenants_removed("lkc-2xy7zq", &psc));
        CHECK(operator_tenants_removed("lkc-abc123,lkc-2xy7zq,lkc-zzz999", &psc));
        CHECK(operator_tenants_removed("lkc-abc12", &psc));
        psc.ntenants = 1;
        CHECK(operator_tenants_removed(both, &psc));
        CHECK(!operator_tenants_removed("lkc-abc123", &psc));
        free(both);
}

/* A converged view with a sweep due and every broker's tenants file in force. */
static struct op_view sweep_due(struct op_proc_view *brokers, int n, int64_t generation)
{
        struct op_view view = converged(brokers, n, generation, "r1");
        for (int i = 0; i < n; i++)
                brokers[i].tenants_in_force = true;
        view.caught_up = true;
        view.tenant_data_due = true;
        return view;
}

TEST(operator_deletes_tenant_data_once_the_tenants_file_is_in_force)
{
        struct psc psc = make_psc(2, 7, "r1");
        struct op_proc_view brokers[2];
        struct op_view view = sweep_due(brokers, 2, 7);
        struct op_step step;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_DELETE_TENANT_DATA);
        CHECK_EQ(strcmp(op_step_name(step.kind), "delete-tenant-data"), 0);
        /* Not before the topic was read to its end: a half-read topic may hold an older
         * PSC that lacks a tenant the brokers already serve. */
        view.caught_up = false;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_NONE);
        view.caught_up = true;
        /* Not while a broker may still serve the removed tenant: wait, and mark-applied
         * waits too (the removal is not in force). */
        brokers[1].tenants_in_force = false;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_WAIT);
        CHECK(step.wait_ms > 0 && step.wait_ms <= 100);
        view.applied_generation = 6;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_WAIT);
        /* The tenants file is rewritten before anything is deleted. */
        brokers[1].tenants_matches = false;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_WRITE_TENANTS);
        CHECK_EQ(step.broker, 1);
        brokers[1].tenants_matches = brokers[1].tenants_in_force = true;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_DELETE_TENANT_DATA);
        /* Swept: mark-applied, then nothing. */
        view.tenant_data_due = false;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_MARK_APPLIED);
        view.applied_generation = 7;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_NONE);
}

TEST(operator_tenant_data_sweep_waits_for_healthy_brokers_without_holding_back_mark_applied)
{
        struct psc psc = make_psc(2, 8, "r1");
        struct op_proc_view brokers[2];
        struct op_view view = sweep_due(brokers, 2, 7);
        brokers[0].healthy = false;
        struct op_step step;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_MARK_APPLIED);
        view.applied_generation = 8;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_NONE);
        brokers[0].healthy = true;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_DELETE_TENANT_DATA);
}

TEST(operator_failed_sweep_retries_after_backoff_and_reports_degraded)
{
        struct psc psc = make_psc(1, 8, "r1");
        struct op_proc_view brokers[1];
        struct op_view view = sweep_due(brokers, 1, 7);
        view.tenant_data_error = true;
        view.tenant_data_not_before_ms = view.now_ms + 700;
        struct op_step step;
        /* The backoff does not hold back a new generation... */
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_MARK_APPLIED);
        view.applied_generation = 8;
        /* ...then the pass waits for it, and retries when it passed. */
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_WAIT);
        CHECK_EQ(step.wait_ms, 700);
        view.now_ms += 700;
        operator_next_step(&view, &psc, &step);
        CHECK_EQ(step.kind, OP_DELETE_TENANT_DATA);
        /* Healthy brokers but data left behind: degraded, not running. */
        CHECK_EQ(operator_phase(&view, &psc, false, true), PSC_PHASE_DEGRADED);
        view.tenant_data_error = false;
        CHECK_EQ(operator_phase(&view, &psc, false, true), PSC_PHASE_RUNNING);
}
