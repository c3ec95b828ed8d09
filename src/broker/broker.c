/* Broker lifecycle: data directory (lock, meta.properties, clean-shutdown marker,
 * producer-id blocks), listeners, timers and before-sleep work. */
#define LOG_TOPIC "broker"
#include "broker/broker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fileio.h"
#include "base/log.h"
#include "broker/auth/auth.h"
#include "broker/conn.h"
#include "broker/dispatch.h"
#include "broker/group/group.h"
#include "broker/metrics.h"
#include "broker/storage/plog.h"
#include "broker/tls/tls.h"
#include "broker/topic_store.h"
#include "loop/loop.h"
#include "loop/net.h"

#define PRODUCER_ID_BLOCK 1000
#define CLEAN_MARKER ".clean-shutdown"

static char *read_small_file(const char *path)
{
        FILE *f = fopen(path, "r");
        if (!f)
                return NULL;
        char *text = xcalloc(1, 4096);
        size_t n = fread(text, 1, 4095, f);
        text[n] = '\0';
        fclose(f);
        return text;
}

/* The value of <key> in properties <text>, copied, or NULL. */
static char *prop_get(const char *text, const char *key)
{
        size_t klen = strlen(key);
        for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
                if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
                        const char *v = line + klen + 1;
                        return xstrndup(v, strcspn(v, "\r\n"));
                }
        }
        return NULL;
}

/* meta.properties holds the cluster id and node id, like Kafka's, so a directory is
 * never silently used by another node or cluster. */
static int load_meta(struct broker *broker)
{
        char *path = xasprintf("%s/meta.properties", broker->data_dir);
        char *text = read_small_file(path);
        int rc = 0;
        if (text) {
                char *cluster = prop_get(text, "cluster.id");
                char *node = prop_get(text, "node.id");
                if (!cluster || !node) {
                        log_error("%s is missing cluster.id or node.id", path);
                        rc = -EINVAL;
                } else if (atoi(node) != broker->cfg.node_id) {
                        log_error("log.dirs %s belongs to node.id=%s, but this broker is node.id=%d",
                                  broker->data_dir, node, broker->cfg.node_id);
                        rc = -EINVAL;
                } else if (broker->cfg.cluster_id[0] && strcmp(cluster, broker->cfg.cluster_id) != 0) {
                        log_error("log.dirs %s belongs to cluster.id=%s, but cluster.id=%s is configured",
                                  broker->data_dir, cluster, broker->cfg.cluster_id);
                        rc = -EINVAL;
                } else {
                        broker->cluster_id = cluster;
                        cluster = NULL;
                }
                free(cluster);
                free(node);
                free(text);
                free(path);
                return rc;
        }
        if (broker->cfg.cluster_id[0]) {
                broker->cluster_id = xstrdup(broker->cfg.cluster_id);
        } else {
                /* 22 characters of URL-safe base64 from 16 random bytes, like Kafka's. */
                static const char b64[] =
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                uint8_t raw[16];
                if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
                        memset(raw, 7, sizeof(raw));
                char id[23];
                for (int i = 0; i < 22; i++) {
                        int bit = i * 6;
                        int v = (raw[bit / 8] << 8 | (bit / 8 + 1 < 16 ? raw[bit / 8 + 1] : 0)) >> (10 - bit % 8);
                        id[i] = b64[v & 63];
                }
                id[22] = '\0';
                broker->cluster_id = xstrdup(id);
        }
        char *out = xasprintf("# Written by stratus broker on first start\nversion=1\ncluster.id=%s\nnode.id=%d\n",
                              broker->cluster_id, broker->cfg.node_id);
        rc = write_file_atomic(path, out);
        if (rc < 0)
                log_error("cannot write %s: %s", path, strerror(-rc));
        free(out);
        free(path);
        return rc;
}

