/* The broker configuration table and the properties-file parser. */
#define LOG_TOPIC "config"
#include "broker/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "broker/tls/tls.h"
#include "loop/net.h"

#define OFF(f) offsetof(struct broker_config, f)
#define I32 INT32_MIN, INT32_MAX
#define I64 INT64_MIN, INT64_MAX

const struct config_def config_defs[] = {
        { "node.id", NULL, CONFIG_INT, "0", 0, INT32_MAX, OFF(node_id), true,
          "this broker's id, as clients see it in Metadata" },
        { "listeners", NULL, CONFIG_STRING, "PLAINTEXT://:9092", 0, 0, OFF(listeners), true,
          "comma list of NAME://host:port to listen on (host empty = all interfaces)" },
        { "advertised.listeners", NULL, CONFIG_STRING, "", 0, 0, OFF(advertised_listeners), true,
          "addresses given to clients in Metadata; empty = listeners (an empty host becomes the machine's hostname)" },
        { "log.dirs", NULL, CONFIG_STRING, "/tmp/stratus-logs", 0, 0, OFF(log_dirs), true,
          "directory holding the partition logs and broker metadata" },
        { "num.partitions", NULL, CONFIG_INT, "1", 1, 100000, OFF(num_partitions), false,
          "partitions of auto-created topics and of CreateTopics with partitions=-1" },
        { "default.replication.factor", NULL, CONFIG_INT, "1", 1, 1, OFF(default_replication_factor), true,
          "replication factor of new topics (a single broker: 1)" },
        { "auto.create.topics.enable", NULL, CONFIG_BOOL, "true", 0, 1, OFF(auto_create_topics_enable), false,
          "create a topic when a client asks Metadata for one that does not exist (and allows it)" },
        { "delete.topic.enable", NULL, CONFIG_BOOL, "true", 0, 1, OFF(delete_topic_enable), false,
          "allow DeleteTopics" },
        { "log.segment.bytes", "segment.bytes", CONFIG_LONG, "1073741824", 14, INT32_MAX, OFF(log_segment_bytes), false,
          "roll a new segment file when the active one reaches this size" },
        { "log.roll.ms", "segment.ms", CONFIG_LONG, "604800000", 1, INT64_MAX, OFF(log_roll_ms), false,
          "roll a non-empty segment older than this (log.roll.hours is accepted too)" },
        { "log.retention.ms", "retention.ms", CONFIG_LONG, "604800000", -1, INT64_MAX, OFF(log_retention_ms), false,
          "delete segments whose newest record is older than this; -1 keeps forever (log.retention.minutes/hours accepted)" },
        { "log.retention.bytes", "retention.bytes", CONFIG_LONG, "-1", -1, INT64_MAX, OFF(log_retention_bytes), false,
          "delete oldest segments while a partition is larger than this; -1 = no limit" },
        { "log.retention.check.interval.ms", NULL, CONFIG_LONG, "300000", 1, INT64_MAX, OFF(log_retention_check_interval_ms), false,
          "how often retention is enforced" },
        { "log.index.interval.bytes", "index.interval.bytes", CONFIG_INT, "4096", 0, INT32_MAX, OFF(log_index_interval_bytes), false,
          "bytes of log between two offset-index entries" },
        { "log.flush.interval.messages", "flush.messages", CONFIG_LONG, "9223372036854775807", 1, INT64_MAX, OFF(log_flush_interval_messages), false,
          "fsync after this many messages; 1 = fsync before acknowledging every produce (group commit), default leaves it to the page cache" },
        { "log.flush.interval.ms", "flush.ms", CONFIG_LONG, "-1", -1, INT64_MAX, OFF(log_flush_interval_ms), false,
          "fsync partitions with unflushed data this often; -1 = only when log.flush.interval.messages says" },
        { "log.message.timestamp.type", "message.timestamp.type", CONFIG_STRING, "CreateTime", 0, 0, OFF(log_message_timestamp_type), false,
          "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's time" },
        { "log.cleanup.policy", "cleanup.policy", CONFIG_STRING, "delete", 0, 0, OFF(log_cleanup_policy), false,
          "delete: retention removes old segments; compact: keep the newest record of each key (docs/broker.md); \"compact,delete\": both" },
        { "log.cleaner.delete.retention.ms", "delete.retention.ms", CONFIG_LONG, "86400000", 0, INT64_MAX, OFF(log_cleaner_delete_retention_ms), false,
          "compaction keeps a tombstone (a record with a null value) this long, so consumers see the deletion" },
        { "log.cleaner.backoff.ms", NULL, CONFIG_LONG, "15000", 10, INT64_MAX, OFF(log_cleaner_backoff_ms), false,
          "how often compacted topics are checked for closed segments to clean" },
        { "message.max.bytes", "max.message.bytes", CONFIG_INT, "1048588", 0, INT32_MAX, OFF(message_max_bytes), false,
          "largest record batch accepted" },
        { "socket.request.max.bytes", NULL, CONFIG_INT, "104857600", 1024, INT32_MAX, OFF(socket_request_max_bytes), true,
          "largest request frame; a bigger one closes the connection" },
        { "connections.max.idle.ms", NULL, CONFIG_LONG, "600000", 1, INT64_MAX, OFF(connections_max_idle_ms), true,
          "close connections idle this long" },
        { "max.connections", NULL, CONFIG_INT, "2147483647", 1, INT32_MAX, OFF(max_connections), true,
          "connections accepted at once; further ones are closed at accept" },
        { "fetch.max.bytes", NULL, CONFIG_INT, "57671680", 1024, INT32_MAX, OFF(fetch_max_bytes), false,
          "most bytes one fetch response carries" },
        { "producer.id.expiration.ms", NULL, CONFIG_LONG, "86400000", 1, INT64_MAX, OFF(producer_id_expiration_ms), false,
          "forget the sequence state of idempotent producers idle this long" },
        { "group.min.session.timeout.ms", NULL, CONFIG_INT, "6000", 1, INT32_MAX, OFF(group_min_session_timeout_ms), true,
          "shortest session.timeout.ms a group member may ask for (shorter: INVALID_SESSION_TIMEOUT)" },
        { "group.max.session.timeout.ms", NULL, CONFIG_INT, "1800000", 1, INT32_MAX, OFF(group_max_session_timeout_ms), true,
          "longest session.timeout.ms a group member may ask for" },
        { "group.initial.rebalance.delay.ms", NULL, CONFIG_INT, "3000", 0, INT32_MAX, OFF(group_initial_rebalance_delay_ms), true,
          "how long an empty group waits for more members before its first rebalance completes" },
        { "group.max.size", NULL, CONFIG_INT, "2147483647", 1, INT32_MAX, OFF(group_max_size), true,
          "members one group may have (more: GROUP_MAX_SIZE_REACHED)" },
        { "offset.metadata.max.bytes", NULL, CONFIG_INT, "4096", 0, 1048576, OFF(offset_metadata_max_bytes), true,
          "longest metadata string stored with a committed offset" },
        { "offsets.retention.minutes", NULL, CONFIG_LONG, "10080", 1, INT64_MAX / 60000, OFF(offsets_retention_minutes), true,
          "committed offsets of a group are deleted this long after it became empty (KIP-211)" },
        { "offsets.retention.check.interval.ms", NULL, CONFIG_LONG, "600000", 1, INT64_MAX, OFF(offsets_retention_check_interval_ms), true,
          "how often expired offsets and unused groups are removed" },
        { "listener.security.protocol.map", NULL, CONFIG_STRING, "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL", 0, 0, OFF(listener_security_protocol_map), true,
          "NAME:PROTOCOL pairs giving each listener's security protocol (PLAINTEXT, SASL_PLAINTEXT, SSL or SASL_SSL)" },
        { "sasl.enabled.mechanisms", NULL, CONFIG_STRING, "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512", 0, 0, OFF(sasl_enabled_mechanisms), true,
          "SASL mechanisms offered on SASL listeners" },
        { "tenants.file", NULL, CONFIG_STRING, "", 0, 0, OFF(tenants_file), true,
          "JSON file of tenants and their API keys (salted SCRAM credentials), reloaded on change; needed by SASL listeners (docs/tenancy.md)" },
        { "connection.failed.authentication.delay.ms", NULL, CONFIG_INT, "100", 0, 10000, OFF(connection_failed_authentication_delay_ms), true,
          "a failed authentication is answered after this delay (growing with repeated failures from one address)" },
        { "sasl.server.max.receive.size", NULL, CONFIG_INT, "524288", 1024, INT32_MAX, OFF(sasl_server_max_receive_size), true,
          "largest frame accepted before a client has authenticated" },
        { "ssl.certificate.location", NULL, CONFIG_STRING, "", 0, 0, OFF(ssl_certificate_location), true,
          "PEM certificate chain (leaf first) of the SSL and SASL_SSL listeners; reloaded within a second of a change" },
        { "ssl.key.location", NULL, CONFIG_STRING, "", 0, 0, OFF(ssl_key_location), true,
          "PEM private key of ssl.certificate.location (unencrypted, or see ssl.key.password); reloaded with it" },
        { "ssl.key.password", NULL, CONFIG_STRING, "", 0, 0, OFF(ssl_key_password), true,
          "password of an encrypted ssl.key.location; empty = the key is not encrypted (never shown by DescribeConfigs)" },
        { "ssl.enabled.protocols", NULL, CONFIG_STRING, "TLSv1.2,TLSv1.3", 0, 0, OFF(ssl_enabled_protocols), true,
          "TLS versions the TLS listeners accept: TLSv1.2, TLSv1.3 (older ones are refused)" },
        { "ssl.cipher.suites", NULL, CONFIG_STRING, "", 0, 0, OFF(ssl_cipher_suites), true,
          "cipher suites in OpenSSL syntax, comma or colon separated; TLS_* names are TLS 1.3 suites; empty = OpenSSL's defaults" },
        { "cluster.id", NULL, CONFIG_STRING, "", 0, 0, OFF(cluster_id), true,
          "cluster id clients see; empty = generated once and kept in <log.dirs>/meta.properties" },
        { "metrics.listener", NULL, CONFIG_STRING, "", 0, 0, OFF(metrics_listener), true,
          "host:port serving GET /metrics (Prometheus text) and GET /healthz over HTTP; port 0 picks a free one; empty = off" },
};

