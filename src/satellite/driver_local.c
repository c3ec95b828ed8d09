/* The local driver: a PKC as processes on this host. Layout (docs/satellite.md):
 *   <data>/<pkc>/broker-<n>/server.properties tenants.json log/ broker.pid broker.log
 *   <data>/<pkc>/lb/lb.conf lb.pid lb.log
 * Observation compares the files on disk with the ones rendered from the PSC and probes
 * the processes; each step changes one thing and is safe to repeat. */
#define LOG_TOPIC "satellite"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/fileio.h"
#include "base/log.h"
#include "kafka/client.h"
#include "kafka/errors.h"
#include "kafka/gen/api_keys.h"
#include "kafka/gen/messages.h"
#include "satellite/satellite.h"

#define STOP_TIMEOUT_MS  5000 /* SIGTERM, then SIGKILL */
#define PROBE_TIMEOUT_MS 100
/* The tenants file is in force in a broker this long after its SIGHUP (the broker reloads
 * at the signal, within milliseconds), or this long after the file was written (the
 * broker also checks the file every second: adopted brokers, a crash before the SIGHUP). */
#define TENANTS_SIGHUP_SETTLE_MS 100
#define TENANTS_FILE_SETTLE_MS   1500
#define SWEEP_TIMEOUT_MS         1000  /* connect and each request of a tenant-data sweep */
#define SWEEP_BACKOFF_MS         1000  /* after a failed or partial sweep */
#define SWEEP_REPEAT_MS          60000 /* a complete sweep is repeated this often (level) */
#define SWEEP_ARENA_BYTES        (16 << 20)

/* ---- paths and files ------------------------------------------------------------- */

static char *pkc_dir(const struct driver *drv, const char *pkc_id)
{
        return xasprintf("%s/%s", drv->data_dir, pkc_id);
}

static char *broker_path(const struct driver *drv, const char *pkc_id, int n, const char *file)
{
        return file ? xasprintf("%s/%s/broker-%d/%s", drv->data_dir, pkc_id, n, file)
                    : xasprintf("%s/%s/broker-%d", drv->data_dir, pkc_id, n);
}

static char *lb_path(const struct driver *drv, const char *pkc_id, const char *file)
{
        return file ? xasprintf("%s/%s/lb/%s", drv->data_dir, pkc_id, file)
                    : xasprintf("%s/%s/lb", drv->data_dir, pkc_id);
}

/* The whole file as a heap string, or NULL when it cannot be read. */
static char *read_text(const char *path)
{
        FILE *f = fopen(path, "re");
        if (!f)
                return NULL;
        struct buf b;
        buf_init(&b);
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
                buf_append(&b, chunk, n);
        fclose(f);
        buf_append(&b, "", 1);
        return (char *)b.data;
}

static bool file_is(const char *path, const char *want)
{
        char *have = read_text(path);
        bool same = have && strcmp(have, want) == 0;
        free(have);
        return same;
}

/* Replaces <path> in <dir> with <text> atomically; returns 0 or -errno. */
static int write_text(const char *dir, const char *path, const char *text)
{
        int rc = fileio_mkdirs(dir);
        if (rc < 0)
                return rc;
        return fileio_replace(dir, path, text, strlen(text));
}