static int reserve_producer_ids(struct broker *broker)
{
        char *path = xasprintf("%s/producer-ids", broker->data_dir);
        char *text = xasprintf("next=%" PRId64 "\n", broker->producer_id_block_end + PRODUCER_ID_BLOCK);
        int rc = write_file_atomic(path, text);
        if (rc == 0)
                broker->producer_id_block_end += PRODUCER_ID_BLOCK;
        else
                log_error("cannot reserve producer ids path=%s: %s", path, strerror(-rc));
        free(text);
        free(path);
        return rc;
}

static void load_producer_ids(struct broker *broker)
{
        char *path = xasprintf("%s/producer-ids", broker->data_dir);
        char *text = read_small_file(path);
        char *next = text ? prop_get(text, "next") : NULL;
        /* Ids up to the reserved end may have been handed out before a crash: start
         * after it. */
        broker->next_producer_id = next ? strtoll(next, NULL, 10) : 0;
        broker->producer_id_block_end = broker->next_producer_id;
        free(next);
        free(text);
        free(path);
}

int64_t broker_alloc_producer_id(struct broker *broker)
{
        if (broker->next_producer_id >= broker->producer_id_block_end) {
                int rc = reserve_producer_ids(broker);
                if (rc < 0)
                        return rc;
        }
        return broker->next_producer_id++;
}

#define ACCEPT_PAUSE_MS 100

static void on_accept_resume(struct loop *loop, void *arg)
{
        struct listener *l = arg;
        l->accept_pause = NULL; /* the loop frees a fired timer */
        loop_mod_fd(loop, l->fd, LOOP_READABLE);
}

static void on_accept(struct loop *loop, int fd, uint32_t events, void *arg)
{
        struct listener *l = arg;
        for (int i = 0; i < 64; i++) {
                int cfd = net_accept(fd);
                if (cfd == -EAGAIN)
                        return;
                if (cfd == -EMFILE || cfd == -ENFILE || cfd == -ENOBUFS || cfd == -ENOMEM) {
                        /* The connection stays in the backlog; the listener is level-triggered,
                         * so asking again at once would spin. */
                        log_warn("accept failed listener=%s: %s; not accepting for %d ms (open connections "
                                 "and partitions hold descriptors: raise the open-files limit)",
                                 l->name, strerror(-cfd), ACCEPT_PAUSE_MS);
                        loop_mod_fd(loop, fd, 0);
                        l->accept_pause = loop_add_timer(loop, ACCEPT_PAUSE_MS, on_accept_resume, l);
                        return;
                }
                if (cfd < 0) {
                        log_warn("accept failed listener=%s: %s", l->name, strerror(-cfd));
                        continue; /* ECONNABORTED and the like concern that one connection */
                }
                conn_accept(l->broker, l, cfd);
        }
}

/* Sets <l>'s security protocol from listener.security.protocol.map (<map>), or from its
 * name when that is a protocol (Kafka's convention). */
static int listener_protocol(const char *map, struct listener *l, char *err, size_t err_len)
{
        const char *proto = NULL;
        char *copy = xstrdup(map);
        char *save = NULL;
        for (char *e = strtok_r(copy, ", ", &save); e; e = strtok_r(NULL, ", ", &save)) {
                char *colon = strchr(e, ':');
                if (colon && (size_t)(colon - e) == strlen(l->name) && strncmp(e, l->name, strlen(l->name)) == 0) {
                        proto = map + (colon + 1 - copy);
                        break;
                }
        }
        char value[32] = "";
        if (proto) {
                size_t n = strcspn(proto, ", ");
                snprintf(value, sizeof(value), "%.*s", (int)MIN(n, sizeof(value) - 1), proto);
        } else {
                snprintf(value, sizeof(value), "%.31s", l->name);
        }
        free(copy);
        if (strcmp(value, "PLAINTEXT") == 0) {
                l->sasl = l->tls = false;
        } else if (strcmp(value, "SASL_PLAINTEXT") == 0) {
                l->sasl = true;
                l->tls = false;
        } else if (strcmp(value, "SSL") == 0) {
                l->sasl = false;
                l->tls = true;
        } else if (strcmp(value, "SASL_SSL") == 0) {
                l->sasl = l->tls = true;
        } else if (proto) {
                snprintf(err, err_len, "listener.security.protocol.map: %s:%s is not a security protocol "
                                       "(PLAINTEXT, SASL_PLAINTEXT, SSL, SASL_SSL)", l->name, value);
                return -EINVAL;
        } else {
                snprintf(err, err_len, "listeners: %s has no security protocol: name it in "
                                       "listener.security.protocol.map (e.g. %s:SASL_PLAINTEXT)", l->name, l->name);
                return -EINVAL;
        }
        return 0;
}

