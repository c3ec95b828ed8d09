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
#define SCRAM256 "{\"salt\":\"" SALT "\",\"iterations\":4096,\"stored_key\":\"" K32A "\",\"server_key\":\"" K32B "\"}"
#define SCRAM512 "{\"salt\":\"" SALT "\",\"iterations\":8192,\"stored_key\":\"" K64A "\",\"server_key\":\"" K64B "\"}"

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
        CHECK(strncmp(text, "{\n  \"api_version\": \"stratus/v1\",\n  \"kind\": \"PhysicalStatefulCluster\",\n  \"id\"",
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
        CHECK(expect_error(doc_with("\"generation\":7", "\"generation\":\"7\""), "generation: must be an integer") == 0);
        CHECK(expect_error(doc_with("\"generation\":7", "\"generation\":0"), "generation: must be an integer from 1") ==
              0);
        CHECK(expect_error(doc_with("\"id\":\"pkc-abc123\",", ""), "id: missing (required)") == 0);
        CHECK(expect_error(doc_with("\"type\":\"multi_tenant\"", "\"type\":\"shared\""),
                           "type: \"shared\" is not multi_tenant or dedicated") == 0);
        CHECK(expect_error(doc_with("\"kind\":\"PhysicalStatefulCluster\"", "\"kind\":\"Pod\""), "kind: \"Pod\"") == 0);
        CHECK(expect_error(doc_with("\"api_version\":\"stratus/v1\"", "\"api_version\":\"stratus/v9\""),
                           "api_version: \"stratus/v9\" is not served") == 0);
        CHECK(expect_error(doc_with("{\"key\":\"KEYBBBBBBBBBBBBB\",\"scram_sha_256\":{\"salt\":\"" SALT,
                                    "{\"key\":\"KEYBBBBBBBBBBBBB\",\"scram_sha_256\":{\"salt\":\"no*base64"),
                           "tenants[1].api_keys[0].scram_sha_256.salt: must be base64") == 0);
        CHECK(expect_error(doc_with("\"iterations\":8192", "\"iterations\":10"),
                           "tenants[0].api_keys[0].scram_sha_512.iterations: must be an integer from 4096") == 0);
        CHECK(expect_error(doc_with("\"max_connections\":100", "\"max_connections\":1.5"),
                           "tenants[0].quotas.max_connections: must be a non-negative integer") == 0);
        CHECK(expect_error(doc_with("{\"key\":\"KEYBBBBBBBBBBBBB\",\"scram_sha_256\":" SCRAM256 "}",
                                    "{\"key\":\"KEYBBBBBBBBBBBBB\"}"),
                           "tenants[1].api_keys[0]: needs scram_sha_256 or scram_sha_512") == 0);
        CHECK(expect_error(doc_with("\"id\":\"lkc-bbbbbb\"", "\"id\":\"lkc-aaaaaa\""),
                           "tenants[1].id: \"lkc-aaaaaa\" appears twice") == 0);
        CHECK(expect_error(doc_with("KEYBBBBBBBBBBBBB", "KEYAAAAAAAAAAAAA"),
                           "tenants[1].api_keys[0].key: \"KEYAAAAAAAAAAAAA\" is used twice") == 0);
        CHECK(expect_error(doc_with("\"tenants\":[", "\"tenants\":{},\"x\":["), "unknown top-level field \"x\"") == 0);
        CHECK(expect_error(xstrdup("{\"api_version\":"), "PSC: not valid JSON: line 1") == 0);
        CHECK(expect_error(xstrdup("[1]"), "PSC: must be a JSON object") == 0);
        CHECK(expect_error(doc_with("\"ingress_mbps\":12.5", "\"ingress_mbps\":-1"), "ingress_mbps: must be a number") ==
              0);
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
        static const char *const names[] = { "provisioning", "running", "degraded", "deleting", "deleted", "failed" };
        for (int i = 0; i < 6; i++) {
                enum psc_phase p;
                CHECK(strcmp(psc_phase_name((enum psc_phase)i), names[i]) == 0);
                CHECK_EQ(psc_phase_parse(names[i], &p), 0);
                CHECK_EQ(p, i);
        }
        enum psc_phase p;
        CHECK_EQ(psc_phase_parse("sleeping", &p), -EINVAL);

        struct psc_broker_status broker = { .id = 0, .healthy = true, .pid = 4242, .restarts = 1,
                                            .address = "127.0.0.1:19092" };
        struct psc_status st = { .pkc_id = "pkc-abc123", .satellite = "sat-local-1", .revision = "r1",
                                 .observed_generation = 7, .phase = PSC_PHASE_DEGRADED, .message = "broker 0 restarting",
                                 .bootstrap = "127.0.0.1:19000", .lb_healthy = true, .brokers = &broker, .nbrokers = 1,
                                 .time_ms = 1700000000000 };
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

        const char *bad = "{\"pkc_id\":\"pkc-a\",\"satellite\":\"s\",\"observed_generation\":1,\"phase\":\"on\"}";
        CHECK_EQ(psc_status_parse(bad, strlen(bad), &back, err, sizeof(err)), -EINVAL);
        CHECK(strstr(err, "phase: \"on\"") != NULL);
        bad = "{\"pkc_id\":\"pkc-a\",\"satellite\":\"s\",\"observed_generation\":1,\"phase\":\"running\","
              "\"brokers\":[{\"id\":0}]}";
        CHECK_EQ(psc_status_parse(bad, strlen(bad), &back, err, sizeof(err)), -EINVAL);
        CHECK(strstr(err, "brokers[0].healthy: missing") != NULL);
        bad = "{\"kind\":\"SatelliteHeartbeat\",\"pkc_id\":\"pkc-a\",\"satellite\":\"s\",\"observed_generation\":1,"
              "\"phase\":\"running\"}";
        CHECK_EQ(psc_status_parse(bad, strlen(bad), &back, err, sizeof(err)), -EINVAL);
        CHECK(strstr(err, "kind: must be \"PhysicalStatefulClusterStatus\"") != NULL);
}

TEST(psc_heartbeat_round_trips)
{
        struct psc_heartbeat hb = { .satellite = "sat-local-1", .region = "local", .version = "0.1.0",
                                    .time_ms = 1700000000000, .pkcs = 3 };
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
