/* Command-line client commands of the `stratus` binary (they talk to servers; they are
 * not servers): `stratus groups` (any Kafka-protocol broker) and the mothership CLI
 * (`cluster`, `api-key`, `satellite list`, `pkc`; docs/cli.md), and the CLI's config file,
 * which `stratus up` writes. */
#ifndef STRATUS_CLI_CLI_H
#define STRATUS_CLI_CLI_H

#include <stddef.h>

/* `stratus groups`: consumer groups, members and lag of a Kafka-protocol broker. */
int groups_main(int argc, char **argv);

/* `stratus cluster|api-key|pkc SUBCOMMAND ...`: <argv>[0] is the command's name. Return
 * the process exit status: 0, 1 (the request failed; a message says what to do) or 2
 * (bad usage). */
int cluster_main(int argc, char **argv);
int api_key_main(int argc, char **argv);
int pkc_main(int argc, char **argv);
/* `stratus satellite list ...`: <argv>[0] is "list" (main.c sends every other `stratus
 * satellite` to the satellite agent). */
int cli_satellite_list(int argc, char **argv);

/* The CLI's config file: $STRATUS_CONFIG, else $XDG_CONFIG_HOME/stratus/config.json, else
 * $HOME/.config/stratus/config.json. Writes the path into <out>. Returns 0, or -ENOENT
 * when neither $XDG_CONFIG_HOME nor $HOME is set. */
int cli_config_path(char *out, size_t out_len);
/* Writes {"endpoint": <endpoint>, "token": <token>} to <path> (mode 0600, atomically,
 * parent directories made). Returns 0 or -errno with <err>. */
int cli_config_write(const char *path, const char *endpoint, const char *token, char *err, size_t err_len);

#endif
