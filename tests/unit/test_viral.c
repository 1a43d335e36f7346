/* tests/unit/test_viral.c - the per-post signals and rule flags of metrics/viral.c,
 * against hand-computed values on a synthetic timeline (no clock, no services). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "metrics/viral.h"

#define M 60000LL
static const int64_t T0 = 28333334LL * M; /* a whole minute */

static struct smm_viral_opts opts(void)
{
    struct smm_viral_opts o = {
        .rules = {.reach_min = 100, .reach_alpha = 0, .rise_frac = 0.5, .rise_z = 3,
                  .exit_frac = 0.7},
        .max_nodes = 1000,
        .max_posts = 1000,
        .evict_ms = 10 * M,
        .n_star = 100,
        .sd_floor = 0.2,
        .baseline_min = 5,
        .track_reach = 0,
    };
    return o;
}

static struct smm_viral *new_viral(const struct smm_viral_opts *o)
{
    char err[128];
    struct smm_viral *v = smm_viral_new(o, err, sizeof(err));
    cr_assert(v, "%s", err);
    return v;
}

static void feed(struct smm_viral *v, enum smm_event_type type, const char *account,
                 const char *post, const char *id, const char *user, int64_t ts, int follows)
{
    struct smm_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.ts_ms = ts;
    ev.flags = SMM_EVF_CONTENT;
    snprintf(ev.account_id, sizeof(ev.account_id), "%s", account);
    snprintf(ev.content_id, sizeof(ev.content_id), "%s", post);
    snprintf(ev.event_id, sizeof(ev.event_id), "%s", id);
    if (user) {
        snprintf(ev.user_id, sizeof(ev.user_id), "%s", user);
        ev.flags |= SMM_EVF_USER;
    }
    if (follows >= 0) {
        ev.follows_author = follows;
        ev.flags |= SMM_EVF_FOLLOWS_AUTHOR;
    }
    cr_assert(smm_viral_observe(v, &ev, ts) == SMM_OK);
}

static void views(struct smm_viral *v, const char *account, const char *post, int n,
                  int64_t ts)
{
    for (int i = 0; i < n; i++) {
        char id[32], user[32];
        snprintf(id, sizeof(id), "%s-v%d", post, i);
        snprintf(user, sizeof(user), "u%d", i);
        feed(v, SMM_EV_IMPRESSION, account, post, id, user, ts, -1);
    }
}

static void shares(struct smm_viral *v, const char *account, const char *post, int from, int n,
                   int64_t ts)
{
    for (int i = from; i < from + n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "%s-s%d", post, i);
        feed(v, SMM_EV_SHARE, account, post, id, "x", ts, -1);
    }
}

static const struct smm_viral_signals *find(const struct smm_viral_signals *s, int n,
                                            const char *post)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(s[i].content_id, post) == 0) {
            return &s[i];
        }
    }
    return NULL;
}

Test(viral, reach_and_non_followers_in_windows)
{
    struct smm_viral_opts o = opts();
    struct smm_viral *v = new_viral(&o);
    for (int i = 0; i < 30; i++) {
        char id[16], user[16];
        snprintf(id, sizeof(id), "e%d", i);
        snprintf(user, sizeof(user), "u%d", i);
        /* 10 non-followers, 10 followers, 10 unknown */
        feed(v, i % 3 == 0 ? SMM_EV_VIEW : SMM_EV_IMPRESSION, "a", "p", id, user, T0,
             i < 10 ? 0 : (i < 20 ? 1 : -1));
    }
    feed(v, SMM_EV_IMPRESSION, "a", "p", "again", "u3", T0 + 1000, 0); /* seen before */
    const struct smm_viral_signals *s;
    int n = smm_viral_take(v, T0 + 2000, 0, &s);
    cr_assert_eq(n, 1);
    cr_expect_float_eq(s[0].reach_5m, 30, 1e-9);
    cr_expect_float_eq(s[0].nf_reach_5m, 10, 1e-9);
    cr_expect_float_eq(s[0].nf_share_5m, 100.0 / 3, 1e-9);
    cr_expect_eq(s[0].has_cascade, 0);
    smm_viral_settle(v, 1);
    /* Six minutes on: out of the 5-minute window, still in the hour. */
    n = smm_viral_take(v, T0 + 6 * M, 1, &s);
    cr_assert_eq(n, 0, "a quiet normal post without shares is not rewritten");
    feed(v, SMM_EV_IMPRESSION, "a", "p", "late", "u99", T0 + 6 * M, 1);
    n = smm_viral_take(v, T0 + 6 * M, 0, &s);
    cr_assert_eq(n, 1);
    cr_expect_float_eq(s[0].reach_5m, 1, 1e-9);
    cr_expect_float_eq(s[0].reach_1h, 31, 1e-9);
    cr_expect_float_eq(s[0].nf_reach_1h, 10, 1e-9);
    smm_viral_destroy(v);
}

