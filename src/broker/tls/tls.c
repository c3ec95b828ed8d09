/* TLS server contexts with certificate reload, and sessions over non-blocking sockets;
 * see tls.h. */
#define LOG_TOPIC "tls"
#include "broker/tls/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/alloc.h"
#include "base/fileio.h"
#include "base/log.h"
#include "loop/loop.h"

#define CHECK_MS 1000
/* One TLS record of plaintext: what one SSL_write sends of a file slice. */
#define FILE_CHUNK 16384

struct file_stamp {
        struct timespec mtime;
        int64_t size;
        uint64_t ino;
};

struct tls_server {
        struct loop *loop;
        struct loop_timer *timer; /* the next file check */
        char *certificate_path;
        char *key_path;
        char *key_password;           /* "" = none */
        char *cipher_suites;          /* "" = OpenSSL's defaults */
        int min_version, max_version; /* TLS1_2_VERSION, TLS1_3_VERSION */
        char **hosts;                 /* names the listeners are reached by */
        bool *covered;                /* per host: the certificate in force covers it */
        int nhosts;
        SSL_CTX *ctx; /* in force for new handshakes (refcounted) */
        struct file_stamp cert_stamp, key_stamp;
};

struct tls_conn {
        SSL *ssl;
        char peer[64];
        uint32_t read_wants, write_wants; /* LOOP_READABLE / LOOP_WRITABLE */
        bool fatal;                       /* a protocol or socket error: no close_notify */
        uint8_t *chunk;                   /* FILE_CHUNK bytes of a file slice being sent */
        int chunk_fd;
        int64_t chunk_pos; /* file position of chunk[0] */
        size_t chunk_len, chunk_sent;
};

/* ---- errors -------------------------------------------------------------------------- */

/* The reason of the first OpenSSL error queued (the root cause) into <out>; empties
 * the error queue. */
static const char *ssl_reason(char *out, size_t len, const char *fallback)
{
        unsigned long e = ERR_peek_error();
        if (!e) {
                snprintf(out, len, "%s", fallback);
        } else {
                const char *r = ERR_reason_error_string(e);
                if (r)
                        snprintf(out, len, "%s", r);
                else
                        ERR_error_string_n(e, out, len);
        }
        ERR_clear_error();
        return out;
}

/* ---- settings ------------------------------------------------------------------------ */

int tls_parse_protocols(const char *list, int *min_version, int *max_version, char *err, size_t err_len)
{
        int lo = 0, hi = 0;
        for (const char *p = list + strspn(list, ", "); *p; p += strspn(p, ", ")) {
                size_t n = strcspn(p, ", ");
                int v = 0;
                if (n == 7 && strncmp(p, "TLSv1.2", n) == 0) {
                        v = TLS1_2_VERSION;
                } else if (n == 7 && strncmp(p, "TLSv1.3", n) == 0) {
                        v = TLS1_3_VERSION;
                } else if ((n == 5 && strncmp(p, "TLSv1", n) == 0) ||
                           (n == 7 && strncmp(p, "TLSv1.1", n) == 0) ||
                           (n == 5 && (strncmp(p, "SSLv3", n) == 0 || strncmp(p, "SSLv2", n) == 0))) {
                        snprintf(err, err_len,
                                 "ssl.enabled.protocols: %.*s is older than TLSv1.2 and refused", (int)n, p);
                        return -EINVAL;
                } else {
                        snprintf(err, err_len,
                                 "ssl.enabled.protocols: \"%.*s\" is not a protocol (TLSv1.2, TLSv1.3)",
                                 (int)MIN(n, 40), p);
                        return -EINVAL;
                }
                lo = lo ? MIN(lo, v) : v;
                hi = MAX(hi, v);
                p += n;
        }
        if (!lo) {
                snprintf(err, err_len, "ssl.enabled.protocols: empty; name TLSv1.2, TLSv1.3 or both");
                return -EINVAL;
        }
        if (min_version)
                *min_version = lo;
        if (max_version)
                *max_version = hi;
        return 0;
}

/* Applies ssl.cipher.suites: TLS 1.3 names (TLS_*) go to SSL_CTX_set_ciphersuites, the
 * rest to SSL_CTX_set_cipher_list; a version with no entry keeps OpenSSL's defaults. */
