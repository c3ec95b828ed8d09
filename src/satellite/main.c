/* `stratus satellite`: consumes psc.<id> from the beginning, runs the operator over the
 * local driver on every PSC change and on a timer, reports status and heartbeats to
 * stratus.status. SIGTERM stops the satellite (and with --stop-on-exit every PKC process). */
#define LOG_TOPIC "satellite"
#include "satellite/main.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fileio.h"
#include "base/log.h"
#include "bus/bus.h"
#include "loop/loop.h"
#include "psc/psc.h"
#include "satellite/satellite.h"
#include "version.h"

#define RECONCILE_MS       500 /* level-triggered pass when nothing happens */
#define RECONCILE_BUSY_MS  100 /* while something is starting or waiting */
#define HEARTBEAT_MS       1000
#define STATUS_REPEAT_MS   2000 /* a status is re-sent this often even when unchanged */
#define MAX_STEPS_PER_PASS 64

struct satellite {
        struct loop *loop;
        struct bus *bus;
        struct driver drv;
        struct state state;
        const char *id;
        const char *region;
        char *topic;    /* psc.<id> */
        bool caught_up; /* the PSC topic was read to its end once */
        bool stop_on_exit;
        struct sat_pkc **pkcs;
        int npkcs;
        struct loop_timer *reconcile_timer;
        int64_t reconcile_at_ms; /* when the armed timer fires */
};

static void usage(FILE *out)
{
        fprintf(out,
                "usage: stratus satellite --region REGION --data DIR --bootstrap HOST:PORT[,...]\n"
                "                         [--id ID] [--host ADDR] [--stop-on-exit] [--debug TOPICS]\n"
                "\n"
                "Runs the agent of one region (docs/satellite.md): reads its desired state, one PSC per\n"
                "physical cluster, from the control-plane Kafka topic psc.ID (from the beginning), and\n"
                "makes it real on this host with the local driver: per PKC brokers and one `stratus lb`,\n"
                "supervised (restarted with backoff), reconfigured by diff (tenant and key changes are\n"
                "delivered without restarts). Reports status and a heartbeat every second to\n"
                "stratus.status.\n"
                "\n"
                "  --region REGION   the region this satellite serves (required)\n"
                "  --id ID           satellite id (default sat-REGION-1)\n"
                "  --data DIR        where PKC data and the satellite's state live (required)\n"
                "  --bootstrap LIST  control-plane Kafka cluster (required)\n"
                "  --host ADDR       IPv4 address brokers and balancers bind and advertise (127.0.0.1)\n"
                "  --stop-on-exit    SIGTERM also stops every PKC process (as `stratus up` does); without\n"
                "                    it the data plane keeps running and the next start adopts it\n"
                "  --debug TOPICS    debug logs for a comma list of topics, or all\n"
                "\n"
                "Example:\n"
                "  stratus satellite --region local --data /var/lib/stratus --bootstrap 127.0.0.1:9092\n");
}

/* ---- PKCs ---------------------------------------------------------------------- */

static struct sat_pkc *find_pkc(struct satellite *sat, const char *id)
{
        for (int i = 0; i < sat->npkcs; i++)
                if (strcmp(sat->pkcs[i]->id, id) == 0)
                        return sat->pkcs[i];
        return NULL;
}

static struct sat_pkc *add_pkc(struct satellite *sat, const char *id)
{
        struct sat_pkc *pkc = xcalloc(1, sizeof(*pkc));
        pkc->id = xstrdup(id);
        sat->pkcs = xrealloc(sat->pkcs, (size_t)(sat->npkcs + 1) * sizeof(*sat->pkcs));
        sat->pkcs[sat->npkcs++] = pkc;
        return pkc;
}

static void free_desired(struct sat_pkc *pkc)
{
        if (pkc->desired) {
                psc_deinit(pkc->desired);
                free(pkc->desired);
                pkc->desired = NULL;
        }
}

static void free_pkc(struct sat_pkc *pkc)
{
        free_desired(pkc);
        free(pkc->brokers);
        free(pkc->failed);
        free(pkc->last_status);
        free(pkc->swept_tenants);
        free(pkc->data_error);
        free(pkc->id);
        free(pkc);
}

