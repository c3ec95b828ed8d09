/* DescribeGroups: state, protocol and members of each group. As in Kafka, members carry
 * their metadata and assignment only while the group is Stable, and an unknown group is
 * described as Dead without an error. */
#include <errno.h>
#include <stdint.h>

#include "broker/broker.h"
#include "broker/dispatch.h"
#include "broker/group/group.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"

/* READ, DELETE and DESCRIBE (the ACL operation bits Kafka reports for a group). */
#define GROUP_AUTHORIZED_OPERATIONS ((1 << 3) | (1 << 6) | (1 << 8))

int handle_describe_groups(struct request *req)
{
        struct describe_groups_request msg;
        if (describe_groups_request_decode(&req->body, req->hdr.api_version, &msg) < 0)
                return -EPROTO;
        struct describe_groups_response resp;
        describe_groups_response_init(&resp);
        resp.groups_count = msg.groups_count > 0 ? msg.groups_count : 0;
        resp.groups = request_alloc(req, resp.groups_count, sizeof(*resp.groups));
        for (int32_t i = 0; i < resp.groups_count; i++) {
                struct describe_groups_response_described_group *dg = &resp.groups[i];
                describe_groups_response_described_group_init(dg);
                dg->group_id = msg.groups[i];
                dg->authorized_operations = msg.include_authorized_operations ? GROUP_AUTHORIZED_OPERATIONS : INT32_MIN;
                const struct group *group =
                        msg.groups[i].len >= 0 ? group_find(req->broker->groups, msg.groups[i].ptr, (size_t)msg.groups[i].len)
                                               : NULL;
                if (!group) {
                        dg->group_state = kafka_str_c("Dead");
                        dg->protocol_type = kafka_str_c("");
                        dg->protocol_data = kafka_str_c("");
                        continue;
                }
                bool stable = group->state == GROUP_STABLE;
                dg->group_state = kafka_str_c(group_state_name(group->state));
                dg->protocol_type = kafka_str_c(group->protocol_type ? group->protocol_type : "");
                dg->protocol_data = kafka_str_c(stable && group->protocol_name ? group->protocol_name : "");
                dg->members_count = group->members_count;
                dg->members = request_alloc(req, group->members_count, sizeof(*dg->members));
                int32_t k = 0;
                for (const struct group_member *m = group->members; m; m = m->next, k++) {
                        struct describe_groups_response_described_group_member *dm = &dg->members[k];
                        describe_groups_response_described_group_member_init(dm);
                        dm->member_id = kafka_str_c(m->member_id);
                        dm->group_instance_id = m->instance_id ? kafka_str_c(m->instance_id) : (struct kafka_str){ NULL, -1 };
                        dm->client_id = kafka_str_c(m->client_id);
                        dm->client_host = kafka_str_c(m->client_host);
                        struct kafka_bytes meta = stable ? group_member_metadata(group, m) : (struct kafka_bytes){ NULL, -1 };
                        dm->member_metadata = meta.len >= 0 ? meta : (struct kafka_bytes){ (const uint8_t *)"", 0 };
                        dm->member_assignment = stable && m->assignment
                                                        ? (struct kafka_bytes){ m->assignment, m->assignment_len }
                                                        : (struct kafka_bytes){ (const uint8_t *)"", 0 };
                }
        }
        request_respond(req, &resp);
        return 0;
}
