/* Log segments: append, recovery and index rebuild, batch lookup by offset and time. */
#include "broker/storage/segment.h"
#include "broker/storage/syncer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_TOPIC "storage"
#include "base/log.h"

#include "base/alloc.h"
#include "base/crc32c.h"
#include "base/fileio.h"
#include "kafka/wire.h"

#define LOOKUP_CHUNK (16 << 10)  /* read-ahead for short header scans */
#define SCAN_CHUNK (256 << 10)   /* read-ahead for whole-segment scans */
#define CHECK_IN_MEMORY (8 << 20) /* larger batches are CRC-checked in pieces */
#define INDEX_BATCH 1024         /* index entries written per write while rebuilding */

/* ---- segment files -------------------------------------------------------------- */

void segment_file_release(void *ref)
{
        struct segment_file *file = ref;
        if (!file)
                return;
        ASSERT(file->refs > 0);
        if (--file->refs == 0) {
                if (file->unlinked)
                        syncer_close(file->fd);
                else
                        close(file->fd);
                free(file);
        }
}

static struct segment *segment_alloc(const char *dir, int64_t base_offset)
{
        struct segment *seg = xcalloc(1, sizeof(*seg));
        seg->base_offset = base_offset;
        seg->end_offset = base_offset;
        seg->rolling_base_ms = -1;
        seg->max_timestamp = -1;
        seg->max_timestamp_offset = -1;
        seg->path = xasprintf("%s/%020" PRId64 ".log", dir, base_offset);
        index_init(&seg->offset_index, INDEX_OFFSET,
                   xasprintf("%s/%020" PRId64 ".index", dir, base_offset));
        index_init(&seg->time_index, INDEX_TIME,
                   xasprintf("%s/%020" PRId64 ".timeindex", dir, base_offset));
        return seg;
}

static void attach_fd(struct segment *seg, int fd)
{
        seg->file = xmalloc(sizeof(*seg->file));
        seg->file->fd = fd;
        seg->file->refs = 1;
        seg->file->unlinked = false;
}

void segment_free(struct segment *seg)
{
        if (!seg)
                return;
        index_deinit(&seg->offset_index);
        index_deinit(&seg->time_index);
        segment_file_release(seg->file);
        free(seg->path);
        free(seg);
}

int segment_delete(struct segment *seg)
{
        int err = 0;
        if (unlink(seg->path) < 0 && errno != ENOENT)
                err = -errno;
        if (!err && seg->file)
                seg->file->unlinked = true;
        int e1 = index_unlink(&seg->offset_index);
        int e2 = index_unlink(&seg->time_index);
        if (!err)
                err = e1 ? e1 : e2;
        segment_free(seg);
        return err;
}

struct segment *segment_create(const char *dir, int64_t base_offset, int *err)
{
        struct segment *seg = segment_alloc(dir, base_offset);
        int fd = fileio_open(seg->path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) {
                *err = fd;
                segment_free(seg);
                return NULL;
        }
        attach_fd(seg, fd);
        *err = index_truncate(&seg->offset_index, 0);
        if (!*err)
                *err = index_truncate(&seg->time_index, 0);
        if (*err) {
                segment_delete(seg);
                return NULL;
        }
        return seg;
}

/* ---- batch scanning ------------------------------------------------------------- */

/* Reads batches sequentially from a .log file through a read-ahead window. */
struct scanner {
        int fd;
        int64_t pos;      /* next batch */
        int64_t end;      /* no batch reaches past this */
        size_t chunk;     /* read-ahead */
        uint8_t *buf;
        size_t cap;
        int64_t buf_pos;  /* file position of buf[0] */
        size_t buf_len;
};

static void scanner_init(struct scanner *s, int fd, int64_t pos, int64_t end, size_t chunk)
{
        memset(s, 0, sizeof(*s));
        s->fd = fd;
        s->pos = pos;
        s->end = end;
        s->chunk = chunk;
}

static void scanner_deinit(struct scanner *s)
{
        free(s->buf);
        s->buf = NULL;
}

/* Makes [<pos>, <pos> + <need>) available and returns it, or NULL with *<err>:
 * -EBADMSG when the file ends first. */
