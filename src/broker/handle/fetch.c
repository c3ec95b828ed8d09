/* Fetch: whole batches straight from segment files (sendfile), at least one batch even
 * when it is larger than the limits (KIP-74), at most fetch.max.bytes otherwise. When
 * fewer than min_bytes are available the request waits (long poll) until appends bring
 * enough or max_wait_ms passes. No fetch sessions: session_id 0 tells clients to send
 * full requests. Without transactions the last stable offset is the high watermark. */
#define LOG_TOPIC "fetch"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "broker/broker.h"
#include "broker/dispatch.h"
#include "broker/tenancy/tenancy.h"
#include "broker/storage/plog.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"
#include "loop/loop.h"

struct fetch_state {
        struct fetch_request msg;   /* decoded; views into the request frame */
        struct fetch_response resp; /* arrays in the response arena */
        struct kafka_file_slice *slices; /* one per partition, in response order */
        int nslices;
        bool had_error;             /* some partition has an error: answer at once */
};

static void release_slices(struct fetch_state *st)
{
        for (int i = 0; i < st->nslices; i++) {
                if (st->slices[i].release)
                        st->slices[i].release(st->slices[i].ref);
                st->slices[i].release = NULL;
                st->slices[i].len = 0;
        }
}

/* Fills the response from the logs as they are now. Returns the bytes of records. */
static int64_t fetch_fill(struct request *req, struct fetch_state *st)
{
        struct broker *broker = req->broker;
        struct fetch_request *msg = &st->msg;
        int64_t max_bytes = msg->max_bytes > 0 ? msg->max_bytes : broker->cfg.fetch_max_bytes;
        if (max_bytes > broker->cfg.fetch_max_bytes)
                max_bytes = broker->cfg.fetch_max_bytes;
        /* A tenant's fetch quota bounds the answer to what its bucket holds. */
        max_bytes = tenancy_fetch_allowance(req->conn, (int32_t)max_bytes);
        int64_t total = 0;
        int k = 0;
        release_slices(st);
        st->had_error = false;
        for (int32_t i = 0; i < msg->topics_count; i++) {
                struct fetch_request_fetch_topic *ft = &msg->topics[i];
                struct fetch_response_fetchable_topic_response *tr = &st->resp.responses[i];
                struct topic *topic = ft->topic.len > 0 ? broker_topic(broker, ft->topic.ptr, (size_t)ft->topic.len)
                                                        : NULL;
                for (int32_t j = 0; j < ft->partitions_count; j++, k++) {
                        struct fetch_request_fetch_partition *fp = &ft->partitions[j];
                        struct fetch_response_partition_data *pd = &tr->partitions[j];
                        struct kafka_file_slice *slice = &st->slices[k];
                        fetch_response_partition_data_init(pd);
                        pd->partition_index = fp->partition;
                        pd->aborted_transactions_count = msg->isolation_level == 1 ? 0 : -1;
                        pd->records.len = 0;
                        pd->records.ptr = (const uint8_t *)"";
                        struct plog *log = broker_partition(broker, topic, fp->partition);
                        if (!log) {
                                st->had_error = true;
                                pd->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                                pd->high_watermark = -1;
                                pd->last_stable_offset = -1;
                                continue;
                        }
                        pd->high_watermark = plog_end_offset(log);
                        pd->last_stable_offset = pd->high_watermark;
                        pd->log_start_offset = plog_start_offset(log);
                        if (total >= max_bytes)
                                continue;
                        int64_t limit = MIN((int64_t)fp->partition_max_bytes, max_bytes - total);
                        if (limit <= 0 && total > 0)
                                continue;
                        int rc = plog_read(log, fp->fetch_offset, (int32_t)MAX(limit, 1), slice);
                        if (rc == -ERANGE) {
                                st->had_error = true;
                                pd->error_code = KAFKA_OFFSET_OUT_OF_RANGE;
                                continue;
                        }
                        if (rc < 0) {
                                log_error("read failed topic=%s partition=%d offset=%lld: %s", topic->name,
                                          fp->partition, (long long)fp->fetch_offset, strerror(-rc));
                                pd->error_code = KAFKA_KAFKA_STORAGE_ERROR;
                                continue;
                        }
                        /* Past the first data, never exceed the response limit. */
                        if (total > 0 && slice->len > limit) {
                                if (slice->release)
                                        slice->release(slice->ref);
                                slice->release = NULL;
                                slice->len = 0;
                                continue;
                        }
                        total += slice->len;
                }
        }
        return total;
}

