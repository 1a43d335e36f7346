/* processor/tz.c - reads an IANA zone's UTC offsets through libc, once, at start-up.
 *
 * Why libc and not a TZif parser of our own: glibc already implements the format's
 * versions, its leap-second tables and the POSIX TZ footer that extends a zone past its
 * last listed transition; sampling localtime_r and bisecting each change to the second
 * gives exactly the offsets every other program on the machine uses. The name is checked
 * first (glibc silently falls back to UTC for a zone it cannot find), and TZ is given the
 * file's absolute path so the file checked is the file read. */
#define _DEFAULT_SOURCE /* tm_gmtoff */
#include "processor/tz.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "metrics/event.h"

#define TZ_STEP_S 3600
#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"

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

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b < 0) ? q - 1 : q;
}

/* The zone file's absolute path into path, after checking the name and the file. */
static int zone_path(const char *name, char *path, size_t pathsz, char *err, size_t errsz)
{
    size_t len = strlen(name);
    if (len == 0) {
        fail(err, errsz, "time zone: empty name (e.g. \"UTC\", \"Europe/Berlin\")");
        return SMM_ERR;
    }
    if (name[0] == '/' || strstr(name, "..")) {
        fail(err, errsz, "time zone \"%s\": not a zone name (no absolute paths or \"..\"; "
             "e.g. \"America/New_York\")", name);
        return SMM_ERR;
    }
    for (const char *p = name; *p; p++) {
        char c = *p;
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                 || c == '/' || c == '_' || c == '-' || c == '+';
        if (!ok) {
            fail(err, errsz, "time zone \"%s\": invalid character '%c' (a zone name is "
                 "letters, digits, '/', '_', '-', '+')", name, c);
            return SMM_ERR;
        }
    }
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir) {
        dir = TZ_DEFAULT_DIR;
    }
    int w = snprintf(path, pathsz, "%s/%s", dir, name);
    if (w < 0 || (size_t)w >= pathsz) {
        fail(err, errsz, "time zone \"%s\": name too long", name);
        return SMM_ERR;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        fail(err, errsz, "time zone \"%s\": unknown zone (no file %s; is the tzdata package "
             "installed?)", name, path);
        return SMM_ERR;
    }
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    size_t got = f ? fread(magic, 1, sizeof(magic), f) : 0;
    if (f) {
        fclose(f);
    }
    if (got != sizeof(magic) || memcmp(magic, "TZif", 4) != 0) {
        fail(err, errsz, "time zone \"%s\": %s is not a zone file", name, path);
        return SMM_ERR;
    }
    return SMM_OK;
}

/* tm_gmtoff at second s under the current TZ; SMM_ERR when libc cannot convert it. */
static int offset_at(int64_t s, long *off)
{
    time_t tt = (time_t)s;
    struct tm tm;
    if (!localtime_r(&tt, &tm)) {
        return SMM_ERR;
    }
    *off = tm.tm_gmtoff;
    return SMM_OK;
}

static int push(struct smm_tz_span **v, int *n, int *cap, int64_t from_ms, long off)
{
    if (*n == *cap) {
        int ncap = *cap ? *cap * 2 : 16;
        struct smm_tz_span *nv = realloc(*v, (size_t)ncap * sizeof(**v));
        if (!nv) {
            return SMM_ERR;
        }
        *v = nv;
        *cap = ncap;
    }
    (*v)[*n].from_ms = from_ms;
    (*v)[*n].offset_s = (int32_t)off;
    (*n)++;
    return SMM_OK;
}

/* Samples the current TZ over [from_s, to_s] into v (see tz.h). */
static int sample(int64_t from_ms, int64_t from_s, int64_t to_s, struct smm_tz_span **v,
                  int *n, char *err, size_t errsz)
{
    int cap = 0;
    long off_prev;
    if (offset_at(from_s, &off_prev) != SMM_OK) {
        fail(err, errsz, "time zone: cannot convert %lld", (long long)from_s);
        return SMM_ERR;
    }
    if (push(v, n, &cap, from_ms, off_prev) != SMM_OK) {
        goto oom;
    }
    int64_t s_prev = from_s;
    while (s_prev < to_s) {
        int64_t s = to_s - s_prev > TZ_STEP_S ? s_prev + TZ_STEP_S : to_s;
        long off_s;
        if (offset_at(s, &off_s) != SMM_OK) {
            fail(err, errsz, "time zone: cannot convert %lld", (long long)s);
            return SMM_ERR;
        }
        /* Every change in (s_prev, s]: bisect to the first second whose offset differs
         * from lo's, record it, go on from there until lo has s's offset. */
        int64_t lo = s_prev;
        long lo_off = off_prev;
        while (lo_off != off_s) {
            int64_t a = lo;
            int64_t b = s; /* offset(a) == lo_off, offset(b) != lo_off */
            long b_off = off_s;
            while (b - a > 1) {
                int64_t mid = a + (b - a) / 2;
                long m_off;
                if (offset_at(mid, &m_off) != SMM_OK) {
                    fail(err, errsz, "time zone: cannot convert %lld", (long long)mid);
                    return SMM_ERR;
                }
                if (m_off == lo_off) {
                    a = mid;
                } else {
                    b = mid;
                    b_off = m_off;
                }
            }
            if (push(v, n, &cap, b * 1000, b_off) != SMM_OK) {
                goto oom;
            }
            lo = b;
            lo_off = b_off;
        }
        s_prev = s;
        off_prev = off_s;
    }
    return SMM_OK;
oom:
    fail(err, errsz, "time zone: out of memory");
    return SMM_ERR;
}

