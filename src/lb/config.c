/* Parser of the `stratus lb` configuration file; see config.h and docs/lb.md. */
#include "lb/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "loop/net.h"

#define MAX_TOKENS 1024
#define MAX_NAME 64

struct parse {
        const char *file;
        int line;
        char *err;
        size_t err_len;
};

static int fail(struct parse *p, const char *fmt, ...)
{
        int n = snprintf(p->err, p->err_len, "%s:%d: ", p->file, p->line);
        if (n < 0 || (size_t)n >= p->err_len)
                return -EINVAL;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->err_len - (size_t)n, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static int parse_int(struct parse *p, const char *key, const char *v, long min, long max, int *out)
{
        char *end;
        errno = 0;
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end || x < min || x > max)
                return fail(p, "%s: \"%s\" is not a whole number from %ld to %ld", key, v, min, max);
        *out = (int)x;
        return 0;
}

static int parse_check(struct parse *p, const char *key, const char *v, enum lb_check *out)
{
        if (strcmp(v, "tcp") == 0)
                *out = LB_CHECK_TCP;
        else if (strcmp(v, "kafka") == 0)
                *out = LB_CHECK_KAFKA;
        else
                return fail(p, "%s: \"%s\" must be tcp or kafka", key, v);
        return 0;
}

static int parse_proxy(struct parse *p, const char *key, const char *v, bool *out)
{
        if (strcmp(v, "off") == 0)
                *out = false;
        else if (strcmp(v, "v2") == 0)
                *out = true;
        else
                return fail(p, "%s: \"%s\" must be off or v2", key, v);
        return 0;
}

int lb_addr_resolve(const char *text, bool bind, struct lb_addr *out, char *err, size_t err_len)
{
        char host[256];
        int port;
        if (net_parse_hostport(text, host, sizeof(host), &port) < 0 || port < 0 || port > 65535) {
                snprintf(err, err_len, "\"%s\" is not host:port", text);
                return -EINVAL;
        }
        if (port == 0) {
                snprintf(err, err_len, "\"%s\": port 0 is not allowed (the address must be stable)", text);
                return -EINVAL;
        }
        if (!bind && !host[0]) {
                snprintf(err, err_len, "\"%s\" has no host", text);
                return -EINVAL;
        }
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                  .ai_flags = bind ? AI_PASSIVE : 0 };
        char portstr[8];
        snprintf(portstr, sizeof(portstr), "%d", port);
        struct addrinfo *res;
        int rc = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res);
        if (rc != 0) {
                snprintf(err, err_len, "\"%s\": %s", text, gai_strerror(rc));
                return -EINVAL;
        }
        memset(out, 0, sizeof(*out));
        memcpy(&out->sa, res->ai_addr, res->ai_addrlen);
        out->sa_len = res->ai_addrlen;
        out->text = xstrdup(text);
        freeaddrinfo(res);
        return 0;
}

static int parse_addr(struct parse *p, const char *what, const char *text, bool bind, struct lb_addr *out)
{
        char msg[400];
        if (lb_addr_resolve(text, bind, out, msg, sizeof(msg)) < 0)
                return fail(p, "%s: %s", what, msg);
        return 0;
}

bool lb_addr_equal(const struct lb_addr *a, const struct lb_addr *b)
{
        return a->sa_len == b->sa_len && memcmp(&a->sa, &b->sa, a->sa_len) == 0;
}

static bool valid_name(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > MAX_NAME)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
                        return false;
        return true;
}

static void listener_free(struct lb_listener_config *l)
{
        free(l->name);
        free(l->bind.text);
        for (int i = 0; i < l->ntargets; i++)
                free(l->targets[i].text);
        free(l->targets);
}

void lb_config_free(struct lb_config *cfg)
{
        free(cfg->admin);
        for (int i = 0; i < cfg->nlisteners; i++)
                listener_free(&cfg->listeners[i]);
        free(cfg->listeners);
        memset(cfg, 0, sizeof(*cfg));
}

static void defaults(struct lb_config *cfg)
{
        memset(cfg, 0, sizeof(*cfg));
        cfg->admin = xstrdup("127.0.0.1:9901");
        cfg->connect_timeout_ms = 3000;
        cfg->drain_timeout_ms = 30000;
        cfg->health_interval_ms = 1000;
        cfg->health_timeout_ms = 1000;
        cfg->health_rise = 2;
        cfg->health_fall = 3;
        cfg->check = LB_CHECK_TCP;
        cfg->max_connections = 10000;
        cfg->proxy_v2 = false;
}

