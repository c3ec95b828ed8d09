/* Committed offsets: in memory per group, durable in the offset log (<dir>/groups.log).
 *
 * Log keys:  'O' u16 group length, group, u16 topic length, topic, be32 partition
 *              -> u8 version 1, be64 offset, be32 leader epoch, be64 commit ms,
 *                 be64 expire ms, metadata (the rest)
 *            'T' group -> the group's protocol type ("consumer")
 * A delete of 'O' drops one offset; a delete of 'G' group drops a whole group.
 *
 * Compaction: the coordinator knows how many bytes its live records take; when the file
 * is more than twice that (and past COMPACT_MIN_BYTES) it is rewritten with only the live
 * records, so the file stays within about twice the size of the offsets it holds.
 *
 * Retention (KIP-211): the offsets of a consumer group expire offsets.retention.minutes
 * after the group became Empty; those of a group without members that never used group
 * management expire that long after their commit; an explicit retention from
 * OffsetCommit v2-v4 wins. A Stable consumer group's offsets for topics it no longer
 * subscribes to expire by their commit time. */
#define LOG_TOPIC "group"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/fileio.h"
#include "base/log.h"
#include "broker/group/group.h"
#include "broker/group/group_impl.h"
#include "broker/group/offset_log.h"
#include "kafka/errors.h"

#define COMPACT_MIN_BYTES (4 << 20)
#define VALUE_HEADER 29 /* version, offset, epoch, commit ms, expire ms */

/* ---- keys and values ---- */

/* The key of an offset inside group->offsets: topic, NUL, be32 partition. */
static size_t offset_map_key(char *out, size_t cap, const char *topic, size_t topic_len, int32_t partition)
{
        if (topic_len + 5 > cap)
                return 0;
        memcpy(out, topic, topic_len);
        out[topic_len] = '\0';
        store_be32((uint8_t *)out + topic_len + 1, (uint32_t)partition);
        return topic_len + 5;
}

/* The log key for an offset ('O') or a group ('T', 'G'); returns its length. */
static size_t log_key(uint8_t *out, char kind, const char *group, size_t group_len, const char *topic,
                      size_t topic_len, int32_t partition)
{
        size_t n = 0;
        out[n++] = (uint8_t)kind;
        store_be16(out + n, (uint16_t)group_len);
        n += 2;
        memcpy(out + n, group, group_len);
        n += group_len;
        if (kind == 'O') {
                store_be16(out + n, (uint16_t)topic_len);
                n += 2;
                memcpy(out + n, topic, topic_len);
                n += topic_len;
                store_be32(out + n, (uint32_t)partition);
                n += 4;
        }
        return n;
}

static size_t offset_value(uint8_t *out, const struct group_offset *off)
{
        out[0] = 1;
        store_be64(out + 1, (uint64_t)off->offset);
        store_be32(out + 9, (uint32_t)off->leader_epoch);
        store_be64(out + 13, (uint64_t)off->commit_ms);
        store_be64(out + 21, (uint64_t)off->expire_ms);
        size_t mlen = strlen(off->metadata);
        memcpy(out + VALUE_HEADER, off->metadata, mlen);
        return VALUE_HEADER + mlen;
}

static size_t record_size_of(const struct group *group, size_t topic_len, const struct group_offset *off)
{
        return offset_log_record_size(1 + 2 + strlen(group->group_id) + 2 + topic_len + 4,
                                      VALUE_HEADER + strlen(off->metadata));
}

static size_t type_record_size(const struct group *group)
{
        return offset_log_record_size(3 + strlen(group->group_id), strlen(group->protocol_type));
}

/* ---- in-memory updates (shared by commits and replay) ---- */

static void offset_free(struct group_offset *off)
{
        if (!off)
                return;
        free(off->metadata);
        free(off);
}

void offsets_free(struct group *group)
{
        const char *key;
        void *value;
        for (size_t i = 0; map_next(&group->offsets, &i, &key, &value);)
                offset_free(value);
        map_deinit(&group->offsets);
}

static void put_offset(struct group_coordinator *gc, struct group *group, const char *topic, size_t topic_len,
                       int32_t partition, struct group_offset *off)
{
        char key[300];
        size_t klen = offset_map_key(key, sizeof(key), topic, topic_len, partition);
        if (!klen) {
                offset_free(off);
                return;
        }
        struct group_offset *old = map_get(&group->offsets, key, klen);
        if (old) {
                gc->live_bytes -= (int64_t)record_size_of(group, topic_len, old);
                offset_free(old);
        }
        map_put(&group->offsets, key, klen, off);
        gc->live_bytes += (int64_t)record_size_of(group, topic_len, off);
}

