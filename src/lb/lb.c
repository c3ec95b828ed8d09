/* `stratus lb` lifecycle: listeners, targets, and reload as a diff between the running
 * configuration and the new one (see lb.h, docs/lb.md). */
#define LOG_TOPIC "lb"
#include "lb/lb.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/log.h"
#include "loop/loop.h"
#include "loop/net.h"

#define ACCEPTS_PER_EVENT 64

/* ---- targets ---- */

static struct lb_target *target_get(struct lb *lb, const struct lb_addr *addr, enum lb_check check)
{
        /* One target (one health state, one set of metrics) per address, whatever the
         * check kind; update_check_kinds() picks the kind. */
        char key[320];
        snprintf(key, sizeof(key), "%s", addr->text);
        struct lb_target *t = map_get(&lb->targets, key, strlen(key));
        if (!t) {
                t = xcalloc(1, sizeof(*t));
                t->lb = lb;
                t->key = xstrdup(key);
                t->addr = *addr;
                t->addr.text = xstrdup(addr->text);
                t->check = check;
                t->check_fd = -1;
                map_put(&lb->targets, key, strlen(key), t);
        }
        t->refs++;
        if (t->listener_refs++ == 0)
                health_start(lb, t);
        return t;
}

void lb_target_unref(struct lb *lb, struct lb_target *t)
{
        if (--t->refs > 0)
                return;
        health_stop(lb, t);
        map_del(&lb->targets, t->key, strlen(t->key));
        free(t->key);
        free(t->addr.text);
        free(t);
}

/* A listener stops naming <t>. */
static void target_release(struct lb *lb, struct lb_target *t)
{
        if (--t->listener_refs == 0)
                health_stop(lb, t);
        lb_target_unref(lb, t);
}

/* ---- listeners ---- */

static void listener_config_copy(struct lb_listener_config *dst, const struct lb_listener_config *src)
{
        *dst = *src;
        dst->name = xstrdup(src->name);
        dst->bind.text = xstrdup(src->bind.text);
        dst->targets = xcalloc((size_t)src->ntargets, sizeof(*dst->targets));
        for (int i = 0; i < src->ntargets; i++) {
                dst->targets[i] = src->targets[i];
                dst->targets[i].text = xstrdup(src->targets[i].text);
        }
}

static void listener_config_free(struct lb_listener_config *c)
{
        free(c->name);
        free(c->bind.text);
        for (int i = 0; i < c->ntargets; i++)
                free(c->targets[i].text);
        free(c->targets);
}

static int bind_listener(const struct lb_listener_config *c)
{
        int fd = socket(c->bind.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (const struct sockaddr *)&c->bind.sa, c->bind.sa_len) < 0 || listen(fd, 4096) < 0) {
                int rc = -errno;
                close(fd);
                return rc;
        }
        return fd;
}

#define ACCEPT_PAUSE_MS 100

static void on_accept_resume(struct loop *loop, void *arg)
{
        struct lb_listener *l = arg;
        l->accept_pause = NULL; /* the loop frees a fired timer */
        if (l->fd >= 0)
                loop_mod_fd(loop, l->fd, LOOP_READABLE);
}

static void on_accept(struct loop *loop, int fd, uint32_t events, void *arg)
{
        struct lb_listener *l = arg;
        for (int i = 0; i < ACCEPTS_PER_EVENT && l->fd >= 0; i++) {
                int cfd = net_accept(fd);
                if (cfd == -EAGAIN)
                        return;
                if (cfd == -EMFILE || cfd == -ENFILE || cfd == -ENOBUFS || cfd == -ENOMEM) {
                        /* The connection waits in the backlog; the listener is
                         * level-triggered, so asking again at once would spin. */
                        log_warn("listener %s: accept failed: %s; not accepting for %d ms", l->cfg.name,
                                 strerror(-cfd), ACCEPT_PAUSE_MS);
                        loop_mod_fd(loop, fd, 0);
                        l->accept_pause = loop_add_timer(loop, ACCEPT_PAUSE_MS, on_accept_resume, l);
                        return;
                }
                if (cfd < 0) {
                        log_warn("listener %s: accept failed: %s", l->cfg.name, strerror(-cfd));
                        continue; /* ECONNABORTED and the like concern that one connection */
                }
                relay_start(l, cfd);
        }
}

static void listener_set_targets(struct lb *lb, struct lb_listener *l, const struct lb_listener_config *c)
{
        struct lb_target **targets = xcalloc((size_t)c->ntargets, sizeof(*targets));
        for (int i = 0; i < c->ntargets; i++)
                targets[i] = target_get(lb, &c->targets[i], c->check);
        /* Connections to targets this listener no longer names drain. */
        for (int i = 0; i < l->ntargets; i++) {
                bool kept = false;
                for (int j = 0; j < c->ntargets; j++)
                        kept |= targets[j] == l->targets[i];
                if (!kept) {
                        log_info("listener %s: target %s removed; its connections drain", l->cfg.name,
                                 l->targets[i]->addr.text);
                        relay_drain_target(l, l->targets[i]);
                }
                target_release(lb, l->targets[i]);
        }
        free(l->targets);
        l->targets = targets;
        l->ntargets = c->ntargets;
}

