/* lb_bench: the load tool of the load-balancer benchmark (bench/lb_run.py). Plain TCP, libc
 * and pthreads only. Modes:
 *
 *   server     one epoll thread on --listen: the far end of every measurement. The first
 *              byte a connection sends picks what it is: 'S' a sink (reads and discards;
 *              at EOF answers the 8-byte count of bytes it read, little endian, and
 *              closes), 'E' an echo (writes back every byte after the 'E'), 'C' a
 *              connection test (answers one byte at once, closes at EOF). A connection
 *              that closes before its first byte (a health check) is just closed.
 *   stream     --connections N connections to --target push data as fast as they can
 *              (write() of --chunk bytes) for --warmup + --seconds, then shut down their
 *              write side and wait for the sink's count, which must equal what they sent
 *              (every byte relayed). The rate counts the bytes written after the warm-up,
 *              from the end of the warm-up to the last sink answer.
 *   pingpong   one connection, TCP_NODELAY, --size bytes out, the same --size bytes back,
 *              one at a time, for --seconds after --warmup: every round trip is kept, so
 *              the percentiles are exact.
 *   connect    --threads T threads each loop: socket, connect, write 1 byte, read the
 *              1-byte answer, close; for --seconds after --warmup. New connections per
 *              second and the time of each (connect() call to answer read).
 *
 * Each client run prints one JSON line (starting with '{') and one human line (starting
 * with '#'). The server prints {"mode":"server","listen":"127.0.0.1:PORT"} once it
 * listens (--listen with port 0 picks a free port) and runs until SIGTERM/SIGINT or
 * --max-seconds. Every client run is bounded: an alarm ends it (JSON with "error") at
 * warm-up + seconds + --grace seconds. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_STREAMS 256
#define MAX_THREADS 64
#define GIB (1024.0 * 1024.0 * 1024.0)
#define MIB (1024.0 * 1024.0)

struct opts {
        const char *mode;
        const char *listen;
        const char *target;
        const char *label;
        int connections;
        int threads;
        int size;
        size_t chunk;
        double seconds;
        double warmup;
        double grace;
        double max_seconds;
};

static struct opts O = {
        .connections = 1, .threads = 4, .size = 64, .chunk = 128 * 1024,
        .seconds = 3, .warmup = 0.5, .grace = 30, .max_seconds = 3600,
};

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, const char *arg)
{
        fprintf(stderr, "lb_bench: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\n");
        exit(2);
}

static int parse_addr(const char *s, struct sockaddr_in *sa)
{
        char host[64];
        const char *colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof host)
                return -1;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = 0;
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end || port < 0 || port > 65535)
                return -1;
        memset(sa, 0, sizeof *sa);
        sa->sin_family = AF_INET;
        sa->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
                return -1;
        return 0;
}

static struct sockaddr_in target_sa;

static void set_nodelay(int fd)
{
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void set_rcvtimeo(int fd, double s)
{
        struct timeval tv = {.tv_sec = (time_t)s, .tv_usec = (suseconds_t)((s - (double)(time_t)s) * 1e6)};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

/* A blocking connection to the target, or -1 with errno set. */
static int dial(void)
{
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        if (connect(fd, (struct sockaddr *)&target_sa, sizeof target_sa) < 0) {
                int e = errno;
                close(fd);
                errno = e;
                return -1;
        }
        return fd;
}

static int write_all(int fd, const void *p, size_t n)
{
        const char *c = p;
        while (n) {
                ssize_t w = write(fd, c, n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -1;
                }
                c += w;
                n -= (size_t)w;
        }
        return 0;
}

/* 0 when <n> bytes were read, -1 on error or EOF (errno 0 for EOF). */
static int read_all(int fd, void *p, size_t n)
{
        char *c = p;
        while (n) {
                ssize_t r = read(fd, c, n);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -1;
                }
                if (r == 0) {
                        errno = 0;
                        return -1;
                }
                c += r;
                n -= (size_t)r;
        }
        return 0;
}

