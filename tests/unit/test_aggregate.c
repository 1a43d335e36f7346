/* tests/unit/test_aggregate.c - per-partition pre-aggregation (metrics/aggregate.c).
 *
 * Events are built directly as struct smm_event (no JSON: this suite links smm_metrics
 * only, which proves metrics/ needs no I/O library). The table is read back through the
 * public iteration API into a small model (entity -> minute -> deltas) and compared with
 * totals the test computes itself, including after hash growth and after clear(). */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/aggregate.h"

/* The default engagement set: like, comment, share, click. */
#define DEFAULT_MASK                                                                              \
    ((1u << SMM_EV_LIKE) | (1u << SMM_EV_COMMENT) | (1u << SMM_EV_SHARE) | (1u << SMM_EV_CLICK))

static struct smm_agg *new_agg(unsigned mask)
{
    char err[128] = "";
    struct smm_agg *agg = smm_agg_new(mask, err, sizeof(err));
    cr_assert_not_null(agg, "smm_agg_new: %s", err);
    return agg;
}

static struct smm_event make_event(enum smm_event_type type, int64_t ts_ms, const char *account,
                                   const char *content, const char *user)
{
    struct smm_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.ts_ms = ts_ms;
    ev.flags = SMM_EVF_TS;
    snprintf(ev.event_id, sizeof(ev.event_id), "ev");
    snprintf(ev.account_id, sizeof(ev.account_id), "%s", account);
    if (content) {
        snprintf(ev.content_id, sizeof(ev.content_id), "%s", content);
        ev.flags |= SMM_EVF_CONTENT;
    }
    if (user) {
        snprintf(ev.user_id, sizeof(ev.user_id), "%s", user);
        ev.flags |= SMM_EVF_USER;
    }
    return ev;
}

static void add(struct smm_agg *agg, enum smm_event_type type, int64_t ts_ms,
                const char *account, const char *content, const char *user)
{
    struct smm_event ev = make_event(type, ts_ms, account, content, user);
    cr_assert_eq(smm_agg_add(agg, &ev), SMM_OK);
}

/* Index of the entity (kind, id), or -1. Linear: for small tables only. */
static int find_entity(const struct smm_agg *agg, enum smm_agg_kind kind, const char *id)
{
    int found = -1;
    for (int i = 0; i < smm_agg_entities(agg); i++) {
        const struct smm_agg_entity *e = smm_agg_entity(agg, i);
        if (e->kind == kind && strcmp(e->id, id) == 0) {
            cr_assert_eq(found, -1, "entity %d:%s listed twice", (int)kind, id);
            found = i;
        }
    }
    return found;
}

/* The minute block of entity i at `minute`, or NULL; checks the list has no repeats. */
static const struct smm_agg_minute *find_minute(const struct smm_agg *agg, int ent,
                                                int64_t minute)
{
    const struct smm_agg_minute *found = NULL;
    int guard = 0;
    for (int mi = smm_agg_entity(agg, ent)->first_minute; mi >= 0;) {
        const struct smm_agg_minute *m = smm_agg_minute_at(agg, mi);
        if (m->minute == minute) {
            cr_assert_null(found, "minute %lld listed twice", (long long)minute);
            found = m;
        }
        mi = m->next;
        cr_assert(++guard < 1000000, "minute list loops");
    }
    return found;
}

static int count_minutes(const struct smm_agg *agg, int ent)
{
    int n = 0;
    for (int mi = smm_agg_entity(agg, ent)->first_minute; mi >= 0;) {
        n++;
        mi = smm_agg_minute_at(agg, mi)->next;
        cr_assert(n < 1000000, "minute list loops");
    }
    return n;
}

static int64_t delta(const struct smm_agg *agg, enum smm_agg_kind kind, const char *id,
                     int64_t minute, int metric)
{
    int e = find_entity(agg, kind, id);
    cr_assert(e >= 0, "no entity %s", id);
    const struct smm_agg_minute *m = find_minute(agg, e, minute);
    cr_assert_not_null(m, "no minute %lld for %s", (long long)minute, id);
    return smm_agg_delta(m, metric);
}

