/* Unit tests of the mothership store (src/mothership/store.h) on a real SQLite file in
 * test_tmpdir: migrations, WAL, records surviving a reopen, transactions. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mothership/store.h"
#include "test.h"

static void db_path(char *out, size_t len)
{
        snprintf(out, len, "%s/stratus.db", test_tmpdir);
}

TEST(store_migrations_apply_in_order_once)
{
        char path[300], err[512];
        db_path(path, sizeof(path));
        struct store *st = NULL;
        CHECK_EQ(store_open(path, &st, err, sizeof(err)), 0);
        CHECK_EQ(store_schema_version(st), store_migrations[store_nmigrations - 1].version);
        char mode[16];
        CHECK_EQ(store_pragma(st, "journal_mode", mode, sizeof(mode)), 0);
        CHECK(strcmp(mode, "wal") == 0);
        store_close(st);
        /* Reopening applies nothing again (a second CREATE TABLE would fail). */
        st = NULL;
        CHECK_EQ(store_open(path, &st, err, sizeof(err)), 0);
        CHECK_EQ(store_schema_version(st), store_migrations[store_nmigrations - 1].version);
        store_close(st);
}

TEST(store_migrates_an_older_database_forward)
{
        char path[300], err[512];
        db_path(path, sizeof(path));
        static const struct store_migration v1[] = {
            {1, "things",
             "CREATE TABLE thing (id INTEGER PRIMARY KEY, name TEXT);"
             "INSERT INTO thing (name) VALUES ('kept');"},
        };
        static const struct store_migration v2[] = {
            {1, "things",
             "CREATE TABLE thing (id INTEGER PRIMARY KEY, name TEXT);"
             "INSERT INTO thing (name) VALUES ('kept');"},
            {2, "thing colour", "ALTER TABLE thing ADD COLUMN colour TEXT NOT NULL DEFAULT 'blue';"},
            {3, "more things", "INSERT INTO thing (name) VALUES ('new');"},
        };
        struct store *st = NULL;
        CHECK_EQ(store_open_with(path, v1, 1, &st, err, sizeof(err)), 0);
        CHECK_EQ(store_schema_version(st), 1);
        store_close(st);
        st = NULL;
        CHECK_EQ(store_open_with(path, v2, 3, &st, err, sizeof(err)), 0);
        CHECK_EQ(store_schema_version(st), 3);
        store_close(st);
        /* The old binary refuses the newer file rather than guessing. */
        st = NULL;
        CHECK_EQ(store_open_with(path, v1, 1, &st, err, sizeof(err)), -EPROTO);
        CHECK(st == NULL);
        CHECK(strstr(err, "version 3") != NULL);
}

TEST(store_failed_migration_rolls_back_and_names_the_step)
{
        char path[300], err[512];
        db_path(path, sizeof(path));
        static const struct store_migration steps[] = {
            {1, "things", "CREATE TABLE thing (id INTEGER PRIMARY KEY);"},
            {2, "broken", "CREATE TABLE half (id INTEGER); INSERT INTO nowhere VALUES (1);"},
        };
        struct store *st = NULL;
        CHECK_EQ(store_open_with(path, steps, 2, &st, err, sizeof(err)), -EIO);
        CHECK(strstr(err, "migration 2 (broken)") != NULL);
        /* Step 1 stayed; step 2's first statement was rolled back with it. */
        static const struct store_migration fixed[] = {
            {1, "things", "CREATE TABLE thing (id INTEGER PRIMARY KEY);"},
            {2, "fixed", "CREATE TABLE half (id INTEGER);"},
        };
        CHECK_EQ(store_open_with(path, fixed, 2, &st, err, sizeof(err)), 0);
        CHECK_EQ(store_schema_version(st), 2);
        store_close(st);
}

