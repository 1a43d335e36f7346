/* tests/integration/test_hll_redis.c - metrics/hll.c against a real redis-server 7.0.
 *
 * The same elements go into Redis with PFADD (key A) and into our sketch; ours is written
 * with SET (key B). Checked: PFCOUNT A == PFCOUNT B == smm_hll_count(); GET A equals
 * smm_hll_serialize() byte for byte under the rule stated in metrics/hll.h (the comparison
 * is made before any PFCOUNT, so both caches read "stale, 0"; after PFCOUNT on both keys
 * GET A == GET B entirely, cache included); PFMERGE of ours with a Redis-built key; loading
 * GET A, adding more on both sides; smm_hll_add() == PFADD's reply element by element.
 * Sets: sizes 0 .. 200000 of random binary elements (empty ones and duplicates included). */
#include "metrics/hll.h"
#include "tests/integration/harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct elems {
    unsigned char **p;
    size_t *len;
    size_t n;
};

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* n elements: random bytes of length 0..23 (zeros included), about 10 % repeats of an
 * earlier element, and the empty string at position n / 2. */
static void make_elems(struct elems *e, size_t n, uint64_t seed)
{
    e->p = calloc(n ? n : 1, sizeof(*e->p));
    e->len = calloc(n ? n : 1, sizeof(*e->len));
    e->n = n;
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && rnd(&s) % 10 == 0) {
            size_t j = rnd(&s) % i;
            e->len[i] = e->len[j];
            e->p[i] = malloc(e->len[i] + 1);
            memcpy(e->p[i], e->p[j], e->len[i]);
            continue;
        }
        e->len[i] = i == n / 2 ? 0 : rnd(&s) % 24;
        e->p[i] = malloc(e->len[i] + 1);
        for (size_t k = 0; k < e->len[i]; k++) {
            e->p[i][k] = (unsigned char)(rnd(&s) % 4 == 0 ? 0 : rnd(&s));
        }
    }
}

static void free_elems(struct elems *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->p[i]);
    }
    free(e->p);
    free(e->len);
}

static long long reply_int(redisReply *rep)
{
    cr_assert(rep != NULL);
    cr_assert_eq(rep->type, REDIS_REPLY_INTEGER, "reply type %d: %s", rep->type,
                 rep->type == REDIS_REPLY_ERROR ? rep->str : "");
    long long v = rep->integer;
    freeReplyObject(rep);
    return v;
}

/* PFADD key e[from..to) in pipelined commands of up to 1000 elements (one empty PFADD
 * when the range is empty, which creates the key as PFADD does). */
static void pfadd_range(redisContext *c, const char *key, const struct elems *e, size_t from,
                        size_t to)
{
    static const char *argv[1002];
    static size_t argl[1002];
    size_t cmds = 0;
    size_t i = from;
    do {
        int argc = 0;
        argv[argc] = "PFADD";
        argl[argc++] = 5;
        argv[argc] = key;
        argl[argc++] = strlen(key);
        for (; i < to && argc < 1002; i++) {
            argv[argc] = (const char *)e->p[i];
            argl[argc++] = e->len[i];
        }
        cr_assert_eq(redisAppendCommandArgv(c, argc, argv, argl), REDIS_OK);
        cmds++;
    } while (i < to);
    for (size_t k = 0; k < cmds; k++) {
        redisReply *rep;
        cr_assert_eq(redisGetReply(c, (void **)&rep), REDIS_OK);
        reply_int(rep);
    }
}

static size_t get_bytes(redisContext *c, const char *key, unsigned char *buf, size_t cap)
{
    redisReply *rep = redisCommand(c, "GET %s", key);
    cr_assert(rep != NULL && rep->type == REDIS_REPLY_STRING, "GET %s", key);
    cr_assert((size_t)rep->len <= cap);
    size_t n = (size_t)rep->len;
    memcpy(buf, rep->str, n);
    freeReplyObject(rep);
    return n;
}

