/* The control-plane bus: Kafka topics between the mothership and its satellites, over
 * librdkafka (so any Kafka works as the control-plane cluster; in `stratus up` it is a
 * Stratus broker). One idempotent producer and one consumer of assigned partitions read
 * from the beginning, both driven from our event loop: librdkafka's threads do the I/O
 * and wake the loop through a pipe, and every callback here runs on the loop thread.
 * Loop thread only. */
#ifndef STRATUS_BUS_BUS_H
#define STRATUS_BUS_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct bus;

/* A message consumed from <topic>: <value> is NULL for a tombstone. The views are valid
 * only during the call. */
typedef void bus_message_fn(void *arg, const char *topic, const char *key, size_t key_len, const char *value,
                            size_t value_len, int64_t offset);
/* Every partition of <topic> has been read up to the end it had when the subscription
 * started: the consumer has seen the whole desired state once. */
typedef void bus_caught_up_fn(void *arg, const char *topic);

/* Connects to <bootstrap> ("host:port,...") as <client_id>. Returns 0 with *<out>, or
 * -errno / -EINVAL with <err>. Does not wait for the cluster to be reachable. */
int bus_new(struct loop *loop, const char *bootstrap, const char *client_id, struct bus **out, char *err,
            size_t err_len);
/* Flushes what is queued (up to 5 s) and closes. bus_free(NULL) does nothing. */
void bus_free(struct bus *bus);

/* Creates <topic> with <partitions> and topic configs <configs> (NULL-terminated
 * key, value pairs) unless it exists. Blocks up to <timeout_ms>. Returns 0 or -errno
 * with <err>. A cluster that refuses cleanup.policy=compact (a Kafka without it) gets
 * the topic with retention.ms=-1 and retention.bytes=-1 instead, with a warning: read
 * from the beginning, it holds the same state, only less compactly. */
int bus_ensure_topic(struct bus *bus, const char *topic, int partitions, const char *const *configs,
                     int timeout_ms, char *err, size_t err_len);

/* Queues <value, len> (NULL: a tombstone) under <key> to <topic>, partitioned by key.
 * librdkafka retries (idempotence: no duplicates, order kept per partition). Returns 0,
 * or -ENOBUFS when the local queue is full. */
int bus_produce(struct bus *bus, const char *topic, const char *key, const char *value, size_t len);
/* Waits up to <timeout_ms> for every queued message to be acknowledged. Returns 0 or
 * -ETIMEDOUT. Blocks the loop: for shutdown and tools. */
int bus_flush(struct bus *bus, int timeout_ms);

/* Reads every partition of <topic> from the beginning, calling <fn> for each message
 * and <caught_up> once (may be NULL). Several topics may be subscribed. Returns 0 or
 * -errno. A topic that does not exist yet is retried until it does. */
int bus_subscribe(struct bus *bus, const char *topic, bus_message_fn *fn, bus_caught_up_fn *caught_up,
                  void *arg);

/* Messages produced and not yet acknowledged, and delivery failures since start (for
 * status and tests). */
int64_t bus_pending(const struct bus *bus);
int64_t bus_delivery_failures(const struct bus *bus);

#endif
