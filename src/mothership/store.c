/* The mothership store over SQLite: migrations, then one small function per query. Every
 * statement is prepared, bound from a format string ("s" text, "i" int64, "d" double, "b"
 * bool) and finalised in the same call. */
#define LOG_TOPIC "store"
#include "mothership/store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"

struct store {
        sqlite3 *db;
        int version;
};

/* SQL pieces of migration 2: a rate in integer millionths; the LKCs that count toward
 * a PKC's load (those being deleted do not); one row's sizing added to or taken from its
 * PKC's totals. */
#define UMBPS(col) "CAST(ROUND(" col " * 1000000) AS INTEGER)"
#define OF_PKC "lkc.pkc_id = pkc.id AND lkc.deleting = 0"
#define LOAD_ADD(sign, row)                                                                                  \
        "UPDATE pkc SET"                                                                                     \
        " load_ingress_umbps = load_ingress_umbps " sign " (" row ".deleting = 0) * " UMBPS(row ".ingress_mbps") "," \
        " load_egress_umbps = load_egress_umbps " sign " (" row ".deleting = 0) * " UMBPS(row ".egress_mbps") ","    \
        " load_partitions = load_partitions " sign " (" row ".deleting = 0) * " row ".partitions,"                  \
        " load_tenants = load_tenants " sign " (" row ".deleting = 0)"                                               \
        " WHERE id = " row ".pkc_id;"

const struct store_migration store_migrations[] = {
    {1, "initial schema",
     "CREATE TABLE lkc ("
     " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
     " id TEXT NOT NULL UNIQUE,"
     " name TEXT NOT NULL,"
     " region TEXT NOT NULL,"
     " type TEXT NOT NULL,"
     " ingress_mbps REAL NOT NULL,"
     " egress_mbps REAL NOT NULL,"
     " partitions INTEGER NOT NULL,"
     " pkc_id TEXT NOT NULL,"
     " reason TEXT NOT NULL,"
     " first_generation INTEGER NOT NULL,"
     " deleting INTEGER NOT NULL DEFAULT 0,"
     " delete_generation INTEGER NOT NULL DEFAULT 0,"
     " resource_version INTEGER NOT NULL,"
     " created_at_ms INTEGER NOT NULL,"
     " updated_at_ms INTEGER NOT NULL);"
     "CREATE INDEX lkc_by_pkc ON lkc(pkc_id, seq);"
     "CREATE TABLE api_key ("
     " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
     " key TEXT NOT NULL UNIQUE,"
     " lkc_id TEXT NOT NULL,"
     " created_at_ms INTEGER NOT NULL,"
     " sha256_salt TEXT NOT NULL, sha256_iterations INTEGER NOT NULL,"
     " sha256_stored_key TEXT NOT NULL, sha256_server_key TEXT NOT NULL,"
     " sha512_salt TEXT NOT NULL, sha512_iterations INTEGER NOT NULL,"
     " sha512_stored_key TEXT NOT NULL, sha512_server_key TEXT NOT NULL);"
     "CREATE INDEX api_key_by_lkc ON api_key(lkc_id, seq);"
     "CREATE TABLE pkc ("
     " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
     " id TEXT NOT NULL UNIQUE,"
     " region TEXT NOT NULL,"
     " type TEXT NOT NULL,"
     " satellite TEXT NOT NULL,"
     " revision TEXT NOT NULL,"
     " generation INTEGER NOT NULL,"
     " deleted INTEGER NOT NULL DEFAULT 0,"
     " created_at_ms INTEGER NOT NULL,"
     " observed_generation INTEGER NOT NULL DEFAULT 0,"
     " phase TEXT NOT NULL DEFAULT '',"
     " bootstrap TEXT NOT NULL DEFAULT '',"
     " message TEXT NOT NULL DEFAULT '',"
     " brokers INTEGER NOT NULL DEFAULT 0,"
     " healthy_brokers INTEGER NOT NULL DEFAULT 0,"
     " lb_healthy INTEGER NOT NULL DEFAULT 0,"
     " status_time_ms INTEGER NOT NULL DEFAULT 0);"
     "CREATE TABLE psc ("
     " pkc_id TEXT PRIMARY KEY,"
     " generation INTEGER NOT NULL,"
     " json TEXT NOT NULL);"
     "CREATE TABLE satellite ("
     " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
     " id TEXT NOT NULL UNIQUE,"
     " region TEXT NOT NULL,"
     " version TEXT NOT NULL,"
     " last_heartbeat_ms INTEGER NOT NULL,"
     " first_seen_ms INTEGER NOT NULL,"
     " pkcs INTEGER NOT NULL);"
     "CREATE TABLE idempotency ("
     " scope TEXT NOT NULL,"
     " key TEXT NOT NULL,"
     " body_hash TEXT NOT NULL,"
     " status INTEGER NOT NULL,"
     " response TEXT NOT NULL,"
     " created_at_ms INTEGER NOT NULL,"
     " PRIMARY KEY (scope, key));"
     "CREATE INDEX idempotency_by_age ON idempotency(created_at_ms);"},
    /* Placement needs the load of every PKC of a region at each POST; summed from the LKC
     * rows that read every LKC of the region (5 ms of 8 at 10,000 LKCs). Triggers keep the
     * totals in the PKC row in the same transaction as every LKC change, whichever code
     * makes it. Rates are kept in integer millionths of MB/s so that adding and taking
     * away a cluster's sizing leaves no rounding behind. */
    {2, "PKC load totals kept by triggers",
     "ALTER TABLE pkc ADD COLUMN load_ingress_umbps INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE pkc ADD COLUMN load_egress_umbps INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE pkc ADD COLUMN load_partitions INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE pkc ADD COLUMN load_tenants INTEGER NOT NULL DEFAULT 0;"
     "UPDATE pkc SET"
     " load_ingress_umbps = (SELECT COALESCE(SUM(" UMBPS("ingress_mbps") "), 0) FROM lkc WHERE " OF_PKC "),"
     " load_egress_umbps = (SELECT COALESCE(SUM(" UMBPS("egress_mbps") "), 0) FROM lkc WHERE " OF_PKC "),"
     " load_partitions = (SELECT COALESCE(SUM(partitions), 0) FROM lkc WHERE " OF_PKC "),"
     " load_tenants = (SELECT COUNT(*) FROM lkc WHERE " OF_PKC ");"
     "CREATE TRIGGER lkc_load_insert AFTER INSERT ON lkc BEGIN " LOAD_ADD("+", "NEW") " END;"
     "CREATE TRIGGER lkc_load_delete AFTER DELETE ON lkc BEGIN " LOAD_ADD("-", "OLD") " END;"
     "CREATE TRIGGER lkc_load_update AFTER UPDATE OF ingress_mbps, egress_mbps, partitions, pkc_id, deleting"
     " ON lkc BEGIN " LOAD_ADD("-", "OLD") " " LOAD_ADD("+", "NEW") " END;"},
};
const size_t store_nmigrations = sizeof(store_migrations) / sizeof(store_migrations[0]);

