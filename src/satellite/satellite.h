/* `stratus satellite`: the regional agent that makes PSCs real (docs/satellite.md).
 *
 * The operator (operator.c) is a pure function: the observed world of one PKC (struct
 * op_view, built by the driver from files, pid files and health probes) and its desired
 * PSC give the next step (struct op_step). The driver (driver_local.c) observes, renders
 * the files a PSC asks for and takes one step at a time; proc.c spawns, supervises and
 * adopts processes; state.c keeps the allocated ports and applied generations in
 * <data>/satellites/<id>/state.json; main.c wires it to the bus and the loop.
 * Everything here runs on the loop thread. */
#ifndef STRATUS_SATELLITE_SATELLITE_H
#define STRATUS_SATELLITE_SATELLITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "psc/psc.h"

/* ---- the operator (operator.c): pure, no I/O ------------------------------------- */

/* What the driver observed of one broker (or, for the lb, of the balancer). */
struct op_proc_view {
        bool config_matches;         /* its config file on disk is the one rendered from the PSC */
        bool tenants_matches;        /* brokers: tenants.json on disk is the rendered one */
        bool running;                /* a live process of ours (child or adopted) */
        bool started_with_config;    /* running with the config file now on disk */
        bool healthy;                /* answers its health probe */
        bool tenants_in_force;       /* brokers: the running process has loaded tenants.json as on disk */
        int64_t start_not_before_ms; /* restart backoff: no start before this (monotonic) */
};

struct op_view {
        bool exists;                /* data dir or state entry present */
        const char *revision;       /* revision the data belongs to (NULL: none recorded) */
        int64_t applied_generation; /* the newest generation applied (0: none) */
        bool ports_allocated;       /* ports recorded for every broker the PSC asks for */
        int nbrokers;               /* brokers observed (may exceed the PSC's broker_count) */
        const struct op_proc_view *brokers;
        struct op_proc_view lb;
        bool caught_up;                    /* the PSC topic was read to its end: the PSC is the newest */
        bool tenant_data_due;              /* removed tenants' data not swept for this tenant set */
        int64_t tenant_data_not_before_ms; /* sweep backoff after a failed or partial sweep */
        bool tenant_data_error;            /* the last sweep failed (status: degraded) */
        int64_t now_ms;                    /* monotonic */
};

enum op_step_kind {
        OP_NONE = 0,            /* converged: nothing to do */
        OP_WAIT,                /* something must wait (backoff, a broker not healthy yet) */
        OP_TEARDOWN,            /* stop every process, remove the data dir and state */
        OP_ALLOCATE_PORTS,      /* allocate and persist ports; records the revision */
        OP_WRITE_BROKER_CONFIG, /* write server.properties of <broker> */
        OP_WRITE_TENANTS,       /* write tenants.json of <broker> atomically, SIGHUP it */
        OP_START_BROKER,
        OP_RESTART_BROKER,  /* running with an older server.properties */
        OP_STOP_BROKER,     /* a broker beyond broker_count */
        OP_WRITE_LB_CONFIG, /* write lb.conf (the lb reloads it live) */
        OP_START_LB,
        OP_DELETE_TENANT_DATA, /* delete topics and groups of LKCs not in the PSC */
        OP_MARK_APPLIED,       /* everything is in force: applied_generation = generation */
};

struct op_step {
        enum op_step_kind kind;
        int broker;      /* which broker, for the broker steps */
        int64_t wait_ms; /* OP_WAIT: how long at most before looking again */
        const char *why; /* static text for the log line */
};

/* The step's name as logged ("start-broker"). */
const char *op_step_name(enum op_step_kind kind);

/* The next step that brings <view> to <psc>. <psc> NULL (no PSC after the topic was read
 * to its end) or deleted means tear down. A broker restart waits until every other broker
 * is healthy (one broker at a time). The data of removed tenants is deleted only when
 * <view->caught_up>, every broker is healthy and has the tenants file in force (so the
 * removed tenant can no longer recreate it); a sweep in backoff does not hold back
 * mark-applied. */
void operator_next_step(const struct op_view *view, const struct psc *psc, struct op_step *out);

/* Whether <incoming> replaces <current> (NULL: none held) as the desired PSC of its PKC,
 * given what was applied (<applied_revision> NULL: nothing). A newer generation of the
 * same revision, or another revision (the PKC was re-created), replaces; an older or equal
 * generation of the same revision changes nothing. */
