/* metrics/reach_window.c - sliding-window distinct counter: exact table, then sliding HLL.
 *
 * DESIGN (placeholder, completed below with measurements). */
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

/* 2^-r for r = 0..64, exactly: the IEEE 754 double with exponent -r and no fraction. */
static double inv_pow2(int r)
{
    uint64_t bits = (uint64_t)(1023 - r) << 52;
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
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
    double sum = 0.0;
    uint32_t zeros = 0;
    for (uint32_t j = 0; j < M; j++) {
        const uint32_t *list = sk->ent + sk->start[j];
        int k = sk->len[j], i = 0;
        while (i < k && ENT_OFF(list[i]) <= lo) {
            i++;
        }
        /* The oldest pair inside the window ranks highest among those inside. */
        int r = (i < k && ENT_OFF(list[i]) <= hi) ? ENT_RHO(list[i]) : 0;
        sum += inv_pow2(r);
        zeros += r == 0;
    }
    double m = (double)M;
    double est = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
    if (est <= 2.5 * m && zeros > 0) {
        est = m * log(m / (double)zeros); /* linear counting */
    }
    return est;
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