/* Users of an entity as "minute/user" strings, newest first, into out (n returned). */
static int users_of(const struct smm_agg *agg, int ent, char out[][64], int max)
{
    int n = 0;
    for (int ui = smm_agg_entity(agg, ent)->first_user; ui >= 0;) {
        const struct smm_agg_user *u = smm_agg_user_at(agg, ui);
        cr_assert(n < max, "too many users");
        snprintf(out[n++], 64, "%lld/%s", (long long)u->minute, u->user);
        ui = u->next;
    }
    cr_assert_eq(n, smm_agg_entity(agg, ent)->n_users);
    return n;
}

Test(aggregate, new_destroy)
{
    struct smm_agg *agg = new_agg(DEFAULT_MASK);
    cr_assert_eq(smm_agg_entities(agg), 0);
    cr_assert_eq(smm_agg_events(agg), 0);
    smm_agg_destroy(agg);
    smm_agg_destroy(NULL);
}

Test(aggregate, engagement_signs)
{
    struct smm_agg *agg = new_agg(DEFAULT_MASK);
    cr_assert_eq(smm_agg_engagement_sign(agg, SMM_EV_LIKE), 1);
    cr_assert_eq(smm_agg_engagement_sign(agg, SMM_EV_UNLIKE), -1);
    cr_assert_eq(smm_agg_engagement_sign(agg, SMM_EV_COMMENT), 1);
    cr_assert_eq(smm_agg_engagement_sign(agg, SMM_EV_COMMENT_DELETE), -1);
    cr_assert_eq(smm_agg_engagement_sign(agg, SMM_EV_SHARE), 1);
    cr_assert_eq(smm_agg_engagement_sign(agg, SMM_EV_CLICK), 1);
    static const enum smm_event_type zero[] = {SMM_EV_IMPRESSION, SMM_EV_VIEW, SMM_EV_REFERRAL,
                                               SMM_EV_CONVERSION, SMM_EV_MENTION, SMM_EV_MESSAGE,
                                               SMM_EV_REPLY, SMM_EV_FOLLOW};
    for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++) {
        cr_assert_eq(smm_agg_engagement_sign(agg, zero[i]), 0, "%s",
                     smm_event_type_name(zero[i]));
    }
    smm_agg_destroy(agg);

    /* Without like in the set, unlike subtracts nothing; same for comment/comment_delete. */
    agg = new_agg((1u << SMM_EV_SHARE) | (1u << SMM_EV_CONVERSION));
    cr_assert_eq(smm_agg_engagement_sign(agg, SMM_EV_LIKE), 0);
    cr_assert_eq(smm_agg_engagement_sign(agg, SMM_EV_UNLIKE), 0);
    cr_assert_eq(smm_agg_engagement_sign(agg, SMM_EV_COMMENT), 0);
    cr_assert_eq(smm_agg_engagement_sign(agg, SMM_EV_COMMENT_DELETE), 0);
    cr_assert_eq(smm_agg_engagement_sign(agg, SMM_EV_SHARE), 1);
    cr_assert_eq(smm_agg_engagement_sign(agg, SMM_EV_CONVERSION), 1);
    smm_agg_destroy(agg);

    agg = new_agg(0);
    for (int t = 0; t < SMM_EV__COUNT; t++) {
        cr_assert_eq(smm_agg_engagement_sign(agg, (enum smm_event_type)t), 0);
    }
    smm_agg_destroy(agg);
}

Test(aggregate, engagement_deltas)
{
    struct smm_agg *agg = new_agg(DEFAULT_MASK);
    const int64_t t = 600000; /* minute 10 */
    add(agg, SMM_EV_LIKE, t, "a", "c", NULL);
    add(agg, SMM_EV_LIKE, t + 1, "a", "c", NULL);
    add(agg, SMM_EV_UNLIKE, t + 2, "a", "c", NULL);
    add(agg, SMM_EV_COMMENT, t + 3, "a", "c", NULL);
    add(agg, SMM_EV_COMMENT_DELETE, t + 4, "a", "c", NULL);
    add(agg, SMM_EV_COMMENT_DELETE, t + 5, "a", "c", NULL);
    add(agg, SMM_EV_IMPRESSION, t + 6, "a", "c", NULL);
    add(agg, SMM_EV_SHARE, t + 7, "a", "c", NULL);
    /* +1 +1 -1 +1 -1 -1 +0 +1 = 1 */
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "c", 10, SMM_AGG_ENGAGEMENT), 1);
    cr_assert_eq(delta(agg, SMM_AGG_ACCOUNT, "a", 10, SMM_AGG_ENGAGEMENT), 1);
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "c", 10, SMM_EV_LIKE), 2);
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "c", 10, SMM_EV_UNLIKE), 1);
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "c", 10, SMM_EV_COMMENT_DELETE), 2);
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "c", 10, SMM_EV_IMPRESSION), 1);
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "c", 10, SMM_EV_VIEW), 0);
    cr_assert_eq(smm_agg_events(agg), 8);
    smm_agg_destroy(agg);

    /* like not in the set: unlikes leave engagement alone. */
    agg = new_agg(1u << SMM_EV_SHARE);
    add(agg, SMM_EV_UNLIKE, t, "a", "c", NULL);
    add(agg, SMM_EV_LIKE, t, "a", "c", NULL);
    add(agg, SMM_EV_SHARE, t, "a", "c", NULL);
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "c", 10, SMM_AGG_ENGAGEMENT), 1);
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "c", 10, SMM_EV_UNLIKE), 1);
    smm_agg_destroy(agg);
}

