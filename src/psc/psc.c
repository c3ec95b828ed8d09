/* The PSC document: init/copy/free, strict JSON parsing that names the path of what it
 * rejects, deterministic JSON emission, full-PSC validation, the brokers' tenants file and
 * the desired-state topic name. See psc.h and docs/psc.md. */
#include "psc/psc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "psc/psc_json.h"

#define ERR(...) ((err && err_len) ? (void)snprintf(err, err_len, __VA_ARGS__) : (void)0)

/* SCRAM iterations accepted, as the broker's tenants file accepts them. */
#define PSC_SCRAM_MIN_ITERATIONS 4096
#define PSC_SCRAM_MAX_ITERATIONS 10000000

static void quotas_init(struct psc_quotas *q)
{
        q->produce_bytes_per_sec = -1;
        q->fetch_bytes_per_sec = -1;
        q->burst_seconds = -1;
        q->requests_per_sec = -1;
        q->max_connections = -1;
        q->connections_per_sec = -1;
        q->max_partitions = -1;
}

void psc_init(struct psc *psc)
{
        memset(psc, 0, sizeof(*psc));
}

static void scram_deinit(struct psc_scram *s)
{
        free(s->salt);
        free(s->stored_key);
        free(s->server_key);
        memset(s, 0, sizeof(*s));
}

static void tenant_deinit(struct psc_tenant *t)
{
        free(t->id);
        for (int i = 0; i < t->napi_keys; i++) {
                free(t->api_keys[i].key);
                scram_deinit(&t->api_keys[i].sha256);
                scram_deinit(&t->api_keys[i].sha512);
        }
        free(t->api_keys);
        memset(t, 0, sizeof(*t));
}

void psc_deinit(struct psc *psc)
{
        free(psc->id);
        free(psc->product);
        free(psc->satellite);
        free(psc->region);
        free(psc->revision);
        for (int i = 0; i < psc->ntenants; i++)
                tenant_deinit(&psc->tenants[i]);
        free(psc->tenants);
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
        memset(psc, 0, sizeof(*psc));
}

static char *dup_or_null(const char *s)
{
        return s ? xstrdup(s) : NULL;
}

static void scram_copy(struct psc_scram *dst, const struct psc_scram *src)
{
        dst->salt = dup_or_null(src->salt);
        dst->iterations = src->iterations;
        dst->stored_key = dup_or_null(src->stored_key);
        dst->server_key = dup_or_null(src->server_key);
}

void psc_copy(struct psc *dst, const struct psc *src)
{
        *dst = *src; /* scalars; every pointer is replaced below */
        dst->id = dup_or_null(src->id);
        dst->product = dup_or_null(src->product);
        dst->satellite = dup_or_null(src->satellite);
        dst->region = dup_or_null(src->region);
        dst->revision = dup_or_null(src->revision);
        dst->tenants = src->ntenants ? xcalloc((size_t)src->ntenants, sizeof(*dst->tenants)) : NULL;
        for (int i = 0; i < src->ntenants; i++) {
                const struct psc_tenant *st = &src->tenants[i];
                struct psc_tenant *dt = &dst->tenants[i];
                dt->id = dup_or_null(st->id);
                dt->quotas = st->quotas;
                dt->napi_keys = st->napi_keys;
                dt->api_keys = st->napi_keys ? xcalloc((size_t)st->napi_keys, sizeof(*dt->api_keys)) : NULL;
                for (int k = 0; k < st->napi_keys; k++) {
                        dt->api_keys[k].key = dup_or_null(st->api_keys[k].key);
                        dt->api_keys[k].has_sha256 = st->api_keys[k].has_sha256;
                        dt->api_keys[k].has_sha512 = st->api_keys[k].has_sha512;
                        scram_copy(&dt->api_keys[k].sha256, &st->api_keys[k].sha256);
                        scram_copy(&dt->api_keys[k].sha512, &st->api_keys[k].sha512);
                }
        }
        dst->policy_version = dup_or_null(src->policy_version);
        dst->broker_version = dup_or_null(src->broker_version);
        dst->disk_type = dup_or_null(src->disk_type);
        dst->broker_config =
            src->nbroker_config ? xcalloc((size_t)src->nbroker_config, sizeof(*dst->broker_config)) : NULL;
        for (int i = 0; i < src->nbroker_config; i++) {
                dst->broker_config[i].key = dup_or_null(src->broker_config[i].key);
                dst->broker_config[i].value = dup_or_null(src->broker_config[i].value);
        }
        dst->client_security_protocol = dup_or_null(src->client_security_protocol);
        dst->sasl_mechanisms = dup_or_null(src->sasl_mechanisms);
        dst->internal_security_protocol = dup_or_null(src->internal_security_protocol);
}

