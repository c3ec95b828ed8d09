/* `stratus api-key create|list|delete --cluster ID`: a cluster's API keys (the SASL user
 * names and passwords of its clients) through /v1/clusters/{id}/api-keys. */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "cli/cli.h"
#include "cli/common.h"

static const struct cli_command cmd_specs[];

/* Parses --cluster and the common options, and <nargs> positional arguments into <args>.
 * Returns -1 to go on, else the exit status. */
static int parse(struct cli *cli, int argc, char **argv, const struct cli_command *spec, const char *details,
                 int nargs, const char *what, const char **cluster, const char **args)
{
        static const struct option opts[] = { { "cluster", required_argument, NULL, 'c' }, CLI_COMMON_OPTIONS, { 0 } };
        int c;
        *cluster = NULL;
        optind = 1;
        while ((c = getopt_long(argc, argv, "hc:", opts, NULL)) != -1) {
                int rc = 0;
                if (c == 'c')
                        *cluster = optarg;
                else
                        rc = c == 'h' ? 1 : cli_common_option(cli, c, optarg);
                if (rc > 0) {
                        cli_usage(stdout, spec, details);
                        return 0;
                }
                if (rc < 0)
                        return 2;
        }
        if (argc - optind != nargs) {
                fprintf(stderr, "%s: %s (see --help)\n", cli->prog,
                        nargs ? what : "takes no arguments besides --cluster ID");
                return 2;
        }
        if (!*cluster) {
                fprintf(stderr, "%s: --cluster ID is required: the logical cluster (lkc-...; `stratus cluster list` "
                                "shows them)\n",
                        cli->prog);
                return 2;
        }
        for (int i = 0; i < nargs; i++)
                args[i] = argv[optind + i];
        return cli_connect(cli) < 0 ? 1 : -1;
}

static int cmd_api_key_create(struct cli *cli, int argc, char **argv)
{
        const char *cluster;
        int rc = parse(cli, argc, argv, &cmd_specs[0],
                       "Creates a key and secret for the cluster's clients: the SASL PLAIN (or\n"
                       "SCRAM-SHA-256/512) user name and password. The secret is shown only once.\n",
                       0, NULL, &cluster, NULL);
        if (rc >= 0)
                return rc;
        char *path = xasprintf("/v1/clusters/%s/api-keys", cluster);
        json_t *answer;
        int status = cli_call(cli, "POST", path, json_object(), cli_idempotency_header(), &answer, NULL);
        free(path);
        if (status < 0)
                return 1;
        if (status != 200 && status != 201) {
                rc = cli_fail(cli, status, answer, "`stratus cluster list` shows the clusters there are");
                json_decref(answer);
                return rc;
        }
        if (cli->json) {
                cli_print_json(stdout, answer);
        } else {
                printf("API key for %s:\n\n  key     %s\n  secret  %s\n\n", cluster, cli_field(answer, "key"),
                       cli_field(answer, "secret"));
                printf("Save the secret now: it will not be shown again (only a hash is stored).\n"
                       "Clients use them as SASL PLAIN (or SCRAM-SHA-256/512) user name and password,\n"
                       "with the bootstrap address `stratus cluster describe %s` shows.\n",
                       cluster);
        }
        json_decref(answer);
        return 0;
}

static int cmd_api_key_list(struct cli *cli, int argc, char **argv)
{
        const char *cluster;
        int rc = parse(cli, argc, argv, &cmd_specs[1], "Lists the cluster's keys (never their secrets).\n", 0, NULL,
                       &cluster, NULL);
        if (rc >= 0)
                return rc;
        char *path = xasprintf("/v1/clusters/%s/api-keys", cluster);
        json_t *all = cli_list_all(cli, path, "api_keys");
        free(path);
        if (!all)
                return 1;
        static const char *const headers[] = { "KEY", "CREATED" };
        static const char *const paths[] = { "key|id", "created_at" };
        if (cli->json)
                cli_print_json(stdout, all);
        else if (json_array_size(all) == 0)
                printf("No API keys for %s. Create one: stratus api-key create --cluster %s\n", cluster, cluster);
        else
                cli_table(stdout, all, headers, paths, 2);
        json_decref(all);
        return 0;
}

static int cmd_api_key_delete(struct cli *cli, int argc, char **argv)
{
        const char *cluster, *key;
        int rc = parse(cli, argc, argv, &cmd_specs[2],
                       "Deletes the key: the brokers refuse it within a second, without a restart.\n", 1,
                       "give exactly one KEY (`stratus api-key list --cluster ID` shows them)", &cluster, &key);
        if (rc >= 0)
                return rc;
        char *path = xasprintf("/v1/clusters/%s/api-keys/%s", cluster, key);
        json_t *answer;
        int status = cli_call(cli, "DELETE", path, NULL, NULL, &answer, NULL);
        free(path);
        if (status < 0)
                return 1;
        if (status != 200 && status != 202 && status != 204) {
                char hint[256];
                snprintf(hint, sizeof(hint), "`stratus api-key list --cluster %s` shows its keys", cluster);
                rc = cli_fail(cli, status, answer, hint);
                json_decref(answer);
                return rc;
        }
        if (cli->json)
                printf("{\"key\": \"%s\", \"deleted\": true}\n", key);
        else
                printf("API key %s of %s deleted.\n", key, cluster);
        json_decref(answer);
        return 0;
}

static const struct cli_command cmd_specs[] = {
        { "api-key", "create", cmd_api_key_create, "--cluster ID", "Create an API key (its secret is shown once)" },
        { "api-key", "list", cmd_api_key_list, "--cluster ID", "List a cluster's API keys" },
        { "api-key", "delete", cmd_api_key_delete, "KEY --cluster ID", "Delete an API key" },
};

int api_key_main(int argc, char **argv)
{
        return cli_dispatch("api-key", cmd_specs, sizeof(cmd_specs) / sizeof(cmd_specs[0]), argc, argv);
}
