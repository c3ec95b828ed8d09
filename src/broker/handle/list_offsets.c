/* ListOffsets: earliest (-2), latest (-1), max timestamp (-3, v7) or the first offset
 * at or after a timestamp. Without transactions read_committed and read_uncommitted
 * see the same end. */
#include <errno.h>

#include "broker/broker.h"
#include "broker/dispatch.h"
#include "broker/storage/plog.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"

#define LATEST_TIMESTAMP -1
#define EARLIEST_TIMESTAMP -2
#define MAX_TIMESTAMP -3

int handle_list_offsets(struct request *req)
{
        struct list_offsets_request msg;
        if (list_offsets_request_decode(&req->body, req->hdr.api_version, &msg) < 0)
                return -EPROTO;
        struct broker *broker = req->broker;
        struct list_offsets_response resp;
        list_offsets_response_init(&resp);
        resp.topics_count = msg.topics_count;
        resp.topics = request_alloc(req, msg.topics_count, sizeof(*resp.topics));
        for (int32_t i = 0; i < msg.topics_count; i++) {
                struct list_offsets_request_list_offsets_topic *rt = &msg.topics[i];
                struct list_offsets_response_list_offsets_topic_response *tr = &resp.topics[i];
                list_offsets_response_list_offsets_topic_response_init(tr);
                tr->name = rt->name;
                tr->partitions_count = rt->partitions_count;
                tr->partitions = request_alloc(req, rt->partitions_count, sizeof(*tr->partitions));
                struct topic *topic = rt->name.len > 0 ? broker_topic(broker, rt->name.ptr, (size_t)rt->name.len)
                                                       : NULL;
                for (int32_t j = 0; j < rt->partitions_count; j++) {
                        struct list_offsets_request_list_offsets_partition *rp = &rt->partitions[j];
                        struct list_offsets_response_list_offsets_partition_response *pr = &tr->partitions[j];
                        list_offsets_response_list_offsets_partition_response_init(pr);
                        pr->partition_index = rp->partition_index;
                        pr->timestamp = -1;
                        pr->offset = -1;
                        pr->leader_epoch = 0;
                        struct plog *log = broker_partition(broker, topic, rp->partition_index);
                        if (!log) {
                                pr->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                                pr->leader_epoch = -1;
                                continue;
                        }
                        if (rp->timestamp == LATEST_TIMESTAMP) {
                                pr->offset = plog_end_offset(log);
                        } else if (rp->timestamp == EARLIEST_TIMESTAMP) {
                                pr->offset = plog_start_offset(log);
                        } else if (rp->timestamp == MAX_TIMESTAMP) {
                                int64_t off, ts;
                                if (plog_max_timestamp(log, &off, &ts) == 0) {
                                        pr->offset = off;
                                        pr->timestamp = ts;
                                }
                        } else if (rp->timestamp >= 0) {
                                int64_t off, ts;
                                if (plog_offset_for_timestamp(log, rp->timestamp, &off, &ts) == 0) {
                                        pr->offset = off;
                                        pr->timestamp = ts;
                                }
                        } else {
                                /* -4 (earliest local) and -5 (tiered) mean the earliest here. */
                                pr->offset = plog_start_offset(log);
                        }
                }
        }
        request_respond(req, &resp);
        return 0;
}
