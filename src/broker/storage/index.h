/* Sparse index files of a segment, kept on disk and searched with pread():
 *
 *   offset index  <base>.index      entries of 8 bytes:  relative offset u32, position u32
 *   time index    <base>.timeindex  entries of 12 bytes: timestamp i64, relative offset u32
 *
 * All big-endian. Both are sorted on both fields, so one struct serves both: an entry is a
 * <key> (relative offset or timestamp) and a <value> (position or relative offset).
 * Only the entry count and the last entry live in memory; the file descriptor is opened
 * on first use and may be closed again when the segment goes idle. Loop thread only. */
#ifndef STRATUS_BROKER_STORAGE_INDEX_H
#define STRATUS_BROKER_STORAGE_INDEX_H

#include <stdbool.h>
#include <stdint.h>

enum index_kind { INDEX_OFFSET = 0, INDEX_TIME };

struct index_entry {
        int64_t key;    /* offset index: relative offset; time index: timestamp in ms */
        uint32_t value; /* offset index: file position; time index: relative offset */
};

struct index {
        char *path;
        int fd;                  /* -1 while closed; opened on demand */
        enum index_kind kind;
        uint32_t entries;        /* valid entries in the file */
        struct index_entry last; /* the last entry, when entries > 0 */
};

/* Sets up <idx> for the file at <path> (takes ownership of <path>); touches no file. */
void index_init(struct index *idx, enum index_kind kind, char *path);
/* Closes the file and frees the path. */
void index_deinit(struct index *idx);

/* Bytes per entry: 8 or 12. */
int index_entry_size(const struct index *idx);

/* Reads the entry count and last entry from the file. Returns 0, -ENOENT when the file
 * is missing, -EBADMSG when its size is not a whole number of entries or the last two
 * entries are out of order, or another negative errno. */
int index_load(struct index *idx);

/* Appends <n> entries in one write. Returns 0 or a negative errno (then the file is cut
 * back and nothing was added). */
int index_append(struct index *idx, const struct index_entry *entries, uint32_t n);

/* Keeps only the first <entries> entries (0 empties the file, creating it if absent). */
int index_truncate(struct index *idx, uint32_t entries);

/* Undoes appends in memory: back to <entries> entries ending with <last>, as saved before
 * them. The file is cut best effort; later appends overwrite what is left past the count. */
void index_rewind(struct index *idx, uint32_t entries, const struct index_entry *last);

/* Reads entry <i> (< idx->entries). Returns 0 or a negative errno. */
int index_read(struct index *idx, uint32_t i, struct index_entry *out);

/* The last entry whose key is <= <key>. Returns 0, -ENOENT when there is none (or the
 * index is empty), or a negative errno. O(log n) preads. */
int index_lookup(struct index *idx, int64_t key, struct index_entry *out);

/* The last entry whose value is <= <value>, like index_lookup() on the other field. */
int index_lookup_value(struct index *idx, uint32_t value, struct index_entry *out);

/* fsyncs the file if it is open. Returns 0 or a negative errno. */
int index_sync(struct index *idx);
/* Closes the descriptor (it reopens on the next use). */
void index_close_fd(struct index *idx);
/* Deletes the file; a missing file is not an error. Returns 0 or a negative errno. */
int index_unlink(struct index *idx);

#endif
