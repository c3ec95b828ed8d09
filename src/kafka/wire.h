/* Kafka wire primitives: a sticky reader over a request frame, a writer into a
 * struct buf, and the per-request arena that decoded arrays live in.
 *
 * Decoding reads fields one after another and checks r->failed once at the end
 * (SQLite's mallocFailed idea). Every length and count is checked against the
 * bytes remaining before anything is allocated, and the arena has a byte budget,
 * so a hostile frame can make decoding fail but never allocate beyond the budget. */
#ifndef STRATUS_KAFKA_WIRE_H
#define STRATUS_KAFKA_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* A string view into a frame; len -1 is null. Not NUL-terminated. */
struct kafka_str {
        const char *ptr;
        int32_t len;
};

/* A bytes view into a frame; len -1 is null. */
struct kafka_bytes {
        const uint8_t *ptr;
        int32_t len;
};

struct kafka_uuid {
        uint8_t b[16];
};

/* Bytes that sit in a file rather than in memory (a slice of a log segment), sent
 * with sendfile(). <ref> is released by <release> once the bytes are written. */
struct kafka_file_slice {
        int fd;
        int64_t pos;
        int32_t len;
        void *ref;
        void (*release)(void *ref);
};

/* Record-batch data: either a memory view or, in responses, a file slice. */
struct kafka_records {
        const uint8_t *ptr;
        int32_t len; /* -1: null */
        struct kafka_file_slice *file; /* when set, ptr is unused and len == file->len */
};

/* What a name in a message names (the specs' entityType), for tenant namespaces. */
enum kafka_entity {
        KAFKA_ENTITY_TOPIC = 1,
        KAFKA_ENTITY_GROUP,
        KAFKA_ENTITY_TRANSACTIONAL_ID,
        KAFKA_ENTITY_MESSAGE, /* an error message that may quote names */
};

/* A tenant's namespace: a reader carrying one prepends <prefix> to every topic name,
 * group id and transactional id it decodes; a writer carrying one strips it from those
 * names and from error messages. The empty topic name stays empty (it names nothing). */
struct kafka_names {
        const char *prefix;
        size_t prefix_len;
};

/* Bump allocator for one request's decoded data; freed all at once. */
struct kafka_arena {
        struct arena_chunk *head;
        size_t used;   /* bytes handed out so far */
        size_t budget; /* most bytes it may hand out */
};

void kafka_arena_init(struct kafka_arena *a, size_t budget);
void kafka_arena_deinit(struct kafka_arena *a);
/* Returns zeroed memory, or NULL when the budget is exhausted. */
void *kafka_arena_alloc(struct kafka_arena *a, size_t size);

struct kafka_reader {
        const uint8_t *p;
        const uint8_t *end;
        struct kafka_arena *arena; /* where arrays are allocated; may be NULL for headers */
        const struct kafka_names *names; /* NULL: names are read as they are */
        bool failed;               /* sticky: set by the first short read or bad length */
};

struct kafka_reader kafka_reader_from(const uint8_t *p, size_t len, struct kafka_arena *arena);
static inline size_t kafka_reader_left(const struct kafka_reader *r)
{
        return (size_t)(r->end - r->p);
}

int8_t kafka_read_i8(struct kafka_reader *r);
int16_t kafka_read_i16(struct kafka_reader *r);
uint16_t kafka_read_u16(struct kafka_reader *r);
int32_t kafka_read_i32(struct kafka_reader *r);
uint32_t kafka_read_u32(struct kafka_reader *r);
int64_t kafka_read_i64(struct kafka_reader *r);
double kafka_read_f64(struct kafka_reader *r);
bool kafka_read_bool(struct kafka_reader *r);
struct kafka_uuid kafka_read_uuid(struct kafka_reader *r);
uint32_t kafka_read_uvarint(struct kafka_reader *r);
int32_t kafka_read_varint(struct kafka_reader *r);
int64_t kafka_read_varlong(struct kafka_reader *r);
/* Strings and bytes: <compact> selects the flexible (uvarint length+1) form. */
struct kafka_str kafka_read_str(struct kafka_reader *r, bool compact);
struct kafka_bytes kafka_read_bytes(struct kafka_reader *r, bool compact);
struct kafka_records kafka_read_records(struct kafka_reader *r, bool compact);
/* A string naming an entity of <kind>: mapped into r->names (copied into the arena). */
struct kafka_str kafka_read_name(struct kafka_reader *r, bool compact, enum kafka_entity kind);
/* An array count (-1 for null), checked so that count * <min_elem_size> fits in the
 * bytes remaining. */
