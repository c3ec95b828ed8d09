/* What the mothership commands share: options, config, API calls, errors, output. */
#include "cli/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/fileio.h"
#include "cli/cli.h"
#include "http/client.h"

#define DEFAULT_TIMEOUT_MS 15000

/* ---- the config file ------------------------------------------------------------- */

int cli_config_path(char *out, size_t out_len)
{
        const char *env = getenv("STRATUS_CONFIG");
        if (env && *env) {
                snprintf(out, out_len, "%s", env);
                return 0;
        }
        const char *xdg = getenv("XDG_CONFIG_HOME");
        if (xdg && *xdg) {
                snprintf(out, out_len, "%s/stratus/config.json", xdg);
                return 0;
        }
        const char *home = getenv("HOME");
        if (home && *home) {
                snprintf(out, out_len, "%s/.config/stratus/config.json", home);
                return 0;
        }
        return -ENOENT;
}

int cli_config_write(const char *path, const char *endpoint, const char *token, char *err, size_t err_len)
{
        char *dir = xstrdup(path);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir)
                *slash = '\0';
        else
                snprintf(dir, strlen(path) + 1, "%s", slash ? "/" : ".");
        int rc = fileio_mkdirs(dir);
        if (rc < 0) {
                snprintf(err, err_len, "cannot create %s: %s", dir, strerror(-rc));
                free(dir);
                return rc;
        }
        json_t *obj = json_pack("{s:s, s:s}", "endpoint", endpoint, "token", token);
        char *text = json_dumps(obj, JSON_INDENT(2));
        json_decref(obj);
        size_t len = strlen(text);
        text = xrealloc(text, len + 2);
        text[len++] = '\n';
        text[len] = '\0';
        /* Created 0600 before the secret goes in; fileio_replace() renames it over <path>. */
        char *tmp = xasprintf("%s.tmp", path);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) {
                fchmod(fd, 0600);
                close(fd);
        }
        rc = fileio_replace(dir, path, text, len);
        if (rc < 0)
                snprintf(err, err_len, "cannot write %s: %s", path, strerror(-rc));
        else
                chmod(path, 0600);
        free(tmp);
        free(text);
        free(dir);
        return rc;
}

/* ---- options and dispatch -------------------------------------------------------- */

int cli_common_option(struct cli *cli, int c, const char *arg)
{
        switch (c) {
        case CLI_OPT_ENDPOINT:
                cli->opt_endpoint = arg;
                return 0;
        case CLI_OPT_TOKEN:
                cli->opt_token = arg;
                return 0;
        case CLI_OPT_OUTPUT:
                if (strcmp(arg, "json") == 0) {
                        cli->json = true;
                        return 0;
                }
                if (strcmp(arg, "table") == 0) {
                        cli->json = false;
                        return 0;
                }
                fprintf(stderr, "%s: --output must be table or json, not '%s'\n", cli->prog, arg);
                return -1;
        case CLI_OPT_HELP:
                return 1;
        default:
                fprintf(stderr, "%s: see '%s --help' for the options\n", cli->prog, cli->prog);
                return -1;
        }
}

void cli_usage(FILE *out, const struct cli_command *cmd, const char *details)
{
        fprintf(out, "usage: stratus %s %s%s%s\n\n%s.\n", cmd->group, cmd->name, *cmd->args ? " " : "", cmd->args,
                cmd->summary);
        if (details && *details)
                fprintf(out, "\n%s", details);
        fprintf(out, "\nCommon options:\n"
                     "  --output table|json   tables for people (default) or the API's JSON\n"
                     "  --endpoint URL        the mothership API (default: from the config file)\n"
                     "  --token TOKEN         the API token (default: from the config file)\n"
                     "  -h, --help            this text\n\n"
                     "The config file is $STRATUS_CONFIG, else $XDG_CONFIG_HOME/stratus/config.json,\n"
                     "else ~/.config/stratus/config.json; `stratus up` writes it. docs/cli.md has more.\n");
}

static void group_usage(FILE *out, const char *group, const struct cli_command *commands, size_t ncommands)
{
        fprintf(out, "usage: stratus %s COMMAND [ARGS]...\n\nCommands:\n", group);
        for (size_t i = 0; i < ncommands; i++)
                fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
        fprintf(out, "\nRun 'stratus %s COMMAND --help' for a command's options (docs/cli.md).\n", group);
}

