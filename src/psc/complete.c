/* PSC completion: the versioned policy ("the Kafka team's" knowledge: broker version and
 * count, disk, broker configuration, listener layout, capacity per PKC type) and
 * psc_complete(), a pure function (partial PSC, policy) -> full PSC. See psc.h and
 * docs/psc.md "Completion policy". */
#include "psc/psc.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "psc/policy_default.h"
#include "psc/psc_json.h"

#define ERR(...) ((err && err_len) ? (void)snprintf(err, err_len, __VA_ARGS__) : (void)0)

/* What a broker_config_rules entry scales with. */
enum rule_var {
        VAR_INGRESS_MBPS = 0,
        VAR_EGRESS_MBPS,
        VAR_PARTITIONS,
        VAR_TENANTS,
        VAR_BROKER_COUNT,
        VAR_DISK_BYTES,
        VAR_DISK_BYTES_PER_PARTITION,
};
static const char *const var_names[] = {
    "ingress_mbps",
    "egress_mbps",
    "partitions",
    "tenants",
    "broker_count",
    "disk_bytes",
    "disk_bytes_per_partition",
    NULL,
};

/* value = clamp(round(factor x <from>), min, max) */
struct policy_rule {
        char *key;
        enum rule_var from;
        double factor;
        int64_t min, max;
};

struct policy_type {
        int broker_count;
        bool size_from_request; /* dedicated: sized from the request; else from capacity */
        struct psc_capacity capacity;
        char *disk_type;
        int64_t bytes_per_partition;  /* disk per partition a broker holds */
        int64_t min_bytes, max_bytes; /* disk floor and ceiling per broker */
};

struct psc_policy {
        char *version;
        char *product;
        char *broker_version;
        struct policy_type types[2];     /* by enum psc_pkc_type */
        struct psc_config_entry *config; /* sorted by key */
        int nconfig;
        struct policy_rule *rules;
        int nrules;
        char *client_security_protocol;
        char *sasl_mechanisms;
        char *internal_security_protocol;
        bool lb_bootstrap;
};

static const char *const type_names[] = {[PSC_MULTI_TENANT] = "multi_tenant", [PSC_DEDICATED] = "dedicated"};

/* server.properties keys the satellite writes from its own allocations (ports, paths,
 * node ids) or from the PSC's listener layout: a policy may not set them. */
static const char *const satellite_keys[] = {
    "node.id",
    "broker.id",
    "listeners",
    "advertised.listeners",
    "log.dirs",
    "log.dir",
    "listener.security.protocol.map",
    "sasl.enabled.mechanisms",
    "tenants.file",
    "metrics.listener",
    "cluster.id",
    NULL,
};

void psc_policy_free(struct psc_policy *policy)
{
        if (!policy)
                return;
        free(policy->version);
        free(policy->product);
        free(policy->broker_version);
        for (int t = 0; t < 2; t++)
                free(policy->types[t].disk_type);
        for (int i = 0; i < policy->nconfig; i++) {
                free(policy->config[i].key);
                free(policy->config[i].value);
        }
        free(policy->config);
        for (int i = 0; i < policy->nrules; i++)
                free(policy->rules[i].key);
        free(policy->rules);
        free(policy->client_security_protocol);
        free(policy->sasl_mechanisms);
        free(policy->internal_security_protocol);
        free(policy);
}

const char *psc_policy_version(const struct psc_policy *policy)
{
        return policy->version;
}

void psc_policy_capacity(const struct psc_policy *policy, enum psc_pkc_type type, struct psc_capacity *out)
{
        *out = policy->types[type == PSC_DEDICATED ? PSC_DEDICATED : PSC_MULTI_TENANT].capacity;
}

static bool config_key_ok(const char *key)
{
        return key[0] && !strpbrk(key, "=: \t\r\n#!");
}

static int check_key(const char *where, const char *key, char *err, size_t err_len)
{
        if (!config_key_ok(key)) {
                ERR("%s: \"%s\" is not a server.properties key", where, key);
                return -EINVAL;
        }
        for (int i = 0; satellite_keys[i]; i++)
                if (strcmp(satellite_keys[i], key) == 0) {
                        ERR("%s: \"%s\" is written by the satellite (ports, paths, listeners), not by a "
                            "policy",
                            where, key);
                        return -EINVAL;
                }
        if (strncmp(key, "ssl.", 4) == 0) {
                ERR("%s: \"%s\": TLS settings are not part of a policy yet", where, key);
                return -EINVAL;
        }
        return 0;
}

