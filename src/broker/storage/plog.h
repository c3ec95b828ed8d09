/* A partition log: one directory of segments holding record batches as received.
 *
 *   <dir>/00000000000000000000.log        batches, back to back, offsets assigned here
 *   <dir>/00000000000000000000.index      sparse offset index (relative offset, file position)
 *   <dir>/00000000000000000000.timeindex  time index (max timestamp so far, relative offset)
 *   <dir>/00000000000000001234.snapshot   producer state as of offset 1234
 *   <dir>/log-start-offset                the log start offset, once DeleteRecords moved it
 *   <dir>/recovery-point                  segments from this offset on may be torn after a crash
 *
 * Appends go to the page cache; plog_sync() makes them durable (the broker calls it before
 * acknowledging when flush-on-append is configured). A rolled segment is fsynced on the
 * sync thread (syncer.h), as Kafka does, so that a roll never stalls the loop; when that
 * is done the recovery point moves to the next segment. After a crash, recovery scans the
 * segments from the recovery point on (normally only the active one; at most two rolled
 * segments have their sync in flight, a roll waits when there would be more), truncates
 * each to its last valid batch and rebuilds its indexes, so
 * recovery time is bounded by segment size, not log size. Without a recovery-point file
 * (a log never rolled, or written before the file existed) every segment is scanned.
 *
 * Idempotent producers: per producer id the log keeps the epoch and the last 5 batches
 * (first/last sequence, first/last offset), so a retried batch is answered with its
 * original offsets; producer state is snapshotted at each roll and at close and rebuilt
 * from batch headers after the snapshot on open.
 *
 * Loop thread only: nothing here locks. */
#ifndef STRATUS_BROKER_STORAGE_PLOG_H
#define STRATUS_BROKER_STORAGE_PLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafka/wire.h"

struct plog;

struct plog_config {
        int64_t segment_bytes;        /* log.segment.bytes: roll when the active segment would pass this */
        int64_t segment_ms;           /* log.roll.ms: roll a non-empty segment older than this */
        int64_t retention_ms;         /* log.retention.ms, -1 = keep forever */
        int64_t retention_bytes;      /* log.retention.bytes per partition, -1 = no limit */
        int32_t index_interval_bytes; /* log.index.interval.bytes: bytes between index entries */
        int32_t leader_epoch;         /* stamped into each appended batch */
        int64_t producer_expiration_ms; /* producer.id.expiration.ms: forget idle producers */
        bool cleanup_delete;          /* cleanup.policy has "delete": retention deletes segments */
        bool cleanup_compact;         /* cleanup.policy has "compact": plog_compact() cleans */
        int64_t delete_retention_ms;  /* delete.retention.ms: how long compaction keeps tombstones */
};

/* Opens (creating if absent) the partition log in <dir>. With <recover> (after an
 * unclean shutdown), the segments from the recovery point on are scanned, each torn or
 * corrupt tail truncated and their indexes rebuilt; without, the indexes on disk are
 * trusted when they look sane.
 * Returns the log, or NULL with *<err> a negative errno. <cfg> is copied. */
struct plog *plog_open(const char *dir, const struct plog_config *cfg, bool recover, int *err);

/* Writes a producer-state snapshot, syncs and closes. plog_close(NULL) does nothing. */
void plog_close(struct plog *log);

/* Closes <log> and removes its directory and all its files. */
int plog_destroy(struct plog *log);

/* Replaces the configuration (retention, segment size...) of an open log. */
void plog_set_config(struct plog *log, const struct plog_config *cfg);

struct plog_append_result {
        int16_t error_code;       /* KAFKA_NONE, or the Kafka error for the whole record set */
        int64_t base_offset;      /* first offset of the set (original offsets if a duplicate) */
        int64_t last_offset;      /* last offset of the set */
        int64_t log_start_offset; /* after the append */
        bool duplicate;           /* the set was a retried duplicate and was not written again */
};

/* Appends the record set <data, len> (one or more batches, already checked with
 * record_batch_check()). Assigns offsets by rewriting each base_offset in place (so
 * <data> is modified) and stamps the leader epoch. For batches with a producer id,
 * checks sequences: a duplicate of one of the last 5 batches of that producer returns
 * its original offsets and writes nothing; a gap gives OUT_OF_ORDER_SEQUENCE_NUMBER; an
 * unknown producer with a non-zero sequence gives UNKNOWN_PRODUCER_ID; an older epoch
 * gives INVALID_PRODUCER_EPOCH (those write nothing). Rolls the segment first if needed.
 * Returns 0 (with the Kafka outcome in *<res>) or a negative errno on I/O failure, in
 * which case nothing of the set is visible. */