static int set_ciphers(SSL_CTX *ctx, const char *suites, char *err, size_t err_len)
{
        if (!suites[0])
                return 0;
        size_t cap = strlen(suites) + 1;
        char *v12 = xcalloc(1, cap), *v13 = xcalloc(1, cap);
        for (const char *p = suites + strspn(suites, ", :"); *p; p += strspn(p, ", :")) {
                size_t n = strcspn(p, ", :");
                char *dst = strncmp(p, "TLS_", 4) == 0 ? v13 : v12;
                if (dst[0])
                        strcat(dst, ":");
                strncat(dst, p, n);
                p += n;
        }
        int rc = 0;
        char reason[160];
        if (v12[0] && SSL_CTX_set_cipher_list(ctx, v12) != 1) {
                snprintf(err, err_len, "ssl.cipher.suites: \"%s\" selects no TLS 1.2 cipher: %s", v12,
                         ssl_reason(reason, sizeof(reason), "no match"));
                rc = -EINVAL;
        } else if (v13[0] && SSL_CTX_set_ciphersuites(ctx, v13) != 1) {
                snprintf(err, err_len, "ssl.cipher.suites: \"%s\" is not a list of TLS 1.3 cipher suites: %s",
                         v13, ssl_reason(reason, sizeof(reason), "no match"));
                rc = -EINVAL;
        }
        free(v12);
        free(v13);
        return rc;
}

static int password_cb(char *buf, int size, int rwflag, void *userdata)
{
        const char *password = userdata;
        int n = (int)strlen(password);
        if (n > size)
                return 0;
        memcpy(buf, password, (size_t)n);
        return n; /* 0 without a password: an encrypted key fails instead of prompting */
}

/* ---- certificates -------------------------------------------------------------------- */

static bool covers(X509 *cert, const char *host)
{
        unsigned char addr[16];
        if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1)
                return X509_check_ip_asc(cert, host, 0) == 1;
        return X509_check_host(cert, host, 0, 0, NULL) == 1;
}

static void describe_cert(X509 *cert, char *serial, size_t serial_len, char *subject, size_t subject_len,
                          char *not_after, size_t not_after_len)
{
        BIO *bio = BIO_new(BIO_s_mem());
        i2a_ASN1_INTEGER(bio, X509_get0_serialNumber(cert));
        int n = BIO_read(bio, serial, (int)serial_len - 1);
        serial[n > 0 ? n : 0] = '\0';
        (void)BIO_reset(bio);
        X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
        n = BIO_read(bio, subject, (int)subject_len - 1);
        subject[n > 0 ? n : 0] = '\0';
        BIO_free(bio);
        struct tm tm;
        if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1)
                strftime(not_after, not_after_len, "%Y-%m-%dT%H:%M:%SZ", &tm);
        else
                snprintf(not_after, not_after_len, "?");
}

/* Builds a context from <srv>'s files and settings. Returns 0 and *<out>, or -errno
 * with the reason in <err>. */