static const uint8_t *scanner_fill(struct scanner *s, int64_t pos, size_t need, int *err)
{
        if (pos >= s->buf_pos && pos + (int64_t)need <= s->buf_pos + (int64_t)s->buf_len)
                return s->buf + (pos - s->buf_pos);
        size_t want = MAX(need, s->chunk);
        if ((int64_t)want > s->end - pos)
                want = (size_t)MAX(s->end - pos, (int64_t)need);
        if (want > s->cap) {
                free(s->buf);
                s->buf = xmalloc(want);
                s->cap = want;
        }
        s->buf_len = 0;
        size_t got;
        *err = fileio_pread(s->fd, s->buf, want, pos, &got);
        if (*err)
                return NULL;
        s->buf_pos = pos;
        s->buf_len = got;
        if (got < need) {
                *err = -EBADMSG;
                return NULL;
        }
        return s->buf;
}

/* Whether the header looks like a batch that fits in <room> bytes. */
static bool header_plausible(const struct record_batch_header *h, int64_t room)
{
        return h->magic == 2 &&
               h->batch_length >= RECORD_BATCH_HEADER_SIZE - RECORD_BATCH_LOG_OVERHEAD &&
               RECORD_BATCH_LOG_OVERHEAD + (int64_t)h->batch_length <= room &&
               h->last_offset_delta >= 0;
}

/* Reads the next batch header. Returns 1 with *<h> and *<pos>, 0 at the end, -EBADMSG
 * for a torn or implausible header, or another negative errno. */
static int scanner_next(struct scanner *s, struct record_batch_header *h, int64_t *pos)
{
        if (s->pos >= s->end)
                return 0;
        if (s->end - s->pos < RECORD_BATCH_HEADER_SIZE)
                return -EBADMSG;
        int err = 0;
        const uint8_t *p = scanner_fill(s, s->pos, RECORD_BATCH_HEADER_SIZE, &err);
        if (!p)
                return err;
        record_batch_header_parse(p, RECORD_BATCH_HEADER_SIZE, h);
        if (!header_plausible(h, s->end - s->pos))
                return -EBADMSG;
        *pos = s->pos;
        s->pos += RECORD_BATCH_LOG_OVERHEAD + (int64_t)h->batch_length;
        return 1;
}

/* The whole batch at <pos> of <size> bytes (after scanner_next()), or NULL with *<err>. */
static const uint8_t *scanner_body(struct scanner *s, int64_t pos, int64_t size, int *err)
{
        return scanner_fill(s, pos, (size_t)size, err);
}

/* Validates the batch at <pos> the way record_batch_check() does, streaming the CRC
 * over batches too large to hold in memory. Returns 0, -EBADMSG, or a negative errno. */
static int check_batch(struct scanner *s, int64_t pos, const struct record_batch_header *h)
{
        int64_t size = RECORD_BATCH_LOG_OVERHEAD + (int64_t)h->batch_length;
        int err = 0;
        if (size <= CHECK_IN_MEMORY) {
                const uint8_t *p = scanner_body(s, pos, size, &err);
                if (!p)
                        return err;
                struct record_batch_header check;
                return record_batch_check(p, (size_t)size, &check) == RECORD_OK ? 0 : -EBADMSG;
        }
        if (h->record_count < 0 ||
            (h->record_count > 0 && h->last_offset_delta < h->record_count - 1))
                return -EBADMSG;
        uint32_t crc = 0;
        for (int64_t at = pos + 21; at < pos + size;) {
                size_t n = (size_t)MIN((int64_t)s->chunk, pos + size - at);
                const uint8_t *p = scanner_fill(s, at, n, &err);
                if (!p)
                        return err;
                crc = crc32c(crc, p, n);
                at += (int64_t)n;
        }
        return crc == h->crc ? 0 : -EBADMSG;
}

/* ---- index rebuild -------------------------------------------------------------- */

/* Index entries gathered during a scan, written INDEX_BATCH at a time. */
struct index_writer {
        struct index *idx;
        struct index_entry pending[INDEX_BATCH];
        uint32_t n;
        int err;
};

static void writer_add(struct index_writer *w, int64_t key, uint32_t value)
{
        if (w->err)
                return;
        w->pending[w->n].key = key;
        w->pending[w->n].value = value;
        if (++w->n == INDEX_BATCH) {
                w->err = index_append(w->idx, w->pending, w->n);
                w->n = 0;
        }
}

static int writer_flush(struct index_writer *w)
{
        if (!w->err && w->n > 0)
                w->err = index_append(w->idx, w->pending, w->n);
        w->n = 0;
        return w->err;
}

