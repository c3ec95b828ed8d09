/* stratus_bench: a load tool for Kafka-protocol brokers built on librdkafka, in the
 * spirit of kafka-producer-perf-test. Modes: produce (throughput, or paced latency),
 * consume (read a retained backlog from the beginning), loopback (a TCP socket pump
 * that measures this machine's loopback bandwidth). --mock N runs the same load against
 * librdkafka's in-process mock cluster: the ceiling of what the client alone can push.
 * Each run prints one JSON line (starts with '{') and one human line (starts with '#'). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_PROPS 32
#define MIB (1024.0 * 1024.0)
#define CONSUME_BATCH 1024
#define MIN_SIZE(a, b) ((a) < (b) ? (a) : (b))

struct bench_opts {
        const char *mode;               /* "produce", "consume" or "loopback" */
        const char *bootstrap;          /* host:port, unless mock_brokers > 0 */
        int mock_brokers;               /* > 0: start an in-process mock cluster */
        const char *topic;
        int partitions;                 /* partitions of the topic created here */
        size_t size_bytes;              /* record value size */
        int64_t count;                  /* most records to produce or consume */
        double seconds;                 /* most seconds to produce or consume */
        const char *acks;               /* "0", "1" or "all" */
        int linger_ms;                  /* -1: librdkafka's default */
        int batch_size;                 /* 0: librdkafka's default */
        int64_t rate;                   /* records/s; 0 = as fast as possible */
        int64_t fill;                   /* consume: produce this many records first */
        bool create;                    /* create the topic (produce, or consume --fill) */
        const char *label;              /* free text copied into the JSON line */
        const char *props[MAX_PROPS];   /* extra librdkafka key=value, from -X */
        int nprops;
};

/* Delivery bookkeeping of one producer. Written by librdkafka's background thread,
 * read by the main thread once the producer is flushed. */
struct produce_stats {
        atomic_int_fast64_t delivered;  /* records acknowledged */
        atomic_int_fast64_t failed;     /* records that failed */
        atomic_int_fast64_t last_dr_us; /* monotonic time of the last delivery report */
        uint32_t *lat_us;               /* per-record latency, background thread only */
        int64_t nlat;
        int64_t lat_cap;
        atomic_bool waiting;            /* main thread waits in cond for queue space */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        char first_error[256];          /* background thread only until flushed */
};

static int64_t now_us(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_until_us(int64_t deadline_us)
{
        struct timespec ts = {
                .tv_sec = deadline_us / 1000000,
                .tv_nsec = (deadline_us % 1000000) * 1000,
        };
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
}

static double cpu_seconds_self(void)
{
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *fmt, const char *arg)
{
        fprintf(stderr, "stratus_bench: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\n");
        exit(2);
}

static void conf_set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
        char errstr[512];
        if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
                die("bad librdkafka property: %s", errstr);
}

/* Applies the -X key=value properties of <opts> to <conf>. */
static void conf_set_props(rd_kafka_conf_t *conf, const struct bench_opts *opts)
{
        for (int i = 0; i < opts->nprops; i++) {
                char key[256];
                const char *eq = strchr(opts->props[i], '=');
                if (!eq || (size_t)(eq - opts->props[i]) >= sizeof(key))
                        die("-X wants key=value, got %s", opts->props[i]);
                memcpy(key, opts->props[i], (size_t)(eq - opts->props[i]));
                key[eq - opts->props[i]] = '\0';
                conf_set(conf, key, eq + 1);
        }
}

static int cmp_u32(const void *a, const void *b)
{
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
        return x < y ? -1 : x > y;
}

/* Returns the <q> quantile (0..1) of the sorted <v, n> in milliseconds, or -1 if empty. */
static double quantile_ms(const uint32_t *v, int64_t n, double q)
{
        if (n == 0)
                return -1;
        int64_t i = (int64_t)(q * (double)n);
        if (i >= n)
                i = n - 1;
        return v[i] / 1000.0;
}

/* ---- mock cluster ---------------------------------------------------------------- */

/* An in-process mock cluster and the client handle that owns its thread. */
struct mock {
        rd_kafka_t *host;
        rd_kafka_mock_cluster_t *cluster;
};

