/* tools/smm-gen.c - deterministic generator of realistic social-media interaction events.
 *
 * Tests and benchmarks need a stream that looks like production (skewed popularity, share
 * cascades, likes that get undone, DMs that get answered, some garbage) and that they can
 * reproduce byte for byte, so they can compute the expected metrics from the same run's
 * --stdout output instead of trusting the processor. smm-gen writes one JSON object per
 * message (the contract in docs/events.md), either as lines on stdout or produced to Kafka
 * keyed by content_id (account_id when the event has no content).
 *
 * DESIGN
 * - Determinism. Every random choice comes from xoshiro256** streams seeded from --seed via
 *   splitmix64: one stream for the events, one deciding which positions are malformed, one for
 *   the rank->content permutation. The clock is read only for the default --start-ms, in --rate
 *   mode and for progress, so the same seed and flags (with an explicit --start-ms) give the
 *   same bytes, and --stdout and Kafka runs carry identical payloads.
 * - Popularity. Content rank is Zipf(s) over --contents, sampled by binary search in a
 *   precomputed CDF; a seeded permutation maps rank to content index, so the hottest post is
 *   not post-0. Content i belongs to acct-(i % accounts). Events without content still draw a
 *   content to pick their account, so hot accounts also get the mentions and messages.
 * - Coherence. Region, segment and follower count are hashes of the user index, so one user
 *   looks the same in every event; follows_author hashes (user, account). An unlike or a
 *   comment_delete undoes an earlier like/comment by the same user on the same content; a
 *   reply answers an earlier message thread of the same account; a conversion usually follows
 *   an earlier click/referral of the same user (same content and source); a share picks its
 *   parent among the last 8 shares of the same content, so cascades form. Only well-formed
 *   events are remembered, so nothing ever refers to a malformed message.
 * - Speed. Payloads are built by appending literals and integers into one buffer (no cJSON, no
 *   snprintf on the hot path); Kafka delivery reports are served every 1024 messages.
 *
 * Families (--families, off by default so the default stream and everything computed from it
 * stay byte-identical) shape the events of the newer metrics: care conversations, mentions of
 * competitor brands, referral chains, sourced funnels and region/segment breakdowns.
 * - A care message plans its whole conversation when it is made: replies (and a second
 *   message) go into a min-heap on the time they are due, and a well-formed slot whose clock
 *   has reached the earliest one writes it instead of a fresh event. Holding a message back
 *   until after its reply (emit time later than ts) makes replies that arrive first. Events
 *   still planned after the last slot are not written (conversations open at the end).
 * - Malformed slots never write a planned event and never plan one, so a reply always has a
 *   well-formed message; referral chains and conversions pick from bags of earlier
 *   well-formed referrals, clicks and conversions, like the mix does.
 *
 * The viral scenario (--scenario viral) is what the viral detector is evaluated on
 * (bench/viral_eval.sh): ordinary posts, K planted viral cascades and some near misses, with
 * the right answers written beside the stream (--truth).
 * - Cascades are a self-exciting branching process, simulated per post in natural time (an
 *   event queue ordered by time): the post exposes some of the author's followers; each
 *   viewer may re-share after a log-normal delay; a share exposes a binomial share of the
 *   sharer's followers (coherent per user, as in the mix), who view after a log-normal delay
 *   and may re-share in turn, with parent_id = the share they saw. Broadcast cascades get
 *   one hub (a user with >= 20 x the target reach in followers) among the first viewers;
 *   deep cascades pass through ordinary users (<= 1500 followers) with 1.5 expected re-shares
 *   per share, so they grow generation by generation. Spreading stops when the post's target
 *   of distinct viewers is reached (planted 1.5-2.5 N, near misses 0.6-0.9 N, organic posts at
 *   most 0.45 N), which stands in for saturation. A cascade that misses its shape (died out,
 *   depth < 6) is resampled from the same seeded stream, so the result stays deterministic.
 * - Each cascade is then compressed linearly into 0.75-1 x --cascade-s of wall time (its
 *   shape kept) and placed in the run; the whole scenario is sorted by time and written in
 *   real time, ts = the wall clock when written, so alert delays are wall-clock delays (with
 *   --start-ms: as fast as possible, ts = start + offset, byte-identical per seed).
 * - The truth is computed from exactly the events written, the way the processor's "5m"
 *   window counts: at each content event (seen or acted on: smm_event_type_reaches), the
 *   distinct user_ids of that post whose latest such event is in the minutes (m - 5, m], m = floor(ts / 60000); crossing_ms is the first ts at
 *   which that reaches --viral-threshold. */
#include "metrics/event.h"

#include <librdkafka/rdkafka.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GEN_PI 3.14159265358979323846
#define GEN_BUF_SIZE (128 * 1024) /* > the largest message (the oversize kind) */
#define GEN_OVERSIZE_PAD 66000    /* padding that takes a message past 64 KiB */
#define GEN_LONG_ID_LEN 160       /* > SMM_EVENT_ID_MAX */
#define GEN_SHARE_RING 8          /* recent shares kept per content, parent candidates */
#define GEN_RECENT_CAP 4096       /* recent likes/comments/clicks/messages remembered */
#define GEN_MAX_CONTENTS 10000000 /* 16 bytes of tables per content */
#define GEN_MAX_ZIPF_USERS 10000000
#define GEN_MAX_X 64
#define GEN_DAY_MS 86400000LL
#define GEN_METADATA_TIMEOUT_MS 10000

/* ---- malformed kinds: the order is the cycle order ---- */

enum bad_kind {
    BAD_NONE = -1,
    BAD_TRUNCATED = 0,  /* invalid JSON: the first half of a good event */
    BAD_NOT_OBJECT,     /* valid JSON array */
    BAD_NO_EVENT_ID,    /* event_id missing */
    BAD_NO_TYPE,        /* type missing */
    BAD_UNKNOWN_TYPE,   /* "type":"teleport" */
    BAD_TS_STRING,      /* "ts":"yesterday" */
    BAD_ACCOUNT_NUMBER, /* "account_id":42 */
    BAD_NO_ACCOUNT,     /* account_id missing */
    BAD_NO_CONTENT,     /* a content type without content_id */
    BAD_OVERSIZE,       /* payload > 64 KiB via a "padding" string */
    BAD_LONG_ID,        /* an id > 128 bytes (event_id, account_id, user_id in turn) */
    BAD_CONTROL_CHAR,   /* an id with "\u0001" (event_id, account_id, user_id in turn) */
    BAD_TS_OLD,         /* ts 10 days before the event's time */
    BAD_TS_FUTURE,      /* ts 1 day after the event's time */
    BAD__COUNT
};

static const char *const bad_names[BAD__COUNT] = {
    "truncated",      "not_object", "no_event_id", "no_type", "unknown_type",
    "ts_string",      "account_number", "no_account", "no_content", "oversize",
    "long_id",        "control_char",   "ts_old",     "ts_future",
};

/* ---- default type mix (percent; relative weights) ---- */

/* The brief's mix sums to exactly 100 with nothing left for follow; impression gives up
 * 0.5 points so that follows exist by default. */
static const double default_mix[SMM_EV__COUNT] = {
    [SMM_EV_IMPRESSION] = 51.5, [SMM_EV_VIEW] = 20.0,          [SMM_EV_LIKE] = 10.0,
    [SMM_EV_UNLIKE] = 0.8,      [SMM_EV_COMMENT] = 3.0,        [SMM_EV_COMMENT_DELETE] = 0.4,
    [SMM_EV_SHARE] = 2.5,       [SMM_EV_CLICK] = 5.0,          [SMM_EV_REFERRAL] = 1.5,
    [SMM_EV_CONVERSION] = 0.8,  [SMM_EV_MENTION] = 1.5,        [SMM_EV_MESSAGE] = 1.5,
    [SMM_EV_REPLY] = 1.0,       [SMM_EV_FOLLOW] = 0.5,
};

/* Per-user attributes: weights in 1/65536, drawn from 16 bits of the user's hash. */
static const char *const region_names[] = {"eu", "na", "apac", "latam", "mea"};
static const uint32_t region_cum[] = {19661, 39322, 55706, 62259, 65536}; /* 30/30/25/10/5 % */
static const char *const segment_names[] = {"18-24", "25-34", "35-44", "45+"};
static const uint32_t segment_cum[] = {15729, 38010, 53739, 65536}; /* 24/34/24/18 % */

/* Click/referral/conversion sources; the last one is "campaign-<k>", k = 1..GEN_CAMPAIGNS.
 * The entries from GEN_SRC_TIKTOK on are used by --families only (see below). */
#define GEN_CAMPAIGNS 5
static const char *const source_names[] = {"twitter",  "facebook",  "instagram",
                                           "linkedin", "newsletter", "campaign-",
                                           "tiktok",   "partner-x", "cmp-"};
static const double source_cum[] = {0.22, 0.44, 0.62, 0.72, 0.82, 1.0};
#define GEN_SRC_INSTAGRAM 2
#define GEN_SRC_NEWSLETTER 4
#define GEN_SRC_CAMPAIGN 5
#define GEN_SRC_TIKTOK 6
#define GEN_SRC_PARTNER 7
#define GEN_SRC_CMP 8 /* "cmp-<random>": a one-off campaign id, folds into "other" */

/* ---- --families: events for the response-time, share-of-voice, referral, funnel and
 * segment metrics ----
 *
 * Off by default so the default stream stays byte-identical: the integration oracle and
 * bench/results.md were computed from it. Each family changes only the events it names. */
enum family {
    FAM_CARE = 1 << 0,      /* message threads answered by brand replies */
    FAM_MENTIONS = 1 << 1,  /* mentions of competitor brands, followers + engagement */
    FAM_REFERRALS = 1 << 2, /* referral chains with referrer_id */
    FAM_FUNNEL = 1 << 3,    /* impression/click/conversion sources and conversions */
    FAM_SEGMENTS = 1 << 4,  /* 8 regions, 7 age bands, some hostile values */
    FAM_ALL = (1 << 5) - 1
};
static const char *const family_names[] = {"care", "mentions", "referrals", "funnel",
                                           "segments"};
#define FAM_COUNT 5

/* care: a conversation is a customer message, then (88 %) a brand reply after a log-normal
 * delay (median --reply-median-s, sigma 1.5, 5 s..12 h); 15 % of threads get a second customer
 * message (a nudge during the wait, or an answer to the reply that is itself answered 75 % of
 * the time); 5 % of replies are delivered before the message they answer (which arrives
 * 0.1-10 s after the reply, as from a slow inbox connector). With care, the mix weight of
 * message is the rate of new threads and replies come only from threads. */
#define CARE_UNANSWERED 0.12
#define CARE_SECOND 0.15
#define CARE_SECOND_ANSWERED 0.75
#define CARE_EARLY 0.05
#define CARE_SIGMA 1.5
#define CARE_MIN_MS 5000LL
#define CARE_MAX_MS (12LL * 3600 * 1000)
#define CARE_NUDGE_MEDIAN_S 600.0
#define CARE_LATE_MAX_MS 10000LL
#define CARE_DEFAULT_MEDIAN_S 1200.0
#define CARE_THREAD_WEIGHT 1.2 /* default mix weight of new threads: ~2.5 % care events */

/* mentions: 90 % name a competitor brand (acct-1..acct-7, skewed), 10 % the account of a
 * random post. The sets below are what the processor needs (--print-config). */
static const uint32_t mention_brands[] = {1, 2, 3, 4, 5, 6, 7};
static const double mention_brand_cum[] = {0.30, 0.50, 0.64, 0.74, 0.82, 0.87, 0.90};
static const struct {
    const char *name;
    uint32_t first, last; /* acct-first..acct-last */
} sov_sets[] = {{"cat-1", 1, 5}, {"cat-2", 5, 7}};

/* funnel/referrals: source weights per event type over newsletter, instagram, tiktok,
 * partner-x and a one-off "cmp-<k>" (so each source has its own CTR). */
static const int fam_sources[] = {GEN_SRC_NEWSLETTER, GEN_SRC_INSTAGRAM, GEN_SRC_TIKTOK,
                                  GEN_SRC_PARTNER, GEN_SRC_CMP};
static const double fam_src_impression_cum[] = {0.12, 0.52, 0.82, 0.97, 1.0};
static const double fam_src_click_cum[] = {0.25, 0.55, 0.77, 0.97, 1.0};
static const double fam_src_referral_cum[] = {0.30, 0.55, 0.75, 0.95, 1.0};
#define FAM_IMPRESSION_SOURCE 0.5 /* share of impressions that carry a source */
#define FAM_CLICK_SOURCE 0.85

/* segments: per-user region (80 % of events) and age band (65 %); 1 % of events each get a
 * random one-off value instead (hostile cardinality, some with ':', '|', '=' and spaces). */
static const char *const fam_region_names[] = {"eu-west", "eu-central", "eu-north", "na-east",
                                               "na-west", "apac",       "latam",    "mea"};
static const uint32_t fam_region_cum[] = {11796, 20972, 24904, 36700, 45875, 56361, 62259, 65536};
static const char *const fam_segment_names[] = {"13-17", "18-24", "25-34", "35-44",
                                                "45-54", "55-64", "65+"};
static const uint32_t fam_segment_cum[] = {2621, 15729, 35390, 49807, 58327, 62915, 65536};
#define FAM_REGION_SHARE 0.80
#define FAM_SEGMENT_SHARE 0.65
#define FAM_HOSTILE_SHARE 0.01
#define FAM_HOSTILE (-1) /* gen_event fam_region/fam_segment: a random value */

enum ts_format { TS_MS, TS_RFC3339, TS_MIXED };

enum scenario { SCEN_MIX, SCEN_VIRAL };

struct gen_opts {
    uint64_t count;
    uint64_t seed;
    uint32_t contents;
    double zipf;
    uint32_t accounts;
    uint32_t users;
    double user_zipf;
    int64_t start_ms;
    int start_set;
    int64_t span_ms;
    int span_set;
    int64_t disorder_ms;
    double rate;
    enum ts_format ts_format;
    double rfc3339_share;
    double mix[SMM_EV__COUNT];
    double malformed_rate;
    int bad_enabled[BAD__COUNT];
    int to_stdout;
    const char *brokers;
    const char *topic;
    const char *x_args[GEN_MAX_X];
    int x_cnt;
    int progress;
    int quiet;
    /* --scenario viral */
    enum scenario scenario;
    uint32_t viral_threshold;
    uint32_t cascades;
    uint32_t near_misses;
    uint32_t posts;
    double duration_s;
    double cascade_s;
    const char *truth_path;
    /* --families */
    unsigned families;
    double reply_median_s;
    int print_config;
    uint64_t given; /* bit per enum flag_id seen on the command line */
};

/* ---- random numbers ---- */

struct rng {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Stateless 64-bit mix (the splitmix64 finalizer): per-user attributes are hashes. */
static uint64_t mix64(uint64_t x)
{
    return splitmix64(&x);
}

static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ mix64(stream);

    for (int i = 0; i < 4; i++) {
        r->s[i] = splitmix64(&x);
    }
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman and Vigna). */
static inline uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double rng_unit(struct rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, n) for n >= 1. */
static inline uint64_t rng_below(struct rng *r, uint64_t n)
{
    uint64_t v = (uint64_t)(rng_unit(r) * (double)n);

    return v < n ? v : n - 1;
}

/* Grows *arr (elements of size sz) to hold at least need. Returns 0 or -1. */
static int grow(void **arr, size_t *cap, size_t need, size_t sz)
{
    size_t c = *cap ? *cap : 256;
    void *p;

    if (need <= *cap) {
        return 0;
    }
    while (c < need) {
        c *= 2;
    }
    p = realloc(*arr, c * sz);
    if (p == NULL) {
        return -1;
    }
    *arr = p;
    *cap = c;
    return 0;
}

/* Standard normal (Box-Muller, one of the pair). */
static double rng_normal(struct rng *r)
{
    double u1 = ((double)(rng_next(r) >> 11) + 0.5) * 0x1.0p-53;
    double u2 = rng_unit(r);

    return sqrt(-2.0 * log(u1)) * cos(2.0 * GEN_PI * u2);
}

static double rng_lognormal(struct rng *r, double median, double sigma)
{
    return median * exp(sigma * rng_normal(r));
}

/* ---- Zipf sampling ---- */

/* cdf[k] = P(rank <= k) for weights (k+1)^-s; the last entry is exactly 1. */
static double *zipf_cdf_new(uint32_t n, double s)
{
    double *cdf = malloc((size_t)n * sizeof(*cdf));
    double sum = 0.0;

    if (cdf == NULL) {
        return NULL;
    }
    for (uint32_t k = 0; k < n; k++) {
        sum += pow((double)k + 1.0, -s);
        cdf[k] = sum;
    }
    for (uint32_t k = 0; k < n; k++) {
        cdf[k] /= sum;
    }
    cdf[n - 1] = 1.0;
    return cdf;
}