static int build_ctx(const struct tls_server *srv, SSL_CTX **out, char *err, size_t err_len)
{
        char reason[160];
        ERR_clear_error();
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        if (!ctx) {
                snprintf(err, err_len, "cannot create a TLS context: %s",
                         ssl_reason(reason, sizeof(reason), "?"));
                return -ENOMEM;
        }
        SSL_CTX_set_min_proto_version(ctx, srv->min_version);
        SSL_CTX_set_max_proto_version(ctx, srv->max_version);
        /* No renegotiation (a client-driven CPU cost); an EOF without close_notify is a
         * plain close, as Kafka clients often just close the socket. */
        SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                     SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
        /* Partial writes and a buffer that may move between retries (the output buffer
         * grows); idle sessions give their record buffers back. */
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_RELEASE_BUFFERS);
        SSL_CTX_set_default_passwd_cb(ctx, password_cb);
        SSL_CTX_set_default_passwd_cb_userdata(ctx, srv->key_password);
        int rc = set_ciphers(ctx, srv->cipher_suites, err, err_len);
        if (rc < 0)
                goto fail;
        rc = -EINVAL;
        if (SSL_CTX_use_certificate_chain_file(ctx, srv->certificate_path) != 1) {
                snprintf(err, err_len, "ssl.certificate.location %s: not a PEM certificate chain: %s",
                         srv->certificate_path, ssl_reason(reason, sizeof(reason), "unreadable"));
                goto fail;
        }
        /* Read apart from SSL_CTX_use_PrivateKey(), which also checks that it matches:
         * "not a key" and "not this certificate's key" are different mistakes. */
        EVP_PKEY *pkey = NULL;
        BIO *bio = BIO_new_file(srv->key_path, "r");
        if (bio)
                pkey = PEM_read_bio_PrivateKey(bio, NULL, password_cb, srv->key_password);
        BIO_free(bio);
        if (!pkey) {
                snprintf(err, err_len, "ssl.key.location %s: not a PEM private key%s: %s", srv->key_path,
                         srv->key_password[0] ? " (or a wrong ssl.key.password)"
                                              : " (an encrypted key needs ssl.key.password)",
                         ssl_reason(reason, sizeof(reason), "unreadable"));
                goto fail;
        }
        int used = SSL_CTX_use_PrivateKey(ctx, pkey);
        EVP_PKEY_free(pkey);
        if (used != 1 || SSL_CTX_check_private_key(ctx) != 1) {
                snprintf(err, err_len, "ssl.key.location %s does not match the certificate in %s: %s",
                         srv->key_path, srv->certificate_path,
                         ssl_reason(reason, sizeof(reason), "key mismatch"));
                goto fail;
        }
        X509 *cert = SSL_CTX_get0_certificate(ctx);
        if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
                char serial[80], subject[256], not_after[32];
                describe_cert(cert, serial, sizeof(serial), subject, sizeof(subject), not_after,
                              sizeof(not_after));
                snprintf(err, err_len, "ssl.certificate.location %s: the certificate serial=%s expired at %s",
                         srv->certificate_path, serial, not_after);
                goto fail;
        }
        ERR_clear_error();
        *out = ctx;
        return 0;
fail:
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return rc;
}

/* Reads both files' stamps into <cert> and <key>. Returns false when either is missing
 * (being replaced, perhaps): then nothing is compared. */
static bool read_stamps(const struct tls_server *srv, struct file_stamp *cert, struct file_stamp *key)
{
        struct stat st;
        if (stat(srv->certificate_path, &st) < 0)
                return false;
        *cert = (struct file_stamp){st.st_mtim, st.st_size, st.st_ino};
        if (stat(srv->key_path, &st) < 0)
                return false;
        *key = (struct file_stamp){st.st_mtim, st.st_size, st.st_ino};
        return true;
}

static bool same_stamp(const struct file_stamp *a, const struct file_stamp *b)
{
        return a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
               a->size == b->size && a->ino == b->ino;
}

static void log_in_force(const char *what, X509 *cert)
{
        char serial[80], subject[256], not_after[32];
        describe_cert(cert, serial, sizeof(serial), subject, sizeof(subject), not_after, sizeof(not_after));
        log_info("%s serial=%s subject=\"%s\" not_after=%s", what, serial, subject, not_after);
}

int tls_server_check(struct tls_server *srv)
{
        struct file_stamp cert_stamp, key_stamp;
        if (!read_stamps(srv, &cert_stamp, &key_stamp))
                return 0;
        if (same_stamp(&cert_stamp, &srv->cert_stamp) && same_stamp(&key_stamp, &srv->key_stamp))
                return 0;
        /* Remembered whatever the outcome: a refused pair is retried on the next change. */
        srv->cert_stamp = cert_stamp;
        srv->key_stamp = key_stamp;
        char err[512];
        SSL_CTX *ctx;
        int rc = build_ctx(srv, &ctx, err, sizeof(err));
        if (rc < 0) {
                log_error("TLS certificate not reloaded, the previous one stays in force: %s", err);
                return rc;
        }
        X509 *cert = SSL_CTX_get0_certificate(ctx);
        for (int i = 0; i < srv->nhosts; i++) {
                if (srv->covered[i] && !covers(cert, srv->hosts[i])) {
                        log_error("TLS certificate not reloaded, the previous one stays in force: the new "
                                  "certificate in %s does not cover host %s, which the one in force does",
                                  srv->certificate_path, srv->hosts[i]);
                        SSL_CTX_free(ctx);
                        return -EINVAL;
                }
        }
        for (int i = 0; i < srv->nhosts; i++)
                srv->covered[i] = covers(cert, srv->hosts[i]);
        /* Sessions hold their own reference to the old context: it goes when they do. */
        SSL_CTX_free(srv->ctx);
        srv->ctx = ctx;
        log_in_force("TLS certificate reloaded, new handshakes use", cert);
        return 1;
}

