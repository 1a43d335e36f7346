/* bench/rwin_bench.c - cost, memory and accuracy of the sliding-window distinct counter
 * (metrics/reach_window.c) and of smm_hash64 (metrics/hash.c).
 *
 * Prints, never asserts: the figures quoted in metrics/reach_window.c come from here.
 *   smm-rwin-bench            everything (about 25 s at -O2 on one core)
 *   smm-rwin-bench --quick    fewer accuracy trials
 * Timings are wall clock over many calls (CLOCK_MONOTONIC), so they include cache misses
 * of a realistic working set; run it on an idle machine. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/hash.h"
#include "metrics/reach_window.h"

#define M_REG   (1u << SMM_RWIN_PRECISION)
#define STD_ERR (1.04 / sqrt((double)M_REG))

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t user_hash(int64_t u)
{
    char id[32];
    int len = snprintf(id, sizeof(id), "user:%011lld", (long long)u); /* 16 bytes */
    return smm_hash64(id, (size_t)len);
}

static struct smm_rwin *new_rwin(int horizon)
{
    char err[128] = "";
    struct smm_rwin *w = smm_rwin_new(horizon, err, sizeof(err));
    if (!w) {
        fprintf(stderr, "smm_rwin_new: %s\n", err);
        exit(1);
    }
    return w;
}

static volatile double sink_d;
static volatile uint64_t sink_u;

static void bench_hash(void)
{
    enum { N = 10000000 };
    char id[16];
    memcpy(id, "user:00000000000", 16);
    uint64_t acc = 0;
    double t0 = now_s();
    for (uint64_t i = 0; i < N; i++) {
        memcpy(id + 8, &i, 8);
        acc ^= smm_hash64(id, 16);
    }
    double t1 = now_s();
    for (uint64_t i = 0; i < N; i++) {
        acc ^= smm_hash64_u64(i ^ acc);
    }
    double t2 = now_s();
    sink_u = acc;
    printf("hash: smm_hash64(16 bytes) %.2f ns, smm_hash64_u64 %.2f ns (dependent chain)\n",
           (t1 - t0) / N * 1e9, (t2 - t1) / N * 1e9);
}

/* Many tiny posts: 20,000 counters with 1..8 viewers each. */
static void bench_tiny(void)
{
    enum { POSTS = 20000 };
    static struct smm_rwin *posts[POSTS];
    uint64_t state = 1;
    int64_t adds = 0;
    double t0 = now_s();
    for (int p = 0; p < POSTS; p++) {
        posts[p] = new_rwin(60);
        int viewers = 1 + (int)(rng_next(&state) % 8);
        for (int v = 0; v < viewers; v++) {
            smm_rwin_add(posts[p], rng_next(&state), 1000 + v);
            adds++;
        }
    }
    double t1 = now_s();
    for (int p = 0; p < POSTS; p++) {
        sink_d = smm_rwin_count(posts[p], 1010, 5) + smm_rwin_count(posts[p], 1010, 60);
    }
    double t2 = now_s();
    size_t bytes[9] = {0};
    for (int v = 1; v <= 8; v++) {
        struct smm_rwin *w = new_rwin(60);
        for (int i = 0; i < v; i++) {
            smm_rwin_add(w, rng_next(&state), 1000);
        }
        bytes[v] = smm_rwin_memory_bytes(w);
        smm_rwin_destroy(w);
    }
    for (int p = 0; p < POSTS; p++) {
        smm_rwin_destroy(posts[p]);
    }
    printf("tiny posts (1-8 viewers): new+add %.0f ns per add, count %.0f ns; bytes by viewers "
           "1..8: %zu %zu %zu %zu %zu %zu %zu %zu\n",
           (t1 - t0) / (double)adds * 1e9, (t2 - t1) / (2.0 * POSTS) * 1e9, bytes[1], bytes[2],
           bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8]);
}

/* One post, n_users distinct users each seen twice on average over `span` minutes (the
 * horizon is span / 2), arriving up to `jitter` minutes late; add cost, then count cost and
 * memory at the end. */
