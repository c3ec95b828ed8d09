/* Unit tests of the PSC module (src/psc): strict parsing that names the JSON path,
 * deterministic emission, the brokers' tenants file (loaded by the broker's own loader),
 * status and heartbeat documents, and the completion policy with its golden files
 * (tests/unit/golden/psc/<case>.partial.json -> <case>.full.json; STRATUS_UPDATE_GOLDEN=1
 * rewrites the .full.json files from the current code). */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "broker/auth/tenants.h"
#include "broker/config.h"
#include "psc/psc.h"
#include "test.h"

#define SALT "c2FsdC1vbmU="
#define K32A "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define K32B "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
#define K64A "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="
#define K64B "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl9gYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+fw=="
#define SCRAM256                                                                                             \
        "{\"salt\":\"" SALT "\",\"iterations\":4096,\"stored_key\":\"" K32A "\",\"server_key\":\"" K32B "\"" \
                                                                                                        "}"
#define SCRAM512                                                                                             \
        "{\"salt\":\"" SALT "\",\"iterations\":8192,\"stored_key\":\"" K64A "\",\"server_key\":\"" K64B "\"" \
                                                                                                        "}"

/* A partial PSC with two tenants: one with quotas and both credentials, one unlimited. */
static const char partial_doc[] =
    "{\"api_version\":\"stratus/v1\",\"kind\":\"PhysicalStatefulCluster\",\"id\":\"pkc-abc123\","
    "\"product\":\"kafka\",\"satellite\":\"sat-local-1\",\"region\":\"local\",\"generation\":7,"
    "\"revision\":\"r1\",\"type\":\"multi_tenant\",\"ingress_mbps\":12.5,\"egress_mbps\":30,"
    "\"partitions\":40,\"tenants\":["
    "{\"id\":\"lkc-aaaaaa\",\"quotas\":{\"produce_bytes_per_sec\":10485760,\"fetch_bytes_per_sec\":0.5,"
    "\"max_connections\":100,\"max_partitions\":20},"
    "\"api_keys\":[{\"key\":\"KEYAAAAAAAAAAAAA\",\"scram_sha_256\":" SCRAM256 ",\"scram_sha_512\":" SCRAM512
    "}]},"
    "{\"id\":\"lkc-bbbbbb\",\"api_keys\":[{\"key\":\"KEYBBBBBBBBBBBBB\",\"scram_sha_256\":" SCRAM256 "}]}]}";

static int parse_str(const char *json, struct psc *out, char *err, size_t err_len)
{
        return psc_parse(json, strlen(json), out, err, err_len);
}

/* <partial_doc> with <from> replaced by <to> (heap). */
static char *doc_with(const char *from, const char *to)
{
        const char *at = strstr(partial_doc, from);
        ASSERT(at);
        return xasprintf("%.*s%s%s", (int)(at - partial_doc), partial_doc, to, at + strlen(from));
}

/* Parses <doc> (freed), expecting an error that contains <want>. */
static int expect_error(char *doc, const char *want)
{
        struct psc psc;
        char err[512] = "";
        int rc = parse_str(doc, &psc, err, sizeof(err));
        free(doc);
        if (rc != -EINVAL || !strstr(err, want)) {
                fprintf(stderr, "  wanted an error with \"%s\", got rc=%d \"%s\"\n", want, rc, err);
                return -1;
        }
        return 0;
}

TEST(psc_parse_reads_a_partial_psc)
{
        struct psc psc;
        char err[256] = "";
        CHECK_EQ(parse_str(partial_doc, &psc, err, sizeof(err)), 0);
        CHECK(strcmp(psc.id, "pkc-abc123") == 0);
        CHECK_EQ(psc.generation, 7);
        CHECK(psc.type == PSC_MULTI_TENANT);
        CHECK(psc.ingress_mbps == 12.5);
        CHECK_EQ(psc.ntenants, 2);
        CHECK_EQ(psc.tenants[0].quotas.max_partitions, 20);
        CHECK(psc.tenants[0].quotas.requests_per_sec < 0);
        CHECK(psc.tenants[1].quotas.produce_bytes_per_sec < 0);
        CHECK(psc.tenants[0].api_keys[0].has_sha512 && psc.tenants[0].api_keys[0].sha512.iterations == 8192);
        CHECK(!psc.tenants[1].api_keys[0].has_sha512);
        CHECK(psc.policy_version == NULL && psc.broker_count == 0 && psc.nbroker_config == 0);
        CHECK(!psc.deleted);
        /* A partial PSC is not a full one. */
        CHECK_EQ(psc_validate_full(&psc, err, sizeof(err)), -EINVAL);
        CHECK(strstr(err, "policy_version") != NULL);
        psc_deinit(&psc);
}

