/* The broker context passed down to every handler (no global): configuration, the
 * loop, the topic catalog, connections and the waiters for long-poll fetches and
 * group-committed produces. Loop thread only. */
#ifndef STRATUS_BROKER_BROKER_H
#define STRATUS_BROKER_BROKER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "base/map.h"
#include "broker/config.h"
#include "kafka/gen/api_keys.h"
#include "kafka/wire.h"

struct loop;
struct conn;
struct request;
struct plog;
struct group_coordinator;
struct loop_timer;
struct http_server;
struct tls_server;

/* A listener from listeners=NAME://host:port, and where clients are told to connect. */
struct listener {
        char *name;           /* PLAINTEXT */
        char *host;           /* bind host ("" = all) */
        int port;             /* bound port (resolved when 0 was asked for) */
        char *advertised_host;
        int advertised_port;
        int fd;
        bool sasl;            /* SASL_PLAINTEXT, SASL_SSL: clients authenticate first */
        bool tls;             /* SSL, SASL_SSL: TLS transport */
        struct tls_server *tls_server; /* TLS listeners: the certificate in force (shared) */
        struct broker *broker;
        uint64_t connections_total; /* accepted since start (metrics) */
        struct loop_timer *accept_pause; /* out of descriptors: accepting again later */
};

struct topic {
        char *name;
        struct kafka_uuid id;
        int32_t partition_count;
        struct plog **partitions;  /* partition_count entries */
        struct map configs;        /* topic-level overrides: key -> heap string value */
        int64_t *unflushed;        /* per partition: messages appended since the last fsync */
        int ns_index;              /* its place in its namespace's list (topic.c) */
};

struct broker {
        struct broker_config cfg;
        struct loop *loop;
        char *data_dir;        /* log.dirs */
        char *cluster_id;
        struct listener *listeners;
        int nlisteners;
        struct map topics;     /* name -> struct topic */
        struct map namespaces; /* a name up to its first '_' -> the topics so named (topic.c) */
        struct conn *conns;    /* doubly linked list of open connections */
        int nconns;
        struct conn *closed;   /* connections closed this iteration, freed before sleep */
        struct conn *ready_conns; /* answered outside their dispatch: process before sleep */
        struct request *fetch_waiters;   /* long-poll fetches, linked through req->next */
        struct request *sync_waiters;    /* produces waiting for the group-commit fsync */
        struct group_coordinator *groups; /* consumer groups and committed offsets */
        struct loop_timer *group_timer;  /* armed for the coordinator's next deadline */
        int64_t group_timer_at;
        struct request *offset_sync_waiters; /* offset commits waiting for the store's fsync */
        bool compaction_running;         /* a partition's compaction pass is under way */
        struct tenants *tenants;         /* tenants.file, NULL without one */
        struct loop_timer *tenants_timer; /* checks the file for changes */
        struct timespec tenants_mtime;
        int64_t tenants_size;
        uint64_t tenants_ino;
        struct map auth_failures;        /* address -> recent failed authentications */
        struct map tenant_states;        /* LKC id -> struct tenant_state (broker/tenancy/) */
        struct tls_server *tls;          /* ssl.* for the TLS listeners, NULL without any */
        bool data_appended;              /* something was appended this iteration */
        int64_t next_producer_id;        /* next id InitProducerId hands out */
        int64_t producer_id_block_end;   /* ids below this are reserved on disk */
        /* Metrics (metrics.c): the listener, and counters since start. */
        struct http_server *metrics_server; /* NULL without metrics.listener */
        uint64_t requests_total[KAFKA_API_KEY_MAX + 1]; /* by API key, handed to a handler */
        uint64_t bytes_in, bytes_out;    /* read from / written to client connections */
        bool stopping;
        bool started;          /* fully started: a stop may write the clean-shutdown marker */
};

/* Opens the data directory, loads topics (recovering logs after an unclean shutdown),
 * binds the listeners and registers with <loop>. Returns 0 or -errno (logged). */
int broker_start(struct broker *broker, struct loop *loop);
/* Closes connections, syncs and closes every log, writes the clean-shutdown marker. */
void broker_stop(struct broker *broker);

/* The topic named <name, len>, or NULL. */
struct topic *broker_topic(struct broker *broker, const char *name, size_t len);
/* The topics whose names begin with namespace <ns, len>: a name up to and including its
 * first '_', as a tenant's "<lkc-id>_" (empty: names without '_'). Sets *<n>; the array
 * is the broker's, valid until a topic is created or deleted. */
struct topic *const *broker_namespace_topics(struct broker *broker, const char *ns, size_t len, int *n);
/* The partition log of <topic>/<partition>, or NULL when out of range. */
struct plog *broker_partition(struct broker *broker, struct topic *topic, int32_t partition);

/* Creates a topic with <partitions> partitions and the topic-level <configs> (NULL-
 * terminated key/value pairs, already validated). Returns 0, -EEXIST, or -errno. */
int broker_create_topic(struct broker *broker, const char *name, int32_t partitions,
                        const char *const *configs, struct topic **out);
int broker_delete_topic(struct broker *broker, struct topic *topic);
/* Adds partitions so that <topic> has <total>. Returns 0 or -errno. */
int broker_add_partitions(struct broker *broker, struct topic *topic, int32_t total);

/* Where a topic config value comes from; the numbers are DescribeConfigs' config_source. */
enum config_source {
        CONFIG_SOURCE_TOPIC = 1,         /* DYNAMIC_TOPIC_CONFIG: a topic override */
        CONFIG_SOURCE_STATIC_BROKER = 4, /* STATIC_BROKER_CONFIG: set in the broker's config */
        CONFIG_SOURCE_DEFAULT = 5,       /* DEFAULT_CONFIG: the built-in default */
};

/* The effective value of topic-level key <topic_key> for <topic> (NULL: a topic without
 * overrides) formatted into <out>; returns where it comes from. */
enum config_source broker_topic_config(struct broker *broker, const struct topic *topic,
                                       const char *topic_key, char *out, size_t out_len);

/* Checks a topic name the Kafka way (1-249 chars of [a-zA-Z0-9._-], not "." or "..").
 * Returns NULL, or a message saying what is wrong. */
const char *broker_check_topic_name(const char *name, size_t len);

/* The effective value of a numeric topic-level key (see broker_topic_config). */
int64_t broker_topic_config_long(struct broker *broker, const struct topic *topic, const char *topic_key);

/* Every topic-level config key, NULL-terminated (for DescribeConfigs, CreateTopics). */
const char *const *broker_topic_config_names(void);

/* Validates topic-level <key>=<value>; returns 0 or -EINVAL with <err>. */
int broker_check_topic_config(const char *key, const char *value, char *err, size_t err_len);

/* Allocates a producer id (blocks of ids are reserved durably). Returns >= 0 or -errno. */
int64_t broker_alloc_producer_id(struct broker *broker);

/* SIGHUP: reloads the tenants file and the TLS certificate now when they changed,
 * instead of at the next 1 s check. */
void broker_reload_files(struct broker *broker);

/* Wakes long-poll fetches after data was appended (called by produce). */
void broker_notify_append(struct broker *broker);

#endif
