/* The configuration of `stratus lb` (docs/lb.md): a line-oriented file parsed into plain
 * values. Parsing is pure (no sockets), so it is unit-tested; every error names the file
 * and line. */
#ifndef STRATUS_LB_CONFIG_H
#define STRATUS_LB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

enum lb_check { LB_CHECK_TCP = 0, LB_CHECK_KAFKA };

/* A resolved address and its text ("host:port" as written). */
struct lb_addr {
        char *text;
        struct sockaddr_storage sa;
        socklen_t sa_len;
};

struct lb_listener_config {
        char *name;
        struct lb_addr bind;
        struct lb_addr *targets;
        int ntargets;
        int max_connections;
        bool proxy_v2;
        enum lb_check check;
        bool proxy_set, check_set; /* given on the line (else the file's defaults apply) */
        int line;
};

struct lb_config {
        char *admin;               /* "host:port", or NULL for none */
        int connect_timeout_ms;
        int drain_timeout_ms;
        int health_interval_ms;
        int health_timeout_ms;
        int health_rise;
        int health_fall;
        enum lb_check check;       /* default for listeners */
        int max_connections;       /* default for listeners */
        bool proxy_v2;             /* default for listeners */
        struct lb_listener_config *listeners;
        int nlisteners;
};

/* Parses <text> (the contents of <file>, used in messages) into <cfg>. Returns 0, or
 * -EINVAL with "<file>:<line>: <what is wrong>" in <err>. */
int lb_config_parse(const char *text, const char *file, struct lb_config *cfg, char *err, size_t err_len);
/* Reads and parses <path>. Returns 0, or -errno / -EINVAL with a message in <err>. */
int lb_config_load(const char *path, struct lb_config *cfg, char *err, size_t err_len);
void lb_config_free(struct lb_config *cfg);

/* Resolves "host:port" (numeric or by name; an empty host with <bind> means all
 * interfaces) into <out> (its text owned: free out->text). Returns 0, or -EINVAL with a
 * message in <err>. */
int lb_addr_resolve(const char *text, bool bind, struct lb_addr *out, char *err, size_t err_len);

/* Whether two addresses are the same (same sockaddr). */
bool lb_addr_equal(const struct lb_addr *a, const struct lb_addr *b);

#endif