TEST(psc_to_json_is_deterministic_and_round_trips)
{
        struct psc a, b;
        char err[256] = "";
        CHECK_EQ(parse_str(partial_doc, &a, err, sizeof(err)), 0);
        char *text = psc_to_json(&a);
        CHECK_EQ(parse_str(text, &b, err, sizeof(err)), 0);
        char *again = psc_to_json(&b);
        CHECK(strcmp(text, again) == 0);
        /* Fixed key order, whatever the order of the input. */
        CHECK(strncmp(
                  text,
                  "{\n  \"api_version\": \"stratus/v1\",\n  \"kind\": \"PhysicalStatefulCluster\",\n  \"id\"",
                  60) == 0);
        CHECK(strstr(text, "\"ingress_mbps\": 12.5") != NULL);
        CHECK(strstr(text, "\"egress_mbps\": 30,") != NULL);
        CHECK(strstr(text, "\"requests_per_sec\"") == NULL); /* unlimited: left out */
        CHECK(strstr(text, "\"broker_count\"") == NULL);     /* partial: no completion part */
        free(text);
        free(again);
        psc_deinit(&a);
        psc_deinit(&b);
}

TEST(psc_copy_is_deep)
{
        struct psc a, b;
        char err[256] = "";
        CHECK_EQ(parse_str(partial_doc, &a, err, sizeof(err)), 0);
        char *before = psc_to_json(&a);
        psc_copy(&b, &a);
        psc_deinit(&a);
        char *after = psc_to_json(&b);
        CHECK(strcmp(before, after) == 0);
        free(before);
        free(after);
        psc_deinit(&b);
}

TEST(psc_parse_names_unknown_top_level_fields)
{
        CHECK(expect_error(doc_with("\"generation\":7,", "\"generation\":7,\"colour\":1,\"size\":2,"),
                           "unknown top-level fields \"colour\", \"size\"") == 0);
        CHECK(expect_error(doc_with("\"max_partitions\":20", "\"max_partitions\":20,\"max_topics\":3"),
                           "tenants[0].quotas: unknown field \"max_topics\"") == 0);
}