static bool dir_exists(const char *path)
{
        struct stat st;
        return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- rendering (pure) ------------------------------------------------------------ */

/* Keys the operator sets itself; a PSC's broker_config entry for one is skipped. */
static const char *const owned_keys[] = {
    "node.id",
    "broker.id",
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "tenants.file",
    "log.dirs",
    "sasl.enabled.mechanisms",
};

static bool owned_key(const char *key)
{
        for (size_t i = 0; i < ARRAY_LEN(owned_keys); i++)
                if (strcmp(key, owned_keys[i]) == 0)
                        return true;
        return false;
}

static void append(struct buf *b, const char *s)
{
        buf_append(b, s, strlen(s));
}

static void appendf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void appendf(struct buf *b, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        char *s;
        if (vasprintf(&s, fmt, ap) < 0)
                ASSERT(!"vasprintf");
        va_end(ap);
        append(b, s);
        free(s);
}

static char *buf_text(struct buf *b)
{
        buf_append(b, "", 1);
        return (char *)b->data;
}

char *driver_broker_config(const struct driver *drv, const struct psc *psc, const struct state_pkc *sp, int n)
{
        const struct state_broker *ports = &sp->brokers[n];
        char *dir = broker_path(drv, psc->id, n, NULL);
        struct buf b;
        buf_init(&b);
        appendf(&b, "# Written by stratus satellite %s for %s revision %s; it is rewritten, do not edit.\n",
                drv->satellite, psc->id, psc->revision ? psc->revision : "-");
        appendf(&b, "node.id=%d\n", n);
        appendf(&b, "listeners=INTERNAL://%s:%d,CLIENT://%s:%d\n", drv->host, ports->internal_port, drv->host,
                ports->client_port);
        appendf(&b, "advertised.listeners=INTERNAL://%s:%d,CLIENT://%s:%d\n", drv->host, ports->internal_port,
                drv->host, ports->lb_port);
        appendf(&b, "listener.security.protocol.map=INTERNAL:%s,CLIENT:%s\n",
                psc->internal_security_protocol ? psc->internal_security_protocol : "PLAINTEXT",
                psc->client_security_protocol ? psc->client_security_protocol : "SASL_PLAINTEXT");
        if (psc->sasl_mechanisms && psc->sasl_mechanisms[0])
                appendf(&b, "sasl.enabled.mechanisms=%s\n", psc->sasl_mechanisms);
        appendf(&b, "tenants.file=%s/tenants.json\n", dir);
        appendf(&b, "log.dirs=%s/log\n", dir);
        for (int i = 0; i < psc->nbroker_config; i++) {
                const struct psc_config_entry *e = &psc->broker_config[i];
                if (owned_key(e->key))
                        continue;
                appendf(&b, "%s=%s\n", e->key, e->value);
        }
        free(dir);
        return buf_text(&b);
}

char *driver_lb_config(const struct driver *drv, const struct psc *psc, const struct state_pkc *sp)
{
        struct buf b;
        buf_init(&b);
        appendf(&b, "# Written by stratus satellite %s for %s revision %s; it is rewritten, do not edit.\n",
                drv->satellite, psc->id, psc->revision ? psc->revision : "-");
        appendf(&b, "admin %s:%d\n", drv->host, sp->lb_admin_port);
        append(&b, "health_check kafka\nhealth_interval_ms 200\nhealth_timeout_ms 1000\nhealth_rise "
                   "1\nhealth_fall 2\n");
        int count = MIN(psc->broker_count, sp->nbrokers);
        if (psc->lb_bootstrap) {
                appendf(&b, "listener bootstrap %s:%d", drv->host, sp->bootstrap_port);
                for (int i = 0; i < count; i++)
                        appendf(&b, " %s:%d", drv->host, sp->brokers[i].client_port);
                append(&b, "\n");
        }
        for (int i = 0; i < count; i++)
                appendf(&b, "listener broker-%d %s:%d %s:%d\n", i, drv->host, sp->brokers[i].lb_port,
                        drv->host, sp->brokers[i].client_port);
        return buf_text(&b);
}

/* ---- adoption and observation ---------------------------------------------------- */

static void ensure_brokers(struct sat_pkc *pkc, int n)
{
        if (n <= pkc->nbrokers)
                return;
        pkc->brokers = xrealloc(pkc->brokers, (size_t)n * sizeof(*pkc->brokers));
        memset(pkc->brokers + pkc->nbrokers, 0, (size_t)(n - pkc->nbrokers) * sizeof(*pkc->brokers));
        pkc->nbrokers = n;
}

static void adopt_one(struct proc *p, const char *pid_path, const char *sub, const char *config_path,
                      const char *what)
{
        pid_t pid;
        uint64_t hash;
        if (proc_read_pid_file(pid_path, &pid, &hash) < 0)
                return;
        if (!proc_is_ours(pid, sub, config_path)) {
                log_info("%s pid=%d from %s is not running (or not ours): it will be started", what, (int)pid,
                         pid_path);
                return;
        }
        p->pid = pid;
        p->child = false;
        p->config_hash = hash;
        log_info("%s adopted pid=%d", what, (int)pid);
}

void driver_adopt(struct driver *drv, struct sat_pkc *pkc)
{
        struct state_pkc *sp = state_find(drv->state, pkc->id);
        if (!sp)
                return;
        ensure_brokers(pkc, sp->nbrokers);
        for (int i = 0; i < sp->nbrokers; i++) {
                char *pid_path = broker_path(drv, pkc->id, i, "broker.pid");
                char *config = broker_path(drv, pkc->id, i, "server.properties");
                char what[96];
                snprintf(what, sizeof(what), "pkc=%s broker=%d", pkc->id, i);
                adopt_one(&pkc->brokers[i].proc, pid_path, "broker", config, what);
                free(pid_path);
                free(config);
        }
        char *pid_path = lb_path(drv, pkc->id, "lb.pid");
        char *config = lb_path(drv, pkc->id, "lb.conf");
        char what[96];
        snprintf(what, sizeof(what), "pkc=%s lb", pkc->id);
        adopt_one(&pkc->lb, pid_path, "lb", config, what);
        free(pid_path);
        free(config);
}

/* Supervision: notices a death (counted, backoff armed) and tracks health. */
static void supervise(struct proc *p, const char *what, int port, const char *host, int64_t now_ms)
{
        bool had = p->pid > 0;
        if (!proc_check_alive(p, what)) {
                if (had) {
                        p->restarts++;
                        p->failures++;
                        int64_t delay = operator_backoff_ms(p->failures);
                        p->not_before_ms = now_ms + delay;
                        p->healthy_since_ms = 0;
                        log_warn("%s died: restart %d in %lld ms", what, p->restarts, (long long)delay);
                }
                p->healthy = false;
                return;
        }
        bool healthy = port > 0 && proc_probe_tcp(host, port, PROBE_TIMEOUT_MS);
        if (healthy && !p->healthy)
                p->healthy_since_ms = now_ms;
        if (healthy && p->failures && now_ms - p->healthy_since_ms >= OP_BACKOFF_RESET_MS)
                p->failures = 0;
        p->healthy = healthy;
}

/* Whether broker <b> runs with <tenants> (the text of <path>, equal to the file): it was
 * started with it or SIGHUPed after it was written, a moment ago; or the file is old
 * enough that the broker's own check has read it. */
static bool tenants_in_force(const struct sat_broker *b, const char *tenants, const char *path,
                             int64_t now_ms)
{
        if (b->proc.pid <= 0)
                return false;
        if (b->tenants_loaded_hash == proc_hash(tenants) &&
            now_ms - b->tenants_loaded_ms >= TENANTS_SIGHUP_SETTLE_MS)
                return true;
        struct stat st;
        if (stat(path, &st) < 0)
                return false;
        int64_t mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
        return clock_wall_ms() - mtime_ms >= TENANTS_FILE_SETTLE_MS;
}

void driver_observe(struct driver *drv, struct sat_pkc *pkc, struct op_view *view,
                    struct op_proc_view *brokers, int64_t now_ms)
{
        const struct psc *psc = pkc->desired && !pkc->desired->deleted ? pkc->desired : NULL;
        struct state_pkc *sp = state_find(drv->state, pkc->id);
        int count = psc ? psc->broker_count : 0;
        ensure_brokers(pkc, count);
        memset(view, 0, sizeof(*view));
        view->now_ms = now_ms;
        view->brokers = brokers;
        view->nbrokers = pkc->nbrokers;
        char *dir = pkc_dir(drv, pkc->id);
        view->exists = sp != NULL || dir_exists(dir);
        free(dir);
        view->revision = sp ? sp->revision : NULL;
        view->applied_generation = sp ? sp->applied_generation : 0;
        view->ports_allocated = sp && sp->nbrokers >= count && sp->bootstrap_port > 0;
        for (int i = 0; i < pkc->nbrokers; i++) {
                struct proc *p = &pkc->brokers[i].proc;
                struct op_proc_view *b = &brokers[i];
                memset(b, 0, sizeof(*b));
                char what[96];
                snprintf(what, sizeof(what), "pkc=%s broker=%d", pkc->id, i);
                int port = sp && i < sp->nbrokers ? sp->brokers[i].internal_port : 0;
                supervise(p, what, port, drv->host, now_ms);
                b->running = p->pid > 0;
                b->healthy = p->healthy;
                b->start_not_before_ms = p->not_before_ms;
                if (!psc || !view->ports_allocated || i >= count)
                        continue;
                char *config = driver_broker_config(drv, psc, sp, i);
                char *config_path = broker_path(drv, pkc->id, i, "server.properties");
                b->config_matches = file_is(config_path, config);
                b->started_with_config = p->config_hash == proc_hash(config);
                free(config_path);
                free(config);
                char *tenants = psc_tenants_file(psc);
                char *tenants_path = broker_path(drv, pkc->id, i, "tenants.json");
                b->tenants_matches = file_is(tenants_path, tenants);
                b->tenants_in_force =
                    b->tenants_matches && tenants_in_force(&pkc->brokers[i], tenants, tenants_path, now_ms);
                free(tenants_path);
                free(tenants);
        }
        if (psc) {
                /* Tenants only added: nothing of theirs to delete, the last sweep still holds. */
                if (pkc->swept_tenants && !operator_tenants_removed(pkc->swept_tenants, psc)) {
                        free(pkc->swept_tenants);
                        pkc->swept_tenants = operator_tenant_set(psc);
                }
                view->tenant_data_due = !pkc->swept_tenants ||
                                        operator_tenants_removed(pkc->swept_tenants, psc) ||
                                        now_ms - pkc->swept_ms >= SWEEP_REPEAT_MS;
        }
        view->tenant_data_not_before_ms = pkc->sweep_not_before_ms;
        view->tenant_data_error = pkc->data_error != NULL;
        char what[96];
        snprintf(what, sizeof(what), "pkc=%s lb", pkc->id);
        supervise(&pkc->lb, what, sp ? sp->lb_admin_port : 0, drv->host, now_ms);
        /* Healthy means forwarding: the balancer itself sees every broker up, or a client
         * told "running" could still be refused while its first health check is pending. */
        if (pkc->lb.healthy && psc && sp) {
                int want = MIN(psc->broker_count, sp->nbrokers);
                pkc->lb.healthy = proc_probe_lb_targets_up(drv->host, sp->lb_admin_port, PROBE_TIMEOUT_MS) >= want;
        }
        view->lb.running = pkc->lb.pid > 0;
        view->lb.healthy = pkc->lb.healthy;
        view->lb.start_not_before_ms = pkc->lb.not_before_ms;
        view->lb.started_with_config = true; /* the lb reloads its file live */
        view->lb.tenants_matches = true;
        if (psc && view->ports_allocated) {
                char *config = driver_lb_config(drv, psc, sp);
                char *config_path = lb_path(drv, pkc->id, "lb.conf");
                view->lb.config_matches = file_is(config_path, config);
                free(config_path);
                free(config);
        }
}

/* ---- steps ------------------------------------------------------------------------ */

static void set_failed(struct sat_pkc *pkc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_failed(struct sat_pkc *pkc, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        char *msg;
        if (vasprintf(&msg, fmt, ap) < 0)
                ASSERT(!"vasprintf");
        va_end(ap);
        if (!pkc->failed || strcmp(pkc->failed, msg) != 0)
                log_error("pkc=%s failed: %s", pkc->id, msg);
        free(pkc->failed);
        pkc->failed = msg;
}

/* Whether <port> on <host> can be bound now (nobody else holds it). */
static bool port_free(const char *host, int port)
{
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
                return true;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return true;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        bool ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        close(fd);
        return ok;
}

/* Allocates <n> distinct free ports on <host> (bound together, then released). */
static int allocate_ports(const char *host, int n, int *out)
{
        int *fds = xcalloc((size_t)n, sizeof(*fds));
        int rc = 0, i;
        for (i = 0; i < n; i++) {
                struct sockaddr_in sa;
                memset(&sa, 0, sizeof(sa));
                sa.sin_family = AF_INET;
                if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
                        rc = -EINVAL;
                        break;
                }
                fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                socklen_t len = sizeof(sa);
                if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
                    getsockname(fds[i], (struct sockaddr *)&sa, &len) < 0) {
                        rc = -errno;
                        if (fds[i] >= 0)
                                close(fds[i]);
                        break;
                }
                out[i] = ntohs(sa.sin_port);
        }
        for (int j = 0; j < i; j++)
                close(fds[j]);
        free(fds);
        return rc;
}

