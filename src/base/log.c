/* Logging to stderr: "2026-11-25T02:22:01.123Z info storage: message". */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static char debug_topics[256];
static enum log_level min_level = LOG_INFO;

void log_enable_debug(const char *topics)
{
        snprintf(debug_topics, sizeof(debug_topics), ",%s,", topics ? topics : "");
}

void log_set_level(enum log_level level)
{
        min_level = level;
}

bool log_debug_enabled(const char *topic)
{
        if (!debug_topics[0])
                return false;
        if (strstr(debug_topics, ",all,"))
                return true;
        char key[64];
        snprintf(key, sizeof(key), ",%s,", topic);
        return strstr(debug_topics, key) != NULL;
}

void log_write(enum log_level level, const char *topic, const char *fmt, ...)
{
        static const char *names[] = { "debug", "info", "warn", "error" };
        if (level < min_level && level != LOG_DEBUG)
                return;
        struct timeval tv;
        gettimeofday(&tv, NULL);
        struct tm tm;
        gmtime_r(&tv.tv_sec, &tm);
        char line[2048];
        int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s: ",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec, (int)(tv.tv_usec / 1000), names[level], topic);
        va_list ap;
        va_start(ap, fmt);
        if (n > 0 && (size_t)n < sizeof(line))
                n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if ((size_t)n >= sizeof(line) - 1)
                n = sizeof(line) - 2;
        line[n++] = '\n';
        fwrite(line, 1, (size_t)n, stderr);
}
