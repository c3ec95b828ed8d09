/* Blocking Kafka client; see client.h. */
#include "kafka/client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/fileio.h"
#include "kafka/api.h"

#define MAX_RESPONSE (256 << 20)

struct kafka_client {
        int fd;
        int timeout_ms;
        int32_t next_correlation_id;
        uint8_t *frame; /* the last response */
};

/* Waits until <fd> is ready for <events> or <deadline_ms> passes. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
        for (;;) {
                int64_t left = deadline_ms - clock_mono_ms();
                if (left <= 0)
                        return -ETIMEDOUT;
                struct pollfd pfd = { .fd = fd, .events = events };
                int n = poll(&pfd, 1, (int)MIN(left, 60000));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n > 0)
                        return 0;
        }
}

int kafka_client_connect(const char *hostport, int timeout_ms, struct kafka_client **out)
{
        char host[256];
        const char *colon = strrchr(hostport, ':');
        if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof(host))
                return -EINVAL;
        memcpy(host, hostport, (size_t)(colon - hostport));
        host[colon - hostport] = '\0';
        char *h = host;
        if (h[0] == '[' && h[strlen(h) - 1] == ']') {
                h[strlen(h) - 1] = '\0';
                h++;
        }
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
        struct addrinfo *res;
        if (getaddrinfo(h, colon + 1, &hints, &res) != 0)
                return -EHOSTUNREACH;
        int64_t deadline = clock_mono_ms() + timeout_ms;
        int rc = -ECONNREFUSED;
        int fd = -1;
        for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
                fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (fd < 0) {
                        rc = -errno;
                        continue;
                }
                if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
                        rc = -errno;
                        close(fd);
                        fd = -1;
                        continue;
                }
                rc = wait_fd(fd, POLLOUT, deadline);
                int err = 0;
                socklen_t len = sizeof(err);
                if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err)
                        rc = -err;
                if (rc < 0) {
                        close(fd);
                        fd = -1;
                }
        }
        freeaddrinfo(res);
        if (fd < 0)
                return rc;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct kafka_client *c = xcalloc(1, sizeof(*c));
        c->fd = fd;
        c->timeout_ms = timeout_ms;
        c->next_correlation_id = 1;
        *out = c;
        return 0;
}

void kafka_client_close(struct kafka_client *c)
{
        if (!c)
                return;
        close(c->fd);
        free(c->frame);
        free(c);
}

static int send_all(struct kafka_client *c, const uint8_t *p, size_t len, int64_t deadline)
{
        while (len > 0) {
                ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
                if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                        int rc = wait_fd(c->fd, POLLOUT, deadline);
                        if (rc < 0)
                                return rc;
                        continue;
                }
                if (n < 0)
                        return -errno;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

static int recv_all(struct kafka_client *c, uint8_t *p, size_t len, int64_t deadline)
{
        while (len > 0) {
                ssize_t n = recv(c->fd, p, len, 0);
                if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                        int rc = wait_fd(c->fd, POLLIN, deadline);
                        if (rc < 0)
                                return rc;
                        continue;
                }
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ECONNRESET;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int kafka_client_call(struct kafka_client *c, int16_t api_key, int16_t version, const void *req, void *resp,
                      struct kafka_arena *arena)
{
        const struct kafka_api *api = kafka_api_find(api_key);
        if (!api)
                return -ENOTSUP;
        bool flexible = kafka_api_is_flexible(api, version);
        int32_t corr = c->next_correlation_id++;
        struct buf b;
        buf_init(&b);
        struct kafka_writer w;
        kafka_writer_init(&w, &b);
        kafka_write_i32(&w, 0); /* size, filled below */
        kafka_write_i16(&w, api_key);
        kafka_write_i16(&w, version);
        kafka_write_i32(&w, corr);
        kafka_write_str(&w, kafka_str_c("stratus-cli"), false); /* the header's client id is never compact */
        if (flexible)
                kafka_write_uvarint(&w, 0); /* request header v2: no tagged fields */
        api->encode_request(&w, version, req);
        store_be32(b.data, (uint32_t)(b.len - 4));
        int64_t deadline = clock_mono_ms() + c->timeout_ms;
        int rc = send_all(c, b.data, b.len, deadline);
        kafka_writer_deinit(&w);
        buf_deinit(&b);
        if (rc < 0)
                return rc;
        uint8_t size_be[4];
        rc = recv_all(c, size_be, 4, deadline);
        if (rc < 0)
                return rc;
        uint32_t size = load_be32(size_be);
        if (size < 4 || size > MAX_RESPONSE)
                return -EPROTO;
        free(c->frame);
        c->frame = xmalloc(size);
        rc = recv_all(c, c->frame, size, deadline);
        if (rc < 0)
                return rc;
        struct kafka_reader r = kafka_reader_from(c->frame, size, arena);
        if (kafka_read_i32(&r) != corr)
                return -EPROTO;
        /* ApiVersions answers with header v0 even in flexible versions. */
        if (flexible && api_key != KAFKA_API_API_VERSIONS) {
                uint32_t ntags = kafka_read_uvarint(&r);
                for (uint32_t i = 0; i < ntags && !r.failed; i++) {
                        kafka_read_uvarint(&r);
                        kafka_read_skip(&r, kafka_read_uvarint(&r));
                }
        }
        if (r.failed || api->decode_response(&r, version, resp) < 0)
                return -EPROTO;
        return 0;
}