static void set_bytes(redisContext *c, const char *key, const unsigned char *buf, size_t n)
{
    redisReply *rep = redisCommand(c, "SET %s %b", key, buf, n);
    cr_assert(rep != NULL && rep->type == REDIS_REPLY_STATUS);
    freeReplyObject(rep);
}

static long long pfcount(redisContext *c, const char *key)
{
    return reply_int(redisCommand(c, "PFCOUNT %s", key));
}

static void del(redisContext *c, const char *key)
{
    reply_int(redisCommand(c, "DEL %s", key));
}

/* 5 or more adjacent registers with one non-zero value: where Redis' VAL split depends on
 * the order of the PFADDs (hll.h). */
static int has_long_run(const struct smm_hll *h)
{
    unsigned run = 0;
    for (unsigned i = 0; i < SMM_HLL_REGISTERS; i++) {
        unsigned v = smm_hll_register(h, i);
        run = v != 0 && i > 0 && v == smm_hll_register(h, i - 1) ? run + 1 : 1;
        if (v != 0 && run >= 5) {
            return 1;
        }
    }
    return 0;
}

static int same_registers(const unsigned char *a, size_t alen, const struct smm_hll *h)
{
    struct smm_hll *x = smm_hll_new();
    cr_assert_eq(smm_hll_load(x, a, alen), SMM_OK);
    int same = 1;
    for (unsigned i = 0; i < SMM_HLL_REGISTERS && same; i++) {
        same = smm_hll_register(x, i) == smm_hll_register(h, i);
    }
    smm_hll_destroy(x);
    return same;
}

static unsigned char ga[SMM_HLL_SERIALIZED_MAX + 1];
static unsigned char gb[SMM_HLL_SERIALIZED_MAX + 1];
static unsigned char ours[SMM_HLL_SERIALIZED_MAX];

struct tally {
    int identical;   /* GET A == serialize, byte for byte */
    int long_run;    /* sparse, differing only where 5+ equal neighbours allow */
    int promoted;    /* Redis dense, ours sparse near the limit */
};

/* Compares GET key (no PFCOUNT since its last change) with serialize(h) under hll.h's rule. */
static void compare_with_redis(redisContext *c, const char *key, const struct smm_hll *h,
                               size_t sparse_max, struct tally *t, const char *what)
{
    size_t n;
    size_t an = get_bytes(c, key, ga, sizeof(ga));
    cr_assert_eq(smm_hll_serialize(h, sparse_max, ours, sizeof(ours), &n), SMM_OK);
    if (an == n && memcmp(ga, ours, n) == 0) {
        t->identical++;
        return;
    }
    cr_assert(same_registers(ga, an, h), "%s: registers differ", what);
    if (ga[4] == ours[4]) {
        cr_assert_eq(ga[4], 1, "%s: dense strings differ", what);
        cr_assert(has_long_run(h), "%s: sparse strings differ without a run of 5", what);
        t->long_run++;
        return;
    }
    cr_assert(ga[4] == 0 && ours[4] == 1 && n + 8 > sparse_max,
              "%s: Redis %s (%zu bytes), ours %s (%zu bytes)", what, ga[4] ? "sparse" : "dense",
              an, ours[4] ? "sparse" : "dense", n);
    t->promoted++;
}

static struct smm_hll *build(const struct elems *e, size_t from, size_t to)
{
    struct smm_hll *h = smm_hll_new();
    for (size_t i = from; i < to; i++) {
        cr_assert(smm_hll_add(h, e->p[i], e->len[i]) >= 0);
    }
    return h;
}