/* ---- statements ---------------------------------------------------------------------- */

static int prepare(struct store *st, const char *sql, const char *fmt, va_list ap, sqlite3_stmt **out)
{
        sqlite3_stmt *stmt;
        if (sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
                log_error("prepare failed: %s; sql=%s", sqlite3_errmsg(st->db), sql);
                return -EIO;
        }
        for (int i = 0; fmt && fmt[i]; i++) {
                int rc;
                switch (fmt[i]) {
                case 's': {
                        const char *s = va_arg(ap, const char *);
                        rc = s ? sqlite3_bind_text(stmt, i + 1, s, -1, SQLITE_TRANSIENT)
                               : sqlite3_bind_null(stmt, i + 1);
                        break;
                }
                case 'i':
                        rc = sqlite3_bind_int64(stmt, i + 1, va_arg(ap, int64_t));
                        break;
                case 'd':
                        rc = sqlite3_bind_double(stmt, i + 1, va_arg(ap, double));
                        break;
                case 'b':
                        rc = sqlite3_bind_int(stmt, i + 1, va_arg(ap, int) ? 1 : 0);
                        break;
                default:
                        ASSERT(!"bad bind format");
                        rc = SQLITE_MISUSE;
                }
                if (rc != SQLITE_OK) {
                        sqlite3_finalize(stmt);
                        return -EIO;
                }
        }
        *out = stmt;
        return 0;
}

/* Runs <sql> with the arguments of <fmt> to completion. Returns the rows changed, -EEXIST
 * on a uniqueness violation, or -EIO. */
static int run(struct store *st, const char *sql, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        sqlite3_stmt *stmt;
        int rc = prepare(st, sql, fmt, ap, &stmt);
        va_end(ap);
        if (rc < 0)
                return rc;
        rc = sqlite3_step(stmt);
        sqlite3_finalize(stmt);
        if (rc == SQLITE_DONE || rc == SQLITE_ROW)
                return sqlite3_changes(st->db);
        if (rc == SQLITE_CONSTRAINT)
                return -EEXIST;
        log_error("statement failed: %s; sql=%s", sqlite3_errmsg(st->db), sql);
        return -EIO;
}