static void mock_start(struct mock *mock, const struct bench_opts *opts)
{
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        conf_set(conf, "log_level", "3");
        mock->host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!mock->host)
                die("cannot create the mock's host handle: %s", errstr);
        mock->cluster = rd_kafka_mock_cluster_new(mock->host, opts->mock_brokers);
        if (!mock->cluster)
                die("%s", "cannot create the mock cluster");
        if (rd_kafka_mock_topic_create(mock->cluster, opts->topic, opts->partitions, 1))
                die("cannot create topic %s on the mock", opts->topic);
}

static void mock_stop(struct mock *mock)
{
        if (mock->cluster)
                rd_kafka_mock_cluster_destroy(mock->cluster);
        if (mock->host)
                rd_kafka_destroy(mock->host);
        mock->cluster = NULL;
        mock->host = NULL;
}

/* ---- produce --------------------------------------------------------------------- */

/* Runs on librdkafka's background thread: records each delivered record's latency
 * (delivery report time minus the produce() call time carried in the opaque). */
static void on_background_event(rd_kafka_t *rk, rd_kafka_event_t *rkev, void *opaque)
{
        struct produce_stats *st = opaque;
        if (rd_kafka_event_type(rkev) == RD_KAFKA_EVENT_DR) {
                int64_t t_us = now_us();
                int64_t ok = 0, bad = 0;
                const rd_kafka_message_t *m;
                while ((m = rd_kafka_event_message_next(rkev))) {
                        if (m->err) {
                                if (!st->first_error[0])
                                        snprintf(st->first_error, sizeof(st->first_error), "%s",
                                                 rd_kafka_err2str(m->err));
                                bad++;
                                continue;
                        }
                        if (st->nlat < st->lat_cap)
                                st->lat_us[st->nlat++] = (uint32_t)(t_us - (int64_t)(intptr_t)m->_private);
                        ok++;
                }
                atomic_store(&st->last_dr_us, t_us);
                atomic_fetch_add(&st->delivered, ok);
                atomic_fetch_add(&st->failed, bad);
                if (atomic_load(&st->waiting)) {
                        pthread_mutex_lock(&st->lock);
                        pthread_cond_signal(&st->cond);
                        pthread_mutex_unlock(&st->lock);
                }
        } else if (rd_kafka_event_type(rkev) == RD_KAFKA_EVENT_ERROR) {
                fprintf(stderr, "stratus_bench: client error: %s\n", rd_kafka_event_error_string(rkev));
        }
        rd_kafka_event_destroy(rkev);
}

static rd_kafka_t *producer_new(const struct bench_opts *opts, const char *bootstrap,
                                struct produce_stats *st)
{
        char errstr[512], num[32];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        conf_set(conf, "bootstrap.servers", bootstrap);
        /* TCP_NODELAY, as the Java client sets it: with Nagle a small produce can sit
         * behind an unacknowledged one until a delayed ACK (40 ms) comes. */
        conf_set(conf, "socket.nagle.disable", "true");
        conf_set(conf, "acks", opts->acks);
        /* Bounds the client's queue alike for the mock and the broker. */
        conf_set(conf, "queue.buffering.max.messages", "1000000");
        conf_set(conf, "queue.buffering.max.kbytes", "262144");
        if (opts->linger_ms >= 0) {
                snprintf(num, sizeof(num), "%d", opts->linger_ms);
                conf_set(conf, "linger.ms", num);
        }
        if (opts->batch_size > 0) {
                snprintf(num, sizeof(num), "%d", opts->batch_size);
                conf_set(conf, "batch.size", num);
        }
        conf_set_props(conf, opts);
        rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR);
        rd_kafka_conf_set_background_event_cb(conf, on_background_event);
        rd_kafka_conf_set_opaque(conf, st);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk)
                die("cannot create producer: %s", errstr);
        /* Delivery reports land on the main queue; serve them on the background thread
         * so they are timestamped as they arrive, whatever the main thread is doing. */
        rd_kafka_queue_t *mainq = rd_kafka_queue_get_main(rk);
        rd_kafka_queue_t *bgq = rd_kafka_queue_get_background(rk);
        rd_kafka_queue_forward(mainq, bgq);
        rd_kafka_queue_destroy(bgq);
        rd_kafka_queue_destroy(mainq);
        return rk;
}

/* Creates <opts->topic> with <opts->partitions> partitions on a real broker through
 * CreateTopics; an existing topic is fine. */
