/* TLS for the broker's SSL and SASL_SSL listeners, over OpenSSL 3.
 *
 * A tls_server holds the SSL_CTX in force, built from PEM files (certificate chain,
 * private key). It checks the files every second; on a change it builds a new context
 * and swaps it in only when the new pair loads, matches, has not expired and still
 * covers every host name the old certificate covered. Sessions already open keep a
 * reference to the context they started with, so a swap drops nothing.
 *
 * A tls_conn is one connection's session over a non-blocking socket: the handshake
 * happens inside the first reads, and each read or write that would block says which
 * socket event it waits for (a write may wait for readability and a read for
 * writability). Loop thread only. */
#ifndef STRATUS_BROKER_TLS_TLS_H
#define STRATUS_BROKER_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct loop;
struct tls_server;
struct tls_conn;

struct tls_settings {
        const char *certificate_path;  /* ssl.certificate.location: PEM chain, leaf first */
        const char *key_path;          /* ssl.key.location: PEM private key */
        const char *key_password;      /* ssl.key.password; "" = unencrypted key */
        const char *enabled_protocols; /* ssl.enabled.protocols: TLSv1.2 and/or TLSv1.3 */
        const char *cipher_suites;     /* ssl.cipher.suites, OpenSSL syntax; "" = defaults */
        const char *const *hosts;      /* names the TLS listeners are reached by */
        int nhosts;
};

/* Checks an ssl.enabled.protocols list (commas/spaces; TLSv1.2, TLSv1.3). Returns 0
 * and the lowest and highest as TLS1_2_VERSION/TLS1_3_VERSION (either may be NULL),
 * or -EINVAL with a message naming the key in <err>. */
int tls_parse_protocols(const char *list, int *min_version, int *max_version, char *err, size_t err_len);

/* Loads the files named by <s> and starts checking them every second on <loop>; copies
 * what it keeps of <s>. Returns 0 and *<out>, or -errno with a message in <err>. */
int tls_server_new(const struct tls_settings *s, struct loop *loop, struct tls_server **out, char *err,
                   size_t err_len);
/* Stops the checks and drops the server's reference to its context. */
void tls_server_free(struct tls_server *srv);
/* What the timer does: when either file changed since the last look, tries a reload.
 * Returns 1 when a new context is in force, 0 when nothing changed, -errno when the
 * change was refused (logged once; the old context stays and the next change retries). */
int tls_server_check(struct tls_server *srv);

/* A server session on accepted non-blocking socket <fd>, using the context in force;
 * <peer> ("ip:port") is copied for log lines. NULL when OpenSSL cannot make one. */
struct tls_conn *tls_conn_new(struct tls_server *srv, int fd, const char *peer);
void tls_conn_free(struct tls_conn *tc);

/* Reads up to <len> bytes of plaintext, handshaking first. Returns n > 0; 0 when the
 * peer closed; -EAGAIN (wait for tls_conn_read_wants()); another -errno when the
 * connection must close (a failed handshake is logged once: a warning, or a debug line
 * when the peer left before its ClientHello, like a TCP health check). */
ssize_t tls_conn_read(struct tls_conn *tc, void *buf, size_t len);
/* Writes up to <len> bytes; returns the bytes taken (n > 0), -EAGAIN (wait for
 * tls_conn_write_wants(), then call again with at least the same bytes) or -errno. */
ssize_t tls_conn_write(struct tls_conn *tc, const void *buf, size_t len);
/* Writes up to <len> bytes of file <fd> from <pos> through a bounded buffer (pread then
 * SSL_write: the kernel's sendfile() cannot encrypt). Returns the file bytes taken
 * (n > 0), -EAGAIN, -EIO when the file is shorter, or -errno. After -EAGAIN call again
 * with the same <fd> and <pos>. */
ssize_t tls_conn_sendfile(struct tls_conn *tc, int fd, int64_t pos, size_t len);

/* LOOP_READABLE or LOOP_WRITABLE: what the last read, or write, that returned -EAGAIN
 * waits for (LOOP_READABLE, and LOOP_WRITABLE, before any). */
uint32_t tls_conn_read_wants(const struct tls_conn *tc);
uint32_t tls_conn_write_wants(const struct tls_conn *tc);
/* Whether decrypted bytes wait inside OpenSSL: the socket will not report them, so a
 * reader that paused must read again without waiting for an event. */
bool tls_conn_pending(const struct tls_conn *tc);
/* Sends close_notify, best effort, before the socket is closed. */
void tls_conn_shutdown(struct tls_conn *tc);

#endif
