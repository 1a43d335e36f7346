/* tests/unit/test_goals.c - goal status rules (metrics/goals.c, docs/goals.md).
 *
 * Every expectation is worked out by hand in the comments: the period starts on
 * 2024-01-01 (day 19723, 1704067200000 ms); times are offsets from it. Links smm_metrics
 * alone: the module is pure. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>

#include "metrics/event.h"
#include "metrics/goals.h"

#define DAY 86400000LL
#define HOUR 3600000LL
#define START_DAY 19723LL
#define START_MS (START_DAY * DAY)
#define EPS 1e-9

static struct smm_goal_input sum_goal(enum smm_goal_kind kind, double param, int64_t days)
{
    struct smm_goal_input in = {0};
    in.kind = kind;
    in.target_param = param;
    in.is_rate = 0;
    in.start_day = START_DAY;
    in.days = days;
    return in;
}

static struct smm_goal_status eval_ok(const struct smm_goal_input *in)
{
    struct smm_goal_status st;
    cr_assert_eq(smm_goal_eval(in, &st), SMM_OK);
    return st;
}

Test(goals, start_ms_is_2024_01_01)
{
    cr_assert_eq(START_MS, 1704067200000LL);
}

/* Sum, increase 10 % over a baseline of 200 in 10 days: target 220. At 2.5 days the
 * elapsed fraction is 0.25, so 55 are expected by now. */
Test(goals, sum_increase_on_and_off_track)
{
    struct smm_goal_input in = sum_goal(SMM_GOAL_INCREASE, 10, 10);
    in.base_num = 200;
    in.now_ms = START_MS + 5 * DAY / 2;

    in.cur_num = 60;
    struct smm_goal_status st = eval_ok(&in);
    cr_assert_float_eq(st.baseline, 200, EPS);
    cr_assert_float_eq(st.current, 60, EPS);
    cr_assert_float_eq(st.target, 220, EPS);
    cr_assert_float_eq(st.expected, 55, EPS);
    cr_assert_float_eq(st.progress_pct, 60.0 / 220 * 100, EPS); /* 27.27 % */
    cr_assert_eq(st.on_track, 1);
    cr_assert_eq(st.reached, 0);
    cr_assert_eq(st.ended, 0);

    in.cur_num = 55; /* exactly the pace */
    cr_assert_eq(eval_ok(&in).on_track, 1);

    in.cur_num = 50; /* 50 < 55 */
    st = eval_ok(&in);
    cr_assert_eq(st.on_track, 0);
    cr_assert_eq(st.reached, 0);
    cr_assert_float_eq(st.progress_pct, 50.0 / 220 * 100, EPS); /* 22.73 % */
}

/* A sum is reached as soon as it gets there, before the end: 200 x 1.1 is
 * 220.00000000000003 in binary, and 220 must still count. */
Test(goals, sum_reached_early)
{
    struct smm_goal_input in = sum_goal(SMM_GOAL_INCREASE, 10, 10);
    in.base_num = 200;
    in.now_ms = START_MS + 5 * DAY;
    in.cur_num = 220;
    struct smm_goal_status st = eval_ok(&in);
    cr_assert_eq(st.reached, 1);
    cr_assert_eq(st.on_track, 1);
    cr_assert_eq(st.ended, 0);
    cr_assert_float_eq(st.expected, 110, EPS); /* 220 x 0.5 */
    cr_assert_float_eq(st.progress_pct, 100, EPS);
    in.cur_num = 300;
    st = eval_ok(&in);
    cr_assert_eq(st.reached, 1);
    cr_assert_float_eq(st.progress_pct, 300.0 / 220 * 100, EPS); /* 136.4 %: not capped */
}

/* At least 1000 in 4 days: 250 expected after one day. */
Test(goals, sum_at_least)
{
    struct smm_goal_input in = sum_goal(SMM_GOAL_AT_LEAST, 1000, 4);
    in.base_num = 12345; /* ignored by at_least, but reported */
    in.now_ms = START_MS + DAY;
    in.cur_num = 249;
    struct smm_goal_status st = eval_ok(&in);
    cr_assert_float_eq(st.baseline, 12345, EPS);
    cr_assert_float_eq(st.target, 1000, EPS);
    cr_assert_float_eq(st.expected, 250, EPS);
    cr_assert_eq(st.on_track, 0);
    in.cur_num = 250;
    cr_assert_eq(eval_ok(&in).on_track, 1);
    /* Three quarters of the way (3 days): 750 expected. */
    in.now_ms = START_MS + 3 * DAY;
    in.cur_num = 700;
    st = eval_ok(&in);
    cr_assert_float_eq(st.expected, 750, EPS);
    cr_assert_eq(st.on_track, 0);
    cr_assert_float_eq(st.progress_pct, 70, EPS);
}

