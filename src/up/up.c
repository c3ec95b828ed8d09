/* `stratus up`: supervise the control plane of one machine. */
#define LOG_TOPIC "up"
#include "up/up.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fileio.h"
#include "base/log.h"
#include "cli/cli.h"
#include "http/client.h"
#include "loop/net.h"

#define DEFAULT_API_PORT 8480
#define READY_TIMEOUT_MS 60000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define HEALTHY_RESET_MS 60000
#define CHECK_INTERVAL_MS 100

enum proc_id { PROC_BROKER = 0, PROC_MOTHERSHIP, PROC_SATELLITE, PROC_COUNT };

struct proc {
        const char *name;        /* "broker": the log file and messages */
        char **argv;             /* heap, NULL-terminated */
        pid_t pid;               /* 0: not running */
        int64_t started_ms;      /* monotonic */
        int64_t restart_at_ms;   /* > 0: start again then */
        int64_t backoff_ms;
        int restarts;
        int last_status;         /* wait status of the last exit */
        int stop_timeout_ms;     /* SIGTERM, then SIGKILL after this */
};

struct up {
        char *data_dir;          /* absolute */
        char *logs_dir;
        char *exe;               /* /proc/self/exe resolved */
        int broker_port;
        char api_host[256];
        int api_port;
        char *token_path;
        struct proc procs[PROC_COUNT];
        int sfd;                 /* signalfd: SIGCHLD, SIGINT, SIGTERM, SIGHUP */
        bool stopping;
        int lock_fd;
};

static void usage(FILE *out)
{
        fprintf(out,
                "usage: stratus up [--data DIR] [--api HOST:PORT]\n\n"
                "Runs Stratus on this machine: a control-plane Kafka broker, the mothership (the\n"
                "API) and one satellite for region \"local\" that runs physical clusters as local\n"
                "processes; all supervised (restarted with backoff when one dies). Prints the API\n"
                "address once it answers and a satellite has registered, and writes the CLI's\n"
                "config file ($STRATUS_CONFIG, else $XDG_CONFIG_HOME/stratus/config.json, else\n"
                "~/.config/stratus/config.json) so that `stratus cluster ...` works at once.\n"
                "Ctrl-C (SIGINT) or SIGTERM stops the satellite (and its clusters), the mothership\n"
                "and the broker, in that order. Everything is kept in DIR: the next `stratus up`\n"
                "with the same DIR comes back with the same clusters, ports and token.\n\n"
                "Options:\n"
                "  --data DIR         state and logs (default ./stratus-data); DIR/logs/*.log\n"
                "  --api HOST:PORT    the API address (default 127.0.0.1:%d, or a free port if\n"
                "                     that is taken; kept in DIR/up.json for the next start)\n"
                "  -h, --help         this text\n\n"
                "Exit status: 0 after a clean stop, 1 when it could not start (a message says why).\n",
                DEFAULT_API_PORT);
}

static int free_port(const char *host)
{
        int fd = net_listen(host, 0, 1);
        if (fd < 0)
                return fd;
        int port = net_local_port(fd);
        close(fd);
        return port;
}

static bool port_free(const char *host, int port)
{
        int fd = net_listen(host, port, 1);
        if (fd < 0)
                return false;
        close(fd);
        return true;
}

static bool tcp_accepts(const char *host, int port)
{
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return false;
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        inet_pton(AF_INET, host, &sa.sin_addr);
        bool ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        close(fd);
        return ok;
}

