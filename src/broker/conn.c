/* Client connections: frame reading, one request in flight, ordered responses with
 * sendfile() for log data, backpressure, idle timeout and deferred close. On TLS
 * listeners the same paths go through broker/tls (one branch per I/O call). */
#define LOG_TOPIC "conn"
#include "broker/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/fileio.h"
#include "base/log.h"
#include "broker/auth/auth.h"
#include "broker/broker.h"
#include "broker/dispatch.h"
#include "broker/tenancy/tenancy.h"
#include "broker/tls/tls.h"
#include "loop/loop.h"

#define READ_CHUNK (64 * 1024)
/* Frames at least this large are handed over without copying. */
#define HANDOFF_MIN_BYTES (16 * 1024)
/* Stop handling further requests while this much output is queued (slow reader). */
#define OUT_HIGH_WATER (4 * 1024 * 1024)

static void conn_on_event(struct loop *loop, int fd, uint32_t events, void *arg);
static void conn_process(struct conn *conn);
static void conn_read(struct conn *conn);

static void describe_peer(int fd, char *out, size_t len)
{
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        char ip[INET6_ADDRSTRLEN] = "?";
        int port = 0;
        if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
                if (ss.ss_family == AF_INET) {
                        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
                        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
                } else if (ss.ss_family == AF_INET6) {
                        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof(ip));
                        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
                }
        }
        snprintf(out, len, "%s:%d", ip, port);
}

void conn_accept(struct broker *broker, struct listener *listener, int fd)
{
        if (broker->nconns >= broker->cfg.max_connections) {
                log_warn("refusing connection: max.connections=%d reached", broker->cfg.max_connections);
                close(fd);
                return;
        }
        struct conn *conn = xcalloc(1, sizeof(*conn));
        conn->broker = broker;
        conn->listener = listener;
        conn->fd = fd;
        conn->state = CONN_OPEN;
        buf_init(&conn->in);
        buf_init(&conn->out);
        kafka_writer_init(&conn->w, &conn->out);
        conn->last_active_ms = loop_now_ms(broker->loop);
        conn->authenticated = !listener->sasl;
        describe_peer(fd, conn->peer, sizeof(conn->peer));
        if (listener->tls_server) {
                conn->tls = tls_conn_new(listener->tls_server, fd, conn->peer);
                if (!conn->tls) {
                        close(fd);
                        free(conn);
                        return;
                }
        }
        if (loop_add_fd(broker->loop, fd, LOOP_READABLE, conn_on_event, conn) < 0) {
                tls_conn_free(conn->tls);
                close(fd);
                free(conn);
                return;
        }
        conn->next = broker->conns;
        if (broker->conns)
                broker->conns->prev = conn;
        broker->conns = conn;
        broker->nconns++;
        listener->connections_total++;
        log_debug("accepted peer=%s listener=%s", conn->peer, listener->name);
}

void conn_close(struct conn *conn, const char *reason)
{
        if (conn->state == CONN_CLOSED)
                return;
        struct broker *broker = conn->broker;
        log_debug("closing peer=%s reason=%s", conn->peer, reason);
        conn->state = CONN_CLOSED;
        loop_del_fd(broker->loop, conn->fd);
        tls_conn_shutdown(conn->tls);
        close(conn->fd);
        conn->fd = -1;
        loop_cancel_timer(broker->loop, conn->mute_timer);
        conn->mute_timer = NULL;
        tenancy_detach(conn);
        if (conn->inflight) {
                struct request *req = conn->inflight;
                conn->inflight = NULL;
                req->conn = NULL;
                if (req->cancel)
                        req->cancel(req);
                else
                        request_free(req);
        }
        if (conn->prev)
                conn->prev->next = conn->next;
        else
                broker->conns = conn->next;
        if (conn->next)
                conn->next->prev = conn->prev;
        broker->nconns--;
        conn->next = broker->closed;
        conn->prev = NULL;
        broker->closed = conn;
}

void conn_free_closed(struct broker *broker)
{
        while (broker->closed) {
                struct conn *conn = broker->closed;
                broker->closed = conn->next;
                kafka_writer_deinit(&conn->w);
                sasl_session_free(conn->sasl);
                tls_conn_free(conn->tls);
                free(conn->principal);
                free(conn->tenant_id);
                buf_deinit(&conn->in);
                buf_deinit(&conn->out);
                free(conn);
        }
}

static size_t out_pending(const struct conn *conn)
{
        return kafka_writer_size(&conn->w) - conn->out_sent;
}

