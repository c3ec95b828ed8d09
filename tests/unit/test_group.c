/* The group coordinator's state machine driven directly, with explicit times, and its
 * store (offset_log) on a real file. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "broker/group/group.h"
#include "broker/group/offset_log.h"
#include "kafka/errors.h"
#include "test.h"

/* ---- helpers ---- */

struct join_seen {
        int calls;
        int16_t error;
        int32_t generation;
        char member_id[160];
        char leader[160];
        char protocol[32];
        int32_t members;
        bool skip_assignment;
};

static void on_join(void *ctx, const struct group_join_result *r)
{
        struct join_seen *s = ctx;
        s->calls++;
        s->error = r->error_code;
        s->generation = r->generation_id;
        snprintf(s->member_id, sizeof(s->member_id), "%s", r->member_id ? r->member_id : "");
        snprintf(s->leader, sizeof(s->leader), "%s", r->leader_id ? r->leader_id : "");
        snprintf(s->protocol, sizeof(s->protocol), "%s", r->protocol_name ? r->protocol_name : "");
        s->members = r->members_count;
        s->skip_assignment = r->skip_assignment;
}

struct sync_seen {
        int calls;
        int16_t error;
        char assignment[64];
};

static void on_sync(void *ctx, const struct group_sync_result *r)
{
        struct sync_seen *s = ctx;
        s->calls++;
        s->error = r->error_code;
        snprintf(s->assignment, sizeof(s->assignment), "%.*s", (int)r->assignment.len, (const char *)r->assignment.ptr);
}

static struct kafka_str S(const char *s)
{
        return s ? (struct kafka_str){ s, (int32_t)strlen(s) } : (struct kafka_str){ NULL, -1 };
}

/* A consumer subscription (version 0) to topic "t". */
static const uint8_t SUB_T[] = { 0, 0, 0, 0, 0, 1, 0, 1, 't', 0, 0, 0, 0 };

static struct kafka_str NAMES_RANGE_RR[] = { { "range", 5 }, { "roundrobin", 10 } };
static struct kafka_str NAMES_RR[] = { { "roundrobin", 10 } };
static struct kafka_str NAMES_STICKY[] = { { "sticky", 6 } };
static struct kafka_bytes METAS[] = { { SUB_T, sizeof(SUB_T) }, { SUB_T, sizeof(SUB_T) } };

static struct group_join_request join_req(const char *group, const char *member, const char *instance)
{
        struct group_join_request jr = {
                .group_id = S(group),
                .member_id = S(member ? member : ""),
                .group_instance_id = S(instance),
                .protocol_type = S("consumer"),
                .client_id = S("c"),
                .client_host = S("/127.0.0.1"),
                .session_timeout_ms = 10000,
                .rebalance_timeout_ms = 30000,
                .protocol_names = NAMES_RANGE_RR,
                .protocol_metadata = METAS,
                .protocols_count = 2,
                .require_known_member_id = true,
        };
        return jr;
}

static const struct group_coordinator_config CFG = {
        .min_session_timeout_ms = 1000,
        .max_session_timeout_ms = 60000,
        .initial_rebalance_delay_ms = 0,
        .max_size = 100,
        .offset_metadata_max_bytes = 16,
        .offsets_retention_ms = 3600000,
        .offsets_retention_check_interval_ms = 60000,
};

static struct group_coordinator *open_gc(const struct group_coordinator_config *cfg, int64_t now)
{
        struct group_coordinator *gc = NULL;
        if (group_coordinator_open(test_tmpdir, cfg, now, &gc) < 0)
                return NULL;
        return gc;
}

/* Joins a new dynamic member through MEMBER_ID_REQUIRED; returns its wait (the join
 * completes when the rebalance does) and fills <seen>. */