static void topic_create(rd_kafka_t *rk, const struct bench_opts *opts)
{
        char errstr[512];
        rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(opts->topic, opts->partitions, 1,
                                                        errstr, sizeof(errstr));
        if (!nt)
                die("bad topic: %s", errstr);
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
        if (!ev)
                die("%s", "CreateTopics timed out");
        if (rd_kafka_event_error(ev))
                die("CreateTopics failed: %s", rd_kafka_event_error_string(ev));
        size_t n = 0;
        const rd_kafka_topic_result_t **res =
                rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        for (size_t i = 0; i < n; i++) {
                rd_kafka_resp_err_t err = rd_kafka_topic_result_error(res[i]);
                if (err && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                        die("CreateTopics failed: %s", rd_kafka_err2str(err));
        }
        rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
        rd_kafka_NewTopic_destroy(nt);
}

/* The result of one produce run. */
struct produce_result {
        int64_t produced;
        int64_t delivered;
        int64_t failed;
        double seconds;                 /* first produce() to last delivery report */
        double p50_ms, p99_ms, p999_ms, max_ms;
        char first_error[256];
};

/* Produces up to <count> records (for at most <seconds>, paced at <opts->rate> if set)
 * to <bootstrap> and waits for every delivery report. */
static void produce_run(const struct bench_opts *opts, const char *bootstrap, int64_t count,
                        double seconds, struct produce_result *res)
{
        struct produce_stats st;
        memset(&st, 0, sizeof(st));
        pthread_mutex_init(&st.lock, NULL);
        pthread_cond_init(&st.cond, NULL);
        st.lat_cap = count;
        st.lat_us = malloc(sizeof(uint32_t) * (size_t)(count > 0 ? count : 1));
        if (!st.lat_us)
                die("%s", "out of memory");

        char *payload = malloc(opts->size_bytes ? opts->size_bytes : 1);
        if (!payload)
                die("%s", "out of memory");
        /* Incompressible, identical for every record (the client does not copy it). */
        uint32_t x = 2463534242u;
        for (size_t i = 0; i < opts->size_bytes; i++) {
                x ^= x << 13, x ^= x >> 17, x ^= x << 5;
                payload[i] = (char)x;
        }

        rd_kafka_t *rk = producer_new(opts, bootstrap, &st);
        if (opts->create && !opts->mock_brokers)
                topic_create(rk, opts);
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, opts->topic, NULL);

        /* Fetch metadata first so the first records do not pay for it. */
        const struct rd_kafka_metadata *md;
        if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
                die("cannot get metadata for %s", opts->topic);
        int partitions = md->topic_cnt == 1 ? md->topics[0].partition_cnt : 0;
        rd_kafka_metadata_destroy(md);
        if (partitions <= 0)
                die("topic %s has no partitions", opts->topic);

        int64_t interval_ns = opts->rate > 0 ? 1000000000 / opts->rate : 0;
        int64_t t_start = now_us();
        int64_t t_end = t_start + (int64_t)(seconds * 1e6);
        int64_t i = 0;
        while (i < count) {
                int64_t t = now_us();
                if (t >= t_end)
                        break;
                if (interval_ns) {
                        int64_t due = t_start + (i * interval_ns) / 1000;
                        if (t < due) {
                                sleep_until_us(due);
                                t = now_us();
                        }
                }
                /* Round-robin over partitions: every partition carries load. */
                if (rd_kafka_produce(rkt, (int32_t)(i % partitions), 0, payload, opts->size_bytes,
                                     NULL, 0, (void *)(intptr_t)t) == 0) {
                        i++;
                        continue;
                }
                if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        die("produce failed: %s", rd_kafka_err2str(rd_kafka_last_error()));
                /* Queue full: wait for the background thread to report deliveries. */
                pthread_mutex_lock(&st.lock);
                atomic_store(&st.waiting, true);
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 2000000;
                if (ts.tv_nsec >= 1000000000) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&st.cond, &st.lock, &ts);
                atomic_store(&st.waiting, false);
                pthread_mutex_unlock(&st.lock);
        }
        res->produced = i;
        rd_kafka_flush(rk, 60000);
        /* flush() returns once the queue is empty; the reports may still be in flight. */
        int64_t give_up = now_us() + 10000000;
        while (atomic_load(&st.delivered) + atomic_load(&st.failed) < i && now_us() < give_up)
                usleep(1000);
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);

        res->delivered = atomic_load(&st.delivered);
        res->failed = atomic_load(&st.failed);
        int64_t t_last = atomic_load(&st.last_dr_us);
        res->seconds = t_last > t_start ? (double)(t_last - t_start) / 1e6 : 0;
        snprintf(res->first_error, sizeof(res->first_error), "%s", st.first_error);
        qsort(st.lat_us, (size_t)st.nlat, sizeof(uint32_t), cmp_u32);
        res->p50_ms = quantile_ms(st.lat_us, st.nlat, 0.50);
        res->p99_ms = quantile_ms(st.lat_us, st.nlat, 0.99);
        res->p999_ms = quantile_ms(st.lat_us, st.nlat, 0.999);
        res->max_ms = st.nlat ? st.lat_us[st.nlat - 1] / 1000.0 : -1;
        free(st.lat_us);
        free(payload);
        pthread_cond_destroy(&st.cond);
        pthread_mutex_destroy(&st.lock);
}