/* The end: 10 days after the start (exclusive end), the fraction is 1 and a sum that did
 * not get there is off track for good. */
Test(goals, sum_end_of_period)
{
    struct smm_goal_input in = sum_goal(SMM_GOAL_INCREASE, 10, 10);
    in.base_num = 200;
    in.cur_num = 219;
    in.now_ms = START_MS + 10 * DAY - 1;
    struct smm_goal_status st = eval_ok(&in);
    cr_assert_eq(st.ended, 0);
    cr_assert_float_eq(st.expected, 220.0 * (10 * DAY - 1) / (10 * DAY), 1e-6);
    in.now_ms = START_MS + 10 * DAY;
    st = eval_ok(&in);
    cr_assert_eq(st.ended, 1);
    cr_assert_float_eq(st.expected, 220, EPS);
    cr_assert_eq(st.on_track, 0);
    cr_assert_eq(st.reached, 0);
    in.now_ms = START_MS + 400 * DAY; /* long after: the fraction stays 1 */
    st = eval_ok(&in);
    cr_assert_float_eq(st.expected, 220, EPS);
    in.cur_num = 221;
    st = eval_ok(&in);
    cr_assert_eq(st.on_track, 1);
    cr_assert_eq(st.reached, 1);
}

/* Before the start nothing is expected, nothing is reached, and it is on track. */
Test(goals, before_start)
{
    struct smm_goal_input in = sum_goal(SMM_GOAL_INCREASE, 10, 10);
    in.base_num = 200;
    in.now_ms = START_MS - HOUR;
    in.cur_num = 0;
    struct smm_goal_status st = eval_ok(&in);
    cr_assert_eq(st.on_track, 1);
    cr_assert_eq(st.reached, 0);
    cr_assert_eq(st.ended, 0);
    cr_assert_float_eq(st.expected, 0, EPS);
    cr_assert_float_eq(st.target, 220, EPS);
    cr_assert_float_eq(st.progress_pct, 0, EPS);
    in.cur_num = 500; /* whatever the caller passes, not reached yet */
    cr_assert_eq(eval_ok(&in).reached, 0);

    in.is_rate = 1;
    in.kind = SMM_GOAL_AT_LEAST;
    in.target_param = 90;
    in.cur_num = 1;
    in.cur_den = 10; /* 10 % */
    st = eval_ok(&in);
    cr_assert_eq(st.on_track, 1);
    cr_assert_eq(st.reached, 0);
}

/* At the very start (0 elapsed) a sum needs 0: on track. */
Test(goals, sum_at_start)
{
    struct smm_goal_input in = sum_goal(SMM_GOAL_AT_LEAST, 100, 7);
    in.now_ms = START_MS;
    struct smm_goal_status st = eval_ok(&in);
    cr_assert_float_eq(st.expected, 0, EPS);
    cr_assert_eq(st.on_track, 1);
    cr_assert_eq(st.reached, 0);
}

/* An increase over a zero baseline has target 0: reached as soon as the period starts. */
Test(goals, sum_increase_zero_baseline)
{
    struct smm_goal_input in = sum_goal(SMM_GOAL_INCREASE, 50, 10);
    in.base_num = 0;
    in.now_ms = START_MS + DAY;
    struct smm_goal_status st = eval_ok(&in);
    cr_assert_float_eq(st.target, 0, EPS);
    cr_assert_eq(st.reached, 1);
    cr_assert_eq(st.on_track, 1);
    cr_assert_float_eq(st.progress_pct, 100, EPS);
}

static struct smm_goal_input rate_goal(enum smm_goal_kind kind, double param, int64_t days)
{
    struct smm_goal_input in = sum_goal(kind, param, days);
    in.is_rate = 1;
    return in;
}

