/* metrics/response.c - first-response-time histogram buckets and percentile summaries.
 *
 * The bucket index must match the state script's Lua bit for bit (see response.h), so it
 * is computed exactly as Lua does: two log() calls and a division in double, then ceil.
 * Everything else is integer bookkeeping: ranks ceil(q n) in integers, counts checked for
 * overflow, so a summary is a function of the counts alone. */
#include "metrics/response.h"

#include <math.h>
#include <stddef.h>

/* ln(gamma) from the C library at run time, as Lua's math.log(1.04) gets it: a constant
 * folded by the compiler (correctly rounded) could differ from libm in the last bit. */
static double log_gamma(void)
{
    volatile double g = SMM_FRT_GAMMA;
    return log(g);
}

int smm_frt_bucket(int64_t ms)
{
    if (ms <= 1) {
        return 0;
    }
    return (int)ceil(log((double)ms) / log_gamma());
}

double smm_frt_bucket_value(int b)
{
    if (b < 0) {
        return 0.0; /* not a bucket */
    }
    return 2.0 * pow(SMM_FRT_GAMMA, b) / (SMM_FRT_GAMMA + 1.0);
}

/* ceil(n x num / den) for n >= 0, 0 < num <= den, without overflow. */
static int64_t rank_of(int64_t n, int64_t num, int64_t den)
{
    int64_t q = n / den, r = n % den;
    return q * num + (r * num + den - 1) / den;
}

int smm_frt_summarize(const int *buckets, const int64_t *counts, int n, int64_t sum_ms,
                      struct smm_frt_summary *out)
{
    if (n < 0 || (n > 0 && (!buckets || !counts))) {
        return SMM_ERR;
    }
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (buckets[i] < 0 || counts[i] < 0 || (i > 0 && buckets[i] < buckets[i - 1]) ||
            __builtin_add_overflow(total, counts[i], &total)) {
            return SMM_ERR;
        }
    }
    struct smm_frt_summary s = {.n = total};
    if (total > 0) {
        s.mean_ms = (double)sum_ms / (double)total;
        static const int64_t per_mille[3] = {500, 900, 990};
        double *dst[3] = {&s.p50_ms, &s.p90_ms, &s.p99_ms};
        int64_t cum = 0;
        int k = 0;
        for (int i = 0; i < n && k < 3; i++) {
            cum += counts[i];
            while (k < 3 && cum >= rank_of(total, per_mille[k], 1000)) {
                *dst[k++] = smm_frt_bucket_value(buckets[i]);
            }
        }
    }
    *out = s;
    return SMM_OK;
}

int smm_frt_hist_add(struct smm_frt_hist *h, int b, int64_t count)
{
    if (b < 0 || count < 0) {
        return SMM_ERR;
    }
    if (b > SMM_FRT_MAX_BUCKET) {
        b = SMM_FRT_MAX_BUCKET;
    }
    int64_t v;
    if (__builtin_add_overflow(h->count[b], count, &v)) {
        return SMM_ERR;
    }
    h->count[b] = v;
    return SMM_OK;
}

int smm_frt_hist_add_ms(struct smm_frt_hist *h, int64_t ms)
{
    int64_t sum;
    if (ms < 0 || __builtin_add_overflow(h->sum_ms, ms, &sum) ||
        smm_frt_hist_add(h, smm_frt_bucket(ms), 1) != SMM_OK) {
        return SMM_ERR;
    }
    h->sum_ms = sum;
    return SMM_OK;
}

int smm_frt_hist_merge(struct smm_frt_hist *dst, const struct smm_frt_hist *src)
{
    int64_t v;
    if (__builtin_add_overflow(dst->sum_ms, src->sum_ms, &v)) {
        return SMM_ERR;
    }
    for (int b = 0; b <= SMM_FRT_MAX_BUCKET; b++) {
        if (__builtin_add_overflow(dst->count[b], src->count[b], &v)) {
            return SMM_ERR;
        }
    }
    for (int b = 0; b <= SMM_FRT_MAX_BUCKET; b++) {
        dst->count[b] += src->count[b];
    }
    dst->sum_ms += src->sum_ms;
    return SMM_OK;
}

int smm_frt_hist_summarize(const struct smm_frt_hist *h, struct smm_frt_summary *out)
{
    int buckets[SMM_FRT_MAX_BUCKET + 1];
    int64_t counts[SMM_FRT_MAX_BUCKET + 1];
    int n = 0;
    for (int b = 0; b <= SMM_FRT_MAX_BUCKET; b++) {
        if (h->count[b] != 0) {
            buckets[n] = b;
            counts[n++] = h->count[b];
        }
    }
    return smm_frt_summarize(buckets, counts, n, h->sum_ms, out);
}