static int parse_type(json_t *tj, const char *path, struct policy_type *t, char *err, size_t err_len)
{
        static const char *const known[] = {"broker_count", "size_from", "capacity", "disk", NULL};
        static const char *const cap_known[] = {"ingress_mbps", "egress_mbps", "partitions", "tenants", NULL};
        static const char *const disk_known[] = {"type", "bytes_per_partition", "min_bytes", "max_bytes",
                                                 NULL};
        char where[128];
        int64_t broker_count = 0;
        char *size_from = NULL;
        if (pj_fields(tj, path, known, err, err_len) < 0 ||
            pj_integer(tj, path, "broker_count", true, 1, 64, &broker_count, err, err_len) < 0 ||
            pj_string(tj, path, "size_from", true, &size_from, err, err_len) < 0)
                goto bad;
        t->broker_count = (int)broker_count;
        if (strcmp(size_from, "capacity") == 0)
                t->size_from_request = false;
        else if (strcmp(size_from, "request") == 0)
                t->size_from_request = true;
        else {
                ERR("%s.size_from: \"%s\" is not capacity or request", path, size_from);
                goto bad;
        }
        pj_join(where, sizeof(where), path, "capacity");
        json_t *cap = json_object_get(tj, "capacity");
        if (!cap) {
                ERR("%s: missing (required)", where);
                goto bad;
        }
        if (pj_fields(cap, where, cap_known, err, err_len) < 0 ||
            pj_number(cap, where, "ingress_mbps", true, 0.001, 1e9, &t->capacity.ingress_mbps, err, err_len) <
                0 ||
            pj_number(cap, where, "egress_mbps", true, 0.001, 1e9, &t->capacity.egress_mbps, err, err_len) <
                0 ||
            pj_integer(cap, where, "partitions", true, 1, INT32_MAX, &t->capacity.partitions, err, err_len) <
                0 ||
            pj_integer(cap, where, "tenants", true, 1, 1000000, &t->capacity.tenants, err, err_len) < 0)
                goto bad;
        pj_join(where, sizeof(where), path, "disk");
        json_t *disk = json_object_get(tj, "disk");
        if (!disk) {
                ERR("%s: missing (required)", where);
                goto bad;
        }
        if (pj_fields(disk, where, disk_known, err, err_len) < 0 ||
            pj_string(disk, where, "type", true, &t->disk_type, err, err_len) < 0 ||
            pj_integer(disk, where, "bytes_per_partition", true, 1, INT64_MAX / INT32_MAX,
                       &t->bytes_per_partition, err, err_len) < 0 ||
            pj_integer(disk, where, "min_bytes", true, 1, INT64_MAX, &t->min_bytes, err, err_len) < 0 ||
            pj_integer(disk, where, "max_bytes", true, 1, INT64_MAX, &t->max_bytes, err, err_len) < 0)
                goto bad;
        if (t->min_bytes > t->max_bytes) {
                ERR("%s: min_bytes %" PRId64 " is more than max_bytes %" PRId64, where, t->min_bytes,
                    t->max_bytes);
                goto bad;
        }
        free(size_from);
        return 0;
bad:
        free(size_from);
        return -EINVAL;
}

static int cmp_entry(const void *a, const void *b)
{
        return strcmp(((const struct psc_config_entry *)a)->key, ((const struct psc_config_entry *)b)->key);
}

