/* One-line key=value logging to stderr with a per-file topic.
 *
 *   #define LOG_TOPIC "storage"
 *   #include "base/log.h"
 *   log_info("segment rolled base_offset=%lld", (long long)base);
 *
 * error: a human must act. warn: recovered but unusual. info: lifecycle.
 * debug: per request, off unless enabled per topic (log_enable_debug("protocol,storage")). */
#ifndef STRATUS_BASE_LOG_H
#define STRATUS_BASE_LOG_H

#include <stdbool.h>

#ifndef LOG_TOPIC
#define LOG_TOPIC "main"
#endif

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_write(enum log_level level, const char *topic, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* <topics> is a comma list of topics, or "all". */
void log_enable_debug(const char *topics);
bool log_debug_enabled(const char *topic);
/* Raises the minimum level printed (tests use LOG_WARN to keep output short). */
void log_set_level(enum log_level level);

#define log_error(...) log_write(LOG_ERROR, LOG_TOPIC, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, LOG_TOPIC, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, LOG_TOPIC, __VA_ARGS__)
#define log_debug(...)                                         \
        do {                                                   \
                if (log_debug_enabled(LOG_TOPIC))              \
                        log_write(LOG_DEBUG, LOG_TOPIC, __VA_ARGS__); \
        } while (0)

#endif
