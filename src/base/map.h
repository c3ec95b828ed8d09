/* A string-keyed hash map (open addressing, linear probing). Keys are copied; values
 * are borrowed pointers. Embedded: map_init()/map_deinit(). */
#ifndef STRATUS_BASE_MAP_H
#define STRATUS_BASE_MAP_H

#include <stddef.h>

struct map_slot {
        char *key; /* NULL: empty; (char *)1: deleted */
        size_t key_len;
        void *value;
};

struct map {
        struct map_slot *slots;
        size_t cap;  /* power of two */
        size_t len;  /* live entries */
        size_t used; /* live + deleted */
};

void map_init(struct map *m);
void map_deinit(struct map *m);
/* The value for <key, len>, or NULL. */
void *map_get(const struct map *m, const char *key, size_t len);
/* Sets <key, len> to <value> (replacing). */
void map_put(struct map *m, const char *key, size_t len, void *value);
/* Removes <key, len>; returns its value or NULL. */
void *map_del(struct map *m, const char *key, size_t len);

/* Iteration: for (size_t i = 0; map_next(m, &i, &key, &value);) */
int map_next(const struct map *m, size_t *iter, const char **key, void **value);

#endif
