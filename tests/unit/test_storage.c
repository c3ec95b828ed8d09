/* Unit tests of the partition log (src/broker/storage/): appends and reads, rolling,
 * indexes, recovery of torn tails, idempotent producers, retention, DeleteRecords and
 * timestamp lookups. Each test works in its own test_tmpdir. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/crc32c.h"
#include "base/fileio.h"
#include "broker/storage/plog.h"
#include "broker/storage/producer_state.h"
#include "broker/storage/syncer.h"
#include "kafka/errors.h"
#include "kafka/record.h"
#include "test.h"

#define T0 1700000000000LL /* a timestamp in ms used as "now" */

struct batch_spec {
        int count;              /* records in the batch */
        int64_t timestamp_ms;   /* of the first record */
        int64_t ts_step_ms;     /* added per record */
        int64_t producer_id;    /* -1: not idempotent */
        int16_t producer_epoch;
        int32_t base_sequence;  /* -1: none */
        int value_len;          /* bytes per record value */
        int16_t attributes;     /* compression bits are only labels here */
};

static struct batch_spec plain(int count, int64_t timestamp_ms)
{
        struct batch_spec s = { count, timestamp_ms, 1, -1, -1, -1, 10, 0 };
        return s;
}

static struct batch_spec idempotent(int count, int64_t producer_id, int16_t epoch, int32_t seq)
{
        struct batch_spec s = { count, T0, 1, producer_id, epoch, seq, 10, 0 };
        return s;
}

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

/* Appends to <b> a valid magic-2 batch of uncompressed records built from <s>. */
static void batch_append(struct buf *b, const struct batch_spec *s)
{
        size_t start = b->len;
        memset(buf_reserve(b, RECORD_BATCH_HEADER_SIZE), 0, RECORD_BATCH_HEADER_SIZE);
        b->len += RECORD_BATCH_HEADER_SIZE;
        int64_t max_ts = -1;
        uint8_t *body = xmalloc((size_t)s->value_len + 64);
        for (int i = 0; i < s->count; i++) {
                size_t n = 0;
                body[n++] = 0; /* attributes */
                n += put_varlong(body + n, (int64_t)i * s->ts_step_ms);
                n += put_varlong(body + n, i);
                n += put_varlong(body + n, -1); /* null key */
                n += put_varlong(body + n, s->value_len);
                memset(body + n, 'a' + i % 26, (size_t)s->value_len);
                n += (size_t)s->value_len;
                n += put_varlong(body + n, 0); /* no headers */
                uint8_t len[10];
                size_t ln = put_varlong(len, (int64_t)n);
                buf_append(b, len, ln);
                buf_append(b, body, n);
                int64_t ts = s->timestamp_ms + (int64_t)i * s->ts_step_ms;
                if (ts > max_ts)
                        max_ts = ts;
        }
        free(body);
        uint8_t *h = b->data + start;
        size_t size = b->len - start;
        store_be64(h, 0);
        store_be32(h + 8, (uint32_t)(size - RECORD_BATCH_LOG_OVERHEAD));
        store_be32(h + 12, 0);
        h[16] = 2;
        store_be16(h + 21, (uint16_t)s->attributes);
        store_be32(h + 23, (uint32_t)(s->count - 1));
        store_be64(h + 27, (uint64_t)s->timestamp_ms);
        store_be64(h + 35, (uint64_t)max_ts);
        store_be64(h + 43, (uint64_t)s->producer_id);
        store_be16(h + 51, (uint16_t)s->producer_epoch);
        store_be32(h + 53, (uint32_t)s->base_sequence);
        store_be32(h + 57, (uint32_t)s->count);
        store_be32(h + 17, crc32c(0, h + 21, size - 21));
}

static struct plog_config config(void)
{
        struct plog_config cfg = {
                .segment_bytes = 1 << 20,
                .segment_ms = 7LL * 24 * 3600 * 1000,
                .retention_ms = -1,
                .retention_bytes = -1,
                .index_interval_bytes = 4096,
                .leader_epoch = 3,
                .producer_expiration_ms = 24LL * 3600 * 1000,
                .cleanup_delete = true,
        };
        return cfg;
}

static char *log_dir(void)
{
        return xasprintf("%s/topic-0", test_tmpdir);
}

static char *file_in(const char *dir, int64_t base, const char *ext)
{
        return xasprintf("%s/%020" PRId64 ".%s", dir, base, ext);
}

static int64_t file_size(const char *path)
{
        struct stat st;
        return stat(path, &st) < 0 ? -1 : (int64_t)st.st_size;
}

static bool file_exists(const char *path)
{
        return access(path, F_OK) == 0;
}

/* Appends one batch; returns the append result's error code (or a negative errno). */
static int append_spec(struct plog *log, const struct batch_spec *s, int64_t now_ms,
                       struct plog_append_result *res)
{
        struct buf b;
        buf_init(&b);
        batch_append(&b, s);
        int err = plog_append(log, b.data, b.len, now_ms, res);
        buf_deinit(&b);
        return err ? err : res->error_code;
}

/* Appends a plain batch of <count> records; returns its base offset, or -1. */
static int64_t append_plain(struct plog *log, int count, int64_t timestamp_ms, int64_t now_ms)
{
        struct batch_spec s = plain(count, timestamp_ms);
        struct plog_append_result res;
        if (append_spec(log, &s, now_ms, &res) != 0)
                return -1;
        return res.base_offset;
}

/* Appends <n> batches of two 60-byte records, timestamps T0 + i. Returns 0 or the first
 * failure. */
static int append_pairs(struct plog *log, int n)
{
        for (int i = 0; i < n; i++) {
                struct batch_spec s = plain(2, T0 + i);
                s.value_len = 60;
                struct plog_append_result res;
                int rc = append_spec(log, &s, T0, &res);
                if (rc)
                        return rc;
        }
        return 0;
}

/* Reads the slice plog_read() gives for <offset> into a heap buffer (freed by caller). */
static int read_slice(struct plog *log, int64_t offset, int32_t max_bytes, uint8_t **data,
                      int32_t *len)
{
        struct kafka_file_slice slice;
        int err = plog_read(log, offset, max_bytes, &slice);
        *data = NULL;
        *len = 0;
        if (err)
                return err;
        *len = slice.len;
        *data = xmalloc((size_t)slice.len + 1);
        size_t got = 0;
        if (slice.len > 0)
                err = fileio_pread(slice.fd, *data, (size_t)slice.len, slice.pos, &got);
        if (!err && got != (size_t)slice.len)
                err = -EIO;
        if (slice.release)
                slice.release(slice.ref);
        return err;
}

/* Walks the batches in <data, len>; checks each is valid. Returns the number of whole
 * batches, or -1 on a bad one. *<first>/<next> get the first base and next offset. */
static int walk(const uint8_t *data, int32_t len, int64_t *first, int64_t *next)
{
        int n = 0;
        *first = *next = -1;
        for (int32_t at = 0; at < len;) {
                struct record_batch_header h;
                int64_t size = record_batch_size(data + at, (size_t)(len - at));
                if (size < 0 || size > len - at)
                        break; /* partial trailing batch */
                if (record_batch_check(data + at, (size_t)size, &h) != RECORD_OK)
                        return -1;
                if (*first < 0)
                        *first = h.base_offset;
                *next = h.base_offset + h.last_offset_delta + 1;
                at += (int32_t)size;
                n++;
        }
        return n;
}

