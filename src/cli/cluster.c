/* `stratus cluster create|list|describe|update|delete`: logical clusters through the
 * mothership API (POST/GET /v1/clusters, GET/PATCH/DELETE /v1/clusters/{id}). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "cli/cli.h"
#include "cli/common.h"

#define DEFAULT_WAIT_S 60
#define POLL_MS 100

/* Status paths tried in order (the API's names first). */
#define F_PHASE "status.phase|phase"
#define F_BOOTSTRAP "status.bootstrap|status.bootstrap_endpoint|bootstrap"
#define F_PKC "status.pkc|status.pkc_id|pkc|pkc_id"
#define F_REASON "status.placement_reason|status.placement.reason|placement_reason|placement.reason"

static const char *const list_headers[] = { "ID", "NAME", "REGION", "TYPE", "INGRESS", "EGRESS", "PARTITIONS",
                                            "PHASE", "BOOTSTRAP" };
static const char *const list_paths[] = { "id", "name", "region", "type", "ingress_mbps", "egress_mbps",
                                          "partitions", F_PHASE, F_BOOTSTRAP };

static void print_cluster(struct cli *cli, json_t *c)
{
        if (cli->json) {
                cli_print_json(stdout, c);
                return;
        }
        printf("id          %s\n", cli_field(c, "id"));
        printf("name        %s\n", cli_field(c, "name"));
        printf("region      %s\n", cli_field(c, "region"));
        printf("type        %s\n", cli_field(c, "type"));
        printf("ingress     %s MB/s\n", cli_field(c, "ingress_mbps"));
        printf("egress      %s MB/s\n", cli_field(c, "egress_mbps"));
        printf("partitions  %s\n", cli_field(c, "partitions"));
        printf("phase       %s\n", cli_field(c, F_PHASE));
        const char *v;
        if (*(v = cli_field(c, F_BOOTSTRAP)))
                printf("bootstrap   %s\n", v);
        if (*(v = cli_field(c, F_PKC)))
                printf("pkc         %s\n", v);
        if (*(v = cli_field(c, F_REASON)))
                printf("placement   %s\n", v);
        if (*(v = cli_field(c, "status.message|status.error")))
                printf("message     %s\n", v);
        if (*(v = cli_field(c, "created_at")))
                printf("created     %s\n", v);
        printf("version     %s\n", cli_field(c, "resource_version"));
}

static int parse_wait_timeout(struct cli *cli, const char *text, int *out_s)
{
        double v;
        if (cli_parse_positive(cli, "--timeout", text, &v) < 0)
                return -1;
        *out_s = (int)(v + 0.999);
        return 0;
}

static void sleep_ms(int ms)
{
        struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
}

/* Polls cluster <id> until its phase is <want> (or, with <want> NULL, until it is gone),
 * printing each phase change to stderr. Returns 0 with *<last> (the final resource; NULL
 * when gone), or 1 having printed why. */
