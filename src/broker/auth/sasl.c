/* PLAIN and SCRAM server mechanisms; see sasl.h. */
#include "broker/auth/sasl.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

#define MAX_TOKEN 4096
#define NONCE_BYTES 18

struct sasl_session {
        enum sasl_mechanism mech;
        sasl_lookup_fn *lookup;
        void *ctx;
        int state;                 /* SCRAM: 0 before client-first, 1 before client-final */
        char *user;
        const void *principal;
        struct scram_credential cred;
        bool known;                /* the user exists (else a dummy credential fails at the end) */
        char *client_first_bare;
        char *server_first;
        char *nonce;               /* client nonce + server nonce */
        char *gs2_header;
};

enum sasl_mechanism sasl_mechanism_parse(const char *name, size_t len)
{
        static const struct {
                const char *name;
                enum sasl_mechanism mech;
        } names[] = { { "PLAIN", SASL_PLAIN }, { "SCRAM-SHA-256", SASL_SCRAM_SHA_256 }, { "SCRAM-SHA-512", SASL_SCRAM_SHA_512 } };
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                if (strlen(names[i].name) == len && memcmp(names[i].name, name, len) == 0)
                        return names[i].mech;
        return SASL_NONE;
}

const char *sasl_mechanism_name(enum sasl_mechanism mech)
{
        switch (mech) {
        case SASL_PLAIN:
                return "PLAIN";
        case SASL_SCRAM_SHA_256:
                return "SCRAM-SHA-256";
        case SASL_SCRAM_SHA_512:
                return "SCRAM-SHA-512";
        default:
                return "NONE";
        }
}

static const EVP_MD *md_of(enum sasl_mechanism mech)
{
        return mech == SASL_SCRAM_SHA_512 ? EVP_sha512() : EVP_sha256();
}

static int key_len(enum sasl_mechanism mech)
{
        return mech == SASL_SCRAM_SHA_512 ? 64 : 32;
}

static void hmac(enum sasl_mechanism mech, const uint8_t *key, int klen, const void *data, size_t len, uint8_t *out)
{
        unsigned int n = 0;
        HMAC(md_of(mech), key, klen, data, len, out, &n);
}

static void digest(enum sasl_mechanism mech, const uint8_t *data, size_t len, uint8_t *out)
{
        unsigned int n = 0;
        EVP_Digest(data, len, out, &n, md_of(mech), NULL);
}

int scram_credential_derive(enum sasl_mechanism mech, const char *secret, const uint8_t *salt, int salt_len,
                            int iterations, struct scram_credential *out)
{
        if ((mech != SASL_SCRAM_SHA_256 && mech != SASL_SCRAM_SHA_512) || salt_len <= 0 || salt_len > SCRAM_MAX_SALT ||
            iterations < 1)
                return -EINVAL;
        memset(out, 0, sizeof(*out));
        out->mechanism = mech;
        memcpy(out->salt, salt, (size_t)salt_len);
        out->salt_len = salt_len;
        out->iterations = iterations;
        int kl = key_len(mech);
        uint8_t salted[SCRAM_MAX_KEY], client_key[SCRAM_MAX_KEY];
        if (!PKCS5_PBKDF2_HMAC(secret, (int)strlen(secret), salt, salt_len, iterations, md_of(mech), kl, salted))
                return -EINVAL;
        hmac(mech, salted, kl, "Client Key", 10, client_key);
        digest(mech, client_key, (size_t)kl, out->stored_key);
        hmac(mech, salted, kl, "Server Key", 10, out->server_key);
        OPENSSL_cleanse(salted, sizeof(salted));
        OPENSSL_cleanse(client_key, sizeof(client_key));
        return 0;
}

struct sasl_session *sasl_session_new(enum sasl_mechanism mech, sasl_lookup_fn *lookup, void *ctx)
{
        struct sasl_session *s = xcalloc(1, sizeof(*s));
        s->mech = mech;
        s->lookup = lookup;
        s->ctx = ctx;
        return s;
}

void sasl_session_free(struct sasl_session *s)
{
        if (!s)
                return;
        free(s->user);
        free(s->client_first_bare);
        free(s->server_first);
        free(s->nonce);
        free(s->gs2_header);
        OPENSSL_cleanse(&s->cred, sizeof(s->cred));
        free(s);
}