/* A "listener NAME BIND TARGET... [key=value]..." line, tokens after the keyword. */
static int parse_listener(struct parse *p, struct lb_config *cfg, char **tok, int ntok)
{
        if (ntok < 3)
                return fail(p, "listener: expected: listener NAME BIND_ADDRESS TARGET [TARGET...] [option=value...]");
        if (!valid_name(tok[0]))
                return fail(p, "listener: name \"%s\" must be 1-%d characters of [a-zA-Z0-9._-]", tok[0], MAX_NAME);
        struct lb_listener_config l = { .max_connections = -1, .line = p->line };
        int rc = parse_addr(p, "listener bind address", tok[1], true, &l.bind);
        if (rc < 0)
                return rc;
        l.name = xstrdup(tok[0]);
        l.targets = xcalloc((size_t)ntok, sizeof(*l.targets));
        for (int i = 2; i < ntok && rc == 0; i++) {
                char *eq = strchr(tok[i], '=');
                if (!eq) {
                        rc = parse_addr(p, "listener target", tok[i], false, &l.targets[l.ntargets]);
                        if (rc == 0)
                                l.ntargets++;
                        continue;
                }
                *eq = '\0';
                const char *v = eq + 1;
                if (strcmp(tok[i], "max_connections") == 0) {
                        rc = parse_int(p, "max_connections", v, 1, 1000000, &l.max_connections);
                } else if (strcmp(tok[i], "proxy_protocol") == 0) {
                        rc = parse_proxy(p, "proxy_protocol", v, &l.proxy_v2);
                        l.proxy_set = true;
                } else if (strcmp(tok[i], "health_check") == 0) {
                        rc = parse_check(p, "health_check", v, &l.check);
                        l.check_set = true;
                } else {
                        rc = fail(p, "listener %s: unknown option \"%s\" (max_connections, proxy_protocol, health_check)",
                                  l.name, tok[i]);
                }
        }
        if (rc == 0 && l.ntargets == 0)
                rc = fail(p, "listener %s: no target", l.name);
        for (int i = 0; rc == 0 && i < cfg->nlisteners; i++) {
                if (strcmp(cfg->listeners[i].name, l.name) == 0)
                        rc = fail(p, "listener %s: the name is already used on line %d", l.name, cfg->listeners[i].line);
                else if (lb_addr_equal(&cfg->listeners[i].bind, &l.bind))
                        rc = fail(p, "listener %s: %s is already bound by listener %s (line %d)", l.name, l.bind.text,
                                  cfg->listeners[i].name, cfg->listeners[i].line);
        }
        for (int i = 0; rc == 0 && i < l.ntargets; i++)
                for (int j = 0; j < i; j++)
                        if (lb_addr_equal(&l.targets[i], &l.targets[j]))
                                rc = fail(p, "listener %s: target %s is listed twice", l.name, l.targets[i].text);
        if (rc < 0) {
                listener_free(&l);
                return rc;
        }
        /* Defaults are applied after the whole file: settings may come after listeners. */
        cfg->listeners = xrealloc(cfg->listeners, (size_t)(cfg->nlisteners + 1) * sizeof(*cfg->listeners));
        cfg->listeners[cfg->nlisteners++] = l;
        return 0;
}

static const char *const SETTINGS[] = {
        "admin", "connect_timeout_ms", "drain_timeout_ms", "health_interval_ms", "health_timeout_ms",
        "health_rise", "health_fall", "max_connections", "health_check", "proxy_protocol",
};

