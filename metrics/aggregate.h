/* metrics/aggregate.h - in-memory pre-aggregation of the unflushed events (one batch).
 *
 * Between two flushes the processor folds every accepted event into a struct smm_agg:
 * per entity (a content or an account) and per event-time minute, one signed delta per
 * metric, plus the user ids seen for reach. A flush turns the whole table into one atomic
 * Redis unit and clears it, so Redis sees O(distinct entities) work, not O(events).
 *
 * Metrics per entity and minute: one count per event type (enum smm_event_type) and the
 * engagement delta SMM_AGG_ENGAGEMENT = sum over the engagement set of sign(type), where
 * unlike and comment_delete carry -1 when like and comment are in the set. Then three sums:
 * conversion value in cents, and a mention's author followers and own engagement.
 *
 * Besides contents and accounts, the pipeline may count an event under further entities
 * (a source, a segment value, a competitor set: smm_agg_add_to), and it records the events
 * whose meaning depends on state kept in Redis — messages, replies, referrals,
 * conversions — as links, in arrival order, for the state script to match. */
#ifndef SMM_METRICS_AGGREGATE_H
#define SMM_METRICS_AGGREGATE_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/event.h"

#define SMM_AGG_ENGAGEMENT SMM_EV__COUNT /* metric index of engagement */
#define SMM_AGG_VALUE_CENTS (SMM_EV__COUNT + 1)
#define SMM_AGG_MENTION_REACH (SMM_EV__COUNT + 2)
#define SMM_AGG_MENTION_ENGAGEMENT (SMM_EV__COUNT + 3)
#define SMM_AGG_METRICS (SMM_EV__COUNT + 4)

/* The letter of each kind is the entity's prefix in Redis fields ("c:post-1:like"). */
enum smm_agg_kind {
    SMM_AGG_CONTENT = 0, /* c:<content> */
    SMM_AGG_ACCOUNT = 1, /* a:<account> */
    SMM_AGG_SOURCE = 2,  /* s:<account>|<source> */
    SMM_AGG_SEGMENT = 3, /* g:<account>|<dimension>=<value> */
    SMM_AGG_VOICE = 4    /* v:<set>|<brand>, v:<set> */
};
#define SMM_AGG_KINDS 5
/* "c", "a", "s", "g", "v" */
const char *smm_agg_kind_prefix(enum smm_agg_kind kind);
/* 1 when entities of this kind publish metric m. Breakdowns keep what their readers use
 * (segments: impressions, engagement, conversions, value; sources: the funnel; sets: the
 * mention sums), which keeps a batch's fields, and so Redis' work, close to the core's. */
int smm_agg_kind_keeps(enum smm_agg_kind kind, int m);
/* The Redis field name of metric m ("like", "engagement", "value_cents", ...). */
const char *smm_agg_metric_name(int m);

/* One event the state script must see by itself (see connectors/lua/smm.lua links):
 * message {a = thread, b = customer, x = reply deadline in ms}, reply {a = thread},
 * referral {a = visitor, b = referrer, c = source}, conversion {a = user, c = source,
 * x = value in cents}. biz_ms is the account's business clock at ts_ms. */
struct smm_agg_link {
    enum smm_event_type type;
    const char *account, *a, *b, *c; /* owned by the agg's arena; "" when absent */
    int64_t ts_ms, biz_ms, x;
};

struct smm_agg;

/* One minute of one entity: a delta per metric (event types, then SMM_AGG_ENGAGEMENT, then
 * the sums), read with smm_agg_delta(). Counts fit 32 bits in any batch (flush.max_events
 * bounds them), the sums need 64: a batch holds hundreds of thousands of these. */
#define SMM_AGG_COUNTS (SMM_AGG_ENGAGEMENT + 1)
struct smm_agg_minute {
    int64_t minute; /* floor(ts_ms / 60000) */
    int64_t sum[SMM_AGG_METRICS - SMM_AGG_COUNTS];
    int32_t count[SMM_AGG_COUNTS];
    int next; /* index of the entity's next minute, -1 at the end */
};

