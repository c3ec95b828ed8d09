/* Unit tests for the generated codecs: every API and version in tools/kafka_apis.txt
 * round-trips, and request frames captured from real clients (tests/unit/golden/, see
 * capture.py there) decode completely and re-encode to the same bytes. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "kafka/api.h"
#include "kafka/gen/messages.h"
#include "test.h"

/* Encodes <msg>, decodes it, encodes again: both encodings must match and the decode
 * must consume every byte. Returns 0 or a negative line number. */
static int round_trip(kafka_encode_fn *enc, kafka_decode_fn *dec, size_t size, int16_t version,
                      const void *msg)
{
        struct buf b1, b2;
        buf_init(&b1);
        buf_init(&b2);
        struct kafka_writer w1, w2;
        kafka_writer_init(&w1, &b1);
        kafka_writer_init(&w2, &b2);
        enc(&w1, version, msg);
        struct kafka_arena arena;
        kafka_arena_init(&arena, 1 << 20);
        void *again = xcalloc(1, size);
        struct kafka_reader r = kafka_reader_from(b1.data, b1.len, &arena);
        int rc = 0;
        if (dec(&r, version, again) < 0)
                rc = -__LINE__;
        else if (kafka_reader_left(&r) != 0)
                rc = -__LINE__;
        enc(&w2, version, again);
        if (rc == 0 && (b1.len != b2.len || (b1.len && memcmp(b1.data, b2.data, b1.len) != 0)))
                rc = -__LINE__;
        free(again);
        kafka_arena_deinit(&arena);
        kafka_writer_deinit(&w1);
        kafka_writer_deinit(&w2);
        buf_deinit(&b1);
        buf_deinit(&b2);
        return rc;
}

TEST(codec_round_trip_all_versions)
{
        int checked = 0;
        for (int i = 0; i < kafka_api_count; i++) {
                const struct kafka_api *api = &kafka_api_table[i];
                for (int16_t v = api->min_version; v <= api->max_version; v++) {
                        /* A zeroed struct is a valid message: empty arrays, empty strings. */
                        void *req = xcalloc(1, api->request_size);
                        void *resp = xcalloc(1, api->response_size);
                        int rc1 = round_trip(api->encode_request, api->decode_request, api->request_size, v, req);
                        int rc2 = round_trip(api->encode_response, api->decode_response, api->response_size, v,
                                             resp);
                        free(req);
                        free(resp);
                        if (rc1 || rc2)
                                fprintf(stderr, "  %s v%d: request %d response %d\n", api->name, v, rc1, rc2);
                        CHECK_EQ(rc1, 0);
                        CHECK_EQ(rc2, 0);
                        checked++;
                }
        }
        CHECK(checked > 50);
}