/* Parses "NAME://host:port" into <l>. */
static int parse_listener(const char *spec, const char *map, struct listener *l, char *err, size_t err_len)
{
        const char *sep = strstr(spec, "://");
        if (!sep) {
                snprintf(err, err_len, "listeners: \"%s\" is not NAME://host:port", spec);
                return -EINVAL;
        }
        char host[256];
        int port;
        if (net_parse_hostport(sep + 3, host, sizeof(host), &port) < 0) {
                snprintf(err, err_len, "listeners: \"%s\" is not NAME://host:port", spec);
                return -EINVAL;
        }
        l->name = xstrndup(spec, (size_t)(sep - spec));
        if (listener_protocol(map, l, err, err_len) < 0)
                return -EINVAL;
        l->host = xstrdup(host);
        l->port = port;
        l->fd = -1;
        return 0;
}

static int setup_listeners(struct broker *broker)
{
        char err[512];
        char *specs = xstrdup(broker->cfg.listeners);
        int rc = 0;
        char *save = NULL;
        for (char *s = strtok_r(specs, ", ", &save); s && rc == 0; s = strtok_r(NULL, ", ", &save)) {
                broker->listeners = xrealloc(broker->listeners,
                                             (size_t)(broker->nlisteners + 1) * sizeof(*broker->listeners));
                struct listener *l = &broker->listeners[broker->nlisteners];
                memset(l, 0, sizeof(*l));
                l->fd = -1;
                rc = parse_listener(s, broker->cfg.listener_security_protocol_map, l, err, sizeof(err));
                if (rc < 0) {
                        free(l->name);
                        free(l->host);
                        log_error("%s", err);
                        break;
                }
                broker->nlisteners++;
                l->broker = broker;
                l->fd = net_listen(l->host, l->port, 1024);
                if (l->fd < 0) {
                        rc = l->fd;
                        log_error("cannot listen on %s: %s", s, strerror(-rc));
                        break;
                }
                l->port = net_local_port(l->fd);
        }
        free(specs);
        /* Only now that the array no longer moves may the loop hold pointers into it. */
        for (int i = 0; i < broker->nlisteners && rc == 0; i++)
                rc = loop_add_fd(broker->loop, broker->listeners[i].fd, LOOP_READABLE, on_accept, &broker->listeners[i]);
        if (rc < 0)
                return rc;
        if (broker->nlisteners == 0) {
                log_error("listeners: no listener configured");
                return -EINVAL;
        }
        /* Advertised addresses: advertised.listeners by name, else the listener itself. */
        char hostname[256] = "localhost";
        gethostname(hostname, sizeof(hostname) - 1);
        for (int i = 0; i < broker->nlisteners; i++) {
                struct listener *l = &broker->listeners[i];
                l->advertised_host = xstrdup(l->host[0] && strcmp(l->host, "0.0.0.0") != 0 ? l->host : hostname);
                l->advertised_port = l->port;
        }
        if (broker->cfg.advertised_listeners[0]) {
                specs = xstrdup(broker->cfg.advertised_listeners);
                save = NULL;
                for (char *s = strtok_r(specs, ", ", &save); s; s = strtok_r(NULL, ", ", &save)) {
                        struct listener adv = { 0 };
                        if (parse_listener(s, broker->cfg.listener_security_protocol_map, &adv, err, sizeof(err)) < 0) {
                                log_error("advertised.%s", err);
                                rc = -EINVAL;
                        } else {
                                bool found = false;
                                for (int i = 0; i < broker->nlisteners; i++) {
                                        struct listener *l = &broker->listeners[i];
                                        if (strcmp(l->name, adv.name) != 0)
                                                continue;
                                        found = true;
                                        free(l->advertised_host);
                                        l->advertised_host = xstrdup(adv.host);
                                        l->advertised_port = adv.port ? adv.port : l->port;
                                }
                                if (!found) {
                                        log_error("advertised.listeners: %s names no listener in listeners", s);
                                        rc = -EINVAL;
                                }
                        }
                        free(adv.name);
                        free(adv.host);
                }
                free(specs);
        }
        for (int i = 0; i < broker->nlisteners && rc == 0; i++)
                log_info("listening listener=%s addr=%s:%d advertised=%s:%d", broker->listeners[i].name,
                         broker->listeners[i].host[0] ? broker->listeners[i].host : "*",
                         broker->listeners[i].port, broker->listeners[i].advertised_host,
                         broker->listeners[i].advertised_port);
        return rc;
}

