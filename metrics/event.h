/* metrics/event.h - the normalised interaction event every metric consumes.
 *
 * processor/event_json.c turns one Kafka message (JSON, see docs/events.md) into a
 * struct smm_event; metrics never see JSON or Kafka. Ids are copied into fixed
 * buffers so the hot path allocates nothing per event. */
#ifndef SMM_METRICS_EVENT_H
#define SMM_METRICS_EVENT_H

#include <stdint.h>

#define SMM_OK 0
#define SMM_ERR -1

/* Longest id we accept (config may lower it); buffers hold it plus the NUL. */
#define SMM_EVENT_ID_MAX 128

enum smm_event_type {
    SMM_EV_IMPRESSION = 0,
    SMM_EV_VIEW,
    SMM_EV_LIKE,
    SMM_EV_UNLIKE,
    SMM_EV_COMMENT,
    SMM_EV_COMMENT_DELETE,
    SMM_EV_SHARE,
    SMM_EV_CLICK,
    SMM_EV_REFERRAL,
    SMM_EV_CONVERSION,
    SMM_EV_MENTION,
    SMM_EV_MESSAGE,
    SMM_EV_REPLY,
    SMM_EV_FOLLOW,
    SMM_EV__COUNT
};

/* Which optional fields were present (bit per field). */
#define SMM_EVF_CONTENT (1u << 0)
#define SMM_EVF_USER (1u << 1)
#define SMM_EVF_PARENT (1u << 2)
#define SMM_EVF_FOLLOWERS (1u << 3)
#define SMM_EVF_FOLLOWS_AUTHOR (1u << 4)
#define SMM_EVF_SOURCE (1u << 5)
#define SMM_EVF_VALUE (1u << 6)
#define SMM_EVF_THREAD (1u << 7)
#define SMM_EVF_REGION (1u << 8)
#define SMM_EVF_SEGMENT (1u << 9)
#define SMM_EVF_TS (1u << 10)
#define SMM_EVF_AUTHOR_FOLLOWERS (1u << 11)
#define SMM_EVF_REFERRER (1u << 12)
#define SMM_EVF_ENGAGEMENT (1u << 13)

struct smm_event {
    enum smm_event_type type;
    unsigned flags;     /* SMM_EVF_* */
    int64_t ts_ms;      /* event time, epoch ms (Kafka timestamp when absent) */
    int64_t followers;  /* author's/sharer's follower count, when SMM_EVF_FOLLOWERS */
    int64_t author_followers; /* the content author's followers, SMM_EVF_AUTHOR_FOLLOWERS */
    int64_t engagement; /* a mention's own engagement, when SMM_EVF_ENGAGEMENT */
    double value;       /* conversion value, when SMM_EVF_VALUE */
    int follows_author; /* 0/1, when SMM_EVF_FOLLOWS_AUTHOR */
    char event_id[SMM_EVENT_ID_MAX + 1];
    char account_id[SMM_EVENT_ID_MAX + 1];
    char content_id[SMM_EVENT_ID_MAX + 1];
    char user_id[SMM_EVENT_ID_MAX + 1];
    char parent_id[SMM_EVENT_ID_MAX + 1];
    char source[SMM_EVENT_ID_MAX + 1];
    char thread_id[SMM_EVENT_ID_MAX + 1];
    char region[SMM_EVENT_ID_MAX + 1];
    char segment[SMM_EVENT_ID_MAX + 1];
    char referrer_id[SMM_EVENT_ID_MAX + 1]; /* referral: the referring user */
};

/* The wire name of a type ("impression", ...); NULL for an out-of-range value. */
const char *smm_event_type_name(enum smm_event_type type);
/* Parses a wire name. Returns SMM_OK and writes *type, or SMM_ERR if unknown. */
int smm_event_type_parse(const char *name, enum smm_event_type *type);
/* 1 when the type is about a piece of content and so needs content_id. */
int smm_event_type_needs_content(enum smm_event_type type);
/* 1 when a user_id on an event of this type counts the user as reached: every content
 * event, seen (impression, view) or acted on (like, unlike, comment, comment_delete,
 * share, click). Someone who liked a post, or took the like back, was reached by it;
 * so reach is never below the number of distinct engagers. */
int smm_event_type_reaches(enum smm_event_type type);

#endif