/* Prepares <sql> for reading rows; the caller steps and finalises. */
static int query(struct store *st, sqlite3_stmt **out, const char *sql, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int rc = prepare(st, sql, fmt, ap, out);
        va_end(ap);
        return rc;
}

static void col_text(sqlite3_stmt *stmt, int col, char *out, size_t len)
{
        const unsigned char *t = sqlite3_column_text(stmt, col);
        snprintf(out, len, "%s", t ? (const char *)t : "");
}

static int exec_script(struct store *st, const char *sql, char *err, size_t err_len)
{
        char *msg = NULL;
        if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
                snprintf(err, err_len, "%s", msg ? msg : sqlite3_errmsg(st->db));
                sqlite3_free(msg);
                return -EIO;
        }
        return 0;
}

/* Reads rows of <stmt> with <read> into a heap array. Returns the count or -EIO. */
static int collect(sqlite3_stmt *stmt, size_t size, void (*read)(sqlite3_stmt *, void *), void **out)
{
        size_t n = 0, cap = 16;
        char *items = xmalloc(cap * size);
        int rc;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                if (n == cap) {
                        cap *= 2;
                        items = xrealloc(items, cap * size);
                }
                memset(items + n * size, 0, size);
                read(stmt, items + n * size);
                n++;
        }
        sqlite3_finalize(stmt);
        if (rc != SQLITE_DONE) {
                free(items);
                *out = NULL;
                return -EIO;
        }
        *out = items;
        return (int)n;
}

/* ---- open and migrate ------------------------------------------------------------------ */

static int current_version(struct store *st)
{
        sqlite3_stmt *stmt;
        if (query(st, &stmt, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", NULL) < 0)
                return -EIO;
        int v = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int(stmt, 0) : -1;
        sqlite3_finalize(stmt);
        return v < 0 ? -EIO : v;
}

static int migrate(struct store *st, const struct store_migration *steps, size_t nsteps, char *err,
                   size_t err_len)
{
        if (exec_script(st,
                        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                        " name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)",
                        err, err_len) < 0)
                return -EIO;
        int version = current_version(st);
        if (version < 0) {
                snprintf(err, err_len, "cannot read schema_migrations: %s", sqlite3_errmsg(st->db));
                return -EIO;
        }
        int newest = nsteps ? steps[nsteps - 1].version : 0;
        if (version > newest) {
                snprintf(
                    err, err_len,
                    "the database schema is at version %d, newer than this binary knows (%d): run a newer "
                    "stratus",
                    version, newest);
                return -EPROTO;
        }
        for (size_t i = 0; i < nsteps; i++) {
                const struct store_migration *m = &steps[i];
                if (m->version <= version)
                        continue;
                char why[512];
                if (exec_script(st, "BEGIN IMMEDIATE", why, sizeof(why)) < 0 ||
                    exec_script(st, m->sql, why, sizeof(why)) < 0 ||
                    run(st, "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)",
                        "isi", (int64_t)m->version, m->name, clock_wall_ms()) < 0 ||
                    exec_script(st, "COMMIT", why, sizeof(why)) < 0) {
                        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
                        snprintf(err, err_len, "schema migration %d (%s) failed: %s", m->version, m->name,
                                 why);
                        return -EIO;
                }
                log_info("schema migration applied version=%d name=\"%s\"", m->version, m->name);
                version = m->version;
        }
        st->version = version;
        return 0;
}

int store_open_with(const char *path, const struct store_migration *steps, size_t nsteps, struct store **out,
                    char *err, size_t err_len)
{
        struct store *st = xcalloc(1, sizeof(*st));
        if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK) {
                snprintf(err, err_len, "cannot open %s: %s", path,
                         st->db ? sqlite3_errmsg(st->db) : "out of memory");
                store_close(st);
                return -EIO;
        }
        sqlite3_busy_timeout(st->db, 5000);
        char why[512];
        /* WAL: readers never block the writer; synchronous=FULL: a commit is on disk when
         * it returns, so a 202 is never lost to a crash. */
        if (exec_script(st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", why,
                        sizeof(why)) < 0) {
                snprintf(err, err_len, "%s: %s", path, why);
                store_close(st);
                return -EIO;
        }
        char mode[16];
        if (store_pragma(st, "journal_mode", mode, sizeof(mode)) < 0 || strcmp(mode, "wal") != 0) {
                snprintf(err, err_len, "%s: cannot switch to WAL mode (journal_mode=%s)", path, mode);
                store_close(st);
                return -EIO;
        }
        int rc = migrate(st, steps, nsteps, err, err_len);
        if (rc < 0) {
                store_close(st);
                return rc;
        }
        *out = st;
        return 0;
}

int store_open(const char *path, struct store **out, char *err, size_t err_len)
{
        return store_open_with(path, store_migrations, store_nmigrations, out, err, err_len);
}

void store_close(struct store *st)
{
        if (!st)
                return;
        sqlite3_close(st->db);
        free(st);
}

int store_schema_version(struct store *st)
{
        return st->version;
}

int store_pragma(struct store *st, const char *name, char *out, size_t out_len)
{
        char sql[128];
        snprintf(sql, sizeof(sql), "PRAGMA %s", name);
        sqlite3_stmt *stmt;
        if (query(st, &stmt, sql, NULL) < 0)
                return -EIO;
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW)
                col_text(stmt, 0, out, out_len);
        sqlite3_finalize(stmt);
        return rc == SQLITE_ROW ? 0 : -EIO;
}