Test(hll_redis, same_counts_and_bytes, .timeout = 600)
{
    static const size_t sizes[] = {0, 1, 10, 100, 1000, 10000, 200000};
    struct h_redis r;
    h_redis_start(&r, 0);
    redisContext *c = h_redis_connect(&r);
    struct tally t = {0};
    int cases = 0;
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        int seeds = sizes[si] >= 10000 ? 3 : 10;
        for (int seed = 1; seed <= seeds; seed++) {
            char what[64];
            snprintf(what, sizeof(what), "size %zu seed %d", sizes[si], seed);
            struct elems e;
            make_elems(&e, sizes[si], (uint64_t)(seed * 1000 + si));
            del(c, "A");
            pfadd_range(c, "A", &e, 0, e.n);
            struct smm_hll *h = build(&e, 0, e.n);
            compare_with_redis(c, "A", h, SMM_HLL_SPARSE_MAX_BYTES, &t, what);

            size_t n;
            cr_assert_eq(smm_hll_serialize(h, SMM_HLL_SPARSE_MAX_BYTES, ours, sizeof(ours), &n),
                         SMM_OK);
            set_bytes(c, "B", ours, n);
            long long ca = pfcount(c, "A");
            long long cb = pfcount(c, "B");
            cr_assert_eq(ca, (long long)smm_hll_count(h), "%s: PFCOUNT %lld, ours %llu", what, ca,
                         (unsigned long long)smm_hll_count(h));
            cr_assert_eq(cb, ca, "%s", what);
            /* After PFCOUNT both keys carry the count, valid, in bytes 8..15. */
            size_t an = get_bytes(c, "A", ga, sizeof(ga));
            size_t bn = get_bytes(c, "B", gb, sizeof(gb));
            cr_assert_eq(gb[15] & 0x80, 0);
            cr_assert_eq(gb[8] | gb[9] << 8 | gb[10] << 16, (int)(ca & 0xffffff));
            if (an == n && memcmp(ga + 16, ours + 16, n - 16) == 0) {
                cr_assert(an == bn && memcmp(ga, gb, an) == 0, "%s: GET A != GET B", what);
            }
            smm_hll_destroy(h);
            free_elems(&e);
            cases++;
        }
    }
    fprintf(stderr, "hll_redis.same_counts_and_bytes: %d sets; identical %d, sparse run-of-5 %d, "
                    "promoted near the limit %d\n",
            cases, t.identical, t.long_run, t.promoted);
    cr_assert(t.identical >= cases - 2);
    redisFree(c);
    h_redis_stop(&r);
}

/* PFADD one element at a time across the sparse -> dense switch (at the default limit and
 * at hll-sparse-max-bytes 500): the reply equals smm_hll_add()'s, and after every step GET
 * equals serialize() under hll.h's rule. */
Test(hll_redis, add_reply_and_bytes_step_by_step, .timeout = 600)
{
    struct h_redis r;
    h_redis_start(&r, 0);
    redisContext *c = h_redis_connect(&r);
    static const size_t limits[] = {SMM_HLL_SPARSE_MAX_BYTES, 500};
    for (size_t li = 0; li < 2; li++) {
        char lim[16];
        snprintf(lim, sizeof(lim), "%zu", limits[li]);
        freeReplyObject(redisCommand(c, "CONFIG SET hll-sparse-max-bytes %s", lim));
        struct elems e;
        make_elems(&e, limits[li] == 500 ? 1000 : 4000, 77 + li);
        struct smm_hll *h = smm_hll_new();
        struct tally t = {0};
        int ones = 0;
        del(c, "A");
        for (size_t i = 0; i < e.n; i++) {
            long long want =
                reply_int(redisCommand(c, "PFADD A %b", e.p[i], e.len[i]));
            int got = smm_hll_add(h, e.p[i], e.len[i]);
            cr_assert_eq(got, want, "limit %zu element %zu: ours %d, PFADD %lld", limits[li], i,
                         got, want);
            ones += got;
            char what[64];
            snprintf(what, sizeof(what), "limit %zu step %zu", limits[li], i);
            compare_with_redis(c, "A", h, limits[li], &t, what);
        }
        cr_assert(ones > 100 && ones < (int)e.n);
        cr_assert_eq(pfcount(c, "A"), (long long)smm_hll_count(h));
        fprintf(stderr, "hll_redis.step_by_step limit %zu: %zu steps; identical %d, "
                        "sparse run-of-5 %d, promoted near the limit %d\n",
                limits[li], e.n, t.identical, t.long_run, t.promoted);
        smm_hll_destroy(h);
        free_elems(&e);
    }
    redisFree(c);
    h_redis_stop(&r);
}