/* Scans the whole .log file of <seg> (<file_size> bytes) and rebuilds both indexes.
 * With <verify>, every batch's CRC is checked and the file is cut after the last valid
 * batch; without, headers only are read and a bad one ends the valid data (the file is
 * left alone). Sets size, end offset and timestamps. Returns 0 or a negative errno. */
static int rebuild(struct segment *seg, int64_t file_size, int64_t next_base, bool verify,
                   int32_t index_interval_bytes)
{
        struct index_writer *ow = xcalloc(1, sizeof(*ow));
        struct index_writer *tw = xcalloc(1, sizeof(*tw));
        ow->idx = &seg->offset_index;
        tw->idx = &seg->time_index;
        int err = index_truncate(&seg->offset_index, 0);
        if (!err)
                err = index_truncate(&seg->time_index, 0);
        struct scanner s;
        scanner_init(&s, seg->file->fd, 0, file_size, SCAN_CHUNK);
        int64_t expected = seg->base_offset, valid = 0, since_index = 0;
        int64_t max_ts = -1, max_ts_offset = -1;
        const char *why = NULL;
        while (!err) {
                struct record_batch_header h;
                int64_t pos;
                int rc = scanner_next(&s, &h, &pos);
                if (rc == 0)
                        break;
                if (rc == -EBADMSG) {
                        why = "torn or bad header";
                        break;
                }
                if (rc < 0) {
                        err = rc;
                        break;
                }
                int64_t last = h.base_offset + h.last_offset_delta;
                if (h.base_offset < expected || last - seg->base_offset > INT32_MAX ||
                    (next_base >= 0 && last >= next_base)) {
                        why = "offset out of order";
                        break;
                }
                if (pos > UINT32_MAX) {
                        why = "segment too large to index";
                        break;
                }
                if (verify) {
                        rc = check_batch(&s, pos, &h);
                        if (rc == -EBADMSG) {
                                why = "bad batch";
                                break;
                        }
                        if (rc < 0) {
                                err = rc;
                                break;
                        }
                }
                int64_t size = RECORD_BATCH_LOG_OVERHEAD + (int64_t)h.batch_length;
                if (since_index > index_interval_bytes) {
                        writer_add(ow, h.base_offset - seg->base_offset, (uint32_t)pos);
                        since_index = 0;
                }
                since_index += size;
                if (h.max_timestamp > max_ts) {
                        max_ts = h.max_timestamp;
                        max_ts_offset = h.base_offset;
                        writer_add(tw, max_ts, (uint32_t)(h.base_offset - seg->base_offset));
                }
                expected = last + 1;
                valid = pos + size;
        }
        scanner_deinit(&s);
        if (!err)
                err = writer_flush(ow);
        if (!err)
                err = writer_flush(tw);
        free(ow);
        free(tw);
        if (err)
                return err;
        if (valid < file_size) {
                log_warn("segment data invalid path=%s valid_bytes=%" PRId64 " file_bytes=%" PRId64
                         " reason=%s%s",
                         seg->path, valid, file_size, why ? why : "short",
                         verify ? " action=truncate" : "");
                if (verify && ftruncate(seg->file->fd, (off_t)valid) < 0)
                        return -errno;
        }
        if (verify)
                log_info("segment recovered path=%s scanned_bytes=%" PRId64 " valid_bytes=%" PRId64, seg->path,
                         file_size, valid);
        seg->size_bytes = valid;
        seg->end_offset = next_base >= 0 ? next_base : expected;
        seg->max_timestamp = max_ts;
        seg->max_timestamp_offset = max_ts_offset;
        seg->bytes_since_index = since_index;
        return 0;
}

/* ---- opening -------------------------------------------------------------------- */

static int read_header(struct segment *seg, int64_t pos, struct record_batch_header *h)
{
        if (seg->size_bytes - pos < RECORD_BATCH_HEADER_SIZE)
                return -EBADMSG;
        uint8_t p[RECORD_BATCH_HEADER_SIZE];
        size_t got;
        int err = fileio_pread(seg->file->fd, p, sizeof(p), pos, &got);
        if (err)
                return err;
        if (got < sizeof(p))
                return -EBADMSG;
        record_batch_header_parse(p, sizeof(p), h);
        return header_plausible(h, seg->size_bytes - pos) ? 0 : -EBADMSG;
}

