/* tests/unit/test_bizhours.c - business hours (metrics/bizhours.c) and zone tables
 * (processor/tz.c): the spec parser, and the business clock against hand-computed spans in
 * UTC, in hand-made offset tables and in America/New_York and Europe/Berlin across the
 * 2026 daylight-saving changes (US: Mar 8 and Nov 1; EU: Mar 29 and Oct 25).
 *
 * Instants are written as civil UTC dates (days_from_civil below, checked against epoch
 * values from `date -u`); local times are converted by hand with the offset in force
 * (EST -5, EDT -4, CET +1, CEST +2), so the tests never ask libc what the local time is. */
#define _DEFAULT_SOURCE /* tm_gmtoff */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "metrics/bizhours.h"
#include "metrics/event.h"
#include "processor/tz.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int64_t utc(int y, int mo, int d, int h, int mi)
{
    return days_from_civil(y, mo, d) * DAY + h * HOUR + mi * MIN;
}

/* Local wall time y-mo-d h:mi at UTC offset off_h hours, as a UTC instant. */
static int64_t loc(int y, int mo, int d, int h, int mi, int off_h)
{
    return utc(y, mo, d, h, mi) - off_h * HOUR;
}

static struct smm_bizhours hours(const char *spec)
{
    struct smm_bizhours bh;
    memset(&bh, 0, sizeof(bh));
    char err[256] = "";
    cr_assert_eq(smm_bizhours_parse(spec, &bh, err, sizeof(err)), SMM_OK, "%s: %s", spec, err);
    return bh;
}

static int64_t span(const struct smm_bizhours *bh, int64_t a, int64_t b)
{
    return smm_bizhours_clock(bh, b) - smm_bizhours_clock(bh, a);
}

Test(bizhours, civil_dates_match_the_epoch)
{
    cr_assert_eq(utc(2026, 3, 6, 0, 0), 1772755200000LL);
    cr_assert_eq(utc(2026, 11, 20, 0, 0), 1795132800000LL);
    cr_assert_eq(utc(1970, 1, 1, 0, 0), 0);
    cr_assert_eq(utc(1969, 12, 31, 0, 0), -DAY);
}

/* ---- parser ---- */

static void expect_hours(const struct smm_bizhours *bh, const int open[7], const int close[7])
{
    for (int d = 0; d < 7; d++) {
        cr_expect_eq(bh->open_min[d], open[d], "day %d open %d, want %d", d, bh->open_min[d],
                     open[d]);
        cr_expect_eq(bh->close_min[d], close[d], "day %d close %d, want %d", d,
                     bh->close_min[d], close[d]);
    }
}

Test(bizhours, parse_valid_specs)
{
    struct smm_bizhours bh = hours("mon-fri 09:00-17:00");
    expect_hours(&bh, (int[7]){0, 540, 540, 540, 540, 540, 0},
                 (int[7]){0, 1020, 1020, 1020, 1020, 1020, 0});
    bh = hours("mon-fri 09:00-17:00; sat 10:00-14:00");
    expect_hours(&bh, (int[7]){0, 540, 540, 540, 540, 540, 600},
                 (int[7]){0, 1020, 1020, 1020, 1020, 1020, 840});
    bh = hours("mon,wed 08:30-12:00");
    expect_hours(&bh, (int[7]){0, 510, 0, 510, 0, 0, 0}, (int[7]){0, 720, 0, 720, 0, 0, 0});
    bh = hours("all 00:00-24:00");
    expect_hours(&bh, (int[7]){0, 0, 0, 0, 0, 0, 0},
                 (int[7]){1440, 1440, 1440, 1440, 1440, 1440, 1440});
    bh = hours("none");
    expect_hours(&bh, (int[7]){0}, (int[7]){0});
    bh = hours("  NONE ");
    expect_hours(&bh, (int[7]){0}, (int[7]){0});
    /* Case, spaces, a wrapping range, a one-digit hour, a trailing ';'. */
    bh = hours(" Fri-Mon 9:00 - 11:30 ;");
    expect_hours(&bh, (int[7]){540, 540, 0, 0, 0, 540, 540},
                 (int[7]){690, 690, 0, 0, 0, 690, 690});
    bh = hours("sun 22:00-24:00; mon, tue-wed 00:00-01:00");
    expect_hours(&bh, (int[7]){1320, 0, 0, 0, 0, 0, 0}, (int[7]){1440, 60, 60, 60, 0, 0, 0});
}

