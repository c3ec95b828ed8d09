/* Group membership: the classic Kafka group protocol as a state machine driven by
 * requests and by time. See group.h. The behaviour follows Apache Kafka's group
 * coordinator (GroupCoordinator.scala, 2.4-3.x): the same states, the same error codes
 * in the same order of checks, because clients are written against exactly that.
 *
 *   Empty --join--> PreparingRebalance --all joined / join timeout--> CompletingRebalance
 *   CompletingRebalance --leader's SyncGroup--> Stable --join, leave, expiry--> PreparingRebalance
 *
 * Members awaiting a join or sync response do not expire by session timeout (the join
 * phase is bounded by the rebalance timeout, the sync phase by the same, after which
 * members that did not sync are removed). */
#define LOG_TOPIC "group"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/alloc.h"
#include "base/log.h"
#include "broker/group/group.h"
#include "broker/group/group_impl.h"
#include "broker/group/offset_log.h"
#include "kafka/errors.h"

enum wait_kind { WAIT_JOIN, WAIT_SYNC };

struct group_wait {
        enum wait_kind kind;
        group_join_done_fn *join_done;
        group_sync_done_fn *sync_done;
        void *ctx;
        struct group_member *member;
};

static const char *const STATE_NAMES[] = {
        [GROUP_EMPTY] = "Empty",
        [GROUP_PREPARING_REBALANCE] = "PreparingRebalance",
        [GROUP_COMPLETING_REBALANCE] = "CompletingRebalance",
        [GROUP_STABLE] = "Stable",
        [GROUP_DEAD] = "Dead",
};

const char *group_state_name(enum group_state state)
{
        return STATE_NAMES[state];
}

void group_schedule(struct group_coordinator *gc, int64_t deadline_ms)
{
        if (deadline_ms > 0 && deadline_ms < gc->next_deadline_ms)
                gc->next_deadline_ms = deadline_ms;
}

int64_t group_coordinator_next_deadline(const struct group_coordinator *gc)
{
        return MIN(gc->next_deadline_ms, gc->next_expiry_check_ms);
}

static bool str_eq(struct kafka_str s, const char *c)
{
        if (s.len < 0)
                return c == NULL;
        return c && strlen(c) == (size_t)s.len && memcmp(c, s.ptr, (size_t)s.len) == 0;
}

static char *str_dup(struct kafka_str s)
{
        if (s.len < 0)
                return NULL;
        char *p = xmalloc((size_t)s.len + 1);
        memcpy(p, s.ptr, (size_t)s.len);
        p[s.len] = '\0';
        return p;
}

static void set_str(char **field, const char *value)
{
        free(*field);
        *field = value ? xstrdup(value) : NULL;
}

/* ---- groups ---- */

struct group *group_find(struct group_coordinator *gc, const char *id, size_t len)
{
        return map_get(&gc->groups, id, len);
}

struct group *group_get_or_create(struct group_coordinator *gc, const char *id, size_t len, int64_t now_ms)
{
        struct group *group = map_get(&gc->groups, id, len);
        if (group)
                return group;
        group = xcalloc(1, sizeof(*group));
        group->group_id = xmalloc(len + 1);
        memcpy(group->group_id, id, len);
        group->group_id[len] = '\0';
        group->state = GROUP_EMPTY;
        group->state_since_ms = now_ms;
        map_init(&group->members_by_id);
        map_init(&group->statics);
        map_init(&group->pending);
        map_init(&group->offsets);
        map_put(&gc->groups, id, len, group);
        return group;
}

static void member_free(struct group_member *m)
{
        for (int32_t i = 0; i < m->protocols_count; i++) {
                free(m->protocols[i].name);
                free(m->protocols[i].metadata);
        }
        free(m->protocols);
        free(m->member_id);
        free(m->instance_id);
        free(m->client_id);
        free(m->client_host);
        free(m->assignment);
        free(m);
}

static void answer_join_error(struct group_member *m, int16_t error);
static void answer_sync(struct group *group, struct group_member *m, int16_t error);

void group_free(struct group *group, int16_t error)
{
        struct group_member *m = group->members;
        while (m) {
                struct group_member *next = m->next;
                answer_join_error(m, error);
                answer_sync(group, m, error);
                member_free(m);
                m = next;
        }
        const char *key;
        void *value;
        for (size_t i = 0; map_next(&group->pending, &i, &key, &value);)
                free(value);
        map_deinit(&group->pending);
        map_deinit(&group->members_by_id);
        map_deinit(&group->statics);
        offsets_free(group);
        free(group->group_id);
        free(group->protocol_type);
        free(group->protocol_name);
        free(group->leader_id);
        free(group);
}

void group_remove_if_unused(struct group_coordinator *gc, struct group *group)
{
        if (group->state != GROUP_EMPTY || group->members_count > 0 || group->pending.len > 0 ||
            group->offsets.len > 0)
                return;
        map_del(&gc->groups, group->group_id, strlen(group->group_id));
        group_free(group, KAFKA_COORDINATOR_NOT_AVAILABLE);
}

static void set_state(struct group *group, enum group_state state, int64_t now_ms)
{
        if (group->state != state)
                log_debug("group %s: %s -> %s (generation %d)", group->group_id, STATE_NAMES[group->state],
                          STATE_NAMES[state], group->generation_id);
        group->state = state;
        group->state_since_ms = now_ms;
}

static struct group_member *member_find(struct group *group, struct kafka_str id)
{
        if (id.len <= 0)
                return NULL;
        return map_get(&group->members_by_id, id.ptr, (size_t)id.len);
}

static struct group_member *static_find(struct group *group, struct kafka_str instance_id)
{
        if (instance_id.len < 0)
                return NULL;
        return map_get(&group->statics, instance_id.ptr, (size_t)instance_id.len);
}

