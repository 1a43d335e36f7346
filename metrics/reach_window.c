/* metrics/reach_window.c - sliding-window distinct counter: exact table, then sliding HLL.
 *
 * One object per post, asked "distinct users in the last W minutes" for W up to the
 * horizon H, often and for many posts at once; most posts have a handful of viewers, a few
 * have millions. A ring of per-minute HyperLogLogs read as a union (notes/metrics.md 2.8)
 * would cost H x m bytes per post (120 KB for H = 60, m = 2048) and H x m register reads
 * per count; the sliding HyperLogLog below holds 28-95 KB for a huge post (measured, see
 * MEMORY) and reads each register's short list once per count.
 *
 * DESIGN.
 * Keys. key = smm_hash64_u64(user_hash): a bijection, so distinct user hashes stay
 * distinct (exact mode stays exact) while plain integer ids get random-looking bits.
 * Register j = the top p bits of key (p = SMM_RWIN_PRECISION, m = 2^p); rank r = 1 +
 * the number of leading zeros of the other 64 - p bits, 65 - p when they are all zero.
 *
 * Minutes are stored as 32-bit offsets from a per-object base (minute - base >= 1 for all
 * live data); base = newest - H when it is set, so an offset fits 24 bits for 2^24
 * minutes (32 years) of continuous traffic, after which rebase() moves it up (tested).
 * When an accepted minute is H or more past newest, everything held is stale: the object
 * is reset (sketch freed) and starts over in exact mode.
 *
 * Exact mode. Open addressing with linear probing: keys[slots] then offsets[slots]
 * (12 bytes a slot, offset 0 = free), slots a power of two >= 4 and at most 3/4 full.
 * A sighting raises the user's offset to the newest seen. When the table is full it is
 * rebuilt without stale users (offset <= newest - H - base), doubling when more than 3/8
 * of the slots are live; at 1024 slots a live 769th user moves everything into the sketch.
 * count() scans the slots: users with offset in (max(now - W, newest - H), now].
 *
 * Sliding HyperLogLog (Chabchoub and Hebrail, "Sliding HyperLogLog: estimating cardinality
 * in a data stream over a sliding window", ICDM Workshops 2010, adapted to event minutes
 * arriving out of order). Register j keeps a list of (minute, rank) pairs sorted by minute,
 * minutes strictly increasing and ranks strictly decreasing: a pair is kept only while no
 * other pair has a later-or-equal minute and a higher-or-equal rank. A dropped pair could
 * never be a window's maximum for a window ending at or after newest: the dominating pair
 * is inside every such window that contains the dropped one. So, for now >= newest, the
 * maximum of register j over (lo, now] is the rank of the first pair with minute > lo, and
 * the registers equal those of a plain HyperLogLog of exactly the users whose latest
 * sighting lies in the window (the tests check equality with one rebuilt from scratch).
 * Insertion of (t, r): find the first pair with minute >= t; if its rank >= r the new pair
 * is dominated (the common case once a register has seen this minute); otherwise it
 * replaces the run of older pairs with rank <= r (and a same-minute pair of lower rank),
 * and later pairs, all ranking lower, stay. Stale pairs lead the list and are cut when a
 * register is touched or the arena is compacted; count() skips them by the window bound.
 * A list holds at most min(65 - p, H) pairs; with n distinct users per register in the
 * horizon it holds about log2(n) / 2 + 1 on average.
 *
 * Entries are 32 bits: offset (24 bits) << 8 | rank. Lists live in one arena: register j
 * owns a region of cap[j] entries (0 or a power of two <= 64) at start[j]. A list that
 * outgrows its region moves to a region twice as large at the end (the old one becomes a
 * hole); when the arena has no room left, compact() copies every list into a new arena
 * with regions trimmed to the next power of two of its length, plus a quarter spare.
 *
 * Estimator. Ertl's improved estimator ("New cardinality estimation algorithms for
 * HyperLogLog sketches", arXiv:1702.01284, 2017), from the histogram C_k of register
 * values, q = 64 - p:
 *     E = alpha_inf m^2 / (m sigma(C_0/m) + sum_{k=1..q} C_k 2^-k + m tau(1 - C_{q+1}/m) 2^-q)
 *     alpha_inf = 1 / (2 ln 2),  sigma(x) = x + sum_{k>=1} x^(2^k) 2^(k-1),
 *     tau(x) = (1 - x - sum_{k>=1} (1 - x^(2^-k))^2 2^-k) / 3.
 * The sigma term is the small-range (linear counting) correction and tau the large-range
 * one, folded into one formula without empirical bias tables. Why not the textbook switch
 * (raw alpha_m m^2 / sum 2^-M_j, linear counting m ln(m/V) below 2.5 m): measured over 400
 * sets of random keys each (m = 2048), its bias is +1.5 % at 2.44 m and +1.8 % at 2.69 m,
 * RMS error 3.4 % at 2.44 m, and 3-4 sets in 400 land beyond 3 standard errors between
 * 2.2 m and 2.7 m; the improved estimator stays within +-0.3 % bias and 1.7-2.3 % RMS at
 * every size from 100 to 100,000 (below 2.5 m, where no register is saturated, both give
 * nearly the same answers). Both agree with 1.04 / sqrt(m) for large n.
 *
 * ACCURACY (bench/rwin_bench.c, p = 11, m = 2048, standard error 1.04 / sqrt(m) = 2.30 %;
 * n users spread over 60 minutes, count of the 60-minute window, 300 independent user sets
 * up to 30,000 users, 100 beyond):
 *        n     bias     RMS    max |err|   beyond 3 SE
 *    1,000   +0.07 %  1.71 %   6.1 %       0 / 300
 *    5,000   +0.17 %  1.88 %   6.7 %       0 / 300
 *   10,000   +0.03 %  2.21 %   6.3 %       0 / 300
 *  100,000   -0.24 %  2.24 %   6.0 %       0 / 100
 *  1,000,000 +0.03 %  2.17 %   7.0 %       1 / 100
 * and 1.5-2.5 % RMS for the 5-minute window (n / 12 users) of the same sets. Exact mode
 * (up to 768 live users) has no error.
 *
 * MEMORY (x86-64, malloc overhead excluded). Header 48 bytes. Exact: + 12 bytes a slot:
 * 96 bytes for 1-3 users, 144 for 4-6, 240 for 7-12, 12,336 at 768. Sketch: + 12,304
 * (arena pointer and counters, start/len/cap per register) + 4 bytes an arena entry.
 * Worst case: the arena never exceeds 64 m x 5/4 + 64 entries (every register at
 * cap 64, which needs 54 distinct ranks in 54 distinct minutes per register), so 48 +
 * 12,304 + 655,616 = 667,968 bytes at p = 11. Measured: 16,448 bytes right after the
 * switch; 28 KB with 10,000 users, 49 KB with 100,000 and 63-68 KB with 1,000,000 users
 * in 2 hours (H = 60); 76 KB with 1,000,000 and 93 KB with 10,000,000 users in 2 days
 * (H = 1440).
 *
 * COST (bench/rwin_bench.c, x86-64, -O2, one core of a shared 2-core machine). add: about
 * 50 ns for a tiny post (new object, first users), 25 ns in a full exact table, 18-45 ns
 * in sketch mode (the least when most sightings are dominated). count: 8 ns for a tiny
 * post, 0.8 us for a full exact table (1,024 slots), 2.5-7.5 us in sketch mode (2,048
 * lists plus the estimator's series). */
