/* The partition log: an ordered list of segments (the last one active), the log start
 * offset, and the producer state. Opening, appending and rolling, reads, timestamp
 * lookups, DeleteRecords and retention. */
#include "broker/storage/plog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_TOPIC "storage"
#include "base/log.h"

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fileio.h"
#include "base/map.h"
#include "broker/storage/producer_state.h"
#include "broker/storage/syncer.h"
#include "broker/storage/segment.h"
#include "kafka/errors.h"
#include "kafka/record.h"

#define START_OFFSET_FILE "log-start-offset"
#define RECOVERY_POINT_FILE "recovery-point"
#define READ_HINTS 4
#define SEALS_IN_FLIGHT 2 /* per partition */
#define CLEANING_DIR "cleaning" /* in a log's directory: a compaction pass's new files */
#define SNAPSHOTS_KEPT 2 /* the newest, and one to fall back on if it is torn */

struct plog {
        char *dir;
        struct plog_config cfg;
        struct segment **segs; /* oldest first; the last one is active */
        int nsegs;
        int cap_segs;
        int64_t start_offset;
        int64_t size_bytes; /* sum of the segments' sizes */
        struct producer_state producers;
        struct producer_undo undo; /* scratch for plog_append() */
        int64_t *snapshots;        /* offsets of snapshot files on disk, ascending */
        int nsnapshots;
        bool compact_dirty;        /* a segment was closed since the last compaction */
        /* Where the last reads ended: a consumer reading on asks next for the offset a
         * read ended at, found here without index lookups. Valid while layout_gen is
         * unchanged (segments deleted or rewritten bump it). A few, for several groups
         * reading one partition. */
        struct read_hint {
                struct segment *seg;
                int64_t offset;
                int64_t pos;
                uint64_t gen;
        } hints[READ_HINTS];
        int next_hint;
        uint64_t layout_gen;
        struct sync_job **syncs; /* background seals of rolled segments, oldest first */
        int nsyncs, cap_syncs;
        struct clean_job *cleaning; /* the compaction pass under way, or NULL */
};

static struct segment *active(const struct plog *log)
{
        return log->segs[log->nsegs - 1];
}

static void push_segment(struct plog *log, struct segment *seg)
{
        if (log->nsegs == log->cap_segs) {
                log->cap_segs = log->cap_segs ? log->cap_segs * 2 : 4;
                log->segs = xrealloc(log->segs, (size_t)log->cap_segs * sizeof(*log->segs));
        }
        log->segs[log->nsegs++] = seg;
        log->size_bytes += seg->size_bytes;
}

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

/* ---- snapshots ------------------------------------------------------------------ */

static void forget_snapshot(struct plog *log, int i)
{
        char *path = producer_snapshot_path(log->dir, log->snapshots[i]);
        if (unlink(path) < 0 && errno != ENOENT)
                log_warn("snapshot delete failed path=%s err=%s", path, strerror(errno));
        free(path);
        memmove(&log->snapshots[i], &log->snapshots[i + 1],
                (size_t)(log->nsnapshots - i - 1) * sizeof(*log->snapshots));
        log->nsnapshots--;
}

/* Writes the producer state as the snapshot at <offset> and keeps only the newest. */
static int take_snapshot(struct plog *log, int64_t offset)
{
        int err = producer_state_write_snapshot(&log->producers, log->dir, offset);
        if (err)
                return err;
        int i = 0;
        while (i < log->nsnapshots && log->snapshots[i] < offset)
                i++;
        if (i == log->nsnapshots || log->snapshots[i] != offset) {
                log->snapshots = xrealloc(log->snapshots,
                                          (size_t)(log->nsnapshots + 1) * sizeof(*log->snapshots));
                memmove(&log->snapshots[i + 1], &log->snapshots[i],
                        (size_t)(log->nsnapshots - i) * sizeof(*log->snapshots));
                log->snapshots[i] = offset;
                log->nsnapshots++;
        }
        while (log->nsnapshots > SNAPSHOTS_KEPT)
                forget_snapshot(log, 0);
        return 0;
}

struct replay_ctx {
        struct producer_state *producers;
        int64_t from_offset; /* batches below were in the snapshot */
        int64_t now_ms;      /* last activity for batches without a timestamp */
};

static int replay_batch(void *arg, const struct record_batch_header *h)
{
        struct replay_ctx *ctx = arg;
        if (h->base_offset >= ctx->from_offset)
                producer_state_replay(ctx->producers, h,
                                      h->max_timestamp >= 0 ? h->max_timestamp : ctx->now_ms);
        return 0;
}

/* Loads the newest valid snapshot at or below the log end, then replays the batch
 * headers after it. */
static int load_producers(struct plog *log)
{
        int64_t end = plog_end_offset(log), from = log->segs[0]->base_offset;
        while (log->nsnapshots > 0 && log->snapshots[log->nsnapshots - 1] > end) {
                log_warn("snapshot past log end deleted offset=%" PRId64 " end=%" PRId64,
                         log->snapshots[log->nsnapshots - 1], end);
                forget_snapshot(log, log->nsnapshots - 1);
        }
        while (log->nsnapshots > 0) {
                int64_t offset = log->snapshots[log->nsnapshots - 1];
                int err = producer_state_read_snapshot(&log->producers, log->dir, offset);
                if (err == 0) {
                        from = MAX(from, offset);
                        break;
                }
                log_warn("snapshot ignored offset=%" PRId64 " err=%s", offset, strerror(-err));
                forget_snapshot(log, log->nsnapshots - 1);
        }
        struct replay_ctx ctx = { &log->producers, from, clock_wall_ms() };
        for (int i = 0; i < log->nsegs; i++) {
                struct segment *seg = log->segs[i];
                if (seg->end_offset <= from)
                        continue;
                int err = segment_for_each_batch(seg, MAX(from, seg->base_offset), replay_batch,
                                                 &ctx);
                if (err == -EBADMSG)
                        log_warn("producer replay stopped at corrupt data path=%s", seg->path);
                else if (err)
                        return err;
        }
        while (log->nsnapshots > SNAPSHOTS_KEPT)
                forget_snapshot(log, 0);
        return 0;
}