/* A static member whose instance id now belongs to another member id is fenced. */
static bool static_fenced(struct group *group, struct kafka_str member_id, struct kafka_str instance_id)
{
        struct group_member *m = static_find(group, instance_id);
        return m && !str_eq(member_id, m->member_id);
}

static int32_t max_rebalance_timeout(const struct group *group)
{
        int32_t t = 0;
        for (const struct group_member *m = group->members; m; m = m->next)
                t = MAX(t, m->rebalance_timeout_ms);
        return t;
}

/* ---- waits ---- */

static struct group_wait *wait_new(enum wait_kind kind, struct group_member *m, void *ctx)
{
        struct group_wait *w = xcalloc(1, sizeof(*w));
        w->kind = kind;
        w->member = m;
        w->ctx = ctx;
        return w;
}

void group_wait_cancel(struct group_coordinator *gc, struct group_wait *wait)
{
        if (!wait)
                return;
        struct group_member *m = wait->member;
        if (m && m->join_wait == wait)
                m->join_wait = NULL;
        if (m && m->sync_wait == wait)
                m->sync_wait = NULL;
        free(wait);
}

static void answer_join(struct group_member *m, const struct group_join_result *res)
{
        struct group_wait *w = m->join_wait;
        if (!w)
                return;
        m->join_wait = NULL;
        w->join_done(w->ctx, res);
        free(w);
}

static void answer_join_error(struct group_member *m, int16_t error)
{
        struct group_join_result res = { .error_code = error, .generation_id = -1, .leader_id = "",
                                         .member_id = m->member_id };
        answer_join(m, &res);
}

static void answer_sync(struct group *group, struct group_member *m, int16_t error)
{
        struct group_wait *w = m->sync_wait;
        if (!w)
                return;
        m->sync_wait = NULL;
        struct group_sync_result res = { .error_code = error,
                                         .protocol_type = group->protocol_type,
                                         .protocol_name = group->protocol_name,
                                         .assignment = { (const uint8_t *)"", 0 } };
        if (error == KAFKA_NONE && m->assignment)
                res.assignment = (struct kafka_bytes){ m->assignment, m->assignment_len };
        w->sync_done(w->ctx, &res);
        free(w);
}

/* ---- protocols ---- */

static const struct group_protocol *member_protocol(const struct group_member *m, const char *name)
{
        if (!name)
                return NULL;
        for (int32_t i = 0; i < m->protocols_count; i++)
                if (strcmp(m->protocols[i].name, name) == 0)
                        return &m->protocols[i];
        return NULL;
}

struct kafka_bytes group_member_metadata(const struct group *group, const struct group_member *m)
{
        const struct group_protocol *p = member_protocol(m, group->protocol_name);
        if (!p)
                return (struct kafka_bytes){ NULL, -1 };
        return (struct kafka_bytes){ p->metadata, p->metadata_len };
}

/* Whether every member (except <skip>) lists protocol <name>. */
static bool all_support(const struct group *group, const struct group_member *skip, const char *name)
{
        for (const struct group_member *m = group->members; m; m = m->next)
                if (m != skip && !member_protocol(m, name))
                        return false;
        return true;
}

/* Whether a member with <jr>'s protocols may join <group> (Kafka's supportsProtocols). */
static bool protocols_compatible(const struct group *group, const struct group_member *self,
                                 const struct group_join_request *jr)
{
        bool others = false;
        for (const struct group_member *m = group->members; m; m = m->next)
                others |= m != self;
        if (!others)
                return jr->protocol_type.len > 0 && jr->protocols_count > 0;
        if (!str_eq(jr->protocol_type, group->protocol_type))
                return false;
        for (int32_t i = 0; i < jr->protocols_count; i++) {
                char name[256];
                int n = (int)MIN(jr->protocol_names[i].len, (int32_t)sizeof(name) - 1);
                if (n < 0 || jr->protocol_names[i].len >= (int32_t)sizeof(name))
                        continue;
                memcpy(name, jr->protocol_names[i].ptr, (size_t)n);
                name[n] = '\0';
                if (all_support(group, self, name))
                        return true;
        }
        return false;
}

/* The protocol every member supports that most members prefer (ties: the leader's
 * order). */
static const char *select_protocol(const struct group *group)
{
        const struct group_member *first = group->members;
        const char *best = NULL;
        int best_votes = -1;
        for (int32_t i = 0; i < first->protocols_count; i++) {
                const char *cand = first->protocols[i].name;
                if (!all_support(group, NULL, cand))
                        continue;
                int votes = 0;
                for (const struct group_member *m = group->members; m; m = m->next) {
                        /* A member votes for the first of its protocols everyone supports. */
                        for (int32_t j = 0; j < m->protocols_count; j++) {
                                if (all_support(group, NULL, m->protocols[j].name)) {
                                        votes += strcmp(m->protocols[j].name, cand) == 0;
                                        break;
                                }
                        }
                }
                if (votes > best_votes) {
                        best = cand;
                        best_votes = votes;
                }
        }
        return best;
}

static bool protocols_match(const struct group_member *m, const struct group_join_request *jr)
{
        if (m->protocols_count != jr->protocols_count)
                return false;
        for (int32_t i = 0; i < jr->protocols_count; i++) {
                const struct group_protocol *p = &m->protocols[i];
                if (!str_eq(jr->protocol_names[i], p->name) || jr->protocol_metadata[i].len != p->metadata_len ||
                    (p->metadata_len > 0 && memcmp(p->metadata, jr->protocol_metadata[i].ptr, (size_t)p->metadata_len) != 0))
                        return false;
        }
        return true;
}

