/* The physical stateful cluster (PSC): the declarative document that says what one
 * physical cluster (PKC) should be, written by the mothership and made real by a
 * satellite's operator (docs/psc.md is the format). Also the status a satellite reports
 * for a PKC and the heartbeat it sends.
 *
 * A PSC is written in two steps. The mothership fills the *partial* part: identity,
 * placement, sizing asked for, tenants with their quotas and API keys. psc_complete()
 * (complete.c) fills what the API never carries: broker version and count, storage,
 * broker configuration and listener layout, from a versioned policy. Both parts travel
 * as one JSON object. Everything here is a pure function of its arguments (no I/O but
 * policy_load()); strings are heap copies owned by the struct that holds them. */
#ifndef STRATUS_PSC_PSC_H
#define STRATUS_PSC_PSC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PSC_API_VERSION "stratus/v1"
#define PSC_KIND "PhysicalStatefulCluster"

/* A SCRAM credential as in the broker's tenants file (base64 fields). */
struct psc_scram {
        char *salt;       /* base64 */
        int iterations;
        char *stored_key; /* base64 */
        char *server_key; /* base64 */
};

struct psc_api_key {
        char *key;                   /* the key id: the SASL user name */
        bool has_sha256, has_sha512;
        struct psc_scram sha256, sha512;
};

/* A tenant's limits; a negative value means unlimited (the tenants file's quotas). */
struct psc_quotas {
        double produce_bytes_per_sec;
        double fetch_bytes_per_sec;
        double burst_seconds;        /* default 1 */
        double requests_per_sec;
        int64_t max_connections;
        double connections_per_sec;
        int64_t max_partitions;
};

/* One logical cluster hosted by the PKC. */
struct psc_tenant {
        char *id;                    /* lkc-xxxxxx */
        struct psc_quotas quotas;
        struct psc_api_key *api_keys;
        int napi_keys;
};

/* A broker configuration entry (server.properties key = value). */
struct psc_config_entry {
        char *key;
        char *value;
};

enum psc_pkc_type { PSC_MULTI_TENANT = 0, PSC_DEDICATED };

struct psc {
        /* Partial: written by the mothership. */
        char *id;                    /* pkc-xxxxxx */
        char *product;               /* "kafka": what kind of physical cluster this is */
        char *satellite;             /* sat-<region>-<n>: which satellite makes it real */
        char *region;
        int64_t generation;          /* only grows; the satellite ignores older ones */
        char *revision;              /* stamped once when the PKC is created: a re-created
                                      * PKC with the same id is never taken for the old one */
        bool deleted;                /* the PKC is to be torn down (data removed) */
        enum psc_pkc_type type;
        double ingress_mbps;         /* sizing asked for: the sum the scheduler placed */
        double egress_mbps;
        int64_t partitions;
        struct psc_tenant *tenants;
        int ntenants;
        /* Completion: filled by psc_complete(); empty (NULL / 0) in a partial PSC. */
        char *policy_version;        /* which policy completed it */
        char *broker_version;        /* e.g. "stratus-0.3" */
        int broker_count;
        char *disk_type;             /* "local" */
        int64_t disk_bytes;          /* per broker */
        struct psc_config_entry *broker_config; /* server.properties entries */
        int nbroker_config;
        char *client_security_protocol; /* "SASL_PLAINTEXT" (the listener clients use) */
        char *sasl_mechanisms;       /* "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512" */
        bool lb_bootstrap;           /* a bootstrap listener in front of the brokers */
        char *internal_security_protocol; /* "PLAINTEXT": the listener the operator's
                                      * health checks use (added: not in the first contract) */
};

void psc_init(struct psc *psc);
void psc_deinit(struct psc *psc);
/* A deep copy of <src> into <dst> (initialised by this call). */
void psc_copy(struct psc *dst, const struct psc *src);

/* Parses the JSON text <json, len>. Returns 0 with *<out> filled (psc_deinit() it), or
 * -EINVAL with what is wrong (naming the field) in <err>. A partial PSC parses too. */
int psc_parse(const char *json, size_t len, struct psc *out, char *err, size_t err_len);
/* The JSON text of <psc> (heap, NUL-terminated; keys in a fixed order so equal PSCs give
 * equal text). */
char *psc_to_json(const struct psc *psc);
/* Whether a full PSC has everything a satellite needs. Returns 0 or -EINVAL with <err>. */
int psc_validate_full(const struct psc *psc, char *err, size_t err_len);