Test(aggregate, per_minute_split)
{
    struct smm_agg *agg = new_agg(DEFAULT_MASK);
    /* 59999 is the last ms of minute 0; 60000 starts minute 1. */
    add(agg, SMM_EV_VIEW, 0, "a", "c", NULL);
    add(agg, SMM_EV_VIEW, 59999, "a", "c", NULL);
    add(agg, SMM_EV_VIEW, 60000, "a", "c", NULL);
    add(agg, SMM_EV_LIKE, 119999, "a", "c", NULL);
    int c = find_entity(agg, SMM_AGG_CONTENT, "c");
    cr_assert(c >= 0);
    cr_assert_eq(count_minutes(agg, c), 2);
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "c", 0, SMM_EV_VIEW), 2);
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "c", 1, SMM_EV_VIEW), 1);
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "c", 1, SMM_EV_LIKE), 1);
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "c", 1, SMM_AGG_ENGAGEMENT), 1);
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "c", 0, SMM_AGG_ENGAGEMENT), 0);
    int a = find_entity(agg, SMM_AGG_ACCOUNT, "a");
    cr_assert_eq(count_minutes(agg, a), 2);
    smm_agg_destroy(agg);
}

Test(aggregate, negative_timestamps_floor)
{
    struct smm_agg *agg = new_agg(DEFAULT_MASK);
    /* floor(-1 / 60000) = -1, floor(-60000 / 60000) = -1, floor(-60001 / 60000) = -2. */
    add(agg, SMM_EV_VIEW, -1, "a", "c", NULL);
    add(agg, SMM_EV_VIEW, -60000, "a", "c", NULL);
    add(agg, SMM_EV_VIEW, -60001, "a", "c", NULL);
    add(agg, SMM_EV_VIEW, -120000, "a", "c", NULL);
    add(agg, SMM_EV_VIEW, 0, "a", "c", NULL);
    int c = find_entity(agg, SMM_AGG_CONTENT, "c");
    cr_assert_eq(count_minutes(agg, c), 3);
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "c", -1, SMM_EV_VIEW), 2);
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "c", -2, SMM_EV_VIEW), 2);
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "c", 0, SMM_EV_VIEW), 1);
    smm_agg_destroy(agg);
}