/* send() or TLS: bytes taken, -EAGAIN or -errno. */
static ssize_t conn_send(struct conn *conn, const uint8_t *data, size_t len)
{
        if (conn->tls)
                return tls_conn_write(conn->tls, data, len);
        for (;;) {
                ssize_t n = send(conn->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n >= 0 || errno != EINTR)
                        return n >= 0 ? n : -errno;
        }
}

/* sendfile(), or with TLS a pread() into a bounded chunk encrypted by SSL_write. */
static ssize_t conn_sendfile(struct conn *conn, int fd, int64_t pos, size_t len)
{
        if (conn->tls)
                return tls_conn_sendfile(conn->tls, fd, pos, len);
        for (;;) {
                off_t off = (off_t)pos;
                ssize_t n = sendfile(conn->fd, fd, &off, len);
                if (n > 0)
                        return n;
                if (n == 0)
                        return -EIO; /* file shorter than promised */
                if (errno != EINTR)
                        return -errno;
        }
}

/* recv() or TLS: bytes read, 0 at end of stream, -EAGAIN or -errno. */
static ssize_t conn_recv(struct conn *conn, uint8_t *dst, size_t len)
{
        if (conn->tls)
                return tls_conn_read(conn->tls, dst, len);
        for (;;) {
                ssize_t n = recv(conn->fd, dst, len, MSG_DONTWAIT);
                if (n >= 0 || errno != EINTR)
                        return n >= 0 ? n : -errno;
        }
}

/* Sends queued output. Returns 0 (all sent or would block) or -errno (close). */
static int conn_flush(struct conn *conn)
{
        struct kafka_writer *w = &conn->w;
        for (;;) {
                size_t boundary = conn->out_part < w->nparts ? w->parts[conn->out_part].buf_end
                                                             : conn->out.len;
                /* out_sent counts buffer bytes plus slice bytes already sent; the buffer
                 * offset is out_sent minus the slices before out_part. */
                size_t slices_before = 0;
                for (int i = 0; i < conn->out_part; i++)
                        slices_before += (size_t)w->parts[i].slice.len;
                size_t buf_off = conn->out_sent - slices_before - (size_t)conn->out_part_sent;
                if (buf_off < boundary) {
                        ssize_t n = conn_send(conn, conn->out.data + buf_off, boundary - buf_off);
                        if (n < 0)
                                return n == -EAGAIN ? 0 : (int)n;
                        conn->out_sent += (size_t)n;
                        conn->broker->bytes_out += (uint64_t)n;
                        continue;
                }
                if (conn->out_part < w->nparts) {
                        struct kafka_file_slice *s = &w->parts[conn->out_part].slice;
                        int64_t left = s->len - conn->out_part_sent;
                        if (left > 0) {
                                int64_t pos = s->pos + conn->out_part_sent;
                                ssize_t n = conn_sendfile(conn, s->fd, pos, (size_t)left);
                                if (n < 0)
                                        return n == -EAGAIN ? 0 : (int)n;
                                conn->out_part_sent += n;
                                conn->out_sent += (size_t)n;
                                conn->broker->bytes_out += (uint64_t)n;
                                continue;
                        }
                        if (s->release)
                                s->release(s->ref);
                        s->release = NULL;
                        conn->out_part++;
                        conn->out_part_sent = 0;
                        continue;
                }
                /* Everything sent. */
                kafka_writer_deinit(w);
                kafka_writer_init(w, &conn->out);
                buf_reset(&conn->out);
                conn->out_sent = 0;
                conn->out_part = 0;
                conn->out_part_sent = 0;
                return 0;
        }
}

static bool has_complete_frame(const struct conn *conn)
{
        if (conn->in.len < 4)
                return false;
        return conn->in.len - 4 >= load_be32(conn->in.data);
}

/* Whether to read more now (not paused for a request in flight or for output). */
static bool conn_wants_read(const struct conn *conn)
{
        bool backed_up = out_pending(conn) > OUT_HIGH_WATER;
        return !conn->close_after_write && !backed_up && !conn->mute_timer &&
               !(conn->inflight && has_complete_frame(conn));
}

