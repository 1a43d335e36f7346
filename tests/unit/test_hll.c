/* tests/unit/test_hll.c - metrics/hll.c without Redis: known answers taken from
 * redis-server 7.0.15 (strings from GET, counts from PFCOUNT), the format's own example,
 * round trips through both encodings, and hostile strings that must be refused without
 * reading outside them (run under -DSMM_SANITIZE=address,undefined to see the latter).
 * The same properties against a live redis-server: tests/integration/test_hll_redis.c. */
#include "metrics/hll.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Header of a key built by PFADD alone: sparse, cache stale with value 0. */
#define HDR_SPARSE "HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80"

static unsigned char out[SMM_HLL_SERIALIZED_MAX];

static size_t ser(const struct smm_hll *h)
{
    size_t n = 0;
    cr_assert_eq(smm_hll_serialize(h, SMM_HLL_SPARSE_MAX_BYTES, out, sizeof(out), &n), SMM_OK);
    return n;
}

/* Oracle for the dense layout, written bit by bit (hll.c packs 4 registers per 3 bytes). */
static void pack_bits(const uint8_t *regs, unsigned char *body)
{
    memset(body, 0, SMM_HLL_DENSE_BYTES - SMM_HLL_HEADER_BYTES);
    for (unsigned i = 0; i < SMM_HLL_REGISTERS; i++) {
        for (unsigned b = 0; b < 6; b++) {
            if (regs[i] >> b & 1) {
                unsigned bit = i * 6 + b;
                body[bit / 8] |= (unsigned char)(1u << (bit % 8));
            }
        }
    }
}

static void make_dense(const uint8_t *regs, unsigned char *s)
{
    memcpy(s, "HYLL\0\0\0\0\0\0\0\0\0\0\0\x80", 16);
    pack_bits(regs, s + 16);
}

Test(hll, known_answers_from_redis_sparse)
{
    struct {
        const char *elems[3];
        size_t lens[3];
        size_t n;
        const char *get; /* GET after the PFADD */
        size_t get_len;
    } cases[] = {
        {{"a", "b", "c"},
         {1, 1, 1},
         3,
         HDR_SPARSE "\x60\xf3\x80\x50\xb1\x84\x4b\xfb\x80\x42\x5a",
         27},
        {{""}, {0}, 1, HDR_SPARSE "\x57\x31\x84\x68\xcc", 21},
        {{"x\0y"}, {3}, 1, HDR_SPARSE "\x72\xc7\x8c\x4d\x36", 21},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct smm_hll *h = smm_hll_new();
        for (size_t i = 0; i < cases[c].n; i++) {
            cr_assert_eq(smm_hll_add(h, cases[c].elems[i], cases[c].lens[i]), 1);
        }
        size_t n = ser(h);
        cr_assert_eq(n, cases[c].get_len, "case %zu: %zu bytes", c, n);
        cr_assert(memcmp(out, cases[c].get, n) == 0, "case %zu bytes differ", c);
        cr_assert_eq(smm_hll_count(h), cases[c].n);
        smm_hll_destroy(h);
    }
}

/* PFCOUNT and STRLEN of "u0".."u<n-1>" added to one key, from redis-server 7.0.15. */
Test(hll, known_counts_from_redis)
{
    static const struct {
        unsigned n;
        uint64_t pfcount;
        size_t strlen;
    } want[] = {{1, 1, 21},      {10, 10, 45},         {100, 99, 279},
                {1000, 994, 1885}, {10000, 9977, 12304}, {100000, 100420, 12304}};
    struct smm_hll *h = smm_hll_new();
    unsigned added = 0;
    char id[32];
    for (size_t c = 0; c < sizeof(want) / sizeof(want[0]); c++) {
        for (; added < want[c].n; added++) {
            int len = snprintf(id, sizeof(id), "u%u", added);
            cr_assert(smm_hll_add(h, id, (size_t)len) >= 0);
        }
        cr_assert_eq(smm_hll_count(h), want[c].pfcount, "n=%u: %llu", want[c].n,
                     (unsigned long long)smm_hll_count(h));
        cr_assert_eq(ser(h), want[c].strlen, "n=%u", want[c].n);
    }
    smm_hll_destroy(h);
}

