/* Internal to src/cli: what the mothership commands share: global options, the endpoint
 * and token (flags over the config file), one API call with errors a person can act on,
 * table and JSON output, and the command table type. Not a contract for other modules. */
#ifndef STRATUS_CLI_COMMON_H
#define STRATUS_CLI_COMMON_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

struct cli {
        const char *prog;        /* "stratus cluster create", for messages */
        char *endpoint;          /* "http://127.0.0.1:8480", no trailing slash (heap) */
        char *token;             /* bearer token (heap) or NULL */
        char *endpoint_from;     /* where <endpoint> came from: "--endpoint" or the config path (heap) */
        char *config_path;       /* the config file looked at (heap) */
        const char *opt_endpoint, *opt_token; /* flags, borrowed from argv */
        bool json;               /* --output json */
        int timeout_ms;          /* per request */
};

/* One subcommand: `stratus <group> <name> ...`. */
typedef int cli_command_fn(struct cli *cli, int argc, char **argv);
struct cli_command {
        const char *group;       /* "cluster" */
        const char *name;        /* "create" */
        cli_command_fn *fn;
        const char *args;        /* "NAME --region R ..." for usage */
        const char *summary;
};

/* Long options every subcommand takes (values CLI_OPT_*); append to a command's own and
 * end with { 0 }. */
enum { CLI_OPT_ENDPOINT = 1000, CLI_OPT_TOKEN, CLI_OPT_OUTPUT, CLI_OPT_HELP };
#define CLI_COMMON_OPTIONS                                                    \
        { "endpoint", required_argument, NULL, CLI_OPT_ENDPOINT },            \
        { "token", required_argument, NULL, CLI_OPT_TOKEN },                  \
        { "output", required_argument, NULL, CLI_OPT_OUTPUT },                \
        { "help", no_argument, NULL, CLI_OPT_HELP }

/* Handles a common option <c> with <arg>. Returns 0, 1 for --help (print usage, exit 0),
 * or -1 (usage error, printed). */
int cli_common_option(struct cli *cli, int c, const char *arg);
/* Runs the <group> subcommand named in <argv>[1] from <commands>. */
int cli_dispatch(const char *group, const struct cli_command *commands, size_t ncommands, int argc, char **argv);
/* Prints the usage of <cmd> (its args and the common options) to <out>. */
void cli_usage(FILE *out, const struct cli_command *cmd, const char *details);

/* Resolves the endpoint and token (flags over the config file). Returns 0, or -1 having
 * printed what to do. */
int cli_connect(struct cli *cli);
void cli_deinit(struct cli *cli);

/* Calls <method> <path> ("/v1/clusters") with <body> (taken; may be NULL). Returns the
 * HTTP status with *<out> the parsed JSON answer (NULL when empty or not JSON), or -1
 * when no answer came (the message with what to do is printed). <etag_out>, if not NULL,
 * gets the ETag header (heap) or NULL. <header> ("If-Match: ...") is sent when not NULL. */
int cli_call(struct cli *cli, const char *method, const char *path, json_t *body, const char *header,
             json_t **out, char **etag_out);
/* Prints the error of a non-2xx answer <status>/<answer> with a hint for what to do.
 * <what> names the thing asked for ("cluster lkc-abc123"). Returns 1 (the exit status). */
int cli_fail(struct cli *cli, int status, json_t *answer, const char *what);

/* GETs <path> page by page (page_token/next_page_token) and returns the items of every
 * page under <key> (a new array), or NULL having printed the error. */
json_t *cli_list_all(struct cli *cli, const char *path, const char *key);

/* The value at <path> ("status.phase") in <obj> as text (numbers and booleans
 * formatted; "" when missing or null). <path> may list alternatives, "a.b|c": the first
 * that is set. Returns a pointer into a ring of static buffers:
 * valid for the next 16 calls. */
const char *cli_field(json_t *obj, const char *path);

/* A table: <ncols> headers and for each object of <rows> the fields at <paths>. */
void cli_table(FILE *out, json_t *rows, const char *const *headers, const char *const *paths, size_t ncols);
/* Pretty-prints <json> with a trailing newline. */
void cli_print_json(FILE *out, json_t *json);

/* A random Idempotency-Key header line (static buffer). */
const char *cli_idempotency_header(void);

/* Parses a positive number for flag <flag>. Returns 0 or -1 having printed the error. */
int cli_parse_positive(struct cli *cli, const char *flag, const char *text, double *out);
/* A JSON number: an integer when <v> has no fraction. */
json_t *cli_number(double v);

#endif
