/* Authentication glue between connections, SASL sessions and the tenants file; see
 * auth.h. */
#define LOG_TOPIC "auth"
#include "broker/auth/auth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "broker/auth/tenants.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/tenancy/tenancy.h"
#include "loop/loop.h"

#define TENANTS_CHECK_MS 1000
#define FAILURE_WINDOW_MS 60000
#define MAX_FAILURE_DELAY_MS 5000
#define MAX_TRACKED_ADDRESSES 10000

struct failures {
        int64_t window_start_ms;
        int count;
};

/* The lookup the SASL sessions use: always the tenants loaded now. */
static const struct scram_credential *lookup(void *ctx, const char *user, enum sasl_mechanism mech,
                                             const void **principal)
{
        struct broker *broker = ctx;
        return tenants_lookup(broker->tenants, user, mech, principal);
}

static bool file_changed(struct broker *broker)
{
        struct stat st;
        if (stat(broker->cfg.tenants_file, &st) < 0)
                return false; /* gone or being replaced: keep what runs */
        bool changed = st.st_mtim.tv_sec != broker->tenants_mtime.tv_sec ||
                       st.st_mtim.tv_nsec != broker->tenants_mtime.tv_nsec || st.st_size != broker->tenants_size ||
                       st.st_ino != broker->tenants_ino;
        broker->tenants_mtime = st.st_mtim;
        broker->tenants_size = st.st_size;
        broker->tenants_ino = st.st_ino;
        return changed;
}

static void reload(struct broker *broker)
{
        char err[512];
        struct tenants *t;
        if (tenants_load(broker->cfg.tenants_file, &t, err, sizeof(err)) < 0) {
                log_error("tenants file not reloaded, the previous one stays in force: %s", err);
                return;
        }
        tenants_free(broker->tenants);
        broker->tenants = t;
        tenancy_sync(broker); /* quota changes apply at once */
        /* Connections of keys that are gone are closed. */
        int closed = 0;
        for (struct conn *c = broker->conns, *next; c; c = next) {
                next = c->next;
                if (c->principal && !map_get(&t->keys, c->principal, strlen(c->principal))) {
                        log_info("closing peer=%s: API key %s was removed", c->peer, c->principal);
                        conn_close(c, "API key removed");
                        closed++;
                }
        }
        log_info("tenants file reloaded: %d tenants, %zu API keys; %d connections closed", t->ntenants, t->keys.len,
                 closed);
}

static void on_tenants_timer(struct loop *loop, void *arg)
{
        struct broker *broker = arg;
        if (file_changed(broker))
                reload(broker);
        broker->tenants_timer = loop_add_timer(loop, TENANTS_CHECK_MS, on_tenants_timer, broker);
}

void auth_check_now(struct broker *broker)
{
        if (broker->tenants && file_changed(broker))
                reload(broker);
}

int auth_start(struct broker *broker)
{
        map_init(&broker->auth_failures);
        map_init(&broker->tenant_states);
        bool sasl = false;
        for (int i = 0; i < broker->nlisteners; i++)
                sasl |= broker->listeners[i].sasl;
        if (!broker->cfg.tenants_file[0]) {
                if (sasl) {
                        log_error("a SASL listener needs tenants.file (the API keys clients authenticate with)");
                        return -EINVAL;
                }
                return 0;
        }
        char err[512];
        file_changed(broker);
        int rc = tenants_load(broker->cfg.tenants_file, &broker->tenants, err, sizeof(err));
        if (rc < 0) {
                log_error("tenants.file: %s", err);
                return rc;
        }
        log_info("tenants file loaded: %d tenants, %zu API keys", broker->tenants->ntenants, broker->tenants->keys.len);
        tenancy_sync(broker);
        broker->tenants_timer = loop_add_timer(broker->loop, TENANTS_CHECK_MS, on_tenants_timer, broker);
        return 0;
}