const size_t config_def_count = sizeof(config_defs) / sizeof(config_defs[0]);

/* Old Kafka spellings accepted for a key, with a unit multiplier. */
static const struct {
        const char *name;
        const char *target;
        int64_t multiplier;
} aliases[] = {
        { "broker.id", "node.id", 1 },
        { "log.dir", "log.dirs", 1 },
        { "log.retention.minutes", "log.retention.ms", 60000 },
        { "log.retention.hours", "log.retention.ms", 3600000 },
        { "log.roll.hours", "log.roll.ms", 3600000 },
};

/* Keys Kafka users commonly carry over that do not apply to a single Stratus broker;
 * accepted silently (they are not "unknown"). */
static const char *const ignored_keys[] = {
        "process.roles", "controller.quorum.voters", "controller.listener.names",
        "inter.broker.listener.name", "num.network.threads",
        "num.io.threads", "socket.send.buffer.bytes", "socket.receive.buffer.bytes",
        "num.recovery.threads.per.data.dir", "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor", "transaction.state.log.min.isr",
        "controller.quorum.bootstrap.servers", "offsets.topic.num.partitions",
        "offsets.topic.segment.bytes", "offsets.commit.timeout.ms",
};

const struct config_def *config_find(const char *name)
{
        for (size_t i = 0; i < config_def_count; i++)
                if (strcmp(config_defs[i].name, name) == 0)
                        return &config_defs[i];
        return NULL;
}

