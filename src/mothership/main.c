/* `stratus mothership`: options, the token file, start-up (store, bus, republish,
 * status subscription, HTTP) and shutdown on SIGTERM/SIGINT. */
#define LOG_TOPIC "mothership"
#include "mothership/main.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fileio.h"
#include "base/log.h"
#include "bus/bus.h"
#include "http/server.h"
#include "loop/loop.h"
#include "mothership/mothership.h"
#include "psc/psc.h"

#define STATUS_TOPIC_TIMEOUT_MS 15000
#define PURGE_INTERVAL_MS       (3600 * 1000)
#define MAX_BODY_BYTES          (64 * 1024)
#define TOKEN_CHARS             40

static void usage(FILE *out)
{
        fprintf(out,
                "usage: stratus mothership --data DIR --bootstrap HOST:PORT [--listen HOST:PORT]\n"
                "                          [--token-file FILE] [--policy FILE] [--debug[=TOPICS]]\n"
                "       stratus mothership --routes\n"
                "\n"
                "Runs the control plane: the REST API under /v1 (docs/api.md), its SQLite store in\n"
                "DIR/mothership/stratus.db, placement of logical clusters on physical ones, and the PSC\n"
                "of each physical cluster, published to psc.<satellite> on the control-plane Kafka\n"
                "cluster. Reads satellites' status and heartbeats from stratus.status.\n"
                "\n"
                "Options:\n"
                "  --data DIR            state directory (required)\n"
                "  --bootstrap HOST:PORT the control-plane Kafka cluster (required)\n"
                "  --listen HOST:PORT    the API address (default 127.0.0.1:8080; port 0 picks one)\n"
                "  --token-file FILE     bearer tokens, one per line (default DIR/mothership/tokens;\n"
                "                        created with one random token, mode 0600, when missing)\n"
                "  --policy FILE         the PSC completion policy (default: the built-in one)\n"
                "  --debug[=TOPICS]      debug logs: all, or a comma list (api,store,provision,summary)\n"
                "  --routes              print the API's route table (METHOD PATH) and exit\n"
                "  -h, --help            this text\n"
                "\n"
                "SIGTERM or SIGINT stops. Bad options exit with status 2, start failures with 1.\n");
}

/* Reads the bearer tokens of <path> into <ms>, creating the file with one random token
 * when it does not exist. Returns 0 or -errno with <err>. */
static int load_tokens(struct mothership *ms, const char *path, char *err, size_t err_len)
{
        FILE *f = fopen(path, "r");
        if (!f && errno == ENOENT) {
                char token[TOKEN_CHARS + 1];
                provision_random_text(token, TOKEN_CHARS, false);
                int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                if (fd < 0) {
                        snprintf(err, err_len, "cannot create token file %s: %s", path, strerror(errno));
                        return -errno;
                }
                char line[TOKEN_CHARS + 2];
                int n = snprintf(line, sizeof(line), "%s\n", token);
                int rc = fileio_pwrite(fd, line, (size_t)n, 0);
                if (rc == 0 && fsync(fd) < 0)
                        rc = -errno;
                close(fd);
                if (rc < 0) {
                        snprintf(err, err_len, "cannot write token file %s: %s", path, strerror(-rc));
                        return rc;
                }
                log_info("created token file %s with a random token (mode 0600)", path);
                f = fopen(path, "r");
        }
        if (!f) {
                snprintf(err, err_len, "cannot read token file %s: %s", path, strerror(errno));
                return -errno;
        }
        char line[1024];
        while (fgets(line, sizeof(line), f)) {
                char *s = line;
                while (*s == ' ' || *s == '\t')
                        s++;
                size_t n = strcspn(s, " \t\r\n");
                s[n] = '\0';
                if (n == 0 || s[0] == '#')
                        continue;
                ms->tokens = xrealloc(ms->tokens, (ms->ntokens + 1) * sizeof(*ms->tokens));
                ms->tokens[ms->ntokens++] = xstrdup(s);
        }
        fclose(f);
        if (ms->ntokens == 0) {
                snprintf(err, err_len, "token file %s has no token: add one per line", path);
                return -EINVAL;
        }
        return 0;
}