/* ---- log start offset file ------------------------------------------------------ */

static int write_start_offset(struct plog *log, int64_t offset)
{
        char *path = xasprintf("%s/%s", log->dir, START_OFFSET_FILE);
        char *text = xasprintf("%" PRId64 "\n", offset);
        int err = fileio_replace(log->dir, path, text, strlen(text));
        free(text);
        free(path);
        return err;
}

/* Returns the offset persisted in the file <name> of the log directory, or -1 when
 * there is none (or it is garbage). */
static int64_t read_offset_file(struct plog *log, const char *name)
{
        char *path = xasprintf("%s/%s", log->dir, name);
        int64_t offset = -1;
        int fd = fileio_open(path, O_RDONLY, 0);
        if (fd >= 0) {
                char text[32];
                size_t got;
                int err = fileio_pread(fd, text, sizeof(text) - 1, 0, &got);
                close(fd);
                char *end = NULL;
                if (!err) {
                        text[got] = '\0';
                        errno = 0;
                        offset = strtoll(text, &end, 10);
                }
                if (err || end == text || *end != '\n' || errno || offset < 0) {
                        log_warn("offset file ignored path=%s", path);
                        offset = -1;
                }
        } else if (fd != -ENOENT) {
                log_warn("offset file unreadable path=%s err=%s", path, strerror(-fd));
        }
        free(path);
        return offset;
}

/* ---- opening and closing -------------------------------------------------------- */

/* Parses "<20 digits>.<suffix>". Returns the suffix, or NULL. */
static const char *parse_name(const char *name, int64_t *offset)
{
        int64_t v = 0;
        for (int i = 0; i < 20; i++) {
                if (name[i] < '0' || name[i] > '9')
                        return NULL;
                if (v > (INT64_MAX - (name[i] - '0')) / 10)
                        return NULL;
                v = v * 10 + (name[i] - '0');
        }
        if (name[20] != '.')
                return NULL;
        *offset = v;
        return name + 21;
}

struct dir_listing {
        int64_t *logs; /* segment base offsets */
        int nlogs;
};

static void add_offset(int64_t **arr, int *n, int64_t offset)
{
        *arr = xrealloc(*arr, (size_t)(*n + 1) * sizeof(**arr));
        (*arr)[(*n)++] = offset;
}

static void remove_file(const struct plog *log, const char *name, const char *why)
{
        char *path = xasprintf("%s/%s", log->dir, name);
        log_warn("file deleted path=%s reason=%s", path, why);
        if (unlink(path) < 0 && errno != ENOENT)
                log_warn("file delete failed path=%s err=%s", path, strerror(errno));
        free(path);
}

static bool has_offset(const int64_t *arr, int n, int64_t offset)
{
        return n > 0 && bsearch(&offset, arr, (size_t)n, sizeof(*arr), cmp_i64) != NULL;
}

static void discard_work_dir(const char *work_dir);

/* Lists segments and snapshots in the directory, deleting leftovers of ours (temporary
 * files, index files without a segment) and warning about foreign files. */
static int list_dir(struct plog *log, struct dir_listing *ls)
{
        DIR *d = opendir(log->dir);
        if (!d)
                return -errno;
        char **stray = NULL;
        int nstray = 0;
        struct dirent *de;
        errno = 0;
        while ((de = readdir(d)) != NULL) {
                const char *name = de->d_name;
                int64_t offset = 0;
                const char *suffix = parse_name(name, &offset);
                if (!strcmp(name, ".") || !strcmp(name, "..") || !strcmp(name, START_OFFSET_FILE))
                        continue;
                if (!strcmp(name, CLEANING_DIR)) { /* a compaction pass a crash cut short */
                        char *path = xasprintf("%s/%s", log->dir, name);
                        log_info("removing leftover path=%s (an unfinished compaction)", path);
                        discard_work_dir(path);
                        free(path);
                        errno = 0;
                        continue;
                }
                size_t len = strlen(name);
                if (len > 4 && !strcmp(name + len - 4, ".tmp") &&
                    (suffix || !strncmp(name, START_OFFSET_FILE, strlen(START_OFFSET_FILE)))) {
                        remove_file(log, name, "temporary");
                } else if (suffix && !strcmp(suffix, "log")) {
                        add_offset(&ls->logs, &ls->nlogs, offset);
                } else if (suffix && (!strcmp(suffix, "index") || !strcmp(suffix, "timeindex"))) {
                        stray = xrealloc(stray, (size_t)(nstray + 1) * sizeof(*stray));
                        stray[nstray++] = xstrdup(name);
                } else if (suffix && !strcmp(suffix, "snapshot")) {
                        add_offset(&log->snapshots, &log->nsnapshots, offset);
                } else {
                        log_warn("unknown file ignored dir=%s name=%s", log->dir, name);
                }
                errno = 0;
        }
        int err = errno ? -errno : 0;
        closedir(d);
        if (ls->nlogs > 1)
                qsort(ls->logs, (size_t)ls->nlogs, sizeof(*ls->logs), cmp_i64);
        if (log->nsnapshots > 1)
                qsort(log->snapshots, (size_t)log->nsnapshots, sizeof(*log->snapshots), cmp_i64);
        for (int i = 0; i < nstray; i++) {
                int64_t offset = 0;
                parse_name(stray[i], &offset);
                if (!err && !has_offset(ls->logs, ls->nlogs, offset))
                        remove_file(log, stray[i], "no segment");
                free(stray[i]);
        }
        free(stray);
        return err;
}

static void delete_oldest(struct plog *log, const char *reason);

/* Frees the background seals that are done, oldest first, waiting for the oldest
 * while more than <keep> are left. */