static void print_common(const struct bench_opts *opts)
{
        printf("\"target\":\"%s\",\"label\":\"%s\",\"topic\":\"%s\",\"size\":%zu,\"partitions\":%d",
               opts->mock_brokers ? "mock" : "broker", opts->label, opts->topic, opts->size_bytes,
               opts->partitions);
}

static int cmd_produce(const struct bench_opts *opts, const char *bootstrap)
{
        struct produce_result res;
        memset(&res, 0, sizeof(res));
        double cpu0 = cpu_seconds_self();
        produce_run(opts, bootstrap, opts->count, opts->seconds, &res);
        double cpu = cpu_seconds_self() - cpu0;
        double bytes = (double)res.delivered * (double)opts->size_bytes;
        double rps = res.seconds > 0 ? res.delivered / res.seconds : 0;
        double mbps = res.seconds > 0 ? bytes / MIB / res.seconds : 0;

        printf("{\"mode\":\"produce\",");
        print_common(opts);
        printf(",\"acks\":\"%s\",\"linger_ms\":%d,\"batch_size\":%d,\"rate\":%" PRId64
               ",\"records\":%" PRId64 ",\"failed\":%" PRId64 ",\"bytes\":%.0f,\"seconds\":%.4f"
               ",\"records_per_s\":%.1f,\"mb_per_s\":%.2f,\"lat_p50_ms\":%.3f,\"lat_p99_ms\":%.3f"
               ",\"lat_p999_ms\":%.3f,\"lat_max_ms\":%.3f,\"client_cpu_s\":%.3f,\"error\":\"%s\"}\n",
               opts->acks, opts->linger_ms, opts->batch_size, opts->rate, res.delivered, res.failed,
               bytes, res.seconds, rps, mbps, res.p50_ms, res.p99_ms, res.p999_ms, res.max_ms, cpu,
               res.first_error);
        printf("# produce %s size=%zu partitions=%d acks=%s: %" PRId64 " records in %.2f s, "
               "%.0f records/s, %.1f MB/s, latency p50 %.3f ms p99 %.3f ms p99.9 %.3f ms%s%s\n",
               opts->mock_brokers ? "mock" : bootstrap, opts->size_bytes, opts->partitions, opts->acks,
               res.delivered, res.seconds, rps, mbps, res.p50_ms, res.p99_ms, res.p999_ms,
               res.failed ? ", FAILED: " : "", res.first_error);
        fflush(stdout);
        return res.failed || res.delivered == 0 ? 1 : 0;
}

/* ---- consume --------------------------------------------------------------------- */

/* Returns every partition of <topic>, each at its log start offset, with the end
 * offsets (high watermarks) in *<ends>; the caller frees both. */
static rd_kafka_topic_partition_list_t *partitions_all(rd_kafka_t *rk, const char *topic, int64_t **ends)
{
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        const struct rd_kafka_metadata *md;
        if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
                die("cannot get metadata for %s", topic);
        if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt <= 0)
                die("topic %s not found", topic);
        int nparts = md->topics[0].partition_cnt;
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(nparts);
        *ends = calloc((size_t)nparts, sizeof(int64_t));
        if (!*ends)
                die("%s", "out of memory");
        for (int i = 0; i < nparts; i++) {
                int32_t id = md->topics[0].partitions[i].id;
                int64_t lo, hi;
                rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, topic, id, &lo, &hi, 10000);
                if (err)
                        die("cannot get the offsets of the topic: %s", rd_kafka_err2str(err));
                rd_kafka_topic_partition_list_add(list, topic, id)->offset = lo;
                (*ends)[i] = hi;
        }
        rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        return list;
}

