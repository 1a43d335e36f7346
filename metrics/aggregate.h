/* metrics/aggregate.h - in-memory pre-aggregation of one partition's unflushed events.
 *
 * Between two flushes the processor folds every accepted event into a struct smm_agg:
 * per entity (a content or an account) and per event-time minute, one signed delta per
 * metric, plus the user ids seen for reach. A flush turns the whole table into one atomic
 * Redis unit and clears it, so Redis sees O(distinct entities) work, not O(events).
 *
 * Metrics per entity and minute: one count per event type (enum smm_event_type) and the
 * engagement delta SMM_AGG_ENGAGEMENT = sum over the engagement set of sign(type), where
 * unlike and comment_delete carry -1 when like and comment are in the set. */
#ifndef SMM_METRICS_AGGREGATE_H
#define SMM_METRICS_AGGREGATE_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/event.h"

#define SMM_AGG_ENGAGEMENT SMM_EV__COUNT /* metric index of engagement */
#define SMM_AGG_METRICS (SMM_EV__COUNT + 1)

enum smm_agg_kind { SMM_AGG_CONTENT = 0, SMM_AGG_ACCOUNT = 1 };

struct smm_agg;

/* One minute of one entity: deltas indexed by event type, then SMM_AGG_ENGAGEMENT. */
struct smm_agg_minute {
    int64_t minute; /* floor(ts_ms / 60000) */
    int64_t delta[SMM_AGG_METRICS];
    int next; /* index of the entity's next minute, -1 at the end */
};

/* One reach observation: the user, and the minute it was seen in (accounts use it). */
struct smm_agg_user {
    int64_t minute;
    const char *user; /* owned by the agg's arena */
    int next;
};

struct smm_agg_entity {
    enum smm_agg_kind kind;
    const char *id; /* owned by the agg's arena */
    int first_minute; /* -1 when no counter was touched */
    int first_user;   /* -1 when no user was seen */
    int n_users;
};

/* engagement_mask: bit (1 << type) for each type in the engagement set.
 * Returns NULL (errstr filled) on allocation failure. Free with smm_agg_destroy(). */
struct smm_agg *smm_agg_new(unsigned engagement_mask, char *errstr, size_t errstr_size);
void smm_agg_destroy(struct smm_agg *agg);

/* Folds one validated event. Content events count under the content and its account;
 * account-only events (mention, message, ...) count under the account. Events carrying a
 * user_id on impression/view add to reach. Returns SMM_OK, or SMM_ERR on out-of-memory. */
int smm_agg_add(struct smm_agg *agg, const struct smm_event *ev);

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
