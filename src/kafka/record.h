/* Kafka record batches (magic 2). The broker stores batches as received; produce and
 * fetch only read and rewrite their fixed 61-byte header and check the records'
 * framing. Log compaction is the one reader of keys, and leaves compressed batches
 * closed. Layout, big-endian:
 *   0 base_offset i64 | 8 batch_length i32 | 12 partition_leader_epoch i32 |
 *   16 magic i8 | 17 crc u32 | 21 attributes i16 | 23 last_offset_delta i32 |
 *   27 base_timestamp i64 | 35 max_timestamp i64 | 43 producer_id i64 |
 *   51 producer_epoch i16 | 53 base_sequence i32 | 57 record_count i32 | 61 records
 * The CRC-32C covers attributes through the end, so base_offset and the leader
 * epoch can be rewritten without recomputing it. */
#ifndef STRATUS_KAFKA_RECORD_H
#define STRATUS_KAFKA_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RECORD_BATCH_HEADER_SIZE 61
/* Bytes before and including batch_length: a batch occupies 12 + batch_length. */
#define RECORD_BATCH_LOG_OVERHEAD 12

#define RECORD_ATTR_COMPRESSION_MASK 0x07
#define RECORD_ATTR_TIMESTAMP_LOG_APPEND 0x08
#define RECORD_ATTR_TRANSACTIONAL 0x10
#define RECORD_ATTR_CONTROL 0x20

enum record_codec { CODEC_NONE = 0, CODEC_GZIP = 1, CODEC_SNAPPY = 2, CODEC_LZ4 = 3, CODEC_ZSTD = 4 };

struct record_batch_header {
        int64_t base_offset;
        int32_t batch_length; /* bytes after this field */
        int32_t partition_leader_epoch;
        int8_t magic;
        uint32_t crc;
        int16_t attributes;
        int32_t last_offset_delta;
        int64_t base_timestamp;
        int64_t max_timestamp;
        int64_t producer_id;
        int16_t producer_epoch;
        int32_t base_sequence;
        int32_t record_count;
};

/* Parses the header at <p> (needs RECORD_BATCH_HEADER_SIZE bytes). Returns 0, or
 * -EINVAL when <len> is too short. Checks nothing else. */
int record_batch_header_parse(const uint8_t *p, size_t len, struct record_batch_header *h);

/* Total bytes of the batch at <p> (12 + batch_length), or -1 if <len> < 12. */
int64_t record_batch_size(const uint8_t *p, size_t len);

enum record_check {
        RECORD_OK = 0,
        RECORD_TRUNCATED,   /* fewer bytes than the batch says */
        RECORD_BAD_MAGIC,   /* magic is not 2 */
        RECORD_BAD_CRC,     /* CRC-32C mismatch */
        RECORD_CORRUPT,     /* impossible header values */
};

/* Validates one whole batch at <p> of exactly or at least its size: length sane,
 * magic 2, CRC-32C matches, record_count and last_offset_delta agree. */
enum record_check record_batch_check(const uint8_t *p, size_t len, struct record_batch_header *h);

/* Walks the records of an uncompressed batch (already checked with record_batch_check)
 * and verifies each one's framing: lengths that add up to the batch, offset deltas
 * that rise and stay within last_offset_delta, non-negative header key lengths. Compressed batches are not opened
 * (returns true). Returns false for a malformed record. */
bool record_batch_records_valid(const uint8_t *p, size_t size, const struct record_batch_header *h);

/* Called by record_batch_for_each_record() for each record: its offset delta, its key
 * (NULL with <key_len> -1 for a null key) and whether its value is null (a tombstone). */
typedef void record_visit_fn(void *ctx, int32_t offset_delta, const uint8_t *key, int64_t key_len, bool null_value);
/* Walks the records of an uncompressed batch of <size> bytes at <p> (checked with
 * record_batch_check), calling <fn> for each. Returns false, having called <fn> for
 * none, for a compressed batch or a malformed record. */
bool record_batch_for_each_record(const uint8_t *p, size_t size, const struct record_batch_header *h,
                                  record_visit_fn *fn, void *ctx);

/* Called by record_batch_filter() for each record (arguments as record_visit_fn):
 * whether the record stays. */
typedef bool record_keep_fn(void *ctx, int32_t offset_delta, const uint8_t *key, int64_t key_len, bool null_value);
/* Log compaction of one uncompressed batch of <size> bytes at <p> (checked with
 * record_batch_check): writes to <out> (room for <size> bytes) the batch with only the
 * records <keep> accepts, byte for byte. Base offset, last offset delta, timestamps and
 * producer fields stay, so every record keeps its offset (the batch gets gaps, as
 * Kafka's cleaner leaves them); length, record count and CRC are recomputed. Returns
 * the new size (RECORD_BATCH_HEADER_SIZE: no record stayed), or 0, having called
 * <keep> for none, for a compressed batch or a malformed record. */
size_t record_batch_filter(const uint8_t *p, size_t size, const struct record_batch_header *h,
                           record_keep_fn *keep, void *ctx, uint8_t *out);

/* The record count in the header of the batch at <p> (as record_batch_filter() wrote it). */
int32_t record_batch_record_count(const uint8_t *p);

/* Rewrites base_offset in place (outside the CRC). */
void record_batch_set_base_offset(uint8_t *p, int64_t base_offset);
void record_batch_set_leader_epoch(uint8_t *p, int32_t epoch);
/* Rewrites max_timestamp, sets the log-append-time attribute and recomputes the CRC. */
void record_batch_set_log_append_time(uint8_t *p, size_t len, int64_t timestamp_ms);

#endif
