/* OffsetFetch: committed offsets of one group (v1-7) or several (v8), for the listed
 * partitions or, with a null topic list (v2+), every partition the group has offsets
 * for. A partition without a committed offset answers -1 and no error. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "broker/broker.h"
#include "broker/dispatch.h"
#include "broker/group/group.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"

/* One version-independent answer, copied into whichever response layout applies. */
struct fetched_partition {
        int32_t partition;
        int64_t offset;
        int32_t leader_epoch;
        struct kafka_str metadata;
};

struct fetched_topic {
        struct kafka_str name;
        struct fetched_partition *partitions;
        int32_t partitions_count;
};

static void fill_partition(struct fetched_partition *fp, const struct group *group, struct kafka_str topic,
                           int32_t partition)
{
        fp->partition = partition;
        const struct group_offset *off =
                group && topic.len > 0 ? group_offset_get(group, topic.ptr, (size_t)topic.len, partition) : NULL;
        fp->offset = off ? off->offset : -1;
        fp->leader_epoch = off ? off->leader_epoch : -1;
        fp->metadata = kafka_str_c(off ? off->metadata : "");
}

/* Requested partitions (<names>/<parts> per topic), or all when <count> is -1. */
static int32_t fetch_group(struct request *req, const struct group *group, int32_t count,
                           const struct kafka_str *names, int32_t *const *parts, const int32_t *nparts,
                           struct fetched_topic **out)
{
        if (count >= 0) {
                struct fetched_topic *ft = request_alloc(req, count, sizeof(*ft));
                for (int32_t i = 0; i < count; i++) {
                        ft[i].name = names[i];
                        ft[i].partitions_count = MAX(nparts[i], 0);
                        ft[i].partitions = request_alloc(req, ft[i].partitions_count, sizeof(*ft[i].partitions));
                        for (int32_t j = 0; j < ft[i].partitions_count; j++)
                                fill_partition(&ft[i].partitions[j], group, names[i], parts[i][j]);
                }
                *out = ft;
                return count;
        }
        if (!group) {
                *out = NULL;
                return 0;
        }
        struct group_offset_entry *entries;
        int32_t n = group_offsets_list(group, &entries);
        int32_t ntopics = 0;
        for (int32_t i = 0; i < n; i++)
                ntopics += i == 0 || strcmp(entries[i].topic, entries[i - 1].topic) != 0;
        struct fetched_topic *ft = request_alloc(req, ntopics, sizeof(*ft));
        int32_t t = -1;
        for (int32_t i = 0; i < n; i++) {
                if (i == 0 || strcmp(entries[i].topic, entries[i - 1].topic) != 0) {
                        t++;
                        ft[t].name = request_str(req, entries[i].topic);
                        int32_t k = i;
                        while (k < n && strcmp(entries[k].topic, entries[i].topic) == 0)
                                k++;
                        ft[t].partitions = request_alloc(req, k - i, sizeof(*ft[t].partitions));
                }
                struct fetched_partition *fp = &ft[t].partitions[ft[t].partitions_count++];
                fp->partition = entries[i].partition;
                fp->offset = entries[i].off->offset;
                fp->leader_epoch = entries[i].off->leader_epoch;
                fp->metadata = request_str(req, entries[i].off->metadata);
        }
        free(entries);
        *out = ft;
        return ntopics;
}

