/* API keys: POST/GET /v1/clusters/{id}/api-keys, DELETE .../api-keys/{key}. The secret is
 * returned once; the store keeps only salted SCRAM-SHA-256 and SCRAM-SHA-512 credentials
 * (RFC 5802: SaltedPassword = PBKDF2(secret, salt, 4096), StoredKey = H(HMAC(SaltedPassword,
 * "Client Key")), ServerKey = HMAC(SaltedPassword, "Server Key")), as the brokers'
 * tenants file wants them (docs/tenancy.md). */
#define LOG_TOPIC "api"
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "http/server.h"
#include "mothership/mothership.h"

#define SCRAM_ITERATIONS 4096
#define SALT_BYTES       16
#define KEY_CHARS        16
#define SECRET_CHARS     64

static void b64(const unsigned char *in, int len, char *out, size_t out_len)
{
        ASSERT((size_t)((len + 2) / 3 * 4 + 1) <= out_len);
        EVP_EncodeBlock((unsigned char *)out, in, len);
}

static void scram_credential(const char *secret, const EVP_MD *md, struct store_scram *out)
{
        unsigned char salt[SALT_BYTES], salted[EVP_MAX_MD_SIZE], client_key[EVP_MAX_MD_SIZE],
            stored_key[EVP_MAX_MD_SIZE], server_key[EVP_MAX_MD_SIZE];
        int md_len = EVP_MD_get_size(md);
        unsigned int n;
        ASSERT(RAND_bytes(salt, sizeof(salt)) == 1);
        ASSERT(PKCS5_PBKDF2_HMAC(secret, (int)strlen(secret), salt, sizeof(salt), SCRAM_ITERATIONS, md,
                                 md_len, salted) == 1);
        ASSERT(HMAC(md, salted, md_len, (const unsigned char *)"Client Key", 10, client_key, &n));
        ASSERT(EVP_Digest(client_key, (size_t)md_len, stored_key, &n, md, NULL) == 1);
        ASSERT(HMAC(md, salted, md_len, (const unsigned char *)"Server Key", 10, server_key, &n));
        b64(salt, sizeof(salt), out->salt, sizeof(out->salt));
        out->iterations = SCRAM_ITERATIONS;
        b64(stored_key, md_len, out->stored_key, sizeof(out->stored_key));
        b64(server_key, md_len, out->server_key, sizeof(out->server_key));
}

static json_t *key_json(const struct store_api_key *k)
{
        char created[32];
        api_time(k->created_at_ms, created);
        return json_pack("{s:s, s:s, s:s}", "key", k->key, "cluster_id", k->lkc_id, "created_at", created);
}

/* Loads the LKC {id}; replies 404 when there is none. */
static bool load_cluster(struct api_req *req, struct store_lkc *lkc)
{
        int rc = strlen(req->id) <= STORE_ID_MAX ? store_lkc_get(req->ms->store, req->id, lkc) : -ENOENT;
        if (rc == 0)
                return true;
        if (rc == -ENOENT)
                api_error(req, 404, "not_found", "id", "no logical cluster %s (GET /v1/clusters lists them)",
                          req->id);
        else
                api_error(req, 500, "internal", NULL, "the store failed: see the mothership log");
        return false;
}

/* Bumps the LKC's resource_version and rewrites its PKC's PSC. */
static int keys_changed(struct api_req *req, struct store_lkc *lkc)
{
        lkc->resource_version++;
        lkc->updated_at_ms = clock_wall_ms();
        char err[512];
        int rc = store_lkc_update(req->ms->store, lkc);
        if (rc == 0)
                rc = provision_pkc_changed(req->ms, lkc->pkc_id, NULL, err, sizeof(err));
        if (rc < 0)
                api_error(req, 500, "internal", NULL, "the keys could not be stored: %s",
                          rc == -EINVAL ? err : "see the mothership log");
        return rc;
}

void api_key_create(struct api_req *req)
{
        static const char *const fields[] = {NULL};
        struct store_lkc lkc;
        if (!load_cluster(req, &lkc) || !api_check_fields(req, fields))
                return;
        if (lkc.deleting) {
                api_error(req, 409, "conflict", NULL, "logical cluster %s is being deleted", lkc.id);
                return;
        }
        struct store_api_key k;
        memset(&k, 0, sizeof(k));
        char secret[SECRET_CHARS + 1];
        provision_random_text(secret, SECRET_CHARS, false);
        snprintf(k.lkc_id, sizeof(k.lkc_id), "%s", lkc.id);
        k.created_at_ms = clock_wall_ms();
        scram_credential(secret, EVP_sha256(), &k.sha256);
        scram_credential(secret, EVP_sha512(), &k.sha512);
        int rc = -EEXIST;
        for (int attempt = 0; attempt < 8 && rc == -EEXIST; attempt++) {
                provision_random_text(k.key, KEY_CHARS, true);
                rc = store_api_key_insert(req->ms->store, &k);
        }
        if (rc < 0) {
                api_error(req, 500, "internal", NULL, "the store failed: see the mothership log");
                return;
        }
        if (keys_changed(req, &lkc) < 0)
                return;
        json_t *obj = key_json(&k);
        /* An idempotent replay returns the key without its secret: the secret is stored
         * nowhere (docs/api.md "Idempotency"). */
        json_object_set_new(obj, "secret", json_null());
        req->idem_response = json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_object_set_new(obj, "secret", json_string(secret));
        char location[96];
        snprintf(location, sizeof(location), "/v1/clusters/%s/api-keys/%s", lkc.id, k.key);
        http_reply_header(req->reply, "Location", location);
        log_info("api key created cluster=%s key=%s", lkc.id, k.key);
        api_json(req, 201, obj);
        memset(secret, 0, sizeof(secret));
}

void api_key_list(struct api_req *req)
{
        struct store_lkc lkc;
        struct api_page page;
        if (!load_cluster(req, &lkc) || !api_page_parse(req, &page))
                return;
        struct store_api_key *keys = NULL;
        int n = store_api_key_list(req->ms->store, lkc.id, page.after_seq, page.size + 1, &keys);
        if (n < 0) {
                api_error(req, 500, "internal", NULL, "the store failed: see the mothership log");
                return;
        }
        bool more = n > page.size;
        if (more)
                n = page.size;
        json_t *items = json_array();
        for (int i = 0; i < n; i++)
                json_array_append_new(items, key_json(&keys[i]));
        json_t *list = json_pack("{s:o}", "api_keys", items);
        api_page_finish(list, more, n ? keys[n - 1].seq : 0);
        free(keys);
        api_json(req, 200, list);
}

void api_key_delete(struct api_req *req)
{
        struct store_lkc lkc;
        if (!load_cluster(req, &lkc))
                return;
        int rc =
            strlen(req->key) == KEY_CHARS ? store_api_key_delete(req->ms->store, lkc.id, req->key) : -ENOENT;
        if (rc == -ENOENT) {
                api_error(req, 404, "not_found", "key", "cluster %s has no API key %s", lkc.id, req->key);
                return;
        }
        if (rc < 0) {
                api_error(req, 500, "internal", NULL, "the store failed: see the mothership log");
                return;
        }
        if (lkc.deleting || keys_changed(req, &lkc) == 0) {
                log_info("api key deleted cluster=%s key=%s", lkc.id, req->key);
                free(req->reply->body);
                req->reply->body = NULL;
                req->reply->body_len = 0;
                req->reply->status = 204;
        }
}