/* ---- parsing -------------------------------------------------------------------- */

static const char *const top_fields[] = {
    "api_version",
    "kind",
    "id",
    "product",
    "satellite",
    "region",
    "generation",
    "revision",
    "deleted",
    "type",
    "ingress_mbps",
    "egress_mbps",
    "partitions",
    "tenants",
    "policy_version",
    "broker_version",
    "broker_count",
    "disk_type",
    "disk_bytes",
    "broker_config",
    "client_security_protocol",
    "sasl_mechanisms",
    "internal_security_protocol",
    "lb_bootstrap",
    NULL,
};

static bool valid_id(const char *id)
{
        if (strlen(id) > 64)
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '-'))
                        return false;
        return true;
}

/* Standard base64 with padding, at least one byte. */
static bool valid_base64(const char *s)
{
        size_t n = strlen(s), pad = 0;
        if (n == 0 || n % 4)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c == '=') {
                        pad++;
                        continue;
                }
                if (pad || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                             c == '+' || c == '/'))
                        return false;
        }
        return pad <= 2;
}

static int parse_scram(json_t *obj, const char *path, struct psc_scram *out, char *err, size_t err_len)
{
        static const char *const known[] = {"salt", "iterations", "stored_key", "server_key", NULL};
        if (pj_fields(obj, path, known, err, err_len) < 0)
                return -EINVAL;
        int64_t it = 0;
        if (pj_string(obj, path, "salt", true, &out->salt, err, err_len) < 0 ||
            pj_integer(obj, path, "iterations", true, PSC_SCRAM_MIN_ITERATIONS, PSC_SCRAM_MAX_ITERATIONS, &it,
                       err, err_len) < 0 ||
            pj_string(obj, path, "stored_key", true, &out->stored_key, err, err_len) < 0 ||
            pj_string(obj, path, "server_key", true, &out->server_key, err, err_len) < 0)
                return -EINVAL;
        out->iterations = (int)it;
        const char *names[] = {"salt", "stored_key", "server_key"};
        const char *values[] = {out->salt, out->stored_key, out->server_key};
        for (int i = 0; i < 3; i++)
                if (!valid_base64(values[i])) {
                        ERR("%s.%s: must be base64 (A-Z a-z 0-9 + /, padded with =)", path, names[i]);
                        return -EINVAL;
                }
        return 0;
}

static int parse_quota(json_t *q, const char *path, const char *name, bool integer, double *out, char *err,
                       size_t err_len)
{
        char where[256];
        json_t *v = json_object_get(q, name);
        if (!v || json_is_null(v))
                return 0; /* unlimited */
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1e15 ||
            (integer && !json_is_integer(v))) {
                ERR("%s: must be a non-negative %s (or left out for no limit)",
                    pj_join(where, sizeof(where), path, name), integer ? "integer" : "number");
                return -EINVAL;
        }
        *out = json_number_value(v);
        return 0;
}

