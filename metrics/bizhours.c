/* metrics/bizhours.c - the opening-hours parser and the business clock B(t).
 *
 * Kept as a closed form so the processor can price every reply in O(log n_tz): the
 * response metrics evaluate B twice per answered thread, and a loop over the days between
 * a message and its reply would make a month-old thread cost a month of iterations.
 * The rules (wall-clock hours, the held clock after a fall-back) are in metrics/bizhours.h.
 *
 * B_local(L) for a local wall-clock time L (ms, as if UTC):
 *     x = L - origin (origin = 1970-01-04 00:00, a Sunday), weeks = floor(x / week),
 *     r = x - weeks x week, d = r / day (0 = Sunday), m = r % day,
 *     B = weeks x W + len[0] + .. + len[d-1] + clamp(m - open[d], 0, len[d])
 * with len[k] = the business length of weekday k and W their sum. Each term is
 * non-decreasing in L and the sum is continuous at day and week boundaries (at m = day the
 * clamp gives len[d], which the next day's prefix then holds), so B_local is
 * non-decreasing; B(t) = B_local(L(t)) with L(t) non-decreasing (the held clock). */
#include "metrics/bizhours.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "metrics/event.h"

#define MIN_MS 60000LL
#define DAY_MS 86400000LL
#define WEEK_MS (7 * DAY_MS)
#define ORIGIN_MS (3 * DAY_MS) /* 1970-01-04 was a Sunday */
#define MAX_OFF_MS (SMM_BIZHOURS_MAX_OFFSET_S * 1000LL)
/* Instants are clamped to +-2^62 ms (146 million years) so that adding offsets, the
 * origin and the look-back margin can never overflow; the clamp keeps B non-decreasing. */
#define TS_LIMIT (INT64_C(1) << 62)

static const char *const day_names[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static void fail(char *err, size_t errsz, const char *fmt, ...)
{
    if (!err || errsz == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && isspace((unsigned char)*p)) {
        p++;
    }
    return p;
}

/* Reads a run of letters at *pp and maps it to a weekday (0..6), 7 for "all", -1 else. */
static int read_day(const char **pp, const char *end, char *word, size_t wordsz)
{
    const char *p = *pp;
    size_t n = 0;
    while (p < end && isalpha((unsigned char)*p)) {
        if (n + 1 < wordsz) {
            word[n++] = (char)tolower((unsigned char)*p);
        }
        p++;
    }
    word[n] = '\0';
    *pp = p;
    if (strcmp(word, "all") == 0) {
        return 7;
    }
    for (int d = 0; d < 7; d++) {
        if (strcmp(word, day_names[d]) == 0) {
            return d;
        }
    }
    return -1;
}

/* Reads H:MM or HH:MM at *pp into minutes of the day (hours 0..24, minutes 0..59);
 * -1 when malformed. */
static int read_time(const char **pp, const char *end)
{
    const char *p = *pp;
    int h = 0;
    int nd = 0;
    while (p < end && isdigit((unsigned char)*p) && nd < 3) {
        h = h * 10 + (*p - '0');
        p++;
        nd++;
    }
    if (nd < 1 || nd > 2 || p >= end || *p != ':') {
        return -1;
    }
    p++;
    if (end - p < 2 || !isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1])) {
        return -1;
    }
    int m = (p[0] - '0') * 10 + (p[1] - '0');
    p += 2;
    if (p < end && isdigit((unsigned char)*p)) {
        return -1;
    }
    if (h > 24 || m > 59 || (h == 24 && m != 0)) {
        return -1;
    }
    *pp = p;
    return h * 60 + m;
}