#include "metrics/reach_window.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/hash.h"

#if SMM_RWIN_PRECISION < 10 || SMM_RWIN_PRECISION > 12
#error "SMM_RWIN_PRECISION must be 10, 11 or 12"
#endif

#define P          SMM_RWIN_PRECISION
#define M          (1u << P)
#define RHO_MAX    (64 - P + 1)   /* rank of a hash whose 64 - P low bits are all zero */
#define CAP_MAX    64             /* power of two >= RHO_MAX: longest possible list */
#define OFF_LIMIT  ((1u << 24) - 1) /* largest stored minute offset (24 bits in an entry) */
#define MIN_SLOTS  4
#define MAX_SLOTS  1024           /* SMM_RWIN_EXACT_MAX = MAX_SLOTS x 3/4 */
#define ARENA_INIT 1024

_Static_assert(SMM_RWIN_EXACT_MAX == MAX_SLOTS / 4 * 3, "exact table size");
_Static_assert(RHO_MAX <= CAP_MAX && CAP_MAX <= 255, "list capacity fits a byte");
_Static_assert(SMM_RWIN_HORIZON_MAX < OFF_LIMIT / 2, "offsets leave room between rebases");

/* An entry of a register's list: minute offset (minute - base, 24 bits) << 8 | rank. */
#define ENT(off, rho) ((uint32_t)(off) << 8 | (uint32_t)(rho))
#define ENT_OFF(e)    ((int64_t)((e) >> 8))
#define ENT_RHO(e)    ((int)((e)&0xffu))

