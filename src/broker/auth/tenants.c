/* Loading the tenants file with jansson; see tenants.h. */
#include "broker/auth/tenants.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

static int b64_field(json_t *obj, const char *name, uint8_t *out, int cap, int *len, const char *where, char *err,
                     size_t err_len)
{
        json_t *v = json_object_get(obj, name);
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        size_t n = s ? strlen(s) : 0;
        uint8_t tmp[512];
        int got = -1;
        if (s && n > 0 && n % 4 == 0 && n / 4 * 3 <= sizeof(tmp)) {
                got = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
                if (got >= 0 && s[n - 1] == '=')
                        got--;
                if (got >= 0 && s[n - 2] == '=')
                        got--;
        }
        if (got <= 0 || got > cap) {
                snprintf(err, err_len, "%s.%s: must be base64 of 1 to %d bytes", where, name, cap);
                return -EINVAL;
        }
        memcpy(out, tmp, (size_t)got);
        *len = got;
        return 0;
}

static int parse_credential(json_t *obj, enum sasl_mechanism mech, struct scram_credential *c, const char *where,
                            char *err, size_t err_len)
{
        if (!json_is_object(obj)) {
                snprintf(err, err_len, "%s: must be an object", where);
                return -EINVAL;
        }
        memset(c, 0, sizeof(*c));
        c->mechanism = mech;
        json_t *it = json_object_get(obj, "iterations");
        if (!json_is_integer(it) || json_integer_value(it) < SCRAM_MIN_ITERATIONS || json_integer_value(it) > 10000000) {
                snprintf(err, err_len, "%s.iterations: must be an integer from %d to 10000000", where,
                         SCRAM_MIN_ITERATIONS);
                return -EINVAL;
        }
        c->iterations = (int)json_integer_value(it);
        int kl = mech == SASL_SCRAM_SHA_512 ? 64 : 32, n;
        if (b64_field(obj, "salt", c->salt, SCRAM_MAX_SALT, &c->salt_len, where, err, err_len) < 0 ||
            b64_field(obj, "stored_key", c->stored_key, kl, &n, where, err, err_len) < 0)
                return -EINVAL;
        if (n != kl) {
                snprintf(err, err_len, "%s.stored_key: must be %d bytes", where, kl);
                return -EINVAL;
        }
        if (b64_field(obj, "server_key", c->server_key, kl, &n, where, err, err_len) < 0)
                return -EINVAL;
        if (n != kl) {
                snprintf(err, err_len, "%s.server_key: must be %d bytes", where, kl);
                return -EINVAL;
        }
        return 0;
}

void tenants_free(struct tenants *t)
{
        if (!t)
                return;
        const char *key;
        void *value;
        for (size_t i = 0; map_next(&t->keys, &i, &key, &value);) {
                struct tenant_key *k = value;
                free(k->key);
                free(k);
        }
        map_deinit(&t->keys);
        for (int i = 0; i < t->ntenants; i++)
                free(t->tenants[i].id);
        free(t->tenants);
        free(t);
}

static bool valid_id(const char *id)
{
        for (const char *p = id; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-'))
                        return false;
        return true;
}

/* quotas.<name>: a non-negative number, or absent (unlimited, -1). */
static int quota_field(json_t *q, const char *name, bool integer, double *out, const char *where, char *err,
                       size_t err_len)
{
        json_t *v = json_object_get(q, name);
        *out = -1;
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1e15 ||
            (integer && !json_is_integer(v))) {
                snprintf(err, err_len, "%s.quotas.%s: must be a non-negative %s (or left out for no limit)", where,
                         name, integer ? "integer" : "number");
                return -EINVAL;
        }
        *out = json_number_value(v);
        return 0;
}

static int parse_quotas(json_t *q, struct tenant_quotas *out, const char *where, char *err, size_t err_len)
{
        static const char *const known[] = { "produce_bytes_per_sec", "fetch_bytes_per_sec", "burst_seconds",
                                             "requests_per_sec", "max_connections", "connections_per_sec",
                                             "max_partitions", NULL };
        double max_conns, max_parts;
        out->burst_seconds = 1;
        if (!q)
                q = json_object(); /* all unlimited */
        else if (!json_is_object(q)) {
                snprintf(err, err_len, "%s.quotas: must be an object", where);
                return -EINVAL;
        } else
                json_incref(q);
        const char *key;
        json_t *value;
        int rc = 0;
        json_object_foreach(q, key, value) {
                bool ok = false;
                for (int i = 0; known[i]; i++)
                        ok |= strcmp(known[i], key) == 0;
                if (!ok) {
                        snprintf(err, err_len, "%s.quotas.%s: unknown quota (known: produce_bytes_per_sec, "
                                               "fetch_bytes_per_sec, burst_seconds, requests_per_sec, "
                                               "max_connections, connections_per_sec, max_partitions)", where, key);
                        rc = -EINVAL;
                        break;
                }
        }
        double burst = -1;
        if (rc == 0 && (quota_field(q, "produce_bytes_per_sec", false, &out->produce_bytes_per_sec, where, err, err_len) < 0 ||
                        quota_field(q, "fetch_bytes_per_sec", false, &out->fetch_bytes_per_sec, where, err, err_len) < 0 ||
                        quota_field(q, "burst_seconds", false, &burst, where, err, err_len) < 0 ||
                        quota_field(q, "requests_per_sec", false, &out->requests_per_sec, where, err, err_len) < 0 ||
                        quota_field(q, "max_connections", true, &max_conns, where, err, err_len) < 0 ||
                        quota_field(q, "connections_per_sec", false, &out->connections_per_sec, where, err, err_len) < 0 ||
                        quota_field(q, "max_partitions", true, &max_parts, where, err, err_len) < 0))
                rc = -EINVAL;
        json_decref(q);
        if (rc < 0)
                return rc;
        if (burst >= 0) {
                if (burst < 0.01 || burst > 3600) {
                        snprintf(err, err_len, "%s.quotas.burst_seconds: must be between 0.01 and 3600", where);
                        return -EINVAL;
                }
                out->burst_seconds = burst;
        }
        out->max_connections = (int64_t)max_conns;
        out->max_partitions = (int64_t)max_parts;
        return 0;
}