TEST(psc_parse_errors_name_the_json_path)
{
        CHECK(expect_error(doc_with("\"generation\":7", "\"generation\":\"7\""),
                           "generation: must be an integer") == 0);
        CHECK(expect_error(doc_with("\"generation\":7", "\"generation\":0"),
                           "generation: must be an integer from 1") == 0);
        CHECK(expect_error(doc_with("\"id\":\"pkc-abc123\",", ""), "id: missing (required)") == 0);
        CHECK(expect_error(doc_with("\"type\":\"multi_tenant\"", "\"type\":\"shared\""),
                           "type: \"shared\" is not multi_tenant or dedicated") == 0);
        CHECK(expect_error(doc_with("\"kind\":\"PhysicalStatefulCluster\"", "\"kind\":\"Pod\""),
                           "kind: \"Pod\"") == 0);
        CHECK(expect_error(doc_with("\"api_version\":\"stratus/v1\"", "\"api_version\":\"stratus/v9\""),
                           "api_version: \"stratus/v9\" is not served") == 0);
        CHECK(expect_error(doc_with("{\"key\":\"KEYBBBBBBBBBBBBB\",\"scram_sha_256\":{\"salt\":\"" SALT,
                                    "{\"key\":\"KEYBBBBBBBBBBBBB\",\"scram_sha_256\":{\"salt\":\"no*base64"),
                           "tenants[1].api_keys[0].scram_sha_256.salt: must be base64") == 0);
        CHECK(expect_error(doc_with("\"iterations\":8192", "\"iterations\":10"),
                           "tenants[0].api_keys[0].scram_sha_512.iterations: must be an integer from 4096") ==
              0);
        CHECK(expect_error(doc_with("\"max_connections\":100", "\"max_connections\":1.5"),
                           "tenants[0].quotas.max_connections: must be a non-negative integer") == 0);
        CHECK(expect_error(doc_with("{\"key\":\"KEYBBBBBBBBBBBBB\",\"scram_sha_256\":" SCRAM256 "}",
                                    "{\"key\":\"KEYBBBBBBBBBBBBB\"}"),
                           "tenants[1].api_keys[0]: needs scram_sha_256 or scram_sha_512") == 0);
        CHECK(expect_error(doc_with("\"id\":\"lkc-bbbbbb\"", "\"id\":\"lkc-aaaaaa\""),
                           "tenants[1].id: \"lkc-aaaaaa\" appears twice") == 0);
        CHECK(expect_error(doc_with("KEYBBBBBBBBBBBBB", "KEYAAAAAAAAAAAAA"),
                           "tenants[1].api_keys[0].key: \"KEYAAAAAAAAAAAAA\" is used twice") == 0);
        CHECK(expect_error(doc_with("\"tenants\":[", "\"tenants\":{},\"x\":["),
                           "unknown top-level field \"x\"") == 0);
        CHECK(expect_error(xstrdup("{\"api_version\":"), "PSC: not valid JSON: line 1") == 0);
        CHECK(expect_error(xstrdup("[1]"), "PSC: must be a JSON object") == 0);
        CHECK(expect_error(doc_with("\"ingress_mbps\":12.5", "\"ingress_mbps\":-1"),
                           "ingress_mbps: must be a number") == 0);
}

TEST(psc_tenants_file_is_what_the_broker_loads)
{
        struct psc psc;
        char err[256] = "";
        CHECK_EQ(parse_str(partial_doc, &psc, err, sizeof(err)), 0);
        char *text = psc_tenants_file(&psc);
        CHECK(strncmp(text, "{\n  \"tenants\": [", 16) == 0);
        CHECK(strstr(text, "\"requests_per_sec\"") == NULL); /* unlimited: left out */
        CHECK(strstr(text, "\"generation\"") == NULL);
        char path[300];
        snprintf(path, sizeof(path), "%s/tenants.json", test_tmpdir);
        FILE *f = fopen(path, "w");
        CHECK(f && fputs(text, f) >= 0);
        fclose(f);
        free(text);
        struct tenants *t = NULL;
        const void *principal = NULL;
        int rc = tenants_load(path, &t, err, sizeof(err));
        if (rc < 0)
                fprintf(stderr, "  tenants_load: %s\n", err);
        CHECK_EQ(rc, 0);
        CHECK(tenants_lookup(t, "KEYAAAAAAAAAAAAA", SASL_SCRAM_SHA_512, &principal) != NULL);
        CHECK(tenants_lookup(t, "KEYBBBBBBBBBBBBB", SASL_SCRAM_SHA_256, &principal) != NULL);
        CHECK(tenants_lookup(t, "KEYBBBBBBBBBBBBB", SASL_SCRAM_SHA_512, &principal) == NULL);
        tenants_free(t);
        psc_deinit(&psc);
}

TEST(psc_topic_names)
{
        char *topic = psc_topic("sat-local-1");
        CHECK(strcmp(topic, "psc.sat-local-1") == 0);
        free(topic);
        CHECK(strcmp(PSC_STATUS_TOPIC, "stratus.status") == 0);
}