static void listener_free(struct lb *lb, struct lb_listener *l)
{
        loop_cancel_timer(lb->loop, l->accept_pause);
        for (int i = 0; i < l->ntargets; i++)
                target_release(lb, l->targets[i]);
        free(l->targets);
        listener_config_free(&l->cfg);
        free(l);
}

void lb_listener_maybe_free(struct lb *lb, struct lb_listener *l)
{
        if (lb->stopping || !l->removed || l->relays)
                return;
        struct lb_listener **pp = &lb->listeners;
        while (*pp && *pp != l)
                pp = &(*pp)->next;
        if (*pp)
                *pp = l->next;
        listener_free(lb, l);
}

/* Stops accepting on <l>; its connections drain; its targets are released. */
static void listener_remove(struct lb *lb, struct lb_listener *l)
{
        log_info("listener %s (%s) removed; %lld connections drain", l->cfg.name, l->cfg.bind.text,
                 (long long)l->active);
        loop_del_fd(lb->loop, l->fd);
        close(l->fd);
        l->fd = -1;
        l->removed = true;
        relay_drain_listener(l);
        for (int i = 0; i < l->ntargets; i++)
                target_release(lb, l->targets[i]);
        free(l->targets);
        l->targets = NULL;
        l->ntargets = 0;
        lb_listener_maybe_free(lb, l);
}

static struct lb_listener *find_listener(struct lb *lb, const char *name)
{
        for (struct lb_listener *l = lb->listeners; l; l = l->next)
                if (!l->removed && strcmp(l->cfg.name, name) == 0)
                        return l;
        return NULL;
}

/* ---- applying a configuration ---- */

/* Whether <cfg> names a listener <name> (with the same address or not). */
static bool find_listener_in(const struct lb_config *cfg, const char *name)
{
        for (int i = 0; i < cfg->nlisteners; i++)
                if (strcmp(cfg->listeners[i].name, name) == 0)
                        return true;
        return false;
}

/* A target shared by listeners with different check kinds gets the stricter one. */
static void update_check_kinds(struct lb *lb)
{
        const char *key;
        void *value;
        for (size_t i = 0; map_next(&lb->targets, &i, &key, &value);)
                ((struct lb_target *)value)->check = LB_CHECK_TCP;
        for (struct lb_listener *l = lb->listeners; l; l = l->next)
                for (int i = 0; i < l->ntargets; i++)
                        if (l->cfg.check == LB_CHECK_KAFKA)
                                l->targets[i]->check = LB_CHECK_KAFKA;
}

static bool same_settings(const struct lb_listener_config *a, const struct lb_listener_config *b)
{
        if (a->ntargets != b->ntargets || a->max_connections != b->max_connections || a->proxy_v2 != b->proxy_v2 ||
            a->check != b->check)
                return false;
        for (int i = 0; i < a->ntargets; i++)
                if (!lb_addr_equal(&a->targets[i], &b->targets[i]))
                        return false;
        return true;
}

/* Applies <cfg> (taken over on success) against what runs. All new sockets are bound
 * first, so a bind failure changes nothing. Returns 0 or -errno with <err>. */
