/* Unit tests: log compaction (cleanup.policy=compact) on real segment files. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/crc32c.h"
#include "base/fileio.h"
#include "broker/storage/plog.h"
#include "kafka/record.h"
#include "test.h"

#define T0 1700000000000LL

static size_t put_varlong(uint8_t *p, int64_t v)
{
        uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
        size_t n = 0;
        while (z >= 0x80) {
                p[n++] = (uint8_t)(z | 0x80);
                z >>= 7;
        }
        p[n++] = (uint8_t)z;
        return n;
}

/* A batch of <n> records, keys[i] (NULL: null key) and values[i] (NULL: a tombstone). */
static void keyed_records(struct buf *b, const char *const *keys, const char *const *values, int n, int64_t ts)
{
        size_t start = b->len;
        memset(buf_reserve(b, RECORD_BATCH_HEADER_SIZE), 0, RECORD_BATCH_HEADER_SIZE);
        b->len += RECORD_BATCH_HEADER_SIZE;
        for (int i = 0; i < n; i++) {
                const char *key = keys[i], *value = values[i];
                uint8_t body[256];
                size_t m = 0;
                body[m++] = 0;
                m += put_varlong(body + m, 0);
                m += put_varlong(body + m, i);
                m += put_varlong(body + m, key ? (int64_t)strlen(key) : -1);
                if (key) {
                        memcpy(body + m, key, strlen(key));
                        m += strlen(key);
                }
                m += put_varlong(body + m, value ? (int64_t)strlen(value) : -1);
                if (value) {
                        memcpy(body + m, value, strlen(value));
                        m += strlen(value);
                }
                m += put_varlong(body + m, 0);
                uint8_t len[10];
                buf_append(b, len, put_varlong(len, (int64_t)m));
                buf_append(b, body, m);
        }
        uint8_t *h = b->data + start;
        size_t size = b->len - start;
        store_be32(h + 8, (uint32_t)(size - RECORD_BATCH_LOG_OVERHEAD));
        h[16] = 2;
        store_be32(h + 23, (uint32_t)(n - 1));
        store_be64(h + 27, (uint64_t)ts);
        store_be64(h + 35, (uint64_t)ts);
        store_be64(h + 43, (uint64_t)-1);
        store_be16(h + 51, (uint16_t)-1);
        store_be32(h + 53, (uint32_t)-1);
        store_be32(h + 57, (uint32_t)n);
        store_be32(h + 17, crc32c(0, h + 21, size - 21));
}

static void keyed_batch(struct buf *b, const char *key, const char *value, int64_t ts)
{
        keyed_records(b, &key, &value, 1, ts);
}

/* Appends one batch of <n> records; returns its base offset or -1. */
static int64_t put_many(struct plog *log, const char *const *keys, const char *const *values, int n, int64_t ts)
{
        struct buf b;
        buf_init(&b);
        keyed_records(&b, keys, values, n, ts);
        struct plog_append_result res;
        int err = plog_append(log, b.data, b.len, ts, &res);
        buf_deinit(&b);
        return err || res.error_code ? -1 : res.base_offset;
}

static int64_t put(struct plog *log, const char *key, const char *value, int64_t ts)
{
        struct buf b;
        buf_init(&b);
        keyed_batch(&b, key, value, ts);
        struct plog_append_result res;
        int err = plog_append(log, b.data, b.len, ts, &res);
        buf_deinit(&b);
        return err || res.error_code ? -1 : res.base_offset;
}

struct seen {
        int64_t offsets[256]; /* of each record */
        char keys[256][16];
        bool tombstone[256];
        int n;
        int64_t base; /* scratch: of the batch being read */
};

static void collect(void *arg, int32_t delta, const uint8_t *key, int64_t key_len, bool null_value)
{
        struct seen *s = arg;
        s->offsets[s->n] = s->base + delta;
        snprintf(s->keys[s->n], sizeof(s->keys[0]), "%.*s", key ? (int)key_len : 1, key ? (const char *)key : "-");
        s->tombstone[s->n] = null_value;
        s->n++;
}

