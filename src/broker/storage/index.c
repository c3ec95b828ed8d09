/* Offset and time index files: append, truncate and binary search with pread(). */
#include "broker/storage/index.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/fileio.h"

#define INDEX_MAX_ENTRY 12

void index_init(struct index *idx, enum index_kind kind, char *path)
{
        idx->path = path;
        idx->fd = -1;
        idx->kind = kind;
        idx->entries = 0;
        idx->last.key = 0;
        idx->last.value = 0;
}

void index_deinit(struct index *idx)
{
        index_close_fd(idx);
        free(idx->path);
        idx->path = NULL;
}

int index_entry_size(const struct index *idx)
{
        return idx->kind == INDEX_OFFSET ? 8 : 12;
}

static void encode(const struct index *idx, const struct index_entry *e, uint8_t *p)
{
        if (idx->kind == INDEX_OFFSET) {
                store_be32(p, (uint32_t)e->key);
                store_be32(p + 4, e->value);
        } else {
                store_be64(p, (uint64_t)e->key);
                store_be32(p + 8, e->value);
        }
}

static void decode(const struct index *idx, const uint8_t *p, struct index_entry *e)
{
        if (idx->kind == INDEX_OFFSET) {
                e->key = load_be32(p);
                e->value = load_be32(p + 4);
        } else {
                e->key = (int64_t)load_be64(p);
                e->value = load_be32(p + 8);
        }
}

static int open_fd(struct index *idx)
{
        if (idx->fd >= 0)
                return 0;
        int fd = fileio_open(idx->path, O_RDWR | O_CREAT, 0644);
        if (fd < 0)
                return fd;
        idx->fd = fd;
        return 0;
}

void index_close_fd(struct index *idx)
{
        if (idx->fd >= 0)
                close(idx->fd);
        idx->fd = -1;
}

int index_read(struct index *idx, uint32_t i, struct index_entry *out)
{
        int err = open_fd(idx);
        if (err)
                return err;
        uint8_t p[INDEX_MAX_ENTRY];
        size_t size = (size_t)index_entry_size(idx), got;
        err = fileio_pread(idx->fd, p, size, (int64_t)i * (int64_t)size, &got);
        if (err)
                return err;
        if (got != size)
                return -EIO; /* the file shrank under us */
        decode(idx, p, out);
        return 0;
}

int index_load(struct index *idx)
{
        index_close_fd(idx);
        idx->entries = 0;
        int fd = fileio_open(idx->path, O_RDWR, 0);
        if (fd < 0)
                return fd;
        idx->fd = fd;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        int64_t size = index_entry_size(idx);
        if (st.st_size % size != 0 || st.st_size / size > UINT32_MAX)
                return -EBADMSG;
        uint32_t n = (uint32_t)(st.st_size / size);
        if (n == 0)
                return 0;
        struct index_entry last, prev;
        int err = index_read(idx, n - 1, &last);
        if (!err && n > 1)
                err = index_read(idx, n - 2, &prev);
        if (err)
                return err;
        if (n > 1 && (prev.key > last.key || prev.value > last.value))
                return -EBADMSG;
        idx->entries = n;
        idx->last = last;
        return 0;
}

int index_truncate(struct index *idx, uint32_t entries)
{
        int err = open_fd(idx);
        if (err)
                return err;
        if (entries > idx->entries)
                entries = idx->entries;
        if (ftruncate(idx->fd, (off_t)entries * index_entry_size(idx)) < 0)
                return -errno;
        idx->entries = entries;
        if (entries > 0)
                return index_read(idx, entries - 1, &idx->last);
        return 0;
}

void index_rewind(struct index *idx, uint32_t entries, const struct index_entry *last)
{
        if (entries >= idx->entries)
                return;
        idx->entries = entries;
        idx->last = *last;
        if (idx->fd >= 0) {
                int rc = ftruncate(idx->fd, (off_t)entries * index_entry_size(idx));
                (void)rc;
        }
}

int index_append(struct index *idx, const struct index_entry *entries, uint32_t n)
{
        if (n == 0)
                return 0;
        if (n > UINT32_MAX - idx->entries)
                return -EFBIG;
        int err = open_fd(idx);
        if (err)
                return err;
        size_t size = (size_t)index_entry_size(idx);
        uint8_t *p = xmalloc(size * n);
        for (uint32_t i = 0; i < n; i++)
                encode(idx, &entries[i], p + size * i);
        int64_t pos = (int64_t)idx->entries * (int64_t)size;
        err = fileio_pwrite(idx->fd, p, size * n, pos);
        free(p);
        if (err) {
                /* Best effort: later appends overwrite from the in-memory count anyway. */
                int rc = ftruncate(idx->fd, (off_t)pos);
                (void)rc;
                return err;
        }
        idx->entries += n;
        idx->last = entries[n - 1];
        return 0;
}

/* Binary search for the last entry whose key (or value, with <by_value>) is <= <target>. */
static int search(struct index *idx, int64_t target, bool by_value, struct index_entry *out)
{
        if (idx->entries == 0)
                return -ENOENT;
        int64_t last = by_value ? (int64_t)idx->last.value : idx->last.key;
        if (last <= target) {
                *out = idx->last;
                return 0;
        }
        /* invariant: entries before lo are <= target, entries from hi on are > target */
        uint32_t lo = 0, hi = idx->entries - 1;
        struct index_entry best = { 0, 0 };
        bool found = false;
        while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                struct index_entry e;
                int err = index_read(idx, mid, &e);
                if (err)
                        return err;
                int64_t v = by_value ? (int64_t)e.value : e.key;
                if (v <= target) {
                        best = e;
                        found = true;
                        lo = mid + 1;
                } else {
                        hi = mid;
                }
        }
        if (!found)
                return -ENOENT;
        *out = best;
        return 0;
}

int index_lookup(struct index *idx, int64_t key, struct index_entry *out)
{
        return search(idx, key, false, out);
}

int index_lookup_value(struct index *idx, uint32_t value, struct index_entry *out)
{
        return search(idx, value, true, out);
}

int index_sync(struct index *idx)
{
        if (idx->fd >= 0 && fsync(idx->fd) < 0)
                return -errno;
        return 0;
}

int index_unlink(struct index *idx)
{
        index_close_fd(idx);
        if (unlink(idx->path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}