static void reap_syncs(struct plog *log, int keep)
{
        int n = 0, err;
        while (n < log->nsyncs && (log->nsyncs - n > keep || sync_job_done(log->syncs[n], &err)))
                sync_job_free(log->syncs[n++]); /* a failure was logged by the sync thread */
        if (n == 0)
                return;
        memmove(log->syncs, log->syncs + n, (size_t)(log->nsyncs - n) * sizeof(*log->syncs));
        log->nsyncs -= n;
}

static void drop_job(struct plog *log);

static void free_log(struct plog *log)
{
        drop_job(log);      /* no compaction thread either */
        reap_syncs(log, 0); /* no sync thread may touch the directory afterwards */
        free(log->syncs);
        for (int i = 0; i < log->nsegs; i++)
                segment_free(log->segs[i]);
        free(log->segs);
        producer_state_deinit(&log->producers);
        producer_undo_deinit(&log->undo);
        free(log->snapshots);
        free(log->dir);
        free(log);
}

struct plog *plog_open(const char *dir, const struct plog_config *cfg, bool recover, int *err)
{
        *err = fileio_mkdirs(dir);
        if (*err)
                return NULL;
        struct plog *log = xcalloc(1, sizeof(*log));
        log->dir = xstrdup(dir);
        log->cfg = *cfg;
        log->compact_dirty = true; /* closed segments may not have been cleaned before */
        producer_state_init(&log->producers);
        producer_undo_init(&log->undo);
        struct dir_listing ls = { NULL, 0 };
        *err = list_dir(log, &ls);
        int64_t persisted_start = read_offset_file(log, START_OFFSET_FILE);
        /* -1 (no file): every segment may be torn. */
        int64_t recovery_point = recover ? read_offset_file(log, RECOVERY_POINT_FILE) : -1;
        for (int i = 0; !*err && i < ls.nlogs; i++) {
                int64_t next_base = i + 1 < ls.nlogs ? ls.logs[i + 1] : -1;
                bool verify = recover && (next_base < 0 || ls.logs[i] >= recovery_point);
                struct segment *seg = segment_open(dir, ls.logs[i], next_base, verify,
                                                   cfg->index_interval_bytes, err);
                if (seg)
                        push_segment(log, seg);
        }
        if (!*err && log->nsegs == 0) {
                struct segment *seg = segment_create(dir, MAX(persisted_start, 0), err);
                if (seg)
                        push_segment(log, seg);
                if (!*err)
                        *err = fileio_fsync_dir(dir);
        }
        free(ls.logs);
        if (!*err) {
                log->start_offset = MIN(MAX(log->segs[0]->base_offset, persisted_start),
                                        plog_end_offset(log));
                /* a crash may have come between persisting the start and deleting */
                while (log->nsegs > 1 && log->segs[0]->end_offset <= log->start_offset)
                        delete_oldest(log, "below-log-start");
                *err = load_producers(log);
        }
        if (*err) {
                log_error("log open failed dir=%s err=%s", dir, strerror(-*err));
                free_log(log);
                return NULL;
        }
        log_info("log opened dir=%s segments=%d start_offset=%" PRId64 " end_offset=%" PRId64
                 " producers=%zu recover=%d",
                 dir, log->nsegs, log->start_offset, plog_end_offset(log), log->producers.count,
                 recover);
        return log;
}

void plog_close(struct plog *log)
{
        if (!log)
                return;
        int err = segment_seal(active(log));
        if (!err)
                err = take_snapshot(log, plog_end_offset(log));
        if (err)
                log_error("log close failed dir=%s err=%s", log->dir, strerror(-err));
        free_log(log);
}

int plog_destroy(struct plog *log)
{
        char *dir = xstrdup(log->dir);
        drop_job(log);
        /* Deleting: no need to wait for the fsyncs of files about to go. */
        for (int i = 0; i < log->nsyncs; i++)
                sync_job_abandon(log->syncs[i]);
        log->nsyncs = 0;
        /* Segment files unlinked while open, so that freeing their blocks happens at the
         * last close, on the sync thread, not in the tree removal below on this one. */
        for (int i = 0; i < log->nsegs; i++)
                segment_delete(log->segs[i]);
        log->nsegs = 0;
        free_log(log);
        int err = fileio_remove_tree(dir);
        if (err)
                log_error("log remove failed dir=%s err=%s", dir, strerror(-err));
        else
                log_info("log deleted dir=%s", dir);
        free(dir);
        return err;
}

void plog_set_config(struct plog *log, const struct plog_config *cfg)
{
        log->cfg = *cfg;
}

/* ---- appending ------------------------------------------------------------------ */

/* Closes the active segment and starts a new one at the log end. */
static int roll(struct plog *log, int64_t now_ms)
{
        struct segment *old = active(log);
        /* At most SEALS_IN_FLIGHT: recovery scans no more segments than that, plus the
         * active one. Rolls faster than the disk syncs wait here. */
        reap_syncs(log, SEALS_IN_FLIGHT - 1);
        if (log->nsyncs == log->cap_syncs) {
                log->cap_syncs = log->cap_syncs ? 2 * log->cap_syncs : 2;
                log->syncs = xrealloc(log->syncs, (size_t)log->cap_syncs * sizeof(*log->syncs));
        }
        /* Durable in the background; until then recovery also scans <old>. */
        char *path = xasprintf("%s/%s", log->dir, RECOVERY_POINT_FILE);
        log->syncs[log->nsyncs++] = segment_seal_async(old, log->dir, path, old->end_offset);
        free(path);
        int err = 0;
        struct segment *seg = segment_create(log->dir, old->end_offset, &err);
        if (!err)
                err = fileio_fsync_dir(log->dir);
        if (err) {
                log_error("segment roll failed dir=%s err=%s", log->dir, strerror(-err));
                if (seg)
                        segment_delete(seg);
                return err;
        }
        push_segment(log, seg);
        log->compact_dirty = true;
        producer_state_expire(&log->producers, now_ms, log->cfg.producer_expiration_ms);
        take_snapshot(log, seg->base_offset); /* best effort: replay covers a missing one */
        log_info("segment rolled dir=%s base_offset=%" PRId64 " prev_bytes=%" PRId64, log->dir,
                 seg->base_offset, old->size_bytes);
        return 0;
}