static int parse_setting(struct parse *p, struct lb_config *cfg, const char *key, char **tok, int ntok)
{
        bool known = false;
        for (size_t i = 0; i < sizeof(SETTINGS) / sizeof(SETTINGS[0]); i++)
                known |= strcmp(SETTINGS[i], key) == 0;
        if (!known)
                return fail(p, "unknown directive \"%s\" (see docs/lb.md)", key);
        if (ntok != 1)
                return fail(p, "%s: expected one value", key);
        const char *v = tok[0];
        if (strcmp(key, "admin") == 0) {
                free(cfg->admin);
                cfg->admin = NULL;
                if (strcmp(v, "off") == 0)
                        return 0;
                struct lb_addr a;
                int rc = parse_addr(p, "admin", v, true, &a);
                if (rc < 0)
                        return rc;
                cfg->admin = a.text;
                return 0;
        }
        static const struct {
                const char *key;
                size_t off;
                long min, max;
        } ints[] = {
                { "connect_timeout_ms", offsetof(struct lb_config, connect_timeout_ms), 1, 600000 },
                { "drain_timeout_ms", offsetof(struct lb_config, drain_timeout_ms), 0, 86400000 },
                { "health_interval_ms", offsetof(struct lb_config, health_interval_ms), 10, 3600000 },
                { "health_timeout_ms", offsetof(struct lb_config, health_timeout_ms), 1, 600000 },
                { "health_rise", offsetof(struct lb_config, health_rise), 1, 100 },
                { "health_fall", offsetof(struct lb_config, health_fall), 1, 100 },
                { "max_connections", offsetof(struct lb_config, max_connections), 1, 1000000 },
        };
        for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
                if (strcmp(key, ints[i].key) == 0)
                        return parse_int(p, key, v, ints[i].min, ints[i].max, (int *)((char *)cfg + ints[i].off));
        if (strcmp(key, "health_check") == 0)
                return parse_check(p, key, v, &cfg->check);
        if (strcmp(key, "proxy_protocol") == 0)
                return parse_proxy(p, key, v, &cfg->proxy_v2);
        return fail(p, "unknown directive \"%s\" (see docs/lb.md)", key);
}

int lb_config_parse(const char *text, const char *file, struct lb_config *cfg, char *err, size_t err_len)
{
        defaults(cfg);
        struct parse p = { .file = file, .line = 0, .err = err, .err_len = err_len };
        const char *s = text;
        int rc = 0;
        while (*s && rc == 0) {
                p.line++;
                const char *eol = strchr(s, '\n');
                size_t len = eol ? (size_t)(eol - s) : strlen(s);
                char *line = xmalloc(len + 1);
                memcpy(line, s, len);
                line[len] = '\0';
                s += len + (eol ? 1 : 0);
                char *hash = strchr(line, '#');
                if (hash)
                        *hash = '\0';
                char *tok[MAX_TOKENS];
                int ntok = 0;
                for (char *save = NULL, *t = strtok_r(line, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
                        if (ntok == MAX_TOKENS) {
                                rc = fail(&p, "more than %d words on one line", MAX_TOKENS);
                                break;
                        }
                        tok[ntok++] = t;
                }
                if (rc == 0 && ntok > 0) {
                        if (strcmp(tok[0], "listener") == 0)
                                rc = parse_listener(&p, cfg, tok + 1, ntok - 1);
                        else
                                rc = parse_setting(&p, cfg, tok[0], tok + 1, ntok - 1);
                }
                free(line);
        }
        if (rc < 0) {
                lb_config_free(cfg);
                return rc;
        }
        for (int i = 0; i < cfg->nlisteners; i++) {
                struct lb_listener_config *l = &cfg->listeners[i];
                if (!l->proxy_set)
                        l->proxy_v2 = cfg->proxy_v2;
                if (!l->check_set)
                        l->check = cfg->check;
                if (l->max_connections < 0)
                        l->max_connections = cfg->max_connections;
        }
        return 0;
}

int lb_config_load(const char *path, struct lb_config *cfg, char *err, size_t err_len)
{
        FILE *f = fopen(path, "re");
        if (!f) {
                int rc = -errno;
                snprintf(err, err_len, "%s: %s", path, strerror(errno));
                return rc;
        }
        char *text = NULL;
        size_t len = 0, cap = 0;
        char chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
                if (len + n + 1 > cap) {
                        cap = (len + n + 1) * 2;
                        text = xrealloc(text, cap);
                }
                memcpy(text + len, chunk, n);
                len += n;
                if (len > (16u << 20)) {
                        fclose(f);
                        free(text);
                        snprintf(err, err_len, "%s: larger than 16 MiB", path);
                        return -EFBIG;
                }
        }
        int rc = ferror(f) ? -EIO : 0;
        fclose(f);
        if (rc < 0) {
                free(text);
                snprintf(err, err_len, "%s: read error", path);
                return rc;
        }
        if (!text)
                text = xstrdup("");
        else
                text[len] = '\0';
        if (memchr(text, '\0', len)) {
                free(text);
                snprintf(err, err_len, "%s: contains a NUL byte (not a text file?)", path);
                return -EINVAL;
        }
        rc = lb_config_parse(text, path, cfg, err, err_len);
        free(text);
        return rc;
}
