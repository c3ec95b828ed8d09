/* The mothership's state in SQLite (<data>/mothership/stratus.db): logical clusters,
 * their API keys (SCRAM credentials only), physical clusters with their latest status,
 * the latest PSC of each PKC (the outbox republished at start), satellites from their
 * heartbeats, and idempotency records. WAL mode, synchronous=FULL; schema changes are
 * versioned migrations applied in order, each in its own transaction with its version
 * recorded in schema_migrations. Callers group multi-step changes between store_begin()
 * and store_commit(). Records are plain structs with fixed-size text fields (the API
 * bounds every one of them). Loop thread only (one connection, no locking). */
#ifndef STRATUS_MOTHERSHIP_STORE_H
#define STRATUS_MOTHERSHIP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_ID_MAX        15 /* "lkc-xxxxxx", "pkc-xxxxxx" */
#define STORE_NAME_MAX      64
#define STORE_REGION_MAX    32
#define STORE_SATELLITE_MAX 64

struct store;

/* One schema step: applied once, in version order, in a transaction. */
struct store_migration {
        int version;
        const char *name;
        const char *sql; /* one or more statements */
};

/* The schema of this binary. */
extern const struct store_migration store_migrations[];
extern const size_t store_nmigrations;

/* Opens (creating) the database at <path> and applies the missing migrations. Returns 0
 * with *<out>, or -errno with <err> (-EIO: SQLite failed; -EPROTO: the file's schema is
 * newer than this binary). */
int store_open(const char *path, struct store **out, char *err, size_t err_len);
/* Like store_open() with the steps <steps> (<nsteps>, ascending versions): for tests. */
int store_open_with(const char *path, const struct store_migration *steps, size_t nsteps, struct store **out,
                    char *err, size_t err_len);
void store_close(struct store *st);

/* The highest migration version applied (0 for none). */
int store_schema_version(struct store *st);
/* The text result of "PRAGMA <name>" into <out> (for tests: journal_mode). */
int store_pragma(struct store *st, const char *name, char *out, size_t out_len);

/* A write transaction (BEGIN IMMEDIATE). Returns 0 or -EIO. */
int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);

/* ---- logical clusters ------------------------------------------------------------ */

struct store_lkc {
        char id[STORE_ID_MAX + 1];
        int64_t seq; /* creation order (pagination); set by insert */
        char name[STORE_NAME_MAX + 1];
        char region[STORE_REGION_MAX + 1];
        char type[16]; /* basic | standard | dedicated */
        double ingress_mbps;
        double egress_mbps;
        int64_t partitions;
        char pkc_id[STORE_ID_MAX + 1];
        char reason[1024];        /* why the scheduler placed it there */
        int64_t first_generation; /* the PKC generation that first included it */
        bool deleting;
        int64_t delete_generation; /* the PKC generation without it (when deleting) */
        int64_t resource_version;  /* grows with every change of spec or keys */
        int64_t created_at_ms;     /* wall clock */
        int64_t updated_at_ms;
};

/* Inserts <lkc> and sets its seq. Returns 0, -EEXIST or -EIO. */
int store_lkc_insert(struct store *st, struct store_lkc *lkc);
/* Rewrites the row of <lkc->id>. Returns 0, -ENOENT or -EIO. */
int store_lkc_update(struct store *st, const struct store_lkc *lkc);
int store_lkc_get(struct store *st, const char *id, struct store_lkc *out);
int store_lkc_delete(struct store *st, const char *id);
/* Up to <limit> (<= 0: all) LKCs with seq > <after_seq> in seq order, only those on
 * <pkc_id> unless NULL, into *<out> (heap; free()). Returns the count or -EIO. */
int store_lkc_list(struct store *st, const char *pkc_id, int64_t after_seq, int limit,
                   struct store_lkc **out);
/* What the LKCs on <pkc_id> that are not being deleted (and are not <except_lkc>, unless
 * NULL) add up to, summed by SQLite without reading the rows out. Returns 0 or -EIO. */
struct store_load {
        double ingress_mbps, egress_mbps;
        int64_t partitions, tenants;
};
int store_pkc_load(struct store *st, const char *pkc_id, const char *except_lkc, struct store_load *out);

/* ---- API keys -------------------------------------------------------------------- */

struct store_scram {
        char salt[32]; /* base64 */
        int iterations;
        char stored_key[96]; /* base64 */
        char server_key[96]; /* base64 */
};

struct store_api_key {
        char key[17];
        int64_t seq;
        char lkc_id[STORE_ID_MAX + 1];
        int64_t created_at_ms;
        struct store_scram sha256, sha512;
};

