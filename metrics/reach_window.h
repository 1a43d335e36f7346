/* metrics/reach_window.h - distinct users of one piece of content in rolling windows.
 *
 * The viral detector asks, often and for many posts at once, "how many distinct users saw
 * this post in the last 5 minutes / the last 60 minutes". One smm_rwin per post answers
 * that for any window of 1..horizon minutes ending at any minute:
 *
 *   count(now, W) = |{ users u : latest(u) in (now - W, now] and latest(u) > newest - H }|
 *
 * where latest(u) is the newest minute among u's accepted sightings, newest the newest
 * minute accepted so far and H the horizon. A sighting is accepted when its minute is
 * > newest - H (so at most H minutes late); older ones are refused with SMM_RWIN_LATE: no
 * window ending at or after `newest` could contain them. In the normal case, now >= newest
 * (the cron's clock runs ahead of event time), the second condition is implied by W <= H and
 * the count is simply the number of users seen in the window.
 *
 * Two modes (metrics/reach_window.c has the design):
 *  exact    while at most SMM_RWIN_EXACT_MAX users were seen within the horizon: a hash
 *           table of (user hash -> latest minute); count() is exact (up to collisions of
 *           the 64-bit user hashes). Users older than the horizon are dropped, so a post
 *           with a steady trickle of viewers stays exact however long it lives.
 *  sketch   from the (SMM_RWIN_EXACT_MAX + 1)-th live user on: a sliding HyperLogLog with
 *           m = 2^SMM_RWIN_PRECISION registers, each holding the (minute, rank) pairs
 *           that can still be the register's maximum in some window; count() is the
 *           HyperLogLog estimate (linear counting below 2.5 m) over the window's maxima.
 *           A post whose every sighting falls out of the horizon returns to exact mode on
 *           its next accepted sighting.
 *
 * Accuracy (sketch mode, p = 11, m = 2048): standard error 1.04 / sqrt(m) = 2.30 %.
 * Measured by bench/rwin_bench.c over 200 independent user sets per size, window counts
 * from 1,000 to 1,000,000 users: see metrics/reach_window.c for the table; the relative
 * RMS error stays at or below the standard error, bias below 0.5 %.
 *
 * Memory (x86-64; smm_rwin_memory_bytes() reports the current figure, malloc overhead
 * excluded): 48 bytes empty; exact mode adds 12 bytes per hash slot, the table a power of
 * two of at least 4 slots at most 3/4 full: 96 bytes for 1-3 users, 144 for 4-6, up to
 * 48 + 1024 x 12 = 12,336 bytes at SMM_RWIN_EXACT_MAX users. Sketch mode holds 48 +
 * 12,304 + 4 bytes per arena entry; see metrics/reach_window.c for measured totals and
 * the worst-case bound.
 *
 * Time is an argument: minutes are floor(event_ms / 60000); nothing here reads a clock.
 * Not thread-safe: one owner thread per object. */
#ifndef SMM_METRICS_REACH_WINDOW_H
#define SMM_METRICS_REACH_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/event.h"

/* log2 of the HyperLogLog register count. 10, 11 or 12 (standard error 3.25 %, 2.30 %,
 * 1.63 %); sketch memory roughly doubles per step. */
#ifndef SMM_RWIN_PRECISION
#define SMM_RWIN_PRECISION 11
#endif
#define SMM_RWIN_EXACT_MAX   768     /* most live users kept exactly (1024 slots x 3/4) */
#define SMM_RWIN_HORIZON_MAX 1440    /* largest horizon: one day */
#define SMM_RWIN_MINUTE_MAX  (1LL << 40) /* |minute| bound, about 2 million years */

/* smm_rwin_add() result besides SMM_OK and SMM_ERR. */
#define SMM_RWIN_LATE 1 /* minute <= newest - horizon: ignored */

struct smm_rwin; /* opaque; see metrics/reach_window.c */

/* Creates an empty counter that can answer windows of 1..horizon_minutes minutes
 * (horizon_minutes in 1..SMM_RWIN_HORIZON_MAX). Caller owns the result; free it with
 * smm_rwin_destroy(), which accepts NULL. Returns NULL and writes the reason into errstr
 * (when errstr_size > 0) on a bad horizon or out of memory. */
struct smm_rwin *smm_rwin_new(int horizon_minutes, char *errstr, size_t errstr_size);
void smm_rwin_destroy(struct smm_rwin *w);

/* Records that the user with hash user_hash saw the content during `minute`
 * (floor(event_ms / 60000)). user_hash should identify the user, e.g. smm_hash64() of the
 * user id (metrics/hash.h); it is mixed again here, so plain integer ids work too. Any
 * order within the horizon: a sighting older than the user's latest changes nothing.
 * Returns:
 *  SMM_OK         recorded (or already implied by a newer sighting of the same user).
 *  SMM_RWIN_LATE  minute <= newest - horizon (newest: the newest minute accepted so far):
 *                 ignored, nothing changed.
 *  SMM_ERR        w NULL, |minute| > SMM_RWIN_MINUTE_MAX, or out of memory: nothing
 *                 changed that any count() could see.
 * Exact mode: amortised O(1). Sketch mode: O(entries of one register), typically < 10. */
int smm_rwin_add(struct smm_rwin *w, uint64_t user_hash, int64_t minute);

/* Distinct users whose latest sighting lies in (now_minute - window_minutes, now_minute]
 * (and after newest - horizon; see the formula above). window_minutes in 1..horizon.
 * Exact (an integer) in exact mode, an estimate in sketch mode. Windows that contain no
 * accepted minute give 0. Returns NAN when w is NULL or window_minutes is out of range.
 * When now_minute < newest, exact mode still answers exactly; sketch mode may undercount,
 * because a pair older than now_minute is dropped once a newer pair of the same register
 * has an equal or higher rank. Cost: O(table slots) <= 1024 slots in exact mode,
 * O(2^SMM_RWIN_PRECISION) in sketch mode (about 10 us at p = 11; metrics/reach_window.c). */
double smm_rwin_count(const struct smm_rwin *w, int64_t now_minute, int window_minutes);

/* Bytes currently allocated for this counter, header included (malloc overhead not). */
size_t smm_rwin_memory_bytes(const struct smm_rwin *w);

#endif
