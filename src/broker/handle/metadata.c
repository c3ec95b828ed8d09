/* Metadata: this broker (at the address of the listener the client used) and the
 * requested topics, auto-creating unknown ones when allowed. v0 with no topics and
 * v1+ with a null list mean all topics. */
#include <errno.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/dispatch.h"
#include "broker/tenancy/tenancy.h"
#include "broker/storage/plog.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"

static void fill_topic(struct request *req, struct topic *topic,
                       struct metadata_response_metadata_response_topic *t)
{
        int32_t node = req->broker->cfg.node_id;
        t->name = kafka_str_c(topic->name);
        t->topic_id = topic->id;
        t->partitions_count = topic->partition_count;
        t->partitions = request_alloc(req, topic->partition_count, sizeof(*t->partitions));
        int32_t *nodes = request_alloc(req, 1, sizeof(int32_t));
        nodes[0] = node;
        for (int32_t p = 0; p < topic->partition_count; p++) {
                struct metadata_response_metadata_response_partition *mp = &t->partitions[p];
                metadata_response_metadata_response_partition_init(mp);
                mp->partition_index = p;
                mp->leader_id = node;
                mp->leader_epoch = 0;
                mp->replica_nodes = nodes;
                mp->replica_nodes_count = 1;
                mp->isr_nodes = nodes;
                mp->isr_nodes_count = 1;
                mp->offline_replicas_count = 0;
        }
}

int handle_metadata(struct request *req)
{
        struct metadata_request msg;
        int16_t version = req->hdr.api_version;
        if (metadata_request_decode(&req->body, version, &msg) < 0)
                return -EPROTO;
        struct broker *broker = req->broker;
        struct metadata_response resp;
        metadata_response_init(&resp);
        resp.brokers_count = 1;
        resp.brokers = request_alloc(req, 1, sizeof(*resp.brokers));
        metadata_response_metadata_response_broker_init(&resp.brokers[0]);
        resp.brokers[0].node_id = broker->cfg.node_id;
        resp.brokers[0].host = kafka_str_c(req->conn->listener->advertised_host);
        resp.brokers[0].port = req->conn->listener->advertised_port;
        resp.cluster_id = kafka_str_c(tenancy_cluster_id(req->conn));
        resp.controller_id = broker->cfg.node_id;

        bool all = msg.topics_count < 0 || (version == 0 && msg.topics_count == 0);
        if (all) {
                const char *ns;
                size_t ns_len;
                int32_t i = 0;
                if (tenancy_namespace(req->conn, &ns, &ns_len)) {
                        /* A tenant's own topics only, without walking everyone's. */
                        int n;
                        struct topic *const *topics = broker_namespace_topics(broker, ns, ns_len, &n);
                        resp.topics = request_alloc(req, n, sizeof(*resp.topics));
                        for (int k = 0; k < n; k++) {
                                if (!tenancy_visible(req->conn, topics[k]->name, strlen(topics[k]->name)))
                                        continue; /* the bare prefix: no name of the tenant's */
                                metadata_response_metadata_response_topic_init(&resp.topics[i]);
                                fill_topic(req, topics[k], &resp.topics[i++]);
                        }
                } else {
                        resp.topics = request_alloc(req, (int32_t)broker->topics.len, sizeof(*resp.topics));
                        const char *key;
                        void *value;
                        for (size_t it = 0; map_next(&broker->topics, &it, &key, &value) &&
                                            i < (int32_t)broker->topics.len;) {
                                metadata_response_metadata_response_topic_init(&resp.topics[i]);
                                fill_topic(req, value, &resp.topics[i++]);
                        }
                }
                resp.topics_count = i;
                request_respond(req, &resp);
                return 0;
        }
        bool may_create = broker->cfg.auto_create_topics_enable && (version < 4 || msg.allow_auto_topic_creation);
        resp.topics_count = msg.topics_count;
        resp.topics = request_alloc(req, msg.topics_count, sizeof(*resp.topics));
        for (int32_t i = 0; i < msg.topics_count; i++) {
                struct metadata_response_metadata_response_topic *t = &resp.topics[i];
                metadata_response_metadata_response_topic_init(t);
                struct kafka_str name = msg.topics[i].name;
                t->name = name;
                t->topic_id = msg.topics[i].topic_id;
                t->partitions_count = 0;
                if (name.len < 0) {
                        /* Lookup by topic id (v10+). */
                        const char *key;
                        void *value;
                        t->error_code = KAFKA_UNKNOWN_TOPIC_ID;
                        for (size_t it = 0; map_next(&broker->topics, &it, &key, &value);) {
                                struct topic *topic = value;
                                if (memcmp(topic->id.b, msg.topics[i].topic_id.b, 16) == 0 &&
                                    tenancy_visible(req->conn, topic->name, strlen(topic->name))) {
                                        t->error_code = KAFKA_NONE;
                                        fill_topic(req, topic, t);
                                }
                        }
                        continue;
                }
                struct topic *topic = broker_topic(broker, name.ptr, (size_t)name.len);
                const char *bad_name = tenancy_check_topic_name(req->conn, name.ptr, (size_t)name.len);
                if (!topic && may_create) {
                        char why[256];
                        if (bad_name) {
                                t->error_code = KAFKA_INVALID_TOPIC_EXCEPTION;
                                continue;
                        }
                        if (tenancy_check_partitions(req->conn, broker->cfg.num_partitions, why, sizeof(why)) < 0) {
                                t->error_code = KAFKA_POLICY_VIOLATION;
                                continue;
                        }
                        char *cname = kafka_str_dup(&req->out, name);
                        int rc = broker_create_topic(broker, cname, broker->cfg.num_partitions, NULL, &topic);
                        if (rc < 0 && rc != -EEXIST) {
                                t->error_code = KAFKA_LEADER_NOT_AVAILABLE; /* retriable */
                                continue;
                        }
                }
                if (!topic) {
                        t->error_code = bad_name ? KAFKA_INVALID_TOPIC_EXCEPTION : KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                        continue;
                }
                fill_topic(req, topic, t);
        }
        request_respond(req, &resp);
        return 0;
}