static double cpu_self_s(void)
{
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
               (double)ru.ru_stime.tv_usec / 1e6;
}

static void json_str(const char *key, const char *v)
{
        printf("\"%s\":\"", key);
        for (const char *c = v ? v : ""; *c; c++) {
                if (*c == '"' || *c == '\\')
                        putchar('\\');
                if ((unsigned char)*c >= 0x20)
                        putchar(*c);
        }
        printf("\"");
}

static void json_head(void)
{
        printf("{");
        json_str("mode", O.mode);
        printf(",");
        json_str("target", O.target);
        if (O.label) {
                printf(",");
                json_str("label", O.label);
        }
}

/* ---- the bound on every client run ---------------------------------------------------- */

static void on_alarm(int sig)
{
        (void)sig;
        static const char msg[] = "{\"error\":\"timeout: the run exceeded warm-up + seconds + grace\"}\n"
                                  "# lb_bench: timeout\n";
        ssize_t w = write(1, msg, sizeof msg - 1);
        (void)w;
        _exit(3);
}

static void arm_bound(void)
{
        signal(SIGALRM, on_alarm);
        alarm((unsigned)(O.warmup + O.seconds + O.grace + 1));
}

/* ---- percentiles ---------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

/* The q-quantile (nearest rank) of sorted <v>, in microseconds. */
static double pct_us(const uint64_t *v, size_t n, double q)
{
        if (!n)
                return 0;
        size_t i = (size_t)(q * (double)n);
        if (i >= n)
                i = n - 1;
        return (double)v[i] / 1000.0;
}

struct samples {
        uint64_t *v;
        size_t n, cap;
};

static void samples_add(struct samples *s, uint64_t x)
{
        if (s->n == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 65536;
                s->v = realloc(s->v, s->cap * sizeof *s->v);
                if (!s->v)
                        die("%s", "out of memory");
        }
        s->v[s->n++] = x;
}

static void print_latency(const struct samples *s)
{
        double sum = 0;
        for (size_t i = 0; i < s->n; i++)
                sum += (double)s->v[i];
        printf(",\"samples\":%zu,\"mean_us\":%.2f,\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f,"
               "\"p999_us\":%.2f,\"max_us\":%.2f",
               s->n, s->n ? sum / (double)s->n / 1000.0 : 0.0, pct_us(s->v, s->n, 0.50), pct_us(s->v, s->n, 0.90),
               pct_us(s->v, s->n, 0.99), pct_us(s->v, s->n, 0.999), s->n ? (double)s->v[s->n - 1] / 1000.0 : 0.0);
}

/* ---- server --------------------------------------------------------------------------- */

enum { C_NEW = 0, C_SINK, C_ECHO, C_CONN };

struct sconn {
        int kind;
        uint64_t count;     /* sink: bytes read after the 'S' */
        char *pend;         /* echo: bytes not yet written back */
        size_t pend_off, pend_len;
};

static volatile sig_atomic_t server_stop;

static void on_term(int sig)
{
        (void)sig;
        server_stop = 1;
}