static int parse_quotas(json_t *q, const char *path, struct psc_quotas *out, char *err, size_t err_len)
{
        static const char *const known[] = {
            "produce_bytes_per_sec", "fetch_bytes_per_sec", "burst_seconds",  "requests_per_sec",
            "max_connections",       "connections_per_sec", "max_partitions", NULL};
        if (pj_fields(q, path, known, err, err_len) < 0)
                return -EINVAL;
        double max_conns = -1, max_parts = -1;
        if (parse_quota(q, path, "produce_bytes_per_sec", false, &out->produce_bytes_per_sec, err, err_len) <
                0 ||
            parse_quota(q, path, "fetch_bytes_per_sec", false, &out->fetch_bytes_per_sec, err, err_len) < 0 ||
            parse_quota(q, path, "burst_seconds", false, &out->burst_seconds, err, err_len) < 0 ||
            parse_quota(q, path, "requests_per_sec", false, &out->requests_per_sec, err, err_len) < 0 ||
            parse_quota(q, path, "max_connections", true, &max_conns, err, err_len) < 0 ||
            parse_quota(q, path, "connections_per_sec", false, &out->connections_per_sec, err, err_len) < 0 ||
            parse_quota(q, path, "max_partitions", true, &max_parts, err, err_len) < 0)
                return -EINVAL;
        if (out->burst_seconds >= 0 && (out->burst_seconds < 0.01 || out->burst_seconds > 3600)) {
                ERR("%s.burst_seconds: must be between 0.01 and 3600 (or left out for 1)", path);
                return -EINVAL;
        }
        out->max_connections = (int64_t)max_conns;
        out->max_partitions = (int64_t)max_parts;
        return 0;
}

static int parse_api_key(json_t *kj, const char *path, struct psc_api_key *key, char *err, size_t err_len)
{
        static const char *const known[] = {"key", "scram_sha_256", "scram_sha_512", NULL};
        if (pj_fields(kj, path, known, err, err_len) < 0 ||
            pj_string(kj, path, "key", true, &key->key, err, err_len) < 0)
                return -EINVAL;
        if (strlen(key->key) > 255) {
                ERR("%s.key: must be 1 to 255 characters", path);
                return -EINVAL;
        }
        char where[256];
        json_t *c256 = json_object_get(kj, "scram_sha_256"), *c512 = json_object_get(kj, "scram_sha_512");
        if (c256 && !json_is_null(c256)) {
                if (parse_scram(c256, pj_join(where, sizeof(where), path, "scram_sha_256"), &key->sha256, err,
                                err_len) < 0)
                        return -EINVAL;
                key->has_sha256 = true;
        }
        if (c512 && !json_is_null(c512)) {
                if (parse_scram(c512, pj_join(where, sizeof(where), path, "scram_sha_512"), &key->sha512, err,
                                err_len) < 0)
                        return -EINVAL;
                key->has_sha512 = true;
        }
        if (!key->has_sha256 && !key->has_sha512) {
                ERR("%s: needs scram_sha_256 or scram_sha_512 (or both)", path);
                return -EINVAL;
        }
        return 0;
}

static int parse_tenant(json_t *tj, const char *path, struct psc_tenant *t, char *err, size_t err_len)
{
        static const char *const known[] = {"id", "quotas", "api_keys", NULL};
        quotas_init(&t->quotas);
        if (pj_fields(tj, path, known, err, err_len) < 0 ||
            pj_string(tj, path, "id", true, &t->id, err, err_len) < 0)
                return -EINVAL;
        if (!valid_id(t->id)) {
                ERR("%s.id: \"%s\" must be 1 to 64 of a-z A-Z 0-9 -", path, t->id);
                return -EINVAL;
        }
        char where[256];
        json_t *q = json_object_get(tj, "quotas");
        if (q && !json_is_null(q) &&
            parse_quotas(q, pj_join(where, sizeof(where), path, "quotas"), &t->quotas, err, err_len) < 0)
                return -EINVAL;
        json_t *keys = json_object_get(tj, "api_keys");
        if (!keys || json_is_null(keys))
                return 0;
        if (!json_is_array(keys)) {
                ERR("%s.api_keys: must be an array", path);
                return -EINVAL;
        }
        size_t n = json_array_size(keys);
        t->api_keys = n ? xcalloc(n, sizeof(*t->api_keys)) : NULL;
        for (size_t k = 0; k < n; k++) {
                snprintf(where, sizeof(where), "%s.api_keys[%zu]", path, k);
                t->napi_keys++;
                if (parse_api_key(json_array_get(keys, k), where, &t->api_keys[k], err, err_len) < 0)
                        return -EINVAL;
        }
        return 0;
}

