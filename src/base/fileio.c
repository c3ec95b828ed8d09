/* File helpers (see fileio.h). */
#include "base/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"

int fileio_pread(int fd, void *buf, size_t len, int64_t pos, size_t *got)
{
        size_t done = 0;
        while (done < len) {
                ssize_t n = pread(fd, (uint8_t *)buf + done, len - done,
                                  (off_t)(pos + (int64_t)done));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                done += (size_t)n;
        }
        *got = done;
        return 0;
}

int fileio_pwrite(int fd, const void *buf, size_t len, int64_t pos)
{
        size_t done = 0;
        while (done < len) {
                ssize_t n = pwrite(fd, (const uint8_t *)buf + done, len - done,
                                   (off_t)(pos + (int64_t)done));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                done += (size_t)n;
        }
        return 0;
}

int fileio_open(const char *path, int flags, mode_t mode)
{
        for (;;) {
                int fd = open(path, flags | O_CLOEXEC, mode);
                if (fd >= 0)
                        return fd;
                if (errno != EINTR)
                        return -errno;
        }
}

static int fsync_opened(const char *path, int flags)
{
        int fd = fileio_open(path, O_RDONLY | flags, 0);
        if (fd < 0)
                return fd;
        int err = fsync(fd) < 0 ? -errno : 0;
        close(fd);
        return err;
}

int fileio_fsync_dir(const char *dir)
{
        return fsync_opened(dir, O_DIRECTORY);
}

int fileio_fsync_path(const char *path)
{
        return fsync_opened(path, 0);
}

int fileio_replace(const char *dir, const char *path, const void *data, size_t len)
{
        char *tmp = xasprintf("%s.tmp", path);
        int err = 0;
        int fd = fileio_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) {
                err = fd;
                goto out;
        }
        err = fileio_pwrite(fd, data, len, 0);
        if (!err && fsync(fd) < 0)
                err = -errno;
        if (close(fd) < 0 && !err)
                err = -errno;
        if (!err && rename(tmp, path) < 0)
                err = -errno;
        if (err)
                unlink(tmp);
        else
                err = fileio_fsync_dir(dir);
out:
        free(tmp);
        return err;
}

int fileio_mkdirs(const char *dir)
{
        char *path = xstrdup(dir);
        int err = 0;
        for (char *p = path + 1;; p++) {
                if (*p != '/' && *p != '\0')
                        continue;
                char c = *p;
                *p = '\0';
                if (mkdir(path, 0755) < 0 && errno != EEXIST) {
                        err = -errno;
                        break;
                }
                *p = c;
                if (c == '\0')
                        break;
        }
        free(path);
        if (!err) {
                struct stat st;
                if (stat(dir, &st) < 0)
                        err = -errno;
                else if (!S_ISDIR(st.st_mode))
                        err = -ENOTDIR;
        }
        return err;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        int rc = type == FTW_DP ? rmdir(path) : unlink(path);
        return rc < 0 && errno != ENOENT ? errno : 0;
}

int fileio_remove_tree(const char *dir)
{
        int rc = nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
        if (rc < 0)
                return errno == ENOENT ? 0 : -errno;
        return rc > 0 ? -rc : 0;
}

long fileio_raise_open_files_limit(void)
{
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return -1;
        if (rl.rlim_cur < rl.rlim_max) {
                struct rlimit want = { rl.rlim_max, rl.rlim_max };
                if (setrlimit(RLIMIT_NOFILE, &want) == 0)
                        rl = want;
        }
        return rl.rlim_cur == RLIM_INFINITY ? LONG_MAX : (long)rl.rlim_cur;
}