static int run_server(void)
{
        struct sockaddr_in sa;
        if (!O.listen || parse_addr(O.listen, &sa) < 0)
                die("server needs --listen HOST:PORT (IPv4), got %s", O.listen ? O.listen : "nothing");
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
                rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
        size_t max_fd = (size_t)(rl.rlim_cur > 1048576 ? 1048576 : rl.rlim_cur);
        struct sconn *conns = calloc(max_fd, sizeof *conns);
        int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (!conns || lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 4096) < 0) {
                perror("lb_bench server: listen");
                return 2;
        }
        socklen_t sl = sizeof sa;
        getsockname(lfd, (struct sockaddr *)&sa, &sl);
        char host[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &sa.sin_addr, host, sizeof host);
        printf("{\"mode\":\"server\",\"listen\":\"%s:%d\",\"pid\":%d}\n", host, ntohs(sa.sin_port), (int)getpid());
        fflush(stdout);

        struct sigaction act = {.sa_handler = on_term};
        sigaction(SIGTERM, &act, NULL);
        sigaction(SIGINT, &act, NULL);
        signal(SIGPIPE, SIG_IGN);

        int ep = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
        epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
        size_t bufsz = 256 * 1024;
        char *buf = malloc(bufsz);
        double deadline = now_s() + O.max_seconds;
        uint64_t accepted = 0;
        struct epoll_event evs[256];
        while (!server_stop && now_s() < deadline) {
                int n = epoll_wait(ep, evs, 256, 1000);
                for (int i = 0; i < n; i++) {
                        int fd = evs[i].data.fd;
                        if (fd == lfd) {
                                for (;;) {
                                        int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                                        if (c < 0)
                                                break;
                                        if ((size_t)c >= max_fd) {
                                                close(c);
                                                continue;
                                        }
                                        accepted++;
                                        set_nodelay(c);
                                        memset(&conns[c], 0, sizeof conns[c]);
                                        struct epoll_event ce = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
                                        epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                                }
                                continue;
                        }
                        struct sconn *sc = &conns[fd];
                        bool closing = false;
                        if (sc->kind == C_ECHO && sc->pend_len) {
                                /* Waiting for room to write the rest back (EPOLLOUT). */
                                ssize_t w = write(fd, sc->pend + sc->pend_off, sc->pend_len);
                                if (w < 0 && errno != EAGAIN)
                                        closing = true;
                                else if (w > 0) {
                                        sc->pend_off += (size_t)w;
                                        sc->pend_len -= (size_t)w;
                                }
                                if (!closing && !sc->pend_len) {
                                        struct epoll_event ce = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
                                        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ce);
                                }
                                if (!closing)
                                        continue;
                        }
                        /* Level-triggered: read one buffer per event; the next epoll_wait returns
                         * the connection again while it has data, so connections take turns. */
                        while (!closing) {
                                ssize_t r = read(fd, buf, bufsz);
                                if (r < 0) {
                                        if (errno == EINTR)
                                                continue;
                                        if (errno != EAGAIN)
                                                closing = true;
                                        break;
                                }
                                if (r == 0) {
                                        if (sc->kind == C_SINK) {
                                                uint64_t cnt = sc->count; /* little endian on x86 and arm64 */
                                                ssize_t w = write(fd, &cnt, sizeof cnt);
                                                (void)w;
                                        }
                                        closing = true;
                                        break;
                                }
                                char *p = buf;
                                size_t len = (size_t)r;
                                if (sc->kind == C_NEW) {
                                        sc->kind = p[0] == 'S' ? C_SINK : p[0] == 'E' ? C_ECHO : p[0] == 'C' ? C_CONN : -1;
                                        p++;
                                        len--;
                                        if (sc->kind < 0) {
                                                closing = true;
                                                break;
                                        }
                                        if (sc->kind == C_CONN) {
                                                if (write(fd, "c", 1) != 1)
                                                        closing = true;
                                        }
                                }
                                if (sc->kind == C_SINK) {
                                        sc->count += len;
                                } else if (sc->kind == C_ECHO && len) {
                                        ssize_t w = write(fd, p, len);
                                        if (w < 0 && errno != EAGAIN) {
                                                closing = true;
                                                break;
                                        }
                                        if (w < 0)
                                                w = 0;
                                        if ((size_t)w < len) {
                                                free(sc->pend);
                                                sc->pend_len = len - (size_t)w;
                                                sc->pend_off = 0;
                                                sc->pend = malloc(sc->pend_len);
                                                memcpy(sc->pend, p + w, sc->pend_len);
                                                struct epoll_event ce = {.events = EPOLLOUT, .data.fd = fd};
                                                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ce);
                                        }
                                }
                                break;
                        }
                        if (closing) {
                                free(sc->pend);
                                memset(sc, 0, sizeof *sc);
                                close(fd);
                        }
                }
        }
        fprintf(stderr, "# lb_bench server: %" PRIu64 " connections accepted\n", accepted);
        return 0;
}