static int maybe_roll(struct plog *log, size_t len, int64_t count, int64_t now_ms)
{
        struct segment *seg = active(log);
        if (seg->size_bytes == 0)
                return 0;
        bool full = log->cfg.segment_bytes > 0 &&
                    seg->size_bytes + (int64_t)len > log->cfg.segment_bytes;
        bool old = log->cfg.segment_ms > 0 && now_ms - seg->rolling_base_ms > log->cfg.segment_ms;
        /* index entries hold 32-bit relative offsets and positions */
        bool overflow = seg->end_offset + count - 1 - seg->base_offset > INT32_MAX ||
                        seg->size_bytes + (int64_t)len > UINT32_MAX;
        return full || old || overflow ? roll(log, now_ms) : 0;
}

/* Checks the structure of the record set; returns the number of offsets it takes, or
 * -1 when it is malformed. */
static int64_t count_offsets(const uint8_t *data, size_t len)
{
        int64_t count = 0;
        for (size_t at = 0; at < len;) {
                struct record_batch_header h;
                int64_t size = record_batch_size(data + at, len - at);
                if (size < RECORD_BATCH_HEADER_SIZE || (uint64_t)size > len - at ||
                    record_batch_header_parse(data + at, len - at, &h) < 0 || h.magic != 2 ||
                    h.last_offset_delta < 0)
                        return -1;
                count += (int64_t)h.last_offset_delta + 1;
                at += (size_t)size;
        }
        return count;
}

/* Runs the producer checks over every batch. Returns KAFKA_NONE with the set recorded
 * in the producer state (undo in log->undo), or the error / duplicate with nothing
 * recorded. */
static int16_t check_producers(struct plog *log, const uint8_t *data, size_t len,
                               int64_t now_ms, struct plog_append_result *res)
{
        int64_t next = plog_end_offset(log);
        for (size_t at = 0; at < len;) {
                struct record_batch_header h;
                record_batch_header_parse(data + at, len - at, &h);
                bool duplicate;
                struct producer_batch dup;
                int16_t code = producer_state_append(&log->producers, &h, next, now_ms,
                                                     &log->undo, &duplicate, &dup);
                if (code != KAFKA_NONE || duplicate) {
                        producer_state_rollback(&log->producers, &log->undo);
                        if (duplicate) {
                                res->duplicate = true;
                                res->base_offset = dup.first_offset;
                                res->last_offset = dup.last_offset;
                                log_debug("duplicate batch producer_id=%" PRId64 " seq=%d",
                                          h.producer_id, h.base_sequence);
                        }
                        return code;
                }
                next += (int64_t)h.last_offset_delta + 1;
                at += RECORD_BATCH_LOG_OVERHEAD + (size_t)h.batch_length;
        }
        return KAFKA_NONE;
}

int plog_append(struct plog *log, uint8_t *data, size_t len, int64_t now_ms,
                struct plog_append_result *res)
{
        memset(res, 0, sizeof(*res));
        res->base_offset = -1;
        res->last_offset = -1;
        res->log_start_offset = log->start_offset;
        int64_t count = count_offsets(data, len);
        if (count < 0) {
                res->error_code = KAFKA_CORRUPT_MESSAGE;
                return 0;
        }
        if (count == 0)
                return 0;
        int err = maybe_roll(log, len, count, now_ms);
        if (err)
                return err;
        res->error_code = check_producers(log, data, len, now_ms, res);
        if (res->error_code != KAFKA_NONE || res->duplicate)
                return 0;
        int64_t base = plog_end_offset(log), next = base;
        for (size_t at = 0; at < len;) {
                struct record_batch_header h;
                record_batch_header_parse(data + at, len - at, &h);
                record_batch_set_base_offset(data + at, next);
                record_batch_set_leader_epoch(data + at, log->cfg.leader_epoch);
                next += (int64_t)h.last_offset_delta + 1;
                at += RECORD_BATCH_LOG_OVERHEAD + (size_t)h.batch_length;
        }
        err = segment_append(active(log), data, len, log->cfg.index_interval_bytes, now_ms);
        if (err) {
                producer_state_rollback(&log->producers, &log->undo);
                return err;
        }
        producer_undo_reset(&log->undo);
        log->size_bytes += (int64_t)len;
        res->base_offset = base;
        res->last_offset = next - 1;
        return 0;
}

int plog_sync(struct plog *log)
{
        return segment_sync(active(log));
}

int64_t plog_start_offset(const struct plog *log)
{
        return log->start_offset;
}

int64_t plog_end_offset(const struct plog *log)
{
        return active(log)->end_offset;
}

int64_t plog_size_bytes(const struct plog *log)
{
        return log->size_bytes;
}

int plog_segment_count(const struct plog *log)
{
        return log->nsegs;
}

/* ---- reading -------------------------------------------------------------------- */

/* Index of the segment holding <offset>: the last one whose base is <= it (0 if none). */
static int find_segment(const struct plog *log, int64_t offset)
{
        int lo = 0, hi = log->nsegs - 1;
        while (lo < hi) {
                int mid = lo + (hi - lo + 1) / 2;
                if (log->segs[mid]->base_offset <= offset)
                        lo = mid;
                else
                        hi = mid - 1;
        }
        return lo;
}

/* Finds in a read hint the batch holding <offset> (or the first after it): its
 * segment's index in *<n>, its position and header. Returns the hint's slot, or -1. */
static int hinted(struct plog *log, int64_t offset, int *n, int64_t *pos, struct record_batch_header *h)
{
        for (int i = 0; i < READ_HINTS; i++) {
                struct read_hint *hint = &log->hints[i];
                if (!hint->seg || hint->offset != offset || hint->gen != log->layout_gen)
                        continue;
                if (hint->pos >= hint->seg->size_bytes)
                        return -1; /* a segment's end, or nothing written there yet */
                int at = find_segment(log, offset);
                if (log->segs[at] != hint->seg)
                        return -1;
                if (segment_batch_at(hint->seg, hint->pos, h) != 0 || h->base_offset + h->last_offset_delta < offset)
                        return -1;
                *n = at;
                *pos = hint->pos;
                return i;
        }
        return -1;
}