static struct group_wait *join_new(struct group_coordinator *gc, const char *group, int64_t now, struct join_seen *seen)
{
        struct group_join_request jr = join_req(group, NULL, NULL);
        memset(seen, 0, sizeof(*seen));
        struct group_wait *w = group_join(gc, &jr, now, on_join, seen);
        if (w || seen->error != KAFKA_MEMBER_ID_REQUIRED)
                return NULL;
        char id[160];
        snprintf(id, sizeof(id), "%s", seen->member_id);
        memset(seen, 0, sizeof(*seen));
        jr.member_id = S(id);
        /* The id must outlive this frame only until the coordinator copied it. */
        return group_join(gc, &jr, now, on_join, seen);
}

static int16_t sync_member(struct group_coordinator *gc, const char *group, const char *member, int32_t generation,
                           const struct group_sync_assignment *as, int32_t n, int64_t now, struct sync_seen *seen)
{
        struct group_sync_request sr = { .group_id = S(group), .member_id = S(member), .group_instance_id = S(NULL),
                                         .protocol_type = S(NULL), .protocol_name = S(NULL),
                                         .generation_id = generation, .assignments = as, .assignments_count = n };
        memset(seen, 0, sizeof(*seen));
        group_sync(gc, &sr, now, on_sync, seen);
        return seen->calls ? seen->error : -1;
}

/* ---- tests ---- */

TEST(group_two_members_join_sync_and_heartbeat)
{
        struct group_coordinator *gc = open_gc(&CFG, 1000);
        CHECK(gc);
        struct join_seen a, b;
        /* One member alone completes the join at once (no initial delay configured). */
        group_join(gc, &(struct group_join_request){ 0 }, 1000, on_join, &a);
        CHECK_EQ(a.error, KAFKA_INVALID_GROUP_ID);
        join_new(gc, "g", 1000, &a);
        CHECK_EQ(a.calls, 1);
        CHECK_EQ(a.error, KAFKA_NONE);
        CHECK_EQ(a.generation, 1);
        CHECK(strcmp(a.leader, a.member_id) == 0);
        CHECK_EQ(a.members, 1);
        CHECK(strcmp(a.protocol, "range") == 0);
        struct sync_seen sa, sb;
        struct group_sync_assignment as1[] = { { S(a.member_id), { (const uint8_t *)"A-all", 5 } } };
        CHECK_EQ(sync_member(gc, "g", a.member_id, 1, as1, 1, 1000, &sa), KAFKA_NONE);
        CHECK(strcmp(sa.assignment, "A-all") == 0);
        CHECK_EQ(group_find(gc, "g", 1)->state, GROUP_STABLE);

        /* A second member starts a rebalance; the first learns it from its heartbeat. */
        struct group_wait *wb = join_new(gc, "g", 2000, &b);
        CHECK(wb);
        CHECK_EQ(b.calls, 0);
        CHECK_EQ(group_heartbeat(gc, S("g"), 1, S(a.member_id), S(NULL), 2000), KAFKA_REBALANCE_IN_PROGRESS);
        char a_id[160];
        snprintf(a_id, sizeof(a_id), "%s", a.member_id);
        struct group_join_request ja = join_req("g", a_id, NULL);
        group_join(gc, &ja, 2100, on_join, &a);
        CHECK_EQ(a.calls, 2);
        CHECK_EQ(b.calls, 1);
        CHECK_EQ(a.generation, 2);
        CHECK_EQ(b.generation, 2);
        CHECK_EQ(a.members, 2); /* the leader stays the leader and sees both */
        CHECK_EQ(b.members, 0);
        CHECK(strcmp(b.leader, a.member_id) == 0);

        /* The follower's sync waits for the leader's. */
        struct group_sync_assignment as2[] = { { S(a.member_id), { (const uint8_t *)"A-half", 6 } },
                                               { S(b.member_id), { (const uint8_t *)"B-half", 6 } } };
        CHECK_EQ(sync_member(gc, "g", b.member_id, 2, NULL, 0, 2200, &sb), -1);
        CHECK_EQ(sync_member(gc, "g", a.member_id, 1, as2, 2, 2200, &sa), KAFKA_ILLEGAL_GENERATION);
        CHECK_EQ(sync_member(gc, "g", a.member_id, 2, as2, 2, 2200, &sa), KAFKA_NONE);
        CHECK_EQ(sb.calls, 1);
        CHECK(strcmp(sb.assignment, "B-half") == 0);
        CHECK(strcmp(sa.assignment, "A-half") == 0);
        CHECK_EQ(group_heartbeat(gc, S("g"), 2, S(b.member_id), S(NULL), 2300), KAFKA_NONE);
        CHECK_EQ(group_heartbeat(gc, S("g"), 2, S("nobody"), S(NULL), 2300), KAFKA_UNKNOWN_MEMBER_ID);
        CHECK_EQ(group_heartbeat(gc, S("nogroup"), 2, S(b.member_id), S(NULL), 2300), KAFKA_UNKNOWN_MEMBER_ID);
        CHECK_EQ(sync_member(gc, "g", "nobody", 2, NULL, 0, 2300, &sb), KAFKA_UNKNOWN_MEMBER_ID);
        group_coordinator_close(gc);
}