/* Reads DIR/up.json (ports of earlier runs), then fills what is missing and saves it. */
static int load_state(struct up *up, const char *api_opt)
{
        char *path = xasprintf("%s/up.json", up->data_dir);
        json_t *state = json_load_file(path, 0, NULL);
        up->broker_port = (int)json_integer_value(json_object_get(state, "broker_port"));
        const char *api = json_string_value(json_object_get(state, "api"));
        if (api_opt)
                api = api_opt;
        int rc = 0;
        if (api) {
                if (net_parse_hostport(api, up->api_host, sizeof(up->api_host), &up->api_port) < 0 ||
                    !*up->api_host) {
                        fprintf(stderr, "stratus up: --api must be HOST:PORT (e.g. 127.0.0.1:%d), not '%s'\n",
                                DEFAULT_API_PORT, api);
                        rc = -EINVAL;
                }
        } else {
                snprintf(up->api_host, sizeof(up->api_host), "127.0.0.1");
                up->api_port = port_free("127.0.0.1", DEFAULT_API_PORT) ? DEFAULT_API_PORT : free_port("127.0.0.1");
        }
        if (up->api_port == 0 && rc == 0)
                up->api_port = free_port(up->api_host);
        if (up->broker_port <= 0)
                up->broker_port = free_port("127.0.0.1");
        json_decref(state);
        if (rc == 0 && (up->broker_port <= 0 || up->api_port <= 0)) {
                fprintf(stderr, "stratus up: cannot find a free port on 127.0.0.1\n");
                rc = -EADDRNOTAVAIL;
        }
        if (rc == 0) {
                char api_addr[300];
                snprintf(api_addr, sizeof(api_addr), "%s:%d", up->api_host, up->api_port);
                json_t *out = json_pack("{s:i, s:s}", "broker_port", up->broker_port, "api", api_addr);
                char *text = json_dumps(out, JSON_INDENT(2));
                json_decref(out);
                rc = fileio_replace(up->data_dir, path, text, strlen(text));
                if (rc < 0)
                        fprintf(stderr, "stratus up: cannot write %s: %s\n", path, strerror(-rc));
                free(text);
        }
        free(path);
        return rc;
}

static char **make_argv(const char *first, ...)
{
        size_t n = 0, cap = 16;
        char **argv = xcalloc(cap, sizeof(char *));
        va_list ap;
        va_start(ap, first);
        for (const char *a = first; a; a = va_arg(ap, const char *)) {
                ASSERT(n + 1 < cap);
                argv[n++] = xstrdup(a);
        }
        va_end(ap);
        return argv;
}

static void free_argv(char **argv)
{
        for (char **a = argv; a && *a; a++)
                free(*a);
        free(argv);
}

static void setup_procs(struct up *up)
{
        char bootstrap[64], listeners[96], api[300];
        snprintf(bootstrap, sizeof(bootstrap), "127.0.0.1:%d", up->broker_port);
        snprintf(listeners, sizeof(listeners), "listeners=PLAINTEXT://%s", bootstrap);
        snprintf(api, sizeof(api), "%s:%d", up->api_host, up->api_port);
        char *log_dirs = xasprintf("log.dirs=%s/control-plane/broker", up->data_dir);
        up->procs[PROC_BROKER] = (struct proc){
                .name = "broker",
                .argv = make_argv(up->exe, "broker", "--override", listeners, "--override", log_dirs, NULL),
                .stop_timeout_ms = 10000,
        };
        up->procs[PROC_MOTHERSHIP] = (struct proc){
                .name = "mothership",
                .argv = make_argv(up->exe, "mothership", "--data", up->data_dir, "--listen", api, "--bootstrap",
                                  bootstrap, "--token-file", up->token_path, NULL),
                .stop_timeout_ms = 10000,
        };
        up->procs[PROC_SATELLITE] = (struct proc){
                .name = "satellite",
                .argv = make_argv(up->exe, "satellite", "--region", "local", "--data", up->data_dir, "--bootstrap",
                                  bootstrap, "--stop-on-exit", NULL),
                .stop_timeout_ms = 20000,
        };
        free(log_dirs);
}

