/* tests/unit/test_seismic.c - online SEISMIC estimator (metrics/seismic.c).
 *
 * The reference here is a direct, slow port of the CRAN `seismic` R code
 * (R/tweetfunctions.R: memory.ccdf, linear.kernel, power.kernel, integral.memory.kernel,
 * get.infectiousness, pred.cascade) for one prediction time, over all events, with its own
 * chi-square quantile (bisection on the closed-form CDF for even degrees of freedom).
 * The library must match it to 1e-9 while a cascade fits the exact buffer, and the binned
 * approximation is measured against it on a 20,000-reshare cascade. Links smm_metrics only. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/seismic.h"

/* ---- reference implementation (port of the R package) ----------------------------- */

#define R_C      0.0006265725
#define R_THETA  0.2314843
#define R_CUTOFF 300.0

static double r_ccdf(double t)
{
    if (t < 0) {
        t = 0;
    }
    if (t <= R_CUTOFF) {
        return 1 - R_C * t;
    }
    return R_C * pow(R_CUTOFF, 1 + R_THETA) / R_THETA * pow(t, -R_THETA);
}

static double r_linear_kernel(double t1, double t2, double ptime, double slope)
{
    return R_C * (t2 - ptime * slope * t2 + slope * t2 * t2 / 2) -
           R_C * (t1 - ptime * slope * t1 + slope * t1 * t1 / 2);
}

static double r_power_kernel(double t1, double t2, double ptime, double share_time, double slope)
{
    const double c = R_C, theta = R_THETA, cutoff = R_CUTOFF;
    return c * pow(cutoff, 1 + theta) * pow(t2 - share_time, -theta) *
               (share_time * slope - theta + (theta - 1) * ptime * slope - theta * slope * t2 + 1) /
               ((theta - 1) * theta) -
           c * pow(cutoff, 1 + theta) * pow(t1 - share_time, -theta) *
               (share_time * slope - theta + (theta - 1) * ptime * slope - theta * slope * t1 + 1) /
               ((theta - 1) * theta);
}

/* integral.memory.kernel for one share time. */
static double r_integral(double p, double st, double slope, double window)
{
    if (p <= st) {
        return 0;
    }
    if (p <= st + R_CUTOFF) {
        return r_linear_kernel(st, p, p, slope);
    }
    if (p <= st + window) {
        return r_linear_kernel(st, st + R_CUTOFF, p, slope) +
               r_power_kernel(st + R_CUTOFF, p, p, st, slope);
    }
    if (p <= st + window + R_CUTOFF) {
        return r_linear_kernel(p - window, st + R_CUTOFF, p, slope) +
               r_power_kernel(st + R_CUTOFF, p, p, st, slope);
    }
    return r_power_kernel(p - window, p, p, st, slope);
}

/* Chi-square CDF for even dof 2m: P(X <= x) = 1 - sum_{j<m} e^-y y^j / j!, y = x/2. */
static double ref_chisq_cdf_even(double x, int m)
{
    double y = x / 2, q = 0;
    if (y <= 0) {
        return 0;
    }
    for (int j = 0; j < m; j++) {
        q += exp(-y + j * log(y) - lgamma(j + 1.0));
    }
    return 1 - q;
}

