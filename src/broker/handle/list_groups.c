/* ListGroups: every group this coordinator knows (those with members and those that only
 * hold committed offsets), optionally filtered by state (v4, KIP-518; matched without
 * regard to case, as Kafka does). */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "broker/broker.h"
#include "broker/dispatch.h"
#include "broker/tenancy/tenancy.h"
#include "broker/group/group.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"

static bool state_wanted(const struct list_groups_request *msg, const char *state)
{
        if (msg->states_filter_count <= 0)
                return true;
        for (int32_t i = 0; i < msg->states_filter_count; i++) {
                struct kafka_str f = msg->states_filter[i];
                if (f.len >= 0 && (size_t)f.len == strlen(state) && strncasecmp(f.ptr, state, (size_t)f.len) == 0)
                        return true;
        }
        return false;
}

int handle_list_groups(struct request *req)
{
        struct list_groups_request msg;
        if (list_groups_request_decode(&req->body, req->hdr.api_version, &msg) < 0)
                return -EPROTO;
        struct list_groups_response resp;
        list_groups_response_init(&resp);
        struct map *groups = &req->broker->groups->groups;
        resp.groups = request_alloc(req, (int32_t)groups->len, sizeof(*resp.groups));
        const char *key;
        void *value;
        for (size_t i = 0; map_next(groups, &i, &key, &value);) {
                const struct group *group = value;
                const char *state = group_state_name(group->state);
                if (group->state == GROUP_DEAD || !state_wanted(&msg, state) ||
                    !tenancy_visible(req->conn, group->group_id, strlen(group->group_id)))
                        continue;
                struct list_groups_response_listed_group *lg = &resp.groups[resp.groups_count++];
                list_groups_response_listed_group_init(lg);
                lg->group_id = kafka_str_c(group->group_id);
                lg->protocol_type = kafka_str_c(group->protocol_type ? group->protocol_type : "");
                lg->group_state = kafka_str_c(state);
        }
        request_respond(req, &resp);
        return 0;
}
