/* group_bench: a consumer-group load tool that speaks the Kafka protocol itself, with the
 * broker's generated codecs (src/kafka/gen, src/kafka/wire.h, src/kafka/api.h). Modes:
 *
 *   commit     N connections, each a "simple consumer" that commits offsets for a group
 *              of its own (generation -1, member id "": allowed while the group is
 *              Empty) with OffsetCommit v8, one request in flight per connection, for a
 *              fixed time or count; commits/s and the latency of every request.
 *   rebalance  M members (JoinGroup v5 with the MEMBER_ID_REQUIRED round trip, SyncGroup
 *              v3 with the leader assigning the topic's partitions, Heartbeat v3 every
 *              --heartbeat-ms) join one group; then one more member joins (or one leaves
 *              with LeaveGroup v3) and the others, who learn of it from their heartbeats,
 *              rejoin. Times from the first JoinGroup (and from the trigger) until every
 *              member has synced the new generation.
 *   create     only creates the topic (for runs of other clients).
 *
 * One thread, one ppoll() loop over every connection. Each run prints one JSON line
 * (starting with '{') and human lines (starting with '#'). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "kafka/api.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"
#include "kafka/wire.h"

#define MAX_CONNS 256
#define MAX_MEMBERS 64
#define MAX_PARTITIONS 4096
#define MAX_REPS 50
#define RESPONSE_ARENA_BYTES (16u << 20)
#define CLIENT_ID "group_bench"

struct bench_opts {
        const char *mode;             /* "commit" or "rebalance" */
        const char *bootstrap;        /* host:port */
        const char *topic;
        int partitions;               /* partitions of the topic (created here) */
        const char *group;            /* group id, or the prefix of one group per connection */
        const char *label;            /* free text copied into the JSON line */
        /* commit */
        int connections;
        int commit_partitions;        /* partition offsets per OffsetCommit */
        int16_t commit_version;
        bool same_group;              /* every connection commits for one group */
        double seconds;               /* most seconds to commit (after the warm-up) */
        int64_t count;                /* most OffsetCommit requests, all connections */
        double warmup_seconds;        /* commits before the measured window, not counted */
        /* rebalance */
        int members;
        const char *trigger;          /* "join" or "leave" */
        int heartbeat_ms;
        int session_timeout_ms;
        int rebalance_timeout_ms;
        int reps;
        double phase_timeout_s;       /* most seconds any phase may take */
};

