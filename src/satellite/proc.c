/* Processes of the local driver: fork/exec of our own binary in a session of its own (so
 * brokers and balancers outlive the satellite), pid files, adoption checks through
 * /proc/<pid>/cmdline, reaping, bounded stops and TCP health probes. */
#define LOG_TOPIC "satellite"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/fileio.h"
#include "base/log.h"
#include "satellite/satellite.h"

uint64_t proc_hash(const char *text)
{
        uint64_t h = 14695981039346656037ull;
        for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
                h ^= *p;
                h *= 1099511628211ull;
        }
        return h;
}

pid_t proc_spawn(const char *exe, const char *const *args, const char *dir, const char *log_path,
                 const char *pid_path, uint64_t config_hash)
{
        int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log_fd < 0)
                return -errno;
        int nargs = 0;
        while (args[nargs])
                nargs++;
        char **argv = xcalloc((size_t)nargs + 2, sizeof(*argv));
        argv[0] = (char *)exe;
        for (int i = 0; i < nargs; i++)
                argv[i + 1] = (char *)args[i];
        pid_t pid = fork();
        if (pid < 0) {
                int e = errno;
                close(log_fd);
                free(argv);
                return -e;
        }
        if (pid == 0) {
                /* The child: a session of its own, default signals, only fds 0-2. */
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                signal(SIGPIPE, SIG_DFL);
                setsid();
                if (chdir(dir) < 0)
                        _exit(127);
                int null_fd = open("/dev/null", O_RDONLY);
                if (null_fd >= 0)
                        dup2(null_fd, 0);
                dup2(log_fd, 1);
                dup2(log_fd, 2);
                close_range(3, ~0u, 0);
                execv(exe, argv);
                dprintf(2, "stratus satellite: exec %s: %s\n", exe, strerror(errno));
                _exit(127);
        }
        close(log_fd);
        free(argv);
        char text[64];
        int n = snprintf(text, sizeof(text), "%d %" PRIu64 "\n", (int)pid, config_hash);
        char *slash = strrchr(pid_path, '/');
        char *pid_dir = slash ? xstrndup(pid_path, (size_t)(slash - pid_path)) : xstrdup(".");
        int rc = fileio_replace(pid_dir, pid_path, text, (size_t)n);
        free(pid_dir);
        if (rc < 0)
                log_warn("cannot write pid file %s: %s", pid_path, strerror(-rc));
        return pid;
}

int proc_read_pid_file(const char *path, pid_t *pid, uint64_t *config_hash)
{
        FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        int p = 0;
        uint64_t h = 0;
        int n = fscanf(f, "%d %" SCNu64, &p, &h);
        fclose(f);
        if (n < 1 || p <= 0)
                return -EINVAL;
        *pid = p;
        *config_hash = n == 2 ? h : 0;
        return 0;
}

bool proc_is_ours(pid_t pid, const char *sub, const char *path)
{
        char file[64], buf[4096];
        snprintf(file, sizeof(file), "/proc/%d/cmdline", (int)pid);
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return false; /* gone, or a zombie */
        buf[n] = '\0';
        /* argv: <exe> <sub> ... <path>, NUL-separated. */
        const char *args[16];
        int nargs = 0;
        for (ssize_t i = 0; i < n && nargs < 16; i += (ssize_t)strlen(buf + i) + 1)
                args[nargs++] = buf + i;
        if (nargs < 3 || strcmp(args[1], sub) != 0)
                return false;
        const char *base = strrchr(args[0], '/');
        if (!strstr(base ? base + 1 : args[0], "stratus"))
                return false;
        for (int i = 2; i < nargs; i++)
                if (strcmp(args[i], path) == 0)
                        return true;
        return false;
}

bool proc_check_alive(struct proc *p, const char *what)
{
        if (p->pid <= 0)
                return false;
        if (p->child) {
                int status;
                pid_t r = waitpid(p->pid, &status, WNOHANG);
                if (r == 0)
                        return true;
                if (r == p->pid) {
                        if (WIFSIGNALED(status))
                                log_warn("%s pid=%d died of signal %d", what, (int)p->pid, WTERMSIG(status));
                        else
                                log_warn("%s pid=%d exited status=%d", what, (int)p->pid,
                                         WEXITSTATUS(status));
                } else {
                        log_warn("%s pid=%d is gone", what, (int)p->pid);
                }
                p->pid = 0;
                p->healthy = false;
                return false;
        }
        if (kill(p->pid, 0) == 0 || errno == EPERM) {
                /* An adopted process: alive unless it is a zombie waiting for its parent. */
                char file[64], state = '?';
                snprintf(file, sizeof(file), "/proc/%d/stat", (int)p->pid);
                FILE *f = fopen(file, "re");
                if (f) {
                        if (fscanf(f, "%*d (%*[^)]) %c", &state) != 1)
                                state = '?';
                        fclose(f);
                }
                if (state != 'Z' && state != 'X')
                        return true;
        }
        log_warn("%s pid=%d (adopted) is gone", what, (int)p->pid);
        p->pid = 0;
        p->healthy = false;
        return false;
}

