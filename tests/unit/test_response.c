/* tests/unit/test_response.c - first-response-time histogram (metrics/response.c).
 *
 * Expected buckets and representative values were computed by hand (Python:
 * ceil(log(ms)/log(1.04)) and 2*1.04**b/2.04) and are written here as literals; the
 * relative error bound is checked over a dense sweep from 2 ms to 30 days and on both
 * sides of every bucket boundary; percentiles of hand-built histograms are checked against
 * ranks worked out by hand; merging windows (adding counts) is checked against one
 * histogram of all the waits. Links smm_metrics only. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "metrics/response.h"

#define BOUND (0.04 / 2.04) /* (gamma - 1) / (gamma + 1) */
#define DAY_MS 86400000LL

static void check_close(double got, double want, const char *what)
{
    cr_assert(fabs(got - want) <= 1e-12 * fabs(want), "%s: got %.17g, want %.17g", what, got,
              want);
}

Test(response, bucket_of_known_durations)
{
    static const struct {
        int64_t ms;
        int bucket;
    } cases[] = {
        {-5, 0}, {0, 0}, {1, 0}, /* ms <= 1 */
        {2, 18},                 /* ln 2 / ln 1.04 = 17.67 */
        {3, 29},                 /* 28.01 */
        {10, 59},                /* 58.71 */
        {25, 83},                /* 82.07 */
        {26, 84},                /* 83.07 = 82.07 + 1: 26 = 25 x 1.04 */
        {625, 165},              /* 164.14 */
        {676, 167},              /* 26^2 = 625 x 1.04^2: 166.14, two more */
        {1000, 177},             /* 176.13 */
        {1024, 177},             /* 2^10: 176.74 */
        {60000, 281},            /* 1 min: 280.52 */
        {3600000, 385},          /* 1 h: 384.91 */
        {DAY_MS, 466},           /* 465.94 */
        {30 * DAY_MS, 553},      /* 552.66 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cr_assert_eq(smm_frt_bucket(cases[i].ms), cases[i].bucket, "bucket(%lld) = %d, want %d",
                     (long long)cases[i].ms, smm_frt_bucket(cases[i].ms), cases[i].bucket);
    }
}

Test(response, bucket_values)
{
    /* Bucket 0 (0 and 1 ms) is reported by its representative like every other bucket
     * (docs/api.md), not as 0. */
    check_close(smm_frt_bucket_value(0), 2.0 / 2.04, "value(0)");
    cr_assert_eq(smm_frt_bucket_value(-3), 0.0);
    check_close(smm_frt_bucket_value(18), 1.98609462292013, "value(18)");
    check_close(smm_frt_bucket_value(59), 9.916692503820565, "value(59)");
    check_close(smm_frt_bucket_value(177), 1014.6140783849493, "value(177)");
    check_close(smm_frt_bucket_value(281), 59947.09898898978, "value(281)");
    check_close(smm_frt_bucket_value(385), 3541893.1727382266, "value(385)");
    check_close(smm_frt_bucket_value(553), 2575351190.6175222, "value(553)");
    check_close(smm_frt_bucket_value(600), 16270593971.51974, "value(600)");
}

/* Both integers next to the exact power gamma^b: floor(gamma^b) <= gamma^b is still in b,
 * floor(gamma^b) + 1 > gamma^b is in b + 1. From b = 84 on the buckets are wider than 1 ms
 * (gamma^83 x 0.04 > 1), so both neighbours exist; up to 30 days and a bit. */
Test(response, bucket_boundaries_at_exact_powers)
{
    for (int b = 84; b <= 560; b++) {
        double edge = pow(SMM_FRT_GAMMA, b);
        int64_t below = (int64_t)floor(edge);
        cr_assert_eq(smm_frt_bucket(below), b, "bucket(%lld) next to 1.04^%d = %.6f",
                     (long long)below, b, edge);
        cr_assert_eq(smm_frt_bucket(below + 1), b + 1, "bucket(%lld) next to 1.04^%d = %.6f",
                     (long long)below + 1, b, edge);
    }
}

/* One duration: in its bucket's interval (gamma^(b-1), gamma^b] and represented within
 * the bound. Returns the relative error. */
static double check_ms(int64_t ms)
{
    int b = smm_frt_bucket(ms);
    double lo = pow(SMM_FRT_GAMMA, b - 1), hi = pow(SMM_FRT_GAMMA, b);
    cr_assert(lo < (double)ms * (1 + 1e-12) && (double)ms <= hi * (1 + 1e-12),
              "%lld ms not in bucket %d = (%.6f, %.6f]", (long long)ms, b, lo, hi);
    double err = fabs(smm_frt_bucket_value(b) - (double)ms) / (double)ms;
    cr_assert(err <= BOUND + 1e-12, "%lld ms: bucket %d value %.6f, relative error %.6f%%",
              (long long)ms, b, smm_frt_bucket_value(b), 100 * err);
    return err;
}

Test(response, relative_error_bound_dense_sweep, .timeout = 60)
{
    double worst = 0;
    long checked = 0;
    /* Every millisecond up to 200 s ... */
    for (int64_t ms = 2; ms <= 200000; ms++, checked++) {
        double e = check_ms(ms);
        worst = e > worst ? e : worst;
    }
    /* ... then steps of 0.03 % up to 30 days ... */
    for (double x = 200000; x <= 30.0 * DAY_MS; x *= 1.0003, checked++) {
        check_ms((int64_t)x);
    }
    check_ms(30 * DAY_MS);
    /* ... and both sides of every boundary in that range. */
    for (int b = 84; b <= 553; b++, checked += 2) {
        int64_t below = (int64_t)floor(pow(SMM_FRT_GAMMA, b));
        worst = fmax(worst, fmax(check_ms(below), check_ms(below + 1)));
    }
    cr_log_info("%ld durations checked, worst relative error %.5f%% (bound %.5f%%)", checked,
                100 * worst, 100 * BOUND);
    /* The bound is tight: durations right above a boundary come within 0.01 % of it. */
    cr_assert(worst > BOUND - 1e-4, "worst error %.6f far below the bound", worst);
}

static struct smm_frt_summary summarize(const int *b, const int64_t *c, int n, int64_t sum)
{
    struct smm_frt_summary s;
    memset(&s, 0xA5, sizeof(s));
    cr_assert_eq(smm_frt_summarize(b, c, n, sum, &s), SMM_OK);
    return s;
}

Test(response, percentiles_single_wait)
{
    int b[] = {18};
    int64_t c[] = {1};
    struct smm_frt_summary s = summarize(b, c, 1, 2);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.mean_ms, 2.0);
    check_close(s.p50_ms, 1.98609462292013, "p50");
    check_close(s.p90_ms, 1.98609462292013, "p90");
    check_close(s.p99_ms, 1.98609462292013, "p99");
}