/* Loads the offset index and checks that its last entry points at the batch it names.
 * Returns 0, -EBADMSG when it must be rebuilt, or a negative errno. */
static int load_offset_index(struct segment *seg)
{
        int err = index_load(&seg->offset_index);
        if (err == -ENOENT)
                return seg->size_bytes > 0 ? -EBADMSG : index_truncate(&seg->offset_index, 0);
        if (err || seg->offset_index.entries == 0)
                return err;
        const struct index_entry *last = &seg->offset_index.last;
        struct record_batch_header h;
        err = read_header(seg, last->value, &h);
        if (err)
                return err;
        return h.base_offset == seg->base_offset + last->key ? 0 : -EBADMSG;
}

/* Loads the time index, checking it against the end offset. Returns 0, -EBADMSG when
 * it must be rebuilt, or a negative errno. */
static int load_time_index(struct segment *seg)
{
        int err = index_load(&seg->time_index);
        if (err == -ENOENT)
                return seg->size_bytes > 0 ? -EBADMSG : index_truncate(&seg->time_index, 0);
        if (err)
                return err;
        if (seg->time_index.entries == 0) {
                /* the first batch with a timestamp always gets an entry */
                if (seg->size_bytes == 0)
                        return 0;
                struct record_batch_header h;
                err = read_header(seg, 0, &h);
                if (!err && h.max_timestamp >= 0)
                        err = -EBADMSG;
                return err;
        }
        const struct index_entry *last = &seg->time_index.last;
        if (seg->base_offset + last->value >= seg->end_offset || last->key < 0)
                return -EBADMSG;
        seg->max_timestamp = last->key;
        seg->max_timestamp_offset = seg->base_offset + last->value;
        return 0;
}

/* Finds the end of the last segment by walking headers from its last index entry. */
static int scan_tail(struct segment *seg)
{
        int64_t pos = 0, expected = seg->base_offset;
        if (seg->offset_index.entries > 0) {
                pos = seg->offset_index.last.value;
                expected = seg->base_offset + seg->offset_index.last.key;
        }
        struct scanner s;
        scanner_init(&s, seg->file->fd, pos, seg->size_bytes, LOOKUP_CHUNK);
        int rc;
        struct record_batch_header h;
        int64_t at;
        while ((rc = scanner_next(&s, &h, &at)) == 1) {
                if (h.base_offset < expected ||
                    h.base_offset + h.last_offset_delta - seg->base_offset > INT32_MAX) {
                        rc = -EBADMSG;
                        break;
                }
                expected = h.base_offset + h.last_offset_delta + 1;
        }
        scanner_deinit(&s);
        if (rc < 0)
                return rc;
        seg->end_offset = expected;
        seg->bytes_since_index = seg->size_bytes - (seg->offset_index.entries > 0 ? pos : 0);
        return 0;
}

static int load_indexes(struct segment *seg, int64_t next_base)
{
        int err = load_offset_index(seg);
        if (err)
                return err;
        if (next_base >= 0) {
                seg->end_offset = next_base;
                seg->bytes_since_index = 0;
        } else {
                err = scan_tail(seg);
                if (err)
                        return err;
        }
        return load_time_index(seg);
}

static int set_rolling_base(struct segment *seg)
{
        if (seg->size_bytes == 0)
                return 0;
        int64_t mtime_ms = 0;
        int err = segment_mtime_ms(seg, &mtime_ms);
        if (err)
                return err;
        struct record_batch_header h;
        err = read_header(seg, 0, &h);
        if (err && err != -EBADMSG)
                return err;
        /* Kafka rolls by the first batch's timestamp; the mtime bounds a future one. */
        seg->rolling_base_ms = mtime_ms;
        if (!err && h.max_timestamp >= 0)
                seg->rolling_base_ms = MIN(h.max_timestamp, mtime_ms);
        return 0;
}

