/* The control-plane bus over librdkafka: an idempotent producer and an assign()-only
 * consumer, both woken through one non-blocking pipe that librdkafka writes to when a
 * queue becomes non-empty (rd_kafka_queue_io_event_enable); the loop drains both queues
 * when the pipe is readable, so every callback runs on the loop thread. */
#define LOG_TOPIC "bus"
#include "bus/bus.h"

#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/log.h"
#include "loop/loop.h"

/* How often a subscription whose topic does not exist yet (or whose metadata could not be
 * read) is retried. */
#define RETRY_MS 200
/* The metadata request blocks the loop; it answers in a millisecond when the cluster is up,
 * so the timeout only bounds how long an unreachable cluster stalls the loop. */
#define METADATA_TIMEOUT_MS 250
#define FREE_FLUSH_MS       5000

struct bus_sub {
        struct bus_sub *next;
        char *topic;
        bus_message_fn *fn;
        bus_caught_up_fn *caught_up;
        void *arg;
        bool assigned; /* partitions assigned at OFFSET_BEGINNING */
        int npartitions;
        bool *eof_seen;      /* [npartitions]: the partition reached its end once */
        int neof;            /* partitions in <eof_seen> that are true */
        bool caught_up_done; /* <caught_up> was called */
};

struct bus {
        struct loop *loop;
        rd_kafka_t *producer;
        rd_kafka_t *consumer;
        rd_kafka_queue_t *producer_queue; /* the producer's main queue (delivery reports) */
        rd_kafka_queue_t *consumer_queue; /* messages, partition EOFs and errors */
        int pipe_rd, pipe_wr;             /* librdkafka writes, the loop reads */
        struct bus_sub *subs;
        struct loop_timer *retry_timer; /* set while a subscription is unassigned */
        int64_t pending;                /* produced, not yet acknowledged */
        int64_t delivery_failures;
        char *client_id;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
        struct bus *bus = opaque;
        bus->pending--;
        if (rkm->err) {
                bus->delivery_failures++;
                log_error("delivery failed topic=%s partition=%d: %s", rd_kafka_topic_name(rkm->rkt),
                          (int)rkm->partition, rd_kafka_err2str(rkm->err));
        }
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
        /* librdkafka recovers from these by itself (reconnects, retries); only fatal errors
         * (an idempotence guarantee that can no longer be kept) need a human. */
        if (err == RD_KAFKA_RESP_ERR__FATAL) {
                char why[256];
                rd_kafka_fatal_error(rk, why, sizeof(why));
                log_error("%s: fatal: %s", rd_kafka_name(rk), why);
        } else {
                log_warn("%s: %s", rd_kafka_name(rk), reason);
        }
}

static struct bus_sub *find_sub(struct bus *bus, const char *topic)
{
        for (struct bus_sub *sub = bus->subs; sub; sub = sub->next)
                if (strcmp(sub->topic, topic) == 0)
                        return sub;
        return NULL;
}

static void mark_eof(struct bus_sub *sub, int32_t partition)
{
        if (partition < 0 || partition >= sub->npartitions || sub->eof_seen[partition])
                return;
        sub->eof_seen[partition] = true;
        sub->neof++;
        if (sub->neof == sub->npartitions && !sub->caught_up_done) {
                sub->caught_up_done = true;
                log_info("caught up topic=%s partitions=%d", sub->topic, sub->npartitions);
                if (sub->caught_up)
                        sub->caught_up(sub->arg, sub->topic);
        }
}

static void handle_message(struct bus *bus, rd_kafka_message_t *rkm)
{
        const char *topic = rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : NULL;
        struct bus_sub *sub = topic ? find_sub(bus, topic) : NULL;
        if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (sub)
                        mark_eof(sub, rkm->partition);
                return;
        }
        if (rkm->err) {
                log_warn("consumer topic=%s partition=%d: %s", topic ? topic : "-", (int)rkm->partition,
                         rd_kafka_message_errstr(rkm));
                return;
        }
        if (!sub)
                return;
        sub->fn(sub->arg, topic, rkm->key ? rkm->key : "", rkm->key ? rkm->key_len : 0, rkm->payload,
                rkm->payload ? rkm->len : 0, rkm->offset);
}

