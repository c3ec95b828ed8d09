/* `stratus broker [config-file] [--override key=value]... [--debug topics]` */
#define LOG_TOPIC "broker"
#include "broker/main.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "broker/broker.h"
#include "broker/config.h"
#include "loop/loop.h"

static void usage(FILE *out)
{
        fprintf(out,
                "usage: stratus broker [CONFIG_FILE] [--override KEY=VALUE]... [--debug TOPICS]\n"
                "\n"
                "Runs a Kafka-protocol broker: clients connect to the listeners with any Kafka client.\n"
                "CONFIG_FILE is in Kafka's server.properties format; --override sets one key on top\n"
                "(repeatable). --debug enables per-request logs for a comma list of topics\n"
                "(protocol, conn, storage, topic, or all). SIGTERM or SIGINT stops the broker\n"
                "cleanly; after kill -9 the next start recovers the logs. SIGHUP reloads\n"
                "tenants.file and the TLS certificate now (they are also checked every second).\n"
                "\n"
                "Configuration keys:\n");
        config_print_help(out);
        fprintf(out, "\nExample:\n  stratus broker --override listeners=PLAINTEXT://127.0.0.1:9092 "
                     "--override log.dirs=/var/lib/stratus\n");
}

static void on_signal(struct loop *loop, int fd, uint32_t events, void *arg)
{
        struct broker *broker = arg;
        struct signalfd_siginfo si;
        while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGHUP) {
                        broker_reload_files(broker);
                        continue;
                }
                log_info("received signal %d, stopping", (int)si.ssi_signo);
                loop_stop(loop);
        }
}

int broker_main(int argc, char **argv)
{
        struct broker broker;
        memset(&broker, 0, sizeof(broker));
        config_init(&broker.cfg);
        char err[1024];
        const char *config_file = NULL;
        int rc = 0;
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
                        usage(stdout);
                        config_deinit(&broker.cfg);
                        return 0;
                }
                if (strcmp(a, "--override") == 0 || strcmp(a, "--debug") == 0) {
                        if (i + 1 >= argc) {
                                fprintf(stderr, "stratus broker: %s needs a value\n", a);
                                rc = 2;
                                goto out;
                        }
                        if (strcmp(a, "--debug") == 0) {
                                log_enable_debug(argv[++i]);
                                continue;
                        }
                        const char *kv = argv[++i];
                        const char *eq = strchr(kv, '=');
                        if (!eq) {
                                fprintf(stderr, "stratus broker: --override %s: expected KEY=VALUE\n", kv);
                                rc = 2;
                                goto out;
                        }
                        continue; /* applied after the file, below */
                }
                if (strncmp(a, "--debug=", 8) == 0) {
                        log_enable_debug(a + 8);
                        continue;
                }
                if (a[0] == '-') {
                        fprintf(stderr, "stratus broker: unknown option %s (see --help)\n", a);
                        rc = 2;
                        goto out;
                }
                if (config_file) {
                        fprintf(stderr, "stratus broker: only one config file may be given\n");
                        rc = 2;
                        goto out;
                }
                config_file = a;
        }
        if (config_file && config_load_file(&broker.cfg, config_file, err, sizeof(err)) < 0) {
                fprintf(stderr, "stratus broker: %s\n", err);
                rc = 2;
                goto out;
        }
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--override") != 0)
                        continue;
                char *kv = strdup(argv[++i]);
                char *eq = strchr(kv, '=');
                *eq = '\0';
                int r = config_set(&broker.cfg, kv, eq + 1, err, sizeof(err));
                free(kv);
                if (r == -ENOENT) {
                        log_warn("ignoring %s", err);
                } else if (r < 0) {
                        fprintf(stderr, "stratus broker: %s\n", err);
                        rc = 2;
                        goto out;
                }
        }
        if (config_validate(&broker.cfg, err, sizeof(err)) < 0) {
                fprintf(stderr, "stratus broker: %s\n", err);
                rc = 2;
                goto out;
        }

        signal(SIGPIPE, SIG_IGN);
        /* A descriptor per connection, per closed segment and three per active one. */
        long nofile = fileio_raise_open_files_limit();
        if (nofile >= 0 && nofile < 4096)
                log_warn("open files limit=%ld: each connection and each segment holds a descriptor; "
                         "raise it (ulimit -n, LimitNOFILE=) for many partitions or clients", nofile);
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        struct loop *loop = loop_new();
        if (!loop || sfd < 0) {
                fprintf(stderr, "stratus broker: cannot create the event loop: %s\n", strerror(errno));
                rc = 1;
                goto out;
        }
        loop_add_fd(loop, sfd, LOOP_READABLE, on_signal, &broker);
        if (broker_start(&broker, loop) < 0) {
                rc = 1;
        } else if (loop_run(loop) < 0) {
                log_error("event loop failed: %s", strerror(errno));
                rc = 1;
        }
        broker_stop(&broker);
        loop_del_fd(loop, sfd);
        close(sfd);
        loop_free(loop);
out:
        config_deinit(&broker.cfg);
        return rc;
}