static int copy_file(const char *from, const char *to)
{
        int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = in < 0 || out < 0 ? -1 : 0;
        char chunk[65536];
        ssize_t n;
        while (!err && (n = read(in, chunk, sizeof(chunk))) > 0)
                if (write(out, chunk, (size_t)n) != n)
                        err = -1;
        if (in >= 0)
                close(in);
        if (out >= 0)
                close(out);
        return err;
}

/* Copies the files of <from> into a new directory <to>: the state a crash would leave
 * (what the page cache holds), without the log ever being closed. */
static int copy_dir(const char *from, const char *to)
{
        if (mkdir(to, 0755) < 0)
                return -1;
        DIR *d = opendir(from);
        if (!d)
                return -1;
        struct dirent *de;
        int err = 0;
        while (!err && (de = readdir(d)) != NULL) {
                if (de->d_name[0] == '.')
                        continue;
                char *src = xasprintf("%s/%s", from, de->d_name);
                char *dst = xasprintf("%s/%s", to, de->d_name);
                err = copy_file(src, dst);
                free(src);
                free(dst);
        }
        closedir(d);
        return err;
}

/* The path of the newest .log file in <dir> (caller frees), or NULL. */
static char *last_segment(const char *dir)
{
        DIR *d = opendir(dir);
        if (!d)
                return NULL;
        char best[256] = "";
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
                size_t len = strlen(de->d_name);
                if (len == 24 && !strcmp(de->d_name + 20, ".log") && strcmp(de->d_name, best) > 0)
                        snprintf(best, sizeof(best), "%s", de->d_name);
        }
        closedir(d);
        return best[0] ? xasprintf("%s/%s", dir, best) : NULL;
}

static int count_suffix(const char *dir, const char *suffix)
{
        DIR *d = opendir(dir);
        if (!d)
                return -1;
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
                size_t len = strlen(de->d_name), sl = strlen(suffix);
                if (len > sl && !strcmp(de->d_name + len - sl, suffix))
                        n++;
        }
        closedir(d);
        return n;
}

/* ---- tests ---------------------------------------------------------------------- */

TEST(storage_append_read_round_trip)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        CHECK_EQ(plog_start_offset(log), 0);
        CHECK_EQ(plog_end_offset(log), 0);
        CHECK_EQ(append_plain(log, 1, T0, T0), 0);
        CHECK_EQ(append_plain(log, 5, T0 + 10, T0), 1);
        struct plog_append_result res;
        struct batch_spec s = plain(2, T0 + 20);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        CHECK_EQ(res.base_offset, 6);
        CHECK_EQ(res.last_offset, 7);
        CHECK_EQ(res.log_start_offset, 0);
        CHECK(!res.duplicate);
        CHECK_EQ(plog_end_offset(log), 8);
        CHECK_EQ(plog_segment_count(log), 1);
        CHECK(plog_sync(log) == 0);

        uint8_t *data;
        int32_t len;
        CHECK(read_slice(log, 0, 1 << 20, &data, &len) == 0);
        CHECK_EQ(len, plog_size_bytes(log));
        int64_t first, next;
        CHECK_EQ(walk(data, len, &first, &next), 3);
        CHECK_EQ(first, 0);
        CHECK_EQ(next, 8);
        struct record_batch_header h;
        record_batch_header_parse(data, (size_t)len, &h);
        CHECK_EQ(h.partition_leader_epoch, 3);
        free(data);

        /* an offset inside the second batch returns that batch first */
        CHECK(read_slice(log, 3, 1 << 20, &data, &len) == 0);
        CHECK_EQ(walk(data, len, &first, &next), 2);
        CHECK_EQ(first, 1);
        free(data);

        /* at the end: empty; past it: out of range */
        struct kafka_file_slice slice;
        CHECK(plog_read(log, 8, 1000, &slice) == 0);
        CHECK_EQ(slice.len, 0);
        CHECK(slice.release == NULL);
        CHECK_EQ(plog_read(log, 9, 1000, &slice), -ERANGE);
        CHECK_EQ(plog_read(log, -1, 1000, &slice), -ERANGE);

        /* a malformed record set is refused without a write */
        uint8_t junk[20] = { 0 };
        CHECK(plog_append(log, junk, sizeof(junk), T0, &res) == 0);
        CHECK_EQ(res.error_code, KAFKA_CORRUPT_MESSAGE);
        CHECK_EQ(plog_end_offset(log), 8);
        plog_close(log);
        free(dir);
}

TEST(storage_read_respects_max_bytes)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        for (int i = 0; i < 10; i++) {
                struct batch_spec s = plain(4, T0);
                s.value_len = 100;
                struct plog_append_result res;
                CHECK_EQ(append_spec(log, &s, T0, &res), 0);
        }
        int64_t batch_size = plog_size_bytes(log) / 10;
        uint8_t *data;
        int32_t len;
        int64_t first, next;
        /* smaller than one batch: still the whole first batch */
        CHECK(read_slice(log, 0, 10, &data, &len) == 0);
        CHECK_EQ(len, batch_size);
        CHECK_EQ(walk(data, len, &first, &next), 1);
        free(data);
        /* two and a half batches: cut at the batch boundary */
        CHECK(read_slice(log, 4, (int32_t)(batch_size * 5 / 2), &data, &len) == 0);
        CHECK_EQ(len, 2 * batch_size);
        CHECK_EQ(walk(data, len, &first, &next), 2);
        CHECK_EQ(first, 4);
        CHECK_EQ(next, 12);
        free(data);
        plog_close(log);
        free(dir);
}

/* Readers that go on where their last read ended are served from the position the log
 * remembered (no index lookup): two consumers interleaved over many segments get byte
 * for byte what reads in reverse order (which never hit a remembered position) get. */
TEST(storage_sequential_reads_match_lookups)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        cfg.segment_bytes = 1500;
        cfg.index_interval_bytes = 200;
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        for (int i = 0; i < 80; i++) {
                struct batch_spec b = plain(1 + i % 5, T0 + i);
                b.value_len = 20 + (i * 7) % 90;
                struct plog_append_result res;
                CHECK_EQ(append_spec(log, &b, T0, &res), 0);
        }
        CHECK(plog_segment_count(log) > 5);
        int64_t end = plog_end_offset(log);
        struct read { int64_t offset; int32_t max; uint8_t *data; int32_t len; } reads[400];
        int nreads = 0;
        int64_t at[2] = { 0, 37 };
        const int32_t max[2] = { 700, 260 };
        while ((at[0] < end || at[1] < end) && nreads < 400) {
                for (int r = 0; r < 2 && nreads < 400; r++) {
                        if (at[r] >= end)
                                continue;
                        struct read *rd = &reads[nreads++];
                        rd->offset = at[r];
                        rd->max = max[r];
                        CHECK_EQ(read_slice(log, at[r], max[r], &rd->data, &rd->len), 0);
                        int64_t first, next;
                        CHECK(walk(rd->data, rd->len, &first, &next) > 0);
                        CHECK(first <= at[r] && next > at[r]);
                        at[r] = next;
                }
        }
        CHECK(nreads < 400);
        plog_close(log);
        log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        for (int i = nreads - 1; i >= 0; i--) {
                uint8_t *data;
                int32_t len;
                CHECK_EQ(read_slice(log, reads[i].offset, reads[i].max, &data, &len), 0);
                CHECK_EQ(len, reads[i].len);
                CHECK(memcmp(data, reads[i].data, (size_t)len) == 0);
                free(data);
                free(reads[i].data);
        }
        /* A consumer caught up at the end gets exactly what is appended next. */
        uint8_t *data;
        int32_t len;
        int64_t first, next;
        CHECK_EQ(read_slice(log, end - 1, 1 << 20, &data, &len), 0);
        free(data);
        CHECK_EQ(read_slice(log, end, 1 << 20, &data, &len), 0);
        CHECK_EQ(len, 0);
        free(data);
        CHECK_EQ(append_plain(log, 3, T0, T0), end);
        CHECK_EQ(read_slice(log, end, 1 << 20, &data, &len), 0);
        CHECK_EQ(walk(data, len, &first, &next), 1);
        CHECK_EQ(first, end);
        CHECK_EQ(next, end + 3);
        free(data);
        plog_close(log);
        free(dir);
}