static struct segment *open_segment(const char *dir, int64_t base_offset, int64_t next_base, bool verify,
                                    bool quiet, int32_t index_interval_bytes, int *err)
{
        struct segment *seg = segment_alloc(dir, base_offset);
        int fd = fileio_open(seg->path, O_RDWR, 0);
        if (fd < 0) {
                *err = fd;
                goto fail;
        }
        attach_fd(seg, fd);
        struct stat st;
        if (fstat(fd, &st) < 0) {
                *err = -errno;
                goto fail;
        }
        seg->size_bytes = st.st_size;
        bool last = next_base < 0;
        *err = verify ? -EBADMSG : load_indexes(seg, next_base);
        if (*err == -EBADMSG) {
                if (!verify && !quiet)
                        log_warn("segment index rebuilt path=%s", seg->path);
                seg->max_timestamp = -1;
                seg->max_timestamp_offset = -1;
                *err = rebuild(seg, st.st_size, next_base, verify, index_interval_bytes);
        }
        if (!*err && last)
                *err = set_rolling_base(seg);
        if (*err)
                goto fail;
        if (!last) {
                index_close_fd(&seg->offset_index);
                index_close_fd(&seg->time_index);
        }
        return seg;
fail:
        segment_free(seg);
        return NULL;
}

struct segment *segment_open(const char *dir, int64_t base_offset, int64_t next_base,
                             bool verify, int32_t index_interval_bytes, int *err)
{
        return open_segment(dir, base_offset, next_base, verify, false, index_interval_bytes, err);
}

/* ---- appending and syncing ------------------------------------------------------ */

int segment_append(struct segment *seg, const uint8_t *data, size_t len,
                   int32_t index_interval_bytes, int64_t now_ms)
{
        size_t nbatches = 0;
        for (size_t at = 0; at < len;) {
                int64_t size = record_batch_size(data + at, len - at);
                if (size < RECORD_BATCH_HEADER_SIZE || (uint64_t)size > len - at)
                        return -EINVAL;
                at += (size_t)size;
                nbatches++;
        }
        struct index_entry *offsets = xmalloc(nbatches * sizeof(*offsets));
        struct index_entry *times = xmalloc(nbatches * sizeof(*times));
        uint32_t noffsets = 0, ntimes = 0;
        int64_t since_index = seg->bytes_since_index, max_ts = seg->max_timestamp;
        int64_t max_ts_offset = seg->max_timestamp_offset, end_offset = seg->end_offset;
        for (size_t at = 0; at < len;) {
                struct record_batch_header h;
                record_batch_header_parse(data + at, len - at, &h);
                int64_t size = RECORD_BATCH_LOG_OVERHEAD + (int64_t)h.batch_length;
                int64_t rel = h.base_offset - seg->base_offset;
                if (since_index > index_interval_bytes) {
                        offsets[noffsets].key = rel;
                        offsets[noffsets++].value = (uint32_t)(seg->size_bytes + (int64_t)at);
                        since_index = 0;
                }
                since_index += size;
                if (h.max_timestamp > max_ts) {
                        max_ts = h.max_timestamp;
                        max_ts_offset = h.base_offset;
                        times[ntimes].key = max_ts;
                        times[ntimes++].value = (uint32_t)rel;
                }
                end_offset = h.base_offset + h.last_offset_delta + 1;
                at += (size_t)size;
        }
        uint32_t old_entries = seg->offset_index.entries;
        struct index_entry old_last = seg->offset_index.last;
        int err = fileio_pwrite(seg->file->fd, data, len, seg->size_bytes);
        if (!err)
                err = index_append(&seg->offset_index, offsets, noffsets);
        if (!err) {
                err = index_append(&seg->time_index, times, ntimes);
                if (err)
                        index_rewind(&seg->offset_index, old_entries, &old_last);
        }
        free(offsets);
        free(times);
        if (err) {
                log_warn("segment append failed path=%s err=%s", seg->path, strerror(-err));
                /* Best effort: the in-memory size is what counts. */
                int rc = ftruncate(seg->file->fd, (off_t)seg->size_bytes);
                (void)rc;
                return err;
        }
        if (seg->size_bytes == 0)
                seg->rolling_base_ms = now_ms;
        seg->size_bytes += (int64_t)len;
        seg->end_offset = end_offset;
        seg->bytes_since_index = since_index;
        seg->max_timestamp = max_ts;
        seg->max_timestamp_offset = max_ts_offset;
        seg->dirty = true;
        return 0;
}

int segment_sync(struct segment *seg)
{
        if (!seg->dirty)
                return 0;
        if (fdatasync(seg->file->fd) < 0)
                return -errno;
        seg->dirty = false;
        return 0;
}