/* Reads the whole log through plog_read, as a consumer does. */
static int read_all(struct plog *log, struct seen *s)
{
        memset(s, 0, sizeof(*s));
        int64_t offset = plog_start_offset(log);
        while (offset < plog_end_offset(log)) {
                struct kafka_file_slice slice;
                int err = plog_read(log, offset, 1 << 20, &slice);
                if (err)
                        return err;
                if (slice.len == 0)
                        break;
                uint8_t *data = xmalloc((size_t)slice.len);
                size_t got = 0;
                fileio_pread(slice.fd, data, (size_t)slice.len, slice.pos, &got);
                slice.release(slice.ref);
                for (size_t off = 0; off < got;) {
                        struct record_batch_header h;
                        if (record_batch_check(data + off, got - off, &h) != RECORD_OK) {
                                free(data);
                                return -EBADMSG;
                        }
                        size_t size = RECORD_BATCH_LOG_OVERHEAD + (size_t)h.batch_length;
                        s->base = h.base_offset;
                        record_batch_for_each_record(data + off, size, &h, collect, s);
                        offset = h.base_offset + h.last_offset_delta + 1;
                        off += size;
                }
                free(data);
        }
        return 0;
}

static int find(const struct seen *s, int64_t offset)
{
        for (int i = 0; i < s->n; i++)
                if (s->offsets[i] == offset)
                        return i;
        return -1;
}

/* A compacted log that keeps tombstones 1 s, with small segments and dense indexes. */
static struct plog_config compact_config(int64_t segment_bytes)
{
        struct plog_config cfg = { .segment_bytes = segment_bytes, .segment_ms = 1LL << 40, .retention_ms = -1,
                                   .retention_bytes = -1, .index_interval_bytes = 64,
                                   .producer_expiration_ms = 1LL << 40, .cleanup_compact = true,
                                   .delete_retention_ms = 1000 };
        return cfg;
}

TEST(compaction_keeps_the_newest_record_of_every_key)
{
        char *dir = xasprintf("%s/compact-0", test_tmpdir);
        struct plog_config cfg = compact_config(300);
        int err = 0;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log);
        /* 60 writes over 6 keys, a tombstone for k5, and a record without a key. */
        int64_t newest[6], null_key = -1, tomb = -1;
        for (int i = 0; i < 60; i++) {
                char key[8], value[16];
                snprintf(key, sizeof(key), "k%d", i % 6);
                snprintf(value, sizeof(value), "v%d", i);
                newest[i % 6] = put(log, key, value, T0 + i);
                CHECK(newest[i % 6] >= 0);
                if (i == 20)
                        null_key = put(log, NULL, "no-key", T0 + i);
        }
        tomb = put(log, "k5", NULL, T0 + 100);
        newest[5] = tomb;
        CHECK(put(log, "k0", "last", T0 + 101) > 0); /* newest k0, in the active segment */
        newest[0] = plog_end_offset(log) - 1;
        CHECK(plog_segment_count(log) > 5);
        int64_t end = plog_end_offset(log), size_before = plog_size_bytes(log);
        struct seen before, after;
        CHECK_EQ(read_all(log, &before), 0);

        struct plog_compact_stats st;
        CHECK_EQ(plog_compact(log, T0 + 200, &st), 0); /* the tombstone is younger than 1 s */
        CHECK(st.segments_cleaned > 0 && st.batches_removed > 0);
        CHECK_EQ(plog_end_offset(log), end);
        CHECK(plog_size_bytes(log) < size_before);
        CHECK_EQ(read_all(log, &after), 0);
        CHECK(after.n < before.n);
        /* Every key's newest record is there, at its offset; so are the keyless one and
         * the tombstone; offsets only grow. */
        for (int k = 0; k < 6; k++)
                CHECK(find(&after, newest[k]) >= 0);
        CHECK(find(&after, null_key) >= 0);
        CHECK(after.tombstone[find(&after, tomb)]);
        for (int i = 1; i < after.n; i++)
                CHECK(after.offsets[i] > after.offsets[i - 1]);
        /* Whatever went was superseded by a newer record of its key. */
        for (int i = 0; i < before.n; i++) {
                if (find(&after, before.offsets[i]) >= 0)
                        continue;
                int k = before.keys[i][1] - '0';
                CHECK(before.keys[i][0] == 'k' && newest[k] > before.offsets[i]);
        }
        /* Nothing new was closed: a second pass does nothing. */
        CHECK_EQ(plog_compact(log, T0 + 200, &st), 0);
        CHECK_EQ(st.segments_cleaned, 0);

        /* Reopened, the log reads the same (with the indexes the pass built). */
        plog_close(log);
        log = plog_open(dir, &cfg, false, &err);
        CHECK(log);
        struct seen reopened;
        CHECK_EQ(read_all(log, &reopened), 0);
        CHECK_EQ(reopened.n, after.n);
        CHECK(memcmp(reopened.offsets, after.offsets, sizeof(int64_t) * (size_t)after.n) == 0);
        /* A read at an offset that was compacted away starts at the next batch. */
        for (int64_t o = 0; o < end; o++) {
                if (find(&after, o) >= 0)
                        continue;
                struct kafka_file_slice slice;
                CHECK_EQ(plog_read(log, o, 1 << 20, &slice), 0);
                CHECK(slice.len > 0);
                uint8_t hdr[RECORD_BATCH_HEADER_SIZE];
                size_t got = 0;
                fileio_pread(slice.fd, hdr, sizeof(hdr), slice.pos, &got);
                slice.release(slice.ref);
                CHECK((int64_t)load_be64(hdr) > o);
                break;
        }
        /* Past delete.retention.ms the tombstone goes too, once it sits in a closed
         * segment: roll it out of the active segment. */
        CHECK(put(log, "k1", "after", T0 + 300) > 0);
        for (int i = 0; i < 10; i++)
                CHECK(put(log, "k2", "filler", T0 + 300 + i) > 0);
        CHECK_EQ(plog_compact(log, T0 + 5000, &st), 0);
        struct seen late;
        CHECK_EQ(read_all(log, &late), 0);
        CHECK(find(&late, tomb) < 0);
        CHECK_EQ(plog_start_offset(log), 0); /* the log start never moves */
        plog_close(log);
        free(dir);
}