TEST(group_session_expiry_and_rebalance_timeout)
{
        struct group_coordinator *gc = open_gc(&CFG, 0);
        CHECK(gc);
        struct join_seen a, b;
        struct sync_seen sa, sb;
        join_new(gc, "g", 0, &a);
        struct group_wait *wb = join_new(gc, "g", 0, &b);
        CHECK(wb);
        char a_id[160];
        snprintf(a_id, sizeof(a_id), "%s", a.member_id);
        struct group_join_request ja = join_req("g", a_id, NULL);
        group_join(gc, &ja, 10, on_join, &a);
        CHECK_EQ(b.generation, 2);
        sync_member(gc, "g", b.member_id, 2, NULL, 0, 20, &sb);
        sync_member(gc, "g", a.member_id, 2, NULL, 0, 20, &sa);
        CHECK_EQ(sb.error, KAFKA_NONE);

        /* b stops heartbeating: after its 10 s session it is removed and a rebalances. */
        CHECK_EQ(group_heartbeat(gc, S("g"), 2, S(a.member_id), S(NULL), 9000), KAFKA_NONE);
        CHECK(group_coordinator_next_deadline(gc) <= 10020);
        group_coordinator_tick(gc, 10020);
        struct group *g = group_find(gc, "g", 1);
        CHECK_EQ(g->members_count, 1);
        CHECK_EQ(g->state, GROUP_PREPARING_REBALANCE);
        CHECK_EQ(group_heartbeat(gc, S("g"), 2, S(a.member_id), S(NULL), 10030), KAFKA_REBALANCE_IN_PROGRESS);
        group_join(gc, &ja, 10040, on_join, &a);
        CHECK_EQ(a.generation, 3);
        CHECK_EQ(a.members, 1);

        /* b comes back; a keeps heartbeating but never rejoins: it is dropped when the
         * rebalance timeout (30 s) ends, and b alone forms the next generation. */
        sync_member(gc, "g", a.member_id, 3, NULL, 0, 10050, &sa);
        struct group_wait *wb2 = join_new(gc, "g", 11000, &b);
        CHECK(wb2);
        for (int64_t t = 15000; t <= 40000; t += 5000) {
                CHECK_EQ(group_heartbeat(gc, S("g"), 3, S(a.member_id), S(NULL), t), KAFKA_REBALANCE_IN_PROGRESS);
                group_coordinator_tick(gc, t);
        }
        CHECK_EQ(b.calls, 0);
        group_coordinator_tick(gc, 41000);
        CHECK_EQ(b.calls, 1);
        CHECK_EQ(b.error, KAFKA_NONE);
        CHECK_EQ(b.generation, 4);
        CHECK_EQ(g->members_count, 1);
        CHECK(strcmp(b.leader, b.member_id) == 0);
        CHECK_EQ(group_heartbeat(gc, S("g"), 3, S(a.member_id), S(NULL), 41000), KAFKA_UNKNOWN_MEMBER_ID);

        /* A member whose session ends while the others wait in a rebalance no longer
         * holds the rebalance up. */
        struct sync_seen sb2;
        sync_member(gc, "g", b.member_id, 4, NULL, 0, 41000, &sb2);
        struct join_seen c;
        CHECK(join_new(gc, "g", 42000, &c));
        group_coordinator_tick(gc, 50000);
        CHECK_EQ(c.calls, 0);
        group_coordinator_tick(gc, 51001); /* b's session (10 s from 41000) is over */
        CHECK_EQ(c.calls, 1);
        CHECK_EQ(c.generation, 5);
        group_coordinator_close(gc);
}