static int wait_for(struct cli *cli, const char *id, const char *want, int timeout_s, json_t **last)
{
        int64_t start = clock_mono_ms(), deadline = start + (int64_t)timeout_s * 1000;
        char *path = xasprintf("/v1/clusters/%s", id);
        char shown[64] = "";
        *last = NULL;
        for (;;) {
                json_t *c;
                int status = cli_call(cli, "GET", path, NULL, NULL, &c, NULL);
                double elapsed_s = (double)(clock_mono_ms() - start) / 1000.0;
                if (status < 0) {
                        free(path);
                        return 1;
                }
                if (status == 404 && !want) {
                        fprintf(stderr, "deleted (%.1f s)\n", elapsed_s);
                        json_decref(c);
                        free(path);
                        return 0;
                }
                if (status != 200) {
                        free(path);
                        int rc = cli_fail(cli, status, c, "`stratus cluster list` shows the clusters there are");
                        json_decref(c);
                        return rc;
                }
                const char *phase = cli_field(c, F_PHASE);
                if (want && strcmp(phase, want) == 0) {
                        const char *bootstrap = cli_field(c, F_BOOTSTRAP);
                        fprintf(stderr, "%s (%.1f s)%s%s\n", phase, elapsed_s, *bootstrap ? ": bootstrap " : "",
                                bootstrap);
                        *last = c;
                        free(path);
                        return 0;
                }
                if (strcmp(phase, "failed") == 0) {
                        fprintf(stderr, "%s: cluster %s failed: %s. `stratus pkc list` and the satellite's log "
                                        "say more\n",
                                cli->prog, id, cli_field(c, "status.message|status.error"));
                        json_decref(c);
                        free(path);
                        return 1;
                }
                if (strcmp(phase, shown) != 0) {
                        fprintf(stderr, "%s...\n", phase);
                        snprintf(shown, sizeof(shown), "%s", phase);
                }
                if (clock_mono_ms() >= deadline) {
                        fprintf(stderr,
                                "%s: timed out after %d s waiting for %s to be %s (it is %s). `stratus pkc list` "
                                "shows the physical clusters and `stratus satellite list` whether the satellite "
                                "is alive; --timeout SECONDS waits longer\n",
                                cli->prog, timeout_s, id, want ? want : "deleted", phase);
                        json_decref(c);
                        free(path);
                        return 1;
                }
                json_decref(c);
                sleep_ms(POLL_MS);
        }
}

static const struct cli_command cmd_specs[];

static int cmd_cluster_create(struct cli *cli, int argc, char **argv)
{
        static const struct option opts[] = {
                { "region", required_argument, NULL, 'r' },   { "type", required_argument, NULL, 't' },
                { "ingress", required_argument, NULL, 'i' },  { "egress", required_argument, NULL, 'e' },
                { "partitions", required_argument, NULL, 'p' }, { "wait", no_argument, NULL, 'w' },
                { "timeout", required_argument, NULL, 'T' },  CLI_COMMON_OPTIONS, { 0 },
        };
        const char *region = NULL, *type = "basic";
        double ingress = 0, egress = 0, partitions = 0;
        bool wait = false;
        int timeout_s = DEFAULT_WAIT_S, c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                int rc = 0;
                switch (c) {
                case 'r': region = optarg; break;
                case 't': type = optarg; break;
                case 'i': rc = cli_parse_positive(cli, "--ingress", optarg, &ingress); break;
                case 'e': rc = cli_parse_positive(cli, "--egress", optarg, &egress); break;
                case 'p': rc = cli_parse_positive(cli, "--partitions", optarg, &partitions); break;
                case 'w': wait = true; break;
                case 'T': rc = parse_wait_timeout(cli, optarg, &timeout_s); break;
                case 'h': rc = 1; break;
                default: rc = cli_common_option(cli, c, optarg);
                }
                if (rc > 0) {
                        cli_usage(stdout, &cmd_specs[0],
                                  "Asks for a logical Kafka cluster; the answer comes at once with phase\n"
                                  "provisioning, and --wait follows it until it is running.\n\n"
                                  "Options:\n"
                                  "  --region R            the region (a satellite's; `stratus satellite list`)\n"
                                  "  --type T              basic (default), standard (both multi-tenant) or dedicated\n"
                                  "  --ingress MBPS        produce throughput, MB/s (10^6 bytes)\n"
                                  "  --egress MBPS         fetch throughput, MB/s\n"
                                  "  --partitions N        partition limit\n"
                                  "  --wait                wait until it is running; prints the bootstrap address\n"
                                  "  --timeout SECONDS     how long --wait waits (default 60)\n");
                        return 0;
                }
                if (rc < 0)
                        return 2;
        }
        if (optind + 1 != argc) {
                fprintf(stderr, "%s: give exactly one NAME, e.g. `%s orders --region local --ingress 10 --egress "
                                "30 --partitions 20`\n",
                        cli->prog, cli->prog);
                return 2;
        }
        const char *missing = !region ? "--region R" : !ingress ? "--ingress MBPS" : !egress ? "--egress MBPS"
                                                      : !partitions ? "--partitions N" : NULL;
        if (missing) {
                fprintf(stderr, "%s: %s is required (see --help)\n", cli->prog, missing);
                return 2;
        }
        if (strcmp(type, "basic") != 0 && strcmp(type, "standard") != 0 && strcmp(type, "dedicated") != 0) {
                fprintf(stderr, "%s: --type must be basic, standard or dedicated, not '%s'\n", cli->prog, type);
                return 2;
        }
        if (partitions != (double)(long long)partitions) {
                fprintf(stderr, "%s: --partitions must be a whole number\n", cli->prog);
                return 2;
        }
        if (cli_connect(cli) < 0)
                return 1;
        json_t *body = json_pack("{s:s, s:s, s:s, s:o, s:o, s:I}", "name", argv[optind], "region", region, "type",
                                 type, "ingress_mbps", cli_number(ingress), "egress_mbps", cli_number(egress),
                                 "partitions", (json_int_t)partitions);
        json_t *answer;
        int status = cli_call(cli, "POST", "/v1/clusters", body, cli_idempotency_header(), &answer, NULL);
        if (status < 0)
                return 1;
        if (status != 201 && status != 202 && status != 200) {
                int rc = cli_fail(cli, status, answer, NULL);
                json_decref(answer);
                return rc;
        }
        char *id = xstrdup(cli_field(answer, "id"));
        if (!wait) {
                if (cli->json)
                        cli_print_json(stdout, answer);
                else
                        printf("Cluster %s (%s) accepted, %s in region %s.\n"
                               "`stratus cluster describe %s` shows its status and bootstrap address\n"
                               "(or create with --wait to wait for it).\n",
                               id, argv[optind], cli_field(answer, F_PHASE), region, id);
                json_decref(answer);
                free(id);
                return 0;
        }
        json_decref(answer);
        if (!cli->json)
                fprintf(stderr, "cluster %s accepted\n", id);
        json_t *last;
        int rc = wait_for(cli, id, "running", timeout_s, &last);
        if (rc == 0) {
                print_cluster(cli, last);
                if (!cli->json)
                        printf("\nNext: `stratus api-key create --cluster %s` for a key and secret.\n", id);
        }
        json_decref(last);
        free(id);
        return rc;
}