Test(bizhours, parse_leaves_the_zone_alone)
{
    static const struct smm_tz_span tz[1] = {{0, 3600}};
    struct smm_bizhours bh = {.tz = tz, .n_tz = 1};
    char err[128];
    cr_assert_eq(smm_bizhours_parse("sat 10:00-11:00", &bh, err, sizeof(err)), SMM_OK);
    cr_expect_eq(bh.tz, tz);
    cr_expect_eq(bh.n_tz, 1);
    cr_expect_eq(bh.open_min[6], 600);
}

Test(bizhours, parse_errors_are_clear_and_change_nothing)
{
    static const struct {
        const char *spec;
        const char *want;
    } bad[] = {
        {"", "empty"},
        {"   ", "empty"},
        {";", "no clause"},
        {"mon 9-17", "expected a time range HH:MM-HH:MM"},
        {"mon 09:00", "expected a time range HH:MM-HH:MM"},
        {"mon 09:00-25:00", "expected a time range HH:MM-HH:MM"},
        {"mon 09:60-10:00", "expected a time range HH:MM-HH:MM"},
        {"mon 24:30-24:00", "expected a time range HH:MM-HH:MM"},
        {"mon 09:000-10:00", "expected a time range HH:MM-HH:MM"},
        {"mon 17:00-09:00", "the close 09:00 is not after the opening 17:00"},
        {"mon 09:00-09:00", "not after the opening"},
        {"mon 24:00-24:00", "24:00 is only a closing time"},
        {"xyz 09:00-10:00", "unknown day \"xyz\""},
        {"monday 09:00-10:00", "unknown day \"monday\""},
        {"09:00-17:00", "expected a day"},
        {"mon-all 09:00-10:00", "bad day range end"},
        {"mon-fri 09:00-17:00; mon 10:00-11:00", "mon already has hours"},
        {"none; mon 09:00-10:00", "\"none\" must stand alone"},
        {"mon 09:00-17:00 sat 10:00-12:00", "unexpected \"sat 10:00-12:00\""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct smm_bizhours bh;
        memset(&bh, 0x5a, sizeof(bh));
        struct smm_bizhours before = bh;
        char err[256] = "";
        cr_expect_eq(smm_bizhours_parse(bad[i].spec, &bh, err, sizeof(err)), SMM_ERR,
                     "\"%s\" accepted", bad[i].spec);
        cr_expect(strstr(err, bad[i].want), "\"%s\": error \"%s\" lacks \"%s\"", bad[i].spec,
                  err, bad[i].want);
        cr_expect_eq(memcmp(&bh, &before, sizeof(bh)), 0, "\"%s\" changed bh", bad[i].spec);
        cr_expect_eq(smm_bizhours_parse(bad[i].spec, &bh, NULL, 0), SMM_ERR);
    }
}

/* ---- the clock in UTC ---- */

Test(bizhours, utc_weekday_hours)
{
    struct smm_bizhours bh = hours("mon-fri 09:00-17:00");
    /* 2026-11-20 is a Friday. Fri 16:30 -> Mon 09:15: 30 min + 15 min. */
    cr_expect_eq(span(&bh, utc(2026, 11, 20, 16, 30), utc(2026, 11, 23, 9, 15)), 45 * MIN);
    /* Tue 20:00 -> Wed 08:00: all outside hours. */
    cr_expect_eq(span(&bh, utc(2026, 11, 24, 20, 0), utc(2026, 11, 25, 8, 0)), 0);
    /* A message at night starts counting at the opening: Tue 20:00 -> Wed 09:30. */
    cr_expect_eq(span(&bh, utc(2026, 11, 24, 20, 0), utc(2026, 11, 25, 9, 30)), 30 * MIN);
    /* A reply at night counts up to the close: Wed 15:00 -> Wed 23:00. */
    cr_expect_eq(span(&bh, utc(2026, 11, 25, 15, 0), utc(2026, 11, 25, 23, 0)), 2 * HOUR);
    /* Saturday message, Monday 10:00 reply. */
    cr_expect_eq(span(&bh, utc(2026, 11, 21, 11, 0), utc(2026, 11, 23, 10, 0)), HOUR);
    /* Inside hours it is real time, to the millisecond. */
    cr_expect_eq(span(&bh, utc(2026, 11, 23, 10, 0), utc(2026, 11, 23, 10, 0) + 1500), 1500);
    /* Four weeks and a day, Mon 10:00 -> Tue 10:00: 4 x 40 h + 8 h. */
    cr_expect_eq(span(&bh, utc(2026, 11, 23, 10, 0), utc(2026, 12, 22, 10, 0)), 168 * HOUR);
    /* Opening and closing instants. */
    cr_expect_eq(span(&bh, utc(2026, 11, 23, 8, 0), utc(2026, 11, 23, 9, 0)), 0);
    cr_expect_eq(span(&bh, utc(2026, 11, 23, 17, 0), utc(2026, 11, 23, 18, 0)), 0);
    cr_expect_eq(span(&bh, utc(2026, 11, 23, 9, 0), utc(2026, 11, 23, 17, 0)), 8 * HOUR);
}

Test(bizhours, utc_whole_week_is_40_hours)
{
    struct smm_bizhours bh = hours("mon-fri 09:00-17:00");
    const int64_t starts[] = {
        utc(2026, 11, 24, 12, 34) + 56789, utc(2026, 11, 21, 3, 0),
        utc(2026, 11, 20, 16, 59) + 59999, utc(1970, 1, 1, 0, 0),
        utc(1969, 12, 30, 11, 0) /* before the epoch */, utc(1900, 3, 7, 10, 0),
        utc(2400, 2, 29, 16, 0),
    };
    for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
        cr_expect_eq(span(&bh, starts[i], starts[i] + 7 * DAY), 40 * HOUR, "start %lld",
                     (long long)starts[i]);
    }
}

