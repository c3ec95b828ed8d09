/* libFuzzer target for request decoding: the bytes are one request frame (without the
 * size prefix), decoded exactly as dispatch does (header, then the generated decoder
 * with the same arena budget). Whatever decodes is re-encoded, decoded again and must
 * re-encode to the same bytes. Run: make fuzz FUZZ_SECONDS=60 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "kafka/api.h"
#include "kafka/record.h"
#include "kafka/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const struct kafka_api *api, int16_t version, const void *msg)
{
        struct buf b1, b2;
        buf_init(&b1);
        buf_init(&b2);
        struct kafka_writer w1, w2;
        kafka_writer_init(&w1, &b1);
        kafka_writer_init(&w2, &b2);
        api->encode_request(&w1, version, msg);
        struct kafka_arena arena;
        kafka_arena_init(&arena, b1.len * 16 + 65536);
        void *again = xcalloc(1, api->request_size);
        struct kafka_reader r = kafka_reader_from(b1.data, b1.len, &arena);
        ASSERT(api->decode_request(&r, version, again) == 0);
        api->encode_request(&w2, version, again);
        ASSERT(b1.len == b2.len && (!b1.len || memcmp(b1.data, b2.data, b1.len) == 0));
        free(again);
        kafka_arena_deinit(&arena);
        kafka_writer_deinit(&w1);
        kafka_writer_deinit(&w2);
        buf_deinit(&b1);
        buf_deinit(&b2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct kafka_arena arena;
        kafka_arena_init(&arena, size * 16 + 65536);
        struct kafka_reader r = kafka_reader_from(data, size, &arena);
        struct kafka_request_header hdr;
        if (kafka_request_header_decode(&r, &hdr) == 0) {
                const struct kafka_api *api = kafka_api_find(hdr.api_key);
                if (api && hdr.api_version >= api->min_version && hdr.api_version <= api->max_version) {
                        void *msg = xcalloc(1, api->request_size);
                        if (api->decode_request(&r, hdr.api_version, msg) == 0)
                                round_trip(api, hdr.api_version, msg);
                        free(msg);
                }
        }
        kafka_arena_deinit(&arena);
        /* Record batches arrive inside Produce; check the header parser on raw bytes too. */
        struct record_batch_header h;
        (void)record_batch_check(data, size, &h);
        return 0;
}
