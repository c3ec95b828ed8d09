/* Socket helpers: listening, accepting, and parsing "host:port" addresses. */
#ifndef STRATUS_LOOP_NET_H
#define STRATUS_LOOP_NET_H

#include <stddef.h>

/* Splits "host:port" or "[v6]:port" into <host> and *<port>. An empty host means all
 * interfaces. Returns 0 or -EINVAL. */
int net_parse_hostport(const char *s, char *host, size_t host_len, int *port);

/* A non-blocking, close-on-exec listening TCP socket on <host>:<port> (port 0 picks a
 * free one). Returns the fd or -errno. */
int net_listen(const char *host, int port, int backlog);

/* The local port a socket is bound to, or -errno. */
int net_local_port(int fd);

/* Accepts one connection as non-blocking with TCP_NODELAY. Returns the fd, or -EAGAIN
 * when none is waiting, or another -errno. */
int net_accept(int listen_fd);

#endif
