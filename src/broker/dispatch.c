/* The handler table and the request lifecycle. */
#define LOG_TOPIC "protocol"
#include "broker/dispatch.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/tenancy/tenancy.h"
#include "kafka/errors.h"
#include "loop/loop.h"

struct handler {
        handler_fn *fn;
};

static const struct handler handlers[KAFKA_API_KEY_MAX + 1] = {
        [KAFKA_API_PRODUCE] = { handle_produce },
        [KAFKA_API_FETCH] = { handle_fetch },
        [KAFKA_API_LIST_OFFSETS] = { handle_list_offsets },
        [KAFKA_API_METADATA] = { handle_metadata },
        [KAFKA_API_API_VERSIONS] = { handle_api_versions },
        [KAFKA_API_CREATE_TOPICS] = { handle_create_topics },
        [KAFKA_API_DELETE_TOPICS] = { handle_delete_topics },
        [KAFKA_API_DELETE_RECORDS] = { handle_delete_records },
        [KAFKA_API_INIT_PRODUCER_ID] = { handle_init_producer_id },
        [KAFKA_API_DESCRIBE_CONFIGS] = { handle_describe_configs },
        [KAFKA_API_CREATE_PARTITIONS] = { handle_create_partitions },
        [KAFKA_API_DESCRIBE_CLUSTER] = { handle_describe_cluster },
        [KAFKA_API_FIND_COORDINATOR] = { handle_find_coordinator },
        [KAFKA_API_JOIN_GROUP] = { handle_join_group },
        [KAFKA_API_SYNC_GROUP] = { handle_sync_group },
        [KAFKA_API_HEARTBEAT] = { handle_heartbeat },
        [KAFKA_API_LEAVE_GROUP] = { handle_leave_group },
        [KAFKA_API_OFFSET_COMMIT] = { handle_offset_commit },
        [KAFKA_API_OFFSET_FETCH] = { handle_offset_fetch },
        [KAFKA_API_DESCRIBE_GROUPS] = { handle_describe_groups },
        [KAFKA_API_LIST_GROUPS] = { handle_list_groups },
        [KAFKA_API_DELETE_GROUPS] = { handle_delete_groups },
        [KAFKA_API_OFFSET_DELETE] = { handle_offset_delete },
        [KAFKA_API_SASL_HANDSHAKE] = { handle_sasl_handshake },
        [KAFKA_API_SASL_AUTHENTICATE] = { handle_sasl_authenticate },
};

/* Decoded data may take at most this multiple of the frame (plus a floor). */
#define ARENA_FACTOR 16
#define ARENA_FLOOR (64 * 1024)

void request_free(struct request *req)
{
        if (!req)
                return;
        loop_cancel_timer(req->broker->loop, req->timer);
        kafka_arena_deinit(&req->arena);
        kafka_arena_deinit(&req->out);
        free(req->frame_alloc);
        free(req);
}

static void request_complete(struct request *req)
{
        struct conn *conn = req->conn;
        ASSERT(conn && conn->inflight == req);
        conn->inflight = NULL;
        /* The response (if any) is queued; the connection is then not read until the
         * throttle ends, so clients that ignore throttle_time_ms are held back too. */
        if (req->throttle_ms > 0) {
                tenancy_on_throttle(req);
                conn_mute(conn, req->throttle_ms);
        }
        request_free(req);
        conn_request_done(conn);
}

void request_respond(struct request *req, void *resp)
{
        struct conn *conn = req->conn;
        int16_t version = req->hdr.api_version;
        /* ApiVersions always answers with response header v0; a too-new ApiVersions gets
         * a v0 body (the handler asked for it by leaving the version out of range). */
        bool flexible = req->api->key != KAFKA_API_API_VERSIONS &&
                        kafka_api_is_flexible(req->api, version);
        if (req->api->key == KAFKA_API_API_VERSIONS && version > req->api->max_version)
                version = 0;
        if (req->throttle_ms > 0 && req->api->throttle_offset >= 0) {
                int32_t *throttle = (int32_t *)((char *)resp + req->api->throttle_offset);
                *throttle = MAX(*throttle, req->throttle_ms);
        }
        size_t start = kafka_response_begin(&conn->w, req->hdr.correlation_id, flexible);
        /* A tenant's names lose their namespace prefix on the way out. */
        conn->w.names = conn->tenant ? &conn->tenant->names : NULL;
        req->api->encode_response(&conn->w, version, resp);
        conn->w.names = NULL;
        kafka_response_finish(&conn->w, start);
        request_complete(req);
}