static void drop_offset(struct group_coordinator *gc, struct group *group, const char *topic, size_t topic_len,
                        int32_t partition)
{
        char key[300];
        size_t klen = offset_map_key(key, sizeof(key), topic, topic_len, partition);
        struct group_offset *old = klen ? map_del(&group->offsets, key, klen) : NULL;
        if (old) {
                gc->live_bytes -= (int64_t)record_size_of(group, topic_len, old);
                offset_free(old);
        }
}

static void drop_group_records(struct group_coordinator *gc, struct group *group)
{
        const char *key;
        void *value;
        for (size_t i = 0; map_next(&group->offsets, &i, &key, &value);)
                gc->live_bytes -= (int64_t)record_size_of(group, strlen(key), value);
        if (group->type_stored && group->protocol_type)
                gc->live_bytes -= (int64_t)type_record_size(group);
        offsets_free(group);
        map_init(&group->offsets);
        group->type_stored = false;
}

/* ---- replay ---- */

struct replay_ctx {
        struct group_coordinator *gc;
        int64_t now_ms;
        int64_t records, bad;
};

static void on_replay(void *arg, enum offset_log_type type, const uint8_t *key, size_t key_len, const uint8_t *value,
                      size_t value_len)
{
        struct replay_ctx *rc = arg;
        struct group_coordinator *gc = rc->gc;
        rc->records++;
        if (key_len < 3 || load_be16(key + 1) > key_len - 3) {
                rc->bad++;
                return;
        }
        char kind = (char)key[0];
        size_t glen = load_be16(key + 1);
        const char *gid = (const char *)key + 3;
        const uint8_t *rest = key + 3 + glen;
        size_t rest_len = key_len - 3 - glen;
        struct group *group = group_find(gc, gid, glen);
        if (kind == 'G' && type == OFFSET_LOG_DELETE) {
                if (group) {
                        drop_group_records(gc, group);
                        group_remove_if_unused(gc, group);
                }
                return;
        }
        if (kind == 'T') {
                if (type == OFFSET_LOG_PUT) {
                        group = group_get_or_create(gc, gid, glen, rc->now_ms);
                        if (group->type_stored && group->protocol_type)
                                gc->live_bytes -= (int64_t)type_record_size(group);
                        free(group->protocol_type);
                        group->protocol_type = xmalloc(value_len + 1);
                        memcpy(group->protocol_type, value, value_len);
                        group->protocol_type[value_len] = '\0';
                        group->type_stored = true;
                        gc->live_bytes += (int64_t)type_record_size(group);
                }
                return;
        }
        if (kind != 'O' || rest_len < 6 || load_be16(rest) != rest_len - 6) {
                rc->bad++;
                return;
        }
        size_t tlen = load_be16(rest);
        const char *topic = (const char *)rest + 2;
        int32_t partition = (int32_t)load_be32(rest + 2 + tlen);
        if (type == OFFSET_LOG_DELETE) {
                if (group) {
                        drop_offset(gc, group, topic, tlen, partition);
                        group_remove_if_unused(gc, group);
                }
                return;
        }
        if (value_len < VALUE_HEADER || value[0] != 1 || memchr(value + VALUE_HEADER, 0, value_len - VALUE_HEADER)) {
                rc->bad++;
                return;
        }
        struct group_offset *off = xcalloc(1, sizeof(*off));
        off->offset = (int64_t)load_be64(value + 1);
        off->leader_epoch = (int32_t)load_be32(value + 9);
        off->commit_ms = (int64_t)load_be64(value + 13);
        off->expire_ms = (int64_t)load_be64(value + 21);
        off->metadata = xmalloc(value_len - VALUE_HEADER + 1);
        memcpy(off->metadata, value + VALUE_HEADER, value_len - VALUE_HEADER);
        off->metadata[value_len - VALUE_HEADER] = '\0';
        group = group_get_or_create(gc, gid, glen, rc->now_ms);
        put_offset(gc, group, topic, tlen, partition, off);
}

