/* metrics/viral.h - per-post spread signals and the viral rule, in memory.
 *
 * The processor feeds every accepted content event to one struct smm_viral. Per post it
 * keeps (all event-time based, evaluated at a wall-clock `now` passed in):
 *   - the share cascade (metrics/virality.h: size, depth, breadth, exposure, structural
 *     virality) and an online SEISMIC estimator (metrics/seismic.h), both created at the
 *     post's first share;
 *   - unique reach and unique reach among non-followers (follows_author = false) in the
 *     last 5 and 60 minutes (metrics/reach_window.h): every user with a content event
 *     (seen or acted on: smm_event_type_reaches);
 *   - shares per minute over 5 and 60 minutes and the acceleration
 *         accel = (shares in the last 5 min - shares in the 5 min before) / 25  [1/min^2];
 *   - the share-velocity z-score against the same account's earlier posts at the same
 *     age: per account and age bucket (0-5, 5-15, 15-30, 30-60 min, 1-2, 2-6, 6-24 h,
 *     > 24 h) a running mean and variance (Welford) of spm_5m, to which each post adds the
 *     last value it had in a bucket when it ages out of it;
 *         z = (spm_5m - mean) / max(sd, sd_floor), 0 until the bucket has baseline_min
 *     samples.
 * and turns them into rule flags for the state machine (metrics/viral_state.h, stepped by
 * processor/pipeline.c; its writes commit in Redis with the counters they follow from):
 *   T      = max(reach_min, reach_alpha x author_followers)      the audience threshold
 *   ENTER  reach_5m >= T and every enabled extra rule holds (share_z, nf_share, depth,
 *          predicted final size; 0 = rule off)
 *   HOLD   reach_5m >= exit_frac x T        (viral stays viral while HOLD)
 *   RISE   reach_5m >= rise_frac x T, or share_z >= rise_z with spm_5m >= 1, or SEISMIC's
 *          conservative bound says supercritical with at least 10 shares and reach_5m >=
 *          rise_seismic_frac x T (early warning; the reach floor keeps small posts with a
 *          burst of shares from raising alarms)
 *
 * What is sent: smm_viral_take() returns the posts whose figures changed since the last
 * take (flush) or, on a tick, every post that is hot (a flag set, a non-normal state, or a
 * velocity that must decay on the leaderboard). A quiet post (no flag, state normal) is
 * rewritten at most every write_ms and then without SMM_VIRAL_EVAL: it cannot change state,
 * so no decision is made for it. The caller writes them and then calls
 * smm_viral_settle(): if the write did not apply, the posts are taken again next time.
 *
 * Memory: a post costs about 200 bytes plus its reach windows (metrics/reach_window.h,
 * tiny for small posts), its cascade (36 bytes per stored share, at most max_nodes) and
 * SEISMIC (at most 38 KB). At most max_posts posts are tracked; beyond that new posts are
 * not tracked (counted in `untracked`). A post idle (no event) for evict_ms whose state is
 * normal is evicted; its last figures stay in Redis.
 *
 * Not thread-safe: owned by the processor's loop. */
#ifndef SMM_METRICS_VIRAL_H
#define SMM_METRICS_VIRAL_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/event.h"
#include "metrics/seismic.h"
#include "metrics/virality.h"

#define SMM_VIRAL_ENTER 1u
#define SMM_VIRAL_HOLD 2u
#define SMM_VIRAL_RISE 4u
#define SMM_VIRAL_EVAL 8u /* run the state machine (else only store the figures) */

enum smm_viral_state { SMM_VS_NORMAL = 0, SMM_VS_RISING, SMM_VS_VIRAL, SMM_VS_COOLING };

struct smm_viral_rules {
    double reach_min;   /* T floor (unique viewers in 5 min) */
    double reach_alpha; /* T = max(reach_min, reach_alpha x author followers) */
    double share_z;     /* ENTER also needs share_z >= it; 0 = off */
    double nf_share;    /* ENTER also needs nf_share_5m >= it (percent); 0 = off */
    int64_t depth;      /* ENTER also needs cascade depth >= it; 0 = off */
    double predicted;   /* ENTER also needs predicted final size >= it; 0 = off */
    double rise_frac;   /* RISE at reach_5m >= rise_frac x T */
    double rise_z;      /* RISE at share_z >= rise_z (and >= 1 share/min); 0 = off */
    double exit_frac;   /* HOLD while reach_5m >= exit_frac x T */
    double rise_seismic_frac; /* SEISMIC's early warning needs reach_5m >= it x T too */
};

