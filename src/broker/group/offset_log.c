/* The group coordinator's key/value log; see offset_log.h. */
#define LOG_TOPIC "offsets"
#include "broker/group/offset_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/crc32c.h"
#include "base/fileio.h"
#include "base/log.h"

static const char MAGIC[8] = { 'S', 'T', 'R', 'G', 'R', 'P', '0', '1' };
#define RECORD_HEADER 8 /* length + crc */
#define BODY_HEADER 3   /* type + key length */

struct offset_log {
        char *path;
        char *tmp_path;
        int fd;
        int tmp_fd;          /* during a rewrite, else -1 */
        int64_t size;
        int64_t tmp_size;
        int dirty;
};

size_t offset_log_record_size(size_t key_len, size_t value_len)
{
        return RECORD_HEADER + BODY_HEADER + key_len + value_len;
}

/* Encodes one record into a new heap block of offset_log_record_size() bytes. */
static uint8_t *encode_record(enum offset_log_type type, const void *key, size_t key_len, const void *value,
                              size_t value_len, size_t *out_len)
{
        size_t body_len = BODY_HEADER + key_len + value_len;
        uint8_t *rec = xmalloc(RECORD_HEADER + body_len);
        uint8_t *body = rec + RECORD_HEADER;
        body[0] = (uint8_t)type;
        store_be16(body + 1, (uint16_t)key_len);
        if (key_len)
                memcpy(body + BODY_HEADER, key, key_len);
        if (value_len)
                memcpy(body + BODY_HEADER + key_len, value, value_len);
        store_be32(rec, (uint32_t)body_len);
        store_be32(rec + 4, crc32c(0, body, body_len));
        *out_len = RECORD_HEADER + body_len;
        return rec;
}

static int check_sizes(size_t key_len, size_t value_len)
{
        if (key_len > OFFSET_LOG_MAX_KEY || BODY_HEADER + key_len + value_len > OFFSET_LOG_MAX_BODY)
                return -EINVAL;
        return 0;
}

/* Replays <data, len> (after the magic); returns how many bytes hold valid records. */
static size_t replay(const uint8_t *data, size_t len, offset_log_replay_fn *fn, void *ctx)
{
        size_t pos = 0;
        while (len - pos >= RECORD_HEADER) {
                uint32_t body_len = load_be32(data + pos);
                uint32_t crc = load_be32(data + pos + 4);
                if (body_len < BODY_HEADER || body_len > OFFSET_LOG_MAX_BODY || body_len > len - pos - RECORD_HEADER)
                        break;
                const uint8_t *body = data + pos + RECORD_HEADER;
                if (crc32c(0, body, body_len) != crc)
                        break;
                uint8_t type = body[0];
                size_t key_len = load_be16(body + 1);
                if ((type != OFFSET_LOG_PUT && type != OFFSET_LOG_DELETE) || key_len > body_len - BODY_HEADER)
                        break;
                fn(ctx, (enum offset_log_type)type, body + BODY_HEADER, key_len, body + BODY_HEADER + key_len,
                   body_len - BODY_HEADER - key_len);
                pos += RECORD_HEADER + body_len;
        }
        return pos;
}

int offset_log_open(const char *path, offset_log_replay_fn *fn, void *ctx, struct offset_log **out)
{
        int fd = fileio_open(path, O_RDWR | O_CREAT, 0644);
        if (fd < 0)
                return fd;
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int rc = -errno;
                close(fd);
                return rc;
        }
        int64_t size = st.st_size;
        int rc = 0;
        if (size < (int64_t)sizeof(MAGIC)) {
                /* New, or torn while being created: start it afresh. */
                if (size > 0)
                        log_warn("offset log %s: %lld bytes, shorter than its header; starting empty", path,
                                 (long long)size);
                if (ftruncate(fd, 0) < 0 || (rc = fileio_pwrite(fd, MAGIC, sizeof(MAGIC), 0)) < 0 ||
                    fdatasync(fd) < 0) {
                        rc = rc < 0 ? rc : -errno;
                        close(fd);
                        return rc;
                }
                size = sizeof(MAGIC);
        } else {
                uint8_t *data = xmalloc((size_t)size);
                size_t got = 0;
                rc = fileio_pread(fd, data, (size_t)size, 0, &got);
                if (rc == 0 && got != (size_t)size)
                        rc = -EIO;
                if (rc == 0 && memcmp(data, MAGIC, sizeof(MAGIC)) != 0) {
                        log_error("offset log %s: not a Stratus group log (bad magic)", path);
                        rc = -EINVAL;
                }
                if (rc < 0) {
                        free(data);
                        close(fd);
                        return rc;
                }
                size_t valid = replay(data + sizeof(MAGIC), (size_t)size - sizeof(MAGIC), fn, ctx);
                free(data);
                int64_t end = (int64_t)(sizeof(MAGIC) + valid);
                if (end < size) {
                        log_warn("offset log %s: torn or corrupt tail truncated at %lld (was %lld bytes)", path,
                                 (long long)end, (long long)size);
                        if (ftruncate(fd, end) < 0) {
                                rc = -errno;
                                close(fd);
                                return rc;
                        }
                        size = end;
                }
        }
        struct offset_log *log = xcalloc(1, sizeof(*log));
        log->path = xstrdup(path);
        size_t tlen = strlen(path) + 5;
        log->tmp_path = xmalloc(tlen);
        snprintf(log->tmp_path, tlen, "%s.tmp", path);
        log->fd = fd;
        log->tmp_fd = -1;
        log->size = size;
        unlink(log->tmp_path); /* a rewrite a crash interrupted */
        *out = log;
        return 0;
}