TEST(codec_populated_produce_and_fetch_round_trip)
{
        /* Nested arrays, nullable strings, records and tagged fields, at every version. */
        static const uint8_t records[] = { 1, 2, 3, 4, 5 };
        struct produce_request_partition_produce_data pd[2];
        for (int i = 0; i < 2; i++) {
                produce_request_partition_produce_data_init(&pd[i]);
                pd[i].index = i;
                pd[i].records = (struct kafka_records){ records, (int32_t)sizeof(records), NULL };
        }
        struct produce_request_topic_produce_data td;
        produce_request_topic_produce_data_init(&td);
        td.name = kafka_str_c("orders");
        td.partition_data = pd;
        td.partition_data_count = 2;
        struct produce_request req;
        produce_request_init(&req);
        req.acks = -1;
        req.timeout_ms = 30000;
        req.topic_data = &td;
        req.topic_data_count = 1;
        const struct kafka_api *produce = kafka_api_find(KAFKA_API_PRODUCE);
        for (int16_t v = produce->min_version; v <= produce->max_version; v++)
                CHECK_EQ(round_trip(produce->encode_request, produce->decode_request, produce->request_size, v, &req),
                         0);

        struct fetch_response_partition_data part;
        fetch_response_partition_data_init(&part);
        part.partition_index = 3;
        part.high_watermark = 1000;
        part.last_stable_offset = 1000;
        part.log_start_offset = 10;
        part.records = (struct kafka_records){ records, (int32_t)sizeof(records), NULL };
        part.has_current_leader = true; /* a tagged field from v12 */
        part.current_leader.leader_id = 0;
        part.current_leader.leader_epoch = 7;
        struct fetch_response_fetchable_topic_response topic;
        fetch_response_fetchable_topic_response_init(&topic);
        topic.topic = kafka_str_c("orders");
        topic.partitions = &part;
        topic.partitions_count = 1;
        struct fetch_response resp;
        fetch_response_init(&resp);
        resp.responses = &topic;
        resp.responses_count = 1;
        const struct kafka_api *fetch = kafka_api_find(KAFKA_API_FETCH);
        for (int16_t v = fetch->min_version; v <= fetch->max_version; v++)
                CHECK_EQ(round_trip(fetch->encode_response, fetch->decode_response, fetch->response_size, v, &resp),
                         0);
        /* The tagged field survives at v12. */
        struct buf b;
        buf_init(&b);
        struct kafka_writer w;
        kafka_writer_init(&w, &b);
        fetch_response_encode(&w, 12, &resp);
        struct kafka_arena arena;
        kafka_arena_init(&arena, 1 << 16);
        struct kafka_reader r = kafka_reader_from(b.data, b.len, &arena);
        struct fetch_response back;
        CHECK_EQ(fetch_response_decode(&r, 12, &back), 0);
        CHECK(back.responses[0].partitions[0].has_current_leader);
        CHECK_EQ(back.responses[0].partitions[0].current_leader.leader_epoch, 7);
        CHECK(kafka_str_eq(back.responses[0].topic, "orders"));
        kafka_arena_deinit(&arena);
        kafka_writer_deinit(&w);
        buf_deinit(&b);
}

TEST(codec_golden_frames_round_trip)
{
        const char *dir = "tests/unit/golden";
        DIR *d = opendir(dir);
        CHECK(d != NULL);
        int frames = 0, failures = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
                size_t n = strlen(e->d_name);
                if (n < 5 || strcmp(e->d_name + n - 4, ".bin") != 0)
                        continue;
                char path[512];
                snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
                FILE *f = fopen(path, "rb");
                if (!f) {
                        failures++;
                        continue;
                }
                static uint8_t frame[1 << 20];
                size_t len = fread(frame, 1, sizeof(frame), f);
                fclose(f);
                struct kafka_arena arena;
                kafka_arena_init(&arena, len * 16 + 65536);
                struct kafka_reader r = kafka_reader_from(frame, len, &arena);
                struct kafka_request_header hdr;
                const struct kafka_api *api = NULL;
                int ok = kafka_request_header_decode(&r, &hdr) == 0 && (api = kafka_api_find(hdr.api_key));
                size_t body_off = (size_t)(r.p - frame);
                void *msg = api ? xcalloc(1, api->request_size) : NULL;
                if (ok && (api->decode_request(&r, hdr.api_version, msg) < 0 || kafka_reader_left(&r) != 0))
                        ok = 0;
                if (ok) {
                        struct buf b;
                        buf_init(&b);
                        struct kafka_writer w;
                        kafka_writer_init(&w, &b);
                        api->encode_request(&w, hdr.api_version, msg);
                        ok = b.len == len - body_off && (!b.len || memcmp(b.data, frame + body_off, b.len) == 0);
                        kafka_writer_deinit(&w);
                        buf_deinit(&b);
                }
                if (!ok) {
                        fprintf(stderr, "  golden frame %s does not round-trip\n", e->d_name);
                        failures++;
                }
                free(msg);
                kafka_arena_deinit(&arena);
                frames++;
        }
        closedir(d);
        CHECK_EQ(failures, 0);
        CHECK(frames >= 20); /* kcat, confluent-kafka, kafka-python and kafkajs captures */
}