static int step_allocate(struct driver *drv, struct sat_pkc *pkc)
{
        const struct psc *psc = pkc->desired;
        struct state_pkc *sp = state_add(drv->state, pkc->id);
        if (!sp->revision && psc->revision)
                sp->revision = xstrdup(psc->revision);
        int need = (sp->bootstrap_port ? 0 : 2) + 3 * MAX(0, psc->broker_count - sp->nbrokers);
        int *ports = xcalloc((size_t)need + 1, sizeof(*ports));
        int rc = allocate_ports(drv->host, need, ports);
        if (rc < 0) {
                free(ports);
                set_failed(pkc, "cannot allocate ports on %s: %s", drv->host, strerror(-rc));
                return rc;
        }
        int k = 0;
        if (!sp->bootstrap_port) {
                sp->bootstrap_port = ports[k++];
                sp->lb_admin_port = ports[k++];
        }
        if (psc->broker_count > sp->nbrokers) {
                sp->brokers = xrealloc(sp->brokers, (size_t)psc->broker_count * sizeof(*sp->brokers));
                for (int i = sp->nbrokers; i < psc->broker_count; i++) {
                        sp->brokers[i].internal_port = ports[k++];
                        sp->brokers[i].client_port = ports[k++];
                        sp->brokers[i].lb_port = ports[k++];
                }
                sp->nbrokers = psc->broker_count;
        }
        free(ports);
        rc = state_save(drv->state);
        if (rc < 0) {
                set_failed(pkc, "cannot write %s: %s", drv->state->path, strerror(-rc));
                return rc;
        }
        log_info("pkc=%s step=allocate-ports revision=%s brokers=%d bootstrap=%s:%d lb_admin=%d", pkc->id,
                 sp->revision ? sp->revision : "-", sp->nbrokers, drv->host, sp->bootstrap_port,
                 sp->lb_admin_port);
        return 0;
}