void offset_log_close(struct offset_log *log)
{
        if (!log)
                return;
        offset_log_rewrite_abort(log);
        close(log->fd);
        free(log->path);
        free(log->tmp_path);
        free(log);
}

int offset_log_append(struct offset_log *log, enum offset_log_type type, const void *key, size_t key_len,
                      const void *value, size_t value_len)
{
        ASSERT(log->tmp_fd < 0);
        if (check_sizes(key_len, value_len) < 0)
                return -EINVAL;
        size_t len;
        uint8_t *rec = encode_record(type, key, key_len, value, value_len, &len);
        int rc = fileio_pwrite(log->fd, rec, len, log->size);
        free(rec);
        if (rc < 0) {
                /* Cut off whatever part reached the file so later records stay readable. */
                if (ftruncate(log->fd, log->size) < 0)
                        log_error("offset log %s: cannot cut back a failed append: %s", log->path, strerror(errno));
                return rc;
        }
        log->size += (int64_t)len;
        log->dirty = 1;
        return 0;
}

int offset_log_sync(struct offset_log *log)
{
        if (!log->dirty)
                return 0;
        if (fdatasync(log->fd) < 0)
                return -errno;
        log->dirty = 0;
        return 0;
}

int offset_log_dirty(const struct offset_log *log)
{
        return log->dirty;
}

int64_t offset_log_size(const struct offset_log *log)
{
        return log->size;
}

int offset_log_rewrite_begin(struct offset_log *log)
{
        ASSERT(log->tmp_fd < 0);
        int fd = fileio_open(log->tmp_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
                return fd;
        int rc = fileio_pwrite(fd, MAGIC, sizeof(MAGIC), 0);
        if (rc < 0) {
                close(fd);
                unlink(log->tmp_path);
                return rc;
        }
        log->tmp_fd = fd;
        log->tmp_size = sizeof(MAGIC);
        return 0;
}

int offset_log_rewrite_add(struct offset_log *log, const void *key, size_t key_len, const void *value,
                           size_t value_len)
{
        ASSERT(log->tmp_fd >= 0);
        if (check_sizes(key_len, value_len) < 0)
                return -EINVAL;
        size_t len;
        uint8_t *rec = encode_record(OFFSET_LOG_PUT, key, key_len, value, value_len, &len);
        int rc = fileio_pwrite(log->tmp_fd, rec, len, log->tmp_size);
        free(rec);
        if (rc < 0)
                return rc;
        log->tmp_size += (int64_t)len;
        return 0;
}

int offset_log_rewrite_commit(struct offset_log *log)
{
        ASSERT(log->tmp_fd >= 0);
        int rc = 0;
        if (fsync(log->tmp_fd) < 0 || rename(log->tmp_path, log->path) < 0) {
                rc = -errno;
                offset_log_rewrite_abort(log);
                return rc;
        }
        char *dir = xstrdup(log->path);
        char *slash = strrchr(dir, '/');
        if (slash)
                *slash = '\0';
        rc = fileio_fsync_dir(slash ? dir : ".");
        free(dir);
        if (rc < 0)
                log_warn("offset log %s: directory fsync after compaction failed: %s", log->path, strerror(-rc));
        close(log->fd);
        log->fd = log->tmp_fd;
        log->size = log->tmp_size;
        log->tmp_fd = -1;
        log->dirty = 0;
        return 0;
}

void offset_log_rewrite_abort(struct offset_log *log)
{
        if (log->tmp_fd < 0)
                return;
        close(log->tmp_fd);
        log->tmp_fd = -1;
        unlink(log->tmp_path);
}