struct smm_viral_opts {
    struct smm_viral_rules rules; /* defaults; per-account overrides via set_rules */
    int max_nodes;                /* per cascade, see metrics/virality.h */
    int64_t max_posts;
    int64_t evict_ms;
    double n_star;      /* SEISMIC mean degree */
    double sd_floor;    /* z-score denominator floor, shares/min */
    int baseline_min;   /* samples before a baseline bucket is used */
    int64_t track_reach; /* figures are written for posts with shares or reach_5m >= this */
    int64_t write_ms;    /* quiet posts (no flag, normal) are rewritten at most this often */
};

/* What one post looks like now. */
struct smm_viral_signals {
    const char *content_id, *account_id; /* owned by the tracker; valid until next take */
    unsigned flags;                       /* SMM_VIRAL_* */
    int state;                            /* the mirrored state (enum smm_viral_state) */
    double threshold;                     /* T */
    double reach_5m, reach_1h, nf_reach_5m, nf_reach_1h, nf_share_5m, nf_share_1h;
    double spm_5m, spm_1h, accel, share_z;
    int has_cascade;
    struct smm_cascade_stats cascade;
    int has_estimate;
    struct smm_seismic_estimate est;
    int64_t first_ms, author_followers;
    char reasons[320]; /* "reach_5m 812 >= 500;share_z 4.1 >= 3", for alerts */
    /* The same rules in words, for people (metrics/alert_text.h), set when flags has
     * SMM_VIRAL_EVAL: `message` says why a post rises or goes viral (every rule that holds,
     * "reached 1,000 people in 5 minutes (its audience threshold is 1,000)"); `message_down`
     * says why it cools or goes back to normal (its reach against the level it fell
     * under: the level a viral post keeps when the mirrored state is viral or cooling,
     * else the early-warning level). The script picks one by the state it moves to. */
    char message[640];
    char message_down[320];
    /* Both down clauses, whatever the mirrored state (set with SMM_VIRAL_EVAL):
     * message_exit for a move down from viral or cooling, message_early from rising. The
     * decision (processor/pipeline.c) knows the state it moves from and picks one; empty
     * means message_down. */
    char message_exit[320];
    char message_early[320];
};

struct smm_viral;

/* Returns NULL with errstr on bad options or out of memory. */
struct smm_viral *smm_viral_new(const struct smm_viral_opts *o, char *errstr, size_t errstr_size);
void smm_viral_destroy(struct smm_viral *v);

/* Per-account rule override (copied). Returns SMM_OK or SMM_ERR (out of memory). */
int smm_viral_set_rules(struct smm_viral *v, const char *account_id,
                        const struct smm_viral_rules *r);

/* Folds one accepted event (content events only; others are ignored). now_ms is the
 * wall clock. Returns SMM_OK, or SMM_ERR on out-of-memory (nothing is lost: the counters
 * do not depend on it, the figures are just less complete). */
int smm_viral_observe(struct smm_viral *v, const struct smm_event *ev, int64_t now_ms);

/* Collects the posts to write (see above) into an array owned by v, valid until the next
 * take. tick = 1 on the wall-clock tick: also samples baselines, evicts idle posts and
 * adds the hot posts. Returns the count, or -1 on out-of-memory. */
int smm_viral_take(struct smm_viral *v, int64_t now_ms, int tick,
                   const struct smm_viral_signals **out);
/* After the write of the last take: applied = 1, or 0 to take those posts again. */
void smm_viral_settle(struct smm_viral *v, int applied);
/* Feed each Kafka message once: a share counts every time it is observed (an event_id
 * sent twice is two shares, as in the counters; docs/events.md), so the caller skips the
 * messages it re-reads after a rewind or a warm-up (processor/loop.c does, by offset). */

/* The state Redis reports for a post after a write (mirror). */
void smm_viral_set_state(struct smm_viral *v, const char *content_id, size_t len, int state);
/* Takes the post again at the next take (its decision was not applied: another writer
 * moved it first, or its state was not loaded yet). */
void smm_viral_retake(struct smm_viral *v, const char *content_id, size_t len);

int64_t smm_viral_posts(const struct smm_viral *v);     /* tracked posts */
int64_t smm_viral_cascades(const struct smm_viral *v);  /* posts with a share cascade */
int64_t smm_viral_untracked(const struct smm_viral *v); /* events of posts over max_posts */

const char *smm_viral_state_name(int state);
int smm_viral_state_parse(const char *name, size_t len);

#endif