Test(aggregate, content_and_account)
{
    struct smm_agg *agg = new_agg(DEFAULT_MASK);
    add(agg, SMM_EV_LIKE, 60000, "acct", "post", NULL);
    add(agg, SMM_EV_MENTION, 60000, "acct", NULL, NULL);
    add(agg, SMM_EV_FOLLOW, 60000, "acct", NULL, NULL);
    add(agg, SMM_EV_MESSAGE, 60000, "other", NULL, NULL);
    cr_assert_eq(smm_agg_entities(agg), 3);
    cr_assert_eq(smm_agg_events(agg), 4);
    int c = find_entity(agg, SMM_AGG_CONTENT, "post");
    int a = find_entity(agg, SMM_AGG_ACCOUNT, "acct");
    int o = find_entity(agg, SMM_AGG_ACCOUNT, "other");
    cr_assert(c >= 0 && a >= 0 && o >= 0);
    /* Insertion order: content before its account. */
    cr_assert_eq(c, 0);
    cr_assert_eq(a, 1);
    cr_assert_eq(o, 2);
    /* The like counts under both. */
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "post", 1, SMM_EV_LIKE), 1);
    cr_assert_eq(delta(agg, SMM_AGG_ACCOUNT, "acct", 1, SMM_EV_LIKE), 1);
    /* Account-only events never touch the content. */
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "post", 1, SMM_EV_MENTION), 0);
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "post", 1, SMM_EV_FOLLOW), 0);
    cr_assert_eq(delta(agg, SMM_AGG_ACCOUNT, "acct", 1, SMM_EV_MENTION), 1);
    cr_assert_eq(delta(agg, SMM_AGG_ACCOUNT, "acct", 1, SMM_EV_FOLLOW), 1);
    cr_assert_eq(delta(agg, SMM_AGG_ACCOUNT, "other", 1, SMM_EV_MESSAGE), 1);
    /* No content entity was made for the account-only account. */
    cr_assert_eq(find_entity(agg, SMM_AGG_CONTENT, "other"), -1);
    cr_assert_eq(find_entity(agg, SMM_AGG_CONTENT, ""), -1);
    smm_agg_destroy(agg);
}

Test(aggregate, same_id_different_kinds)
{
    struct smm_agg *agg = new_agg(DEFAULT_MASK);
    add(agg, SMM_EV_VIEW, 0, "x", "x", NULL);
    add(agg, SMM_EV_MENTION, 0, "x", NULL, NULL);
    cr_assert_eq(smm_agg_entities(agg), 2);
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "x", 0, SMM_EV_VIEW), 1);
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "x", 0, SMM_EV_MENTION), 0);
    cr_assert_eq(delta(agg, SMM_AGG_ACCOUNT, "x", 0, SMM_EV_VIEW), 1);
    cr_assert_eq(delta(agg, SMM_AGG_ACCOUNT, "x", 0, SMM_EV_MENTION), 1);
    smm_agg_destroy(agg);
}

Test(aggregate, reach_users)
{
    struct smm_agg *agg = new_agg(DEFAULT_MASK);
    add(agg, SMM_EV_IMPRESSION, 60000, "a", "c", "u1");
    add(agg, SMM_EV_IMPRESSION, 60001, "a", "c", "u1"); /* same user, same minute: folded */
    add(agg, SMM_EV_VIEW, 120000, "a", "c", "u2");
    add(agg, SMM_EV_IMPRESSION, 120000, "a", "c", NULL); /* no user */
    add(agg, SMM_EV_MENTION, 120000, "a", NULL, "u5");   /* account-only, not reach */
    add(agg, SMM_EV_IMPRESSION, 180000, "b", "d", "u1");
    char got[16][64];
    int c = find_entity(agg, SMM_AGG_CONTENT, "c");
    int n = users_of(agg, c, got, 16);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(got[0], "2/u2"); /* newest first */
    cr_assert_str_eq(got[1], "1/u1");
    int a = find_entity(agg, SMM_AGG_ACCOUNT, "a");
    n = users_of(agg, a, got, 16);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(got[0], "2/u2");
    cr_assert_str_eq(got[1], "1/u1");
    int d = find_entity(agg, SMM_AGG_CONTENT, "d");
    n = users_of(agg, d, got, 16);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(got[0], "3/u1");
    /* Entities that saw no reach event have an empty list. */
    for (int i = 0; i < smm_agg_entities(agg); i++) {
        const struct smm_agg_entity *e = smm_agg_entity(agg, i);
        if (e->first_user < 0) {
            cr_assert_eq(e->n_users, 0);
        }
    }
    /* The same user in another minute is a new observation for the account (its window
     * sketches need the minute), not for the post (lifetime reach only). */
    add(agg, SMM_EV_VIEW, 60000, "a", "c", "u2");
    n = users_of(agg, c, got, 16);
    cr_assert_eq(n, 2);
    n = users_of(agg, a, got, 16);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(got[0], "1/u2");
    /* Any repeat is folded, not only the latest: u1 again in minute 1 and minute 2. */
    add(agg, SMM_EV_VIEW, 60000, "a", "c", "u1");
    add(agg, SMM_EV_VIEW, 120000, "a", "c", "u2");
    cr_assert_eq(users_of(agg, a, got, 16), 3);
    cr_assert_eq(users_of(agg, c, got, 16), 2);
    smm_agg_destroy(agg);
}

