/* API table lookup and request/response header framing. */
#include "kafka/api.h"

#include <errno.h>

const struct kafka_api *kafka_api_find(int16_t key)
{
        for (int i = 0; i < kafka_api_count; i++)
                if (kafka_api_table[i].key == key)
                        return &kafka_api_table[i];
        return NULL;
}

bool kafka_api_is_flexible(const struct kafka_api *api, int16_t version)
{
        return api->flexible_version >= 0 && version >= api->flexible_version;
}

int kafka_request_header_decode(struct kafka_reader *r, struct kafka_request_header *hdr)
{
        hdr->api_key = kafka_read_i16(r);
        hdr->api_version = kafka_read_i16(r);
        hdr->correlation_id = kafka_read_i32(r);
        hdr->client_id = kafka_read_str(r, false); /* never compact, even in header v2 */
        if (r->failed)
                return -EPROTO;
        const struct kafka_api *api = kafka_api_find(hdr->api_key);
        if (api && hdr->api_version >= api->min_version && hdr->api_version <= api->max_version &&
            kafka_api_is_flexible(api, hdr->api_version)) {
                uint32_t n = kafka_read_uvarint(r);
                for (uint32_t i = 0; i < n && !r->failed; i++) {
                        kafka_read_uvarint(r); /* tag */
                        uint32_t size = kafka_read_uvarint(r);
                        kafka_read_skip(r, size);
                }
        }
        return r->failed ? -EPROTO : 0;
}

size_t kafka_response_begin(struct kafka_writer *w, int32_t correlation_id, bool flexible)
{
        size_t start = w->buf->len;
        kafka_write_i32(w, 0);
        kafka_write_i32(w, correlation_id);
        if (flexible)
                kafka_write_uvarint(w, 0);
        return start;
}

void kafka_response_finish(struct kafka_writer *w, size_t start)
{
        size_t total = w->buf->len - start - 4;
        /* A slice whose buffer prefix ends exactly at start closes the previous
         * response (queued, not yet sent); this one's slices come after its header. */
        for (int i = 0; i < w->nparts; i++)
                if (w->parts[i].buf_end > start)
                        total += (size_t)w->parts[i].slice.len;
        uint8_t *p = w->buf->data + start;
        p[0] = (uint8_t)(total >> 24);
        p[1] = (uint8_t)(total >> 16);
        p[2] = (uint8_t)(total >> 8);
        p[3] = (uint8_t)total;
}
