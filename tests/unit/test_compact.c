/* Unit tests: log compaction (cleanup.policy=compact) on real segment files. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* A one-record batch with <key> (NULL: null key) and <value> (NULL: a tombstone). */
static void keyed_batch(struct buf *b, const char *key, const char *value, int64_t ts)
{
        size_t start = b->len;
        memset(buf_reserve(b, RECORD_BATCH_HEADER_SIZE), 0, RECORD_BATCH_HEADER_SIZE);
        b->len += RECORD_BATCH_HEADER_SIZE;
        uint8_t body[256];
        size_t n = 0;
        body[n++] = 0;
        n += put_varlong(body + n, 0);
        n += put_varlong(body + n, 0);
        n += put_varlong(body + n, key ? (int64_t)strlen(key) : -1);
        if (key) {
                memcpy(body + n, key, strlen(key));
                n += strlen(key);
        }
        n += put_varlong(body + n, value ? (int64_t)strlen(value) : -1);
        if (value) {
                memcpy(body + n, value, strlen(value));
                n += strlen(value);
        }
        n += put_varlong(body + n, 0);
        uint8_t len[10];
        buf_append(b, len, put_varlong(len, (int64_t)n));
        buf_append(b, body, n);
        uint8_t *h = b->data + start;
        size_t size = b->len - start;
        store_be32(h + 8, (uint32_t)(size - RECORD_BATCH_LOG_OVERHEAD));
        h[16] = 2;
        store_be32(h + 23, 0);
        store_be64(h + 27, (uint64_t)ts);
        store_be64(h + 35, (uint64_t)ts);
        store_be64(h + 43, (uint64_t)-1);
        store_be16(h + 51, (uint16_t)-1);
        store_be32(h + 53, (uint32_t)-1);
        store_be32(h + 57, 1);
        store_be32(h + 17, crc32c(0, h + 21, size - 21));
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
        int64_t offsets[256];
        char keys[256][16];
        bool tombstone[256];
        int n;
};

static void collect(void *arg, int32_t delta, const uint8_t *key, int64_t key_len, bool null_value)
{
        struct seen *s = arg;
        (void)delta;
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
                        s->offsets[s->n] = h.base_offset;
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

TEST(compaction_keeps_the_newest_record_of_every_key)
{
        char *dir = xasprintf("%s/compact-0", test_tmpdir);
        struct plog_config cfg = { .segment_bytes = 300, .segment_ms = 1LL << 40, .retention_ms = -1,
                                   .retention_bytes = -1, .index_interval_bytes = 64,
                                   .producer_expiration_ms = 1LL << 40, .cleanup_compact = true,
                                   .delete_retention_ms = 1000 };
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

        /* Reopened, the log reads the same (indexes rebuilt from the new files). */
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
