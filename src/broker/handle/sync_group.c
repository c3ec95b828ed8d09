/* SyncGroup: members wait for the leader's assignment; the leader's request completes
 * the generation and every waiting member is answered. */
#include <errno.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "broker/broker.h"
#include "broker/dispatch.h"
#include "broker/group/group.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"

static struct kafka_str nullable(const char *s)
{
        return s ? kafka_str_c(s) : (struct kafka_str){ NULL, -1 };
}

static void sync_done(void *ctx, const struct group_sync_result *res)
{
        struct request *req = ctx;
        struct sync_group_response resp;
        sync_group_response_init(&resp);
        resp.error_code = res->error_code;
        resp.protocol_type = nullable(res->protocol_type);
        resp.protocol_name = nullable(res->protocol_name);
        resp.assignment = res->assignment;
        req->cancel = NULL;
        request_respond(req, &resp);
}

static void sync_cancel(struct request *req)
{
        group_wait_cancel(req->broker->groups, req->state);
        request_free(req);
}

int handle_sync_group(struct request *req)
{
        struct sync_group_request msg;
        if (sync_group_request_decode(&req->body, req->hdr.api_version, &msg) < 0)
                return -EPROTO;
        int32_t n = MAX(msg.assignments_count, 0);
        struct group_sync_assignment *as = request_alloc(req, n, sizeof(*as));
        for (int32_t i = 0; i < n; i++) {
                as[i].member_id = msg.assignments[i].member_id;
                as[i].assignment = msg.assignments[i].assignment;
        }
        struct kafka_str absent = { NULL, -1 };
        struct group_sync_request sr = {
                .group_id = msg.group_id,
                .member_id = msg.member_id,
                .group_instance_id = req->hdr.api_version >= 3 ? msg.group_instance_id : absent,
                .protocol_type = req->hdr.api_version >= 5 ? msg.protocol_type : absent,
                .protocol_name = req->hdr.api_version >= 5 ? msg.protocol_name : absent,
                .generation_id = msg.generation_id,
                .assignments = as,
                .assignments_count = n,
        };
        struct group_wait *w = group_sync(req->broker->groups, &sr, clock_wall_ms(), sync_done, req);
        if (w) {
                req->state = w;
                req->cancel = sync_cancel;
        }
        return 0;
}
