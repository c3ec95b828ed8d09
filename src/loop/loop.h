/* A single-threaded event loop: fd readiness (epoll), one-shot timers (a min-heap),
 * and before-sleep hooks that run once per iteration before waiting (where deferred
 * frees and group commits happen). Loop thread only. */
#ifndef STRATUS_LOOP_LOOP_H
#define STRATUS_LOOP_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct loop_timer;

#define LOOP_READABLE 0x1u
#define LOOP_WRITABLE 0x2u
/* Edge-triggered: the callback sees each change of readiness once and must read or write
 * until EAGAIN (the relay of `stratus lb`). Set once at loop_add_fd(). */
#define LOOP_EDGE 0x4u

typedef void loop_fd_fn(struct loop *loop, int fd, uint32_t events, void *arg);
typedef void loop_timer_fn(struct loop *loop, void *arg);
typedef void loop_hook_fn(struct loop *loop, void *arg);

struct loop *loop_new(void);
void loop_free(struct loop *loop);

/* Watches <fd> for <events> (LOOP_READABLE|LOOP_WRITABLE). Returns 0 or -errno. */
int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_fn *fn, void *arg);
/* Changes the events watched on <fd>; a no-op when unchanged. */
int loop_mod_fd(struct loop *loop, int fd, uint32_t events);
void loop_del_fd(struct loop *loop, int fd);

/* Calls <fn>(<arg>) once, <delay_ms> from now. The timer is freed after it fires or
 * when cancelled; do not use the pointer after either. */
struct loop_timer *loop_add_timer(struct loop *loop, int64_t delay_ms, loop_timer_fn *fn, void *arg);
/* Cancels a pending timer. loop_cancel_timer(loop, NULL) does nothing. */
void loop_cancel_timer(struct loop *loop, struct loop_timer *timer);

/* Registers a hook called before each wait, in registration order. */
void loop_before_sleep(struct loop *loop, loop_hook_fn *fn, void *arg);

/* Runs until loop_stop(). Returns 0, or -errno if epoll_wait fails. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);
/* Monotonic milliseconds, cached once per iteration. */
int64_t loop_now_ms(const struct loop *loop);

#endif