TEST(psc_status_round_trips_and_names_phases)
{
        static const char *const names[] = {"provisioning", "running", "degraded",
                                            "deleting",     "deleted", "failed"};
        for (int i = 0; i < 6; i++) {
                enum psc_phase p;
                CHECK(strcmp(psc_phase_name((enum psc_phase)i), names[i]) == 0);
                CHECK_EQ(psc_phase_parse(names[i], &p), 0);
                CHECK_EQ(p, i);
        }
        enum psc_phase p;
        CHECK_EQ(psc_phase_parse("sleeping", &p), -EINVAL);

        struct psc_broker_status broker = {
            .id = 0, .healthy = true, .pid = 4242, .restarts = 1, .address = "127.0.0.1:19092"};
        struct psc_status st = {.pkc_id = "pkc-abc123",
                                .satellite = "sat-local-1",
                                .revision = "r1",
                                .observed_generation = 7,
                                .phase = PSC_PHASE_DEGRADED,
                                .message = "broker 0 restarting",
                                .bootstrap = "127.0.0.1:19000",
                                .lb_healthy = true,
                                .brokers = &broker,
                                .nbrokers = 1,
                                .time_ms = 1700000000000};
        char *text = psc_status_to_json(&st);
        struct psc_status back;
        char err[256] = "";
        CHECK_EQ(psc_status_parse(text, strlen(text), &back, err, sizeof(err)), 0);
        char *again = psc_status_to_json(&back);
        CHECK(strcmp(text, again) == 0);
        CHECK(back.phase == PSC_PHASE_DEGRADED && back.nbrokers == 1 && back.brokers[0].pid == 4242);
        CHECK(strstr(text, "\"kind\": \"PhysicalStatefulClusterStatus\"") != NULL);
        free(text);
        free(again);
        psc_status_deinit(&back);

        const char *bad =
            "{\"pkc_id\":\"pkc-a\",\"satellite\":\"s\",\"observed_generation\":1,\"phase\":\"on\"}";
        CHECK_EQ(psc_status_parse(bad, strlen(bad), &back, err, sizeof(err)), -EINVAL);
        CHECK(strstr(err, "phase: \"on\"") != NULL);
        bad = "{\"pkc_id\":\"pkc-a\",\"satellite\":\"s\",\"observed_generation\":1,\"phase\":\"running\","
              "\"brokers\":[{\"id\":0}]}";
        CHECK_EQ(psc_status_parse(bad, strlen(bad), &back, err, sizeof(err)), -EINVAL);
        CHECK(strstr(err, "brokers[0].healthy: missing") != NULL);
        bad = "{\"kind\":\"SatelliteHeartbeat\",\"pkc_id\":\"pkc-a\",\"satellite\":\"s\",\"observed_"
              "generation\":1,"
              "\"phase\":\"running\"}";
        CHECK_EQ(psc_status_parse(bad, strlen(bad), &back, err, sizeof(err)), -EINVAL);
        CHECK(strstr(err, "kind: must be \"PhysicalStatefulClusterStatus\"") != NULL);
}

TEST(psc_heartbeat_round_trips)
{
        struct psc_heartbeat hb = {.satellite = "sat-local-1",
                                   .region = "local",
                                   .version = "0.1.0",
                                   .time_ms = 1700000000000,
                                   .pkcs = 3};
        char *text = psc_heartbeat_to_json(&hb);
        struct psc_heartbeat back;
        char err[256] = "";
        CHECK_EQ(psc_heartbeat_parse(text, strlen(text), &back, err, sizeof(err)), 0);
        CHECK(strcmp(back.satellite, "sat-local-1") == 0 && back.pkcs == 3 && back.time_ms == 1700000000000);
        char *again = psc_heartbeat_to_json(&back);
        CHECK(strcmp(text, again) == 0);
        free(text);
        free(again);
        psc_heartbeat_deinit(&back);
        const char *bad = "{\"satellite\":\"sat-local-1\",\"region\":\"local\",\"time_ms\":1,\"load\":2}";
        CHECK_EQ(psc_heartbeat_parse(bad, strlen(bad), &back, err, sizeof(err)), -EINVAL);
        CHECK(strstr(err, "\"load\"") != NULL);
}

/* ---- completion ----------------------------------------------------------------------- */

#define GOLDEN_DIR "tests/unit/golden/psc"

/* The whole of <path> (heap, NUL-terminated), or NULL. */
static char *read_text(const char *path, size_t *len)
{
        FILE *f = fopen(path, "rb");
        if (!f)
                return NULL;
        char *text = NULL;
        size_t n = 0, cap = 0, got;
        do {
                if (cap - n < 4096) {
                        cap = cap * 2 + 4096;
                        text = xrealloc(text, cap + 1);
                }
                got = fread(text + n, 1, cap - n, f);
                n += got;
        } while (got > 0);
        fclose(f);
        text[n] = 0;
        if (len)
                *len = n;
        return text;
}