Test(bizhours, utc_other_specs)
{
    struct smm_bizhours bh = hours("mon-fri 09:00-17:00; sat 10:00-14:00");
    /* Fri 16:30 -> Mon 09:15: 30 min + Saturday's 4 h + 15 min. */
    cr_expect_eq(span(&bh, utc(2026, 11, 20, 16, 30), utc(2026, 11, 23, 9, 15)),
                 4 * HOUR + 45 * MIN);
    cr_expect_eq(span(&bh, utc(2026, 11, 23, 0, 0), utc(2026, 11, 30, 0, 0)), 44 * HOUR);

    /* Hours that run through midnight: Sun 23:00 -> Mon 00:30. */
    bh = hours("sun 22:00-24:00; mon 00:00-01:00");
    cr_expect_eq(span(&bh, utc(2026, 11, 22, 23, 0), utc(2026, 11, 23, 0, 30)), 90 * MIN);

    bh = hours("all 00:00-24:00");
    cr_expect_eq(span(&bh, utc(2026, 11, 20, 16, 30), utc(2026, 11, 23, 9, 15)),
                 64 * HOUR + 45 * MIN);
    cr_expect_eq(span(&bh, -123456789, 987654321), 987654321 + 123456789);

    bh = hours("none");
    cr_expect_eq(span(&bh, utc(2000, 1, 1, 0, 0), utc(2030, 1, 1, 0, 0)), 0);
}

/* ---- hand-made offset tables ---- */

Test(bizhours, offset_lookup)
{
    static const struct smm_tz_span tz[] = {{1000, 3600}, {5000, 7200}, {9000, -1800}};
    struct smm_bizhours bh = hours("none");
    cr_expect_eq(smm_bizhours_offset(&bh, 123), 0); /* no table: UTC */
    bh.tz = tz;
    bh.n_tz = 3;
    cr_expect_eq(smm_bizhours_offset(&bh, -1000000), 3600); /* the first span, before it */
    cr_expect_eq(smm_bizhours_offset(&bh, 999), 3600);
    cr_expect_eq(smm_bizhours_offset(&bh, 1000), 3600);
    cr_expect_eq(smm_bizhours_offset(&bh, 4999), 3600);
    cr_expect_eq(smm_bizhours_offset(&bh, 5000), 7200);
    cr_expect_eq(smm_bizhours_offset(&bh, 8999), 7200);
    cr_expect_eq(smm_bizhours_offset(&bh, 9000), -1800);
    cr_expect_eq(smm_bizhours_offset(&bh, INT64_MAX), -1800);
    bh.n_tz = 1;
    cr_expect_eq(smm_bizhours_offset(&bh, 9000), 3600);
}