/* 10 waits: five of about 1 s, four of about 1 min, one of about 1 h.
 * Ranks: p50 ceil(5) = 5 -> the 5th is the last ~1 s; p90 ceil(9) = 9 -> the last ~1 min;
 * p99 ceil(9.9) = 10 -> the ~1 h one. Mean = (5 x 1000 + 4 x 60000 + 3600000) / 10. */
Test(response, percentiles_ten_waits)
{
    int b[] = {177, 281, 385};
    int64_t c[] = {5, 4, 1};
    struct smm_frt_summary s = summarize(b, c, 3, 5 * 1000 + 4 * 60000 + 3600000);
    cr_assert_eq(s.n, 10);
    cr_assert_eq(s.mean_ms, 384500.0);
    check_close(s.p50_ms, 1014.6140783849493, "p50");
    check_close(s.p90_ms, 59947.09898898978, "p90");
    check_close(s.p99_ms, 3541893.1727382266, "p99");
}

/* 100 waits: 10 in bucket 0, 40 in 59, 40 in 83, 9 in 84, 1 in 466. Cumulative: 10, 50,
 * 90, 99, 100. p50: rank 50 -> bucket 59 (the cumulative count reaches the rank exactly);
 * p90: rank 90 -> 83; p99: rank 99 -> 84 (the single day-long wait is the 100th only). */