static void fill_lkc(struct store_lkc *lkc, const char *id, const char *pkc_id)
{
        memset(lkc, 0, sizeof(*lkc));
        snprintf(lkc->id, sizeof(lkc->id), "%s", id);
        snprintf(lkc->name, sizeof(lkc->name), "name-%s", id);
        snprintf(lkc->region, sizeof(lkc->region), "local");
        snprintf(lkc->type, sizeof(lkc->type), "basic");
        snprintf(lkc->pkc_id, sizeof(lkc->pkc_id), "%s", pkc_id);
        lkc->ingress_mbps = 10;
        lkc->egress_mbps = 30;
        lkc->partitions = 100;
        lkc->first_generation = 1;
        lkc->resource_version = 1;
}

TEST(store_records_survive_reopen_and_rollback_leaves_nothing)
{
        char path[300], err[512];
        db_path(path, sizeof(path));
        struct store *st = NULL;
        CHECK_EQ(store_open(path, &st, err, sizeof(err)), 0);
        struct store_lkc lkc;
        CHECK_EQ(store_begin(st), 0);
        fill_lkc(&lkc, "lkc-aaaaaa", "pkc-aaaaaa");
        CHECK_EQ(store_lkc_insert(st, &lkc), 0);
        CHECK_EQ(store_psc_put(st, "pkc-aaaaaa", 1, "{}"), 0);
        CHECK_EQ(store_commit(st), 0);
        /* A transaction that is not committed leaves nothing behind. */
        CHECK_EQ(store_begin(st), 0);
        fill_lkc(&lkc, "lkc-bbbbbb", "pkc-aaaaaa");
        CHECK_EQ(store_lkc_insert(st, &lkc), 0);
        store_rollback(st);
        fill_lkc(&lkc, "lkc-aaaaaa", "pkc-aaaaaa");
        CHECK_EQ(store_lkc_insert(st, &lkc), -EEXIST);
        store_close(st);

        st = NULL;
        CHECK_EQ(store_open(path, &st, err, sizeof(err)), 0);
        struct store_lkc got;
        CHECK_EQ(store_lkc_get(st, "lkc-aaaaaa", &got), 0);
        CHECK(strcmp(got.name, "name-lkc-aaaaaa") == 0);
        CHECK_EQ(got.partitions, 100);
        CHECK_EQ(store_lkc_get(st, "lkc-bbbbbb", &got), -ENOENT);
        store_close(st);
}

TEST(store_lists_in_creation_order_from_a_cursor)
{
        char path[300], err[512];
        db_path(path, sizeof(path));
        struct store *st = NULL;
        CHECK_EQ(store_open(path, &st, err, sizeof(err)), 0);
        const char *ids[] = {"lkc-zzzzzz", "lkc-aaaaaa", "lkc-mmmmmm", "lkc-bbbbbb"};
        for (size_t i = 0; i < 4; i++) {
                struct store_lkc lkc;
                fill_lkc(&lkc, ids[i], i % 2 ? "pkc-one111" : "pkc-two222");
                CHECK_EQ(store_lkc_insert(st, &lkc), 0);
        }
        struct store_lkc *page = NULL;
        CHECK_EQ(store_lkc_list(st, NULL, 0, 3, &page), 3);
        CHECK(strcmp(page[0].id, "lkc-zzzzzz") == 0 && strcmp(page[2].id, "lkc-mmmmmm") == 0);
        int64_t cursor = page[2].seq;
        free(page);
        CHECK_EQ(store_lkc_list(st, NULL, cursor, 3, &page), 1);
        CHECK(strcmp(page[0].id, "lkc-bbbbbb") == 0);
        free(page);
        CHECK_EQ(store_lkc_list(st, "pkc-one111", 0, 0, &page), 2);
        CHECK(strcmp(page[0].id, "lkc-aaaaaa") == 0 && strcmp(page[1].id, "lkc-bbbbbb") == 0);
        free(page);
        store_close(st);
}