/* Loads ssl.* for the TLS listeners (none: nothing to do). The host names checked on
 * each certificate reload are the TLS listeners' advertised hosts. */
static int setup_tls(struct broker *broker)
{
        const char **hosts = xcalloc((size_t)broker->nlisteners + 1, sizeof(*hosts));
        int nhosts = 0;
        bool any = false;
        for (int i = 0; i < broker->nlisteners; i++) {
                struct listener *l = &broker->listeners[i];
                if (!l->tls)
                        continue;
                any = true;
                bool dup = false;
                for (int j = 0; j < nhosts; j++)
                        dup |= strcmp(hosts[j], l->advertised_host) == 0;
                if (!dup)
                        hosts[nhosts++] = l->advertised_host;
        }
        int rc = 0;
        if (any) {
                struct tls_settings s = {
                        .certificate_path = broker->cfg.ssl_certificate_location,
                        .key_path = broker->cfg.ssl_key_location,
                        .key_password = broker->cfg.ssl_key_password,
                        .enabled_protocols = broker->cfg.ssl_enabled_protocols,
                        .cipher_suites = broker->cfg.ssl_cipher_suites,
                        .hosts = hosts,
                        .nhosts = nhosts,
                };
                char err[640];
                rc = tls_server_new(&s, broker->loop, &broker->tls, err, sizeof(err));
                if (rc < 0)
                        log_error("%s", err);
                for (int i = 0; i < broker->nlisteners && rc == 0; i++)
                        if (broker->listeners[i].tls)
                                broker->listeners[i].tls_server = broker->tls;
        }
        free(hosts);
        return rc;
}

static void on_group_timer(struct loop *loop, void *arg)
{
        struct broker *broker = arg;
        broker->group_timer = NULL;
        broker->group_timer_at = INT64_MAX;
        group_coordinator_tick(broker->groups, clock_wall_ms());
}

/* Keeps one timer armed for the coordinator's earliest deadline. */
static void arm_group_timer(struct broker *broker)
{
        int64_t at = group_coordinator_next_deadline(broker->groups);
        if (at >= broker->group_timer_at)
                return;
        loop_cancel_timer(broker->loop, broker->group_timer);
        broker->group_timer_at = at;
        int64_t now = clock_wall_ms();
        broker->group_timer = loop_add_timer(broker->loop, at > now ? at - now : 0, on_group_timer, broker);
}

static void before_sleep(struct loop *loop, void *arg)
{
        struct broker *broker = arg;
        /* Answering a request starts the next one already read on its connection, which
         * may need another sync or wake fetches: repeat until none is left, or the loop
         * would sleep with answers held back. */
        while (broker->sync_waiters || broker->data_appended || broker->offset_sync_waiters ||
               broker->ready_conns) {
                if (broker->sync_waiters)
                        produce_sync_waiters(broker);
                if (broker->offset_sync_waiters)
                        offset_commit_sync_waiters(broker);
                if (broker->data_appended) {
                        broker->data_appended = false;
                        fetch_wake_waiters(broker);
                }
                conn_process_ready(broker);
        }
        arm_group_timer(broker);
        conn_free_closed(broker);
}