/* Sliding HyperLogLog. Register j's list lives at ent[start[j] .. start[j] + len[j]), in a
 * region of cap[j] entries (0 or a power of two); times strictly increase and ranks
 * strictly decrease along it. Regions are bump-allocated from ent[]; a list outgrowing
 * its region moves to a new one twice the size and the old one becomes a hole, reclaimed
 * when the arena is full (compact()). */
struct sketch {
    uint32_t *ent;
    uint32_t ent_cap;  /* entries allocated */
    uint32_t ent_used; /* bump pointer */
    uint32_t start[M];
    uint8_t len[M];
    uint8_t cap[M];
};

struct smm_rwin {
    int64_t newest;     /* newest accepted minute (valid when !empty) */
    int64_t base;       /* stored offset = minute - base; every live offset is >= 1 */
    int32_t horizon;    /* H */
    int32_t empty;      /* nothing accepted yet (or everything reset) */
    uint32_t n;         /* exact: occupied slots, stale ones included */
    uint32_t slots;     /* exact: table size, power of two; 0 when no table */
    uint64_t *keys;     /* exact: keys[slots], then uint32_t offsets[slots]; 0 = free */
    struct sketch *sk;  /* sketch mode when non-NULL (then keys == NULL) */
};

static void set_err(char *errstr, size_t errstr_size, const char *msg)
{
    if (errstr && errstr_size > 0) {
        snprintf(errstr, errstr_size, "%s", msg);
    }
}

static int clz64(uint64_t x) /* x != 0 */
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_clzll(x);
#else
    int n = 0;
    while (!(x & (1ull << 63))) {
        x <<= 1;
        n++;
    }
    return n;
#endif
}

static uint32_t pow2_at_least(uint32_t n) /* n <= 2^31 */
{
    uint32_t c = 1;
    while (c < n) {
        c <<= 1;
    }
    return c;
}

/* Offsets <= this are older than the horizon: never counted, free to drop. */
static int64_t stale_off(const struct smm_rwin *w)
{
    return w->newest - w->horizon - w->base;
}

/* ---- exact mode ---------------------------------------------------------------------- */

static uint32_t *offs_of(uint64_t *keys, uint32_t slots)
{
    return (uint32_t *)(keys + slots);
}

/* Slot holding key, or the free slot where it belongs. The table is never full. */
static uint32_t exact_slot(const uint64_t *keys, const uint32_t *offs, uint32_t slots,
                           uint64_t key)
{
    uint32_t mask = slots - 1;
    uint32_t i = (uint32_t)key & mask;
    while (offs[i] != 0 && keys[i] != key) {
        i = (i + 1) & mask;
    }
    return i;
}