/* The tenants file (docs/tenancy.md) for the brokers of <psc> (heap JSON text). */
char *psc_tenants_file(const struct psc *psc);

/* ---- completion (complete.c) ---------------------------------------------------- */

/* The policy: the knowledge of "the Kafka team", versioned, apart from the control
 * plane (docs/psc.md "Completion policy"). */
struct psc_policy;

/* The policy built into this binary. Never NULL; do not free. */
const struct psc_policy *psc_policy_default(void);
/* Loads a policy file (JSON). Returns 0 with *<out> (free with psc_policy_free()), or
 * -errno / -EINVAL with <err>. */
int psc_policy_load(const char *path, struct psc_policy **out, char *err, size_t err_len);
int psc_policy_parse(const char *json, size_t len, struct psc_policy **out, char *err, size_t err_len);
void psc_policy_free(struct psc_policy *policy);
const char *psc_policy_version(const struct psc_policy *policy);

/* Capacity of one PKC of <type> under <policy>, for the scheduler. */
struct psc_capacity {
        double ingress_mbps;
        double egress_mbps;
        int64_t partitions;
        int64_t tenants;
};
void psc_policy_capacity(const struct psc_policy *policy, enum psc_pkc_type type, struct psc_capacity *out);

/* Completes <partial> under <policy> into <full> (initialised by this call): a pure
 * function, so equal inputs give equal outputs (golden tests). Fields already set in
 * <partial>'s completion part are overwritten. Returns 0 or -EINVAL with <err> (a sizing
 * the policy cannot serve). */
int psc_complete(const struct psc *partial, const struct psc_policy *policy, struct psc *full, char *err,
                 size_t err_len);

/* ---- status and heartbeats (status.c) -------------------------------------------- */

enum psc_phase {
        PSC_PHASE_PROVISIONING = 0, /* processes being made */
        PSC_PHASE_RUNNING,          /* every broker and the balancer healthy */
        PSC_PHASE_DEGRADED,         /* serving, but a broker or the balancer is not healthy */
        PSC_PHASE_DELETING,
        PSC_PHASE_DELETED,
        PSC_PHASE_FAILED,           /* cannot be made (a message says why) */
};
const char *psc_phase_name(enum psc_phase phase);
/* Returns 0 and sets *<out>, or -EINVAL for an unknown name. */
int psc_phase_parse(const char *name, enum psc_phase *out);

struct psc_broker_status {
        int id;
        bool healthy;
        int pid;
        int restarts;               /* since the satellite started supervising it */
        char *address;              /* host:port the brokers advertise (its lb listener) */
};

struct psc_status {
        char *pkc_id;
        char *satellite;
        char *revision;
        int64_t observed_generation; /* the newest generation applied */
        enum psc_phase phase;
        char *message;               /* why, for degraded / failed; may be NULL */
        char *bootstrap;             /* host:port of the lb bootstrap listener */
        bool lb_healthy;
        struct psc_broker_status *brokers;
        int nbrokers;
        int64_t time_ms;             /* wall clock when reported */
};

void psc_status_init(struct psc_status *st);
void psc_status_deinit(struct psc_status *st);
int psc_status_parse(const char *json, size_t len, struct psc_status *out, char *err, size_t err_len);
char *psc_status_to_json(const struct psc_status *st);

struct psc_heartbeat {
        char *satellite;
        char *region;
        char *version;               /* the satellite's stratus version */
        int64_t time_ms;             /* wall clock when sent */
        int pkcs;                    /* PKCs it runs */
};

void psc_heartbeat_deinit(struct psc_heartbeat *hb);
int psc_heartbeat_parse(const char *json, size_t len, struct psc_heartbeat *out, char *err, size_t err_len);
char *psc_heartbeat_to_json(const struct psc_heartbeat *hb);

/* The "kind" of a status and of a heartbeat document (added: not in the first contract).
 * Both are emitted with "api_version" and "kind"; parsing accepts them absent, and refuses
 * another kind, so a document of one sort is never read as the other. */
#define PSC_STATUS_KIND "PhysicalStatefulClusterStatus"
#define PSC_HEARTBEAT_KIND "SatelliteHeartbeat"

/* Control-plane topic names (docs/psc.md "Transport"). */
#define PSC_STATUS_TOPIC "stratus.status"  /* key pkc-... (status) or sat-... (heartbeat) */
/* The desired-state topic of <satellite>: "psc.<satellite>" (heap). */
char *psc_topic(const char *satellite);

#endif