/* Remembers that a read ending at <pos> of segment <n> goes on at <offset>, in <slot>
 * (the hint the read came from) or, for a new reader, in the oldest slot. */
static void remember_read_end(struct plog *log, int slot, int n, int64_t pos, int64_t offset)
{
        struct segment *seg = log->segs[n];
        if (pos >= seg->size_bytes && n + 1 < log->nsegs) {
                seg = log->segs[n + 1]; /* a closed segment's end: the next one's start */
                pos = 0;
        }
        if (slot < 0) {
                slot = log->next_hint;
                log->next_hint = (log->next_hint + 1) % READ_HINTS;
        }
        log->hints[slot] = (struct read_hint){ seg, offset, pos, log->layout_gen };
}

int plog_read(struct plog *log, int64_t offset, int32_t max_bytes, struct kafka_file_slice *out)
{
        out->fd = -1;
        out->pos = 0;
        out->len = 0;
        out->ref = NULL;
        out->release = NULL;
        if (offset < log->start_offset || offset > plog_end_offset(log))
                return -ERANGE;
        if (offset == plog_end_offset(log))
                return 0; /* caught up: the long poll asks this often */
        struct record_batch_header h;
        int64_t pos = 0;
        int n = 0, slot = hinted(log, offset, &n, &pos, &h);
        if (slot < 0) {
                for (n = find_segment(log, offset); n < log->nsegs; n++) {
                        int err = segment_find_batch(log->segs[n], offset, &pos, &h);
                        if (err == 0)
                                break;
                        if (err != -ENOENT)
                                return err; /* a gap ends a segment: go on to the next one */
                }
                if (n >= log->nsegs)
                        return 0;
        }
        struct segment *seg = log->segs[n];
        int64_t first = RECORD_BATCH_LOG_OVERHEAD + (int64_t)h.batch_length;
        int64_t avail = seg->size_bytes - pos, len;
        int64_t next = h.base_offset + h.last_offset_delta + 1;
        if (avail <= max_bytes) {
                len = avail;
                next = seg->end_offset;
        } else if (first >= max_bytes) {
                len = first;
        } else {
                len = segment_boundary_before(seg, pos + first, pos + max_bytes, &next) - pos;
        }
        remember_read_end(log, slot, n, pos + len, next);
        seg->file->refs++;
        out->fd = seg->file->fd;
        out->pos = pos;
        out->len = (int32_t)MIN(len, (int64_t)INT32_MAX);
        out->ref = seg->file;
        out->release = segment_file_release;
        return 0;
}

int plog_offset_for_timestamp(struct plog *log, int64_t timestamp_ms, int64_t *offset,
                              int64_t *found_timestamp_ms)
{
        for (int i = 0; i < log->nsegs; i++) {
                int err = segment_find_timestamp(log->segs[i], timestamp_ms, log->start_offset,
                                                 offset, found_timestamp_ms);
                if (err != -ENOENT)
                        return err;
        }
        return -ENOENT;
}

int plog_max_timestamp(struct plog *log, int64_t *offset, int64_t *timestamp_ms)
{
        struct segment *best = NULL;
        for (int i = 0; i < log->nsegs; i++) {
                struct segment *seg = log->segs[i];
                if (seg->end_offset > log->start_offset && seg->max_timestamp >= 0 &&
                    (!best || seg->max_timestamp > best->max_timestamp))
                        best = seg;
        }
        if (!best)
                return -ENOENT;
        int err = segment_find_timestamp(best, best->max_timestamp, log->start_offset, offset,
                                         timestamp_ms);
        if (err == -ENOENT) {
                /* the record with the maximum lies below the log start */
                *offset = MAX(best->max_timestamp_offset, log->start_offset);
                *timestamp_ms = best->max_timestamp;
                err = 0;
        }
        return err;
}

/* ---- deleting ------------------------------------------------------------------- */

static void delete_oldest(struct plog *log, const char *reason)
{
        struct segment *seg = log->segs[0];
        log_info("segment deleted dir=%s base_offset=%" PRId64 " bytes=%" PRId64 " reason=%s",
                 log->dir, seg->base_offset, seg->size_bytes, reason);
        log->size_bytes -= seg->size_bytes;
        int err = segment_delete(seg);
        if (err)
                log_warn("segment delete failed dir=%s err=%s", log->dir, strerror(-err));
        memmove(&log->segs[0], &log->segs[1], (size_t)(log->nsegs - 1) * sizeof(*log->segs));
        log->nsegs--;
        log->layout_gen++;
        log->start_offset = MAX(log->start_offset, log->segs[0]->base_offset);
}

int plog_delete_records(struct plog *log, int64_t offset)
{
        if (offset > plog_end_offset(log))
                return -ERANGE;
        if (offset <= log->start_offset)
                return 0;
        int err = write_start_offset(log, offset);
        if (err) {
                log_error("log start offset write failed dir=%s err=%s", log->dir, strerror(-err));
                return err;
        }
        log->start_offset = offset;
        while (log->nsegs > 1 && log->segs[0]->end_offset <= offset)
                delete_oldest(log, "delete-records");
        return 0;
}

/* The time retention goes by: the largest timestamp, or the mtime without one. */
static int64_t retention_time(struct segment *seg, int64_t now_ms)
{
        int64_t mtime_ms = 0;
        if (seg->max_timestamp >= 0)
                return seg->max_timestamp;
        return segment_mtime_ms(seg, &mtime_ms) == 0 ? mtime_ms : now_ms;
}