static int cmd_cluster_list(struct cli *cli, int argc, char **argv)
{
        static const struct option opts[] = { CLI_COMMON_OPTIONS, { 0 } };
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                int rc = c == 'h' ? 1 : cli_common_option(cli, c, optarg);
                if (rc > 0) {
                        cli_usage(stdout, &cmd_specs[1], "Every page of GET /v1/clusters, in the API's order.\n");
                        return 0;
                }
                if (rc < 0)
                        return 2;
        }
        if (optind != argc) {
                fprintf(stderr, "%s: takes no arguments (see --help)\n", cli->prog);
                return 2;
        }
        if (cli_connect(cli) < 0)
                return 1;
        json_t *all = cli_list_all(cli, "/v1/clusters", "clusters");
        if (!all)
                return 1;
        if (cli->json)
                cli_print_json(stdout, all);
        else if (json_array_size(all) == 0)
                printf("No clusters yet. Create one: stratus cluster create NAME --region REGION --ingress 10 "
                       "--egress 30 --partitions 20 --wait\n");
        else
                cli_table(stdout, all, list_headers, list_paths, sizeof(list_paths) / sizeof(list_paths[0]));
        json_decref(all);
        return 0;
}

/* Parses the common options and one ID argument for describe/update/delete. */
static int parse_id_command(struct cli *cli, int argc, char **argv, const struct option *opts,
                            int (*own)(struct cli *cli, int c, const char *arg, void *arg_out), void *own_arg,
                            const struct cli_command *spec, const char *details, const char **id)
{
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                int rc = own ? own(cli, c, optarg, own_arg) : 2;
                if (rc == 2)
                        rc = c == 'h' ? 1 : cli_common_option(cli, c, optarg);
                if (rc > 0) {
                        cli_usage(stdout, spec, details);
                        return 0;
                }
                if (rc < 0)
                        return 2;
        }
        if (optind + 1 != argc) {
                fprintf(stderr, "%s: give exactly one cluster ID (lkc-...; `stratus cluster list` shows them)\n",
                        cli->prog);
                return 2;
        }
        *id = argv[optind];
        return -1;
}