/* Zones already loaded, with their ranges: main() validates the configuration (and so
 * loads every zone) before any thread exists; the loop's own load later hits this cache
 * and never touches TZ while the HTTP threads run. Only ever grows; a handful of zones. */
struct tz_cached {
    struct tz_cached *next;
    char *name;
    int64_t from_ms, to_ms;
    struct smm_tz_span *spans;
    int n;
};
static struct tz_cached *tz_cache;

static int load_uncached(const char *name, int64_t from_ms, int64_t to_ms,
                         struct smm_tz_span **spans, int *n, char *err, size_t errsz);

int smm_tz_load(const char *name, int64_t from_ms, int64_t to_ms, struct smm_tz_span **spans,
                int *n, char *err, size_t errsz)
{
    for (struct tz_cached *c = name ? tz_cache : NULL; c; c = c->next) {
        if (!strcmp(c->name, name) && c->from_ms == from_ms && c->to_ms == to_ms) {
            struct smm_tz_span *v = malloc((size_t)c->n * sizeof(*v));
            if (!v) {
                fail(err, errsz, "time zone: out of memory");
                return SMM_ERR;
            }
            memcpy(v, c->spans, (size_t)c->n * sizeof(*v));
            *spans = v;
            *n = c->n;
            return SMM_OK;
        }
    }
    if (load_uncached(name, from_ms, to_ms, spans, n, err, errsz) != SMM_OK) {
        return SMM_ERR;
    }
    struct tz_cached *c = calloc(1, sizeof(*c));
    if (c && (c->name = strdup(name)) && (c->spans = malloc((size_t)*n * sizeof(**spans)))) {
        memcpy(c->spans, *spans, (size_t)*n * sizeof(**spans));
        c->from_ms = from_ms;
        c->to_ms = to_ms;
        c->n = *n;
        c->next = tz_cache;
        tz_cache = c;
    } else if (c) { /* no cache entry is only slower */
        free(c->name);
        free(c);
    }
    return SMM_OK;
}

static int load_uncached(const char *name, int64_t from_ms, int64_t to_ms,
                         struct smm_tz_span **spans, int *n, char *err, size_t errsz)
{
    if (!name || !spans || !n) {
        fail(err, errsz, "time zone: no name");
        return SMM_ERR;
    }
    if (from_ms > to_ms) {
        fail(err, errsz, "time zone \"%s\": empty range (from %lld > to %lld)", name,
             (long long)from_ms, (long long)to_ms);
        return SMM_ERR;
    }
    if (strcmp(name, "UTC") == 0) { /* works without tzdata */
        struct smm_tz_span *v = malloc(sizeof(*v));
        if (!v) {
            fail(err, errsz, "time zone: out of memory");
            return SMM_ERR;
        }
        v[0].from_ms = from_ms;
        v[0].offset_s = 0;
        *spans = v;
        *n = 1;
        return SMM_OK;
    }
    char path[4096];
    if (zone_path(name, path + 1, sizeof(path) - 1, err, errsz) != SMM_OK) {
        return SMM_ERR;
    }
    path[0] = ':'; /* TZ=":/abs/file": read exactly the file checked above */

    const char *cur = getenv("TZ");
    char *saved = NULL;
    if (cur && !(saved = strdup(cur))) {
        fail(err, errsz, "time zone: out of memory");
        return SMM_ERR;
    }
    if (setenv("TZ", path, 1) != 0) {
        fail(err, errsz, "time zone \"%s\": setenv: %s", name, strerror(errno));
        free(saved);
        return SMM_ERR;
    }
    tzset();

    struct smm_tz_span *v = NULL;
    int count = 0;
    int rc = sample(from_ms, floor_div(from_ms, 1000), floor_div(to_ms, 1000), &v, &count,
                    err, errsz);

    if (saved) {
        setenv("TZ", saved, 1);
    } else {
        unsetenv("TZ");
    }
    tzset();
    free(saved);
    if (rc != SMM_OK) {
        free(v);
        return SMM_ERR;
    }
    *spans = v;
    *n = count;
    return SMM_OK;
}