/* One clause "days HH:MM-HH:MM" in [p, end) into open/close; seen marks days already set. */
static int parse_clause(const char *p, const char *end, int *open, int *close, int *seen,
                        char *err, size_t errsz)
{
    const char *clause = skip_ws(p, end);
    int clen = (int)(end - clause);
    while (clen > 0 && isspace((unsigned char)clause[clen - 1])) {
        clen--;
    }
    unsigned mask = 0;
    char word[16];
    for (;;) {
        p = skip_ws(p, end);
        int d1 = read_day(&p, end, word, sizeof(word));
        if (d1 < 0) {
            if (word[0] == '\0') {
                fail(err, errsz, "business hours \"%.*s\": expected a day (sun, mon, tue, wed, "
                     "thu, fri, sat or all) at \"%.*s\"", clen, clause, (int)(end - p), p);
            } else if (strcmp(word, "none") == 0) {
                fail(err, errsz, "business hours \"%.*s\": \"none\" must stand alone",
                     clen, clause);
            } else {
                fail(err, errsz, "business hours \"%.*s\": unknown day \"%s\" (use sun, mon, "
                     "tue, wed, thu, fri, sat or all)", clen, clause, word);
            }
            return SMM_ERR;
        }
        if (d1 == 7) {
            mask |= 0x7fu;
        } else if (p < end && *p == '-' && p + 1 < end && isalpha((unsigned char)p[1])) {
            p++;
            int d2 = read_day(&p, end, word, sizeof(word));
            if (d2 < 0 || d2 == 7) {
                fail(err, errsz, "business hours \"%.*s\": bad day range end \"%s\"", clen,
                     clause, word);
                return SMM_ERR;
            }
            for (int d = d1;; d = (d + 1) % 7) { /* "fri-mon" wraps over the weekend */
                mask |= 1u << d;
                if (d == d2) {
                    break;
                }
            }
        } else {
            mask |= 1u << d1;
        }
        p = skip_ws(p, end);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        break;
    }
    const char *tstart = p;
    int o = read_time(&p, end);
    p = skip_ws(p, end);
    int ok_dash = o >= 0 && p < end && *p == '-';
    if (ok_dash) {
        p = skip_ws(p + 1, end);
    }
    int c = ok_dash ? read_time(&p, end) : -1;
    if (o < 0 || c < 0) {
        fail(err, errsz, "business hours \"%.*s\": expected a time range HH:MM-HH:MM "
             "(00:00..24:00) at \"%.*s\"", clen, clause, (int)(end - tstart), tstart);
        return SMM_ERR;
    }
    p = skip_ws(p, end);
    if (p < end) {
        fail(err, errsz, "business hours \"%.*s\": unexpected \"%.*s\" after the time range "
             "(separate clauses with ';')", clen, clause, (int)(end - p), p);
        return SMM_ERR;
    }
    if (o == 1440) {
        fail(err, errsz, "business hours \"%.*s\": 24:00 is only a closing time", clen,
             clause);
        return SMM_ERR;
    }
    if (c <= o) {
        fail(err, errsz, "business hours \"%.*s\": the close %02d:%02d is not after the "
             "opening %02d:%02d (split overnight hours at midnight, e.g. "
             "\"fri 22:00-24:00; sat 00:00-06:00\"; leave a closed day out)", clen, clause,
             c / 60, c % 60, o / 60, o % 60);
        return SMM_ERR;
    }
    for (int d = 0; d < 7; d++) {
        if (!(mask & (1u << d))) {
            continue;
        }
        if (seen[d]) {
            fail(err, errsz, "business hours \"%.*s\": %s already has hours (one range per "
                 "day)", clen, clause, day_names[d]);
            return SMM_ERR;
        }
        seen[d] = 1;
        open[d] = o;
        close[d] = c;
    }
    return SMM_OK;
}

int smm_bizhours_parse(const char *spec, struct smm_bizhours *bh, char *err, size_t errsz)
{
    if (!spec || !bh) {
        fail(err, errsz, "business hours: no spec");
        return SMM_ERR;
    }
    int open[7] = {0};
    int close[7] = {0};
    int seen[7] = {0};
    const char *end = spec + strlen(spec);
    const char *p = skip_ws(spec, end);
    const char *q = end;
    while (q > p && isspace((unsigned char)q[-1])) {
        q--;
    }
    if (q == p) {
        fail(err, errsz, "business hours: empty (e.g. \"mon-fri 09:00-17:00\", or \"none\" "
             "for never open)");
        return SMM_ERR;
    }
    if (q - p == 4 && tolower((unsigned char)p[0]) == 'n' && tolower((unsigned char)p[1]) == 'o'
        && tolower((unsigned char)p[2]) == 'n' && tolower((unsigned char)p[3]) == 'e') {
        memcpy(bh->open_min, open, sizeof(open));
        memcpy(bh->close_min, close, sizeof(close));
        return SMM_OK;
    }
    int clauses = 0;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *cend = semi ? semi : end;
        if (skip_ws(p, cend) < cend) { /* empty clauses ("a; ; b", a trailing ';') skipped */
            if (parse_clause(p, cend, open, close, seen, err, errsz) != SMM_OK) {
                return SMM_ERR;
            }
            clauses++;
        }
        p = semi ? semi + 1 : end;
    }
    if (clauses == 0) {
        fail(err, errsz, "business hours \"%s\": no clause (e.g. \"mon-fri 09:00-17:00\")",
             spec);
        return SMM_ERR;
    }
    memcpy(bh->open_min, open, sizeof(open));
    memcpy(bh->close_min, close, sizeof(close));
    return SMM_OK;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

