/* String-keyed hash map with FNV-1a hashing. */
#include "base/map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

#define DELETED ((char *)1)

static uint64_t hash(const char *key, size_t len)
{
        uint64_t h = 1469598103934665603ull;
        for (size_t i = 0; i < len; i++) {
                h ^= (uint8_t)key[i];
                h *= 1099511628211ull;
        }
        return h;
}

void map_init(struct map *m)
{
        m->slots = NULL;
        m->cap = m->len = m->used = 0;
}

void map_deinit(struct map *m)
{
        for (size_t i = 0; i < m->cap; i++)
                if (m->slots[i].key && m->slots[i].key != DELETED)
                        free(m->slots[i].key);
        free(m->slots);
        map_init(m);
}

static struct map_slot *find(const struct map *m, const char *key, size_t len)
{
        if (!m->cap)
                return NULL;
        size_t i = hash(key, len) & (m->cap - 1);
        for (;;) {
                struct map_slot *s = &m->slots[i];
                if (!s->key)
                        return NULL;
                if (s->key != DELETED && s->key_len == len && memcmp(s->key, key, len) == 0)
                        return s;
                i = (i + 1) & (m->cap - 1);
        }
}

void *map_get(const struct map *m, const char *key, size_t len)
{
        struct map_slot *s = find(m, key, len);
        return s ? s->value : NULL;
}

static void grow(struct map *m)
{
        struct map_slot *old = m->slots;
        size_t old_cap = m->cap;
        m->cap = old_cap ? old_cap * 2 : 16;
        m->slots = xcalloc(m->cap, sizeof(*m->slots));
        m->len = m->used = 0;
        for (size_t i = 0; i < old_cap; i++) {
                if (!old[i].key || old[i].key == DELETED)
                        continue;
                size_t j = hash(old[i].key, old[i].key_len) & (m->cap - 1);
                while (m->slots[j].key)
                        j = (j + 1) & (m->cap - 1);
                m->slots[j] = old[i];
                m->len++;
                m->used++;
        }
        free(old);
}

void map_put(struct map *m, const char *key, size_t len, void *value)
{
        struct map_slot *s = find(m, key, len);
        if (s) {
                s->value = value;
                return;
        }
        if ((m->used + 1) * 4 >= m->cap * 3)
                grow(m);
        size_t i = hash(key, len) & (m->cap - 1);
        while (m->slots[i].key && m->slots[i].key != DELETED)
                i = (i + 1) & (m->cap - 1);
        if (!m->slots[i].key)
                m->used++;
        m->slots[i].key = xstrndup(key, len);
        m->slots[i].key_len = len;
        m->slots[i].value = value;
        m->len++;
}

void *map_del(struct map *m, const char *key, size_t len)
{
        struct map_slot *s = find(m, key, len);
        if (!s)
                return NULL;
        void *v = s->value;
        free(s->key);
        s->key = DELETED;
        s->value = NULL;
        m->len--;
        return v;
}

int map_next(const struct map *m, size_t *iter, const char **key, void **value)
{
        while (*iter < m->cap) {
                struct map_slot *s = &m->slots[(*iter)++];
                if (s->key && s->key != DELETED) {
                        *key = s->key;
                        *value = s->value;
                        return 1;
                }
        }
        return 0;
}