static int start_proc(struct up *up, struct proc *p)
{
        char *log_path = xasprintf("%s/%s.log", up->logs_dir, p->name);
        int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log_fd < 0) {
                int rc = -errno;
                fprintf(stderr, "stratus up: cannot open %s: %s\n", log_path, strerror(errno));
                free(log_path);
                return rc;
        }
        free(log_path);
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0) {
                int rc = -errno;
                close(log_fd);
                return rc;
        }
        if (pid == 0) {
                /* Its own process group: Ctrl-C reaches only `stratus up`, which stops the
                 * children in order. A `stratus up` killed by SIGKILL still stops them. */
                setpgid(0, 0);
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (getppid() != parent)
                        _exit(1);
                int null_fd = open("/dev/null", O_RDONLY);
                dup2(null_fd, 0);
                dup2(log_fd, 1);
                dup2(log_fd, 2);
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                execv(up->exe, p->argv);
                dprintf(2, "stratus up: exec %s: %s\n", up->exe, strerror(errno));
                _exit(127);
        }
        close(log_fd);
        p->pid = pid;
        p->started_ms = clock_mono_ms();
        p->restart_at_ms = 0;
        log_info("started %s pid=%d", p->name, (int)pid);
        return 0;
}

static void describe_status(int status, char *out, size_t len)
{
        if (WIFEXITED(status))
                snprintf(out, len, "exit status %d", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
                snprintf(out, len, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
        else
                snprintf(out, len, "status %d", status);
}

/* Reaps every exited child: ours are scheduled for a restart (unless stopping), orphans
 * (brokers and balancers whose satellite died) are just reaped. */
static void reap(struct up *up)
{
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                struct proc *p = NULL;
                for (int i = 0; i < PROC_COUNT; i++)
                        if (up->procs[i].pid == pid)
                                p = &up->procs[i];
                if (!p) {
                        log_info("reaped orphan pid=%d", (int)pid);
                        continue;
                }
                p->pid = 0;
                p->last_status = status;
                if (up->stopping)
                        continue;
                int64_t now = clock_mono_ms();
                if (now - p->started_ms > HEALTHY_RESET_MS || p->backoff_ms == 0)
                        p->backoff_ms = BACKOFF_MIN_MS;
                else
                        p->backoff_ms = MIN(p->backoff_ms * 2, BACKOFF_MAX_MS);
                p->restart_at_ms = now + p->backoff_ms;
                p->restarts++;
                char why[96];
                describe_status(status, why, sizeof(why));
                log_warn("%s pid=%d exited (%s); restarting in %lld ms (restart %d; log %s/%s.log)", p->name,
                         (int)pid, why, (long long)p->backoff_ms, p->restarts, up->logs_dir, p->name);
        }
}

/* Handles pending signals. Returns true when asked to stop. */
static bool handle_signals(struct up *up)
{
        struct signalfd_siginfo si;
        bool stop = false;
        while (read(up->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM) {
                        log_info("received signal %d, stopping", (int)si.ssi_signo);
                        stop = true;
                }
        }
        reap(up);
        return stop;
}

static void restart_due(struct up *up)
{
        int64_t now = clock_mono_ms();
        for (int i = 0; i < PROC_COUNT; i++) {
                struct proc *p = &up->procs[i];
                if (!p->pid && p->restart_at_ms > 0 && now >= p->restart_at_ms)
                        start_proc(up, p);
        }
}

/* Waits for signals up to <timeout_ms>. Returns true when asked to stop. */
static bool wait_events(struct up *up, int timeout_ms)
{
        int64_t now = clock_mono_ms();
        for (int i = 0; i < PROC_COUNT; i++) {
                struct proc *p = &up->procs[i];
                if (!p->pid && p->restart_at_ms > 0)
                        timeout_ms = (int)MIN((int64_t)timeout_ms, MAX(0, p->restart_at_ms - now));
        }
        struct pollfd pfd = { .fd = up->sfd, .events = POLLIN };
        if (poll(&pfd, 1, timeout_ms) < 0 && errno != EINTR)
                log_warn("poll: %s", strerror(errno));
        bool stop = handle_signals(up);
        if (!stop)
                restart_due(up);
        return stop;
}

/* Stops <p>: SIGTERM, then SIGKILL after its deadline. Other children exiting meanwhile
 * are reaped. */
static void stop_proc(struct up *up, struct proc *p)
{
        p->restart_at_ms = 0;
        if (!p->pid)
                return;
        pid_t pid = p->pid;
        kill(pid, SIGTERM);
        int64_t deadline = clock_mono_ms() + p->stop_timeout_ms;
        bool killed = false;
        while (p->pid) {
                int64_t left = deadline - clock_mono_ms();
                if (left <= 0 && !killed) {
                        log_warn("%s pid=%d did not stop within %d ms; SIGKILL", p->name, (int)pid, p->stop_timeout_ms);
                        kill(pid, SIGKILL);
                        killed = true;
                        deadline = clock_mono_ms() + 5000;
                        continue;
                }
                if (left <= 0)
                        break;
                struct pollfd pfd = { .fd = up->sfd, .events = POLLIN };
                poll(&pfd, 1, (int)MIN(left, 100));
                handle_signals(up);
        }
        char why[96];
        describe_status(p->last_status, why, sizeof(why));
        log_info("stopped %s pid=%d (%s)", p->name, (int)pid, why);
}

/* Our children that are not one of <procs>: processes reparented to us (a subreaper). */
static int other_children(struct up *up, pid_t *out, int max)
{
        DIR *d = opendir("/proc");
        if (!d)
                return 0;
        int n = 0;
        pid_t self = getpid();
        struct dirent *de;
        while ((de = readdir(d)) && n < max) {
                char *end;
                long pid = strtol(de->d_name, &end, 10);
                if (*end || pid <= 0)
                        continue;
                char path[64], buf[512];
                snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                ssize_t len = read(fd, buf, sizeof(buf) - 1);
                close(fd);
                if (len <= 0)
                        continue;
                buf[len] = '\0';
                char *rp = strrchr(buf, ')');
                char state;
                int ppid;
                if (!rp || sscanf(rp + 1, " %c %d", &state, &ppid) != 2 || ppid != self || state == 'Z')
                        continue;
                out[n++] = (pid_t)pid;
        }
        closedir(d);
        return n;
}

static void stop_orphans(struct up *up)
{
        pid_t pids[256];
        int n = other_children(up, pids, 256);
        if (n == 0)
                return;
        log_warn("%d processes left after the satellite stopped; stopping them", n);
        for (int i = 0; i < n; i++)
                kill(pids[i], SIGTERM);
        int64_t deadline = clock_mono_ms() + 10000;
        while ((n = other_children(up, pids, 256)) > 0 && clock_mono_ms() < deadline) {
                struct pollfd pfd = { .fd = up->sfd, .events = POLLIN };
                poll(&pfd, 1, 50);
                handle_signals(up);
        }
        for (int i = 0; i < n; i++) {
                log_warn("pid=%d did not stop within 10 s; SIGKILL", (int)pids[i]);
                kill(pids[i], SIGKILL);
        }
        deadline = clock_mono_ms() + 5000;
        while (other_children(up, pids, 256) > 0 && clock_mono_ms() < deadline) {
                struct pollfd pfd = { .fd = up->sfd, .events = POLLIN };
                poll(&pfd, 1, 20);
                handle_signals(up);
        }
}

static void stop_all(struct up *up)
{
        up->stopping = true;
        stop_proc(up, &up->procs[PROC_SATELLITE]);
        stop_proc(up, &up->procs[PROC_MOTHERSHIP]);
        stop_proc(up, &up->procs[PROC_BROKER]);
        stop_orphans(up);
}

static char *read_token(const char *path)
{
        FILE *f = fopen(path, "r");
        if (!f)
                return NULL;
        char line[1024];
        char *token = NULL;
        while (fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\r\n")] = '\0';
                if (line[0] && line[0] != '#') {
                        token = xstrdup(line);
                        break;
                }
        }
        fclose(f);
        return token;
}

/* Whether the API answers with a registered, fresh satellite. */
static bool api_ready(struct up *up, const char *token)
{
        char *url = xasprintf("http://%s:%d/v1/satellites", up->api_host, up->api_port);
        struct http_request req = { .method = "GET", .url = url, .bearer_token = token, .timeout_ms = 1000 };
        struct http_response resp;
        char err[256];
        bool ok = false;
        if (http_request(&req, &resp, err, sizeof(err)) == 0 && resp.status == 200) {
                json_t *answer = json_loadb(resp.body, resp.body_len, 0, NULL);
                json_t *items = json_object_get(answer, "satellites");
                if (!items)
                        items = json_object_get(answer, "items");
                size_t i;
                json_t *sat;
                json_array_foreach(items, i, sat) {
                        if (!json_is_true(json_object_get(sat, "stale")))
                                ok = true;
                }
                json_decref(answer);
        }
        http_response_deinit(&resp);
        free(url);
        return ok;
}

static const char *proc_problem(struct up *up, char *out, size_t len)
{
        for (int i = 0; i < PROC_COUNT; i++) {
                struct proc *p = &up->procs[i];
                if (p->restarts > 0) {
                        char why[96];
                        describe_status(p->last_status, why, sizeof(why));
                        snprintf(out, len, "the %s exited %d times (last: %s); see %s/%s.log", p->name, p->restarts,
                                 why, up->logs_dir, p->name);
                        return out;
                }
        }
        snprintf(out, len, "see the logs in %s", up->logs_dir);
        return out;
}

static int run(struct up *up)
{
        int64_t t0 = clock_mono_ms();
        if (start_proc(up, &up->procs[PROC_BROKER]) < 0)
                return 1;
        int64_t deadline = t0 + READY_TIMEOUT_MS;
        while (!tcp_accepts("127.0.0.1", up->broker_port)) {
                if (clock_mono_ms() > deadline) {
                        char why[512];
                        fprintf(stderr, "stratus up: the control-plane broker did not listen on 127.0.0.1:%d within "
                                        "%d s: %s\n",
                                up->broker_port, READY_TIMEOUT_MS / 1000, proc_problem(up, why, sizeof(why)));
                        return 1;
                }
                if (wait_events(up, 20))
                        return 0;
        }
        start_proc(up, &up->procs[PROC_MOTHERSHIP]);
        start_proc(up, &up->procs[PROC_SATELLITE]);
        char *token = NULL;
        while (!(token = token ? token : read_token(up->token_path)) || !api_ready(up, token)) {
                if (clock_mono_ms() > deadline) {
                        char why[512];
                        fprintf(stderr,
                                "stratus up: not ready within %d s (%s at http://%s:%d with a registered "
                                "satellite): %s\n",
                                READY_TIMEOUT_MS / 1000, token ? "the API answering" : "the token file " , up->api_host,
                                up->api_port, proc_problem(up, why, sizeof(why)));
                        free(token);
                        return 1;
                }
                if (wait_events(up, CHECK_INTERVAL_MS)) {
                        free(token);
                        return 0;
                }
        }
        char config[4096], err[512];
        char *endpoint = xasprintf("http://%s:%d", up->api_host, up->api_port);
        bool have_config = cli_config_path(config, sizeof(config)) == 0;
        if (!have_config)
                fprintf(stderr, "stratus up: no place for the CLI config ($STRATUS_CONFIG, $XDG_CONFIG_HOME and "
                                "$HOME unset); pass --endpoint and --token to the CLI\n");
        else if (cli_config_write(config, endpoint, token, err, sizeof(err)) < 0) {
                fprintf(stderr, "stratus up: %s; pass --endpoint and --token to the CLI instead\n", err);
                have_config = false;
        }
        printf("Stratus is up (ready in %.1f s).\n\n"
               "  API            %s\n"
               "  token          %s\n"
               "  CLI config     %s\n"
               "  control plane  Kafka at 127.0.0.1:%d, satellite for region \"local\"\n"
               "  data and logs  %s (logs in %s)\n\n"
               "Try:\n"
               "  stratus cluster create demo --region local --ingress 10 --egress 30 --partitions 10 --wait\n"
               "  stratus api-key create --cluster LKC_ID\n"
               "  stratus cluster list\n\n"
               "Ctrl-C stops everything (the clusters too; they come back with the next `stratus up --data %s`).\n",
               (double)(clock_mono_ms() - t0) / 1000.0, endpoint, up->token_path,
               have_config ? config : "(not written)", up->broker_port, up->data_dir, up->logs_dir, up->data_dir);
        fflush(stdout);
        free(endpoint);
        free(token);
        while (!wait_events(up, 1000))
                ;
        return 0;
}

int up_main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "data", required_argument, NULL, 'd' },
                { "api", required_argument, NULL, 'a' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        const char *data = "stratus-data", *api = NULL;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                if (c == 'd')
                        data = optarg;
                else if (c == 'a')
                        api = optarg;
                else if (c == 'h') {
                        usage(stdout);
                        return 0;
                } else {
                        usage(stderr);
                        return 2;
                }
        }
        if (optind != argc) {
                fprintf(stderr, "stratus up: unexpected argument '%s' (see --help)\n", argv[optind]);
                return 2;
        }
        struct up up = { .sfd = -1, .lock_fd = -1 };
        int rc = fileio_mkdirs(data);
        char real[PATH_MAX];
        if (rc < 0 || !realpath(data, real)) {
                fprintf(stderr, "stratus up: cannot create the data directory %s: %s\n", data,
                        strerror(rc < 0 ? -rc : errno));
                return 1;
        }
        up.data_dir = xstrdup(real);
        up.logs_dir = xasprintf("%s/logs", up.data_dir);
        up.token_path = xasprintf("%s/token", up.data_dir);
        fileio_mkdirs(up.logs_dir);
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n <= 0) {
                fprintf(stderr, "stratus up: cannot find its own binary (/proc/self/exe): %s\n", strerror(errno));
                return 1;
        }
        exe[n] = '\0';
        up.exe = xstrdup(exe);

        char *lock_path = xasprintf("%s/up.lock", up.data_dir);
        up.lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (up.lock_fd < 0 || flock(up.lock_fd, LOCK_EX | LOCK_NB) < 0) {
                char pid[32] = "?";
                if (up.lock_fd >= 0 && pread(up.lock_fd, pid, sizeof(pid) - 1, 0) < 0)
                        pid[0] = '?';
                pid[strcspn(pid, "\n")] = '\0';
                fprintf(stderr, "stratus up: another `stratus up` (pid %s) is running with %s: stop it first (Ctrl-C, "
                                "or kill %s), or use another --data DIR\n",
                        pid, up.data_dir, pid);
                free(lock_path);
                return 1;
        }
        free(lock_path);
        if (ftruncate(up.lock_fd, 0) == 0)
                dprintf(up.lock_fd, "%d\n", (int)getpid());
        if (load_state(&up, api) < 0)
                return 1;

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        up.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        /* Processes the satellite starts in their own sessions become our children when
         * it dies: reap them, and stop what is left at the end. */
        prctl(PR_SET_CHILD_SUBREAPER, 1);
        setup_procs(&up);
        log_info("starting data=%s broker_port=%d api=%s:%d", up.data_dir, up.broker_port, up.api_host, up.api_port);

        rc = run(&up);
        stop_all(&up);
        log_info("stopped");
        for (int i = 0; i < PROC_COUNT; i++)
                free_argv(up.procs[i].argv);
        close(up.sfd);
        close(up.lock_fd);
        free(up.data_dir);
        free(up.logs_dir);
        free(up.token_path);
        free(up.exe);
        return rc;
}
