/* The group coordinator: Kafka's classic consumer-group protocol (join, sync, heartbeat,
 * leave, with eager and cooperative clients, static membership, rebalance and session
 * timeouts) and committed offsets, kept durably in an offset_log and compacted.
 *
 * It knows nothing of connections or requests: handlers decode a request, call in with
 * plain values and the current time, and encode what comes back. Join and sync may
 * finish later (when the rebalance completes); they take a completion callback and
 * return a handle the caller cancels if its connection goes away. Time only moves
 * through <now_ms> arguments and group_coordinator_tick(), so the state machine is
 * deterministic and unit-tested without a network. Loop thread only.
 *
 * Membership is kept in memory only: after a broker restart groups come back Empty with
 * their committed offsets, and members rejoin (their old member ids get
 * UNKNOWN_MEMBER_ID, which every client answers by rejoining). */
#ifndef STRATUS_BROKER_GROUP_GROUP_H
#define STRATUS_BROKER_GROUP_GROUP_H

#include <stdbool.h>
#include <stdint.h>

#include "base/map.h"
#include "kafka/wire.h"

/* Caps that protect the broker from hostile joins (not Kafka settings). */
#define GROUP_MAX_MEMBER_METADATA_BYTES (1 << 20) /* all protocols of one member */
#define GROUP_MAX_PROTOCOLS 64
#define GROUP_MAX_ID_BYTES 32767

struct group_coordinator_config {
        int32_t min_session_timeout_ms;     /* group.min.session.timeout.ms */
        int32_t max_session_timeout_ms;     /* group.max.session.timeout.ms */
        int32_t initial_rebalance_delay_ms; /* group.initial.rebalance.delay.ms */
        int32_t max_size;                   /* group.max.size */
        int32_t offset_metadata_max_bytes;  /* offset.metadata.max.bytes */
        int64_t offsets_retention_ms;       /* offsets.retention.minutes, in ms */
        int64_t offsets_retention_check_interval_ms; /* offsets.retention.check.interval.ms */
};

enum group_state {
        GROUP_EMPTY = 0,
        GROUP_PREPARING_REBALANCE,
        GROUP_COMPLETING_REBALANCE,
        GROUP_STABLE,
        GROUP_DEAD,
};

struct group_wait;

struct group_protocol {
        char *name;
        uint8_t *metadata;
        int32_t metadata_len;
};

/* Read-only outside the coordinator. */
struct group_member {
        char *member_id;
        char *instance_id;          /* group.instance.id, or NULL for a dynamic member */
        char *client_id;
        char *client_host;
        int32_t session_timeout_ms;
        int32_t rebalance_timeout_ms;
        struct group_protocol *protocols;
        int32_t protocols_count;
        uint8_t *assignment;
        int32_t assignment_len;
        struct group_wait *join_wait; /* a JoinGroup waiting for the rebalance */
        struct group_wait *sync_wait; /* a SyncGroup waiting for the leader */
        bool awaiting_join;         /* rejoined in the current rebalance (even if its wait was cancelled) */
        bool synced;                /* sent SyncGroup in the current generation */
        bool is_new;                /* joined during the current rebalance */
        int64_t heartbeat_deadline_ms;
        struct group_member *next;  /* in group->members, in join order */
};

/* A committed offset. */
struct group_offset {
        int64_t offset;
        int32_t leader_epoch;  /* -1: unknown */
        int64_t commit_ms;
        int64_t expire_ms;     /* -1: expires by the group's retention rule */
        char *metadata;        /* never NULL */
};