static void member_set_protocols(struct group_member *m, const struct group_join_request *jr)
{
        for (int32_t i = 0; i < m->protocols_count; i++) {
                free(m->protocols[i].name);
                free(m->protocols[i].metadata);
        }
        free(m->protocols);
        m->protocols = xcalloc((size_t)MAX(jr->protocols_count, 1), sizeof(*m->protocols));
        m->protocols_count = jr->protocols_count;
        for (int32_t i = 0; i < jr->protocols_count; i++) {
                m->protocols[i].name = str_dup(jr->protocol_names[i]);
                int32_t len = MAX(jr->protocol_metadata[i].len, 0);
                m->protocols[i].metadata = xmalloc((size_t)MAX(len, 1));
                if (len)
                        memcpy(m->protocols[i].metadata, jr->protocol_metadata[i].ptr, (size_t)len);
                m->protocols[i].metadata_len = len;
        }
        m->session_timeout_ms = jr->session_timeout_ms;
        m->rebalance_timeout_ms = jr->rebalance_timeout_ms;
}

/* ---- members ---- */

static char *new_member_id(struct group_coordinator *gc, struct kafka_str prefix)
{
        uint8_t raw[16];
        if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
                /* Unique within this process is enough for a member id. */
                memset(raw, 0, sizeof(raw));
                memcpy(raw, &gc->member_seq, sizeof(gc->member_seq));
        }
        gc->member_seq++;
        int plen = (int)MIN(MAX(prefix.len, 0), 200);
        char *id = xmalloc((size_t)plen + 40);
        int n = snprintf(id, (size_t)plen + 40, "%.*s-", plen, plen ? prefix.ptr : "");
        for (int i = 0; i < 16; i++) {
                if (i == 4 || i == 6 || i == 8 || i == 10)
                        id[n++] = '-';
                n += snprintf(id + n, 3, "%02x", raw[i]);
        }
        return id;
}

static struct group_member *member_add(struct group *group, char *member_id, const struct group_join_request *jr)
{
        struct group_member *m = xcalloc(1, sizeof(*m));
        m->member_id = member_id;
        m->instance_id = str_dup(jr->group_instance_id);
        m->client_id = jr->client_id.len >= 0 ? str_dup(jr->client_id) : xstrdup("");
        m->client_host = jr->client_host.len >= 0 ? str_dup(jr->client_host) : xstrdup("");
        m->is_new = true;
        member_set_protocols(m, jr);
        struct group_member **pp = &group->members;
        while (*pp)
                pp = &(*pp)->next;
        *pp = m;
        group->members_count++;
        map_put(&group->members_by_id, m->member_id, strlen(m->member_id), m);
        if (m->instance_id)
                map_put(&group->statics, m->instance_id, strlen(m->instance_id), m);
        if (!group->leader_id)
                group->leader_id = xstrdup(m->member_id);
        if (!group->protocol_type)
                group->protocol_type = str_dup(jr->protocol_type);
        return m;
}

/* Unlinks and frees <m>; a pending join is answered with <join_error>. */
static void member_remove(struct group *group, struct group_member *m, int16_t join_error)
{
        answer_join_error(m, join_error);
        answer_sync(group, m, KAFKA_REBALANCE_IN_PROGRESS);
        struct group_member **pp = &group->members;
        while (*pp != m)
                pp = &(*pp)->next;
        *pp = m->next;
        group->members_count--;
        if (m->awaiting_join)
                group->awaiting_join_count--;
        map_del(&group->members_by_id, m->member_id, strlen(m->member_id));
        if (m->instance_id && map_get(&group->statics, m->instance_id, strlen(m->instance_id)) == m)
                map_del(&group->statics, m->instance_id, strlen(m->instance_id));
        if (group->leader_id && strcmp(group->leader_id, m->member_id) == 0)
                set_str(&group->leader_id, group->members ? group->members->member_id : NULL);
        member_free(m);
}

static void set_awaiting_join(struct group *group, struct group_member *m, bool on)
{
        if (m->awaiting_join == on)
                return;
        m->awaiting_join = on;
        group->awaiting_join_count += on ? 1 : -1;
}

/* ---- rebalance ---- */

static void complete_join(struct group_coordinator *gc, struct group *group, int64_t now_ms);

static void try_complete_join(struct group_coordinator *gc, struct group *group, int64_t now_ms)
{
        if (group->state == GROUP_PREPARING_REBALANCE && group->initial_join_end_ms == 0 &&
            group->awaiting_join_count == group->members_count && group->pending.len == 0)
                complete_join(gc, group, now_ms);
}

static void prepare_rebalance(struct group_coordinator *gc, struct group *group, int64_t now_ms, const char *reason)
{
        if (group->state == GROUP_COMPLETING_REBALANCE) {
                for (struct group_member *m = group->members; m; m = m->next)
                        answer_sync(group, m, KAFKA_REBALANCE_IN_PROGRESS);
        }
        for (struct group_member *m = group->members; m; m = m->next) {
                free(m->assignment);
                m->assignment = NULL;
                m->assignment_len = 0;
                m->synced = false;
        }
        bool was_empty = group->state == GROUP_EMPTY;
        int32_t rebalance_ms = max_rebalance_timeout(group);
        set_state(group, GROUP_PREPARING_REBALANCE, now_ms);
        group->sync_deadline_ms = 0;
        if (was_empty && gc->cfg.initial_rebalance_delay_ms > 0) {
                group->initial_join_end_ms = now_ms + rebalance_ms;
                group->join_deadline_ms = now_ms + MIN(gc->cfg.initial_rebalance_delay_ms, rebalance_ms);
                group->new_member_joined = false;
        } else {
                group->initial_join_end_ms = 0;
                group->join_deadline_ms = now_ms + rebalance_ms;
        }
        group_schedule(gc, group->join_deadline_ms);
        log_info("group %s: rebalance at generation %d with %d members: %s", group->group_id, group->generation_id,
                 group->members_count, reason);
        try_complete_join(gc, group, now_ms);
}

