/* processor/top.c - see top.h. Rendering is pure (buffer in, bytes out, tested in
 * tests/unit/test_top.c); smm_top_update() only measures the terminal and writes. */
#include "processor/top.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "processor/event_json.h"
#include "processor/log.h"

struct smm_top {
    int tty;
    int rows, cols;  /* terminal size the scroll region was set for; 0 = not set */
    int have_prev;
    int64_t prev_ms, prev_consumed, prev_flushes, prev_flush_us;
};

/* Appends printf output to buf at *o, never past size (the text is cut instead). */
static void put(char *buf, size_t size, size_t *o, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t size, size_t *o, const char *fmt, ...)
{
    if (*o >= size) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *o, size - *o, fmt, ap);
    va_end(ap);
    if (n > 0) {
        *o += (size_t)n < size - *o ? (size_t)n : size - *o - 1;
    }
}

/* The sum of the known lags as text, or "unknown" when no partition's lag is known
 * (none assigned, Kafka away): that is not a lag of 0. */
static const char *total_lag(const struct smm_top_view *v, char *out, size_t size)
{
    int64_t t = 0;
    int known = 0;
    for (int i = 0; i < v->n_parts; i++) {
        t += v->parts[i].lag > 0 ? v->parts[i].lag : 0;
        known |= v->parts[i].lag >= 0;
    }
    if (!known) {
        return "unknown";
    }
    snprintf(out, size, "%lld", (long long)t);
    return out;
}

static void put_reasons(char *buf, size_t size, size_t *o, const struct smm_top_view *v,
                        const char *sep)
{
    int any = 0;
    for (int r = 1; r < v->n_rejects; r++) {
        if (v->rejects[r]) {
            put(buf, size, o, "%s%s=%lld", any ? sep : "", smm_reject_reason_name(r),
                (long long)v->rejects[r]);
            any = 1;
        }
    }
    if (!any) {
        put(buf, size, o, "none");
    }
}

size_t smm_top_render_plain(char *buf, size_t size, const struct smm_top_view *v,
                            const struct smm_top_rates *r)
{
    size_t o = 0;
    if (size == 0) {
        return 0;
    }
    buf[0] = '\0';
    put(buf, size, &o, "top: %.0f events/s, consumed %lld, counted %lld, dead-lettered %lld (",
        r->events_per_s, (long long)v->consumed, (long long)v->counted,
        (long long)v->dead_lettered);
    put_reasons(buf, size, &o, v, " ");
    put(buf, size, &o, "), flushes %lld", (long long)v->flushes);
    if (r->flush_ms_avg >= 0) {
        put(buf, size, &o, " (%.1f ms)", r->flush_ms_avg);
    }
    char lag[24];
    put(buf, size, &o, ", failures %lld, redis %s%s, lag %s [", (long long)v->flush_failures,
        v->redis_up ? "up" : "DOWN", v->paused ? " (paused)" : "", total_lag(v, lag, sizeof(lag)));
    for (int i = 0; i < v->n_parts; i++) {
        put(buf, size, &o, "%s%d=%lld", i ? "," : "", (int)v->parts[i].partition,
            (long long)v->parts[i].lag);
    }
    put(buf, size, &o, "]");
    return o;
}

/* Moves the cursor to row n (1-based), column 1. */
static void row(char *buf, size_t size, size_t *o, int n)
{
    put(buf, size, o, "\033[%d;1H", n);
}

