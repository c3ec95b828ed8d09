/* DescribeConfigs: topic configs (overrides and the broker defaults they fall back to)
 * and broker configs, with synonyms (v1+) and documentation (v3+). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/config.h"
#include "broker/dispatch.h"
#include "broker/tenancy/tenancy.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"

#define RESOURCE_TOPIC 2
#define RESOURCE_BROKER 4


/* DescribeConfigs config_type values. */
#define TYPE_BOOLEAN 1
#define TYPE_STRING 2
#define TYPE_INT 3
#define TYPE_LONG 5
#define TYPE_LIST 7

static int8_t wire_type(const struct config_def *def)
{
        switch (def->type) {
        case CONFIG_BOOL:
                return TYPE_BOOLEAN;
        case CONFIG_INT:
                return TYPE_INT;
        case CONFIG_LONG:
                return TYPE_LONG;
        default:
                return TYPE_STRING;
        }
}

static bool wanted(const struct describe_configs_request_describe_configs_resource *res, const char *name)
{
        if (res->configuration_keys_count < 0)
                return true;
        for (int32_t i = 0; i < res->configuration_keys_count; i++)
                if (kafka_str_eq(res->configuration_keys[i], name))
                        return true;
        return false;
}

static void describe_topic(struct request *req, const struct describe_configs_request *msg,
                           const struct describe_configs_request_describe_configs_resource *res,
                           struct describe_configs_response_describe_configs_result *rr)
{
        struct broker *broker = req->broker;
        /* Resource names carry no entity type in the spec: map the topic's here. */
        struct kafka_str name = tenancy_internal_name(req, res->resource_name);
        struct topic *topic = res->resource_name.len > 0 ? broker_topic(broker, name.ptr, (size_t)name.len) : NULL;
        if (!topic) {
                rr->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                rr->error_message = kafka_str_c("unknown topic");
                rr->configs_count = 0;
                return;
        }
        const char *const *names = broker_topic_config_names();
        int32_t n = 0;
        while (names[n])
                n++;
        rr->configs = request_alloc(req, n, sizeof(*rr->configs));
        int32_t k = 0;
        for (int32_t i = 0; i < n; i++) {
                if (!wanted(res, names[i]))
                        continue;
                struct describe_configs_response_describe_configs_resource_result *c = &rr->configs[k++];
                describe_configs_response_describe_configs_resource_result_init(c);
                char value[256];
                enum config_source source = broker_topic_config(broker, topic, names[i], value, sizeof(value));
                bool is_override = source == CONFIG_SOURCE_TOPIC;
                const struct config_def *def = config_find_topic(names[i]);
                c->name = kafka_str_c(names[i]);
                c->value = request_str(req, value);
                c->config_source = (int8_t)source;
                c->is_default = source == CONFIG_SOURCE_DEFAULT;
                c->config_type = strcmp(names[i], "cleanup.policy") == 0 ? TYPE_LIST
                                 : def ? wire_type(def) : (strcmp(names[i], "min.insync.replicas") == 0 ? TYPE_INT
                                                         : strcmp(names[i], "cleanup.policy") == 0      ? TYPE_LIST
                                                                                                         : TYPE_STRING);
                if (msg->include_documentation && def)
                        c->documentation = kafka_str_c(def->doc);
                c->synonyms_count = 0;
                if (msg->include_synonyms) {
                        c->synonyms = request_alloc(req, 2, sizeof(*c->synonyms));
                        if (is_override) {
                                describe_configs_response_describe_configs_synonym_init(&c->synonyms[c->synonyms_count]);
                                c->synonyms[c->synonyms_count].name = c->name;
                                c->synonyms[c->synonyms_count].value = c->value;
                                c->synonyms[c->synonyms_count++].source = CONFIG_SOURCE_TOPIC;
                        }
                        if (def) {
                                char bv[256];
                                config_format(&broker->cfg, def, bv, sizeof(bv));
                                describe_configs_response_describe_configs_synonym_init(&c->synonyms[c->synonyms_count]);
                                c->synonyms[c->synonyms_count].name = kafka_str_c(def->name);
                                c->synonyms[c->synonyms_count].value = request_str(req, bv);
                                c->synonyms[c->synonyms_count++].source =
                                        strcmp(bv, def->default_value) ? CONFIG_SOURCE_STATIC_BROKER : CONFIG_SOURCE_DEFAULT;
                        }
                }
        }
        rr->configs_count = k;
}