/* Reach is everyone a post got to: a user who only acted on it (liked, took the like back,
 * commented, deleted the comment, shared, clicked) was reached as much as a viewer, so reach
 * is never below the number of distinct engagers. Account-only events reach nobody. */
Test(aggregate, reach_counts_users_who_only_acted)
{
    struct smm_agg *agg = new_agg(DEFAULT_MASK);
    static const enum smm_event_type acted[] = {SMM_EV_LIKE,  SMM_EV_UNLIKE,
                                                SMM_EV_COMMENT, SMM_EV_COMMENT_DELETE,
                                                SMM_EV_SHARE, SMM_EV_CLICK};
    static const char *const users[] = {"u-like", "u-unlike", "u-comment",
                                        "u-comment-delete", "u-share", "u-click"};
    for (int i = 0; i < 6; i++) {
        add(agg, acted[i], 60000, "a", "c", users[i]);
    }
    add(agg, SMM_EV_MESSAGE, 60000, "a", NULL, "u-message");
    add(agg, SMM_EV_CONVERSION, 60000, "a", NULL, "u-buyer");
    char got[16][64];
    int c = find_entity(agg, SMM_AGG_CONTENT, "c");
    cr_assert_geq(c, 0);
    cr_assert_eq(users_of(agg, c, got, 16), 6, "each engager is reached by the post");
    int a = find_entity(agg, SMM_AGG_ACCOUNT, "a");
    cr_assert_eq(users_of(agg, a, got, 16), 6, "and by the account, not the message/buyer");
    for (int i = 0; i < 6; i++) {
        char want[64];
        snprintf(want, sizeof(want), "1/%s", users[5 - i]); /* newest first */
        cr_assert_str_eq(got[i], want);
    }
    smm_agg_destroy(agg);
}

Test(aggregate, clear_and_reuse)
{
    struct smm_agg *agg = new_agg(DEFAULT_MASK);
    for (int round = 0; round < 3; round++) {
        char acct[32], content[32], user[32];
        for (int i = 0; i < 5000; i++) {
            snprintf(acct, sizeof(acct), "r%d-a%d", round, i % 50);
            snprintf(content, sizeof(content), "r%d-c%d", round, i);
            snprintf(user, sizeof(user), "r%d-u%d", round, i);
            add(agg, SMM_EV_IMPRESSION, 60000 * (int64_t)(round + 1), acct, content, user);
        }
        cr_assert_eq(smm_agg_events(agg), 5000);
        cr_assert_eq(smm_agg_entities(agg), 5050);
        /* Every id belongs to this round: nothing from before the clear survives. */
        char prefix[8];
        snprintf(prefix, sizeof(prefix), "r%d-", round);
        for (int i = 0; i < smm_agg_entities(agg); i++) {
            const struct smm_agg_entity *e = smm_agg_entity(agg, i);
            cr_assert(strncmp(e->id, prefix, strlen(prefix)) == 0, "stale id %s", e->id);
            cr_assert_eq(count_minutes(agg, i), 1);
            const struct smm_agg_minute *m = smm_agg_minute_at(agg, e->first_minute);
            cr_assert_eq(m->minute, round + 1);
            cr_assert_eq(smm_agg_delta(m, SMM_EV_IMPRESSION), e->kind == SMM_AGG_CONTENT ? 1 : 100);
            for (int x = 0; x < SMM_AGG_METRICS; x++) {
                if (x != SMM_EV_IMPRESSION) {
                    cr_assert_eq(smm_agg_delta(m, x), 0, "stale delta %d", x);
                }
            }
            cr_assert_eq(e->n_users, e->kind == SMM_AGG_CONTENT ? 1 : 100);
            for (int ui = e->first_user; ui >= 0; ui = smm_agg_user_at(agg, ui)->next) {
                const char *u = smm_agg_user_at(agg, ui)->user;
                cr_assert(strncmp(u, prefix, strlen(prefix)) == 0, "stale user %s", u);
            }
        }
        /* Insertion order survives the clear: account a49 (i = 49) was the 100th entity
         * (entities 0..99 alternate content, account until i = 49). */
        cr_assert_eq(find_entity(agg, SMM_AGG_ACCOUNT, acct), 99);
        smm_agg_clear(agg);
        cr_assert_eq(smm_agg_entities(agg), 0);
        cr_assert_eq(smm_agg_events(agg), 0);
    }
    /* After a clear, the same id starts from zero. */
    add(agg, SMM_EV_LIKE, 0, "a", "c", NULL);
    smm_agg_clear(agg);
    add(agg, SMM_EV_LIKE, 0, "a", "c", NULL);
    cr_assert_eq(smm_agg_entities(agg), 2);
    cr_assert_eq(delta(agg, SMM_AGG_CONTENT, "c", 0, SMM_EV_LIKE), 1);
    smm_agg_destroy(agg);
}

