/* Kafka wire primitives: big-endian fixed ints, zigzag varints, (compact) strings,
 * bytes and arrays, and the per-request arena. */
#include "kafka/wire.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

struct arena_chunk {
        struct arena_chunk *next;
        size_t cap;
        size_t used;
        _Alignas(16) uint8_t data[];
};

void kafka_arena_init(struct kafka_arena *a, size_t budget)
{
        a->head = NULL;
        a->used = 0;
        a->budget = budget;
}

void kafka_arena_deinit(struct kafka_arena *a)
{
        struct arena_chunk *c = a->head;
        while (c) {
                struct arena_chunk *next = c->next;
                free(c);
                c = next;
        }
        a->head = NULL;
        a->used = 0;
}

void *kafka_arena_alloc(struct kafka_arena *a, size_t size)
{
        size = (size + 15) & ~(size_t)15;
        if (size > a->budget - a->used || a->used > a->budget)
                return NULL;
        struct arena_chunk *c = a->head;
        if (!c || c->cap - c->used < size) {
                size_t cap = size > 4096 - sizeof(*c) ? size : 4096 - sizeof(*c);
                c = xmalloc(sizeof(*c) + cap);
                c->cap = cap;
                c->used = 0;
                c->next = a->head;
                a->head = c;
        }
        void *p = c->data + c->used;
        c->used += size;
        a->used += size;
        memset(p, 0, size);
        return p;
}

struct kafka_reader kafka_reader_from(const uint8_t *p, size_t len, struct kafka_arena *arena)
{
        static const uint8_t empty[1];
        if (!p)
                p = empty; /* an empty buffer may have no storage; NULL + 0 is undefined */
        struct kafka_reader r = { .p = p, .end = p + len, .arena = arena, .names = NULL, .failed = false };
        return r;
}

static const uint8_t *take(struct kafka_reader *r, size_t n)
{
        if (r->failed || (size_t)(r->end - r->p) < n) {
                r->failed = true;
                return NULL;
        }
        const uint8_t *p = r->p;
        r->p += n;
        return p;
}

int8_t kafka_read_i8(struct kafka_reader *r)
{
        const uint8_t *p = take(r, 1);
        return p ? (int8_t)p[0] : 0;
}