TEST(compaction_is_off_for_delete_policy_and_retention_off_for_compact)
{
        char *dir = xasprintf("%s/compact-1", test_tmpdir);
        struct plog_config cfg = { .segment_bytes = 200, .segment_ms = 1LL << 40, .retention_ms = 1,
                                   .retention_bytes = -1, .index_interval_bytes = 64,
                                   .producer_expiration_ms = 1LL << 40, .cleanup_compact = true,
                                   .cleanup_delete = false, .delete_retention_ms = 0 };
        int err = 0;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log);
        for (int i = 0; i < 20; i++)
                CHECK(put(log, "same", "v", T0 + i) >= 0);
        int segs = plog_segment_count(log);
        /* compact only: time retention (1 ms) deletes nothing */
        CHECK_EQ(plog_enforce_retention(log, T0 + 100000), 0);
        CHECK_EQ(plog_segment_count(log), segs);
        /* delete only: compaction does nothing */
        cfg.cleanup_compact = false;
        plog_set_config(log, &cfg);
        struct plog_compact_stats st;
        CHECK_EQ(plog_compact(log, T0 + 100000, &st), 0);
        CHECK_EQ(st.batches_removed, 0);
        plog_close(log);
        free(dir);
}

static int find_key(const struct seen *s, const char *key)
{
        int at = -1;
        for (int i = 0; i < s->n; i++)
                if (strcmp(s->keys[i], key) == 0)
                        at = i;
        return at; /* the newest */
}

/* Batches of several records, as clients send them: superseded records go from inside
 * a batch that also holds current ones, offsets keep their values, and a tombstone
 * that goes takes every older value of its key with it (none comes back). */