int segment_seal(struct segment *seg)
{
        int err = fsync(seg->file->fd) < 0 ? -errno : 0;
        if (!err)
                err = index_sync(&seg->offset_index);
        if (!err)
                err = index_sync(&seg->time_index);
        if (err)
                return err;
        seg->dirty = false;
        index_close_fd(&seg->offset_index);
        index_close_fd(&seg->time_index);
        return 0;
}

struct sync_job *segment_seal_async(struct segment *seg, const char *dir, const char *recovery_path,
                                    int64_t recovery_point)
{
        int fds[3] = { seg->file->fd, seg->offset_index.fd, seg->time_index.fd };
        struct sync_job *job = syncer_submit(fds, 3, dir, recovery_path, recovery_point);
        seg->dirty = false;
        index_close_fd(&seg->offset_index);
        index_close_fd(&seg->time_index);
        return job;
}

int segment_mtime_ms(struct segment *seg, int64_t *mtime_ms)
{
        struct stat st;
        if (fstat(seg->file->fd, &st) < 0)
                return -errno;
        *mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
        return 0;
}

/* ---- lookups -------------------------------------------------------------------- */

/* Scans from the indexed batch at or before <offset> to the batch holding it, leaving
 * <s> after that batch (the caller deinits <s>). An index entry that does not name the
 * batch at its position is distrusted and the scan starts over from the beginning. */
static int find_batch(struct segment *seg, struct scanner *s, int64_t offset, int64_t *pos,
                      struct record_batch_header *h)
{
        struct index_entry e;
        int64_t rel = offset - seg->base_offset, start = 0, expected = seg->base_offset;
        if (rel > 0 &&
            index_lookup(&seg->offset_index, MIN(rel, (int64_t)UINT32_MAX), &e) == 0 &&
            (int64_t)e.value < seg->size_bytes) {
                start = e.value;
                expected = seg->base_offset + e.key;
        }
        for (;;) {
                scanner_init(s, seg->file->fd, start, seg->size_bytes, LOOKUP_CHUNK);
                bool first = true;
                int rc;
                while ((rc = scanner_next(s, h, pos)) == 1) {
                        if (first && (start > 0 ? h->base_offset != expected
                                                : h->base_offset < expected))
                                break;
                        first = false;
                        if (h->base_offset + h->last_offset_delta >= offset)
                                return 0;
                }
                if (first && start > 0 && rc != 0 && (rc == 1 || rc == -EBADMSG)) {
                        log_warn("segment index entry wrong path=%s pos=%" PRId64, seg->path,
                                 start);
                        scanner_deinit(s);
                        start = 0;
                        expected = seg->base_offset;
                        continue;
                }
                if (rc == 1)
                        rc = -EBADMSG; /* the first batch lies below the segment's base */
                if (rc == -EBADMSG)
                        log_warn("segment corrupt path=%s pos=%" PRId64, seg->path, s->pos);
                return rc == 0 ? -ENOENT : rc;
        }
}

int segment_find_batch(struct segment *seg, int64_t offset, int64_t *pos,
                       struct record_batch_header *h)
{
        struct scanner s;
        int err = find_batch(seg, &s, offset, pos, h);
        scanner_deinit(&s);
        return err;
}

int segment_batch_at(struct segment *seg, int64_t pos, struct record_batch_header *h)
{
        return pos < 0 ? -EBADMSG : read_header(seg, pos, h);
}

int64_t segment_boundary_before(struct segment *seg, int64_t from, int64_t limit, int64_t *next_offset)
{
        struct index_entry e;
        int64_t start = from, start_offset = *next_offset;
        if (limit >= seg->size_bytes) {
                *next_offset = seg->end_offset;
                return seg->size_bytes;
        }
        if (index_lookup_value(&seg->offset_index, (uint32_t)MIN(limit, (int64_t)UINT32_MAX),
                               &e) == 0 &&
            (int64_t)e.value > from) {
                start = e.value;
                start_offset = seg->base_offset + e.key;
        }
        struct scanner s;
        scanner_init(&s, seg->file->fd, start, seg->size_bytes, LOOKUP_CHUNK);
        struct record_batch_header h;
        int64_t pos, boundary = start, offset = start_offset;
        int rc;
        while ((rc = scanner_next(&s, &h, &pos)) == 1 && s.pos <= limit) {
                boundary = s.pos;
                offset = h.base_offset + h.last_offset_delta + 1;
        }
        scanner_deinit(&s);
        if (rc < 0 && boundary == start)
                return from; /* the index entry pointed at garbage */
        *next_offset = offset;
        return boundary;
}