/* ---- stream --------------------------------------------------------------------------- */

struct stream_thread {
        pthread_t th;
        int fd;
        double t0;              /* shared start */
        uint64_t sent, sent_window, sink_count;
        double t_end;
        const char *error;
        int err_no;
};

static pthread_barrier_t stream_barrier;
static double stream_t0;

static void *stream_main(void *arg)
{
        struct stream_thread *t = arg;
        char *buf = malloc(O.chunk);
        memset(buf, 'x', O.chunk);
        pthread_barrier_wait(&stream_barrier); /* every connection is up */
        pthread_barrier_wait(&stream_barrier); /* the main thread has set stream_t0 */
        double t_warm = stream_t0 + O.warmup, t_stop = t_warm + O.seconds;
        for (;;) {
                double now = now_s();
                if (now >= t_stop)
                        break;
                ssize_t w = write(t->fd, buf, O.chunk);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        t->error = "write";
                        t->err_no = errno;
                        break;
                }
                t->sent += (uint64_t)w;
                if (now >= t_warm)
                        t->sent_window += (uint64_t)w;
        }
        free(buf);
        if (!t->error) {
                shutdown(t->fd, SHUT_WR);
                uint64_t cnt;
                if (read_all(t->fd, &cnt, sizeof cnt) < 0) {
                        t->error = errno ? "reading the sink's count" : "EOF before the sink's count";
                        t->err_no = errno;
                } else {
                        t->sink_count = cnt;
                }
        }
        t->t_end = now_s();
        return NULL;
}

static int run_stream(void)
{
        if (O.connections < 1 || O.connections > MAX_STREAMS)
                die("%s", "--connections must be 1..256");
        arm_bound();
        static struct stream_thread ts[MAX_STREAMS];
        for (int i = 0; i < O.connections; i++) {
                ts[i].fd = dial();
                if (ts[i].fd < 0 || write_all(ts[i].fd, "S", 1) < 0) {
                        json_head();
                        printf(",\"error\":\"connect: %s\"}\n", strerror(errno));
                        printf("# stream %s: connect: %s\n", O.target, strerror(errno));
                        return 1;
                }
                set_rcvtimeo(ts[i].fd, O.grace);
        }
        pthread_barrier_init(&stream_barrier, NULL, (unsigned)O.connections + 1);
        for (int i = 0; i < O.connections; i++)
                pthread_create(&ts[i].th, NULL, stream_main, &ts[i]);
        pthread_barrier_wait(&stream_barrier);
        double cpu0 = cpu_self_s();
        stream_t0 = now_s();
        pthread_barrier_wait(&stream_barrier);
        uint64_t sent = 0, window = 0;
        double t_end = 0;
        const char *error = NULL;
        char errbuf[160];
        for (int i = 0; i < O.connections; i++) {
                pthread_join(ts[i].th, NULL);
                sent += ts[i].sent;
                window += ts[i].sent_window;
                if (ts[i].t_end > t_end)
                        t_end = ts[i].t_end;
                if (ts[i].error && !error) {
                        snprintf(errbuf, sizeof errbuf, "connection %d: %s: %s", i, ts[i].error,
                                 ts[i].err_no ? strerror(ts[i].err_no) : "EOF");
                        error = errbuf;
                } else if (!ts[i].error && ts[i].sink_count != ts[i].sent && !error) {
                        snprintf(errbuf, sizeof errbuf, "connection %d: sent %" PRIu64 " bytes, the sink read %" PRIu64,
                                 i, ts[i].sent, ts[i].sink_count);
                        error = errbuf;
                }
                close(ts[i].fd);
        }
        double cpu = cpu_self_s() - cpu0;
        double elapsed = t_end - (stream_t0 + O.warmup);
        double gibps = elapsed > 0 ? (double)window / GIB / elapsed : 0;
        json_head();
        printf(",\"connections\":%d,\"seconds\":%g,\"warmup\":%g,\"chunk\":%zu,\"bytes\":%" PRIu64
               ",\"total_bytes\":%" PRIu64 ",\"elapsed_s\":%.4f,\"gib_per_s\":%.4f,\"mib_per_s\":%.1f,"
               "\"client_cpu_s\":%.3f,\"per_connection_mib_per_s\":[",
               O.connections, O.seconds, O.warmup, O.chunk, window, sent, elapsed, gibps, gibps * 1024, cpu);
        for (int i = 0; i < O.connections; i++)
                printf("%s%.1f", i ? "," : "", elapsed > 0 ? (double)ts[i].sent_window / MIB / elapsed : 0);
        printf("]");
        if (error) {
                printf(",");
                json_str("error", error);
        }
        printf("}\n");
        printf("# stream %s, %d connection%s: %.3f GiB/s (%.0f MiB/s) over %.2f s; %.2f GiB total%s%s\n", O.target,
               O.connections, O.connections == 1 ? "" : "s", gibps, gibps * 1024, elapsed, (double)sent / GIB,
               error ? "; ERROR: " : "", error ? error : "");
        return error ? 1 : 0;
}

