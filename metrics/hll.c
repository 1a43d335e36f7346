/* metrics/hll.c - HyperLogLog compatible with Redis' PFADD strings (format in metrics/hll.h).
 *
 * Why not keep the Redis string itself in memory: updating its sparse form means walking
 * the opcodes from the start for every element (O(registers in use) per add), and its
 * dense form packs registers into 6 bits, so every read and write shifts and masks.
 * The processor adds far more often than it writes to Redis, so the in-memory form is
 * chosen for adding and the Redis string is produced only by smm_hll_serialize().
 *
 * DESIGN
 *  small  a sorted array of the non-zero registers, one uint32_t each: index << 8 | rank.
 *         Found by binary search, inserted with memmove. A post seen by 3 users costs the
 *         struct plus 16 bytes. Grows by doubling up to SMALL_MAX entries (8 KB).
 *  dense  one byte per register (16 KB): an add is a hash, a compare and a store. Entered
 *         when the small array would pass SMALL_MAX entries (about 2,200 distinct users),
 *         never left: Redis' own string is 12 KB by then, and a sketch that grew this far
 *         keeps growing.
 *  The estimate is computed from a histogram of the ranks (its cost is one pass over the
 *  small array, or over the 16384 bytes) and cached until a register changes.
 *
 *  Exactness with PFCOUNT: the estimator below performs the same floating-point operations
 *  in the same order as Ertl's algorithm as Redis 7.0 evaluates it (sigma and tau are
 *  summed until the sum stops changing), so the double result and its rounding agree.
 *  This relies on IEEE double arithmetic without contraction into fused multiply-adds,
 *  which is what -std=c11 gives with GCC (-ffp-contract=off in ISO mode).
 *
 *  Serialising: the registers are visited in index order and written as canonical opcodes
 *  (hll.h explains why that equals Redis' bytes except in the cases it names). */
#include "metrics/hll.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define INDEX_BITS 14
#define RANK_MAX   (64 - INDEX_BITS + 1) /* 51 */
#define SMALL_MAX  2048                  /* entries; beyond this, dense */
#define SPARSE_VAL_MAX 32                /* the largest rank a VAL opcode can carry */

struct smm_hll {
    uint8_t *regs;      /* dense: SMM_HLL_REGISTERS ranks; NULL while small */
    uint32_t *ent;      /* small: sorted index << 8 | rank, ranks non-zero */
    uint32_t n;         /* entries used */
    uint32_t cap;       /* entries allocated */
    uint64_t card;      /* cached estimate, valid when card_ok */
    int card_ok;
    int keep_dense;     /* came from a dense Redis string: serialise dense, as Redis would */
};

/* ---- hashing ---------------------------------------------------------------------- */

static uint64_t read_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* MurmurHash64A (Austin Appleby, public domain), 8-byte blocks read little-endian on every
 * host as Redis does, so the registers are the same on any machine. */
static uint64_t murmur64a(const unsigned char *data, size_t len, uint64_t seed)
{
    const uint64_t m = 0xc6a4a7935bd1e995ULL;
    const int r = 47;
    uint64_t h = seed ^ ((uint64_t)len * m);
    size_t blocks = len / 8;

    for (size_t i = 0; i < blocks; i++) {
        uint64_t k = read_le64(data + 8 * i);
        k *= m;
        k ^= k >> r;
        k *= m;
        h ^= k;
        h *= m;
    }
    const unsigned char *tail = data + 8 * blocks;
    size_t rest = len & 7;
    if (rest > 0) {
        for (size_t i = rest; i-- > 0;) {
            h ^= (uint64_t)tail[i] << (8 * i);
        }
        h *= m;
    }
    h ^= h >> r;
    h *= m;
    h ^= h >> r;
    return h;
}

/* Register index and rank of one element. */
static unsigned element_rank(const void *elem, size_t len, unsigned *idx)
{
    static const unsigned char none[1] = {0};
    uint64_t x = murmur64a(len > 0 ? elem : none, len, 0xadc83b19ULL);
    *idx = (unsigned)(x & (SMM_HLL_REGISTERS - 1));
    x >>= INDEX_BITS;
    x |= (uint64_t)1 << (64 - INDEX_BITS); /* stops the count at RANK_MAX */
    unsigned rank = 1;
    while ((x & 1) == 0) {
        rank++;
        x >>= 1;
    }
    return rank;
}

/* ---- registers -------------------------------------------------------------------- */