/* Read-only outside the coordinator. */
struct group {
        char *group_id;
        enum group_state state;
        int32_t generation_id;
        char *protocol_type;        /* NULL until a member joined; "" for offset-only groups */
        char *protocol_name;        /* the selected protocol, NULL when none */
        char *leader_id;            /* NULL when none */
        struct group_member *members;   /* in join order */
        int32_t members_count;
        struct map members_by_id;   /* member id -> struct group_member */
        struct map statics;         /* group.instance.id -> struct group_member */
        int32_t awaiting_join_count;
        struct map pending;         /* member ids handed out with MEMBER_ID_REQUIRED -> deadline (heap int64) */
        struct map offsets;         /* "<topic>\0<partition be32>" -> struct group_offset */
        int64_t join_deadline_ms;   /* PreparingRebalance: when the join phase ends; 0 = none */
        int64_t sync_deadline_ms;   /* CompletingRebalance: when unsynced members are dropped */
        int64_t initial_join_end_ms; /* the initial delay may extend up to here; 0 = not delaying */
        bool new_member_joined;     /* during the initial delay */
        int64_t state_since_ms;     /* when the group entered its current state */
        bool type_stored;           /* protocol_type is in the store */
};

struct group_coordinator {
        struct group_coordinator_config cfg;
        struct map groups;          /* group id -> struct group */
        struct offset_log *log;
        int64_t live_bytes;         /* bytes the live records take in the log */
        int64_t next_deadline_ms;   /* lower bound of the next thing tick() must do */
        int64_t next_expiry_check_ms;
        uint64_t member_seq;
};

/* Opens the coordinator with its store in <dir> (created), loading committed offsets.
 * Returns 0 with *<out> set, or -errno (logged). */
int group_coordinator_open(const char *dir, const struct group_coordinator_config *cfg, int64_t now_ms,
                           struct group_coordinator **out);
/* Answers every waiting join and sync with COORDINATOR_NOT_AVAILABLE, syncs and closes. */
void group_coordinator_close(struct group_coordinator *gc);

/* Expires sessions, ends join and sync phases whose time is up, expires offsets. */
void group_coordinator_tick(struct group_coordinator *gc, int64_t now_ms);
/* When tick() next has something to do (INT64_MAX: nothing). */
int64_t group_coordinator_next_deadline(const struct group_coordinator *gc);
/* fdatasync()s committed offsets; returns 0 or -errno. */
int group_coordinator_sync(struct group_coordinator *gc);

/* The group <id, len>, or NULL. */
struct group *group_find(struct group_coordinator *gc, const char *id, size_t len);
/* "Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead". */
const char *group_state_name(enum group_state state);
/* The metadata <member> sent for the group's selected protocol (len -1 when none). */
struct kafka_bytes group_member_metadata(const struct group *group, const struct group_member *member);
/* True when some member's consumer subscription names <topic>. */
bool group_subscribes(const struct group *group, const char *topic, size_t topic_len);

/* ---- JoinGroup ---- */
struct group_join_request {
        struct kafka_str group_id, member_id, group_instance_id, protocol_type, client_id, client_host;
        int32_t session_timeout_ms;
        int32_t rebalance_timeout_ms;
        const struct kafka_str *protocol_names;
        const struct kafka_bytes *protocol_metadata;
        int32_t protocols_count;
        bool require_known_member_id; /* v4+: new dynamic members get MEMBER_ID_REQUIRED */
        bool supports_skip_assignment; /* v9+ */
};

struct group_join_member_info {
        const char *member_id;
        const char *instance_id;    /* NULL for a dynamic member */
        struct kafka_bytes metadata;
};

/* Valid only during the callback: copy what the response needs. */
struct group_join_result {
        int16_t error_code;
        int32_t generation_id;
        const char *protocol_type;  /* NULL when none */
        const char *protocol_name;  /* NULL when none */
        const char *leader_id;      /* "" when none */
        const char *member_id;      /* "" when none */
        bool skip_assignment;
        const struct group_join_member_info *members;
        int32_t members_count;
};

typedef void group_join_done_fn(void *ctx, const struct group_join_result *res);

/* Joins (or rejoins) a member. Calls <done> exactly once, now or when the rebalance
 * completes; returns NULL when it was called now, else a handle for group_wait_cancel(). */
struct group_wait *group_join(struct group_coordinator *gc, const struct group_join_request *jr, int64_t now_ms,
                              group_join_done_fn *done, void *ctx);

/* ---- SyncGroup ---- */
struct group_sync_assignment {
        struct kafka_str member_id;
        struct kafka_bytes assignment;
};

