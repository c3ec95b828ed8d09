/* `stratus groups`: consumer groups and their lag, read from any Kafka-protocol broker
 * (the view kafka-consumer-groups.sh gives). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/fileio.h"
#include "cli/cli.h"
#include "kafka/client.h"
#include "kafka/errors.h"
#include "kafka/gen/api_keys.h"
#include "kafka/gen/messages.h"

#define TIMEOUT_MS 10000
#define ARENA_BYTES (64 << 20)

static void usage(FILE *out)
{
        fprintf(out,
                "usage: stratus groups [--bootstrap HOST:PORT] [list]\n"
                "       stratus groups [--bootstrap HOST:PORT] describe GROUP...\n"
                "       stratus groups [--bootstrap HOST:PORT] delete GROUP...\n\n"
                "Shows the consumer groups of a Kafka-protocol broker (Stratus or any other).\n"
                "  list       every group: state, protocol, member count\n"
                "  describe   a group's members, and per partition the committed offset, the\n"
                "             end offset and the lag (end - committed), with the owning member\n"
                "  delete     deletes empty groups and their committed offsets\n\n"
                "Options:\n"
                "  --bootstrap HOST:PORT   the broker (default $STRATUS_BOOTSTRAP, else 127.0.0.1:9092)\n"
                "  -h, --help              this text\n\n"
                "Exit status: 0 on success, 1 when the broker answered with an error or could not\n"
                "be reached, 2 for bad usage.\n");
}

static const char *err_name(int16_t code)
{
        return kafka_error_name(code);
}

/* Connects to the coordinator of <group> (asked of the bootstrap broker). */
static int connect_coordinator(const char *bootstrap, const char *group, struct kafka_client **out)
{
        struct kafka_client *c;
        int rc = kafka_client_connect(bootstrap, TIMEOUT_MS, &c);
        if (rc < 0) {
                fprintf(stderr, "stratus groups: cannot connect to %s: %s\n", bootstrap, strerror(-rc));
                return rc;
        }
        if (!group) {
                *out = c;
                return 0;
        }
        struct find_coordinator_request req;
        find_coordinator_request_init(&req);
        req.key = kafka_str_c(group);
        req.key_type = 0;
        struct find_coordinator_response resp;
        struct kafka_arena arena;
        kafka_arena_init(&arena, ARENA_BYTES);
        rc = kafka_client_call(c, KAFKA_API_FIND_COORDINATOR, 1, &req, &resp, &arena);
        if (rc == 0 && resp.error_code) {
                fprintf(stderr, "stratus groups: no coordinator for group %s: %s\n", group, err_name(resp.error_code));
                rc = -EIO;
        }
        char target[300];
        if (rc == 0)
                snprintf(target, sizeof(target), "%.*s:%d", (int)resp.host.len, resp.host.ptr, resp.port);
        kafka_arena_deinit(&arena);
        if (rc < 0) {
                if (rc != -EIO)
                        fprintf(stderr, "stratus groups: FindCoordinator failed: %s\n", strerror(-rc));
                kafka_client_close(c);
                return rc;
        }
        if (strcmp(target, bootstrap) == 0) {
                *out = c;
                return 0;
        }
        kafka_client_close(c);
        rc = kafka_client_connect(target, TIMEOUT_MS, out);
        if (rc < 0)
                fprintf(stderr, "stratus groups: cannot connect to coordinator %s: %s\n", target, strerror(-rc));
        return rc;
}