static int64_t off_ms(const struct smm_tz_span *s)
{
    return clamp64(s->offset_s, -SMM_BIZHOURS_MAX_OFFSET_S, SMM_BIZHOURS_MAX_OFFSET_S) * 1000;
}

/* The index of the span in force at ts: the last with from_ms <= ts, else 0. n > 0. */
static int span_at(const struct smm_tz_span *tz, int n, int64_t ts)
{
    int lo = 0;
    int hi = n - 1;
    while (lo < hi) { /* invariant: the answer is in [lo, hi] */
        int mid = lo + (hi - lo + 1) / 2;
        if (tz[mid].from_ms <= ts) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo;
}

int32_t smm_bizhours_offset(const struct smm_bizhours *bh, int64_t ts_ms)
{
    if (!bh->tz || bh->n_tz <= 0) {
        return 0;
    }
    return (int32_t)(off_ms(&bh->tz[span_at(bh->tz, bh->n_tz, ts_ms)]) / 1000);
}

/* The held local wall clock L(t) = max(t + offset(t), every wall time shown before t).
 * The largest wall time shown during span j-1 is (just under) from_j + offset_{j-1}; only
 * spans that began less than 2 x MAX_OFF (52 h) before t can beat t + offset(t), so the
 * look-back stops at the first older one (real zones: a step or two). */
static int64_t local_ms(const struct smm_bizhours *bh, int64_t t)
{
    if (!bh->tz || bh->n_tz <= 0) {
        return t;
    }
    int i = span_at(bh->tz, bh->n_tz, t);
    int64_t best = t + off_ms(&bh->tz[i]);
    for (int j = i; j > 0; j--) {
        int64_t from = bh->tz[j].from_ms;
        if (from + MAX_OFF_MS <= best) { /* it and every earlier span: shown < best */
            break;
        }
        int64_t shown = from + off_ms(&bh->tz[j - 1]);
        if (shown > best) {
            best = shown;
        }
    }
    return best;
}

/* Business minutes of weekday d, 0 for a closed day (or nonsense values). */
static int64_t day_len_ms(const struct smm_bizhours *bh, int d, int64_t *open_ms)
{
    int o = bh->open_min[d] < 0 ? 0 : bh->open_min[d];
    int c = bh->close_min[d] > 1440 ? 1440 : bh->close_min[d];
    *open_ms = (int64_t)o * MIN_MS;
    return c > o ? (int64_t)(c - o) * MIN_MS : 0;
}

int64_t smm_bizhours_clock(const struct smm_bizhours *bh, int64_t ts_ms)
{
    int64_t t = clamp64(ts_ms, -TS_LIMIT, TS_LIMIT);
    int64_t x = local_ms(bh, t) - ORIGIN_MS;
    int64_t weeks = x / WEEK_MS;
    if (x % WEEK_MS < 0) { /* floor division */
        weeks--;
    }
    int64_t r = x - weeks * WEEK_MS;
    int d = (int)(r / DAY_MS);
    int64_t m = r % DAY_MS;
    int64_t week_len = 0;
    int64_t before = 0;
    int64_t today = 0;
    for (int k = 0; k < 7; k++) { /* seven weekdays, not a loop over the span of time */
        int64_t open_ms;
        int64_t len = day_len_ms(bh, k, &open_ms);
        week_len += len;
        if (k < d) {
            before += len;
        } else if (k == d) {
            today = clamp64(m - open_ms, 0, len);
        }
    }
    return weeks * week_len + before + today;
}
