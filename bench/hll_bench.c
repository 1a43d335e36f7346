/* bench/hll_bench.c - cost and memory of the Redis-compatible HyperLogLog (metrics/hll.c).
 *
 * Prints, never asserts: the figures quoted in the report on metrics/hll.c come from here.
 *   smm-hll-bench     about 2 s at -O2 on one core
 * Per-add cost is measured on many sketches at once (a working set like the processor's
 * posts), one size class at a time; serialise and count on one sketch of each size.
 * Wall clock (CLOCK_MONOTONIC) over many calls; run it on an idle machine. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/hll.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static volatile uint64_t sink_u;

/* A 16-byte id: u's 8 bytes then a fixed tag. Costs ~1 ns, so ns/add is the sketch's. */
static int user_id(char *buf, size_t size, uint64_t u)
{
    (void)size;
    memcpy(buf, &u, 8);
    memcpy(buf + 8, "user-id:", 8);
    return 16;
}

static struct smm_hll *filled(uint64_t users, uint64_t salt)
{
    struct smm_hll *h = smm_hll_new();
    char id[32];
    for (uint64_t u = 0; u < users; u++) {
        int len = user_id(id, sizeof(id), u * 1000003u + salt);
        if (!h || smm_hll_add(h, id, (size_t)len) < 0) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
    }
    return h;
}

/* ns per add while `sketches` sketches grow from 0 to `users` distinct users each. */
static void bench_add(int sketches, uint64_t users)
{
    struct smm_hll **hs = calloc((size_t)sketches, sizeof(*hs));
    for (int s = 0; s < sketches; s++) {
        hs[s] = smm_hll_new();
    }
    char id[32];
    double t0 = now_s();
    for (uint64_t u = 0; u < users; u++) {
        for (int s = 0; s < sketches; s++) {
            int len = user_id(id, sizeof(id), u * 7919u + (uint64_t)s);
            sink_u += (uint64_t)smm_hll_add(hs[s], id, (size_t)len);
        }
    }
    double dt = now_s() - t0;
    size_t mem = 0;
    for (int s = 0; s < sketches; s++) {
        mem += smm_hll_memory(hs[s]);
        smm_hll_destroy(hs[s]);
    }
    free(hs);
    printf("add   %6d sketches x %7llu users: %6.1f ns/add  (%zu B/sketch at the end)\n",
           sketches, (unsigned long long)users, dt * 1e9 / ((double)sketches * (double)users),
           mem / (size_t)sketches);
}

static void bench_serialize_count(uint64_t users)
{
    static unsigned char buf[SMM_HLL_SERIALIZED_MAX];
    struct smm_hll *h = filled(users, 1);
    int reps = users >= 10000 ? 2000 : 20000;
    size_t len = 0;
    double t0 = now_s();
    for (int i = 0; i < reps; i++) {
        if (smm_hll_serialize(h, SMM_HLL_SPARSE_MAX_BYTES, buf, sizeof(buf), &len) != SMM_OK) {
            exit(1);
        }
        sink_u += buf[len - 1];
    }
    double ser = (now_s() - t0) * 1e9 / reps;
    size_t mem = smm_hll_memory(h);
    /* count() is cached until a register changes: time first counts of many sketches. */
    int k = users >= 3000 ? 100 : 1000;
    struct smm_hll **hs = malloc((size_t)k * sizeof(*hs));
    for (int i = 0; i < k; i++) {
        hs[i] = filled(users, 10 + (uint64_t)i);
    }
    t0 = now_s();
    for (int i = 0; i < k; i++) {
        sink_u += smm_hll_count(hs[i]);
    }
    double cnt = (now_s() - t0) * 1e9 / k;
    for (int i = 0; i < k; i++) {
        smm_hll_destroy(hs[i]);
    }
    free(hs);
    printf("users %7llu: serialise %7.0f ns (%5zu B, %s), count %7.0f ns, memory %6zu B\n",
           (unsigned long long)users, ser, len, buf[4] ? "sparse" : "dense ", cnt, mem);
    smm_hll_destroy(h);
}

/* What the loops above spend making the 16-byte ids, to subtract from ns/add. */
static void bench_ids(void)
{
    char id[32];
    enum { N = 10000000 };
    double t0 = now_s();
    for (uint64_t u = 0; u < N; u++) {
        int len = user_id(id, sizeof(id), u * 7919u);
        sink_u += (uint64_t)len + (unsigned char)id[len - 1];
    }
    printf("making one id (included in ns/add below): %.1f ns\n",
           (now_s() - t0) * 1e9 / N);
}

int main(void)
{
    printf("memory per sketch (struct + registers):\n");
    static const uint64_t sizes[] = {0, 1, 3, 100, 1000, 2000, 3000, 10000, 100000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct smm_hll *h = filled(sizes[i], 2);
        printf("  %7llu users: %6zu B\n", (unsigned long long)sizes[i], smm_hll_memory(h));
        smm_hll_destroy(h);
    }
    bench_ids();
    bench_add(10000, 10);
    bench_add(1000, 100);
    bench_add(100, 1000);
    bench_add(10, 10000);
    bench_add(1, 10000000);
    for (size_t i = 1; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        bench_serialize_count(sizes[i]);
    }
    return 0;
}