/* Position of idx in the small array, or of where it would be inserted; *found set. */
static uint32_t small_find(const struct smm_hll *h, unsigned idx, int *found)
{
    uint32_t lo = 0;
    uint32_t hi = h->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        unsigned at = h->ent[mid] >> 8;
        if (at < idx) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = lo < h->n && (h->ent[lo] >> 8) == idx;
    return lo;
}

static int to_dense(struct smm_hll *h)
{
    uint8_t *regs = calloc(SMM_HLL_REGISTERS, 1);
    if (regs == NULL) {
        return SMM_ERR;
    }
    for (uint32_t i = 0; i < h->n; i++) {
        regs[h->ent[i] >> 8] = (uint8_t)(h->ent[i] & 0xff);
    }
    free(h->ent);
    h->ent = NULL;
    h->n = 0;
    h->cap = 0;
    h->regs = regs;
    return SMM_OK;
}

/* Raises register idx to rank. 1 when it grew, 0 when not, SMM_ERR out of memory. */
static int raise_register(struct smm_hll *h, unsigned idx, unsigned rank)
{
    if (h->regs == NULL) {
        int found;
        uint32_t pos = small_find(h, idx, &found);
        if (found) {
            if ((h->ent[pos] & 0xff) >= rank) {
                return 0;
            }
            h->ent[pos] = (uint32_t)idx << 8 | rank;
            h->card_ok = 0;
            return 1;
        }
        if (h->n == h->cap) {
            if (h->cap >= SMALL_MAX) {
                if (to_dense(h) != SMM_OK) {
                    return SMM_ERR;
                }
                return raise_register(h, idx, rank);
            }
            uint32_t cap = h->cap == 0 ? 4 : h->cap * 2;
            uint32_t *ent = realloc(h->ent, cap * sizeof(*ent));
            if (ent == NULL) {
                return SMM_ERR;
            }
            h->ent = ent;
            h->cap = cap;
        }
        memmove(h->ent + pos + 1, h->ent + pos, (h->n - pos) * sizeof(*h->ent));
        h->ent[pos] = (uint32_t)idx << 8 | rank;
        h->n++;
        h->card_ok = 0;
        return 1;
    }
    if (h->regs[idx] >= rank) {
        return 0;
    }
    h->regs[idx] = (uint8_t)rank;
    h->card_ok = 0;
    return 1;
}

unsigned smm_hll_register(const struct smm_hll *h, unsigned idx)
{
    if (idx >= SMM_HLL_REGISTERS) {
        return 0;
    }
    if (h->regs != NULL) {
        return h->regs[idx];
    }
    int found;
    uint32_t pos = small_find(h, idx, &found);
    return found ? h->ent[pos] & 0xff : 0;
}

/* ---- life cycle --------------------------------------------------------------------- */

struct smm_hll *smm_hll_new(void)
{
    return calloc(1, sizeof(struct smm_hll));
}

void smm_hll_destroy(struct smm_hll *h)
{
    if (h == NULL) {
        return;
    }
    free(h->regs);
    free(h->ent);
    free(h);
}

size_t smm_hll_memory(const struct smm_hll *h)
{
    size_t bytes = sizeof(*h);
    if (h->regs != NULL) {
        bytes += SMM_HLL_REGISTERS;
    }
    bytes += (size_t)h->cap * sizeof(*h->ent);
    return bytes;
}

int smm_hll_add(struct smm_hll *h, const void *elem, size_t len)
{
    unsigned idx;
    unsigned rank = element_rank(elem, len, &idx);
    return raise_register(h, idx, rank);
}

uint32_t smm_hll_position(const void *elem, size_t len)
{
    unsigned idx;
    unsigned rank = element_rank(elem, len, &idx);
    return (uint32_t)idx << 8 | rank;
}

int smm_hll_add_position(struct smm_hll *h, uint32_t pos)
{
    return raise_register(h, pos >> 8, pos & 0xff);
}

/* ---- estimate ----------------------------------------------------------------------- */

/* sigma(x) = x + sum_{k>=1} x^(2^k) 2^(k-1), summed until the sum stops changing. */
static double ertl_sigma(double x)
{
    if (x == 1.0) {
        return INFINITY;
    }
    double weight = 1.0;
    double sum = x;
    double prev;
    do {
        x *= x;
        prev = sum;
        sum += x * weight;
        weight += weight;
    } while (prev != sum);
    return sum;
}

