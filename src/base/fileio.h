/* File helpers: whole-buffer pread/pwrite with the EINTR retries in
 * one place, directory fsync, atomic file replacement, recursive removal, and big-endian
 * field access. All return 0 or a negative errno. */
#ifndef STRATUS_BASE_FILEIO_H
#define STRATUS_BASE_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Reads up to <len> bytes at <pos>, retrying short reads; *<got> is less than <len> only
 * at end of file. Returns 0 or a negative errno. */
int fileio_pread(int fd, void *buf, size_t len, int64_t pos, size_t *got);

/* Writes all <len> bytes at <pos>. Returns 0 or a negative errno. */
int fileio_pwrite(int fd, const void *buf, size_t len, int64_t pos);

/* Opens <path> with <flags> (O_CLOEXEC added), retrying on EINTR. Returns the fd or a
 * negative errno. */
int fileio_open(const char *path, int flags, mode_t mode);

/* fsyncs the directory <dir> so that creations, renames and unlinks in it are durable. */
int fileio_fsync_dir(const char *dir);
/* fsyncs the file at <path> (opened read-only for it). Returns 0 or a negative errno. */
int fileio_fsync_path(const char *path);

/* Replaces <path> atomically with <len> bytes: writes <path>.tmp, fsyncs it, renames it
 * over <path> and fsyncs <dir>. */
int fileio_replace(const char *dir, const char *path, const void *data, size_t len);

/* Creates <dir> and any missing parents. */
int fileio_mkdirs(const char *dir);

/* Removes <dir> and everything below it. */
int fileio_remove_tree(const char *dir);

static inline uint32_t load_be32(const uint8_t *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t load_be64(const uint8_t *p)
{
        return (uint64_t)load_be32(p) << 32 | load_be32(p + 4);
}

static inline uint16_t load_be16(const uint8_t *p)
{
        return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void store_be16(uint8_t *p, uint16_t v)
{
        p[0] = (uint8_t)(v >> 8);
        p[1] = (uint8_t)v;
}

static inline void store_be32(uint8_t *p, uint32_t v)
{
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
}

static inline void store_be64(uint8_t *p, uint64_t v)
{
        store_be32(p, (uint32_t)(v >> 32));
        store_be32(p + 4, (uint32_t)v);
}

/* Raises this process's open-files limit (RLIMIT_NOFILE) to its hard limit, as servers
 * that hold a descriptor per connection and per segment need. Returns the soft limit in
 * force afterwards, or -1 if it cannot be read. */
long fileio_raise_open_files_limit(void);

#endif
