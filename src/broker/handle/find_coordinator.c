/* FindCoordinator: this broker coordinates every group (and would every transactional
 * id): the answer is always this broker, at the address of the listener the request came
 * in on. v4 (KIP-699) asks for several keys at once. */
#include <errno.h>

#include "base/alloc.h"

#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/dispatch.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"

int handle_find_coordinator(struct request *req)
{
        struct find_coordinator_request msg;
        if (find_coordinator_request_decode(&req->body, req->hdr.api_version, &msg) < 0)
                return -EPROTO;
        struct broker *broker = req->broker;
        struct find_coordinator_response resp;
        find_coordinator_response_init(&resp);
        struct kafka_str host = kafka_str_c(req->conn->listener->advertised_host);
        int32_t port = req->conn->listener->advertised_port;
        /* 0 = group, 1 = transaction. */
        int16_t error = msg.key_type == 0 || msg.key_type == 1 ? KAFKA_NONE : KAFKA_INVALID_REQUEST;
        if (req->hdr.api_version < 4) {
                resp.error_code = error;
                if (error) {
                        resp.error_message = request_str(req, "key_type must be 0 (group) or 1 (transaction)");
                        resp.node_id = -1;
                        resp.host = kafka_str_c("");
                        resp.port = -1;
                } else {
                        resp.node_id = broker->cfg.node_id;
                        resp.host = host;
                        resp.port = port;
                }
                request_respond(req, &resp);
                return 0;
        }
        resp.coordinators_count = MAX(msg.coordinator_keys_count, 0);
        resp.coordinators = request_alloc(req, resp.coordinators_count, sizeof(*resp.coordinators));
        for (int32_t i = 0; i < resp.coordinators_count; i++) {
                struct find_coordinator_response_coordinator *c = &resp.coordinators[i];
                find_coordinator_response_coordinator_init(c);
                c->key = msg.coordinator_keys[i];
                c->error_code = error;
                if (error) {
                        c->error_message = request_str(req, "key_type must be 0 (group) or 1 (transaction)");
                        c->node_id = -1;
                        c->host = kafka_str_c("");
                        c->port = -1;
                } else {
                        c->node_id = broker->cfg.node_id;
                        c->host = host;
                        c->port = port;
                }
        }
        request_respond(req, &resp);
        return 0;
}