static int parse(json_t *root, struct tenants *t, char *err, size_t err_len)
{
        json_t *arr = json_object_get(root, "tenants");
        if (!json_is_array(arr)) {
                snprintf(err, err_len, "\"tenants\": must be an array");
                return -EINVAL;
        }
        size_t n = json_array_size(arr);
        t->tenants = xcalloc(MAX(n, 1), sizeof(*t->tenants));
        for (size_t i = 0; i < n; i++) {
                json_t *tj = json_array_get(arr, i);
                json_t *id = json_object_get(tj, "id");
                if (!json_is_string(id) || json_string_length(id) == 0 || json_string_length(id) > 64 ||
                    !valid_id(json_string_value(id))) {
                        snprintf(err, err_len, "tenants[%zu].id: must be a string of 1 to 64 characters "
                                               "from A-Z, a-z, 0-9 and '-'", i);
                        return -EINVAL;
                }
                for (int j = 0; j < t->ntenants; j++)
                        if (strcmp(t->tenants[j].id, json_string_value(id)) == 0) {
                                snprintf(err, err_len, "tenants[%zu].id: \"%s\" appears twice", i, json_string_value(id));
                                return -EINVAL;
                        }
                struct tenant *tenant = &t->tenants[t->ntenants++];
                tenant->id = xstrdup(json_string_value(id));
                char tw[64];
                snprintf(tw, sizeof(tw), "tenants[%zu]", i);
                if (parse_quotas(json_object_get(tj, "quotas"), &tenant->quotas, tw, err, err_len) < 0)
                        return -EINVAL;
                json_t *keys = json_object_get(tj, "api_keys");
                if (keys && !json_is_array(keys)) {
                        snprintf(err, err_len, "tenants[%zu].api_keys: must be an array", i);
                        return -EINVAL;
                }
                for (size_t k = 0; k < json_array_size(keys); k++) {
                        json_t *kj = json_array_get(keys, k);
                        char where[128];
                        snprintf(where, sizeof(where), "tenants[%zu].api_keys[%zu]", i, k);
                        json_t *name = json_object_get(kj, "key");
                        if (!json_is_string(name) || json_string_length(name) == 0 || json_string_length(name) > 255) {
                                snprintf(err, err_len, "%s.key: must be a string of 1 to 255 characters", where);
                                return -EINVAL;
                        }
                        const char *kname = json_string_value(name);
                        if (map_get(&t->keys, kname, strlen(kname))) {
                                snprintf(err, err_len, "%s.key: \"%s\" is used twice", where, kname);
                                return -EINVAL;
                        }
                        struct tenant_key *tk = xcalloc(1, sizeof(*tk));
                        tk->key = xstrdup(kname);
                        tk->tenant = tenant;
                        map_put(&t->keys, kname, strlen(kname), tk);
                        json_t *c256 = json_object_get(kj, "scram_sha_256");
                        json_t *c512 = json_object_get(kj, "scram_sha_512");
                        char cw[160];
                        if (c256) {
                                snprintf(cw, sizeof(cw), "%s.scram_sha_256", where);
                                if (parse_credential(c256, SASL_SCRAM_SHA_256, &tk->sha256, cw, err, err_len) < 0)
                                        return -EINVAL;
                                tk->has_sha256 = true;
                        }
                        if (c512) {
                                snprintf(cw, sizeof(cw), "%s.scram_sha_512", where);
                                if (parse_credential(c512, SASL_SCRAM_SHA_512, &tk->sha512, cw, err, err_len) < 0)
                                        return -EINVAL;
                                tk->has_sha512 = true;
                        }
                        if (!c256 && !c512) {
                                snprintf(err, err_len, "%s: needs scram_sha_256 or scram_sha_512", where);
                                return -EINVAL;
                        }
                }
        }
        return 0;
}

int tenants_load(const char *path, struct tenants **out, char *err, size_t err_len)
{
        json_error_t jerr;
        json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                snprintf(err, err_len, "%s:%d: %s", path, jerr.line, jerr.text);
                return -EINVAL;
        }
        struct tenants *t = xcalloc(1, sizeof(*t));
        map_init(&t->keys);
        char msg[400];
        int rc = parse(root, t, msg, sizeof(msg));
        json_decref(root);
        if (rc < 0) {
                snprintf(err, err_len, "%s: %s", path, msg);
                tenants_free(t);
                return rc;
        }
        *out = t;
        return 0;
}

const struct scram_credential *tenants_lookup(void *ctx, const char *user, enum sasl_mechanism mech,
                                              const void **principal)
{
        struct tenants *t = ctx;
        struct tenant_key *k = t ? map_get(&t->keys, user, strlen(user)) : NULL;
        if (!k)
                return NULL;
        *principal = k;
        if (mech == SASL_SCRAM_SHA_512)
                return k->has_sha512 ? &k->sha512 : NULL;
        return k->has_sha256 ? &k->sha256 : NULL;
}
