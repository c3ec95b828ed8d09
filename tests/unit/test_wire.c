/* Unit tests: CRC-32C, wire primitives, arena budget, record batch checks. */
#include <stdlib.h>
#include <string.h>

#include "base/crc32c.h"
#include "base/fileio.h"
#include "kafka/api.h"
#include "kafka/record.h"
#include "kafka/wire.h"
#include "test.h"

TEST(crc32c_known_vectors)
{
        /* RFC 3720 B.4 test vectors and the classic "123456789" check value. */
        CHECK_EQ(crc32c(0, "123456789", 9), 0xe3069283u);
        uint8_t zeros[32] = { 0 };
        CHECK_EQ(crc32c(0, zeros, 32), 0x8a9136aau);
        uint8_t ones[32];
        memset(ones, 0xff, sizeof(ones));
        CHECK_EQ(crc32c(0, ones, 32), 0x62a8ab43u);
        uint8_t inc[32];
        for (int i = 0; i < 32; i++)
                inc[i] = (uint8_t)i;
        CHECK_EQ(crc32c(0, inc, 32), 0x46dd794eu);
        /* Incremental equals one-shot, at unaligned split points. */
        CHECK_EQ(crc32c(crc32c(0, inc, 13), inc + 13, 19), 0x46dd794eu);
}

/* Bit at a time, straight from the definition. */
static uint32_t crc32c_bitwise(const uint8_t *p, size_t len)
{
        uint32_t crc = 0xffffffffu;
        while (len--) {
                crc ^= *p++;
                for (int k = 0; k < 8; k++)
                        crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
        }
        return ~crc;
}

/* Long buffers go through three interleaved lanes (of 4096 and of 256 bytes) that are
 * joined: every length around those steps, at every alignment, split or not, agrees
 * with the definition. */
TEST(crc32c_long_buffers_match_the_definition)
{
        size_t max = 3 * 4096 * 2 + 3 * 256 + 64;
        uint8_t *b = malloc(max + 8);
        uint32_t x = 12345;
        for (size_t i = 0; i < max + 8; i++) {
                x = x * 1103515245u + 12345u;
                b[i] = (uint8_t)(x >> 16);
        }
        const size_t lens[] = { 0, 1, 255, 767, 768, 769, 1543, 12287, 12288, 12289, 13055, 13056, 13063,
                                24576, 24576 + 768 + 7, max };
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
                for (size_t off = 0; off < 8; off += 3) {
                        size_t n = lens[i];
                        uint32_t want = crc32c_bitwise(b + off, n);
                        CHECK_EQ(crc32c(0, b + off, n), want);
                        CHECK_EQ(crc32c(crc32c(0, b + off, n / 3), b + off + n / 3, n - n / 3), want);
                }
        free(b);
}

TEST(wire_varints_round_trip)
{
        struct buf b;
        buf_init(&b);
        struct kafka_writer w;
        kafka_writer_init(&w, &b);
        const int64_t longs[] = { 0, 1, -1, 63, -64, 64, 300, -300, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN };
        for (size_t i = 0; i < sizeof(longs) / sizeof(longs[0]); i++)
                kafka_write_varlong(&w, longs[i]);
        const int32_t ints[] = { 0, -1, 1, 1000000, INT32_MAX, INT32_MIN };
        for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
                kafka_write_varint(&w, ints[i]);
        kafka_write_uvarint(&w, UINT32_MAX);
        kafka_write_str(&w, kafka_str_c("hello"), true);
        kafka_write_str(&w, (struct kafka_str){ NULL, -1 }, true);
        kafka_write_str(&w, kafka_str_c("abc"), false);
        struct kafka_reader r = kafka_reader_from(b.data, b.len, NULL);
        for (size_t i = 0; i < sizeof(longs) / sizeof(longs[0]); i++)
                CHECK(kafka_read_varlong(&r) == longs[i]);
        for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
                CHECK_EQ(kafka_read_varint(&r), ints[i]);
        CHECK(kafka_read_uvarint(&r) == UINT32_MAX);
        CHECK(kafka_str_eq(kafka_read_str(&r, true), "hello"));
        CHECK_EQ(kafka_read_str(&r, true).len, -1);
        CHECK(kafka_str_eq(kafka_read_str(&r, false), "abc"));
        CHECK(!r.failed);
        CHECK_EQ(kafka_reader_left(&r), 0);
        kafka_read_i8(&r);
        CHECK(r.failed); /* sticky from here on */
        kafka_writer_deinit(&w);
        buf_deinit(&b);
}