/* Reads the topic from the beginning until <count> records, <seconds>, or the end
 * offsets it had at the start on every partition. With <rewind> (the mock keeps only the
 * newest ~5 MiB per partition) it seeks back to the start after each full pass until
 * <count> or <seconds>. The rate is measured per pass from the moment the records that
 * came first (whatever is queued when the first one arrives) have been taken, to the
 * last record; those first records are not counted. So neither connection setup, nor
 * ListOffsets, nor the wait for the first fetch of a pass is in it. */
static int cmd_consume(const struct bench_opts *opts, const char *bootstrap)
{
        char errstr[512];
        bool rewind = opts->mock_brokers > 0;
        double cpu0 = cpu_seconds_self();

        if (opts->fill > 0) {
                struct produce_result fill;
                struct bench_opts fopts = *opts;
                fopts.rate = 0;
                memset(&fill, 0, sizeof(fill));
                produce_run(&fopts, bootstrap, opts->fill, 600, &fill);
                if (fill.failed || fill.delivered != opts->fill)
                        die("filling the topic failed: %s", fill.first_error);
                cpu0 = cpu_seconds_self();
        }

        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        conf_set(conf, "bootstrap.servers", bootstrap);
        conf_set(conf, "socket.nagle.disable", "true");
        conf_set(conf, "group.id", "stratus-bench");
        conf_set(conf, "enable.auto.commit", "false");
        conf_set(conf, "enable.auto.offset.store", "false");
        conf_set(conf, "auto.offset.reset", "earliest");
        /* Only fetches at the end of the log wait; keeps mock rewinds quick. */
        conf_set(conf, "fetch.wait.max.ms", "50");
        conf_set_props(conf, opts);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
        if (!rk)
                die("cannot create consumer: %s", errstr);
        int64_t *ends;
        rd_kafka_topic_partition_list_t *list = partitions_all(rk, opts->topic, &ends);
        int nparts = list->cnt;
        int32_t max_id = 0;
        for (int i = 0; i < nparts; i++)
                max_id = list->elems[i].partition > max_id ? list->elems[i].partition : max_id;
        /* By partition id: the end offset, and whether this pass has reached it. */
        int64_t *end_of = calloc((size_t)max_id + 1, sizeof(int64_t));
        bool *done = calloc((size_t)max_id + 1, sizeof(bool));
        rd_kafka_message_t **msgs = malloc(sizeof(*msgs) * CONSUME_BATCH);
        if (!end_of || !done || !msgs)
                die("%s", "out of memory");
        int empty = 0;
        for (int i = 0; i < nparts; i++) {
                end_of[list->elems[i].partition] = ends[i];
                if (ends[i] <= list->elems[i].offset)
                        empty++;
        }
        rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
        if (rd_kafka_assign(rk, list))
                die("%s", "assign failed");

        int64_t records = 0, bytes = 0, passes = 0, active_us = 0;
        int64_t timed_records = 0, timed_bytes = 0;     /* inside the timed windows */
        bool timing = false;                            /* this pass's window has begun */
        int64_t pass_first = 0, pass_last = 0;
        int ndone = empty;
        char first_error[256] = "";
        int64_t deadline = now_us() + (int64_t)(opts->seconds * 1e6);
        while (records < opts->count && ndone < nparts && now_us() < deadline) {
                /* Take what is queued; block (for one message) only when nothing is, so
                 * a partial batch never waits out the timeout. */
                ssize_t n = rd_kafka_consume_batch_queue(q, 0, msgs, CONSUME_BATCH);
                if (n == 0)
                        n = rd_kafka_consume_batch_queue(q, 100, msgs, 1);
                if (n < 0)
                        die("consume failed: %s", rd_kafka_err2str(rd_kafka_last_error()));
                int64_t got = 0;
                for (ssize_t k = 0; k < n; k++) {
                        rd_kafka_message_t *m = msgs[k];
                        if (m->err) {
                                if (!first_error[0])
                                        snprintf(first_error, sizeof(first_error), "%s",
                                                 rd_kafka_message_errstr(m));
                        } else if (records < opts->count) {
                                records++;
                                got++;
                                bytes += (int64_t)m->len;
                                if (timing) {
                                        timed_records++;
                                        timed_bytes += (int64_t)m->len;
                                }
                                if (m->partition >= 0 && m->partition <= max_id && !done[m->partition] &&
                                    m->offset + 1 >= end_of[m->partition]) {
                                        done[m->partition] = true;
                                        ndone++;
                                }
                        }
                        rd_kafka_message_destroy(m);
                }
                if (got > 0 && timing) {
                        pass_last = now_us();
                } else if (got > 0 && n < CONSUME_BATCH && rd_kafka_queue_length(q) == 0) {
                        /* What had arrived first is taken: the window opens now. */
                        timing = true;
                        pass_first = pass_last = now_us();
                }
                if (ndone == nparts) {
                        if (timing)
                                active_us += pass_last - pass_first;
                        timing = false;
                        passes++;
                        if (!rewind || records == 0 || records >= opts->count)
                                break;
                        memset(done, 0, sizeof(bool) * ((size_t)max_id + 1));
                        ndone = empty;
                        rd_kafka_topic_partition_list_t *seek = rd_kafka_topic_partition_list_copy(list);
                        rd_kafka_error_t *error = rd_kafka_seek_partitions(rk, seek, 10000);
                        if (error)
                                die("seek failed: %s", rd_kafka_error_string(error));
                        rd_kafka_topic_partition_list_destroy(seek);
                }
        }
        if (timing)
                active_us += pass_last - pass_first;
        rd_kafka_assign(rk, NULL);
        rd_kafka_queue_destroy(q);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        rd_kafka_topic_partition_list_destroy(list);
        free(msgs);
        free(done);
        free(end_of);
        free(ends);

        double cpu = cpu_seconds_self() - cpu0;
        double seconds = active_us / 1e6;
        double rps = seconds > 0 ? timed_records / seconds : 0;
        double mbps = seconds > 0 ? timed_bytes / MIB / seconds : 0;
        printf("{\"mode\":\"consume\",");
        print_common(opts);
        printf(",\"records\":%" PRId64 ",\"bytes\":%" PRId64 ",\"seconds\":%.4f,\"passes\":%" PRId64
               ",\"records_per_s\":%.1f,\"mb_per_s\":%.2f,\"client_cpu_s\":%.3f,\"error\":\"%s\"}\n",
               records, bytes, seconds, passes, rps, mbps, cpu, first_error);
        printf("# consume %s partitions=%d: %" PRId64 " records (%" PRId64 " passes) in %.2f s, "
               "%.0f records/s, %.1f MB/s%s%s\n",
               opts->mock_brokers ? "mock" : bootstrap, nparts, records, passes, seconds, rps, mbps,
               first_error[0] ? ", ERROR: " : "", first_error);
        fflush(stdout);
        return records == 0 ? 1 : 0;
}

