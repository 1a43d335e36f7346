/* metrics/goals.c - goal status from the sums of daily buckets (docs/goals.md).
 *
 * Kept pure so the rules can be tested with hand-computed figures and evaluated anywhere
 * (the processor's periodic evaluation, an API read) with the same result. */
#include "metrics/goals.h"

#include <math.h>

#include "metrics/event.h"

#define DAY_MS 86400000LL

/* a >= b, allowing the rounding of a division or a percentage. */
static int at_least(double a, double b)
{
    return a >= b - 1e-9 * fabs(b);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int valid_num(double v)
{
    return isfinite(v) && v >= 0;
}

int smm_goal_eval(const struct smm_goal_input *in, struct smm_goal_status *out)
{
    if (!in || !out || in->days < 1 || in->days > INT64_MAX / DAY_MS / 2 ||
        in->start_day < 0 || in->start_day > INT64_MAX / DAY_MS / 2 ||
        (in->kind != SMM_GOAL_INCREASE && in->kind != SMM_GOAL_AT_LEAST) ||
        !valid_num(in->target_param) || !valid_num(in->base_num) ||
        !valid_num(in->base_den) || !valid_num(in->cur_num) || !valid_num(in->cur_den)) {
        return SMM_ERR;
    }
    int64_t start_ms = in->start_day * DAY_MS;
    int64_t end_ms = (in->start_day + in->days) * DAY_MS;
    int started = in->now_ms >= start_ms;
    out->ended = in->now_ms >= end_ms;

    if (in->is_rate) {
        out->baseline = in->base_den > 0 ? in->base_num / in->base_den * 100 : 0;
        out->current = in->cur_den > 0 ? in->cur_num / in->cur_den * 100 : 0;
    } else {
        out->baseline = in->base_num;
        out->current = in->cur_num;
    }
    out->target = in->kind == SMM_GOAL_INCREASE
                      ? out->baseline * (1 + in->target_param / 100)
                      : in->target_param;
    int meets = at_least(out->current, out->target);

    if (in->is_rate) {
        /* A rate is a level, not an accumulation: expected = target all along, and it
         * counts as reached only over the whole period. No threads yet: nothing late. */
        out->expected = out->target;
        out->on_track = !started || in->cur_den == 0 || meets;
        out->reached = started && out->ended && meets;
    } else {
        double f = 0;
        if (started) {
            f = out->ended ? 1.0 : (double)(in->now_ms - start_ms) / (double)(end_ms - start_ms);
        }
        out->expected = out->target * f;
        out->on_track = !started || at_least(out->current, out->expected);
        out->reached = started && meets;
    }
    out->progress_pct = out->target > 0 ? out->current / out->target * 100 : 100;
    return SMM_OK;
}

void smm_goal_days(const struct smm_goal_input *in, int64_t *base_from, int64_t *base_to,
                   int64_t *cur_from, int64_t *cur_to)
{
    int64_t today = floor_div(in->now_ms, DAY_MS);
    int64_t last = in->start_day + in->days - 1;
    *base_from = in->start_day - in->days;
    *base_to = in->start_day - 1;
    *cur_from = in->start_day;
    *cur_to = today < last ? today : last;
    if (*cur_to < in->start_day - 1) {
        *cur_to = in->start_day - 1; /* empty, and the same empty range whatever "today" */
    }
}