Test(response, percentiles_rank_on_bucket_edges)
{
    int b[] = {0, 59, 83, 84, 466};
    int64_t c[] = {10, 40, 40, 9, 1};
    struct smm_frt_summary s = summarize(b, c, 5, 123456);
    cr_assert_eq(s.n, 100);
    cr_assert_eq(s.mean_ms, 1234.56);
    check_close(s.p50_ms, 9.916692503820565, "p50");
    check_close(s.p90_ms, 25.41949919699407, "p90");
    check_close(s.p99_ms, 26.436279164873834, "p99");
}

/* Percentiles that land in the lowest bucket (replies within 1 ms, e.g. auto-replies):
 * 6 waits in bucket 0, 4 in bucket 177 (~1 s). p50 rank 5 -> bucket 0, whose
 * representative is 2 / 2.04 = 0.98 ms (docs/api.md), not 0; p90 rank 9 and p99 rank 10
 * -> bucket 177. And a histogram of bucket 0 only: every percentile is 0.98 ms. */
Test(response, percentiles_in_the_lowest_bucket)
{
    int b[] = {0, 177};
    int64_t c[] = {6, 4};
    struct smm_frt_summary s = summarize(b, c, 2, 6 + 4 * 1000);
    cr_assert_eq(s.n, 10);
    check_close(s.p50_ms, 2.0 / 2.04, "p50");
    check_close(s.p90_ms, 1014.6140783849493, "p90");
    check_close(s.p99_ms, 1014.6140783849493, "p99");
    int b0[] = {0};
    int64_t c0[] = {3};
    s = summarize(b0, c0, 1, 2);
    check_close(s.p50_ms, 2.0 / 2.04, "p50 (bucket 0 only)");
    check_close(s.p90_ms, 2.0 / 2.04, "p90 (bucket 0 only)");
    check_close(s.p99_ms, 2.0 / 2.04, "p99 (bucket 0 only)");
    struct smm_frt_hist h = {0};
    cr_assert_eq(smm_frt_hist_add_ms(&h, 1), SMM_OK);
    cr_assert_eq(smm_frt_hist_add_ms(&h, 0), SMM_OK);
    cr_assert_eq(smm_frt_hist_summarize(&h, &s), SMM_OK);
    check_close(s.p50_ms, 2.0 / 2.04, "p50 of a 0 ms and a 1 ms reply");
}

/* 7 waits, one per bucket 18, 29, 59, 83, 84, 177, 281: p50 rank ceil(3.5) = 4 -> 83;
 * p90 rank ceil(6.3) = 7 -> 281; p99 rank ceil(6.93) = 7 -> 281. */
Test(response, percentiles_fractional_ranks)
{
    int b[] = {18, 29, 59, 83, 84, 177, 281};
    int64_t c[] = {1, 1, 1, 1, 1, 1, 1};
    struct smm_frt_summary s = summarize(b, c, 7, 70);
    cr_assert_eq(s.n, 7);
    cr_assert_eq(s.mean_ms, 10.0);
    check_close(s.p50_ms, 25.41949919699407, "p50");
    check_close(s.p90_ms, 59947.09898898978, "p90");
    check_close(s.p99_ms, 59947.09898898978, "p99");
}

/* Ranks in integers: 1000 waits, p99 is rank 990 exactly (not 990.0000000000001 -> 991).
 * 989 in bucket 59, 1 in 83, 10 in 177. */
Test(response, percentile_rank_is_exact)
{
    int b[] = {59, 83, 177};
    int64_t c[] = {989, 1, 10};
    struct smm_frt_summary s = summarize(b, c, 3, 0);
    cr_assert_eq(s.n, 1000);
    check_close(s.p99_ms, 25.41949919699407, "p99");
    /* and empty buckets (count 0) in the list change nothing */
    int b2[] = {18, 59, 60, 83, 177, 200};
    int64_t c2[] = {0, 989, 0, 1, 10, 0};
    struct smm_frt_summary s2 = summarize(b2, c2, 6, 0);
    cr_assert_eq(memcmp(&s, &s2, sizeof(s)), 0);
}