/* A 100k-entity batch, twice (the second after a clear), with long ids so the string
 * arena spans several chunks. Totals are checked per entity against the test's own
 * arithmetic: content i gets (i % 7) + 1 views and one like; account j gets the sum over
 * its contents. */
Test(aggregate, hash_growth_100k)
{
    enum { N_CONTENT = 100000, N_ACCT = 997 };
    struct smm_agg *agg = new_agg(DEFAULT_MASK);
    int64_t *acct_views = calloc(N_ACCT, sizeof(int64_t));
    int64_t *acct_likes = calloc(N_ACCT, sizeof(int64_t));
    unsigned char *seen = calloc(N_CONTENT, 1);
    cr_assert(acct_views && acct_likes && seen);
    for (int round = 0; round < 2; round++) {
        memset(acct_views, 0, N_ACCT * sizeof(int64_t));
        memset(acct_likes, 0, N_ACCT * sizeof(int64_t));
        memset(seen, 0, N_CONTENT);
        int64_t events = 0;
        char content[80], acct[80];
        /* Two passes over the ids so the second finds existing entries. */
        for (int pass = 0; pass < 2; pass++) {
            for (int i = 0; i < N_CONTENT; i++) {
                int j = (int)(((uint64_t)i * 2654435761u) % N_ACCT);
                snprintf(content, sizeof(content), "content-%d-with-a-fairly-long-id-%08d", round,
                         i);
                snprintf(acct, sizeof(acct), "account-%d-%05d", round, j);
                if (pass == 0) {
                    int views = (i % 7) + 1;
                    for (int v = 0; v < views; v++) {
                        add(agg, SMM_EV_VIEW, 3600000, acct, content, NULL);
                    }
                    acct_views[j] += views;
                    events += views;
                } else {
                    add(agg, SMM_EV_LIKE, 3600000, acct, content, NULL);
                    acct_likes[j]++;
                    events++;
                }
            }
        }
        cr_assert_eq(smm_agg_events(agg), events);
        cr_assert_eq(smm_agg_entities(agg), N_CONTENT + N_ACCT);
        int64_t total_views = 0, total_likes = 0;
        int n_acct = 0;
        for (int e = 0; e < smm_agg_entities(agg); e++) {
            const struct smm_agg_entity *ent = smm_agg_entity(agg, e);
            cr_assert_eq(count_minutes(agg, e), 1);
            const struct smm_agg_minute *m = smm_agg_minute_at(agg, ent->first_minute);
            cr_assert_eq(m->minute, 60);
            if (ent->kind == SMM_AGG_CONTENT) {
                int r, i;
                cr_assert_eq(sscanf(ent->id, "content-%d-with-a-fairly-long-id-%d", &r, &i), 2,
                             "%s", ent->id);
                cr_assert_eq(r, round);
                cr_assert(i >= 0 && i < N_CONTENT);
                cr_assert_eq(seen[i], 0, "content %d twice", i);
                seen[i] = 1;
                cr_assert_eq(smm_agg_delta(m, SMM_EV_VIEW), (i % 7) + 1, "content %d", i);
                cr_assert_eq(smm_agg_delta(m, SMM_EV_LIKE), 1);
                cr_assert_eq(smm_agg_delta(m, SMM_AGG_ENGAGEMENT), 1);
                total_views += smm_agg_delta(m, SMM_EV_VIEW);
                total_likes += smm_agg_delta(m, SMM_EV_LIKE);
            } else {
                int r, j;
                cr_assert_eq(sscanf(ent->id, "account-%d-%d", &r, &j), 2, "%s", ent->id);
                cr_assert_eq(r, round);
                cr_assert(j >= 0 && j < N_ACCT);
                cr_assert_eq(smm_agg_delta(m, SMM_EV_VIEW), acct_views[j], "account %d", j);
                cr_assert_eq(smm_agg_delta(m, SMM_EV_LIKE), acct_likes[j], "account %d", j);
                cr_assert_eq(smm_agg_delta(m, SMM_AGG_ENGAGEMENT), acct_likes[j]);
                n_acct++;
            }
        }
        cr_assert_eq(n_acct, N_ACCT);
        cr_assert_eq(total_likes, N_CONTENT);
        /* sum over i of (i % 7) + 1 */
        int64_t want_views = 0;
        for (int i = 0; i < N_CONTENT; i++) {
            want_views += (i % 7) + 1;
        }
        cr_assert_eq(total_views, want_views);
        cr_assert_eq(want_views + N_CONTENT, events);
        smm_agg_clear(agg);
    }
    free(seen);
    free(acct_likes);
    free(acct_views);
    smm_agg_destroy(agg);
}

