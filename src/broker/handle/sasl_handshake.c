/* SaslHandshake: picks the mechanism. v0 means the client then sends raw tokens (no Kafka
 * header, conn.c hands them to auth_raw_token()); v1 means SaslAuthenticate requests. */
#include <errno.h>

#include "broker/auth/auth.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/dispatch.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"

int handle_sasl_handshake(struct request *req)
{
        struct sasl_handshake_request msg;
        if (sasl_handshake_request_decode(&req->body, req->hdr.api_version, &msg) < 0)
                return -EPROTO;
        struct conn *conn = req->conn;
        struct broker *broker = req->broker;
        struct sasl_handshake_response resp;
        sasl_handshake_response_init(&resp);
        static const enum sasl_mechanism all[] = { SASL_PLAIN, SASL_SCRAM_SHA_256, SASL_SCRAM_SHA_512 };
        resp.mechanisms = request_alloc(req, 3, sizeof(*resp.mechanisms));
        for (int i = 0; i < 3; i++)
                if (auth_mechanism_enabled(broker, all[i]))
                        resp.mechanisms[resp.mechanisms_count++] = kafka_str_c(sasl_mechanism_name(all[i]));
        enum sasl_mechanism mech = msg.mechanism.len > 0 ? sasl_mechanism_parse(msg.mechanism.ptr, (size_t)msg.mechanism.len)
                                                         : SASL_NONE;
        if (!conn->listener->sasl || conn->authenticated) {
                resp.error_code = KAFKA_ILLEGAL_SASL_STATE;
        } else if (mech == SASL_NONE || !auth_mechanism_enabled(broker, mech)) {
                resp.error_code = KAFKA_UNSUPPORTED_SASL_MECHANISM;
        } else {
                auth_begin(conn, mech);
                conn->sasl_raw = req->hdr.api_version == 0;
        }
        request_respond(req, &resp);
        return 0;
}