struct group_sync_request {
        struct kafka_str group_id, member_id, group_instance_id;
        struct kafka_str protocol_type, protocol_name; /* v5+; len -1 when absent */
        int32_t generation_id;
        const struct group_sync_assignment *assignments;
        int32_t assignments_count;
};

struct group_sync_result {
        int16_t error_code;
        const char *protocol_type;
        const char *protocol_name;
        struct kafka_bytes assignment;
};

typedef void group_sync_done_fn(void *ctx, const struct group_sync_result *res);

/* Like group_join(): <done> is called once, now or when the leader's assignment comes. */
struct group_wait *group_sync(struct group_coordinator *gc, const struct group_sync_request *sr, int64_t now_ms,
                              group_sync_done_fn *done, void *ctx);

/* Forgets a pending join or sync whose requester went away (its callback is never
 * called). The member stays until its session or the rebalance times out. */
void group_wait_cancel(struct group_coordinator *gc, struct group_wait *wait);

/* ---- Heartbeat, LeaveGroup ---- */
/* Returns the Kafka error code of a heartbeat. */
int16_t group_heartbeat(struct group_coordinator *gc, struct kafka_str group_id, int32_t generation_id,
                        struct kafka_str member_id, struct kafka_str group_instance_id, int64_t now_ms);
/* Removes one member (by member id, or by instance id when the member id is empty).
 * Returns the Kafka error code for that member. */
int16_t group_leave(struct group_coordinator *gc, struct kafka_str group_id, struct kafka_str member_id,
                    struct kafka_str group_instance_id, int64_t now_ms);

/* ---- Offsets ---- */
/* Checks that a member may commit for <group_id> now; an unknown group with a negative
 * generation (a consumer that assigns partitions itself) is created. Returns the Kafka
 * error code that applies to every partition of the request. */
int16_t group_commit_check(struct group_coordinator *gc, struct kafka_str group_id, int32_t generation_id,
                           struct kafka_str member_id, struct kafka_str group_instance_id, int64_t now_ms);
/* Stores one committed offset (after group_commit_check() said NONE). <metadata> len -1
 * is stored as "". <expire_ms> -1 means the group's retention rule. Returns the Kafka
 * error code: NONE, OFFSET_METADATA_TOO_LARGE or KAFKA_STORAGE_ERROR. */
int16_t group_commit_offset(struct group_coordinator *gc, struct kafka_str group_id, struct kafka_str topic,
                            int32_t partition, int64_t offset, int32_t leader_epoch, struct kafka_str metadata,
                            int64_t expire_ms, int64_t now_ms);
/* The committed offset of <topic, partition> in <group>, or NULL. */
const struct group_offset *group_offset_get(const struct group *group, const char *topic, size_t topic_len,
                                            int32_t partition);

struct group_offset_entry {
        const char *topic;          /* points into the coordinator */
        size_t topic_len;
        int32_t partition;
        const struct group_offset *off;
};
/* Every committed offset of <group> sorted by topic then partition, in a new heap array
 * (caller frees); valid until the coordinator next changes. Returns the count. */
int32_t group_offsets_list(const struct group *group, struct group_offset_entry **out);

/* Deletes the committed offset of <topic, partition>. Returns NONE (also when there was
 * none), GROUP_SUBSCRIBED_TO_TOPIC when a live member subscribes to <topic>, or
 * KAFKA_STORAGE_ERROR. */
int16_t group_offset_delete(struct group_coordinator *gc, struct group *group, struct kafka_str topic,
                            int32_t partition);
/* Deletes every committed offset of <topic> in every group (the topic was deleted). */
void group_coordinator_topic_deleted(struct group_coordinator *gc, const char *topic);

/* Deletes an empty group and its offsets. Returns NONE, GROUP_ID_NOT_FOUND,
 * NON_EMPTY_GROUP or KAFKA_STORAGE_ERROR. */
int16_t group_delete(struct group_coordinator *gc, struct kafka_str group_id);

#endif
