/* SASL server mechanisms for Kafka clients: PLAIN and SCRAM-SHA-256/512 (RFC 5802,
 * RFC 7677), checked against salted SCRAM credentials only: secrets are never stored,
 * PLAIN derives the SCRAM keys from the password it receives and compares them in
 * constant time. Pure functions of the tokens (OpenSSL for hashing), unit-tested without
 * a network. */
#ifndef STRATUS_BROKER_AUTH_SASL_H
#define STRATUS_BROKER_AUTH_SASL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sasl_mechanism { SASL_NONE = 0, SASL_PLAIN, SASL_SCRAM_SHA_256, SASL_SCRAM_SHA_512 };

#define SCRAM_MAX_KEY 64  /* SHA-512 */
#define SCRAM_MAX_SALT 128
#define SCRAM_MIN_ITERATIONS 4096

struct scram_credential {
        enum sasl_mechanism mechanism; /* SCRAM_SHA_256 or SCRAM_SHA_512 */
        uint8_t salt[SCRAM_MAX_SALT];
        int salt_len;
        int iterations;
        uint8_t stored_key[SCRAM_MAX_KEY];
        uint8_t server_key[SCRAM_MAX_KEY];
};

/* The credential of <user> for SCRAM mechanism <mech> (PLAIN asks for SHA-256 first,
 * then SHA-512), or NULL. *<principal> is set to what identifies the user afterwards. */
typedef const struct scram_credential *sasl_lookup_fn(void *ctx, const char *user, enum sasl_mechanism mech,
                                                      const void **principal);

/* The mechanism named <name, len> ("PLAIN", "SCRAM-SHA-256", ...), or SASL_NONE. */
enum sasl_mechanism sasl_mechanism_parse(const char *name, size_t len);
const char *sasl_mechanism_name(enum sasl_mechanism mech);

enum sasl_step { SASL_CONTINUE, SASL_DONE, SASL_FAILED };

struct sasl_session;

struct sasl_session *sasl_session_new(enum sasl_mechanism mech, sasl_lookup_fn *lookup, void *ctx);
void sasl_session_free(struct sasl_session *s);
/* Feeds one client token. *<out> (heap, caller frees; may be NULL with length 0) is the
 * token to send back, also after SASL_FAILED when the mechanism has one. A failure's
 * reason, for the log and the client, goes to <err>. */
enum sasl_step sasl_session_step(struct sasl_session *s, const uint8_t *in, size_t in_len, uint8_t **out,
                                 size_t *out_len, char *err, size_t err_len);
/* After SASL_DONE: the authenticated user and its principal. */
const char *sasl_session_user(const struct sasl_session *s);
const void *sasl_session_principal(const struct sasl_session *s);

/* Derives the SCRAM credential of <secret> (what a tenants file stores). Returns 0 or
 * -EINVAL. */
int scram_credential_derive(enum sasl_mechanism mech, const char *secret, const uint8_t *salt, int salt_len,
                            int iterations, struct scram_credential *out);

#endif