Test(response, empty_and_invalid)
{
    struct smm_frt_summary s = summarize(NULL, NULL, 0, 0);
    cr_assert_eq(s.n, 0);
    cr_assert_eq(s.mean_ms, 0.0);
    cr_assert_eq(s.p50_ms, 0.0);
    cr_assert_eq(s.p99_ms, 0.0);
    int zb[] = {177};
    int64_t zc[] = {0};
    s = summarize(zb, zc, 1, 0);
    cr_assert_eq(s.n, 0);
    cr_assert_eq(s.p90_ms, 0.0);

    struct smm_frt_summary keep = {.n = 42};
    int unsorted[] = {83, 59};
    int negative[] = {-1, 59};
    int64_t ones[] = {1, 1}, neg[] = {1, -1}, huge[] = {INT64_MAX, 1};
    int ok[] = {59, 83};
    cr_assert_eq(smm_frt_summarize(unsorted, ones, 2, 0, &keep), SMM_ERR);
    cr_assert_eq(smm_frt_summarize(negative, ones, 2, 0, &keep), SMM_ERR);
    cr_assert_eq(smm_frt_summarize(ok, neg, 2, 0, &keep), SMM_ERR);
    cr_assert_eq(smm_frt_summarize(ok, huge, 2, 0, &keep), SMM_ERR);
    cr_assert_eq(smm_frt_summarize(ok, ones, -1, 0, &keep), SMM_ERR);
    cr_assert_eq(smm_frt_summarize(NULL, NULL, 2, 0, &keep), SMM_ERR);
    cr_assert_eq(keep.n, 42, "out changed on error");
}

Test(response, repeated_bucket_adds_up)
{
    int b1[] = {59, 59, 83};
    int64_t c1[] = {1, 1, 1};
    int b2[] = {59, 83};
    int64_t c2[] = {2, 1};
    struct smm_frt_summary s1 = summarize(b1, c1, 3, 30), s2 = summarize(b2, c2, 2, 30);
    cr_assert_eq(memcmp(&s1, &s2, sizeof(s1)), 0);
    cr_assert_eq(s1.n, 3);
    check_close(s1.p50_ms, 9.916692503820565, "p50"); /* rank 2 */
    check_close(s1.p90_ms, 25.41949919699407, "p90"); /* rank 3 */
}

/* Two windows' histograms merged by adding counts (and sums) summarize exactly like one
 * histogram of all the waits; by hand: window A = 900, 1000, 1000 ms and 45 s; window B
 * = 50 s, 70 s, 2 h. Buckets: 900 -> 174, 1000 -> 177, 45000 -> 274, 50000 -> 276, 70000
 * -> 285, 7200000 -> 403. All 7: p50 = rank 4 = 45 s (bucket 274); p90 = rank 7 = 2 h
 * (403); p99 = rank 7. Mean = 7367900 / 7. */