TEST(storage_roll_by_size)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        cfg.segment_bytes = 1000;
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        struct batch_spec s = plain(2, T0);
        s.value_len = 120; /* ~330 bytes a batch: three fit in 1000 */
        struct plog_append_result res;
        for (int i = 0; i < 7; i++)
                CHECK_EQ(append_spec(log, &s, T0, &res), 0);
        CHECK_EQ(plog_segment_count(log), 3);
        char *p = file_in(dir, 6, "log");
        CHECK(file_exists(p));
        free(p);
        p = file_in(dir, 12, "log");
        CHECK(file_exists(p));
        free(p);
        /* a snapshot is written at each roll */
        p = file_in(dir, 12, "snapshot");
        CHECK(file_exists(p));
        free(p);

        /* a batch larger than segment_bytes gets a segment of its own */
        s.value_len = 2000;
        CHECK_EQ(append_spec(log, &s, T0, &res), 0);
        CHECK_EQ(res.base_offset, 14);
        CHECK_EQ(plog_segment_count(log), 4);
        s.value_len = 10;
        CHECK_EQ(append_spec(log, &s, T0, &res), 0);
        CHECK_EQ(plog_segment_count(log), 5);

        /* reads stay within one segment and cover every offset */
        int64_t offset = 0;
        while (offset < plog_end_offset(log)) {
                uint8_t *data;
                int32_t len;
                int64_t first, next;
                CHECK(read_slice(log, offset, 1 << 20, &data, &len) == 0);
                CHECK(walk(data, len, &first, &next) >= 1);
                CHECK_EQ(first, offset);
                free(data);
                offset = next;
        }
        CHECK_EQ(offset, 18);
        plog_close(log);
        free(dir);
}

TEST(storage_roll_by_time)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        cfg.segment_ms = 1000;
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        CHECK_EQ(append_plain(log, 1, T0, T0), 0);
        CHECK_EQ(append_plain(log, 1, T0, T0 + 1000), 1);
        CHECK_EQ(plog_segment_count(log), 1);
        CHECK_EQ(append_plain(log, 1, T0, T0 + 1001), 2);
        CHECK_EQ(plog_segment_count(log), 2);
        /* an empty segment never rolls; retention rolls an old active segment */
        CHECK_EQ(plog_enforce_retention(log, T0 + 1500), 0);
        CHECK_EQ(plog_segment_count(log), 2);
        CHECK_EQ(plog_enforce_retention(log, T0 + 2002), 0);
        CHECK_EQ(plog_segment_count(log), 3);
        CHECK_EQ(plog_enforce_retention(log, T0 + 9000), 0);
        CHECK_EQ(plog_segment_count(log), 3);
        CHECK_EQ(plog_end_offset(log), 3);
        plog_close(log);
        free(dir);
}

TEST(storage_index_lookup_in_big_log)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        cfg.index_interval_bytes = 256;
        cfg.segment_bytes = 256 << 10;
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        for (int i = 0; i < 3000; i++)
                CHECK_EQ(append_plain(log, 10, T0 + i * 10, T0), i * 10);
        CHECK(plog_segment_count(log) > 2);
        char *p = file_in(dir, 0, "index");
        int64_t index_bytes = file_size(p);
        free(p);
        CHECK(index_bytes > 8 * 100);
        CHECK_EQ(index_bytes % 8, 0);
        for (int round = 0; round < 2; round++) {
                int64_t targets[] = { 0, 9, 12345, 15000, 15009, 29999, 20001 };
                for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
                        uint8_t *data;
                        int32_t len;
                        int64_t first, next;
                        CHECK(read_slice(log, targets[i], 1000, &data, &len) == 0);
                        CHECK(walk(data, len, &first, &next) >= 1);
                        CHECK_EQ(first, targets[i] / 10 * 10);
                        free(data);
                }
                /* again after a clean reopen that trusts the index files */
                plog_close(log);
                log = plog_open(dir, &cfg, false, &err);
                CHECK(log != NULL);
                CHECK_EQ(plog_end_offset(log), 30000);
        }
        plog_close(log);
        free(dir);
}

TEST(storage_reopen_without_recovery)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        cfg.segment_bytes = 2000;
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        for (int i = 0; i < 40; i++)
                CHECK_EQ(append_plain(log, 3, T0 + i, T0), i * 3);
        int segments = plog_segment_count(log);
        int64_t size = plog_size_bytes(log);
        CHECK(segments > 2);
        plog_close(log);
        log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        CHECK_EQ(plog_segment_count(log), segments);
        CHECK_EQ(plog_size_bytes(log), size);
        CHECK_EQ(plog_end_offset(log), 120);
        CHECK_EQ(append_plain(log, 3, T0, T0), 120);
        int64_t offset, ts;
        CHECK(plog_offset_for_timestamp(log, T0 + 39, &offset, &ts) == 0);
        CHECK_EQ(offset, 113); /* batch 37, record 2 */
        plog_close(log);
        /* and once more with recovery */
        log = plog_open(dir, &cfg, true, &err);
        CHECK(log != NULL);
        CHECK_EQ(plog_end_offset(log), 123);
        plog_close(log);
        free(dir);
}

/* Flips one byte inside the batch at <pos> of the segment file <path> (breaks its CRC). */
static int corrupt_at(const char *path, int64_t pos)
{
        int fd = open(path, O_RDWR);
        if (fd < 0)
                return -1;
        uint8_t b = 0;
        int rc = pread(fd, &b, 1, pos) == 1 ? 0 : -1;
        b ^= 0x5a;
        if (!rc && pwrite(fd, &b, 1, pos) != 1)
                rc = -1;
        close(fd);
        return rc;
}

static int64_t read_number(const char *path)
{
        char text[32] = { 0 };
        int fd = open(path, O_RDONLY);
        if (fd < 0)
                return -1;
        ssize_t n = read(fd, text, sizeof(text) - 1);
        close(fd);
        return n > 0 ? strtoll(text, NULL, 10) : -1;
}

/* Rolled segments are synced on the sync thread, which then moves the recovery point;
 * recovery after a crash scans the segments from there on only, and all of them when
 * the recovery-point file is missing. */
