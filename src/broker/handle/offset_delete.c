/* OffsetDelete (KIP-496): deletes committed offsets of a group for partitions of topics
 * no live member subscribes to (those get GROUP_SUBSCRIBED_TO_TOPIC). A group that is
 * not a consumer group may only lose offsets while it is empty. */
#include <errno.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/dispatch.h"
#include "broker/group/group.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"

int handle_offset_delete(struct request *req)
{
        struct offset_delete_request msg;
        if (offset_delete_request_decode(&req->body, req->hdr.api_version, &msg) < 0)
                return -EPROTO;
        struct broker *broker = req->broker;
        struct offset_delete_response resp;
        offset_delete_response_init(&resp);
        struct group *group =
                msg.group_id.len >= 0 ? group_find(broker->groups, msg.group_id.ptr, (size_t)msg.group_id.len) : NULL;
        if (!group) {
                resp.error_code = KAFKA_GROUP_ID_NOT_FOUND;
                request_respond(req, &resp);
                return 0;
        }
        bool consumer = group->protocol_type && strcmp(group->protocol_type, "consumer") == 0;
        if (group->state != GROUP_EMPTY && !consumer) {
                resp.error_code = KAFKA_NON_EMPTY_GROUP;
                request_respond(req, &resp);
                return 0;
        }
        resp.topics_count = msg.topics_count > 0 ? msg.topics_count : 0;
        resp.topics = request_alloc(req, resp.topics_count, sizeof(*resp.topics));
        for (int32_t i = 0; i < resp.topics_count; i++) {
                struct offset_delete_request_offset_delete_request_topic *t = &msg.topics[i];
                struct offset_delete_response_offset_delete_response_topic *rt = &resp.topics[i];
                offset_delete_response_offset_delete_response_topic_init(rt);
                rt->name = t->name;
                rt->partitions_count = t->partitions_count > 0 ? t->partitions_count : 0;
                rt->partitions = request_alloc(req, rt->partitions_count, sizeof(*rt->partitions));
                struct topic *topic = t->name.len > 0 ? broker_topic(broker, t->name.ptr, (size_t)t->name.len) : NULL;
                for (int32_t j = 0; j < rt->partitions_count; j++) {
                        int32_t p = t->partitions[j].partition_index;
                        offset_delete_response_offset_delete_response_partition_init(&rt->partitions[j]);
                        rt->partitions[j].partition_index = p;
                        rt->partitions[j].error_code = broker_partition(broker, topic, p)
                                                               ? group_offset_delete(broker->groups, group, t->name, p)
                                                               : KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                }
        }
        request_respond(req, &resp);
        return 0;
}