Test(response, merged_windows_equal_one_histogram)
{
    static const int64_t a[] = {900, 1000, 1000, 45000}, b[] = {50000, 70000, 7200000};
    struct smm_frt_hist ha = {{0}, 0}, hb = {{0}, 0}, all = {{0}, 0};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(smm_frt_hist_add_ms(&ha, a[i]), SMM_OK);
        cr_assert_eq(smm_frt_hist_add_ms(&all, a[i]), SMM_OK);
    }
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(smm_frt_hist_add_ms(&hb, b[i]), SMM_OK);
        cr_assert_eq(smm_frt_hist_add_ms(&all, b[i]), SMM_OK);
    }
    cr_assert_eq(smm_frt_bucket(900), 174);
    cr_assert_eq(smm_frt_bucket(45000), 274);
    cr_assert_eq(smm_frt_bucket(50000), 276);
    cr_assert_eq(smm_frt_bucket(70000), 285);
    cr_assert_eq(smm_frt_bucket(7200000), 403);
    cr_assert_eq(ha.count[177], 2);
    cr_assert_eq(smm_frt_hist_merge(&ha, &hb), SMM_OK);
    cr_assert_eq(memcmp(&ha, &all, sizeof(all)), 0, "merged counts differ from one histogram");
    struct smm_frt_summary sm, s1;
    cr_assert_eq(smm_frt_hist_summarize(&ha, &sm), SMM_OK);
    cr_assert_eq(smm_frt_hist_summarize(&all, &s1), SMM_OK);
    cr_assert_eq(memcmp(&sm, &s1, sizeof(sm)), 0);
    cr_assert_eq(sm.n, 7);
    check_close(sm.mean_ms, 7367900.0 / 7, "mean");
    check_close(sm.p50_ms, 2 * pow(1.04, 274) / 2.04, "p50");
    check_close(sm.p90_ms, 2 * pow(1.04, 403) / 2.04, "p90");
    check_close(sm.p99_ms, 2 * pow(1.04, 403) / 2.04, "p99");
    /* The same through the sparse API: window counts added by hand, buckets in order. */
    int bk[] = {174, 177, 274, 276, 285, 403};
    int64_t ca[] = {1, 2, 1, 0, 0, 0}, cb[] = {0, 0, 0, 1, 1, 1}, sum[6];
    for (int i = 0; i < 6; i++) {
        sum[i] = ca[i] + cb[i];
    }
    struct smm_frt_summary sp = summarize(bk, sum, 6, 47900 + 7320000);
    cr_assert_eq(memcmp(&sp, &sm, sizeof(sp)), 0);
}

/* The percentile of a histogram is within the bound of the exact percentile of the raw
 * waits (the rank-th smallest wait lies in the reported bucket). */
Test(response, percentile_within_bound_of_exact)
{
    enum { N = 5000 };
    static int64_t w[N];
    uint64_t x = 88172645463325252ull;
    struct smm_frt_hist h = {{0}, 0};
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        w[i] = 2 + (int64_t)(exp((double)(x % 1000000) / 1000000.0 * 21.0)); /* 3 ms..15 days */
        cr_assert_eq(smm_frt_hist_add_ms(&h, w[i]), SMM_OK);
    }
    /* insertion sort is fine for 5000 */
    for (int i = 1; i < N; i++) {
        int64_t v = w[i];
        int j = i - 1;
        while (j >= 0 && w[j] > v) {
            w[j + 1] = w[j];
            j--;
        }
        w[j + 1] = v;
    }
    struct smm_frt_summary s;
    cr_assert_eq(smm_frt_hist_summarize(&h, &s), SMM_OK);
    double exact[3] = {(double)w[2500 - 1], (double)w[4500 - 1], (double)w[4950 - 1]};
    double got[3] = {s.p50_ms, s.p90_ms, s.p99_ms};
    for (int k = 0; k < 3; k++) {
        cr_assert(fabs(got[k] - exact[k]) / exact[k] <= BOUND + 1e-12,
                  "percentile %d: %.3f vs exact %.3f", k, got[k], exact[k]);
    }
}

Test(response, hist_add_limits)
{
    struct smm_frt_hist h = {{0}, 0};
    cr_assert_eq(smm_frt_hist_add(&h, -1, 1), SMM_ERR);
    cr_assert_eq(smm_frt_hist_add(&h, 5, -1), SMM_ERR);
    cr_assert_eq(smm_frt_hist_add(&h, 700, 3), SMM_OK); /* folds into the last bucket */
    cr_assert_eq(h.count[SMM_FRT_MAX_BUCKET], 3);
    cr_assert_eq(smm_frt_hist_add(&h, SMM_FRT_MAX_BUCKET, INT64_MAX), SMM_ERR);
    cr_assert_eq(h.count[SMM_FRT_MAX_BUCKET], 3);
    cr_assert_eq(smm_frt_hist_add_ms(&h, -2), SMM_ERR);
    cr_assert_eq(smm_frt_hist_add_ms(&h, 1), SMM_OK); /* bucket 0 */
    cr_assert_eq(h.count[0], 1);
    cr_assert_eq(h.sum_ms, 1);
}