TEST(store_idempotency_records_expire)
{
        char path[300], err[512];
        db_path(path, sizeof(path));
        struct store *st = NULL;
        CHECK_EQ(store_open(path, &st, err, sizeof(err)), 0);
        CHECK_EQ(store_idem_put(st, "POST /v1/clusters", "k1", "h1", 202, "{\"id\":1}", 1000), 0);
        CHECK_EQ(store_idem_put(st, "POST /v1/clusters", "k2", "h2", 202, "{\"id\":2}", 5000), 0);
        char hash[65];
        unsigned status = 0;
        char *resp = NULL;
        CHECK_EQ(store_idem_get(st, "POST /v1/clusters", "k1", hash, &status, &resp), 0);
        CHECK_EQ(status, 202);
        CHECK(strcmp(hash, "h1") == 0 && strcmp(resp, "{\"id\":1}") == 0);
        free(resp);
        CHECK_EQ(store_idem_get(st, "POST /v1/other", "k1", hash, &status, &resp), -ENOENT);
        CHECK_EQ(store_idem_purge(st, 2000), 1);
        CHECK_EQ(store_idem_get(st, "POST /v1/clusters", "k1", hash, &status, &resp), -ENOENT);
        CHECK_EQ(store_idem_get(st, "POST /v1/clusters", "k2", hash, &status, &resp), 0);
        free(resp);
        store_close(st);
}

TEST(store_satellite_heartbeats_only_move_forward)
{
        char path[300], err[512];
        db_path(path, sizeof(path));
        struct store *st = NULL;
        CHECK_EQ(store_open(path, &st, err, sizeof(err)), 0);
        struct store_satellite sat = {.id = "sat-local-1",
                                      .region = "local",
                                      .version = "0.3",
                                      .last_heartbeat_ms = 2000,
                                      .first_seen_ms = 2000};
        CHECK_EQ(store_satellite_upsert(st, &sat), 1);
        sat.last_heartbeat_ms = 1000; /* replayed from the topic */
        CHECK_EQ(store_satellite_upsert(st, &sat), 0);
        struct store_satellite got;
        CHECK_EQ(store_satellite_get(st, "sat-local-1", &got), 0);
        CHECK_EQ(got.last_heartbeat_ms, 2000);
        struct store_region *regions = NULL;
        CHECK_EQ(store_region_list(st, 2500, &regions), 1);
        CHECK(strcmp(regions[0].name, "local") == 0);
        CHECK_EQ(regions[0].satellites, 1);
        CHECK_EQ(regions[0].stale_satellites, 1);
        free(regions);
        store_close(st);
}

static void add_pkc(struct store *st, const char *id, const char *region)
{
        struct store_pkc p;
        memset(&p, 0, sizeof(p));
        snprintf(p.id, sizeof(p.id), "%s", id);
        snprintf(p.region, sizeof(p.region), "%s", region);
        snprintf(p.type, sizeof(p.type), "multi_tenant");
        snprintf(p.satellite, sizeof(p.satellite), "sat-1");
        snprintf(p.revision, sizeof(p.revision), "r1");
        p.generation = 1;
        CHECK_EQ(store_pkc_insert(st, &p), 0);
}

/* Placement's one query: every PKC of the region, in creation order, with the sums
 * store_pkc_load() gives one at a time (LKCs being deleted left out, empty PKCs 0). */