void broker_notify_append(struct broker *broker)
{
        broker->data_appended = true;
}

static void for_each_partition(struct broker *broker, void (*fn)(struct broker *, struct topic *, int32_t))
{
        const char *key;
        void *value;
        for (size_t it = 0; map_next(&broker->topics, &it, &key, &value);) {
                struct topic *topic = value;
                for (int32_t p = 0; p < topic->partition_count; p++)
                        fn(broker, topic, p);
        }
}

static void retention_one(struct broker *broker, struct topic *topic, int32_t p)
{
        int64_t now_ms = clock_wall_ms();
        int n = plog_enforce_retention(topic->partitions[p], now_ms);
        if (n > 0)
                log_info("retention deleted segments=%d topic=%s partition=%d", n, topic->name, p);
}

/* Compacted topics: closed segments are cleaned (the active one waits for its roll by
 * segment.bytes or segment.ms, which the retention timer does), a partition at a time on
 * a thread of its own (plog_compact_background), so that the loop never stalls on it. */
static void compact_one(struct broker *broker, struct topic *topic, int32_t p)
{
        struct plog_compact_stats st;
        if (plog_compact_background(topic->partitions[p], clock_wall_ms(), &st) == 1) /* logs what it did */
                broker->compaction_running = true;
}

#define CLEANER_POLL_MS 50 /* while a pass runs: how soon its result is swapped in */

static void on_cleaner_timer(struct loop *loop, void *arg)
{
        struct broker *broker = arg;
        broker->compaction_running = false;
        for_each_partition(broker, compact_one);
        int64_t next = broker->cfg.log_cleaner_backoff_ms;
        if (broker->compaction_running && next > CLEANER_POLL_MS)
                next = CLEANER_POLL_MS;
        loop_add_timer(loop, next, on_cleaner_timer, broker);
}

static void on_retention_timer(struct loop *loop, void *arg)
{
        struct broker *broker = arg;
        for_each_partition(broker, retention_one);
        loop_add_timer(loop, broker->cfg.log_retention_check_interval_ms, on_retention_timer, broker);
}

static void flush_one(struct broker *broker, struct topic *topic, int32_t p)
{
        if (!topic->unflushed[p])
                return;
        int rc = plog_sync(topic->partitions[p]);
        if (rc < 0)
                log_error("fsync failed topic=%s partition=%d: %s", topic->name, p, strerror(-rc));
        else
                topic->unflushed[p] = 0;
}

static void on_flush_timer(struct loop *loop, void *arg)
{
        struct broker *broker = arg;
        for_each_partition(broker, flush_one);
        loop_add_timer(loop, broker->cfg.log_flush_interval_ms, on_flush_timer, broker);
}

static void on_idle_timer(struct loop *loop, void *arg)
{
        struct broker *broker = arg;
        conn_sweep_idle(broker, loop_now_ms(loop));
        int64_t every = MIN(broker->cfg.connections_max_idle_ms / 2 + 1, 10000);
        loop_add_timer(loop, every, on_idle_timer, broker);
}