/* Replaces the table by one of `slots` slots holding the live entries only. */
static int exact_rebuild(struct smm_rwin *w, uint32_t slots)
{
    uint64_t *keys = calloc(slots, sizeof(uint64_t) + sizeof(uint32_t));
    if (!keys) {
        return SMM_ERR;
    }
    uint32_t *offs = offs_of(keys, slots);
    uint32_t n = 0;
    if (w->keys) {
        const uint32_t *old = offs_of(w->keys, w->slots);
        int64_t stale = stale_off(w);
        for (uint32_t i = 0; i < w->slots; i++) {
            if (old[i] != 0 && (int64_t)old[i] > stale) {
                uint32_t s = exact_slot(keys, offs, slots, w->keys[i]);
                keys[s] = w->keys[i];
                offs[s] = old[i];
                n++;
            }
        }
        free(w->keys);
    }
    w->keys = keys;
    w->slots = slots;
    w->n = n;
    return SMM_OK;
}

static uint32_t exact_live(const struct smm_rwin *w)
{
    const uint32_t *offs = offs_of(w->keys, w->slots);
    int64_t stale = stale_off(w);
    uint32_t live = 0;
    for (uint32_t i = 0; i < w->slots; i++) {
        live += offs[i] != 0 && (int64_t)offs[i] > stale;
    }
    return live;
}

/* ---- sketch mode --------------------------------------------------------------------- */

/* Drops the stale head of register j's list (times increase, so stale entries lead). */
static void prune_head(struct sketch *sk, uint32_t j, int64_t stale)
{
    uint32_t *list = sk->ent + sk->start[j];
    int k = sk->len[j], h = 0;
    while (h < k && ENT_OFF(list[h]) <= stale) {
        h++;
    }
    if (h > 0) {
        memmove(list, list + h, (size_t)(k - h) * sizeof(*list));
        sk->len[j] = (uint8_t)(k - h);
    }
}

/* Moves every list into a new arena with regions trimmed to their lengths (stale entries
 * dropped), register `grow` getting `grow_cap` entries, plus a quarter spare. */
static int compact(struct sketch *sk, int64_t stale, uint32_t grow, uint32_t grow_cap)
{
    uint32_t need = 0;
    for (uint32_t j = 0; j < M; j++) {
        prune_head(sk, j, stale);
        need += j == grow ? grow_cap : (sk->len[j] ? pow2_at_least(sk->len[j]) : 0);
    }
    uint32_t ent_cap = need + need / 4 + CAP_MAX;
    uint32_t *ent = malloc((size_t)ent_cap * sizeof(*ent));
    if (!ent) {
        return SMM_ERR;
    }
    uint32_t used = 0;
    for (uint32_t j = 0; j < M; j++) {
        uint32_t cap = j == grow ? grow_cap : (sk->len[j] ? pow2_at_least(sk->len[j]) : 0);
        memcpy(ent + used, sk->ent + sk->start[j], (size_t)sk->len[j] * sizeof(*ent));
        sk->start[j] = used;
        sk->cap[j] = (uint8_t)cap;
        used += cap;
    }
    free(sk->ent);
    sk->ent = ent;
    sk->ent_cap = ent_cap;
    sk->ent_used = used;
    return SMM_OK;
}

/* Gives register j a region of at least `need` entries, keeping its list. */
static int reserve(struct sketch *sk, uint32_t j, uint32_t need, int64_t stale)
{
    uint32_t cap = pow2_at_least(need);
    if (sk->ent_cap - sk->ent_used < cap) {
        return compact(sk, stale, j, cap);
    }
    memcpy(sk->ent + sk->ent_used, sk->ent + sk->start[j], (size_t)sk->len[j] * sizeof(uint32_t));
    sk->start[j] = sk->ent_used;
    sk->cap[j] = (uint8_t)cap;
    sk->ent_used += cap;
    return SMM_OK;
}

