/* The loop's epoll backend, timer heap and before-sleep hooks. Phase order per
 * iteration (like uv_run): expired timers, before-sleep hooks, wait, fd callbacks. */
#include "loop/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"

struct fd_slot {
        loop_fd_fn *fn;
        void *arg;
        uint32_t events; /* LOOP_* flags watched, 0 when not registered */
};

struct loop_timer {
        int64_t due_ms;
        uint64_t seq; /* ties broken by insertion order */
        int heap_index;
        loop_timer_fn *fn;
        void *arg;
};

struct hook {
        loop_hook_fn *fn;
        void *arg;
};

struct loop {
        int epfd;
        bool stopping;
        int64_t now_ms;
        struct fd_slot *fds;
        int nfds;
        struct loop_timer **heap;
        int nheap, cap_heap;
        uint64_t timer_seq;
        struct hook *hooks;
        int nhooks;
};

struct loop *loop_new(void)
{
        struct loop *loop = xcalloc(1, sizeof(*loop));
        loop->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (loop->epfd < 0) {
                free(loop);
                return NULL;
        }
        loop->now_ms = clock_mono_ms();
        return loop;
}

void loop_free(struct loop *loop)
{
        if (!loop)
                return;
        for (int i = 0; i < loop->nheap; i++)
                free(loop->heap[i]);
        free(loop->heap);
        free(loop->fds);
        free(loop->hooks);
        close(loop->epfd);
        free(loop);
}

static uint32_t to_epoll(uint32_t events)
{
        return (events & LOOP_READABLE ? EPOLLIN : 0) | (events & LOOP_WRITABLE ? EPOLLOUT : 0) |
               (events & LOOP_EDGE ? EPOLLET | EPOLLRDHUP : 0);
}

int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_fn *fn, void *arg)
{
        if (fd >= loop->nfds) {
                int n = loop->nfds ? loop->nfds : 64;
                while (n <= fd)
                        n *= 2;
                loop->fds = xrealloc(loop->fds, (size_t)n * sizeof(*loop->fds));
                for (int i = loop->nfds; i < n; i++)
                        loop->fds[i] = (struct fd_slot){ 0 };
                loop->nfds = n;
        }
        struct epoll_event ev = { .events = to_epoll(events), .data.fd = fd };
        if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
                return -errno;
        loop->fds[fd] = (struct fd_slot){ fn, arg, events | 0x80000000u };
        return 0;
}

int loop_mod_fd(struct loop *loop, int fd, uint32_t events)
{
        if (fd >= loop->nfds || !loop->fds[fd].events)
                return -EBADF;
        if ((loop->fds[fd].events & ~0x80000000u) == events)
                return 0;
        struct epoll_event ev = { .events = to_epoll(events), .data.fd = fd };
        if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
                return -errno;
        loop->fds[fd].events = events | 0x80000000u;
        return 0;
}

void loop_del_fd(struct loop *loop, int fd)
{
        if (fd < 0 || fd >= loop->nfds || !loop->fds[fd].events)
                return;
        epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
        loop->fds[fd] = (struct fd_slot){ 0 };
}

static bool timer_less(const struct loop_timer *a, const struct loop_timer *b)
{
        return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->seq < b->seq);
}

static void heap_set(struct loop *loop, int i, struct loop_timer *t)
{
        loop->heap[i] = t;
        t->heap_index = i;
}

static void heap_up(struct loop *loop, int i)
{
        struct loop_timer *t = loop->heap[i];
        while (i > 0) {
                int parent = (i - 1) / 2;
                if (!timer_less(t, loop->heap[parent]))
                        break;
                heap_set(loop, i, loop->heap[parent]);
                i = parent;
        }
        heap_set(loop, i, t);
}

static void heap_down(struct loop *loop, int i)
{
        struct loop_timer *t = loop->heap[i];
        for (;;) {
                int child = 2 * i + 1;
                if (child >= loop->nheap)
                        break;
                if (child + 1 < loop->nheap && timer_less(loop->heap[child + 1], loop->heap[child]))
                        child++;
                if (!timer_less(loop->heap[child], t))
                        break;
                heap_set(loop, i, loop->heap[child]);
                i = child;
        }
        heap_set(loop, i, t);
}

static void heap_remove(struct loop *loop, struct loop_timer *t)
{
        int i = t->heap_index;
        struct loop_timer *last = loop->heap[--loop->nheap];
        if (i == loop->nheap)
                return;
        heap_set(loop, i, last);
        heap_up(loop, i);
        heap_down(loop, last->heap_index);
}

struct loop_timer *loop_add_timer(struct loop *loop, int64_t delay_ms, loop_timer_fn *fn, void *arg)
{
        struct loop_timer *t = xmalloc(sizeof(*t));
        t->due_ms = clock_mono_ms() + (delay_ms > 0 ? delay_ms : 0);
        t->seq = loop->timer_seq++;
        t->fn = fn;
        t->arg = arg;
        if (loop->nheap == loop->cap_heap) {
                loop->cap_heap = loop->cap_heap ? loop->cap_heap * 2 : 64;
                loop->heap = xrealloc(loop->heap, (size_t)loop->cap_heap * sizeof(*loop->heap));
        }
        heap_set(loop, loop->nheap++, t);
        heap_up(loop, t->heap_index);
        return t;
}

void loop_cancel_timer(struct loop *loop, struct loop_timer *timer)
{
        if (!timer)
                return;
        heap_remove(loop, timer);
        free(timer);
}

void loop_before_sleep(struct loop *loop, loop_hook_fn *fn, void *arg)
{
        loop->hooks = xrealloc(loop->hooks, (size_t)(loop->nhooks + 1) * sizeof(*loop->hooks));
        loop->hooks[loop->nhooks++] = (struct hook){ fn, arg };
}

void loop_stop(struct loop *loop)
{
        loop->stopping = true;
}

int64_t loop_now_ms(const struct loop *loop)
{
        return loop->now_ms;
}

static void run_timers(struct loop *loop)
{
        while (loop->nheap > 0 && loop->heap[0]->due_ms <= loop->now_ms && !loop->stopping) {
                struct loop_timer *t = loop->heap[0];
                heap_remove(loop, t);
                loop_timer_fn *fn = t->fn;
                void *arg = t->arg;
                free(t);
                fn(loop, arg);
        }
}

int loop_run(struct loop *loop)
{
        struct epoll_event events[256];
        loop->stopping = false;
        while (!loop->stopping) {
                loop->now_ms = clock_mono_ms();
                run_timers(loop);
                for (int i = 0; i < loop->nhooks && !loop->stopping; i++)
                        loop->hooks[i].fn(loop, loop->hooks[i].arg);
                if (loop->stopping)
                        break;
                int timeout = -1;
                if (loop->nheap > 0) {
                        int64_t wait = loop->heap[0]->due_ms - clock_mono_ms();
                        timeout = wait < 0 ? 0 : (int)MIN(wait, 60000);
                }
                int n = epoll_wait(loop->epfd, events, (int)ARRAY_LEN(events), timeout);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                loop->now_ms = clock_mono_ms();
                for (int i = 0; i < n; i++) {
                        int fd = events[i].data.fd;
                        if (fd >= loop->nfds || !loop->fds[fd].events)
                                continue; /* removed by an earlier callback */
                        uint32_t ev = 0;
                        if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                                ev |= LOOP_READABLE;
                        if (events[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
                                ev |= LOOP_WRITABLE;
                        loop->fds[fd].fn(loop, fd, ev, loop->fds[fd].arg);
                }
        }
        return 0;
}