void *request_alloc(struct request *req, int32_t count, size_t size)
{
        if (count <= 0)
                return NULL;
        return kafka_arena_alloc(&req->out, (size_t)count * size);
}

void request_unlink(struct request **list, struct request *req)
{
        struct request **pp = list;
        while (*pp && *pp != req)
                pp = &(*pp)->next;
        if (*pp)
                *pp = req->next;
        req->next = NULL;
}

struct kafka_str request_str(struct request *req, const char *s)
{
        size_t len = strlen(s);
        char *p = kafka_arena_alloc(&req->out, len + 1);
        memcpy(p, s, len + 1);
        struct kafka_str k = { p, (int32_t)len };
        return k;
}

void request_no_response(struct request *req)
{
        request_complete(req);
}

/* Debug aid for golden tests: with STRATUS_CAPTURE_DIR set, the first request frame of
 * each (api, version, client id) is written to <dir>/<api>-v<version>-<client>.bin. */
static void capture_frame(const struct request *req)
{
        static const char *dir;
        static bool checked;
        if (!checked) {
                dir = getenv("STRATUS_CAPTURE_DIR");
                checked = true;
        }
        if (!dir || !req->api)
                return;
        char client[64] = "none";
        if (req->hdr.client_id.len > 0) {
                int n = MIN(req->hdr.client_id.len, (int32_t)sizeof(client) - 1);
                for (int i = 0; i < n; i++) {
                        char c = req->hdr.client_id.ptr[i];
                        client[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ? c : '_';
                }
                client[n] = '\0';
        }
        char path[512];
        snprintf(path, sizeof(path), "%s/%s-v%d-%s.bin", dir, req->api->name, req->hdr.api_version, client);
        FILE *f = fopen(path, "wx");
        if (!f)
                return;
        fwrite(req->frame, 1, req->frame_len, f);
        fclose(f);
}

int dispatch_request(struct conn *conn, void *alloc, uint8_t *frame, size_t len)
{
        struct broker *broker = conn->broker;
        struct request *req = xcalloc(1, sizeof(*req));
        req->broker = broker;
        req->conn = conn;
        req->frame_alloc = alloc;
        req->frame = frame;
        req->frame_len = len;
        req->received_ms = loop_now_ms(broker->loop);
        kafka_arena_init(&req->arena, len * ARENA_FACTOR + ARENA_FLOOR);
        kafka_arena_init(&req->out, SIZE_MAX);
        req->body = kafka_reader_from(frame, len, &req->arena);
        if (kafka_request_header_decode(&req->body, &req->hdr) < 0) {
                log_warn("closing peer=%s: malformed request header (%zu bytes)", conn->peer, len);
                request_free(req);
                return -EPROTO;
        }
        int16_t key = req->hdr.api_key, version = req->hdr.api_version;
        req->api = kafka_api_find(key);
        if (!req->api || key < 0 || key > KAFKA_API_KEY_MAX || !handlers[key].fn) {
                log_warn("closing peer=%s: unsupported api_key=%d version=%d", conn->peer, key, version);
                request_free(req);
                return -EPROTO;
        }
        if ((version < req->api->min_version || version > req->api->max_version) &&
            key != KAFKA_API_API_VERSIONS) {
                log_warn("closing peer=%s: unsupported %s version %d (served: %d-%d)", conn->peer,
                         req->api->name, version, req->api->min_version, req->api->max_version);
                request_free(req);
                return -EPROTO;
        }
        if (!conn->authenticated && key != KAFKA_API_API_VERSIONS && key != KAFKA_API_SASL_HANDSHAKE &&
            key != KAFKA_API_SASL_AUTHENTICATE) {
                log_warn("closing peer=%s: %s before authenticating (listener %s needs SASL)", conn->peer,
                         req->api->name, conn->listener->name);
                request_free(req);
                return -EACCES;
        }
        capture_frame(req);
        if (conn->tenant) {
                req->body.names = &conn->tenant->names; /* names decode into the namespace */
                tenancy_on_request(req);
        }
        log_debug("request peer=%s api=%s v=%d corr=%d size=%zu", conn->peer, req->api->name, version,
                  req->hdr.correlation_id, len);
        conn->inflight = req;
        broker->requests_total[key]++;
        int rc = handlers[key].fn(req);
        if (rc < 0) {
                log_warn("closing peer=%s: malformed %s v%d request (%zu bytes)", conn->peer,
                         req->api->name, version, len);
                if (conn->inflight == req) {
                        conn->inflight = NULL;
                        request_free(req);
                }
                return rc;
        }
        return 0;
}