static int parse_tenants(json_t *arr, struct psc *out, char *err, size_t err_len)
{
        if (!json_is_array(arr)) {
                ERR("tenants: must be an array");
                return -EINVAL;
        }
        size_t n = json_array_size(arr);
        out->tenants = n ? xcalloc(n, sizeof(*out->tenants)) : NULL;
        for (size_t i = 0; i < n; i++) {
                char where[64];
                snprintf(where, sizeof(where), "tenants[%zu]", i);
                out->ntenants++;
                if (parse_tenant(json_array_get(arr, i), where, &out->tenants[i], err, err_len) < 0)
                        return -EINVAL;
        }
        /* A tenant id and an API key each name one thing on the brokers. */
        for (int i = 0; i < out->ntenants; i++) {
                for (int j = 0; j < i; j++)
                        if (strcmp(out->tenants[i].id, out->tenants[j].id) == 0) {
                                ERR("tenants[%d].id: \"%s\" appears twice (also tenants[%d])", i,
                                    out->tenants[i].id, j);
                                return -EINVAL;
                        }
                for (int k = 0; k < out->tenants[i].napi_keys; k++)
                        for (int j = 0; j <= i; j++)
                                for (int l = 0; l < out->tenants[j].napi_keys && (j < i || l < k); l++)
                                        if (strcmp(out->tenants[i].api_keys[k].key,
                                                   out->tenants[j].api_keys[l].key) == 0) {
                                                ERR("tenants[%d].api_keys[%d].key: \"%s\" is used twice "
                                                    "(also "
                                                    "tenants[%d].api_keys[%d])",
                                                    i, k, out->tenants[i].api_keys[k].key, j, l);
                                                return -EINVAL;
                                        }
        }
        return 0;
}

static int parse_broker_config(json_t *obj, struct psc *out, char *err, size_t err_len)
{
        if (!json_is_object(obj)) {
                ERR("broker_config: must be an object of server.properties keys to string values");
                return -EINVAL;
        }
        size_t n = json_object_size(obj);
        out->broker_config = n ? xcalloc(n, sizeof(*out->broker_config)) : NULL;
        const char *key;
        json_t *value;
        json_object_foreach(obj, key, value)
        {
                if (!json_is_string(value) || strlen(json_string_value(value)) != json_string_length(value) ||
                    strchr(json_string_value(value), '\n')) {
                        ERR("broker_config.%s: must be a string (a server.properties value on one line)",
                            key);
                        return -EINVAL;
                }
                if (!key[0] || strpbrk(key, "=: \t\n#!")) {
                        ERR("broker_config: \"%s\" is not a server.properties key", key);
                        return -EINVAL;
                }
                struct psc_config_entry *e = &out->broker_config[out->nbroker_config++];
                e->key = xstrdup(key);
                e->value = xstrdup(json_string_value(value));
        }
        return 0;
}