static void fetch_state_free(struct fetch_state *st);

/* Answers with what fetch_fill() found, then frees <st>. */
static void fetch_respond_and_free(struct request *req, struct fetch_state *st)
{
        int64_t bytes = 0;
        for (int i = 0; i < st->nslices; i++)
                bytes += st->slices[i].len;
        tenancy_on_fetch(req, bytes);
        int k = 0;
        for (int32_t i = 0; i < st->resp.responses_count; i++) {
                struct fetch_response_fetchable_topic_response *tr = &st->resp.responses[i];
                for (int32_t j = 0; j < tr->partitions_count; j++, k++) {
                        if (st->slices[k].len > 0) {
                                tr->partitions[j].records.file = &st->slices[k];
                                tr->partitions[j].records.len = st->slices[k].len;
                        }
                }
        }
        /* Encoding hands each slice's reference to the connection's writer. */
        request_respond(req, &st->resp);
        fetch_state_free(st);
}

static void fetch_state_free(struct fetch_state *st)
{
        if (!st)
                return;
        release_slices(st);
        free(st->slices);
        free(st);
}

static void fetch_cancel(struct request *req)
{
        request_unlink(&req->broker->fetch_waiters, req);
        fetch_state_free(req->state);
        request_free(req);
}

static void fetch_finish(struct request *req)
{
        struct fetch_state *st = req->state;
        req->cancel = NULL;
        req->state = NULL;
        fetch_respond_and_free(req, st);
}

static void on_fetch_timeout(struct loop *loop, void *arg)
{
        struct request *req = arg;
        req->timer = NULL; /* the loop frees a fired timer */
        request_unlink(&req->broker->fetch_waiters, req);
        fetch_fill(req, req->state);
        fetch_finish(req);
}

void fetch_wake_waiters(struct broker *broker)
{
        struct request *list = broker->fetch_waiters;
        broker->fetch_waiters = NULL;
        while (list) {
                struct request *req = list;
                list = req->next;
                req->next = NULL;
                struct fetch_state *st = req->state;
                int64_t bytes = fetch_fill(req, st);
                if (bytes >= st->msg.min_bytes || st->had_error) {
                        fetch_finish(req);
                } else {
                        release_slices(st);
                        req->next = broker->fetch_waiters;
                        broker->fetch_waiters = req;
                }
        }
}

int handle_fetch(struct request *req)
{
        struct fetch_state *st = xcalloc(1, sizeof(*st));
        int16_t version = req->hdr.api_version;
        if (fetch_request_decode(&req->body, version, &st->msg) < 0) {
                free(st);
                return -EPROTO;
        }
        struct fetch_request *msg = &st->msg;
        fetch_response_init(&st->resp);
        st->resp.session_id = 0;
        st->resp.responses_count = msg->topics_count;
        st->resp.responses = request_alloc(req, msg->topics_count, sizeof(*st->resp.responses));
        int nparts = 0;
        for (int32_t i = 0; i < msg->topics_count; i++) {
                struct fetch_response_fetchable_topic_response *tr = &st->resp.responses[i];
                fetch_response_fetchable_topic_response_init(tr);
                tr->topic = msg->topics[i].topic;
                tr->topic_id = msg->topics[i].topic_id;
                tr->partitions_count = msg->topics[i].partitions_count;
                tr->partitions = request_alloc(req, tr->partitions_count, sizeof(*tr->partitions));
                nparts += MAX(tr->partitions_count, 0);
        }
        st->nslices = nparts;
        st->slices = xcalloc((size_t)MAX(nparts, 1), sizeof(*st->slices));
        req->state = st;
        int64_t bytes = fetch_fill(req, st);
        if (bytes >= msg->min_bytes || msg->max_wait_ms <= 0 || st->had_error || nparts == 0) {
                req->state = NULL;
                fetch_respond_and_free(req, st);
                return 0;
        }
        release_slices(st);
        req->cancel = fetch_cancel;
        req->next = req->broker->fetch_waiters;
        req->broker->fetch_waiters = req;
        req->timer = loop_add_timer(req->broker->loop, msg->max_wait_ms, on_fetch_timeout, req);
        return 0;
}