static int write_text(const char *path, const char *text)
{
        FILE *f = fopen(path, "wb");
        if (!f)
                return -1;
        int rc = fputs(text, f) < 0 ? -1 : 0;
        return fclose(f) || rc ? -1 : 0;
}

/* psc_complete(parse(<json>)) under the default policy as JSON text (heap, with a final
 * newline), or NULL with the reason printed. */
static char *complete_text(const char *json, size_t len, const char *name)
{
        struct psc partial, full;
        char err[512] = "";
        if (psc_parse(json, len, &partial, err, sizeof(err)) < 0) {
                fprintf(stderr, "  %s: parse: %s\n", name, err);
                return NULL;
        }
        int rc = psc_complete(&partial, psc_policy_default(), &full, err, sizeof(err));
        psc_deinit(&partial);
        if (rc < 0) {
                fprintf(stderr, "  %s: complete: %s\n", name, err);
                return NULL;
        }
        if (psc_validate_full(&full, err, sizeof(err)) < 0) {
                fprintf(stderr, "  %s: not a full PSC: %s\n", name, err);
                psc_deinit(&full);
                return NULL;
        }
        char *text = psc_to_json(&full);
        psc_deinit(&full);
        char *line = xasprintf("%s\n", text);
        free(text);
        return line;
}

TEST(psc_complete_matches_golden_files)
{
        static const char *const cases[] = {"basic", "dedicated", "deleted", "no_tenants", "quotas"};
        bool update = getenv("STRATUS_UPDATE_GOLDEN") && strcmp(getenv("STRATUS_UPDATE_GOLDEN"), "1") == 0;
        int checked = 0;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char path[256];
                size_t len;
                snprintf(path, sizeof(path), GOLDEN_DIR "/%s.partial.json", cases[i]);
                char *partial = read_text(path, &len);
                if (!partial)
                        fprintf(stderr, "  cannot read %s (run from the repository root)\n", path);
                CHECK(partial != NULL);
                char *got = complete_text(partial, len, path);
                free(partial);
                CHECK(got != NULL);
                snprintf(path, sizeof(path), GOLDEN_DIR "/%s.full.json", cases[i]);
                if (update) {
                        CHECK_EQ(write_text(path, got), 0);
                        fprintf(stderr, "  wrote %s\n", path);
                }
                char *want = read_text(path, NULL);
                bool same = want && strcmp(want, got) == 0;
                if (!same)
                        fprintf(stderr,
                                "  %s differs from psc_complete()'s output:\n%s\n"
                                "  (STRATUS_UPDATE_GOLDEN=1 make test rewrites it; review the diff)\n",
                                path, got);
                free(want);
                free(got);
                CHECK(same);
                checked++;
        }
        CHECK_EQ(checked, 5);
}

TEST(psc_complete_is_idempotent)
{
        DIR *dir = opendir(GOLDEN_DIR);
        CHECK(dir != NULL);
        struct dirent *e;
        int checked = 0;
        while ((e = readdir(dir))) {
                size_t n = strlen(e->d_name);
                if (n < 10 || strcmp(e->d_name + n - 10, ".full.json") != 0)
                        continue;
                char path[512];
                size_t len;
                snprintf(path, sizeof(path), GOLDEN_DIR "/%s", e->d_name);
                char *full = read_text(path, &len);
                char *again = full ? complete_text(full, len, path) : NULL;
                bool same = again && strcmp(full, again) == 0;
                if (!same)
                        fprintf(stderr, "  completing %s again changed it\n", path);
                free(full);
                free(again);
                if (!same)
                        break;
                checked++;
        }
        closedir(dir);
        CHECK_EQ(checked, 5);
}