Test(bizhours, fixed_offset_shifts_the_hours)
{
    static const struct smm_tz_span tz[] = {{0, 3 * 3600}};
    struct smm_bizhours bh = hours("mon-fri 09:00-17:00");
    bh.tz = tz;
    bh.n_tz = 1;
    /* Fri 16:30 -> Mon 09:15 at UTC+3 = Fri 13:30Z -> Mon 06:15Z. */
    cr_expect_eq(span(&bh, utc(2026, 11, 20, 13, 30), utc(2026, 11, 23, 6, 15)), 45 * MIN);
    /* The same instants in UTC hours would be 3 h 30 + 0. */
    bh.n_tz = 0;
    cr_expect_eq(span(&bh, utc(2026, 11, 20, 13, 30), utc(2026, 11, 23, 6, 15)),
                 3 * HOUR + 30 * MIN);
}

Test(bizhours, fall_back_holds_the_wall_clock)
{
    /* Always open; at T (a Sunday 10:00Z) the offset drops from +2 h to +1 h. The wall
     * clock shows 12:00 at T-, would show 11:00 at T: it is held at 12:00 until T + 1 h. */
    const int64_t T = utc(2026, 11, 22, 10, 0);
    const struct smm_tz_span tz[] = {{0, 7200}, {T, 3600}};
    struct smm_bizhours bh = hours("all 00:00-24:00");
    bh.tz = tz;
    bh.n_tz = 2;
    cr_expect_eq(span(&bh, T - 1, T), 1);
    cr_expect_eq(span(&bh, T, T + 30 * MIN), 0);
    cr_expect_eq(span(&bh, T, T + HOUR), 0);
    cr_expect_eq(span(&bh, T, T + 2 * HOUR), HOUR);
    cr_expect_eq(span(&bh, T - HOUR, T + 2 * HOUR), 2 * HOUR); /* 3 real hours */
    /* Spring forward at U (+1 h -> +2 h): the skipped hour is credited at once. */
    const int64_t U = utc(2026, 11, 29, 10, 0);
    const struct smm_tz_span tz2[] = {{0, 3600}, {U, 7200}};
    bh.tz = tz2;
    cr_expect_eq(span(&bh, U - 1, U), HOUR + 1);
    cr_expect_eq(span(&bh, U - HOUR, U + HOUR), 3 * HOUR);
}

Test(bizhours, two_drops_in_a_row_stay_monotone)
{
    /* +3 h, then +2 h at T, then +1 h half an hour later: the wall clock (T + 3 h) is held
     * through both, until T + 2 h when +1 h catches up. */
    const int64_t T = utc(2026, 11, 22, 10, 0);
    const struct smm_tz_span tz[] = {{0, 3 * 3600}, {T, 2 * 3600}, {T + 30 * MIN, 3600}};
    struct smm_bizhours bh = hours("all 00:00-24:00");
    bh.tz = tz;
    bh.n_tz = 3;
    cr_expect_eq(span(&bh, T, T + 2 * HOUR), 0);
    cr_expect_eq(span(&bh, T, T + 3 * HOUR), HOUR);
    int64_t prev = smm_bizhours_clock(&bh, T - HOUR);
    for (int64_t t = T - HOUR; t <= T + 4 * HOUR; t += 7 * SEC) {
        int64_t b = smm_bizhours_clock(&bh, t);
        cr_assert_geq(b, prev, "B decreased at %lld", (long long)(t - T));
        prev = b;
    }
}

