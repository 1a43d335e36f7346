/* processor/log.c - see log.h.
 *
 * The wall clock is read here only to stamp records and to age the suppression windows;
 * nothing else depends on it. The formatter and the limiter take the time as an argument
 * and touch no global, so tests replay any sequence (tests/unit/test_log.c).
 *
 * DESIGN (rate limiting): a small table of slots, open addressing with a short probe. A
 * record's text slot (hash of level + text) suppresses identical repeats for window_ms after
 * its first print; its call-site slot (hash of the format string's address) lets at most
 * site_burst different texts through per window. A slot that has suppressed something is
 * reported as one summary line once its window has passed, and only then freed, so no
 * count is lost; when the probe finds no free slot the record is simply printed (a flood
 * of more than SMM_LOG_SLOTS distinct texts is already bounded by the call-site cap). */
#include "processor/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROBE 8
#define SITE_BIT (1ULL << 63)

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;
static enum smm_log_level min_level = SMM_LOG_INFO;
static int json_format;
static struct smm_log_limiter limiter = {.window_ms = 1000, .site_burst = SMM_LOG_SITE_BURST};

/* ---- pure formatting ---- */

void smm_log_format_time(char *buf, size_t size, int64_t ts_ms)
{
    time_t sec = (time_t)(ts_ms / 1000);
    int ms = (int)(ts_ms % 1000);
    if (ms < 0) {
        ms += 1000;
        sec -= 1;
    }
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid (overlong forms,
 * surrogates, code points above U+10FFFF, bad or missing continuation bytes). */
static int utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    int n;
    unsigned cp;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) { /* also stops at the NUL */
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return n;
}

size_t smm_log_json_escape(char *out, size_t size, const char *s, int *truncated)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    if (truncated) {
        *truncated = 0;
    }
    if (size == 0) {
        return 0;
    }
    while (*p) {
        char tmp[8];
        const char *piece = tmp;
        size_t n;
        int adv = 1;
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            n = 2;
        } else if (c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f') {
            tmp[0] = '\\';
            tmp[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : c == '\b' ? 'b' : 'f';
            n = 2;
        } else if (c < 0x20) {
            n = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", c);
        } else if (c < 0x80) {
            tmp[0] = (char)c;
            n = 1;
        } else if ((adv = utf8_len(p)) > 0) {
            piece = (const char *)p;
            n = (size_t)adv;
        } else {
            piece = "\\ufffd";
            n = 6;
            adv = 1;
        }
        if (o + n >= size) {
            if (truncated) {
                *truncated = 1;
            }
            break;
        }
        memcpy(out + o, piece, n);
        o += n;
        p += adv;
    }
    out[o] = '\0';
    return o;
}

/* Text format: control characters and DEL as \xNN, so one record stays one line. */
static size_t text_escape(char *out, size_t size, const char *s, int *truncated)
{
    size_t o = 0;
    *truncated = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char tmp[8];
        size_t n = 1;
        tmp[0] = (char)*p;
        if (*p < 0x20 || *p == 0x7F) {
            n = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", *p);
        }
        if (o + n >= size) {
            *truncated = 1;
            break;
        }
        memcpy(out + o, tmp, n);
        o += n;
    }
    out[o] = '\0';
    return o;
}

size_t smm_log_format(char *buf, size_t size, int64_t ts_ms, enum smm_log_level level, int json,
                      const char *msg, long repeated, int similar)
{
    char stamp[32];
    smm_log_format_time(stamp, sizeof(stamp), ts_ms);
    const char *lv = level_names[level >= SMM_LOG_DEBUG && level <= SMM_LOG_ERROR ? level : 1];
    /* Head and tail are short and bounded; the message gets what is left. */
    char head[96], tail[96];
    if (json) {
        snprintf(head, sizeof(head), "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", stamp, lv);
        if (repeated > 0) {
            snprintf(tail, sizeof(tail), "\",\"%s\":%ld}\n", similar ? "similar" : "repeated",
                     repeated);
        } else {
            snprintf(tail, sizeof(tail), "\"}\n");
        }
    } else {
        snprintf(head, sizeof(head), "%s %-5s ", stamp, lv);
        if (repeated > 0) {
            snprintf(tail, sizeof(tail), similar ? " (and %ld similar messages)\n"
                                                 : " (repeated %ld times)\n",
                     repeated);
        } else {
            snprintf(tail, sizeof(tail), "\n");
        }
    }
    size_t hl = strlen(head), tl = strlen(tail);
    if (size < hl + tl + 4) { /* not worth a partial record; callers pass big buffers */
        buf[0] = '\0';
        return 0;
    }
    memcpy(buf, head, hl);
    size_t room = size - hl - tl - 3; /* "..." */
    int cut;
    size_t ml = json ? smm_log_json_escape(buf + hl, room, msg, &cut)
                     : text_escape(buf + hl, room, msg, &cut);
    size_t o = hl + ml;
    if (cut) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    memcpy(buf + o, tail, tl + 1);
    return o + tl;
}

/* ---- pure rate limiter ---- */

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

void smm_log_limiter_init(struct smm_log_limiter *lim, int64_t window_ms, int site_burst)
{
    memset(lim, 0, sizeof(*lim));
    lim->window_ms = window_ms > 0 ? window_ms : 0;
    lim->site_burst = site_burst;
}

/* Finds the slot of key (live or not), or a free one to claim; NULL when the probe is full. */
static struct smm_log_slot *slot_for(struct smm_log_limiter *lim, uint64_t key, int *found)
{
    struct smm_log_slot *free_slot = NULL;
    for (int i = 0; i < PROBE; i++) {
        struct smm_log_slot *s = &lim->slot[(key + (uint64_t)i) % SMM_LOG_SLOTS];
        if (s->key == key) {
            *found = 1;
            return s;
        }
        if (s->key == 0 && !free_slot) {
            free_slot = s;
        }
    }
    *found = 0;
    return free_slot;
}