/* tau(x) = (1 - x - sum_{k>=1} (1 - x^(2^-k))^2 2^-k) / 3, summed until it stops changing. */
static double ertl_tau(double x)
{
    if (x == 0.0 || x == 1.0) {
        return 0.0;
    }
    double weight = 1.0;
    double sum = 1.0 - x;
    double prev;
    do {
        x = sqrt(x);
        prev = sum;
        weight *= 0.5;
        sum -= pow(1.0 - x, 2) * weight;
    } while (prev != sum);
    return sum / 3.0;
}

static uint64_t estimate(const int hist[RANK_MAX + 1])
{
    const double m = SMM_HLL_REGISTERS;
    const double alpha_inf = 0.721347520444481703680; /* 1 / (2 ln 2) */
    double z = m * ertl_tau((m - hist[RANK_MAX]) / m);
    for (int k = RANK_MAX - 1; k >= 1; k--) {
        z += hist[k];
        z *= 0.5;
    }
    z += m * ertl_sigma(hist[0] / m);
    return (uint64_t)llround(alpha_inf * m * m / z);
}

uint64_t smm_hll_count(struct smm_hll *h)
{
    if (h->card_ok) {
        return h->card;
    }
    int hist[RANK_MAX + 1] = {0};
    if (h->regs != NULL) {
        for (unsigned i = 0; i < SMM_HLL_REGISTERS; i++) {
            hist[h->regs[i]]++;
        }
    } else {
        hist[0] = SMM_HLL_REGISTERS - (int)h->n;
        for (uint32_t i = 0; i < h->n; i++) {
            hist[h->ent[i] & 0xff]++;
        }
    }
    h->card = estimate(hist);
    h->card_ok = 1;
    return h->card;
}

/* ---- merge -------------------------------------------------------------------------- */

int smm_hll_merge(struct smm_hll *dst, const struct smm_hll *src)
{
    if (src->regs != NULL) {
        if (dst->regs == NULL && to_dense(dst) != SMM_OK) {
            return SMM_ERR;
        }
        for (unsigned i = 0; i < SMM_HLL_REGISTERS; i++) {
            if (src->regs[i] > dst->regs[i]) {
                dst->regs[i] = src->regs[i];
                dst->card_ok = 0;
            }
        }
    } else {
        /* Room first, so that a failure leaves dst unchanged: at most src->n inserts. */
        if (dst->regs == NULL && dst->n + src->n > dst->cap) {
            if (dst->n + src->n > SMALL_MAX) {
                if (to_dense(dst) != SMM_OK) {
                    return SMM_ERR;
                }
            } else {
                uint32_t cap = dst->cap == 0 ? 4 : dst->cap;
                while (cap < dst->n + src->n) {
                    cap *= 2;
                }
                uint32_t *ent = realloc(dst->ent, cap * sizeof(*ent));
                if (ent == NULL) {
                    return SMM_ERR;
                }
                dst->ent = ent;
                dst->cap = cap;
            }
        }
        for (uint32_t i = 0; i < src->n; i++) {
            if (raise_register(dst, src->ent[i] >> 8, src->ent[i] & 0xff) == SMM_ERR) {
                return SMM_ERR; /* not reached: room was made above */
            }
        }
    }
    dst->keep_dense |= src->keep_dense;
    return SMM_OK;
}

/* ---- Redis strings ------------------------------------------------------------------ */

enum { ENC_DENSE = 0, ENC_SPARSE = 1 };

/* Decodes a sparse body into regs (zeroed by the caller). SMM_ERR unless the opcodes cover
 * exactly SMM_HLL_REGISTERS registers. Never reads past body[len - 1]. */
static int decode_sparse(const unsigned char *body, size_t len, uint8_t *regs)
{
    size_t at = 0;
    unsigned idx = 0;
    while (at < len) {
        unsigned op = body[at];
        unsigned run;
        if ((op & 0xc0) == 0x00) { /* ZERO */
            run = (op & 0x3f) + 1;
            at++;
        } else if ((op & 0xc0) == 0x40) { /* XZERO */
            if (at + 1 >= len) {
                return SMM_ERR; /* truncated */
            }
            run = ((op & 0x3f) << 8 | body[at + 1]) + 1;
            at += 2;
        } else { /* VAL */
            run = (op & 0x03) + 1;
            unsigned rank = ((op >> 2) & 0x1f) + 1;
            if (run > SMM_HLL_REGISTERS - idx) {
                return SMM_ERR;
            }
            memset(regs + idx, (int)rank, run);
            at++;
        }
        if (run > SMM_HLL_REGISTERS - idx) {
            return SMM_ERR; /* runs past the last register */
        }
        idx += run;
    }
    return idx == SMM_HLL_REGISTERS ? SMM_OK : SMM_ERR;
}