static void bench_stream(int64_t n_users, int jitter, int span)
{
    int64_t n_ev = 2 * n_users;
    uint64_t *hashes = malloc((size_t)n_ev * sizeof(*hashes));
    int64_t *minutes = malloc((size_t)n_ev * sizeof(*minutes));
    if (!hashes || !minutes) {
        exit(1);
    }
    uint64_t state = 7;
    for (int64_t i = 0; i < n_ev; i++) {
        hashes[i] = user_hash((int64_t)(rng_next(&state) % (uint64_t)n_users));
        int64_t minute = i * span / n_ev - (jitter ? (int64_t)(rng_next(&state) % (jitter + 1)) : 0);
        minutes[i] = minute < 0 ? 0 : minute;
    }
    struct smm_rwin *w = new_rwin(span / 2);
    size_t peak = 0;
    double t0 = now_s();
    for (int64_t i = 0; i < n_ev; i++) {
        smm_rwin_add(w, hashes[i], minutes[i]);
        if ((i & 4095) == 0) {
            size_t b = smm_rwin_memory_bytes(w);
            peak = b > peak ? b : peak;
        }
    }
    double t1 = now_s();
    enum { Q = 2000 };
    double c5 = 0, c60 = 0;
    for (int q = 0; q < Q; q++) {
        c5 += smm_rwin_count(w, span - 1, 5);
    }
    double t2 = now_s();
    for (int q = 0; q < Q; q++) {
        c60 += smm_rwin_count(w, span - 1, span / 2);
    }
    double t3 = now_s();
    sink_d = c5 + c60;
    size_t b = smm_rwin_memory_bytes(w);
    peak = b > peak ? b : peak;
    printf("stream %8lld users, %8lld events over %4d min, H=%4d, jitter %d: add %.1f ns; count "
           "W=5 %.1f us, W=H %.1f us; memory at end %zu bytes, peak %zu\n",
           (long long)n_users, (long long)n_ev, span, span / 2, jitter,
           (t1 - t0) / (double)n_ev * 1e9,
           (t2 - t1) / Q * 1e6, (t3 - t2) / Q * 1e6, b, peak);
    smm_rwin_destroy(w);
    free(minutes);
    free(hashes);
}

/* Relative error of count(59, 60) (truth n) and count(59, 5) over independent user sets
 * spread evenly over 60 minutes. */
static void bench_accuracy(int64_t n, int trials)
{
    double s60 = 0, q60 = 0, worst = 0, s5 = 0, q5 = 0;
    int beyond2 = 0, beyond3 = 0;
    uint64_t state = 1000 + (uint64_t)n;
    for (int t = 0; t < trials; t++) {
        struct smm_rwin *w = new_rwin(60);
        int64_t in5 = 0;
        for (int64_t u = 0; u < n; u++) {
            int64_t minute = (int64_t)(rng_next(&state) % 60);
            in5 += minute >= 55;
            smm_rwin_add(w, user_hash(u + (int64_t)t * 100000000LL + n * 7), minute);
        }
        double e60 = (smm_rwin_count(w, 59, 60) - (double)n) / (double)n;
        double e5 = in5 ? (smm_rwin_count(w, 59, 5) - (double)in5) / (double)in5 : 0.0;
        s60 += e60;
        q60 += e60 * e60;
        s5 += e5;
        q5 += e5 * e5;
        worst = fabs(e60) > worst ? fabs(e60) : worst;
        beyond2 += fabs(e60) > 2 * STD_ERR;
        beyond3 += fabs(e60) > 3 * STD_ERR;
        smm_rwin_destroy(w);
    }
    printf("accuracy n=%8lld (%4d sets): W=60 bias %+.2f %% rms %.2f %% max %.2f %% "
           ">2se %d >3se %d | W=5 (~n/12) bias %+.2f %% rms %.2f %%\n",
           (long long)n, trials, 100 * s60 / trials, 100 * sqrt(q60 / trials), 100 * worst,
           beyond2, beyond3, 100 * s5 / trials, 100 * sqrt(q5 / trials));
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    printf("smm-rwin-bench: p = %d (m = %u, standard error %.2f %%), exact up to %d users\n",
           SMM_RWIN_PRECISION, M_REG, 100 * STD_ERR, SMM_RWIN_EXACT_MAX);
    bench_hash();
    bench_tiny();
    bench_stream(500, 0, 120);
    bench_stream(10000, 0, 120);
    bench_stream(100000, 0, 120);
    bench_stream(1000000, 0, 120);
    bench_stream(1000000, 3, 120);
    bench_stream(1000000, 3, 2880);
    bench_stream(10000000, 3, 2880);
    static const int64_t sizes[] = {1000, 2000, 5000, 10000, 30000, 100000, 1000000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        int trials = sizes[i] >= 100000 ? 100 : 300;
        bench_accuracy(sizes[i], quick ? trials / 10 : trials);
    }
    return 0;
}