static void conn_update_interest(struct conn *conn)
{
        if (conn->state != CONN_OPEN)
                return;
        uint32_t ev = 0;
        bool reading = conn_wants_read(conn);
        bool writing = out_pending(conn) > 0;
        if (conn->tls) {
                /* A TLS read may wait for writability and a write for readability. */
                if (reading)
                        ev |= tls_conn_read_wants(conn->tls);
                if (writing)
                        ev |= tls_conn_write_wants(conn->tls);
                /* Bytes OpenSSL already decrypted raise no event: read them before
                 * sleeping (conn_process_ready). */
                if (reading && tls_conn_pending(conn->tls)) {
                        conn->read_ready = true;
                        if (!conn->ready) {
                                conn->ready = true;
                                conn->ready_next = conn->broker->ready_conns;
                                conn->broker->ready_conns = conn;
                        }
                }
        } else {
                if (reading)
                        ev |= LOOP_READABLE;
                if (writing)
                        ev |= LOOP_WRITABLE;
        }
        loop_mod_fd(conn->broker->loop, conn->fd, ev);
}

/* Hands complete frames to dispatch, one at a time. */
static void conn_process(struct conn *conn)
{
        struct broker *broker = conn->broker;
        bool again;
        do {
                size_t off = 0;
                conn->in_dispatch = true;
                while (conn->state == CONN_OPEN && !conn->inflight && !conn->close_after_write &&
                       !conn->mute_timer && out_pending(conn) <= OUT_HIGH_WATER) {
                        if (conn->in.len - off < 4)
                                break;
                        const uint8_t *p = conn->in.data + off;
                        int32_t size = (int32_t)load_be32(p);
                        /* Before authentication only small frames (SASL tokens are small). */
                        int32_t limit = conn->authenticated ? broker->cfg.socket_request_max_bytes
                                                            : broker->cfg.sasl_server_max_receive_size;
                        if (size < (conn->sasl_raw ? 0 : 8) || size > limit) {
                                log_warn("closing peer=%s: request frame of %d bytes (limit %s=%d)",
                                         conn->peer, size,
                                         conn->authenticated ? "socket.request.max.bytes"
                                                             : "sasl.server.max.receive.size",
                                         limit);
                                conn_close(conn, "bad frame size");
                                break;
                        }
                        if (conn->in.len - off - 4 < (size_t)size)
                                break;
                        void *alloc;
                        uint8_t *frame;
                        if (size >= HANDOFF_MIN_BYTES) {
                                /* A large frame (a produce) takes the input buffer itself rather
                                 * than a copy; the bytes read past it move to a fresh buffer. */
                                alloc = conn->in.data;
                                frame = conn->in.data + off + 4;
                                size_t rest = conn->in.len - off - 4 - (size_t)size;
                                struct buf fresh;
                                buf_init(&fresh);
                                buf_append(&fresh, frame + size, rest);
                                conn->in = fresh;
                                off = 0;
                        } else {
                                alloc = frame = xmalloc((size_t)size);
                                memcpy(frame, p + 4, (size_t)size);
                                off += 4 + (size_t)size;
                        }
                        conn->requests++;
                        if (conn->sasl_raw) {
                                /* A raw SASL token (SaslHandshake v0), answered in kind. */
                                int rc = auth_raw_token(conn, frame, (size_t)size);
                                free(alloc);
                                if (rc < 0 && conn->state == CONN_OPEN)
                                        conn_close(conn, "authentication failed");
                                continue;
                        }
                        int rc = dispatch_request(conn, alloc, frame, (size_t)size);
                        if (rc < 0 && conn->state == CONN_OPEN)
                                conn_close(conn, "bad request");
                }
                conn->in_dispatch = false;
                if (conn->state != CONN_OPEN)
                        return;
                if (off)
                        buf_consume(&conn->in, off);
                bool backed_up = out_pending(conn) > OUT_HIGH_WATER;
                if (out_pending(conn) > 0) {
                        int rc = conn_flush(conn);
                        if (rc < 0) {
                                conn_close(conn, strerror(-rc));
                                return;
                        }
                }
                /* A flush that made room must not leave a complete frame behind: no event may
                 * come for it (the client waits for its answer). */
                again = backed_up && out_pending(conn) <= OUT_HIGH_WATER && !conn->inflight &&
                        !conn->close_after_write && !conn->mute_timer && has_complete_frame(conn);
        } while (again);
        if (conn->close_after_write && out_pending(conn) == 0) {
                conn_close(conn, "closed after response");
                return;
        }
        conn_update_interest(conn);
}

void conn_request_done(struct conn *conn)
{
        conn->last_active_ms = loop_now_ms(conn->broker->loop);
        if (conn->in_dispatch || conn->ready)
                return;
        conn->ready = true;
        conn->ready_next = conn->broker->ready_conns;
        conn->broker->ready_conns = conn;
}

