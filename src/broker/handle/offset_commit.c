/* OffsetCommit: membership is checked once for the request, then each partition is
 * stored (durably appended to the group store) or gets its own error. With
 * log.flush.interval.messages=1 the answer waits for one fsync of the store shared by
 * every commit of the loop iteration (group commit, as produce does). */
#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "broker/broker.h"
#include "broker/dispatch.h"
#include "broker/group/group.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"

static void commit_cancel(struct request *req)
{
        request_unlink(&req->broker->offset_sync_waiters, req);
        request_free(req);
}

void offset_commit_sync_waiters(struct broker *broker)
{
        int rc = group_coordinator_sync(broker->groups);
        if (rc < 0)
                log_error("fsync of the group store failed: %s", strerror(-rc));
        struct request *list = broker->offset_sync_waiters;
        broker->offset_sync_waiters = NULL;
        while (list) {
                struct request *req = list;
                list = req->next;
                req->next = NULL;
                req->cancel = NULL;
                struct offset_commit_response *resp = req->state;
                for (int32_t i = 0; rc < 0 && i < resp->topics_count; i++)
                        for (int32_t j = 0; j < resp->topics[i].partitions_count; j++)
                                if (resp->topics[i].partitions[j].error_code == KAFKA_NONE)
                                        resp->topics[i].partitions[j].error_code = KAFKA_KAFKA_STORAGE_ERROR;
                request_respond(req, resp);
        }
}

int handle_offset_commit(struct request *req)
{
        struct offset_commit_request msg;
        int16_t version = req->hdr.api_version;
        if (offset_commit_request_decode(&req->body, version, &msg) < 0)
                return -EPROTO;
        struct broker *broker = req->broker;
        struct offset_commit_response *resp = request_alloc(req, 1, sizeof(*resp));
        offset_commit_response_init(resp);
        int64_t now = clock_wall_ms();
        struct kafka_str instance = version >= 7 ? msg.group_instance_id : (struct kafka_str){ NULL, -1 };
        int16_t top = group_commit_check(broker->groups, msg.group_id, msg.generation_id_or_member_epoch, msg.member_id,
                                         instance, now);
        int64_t retention_ms = broker->cfg.offsets_retention_minutes * 60000;
        bool stored = false;
        resp->topics_count = MAX(msg.topics_count, 0);
        resp->topics = request_alloc(req, resp->topics_count, sizeof(*resp->topics));
        for (int32_t i = 0; i < resp->topics_count; i++) {
                struct offset_commit_request_offset_commit_request_topic *t = &msg.topics[i];
                struct offset_commit_response_offset_commit_response_topic *rt = &resp->topics[i];
                offset_commit_response_offset_commit_response_topic_init(rt);
                rt->name = t->name;
                rt->partitions_count = MAX(t->partitions_count, 0);
                rt->partitions = request_alloc(req, rt->partitions_count, sizeof(*rt->partitions));
                struct topic *topic = t->name.len > 0 ? broker_topic(broker, t->name.ptr, (size_t)t->name.len) : NULL;
                for (int32_t j = 0; j < rt->partitions_count; j++) {
                        struct offset_commit_request_offset_commit_request_partition *p = &t->partitions[j];
                        struct offset_commit_response_offset_commit_response_partition *rp = &rt->partitions[j];
                        offset_commit_response_offset_commit_response_partition_init(rp);
                        rp->partition_index = p->partition_index;
                        if (top) {
                                rp->error_code = top;
                                continue;
                        }
                        if (!broker_partition(broker, topic, p->partition_index)) {
                                rp->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                                continue;
                        }
                        int64_t expire_ms = -1;
                        if (version >= 2 && version <= 4 && msg.retention_time_ms >= 0)
                                expire_ms = now + msg.retention_time_ms;
                        else if (version == 1 && p->commit_timestamp >= 0)
                                expire_ms = p->commit_timestamp + retention_ms;
                        rp->error_code = group_commit_offset(broker->groups, msg.group_id, t->name, p->partition_index,
                                                             p->committed_offset,
                                                             version >= 6 ? p->committed_leader_epoch : -1,
                                                             p->committed_metadata, expire_ms, now);
                        stored |= rp->error_code == KAFKA_NONE;
                }
        }
        if (stored && broker->cfg.log_flush_interval_messages == 1) {
                req->state = resp;
                req->cancel = commit_cancel;
                req->next = broker->offset_sync_waiters;
                broker->offset_sync_waiters = req;
                return 0;
        }
        request_respond(req, resp);
        return 0;
}