static void claim(struct smm_log_slot *s, uint64_t key, int64_t now_ms,
                  enum smm_log_level level, const char *msg)
{
    s->key = key;
    s->start_ms = now_ms;
    s->admitted = 1;
    s->suppressed = 0;
    s->level = level;
    snprintf(s->last, sizeof(s->last), "%s", msg);
}

int smm_log_limiter_admit(struct smm_log_limiter *lim, const void *site,
                          enum smm_log_level level, const char *msg, int64_t now_ms)
{
    if (lim->window_ms <= 0) {
        return 1;
    }
    unsigned char lv = (unsigned char)level;
    uint64_t tkey = fnv1a(fnv1a(14695981039346656037ULL, &lv, 1), msg, strlen(msg));
    tkey = (tkey & ~SITE_BIT) | 1; /* never 0, never a site key */
    int found;
    struct smm_log_slot *ts = slot_for(lim, tkey, &found);
    if (found && now_ms < ts->start_ms + lim->window_ms) {
        ts->suppressed++;
        return 0;
    }
    if (site && lim->site_burst > 0) {
        uint64_t skey = fnv1a(14695981039346656037ULL, &site, sizeof(site)) | SITE_BIT;
        int sfound;
        struct smm_log_slot *ss = slot_for(lim, skey, &sfound);
        if (sfound && now_ms < ss->start_ms + lim->window_ms) {
            if (ss->admitted >= lim->site_burst) {
                ss->suppressed++;
                ss->level = level;
                snprintf(ss->last, sizeof(ss->last), "%s", msg);
                return 0;
            }
            ss->admitted++;
        } else if (ss && !sfound) {
            claim(ss, skey, now_ms, level, msg);
        } else if (ss && ss->suppressed == 0) {
            claim(ss, skey, now_ms, level, msg); /* an old window with nothing to report */
        }
        /* else: an ended window still owing its summary; the caller drains it first. */
    }
    /* Look again: the call-site slot may just have taken the free slot found above. */
    ts = slot_for(lim, tkey, &found);
    if (ts && (!found || ts->suppressed == 0)) {
        claim(ts, tkey, now_ms, level, msg);
    }
    return 1;
}

int smm_log_limiter_summary(struct smm_log_limiter *lim, int64_t now_ms,
                            enum smm_log_level *level, long *repeated, int *similar, char *msg,
                            size_t size)
{
    for (int i = 0; i < SMM_LOG_SLOTS; i++) {
        struct smm_log_slot *s = &lim->slot[i];
        if (s->key == 0 || (now_ms != INT64_MAX && now_ms < s->start_ms + lim->window_ms)) {
            continue;
        }
        long n = s->suppressed;
        if (n > 0) {
            *level = s->level;
            *repeated = n;
            *similar = (s->key & SITE_BIT) != 0;
            snprintf(msg, size, "%s", s->last);
        }
        s->key = 0;
        s->suppressed = 0;
        if (n > 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- the process-wide logger ---- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_all(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return; /* nowhere to report a broken stderr */
        }
        buf += n;
        len -= (size_t)n;
    }
}

void smm_log_write_raw(const char *buf, size_t len)
{
    pthread_mutex_lock(&log_mutex);
    write_all(buf, len);
    pthread_mutex_unlock(&log_mutex);
}

void smm_log_setup(const char *level, const char *format)
{
    pthread_mutex_lock(&log_mutex);
    for (int i = 0; i < 4; i++) {
        if (level && strcmp(level, level_names[i]) == 0) {
            min_level = (enum smm_log_level)i;
        }
    }
    json_format = format && strcmp(format, "json") == 0;
    pthread_mutex_unlock(&log_mutex);
}

void smm_log_set_rate_limit(int64_t window_ms)
{
    pthread_mutex_lock(&log_mutex);
    smm_log_limiter_init(&limiter, window_ms, SMM_LOG_SITE_BURST);
    pthread_mutex_unlock(&log_mutex);
}

/* Prints the summaries due at now_ms. Holds log_mutex. */
static void drain(int64_t now_ms, int64_t stamp_ms)
{
    enum smm_log_level lv;
    long n;
    int similar;
    char msg[SMM_LOG_MSG_MAX], line[SMM_LOG_LINE_MAX];
    while (smm_log_limiter_summary(&limiter, now_ms, &lv, &n, &similar, msg, sizeof(msg))) {
        size_t len = smm_log_format(line, sizeof(line), stamp_ms, lv, json_format, msg, n, similar);
        write_all(line, len);
    }
}

static void emit(const void *site, enum smm_log_level level, const char *msg)
{
    char line[SMM_LOG_LINE_MAX];
    pthread_mutex_lock(&log_mutex);
    int64_t now = wall_ms();
    drain(now, now);
    if (smm_log_limiter_admit(&limiter, site, level, msg, now)) {
        size_t len = smm_log_format(line, sizeof(line), now, level, json_format, msg, 0, 0);
        write_all(line, len);
    }
    pthread_mutex_unlock(&log_mutex);
}

void smm_log(enum smm_log_level level, const char *fmt, ...)
{
    if (level < min_level) {
        return;
    }
    char msg[SMM_LOG_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(fmt, level, msg);
}

void smm_log_cb(void *opaque, enum smm_log_level level, const char *msg)
{
    (void)opaque;
    if (level < min_level) {
        return;
    }
    emit(NULL, level, msg);
}

void smm_log_flush(void)
{
    pthread_mutex_lock(&log_mutex);
    drain(INT64_MAX, wall_ms());
    pthread_mutex_unlock(&log_mutex);
}