/* The first rank whose cdf reaches u (u in [0, 1)). */
static uint32_t zipf_sample(const double *cdf, uint32_t n, double u)
{
    uint32_t lo = 0;
    uint32_t hi = n - 1;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;

        if (cdf[mid] >= u) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

/* ---- generator state ---- */

/* Something a later event can refer to: a like, comment, click/referral, message or (with
 * --families) a conversion. */
struct recent_item {
    uint64_t n; /* event number (message: also the thread number) */
    uint32_t content;
    uint32_t user;
    int source;
    uint32_t campaign;
    uint32_t depth; /* referral: hops from a visitor nobody referred */
};

/* A bag of recent items: appended until full, then the slot `next` is overwritten
 * round-robin; takes remove by swapping in the last item. */
struct recent {
    struct recent_item items[GEN_RECENT_CAP];
    uint32_t len;
    uint32_t next;
};

struct share_hist {
    uint64_t n[GEN_SHARE_RING]; /* event numbers of the last shares, round-robin */
    uint32_t count;             /* shares seen so far */
};

struct gen {
    const struct gen_opts *opts;
    struct rng rng;     /* every choice about an event */
    struct rng bad_rng; /* which positions are malformed; independent of the events */
    uint64_t salt;      /* per-seed salt of the per-user hashes */
    double type_cum[SMM_EV__COUNT];
    double *content_cdf;
    uint32_t *rank_content; /* Zipf rank -> content index */
    double *user_cdf;       /* NULL: users are uniform */
    uint32_t *share_slot;   /* content index -> 1 + share_pool index, 0 = never shared */
    struct share_hist *share_pool;
    size_t share_len;
    size_t share_cap;
    struct recent likes;
    struct recent comments;
    struct recent clicks; /* clicks (and referrals without --families referrals) */
    struct recent messages;
    struct recent visitors;  /* --families referrals: referred users (chain links) */
    struct recent customers; /* --families: users who converted (referrers too) */
    struct sched_item *sched; /* --families care: min-heap on (emit_at, seq) */
    size_t sched_len;
    size_t sched_cap;
    uint64_t sched_seq;
    uint64_t threads; /* care threads started */
    int bad_list[BAD__COUNT]; /* enabled kinds in cycle order */
    int bad_list_len;
    uint64_t bad_total;
    uint64_t bad_seq[BAD__COUNT];
    char id_prefix[24]; /* "<seed>-" */
    size_t id_prefix_len;
};

struct gen_event {
    enum smm_event_type type;
    uint64_t n;
    int64_t ts_ms;
    uint32_t content;
    uint32_t account;
    uint32_t user;
    int has_content;
    int has_parent;
    uint64_t parent;
    int has_followers;
    int64_t followers;
    int has_author_followers; /* the viral scenario only: the author's follower count */
    int64_t author_followers;
    int follows_author; /* -1: absent */
    int source;         /* -1: absent */
    uint32_t campaign;
    int has_value;
    int64_t value_cents;
    int has_thread;
    uint64_t thread;
    int region;  /* -1: absent */
    int segment; /* -1: absent */
    int rfc3339;
    /* --families only */
    int has_engagement;
    int64_t engagement;
    int has_referrer;
    uint32_t referrer;
    uint32_t depth;      /* referral: hops from the chain's root, for the visitors bag */
    int thread_fam;      /* thread_id is "t-<seed>-<thread>" */
    int fam_region;      /* 0: absent, FAM_HOSTILE: region_tok, else 1 + fam_region_names index */
    int fam_segment;     /* 0: absent, FAM_HOSTILE: segment_tok, else 1 + fam_segment_names ix */
    uint64_t region_tok;
    uint64_t segment_tok;
};

/* A care event planned for later: written at the first slot whose clock reaches emit_at
 * (ties in planning order). emit_at is the event's ts, except for a message held back
 * until after its reply. */
struct sched_item {
    int64_t emit_at;
    uint64_t seq;
    struct gen_event ev;
};

static void recent_add(struct recent *r, const struct recent_item *it)
{
    if (r->len < GEN_RECENT_CAP) {
        r->items[r->len++] = *it;
        return;
    }
    r->items[r->next] = *it;
    r->next = (r->next + 1) % GEN_RECENT_CAP;
}

/* Copies a random item into *out and removes it with probability remove_p.
 * Returns 0, or -1 when the bag is empty (no random number is drawn then). */
static int recent_pick(struct recent *r, struct rng *rng, double remove_p,
                       struct recent_item *out)
{
    uint32_t i;

    if (r->len == 0) {
        return -1;
    }
    i = (uint32_t)rng_below(rng, r->len);
    *out = r->items[i];
    if (remove_p >= 1.0 || (remove_p > 0.0 && rng_unit(rng) < remove_p)) {
        r->items[i] = r->items[--r->len];
        if (r->next >= r->len) {
            r->next = 0;
        }
    }
    return 0;
}

static uint64_t user_hash(const struct gen *g, uint32_t user)
{
    return mix64(g->salt ^ ((uint64_t)user * 0x9E3779B97F4A7C15ULL));
}

static int pick_cum16(const uint32_t *cum, int n, uint32_t v16)
{
    for (int i = 0; i < n - 1; i++) {
        if (v16 < cum[i]) {
            return i;
        }
    }
    return n - 1;
}

/* Log-normal follower count (median ~150, long tail), fixed per user. */
static int64_t user_followers(const struct gen *g, uint32_t user)
{
    uint64_t h = user_hash(g, user);
    uint64_t h2 = mix64(h);
    double u1 = ((double)(h >> 32) + 0.5) * 0x1.0p-32;
    double u2 = (double)(h2 >> 32) * 0x1.0p-32;
    double z = sqrt(-2.0 * log(u1)) * cos(2.0 * GEN_PI * u2);
    double f = exp(5.0 + 1.7 * z);

    return f > 1e8 ? 100000000 : (int64_t)f;
}

static int user_follows_account(const struct gen *g, uint32_t user, uint32_t account)
{
    uint64_t h = mix64(user_hash(g, user) ^ ((uint64_t)account * 0xD1B54A32D192ED03ULL));

    return (double)(h >> 11) * 0x1.0p-53 < 0.7;
}

static struct share_hist *share_hist_get(struct gen *g, uint32_t content, int create)
{
    uint32_t slot = g->share_slot[content];

    if (slot != 0) {
        return &g->share_pool[slot - 1];
    }
    if (!create) {
        return NULL;
    }
    if (g->share_len == g->share_cap) {
        size_t cap = g->share_cap ? g->share_cap * 2 : 1024;
        struct share_hist *pool = realloc(g->share_pool, cap * sizeof(*pool));

        if (pool == NULL) {
            return NULL;
        }
        g->share_pool = pool;
        g->share_cap = cap;
    }
    memset(&g->share_pool[g->share_len], 0, sizeof(g->share_pool[0]));
    g->share_slot[content] = (uint32_t)(++g->share_len);
    return &g->share_pool[g->share_len - 1];
}

static void pick_source(struct gen *g, int *source, uint32_t *campaign)
{
    double u = rng_unit(&g->rng);
    int i = 0;

    while (i < GEN_SRC_CAMPAIGN && u >= source_cum[i]) {
        i++;
    }
    *source = i;
    *campaign = i == GEN_SRC_CAMPAIGN ? 1 + (uint32_t)rng_below(&g->rng, GEN_CAMPAIGNS) : 0;
}

/* --families: a source from one of the fam_src_*_cum tables; "cmp-<k>" gets a random k. */
static void fam_pick_source(struct gen *g, const double *cum, int *source, uint32_t *campaign)
{
    double u = rng_unit(&g->rng);
    int i = 0;
    int last = (int)(sizeof(fam_sources) / sizeof(fam_sources[0])) - 1;

    while (i < last && u >= cum[i]) {
        i++;
    }
    *source = fam_sources[i];
    *campaign = *source == GEN_SRC_CMP ? (uint32_t)rng_below(&g->rng, 1000000) : 0;
}

/* Follower count of a mention's author, fixed per user: the users' log-normal counts, and
 * for 2 % of users (media, influencers) a Pareto(1.1) tail from 20,000 up to 50 million. */
static int64_t mention_followers(const struct gen *g, uint32_t user)
{
    uint64_t h = mix64(user_hash(g, user) ^ 0x4d454e54494f4e53ULL);
    double f;

    if ((h & 0xffff) >= 1311) { /* 1311 / 65536 = 2 % */
        return user_followers(g, user);
    }
    f = 20000.0 * pow(((double)(h >> 16) + 0.5) * 0x1.0p-48, -1.0 / 1.1);
    return f > 5e7 ? 50000000 : (int64_t)f;
}

/* --families segments: region and age band of the user (coherent per user, present on a
 * share of events), now and then a random value instead. */
static void fam_demographics(struct gen *g, struct gen_event *ev)
{
    uint64_t h = mix64(user_hash(g, ev->user) ^ 0x5345474d454e5453ULL);

    ev->fam_region = 0;
    ev->fam_segment = 0;
    if (rng_unit(&g->rng) < FAM_REGION_SHARE) {
        ev->fam_region = 1 + pick_cum16(fam_region_cum, 8, (uint32_t)(h & 0xffff));
    }
    if (rng_unit(&g->rng) < FAM_SEGMENT_SHARE) {
        ev->fam_segment = 1 + pick_cum16(fam_segment_cum, 7, (uint32_t)((h >> 16) & 0xffff));
    }
    if (rng_unit(&g->rng) < FAM_HOSTILE_SHARE) {
        ev->fam_region = FAM_HOSTILE;
        ev->region_tok = rng_next(&g->rng);
    }
    if (rng_unit(&g->rng) < FAM_HOSTILE_SHARE) {
        ev->fam_segment = FAM_HOSTILE;
        ev->segment_tok = rng_next(&g->rng);
    }
}

/* The per-user and per-event attributes every event gets last: followers, follows_author,
 * demographics, the timestamp format. */
static void gen_event_finish(struct gen *g, struct gen_event *ev)
{
    const struct gen_opts *opts = g->opts;

    if (ev->has_followers) {
        ev->followers = ev->type == SMM_EV_MENTION && (opts->families & FAM_MENTIONS)
                            ? mention_followers(g, ev->user)
                            : user_followers(g, ev->user);
    }
    if (ev->type == SMM_EV_IMPRESSION || ev->type == SMM_EV_VIEW) {
        ev->follows_author = user_follows_account(g, ev->user, ev->account);
    }
    if (opts->families & FAM_SEGMENTS) {
        fam_demographics(g, ev);
    } else if (rng_unit(&g->rng) >= 0.05) { /* 5% of events come without demographics */
        uint64_t h = user_hash(g, ev->user);

        ev->region = pick_cum16(region_cum, 5, (uint32_t)(h & 0xffff));
        ev->segment = pick_cum16(segment_cum, 4, (uint32_t)((h >> 16) & 0xffff));
    }
    if (opts->ts_format == TS_RFC3339) {
        ev->rfc3339 = 1;
    } else if (opts->ts_format == TS_MIXED) {
        ev->rfc3339 = rng_unit(&g->rng) < opts->rfc3339_share;
    }
}

/* ---- --families care: planned events ---- */

static int sched_before(const struct sched_item *a, const struct sched_item *b)
{
    return a->emit_at < b->emit_at || (a->emit_at == b->emit_at && a->seq < b->seq);
}

static int sched_push(struct gen *g, int64_t emit_at, const struct gen_event *ev)
{
    size_t i;

    if (grow((void **)&g->sched, &g->sched_cap, g->sched_len + 1, sizeof(*g->sched)) != 0) {
        return -1;
    }
    i = g->sched_len++;
    g->sched[i].emit_at = emit_at;
    g->sched[i].seq = g->sched_seq++;
    g->sched[i].ev = *ev;
    while (i > 0 && sched_before(&g->sched[i], &g->sched[(i - 1) / 2])) {
        struct sched_item tmp = g->sched[i];

        g->sched[i] = g->sched[(i - 1) / 2];
        g->sched[(i - 1) / 2] = tmp;
        i = (i - 1) / 2;
    }
    return 0;
}

/* Removes the earliest planned event into *out (the heap must not be empty). */
static void sched_pop(struct gen *g, struct gen_event *out)
{
    size_t i = 0;

    *out = g->sched[0].ev;
    g->sched[0] = g->sched[--g->sched_len];
    for (;;) {
        size_t l = 2 * i + 1;
        size_t m = i;
        struct sched_item tmp;

        if (l < g->sched_len && sched_before(&g->sched[l], &g->sched[m])) {
            m = l;
        }
        if (l + 1 < g->sched_len && sched_before(&g->sched[l + 1], &g->sched[m])) {
            m = l + 1;
        }
        if (m == i) {
            break;
        }
        tmp = g->sched[i];
        g->sched[i] = g->sched[m];
        g->sched[m] = tmp;
        i = m;
    }
}

/* A brand reply delay in ms: log-normal around --reply-median-s, within 5 s..12 h. */
static int64_t care_delay(struct gen *g, double median_s)
{
    double ms = rng_lognormal(&g->rng, median_s * 1000.0, CARE_SIGMA);

    if (ms < (double)CARE_MIN_MS) {
        return CARE_MIN_MS;
    }
    return ms > (double)CARE_MAX_MS ? CARE_MAX_MS : (int64_t)ms;
}

/* A care event of thread *m's conversation at ts (type message or reply), finished. */
static void care_event(struct gen *g, const struct gen_event *m, enum smm_event_type type,
                       int64_t ts, struct gen_event *out)
{
    memset(out, 0, sizeof(*out));
    out->type = type;
    out->ts_ms = ts;
    out->content = m->content;
    out->account = m->account;
    out->user = m->user;
    out->has_thread = 1;
    out->thread = m->thread;
    out->thread_fam = 1;
    out->follows_author = -1;
    out->source = -1;
    out->region = -1;
    out->segment = -1;
    gen_event_finish(g, out);
}

/* Plans the conversation that the message *m (its first) starts: replies, a second message,
 * and which message is held back behind its reply. Returns 1 when *m itself is held (the
 * caller must write something else now), 0 when it is written now, -1 out of memory. */
static int care_plan(struct gen *g, const struct gen_event *m)
{
    double median_s = g->opts->reply_median_s;
    int answered = rng_unit(&g->rng) >= CARE_UNANSWERED;
    int early1 = answered && rng_unit(&g->rng) < CARE_EARLY;
    int second = rng_unit(&g->rng) < CARE_SECOND;
    int64_t r1_ts = m->ts_ms + care_delay(g, median_s);
    struct gen_event e;

    if (answered) {
        care_event(g, m, SMM_EV_REPLY, r1_ts, &e);
        if (sched_push(g, r1_ts, &e) != 0) {
            return -1;
        }
        if (early1) {
            /* The reply first, then this message, 0.1-10 s later. */
            int64_t late = 100 + (int64_t)rng_below(&g->rng, CARE_LATE_MAX_MS - 99);

            if (sched_push(g, r1_ts + late, m) != 0) {
                return -1;
            }
        }
    }
    if (second) {
        double nudge = rng_lognormal(&g->rng, CARE_NUDGE_MEDIAN_S * 1000.0, 1.2);
        /* With the first message held, the second one comes after the reply, so the held
         * message is the one the reply answers. */
        int64_t m2_ts = (early1 ? r1_ts : m->ts_ms) + 1000 + (int64_t)nudge;
        struct gen_event m2;
        int64_t m2_emit = m2_ts;

        care_event(g, m, SMM_EV_MESSAGE, m2_ts, &m2);
        if (answered && m2_ts > r1_ts && rng_unit(&g->rng) < CARE_SECOND_ANSWERED) {
            int64_t r2_ts = m2_ts + care_delay(g, median_s);

            care_event(g, m, SMM_EV_REPLY, r2_ts, &e);
            if (sched_push(g, r2_ts, &e) != 0) {
                return -1;
            }
            if (rng_unit(&g->rng) < CARE_EARLY) {
                m2_emit = r2_ts + 100 + (int64_t)rng_below(&g->rng, CARE_LATE_MAX_MS - 99);
            }
        }
        if (sched_push(g, m2_emit, &m2) != 0) {
            return -1;
        }
    }
    return early1;
}

/* Fills *ev: event number n at time ts_ms. Reads the remembered state (and removes the items
 * that an unlike, comment_delete or reply consumes) but adds nothing: see gen_remember().
 * `plan` (a well-formed slot): a --families care message starts a planned conversation.
 * Returns 0, 1 when ev was held back for later (make another one), -1 out of memory. */
static int gen_event_make(struct gen *g, struct gen_event *ev, uint64_t n, int64_t ts_ms,
                          int plan)
{
    const struct gen_opts *opts = g->opts;
    unsigned fam = opts->families;
    struct recent_item it;
    int64_t fixed_account = -1;
    double u;
    int t;

    memset(ev, 0, sizeof(*ev));
    ev->n = n;
    ev->ts_ms = ts_ms;
    ev->follows_author = -1;
    ev->source = -1;
    ev->region = -1;
    ev->segment = -1;

    u = rng_unit(&g->rng);
    for (t = 0; t < SMM_EV__COUNT - 1; t++) {
        if (u < g->type_cum[t]) {
            break;
        }
    }
    ev->type = (enum smm_event_type)t;
    ev->content = g->rank_content[zipf_sample(g->content_cdf, opts->contents, rng_unit(&g->rng))];
    if (g->user_cdf != NULL) {
        ev->user = zipf_sample(g->user_cdf, opts->users, rng_unit(&g->rng));
    } else {
        ev->user = (uint32_t)rng_below(&g->rng, opts->users);
    }

    switch (ev->type) {
    case SMM_EV_IMPRESSION:
        ev->has_content = 1;
        if ((fam & FAM_FUNNEL) && rng_unit(&g->rng) < FAM_IMPRESSION_SOURCE) {
            fam_pick_source(g, fam_src_impression_cum, &ev->source, &ev->campaign);
        }
        break;
    case SMM_EV_VIEW:
    case SMM_EV_LIKE:
    case SMM_EV_COMMENT:
        ev->has_content = 1;
        break;
    case SMM_EV_UNLIKE:
        ev->has_content = 1;
        /* Undo a recent like; with none, it undoes one from before the stream began. */
        if (recent_pick(&g->likes, &g->rng, 1.0, &it) == 0) {
            ev->content = it.content;
            ev->user = it.user;
        }
        break;
    case SMM_EV_COMMENT_DELETE:
        ev->has_content = 1;
        if (recent_pick(&g->comments, &g->rng, 1.0, &it) == 0) {
            ev->content = it.content;
            ev->user = it.user;
        }
        break;
    case SMM_EV_SHARE: {
        const struct share_hist *hist = share_hist_get(g, ev->content, 0);

        ev->has_content = 1;
        ev->has_followers = 1;
        if (hist != NULL && hist->count > 0 && rng_unit(&g->rng) < 0.65) {
            uint32_t kept = hist->count < GEN_SHARE_RING ? hist->count : GEN_SHARE_RING;

            ev->has_parent = 1;
            ev->parent = hist->n[rng_below(&g->rng, kept)];
        }
        break;
    }
    case SMM_EV_CLICK:
        ev->has_content = 1;
        if (!(fam & FAM_FUNNEL)) {
            pick_source(g, &ev->source, &ev->campaign);
        } else if (rng_unit(&g->rng) < FAM_CLICK_SOURCE) {
            fam_pick_source(g, fam_src_click_cum, &ev->source, &ev->campaign);
        }
        break;
    case SMM_EV_REFERRAL:
        ev->has_content = 1;
        if (!(fam & FAM_REFERRALS)) {
            pick_source(g, &ev->source, &ev->campaign);
            break;
        }
        /* The referrer: a visitor referred earlier (the chain grows), a customer, someone
         * not seen before, or nobody known. The new visitor is the drawn user. */
        u = rng_unit(&g->rng);
        ev->depth = 1;
        if (u < 0.45 && recent_pick(&g->visitors, &g->rng, 0.0, &it) == 0) {
            ev->content = it.content;
            ev->has_referrer = 1;
            ev->referrer = it.user;
            ev->depth = it.depth + 1;
        } else if (u < 0.65 && recent_pick(&g->customers, &g->rng, 0.0, &it) == 0) {
            ev->content = it.content;
            ev->has_referrer = 1;
            ev->referrer = it.user;
        } else if (u < 0.92) {
            ev->has_referrer = 1;
            ev->referrer = (uint32_t)rng_below(&g->rng, opts->users);
        } else {
            ev->depth = 0;
        }
        if (ev->has_referrer && ev->referrer == ev->user) {
            ev->user = (uint32_t)(((uint64_t)ev->user + 1) % opts->users);
        }
        fam_pick_source(g, fam_src_referral_cum, &ev->source, &ev->campaign);
        break;
    case SMM_EV_CONVERSION:
        ev->has_content = 1;
        if (!(fam & (FAM_FUNNEL | FAM_REFERRALS))) {
            /* Most conversions are attributed to an earlier click/referral of the user. */
            if (rng_unit(&g->rng) < 0.8 && recent_pick(&g->clicks, &g->rng, 0.5, &it) == 0) {
                ev->content = it.content;
                ev->user = it.user;
                ev->source = it.source;
                ev->campaign = it.campaign;
            } else {
                pick_source(g, &ev->source, &ev->campaign);
            }
        } else {
            /* A referred visitor buys (the referral's own source only sometimes on the
             * conversion), a clicker buys (usually naming the click's source), or someone
             * the stream has not seen. */
            u = rng_unit(&g->rng);
            if ((fam & FAM_REFERRALS) && u < 0.35 &&
                recent_pick(&g->visitors, &g->rng, 0.3, &it) == 0) {
                ev->content = it.content;
                ev->user = it.user;
                if (rng_unit(&g->rng) < 0.3) {
                    ev->source = it.source;
                    ev->campaign = it.campaign;
                }
            } else if (u < 0.8 && recent_pick(&g->clicks, &g->rng, 0.5, &it) == 0) {
                ev->content = it.content;
                ev->user = it.user;
                if (rng_unit(&g->rng) < 0.7) {
                    ev->source = it.source;
                    ev->campaign = it.campaign;
                }
            } else if (rng_unit(&g->rng) < 0.3) {
                fam_pick_source(g, fam_src_click_cum, &ev->source, &ev->campaign);
            }
        }
        ev->has_value = 1;
        ev->value_cents = llround(exp(log(5.0) + rng_unit(&g->rng) * log(40.0)) * 100.0);
        break;
    case SMM_EV_MENTION:
        ev->has_followers = 1;
        if (fam & FAM_MENTIONS) {
            size_t nb = sizeof(mention_brands) / sizeof(mention_brands[0]);

            u = rng_unit(&g->rng);
            for (size_t b = 0; b < nb; b++) {
                if (u < mention_brand_cum[b]) {
                    fixed_account = mention_brands[b];
                    break;
                }
            }
        }
        break;
    case SMM_EV_MESSAGE:
        ev->has_thread = 1;
        ev->thread = n;
        if (fam & FAM_CARE) {
            ev->thread_fam = 1;
            ev->thread = g->threads++;
        }
        break;
    case SMM_EV_REPLY:
        ev->has_thread = 1;
        /* The account answers one of its open threads (some threads get several replies);
         * with no open thread at all this becomes a new message instead. */
        if (recent_pick(&g->messages, &g->rng, 0.7, &it) == 0) {
            ev->content = it.content;
            ev->user = it.user;
            ev->thread = it.n;
        } else {
            ev->type = SMM_EV_MESSAGE;
            ev->thread = n;
        }
        break;
    default:
        break;
    }

    ev->account = fixed_account >= 0 ? (uint32_t)fixed_account : ev->content % opts->accounts;
    if (ev->type == SMM_EV_MENTION && (fam & FAM_MENTIONS)) {
        /* likes + comments + shares the mention got: a log-normal share of the reach,
         * often 0 for small authors */
        double rate = rng_lognormal(&g->rng, 0.01, 1.2);

        ev->has_engagement = 1;
        ev->engagement = (int64_t)floor((double)mention_followers(g, ev->user) * rate);
    }
    gen_event_finish(g, ev);
    if (plan && ev->type == SMM_EV_MESSAGE && (fam & FAM_CARE)) {
        return care_plan(g, ev);
    }
    return 0;
}

/* Records a well-formed event so later events can refer to it. */
static int gen_remember(struct gen *g, const struct gen_event *ev)
{
    struct recent_item it = {ev->n, ev->content, ev->user, ev->source, ev->campaign, ev->depth};
    unsigned fam = g->opts->families;

    switch (ev->type) {
    case SMM_EV_LIKE:
        recent_add(&g->likes, &it);
        break;
    case SMM_EV_COMMENT:
        recent_add(&g->comments, &it);
        break;
    case SMM_EV_REFERRAL:
        recent_add((fam & FAM_REFERRALS) ? &g->visitors : &g->clicks, &it);
        break;
    case SMM_EV_CLICK:
        recent_add(&g->clicks, &it);
        break;
    case SMM_EV_CONVERSION:
        if (fam & (FAM_FUNNEL | FAM_REFERRALS)) {
            recent_add(&g->customers, &it);
        }
        break;
    case SMM_EV_MESSAGE:
        if (!(fam & FAM_CARE)) { /* care replies are planned, not picked */
            recent_add(&g->messages, &it);
        }
        break;
    case SMM_EV_SHARE: {
        struct share_hist *hist = share_hist_get(g, ev->content, 1);

        if (hist == NULL) {
            return -1;
        }
        hist->n[hist->count % GEN_SHARE_RING] = ev->n;
        hist->count++;
        break;
    }
    default:
        break;
    }
    return 0;
}

/* Which malformed kind message n gets, or BAD_NONE. Uses only bad_rng. */
static int gen_bad_pick(struct gen *g, uint64_t *variant)
{
    int kind;

    if (g->opts->malformed_rate <= 0.0 || rng_unit(&g->bad_rng) >= g->opts->malformed_rate) {
        return BAD_NONE;
    }
    kind = g->bad_list[g->bad_total % (uint64_t)g->bad_list_len];
    g->bad_total++;
    *variant = g->bad_seq[kind]++;
    return kind;
}

/* ---- rendering ---- */

static inline char *put_mem(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) ((p) = put_mem((p), (lit), sizeof(lit) - 1))

static inline char *put_str(char *p, const char *s)
{
    return put_mem(p, s, strlen(s));
}

static inline char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    int i = 0;

    do {
        tmp[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (i > 0) {
        *p++ = tmp[--i];
    }
    return p;
}

static inline char *put_i64(char *p, int64_t v)
{
    if (v < 0) {
        *p++ = '-';
        return put_u64(p, (uint64_t)0 - (uint64_t)v);
    }
    return put_u64(p, (uint64_t)v);
}

/* A field separator unless it is the first field, then the key. */
static inline char *put_key(char *p, int *first, const char *key, size_t len)
{
    if (!*first) {
        *p++ = ',';
    }
    *first = 0;
    return put_mem(p, key, len);
}

#define PUT_KEY(p, first, lit) ((p) = put_key((p), &(first), (lit), sizeof(lit) - 1))

static char *put_rfc3339(char *p, int64_t ms)
{
    int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int frac = (int)(ms - secs * 1000);
    time_t tt = (time_t)secs;
    struct tm tm;
    char tmp[96];
    int len;

    if (gmtime_r(&tt, &tm) == NULL) {
        return put_i64(p, ms); /* out of range for struct tm: not reachable from the flags */
    }
    len = snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    return put_mem(p, tmp, (size_t)len);
}

/* A random one-off region/segment value from tok: "<tag>-<hex>", or one time in four
 * "<tag>:<hex>|a=b c" (bytes that are legal in ids but separate our key and field names). */
static char *put_hostile(char *p, const char *tag, uint64_t tok)
{
    static const char hex[] = "0123456789abcdef";
    int odd = (tok & 3) == 0;

    p = put_str(p, tag);
    *p++ = odd ? ':' : '-';
    for (int i = 0; i < 10; i++) {
        *p++ = hex[(tok >> (4 + 4 * i)) & 0xf];
    }
    if (odd) {
        PUT_LIT(p, "|a=b c");
    }
    return p;
}

/* Ends an id value that starts at vstart: padded past 128 bytes, or with a control char. */
static char *put_id_defect(char *p, const char *vstart, int bad)
{
    if (bad == BAD_LONG_ID) {
        *p++ = '-';
        while (p - vstart < GEN_LONG_ID_LEN) {
            *p++ = 'x';
        }
    } else if (bad == BAD_CONTROL_CHAR) {
        PUT_LIT(p, "\\u0001");
    }
    return p;
}

/* Writes the message for ev into buf (GEN_BUF_SIZE bytes), damaged as `bad` says.
 * `variant` counts earlier messages of the same bad kind (which id gets the defect).
 * Returns the length; buf is not NUL-terminated. */
static size_t render(const struct gen *g, const struct gen_event *ev, int bad, uint64_t variant,
                     char *buf)
{
    char *p = buf;
    const char *vstart;
    int first = 1;
    int id_bad = (bad == BAD_LONG_ID || bad == BAD_CONTROL_CHAR) ? (int)(variant % 3) : -1;
    int64_t ts = ev->ts_ms;
    size_t len;

    if (bad == BAD_NOT_OBJECT) {
        PUT_LIT(p, "[\"");
        p = put_mem(p, g->id_prefix, g->id_prefix_len);
        p = put_u64(p, ev->n);
        PUT_LIT(p, "\",\"");
        p = put_str(p, smm_event_type_name(ev->type));
        PUT_LIT(p, "\",");
        p = put_i64(p, ts);
        *p++ = ']';
        return (size_t)(p - buf);
    }

    *p++ = '{';
    if (bad != BAD_NO_EVENT_ID) {
        PUT_KEY(p, first, "\"event_id\":\"");
        vstart = p;
        p = put_mem(p, g->id_prefix, g->id_prefix_len);
        p = put_u64(p, ev->n);
        p = id_bad == 0 ? put_id_defect(p, vstart, bad) : p;
        *p++ = '"';
    }
    if (bad != BAD_NO_TYPE) {
        PUT_KEY(p, first, "\"type\":\"");
        if (bad == BAD_UNKNOWN_TYPE) {
            PUT_LIT(p, "teleport");
        } else if (bad == BAD_NO_CONTENT && !smm_event_type_needs_content(ev->type)) {
            PUT_LIT(p, "like");
        } else {
            p = put_str(p, smm_event_type_name(ev->type));
        }
        *p++ = '"';
    }
    PUT_KEY(p, first, "\"ts\":");
    if (bad == BAD_TS_STRING) {
        PUT_LIT(p, "\"yesterday\"");
    } else {
        ts += bad == BAD_TS_OLD ? -10 * GEN_DAY_MS : bad == BAD_TS_FUTURE ? GEN_DAY_MS : 0;
        if (ev->rfc3339) {
            *p++ = '"';
            p = put_rfc3339(p, ts);
            *p++ = '"';
        } else {
            p = put_i64(p, ts);
        }
    }
    if (bad == BAD_ACCOUNT_NUMBER) {
        PUT_KEY(p, first, "\"account_id\":");
        p = put_u64(p, ev->account);
    } else if (bad != BAD_NO_ACCOUNT) {
        PUT_KEY(p, first, "\"account_id\":\"");
        vstart = p;
        PUT_LIT(p, "acct-");
        p = put_u64(p, ev->account);
        p = id_bad == 1 ? put_id_defect(p, vstart, bad) : p;
        *p++ = '"';
    }
    if (ev->has_content && bad != BAD_NO_CONTENT) {
        PUT_KEY(p, first, "\"content_id\":\"post-");
        p = put_u64(p, ev->content);
        *p++ = '"';
    }
    if (ev->has_author_followers) {
        PUT_KEY(p, first, "\"author_followers\":");
        p = put_i64(p, ev->author_followers);
    }
    PUT_KEY(p, first, "\"user_id\":\"");
    vstart = p;
    PUT_LIT(p, "u-");
    p = put_u64(p, ev->user);
    p = id_bad == 2 ? put_id_defect(p, vstart, bad) : p;
    *p++ = '"';
    if (ev->has_referrer) {
        PUT_KEY(p, first, "\"referrer_id\":\"u-");
        p = put_u64(p, ev->referrer);
        *p++ = '"';
    }
    if (ev->has_parent) {
        PUT_KEY(p, first, "\"parent_id\":\"");
        p = put_mem(p, g->id_prefix, g->id_prefix_len);
        p = put_u64(p, ev->parent);
        *p++ = '"';
    }
    if (ev->has_followers) {
        PUT_KEY(p, first, "\"followers\":");
        p = put_i64(p, ev->followers);
    }
    if (ev->has_engagement) {
        PUT_KEY(p, first, "\"engagement\":");
        p = put_i64(p, ev->engagement);
    }
    if (ev->follows_author >= 0) {
        PUT_KEY(p, first, "\"follows_author\":");
        p = ev->follows_author ? put_mem(p, "true", 4) : put_mem(p, "false", 5);
    }
    if (ev->source >= 0) {
        PUT_KEY(p, first, "\"source\":\"");
        p = put_str(p, source_names[ev->source]);
        if (ev->source == GEN_SRC_CAMPAIGN || ev->source == GEN_SRC_CMP) {
            p = put_u64(p, ev->campaign);
        }
        *p++ = '"';
    }
    if (ev->has_value) {
        PUT_KEY(p, first, "\"value\":");
        p = put_i64(p, ev->value_cents / 100);
        *p++ = '.';
        *p++ = (char)('0' + (ev->value_cents / 10) % 10);
        *p++ = (char)('0' + ev->value_cents % 10);
    }
    if (ev->has_thread) {
        PUT_KEY(p, first, "\"thread_id\":\"t-");
        if (ev->thread_fam) {
            p = put_mem(p, g->id_prefix, g->id_prefix_len);
        }
        p = put_u64(p, ev->thread);
        *p++ = '"';
    }
    if (ev->region >= 0) {
        PUT_KEY(p, first, "\"region\":\"");
        p = put_str(p, region_names[ev->region]);
        *p++ = '"';
        PUT_KEY(p, first, "\"segment\":\"");
        p = put_str(p, segment_names[ev->segment]);
        *p++ = '"';
    }
    if (ev->fam_region != 0) {
        PUT_KEY(p, first, "\"region\":\"");
        p = ev->fam_region == FAM_HOSTILE ? put_hostile(p, "r", ev->region_tok)
                                          : put_str(p, fam_region_names[ev->fam_region - 1]);
        *p++ = '"';
    }
    if (ev->fam_segment != 0) {
        PUT_KEY(p, first, "\"segment\":\"");
        p = ev->fam_segment == FAM_HOSTILE ? put_hostile(p, "s", ev->segment_tok)
                                           : put_str(p, fam_segment_names[ev->fam_segment - 1]);
        *p++ = '"';
    }
    if (bad == BAD_OVERSIZE) {
        PUT_KEY(p, first, "\"padding\":\"");
        memset(p, 'x', GEN_OVERSIZE_PAD);
        p += GEN_OVERSIZE_PAD;
        *p++ = '"';
    }
    *p++ = '}';
    len = (size_t)(p - buf);
    if (bad == BAD_TRUNCATED) {
        len /= 2; /* any proper prefix of an object is invalid JSON */
    }
    return len;
}

/* Kafka key: content_id, else account_id (from the undamaged event). */
static size_t render_key(const struct gen_event *ev, char *buf)
{
    char *p = buf;

    if (ev->has_content) {
        PUT_LIT(p, "post-");
        p = put_u64(p, ev->content);
    } else {
        PUT_LIT(p, "acct-");
        p = put_u64(p, ev->account);
    }
    return (size_t)(p - buf);
}

/* ---- command line ---- */

enum flag_id {
    F_COUNT,
    F_SEED,
    F_CONTENTS,
    F_ZIPF,
    F_ACCOUNTS,
    F_USERS,
    F_USER_ZIPF,
    F_MIX,
    F_START_MS,
    F_SPAN_MS,
    F_DISORDER_MS,
    F_RATE,
    F_TS_FORMAT,
    F_RFC3339_SHARE,
    F_MALFORMED_RATE,
    F_MALFORMED_KINDS,
    F_FAMILIES,
    F_REPLY_MEDIAN_S,
    F_PRINT_CONFIG,
    F_STDOUT,
    F_BROKERS,
    F_TOPIC,
    F_X,
    F_PROGRESS,
    F_QUIET,
    F_SCENARIO,
    F_VIRAL_THRESHOLD,
    F_CASCADES,
    F_NEAR_MISSES,
    F_POSTS,
    F_DURATION_S,
    F_CASCADE_S,
    F_TRUTH,
    F_HELP,
};

struct flag {
    const char *name;
    const char *metavar; /* NULL: takes no value */
    enum flag_id id;
    const char *help; /* ends with the default */
};

static const struct flag flags[] = {
    {"--count", "N", F_COUNT,
     "events to write; 0 = until SIGINT/SIGTERM (needs --rate). Default 100000"},
    {"--seed", "S", F_SEED,
     "random seed (unsigned 64-bit); event ids are \"<S>-<n>\", n = 0..N-1. Default 1"},
    {"--contents", "N", F_CONTENTS, "number of posts, 1..10000000. Default 100000"},
    {"--zipf", "S", F_ZIPF,
     "Zipf exponent of post popularity (0 = uniform), 0..5. Default 1.1"},
    {"--accounts", "N", F_ACCOUNTS,
     "number of accounts; post i belongs to acct-(i % N). Default 1000"},
    {"--users", "N", F_USERS, "number of users u-0..u-(N-1). Default 1000000"},
    {"--user-zipf", "S", F_USER_ZIPF,
     "Zipf exponent of user activity, 0 = uniform (>0 needs --users <= 10000000). Default 0"},
    {"--mix", "LIST", F_MIX,
     "type weights \"type=w,...\"; unlisted types get 0. Default: the mix shown below"},
    {"--start-ms", "T", F_START_MS,
     "epoch ms of the first event. Default: now - span (pass it for repeatable output)"},
    {"--span-ms", "D", F_SPAN_MS,
     "event time covered by the N events, non-decreasing with jitter. Default 120000"},
    {"--disorder-ms", "D", F_DISORDER_MS,
     "move each ts back by a random 0..D ms (out-of-order input). Default 0"},
    {"--rate", "R", F_RATE,
     "real-time mode: R events/s, ts = wall clock when sent (so not with --start-ms or "
     "--span-ms); 0 = as fast as possible, ts from --start-ms/--span-ms. Default 0"},
    {"--ts-format", "F", F_TS_FORMAT,
     "ms (epoch ms number), rfc3339 (\"2026-11-26T03:51:43.123Z\") or mixed. Default ms"},
    {"--rfc3339-share", "F", F_RFC3339_SHARE,
     "fraction of RFC 3339 timestamps in mixed mode; implies --ts-format mixed. Default 0.1"},
    {"--malformed-rate", "F", F_MALFORMED_RATE,
     "fraction 0..1 of messages that are bad input, cycling through the kinds below. "
     "Default 0"},
    {"--malformed-kinds", "LIST", F_MALFORMED_KINDS,
     "comma-separated subset of the kinds below to cycle through. Default all"},
    {"--families", "LIST", F_FAMILIES,
     "realistic events for the response-time, share-of-voice, referral, funnel and segment "
     "metrics: all, none or a comma-separated subset of care, mentions, referrals, funnel, "
     "segments (see below). Default none: the stream of earlier versions, byte for byte"},
    {"--reply-median-s", "S", F_REPLY_MEDIAN_S,
     "care: median delay of a brand reply, seconds (log-normal, sigma 1.5, 5 s..12 h); use "
     "--span-ms of hours, or a small S for short runs. Default 1200"},
    {"--print-config", NULL, F_PRINT_CONFIG,
     "print the processor settings that match the generated competitor brands (--set "
     "key=value lines) and exit"},
    {"--stdout", NULL, F_STDOUT, "write JSON lines to stdout instead of Kafka"},
    {"--brokers", "B", F_BROKERS, "Kafka bootstrap.servers (required without --stdout)"},
    {"--topic", "T", F_TOPIC, "Kafka topic (required without --stdout)"},
    {"-X", "KEY=VALUE", F_X,
     "librdkafka producer property, repeatable; applied after ours, so it overrides them"},
    {"--progress", NULL, F_PROGRESS,
     "progress on stderr every second (default: only when stderr is a terminal)"},
    {"--quiet", NULL, F_QUIET, "no progress and no notes on stderr (errors still print)"},
    {"--scenario", "S", F_SCENARIO,
     "mix (the flags above) or viral (planted cascades with ground truth, below). Default mix"},
    {"--viral-threshold", "N", F_VIRAL_THRESHOLD,
     "viral: distinct viewers in the 5 min window that make content viral (the processor's "
     "viral.reach_min). Default 1000"},
    {"--cascades", "K", F_CASCADES,
     "viral: planted viral cascades, alternately broadcast and deep. Default 6"},
    {"--near-misses", "M", F_NEAR_MISSES,
     "viral: posts whose reach peaks at 60-90 % of the threshold. Default 6"},
    {"--posts", "P", F_POSTS, "viral: ordinary (organic) posts. Default 400"},
    {"--duration-s", "D", F_DURATION_S,
     "viral: seconds of wall time the scenario takes. Default 180"},
    {"--cascade-s", "C", F_CASCADE_S,
     "viral: a planted cascade or near miss lasts 0.75-1 x C seconds, an organic post "
     "0.3-1 x C; C <= D. Up to 240 every cascade fits in the 5 min window (peak_reach_5m = "
     "reach); longer ones spread thinner and may never cross. Default 120"},
    {"--truth", "FILE", F_TRUTH,
     "viral: write the ground truth there, one JSON object per post"},
    {"--help", NULL, F_HELP, "this text (also -h)"},
};

#define FLAG_CNT (sizeof(flags) / sizeof(flags[0]))

static const char *flag_name(enum flag_id id)
{
    for (size_t k = 0; k < FLAG_CNT; k++) {
        if (flags[k].id == id) {
            return flags[k].name;
        }
    }
    return "?";
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: smm-gen [options] --stdout\n"
            "       smm-gen [options] --brokers B --topic T [-X key=value]...\n"
            "\n"
            "Deterministic generator of social-media interaction events, one JSON object per\n"
            "message: {\"event_id\":\"<seed>-<n>\",\"type\":\"impression\",\"ts\":<epoch ms>,\n"
            "\"account_id\":\"acct-17\",\"content_id\":\"post-1234\",\"user_id\":\"u-99\",...}.\n"
            "The same seed and flags (with --start-ms, without --rate) give byte-identical\n"
            "output, in both output modes. Flags take \"--flag value\" or \"--flag=value\".\n"
            "\n"
            "Options:\n");
    for (size_t i = 0; i < FLAG_CNT; i++) {
        const char *h = flags[i].help;
        char head[64];
        int col;

        snprintf(head, sizeof(head), "%s%s%s", flags[i].name, flags[i].metavar ? " " : "",
                 flags[i].metavar ? flags[i].metavar : "");
        fprintf(out, "  %-22s", head);
        col = 24;
        /* Word-wrap the help at 80 columns, continuation lines under the first. */
        while (*h != '\0') {
            size_t word = strcspn(h, " ");

            if (col + 1 + (int)word > 80 && col > 24) {
                fprintf(out, "\n%24s", "");
                col = 24;
            }
            fprintf(out, " %.*s", (int)word, h);
            col += 1 + (int)word;
            h += word;
            h += strspn(h, " ");
        }
        fprintf(out, "\n");
    }
    fprintf(out, "\nDefault type mix (percent):");
    for (int t = 0; t < SMM_EV__COUNT; t++) {
        fprintf(out, "%s%s %.1f", t % 5 == 0 ? "\n  " : ", ",
                smm_event_type_name((enum smm_event_type)t), default_mix[t]);
    }
    fprintf(out,
            "\n"
            "\n"
            "Fields: content_id on impression, view, like, unlike, comment, comment_delete,\n"
            "share, click, referral, conversion; impression/view: follows_author (~70%% true);\n"
            "share: "
            "followers and often parent_id (an earlier share of the same post); click,\n"
            "referral, conversion: source (twitter, facebook, instagram, linkedin, newsletter,\n"
            "campaign-1..%d); conversion: value (5.00..200.00); mention: followers;\n"
            "message/reply: thread_id \"t-<n>\" (a reply answers an earlier message of the same\n"
            "account); region (eu, na, apac, latam, mea) and segment (18-24, 25-34, 35-44, 45+)\n"
            "on 95%% of events.\n"
            "\n"
            "Families (--families; each changes only the events it names):\n"
            "  care      a message (thread_id \"t-<seed>-<k>\", user_id = the customer)\n"
            "            starts a conversation; 88%% get a brand reply after a log-normal\n"
            "            delay (--reply-median-s); 15%% get a second customer message (a\n"
            "            nudge, or an answer to the reply, answered in turn 75%% of the\n"
            "            time); 5%% of replies are written before the message they answer,\n"
            "            which follows 0.1-10 s later. The message weight is the rate of\n"
            "            new conversations (default %.1f: ~2.5%% care events); replies are\n"
            "            planned, a reply weight is ignored.\n"
            "  mentions  90%% name a competitor brand acct-1..acct-7 (30/20/14/10/8/5/3%%),\n"
            "            with followers (heavy-tailed: 2%% of authors have 20k-50M) and\n"
            "            engagement (an integer). Matching settings (--print-config):\n"
            "            sov.set.cat-1=acct-1,acct-2,acct-3,acct-4,acct-5\n"
            "            sov.set.cat-2=acct-5,acct-6,acct-7\n"
            "  referrals user_id = the new visitor, referrer_id = an earlier visitor of the\n"
            "            same account (chains A->B->C), a customer, or someone unseen (8%%\n"
            "            have none); source newsletter, instagram, tiktok, partner-x or (5%%)\n"
            "            a one-off cmp-<k>. 35%% of conversions are by referred visitors.\n"
            "  funnel    source on 50%% of impressions and 85%% of clicks (weights per type,\n"
            "            so the CTR differs by source; 3%% cmp-<k>); conversions by earlier\n"
            "            clickers, value with 2 decimals, source on some.\n"
            "  segments  region (eu-west, eu-central, eu-north, na-east, na-west, apac,\n"
            "            latam, mea) on 80%% and segment (13-17, 18-24, 25-34, 35-44, 45-54,\n"
            "            55-64, 65+) on 65%% of events, per user; 1%% of events each get a\n"
            "            random one-off value (r-<hex>, some \"r:<hex>|a=b c\").\n"
            "\n"
            "Malformed kinds, in cycle order:",
            GEN_CAMPAIGNS, CARE_THREAD_WEIGHT);
    for (int k = 0; k < BAD__COUNT; k++) {
        fprintf(out, "%s%s", k % 5 == 0 ? "\n  " : ", ", bad_names[k]);
    }
    fprintf(out,
            "\n"
            "  (truncated JSON; a JSON array; no event_id; no type; type \"teleport\";\n"
            "  \"ts\":\"yesterday\"; \"account_id\":<number>; no account_id; a content type\n"
            "  without content_id; payload > 64 KiB; an id > 128 bytes; an id with \\u0001;\n"
            "  ts 10 days early; ts 1 day late. Ids stay unique where the kind has one.)\n"
            "\n"
            "Viral scenario: --posts organic posts, --cascades planted viral cascades\n"
            "(alternately broadcast: one big hub, shallow; and deep: chains of depth >= 6) and\n"
            "--near-misses posts peaking at 60-90 %% of --viral-threshold, over --duration-s of\n"
            "wall time (ts = the wall clock when written; with --start-ms: as fast as\n"
            "possible, ts = start + offset). Impressions, views, likes, comments, clicks and\n"
            "shares, all with author_followers; shares with followers and parent_id (none for\n"
            "a direct share of the post). --truth FILE gets one JSON object per post:\n"
            "content_id, account_id, planted, style (broadcast, deep, near_miss, organic),\n"
            "threshold, author_followers, target_reach, reach (distinct viewers), peak_reach_5m,\n"
            "shares, max_depth, hub_followers, events, first_ms, last_ms, and crossing_ms: the\n"
            "first ts at which the distinct users reached (any content event) in the minutes\n"
            "(m-5, m] reach the threshold\n"
            "(m = ts / 60000), or null.\n"
            "\n"
            "Kafka: key = content_id (account_id without content); defaults linger.ms=100,\n"
            "batch.num.messages=10000, queue.buffering.max.messages=1000000,\n"
            "compression.codec=none, enable.idempotence=true. Waits for every delivery report,\n"
            "then prints \"produced N messages (M malformed) in X s\" on stdout.\n"
            "\n"
            "Examples:\n"
            "  smm-gen --stdout --count 1000 --start-ms 1767225600000 > events.jsonl\n"
            "  smm-gen --brokers \"$BOOT\" --topic events --count 200000 --malformed-rate 0.01\n"
            "  smm-gen --brokers \"$BOOT\" --topic events --rate 2000 --count 0   # until ^C\n"
            "  smm-gen --stdout --mix share=1 --contents 20 --count 500         # cascades\n"
            "  smm-gen --stdout --malformed-rate 1 --malformed-kinds oversize,long_id\n"
            "  smm-gen --scenario viral --brokers \"$BOOT\" --topic events --truth truth.jsonl\n"
            "  smm-gen --stdout --families all --span-ms 86400000 --start-ms 1767225600000\n"
            "\n"
            "Exit status: 0 when every message was written/delivered (or, with --count 0,\n"
            "after a signal), 1 on output or delivery failure or an interrupted finite run,\n"
            "2 on bad usage.\n");
}

static int parse_u64(const char *flag, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < lo || v > hi) {
        fprintf(stderr, "smm-gen: %s: expected an integer in %" PRIu64 "..%" PRIu64 ", got '%s'\n",
                flag, lo, hi, s);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

static int parse_i64(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end = NULL;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "smm-gen: %s: expected an integer in %" PRId64 "..%" PRId64 ", got '%s'\n",
                flag, lo, hi, s);
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

static int parse_double(const char *flag, const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
        fprintf(stderr, "smm-gen: %s: expected a number in %g..%g, got '%s'\n", flag, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_u32(const char *flag, const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    uint64_t v;

    if (parse_u64(flag, s, lo, hi, &v) != 0) {
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* "type=w,type=w"; unlisted types get weight 0. */
static int parse_mix(const char *s, double *mix)
{
    const char *p = s;
    double total = 0.0;

    for (int t = 0; t < SMM_EV__COUNT; t++) {
        mix[t] = 0.0;
    }
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        char name[32];
        char num[64];
        enum smm_event_type type;
        double w;

        if (eq == NULL || (size_t)(eq - p) >= sizeof(name) ||
            len - (size_t)(eq - p) - 1 >= sizeof(num)) {
            fprintf(stderr, "smm-gen: --mix: expected type=weight, got '%.*s'\n", (int)len, p);
            return -1;
        }
        memcpy(name, p, (size_t)(eq - p));
        name[eq - p] = '\0';
        memcpy(num, eq + 1, len - (size_t)(eq - p) - 1);
        num[len - (size_t)(eq - p) - 1] = '\0';
        if (smm_event_type_parse(name, &type) != SMM_OK) {
            fprintf(stderr, "smm-gen: --mix: unknown event type '%s'\n", name);
            return -1;
        }
        if (parse_double("--mix", num, 0.0, 1e9, &w) != 0) {
            return -1;
        }
        mix[type] = w;
        total += w;
        p = comma ? comma + 1 : p + len;
    }
    if (!(total > 0.0)) {
        fprintf(stderr, "smm-gen: --mix: the weights must not all be 0\n");
        return -1;
    }
    return 0;
}

static int parse_kinds(const char *s, int *enabled)
{
    const char *p = s;

    if (strcmp(s, "all") == 0) {
        for (int k = 0; k < BAD__COUNT; k++) {
            enabled[k] = 1;
        }
        return 0;
    }
    for (int k = 0; k < BAD__COUNT; k++) {
        enabled[k] = 0;
    }
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int found = 0;

        for (int k = 0; k < BAD__COUNT; k++) {
            if (strlen(bad_names[k]) == len && strncmp(bad_names[k], p, len) == 0) {
                enabled[k] = 1;
                found = 1;
            }
        }
        if (!found) {
            fprintf(stderr, "smm-gen: --malformed-kinds: unknown kind '%.*s' (see --help)\n",
                    (int)len, p);
            return -1;
        }
        p = comma ? comma + 1 : p + len;
    }
    return 0;
}

/* "all", "none" or a comma-separated list of family_names. */
static int parse_families(const char *s, unsigned *out)
{
    const char *p = s;

    *out = 0;
    if (strcmp(s, "all") == 0) {
        *out = FAM_ALL;
        return 0;
    }
    if (strcmp(s, "none") == 0) {
        return 0;
    }
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int found = 0;

        for (int k = 0; k < FAM_COUNT; k++) {
            if (strlen(family_names[k]) == len && strncmp(family_names[k], p, len) == 0) {
                *out |= 1u << k;
                found = 1;
            }
        }
        if (!found) {
            fprintf(stderr, "smm-gen: --families: unknown family '%.*s' (expected all, none or "
                            "care, mentions, referrals, funnel, segments)\n", (int)len, p);
            return -1;
        }
        p = comma ? comma + 1 : p + len;
    }
    return 0;
}

/* Fills *opts. Returns 0 to run, 1 after --help, 2 on a usage error. */
static int parse_args(int argc, char **argv, struct gen_opts *opts)
{
    int have_format = 0;
    int have_share = 0;

    memset(opts, 0, sizeof(*opts));
    opts->count = 100000;
    opts->seed = 1;
    opts->contents = 100000;
    opts->zipf = 1.1;
    opts->accounts = 1000;
    opts->users = 1000000;
    opts->span_ms = 120000;
    opts->ts_format = TS_MS;
    opts->rfc3339_share = 0.1;
    opts->viral_threshold = 1000;
    opts->cascades = 6;
    opts->near_misses = 6;
    opts->posts = 400;
    opts->duration_s = 180.0;
    opts->cascade_s = 120.0;
    opts->reply_median_s = CARE_DEFAULT_MEDIAN_S;
    memcpy(opts->mix, default_mix, sizeof(opts->mix));
    for (int k = 0; k < BAD__COUNT; k++) {
        opts->bad_enabled[k] = 1;
    }

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const struct flag *f = NULL;
        const char *val = NULL;
        size_t name_len = strlen(arg);
        const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
        int bad = 0;

        if (strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (eq != NULL) {
            name_len = (size_t)(eq - arg);
        }
        for (size_t k = 0; k < FLAG_CNT; k++) {
            if (strlen(flags[k].name) == name_len && strncmp(flags[k].name, arg, name_len) == 0) {
                f = &flags[k];
            }
        }
        /* -Xkey=value, as kcat and librdkafka's examples accept it */
        if (f == NULL && strncmp(arg, "-X", 2) == 0 && arg[2] != '\0') {
            for (size_t k = 0; k < FLAG_CNT; k++) {
                f = flags[k].id == F_X ? &flags[k] : f;
            }
            val = arg + 2;
        }
        if (f == NULL) {
            fprintf(stderr, "smm-gen: unknown option '%s' (see --help)\n", arg);
            return 2;
        }
        if (f->metavar == NULL) {
            if (eq != NULL) {
                fprintf(stderr, "smm-gen: %s: takes no value\n", f->name);
                return 2;
            }
        } else if (val == NULL) {
            if (eq != NULL) {
                val = eq + 1;
            } else if (i + 1 < argc) {
                val = argv[++i];
            } else {
                fprintf(stderr, "smm-gen: %s: missing value %s\n", f->name, f->metavar);
                return 2;
            }
        }

        switch (f->id) {
        case F_COUNT:
            bad = parse_u64(f->name, val, 0, UINT64_MAX / 2, &opts->count);
            break;
        case F_SEED:
            bad = parse_u64(f->name, val, 0, UINT64_MAX, &opts->seed);
            break;
        case F_CONTENTS:
            bad = parse_u32(f->name, val, 1, GEN_MAX_CONTENTS, &opts->contents);
            break;
        case F_ZIPF:
            bad = parse_double(f->name, val, 0.0, 5.0, &opts->zipf);
            break;
        case F_ACCOUNTS:
            bad = parse_u32(f->name, val, 1, UINT32_MAX, &opts->accounts);
            break;
        case F_USERS:
            bad = parse_u32(f->name, val, 1, UINT32_MAX, &opts->users);
            break;
        case F_USER_ZIPF:
            bad = parse_double(f->name, val, 0.0, 5.0, &opts->user_zipf);
            break;
        case F_MIX:
            bad = parse_mix(val, opts->mix);
            break;
        case F_START_MS:
            bad = parse_i64(f->name, val, 0, 253402300799999LL, &opts->start_ms);
            opts->start_set = 1;
            break;
        case F_SPAN_MS:
            bad = parse_i64(f->name, val, 0, 100LL * 365 * GEN_DAY_MS, &opts->span_ms);
            opts->span_set = 1;
            break;
        case F_DISORDER_MS:
            bad = parse_i64(f->name, val, 0, 365 * GEN_DAY_MS, &opts->disorder_ms);
            break;
        case F_RATE:
            bad = parse_double(f->name, val, 0.0, 1e9, &opts->rate);
            break;
        case F_TS_FORMAT:
            have_format = 1;
            if (strcmp(val, "ms") == 0) {
                opts->ts_format = TS_MS;
            } else if (strcmp(val, "rfc3339") == 0) {
                opts->ts_format = TS_RFC3339;
            } else if (strcmp(val, "mixed") == 0) {
                opts->ts_format = TS_MIXED;
            } else {
                fprintf(stderr, "smm-gen: --ts-format: expected ms, rfc3339 or mixed, got '%s'\n",
                        val);
                bad = -1;
            }
            break;
        case F_RFC3339_SHARE:
            have_share = 1;
            bad = parse_double(f->name, val, 0.0, 1.0, &opts->rfc3339_share);
            break;
        case F_MALFORMED_RATE:
            bad = parse_double(f->name, val, 0.0, 1.0, &opts->malformed_rate);
            break;
        case F_MALFORMED_KINDS:
            bad = parse_kinds(val, opts->bad_enabled);
            break;
        case F_FAMILIES:
            bad = parse_families(val, &opts->families);
            break;
        case F_REPLY_MEDIAN_S:
            bad = parse_double(f->name, val, 1.0, 86400.0, &opts->reply_median_s);
            break;
        case F_PRINT_CONFIG:
            opts->print_config = 1;
            break;
        case F_STDOUT:
            opts->to_stdout = 1;
            break;
        case F_BROKERS:
            opts->brokers = val;
            break;
        case F_TOPIC:
            opts->topic = val;
            break;
        case F_X:
            if (strchr(val, '=') == NULL || val[0] == '=') {
                fprintf(stderr, "smm-gen: -X: expected key=value, got '%s'\n", val);
                bad = -1;
            } else if (opts->x_cnt == GEN_MAX_X) {
                fprintf(stderr, "smm-gen: -X: at most %d properties\n", GEN_MAX_X);
                bad = -1;
            } else {
                opts->x_args[opts->x_cnt++] = val;
            }
            break;
        case F_PROGRESS:
            opts->progress = 1;
            break;
        case F_QUIET:
            opts->quiet = 1;
            break;
        case F_SCENARIO:
            if (strcmp(val, "mix") == 0) {
                opts->scenario = SCEN_MIX;
            } else if (strcmp(val, "viral") == 0) {
                opts->scenario = SCEN_VIRAL;
            } else {
                fprintf(stderr, "smm-gen: --scenario: expected mix or viral, got '%s'\n", val);
                bad = -1;
            }
            break;
        case F_VIRAL_THRESHOLD:
            bad = parse_u32(f->name, val, 1, 10000000, &opts->viral_threshold);
            break;
        case F_CASCADES:
            bad = parse_u32(f->name, val, 0, 10000, &opts->cascades);
            break;
        case F_NEAR_MISSES:
            bad = parse_u32(f->name, val, 0, 10000, &opts->near_misses);
            break;
        case F_POSTS:
            bad = parse_u32(f->name, val, 0, 1000000, &opts->posts);
            break;
        case F_DURATION_S:
            bad = parse_double(f->name, val, 0.1, 86400.0, &opts->duration_s);
            break;
        case F_CASCADE_S:
            bad = parse_double(f->name, val, 0.1, 86400.0, &opts->cascade_s);
            break;
        case F_TRUTH:
            opts->truth_path = val;
            break;
        case F_HELP:
            usage(stdout);
            return 1;
        }
        if (bad != 0) {
            return 2;
        }
        opts->given |= 1ULL << f->id;
    }

    if (opts->print_config) {
        return 0; /* nothing is generated */
    }
    if (have_share && !have_format) {
        opts->ts_format = TS_MIXED;
    } else if (have_share && opts->ts_format != TS_MIXED) {
        fprintf(stderr, "smm-gen: --rfc3339-share: only applies to --ts-format mixed\n");
        return 2;
    }
    if (opts->to_stdout && (opts->brokers != NULL || opts->topic != NULL || opts->x_cnt > 0)) {
        fprintf(stderr, "smm-gen: --stdout: cannot be combined with --brokers, --topic or -X\n");
        return 2;
    }
    if (!opts->to_stdout && (opts->brokers == NULL || opts->topic == NULL)) {
        fprintf(stderr, "smm-gen: %s: required unless --stdout is given (see --help)\n",
                opts->brokers == NULL ? "--brokers" : "--topic");
        return 2;
    }
    if (opts->scenario == SCEN_VIRAL) {
        static const enum flag_id mix_only[] = {F_COUNT,          F_CONTENTS,       F_ZIPF,
                                                F_ACCOUNTS,       F_USER_ZIPF,      F_MIX,
                                                F_SPAN_MS,        F_DISORDER_MS,    F_RATE,
                                                F_MALFORMED_RATE, F_MALFORMED_KINDS, F_FAMILIES,
                                                F_REPLY_MEDIAN_S};

        for (size_t k = 0; k < sizeof(mix_only) / sizeof(mix_only[0]); k++) {
            if (opts->given & (1ULL << mix_only[k])) {
                fprintf(stderr, "smm-gen: %s: not used by --scenario viral\n",
                        flag_name(mix_only[k]));
                return 2;
            }
        }
        if (opts->cascade_s > opts->duration_s) {
            fprintf(stderr, "smm-gen: --cascade-s: must be <= --duration-s (%g)\n",
                    opts->duration_s);
            return 2;
        }
        if (opts->posts + opts->cascades + opts->near_misses == 0) {
            fprintf(stderr, "smm-gen: --scenario viral: no posts at all\n");
            return 2;
        }
        return 0;
    }
    {
        static const enum flag_id viral_only[] = {F_VIRAL_THRESHOLD, F_CASCADES, F_NEAR_MISSES,
                                                  F_POSTS, F_DURATION_S, F_CASCADE_S, F_TRUTH};

        for (size_t k = 0; k < sizeof(viral_only) / sizeof(viral_only[0]); k++) {
            if (opts->given & (1ULL << viral_only[k])) {
                fprintf(stderr, "smm-gen: %s: needs --scenario viral\n",
                        flag_name(viral_only[k]));
                return 2;
            }
        }
    }
    if ((opts->given & (1ULL << F_REPLY_MEDIAN_S)) && !(opts->families & FAM_CARE)) {
        fprintf(stderr, "smm-gen: --reply-median-s: needs --families with care\n");
        return 2;
    }
    if (opts->families & FAM_CARE) {
        /* The message weight starts conversations; their replies follow by plan. */
        double total = 0.0;

        if (!(opts->given & (1ULL << F_MIX))) {
            opts->mix[SMM_EV_MESSAGE] = CARE_THREAD_WEIGHT;
        }
        opts->mix[SMM_EV_REPLY] = 0.0;
        for (int t = 0; t < SMM_EV__COUNT; t++) {
            total += opts->mix[t];
        }
        if (!(total > 0.0)) {
            fprintf(stderr, "smm-gen: --mix: with --families care, replies follow messages; "
                            "give message (or another type) a weight\n");
            return 2;
        }
    }
    if (opts->count == 0 && opts->rate <= 0.0) {
        fprintf(stderr, "smm-gen: --count: 0 (unlimited) needs --rate\n");
        return 2;
    }
    if (opts->rate > 0.0 && (opts->start_set || opts->span_set)) {
        fprintf(stderr, "smm-gen: --rate: ts is the wall clock; drop --start-ms/--span-ms\n");
        return 2;
    }
    if (opts->user_zipf > 0.0 && opts->users > GEN_MAX_ZIPF_USERS) {
        fprintf(stderr, "smm-gen: --user-zipf: needs --users <= %d\n", GEN_MAX_ZIPF_USERS);
        return 2;
    }
    if (opts->malformed_rate > 0.0) {
        int any = 0;

        for (int k = 0; k < BAD__COUNT; k++) {
            any |= opts->bad_enabled[k];
        }
        if (!any) {
            fprintf(stderr, "smm-gen: --malformed-kinds: no kind enabled\n");
            return 2;
        }
    }
    return 0;
}

/* ---- clocks, signals, progress ---- */

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig)
{
    (void)sig;
    if (stop_requested < 2) {
        stop_requested++;
    }
}

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};

    nanosleep(&ts, NULL); /* a signal cuts it short, which is what we want */
}