TEST(group_static_member_rejoins_without_rebalance)
{
        struct group_coordinator *gc = open_gc(&CFG, 0);
        CHECK(gc);
        struct join_seen a, b;
        struct sync_seen sa, sb;
        struct group_join_request ja = join_req("g", NULL, "inst-a");
        group_join(gc, &ja, 0, on_join, &a); /* static members skip MEMBER_ID_REQUIRED */
        CHECK_EQ(a.error, KAFKA_NONE);
        CHECK_EQ(a.generation, 1);
        struct group_join_request jb = join_req("g", NULL, "inst-b");
        struct group_wait *wb = group_join(gc, &jb, 0, on_join, &b);
        CHECK(wb);
        char a_id[160];
        snprintf(a_id, sizeof(a_id), "%s", a.member_id);
        ja.member_id = S(a_id);
        group_join(gc, &ja, 10, on_join, &a);
        CHECK_EQ(a.generation, 2);
        struct group_sync_assignment as[] = { { S(a.member_id), { (const uint8_t *)"A", 1 } },
                                              { S(b.member_id), { (const uint8_t *)"B", 1 } } };
        sync_member(gc, "g", b.member_id, 2, NULL, 0, 20, &sb);
        sync_member(gc, "g", a.member_id, 2, as, 2, 20, &sa);
        CHECK_EQ(sb.error, KAFKA_NONE);

        /* b restarts with the same instance id: new member id, same generation, no rebalance. */
        char old_b[160];
        snprintf(old_b, sizeof(old_b), "%s", b.member_id);
        jb.member_id = S("");
        group_join(gc, &jb, 1000, on_join, &b);
        CHECK_EQ(b.error, KAFKA_NONE);
        CHECK_EQ(b.generation, 2);
        CHECK(strcmp(b.member_id, old_b) != 0);
        CHECK_EQ(group_find(gc, "g", 1)->state, GROUP_STABLE);
        CHECK_EQ(sync_member(gc, "g", b.member_id, 2, NULL, 0, 1000, &sb), KAFKA_NONE);
        CHECK(strcmp(sb.assignment, "B") == 0);
        CHECK_EQ(group_heartbeat(gc, S("g"), 2, S(a.member_id), S("inst-a"), 1000), KAFKA_NONE);
        /* The old incarnation is fenced. */
        CHECK_EQ(group_heartbeat(gc, S("g"), 2, S(old_b), S("inst-b"), 1000), KAFKA_FENCED_INSTANCE_ID);
        CHECK_EQ(group_leave(gc, S("g"), S(old_b), S("inst-b"), 1000), KAFKA_FENCED_INSTANCE_ID);
        CHECK_EQ(group_leave(gc, S("g"), S(""), S("inst-b"), 1000), KAFKA_NONE);
        CHECK_EQ(group_find(gc, "g", 1)->state, GROUP_PREPARING_REBALANCE);
        group_coordinator_close(gc);
}