/* Members (with metadata for the selected protocol) for the leader's join response. */
static struct group_join_member_info *member_infos(const struct group *group)
{
        struct group_join_member_info *infos = xcalloc((size_t)MAX(group->members_count, 1), sizeof(*infos));
        int32_t i = 0;
        for (const struct group_member *m = group->members; m; m = m->next, i++) {
                infos[i].member_id = m->member_id;
                infos[i].instance_id = m->instance_id;
                infos[i].metadata = group_member_metadata(group, m);
                if (infos[i].metadata.len < 0)
                        infos[i].metadata = (struct kafka_bytes){ (const uint8_t *)"", 0 };
        }
        return infos;
}

static void complete_join(struct group_coordinator *gc, struct group *group, int64_t now_ms)
{
        /* Members that did not rejoin in time leave the group. */
        struct group_member *m = group->members;
        while (m) {
                struct group_member *next = m->next;
                if (!m->awaiting_join) {
                        log_info("group %s: member %s did not rejoin in time; removed", group->group_id, m->member_id);
                        member_remove(group, m, KAFKA_UNKNOWN_MEMBER_ID);
                }
                m = next;
        }
        group->join_deadline_ms = 0;
        group->initial_join_end_ms = 0;
        group->generation_id++;
        if (group->members_count == 0) {
                set_str(&group->protocol_name, NULL);
                set_str(&group->leader_id, NULL);
                set_state(group, GROUP_EMPTY, now_ms);
                log_info("group %s: empty at generation %d", group->group_id, group->generation_id);
                return;
        }
        set_str(&group->protocol_name, select_protocol(group));
        if (!group->leader_id || !map_get(&group->members_by_id, group->leader_id, strlen(group->leader_id)))
                set_str(&group->leader_id, group->members->member_id);
        set_state(group, GROUP_COMPLETING_REBALANCE, now_ms);
        group->sync_deadline_ms = now_ms + max_rebalance_timeout(group);
        group_schedule(gc, group->sync_deadline_ms);
        offsets_store_group_type(gc, group);
        log_info("group %s: generation %d with %d members, protocol %s, leader %s", group->group_id,
                 group->generation_id, group->members_count, group->protocol_name ? group->protocol_name : "-",
                 group->leader_id);
        struct group_join_member_info *infos = member_infos(group);
        for (m = group->members; m; m = m->next) {
                set_awaiting_join(group, m, false);
                m->is_new = false;
                m->heartbeat_deadline_ms = now_ms + m->session_timeout_ms;
                group_schedule(gc, m->heartbeat_deadline_ms);
                bool leader = strcmp(m->member_id, group->leader_id) == 0;
                struct group_join_result res = {
                        .error_code = KAFKA_NONE,
                        .generation_id = group->generation_id,
                        .protocol_type = group->protocol_type,
                        .protocol_name = group->protocol_name,
                        .leader_id = group->leader_id,
                        .member_id = m->member_id,
                        .members = leader ? infos : NULL,
                        .members_count = leader ? group->members_count : 0,
                };
                answer_join(m, &res);
        }
        free(infos);
}

/* Removes <m> and moves the group on (Kafka's removeMemberAndUpdateGroup). */
static void remove_and_update(struct group_coordinator *gc, struct group *group, struct group_member *m,
                              int64_t now_ms, const char *reason)
{
        char why[300];
        snprintf(why, sizeof(why), "member %.200s %s", m->member_id, reason);
        member_remove(group, m, KAFKA_UNKNOWN_MEMBER_ID);
        switch (group->state) {
        case GROUP_STABLE:
        case GROUP_COMPLETING_REBALANCE:
                prepare_rebalance(gc, group, now_ms, why);
                break;
        case GROUP_PREPARING_REBALANCE:
                log_info("group %s: %s", group->group_id, why);
                try_complete_join(gc, group, now_ms);
                break;
        default:
                break;
        }
}

/* The current generation as a join response, for a member whose rejoin changes nothing. */
static void answer_current(struct group *group, struct group_member *m, bool skip_assignment_ok)
{
        bool leader = group->leader_id && strcmp(m->member_id, group->leader_id) == 0;
        struct group_join_member_info *infos = leader ? member_infos(group) : NULL;
        struct group_join_result res = {
                .error_code = KAFKA_NONE,
                .generation_id = group->generation_id,
                .protocol_type = group->protocol_type,
                .protocol_name = group->protocol_name,
                .leader_id = group->leader_id ? group->leader_id : "",
                .member_id = m->member_id,
                .members = infos,
                .members_count = leader ? group->members_count : 0,
                .skip_assignment = leader && skip_assignment_ok,
        };
        answer_join(m, &res);
        free(infos);
}

/* ---- JoinGroup ---- */

static struct group_wait *join_wait_install(struct group_member *m, group_join_done_fn *done, void *ctx)
{
        if (m->join_wait)
                answer_join_error(m, KAFKA_REBALANCE_IN_PROGRESS);
        struct group_wait *w = wait_new(WAIT_JOIN, m, ctx);
        w->join_done = done;
        m->join_wait = w;
        return w;
}

static struct group_wait *join_error(group_join_done_fn *done, void *ctx, int16_t error, const char *member_id)
{
        struct group_join_result res = { .error_code = error, .generation_id = -1, .leader_id = "",
                                         .member_id = member_id ? member_id : "" };
        done(ctx, &res);
        return NULL;
}