/* Response rate at least 90 % over 30 days: 45 of 50 threads answered = 90 %, on track
 * but reached only when the period is over; 44 of 50 = 88 % is off track. */
Test(goals, rate_at_least)
{
    struct smm_goal_input in = rate_goal(SMM_GOAL_AT_LEAST, 90, 30);
    in.base_num = 30;
    in.base_den = 60;
    in.cur_num = 45;
    in.cur_den = 50;
    in.now_ms = START_MS + 10 * DAY;
    struct smm_goal_status st = eval_ok(&in);
    cr_assert_float_eq(st.baseline, 50, EPS); /* 30 / 60 */
    cr_assert_float_eq(st.current, 90, EPS);
    cr_assert_float_eq(st.target, 90, EPS);
    cr_assert_float_eq(st.expected, 90, EPS);
    cr_assert_float_eq(st.progress_pct, 100, EPS);
    cr_assert_eq(st.on_track, 1);
    cr_assert_eq(st.reached, 0, "a rate is judged over the whole period");
    cr_assert_eq(st.ended, 0);
    in.now_ms = START_MS + 30 * DAY;
    st = eval_ok(&in);
    cr_assert_eq(st.ended, 1);
    cr_assert_eq(st.reached, 1);

    in.cur_num = 44;
    in.now_ms = START_MS + 10 * DAY;
    st = eval_ok(&in);
    cr_assert_float_eq(st.current, 88, EPS);
    cr_assert_eq(st.on_track, 0);
    cr_assert_float_eq(st.progress_pct, 88.0 / 90 * 100, EPS); /* 97.78 % */
    in.now_ms = START_MS + 31 * DAY;
    st = eval_ok(&in);
    cr_assert_eq(st.reached, 0);
    cr_assert_eq(st.on_track, 0);
}

/* Increase a 75 % response rate (30 of 40) by 10 %: target 82.5 %. 33 of 40 is exactly
 * 82.5 %: on track (at the target is enough). 32 of 40 = 80 % is not. */
Test(goals, rate_increase)
{
    struct smm_goal_input in = rate_goal(SMM_GOAL_INCREASE, 10, 7);
    in.base_num = 30;
    in.base_den = 40;
    in.cur_num = 33;
    in.cur_den = 40;
    in.now_ms = START_MS + 2 * DAY;
    struct smm_goal_status st = eval_ok(&in);
    cr_assert_float_eq(st.baseline, 75, EPS);
    cr_assert_float_eq(st.target, 82.5, EPS);
    cr_assert_float_eq(st.expected, 82.5, EPS);
    cr_assert_eq(st.on_track, 1);
    cr_assert_eq(st.reached, 0);
    in.cur_num = 32;
    st = eval_ok(&in);
    cr_assert_float_eq(st.current, 80, EPS);
    cr_assert_eq(st.on_track, 0);
    cr_assert_float_eq(st.progress_pct, 80 / 82.5 * 100, EPS); /* 96.97 % */
}

/* No thread yet (den 0): the rate is 0 but there was nothing to answer, so on track; it
 * is not reached at the end either (0 < 90). */
Test(goals, rate_nothing_to_answer)
{
    struct smm_goal_input in = rate_goal(SMM_GOAL_AT_LEAST, 90, 7);
    in.now_ms = START_MS + DAY;
    struct smm_goal_status st = eval_ok(&in);
    cr_assert_float_eq(st.current, 0, EPS);
    cr_assert_eq(st.on_track, 1);
    cr_assert_eq(st.reached, 0);
    cr_assert_float_eq(st.progress_pct, 0, EPS);
    in.now_ms = START_MS + 8 * DAY;
    st = eval_ok(&in);
    cr_assert_eq(st.ended, 1);
    cr_assert_eq(st.on_track, 1);
    cr_assert_eq(st.reached, 0);
}

/* An increase over a baseline without threads: baseline 0 %, target 0 %; any rate meets
 * it, reached at the end. */