Test(hll, empty_sketch)
{
    struct smm_hll *h = smm_hll_new();
    cr_assert_eq(smm_hll_count(h), 0);
    cr_assert_eq(ser(h), 18);
    cr_assert(memcmp(out, HDR_SPARSE "\x7f\xff", 18) == 0); /* XZERO:16384 */
    smm_hll_destroy(NULL);
    smm_hll_destroy(h);
}

/* The example of Redis' format description: registers 1000 = 2, 1020 = 3, 1021 = 3 are
 * XZERO:1000 VAL:2,1 ZERO:19 VAL:3,2 XZERO:15362. Non-canonical spellings of the same
 * registers load and come back canonical. */
Test(hll, sparse_canonical_form)
{
    static const char canon[] = HDR_SPARSE "\x43\xe7\x84\x12\x89\x7c\x01";
    static const char spelled[] = HDR_SPARSE "\x41\xf3\x41\xf3\x84\x12\x88\x88\x7c\x01";
    struct smm_hll *h = smm_hll_new();
    cr_assert_eq(smm_hll_load(h, spelled, sizeof(spelled) - 1), SMM_OK);
    cr_assert_eq(smm_hll_register(h, 1000), 2);
    cr_assert_eq(smm_hll_register(h, 1020), 3);
    cr_assert_eq(smm_hll_register(h, 1021), 3);
    cr_assert_eq(smm_hll_register(h, 1022), 0);
    size_t n = ser(h);
    cr_assert_eq(n, sizeof(canon) - 1);
    cr_assert(memcmp(out, canon, n) == 0);

    /* Six equal neighbours: VAL runs are cut 4 + 2 from the left. */
    static unsigned char s[SMM_HLL_SERIALIZED_MAX];
    static const char six[] = HDR_SPARSE "\x3f\x93\x91\x7f\xb9"; /* ZERO:64 VAL:5,4 VAL:5,2 XZERO */
    size_t at = 16;
    memcpy(s, HDR_SPARSE, 16);
    s[at++] = 0x3f;
    for (int i = 0; i < 6; i++) {
        s[at++] = 0x80 | 4 << 2; /* VAL:5,1 six times */
    }
    s[at++] = 0x7f;
    s[at++] = 0xb9; /* XZERO: 16384 - 70 = 16314 */
    cr_assert_eq(smm_hll_load(h, s, at), SMM_OK);
    n = ser(h);
    cr_assert_eq(n, sizeof(six) - 1);
    cr_assert(memcmp(out, six, n) == 0);
    smm_hll_destroy(h);
}

/* Dense strings: random registers (0..51) packed by the oracle load exactly, and a sketch
 * loaded from a dense string stays dense (Redis never turns a key back to sparse). */
Test(hll, dense_round_trip)
{
    static uint8_t regs[SMM_HLL_REGISTERS];
    static unsigned char s[SMM_HLL_DENSE_BYTES];
    srand(7);
    for (int round = 0; round < 20; round++) {
        int density = round % 4; /* 0: few registers set, 3: all */
        for (unsigned i = 0; i < SMM_HLL_REGISTERS; i++) {
            regs[i] = (rand() % 4 <= density - 1 || rand() % 500 == 0) ? rand() % 52 : 0;
        }
        make_dense(regs, s);
        struct smm_hll *h = smm_hll_new();
        cr_assert_eq(smm_hll_load(h, s, sizeof(s)), SMM_OK);
        for (unsigned i = 0; i < SMM_HLL_REGISTERS; i++) {
            cr_assert_eq(smm_hll_register(h, i), regs[i], "round %d reg %u", round, i);
        }
        size_t n = ser(h);
        cr_assert_eq(n, SMM_HLL_DENSE_BYTES);
        cr_assert(memcmp(out, s, n) == 0, "round %d", round);
        smm_hll_destroy(h);
    }
}

/* The register of a sketch that grew from the small list into the dense array are the ones a
 * merge of its parts has, in every combination of modes. */
