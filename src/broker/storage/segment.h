/* One log segment: <base>.log holding record batches back to back, with its sparse
 * offset index and time index (index.h). The in-memory size is authoritative: bytes past
 * it (a failed write, a torn tail) are never read and are overwritten by the next append.
 *
 * The .log descriptor lives in a refcounted struct segment_file, so a fetch can keep
 * sending from a segment that retention deletes meanwhile. Loop thread only. */
#ifndef STRATUS_BROKER_STORAGE_SEGMENT_H
#define STRATUS_BROKER_STORAGE_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/storage/index.h"
#include "broker/storage/syncer.h"
#include "kafka/record.h"

struct segment_file {
        int fd;   /* the .log file, closed when the last reference goes */
        int refs; /* the segment's own reference plus one per read slice */
        bool unlinked; /* deleted or replaced: the last close (slow) runs on the sync thread */
};

/* Drops one reference to a struct segment_file (<ref>); the kafka_file_slice release
 * callback of plog_read(). */
void segment_file_release(void *ref);

struct segment {
        int64_t base_offset;
        int64_t end_offset;           /* next offset after the last batch */
        int64_t size_bytes;           /* valid bytes in the .log file */
        int64_t rolling_base_ms;      /* when the first batch came (log.roll.ms), -1 if empty */
        int64_t max_timestamp;        /* largest batch max_timestamp, -1 when none */
        int64_t max_timestamp_offset; /* base offset of the first batch with it */
        int64_t bytes_since_index;    /* bytes since the last offset index entry's batch */
        bool dirty;                   /* appended since the last sync */
        struct segment_file *file;
        char *path;                   /* the .log file */
        struct index offset_index;
        struct index time_index;
};

/* Creates an empty segment at <base_offset> in <dir>, replacing any file of that name.
 * Returns it, or NULL with *<err> a negative errno. */
struct segment *segment_create(const char *dir, int64_t base_offset, int *err);

/* Opens the existing segment at <base_offset> in <dir>. A closed segment is followed by
 * one starting at <next_base>; pass -1 for the last (active) segment. With <verify> the
 * segment is checked batch by batch (CRC included), cut after the last valid batch and
 * its indexes rebuilt (crash recovery); otherwise index files are trusted when sane and
 * rebuilt when not. <index_interval_bytes> spaces rebuilt offset index entries.
 * Returns the segment, or NULL with *<err> a negative errno. */
struct segment *segment_open(const char *dir, int64_t base_offset, int64_t next_base,
                             bool verify, int32_t index_interval_bytes, int *err);

/* Closes the segment (its file stays open while read slices hold it). NULL is fine. */
void segment_free(struct segment *seg);

/* Deletes the segment's files and frees it. Returns 0 or the first unlink error. */
int segment_delete(struct segment *seg);

/* Appends <data, len>: whole batches whose offsets are already assigned, following on
 * from end_offset. Adds index entries every <index_interval_bytes> and whenever the max
 * timestamp grows; <now_ms> starts the roll clock of an empty segment. Returns 0 or a
 * negative errno, in which case the segment is as before. */
int segment_append(struct segment *seg, const uint8_t *data, size_t len,
                   int32_t index_interval_bytes, int64_t now_ms);

/* fdatasyncs the .log file if anything was appended since the last sync. */
int segment_sync(struct segment *seg);

/* Makes the segment durable before it stops being active: syncs the .log and index
 * files, then closes the index descriptors (they reopen on demand). */
int segment_seal(struct segment *seg);

/* segment_seal() on the sync thread (syncer.h): queues the fsyncs of the .log and index
 * files, after which <recovery_point> is written to <recovery_path> in <dir>; closes the
 * index descriptors at once. Returns the job, owned by the caller. */
struct sync_job *segment_seal_async(struct segment *seg, const char *dir, const char *recovery_path,
                                    int64_t recovery_point);

/* Finds the batch that contains <offset>, or the first one after it: its position in
 * *<pos> and its header in *<h>. Returns 0, -ENOENT when no batch ends at or after
 * <offset>, -EBADMSG when the file is corrupt there, or another negative errno. */
int segment_find_batch(struct segment *seg, int64_t offset, int64_t *pos,
                       struct record_batch_header *h);

/* Reads the header of the batch at <pos> (a batch boundary below size_bytes) with one
 * pread. Returns 0, -EBADMSG for an implausible header, or another negative errno. */