static int cmd_list(const char *bootstrap)
{
        struct kafka_client *c;
        if (connect_coordinator(bootstrap, NULL, &c) < 0)
                return 1;
        struct kafka_arena arena;
        kafka_arena_init(&arena, ARENA_BYTES);
        struct list_groups_request lreq;
        list_groups_request_init(&lreq);
        struct list_groups_response lresp;
        int rc = kafka_client_call(c, KAFKA_API_LIST_GROUPS, 4, &lreq, &lresp, &arena);
        int status = 0;
        if (rc < 0 || lresp.error_code) {
                fprintf(stderr, "stratus groups: ListGroups failed: %s\n",
                        rc < 0 ? strerror(-rc) : err_name(lresp.error_code));
                status = 1;
                goto out;
        }
        /* Member counts and protocols come from DescribeGroups. */
        struct describe_groups_request dreq;
        describe_groups_request_init(&dreq);
        dreq.groups_count = lresp.groups_count;
        dreq.groups = kafka_arena_alloc(&arena, sizeof(*dreq.groups) * (size_t)MAX(lresp.groups_count, 1));
        for (int32_t i = 0; i < lresp.groups_count; i++)
                dreq.groups[i] = lresp.groups[i].group_id;
        struct describe_groups_response dresp;
        describe_groups_response_init(&dresp);
        if (lresp.groups_count > 0) {
                /* ListGroups' strings live in the previous frame: keep copies. */
                for (int32_t i = 0; i < lresp.groups_count; i++)
                        dreq.groups[i] = (struct kafka_str){ kafka_str_dup(&arena, lresp.groups[i].group_id),
                                                             lresp.groups[i].group_id.len };
                rc = kafka_client_call(c, KAFKA_API_DESCRIBE_GROUPS, 5, &dreq, &dresp, &arena);
                if (rc < 0) {
                        fprintf(stderr, "stratus groups: DescribeGroups failed: %s\n", strerror(-rc));
                        status = 1;
                        goto out;
                }
        }
        printf("%-40s %-20s %-10s %-14s %s\n", "GROUP", "STATE", "TYPE", "PROTOCOL", "MEMBERS");
        for (int32_t i = 0; i < dresp.groups_count; i++) {
                struct describe_groups_response_described_group *g = &dresp.groups[i];
                printf("%-40.*s %-20.*s %-10.*s %-14.*s %d\n", (int)g->group_id.len, g->group_id.ptr,
                       (int)g->group_state.len, g->group_state.ptr, (int)g->protocol_type.len, g->protocol_type.ptr,
                       (int)g->protocol_data.len, g->protocol_data.ptr, g->members_count);
        }
out:
        kafka_arena_deinit(&arena);
        kafka_client_close(c);
        return status;
}

/* One row of the describe table. */
struct row {
        char *topic;
        int32_t partition;
        int64_t committed;     /* -1: none */
        int64_t end;           /* -1: unknown */
        char *member;          /* owner per the assignment, or NULL */
        char *client;
};