/* Drains both queues completely: librdkafka writes to the pipe only when a queue goes from
 * empty to non-empty. */
static void drain(struct bus *bus)
{
        while (rd_kafka_poll(bus->producer, 0) > 0)
                ;
        rd_kafka_message_t *rkm;
        while ((rkm = rd_kafka_consume_queue(bus->consumer_queue, 0)) != NULL) {
                handle_message(bus, rkm);
                rd_kafka_message_destroy(rkm);
        }
}

static void on_pipe(struct loop *loop, int fd, uint32_t events, void *arg)
{
        struct bus *bus = arg;
        char scratch[256];
        while (read(fd, scratch, sizeof(scratch)) > 0)
                ;
        drain(bus);
}

/* Reads the partition count of <sub>'s topic and assigns every partition from the
 * beginning. Returns 0, -EAGAIN when the topic does not exist yet or the cluster did not
 * answer, or another -errno. */
static int try_assign(struct bus *bus, struct bus_sub *sub)
{
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(bus->consumer, sub->topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(bus->consumer, 0, rkt, &md, METADATA_TIMEOUT_MS);
        rd_kafka_topic_destroy(rkt);
        if (err) {
                log_debug("metadata topic=%s: %s", sub->topic, rd_kafka_err2str(err));
                return -EAGAIN;
        }
        int npartitions = 0;
        for (int i = 0; i < md->topic_cnt; i++)
                if (strcmp(md->topics[i].topic, sub->topic) == 0 && md->topics[i].err == 0)
                        npartitions = md->topics[i].partition_cnt;
        rd_kafka_metadata_destroy(md);
        if (npartitions <= 0)
                return -EAGAIN;

        rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(npartitions);
        for (int p = 0; p < npartitions; p++)
                rd_kafka_topic_partition_list_add(parts, sub->topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
        /* Incremental: the partitions of topics assigned before keep their positions. */
        rd_kafka_error_t *error = rd_kafka_incremental_assign(bus->consumer, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        if (error) {
                log_error("assign topic=%s: %s", sub->topic, rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
                return -EIO;
        }
        sub->npartitions = npartitions;
        sub->eof_seen = xcalloc((size_t)npartitions, sizeof(bool));
        sub->assigned = true;
        log_info("subscribed topic=%s partitions=%d from=beginning", sub->topic, npartitions);
        return 0;
}

static void on_retry(struct loop *loop, void *arg);

static void assign_pending(struct bus *bus)
{
        bool waiting = false;
        for (struct bus_sub *sub = bus->subs; sub; sub = sub->next)
                if (!sub->assigned && try_assign(bus, sub) < 0)
                        waiting = true;
        if (waiting && !bus->retry_timer)
                bus->retry_timer = loop_add_timer(bus->loop, RETRY_MS, on_retry, bus);
}

static void on_retry(struct loop *loop, void *arg)
{
        struct bus *bus = arg;
        bus->retry_timer = NULL;
        assign_pending(bus);
}

static int set_conf(rd_kafka_conf_t *conf, const char *key, const char *value, char *err, size_t err_len)
{
        if (rd_kafka_conf_set(conf, key, value, err, err_len) != RD_KAFKA_CONF_OK)
                return -EINVAL;
        return 0;
}

static int set_confs(rd_kafka_conf_t *conf, const char *const *kv, char *err, size_t err_len)
{
        for (; kv[0]; kv += 2)
                if (set_conf(conf, kv[0], kv[1], err, err_len) < 0)
                        return -EINVAL;
        return 0;
}

static rd_kafka_conf_t *common_conf(struct bus *bus, const char *bootstrap, const char *client_id, char *err,
                                    size_t err_len)
{
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        const char *kv[] = {
            "bootstrap.servers",
            bootstrap,
            "client.id",
            client_id,
            "reconnect.backoff.ms",
            "50",
            "reconnect.backoff.max.ms",
            "1000",
            "socket.keepalive.enable",
            "true",
            NULL,
        };
        if (set_confs(conf, kv, err, err_len) < 0) {
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        rd_kafka_conf_set_opaque(conf, bus);
        rd_kafka_conf_set_error_cb(conf, on_error);
        return conf;
}

int bus_new(struct loop *loop, const char *bootstrap, const char *client_id, struct bus **out, char *err,
            size_t err_len)
{
        if (!bootstrap || !*bootstrap) {
                snprintf(err, err_len, "bus: no bootstrap address (host:port of the control-plane Kafka)");
                return -EINVAL;
        }
        struct bus *bus = xcalloc(1, sizeof(*bus));
        bus->loop = loop;
        bus->pipe_rd = bus->pipe_wr = -1;
        bus->client_id = xstrdup(client_id);

        rd_kafka_conf_t *conf = common_conf(bus, bootstrap, client_id, err, err_len);
        const char *producer_kv[] = {
            "enable.idempotence",
            "true",
            "acks",
            "all",
            "linger.ms",
            "5",
            /* Generous: a control-plane cluster being restarted must not lose a PSC. */
            "message.timeout.ms",
            "300000",
            NULL,
        };
        if (!conf || set_confs(conf, producer_kv, err, err_len) < 0)
                goto fail_conf;
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        bus->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, err_len);
        if (!bus->producer)
                goto fail_conf;

        char *consumer_id = xasprintf("%s-consumer", client_id);
        char *group = xasprintf("%s-bus", client_id);
        conf = common_conf(bus, bootstrap, consumer_id, err, err_len);
        /* No group membership: partitions are assigned, never subscribed, and no offset is
         * committed; librdkafka only needs a group.id to accept assign(). */
        const char *consumer_kv[] = {
            "group.id",
            group,
            "enable.auto.commit",
            "false",
            "enable.auto.offset.store",
            "false",
            "enable.partition.eof",
            "true",
            "fetch.wait.max.ms",
            "20",
            "fetch.error.backoff.ms",
            "50",
            "allow.auto.create.topics",
            "false",
            NULL,
        };
        int rc = conf ? set_confs(conf, consumer_kv, err, err_len) : -EINVAL;
        free(consumer_id);
        free(group);
        if (rc < 0)
                goto fail_conf;
        bus->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, err_len);
        if (!bus->consumer)
                goto fail_conf;
        rd_kafka_poll_set_consumer(bus->consumer);

        int fds[2];
        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
                rc = -errno;
                snprintf(err, err_len, "bus: pipe: %s", strerror(errno));
                bus_free(bus);
                return rc;
        }
        bus->pipe_rd = fds[0];
        bus->pipe_wr = fds[1];
        bus->producer_queue = rd_kafka_queue_get_main(bus->producer);
        bus->consumer_queue = rd_kafka_queue_get_consumer(bus->consumer);
        rd_kafka_queue_io_event_enable(bus->producer_queue, bus->pipe_wr, "p", 1);
        rd_kafka_queue_io_event_enable(bus->consumer_queue, bus->pipe_wr, "c", 1);
        rc = loop_add_fd(loop, bus->pipe_rd, LOOP_READABLE, on_pipe, bus);
        if (rc < 0) {
                snprintf(err, err_len, "bus: loop_add_fd: %s", strerror(-rc));
                bus_free(bus);
                return rc;
        }
        /* Anything queued before the pipe was attached. */
        drain(bus);
        log_info("bus started client_id=%s bootstrap=%s", client_id, bootstrap);
        *out = bus;
        return 0;

fail_conf:
        if (conf)
                rd_kafka_conf_destroy(conf);
        bus_free(bus);
        return -EINVAL;
}

void bus_free(struct bus *bus)
{
        if (!bus)
                return;
        loop_cancel_timer(bus->loop, bus->retry_timer);
        if (bus->pipe_rd >= 0)
                loop_del_fd(bus->loop, bus->pipe_rd);
        if (bus->producer) {
                if (rd_kafka_flush(bus->producer, FREE_FLUSH_MS) != 0)
                        log_warn("bus closing with %lld messages not acknowledged", (long long)bus->pending);
        }
        if (bus->consumer_queue) {
                rd_kafka_queue_io_event_enable(bus->consumer_queue, -1, NULL, 0);
                rd_kafka_queue_destroy(bus->consumer_queue);
        }
        if (bus->producer_queue) {
                rd_kafka_queue_io_event_enable(bus->producer_queue, -1, NULL, 0);
                rd_kafka_queue_destroy(bus->producer_queue);
        }
        if (bus->consumer) {
                rd_kafka_consumer_close(bus->consumer);
                rd_kafka_destroy(bus->consumer);
        }
        if (bus->producer)
                rd_kafka_destroy(bus->producer);
        if (bus->pipe_rd >= 0)
                close(bus->pipe_rd);
        if (bus->pipe_wr >= 0)
                close(bus->pipe_wr);
        while (bus->subs) {
                struct bus_sub *sub = bus->subs;
                bus->subs = sub->next;
                free(sub->topic);
                free(sub->eof_seen);
                free(sub);
        }
        free(bus->client_id);
        free(bus);
}

/* One CreateTopics round trip. Returns 0 (created or already there), or -errno with <err>;
 * *<topic_err> is the topic's Kafka error when the broker answered. */
static int create_topic_once(struct bus *bus, const char *topic, int partitions, const char *const *configs,
                             int timeout_ms, rd_kafka_resp_err_t *topic_err, char *err, size_t err_len)
{
        char why[256];
        *topic_err = RD_KAFKA_RESP_ERR_NO_ERROR;
        rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, 1, why, sizeof(why));
        if (!nt) {
                snprintf(err, err_len, "bus: topic %s: %s", topic, why);
                return -EINVAL;
        }
        for (const char *const *kv = configs; kv && kv[0]; kv += 2) {
                if (rd_kafka_NewTopic_set_config(nt, kv[0], kv[1])) {
                        snprintf(err, err_len, "bus: topic %s: bad config %s=%s", topic, kv[0], kv[1]);
                        rd_kafka_NewTopic_destroy(nt);
                        return -EINVAL;
                }
        }
        rd_kafka_AdminOptions_t *opts =
            rd_kafka_AdminOptions_new(bus->producer, RD_KAFKA_ADMIN_OP_CREATETOPICS);
        rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, why, sizeof(why));
        rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, why, sizeof(why));
        /* A queue of our own: the answer must not go through the loop's pipe. */
        rd_kafka_queue_t *q = rd_kafka_queue_new(bus->producer);
        rd_kafka_CreateTopics(bus->producer, &nt, 1, opts, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
        int rc = 0;
        if (!ev) {
                snprintf(err, err_len, "bus: creating topic %s: no answer within %d ms", topic, timeout_ms);
                rc = -ETIMEDOUT;
        } else if (rd_kafka_event_error(ev)) {
                snprintf(err, err_len, "bus: creating topic %s: %s", topic, rd_kafka_event_error_string(ev));
                rc = rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR__TIMED_OUT ? -ETIMEDOUT : -EIO;
        } else {
                const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
                size_t n = 0;
                const rd_kafka_topic_result_t **trs = rd_kafka_CreateTopics_result_topics(res, &n);
                for (size_t i = 0; i < n; i++) {
                        rd_kafka_resp_err_t terr = rd_kafka_topic_result_error(trs[i]);
                        if (terr == RD_KAFKA_RESP_ERR_NO_ERROR ||
                            terr == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                                continue;
                        const char *msg = rd_kafka_topic_result_error_string(trs[i]);
                        snprintf(err, err_len, "bus: creating topic %s: %s", topic,
                                 msg ? msg : rd_kafka_err2str(terr));
                        *topic_err = terr;
                        rc = -EIO;
                }
        }
        if (ev)
                rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
        rd_kafka_AdminOptions_destroy(opts);
        rd_kafka_NewTopic_destroy(nt);
        return rc;
}

static bool asks_compaction(const char *const *configs)
{
        for (const char *const *kv = configs; kv && kv[0]; kv += 2)
                if (strcmp(kv[0], "cleanup.policy") == 0 && strstr(kv[1], "compact"))
                        return true;
        return false;
}

/* Asks for <topic>'s metadata through the producer now, so that its first message does
 * not wait for librdkafka to learn about a topic it has never seen (up to a second,
 * measured in bench/cp_run.py). Best effort: a failure only loses the head start. */
static void warm_metadata(struct bus *bus, const char *topic, int timeout_ms)
{
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(bus->producer, topic, NULL);
        if (!rkt)
                return;
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(bus->producer, 0, rkt, &md, MIN(timeout_ms, 2000)) == RD_KAFKA_RESP_ERR_NO_ERROR)
                rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
}