/* Whether the wait <w> was answered during the call that installed it. */
static struct group_wait *still_waiting(struct group_member *m, struct group_wait *w)
{
        return m->join_wait == w ? w : NULL;
}

/* Adds a new member to <group> and rebalances (addMemberAndRebalance). */
static struct group_wait *add_and_rebalance(struct group_coordinator *gc, struct group *group, char *member_id,
                                            const struct group_join_request *jr, int64_t now_ms,
                                            group_join_done_fn *done, void *ctx)
{
        struct group_member *m = member_add(group, member_id, jr);
        struct group_wait *w = join_wait_install(m, done, ctx);
        set_awaiting_join(group, m, true);
        group->new_member_joined = true;
        if (group->state == GROUP_PREPARING_REBALANCE) {
                try_complete_join(gc, group, now_ms);
        } else {
                char why[300];
                snprintf(why, sizeof(why), "member %.200s joined", m->member_id);
                prepare_rebalance(gc, group, now_ms, why);
        }
        return still_waiting(m, w);
}

/* A known member rejoins with (possibly) new protocols (updateMemberAndRebalance). */
static struct group_wait *update_and_rebalance(struct group_coordinator *gc, struct group *group,
                                               struct group_member *m, const struct group_join_request *jr,
                                               int64_t now_ms, group_join_done_fn *done, void *ctx)
{
        member_set_protocols(m, jr);
        struct group_wait *w = join_wait_install(m, done, ctx);
        set_awaiting_join(group, m, true);
        if (group->state == GROUP_PREPARING_REBALANCE) {
                try_complete_join(gc, group, now_ms);
        } else {
                char why[300];
                snprintf(why, sizeof(why), "member %.200s rejoined with new metadata or as leader", m->member_id);
                prepare_rebalance(gc, group, now_ms, why);
        }
        return still_waiting(m, w);
}

/* A static member comes back under a new member id (updateStaticMemberAndRebalance). */
static struct group_wait *replace_static(struct group_coordinator *gc, struct group *group, struct group_member *m,
                                         const struct group_join_request *jr, int64_t now_ms,
                                         group_join_done_fn *done, void *ctx)
{
        char *new_id = new_member_id(gc, jr->group_instance_id);
        /* The old incarnation is fenced: its pending requests fail. */
        answer_join_error(m, KAFKA_FENCED_INSTANCE_ID);
        answer_sync(group, m, KAFKA_FENCED_INSTANCE_ID);
        map_del(&group->members_by_id, m->member_id, strlen(m->member_id));
        bool was_leader = group->leader_id && strcmp(group->leader_id, m->member_id) == 0;
        free(m->member_id);
        m->member_id = new_id;
        map_put(&group->members_by_id, m->member_id, strlen(m->member_id), m);
        if (was_leader)
                set_str(&group->leader_id, m->member_id);
        free(m->client_id);
        m->client_id = jr->client_id.len >= 0 ? str_dup(jr->client_id) : xstrdup("");
        free(m->client_host);
        m->client_host = jr->client_host.len >= 0 ? str_dup(jr->client_host) : xstrdup("");
        log_info("group %s: static member %s rejoined as %s", group->group_id, m->instance_id, m->member_id);
        switch (group->state) {
        case GROUP_STABLE: {
                bool same = protocols_match(m, jr);
                m->session_timeout_ms = jr->session_timeout_ms;
                m->rebalance_timeout_ms = jr->rebalance_timeout_ms;
                if (same) {
                        /* Nothing changed: no rebalance; the member syncs and gets its old assignment. */
                        m->heartbeat_deadline_ms = now_ms + m->session_timeout_ms;
                        group_schedule(gc, m->heartbeat_deadline_ms);
                        struct group_wait *w = join_wait_install(m, done, ctx);
                        answer_current(group, m, jr->supports_skip_assignment);
                        return still_waiting(m, w);
                }
                return update_and_rebalance(gc, group, m, jr, now_ms, done, ctx);
        }
        case GROUP_COMPLETING_REBALANCE:
                return update_and_rebalance(gc, group, m, jr, now_ms, done, ctx);
        case GROUP_PREPARING_REBALANCE:
        default:
                return update_and_rebalance(gc, group, m, jr, now_ms, done, ctx);
        }
}

static int16_t check_join(const struct group_coordinator *gc, const struct group_join_request *jr)
{
        if (jr->group_id.len <= 0 || jr->group_id.len > GROUP_MAX_ID_BYTES)
                return KAFKA_INVALID_GROUP_ID;
        if (jr->session_timeout_ms < gc->cfg.min_session_timeout_ms ||
            jr->session_timeout_ms > gc->cfg.max_session_timeout_ms)
                return KAFKA_INVALID_SESSION_TIMEOUT;
        if (jr->rebalance_timeout_ms <= 0)
                return KAFKA_INVALID_SESSION_TIMEOUT;
        if (jr->protocols_count > GROUP_MAX_PROTOCOLS || jr->member_id.len > GROUP_MAX_ID_BYTES ||
            jr->group_instance_id.len > GROUP_MAX_ID_BYTES || jr->protocol_type.len > 255)
                return KAFKA_INVALID_REQUEST;
        if (jr->group_instance_id.len == 0)
                return KAFKA_INVALID_REQUEST;
        int64_t total = 0;
        for (int32_t i = 0; i < jr->protocols_count; i++) {
                if (jr->protocol_names[i].len <= 0 || jr->protocol_names[i].len > 255)
                        return KAFKA_INCONSISTENT_GROUP_PROTOCOL;
                total += MAX(jr->protocol_metadata[i].len, 0);
        }
        if (total > GROUP_MAX_MEMBER_METADATA_BYTES)
                return KAFKA_INVALID_REQUEST;
        return KAFKA_NONE;
}

