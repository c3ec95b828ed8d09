/* JoinGroup: decode, hand to the coordinator, answer when it calls back (at once, or when
 * the rebalance completes; the request waits meanwhile and is forgotten by the
 * coordinator if its connection closes). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/dispatch.h"
#include "broker/group/group.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"

static struct kafka_str nullable(const char *s)
{
        return s ? kafka_str_c(s) : (struct kafka_str){ NULL, -1 };
}

/* In the request arena (freed with the request). */
struct join_state {
        struct join_group_request msg;
        struct group_wait *wait;
};

static void join_done(void *ctx, const struct group_join_result *res)
{
        struct request *req = ctx;
        struct join_group_request *msg = &((struct join_state *)req->state)->msg;
        int16_t version = req->hdr.api_version;
        struct join_group_response resp;
        join_group_response_init(&resp);
        resp.error_code = res->error_code;
        resp.generation_id = res->generation_id;
        if (version >= 7) {
                resp.protocol_type = nullable(res->protocol_type);
                resp.protocol_name = nullable(res->protocol_name);
        } else {
                resp.protocol_name = kafka_str_c(res->protocol_name ? res->protocol_name : "");
        }
        resp.leader = kafka_str_c(res->leader_id ? res->leader_id : "");
        resp.skip_assignment = res->skip_assignment;
        /* Errors echo the member id the client sent, as Kafka does. */
        resp.member_id = res->member_id && res->member_id[0] ? kafka_str_c(res->member_id)
                         : msg->member_id.len >= 0            ? msg->member_id
                                                               : kafka_str_c("");
        resp.members_count = res->members_count;
        resp.members = request_alloc(req, res->members_count, sizeof(*resp.members));
        for (int32_t i = 0; i < res->members_count; i++) {
                join_group_response_join_group_response_member_init(&resp.members[i]);
                resp.members[i].member_id = kafka_str_c(res->members[i].member_id);
                resp.members[i].group_instance_id = nullable(res->members[i].instance_id);
                resp.members[i].metadata = res->members[i].metadata;
        }
        req->state = NULL;
        req->cancel = NULL;
        request_respond(req, &resp);
}

static void join_cancel(struct request *req)
{
        struct join_state *st = req->state;
        group_wait_cancel(req->broker->groups, st->wait);
        request_free(req);
}

/* The client's address the way Kafka shows it ("/127.0.0.1"). */
static struct kafka_str client_host(struct request *req)
{
        char host[80];
        const char *peer = req->conn->peer;
        const char *colon = strrchr(peer, ':');
        size_t len = colon ? (size_t)(colon - peer) : strlen(peer);
        if (len > 2 && peer[0] == '[' && peer[len - 1] == ']') {
                peer++;
                len -= 2;
        }
        snprintf(host, sizeof(host), "/%.*s", (int)MIN(len, sizeof(host) - 2), peer);
        return request_str(req, host);
}

int handle_join_group(struct request *req)
{
        struct join_state *st = kafka_arena_alloc(&req->arena, sizeof(*st));
        if (!st)
                return -EPROTO;
        struct join_group_request *msg = &st->msg;
        if (join_group_request_decode(&req->body, req->hdr.api_version, msg) < 0)
                return -EPROTO;
        int32_t n = MAX(msg->protocols_count, 0);
        struct kafka_str *names = request_alloc(req, n, sizeof(*names));
        struct kafka_bytes *metas = request_alloc(req, n, sizeof(*metas));
        for (int32_t i = 0; i < n; i++) {
                names[i] = msg->protocols[i].name;
                metas[i] = msg->protocols[i].metadata;
        }
        struct group_join_request jr = {
                .group_id = msg->group_id,
                .member_id = msg->member_id,
                .group_instance_id = req->hdr.api_version >= 5 ? msg->group_instance_id : (struct kafka_str){ NULL, -1 },
                .protocol_type = msg->protocol_type,
                .client_id = req->hdr.client_id,
                .client_host = client_host(req),
                .session_timeout_ms = msg->session_timeout_ms,
                .rebalance_timeout_ms = req->hdr.api_version >= 1 ? msg->rebalance_timeout_ms : -1,
                .protocol_names = names,
                .protocol_metadata = metas,
                .protocols_count = n,
                .require_known_member_id = req->hdr.api_version >= 4,
                .supports_skip_assignment = req->hdr.api_version >= 9,
        };
        req->state = st;
        struct broker *broker = req->broker;
        struct group_wait *w = group_join(broker->groups, &jr, clock_wall_ms(), join_done, req);
        if (w) {
                st->wait = w;
                req->cancel = join_cancel;
        }
        return 0;
}
