/* LeaveGroup: one member (v0-2) or a batch of members by member id or instance id (v3+,
 * KIP-345), each with its own error. */
#include <errno.h>

#include "base/clock.h"
#include "broker/broker.h"
#include "broker/dispatch.h"
#include "broker/group/group.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"

int handle_leave_group(struct request *req)
{
        struct leave_group_request msg;
        if (leave_group_request_decode(&req->body, req->hdr.api_version, &msg) < 0)
                return -EPROTO;
        struct leave_group_response resp;
        leave_group_response_init(&resp);
        struct kafka_str absent = { NULL, -1 };
        int64_t now = clock_wall_ms();
        struct group_coordinator *gc = req->broker->groups;
        if (req->hdr.api_version < 3) {
                resp.error_code = group_leave(gc, msg.group_id, msg.member_id, absent, now);
                request_respond(req, &resp);
                return 0;
        }
        if (msg.group_id.len <= 0) {
                resp.error_code = KAFKA_INVALID_GROUP_ID;
                request_respond(req, &resp);
                return 0;
        }
        int32_t n = msg.members_count > 0 ? msg.members_count : 0;
        resp.members_count = n;
        resp.members = request_alloc(req, n, sizeof(*resp.members));
        for (int32_t i = 0; i < n; i++) {
                struct leave_group_request_member_identity *mi = &msg.members[i];
                leave_group_response_member_response_init(&resp.members[i]);
                resp.members[i].member_id = mi->member_id;
                resp.members[i].group_instance_id = mi->group_instance_id;
                resp.members[i].error_code = group_leave(gc, msg.group_id, mi->member_id, mi->group_instance_id, now);
        }
        request_respond(req, &resp);
        return 0;
}