int psc_parse(const char *json, size_t len, struct psc *out, char *err, size_t err_len)
{
        psc_init(out);
        json_t *root = pj_load(json, len, "PSC", err, err_len);
        if (!root)
                return -EINVAL;
        int rc = -EINVAL;
        char *api_version = NULL, *kind = NULL, *type = NULL;
        int64_t broker_count = 0;
        if (pj_fields(root, "", top_fields, err, err_len) < 0 ||
            pj_string(root, "", "api_version", true, &api_version, err, err_len) < 0 ||
            pj_string(root, "", "kind", true, &kind, err, err_len) < 0)
                goto out;
        if (strcmp(api_version, PSC_API_VERSION) != 0) {
                ERR("api_version: \"%s\" is not served (this build reads \"%s\")", api_version,
                    PSC_API_VERSION);
                goto out;
        }
        if (strcmp(kind, PSC_KIND) != 0) {
                ERR("kind: \"%s\" is not \"%s\"", kind, PSC_KIND);
                goto out;
        }
        if (pj_string(root, "", "id", true, &out->id, err, err_len) < 0 ||
            pj_string(root, "", "product", false, &out->product, err, err_len) < 0 ||
            pj_string(root, "", "satellite", false, &out->satellite, err, err_len) < 0 ||
            pj_string(root, "", "region", false, &out->region, err, err_len) < 0 ||
            pj_integer(root, "", "generation", true, 1, INT64_MAX, &out->generation, err, err_len) < 0 ||
            pj_string(root, "", "revision", false, &out->revision, err, err_len) < 0 ||
            pj_bool(root, "", "deleted", false, &out->deleted, err, err_len) < 0 ||
            pj_string(root, "", "type", false, &type, err, err_len) < 0)
                goto out;
        if (!valid_id(out->id)) {
                ERR("id: \"%s\" must be 1 to 64 of a-z A-Z 0-9 - (e.g. pkc-abc123)", out->id);
                goto out;
        }
        if (type && strcmp(type, "multi_tenant") == 0)
                out->type = PSC_MULTI_TENANT;
        else if (type && strcmp(type, "dedicated") == 0)
                out->type = PSC_DEDICATED;
        else if (type) {
                ERR("type: \"%s\" is not multi_tenant or dedicated", type);
                goto out;
        }
        if (pj_number(root, "", "ingress_mbps", false, 0, 1e9, &out->ingress_mbps, err, err_len) < 0 ||
            pj_number(root, "", "egress_mbps", false, 0, 1e9, &out->egress_mbps, err, err_len) < 0 ||
            pj_integer(root, "", "partitions", false, 0, INT32_MAX, &out->partitions, err, err_len) < 0)
                goto out;
        json_t *tenants = json_object_get(root, "tenants");
        if (tenants && !json_is_null(tenants) && parse_tenants(tenants, out, err, err_len) < 0)
                goto out;
        if (pj_string(root, "", "policy_version", false, &out->policy_version, err, err_len) < 0 ||
            pj_string(root, "", "broker_version", false, &out->broker_version, err, err_len) < 0 ||
            pj_integer(root, "", "broker_count", false, 1, 1000, &broker_count, err, err_len) < 0 ||
            pj_string(root, "", "disk_type", false, &out->disk_type, err, err_len) < 0 ||
            pj_integer(root, "", "disk_bytes", false, 1, INT64_MAX, &out->disk_bytes, err, err_len) < 0 ||
            pj_string(root, "", "client_security_protocol", false, &out->client_security_protocol, err,
                      err_len) < 0 ||
            pj_string(root, "", "sasl_mechanisms", false, &out->sasl_mechanisms, err, err_len) < 0 ||
            pj_string(root, "", "internal_security_protocol", false, &out->internal_security_protocol, err,
                      err_len) < 0 ||
            pj_bool(root, "", "lb_bootstrap", false, &out->lb_bootstrap, err, err_len) < 0)
                goto out;
        out->broker_count = (int)broker_count;
        json_t *config = json_object_get(root, "broker_config");
        if (config && !json_is_null(config) && parse_broker_config(config, out, err, err_len) < 0)
                goto out;
        rc = 0;
out:
        free(api_version);
        free(kind);
        free(type);
        json_decref(root);
        if (rc < 0)
                psc_deinit(out);
        return rc;
}

/* ---- emission ------------------------------------------------------------------- */

