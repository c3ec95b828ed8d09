/* One relayed connection: a client socket, a target socket, and per direction a pipe that
 * splice() moves bytes through without copying them into user space. The pipe is the
 * only buffer: when the reader is slow, the pipe fills, the writer side stops reading
 * its socket, and TCP flow control pushes back on the sender. Both sockets are
 * edge-triggered; every event runs pump(), which moves what it can until the kernel says
 * EAGAIN (or a fairness budget runs out, and the relay continues before the loop sleeps).
 *
 * Direction 0 is client -> target, direction 1 target -> client. A direction ends when
 * its source reaches EOF and its pipe is empty: the destination gets shutdown(SHUT_WR)
 * (half-close passed on). The relay closes when both directions ended, or on any error. */
#define LOG_TOPIC "relay"
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/fileio.h"
#include "base/log.h"
#include "lb/lb.h"
#include "loop/loop.h"

#define BUDGET_BYTES (1 << 20) /* per event, before yielding to other connections */
#define PIPE_CHUNK (1 << 16)
#define MAX_SPARE_PIPES 512

struct relay {
        struct lb *lb;
        struct lb_listener *listener;
        struct lb_target *target;
        int fd[2];                 /* [0] client, [1] target */
        int pipe_rd[2], pipe_wr[2]; /* per direction */
        int64_t in_pipe[2];
        bool eof[2];               /* the direction's source reached EOF */
        bool shut[2];              /* the direction's destination got SHUT_WR */
        bool connected;
        bool draining;
        int attempts;              /* connect attempts (pools try another target) */
        struct sockaddr_storage client_addr;
        socklen_t client_addr_len;
        struct loop_timer *timer;  /* connect timeout, then the drain deadline */
        bool ready;
        struct relay *ready_next;
        struct relay *lprev, *lnext, *tprev, *tnext;
};

static uint64_t rng_state;