/* A user who only liked, commented, clicked or shared was reached as much as a viewer: the
 * viral reach figures (and their non-follower part) count every content event's user. */
Test(viral, reach_counts_users_who_only_acted)
{
    struct smm_viral_opts o = opts();
    struct smm_viral *v = new_viral(&o);
    feed(v, SMM_EV_IMPRESSION, "a", "p", "e0", "viewer", T0, 1);
    feed(v, SMM_EV_LIKE, "a", "p", "e1", "liker", T0, 0);
    feed(v, SMM_EV_SHARE, "a", "p", "e2", "sharer", T0, 0);
    feed(v, SMM_EV_COMMENT, "a", "p", "e3", "commenter", T0, -1);
    feed(v, SMM_EV_UNLIKE, "a", "p", "e4", "unliker", T0, -1);
    feed(v, SMM_EV_CLICK, "a", "p", "e5", "clicker", T0, -1);
    feed(v, SMM_EV_LIKE, "a", "p", "e6", "viewer", T0, 1); /* already reached */
    const struct smm_viral_signals *s;
    int n = smm_viral_take(v, T0 + 1000, 0, &s);
    cr_assert_eq(n, 1);
    cr_expect_float_eq(s[0].reach_5m, 6, 1e-9);
    cr_expect_float_eq(s[0].reach_1h, 6, 1e-9);
    cr_expect_float_eq(s[0].nf_reach_5m, 2, 1e-9, "the liker and the sharer");
    smm_viral_destroy(v);
}

/* Shares sent twice with the same event ids count twice, in the velocity and the cascade
 * alike, as the share counters do (event ids are not deduplicated, docs/events.md). */
Test(viral, share_velocity_acceleration_and_repeated_ids)
{
    struct smm_viral_opts o = opts();
    struct smm_viral *v = new_viral(&o);
    int64_t now = T0 + 20 * M;
    shares(v, "a", "p", 0, 3, now - 7 * M);  /* the 5 minutes before the last 5 */
    shares(v, "a", "p", 3, 10, now);          /* the last 5 minutes */
    shares(v, "a", "p", 3, 10, now);          /* sent again: the same event ids */
    shares(v, "a", "p", 100, 2, now - 30 * M); /* inside the hour only */
    const struct smm_viral_signals *s;
    int n = smm_viral_take(v, now, 0, &s);
    cr_assert_eq(n, 1);
    cr_expect_float_eq(s[0].spm_5m, 20.0 / 5, 1e-12);
    cr_expect_float_eq(s[0].spm_1h, 25.0 / 60, 1e-12);
    cr_expect_float_eq(s[0].accel, (20.0 - 3.0) / 25, 1e-12);
    cr_assert_eq(s[0].has_cascade, 1);
    cr_expect_eq(s[0].cascade.size, 25);
    cr_expect_eq(s[0].cascade.repeats, 10);
    cr_expect_eq(s[0].cascade.max_depth, 1);
    cr_expect_eq(s[0].cascade.max_breadth, 25);
    smm_viral_destroy(v);
}

/* Five earlier posts of one account reach 1..5 shares/min in their first 5 minutes; a
 * new post at 8 shares/min at the same age scores z = (8 - 3) / sqrt(2.5). */