/* Unpacks 16384 6-bit registers (12288 bytes). SMM_ERR if one exceeds RANK_MAX. */
static int decode_dense(const unsigned char *body, uint8_t *regs)
{
    unsigned worst = 0;
    for (unsigned i = 0; i < SMM_HLL_REGISTERS; i += 4) {
        const unsigned char *b = body + i / 4 * 3;
        regs[i] = b[0] & 0x3f;
        regs[i + 1] = (uint8_t)((b[0] >> 6 | b[1] << 2) & 0x3f);
        regs[i + 2] = (uint8_t)((b[1] >> 4 | b[2] << 4) & 0x3f);
        regs[i + 3] = b[2] >> 2;
        for (unsigned j = 0; j < 4; j++) {
            worst = regs[i + j] > worst ? regs[i + j] : worst;
        }
    }
    return worst <= RANK_MAX ? SMM_OK : SMM_ERR;
}

int smm_hll_load(struct smm_hll *h, const void *buf, size_t len)
{
    const unsigned char *s = buf;
    if (s == NULL || len < SMM_HLL_HEADER_BYTES || memcmp(s, "HYLL", 4) != 0 ||
        s[5] != 0 || s[6] != 0 || s[7] != 0) {
        return SMM_ERR;
    }
    if (s[4] == ENC_DENSE && len != SMM_HLL_DENSE_BYTES) {
        return SMM_ERR;
    }
    if (s[4] != ENC_DENSE && s[4] != ENC_SPARSE) {
        return SMM_ERR;
    }
    uint8_t *regs = calloc(SMM_HLL_REGISTERS, 1);
    if (regs == NULL) {
        return SMM_ERR;
    }
    const unsigned char *body = s + SMM_HLL_HEADER_BYTES;
    size_t body_len = len - SMM_HLL_HEADER_BYTES;
    int rc = s[4] == ENC_DENSE ? decode_dense(body, regs) : decode_sparse(body, body_len, regs);
    if (rc != SMM_OK) {
        free(regs);
        return SMM_ERR;
    }

    /* Keep it small when it is small: count the non-zero registers first. */
    uint32_t n = 0;
    for (unsigned i = 0; i < SMM_HLL_REGISTERS; i++) {
        n += regs[i] != 0;
    }
    uint32_t *ent = NULL;
    uint32_t cap = 0;
    if (n <= SMALL_MAX) {
        cap = 4;
        while (cap < n) {
            cap *= 2;
        }
        ent = malloc(cap * sizeof(*ent));
        if (ent == NULL) {
            free(regs);
            return SMM_ERR;
        }
        uint32_t k = 0;
        for (unsigned i = 0; i < SMM_HLL_REGISTERS; i++) {
            if (regs[i] != 0) {
                ent[k++] = (uint32_t)i << 8 | regs[i];
            }
        }
        free(regs);
        regs = NULL;
    }
    free(h->regs);
    free(h->ent);
    h->regs = regs;
    h->ent = ent;
    h->n = regs == NULL ? n : 0;
    h->cap = cap;
    h->card_ok = 0;
    h->keep_dense = s[4] == ENC_DENSE;
    return SMM_OK;
}

/* Visits the non-zero registers in index order. */
struct nz_cursor {
    const struct smm_hll *h;
    uint32_t at; /* entry (small) or register (dense) to look at next */
};

static int nz_next(struct nz_cursor *c, unsigned *idx, unsigned *rank)
{
    const struct smm_hll *h = c->h;
    if (h->regs == NULL) {
        if (c->at >= h->n) {
            return 0;
        }
        *idx = h->ent[c->at] >> 8;
        *rank = h->ent[c->at] & 0xff;
        c->at++;
        return 1;
    }
    while (c->at < SMM_HLL_REGISTERS && h->regs[c->at] == 0) {
        c->at++;
    }
    if (c->at >= SMM_HLL_REGISTERS) {
        return 0;
    }
    *idx = c->at;
    *rank = h->regs[c->at];
    c->at++;
    return 1;
}

/* Appends the opcode for `run` zero registers (1..16384) at out + *at, if it fits in limit
 * (out NULL: only advances *at). */
static int put_zeros(unsigned char *out, size_t *at, size_t limit, unsigned run)
{
    size_t need = run <= 64 ? 1 : 2;
    if (*at + need > limit) {
        return SMM_ERR;
    }
    if (out != NULL && need == 1) {
        out[*at] = (unsigned char)(run - 1);
    } else if (out != NULL) {
        out[*at] = (unsigned char)(0x40 | (run - 1) >> 8);
        out[*at + 1] = (unsigned char)((run - 1) & 0xff);
    }
    *at += need;
    return SMM_OK;
}