int store_begin(struct store *st)
{
        return run(st, "BEGIN IMMEDIATE", NULL) < 0 ? -EIO : 0;
}

int store_commit(struct store *st)
{
        return run(st, "COMMIT", NULL) < 0 ? -EIO : 0;
}

void store_rollback(struct store *st)
{
        if (!sqlite3_get_autocommit(st->db))
                run(st, "ROLLBACK", NULL);
}

/* ---- logical clusters ------------------------------------------------------------------ */

#define LKC_COLUMNS                                                                                          \
        "seq, id, name, region, type, ingress_mbps, egress_mbps, partitions, pkc_id, reason, "               \
        "first_generation, deleting, delete_generation, resource_version, created_at_ms, updated_at_ms"

static void read_lkc(sqlite3_stmt *stmt, void *out)
{
        struct store_lkc *lkc = out;
        lkc->seq = sqlite3_column_int64(stmt, 0);
        col_text(stmt, 1, lkc->id, sizeof(lkc->id));
        col_text(stmt, 2, lkc->name, sizeof(lkc->name));
        col_text(stmt, 3, lkc->region, sizeof(lkc->region));
        col_text(stmt, 4, lkc->type, sizeof(lkc->type));
        lkc->ingress_mbps = sqlite3_column_double(stmt, 5);
        lkc->egress_mbps = sqlite3_column_double(stmt, 6);
        lkc->partitions = sqlite3_column_int64(stmt, 7);
        col_text(stmt, 8, lkc->pkc_id, sizeof(lkc->pkc_id));
        col_text(stmt, 9, lkc->reason, sizeof(lkc->reason));
        lkc->first_generation = sqlite3_column_int64(stmt, 10);
        lkc->deleting = sqlite3_column_int(stmt, 11) != 0;
        lkc->delete_generation = sqlite3_column_int64(stmt, 12);
        lkc->resource_version = sqlite3_column_int64(stmt, 13);
        lkc->created_at_ms = sqlite3_column_int64(stmt, 14);
        lkc->updated_at_ms = sqlite3_column_int64(stmt, 15);
}

int store_lkc_insert(struct store *st, struct store_lkc *lkc)
{
        int rc = run(
            st,
            "INSERT INTO lkc (id, name, region, type, ingress_mbps, egress_mbps, partitions, pkc_id, reason,"
            " first_generation, deleting, delete_generation, resource_version, created_at_ms, updated_at_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            "ssssddissibiiii", lkc->id, lkc->name, lkc->region, lkc->type, lkc->ingress_mbps,
            lkc->egress_mbps, lkc->partitions, lkc->pkc_id, lkc->reason, lkc->first_generation,
            (int)lkc->deleting, lkc->delete_generation, lkc->resource_version, lkc->created_at_ms,
            lkc->updated_at_ms);
        if (rc < 0)
                return rc;
        lkc->seq = sqlite3_last_insert_rowid(st->db);
        return 0;
}

int store_lkc_update(struct store *st, const struct store_lkc *lkc)
{
        int rc = run(st,
                     "UPDATE lkc SET name = ?, region = ?, type = ?, ingress_mbps = ?, egress_mbps = ?, "
                     "partitions = ?,"
                     " pkc_id = ?, reason = ?, first_generation = ?, deleting = ?, delete_generation = ?,"
                     " resource_version = ?, updated_at_ms = ? WHERE id = ?",
                     "sssddissibiiis", lkc->name, lkc->region, lkc->type, lkc->ingress_mbps, lkc->egress_mbps,
                     lkc->partitions, lkc->pkc_id, lkc->reason, lkc->first_generation, (int)lkc->deleting,
                     lkc->delete_generation, lkc->resource_version, lkc->updated_at_ms, lkc->id);
        return rc < 0 ? rc : rc == 0 ? -ENOENT : 0;
}