/* Inserts (off, rank of key) into its register's list, keeping only pairs that no newer
 * pair with an equal or higher rank dominates. */
static int sketch_add(struct sketch *sk, uint64_t key, uint32_t off, int64_t stale)
{
    uint32_t j = (uint32_t)(key >> (64 - P));
    uint64_t rest = key << P;
    int r = rest ? clz64(rest) + 1 : RHO_MAX;
    prune_head(sk, j, stale);
    uint32_t *list = sk->ent + sk->start[j];
    int k = sk->len[j];
    int i = k; /* first index with time >= off; in-order input ends at the tail */
    while (i > 0 && ENT_OFF(list[i - 1]) >= off) {
        i--;
    }
    if (i < k && ENT_RHO(list[i]) >= r) {
        return SMM_OK; /* a pair at the same or a newer minute already ranks as high */
    }
    int e = (i < k && ENT_OFF(list[i]) == off) ? i + 1 : i; /* same minute, lower rank */
    int s = i;
    while (s > 0 && ENT_RHO(list[s - 1]) <= r) {
        s--; /* older pairs ranking no higher are dominated by the new one */
    }
    int newk = k - (e - s) + 1;
    if (newk > sk->cap[j]) {
        if (reserve(sk, j, (uint32_t)newk, stale) != SMM_OK) {
            return SMM_ERR;
        }
        list = sk->ent + sk->start[j];
    }
    memmove(list + s + 1, list + e, (size_t)(k - e) * sizeof(*list));
    list[s] = ENT(off, r);
    sk->len[j] = (uint8_t)newk;
    return SMM_OK;
}

static struct sketch *sketch_new(void)
{
    struct sketch *sk = calloc(1, sizeof(*sk));
    if (!sk) {
        return NULL;
    }
    sk->ent = malloc(ARENA_INIT * sizeof(*sk->ent));
    if (!sk->ent) {
        free(sk);
        return NULL;
    }
    sk->ent_cap = ARENA_INIT;
    return sk;
}

static void sketch_destroy(struct sketch *sk)
{
    if (sk) {
        free(sk->ent);
        free(sk);
    }
}

/* Moves the live exact entries into a new sketch and frees the table. */
static int to_sketch(struct smm_rwin *w)
{
    struct sketch *sk = sketch_new();
    if (!sk) {
        return SMM_ERR;
    }
    const uint32_t *offs = offs_of(w->keys, w->slots);
    int64_t stale = stale_off(w);
    for (uint32_t i = 0; i < w->slots; i++) {
        if (offs[i] != 0 && (int64_t)offs[i] > stale &&
            sketch_add(sk, w->keys[i], offs[i], stale) != SMM_OK) {
            sketch_destroy(sk);
            return SMM_ERR;
        }
    }
    free(w->keys);
    w->keys = NULL;
    w->slots = 0;
    w->n = 0;
    w->sk = sk;
    return SMM_OK;
}

/* ---- common -------------------------------------------------------------------------- */

static void reset(struct smm_rwin *w)
{
    sketch_destroy(w->sk);
    free(w->keys);
    w->sk = NULL;
    w->keys = NULL;
    w->slots = 0;
    w->n = 0;
    w->empty = 1;
}

/* Moves base up to newest - H so offsets stay below OFF_LIMIT, dropping stale entries.
 * Runs once per 2^24 minutes (32 years) of event time, if ever. */
