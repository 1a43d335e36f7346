/* metrics/seismic.h - online SEISMIC estimate of one post's final reshare count.
 *
 * SEISMIC (Zhao, Erdogdu, He, Rajaraman, Leskovec, KDD 2015, arXiv:1506.02594) models
 * reshares as a self-exciting point process: reshare i at time t_i (seconds after the post)
 * exposes its author's n_i followers, and reshares then arrive at the rate
 *     lambda(t) = p_t x sum_{t_i <= t} n_i phi(t - t_i).
 * The original post is event 0 at t_0 = 0 with n_0 = the author's followers: it adds
 * exposure but is not a reshare. Formulas follow the reference R package (CRAN `seismic`,
 * R/tweetfunctions.R) and notes/metrics.md section 5.3; times below in seconds.
 *
 *  Memory kernel, c = 6.265725e-4, theta = 0.2314843, s0 = 300 (integrates to 1):
 *      phi(s) = c                          for 0 <= s < s0
 *             = c (s / s0)^-(1 + theta)    for s >= s0
 *      1 - Phi(s) = 1 - c s                for s <= s0
 *                 = c s0^(1+theta) / theta x s^-theta   for s > s0
 *  Window at time t: w = clamp(t/2, 300, 7200), [lo, t) with lo = t - w. When fewer than
 *      5 events (the original post counts here, as in the R code) fall in [lo, t), lo moves
 *      back to the 6th most recent event before t (to 0 when there are fewer than 6) and
 *      w = t - lo (that event then has weight 0). When t < 300 s and there are fewer
 *      than 6 events, this makes w = t, narrower than 300 s, exactly as the R code does.
 *  Triangular weight K(s) = 1 - (t - s)/w on [lo, t].
 *  Infectiousness:
 *      p_t = sum_{reshares j: lo <= t_j < t} K(t_j)
 *            / sum_{events i, original included} n_i x I_i,
 *      I_i = integral_{max(lo,t_i)}^{t} phi(s - t_i) K(s) ds
 *  Bounds ("95 %" in the package; each is a one-sided 95 % bound, together a 90 % band):
 *      p_low = p_t x chi2_{0.05}(2m) / (2m),  p_high = p_t x chi2_{0.95}(2m) / (2m),
 *      m = reshares in [lo, t) (the zero-weight one included, as in the R code).
 *      p_t = p_low = p_high = 0 when the weighted count is 0.
 *  Prediction, R_t = reshares with t_i <= t, n* = mean degree (default 100):
 *      N_inf(t) = R_t + p_t x sum_{events i, t_i <= t} n_i (1 - Phi(t - t_i)) / (1 - p_t n*)
 *      supercritical when p_t > 1/n*: predicted_final = INFINITY (as the R code returns Inf).
 *      supercritical_conservative when p_low x n* >= 1.
 *  If the exposure integral is 0 while reshares carry weight (every n_i = 0), p_t and its
 *  bounds are INFINITY and the cascade is reported supercritical, as the R code would.
 *
 * Memory and exactness. The newest SMM_SEISMIC_EXACT_EVENTS reshares are kept exactly
 * (16 bytes each); while a post has at most that many, every figure equals the per-event
 * computation above (the tests agree with a port of the R code to 1e-9). Beyond that the
 * oldest half is folded into time bins of (count, sum n_i, sum t_i, sum n_i t_i), 32 bytes
 * each, laid out by post age:
 *     10-second bins up to 15 min (while the window is only 300 s wide), 1-minute up to
 *     6 h, 10-minute up to 48 h, 1-hour up to 14 days, 1-day up to 98 days, then one open
 *     bin: SMM_SEISMIC_MAX_BINS = 90 + 345 + 252 + 288 + 84 + 1 = 1060 bins.
 * A bin stands for its events placed at its count-weighted mean time (window membership,
 * numerator, R_t, m) and at its follower-weighted mean time (exposure integral and the
 * prediction's tail sum). The numerator is linear in t_j, so a bin wholly inside the
 * window is exact; the error comes from the curvature of the kernel integrals across a bin
 * (second order in bin width / window width) and from bins cut by the window edge.
 * Measured (tests/unit/test_seismic.c, seismic.binned_vs_exact): three synthetic cascades
 * of 20,000 reshares each, estimated at 10 checkpoints from 10 min to 30 days while
 * streaming; largest relative difference to the exact computation 3.0e-4 for p_t and its
 * bounds (at t = 30 min, 1-minute bins in a 15-minute window) and 1.3e-4 for the predicted
 * final size; below 1.2e-4 for p_t at every other checkpoint. That is far inside SEISMIC's
 * own error (about 15 % on final size after one hour) and the width of the p_t bounds.
 * History is never dropped: about 19 % of the kernel's mass lies beyond 48 h.
 * Worst case per post (x86-64): 80-byte header + 256 x 16 + 1060 x 32 = 38,096 bytes. Both
 * arrays grow on demand: a post with 8 reshares holds 208 bytes, one with 256 holds 4,176,
 * and bins are allocated only up to the newest binned reshare's age (rounded up to a
 * power of two).
 * Cost: smm_seismic_estimate walks the buffer and the bins in use: about 16 us with 200
 * reshares, 80 us with a full buffer and all bins (x86-64, -O2).
 *
 * Time is an argument: t in milliseconds since the post (the processor computes it from
 * event time); nothing here reads a clock. Not thread-safe: one owner thread per object. */