static int parse_rules(json_t *arr, struct psc_policy *p, char *err, size_t err_len)
{
        static const char *const known[] = {"key", "from", "factor", "min", "max", NULL};
        if (!json_is_array(arr)) {
                ERR("broker_config_rules: must be an array");
                return -EINVAL;
        }
        size_t n = json_array_size(arr);
        p->rules = n ? xcalloc(n, sizeof(*p->rules)) : NULL;
        for (size_t i = 0; i < n; i++) {
                char where[64];
                snprintf(where, sizeof(where), "broker_config_rules[%zu]", i);
                json_t *rj = json_array_get(arr, i);
                struct policy_rule *r = &p->rules[p->nrules++];
                char *from = NULL, kw[96];
                int rc = 0;
                if (pj_fields(rj, where, known, err, err_len) < 0 ||
                    pj_string(rj, where, "key", true, &r->key, err, err_len) < 0 ||
                    check_key(pj_join(kw, sizeof(kw), where, "key"), r->key, err, err_len) < 0 ||
                    pj_string(rj, where, "from", true, &from, err, err_len) < 0 ||
                    pj_number(rj, where, "factor", true, -1e12, 1e12, &r->factor, err, err_len) < 0 ||
                    pj_integer(rj, where, "min", true, INT64_MIN, INT64_MAX, &r->min, err, err_len) < 0 ||
                    pj_integer(rj, where, "max", true, INT64_MIN, INT64_MAX, &r->max, err, err_len) < 0)
                        rc = -EINVAL;
                if (rc == 0) {
                        rc = -EINVAL;
                        for (int v = 0; var_names[v]; v++)
                                if (strcmp(var_names[v], from) == 0) {
                                        r->from = (enum rule_var)v;
                                        rc = 0;
                                }
                        if (rc < 0)
                                ERR("%s.from: \"%s\" is not one of ingress_mbps, egress_mbps, partitions, "
                                    "tenants, "
                                    "broker_count, disk_bytes, disk_bytes_per_partition",
                                    where, from);
                }
                free(from);
                if (rc < 0)
                        return rc;
                if (r->min > r->max) {
                        ERR("%s: min is more than max", where);
                        return -EINVAL;
                }
                for (int j = 0; j < p->nconfig; j++)
                        if (strcmp(p->config[j].key, r->key) == 0) {
                                ERR("%s.key: \"%s\" is also in broker_config (a key has one source)", where,
                                    r->key);
                                return -EINVAL;
                        }
                for (int j = 0; j < p->nrules - 1; j++)
                        if (strcmp(p->rules[j].key, r->key) == 0) {
                                ERR("%s.key: \"%s\" has two rules", where, r->key);
                                return -EINVAL;
                        }
        }
        return 0;
}

int psc_policy_parse(const char *json, size_t len, struct psc_policy **out, char *err, size_t err_len)
{
        static const char *const known[] = {"policy_version", "product",       "broker_version",
                                            "types",          "broker_config", "broker_config_rules",
                                            "listeners",      "lb_bootstrap",  NULL};
        static const char *const listeners_known[] = {"client_security_protocol", "sasl_mechanisms",
                                                      "internal_security_protocol", NULL};
        *out = NULL;
        json_t *root = pj_load(json, len, "policy", err, err_len);
        if (!root)
                return -EINVAL;
        struct psc_policy *p = xcalloc(1, sizeof(*p));
        if (pj_fields(root, "", known, err, err_len) < 0 ||
            pj_string(root, "", "policy_version", true, &p->version, err, err_len) < 0 ||
            pj_string(root, "", "product", true, &p->product, err, err_len) < 0 ||
            pj_string(root, "", "broker_version", true, &p->broker_version, err, err_len) < 0 ||
            pj_bool(root, "", "lb_bootstrap", true, &p->lb_bootstrap, err, err_len) < 0)
                goto bad;
        json_t *types = json_object_get(root, "types");
        static const char *const types_known[] = {"multi_tenant", "dedicated", NULL};
        if (!types) {
                ERR("types: missing (required: multi_tenant and dedicated)");
                goto bad;
        }
        if (pj_fields(types, "types", types_known, err, err_len) < 0)
                goto bad;
        for (int t = 0; t < 2; t++) {
                char where[64];
                snprintf(where, sizeof(where), "types.%s", type_names[t]);
                json_t *tj = json_object_get(types, type_names[t]);
                if (!tj) {
                        ERR("%s: missing (required)", where);
                        goto bad;
                }
                if (parse_type(tj, where, &p->types[t], err, err_len) < 0)
                        goto bad;
        }
        json_t *config = json_object_get(root, "broker_config");
        if (config) {
                if (!json_is_object(config)) {
                        ERR("broker_config: must be an object of server.properties keys to string values");
                        goto bad;
                }
                p->config = xcalloc(json_object_size(config) + 1, sizeof(*p->config));
                const char *key;
                json_t *value;
                json_object_foreach(config, key, value)
                {
                        char where[160];
                        snprintf(where, sizeof(where), "broker_config.%s", key);
                        if (check_key("broker_config", key, err, err_len) < 0)
                                goto bad;
                        if (!json_is_string(value) ||
                            strlen(json_string_value(value)) != json_string_length(value) ||
                            strpbrk(json_string_value(value), "\r\n")) {
                                ERR("%s: must be a string (a server.properties value on one line)", where);
                                goto bad;
                        }
                        p->config[p->nconfig].key = xstrdup(key);
                        p->config[p->nconfig++].value = xstrdup(json_string_value(value));
                }
                qsort(p->config, (size_t)p->nconfig, sizeof(*p->config), cmp_entry);
        }
        json_t *rules = json_object_get(root, "broker_config_rules");
        if (rules && parse_rules(rules, p, err, err_len) < 0)
                goto bad;
        json_t *listeners = json_object_get(root, "listeners");
        if (!listeners) {
                ERR("listeners: missing (required)");
                goto bad;
        }
        if (pj_fields(listeners, "listeners", listeners_known, err, err_len) < 0 ||
            pj_string(listeners, "listeners", "client_security_protocol", true, &p->client_security_protocol,
                      err, err_len) < 0 ||
            pj_string(listeners, "listeners", "sasl_mechanisms", true, &p->sasl_mechanisms, err, err_len) <
                0 ||
            pj_string(listeners, "listeners", "internal_security_protocol", true,
                      &p->internal_security_protocol, err, err_len) < 0)
                goto bad;
        if (strcmp(p->client_security_protocol, "SASL_PLAINTEXT") != 0 &&
            strcmp(p->client_security_protocol, "SASL_SSL") != 0) {
                ERR("listeners.client_security_protocol: \"%s\" is not SASL_PLAINTEXT or SASL_SSL (tenants "
                    "authenticate with SASL)",
                    p->client_security_protocol);
                goto bad;
        }
        if (strcmp(p->internal_security_protocol, "PLAINTEXT") != 0 &&
            strcmp(p->internal_security_protocol, "SSL") != 0) {
                ERR("listeners.internal_security_protocol: \"%s\" is not PLAINTEXT or SSL",
                    p->internal_security_protocol);
                goto bad;
        }
        json_decref(root);
        *out = p;
        return 0;
bad:
        json_decref(root);
        psc_policy_free(p);
        return -EINVAL;
}

