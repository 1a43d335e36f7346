/* processor/log.h - levelled one-line logging, text or JSON, with repeat suppression.
 *
 * One record per line on stderr, written with one write(2) under a mutex (librdkafka logs
 * from its own threads). Text: "2026-11-26T07:12:26.123Z info  message", control characters
 * escaped so a hostile id cannot start a forged line. JSON (log.format=json):
 * {"ts":"2026-11-26T07:12:26.123Z","level":"info","msg":"..."}, escaped per RFC 8259,
 * invalid UTF-8 replaced by U+FFFD, so every line parses.
 *
 * Rate limiting (log.rate_limit_ms, default 1000, 0 = off): an identical record (same level
 * and text) within the window of its first appearance is counted, not printed, and one
 * summary "<msg> (repeated N times)" follows when the window has passed (printed before the
 * next record, or by smm_log_flush() at exit). A single call site of smm_log() may also print
 * at most SMM_LOG_SITE_BURST different records per window (a poison stream makes every
 * "dead letter ... offset N" line different); the rest become "<last msg> (and N similar
 * messages)". The formatting and the limiter are pure functions, tested in
 * tests/unit/test_log.c. Callers never pass secrets; config printing masks them (config.c). */
#ifndef SMM_PROCESSOR_LOG_H
#define SMM_PROCESSOR_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "connectors/kafka_source.h" /* enum smm_log_level */

#define SMM_LOG_MSG_MAX    1024 /* a formatted message is truncated to this (with its NUL) */
#define SMM_LOG_LINE_MAX   4096 /* one output line, escapes included */
#define SMM_LOG_SLOTS      128
#define SMM_LOG_SITE_BURST 10

/* Sets the minimum level ("debug", "info", "warn", "error"; anything else keeps info) and
 * the format ("json" or text). */
void smm_log_setup(const char *level, const char *format);
/* Window of the repeat suppression in ms; 0 turns it off. Default 1000. */
void smm_log_set_rate_limit(int64_t window_ms);
void smm_log(enum smm_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Adapter for the connectors' log callbacks (opaque unused). Identical repeats are
 * suppressed like any record; there is no call site to cap. */
void smm_log_cb(void *opaque, enum smm_log_level level, const char *msg);
/* Prints every pending summary now, whatever its window (call at exit). */
void smm_log_flush(void);
/* Writes bytes to stderr under the log mutex, so they never interleave with a record
 * (the --top view draws through this). */
void smm_log_write_raw(const char *buf, size_t len);

/* ---- pure parts, exposed for tests ---- */

/* Writes ts_ms (Unix ms, UTC) as RFC 3339 with milliseconds, "2026-11-26T07:12:26.123Z".
 * size >= 32. */
void smm_log_format_time(char *buf, size_t size, int64_t ts_ms);
/* Writes s as the inside of a JSON string (no quotes) into out, NUL-terminated: '"', '\\'
 * and control characters escaped, invalid UTF-8 bytes replaced by \ufffd. Never splits an
 * escape or a character: when out is too small the text ends early and *truncated is set.
 * Returns the length written. */
size_t smm_log_json_escape(char *out, size_t size, const char *s, int *truncated);
/* Formats one record as a full line ending in '\n' into buf (size >= 128) and returns its
 * length. repeated > 0 marks a summary: identical (similar = 0) adds "(repeated N times)"
 * to the text, or "repeated":N in JSON; similar = 1 adds "(and N similar messages)", or
 * "similar":N. A message too long for buf is cut and marked "...". */
size_t smm_log_format(char *buf, size_t size, int64_t ts_ms, enum smm_log_level level, int json,
                      const char *msg, long repeated, int similar);

struct smm_log_slot {
    uint64_t key; /* 0 = free; the top bit marks a call-site slot */
    int64_t start_ms;
    long admitted;   /* records printed in this window (call-site slots) */
    long suppressed; /* records counted instead of printed */
    enum smm_log_level level;
    char last[SMM_LOG_MSG_MAX]; /* the text a summary repeats */
};

struct smm_log_limiter {
    int64_t window_ms;
    int site_burst;
    struct smm_log_slot slot[SMM_LOG_SLOTS];
};

/* window_ms 0 = admit everything; site_burst <= 0 = no call-site cap. */
void smm_log_limiter_init(struct smm_log_limiter *lim, int64_t window_ms, int site_burst);
/* Decides one record at now_ms: returns 1 to print it, 0 when it was counted instead.
 * site identifies the call site (the format string) or is NULL. Call
 * smm_log_limiter_summary() until it returns 0 first, so summaries precede new records. */
int smm_log_limiter_admit(struct smm_log_limiter *lim, const void *site,
                          enum smm_log_level level, const char *msg, int64_t now_ms);
/* Takes one summary of a window that ended by now_ms (INT64_MAX: every window) and frees its
 * slot: returns 1 and fills *level, *repeated, *similar and msg (size bytes), or 0 when none
 * is due. */
int smm_log_limiter_summary(struct smm_log_limiter *lim, int64_t now_ms,
                            enum smm_log_level *level, long *repeated, int *similar, char *msg,
                            size_t size);

#endif