/* PFMERGE of a key we SET with one built by PFADD counts like the union, and like our own
 * merge; the merged string is the one we would write. */
Test(hll_redis, pfmerge_with_ours, .timeout = 300)
{
    static const size_t pairs[][2] = {{10, 10}, {100, 300}, {1000, 1000}, {10000, 100},
                                      {100, 20000}};
    struct h_redis r;
    h_redis_start(&r, 0);
    redisContext *c = h_redis_connect(&r);
    struct tally t = {0};
    for (size_t k = 0; k < sizeof(pairs) / sizeof(pairs[0]); k++) {
        char what[64];
        snprintf(what, sizeof(what), "merge %zu + %zu", pairs[k][0], pairs[k][1]);
        struct elems e;
        size_t n1 = pairs[k][0];
        make_elems(&e, n1 + pairs[k][1], 500 + k);
        del(c, "A");
        del(c, "C");
        del(c, "U");
        pfadd_range(c, "A", &e, 0, n1);
        struct smm_hll *h = build(&e, n1, e.n);
        size_t n;
        cr_assert_eq(smm_hll_serialize(h, SMM_HLL_SPARSE_MAX_BYTES, ours, sizeof(ours), &n),
                     SMM_OK);
        set_bytes(c, "B", ours, n);
        redisReply *rep = redisCommand(c, "PFMERGE C A B");
        cr_assert(rep && rep->type == REDIS_REPLY_STATUS, "%s: PFMERGE", what);
        freeReplyObject(rep);
        pfadd_range(c, "U", &e, 0, e.n);

        /* Our merge of the Redis-built key into ours. */
        struct smm_hll *a = smm_hll_new();
        size_t an = get_bytes(c, "A", ga, sizeof(ga));
        cr_assert_eq(smm_hll_load(a, ga, an), SMM_OK);
        cr_assert_eq(smm_hll_merge(h, a), SMM_OK);
        compare_with_redis(c, "C", h, SMM_HLL_SPARSE_MAX_BYTES, &t, what);
        long long cu = pfcount(c, "U");
        cr_assert_eq(pfcount(c, "C"), cu, "%s", what);
        cr_assert_eq((long long)smm_hll_count(h), cu, "%s", what);
        /* The multi-key form merges on the fly, reading our string too. */
        cr_assert_eq(reply_int(redisCommand(c, "PFCOUNT A B")), cu, "%s", what);
        smm_hll_destroy(a);
        smm_hll_destroy(h);
        free_elems(&e);
    }
    fprintf(stderr, "hll_redis.pfmerge_with_ours: identical %d, run-of-5 %d, promoted %d\n",
            t.identical, t.long_run, t.promoted);
    redisFree(c);
    h_redis_stop(&r);
}

/* smm_hll_load(GET A), then the same further elements on both sides: serialize() == GET A,
 * counts equal. Covers a sparse key staying sparse, one crossing to dense, and a dense one. */