const char *sasl_session_user(const struct sasl_session *s)
{
        return s->user;
}

const void *sasl_session_principal(const struct sasl_session *s)
{
        return s->principal;
}

static enum sasl_step failed(char *err, size_t err_len, const char *msg)
{
        snprintf(err, err_len, "%s", msg);
        return SASL_FAILED;
}

/* ---- PLAIN: [authzid] NUL authcid NUL password ---- */

static enum sasl_step plain_step(struct sasl_session *s, const uint8_t *in, size_t len, char *err, size_t err_len)
{
        const char *p = (const char *)in;
        const char *nul1 = memchr(p, 0, len);
        const char *nul2 = nul1 ? memchr(nul1 + 1, 0, len - (size_t)(nul1 + 1 - p)) : NULL;
        if (!nul1 || !nul2)
                return failed(err, err_len, "malformed PLAIN token");
        size_t user_len = (size_t)(nul2 - nul1 - 1);
        size_t pass_len = len - (size_t)(nul2 + 1 - p);
        if (user_len == 0 || user_len > 255 || pass_len > 1024 || memchr(nul2 + 1, 0, pass_len))
                return failed(err, err_len, "malformed PLAIN token");
        if (nul1 != p && ((size_t)(nul1 - p) != user_len || memcmp(p, nul1 + 1, user_len) != 0))
                return failed(err, err_len, "PLAIN: authorization id must be empty or the user");
        char user[256], pass[1025];
        memcpy(user, nul1 + 1, user_len);
        user[user_len] = '\0';
        memcpy(pass, nul2 + 1, pass_len);
        pass[pass_len] = '\0';
        const void *principal = NULL;
        const struct scram_credential *cred = s->lookup(s->ctx, user, SASL_SCRAM_SHA_256, &principal);
        if (!cred)
                cred = s->lookup(s->ctx, user, SASL_SCRAM_SHA_512, &principal);
        /* Derive even for an unknown user, so both fail in the same time. */
        struct scram_credential dummy = { .mechanism = SASL_SCRAM_SHA_256, .salt_len = 16, .iterations = SCRAM_MIN_ITERATIONS };
        const struct scram_credential *c = cred ? cred : &dummy;
        struct scram_credential got;
        int rc = scram_credential_derive(c->mechanism, pass, c->salt, c->salt_len, c->iterations, &got);
        OPENSSL_cleanse(pass, sizeof(pass));
        bool ok = rc == 0 && cred && CRYPTO_memcmp(got.stored_key, cred->stored_key, (size_t)key_len(c->mechanism)) == 0;
        OPENSSL_cleanse(&got, sizeof(got));
        if (!ok)
                return failed(err, err_len, "Authentication failed: invalid username or password");
        s->user = xstrdup(user);
        s->principal = principal;
        return SASL_DONE;
}

/* ---- SCRAM ---- */

static char *b64(const uint8_t *p, int len)
{
        char *out = xmalloc((size_t)(4 * ((len + 2) / 3) + 1));
        EVP_EncodeBlock((unsigned char *)out, p, len);
        return out;
}

/* Decodes base64 <in> into <out> (capacity <cap>); returns the length or -1. */
static int unb64(const char *in, size_t in_len, uint8_t *out, int cap)
{
        if (in_len == 0 || in_len % 4 || in_len / 4 * 3 > (size_t)cap + 2)
                return -1;
        uint8_t tmp[1024];
        if (in_len / 4 * 3 > sizeof(tmp))
                return -1;
        int n = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)in_len);
        if (n < 0)
                return -1;
        if (in[in_len - 1] == '=')
                n--;
        if (in[in_len - 2] == '=')
                n--;
        if (n > cap)
                return -1;
        memcpy(out, tmp, (size_t)n);
        return n;
}

/* The value of attribute <name>= at the start of <part> (a comma-separated field), or NULL. */
static const char *attr(const char *part, char name)
{
        return part[0] == name && part[1] == '=' ? part + 2 : NULL;
}