/* Writes the canonical sparse body after the header into out[0..limit) and sets *len to
 * the string's length; with out NULL only computes *len. SMM_ERR when it does not fit in
 * limit or a register exceeds what VAL can carry. */
static int encode_sparse(const struct smm_hll *h, unsigned char *out, size_t limit, size_t *len)
{
    size_t at = SMM_HLL_HEADER_BYTES;
    unsigned next = 0; /* first register not yet written */
    struct nz_cursor c = {h, 0};
    unsigned idx;
    unsigned rank;
    int have = nz_next(&c, &idx, &rank);
    while (have) {
        if (rank > SPARSE_VAL_MAX) {
            return SMM_ERR;
        }
        if (idx > next && put_zeros(out, &at, limit, idx - next) != SMM_OK) {
            return SMM_ERR;
        }
        /* A run of equal ranks on adjacent registers, at most 4 to one VAL. */
        unsigned run = 1;
        unsigned idx2;
        unsigned rank2;
        have = nz_next(&c, &idx2, &rank2);
        while (have && run < 4 && idx2 == idx + run && rank2 == rank) {
            run++;
            have = nz_next(&c, &idx2, &rank2);
        }
        if (at + 1 > limit) {
            return SMM_ERR;
        }
        if (out != NULL) {
            out[at] = (unsigned char)(0x80 | (rank - 1) << 2 | (run - 1));
        }
        at++;
        next = idx + run;
        idx = idx2;
        rank = rank2;
    }
    if (next < SMM_HLL_REGISTERS &&
        put_zeros(out, &at, limit, SMM_HLL_REGISTERS - next) != SMM_OK) {
        return SMM_ERR;
    }
    *len = at;
    return SMM_OK;
}

static void encode_dense(const struct smm_hll *h, unsigned char *out)
{
    unsigned char *body = out + SMM_HLL_HEADER_BYTES;
    if (h->regs != NULL) {
        /* Register i is bits 6i .. 6i + 5 of the body, least significant bit first, so
         * four registers fill three bytes exactly. */
        const uint8_t *r = h->regs;
        for (unsigned i = 0; i < SMM_HLL_REGISTERS; i += 4, r += 4, body += 3) {
            body[0] = (unsigned char)(r[0] | r[1] << 6);
            body[1] = (unsigned char)(r[1] >> 2 | r[2] << 4);
            body[2] = (unsigned char)(r[2] >> 4 | r[3] << 2);
        }
        return;
    }
    memset(body, 0, SMM_HLL_DENSE_BYTES - SMM_HLL_HEADER_BYTES);
    for (uint32_t k = 0; k < h->n; k++) {
        unsigned bit = (h->ent[k] >> 8) * 6;
        unsigned rank = h->ent[k] & 0xff;
        unsigned shift = bit & 7;
        body[bit / 8] |= (unsigned char)(rank << shift);
        if (shift > 2) {
            body[bit / 8 + 1] |= (unsigned char)(rank >> (8 - shift));
        }
    }
}

int smm_hll_serialize(const struct smm_hll *h, size_t sparse_max_bytes, void *buf, size_t cap,
                      size_t *len)
{
    unsigned char *out = buf;
    if (cap < SMM_HLL_HEADER_BYTES) {
        return SMM_ERR;
    }
    static const unsigned char header[SMM_HLL_HEADER_BYTES] = {
        'H', 'Y', 'L', 'L', ENC_SPARSE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80};
    memcpy(out, header, sizeof(header));

    size_t n;
    if (!h->keep_dense) {
        /* One pass when buf can take any sparse string Redis would keep, else measure first
         * so that a small cap is an error, not a switch to dense. */
        int fits = cap >= sparse_max_bytes ? encode_sparse(h, out, sparse_max_bytes, &n)
                                           : encode_sparse(h, NULL, sparse_max_bytes, &n);
        if (fits == SMM_OK && cap < sparse_max_bytes) {
            if (cap < n) {
                return SMM_ERR;
            }
            encode_sparse(h, out, n, &n);
        }
        if (fits == SMM_OK) {
            *len = n;
            return SMM_OK;
        }
    }
    if (cap < SMM_HLL_DENSE_BYTES) {
        return SMM_ERR;
    }
    out[4] = ENC_DENSE;
    encode_dense(h, out);
    *len = SMM_HLL_DENSE_BYTES;
    return SMM_OK;
}