int offsets_open(struct group_coordinator *gc, const char *dir)
{
        int rc = fileio_mkdirs(dir);
        if (rc < 0) {
                log_error("cannot create %s: %s", dir, strerror(-rc));
                return rc;
        }
        char path[4096];
        snprintf(path, sizeof(path), "%s/groups.log", dir);
        struct replay_ctx ctx = { .gc = gc };
        rc = offset_log_open(path, on_replay, &ctx, &gc->log);
        if (rc < 0) {
                log_error("cannot open %s: %s", path, strerror(-rc));
                return rc;
        }
        if (ctx.bad)
                log_warn("%s: %lld records not understood, skipped", path, (long long)ctx.bad);
        int64_t noffsets = 0;
        const char *key;
        void *value;
        for (size_t i = 0; map_next(&gc->groups, &i, &key, &value);)
                noffsets += (int64_t)((struct group *)value)->offsets.len;
        log_info("group store loaded: %zu groups, %lld offsets from %lld records (%lld bytes)", gc->groups.len,
                 (long long)noffsets, (long long)ctx.records, (long long)offset_log_size(gc->log));
        return 0;
}

void offsets_close(struct group_coordinator *gc)
{
        if (!gc->log)
                return;
        int rc = offset_log_sync(gc->log);
        if (rc < 0)
                log_error("group store sync failed: %s", strerror(-rc));
        offset_log_close(gc->log);
        gc->log = NULL;
}

int group_coordinator_sync(struct group_coordinator *gc)
{
        return offset_log_sync(gc->log);
}

/* ---- compaction ---- */

static void maybe_compact(struct group_coordinator *gc)
{
        int64_t size = offset_log_size(gc->log);
        if (size < COMPACT_MIN_BYTES || size < 2 * gc->live_bytes)
                return;
        int rc = offset_log_rewrite_begin(gc->log);
        uint8_t *key = xmalloc(3 + 65535 + 2 + 65535 + 4);
        uint8_t *val = NULL;
        size_t val_cap = 0;
        const char *gkey;
        void *gvalue;
        for (size_t i = 0; rc == 0 && map_next(&gc->groups, &i, &gkey, &gvalue);) {
                struct group *group = gvalue;
                size_t glen = strlen(group->group_id);
                if (group->type_stored && group->protocol_type) {
                        size_t klen = log_key(key, 'T', group->group_id, glen, NULL, 0, 0);
                        rc = offset_log_rewrite_add(gc->log, key, klen, group->protocol_type,
                                                    strlen(group->protocol_type));
                }
                const char *okey;
                void *ovalue;
                for (size_t j = 0; rc == 0 && map_next(&group->offsets, &j, &okey, &ovalue);) {
                        struct group_offset *off = ovalue;
                        size_t tlen = strlen(okey);
                        int32_t partition = (int32_t)load_be32((const uint8_t *)okey + tlen + 1);
                        size_t need = VALUE_HEADER + strlen(off->metadata);
                        if (need > val_cap) {
                                val_cap = need * 2;
                                val = xrealloc(val, val_cap);
                        }
                        size_t klen = log_key(key, 'O', group->group_id, glen, okey, tlen, partition);
                        size_t vlen = offset_value(val, off);
                        rc = offset_log_rewrite_add(gc->log, key, klen, val, vlen);
                }
        }
        free(key);
        free(val);
        if (rc == 0)
                rc = offset_log_rewrite_commit(gc->log);
        else
                offset_log_rewrite_abort(gc->log);
        if (rc < 0)
                log_error("group store compaction failed (the old file stays in use): %s", strerror(-rc));
        else
                log_info("group store compacted: %lld -> %lld bytes", (long long)size,
                         (long long)offset_log_size(gc->log));
}

/* ---- commits ---- */

void offsets_store_group_type(struct group_coordinator *gc, struct group *group)
{
        if (group->type_stored || !group->protocol_type || !group->protocol_type[0])
                return;
        uint8_t key[3 + GROUP_MAX_ID_BYTES];
        size_t glen = strlen(group->group_id);
        size_t klen = log_key(key, 'T', group->group_id, glen, NULL, 0, 0);
        int rc = offset_log_append(gc->log, OFFSET_LOG_PUT, key, klen, group->protocol_type,
                                   strlen(group->protocol_type));
        if (rc < 0) {
                log_warn("group %s: cannot store its protocol type: %s", group->group_id, strerror(-rc));
                return;
        }
        group->type_stored = true;
        gc->live_bytes += (int64_t)type_record_size(group);
}