TEST(psc_complete_fills_the_completion_part)
{
        struct psc partial, full;
        char err[512] = "";
        CHECK_EQ(parse_str(partial_doc, &partial, err, sizeof(err)), 0);
        const struct psc_policy *policy = psc_policy_default();
        CHECK_EQ(psc_complete(&partial, policy, &full, err, sizeof(err)), 0);
        CHECK(strcmp(full.policy_version, psc_policy_version(policy)) == 0);
        CHECK_EQ(full.broker_count, 1);
        CHECK(full.disk_bytes > 0 && strcmp(full.disk_type, "local") == 0);
        CHECK(strcmp(full.client_security_protocol, "SASL_PLAINTEXT") == 0);
        CHECK(strcmp(full.sasl_mechanisms, "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512") == 0);
        CHECK(strcmp(full.internal_security_protocol, "PLAINTEXT") == 0);
        CHECK(full.lb_bootstrap);
        CHECK_EQ(psc_validate_full(&full, err, sizeof(err)), 0);
        /* Sorted configuration, every key one the broker knows. */
        for (int i = 0; i < full.nbroker_config; i++) {
                if (i > 0)
                        CHECK(strcmp(full.broker_config[i - 1].key, full.broker_config[i].key) < 0);
                const struct config_def *def = config_find(full.broker_config[i].key);
                if (!def)
                        fprintf(stderr, "  %s is not a stratus broker key\n", full.broker_config[i].key);
                CHECK(def != NULL);
                int64_t v;
                CHECK_EQ(config_parse_value(def, full.broker_config[i].value, &v, err, sizeof(err)), 0);
        }
        /* The partial part is carried over untouched. */
        CHECK(strcmp(full.id, partial.id) == 0 && full.generation == partial.generation);
        CHECK_EQ(full.ntenants, 2);
        psc_deinit(&full);
        /* A multi-tenant PKC is sized by its type's capacity: adding a tenant changes
         * neither its disk nor its configuration. */
        struct psc full2;
        partial.ingress_mbps = 90;
        partial.partitions = 900;
        CHECK_EQ(psc_complete(&partial, policy, &full, err, sizeof(err)), 0);
        partial.ingress_mbps = 1;
        partial.partitions = 1;
        CHECK_EQ(psc_complete(&partial, policy, &full2, err, sizeof(err)), 0);
        CHECK_EQ(full.disk_bytes, full2.disk_bytes);
        CHECK_EQ(full.nbroker_config, full2.nbroker_config);
        for (int i = 0; i < full.nbroker_config; i++)
                CHECK(strcmp(full.broker_config[i].value, full2.broker_config[i].value) == 0);
        psc_deinit(&full);
        psc_deinit(&full2);
        psc_deinit(&partial);
}

TEST(psc_complete_refuses_what_the_policy_cannot_serve)
{
        struct psc partial, full;
        char err[512] = "";
        CHECK_EQ(parse_str(partial_doc, &partial, err, sizeof(err)), 0);
        const struct psc_policy *policy = psc_policy_default();
        struct psc_capacity cap;
        psc_policy_capacity(policy, PSC_DEDICATED, &cap);
        partial.type = PSC_DEDICATED;
        partial.ingress_mbps = cap.ingress_mbps + 1;
        CHECK_EQ(psc_complete(&partial, policy, &full, err, sizeof(err)), -EINVAL);
        CHECK(strstr(err, "ingress_mbps:") && strstr(err, "more than one dedicated PKC takes"));
        partial.ingress_mbps = 1;
        partial.partitions = cap.partitions + 1;
        CHECK_EQ(psc_complete(&partial, policy, &full, err, sizeof(err)), -EINVAL);
        CHECK(strstr(err, "partitions:") != NULL);
        partial.partitions = 1;
        /* Dedicated: one tenant. */
        CHECK_EQ(psc_complete(&partial, policy, &full, err, sizeof(err)), -EINVAL);
        CHECK(strstr(err, "tenants: 2 is more than one dedicated PKC hosts (1") != NULL);
        /* A deletion always completes, whatever its sizing. */
        partial.deleted = true;
        CHECK_EQ(psc_complete(&partial, policy, &full, err, sizeof(err)), 0);
        psc_deinit(&full);
        partial.deleted = false;
        free(partial.product);
        partial.product = xstrdup("zookeeper");
        CHECK_EQ(psc_complete(&partial, policy, &full, err, sizeof(err)), -EINVAL);
        CHECK(strstr(err, "product: \"zookeeper\" is not completed by policy") != NULL);
        psc_deinit(&partial);
}