TEST(store_region_pkcs_come_with_their_load)
{
        char path[300], err[512];
        db_path(path, sizeof(path));
        struct store *st = NULL;
        CHECK_EQ(store_open(path, &st, err, sizeof(err)), 0);
        add_pkc(st, "pkc-full11", "local");
        add_pkc(st, "pkc-other1", "elsewhere");
        add_pkc(st, "pkc-empty1", "local");
        add_pkc(st, "pkc-half11", "local");
        const char *ids[] = {"lkc-aaaaaa", "lkc-bbbbbb", "lkc-cccccc", "lkc-dddddd", "lkc-eeeeee"};
        const char *on[] = {"pkc-full11", "pkc-full11", "pkc-half11", "pkc-other1", "pkc-full11"};
        for (size_t i = 0; i < 5; i++) {
                struct store_lkc lkc;
                fill_lkc(&lkc, ids[i], on[i]);
                lkc.partitions = 10 * (int)(i + 1);
                lkc.deleting = i == 4;
                CHECK_EQ(store_lkc_insert(st, &lkc), 0);
        }
        struct store_pkc_loaded *got = NULL;
        CHECK_EQ(store_pkc_list_loaded(st, "local", &got), 3);
        CHECK(strcmp(got[0].pkc.id, "pkc-full11") == 0 && strcmp(got[1].pkc.id, "pkc-empty1") == 0 &&
              strcmp(got[2].pkc.id, "pkc-half11") == 0);
        CHECK_EQ(got[0].load.tenants, 2);
        CHECK_EQ(got[0].load.partitions, 30);
        CHECK(got[0].load.ingress_mbps == 20 && got[0].load.egress_mbps == 60);
        CHECK_EQ(got[1].load.tenants, 0);
        CHECK_EQ(got[1].load.partitions, 0);
        CHECK_EQ(got[2].load.tenants, 1);
        CHECK_EQ(got[2].load.partitions, 30);
        for (int i = 0; i < 3; i++) {
                struct store_load one;
                CHECK_EQ(store_pkc_load(st, got[i].pkc.id, NULL, &one), 0);
                CHECK(one.tenants == got[i].load.tenants && one.partitions == got[i].load.partitions &&
                      one.ingress_mbps == got[i].load.ingress_mbps);
        }
        free(got);
        CHECK_EQ(store_pkc_list_loaded(st, "nowhere", &got), 0);
        free(got);
        store_close(st);
}

/* What store_pkc_load() must say, summed here from the LKC rows. */
static struct store_load load_from_rows(struct store *st, const char *pkc_id, const char *except)
{
        struct store_load want = {0};
        struct store_lkc *lkcs = NULL;
        int n = store_lkc_list(st, pkc_id, 0, 0, &lkcs);
        for (int i = 0; i < n; i++) {
                if (lkcs[i].deleting || (except && strcmp(lkcs[i].id, except) == 0))
                        continue;
                want.ingress_mbps += lkcs[i].ingress_mbps;
                want.egress_mbps += lkcs[i].egress_mbps;
                want.partitions += lkcs[i].partitions;
                want.tenants++;
        }
        free(lkcs);
        return want;
}

static bool near(double a, double b)
{
        return a - b < 1e-6 && b - a < 1e-6;
}

static bool load_matches_rows(struct store *st, const char *pkc_id, const char *except)
{
        struct store_load got, want = load_from_rows(st, pkc_id, except);
        if (store_pkc_load(st, pkc_id, except, &got) < 0)
                return false;
        return near(got.ingress_mbps, want.ingress_mbps) && near(got.egress_mbps, want.egress_mbps) &&
               got.partitions == want.partitions && got.tenants == want.tenants;
}

/* The totals in the PKC rows follow every kind of LKC change (insert, resize, move,
 * mark deleting, delete, a rolled-back transaction), and rates with fractions added
 * and taken away many times leave no rounding behind. */