int psc_policy_load(const char *path, struct psc_policy **out, char *err, size_t err_len)
{
        *out = NULL;
        FILE *f = fopen(path, "rb");
        if (!f) {
                int e = errno;
                ERR("%s: %s", path, strerror(e));
                return -e;
        }
        char *text = NULL;
        size_t len = 0, cap = 0;
        for (;;) {
                if (len == cap) {
                        cap = cap ? cap * 2 : 4096;
                        text = xrealloc(text, cap);
                }
                size_t got = fread(text + len, 1, cap - len, f);
                len += got;
                if (got == 0)
                        break;
        }
        int rc = ferror(f) ? -EIO : 0;
        fclose(f);
        if (rc < 0) {
                ERR("%s: read error", path);
                free(text);
                return rc;
        }
        char inner[480] = "";
        rc = psc_policy_parse(text, len, out, inner, sizeof(inner));
        free(text);
        if (rc < 0)
                ERR("%s: %s", path, inner);
        return rc;
}

static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static struct psc_policy *default_policy;

static void default_parse(void)
{
        char err[256];
        int rc = psc_policy_parse(psc_policy_default_json, strlen(psc_policy_default_json), &default_policy,
                                  err, sizeof(err));
        if (rc < 0)
                fprintf(stderr, "built-in policy (src/psc/policy_default.json): %s\n", err);
        ASSERT(rc == 0); /* the build is broken: the test suite catches this first */
}

const struct psc_policy *psc_policy_default(void)
{
        pthread_once(&default_once, default_parse);
        return default_policy;
}

/* ---- completion --------------------------------------------------------------------- */

static void set_config(struct psc *full, const char *key, const char *value)
{
        struct psc_config_entry *e = &full->broker_config[full->nbroker_config++];
        e->key = xstrdup(key);
        e->value = xstrdup(value);
}

static void clear_completion(struct psc *psc)
{
        free(psc->policy_version);
        free(psc->broker_version);
        free(psc->disk_type);
        for (int i = 0; i < psc->nbroker_config; i++) {
                free(psc->broker_config[i].key);
                free(psc->broker_config[i].value);
        }
        free(psc->broker_config);
        free(psc->client_security_protocol);
        free(psc->sasl_mechanisms);
        free(psc->internal_security_protocol);
        psc->policy_version = psc->broker_version = psc->disk_type = NULL;
        psc->broker_config = NULL;
        psc->nbroker_config = 0;
        psc->client_security_protocol = psc->sasl_mechanisms = psc->internal_security_protocol = NULL;
        psc->broker_count = 0;
        psc->disk_bytes = 0;
        psc->lb_bootstrap = false;
}