bool operator_accepts(const struct psc *current, const char *applied_revision, int64_t applied_generation,
                      const struct psc *incoming);

/* The phase to report: <failed> (a message is set) wins; then deleting when the PSC is
 * deleted or gone; running when every broker and the lb are healthy (degraded instead
 * when <view->tenant_data_error>); degraded when not but <was_running>; else
 * provisioning. */
enum psc_phase operator_phase(const struct op_view *view, const struct psc *psc, bool failed,
                              bool was_running);

/* Tenant data. Every topic and group a tenant makes is stored as "<lkc-id>_<name>"
 * (docs/tenancy.md). The LKC id <name, len> belongs to when it has the form `lkc-` + 6
 * characters of [a-z0-9] + `_`, copied NUL-terminated to <id>; else false (internal
 * names, names of tenants that are not LKCs). */
#define OP_LKC_ID_LEN 10
bool operator_name_tenant(const char *name, size_t len, char id[OP_LKC_ID_LEN + 1]);
/* Whether <name, len> is data of an LKC that is not a tenant of <psc>: to delete. */
bool operator_name_is_stale(const struct psc *psc, const char *name, size_t len);
/* The tenant set of <psc> as one heap string ("lkc-a,lkc-b"), kept from the last
 * complete sweep. */
char *operator_tenant_set(const struct psc *psc);
/* Whether a tenant of <set> (an operator_tenant_set()) is not a tenant of <psc>: then a
 * sweep is due. Tenants only added need none (they have no data to delete), so a new
 * LKC's generation is not held back by a sweep. */
bool operator_tenants_removed(const char *set, const struct psc *psc);

/* Restart backoff after <failures> consecutive deaths: 100 ms doubling, at most 10 s. */
int64_t operator_backoff_ms(int failures);
#define OP_BACKOFF_RESET_MS 60000 /* healthy this long: the failure count starts over */

/* ---- processes (proc.c) ---------------------------------------------------------- */

/* One supervised process: a broker or a PKC's lb. */
struct proc {
        pid_t pid;            /* 0: not running */
        bool child;           /* forked by this satellite (reaped with waitpid) or adopted */
        uint64_t config_hash; /* hash of the config file it was started with */
        bool healthy;
        int restarts;          /* since this satellite supervises it */
        int failures;          /* consecutive deaths, for the backoff */
        int64_t not_before_ms; /* no start before this (monotonic) */
        int64_t healthy_since_ms;
};

/* FNV-1a of <text>: the config hash kept in pid files. */
uint64_t proc_hash(const char *text);

/* Starts `<exe> <argv...>` (argv[0] is set to <exe>) in its own session with cwd <dir>,
 * stdout and stderr appended to <log_path>, and writes "<pid> <config_hash>" to
 * <pid_path>. Returns the pid or -errno. */
pid_t proc_spawn(const char *exe, const char *const *args, const char *dir, const char *log_path,
                 const char *pid_path, uint64_t config_hash);
/* Reads a pid file. Returns 0 with *<pid> and *<config_hash>, or -errno. */
int proc_read_pid_file(const char *path, pid_t *pid, uint64_t *config_hash);
/* Whether <pid> is alive and runs `stratus <sub> ... <path>` (from /proc/<pid>/cmdline). */
bool proc_is_ours(pid_t pid, const char *sub, const char *path);
/* Whether <p> still runs; reaps it when it is our child and exited (logs how). */
bool proc_check_alive(struct proc *p, const char *what);
/* SIGTERM, then SIGKILL after <timeout_ms>; waits for the exit (bounded). */
void proc_stop(struct proc *p, const char *what, int timeout_ms);
/* A TCP connect to <host>:<port> within <timeout_ms>. */
bool proc_probe_tcp(const char *host, int port, int timeout_ms);
/* Asks the `stratus lb` admin endpoint at <host>:<port> for GET /metrics within
 * <timeout_ms> and returns how many targets it reports up (stratus_lb_target_up 1), or
 * -1 when it does not answer. */
int proc_probe_lb_targets_up(const char *host, int port, int timeout_ms);

/* ---- state (state.c): <data>/satellites/<id>/state.json ------------------------- */

struct state_broker {
        int internal_port; /* INTERNAL listener (PLAINTEXT: probes, the operator) */
        int client_port;   /* CLIENT listener (the lb's per-broker listener targets it) */
        int lb_port;       /* the lb's per-broker listener: what the broker advertises */
};