Test(goals, rate_increase_zero_baseline)
{
    struct smm_goal_input in = rate_goal(SMM_GOAL_INCREASE, 20, 7);
    in.cur_num = 1;
    in.cur_den = 2;
    in.now_ms = START_MS + DAY;
    struct smm_goal_status st = eval_ok(&in);
    cr_assert_float_eq(st.baseline, 0, EPS);
    cr_assert_float_eq(st.target, 0, EPS);
    cr_assert_float_eq(st.current, 50, EPS);
    cr_assert_eq(st.on_track, 1);
    cr_assert_eq(st.reached, 0);
    cr_assert_float_eq(st.progress_pct, 100, EPS);
    in.now_ms = START_MS + 7 * DAY;
    cr_assert_eq(eval_ok(&in).reached, 1);
}

Test(goals, invalid_input)
{
    struct smm_goal_status st;
    struct smm_goal_input in = sum_goal(SMM_GOAL_AT_LEAST, 10, 7);
    cr_assert_eq(smm_goal_eval(NULL, &st), SMM_ERR);
    cr_assert_eq(smm_goal_eval(&in, NULL), SMM_ERR);
    in.days = 0;
    cr_assert_eq(smm_goal_eval(&in, &st), SMM_ERR);
    in.days = -3;
    cr_assert_eq(smm_goal_eval(&in, &st), SMM_ERR);
    in.days = 7;
    in.start_day = -1;
    cr_assert_eq(smm_goal_eval(&in, &st), SMM_ERR);
    in.start_day = START_DAY;
    in.target_param = -1;
    cr_assert_eq(smm_goal_eval(&in, &st), SMM_ERR);
    in.target_param = NAN;
    cr_assert_eq(smm_goal_eval(&in, &st), SMM_ERR);
    in.target_param = 10;
    in.cur_den = -1;
    cr_assert_eq(smm_goal_eval(&in, &st), SMM_ERR);
    in.cur_den = 0;
    in.base_num = INFINITY;
    cr_assert_eq(smm_goal_eval(&in, &st), SMM_ERR);
    in.base_num = 0;
    in.kind = (enum smm_goal_kind)7;
    cr_assert_eq(smm_goal_eval(&in, &st), SMM_ERR);
    in.kind = SMM_GOAL_AT_LEAST;
    cr_assert_eq(smm_goal_eval(&in, &st), SMM_OK);
}

/* Start day 100, 10 days: baseline days 90..99, the period 100..109. */
Test(goals, days_to_read)
{
    struct smm_goal_input in = {0};
    in.start_day = 100;
    in.days = 10;
    int64_t bf, bt, cf, ct;

    in.now_ms = 103 * DAY + 5 * HOUR; /* day 103 */
    smm_goal_days(&in, &bf, &bt, &cf, &ct);
    cr_assert_eq(bf, 90);
    cr_assert_eq(bt, 99);
    cr_assert_eq(cf, 100);
    cr_assert_eq(ct, 103);

    in.now_ms = 100 * DAY; /* the first millisecond of the period */
    smm_goal_days(&in, &bf, &bt, &cf, &ct);
    cr_assert_eq(cf, 100);
    cr_assert_eq(ct, 100);

    in.now_ms = 109 * DAY + DAY - 1; /* the last millisecond */
    smm_goal_days(&in, &bf, &bt, &cf, &ct);
    cr_assert_eq(ct, 109);

    in.now_ms = 200 * DAY; /* after the end: the whole period */
    smm_goal_days(&in, &bf, &bt, &cf, &ct);
    cr_assert_eq(cf, 100);
    cr_assert_eq(ct, 109);
    cr_assert_eq(bf, 90, "the baseline does not move");
    cr_assert_eq(bt, 99);

    in.now_ms = 95 * DAY; /* before the start: nothing to read */
    smm_goal_days(&in, &bf, &bt, &cf, &ct);
    cr_assert_eq(cf, 100);
    cr_assert_eq(ct, 99);
    cr_assert_lt(ct, cf);

    in.now_ms = -1; /* a clock before 1970 (floor, not truncation) */
    smm_goal_days(&in, &bf, &bt, &cf, &ct);
    cr_assert_eq(ct, 99);

    in.start_day = 5;
    in.days = 1;
    in.now_ms = 5 * DAY + HOUR;
    smm_goal_days(&in, &bf, &bt, &cf, &ct);
    cr_assert_eq(bf, 4);
    cr_assert_eq(bt, 4);
    cr_assert_eq(cf, 5);
    cr_assert_eq(ct, 5);
}