Test(hll, modes_and_merge_agree)
{
    struct smm_hll *all = smm_hll_new();
    struct smm_hll *a = smm_hll_new();
    struct smm_hll *b = smm_hll_new();
    struct smm_hll *small = smm_hll_new();
    char id[32];
    for (unsigned i = 0; i < 20000; i++) {
        int len = snprintf(id, sizeof(id), "user:%u", i * 7919u);
        smm_hll_add(all, id, (size_t)len);
        smm_hll_add(i % 3 == 0 ? a : b, id, (size_t)len);
        if (i < 50) {
            smm_hll_add(small, id, (size_t)len);
        }
    }
    cr_assert(smm_hll_memory(small) < 512);
    cr_assert(smm_hll_memory(all) >= SMM_HLL_REGISTERS);
    struct smm_hll *u = smm_hll_new();
    cr_assert_eq(smm_hll_merge(u, small), SMM_OK); /* small into empty: stays small */
    cr_assert(smm_hll_memory(u) < 512);
    cr_assert_eq(smm_hll_merge(u, a), SMM_OK);
    cr_assert_eq(smm_hll_merge(u, b), SMM_OK);
    cr_assert_eq(smm_hll_merge(small, all), SMM_OK); /* dense into small */
    for (unsigned i = 0; i < SMM_HLL_REGISTERS; i++) {
        unsigned want = smm_hll_register(all, i);
        cr_assert_eq(smm_hll_register(u, i), want);
        cr_assert_eq(smm_hll_register(small, i), want);
    }
    cr_assert_eq(smm_hll_count(u), smm_hll_count(all));
    smm_hll_destroy(all);
    smm_hll_destroy(a);
    smm_hll_destroy(b);
    smm_hll_destroy(small);
    smm_hll_destroy(u);
}

/* Two small sketches merge into the small union, and a small one into a dense one. */
Test(hll, merge_small_lists)
{
    struct smm_hll *a = smm_hll_new();
    struct smm_hll *b = smm_hll_new();
    struct smm_hll *all = smm_hll_new();
    char id[32];
    for (unsigned i = 0; i < 600; i++) {
        int len = snprintf(id, sizeof(id), "m%u", i);
        smm_hll_add(i < 300 ? a : b, id, (size_t)len);
        smm_hll_add(all, id, (size_t)len);
    }
    cr_assert_eq(smm_hll_merge(a, b), SMM_OK);
    cr_assert(smm_hll_memory(a) < 8192); /* still the small list */
    for (unsigned i = 0; i < SMM_HLL_REGISTERS; i++) {
        cr_assert_eq(smm_hll_register(a, i), smm_hll_register(all, i), "register %u", i);
    }
    cr_assert_eq(smm_hll_count(a), smm_hll_count(all));
    cr_assert_eq(smm_hll_merge(a, a), SMM_OK); /* self-merge changes nothing */
    cr_assert_eq(smm_hll_count(a), smm_hll_count(all));
    smm_hll_destroy(a);
    smm_hll_destroy(b);
    smm_hll_destroy(all);
}

/* A dense string with few low registers (Redis keeps a key dense once it was) loads as a
 * small list but serialises dense, also after adds, and so does a merge with it. */
Test(hll, dense_stays_dense)
{
    static uint8_t regs[SMM_HLL_REGISTERS];
    static unsigned char s[SMM_HLL_DENSE_BYTES];
    regs[3] = 1;
    regs[4000] = 7;
    regs[16383] = 32;
    make_dense(regs, s);
    struct smm_hll *h = smm_hll_new();
    cr_assert_eq(smm_hll_load(h, s, sizeof(s)), SMM_OK);
    cr_assert(smm_hll_memory(h) < 256);
    cr_assert_eq(ser(h), SMM_HLL_DENSE_BYTES);
    cr_assert(memcmp(out, s, SMM_HLL_DENSE_BYTES) == 0);
    smm_hll_add(h, "more", 4);
    cr_assert_eq(ser(h), SMM_HLL_DENSE_BYTES);
    struct smm_hll *x = smm_hll_new();
    smm_hll_add(x, "x", 1);
    cr_assert(ser(x) < 32 && out[4] == 1);
    cr_assert_eq(smm_hll_merge(x, h), SMM_OK);
    cr_assert_eq(ser(x), SMM_HLL_DENSE_BYTES);
    smm_hll_destroy(x);
    smm_hll_destroy(h);
}

