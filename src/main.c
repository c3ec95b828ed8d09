/* `stratus`: one binary, subcommands like `consul agent` / `consul members`. */
#include <stdio.h>
#include <string.h>

#include "broker/main.h"
#include "cli/cli.h"
#include "lb/main.h"
#include "mothership/main.h"
#include "satellite/main.h"
#include "up/up.h"
#include "kafka/api.h"
#include "version.h"

static int version_main(int argc, char **argv)
{
        if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
                printf("usage: stratus version\n\nPrints the Stratus version and the Kafka APIs it serves.\n");
                return 0;
        }
        printf("stratus %s\n", STRATUS_VERSION);
        printf("kafka apis:");
        for (int i = 0; i < kafka_api_count; i++)
                printf(" %s(%d-%d)", kafka_api_table[i].name, kafka_api_table[i].min_version,
                       kafka_api_table[i].max_version);
        printf("\n");
        return 0;
}

/* `stratus satellite list` is the CLI's (GET /v1/satellites); every other `stratus
 * satellite ...` is the satellite agent. */
static int satellite_dispatch(int argc, char **argv)
{
        if (argc > 1 && strcmp(argv[1], "list") == 0)
                return cli_satellite_list(argc - 1, argv + 1);
        return satellite_main(argc, argv);
}

static const struct command {
        const char *name;
        int (*fn)(int argc, char **argv);
        const char *summary;
} commands[] = {
        { "broker", broker_main, "run a Kafka-protocol broker" },
        { "lb", lb_main, "run the layer-4 load balancer (docs/lb.md)" },
        { "mothership", mothership_main, "run the control plane: REST API, store, placement, PSCs (docs/api.md)" },
        { "groups", groups_main, "list and describe consumer groups and their lag" },
        { "up", up_main, "run broker, mothership and a local satellite on this machine (docs/cli.md)" },
        { "cluster", cluster_main, "create, list, describe, update and delete logical clusters" },
        { "api-key", api_key_main, "create, list and delete a cluster's API keys" },
        { "satellite", satellite_dispatch, "run a satellite agent; `satellite list` lists them" },
        { "pkc", pkc_main, "list the physical clusters" },
        { "version", version_main, "print the version and the Kafka APIs served" },
};

static void usage(FILE *out)
{
        fprintf(out, "usage: stratus COMMAND [ARGS]...\n\n"
                     "Stratus: self-hosted Kafka as a service.\n\nCommands:\n");
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
        fprintf(out, "\nRun 'stratus COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
                usage(stdout);
                return 0;
        }
        if (strcmp(argv[1], "--version") == 0)
                return version_main(1, argv + 1);
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                if (strcmp(argv[1], commands[i].name) == 0)
                        return commands[i].fn(argc - 1, argv + 1);
        fprintf(stderr, "stratus: unknown command '%s'\n\n", argv[1]);
        usage(stderr);
        return 2;
}
