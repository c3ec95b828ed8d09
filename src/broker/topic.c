/* The topic catalog: topics and their partition logs, persisted as one properties
 * file per topic in <log.dirs>/.topics/ (written atomically), partitions in Kafka's
 * <log.dirs>/<topic>-<partition>/ layout. */
#define LOG_TOPIC "topic"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/fileio.h"
#include "base/log.h"
#include "broker/broker.h"
#include "broker/group/group.h"
#include "broker/storage/plog.h"
#include "broker/topic_store.h"

const char *broker_check_topic_name(const char *name, size_t len)
{
        if (len == 0)
                return "topic name is empty";
        if (len > 249)
                return "topic name is longer than 249 characters";
        if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
                return "topic name cannot be \".\" or \"..\"";
        for (size_t i = 0; i < len; i++) {
                char c = name[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-'))
                        return "topic name may contain only ASCII letters, digits, '.', '_' and '-'";
        }
        return NULL;
}

const char *const *broker_topic_config_names(void)
{
        static const char *names[32];
        if (!names[0]) {
                size_t n = 0;
                names[n++] = "compression.type";
                names[n++] = "min.insync.replicas";
                for (size_t i = 0; i < config_def_count && n < 31; i++)
                        if (config_defs[i].topic_name)
                                names[n++] = config_defs[i].topic_name;
                names[n] = NULL;
        }
        return names;
}

int broker_check_topic_config(const char *key, const char *value, char *err, size_t err_len)
{
        if (strcmp(key, "min.insync.replicas") == 0 || strcmp(key, "compression.type") == 0 ||
            strcmp(key, "unclean.leader.election.enable") == 0)
                return 0; /* accepted; a single broker has nothing to vary */
        const struct config_def *def = config_find_topic(key);
        if (!def) {
                snprintf(err, err_len, "unknown topic config %s", key);
                return -EINVAL;
        }
        int64_t v;
        char msg[256];
        if (config_parse_value(def, value, &v, msg, sizeof(msg)) < 0) {
                snprintf(err, err_len, "%s", msg);
                /* name the topic-level key the user gave, not the broker key */
                char *p = strstr(err, def->name);
                if (p == err) {
                        snprintf(err, err_len, "%s%s", key, msg + strlen(def->name));
                }
                return -EINVAL;
        }
        return 0;
}

enum config_source broker_topic_config(struct broker *broker, const struct topic *topic,
                                       const char *topic_key, char *out, size_t out_len)
{
        const char *v = topic ? map_get(&topic->configs, topic_key, strlen(topic_key)) : NULL;
        if (v) {
                snprintf(out, out_len, "%s", v);
                return CONFIG_SOURCE_TOPIC;
        }
        /* Topic keys with no broker setting behind them. */
        static const struct {
                const char *key, *value;
        } fixed[] = { { "min.insync.replicas", "1" }, { "compression.type", "producer" } };
        for (size_t i = 0; i < ARRAY_LEN(fixed); i++)
                if (strcmp(topic_key, fixed[i].key) == 0) {
                        snprintf(out, out_len, "%s", fixed[i].value);
                        return CONFIG_SOURCE_DEFAULT;
                }
        const struct config_def *def = config_find_topic(topic_key);
        if (!def) {
                out[0] = '\0';
                return CONFIG_SOURCE_DEFAULT;
        }
        config_format(&broker->cfg, def, out, out_len);
        return strcmp(out, def->default_value) == 0 ? CONFIG_SOURCE_DEFAULT : CONFIG_SOURCE_STATIC_BROKER;
}

int64_t broker_topic_config_long(struct broker *broker, const struct topic *topic, const char *key)
{
        char v[64];
        broker_topic_config(broker, topic, key, v, sizeof(v));
        return strtoll(v, NULL, 10);
}

void topic_plog_config(struct broker *broker, const struct topic *topic, struct plog_config *pc)
{
        pc->segment_bytes = broker_topic_config_long(broker, topic, "segment.bytes");
        pc->segment_ms = broker_topic_config_long(broker, topic, "segment.ms");
        pc->retention_ms = broker_topic_config_long(broker, topic, "retention.ms");
        pc->retention_bytes = broker_topic_config_long(broker, topic, "retention.bytes");
        pc->index_interval_bytes = (int32_t)broker_topic_config_long(broker, topic, "index.interval.bytes");
        pc->leader_epoch = 0;
        pc->producer_expiration_ms = broker->cfg.producer_id_expiration_ms;
        char policy[64];
        broker_topic_config(broker, topic, "cleanup.policy", policy, sizeof(policy));
        pc->cleanup_compact = strstr(policy, "compact") != NULL;
        pc->cleanup_delete = strstr(policy, "delete") != NULL;
        pc->delete_retention_ms = broker_topic_config_long(broker, topic, "delete.retention.ms");
}

static char *partition_dir(struct broker *broker, const char *topic, int32_t p)
{
        return xasprintf("%s/%s-%d", broker->data_dir, topic, p);
}

/* Longest topic name whose metadata file "<name>.properties" (and its ".tmp" while being
 * replaced) fits in NAME_MAX; longer names (Kafka allows 249) use the topic id instead,
 * and the file's name= line says which topic it is. */
#define META_NAME_MAX (255 - sizeof(".properties.tmp") + 1)

static char *meta_path(struct broker *broker, const struct topic *topic)
{
        if (strlen(topic->name) <= META_NAME_MAX)
                return xasprintf("%s/.topics/%s.properties", broker->data_dir, topic->name);
        char hex[33];
        for (int i = 0; i < 16; i++)
                snprintf(hex + 2 * i, 3, "%02x", topic->id.b[i]);
        return xasprintf("%s/.topics/%s.id.properties", broker->data_dir, hex);
}

/* Writes <path> atomically (temp file, fsync, rename, fsync of its directory). */
int write_file_atomic(const char *path, const char *text)
{
        char *dir = xstrdup(path);
        char *slash = strrchr(dir, '/');
        if (slash)
                *slash = '\0';
        int rc = fileio_replace(slash ? dir : ".", path, text, strlen(text));
        free(dir);
        return rc;
}

static int topic_save(struct broker *broker, const struct topic *topic)
{
        size_t cap = 4096, len = 0;
        char *text = xmalloc(cap);
        len += (size_t)snprintf(text + len, cap - len, "# Stratus topic metadata; written by the broker\nid=");
        for (int i = 0; i < 16; i++)
                len += (size_t)snprintf(text + len, cap - len, "%02x", topic->id.b[i]);
        len += (size_t)snprintf(text + len, cap - len, "\npartitions=%d\nname=%s\n", topic->partition_count,
                                topic->name);
        const char *key;
        void *value;
        for (size_t it = 0; map_next(&topic->configs, &it, &key, &value);) {
                size_t need = strlen(key) + strlen(value) + 16;
                if (cap - len < need) {
                        cap = cap * 2 + need;
                        text = xrealloc(text, cap);
                }
                len += (size_t)snprintf(text + len, cap - len, "config.%s=%s\n", key, (char *)value);
        }
        char *path = meta_path(broker, topic);
        int rc = write_file_atomic(path, text);
        if (rc < 0)
                log_error("cannot write topic metadata path=%s: %s", path, strerror(-rc));
        free(path);
        free(text);
        return rc;
}

static void topic_free(struct topic *topic)
{
        if (!topic)
                return;
        const char *key;
        void *value;
        for (size_t it = 0; map_next(&topic->configs, &it, &key, &value);)
                free(value);
        map_deinit(&topic->configs);
        free(topic->partitions);
        free(topic->unflushed);
        free(topic->name);
        free(topic);
}

static int open_partitions(struct broker *broker, struct topic *topic, int32_t from, bool recover)
{
        struct plog_config pc;
        topic_plog_config(broker, topic, &pc);
        for (int32_t p = from; p < topic->partition_count; p++) {
                char *dir = partition_dir(broker, topic->name, p);
                int err = 0;
                topic->partitions[p] = plog_open(dir, &pc, recover, &err);
                if (!topic->partitions[p]) {
                        log_error("cannot open partition log dir=%s: %s", dir, strerror(-err));
                        free(dir);
                        for (int32_t q = from; q < p; q++) {
                                plog_close(topic->partitions[q]);
                                topic->partitions[q] = NULL;
                        }
                        return err;
                }
                free(dir);
        }
        return 0;
}

struct topic *broker_topic(struct broker *broker, const char *name, size_t len)
{
        return map_get(&broker->topics, name, len);
}

/* ---- namespaces: the topics of a tenant without a walk over every topic ---------- */

/* The topics of one namespace, in no particular order (removal swaps the last in). */
struct topic_ns {
        struct topic **topics;
        int n, cap;
};

static size_t namespace_len(const char *name)
{
        const char *underscore = strchr(name, '_');
        return underscore ? (size_t)(underscore - name) + 1 : 0;
}

/* Makes <topic> known by name and in its namespace. */
static void add_topic(struct broker *broker, struct topic *topic)
{
        map_put(&broker->topics, topic->name, strlen(topic->name), topic);
        size_t len = namespace_len(topic->name);
        struct topic_ns *ns = map_get(&broker->namespaces, topic->name, len);
        if (!ns) {
                ns = xcalloc(1, sizeof(*ns));
                map_put(&broker->namespaces, topic->name, len, ns);
        }
        if (ns->n == ns->cap) {
                ns->cap = ns->cap ? ns->cap * 2 : 4;
                ns->topics = xrealloc(ns->topics, (size_t)ns->cap * sizeof(*ns->topics));
        }
        topic->ns_index = ns->n;
        ns->topics[ns->n++] = topic;
}

static void remove_topic(struct broker *broker, struct topic *topic)
{
        map_del(&broker->topics, topic->name, strlen(topic->name));
        size_t len = namespace_len(topic->name);
        struct topic_ns *ns = map_get(&broker->namespaces, topic->name, len);
        ASSERT(ns && topic->ns_index < ns->n && ns->topics[topic->ns_index] == topic);
        struct topic *last = ns->topics[--ns->n];
        ns->topics[topic->ns_index] = last;
        last->ns_index = topic->ns_index;
        if (ns->n == 0) {
                map_del(&broker->namespaces, topic->name, len);
                free(ns->topics);
                free(ns);
        }
}

struct topic *const *broker_namespace_topics(struct broker *broker, const char *ns_name, size_t len, int *n)
{
        const struct topic_ns *ns = map_get(&broker->namespaces, ns_name, len);
        *n = ns ? ns->n : 0;
        return ns ? ns->topics : NULL;
}

struct plog *broker_partition(struct broker *broker, struct topic *topic, int32_t partition)
{
        if (!topic || partition < 0 || partition >= topic->partition_count)
                return NULL;
        return topic->partitions[partition];
}

static struct topic *topic_new(const char *name, int32_t partitions)
{
        struct topic *topic = xcalloc(1, sizeof(*topic));
        topic->name = xstrdup(name);
        topic->partition_count = partitions;
        topic->partitions = xcalloc((size_t)partitions, sizeof(*topic->partitions));
        topic->unflushed = xcalloc((size_t)partitions, sizeof(*topic->unflushed));
        map_init(&topic->configs);
        return topic;
}

int broker_create_topic(struct broker *broker, const char *name, int32_t partitions,
                        const char *const *configs, struct topic **out)
{
        if (broker_topic(broker, name, strlen(name)))
                return -EEXIST;
        struct topic *topic = topic_new(name, partitions);
        if (getrandom(topic->id.b, sizeof(topic->id.b), 0) != sizeof(topic->id.b))
                memset(topic->id.b, 0x5a, sizeof(topic->id.b));
        topic->id.b[6] = (uint8_t)((topic->id.b[6] & 0x0f) | 0x40); /* a v4 UUID */
        topic->id.b[8] = (uint8_t)((topic->id.b[8] & 0x3f) | 0x80);
        for (int i = 0; configs && configs[i]; i += 2)
                map_put(&topic->configs, configs[i], strlen(configs[i]), xstrdup(configs[i + 1]));
        int rc = open_partitions(broker, topic, 0, false);
        if (rc == 0)
                rc = topic_save(broker, topic);
        if (rc < 0) {
                for (int32_t p = 0; p < topic->partition_count; p++)
                        if (topic->partitions[p])
                                plog_destroy(topic->partitions[p]);
                topic_free(topic);
                return rc;
        }
        add_topic(broker, topic);
        log_info("created topic=%s partitions=%d", name, partitions);
        if (out)
                *out = topic;
        return 0;
}

int broker_delete_topic(struct broker *broker, struct topic *topic)
{
        char *path = meta_path(broker, topic);
        int rc = unlink(path) < 0 ? -errno : 0;
        free(path);
        if (rc < 0 && rc != -ENOENT) {
                log_error("cannot delete topic metadata topic=%s: %s", topic->name, strerror(-rc));
                return rc;
        }
        remove_topic(broker, topic);
        /* As Kafka does, committed offsets of a deleted topic go with it. */
        if (broker->groups)
                group_coordinator_topic_deleted(broker->groups, topic->name);
        for (int32_t p = 0; p < topic->partition_count; p++) {
                int r = plog_destroy(topic->partitions[p]);
                if (r < 0)
                        log_warn("could not remove all files of topic=%s partition=%d: %s", topic->name,
                                 p, strerror(-r));
        }
        log_info("deleted topic=%s", topic->name);
        topic_free(topic);
        return 0;
}

int broker_add_partitions(struct broker *broker, struct topic *topic, int32_t total)
{
        int32_t old = topic->partition_count;
        topic->partitions = xrealloc(topic->partitions, (size_t)total * sizeof(*topic->partitions));
        topic->unflushed = xrealloc(topic->unflushed, (size_t)total * sizeof(*topic->unflushed));
        for (int32_t p = old; p < total; p++) {
                topic->partitions[p] = NULL;
                topic->unflushed[p] = 0;
        }
        topic->partition_count = total;
        int rc = open_partitions(broker, topic, old, false);
        if (rc == 0)
                rc = topic_save(broker, topic);
        if (rc < 0) {
                for (int32_t p = old; p < total; p++)
                        if (topic->partitions[p])
                                plog_destroy(topic->partitions[p]);
                topic->partition_count = old;
                return rc;
        }
        log_info("topic=%s partitions %d -> %d", topic->name, old, total);
        return 0;
}

static int parse_hex_uuid(const char *s, struct kafka_uuid *id)
{
        if (strlen(s) != 32)
                return -EINVAL;
        for (int i = 0; i < 16; i++) {
                unsigned v;
                if (sscanf(s + 2 * i, "%2x", &v) != 1)
                        return -EINVAL;
                id->b[i] = (uint8_t)v;
        }
        return 0;
}

static int topic_load(struct broker *broker, const char *name, const char *path, bool recover)
{
        FILE *f = fopen(path, "r");
        if (!f)
                return -errno;
        struct topic *topic = topic_new(name, 0);
        char line[4096];
        int rc = 0;
        while (fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\r\n")] = '\0';
                if (!line[0] || line[0] == '#')
                        continue;
                char *eq = strchr(line, '=');
                if (!eq) {
                        rc = -EINVAL;
                        break;
                }
                *eq = '\0';
                const char *value = eq + 1;
                if (strcmp(line, "id") == 0)
                        rc = parse_hex_uuid(value, &topic->id);
                else if (strcmp(line, "partitions") == 0)
                        topic->partition_count = atoi(value);
                else if (strcmp(line, "name") == 0 && value[0]) {
                        free(topic->name); /* files written before this line existed: the file name */
                        topic->name = xstrdup(value);
                }
                else if (strncmp(line, "config.", 7) == 0)
                        map_put(&topic->configs, line + 7, strlen(line + 7), xstrdup(value));
                if (rc < 0)
                        break;
        }
        fclose(f);
        if (rc == 0 && (topic->partition_count < 1 || topic->partition_count > 1000000))
                rc = -EINVAL;
        if (rc < 0) {
                log_error("corrupt topic metadata path=%s", path);
                topic_free(topic);
                return rc;
        }
        free(topic->partitions); /* topic_new() allocated them for 0 partitions */
        free(topic->unflushed);
        topic->partitions = xcalloc((size_t)topic->partition_count, sizeof(*topic->partitions));
        topic->unflushed = xcalloc((size_t)topic->partition_count, sizeof(*topic->unflushed));
        rc = open_partitions(broker, topic, 0, recover);
        if (rc < 0) {
                topic_free(topic);
                return rc;
        }
        add_topic(broker, topic);
        return 0;
}

/* Whether <dir_name> is "<topic>-<n>" for a topic we know with n in range. */
static bool partition_dir_known(struct broker *broker, const char *dir_name)
{
        const char *dash = strrchr(dir_name, '-');
        if (!dash || !dash[1])
                return false;
        char *end;
        long p = strtol(dash + 1, &end, 10);
        if (*end || p < 0)
                return false;
        struct topic *topic = broker_topic(broker, dir_name, (size_t)(dash - dir_name));
        return topic && p < topic->partition_count;
}

int topics_load(struct broker *broker, bool recover)
{
        char *dir = xasprintf("%s/.topics", broker->data_dir);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                int rc = -errno;
                log_error("cannot create %s: %s", dir, strerror(errno));
                free(dir);
                return rc;
        }
        DIR *d = opendir(dir);
        if (!d) {
                int rc = -errno;
                free(dir);
                return rc;
        }
        struct dirent *e;
        int rc = 0;
        while ((e = readdir(d)) && rc == 0) {
                size_t n = strlen(e->d_name);
                const char *suffix = ".properties";
                size_t sl = strlen(suffix);
                if (n <= sl || strcmp(e->d_name + n - sl, suffix) != 0)
                        continue;
                char *name = xstrndup(e->d_name, n - sl);
                char *path = xasprintf("%s/%s", dir, e->d_name);
                rc = topic_load(broker, name, path, recover);
                free(path);
                free(name);
        }
        closedir(d);
        free(dir);
        if (rc < 0)
                return rc;
        /* Partition directories without a topic are left from a deletion that did not
         * finish (the metadata goes first): remove them. */
        d = opendir(broker->data_dir);
        if (!d)
                return -errno;
        while ((e = readdir(d))) {
                if (e->d_name[0] == '.' || e->d_type != DT_DIR)
                        continue;
                if (!strrchr(e->d_name, '-') || partition_dir_known(broker, e->d_name))
                        continue;
                char *path = xasprintf("%s/%s", broker->data_dir, e->d_name);
                struct plog_config pc = { 0 };
                int err;
                struct plog *orphan = plog_open(path, &pc, false, &err);
                if (orphan) {
                        log_warn("removing partition directory of a deleted topic dir=%s", path);
                        plog_destroy(orphan);
                }
                free(path);
        }
        closedir(d);
        log_info("loaded topics=%zu recovered=%s", broker->topics.len, recover ? "yes" : "no");
        return 0;
}

void topics_close(struct broker *broker)
{
        const char *key;
        void *value;
        for (size_t it = 0; map_next(&broker->topics, &it, &key, &value);) {
                struct topic *topic = value;
                for (int32_t p = 0; p < topic->partition_count; p++)
                        plog_close(topic->partitions[p]);
                topic_free(topic);
        }
        map_deinit(&broker->topics);
        for (size_t it = 0; map_next(&broker->namespaces, &it, &key, &value);) {
                struct topic_ns *ns = value;
                free(ns->topics);
                free(ns);
        }
        map_deinit(&broker->namespaces);
}