struct group_wait *group_join(struct group_coordinator *gc, const struct group_join_request *jr_in, int64_t now_ms,
                              group_join_done_fn *done, void *ctx)
{
        struct group_join_request jr_copy = *jr_in;
        struct group_join_request *jr = &jr_copy;
        /* v0 has no rebalance timeout: the session timeout serves for both. */
        if (jr->rebalance_timeout_ms == -1)
                jr->rebalance_timeout_ms = jr->session_timeout_ms;
        int16_t err = check_join(gc, jr);
        if (err)
                return join_error(done, ctx, err, NULL);
        struct group *group = group_find(gc, jr->group_id.ptr, (size_t)jr->group_id.len);
        if (jr->member_id.len <= 0) {
                /* A new member. */
                if (group && group->members_count > 0) {
                        if (!protocols_compatible(group, NULL, jr))
                                return join_error(done, ctx, KAFKA_INCONSISTENT_GROUP_PROTOCOL, NULL);
                } else if (jr->protocol_type.len <= 0 || jr->protocols_count <= 0) {
                        return join_error(done, ctx, KAFKA_INCONSISTENT_GROUP_PROTOCOL, NULL);
                }
                if (!group)
                        group = group_get_or_create(gc, jr->group_id.ptr, (size_t)jr->group_id.len, now_ms);
                if (group->members_count == 0 && !str_eq(jr->protocol_type, group->protocol_type)) {
                        /* An empty group takes the type of whoever joins first. */
                        set_str(&group->protocol_type, NULL);
                        group->type_stored = false;
                }
                struct group_member *old = static_find(group, jr->group_instance_id);
                if (old)
                        return replace_static(gc, group, old, jr, now_ms, done, ctx);
                if (group->members_count + (int32_t)group->pending.len >= gc->cfg.max_size) {
                        group_remove_if_unused(gc, group);
                        return join_error(done, ctx, KAFKA_GROUP_MAX_SIZE_REACHED, NULL);
                }
                char *member_id = new_member_id(gc, jr->group_instance_id.len >= 0 ? jr->group_instance_id
                                                                                : jr->client_id);
                if (jr->require_known_member_id && jr->group_instance_id.len < 0) {
                        /* KIP-394: the member must come back with this id. */
                        int64_t *deadline = xmalloc(sizeof(*deadline));
                        *deadline = now_ms + jr->session_timeout_ms;
                        map_put(&group->pending, member_id, strlen(member_id), deadline);
                        group_schedule(gc, *deadline);
                        join_error(done, ctx, KAFKA_MEMBER_ID_REQUIRED, member_id);
                        free(member_id);
                        return NULL;
                }
                return add_and_rebalance(gc, group, member_id, jr, now_ms, done, ctx);
        }

        /* A member that has an id. */
        if (!group)
                return join_error(done, ctx, KAFKA_UNKNOWN_MEMBER_ID, NULL);
        int64_t *pending = map_get(&group->pending, jr->member_id.ptr, (size_t)jr->member_id.len);
        if (pending) {
                if (group->members_count > 0 && !protocols_compatible(group, NULL, jr))
                        return join_error(done, ctx, KAFKA_INCONSISTENT_GROUP_PROTOCOL, NULL);
                free(map_del(&group->pending, jr->member_id.ptr, (size_t)jr->member_id.len));
                if (group->members_count == 0 && group->protocol_type && !str_eq(jr->protocol_type, group->protocol_type)) {
                        set_str(&group->protocol_type, NULL);
                        group->type_stored = false;
                }
                return add_and_rebalance(gc, group, str_dup(jr->member_id), jr, now_ms, done, ctx);
        }
        if (static_fenced(group, jr->member_id, jr->group_instance_id))
                return join_error(done, ctx, KAFKA_FENCED_INSTANCE_ID, NULL);
        struct group_member *m = member_find(group, jr->member_id);
        if (!m)
                return join_error(done, ctx, KAFKA_UNKNOWN_MEMBER_ID, NULL);
        if (!protocols_compatible(group, m, jr))
                return join_error(done, ctx, KAFKA_INCONSISTENT_GROUP_PROTOCOL, NULL);
        m->heartbeat_deadline_ms = now_ms + jr->session_timeout_ms;
        switch (group->state) {
        case GROUP_PREPARING_REBALANCE:
                return update_and_rebalance(gc, group, m, jr, now_ms, done, ctx);
        case GROUP_COMPLETING_REBALANCE:
                if (protocols_match(m, jr)) {
                        /* It lost our join response: send it again. */
                        struct group_wait *w = join_wait_install(m, done, ctx);
                        answer_current(group, m, false);
                        return still_waiting(m, w);
                }
                return update_and_rebalance(gc, group, m, jr, now_ms, done, ctx);
        case GROUP_STABLE:
                if ((group->leader_id && strcmp(group->leader_id, m->member_id) == 0) || !protocols_match(m, jr))
                        return update_and_rebalance(gc, group, m, jr, now_ms, done, ctx);
                {
                        struct group_wait *w = join_wait_install(m, done, ctx);
                        answer_current(group, m, false);
                        return still_waiting(m, w);
                }
        default:
                return join_error(done, ctx, KAFKA_UNKNOWN_MEMBER_ID, NULL);
        }
}

/* ---- SyncGroup ---- */

static bool all_synced(const struct group *group)
{
        for (const struct group_member *m = group->members; m; m = m->next)
                if (!m->synced)
                        return false;
        return true;
}