/* add() answers like PFADD: 1 when a register grew, else 0, and again 0 for a repeat. */
Test(hll, add_reports_change)
{
    struct smm_hll *h = smm_hll_new();
    cr_assert_eq(smm_hll_add(h, "alice", 5), 1);
    cr_assert_eq(smm_hll_add(h, "alice", 5), 0);
    cr_assert_eq(smm_hll_add(h, NULL, 0), 1);
    cr_assert_eq(smm_hll_add(h, "", 0), 0);
    char id[32];
    int changed = 0;
    for (unsigned i = 0; i < 100000; i++) {
        int len = snprintf(id, sizeof(id), "%u", i);
        changed += smm_hll_add(h, id, (size_t)len);
    }
    /* Every register that is non-zero was raised at least once; late adds rarely change. */
    unsigned nonzero = 0;
    for (unsigned i = 0; i < SMM_HLL_REGISTERS; i++) {
        nonzero += smm_hll_register(h, i) != 0;
    }
    cr_assert(changed >= (int)nonzero && changed < 100000 / 2, "changed %d", changed);
    smm_hll_destroy(h);
}

/* An element added by its position (computed once, as the batch does for a user) raises
 * the same register as adding its bytes: the two sketches serialize byte for byte alike,
 * sparse and dense. */
Test(hll, add_by_position_is_add)
{
    struct smm_hll *a = smm_hll_new(), *b = smm_hll_new();
    cr_assert(a && b);
    char id[32];
    for (unsigned i = 0; i < 20000; i++) {
        int len = snprintf(id, sizeof(id), "u-%u", i * 7919u);
        cr_assert_eq(smm_hll_add(a, id, (size_t)len),
                     smm_hll_add_position(b, smm_hll_position(id, (size_t)len)), "%s", id);
        if (i == 50 || i == 19999) { /* sparse, then dense */
            size_t la = ser(a);
            unsigned char first[SMM_HLL_SERIALIZED_MAX];
            memcpy(first, out, la);
            cr_assert_eq(ser(b), la);
            cr_assert(memcmp(first, out, la) == 0, "after %u elements", i + 1);
        }
    }
    cr_assert_eq(smm_hll_count(a), smm_hll_count(b));
    cr_assert_eq(smm_hll_position("", 0), smm_hll_position(NULL, 0));
    smm_hll_destroy(a);
    smm_hll_destroy(b);
}

/* ---- hostile strings ---- */

static void refused(const void *s, size_t len, const char *what)
{
    struct smm_hll *h = smm_hll_new();
    smm_hll_add(h, "keep", 4);
    /* Copied to an exact-size heap block so that ASan sees any read past the end. */
    unsigned char *copy = malloc(len ? len : 1);
    memcpy(copy, s, len);
    cr_assert_eq(smm_hll_load(h, copy, len), SMM_ERR, "%s accepted", what);
    cr_assert_eq(smm_hll_count(h), 1, "%s changed the sketch", what);
    free(copy);
    smm_hll_destroy(h);
}

Test(hll, hostile_strings_refused)
{
    static unsigned char s[SMM_HLL_SERIALIZED_MAX + 8];
    static uint8_t regs[SMM_HLL_REGISTERS];

    refused("", 0, "empty");
    refused("HYLL", 4, "header only");
    refused(HDR_SPARSE, 16, "sparse without opcodes");
    refused("HYLX\x01\0\0\0\0\0\0\0\0\0\0\x80\x7f\xff", 18, "wrong magic");
    refused("HYLL\x02\0\0\0\0\0\0\0\0\0\0\x80\x7f\xff", 18, "encoding 2");
    refused("HYLL\x01\0\1\0\0\0\0\0\0\0\0\x80\x7f\xff", 18, "reserved byte");
    refused(HDR_SPARSE "\x7f", 17, "truncated XZERO");
    refused(HDR_SPARSE "\x7f\xfe", 18, "16383 registers");
    refused(HDR_SPARSE "\x7f\xff\x00", 19, "ZERO past the end");
    refused(HDR_SPARSE "\x7f\xff\x80", 19, "VAL past the end");
    refused(HDR_SPARSE "\x7f\xff\x7f\xff\x7f\xff", 22, "huge XZERO three times");
    refused(HDR_SPARSE "\x7f\xfd\x83", 19, "VAL of 4 from register 16382");
    refused(HDR_SPARSE "\x7f\xfb\x83\x00", 20, "VAL then trailing ZERO");

    /* Every proper prefix of a valid sparse string is refused. */
    struct smm_hll *h = smm_hll_new();
    char id[32];
    for (unsigned i = 0; i < 300; i++) {
        int len = snprintf(id, sizeof(id), "p%u", i);
        smm_hll_add(h, id, (size_t)len);
    }
    size_t n = ser(h);
    cr_assert_eq(out[4], 1);
    for (size_t cut = 0; cut < n; cut++) {
        refused(out, cut, "sparse prefix");
    }
    smm_hll_destroy(h);

    /* Dense: one byte short, one long, and a register of 52 (no hash gives it). */
    memset(regs, 0, sizeof(regs));
    regs[9] = 51;
    make_dense(regs, s);
    struct smm_hll *ok = smm_hll_new();
    cr_assert_eq(smm_hll_load(ok, s, SMM_HLL_DENSE_BYTES), SMM_OK);
    smm_hll_destroy(ok);
    refused(s, SMM_HLL_DENSE_BYTES - 1, "dense short");
    refused(s, SMM_HLL_DENSE_BYTES + 1, "dense long");
    regs[16383] = 52;
    make_dense(regs, s);
    refused(s, SMM_HLL_DENSE_BYTES, "dense register 52");
}

