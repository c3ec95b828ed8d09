/* Record batch header parsing and validation. */
#include "kafka/record.h"

#include <errno.h>
#include <string.h>

#include "base/crc32c.h"
#include "base/fileio.h"
#include "kafka/wire.h"

int record_batch_header_parse(const uint8_t *p, size_t len, struct record_batch_header *h)
{
        if (len < RECORD_BATCH_HEADER_SIZE)
                return -EINVAL;
        h->base_offset = (int64_t)load_be64(p);
        h->batch_length = (int32_t)load_be32(p + 8);
        h->partition_leader_epoch = (int32_t)load_be32(p + 12);
        h->magic = (int8_t)p[16];
        h->crc = load_be32(p + 17);
        h->attributes = (int16_t)(p[21] << 8 | p[22]);
        h->last_offset_delta = (int32_t)load_be32(p + 23);
        h->base_timestamp = (int64_t)load_be64(p + 27);
        h->max_timestamp = (int64_t)load_be64(p + 35);
        h->producer_id = (int64_t)load_be64(p + 43);
        h->producer_epoch = (int16_t)(p[51] << 8 | p[52]);
        h->base_sequence = (int32_t)load_be32(p + 53);
        h->record_count = (int32_t)load_be32(p + 57);
        return 0;
}

int64_t record_batch_size(const uint8_t *p, size_t len)
{
        if (len < RECORD_BATCH_LOG_OVERHEAD)
                return -1;
        return RECORD_BATCH_LOG_OVERHEAD + (int64_t)(int32_t)load_be32(p + 8);
}

enum record_check record_batch_check(const uint8_t *p, size_t len, struct record_batch_header *h)
{
        if (len < RECORD_BATCH_LOG_OVERHEAD + 5)
                return RECORD_TRUNCATED;
        if (p[16] != 2)
                return RECORD_BAD_MAGIC;
        if (record_batch_header_parse(p, len, h) < 0)
                return RECORD_TRUNCATED;
        if (h->batch_length < RECORD_BATCH_HEADER_SIZE - RECORD_BATCH_LOG_OVERHEAD)
                return RECORD_CORRUPT;
        size_t size = RECORD_BATCH_LOG_OVERHEAD + (size_t)h->batch_length;
        if (size > len)
                return RECORD_TRUNCATED;
        if (h->record_count < 0 || h->last_offset_delta < 0 ||
            (h->record_count > 0 && h->last_offset_delta < h->record_count - 1))
                return RECORD_CORRUPT;
        if (crc32c(0, p + 21, size - 21) != h->crc)
                return RECORD_BAD_CRC;
        return RECORD_OK;
}

/* Skips a length-prefixed field of <len> bytes (-1 = null when <nullable>). */
static inline bool skip_bytes(const uint8_t **p, const uint8_t *end, int64_t len, bool nullable)
{
        if (len == -1 && nullable)
                return true;
        if (len < 0 || len > end - *p)
                return false;
        *p += len;
        return true;
}

bool record_batch_records_valid(const uint8_t *batch, size_t size, const struct record_batch_header *h)
{
        if (h->attributes & RECORD_ATTR_COMPRESSION_MASK)
                return true;
        const uint8_t *p = batch + RECORD_BATCH_HEADER_SIZE, *end = batch + size;
        int64_t prev_delta = -1;
        for (int32_t i = 0; i < h->record_count; i++) {
                int64_t len, timestamp_delta, offset_delta, key_len, value_len, headers;
                if (!kafka_take_varlong(&p, end, &len) || len < 0 || len > end - p)
                        return false;
                const uint8_t *rec_end = p + len;
                if (p == rec_end)
                        return false;
                p++; /* attributes */
                /* Offset deltas rise; a compacted batch has gaps (produce.c also
                 * checks last_offset_delta == record_count - 1, which makes them dense). */
                if (!kafka_take_varlong(&p, rec_end, &timestamp_delta) || !kafka_take_varlong(&p, rec_end, &offset_delta) ||
                    offset_delta <= prev_delta || offset_delta > h->last_offset_delta ||
                    !kafka_take_varlong(&p, rec_end, &key_len) || !skip_bytes(&p, rec_end, key_len, true) ||
                    !kafka_take_varlong(&p, rec_end, &value_len) || !skip_bytes(&p, rec_end, value_len, true) ||
                    !kafka_take_varlong(&p, rec_end, &headers) || headers < 0)
                        return false;
                for (int64_t j = 0; j < headers; j++) {
                        int64_t hk, hv;
                        if (!kafka_take_varlong(&p, rec_end, &hk) || !skip_bytes(&p, rec_end, hk, false) ||
                            !kafka_take_varlong(&p, rec_end, &hv) || !skip_bytes(&p, rec_end, hv, true))
                                return false;
                }
                if (p != rec_end)
                        return false;
                prev_delta = offset_delta;
        }
        return p == end;
}