static void on_unmute(struct loop *loop, void *arg)
{
        struct conn *conn = arg;
        conn->mute_timer = NULL; /* the loop frees a fired timer */
        if (conn->state == CONN_OPEN)
                conn_process(conn); /* frames buffered while muted, then reading again */
}

void conn_mute(struct conn *conn, int64_t ms)
{
        struct broker *broker = conn->broker;
        int64_t until = loop_now_ms(broker->loop) + ms;
        if (ms <= 0 || conn->state != CONN_OPEN || (conn->mute_timer && conn->muted_until_ms >= until))
                return;
        loop_cancel_timer(broker->loop, conn->mute_timer);
        conn->muted_until_ms = until;
        conn->mute_timer = loop_add_timer(broker->loop, ms, on_unmute, conn);
        if (!conn->in_dispatch)
                conn_update_interest(conn);
}

void conn_write_raw_frame(struct conn *conn, const uint8_t *data, size_t len)
{
        kafka_write_i32(&conn->w, (int32_t)len);
        if (len)
                buf_append(&conn->out, data, len);
}

void conn_process_ready(struct broker *broker)
{
        while (broker->ready_conns) {
                struct conn *conn = broker->ready_conns;
                broker->ready_conns = conn->ready_next;
                conn->ready = false;
                conn->ready_next = NULL;
                bool read = conn->read_ready;
                conn->read_ready = false;
                if (conn->state != CONN_OPEN)
                        continue;
                if (read)
                        conn_read(conn); /* ends in conn_process() */
                else
                        conn_process(conn);
        }
}

static void conn_read(struct conn *conn)
{
        struct broker *broker = conn->broker;
        for (int rounds = 0; rounds < 16; rounds++) {
                size_t want = READ_CHUNK;
                /* A large frame in progress: make room for all of it at once. */
                if (conn->in.len >= 4) {
                        uint32_t size = load_be32(conn->in.data);
                        if (size <= (uint32_t)broker->cfg.socket_request_max_bytes &&
                            conn->in.len < size + 4) {
                                /* Grow with the bytes that actually arrive, not the size
                                 * the peer claims: doubling bounds waste to 2x received. */
                                size_t missing = size + 4 - conn->in.len;
                                want = MAX(want, MIN(missing, conn->in.len));
                        }
                }
                uint8_t *dst = buf_reserve(&conn->in, want);
                ssize_t n = conn_recv(conn, dst, want);
                if (n == -EAGAIN)
                        break;
                if (n < 0) {
                        conn_close(conn, strerror((int)-n));
                        return;
                }
                if (n == 0) {
                        conn_close(conn, "peer closed");
                        return;
                }
                conn->in.len += (size_t)n;
                broker->bytes_in += (uint64_t)n;
                conn->last_active_ms = loop_now_ms(broker->loop);
                /* A short recv() drained the socket; TLS returns one record at a time. */
                if ((!conn->tls && (size_t)n < want) || has_complete_frame(conn))
                        break;
        }
        conn_process(conn);
}

static void conn_on_event(struct loop *loop, int fd, uint32_t events, void *arg)
{
        struct conn *conn = arg;
        /* With TLS either direction may be what this event unblocks (a write waiting
         * for readability, a read for writability): try each that has work. */
        if (conn->tls) {
                events = out_pending(conn) > 0 ? LOOP_WRITABLE : 0;
                if (conn_wants_read(conn))
                        events |= LOOP_READABLE;
        }
        if (events & LOOP_WRITABLE) {
                int rc = conn_flush(conn);
                if (rc < 0) {
                        conn_close(conn, strerror(-rc));
                        return;
                }
                if (out_pending(conn) == 0) {
                        if (conn->close_after_write) {
                                conn_close(conn, "closed after response");
                                return;
                        }
                        conn_process(conn); /* may have paused for output */
                        if (conn->state != CONN_OPEN)
                                return;
                }
                conn_update_interest(conn);
        }
        if ((events & LOOP_READABLE) && conn->state == CONN_OPEN && (!conn->tls || conn_wants_read(conn)))
                conn_read(conn);
}

void conn_sweep_idle(struct broker *broker, int64_t now_ms)
{
        struct conn *conn = broker->conns;
        while (conn) {
                struct conn *next = conn->next;
                if (!conn->inflight && out_pending(conn) == 0 &&
                    now_ms - conn->last_active_ms > broker->cfg.connections_max_idle_ms) {
                        log_info("closing idle connection peer=%s idle_ms=%lld", conn->peer,
                                 (long long)(now_ms - conn->last_active_ms));
                        conn_close(conn, "idle");
                }
                conn = next;
        }
}
