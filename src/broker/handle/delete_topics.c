/* DeleteTopics: by name (v0-5) or name/topic id (v6). The topic's metadata goes first,
 * then its partition directories. */
#include <errno.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/dispatch.h"
#include "broker/tenancy/tenancy.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"

static struct topic *find_by_id(struct request *req, struct kafka_uuid id)
{
        const char *key;
        void *value;
        for (size_t it = 0; map_next(&req->broker->topics, &it, &key, &value);) {
                struct topic *topic = value;
                if (memcmp(topic->id.b, id.b, 16) == 0 && tenancy_visible(req->conn, topic->name, strlen(topic->name)))
                        return topic;
        }
        return NULL;
}

static void delete_one(struct request *req, struct kafka_str name, struct kafka_uuid id,
                       struct delete_topics_response_deletable_topic_result *tr)
{
        struct broker *broker = req->broker;
        static const struct kafka_uuid zero;
        struct topic *topic = NULL;
        tr->name = name;
        tr->topic_id = id;
        if (name.len >= 0)
                topic = broker_topic(broker, name.ptr, (size_t)name.len);
        else if (memcmp(id.b, zero.b, 16) != 0)
                topic = find_by_id(req, id);
        if (!topic) {
                tr->error_code = name.len >= 0 ? KAFKA_UNKNOWN_TOPIC_OR_PARTITION : KAFKA_UNKNOWN_TOPIC_ID;
                return;
        }
        if (!broker->cfg.delete_topic_enable) {
                tr->error_code = KAFKA_TOPIC_DELETION_DISABLED;
                tr->error_message = kafka_str_c("delete.topic.enable is false on this broker");
                return;
        }
        tr->name = request_str(req, topic->name);
        tr->topic_id = topic->id;
        if (broker_delete_topic(broker, topic) < 0) {
                tr->error_code = KAFKA_KAFKA_STORAGE_ERROR;
                tr->error_message = kafka_str_c("could not remove the topic's metadata file");
        }
}

int handle_delete_topics(struct request *req)
{
        struct delete_topics_request msg;
        int16_t version = req->hdr.api_version;
        if (delete_topics_request_decode(&req->body, version, &msg) < 0)
                return -EPROTO;
        struct delete_topics_response resp;
        delete_topics_response_init(&resp);
        int32_t n = version >= 6 ? msg.topics_count : msg.topic_names_count;
        resp.responses_count = n;
        resp.responses = request_alloc(req, n, sizeof(*resp.responses));
        for (int32_t i = 0; i < n; i++) {
                delete_topics_response_deletable_topic_result_init(&resp.responses[i]);
                if (version >= 6)
                        delete_one(req, msg.topics[i].name, msg.topics[i].topic_id, &resp.responses[i]);
                else
                        delete_one(req, msg.topic_names[i], (struct kafka_uuid){ { 0 } }, &resp.responses[i]);
        }
        request_respond(req, &resp);
        return 0;
}