Test(hll_redis, load_then_add, .timeout = 300)
{
    static const size_t pairs[][2] = {{0, 50}, {100, 100}, {1000, 2000}, {10000, 1000},
                                      {1, 200000}};
    struct h_redis r;
    h_redis_start(&r, 0);
    redisContext *c = h_redis_connect(&r);
    struct tally t = {0};
    for (size_t k = 0; k < sizeof(pairs) / sizeof(pairs[0]); k++) {
        char what[64];
        snprintf(what, sizeof(what), "load %zu then add %zu", pairs[k][0], pairs[k][1]);
        struct elems e;
        size_t n1 = pairs[k][0];
        make_elems(&e, n1 + pairs[k][1], 900 + k);
        del(c, "A");
        pfadd_range(c, "A", &e, 0, n1);
        struct smm_hll *h = smm_hll_new();
        size_t an = get_bytes(c, "A", ga, sizeof(ga));
        cr_assert_eq(smm_hll_load(h, ga, an), SMM_OK, "%s", what);
        for (size_t i = n1; i < e.n; i++) {
            cr_assert(smm_hll_add(h, e.p[i], e.len[i]) >= 0);
        }
        pfadd_range(c, "A", &e, n1, e.n);
        compare_with_redis(c, "A", h, SMM_HLL_SPARSE_MAX_BYTES, &t, what);
        cr_assert_eq(pfcount(c, "A"), (long long)smm_hll_count(h), "%s", what);
        smm_hll_destroy(h);
        free_elems(&e);
    }
    fprintf(stderr, "hll_redis.load_then_add: identical %d, run-of-5 %d, promoted %d\n",
            t.identical, t.long_run, t.promoted);
    redisFree(c);
    h_redis_stop(&r);
}

/* The one place where Redis' sparse bytes depend on the order of the PFADDs: five adjacent
 * registers of one value. Added from the left, Redis cuts them VAL 4 + VAL 1, as we do;
 * added from the right, VAL 1 + VAL 4. Registers and PFCOUNT agree either way. */
Test(hll_redis, run_of_five_depends_on_order)
{
    /* Elements "r<k>" whose register is 200 + j and rank 1, found by trying k = 0, 1, ... */
    char found[5][32];
    size_t flen[5];
    int have = 0;
    for (unsigned k = 0; have != 0x1f; k++) {
        char id[32];
        int len = snprintf(id, sizeof(id), "r%u", k);
        struct smm_hll *one = smm_hll_new();
        smm_hll_add(one, id, (size_t)len);
        for (int j = 0; j < 5; j++) {
            if (!(have & 1 << j) && smm_hll_register(one, 200 + (unsigned)j) == 1) {
                memcpy(found[j], id, (size_t)len + 1);
                flen[j] = (size_t)len;
                have |= 1 << j;
            }
        }
        smm_hll_destroy(one);
    }
    struct h_redis r;
    h_redis_start(&r, 0);
    redisContext *c = h_redis_connect(&r);
    struct smm_hll *h = smm_hll_new();
    for (int j = 0; j < 5; j++) {
        reply_int(redisCommand(c, "PFADD L %b", found[j], flen[j]));
        reply_int(redisCommand(c, "PFADD R %b", found[4 - j], flen[4 - j]));
        smm_hll_add(h, found[j], flen[j]);
    }
    size_t n;
    cr_assert_eq(smm_hll_serialize(h, SMM_HLL_SPARSE_MAX_BYTES, ours, sizeof(ours), &n), SMM_OK);
    /* XZERO:200 VAL:1,4 VAL:1,1 XZERO:16179 */
    static const unsigned char body[] = {0x40, 0xc7, 0x83, 0x80, 0x7f, 0x32};
    cr_assert_eq(n, 16 + sizeof(body));
    cr_assert(memcmp(ours + 16, body, sizeof(body)) == 0);
    size_t ln = get_bytes(c, "L", ga, sizeof(ga));
    cr_assert(ln == n && memcmp(ga, ours, n) == 0, "from the left: Redis cuts 4 + 1 too");
    size_t rn = get_bytes(c, "R", gb, sizeof(gb));
    cr_assert_eq(rn, n);
    cr_assert_eq(gb[16 + 1], 0xc7);
    cr_assert(gb[16 + 2] == 0x80 && gb[16 + 3] == 0x83, "from the right: VAL 1 + VAL 4");
    cr_assert(same_registers(gb, rn, h));
    cr_assert_eq(pfcount(c, "R"), 5);
    cr_assert_eq(pfcount(c, "L"), 5);
    cr_assert_eq(smm_hll_count(h), 5);
    smm_hll_destroy(h);
    redisFree(c);
    h_redis_stop(&r);
}