/* Whether <partial>'s sizing fits one PKC of its type; else -EINVAL naming the field. */
static int check_sizing(const struct psc *partial, const struct psc_policy *policy,
                        const struct policy_type *t, char *err, size_t err_len)
{
        const char *type = type_names[partial->type];
        const struct psc_capacity *c = &t->capacity;
        if (partial->ingress_mbps > c->ingress_mbps) {
                ERR("ingress_mbps: %g MB/s is more than one %s PKC takes (%g MB/s under policy %s)",
                    partial->ingress_mbps, type, c->ingress_mbps, policy->version);
                return -EINVAL;
        }
        if (partial->egress_mbps > c->egress_mbps) {
                ERR("egress_mbps: %g MB/s is more than one %s PKC takes (%g MB/s under policy %s)",
                    partial->egress_mbps, type, c->egress_mbps, policy->version);
                return -EINVAL;
        }
        if (partial->partitions > c->partitions) {
                ERR("partitions: %" PRId64 " is more than one %s PKC takes (%" PRId64 " under policy %s)",
                    partial->partitions, type, c->partitions, policy->version);
                return -EINVAL;
        }
        if (partial->ntenants > c->tenants) {
                ERR("tenants: %d is more than one %s PKC hosts (%" PRId64 " under policy %s)",
                    partial->ntenants, type, c->tenants, policy->version);
                return -EINVAL;
        }
        return 0;
}

int psc_complete(const struct psc *partial, const struct psc_policy *policy, struct psc *full, char *err,
                 size_t err_len)
{
        psc_init(full);
        if (!partial->product || strcmp(partial->product, policy->product) != 0) {
                ERR("product: \"%s\" is not completed by policy %s (it completes \"%s\")",
                    partial->product ? partial->product : "(missing)", policy->version, policy->product);
                return -EINVAL;
        }
        const struct policy_type *t =
            &policy->types[partial->type == PSC_DEDICATED ? PSC_DEDICATED : PSC_MULTI_TENANT];
        /* A deletion is never refused: a policy that shrank since the PKC was made must
         * not keep it alive. */
        if (!partial->deleted && check_sizing(partial, policy, t, err, err_len) < 0)
                return -EINVAL;
        psc_copy(full, partial);
        clear_completion(full);

        /* Sizing basis: a multi-tenant PKC is built for its type's capacity, so placing
         * one more tenant never resizes it nor rewrites its configuration; a dedicated
         * one for what it was asked. */
        double ingress = t->capacity.ingress_mbps, egress = t->capacity.egress_mbps;
        int64_t partitions = t->capacity.partitions;
        if (t->size_from_request) {
                ingress = partial->ingress_mbps;
                egress = partial->egress_mbps;
                partitions = partial->partitions > 0 ? partial->partitions : 1;
        }
        int64_t per_broker = (partitions + t->broker_count - 1) / t->broker_count;
        int64_t disk = per_broker * t->bytes_per_partition;
        disk = MAX(disk, t->min_bytes);
        disk = MIN(disk, t->max_bytes);

        full->policy_version = xstrdup(policy->version);
        full->broker_version = xstrdup(policy->broker_version);
        full->broker_count = t->broker_count;
        full->disk_type = xstrdup(t->disk_type);
        full->disk_bytes = disk;
        full->client_security_protocol = xstrdup(policy->client_security_protocol);
        full->sasl_mechanisms = xstrdup(policy->sasl_mechanisms);
        full->internal_security_protocol = xstrdup(policy->internal_security_protocol);
        full->lb_bootstrap = policy->lb_bootstrap;

        double vars[] = {
            [VAR_INGRESS_MBPS] = ingress,
            [VAR_EGRESS_MBPS] = egress,
            [VAR_PARTITIONS] = (double)partitions,
            [VAR_TENANTS] = (double)t->capacity.tenants,
            [VAR_BROKER_COUNT] = t->broker_count,
            [VAR_DISK_BYTES] = (double)disk,
            [VAR_DISK_BYTES_PER_PARTITION] = (double)(disk / MAX(per_broker, 1)),
        };
        full->broker_config =
            xcalloc((size_t)(policy->nconfig + policy->nrules) + 1, sizeof(*full->broker_config));
        for (int i = 0; i < policy->nconfig; i++)
                set_config(full, policy->config[i].key, policy->config[i].value);
        for (int i = 0; i < policy->nrules; i++) {
                const struct policy_rule *r = &policy->rules[i];
                double v = round(r->factor * vars[r->from]);
                int64_t value = v < (double)r->min ? r->min : v > (double)r->max ? r->max : (int64_t)v;
                char text[32];
                snprintf(text, sizeof(text), "%" PRId64, value);
                set_config(full, r->key, text);
        }
        qsort(full->broker_config, (size_t)full->nbroker_config, sizeof(*full->broker_config), cmp_entry);
        return 0;
}
