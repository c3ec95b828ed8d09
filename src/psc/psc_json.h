/* JSON reading and writing helpers shared by psc.c, status.c and complete.c; internal to
 * src/psc (the module's contract is psc.h). Every reader names the JSON path of what it
 * rejects ("tenants[2].api_keys[0].scram_sha_256.salt") in <err>. */
#ifndef STRATUS_PSC_PSC_JSON_H
#define STRATUS_PSC_PSC_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses <json, len> into a new reference (duplicate keys refused). Returns NULL with
 * <err> ("<what>: line L column C: ...") when it is not JSON or not an object. */
json_t *pj_load(const char *json, size_t len, const char *what, char *err, size_t err_len);

/* "<path>.<name>" (or "<name>" when <path> is empty) into <buf>; returns <buf>. */
const char *pj_join(char *buf, size_t size, const char *path, const char *name);

/* Checks that <obj> (at <path>) is an object whose keys are all in the NULL-terminated
 * <known>. Returns 0 or -EINVAL naming every unknown field. */
int pj_fields(json_t *obj, const char *path, const char *const *known, char *err, size_t err_len);

/* Field readers: <obj>.<name> at <path>. Absent (or null) leaves *<out> as it is and is
 * an error only when <required>. Returns 0 or -EINVAL. Strings are heap copies in *<out>
 * (any previous value is freed) and must be non-empty. */
int pj_string(json_t *obj, const char *path, const char *name, bool required, char **out, char *err,
              size_t err_len);
int pj_integer(json_t *obj, const char *path, const char *name, bool required, int64_t min, int64_t max,
               int64_t *out, char *err, size_t err_len);
int pj_number(json_t *obj, const char *path, const char *name, bool required, double min, double max,
              double *out, char *err, size_t err_len);
int pj_bool(json_t *obj, const char *path, const char *name, bool required, bool *out, char *err,
            size_t err_len);

/* A JSON number for <v>: an integer when <v> is integral (so 100 prints as 100, not
 * 100.0), else a real. */
json_t *pj_num(double v);
/* Sets <obj>.<name> = <value> (taken) when <value> is not NULL. */
void pj_set(json_t *obj, const char *name, json_t *value);
/* Sets <obj>.<name> to the string <s> when <s> is not NULL. */
void pj_set_str(json_t *obj, const char *name, const char *s);
/* The text of <root> (heap, indented by 2, keys in insertion order); takes <root>. */
char *pj_dump(json_t *root);

#endif