/* The fields record_visit_fn and record_keep_fn see of the record at *<p> (whose
 * framing record_batch_records_valid checked); advances *<p> past it. */
struct record_view {
        int32_t offset_delta;
        const uint8_t *key;
        int64_t key_len;
        bool null_value;
};

static void take_record(const uint8_t **p, const uint8_t *end, struct record_view *r)
{
        int64_t len = 0, timestamp_delta = 0, offset_delta = 0, key_len = -1, value_len = -1;
        kafka_take_varlong(p, end, &len);
        const uint8_t *rec_end = *p + len;
        (*p)++; /* attributes */
        kafka_take_varlong(p, rec_end, &timestamp_delta);
        kafka_take_varlong(p, rec_end, &offset_delta);
        kafka_take_varlong(p, rec_end, &key_len);
        r->offset_delta = (int32_t)offset_delta;
        r->key = key_len >= 0 ? *p : NULL;
        r->key_len = key_len;
        if (key_len > 0)
                *p += key_len;
        kafka_take_varlong(p, rec_end, &value_len);
        r->null_value = value_len < 0;
        *p = rec_end;
}

bool record_batch_for_each_record(const uint8_t *batch, size_t size, const struct record_batch_header *h,
                                  record_visit_fn *fn, void *ctx)
{
        if ((h->attributes & RECORD_ATTR_COMPRESSION_MASK) || !record_batch_records_valid(batch, size, h))
                return false;
        /* Framing checked above: the walk below cannot run past <size>. */
        const uint8_t *p = batch + RECORD_BATCH_HEADER_SIZE, *end = batch + size;
        for (int32_t i = 0; i < h->record_count; i++) {
                struct record_view r;
                take_record(&p, end, &r);
                fn(ctx, r.offset_delta, r.key, r.key_len, r.null_value);
        }
        return true;
}

size_t record_batch_filter(const uint8_t *batch, size_t size, const struct record_batch_header *h,
                           record_keep_fn *keep, void *ctx, uint8_t *out)
{
        if ((h->attributes & RECORD_ATTR_COMPRESSION_MASK) || !record_batch_records_valid(batch, size, h))
                return 0;
        const uint8_t *p = batch + RECORD_BATCH_HEADER_SIZE, *end = batch + size;
        size_t n = RECORD_BATCH_HEADER_SIZE;
        int32_t kept = 0;
        for (int32_t i = 0; i < h->record_count; i++) {
                const uint8_t *start = p;
                struct record_view r;
                take_record(&p, end, &r);
                if (!keep(ctx, r.offset_delta, r.key, r.key_len, r.null_value))
                        continue;
                memcpy(out + n, start, (size_t)(p - start));
                n += (size_t)(p - start);
                kept++;
        }
        /* The header stays but for the length, the count and the CRC: the base offset,
         * last offset delta and timestamps keep every record's offset and time, and the
         * batch's producer fields keep the idempotence state replayable. */
        memcpy(out, batch, RECORD_BATCH_HEADER_SIZE);
        store_be32(out + 8, (uint32_t)(n - RECORD_BATCH_LOG_OVERHEAD));
        store_be32(out + 57, (uint32_t)kept);
        store_be32(out + 17, crc32c(0, out + 21, n - 21));
        return n;
}

int32_t record_batch_record_count(const uint8_t *p)
{
        return (int32_t)load_be32(p + 57);
}

void record_batch_set_base_offset(uint8_t *p, int64_t base_offset)
{
        store_be64(p, (uint64_t)base_offset);
}

void record_batch_set_leader_epoch(uint8_t *p, int32_t epoch)
{
        store_be32(p + 12, (uint32_t)epoch);
}

void record_batch_set_log_append_time(uint8_t *p, size_t len, int64_t timestamp_ms)
{
        store_be64(p + 35, (uint64_t)timestamp_ms);
        p[22] |= RECORD_ATTR_TIMESTAMP_LOG_APPEND;
        store_be32(p + 17, crc32c(0, p + 21, len - 21));
}