static uint64_t rng_next(void)
{
        if (!rng_state && getrandom(&rng_state, sizeof(rng_state), 0) != sizeof(rng_state))
                rng_state = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

/* A uniformly random up target of <l>, or NULL. */
static struct lb_target *pick_target(struct lb_listener *l)
{
        int up = 0;
        for (int i = 0; i < l->ntargets; i++)
                up += l->targets[i]->up;
        if (up == 0)
                return NULL;
        int k = (int)(rng_next() % (uint64_t)up);
        for (int i = 0; i < l->ntargets; i++)
                if (l->targets[i]->up && k-- == 0)
                        return l->targets[i];
        return NULL;
}

/* ---- pipes ---- */

static int pipe_get(struct lb *lb, int *rd, int *wr)
{
        if (lb->nspare > 0) {
                lb->nspare--;
                *rd = lb->spare_pipes[2 * lb->nspare];
                *wr = lb->spare_pipes[2 * lb->nspare + 1];
                return 0;
        }
        int p[2];
        if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
                return -errno;
        *rd = p[0];
        *wr = p[1];
        return 0;
}

static void pipe_put(struct lb *lb, int rd, int wr, bool empty)
{
        if (rd < 0)
                return;
        if (empty && lb->nspare < MAX_SPARE_PIPES && !lb->stopping) {
                if (!lb->spare_pipes)
                        lb->spare_pipes = xmalloc(2 * MAX_SPARE_PIPES * sizeof(int));
                lb->spare_pipes[2 * lb->nspare] = rd;
                lb->spare_pipes[2 * lb->nspare + 1] = wr;
                lb->nspare++;
                return;
        }
        close(rd);
        close(wr);
}

/* ---- lists ---- */

static void link_target(struct relay *r, struct lb_target *t)
{
        r->target = t;
        t->refs++;
        t->active++;
        r->tprev = NULL;
        r->tnext = t->relays;
        if (t->relays)
                t->relays->tprev = r;
        t->relays = r;
}

static void unlink_target(struct relay *r)
{
        struct lb_target *t = r->target;
        if (!t)
                return;
        if (r->tprev)
                r->tprev->tnext = r->tnext;
        else
                t->relays = r->tnext;
        if (r->tnext)
                r->tnext->tprev = r->tprev;
        r->target = NULL;
        t->active--;
        lb_target_unref(r->lb, t);
}

static void unready(struct relay *r)
{
        if (!r->ready)
                return;
        struct relay **pp = &r->lb->ready;
        while (*pp && *pp != r)
                pp = &(*pp)->ready_next;
        if (*pp)
                *pp = r->ready_next;
        r->ready = false;
}

void relay_close(struct relay *r, const char *why)
{
        struct lb *lb = r->lb;
        struct lb_listener *l = r->listener;
        log_debug("close listener=%s target=%s: %s", l->cfg.name, r->target ? r->target->addr.text : "-", why);
        unready(r);
        loop_cancel_timer(lb->loop, r->timer);
        for (int i = 0; i < 2; i++) {
                if (r->fd[i] >= 0) {
                        loop_del_fd(lb->loop, r->fd[i]);
                        close(r->fd[i]);
                }
                pipe_put(lb, r->pipe_rd[i], r->pipe_wr[i], r->in_pipe[i] == 0);
        }
        if (r->draining)
                lb->draining--;
        unlink_target(r);
        if (r->lprev)
                r->lprev->lnext = r->lnext;
        else
                l->relays = r->lnext;
        if (r->lnext)
                r->lnext->lprev = r->lprev;
        l->active--;
        free(r);
        lb_listener_maybe_free(lb, l);
}

/* ---- moving bytes ---- */

/* Moves bytes in direction <d> until the kernel blocks, the direction ends, or the
 * budget runs out. Returns 0, or -errno when the relay must close. */
static int pump_dir(struct relay *r, int d, int64_t *budget)
{
        int src = r->fd[d], dst = r->fd[1 - d];
        for (;;) {
                bool progress = false;
                if (!r->eof[d] && r->in_pipe[d] < PIPE_CHUNK && *budget > 0) {
                        ssize_t n = splice(src, NULL, r->pipe_wr[d], NULL, (size_t)(PIPE_CHUNK - r->in_pipe[d]),
                                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                        if (n > 0) {
                                r->in_pipe[d] += n;
                                progress = true;
                        } else if (n == 0) {
                                r->eof[d] = true;
                                progress = true;
                        } else if (errno != EAGAIN && errno != EINTR) {
                                return -errno;
                        }
                }
                if (r->in_pipe[d] > 0) {
                        ssize_t n = splice(r->pipe_rd[d], NULL, dst, NULL, (size_t)r->in_pipe[d],
                                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                        if (n > 0) {
                                r->in_pipe[d] -= n;
                                *budget -= n;
                                if (d == 0)
                                        r->listener->bytes_in += n;
                                else
                                        r->listener->bytes_out += n;
                                progress = true;
                        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                                return -errno;
                        }
                }
                if (r->eof[d] && r->in_pipe[d] == 0 && !r->shut[d]) {
                        /* Pass the half-close on; ENOTCONN: the peer is gone already. */
                        if (shutdown(dst, SHUT_WR) < 0 && errno != ENOTCONN)
                                return -errno;
                        r->shut[d] = true;
                }
                if (!progress || r->shut[d])
                        return 0;
                if (*budget <= 0)
                        return 0;
        }
}

static void schedule_ready(struct relay *r);

static void pump(struct relay *r)
{
        int64_t budget = BUDGET_BYTES;
        for (int d = 0; d < 2; d++) {
                int rc = pump_dir(r, d, &budget);
                if (rc < 0) {
                        relay_close(r, strerror(-rc));
                        return;
                }
        }
        if (r->shut[0] && r->shut[1]) {
                relay_close(r, "both directions ended");
                return;
        }
        if (budget <= 0)
                schedule_ready(r);
}

static void on_ready_timer(struct loop *loop, void *arg)
{
        struct lb *lb = arg;
        lb->ready_timer = NULL;
        relay_run_ready(lb);
}

static void schedule_ready(struct relay *r)
{
        struct lb *lb = r->lb;
        if (!r->ready) {
                r->ready = true;
                r->ready_next = lb->ready;
                lb->ready = r;
        }
        if (!lb->ready_timer)
                lb->ready_timer = loop_add_timer(lb->loop, 0, on_ready_timer, lb);
}

void relay_run_ready(struct lb *lb)
{
        struct relay *list = lb->ready;
        lb->ready = NULL;
        while (list) {
                struct relay *r = list;
                list = r->ready_next;
                r->ready = false;
                r->ready_next = NULL;
                pump(r);
        }
}

/* ---- connecting ---- */

static int start_drain_deadline(struct relay *r);

static int try_connect(struct relay *r);

static void connect_failed(struct relay *r, const char *why)
{
        struct lb_listener *l = r->listener;
        struct lb_target *t = r->target;
        log_info("connect to target %s (listener %s) failed: %s", t->addr.text, l->cfg.name, why);
        health_connect_failed(r->lb, t);
        loop_del_fd(r->lb->loop, r->fd[1]);
        close(r->fd[1]);
        r->fd[1] = -1;
        loop_cancel_timer(r->lb->loop, r->timer);
        r->timer = NULL;
        unlink_target(r);
        /* A pool tries another up target. */
        if (r->attempts < l->ntargets && try_connect(r) == 0)
                return;
        l->rejected_connect++;
        relay_close(r, "no target could be connected");
}

static void on_connect_timeout(struct loop *loop, void *arg)
{
        struct relay *r = arg;
        r->timer = NULL;
        connect_failed(r, "timed out");
}

/* The PROXY protocol v2 header for this connection (the client's address and the
 * listener's), sent before any client byte. Returns 0 or -errno. */
static int send_proxy_v2(struct relay *r)
{
        static const uint8_t sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };
        struct sockaddr_storage local;
        socklen_t local_len = sizeof(local);
        r->client_addr_len = sizeof(r->client_addr);
        if (getsockname(r->fd[0], (struct sockaddr *)&local, &local_len) < 0 ||
            getpeername(r->fd[0], (struct sockaddr *)&r->client_addr, &r->client_addr_len) < 0)
                return -errno;
        uint8_t h[16 + 36];
        memcpy(h, sig, sizeof(sig));
        h[12] = 0x21; /* version 2, PROXY */
        size_t len;
        if (r->client_addr.ss_family == AF_INET && local.ss_family == AF_INET) {
                const struct sockaddr_in *s = (const void *)&r->client_addr, *d = (const void *)&local;
                h[13] = 0x11; /* TCP over IPv4 */
                store_be16(h + 14, 12);
                memcpy(h + 16, &s->sin_addr, 4);
                memcpy(h + 20, &d->sin_addr, 4);
                memcpy(h + 24, &s->sin_port, 2);
                memcpy(h + 26, &d->sin_port, 2);
                len = 28;
        } else if (r->client_addr.ss_family == AF_INET6 && local.ss_family == AF_INET6) {
                const struct sockaddr_in6 *s = (const void *)&r->client_addr, *d = (const void *)&local;
                h[13] = 0x21; /* TCP over IPv6 */
                store_be16(h + 14, 36);
                memcpy(h + 16, &s->sin6_addr, 16);
                memcpy(h + 32, &d->sin6_addr, 16);
                memcpy(h + 48, &s->sin6_port, 2);
                memcpy(h + 50, &d->sin6_port, 2);
                len = 52;
        } else {
                h[12] = 0x20; /* LOCAL: addresses unknown */
                h[13] = 0x00;
                store_be16(h + 14, 0);
                len = 16;
        }
        ssize_t n = send(r->fd[1], h, len, MSG_NOSIGNAL);
        if (n < 0)
                return -errno;
        return (size_t)n == len ? 0 : -EAGAIN;
}

static void on_connected(struct relay *r)
{
        struct lb *lb = r->lb;
        r->connected = true;
        loop_cancel_timer(lb->loop, r->timer);
        r->timer = NULL;
        int rc = 0;
        for (int d = 0; d < 2 && rc == 0; d++)
                rc = pipe_get(lb, &r->pipe_rd[d], &r->pipe_wr[d]);
        if (rc == 0 && r->listener->cfg.proxy_v2)
                rc = send_proxy_v2(r);
        if (rc < 0) {
                relay_close(r, strerror(-rc));
                return;
        }
        if (r->draining && start_drain_deadline(r) < 0)
                return; /* closed: drained while connecting, with no deadline */
        pump(r);
}

static void on_event(struct loop *loop, int fd, uint32_t events, void *arg)
{
        struct relay *r = arg;
        if (!r->connected) {
                if (fd != r->fd[1] || !(events & LOOP_WRITABLE))
                        return; /* client bytes wait in its socket until the target is connected */
                int err = 0;
                socklen_t len = sizeof(err);
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                        err = errno;
                if (err == EINPROGRESS || err == EALREADY)
                        return;
                if (err) {
                        connect_failed(r, strerror(err));
                        return;
                }
                /* SO_ERROR is 0 while a connect is still in progress too: a stale event
                 * (an fd number reused within one epoll batch) must not count. */
                struct sockaddr_storage peer;
                socklen_t plen = sizeof(peer);
                if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0)
                        return;
                on_connected(r);
                return;
        }
        pump(r);
}

/* Connects to a target picked from the listener's up targets. Returns 0 (connecting or
 * connected) or -errno (no target, or socket failure). */
static int try_connect(struct relay *r)
{
        struct lb *lb = r->lb;
        struct lb_listener *l = r->listener;
        struct lb_target *t = pick_target(l);
        if (!t)
                return -EHOSTUNREACH;
        r->attempts++;
        int fd = socket(t->addr.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        link_target(r, t);
        r->fd[1] = fd;
        if (connect(fd, (const struct sockaddr *)&t->addr.sa, t->addr.sa_len) < 0 && errno != EINPROGRESS) {
                int err = errno;
                r->fd[1] = -1;
                close(fd);
                health_connect_failed(lb, t);
                unlink_target(r);
                log_info("connect to target %s (listener %s) failed: %s", t->addr.text, l->cfg.name, strerror(err));
                if (r->attempts < l->ntargets)
                        return try_connect(r);
                return -err;
        }
        int rc = loop_add_fd(lb->loop, fd, LOOP_READABLE | LOOP_WRITABLE | LOOP_EDGE, on_event, r);
        if (rc < 0) {
                r->fd[1] = -1;
                close(fd);
                unlink_target(r);
                return rc;
        }
        r->timer = loop_add_timer(lb->loop, lb->cfg.connect_timeout_ms, on_connect_timeout, r);
        return 0;
}

void relay_start(struct lb_listener *l, int fd)
{
        struct lb *lb = l->lb;
        l->accepted++;
        if (l->active >= l->cfg.max_connections) {
                l->rejected_max++;
                close(fd);
                return;
        }
        struct relay *r = xcalloc(1, sizeof(*r));
        r->lb = lb;
        r->listener = l;
        r->fd[0] = fd;
        r->fd[1] = -1;
        for (int d = 0; d < 2; d++)
                r->pipe_rd[d] = r->pipe_wr[d] = -1;
        r->lnext = l->relays;
        if (l->relays)
                l->relays->lprev = r;
        l->relays = r;
        l->active++;
        if (loop_add_fd(lb->loop, fd, LOOP_READABLE | LOOP_WRITABLE | LOOP_EDGE, on_event, r) < 0) {
                relay_close(r, "cannot watch the client socket");
                return;
        }
        int rc = try_connect(r);
        if (rc < 0) {
                if (rc == -EHOSTUNREACH && r->attempts == 0)
                        l->rejected_no_target++;
                else
                        l->rejected_connect++;
                relay_close(r, rc == -EHOSTUNREACH ? "no target is up" : strerror(-rc));
        }
}

/* ---- draining ---- */

static void on_drain_deadline(struct loop *loop, void *arg)
{
        struct relay *r = arg;
        r->timer = NULL;
        relay_close(r, "drain deadline");
}

/* Arms the drain deadline of a connected relay. Returns 0, or -1 when it closed it at
 * once (drain_timeout_ms 0). */
static int start_drain_deadline(struct relay *r)
{
        struct lb *lb = r->lb;
        if (lb->cfg.drain_timeout_ms == 0) {
                relay_close(r, "drained");
                return -1;
        }
        loop_cancel_timer(lb->loop, r->timer);
        r->timer = loop_add_timer(lb->loop, lb->cfg.drain_timeout_ms, on_drain_deadline, r);
        return 0;
}

static void drain(struct relay *r)
{
        if (r->draining)
                return;
        r->draining = true;
        r->lb->draining++;
        /* While connecting, the connect timer stays; on_connected() arms the deadline. */
        if (r->connected)
                start_drain_deadline(r);
}

void relay_drain_listener(struct lb_listener *l)
{
        struct relay *r = l->relays;
        while (r) {
                struct relay *next = r->lnext;
                drain(r);
                r = next;
        }
}

void relay_drain_target(struct lb_listener *l, struct lb_target *t)
{
        struct relay *r = l->relays;
        while (r) {
                struct relay *next = r->lnext;
                if (r->target == t)
                        drain(r);
                r = next;
        }
}

void relay_close_all(struct lb *lb)
{
        for (struct lb_listener *l = lb->listeners; l;) {
                struct lb_listener *next = l->next;
                while (l->relays)
                        relay_close(l->relays, "shutdown");
                l = next;
        }
        for (int i = 0; i < lb->nspare; i++) {
                close(lb->spare_pipes[2 * i]);
                close(lb->spare_pipes[2 * i + 1]);
        }
        lb->nspare = 0;
        free(lb->spare_pipes);
        lb->spare_pipes = NULL;
}