Test(bizhours, extreme_instants_do_not_overflow)
{
    static const struct smm_tz_span tz[] = {{0, -SMM_BIZHOURS_MAX_OFFSET_S - 999}, {5, 99999}};
    struct smm_bizhours bh = hours("mon-fri 09:00-17:00");
    bh.tz = tz;
    bh.n_tz = 2;
    cr_expect_eq(smm_bizhours_offset(&bh, 0), -SMM_BIZHOURS_MAX_OFFSET_S); /* clamped */
    int64_t lo = smm_bizhours_clock(&bh, INT64_MIN);
    int64_t mid = smm_bizhours_clock(&bh, 0);
    int64_t hi = smm_bizhours_clock(&bh, INT64_MAX);
    cr_expect(lo <= mid && mid <= hi);
}

/* ---- real zones ---- */

static struct smm_tz_span *load(const char *zone, int *n)
{
    struct smm_tz_span *tz = NULL;
    char err[256] = "";
    int rc = smm_tz_load(zone, utc(2026, 1, 1, 0, 0), utc(2027, 1, 1, 0, 0), &tz, n, err,
                         sizeof(err));
    cr_assert_eq(rc, SMM_OK, "%s: %s", zone, err);
    return tz;
}

Test(tz, load_new_york_and_berlin_2026)
{
    int n = 0;
    struct smm_tz_span *ny = load("America/New_York", &n);
    cr_assert_eq(n, 3);
    cr_expect_eq(ny[0].from_ms, utc(2026, 1, 1, 0, 0));
    cr_expect_eq(ny[0].offset_s, -5 * 3600);
    cr_expect_eq(ny[1].from_ms, utc(2026, 3, 8, 7, 0)); /* 02:00 EST -> 03:00 EDT */
    cr_expect_eq(ny[1].offset_s, -4 * 3600);
    cr_expect_eq(ny[2].from_ms, utc(2026, 11, 1, 6, 0)); /* 02:00 EDT -> 01:00 EST */
    cr_expect_eq(ny[2].offset_s, -5 * 3600);
    free(ny);

    struct smm_tz_span *be = load("Europe/Berlin", &n);
    cr_assert_eq(n, 3);
    cr_expect_eq(be[0].offset_s, 3600);
    cr_expect_eq(be[1].from_ms, utc(2026, 3, 29, 1, 0)); /* 02:00 CET -> 03:00 CEST */
    cr_expect_eq(be[1].offset_s, 7200);
    cr_expect_eq(be[2].from_ms, utc(2026, 10, 25, 1, 0)); /* 03:00 CEST -> 02:00 CET */
    cr_expect_eq(be[2].offset_s, 3600);

    struct smm_bizhours bh = hours("none");
    bh.tz = be;
    bh.n_tz = n;
    cr_expect_eq(smm_bizhours_offset(&bh, utc(2026, 3, 29, 1, 0) - 1), 3600);
    cr_expect_eq(smm_bizhours_offset(&bh, utc(2026, 3, 29, 1, 0)), 7200);
    free(be);

    /* A start off the hour grid: the hourly samples miss the changes by 17 min 23 s, the
     * bisection still finds the exact seconds. */
    char err[256] = "";
    int64_t from = utc(2026, 1, 1, 0, 17) + 23456;
    cr_assert_eq(smm_tz_load("America/New_York", from, utc(2027, 1, 1, 0, 0), &ny, &n, err,
                             sizeof(err)), SMM_OK, "%s", err);
    cr_assert_eq(n, 3);
    cr_expect_eq(ny[0].from_ms, from);
    cr_expect_eq(ny[1].from_ms, utc(2026, 3, 8, 7, 0));
    cr_expect_eq(ny[2].from_ms, utc(2026, 11, 1, 6, 0));
    free(ny);
}

Test(tz, utc_and_long_ranges)
{
    struct smm_tz_span *tz = NULL;
    int n = 0;
    char err[256] = "";
    cr_assert_eq(smm_tz_load("UTC", 123, 456, &tz, &n, err, sizeof(err)), SMM_OK, "%s", err);
    cr_expect_eq(n, 1);
    cr_expect_eq(tz[0].from_ms, 123);
    cr_expect_eq(tz[0].offset_s, 0);
    free(tz);
    /* 40 years of New York: two changes a year, also past the zone file's last listed
     * transition (2037), where libc follows the file's POSIX rule. */
    cr_assert_eq(smm_tz_load("America/New_York", utc(2000, 1, 1, 0, 0), utc(2040, 1, 1, 0, 0),
                             &tz, &n, err, sizeof(err)), SMM_OK, "%s", err);
    cr_expect_eq(n, 81);
    cr_expect_eq(tz[80].from_ms, utc(2039, 11, 6, 6, 0)); /* first Sunday of Nov 2039 */
    for (int i = 1; i < n; i++) {
        cr_expect_gt(tz[i].from_ms, tz[i - 1].from_ms);
        cr_expect_neq(tz[i].offset_s, tz[i - 1].offset_s);
    }
    free(tz);
}

