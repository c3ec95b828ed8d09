/* Growable byte buffer. */
#include "base/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

void buf_init(struct buf *b)
{
        b->data = NULL;
        b->len = 0;
        b->cap = 0;
}

void buf_deinit(struct buf *b)
{
        free(b->data);
        buf_init(b);
}

uint8_t *buf_reserve(struct buf *b, size_t extra)
{
        if (b->cap - b->len < extra) {
                size_t cap = b->cap ? b->cap : 256;
                while (cap - b->len < extra)
                        cap *= 2;
                b->data = xrealloc(b->data, cap);
                b->cap = cap;
        }
        return b->data + b->len;
}

void buf_append(struct buf *b, const void *p, size_t len)
{
        if (!len)
                return;
        memcpy(buf_reserve(b, len), p, len);
        b->len += len;
}

void buf_consume(struct buf *b, size_t n)
{
        if (n >= b->len) {
                b->len = 0;
                return;
        }
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
}

void buf_reset(struct buf *b)
{
        b->len = 0;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n <= 0)
                return;
        char *dst = (char *)buf_reserve(b, (size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(dst, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
}
