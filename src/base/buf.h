/* A growable byte buffer. Embedded: buf_init()/buf_deinit(). */
#ifndef STRATUS_BASE_BUF_H
#define STRATUS_BASE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
        uint8_t *data;
        size_t len; /* bytes used */
        size_t cap; /* bytes allocated */
};

void buf_init(struct buf *b);
void buf_deinit(struct buf *b);
/* Makes room for <extra> more bytes; returns a pointer to the free space. */
uint8_t *buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t len);
/* Drops the first <n> bytes, keeping the rest. */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
/* Appends printf-style text (no NUL is appended). */
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
