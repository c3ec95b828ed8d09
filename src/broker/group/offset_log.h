/* The durable store of the group coordinator: an append-only file of key/value records
 * (put or delete), replayed at start and compacted by rewriting it with only the live
 * records. Each record carries a CRC-32C; a torn or corrupt tail (kill -9, power loss)
 * is truncated on open. A failed append is cut back off the file, so the file never
 * holds a partial record followed by good ones. Loop thread only.
 *
 * Record: u32 body length, u32 CRC-32C of the body, body = u8 type, u16 key length,
 * key, value (the rest). The file starts with an 8-byte magic. */
#ifndef STRATUS_BROKER_GROUP_OFFSET_LOG_H
#define STRATUS_BROKER_GROUP_OFFSET_LOG_H

#include <stddef.h>
#include <stdint.h>

enum offset_log_type { OFFSET_LOG_PUT = 1, OFFSET_LOG_DELETE = 2 };

/* The largest key and body the log accepts. */
#define OFFSET_LOG_MAX_KEY 65535
#define OFFSET_LOG_MAX_BODY (1 << 20)

struct offset_log;

typedef void offset_log_replay_fn(void *ctx, enum offset_log_type type, const uint8_t *key, size_t key_len,
                                  const uint8_t *value, size_t value_len);

/* Opens <path> (created when missing) and calls <fn> for every valid record in order;
 * stops at the first torn or corrupt record and truncates the file there. Returns 0
 * with *<out> set, or -errno. */
int offset_log_open(const char *path, offset_log_replay_fn *fn, void *ctx, struct offset_log **out);
/* Closes the file (no sync). offset_log_close(NULL) does nothing. */
void offset_log_close(struct offset_log *log);

/* Appends one record with a single write(). Returns 0, -EINVAL for an oversized key or
 * value, or -errno from the write (the file is cut back to its previous size). */
int offset_log_append(struct offset_log *log, enum offset_log_type type, const void *key, size_t key_len,
                      const void *value, size_t value_len);
/* fdatasync()s appended records. Returns 0 or -errno. */
int offset_log_sync(struct offset_log *log);
/* True when records were appended since the last sync. */
int offset_log_dirty(const struct offset_log *log);
/* Bytes in the file. */
int64_t offset_log_size(const struct offset_log *log);
/* Bytes one record with these sizes takes in the file. */
size_t offset_log_record_size(size_t key_len, size_t value_len);

/* Compaction: begin writes a new file beside the old one; add puts live records into it;
 * commit fsyncs it and renames it over the old file (atomic: a crash leaves one or the
 * other); abort deletes it. Appends are not allowed between begin and commit/abort. */
int offset_log_rewrite_begin(struct offset_log *log);
int offset_log_rewrite_add(struct offset_log *log, const void *key, size_t key_len, const void *value,
                           size_t value_len);
int offset_log_rewrite_commit(struct offset_log *log);
void offset_log_rewrite_abort(struct offset_log *log);

#endif