int plog_enforce_retention(struct plog *log, int64_t now_ms)
{
        const struct plog_config *cfg = &log->cfg;
        producer_state_expire(&log->producers, now_ms, cfg->producer_expiration_ms);
        struct segment *seg = active(log);
        if (seg->size_bytes > 0 &&
            ((cfg->segment_ms > 0 && now_ms - seg->rolling_base_ms > cfg->segment_ms) ||
             (cfg->cleanup_delete && cfg->retention_ms >= 0 &&
              now_ms - retention_time(seg, now_ms) > cfg->retention_ms)))
                roll(log, now_ms); /* on failure the active segment just stays */
        int deleted = 0;
        while (cfg->cleanup_delete && cfg->retention_ms >= 0 && log->nsegs > 1 &&
               now_ms - retention_time(log->segs[0], now_ms) > cfg->retention_ms) {
                delete_oldest(log, "retention-time");
                deleted++;
        }
        while (cfg->cleanup_delete && cfg->retention_bytes >= 0 && log->nsegs > 1 &&
               log->size_bytes - log->segs[0]->size_bytes >= cfg->retention_bytes) {
                delete_oldest(log, "retention-size");
                deleted++;
        }
        return deleted;
}

/* ---- compaction ----------------------------------------------------------------- */

/* Offsets are stored in the key map as pointers: offset + 1 (never NULL). */
static void *offset_value(int64_t offset)
{
        return (void *)(intptr_t)(offset + 1);
}

static int64_t value_offset(void *v)
{
        return (int64_t)(intptr_t)v - 1;
}

/* A pass's view of one segment: what the cleaner thread reads, and what it made. */
struct clean_seg {
        char *path;        /* its .log, opened by the thread */
        int64_t base_offset;
        int64_t size_bytes; /* read up to here (the active segment grows beyond it) */
        int64_t next_base;  /* -1: the active segment, learned from but not cleaned */
        atomic_int state;   /* enum clean_state: the thread moves it on, then the loop */
        int64_t records_removed, batches_removed;
};

/* A closed segment's way through a pass. The thread sets COPY_READY or NO_COPY (in
 * segment order, each after the copy's files are complete), the loop sets APPLIED. */
enum clean_state { CLEAN_PENDING, CLEAN_COPY_READY, CLEAN_NO_COPY, CLEAN_APPLIED };

/* One compaction pass of a log: built on the loop thread, run by a thread of its own
 * (touching only this struct and files), applied on the loop thread. */
struct clean_job {
        char *work_dir;
        int32_t index_interval_bytes;
        int64_t tombstone_before_ms;
        struct clean_seg *segs;
        int nsegs;
        int err;
        pthread_t thread;
        bool threaded;       /* else it ran on the calling thread */
        atomic_bool cancel;  /* the log is going: stop at the next batch */
        atomic_bool done;
        int next_apply;      /* loop thread: the first segment not yet dealt with */
        int swap_err;        /* loop thread: a swap failed (nothing after it is applied) */
        struct plog_compact_stats st; /* loop thread: what was swapped in so far */
};

/* Passes running in the process: one at a time, as Kafka's single default cleaner
 * thread, so that compaction never takes both cores. Loop thread only. */
static int cleaners_running;

struct compaction {
        struct clean_job *job;
        struct map latest;         /* key -> newest offset with that key */
        bool tombstones_may_go;    /* scratch: the batch looked at is older than delete.retention.ms */
        bool opaque;               /* the log holds compressed batches (keys not known) */
        int64_t base_offset;       /* scratch: of that batch */
        int32_t going;             /* scratch: its records that can go */
        uint8_t *scratch;          /* the filtered copy of a batch (owned) */
        size_t scratch_cap;
        struct clean_seg *seg;     /* being cleaned */
};

static bool cancelled(const struct compaction *c)
{
        return atomic_load_explicit(&c->job->cancel, memory_order_relaxed);
}

static void learn_key(void *arg, int32_t offset_delta, const uint8_t *key, int64_t key_len, bool null_value)
{
        struct compaction *c = arg;
        if (key)
                map_put(&c->latest, (const char *)key, (size_t)key_len, offset_value(c->base_offset + offset_delta));
}

static int learn_batch(void *arg, const struct record_batch_header *h, const uint8_t *batch, size_t len, int64_t pos)
{
        struct compaction *c = arg;
        if (cancelled(c))
                return -ECANCELED;
        c->base_offset = h->base_offset;
        if (!(h->attributes & RECORD_ATTR_CONTROL) && !record_batch_for_each_record(batch, len, h, learn_key, c))
                c->opaque = true;
        return 0;
}

/* Whether the record stays: it has no key (nothing makes it obsolete), it is the
 * newest of its key and not a tombstone old enough to go. A tombstone goes in the
 * same pass as every older value of its key, which is older and so cleaned first. */
static bool record_stays(void *arg, int32_t offset_delta, const uint8_t *key, int64_t key_len, bool null_value)
{
        struct compaction *c = arg;
        if (!key)
                return true;
        int64_t offset = c->base_offset + offset_delta;
        void *v = map_get(&c->latest, (const char *)key, (size_t)key_len);
        int64_t newest = v ? value_offset(v) : offset;
        return newest <= offset && (!null_value || !c->tombstones_may_go);
}

static int filterable(const struct record_batch_header *h)
{
        return !(h->attributes & (RECORD_ATTR_COMPRESSION_MASK | RECORD_ATTR_CONTROL | RECORD_ATTR_TRANSACTIONAL));
}

static void note_batch(struct compaction *c, const struct record_batch_header *h)
{
        c->base_offset = h->base_offset;
        /* A tombstone goes only when no batch we cannot read may hold an older value of
         * its key, which would come back without it. */
        c->tombstones_may_go = !c->opaque && h->max_timestamp >= 0 && h->max_timestamp < c->job->tombstone_before_ms;
}

static void count_going(void *arg, int32_t offset_delta, const uint8_t *key, int64_t key_len, bool null_value)
{
        struct compaction *c = arg;
        if (!record_stays(c, offset_delta, key, key_len, null_value))
                c->going++;
}

/* Whether the segment has a record to remove: decides if it is rewritten at all.
 * Stops at the first batch with one (compressed, control and transactional batches
 * are kept whole). */
