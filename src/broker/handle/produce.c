/* Produce: validates each record batch (magic 2, CRC-32C, size, codec), appends it to
 * the partition log (which assigns offsets and checks idempotent-producer sequences),
 * then answers. acks=0 gets no response (a failure closes the connection so the
 * producer notices, as Kafka does). With log.flush.interval.messages=1 the answer
 * waits for the group-commit fsync done once per loop iteration for all produces. */
#define LOG_TOPIC "produce"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/dispatch.h"
#include "broker/storage/plog.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"
#include "kafka/record.h"

/* Checks every batch in <data, len>. Returns KAFKA_NONE or the error for the set, with a
 * message in <why>. Counts records into *<records>. */
static int16_t check_batches(const uint8_t *data, size_t len, int16_t version, int32_t max_batch_bytes,
                             int64_t *records, const char **why)
{
        size_t off = 0;
        *records = 0;
        if (len == 0) {
                *why = "empty record set";
                return KAFKA_INVALID_RECORD;
        }
        while (off < len) {
                struct record_batch_header h;
                enum record_check c = record_batch_check(data + off, len - off, &h);
                switch (c) {
                case RECORD_OK:
                        break;
                case RECORD_BAD_MAGIC:
                        *why = "only record batches of magic 2 (Kafka 0.11+ format) are accepted";
                        return KAFKA_UNSUPPORTED_FOR_MESSAGE_FORMAT;
                case RECORD_BAD_CRC:
                        *why = "record batch CRC mismatch";
                        return KAFKA_CORRUPT_MESSAGE;
                default:
                        *why = "truncated or malformed record batch";
                        return KAFKA_CORRUPT_MESSAGE;
                }
                /* As Kafka's LogValidator: a produced batch holds at least one record and
                 * exactly one per offset it claims (else one batch could take 2^31
                 * offsets and force a segment roll). */
                if (h.record_count <= 0 || h.last_offset_delta != h.record_count - 1) {
                        *why = "record count does not match the batch's offset range";
                        return KAFKA_CORRUPT_MESSAGE;
                }
                size_t size = RECORD_BATCH_LOG_OVERHEAD + (size_t)h.batch_length;
                if (!record_batch_records_valid(data + off, size, &h)) {
                        *why = "malformed record inside the batch";
                        return KAFKA_CORRUPT_MESSAGE;
                }
                if (size > (size_t)max_batch_bytes) {
                        *why = "record batch larger than max.message.bytes";
                        return KAFKA_MESSAGE_TOO_LARGE;
                }
                int codec = h.attributes & RECORD_ATTR_COMPRESSION_MASK;
                if (codec > CODEC_ZSTD || (codec == CODEC_ZSTD && version < 7)) {
                        *why = "unsupported compression codec for this produce version";
                        return KAFKA_UNSUPPORTED_COMPRESSION_TYPE;
                }
                if (h.attributes & (RECORD_ATTR_TRANSACTIONAL | RECORD_ATTR_CONTROL)) {
                        *why = "transactional record batches are not supported";
                        return KAFKA_INVALID_RECORD;
                }
                *records += h.record_count;
                off += size;
        }
        return KAFKA_NONE;
}

static void stamp_log_append_time(uint8_t *data, size_t len, int64_t now_ms)
{
        size_t off = 0;
        while (off < len) {
                int64_t size = record_batch_size(data + off, len - off);
                record_batch_set_log_append_time(data + off, (size_t)size, now_ms);
                off += (size_t)size;
        }
}

static void produce_partition(struct request *req, struct topic *topic, int32_t partition,
                              struct kafka_records records,
                              struct produce_response_partition_produce_response *pr, bool *needs_sync)
{
        struct broker *broker = req->broker;
        int16_t version = req->hdr.api_version;
        struct plog *log = broker_partition(broker, topic, partition);
        if (!log) {
                pr->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                return;
        }
        pr->log_start_offset = plog_start_offset(log);
        if (version < 3) {
                pr->error_code = KAFKA_UNSUPPORTED_FOR_MESSAGE_FORMAT;
                pr->error_message = kafka_str_c("produce v0-2 (message format v0/v1) is not supported; use Kafka 0.11+ clients");
                return;
        }
        if (records.len <= 0) {
                pr->error_code = KAFKA_INVALID_RECORD;
                pr->error_message = kafka_str_c("no records");
                return;
        }
        /* The frame is ours and writable: offsets are assigned in place. */
        uint8_t *data = (uint8_t *)records.ptr;
        size_t len = (size_t)records.len;
        int64_t nrecords;
        const char *why = NULL;
        int32_t max_batch = (int32_t)broker_topic_config_long(broker, topic, "max.message.bytes");
        int16_t err = check_batches(data, len, version, max_batch, &nrecords, &why);
        if (err != KAFKA_NONE) {
                log_debug("rejected produce topic=%s partition=%d error=%s: %s", topic->name, partition,
                          kafka_error_name(err), why);
                pr->error_code = err;
                pr->error_message = kafka_str_c(why);
                return;
        }
        int64_t now = clock_wall_ms();
        char ts_type[32];
        broker_topic_config(broker, topic, "message.timestamp.type", ts_type, sizeof(ts_type));
        bool log_append_time = strcmp(ts_type, "LogAppendTime") == 0;
        if (log_append_time)
                stamp_log_append_time(data, len, now);
        struct plog_append_result res;
        int rc = plog_append(log, data, len, now, &res);
        if (rc < 0) {
                log_error("append failed topic=%s partition=%d: %s", topic->name, partition, strerror(-rc));
                pr->error_code = KAFKA_KAFKA_STORAGE_ERROR;
                return;
        }
        pr->error_code = res.error_code;
        pr->log_start_offset = res.log_start_offset;
        if (res.error_code != KAFKA_NONE)
                return;
        pr->base_offset = res.base_offset;
        pr->log_append_time_ms = log_append_time ? now : -1;
        if (res.duplicate)
                return;
        topic->unflushed[partition] += nrecords;
        int64_t flush_messages = broker_topic_config_long(broker, topic, "flush.messages");
        if (topic->unflushed[partition] >= flush_messages)
                *needs_sync = true;
        broker_notify_append(broker);
}

