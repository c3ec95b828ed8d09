/* The Kafka API table (generated from tools/kafka_apis.txt) and request/response
 * framing: request header v1/v2 and response header v0/v1. */
#ifndef STRATUS_KAFKA_API_H
#define STRATUS_KAFKA_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafka/gen/api_keys.h"
#include "kafka/wire.h"

typedef int kafka_decode_fn(struct kafka_reader *r, int16_t version, void *msg);
typedef void kafka_encode_fn(struct kafka_writer *w, int16_t version, const void *msg);

struct kafka_api {
        int16_t key;
        const char *name;
        int16_t min_version;      /* advertised in ApiVersions */
        int16_t max_version;
        int16_t flexible_version; /* first flexible version, -1 if never */
        size_t request_size;      /* sizeof the generated request struct */
        size_t response_size;
        kafka_decode_fn *decode_request;
        kafka_encode_fn *encode_request;
        kafka_decode_fn *decode_response;
        kafka_encode_fn *encode_response;
        ptrdiff_t throttle_offset; /* of the response's int32 throttle_time_ms, or -1 */
};

extern const struct kafka_api kafka_api_table[];
extern const int kafka_api_count;

/* The table entry for <key>, or NULL if Stratus does not serve it. */
const struct kafka_api *kafka_api_find(int16_t key);

/* Whether <version> of <api> uses flexible encodings (and header v2 / v1). */
bool kafka_api_is_flexible(const struct kafka_api *api, int16_t version);

struct kafka_request_header {
        int16_t api_key;
        int16_t api_version;
        int32_t correlation_id;
        struct kafka_str client_id; /* view into the frame; may be null */
};

/* Reads the request header from the start of a frame. For an API Stratus serves and a
 * version in range, a flexible version's header tagged fields are consumed too.
 * Returns 0, or -EPROTO when the frame is too short for a header. */
int kafka_request_header_decode(struct kafka_reader *r, struct kafka_request_header *hdr);

/* Starts a response frame in <w>: a 4-byte size placeholder and the response header
 * (v1 with tagged fields when <flexible>, else v0). Returns the frame's start offset
 * for kafka_response_finish(). */
size_t kafka_response_begin(struct kafka_writer *w, int32_t correlation_id, bool flexible);
/* Fills in the size of the frame begun at <start>. */
void kafka_response_finish(struct kafka_writer *w, size_t start);

#endif