int store_lkc_get(struct store *st, const char *id, struct store_lkc *out)
{
        sqlite3_stmt *stmt;
        if (query(st, &stmt, "SELECT " LKC_COLUMNS " FROM lkc WHERE id = ?", "s", id) < 0)
                return -EIO;
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW)
                read_lkc(stmt, out);
        sqlite3_finalize(stmt);
        return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
}

int store_lkc_delete(struct store *st, const char *id)
{
        int rc = run(st, "DELETE FROM lkc WHERE id = ?", "s", id);
        return rc < 0 ? rc : rc == 0 ? -ENOENT : 0;
}

int store_lkc_list(struct store *st, const char *pkc_id, int64_t after_seq, int limit, struct store_lkc **out)
{
        sqlite3_stmt *stmt;
        int rc =
            pkc_id
                ? query(st, &stmt,
                        "SELECT " LKC_COLUMNS " FROM lkc WHERE pkc_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                        "sii", pkc_id, after_seq, (int64_t)(limit > 0 ? limit : -1))
                : query(st, &stmt, "SELECT " LKC_COLUMNS " FROM lkc WHERE seq > ? ORDER BY seq LIMIT ?", "ii",
                        after_seq, (int64_t)(limit > 0 ? limit : -1));
        if (rc < 0)
                return rc;
        return collect(stmt, sizeof(**out), read_lkc, (void **)out);
}

static void read_load(sqlite3_stmt *stmt, int col, struct store_load *out)
{
        out->ingress_mbps = (double)sqlite3_column_int64(stmt, col) / 1e6;
        out->egress_mbps = (double)sqlite3_column_int64(stmt, col + 1) / 1e6;
        out->partitions = sqlite3_column_int64(stmt, col + 2);
        out->tenants = sqlite3_column_int64(stmt, col + 3);
}

int store_pkc_load(struct store *st, const char *pkc_id, const char *except_lkc, struct store_load *out)
{
        sqlite3_stmt *stmt;
        memset(out, 0, sizeof(*out));
        /* The totals (migration 2) less <except_lkc>'s own share if it counts here. */
#define EXCEPT(expr) "COALESCE((SELECT " expr " FROM lkc WHERE lkc.id = ?1 AND " OF_PKC "), 0)"
        if (query(st, &stmt,
                  "SELECT load_ingress_umbps - " EXCEPT(UMBPS("ingress_mbps")) ","
                  " load_egress_umbps - " EXCEPT(UMBPS("egress_mbps")) ","
                  " load_partitions - " EXCEPT("partitions") ","
                  " load_tenants - " EXCEPT("1") " FROM pkc WHERE pkc.id = ?2",
                  "ss", except_lkc ? except_lkc : "", pkc_id) < 0)
                return -EIO;
#undef EXCEPT
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW)
                read_load(stmt, 0, out);
        sqlite3_finalize(stmt);
        return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -EIO; /* no such PKC: no load */
}

/* ---- API keys -------------------------------------------------------------------------- */

#define KEY_COLUMNS                                                                                          \
        "seq, key, lkc_id, created_at_ms, sha256_salt, sha256_iterations, sha256_stored_key, "               \
        "sha256_server_key, sha512_salt, sha512_iterations, sha512_stored_key, sha512_server_key"

static void read_scram(sqlite3_stmt *stmt, int col, struct store_scram *s)
{
        col_text(stmt, col, s->salt, sizeof(s->salt));
        s->iterations = sqlite3_column_int(stmt, col + 1);
        col_text(stmt, col + 2, s->stored_key, sizeof(s->stored_key));
        col_text(stmt, col + 3, s->server_key, sizeof(s->server_key));
}

static void read_key(sqlite3_stmt *stmt, void *out)
{
        struct store_api_key *k = out;
        k->seq = sqlite3_column_int64(stmt, 0);
        col_text(stmt, 1, k->key, sizeof(k->key));
        col_text(stmt, 2, k->lkc_id, sizeof(k->lkc_id));
        k->created_at_ms = sqlite3_column_int64(stmt, 3);
        read_scram(stmt, 4, &k->sha256);
        read_scram(stmt, 8, &k->sha512);
}