/* The estimator on register histograms no add sequence of this size reaches: crafted dense
 * strings (ranks up to 51, all zero, all 51, mostly high) SET into Redis: PFCOUNT equals
 * smm_hll_count() of the same string loaded. Also a key Redis turned dense while small
 * (hll-sparse-max-bytes 0): loading it and adding more gives Redis' dense bytes. */
Test(hll_redis, crafted_registers_and_early_dense, .timeout = 300)
{
    static uint8_t regs[SMM_HLL_REGISTERS];
    static unsigned char s[SMM_HLL_DENSE_BYTES];
    struct h_redis r;
    h_redis_start(&r, 0);
    redisContext *c = h_redis_connect(&r);
    uint64_t seed = 42;
    for (int round = 0; round < 60; round++) {
        int kind = round % 6;
        for (unsigned i = 0; i < SMM_HLL_REGISTERS; i++) {
            uint64_t x = rnd(&seed);
            switch (kind) {
            case 0: regs[i] = 0; break;
            case 1: regs[i] = 51; break;
            case 2: regs[i] = (uint8_t)(x % 52); break;
            case 3: regs[i] = (uint8_t)(x % 8 == 0 ? 51 : 40 + x % 12); break;
            case 4: regs[i] = (uint8_t)(x % 1000 < (uint64_t)round * 15 ? 1 + x % 5 : 0); break;
            default: regs[i] = (uint8_t)(x % 2 ? 51 : 0); break;
            }
        }
        memcpy(s, "HYLL\0\0\0\0\0\0\0\0\0\0\0\x80", 16);
        for (unsigned i = 0; i < SMM_HLL_REGISTERS; i += 4) {
            unsigned char *b = s + 16 + i / 4 * 3;
            uint32_t w = (uint32_t)regs[i] | (uint32_t)regs[i + 1] << 6 |
                         (uint32_t)regs[i + 2] << 12 | (uint32_t)regs[i + 3] << 18;
            b[0] = (unsigned char)w;
            b[1] = (unsigned char)(w >> 8);
            b[2] = (unsigned char)(w >> 16);
        }
        set_bytes(c, "D", s, sizeof(s));
        struct smm_hll *h = smm_hll_new();
        cr_assert_eq(smm_hll_load(h, s, sizeof(s)), SMM_OK);
        long long want = pfcount(c, "D");
        cr_assert_eq((long long)smm_hll_count(h), want, "round %d kind %d: ours %llu, PFCOUNT %lld",
                     round, kind, (unsigned long long)smm_hll_count(h), want);
        smm_hll_destroy(h);
    }

    freeReplyObject(redisCommand(c, "CONFIG SET hll-sparse-max-bytes 0"));
    struct elems e;
    make_elems(&e, 40, 4242);
    del(c, "A");
    pfadd_range(c, "A", &e, 0, 20);
    freeReplyObject(redisCommand(c, "CONFIG SET hll-sparse-max-bytes 3000"));
    size_t an = get_bytes(c, "A", ga, sizeof(ga));
    cr_assert_eq(an, SMM_HLL_DENSE_BYTES);
    struct smm_hll *h = smm_hll_new();
    cr_assert_eq(smm_hll_load(h, ga, an), SMM_OK);
    for (size_t i = 20; i < e.n; i++) {
        smm_hll_add(h, e.p[i], e.len[i]);
    }
    pfadd_range(c, "A", &e, 20, e.n);
    struct tally t = {0};
    compare_with_redis(c, "A", h, SMM_HLL_SPARSE_MAX_BYTES, &t, "early dense");
    cr_assert_eq(t.identical, 1);
    cr_assert_eq(pfcount(c, "A"), (long long)smm_hll_count(h));
    smm_hll_destroy(h);
    free_elems(&e);
    redisFree(c);
    h_redis_stop(&r);
}
