/* CreatePartitions: grows a topic to the requested count (never shrinks). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/dispatch.h"
#include "broker/tenancy/tenancy.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"

int handle_create_partitions(struct request *req)
{
        struct create_partitions_request msg;
        if (create_partitions_request_decode(&req->body, req->hdr.api_version, &msg) < 0)
                return -EPROTO;
        struct broker *broker = req->broker;
        struct create_partitions_response resp;
        create_partitions_response_init(&resp);
        resp.results_count = msg.topics_count;
        resp.results = request_alloc(req, msg.topics_count, sizeof(*resp.results));
        for (int32_t i = 0; i < msg.topics_count; i++) {
                struct create_partitions_request_create_partitions_topic *rt = &msg.topics[i];
                struct create_partitions_response_create_partitions_topic_result *tr = &resp.results[i];
                create_partitions_response_create_partitions_topic_result_init(tr);
                tr->name = rt->name;
                char why[256] = "";
                struct topic *topic = rt->name.len > 0 ? broker_topic(broker, rt->name.ptr, (size_t)rt->name.len)
                                                       : NULL;
                if (!topic) {
                        tr->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                } else if (rt->count <= topic->partition_count) {
                        tr->error_code = KAFKA_INVALID_PARTITIONS;
                        snprintf(why, sizeof(why), "Topic currently has %d partitions, which is %s the requested %d.",
                                 topic->partition_count, rt->count == topic->partition_count ? "equal to" : "higher than",
                                 rt->count);
                } else if (rt->count > 100000) {
                        tr->error_code = KAFKA_INVALID_PARTITIONS;
                        snprintf(why, sizeof(why), "at most 100000 partitions per topic");
                } else if (rt->assignments_count > 0 &&
                           rt->assignments_count != rt->count - topic->partition_count) {
                        tr->error_code = KAFKA_INVALID_REPLICA_ASSIGNMENT;
                        snprintf(why, sizeof(why), "give one assignment per new partition");
                } else if (tenancy_check_partitions(req->conn, rt->count - topic->partition_count, why,
                                                    sizeof(why)) < 0) {
                        tr->error_code = KAFKA_POLICY_VIOLATION;
                } else if (!msg.validate_only) {
                        int rc = broker_add_partitions(broker, topic, rt->count);
                        if (rc < 0) {
                                tr->error_code = KAFKA_KAFKA_STORAGE_ERROR;
                                snprintf(why, sizeof(why), "could not create partition files: %s", strerror(-rc));
                        }
                }
                if (why[0])
                        tr->error_message = request_str(req, why);
        }
        request_respond(req, &resp);
        return 0;
}