int store_api_key_insert(struct store *st, struct store_api_key *k)
{
        int rc =
            run(st,
                "INSERT INTO api_key (key, lkc_id, created_at_ms, sha256_salt, sha256_iterations,"
                " sha256_stored_key, sha256_server_key, sha512_salt, sha512_iterations, sha512_stored_key,"
                " sha512_server_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                "ssisisssiss", k->key, k->lkc_id, k->created_at_ms, k->sha256.salt,
                (int64_t)k->sha256.iterations, k->sha256.stored_key, k->sha256.server_key, k->sha512.salt,
                (int64_t)k->sha512.iterations, k->sha512.stored_key, k->sha512.server_key);
        if (rc < 0)
                return rc;
        k->seq = sqlite3_last_insert_rowid(st->db);
        return 0;
}

int store_api_key_delete(struct store *st, const char *lkc_id, const char *key)
{
        int rc = run(st, "DELETE FROM api_key WHERE lkc_id = ? AND key = ?", "ss", lkc_id, key);
        return rc < 0 ? rc : rc == 0 ? -ENOENT : 0;
}

int store_api_key_delete_all(struct store *st, const char *lkc_id)
{
        int rc = run(st, "DELETE FROM api_key WHERE lkc_id = ?", "s", lkc_id);
        return rc < 0 ? rc : 0;
}