static void on_check_timer(struct loop *loop, void *arg)
{
        struct tls_server *srv = arg;
        tls_server_check(srv);
        srv->timer = loop_add_timer(loop, CHECK_MS, on_check_timer, srv);
}

int tls_server_new(const struct tls_settings *s, struct loop *loop, struct tls_server **out, char *err,
                   size_t err_len)
{
        if (!s->certificate_path[0] || !s->key_path[0]) {
                snprintf(err, err_len, "a TLS listener (SSL, SASL_SSL) needs %s: the PEM %s",
                         !s->certificate_path[0] ? "ssl.certificate.location" : "ssl.key.location",
                         !s->certificate_path[0] ? "certificate chain" : "private key");
                return -EINVAL;
        }
        struct tls_server *srv = xcalloc(1, sizeof(*srv));
        int rc =
            tls_parse_protocols(s->enabled_protocols, &srv->min_version, &srv->max_version, err, err_len);
        if (rc < 0) {
                free(srv);
                return rc;
        }
        srv->loop = loop;
        srv->certificate_path = xstrdup(s->certificate_path);
        srv->key_path = xstrdup(s->key_path);
        srv->key_password = xstrdup(s->key_password);
        srv->cipher_suites = xstrdup(s->cipher_suites);
        srv->hosts = xcalloc((size_t)s->nhosts + 1, sizeof(*srv->hosts));
        srv->covered = xcalloc((size_t)s->nhosts + 1, sizeof(*srv->covered));
        for (int i = 0; i < s->nhosts; i++)
                srv->hosts[srv->nhosts++] = xstrdup(s->hosts[i]);
        read_stamps(srv, &srv->cert_stamp, &srv->key_stamp);
        rc = build_ctx(srv, &srv->ctx, err, err_len);
        if (rc < 0) {
                tls_server_free(srv);
                return rc;
        }
        X509 *cert = SSL_CTX_get0_certificate(srv->ctx);
        for (int i = 0; i < srv->nhosts; i++) {
                srv->covered[i] = covers(cert, srv->hosts[i]);
                if (!srv->covered[i])
                        log_warn("the TLS certificate in %s does not cover host %s (clients that verify host "
                                 "names will refuse it)",
                                 srv->certificate_path, srv->hosts[i]);
        }
        log_in_force("TLS certificate loaded", cert);
        srv->timer = loop_add_timer(loop, CHECK_MS, on_check_timer, srv);
        *out = srv;
        return 0;
}

void tls_server_free(struct tls_server *srv)
{
        if (!srv)
                return;
        loop_cancel_timer(srv->loop, srv->timer);
        SSL_CTX_free(srv->ctx);
        for (int i = 0; i < srv->nhosts; i++)
                free(srv->hosts[i]);
        free(srv->hosts);
        free(srv->covered);
        free(srv->certificate_path);
        free(srv->key_path);
        free(srv->key_password);
        free(srv->cipher_suites);
        free(srv);
}

/* ---- sessions ------------------------------------------------------------------------ */

struct tls_conn *tls_conn_new(struct tls_server *srv, int fd, const char *peer)
{
        ERR_clear_error();
        SSL *ssl = SSL_new(srv->ctx);
        if (!ssl || SSL_set_fd(ssl, fd) != 1) {
                char reason[160];
                log_warn("cannot start a TLS session peer=%s: %s", peer,
                         ssl_reason(reason, sizeof(reason), "?"));
                SSL_free(ssl);
                return NULL;
        }
        SSL_set_accept_state(ssl);
        struct tls_conn *tc = xcalloc(1, sizeof(*tc));
        tc->ssl = ssl;
        tc->read_wants = LOOP_READABLE;
        tc->write_wants = LOOP_WRITABLE;
        tc->chunk_fd = -1;
        snprintf(tc->peer, sizeof(tc->peer), "%s", peer);
        return tc;
}

void tls_conn_free(struct tls_conn *tc)
{
        if (!tc)
                return;
        SSL_free(tc->ssl);
        free(tc->chunk);
        free(tc);
}

/* Logs a failed handshake once. A peer that left before its ClientHello was read (a
 * TCP health check, a port scan) is only a debug line. */
static void handshake_failed(struct tls_conn *tc, bool eof, const char *reason)
{
        if (eof && SSL_get_state(tc->ssl) == TLS_ST_BEFORE)
                log_debug("TLS connection closed before a handshake peer=%s", tc->peer);
        else
                log_warn("TLS handshake failed peer=%s: %s", tc->peer, reason);
}