Test(tz, rejects_bad_names_and_restores_tz)
{
    static const struct {
        const char *name;
        const char *want;
    } bad[] = {
        {"", "empty name"},
        {"Nowhere/City", "unknown zone"},
        {"America", "unknown zone"}, /* a directory */
        {"../../../etc/passwd", "\"..\""},
        {"/etc/localtime", "no absolute paths"},
        {"zone.tab", "invalid character '.'"},
        {"Europe/Berlin ", "invalid character ' '"},
    };
    setenv("TZ", "Asia/Tokyo", 1);
    tzset();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct smm_tz_span *tz = (struct smm_tz_span *)&bad; /* must stay untouched */
        int n = -7;
        char err[256] = "";
        cr_expect_eq(smm_tz_load(bad[i].name, 0, 1000, &tz, &n, err, sizeof(err)), SMM_ERR,
                     "\"%s\" accepted", bad[i].name);
        cr_expect(strstr(err, bad[i].want), "\"%s\": \"%s\" lacks \"%s\"", bad[i].name, err,
                  bad[i].want);
        cr_expect_eq(tz, (struct smm_tz_span *)&bad);
        cr_expect_eq(n, -7);
    }
    struct smm_tz_span *tz = NULL;
    int n = 0;
    char err[256] = "";
    cr_expect_eq(smm_tz_load("UTC", 10, 5, &tz, &n, err, sizeof(err)), SMM_ERR);
    cr_expect(strstr(err, "empty range"), "%s", err);

    /* A successful load puts TZ back, and libc follows it again. */
    cr_assert_eq(smm_tz_load("Europe/Berlin", 0, DAY, &tz, &n, err, sizeof(err)), SMM_OK,
                 "%s", err);
    free(tz);
    cr_expect_str_eq(getenv("TZ"), "Asia/Tokyo");
    time_t t0 = 0;
    struct tm tm;
    cr_assert(localtime_r(&t0, &tm));
    cr_expect_eq(tm.tm_gmtoff, 9 * 3600);
    unsetenv("TZ");
    tzset();
    cr_assert_eq(smm_tz_load("America/New_York", 0, DAY, &tz, &n, err, sizeof(err)), SMM_OK,
                 "%s", err);
    free(tz);
    cr_expect_null(getenv("TZ"));
}

Test(tz, tzdir_is_honoured_and_files_are_checked)
{
    char dir[] = "/tmp/smm-tzdir-XXXXXX";
    cr_assert(mkdtemp(dir));
    char sub[128];
    char file[160];
    snprintf(sub, sizeof(sub), "%s/Fake", dir);
    snprintf(file, sizeof(file), "%s/Zone", sub);
    cr_assert_eq(mkdir(sub, 0700), 0);
    FILE *f = fopen(file, "w");
    cr_assert(f);
    fputs("not a zone\n", f);
    fclose(f);
    setenv("TZDIR", dir, 1);
    struct smm_tz_span *tz = NULL;
    int n = 0;
    char err[256] = "";
    cr_expect_eq(smm_tz_load("Fake/Zone", 0, DAY, &tz, &n, err, sizeof(err)), SMM_ERR);
    cr_expect(strstr(err, "is not a zone file"), "%s", err);
    cr_expect_eq(smm_tz_load("America/New_York", 0, DAY, &tz, &n, err, sizeof(err)), SMM_ERR);
    cr_expect(strstr(err, "unknown zone"), "%s", err);
    unsetenv("TZDIR");
    unlink(file);
    rmdir(sub);
    rmdir(dir);
}

/* ---- business time across the 2026 DST changes ---- */

