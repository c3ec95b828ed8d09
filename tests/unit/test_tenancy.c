/* Unit tests: token buckets (time is an argument) and the codecs' tenant namespaces. */
#include <math.h>
#include <string.h>

#include "broker/tenancy/bucket.h"
#include "kafka/gen/messages.h"
#include "kafka/wire.h"
#include "test.h"

TEST(bucket_rate_burst_and_debt)
{
        struct token_bucket b = BUCKET_UNLIMITED;
        CHECK(bucket_unlimited(&b));
        bucket_take(&b, 1e12, 0);
        CHECK_EQ(bucket_delay_ms(&b, 0), 0);
        /* 1000 a second with 500 banked: starts full. */
        bucket_configure(&b, 1000, 500, 0);
        CHECK_EQ((long long)bucket_tokens(&b, 0), 500);
        bucket_take(&b, 400, 0);
        CHECK_EQ(bucket_delay_ms(&b, 0), 0);
        /* 300 more: 200 in debt, paid in 200 ms. */
        bucket_take(&b, 300, 0);
        CHECK_EQ(bucket_delay_ms(&b, 0), 200);
        CHECK_EQ(bucket_delay_ms(&b, 100), 100);
        CHECK_EQ(bucket_delay_ms(&b, 200), 0);
        /* Refill stops at the burst. */
        CHECK_EQ((long long)bucket_tokens(&b, 10000), 500);
        /* Time going backwards (a stale timestamp) changes nothing. */
        CHECK_EQ((long long)bucket_tokens(&b, 5000), 500);
}

TEST(bucket_reconfigure_keeps_tokens_capped)
{
        struct token_bucket b = BUCKET_UNLIMITED;
        bucket_configure(&b, 100, 100, 0);
        bucket_take(&b, 150, 0);                 /* 50 in debt */
        bucket_configure(&b, 1000, 1000, 0);     /* raised: the debt stays, paid faster */
        CHECK_EQ(bucket_delay_ms(&b, 0), 50);
        CHECK_EQ(bucket_delay_ms(&b, 50), 0);
        bucket_configure(&b, 10, 5, 10000);      /* lowered: capped at the new burst */
        CHECK_EQ((long long)bucket_tokens(&b, 10000), 5);
        bucket_configure(&b, 0, 0, 10000);       /* zero: held back until it changes */
        bucket_take(&b, 10, 10000);
        CHECK(bucket_delay_ms(&b, 10000) >= INT32_MAX);
        bucket_configure(&b, -1, 0, 10000);      /* unlimited again */
        CHECK(isinf(bucket_tokens(&b, 10000)));
        CHECK_EQ(bucket_delay_ms(&b, 10000), 0);
}

static struct kafka_str str(const char *s)
{
        return (struct kafka_str){ s, (int32_t)strlen(s) };
}

TEST(codec_names_map_into_and_out_of_a_namespace)
{
        const struct kafka_names names = { "lkc-a_", 6 };
        /* A DeleteTopics v4 request naming "orders" decodes as "lkc-a_orders". */
        struct buf b;
        buf_init(&b);
        struct kafka_writer w;
        kafka_writer_init(&w, &b);
        struct delete_topics_request req;
        delete_topics_request_init(&req);
        struct kafka_str topics[2] = { str("orders"), str("") };
        req.topic_names = topics;
        req.topic_names_count = 2;
        req.timeout_ms = 1000;
        delete_topics_request_encode(&w, 4, &req);
        struct kafka_arena arena;
        kafka_arena_init(&arena, 1 << 20);
        struct kafka_reader r = kafka_reader_from(b.data, b.len, &arena);
        r.names = &names;
        struct delete_topics_request got;
        CHECK_EQ(delete_topics_request_decode(&r, 4, &got), 0);
        CHECK_EQ(got.topic_names_count, 2);
        CHECK(kafka_str_eq(got.topic_names[0], "lkc-a_orders"));
        CHECK_EQ(got.topic_names[1].len, 0); /* the empty name names nothing: left empty */
        kafka_writer_deinit(&w);
        buf_deinit(&b);

        /* The response loses the prefix on names and in error messages. */
        buf_init(&b);
        kafka_writer_init(&w, &b);
        w.names = &names;
        struct delete_topics_response resp;
        delete_topics_response_init(&resp);
        struct delete_topics_response_deletable_topic_result res;
        delete_topics_response_deletable_topic_result_init(&res);
        res.name = str("lkc-a_orders");
        res.error_code = 3;
        res.error_message = str("Topic 'lkc-a_orders' and 'lkc-a_x' are unknown");
        resp.responses = &res;
        resp.responses_count = 1;
        delete_topics_response_encode(&w, 5, &resp);
        r = kafka_reader_from(b.data, b.len, &arena);
        struct delete_topics_response back;
        CHECK_EQ(delete_topics_response_decode(&r, 5, &back), 0);
        CHECK(kafka_str_eq(back.responses[0].name, "orders"));
        CHECK(kafka_str_eq(back.responses[0].error_message, "Topic 'orders' and 'x' are unknown"));
        kafka_writer_deinit(&w);
        buf_deinit(&b);
        kafka_arena_deinit(&arena);
}