struct progress {
    int on;
    int64_t t0_ns;
    int64_t next_ns;
    uint64_t last_n;
    int64_t last_ns;
};

static void progress_tick(struct progress *pr, const struct gen_opts *opts, uint64_t n,
                          int64_t now_ns, long in_flight)
{
    double dt;

    if (!pr->on || now_ns < pr->next_ns) {
        return;
    }
    dt = (double)(now_ns - pr->last_ns) / 1e9;
    fprintf(stderr, "smm-gen: %" PRIu64 " events", n);
    if (opts->count > 0) {
        fprintf(stderr, " (%.1f%%)", 100.0 * (double)n / (double)opts->count);
    }
    fprintf(stderr, ", %.0f ev/s", dt > 0 ? (double)(n - pr->last_n) / dt : 0.0);
    if (in_flight >= 0) {
        fprintf(stderr, ", %ld awaiting delivery", in_flight);
    }
    fprintf(stderr, "\n");
    pr->last_n = n;
    pr->last_ns = now_ns;
    pr->next_ns = now_ns + 1000000000LL;
}

/* ---- Kafka output ---- */

struct kafka_out {
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    uint64_t delivered;
    uint64_t failed;
    int fatal;
    char first_err[256];
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    struct kafka_out *ko = opaque;

    (void)rk;
    if (rkm->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        ko->delivered++;
        return;
    }
    if (ko->failed++ == 0) {
        snprintf(ko->first_err, sizeof(ko->first_err), "%s", rd_kafka_err2str(rkm->err));
    }
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kafka_out *ko = opaque;
    char fatal[256];

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        fprintf(stderr, "smm-gen: kafka fatal error: %s\n", fatal);
        ko->fatal = 1;
        return;
    }
    fprintf(stderr, "smm-gen: kafka: %s: %s\n", rd_kafka_err2name((rd_kafka_resp_err_t)err),
            reason);
}