TEST(storage_recovery_scans_from_the_recovery_point)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        cfg.segment_bytes = 700;
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        CHECK_EQ(append_pairs(log, 12), 0);
        int64_t size = plog_size_bytes(log), batch = size / 12, end = plog_end_offset(log);
        CHECK_EQ(plog_segment_count(log), 4); /* 3 batches each: bases 0, 6, 12, 18 */
        char *rp = xasprintf("%s/recovery-point", dir);
        plog_close(log); /* waits for the sync thread, which wrote the file */
        CHECK_EQ(read_number(rp), 18);
        char *seg0 = file_in(dir, 0, "log"), *seg6 = file_in(dir, 6, "log");
        CHECK_EQ(corrupt_at(seg0, 70), 0);
        CHECK_EQ(corrupt_at(seg6, batch + 70), 0);

        /* Recovery point 18: the damaged older segments are trusted as they are. */
        log = plog_open(dir, &cfg, true, &err);
        CHECK(log != NULL);
        CHECK_EQ(plog_size_bytes(log), size);
        plog_close(log);

        /* Recovery point 6 (a sync still in flight at the crash): segment 6 is scanned
         * and cut after its first batch; the log still ends where it did. */
        FILE *f = fopen(rp, "w");
        CHECK(f != NULL);
        fputs("6\n", f);
        fclose(f);
        log = plog_open(dir, &cfg, true, &err);
        CHECK(log != NULL);
        CHECK_EQ(plog_size_bytes(log), size - 2 * batch);
        CHECK_EQ(plog_end_offset(log), end);
        plog_close(log);

        /* No file: every segment is scanned; segment 0 loses its first batch and all after. */
        CHECK_EQ(unlink(rp), 0);
        log = plog_open(dir, &cfg, true, &err);
        CHECK(log != NULL);
        CHECK_EQ(plog_size_bytes(log), size - 5 * batch);
        CHECK_EQ(plog_end_offset(log), end);
        plog_close(log);
        free(seg0);
        free(seg6);
        free(rp);
        free(dir);
}

TEST(storage_torn_tail_truncated)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        for (int i = 0; i < 10; i++)
                CHECK_EQ(append_plain(log, 2, T0 + i, T0), i * 2);
        int64_t size = plog_size_bytes(log), batch = size / 10;
        plog_close(log);
        char *p = file_in(dir, 0, "log");
        CHECK(truncate(p, size - batch / 2) == 0);
        log = plog_open(dir, &cfg, true, &err);
        CHECK(log != NULL);
        CHECK_EQ(plog_end_offset(log), 18);
        CHECK_EQ(plog_size_bytes(log), size - batch);
        CHECK_EQ(file_size(p), size - batch);
        CHECK_EQ(append_plain(log, 2, T0, T0), 18);
        uint8_t *data;
        int32_t len;
        int64_t first, next;
        CHECK(read_slice(log, 16, 1 << 20, &data, &len) == 0);
        CHECK_EQ(walk(data, len, &first, &next), 2);
        CHECK_EQ(next, 20);
        free(data);
        plog_close(log);
        free(p);
        free(dir);
}

TEST(storage_garbage_tail_truncated)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        for (int i = 0; i < 5; i++)
                CHECK_EQ(append_plain(log, 1, T0 + i, T0), i);
        int64_t size = plog_size_bytes(log);
        plog_close(log);
        char *p = file_in(dir, 0, "log");
        int fd = open(p, O_WRONLY | O_APPEND);
        CHECK(fd >= 0);
        uint8_t garbage[300];
        for (size_t i = 0; i < sizeof(garbage); i++)
                garbage[i] = (uint8_t)(i * 37 + 11);
        CHECK(write(fd, garbage, sizeof(garbage)) == (ssize_t)sizeof(garbage));
        close(fd);
        log = plog_open(dir, &cfg, true, &err);
        CHECK(log != NULL);
        CHECK_EQ(plog_end_offset(log), 5);
        CHECK_EQ(file_size(p), size);
        CHECK_EQ(append_plain(log, 1, T0, T0), 5);
        plog_close(log);

        /* a flipped byte in the last batch fails its CRC: that batch goes */
        fd = open(p, O_RDWR);
        CHECK(fd >= 0);
        uint8_t byte;
        int64_t at = file_size(p) - 3;
        CHECK(pread(fd, &byte, 1, at) == 1);
        byte ^= 0xff;
        CHECK(pwrite(fd, &byte, 1, at) == 1);
        close(fd);
        log = plog_open(dir, &cfg, true, &err);
        CHECK(log != NULL);
        CHECK_EQ(plog_end_offset(log), 5);
        CHECK_EQ(file_size(p), size);
        plog_close(log);
        free(p);
        free(dir);
}

TEST(storage_idempotent_duplicate)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        struct plog_append_result res;
        struct batch_spec s = idempotent(5, 7, 0, 0);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        CHECK_EQ(res.base_offset, 0);
        s = idempotent(3, 7, 0, 5);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        CHECK_EQ(res.base_offset, 5);
        CHECK_EQ(append_plain(log, 1, T0, T0), 8);
        int64_t size = plog_size_bytes(log);
        /* retries of either cached batch */
        s = idempotent(5, 7, 0, 0);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        CHECK(res.duplicate);
        CHECK_EQ(res.base_offset, 0);
        CHECK_EQ(res.last_offset, 4);
        s = idempotent(3, 7, 0, 5);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        CHECK(res.duplicate);
        CHECK_EQ(res.base_offset, 5);
        CHECK_EQ(res.last_offset, 7);
        CHECK_EQ(plog_end_offset(log), 9);
        CHECK_EQ(plog_size_bytes(log), size);
        /* only the last five batches are remembered */
        for (int i = 0; i < 5; i++) {
                s = idempotent(1, 7, 0, 8 + i);
                CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
                CHECK(!res.duplicate);
        }
        s = idempotent(3, 7, 0, 5);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        plog_close(log);
        free(dir);
}

TEST(storage_out_of_order_sequence)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        struct plog_append_result res;
        struct batch_spec s = idempotent(2, 9, 1, 0);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        int64_t size = plog_size_bytes(log);
        s = idempotent(2, 9, 1, 3); /* expected 2 */
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        CHECK_EQ(plog_size_bytes(log), size);
        CHECK_EQ(plog_end_offset(log), 2);
        s = idempotent(2, 9, 1, 1); /* overlaps, not a cached batch */
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        s = idempotent(2, 9, 1, 2);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        CHECK_EQ(res.base_offset, 2);

        /* a two-batch set whose second batch has a gap is refused as a whole */
        struct buf b;
        buf_init(&b);
        s = idempotent(2, 9, 1, 4);
        batch_append(&b, &s);
        s = idempotent(2, 9, 1, 9);
        batch_append(&b, &s);
        CHECK(plog_append(log, b.data, b.len, T0, &res) == 0);
        CHECK_EQ(res.error_code, KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        buf_reset(&b);
        s = idempotent(2, 9, 1, 4);
        batch_append(&b, &s);
        s = idempotent(2, 9, 1, 6);
        batch_append(&b, &s);
        CHECK(plog_append(log, b.data, b.len, T0, &res) == 0);
        CHECK_EQ(res.error_code, KAFKA_NONE);
        CHECK(!res.duplicate);
        CHECK_EQ(res.base_offset, 4);
        CHECK_EQ(res.last_offset, 7);
        buf_deinit(&b);
        plog_close(log);
        free(dir);
}

