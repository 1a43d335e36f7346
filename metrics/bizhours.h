/* metrics/bizhours.h - business hours in a time zone, and the business clock.
 *
 * First-response time "in business hours" must not count nights, weekends or the hours a
 * brand is closed, and it must do so in the brand's own time zone, across its daylight-
 * saving changes. Everything here is pure (no I/O, no getenv, no libc time-zone calls):
 * the zone arrives as a table of UTC offsets (processor/tz.h builds it from tzdata), so
 * tests and replays give the same answer on any machine.
 *
 * THE BUSINESS CLOCK. B(t) = business milliseconds elapsed from a fixed origin (local
 * Sunday 1970-01-04 00:00) to the instant t (ms since the Unix epoch, UTC). It is a closed
 * form - whole weeks x the weekly hours, plus the whole days of the partial week, plus the
 * open part of the last day - so it costs a binary search over the zone table (and a look
 * at the spans that began in the 52 hours before t, for the rule below), no loop over
 * days. Business-hours first-response time = B(reply) - B(message): time outside opening
 * hours counts nothing, a message sent at night starts counting at the next opening, a
 * reply sent at night counts the business time up to the close.
 *
 * LOCAL TIME AND DST. Business hours are wall-clock hours, so B is evaluated on the local
 * wall clock L(t) = t + offset(t), with one rule that keeps B non-decreasing:
 *     L(t) = max(t + offset(t), the largest wall-clock time already shown before t)
 * i.e. after a fall-back transition the wall clock is held at the transition's wall time
 * until the repeated hour has passed, and then runs on (the repeated hour counts once, as
 * it was first lived). A spring-forward transition makes the wall clock jump: the skipped
 * hour is credited at once. Consequently a day's business length is its wall-clock length:
 * a transition INSIDE opening hours makes that day's hours one real hour shorter (fall
 * back) or longer (spring forward) than the wall clock says, e.g. with 24/7 hours the
 * 25-hour fall-back Sunday counts 24 business hours. Transitions at night - the normal case,
 * 01:00-03:00 local - fall outside opening hours and change nothing.
 *
 * Offsets must lie within +-SMM_BIZHOURS_MAX_OFFSET_S (26 h, the TZif limit); larger
 * values are clamped to it.
 *
 * SPEC GRAMMAR (smm_bizhours_parse; docs/business-hours.md):
 *     spec   = "none" | clause { ";" clause }
 *     clause = days " " HH:MM "-" HH:MM
 *     days   = item { "," item }      item = day | day "-" day | "all"
 *     day    = sun | mon | tue | wed | thu | fri | sat     (case-insensitive)
 * A range "fri-mon" wraps over the weekend. Times are local, 00:00..23:59 for the opening,
 * 00:01..24:00 for the close, close after open (no overnight ranges: split them, e.g.
 * "fri 22:00-24:00; sat 00:00-06:00"). One range per day. Days not named are closed.
 * "all 00:00-24:00" is always open; "none" is never open. */
#ifndef SMM_METRICS_BIZHOURS_H
#define SMM_METRICS_BIZHOURS_H

#include <stddef.h>
#include <stdint.h>

#define SMM_BIZHOURS_MAX_OFFSET_S (26 * 3600)

/* UTC offset offset_s (local = UTC + offset) valid from from_ms (UTC) until the next span.
 * Sorted by from_ms; the first span also applies before its from_ms. */
struct smm_tz_span {
    int64_t from_ms;
    int32_t offset_s;
};

/* Opening hours per weekday (0 = Sunday .. 6 = Saturday), in local minutes of the day:
 * open at open_min, closed from close_min (<= 1440 = 24:00). open == close = closed all
 * day. tz/n_tz: the zone's offsets (not owned; n_tz == 0 = UTC). */
struct smm_bizhours {
    int open_min[7];
    int close_min[7];
    const struct smm_tz_span *tz;
    int n_tz;
};

/* Parses spec (grammar above) into bh's open_min/close_min. Leaves tz and n_tz untouched,
 * and on error all of bh. SMM_OK, or SMM_ERR with a message in err. */
int smm_bizhours_parse(const char *spec, struct smm_bizhours *bh, char *err, size_t errsz);

/* The UTC offset (seconds) in force at ts_ms: 0 when n_tz == 0. O(log n_tz). */
int32_t smm_bizhours_offset(const struct smm_bizhours *bh, int64_t ts_ms);

/* The business clock B(ts_ms), non-decreasing in ts_ms (see above). O(log n_tz). */
int64_t smm_bizhours_clock(const struct smm_bizhours *bh, int64_t ts_ms);

#endif