static void stop_all(struct driver *drv, struct sat_pkc *pkc)
{
        char what[96];
        snprintf(what, sizeof(what), "pkc=%s lb", pkc->id);
        proc_stop(&pkc->lb, what, STOP_TIMEOUT_MS);
        for (int i = 0; i < pkc->nbrokers; i++) {
                snprintf(what, sizeof(what), "pkc=%s broker=%d", pkc->id, i);
                proc_stop(&pkc->brokers[i].proc, what, STOP_TIMEOUT_MS);
        }
}

void driver_stop_all(struct driver *drv, struct sat_pkc *pkc)
{
        stop_all(drv, pkc);
}

static int step_teardown(struct driver *drv, struct sat_pkc *pkc)
{
        stop_all(drv, pkc);
        char *dir = pkc_dir(drv, pkc->id);
        int rc = dir_exists(dir) ? fileio_remove_tree(dir) : 0;
        if (rc < 0) {
                set_failed(pkc, "cannot remove %s: %s", dir, strerror(-rc));
                free(dir);
                return rc;
        }
        log_info("pkc=%s step=teardown removed=%s", pkc->id, dir);
        free(dir);
        state_remove(drv->state, pkc->id);
        rc = state_save(drv->state);
        if (rc < 0)
                log_error("cannot write %s: %s", drv->state->path, strerror(-rc));
        free(pkc->brokers);
        pkc->brokers = NULL;
        pkc->nbrokers = 0;
        memset(&pkc->lb, 0, sizeof(pkc->lb));
        pkc->was_running = false;
        free(pkc->failed);
        pkc->failed = NULL;
        free(pkc->swept_tenants);
        pkc->swept_tenants = NULL;
        free(pkc->data_error);
        pkc->data_error = NULL;
        pkc->sweep_not_before_ms = 0;
        return 0;
}

