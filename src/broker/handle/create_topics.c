/* CreateTopics: validates names, partition counts (-1 = num.partitions), replication
 * (a single broker: 1), assignments and topic configs, then creates the topics (unless
 * validate_only). Topics are visible in Metadata as soon as this answers. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/dispatch.h"
#include "broker/tenancy/tenancy.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"

static void list_configs(struct request *req, struct topic *topic,
                         struct create_topics_response_creatable_topic_result *tr)
{
        const char *const *names = broker_topic_config_names();
        int32_t n = 0;
        while (names[n])
                n++;
        tr->configs_count = n;
        tr->configs = request_alloc(req, n, sizeof(*tr->configs));
        for (int32_t i = 0; i < n; i++) {
                char value[256];
                enum config_source source = broker_topic_config(req->broker, topic, names[i], value, sizeof(value));
                create_topics_response_creatable_topic_configs_init(&tr->configs[i]);
                tr->configs[i].name = kafka_str_c(names[i]);
                tr->configs[i].value = request_str(req, value);
                tr->configs[i].config_source = (int8_t)source;
        }
}

static int16_t create_one(struct request *req, const struct create_topics_request *msg, int32_t idx,
                          struct create_topics_response_creatable_topic_result *tr, char *why, size_t why_len)
{
        struct broker *broker = req->broker;
        struct create_topics_request_creatable_topic *ct = &msg->topics[idx];
        const char *bad = ct->name.len >= 0 ? tenancy_check_topic_name(req->conn, ct->name.ptr, (size_t)ct->name.len)
                                            : "topic name is null";
        if (bad) {
                snprintf(why, why_len, "%s", bad);
                return KAFKA_INVALID_TOPIC_EXCEPTION;
        }
        for (int32_t k = 0; k < msg->topics_count; k++)
                if (k != idx && msg->topics[k].name.len == ct->name.len &&
                    memcmp(msg->topics[k].name.ptr, ct->name.ptr, (size_t)ct->name.len) == 0) {
                        snprintf(why, why_len, "topic appears more than once in the request");
                        return KAFKA_INVALID_REQUEST;
                }
        if (broker_topic(broker, ct->name.ptr, (size_t)ct->name.len)) {
                snprintf(why, why_len, "Topic '%.*s' already exists.", ct->name.len, ct->name.ptr);
                return KAFKA_TOPIC_ALREADY_EXISTS;
        }
        int32_t partitions = ct->num_partitions;
        int16_t replication = ct->replication_factor;
        if (ct->assignments_count > 0) {
                if (partitions != -1 || replication != -1) {
                        snprintf(why, why_len, "give either assignments or partition and replication counts");
                        return KAFKA_INVALID_REQUEST;
                }
                partitions = ct->assignments_count;
                for (int32_t a = 0; a < ct->assignments_count; a++) {
                        struct create_topics_request_creatable_replica_assignment *as = &ct->assignments[a];
                        if (as->partition_index != a || as->broker_ids_count != 1 ||
                            as->broker_ids[0] != broker->cfg.node_id) {
                                snprintf(why, why_len, "replica assignments must put each partition on broker %d",
                                         broker->cfg.node_id);
                                return KAFKA_INVALID_REPLICA_ASSIGNMENT;
                        }
                }
                replication = 1;
        }
        if (partitions == -1)
                partitions = broker->cfg.num_partitions;
        if (replication == -1)
                replication = (int16_t)broker->cfg.default_replication_factor;
        if (partitions < 1 || partitions > 100000) {
                snprintf(why, why_len, "number of partitions must be between 1 and 100000, not %d", partitions);
                return KAFKA_INVALID_PARTITIONS;
        }
        if (replication != 1) {
                snprintf(why, why_len, "replication factor %d is larger than the 1 available broker", replication);
                return KAFKA_INVALID_REPLICATION_FACTOR;
        }
        const char **configs = request_alloc(req, 2 * ct->configs_count + 1, sizeof(char *));
        for (int32_t c = 0; c < ct->configs_count; c++) {
                char *key = kafka_str_dup(&req->out, ct->configs[c].name);
                char *value = kafka_str_dup(&req->out, ct->configs[c].value);
                if (!key) {
                        snprintf(why, why_len, "config name is null");
                        return KAFKA_INVALID_CONFIG;
                }
                if (!value)
                        continue; /* null value: use the default */
                if (broker_check_topic_config(key, value, why, why_len) < 0)
                        return KAFKA_INVALID_CONFIG;
                configs[2 * c] = key;
                configs[2 * c + 1] = value;
        }
        /* Drop holes left by null values. */
        int32_t w = 0;
        for (int32_t c = 0; c < ct->configs_count; c++)
                if (configs[2 * c]) {
                        configs[2 * w] = configs[2 * c];
                        configs[2 * w + 1] = configs[2 * c + 1];
                        w++;
                }
        if (configs)
                configs[2 * w] = NULL;
        if (tenancy_check_partitions(req->conn, partitions, why, why_len) < 0)
                return KAFKA_POLICY_VIOLATION;
        tr->num_partitions = partitions;
        tr->replication_factor = replication;
        if (msg->validate_only)
                return KAFKA_NONE;
        char *name = kafka_str_dup(&req->out, ct->name);
        struct topic *topic;
        int rc = broker_create_topic(broker, name, partitions, configs, &topic);
        if (rc < 0) {
                snprintf(why, why_len, "could not create the topic's files: %s", strerror(-rc));
                return KAFKA_KAFKA_STORAGE_ERROR;
        }
        tr->topic_id = topic->id;
        list_configs(req, topic, tr);
        return KAFKA_NONE;
}

int handle_create_topics(struct request *req)
{
        struct create_topics_request msg;
        if (create_topics_request_decode(&req->body, req->hdr.api_version, &msg) < 0)
                return -EPROTO;
        struct create_topics_response resp;
        create_topics_response_init(&resp);
        resp.topics_count = msg.topics_count;
        resp.topics = request_alloc(req, msg.topics_count, sizeof(*resp.topics));
        for (int32_t i = 0; i < msg.topics_count; i++) {
                struct create_topics_response_creatable_topic_result *tr = &resp.topics[i];
                create_topics_response_creatable_topic_result_init(tr);
                tr->name = msg.topics[i].name;
                tr->num_partitions = -1;
                tr->replication_factor = -1;
                tr->configs_count = -1;
                char why[512] = "";
                tr->error_code = create_one(req, &msg, i, tr, why, sizeof(why));
                if (tr->error_code != KAFKA_NONE) {
                        tr->error_message = request_str(req, why);
                        tr->num_partitions = -1;
                        tr->replication_factor = -1;
                        tr->configs_count = -1;
                }
        }
        request_respond(req, &resp);
        return 0;
}