static void cancel_sync_wait(struct request *req)
{
        request_unlink(&req->broker->sync_waiters, req);
        request_free(req);
}

int handle_produce(struct request *req)
{
        struct produce_request msg;
        int16_t version = req->hdr.api_version;
        if (produce_request_decode(&req->body, version, &msg) < 0)
                return -EPROTO;
        struct broker *broker = req->broker;
        struct produce_response *resp = request_alloc(req, 1, sizeof(*resp));
        produce_response_init(resp);
        bool acks_ok = msg.acks == 0 || msg.acks == 1 || msg.acks == -1;
        bool transactional = msg.transactional_id.len >= 0;
        bool needs_sync = false, failed = false;
        resp->responses_count = msg.topic_data_count;
        resp->responses = request_alloc(req, msg.topic_data_count, sizeof(*resp->responses));
        for (int32_t i = 0; i < msg.topic_data_count; i++) {
                struct produce_request_topic_produce_data *td = &msg.topic_data[i];
                struct produce_response_topic_produce_response *tr = &resp->responses[i];
                produce_response_topic_produce_response_init(tr);
                tr->name = td->name;
                tr->partition_responses_count = td->partition_data_count;
                tr->partition_responses = request_alloc(req, td->partition_data_count,
                                                        sizeof(*tr->partition_responses));
                struct topic *topic = td->name.len > 0 ? broker_topic(broker, td->name.ptr, (size_t)td->name.len)
                                                        : NULL;
                for (int32_t j = 0; j < td->partition_data_count; j++) {
                        struct produce_response_partition_produce_response *pr = &tr->partition_responses[j];
                        produce_response_partition_produce_response_init(pr);
                        pr->index = td->partition_data[j].index;
                        pr->base_offset = -1;
                        pr->log_append_time_ms = -1;
                        pr->log_start_offset = -1;
                        if (!acks_ok)
                                pr->error_code = KAFKA_INVALID_REQUIRED_ACKS;
                        else if (transactional)
                                pr->error_code = KAFKA_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
                        else if (!topic)
                                pr->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                        else
                                produce_partition(req, topic, pr->index, td->partition_data[j].records, pr,
                                                  &needs_sync);
                        if (pr->error_code != KAFKA_NONE)
                                failed = true;
                }
        }
        if (msg.acks == 0) {
                struct conn *conn = req->conn;
                request_no_response(req);
                if (failed)
                        conn_close(conn, "acks=0 produce failed");
                return 0;
        }
        if (needs_sync) {
                req->state = resp;
                req->cancel = cancel_sync_wait;
                req->next = broker->sync_waiters;
                broker->sync_waiters = req;
                return 0;
        }
        request_respond(req, resp);
        return 0;
}

static void sync_one(struct broker *broker, struct topic *topic, int *failures)
{
        for (int32_t p = 0; p < topic->partition_count; p++) {
                if (!topic->unflushed[p])
                        continue;
                int rc = plog_sync(topic->partitions[p]);
                if (rc < 0) {
                        log_error("fsync failed topic=%s partition=%d: %s", topic->name, p, strerror(-rc));
                        (*failures)++;
                } else {
                        topic->unflushed[p] = 0;
                }
        }
}

void produce_sync_waiters(struct broker *broker)
{
        /* One fsync per dirty partition covers every produce read this iteration. */
        int failures = 0;
        const char *key;
        void *value;
        for (size_t it = 0; map_next(&broker->topics, &it, &key, &value);)
                sync_one(broker, value, &failures);
        struct request *list = broker->sync_waiters;
        broker->sync_waiters = NULL;
        while (list) {
                struct request *req = list;
                list = req->next;
                req->next = NULL;
                struct produce_response *resp = req->state;
                if (failures) {
                        for (int32_t i = 0; i < resp->responses_count; i++)
                                for (int32_t j = 0; j < resp->responses[i].partition_responses_count; j++) {
                                        struct produce_response_partition_produce_response *pr =
                                                &resp->responses[i].partition_responses[j];
                                        if (pr->error_code == KAFKA_NONE)
                                                pr->error_code = KAFKA_KAFKA_STORAGE_ERROR;
                                }
                }
                req->cancel = NULL;
                request_respond(req, resp);
        }
}