void auth_stop(struct broker *broker)
{
        loop_cancel_timer(broker->loop, broker->tenants_timer);
        broker->tenants_timer = NULL;
        tenants_free(broker->tenants);
        broker->tenants = NULL;
        tenancy_stop(broker);
        const char *key;
        void *value;
        for (size_t i = 0; map_next(&broker->auth_failures, &i, &key, &value);)
                free(value);
        map_deinit(&broker->auth_failures);
}

bool auth_mechanism_enabled(const struct broker *broker, enum sasl_mechanism mech)
{
        const char *list = broker->cfg.sasl_enabled_mechanisms;
        const char *name = sasl_mechanism_name(mech);
        size_t n = strlen(name);
        for (const char *p = list; *p;) {
                size_t len = strcspn(p, ", ");
                if (len == n && strncmp(p, name, n) == 0)
                        return true;
                p += len;
                p += strspn(p, ", ");
        }
        return false;
}

void auth_begin(struct conn *conn, enum sasl_mechanism mech)
{
        sasl_session_free(conn->sasl);
        conn->sasl = sasl_session_new(mech, lookup, conn->broker);
}

enum sasl_step auth_step(struct conn *conn, const uint8_t *in, size_t in_len, uint8_t **out, size_t *out_len,
                         char *err, size_t err_len)
{
        enum sasl_step step = sasl_session_step(conn->sasl, in, in_len, out, out_len, err, err_len);
        if (step == SASL_DONE) {
                const struct tenant_key *k = sasl_session_principal(conn->sasl);
                int64_t delay_ms = 0;
                if (tenancy_attach(conn, k->tenant->id, &delay_ms, err, err_len) < 0) {
                        step = SASL_FAILED; /* the tenant's connection limit */
                } else {
                        conn->authenticated = true;
                        conn->principal = xstrdup(k->key);
                        conn->tenant_id = xstrdup(k->tenant->id);
                        log_info("authenticated peer=%s key=%s tenant=%s", conn->peer, conn->principal,
                                 conn->tenant_id);
                        /* The connection-rate quota: the client waits before its first request. */
                        conn_mute(conn, delay_ms);
                }
        }
        if (step != SASL_CONTINUE) {
                sasl_session_free(conn->sasl);
                conn->sasl = NULL;
        }
        if (step == SASL_FAILED)
                log_warn("authentication failed peer=%s: %s", conn->peer, err);
        return step;
}

int64_t auth_failure_delay_ms(struct broker *broker, const struct conn *conn)
{
        /* The address without the port. */
        char ip[64];
        const char *colon = strrchr(conn->peer, ':');
        size_t len = colon ? (size_t)(colon - conn->peer) : strlen(conn->peer);
        len = MIN(len, sizeof(ip) - 1);
        memcpy(ip, conn->peer, len);
        ip[len] = '\0';
        if (broker->auth_failures.len >= MAX_TRACKED_ADDRESSES) {
                const char *key;
                void *value;
                for (size_t i = 0; map_next(&broker->auth_failures, &i, &key, &value);)
                        free(value);
                map_deinit(&broker->auth_failures);
                map_init(&broker->auth_failures);
        }
        int64_t now = clock_mono_ms();
        struct failures *f = map_get(&broker->auth_failures, ip, len);
        if (!f) {
                f = xcalloc(1, sizeof(*f));
                map_put(&broker->auth_failures, ip, len, f);
        }
        if (now - f->window_start_ms > FAILURE_WINDOW_MS) {
                f->window_start_ms = now;
                f->count = 0;
        }
        f->count++;
        int64_t delay = (int64_t)broker->cfg.connection_failed_authentication_delay_ms * f->count;
        return MIN(delay, MAX_FAILURE_DELAY_MS);
}

int auth_raw_token(struct conn *conn, const uint8_t *frame, size_t len)
{
        uint8_t *out = NULL;
        size_t out_len = 0;
        char err[256];
        enum sasl_step step = auth_step(conn, frame, len, &out, &out_len, err, sizeof(err));
        if (step == SASL_FAILED) {
                free(out);
                return -EACCES;
        }
        conn_write_raw_frame(conn, out, out_len);
        free(out);
        if (step == SASL_DONE)
                conn->sasl_raw = false;
        return 0;
}