/* Random corruption of valid strings: load either refuses or yields registers that come
 * back unchanged through serialise + load. Under ASan this also proves the bounds. */
Test(hll, corrupted_strings_fuzz)
{
    struct smm_hll *src = smm_hll_new();
    char id[32];
    srand(11);
    size_t accepted = 0;
    for (int round = 0; round < 3000; round++) {
        if (round % 300 == 0) {
            for (unsigned i = 0; i < 120; i++) {
                int len = snprintf(id, sizeof(id), "f%d-%u", round, i);
                smm_hll_add(src, id, (size_t)len);
            }
        }
        size_t n = ser(src);
        size_t len = n;
        int flips = 1 + rand() % 4;
        for (int f = 0; f < flips; f++) {
            out[16 + (size_t)rand() % (n - 16)] ^= (unsigned char)(1u << (rand() % 8));
        }
        if (rand() % 4 == 0) {
            len = (size_t)rand() % (n + 1);
        }
        unsigned char *copy = malloc(len ? len : 1);
        memcpy(copy, out, len);
        struct smm_hll *h = smm_hll_new();
        if (smm_hll_load(h, copy, len) == SMM_OK) {
            accepted++;
            static unsigned char again[SMM_HLL_SERIALIZED_MAX];
            size_t m;
            cr_assert_eq(smm_hll_serialize(h, SMM_HLL_SPARSE_MAX_BYTES, again, sizeof(again), &m),
                         SMM_OK);
            struct smm_hll *h2 = smm_hll_new();
            cr_assert_eq(smm_hll_load(h2, again, m), SMM_OK);
            for (unsigned i = 0; i < SMM_HLL_REGISTERS; i += 7) {
                cr_assert_eq(smm_hll_register(h2, i), smm_hll_register(h, i));
            }
            smm_hll_destroy(h2);
        }
        smm_hll_destroy(h);
        free(copy);
    }
    cr_assert(accepted > 0); /* flipping a VAL's value bits keeps a string valid */
    smm_hll_destroy(src);
}

Test(hll, serialize_respects_cap_and_limit)
{
    struct smm_hll *h = smm_hll_new();
    char id[32];
    for (unsigned i = 0; i < 500; i++) {
        int len = snprintf(id, sizeof(id), "c%u", i);
        smm_hll_add(h, id, (size_t)len);
    }
    size_t n = ser(h);
    cr_assert_eq(out[4], 1);
    size_t m = 0;
    cr_assert_eq(smm_hll_serialize(h, SMM_HLL_SPARSE_MAX_BYTES, out, n - 1, &m), SMM_ERR);
    cr_assert_eq(smm_hll_serialize(h, SMM_HLL_SPARSE_MAX_BYTES, out, n, &m), SMM_OK);
    cr_assert_eq(m, n);
    /* A limit one byte below the sparse length makes it dense, as Redis would. */
    cr_assert_eq(smm_hll_serialize(h, n - 1, out, sizeof(out), &m), SMM_OK);
    cr_assert_eq(m, SMM_HLL_DENSE_BYTES);
    cr_assert_eq(out[4], 0);
    cr_assert_eq(smm_hll_serialize(h, n, out, sizeof(out), &m), SMM_OK);
    cr_assert_eq(m, n);
    smm_hll_destroy(h);
}