TEST(storage_unknown_producer_and_old_epoch)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        struct plog_append_result res;
        struct batch_spec s = idempotent(1, 11, 0, 5);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_UNKNOWN_PRODUCER_ID);
        CHECK_EQ(plog_end_offset(log), 0);
        s = idempotent(1, 11, 2, 0);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        s = idempotent(1, 11, 1, 1);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_INVALID_PRODUCER_EPOCH);
        /* a newer epoch must start at sequence 0 */
        s = idempotent(1, 11, 3, 1);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        s = idempotent(1, 11, 3, 0);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        CHECK_EQ(res.base_offset, 1);
        /* the old epoch's batch is no longer a duplicate */
        s = idempotent(1, 11, 2, 0);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_INVALID_PRODUCER_EPOCH);
        CHECK_EQ(plog_end_offset(log), 2);
        plog_close(log);
        free(dir);
}

TEST(storage_producer_sequence_wraps)
{
        struct producer_state ps;
        struct producer_undo undo;
        producer_state_init(&ps);
        producer_undo_init(&undo);
        struct record_batch_header h;
        memset(&h, 0, sizeof(h));
        h.producer_id = 5;
        h.producer_epoch = 0;
        h.base_sequence = INT32_MAX - 1;
        h.last_offset_delta = 0;
        h.base_offset = 100;
        producer_state_replay(&ps, &h, T0); /* as if sequences had run that far */
        bool dup;
        struct producer_batch batch;
        h.base_sequence = INT32_MAX;
        h.last_offset_delta = 1; /* INT32_MAX, then 0 */
        CHECK_EQ(producer_state_append(&ps, &h, 101, T0, &undo, &dup, &batch), KAFKA_NONE);
        CHECK(!dup);
        const struct producer_entry *e = producer_state_find(&ps, 5);
        CHECK(e != NULL);
        CHECK_EQ(e->batches[e->nbatches - 1].last_seq, 0);
        h.base_sequence = 1;
        h.last_offset_delta = 0;
        CHECK_EQ(producer_state_append(&ps, &h, 103, T0, &undo, &dup, &batch), KAFKA_NONE);
        /* rollback undoes both appends, newest first */
        producer_state_rollback(&ps, &undo);
        e = producer_state_find(&ps, 5);
        CHECK_EQ(e->nbatches, 1);
        CHECK_EQ(e->batches[0].last_seq, INT32_MAX - 1);
        /* a new producer's entry disappears on rollback */
        h.producer_id = 6;
        h.base_sequence = 0;
        CHECK_EQ(producer_state_append(&ps, &h, 104, T0, &undo, &dup, &batch), KAFKA_NONE);
        CHECK(producer_state_find(&ps, 6) != NULL);
        producer_state_rollback(&ps, &undo);
        CHECK(producer_state_find(&ps, 6) == NULL);
        /* expiry */
        CHECK_EQ(producer_state_expire(&ps, T0 + 1000, 1000), 0);
        CHECK_EQ(producer_state_expire(&ps, T0 + 1001, 1000), 1);
        CHECK(producer_state_find(&ps, 5) == NULL);
        producer_undo_deinit(&undo);
        producer_state_deinit(&ps);
}

TEST(storage_producer_state_survives_reopen)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        cfg.segment_bytes = 600;
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        struct plog_append_result res;
        for (int i = 0; i < 10; i++) {
                struct batch_spec s = idempotent(2, 21, 0, i * 2);
                CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        }
        CHECK(plog_segment_count(log) > 1);
        plog_close(log);
        log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        struct batch_spec s = idempotent(2, 21, 0, 18);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        CHECK(res.duplicate);
        CHECK_EQ(res.base_offset, 18);
        s = idempotent(2, 21, 0, 21);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        s = idempotent(2, 21, 0, 20);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        CHECK_EQ(res.base_offset, 20);
        plog_close(log);
        /* at most two snapshots are kept */
        CHECK(count_suffix(dir, ".snapshot") <= 2);
        free(dir);
}

TEST(storage_producer_state_survives_crash)
{
        char *dir = log_dir();
        char *crashed = xasprintf("%s/crashed", test_tmpdir);
        struct plog_config cfg = config();
        cfg.segment_bytes = 600;
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        struct plog_append_result res;
        for (int i = 0; i < 12; i++) {
                struct batch_spec s = idempotent(1, 31, 4, i);
                CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
                s = idempotent(1, 32, 0, i);
                CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        }
        CHECK(plog_segment_count(log) > 2);
        int64_t end = plog_end_offset(log);
        CHECK(copy_dir(dir, crashed) == 0); /* no close: no snapshot at the end */
        plog_close(log);

        log = plog_open(crashed, &cfg, true, &err);
        CHECK(log != NULL);
        CHECK_EQ(plog_end_offset(log), end);
        struct batch_spec s = idempotent(1, 32, 0, 11);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        CHECK(res.duplicate);
        CHECK_EQ(res.base_offset, end - 1);
        s = idempotent(1, 31, 4, 11);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        CHECK(res.duplicate);
        CHECK_EQ(res.base_offset, end - 2);
        s = idempotent(1, 31, 3, 12);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_INVALID_PRODUCER_EPOCH);
        s = idempotent(1, 31, 4, 12);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        CHECK(!res.duplicate);
        CHECK_EQ(res.base_offset, end);
        plog_close(log);

        /* crash again, this time with the last batch torn: its sequence is forgotten */
        char *torn = xasprintf("%s/torn", test_tmpdir);
        CHECK(copy_dir(dir, torn) == 0);
        char *p = last_segment(torn);
        CHECK(p != NULL);
        CHECK(truncate(p, file_size(p) - 5) == 0);
        free(p);
        log = plog_open(torn, &cfg, true, &err);
        CHECK(log != NULL);
        CHECK_EQ(plog_end_offset(log), end - 1);
        s = idempotent(1, 32, 0, 11);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        CHECK(!res.duplicate);
        CHECK_EQ(res.base_offset, end - 1);
        plog_close(log);
        free(torn);
        free(crashed);
        free(dir);
}

TEST(storage_torn_snapshot_ignored)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        struct plog_append_result res;
        for (int i = 0; i < 3; i++) {
                struct batch_spec s = idempotent(1, 41, 0, i);
                CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        }
        plog_close(log);
        /* tear the snapshot written at close: the state comes from the log instead */
        char *p = file_in(dir, 3, "snapshot");
        int64_t size = file_size(p);
        CHECK(size > 20);
        CHECK(truncate(p, size - 5) == 0);
        log = plog_open(dir, &cfg, true, &err);
        CHECK(log != NULL);
        struct batch_spec s = idempotent(1, 41, 0, 2);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        CHECK(res.duplicate);
        CHECK_EQ(res.base_offset, 2);
        s = idempotent(1, 41, 0, 3);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        CHECK(!res.duplicate);
        plog_close(log);
        free(p);
        free(dir);
}