static struct group_wait *sync_error(group_sync_done_fn *done, void *ctx, int16_t error)
{
        struct group_sync_result res = { .error_code = error, .assignment = { (const uint8_t *)"", 0 } };
        done(ctx, &res);
        return NULL;
}

struct group_wait *group_sync(struct group_coordinator *gc, const struct group_sync_request *sr, int64_t now_ms,
                              group_sync_done_fn *done, void *ctx)
{
        if (sr->group_id.len <= 0)
                return sync_error(done, ctx, KAFKA_INVALID_GROUP_ID);
        struct group *group = group_find(gc, sr->group_id.ptr, (size_t)sr->group_id.len);
        if (!group)
                return sync_error(done, ctx, KAFKA_UNKNOWN_MEMBER_ID);
        if (static_fenced(group, sr->member_id, sr->group_instance_id))
                return sync_error(done, ctx, KAFKA_FENCED_INSTANCE_ID);
        struct group_member *m = member_find(group, sr->member_id);
        if (!m)
                return sync_error(done, ctx, KAFKA_UNKNOWN_MEMBER_ID);
        if (sr->generation_id != group->generation_id)
                return sync_error(done, ctx, KAFKA_ILLEGAL_GENERATION);
        if ((sr->protocol_type.len >= 0 && !str_eq(sr->protocol_type, group->protocol_type)) ||
            (sr->protocol_name.len >= 0 && !str_eq(sr->protocol_name, group->protocol_name)))
                return sync_error(done, ctx, KAFKA_INCONSISTENT_GROUP_PROTOCOL);
        switch (group->state) {
        case GROUP_PREPARING_REBALANCE:
                return sync_error(done, ctx, KAFKA_REBALANCE_IN_PROGRESS);
        case GROUP_STABLE: {
                m->heartbeat_deadline_ms = now_ms + m->session_timeout_ms;
                m->synced = true;
                if (all_synced(group))
                        group->sync_deadline_ms = 0;
                struct group_sync_result res = { .error_code = KAFKA_NONE,
                                                 .protocol_type = group->protocol_type,
                                                 .protocol_name = group->protocol_name,
                                                 .assignment = { m->assignment ? m->assignment : (const uint8_t *)"",
                                                                 m->assignment_len } };
                done(ctx, &res);
                return NULL;
        }
        case GROUP_COMPLETING_REBALANCE: {
                if (m->sync_wait)
                        answer_sync(group, m, KAFKA_REBALANCE_IN_PROGRESS);
                struct group_wait *w = wait_new(WAIT_SYNC, m, ctx);
                w->sync_done = done;
                m->sync_wait = w;
                m->synced = true;
                m->heartbeat_deadline_ms = now_ms + m->session_timeout_ms;
                if (!group->leader_id || strcmp(group->leader_id, m->member_id) != 0)
                        return w;
                /* The leader's assignment completes the generation. */
                for (struct group_member *x = group->members; x; x = x->next) {
                        free(x->assignment);
                        x->assignment = NULL;
                        x->assignment_len = 0;
                }
                for (int32_t i = 0; i < sr->assignments_count; i++) {
                        struct group_member *x = member_find(group, sr->assignments[i].member_id);
                        struct kafka_bytes a = sr->assignments[i].assignment;
                        if (!x || a.len <= 0)
                                continue;
                        free(x->assignment);
                        x->assignment = xmalloc((size_t)a.len);
                        memcpy(x->assignment, a.ptr, (size_t)a.len);
                        x->assignment_len = a.len;
                }
                set_state(group, GROUP_STABLE, now_ms);
                /* Followers that never sync are removed when the sync deadline passes,
                 * also once the group is Stable (Kafka's pending-sync members). */
                if (all_synced(group))
                        group->sync_deadline_ms = 0;
                for (struct group_member *x = group->members; x; x = x->next) {
                        x->heartbeat_deadline_ms = now_ms + x->session_timeout_ms;
                        group_schedule(gc, x->heartbeat_deadline_ms);
                        answer_sync(group, x, KAFKA_NONE);
                }
                log_info("group %s: stable at generation %d", group->group_id, group->generation_id);
                return NULL;
        }
        default:
                return sync_error(done, ctx, KAFKA_UNKNOWN_MEMBER_ID);
        }
}

/* ---- Heartbeat, LeaveGroup ---- */

int16_t group_heartbeat(struct group_coordinator *gc, struct kafka_str group_id, int32_t generation_id,
                        struct kafka_str member_id, struct kafka_str group_instance_id, int64_t now_ms)
{
        if (group_id.len <= 0)
                return KAFKA_INVALID_GROUP_ID;
        struct group *group = group_find(gc, group_id.ptr, (size_t)group_id.len);
        if (!group)
                return KAFKA_UNKNOWN_MEMBER_ID;
        if (static_fenced(group, member_id, group_instance_id))
                return KAFKA_FENCED_INSTANCE_ID;
        struct group_member *m = member_find(group, member_id);
        if (!m)
                return KAFKA_UNKNOWN_MEMBER_ID;
        if (generation_id != group->generation_id)
                return KAFKA_ILLEGAL_GENERATION;
        m->heartbeat_deadline_ms = now_ms + m->session_timeout_ms;
        switch (group->state) {
        case GROUP_PREPARING_REBALANCE:
                return KAFKA_REBALANCE_IN_PROGRESS;
        case GROUP_COMPLETING_REBALANCE:
        case GROUP_STABLE:
                return KAFKA_NONE;
        default:
                return KAFKA_UNKNOWN_MEMBER_ID;
        }
}

