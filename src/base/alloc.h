/* Allocation that never returns NULL: on exhaustion the process logs and aborts,
 * so callers do not test for NULL (the redis zmalloc idea). Also ASSERT(), which
 * stays on in release builds. Never ASSERT on bytes that came from the network. */
#ifndef STRATUS_BASE_ALLOC_H
#define STRATUS_BASE_ALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t len);
/* Like asprintf() but aborts on failure; returns a heap string the caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define ASSERT(e) ((e) ? (void)0 : assert_fail(#e, __FILE__, __LINE__))

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