static void describe_broker(struct request *req, const struct describe_configs_request *msg,
                            const struct describe_configs_request_describe_configs_resource *res,
                            struct describe_configs_response_describe_configs_result *rr)
{
        struct broker *broker = req->broker;
        char self[16];
        snprintf(self, sizeof(self), "%d", broker->cfg.node_id);
        if (res->resource_name.len > 0 && !kafka_str_eq(res->resource_name, self)) {
                rr->error_code = KAFKA_INVALID_REQUEST;
                rr->error_message = kafka_str_c("no such broker");
                rr->configs_count = 0;
                return;
        }
        rr->configs = request_alloc(req, (int32_t)config_def_count, sizeof(*rr->configs));
        int32_t k = 0;
        for (size_t i = 0; i < config_def_count; i++) {
                const struct config_def *def = &config_defs[i];
                if (!wanted(res, def->name))
                        continue;
                struct describe_configs_response_describe_configs_resource_result *c = &rr->configs[k++];
                describe_configs_response_describe_configs_resource_result_init(c);
                char value[512];
                config_format(&broker->cfg, def, value, sizeof(value));
                bool is_default = strcmp(value, def->default_value) == 0;
                c->name = kafka_str_c(def->name);
                c->value = request_str(req, value);
                if (config_is_secret(def) && value[0]) {
                        c->is_sensitive = true; /* Kafka's way: a sensitive value is null */
                        c->value = (struct kafka_str){ NULL, -1 };
                        is_default = false;
                }
                c->read_only = true; /* no dynamic broker configs yet */
                c->config_source = is_default ? CONFIG_SOURCE_DEFAULT : CONFIG_SOURCE_STATIC_BROKER;
                c->is_default = is_default;
                c->config_type = wire_type(def);
                if (strcmp(def->name, "listeners") == 0 || strcmp(def->name, "advertised.listeners") == 0)
                        c->config_type = TYPE_LIST;
                if (msg->include_documentation)
                        c->documentation = kafka_str_c(def->doc);
                c->synonyms_count = 0;
                if (msg->include_synonyms) {
                        c->synonyms = request_alloc(req, 1, sizeof(*c->synonyms));
                        describe_configs_response_describe_configs_synonym_init(&c->synonyms[0]);
                        c->synonyms[0].name = c->name;
                        c->synonyms[0].value = c->value;
                        c->synonyms[0].source = (int8_t)c->config_source;
                        c->synonyms_count = 1;
                }
        }
        rr->configs_count = k;
}

int handle_describe_configs(struct request *req)
{
        struct describe_configs_request msg;
        if (describe_configs_request_decode(&req->body, req->hdr.api_version, &msg) < 0)
                return -EPROTO;
        struct describe_configs_response resp;
        describe_configs_response_init(&resp);
        resp.results_count = msg.resources_count;
        resp.results = request_alloc(req, msg.resources_count, sizeof(*resp.results));
        for (int32_t i = 0; i < msg.resources_count; i++) {
                struct describe_configs_request_describe_configs_resource *res = &msg.resources[i];
                struct describe_configs_response_describe_configs_result *rr = &resp.results[i];
                describe_configs_response_describe_configs_result_init(rr);
                rr->resource_type = res->resource_type;
                rr->resource_name = res->resource_name;
                if (res->resource_type == RESOURCE_TOPIC) {
                        describe_topic(req, &msg, res, rr);
                } else if (res->resource_type == RESOURCE_BROKER) {
                        describe_broker(req, &msg, res, rr);
                } else {
                        rr->error_code = KAFKA_INVALID_REQUEST;
                        rr->error_message = kafka_str_c("unsupported resource type");
                        rr->configs_count = 0;
                }
        }
        request_respond(req, &resp);
        return 0;
}