const struct config_def *config_find_topic(const char *topic_name)
{
        for (size_t i = 0; i < config_def_count; i++)
                if (config_defs[i].topic_name && strcmp(config_defs[i].topic_name, topic_name) == 0)
                        return &config_defs[i];
        return NULL;
}

int config_parse_value(const struct config_def *def, const char *value, int64_t *out, char *err,
                       size_t err_len)
{
        if (def->type == CONFIG_BOOL) {
                if (strcasecmp(value, "true") == 0)
                        *out = 1;
                else if (strcasecmp(value, "false") == 0)
                        *out = 0;
                else
                        goto bad;
                return 0;
        }
        if (def->type == CONFIG_STRING) {
                if (strcmp(def->name, "log.cleanup.policy") == 0 && strcmp(value, "delete") != 0 &&
                    strcmp(value, "compact") != 0 && strcmp(value, "compact,delete") != 0 &&
                    strcmp(value, "delete,compact") != 0) {
                        snprintf(err, err_len, "%s: must be delete, compact or \"compact,delete\", not \"%s\"",
                                 def->name, value);
                        return -EINVAL;
                }
                if (strcmp(def->name, "log.message.timestamp.type") == 0 &&
                    strcmp(value, "CreateTime") != 0 && strcmp(value, "LogAppendTime") != 0) {
                        snprintf(err, err_len, "%s: must be CreateTime or LogAppendTime, not \"%s\"",
                                 def->name, value);
                        return -EINVAL;
                }
                char host[256];
                int port;
                if (strcmp(def->name, "metrics.listener") == 0 && value[0] &&
                    net_parse_hostport(value, host, sizeof(host), &port) < 0) {
                        snprintf(err, err_len, "%s: \"%s\" is not host:port (e.g. 127.0.0.1:9644; empty = off)",
                                 def->name, value);
                        return -EINVAL;
                }
                if (strcmp(def->name, "ssl.enabled.protocols") == 0 &&
                    tls_parse_protocols(value, NULL, NULL, err, err_len) < 0)
                        return -EINVAL;
                *out = 0;
                return 0;
        }
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end)
                goto bad;
        if (v < def->min || v > def->max) {
                snprintf(err, err_len, "%s: %lld is out of range [%" PRId64 ", %" PRId64 "]", def->name, v,
                         def->min, def->max);
                return -EINVAL;
        }
        *out = v;
        return 0;