int segment_batch_at(struct segment *seg, int64_t pos, struct record_batch_header *h);

/* The largest batch boundary in [<from>, <limit>], for cutting reads at whole batches;
 * <from> must itself be a boundary, where offset *<next_offset> starts. Returns <from>
 * when nothing more fits; *<next_offset> becomes the offset after the batches below the
 * returned boundary. */
int64_t segment_boundary_before(struct segment *seg, int64_t from, int64_t limit, int64_t *next_offset);

/* The first record at or after <min_offset> whose timestamp is >= <target_ms>: exact in
 * uncompressed batches, the batch itself (from <min_offset>) in compressed ones.
 * Returns 0 with *<offset> and *<timestamp_ms>, -ENOENT when there is none here, or a
 * negative errno. */
int segment_find_timestamp(struct segment *seg, int64_t target_ms, int64_t min_offset,
                           int64_t *offset, int64_t *timestamp_ms);

/* Called for each batch by segment_for_each_batch(); a non-zero return stops the walk
 * and is passed back. */
typedef int segment_batch_fn(void *ctx, const struct record_batch_header *h);

/* Calls <fn> on the header of every batch from the one holding <from_offset> on.
 * Returns 0, the non-zero value of <fn>, or a negative errno. */
int segment_for_each_batch(struct segment *seg, int64_t from_offset, segment_batch_fn *fn,
                           void *ctx);

/* Called by segment_scan_batches() with each whole batch: its header, its bytes (valid
 * during the call) and its file position. A non-zero return stops the walk and is
 * passed back. */
typedef int segment_bytes_fn(void *ctx, const struct record_batch_header *h, const uint8_t *batch, size_t len,
                             int64_t pos);
/* Called by segment_write_cleaned() like segment_bytes_fn, with *<out>, *<out_len> set to the
 * batch: returns 1 to write the *<out_len> bytes at *<out> (the batch, or a filtered copy
 * the callee owns, valid until its next call), 0 to drop the batch, or a negative errno
 * to stop. */
typedef int segment_keep_fn(void *ctx, const struct record_batch_header *h, const uint8_t *batch, size_t len,
                            int64_t pos, const uint8_t **out, size_t *out_len);

/* Calls <fn> on every batch of <seg>, in order. Returns 0, <fn>'s non-zero value, or a
 * negative errno (-EBADMSG: a corrupt batch). */
int segment_scan_batches(struct segment *seg, segment_bytes_fn *fn, void *ctx);

/* segment_scan_batches() over the first <size_bytes> of the .log file open as <fd>:
 * touches no struct segment, so a thread other than the loop may run it on a file the
 * loop only appends to beyond <size_bytes> (or has closed, holding its own descriptor). */
int segment_scan_file(int fd, int64_t size_bytes, segment_bytes_fn *fn, void *ctx);
/* Log compaction, the part off the loop thread: writes what <keep> makes of each batch
 * of the closed segment in <src_fd> (<size_bytes> long; offsets unchanged, so the
 * segment's offsets get gaps) to <work_dir>/<base>.log, builds its indexes beside it and
 * makes all three durable. Touches no struct segment of
 * the log. Returns 0 or a negative errno (files may be left in <work_dir>). */
int segment_write_cleaned(int src_fd, int64_t size_bytes, const char *work_dir, int64_t base_offset,
                          int64_t next_base, int32_t index_interval_bytes, segment_keep_fn *keep, void *ctx);
/* The loop thread's part: replaces <seg>'s files in <dir> with those
 * segment_write_cleaned() left in <work_dir>, atomically per file and in an order after
 * which a crash leaves the old or the new .log with its own indexes or none (rebuilt at
 * open). The new segment (same base offset, end <next_base>) is returned in *<out>; <seg>
 * is then stale: the caller swaps and frees it (fetch slices still hold the old file
 * open). The caller makes the renames durable with one fileio_fsync_dir() of <dir>
 * after its replacements. Returns 0, or a negative errno; even then a non-NULL *<out>
 * replaces <seg>. */
int segment_replace(struct segment *seg, const char *dir, const char *work_dir, int64_t next_base,
                    int32_t index_interval_bytes, struct segment **out);
/* The .log file's modification time in ms. Returns 0 or a negative errno. */
int segment_mtime_ms(struct segment *seg, int64_t *mtime_ms);

#endif