static int start_broker(struct driver *drv, struct sat_pkc *pkc, int n, int64_t now_ms, const char *step)
{
        struct state_pkc *sp = state_find(drv->state, pkc->id);
        struct proc *p = &pkc->brokers[n].proc;
        const struct state_broker *ports = &sp->brokers[n];
        if (!port_free(drv->host, ports->internal_port) || !port_free(drv->host, ports->client_port)) {
                int port =
                    port_free(drv->host, ports->internal_port) ? ports->client_port : ports->internal_port;
                set_failed(pkc,
                           "broker %d: port %s:%d is in use by another process (free it, or delete the PKC)",
                           n, drv->host, port);
                p->not_before_ms = now_ms + 1000;
                return -EADDRINUSE;
        }
        char *dir = broker_path(drv, pkc->id, n, NULL);
        char *config_path = broker_path(drv, pkc->id, n, "server.properties");
        char *log_path = broker_path(drv, pkc->id, n, "broker.log");
        char *pid_path = broker_path(drv, pkc->id, n, "broker.pid");
        char *config = read_text(config_path);
        const char *args[] = {"broker", config_path, NULL};
        pid_t pid = proc_spawn(drv->exe, args, dir, log_path, pid_path, proc_hash(config ? config : ""));
        int rc = 0;
        if (pid < 0) {
                set_failed(pkc, "broker %d: cannot start %s: %s", n, drv->exe, strerror((int)-pid));
                p->not_before_ms = now_ms + 1000;
                rc = (int)pid;
        } else {
                p->pid = pid;
                p->child = true;
                p->config_hash = proc_hash(config ? config : "");
                p->healthy = false;
                char *tenants_path = broker_path(drv, pkc->id, n, "tenants.json");
                char *tenants = read_text(tenants_path);
                pkc->brokers[n].tenants_loaded_hash = tenants ? proc_hash(tenants) : 0;
                pkc->brokers[n].tenants_loaded_ms = now_ms;
                free(tenants);
                free(tenants_path);
                log_info("pkc=%s step=%s broker=%d pid=%d internal=%s:%d client=%s:%d advertised=%s:%d",
                         pkc->id, step, n, (int)pid, drv->host, ports->internal_port, drv->host,
                         ports->client_port, drv->host, ports->lb_port);
                free(pkc->failed);
                pkc->failed = NULL;
        }
        free(config);
        free(dir);
        free(config_path);
        free(log_path);
        free(pid_path);
        return rc;
}

static int start_lb(struct driver *drv, struct sat_pkc *pkc, int64_t now_ms)
{
        struct state_pkc *sp = state_find(drv->state, pkc->id);
        int ports[2] = {sp->bootstrap_port, sp->lb_admin_port};
        for (int i = 0; i < 2 + sp->nbrokers; i++) {
                int port = i < 2 ? ports[i] : sp->brokers[i - 2].lb_port;
                if (!port_free(drv->host, port)) {
                        set_failed(pkc,
                                   "lb: port %s:%d is in use by another process (free it, or delete the PKC)",
                                   drv->host, port);
                        pkc->lb.not_before_ms = now_ms + 1000;
                        return -EADDRINUSE;
                }
        }
        char *dir = lb_path(drv, pkc->id, NULL);
        char *config_path = lb_path(drv, pkc->id, "lb.conf");
        char *log_path = lb_path(drv, pkc->id, "lb.log");
        char *pid_path = lb_path(drv, pkc->id, "lb.pid");
        const char *args[] = {"lb", "--config", config_path, NULL};
        pid_t pid = proc_spawn(drv->exe, args, dir, log_path, pid_path, 0);
        int rc = 0;
        if (pid < 0) {
                set_failed(pkc, "lb: cannot start %s: %s", drv->exe, strerror((int)-pid));
                pkc->lb.not_before_ms = now_ms + 1000;
                rc = (int)pid;
        } else {
                pkc->lb.pid = pid;
                pkc->lb.child = true;
                pkc->lb.healthy = false;
                log_info("pkc=%s step=start-lb pid=%d bootstrap=%s:%d admin=%s:%d", pkc->id, (int)pid,
                         drv->host, sp->bootstrap_port, drv->host, sp->lb_admin_port);
                free(pkc->failed);
                pkc->failed = NULL;
        }
        free(dir);
        free(config_path);
        free(log_path);
        free(pid_path);
        return rc;
}

static int write_step(struct sat_pkc *pkc, const char *dir, const char *path, const char *text,
                      const char *step, int n)
{
        int rc = write_text(dir, path, text);
        if (rc < 0) {
                set_failed(pkc, "cannot write %s: %s", path, strerror(-rc));
                return rc;
        }
        if (n >= 0)
                log_info("pkc=%s step=%s broker=%d file=%s", pkc->id, step, n, path);
        else
                log_info("pkc=%s step=%s file=%s", pkc->id, step, path);
        return 0;
}

/* ---- the data of removed tenants --------------------------------------------------- */

/* What one sweep found and did, over every broker. */
struct sweep {
        const struct psc *psc;
        int topics;      /* deleted */
        int groups;      /* deleted */
        int pending;     /* groups that still have members: deleted by a later sweep */
        struct buf errs; /* "; "-separated problems, empty: none */
};