/* ---- pingpong ------------------------------------------------------------------------- */

static int run_pingpong(void)
{
        if (O.size < 1 || O.size > 1 << 20)
                die("%s", "--size must be 1..1048576");
        arm_bound();
        int fd = dial();
        if (fd < 0) {
                json_head();
                printf(",\"error\":\"connect: %s\"}\n# pingpong %s: connect: %s\n", strerror(errno), O.target,
                       strerror(errno));
                return 1;
        }
        set_nodelay(fd);
        set_rcvtimeo(fd, O.grace);
        char *out = malloc((size_t)O.size + 1), *in = malloc((size_t)O.size);
        memset(out, 'p', (size_t)O.size + 1);
        out[0] = 'E';
        struct samples s = {0};
        const char *error = NULL;
        double t0 = now_s(), t_warm = t0 + O.warmup, t_stop = t_warm + O.seconds;
        bool first = true;
        uint64_t seq = 0;
        double cpu0 = cpu_self_s();
        for (;;) {
                uint64_t a = now_ns();
                double now = (double)a / 1e9;
                if (now >= t_stop)
                        break;
                /* The kind byte goes with the first message; it is not echoed. */
                if (write_all(fd, first ? out : out + 1, (size_t)O.size + (first ? 1 : 0)) < 0) {
                        error = "write";
                        break;
                }
                first = false;
                if (read_all(fd, in, (size_t)O.size) < 0) {
                        error = errno ? "read" : "EOF";
                        break;
                }
                uint64_t b = now_ns();
                if (memcmp(in, out + 1, (size_t)O.size) != 0) {
                        errno = 0;
                        error = "the echo differs from the message";
                        break;
                }
                /* The next message differs from this one (a sequence number in its first bytes). */
                seq++;
                memcpy(out + 1, &seq, (size_t)O.size < sizeof seq ? (size_t)O.size : sizeof seq);
                if (now >= t_warm)
                        samples_add(&s, b - a);
        }
        double elapsed = now_s() - t_warm;
        double cpu = cpu_self_s() - cpu0;
        int e = errno;
        close(fd);
        qsort(s.v, s.n, sizeof *s.v, cmp_u64);
        json_head();
        printf(",\"size\":%d,\"seconds\":%g,\"warmup\":%g,\"round_trips_per_s\":%.0f,\"client_cpu_s\":%.3f", O.size,
               O.seconds, O.warmup, elapsed > 0 ? (double)s.n / elapsed : 0, cpu);
        print_latency(&s);
        if (error) {
                char eb[128];
                snprintf(eb, sizeof eb, "%s: %s", error, e ? strerror(e) : "EOF");
                printf(",");
                json_str("error", eb);
        }
        printf("}\n");
        printf("# pingpong %s, %d B: %zu round trips, p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.0f us%s%s\n",
               O.target, O.size, s.n, pct_us(s.v, s.n, 0.5), pct_us(s.v, s.n, 0.99), pct_us(s.v, s.n, 0.999),
               s.n ? (double)s.v[s.n - 1] / 1000 : 0, error ? "; ERROR: " : "", error ? error : "");
        return error ? 1 : 0;
}

