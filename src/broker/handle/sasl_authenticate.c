/* SaslAuthenticate: one SASL token each way. A failure is answered with
 * SASL_AUTHENTICATION_FAILED and its reason after a delay that grows with repeated
 * failures from the same address, then the connection closes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/auth/auth.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/dispatch.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"
#include "loop/loop.h"

/* The failed answer, kept until the delay passes. */
struct failed_state {
        struct sasl_authenticate_response resp;
};

static void on_delay(struct loop *loop, void *arg)
{
        struct request *req = arg;
        req->timer = NULL;
        req->cancel = NULL;
        struct failed_state *st = req->state;
        if (req->conn)
                req->conn->close_after_write = true;
        request_respond(req, &st->resp);
}

static void failed_cancel(struct request *req)
{
        request_free(req); /* cancels req->timer */
}

int handle_sasl_authenticate(struct request *req)
{
        struct sasl_authenticate_request msg;
        if (sasl_authenticate_request_decode(&req->body, req->hdr.api_version, &msg) < 0)
                return -EPROTO;
        struct conn *conn = req->conn;
        struct sasl_authenticate_response resp;
        sasl_authenticate_response_init(&resp);
        resp.auth_bytes = (struct kafka_bytes){ (const uint8_t *)"", 0 };
        if (!conn->sasl || conn->sasl_raw) {
                resp.error_code = KAFKA_ILLEGAL_SASL_STATE;
                resp.error_message = request_str(req, "SaslAuthenticate without a SaslHandshake v1 first");
                conn->close_after_write = true;
                request_respond(req, &resp);
                return 0;
        }
        uint8_t *out = NULL;
        size_t out_len = 0;
        char err[256];
        enum sasl_step step = auth_step(conn, msg.auth_bytes.ptr ? msg.auth_bytes.ptr : (const uint8_t *)"",
                                        (size_t)(msg.auth_bytes.len > 0 ? msg.auth_bytes.len : 0), &out, &out_len, err,
                                        sizeof(err));
        if (out_len) {
                uint8_t *copy = request_alloc(req, (int32_t)out_len, 1);
                memcpy(copy, out, out_len);
                resp.auth_bytes = (struct kafka_bytes){ copy, (int32_t)out_len };
        }
        free(out);
        if (step != SASL_FAILED) {
                resp.session_lifetime_ms = 0;
                request_respond(req, &resp);
                return 0;
        }
        struct failed_state *st = request_alloc(req, 1, sizeof(*st));
        st->resp = resp;
        st->resp.error_code = KAFKA_SASL_AUTHENTICATION_FAILED;
        st->resp.error_message = request_str(req, err);
        req->state = st;
        req->cancel = failed_cancel;
        req->timer = loop_add_timer(req->broker->loop, auth_failure_delay_ms(req->broker, conn), on_delay, req);
        return 0;
}
