/* metrics/alert_text.h - the words a viral alert says to people.
 *
 * Every alert carries machine fields (`reasons`, `metrics`) and one sentence a marketer can
 * read without knowing the rule's variable names (docs/alerts.md, "The message"). For viral
 * alerts the facts behind each rule (reach, threshold, z-score, SEISMIC bound) are known
 * here in C, in metrics/viral.c, so the clauses are worded here, from the very values the
 * rule compared; connectors/lua/smm.lua puts the post and its new state in front
 * ("post-8887 went viral: ...") once metrics/viral_state.c has decided the state.
 *
 * A clause is lower case with no final stop; clauses of one alert are joined by "; ".
 * Counts of people and shares are whole numbers with thousands separators ("1,000").
 *
 * Pure: no I/O, no allocation, no clock. */
#ifndef SMM_METRICS_ALERT_TEXT_H
#define SMM_METRICS_ALERT_TEXT_H

#include <stddef.h>

/* The facts a clause can state. v, bound and ref per fact: */
enum smm_alert_fact {
    SMM_ALERT_REACH,          /* v viewers in 5 min, bound the audience threshold T */
    SMM_ALERT_REACH_EARLY,    /* v viewers, bound the early-warning level, ref T */
    SMM_ALERT_SHARE_Z,        /* v share-velocity z-score, bound the rule's minimum, ref
                               * shares per minute */
    SMM_ALERT_NON_FOLLOWERS,  /* v percent of viewers not following, bound the minimum */
    SMM_ALERT_DEPTH,          /* v share hops, bound the minimum */
    SMM_ALERT_PREDICTED,      /* v predicted final shares (may be +inf), bound the minimum */
    SMM_ALERT_SEISMIC,        /* v shares each share leads to (cautious bound), ref shares */
    SMM_ALERT_BELOW_EXIT,     /* v viewers, bound the level a viral post keeps, ref T */
    SMM_ALERT_BELOW_EARLY,    /* v viewers, bound the early-warning level, ref shares/min */
    SMM_ALERT_FACT__COUNT
};

/* Writes n rounded to a whole number with thousands separators ("1,234,567", "-5", "0")
 * into out; "unbounded" when n is +inf, "unknown" when NaN. Returns the length written
 * (truncated to size - 1; out is always terminated when size > 0). */
size_t smm_alert_text_count(double n, char *out, size_t size);

/* Appends the clause for fact to the NUL-terminated buf (after "; " when buf is not
 * empty). A clause that does not fit whole is left out, so buf never ends mid-sentence.
 * Returns 0, or -1 when it was left out or fact is unknown. */
int smm_alert_text_add(char *buf, size_t size, int fact, double v, double bound, double ref);

/* Writes the sentence of a viral alert for a post moving to state to (0 normal, 1 rising,
 * 2 viral, 3 cooling): "<id> went viral: <why>.", "<id> is rising: <why>.", "<id> is
 * cooling down: <why>.", "<id> is back to normal: <why>."; without why (NULL or "") the
 * head alone ("<id> went viral."). Returns the length written (truncated to size - 1). */
size_t smm_alert_text_viral(char *out, size_t size, const char *id, int to, const char *why);

#endif