Test(viral, age_matched_z_score)
{
    struct smm_viral_opts o = opts();
    struct smm_viral *v = new_viral(&o);
    const struct smm_viral_signals *s;
    for (int q = 1; q <= 5; q++) {
        char post[8];
        snprintf(post, sizeof(post), "q%d", q);
        views(v, "acct", post, 1, T0); /* born at T0 */
        shares(v, "acct", post, 0, 5 * q, T0 + M);
    }
    int n = smm_viral_take(v, T0 + 4 * M, 0, &s);
    cr_assert_eq(n, 5);
    for (int i = 0; i < n; i++) {
        cr_expect_float_eq(s[i].share_z, 0, 1e-12, "no baseline yet");
    }
    smm_viral_settle(v, 1);
    /* At 6 minutes every post has left bucket 0: its last spm_5m joins the baseline. */
    smm_viral_take(v, T0 + 6 * M, 1, &s);
    smm_viral_settle(v, 1);
    views(v, "acct", "new", 1, T0 + 10 * M);
    shares(v, "acct", "new", 0, 40, T0 + 11 * M);
    n = smm_viral_take(v, T0 + 12 * M, 0, &s);
    const struct smm_viral_signals *x = find(s, n, "new");
    cr_assert(x);
    cr_expect_float_eq(x->spm_5m, 8, 1e-12);
    cr_expect_float_eq(x->share_z, 5.0 / sqrt(2.5), 1e-9);
    cr_expect(x->flags & SMM_VIRAL_RISE, "z >= rise_z with >= 1 share/min is an early warning");
    /* Another account has no baseline: z stays 0. */
    shares(v, "other", "o1", 0, 40, T0 + 11 * M);
    n = smm_viral_take(v, T0 + 12 * M, 0, &s);
    x = find(s, n, "o1");
    cr_assert(x);
    cr_expect_float_eq(x->share_z, 0, 1e-12);
    smm_viral_destroy(v);
}

Test(viral, rule_flags_threshold_and_overrides)
{
    struct smm_viral_opts o = opts();
    struct smm_viral *v = new_viral(&o);
    struct smm_viral_rules r = o.rules;
    r.reach_min = 10;
    cr_assert(smm_viral_set_rules(v, "small", &r) == SMM_OK);
    views(v, "a", "p60", 60, T0);    /* 60 >= 0.5 x 100: rising only */
    views(v, "a", "p75", 75, T0);    /* + above the exit level 70 */
    views(v, "a", "p100", 100, T0);  /* viral */
    views(v, "small", "s20", 20, T0); /* viral under the account's override (10) */
    const struct smm_viral_signals *s;
    int n = smm_viral_take(v, T0, 0, &s);
    cr_assert_eq(n, 4);
    cr_expect_eq(find(s, n, "p60")->flags, SMM_VIRAL_EVAL | SMM_VIRAL_RISE);
    cr_expect_eq(find(s, n, "p75")->flags, SMM_VIRAL_EVAL | SMM_VIRAL_RISE | SMM_VIRAL_HOLD);
    cr_expect_eq(find(s, n, "p100")->flags,
                 SMM_VIRAL_EVAL | SMM_VIRAL_RISE | SMM_VIRAL_HOLD | SMM_VIRAL_ENTER);
    cr_expect_str_eq(find(s, n, "p100")->reasons, "reach_5m 100 >= 100");
    /* The same rules in words (docs/alerts.md): why it rises, why it would fall. */
    cr_expect_str_eq(find(s, n, "p100")->message,
                     "reached 100 people in 5 minutes (its audience threshold is 100)");
    cr_expect_str_eq(find(s, n, "p60")->reasons, "reach_5m 60 >= 50");
    cr_expect_str_eq(find(s, n, "p60")->message,
                     "reached 60 people in 5 minutes, past the early-warning level of 50 (50% "
                     "of its audience threshold of 100)");
    cr_expect_eq(find(s, n, "s20")->flags & SMM_VIRAL_ENTER, SMM_VIRAL_ENTER);
    cr_expect_float_eq(find(s, n, "s20")->threshold, 10, 1e-12);
    smm_viral_settle(v, 1);
    /* Six minutes later nobody watches: why each would fall, by the state it is in. */
    smm_viral_set_state(v, "p60", 3, SMM_VS_RISING);
    smm_viral_set_state(v, "p100", 4, SMM_VS_VIRAL);
    n = smm_viral_take(v, T0 + 6 * M, 1, &s);
    cr_assert_not_null(find(s, n, "p60"));
    cr_expect_str_eq(find(s, n, "p60")->message_down,
                     "0 people saw it in the last 5 minutes, under the early-warning level "
                     "of 50, and it is shared 0.0 times a minute");
    cr_expect_str_eq(find(s, n, "p60")->message, "");
    cr_expect_str_eq(find(s, n, "p100")->message_down,
                     "0 people saw it in the last 5 minutes, under the 70 a viral post "
                     "must keep (70% of its audience threshold of 100)");
    smm_viral_settle(v, 1);
    smm_viral_destroy(v);

    /* alpha x author followers raises the bar; an extra rule (depth) must hold too. */
    o.rules.reach_alpha = 0.1;
    o.rules.depth = 2;
    v = new_viral(&o);
    struct smm_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = SMM_EV_LIKE;
    ev.ts_ms = T0;
    ev.flags = SMM_EVF_CONTENT | SMM_EVF_AUTHOR_FOLLOWERS;
    ev.author_followers = 2000;
    strcpy(ev.account_id, "a");
    strcpy(ev.content_id, "big");
    strcpy(ev.event_id, "l1");
    cr_assert(smm_viral_observe(v, &ev, T0) == SMM_OK);
    views(v, "a", "big", 150, T0);
    n = smm_viral_take(v, T0, 0, &s);
    cr_assert_eq(n, 1);
    cr_expect_float_eq(s[0].threshold, 200, 1e-12);
    cr_expect_eq(s[0].flags, SMM_VIRAL_EVAL | SMM_VIRAL_RISE | SMM_VIRAL_HOLD);
    smm_viral_settle(v, 1);
    views(v, "a", "big", 250, T0);
    n = smm_viral_take(v, T0, 0, &s);
    cr_expect_eq(s[0].flags & SMM_VIRAL_ENTER, 0, "depth 0 < 2: not viral yet");
    smm_viral_settle(v, 1);
    smm_viral_destroy(v);
}

