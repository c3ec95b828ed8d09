/* JSON helpers for the PSC module over jansson; see psc_json.h. */
#include "psc/psc_json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"

#define ERR(...) ((err && err_len) ? (void)snprintf(err, err_len, __VA_ARGS__) : (void)0)

json_t *pj_load(const char *json, size_t len, const char *what, char *err, size_t err_len)
{
        json_error_t jerr;
        json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                ERR("%s: not valid JSON: line %d column %d: %s", what, jerr.line, jerr.column, jerr.text);
                return NULL;
        }
        if (!json_is_object(root)) {
                ERR("%s: must be a JSON object", what);
                json_decref(root);
                return NULL;
        }
        return root;
}

const char *pj_join(char *buf, size_t size, const char *path, const char *name)
{
        if (path && path[0])
                snprintf(buf, size, "%s.%s", path, name);
        else
                snprintf(buf, size, "%s", name);
        return buf;
}

int pj_fields(json_t *obj, const char *path, const char *const *known, char *err, size_t err_len)
{
        if (!json_is_object(obj)) {
                ERR("%s: must be an object", path && path[0] ? path : "document");
                return -EINVAL;
        }
        char unknown[512] = "";
        size_t used = 0;
        int n = 0;
        const char *key;
        json_t *value;
        json_object_foreach(obj, key, value)
        {
                bool ok = false;
                for (int i = 0; known[i] && !ok; i++)
                        ok = strcmp(known[i], key) == 0;
                if (ok)
                        continue;
                if (used < sizeof(unknown))
                        used += (size_t)snprintf(unknown + used, sizeof(unknown) - used, "%s\"%s\"",
                                                 n ? ", " : "", key);
                n++;
        }
        if (n == 0)
                return 0;
        char known_list[512] = "";
        size_t kused = 0;
        for (int i = 0; known[i] && kused < sizeof(known_list); i++)
                kused += (size_t)snprintf(known_list + kused, sizeof(known_list) - kused, "%s%s",
                                          i ? ", " : "", known[i]);
        if (path && path[0])
                ERR("%s: unknown field%s %s (known: %s)", path, n > 1 ? "s" : "", unknown, known_list);
        else
                ERR("unknown top-level field%s %s (known: %s)", n > 1 ? "s" : "", unknown, known_list);
        return -EINVAL;
}

/* <obj>.<name>, or NULL when absent or null; *<missing> set when absent and required. */
static json_t *field(json_t *obj, const char *path, const char *name, bool required, char *where,
                     size_t where_len, int *rc, char *err, size_t err_len)
{
        pj_join(where, where_len, path, name);
        json_t *v = json_object_get(obj, name);
        *rc = 0;
        if (!v || json_is_null(v)) {
                if (required) {
                        ERR("%s: missing (required)", where);
                        *rc = -EINVAL;
                }
                return NULL;
        }
        return v;
}

int pj_string(json_t *obj, const char *path, const char *name, bool required, char **out, char *err,
              size_t err_len)
{
        char where[256];
        int rc;
        json_t *v = field(obj, path, name, required, where, sizeof(where), &rc, err, err_len);
        if (!v)
                return rc;
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            strlen(json_string_value(v)) != json_string_length(v)) {
                ERR("%s: must be a non-empty string", where);
                return -EINVAL;
        }
        free(*out);
        *out = xstrdup(json_string_value(v));
        return 0;
}

int pj_integer(json_t *obj, const char *path, const char *name, bool required, int64_t min, int64_t max,
               int64_t *out, char *err, size_t err_len)
{
        char where[256];
        int rc;
        json_t *v = field(obj, path, name, required, where, sizeof(where), &rc, err, err_len);
        if (!v)
                return rc;
        if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
                ERR("%s: must be an integer from %lld to %lld", where, (long long)min, (long long)max);
                return -EINVAL;
        }
        *out = json_integer_value(v);
        return 0;
}

int pj_number(json_t *obj, const char *path, const char *name, bool required, double min, double max,
              double *out, char *err, size_t err_len)
{
        char where[256];
        int rc;
        json_t *v = field(obj, path, name, required, where, sizeof(where), &rc, err, err_len);
        if (!v)
                return rc;
        if (!json_is_number(v) || !(json_number_value(v) >= min && json_number_value(v) <= max)) {
                ERR("%s: must be a number from %g to %g", where, min, max);
                return -EINVAL;
        }
        *out = json_number_value(v);
        return 0;
}

int pj_bool(json_t *obj, const char *path, const char *name, bool required, bool *out, char *err,
            size_t err_len)
{
        char where[256];
        int rc;
        json_t *v = field(obj, path, name, required, where, sizeof(where), &rc, err, err_len);
        if (!v)
                return rc;
        if (!json_is_boolean(v)) {
                ERR("%s: must be true or false", where);
                return -EINVAL;
        }
        *out = json_is_true(v);
        return 0;
}

json_t *pj_num(double v)
{
        if (isfinite(v) && v == floor(v) && fabs(v) < 9007199254740992.0)
                return json_integer((json_int_t)v);
        return json_real(v);
}

void pj_set(json_t *obj, const char *name, json_t *value)
{
        if (value)
                json_object_set_new(obj, name, value);
}

void pj_set_str(json_t *obj, const char *name, const char *s)
{
        if (s)
                json_object_set_new(obj, name, json_string(s));
}

char *pj_dump(json_t *root)
{
        /* 15 significant digits: 0.1 prints as 0.1, and printing what was parsed gives
         * the same text again. */
        char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
        json_decref(root);
        ASSERT(text);
        return text; /* jansson allocates with malloc(): the caller free()s it */
}