int bus_ensure_topic(struct bus *bus, const char *topic, int partitions, const char *const *configs,
                     int timeout_ms, char *err, size_t err_len)
{
        rd_kafka_resp_err_t terr;
        int rc = create_topic_once(bus, topic, partitions, configs, timeout_ms, &terr, err, err_len);
        if (rc == -EIO && terr == RD_KAFKA_RESP_ERR_INVALID_CONFIG && asks_compaction(configs)) {
                /* A cluster without log compaction: a topic read
                 * from the beginning works the same when it keeps everything, compaction
                 * only saves space. Same configs, cleanup.policy replaced by infinite
                 * retention. */
                log_warn("topic=%s: the cluster refused cleanup.policy=compact (%s); creating it with "
                         "cleanup.policy=delete retention.ms=-1 retention.bytes=-1 instead",
                         topic, err);
                const char *kept[64];
                size_t n = 0;
                for (const char *const *kv = configs; kv[0] && n + 2 < ARRAY_LEN(kept) - 5; kv += 2) {
                        if (strcmp(kv[0], "cleanup.policy") == 0 || strcmp(kv[0], "retention.ms") == 0 ||
                            strcmp(kv[0], "retention.bytes") == 0)
                                continue;
                        kept[n++] = kv[0];
                        kept[n++] = kv[1];
                }
                kept[n++] = "retention.ms";
                kept[n++] = "-1";
                kept[n++] = "retention.bytes";
                kept[n++] = "-1";
                kept[n] = NULL;
                rc = create_topic_once(bus, topic, partitions, kept, timeout_ms, &terr, err, err_len);
        }
        if (rc == 0) {
                log_info("topic ready topic=%s partitions=%d", topic, partitions);
                warm_metadata(bus, topic, timeout_ms);
        }
        return rc;
}