static bool wait_gone(struct proc *p, int64_t deadline_ms)
{
        for (;;) {
                if (p->child) {
                        int status;
                        pid_t r = waitpid(p->pid, &status, WNOHANG);
                        if (r == p->pid || (r < 0 && errno == ECHILD))
                                return true;
                } else if (kill(p->pid, 0) < 0 && errno == ESRCH) {
                        return true;
                }
                if (clock_mono_ms() >= deadline_ms)
                        return false;
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL); /* a bounded wait for an exit we asked for */
        }
}

void proc_stop(struct proc *p, const char *what, int timeout_ms)
{
        if (p->pid <= 0)
                return;
        if (kill(p->pid, SIGTERM) < 0 && errno == ESRCH) {
                if (p->child)
                        waitpid(p->pid, NULL, WNOHANG);
        } else if (!wait_gone(p, clock_mono_ms() + timeout_ms)) {
                log_warn("%s pid=%d did not stop within %d ms of SIGTERM: SIGKILL", what, (int)p->pid,
                         timeout_ms);
                kill(p->pid, SIGKILL);
                wait_gone(p, clock_mono_ms() + 2000);
        }
        log_info("%s pid=%d stopped", what, (int)p->pid);
        p->pid = 0;
        p->healthy = false;
}

/* Waits up to <deadline_ms> (monotonic) for <events> on <fd>. */
static bool wait_fd(int fd, short events, int64_t deadline_ms)
{
        int64_t left = deadline_ms - clock_mono_ms();
        if (left <= 0)
                return false;
        struct pollfd pfd = {.fd = fd, .events = events};
        return poll(&pfd, 1, (int)left) == 1;
}

/* A non-blocking socket connected to <host>:<port> by <deadline_ms>, or -1. */
static int connect_by(const char *host, int port, int64_t deadline_ms)
{
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
                return -1;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
                return fd;
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline_ms) &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0)
                return fd;
        close(fd);
        return -1;
}

bool proc_probe_tcp(const char *host, int port, int timeout_ms)
{
        int fd = connect_by(host, port, clock_mono_ms() + timeout_ms);
        if (fd < 0)
                return false;
        close(fd);
        return true;
}

int proc_probe_lb_targets_up(const char *host, int port, int timeout_ms)
{
        int64_t deadline = clock_mono_ms() + timeout_ms;
        int fd = connect_by(host, port, deadline);
        if (fd < 0)
                return -1;
        int up = -1;
        char req[128];
        int n = snprintf(req, sizeof(req), "GET /metrics HTTP/1.0\r\nHost: %s:%d\r\n\r\n", host, port);
        struct buf resp;
        buf_init(&resp);
        if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
                goto out;
        /* The answer is small (a line per target); 1 MiB bounds a strange one. */
        while (resp.len < (1u << 20) && wait_fd(fd, POLLIN, deadline)) {
                ssize_t got = recv(fd, buf_reserve(&resp, 16384), 16384, 0);
                if (got < 0 && errno == EINTR)
                        continue;
                if (got <= 0)
                        break;
                resp.len += (size_t)got;
        }
        buf_append(&resp, "", 1);
        const char *text = (const char *)resp.data;
        if (strncmp(text, "HTTP/1.", 7) != 0 || !strstr(text, " 200 "))
                goto out;
        up = 0;
        for (const char *line = strstr(text, "\r\n\r\n"); line && *line; line = strchr(line, '\n')) {
                line++;
                const char *end = strchr(line, '\n');
                size_t len = end ? (size_t)(end - line) : strlen(line);
                if (len > 22 && strncmp(line, "stratus_lb_target_up{", 21) == 0 && line[len - 1] == '1' &&
                    line[len - 2] == ' ')
                        up++;
        }
out:
        buf_deinit(&resp);
        close(fd);
        return up;
}
