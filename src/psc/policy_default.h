/* The built-in completion policy: the text of src/psc/policy_default.json, compiled in by
 * src/psc/gen_policy.py (policy_default.c). Internal to src/psc; psc_policy_default()
 * is the way to use it. */
#ifndef STRATUS_PSC_POLICY_DEFAULT_H
#define STRATUS_PSC_POLICY_DEFAULT_H

extern const char psc_policy_default_json[];

#endif