int store_api_key_insert(struct store *st, struct store_api_key *k);
/* Returns 0, -ENOENT (no such key on <lkc_id>) or -EIO. */
int store_api_key_delete(struct store *st, const char *lkc_id, const char *key);
int store_api_key_delete_all(struct store *st, const char *lkc_id);
int store_api_key_list(struct store *st, const char *lkc_id, int64_t after_seq, int limit,
                       struct store_api_key **out);

/* ---- physical clusters ----------------------------------------------------------- */

struct store_pkc {
        char id[STORE_ID_MAX + 1];
        int64_t seq;
        char region[STORE_REGION_MAX + 1];
        char type[16]; /* multi_tenant | dedicated */
        char satellite[STORE_SATELLITE_MAX + 1];
        char revision[40];
        int64_t generation;
        bool deleted; /* being torn down */
        int64_t created_at_ms;
        /* From the satellite's latest status. */
        int64_t observed_generation; /* 0: no status yet */
        char phase[16];              /* "" until the first status */
        char bootstrap[128];
        char message[256];
        int brokers; /* brokers reported */
        int healthy_brokers;
        bool lb_healthy;
        int64_t status_time_ms;
};

int store_pkc_insert(struct store *st, struct store_pkc *pkc);
int store_pkc_update(struct store *st, const struct store_pkc *pkc);
int store_pkc_get(struct store *st, const char *id, struct store_pkc *out);
/* Deletes the PKC and its outbox entry. */
int store_pkc_delete(struct store *st, const char *id);
/* PKCs with seq > <after_seq> (in <region> unless NULL). As store_lkc_list(). */
int store_pkc_list(struct store *st, const char *region, int64_t after_seq, int limit,
                   struct store_pkc **out);
/* A PKC and the summed sizing of its LKCs (those being deleted do not count). */
struct store_pkc_loaded {
        struct store_pkc pkc;
        struct store_load load;
};
/* Every PKC of <region> in seq order with its load, in one query (for placement, which
 * would otherwise run one query per PKC). Returns the count (the array is the caller's
 * to free) or -EIO. */
int store_pkc_list_loaded(struct store *st, const char *region, struct store_pkc_loaded **out);

/* The latest full PSC of each PKC: written in the transaction that changed it, published
 * after commit and again at every start. */
int store_psc_put(struct store *st, const char *pkc_id, int64_t generation, const char *json);
/* Calls <fn> for every stored PSC in PKC creation order. Returns the count or -EIO. */
typedef void store_psc_fn(void *arg, const char *pkc_id, const char *satellite, int64_t generation,
                          const char *json);
int store_psc_each(struct store *st, store_psc_fn *fn, void *arg);

/* ---- satellites ------------------------------------------------------------------ */

struct store_satellite {
        char id[STORE_SATELLITE_MAX + 1];
        int64_t seq;
        char region[STORE_REGION_MAX + 1];
        char version[32];
        int64_t last_heartbeat_ms; /* wall clock of the newest heartbeat */
        int64_t first_seen_ms;
        int pkcs; /* PKCs it said it runs */
};

/* Registers or refreshes <sat> (last_heartbeat_ms only grows). Returns 1 when it is new,
 * 0 when known, or -EIO. */
int store_satellite_upsert(struct store *st, const struct store_satellite *sat);
int store_satellite_get(struct store *st, const char *id, struct store_satellite *out);
int store_satellite_list(struct store *st, const char *region, int64_t after_seq, int limit,
                         struct store_satellite **out);

/* ---- regions (derived) ----------------------------------------------------------- */

struct store_region {
        char name[STORE_REGION_MAX + 1];
        int satellites;
        int stale_satellites; /* no heartbeat since <stale_before_ms> */
        int physical_clusters;
        int logical_clusters;
};

/* Every region a satellite registered in, by name. Returns the count or -EIO. */
int store_region_list(struct store *st, int64_t stale_before_ms, struct store_region **out);

/* ---- idempotency ----------------------------------------------------------------- */

/* The response stored for <scope> ("POST /v1/clusters") and Idempotency-Key <key>:
 * returns 0 with <body_hash> (65 bytes), *<status> and *<response> (heap), -ENOENT, or
 * -EIO. */
int store_idem_get(struct store *st, const char *scope, const char *key, char *body_hash, unsigned *status,
                   char **response);
int store_idem_put(struct store *st, const char *scope, const char *key, const char *body_hash,
                   unsigned status, const char *response, int64_t now_ms);
/* Forgets records created before <before_ms>. Returns how many or -EIO. */
int store_idem_purge(struct store *st, int64_t before_ms);

#endif