static void on_signal(struct loop *loop, int fd, uint32_t events, void *arg)
{
        struct signalfd_siginfo si;
        while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                log_info("received signal %d, stopping", (int)si.ssi_signo);
                loop_stop(loop);
        }
}

static void on_purge(struct loop *loop, void *arg)
{
        struct mothership *ms = arg;
        int n = store_idem_purge(ms->store, clock_wall_ms() - IDEMPOTENCY_KEEP_MS);
        if (n > 0)
                log_info("idempotency records expired count=%d", n);
        ms->purge_timer = loop_add_timer(loop, PURGE_INTERVAL_MS, on_purge, ms);
}

static void ensure_known_topics(struct mothership *ms)
{
        struct store_satellite *sats = NULL;
        int n = store_satellite_list(ms->store, NULL, 0, 0, &sats);
        for (int i = 0; i < n; i++)
                provision_ensure_topic(ms, sats[i].id);
        free(sats);
}

static void mothership_free(struct mothership *ms)
{
        http_server_stop(ms->http);
        loop_cancel_timer(ms->loop, ms->purge_timer);
        bus_free(ms->bus);
        store_close(ms->store);
        provision_discard(ms);
        psc_policy_free(ms->owned_policy);
        for (size_t i = 0; i < ms->ntokens; i++)
                free(ms->tokens[i]);
        free(ms->tokens);
        map_deinit(&ms->ensured_topics);
}