int16_t group_commit_check(struct group_coordinator *gc, struct kafka_str group_id, int32_t generation_id,
                           struct kafka_str member_id, struct kafka_str group_instance_id, int64_t now_ms)
{
        if (group_id.len < 0 || group_id.len > GROUP_MAX_ID_BYTES)
                return KAFKA_INVALID_GROUP_ID;
        struct group *group = group_find(gc, group_id.ptr, (size_t)group_id.len);
        if (!group) {
                /* A consumer that assigns its own partitions stores offsets in a group of
                 * its own; anything else is a stale generation. */
                if (generation_id >= 0)
                        return KAFKA_ILLEGAL_GENERATION;
                group_get_or_create(gc, group_id.ptr, (size_t)group_id.len, now_ms);
                return KAFKA_NONE;
        }
        struct group_member *static_m =
                group_instance_id.len >= 0 ? map_get(&group->statics, group_instance_id.ptr, (size_t)group_instance_id.len)
                                           : NULL;
        if (static_m && (member_id.len != (int32_t)strlen(static_m->member_id) ||
                         memcmp(member_id.ptr, static_m->member_id, (size_t)member_id.len) != 0))
                return KAFKA_FENCED_INSTANCE_ID;
        if (generation_id < 0 && group->state == GROUP_EMPTY)
                return KAFKA_NONE;
        if (group->state == GROUP_COMPLETING_REBALANCE)
                return KAFKA_REBALANCE_IN_PROGRESS;
        if (member_id.len <= 0 || !map_get(&group->members_by_id, member_id.ptr, (size_t)member_id.len))
                return KAFKA_UNKNOWN_MEMBER_ID;
        if (generation_id != group->generation_id)
                return KAFKA_ILLEGAL_GENERATION;
        return KAFKA_NONE;
}

int16_t group_commit_offset(struct group_coordinator *gc, struct kafka_str group_id, struct kafka_str topic,
                            int32_t partition, int64_t offset, int32_t leader_epoch, struct kafka_str metadata,
                            int64_t expire_ms, int64_t now_ms)
{
        struct group *group = group_find(gc, group_id.ptr, (size_t)MAX(group_id.len, 0));
        if (!group)
                return KAFKA_ILLEGAL_GENERATION;
        if (metadata.len > gc->cfg.offset_metadata_max_bytes)
                return KAFKA_OFFSET_METADATA_TOO_LARGE;
        if (topic.len <= 0 || topic.len > 255 || memchr(topic.ptr, 0, (size_t)topic.len) ||
            (metadata.len > 0 && memchr(metadata.ptr, 0, (size_t)metadata.len)))
                return KAFKA_INVALID_REQUEST;
        struct group_offset *off = xcalloc(1, sizeof(*off));
        off->offset = offset;
        off->leader_epoch = leader_epoch;
        off->commit_ms = now_ms;
        off->expire_ms = expire_ms;
        int32_t mlen = MAX(metadata.len, 0);
        off->metadata = xmalloc((size_t)mlen + 1);
        if (mlen)
                memcpy(off->metadata, metadata.ptr, (size_t)mlen);
        off->metadata[mlen] = '\0';

        size_t glen = strlen(group->group_id);
        uint8_t *key = xmalloc(3 + glen + 2 + (size_t)topic.len + 4);
        size_t klen = log_key(key, 'O', group->group_id, glen, topic.ptr, (size_t)topic.len, partition);
        uint8_t *val = xmalloc(VALUE_HEADER + (size_t)mlen);
        size_t vlen = offset_value(val, off);
        int rc = offset_log_append(gc->log, OFFSET_LOG_PUT, key, klen, val, vlen);
        free(key);
        free(val);
        if (rc < 0) {
                log_error("group %s: storing an offset failed: %s", group->group_id, strerror(-rc));
                offset_free(off);
                return KAFKA_KAFKA_STORAGE_ERROR;
        }
        put_offset(gc, group, topic.ptr, (size_t)topic.len, partition, off);
        maybe_compact(gc);
        return KAFKA_NONE;
}

const struct group_offset *group_offset_get(const struct group *group, const char *topic, size_t topic_len,
                                            int32_t partition)
{
        char key[300];
        size_t klen = offset_map_key(key, sizeof(key), topic, topic_len, partition);
        return klen ? map_get(&group->offsets, key, klen) : NULL;
}

static int entry_cmp(const void *a, const void *b)
{
        const struct group_offset_entry *x = a, *y = b;
        int c = strcmp(x->topic, y->topic);
        if (c)
                return c;
        return (x->partition > y->partition) - (x->partition < y->partition);
}