static int rebase(struct smm_rwin *w)
{
    int64_t new_base = w->newest - w->horizon;
    uint32_t delta = (uint32_t)(new_base - w->base);
    if (w->sk) {
        struct sketch *sk = w->sk;
        for (uint32_t j = 0; j < M; j++) {
            prune_head(sk, j, stale_off(w));
            uint32_t *list = sk->ent + sk->start[j];
            for (int i = 0; i < sk->len[j]; i++) {
                list[i] = ENT(ENT_OFF(list[i]) - delta, ENT_RHO(list[i]));
            }
        }
        w->base = new_base;
        return SMM_OK;
    }
    if (w->keys) {
        uint32_t slots = w->slots;
        if (exact_rebuild(w, slots) != SMM_OK) { /* drops stale entries */
            return SMM_ERR;
        }
        uint32_t *offs = offs_of(w->keys, w->slots);
        for (uint32_t i = 0; i < w->slots; i++) {
            if (offs[i] != 0) {
                offs[i] -= delta;
            }
        }
    }
    w->base = new_base;
    return SMM_OK;
}

struct smm_rwin *smm_rwin_new(int horizon_minutes, char *errstr, size_t errstr_size)
{
    if (horizon_minutes < 1 || horizon_minutes > SMM_RWIN_HORIZON_MAX) {
        if (errstr && errstr_size > 0) {
            snprintf(errstr, errstr_size, "reach window horizon_minutes: must be 1..%d, got %d",
                     SMM_RWIN_HORIZON_MAX, horizon_minutes);
        }
        return NULL;
    }
    struct smm_rwin *w = calloc(1, sizeof(*w));
    if (!w) {
        set_err(errstr, errstr_size, "reach window: out of memory");
        return NULL;
    }
    w->horizon = horizon_minutes;
    w->empty = 1;
    return w;
}

void smm_rwin_destroy(struct smm_rwin *w)
{
    if (!w) {
        return;
    }
    sketch_destroy(w->sk);
    free(w->keys);
    free(w);
}

static int exact_add(struct smm_rwin *w, uint64_t key, uint32_t off)
{
    if (!w->keys && exact_rebuild(w, MIN_SLOTS) != SMM_OK) {
        return SMM_ERR;
    }
    uint32_t *offs = offs_of(w->keys, w->slots);
    uint32_t s = exact_slot(w->keys, offs, w->slots, key);
    if (offs[s] != 0) {
        if (off > offs[s]) {
            offs[s] = off;
        }
        return SMM_OK;
    }
    if ((w->n + 1) * 4 > w->slots * 3) {
        /* Full. Rebuild without the users older than the horizon; double the size when
         * more than half of the allowed load is live (so a rebuild is followed by at least
         * as many inserts as there are live users), and switch to the sketch when the live
         * users fill the largest table. At the largest size a rebuild may free only a few
         * slots: then one O(MAX_SLOTS) rebuild per (SMM_RWIN_EXACT_MAX - live) new users. */
        uint32_t live = exact_live(w);
        if (live + 1 > SMM_RWIN_EXACT_MAX) {
            if (to_sketch(w) != SMM_OK) {
                return SMM_ERR;
            }
            return sketch_add(w->sk, key, off, stale_off(w));
        }
        uint32_t slots = w->slots;
        if (live * 8 > slots * 3 && slots < MAX_SLOTS) {
            slots *= 2;
        }
        if (exact_rebuild(w, slots) != SMM_OK) {
            return SMM_ERR;
        }
        offs = offs_of(w->keys, w->slots);
        s = exact_slot(w->keys, offs, w->slots, key);
    }
    w->keys[s] = key;
    offs[s] = off;
    w->n++;
    return SMM_OK;
}

int smm_rwin_add(struct smm_rwin *w, uint64_t user_hash, int64_t minute)
{
    if (!w || minute < -SMM_RWIN_MINUTE_MAX || minute > SMM_RWIN_MINUTE_MAX) {
        return SMM_ERR;
    }
    if (!w->empty && minute <= w->newest - w->horizon) {
        return SMM_RWIN_LATE;
    }
    if (!w->empty && minute - w->horizon >= w->newest) {
        reset(w); /* everything held is now older than the horizon */
    }
    if (w->empty) {
        w->empty = 0;
        w->newest = minute;
        w->base = minute - w->horizon;
    } else if (minute > w->newest) {
        int64_t old = w->newest;
        w->newest = minute;
        if (minute - w->base > (int64_t)OFF_LIMIT && rebase(w) != SMM_OK) {
            w->newest = old;
            return SMM_ERR;
        }
    }
    uint64_t key = smm_hash64_u64(user_hash);
    uint32_t off = (uint32_t)(minute - w->base);
    if (w->sk) {
        return sketch_add(w->sk, key, off, stale_off(w));
    }
    return exact_add(w, key, off);
}