int cli_dispatch(const char *group, const struct cli_command *commands, size_t ncommands, int argc, char **argv)
{
        if (argc < 2) {
                group_usage(stderr, group, commands, ncommands);
                return 2;
        }
        if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
                group_usage(stdout, group, commands, ncommands);
                return 0;
        }
        for (size_t i = 0; i < ncommands; i++) {
                if (strcmp(argv[1], commands[i].name) != 0)
                        continue;
                char prog[64];
                snprintf(prog, sizeof(prog), "stratus %s %s", group, commands[i].name);
                struct cli cli = { .prog = prog, .timeout_ms = DEFAULT_TIMEOUT_MS };
                int rc = commands[i].fn(&cli, argc - 1, argv + 1);
                cli_deinit(&cli);
                return rc;
        }
        fprintf(stderr, "stratus %s: unknown command '%s'\n\n", group, argv[1]);
        group_usage(stderr, group, commands, ncommands);
        return 2;
}

/* ---- endpoint and token ---------------------------------------------------------- */

static char *normalize_endpoint(const char *text)
{
        char *s = strstr(text, "://") ? xstrdup(text) : xasprintf("http://%s", text);
        size_t n = strlen(s);
        while (n > 0 && s[n - 1] == '/')
                s[--n] = '\0';
        return s;
}

int cli_connect(struct cli *cli)
{
        char path[4096];
        bool have_path = cli_config_path(path, sizeof(path)) == 0;
        cli->config_path = xstrdup(have_path ? path : "(no config path: set $STRATUS_CONFIG or $HOME)");
        json_t *conf = NULL;
        if (have_path && (!cli->opt_endpoint || !cli->opt_token) && access(path, F_OK) == 0) {
                json_error_t jerr;
                conf = json_load_file(path, 0, &jerr);
                if (!conf || !json_is_object(conf)) {
                        fprintf(stderr,
                                "%s: the config file %s is not a JSON object (%s, line %d): fix it, delete it and run "
                                "`stratus up` again, or pass --endpoint and --token\n",
                                cli->prog, path, conf ? "not an object" : jerr.text, conf ? 0 : jerr.line);
                        json_decref(conf);
                        return -1;
                }
        }
        const char *endpoint = cli->opt_endpoint, *token = cli->opt_token;
        if (endpoint) {
                cli->endpoint_from = xstrdup("--endpoint");
        } else if (conf) {
                endpoint = json_string_value(json_object_get(conf, "endpoint"));
                cli->endpoint_from = xstrdup(path);
        }
        if (!token && conf)
                token = json_string_value(json_object_get(conf, "token"));
        if (!endpoint || !*endpoint) {
                if (conf)
                        fprintf(stderr, "%s: the config file %s has no \"endpoint\": run `stratus up` to rewrite it, "
                                        "or pass --endpoint URL\n",
                                cli->prog, path);
                else
                        fprintf(stderr,
                                "%s: no mothership configured: there is no config file at %s. Start one with `stratus "
                                "up` (it writes that file), or pass --endpoint URL --token TOKEN\n",
                                cli->prog, cli->config_path);
                json_decref(conf);
                return -1;
        }
        cli->endpoint = normalize_endpoint(endpoint);
        cli->token = token && *token ? xstrdup(token) : NULL;
        json_decref(conf);
        return 0;
}

void cli_deinit(struct cli *cli)
{
        free(cli->endpoint);
        free(cli->token);
        free(cli->endpoint_from);
        free(cli->config_path);
        cli->endpoint = cli->token = cli->endpoint_from = cli->config_path = NULL;
}

/* ---- calls and errors ------------------------------------------------------------ */