Test(tz, new_york_across_both_changes)
{
    int n = 0;
    struct smm_tz_span *ny = load("America/New_York", &n);
    struct smm_bizhours bh = hours("mon-fri 09:00-17:00");
    bh.tz = ny;
    bh.n_tz = n;
    /* Spring: Fri Mar 6 16:00 EST -> Mon Mar 9 10:00 EDT (65 real hours) = 1 h + 1 h. A
     * fixed EST offset would put the reply at 09:00 and give 1 h. */
    cr_expect_eq(span(&bh, loc(2026, 3, 6, 16, 0, -5), loc(2026, 3, 9, 10, 0, -4)), 2 * HOUR);
    /* Fall: Fri Oct 30 16:00 EDT -> Mon Nov 2 10:00 EST (67 real hours) = 2 h. */
    cr_expect_eq(span(&bh, loc(2026, 10, 30, 16, 0, -4), loc(2026, 11, 2, 10, 0, -5)),
                 2 * HOUR);
    /* Same local time a week later, across each change: 40 h. */
    cr_expect_eq(span(&bh, loc(2026, 3, 4, 12, 0, -5), loc(2026, 3, 11, 12, 0, -4)), 40 * HOUR);
    cr_expect_eq(span(&bh, loc(2026, 10, 28, 12, 0, -4), loc(2026, 11, 4, 12, 0, -5)),
                 40 * HOUR);

    /* Always open: the wall-clock day rule. The 23-hour spring Sunday counts 24 h, the
     * 25-hour fall Sunday counts 24 h, and the repeated hour 01:00-02:00 EST counts 0. */
    bh = hours("all 00:00-24:00");
    bh.tz = ny;
    bh.n_tz = n;
    cr_expect_eq(span(&bh, loc(2026, 3, 8, 0, 0, -5), loc(2026, 3, 9, 0, 0, -4)), 24 * HOUR);
    cr_expect_eq(span(&bh, utc(2026, 3, 8, 7, 0) - 1, utc(2026, 3, 8, 7, 0)), HOUR + 1);
    cr_expect_eq(span(&bh, loc(2026, 11, 1, 0, 0, -4), loc(2026, 11, 2, 0, 0, -5)), 24 * HOUR);
    cr_expect_eq(span(&bh, utc(2026, 11, 1, 5, 0), utc(2026, 11, 1, 6, 0)), HOUR);
    cr_expect_eq(span(&bh, utc(2026, 11, 1, 6, 0), utc(2026, 11, 1, 7, 0)), 0);
    cr_expect_eq(span(&bh, utc(2026, 11, 1, 7, 0), utc(2026, 11, 1, 8, 0)), HOUR);
    /* The whole year, local midnight to local midnight: 365 days. */
    cr_expect_eq(span(&bh, loc(2026, 1, 1, 0, 0, -5), loc(2027, 1, 1, 0, 0, -5)), 365 * DAY);
    free(ny);
}

Test(tz, berlin_across_both_changes)
{
    int n = 0;
    struct smm_tz_span *be = load("Europe/Berlin", &n);
    struct smm_bizhours bh = hours("mon-fri 09:00-17:00");
    bh.tz = be;
    bh.n_tz = n;
    /* Fri Mar 27 16:00 CET -> Mon Mar 30 10:00 CEST = 2 h. */
    cr_expect_eq(span(&bh, loc(2026, 3, 27, 16, 0, 1), loc(2026, 3, 30, 10, 0, 2)), 2 * HOUR);
    /* Fri Oct 23 16:00 CEST -> Mon Oct 26 10:00 CET = 2 h. */
    cr_expect_eq(span(&bh, loc(2026, 10, 23, 16, 0, 2), loc(2026, 10, 26, 10, 0, 1)), 2 * HOUR);
    /* Summer: Wed 08:30 CEST -> Wed 17:30 CEST = 8 h (06:30Z -> 15:30Z). */
    cr_expect_eq(span(&bh, utc(2026, 7, 15, 6, 30), utc(2026, 7, 15, 15, 30)), 8 * HOUR);
    free(be);
}