int32_t kafka_read_array_len(struct kafka_reader *r, bool compact, size_t min_elem_size);
/* Allocates <count> zeroed elements of <size> from the arena; fails the reader when
 * the arena budget is exhausted. */
void *kafka_read_alloc(struct kafka_reader *r, int32_t count, size_t size);
/* Skips <len> bytes (an unknown tagged field). */
void kafka_read_skip(struct kafka_reader *r, size_t len);

/* Decodes a zigzag varint/varlong at *<p> (before <end>) into *<out> and advances *<p>;
 * false when truncated or longer than 10 bytes. Inline, for hot per-record walks over
 * raw batch bytes where a sticky reader per field would cost too much. */
static inline bool kafka_take_varlong(const uint8_t **p, const uint8_t *end, int64_t *out)
{
        uint64_t v = 0;
        for (int shift = 0; shift < 70 && *p < end; shift += 7) {
                uint8_t b = *(*p)++;
                v |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
                        return true;
                }
        }
        return false;
}

/* Writer into a buffer. File slices (records held in a segment file) are recorded
 * beside the buffer so the connection can send them with sendfile(). */
struct kafka_out_part {
        size_t buf_end;                /* buffer bytes before this slice */
        struct kafka_file_slice slice; /* the slice that follows them */
};

struct kafka_writer {
        struct buf *buf;
        struct kafka_out_part *parts; /* file slices, in order; NULL if none */
        int nparts;
        int cap_parts;
        const struct kafka_names *names; /* NULL: names are written as they are */
};

void kafka_writer_init(struct kafka_writer *w, struct buf *buf);
/* Releases any file slices still held. */
void kafka_writer_deinit(struct kafka_writer *w);
/* Total bytes the writer produced, buffer plus file slices. */
size_t kafka_writer_size(const struct kafka_writer *w);

void kafka_write_i8(struct kafka_writer *w, int8_t v);
void kafka_write_i16(struct kafka_writer *w, int16_t v);
void kafka_write_u16(struct kafka_writer *w, uint16_t v);
void kafka_write_i32(struct kafka_writer *w, int32_t v);
void kafka_write_u32(struct kafka_writer *w, uint32_t v);
void kafka_write_i64(struct kafka_writer *w, int64_t v);
void kafka_write_f64(struct kafka_writer *w, double v);
void kafka_write_bool(struct kafka_writer *w, bool v);
void kafka_write_uuid(struct kafka_writer *w, struct kafka_uuid v);
void kafka_write_uvarint(struct kafka_writer *w, uint32_t v);
void kafka_write_varint(struct kafka_writer *w, int32_t v);
void kafka_write_varlong(struct kafka_writer *w, int64_t v);
void kafka_write_str(struct kafka_writer *w, struct kafka_str s, bool compact);
void kafka_write_bytes(struct kafka_writer *w, struct kafka_bytes b, bool compact);
/* A string naming an entity of <kind>: mapped out of w->names. */
void kafka_write_name(struct kafka_writer *w, struct kafka_str s, bool compact, enum kafka_entity kind);
/* Writes records; a file slice is taken over by the writer (released on deinit or
 * by whoever sends it). */
void kafka_write_records(struct kafka_writer *w, struct kafka_records rec, bool compact);
void kafka_write_array_len(struct kafka_writer *w, int32_t count, bool compact);
/* Size in bytes of <v> as an unsigned varint. */
size_t kafka_uvarint_size(uint32_t v);

/* Helpers for C strings in handlers. */
struct kafka_str kafka_str_c(const char *s);
bool kafka_str_eq(struct kafka_str a, const char *s);
/* A NUL-terminated copy from the arena (NULL for a null string or exhausted budget). */
char *kafka_str_dup(struct kafka_arena *a, struct kafka_str s);

#endif