int32_t group_offsets_list(const struct group *group, struct group_offset_entry **out)
{
        struct group_offset_entry *entries = xcalloc(MAX(group->offsets.len, 1), sizeof(*entries));
        int32_t n = 0;
        const char *key;
        void *value;
        for (size_t i = 0; map_next(&group->offsets, &i, &key, &value);) {
                size_t tlen = strlen(key);
                entries[n].topic = key;
                entries[n].topic_len = tlen;
                entries[n].partition = (int32_t)load_be32((const uint8_t *)key + tlen + 1);
                entries[n].off = value;
                n++;
        }
        qsort(entries, (size_t)n, sizeof(*entries), entry_cmp);
        *out = entries;
        return n;
}

/* Deletes one offset durably. Returns 0 or -errno. */
static int delete_offset(struct group_coordinator *gc, struct group *group, const char *topic, size_t topic_len,
                         int32_t partition)
{
        if (!group_offset_get(group, topic, topic_len, partition))
                return 0;
        size_t glen = strlen(group->group_id);
        uint8_t *key = xmalloc(3 + glen + 2 + topic_len + 4);
        size_t klen = log_key(key, 'O', group->group_id, glen, topic, topic_len, partition);
        int rc = offset_log_append(gc->log, OFFSET_LOG_DELETE, key, klen, NULL, 0);
        free(key);
        if (rc < 0) {
                log_error("group %s: deleting an offset failed: %s", group->group_id, strerror(-rc));
                return rc;
        }
        drop_offset(gc, group, topic, topic_len, partition);
        return 0;
}

int16_t group_offset_delete(struct group_coordinator *gc, struct group *group, struct kafka_str topic,
                            int32_t partition)
{
        if (topic.len <= 0 || topic.len > 255)
                return KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
        if (group->state != GROUP_EMPTY && group_subscribes(group, topic.ptr, (size_t)topic.len))
                return KAFKA_GROUP_SUBSCRIBED_TO_TOPIC;
        if (delete_offset(gc, group, topic.ptr, (size_t)topic.len, partition) < 0)
                return KAFKA_KAFKA_STORAGE_ERROR;
        return KAFKA_NONE;
}

/* Deletes every offset of <group> for which <pred> holds; returns how many. */
static int delete_where(struct group_coordinator *gc, struct group *group,
                        bool (*pred)(const char *topic, const struct group_offset *off, const struct group *group,
                                     const void *arg, int64_t now_ms),
                        const void *arg, int64_t now_ms)
{
        struct group_offset_entry *entries;
        int32_t n = group_offsets_list(group, &entries);
        int deleted = 0;
        for (int32_t i = 0; i < n; i++) {
                if (!pred(entries[i].topic, entries[i].off, group, arg, now_ms))
                        continue;
                /* Copy the topic: deleting frees the map key it points to. */
                char topic[256];
                size_t tlen = MIN(entries[i].topic_len, sizeof(topic) - 1);
                memcpy(topic, entries[i].topic, tlen);
                if (delete_offset(gc, group, topic, tlen, entries[i].partition) == 0)
                        deleted++;
        }
        free(entries);
        return deleted;
}

static bool topic_is(const char *topic, const struct group_offset *off, const struct group *group, const void *arg,
                     int64_t now_ms)
{
        return strcmp(topic, arg) == 0;
}

void group_coordinator_topic_deleted(struct group_coordinator *gc, const char *topic)
{
        const char *key;
        void *value;
        for (size_t i = 0; map_next(&gc->groups, &i, &key, &value);) {
                int n = delete_where(gc, value, topic_is, topic, 0);
                if (n)
                        log_info("group %s: %d offsets of deleted topic %s removed", ((struct group *)value)->group_id,
                                 n, topic);
        }
}

static bool expired(const char *topic, const struct group_offset *off, const struct group *group, const void *arg,
                    int64_t now_ms)
{
        int64_t retention_ms = *(const int64_t *)arg;
        if (off->expire_ms >= 0)
                return now_ms >= off->expire_ms;
        bool consumer_group = group->protocol_type && group->protocol_type[0];
        if (group->state == GROUP_EMPTY) {
                int64_t since = consumer_group ? group->state_since_ms : off->commit_ms;
                return now_ms - since >= retention_ms;
        }
        if (group->state == GROUP_STABLE && consumer_group && strcmp(group->protocol_type, "consumer") == 0 &&
            !group_subscribes(group, topic, strlen(topic)))
                return now_ms - off->commit_ms >= retention_ms;
        return false;
}