int bus_produce(struct bus *bus, const char *topic, const char *key, const char *value, size_t len)
{
        rd_kafka_resp_err_t err = rd_kafka_producev(bus->producer, RD_KAFKA_V_TOPIC(topic),
                                                    RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                                                    RD_KAFKA_V_VALUE((void *)value, value ? len : 0),
                                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                return -ENOBUFS;
        if (err) {
                log_error("produce topic=%s: %s", topic, rd_kafka_err2str(err));
                return -EIO;
        }
        bus->pending++;
        return 0;
}

int bus_flush(struct bus *bus, int timeout_ms)
{
        /* rd_kafka_flush() serves the delivery reports itself (on this thread). */
        return rd_kafka_flush(bus->producer, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -ETIMEDOUT;
}

int bus_subscribe(struct bus *bus, const char *topic, bus_message_fn *fn, bus_caught_up_fn *caught_up,
                  void *arg)
{
        if (!topic || !*topic || !fn)
                return -EINVAL;
        if (find_sub(bus, topic))
                return -EEXIST;
        struct bus_sub *sub = xcalloc(1, sizeof(*sub));
        sub->topic = xstrdup(topic);
        sub->fn = fn;
        sub->caught_up = caught_up;
        sub->arg = arg;
        sub->next = bus->subs;
        bus->subs = sub;
        assign_pending(bus);
        return 0;
}

int64_t bus_pending(const struct bus *bus)
{
        return bus->pending;
}

int64_t bus_delivery_failures(const struct bus *bus)
{
        return bus->delivery_failures;
}