TEST(compaction_filters_records_inside_batches)
{
        char *dir = xasprintf("%s/compact-2", test_tmpdir);
        struct plog_config cfg = compact_config(150);
        int err = 0;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log);
        const char *k1[] = { "a", "b", "c", "d" }, *v1[] = { "a0", "b0", "c0", "d0" };
        const char *k2[] = { "a", "b", NULL }, *v2[] = { "a1", "b1", "keyless" };
        const char *k3[] = { "c" }, *v3[] = { NULL }; /* c's tombstone */
        const char *k4[] = { "x", "y" }, *v4[] = { "x", "y" };
        CHECK_EQ(put_many(log, k1, v1, 4, T0), 0);
        CHECK_EQ(put_many(log, k2, v2, 3, T0 + 1), 4);
        CHECK_EQ(put_many(log, k3, v3, 1, T0 + 2), 7);
        for (int i = 0; i < 6; i++) /* close the segments above */
                CHECK(put_many(log, k4, v4, 2, T0 + 3) > 0);
        CHECK(plog_segment_count(log) > 2);
        int64_t end = plog_end_offset(log);

        struct plog_compact_stats st;
        CHECK_EQ(plog_compact(log, T0 + 10, &st), 0); /* the tombstone is young: it stays */
        struct seen s;
        CHECK_EQ(read_all(log, &s), 0);
        /* batch 1 keeps d0 (offset 3) only; batch 2 keeps a1, b1 and the keyless record. */
        CHECK_EQ(s.offsets[0], 3);
        CHECK_EQ(strcmp(s.keys[0], "d"), 0);
        CHECK_EQ(s.offsets[1], 4);
        CHECK_EQ(s.offsets[2], 5);
        CHECK_EQ(s.offsets[3], 6);
        CHECK_EQ(strcmp(s.keys[3], "-"), 0);
        CHECK_EQ(s.offsets[4], 7);
        CHECK(s.tombstone[4]);
        CHECK(st.records_removed >= 3); /* a0, b0, c0, and older x and y */
        CHECK_EQ(plog_end_offset(log), end);

        /* A new value of c in a batch with a current record, then c's tombstone: past
         * delete.retention.ms both tombstones go in one pass, and neither c0 nor c1
         * comes back. */
        const char *k5[] = { "c", "e" }, *v5[] = { "c1", "e0" };
        CHECK(put_many(log, k5, v5, 2, T0 + 4) > 0);
        CHECK(put_many(log, k3, v3, 1, T0 + 5) > 0);
        for (int i = 0; i < 6; i++)
                CHECK(put_many(log, k4, v4, 2, T0 + 6) > 0);
        CHECK_EQ(plog_compact(log, T0 + 5000, &st), 0);
        CHECK(st.segments_cleaned > 0);
        CHECK_EQ(read_all(log, &s), 0);
        CHECK_EQ(find_key(&s, "c"), -1);
        CHECK(find_key(&s, "d") >= 0 && find_key(&s, "a") >= 0 && find_key(&s, "e") >= 0);

        /* Reopened, the log reads the same. */
        struct seen again;
        plog_close(log);
        log = plog_open(dir, &cfg, false, &err);
        CHECK(log);
        CHECK_EQ(read_all(log, &again), 0);
        CHECK_EQ(again.n, s.n);
        CHECK(memcmp(again.offsets, s.offsets, sizeof(int64_t) * (size_t)s.n) == 0);
        plog_close(log);
        free(dir);
}

/* Appends 60 writes over 6 keys to a compacted log of small segments. */
static void fill_six_keys(struct plog *log, int64_t ts)
{
        for (int i = 0; i < 60; i++) {
                char key[8], value[16];
                snprintf(key, sizeof(key), "k%d", i % 6);
                snprintf(value, sizeof(value), "v%d", i);
                put(log, key, value, ts + i);
        }
}

static int most_copies; /* the most cleaned .log copies seen waiting at once */

static void count_copies(const char *dir)
{
        char *work = xasprintf("%s/cleaning", dir);
        DIR *d = opendir(work);
        free(work);
        if (!d)
                return;
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d)) != NULL)
                n += strlen(de->d_name) > 4 && !strcmp(de->d_name + strlen(de->d_name) - 4, ".log");
        closedir(d);
        if (n > most_copies)
                most_copies = n;
}

/* Polls the log's background pass until it is done (bounded), watching <dir>'s work
 * directory meanwhile. */