struct state_pkc {
        char *id;
        char *revision;
        int64_t applied_generation;
        int bootstrap_port; /* the lb's bootstrap listener */
        int lb_admin_port;  /* the lb's admin HTTP (/healthz) */
        struct state_broker *brokers;
        int nbrokers;
};

struct state {
        char *path;
        struct state_pkc *pkcs;
        int npkcs;
};

/* Loads <path> (a missing file is an empty state). Returns 0 or -EINVAL with <err>. */
int state_load(struct state *st, const char *path, char *err, size_t err_len);
void state_deinit(struct state *st);
/* Writes the state atomically. Returns 0 or -errno. */
int state_save(const struct state *st);
struct state_pkc *state_find(struct state *st, const char *pkc_id);
/* Adds an empty entry for <pkc_id> (or returns the existing one). */
struct state_pkc *state_add(struct state *st, const char *pkc_id);
void state_remove(struct state *st, const char *pkc_id);

/* ---- the local driver (driver_local.c) ------------------------------------------- */

/* One PKC as the satellite runs it. */
struct sat_broker {
        struct proc proc;
        uint64_t tenants_loaded_hash; /* hash of the tenants.json the process was started with or
                                       * SIGHUPed after (0: unknown, e.g. adopted) */
        int64_t tenants_loaded_ms;    /* when (monotonic) */
};

struct sat_pkc {
        char *id;
        struct psc *desired; /* newest accepted PSC (heap), NULL: none or tombstoned */
        bool tombstoned;     /* a tombstone was read: delete */
        struct sat_broker *brokers;
        int nbrokers;
        struct proc lb;
        bool was_running;      /* reached running since it was (re)created */
        char *failed;          /* why it cannot be made (heap), NULL: not failed */
        bool reported_deleted; /* the final deleted status was sent */
        char *last_status;     /* last status JSON sent without time (heap), for "on change" */
        int64_t last_status_ms;
        char *swept_tenants;         /* operator_tenant_set() at the last complete sweep (heap), NULL: none */
        int64_t swept_ms;            /* when (monotonic) */
        int64_t sweep_not_before_ms; /* backoff after a failed or partial sweep */
        char *data_error;            /* why the last sweep failed (heap), NULL: it did not */
};

struct driver {
        const char *exe;       /* /proc/self/exe resolved */
        const char *data_dir;  /* absolute */
        const char *host;      /* bind and advertised host */
        const char *satellite; /* our id */
        struct state *state;
};

/* The server.properties of broker <n> of <psc> (heap text), pure. */
char *driver_broker_config(const struct driver *drv, const struct psc *psc, const struct state_pkc *sp,
                           int n);
/* The lb.conf of <psc> (heap text), pure. */
char *driver_lb_config(const struct driver *drv, const struct psc *psc, const struct state_pkc *sp);

/* Adopts the running processes of <pkc> named by its pid files (pid file + cmdline +
 * alive, not a zombie); health is probed by the next observation. */
void driver_adopt(struct driver *drv, struct sat_pkc *pkc);
/* Fills <view> for <pkc> against its desired PSC: reaps dead children (arming their
 * backoff), probes health, compares files, says whether a tenant-data sweep is due (the
 * tenant set changed since the last complete one, none since this satellite started, or
 * the last is older than a minute). <view->caught_up> is the caller's to set. <brokers>
 * has room for at least MAX(pkc->nbrokers, broker_count) entries. */
void driver_observe(struct driver *drv, struct sat_pkc *pkc, struct op_view *view,
                    struct op_proc_view *brokers, int64_t now_ms);
/* Takes <step> for <pkc>. Returns 0, or -errno with <pkc->failed> set. A failed
 * delete-tenant-data returns 0 with <pkc->data_error> set and a backoff armed instead:
 * the PKC serves, only its cleanup is behind. */
int driver_apply(struct driver *drv, struct sat_pkc *pkc, const struct op_step *step, int64_t now_ms);
/* Stops every process of <pkc> (SIGTERM, then SIGKILL), leaving its data. */
void driver_stop_all(struct driver *drv, struct sat_pkc *pkc);
/* Fills <st> (psc_status_init() it first) for <pkc> from the last observation. */
void driver_status(struct driver *drv, struct sat_pkc *pkc, const struct op_view *view,
                   struct psc_status *st);

#endif