bad:
        snprintf(err, err_len, "%s: \"%s\" is not a valid %s", def->name, value,
                 def->type == CONFIG_BOOL ? "boolean (true or false)" : "integer");
        return -EINVAL;
}

static int set_def(struct broker_config *cfg, const struct config_def *def, const char *value,
                   char *err, size_t err_len)
{
        int64_t v;
        int rc = config_parse_value(def, value, &v, err, err_len);
        if (rc < 0)
                return rc;
        char *field = (char *)cfg + def->offset;
        switch (def->type) {
        case CONFIG_BOOL:
                *(bool *)field = v != 0;
                break;
        case CONFIG_INT:
                *(int32_t *)field = (int32_t)v;
                break;
        case CONFIG_LONG:
                *(int64_t *)field = v;
                break;
        case CONFIG_STRING:
                free(*(char **)field);
                *(char **)field = xstrdup(value);
                break;
        }
        return 0;
}

void config_init(struct broker_config *cfg)
{
        memset(cfg, 0, sizeof(*cfg));
        char err[256];
        for (size_t i = 0; i < config_def_count; i++)
                ASSERT(set_def(cfg, &config_defs[i], config_defs[i].default_value, err, sizeof(err)) == 0);
}

void config_deinit(struct broker_config *cfg)
{
        for (size_t i = 0; i < config_def_count; i++)
                if (config_defs[i].type == CONFIG_STRING) {
                        char **field = (char **)((char *)cfg + config_defs[i].offset);
                        free(*field);
                        *field = NULL;
                }
}

int config_set(struct broker_config *cfg, const char *key, const char *value, char *err, size_t err_len)
{
        const struct config_def *def = config_find(key);
        if (def)
                return set_def(cfg, def, value, err, err_len);
        for (size_t i = 0; i < ARRAY_LEN(aliases); i++) {
                if (strcmp(aliases[i].name, key) != 0)
                        continue;
                def = config_find(aliases[i].target);
                if (aliases[i].multiplier == 1)
                        return set_def(cfg, def, value, err, err_len);
                char *end;
                errno = 0;
                long long v = strtoll(value, &end, 10);
                if (errno || end == value || *end || v < -1 ||
                    (v > 0 && v > INT64_MAX / aliases[i].multiplier)) {
                        snprintf(err, err_len, "%s: \"%s\" is not a valid integer", key, value);
                        return -EINVAL;
                }
                char scaled[32];
                snprintf(scaled, sizeof(scaled), "%lld", v < 0 ? v : v * aliases[i].multiplier);
                return set_def(cfg, def, scaled, err, err_len);
        }
        for (size_t i = 0; i < ARRAY_LEN(ignored_keys); i++)
                if (strcmp(ignored_keys[i], key) == 0)
                        return 0;
        snprintf(err, err_len, "unknown configuration key %s", key);
        return -ENOENT;
}