static void remove_pkc(struct satellite *sat, struct sat_pkc *pkc)
{
        for (int i = 0; i < sat->npkcs; i++)
                if (sat->pkcs[i] == pkc) {
                        sat->pkcs[i] = sat->pkcs[--sat->npkcs];
                        break;
                }
        free_pkc(pkc);
}

/* ---- status -------------------------------------------------------------------- */

static void publish_status(struct satellite *sat, struct sat_pkc *pkc, const struct op_view *view,
                           int64_t now_ms)
{
        struct psc_status st;
        psc_status_init(&st);
        driver_status(&sat->drv, pkc, view, &st);
        if (st.phase == PSC_PHASE_RUNNING)
                pkc->was_running = true;
        int64_t t = st.time_ms;
        st.time_ms = 0;
        char *key = psc_status_to_json(&st);
        st.time_ms = t;
        bool changed = !pkc->last_status || strcmp(pkc->last_status, key) != 0;
        if (changed || now_ms - pkc->last_status_ms >= STATUS_REPEAT_MS) {
                char *json = psc_status_to_json(&st);
                int rc = bus_produce(sat->bus, PSC_STATUS_TOPIC, pkc->id, json, strlen(json));
                if (rc < 0)
                        log_warn("pkc=%s status not queued: %s", pkc->id, strerror(-rc));
                if (changed)
                        log_info("pkc=%s phase=%s observed_generation=%lld%s%s", pkc->id,
                                 psc_phase_name(st.phase), (long long)st.observed_generation,
                                 st.message ? " message=" : "", st.message ? st.message : "");
                free(json);
                free(pkc->last_status);
                pkc->last_status = key;
                key = NULL;
                pkc->last_status_ms = now_ms;
                if (st.phase == PSC_PHASE_DELETED)
                        pkc->reported_deleted = true;
        }
        free(key);
        psc_status_deinit(&st);
}

/* ---- reconciliation ------------------------------------------------------------ */

static void arm_reconcile(struct satellite *sat, int64_t delay_ms);

/* One pass over <pkc>: steps until nothing is left or a step must wait. Returns whether
 * the PKC is still busy (starting, waiting), for the next pass's delay. */
static bool reconcile_pkc(struct satellite *sat, struct sat_pkc *pkc, int64_t now_ms)
{
        const struct psc *psc = pkc->desired;
        if (!psc && !sat->caught_up)
                return false; /* never tear down from a half-read topic */
        int cap = MAX(pkc->nbrokers, psc && !psc->deleted ? psc->broker_count : 0) + 1;
        struct op_proc_view *brokers = xcalloc((size_t)cap, sizeof(*brokers));
        struct op_view view;
        struct op_step step;
        bool busy = false;
        for (int i = 0; i < MAX_STEPS_PER_PASS; i++) {
                driver_observe(&sat->drv, pkc, &view, brokers, now_ms);
                view.caught_up = sat->caught_up;
                operator_next_step(&view, psc, &step);
                if (step.kind == OP_NONE)
                        break;
                if (step.kind == OP_WAIT) {
                        busy = true;
                        break;
                }
                log_debug("pkc=%s next step=%s broker=%d why=%s", pkc->id, op_step_name(step.kind),
                          step.broker, step.why);
                if (driver_apply(&sat->drv, pkc, &step, now_ms) < 0) {
                        busy = true;
                        break;
                }
                now_ms = clock_mono_ms();
        }
        publish_status(sat, pkc, &view, now_ms);
        enum psc_phase phase = operator_phase(&view, psc, pkc->failed != NULL, pkc->was_running);
        if (phase != PSC_PHASE_RUNNING && phase != PSC_PHASE_DELETED)
                busy = true;
        free(brokers);
        return busy;
}