static void sweep_error(struct sweep *sw, int n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sweep_error(struct sweep *sw, int n, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        char *msg;
        if (vasprintf(&msg, fmt, ap) < 0)
                ASSERT(!"vasprintf");
        va_end(ap);
        appendf(&sw->errs, "%sbroker %d: %s", sw->errs.len ? "; " : "", n, msg);
        free(msg);
}

static struct kafka_str topic_name_at(const void *list, int32_t i)
{
        return ((const struct metadata_response_metadata_response_topic *)list)[i].name;
}

static struct kafka_str group_id_at(const void *list, int32_t i)
{
        return ((const struct list_groups_response_listed_group *)list)[i].group_id;
}

/* The names among the <count> entries of <list> (read with <name_at>) that belong to
 * tenants not in the PSC, copied into <arena> (the answer's frame is gone after the next
 * call) as *<out>. Returns how many, or -1 when the arena is exhausted. */
static int32_t stale_names(struct sweep *sw, struct kafka_arena *arena, int32_t count,
                           struct kafka_str (*name_at)(const void *list, int32_t i), const void *list,
                           struct kafka_str **out)
{
        struct kafka_str *names = kafka_arena_alloc(arena, sizeof(*names) * (size_t)MAX(count, 1));
        if (!names)
                return -1;
        int32_t n = 0;
        for (int32_t i = 0; i < count; i++) {
                struct kafka_str name = name_at(list, i);
                if (name.len > 0 && operator_name_is_stale(sw->psc, name.ptr, (size_t)name.len))
                        names[n++] = (struct kafka_str){kafka_str_dup(arena, name), name.len};
        }
        *out = names;
        return n;
}

/* Lists the topics of broker <n> (on <c>) and deletes those of tenants not in the PSC. */
static void sweep_topics(struct sweep *sw, struct kafka_client *c, int n, struct kafka_arena *arena)
{
        struct metadata_request mreq;
        metadata_request_init(&mreq);
        mreq.topics_count = -1; /* every topic */
        mreq.allow_auto_topic_creation = false;
        struct metadata_response mresp;
        int rc = kafka_client_call(c, KAFKA_API_METADATA, 9, &mreq, &mresp, arena);
        if (rc < 0) {
                sweep_error(sw, n, "Metadata failed: %s", strerror(-rc));
                return;
        }
        struct kafka_str *names;
        int32_t count = stale_names(sw, arena, mresp.topics_count, topic_name_at, mresp.topics, &names);
        if (count < 0) {
                sweep_error(sw, n, "Metadata answer too large");
                return;
        }
        if (count == 0)
                return;
        struct delete_topics_request dreq;
        delete_topics_request_init(&dreq);
        dreq.topic_names = names;
        dreq.topic_names_count = count;
        dreq.timeout_ms = SWEEP_TIMEOUT_MS;
        struct delete_topics_response dresp;
        rc = kafka_client_call(c, KAFKA_API_DELETE_TOPICS, 4, &dreq, &dresp, arena);
        if (rc < 0) {
                sweep_error(sw, n, "DeleteTopics of %d topics failed: %s", (int)count, strerror(-rc));
                return;
        }
        for (int32_t i = 0; i < dresp.responses_count; i++) {
                const struct delete_topics_response_deletable_topic_result *r = &dresp.responses[i];
                if (r->error_code == KAFKA_NONE) {
                        sw->topics++;
                        log_info("pkc=%s step=delete-tenant-data broker=%d topic=%.*s deleted", sw->psc->id,
                                 n, (int)r->name.len, r->name.ptr);
                } else if (r->error_code != KAFKA_UNKNOWN_TOPIC_OR_PARTITION) {
                        sweep_error(sw, n, "cannot delete topic %.*s: %s", (int)r->name.len, r->name.ptr,
                                    kafka_error_name(r->error_code));
                }
        }
}

/* Lists the groups broker <n> coordinates and deletes those of tenants not in the PSC. */
static void sweep_groups(struct sweep *sw, struct kafka_client *c, int n, struct kafka_arena *arena)
{
        struct list_groups_request lreq;
        list_groups_request_init(&lreq);
        struct list_groups_response lresp;
        int rc = kafka_client_call(c, KAFKA_API_LIST_GROUPS, 4, &lreq, &lresp, arena);
        if (rc < 0 || lresp.error_code) {
                sweep_error(sw, n, "ListGroups failed: %s",
                            rc < 0 ? strerror(-rc) : kafka_error_name(lresp.error_code));
                return;
        }
        struct kafka_str *names;
        int32_t count = stale_names(sw, arena, lresp.groups_count, group_id_at, lresp.groups, &names);
        if (count < 0) {
                sweep_error(sw, n, "ListGroups answer too large");
                return;
        }
        if (count == 0)
                return;
        struct delete_groups_request dreq;
        delete_groups_request_init(&dreq);
        dreq.groups_names = names;
        dreq.groups_names_count = count;
        struct delete_groups_response dresp;
        rc = kafka_client_call(c, KAFKA_API_DELETE_GROUPS, 2, &dreq, &dresp, arena);
        if (rc < 0) {
                sweep_error(sw, n, "DeleteGroups of %d groups failed: %s", (int)count, strerror(-rc));
                return;
        }
        for (int32_t i = 0; i < dresp.results_count; i++) {
                const struct delete_groups_response_deletable_group_result *r = &dresp.results[i];
                if (r->error_code == KAFKA_NONE) {
                        sw->groups++;
                        log_info("pkc=%s step=delete-tenant-data broker=%d group=%.*s deleted", sw->psc->id,
                                 n, (int)r->group_id.len, r->group_id.ptr);
                } else if (r->error_code == KAFKA_NON_EMPTY_GROUP) {
                        /* Its members' connections closed with their key; they leave when
                         * their session times out. Not a failure: the next sweep deletes it. */
                        sw->pending++;
                        log_info("pkc=%s step=delete-tenant-data broker=%d group=%.*s still has members: "
                                 "retried when their sessions time out",
                                 sw->psc->id, n, (int)r->group_id.len, r->group_id.ptr);
                } else if (r->error_code != KAFKA_GROUP_ID_NOT_FOUND) {
                        sweep_error(sw, n, "cannot delete group %.*s: %s", (int)r->group_id.len,
                                    r->group_id.ptr, kafka_error_name(r->error_code));
                }
        }
}

/* The step: on every broker's INTERNAL listener (PLAINTEXT: every stored name), deletes
 * the topics and groups named "<lkc-id>_..." of LKCs that are not tenants of the PSC.
 * Idempotent (what is gone is not found again). A failure sets <pkc->data_error> (the
 * status says degraded with it) and arms a backoff; a group with members left only arms
 * the backoff; a complete sweep records the tenant set it was made for. */
static void step_delete_tenant_data(struct driver *drv, struct sat_pkc *pkc, int64_t now_ms)
{
        const struct psc *psc = pkc->desired;
        struct state_pkc *sp = state_find(drv->state, pkc->id);
        struct sweep sw = {.psc = psc};
        buf_init(&sw.errs);
        for (int n = 0; n < psc->broker_count && sp && n < sp->nbrokers; n++) {
                char hostport[300];
                snprintf(hostport, sizeof(hostport), "%s:%d", drv->host, sp->brokers[n].internal_port);
                struct kafka_client *c;
                int rc = kafka_client_connect(hostport, SWEEP_TIMEOUT_MS, &c);
                if (rc < 0) {
                        sweep_error(&sw, n, "cannot connect to %s: %s", hostport, strerror(-rc));
                        continue;
                }
                struct kafka_arena arena;
                kafka_arena_init(&arena, SWEEP_ARENA_BYTES);
                sweep_topics(&sw, c, n, &arena);
                sweep_groups(&sw, c, n, &arena);
                kafka_arena_deinit(&arena);
                kafka_client_close(c);
        }
        if (sw.errs.len) {
                char *msg =
                    xasprintf("cannot delete the data of removed tenants (retrying): %s", buf_text(&sw.errs));
                if (!pkc->data_error || strcmp(pkc->data_error, msg) != 0)
                        log_warn("pkc=%s step=delete-tenant-data failed: %s", pkc->id, msg);
                free(pkc->data_error);
                pkc->data_error = msg;
                pkc->sweep_not_before_ms = now_ms + SWEEP_BACKOFF_MS;
                buf_deinit(&sw.errs);
                return;
        }
        buf_deinit(&sw.errs);
        if (pkc->data_error)
                log_info("pkc=%s step=delete-tenant-data recovered", pkc->id);
        free(pkc->data_error);
        pkc->data_error = NULL;
        if (sw.pending) {
                pkc->sweep_not_before_ms = now_ms + SWEEP_BACKOFF_MS;
                return;
        }
        if (sw.topics || sw.groups || !pkc->swept_tenants)
                log_info("pkc=%s step=delete-tenant-data topics=%d groups=%d tenants=%d", pkc->id, sw.topics,
                         sw.groups, psc->ntenants);
        free(pkc->swept_tenants);
        pkc->swept_tenants = operator_tenant_set(psc);
        pkc->swept_ms = now_ms;
        pkc->sweep_not_before_ms = 0;
}

int driver_apply(struct driver *drv, struct sat_pkc *pkc, const struct op_step *step, int64_t now_ms)
{
        const struct psc *psc = pkc->desired;
        struct state_pkc *sp = state_find(drv->state, pkc->id);
        int n = step->broker;
        int rc = 0;
        char what[96];
        snprintf(what, sizeof(what), "pkc=%s broker=%d", pkc->id, n);
        switch (step->kind) {
        case OP_NONE:
        case OP_WAIT:
                return 0;
        case OP_TEARDOWN:
                return step_teardown(drv, pkc);
        case OP_ALLOCATE_PORTS:
                return step_allocate(drv, pkc);
        case OP_WRITE_BROKER_CONFIG: {
                char *dir = broker_path(drv, pkc->id, n, NULL);
                char *log_dir = broker_path(drv, pkc->id, n, "log");
                char *path = broker_path(drv, pkc->id, n, "server.properties");
                char *text = driver_broker_config(drv, psc, sp, n);
                rc = fileio_mkdirs(log_dir);
                if (rc < 0)
                        set_failed(pkc, "cannot create %s: %s", log_dir, strerror(-rc));
                else
                        rc = write_step(pkc, dir, path, text, "write-broker-config", n);
                free(dir);
                free(log_dir);
                free(path);
                free(text);
                return rc;
        }
        case OP_WRITE_TENANTS: {
                char *dir = broker_path(drv, pkc->id, n, NULL);
                char *path = broker_path(drv, pkc->id, n, "tenants.json");
                char *text = psc_tenants_file(psc);
                rc = write_step(pkc, dir, path, text, "write-tenants", n);
                struct sat_broker *b = &pkc->brokers[n];
                if (rc == 0 && b->proc.pid > 0 && kill(b->proc.pid, SIGHUP) == 0) {
                        b->tenants_loaded_hash = proc_hash(text);
                        b->tenants_loaded_ms = now_ms;
                        log_info("pkc=%s step=write-tenants broker=%d sighup pid=%d", pkc->id, n,
                                 (int)b->proc.pid);
                }
                free(dir);
                free(path);
                free(text);
                return rc;
        }
        case OP_START_BROKER:
                return start_broker(drv, pkc, n, now_ms, "start-broker");
        case OP_RESTART_BROKER:
                proc_stop(&pkc->brokers[n].proc, what, STOP_TIMEOUT_MS);
                return start_broker(drv, pkc, n, now_ms, "restart-broker");
        case OP_STOP_BROKER:
                log_info("pkc=%s step=stop-broker broker=%d pid=%d", pkc->id, n,
                         (int)pkc->brokers[n].proc.pid);
                proc_stop(&pkc->brokers[n].proc, what, STOP_TIMEOUT_MS);
                return 0;
        case OP_WRITE_LB_CONFIG: {
                char *dir = lb_path(drv, pkc->id, NULL);
                char *path = lb_path(drv, pkc->id, "lb.conf");
                char *text = driver_lb_config(drv, psc, sp);
                rc = write_step(pkc, dir, path, text, "write-lb-config", -1);
                if (rc == 0 && pkc->lb.pid > 0)
                        kill(pkc->lb.pid, SIGHUP);
                free(dir);
                free(path);
                free(text);
                return rc;
        }
        case OP_START_LB:
                return start_lb(drv, pkc, now_ms);
        case OP_DELETE_TENANT_DATA:
                step_delete_tenant_data(drv, pkc, now_ms);
                return 0;
        case OP_MARK_APPLIED:
                sp->applied_generation = psc->generation;
                rc = state_save(drv->state);
                if (rc < 0) {
                        set_failed(pkc, "cannot write %s: %s", drv->state->path, strerror(-rc));
                        return rc;
                }
                log_info("pkc=%s step=mark-applied generation=%lld revision=%s", pkc->id,
                         (long long)psc->generation, psc->revision ? psc->revision : "-");
                return 0;
        }
        return -EINVAL;
}

void driver_status(struct driver *drv, struct sat_pkc *pkc, const struct op_view *view, struct psc_status *st)
{
        const struct psc *psc = pkc->desired;
        struct state_pkc *sp = state_find(drv->state, pkc->id);
        st->pkc_id = xstrdup(pkc->id);
        st->satellite = xstrdup(drv->satellite);
        if (psc && psc->revision)
                st->revision = xstrdup(psc->revision);
        else if (sp && sp->revision)
                st->revision = xstrdup(sp->revision);
        st->observed_generation = sp ? sp->applied_generation : (psc && psc->deleted ? psc->generation : 0);
        st->phase = operator_phase(view, psc, pkc->failed != NULL, pkc->was_running);
        if (pkc->failed) {
                st->message = xstrdup(pkc->failed);
        } else if (st->phase == PSC_PHASE_DEGRADED || st->phase == PSC_PHASE_PROVISIONING) {
                struct buf b;
                buf_init(&b);
                for (int i = 0; psc && i < psc->broker_count && i < view->nbrokers; i++)
                        if (!view->brokers[i].healthy)
                                appendf(&b, "%sbroker %d %s", b.len ? "; " : "", i,
                                        view->brokers[i].running ? "not answering" : "not running");
                if (!view->lb.healthy)
                        appendf(&b, "%slb %s", b.len ? "; " : "",
                                view->lb.running ? "not answering" : "not running");
                if (pkc->data_error)
                        appendf(&b, "%s%s", b.len ? "; " : "", pkc->data_error);
                if (b.len)
                        st->message = buf_text(&b);
                else
                        buf_deinit(&b);
        }
        if (sp && psc && psc->lb_bootstrap)
                st->bootstrap = xasprintf("%s:%d", drv->host, sp->bootstrap_port);
        st->lb_healthy = view->lb.healthy;
        int count = psc && !psc->deleted ? MIN(psc->broker_count, view->nbrokers) : 0;
        if (count > 0) {
                st->brokers = xcalloc((size_t)count, sizeof(*st->brokers));
                st->nbrokers = count;
                for (int i = 0; i < count; i++) {
                        struct psc_broker_status *bs = &st->brokers[i];
                        bs->id = i;
                        bs->healthy = view->brokers[i].healthy;
                        bs->pid = (int)pkc->brokers[i].proc.pid;
                        bs->restarts = pkc->brokers[i].proc.restarts;
                        if (sp && i < sp->nbrokers)
                                bs->address = xasprintf("%s:%d", drv->host, sp->brokers[i].lb_port);
                }
        }
        st->time_ms = clock_wall_ms();
}