static int finish_background(struct plog *log, const char *dir, int64_t now_ms, struct plog_compact_stats *st)
{
        int rc = 1;
        for (int i = 0; i < 5000 && rc == 1; i++) {
                count_copies(dir);
                rc = plog_compact_background(log, now_ms, st);
                if (rc == 1)
                        usleep(1000);
        }
        return rc;
}

/* The pass on its own thread gives what the pass on the calling thread gives, while
 * the log takes appends meanwhile; one pass runs at a time in the process. */
TEST(compaction_in_the_background_matches_the_foreground)
{
        struct plog_config cfg = compact_config(300);
        char *dir_a = xasprintf("%s/compact-bg-a", test_tmpdir), *dir_b = xasprintf("%s/compact-bg-b", test_tmpdir);
        int err = 0;
        struct plog *a = plog_open(dir_a, &cfg, false, &err), *b = plog_open(dir_b, &cfg, false, &err);
        CHECK(a && b);
        fill_six_keys(a, T0);
        fill_six_keys(b, T0);
        struct plog_compact_stats st_a, st_b;
        CHECK_EQ(plog_compact(a, T0 + 200, &st_a), 0);
        CHECK_EQ(plog_compact_background(b, T0 + 200, &st_b), 1); /* started */
        struct plog_compact_stats other;
        CHECK_EQ(plog_compact_background(a, T0 + 200, &other), 0); /* nothing due; b's pass runs */
        CHECK(put(b, "k0", "during", T0 + 150) > 0); /* appended while the pass runs */
        most_copies = 0;
        CHECK_EQ(finish_background(b, dir_b, T0 + 200, &st_b), 0);
        CHECK(most_copies <= 2); /* the one swapped in next and the one being written */
        CHECK_EQ(st_b.segments_cleaned, st_a.segments_cleaned);
        CHECK_EQ(st_b.records_removed, st_a.records_removed);
        CHECK_EQ(st_b.bytes_removed, st_a.bytes_removed);
        struct seen ra, rb;
        CHECK_EQ(read_all(a, &ra), 0);
        CHECK_EQ(read_all(b, &rb), 0);
        CHECK_EQ(rb.n, ra.n + 1); /* and the record appended meanwhile */
        CHECK(memcmp(rb.offsets, ra.offsets, sizeof(int64_t) * (size_t)ra.n) == 0);
        char *work = xasprintf("%s/cleaning", dir_b);
        CHECK(access(work, F_OK) != 0); /* the work directory is gone */
        plog_close(a);
        plog_close(b);
        /* Reopened, the cleaned segments read the same with the indexes the pass built. */
        b = plog_open(dir_b, &cfg, false, &err);
        CHECK(b);
        struct seen again;
        CHECK_EQ(read_all(b, &again), 0);
        CHECK_EQ(again.n, rb.n);
        CHECK(memcmp(again.offsets, rb.offsets, sizeof(int64_t) * (size_t)rb.n) == 0);
        plog_close(b);
        free(work);
        free(dir_a);
        free(dir_b);
}

/* A compacted log of 300-byte segments in test_tmpdir/<name> (path in *<dir>, the
 * caller's) holding fill_six_keys() at T0. */
static struct plog *open_six_keys(const char *name, char **dir)
{
        struct plog_config cfg = compact_config(300);
        *dir = xasprintf("%s/%s", test_tmpdir, name);
        int err = 0;
        struct plog *log = plog_open(*dir, &cfg, false, &err);
        if (log)
                fill_six_keys(log, T0);
        return log;
}

/* Segments deleted while a pass runs are not brought back by it; the rest is cleaned. */
TEST(compaction_in_the_background_skips_segments_deleted_meanwhile)
{
        char *dir;
        struct plog *log = open_six_keys("compact-bg-c", &dir);
        CHECK(log);
        fill_six_keys(log, T0 + 100);
        int segs = plog_segment_count(log);
        CHECK(segs > 4);
        struct plog_compact_stats st;
        CHECK_EQ(plog_compact_background(log, T0 + 300, &st), 1);
        int64_t cut = plog_end_offset(log) / 2;
        CHECK_EQ(plog_delete_records(log, cut), 0); /* deletes the older segments */
        CHECK(plog_segment_count(log) < segs);
        int64_t start = plog_start_offset(log);
        CHECK_EQ(finish_background(log, dir, T0 + 300, &st), 0);
        CHECK_EQ(plog_start_offset(log), start);
        struct seen s;
        CHECK_EQ(read_all(log, &s), 0);
        CHECK(s.n > 0);
        for (int i = 0; i < s.n; i++)
                CHECK(s.offsets[i] >= start);
        plog_close(log);
        free(dir);
}