static char *trim(char *s)
{
        while (isspace((unsigned char)*s))
                s++;
        char *e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1]))
                *--e = '\0';
        return s;
}

int config_load_file(struct broker_config *cfg, const char *path, char *err, size_t err_len)
{
        FILE *f = fopen(path, "r");
        if (!f) {
                int e = errno;
                snprintf(err, err_len, "cannot open config file %s: %s", path, strerror(e));
                return -e;
        }
        char line[8192];
        int lineno = 0, rc = 0;
        /* ms settings win over their hours/minutes aliases, as in Kafka: apply aliases
         * first by doing two passes. */
        for (int pass = 0; pass < 2 && rc == 0; pass++) {
                rewind(f);
                lineno = 0;
                while (fgets(line, sizeof(line), f)) {
                        lineno++;
                        char *s = trim(line);
                        if (!*s || *s == '#' || *s == '!')
                                continue;
                        char *sep = strpbrk(s, "=:");
                        if (!sep) {
                                snprintf(err, err_len, "%s:%d: expected key=value", path, lineno);
                                rc = -EINVAL;
                                break;
                        }
                        *sep = '\0';
                        char *key = trim(s), *value = trim(sep + 1);
                        bool is_alias = false;
                        for (size_t i = 0; i < ARRAY_LEN(aliases); i++)
                                if (strcmp(aliases[i].name, key) == 0 && aliases[i].multiplier > 1)
                                        is_alias = true;
                        if (is_alias != (pass == 0))
                                continue;
                        char msg[512];
                        int r = config_set(cfg, key, value, msg, sizeof(msg));
                        if (r == -ENOENT) {
                                log_warn("ignoring unknown configuration key %s (%s:%d)", key, path, lineno);
                        } else if (r < 0) {
                                snprintf(err, err_len, "%s:%d: %s", path, lineno, msg);
                                rc = r;
                                break;
                        }
                }
        }
        fclose(f);
        return rc;
}

int config_validate(const struct broker_config *cfg, char *err, size_t err_len)
{
        if (!cfg->log_dirs[0]) {
                snprintf(err, err_len, "log.dirs: must name a directory");
                return -EINVAL;
        }
        if (strchr(cfg->log_dirs, ',')) {
                snprintf(err, err_len, "log.dirs: \"%s\": one directory is supported per broker", cfg->log_dirs);
                return -EINVAL;
        }
        if (cfg->group_min_session_timeout_ms > cfg->group_max_session_timeout_ms) {
                snprintf(err, err_len, "group.min.session.timeout.ms (%d) must not exceed group.max.session.timeout.ms (%d)",
                         cfg->group_min_session_timeout_ms, cfg->group_max_session_timeout_ms);
                return -EINVAL;
        }
        if (cfg->message_max_bytes > cfg->socket_request_max_bytes) {
                snprintf(err, err_len, "message.max.bytes (%d) must not exceed socket.request.max.bytes (%d)",
                         cfg->message_max_bytes, cfg->socket_request_max_bytes);
                return -EINVAL;
        }
        return 0;
}

/* Secrets are never shown (DescribeConfigs, logs): keys named *.password. */
bool config_is_secret(const struct config_def *def)
{
        size_t n = strlen(def->name);
        return n >= 9 && strcmp(def->name + n - 9, ".password") == 0;
}

void config_format(const struct broker_config *cfg, const struct config_def *def, char *out, size_t out_len)
{
        const char *field = (const char *)cfg + def->offset;
        switch (def->type) {
        case CONFIG_BOOL:
                snprintf(out, out_len, "%s", *(const bool *)field ? "true" : "false");
                break;
        case CONFIG_INT:
                snprintf(out, out_len, "%d", *(const int32_t *)field);
                break;
        case CONFIG_LONG:
                snprintf(out, out_len, "%" PRId64, *(const int64_t *)field);
                break;
        case CONFIG_STRING:
                snprintf(out, out_len, "%s", config_is_secret(def) && (*(char *const *)field)[0] ? "[hidden]"
                                                                                          : *(char *const *)field);
                break;
        }
}

void config_print_help(FILE *out)
{
        for (size_t i = 0; i < config_def_count; i++) {
                const struct config_def *d = &config_defs[i];
                fprintf(out, "  %-34s %s (default: %s)\n", d->name, d->doc,
                        d->default_value[0] ? d->default_value : "empty");
        }
}