static void reconcile_all(struct satellite *sat)
{
        bool busy = false;
        for (int i = 0; i < sat->npkcs;) {
                struct sat_pkc *pkc = sat->pkcs[i];
                busy |= reconcile_pkc(sat, pkc, clock_mono_ms());
                /* A PKC torn down after a tombstone (or never in the topic) is forgotten once
                 * its deleted status went out; a deleted PSC is kept against replays. */
                if (!pkc->desired && pkc->reported_deleted) {
                        remove_pkc(sat, pkc);
                        continue;
                }
                i++;
        }
        arm_reconcile(sat, busy ? RECONCILE_BUSY_MS : RECONCILE_MS);
}

static void on_reconcile_timer(struct loop *loop, void *arg)
{
        struct satellite *sat = arg;
        sat->reconcile_timer = NULL;
        sat->reconcile_at_ms = INT64_MAX;
        reconcile_all(sat);
}

/* Arms the pass <delay_ms> from now unless one is due sooner. */
static void arm_reconcile(struct satellite *sat, int64_t delay_ms)
{
        int64_t at = clock_mono_ms() + delay_ms;
        if (sat->reconcile_timer && sat->reconcile_at_ms <= at)
                return;
        loop_cancel_timer(sat->loop, sat->reconcile_timer);
        sat->reconcile_timer = loop_add_timer(sat->loop, delay_ms, on_reconcile_timer, sat);
        sat->reconcile_at_ms = at;
}

/* ---- the PSC topic ------------------------------------------------------------- */

static void on_psc(void *arg, const char *topic, const char *key, size_t key_len, const char *value,
                   size_t value_len, int64_t offset)
{
        struct satellite *sat = arg;
        char *id = xstrndup(key ? key : "", key ? key_len : 0);
        if (!id[0]) {
                log_warn("%s offset=%lld: a message without a key (the PKC id) is ignored", topic,
                         (long long)offset);
                free(id);
                return;
        }
        struct sat_pkc *pkc = find_pkc(sat, id);
        if (!value) {
                if (pkc && (pkc->desired || !pkc->tombstoned)) {
                        log_info("pkc=%s tombstone at offset=%lld: deleting", id, (long long)offset);
                        free_desired(pkc);
                        pkc->tombstoned = true;
                        pkc->reported_deleted = false;
                        arm_reconcile(sat, 0);
                }
                free(id);
                return;
        }
        char err[512];
        struct psc *psc = xcalloc(1, sizeof(*psc));
        if (psc_parse(value, value_len, psc, err, sizeof(err)) < 0) {
                log_warn("pkc=%s offset=%lld: PSC ignored: %s", id, (long long)offset, err);
                free(psc);
                free(id);
                return;
        }
        const char *why = NULL;
        if (!psc->id || strcmp(psc->id, id) != 0)
                why = "its id is not the message key";
        else if (psc->satellite && strcmp(psc->satellite, sat->id) != 0)
                why = "it names another satellite";
        else if (!psc->deleted && psc_validate_full(psc, err, sizeof(err)) < 0)
                why = err;
        if (why) {
                log_warn("pkc=%s offset=%lld: PSC ignored: %s", id, (long long)offset, why);
                psc_deinit(psc);
                free(psc);
                free(id);
                return;
        }
        struct state_pkc *sp = state_find(&sat->state, id);
        const struct psc *current = pkc ? pkc->desired : NULL;
        if (!operator_accepts(current, sp ? sp->revision : NULL, sp ? sp->applied_generation : 0, psc)) {
                log_info(
                    "pkc=%s offset=%lld: PSC generation=%lld ignored (have generation=%lld applied=%lld)", id,
                    (long long)offset, (long long)psc->generation,
                    (long long)(current ? current->generation : 0),
                    (long long)(sp ? sp->applied_generation : 0));
                psc_deinit(psc);
                free(psc);
                free(id);
                return;
        }
        if (!pkc)
                pkc = add_pkc(sat, id);
        log_info("pkc=%s offset=%lld: PSC generation=%lld revision=%s%s", id, (long long)offset,
                 (long long)psc->generation, psc->revision ? psc->revision : "-",
                 psc->deleted ? " deleted" : "");
        free_desired(pkc);
        pkc->desired = psc;
        pkc->tombstoned = false;
        pkc->reported_deleted = false;
        free(id);
        arm_reconcile(sat, 0);
}

