/* Broker configuration in Kafka's server.properties style, with Kafka's key names.
 * One table (config.c) lists every key: its type, default, bounds, the topic-level
 * name it maps to, and a line of documentation; parsing, --help and DescribeConfigs
 * all read it. A bad value is an error naming the key; an unknown key is a warning. */
#ifndef STRATUS_BROKER_CONFIG_H
#define STRATUS_BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct broker_config {
        int32_t node_id;                         /* node.id */
        char *listeners;                         /* listeners */
        char *advertised_listeners;              /* advertised.listeners ("" = listeners) */
        char *log_dirs;                          /* log.dirs */
        int32_t num_partitions;                  /* num.partitions */
        int32_t default_replication_factor;      /* default.replication.factor */
        bool auto_create_topics_enable;          /* auto.create.topics.enable */
        bool delete_topic_enable;                /* delete.topic.enable */
        int64_t log_segment_bytes;               /* log.segment.bytes */
        int64_t log_roll_ms;                     /* log.roll.ms */
        int64_t log_retention_ms;                /* log.retention.ms, -1 = forever */
        int64_t log_retention_bytes;             /* log.retention.bytes, -1 = no limit */
        int64_t log_retention_check_interval_ms; /* log.retention.check.interval.ms */
        int32_t log_index_interval_bytes;        /* log.index.interval.bytes */
        int64_t log_flush_interval_messages;     /* log.flush.interval.messages; 1 = fsync before ack */
        int64_t log_flush_interval_ms;           /* log.flush.interval.ms, -1 = never by time */
        char *log_message_timestamp_type;        /* log.message.timestamp.type */
        char *log_cleanup_policy;                /* log.cleanup.policy: delete, compact or both */
        int64_t log_cleaner_delete_retention_ms; /* log.cleaner.delete.retention.ms */
        int64_t log_cleaner_backoff_ms;          /* log.cleaner.backoff.ms: between compaction passes */
        int32_t message_max_bytes;               /* message.max.bytes: largest record batch */
        int32_t socket_request_max_bytes;        /* socket.request.max.bytes: largest request */
        int64_t connections_max_idle_ms;         /* connections.max.idle.ms */
        int32_t max_connections;                 /* max.connections */
        int32_t fetch_max_bytes;                 /* fetch.max.bytes: cap on one fetch response */
        int64_t producer_id_expiration_ms;       /* producer.id.expiration.ms */
        int32_t group_min_session_timeout_ms;    /* group.min.session.timeout.ms */
        int32_t group_max_session_timeout_ms;    /* group.max.session.timeout.ms */
        int32_t group_initial_rebalance_delay_ms; /* group.initial.rebalance.delay.ms */
        int32_t group_max_size;                  /* group.max.size */
        int32_t offset_metadata_max_bytes;       /* offset.metadata.max.bytes */
        int64_t offsets_retention_minutes;       /* offsets.retention.minutes */
        int64_t offsets_retention_check_interval_ms; /* offsets.retention.check.interval.ms */
        char *listener_security_protocol_map;    /* listener.security.protocol.map */
        char *sasl_enabled_mechanisms;           /* sasl.enabled.mechanisms */
        char *tenants_file;                      /* tenants.file ("" = none: single tenant, no SASL) */
        int32_t connection_failed_authentication_delay_ms; /* connection.failed.authentication.delay.ms */
        int32_t sasl_server_max_receive_size;    /* sasl.server.max.receive.size */
        char *ssl_certificate_location;          /* ssl.certificate.location (PEM chain) */
        char *ssl_key_location;                  /* ssl.key.location (PEM private key) */
        char *ssl_key_password;                  /* ssl.key.password ("" = unencrypted key) */
        char *ssl_enabled_protocols;             /* ssl.enabled.protocols */
        char *ssl_cipher_suites;                 /* ssl.cipher.suites ("" = OpenSSL defaults) */
        char *cluster_id;                        /* cluster.id ("" = generated once, kept in meta.properties) */
        char *metrics_listener;                  /* metrics.listener: host:port of GET /metrics ("" = off) */
};

enum config_type { CONFIG_BOOL, CONFIG_INT, CONFIG_LONG, CONFIG_STRING };

struct config_def {
        const char *name;       /* broker key */
        const char *topic_name; /* topic-level key, or NULL if not a topic config */
        enum config_type type;
        const char *default_value;
        int64_t min, max;       /* for INT/LONG */
        size_t offset;          /* into struct broker_config */
        bool read_only;         /* cannot change without restart */
        const char *doc;
};

extern const struct config_def config_defs[];
extern const size_t config_def_count;

/* Fills <cfg> with every default. */
void config_init(struct broker_config *cfg);
void config_deinit(struct broker_config *cfg);

/* Sets one key. Returns 0; -ENOENT for an unknown key (the caller warns); -EINVAL for a
 * bad value, with a message naming the key written to <err>. */
int config_set(struct broker_config *cfg, const char *key, const char *value, char *err, size_t err_len);

/* Reads a properties file ("key=value", "key: value", '#'/'!' comments) into <cfg>.
 * Unknown keys are logged as warnings. Returns 0, or -errno with a message in <err>. */
int config_load_file(struct broker_config *cfg, const char *path, char *err, size_t err_len);

/* Checks cross-key constraints after loading. Returns 0 or -EINVAL with <err>. */
int config_validate(const struct broker_config *cfg, char *err, size_t err_len);

/* Whether <def> holds a secret (keys named *.password): never shown. */
bool config_is_secret(const struct config_def *def);
/* The current value of <def> in <cfg> as a string into <out>; a secret that is set
 * (a key named *.password) is formatted as "[hidden]". */
void config_format(const struct broker_config *cfg, const struct config_def *def, char *out, size_t out_len);

/* The definition of broker key <name> or of topic key <name>, or NULL. */
const struct config_def *config_find(const char *name);
const struct config_def *config_find_topic(const char *topic_name);

/* Parses <value> for <def> into *<out> (bool as 0/1). Returns 0 or -EINVAL with <err>. */
int config_parse_value(const struct config_def *def, const char *value, int64_t *out, char *err, size_t err_len);

/* Prints every key with its default and doc line (for --help). */
void config_print_help(FILE *out);

#endif