TEST(storage_producer_expiration)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        cfg.producer_expiration_ms = 60000;
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        struct plog_append_result res;
        struct batch_spec s = idempotent(1, 51, 0, 0);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        CHECK_EQ(plog_enforce_retention(log, T0 + 60000), 0);
        s = idempotent(1, 51, 0, 1);
        CHECK_EQ(append_spec(log, &s, T0 + 60000, &res), KAFKA_NONE);
        CHECK_EQ(plog_enforce_retention(log, T0 + 120001), 0);
        s = idempotent(1, 51, 0, 2);
        CHECK_EQ(append_spec(log, &s, T0 + 120001, &res), KAFKA_UNKNOWN_PRODUCER_ID);
        plog_close(log);
        free(dir);
}

TEST(storage_retention_by_time)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        cfg.segment_bytes = 500;
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        /* batch i has timestamp T0 + i*1000; each segment holds two batches */
        for (int i = 0; i < 10; i++) {
                struct batch_spec s = plain(2, T0 + i * 1000);
                s.value_len = 60;
                struct plog_append_result res;
                CHECK_EQ(append_spec(log, &s, T0, &res), 0);
        }
        CHECK_EQ(plog_segment_count(log), 5);
        CHECK_EQ(plog_enforce_retention(log, T0), 0);
        cfg.retention_ms = 5000;
        plog_set_config(log, &cfg);
        /* now = T0 + 9001: segments whose newest record is before T0 + 4001 go */
        CHECK_EQ(plog_enforce_retention(log, T0 + 9001), 2);
        CHECK_EQ(plog_segment_count(log), 3);
        CHECK_EQ(plog_start_offset(log), 8);
        char *p = file_in(dir, 0, "log");
        CHECK(!file_exists(p));
        free(p);
        p = file_in(dir, 4, "index");
        CHECK(!file_exists(p));
        free(p);
        p = file_in(dir, 8, "log");
        CHECK(file_exists(p));
        free(p);
        struct kafka_file_slice slice;
        CHECK_EQ(plog_read(log, 7, 1000, &slice), -ERANGE);
        /* everything old, the active segment too: it is rolled and deleted */
        CHECK_EQ(plog_enforce_retention(log, T0 + 100000), 3);
        CHECK_EQ(plog_segment_count(log), 1);
        CHECK_EQ(plog_start_offset(log), 20);
        CHECK_EQ(plog_end_offset(log), 20);
        CHECK_EQ(plog_size_bytes(log), 0);
        CHECK_EQ(append_plain(log, 1, T0 + 100000, T0 + 100000), 20);
        plog_close(log);
        log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        CHECK_EQ(plog_start_offset(log), 20);
        CHECK_EQ(plog_end_offset(log), 21);
        plog_close(log);
        free(dir);
}

TEST(storage_retention_by_size)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        cfg.segment_bytes = 500;
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        for (int i = 0; i < 10; i++) {
                struct batch_spec s = plain(2, T0);
                s.value_len = 60;
                struct plog_append_result res;
                CHECK_EQ(append_spec(log, &s, T0, &res), 0);
        }
        CHECK_EQ(plog_segment_count(log), 5);
        int64_t segment = plog_size_bytes(log) / 5;
        cfg.retention_bytes = segment * 2 + 1;
        plog_set_config(log, &cfg);
        CHECK_EQ(plog_enforce_retention(log, T0), 2);
        CHECK_EQ(plog_segment_count(log), 3);
        CHECK_EQ(plog_size_bytes(log), segment * 3);
        CHECK_EQ(plog_start_offset(log), 8);
        char *p = file_in(dir, 4, "log");
        CHECK(!file_exists(p));
        free(p);
        /* never the active segment */
        cfg.retention_bytes = 0;
        plog_set_config(log, &cfg);
        CHECK_EQ(plog_enforce_retention(log, T0), 2);
        CHECK_EQ(plog_segment_count(log), 1);
        CHECK_EQ(plog_start_offset(log), 16);
        CHECK_EQ(plog_end_offset(log), 20);
        plog_close(log);
        free(dir);
}

TEST(storage_delete_records)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        cfg.segment_bytes = 500;
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        CHECK_EQ(append_pairs(log, 10), 0);
        CHECK_EQ(plog_segment_count(log), 5);
        CHECK_EQ(plog_delete_records(log, 21), -ERANGE);
        CHECK_EQ(plog_delete_records(log, 9), 0); /* inside the batch 8..9 */
        CHECK_EQ(plog_start_offset(log), 9);
        CHECK_EQ(plog_segment_count(log), 3);
        char *p = file_in(dir, 4, "log");
        CHECK(!file_exists(p));
        free(p);
        struct kafka_file_slice slice;
        CHECK_EQ(plog_read(log, 8, 1000, &slice), -ERANGE);
        uint8_t *data;
        int32_t len;
        int64_t first, next;
        CHECK(read_slice(log, 9, 1 << 20, &data, &len) == 0);
        CHECK(walk(data, len, &first, &next) >= 1);
        CHECK_EQ(first, 8); /* the batch that holds offset 9 */
        free(data);
        CHECK_EQ(plog_delete_records(log, 5), 0); /* below the start: nothing */
        CHECK_EQ(plog_start_offset(log), 9);
        struct plog_append_result res;
        struct batch_spec s = plain(1, T0);
        CHECK_EQ(append_spec(log, &s, T0, &res), 0);
        CHECK_EQ(res.log_start_offset, 9);
        int64_t offset, ts;
        CHECK(plog_offset_for_timestamp(log, 0, &offset, &ts) == 0);
        CHECK_EQ(offset, 9);
        plog_close(log);
        log = plog_open(dir, &cfg, true, &err);
        CHECK(log != NULL);
        CHECK_EQ(plog_start_offset(log), 9);
        /* delete everything up to the end: the active segment stays */
        CHECK_EQ(plog_delete_records(log, 21), 0);
        CHECK_EQ(plog_segment_count(log), 1);
        CHECK(plog_read(log, 21, 1000, &slice) == 0);
        CHECK_EQ(slice.len, 0);
        plog_close(log);
        free(dir);
}