Test(aggregate, many_minutes_one_entity)
{
    /* The minute array grows (realloc) while an entity's list is being appended to. */
    struct smm_agg *agg = new_agg(DEFAULT_MASK);
    for (int k = 0; k < 3000; k++) {
        add(agg, SMM_EV_IMPRESSION, (int64_t)k * 60000, "a", "c", NULL);
        add(agg, SMM_EV_IMPRESSION, (int64_t)k * 60000, "b", "d", NULL);
    }
    int c = find_entity(agg, SMM_AGG_CONTENT, "c");
    cr_assert_eq(count_minutes(agg, c), 3000);
    int64_t want = 0;
    for (int mi = smm_agg_entity(agg, c)->first_minute; mi >= 0;) {
        const struct smm_agg_minute *m = smm_agg_minute_at(agg, mi);
        cr_assert_eq(m->minute, want, "minutes out of insertion order");
        cr_assert_eq(smm_agg_delta(m, SMM_EV_IMPRESSION), 1);
        want++;
        mi = m->next;
    }
    smm_agg_destroy(agg);
}

Test(aggregate, partitions_share_one_batch)
{
    /* smm-processor folds every partition into one batch: two partitions' events with
     * overlapping posts, accounts, users and a segment, interleaved. */
    struct smm_agg *m = new_agg(DEFAULT_MASK);
    add(m, SMM_EV_IMPRESSION, 60000, "a", "c", "u1");  /* partition 0 */
    add(m, SMM_EV_IMPRESSION, 60000, "a", "c", "u1");  /* partition 1: same post, user, minute */
    add(m, SMM_EV_LIKE, 60000, "a", "c", "u1");        /* 0 */
    add(m, SMM_EV_IMPRESSION, 120000, "a", "c", "u1"); /* 1: same post and user, minute 2 */
    add(m, SMM_EV_IMPRESSION, 120000, "b", "d", "u2"); /* 0 */
    add(m, SMM_EV_UNLIKE, 60000, "a", "c", "u3");      /* 1 */
    add(m, SMM_EV_IMPRESSION, 60000, "a", "e", "u4");  /* 1 */
    struct smm_event ev = make_event(SMM_EV_IMPRESSION, 60000, "a", "c", "u5");
    cr_assert_eq(smm_agg_add_split(m, SMM_AGG_SEGMENT, "a|region=eu", 1, &ev), SMM_OK);
    struct smm_agg_link link = {.type = SMM_EV_REPLY, .account = "a", .a = "t1", .ts_ms = 1};
    cr_assert_eq(smm_agg_link_add(m, &link), SMM_OK);

    cr_assert_eq(smm_agg_events(m), 7);
    cr_assert_eq(smm_agg_links(m), 1);
    /* c, a, d, b, e, the segment */
    cr_assert_eq(smm_agg_entities(m), 6);
    cr_assert_eq(delta(m, SMM_AGG_CONTENT, "c", 1, SMM_EV_IMPRESSION), 2);
    cr_assert_eq(delta(m, SMM_AGG_CONTENT, "c", 2, SMM_EV_IMPRESSION), 1);
    cr_assert_eq(delta(m, SMM_AGG_CONTENT, "c", 1, SMM_EV_LIKE), 1);
    cr_assert_eq(delta(m, SMM_AGG_CONTENT, "c", 1, SMM_EV_UNLIKE), 1);
    cr_assert_eq(delta(m, SMM_AGG_CONTENT, "c", 1, SMM_AGG_ENGAGEMENT), 0);
    cr_assert_eq(delta(m, SMM_AGG_ACCOUNT, "a", 1, SMM_EV_IMPRESSION), 3);
    cr_assert_eq(delta(m, SMM_AGG_ACCOUNT, "a", 2, SMM_EV_IMPRESSION), 1);
    cr_assert_eq(delta(m, SMM_AGG_ACCOUNT, "b", 2, SMM_EV_IMPRESSION), 1);
    int g = find_entity(m, SMM_AGG_SEGMENT, "a|region=eu");
    cr_assert(g >= 0);
    cr_assert_eq(smm_agg_entity(m, g)->split, 1, "the account part of the id");
    char got[16][64];
    /* Post c: u1 once, whatever the minute, and u3 (only unliked: reached all the same).
     * Account a: u1 in minutes 1 and 2, u3, u4. */
    cr_assert_eq(users_of(m, find_entity(m, SMM_AGG_CONTENT, "c"), got, 16), 2);
    int n = users_of(m, find_entity(m, SMM_AGG_ACCOUNT, "a"), got, 16);
    cr_assert_eq(n, 4);
    const char *want[] = {"1/u1", "2/u1", "1/u3", "1/u4"}; /* in any order */
    for (int w = 0; w < 4; w++) {
        int found = 0;
        for (int j = 0; j < n; j++) {
            found += strcmp(got[j], want[w]) == 0;
        }
        cr_assert_eq(found, 1, "%s", want[w]);
    }
    cr_assert_eq(users_of(m, g, got, 16), 1);
    cr_assert_str_eq(got[0], "1/u5");
    /* A cleared batch starts over. */
    smm_agg_clear(m);
    add(m, SMM_EV_IMPRESSION, 60000, "a", "c", "u1");
    cr_assert_eq(delta(m, SMM_AGG_ACCOUNT, "a", 1, SMM_EV_IMPRESSION), 1);
    cr_assert_eq(users_of(m, find_entity(m, SMM_AGG_ACCOUNT, "a"), got, 16), 1);
    cr_assert_eq(smm_agg_links(m), 0);
    smm_agg_destroy(m);
}