/* ---- loopback -------------------------------------------------------------------- */

#define PUMP_CHUNK (256 * 1024)
#define SENDFILE_FILE_BYTES (64 * 1024 * 1024)

/* The reading end of the loopback pump. */
struct pump_sink {
        int lfd;
        double cpu_s;                   /* CPU time of the reading thread */
};

static double cpu_seconds_thread(void)
{
        struct rusage ru;
        getrusage(RUSAGE_THREAD, &ru);
        return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void *loopback_sink(void *arg)
{
        struct pump_sink *sink = arg;
        static char buf[PUMP_CHUNK];
        double cpu0 = cpu_seconds_thread();
        int fd = accept(sink->lfd, NULL, NULL);
        if (fd >= 0) {
                while (read(fd, buf, sizeof(buf)) > 0)
                        ;
                close(fd);
        }
        sink->cpu_s = cpu_seconds_thread() - cpu0;
        return NULL;
}

/* Returns an unlinked file in /tmp holding SENDFILE_FILE_BYTES, read once so it is in
 * the page cache. */
static int sendfile_source(void)
{
        char path[] = "/tmp/stratus-bench-XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0)
                die("mkstemp failed: %s", strerror(errno));
        unlink(path);
        static char buf[PUMP_CHUNK];
        memset(buf, 0x5a, sizeof(buf));
        for (size_t done = 0; done < SENDFILE_FILE_BYTES; done += sizeof(buf))
                if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
                        die("writing the sendfile source failed: %s", strerror(errno));
        return fd;
}

/* Pumps bytes through one TCP connection on 127.0.0.1 for <opts->seconds>: one thread
 * writes (write() from memory, or with <use_sendfile> sendfile() from a file in the page
 * cache, as a broker serves fetches), one reads and discards. Reports the rate and the
 * CPU each side spent per GiB (on loopback the sender also runs the receive path of
 * the TCP stack in its softirq). */
static int cmd_loopback(const struct bench_opts *opts, bool use_sendfile)
{
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof(sa);
        struct pump_sink sink = { .lfd = socket(AF_INET, SOCK_STREAM, 0) };
        if (sink.lfd < 0 || bind(sink.lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(sink.lfd, 1) < 0 ||
            getsockname(sink.lfd, (struct sockaddr *)&sa, &sl) < 0)
                die("loopback listen failed: %s", strerror(errno));
        int src = use_sendfile ? sendfile_source() : -1;
        pthread_t th;
        pthread_create(&th, NULL, loopback_sink, &sink);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                die("loopback connect failed: %s", strerror(errno));
        static char buf[PUMP_CHUNK];
        memset(buf, 0xa5, sizeof(buf));
        int64_t sent = 0;
        off_t pos = 0;
        double cpu0 = cpu_seconds_thread();
        int64_t t0 = now_us();
        int64_t t_end = t0 + (int64_t)(opts->seconds * 1e6);
        while (now_us() < t_end) {
                ssize_t n;
                if (use_sendfile) {
                        if (pos >= SENDFILE_FILE_BYTES)
                                pos = 0;
                        n = sendfile(fd, src, &pos, MIN_SIZE(1 << 20, (size_t)(SENDFILE_FILE_BYTES - pos)));
                } else {
                        n = write(fd, buf, sizeof(buf));
                }
                if (n < 0 && errno != EINTR)
                        die("loopback send failed: %s", strerror(errno));
                if (n > 0)
                        sent += n;
        }
        double send_cpu = cpu_seconds_thread() - cpu0;
        close(fd);
        pthread_join(th, NULL);
        double seconds = (now_us() - t0) / 1e6;
        close(sink.lfd);
        if (src >= 0)
                close(src);
        double gib = sent / (MIB * 1024.0);
        printf("{\"mode\":\"loopback\",\"label\":\"%s\",\"sendfile\":%s,\"bytes\":%" PRId64
               ",\"seconds\":%.4f,\"mb_per_s\":%.1f,\"send_cpu_s_per_gib\":%.3f,\"recv_cpu_s_per_gib\":%.3f}\n",
               opts->label, use_sendfile ? "true" : "false", sent, seconds, sent / MIB / seconds, send_cpu / gib,
               sink.cpu_s / gib);
        printf("# loopback%s: %.0f MiB in %.2f s, %.1f MB/s (one TCP stream); CPU-s/GiB: sender %.3f, "
               "receiver %.3f\n",
               use_sendfile ? " (sendfile)" : "", sent / MIB, seconds, sent / MIB / seconds, send_cpu / gib,
               sink.cpu_s / gib);
        return 0;
}

/* ---- main ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
        fprintf(f,
                "usage: stratus_bench produce|consume|loopback [options]\n"
                "\n"
                "  --bootstrap HOST:PORT  broker to load (default 127.0.0.1:9092)\n"
                "  --mock N               start librdkafka's in-process mock cluster with N brokers\n"
                "                         and load it instead (the client-side ceiling)\n"
                "  --topic NAME           topic (default stratus-bench)\n"
                "  --partitions N         partitions when creating the topic (default 1)\n"
                "  --no-create            produce: do not CreateTopics first\n"
                "  --size BYTES           record value size (default 100)\n"
                "  --count N              most records to produce or consume (default 1000000)\n"
                "  --seconds S            most seconds to produce or consume (default 30)\n"
                "  --acks 0|1|all         producer acks (default all)\n"
                "  --linger-ms MS         producer linger.ms (default: librdkafka's)\n"
                "  --batch-size BYTES     producer batch.size (default: librdkafka's)\n"
                "  --rate N               produce N records/s (latency runs; default unlimited)\n"
                "  --fill N               consume: produce N records first, untimed\n"
                "                         (needed with --mock, which lives in this process)\n"
                "  --label TEXT           copied into the JSON line\n"
                "  -X KEY=VALUE           extra librdkafka property (repeatable)\n"
                "  --sendfile             loopback: send with sendfile() from a file in the page cache\n"
                "\n"
                "Prints one JSON line and one human line ('#') per run. MB = 2^20 bytes of\n"
                "record values. Latency = delivery report time - produce() call time.\n");
}

int main(int argc, char **argv)
{
        struct bench_opts opts = {
                .bootstrap = "127.0.0.1:9092",
                .topic = "stratus-bench",
                .partitions = 1,
                .size_bytes = 100,
                .count = 1000000,
                .seconds = 30,
                .acks = "all",
                .linger_ms = -1,
                .create = true,
                .label = "",
        };
        static const struct option longopts[] = {
                { "bootstrap", required_argument, NULL, 'b' },
                { "mock", required_argument, NULL, 'm' },
                { "topic", required_argument, NULL, 't' },
                { "partitions", required_argument, NULL, 'p' },
                { "no-create", no_argument, NULL, 'N' },
                { "size", required_argument, NULL, 's' },
                { "count", required_argument, NULL, 'c' },
                { "seconds", required_argument, NULL, 'S' },
                { "acks", required_argument, NULL, 'a' },
                { "linger-ms", required_argument, NULL, 'l' },
                { "batch-size", required_argument, NULL, 'B' },
                { "rate", required_argument, NULL, 'r' },
                { "fill", required_argument, NULL, 'f' },
                { "label", required_argument, NULL, 'L' },
                { "sendfile", no_argument, NULL, 'F' },
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        if (argc < 2 || argv[1][0] == '-') {
                usage(argc < 2 ? stderr : stdout);
                return argc < 2 ? 2 : 0;
        }
        opts.mode = argv[1];
        optind = 2;
        bool use_sendfile = false;
        int c;
        while ((c = getopt_long(argc, argv, "X:h", longopts, NULL)) != -1) {
                switch (c) {
                case 'b': opts.bootstrap = optarg; break;
                case 'm': opts.mock_brokers = atoi(optarg); break;
                case 't': opts.topic = optarg; break;
                case 'p': opts.partitions = atoi(optarg); break;
                case 'N': opts.create = false; break;
                case 's': opts.size_bytes = (size_t)strtoull(optarg, NULL, 10); break;
                case 'c': opts.count = strtoll(optarg, NULL, 10); break;
                case 'S': opts.seconds = strtod(optarg, NULL); break;
                case 'a': opts.acks = optarg; break;
                case 'l': opts.linger_ms = atoi(optarg); break;
                case 'B': opts.batch_size = atoi(optarg); break;
                case 'r': opts.rate = strtoll(optarg, NULL, 10); break;
                case 'f': opts.fill = strtoll(optarg, NULL, 10); break;
                case 'L': opts.label = optarg; break;
                case 'X':
                        if (opts.nprops == MAX_PROPS)
                                die("%s", "too many -X");
                        opts.props[opts.nprops++] = optarg;
                        break;
                case 'F': use_sendfile = true; break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        if (opts.partitions < 1 || opts.count < 1 || opts.seconds <= 0)
                die("%s", "--partitions, --count and --seconds must be positive");
        if (opts.count > 100000000)
                die("%s", "--count is capped at 100000000 (latencies are kept per record)");
        signal(SIGPIPE, SIG_IGN);
        /* Sleeps of paced runs wake within a few microseconds rather than 50. */
        prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

        if (strcmp(opts.mode, "loopback") == 0)
                return cmd_loopback(&opts, use_sendfile);

        struct mock mock = { NULL, NULL };
        const char *bootstrap = opts.bootstrap;
        if (opts.mock_brokers > 0) {
                mock_start(&mock, &opts);
                bootstrap = rd_kafka_mock_cluster_bootstraps(mock.cluster);
        }
        int rc;
        if (strcmp(opts.mode, "produce") == 0) {
                rc = cmd_produce(&opts, bootstrap);
        } else if (strcmp(opts.mode, "consume") == 0) {
                if (opts.mock_brokers > 0 && opts.fill <= 0)
                        die("%s", "consume --mock needs --fill N (the mock lives in this process)");
                rc = cmd_consume(&opts, bootstrap);
        } else {
                usage(stderr);
                rc = 2;
        }
        mock_stop(&mock);
        return rc;
}