/* ---- connect -------------------------------------------------------------------------- */

struct connect_thread {
        pthread_t th;
        struct samples s;
        uint64_t done, failed;
        int last_errno;
        const char *last_error;
};

static double connect_t0;
static pthread_barrier_t connect_barrier;

static void *connect_main(void *arg)
{
        struct connect_thread *t = arg;
        pthread_barrier_wait(&connect_barrier);
        double t_warm = connect_t0 + O.warmup, t_stop = t_warm + O.seconds;
        for (;;) {
                uint64_t a = now_ns();
                double now = (double)a / 1e9;
                if (now >= t_stop)
                        break;
                bool counted = now >= t_warm;
                int fd = dial();
                const char *err = NULL;
                char c;
                if (fd < 0) {
                        err = "connect";
                } else {
                        set_nodelay(fd);
                        set_rcvtimeo(fd, 5);
                        if (write_all(fd, "C", 1) < 0)
                                err = "write";
                        else if (read_all(fd, &c, 1) < 0)
                                err = errno ? "read" : "EOF before the answer";
                }
                uint64_t b = now_ns();
                if (fd >= 0)
                        close(fd);
                if (err) {
                        t->last_errno = errno;
                        t->last_error = err;
                        if (counted)
                                t->failed++;
                        /* Do not spin on a refused listener. */
                        struct timespec ts = {0, 1000000};
                        nanosleep(&ts, NULL);
                        continue;
                }
                if (counted) {
                        t->done++;
                        samples_add(&t->s, b - a);
                }
        }
        return NULL;
}

static int run_connect(void)
{
        if (O.threads < 1 || O.threads > MAX_THREADS)
                die("%s", "--threads must be 1..64");
        arm_bound();
        static struct connect_thread ts[MAX_THREADS];
        pthread_barrier_init(&connect_barrier, NULL, (unsigned)O.threads + 1);
        for (int i = 0; i < O.threads; i++)
                pthread_create(&ts[i].th, NULL, connect_main, &ts[i]);
        double cpu0 = cpu_self_s();
        connect_t0 = now_s();
        pthread_barrier_wait(&connect_barrier);
        struct samples all = {0};
        uint64_t done = 0, failed = 0;
        const char *last_error = NULL;
        int last_errno = 0;
        for (int i = 0; i < O.threads; i++) {
                pthread_join(ts[i].th, NULL);
                done += ts[i].done;
                failed += ts[i].failed;
                if (ts[i].last_error) {
                        last_error = ts[i].last_error;
                        last_errno = ts[i].last_errno;
                }
                for (size_t k = 0; k < ts[i].s.n; k++)
                        samples_add(&all, ts[i].s.v[k]);
        }
        double elapsed = now_s() - (connect_t0 + O.warmup);
        double cpu = cpu_self_s() - cpu0;
        qsort(all.v, all.n, sizeof *all.v, cmp_u64);
        double rate = elapsed > 0 ? (double)done / elapsed : 0;
        json_head();
        printf(",\"threads\":%d,\"seconds\":%g,\"warmup\":%g,\"connections\":%" PRIu64 ",\"failed\":%" PRIu64
               ",\"connections_per_s\":%.0f,\"client_cpu_s\":%.3f",
               O.threads, O.seconds, O.warmup, done, failed, rate, cpu);
        print_latency(&all);
        char eb[128] = "";
        if (last_error)
                snprintf(eb, sizeof eb, "%s: %s", last_error, last_errno ? strerror(last_errno) : "EOF");
        if (last_error) {
                printf(",");
                json_str("last_failure", eb);
        }
        /* A run with more than 1% failed connections is an error. */
        if (failed * 100 > done + failed) {
                printf(",");
                json_str("error", eb);
        }
        printf("}\n");
        printf("# connect %s, %d threads: %.0f connections/s, %" PRIu64 " failed; connect to answer p50 %.1f us, "
               "p99 %.1f us%s%s\n",
               O.target, O.threads, rate, failed, pct_us(all.v, all.n, 0.5), pct_us(all.v, all.n, 0.99),
               last_error ? "; last failure: " : "", eb);
        return failed * 100 > done + failed ? 1 : 0;
}