static json_t *scram_json(const struct psc_scram *s)
{
        json_t *o = json_object();
        pj_set_str(o, "salt", s->salt);
        pj_set(o, "iterations", json_integer(s->iterations));
        pj_set_str(o, "stored_key", s->stored_key);
        pj_set_str(o, "server_key", s->server_key);
        return o;
}

/* Quotas with the unlimited ones (negative) left out. */
static json_t *quotas_json(const struct psc_quotas *q)
{
        json_t *o = json_object();
        if (q->produce_bytes_per_sec >= 0)
                pj_set(o, "produce_bytes_per_sec", pj_num(q->produce_bytes_per_sec));
        if (q->fetch_bytes_per_sec >= 0)
                pj_set(o, "fetch_bytes_per_sec", pj_num(q->fetch_bytes_per_sec));
        if (q->burst_seconds >= 0)
                pj_set(o, "burst_seconds", pj_num(q->burst_seconds));
        if (q->requests_per_sec >= 0)
                pj_set(o, "requests_per_sec", pj_num(q->requests_per_sec));
        if (q->max_connections >= 0)
                pj_set(o, "max_connections", json_integer(q->max_connections));
        if (q->connections_per_sec >= 0)
                pj_set(o, "connections_per_sec", pj_num(q->connections_per_sec));
        if (q->max_partitions >= 0)
                pj_set(o, "max_partitions", json_integer(q->max_partitions));
        return o;
}

static json_t *tenant_json(const struct psc_tenant *t)
{
        json_t *o = json_object();
        pj_set_str(o, "id", t->id);
        pj_set(o, "quotas", quotas_json(&t->quotas));
        json_t *keys = json_array();
        for (int k = 0; k < t->napi_keys; k++) {
                const struct psc_api_key *key = &t->api_keys[k];
                json_t *ko = json_object();
                pj_set_str(ko, "key", key->key);
                if (key->has_sha256)
                        pj_set(ko, "scram_sha_256", scram_json(&key->sha256));
                if (key->has_sha512)
                        pj_set(ko, "scram_sha_512", scram_json(&key->sha512));
                json_array_append_new(keys, ko);
        }
        pj_set(o, "api_keys", keys);
        return o;
}

char *psc_to_json(const struct psc *psc)
{
        json_t *o = json_object();
        pj_set_str(o, "api_version", PSC_API_VERSION);
        pj_set_str(o, "kind", PSC_KIND);
        pj_set_str(o, "id", psc->id);
        pj_set_str(o, "product", psc->product);
        pj_set_str(o, "satellite", psc->satellite);
        pj_set_str(o, "region", psc->region);
        pj_set(o, "generation", json_integer(psc->generation));
        pj_set_str(o, "revision", psc->revision);
        pj_set(o, "deleted", json_boolean(psc->deleted));
        pj_set_str(o, "type", psc->type == PSC_DEDICATED ? "dedicated" : "multi_tenant");
        pj_set(o, "ingress_mbps", pj_num(psc->ingress_mbps));
        pj_set(o, "egress_mbps", pj_num(psc->egress_mbps));
        pj_set(o, "partitions", json_integer(psc->partitions));
        json_t *tenants = json_array();
        for (int i = 0; i < psc->ntenants; i++)
                json_array_append_new(tenants, tenant_json(&psc->tenants[i]));
        pj_set(o, "tenants", tenants);
        /* The completion part: each field only once it is set, so a partial PSC prints
         * as one. */
        pj_set_str(o, "policy_version", psc->policy_version);
        pj_set_str(o, "broker_version", psc->broker_version);
        if (psc->broker_count > 0)
                pj_set(o, "broker_count", json_integer(psc->broker_count));
        pj_set_str(o, "disk_type", psc->disk_type);
        if (psc->disk_bytes > 0)
                pj_set(o, "disk_bytes", json_integer(psc->disk_bytes));
        if (psc->nbroker_config > 0) {
                json_t *config = json_object();
                for (int i = 0; i < psc->nbroker_config; i++)
                        pj_set_str(config, psc->broker_config[i].key, psc->broker_config[i].value);
                pj_set(o, "broker_config", config);
        }
        pj_set_str(o, "client_security_protocol", psc->client_security_protocol);
        pj_set_str(o, "sasl_mechanisms", psc->sasl_mechanisms);
        pj_set_str(o, "internal_security_protocol", psc->internal_security_protocol);
        if (psc->policy_version || psc->lb_bootstrap)
                pj_set(o, "lb_bootstrap", json_boolean(psc->lb_bootstrap));
        return pj_dump(o);
}

