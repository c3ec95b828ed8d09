/* Authentication in the broker: the tenants file (loaded at start, reloaded when it
 * changes; connections of removed keys are closed), SASL exchanges on connections, and
 * the delay that answers failed attempts (growing with repeated failures from one
 * address). Loop thread only. */
#ifndef STRATUS_BROKER_AUTH_AUTH_H
#define STRATUS_BROKER_AUTH_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "broker/auth/sasl.h"

struct broker;
struct conn;

/* Loads tenants.file (when set) and starts watching it. Returns 0 or -errno (logged). */
int auth_start(struct broker *broker);
void auth_stop(struct broker *broker);
/* Reloads tenants.file now when it changed since the last look (SIGHUP: the satellite
 * rewrote it and wants it in force without waiting for the 1 s check). */
void auth_check_now(struct broker *broker);

/* Whether <mech> is in sasl.enabled.mechanisms. */
bool auth_mechanism_enabled(const struct broker *broker, enum sasl_mechanism mech);
/* Starts a SASL exchange with <mech> on <conn>. */
void auth_begin(struct conn *conn, enum sasl_mechanism mech);
/* Feeds a client token to <conn>'s exchange; on SASL_DONE the connection is
 * authenticated. *<out> (heap) is the token to send back. */
enum sasl_step auth_step(struct conn *conn, const uint8_t *in, size_t in_len, uint8_t **out, size_t *out_len,
                         char *err, size_t err_len);
/* Records a failed authentication from <conn>'s address; returns how long to wait
 * before answering it. */
int64_t auth_failure_delay_ms(struct broker *broker, const struct conn *conn);

/* A raw token after SaslHandshake v0 (the next frame of the connection). Returns 0, or
 * -EACCES when authentication failed (the caller closes the connection). */
int auth_raw_token(struct conn *conn, const uint8_t *frame, size_t len);

#endif