int segment_for_each_batch(struct segment *seg, int64_t from_offset, segment_batch_fn *fn,
                           void *ctx)
{
        struct scanner s;
        struct record_batch_header h;
        int64_t pos;
        int rc = find_batch(seg, &s, from_offset, &pos, &h);
        if (rc == -ENOENT)
                rc = 0;
        else if (rc == 0)
                for (;;) {
                        rc = fn(ctx, &h);
                        if (rc)
                                break;
                        rc = scanner_next(&s, &h, &pos);
                        if (rc <= 0)
                                break;
                }
        scanner_deinit(&s);
        return rc;
}

/* Finds in the uncompressed batch <p, size> the first record at or after <min_offset>
 * with a timestamp >= <target_ms>. Returns 1 when found, 0 when none, -EBADMSG when
 * the records do not parse. */
static int search_records(const uint8_t *p, int64_t size, const struct record_batch_header *h,
                          int64_t target_ms, int64_t min_offset, int64_t *offset,
                          int64_t *timestamp_ms)
{
        const uint8_t *q = p + RECORD_BATCH_HEADER_SIZE, *end = p + size;
        bool append_time = h->attributes & RECORD_ATTR_TIMESTAMP_LOG_APPEND;
        for (int32_t i = 0; i < h->record_count; i++) {
                int64_t length, ts_delta, offset_delta;
                if (!kafka_take_varlong(&q, end, &length) || length < 1 || length > end - q)
                        return -EBADMSG;
                const uint8_t *next = q + length;
                q++; /* attributes */
                if (!kafka_take_varlong(&q, next, &ts_delta) || !kafka_take_varlong(&q, next, &offset_delta))
                        return -EBADMSG;
                int64_t ts = append_time ? h->max_timestamp : h->base_timestamp + ts_delta;
                int64_t off = h->base_offset + offset_delta;
                if (ts >= target_ms && off >= min_offset) {
                        *offset = off;
                        *timestamp_ms = ts;
                        return 1;
                }
                q = next;
        }
        return 0;
}

/* Whether the batch at <pos> (header <h>) holds the answer of segment_find_timestamp().
 * Returns 1 with *<offset> and *<timestamp_ms>, 0 when not, or a negative errno. */
static int match_timestamp(struct segment *seg, struct scanner *s, int64_t pos,
                           const struct record_batch_header *h, int64_t target_ms,
                           int64_t min_offset, int64_t *offset, int64_t *timestamp_ms)
{
        if (h->base_offset + h->last_offset_delta < min_offset || h->max_timestamp < target_ms)
                return 0;
        if ((h->attributes & RECORD_ATTR_COMPRESSION_MASK) == 0) {
                int64_t size = RECORD_BATCH_LOG_OVERHEAD + (int64_t)h->batch_length;
                int err = 0;
                const uint8_t *p = scanner_body(s, pos, size, &err);
                if (!p)
                        return err;
                int found = search_records(p, size, h, target_ms, min_offset, offset,
                                           timestamp_ms);
                if (found >= 0)
                        return found;
                log_warn("segment records unparsable path=%s offset=%" PRId64, seg->path,
                         h->base_offset);
        }
        /* compressed (or unparsable): the batch itself answers */
        *offset = MAX(h->base_offset, min_offset);
        *timestamp_ms = h->max_timestamp;
        return 1;
}

int segment_find_timestamp(struct segment *seg, int64_t target_ms, int64_t min_offset,
                           int64_t *offset, int64_t *timestamp_ms)
{
        if (seg->max_timestamp < target_ms || min_offset >= seg->end_offset)
                return -ENOENT;
        int64_t start = MAX(seg->base_offset, min_offset);
        struct index_entry e;
        /* batches before the last entry under the target hold no later timestamp */
        if (target_ms > INT64_MIN && index_lookup(&seg->time_index, target_ms - 1, &e) == 0)
                start = MAX(start, seg->base_offset + e.value);
        struct scanner s;
        struct record_batch_header h;
        int64_t pos;
        int rc = find_batch(seg, &s, start, &pos, &h);
        while (rc == 0) {
                rc = match_timestamp(seg, &s, pos, &h, target_ms, min_offset, offset,
                                     timestamp_ms);
                if (rc == 1) {
                        rc = 0;
                        break;
                }
                if (rc < 0)
                        break;
                rc = scanner_next(&s, &h, &pos);
                rc = rc == 1 ? 0 : rc == 0 ? -ENOENT : rc;
        }
        scanner_deinit(&s);
        return rc;
}

