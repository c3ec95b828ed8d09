/* `stratus lb --config FILE [--debug]`: signals (SIGHUP reloads, SIGTERM/SIGINT stop) and
 * a watch on the configuration file (inotify on its directory, so that replacing it by
 * rename is seen too). */
#define LOG_TOPIC "lb"
#include "lb/main.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/alloc.h"
#include "base/log.h"
#include "lb/lb.h"
#include "loop/loop.h"

#define RELOAD_DEBOUNCE_MS 50

static void usage(FILE *out)
{
        fprintf(out,
                "usage: stratus lb --config FILE [--debug]\n"
                "\n"
                "Runs the layer-4 load balancer: a bootstrap listener per cluster that sends each new\n"
                "connection to a random healthy broker, and a listener per broker. Bytes are relayed\n"
                "unchanged (TLS passes through). The file format is in docs/lb.md; in short:\n"
                "\n"
                "  admin 127.0.0.1:9901                   # GET /metrics (Prometheus), /healthz; or off\n"
                "  health_interval_ms 1000                # also: health_timeout_ms, health_rise, health_fall,\n"
                "  health_check tcp                       #   connect_timeout_ms, drain_timeout_ms,\n"
                "                                         #   max_connections, proxy_protocol off|v2\n"
                "  listener bootstrap 0.0.0.0:9092 10.0.0.1:9092 10.0.0.2:9092\n"
                "  listener broker-1  0.0.0.0:9093 10.0.0.1:9092 proxy_protocol=v2\n"
                "\n"
                "SIGHUP, or any change to FILE, reloads it: unchanged listeners and connections are\n"
                "kept; an invalid file is refused (logged with its line) and the running configuration\n"
                "stays. SIGTERM or SIGINT stops. A bad file at start exits with status 2.\n"
                "\n"
                "Options:\n"
                "  --config FILE   the configuration (required)\n"
                "  --debug         log every connection\n"
                "  -h, --help      this text\n");
}

struct lb_main {
        struct lb lb;
        struct loop *loop;
        int inotify_fd;
        char *config_dir;
        char *config_base;
        struct loop_timer *reload_timer;
};

static void on_reload_timer(struct loop *loop, void *arg)
{
        struct lb_main *m = arg;
        m->reload_timer = NULL;
        log_info("configuration file changed: reloading");
        lb_reload(&m->lb);
}

static void on_signal(struct loop *loop, int fd, uint32_t events, void *arg)
{
        struct lb_main *m = arg;
        struct signalfd_siginfo si;
        while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGHUP) {
                        log_info("SIGHUP: reloading %s", m->lb.config_path);
                        lb_reload(&m->lb);
                        continue;
                }
                log_info("received signal %d, stopping", (int)si.ssi_signo);
                loop_stop(loop);
        }
}

static void on_inotify(struct loop *loop, int fd, uint32_t events, void *arg)
{
        struct lb_main *m = arg;
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        bool ours = false;
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n <= 0)
                        break;
                for (char *p = buf; p < buf + n;) {
                        const struct inotify_event *ev = (const struct inotify_event *)p;
                        if (ev->len && strcmp(ev->name, m->config_base) == 0)
                                ours = true;
                        p += sizeof(*ev) + ev->len;
                }
        }
        /* Editors write in several steps: reload once they are done. */
        if (ours && !m->reload_timer)
                m->reload_timer = loop_add_timer(loop, RELOAD_DEBOUNCE_MS, on_reload_timer, m);
}

int lb_main(int argc, char **argv)
{
        const char *config = NULL;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
                        usage(stdout);
                        return 0;
                } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
                        config = argv[++i];
                } else if (strcmp(argv[i], "--debug") == 0) {
                        log_enable_debug("all");
                } else {
                        fprintf(stderr, "stratus lb: unexpected argument \"%s\"\n\n", argv[i]);
                        usage(stderr);
                        return 2;
                }
        }
        if (!config) {
                fprintf(stderr, "stratus lb: --config FILE is required\n\n");
                usage(stderr);
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        fileio_raise_open_files_limit(); /* each relayed connection holds six fds */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        struct lb_main m;
        memset(&m, 0, sizeof(m));
        m.inotify_fd = -1;
        int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        m.loop = loop_new();
        if (!m.loop || sfd < 0) {
                fprintf(stderr, "stratus lb: cannot create the event loop: %s\n", strerror(errno));
                return 1;
        }
        loop_add_fd(m.loop, sfd, LOOP_READABLE, on_signal, &m);
        char err[1024];
        int rc = lb_start(&m.lb, m.loop, config, err, sizeof(err));
        if (rc < 0) {
                fprintf(stderr, "stratus lb: %s\n", err);
                lb_stop(&m.lb);
                loop_del_fd(m.loop, sfd);
                close(sfd);
                loop_free(m.loop);
                return rc == -EINVAL ? 2 : 1;
        }
        char *d = xstrdup(config), *b = xstrdup(config);
        m.config_dir = xstrdup(dirname(d));
        m.config_base = xstrdup(basename(b));
        free(d);
        free(b);
        m.inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (m.inotify_fd < 0 ||
            inotify_add_watch(m.inotify_fd, m.config_dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
                log_warn("cannot watch %s for changes (%s): reload with SIGHUP", m.config_dir, strerror(errno));
        } else {
                loop_add_fd(m.loop, m.inotify_fd, LOOP_READABLE, on_inotify, &m);
        }
        log_info("stratus lb running with %s", config);
        rc = loop_run(m.loop) < 0 ? 1 : 0;
        loop_cancel_timer(m.loop, m.reload_timer);
        lb_stop(&m.lb);
        if (m.inotify_fd >= 0) {
                loop_del_fd(m.loop, m.inotify_fd);
                close(m.inotify_fd);
        }
        loop_del_fd(m.loop, sfd);
        close(sfd);
        loop_free(m.loop);
        free(m.config_dir);
        free(m.config_base);
        log_info("stratus lb stopped");
        return rc;
}
