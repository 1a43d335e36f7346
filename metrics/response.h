/* metrics/response.h - first-response-time (FRT) histograms: bucketing and summaries.
 *
 * Why a log histogram: FRT runs from seconds to days, the figures people ask for are
 * percentiles, and Redis can only add. Counting waits per logarithmic bucket gives
 * percentiles with a fixed relative error, and windows (or days, or accounts) merge by
 * adding counts bucket by bucket, so a percentile of a merged histogram is exactly the
 * percentile of all its waits at the histogram's resolution (no averaging of percentiles).
 *
 * Buckets (CONTRACT-5.md; gamma = SMM_FRT_GAMMA = 1.04):
 *   bucket(ms) = 0                          when ms <= 1
 *              = ceil(ln(ms) / ln(gamma))   otherwise
 * so bucket b >= 1 covers (gamma^(b-1), gamma^b] milliseconds. Its representative value
 * is 2 gamma^b / (gamma + 1), the value whose relative distance to both ends of the bucket
 * is the same, (gamma - 1) / (gamma + 1) = 1.96 %: every duration of 2 ms or more is
 * reported within 1.96 % of its true value. Bucket 0 (0 or 1 ms) has the same formula's
 * representative, 2 / 2.04 = 0.98 ms (a 1 ms reply reads as 1.0 ms in the API, not 0).
 * Examples: 2 ms -> 18, 1 s -> 177, 1 min -> 281, 1 h -> 385, 1 day -> 466, 30 days -> 553.
 *
 * Floating point: the state script (connectors/lua/smm.lua) computes the bucket index as
 * math.ceil(math.log(ms) / math.log(1.04)); Redis' Lua calls the C library's log() on
 * doubles. smm_frt_bucket() does the very same operations in double, ln(1.04) included
 * (computed by log() at run time, not folded by the compiler), so both sides agree even
 * for a duration whose ratio lands next to an integer (with the same libm). No integer
 * ms > 1 lies exactly on a boundary: gamma^b = 26^b / 25^b is not an integer for b >= 1.
 *
 * Readers (the HTTP API) look at buckets 0..SMM_FRT_MAX_BUCKET: 1.04^600 ms is about
 * 192 days, far above any reply deadline. Larger indices are valid buckets; callers that
 * keep a dense histogram fold them into the last one (smm_frt_hist_add_ms()).
 *
 * Percentile q of n waits (q = 0.5, 0.9, 0.99): the representative value of the bucket
 * holding the wait of rank ceil(q x n) (1-based, smallest first). The rank is computed in
 * integers (no 0.9 x 10 = 9.000000000000002 surprises). The mean is sum_ms / n exactly
 * (the sum of the true durations is kept beside the histogram, not estimated).
 *
 * Pure: no I/O, no allocation, no clock; thread-safe. */
#ifndef SMM_METRICS_RESPONSE_H
#define SMM_METRICS_RESPONSE_H

#include <stdint.h>

#include "metrics/event.h" /* SMM_OK, SMM_ERR */

#define SMM_FRT_GAMMA 1.04
#define SMM_FRT_MAX_BUCKET 600

/* The bucket of a duration in milliseconds (see above); 0 when ms <= 1. */
int smm_frt_bucket(int64_t ms);

/* The representative duration of bucket b, in ms: 2 gamma^b / (gamma + 1), bucket 0
 * included (0.98 ms); 0 for b < 0 (not a bucket). */
double smm_frt_bucket_value(int b);

struct smm_frt_summary {
    int64_t n;      /* waits counted (sum of the bucket counts) */
    double mean_ms; /* sum_ms / n; 0 when n = 0 */
    double p50_ms, p90_ms, p99_ms; /* representative values; 0 when n = 0 */
};

/* Summarizes a sparse histogram: counts[i] waits in bucket buckets[i], for i < n, with
 * buckets in non-decreasing order (a bucket may repeat: its counts add up) and sum_ms the
 * sum of the waits' true durations. Arrays may be NULL when n is 0. Returns SMM_OK, or
 * SMM_ERR (out untouched) when n < 0, a bucket is negative or out of order, a count is
 * negative, or the total count overflows. */
int smm_frt_summarize(const int *buckets, const int64_t *counts, int n, int64_t sum_ms,
                      struct smm_frt_summary *out);

/* A dense histogram over buckets 0..SMM_FRT_MAX_BUCKET (4.8 KB): for merging windows, days
 * or accounts by adding counts. Zero it (= {0} or memset) before use. */
struct smm_frt_hist {
    int64_t count[SMM_FRT_MAX_BUCKET + 1];
    int64_t sum_ms;
};

/* Adds count waits to bucket b (b > SMM_FRT_MAX_BUCKET goes to the last bucket). Returns
 * SMM_OK, or SMM_ERR when b < 0, count < 0 or the bucket's count would overflow. */
int smm_frt_hist_add(struct smm_frt_hist *h, int b, int64_t count);
/* Records one wait of ms milliseconds (its bucket and its duration in sum_ms). */
int smm_frt_hist_add_ms(struct smm_frt_hist *h, int64_t ms);
/* dst += src, bucket by bucket, sums too. SMM_ERR (dst unchanged) on overflow. */
int smm_frt_hist_merge(struct smm_frt_hist *dst, const struct smm_frt_hist *src);
/* smm_frt_summarize() of the histogram's non-empty buckets and its sum_ms. */
int smm_frt_hist_summarize(const struct smm_frt_hist *h, struct smm_frt_summary *out);

#endif
