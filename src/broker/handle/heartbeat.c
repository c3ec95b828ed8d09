/* Heartbeat: keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin. */
#include <errno.h>

#include "base/clock.h"
#include "broker/broker.h"
#include "broker/dispatch.h"
#include "broker/group/group.h"
#include "kafka/gen/messages.h"

int handle_heartbeat(struct request *req)
{
        struct heartbeat_request msg;
        if (heartbeat_request_decode(&req->body, req->hdr.api_version, &msg) < 0)
                return -EPROTO;
        struct heartbeat_response resp;
        heartbeat_response_init(&resp);
        struct kafka_str instance = req->hdr.api_version >= 3 ? msg.group_instance_id : (struct kafka_str){ NULL, -1 };
        resp.error_code = group_heartbeat(req->broker->groups, msg.group_id, msg.generation_id, msg.member_id,
                                          instance, clock_wall_ms());
        request_respond(req, &resp);
        return 0;
}