int cli_call(struct cli *cli, const char *method, const char *path, json_t *body, const char *header,
             json_t **out, char **etag_out)
{
        *out = NULL;
        if (etag_out)
                *etag_out = NULL;
        char *url = xasprintf("%s%s", cli->endpoint, path);
        char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        json_decref(body);
        const char *headers[] = { header, NULL };
        struct http_request req = {
                .method = method,
                .url = url,
                .headers = headers,
                .body = text,
                .body_len = text ? strlen(text) : 0,
                .bearer_token = cli->token,
                .timeout_ms = cli->timeout_ms,
        };
        struct http_response resp;
        char err[512];
        int rc = http_request(&req, &resp, err, sizeof(err));
        free(text);
        if (rc < 0) {
                if (rc == -ECONNREFUSED)
                        fprintf(stderr,
                                "%s: cannot reach the mothership at %s: connection refused — is `stratus up` "
                                "running? (the endpoint came from %s%s)\n",
                                cli->prog, cli->endpoint, cli->endpoint_from,
                                strcmp(cli->endpoint_from, "--endpoint") ? "; --endpoint URL overrides it" : "");
                else if (rc == -ETIMEDOUT)
                        fprintf(stderr, "%s: the mothership at %s did not answer within %d s: is it overloaded or "
                                        "stuck? Check its log (with `stratus up`: DIR/logs/mothership.log)\n",
                                cli->prog, cli->endpoint, cli->timeout_ms / 1000);
                else
                        fprintf(stderr, "%s: %s — check the endpoint (from %s; --endpoint URL overrides it)\n",
                                cli->prog, err, cli->endpoint_from);
                free(url);
                return -1;
        }
        free(url);
        if (resp.body_len > 0)
                *out = json_loadb(resp.body, resp.body_len, 0, NULL);
        if (!*out && resp.body_len > 0 && resp.status >= 400) {
                /* Not our error shape (a proxy?): keep the text for the message. */
                *out = json_pack("{s:{s:s, s:s%}}", "error", "code", "unknown", "message", resp.body,
                                 resp.body_len > 300 ? (size_t)300 : resp.body_len);
        }
        if (etag_out) {
                size_t len;
                const char *etag = http_response_header(&resp, "ETag", &len);
                *etag_out = etag ? xstrndup(etag, len) : NULL;
        }
        int status = (int)resp.status;
        http_response_deinit(&resp);
        return status;
}

static const char *flag_of_field(const char *field)
{
        static const struct {
                const char *field, *flag;
        } map[] = {
                { "ingress_mbps", "--ingress" }, { "egress_mbps", "--egress" }, { "partitions", "--partitions" },
                { "region", "--region" },        { "type", "--type" },          { "name", "NAME" },
        };
        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
                if (strcmp(map[i].field, field) == 0)
                        return map[i].flag;
        return field;
}

int cli_fail(struct cli *cli, int status, json_t *answer, const char *hint)
{
        json_t *error = json_object_get(answer, "error");
        const char *code = json_string_value(json_object_get(error, "code"));
        const char *message = json_string_value(json_object_get(error, "message"));
        const char *field = json_string_value(json_object_get(error, "field"));
        if (!message)
                message = "no message";
        switch (status) {
        case 401:
        case 403:
                fprintf(stderr,
                        "%s: the mothership refused the token (HTTP %d: %s). Use the token `stratus up` wrote into "
                        "%s, or pass --token TOKEN\n",
                        cli->prog, status, message, cli->config_path);
                break;
        case 404:
                fprintf(stderr, "%s: not found: %s%s%s\n", cli->prog, message, hint ? ". " : "", hint ? hint : "");
                break;
        case 409:
        case 412:
                fprintf(stderr, "%s: %s (HTTP %d%s%s)%s%s\n", cli->prog, message, status, code ? ", " : "",
                        code ? code : "", hint ? ". " : "", hint ? hint : "");
                break;
        default:
                if (status >= 500)
                        fprintf(stderr,
                                "%s: the mothership failed (HTTP %d: %s). Its log says more (with `stratus up`: "
                                "DIR/logs/mothership.log); retry once it is fixed\n",
                                cli->prog, status, message);
                else if (field)
                        fprintf(stderr, "%s: %s: %s (HTTP %d %s): fix %s and retry\n", cli->prog, flag_of_field(field),
                                message, status, code ? code : "", flag_of_field(field));
                else
                        fprintf(stderr, "%s: %s (HTTP %d %s)\n", cli->prog, message, status, code ? code : "");
        }
        return 1;
}

static char *url_escape(const char *s)
{
        static const char hex[] = "0123456789ABCDEF";
        char *out = xmalloc(strlen(s) * 3 + 1), *p = out;
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.' || c == '~') {
                        *p++ = (char)c;
                } else {
                        *p++ = '%';
                        *p++ = hex[c >> 4];
                        *p++ = hex[c & 15];
                }
        }
        *p = '\0';
        return out;
}