TEST(group_protocol_selection_and_inconsistency)
{
        struct group_coordinator *gc = open_gc(&CFG, 0);
        CHECK(gc);
        struct join_seen a, b, c;
        struct group_wait *wa = join_new(gc, "g", 0, &a);
        CHECK(!wa);
        CHECK(strcmp(a.protocol, "range") == 0);
        /* b only speaks roundrobin: the next generation must use roundrobin. */
        struct group_join_request jb = join_req("g", NULL, NULL);
        jb.protocol_names = NAMES_RR;
        jb.protocols_count = 1;
        jb.require_known_member_id = false;
        struct group_wait *wb = group_join(gc, &jb, 10, on_join, &b);
        CHECK(wb);
        char a_id[160];
        snprintf(a_id, sizeof(a_id), "%s", a.member_id);
        struct group_join_request ja = join_req("g", a_id, NULL);
        group_join(gc, &ja, 20, on_join, &a);
        CHECK(strcmp(b.protocol, "roundrobin") == 0);
        /* c shares no protocol with b. */
        struct group_join_request jc = join_req("g", NULL, NULL);
        jc.protocol_names = NAMES_STICKY;
        jc.protocols_count = 1;
        group_join(gc, &jc, 30, on_join, &c);
        CHECK_EQ(c.error, KAFKA_INCONSISTENT_GROUP_PROTOCOL);
        jc = join_req("g", NULL, NULL);
        jc.protocol_type = S("connect");
        group_join(gc, &jc, 30, on_join, &c);
        CHECK_EQ(c.error, KAFKA_INCONSISTENT_GROUP_PROTOCOL);
        /* Hostile values. */
        jc = join_req("g2", NULL, NULL);
        jc.session_timeout_ms = 1;
        group_join(gc, &jc, 30, on_join, &c);
        CHECK_EQ(c.error, KAFKA_INVALID_SESSION_TIMEOUT);
        jc.session_timeout_ms = INT32_MAX;
        group_join(gc, &jc, 30, on_join, &c);
        CHECK_EQ(c.error, KAFKA_INVALID_SESSION_TIMEOUT);
        static uint8_t big[GROUP_MAX_MEMBER_METADATA_BYTES + 1];
        struct kafka_bytes big_meta[] = { { big, sizeof(big) } };
        jc = join_req("g2", NULL, NULL);
        jc.protocol_metadata = big_meta;
        jc.protocols_count = 1;
        group_join(gc, &jc, 30, on_join, &c);
        CHECK_EQ(c.error, KAFKA_INVALID_REQUEST);
        CHECK(group_find(gc, "g2", 2) == NULL);
        group_coordinator_close(gc);
}

TEST(group_offsets_durable_compacted_and_expired)
{
        struct group_coordinator_config cfg = CFG;
        struct group_coordinator *gc = open_gc(&cfg, 0);
        CHECK(gc);
        /* A consumer that assigns partitions itself commits with generation -1. */
        CHECK_EQ(group_commit_check(gc, S("solo"), -1, S(""), S(NULL), 0), KAFKA_NONE);
        CHECK_EQ(group_commit_check(gc, S("unknown"), 5, S("m"), S(NULL), 0), KAFKA_ILLEGAL_GENERATION);
        CHECK_EQ(group_commit_offset(gc, S("solo"), S("t"), 0, 42, 3, S("meta"), -1, 0), KAFKA_NONE);
        CHECK_EQ(group_commit_offset(gc, S("solo"), S("t"), 1, 7, -1, S(NULL), -1, 0), KAFKA_NONE);
        CHECK_EQ(group_commit_offset(gc, S("solo"), S("t"), 1, 8, -1, S("this metadata is too long"), -1, 0),
                 KAFKA_OFFSET_METADATA_TOO_LARGE);
        /* Many overwrites of one offset: the store compacts and stays small. */
        for (int i = 0; i < 200000; i++)
                CHECK_EQ(group_commit_offset(gc, S("solo"), S("u"), 0, i, -1, S(NULL), -1, 100), KAFKA_NONE);
        char path[512];
        snprintf(path, sizeof(path), "%s/groups.log", test_tmpdir);
        int fd = open(path, O_RDONLY);
        CHECK(fd >= 0);
        off_t size = lseek(fd, 0, SEEK_END);
        close(fd);
        CHECK(size < 8 << 20);
        group_coordinator_close(gc);

        /* Reopen: everything is there, the latest value of each. */
        gc = open_gc(&cfg, 1000);
        CHECK(gc);
        struct group *g = group_find(gc, "solo", 4);
        CHECK(g);
        const struct group_offset *off = group_offset_get(g, "t", 1, 0);
        CHECK(off);
        CHECK_EQ(off->offset, 42);
        CHECK_EQ(off->leader_epoch, 3);
        CHECK(strcmp(off->metadata, "meta") == 0);
        CHECK_EQ(group_offset_get(g, "t", 1, 1)->offset, 7);
        CHECK_EQ(group_offset_get(g, "u", 1, 0)->offset, 199999);
        struct group_offset_entry *entries;
        CHECK_EQ(group_offsets_list(g, &entries), 3);
        CHECK(strcmp(entries[0].topic, "t") == 0 && entries[0].partition == 0);
        CHECK(strcmp(entries[2].topic, "u") == 0);
        free(entries);

        /* A deleted topic takes its offsets along; retention expires the rest. */
        group_coordinator_topic_deleted(gc, "u");
        CHECK(group_offset_get(g, "u", 1, 0) == NULL);
        group_coordinator_tick(gc, 1000 + 60000);
        CHECK(group_find(gc, "solo", 4) != NULL);
        group_coordinator_tick(gc, 3600000 + 61000);
        CHECK(group_find(gc, "solo", 4) == NULL);
        group_coordinator_close(gc);
        gc = open_gc(&cfg, 4000000);
        CHECK(gc);
        CHECK(group_find(gc, "solo", 4) == NULL);
        group_coordinator_close(gc);
}