TEST(store_pkc_load_totals_follow_every_lkc_change)
{
        char path[300], err[512];
        db_path(path, sizeof(path));
        struct store *st = NULL;
        CHECK_EQ(store_open(path, &st, err, sizeof(err)), 0);
        const char *pkcs[] = {"pkc-one111", "pkc-two222", "pkc-three3"};
        for (int i = 0; i < 3; i++)
                add_pkc(st, pkcs[i], "local");
        uint32_t seed = 12345;
        char ids[40][32];
        bool live[40] = {false};
        for (int step = 0; step < 600; step++) {
                seed = seed * 1103515245u + 12345u;
                int k = (int)((seed >> 8) % 40), op = (int)((seed >> 16) % 5);
                const char *pkc = pkcs[(seed >> 4) % 3];
                snprintf(ids[k], sizeof(ids[k]), "lkc-%06d", k);
                struct store_lkc lkc;
                if (!live[k]) {
                        fill_lkc(&lkc, ids[k], pkc);
                        lkc.ingress_mbps = 0.1 * (double)(k + 1);
                        lkc.egress_mbps = 0.3 * (double)(k % 7 + 1);
                        lkc.partitions = k + 1;
                        CHECK_EQ(store_lkc_insert(st, &lkc), 0);
                        live[k] = true;
                        continue;
                }
                CHECK_EQ(store_lkc_get(st, ids[k], &lkc), 0);
                if (op == 0) { /* resize */
                        lkc.ingress_mbps += 0.7;
                        lkc.partitions += 3;
                        CHECK_EQ(store_lkc_update(st, &lkc), 0);
                } else if (op == 1) { /* moved to another PKC */
                        snprintf(lkc.pkc_id, sizeof(lkc.pkc_id), "%s", pkc);
                        CHECK_EQ(store_lkc_update(st, &lkc), 0);
                } else if (op == 2) { /* being deleted */
                        lkc.deleting = true;
                        CHECK_EQ(store_lkc_update(st, &lkc), 0);
                } else if (op == 3) {
                        CHECK_EQ(store_lkc_delete(st, ids[k]), 0);
                        live[k] = false;
                } else { /* a change rolled back leaves the totals as they were */
                        CHECK_EQ(store_begin(st), 0);
                        lkc.egress_mbps += 5;
                        CHECK_EQ(store_lkc_update(st, &lkc), 0);
                        store_rollback(st);
                }
                for (int i = 0; i < 3; i++)
                        CHECK(load_matches_rows(st, pkcs[i], NULL));
        }
        /* Less one LKC (a quota update checks the others): on its PKC or another. */
        for (int k = 0; k < 40; k++)
                for (int i = 0; i < 3 && live[k]; i++)
                        CHECK(load_matches_rows(st, pkcs[i], ids[k]));
        /* Everything gone: exactly zero, not a rounding remainder. */
        for (int k = 0; k < 40; k++)
                if (live[k])
                        CHECK_EQ(store_lkc_delete(st, ids[k]), 0);
        for (int i = 0; i < 3; i++) {
                struct store_load l;
                CHECK_EQ(store_pkc_load(st, pkcs[i], NULL, &l), 0);
                CHECK(l.ingress_mbps == 0 && l.egress_mbps == 0 && l.partitions == 0 && l.tenants == 0);
        }
        store_close(st);
}

/* A database made before the totals existed gets them from its rows when it opens. */
TEST(store_pkc_load_totals_filled_in_for_an_older_database)
{
        char path[300], err[512];
        db_path(path, sizeof(path));
        struct store *st = NULL;
        CHECK_EQ(store_open_with(path, store_migrations, 1, &st, err, sizeof(err)), 0);
        add_pkc(st, "pkc-old111", "local");
        for (int i = 0; i < 3; i++) {
                struct store_lkc lkc;
                char id[32];
                snprintf(id, sizeof(id), "lkc-old%03d", i);
                fill_lkc(&lkc, id, "pkc-old111");
                lkc.deleting = i == 2;
                CHECK_EQ(store_lkc_insert(st, &lkc), 0);
        }
        store_close(st);
        st = NULL;
        CHECK_EQ(store_open(path, &st, err, sizeof(err)), 0);
        CHECK(store_schema_version(st) >= 2);
        struct store_load l;
        CHECK_EQ(store_pkc_load(st, "pkc-old111", NULL, &l), 0);
        CHECK(l.tenants == 2 && l.partitions == 200 && l.ingress_mbps == 20 && l.egress_mbps == 60);
        CHECK(load_matches_rows(st, "pkc-old111", "lkc-old000"));
        store_close(st);
}
