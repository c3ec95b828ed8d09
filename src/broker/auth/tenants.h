/* The tenants file (JSON): logical clusters and their API keys, each key with salted
 * SCRAM credentials (never the secret). The broker loads it at start and again whenever
 * it changes. Format (docs/tenancy.md):
 *
 *   {"tenants": [{"id": "lkc-abc123",
 *                 "quotas": {"produce_bytes_per_sec": N, "fetch_bytes_per_sec": N,
 *                            "burst_seconds": 1.0, "requests_per_sec": N,
 *                            "max_connections": N, "connections_per_sec": N,
 *                            "max_partitions": N},
 *                 "api_keys": [{"key": "KEY1",
 *                               "scram_sha_256": {"salt": B64, "iterations": 4096,
 *                                                 "stored_key": B64, "server_key": B64},
 *                               "scram_sha_512": {...}}]}]}
 *
 * Either credential may be absent; PLAIN accepts a key with either. A quota left out is
 * unlimited. Tenant ids are 1-64 characters of [A-Za-z0-9-]: a tenant's topics and
 * groups are stored as "<id>_<name>", so the id cannot contain the separator. */
#ifndef STRATUS_BROKER_AUTH_TENANTS_H
#define STRATUS_BROKER_AUTH_TENANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/map.h"
#include "broker/auth/sasl.h"

/* A tenant's limits; a negative value means unlimited. */
struct tenant_quotas {
        double produce_bytes_per_sec;
        double fetch_bytes_per_sec;
        double burst_seconds;      /* bucket depth, in seconds of the rate (default 1) */
        double requests_per_sec;
        int64_t max_connections;
        double connections_per_sec;
        int64_t max_partitions;
};

struct tenant {
        char *id;                  /* the LKC id, e.g. "lkc-abc123" */
        struct tenant_quotas quotas;
};

struct tenant_key {
        char *key;                 /* the API key: the SASL user name */
        struct tenant *tenant;
        bool has_sha256, has_sha512;
        struct scram_credential sha256, sha512;
};

struct tenants {
        struct tenant *tenants;
        int ntenants;
        struct map keys;           /* key -> struct tenant_key */
};

/* Loads <path>. Returns 0 with *<out> set, or -errno / -EINVAL with a message naming the
 * line or the JSON field in <err>. */
int tenants_load(const char *path, struct tenants **out, char *err, size_t err_len);
void tenants_free(struct tenants *t);

/* sasl_lookup_fn over a struct tenants (<ctx>): the principal is the struct tenant_key. */
const struct scram_credential *tenants_lookup(void *ctx, const char *user, enum sasl_mechanism mech,
                                              const void **principal);

#endif