/* ---- compaction ----------------------------------------------------------------- */

int segment_scan_batches(struct segment *seg, segment_bytes_fn *fn, void *ctx)
{
        return segment_scan_file(seg->file->fd, seg->size_bytes, fn, ctx);
}

int segment_scan_file(int fd, int64_t size_bytes, segment_bytes_fn *fn, void *ctx)
{
        struct scanner s;
        scanner_init(&s, fd, 0, size_bytes, SCAN_CHUNK);
        int rc;
        struct record_batch_header h;
        int64_t pos;
        while ((rc = scanner_next(&s, &h, &pos)) == 1) {
                int64_t size = RECORD_BATCH_LOG_OVERHEAD + (int64_t)h.batch_length;
                int err = 0;
                const uint8_t *p = scanner_body(&s, pos, size, &err);
                if (!p) {
                        rc = err;
                        break;
                }
                rc = fn(ctx, &h, p, (size_t)size, pos);
                if (rc)
                        break;
        }
        scanner_deinit(&s);
        return rc;
}

struct rewrite {
        segment_keep_fn *keep;
        void *ctx;
        int fd;
        int64_t written;
};

static int rewrite_one(void *arg, const struct record_batch_header *h, const uint8_t *batch, size_t len,
                       int64_t pos)
{
        struct rewrite *rw = arg;
        const uint8_t *out = batch;
        size_t out_len = len;
        int rc = rw->keep(rw->ctx, h, batch, len, pos, &out, &out_len);
        if (rc <= 0)
                return rc;
        rc = fileio_pwrite(rw->fd, out, out_len, rw->written);
        if (rc)
                return rc;
        rw->written += (int64_t)out_len;
        return 0;
}

int segment_write_cleaned(int src_fd, int64_t size_bytes, const char *work_dir, int64_t base_offset,
                          int64_t next_base, int32_t index_interval_bytes, segment_keep_fn *keep, void *ctx)
{
        char *path = xasprintf("%s/%020" PRId64 ".log", work_dir, base_offset);
        int fd = fileio_open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        free(path);
        if (fd < 0)
                return fd;
        struct rewrite rw = { keep, ctx, fd, 0 };
        int err = segment_scan_file(src_fd, size_bytes, rewrite_one, &rw);
        if (!err && fdatasync(fd) < 0)
                err = -errno;
        close(fd);
        if (err)
                return err;
        /* Its indexes, built from the new file (expected: no warning), made durable. */
        struct segment *seg = open_segment(work_dir, base_offset, next_base, false, true, index_interval_bytes, &err);
        if (!seg)
                return err;
        err = fileio_fsync_path(seg->offset_index.path);
        if (!err)
                err = fileio_fsync_path(seg->time_index.path);
        segment_free(seg);
        return err;
}

static int rename_into(const char *work_dir, const char *name_of, const char *to)
{
        char *from = xasprintf("%s/%s", work_dir, strrchr(name_of, '/') + 1);
        int err = rename(from, to) < 0 ? -errno : 0;
        free(from);
        return err;
}

int segment_replace(struct segment *seg, const char *dir, const char *work_dir, int64_t next_base,
                    int32_t index_interval_bytes, struct segment **out)
{
        *out = NULL;
        /* Old indexes go first, new ones come last: whichever .log a crash leaves has its
         * own indexes or none (then they are rebuilt at open). */
        int err = index_unlink(&seg->offset_index);
        if (!err)
                err = index_unlink(&seg->time_index);
        if (!err)
                err = rename_into(work_dir, seg->path, seg->path);
        if (!err)
                seg->file->unlinked = true; /* the old inode goes with its last descriptor */
        if (!err)
                err = rename_into(work_dir, seg->offset_index.path, seg->offset_index.path);
        if (!err)
                err = rename_into(work_dir, seg->time_index.path, seg->time_index.path);
        /* The old indexes may be gone even on failure: open (rebuilding if need be). */
        int open_err = 0;
        *out = segment_open(dir, seg->base_offset, next_base, false, index_interval_bytes, &open_err);
        return err ? err : open_err;
}