size_t smm_top_render_screen(char *buf, size_t size, const struct smm_top_view *v,
                             const struct smm_top_rates *r, int cols)
{
    /* Each row is formatted alone, then cut to the terminal width, so a long row never
     * wraps into the next one (or into the log region). */
    char lines[SMM_TOP_ROWS][512];
    size_t n;
    char stamp[32];
    time_t sec = (time_t)(v->now_ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(lines[0], sizeof(lines[0]), "smm-processor  %s -> Redis  %s UTC", v->topic, stamp);
    snprintf(lines[1], sizeof(lines[1]),
             "events/s %10.0f   consumed %12lld   counted %12lld   dead-lettered %8lld",
             r->events_per_s, (long long)v->consumed, (long long)v->counted,
             (long long)v->dead_lettered);
    n = 0;
    put(lines[2], sizeof(lines[2]), &n, "dead letters: ");
    put_reasons(lines[2], sizeof(lines[2]), &n, v, "  ");
    char lat[32] = "-";
    if (r->flush_ms_avg >= 0) {
        snprintf(lat, sizeof(lat), "%.1f ms", r->flush_ms_avg);
    }
    snprintf(lines[3], sizeof(lines[3]), "flushes %lld   latency %s   failures %lld   Redis %s%s",
             (long long)v->flushes, lat, (long long)v->flush_failures,
             v->redis_up ? "up" : "DOWN", v->paused ? " - consumption paused" : "");
    char lag[24];
    snprintf(lines[4], sizeof(lines[4]), "lag %s over %d partition(s)%s",
             total_lag(v, lag, sizeof(lag)), v->n_parts,
             v->n_parts ? "  (? = no statistics from librdkafka yet)" : "");
    /* Lag per partition over two rows, as many as fit; "+N more" for the rest. */
    int next = 0;
    for (int l = 5; l <= 6; l++) {
        n = 0;
        lines[l][0] = '\0';
        put(lines[l], sizeof(lines[l]), &n, " ");
        while (next < v->n_parts) {
            char cell[48];
            int w = v->parts[next].lag < 0
                        ? snprintf(cell, sizeof(cell), " p%d ? ", (int)v->parts[next].partition)
                        : snprintf(cell, sizeof(cell), " p%d %lld ", (int)v->parts[next].partition,
                                   (long long)v->parts[next].lag);
            int reserve = l == 6 && next + 1 < v->n_parts ? 12 : 0;
            if ((int)n + w + reserve > cols - 1 || n + (size_t)w >= sizeof(lines[l])) {
                break;
            }
            put(lines[l], sizeof(lines[l]), &n, "%s", cell);
            next++;
        }
        if (l == 6 && next < v->n_parts) {
            put(lines[l], sizeof(lines[l]), &n, " +%d more", v->n_parts - next);
        }
    }
    n = 0;
    for (int i = 0; i < cols - 1 && n + 4 < sizeof(lines[7]); i++) {
        lines[7][n++] = '-';
    }
    lines[7][n] = '\0';

    size_t o = 0;
    put(buf, size, &o, "\0337"); /* save the cursor (it is in the log region) */
    for (int i = 0; i < SMM_TOP_ROWS; i++) {
        row(buf, size, &o, i + 1);
        size_t len = strlen(lines[i]);
        if ((int)len > cols - 1) {
            len = cols > 1 ? (size_t)cols - 1 : 0;
        }
        put(buf, size, &o, "%s%.*s%s\033[K", i == 0 ? "\033[7m" : i == 7 ? "\033[2m" : "",
            (int)len, lines[i], i == 0 || i == 7 ? "\033[0m" : "");
    }
    put(buf, size, &o, "\0338"); /* back to the log */
    if (o + 1 >= size) {
        return 0; /* cut in the middle of an escape: better draw nothing */
    }
    return o;
}

struct smm_top *smm_top_new(void)
{
    struct smm_top *top = calloc(1, sizeof(*top));
    if (top) {
        const char *term = getenv("TERM");
        top->tty = isatty(STDERR_FILENO) && !(term && strcmp(term, "dumb") == 0);
    }
    return top;
}

/* Sets the scroll region below the summary; clears the screen. Returns 0 when the terminal
 * is too small for a summary plus a few log lines. */
static int setup_screen(struct smm_top *top, int rows, int cols)
{
    char b[64];
    if (rows < SMM_TOP_ROWS + 4 || cols < 40) {
        if (top->rows) {
            smm_log_write_raw("\033[r", 3);
            top->rows = 0;
        }
        return 0;
    }
    int n = snprintf(b, sizeof(b), "\033[2J\033[%d;%dr\033[%d;1H", SMM_TOP_ROWS + 1, rows, rows);
    smm_log_write_raw(b, (size_t)n);
    top->rows = rows;
    top->cols = cols;
    return 1;
}

void smm_top_update(struct smm_top *top, const struct smm_top_view *v)
{
    if (!top) {
        return;
    }
    struct smm_top_rates r = {0, -1};
    if (top->have_prev && v->now_ms > top->prev_ms) {
        r.events_per_s = (double)(v->consumed - top->prev_consumed) * 1000.0 /
                         (double)(v->now_ms - top->prev_ms);
        if (v->flushes > top->prev_flushes) {
            r.flush_ms_avg = (double)(v->flush_us_total - top->prev_flush_us) / 1000.0 /
                             (double)(v->flushes - top->prev_flushes);
        }
    }
    top->have_prev = 1;
    top->prev_ms = v->now_ms;
    top->prev_consumed = v->consumed;
    top->prev_flushes = v->flushes;
    top->prev_flush_us = v->flush_us_total;

    int drawn = 0;
    if (top->tty) {
        struct winsize ws;
        int rows = 24, cols = 80;
        if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
            rows = ws.ws_row;
            cols = ws.ws_col;
        }
        if (rows == top->rows && cols == top->cols ? 1 : setup_screen(top, rows, cols)) {
            char buf[8192];
            size_t n = smm_top_render_screen(buf, sizeof(buf), v, &r, cols);
            if (n > 0) {
                smm_log_write_raw(buf, n);
                drawn = 1;
            }
        }
    }
    if (!drawn) {
        char line[SMM_LOG_MSG_MAX];
        smm_top_render_plain(line, sizeof(line), v, &r);
        smm_log(SMM_LOG_INFO, "top: %s", line + strlen("top: "));
    }
}

void smm_top_destroy(struct smm_top *top)
{
    if (!top) {
        return;
    }
    if (top->rows) {
        char b[32];
        int n = snprintf(b, sizeof(b), "\033[r\033[%d;1H\n", top->rows);
        smm_log_write_raw(b, (size_t)n);
    }
    free(top);
}