/* ---- main ----------------------------------------------------------------------------- */

static void usage(FILE *f)
{
        fprintf(f,
                "usage: lb_bench server --listen HOST:PORT [--max-seconds S]\n"
                "       lb_bench stream --target HOST:PORT [--connections N] [--seconds S] [--warmup S] [--chunk BYTES]\n"
                "       lb_bench pingpong --target HOST:PORT [--size BYTES] [--seconds S] [--warmup S]\n"
                "       lb_bench connect --target HOST:PORT [--threads N] [--seconds S] [--warmup S]\n"
                "common: --label TEXT (copied into the JSON line), --grace S (a client run is ended after\n"
                "        warm-up + seconds + grace; default 30)\n"
                "defaults: --connections 1, --threads 4, --size 64, --chunk 131072, --seconds 3, --warmup 0.5,\n"
                "          --max-seconds 3600 (the server's own bound)\n");
}

int main(int argc, char **argv)
{
        if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
                usage(argc < 2 ? stderr : stdout);
                return argc < 2 ? 2 : 0;
        }
        O.mode = argv[1];
        static const struct option lo[] = {
                {"listen", required_argument, 0, 'l'},  {"target", required_argument, 0, 't'},
                {"connections", required_argument, 0, 'c'}, {"threads", required_argument, 0, 'T'},
                {"size", required_argument, 0, 's'},    {"chunk", required_argument, 0, 'k'},
                {"seconds", required_argument, 0, 'd'}, {"warmup", required_argument, 0, 'w'},
                {"grace", required_argument, 0, 'g'},   {"max-seconds", required_argument, 0, 'm'},
                {"label", required_argument, 0, 'L'},   {"help", no_argument, 0, 'h'},
                {0, 0, 0, 0},
        };
        optind = 2;
        int c;
        while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
                switch (c) {
                case 'l': O.listen = optarg; break;
                case 't': O.target = optarg; break;
                case 'c': O.connections = atoi(optarg); break;
                case 'T': O.threads = atoi(optarg); break;
                case 's': O.size = atoi(optarg); break;
                case 'k': O.chunk = (size_t)strtoull(optarg, NULL, 10); break;
                case 'd': O.seconds = atof(optarg); break;
                case 'w': O.warmup = atof(optarg); break;
                case 'g': O.grace = atof(optarg); break;
                case 'm': O.max_seconds = atof(optarg); break;
                case 'L': O.label = optarg; break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        if (!strcmp(O.mode, "server"))
                return run_server();
        if (!O.target || parse_addr(O.target, &target_sa) < 0)
                die("%s needs --target HOST:PORT (IPv4)", O.mode);
        if (O.seconds <= 0 || O.warmup < 0 || O.chunk < 1 || O.chunk > (64u << 20))
                die("%s: bad --seconds, --warmup or --chunk", O.mode);
        signal(SIGPIPE, SIG_IGN);
        if (!strcmp(O.mode, "stream"))
                return run_stream();
        if (!strcmp(O.mode, "pingpong"))
                return run_pingpong();
        if (!strcmp(O.mode, "connect"))
                return run_connect();
        usage(stderr);
        return 2;
}