int plog_append(struct plog *log, uint8_t *data, size_t len, int64_t now_ms,
                struct plog_append_result *res);

/* fdatasyncs what was appended since the last sync. Returns 0 or a negative errno. */
int plog_sync(struct plog *log);

int64_t plog_start_offset(const struct plog *log); /* first offset readable */
int64_t plog_end_offset(const struct plog *log);   /* next offset to assign (high watermark) */
int64_t plog_size_bytes(const struct plog *log);   /* all segments */
int plog_segment_count(const struct plog *log);

/* Finds the bytes to serve a fetch from <offset>: whole batches starting with the one
 * that contains <offset>, from one segment, at most <max_bytes> but always at least one
 * whole batch when there is one. *<out> gets the segment's fd, position and length, and
 * a reference (out->ref/out->release) that keeps the fd open until released, even if the
 * segment is deleted meanwhile. out->len is 0 at the end of the log (out->release is
 * NULL then: there is nothing to release).
 * Returns 0, -ERANGE when <offset> is below the log start or above the end, or another
 * negative errno when the segment cannot be read (-EBADMSG: corrupt there). */
int plog_read(struct plog *log, int64_t offset, int32_t max_bytes, struct kafka_file_slice *out);

/* ListOffsets by time: the offset and timestamp of the first record whose timestamp is
 * >= <timestamp_ms> (exact within uncompressed batches; the batch's base offset for
 * compressed ones). Returns 0, -ENOENT when no record is that late, or another negative
 * errno on a read failure. */
int plog_offset_for_timestamp(struct plog *log, int64_t timestamp_ms, int64_t *offset,
                              int64_t *found_timestamp_ms);

/* The largest timestamp in the log and the offset of the batch holding it (ListOffsets
 * MAX_TIMESTAMP). Returns 0, or -ENOENT for an empty log. */
int plog_max_timestamp(struct plog *log, int64_t *offset, int64_t *timestamp_ms);

/* DeleteRecords: moves the log start offset up to <offset> (persisted), deleting whole
 * segments below it. Returns 0, or -ERANGE when <offset> is above the end. */
int plog_delete_records(struct plog *log, int64_t offset);

/* Deletes closed segments past retention by time (largest timestamp older than
 * now - retention_ms) and by size (oldest first while the log is over retention_bytes),
 * and rolls the active segment when log.roll.ms has passed (or when it is itself past
 * time retention, so that it can go too). Also forgets producers idle for longer than
 * producer_expiration_ms. Returns the number of segments deleted. */
int plog_enforce_retention(struct plog *log, int64_t now_ms);

/* Log compaction (cleanup.policy=compact): keeps at least the newest record of every
 * key. Closed segments written since the last pass are cleaned: a record goes when a
 * newer record of the same key follows it in the log, and a tombstone once it is older
 * than delete_retention_ms (with every older value of its key, which goes first). Each
 * batch is kept, filtered (record_batch_filter: same base and last offset, so offsets
 * keep their values and gain gaps, which consumers skip) or dropped when nothing of it
 * stays; a closed segment keeps its offset range even when it ends up empty, so the log
 * start offset never moves. Kept as they are: the active segment, compressed batches
 * (not opened; their keys do not make older records obsolete, and while the log holds
 * any, tombstones are kept too) and records without a key. Each pass reads the whole
 * log (up to its end when the pass starts) and writes the cleaned copies into a
 * "cleaning" directory beside the segments (removed at open if a crash left it), then
 * swaps them in. Runs on the calling thread. Returns 0 with what was done in *<st>, or a
 * negative errno (the log is consistent). */
struct plog_compact_stats {
        int segments_cleaned;
        int64_t records_removed;
        int64_t batches_removed; /* of those, batches of which nothing stayed */
        int64_t bytes_removed;
};
int plog_compact(struct plog *log, int64_t now_ms, struct plog_compact_stats *st);
/* The same pass off the loop thread, for the broker's cleaner timer: finishes the log's
 * pass when its thread is done (swapping in the cleaned segments still in the log as the
 * pass saw them; what it did in *<st>), or starts one when due and no other pass runs in
 * the process (one at a time). Returns 1 while this log's pass is under way (call again
 * later), 0 when none is, or the negative errno of a failed pass (retried when next
 * due). Closing or destroying the log stops a pass and waits for its thread. */
int plog_compact_background(struct plog *log, int64_t now_ms, struct plog_compact_stats *st);

#endif