TEST(wire_rejects_lengths_past_end)
{
        /* A string claiming 100 bytes with 3 present. */
        const uint8_t s[] = { 0, 100, 'a', 'b', 'c' };
        struct kafka_reader r = kafka_reader_from(s, sizeof(s), NULL);
        kafka_read_str(&r, false);
        CHECK(r.failed);
        /* An array count of 2^31-1 with 4 bytes left must fail before allocating. */
        const uint8_t a[] = { 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1 };
        struct kafka_arena arena;
        kafka_arena_init(&arena, 1 << 20);
        r = kafka_reader_from(a, sizeof(a), &arena);
        int32_t n = kafka_read_array_len(&r, false, 4);
        CHECK(r.failed);
        CHECK_EQ(n, -1);
        CHECK_EQ(arena.used, 0);
        /* A varint that never ends. */
        const uint8_t v[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
        r = kafka_reader_from(v, sizeof(v), NULL);
        kafka_read_uvarint(&r);
        CHECK(r.failed);
        /* Negative lengths other than -1 are invalid. */
        const uint8_t neg[] = { 0xff, 0xfe };
        r = kafka_reader_from(neg, sizeof(neg), NULL);
        kafka_read_str(&r, false);
        CHECK(r.failed);
        kafka_arena_deinit(&arena);
}

TEST(wire_arena_budget)
{
        struct kafka_arena arena;
        kafka_arena_init(&arena, 1000);
        CHECK(kafka_arena_alloc(&arena, 500) != NULL);
        CHECK(kafka_arena_alloc(&arena, 400) != NULL);
        CHECK(kafka_arena_alloc(&arena, 200) == NULL);
        kafka_arena_deinit(&arena);
}

/* A valid one-record uncompressed batch. */
static size_t make_batch(uint8_t *out)
{
        memset(out, 0, 80);
        const uint8_t record[] = { 0x12, 0, 0, 0, 0x02, 'k', 0x04, 'v', 'v', 0 }; /* length 9 */
        size_t len = 61 + sizeof(record);
        out[11] = (uint8_t)(len - 12); /* batch_length */
        out[16] = 2;                   /* magic */
        memset(out + 43, 0xff, 8);     /* producer id -1 */
        out[51] = 0xff, out[52] = 0xff;
        memset(out + 53, 0xff, 4);     /* base sequence -1 */
        out[60] = 1;                   /* record count */
        memcpy(out + 61, record, sizeof(record));
        uint32_t crc = crc32c(0, out + 21, len - 21);
        out[17] = (uint8_t)(crc >> 24), out[18] = (uint8_t)(crc >> 16);
        out[19] = (uint8_t)(crc >> 8), out[20] = (uint8_t)crc;
        return len;
}

TEST(record_batch_check_detects_corruption)
{
        uint8_t b[80];
        size_t len = make_batch(b);
        struct record_batch_header h;
        CHECK_EQ(record_batch_check(b, len, &h), RECORD_OK);
        CHECK_EQ(h.record_count, 1);
        CHECK_EQ(h.producer_id, -1);
        /* Offsets live outside the CRC. */
        record_batch_set_base_offset(b, 12345);
        CHECK_EQ(record_batch_check(b, len, &h), RECORD_OK);
        CHECK_EQ(h.base_offset, 12345);
        CHECK_EQ(record_batch_check(b, len - 1, &h), RECORD_TRUNCATED);
        b[70] ^= 1;
        CHECK_EQ(record_batch_check(b, len, &h), RECORD_BAD_CRC);
        b[70] ^= 1;
        b[16] = 1;
        CHECK_EQ(record_batch_check(b, len, &h), RECORD_BAD_MAGIC);
        b[16] = 2;
        /* Log-append time rewrites the CRC so the batch stays valid. */
        record_batch_set_log_append_time(b, len, 1700000000000);
        CHECK_EQ(record_batch_check(b, len, &h), RECORD_OK);
        CHECK(h.attributes & RECORD_ATTR_TIMESTAMP_LOG_APPEND);
        CHECK(h.max_timestamp == 1700000000000);
}

TEST(response_frame_sizes_with_file_slices)
{
        /* Two queued responses: the first ends with records held in a file slice, the
         * second starts right where that slice sits in the buffer. Each frame's size must
         * count only its own slices. */
        struct buf b;
        buf_init(&b);
        struct kafka_writer w;
        kafka_writer_init(&w, &b);
        size_t first = kafka_response_begin(&w, 1, false);
        kafka_write_i32(&w, 7);
        struct kafka_file_slice slice = { .fd = -1, .pos = 0, .len = 1000 };
        struct kafka_records rec = { NULL, 1000, &slice };
        kafka_write_records(&w, rec, false);
        kafka_response_finish(&w, first);
        size_t second = kafka_response_begin(&w, 2, false);
        kafka_write_i32(&w, 9);
        kafka_response_finish(&w, second);
        /* first: corr(4) + i32(4) + records length(4) + 1000 slice bytes */
        CHECK_EQ(load_be32(b.data + first), 4 + 4 + 4 + 1000);
        /* second: corr(4) + i32(4), none of the first one's slice */
        CHECK_EQ(load_be32(b.data + second), 8);
        CHECK_EQ(kafka_writer_size(&w), b.len + 1000);
        kafka_writer_deinit(&w);
        buf_deinit(&b);
}

TEST(record_batch_records_validated)
{
        uint8_t b[80];
        size_t len = make_batch(b);
        struct record_batch_header h;
        CHECK_EQ(record_batch_check(b, len, &h), RECORD_OK);
        CHECK(record_batch_records_valid(b, len, &h));
        /* A record whose key length runs past its record: CRC still valid, framing not. */
        b[61 + 4] = 0x40; /* key length varint 32 */
        uint32_t crc = crc32c(0, b + 21, len - 21);
        b[17] = (uint8_t)(crc >> 24), b[18] = (uint8_t)(crc >> 16);
        b[19] = (uint8_t)(crc >> 8), b[20] = (uint8_t)crc;
        CHECK_EQ(record_batch_check(b, len, &h), RECORD_OK);
        CHECK(!record_batch_records_valid(b, len, &h));
        /* A wrong offset delta. */
        len = make_batch(b);
        b[61 + 3] = 0x02; /* offset delta 1 for the first record */
        CHECK(!record_batch_records_valid(b, len, &h));
}