static int any_going(void *arg, const struct record_batch_header *h, const uint8_t *batch, size_t len,
                     int64_t pos)
{
        struct compaction *c = arg;
        if (cancelled(c))
                return -ECANCELED;
        if (!filterable(h))
                return 0;
        note_batch(c, h);
        c->going = 0;
        return record_batch_for_each_record(batch, len, h, count_going, c) && c->going > 0 ? 1 : 0;
}

/* One walk per batch: the filtered copy says how many records stayed. */
static int keep_records(void *arg, const struct record_batch_header *h, const uint8_t *batch, size_t len,
                        int64_t pos, const uint8_t **out, size_t *out_len)
{
        struct compaction *c = arg;
        if (cancelled(c))
                return -ECANCELED;
        if (!filterable(h))
                return 1;
        note_batch(c, h);
        if (c->scratch_cap < len) {
                c->scratch = xrealloc(c->scratch, len);
                c->scratch_cap = len;
        }
        size_t n = record_batch_filter(batch, len, h, record_stays, c, c->scratch);
        if (n == 0)
                return 1; /* framing the checks refuse: kept as it is */
        int32_t kept = record_batch_record_count(c->scratch);
        if (kept == h->record_count)
                return 1;
        c->seg->records_removed += h->record_count - kept;
        if (kept == 0) {
                c->seg->batches_removed++;
                return 0;
        }
        *out = c->scratch;
        *out_len = n;
        return 1;
}

/* Scans the segment's file up to the size the pass saw. A file gone (retention
 * deleted the segment meanwhile) is no error: the segment is skipped. */
static int scan_segment(const struct clean_seg *cs, segment_bytes_fn *fn, struct compaction *c)
{
        int fd = open(cs->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        int rc = segment_scan_file(fd, cs->size_bytes, fn, c);
        close(fd);
        return rc;
}

/* Removes a file without freeing its blocks on this thread: it is opened, unlinked and
 * its last close handed to the sync thread. Takes <path>. */
static void discard_file(char *path)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        unlink(path);
        if (fd >= 0)
                syncer_close(fd);
        free(path);
}

/* discard_file() for everything in the work directory, then the directory. */
static void discard_work_dir(const char *work_dir)
{
        DIR *d = opendir(work_dir);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d)) != NULL)
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                        discard_file(xasprintf("%s/%s", work_dir, de->d_name));
        closedir(d);
        rmdir(work_dir);
}

/* A copy that will not be swapped in (its segment went meanwhile): its three files. */
static void discard_copy(const char *work_dir, int64_t base_offset)
{
        static const char *const suffixes[] = { "log", "index", "timeindex" };
        for (int i = 0; i < 3; i++)
                discard_file(xasprintf("%s/%020" PRId64 ".%s", work_dir, base_offset, suffixes[i]));
}

/* A thread pass keeps at most one copy waiting for the loop: the disk holds one cleaned
 * segment more than the log, not a copy of the whole log. */