Test(viral, settle_retakes_unapplied_and_mirror_keeps_hot)
{
    struct smm_viral_opts o = opts();
    struct smm_viral *v = new_viral(&o);
    views(v, "a", "p", 5, T0);
    const struct smm_viral_signals *s;
    cr_assert_eq(smm_viral_take(v, T0, 0, &s), 1);
    smm_viral_settle(v, 0); /* the write did not apply */
    cr_assert_eq(smm_viral_take(v, T0, 0, &s), 1, "taken again");
    smm_viral_settle(v, 1);
    cr_assert_eq(smm_viral_take(v, T0, 0, &s), 0, "nothing new");
    smm_viral_settle(v, 1);
    /* Redis says the post is viral: every tick re-evaluates it, events or not. */
    smm_viral_set_state(v, "p", 1, SMM_VS_VIRAL);
    cr_assert_eq(smm_viral_take(v, T0 + M, 1, &s), 1);
    cr_expect_eq(s[0].state, SMM_VS_VIRAL);
    smm_viral_settle(v, 1);
    smm_viral_destroy(v);
}

Test(viral, eviction_and_post_bound)
{
    struct smm_viral_opts o = opts();
    o.max_posts = 3;
    struct smm_viral *v = new_viral(&o);
    views(v, "a", "p1", 1, T0);
    views(v, "a", "p2", 1, T0);
    views(v, "a", "p3", 1, T0);
    views(v, "a", "p4", 1, T0); /* over the bound: not tracked */
    cr_expect_eq(smm_viral_posts(v), 3);
    cr_expect_eq(smm_viral_untracked(v), 1);
    const struct smm_viral_signals *s;
    smm_viral_take(v, T0, 0, &s);
    smm_viral_settle(v, 1);
    shares(v, "a", "p1", 0, 1, T0 + 5 * M);
    cr_expect_eq(smm_viral_cascades(v), 1);
    smm_viral_take(v, T0 + 5 * M, 0, &s);
    smm_viral_settle(v, 1);
    /* evict_ms = 10 min after the last event, by the wall clock passed in. */
    smm_viral_take(v, T0 + 11 * M, 1, &s);
    smm_viral_settle(v, 1);
    cr_expect_eq(smm_viral_posts(v), 1, "p2 and p3 evicted, p1 still active");
    /* p1's velocity decays on the leaderboard, then it goes too. */
    smm_viral_take(v, T0 + 16 * M, 1, &s);
    smm_viral_settle(v, 1);
    smm_viral_take(v, T0 + 16 * M, 1, &s);
    smm_viral_settle(v, 1);
    cr_expect_eq(smm_viral_posts(v), 0);
    cr_expect_eq(smm_viral_cascades(v), 0);
    smm_viral_destroy(v);
}

