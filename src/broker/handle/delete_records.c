/* DeleteRecords: moves each partition's log start offset up (offset -1 = the high
 * watermark); whole segments below it are deleted. */
#include <errno.h>

#include "broker/broker.h"
#include "broker/dispatch.h"
#include "broker/storage/plog.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"

int handle_delete_records(struct request *req)
{
        struct delete_records_request msg;
        if (delete_records_request_decode(&req->body, req->hdr.api_version, &msg) < 0)
                return -EPROTO;
        struct broker *broker = req->broker;
        struct delete_records_response resp;
        delete_records_response_init(&resp);
        resp.topics_count = msg.topics_count;
        resp.topics = request_alloc(req, msg.topics_count, sizeof(*resp.topics));
        for (int32_t i = 0; i < msg.topics_count; i++) {
                struct delete_records_request_delete_records_topic *rt = &msg.topics[i];
                struct delete_records_response_delete_records_topic_result *tr = &resp.topics[i];
                delete_records_response_delete_records_topic_result_init(tr);
                tr->name = rt->name;
                tr->partitions_count = rt->partitions_count;
                tr->partitions = request_alloc(req, rt->partitions_count, sizeof(*tr->partitions));
                struct topic *topic = rt->name.len > 0 ? broker_topic(broker, rt->name.ptr, (size_t)rt->name.len)
                                                       : NULL;
                for (int32_t j = 0; j < rt->partitions_count; j++) {
                        struct delete_records_response_delete_records_partition_result *pr = &tr->partitions[j];
                        delete_records_response_delete_records_partition_result_init(pr);
                        pr->partition_index = rt->partitions[j].partition_index;
                        pr->low_watermark = -1;
                        struct plog *log = broker_partition(broker, topic, pr->partition_index);
                        if (!log) {
                                pr->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                                continue;
                        }
                        int64_t offset = rt->partitions[j].offset;
                        if (offset == -1)
                                offset = plog_end_offset(log);
                        int rc = offset < 0 ? -ERANGE : plog_delete_records(log, offset);
                        if (rc == -ERANGE)
                                pr->error_code = KAFKA_OFFSET_OUT_OF_RANGE;
                        else if (rc < 0)
                                pr->error_code = KAFKA_KAFKA_STORAGE_ERROR;
                        pr->low_watermark = plog_start_offset(log);
                }
        }
        request_respond(req, &resp);
        return 0;
}