static void on_caught_up(void *arg, const char *topic)
{
        struct satellite *sat = arg;
        if (sat->caught_up)
                return;
        sat->caught_up = true;
        log_info("%s read to its end: %d PKCs known; PKCs not in it are torn down now", topic, sat->npkcs);
        arm_reconcile(sat, 0);
}

/* ---- heartbeat and signals ----------------------------------------------------- */

static void on_heartbeat(struct loop *loop, void *arg)
{
        struct satellite *sat = arg;
        int pkcs = 0;
        for (int i = 0; i < sat->npkcs; i++)
                pkcs += sat->pkcs[i]->desired && !sat->pkcs[i]->desired->deleted;
        struct psc_heartbeat hb = {
            .satellite = (char *)sat->id,
            .region = (char *)sat->region,
            .version = (char *)STRATUS_VERSION,
            .time_ms = clock_wall_ms(),
            .pkcs = pkcs,
        };
        char *json = psc_heartbeat_to_json(&hb);
        int rc = bus_produce(sat->bus, PSC_STATUS_TOPIC, sat->id, json, strlen(json));
        if (rc < 0)
                log_warn("heartbeat not queued: %s", strerror(-rc));
        free(json);
        loop_add_timer(loop, HEARTBEAT_MS, on_heartbeat, sat);
}

static void on_signal(struct loop *loop, int fd, uint32_t events, void *arg)
{
        struct satellite *sat = arg;
        struct signalfd_siginfo si;
        while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGCHLD || si.ssi_signo == SIGHUP) {
                        arm_reconcile(sat, 0); /* a child exited: supervise now */
                        continue;
                }
                log_info("received signal %d, stopping", (int)si.ssi_signo);
                loop_stop(loop);
        }
}

/* ---- main ---------------------------------------------------------------------- */

static const char *opt_value(int argc, char **argv, int *i)
{
        if (*i + 1 >= argc) {
                fprintf(stderr, "stratus satellite: %s needs a value (see --help)\n", argv[*i]);
                return NULL;
        }
        return argv[++*i];
}

