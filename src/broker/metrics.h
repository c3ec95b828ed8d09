/* The broker's metrics listener (metrics.listener, docs/broker.md "Metrics"): GET /metrics
 * in Prometheus text format 0.0.4 and GET /healthz, served on the broker's loop through
 * src/http/server.h. The counters themselves live in struct broker and struct listener
 * (dispatch.c counts requests, conn.c bytes and connections). Loop thread only. */
#ifndef STRATUS_BROKER_METRICS_H
#define STRATUS_BROKER_METRICS_H

#include "base/buf.h"

struct broker;

/* Starts the listener when metrics.listener is set (logs its URL). Returns 0 (also when
 * off), or -errno logged with the key when it cannot listen. */
int broker_metrics_start(struct broker *broker);
/* Closes the listener and its connections; does nothing when none runs. */
void broker_metrics_stop(struct broker *broker);

/* Appends every broker series to <out>: one HELP and TYPE per family, then its samples
 * (label values escaped). Not NUL-terminated. */
void broker_metrics_text(struct broker *broker, struct buf *out);

#endif