int store_api_key_list(struct store *st, const char *lkc_id, int64_t after_seq, int limit,
                       struct store_api_key **out)
{
        sqlite3_stmt *stmt;
        if (query(st, &stmt,
                  "SELECT " KEY_COLUMNS " FROM api_key WHERE lkc_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                  "sii", lkc_id, after_seq, (int64_t)(limit > 0 ? limit : -1)) < 0)
                return -EIO;
        return collect(stmt, sizeof(**out), read_key, (void **)out);
}

/* ---- physical clusters ----------------------------------------------------------------- */

#define PKC_COLUMNS                                                                                          \
        "seq, id, region, type, satellite, revision, generation, deleted, created_at_ms, "                   \
        "observed_generation, phase, bootstrap, message, brokers, healthy_brokers, lb_healthy, "             \
        "status_time_ms"

static void read_pkc(sqlite3_stmt *stmt, void *out)
{
        struct store_pkc *p = out;
        p->seq = sqlite3_column_int64(stmt, 0);
        col_text(stmt, 1, p->id, sizeof(p->id));
        col_text(stmt, 2, p->region, sizeof(p->region));
        col_text(stmt, 3, p->type, sizeof(p->type));
        col_text(stmt, 4, p->satellite, sizeof(p->satellite));
        col_text(stmt, 5, p->revision, sizeof(p->revision));
        p->generation = sqlite3_column_int64(stmt, 6);
        p->deleted = sqlite3_column_int(stmt, 7) != 0;
        p->created_at_ms = sqlite3_column_int64(stmt, 8);
        p->observed_generation = sqlite3_column_int64(stmt, 9);
        col_text(stmt, 10, p->phase, sizeof(p->phase));
        col_text(stmt, 11, p->bootstrap, sizeof(p->bootstrap));
        col_text(stmt, 12, p->message, sizeof(p->message));
        p->brokers = sqlite3_column_int(stmt, 13);
        p->healthy_brokers = sqlite3_column_int(stmt, 14);
        p->lb_healthy = sqlite3_column_int(stmt, 15) != 0;
        p->status_time_ms = sqlite3_column_int64(stmt, 16);
}

int store_pkc_insert(struct store *st, struct store_pkc *p)
{
        int rc =
            run(st,
                "INSERT INTO pkc (id, region, type, satellite, revision, generation, deleted, created_at_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                "sssssibi", p->id, p->region, p->type, p->satellite, p->revision, p->generation,
                (int)p->deleted, p->created_at_ms);
        if (rc < 0)
                return rc;
        p->seq = sqlite3_last_insert_rowid(st->db);
        return 0;
}

int store_pkc_update(struct store *st, const struct store_pkc *p)
{
        int rc = run(
            st,
            "UPDATE pkc SET generation = ?, deleted = ?, observed_generation = ?, phase = ?, bootstrap = ?,"
            " message = ?, brokers = ?, healthy_brokers = ?, lb_healthy = ?, status_time_ms = ?"
            " WHERE id = ?",
            "ibisssiibis", p->generation, (int)p->deleted, p->observed_generation, p->phase, p->bootstrap,
            p->message, (int64_t)p->brokers, (int64_t)p->healthy_brokers, (int)p->lb_healthy,
            p->status_time_ms, p->id);
        return rc < 0 ? rc : rc == 0 ? -ENOENT : 0;
}

int store_pkc_get(struct store *st, const char *id, struct store_pkc *out)
{
        sqlite3_stmt *stmt;
        if (query(st, &stmt, "SELECT " PKC_COLUMNS " FROM pkc WHERE id = ?", "s", id) < 0)
                return -EIO;
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW)
                read_pkc(stmt, out);
        sqlite3_finalize(stmt);
        return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
}

int store_pkc_delete(struct store *st, const char *id)
{
        if (run(st, "DELETE FROM psc WHERE pkc_id = ?", "s", id) < 0)
                return -EIO;
        int rc = run(st, "DELETE FROM pkc WHERE id = ?", "s", id);
        return rc < 0 ? rc : rc == 0 ? -ENOENT : 0;
}

int store_pkc_list(struct store *st, const char *region, int64_t after_seq, int limit, struct store_pkc **out)
{
        sqlite3_stmt *stmt;
        int rc =
            region
                ? query(st, &stmt,
                        "SELECT " PKC_COLUMNS " FROM pkc WHERE region = ? AND seq > ? ORDER BY seq LIMIT ?",
                        "sii", region, after_seq, (int64_t)(limit > 0 ? limit : -1))
                : query(st, &stmt, "SELECT " PKC_COLUMNS " FROM pkc WHERE seq > ? ORDER BY seq LIMIT ?", "ii",
                        after_seq, (int64_t)(limit > 0 ? limit : -1));
        if (rc < 0)
                return rc;
        return collect(stmt, sizeof(**out), read_pkc, (void **)out);
}

static void read_pkc_loaded(sqlite3_stmt *stmt, void *out)
{
        struct store_pkc_loaded *p = out;
        read_pkc(stmt, &p->pkc);
        read_load(stmt, 17, &p->load);
}

int store_pkc_list_loaded(struct store *st, const char *region, struct store_pkc_loaded **out)
{
        sqlite3_stmt *stmt;
        if (query(st, &stmt,
                  "SELECT " PKC_COLUMNS ", load_ingress_umbps, load_egress_umbps, load_partitions, load_tenants"
                  " FROM pkc WHERE region = ? ORDER BY seq",
                  "s", region) < 0)
                return -EIO;
        return collect(stmt, sizeof(**out), read_pkc_loaded, (void **)out);
}

int store_psc_put(struct store *st, const char *pkc_id, int64_t generation, const char *json)
{
        int rc =
            run(st,
                "INSERT INTO psc (pkc_id, generation, json) VALUES (?, ?, ?) ON CONFLICT(pkc_id) DO UPDATE"
                " SET generation = excluded.generation, json = excluded.json",
                "sis", pkc_id, generation, json);
        return rc < 0 ? rc : 0;
}

int store_psc_each(struct store *st, store_psc_fn *fn, void *arg)
{
        sqlite3_stmt *stmt;
        if (query(st, &stmt,
                  "SELECT psc.pkc_id, pkc.satellite, psc.generation, psc.json FROM psc JOIN pkc ON pkc.id = "
                  "psc.pkc_id"
                  " ORDER BY pkc.seq",
                  NULL) < 0)
                return -EIO;
        int n = 0, rc;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                fn(arg, (const char *)sqlite3_column_text(stmt, 0),
                   (const char *)sqlite3_column_text(stmt, 1), sqlite3_column_int64(stmt, 2),
                   (const char *)sqlite3_column_text(stmt, 3));
                n++;
        }
        sqlite3_finalize(stmt);
        return rc == SQLITE_DONE ? n : -EIO;
}

/* ---- satellites ------------------------------------------------------------------------ */

#define SAT_COLUMNS "seq, id, region, version, last_heartbeat_ms, first_seen_ms, pkcs"

static void read_sat(sqlite3_stmt *stmt, void *out)
{
        struct store_satellite *s = out;
        s->seq = sqlite3_column_int64(stmt, 0);
        col_text(stmt, 1, s->id, sizeof(s->id));
        col_text(stmt, 2, s->region, sizeof(s->region));
        col_text(stmt, 3, s->version, sizeof(s->version));
        s->last_heartbeat_ms = sqlite3_column_int64(stmt, 4);
        s->first_seen_ms = sqlite3_column_int64(stmt, 5);
        s->pkcs = sqlite3_column_int(stmt, 6);
}