static int cmd_cluster_describe(struct cli *cli, int argc, char **argv)
{
        static const struct option opts[] = { CLI_COMMON_OPTIONS, { 0 } };
        const char *id;
        int rc = parse_id_command(cli, argc, argv, opts, NULL, NULL, &cmd_specs[2],
                                  "Shows the cluster, its phase, bootstrap address and placement.\n", &id);
        if (rc >= 0)
                return rc;
        if (cli_connect(cli) < 0)
                return 1;
        char *path = xasprintf("/v1/clusters/%s", id);
        json_t *answer;
        int status = cli_call(cli, "GET", path, NULL, NULL, &answer, NULL);
        free(path);
        if (status < 0)
                return 1;
        if (status != 200) {
                rc = cli_fail(cli, status, answer, "`stratus cluster list` shows the clusters there are");
                json_decref(answer);
                return rc;
        }
        print_cluster(cli, answer);
        json_decref(answer);
        return 0;
}

struct update_args {
        double ingress, egress, partitions;
};

static int update_option(struct cli *cli, int c, const char *arg, void *out)
{
        struct update_args *u = out;
        switch (c) {
        case 'i': return cli_parse_positive(cli, "--ingress", arg, &u->ingress);
        case 'e': return cli_parse_positive(cli, "--egress", arg, &u->egress);
        case 'p': return cli_parse_positive(cli, "--partitions", arg, &u->partitions);
        default: return 2;
        }
}

static int cmd_cluster_update(struct cli *cli, int argc, char **argv)
{
        static const struct option opts[] = {
                { "ingress", required_argument, NULL, 'i' },
                { "egress", required_argument, NULL, 'e' },
                { "partitions", required_argument, NULL, 'p' },
                CLI_COMMON_OPTIONS,
                { 0 },
        };
        struct update_args u = { 0 };
        const char *id;
        int rc = parse_id_command(cli, argc, argv, opts, update_option, &u, &cmd_specs[3],
                                  "Changes the cluster's quotas; the brokers apply them without a restart.\n\n"
                                  "Options (at least one):\n"
                                  "  --ingress MBPS        produce throughput, MB/s\n"
                                  "  --egress MBPS         fetch throughput, MB/s\n"
                                  "  --partitions N        partition limit\n",
                                  &id);
        if (rc >= 0)
                return rc;
        if (!u.ingress && !u.egress && !u.partitions) {
                fprintf(stderr, "%s: nothing to update: give --ingress, --egress and/or --partitions\n", cli->prog);
                return 2;
        }
        if (cli_connect(cli) < 0)
                return 1;
        char *path = xasprintf("/v1/clusters/%s", id);
        /* Optimistic concurrency: PATCH against the version just read; a concurrent change
         * (412) is read again and the change re-applied on top of it. */
        for (int attempt = 0;; attempt++) {
                json_t *cur;
                char *etag = NULL;
                int status = cli_call(cli, "GET", path, NULL, NULL, &cur, &etag);
                if (status != 200) {
                        rc = status < 0 ? 1 : cli_fail(cli, status, cur, "`stratus cluster list` shows the clusters there are");
                        json_decref(cur);
                        break;
                }
                if (!etag && *cli_field(cur, "resource_version"))
                        etag = xasprintf("\"%s\"", cli_field(cur, "resource_version"));
                json_decref(cur);
                json_t *body = json_object();
                if (u.ingress)
                        json_object_set_new(body, "ingress_mbps", cli_number(u.ingress));
                if (u.egress)
                        json_object_set_new(body, "egress_mbps", cli_number(u.egress));
                if (u.partitions)
                        json_object_set_new(body, "partitions", cli_number(u.partitions));
                char *match = etag ? xasprintf("If-Match: %s", etag) : NULL;
                json_t *answer;
                status = cli_call(cli, "PATCH", path, body, match, &answer, NULL);
                free(match);
                free(etag);
                if (status == 412 && attempt < 3) {
                        json_decref(answer);
                        continue;
                }
                if (status < 0) {
                        rc = 1;
                } else if (status != 200 && status != 202) {
                        rc = cli_fail(cli, status, answer, NULL);
                } else {
                        print_cluster(cli, answer);
                        rc = 0;
                }
                json_decref(answer);
                break;
        }
        free(path);
        return rc;
}