static int handle_v8(struct request *req, struct offset_fetch_request *msg)
{
        struct offset_fetch_response resp;
        offset_fetch_response_init(&resp);
        resp.groups_count = MAX(msg->groups_count, 0);
        resp.groups = request_alloc(req, resp.groups_count, sizeof(*resp.groups));
        for (int32_t g = 0; g < resp.groups_count; g++) {
                struct offset_fetch_request_offset_fetch_request_group *rg = &msg->groups[g];
                struct offset_fetch_response_offset_fetch_response_group *out = &resp.groups[g];
                offset_fetch_response_offset_fetch_response_group_init(out);
                out->group_id = rg->group_id;
                const struct group *group =
                        rg->group_id.len >= 0 ? group_find(req->broker->groups, rg->group_id.ptr, (size_t)rg->group_id.len)
                                              : NULL;
                int32_t n = MAX(rg->topics_count, 0);
                struct kafka_str *names = request_alloc(req, n, sizeof(*names));
                int32_t **parts = request_alloc(req, n, sizeof(*parts));
                int32_t *nparts = request_alloc(req, n, sizeof(*nparts));
                for (int32_t i = 0; i < n; i++) {
                        names[i] = rg->topics[i].name;
                        parts[i] = rg->topics[i].partition_indexes;
                        nparts[i] = rg->topics[i].partition_indexes_count;
                }
                struct fetched_topic *ft;
                out->topics_count = fetch_group(req, group, rg->topics_count < 0 ? -1 : n, names, parts, nparts, &ft);
                out->topics = request_alloc(req, out->topics_count, sizeof(*out->topics));
                for (int32_t i = 0; i < out->topics_count; i++) {
                        struct offset_fetch_response_offset_fetch_response_topics *t = &out->topics[i];
                        offset_fetch_response_offset_fetch_response_topics_init(t);
                        t->name = ft[i].name;
                        t->partitions_count = ft[i].partitions_count;
                        t->partitions = request_alloc(req, t->partitions_count, sizeof(*t->partitions));
                        for (int32_t j = 0; j < t->partitions_count; j++) {
                                offset_fetch_response_offset_fetch_response_partitions_init(&t->partitions[j]);
                                t->partitions[j].partition_index = ft[i].partitions[j].partition;
                                t->partitions[j].committed_offset = ft[i].partitions[j].offset;
                                t->partitions[j].committed_leader_epoch = ft[i].partitions[j].leader_epoch;
                                t->partitions[j].metadata = ft[i].partitions[j].metadata;
                        }
                }
        }
        request_respond(req, &resp);
        return 0;
}

int handle_offset_fetch(struct request *req)
{
        struct offset_fetch_request msg;
        if (offset_fetch_request_decode(&req->body, req->hdr.api_version, &msg) < 0)
                return -EPROTO;
        if (req->hdr.api_version >= 8)
                return handle_v8(req, &msg);
        struct offset_fetch_response resp;
        offset_fetch_response_init(&resp);
        const struct group *group =
                msg.group_id.len >= 0 ? group_find(req->broker->groups, msg.group_id.ptr, (size_t)msg.group_id.len) : NULL;
        int32_t n = MAX(msg.topics_count, 0);
        struct kafka_str *names = request_alloc(req, n, sizeof(*names));
        int32_t **parts = request_alloc(req, n, sizeof(*parts));
        int32_t *nparts = request_alloc(req, n, sizeof(*nparts));
        for (int32_t i = 0; i < n; i++) {
                names[i] = msg.topics[i].name;
                parts[i] = msg.topics[i].partition_indexes;
                nparts[i] = msg.topics[i].partition_indexes_count;
        }
        struct fetched_topic *ft;
        resp.topics_count = fetch_group(req, group, msg.topics_count < 0 ? -1 : n, names, parts, nparts, &ft);
        resp.topics = request_alloc(req, resp.topics_count, sizeof(*resp.topics));
        for (int32_t i = 0; i < resp.topics_count; i++) {
                struct offset_fetch_response_offset_fetch_response_topic *t = &resp.topics[i];
                offset_fetch_response_offset_fetch_response_topic_init(t);
                t->name = ft[i].name;
                t->partitions_count = ft[i].partitions_count;
                t->partitions = request_alloc(req, t->partitions_count, sizeof(*t->partitions));
                for (int32_t j = 0; j < t->partitions_count; j++) {
                        offset_fetch_response_offset_fetch_response_partition_init(&t->partitions[j]);
                        t->partitions[j].partition_index = ft[i].partitions[j].partition;
                        t->partitions[j].committed_offset = ft[i].partitions[j].offset;
                        t->partitions[j].committed_leader_epoch = ft[i].partitions[j].leader_epoch;
                        t->partitions[j].metadata = ft[i].partitions[j].metadata;
                }
        }
        request_respond(req, &resp);
        return 0;
}
