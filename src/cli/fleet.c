/* `stratus satellite list` and `stratus pkc list`: the read-only views of the fleet
 * (GET /v1/satellites, GET /v1/physical-clusters). */
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"

static int list(struct cli *cli, int argc, char **argv, const struct cli_command *spec, const char *details,
                const char *path, const char *key, const char *const *headers, const char *const *paths,
                size_t ncols, const char *empty)
{
        static const struct option opts[] = { CLI_COMMON_OPTIONS, { 0 } };
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                int rc = c == 'h' ? 1 : cli_common_option(cli, c, optarg);
                if (rc > 0) {
                        cli_usage(stdout, spec, details);
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
        json_t *all = cli_list_all(cli, path, key);
        if (!all)
                return 1;
        if (cli->json)
                cli_print_json(stdout, all);
        else if (json_array_size(all) == 0)
                printf("%s\n", empty);
        else
                cli_table(stdout, all, headers, paths, ncols);
        json_decref(all);
        return 0;
}

static int cmd_satellite_list(struct cli *cli, int argc, char **argv)
{
        static const char *const headers[] = { "ID", "REGION", "LAST HEARTBEAT", "STALE" };
        static const char *const paths[] = { "id", "region", "last_heartbeat|last_heartbeat_at|heartbeat_at",
                                             "stale" };
        static const struct cli_command spec = { "satellite", "list", cmd_satellite_list, "",
                                                 "List the satellites (regional agents) and whether they are alive" };
        return list(cli, argc, argv, &spec, "A satellite is stale when its heartbeats stopped.\n", "/v1/satellites",
                    "satellites", headers, paths, 4,
                    "No satellite has registered: start one with `stratus satellite --region R ...` (`stratus up` "
                    "runs one).");
}

static int cmd_pkc_list(struct cli *cli, int argc, char **argv)
{
        static const char *const headers[] = { "ID", "TYPE", "REGION", "SATELLITE", "GENERATION", "OBSERVED",
                                               "PHASE", "TENANTS" };
        static const char *const paths[] = { "id", "type", "region", "satellite", "generation",
                                             "observed_generation|status.observed_generation",
                                             "phase|status.phase", "tenants|tenant_count|lkcs" };
        static const struct cli_command spec = { "pkc", "list", cmd_pkc_list, "",
                                                 "List the physical clusters and their state" };
        return list(cli, argc, argv, &spec,
                    "OBSERVED is the generation the satellite has applied: equal to GENERATION\n"
                    "when the physical cluster is what the mothership asked for.\n",
                    "/v1/physical-clusters", "physical_clusters", headers, paths, 8,
                    "No physical clusters yet: they are made when a cluster is created.");
}

int cli_satellite_list(int argc, char **argv)
{
        static const struct cli_command commands[] = {
                { "satellite", "list", cmd_satellite_list, "", "List the satellites and whether they are alive" },
        };
        /* <argv>[0] is "list": dispatch as `stratus satellite list`. */
        char *args[64];
        int n = 0;
        args[n++] = (char *)"satellite";
        for (int i = 0; i < argc && n < 63; i++)
                args[n++] = argv[i];
        args[n] = NULL;
        return cli_dispatch("satellite", commands, 1, n, args);
}

int pkc_main(int argc, char **argv)
{
        static const struct cli_command commands[] = {
                { "pkc", "list", cmd_pkc_list, "", "List the physical clusters and their state" },
        };
        return cli_dispatch("pkc", commands, 1, argc, argv);
}