static int64_t now_us(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double cpu_seconds_self(void)
{
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
               ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *fmt, const char *arg)
{
        fprintf(stderr, "group_bench: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\n");
        exit(2);
}

static int cmp_u32(const void *a, const void *b)
{
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
        return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

/* The <q> quantile (nearest rank) of the sorted <us> in ms; -1 when empty. */
static double quantile_ms(const uint32_t *us, int64_t n, double q)
{
        if (n <= 0)
                return -1;
        int64_t i = (int64_t)(q * (double)n + 0.5) - 1;
        i = i < 0 ? 0 : (i >= n ? n - 1 : i);
        return us[i] / 1000.0;
}

static double median_of(const double *xs, int n)
{
        if (n <= 0)
                return -1;
        double *s = xmalloc((size_t)n * sizeof(*s));
        memcpy(s, xs, (size_t)n * sizeof(*s));
        qsort(s, (size_t)n, sizeof(*s), cmp_double);
        double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
        free(s);
        return m;
}

/* ---- one connection ----------------------------------------------------------------
 * At most one request in flight. conn_send() encodes a request with the generated
 * encoder and writes what the socket takes; conn_read() collects the answer, which is
 * decoded into the connection's arena and valid until conn_response_done(). */

struct conn {
        int fd;
        struct buf out;            /* request bytes not yet written */
        struct buf in;             /* response bytes read so far */
        int16_t api_key;           /* of the request in flight; -1 when none */
        int16_t answered_key;      /* of the answer conn_read() decoded, until conn_response_done() */
        int16_t api_version;
        int32_t correlation_id;
        int64_t sent_us;           /* when the request in flight was encoded and written */
        struct kafka_arena arena;  /* the decoded response's arrays */
        size_t frame_len;          /* bytes of the answered frame in <in>, 0 when none */
};

static int conn_open(struct conn *conn, const char *bootstrap)
{
        char host[256];
        const char *colon = strrchr(bootstrap, ':');
        if (!colon || (size_t)(colon - bootstrap) >= sizeof(host))
                die("--bootstrap wants host:port, got %s", bootstrap);
        memcpy(host, bootstrap, (size_t)(colon - bootstrap));
        host[colon - bootstrap] = '\0';
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai;
        if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
                die("cannot resolve %s", bootstrap);
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
                int err = errno;
                freeaddrinfo(ai);
                if (fd >= 0)
                        close(fd);
                return -err;
        }
        freeaddrinfo(ai);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        memset(conn, 0, sizeof(*conn));
        conn->fd = fd;
        conn->api_key = -1;
        conn->answered_key = -1;
        buf_init(&conn->out);
        buf_init(&conn->in);
        kafka_arena_init(&conn->arena, RESPONSE_ARENA_BYTES);
        return 0;
}

static void conn_close(struct conn *conn)
{
        if (conn->fd >= 0)
                close(conn->fd);
        conn->fd = -1;
        conn->api_key = -1;
        buf_deinit(&conn->out);
        buf_deinit(&conn->in);
        kafka_arena_deinit(&conn->arena);
}

static bool conn_busy(const struct conn *conn)
{
        return conn->api_key >= 0;
}

/* Writes what the socket takes of <conn>->out. Returns 0 or -errno. */
static int conn_flush(struct conn *conn)
{
        while (conn->out.len) {
                ssize_t n = send(conn->fd, conn->out.data, conn->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return 0;
                if (n < 0)
                        return -errno;
                buf_consume(&conn->out, (size_t)n);
        }
        return 0;
}

/* Encodes <msg> as a <key> v<version> request (header v1, or v2 for flexible versions)
 * and starts writing it. Returns 0 or -errno. */
static int conn_send(struct conn *conn, int16_t key, int16_t version, const void *msg)
{
        const struct kafka_api *api = kafka_api_find(key);
        if (!api || version < api->min_version || version > api->max_version)
                die("API %s: version not served by the generated table", api ? api->name : "?");
        ASSERT(!conn_busy(conn));
        struct kafka_writer w;
        kafka_writer_init(&w, &conn->out);
        size_t start = conn->out.len;
        conn->correlation_id++;
        kafka_write_i32(&w, 0);
        kafka_write_i16(&w, key);
        kafka_write_i16(&w, version);
        kafka_write_i32(&w, conn->correlation_id);
        kafka_write_str(&w, kafka_str_c(CLIENT_ID), false);
        if (kafka_api_is_flexible(api, version))
                kafka_write_uvarint(&w, 0); /* no header tagged fields */
        api->encode_request(&w, version, msg);
        kafka_writer_deinit(&w);
        uint32_t size = (uint32_t)(conn->out.len - start - 4);
        uint8_t *p = conn->out.data + start;
        p[0] = (uint8_t)(size >> 24);
        p[1] = (uint8_t)(size >> 16);
        p[2] = (uint8_t)(size >> 8);
        p[3] = (uint8_t)size;
        conn->api_key = key;
        conn->api_version = version;
        conn->sent_us = now_us();
        return conn_flush(conn);
}

/* Reads what is available. Returns 1 when the answer to the request in flight has been
 * decoded into *<resp> (a struct of the API's response type; its arrays and strings
 * stay valid until conn_response_done(), and the next request may be sent before
 * that), 0 when more bytes are needed, or -errno (-EPROTO for a bad answer,
 * -ECONNRESET at EOF). */
static int conn_read(struct conn *conn, void *resp)
{
        for (;;) {
                if (conn->in.len >= 4) {
                        const uint8_t *p = conn->in.data;
                        size_t size = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
                        if (size > (64u << 20))
                                return -EPROTO;
                        if (conn->in.len >= 4 + size) {
                                if (!conn_busy(conn) || conn->frame_len)
                                        return -EPROTO;
                                const struct kafka_api *api = kafka_api_find(conn->api_key);
                                struct kafka_reader r = kafka_reader_from(p + 4, size, &conn->arena);
                                int32_t correlation_id = kafka_read_i32(&r);
                                if (kafka_api_is_flexible(api, conn->api_version)) {
                                        uint32_t n = kafka_read_uvarint(&r);
                                        for (uint32_t i = 0; i < n && !r.failed; i++) {
                                                kafka_read_uvarint(&r);
                                                kafka_read_skip(&r, kafka_read_uvarint(&r));
                                        }
                                }
                                if (r.failed || correlation_id != conn->correlation_id ||
                                    api->decode_response(&r, conn->api_version, resp) < 0)
                                        return -EPROTO;
                                conn->frame_len = 4 + size;
                                conn->answered_key = conn->api_key;
                                conn->api_key = -1;
                                return 1;
                        }
                }
                uint8_t *dst = buf_reserve(&conn->in, 65536);
                ssize_t n = recv(conn->fd, dst, 65536, MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return 0;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ECONNRESET;
                conn->in.len += (size_t)n;
        }
}

/* Forgets the answered frame and its decoded data. */
static void conn_response_done(struct conn *conn)
{
        buf_consume(&conn->in, conn->frame_len);
        conn->frame_len = 0;
        conn->answered_key = -1;
        kafka_arena_deinit(&conn->arena);
}

/* Sends one request and waits (at most <timeout_ms>) for its answer in *<resp>.
 * Returns 0 or -errno. For setup and teardown, outside the measured loops. */
static int conn_call(struct conn *conn, int16_t key, int16_t version, const void *req, void *resp, int timeout_ms)
{
        int rc = conn_send(conn, key, version, req);
        int64_t deadline = now_us() + (int64_t)timeout_ms * 1000;
        while (rc == 0) {
                rc = conn_read(conn, resp);
                if (rc != 0)
                        break;
                int64_t left_ms = (deadline - now_us()) / 1000;
                if (left_ms <= 0)
                        return -ETIMEDOUT;
                struct pollfd pfd = { conn->fd, POLLIN | (conn->out.len ? POLLOUT : 0), 0 };
                poll(&pfd, 1, (int)left_ms);
                if (conn->out.len)
                        rc = conn_flush(conn);
        }
        return rc < 0 ? rc : 0;
}

/* ---- setup ------------------------------------------------------------------------ */

/* Creates <topic> with <partitions> (CreateTopics v5); an existing topic is fine. */
static void create_topic(const struct bench_opts *opts)
{
        struct conn conn;
        if (conn_open(&conn, opts->bootstrap) < 0)
                die("cannot connect to %s", opts->bootstrap);
        struct create_topics_request_creatable_topic t;
        create_topics_request_creatable_topic_init(&t);
        t.name = kafka_str_c(opts->topic);
        t.num_partitions = opts->partitions;
        t.replication_factor = 1;
        t.assignments_count = 0;
        t.configs_count = 0;
        struct create_topics_request req;
        create_topics_request_init(&req);
        req.topics = &t;
        req.topics_count = 1;
        req.timeout_ms = 10000;
        struct create_topics_response resp;
        if (conn_call(&conn, KAFKA_API_CREATE_TOPICS, 5, &req, &resp, 15000) < 0)
                die("CreateTopics to %s failed", opts->bootstrap);
        int16_t err = resp.topics_count == 1 ? resp.topics[0].error_code : KAFKA_UNKNOWN_SERVER_ERROR;
        if (err != KAFKA_NONE && err != KAFKA_TOPIC_ALREADY_EXISTS)
                die("CreateTopics: %s", kafka_error_name(err));
        conn_response_done(&conn);
        conn_close(&conn);
}

/* FindCoordinator v3 for <group> on <conn>: the broker must name itself. */
static void find_coordinator(struct conn *conn, const char *group)
{
        struct find_coordinator_request req;
        find_coordinator_request_init(&req);
        req.key = kafka_str_c(group);
        req.key_type = 0;
        struct find_coordinator_response resp;
        if (conn_call(conn, KAFKA_API_FIND_COORDINATOR, 3, &req, &resp, 10000) < 0)
                die("FindCoordinator for %s failed", group);
        if (resp.error_code != KAFKA_NONE)
                die("FindCoordinator: %s", kafka_error_name(resp.error_code));
        conn_response_done(conn);
}

/* ---- commit ------------------------------------------------------------------------- */

struct committer {
        struct conn conn;
        char group[256];
        int64_t next_offset;        /* committed offsets grow by one per request */
        int64_t requests;           /* answered inside the measured window */
};

struct commit_run {
        const struct bench_opts *opts;
        struct committer *cs;
        struct offset_commit_request_offset_commit_request_partition *parts;
        uint32_t *lat_us;           /* one per answered request in the window */
        int64_t nlat;
        int64_t lat_cap;
        int64_t errors;             /* partitions answered with an error */
        int64_t sent;               /* requests sent inside the window */
        char first_error[128];
};

static int commit_send(struct commit_run *run, struct committer *c)
{
        const struct bench_opts *opts = run->opts;
        for (int i = 0; i < opts->commit_partitions; i++) {
                offset_commit_request_offset_commit_request_partition_init(&run->parts[i]);
                run->parts[i].partition_index = i;
                run->parts[i].committed_offset = c->next_offset;
        }
        c->next_offset++;
        struct offset_commit_request_offset_commit_request_topic t;
        offset_commit_request_offset_commit_request_topic_init(&t);
        t.name = kafka_str_c(opts->topic);
        t.partitions = run->parts;
        t.partitions_count = opts->commit_partitions;
        struct offset_commit_request req;
        offset_commit_request_init(&req);
        req.group_id = kafka_str_c(c->group);
        req.generation_id_or_member_epoch = -1;
        req.member_id = kafka_str_c("");
        req.topics = &t;
        req.topics_count = 1;
        return conn_send(&c->conn, KAFKA_API_OFFSET_COMMIT, opts->commit_version, &req);
}

static void commit_note_error(struct commit_run *run, const char *what)
{
        run->errors++;
        if (!run->first_error[0])
                snprintf(run->first_error, sizeof(run->first_error), "%s", what);
}

static int cmd_commit(const struct bench_opts *opts)
{
        if (opts->commit_partitions > opts->partitions)
                die("%s", "--commit-partitions is more than the topic's --partitions");
        create_topic(opts);
        struct commit_run run = { .opts = opts };
        run.cs = xcalloc((size_t)opts->connections, sizeof(*run.cs));
        run.parts = xcalloc((size_t)opts->commit_partitions, sizeof(*run.parts));
        run.lat_cap = 1 << 16;
        run.lat_us = xmalloc((size_t)run.lat_cap * sizeof(*run.lat_us));
        struct pollfd *pfds = xcalloc((size_t)opts->connections, sizeof(*pfds));
        for (int i = 0; i < opts->connections; i++) {
                struct committer *c = &run.cs[i];
                if (conn_open(&c->conn, opts->bootstrap) < 0)
                        die("cannot connect to %s", opts->bootstrap);
                if (opts->same_group)
                        snprintf(c->group, sizeof(c->group), "%s", opts->group);
                else
                        snprintf(c->group, sizeof(c->group), "%s-%d", opts->group, i);
                find_coordinator(&c->conn, c->group);
        }

        double cpu0 = cpu_seconds_self();
        int64_t t_begin = now_us();
        int64_t t_start = t_begin + (int64_t)(opts->warmup_seconds * 1e6); /* the measured window */
        int64_t t_stop = t_start + (int64_t)(opts->seconds * 1e6);
        bool stopping = false;
        int in_flight = 0;
        for (int i = 0; i < opts->connections; i++) {
                if (commit_send(&run, &run.cs[i]) < 0)
                        die("%s", "send failed");
                in_flight++;
        }
        while (in_flight > 0) {
                for (int i = 0; i < opts->connections; i++) {
                        pfds[i].fd = conn_busy(&run.cs[i].conn) ? run.cs[i].conn.fd : -1;
                        pfds[i].events = POLLIN | (run.cs[i].conn.out.len ? POLLOUT : 0);
                        pfds[i].revents = 0;
                }
                int64_t now = now_us();
                if (now > t_stop + 10 * 1000000LL) {
                        commit_note_error(&run, "answers still missing 10 s after the end");
                        break;
                }
                int n = poll(pfds, (nfds_t)opts->connections, 1000);
                if (n < 0 && errno != EINTR)
                        die("poll: %s", strerror(errno));
                for (int i = 0; i < opts->connections && n > 0; i++) {
                        if (!pfds[i].revents)
                                continue;
                        struct committer *c = &run.cs[i];
                        if (c->conn.out.len && conn_flush(&c->conn) < 0)
                                die("%s", "write failed");
                        struct offset_commit_response resp;
                        int rc = conn_read(&c->conn, &resp);
                        if (rc < 0)
                                die("OffsetCommit: connection failed: %s", strerror(-rc));
                        if (rc == 0)
                                continue;
                        int64_t t = now_us();
                        bool counted = c->conn.sent_us >= t_start && t <= t_stop;
                        for (int32_t ti = 0; ti < resp.topics_count; ti++)
                                for (int32_t pi = 0; pi < resp.topics[ti].partitions_count; pi++)
                                        if (resp.topics[ti].partitions[pi].error_code != KAFKA_NONE)
                                                commit_note_error(
                                                        &run, kafka_error_name(resp.topics[ti].partitions[pi].error_code));
                        if (resp.topics_count != 1 || resp.topics[0].partitions_count != opts->commit_partitions)
                                commit_note_error(&run, "answer has the wrong partitions");
                        if (counted) {
                                if (run.nlat == run.lat_cap) {
                                        run.lat_cap *= 2;
                                        run.lat_us = xrealloc(run.lat_us, (size_t)run.lat_cap * sizeof(*run.lat_us));
                                }
                                int64_t lat = t - c->conn.sent_us;
                                run.lat_us[run.nlat++] = lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat;
                                c->requests++;
                        }
                        conn_response_done(&c->conn);
                        in_flight--;
                        if (t >= t_stop || run.sent >= opts->count)
                                stopping = true;
                        if (stopping)
                                continue;
                        if (t >= t_start)
                                run.sent++;
                        if (commit_send(&run, c) < 0)
                                die("%s", "send failed");
                        in_flight++;
                }
        }
        int64_t t_end = now_us();
        double cpu = cpu_seconds_self() - cpu0;
        /* The window: from its start to the last counted answer (or its planned end). */
        double seconds = (double)((t_end < t_stop ? t_end : t_stop) - t_start) / 1e6;
        qsort(run.lat_us, (size_t)run.nlat, sizeof(*run.lat_us), cmp_u32);
        double rps = seconds > 0 ? run.nlat / seconds : 0;
        double p50 = quantile_ms(run.lat_us, run.nlat, 0.50), p99 = quantile_ms(run.lat_us, run.nlat, 0.99);
        double p999 = quantile_ms(run.lat_us, run.nlat, 0.999);
        double max = run.nlat ? run.lat_us[run.nlat - 1] / 1000.0 : -1;
        printf("{\"mode\":\"commit\",\"label\":\"%s\",\"topic\":\"%s\",\"connections\":%d,\"commit_partitions\":%d,"
               "\"version\":%d,\"same_group\":%s,\"requests\":%" PRId64 ",\"offsets\":%" PRId64
               ",\"seconds\":%.4f,\"commits_per_s\":%.1f,\"offsets_per_s\":%.1f,\"lat_p50_ms\":%.3f,"
               "\"lat_p99_ms\":%.3f,\"lat_p999_ms\":%.3f,\"lat_max_ms\":%.3f,\"client_cpu_s\":%.3f,"
               "\"errors\":%" PRId64 ",\"error\":\"%s\"}\n",
               opts->label, opts->topic, opts->connections, opts->commit_partitions, opts->commit_version,
               opts->same_group ? "true" : "false", run.nlat, run.nlat * opts->commit_partitions, seconds, rps,
               rps * opts->commit_partitions, p50, p99, p999, max, cpu, run.errors, run.first_error);
        printf("# commit %s connections=%d partitions/commit=%d v%d: %" PRId64 " commits in %.2f s, %.0f commits/s, "
               "%.0f offsets/s, latency p50 %.3f ms p99 %.3f ms p99.9 %.3f ms max %.3f ms%s%s\n",
               opts->bootstrap, opts->connections, opts->commit_partitions, opts->commit_version, run.nlat, seconds,
               rps, rps * opts->commit_partitions, p50, p99, p999, max, run.errors ? ", ERRORS: " : "",
               run.first_error);
        fflush(stdout);
        for (int i = 0; i < opts->connections; i++)
                conn_close(&run.cs[i].conn);
        free(pfds);
        free(run.lat_us);
        free(run.parts);
        free(run.cs);
        return run.errors || run.nlat == 0 ? 1 : 0;
}

/* ---- rebalance ---------------------------------------------------------------------- */

enum member_state {
        MEMBER_OFF = 0,   /* not started, or gone */
        MEMBER_JOINING,   /* JoinGroup in flight */
        MEMBER_SYNCING,   /* SyncGroup in flight */
        MEMBER_STABLE,    /* synced; heartbeats every --heartbeat-ms */
        MEMBER_LEAVING,   /* LeaveGroup in flight */
};

struct member {
        struct conn conn;
        int index;
        enum member_state state;
        char member_id[256];         /* "" until the broker hands one out */
        int32_t generation_id;       /* of the last successful JoinGroup */
        int32_t synced_generation;   /* of the last successful SyncGroup; -1 none */
        int32_t *assigned;           /* partitions of that SyncGroup's assignment */
        int32_t assigned_count;
        int64_t next_heartbeat_us;   /* STABLE: when the next heartbeat goes (none in flight) */
        int64_t learned_us;          /* when a heartbeat last said to rejoin; 0 none */
        int64_t synced_us;           /* when the last successful SyncGroup answer came */
        int32_t group_size;          /* leader: members in its last JoinGroup answer */
        int joins;                   /* JoinGroup requests sent */
};

struct rebalance_run {
        const struct bench_opts *opts;
        char group[256];
        struct member members[MAX_MEMBERS];
        int nmembers;                /* members started so far */
        struct buf subscription;     /* ConsumerProtocolSubscription v0 for the topic */
        int64_t errors;
        char first_error[160];
};

static void rebalance_error(struct rebalance_run *run, const char *api, int16_t code)
{
        run->errors++;
        if (!run->first_error[0])
                snprintf(run->first_error, sizeof(run->first_error), "%s: %s", api, kafka_error_name(code));
}

static void member_join(struct rebalance_run *run, struct member *m)
{
        const struct bench_opts *opts = run->opts;
        struct join_group_request_join_group_request_protocol proto;
        join_group_request_join_group_request_protocol_init(&proto);
        proto.name = kafka_str_c("range");
        proto.metadata = (struct kafka_bytes){ run->subscription.data, (int32_t)run->subscription.len };
        struct join_group_request req;
        join_group_request_init(&req);
        req.group_id = kafka_str_c(run->group);
        req.session_timeout_ms = opts->session_timeout_ms;
        req.rebalance_timeout_ms = opts->rebalance_timeout_ms;
        req.member_id = kafka_str_c(m->member_id);
        req.protocol_type = kafka_str_c("consumer");
        req.protocols = &proto;
        req.protocols_count = 1;
        m->state = MEMBER_JOINING;
        m->joins++;
        if (conn_send(&m->conn, KAFKA_API_JOIN_GROUP, 5, &req) < 0)
                die("%s", "JoinGroup: send failed");
}

/* The leader's assignment: the topic's partitions round-robin over the members in the
 * order of the JoinGroup answer, each as a ConsumerProtocolAssignment v0. */
static void member_sync(struct rebalance_run *run, struct member *m, const struct join_group_response *jr)
{
        const struct bench_opts *opts = run->opts;
        int32_t n = m->group_size = jr->members_count;
        struct sync_group_request_sync_group_request_assignment *as = NULL;
        struct buf *bufs = NULL;
        if (n > 0) {
                as = xcalloc((size_t)n, sizeof(*as));
                bufs = xcalloc((size_t)n, sizeof(*bufs));
                for (int32_t i = 0; i < n; i++) {
                        buf_init(&bufs[i]);
                        struct kafka_writer w;
                        kafka_writer_init(&w, &bufs[i]);
                        int32_t mine = 0;
                        for (int32_t p = i; p < opts->partitions; p += n)
                                mine++;
                        kafka_write_i16(&w, 0);
                        kafka_write_array_len(&w, 1, false);
                        kafka_write_str(&w, kafka_str_c(opts->topic), false);
                        kafka_write_array_len(&w, mine, false);
                        for (int32_t p = i; p < opts->partitions; p += n)
                                kafka_write_i32(&w, p);
                        kafka_write_bytes(&w, (struct kafka_bytes){ NULL, -1 }, false);
                        kafka_writer_deinit(&w);
                        sync_group_request_sync_group_request_assignment_init(&as[i]);
                        as[i].member_id = jr->members[i].member_id;
                        as[i].assignment = (struct kafka_bytes){ bufs[i].data, (int32_t)bufs[i].len };
                }
        }
        struct sync_group_request req;
        sync_group_request_init(&req);
        req.group_id = kafka_str_c(run->group);
        req.generation_id = m->generation_id;
        req.member_id = kafka_str_c(m->member_id);
        req.assignments = as;
        req.assignments_count = n;
        m->state = MEMBER_SYNCING;
        if (conn_send(&m->conn, KAFKA_API_SYNC_GROUP, 3, &req) < 0)
                die("%s", "SyncGroup: send failed");
        for (int32_t i = 0; i < n; i++)
                buf_deinit(&bufs[i]);
        free(bufs);
        free(as);
}

static void member_heartbeat(struct rebalance_run *run, struct member *m)
{
        struct heartbeat_request req;
        heartbeat_request_init(&req);
        req.group_id = kafka_str_c(run->group);
        req.generation_id = m->generation_id;
        req.member_id = kafka_str_c(m->member_id);
        m->next_heartbeat_us = now_us() + (int64_t)run->opts->heartbeat_ms * 1000;
        if (conn_send(&m->conn, KAFKA_API_HEARTBEAT, 3, &req) < 0)
                die("%s", "Heartbeat: send failed");
}

static void member_leave(struct rebalance_run *run, struct member *m)
{
        struct leave_group_request_member_identity id;
        leave_group_request_member_identity_init(&id);
        id.member_id = kafka_str_c(m->member_id);
        struct leave_group_request req;
        leave_group_request_init(&req);
        req.group_id = kafka_str_c(run->group);
        req.members = &id;
        req.members_count = 1;
        m->state = MEMBER_LEAVING;
        if (conn_send(&m->conn, KAFKA_API_LEAVE_GROUP, 3, &req) < 0)
                die("%s", "LeaveGroup: send failed");
}

/* Decodes a ConsumerProtocolAssignment into <m>->assigned (partitions of our topic). */
static void member_take_assignment(struct rebalance_run *run, struct member *m, struct kafka_bytes a)
{
        m->assigned_count = 0;
        if (a.len <= 0)
                return;
        struct kafka_reader r = kafka_reader_from(a.ptr, (size_t)a.len, NULL);
        kafka_read_i16(&r);
        int32_t topics = kafka_read_array_len(&r, false, 4);
        for (int32_t t = 0; t < topics && !r.failed; t++) {
                struct kafka_str name = kafka_read_str(&r, false);
                int32_t n = kafka_read_array_len(&r, false, 4);
                for (int32_t i = 0; i < n && !r.failed; i++) {
                        int32_t p = kafka_read_i32(&r);
                        if (kafka_str_eq(name, run->opts->topic) && m->assigned_count < MAX_PARTITIONS)
                                m->assigned[m->assigned_count++] = p;
                }
        }
        if (r.failed)
                rebalance_error(run, "SyncGroup assignment", KAFKA_CORRUPT_MESSAGE);
}

/* Handles the answer on <m>'s connection and sends what follows from it. */
static void member_on_response(struct rebalance_run *run, struct member *m)
{
        union {
                struct join_group_response join;
                struct sync_group_response sync;
                struct heartbeat_response hb;
                struct leave_group_response leave;
        } resp;
        int rc = conn_read(&m->conn, &resp);
        if (rc == 0)
                return;
        if (rc < 0)
                die("member connection failed: %s", strerror(-rc));
        int16_t key = m->conn.answered_key;
        int64_t t = now_us();
        if (key == KAFKA_API_JOIN_GROUP) {
                struct join_group_response *jr = &resp.join;
                if (jr->error_code == KAFKA_MEMBER_ID_REQUIRED || jr->error_code == KAFKA_NONE) {
                        snprintf(m->member_id, sizeof(m->member_id), "%.*s", (int)jr->member_id.len, jr->member_id.ptr);
                }
                if (jr->error_code == KAFKA_MEMBER_ID_REQUIRED) {
                        conn_response_done(&m->conn);
                        member_join(run, m);
                        return;
                }
                if (jr->error_code != KAFKA_NONE) {
                        if (jr->error_code != KAFKA_REBALANCE_IN_PROGRESS)
                                rebalance_error(run, "JoinGroup", jr->error_code);
                        if (jr->error_code == KAFKA_UNKNOWN_MEMBER_ID)
                                m->member_id[0] = '\0';
                        conn_response_done(&m->conn);
                        member_join(run, m);
                        return;
                }
                m->generation_id = jr->generation_id;
                if (!kafka_str_eq(jr->leader, m->member_id))
                        jr->members_count = 0; /* followers send no assignments */
                member_sync(run, m, jr); /* encoded before the answer is released */
                conn_response_done(&m->conn);
                return;
        }
        if (key == KAFKA_API_SYNC_GROUP) {
                int16_t err = resp.sync.error_code;
                if (err == KAFKA_NONE) {
                        member_take_assignment(run, m, resp.sync.assignment);
                        m->synced_generation = m->generation_id;
                        m->synced_us = t;
                        m->state = MEMBER_STABLE;
                        m->next_heartbeat_us = t + (int64_t)run->opts->heartbeat_ms * 1000;
                        conn_response_done(&m->conn);
                        return;
                }
                if (err != KAFKA_REBALANCE_IN_PROGRESS && err != KAFKA_ILLEGAL_GENERATION)
                        rebalance_error(run, "SyncGroup", err);
                if (err == KAFKA_UNKNOWN_MEMBER_ID)
                        m->member_id[0] = '\0';
                conn_response_done(&m->conn);
                member_join(run, m);
                return;
        }
        if (key == KAFKA_API_HEARTBEAT) {
                int16_t err = resp.hb.error_code;
                conn_response_done(&m->conn);
                if (err == KAFKA_NONE)
                        return; /* next_heartbeat_us was set when it was sent */
                if (err == KAFKA_REBALANCE_IN_PROGRESS || err == KAFKA_ILLEGAL_GENERATION) {
                        m->learned_us = t;
                } else {
                        rebalance_error(run, "Heartbeat", err);
                        if (err == KAFKA_UNKNOWN_MEMBER_ID)
                                m->member_id[0] = '\0';
                }
                member_join(run, m);
                return;
        }
        if (key == KAFKA_API_LEAVE_GROUP) {
                int16_t err = resp.leave.error_code;
                if (err == KAFKA_NONE && resp.leave.members_count == 1)
                        err = resp.leave.members[0].error_code;
                if (err != KAFKA_NONE)
                        rebalance_error(run, "LeaveGroup", err);
                conn_response_done(&m->conn);
                m->state = MEMBER_OFF;
                return;
        }
        die("%s", "answer to an unexpected request");
}

/* True when every live member has synced one generation >= <min_generation> of exactly
 * <expected> members whose assignments cover every partition once; then *<at_us> is the
 * last of those SyncGroup answers and *<generation> the generation. */
static bool rebalance_converged(struct rebalance_run *run, int expected, int32_t min_generation, int64_t *at_us,
                                int32_t *generation)
{
        static uint8_t seen[MAX_PARTITIONS];
        int live = 0, covered = 0;
        int32_t gen = -1;
        int64_t last = 0;
        memset(seen, 0, sizeof(seen));
        for (int i = 0; i < run->nmembers; i++) {
                struct member *m = &run->members[i];
                if (m->state == MEMBER_OFF)
                        continue;
                if (m->state != MEMBER_STABLE) /* a heartbeat in flight is fine */
                        return false;
                if (m->synced_generation < min_generation || (gen >= 0 && m->synced_generation != gen))
                        return false;
                gen = m->synced_generation;
                live++;
                last = m->synced_us > last ? m->synced_us : last;
                for (int32_t k = 0; k < m->assigned_count; k++) {
                        int32_t p = m->assigned[k];
                        if (p < 0 || p >= run->opts->partitions || seen[p]++)
                                return false;
                        covered++;
                }
        }
        if (live != expected || covered != run->opts->partitions)
                return false;
        *at_us = last;
        *generation = gen;
        return true;
}

/* Runs the members' loop until <until_us>, or (when <expected> > 0) until the group
 * converges. Returns true when it converged. */
static bool rebalance_loop(struct rebalance_run *run, int64_t until_us, int expected, int32_t min_generation,
                           int64_t *at_us, int32_t *generation)
{
        struct pollfd pfds[MAX_MEMBERS];
        for (;;) {
                if (expected > 0 && rebalance_converged(run, expected, min_generation, at_us, generation))
                        return true;
                int64_t now = now_us();
                if (now >= until_us)
                        return false;
                int64_t wake = until_us;
                for (int i = 0; i < run->nmembers; i++) {
                        struct member *m = &run->members[i];
                        if (m->state == MEMBER_STABLE && !conn_busy(&m->conn)) {
                                if (m->next_heartbeat_us <= now)
                                        member_heartbeat(run, m);
                                else if (m->next_heartbeat_us < wake)
                                        wake = m->next_heartbeat_us;
                        }
                        pfds[i].fd = conn_busy(&m->conn) ? m->conn.fd : -1;
                        pfds[i].events = POLLIN | (m->conn.out.len ? POLLOUT : 0);
                        pfds[i].revents = 0;
                }
                int64_t wait_us = wake - now_us();
                struct timespec ts = { 0, 0 };
                if (wait_us > 0) {
                        ts.tv_sec = wait_us / 1000000;
                        ts.tv_nsec = (wait_us % 1000000) * 1000;
                }
                int n = ppoll(pfds, (nfds_t)run->nmembers, &ts, NULL);
                if (n < 0 && errno != EINTR)
                        die("ppoll: %s", strerror(errno));
                for (int i = 0; i < run->nmembers && n > 0; i++) {
                        if (!pfds[i].revents)
                                continue;
                        struct member *m = &run->members[i];
                        if (m->conn.out.len && conn_flush(&m->conn) < 0)
                                die("%s", "write failed");
                        member_on_response(run, m);
                }
        }
}

static void member_start(struct rebalance_run *run, struct member *m, int index)
{
        memset(m, 0, sizeof(*m));
        m->index = index;
        m->synced_generation = -1;
        m->assigned = xcalloc(MAX_PARTITIONS, sizeof(*m->assigned));
        if (conn_open(&m->conn, run->opts->bootstrap) < 0)
                die("cannot connect to %s", run->opts->bootstrap);
        find_coordinator(&m->conn, run->group);
}

/* Every member that is in the group leaves (LeaveGroup v3, bounded in time), so the
 * group ends Empty. Members whose JoinGroup or SyncGroup the broker still holds are
 * skipped; their connections close. */
static void rebalance_leave_all(struct rebalance_run *run)
{
        int64_t deadline = now_us() + 5000000;
        for (int i = 0; i < run->nmembers; i++) {
                struct member *m = &run->members[i];
                if (m->state == MEMBER_OFF || !m->member_id[0])
                        continue;
                while (conn_busy(&m->conn) && m->conn.api_key == KAFKA_API_HEARTBEAT && now_us() < deadline) {
                        struct pollfd pfd = { m->conn.fd, POLLIN, 0 };
                        poll(&pfd, 1, 100);
                        struct heartbeat_response resp;
                        int r = conn_read(&m->conn, &resp);
                        if (r < 0)
                                break;
                        if (r > 0)
                                conn_response_done(&m->conn);
                }
                if (conn_busy(&m->conn))
                        continue;
                struct leave_group_request_member_identity id;
                leave_group_request_member_identity_init(&id);
                id.member_id = kafka_str_c(m->member_id);
                struct leave_group_request req;
                leave_group_request_init(&req);
                req.group_id = kafka_str_c(run->group);
                req.members = &id;
                req.members_count = 1;
                struct leave_group_response resp;
                if (conn_call(&m->conn, KAFKA_API_LEAVE_GROUP, 3, &req, &resp, 5000) == 0)
                        conn_response_done(&m->conn);
                m->state = MEMBER_OFF;
        }
}

struct rebalance_rep {
        double initial_ms;           /* first JoinGroup to the last SyncGroup answer */
        int32_t initial_generation;  /* generations it took (the group is new) */
        int initial_joins;           /* JoinGroups sent by all members */
        double trigger_ms;           /* trigger to the last SyncGroup answer of the new generation */
        double learn_ms;             /* trigger to the last old member's heartbeat saying rejoin */
        double rest_ms;              /* trigger_ms - learn_ms */
        int32_t generations;         /* generations the trigger took */
};

/* One repetition on a new group: <members> join, wait, trigger, converge, all leave.
 * Returns 0, or -1 when a phase timed out. */
static int rebalance_rep(const struct bench_opts *opts, int rep, struct rebalance_rep *out)
{
        struct rebalance_run *run = xcalloc(1, sizeof(*run));
        run->opts = opts;
        snprintf(run->group, sizeof(run->group), "%s-%d-%d", opts->group, (int)getpid(), rep);
        buf_init(&run->subscription);
        struct kafka_writer w;
        kafka_writer_init(&w, &run->subscription);
        kafka_write_i16(&w, 0);
        kafka_write_array_len(&w, 1, false);
        kafka_write_str(&w, kafka_str_c(opts->topic), false);
        kafka_write_bytes(&w, (struct kafka_bytes){ NULL, -1 }, false);
        kafka_writer_deinit(&w);
        int total = opts->members + (strcmp(opts->trigger, "join") == 0 ? 1 : 0);
        for (int i = 0; i < total; i++)
                member_start(run, &run->members[i], i);
        int rc = -1;
        int64_t timeout_us = (int64_t)(opts->phase_timeout_s * 1e6);
        int64_t at = 0;
        int32_t gen = -1;

        /* Phase 1: every member sends its first JoinGroup, back to back. */
        run->nmembers = total;
        int64_t t0 = now_us();
        for (int i = 0; i < opts->members; i++)
                member_join(run, &run->members[i]);
        if (!rebalance_loop(run, t0 + timeout_us, opts->members, 0, &at, &gen)) {
                fprintf(stderr, "group_bench: rep %d: %d members did not converge in %.0f s\n", rep, opts->members,
                        opts->phase_timeout_s);
                goto out;
        }
        out->initial_ms = (double)(at - t0) / 1000.0;
        out->initial_generation = gen;
        out->initial_joins = 0;
        for (int i = 0; i < opts->members; i++)
                out->initial_joins += run->members[i].joins;

        /* Phase 2: heartbeat for one interval plus a part of another that differs per
         * repetition, (rep + 0.5) / reps of it, so that over the repetitions the trigger
         * falls evenly over the heartbeat cycle (the members synced within a millisecond,
         * so their heartbeats are in step). */
        int64_t hb_us = (int64_t)opts->heartbeat_ms * 1000;
        int64_t settle = hb_us + (int64_t)((rep + 0.5) / opts->reps * (double)hb_us);
        rebalance_loop(run, now_us() + settle, 0, 0, &at, &gen);
        int32_t prev_gen = gen;
        if (!rebalance_converged(run, opts->members, 0, &at, &gen) || gen != prev_gen) {
                fprintf(stderr, "group_bench: rep %d: the group rebalanced while idle\n", rep);
                goto out;
        }
        for (int i = 0; i < total; i++)
                run->members[i].learned_us = 0;

        /* Phase 3: the trigger. */
        int64_t t1 = now_us();
        int expected;
        struct member *trigger_member;
        if (strcmp(opts->trigger, "join") == 0) {
                trigger_member = &run->members[opts->members];
                member_join(run, trigger_member);
                expected = opts->members + 1;
        } else {
                trigger_member = &run->members[opts->members - 1];
                /* Wait out a heartbeat in flight on the leaving member's connection. */
                while (conn_busy(&trigger_member->conn)) {
                        struct pollfd pfd = { trigger_member->conn.fd, POLLIN, 0 };
                        poll(&pfd, 1, 1000);
                        member_on_response(run, trigger_member);
                }
                t1 = now_us();
                member_leave(run, trigger_member);
                expected = opts->members - 1;
        }
        if (!rebalance_loop(run, t1 + timeout_us, expected, prev_gen + 1, &at, &gen)) {
                fprintf(stderr, "group_bench: rep %d: no new generation of %d members in %.0f s\n", rep, expected,
                        opts->phase_timeout_s);
                goto out;
        }
        out->trigger_ms = (double)(at - t1) / 1000.0;
        out->generations = gen - prev_gen;
        int64_t learned = t1;
        for (int i = 0; i < total; i++) {
                struct member *m = &run->members[i];
                if (m != trigger_member && m->state != MEMBER_OFF && m->learned_us > learned)
                        learned = m->learned_us;
        }
        out->learn_ms = (double)(learned - t1) / 1000.0;
        out->rest_ms = out->trigger_ms - out->learn_ms;
        rc = 0;

out:
        rebalance_leave_all(run);
        if (run->errors)
                fprintf(stderr, "group_bench: rep %d: %" PRId64 " errors, first: %s\n", rep, run->errors,
                        run->first_error);
        for (int i = 0; i < total; i++) {
                conn_close(&run->members[i].conn);
                free(run->members[i].assigned);
        }
        buf_deinit(&run->subscription);
        free(run);
        return rc;
}

static void print_list(const char *key, const double *xs, int n)
{
        printf(",\"%s\":[", key);
        for (int i = 0; i < n; i++)
                printf("%s%.3f", i ? "," : "", xs[i]);
        printf("],\"%s_median\":%.3f", key, median_of(xs, n));
}

static int cmd_rebalance(const struct bench_opts *opts)
{
        if (opts->members < 2 || opts->members + 1 > MAX_MEMBERS)
                die("%s", "--members must be 2 to 63");
        if (strcmp(opts->trigger, "join") != 0 && strcmp(opts->trigger, "leave") != 0)
                die("--trigger is join or leave, not %s", opts->trigger);
        if (opts->partitions > MAX_PARTITIONS)
                die("%s", "--partitions is capped at 4096");
        create_topic(opts);
        double initial[MAX_REPS], trigger[MAX_REPS], learn[MAX_REPS], rest[MAX_REPS], gens[MAX_REPS], joins[MAX_REPS];
        int n = 0, failed = 0;
        for (int rep = 0; rep < opts->reps; rep++) {
                struct rebalance_rep r;
                memset(&r, 0, sizeof(r));
                if (rebalance_rep(opts, rep, &r) < 0) {
                        failed++;
                        continue;
                }
                initial[n] = r.initial_ms;
                trigger[n] = r.trigger_ms;
                learn[n] = r.learn_ms;
                rest[n] = r.rest_ms;
                gens[n] = r.initial_generation;
                joins[n] = r.initial_joins;
                n++;
                printf("# rep %d: %d members synced generation %d in %.2f ms (%d JoinGroups); %s: all synced "
                       "generation +%d in %.2f ms = %.2f ms until the last heartbeat said rejoin + %.2f ms\n",
                       rep, opts->members, r.initial_generation, r.initial_ms, r.initial_joins, opts->trigger,
                       r.generations, r.trigger_ms, r.learn_ms, r.rest_ms);
        }
        printf("{\"mode\":\"rebalance\",\"label\":\"%s\",\"topic\":\"%s\",\"partitions\":%d,\"members\":%d,"
               "\"trigger\":\"%s\",\"heartbeat_ms\":%d,\"session_timeout_ms\":%d,\"rebalance_timeout_ms\":%d,"
               "\"reps\":%d,\"failed_reps\":%d",
               opts->label, opts->topic, opts->partitions, opts->members, opts->trigger, opts->heartbeat_ms,
               opts->session_timeout_ms, opts->rebalance_timeout_ms, n, failed);
        print_list("initial_ms", initial, n);
        print_list("initial_generation", gens, n);
        print_list("initial_joins", joins, n);
        print_list("trigger_ms", trigger, n);
        print_list("learn_ms", learn, n);
        print_list("rest_ms", rest, n);
        printf(",\"error\":\"%s\"}\n", failed ? "some repetitions did not converge" : "");
        printf("# rebalance %s members=%d trigger=%s heartbeat=%d ms: initial join median %.2f ms; %s median %.2f ms "
               "(%.2f ms until the last heartbeat said rejoin + %.2f ms), %d reps%s\n",
               opts->bootstrap, opts->members, opts->trigger, opts->heartbeat_ms, median_of(initial, n), opts->trigger,
               median_of(trigger, n), median_of(learn, n), median_of(rest, n), n, failed ? ", SOME FAILED" : "");
        fflush(stdout);
        return failed || n == 0 ? 1 : 0;
}

/* ---- main --------------------------------------------------------------------------- */

static void usage(FILE *f)
{
        fprintf(f,
                "usage: group_bench commit|rebalance|create [options]\n"
                "  --bootstrap HOST:PORT     broker (127.0.0.1:9092)\n"
                "  --topic NAME              topic, created if missing (group-bench)\n"
                "  --partitions N            partitions of the topic (commit: 16, rebalance: 12)\n"
                "  --group ID                group id, or the prefix of one per connection (group-bench)\n"
                "  --label TEXT              copied into the JSON line\n"
                "create: only create the topic (CreateTopics v5; an existing one is fine)\n"
                "commit: N connections, each committing offsets for its own group (generation -1,\n"
                "member id \"\"), one OffsetCommit in flight per connection\n"
                "  --connections N           (1)\n"
                "  --commit-partitions N     partition offsets per OffsetCommit (1)\n"
                "  --version N               OffsetCommit version, 1-8 (8)\n"
                "  --same-group              every connection commits for one group\n"
                "  --seconds S               measured window (5), after --warmup S (0.5)\n"
                "  --count N                 most requests in the window (10000000)\n"
                "rebalance: --members join one group (JoinGroup v5, SyncGroup v3, Heartbeat v3),\n"
                "then one member more joins or one leaves (LeaveGroup v3), per repetition\n"
                "  --members N               (10)\n"
                "  --trigger join|leave      (join)\n"
                "  --heartbeat-ms N          heartbeat interval (100)\n"
                "  --session-timeout-ms N    (10000; the broker's group.min.session.timeout.ms\n"
                "                            is 6000 by default)\n"
                "  --rebalance-timeout-ms N  (30000)\n"
                "  --reps N                  repetitions, each on a new group (5)\n"
                "  --phase-timeout S         most seconds one phase may take (30)\n"
                "Prints one JSON line and human lines ('#'). Latency = answer read - request written.\n");
}

int main(int argc, char **argv)
{
        struct bench_opts opts = {
                .bootstrap = "127.0.0.1:9092",
                .topic = "group-bench",
                .partitions = -1,
                .group = "group-bench",
                .label = "",
                .connections = 1,
                .commit_partitions = 1,
                .commit_version = 8,
                .seconds = 5,
                .count = 10000000,
                .warmup_seconds = 0.5,
                .members = 10,
                .trigger = "join",
                .heartbeat_ms = 100,
                .session_timeout_ms = 10000,
                .rebalance_timeout_ms = 30000,
                .reps = 5,
                .phase_timeout_s = 30,
        };
        static const struct option longopts[] = {
                { "bootstrap", required_argument, NULL, 'b' },
                { "topic", required_argument, NULL, 't' },
                { "partitions", required_argument, NULL, 'p' },
                { "group", required_argument, NULL, 'g' },
                { "label", required_argument, NULL, 'L' },
                { "connections", required_argument, NULL, 'n' },
                { "commit-partitions", required_argument, NULL, 'P' },
                { "version", required_argument, NULL, 'v' },
                { "same-group", no_argument, NULL, 'G' },
                { "seconds", required_argument, NULL, 'S' },
                { "count", required_argument, NULL, 'c' },
                { "warmup", required_argument, NULL, 'W' },
                { "members", required_argument, NULL, 'm' },
                { "trigger", required_argument, NULL, 'T' },
                { "heartbeat-ms", required_argument, NULL, 'H' },
                { "session-timeout-ms", required_argument, NULL, 's' },
                { "rebalance-timeout-ms", required_argument, NULL, 'R' },
                { "reps", required_argument, NULL, 'r' },
                { "phase-timeout", required_argument, NULL, 'O' },
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        if (argc < 2 || argv[1][0] == '-') {
                usage(argc < 2 ? stderr : stdout);
                return argc < 2 ? 2 : 0;
        }
        opts.mode = argv[1];
        optind = 2;
        int c;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                switch (c) {
                case 'b': opts.bootstrap = optarg; break;
                case 't': opts.topic = optarg; break;
                case 'p': opts.partitions = atoi(optarg); break;
                case 'g': opts.group = optarg; break;
                case 'L': opts.label = optarg; break;
                case 'n': opts.connections = atoi(optarg); break;
                case 'P': opts.commit_partitions = atoi(optarg); break;
                case 'v': opts.commit_version = (int16_t)atoi(optarg); break;
                case 'G': opts.same_group = true; break;
                case 'S': opts.seconds = strtod(optarg, NULL); break;
                case 'c': opts.count = strtoll(optarg, NULL, 10); break;
                case 'W': opts.warmup_seconds = strtod(optarg, NULL); break;
                case 'm': opts.members = atoi(optarg); break;
                case 'T': opts.trigger = optarg; break;
                case 'H': opts.heartbeat_ms = atoi(optarg); break;
                case 's': opts.session_timeout_ms = atoi(optarg); break;
                case 'R': opts.rebalance_timeout_ms = atoi(optarg); break;
                case 'r': opts.reps = atoi(optarg); break;
                case 'O': opts.phase_timeout_s = strtod(optarg, NULL); break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        signal(SIGPIPE, SIG_IGN);
        bool commit = strcmp(opts.mode, "commit") == 0;
        if (opts.partitions < 0)
                opts.partitions = commit ? 16 : 12;
        if (opts.partitions < 1 || opts.partitions > MAX_PARTITIONS)
                die("%s", "--partitions must be 1 to 4096");
        if (commit) {
                if (opts.connections < 1 || opts.connections > MAX_CONNS || opts.commit_partitions < 1 ||
                    opts.seconds <= 0 || opts.count < 1 || opts.warmup_seconds < 0)
                        die("%s", "--connections (1-256), --commit-partitions, --seconds and --count must be positive");
                if (opts.commit_version < 1 || opts.commit_version > 8)
                        die("%s", "--version is 1 to 8");
                return cmd_commit(&opts);
        }
        if (strcmp(opts.mode, "create") == 0) {
                create_topic(&opts);
                printf("{\"mode\":\"create\",\"topic\":\"%s\",\"partitions\":%d,\"error\":\"\"}\n", opts.topic,
                       opts.partitions);
                return 0;
        }
        if (strcmp(opts.mode, "rebalance") == 0) {
                if (opts.heartbeat_ms < 1 || opts.reps < 1 || opts.reps > MAX_REPS || opts.phase_timeout_s <= 0)
                        die("%s", "--heartbeat-ms, --reps (1-50) and --phase-timeout must be positive");
                return cmd_rebalance(&opts);
        }
        usage(stderr);
        return 2;
}
