/* processor/log.c - see log.h. Time comes from the wall clock here only for the record
 * stamp; nothing else depends on it. */
#include "processor/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum smm_log_level min_level = SMM_LOG_INFO;
static int json_format;

#define SLOTS 64
static struct {
    const char *fmt;
    time_t sec;
    long suppressed;
} recent[SLOTS];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void smm_log_setup(const char *level, const char *format)
{
    for (int i = 0; i < 4; i++) {
        if (level && strcmp(level, level_names[i]) == 0) {
            min_level = (enum smm_log_level)i;
        }
    }
    json_format = format && strcmp(format, "json") == 0;
}

static void json_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            fprintf(f, "\\%c", c);
        } else if (c < 0x20) {
            fprintf(f, "\\u%04x", c);
        } else {
            fputc(c, f);
        }
    }
}

static void emit(enum smm_log_level level, const char *msg, long suppressed)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[64];
    snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    if (json_format) {
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", stamp, level_names[level]);
        json_escape(stderr, msg);
        fprintf(stderr, "\"");
        if (suppressed) {
            fprintf(stderr, ",\"repeated\":%ld", suppressed);
        }
        fprintf(stderr, "}\n");
    } else if (suppressed) {
        fprintf(stderr, "%s %-5s %s (and %ld similar suppressed)\n", stamp, level_names[level], msg,
                suppressed);
    } else {
        fprintf(stderr, "%s %-5s %s\n", stamp, level_names[level], msg);
    }
}

void smm_log(enum smm_log_level level, const char *fmt, ...)
{
    if (level < min_level) {
        return;
    }
    time_t now = time(NULL);
    unsigned slot = (unsigned)(((size_t)fmt >> 3) % SLOTS);
    long suppressed = 0;
    if (recent[slot].fmt == fmt) {
        if (recent[slot].sec == now) {
            recent[slot].suppressed++;
            return;
        }
        suppressed = recent[slot].suppressed;
    }
    recent[slot].fmt = fmt;
    recent[slot].sec = now;
    recent[slot].suppressed = 0;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(level, msg, suppressed);
}

void smm_log_cb(void *opaque, enum smm_log_level level, const char *msg)
{
    (void)opaque;
    if (level < min_level) {
        return;
    }
    emit(level, msg, 0); /* librdkafka already throttles its own repeats */
}