/* Decodes a SCRAM username ("=2C" is ',', "=3D" is '='); false when malformed. */
static bool scram_name(const char *in, size_t len, char *out, size_t cap)
{
        size_t j = 0;
        for (size_t i = 0; i < len; i++) {
                char c = in[i];
                if (c == '=') {
                        if (len - i < 3)
                                return false;
                        if (in[i + 1] == '2' && in[i + 2] == 'C')
                                c = ',';
                        else if (in[i + 1] == '3' && in[i + 2] == 'D')
                                c = '=';
                        else
                                return false;
                        i += 2;
                } else if (c == ',') {
                        return false;
                }
                if (j + 1 >= cap)
                        return false;
                out[j++] = c;
        }
        out[j] = '\0';
        return j > 0;
}

static enum sasl_step scram_first(struct sasl_session *s, const char *msg, size_t len, uint8_t **out, size_t *out_len,
                                  char *err, size_t err_len)
{
        /* gs2-header: "n,," or "y,," (no channel binding), optionally "n,a=authzid," */
        if (len < 3 || (msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',')
                return failed(err, err_len, "SCRAM: channel binding is not supported");
        const char *c2 = memchr(msg + 2, ',', len - 2);
        if (!c2)
                return failed(err, err_len, "SCRAM: malformed client-first message");
        size_t gs2_len = (size_t)(c2 + 1 - msg);
        s->gs2_header = xmalloc(gs2_len + 1);
        memcpy(s->gs2_header, msg, gs2_len);
        s->gs2_header[gs2_len] = '\0';
        const char *bare = c2 + 1;
        size_t bare_len = len - gs2_len;
        s->client_first_bare = xmalloc(bare_len + 1);
        memcpy(s->client_first_bare, bare, bare_len);
        s->client_first_bare[bare_len] = '\0';
        /* n=user,r=nonce[,extensions] */
        char *copy = xstrdup(s->client_first_bare);
        char *save = NULL;
        char *f1 = strtok_r(copy, ",", &save);
        char *f2 = f1 ? strtok_r(NULL, ",", &save) : NULL;
        const char *uname = f1 ? attr(f1, 'n') : NULL;
        const char *cnonce = f2 ? attr(f2, 'r') : NULL;
        char user[256];
        if (!uname || !cnonce || !cnonce[0] || strlen(cnonce) > 256 || !scram_name(uname, strlen(uname), user, sizeof(user))) {
                free(copy);
                return failed(err, err_len, "SCRAM: malformed client-first message");
        }
        const struct scram_credential *cred = s->lookup(s->ctx, user, s->mech, &s->principal);
        if (cred) {
                s->cred = *cred;
                s->known = true;
        } else {
                /* Go on with a random credential: an unknown user fails like a bad password. */
                s->cred.mechanism = s->mech;
                s->cred.salt_len = 16;
                RAND_bytes(s->cred.salt, 16);
                s->cred.iterations = SCRAM_MIN_ITERATIONS;
                RAND_bytes(s->cred.stored_key, SCRAM_MAX_KEY);
                RAND_bytes(s->cred.server_key, SCRAM_MAX_KEY);
        }
        s->user = xstrdup(user);
        uint8_t raw[NONCE_BYTES];
        RAND_bytes(raw, sizeof(raw));
        char *snonce = b64(raw, sizeof(raw));
        size_t nlen = strlen(cnonce) + strlen(snonce) + 1;
        s->nonce = xmalloc(nlen);
        snprintf(s->nonce, nlen, "%s%s", cnonce, snonce);
        free(snonce);
        free(copy);
        char *salt = b64(s->cred.salt, s->cred.salt_len);
        size_t sflen = strlen(s->nonce) + strlen(salt) + 40;
        s->server_first = xmalloc(sflen);
        snprintf(s->server_first, sflen, "r=%s,s=%s,i=%d", s->nonce, salt, s->cred.iterations);
        free(salt);
        *out = (uint8_t *)xstrdup(s->server_first);
        *out_len = strlen(s->server_first);
        s->state = 1;
        return SASL_CONTINUE;
}

static enum sasl_step scram_final(struct sasl_session *s, const char *msg, size_t len, uint8_t **out, size_t *out_len,
                                  char *err, size_t err_len)
{
        /* c=base64(gs2-header),r=nonce[,...],p=proof */
        const char *p = NULL;
        for (size_t i = len; i > 2; i--)
                if (msg[i - 1] == '=' && msg[i - 2] == 'p' && msg[i - 3] == ',') {
                        p = msg + i;
                        break;
                }
        if (!p)
                return failed(err, err_len, "SCRAM: malformed client-final message");
        size_t without_proof_len = (size_t)(p - 3 - msg);
        char *without_proof = xmalloc(without_proof_len + 1);
        memcpy(without_proof, msg, without_proof_len);
        without_proof[without_proof_len] = '\0';
        char *save = NULL;
        char *copy = xstrdup(without_proof);
        char *f1 = strtok_r(copy, ",", &save);
        char *f2 = f1 ? strtok_r(NULL, ",", &save) : NULL;
        const char *cb = f1 ? attr(f1, 'c') : NULL;
        const char *nonce = f2 ? attr(f2, 'r') : NULL;
        char *want_cb = b64((const uint8_t *)s->gs2_header, (int)strlen(s->gs2_header));
        /* The nonce must end with ours: Kafka accepts that, and librdkafka sends its
         * client nonce again in front of the combined one. */
        size_t nl = nonce ? strlen(nonce) : 0, sl = strlen(s->nonce);
        bool ok = cb && nonce && strcmp(cb, want_cb) == 0 && nl >= sl && strcmp(nonce + nl - sl, s->nonce) == 0;
        free(want_cb);
        free(copy);
        enum sasl_mechanism m = s->mech;
        int kl = key_len(m);
        uint8_t proof[SCRAM_MAX_KEY];
        size_t plen = len - (size_t)(p - msg);
        if (ok)
                ok = unb64(p, plen, proof, kl) == kl;
        if (!ok) {
                free(without_proof);
                return failed(err, err_len, "SCRAM: malformed client-final message");
        }
        size_t am_len = strlen(s->client_first_bare) + strlen(s->server_first) + without_proof_len + 3;
        char *auth_message = xmalloc(am_len);
        snprintf(auth_message, am_len, "%s,%s,%s", s->client_first_bare, s->server_first, without_proof);
        free(without_proof);
        uint8_t client_sig[SCRAM_MAX_KEY], client_key[SCRAM_MAX_KEY], stored[SCRAM_MAX_KEY], server_sig[SCRAM_MAX_KEY];
        hmac(m, s->cred.stored_key, kl, auth_message, strlen(auth_message), client_sig);
        for (int i = 0; i < kl; i++)
                client_key[i] = proof[i] ^ client_sig[i];
        digest(m, client_key, (size_t)kl, stored);
        bool match = CRYPTO_memcmp(stored, s->cred.stored_key, (size_t)kl) == 0 && s->known;
        hmac(m, s->cred.server_key, kl, auth_message, strlen(auth_message), server_sig);
        free(auth_message);
        OPENSSL_cleanse(client_key, sizeof(client_key));
        if (!match)
                return failed(err, err_len, "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM");
        char *v = b64(server_sig, kl);
        size_t vlen = strlen(v) + 3;
        char *final = xmalloc(vlen);
        snprintf(final, vlen, "v=%s", v);
        free(v);
        *out = (uint8_t *)final;
        *out_len = strlen(final);
        s->state = 2;
        return SASL_DONE;
}

enum sasl_step sasl_session_step(struct sasl_session *s, const uint8_t *in, size_t in_len, uint8_t **out,
                                 size_t *out_len, char *err, size_t err_len)
{
        *out = NULL;
        *out_len = 0;
        if (in_len > MAX_TOKEN)
                return failed(err, err_len, "SASL token too large");
        if (s->mech == SASL_PLAIN) {
                if (s->state != 0)
                        return failed(err, err_len, "unexpected SASL token");
                s->state = 2;
                return plain_step(s, in, in_len, err, err_len);
        }
        if (memchr(in, 0, in_len))
                return failed(err, err_len, "SCRAM: NUL in message");
        if (s->state == 0)
                return scram_first(s, (const char *)in, in_len, out, out_len, err, err_len);
        if (s->state == 1) {
                s->state = 3;
                return scram_final(s, (const char *)in, in_len, out, out_len, err, err_len);
        }
        return failed(err, err_len, "unexpected SASL token");
}
