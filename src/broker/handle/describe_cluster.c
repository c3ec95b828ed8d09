/* DescribeCluster: this broker as the whole cluster (and its controller). */
#include <errno.h>

#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/dispatch.h"
#include "broker/tenancy/tenancy.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"

int handle_describe_cluster(struct request *req)
{
        struct describe_cluster_request msg;
        if (describe_cluster_request_decode(&req->body, req->hdr.api_version, &msg) < 0)
                return -EPROTO;
        struct broker *broker = req->broker;
        struct describe_cluster_response resp;
        describe_cluster_response_init(&resp);
        resp.endpoint_type = msg.endpoint_type;
        if (msg.endpoint_type != 1) {
                resp.error_code = KAFKA_INVALID_REQUEST;
                resp.error_message = request_str(req, "only broker endpoints (endpoint_type 1) are served");
                request_respond(req, &resp);
                return 0;
        }
        resp.cluster_id = request_str(req, tenancy_cluster_id(req->conn));
        resp.controller_id = broker->cfg.node_id;
        resp.brokers_count = 1;
        resp.brokers = request_alloc(req, 1, sizeof(*resp.brokers));
        describe_cluster_response_describe_cluster_broker_init(&resp.brokers[0]);
        resp.brokers[0].broker_id = broker->cfg.node_id;
        resp.brokers[0].host = kafka_str_c(req->conn->listener->advertised_host);
        resp.brokers[0].port = req->conn->listener->advertised_port;
        request_respond(req, &resp);
        return 0;
}