/* sigma(x) = x + sum_{k>=1} x^(2^k) 2^(k-1), x in [0, 1]; infinite at 1. */
static double ertl_sigma(double x)
{
    if (x == 1.0) {
        return INFINITY;
    }
    double y = 1.0, z = x, prev;
    do {
        x *= x;
        prev = z;
        z += x * y;
        y += y;
    } while (z != prev);
    return z;
}

/* tau(x) = (1 - x - sum_{k>=1} (1 - x^(2^-k))^2 2^-k) / 3, x in [0, 1]. */
static double ertl_tau(double x)
{
    if (x == 0.0 || x == 1.0) {
        return 0.0;
    }
    double y = 1.0, z = 1.0 - x, prev;
    do {
        x = sqrt(x);
        prev = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
    } while (z != prev);
    return z / 3.0;
}

/* Ertl's improved estimator from the histogram c[0..RHO_MAX] of register values. */
static double estimate(const uint32_t *c)
{
    double m = (double)M;
    double z = m * ertl_tau(1.0 - c[RHO_MAX] / m);
    for (int k = RHO_MAX - 1; k >= 1; k--) {
        z = 0.5 * (z + c[k]);
    }
    z += m * ertl_sigma(c[0] / m);
    return m * m / (2.0 * log(2.0)) / z;
}

double smm_rwin_count(const struct smm_rwin *w, int64_t now_minute, int window_minutes)
{
    if (!w || window_minutes < 1 || window_minutes > w->horizon) {
        return NAN;
    }
    if (w->empty || now_minute <= w->newest - w->horizon ||
        now_minute - window_minutes >= w->newest) {
        return 0.0; /* the window holds no accepted minute (also keeps the sums below small) */
    }
    int64_t lo = now_minute - window_minutes;
    if (lo < w->newest - w->horizon) {
        lo = w->newest - w->horizon;
    }
    lo -= w->base; /* count offsets in (lo, hi] */
    int64_t hi = now_minute - w->base;
    if (!w->sk) {
        if (!w->keys) {
            return 0.0;
        }
        const uint32_t *offs = offs_of(w->keys, w->slots);
        uint32_t n = 0;
        for (uint32_t i = 0; i < w->slots; i++) {
            n += (int64_t)offs[i] > lo && (int64_t)offs[i] <= hi;
        }
        return (double)n;
    }
    const struct sketch *sk = w->sk;
    uint32_t hist[RHO_MAX + 1] = {0};
    for (uint32_t j = 0; j < M; j++) {
        const uint32_t *list = sk->ent + sk->start[j];
        int k = sk->len[j], i = 0;
        while (i < k && ENT_OFF(list[i]) <= lo) {
            i++;
        }
        /* The oldest pair inside the window ranks highest among those inside. */
        hist[(i < k && ENT_OFF(list[i]) <= hi) ? ENT_RHO(list[i]) : 0]++;
    }
    return estimate(hist);
}

size_t smm_rwin_memory_bytes(const struct smm_rwin *w)
{
    if (!w) {
        return 0;
    }
    size_t bytes = sizeof(*w);
    if (w->keys) {
        bytes += (size_t)w->slots * (sizeof(uint64_t) + sizeof(uint32_t));
    }
    if (w->sk) {
        bytes += sizeof(*w->sk) + (size_t)w->sk->ent_cap * sizeof(uint32_t);
    }
    return bytes;
}