uint16_t kafka_read_u16(struct kafka_reader *r)
{
        const uint8_t *p = take(r, 2);
        return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

int16_t kafka_read_i16(struct kafka_reader *r)
{
        return (int16_t)kafka_read_u16(r);
}

uint32_t kafka_read_u32(struct kafka_reader *r)
{
        const uint8_t *p = take(r, 4);
        return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

int32_t kafka_read_i32(struct kafka_reader *r)
{
        return (int32_t)kafka_read_u32(r);
}

int64_t kafka_read_i64(struct kafka_reader *r)
{
        uint64_t hi = kafka_read_u32(r);
        uint64_t lo = kafka_read_u32(r);
        return (int64_t)(hi << 32 | lo);
}

double kafka_read_f64(struct kafka_reader *r)
{
        int64_t v = kafka_read_i64(r);
        double d;
        memcpy(&d, &v, sizeof(d));
        return d;
}

bool kafka_read_bool(struct kafka_reader *r)
{
        return kafka_read_i8(r) != 0;
}

struct kafka_uuid kafka_read_uuid(struct kafka_reader *r)
{
        struct kafka_uuid u = { { 0 } };
        const uint8_t *p = take(r, 16);
        if (p)
                memcpy(u.b, p, 16);
        return u;
}

static uint64_t read_uvarint64(struct kafka_reader *r, int max_bytes)
{
        uint64_t v = 0;
        for (int i = 0; i < max_bytes; i++) {
                const uint8_t *p = take(r, 1);
                if (!p)
                        return 0;
                v |= (uint64_t)(*p & 0x7f) << (7 * i);
                if (!(*p & 0x80))
                        return v;
        }
        r->failed = true; /* too long for its type */
        return 0;
}

uint32_t kafka_read_uvarint(struct kafka_reader *r)
{
        uint64_t v = read_uvarint64(r, 5);
        if (v > UINT32_MAX)
                r->failed = true;
        return (uint32_t)v;
}

int32_t kafka_read_varint(struct kafka_reader *r)
{
        uint32_t v = kafka_read_uvarint(r);
        return (int32_t)((v >> 1) ^ (~(v & 1) + 1));
}

int64_t kafka_read_varlong(struct kafka_reader *r)
{
        uint64_t v = read_uvarint64(r, 10);
        return (int64_t)((v >> 1) ^ (~(v & 1) + 1));
}

/* Reads a length prefix: int16/int32, or compact uvarint (0 = null, n+1 = n bytes).
 * Returns -1 for null, or a length known to fit in the remaining bytes. */
static int32_t read_len(struct kafka_reader *r, bool compact, bool wide)
{
        int64_t len;
        if (compact)
                len = (int64_t)kafka_read_uvarint(r) - 1;
        else
                len = wide ? kafka_read_i32(r) : kafka_read_i16(r);
        if (r->failed)
                return -1;
        if (len < -1 || len > (int64_t)kafka_reader_left(r)) {
                r->failed = true;
                return -1;
        }
        return (int32_t)len;
}

struct kafka_str kafka_read_str(struct kafka_reader *r, bool compact)
{
        struct kafka_str s = { NULL, -1 };
        int32_t len = read_len(r, compact, false);
        if (len >= 0) {
                s.ptr = (const char *)take(r, (size_t)len);
                s.len = len;
        }
        return s;
}

struct kafka_str kafka_read_name(struct kafka_reader *r, bool compact, enum kafka_entity kind)
{
        struct kafka_str s = kafka_read_str(r, compact);
        const struct kafka_names *names = r->names;
        if (!names || r->failed || s.len < 0 || kind == KAFKA_ENTITY_MESSAGE ||
            (kind == KAFKA_ENTITY_TOPIC && s.len == 0))
                return s;
        char *p = r->arena ? kafka_arena_alloc(r->arena, names->prefix_len + (size_t)s.len + 1) : NULL;
        if (!p) {
                r->failed = true;
                return s;
        }
        memcpy(p, names->prefix, names->prefix_len);
        if (s.len)
                memcpy(p + names->prefix_len, s.ptr, (size_t)s.len);
        struct kafka_str mapped = { p, (int32_t)(names->prefix_len + (size_t)s.len) };
        return mapped;
}

struct kafka_bytes kafka_read_bytes(struct kafka_reader *r, bool compact)
{
        struct kafka_bytes b = { NULL, -1 };
        int32_t len = read_len(r, compact, true);
        if (len >= 0) {
                b.ptr = take(r, (size_t)len);
                b.len = len;
        }
        return b;
}

struct kafka_records kafka_read_records(struct kafka_reader *r, bool compact)
{
        struct kafka_bytes b = kafka_read_bytes(r, compact);
        struct kafka_records rec = { b.ptr, b.len, NULL };
        return rec;
}

int32_t kafka_read_array_len(struct kafka_reader *r, bool compact, size_t min_elem_size)
{
        int64_t n;
        if (compact)
                n = (int64_t)kafka_read_uvarint(r) - 1;
        else
                n = kafka_read_i32(r);
        if (r->failed)
                return -1;
        if (n < -1 || (n > 0 && (uint64_t)n * (min_elem_size ? min_elem_size : 1) >
                                        kafka_reader_left(r))) {
                r->failed = true;
                return -1;
        }
        return (int32_t)n;
}

void *kafka_read_alloc(struct kafka_reader *r, int32_t count, size_t size)
{
        if (r->failed || count <= 0 || !r->arena)
                return NULL;
        void *p = kafka_arena_alloc(r->arena, (size_t)count * size);
        if (!p)
                r->failed = true;
        return p;
}

void kafka_read_skip(struct kafka_reader *r, size_t len)
{
        take(r, len);
}

void kafka_writer_init(struct kafka_writer *w, struct buf *buf)
{
        w->buf = buf;
        w->parts = NULL;
        w->nparts = 0;
        w->cap_parts = 0;
        w->names = NULL;
}

void kafka_writer_deinit(struct kafka_writer *w)
{
        for (int i = 0; i < w->nparts; i++)
                if (w->parts[i].slice.release)
                        w->parts[i].slice.release(w->parts[i].slice.ref);
        free(w->parts);
        w->parts = NULL;
        w->nparts = 0;
        w->cap_parts = 0;
}

size_t kafka_writer_size(const struct kafka_writer *w)
{
        size_t n = w->buf->len;
        for (int i = 0; i < w->nparts; i++)
                n += (size_t)w->parts[i].slice.len;
        return n;
}

static void put(struct kafka_writer *w, const void *p, size_t n)
{
        buf_append(w->buf, p, n);
}

void kafka_write_i8(struct kafka_writer *w, int8_t v)
{
        put(w, &v, 1);
}

void kafka_write_u16(struct kafka_writer *w, uint16_t v)
{
        uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
        put(w, b, 2);
}

void kafka_write_i16(struct kafka_writer *w, int16_t v)
{
        kafka_write_u16(w, (uint16_t)v);
}

void kafka_write_u32(struct kafka_writer *w, uint32_t v)
{
        uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
        put(w, b, 4);
}

void kafka_write_i32(struct kafka_writer *w, int32_t v)
{
        kafka_write_u32(w, (uint32_t)v);
}

void kafka_write_i64(struct kafka_writer *w, int64_t v)
{
        kafka_write_u32(w, (uint32_t)((uint64_t)v >> 32));
        kafka_write_u32(w, (uint32_t)v);
}

void kafka_write_f64(struct kafka_writer *w, double v)
{
        int64_t i;
        memcpy(&i, &v, sizeof(i));
        kafka_write_i64(w, i);
}

void kafka_write_bool(struct kafka_writer *w, bool v)
{
        kafka_write_i8(w, v ? 1 : 0);
}

void kafka_write_uuid(struct kafka_writer *w, struct kafka_uuid v)
{
        put(w, v.b, 16);
}

static void write_uvarint64(struct kafka_writer *w, uint64_t v)
{
        uint8_t b[10];
        size_t n = 0;
        while (v >= 0x80) {
                b[n++] = (uint8_t)(v | 0x80);
                v >>= 7;
        }
        b[n++] = (uint8_t)v;
        put(w, b, n);
}

void kafka_write_uvarint(struct kafka_writer *w, uint32_t v)
{
        write_uvarint64(w, v);
}

void kafka_write_varint(struct kafka_writer *w, int32_t v)
{
        write_uvarint64(w, (uint32_t)(((uint32_t)v << 1) ^ (uint32_t)(v >> 31)));
}

void kafka_write_varlong(struct kafka_writer *w, int64_t v)
{
        write_uvarint64(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

size_t kafka_uvarint_size(uint32_t v)
{
        size_t n = 1;
        while (v >= 0x80) {
                v >>= 7;
                n++;
        }
        return n;
}

static void write_len(struct kafka_writer *w, int32_t len, bool compact, bool wide)
{
        if (compact)
                kafka_write_uvarint(w, (uint32_t)(len + 1));
        else if (wide)
                kafka_write_i32(w, len);
        else
                kafka_write_i16(w, (int16_t)len);
}

void kafka_write_str(struct kafka_writer *w, struct kafka_str s, bool compact)
{
        int32_t len = s.ptr || s.len == 0 ? s.len : -1;
        write_len(w, len, compact, false);
        if (len > 0)
                put(w, s.ptr, (size_t)len);
}

/* Occurrences of <pat> in <s> (non-overlapping). */
static size_t count_occurrences(const char *s, size_t len, const char *pat, size_t pat_len)
{
        size_t n = 0;
        for (size_t i = 0; pat_len && i + pat_len <= len;) {
                if (memcmp(s + i, pat, pat_len) == 0) {
                        n++;
                        i += pat_len;
                } else {
                        i++;
                }
        }
        return n;
}

void kafka_write_name(struct kafka_writer *w, struct kafka_str s, bool compact, enum kafka_entity kind)
{
        const struct kafka_names *names = w->names;
        if (!names || !s.ptr || s.len <= 0) {
                kafka_write_str(w, s, compact);
                return;
        }
        size_t len = (size_t)s.len, plen = names->prefix_len;
        if (kind != KAFKA_ENTITY_MESSAGE) {
                if (len >= plen && memcmp(s.ptr, names->prefix, plen) == 0) {
                        s.ptr += plen;
                        s.len -= (int32_t)plen;
                }
                kafka_write_str(w, s, compact);
                return;
        }
        /* An error message: every quoted internal name loses the prefix. */
        size_t n = count_occurrences(s.ptr, len, names->prefix, plen);
        write_len(w, (int32_t)(len - n * plen), compact, false);
        size_t i = 0, from = 0;
        while (i + plen <= len && n) {
                if (memcmp(s.ptr + i, names->prefix, plen) == 0) {
                        put(w, s.ptr + from, i - from);
                        i += plen;
                        from = i;
                } else {
                        i++;
                }
        }
        put(w, s.ptr + from, len - from);
}

void kafka_write_bytes(struct kafka_writer *w, struct kafka_bytes b, bool compact)
{
        int32_t len = b.ptr || b.len == 0 ? b.len : -1;
        write_len(w, len, compact, true);
        if (len > 0)
                put(w, b.ptr, (size_t)len);
}

void kafka_write_records(struct kafka_writer *w, struct kafka_records rec, bool compact)
{
        if (!rec.file) {
                struct kafka_bytes b = { rec.ptr, rec.len };
                kafka_write_bytes(w, b, compact);
                return;
        }
        write_len(w, rec.file->len, compact, true);
        if (w->nparts == w->cap_parts) {
                w->cap_parts = w->cap_parts ? w->cap_parts * 2 : 8;
                w->parts = xrealloc(w->parts, (size_t)w->cap_parts * sizeof(*w->parts));
        }
        w->parts[w->nparts].buf_end = w->buf->len;
        w->parts[w->nparts].slice = *rec.file;
        w->nparts++;
        rec.file->release = NULL; /* the writer holds the reference now */
}

void kafka_write_array_len(struct kafka_writer *w, int32_t count, bool compact)
{
        write_len(w, count, compact, true);
}

struct kafka_str kafka_str_c(const char *s)
{
        struct kafka_str k = { s, s ? (int32_t)strlen(s) : -1 };
        return k;
}

bool kafka_str_eq(struct kafka_str a, const char *s)
{
        size_t n = strlen(s);
        return a.len >= 0 && (size_t)a.len == n && memcmp(a.ptr, s, n) == 0;
}

char *kafka_str_dup(struct kafka_arena *a, struct kafka_str s)
{
        if (s.len < 0)
                return NULL;
        char *p = kafka_arena_alloc(a, (size_t)s.len + 1);
        if (p)
                memcpy(p, s.ptr, (size_t)s.len);
        return p;
}
