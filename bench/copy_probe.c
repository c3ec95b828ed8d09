/* copy_probe: what one kernel copy fewer would save on the produce path, measured on
 * this machine without changing the broker. A sender thread writes --mib MiB over one
 * loopback TCP connection in 1 MiB writes, as a producer's batches arrive; the receiving
 * thread, whose CPU time is measured (RUSAGE_THREAD), stores them the way the broker
 * does, or the way a splice()-based log would:
 *
 *   copy    recv() into a 1 MiB buffer, CRC-32C over it, pwrite() to the file
 *           (two copies: socket -> buffer, buffer -> page cache)
 *   splice  splice() socket -> pipe -> file (one copy: into the page cache), then
 *           CRC-32C read through a shared mapping of the file
 *
 * Modes alternate for --reps rounds; each writes a fresh file under --dir. Prints CPU-s
 * per GiB of the receiver for each run and the medians. Build: make bench. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/crc32c.h"

#define CHUNK (1 << 20)

struct sender {
        int fd;
        size_t total;
};

static void *send_all(void *arg)
{
        struct sender *s = arg;
        char *buf = malloc(CHUNK);
        memset(buf, 'x', CHUNK);
        for (size_t done = 0; done < s->total;) {
                ssize_t n = write(s->fd, buf, CHUNK);
                if (n <= 0)
                        break;
                done += (size_t)n;
        }
        shutdown(s->fd, SHUT_WR);
        free(buf);
        return NULL;
}

static double thread_cpu_s(void)
{
        struct rusage ru;
        getrusage(RUSAGE_THREAD, &ru);
        return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* A connected loopback pair: *<rx> is the receiving end. */
static int socket_pair(int *tx, int *rx)
{
        int l = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t alen = sizeof(a);
        if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
            getsockname(l, (struct sockaddr *)&a, &alen) < 0)
                return -1;
        *tx = socket(AF_INET, SOCK_STREAM, 0);
        if (*tx < 0 || connect(*tx, (struct sockaddr *)&a, sizeof(a)) < 0)
                return -1;
        *rx = accept(l, NULL, NULL);
        close(l);
        return *rx < 0 ? -1 : 0;
}

/* Receives <total> bytes from <rx> into <fd>; returns the receiver's CPU seconds. */
static double receive(int rx, int fd, size_t total, int splice_mode, uint32_t *crc)
{
        double c0 = thread_cpu_s();
        size_t done = 0;
        *crc = 0;
        if (!splice_mode) {
                char *buf = malloc(CHUNK);
                for (;;) {
                        size_t have = 0;
                        ssize_t n = 1;
                        while (have < CHUNK && (n = recv(rx, buf + have, CHUNK - have, 0)) > 0)
                                have += (size_t)n;
                        if (have == 0)
                                break;
                        *crc = crc32c(*crc, buf, have);
                        if (pwrite(fd, buf, have, (off_t)done) != (ssize_t)have)
                                break;
                        done += have;
                        if (n <= 0)
                                break;
                }
                free(buf);
        } else {
                int p[2];
                if (pipe(p) < 0)
                        return -1;
                fcntl(p[1], F_SETPIPE_SZ, CHUNK);
                if (ftruncate(fd, (off_t)total) < 0)
                        return -1;
                const uint8_t *map = mmap(NULL, total, PROT_READ, MAP_SHARED, fd, 0);
                if (map == MAP_FAILED)
                        return -1;
                for (;;) {
                        ssize_t in = splice(rx, NULL, p[1], NULL, CHUNK, SPLICE_F_MOVE);
                        if (in <= 0)
                                break;
                        loff_t off = (loff_t)done;
                        for (ssize_t left = in; left > 0;) {
                                ssize_t out = splice(p[0], NULL, fd, &off, (size_t)left, SPLICE_F_MOVE);
                                if (out <= 0)
                                        return -1;
                                left -= out;
                        }
                        *crc = crc32c(*crc, map + done, (size_t)in);
                        done += (size_t)in;
                }
                munmap((void *)map, total);
                close(p[0]);
                close(p[1]);
        }
        double c1 = thread_cpu_s();
        return done == total ? c1 - c0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
        size_t mib = 1024;
        int reps = 3;
        const char *dir = "/tmp";
        for (int i = 1; i + 1 < argc; i += 2) {
                if (strcmp(argv[i], "--mib") == 0)
                        mib = (size_t)atol(argv[i + 1]);
                else if (strcmp(argv[i], "--reps") == 0)
                        reps = atoi(argv[i + 1]);
                else if (strcmp(argv[i], "--dir") == 0)
                        dir = argv[i + 1];
        }
        if (reps < 1 || reps > 20 || mib < 1 || mib > 16384) {
                fprintf(stderr, "usage: copy_probe [--mib N (1-16384)] [--reps N (1-20)] [--dir DIR]\n");
                return 2;
        }
        size_t total = mib << 20;
        double results[2][20];
        char path[4096];
        snprintf(path, sizeof(path), "%s/copy_probe.%d.tmp", dir, (int)getpid());
        for (int r = 0; r < reps; r++) {
                for (int k = 0; k < 2; k++) {
                        int mode = (r % 2 == 0) ? k : 1 - k;
                        int tx, rx;
                        if (socket_pair(&tx, &rx) < 0) {
                                perror("socket");
                                return 1;
                        }
                        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
                        if (fd < 0) {
                                perror(path);
                                return 1;
                        }
                        struct sender s = { tx, total };
                        pthread_t t;
                        pthread_create(&t, NULL, send_all, &s);
                        uint32_t crc;
                        double cpu = receive(rx, fd, total, mode, &crc);
                        pthread_join(t, NULL);
                        close(tx);
                        close(rx);
                        close(fd);
                        unlink(path);
                        if (cpu < 0) {
                                fprintf(stderr, "copy_probe: %s run failed\n", mode ? "splice" : "copy");
                                return 1;
                        }
                        results[mode][r] = cpu / ((double)total / (1 << 30));
                        printf("%-6s run %d: %.3f CPU-s/GiB (crc %08x)\n", mode ? "splice" : "copy", r + 1,
                               results[mode][r], crc);
                        fflush(stdout);
                }
        }
        for (int mode = 0; mode < 2; mode++)
                qsort(results[mode], (size_t)reps, sizeof(double), cmp_double);
        printf("median of %d: copy %.3f, splice %.3f CPU-s/GiB of the receiving thread; splice/copy %.2f\n", reps,
               results[0][reps / 2], results[1][reps / 2], results[1][reps / 2] / results[0][reps / 2]);
        return 0;
}