/* Deleting or closing a log stops its pass and waits for the thread; a work directory
 * left by a crash is removed when the log opens. */
TEST(compaction_in_the_background_stops_with_the_log)
{
        struct plog_config cfg = compact_config(300);
        char *dir;
        int err = 0;
        struct plog *log = open_six_keys("compact-bg-d", &dir);
        CHECK(log);
        struct plog_compact_stats st;
        CHECK_EQ(plog_compact_background(log, T0 + 200, &st), 1);
        CHECK_EQ(plog_destroy(log), 0);
        CHECK(access(dir, F_OK) != 0);

        log = plog_open(dir, &cfg, false, &err);
        CHECK(log);
        fill_six_keys(log, T0);
        CHECK_EQ(plog_compact_background(log, T0 + 200, &st), 1);
        CHECK_EQ(plog_compact(log, T0 + 200, &st), 0); /* stops the pass and makes its own */
        CHECK(st.segments_cleaned > 0);
        fill_six_keys(log, T0 + 100);
        CHECK_EQ(plog_compact_background(log, T0 + 200, &st), 1);
        plog_close(log); /* stops the pass */
        char *work = xasprintf("%s/cleaning", dir);
        CHECK_EQ(fileio_mkdirs(work), 0); /* as a crash mid-pass leaves it */
        char *stale = xasprintf("%s/00000000000000000000.log", work);
        FILE *f = fopen(stale, "w");
        free(stale);
        CHECK(f);
        fclose(f);
        log = plog_open(dir, &cfg, false, &err);
        CHECK(log);
        CHECK(access(work, F_OK) != 0);
        /* A pass can start again: the one stopped above left nothing running. */
        CHECK_EQ(plog_compact_background(log, T0 + 200, &st), 1);
        CHECK_EQ(finish_background(log, dir, T0 + 200, &st), 0);
        CHECK(st.segments_cleaned > 0);
        plog_close(log);
        free(work);
        free(dir);
}

/* A swap that fails (here: the copy's .log vanished from the work directory) ends the
 * pass with an error and loses nothing: the log reads as before, and the next pass
 * cleans it. */
TEST(compaction_in_the_background_failed_swap_loses_nothing)
{
        char *dir;
        struct plog *log = open_six_keys("compact-bg-e", &dir);
        char *first = xasprintf("%s/cleaning/00000000000000000000.log", dir);
        char *first_ti = xasprintf("%s/cleaning/00000000000000000000.timeindex", dir);
        CHECK(log);
        struct seen before, after;
        CHECK_EQ(read_all(log, &before), 0);
        struct plog_compact_stats st;
        CHECK_EQ(plog_compact_background(log, T0 + 200, &st), 1);
        /* The thread waits with its first copy until the loop (this test) polls. */
        for (int i = 0; i < 2000 && access(first_ti, F_OK) != 0; i++)
                usleep(1000);
        CHECK(access(first_ti, F_OK) == 0);
        usleep(50 * 1000);
        CHECK_EQ(unlink(first), 0);
        int rc = finish_background(log, dir, T0 + 200, &st);
        CHECK(rc < 0);
        CHECK_EQ(read_all(log, &after), 0);
        CHECK_EQ(after.n, before.n);
        CHECK(memcmp(after.offsets, before.offsets, sizeof(int64_t) * (size_t)before.n) == 0);
        CHECK_EQ(plog_compact(log, T0 + 200, &st), 0); /* due again, and it works */
        CHECK(st.segments_cleaned > 0);
        plog_close(log);
        free(first);
        free(first_ti);
        free(dir);
}