static int row_cmp(const void *a, const void *b)
{
        const struct row *x = a, *y = b;
        int c = strcmp(x->topic, y->topic);
        return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

static struct row *row_find(struct row *rows, int n, const char *topic, size_t topic_len, int32_t partition)
{
        for (int i = 0; i < n; i++)
                if (rows[i].partition == partition && strlen(rows[i].topic) == topic_len &&
                    memcmp(rows[i].topic, topic, topic_len) == 0)
                        return &rows[i];
        return NULL;
}

static char *dupn(const char *p, int32_t len)
{
        char *s = xmalloc((size_t)MAX(len, 0) + 1);
        if (len > 0)
                memcpy(s, p, (size_t)len);
        s[MAX(len, 0)] = '\0';
        return s;
}

/* Reads a ConsumerProtocolAssignment (i16 version, [topic [partition]], user data) and
 * adds a row per partition owned by <member>. Checks every length. */
static void add_assignment(struct row **rows, int *n, int *cap, struct kafka_bytes a, const char *member,
                           const char *client)
{
        struct kafka_reader r = kafka_reader_from(a.ptr, (size_t)MAX(a.len, 0), NULL);
        kafka_read_i16(&r);
        int32_t ntopics = kafka_read_i32(&r);
        for (int32_t t = 0; t < ntopics && !r.failed; t++) {
                struct kafka_str topic = kafka_read_str(&r, false);
                int32_t nparts = kafka_read_i32(&r);
                if (r.failed || topic.len < 0 || nparts < 0 || (size_t)nparts > kafka_reader_left(&r) / 4)
                        return;
                for (int32_t p = 0; p < nparts; p++) {
                        int32_t partition = kafka_read_i32(&r);
                        struct row *row = row_find(*rows, *n, topic.ptr, (size_t)topic.len, partition);
                        if (!row) {
                                if (*n == *cap) {
                                        *cap = *cap ? *cap * 2 : 64;
                                        *rows = xrealloc(*rows, (size_t)*cap * sizeof(**rows));
                                }
                                row = &(*rows)[(*n)++];
                                *row = (struct row){ dupn(topic.ptr, topic.len), partition, -1, -1, NULL, NULL };
                        }
                        free(row->member);
                        free(row->client);
                        row->member = xstrdup(member);
                        row->client = xstrdup(client);
                }
        }
}

static int describe_one(struct kafka_client *c, const char *group)
{
        struct kafka_arena arena;
        kafka_arena_init(&arena, ARENA_BYTES);
        struct row *rows = NULL;
        int n = 0, cap = 0, status = 0;

        struct describe_groups_request dreq;
        describe_groups_request_init(&dreq);
        struct kafka_str gid = kafka_str_c(group);
        dreq.groups = &gid;
        dreq.groups_count = 1;
        struct describe_groups_response dresp;
        int rc = kafka_client_call(c, KAFKA_API_DESCRIBE_GROUPS, 5, &dreq, &dresp, &arena);
        if (rc < 0 || dresp.groups_count != 1 || dresp.groups[0].error_code) {
                fprintf(stderr, "stratus groups: DescribeGroups %s failed: %s\n", group,
                        rc < 0 ? strerror(-rc) : dresp.groups_count != 1 ? "bad answer" : err_name(dresp.groups[0].error_code));
                status = 1;
                goto out;
        }
        struct describe_groups_response_described_group *g = &dresp.groups[0];
        if (g->group_state.len == 4 && memcmp(g->group_state.ptr, "Dead", 4) == 0 && g->members_count == 0) {
                fprintf(stderr, "stratus groups: group %s does not exist\n", group);
                status = 1;
                goto out;
        }
        printf("group %s: state %.*s, protocol %.*s/%.*s, %d members\n", group, (int)g->group_state.len,
               g->group_state.ptr, (int)g->protocol_type.len, g->protocol_type.ptr, (int)g->protocol_data.len,
               g->protocol_data.ptr, g->members_count);
        if (g->members_count > 0)
                printf("\n%-60s %-24s %-16s %s\n", "MEMBER", "CLIENT", "HOST", "INSTANCE");
        for (int32_t i = 0; i < g->members_count; i++) {
                struct describe_groups_response_described_group_member *m = &g->members[i];
                printf("%-60.*s %-24.*s %-16.*s %.*s\n", (int)m->member_id.len, m->member_id.ptr, (int)m->client_id.len,
                       m->client_id.ptr, (int)m->client_host.len, m->client_host.ptr,
                       (int)MAX(m->group_instance_id.len, 1), m->group_instance_id.len > 0 ? m->group_instance_id.ptr : "-");
                char *member = dupn(m->member_id.ptr, m->member_id.len);
                char *client = dupn(m->client_id.ptr, m->client_id.len);
                if (g->protocol_type.len == 8 && memcmp(g->protocol_type.ptr, "consumer", 8) == 0)
                        add_assignment(&rows, &n, &cap, m->member_assignment, member, client);
                free(member);
                free(client);
        }

        /* Committed offsets (every partition the group has one for). */
        struct offset_fetch_request oreq;
        offset_fetch_request_init(&oreq);
        oreq.group_id = gid;
        oreq.topics_count = -1;
        struct offset_fetch_response oresp;
        rc = kafka_client_call(c, KAFKA_API_OFFSET_FETCH, 7, &oreq, &oresp, &arena);
        if (rc < 0 || oresp.error_code) {
                fprintf(stderr, "stratus groups: OffsetFetch %s failed: %s\n", group,
                        rc < 0 ? strerror(-rc) : err_name(oresp.error_code));
                status = 1;
                goto out;
        }
        for (int32_t t = 0; t < oresp.topics_count; t++) {
                struct offset_fetch_response_offset_fetch_response_topic *ot = &oresp.topics[t];
                for (int32_t p = 0; p < ot->partitions_count; p++) {
                        struct offset_fetch_response_offset_fetch_response_partition *op = &ot->partitions[p];
                        struct row *row = row_find(rows, n, ot->name.ptr, (size_t)ot->name.len, op->partition_index);
                        if (!row) {
                                if (n == cap) {
                                        cap = cap ? cap * 2 : 64;
                                        rows = xrealloc(rows, (size_t)cap * sizeof(*rows));
                                }
                                row = &rows[n++];
                                *row = (struct row){ dupn(ot->name.ptr, ot->name.len), op->partition_index, -1, -1,
                                                     NULL, NULL };
                        }
                        row->committed = op->committed_offset;
                }
        }
        if (n == 0) {
                printf("\nno committed offsets and no assigned partitions\n");
                goto out;
        }
        qsort(rows, (size_t)n, sizeof(*rows), row_cmp);

        /* End offsets, one ListOffsets for all rows (grouped by topic: rows are sorted). */
        struct list_offsets_request lreq;
        list_offsets_request_init(&lreq);
        lreq.replica_id = -1;
        lreq.topics = kafka_arena_alloc(&arena, sizeof(*lreq.topics) * (size_t)n);
        for (int i = 0; i < n; i++) {
                if (i == 0 || strcmp(rows[i].topic, rows[i - 1].topic) != 0) {
                        struct list_offsets_request_list_offsets_topic *lt = &lreq.topics[lreq.topics_count++];
                        list_offsets_request_list_offsets_topic_init(lt);
                        lt->name = kafka_str_c(rows[i].topic);
                        lt->partitions = kafka_arena_alloc(&arena, sizeof(*lt->partitions) * (size_t)n);
                }
                struct list_offsets_request_list_offsets_topic *lt = &lreq.topics[lreq.topics_count - 1];
                struct list_offsets_request_list_offsets_partition *lp = &lt->partitions[lt->partitions_count++];
                list_offsets_request_list_offsets_partition_init(lp);
                lp->partition_index = rows[i].partition;
                lp->timestamp = -1; /* latest */
        }
        struct list_offsets_response lresp;
        rc = kafka_client_call(c, KAFKA_API_LIST_OFFSETS, 2, &lreq, &lresp, &arena);
        if (rc == 0) {
                for (int32_t t = 0; t < lresp.topics_count; t++)
                        for (int32_t p = 0; p < lresp.topics[t].partitions_count; p++) {
                                struct list_offsets_response_list_offsets_partition_response *lp =
                                        &lresp.topics[t].partitions[p];
                                struct row *row = row_find(rows, n, lresp.topics[t].name.ptr,
                                                           (size_t)lresp.topics[t].name.len, lp->partition_index);
                                if (row && lp->error_code == KAFKA_NONE)
                                        row->end = lp->offset;
                        }
        } else {
                fprintf(stderr, "stratus groups: ListOffsets failed (lag unknown): %s\n", strerror(-rc));
        }
        printf("\n%-30s %9s %12s %12s %10s  %s\n", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER");
        int64_t total_lag = 0;
        for (int i = 0; i < n; i++) {
                char committed[24] = "-", end[24] = "-", lag[24] = "-";
                if (rows[i].committed >= 0)
                        snprintf(committed, sizeof(committed), "%lld", (long long)rows[i].committed);
                if (rows[i].end >= 0)
                        snprintf(end, sizeof(end), "%lld", (long long)rows[i].end);
                if (rows[i].end >= 0) {
                        /* With no commit yet the whole partition is behind (as if from offset 0). */
                        int64_t l = rows[i].end - MAX(rows[i].committed, 0);
                        total_lag += MAX(l, 0);
                        snprintf(lag, sizeof(lag), "%lld", (long long)MAX(l, 0));
                }
                printf("%-30s %9d %12s %12s %10s  %s\n", rows[i].topic, rows[i].partition, committed, end, lag,
                       rows[i].member ? rows[i].member : "-");
        }
        printf("\ntotal lag: %lld\n", (long long)total_lag);
out:
        for (int i = 0; i < n; i++) {
                free(rows[i].topic);
                free(rows[i].member);
                free(rows[i].client);
        }
        free(rows);
        kafka_arena_deinit(&arena);
        return status;
}

static int cmd_describe(const char *bootstrap, int ngroups, char **groups)
{
        int status = 0;
        for (int i = 0; i < ngroups; i++) {
                struct kafka_client *c;
                if (connect_coordinator(bootstrap, groups[i], &c) < 0)
                        return 1;
                if (i > 0)
                        printf("\n");
                status |= describe_one(c, groups[i]);
                kafka_client_close(c);
        }
        return status;
}

static int cmd_delete(const char *bootstrap, int ngroups, char **groups)
{
        int status = 0;
        for (int i = 0; i < ngroups; i++) {
                struct kafka_client *c;
                if (connect_coordinator(bootstrap, groups[i], &c) < 0)
                        return 1;
                struct kafka_arena arena;
                kafka_arena_init(&arena, ARENA_BYTES);
                struct delete_groups_request req;
                delete_groups_request_init(&req);
                struct kafka_str gid = kafka_str_c(groups[i]);
                req.groups_names = &gid;
                req.groups_names_count = 1;
                struct delete_groups_response resp;
                int rc = kafka_client_call(c, KAFKA_API_DELETE_GROUPS, 2, &req, &resp, &arena);
                if (rc < 0 || resp.results_count != 1) {
                        fprintf(stderr, "stratus groups: DeleteGroups %s failed: %s\n", groups[i],
                                rc < 0 ? strerror(-rc) : "bad answer");
                        status = 1;
                } else if (resp.results[0].error_code) {
                        fprintf(stderr, "stratus groups: cannot delete %s: %s\n", groups[i],
                                err_name(resp.results[0].error_code));
                        status = 1;
                } else {
                        printf("deleted group %s\n", groups[i]);
                }
                kafka_arena_deinit(&arena);
                kafka_client_close(c);
        }
        return status;
}

int groups_main(int argc, char **argv)
{
        const char *bootstrap = getenv("STRATUS_BOOTSTRAP");
        if (!bootstrap || !bootstrap[0])
                bootstrap = "127.0.0.1:9092";
        static const struct option opts[] = {
                { "bootstrap", required_argument, NULL, 'b' },
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        int opt;
        optind = 1;
        while ((opt = getopt_long(argc, argv, "b:h", opts, NULL)) != -1) {
                switch (opt) {
                case 'b':
                        bootstrap = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        const char *cmd = optind < argc ? argv[optind++] : "list";
        if (strcmp(cmd, "list") == 0 && optind == argc)
                return cmd_list(bootstrap);
        if (strcmp(cmd, "describe") == 0 && optind < argc)
                return cmd_describe(bootstrap, argc - optind, argv + optind);
        if (strcmp(cmd, "delete") == 0 && optind < argc)
                return cmd_delete(bootstrap, argc - optind, argv + optind);
        fprintf(stderr, "stratus groups: bad arguments\n\n");
        usage(stderr);
        return 2;
}