/* Creates the producer and checks the topic's metadata, so a wrong --brokers or --topic fails
 * in seconds rather than after message.timeout.ms. Returns 0, or after printing why, 2 for a
 * bad property (a usage error) and 1 for anything else. */
static int kafka_open(struct kafka_out *ko, const struct gen_opts *opts)
{
    static const char *const defaults[][2] = {
        {"client.id", "smm-gen"},
        {"linger.ms", "100"},
        {"batch.num.messages", "10000"},
        {"queue.buffering.max.messages", "1000000"},
        {"compression.codec", "none"},
        {"enable.idempotence", "true"},
    };
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err;

    if (rd_kafka_conf_set(conf, "bootstrap.servers", opts->brokers, errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
        fprintf(stderr, "smm-gen: --brokers: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        if (rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
            fprintf(stderr, "smm-gen: %s: %s\n", defaults[i][0], errstr);
            rd_kafka_conf_destroy(conf);
            return 1;
        }
    }
    for (int i = 0; i < opts->x_cnt; i++) {
        char key[256];
        const char *eq = strchr(opts->x_args[i], '=');
        size_t klen = (size_t)(eq - opts->x_args[i]);

        if (klen >= sizeof(key)) {
            fprintf(stderr, "smm-gen: -X: key too long in '%s'\n", opts->x_args[i]);
            rd_kafka_conf_destroy(conf);
            return 2;
        }
        memcpy(key, opts->x_args[i], klen);
        key[klen] = '\0';
        if (rd_kafka_conf_set(conf, key, eq + 1, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
            fprintf(stderr, "smm-gen: -X %s: %s\n", key, errstr);
            rd_kafka_conf_destroy(conf);
            return 2;
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, ko);

    ko->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (ko->rk == NULL) {
        fprintf(stderr, "smm-gen: rd_kafka_new: %s\n", errstr);
        rd_kafka_conf_destroy(conf); /* rd_kafka_new() owns conf only on success */
        return 1;
    }
    conf = NULL;
    ko->rkt = rd_kafka_topic_new(ko->rk, opts->topic, NULL);
    if (ko->rkt == NULL) {
        fprintf(stderr, "smm-gen: --topic: %s: %s\n", opts->topic,
                rd_kafka_err2str(rd_kafka_last_error()));
        return 1;
    }
    err = rd_kafka_metadata(ko->rk, 0, ko->rkt, &md, GEN_METADATA_TIMEOUT_MS);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "smm-gen: --brokers: %s: no metadata within %d ms: %s\n", opts->brokers,
                GEN_METADATA_TIMEOUT_MS, rd_kafka_err2str(err));
        return 1;
    }
    if (md->topic_cnt < 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "smm-gen: --topic: %s: %s\n", opts->topic,
                rd_kafka_err2str(md->topic_cnt < 1 ? RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC
                                                   : md->topics[0].err));
        rd_kafka_metadata_destroy(md);
        return 1;
    }
    rd_kafka_metadata_destroy(md);
    return 0;
}