/* ---- full validation ------------------------------------------------------------- */

int psc_validate_full(const struct psc *psc, char *err, size_t err_len)
{
        const struct {
                const char *name;
                const char *value;
        } strings[] = {
            {"id", psc->id},
            {"product", psc->product},
            {"satellite", psc->satellite},
            {"region", psc->region},
            {"revision", psc->revision},
            {"policy_version", psc->policy_version},
            {"broker_version", psc->broker_version},
            {"disk_type", psc->disk_type},
            {"client_security_protocol", psc->client_security_protocol},
            {"sasl_mechanisms", psc->sasl_mechanisms},
            {"internal_security_protocol", psc->internal_security_protocol},
        };
        for (size_t i = 0; i < ARRAY_LEN(strings); i++)
                if (!strings[i].value || !strings[i].value[0]) {
                        ERR("%s: missing (a full PSC needs it%s)", strings[i].name,
                            i >= 5 ? "; psc_complete() fills it" : "");
                        return -EINVAL;
                }
        if (psc->generation < 1) {
                ERR("generation: must be 1 or more");
                return -EINVAL;
        }
        if (psc->broker_count < 1) {
                ERR("broker_count: must be 1 or more (psc_complete() fills it)");
                return -EINVAL;
        }
        if (psc->disk_bytes < 1) {
                ERR("disk_bytes: must be 1 or more (psc_complete() fills it)");
                return -EINVAL;
        }
        if (strcmp(psc->client_security_protocol, "SASL_PLAINTEXT") != 0 &&
            strcmp(psc->client_security_protocol, "SASL_SSL") != 0) {
                ERR("client_security_protocol: \"%s\" is not SASL_PLAINTEXT or SASL_SSL (tenants "
                    "authenticate with "
                    "SASL)",
                    psc->client_security_protocol);
                return -EINVAL;
        }
        for (int i = 0; i < psc->nbroker_config; i++)
                for (int j = 0; j < i; j++)
                        if (strcmp(psc->broker_config[i].key, psc->broker_config[j].key) == 0) {
                                ERR("broker_config.%s: appears twice", psc->broker_config[i].key);
                                return -EINVAL;
                        }
        for (int i = 0; i < psc->ntenants; i++) {
                const struct psc_tenant *t = &psc->tenants[i];
                if (!t->id || !t->id[0]) {
                        ERR("tenants[%d].id: missing", i);
                        return -EINVAL;
                }
                for (int k = 0; k < t->napi_keys; k++)
                        if (!t->api_keys[k].key ||
                            (!t->api_keys[k].has_sha256 && !t->api_keys[k].has_sha512)) {
                                ERR("tenants[%d].api_keys[%d]: needs a key and a SCRAM credential", i, k);
                                return -EINVAL;
                        }
        }
        return 0;
}

/* ---- tenants file and topic --------------------------------------------------------- */

char *psc_tenants_file(const struct psc *psc)
{
        json_t *o = json_object();
        json_t *tenants = json_array();
        for (int i = 0; i < psc->ntenants; i++)
                json_array_append_new(tenants, tenant_json(&psc->tenants[i]));
        pj_set(o, "tenants", tenants);
        return pj_dump(o);
}

char *psc_topic(const char *satellite)
{
        return xasprintf("psc.%s", satellite);
}
