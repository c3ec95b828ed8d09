/* Active health checks, one at a time per target, every health_interval_ms: a TCP
 * connect, or (health_check kafka) a connect plus an ApiVersions v0 request whose answer
 * must come back with our correlation id. health_rise consecutive passes bring a down
 * target up; health_fall consecutive failures, or one refused relay connect, take an up
 * target down. */
#define LOG_TOPIC "health"
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "lb/lb.h"
#include "loop/loop.h"

#define CORRELATION_ID 0x53545254 /* "STRT" */

static void on_check_timer(struct loop *loop, void *arg);

static void schedule(struct lb *lb, struct lb_target *t, int64_t delay_ms)
{
        loop_cancel_timer(lb->loop, t->check_timer);
        t->check_timer = loop_add_timer(lb->loop, delay_ms, on_check_timer, t);
}

static void set_up(struct lb_target *t, bool up, const char *why)
{
        if (t->up == up)
                return;
        t->up = up;
        t->streak = 0;
        if (up)
                log_info("target %s is up", t->addr.text);
        else
                log_warn("target %s is down: %s", t->addr.text, why);
}

static void finish(struct lb *lb, struct lb_target *t, bool ok, const char *why)
{
        if (t->check_fd >= 0) {
                loop_del_fd(lb->loop, t->check_fd);
                close(t->check_fd);
                t->check_fd = -1;
        }
        if (ok)
                t->checks_ok++;
        else
                t->checks_fail++;
        if (ok == t->up) {
                t->streak = 0;
        } else {
                t->streak++;
                if (ok && t->streak >= lb->cfg.health_rise)
                        set_up(t, true, NULL);
                else if (!ok && t->streak >= lb->cfg.health_fall)
                        set_up(t, false, why);
        }
        if (!ok)
                log_debug("check of %s failed: %s", t->addr.text, why);
        schedule(lb, t, lb->cfg.health_interval_ms);
}

static void on_check_event(struct loop *loop, int fd, uint32_t events, void *arg)
{
        struct lb_target *t = arg;
        struct lb *lb = t->lb;
        if (t->check_got < 0) {
                /* Connecting. */
                int err = 0;
                socklen_t len = sizeof(err);
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                        err = errno;
                if (err == EINPROGRESS || err == EALREADY)
                        return;
                if (err) {
                        finish(lb, t, false, strerror(err));
                        return;
                }
                struct sockaddr_storage peer; /* still connecting (a stale event)? */
                socklen_t plen = sizeof(peer);
                if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0)
                        return;
                if (t->check == LB_CHECK_TCP) {
                        finish(lb, t, true, NULL);
                        return;
                }
                static const char client_id[] = "stratus-lb-health";
                uint8_t req[4 + 2 + 2 + 4 + 2 + sizeof(client_id) - 1];
                store_be32(req, (uint32_t)(sizeof(req) - 4));
                store_be16(req + 4, 18); /* ApiVersions */
                store_be16(req + 6, 0);
                store_be32(req + 8, CORRELATION_ID);
                store_be16(req + 12, (uint16_t)(sizeof(client_id) - 1));
                memcpy(req + 14, client_id, sizeof(client_id) - 1);
                if (send(fd, req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req)) {
                        finish(lb, t, false, "cannot send ApiVersions");
                        return;
                }
                t->check_got = 0;
                loop_mod_fd(loop, fd, LOOP_READABLE);
                return;
        }
        /* Waiting for the ApiVersions answer: its size and correlation id are enough. */
        ssize_t n = recv(fd, t->check_buf + t->check_got, 8 - (size_t)t->check_got, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) {
                finish(lb, t, false, n == 0 ? "closed before answering ApiVersions" : strerror(errno));
                return;
        }
        t->check_got += (int)n;
        if (t->check_got < 8)
                return;
        bool ok = load_be32(t->check_buf + 4) == CORRELATION_ID && load_be32(t->check_buf) >= 4;
        finish(lb, t, ok, ok ? NULL : "not a Kafka ApiVersions answer");
}

static void on_check_timer(struct loop *loop, void *arg)
{
        struct lb_target *t = arg;
        struct lb *lb = t->lb;
        t->check_timer = NULL;
        if (t->check_fd >= 0) {
                finish(lb, t, false, "timed out");
                return;
        }
        int fd = socket(t->addr.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                finish(lb, t, false, strerror(errno));
                return;
        }
        t->check_fd = fd;
        t->check_got = -1;
        t->check_started_ms = loop_now_ms(loop);
        if (connect(fd, (const struct sockaddr *)&t->addr.sa, t->addr.sa_len) < 0 && errno != EINPROGRESS) {
                finish(lb, t, false, strerror(errno));
                return;
        }
        if (loop_add_fd(loop, fd, LOOP_WRITABLE, on_check_event, t) < 0) {
                finish(lb, t, false, "cannot watch the check socket");
                return;
        }
        /* The timeout of this check; finish() schedules the next one. */
        t->check_timer = loop_add_timer(loop, lb->cfg.health_timeout_ms, on_check_timer, t);
}

void health_start(struct lb *lb, struct lb_target *t)
{
        t->check_fd = -1;
        schedule(lb, t, 0);
}

void health_stop(struct lb *lb, struct lb_target *t)
{
        loop_cancel_timer(lb->loop, t->check_timer);
        t->check_timer = NULL;
        if (t->check_fd >= 0) {
                loop_del_fd(lb->loop, t->check_fd);
                close(t->check_fd);
                t->check_fd = -1;
        }
}

void health_connect_failed(struct lb *lb, struct lb_target *t)
{
        set_up(t, false, "a relayed connection could not connect");
}