static double ref_chisq_quantile_even(double prob, int m)
{
    double lo = 0, hi = 10.0 * m + 100;
    for (int i = 0; i < 200 && hi - lo > 1e-13 * hi; i++) {
        double mid = (lo + hi) / 2;
        if (ref_chisq_cdf_even(mid, m) < prob) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return (lo + hi) / 2;
}

struct ref_est {
    double p, p_low, p_high, pred, window;
    int64_t rt, m;
};

/* st[0] = 0 is the original post (deg[0] = author followers); st sorted ascending, in
 * seconds. One prediction time `ptime`, R's defaults (max.window 2 h, min.window 300 s,
 * min.count 5). */
static void ref_seismic(const double *st, const double *deg, int n, double ptime, double n_star,
                        struct ref_est *out)
{
    double window = ptime / 2;
    window = window > 7200 ? 7200 : window;
    window = window < 300 ? 300 : window;
    double slope = 1 / window;
    int count = 0, lcv = 0;
    for (int i = 0; i < n; i++) {
        count += st[i] >= ptime - window && st[i] < ptime;
        lcv += st[i] < ptime;
    }
    int widened = 0;
    double lo_exact = 0;
    if (count < 5) {
        /* ind <- ind2[max(lcv - min.count, 1):lcv]; window <- ptime - share.time[ind[1]] */
        int first = (lcv - 5 > 1 ? lcv - 5 : 1) - 1;
        window = ptime - st[first];
        slope = 1 / window;
        widened = 1;
        lo_exact = st[first];
    }
    double integral = 0;
    for (int i = 0; i < n; i++) {
        integral += deg[i] * r_integral(ptime, st[i], slope, window);
    }
    /* share.time.tri: reshares (index >= 1) in [ptime - window, ptime). When widened, R's
     * ptime - (ptime - st[first]) is st[first] up to rounding; use st[first] itself so a
     * last-bit difference cannot drop the zero-weight event from m. */
    double weighted = 0;
    int64_t m = 0;
    for (int i = 1; i < n; i++) {
        int in = (widened ? st[i] >= lo_exact : st[i] >= ptime - window) && st[i] < ptime;
        if (in) {
            weighted += slope * (st[i] - ptime) + 1;
            m++;
        }
    }
    memset(out, 0, sizeof(*out));
    out->window = window;
    out->m = m;
    if (weighted != 0) {
        out->p = weighted / integral;
        out->p_low = out->p * ref_chisq_quantile_even(0.05, (int)m) / (2.0 * m);
        out->p_high = out->p * ref_chisq_quantile_even(0.95, (int)m) / (2.0 * m);
    }
    /* pred.cascade */
    int64_t rt0 = -1;
    double rt1 = 0;
    for (int i = 0; i < n; i++) {
        if (st[i] <= ptime) {
            rt0++;
            rt1 += deg[i] * out->p * r_ccdf(ptime - st[i]);
        }
    }
    out->rt = rt0;
    out->pred = rt0 + rt1 / (1 - out->p * n_star);
    if (out->p > 1 / n_star) {
        out->pred = INFINITY;
    }
}

/* ---- helpers ------------------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_uniform(uint64_t *state) /* (0, 1) */
{
    return ((double)(rng_next(state) >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_gauss(uint64_t *state)
{
    double u1 = rng_uniform(state), u2 = rng_uniform(state);
    return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

/* A reaction delay drawn from the memory kernel itself (inverse of 1 - Phi), seconds. */
static double kernel_delay(uint64_t *state)
{
    double u = rng_uniform(state);
    if (u <= R_C * R_CUTOFF) {
        return u / R_C;
    }
    double tail = 1 - u; /* = C / theta x s^-theta */
    return pow(tail * R_THETA / (R_C * pow(R_CUTOFF, 1 + R_THETA)), -1 / R_THETA);
}

/* A cascade: times in ms (sorted), followers; index 0 is the original post. */
struct cascade {
    int n;
    int64_t *t_ms;
    int64_t *fol;
    double *st; /* seconds, for the reference */
    double *deg;
};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void cascade_init(struct cascade *cs, int reshares, int64_t author, uint64_t seed,
                         double max_s, double log_mean, double log_sd)
{
    uint64_t rng = seed;
    cs->n = reshares + 1;
    cs->t_ms = malloc((size_t)cs->n * sizeof(int64_t));
    cs->fol = malloc((size_t)cs->n * sizeof(int64_t));
    cs->st = malloc((size_t)cs->n * sizeof(double));
    cs->deg = malloc((size_t)cs->n * sizeof(double));
    cr_assert(cs->t_ms && cs->fol && cs->st && cs->deg);
    cs->t_ms[0] = 0;
    for (int i = 1; i < cs->n; i++) {
        double d;
        do {
            d = kernel_delay(&rng);
        } while (d > max_s);
        cs->t_ms[i] = 1 + (int64_t)(d * 1000.0); /* after the post, ms resolution */
    }
    qsort(cs->t_ms + 1, (size_t)reshares, sizeof(int64_t), cmp_i64);
    cs->fol[0] = author;
    for (int i = 1; i < cs->n; i++) {
        cs->fol[i] = (int64_t)floor(exp(log_mean + log_sd * rng_gauss(&rng)));
    }
    for (int i = 0; i < cs->n; i++) {
        cs->st[i] = (double)cs->t_ms[i] / 1000.0;
        cs->deg[i] = (double)cs->fol[i];
    }
}

static void cascade_free(struct cascade *cs)
{
    free(cs->t_ms);
    free(cs->fol);
    free(cs->st);
    free(cs->deg);
}

static struct smm_seismic *new_seismic(void)
{
    char err[128] = "";
    struct smm_seismic *s = smm_seismic_new(err, sizeof(err));
    cr_assert_not_null(s, "smm_seismic_new: %s", err);
    return s;
}

static double rel_diff(double got, double want)
{
    if (got == want) {
        return 0; /* also both INFINITY */
    }
    return fabs(got - want) / fmax(fabs(want), 1e-300);
}

static void expect_close(double got, double want, double tol, const char *what, double t_s)
{
    cr_assert(rel_diff(got, want) <= tol, "%s at t=%.3f s: got %.17g, want %.17g (rel %.3g)", what,
              t_s, got, want, rel_diff(got, want));
}

/* Library vs reference at ptime (ms), to `tol` relative. */
static void compare_at(const struct smm_seismic *s, const struct cascade *cs, int64_t t_ms,
                       double tol)
{
    struct smm_seismic_estimate est;
    struct ref_est ref;
    cr_assert_eq(smm_seismic_estimate(s, t_ms, &est), SMM_OK);
    ref_seismic(cs->st, cs->deg, cs->n, (double)t_ms / 1000.0, 100.0, &ref);
    double t_s = (double)t_ms / 1000.0;
    cr_assert_eq(est.reshares, ref.rt, "R_t at t=%.3f", t_s);
    cr_assert_eq(est.window_reshares, ref.m, "m at t=%.3f: %lld vs %lld", t_s,
                 (long long)est.window_reshares, (long long)ref.m);
    expect_close(est.window_ms / 1000.0, ref.window, 1e-12, "window", t_s);
    expect_close(est.p, ref.p, tol, "p", t_s);
    expect_close(est.p_low, ref.p_low, tol, "p_low", t_s);
    expect_close(est.p_high, ref.p_high, tol, "p_high", t_s);
    expect_close(est.predicted_final, ref.pred, tol, "predicted", t_s);
    cr_assert_eq(est.supercritical, ref.p > 1 / 100.0);
}

/* ---- chi-square quantile -------------------------------------------------------------- */

Test(seismic, chisq_quantile_table_values)
{
    /* qchisq() values as printed in standard tables (R to 7 significant digits). */
    static const struct {
        double prob, dof, want;
    } table[] = {
        {0.05, 1, 0.003932140}, {0.95, 1, 3.841459},   {0.05, 2, 0.1025866}, {0.95, 2, 5.991465},
        {0.05, 4, 0.7107230},   {0.95, 4, 9.487729},   {0.05, 6, 1.635383},  {0.95, 6, 12.59159},
        {0.05, 10, 3.940299},   {0.95, 10, 18.30704},  {0.05, 20, 10.85081}, {0.95, 20, 31.41043},
        {0.05, 30, 18.49266},   {0.95, 30, 43.77297},  {0.05, 50, 34.76425}, {0.95, 50, 67.50481},
        {0.05, 100, 77.92947},  {0.95, 100, 124.3421}, {0.01, 10, 2.558212}, {0.99, 10, 23.20925},
        {0.975, 1, 5.023886},   {0.5, 3, 2.365974},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        double got = smm_seismic_chisq_quantile(table[i].prob, table[i].dof);
        cr_assert(rel_diff(got, table[i].want) <= 1e-4, "qchisq(%g, %g) = %.9g, table %.9g",
                  table[i].prob, table[i].dof, got, table[i].want);
    }
    /* 2 dof is exponential with mean 2: closed form -2 ln(1 - p) */
    for (double p = 0.01; p < 1; p += 0.07) {
        expect_close(smm_seismic_chisq_quantile(p, 2), -2 * log1p(-p), 1e-10, "chi2 2 dof", p);
    }
    /* even dof as used by SEISMIC (2m): against the closed-form CDF, up to m = 5000 */
    static const int ms[] = {1, 2, 3, 5, 8, 13, 40, 100, 300, 1000, 5000};
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
        for (int k = 0; k < 2; k++) {
            double prob = k ? 0.95 : 0.05;
            double got = smm_seismic_chisq_quantile(prob, 2.0 * ms[i]);
            expect_close(got, ref_chisq_quantile_even(prob, ms[i]), 1e-9, "chi2 even dof", ms[i]);
        }
    }
    /* far ends: large dof against Wilson-Hilferty (exact to ~1e-11 there); tiny dof and
     * prob underflow to 0 instead of looping */
    double h = 2 / (9 * 2e6);
    expect_close(smm_seismic_chisq_quantile(0.95, 2e6),
                 2e6 * pow(1 - h + 1.6448536269514722 * sqrt(h), 3), 1e-8, "chi2 2e6 dof", 0);
    cr_assert_eq(smm_seismic_chisq_quantile(1e-10, 0.01), 0.0);
    expect_close(smm_seismic_chisq_quantile(1e-10, 1), 1.5707963267948966e-20, 1e-6,
                 "chi2 1 dof, tiny prob", 0);
    cr_assert(isnan(smm_seismic_chisq_quantile(0.5, 0)));
    cr_assert(isnan(smm_seismic_chisq_quantile(1.5, 3)));
    cr_assert_eq(smm_seismic_chisq_quantile(0, 3), 0.0);
    cr_assert(isinf(smm_seismic_chisq_quantile(1, 3)));
}

/* ---- the reference's integral against numerical quadrature ---------------------------- */

static double phi(double s)
{
    return s < R_CUTOFF ? R_C : R_C * pow(s / R_CUTOFF, -(1 + R_THETA));
}

static double simpson(double st, double ptime, double slope, double a, double b)
{
    enum { N = 20000 };
    if (b <= a) {
        return 0;
    }
    double h = (b - a) / N, sum = 0;
    for (int i = 0; i <= N; i++) {
        double s = a + i * h;
        double f = phi(s - st) * (slope * (s - ptime) + 1);
        sum += f * (i == 0 || i == N ? 1 : (i % 2 ? 4 : 2));
    }
    return sum * h / 3;
}

Test(seismic, reference_integral_matches_quadrature)
{
    /* Guards the port of power.kernel: all five cases of integral.memory.kernel. */
    static const struct {
        double ptime, st, window;
    } cases[] = {
        {1000, 900, 500},     {1000, 600, 500},   {3600, 3000, 1800},
        {3600, 1500, 1800},   {3600, 1700, 1800}, {90000, 10, 7200},
        {90000, 85000, 7200}, {400, 0, 400},      {1e6, 5e5, 7200},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double p = cases[i].ptime, st = cases[i].st, w = cases[i].window;
        double a = p - w > st ? p - w : st;
        double kink = st + R_CUTOFF;
        double quad = kink > a && kink < p
                          ? simpson(st, p, 1 / w, a, kink) + simpson(st, p, 1 / w, kink, p)
                          : simpson(st, p, 1 / w, a, p);
        expect_close(r_integral(p, st, 1 / w, w), quad, 1e-9, "integral vs quadrature", p);
    }
    /* the kernel is a density: 1 - Phi is continuous at the cutoff and starts at 1 */
    cr_assert(fabs(r_ccdf(R_CUTOFF) -
                   R_C * pow(R_CUTOFF, 1 + R_THETA) / R_THETA * pow(R_CUTOFF, -R_THETA)) < 1e-5);
}

/* ---- exact agreement while the cascade fits the buffer -------------------------------- */

Test(seismic, matches_reference_hand_cascade)
{
    /* A small cascade with a burst, a lull and a late reshare; times in ms. */
    static const int64_t t_ms[] = {0,       4000,    9500,    31000,   62000,   63000,  64500,
                                   120000,  290000,  301000,  305000,  700000,  710000, 1800000,
                                   1802000, 1900000, 5400000, 9000000, 30000000};
    static const int64_t fol[] = {12000, 150, 40, 2300, 7,  0,  880, 91,  15000, 310,
                                  45,    60,  2,  1200, 75, 33, 5,   400, 10};
    enum { N = sizeof(t_ms) / sizeof(t_ms[0]) };
    struct cascade cs = {N, NULL, NULL, NULL, NULL};
    double st[N], deg[N];
    for (int i = 0; i < N; i++) {
        st[i] = (double)t_ms[i] / 1000.0;
        deg[i] = (double)fol[i];
    }
    cs.st = st;
    cs.deg = deg;

    struct smm_seismic *s = new_seismic();
    cr_assert_eq(smm_seismic_start(s, fol[0]), SMM_OK);
    for (int i = 1; i < N; i++) {
        cr_assert_eq(smm_seismic_observe(s, t_ms[i], fol[i]), SMM_OK);
    }
    /* every 7 s for the first 40 minutes (window widening, flat kernel part), then sparser */
    for (int64_t t = 1000; t <= 2400000; t += 7000) {
        compare_at(s, &cs, t, 1e-9);
    }
    static const int64_t later[] = {4000,     9500,     31000,   300000,  301000,
                                    2700000,  5400000,  5400001, 7200000, 20000000,
                                    30000000, 40000000, 86400000};
    for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
        compare_at(s, &cs, later[i], 1e-9);
    }
    smm_seismic_destroy(s);
}

Test(seismic, matches_reference_random_cascades_any_order)
{
    static const uint64_t seeds[] = {11, 12, 13, 99, 2015};
    for (size_t k = 0; k < sizeof(seeds) / sizeof(seeds[0]); k++) {
        struct cascade cs;
        int reshares = 20 + (int)(seeds[k] * 37 % 230); /* <= 249: fits the exact buffer */
        cascade_init(&cs, reshares, 5000 + (int64_t)seeds[k] * 100, seeds[k], 6 * 3600.0, 4.0, 1.5);
        /* observe in a shuffled order: arrival order must not matter */
        int *order = malloc((size_t)reshares * sizeof(int));
        cr_assert_not_null(order);
        for (int i = 0; i < reshares; i++) {
            order[i] = i + 1;
        }
        uint64_t rng = seeds[k] ^ 0xabcdef;
        for (int i = reshares - 1; i > 0; i--) {
            int j = (int)(rng_next(&rng) % (uint64_t)(i + 1));
            int tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
        struct smm_seismic *s = new_seismic();
        cr_assert_eq(smm_seismic_observe(s, cs.t_ms[order[0]], cs.fol[order[0]]), SMM_OK,
                     "a reshare may arrive before the post");
        cr_assert_eq(smm_seismic_start(s, cs.fol[0]), SMM_OK);
        for (int i = 1; i < reshares; i++) {
            cr_assert_eq(smm_seismic_observe(s, cs.t_ms[order[i]], cs.fol[order[i]]), SMM_OK);
        }
        cr_assert_eq(smm_seismic_reshares(s), reshares);
        for (int64_t t = 500; t <= 8 * 3600 * 1000; t = t * 5 / 4 + 777) {
            compare_at(s, &cs, t, 1e-9);
        }
        smm_seismic_destroy(s);
        free(order);
        cascade_free(&cs);
    }
}

/* ---- binned vs exact: the measured approximation error -------------------------------- */

Test(seismic, binned_vs_exact)
{
    /* 20,000 reshares with delays drawn from the memory kernel (capped at 30 days) and
     * log-normal follower counts (median ~1800), observed in time order with estimates at
     * 10 checkpoints, as the daemon's cron would. Three seeds. */
    enum { RESHARES = 20000 };
    static const uint64_t seeds[] = {20150610, 1, 2};
    static const int64_t checkpoints_s[] = {600,       1800,  3600,   7200,   6 * 3600,
                                            12 * 3600, 86400, 259200, 604800, 2592000};
    enum { N_CP = sizeof(checkpoints_s) / sizeof(checkpoints_s[0]) };
    double worst_p = 0, worst_pred = 0, worst_bounds = 0;
    for (size_t k = 0; k < sizeof(seeds) / sizeof(seeds[0]); k++) {
        struct cascade cs;
        cascade_init(&cs, RESHARES, 50000, seeds[k], 30 * 86400.0, 7.5, 1.5);
        struct smm_seismic *s = new_seismic();
        cr_assert_eq(smm_seismic_start(s, cs.fol[0]), SMM_OK);
        int next = 1;
        cr_log_info("binned vs exact, %d reshares, seed %llu (relative differences):\n", RESHARES,
                    (unsigned long long)seeds[k]);
        for (int c = 0; c < N_CP; c++) {
            int64_t t_ms = checkpoints_s[c] * 1000;
            while (next < cs.n && cs.t_ms[next] <= t_ms) { /* streaming: observe up to now */
                cr_assert_eq(smm_seismic_observe(s, cs.t_ms[next], cs.fol[next]), SMM_OK);
                next++;
            }
            struct smm_seismic_estimate est;
            struct ref_est ref;
            cr_assert_eq(smm_seismic_estimate(s, t_ms, &est), SMM_OK);
            ref_seismic(cs.st, cs.deg, cs.n, (double)checkpoints_s[c], 100.0, &ref);
            cr_assert_eq(est.reshares, ref.rt);
            cr_assert(isfinite(ref.pred), "test cascade must stay subcritical");
            double dp = rel_diff(est.p, ref.p);
            double dpred = rel_diff(est.predicted_final, ref.pred);
            double db = fmax(rel_diff(est.p_low, ref.p_low), rel_diff(est.p_high, ref.p_high));
            worst_p = fmax(worst_p, dp);
            worst_pred = fmax(worst_pred, dpred);
            worst_bounds = fmax(worst_bounds, db);
            cr_log_info("  t=%8llds R_t=%5lld m=%5lld p=%.6e (%.2e) pred=%.1f (%.2e) "
                        "bounds %.2e\n",
                        (long long)checkpoints_s[c], (long long)ref.rt, (long long)ref.m, ref.p, dp,
                        ref.pred, dpred, db);
        }
        smm_seismic_destroy(s);
        cascade_free(&cs);
    }
    cr_log_info("  worst: p %.2e, predicted %.2e, bounds %.2e\n", worst_p, worst_pred,
                worst_bounds);
    /* metrics/seismic.h documents 3.0e-4 and 1.3e-4; fail on a clear regression. */
    cr_assert_lt(worst_p, 1e-3, "p error %.3g", worst_p);
    cr_assert_lt(worst_bounds, 1e-3, "bounds error %.3g", worst_bounds);
    cr_assert_lt(worst_pred, 5e-4, "prediction error %.3g", worst_pred);
}

/* ---- behaviour --------------------------------------------------------------------------- */

Test(seismic, supercritical)
{
    /* Small audiences resharing fast and steadily: p far above 1/n* = 0.01. */
    struct smm_seismic *s = new_seismic();
    cr_assert_eq(smm_seismic_start(s, 50), SMM_OK);
    for (int i = 1; i <= 200; i++) {
        cr_assert_eq(smm_seismic_observe(s, (int64_t)i * 15000, 20), SMM_OK);
    }
    struct smm_seismic_estimate est;
    cr_assert_eq(smm_seismic_estimate(s, 3000000, &est), SMM_OK);
    cr_assert_gt(est.p, 0.01);
    cr_assert_eq(est.supercritical, 1);
    cr_assert_eq(est.supercritical_conservative, 1, "p_low %.4g", est.p_low);
    cr_assert(isinf(est.predicted_final) && est.predicted_final > 0);
    cr_assert_eq(est.reshares, 200);
    cr_assert(est.p_low < est.p && est.p < est.p_high);
    /* a bigger mean degree only makes it more so */
    cr_assert_eq(smm_seismic_set_n_star(s, 1000.0), SMM_OK);
    cr_assert_eq(smm_seismic_estimate(s, 3000000, &est), SMM_OK);
    cr_assert_eq(est.supercritical, 1);
    /* and with a tiny one it is not */
    cr_assert_eq(smm_seismic_set_n_star(s, 1e-6), SMM_OK);
    cr_assert_eq(smm_seismic_estimate(s, 3000000, &est), SMM_OK);
    cr_assert_eq(est.supercritical, 0);
    cr_assert(isfinite(est.predicted_final));
    smm_seismic_destroy(s);
}

Test(seismic, subcritical_prediction_not_below_observed)
{
    /* A big account whose followers rarely reshare. */
    struct smm_seismic *s = new_seismic();
    cr_assert_eq(smm_seismic_start(s, 2000000), SMM_OK);
    uint64_t rng = 5;
    int64_t t = 0;
    for (int i = 1; i <= 120; i++) {
        t += 5000 + (int64_t)(rng_next(&rng) % 60000);
        cr_assert_eq(smm_seismic_observe(s, t, (int64_t)(rng_next(&rng) % 3000)), SMM_OK);
    }
    for (int64_t now = 60000; now <= t + 3600000; now += 300000) {
        struct smm_seismic_estimate est;
        cr_assert_eq(smm_seismic_estimate(s, now, &est), SMM_OK);
        cr_assert_eq(est.supercritical, 0);
        cr_assert_eq(est.supercritical_conservative, 0);
        cr_assert(isfinite(est.predicted_final));
        cr_assert_geq(est.predicted_final, (double)est.reshares, "t=%lld: %.2f < %lld",
                      (long long)now, est.predicted_final, (long long)est.reshares);
        cr_assert_gt(est.predicted_final, (double)est.reshares, "the tail still adds");
        cr_assert(est.p > 0 && est.p < 0.01);
        cr_assert(est.p_low <= est.p && est.p <= est.p_high);
    }
    smm_seismic_destroy(s);
}

Test(seismic, no_reshares_and_zero_audience)
{
    struct smm_seismic *s = new_seismic();
    struct smm_seismic_estimate est;
    cr_assert_eq(smm_seismic_start(s, 1000), SMM_OK);
    cr_assert_eq(smm_seismic_estimate(s, 600000, &est), SMM_OK);
    cr_assert_eq(est.p, 0.0);
    cr_assert_eq(est.p_low, 0.0);
    cr_assert_eq(est.p_high, 0.0);
    cr_assert_eq(est.predicted_final, 0.0);
    cr_assert_eq(est.reshares, 0);
    cr_assert_eq(est.supercritical, 0);
    /* one reshare: the window widens back to the post (fewer than 6 events), so the
     * reshare carries weight 1 - (t - t_1)/t > 0 */
    cr_assert_eq(smm_seismic_observe(s, 1000, 10), SMM_OK);
    cr_assert_eq(smm_seismic_estimate(s, 2000000, &est), SMM_OK);
    cr_assert_eq(est.reshares, 1);
    cr_assert_eq(est.window_reshares, 1);
    cr_assert_eq(est.window_ms, 2000000.0);
    cr_assert(est.p > 0);
    cr_assert_gt(est.predicted_final, 1.0);
    smm_seismic_destroy(s);

    /* nobody has followers yet reshares happen: p is infinite, as in the R code */
    s = new_seismic();
    cr_assert_eq(smm_seismic_start(s, 0), SMM_OK);
    for (int i = 1; i <= 10; i++) {
        cr_assert_eq(smm_seismic_observe(s, i * 1000, 0), SMM_OK);
    }
    cr_assert_eq(smm_seismic_estimate(s, 20000, &est), SMM_OK);
    cr_assert(isinf(est.p));
    cr_assert_eq(est.supercritical, 1);
    cr_assert(isinf(est.predicted_final));
    smm_seismic_destroy(s);
}

Test(seismic, bad_arguments)
{
    smm_seismic_destroy(NULL);
    struct smm_seismic *s = new_seismic();
    struct smm_seismic_estimate est;
    memset(&est, 0x5a, sizeof(est));
    struct smm_seismic_estimate before = est;
    cr_assert_eq(smm_seismic_estimate(s, 1000, &est), SMM_ERR, "not started");
    cr_assert_eq(smm_seismic_start(s, -1), SMM_ERR);
    cr_assert_eq(smm_seismic_start(s, 10), SMM_OK);
    cr_assert_eq(smm_seismic_start(s, 10), SMM_ERR, "started twice");
    cr_assert_eq(smm_seismic_estimate(s, 0, &est), SMM_ERR);
    cr_assert_eq(smm_seismic_estimate(s, -5, &est), SMM_ERR);
    cr_assert_eq(smm_seismic_estimate(s, 1000, NULL), SMM_ERR);
    cr_assert_eq(memcmp(&est, &before, sizeof(est)), 0, "out untouched on error");
    cr_assert_eq(smm_seismic_observe(s, -1, 10), SMM_ERR);
    cr_assert_eq(smm_seismic_observe(s, 10, -1), SMM_ERR);
    cr_assert_eq(smm_seismic_observe(NULL, 10, 1), SMM_ERR);
    cr_assert_eq(smm_seismic_reshares(s), 0);
    cr_assert_eq(smm_seismic_set_n_star(s, 0), SMM_ERR);
    cr_assert_eq(smm_seismic_set_n_star(s, NAN), SMM_ERR);
    cr_assert_eq(smm_seismic_set_n_star(s, INFINITY), SMM_ERR);
    smm_seismic_destroy(s);
}

Test(seismic, memory_stays_bounded)
{
    /* A million reshares over 200 days, with late arrivals mixed in. */
    struct smm_seismic *s = new_seismic();
    cr_assert_eq(smm_seismic_start(s, 100), SMM_OK);
    uint64_t rng = 77;
    size_t small = smm_seismic_memory_bytes(s);
    for (int i = 0; i < 1000000; i++) {
        int64_t t = (int64_t)i * 17280; /* 200 days */
        if (rng_next(&rng) % 10 == 0) {
            t -= (int64_t)(rng_next(&rng) % (uint64_t)(t + 1)); /* late, anywhere earlier */
        }
        cr_assert_eq(smm_seismic_observe(s, t, (int64_t)(rng_next(&rng) % 1000)), SMM_OK);
    }
    size_t mem = smm_seismic_memory_bytes(s);
    cr_log_info("empty estimator %zu bytes; after 1e6 reshares over 200 days %zu bytes\n", small,
                mem);
    cr_assert_leq(mem, 128 + SMM_SEISMIC_EXACT_EVENTS * 16 + SMM_SEISMIC_MAX_BINS * 32);
    struct smm_seismic_estimate est;
    cr_assert_eq(smm_seismic_estimate(s, 200LL * 86400000, &est), SMM_OK);
    cr_assert_eq(est.reshares, 1000000);
    cr_assert(isfinite(est.p) && est.p > 0);
    smm_seismic_destroy(s);
}