static int delete_option(struct cli *cli, int c, const char *arg, void *out)
{
        int *timeout_s = out;
        if (c == 'w')
                return 0; /* seen by cmd_cluster_delete's own scan */
        if (c == 'T')
                return parse_wait_timeout(cli, arg, timeout_s) < 0 ? -1 : 0;
        return 2;
}

static int cmd_cluster_delete(struct cli *cli, int argc, char **argv)
{
        static const struct option opts[] = {
                { "wait", no_argument, NULL, 'w' },
                { "timeout", required_argument, NULL, 'T' },
                CLI_COMMON_OPTIONS,
                { 0 },
        };
        /* 0: no --wait; > 0: wait that many seconds (--timeout alone does not wait). */
        int wait_s = 0, timeout_s = 0;
        bool wait = false;
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], "--wait") == 0)
                        wait = true;
        const char *id;
        int rc = parse_id_command(cli, argc, argv, opts, delete_option, &timeout_s, &cmd_specs[4],
                                  "Deletes the cluster: its topics and data, and its API keys stop working.\n\n"
                                  "Options:\n"
                                  "  --wait                wait until it is gone\n"
                                  "  --timeout SECONDS     how long --wait waits (default 60)\n",
                                  &id);
        if (rc >= 0)
                return rc;
        wait_s = wait ? (timeout_s ? timeout_s : DEFAULT_WAIT_S) : 0;
        if (cli_connect(cli) < 0)
                return 1;
        char *path = xasprintf("/v1/clusters/%s", id);
        json_t *answer;
        int status = cli_call(cli, "DELETE", path, NULL, NULL, &answer, NULL);
        free(path);
        if (status < 0)
                return 1;
        if (status != 200 && status != 202 && status != 204) {
                rc = cli_fail(cli, status, answer, "`stratus cluster list` shows the clusters there are");
                json_decref(answer);
                return rc;
        }
        if (!wait_s) {
                if (cli->json)
                        cli_print_json(stdout, answer ? answer : json_null());
                else
                        printf("Cluster %s is being deleted (`stratus cluster describe %s` until it is gone, or "
                               "delete with --wait).\n",
                               id, id);
                json_decref(answer);
                return 0;
        }
        json_decref(answer);
        json_t *last;
        rc = wait_for(cli, id, NULL, wait_s, &last);
        json_decref(last);
        if (rc == 0 && cli->json)
                printf("{\"id\": \"%s\", \"deleted\": true}\n", id);
        else if (rc == 0)
                printf("Cluster %s deleted.\n", id);
        return rc;
}

static const struct cli_command cmd_specs[] = {
        { "cluster", "create", cmd_cluster_create,
          "NAME --region R [--type basic|standard|dedicated] --ingress MBPS --egress MBPS --partitions N [--wait] "
          "[--timeout S]",
          "Create a logical Kafka cluster" },
        { "cluster", "list", cmd_cluster_list, "", "List the logical clusters" },
        { "cluster", "describe", cmd_cluster_describe, "ID", "Show one cluster: phase, bootstrap, placement" },
        { "cluster", "update", cmd_cluster_update, "ID [--ingress MBPS] [--egress MBPS] [--partitions N]",
          "Change a cluster's quotas" },
        { "cluster", "delete", cmd_cluster_delete, "ID [--wait] [--timeout S]",
          "Delete a cluster, its data and its keys" },
};

int cluster_main(int argc, char **argv)
{
        return cli_dispatch("cluster", cmd_specs, sizeof(cmd_specs) / sizeof(cmd_specs[0]), argc, argv);
}
