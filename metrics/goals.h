/* metrics/goals.h - where a business goal stands (docs/goals.md).
 *
 * A goal (config goal.<id>.*) follows one account metric over a period of whole UTC days
 * [start_day, start_day + days). Sums (conversion, value_cents, ...) must reach a target
 * by the end and are on track while they keep pace with a linear share of it; a rate
 * (response_rate) must be at or above its target, and is judged when the period ends.
 * The caller reads the daily buckets smm_goal_days() names and passes the sums in with the
 * time: no I/O, no clock here. Alerts ("reached" once, "off_track" on each on_track 1 -> 0
 * transition) are the caller's, from successive statuses. */
#ifndef SMM_METRICS_GOALS_H
#define SMM_METRICS_GOALS_H

#include <stdint.h>

enum smm_goal_kind {
    SMM_GOAL_INCREASE, /* target = baseline x (1 + target_param / 100) */
    SMM_GOAL_AT_LEAST  /* target = target_param */
};

struct smm_goal_input {
    enum smm_goal_kind kind;
    double target_param;       /* percent for INCREASE, value for AT_LEAST (rates in percent) */
    int is_rate;               /* 1: value = num/den*100 (response_rate), 0: value = num (a sum) */
    int64_t start_day, days;   /* period [start_day, start_day+days) in UTC days */
    double base_num, base_den; /* the metric over the `days` days before start_day */
    double cur_num, cur_den;   /* the metric over [start_day, today] */
    int64_t now_ms;
};

struct smm_goal_status {
    double baseline;     /* the metric over the baseline days (a rate in percent) */
    double current;      /* the metric so far in the period (a rate in percent; 0 when den = 0) */
    double target;       /* what the period must reach */
    double expected;     /* sums: target x elapsed fraction; rates: target */
    double progress_pct; /* current / target x 100 (100 when target <= 0) */
    int on_track;        /* 1 before the start, and for a rate with nothing to answer yet */
    int reached;         /* sums: current >= target; rates: only once the period has ended */
    int ended;           /* now is at or after the end of the period */
};

/* Evaluates a goal at in->now_ms. SMM_OK, or SMM_ERR for an input that is not a goal
 * (NULL, days < 1, a negative or non-finite number). Comparisons allow a relative error of
 * 1e-9, so 220 reaches a target of 200 x 1.1 (220.00000000000003 in binary). */
int smm_goal_eval(const struct smm_goal_input *in, struct smm_goal_status *out);

/* Which UTC days to read, inclusive ranges [from, to]: the baseline is the `days` days
 * before start_day; the current range runs from start_day to today, stopping at the last
 * day of the period. Before the start the current range is empty (cur_to < cur_from). */
void smm_goal_days(const struct smm_goal_input *in, int64_t *base_from, int64_t *base_to,
                   int64_t *cur_from, int64_t *cur_to);

#endif