Test(tz, same_instants_differ_by_zone)
{
    int n_ny = 0;
    int n_be = 0;
    struct smm_tz_span *ny = load("America/New_York", &n_ny);
    struct smm_tz_span *be = load("Europe/Berlin", &n_be);
    struct smm_bizhours u = hours("mon-fri 09:00-17:00");
    struct smm_bizhours a = u;
    a.tz = ny;
    a.n_tz = n_ny;
    struct smm_bizhours b = u;
    b.tz = be;
    b.n_tz = n_be;
    /* Fri Mar 6 21:00Z -> Mon Mar 9 14:00Z.
     * UTC: Fri 21:00 (closed) -> Mon 14:00: 5 h.
     * New York: Fri 16:00 EST -> Mon 10:00 EDT: 1 h + 1 h.
     * Berlin: Fri 22:00 CET (closed) -> Mon 15:00 CET: 6 h. */
    int64_t m = utc(2026, 3, 6, 21, 0);
    int64_t r = utc(2026, 3, 9, 14, 0);
    cr_expect_eq(span(&u, m, r), 5 * HOUR);
    cr_expect_eq(span(&a, m, r), 2 * HOUR);
    cr_expect_eq(span(&b, m, r), 6 * HOUR);
    /* Fri Oct 30 20:00Z -> Mon Nov 2 15:00Z.
     * UTC: closed -> Mon 15:00: 6 h. New York: Fri 16:00 EDT -> Mon 10:00 EST: 2 h.
     * Berlin (CET since Oct 25): Fri 21:00 -> Mon 16:00: 7 h. */
    m = utc(2026, 10, 30, 20, 0);
    r = utc(2026, 11, 2, 15, 0);
    cr_expect_eq(span(&u, m, r), 6 * HOUR);
    cr_expect_eq(span(&a, m, r), 2 * HOUR);
    cr_expect_eq(span(&b, m, r), 7 * HOUR);
    free(ny);
    free(be);
}

static void sweep(const struct smm_bizhours *bh, int64_t from, int64_t to, int64_t step,
                  const char *what)
{
    int64_t prev = smm_bizhours_clock(bh, from);
    for (int64_t t = from + step; t <= to; t += step) {
        int64_t b = smm_bizhours_clock(bh, t);
        if (b < prev) {
            cr_assert_fail("%s: B decreased at %lld (%lld -> %lld)", what, (long long)t,
                           (long long)prev, (long long)b);
        }
        /* B never runs faster than real time, except for a spring-forward jump (1 h). */
        if (b - prev > step + HOUR) {
            cr_assert_fail("%s: B jumped %lld ms in %lld ms at %lld", what,
                           (long long)(b - prev), (long long)step, (long long)t);
        }
        prev = b;
    }
}

Test(tz, monotone_over_a_sweep_across_the_changes)
{
    static const char *const zones[] = {"America/New_York", "Europe/Berlin"};
    static const char *const specs[] = {
        "mon-fri 09:00-17:00", "all 00:00-24:00", "sun 00:30-03:30",
        "sun 01:00-02:30; sat 23:00-24:00", "sun 02:15-02:45",
    };
    const int64_t changes[] = {utc(2026, 3, 8, 7, 0), utc(2026, 11, 1, 6, 0),
                               utc(2026, 3, 29, 1, 0), utc(2026, 10, 25, 1, 0)};
    for (size_t z = 0; z < 2; z++) {
        int n = 0;
        struct smm_tz_span *tz = load(zones[z], &n);
        for (size_t s = 0; s < sizeof(specs) / sizeof(specs[0]); s++) {
            struct smm_bizhours bh = hours(specs[s]);
            bh.tz = tz;
            bh.n_tz = n;
            char what[128];
            snprintf(what, sizeof(what), "%s, %s", zones[z], specs[s]);
            /* The whole year at an odd step, then each change closely. */
            sweep(&bh, utc(2026, 1, 1, 0, 0), utc(2027, 1, 1, 0, 0), 7 * MIN + 13500, what);
            for (size_t c = 0; c < 4; c++) {
                sweep(&bh, changes[c] - 3 * HOUR, changes[c] + 3 * HOUR, SEC, what);
                sweep(&bh, changes[c] - 2 * SEC, changes[c] + 2 * SEC, 1, what);
            }
        }
        free(tz);
    }
}
