/* libFuzzer target for request decoding: the bytes are one request frame (without the
 * size prefix), decoded exactly as dispatch does (header, then the generated decoder
 * with the same arena budget). Whatever decodes is re-encoded, decoded again and must
 * re-encode to the same bytes. The bytes are also parsed as a record batch (header,
 * CRC, records), and decoded a second time as a tenant's request (names mapped into a
 * namespace, as dispatch does for authenticated tenants), whose encoding with the same
 * namespace on the writer must give back the original names. Run: make fuzz FUZZ_SECONDS=60 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/crc32c.h"
#include "base/fileio.h"
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

/* <body> decoded in a tenant's namespace and encoded out of it again equals the plain
 * decode's encoding: the mapping loses nothing and reads nothing past the bytes. */
static void tenant_round_trip(const struct kafka_api *api, int16_t version, const uint8_t *body, size_t len)
{
        static const struct kafka_names names = { "lkc-fuzz01_", 11 };
        struct kafka_arena arena;
        kafka_arena_init(&arena, len * 16 + 65536);
        struct kafka_reader plain = kafka_reader_from(body, len, &arena);
        struct kafka_reader mapped = kafka_reader_from(body, len, &arena);
        mapped.names = &names;
        void *m1 = xcalloc(1, api->request_size), *m2 = xcalloc(1, api->request_size);
        int rc1 = api->decode_request(&plain, version, m1);
        int rc2 = api->decode_request(&mapped, version, m2);
        if (rc1 == 0 && rc2 == 0) {
                struct buf b1, b2;
                buf_init(&b1);
                buf_init(&b2);
                struct kafka_writer w1, w2;
                kafka_writer_init(&w1, &b1);
                kafka_writer_init(&w2, &b2);
                w2.names = &names;
                api->encode_request(&w1, version, m1);
                api->encode_request(&w2, version, m2);
                ASSERT(b1.len == b2.len && (!b1.len || memcmp(b1.data, b2.data, b1.len) == 0));
                kafka_writer_deinit(&w1);
                kafka_writer_deinit(&w2);
                buf_deinit(&b1);
                buf_deinit(&b2);
        }
        free(m1);
        free(m2);
        kafka_arena_deinit(&arena);
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
                        const uint8_t *body = r.p;
                        void *msg = xcalloc(1, api->request_size);
                        if (api->decode_request(&r, hdr.api_version, msg) == 0)
                                round_trip(api, hdr.api_version, msg);
                        free(msg);
                        tenant_round_trip(api, hdr.api_version, body, (size_t)(data + size - body));
                }
        }
        kafka_arena_deinit(&arena);
        /* Record batches arrive inside Produce; check the header parser on raw bytes too. */
        struct record_batch_header h;
        if (record_batch_check(data, size, &h) == RECORD_OK)
                (void)record_batch_records_valid(data, RECORD_BATCH_LOG_OVERHEAD + (size_t)h.batch_length, &h);
        /* Random bytes rarely pass the CRC: repair a copy's length, magic and CRC so the
         * record walk (what a malicious producer controls) is fuzzed directly. */
        if (size >= RECORD_BATCH_HEADER_SIZE && size < (1u << 20)) {
                uint8_t *copy = xmalloc(size);
                memcpy(copy, data, size);
                store_be32(copy + 8, (uint32_t)(size - RECORD_BATCH_LOG_OVERHEAD));
                copy[16] = 2;
                copy[22] &= (uint8_t)~0x07; /* attributes low byte: uncompressed, so the walk runs */
                store_be32(copy + 17, crc32c(0, copy + 21, size - 21));
                if (record_batch_check(copy, size, &h) == RECORD_OK)
                        (void)record_batch_records_valid(copy, size, &h);
                free(copy);
        }
        return 0;
}
