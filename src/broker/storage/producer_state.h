/* Idempotent-producer bookkeeping of one partition log (Kafka's ProducerStateManager):
 * per producer id the epoch, the last PRODUCER_BATCHES_KEPT batches (sequence and offset
 * ranges) and the time of its last append, plus snapshot files of that state.
 *
 * Snapshot file <dir>/<20-digit offset>.snapshot, big-endian, version 1:
 *   "STPS" | version u16 | 0 u16 | offset i64 | count u32 |
 *   count x (producer_id i64 | epoch i16 | last_timestamp i64 | nbatches u8 |
 *            nbatches x (first_seq i32 | last_seq i32 | first_offset i64 | last_offset i64)) |
 *   crc32c u32 of everything before it
 * A snapshot at offset N holds the state after every batch below N. It is written to a
 * temporary file and renamed, and a torn or corrupt one fails its CRC and is ignored.
 *
 * Entries are kept in an array sorted by producer id. Loop thread only. */
#ifndef STRATUS_BROKER_STORAGE_PRODUCER_STATE_H
#define STRATUS_BROKER_STORAGE_PRODUCER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafka/record.h"

#define PRODUCER_BATCHES_KEPT 5

struct producer_batch {
        int32_t first_seq;
        int32_t last_seq;
        int64_t first_offset;
        int64_t last_offset;
};

struct producer_entry {
        int64_t producer_id;
        int16_t epoch;
        uint8_t nbatches;                                   /* valid entries in batches[] */
        struct producer_batch batches[PRODUCER_BATCHES_KEPT]; /* oldest first */
        int64_t last_timestamp_ms;                          /* last append, for expiry */
};

struct producer_state {
        struct producer_entry *entries; /* sorted by producer_id */
        size_t count;
        size_t cap;
};

/* What producer_state_append() changed, so that a failed append can be undone. */
struct producer_undo {
        struct producer_undo_item *items;
        size_t count;
        size_t cap;
};

void producer_state_init(struct producer_state *ps);
void producer_state_deinit(struct producer_state *ps);
void producer_state_clear(struct producer_state *ps);

/* The entry of <producer_id>, or NULL. The pointer is valid until the next change. */
const struct producer_entry *producer_state_find(const struct producer_state *ps,
                                                 int64_t producer_id);

/* Checks batch <h>, which would take the offsets from <base_offset>, against the state.
 * Returns a Kafka error code. KAFKA_NONE with *<duplicate> set means the batch repeats
 * one of the cached ones, described in *<dup>; nothing is changed then. KAFKA_NONE
 * otherwise means the batch is in sequence and has been recorded (with <now_ms> as the
 * producer's last activity), the previous entry saved in <undo>. Batches without a
 * producer id, and control batches, pass unchecked and unrecorded. */
int16_t producer_state_append(struct producer_state *ps, const struct record_batch_header *h,
                              int64_t base_offset, int64_t now_ms, struct producer_undo *undo,
                              bool *duplicate, struct producer_batch *dup);

/* Records batch <h> (offsets as in its header) without checks: rebuilding the state
 * from the log. <timestamp_ms> is the producer's last activity. */
void producer_state_replay(struct producer_state *ps, const struct record_batch_header *h,
                           int64_t timestamp_ms);

void producer_undo_init(struct producer_undo *undo);
void producer_undo_deinit(struct producer_undo *undo);
/* Restores every entry saved in <undo>, newest first, and empties <undo>. */
void producer_state_rollback(struct producer_state *ps, struct producer_undo *undo);
/* Forgets what <undo> saved (the append is committed). */
void producer_undo_reset(struct producer_undo *undo);

/* Drops producers idle for more than <expiration_ms> at <now_ms> (none when
 * <expiration_ms> is negative). Returns how many were dropped. */
int producer_state_expire(struct producer_state *ps, int64_t now_ms, int64_t expiration_ms);

/* Returns the path of the snapshot at <offset> in <dir>; the caller frees it. */
char *producer_snapshot_path(const char *dir, int64_t offset);

/* Writes the state as the snapshot at <offset> in <dir> (durably, via rename). */
int producer_state_write_snapshot(const struct producer_state *ps, const char *dir,
                                  int64_t offset);

/* Replaces the state with the snapshot at <offset> in <dir>. Returns 0, -EBADMSG for a
 * torn or corrupt file (the state is then left empty), or another negative errno. */
int producer_state_read_snapshot(struct producer_state *ps, const char *dir, int64_t offset);

#endif