static int apply(struct lb *lb, struct lb_config *cfg, char *err, size_t err_len)
{
        int n = cfg->nlisteners;
        int *new_fd = xcalloc((size_t)MAX(n, 1), sizeof(*new_fd));
        struct lb_listener **kept = xcalloc((size_t)MAX(n, 1), sizeof(*kept));
        int rc = 0;
        for (int i = 0; i < n; i++)
                new_fd[i] = -1;
        /* A listener is kept (socket and connections) when its name and address stay,
         * or when only its name changes (a rename on the same address). */
        for (int i = 0; i < n; i++) {
                struct lb_listener *old = find_listener(lb, cfg->listeners[i].name);
                if (old && lb_addr_equal(&old->cfg.bind, &cfg->listeners[i].bind))
                        kept[i] = old;
        }
        for (int i = 0; i < n; i++) {
                for (struct lb_listener *l = lb->listeners; l && !kept[i]; l = l->next) {
                        bool claimed = false;
                        for (int j = 0; j < n; j++)
                                claimed |= kept[j] == l;
                        if (!l->removed && !claimed && lb_addr_equal(&l->cfg.bind, &cfg->listeners[i].bind) &&
                            !find_listener_in(cfg, l->cfg.name))
                                kept[i] = l;
                }
        }
        for (int i = 0; i < n && rc == 0; i++) {
                struct lb_listener_config *c = &cfg->listeners[i];
                if (kept[i])
                        continue;
                /* A listener moving its bind address may be taking one another listener
                 * frees in this same reload: bind fails then; the operator reloads twice. */
                int fd = bind_listener(c);
                if (fd < 0) {
                        snprintf(err, err_len, "listener %s (line %d): cannot listen on %s: %s", c->name, c->line,
                                 c->bind.text, strerror(-fd));
                        rc = fd;
                        break;
                }
                new_fd[i] = fd;
        }
        if (rc < 0) {
                for (int i = 0; i < n; i++)
                        if (new_fd[i] >= 0)
                                close(new_fd[i]);
                free(new_fd);
                free(kept);
                return rc;
        }
        /* Settings first: drains started below use the new drain timeout. */
        char *old_admin = lb->cfg.admin ? xstrdup(lb->cfg.admin) : NULL;
        struct lb_listener_config *cfg_listeners = cfg->listeners;
        int cfg_n = cfg->nlisteners;
        free(lb->cfg.admin);
        lb->cfg = *cfg;
        lb->cfg.listeners = NULL;
        lb->cfg.nlisteners = 0;
        /* Listeners no longer configured (or moved) are removed. */
        for (struct lb_listener *l = lb->listeners; l;) {
                struct lb_listener *next = l->next;
                bool keep = false;
                for (int i = 0; i < n; i++)
                        keep |= kept[i] == l;
                if (!l->removed && !keep)
                        listener_remove(lb, l);
                l = next;
        }
        int added = 0, changed = 0;
        for (int i = 0; i < n; i++) {
                struct lb_listener_config *c = &cfg_listeners[i];
                struct lb_listener *l = kept[i];
                if (l) {
                        if (strcmp(l->cfg.name, c->name) != 0)
                                log_info("listener %s renamed %s (socket and connections kept)", l->cfg.name, c->name);
                        if (!same_settings(&l->cfg, c) || strcmp(l->cfg.name, c->name) != 0) {
                                changed++;
                                listener_set_targets(lb, l, c);
                                listener_config_free(&l->cfg);
                                listener_config_copy(&l->cfg, c);
                        }
                        continue;
                }
                l = xcalloc(1, sizeof(*l));
                l->lb = lb;
                listener_config_copy(&l->cfg, c);
                l->fd = new_fd[i];
                listener_set_targets(lb, l, c);
                struct lb_listener **pp = &lb->listeners;
                while (*pp)
                        pp = &(*pp)->next;
                *pp = l;
                loop_add_fd(lb->loop, l->fd, LOOP_READABLE, on_accept, l);
                added++;
                log_info("listener %s on %s -> %d target%s", c->name, c->bind.text, c->ntargets,
                         c->ntargets == 1 ? "" : "s (pool)");
        }
        update_check_kinds(lb);
        for (int i = 0; i < cfg_n; i++)
                listener_config_free(&cfg_listeners[i]);
        free(cfg_listeners);
        memset(cfg, 0, sizeof(*cfg));
        /* The admin endpoint moves when its address changed. */
        bool admin_same = (!old_admin && !lb->cfg.admin) ||
                          (old_admin && lb->cfg.admin && strcmp(old_admin, lb->cfg.admin) == 0);
        if (!admin_same || (!lb->admin && lb->cfg.admin)) {
                admin_stop(lb->admin);
                lb->admin = lb->cfg.admin ? admin_start(lb, lb->cfg.admin) : NULL;
        }
        free(old_admin);
        free(new_fd);
        free(kept);
        log_info("configuration applied: %d listeners added, %d changed", added, changed);
        return 0;
}

int lb_start(struct lb *lb, struct loop *loop, const char *path, char *err, size_t err_len)
{
        lb->loop = loop;
        lb->config_path = xstrdup(path);
        map_init(&lb->targets);
        struct lb_config cfg;
        int rc = lb_config_load(path, &cfg, err, err_len);
        if (rc < 0)
                return rc;
        rc = apply(lb, &cfg, err, err_len);
        if (rc < 0) {
                lb_config_free(&cfg);
                return rc;
        }
        if (lb->cfg.admin && !lb->admin) {
                snprintf(err, err_len, "admin endpoint %s could not start", lb->cfg.admin);
                return -EADDRINUSE;
        }
        return 0;
}

int lb_reload(struct lb *lb)
{
        char err[512];
        struct lb_config cfg;
        int rc = lb_config_load(lb->config_path, &cfg, err, sizeof(err));
        if (rc == 0) {
                rc = apply(lb, &cfg, err, sizeof(err));
                if (rc < 0)
                        lb_config_free(&cfg);
        }
        if (rc < 0) {
                lb->reloads_error++;
                log_error("reload refused, the running configuration stays: %s", err);
                return rc;
        }
        lb->reloads_ok++;
        return 0;
}

void lb_stop(struct lb *lb)
{
        lb->stopping = true;
        admin_stop(lb->admin);
        lb->admin = NULL;
        loop_cancel_timer(lb->loop, lb->ready_timer);
        lb->ready_timer = NULL;
        relay_close_all(lb);
        while (lb->listeners) {
                struct lb_listener *l = lb->listeners;
                lb->listeners = l->next;
                if (l->fd >= 0) {
                        loop_del_fd(lb->loop, l->fd);
                        close(l->fd);
                }
                listener_free(lb, l);
        }
        map_deinit(&lb->targets);
        lb_config_free(&lb->cfg);
        free(lb->config_path);
        lb->config_path = NULL;
}