/* Maps the result <ret> of an SSL call to the tls.h convention, setting *<wants>. */
static ssize_t io_result(struct tls_conn *tc, int ret, uint32_t *wants, const char *op)
{
        int e = SSL_get_error(tc->ssl, ret);
        int saved_errno = errno;
        char reason[160];
        switch (e) {
        case SSL_ERROR_WANT_READ:
                *wants = LOOP_READABLE;
                return -EAGAIN;
        case SSL_ERROR_WANT_WRITE:
                *wants = LOOP_WRITABLE;
                return -EAGAIN;
        case SSL_ERROR_ZERO_RETURN:
                ERR_clear_error();
                if (!SSL_is_init_finished(tc->ssl)) {
                        handshake_failed(tc, true, "closed by the peer");
                        return -ECONNRESET;
                }
                return 0;
        case SSL_ERROR_SYSCALL:
                tc->fatal = true;
                if (!SSL_is_init_finished(tc->ssl))
                        handshake_failed(
                            tc, saved_errno == 0,
                            ssl_reason(reason, sizeof(reason), saved_errno ? strerror(saved_errno) : "EOF"));
                ERR_clear_error();
                return saved_errno ? -saved_errno : -ECONNRESET;
        default:
                tc->fatal = true;
                bool eof = ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
                ssl_reason(reason, sizeof(reason), "protocol error");
                if (!SSL_is_init_finished(tc->ssl))
                        handshake_failed(tc, eof, reason);
                else
                        log_warn("TLS %s failed peer=%s: %s", op, tc->peer, reason);
                return -EPROTO;
        }
}

ssize_t tls_conn_read(struct tls_conn *tc, void *buf, size_t len)
{
        ERR_clear_error();
        size_t n = 0;
        int ret = SSL_read_ex(tc->ssl, buf, len, &n);
        if (ret == 1) {
                tc->read_wants = LOOP_READABLE;
                return (ssize_t)n;
        }
        return io_result(tc, ret, &tc->read_wants, "read");
}

ssize_t tls_conn_write(struct tls_conn *tc, const void *buf, size_t len)
{
        ERR_clear_error();
        size_t n = 0;
        int ret = SSL_write_ex(tc->ssl, buf, len, &n);
        if (ret == 1) {
                tc->write_wants = LOOP_WRITABLE;
                return (ssize_t)n;
        }
        ssize_t rc = io_result(tc, ret, &tc->write_wants, "write");
        return rc == 0 ? -EPIPE : rc;
}

ssize_t tls_conn_sendfile(struct tls_conn *tc, int fd, int64_t pos, size_t len)
{
        if (tc->chunk_sent == tc->chunk_len || tc->chunk_fd != fd ||
            tc->chunk_pos + (int64_t)tc->chunk_sent != pos) {
                /* A new chunk: the previous one went out whole (a retry after -EAGAIN
                 * comes back with the same fd and position and finds it here). */
                if (!tc->chunk)
                        tc->chunk = xmalloc(FILE_CHUNK);
                size_t got = 0;
                int rc = fileio_pread(fd, tc->chunk, MIN(len, (size_t)FILE_CHUNK), pos, &got);
                if (rc < 0)
                        return rc;
                if (got == 0)
                        return -EIO;
                tc->chunk_fd = fd;
                tc->chunk_pos = pos;
                tc->chunk_len = got;
                tc->chunk_sent = 0;
        }
        ssize_t n = tls_conn_write(tc, tc->chunk + tc->chunk_sent, tc->chunk_len - tc->chunk_sent);
        if (n > 0)
                tc->chunk_sent += (size_t)n;
        return n;
}

uint32_t tls_conn_read_wants(const struct tls_conn *tc)
{
        return tc->read_wants;
}

uint32_t tls_conn_write_wants(const struct tls_conn *tc)
{
        return tc->write_wants;
}

bool tls_conn_pending(const struct tls_conn *tc)
{
        return SSL_pending(tc->ssl) > 0;
}

void tls_conn_shutdown(struct tls_conn *tc)
{
        if (!tc || tc->fatal || !SSL_is_init_finished(tc->ssl))
                return;
        ERR_clear_error();
        (void)SSL_shutdown(tc->ssl); /* one try: the socket closes right after */
        ERR_clear_error();
}