TEST(group_delete_and_commit_rules)
{
        struct group_coordinator *gc = open_gc(&CFG, 0);
        CHECK(gc);
        struct join_seen a;
        struct sync_seen sa;
        join_new(gc, "g", 0, &a);
        CHECK_EQ(group_commit_check(gc, S("g"), 1, S(a.member_id), S(NULL), 0), KAFKA_REBALANCE_IN_PROGRESS);
        sync_member(gc, "g", a.member_id, 1, NULL, 0, 0, &sa);
        CHECK_EQ(group_commit_check(gc, S("g"), 1, S(a.member_id), S(NULL), 0), KAFKA_NONE);
        CHECK_EQ(group_commit_check(gc, S("g"), 0, S(a.member_id), S(NULL), 0), KAFKA_ILLEGAL_GENERATION);
        CHECK_EQ(group_commit_check(gc, S("g"), 1, S("other"), S(NULL), 0), KAFKA_UNKNOWN_MEMBER_ID);
        CHECK_EQ(group_commit_check(gc, S("g"), -1, S(""), S(NULL), 0), KAFKA_UNKNOWN_MEMBER_ID);
        CHECK_EQ(group_commit_offset(gc, S("g"), S("t"), 0, 5, -1, S(NULL), -1, 0), KAFKA_NONE);
        CHECK(group_subscribes(group_find(gc, "g", 1), "t", 1));
        CHECK(!group_subscribes(group_find(gc, "g", 1), "x", 1));
        CHECK_EQ(group_offset_delete(gc, group_find(gc, "g", 1), S("t"), 0), KAFKA_GROUP_SUBSCRIBED_TO_TOPIC);
        CHECK_EQ(group_delete(gc, S("g")), KAFKA_NON_EMPTY_GROUP);
        CHECK_EQ(group_delete(gc, S("nope")), KAFKA_GROUP_ID_NOT_FOUND);
        CHECK_EQ(group_leave(gc, S("g"), S(a.member_id), S(NULL), 10), KAFKA_NONE);
        CHECK_EQ(group_find(gc, "g", 1)->state, GROUP_EMPTY);
        CHECK_EQ(group_delete(gc, S("g")), KAFKA_NONE);
        CHECK(group_find(gc, "g", 1) == NULL);
        group_coordinator_close(gc);
        gc = open_gc(&CFG, 100);
        CHECK(gc);
        CHECK(group_find(gc, "g", 1) == NULL);
        group_coordinator_close(gc);
}

static int replayed;
static void count_replay(void *ctx, enum offset_log_type type, const uint8_t *key, size_t key_len,
                         const uint8_t *value, size_t value_len)
{
        replayed++;
}

