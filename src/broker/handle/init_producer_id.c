/* InitProducerId: a new producer id for idempotent producers, or the same id with the
 * next epoch when the client asks to bump (KIP-360, v3+). Transactions are not served
 * yet: a transactional id is refused. */
#include <errno.h>

#include "broker/broker.h"
#include "broker/dispatch.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"

int handle_init_producer_id(struct request *req)
{
        struct init_producer_id_request msg;
        if (init_producer_id_request_decode(&req->body, req->hdr.api_version, &msg) < 0)
                return -EPROTO;
        struct init_producer_id_response resp;
        init_producer_id_response_init(&resp);
        if (msg.transactional_id.len >= 0) {
                /* Fatal in clients, with a clear message, rather than a retriable error
                 * that would make them wait forever for a coordinator. */
                resp.error_code = KAFKA_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        } else if (msg.producer_id >= 0 && msg.producer_epoch >= 0 && msg.producer_epoch < 32766 &&
                   msg.producer_id < req->broker->next_producer_id) {
                resp.producer_id = msg.producer_id;
                resp.producer_epoch = (int16_t)(msg.producer_epoch + 1);
        } else {
                int64_t id = broker_alloc_producer_id(req->broker);
                if (id < 0) {
                        resp.error_code = KAFKA_UNKNOWN_SERVER_ERROR;
                } else {
                        resp.producer_id = id;
                        resp.producer_epoch = 0;
                }
        }
        request_respond(req, &resp);
        return 0;
}
