/* A blocking Kafka client connection for command-line tools: one request at a time, each
 * with a deadline, encoded and decoded with the generated codecs. Not for the broker's
 * event loop. */
#ifndef STRATUS_KAFKA_CLIENT_H
#define STRATUS_KAFKA_CLIENT_H

#include <stdint.h>

#include "kafka/wire.h"

struct kafka_client;

/* Connects to "host:port" within <timeout_ms>. Returns 0 with *<out> set, or -errno. */
int kafka_client_connect(const char *hostport, int timeout_ms, struct kafka_client **out);
/* Closes the connection. kafka_client_close(NULL) does nothing. */
void kafka_client_close(struct kafka_client *c);

/* Sends <req> (the generated request struct of <api_key>) at <version> and decodes the
 * answer into <resp> (the generated response struct), arrays allocated in <arena>.
 * Strings and bytes in <resp> point into the client's last response frame: valid until
 * the next call. Returns 0, -ETIMEDOUT, -EPROTO for an answer that does not decode,
 * -ENOTSUP for an API Stratus does not know, or -errno. */
int kafka_client_call(struct kafka_client *c, int16_t api_key, int16_t version, const void *req, void *resp,
                      struct kafka_arena *arena);

#endif