Test(viral, cascade_depth_and_seismic_estimate)
{
    struct smm_viral_opts o = opts();
    struct smm_viral *v = new_viral(&o);
    views(v, "a", "c", 1, T0);
    /* a chain: each share re-shares the previous one */
    for (int i = 0; i < 8; i++) {
        struct smm_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.type = SMM_EV_SHARE;
        ev.ts_ms = T0 + (i + 1) * 10000;
        ev.flags = SMM_EVF_CONTENT | SMM_EVF_FOLLOWERS | (i ? SMM_EVF_PARENT : 0);
        ev.followers = 50;
        strcpy(ev.account_id, "a");
        strcpy(ev.content_id, "c");
        snprintf(ev.event_id, sizeof(ev.event_id), "s%d", i);
        if (i) {
            snprintf(ev.parent_id, sizeof(ev.parent_id), "s%d", i - 1);
        }
        cr_assert(smm_viral_observe(v, &ev, ev.ts_ms) == SMM_OK);
    }
    const struct smm_viral_signals *s;
    cr_assert_eq(smm_viral_take(v, T0 + 2 * M, 0, &s), 1);
    cr_expect_eq(s[0].cascade.size, 8);
    cr_expect_eq(s[0].cascade.max_depth, 8);
    cr_expect_eq(s[0].cascade.exposure, 400);
    cr_expect_float_eq(s[0].cascade.virality, (9.0 + 1) / 3, 1e-9, "a chain of 9 nodes");
    cr_expect(s[0].has_estimate);
    cr_expect_eq(s[0].est.reshares, 8);
    smm_viral_settle(v, 1);
    smm_viral_destroy(v);
}

Test(viral, quiet_posts_rewritten_at_most_every_write_ms)
{
    struct smm_viral_opts o = opts();
    o.write_ms = 5000;
    struct smm_viral *v = new_viral(&o);
    const struct smm_viral_signals *s;
    shares(v, "a", "q", 0, 1, T0);
    cr_assert_eq(smm_viral_take(v, T0, 0, &s), 1, "first write at once");
    cr_expect_eq(s[0].flags, 0, "no flag, normal: no state machine run (no EVAL)");
    smm_viral_settle(v, 1);
    shares(v, "a", "q", 1, 1, T0 + 1000);
    cr_assert_eq(smm_viral_take(v, T0 + 1000, 0, &s), 0, "deferred: written 1 s ago");
    smm_viral_settle(v, 1);
    cr_assert_eq(smm_viral_take(v, T0 + 5000, 0, &s), 1, "still dirty, written when due");
    cr_expect_eq(s[0].cascade.size, 2);
    smm_viral_settle(v, 1);
    /* A flagged post is written on every take. */
    views(v, "a", "hot", 60, T0 + 5000);
    cr_assert_eq(smm_viral_take(v, T0 + 5000, 0, &s), 1);
    smm_viral_settle(v, 1);
    views(v, "a", "hot", 61, T0 + 5500);
    cr_assert_eq(smm_viral_take(v, T0 + 5500, 0, &s), 1);
    cr_expect(s[0].flags & SMM_VIRAL_EVAL);
    smm_viral_settle(v, 1);
    smm_viral_destroy(v);
}