TEST(storage_offset_for_timestamp)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        cfg.segment_bytes = 700;
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        int64_t offset, ts;
        CHECK_EQ(plog_offset_for_timestamp(log, T0, &offset, &ts), -ENOENT);
        CHECK_EQ(plog_max_timestamp(log, &offset, &ts), -ENOENT);
        /* batch i: 5 records stamped T0 + 100*i + 10*j */
        for (int i = 0; i < 12; i++) {
                struct batch_spec s = plain(5, T0 + 100 * i);
                s.ts_step_ms = 10;
                struct plog_append_result res;
                CHECK_EQ(append_spec(log, &s, T0, &res), 0);
        }
        CHECK(plog_segment_count(log) > 2);
        CHECK(plog_offset_for_timestamp(log, T0 + 735, &offset, &ts) == 0);
        CHECK_EQ(offset, 39);
        CHECK_EQ(ts, T0 + 740);
        CHECK(plog_offset_for_timestamp(log, T0 + 740, &offset, &ts) == 0);
        CHECK_EQ(offset, 39);
        CHECK(plog_offset_for_timestamp(log, 0, &offset, &ts) == 0);
        CHECK_EQ(offset, 0);
        CHECK_EQ(ts, T0);
        CHECK(plog_offset_for_timestamp(log, T0 + 1140, &offset, &ts) == 0);
        CHECK_EQ(offset, 59);
        CHECK_EQ(plog_offset_for_timestamp(log, T0 + 1141, &offset, &ts), -ENOENT);
        CHECK(plog_max_timestamp(log, &offset, &ts) == 0);
        CHECK_EQ(offset, 59);
        CHECK_EQ(ts, T0 + 1140);

        /* a compressed batch answers with its base offset and max timestamp */
        struct batch_spec s = plain(4, T0 + 5000);
        s.attributes = CODEC_ZSTD;
        struct plog_append_result res;
        CHECK_EQ(append_spec(log, &s, T0, &res), 0);
        CHECK_EQ(res.base_offset, 60);
        CHECK(plog_offset_for_timestamp(log, T0 + 5002, &offset, &ts) == 0);
        CHECK_EQ(offset, 60);
        CHECK_EQ(ts, T0 + 5003);
        /* a later batch with an earlier timestamp does not win */
        CHECK_EQ(append_plain(log, 1, T0 + 10, T0), 64);
        CHECK(plog_offset_for_timestamp(log, T0 + 5, &offset, &ts) == 0);
        CHECK_EQ(offset, 1);
        CHECK(plog_max_timestamp(log, &offset, &ts) == 0);
        CHECK_EQ(offset, 60);

        /* the same answers after rebuilding the time indexes */
        plog_close(log);
        char *p = file_in(dir, 0, "timeindex");
        CHECK(unlink(p) == 0);
        free(p);
        log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        CHECK(plog_offset_for_timestamp(log, T0 + 135, &offset, &ts) == 0);
        CHECK_EQ(offset, 9);
        CHECK(plog_offset_for_timestamp(log, T0 + 735, &offset, &ts) == 0);
        CHECK_EQ(offset, 39);
        plog_close(log);
        free(dir);
}

TEST(storage_read_ref_outlives_segment)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        cfg.segment_bytes = 500;
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        for (int i = 0; i < 6; i++) {
                struct batch_spec s = plain(2, T0);
                s.value_len = 60;
                struct plog_append_result res;
                CHECK_EQ(append_spec(log, &s, T0, &res), 0);
        }
        struct kafka_file_slice slice;
        CHECK(plog_read(log, 0, 1 << 20, &slice) == 0);
        CHECK(slice.len > 0);
        CHECK(plog_delete_records(log, 6) == 0);
        char *p = file_in(dir, 0, "log");
        CHECK(!file_exists(p));
        free(p);
        plog_close(log); /* even the log going away does not close the slice's fd */
        uint8_t *data = xmalloc((size_t)slice.len);
        size_t got;
        CHECK(fileio_pread(slice.fd, data, (size_t)slice.len, slice.pos, &got) == 0);
        CHECK_EQ(got, slice.len);
        int64_t first, next;
        CHECK_EQ(walk(data, slice.len, &first, &next), 2);
        CHECK_EQ(first, 0);
        free(data);
        slice.release(slice.ref);
        free(dir);
}

/* Deleting a log right after rolls leaves its seals to the sync thread, which must write
 * nothing into the directory once it is gone. */
TEST(storage_destroy_with_seals_in_flight)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        cfg.segment_bytes = 300;
        for (int round = 0; round < 20; round++) {
                int err;
                struct plog *log = plog_open(dir, &cfg, false, &err);
                CHECK(log != NULL);
                CHECK_EQ(append_pairs(log, 8), 0);
                CHECK(plog_segment_count(log) >= 4);
                CHECK_EQ(plog_destroy(log), 0);
                CHECK(!file_exists(dir));
        }
        free(dir);
}

TEST(storage_destroy_removes_dir)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        cfg.segment_bytes = 500;
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        for (int i = 0; i < 6; i++)
                CHECK_EQ(append_plain(log, 20, T0, T0), i * 20);
        CHECK(plog_delete_records(log, 30) == 0);
        CHECK(file_exists(dir));
        CHECK(plog_destroy(log) == 0);
        CHECK(!file_exists(dir));
        free(dir);
}

TEST(storage_open_odd_directories)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        CHECK(mkdir(dir, 0755) == 0);
        /* only an empty segment, a foreign file, a stray index and a leftover temp file */
        char *p = file_in(dir, 0, "log");
        int fd = open(p, O_CREAT | O_WRONLY, 0644);
        CHECK(fd >= 0);
        close(fd);
        free(p);
        char *foreign = xasprintf("%s/README.txt", dir);
        fd = open(foreign, O_CREAT | O_WRONLY, 0644);
        CHECK(fd >= 0);
        CHECK(write(fd, "hello", 5) == 5);
        close(fd);
        char *stray = file_in(dir, 50, "index");
        fd = open(stray, O_CREAT | O_WRONLY, 0644);
        CHECK(fd >= 0);
        CHECK(write(fd, "12345678", 8) == 8);
        close(fd);
        char *tmp = file_in(dir, 7, "snapshot.tmp");
        fd = open(tmp, O_CREAT | O_WRONLY, 0644);
        CHECK(fd >= 0);
        close(fd);
        int err;
        struct plog *log = plog_open(dir, &cfg, true, &err);
        CHECK(log != NULL);
        CHECK_EQ(plog_end_offset(log), 0);
        CHECK(file_exists(foreign));
        CHECK(!file_exists(stray));
        CHECK(!file_exists(tmp));
        CHECK_EQ(append_plain(log, 3, T0, T0), 0);
        plog_close(log);

        /* missing and corrupt index files are rebuilt on a plain open */
        cfg.index_interval_bytes = 100;
        cfg.segment_bytes = 3000;
        log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        for (int i = 0; i < 60; i++)
                CHECK_EQ(append_plain(log, 1, T0 + i, T0), 3 + i);
        CHECK(plog_segment_count(log) >= 2);
        plog_close(log);
        p = file_in(dir, 0, "index");
        CHECK(unlink(p) == 0);
        free(p);
        p = file_in(dir, 0, "timeindex");
        CHECK(truncate(p, 7) == 0);
        free(p);
        log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        CHECK_EQ(plog_end_offset(log), 63);
        p = file_in(dir, 0, "index");
        CHECK(file_size(p) > 0);
        CHECK_EQ(file_size(p) % 8, 0);
        free(p);
        for (int64_t offset = 0; offset < 63; offset += 7) {
                uint8_t *data;
                int32_t len;
                int64_t first, next;
                CHECK(read_slice(log, offset, 1, &data, &len) == 0);
                CHECK_EQ(walk(data, len, &first, &next), 1);
                CHECK(first <= offset && offset < next);
                free(data);
        }
        int64_t offset, ts;
        CHECK(plog_offset_for_timestamp(log, T0 + 20, &offset, &ts) == 0);
        CHECK_EQ(offset, 23);
        plog_close(log);
        free(foreign);
        free(stray);
        free(tmp);
        free(dir);
}