void offsets_expire(struct group_coordinator *gc, int64_t now_ms)
{
        int64_t retention_ms = gc->cfg.offsets_retention_ms;
        int total = 0;
        const char *key;
        void *value;
        for (size_t i = 0; map_next(&gc->groups, &i, &key, &value);) {
                struct group *group = value;
                int n = delete_where(gc, group, expired, &retention_ms, now_ms);
                total += n;
                if (n)
                        log_info("group %s: %d committed offsets expired", group->group_id, n);
                if (group->state == GROUP_EMPTY && group->members_count == 0 && group->pending.len == 0 &&
                    group->offsets.len == 0) {
                        if (group->type_stored) {
                                uint8_t gkey[3 + GROUP_MAX_ID_BYTES];
                                size_t klen = log_key(gkey, 'G', group->group_id, strlen(group->group_id), NULL, 0, 0);
                                if (offset_log_append(gc->log, OFFSET_LOG_DELETE, gkey, klen, NULL, 0) < 0)
                                        continue;
                                drop_group_records(gc, group);
                        }
                        map_del(&gc->groups, group->group_id, strlen(group->group_id));
                        group_free(group, KAFKA_COORDINATOR_NOT_AVAILABLE);
                        i = 0; /* the table changed: rescan */
                }
        }
        if (total)
                maybe_compact(gc);
}

int16_t group_delete(struct group_coordinator *gc, struct kafka_str group_id)
{
        if (group_id.len < 0)
                return KAFKA_INVALID_GROUP_ID;
        struct group *group = group_find(gc, group_id.ptr, (size_t)group_id.len);
        if (!group || group->state == GROUP_DEAD)
                return KAFKA_GROUP_ID_NOT_FOUND;
        if (group->state != GROUP_EMPTY || group->members_count > 0)
                return KAFKA_NON_EMPTY_GROUP;
        uint8_t key[3 + GROUP_MAX_ID_BYTES];
        size_t klen = log_key(key, 'G', group->group_id, strlen(group->group_id), NULL, 0, 0);
        int rc = offset_log_append(gc->log, OFFSET_LOG_DELETE, key, klen, NULL, 0);
        if (rc < 0) {
                log_error("group %s: delete failed: %s", group->group_id, strerror(-rc));
                return KAFKA_KAFKA_STORAGE_ERROR;
        }
        drop_group_records(gc, group);
        map_del(&gc->groups, group->group_id, strlen(group->group_id));
        log_info("group %s deleted", group->group_id);
        group_free(group, KAFKA_GROUP_ID_NOT_FOUND);
        maybe_compact(gc);
        return KAFKA_NONE;
}

/* ---- consumer subscriptions ---- */

/* Whether the consumer-protocol subscription <meta> (ConsumerProtocolSubscription: i16
 * version, array of i16-length topic names, ...) names <topic>. Checks every length. */
static bool subscription_names(struct kafka_bytes meta, const char *topic, size_t topic_len)
{
        if (meta.len < 6)
                return false;
        const uint8_t *p = meta.ptr;
        size_t left = (size_t)meta.len;
        p += 2;
        left -= 2;
        int32_t count = (int32_t)load_be32(p);
        p += 4;
        left -= 4;
        for (int32_t i = 0; i < count; i++) {
                if (left < 2)
                        return false;
                int16_t len = (int16_t)load_be16(p);
                p += 2;
                left -= 2;
                if (len < 0 || (size_t)len > left)
                        return false;
                if ((size_t)len == topic_len && memcmp(p, topic, topic_len) == 0)
                        return true;
                p += len;
                left -= (size_t)len;
        }
        return false;
}

bool group_subscribes(const struct group *group, const char *topic, size_t topic_len)
{
        if (!group->protocol_type || strcmp(group->protocol_type, "consumer") != 0)
                return false;
        for (const struct group_member *m = group->members; m; m = m->next) {
                struct kafka_bytes meta = group_member_metadata(group, m);
                if (meta.len < 0 && m->protocols_count > 0)
                        meta = (struct kafka_bytes){ m->protocols[0].metadata, m->protocols[0].metadata_len };
                if (subscription_names(meta, topic, topic_len))
                        return true;
        }
        return false;
}