int satellite_main(int argc, char **argv)
{
        const char *region = NULL, *id = NULL, *data = NULL, *bootstrap = NULL, *host = "127.0.0.1";
        bool stop_on_exit = false;
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                const char **dst = NULL;
                if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
                        usage(stdout);
                        return 0;
                } else if (strcmp(a, "--region") == 0) {
                        dst = &region;
                } else if (strcmp(a, "--id") == 0) {
                        dst = &id;
                } else if (strcmp(a, "--data") == 0) {
                        dst = &data;
                } else if (strcmp(a, "--bootstrap") == 0) {
                        dst = &bootstrap;
                } else if (strcmp(a, "--host") == 0) {
                        dst = &host;
                } else if (strcmp(a, "--stop-on-exit") == 0) {
                        stop_on_exit = true;
                        continue;
                } else if (strcmp(a, "--debug") == 0) {
                        const char *v = opt_value(argc, argv, &i);
                        if (!v)
                                return 2;
                        log_enable_debug(v);
                        continue;
                } else {
                        fprintf(stderr, "stratus satellite: unknown argument \"%s\" (see --help)\n", a);
                        return 2;
                }
                if (!(*dst = opt_value(argc, argv, &i)))
                        return 2;
        }
        if (!region || !data || !bootstrap) {
                fprintf(stderr,
                        "stratus satellite: --region, --data and --bootstrap are required (see --help)\n");
                return 2;
        }
        for (const char *p = region; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) {
                        fprintf(stderr,
                                "stratus satellite: --region %s: use lower-case letters, digits and '-'\n",
                                region);
                        return 2;
                }
        char default_id[128];
        if (!id) {
                snprintf(default_id, sizeof(default_id), "sat-%s-1", region);
                id = default_id;
        }
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n <= 0) {
                fprintf(stderr, "stratus satellite: cannot resolve /proc/self/exe: %s\n", strerror(errno));
                return 1;
        }
        exe[n] = '\0';
        int rc = fileio_mkdirs(data);
        char data_abs[PATH_MAX];
        if (rc < 0 || !realpath(data, data_abs)) {
                fprintf(stderr, "stratus satellite: --data %s: %s\n", data, strerror(rc < 0 ? -rc : errno));
                return 1;
        }

        struct satellite sat;
        memset(&sat, 0, sizeof(sat));
        sat.id = id;
        sat.region = region;
        sat.stop_on_exit = stop_on_exit;
        sat.reconcile_at_ms = INT64_MAX;
        char *state_dir = xasprintf("%s/satellites/%s", data_abs, id);
        char *state_path = xasprintf("%s/state.json", state_dir);
        char err[1024];
        rc = fileio_mkdirs(state_dir);
        if (rc < 0) {
                fprintf(stderr, "stratus satellite: cannot create %s: %s\n", state_dir, strerror(-rc));
                free(state_dir);
                free(state_path);
                return 1;
        }
        if (state_load(&sat.state, state_path, err, sizeof(err)) < 0) {
                fprintf(stderr,
                        "stratus satellite: %s (fix or remove the file; running processes are then "
                        "not adopted)\n",
                        err);
                state_deinit(&sat.state);
                free(state_dir);
                free(state_path);
                return 2;
        }
        sat.drv = (struct driver){
            .exe = exe,
            .data_dir = data_abs,
            .host = host,
            .satellite = id,
            .state = &sat.state,
        };

        signal(SIGPIPE, SIG_IGN);
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        sat.loop = loop_new();
        if (!sat.loop || sfd < 0) {
                fprintf(stderr, "stratus satellite: cannot create the event loop: %s\n", strerror(errno));
                rc = 1;
                goto out;
        }
        loop_add_fd(sat.loop, sfd, LOOP_READABLE, on_signal, &sat);
        if (bus_new(sat.loop, bootstrap, id, &sat.bus, err, sizeof(err)) < 0) {
                fprintf(stderr, "stratus satellite: --bootstrap %s: %s\n", bootstrap, err);
                rc = 2;
                goto out;
        }
        /* Adopt what runs before anything else can start a second copy. */
        for (int i = 0; i < sat.state.npkcs; i++) {
                struct sat_pkc *pkc = add_pkc(&sat, sat.state.pkcs[i].id);
                driver_adopt(&sat.drv, pkc);
        }
        sat.topic = psc_topic(id);
        rc = bus_subscribe(sat.bus, sat.topic, on_psc, on_caught_up, &sat);
        if (rc < 0) {
                fprintf(stderr, "stratus satellite: cannot subscribe to %s: %s\n", sat.topic, strerror(-rc));
                rc = 1;
                goto out;
        }
        log_info(
            "satellite id=%s region=%s data=%s state=%s control-plane=%s: reading %s from the beginning; "
            "%d PKCs in the state",
            id, region, data_abs, state_path, bootstrap, sat.topic, sat.state.npkcs);
        on_heartbeat(sat.loop, &sat);
        arm_reconcile(&sat, RECONCILE_MS);
        rc = loop_run(sat.loop) < 0 ? 1 : 0;
        if (sat.stop_on_exit) {
                log_info("--stop-on-exit: stopping the processes of %d PKCs", sat.npkcs);
                for (int i = 0; i < sat.npkcs; i++)
                        driver_stop_all(&sat.drv, sat.pkcs[i]);
        } else {
                log_info("leaving %d PKCs running (the data plane does not need the satellite)", sat.npkcs);
        }
out:
        bus_free(sat.bus);
        for (int i = 0; i < sat.npkcs; i++)
                free_pkc(sat.pkcs[i]);
        free(sat.pkcs);
        free(sat.topic);
        if (sat.loop) {
                loop_cancel_timer(sat.loop, sat.reconcile_timer);
                if (sfd >= 0)
                        loop_del_fd(sat.loop, sfd);
                loop_free(sat.loop);
        }
        if (sfd >= 0)
                close(sfd);
        state_deinit(&sat.state);
        free(state_dir);
        free(state_path);
        log_info("satellite stopped");
        return rc;
}