TEST(storage_append_failure_leaves_log_consistent)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        struct plog_append_result res;
        struct batch_spec s = idempotent(1, 61, 0, 0);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        /* make the next roll fail: a directory where the new segment file must go */
        char *blocker = file_in(dir, 1, "log");
        CHECK(mkdir(blocker, 0755) == 0);
        cfg.segment_bytes = 10;
        plog_set_config(log, &cfg);
        s = idempotent(1, 61, 0, 1);
        CHECK(append_spec(log, &s, T0, &res) < 0);
        CHECK_EQ(plog_end_offset(log), 1);
        CHECK_EQ(plog_segment_count(log), 1);
        CHECK(rmdir(blocker) == 0);
        /* the failed batch was not recorded: the retry is in sequence, not a duplicate */
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        CHECK(!res.duplicate);
        CHECK_EQ(res.base_offset, 1);
        CHECK_EQ(plog_segment_count(log), 2);
        plog_close(log);
        free(blocker);
        free(dir);
}

TEST(storage_wrong_index_entry_tolerated)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        cfg.index_interval_bytes = 100;
        cfg.segment_bytes = 4000;
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        for (int i = 0; i < 60; i++)
                CHECK_EQ(append_plain(log, 2, T0 + i, T0), 2 * i);
        CHECK(plog_segment_count(log) >= 2);
        plog_close(log);
        /* entries 1 and 2 of the first segment's index point into the middle of batches;
         * the last entry stays right, so the file passes the open-time check */
        char *p = file_in(dir, 0, "index");
        CHECK(file_size(p) >= 32);
        int fd = open(p, O_WRONLY);
        CHECK(fd >= 0);
        uint8_t entry[8];
        store_be32(entry, 10);
        store_be32(entry + 4, 37);
        CHECK(pwrite(fd, entry, 8, 8) == 8);
        store_be32(entry, 12);
        store_be32(entry + 4, 2);
        CHECK(pwrite(fd, entry, 8, 16) == 8);
        close(fd);
        free(p);
        log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        for (int64_t offset = 0; offset < 40; offset++) {
                uint8_t *data;
                int32_t len;
                int64_t first, next;
                CHECK(read_slice(log, offset, 300, &data, &len) == 0);
                CHECK(walk(data, len, &first, &next) >= 1);
                CHECK_EQ(first, offset / 2 * 2);
                free(data);
        }
        plog_close(log);
        free(dir);
}

TEST(storage_recover_large_batch)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        cfg.segment_bytes = 64 << 20;
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        CHECK_EQ(append_plain(log, 1, T0, T0), 0);
        struct batch_spec s = plain(1, T0);
        s.value_len = 9 << 20; /* CRC-checked in pieces during recovery */
        struct plog_append_result res;
        CHECK_EQ(append_spec(log, &s, T0, &res), 0);
        CHECK_EQ(append_plain(log, 1, T0, T0), 2);
        int64_t size = plog_size_bytes(log);
        plog_close(log);
        log = plog_open(dir, &cfg, true, &err);
        CHECK(log != NULL);
        CHECK_EQ(plog_end_offset(log), 3);
        CHECK_EQ(plog_size_bytes(log), size);
        plog_close(log);
        /* a flipped byte inside the large batch: it and everything after it go */
        char *p = file_in(dir, 0, "log");
        int fd = open(p, O_RDWR);
        CHECK(fd >= 0);
        uint8_t byte = 0;
        CHECK(pwrite(fd, &byte, 1, 5 << 20) == 1);
        close(fd);
        log = plog_open(dir, &cfg, true, &err);
        CHECK(log != NULL);
        CHECK_EQ(plog_end_offset(log), 1);
        CHECK(file_size(p) < 1000);
        plog_close(log);
        free(p);
        free(dir);
}

TEST(storage_write_failure_rolls_back)
{
        char *dir = log_dir();
        struct plog_config cfg = config();
        int err;
        struct plog *log = plog_open(dir, &cfg, false, &err);
        CHECK(log != NULL);
        struct plog_append_result res;
        struct batch_spec s = idempotent(1, 71, 0, 0);
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        int64_t size = plog_size_bytes(log);
        /* files may not grow past 4 KiB: the next write fails with EFBIG */
        struct rlimit old, lim;
        CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
        void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
        lim = old;
        lim.rlim_cur = 4096;
        CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
        s = idempotent(1, 71, 0, 1);
        s.value_len = 8000;
        int rc = append_spec(log, &s, T0, &res);
        setrlimit(RLIMIT_FSIZE, &old);
        signal(SIGXFSZ, old_handler);
        CHECK_EQ(rc, -EFBIG);
        CHECK_EQ(plog_end_offset(log), 1);
        CHECK_EQ(plog_size_bytes(log), size);
        char *p = file_in(dir, 0, "log");
        CHECK_EQ(file_size(p), size);
        free(p);
        /* nothing was recorded: the same batch now goes through at the same offset */
        CHECK_EQ(append_spec(log, &s, T0, &res), KAFKA_NONE);
        CHECK(!res.duplicate);
        CHECK_EQ(res.base_offset, 1);
        uint8_t *data;
        int32_t len;
        int64_t first, next;
        CHECK(read_slice(log, 0, 1 << 20, &data, &len) == 0);
        CHECK_EQ(walk(data, len, &first, &next), 2);
        CHECK_EQ(next, 2);
        free(data);
        plog_close(log);
        free(dir);
}

static char *slurp_small(const char *path)
{
        static char text[64];
        FILE *f = fopen(path, "r");
        if (!f)
                return NULL;
        size_t n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        text[n] = '\0';
        return text;
}

/* The seal thread syncs dup()s of the caller's descriptors and then writes the
 * recovery point; with no descriptor to spare it syncs the caller's own on the
 * calling thread, leaves them open, and does not move the recovery point. */
TEST(storage_syncer_background_and_out_of_descriptors)
{
        char *data = xasprintf("%s/data", test_tmpdir), *rp = xasprintf("%s/rp", test_tmpdir);
        int fd = open(data, O_RDWR | O_CREAT | O_TRUNC, 0644);
        CHECK(fd >= 0);
        CHECK(write(fd, "abc", 3) == 3);
        int fds[2] = { fd, -1 };
        struct sync_job *job = syncer_submit(fds, 2, test_tmpdir, rp, 42);
        CHECK(sync_job_wait(job) == 0);
        sync_job_free(job);
        CHECK(slurp_small(rp) && strcmp(slurp_small(rp), "42\n") == 0);

        struct rlimit old, lim;
        CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
        lim = old;
        lim.rlim_cur = 128;
        CHECK(setrlimit(RLIMIT_NOFILE, &lim) == 0);
        int fillers[128], nfill = 0;
        while (nfill < 128) {
                int f = dup(fd);
                if (f < 0)
                        break;
                fillers[nfill++] = f;
        }
        bool limited = nfill < 128;
        job = syncer_submit(fds, 2, test_tmpdir, rp, 99);
        int err = -1;
        bool done = sync_job_done(job, &err);
        bool still_open = fcntl(fd, F_GETFD) >= 0;
        sync_job_free(job);
        /* Descriptors and limit back before any CHECK can end the test. */
        for (int i = 0; i < nfill; i++)
                close(fillers[i]);
        CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
        CHECK(limited);    /* dup() did fail */
        CHECK(done);       /* synced before returning */
        CHECK(err == 0);
        CHECK(still_open); /* the caller's descriptor is not closed by the job */
        CHECK(strcmp(slurp_small(rp), "42\n") == 0); /* not moved by the inline sync */
        close(fd);
        free(data);
        free(rp);
}