/* Queues one message, waiting while the local queue is full. Returns 0 or -1. */
static int kafka_send(struct kafka_out *ko, const char *payload, size_t len, const char *key,
                      size_t key_len)
{
    for (;;) {
        rd_kafka_resp_err_t err =
            rd_kafka_producev(ko->rk, RD_KAFKA_V_RKT(ko->rkt),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_KEY((void *)key, key_len),
                              RD_KAFKA_V_VALUE((void *)payload, len), RD_KAFKA_V_END);

        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            return 0;
        }
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || ko->fatal || stop_requested >= 2) {
            fprintf(stderr, "smm-gen: produce (%zu bytes): %s\n", len, rd_kafka_err2str(err));
            return -1;
        }
        rd_kafka_poll(ko->rk, 10);
    }
}

/* Waits for every outstanding delivery report; a second signal abandons the rest. */
static void kafka_drain(struct kafka_out *ko, struct progress *pr, const struct gen_opts *opts,
                        uint64_t n)
{
    while (rd_kafka_outq_len(ko->rk) > 0) {
        if (stop_requested >= 2 || ko->fatal) {
            fprintf(stderr, "smm-gen: abandoning %d undelivered messages\n",
                    rd_kafka_outq_len(ko->rk));
            rd_kafka_purge(ko->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_flush(ko->rk, 1000);
            return;
        }
        rd_kafka_flush(ko->rk, 200);
        progress_tick(pr, opts, n, mono_ns(), rd_kafka_outq_len(ko->rk));
    }
}

static void kafka_close(struct kafka_out *ko)
{
    if (ko->rkt != NULL) {
        rd_kafka_topic_destroy(ko->rkt);
    }
    if (ko->rk != NULL) {
        rd_kafka_destroy(ko->rk);
    }
}

/* ---- the viral scenario (--scenario viral) ---- */

enum vstyle { VS_ORGANIC, VS_NEAR_MISS, VS_BROADCAST, VS_DEEP };
static const char *const vstyle_names[] = {"organic", "near_miss", "broadcast", "deep"};

#define V_WIN_MINUTES 5            /* the processor's "5m" window: minutes (m - 5, m] */
#define V_RING 8                   /* minute slots kept per post (> V_WIN_MINUTES) */
#define V_MAX_TRIES 400            /* resamples of a cascade that misses its style */
#define V_MIN_DEPTH 6              /* a deep cascade has a share this many hops from the post */
#define V_DEEP_MAX_FOLLOWERS 1500  /* deep-chain viewers (the potential sharers) */
#define V_VIEW_MEDIAN_S 120.0      /* exposure -> view delay, natural time (log-normal) */
#define V_SHARE_MEDIAN_S 60.0      /* view -> re-share delay */
#define V_ENGAGE_MEDIAN_S 40.0     /* view -> like/comment/click delay */
#define V_AGAIN_MEDIAN_S 15.0      /* impression -> the same user's view delay */
#define V_DEEP_R 1.5               /* deep: expected re-shares per share */
#define V_DEEP_R0 2.5              /* deep: expected direct shares of the post */
#define V_HUB_OVERSHOOT 1.15       /* broadcast: the hub alone would bring 1.15 x target */

/* One post of the scenario: its role, its cascade's summary, and the ground truth. The
 * simulation figures (reach, shares, max_depth) describe the whole planned cascade; the
 * emitted ones (events, first/last ts, peak, crossing) what was written, which differs only
 * in an interrupted run. */
struct vpost {
    uint32_t account;
    int64_t author_followers;
    enum vstyle style;
    enum vstyle shape; /* the process that made it: VS_ORGANIC, VS_BROADCAST or VS_DEEP */
    uint32_t target;   /* distinct viewers at which the cascade stops spreading */
    double p_org;      /* chance that one of the author's followers sees the post */
    int64_t start_ms;  /* offsets from the scenario's start */
    int64_t span_ms;
    /* from the simulation */
    uint32_t reach;
    uint32_t shares;
    uint32_t max_depth;
    uint32_t n_events;
    int64_t hub_followers; /* broadcast shape: the hub's followers */
    /* from the emitted events (all of them, unless the run was interrupted) */
    uint32_t n_emitted;
    int64_t first_ts; /* 0: nothing emitted yet */
    int64_t last_ts;
    int64_t crossing_ts; /* -1: never */
    uint32_t peak_5m;
    uint32_t win_cnt[V_RING];   /* distinct viewers whose latest view is in that minute */
    int64_t win_minute[V_RING]; /* the minute a slot counts */
};

/* One scheduled event of the scenario, before rendering. */
struct vev {
    int64_t at_ms;   /* offset from the scenario's start */
    uint32_t seq;    /* generation order: the tie-break, and what `parent` refers to */
    uint32_t post;
    uint32_t user;
    uint32_t parent; /* share: 1 + seq of the share it re-shares, 0 = a share of the post */
    int64_t followers;
    uint8_t type;
    int8_t follows; /* impression/view: 0/1, else -1 */
};

enum vitem_kind { VI_EXPOSE, VI_SHARE, VI_AGAIN, VI_ENGAGE };

/* A pending step of one post's cascade, in natural time. */
struct vitem {
    double t;     /* seconds after the post was published */
    uint32_t tie; /* creation order: equal times pop first in, first out */
    uint8_t kind;
    uint8_t type;   /* VI_ENGAGE: like, comment or click */
    int8_t follows; /* VI_EXPOSE/VI_AGAIN: the viewer follows the author */
    uint8_t hub;    /* VI_SHARE: the broadcast hub */
    uint32_t user;  /* VI_SHARE/VI_AGAIN/VI_ENGAGE */
    uint32_t via;   /* VI_EXPOSE: 1 + local index of the share that exposed it, 0 = the post;
                     * VI_SHARE: its parent, same encoding */
    uint32_t depth; /* VI_SHARE: its own depth; VI_EXPOSE: the depth of what exposed it */
    double q;       /* VI_EXPOSE: chance that this viewer re-shares */
};

/* One event of one post in natural time, before compression into wall time. */
struct vlocal {
    double t;
    uint32_t user;
    uint32_t parent; /* share: 1 + local index of the parent share */
    int64_t followers;
    uint8_t type;
    int8_t follows;
};

/* Scratch space of one cascade simulation, reused from post to post. */
struct vsim {
    struct vitem *heap;
    size_t heap_len;
    size_t heap_cap;
    uint32_t tie;
    struct vlocal *ev;
    size_t ev_len;
    size_t ev_cap;
    uint32_t *viewers; /* distinct viewers so far, for repeat exposures */
    size_t viewers_len;
    size_t viewers_cap;
    uint32_t *set; /* open addressing over user + 1; 0 = empty */
    size_t set_cap;
    size_t set_mask; /* this post's table size - 1 (a power of two <= set_cap) */
};

struct vtruth_slot {
    uint64_t key;   /* ((post << 32) | user) + 1; 0 = empty */
    int64_t minute; /* the user's latest view minute of that post */
};

/* Log-uniform in [lo, hi]. */
static double rng_logu(struct rng *r, double lo, double hi)
{
    return exp(log(lo) + rng_unit(r) * (log(hi) - log(lo)));
}

/* Binomial(n, p): exact Poisson limit for small means, normal approximation for large. */
static uint64_t rng_binomial(struct rng *r, uint64_t n, double p)
{
    double mean = (double)n * p;
    double x;

    if (n == 0 || p <= 0.0) {
        return 0;
    }
    if (mean < 30.0) {
        double l = exp(-mean);
        double prod = rng_unit(r);
        uint64_t k = 0;

        while (prod > l) {
            k++;
            prod *= rng_unit(r);
        }
        return k < n ? k : n;
    }
    x = floor(mean + sqrt(mean * (1.0 - p)) * rng_normal(r) + 0.5);
    return x < 0.0 ? 0 : x > (double)n ? n : (uint64_t)x;
}

static int vitem_before(const struct vitem *a, const struct vitem *b)
{
    return a->t < b->t || (a->t == b->t && a->tie < b->tie);
}

static int vsim_push(struct vsim *s, struct vitem it)
{
    size_t i;

    if (grow((void **)&s->heap, &s->heap_cap, s->heap_len + 1, sizeof(*s->heap)) != 0) {
        return -1;
    }
    it.tie = s->tie++;
    i = s->heap_len++;
    while (i > 0 && vitem_before(&it, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = it;
    return 0;
}

static struct vitem vsim_pop(struct vsim *s)
{
    struct vitem top = s->heap[0];
    struct vitem last = s->heap[--s->heap_len];
    size_t i = 0;

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= s->heap_len) {
            break;
        }
        if (c + 1 < s->heap_len && vitem_before(&s->heap[c + 1], &s->heap[c])) {
            c++;
        }
        if (!vitem_before(&s->heap[c], &last)) {
            break;
        }
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->heap_len > 0) {
        s->heap[i] = last;
    }
    return top;
}

/* Appends an event; returns its local index + 1, or 0 when out of memory. */
static uint32_t vsim_emit(struct vsim *s, double t, enum smm_event_type type, uint32_t user,
                          uint32_t parent, int64_t followers, int follows)
{
    struct vlocal *e;

    if (grow((void **)&s->ev, &s->ev_cap, s->ev_len + 1, sizeof(*s->ev)) != 0) {
        return 0;
    }
    e = &s->ev[s->ev_len++];
    e->t = t;
    e->type = (uint8_t)type;
    e->user = user;
    e->parent = parent;
    e->followers = followers;
    e->follows = (int8_t)follows;
    return (uint32_t)s->ev_len;
}

/* Adds user to the post's viewers: 1 when new, 0 when it had seen the post already. */
static int vsim_viewer_add(struct vsim *s, uint32_t user)
{
    size_t mask = s->set_mask;
    size_t i = (size_t)mix64(user) & mask;

    while (s->set[i] != 0) {
        if (s->set[i] == user + 1) {
            return 0;
        }
        i = (i + 1) & mask;
    }
    s->set[i] = user + 1;
    s->viewers[s->viewers_len++] = user;
    return 1;
}

/* A random user; deep chains pass their sharers through ordinary users (a cap on followers),
 * so that no accidental hub turns them into a broadcast. */
static uint32_t vsim_pick_user(const struct gen *g, struct rng *r, int64_t max_followers)
{
    uint32_t u = (uint32_t)rng_below(r, g->opts->users);

    for (int i = 0; i < 64 && max_followers > 0 && user_followers(g, u) > max_followers; i++) {
        u = (uint32_t)rng_below(r, g->opts->users);
    }
    return u;
}

/* A user with at least min_followers followers (the broadcast hub); the best of 10^6 draws
 * when the tail is too thin. */
static uint32_t vsim_pick_hub(const struct gen *g, struct rng *r, int64_t min_followers)
{
    uint32_t best = (uint32_t)rng_below(r, g->opts->users);

    for (int i = 0; i < 1000000 && user_followers(g, best) < min_followers; i++) {
        uint32_t u = (uint32_t)rng_below(r, g->opts->users);

        if (user_followers(g, u) > user_followers(g, best)) {
            best = u;
        }
    }
    return best;
}

/* Schedules the n viewers that one share (or the post, via = 0) exposes. Spreading stops at
 * vp->target viewers anyway, so n is capped at twice that: a sharer with 10^7 followers must
 * not fill memory. */
static int vsim_expose(struct vsim *s, struct rng *r, const struct vpost *vp, double t,
                       uint64_t n, uint32_t via, uint32_t depth)
{
    n = n > 2 * (uint64_t)vp->target + 16 ? 2 * (uint64_t)vp->target + 16 : n;
    for (uint64_t i = 0; i < n; i++) {
        struct vitem it;

        memset(&it, 0, sizeof(it));
        it.kind = VI_EXPOSE;
        it.t = t + rng_lognormal(r, V_VIEW_MEDIAN_S, 1.0);
        it.via = via;
        it.depth = depth;
        /* The post reaches mostly the author's followers (plus 15 % found by the feed); a
         * share reaches the sharer's followers, 15 % of whom follow the author too. */
        it.follows = (int8_t)(via == 0 ? rng_unit(r) < 0.85 : rng_unit(r) < 0.15);
        if (vp->shape == VS_DEEP) {
            it.q = (via == 0 ? V_DEEP_R0 : V_DEEP_R) / (double)n;
            it.q = it.q > 1.0 ? 1.0 : it.q;
        } else {
            it.q = vp->shape == VS_ORGANIC ? 0.005 : 0.003;
        }
        if (vsim_push(s, it) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Runs one post's cascade, a self-exciting branching process in natural time: the post
 * exposes some of the author's followers; each viewer may re-share after a delay; a share
 * exposes some of the sharer's followers, who view after a delay, and so on. Spreading stops
 * once vp->target distinct users have seen the post (saturation); pending likes and repeat
 * views of those users still happen. Fills vp's simulation fields and s->ev. */
static int vsim_run(const struct gen *g, struct vsim *s, struct rng *r, struct vpost *vp)
{
    double p_view = vp->shape == VS_DEEP ? 0.10 : 0.06; /* a sharer's follower sees it */
    double p_like = vp->shape == VS_ORGANIC ? 0.04 : 0.06;
    int64_t max_f = vp->shape == VS_DEEP ? V_DEEP_MAX_FOLLOWERS : 0;
    uint64_t root = rng_binomial(r, (uint64_t)vp->author_followers, vp->p_org);
    uint64_t hub_at = 0; /* broadcast: the hub is the hub_at-th viewer reached by the post */
    uint64_t root_seen = 0;
    size_t need = 256;

    s->heap_len = 0;
    s->tie = 0;
    s->ev_len = 0;
    s->viewers_len = 0;
    vp->reach = vp->shares = vp->max_depth = 0;
    vp->hub_followers = 0;
    while (need < 2 * (size_t)vp->target + 16) {
        need *= 2;
    }
    if (grow((void **)&s->set, &s->set_cap, need, sizeof(*s->set)) != 0 ||
        grow((void **)&s->viewers, &s->viewers_cap, vp->target + 1, sizeof(*s->viewers)) != 0) {
        return -1;
    }
    memset(s->set, 0, need * sizeof(*s->set));
    s->set_mask = need - 1;

    root = root < 1 ? 1 : root;
    if (vp->shape == VS_BROADCAST) {
        hub_at = 3 + rng_below(r, 12);
        hub_at = hub_at > root ? root : hub_at;
    }
    if (vsim_expose(s, r, vp, 0.0, root, 0, 0) != 0) {
        return -1;
    }
    while (s->heap_len > 0) {
        struct vitem it = vsim_pop(s);
        int spreading = vp->reach < vp->target;
        uint32_t idx;

        switch (it.kind) {
        case VI_EXPOSE: {
            int fresh = 0;
            uint32_t user;
            struct vitem nx;

            if (!spreading) {
                break;
            }
            root_seen += it.via == 0;
            if (hub_at > 0 && root_seen == hub_at && it.via == 0) {
                user = vsim_pick_hub(g, r, (int64_t)(20.0 * vp->target) > 5000
                                               ? (int64_t)(20.0 * vp->target) : 5000);
                fresh = vsim_viewer_add(s, user);
                it.q = fresh ? 1.0 : 0.0;
            } else if (s->viewers_len > 0 && rng_unit(r) < 0.04) {
                user = s->viewers[rng_below(r, s->viewers_len)]; /* seen it via someone else */
            } else {
                user = vsim_pick_user(g, r, max_f);
                fresh = vsim_viewer_add(s, user);
            }
            if (vsim_emit(s, it.t, rng_unit(r) < 0.75 ? SMM_EV_IMPRESSION : SMM_EV_VIEW, user, 0,
                          0, it.follows) == 0) {
                return -1;
            }
            if (!fresh) {
                break;
            }
            vp->reach++;
            memset(&nx, 0, sizeof(nx));
            nx.user = user;
            nx.follows = it.follows;
            if (rng_unit(r) < 0.3) {
                nx.kind = VI_AGAIN;
                nx.t = it.t + rng_lognormal(r, V_AGAIN_MEDIAN_S, 0.6);
                if (vsim_push(s, nx) != 0) {
                    return -1;
                }
            }
            for (int k = 0; k < 3; k++) {
                static const double p_other[3] = {0.0, 0.008, 0.012};
                static const uint8_t etype[3] = {SMM_EV_LIKE, SMM_EV_COMMENT, SMM_EV_CLICK};

                if (rng_unit(r) < (k == 0 ? p_like : p_other[k])) {
                    nx.kind = VI_ENGAGE;
                    nx.type = etype[k];
                    nx.t = it.t + rng_lognormal(r, V_ENGAGE_MEDIAN_S, 0.8);
                    if (vsim_push(s, nx) != 0) {
                        return -1;
                    }
                }
            }
            if (rng_unit(r) < it.q) {
                nx.kind = VI_SHARE;
                nx.hub = hub_at > 0 && root_seen == hub_at && it.via == 0;
                nx.via = it.via;
                nx.depth = it.depth + 1;
                nx.t = it.t + rng_lognormal(r, V_SHARE_MEDIAN_S, 0.7);
                if (vsim_push(s, nx) != 0) {
                    return -1;
                }
            }
            break;
        }
        case VI_SHARE: {
            int64_t f = user_followers(g, it.user);
            double p = p_view;

            if (!spreading) {
                break;
            }
            if (it.hub) {
                p = V_HUB_OVERSHOOT * (double)vp->target / (double)(f > 0 ? f : 1);
                p = p > 0.5 ? 0.5 : p;
                vp->hub_followers = f;
            }
            idx = vsim_emit(s, it.t, SMM_EV_SHARE, it.user, it.via, f, -1);
            if (idx == 0) {
                return -1;
            }
            vp->shares++;
            vp->max_depth = it.depth > vp->max_depth ? it.depth : vp->max_depth;
            if (vsim_expose(s, r, vp, it.t, rng_binomial(r, (uint64_t)f, p), idx, it.depth) != 0) {
                return -1;
            }
            break;
        }
        case VI_AGAIN:
            if (vsim_emit(s, it.t, SMM_EV_VIEW, it.user, 0, 0, it.follows) == 0) {
                return -1;
            }
            break;
        default:
            if (vsim_emit(s, it.t, (enum smm_event_type)it.type, it.user, 0, 0, -1) == 0) {
                return -1;
            }
            break;
        }
    }
    vp->n_events = (uint32_t)s->ev_len;
    return 0;
}

/* Whether a simulated cascade has the shape its role needs. */
static int vsim_fits(const struct vpost *vp)
{
    switch (vp->style) {
    case VS_BROADCAST:
        return vp->reach == vp->target && vp->hub_followers > 0;
    case VS_DEEP:
        return vp->reach == vp->target && vp->max_depth >= V_MIN_DEPTH;
    case VS_NEAR_MISS:
        return vp->reach == vp->target;
    default:
        return 1;
    }
}

static int vev_cmp(const void *a, const void *b)
{
    const struct vev *x = a;
    const struct vev *y = b;

    if (x->at_ms != y->at_ms) {
        return x->at_ms < y->at_ms ? -1 : 1;
    }
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

struct vscen {
    struct vpost *posts;
    uint32_t n_posts;
    struct vev *ev;
    size_t ev_len;
    size_t ev_cap;
    size_t n_views; /* events that reach their user (smm_event_type_reaches) */
    struct vtruth_slot *tab;
    size_t tab_cap;
};

/* Lays out the posts (roles, authors, start times), simulates every cascade and sorts the
 * whole scenario by time. Returns 0, or -1 after printing why. */
static int vscen_build(struct gen *g, struct vscen *sc)
{
    const struct gen_opts *opts = g->opts;
    uint32_t special = opts->cascades + opts->near_misses;
    uint32_t n = opts->posts + special;
    uint32_t org_accounts = opts->posts / 4 > 0 ? opts->posts / 4 : 1;
    double thr = (double)opts->viral_threshold;
    int64_t dur_ms = (int64_t)(opts->duration_s * 1000.0);
    int64_t casc_ms = (int64_t)(opts->cascade_s * 1000.0);
    int64_t *acct_followers = NULL;
    uint32_t *role = NULL; /* post index -> 0..special-1 for special posts, else special */
    struct vsim s;
    int rc = -1;

    memset(&s, 0, sizeof(s));
    sc->n_posts = n;
    sc->posts = calloc(n, sizeof(*sc->posts));
    acct_followers = malloc((size_t)org_accounts * sizeof(*acct_followers));
    role = malloc((size_t)n * sizeof(*role));
    if (sc->posts == NULL || acct_followers == NULL || role == NULL) {
        goto oom;
    }
    /* Organic accounts: log-uniform 200 .. 5 N followers, so that even the biggest one's
     * organic reach (2-8 % of its followers) stays under the threshold. */
    for (uint32_t a = 0; a < org_accounts; a++) {
        acct_followers[a] = (int64_t)rng_logu(&g->rng, 200.0, 5.0 * thr > 400.0 ? 5.0 * thr : 400.0);
    }
    /* Which post index gets which role: a seeded shuffle, so ids say nothing. */
    for (uint32_t i = 0; i < n; i++) {
        role[i] = i < special ? i : special;
    }
    for (uint32_t i = n - 1; i > 0; i--) {
        uint32_t j = (uint32_t)rng_below(&g->rng, (uint64_t)i + 1);
        uint32_t t = role[i];

        role[i] = role[j];
        role[j] = t;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct vpost *vp = &sc->posts[i];
        uint32_t k = role[i];

        vp->crossing_ts = -1;
        if (k == special) {
            vp->style = vp->shape = VS_ORGANIC;
            vp->account = (uint32_t)rng_below(&g->rng, org_accounts);
            vp->author_followers = acct_followers[vp->account];
            vp->target = (uint32_t)(0.45 * thr) > 0 ? (uint32_t)(0.45 * thr) : 1;
            vp->p_org = 0.02 + 0.06 * rng_unit(&g->rng);
            vp->span_ms = (int64_t)((0.3 + 0.7 * rng_unit(&g->rng)) * (double)casc_ms);
            vp->start_ms = (int64_t)(rng_unit(&g->rng) * (double)(dur_ms - vp->span_ms));
            continue;
        }
        /* Special posts have accounts of their own, after the organic ones; their starts are
         * spread evenly over the part of the run that leaves room for a whole cascade. */
        vp->account = org_accounts + k;
        if (k < opts->cascades) {
            vp->style = vp->shape = k % 2 == 0 ? VS_BROADCAST : VS_DEEP;
            vp->target = (uint32_t)ceil(thr * (1.5 + rng_unit(&g->rng)));
        } else {
            vp->style = VS_NEAR_MISS;
            vp->shape = k % 2 == 0 ? VS_BROADCAST : VS_DEEP;
            vp->target = (uint32_t)floor(thr * (0.6 + 0.3 * rng_unit(&g->rng)));
            vp->target = vp->target > 0 ? vp->target : 1;
        }
        if (vp->shape == VS_DEEP) {
            vp->author_followers = (int64_t)rng_logu(&g->rng, thr / 4.0 + 20.0, 2.0 * thr + 40.0);
            vp->p_org = 0.05;
        } else {
            vp->author_followers = (int64_t)rng_logu(&g->rng, thr / 2.0 + 20.0, 5.0 * thr + 40.0);
            vp->p_org = 0.02 + 0.06 * rng_unit(&g->rng);
        }
        vp->span_ms = (int64_t)((0.75 + 0.25 * rng_unit(&g->rng)) * (double)casc_ms);
        vp->start_ms = (int64_t)(((double)k + 0.8 * rng_unit(&g->rng)) / (double)special *
                                 (double)(dur_ms - casc_ms));
    }

    for (uint32_t i = 0; i < n; i++) {
        struct vpost *vp = &sc->posts[i];
        double last = 0.0;
        size_t base;
        int tries = 0;

        do {
            if (tries++ == V_MAX_TRIES) {
                fprintf(stderr, "smm-gen: post-%" PRIu32 " (%s): no cascade of that shape in %d"
                                " tries; change --seed or --viral-threshold\n",
                        i, vstyle_names[vp->style], V_MAX_TRIES);
                goto out;
            }
            if (vsim_run(g, &s, &g->rng, vp) != 0) {
                goto oom;
            }
        } while (!vsim_fits(vp));

        /* Compress natural time linearly into the post's span of wall time. */
        for (size_t e = 0; e < s.ev_len; e++) {
            last = s.ev[e].t > last ? s.ev[e].t : last;
        }
        if (sc->ev_len + s.ev_len > UINT32_MAX - 1 ||
            grow((void **)&sc->ev, &sc->ev_cap, sc->ev_len + s.ev_len, sizeof(*sc->ev)) != 0) {
            goto oom;
        }
        base = sc->ev_len;
        for (size_t e = 0; e < s.ev_len; e++) {
            struct vev *v = &sc->ev[sc->ev_len++];
            const struct vlocal *l = &s.ev[e];

            v->at_ms = vp->start_ms +
                       (last > 0.0 ? llround(l->t / last * (double)vp->span_ms) : 0);
            v->seq = (uint32_t)(base + e);
            v->post = i;
            v->user = l->user;
            v->parent = l->parent != 0 ? (uint32_t)(base + l->parent) : 0;
            v->followers = l->followers;
            v->type = l->type;
            v->follows = l->follows;
            sc->n_views += smm_event_type_reaches(l->type);
        }
    }
    qsort(sc->ev, sc->ev_len, sizeof(*sc->ev), vev_cmp);
    sc->tab_cap = 16;
    while (sc->tab_cap < 2 * sc->n_views + 16) {
        sc->tab_cap *= 2;
    }
    sc->tab = calloc(sc->tab_cap, sizeof(*sc->tab));
    if (sc->tab == NULL) {
        goto oom;
    }
    rc = 0;
    goto out;
oom:
    fprintf(stderr, "smm-gen: out of memory for the viral scenario\n");
out:
    free(s.heap);
    free(s.ev);
    free(s.viewers);
    free(s.set);
    free(acct_followers);
    free(role);
    return rc;
}

/* The number of distinct viewers of post `post` in the window that ends with the minute of
 * ts, after counting a view by `user` at ts. Requires non-decreasing ts. */
static uint32_t vtruth_view(struct vscen *sc, uint32_t post, uint32_t user, int64_t ts)
{
    struct vpost *vp = &sc->posts[post];
    int64_t m = ts / 60000; /* ts > 0 */
    uint64_t key = (((uint64_t)post << 32) | user) + 1;
    size_t mask = sc->tab_cap - 1;
    size_t i = (size_t)mix64(key) & mask;
    int slot = (int)(m % V_RING);
    uint32_t sum = 0;

    while (sc->tab[i].key != 0 && sc->tab[i].key != key) {
        i = (i + 1) & mask;
    }
    if (vp->win_minute[slot] != m) {
        vp->win_minute[slot] = m;
        vp->win_cnt[slot] = 0;
    }
    if (sc->tab[i].key == 0) {
        sc->tab[i].key = key;
        sc->tab[i].minute = m;
        vp->win_cnt[slot]++;
    } else if (sc->tab[i].minute != m) {
        int64_t lm = sc->tab[i].minute;
        int old = (int)(lm % V_RING);

        if (vp->win_minute[old] == lm) {
            vp->win_cnt[old]--;
        }
        sc->tab[i].minute = m;
        vp->win_cnt[slot]++;
    }
    for (int64_t k = m - V_WIN_MINUTES + 1; k <= m; k++) {
        int ks = (int)(k % V_RING);

        if (k >= 0 && vp->win_minute[ks] == k) {
            sum += vp->win_cnt[ks];
        }
    }
    return sum;
}

static void put_opt_ms(FILE *f, const char *key, int64_t v)
{
    if (v < 0) {
        fprintf(f, ",\"%s\":null", key);
    } else {
        fprintf(f, ",\"%s\":%" PRId64, key, v);
    }
}

/* One JSON line per post (see --help). Returns 0, or -1 after printing why. */
static int vtruth_write(const struct vscen *sc, const struct gen_opts *opts)
{
    FILE *f = fopen(opts->truth_path, "w");

    if (f == NULL) {
        fprintf(stderr, "smm-gen: --truth: %s: %s\n", opts->truth_path, strerror(errno));
        return -1;
    }
    for (uint32_t i = 0; i < sc->n_posts; i++) {
        const struct vpost *vp = &sc->posts[i];

        fprintf(f, "{\"content_id\":\"post-%" PRIu32 "\",\"account_id\":\"acct-%" PRIu32
                   "\",\"planted\":%s,\"style\":\"%s\",\"threshold\":%" PRIu32
                   ",\"author_followers\":%" PRId64 ",\"target_reach\":%" PRIu32
                   ",\"reach\":%" PRIu32 ",\"peak_reach_5m\":%" PRIu32 ",\"shares\":%" PRIu32
                   ",\"max_depth\":%" PRIu32 ",\"hub_followers\":%" PRId64 ",\"events\":%" PRIu32,
                i, vp->account,
                vp->style == VS_BROADCAST || vp->style == VS_DEEP ? "true" : "false",
                vstyle_names[vp->style], opts->viral_threshold, vp->author_followers, vp->target,
                vp->reach, vp->peak_5m, vp->shares, vp->max_depth, vp->hub_followers,
                vp->n_emitted);
        put_opt_ms(f, "first_ms", vp->n_emitted > 0 ? vp->first_ts : -1);
        put_opt_ms(f, "last_ms", vp->n_emitted > 0 ? vp->last_ts : -1);
        put_opt_ms(f, "crossing_ms", vp->crossing_ts);
        fprintf(f, "}\n");
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "smm-gen: --truth: %s: %s\n", opts->truth_path, strerror(errno));
        return -1;
    }
    return 0;
}

/* --scenario viral: builds the scenario, then writes it (in real time unless --start-ms) and
 * the ground truth. Returns the exit status. */
static int viral_main(const struct gen_opts *opts_in)
{
    struct gen_opts opts = *opts_in;
    struct gen *g = calloc(1, sizeof(*g));
    struct vscen sc;
    struct kafka_out ko;
    struct progress pr;
    struct rng demo_rng;
    uint32_t *emit_n = NULL; /* seq -> event number n */
    char *buf = malloc(GEN_BUF_SIZE);
    char key[64];
    int64_t t0_ns;
    int64_t prev_ts = 0;
    uint64_t n = 0;
    uint32_t k_posts[4] = {0, 0, 0, 0};
    int rc = 1;

    memset(&sc, 0, sizeof(sc));
    memset(&ko, 0, sizeof(ko));
    memset(&pr, 0, sizeof(pr));
    if (g == NULL || buf == NULL) {
        fprintf(stderr, "smm-gen: out of memory\n");
        goto out;
    }
    g->opts = &opts;
    rng_seed(&g->rng, opts.seed, 4);
    rng_seed(&demo_rng, opts.seed, 5);
    g->salt = mix64(opts.seed ^ 0x5bd1e9955bd1e995ULL);
    g->id_prefix_len = (size_t)snprintf(g->id_prefix, sizeof(g->id_prefix), "%" PRIu64 "-",
                                        opts.seed);
    if (vscen_build(g, &sc) != 0) {
        goto out;
    }
    emit_n = malloc((sc.ev_len + 1) * sizeof(*emit_n));
    if (emit_n == NULL) {
        fprintf(stderr, "smm-gen: out of memory\n");
        goto out;
    }
    for (uint32_t i = 0; i < sc.n_posts; i++) {
        k_posts[sc.posts[i].style]++;
    }
    opts.count = sc.ev_len; /* for the progress percentage */
    if (!opts.quiet) {
        fprintf(stderr, "smm-gen: viral scenario: %" PRIu32 " posts (%" PRIu32 " broadcast + %"
                        PRIu32 " deep planted, %" PRIu32 " near misses, %" PRIu32
                        " organic), %zu events over %.1f s, threshold %" PRIu32 " viewers/5m%s\n",
                sc.n_posts, k_posts[VS_BROADCAST], k_posts[VS_DEEP], k_posts[VS_NEAR_MISS],
                k_posts[VS_ORGANIC], sc.ev_len, opts.duration_s, opts.viral_threshold,
                opts.start_set ? "" : ", real time");
    }
    if (opts.to_stdout) {
        setvbuf(stdout, NULL, _IOFBF, 1 << 20);
    } else if ((rc = kafka_open(&ko, &opts)) != 0) {
        goto out;
    }
    rc = 1;

    pr.on = !opts.quiet && (opts.progress || isatty(STDERR_FILENO));
    t0_ns = mono_ns();
    pr.t0_ns = pr.last_ns = t0_ns;
    pr.next_ns = t0_ns + 1000000000LL;
    for (n = 0; n < sc.ev_len && stop_requested == 0; n++) {
        const struct vev *v = &sc.ev[n];
        struct vpost *vp = &sc.posts[v->post];
        struct gen_event ev;
        int64_t ts;
        size_t len;

        if (opts.start_set) {
            ts = opts.start_ms + v->at_ms;
        } else {
            int64_t due = t0_ns + v->at_ms * 1000000LL;
            int64_t now = mono_ns();

            if (due > now) {
                if (opts.to_stdout) {
                    fflush(stdout);
                } else {
                    rd_kafka_poll(ko.rk, 0);
                }
                sleep_ns(due - now);
                if (stop_requested != 0) {
                    break;
                }
            }
            ts = wall_ms();
        }
        ts = ts < prev_ts ? prev_ts : ts; /* the truth needs time order; a clock step back */
        prev_ts = ts;
        emit_n[v->seq] = (uint32_t)n;

        memset(&ev, 0, sizeof(ev));
        ev.type = (enum smm_event_type)v->type;
        ev.n = n;
        ev.ts_ms = ts;
        ev.content = v->post;
        ev.account = vp->account;
        ev.user = v->user;
        ev.has_content = 1;
        ev.has_author_followers = 1;
        ev.author_followers = vp->author_followers;
        ev.follows_author = v->follows;
        ev.source = -1;
        ev.region = -1;
        ev.segment = -1;
        if (ev.type == SMM_EV_SHARE) {
            ev.has_followers = 1;
            ev.followers = v->followers;
            if (v->parent != 0) {
                ev.has_parent = 1;
                ev.parent = emit_n[v->parent - 1]; /* a parent share comes first */
            }
        } else if (ev.type == SMM_EV_CLICK) {
            pick_source(g, &ev.source, &ev.campaign);
        }
        if (rng_unit(&demo_rng) >= 0.05) {
            uint64_t h = user_hash(g, ev.user);

            ev.region = pick_cum16(region_cum, 5, (uint32_t)(h & 0xffff));
            ev.segment = pick_cum16(segment_cum, 4, (uint32_t)((h >> 16) & 0xffff));
        }
        if (opts.ts_format == TS_RFC3339) {
            ev.rfc3339 = 1;
        } else if (opts.ts_format == TS_MIXED) {
            ev.rfc3339 = rng_unit(&demo_rng) < opts.rfc3339_share;
        }
        len = render(g, &ev, BAD_NONE, 0, buf);

        /* Ground truth from exactly what is written. */
        if (vp->n_emitted++ == 0) {
            vp->first_ts = ts;
        }
        vp->last_ts = ts;
        if (smm_event_type_reaches(ev.type)) {
            uint32_t reach = vtruth_view(&sc, v->post, v->user, ts);

            vp->peak_5m = reach > vp->peak_5m ? reach : vp->peak_5m;
            if (vp->crossing_ts < 0 && reach >= opts.viral_threshold) {
                vp->crossing_ts = ts;
            }
        }

        if (opts.to_stdout) {
            buf[len] = '\n';
            if (fwrite(buf, 1, len + 1, stdout) != len + 1) {
                fprintf(stderr, "smm-gen: stdout: %s\n", strerror(errno));
                goto out;
            }
        } else {
            size_t key_len = render_key(&ev, key);

            if (kafka_send(&ko, buf, len, key, key_len) != 0 || ko.fatal) {
                n++;
                goto drain;
            }
            if ((n & 255) == 0) {
                rd_kafka_poll(ko.rk, 0);
            }
        }
        if ((n & 1023) == 0) {
            progress_tick(&pr, &opts, n + 1, mono_ns(), -1);
        }
    }

drain:
    if (opts.to_stdout) {
        if (fflush(stdout) != 0 || ferror(stdout)) {
            fprintf(stderr, "smm-gen: stdout: %s\n", strerror(errno));
            goto out;
        }
        rc = 0;
    } else {
        kafka_drain(&ko, &pr, &opts, n);
        printf("produced %" PRIu64 " messages (0 malformed) in %.2f s (%.0f msg/s)\n",
               ko.delivered, (double)(mono_ns() - t0_ns) / 1e9,
               (double)ko.delivered * 1e9 / (double)(mono_ns() - t0_ns + 1));
        fflush(stdout);
        rc = 0;
        if (ko.failed > 0 || ko.delivered != n || ko.fatal) {
            fprintf(stderr, "smm-gen: %" PRIu64 " of %" PRIu64 " messages not delivered%s%s\n",
                    n - ko.delivered, n, ko.failed > 0 ? "; first error: " : "",
                    ko.failed > 0 ? ko.first_err : "");
            rc = 1;
        }
    }
    if (n < sc.ev_len) {
        fprintf(stderr, "smm-gen: interrupted after %" PRIu64 " of %zu events; the truth covers"
                        " what was written\n", n, sc.ev_len);
        rc = 1;
    }
    if (opts.truth_path != NULL && vtruth_write(&sc, &opts) != 0) {
        rc = 1;
    }

out:
    kafka_close(&ko);
    free(sc.posts);
    free(sc.ev);
    free(sc.tab);
    free(emit_n);
    free(g);
    free(buf);
    return rc;
}

/* ---- setup and main loop ---- */

static int gen_init(struct gen *g, const struct gen_opts *opts)
{
    struct rng perm_rng;
    double total = 0.0;
    double acc = 0.0;
    int len;

    memset(g, 0, sizeof(*g));
    g->opts = opts;
    rng_seed(&g->rng, opts->seed, 1);
    rng_seed(&g->bad_rng, opts->seed, 2);
    rng_seed(&perm_rng, opts->seed, 3);
    g->salt = mix64(opts->seed ^ 0x5bd1e9955bd1e995ULL);

    for (int t = 0; t < SMM_EV__COUNT; t++) {
        total += opts->mix[t];
    }
    for (int t = 0; t < SMM_EV__COUNT; t++) {
        acc += opts->mix[t];
        g->type_cum[t] = acc / total;
    }
    /* The last type with a weight takes every u up to 1, so rounding in acc / total can never
     * hand a draw to a zero-weight type after it. */
    for (int t = SMM_EV__COUNT - 1; t >= 0; t--) {
        if (opts->mix[t] > 0.0) {
            g->type_cum[t] = 2.0;
            break;
        }
    }

    g->content_cdf = zipf_cdf_new(opts->contents, opts->zipf);
    g->rank_content = malloc((size_t)opts->contents * sizeof(*g->rank_content));
    g->share_slot = calloc(opts->contents, sizeof(*g->share_slot));
    if (opts->user_zipf > 0.0) {
        g->user_cdf = zipf_cdf_new(opts->users, opts->user_zipf);
    }
    if (g->content_cdf == NULL || g->rank_content == NULL || g->share_slot == NULL ||
        (opts->user_zipf > 0.0 && g->user_cdf == NULL)) {
        fprintf(stderr, "smm-gen: out of memory for --contents %" PRIu32 "\n", opts->contents);
        return -1;
    }
    /* Fisher-Yates: rank -> content index. */
    for (uint32_t i = 0; i < opts->contents; i++) {
        g->rank_content[i] = i;
    }
    for (uint32_t i = opts->contents - 1; i > 0; i--) {
        uint32_t j = (uint32_t)rng_below(&perm_rng, (uint64_t)i + 1);
        uint32_t tmp = g->rank_content[i];

        g->rank_content[i] = g->rank_content[j];
        g->rank_content[j] = tmp;
    }

    for (int k = 0; k < BAD__COUNT; k++) {
        if (opts->bad_enabled[k]) {
            g->bad_list[g->bad_list_len++] = k;
        }
    }
    len = snprintf(g->id_prefix, sizeof(g->id_prefix), "%" PRIu64 "-", opts->seed);
    g->id_prefix_len = (size_t)len;
    return 0;
}

static void gen_free(struct gen *g)
{
    free(g->content_cdf);
    free(g->rank_content);
    free(g->user_cdf);
    free(g->share_slot);
    free(g->share_pool);
    free(g->sched);
}

/* The processor settings that match --families mentions: one competitor set per line. */
static void print_sov_sets(FILE *out, const char *line_prefix)
{
    for (size_t k = 0; k < sizeof(sov_sets) / sizeof(sov_sets[0]); k++) {
        fprintf(out, "%ssov.set.%s=", line_prefix, sov_sets[k].name);
        for (uint32_t a = sov_sets[k].first; a <= sov_sets[k].last; a++) {
            fprintf(out, "%sacct-%" PRIu32, a == sov_sets[k].first ? "" : ",", a);
        }
        fprintf(out, "\n");
    }
}

int main(int argc, char **argv)
{
    struct gen_opts opts;
    struct gen *g = NULL;
    struct kafka_out ko;
    struct progress pr;
    struct gen_event ev;
    struct sigaction sa;
    char *buf = NULL;
    char key[64];
    uint64_t n = 0;
    uint64_t bad_cnt = 0;
    int64_t t0_ns;
    double secs;
    int rc;

    rc = parse_args(argc, argv, &opts);
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    if (opts.print_config) {
        print_sov_sets(stdout, "");
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (opts.scenario == SCEN_VIRAL) {
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        return viral_main(&opts);
    }
    rc = 1;
    memset(&ko, 0, sizeof(ko));
    memset(&pr, 0, sizeof(pr));

    if (opts.rate <= 0.0 && !opts.start_set) {
        opts.start_ms = wall_ms() - opts.span_ms;
        if (!opts.quiet) {
            fprintf(stderr, "smm-gen: --start-ms %" PRId64 " (now - --span-ms); pass it to repeat"
                            " this run\n", opts.start_ms);
        }
    }
    if (!opts.quiet && (opts.families & FAM_MENTIONS)) {
        fprintf(stderr, "smm-gen: mentions of competitor brands; processor settings:\n");
        print_sov_sets(stderr, "smm-gen:   --set ");
    }
    if (!opts.quiet && (opts.families & FAM_CARE) && opts.rate <= 0.0 &&
        (double)opts.span_ms < 10.0 * 1000.0 * opts.reply_median_s) {
        fprintf(stderr, "smm-gen: note: --span-ms %" PRId64 " is short next to --reply-median-s "
                        "%g: replies due after the last event are not written\n",
                opts.span_ms, opts.reply_median_s);
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    g = malloc(sizeof(*g));
    buf = malloc(GEN_BUF_SIZE);
    if (g == NULL || buf == NULL) {
        fprintf(stderr, "smm-gen: out of memory\n");
        goto out;
    }
    if (gen_init(g, &opts) != 0) {
        goto out;
    }
    if (opts.to_stdout) {
        setvbuf(stdout, NULL, _IOFBF, 1 << 20);
    } else if ((rc = kafka_open(&ko, &opts)) != 0) {
        goto out;
    }
    rc = 1;

    pr.on = !opts.quiet && (opts.progress || isatty(STDERR_FILENO));
    t0_ns = mono_ns();
    pr.t0_ns = pr.last_ns = t0_ns;
    pr.next_ns = t0_ns + 1000000000LL;

    for (n = 0; (opts.count == 0 || n < opts.count) && stop_requested == 0; n++) {
        int64_t ts;
        int64_t clock;
        uint64_t variant = 0;
        int bad;
        int made;
        size_t len;

        if (opts.rate > 0.0) {
            int64_t due = t0_ns + (int64_t)((double)n * 1e9 / opts.rate);
            int64_t now = mono_ns();

            if (due > now) {
                if (opts.to_stdout) {
                    fflush(stdout); /* real-time consumers should see events when they happen */
                }
                sleep_ns(due - now);
                if (stop_requested != 0) {
                    break;
                }
            }
            ts = wall_ms();
        } else {
            double frac = ((double)n + rng_unit(&g->rng)) / (double)opts.count;

            ts = opts.start_ms + (int64_t)(frac * (double)opts.span_ms);
        }
        clock = ts;
        if (opts.disorder_ms > 0) {
            ts -= (int64_t)rng_below(&g->rng, (uint64_t)opts.disorder_ms + 1);
        }

        bad = gen_bad_pick(g, &variant);
        /* A planned care event whose time has come takes a well-formed slot (the clock
         * before --disorder-ms); bad slots get fresh events that plan nothing. */
        if (bad == BAD_NONE && g->sched_len > 0 && g->sched[0].emit_at <= clock) {
            sched_pop(g, &ev);
            ev.n = n;
            made = 0;
        } else {
            while ((made = gen_event_make(g, &ev, n, ts, bad == BAD_NONE)) == 1) {
            }
        }
        if (made != 0) {
            fprintf(stderr, "smm-gen: out of memory for planned replies\n");
            goto out;
        }
        len = render(g, &ev, bad, variant, buf);
        if (bad == BAD_NONE) {
            if (gen_remember(g, &ev) != 0) {
                fprintf(stderr, "smm-gen: out of memory for share history\n");
                goto out;
            }
        } else {
            bad_cnt++;
        }

        if (opts.to_stdout) {
            buf[len] = '\n';
            if (fwrite(buf, 1, len + 1, stdout) != len + 1) {
                fprintf(stderr, "smm-gen: stdout: %s\n", strerror(errno));
                goto out;
            }
        } else {
            size_t key_len = render_key(&ev, key);

            if (kafka_send(&ko, buf, len, key, key_len) != 0) {
                n++; /* the loop's n++ is skipped: count the message that failed */
                goto drain;
            }
            if ((n & 1023) == 0 || opts.rate > 0.0) {
                rd_kafka_poll(ko.rk, 0); /* serve delivery reports */
            }
            if (ko.fatal) {
                n++;
                goto drain;
            }
        }
        if ((n & 1023) == 0 || opts.rate > 0.0) {
            progress_tick(&pr, &opts, n + 1, mono_ns(), -1);
        }
    }

drain:
    if (opts.to_stdout) {
        if (fflush(stdout) != 0 || ferror(stdout)) {
            fprintf(stderr, "smm-gen: stdout: %s\n", strerror(errno));
            goto out;
        }
    } else {
        kafka_drain(&ko, &pr, &opts, n);
    }
    secs = (double)(mono_ns() - t0_ns) / 1e9;

    if (opts.to_stdout) {
        if (!opts.quiet) {
            fprintf(stderr, "smm-gen: wrote %" PRIu64 " messages (%" PRIu64
                            " malformed) in %.2f s (%.0f msg/s)\n",
                    n, bad_cnt, secs, secs > 0 ? (double)n / secs : 0.0);
        }
        rc = 0;
    } else {
        printf("produced %" PRIu64 " messages (%" PRIu64 " malformed) in %.2f s (%.0f msg/s)\n",
               ko.delivered, bad_cnt, secs, secs > 0 ? (double)ko.delivered / secs : 0.0);
        fflush(stdout);
        rc = 0;
        if (ko.failed > 0 || ko.delivered != n) {
            fprintf(stderr,
                    "smm-gen: %" PRIu64 " of %" PRIu64 " messages not delivered%s%s\n",
                    n - ko.delivered, n, ko.failed > 0 ? "; first error: " : "",
                    ko.failed > 0 ? ko.first_err : "");
            rc = 1;
        }
        if (ko.fatal) {
            rc = 1;
        }
    }
    if (stop_requested != 0 && opts.count != 0 && n < opts.count) {
        fprintf(stderr, "smm-gen: interrupted after %" PRIu64 " of %" PRIu64 " messages\n", n,
                opts.count);
        rc = 1;
    }

out:
    kafka_close(&ko);
    if (g != NULL) {
        gen_free(g);
    }
    free(g);
    free(buf);
    return rc;
}
