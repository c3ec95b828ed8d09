/* The satellite's own state, <data>/satellites/<id>/state.json: per PKC its revision, the
 * newest generation applied and the ports allocated once (so restarts reuse them).
 * Written atomically (a temporary file renamed over the old one). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/fileio.h"
#include "satellite/satellite.h"

static void pkc_deinit(struct state_pkc *sp)
{
        free(sp->id);
        free(sp->revision);
        free(sp->brokers);
        memset(sp, 0, sizeof(*sp));
}

void state_deinit(struct state *st)
{
        for (int i = 0; i < st->npkcs; i++)
                pkc_deinit(&st->pkcs[i]);
        free(st->pkcs);
        free(st->path);
        memset(st, 0, sizeof(*st));
}

static int port_of(json_t *obj, const char *key, const char *where, char *err, size_t err_len)
{
        json_t *v = json_object_get(obj, key);
        if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > 65535) {
                snprintf(err, err_len, "%s: %s must be a port number", where, key);
                return -EINVAL;
        }
        return (int)json_integer_value(v);
}

int state_load(struct state *st, const char *path, char *err, size_t err_len)
{
        memset(st, 0, sizeof(*st));
        st->path = xstrdup(path);
        json_error_t jerr;
        json_t *root = json_load_file(path, 0, &jerr);
        if (!root) {
                FILE *f = fopen(path, "re");
                if (!f && errno == ENOENT)
                        return 0; /* a new satellite */
                if (f)
                        fclose(f);
                snprintf(err, err_len, "%s:%d: %s", path, jerr.line, jerr.text);
                return -EINVAL;
        }
        int rc = 0;
        json_t *pkcs = json_object_get(root, "pkcs");
        if (pkcs && !json_is_object(pkcs)) {
                snprintf(err, err_len, "%s: pkcs must be an object", path);
                rc = -EINVAL;
                goto out;
        }
        const char *id;
        json_t *o;
        json_object_foreach(pkcs, id, o)
        {
                char where[300];
                snprintf(where, sizeof(where), "%s: pkcs.%s", path, id);
                struct state_pkc *sp = state_add(st, id);
                json_t *rev = json_object_get(o, "revision");
                sp->revision = json_is_string(rev) ? xstrdup(json_string_value(rev)) : NULL;
                sp->applied_generation = json_integer_value(json_object_get(o, "applied_generation"));
                if ((rc = sp->bootstrap_port = port_of(o, "bootstrap_port", where, err, err_len)) < 0)
                        goto out;
                if ((rc = sp->lb_admin_port = port_of(o, "lb_admin_port", where, err, err_len)) < 0)
                        goto out;
                json_t *brokers = json_object_get(o, "brokers");
                size_t n = json_array_size(brokers);
                sp->brokers = xcalloc(n ? n : 1, sizeof(*sp->brokers));
                sp->nbrokers = (int)n;
                for (size_t i = 0; i < n; i++) {
                        json_t *b = json_array_get(brokers, i);
                        snprintf(where, sizeof(where), "%s: pkcs.%s.brokers[%zu]", path, id, i);
                        if ((rc = sp->brokers[i].internal_port =
                                 port_of(b, "internal_port", where, err, err_len)) < 0 ||
                            (rc = sp->brokers[i].client_port =
                                 port_of(b, "client_port", where, err, err_len)) < 0 ||
                            (rc = sp->brokers[i].lb_port = port_of(b, "lb_port", where, err, err_len)) < 0)
                                goto out;
                }
        }
        rc = 0;
out:
        json_decref(root);
        return rc;
}

int state_save(const struct state *st)
{
        json_t *root = json_object();
        json_t *pkcs = json_object();
        for (int i = 0; i < st->npkcs; i++) {
                const struct state_pkc *sp = &st->pkcs[i];
                json_t *o = json_object();
                json_object_set_new(o, "revision", sp->revision ? json_string(sp->revision) : json_null());
                json_object_set_new(o, "applied_generation", json_integer(sp->applied_generation));
                json_object_set_new(o, "bootstrap_port", json_integer(sp->bootstrap_port));
                json_object_set_new(o, "lb_admin_port", json_integer(sp->lb_admin_port));
                json_t *brokers = json_array();
                for (int b = 0; b < sp->nbrokers; b++) {
                        json_t *bo = json_object();
                        json_object_set_new(bo, "internal_port", json_integer(sp->brokers[b].internal_port));
                        json_object_set_new(bo, "client_port", json_integer(sp->brokers[b].client_port));
                        json_object_set_new(bo, "lb_port", json_integer(sp->brokers[b].lb_port));
                        json_array_append_new(brokers, bo);
                }
                json_object_set_new(o, "brokers", brokers);
                json_object_set_new(pkcs, sp->id, o);
        }
        json_object_set_new(root, "pkcs", pkcs);
        char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(root);
        char *slash = strrchr(st->path, '/');
        char *dir = xstrndup(st->path, (size_t)(slash - st->path));
        int rc = fileio_replace(dir, st->path, text, strlen(text));
        free(dir);
        free(text);
        return rc;
}

struct state_pkc *state_find(struct state *st, const char *pkc_id)
{
        for (int i = 0; i < st->npkcs; i++)
                if (strcmp(st->pkcs[i].id, pkc_id) == 0)
                        return &st->pkcs[i];
        return NULL;
}

struct state_pkc *state_add(struct state *st, const char *pkc_id)
{
        struct state_pkc *sp = state_find(st, pkc_id);
        if (sp)
                return sp;
        st->pkcs = xrealloc(st->pkcs, (size_t)(st->npkcs + 1) * sizeof(*st->pkcs));
        sp = &st->pkcs[st->npkcs++];
        memset(sp, 0, sizeof(*sp));
        sp->id = xstrdup(pkc_id);
        return sp;
}

void state_remove(struct state *st, const char *pkc_id)
{
        for (int i = 0; i < st->npkcs; i++) {
                if (strcmp(st->pkcs[i].id, pkc_id) != 0)
                        continue;
                pkc_deinit(&st->pkcs[i]);
                st->pkcs[i] = st->pkcs[st->npkcs - 1];
                st->npkcs--;
                return;
        }
}