int mothership_main(int argc, char **argv)
{
        const char *data = NULL, *listen = "127.0.0.1:8080", *bootstrap = NULL, *token_file = NULL,
                   *policy_file = NULL;
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                bool has_value = i + 1 < argc;
                if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
                        usage(stdout);
                        return 0;
                } else if (strcmp(a, "--routes") == 0) {
                        for (size_t r = 0; r < api_nroutes; r++)
                                printf("%s %s\n", api_routes[r].method, api_routes[r].path);
                        return 0;
                } else if (strcmp(a, "--data") == 0 && has_value) {
                        data = argv[++i];
                } else if (strcmp(a, "--listen") == 0 && has_value) {
                        listen = argv[++i];
                } else if (strcmp(a, "--bootstrap") == 0 && has_value) {
                        bootstrap = argv[++i];
                } else if (strcmp(a, "--token-file") == 0 && has_value) {
                        token_file = argv[++i];
                } else if (strcmp(a, "--policy") == 0 && has_value) {
                        policy_file = argv[++i];
                } else if (strcmp(a, "--debug") == 0) {
                        log_enable_debug("all");
                } else if (strncmp(a, "--debug=", 8) == 0) {
                        log_enable_debug(a + 8);
                } else {
                        fprintf(stderr, "stratus mothership: unexpected argument \"%s\"\n\n", a);
                        usage(stderr);
                        return 2;
                }
        }
        if (!data || !bootstrap) {
                fprintf(stderr, "stratus mothership: %s is required\n\n",
                        !data ? "--data DIR" : "--bootstrap HOST:PORT");
                usage(stderr);
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        struct mothership ms;
        memset(&ms, 0, sizeof(ms));
        map_init(&ms.ensured_topics);
        ms.started_wall_ms = clock_wall_ms();
        ms.policy = psc_policy_default();
        char err[1024];
        int exit_code = 1;
        char *dir = xasprintf("%s/mothership", data);
        char *db_path = xasprintf("%s/stratus.db", dir);
        char *default_tokens = xasprintf("%s/tokens", dir);
        int rc = fileio_mkdirs(dir);
        if (rc < 0) {
                fprintf(stderr, "stratus mothership: cannot create %s: %s\n", dir, strerror(-rc));
                goto out;
        }
        if (policy_file) {
                if (psc_policy_load(policy_file, &ms.owned_policy, err, sizeof(err)) < 0) {
                        fprintf(stderr, "stratus mothership: --policy %s: %s\n", policy_file, err);
                        exit_code = 2;
                        goto out;
                }
                ms.policy = ms.owned_policy;
        }
        if (load_tokens(&ms, token_file ? token_file : default_tokens, err, sizeof(err)) < 0) {
                fprintf(stderr, "stratus mothership: %s\n", err);
                exit_code = 2;
                goto out;
        }
        if (store_open(db_path, &ms.store, err, sizeof(err)) < 0) {
                fprintf(stderr, "stratus mothership: %s\n", err);
                goto out;
        }
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        ms.loop = loop_new();
        if (!ms.loop || sfd < 0) {
                fprintf(stderr, "stratus mothership: cannot create the event loop: %s\n", strerror(errno));
                goto out;
        }
        loop_add_fd(ms.loop, sfd, LOOP_READABLE, on_signal, &ms);
        if (bus_new(ms.loop, bootstrap, "stratus-mothership", &ms.bus, err, sizeof(err)) < 0) {
                fprintf(stderr, "stratus mothership: --bootstrap %s: %s\n", bootstrap, err);
                goto out_loop;
        }
        /* Compacted: the newest status per PKC and heartbeat per satellite is what counts;
         * segments roll every 10 minutes so that older ones can be cleaned. */
        static const char *const status_configs[] = {"cleanup.policy", "compact", "segment.ms", "600000",
                                                     "segment.bytes", "4194304", NULL};
        if (bus_ensure_topic(ms.bus, PSC_STATUS_TOPIC, 1, status_configs, STATUS_TOPIC_TIMEOUT_MS, err,
                             sizeof(err)) < 0) {
                fprintf(stderr, "stratus mothership: cannot create %s on %s: %s\n", PSC_STATUS_TOPIC,
                        bootstrap, err);
                goto out_loop;
        }
        ensure_known_topics(&ms);
        int republished = provision_republish_all(&ms);
        log_info("republished the latest PSC of every physical cluster count=%d", republished);
        if (bus_subscribe(ms.bus, PSC_STATUS_TOPIC, summary_on_status, summary_on_caught_up, &ms) < 0) {
                fprintf(stderr, "stratus mothership: cannot subscribe to %s\n", PSC_STATUS_TOPIC);
                goto out_loop;
        }
        struct http_server_options opts = {
            .handler = api_handle, .max_body_bytes = MAX_BODY_BYTES, .max_connections = 256};
        if (http_server_start(ms.loop, listen, NULL, 0, &ms, &opts, &ms.http, err, sizeof(err)) < 0) {
                fprintf(stderr, "stratus mothership: --listen: %s\n", err);
                exit_code = strstr(err, "not host:port") ? 2 : 1;
                goto out_loop;
        }
        on_purge(ms.loop, &ms);
        log_info("mothership running api=http://%s store=%s bootstrap=%s policy=%s schema_version=%d",
                 http_server_addr(ms.http), db_path, bootstrap, psc_policy_version(ms.policy),
                 store_schema_version(ms.store));
        exit_code = loop_run(ms.loop) < 0 ? 1 : 0;
out_loop:
        mothership_free(&ms);
        ms.store = NULL;
        if (ms.loop) {
                if (sfd >= 0) {
                        loop_del_fd(ms.loop, sfd);
                        close(sfd);
                }
                loop_free(ms.loop);
        }
        log_info("mothership stopped");
        free(dir);
        free(db_path);
        free(default_tokens);
        return exit_code;
out:
        store_close(ms.store);
        psc_policy_free(ms.owned_policy);
        for (size_t i = 0; i < ms.ntokens; i++)
                free(ms.tokens[i]);
        free(ms.tokens);
        map_deinit(&ms.ensured_topics);
        free(dir);
        free(db_path);
        free(default_tokens);
        return exit_code;
}