int broker_start(struct broker *broker, struct loop *loop)
{
        broker->loop = loop;
        broker->data_dir = xstrdup(broker->cfg.log_dirs);
        map_init(&broker->topics);
        map_init(&broker->namespaces);
        int rc = fileio_mkdirs(broker->data_dir);
        if (rc < 0) {
                log_error("cannot create log.dirs %s: %s", broker->data_dir, strerror(-rc));
                return rc;
        }
        char *lock = xasprintf("%s/.lock", broker->data_dir);
        int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        free(lock);
        if (lfd < 0 || flock(lfd, LOCK_EX | LOCK_NB) < 0) {
                log_error("log.dirs %s is in use by another broker (cannot lock %s/.lock)",
                          broker->data_dir, broker->data_dir);
                if (lfd >= 0)
                        close(lfd);
                return -EBUSY;
        }
        /* The lock fd stays open (and locked) for the life of the process. */
        rc = load_meta(broker);
        if (rc < 0)
                return rc;
        char *marker = xasprintf("%s/%s", broker->data_dir, CLEAN_MARKER);
        bool clean = access(marker, F_OK) == 0;
        if (clean)
                unlink(marker);
        free(marker);
        load_producer_ids(broker);
        rc = topics_load(broker, !clean);
        if (rc < 0)
                return rc;
        struct group_coordinator_config gcfg = {
                .min_session_timeout_ms = broker->cfg.group_min_session_timeout_ms,
                .max_session_timeout_ms = broker->cfg.group_max_session_timeout_ms,
                .initial_rebalance_delay_ms = broker->cfg.group_initial_rebalance_delay_ms,
                .max_size = broker->cfg.group_max_size,
                .offset_metadata_max_bytes = broker->cfg.offset_metadata_max_bytes,
                .offsets_retention_ms = broker->cfg.offsets_retention_minutes * 60000,
                .offsets_retention_check_interval_ms = broker->cfg.offsets_retention_check_interval_ms,
        };
        char *groups_dir = xasprintf("%s/.groups", broker->data_dir);
        rc = group_coordinator_open(groups_dir, &gcfg, clock_wall_ms(), &broker->groups);
        free(groups_dir);
        if (rc < 0)
                return rc;
        broker->group_timer_at = INT64_MAX;
        rc = setup_listeners(broker);
        if (rc < 0)
                return rc;
        rc = setup_tls(broker);
        if (rc < 0)
                return rc;
        rc = auth_start(broker);
        if (rc < 0)
                return rc;
        rc = broker_metrics_start(broker);
        if (rc < 0)
                return rc;
        loop_before_sleep(loop, before_sleep, broker);
        loop_add_timer(loop, broker->cfg.log_retention_check_interval_ms, on_retention_timer, broker);
        loop_add_timer(loop, broker->cfg.log_cleaner_backoff_ms, on_cleaner_timer, broker);
        loop_add_timer(loop, MIN(broker->cfg.connections_max_idle_ms / 2 + 1, 10000), on_idle_timer, broker);
        if (broker->cfg.log_flush_interval_ms > 0)
                loop_add_timer(loop, broker->cfg.log_flush_interval_ms, on_flush_timer, broker);
        broker->started = true;
        log_info("broker started node.id=%d cluster.id=%s log.dirs=%s", broker->cfg.node_id,
                 broker->cluster_id, broker->data_dir);
        return 0;
}

void broker_stop(struct broker *broker)
{
        broker_metrics_stop(broker);
        while (broker->conns)
                conn_close(broker->conns, "shutdown");
        broker->ready_conns = NULL; /* all closed: nothing left to process */
        conn_free_closed(broker);
        for (int i = 0; i < broker->nlisteners; i++) {
                struct listener *l = &broker->listeners[i];
                loop_cancel_timer(broker->loop, l->accept_pause);
                if (l->fd >= 0) {
                        loop_del_fd(broker->loop, l->fd);
                        close(l->fd);
                }
                free(l->name);
                free(l->host);
                free(l->advertised_host);
        }
        free(broker->listeners);
        broker->listeners = NULL;
        broker->nlisteners = 0;
        tls_server_free(broker->tls); /* after the connections: their sessions hold the context */
        broker->tls = NULL;
        loop_cancel_timer(broker->loop, broker->group_timer);
        broker->group_timer = NULL;
        auth_stop(broker);
        group_coordinator_close(broker->groups);
        broker->groups = NULL;
        if (broker->data_dir) {
                topics_close(broker);
        }
        if (broker->started) {
                char *marker = xasprintf("%s/%s", broker->data_dir, CLEAN_MARKER);
                if (write_file_atomic(marker, "clean\n") == 0)
                        log_info("broker stopped cleanly");
                free(marker);
        }
        free(broker->data_dir);
        free(broker->cluster_id);
        broker->data_dir = NULL;
        broker->cluster_id = NULL;
}

void broker_reload_files(struct broker *broker)
{
        log_info("SIGHUP: checking tenants.file and the TLS certificate");
        auth_check_now(broker);
        if (broker->tls)
                tls_server_check(broker->tls);
}