static bool wait_until_applied(struct clean_job *job, int upto)
{
        for (;;) {
                if (atomic_load(&job->cancel))
                        return false;
                bool waiting = false;
                for (int k = 0; k < upto && !waiting; k++)
                        waiting = atomic_load(&job->segs[k].state) == CLEAN_COPY_READY;
                if (!waiting)
                        return true;
                struct timespec ts = { 0, 5 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
}

/* The pass, on whichever thread runs it: learns the newest offset of every key from
 * every segment, then, segment by segment in order, writes a cleaned copy of each
 * closed one that has records to remove into the work directory. */
static void run_clean(struct clean_job *job)
{
        struct compaction c = { .job = job };
        map_init(&c.latest);
        discard_work_dir(job->work_dir); /* nothing of an earlier pass is in use */
        int err = fileio_mkdirs(job->work_dir);
        for (int i = 0; i < job->nsegs && !err; i++)
                err = scan_segment(&job->segs[i], learn_batch, &c);
        for (int i = 0; i < job->nsegs && !err; i++) {
                struct clean_seg *cs = &job->segs[i];
                if (cs->next_base < 0)
                        continue; /* the active segment */
                int fd = open(cs->path, O_RDONLY | O_CLOEXEC);
                if (fd < 0) { /* deleted meanwhile: nothing to do */
                        err = errno == ENOENT ? 0 : -errno;
                        atomic_store(&cs->state, CLEAN_NO_COPY);
                        continue;
                }
                int rc = segment_scan_file(fd, cs->size_bytes, any_going, &c);
                if (rc == 1 && job->threaded && !wait_until_applied(job, i))
                        rc = -ECANCELED;
                if (rc == 1) {
                        c.seg = cs;
                        rc = segment_write_cleaned(fd, cs->size_bytes, job->work_dir, cs->base_offset, cs->next_base,
                                                   job->index_interval_bytes, keep_records, &c);
                        if (rc == 0)
                                atomic_store(&cs->state, CLEAN_COPY_READY);
                } else if (rc == 0) {
                        atomic_store(&cs->state, CLEAN_NO_COPY);
                }
                close(fd);
                err = rc < 0 ? rc : 0;
        }
        map_deinit(&c.latest);
        free(c.scratch);
        job->err = err;
        atomic_store_explicit(&job->done, true, memory_order_release);
}

static void *cleaner_main(void *arg)
{
        run_clean(arg);
        return NULL;
}

static void free_job(struct clean_job *job)
{
        for (int i = 0; i < job->nsegs; i++)
                free(job->segs[i].path);
        free(job->segs);
        free(job->work_dir);
        free(job);
}

static struct clean_job *new_job(struct plog *log, int64_t now_ms)
{
        struct clean_job *job = xcalloc(1, sizeof(*job));
        job->work_dir = xasprintf("%s/" CLEANING_DIR, log->dir);
        job->index_interval_bytes = log->cfg.index_interval_bytes;
        job->tombstone_before_ms = now_ms - log->cfg.delete_retention_ms;
        job->segs = xcalloc((size_t)log->nsegs, sizeof(*job->segs));
        job->nsegs = log->nsegs;
        for (int i = 0; i < log->nsegs; i++) {
                const struct segment *seg = log->segs[i];
                job->segs[i] = (struct clean_seg){ .path = xstrdup(seg->path),
                                                   .base_offset = seg->base_offset,
                                                   .size_bytes = seg->size_bytes,
                                                   .next_base = i + 1 < log->nsegs ? log->segs[i + 1]->base_offset : -1 };
        }
        atomic_init(&job->cancel, false);
        atomic_init(&job->done, false);
        log->compact_dirty = false; /* rolls from now on make it dirty again */
        return job;
}

static void log_cleaned(const struct plog *log, const struct plog_compact_stats *st)
{
        if (st->segments_cleaned)
                log_info("compacted dir=%s segments=%d records_removed=%" PRId64 " batches_removed=%" PRId64
                         " bytes_removed=%" PRId64,
                         log->dir, st->segments_cleaned, st->records_removed, st->batches_removed, st->bytes_removed);
}

/* Waits for the log's pass (stopping it first) and throws away what it did not swap in
 * yet (what it did swap in is durable already); the log is due again, the pass having
 * been cut short. */
static void drop_job(struct plog *log)
{
        struct clean_job *job = log->cleaning;
        if (!job)
                return;
        atomic_store(&job->cancel, true);
        if (job->threaded) {
                pthread_join(job->thread, NULL);
                cleaners_running--;
        }
        log_cleaned(log, &job->st);
        discard_work_dir(job->work_dir);
        free_job(job);
        log->cleaning = NULL;
        log->compact_dirty = true;
}

/* Swaps in, in segment order, the copies the pass has finished, each in place of the
 * segment it was made from if that is still in the log as the pass saw it (retention
 * or DeleteRecords may have removed it meanwhile). In order, because a tombstone may
 * have gone from a copy only as the older values of its key went from earlier ones; so
 * after a failed swap nothing later is applied. */
static void apply_ready(struct plog *log, struct clean_job *job)
{
        struct plog_compact_stats *st = &job->st;
        bool renamed = false;
        while (job->next_apply < job->nsegs && !job->swap_err) {
                struct clean_seg *cs = &job->segs[job->next_apply];
                int state = cs->next_base < 0 ? CLEAN_NO_COPY : atomic_load(&cs->state);
                if (state == CLEAN_PENDING)
                        return; /* not written yet */
                job->next_apply++;
                if (state != CLEAN_COPY_READY)
                        continue;
                int i = 0;
                while (i < log->nsegs - 1 && log->segs[i]->base_offset < cs->base_offset)
                        i++;
                struct segment *seg = log->segs[i];
                if (i < log->nsegs - 1 && seg->base_offset == cs->base_offset && seg->size_bytes == cs->size_bytes) {
                        struct segment *fresh = NULL;
                        int err = segment_replace(seg, log->dir, job->work_dir, cs->next_base,
                                                  log->cfg.index_interval_bytes, &fresh);
                        if (fresh) {
                                renamed = true;
                                log->size_bytes += fresh->size_bytes - seg->size_bytes;
                                if (!err) {
                                        st->bytes_removed += seg->size_bytes - fresh->size_bytes;
                                        st->segments_cleaned++;
                                        st->records_removed += cs->records_removed;
                                        st->batches_removed += cs->batches_removed;
                                }
                                segment_free(seg); /* fetches in flight keep the old file */
                                log->segs[i] = fresh;
                                log->layout_gen++;
                        }
                        if (err) { /* stop the thread too: nothing it makes now is applied */
                                job->swap_err = err;
                                atomic_store(&job->cancel, true);
                        }
                }
                else
                        discard_copy(job->work_dir, cs->base_offset); /* its segment is gone */
                atomic_store(&cs->state, CLEAN_APPLIED); /* the thread may write the next copy */
        }
        /* Durable before the next call swaps more: renames reach the disk in the order
         * of the segments, whatever the file system does with a batch of them. */
        if (renamed)
                fileio_fsync_dir(log->dir);
}

/* The pass is over (its thread joined): the rest of its copies, then the report. */
static int finish_job(struct plog *log, struct clean_job *job, struct plog_compact_stats *st)
{
        apply_ready(log, job);
        discard_work_dir(job->work_dir);
        *st = job->st;
        int err = job->swap_err ? job->swap_err : job->err; /* the thread's is -ECANCELED then */
        if (err && err != -ECANCELED) {
                log->compact_dirty = true; /* try again next time */
                log_error("compaction failed dir=%s err=%s", log->dir, strerror(-err));
        }
        log_cleaned(log, st);
        free_job(job);
        return err;
}

static bool compaction_due(const struct plog *log)
{
        return log->cfg.cleanup_compact && log->compact_dirty && log->nsegs >= 2;
}

int plog_compact(struct plog *log, int64_t now_ms, struct plog_compact_stats *st)
{
        memset(st, 0, sizeof(*st));
        drop_job(log);
        if (!compaction_due(log))
                return 0;
        struct clean_job *job = new_job(log, now_ms);
        run_clean(job);
        return finish_job(log, job, st);
}

int plog_compact_background(struct plog *log, int64_t now_ms, struct plog_compact_stats *st)
{
        memset(st, 0, sizeof(*st));
        struct clean_job *job = log->cleaning;
        if (job) {
                if (!atomic_load_explicit(&job->done, memory_order_acquire)) {
                        apply_ready(log, job); /* lets the thread go on to the next copy */
                        return 1;
                }
                pthread_join(job->thread, NULL);
                cleaners_running--;
                log->cleaning = NULL;
                return finish_job(log, job, st);
        }
        if (!compaction_due(log) || cleaners_running > 0)
                return 0;
        job = new_job(log, now_ms);
        job->threaded = true;
        int rc = pthread_create(&job->thread, NULL, cleaner_main, job);
        if (rc != 0) {
                log_warn("compaction thread not started, compacting on the loop dir=%s err=%s", log->dir,
                         strerror(rc));
                job->threaded = false;
                run_clean(job);
                return finish_job(log, job, st);
        }
        cleaners_running++;
        log->cleaning = job;
        return 1;
}