int16_t group_leave(struct group_coordinator *gc, struct kafka_str group_id, struct kafka_str member_id,
                    struct kafka_str group_instance_id, int64_t now_ms)
{
        if (group_id.len <= 0)
                return KAFKA_INVALID_GROUP_ID;
        struct group *group = group_find(gc, group_id.ptr, (size_t)group_id.len);
        if (!group)
                return KAFKA_UNKNOWN_MEMBER_ID;
        struct group_member *m;
        if (group_instance_id.len >= 0) {
                m = static_find(group, group_instance_id);
                if (!m)
                        return KAFKA_UNKNOWN_MEMBER_ID;
                if (member_id.len > 0 && !str_eq(member_id, m->member_id))
                        return KAFKA_FENCED_INSTANCE_ID;
        } else {
                /* A pending member (MEMBER_ID_REQUIRED) may give up before joining. */
                if (member_id.len > 0) {
                        int64_t *pending = map_del(&group->pending, member_id.ptr, (size_t)member_id.len);
                        if (pending) {
                                free(pending);
                                try_complete_join(gc, group, now_ms);
                                group_remove_if_unused(gc, group);
                                return KAFKA_NONE;
                        }
                }
                m = member_find(group, member_id);
                if (!m)
                        return KAFKA_UNKNOWN_MEMBER_ID;
        }
        remove_and_update(gc, group, m, now_ms, "left the group");
        return KAFKA_NONE;
}

/* ---- time ---- */

static void tick_group(struct group_coordinator *gc, struct group *group, int64_t now_ms)
{
        /* Pending member ids that never came back. */
        const char *key;
        void *value;
        for (size_t i = 0; map_next(&group->pending, &i, &key, &value);) {
                int64_t deadline = *(int64_t *)value;
                if (deadline <= now_ms) {
                        free(map_del(&group->pending, key, strlen(key)));
                        i = 0; /* the table may have changed: rescan */
                        try_complete_join(gc, group, now_ms);
                } else {
                        group_schedule(gc, deadline);
                }
        }
        if (group->state == GROUP_PREPARING_REBALANCE && group->join_deadline_ms) {
                if (group->join_deadline_ms <= now_ms) {
                        if (group->initial_join_end_ms && group->new_member_joined &&
                            now_ms < group->initial_join_end_ms) {
                                /* More members came during the initial delay: wait a bit longer. */
                                group->new_member_joined = false;
                                group->join_deadline_ms =
                                        MIN(now_ms + gc->cfg.initial_rebalance_delay_ms, group->initial_join_end_ms);
                        } else {
                                complete_join(gc, group, now_ms);
                        }
                }
                group_schedule(gc, group->join_deadline_ms);
        }
        if ((group->state == GROUP_COMPLETING_REBALANCE || group->state == GROUP_STABLE) && group->sync_deadline_ms) {
                if (group->sync_deadline_ms <= now_ms) {
                        struct group_member *m = group->members;
                        int removed = 0;
                        while (m) {
                                struct group_member *next = m->next;
                                if (!m->synced) {
                                        log_info("group %s: member %s did not sync in time; removed",
                                                 group->group_id, m->member_id);
                                        member_remove(group, m, KAFKA_UNKNOWN_MEMBER_ID);
                                        removed++;
                                }
                                m = next;
                        }
                        group->sync_deadline_ms = 0;
                        if (removed)
                                prepare_rebalance(gc, group, now_ms, "members did not sync in time");
                } else {
                        group_schedule(gc, group->sync_deadline_ms);
                }
        }
        /* Session expiry; members waiting for a join or sync response are kept alive. */
        struct group_member *m = group->members;
        while (m) {
                struct group_member *next = m->next;
                bool waiting = m->awaiting_join || m->sync_wait;
                if (!waiting && m->heartbeat_deadline_ms && m->heartbeat_deadline_ms <= now_ms &&
                    group->state != GROUP_EMPTY) {
                        remove_and_update(gc, group, m, now_ms, "session timed out");
                        next = group->members; /* the list changed: restart (expired ones are gone) */
                } else if (!waiting && m->heartbeat_deadline_ms) {
                        group_schedule(gc, m->heartbeat_deadline_ms);
                }
                m = next;
        }
}

void group_coordinator_tick(struct group_coordinator *gc, int64_t now_ms)
{
        if (now_ms >= gc->next_deadline_ms) {
                gc->next_deadline_ms = INT64_MAX;
                const char *key;
                void *value;
                for (size_t i = 0; map_next(&gc->groups, &i, &key, &value);)
                        tick_group(gc, value, now_ms);
        }
        if (now_ms >= gc->next_expiry_check_ms) {
                gc->next_expiry_check_ms = now_ms + gc->cfg.offsets_retention_check_interval_ms;
                offsets_expire(gc, now_ms);
        }
}

/* ---- lifecycle ---- */

int group_coordinator_open(const char *dir, const struct group_coordinator_config *cfg, int64_t now_ms,
                           struct group_coordinator **out)
{
        struct group_coordinator *gc = xcalloc(1, sizeof(*gc));
        gc->cfg = *cfg;
        map_init(&gc->groups);
        gc->next_deadline_ms = INT64_MAX;
        gc->next_expiry_check_ms = now_ms + cfg->offsets_retention_check_interval_ms;
        int rc = offsets_open(gc, dir);
        if (rc < 0) {
                group_coordinator_close(gc);
                return rc;
        }
        *out = gc;
        return 0;
}

void group_coordinator_close(struct group_coordinator *gc)
{
        if (!gc)
                return;
        const char *key;
        void *value;
        for (size_t i = 0; map_next(&gc->groups, &i, &key, &value);)
                group_free(value, KAFKA_COORDINATOR_NOT_AVAILABLE);
        map_deinit(&gc->groups);
        offsets_close(gc);
        free(gc);
}