#ifndef SMM_METRICS_SEISMIC_H
#define SMM_METRICS_SEISMIC_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/event.h"

#define SMM_SEISMIC_N_STAR_DEFAULT 100.0 /* n*: mean follower count of the network */
#define SMM_SEISMIC_EXACT_EVENTS   256   /* newest reshares kept exactly */
#define SMM_SEISMIC_MAX_BINS       1060  /* see the bin schedule above */

struct smm_seismic; /* opaque; see metrics/seismic.c */

struct smm_seismic_estimate {
    double p;                       /* p_t, the infectiousness */
    double p_low, p_high;           /* chi-square bounds on p_t */
    double predicted_final;         /* N_inf(t); INFINITY when supercritical (or 1 - p_t n* <= 0) */
    int supercritical;              /* p_t > 1/n* */
    int supercritical_conservative; /* p_low x n* >= 1 */
    int64_t reshares;               /* R_t: reshares with t_i <= t */
    int64_t window_reshares;        /* m: reshares in [lo, t) */
    double window_ms;               /* w in ms, after widening */
};

/* Creates an estimator for one post with n* = SMM_SEISMIC_N_STAR_DEFAULT. Caller owns the
 * result; free it with smm_seismic_destroy(), which accepts NULL. Returns NULL and writes
 * the reason into errstr (when errstr_size > 0) when out of memory. */
struct smm_seismic *smm_seismic_new(char *errstr, size_t errstr_size);
void smm_seismic_destroy(struct smm_seismic *s);

/* Sets n*. Returns SMM_OK, or SMM_ERR (nothing changed) unless n_star is finite and > 0. */
int smm_seismic_set_n_star(struct smm_seismic *s, double n_star);

/* Records the original post: event 0 at t = 0 with the author's follower count (>= 0).
 * Call once; reshares may be observed before or after it. Returns SMM_OK, or SMM_ERR
 * when already started or author_followers < 0. */
int smm_seismic_start(struct smm_seismic *s, int64_t author_followers);

/* Records one reshare at t_ms_since_post (>= 0; any order) by a user with `followers`
 * followers (>= 0). Returns SMM_OK, or SMM_ERR (not recorded) on a negative argument or
 * out of memory. Amortised O(1) for in-order input; O(SMM_SEISMIC_EXACT_EVENTS) worst case.
 * No deduplication: feed each reshare once (the same as smm_cascade_add(), metrics/
 * virality.h, which counts every call too). */
int smm_seismic_observe(struct smm_seismic *s, int64_t t_ms_since_post, int64_t followers);

/* Estimates at t_now_since_post_ms (> 0) from the events with t_i <= t_now (see the
 * formulas above; events after t_now are ignored, binned ones by their mean time).
 * O(SMM_SEISMIC_EXACT_EVENTS + bins in use). Writes *out and returns SMM_OK, or returns
 * SMM_ERR (out untouched) when s or out is NULL, smm_seismic_start() was not called, or
 * t_now_since_post_ms <= 0. */
int smm_seismic_estimate(const struct smm_seismic *s, int64_t t_now_since_post_ms,
                         struct smm_seismic_estimate *out);

/* Reshares observed so far (whatever their time). */
int64_t smm_seismic_reshares(const struct smm_seismic *s);

/* Bytes currently allocated for this estimator, header included. */
size_t smm_seismic_memory_bytes(const struct smm_seismic *s);

/* Quantile of the chi-square distribution with `dof` degrees of freedom (dof > 0): the x
 * with P(X <= x) = prob. Wilson-Hilferty start, then safeguarded Newton on the regularised
 * lower incomplete gamma P(dof/2, x/2); agrees with tables to 1e-4 and with the closed-form
 * CDF of even dof to 1e-9 relative (tests). Returns 0 for prob == 0 (and when the quantile
 * underflows a double), INFINITY for prob == 1, NAN for bad arguments. */
double smm_seismic_chisq_quantile(double prob, double dof);

#endif