static inline int64_t smm_agg_delta(const struct smm_agg_minute *m, int metric)
{
    return metric < SMM_AGG_COUNTS ? m->count[metric] : m->sum[metric - SMM_AGG_COUNTS];
}

/* One reach observation: the user, and the minute it was seen in (accounts use it).
 * A batch holds each user once per entity (and per minute for accounts). */
struct smm_agg_user {
    int64_t minute;
    const char *user; /* owned by the agg's arena */
    int ent;          /* the entity's index */
    int next;
    uint32_t reach_pos; /* smm_hll_position(user): what a reach sketch held adds */
};

struct smm_agg_entity {
    enum smm_agg_kind kind;
    const char *id; /* owned by the agg's arena */
    int first_minute; /* -1 when no counter was touched */
    int first_user;   /* -1 when no user was seen */
    int n_users;
    int split; /* source/segment: length of the account part of id ("acct|..."), else 0 */
};

/* engagement_mask: bit (1 << type) for each type in the engagement set.
 * Returns NULL (errstr filled) on allocation failure. Free with smm_agg_destroy(). */
struct smm_agg *smm_agg_new(unsigned engagement_mask, char *errstr, size_t errstr_size);
void smm_agg_destroy(struct smm_agg *agg);

/* Folds one validated event. Content events count under the content and its account;
 * account-only events (mention, message, ...) count under the account. Content events
 * carrying a user_id (smm_event_type_reaches: seen or acted on) add to reach. Returns SMM_OK, or SMM_ERR on out-of-memory. */
int smm_agg_add(struct smm_agg *agg, const struct smm_event *ev);

/* Counts ev under one more entity (kind, id): its type count, engagement, sums and, for an
 * content event with a user, reach. Returns SMM_OK, or SMM_ERR on out-of-memory. */
int smm_agg_add_to(struct smm_agg *agg, enum smm_agg_kind kind, const char *id,
                   const struct smm_event *ev);
/* The same for a source or segment entity "<account>|<rest>": split is strlen(account), so
 * the encoder can name the account without parsing ids that may hold '|' themselves. */
int smm_agg_add_split(struct smm_agg *agg, enum smm_agg_kind kind, const char *id, int split,
                      const struct smm_event *ev);

/* Moves every count and user of entity from into the entity (kind, id) of the same split,
 * created when absent, and leaves from without minutes or users: a breakdown value that
 * admission counts under its account's "other" (metrics/admission.h). Entity indexes stay
 * valid; pointers from smm_agg_entity() do not. SMM_OK, or SMM_ERR on out-of-memory. */
int smm_agg_fold(struct smm_agg *agg, int from, enum smm_agg_kind kind, const char *id);

/* Records a link (strings are copied). Returns SMM_OK, or SMM_ERR on out-of-memory. */
int smm_agg_link_add(struct smm_agg *agg, const struct smm_agg_link *link);
int smm_agg_links(const struct smm_agg *agg);
const struct smm_agg_link *smm_agg_link_at(const struct smm_agg *agg, int i);

/* A conversion value in integer cents (rounded half away from zero). */
int64_t smm_agg_cents(double value);

/* Engagement delta of one event type under the agg's engagement set: +1, -1 or 0. */
int smm_agg_engagement_sign(const struct smm_agg *agg, enum smm_event_type type);

/* Iteration: entities are indexed 0..n-1 in insertion order; minute and user lists are
 * walked by index through the `next` fields. Pointers stay valid until the next add/clear. */
int smm_agg_entities(const struct smm_agg *agg);
const struct smm_agg_entity *smm_agg_entity(const struct smm_agg *agg, int i);
const struct smm_agg_minute *smm_agg_minute_at(const struct smm_agg *agg, int i);
const struct smm_agg_user *smm_agg_user_at(const struct smm_agg *agg, int i);

/* Events folded since the last clear. */
int64_t smm_agg_events(const struct smm_agg *agg);
/* Forgets everything, keeps the allocations for the next batch. */
void smm_agg_clear(struct smm_agg *agg);

#endif