int store_satellite_upsert(struct store *st, const struct store_satellite *sat)
{
        struct store_satellite old;
        int rc = store_satellite_get(st, sat->id, &old);
        if (rc == -ENOENT) {
                rc = run(st,
                         "INSERT INTO satellite (id, region, version, last_heartbeat_ms, first_seen_ms, pkcs)"
                         " VALUES (?, ?, ?, ?, ?, ?)",
                         "sssiii", sat->id, sat->region, sat->version, sat->last_heartbeat_ms,
                         sat->first_seen_ms, (int64_t)sat->pkcs);
                return rc < 0 ? rc : 1;
        }
        if (rc < 0)
                return rc;
        if (sat->last_heartbeat_ms < old.last_heartbeat_ms)
                return 0; /* an older heartbeat replayed from the topic */
        rc = run(st,
                 "UPDATE satellite SET region = ?, version = ?, last_heartbeat_ms = ?, pkcs = ? WHERE id = ?",
                 "ssiis", sat->region, sat->version, sat->last_heartbeat_ms, (int64_t)sat->pkcs, sat->id);
        return rc < 0 ? rc : 0;
}

int store_satellite_get(struct store *st, const char *id, struct store_satellite *out)
{
        sqlite3_stmt *stmt;
        if (query(st, &stmt, "SELECT " SAT_COLUMNS " FROM satellite WHERE id = ?", "s", id) < 0)
                return -EIO;
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW)
                read_sat(stmt, out);
        sqlite3_finalize(stmt);
        return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
}

int store_satellite_list(struct store *st, const char *region, int64_t after_seq, int limit,
                         struct store_satellite **out)
{
        sqlite3_stmt *stmt;
        int rc = region ? query(st, &stmt,
                                "SELECT " SAT_COLUMNS
                                " FROM satellite WHERE region = ? AND seq > ? ORDER BY seq LIMIT ?",
                                "sii", region, after_seq, (int64_t)(limit > 0 ? limit : -1))
                        : query(st, &stmt,
                                "SELECT " SAT_COLUMNS " FROM satellite WHERE seq > ? ORDER BY seq LIMIT ?",
                                "ii", after_seq, (int64_t)(limit > 0 ? limit : -1));
        if (rc < 0)
                return rc;
        return collect(stmt, sizeof(**out), read_sat, (void **)out);
}

/* ---- regions --------------------------------------------------------------------------- */

static void read_region(sqlite3_stmt *stmt, void *out)
{
        struct store_region *r = out;
        col_text(stmt, 0, r->name, sizeof(r->name));
        r->satellites = sqlite3_column_int(stmt, 1);
        r->stale_satellites = sqlite3_column_int(stmt, 2);
        r->physical_clusters = sqlite3_column_int(stmt, 3);
        r->logical_clusters = sqlite3_column_int(stmt, 4);
}

int store_region_list(struct store *st, int64_t stale_before_ms, struct store_region **out)
{
        sqlite3_stmt *stmt;
        if (query(st, &stmt,
                  "SELECT s.region, COUNT(*), SUM(s.last_heartbeat_ms < ?),"
                  " (SELECT COUNT(*) FROM pkc WHERE pkc.region = s.region),"
                  " (SELECT COUNT(*) FROM lkc WHERE lkc.region = s.region)"
                  " FROM satellite s GROUP BY s.region ORDER BY s.region",
                  "i", stale_before_ms) < 0)
                return -EIO;
        return collect(stmt, sizeof(**out), read_region, (void **)out);
}

/* ---- idempotency ----------------------------------------------------------------------- */

int store_idem_get(struct store *st, const char *scope, const char *key, char *body_hash, unsigned *status,
                   char **response)
{
        sqlite3_stmt *stmt;
        if (query(st, &stmt,
                  "SELECT body_hash, status, response FROM idempotency WHERE scope = ? AND key = ?", "ss",
                  scope, key) < 0)
                return -EIO;
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW) {
                col_text(stmt, 0, body_hash, 65);
                *status = (unsigned)sqlite3_column_int(stmt, 1);
                *response = xstrdup((const char *)sqlite3_column_text(stmt, 2));
        }
        sqlite3_finalize(stmt);
        return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
}

int store_idem_put(struct store *st, const char *scope, const char *key, const char *body_hash,
                   unsigned status, const char *response, int64_t now_ms)
{
        int rc = run(st,
                     "INSERT INTO idempotency (scope, key, body_hash, status, response, created_at_ms)"
                     " VALUES (?, ?, ?, ?, ?, ?)",
                     "sssisi", scope, key, body_hash, (int64_t)status, response, now_ms);
        return rc < 0 ? rc : 0;
}

int store_idem_purge(struct store *st, int64_t before_ms)
{
        return run(st, "DELETE FROM idempotency WHERE created_at_ms < ?", "i", before_ms);
}
