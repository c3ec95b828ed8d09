/* broker/tls: ssl.enabled.protocols parsing, and the reload rules of a tls_server
 * against self-signed certificates made here with OpenSSL (no network). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "broker/tls/tls.h"
#include "loop/loop.h"
#include "test.h"

TEST(tls_protocols_parse_and_refuse_old_versions)
{
        char err[256];
        int lo = 0, hi = 0;
        CHECK_EQ(tls_parse_protocols("TLSv1.2,TLSv1.3", &lo, &hi, err, sizeof(err)), 0);
        CHECK_EQ(lo, TLS1_2_VERSION);
        CHECK_EQ(hi, TLS1_3_VERSION);
        CHECK_EQ(tls_parse_protocols(" TLSv1.3 ", &lo, &hi, err, sizeof(err)), 0);
        CHECK_EQ(lo, TLS1_3_VERSION);
        CHECK_EQ(hi, TLS1_3_VERSION);
        CHECK_EQ(tls_parse_protocols("TLSv1.1,TLSv1.2", &lo, &hi, err, sizeof(err)), -EINVAL);
        CHECK(strstr(err, "ssl.enabled.protocols: TLSv1.1 is older than TLSv1.2"));
        CHECK_EQ(tls_parse_protocols("SSLv3", NULL, NULL, err, sizeof(err)), -EINVAL);
        CHECK_EQ(tls_parse_protocols("TLSv1.4", NULL, NULL, err, sizeof(err)), -EINVAL);
        CHECK(strstr(err, "is not a protocol"));
        CHECK_EQ(tls_parse_protocols("", NULL, NULL, err, sizeof(err)), -EINVAL);
}

/* Writes a self-signed certificate (<serial>, subjectAltName <san>, valid for <days>
 * from an hour ago) to <cert_path>, and its key to <key_path> unless that is NULL; a
 * NULL <key> makes a new one. Returns the key (the caller frees it). */
static EVP_PKEY *make_cert(const char *cert_path, const char *key_path, EVP_PKEY *key, long serial,
                           const char *san, long days)
{
        EVP_PKEY *pkey = key ? key : EVP_EC_gen("P-256");
        X509 *x = X509_new();
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
        X509_gmtime_adj(X509_getm_notBefore(x), -3600);
        X509_gmtime_adj(X509_getm_notAfter(x), days * 86400L);
        X509_set_pubkey(x, pkey);
        X509_NAME *name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"unit", -1, -1, 0);
        X509_set_issuer_name(x, name);
        X509V3_CTX v3;
        X509V3_set_ctx_nodb(&v3);
        X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
        X509_sign(x, pkey, EVP_sha256());
        /* Written elsewhere and renamed over the path: a new inode, as operators do. */
        char tmp[512];
        snprintf(tmp, sizeof(tmp), "%s.tmp", cert_path);
        FILE *f = fopen(tmp, "w");
        PEM_write_X509(f, x);
        fclose(f);
        rename(tmp, cert_path);
        if (key_path) {
                snprintf(tmp, sizeof(tmp), "%s.tmp", key_path);
                f = fopen(tmp, "w");
                PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL);
                fclose(f);
                rename(tmp, key_path);
        }
        X509_free(x);
        return pkey;
}

TEST(tls_reload_takes_a_good_pair_and_refuses_bad_ones)
{
        char cert[300], key[300], err[512];
        snprintf(cert, sizeof(cert), "%s/cert.pem", test_tmpdir);
        snprintf(key, sizeof(key), "%s/key.pem", test_tmpdir);
        EVP_PKEY_free(make_cert(cert, key, NULL, 1, "IP:127.0.0.1,DNS:localhost", 2));
        const char *hosts[] = {"127.0.0.1", "localhost"};
        struct tls_settings s = {cert, key, "", "TLSv1.2,TLSv1.3", "", hosts, 2};
        struct loop *loop = loop_new();
        struct tls_server *srv = NULL;
        int rc = tls_server_new(&s, loop, &srv, err, sizeof(err));
        if (rc < 0)
                fprintf(stderr, "  %s\n", err);
        CHECK_EQ(rc, 0);
        CHECK_EQ(tls_server_check(srv), 0); /* nothing changed */
        /* Another key: refused, and not retried until something changes again. */
        EVP_PKEY_free(make_cert(cert, NULL, NULL, 2, "IP:127.0.0.1,DNS:localhost", 2));
        CHECK_EQ(tls_server_check(srv), -EINVAL);
        CHECK_EQ(tls_server_check(srv), 0);
        /* A matching pair that no longer covers 127.0.0.1: refused. */
        EVP_PKEY_free(make_cert(cert, key, NULL, 3, "DNS:localhost", 2));
        CHECK_EQ(tls_server_check(srv), -EINVAL);
        /* Expired: refused. */
        EVP_PKEY_free(make_cert(cert, key, NULL, 4, "IP:127.0.0.1,DNS:localhost", -1));
        CHECK_EQ(tls_server_check(srv), -EINVAL);
        /* Not PEM: refused. */
        FILE *f = fopen(cert, "w");
        fputs("garbage\n", f);
        fclose(f);
        CHECK_EQ(tls_server_check(srv), -EINVAL);
        /* A good pair (with more names) is taken. */
        EVP_PKEY_free(make_cert(cert, key, NULL, 5, "IP:127.0.0.1,DNS:localhost,DNS:extra", 2));
        CHECK_EQ(tls_server_check(srv), 1);
        tls_server_free(srv);
        loop_free(loop);
}