json_t *cli_list_all(struct cli *cli, const char *path, const char *key)
{
        json_t *all = json_array();
        char *token = NULL;
        for (int page = 0; page < 10000; page++) {
                char *url;
                if (token) {
                        char *esc = url_escape(token);
                        url = xasprintf("%s?page_size=500&page_token=%s", path, esc);
                        free(esc);
                } else {
                        url = xasprintf("%s?page_size=500", path);
                }
                free(token);
                token = NULL;
                json_t *answer;
                int status = cli_call(cli, "GET", url, NULL, NULL, &answer, NULL);
                free(url);
                if (status < 0) {
                        json_decref(all);
                        return NULL;
                }
                if (status != 200) {
                        cli_fail(cli, status, answer, NULL);
                        json_decref(answer);
                        json_decref(all);
                        return NULL;
                }
                json_t *items = json_object_get(answer, key);
                if (!items)
                        items = json_object_get(answer, "items");
                if (!items && json_is_array(answer))
                        items = answer;
                json_array_extend(all, json_is_array(items) ? items : NULL);
                const char *next = json_string_value(json_object_get(answer, "next_page_token"));
                if (next && *next)
                        token = xstrdup(next);
                json_decref(answer);
                if (!token)
                        return all;
        }
        free(token);
        return all;
}

/* ---- output ---------------------------------------------------------------------- */

static json_t *lookup(json_t *obj, const char *path, size_t len)
{
        char key[128];
        const char *p = path, *end = path + len;
        json_t *v = obj;
        while (v && p < end) {
                size_t n = strcspn(p, ".|");
                if (p + n > end)
                        n = (size_t)(end - p);
                snprintf(key, sizeof(key), "%.*s", (int)n, p);
                v = json_object_get(v, key);
                p += n + 1;
        }
        return json_is_null(v) ? NULL : v;
}

const char *cli_field(json_t *obj, const char *path)
{
        static char ring[16][256];
        static unsigned next;
        char *out = ring[next++ % 16];
        out[0] = '\0';
        json_t *v = NULL;
        for (const char *p = path; !v && *p;) {
                size_t n = strcspn(p, "|");
                v = lookup(obj, p, n);
                p += n + (p[n] == '|');
        }
        if (json_is_string(v))
                snprintf(out, 256, "%s", json_string_value(v));
        else if (json_is_integer(v))
                snprintf(out, 256, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v))
                snprintf(out, 256, "%g", json_real_value(v));
        else if (json_is_boolean(v))
                snprintf(out, 256, "%s", json_is_true(v) ? "yes" : "no");
        else if (json_is_array(v))
                snprintf(out, 256, "%zu", json_array_size(v));
        return out;
}

static void print_cell(FILE *out, const char *text, size_t width, bool last)
{
        if (last)
                fprintf(out, "%s\n", text);
        else
                fprintf(out, "%-*s  ", (int)width, text);
}

void cli_table(FILE *out, json_t *rows, const char *const *headers, const char *const *paths, size_t ncols)
{
        size_t width[16] = { 0 };
        ncols = ncols > 16 ? 16 : ncols;
        for (size_t c = 0; c < ncols; c++)
                width[c] = strlen(headers[c]);
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row) {
                for (size_t c = 0; c < ncols; c++) {
                        size_t n = strlen(cli_field(row, paths[c]));
                        if (n > width[c])
                                width[c] = n;
                }
        }
        for (size_t c = 0; c < ncols; c++)
                print_cell(out, headers[c], width[c], c + 1 == ncols);
        json_array_foreach(rows, i, row) {
                for (size_t c = 0; c < ncols; c++) {
                        const char *v = cli_field(row, paths[c]);
                        print_cell(out, *v ? v : "-", width[c], c + 1 == ncols);
                }
        }
}

void cli_print_json(FILE *out, json_t *json)
{
        char *text = json_dumps(json, JSON_INDENT(2) | JSON_ENCODE_ANY);
        fprintf(out, "%s\n", text ? text : "null");
        free(text);
}

int cli_parse_positive(struct cli *cli, const char *flag, const char *text, double *out)
{
        char *end;
        errno = 0;
        double v = strtod(text, &end);
        if (errno || end == text || *end || !(v > 0)) {
                fprintf(stderr, "%s: %s must be a positive number, not '%s'\n", cli->prog, flag, text);
                return -1;
        }
        *out = v;
        return 0;
}

const char *cli_idempotency_header(void)
{
        static char line[64];
        unsigned char raw[12] = { 0 };
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                if (read(fd, raw, sizeof(raw)) < 0)
                        raw[0] = 0;
                close(fd);
        }
        int n = snprintf(line, sizeof(line), "Idempotency-Key: cli-");
        for (size_t i = 0; i < sizeof(raw); i++)
                n += snprintf(line + n, sizeof(line) - (size_t)n, "%02x", raw[i]);
        return line;
}

json_t *cli_number(double v)
{
        if (v == (double)(long long)v)
                return json_integer((json_int_t)v);
        return json_real(v);
}