Test(aggregate, clear_after_big_batch)
{
    /* A big batch, then small ones, then a big one again: a clear gives back most of a big
     * batch's memory (smaller arrays, tables and arena) and the next batches still count
     * exactly. */
    struct smm_agg *agg = new_agg(DEFAULT_MASK);
    const int sizes[] = {60000, 10, 0, 3, 60000, 1};
    char acct[32], content[96], user[32];
    for (size_t r = 0; r < sizeof(sizes) / sizeof(sizes[0]); r++) {
        for (int i = 0; i < sizes[r]; i++) {
            snprintf(acct, sizeof(acct), "a%d", i % 7);
            snprintf(content, sizeof(content), "r%zu-c%d-with-a-longish-id-for-the-arena", r, i);
            snprintf(user, sizeof(user), "u%d", i % 5000);
            add(agg, SMM_EV_IMPRESSION, 60000, acct, content, user);
        }
        cr_assert_eq(smm_agg_events(agg), sizes[r]);
        cr_assert_eq(smm_agg_entities(agg), sizes[r] + (sizes[r] < 7 ? sizes[r] : 7));
        int64_t impressions = 0, users = 0;
        for (int e = 0; e < smm_agg_entities(agg); e++) {
            const struct smm_agg_entity *ent = smm_agg_entity(agg, e);
            if (ent->kind == SMM_AGG_ACCOUNT) {
                impressions += smm_agg_minute_at(agg, ent->first_minute)->count[SMM_EV_IMPRESSION];
                users += ent->n_users;
            } else {
                char want[64];
                snprintf(want, sizeof(want), "r%zu-", r);
                cr_assert(strncmp(ent->id, want, strlen(want)) == 0, "stale id %s", ent->id);
            }
        }
        cr_assert_eq(impressions, sizes[r]);
        /* (account i % 7, user i % 5000) repeats every 35000 events */
        cr_assert_eq(users, sizes[r] >= 35000 ? 35000 : sizes[r]);
        smm_agg_clear(agg);
    }
    smm_agg_destroy(agg);
}
