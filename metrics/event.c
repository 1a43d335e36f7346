/* metrics/event.c - event type names: the one table mapping wire names to enum values. */
#include "metrics/event.h"

#include <string.h>

static const char *const type_names[SMM_EV__COUNT] = {
    "impression", "view",  "like",     "unlike",     "comment", "comment_delete", "share",
    "click",      "referral", "conversion", "mention", "message", "reply",          "follow",
};

const char *smm_event_type_name(enum smm_event_type type)
{
    if ((int)type < 0 || type >= SMM_EV__COUNT) {
        return NULL;
    }
    return type_names[type];
}

int smm_event_type_parse(const char *name, enum smm_event_type *type)
{
    for (int i = 0; i < SMM_EV__COUNT; i++) {
        if (strcmp(name, type_names[i]) == 0) {
            *type = (enum smm_event_type)i;
            return SMM_OK;
        }
    }
    return SMM_ERR;
}

int smm_event_type_needs_content(enum smm_event_type type)
{
    switch (type) {
    case SMM_EV_IMPRESSION:
    case SMM_EV_VIEW:
    case SMM_EV_LIKE:
    case SMM_EV_UNLIKE:
    case SMM_EV_COMMENT:
    case SMM_EV_COMMENT_DELETE:
    case SMM_EV_SHARE:
    case SMM_EV_CLICK:
        return 1;
    default:
        return 0;
    }
}

int smm_event_type_reaches(enum smm_event_type type)
{
    /* The same set as the content events, on purpose: reach is "users a post got to". */
    return smm_event_type_needs_content(type);
}