TEST(psc_policy_default_is_policy_default_json)
{
        char *text = read_text("src/psc/policy_default.json", NULL);
        CHECK(text != NULL);
        extern const char psc_policy_default_json[];
        bool same = strcmp(text, psc_policy_default_json) == 0;
        if (!same)
                fprintf(stderr, "  src/psc/policy_default.c is stale: run python3 src/psc/gen_policy.py\n");
        free(text);
        CHECK(same);
        const struct psc_policy *policy = psc_policy_default();
        CHECK(policy == psc_policy_default());
        struct psc_capacity mt, ded;
        psc_policy_capacity(policy, PSC_MULTI_TENANT, &mt);
        psc_policy_capacity(policy, PSC_DEDICATED, &ded);
        CHECK(mt.ingress_mbps > 0 && mt.egress_mbps > 0 && mt.partitions > 0 && mt.tenants > 1);
        CHECK(ded.ingress_mbps >= mt.ingress_mbps && ded.tenants == 1);
}

TEST(psc_policy_load_reads_a_file_and_names_errors)
{
        char path[300], err[512] = "";
        struct psc_policy *policy = NULL;
        snprintf(path, sizeof(path), "%s/policy.json", test_tmpdir);
        CHECK_EQ(psc_policy_load(path, &policy, err, sizeof(err)), -ENOENT);
        CHECK(strstr(err, "policy.json: No such file") != NULL);
        extern const char psc_policy_default_json[];
        /* The built-in policy with a new version and a bigger multi-tenant PKC. */
        char *text = xstrdup(psc_policy_default_json);
        char *at = strstr(text, "\"2025.1\"");
        CHECK(at != NULL);
        memcpy(at, "\"2099.9\"", 8);
        at = strstr(text, "\"ingress_mbps\": 100,");
        CHECK(at != NULL);
        memcpy(at, "\"ingress_mbps\": 200,", 20);
        CHECK_EQ(write_text(path, text), 0);
        CHECK_EQ(psc_policy_load(path, &policy, err, sizeof(err)), 0);
        CHECK(strcmp(psc_policy_version(policy), "2099.9") == 0);
        struct psc_capacity cap;
        psc_policy_capacity(policy, PSC_MULTI_TENANT, &cap);
        CHECK(cap.ingress_mbps == 200);
        psc_policy_free(policy);
        psc_policy_free(NULL);
        free(text);

        static const struct {
                const char *from, *to, *want;
        } bad[] = {
            {"\"lb_bootstrap\": true", "\"lb_bootstrap\": true, \"replicas\": 3",
             "unknown top-level field \"replicas\""},
            {"\"num.partitions\": \"1\"", "\"listeners\": \"PLAINTEXT://:1\"",
             "\"listeners\" is written by the satellite"},
            {"\"num.partitions\": \"1\"", "\"log.segment.bytes\": \"1\"",
             "broker_config_rules[0].key: \"log.segment.bytes\" is also in broker_config"},
            {"\"from\": \"tenants\"", "\"from\": \"moon_phase\"",
             "broker_config_rules[2].from: \"moon_phase\""},
            {"\"size_from\": \"request\"", "\"size_from\": \"guess\"",
             "types.dedicated.size_from: \"guess\""},
            {"\"broker_count\": 1,", "\"broker_count\": 0,",
             "types.multi_tenant.broker_count: must be an integer"},
            {"\"partitions\": 1000,", "", "types.multi_tenant.capacity.partitions: missing"},
            {"\"SASL_PLAINTEXT\"", "\"PLAINTEXT\"", "listeners.client_security_protocol: \"PLAINTEXT\""},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                const char *hit = strstr(psc_policy_default_json, bad[i].from);
                CHECK(hit != NULL);
                char *doc = xasprintf("%.*s%s%s", (int)(hit - psc_policy_default_json),
                                      psc_policy_default_json, bad[i].to, hit + strlen(bad[i].from));
                int rc = psc_policy_parse(doc, strlen(doc), &policy, err, sizeof(err));
                free(doc);
                if (rc != -EINVAL || !strstr(err, bad[i].want))
                        fprintf(stderr, "  wanted \"%s\", got rc=%d \"%s\"\n", bad[i].want, rc, err);
                CHECK(rc == -EINVAL && strstr(err, bad[i].want));
                CHECK(policy == NULL);
        }
}
