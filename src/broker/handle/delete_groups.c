/* DeleteGroups: removes empty groups and their committed offsets. */
#include <errno.h>

#include "broker/broker.h"
#include "broker/dispatch.h"
#include "broker/group/group.h"
#include "kafka/gen/messages.h"

int handle_delete_groups(struct request *req)
{
        struct delete_groups_request msg;
        if (delete_groups_request_decode(&req->body, req->hdr.api_version, &msg) < 0)
                return -EPROTO;
        struct delete_groups_response resp;
        delete_groups_response_init(&resp);
        resp.results_count = msg.groups_names_count > 0 ? msg.groups_names_count : 0;
        resp.results = request_alloc(req, resp.results_count, sizeof(*resp.results));
        for (int32_t i = 0; i < resp.results_count; i++) {
                delete_groups_response_deletable_group_result_init(&resp.results[i]);
                resp.results[i].group_id = msg.groups_names[i];
                resp.results[i].error_code = group_delete(req->broker->groups, msg.groups_names[i]);
        }
        request_respond(req, &resp);
        return 0;
}