TEST(offset_log_truncates_a_torn_tail)
{
        char path[512];
        snprintf(path, sizeof(path), "%s/x.log", test_tmpdir);
        struct offset_log *log;
        replayed = 0;
        CHECK_EQ(offset_log_open(path, count_replay, NULL, &log), 0);
        CHECK_EQ(offset_log_append(log, OFFSET_LOG_PUT, "k1", 2, "v1", 2), 0);
        CHECK_EQ(offset_log_append(log, OFFSET_LOG_PUT, "k2", 2, "v2", 2), 0);
        int64_t good = offset_log_size(log);
        CHECK_EQ(offset_log_append(log, OFFSET_LOG_DELETE, "k1", 2, NULL, 0), 0);
        int64_t full = offset_log_size(log);
        offset_log_close(log);
        /* Cut the last record in half, as a crash during its write would. */
        CHECK_EQ(truncate(path, good + (full - good) / 2), 0);
        CHECK_EQ(offset_log_open(path, count_replay, NULL, &log), 0);
        CHECK_EQ(replayed, 2);
        CHECK_EQ(offset_log_size(log), good);
        /* Appends continue after the good records. */
        CHECK_EQ(offset_log_append(log, OFFSET_LOG_PUT, "k3", 2, "v3", 2), 0);
        offset_log_close(log);
        replayed = 0;
        CHECK_EQ(offset_log_open(path, count_replay, NULL, &log), 0);
        CHECK_EQ(replayed, 3);
        /* A flipped byte in the middle stops the replay there. */
        offset_log_close(log);
        int fd = open(path, O_RDWR);
        CHECK(fd >= 0);
        uint8_t b = 0x55;
        CHECK(pwrite(fd, &b, 1, 8 + 8 + 2) == 1);
        close(fd);
        replayed = 0;
        CHECK_EQ(offset_log_open(path, count_replay, NULL, &log), 0);
        CHECK_EQ(replayed, 0);
        CHECK_EQ(offset_log_size(log), 8);
        CHECK_EQ(offset_log_append(log, OFFSET_LOG_PUT, NULL, 0, NULL, OFFSET_LOG_MAX_BODY), -EINVAL);
        offset_log_close(log);
}

TEST(group_follower_that_never_syncs_is_removed)
{
        struct group_coordinator *gc = open_gc(&CFG, 0);
        CHECK(gc);
        struct join_seen a, b;
        struct sync_seen sa;
        join_new(gc, "g", 0, &a);
        /* b's session is longer than the rebalance timeout, so only the sync deadline can remove it. */
        struct group_join_request jb = join_req("g", NULL, NULL);
        jb.session_timeout_ms = 60000;
        jb.require_known_member_id = false;
        CHECK(group_join(gc, &jb, 0, on_join, &b));
        char a_id[160];
        snprintf(a_id, sizeof(a_id), "%s", a.member_id);
        struct group_join_request ja = join_req("g", a_id, NULL);
        group_join(gc, &ja, 10, on_join, &a);
        CHECK_EQ(b.generation, 2);
        /* The leader syncs (the group is Stable) and keeps heartbeating; b never syncs. */
        CHECK_EQ(sync_member(gc, "g", a_id, 2, NULL, 0, 20, &sa), KAFKA_NONE);
        CHECK_EQ(group_find(gc, "g", 1)->state, GROUP_STABLE);
        for (int64_t t = 5000; t <= 30000; t += 5000) {
                CHECK_EQ(group_heartbeat(gc, S("g"), 2, S(a_id), S(NULL), t), KAFKA_NONE);
                group_coordinator_tick(gc, t);
        }
        /* 30 s (the rebalance timeout) after the join completed, b is gone. */
        group_coordinator_tick(gc, 30011);
        struct group *g = group_find(gc, "g", 1);
        CHECK_EQ(g->members_count, 1);
        CHECK_EQ(g->state, GROUP_PREPARING_REBALANCE);
        CHECK_EQ(group_heartbeat(gc, S("g"), 2, S(a_id), S(NULL), 30020), KAFKA_REBALANCE_IN_PROGRESS);
        group_coordinator_close(gc);
}
