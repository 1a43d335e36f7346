/* tests/unit/test_viral_state_machine.c - metrics/viral_state.c against docs/viral.md's
 * rules: every transition, hysteresis (exit_ticks ticks below, flushes never count),
 * the cooldown, the stale rule, and what is written (seq, since, below). */
#include <criterion/criterion.h>

#include "metrics/viral_state.h"

#define E SMM_VIRAL_STATE_ENTER
#define H SMM_VIRAL_STATE_HOLD
#define R SMM_VIRAL_STATE_RISE
enum { NORMAL, RISING, VIRAL, COOLING };

static const struct smm_viral_state_config cfg = {.exit_ticks = 3, .cooldown_ms = 60000};

static struct smm_viral_state_step step(struct smm_viral_state_rec *st, unsigned flags, int64_t now,
                                        int tick)
{
    struct smm_viral_state_step out;
    smm_viral_state_step(st, flags, now, tick, &cfg, &out);
    *st = out.next;
    return out;
}

Test(viral_state_machine, normal_enter_goes_viral_and_numbers_the_alert)
{
    struct smm_viral_state_rec st = {0};
    struct smm_viral_state_step s = step(&st, E | H | R, 1000, 0);
    cr_assert(s.changed);
    cr_assert_eq(s.from, NORMAL);
    cr_assert_eq(s.to, VIRAL);
    cr_assert_eq(st.state, VIRAL);
    cr_assert_eq(st.seq, 1);
    cr_assert_eq(st.since_ms, 1000);
    cr_assert_eq(st.below, 0);
    cr_assert_eq(s.dirty, SMM_VIRAL_STATE_F_STATE | SMM_VIRAL_STATE_F_BELOW);
}

Test(viral_state_machine, normal_rise_goes_rising_and_quiet_stays)
{
    struct smm_viral_state_rec st = {0};
    struct smm_viral_state_step s = step(&st, H, 1000, 1); /* HOLD alone moves nothing */
    cr_assert(!s.changed);
    cr_assert_eq(s.dirty, 0);
    s = step(&st, 0, 1000, 1);
    cr_assert(!s.changed);
    cr_assert_eq(st.below, 0, "a normal post counts nothing");
    s = step(&st, R, 2000, 0);
    cr_assert(s.changed && s.from == NORMAL && s.to == RISING);
    cr_assert_eq(st.seq, 1);
}

Test(viral_state_machine, rising_enter_goes_viral)
{
    struct smm_viral_state_rec st = {.state = RISING, .since_ms = 5, .seq = 1, .below = 2};
    struct smm_viral_state_step s = step(&st, E, 9000, 0);
    cr_assert(s.changed && s.from == RISING && s.to == VIRAL);
    cr_assert_eq(st.seq, 2);
    cr_assert_eq(st.below, 0);
    cr_assert_eq(st.since_ms, 9000);
}

Test(viral_state_machine, rising_falls_back_after_exit_ticks_ticks_not_flushes)
{
    struct smm_viral_state_rec st = {.state = RISING, .since_ms = 0, .seq = 1};
    struct smm_viral_state_step s = step(&st, 0, 1000, 1);
    cr_assert(!s.changed);
    cr_assert_eq(st.below, 1);
    cr_assert_eq(s.dirty, SMM_VIRAL_STATE_F_BELOW);
    s = step(&st, 0, 1500, 0); /* a flush without RISE does not count */
    cr_assert(!s.changed);
    cr_assert_eq(st.below, 1);
    cr_assert_eq(s.dirty, 0);
    s = step(&st, R, 1700, 0); /* RISE again (a flush too): the count restarts */
    cr_assert_eq(st.below, 0);
    cr_assert_eq(s.dirty, SMM_VIRAL_STATE_F_BELOW);
    step(&st, H, 2000, 1); /* HOLD does not keep a rising post */
    step(&st, 0, 3000, 1);
    cr_assert_eq(st.state, RISING);
    cr_assert_eq(st.below, 2);
    s = step(&st, 0, 4000, 1);
    cr_assert(s.changed && s.from == RISING && s.to == NORMAL);
    cr_assert_eq(st.seq, 2);
    cr_assert_eq(st.below, 0);
}

Test(viral_state_machine, viral_holds_on_hold_and_cools_after_exit_ticks)
{
    struct smm_viral_state_rec st = {.state = VIRAL, .since_ms = 0, .seq = 2};
    step(&st, 0, 1000, 1);
    step(&st, 0, 2000, 1);
    cr_assert_eq(st.below, 2);
    struct smm_viral_state_step s = step(&st, H, 3000, 0); /* HOLD on a flush: reset */
    cr_assert(!s.changed);
    cr_assert_eq(st.below, 0);
    step(&st, R, 4000, 1); /* RISE alone does not keep a viral post */
    step(&st, 0, 5000, 1);
    cr_assert_eq(st.state, VIRAL);
    s = step(&st, 0, 5500, 0); /* flushes never count */
    cr_assert_eq(st.below, 2);
    s = step(&st, 0, 6000, 1);
    cr_assert(s.changed && s.from == VIRAL && s.to == COOLING);
    cr_assert_eq(st.seq, 3);
    cr_assert_eq(st.since_ms, 6000);
    cr_assert_eq(st.below, 0);
}

Test(viral_state_machine, cooling_waits_for_the_cooldown)
{
    struct smm_viral_state_rec st = {.state = COOLING, .since_ms = 10000, .seq = 3};
    /* Before cooldown_ms nothing moves, ENTER or quiet, tick or flush. */
    struct smm_viral_state_step s = step(&st, E | H | R, 69999, 0);
    cr_assert(!s.changed);
    s = step(&st, 0, 69999, 1);
    cr_assert(!s.changed);
    cr_assert_eq(st.below, 0, "cooling counts no ticks");
    cr_assert_eq(s.dirty, 0);
    /* After it: HOLD or RISE keep it cooling... */
    s = step(&st, H, 70000, 1);
    cr_assert(!s.changed);
    s = step(&st, R, 70000, 0);
    cr_assert(!s.changed);
    cr_assert_eq(st.state, COOLING);
    /* ...ENTER makes it viral again. */
    struct smm_viral_state_rec again = st;
    s = step(&again, E, 70000, 0);
    cr_assert(s.changed && s.from == COOLING && s.to == VIRAL);
    cr_assert_eq(again.seq, 4);
    /* ...and quiet (a flush as well) makes it normal. */
    s = step(&st, 0, 70000, 0);
    cr_assert(s.changed && s.from == COOLING && s.to == NORMAL);
    cr_assert_eq(st.seq, 4);
}

Test(viral_state_machine, full_lifecycle_numbers_every_alert_once)
{
    struct smm_viral_state_rec st = {0};
    int64_t t = 0;
    int alerts = 0;
    unsigned seq[] = {R, R, E | H | R, H, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        t += 1000;
        alerts += step(&st, seq[i], t, 1).changed;
    }
    /* rising, viral, then cooling after 3 quiet ticks (t = 7000 .. 9000: 4th..6th) */
    cr_assert_eq(st.state, COOLING);
    cr_assert_eq(alerts, 3);
    cr_assert_eq(st.seq, 3);
    cr_assert_eq(st.since_ms, 7000);
    t = 7000 + 60000;
    cr_assert(step(&st, 0, t - 1, 1).changed == 0);
    cr_assert(step(&st, 0, t, 1).changed);
    cr_assert_eq(st.state, NORMAL);
    cr_assert_eq(st.seq, 4);
}

Test(viral_state_machine, exit_ticks_one_leaves_on_the_first_quiet_tick)
{
    struct smm_viral_state_config c1 = {.exit_ticks = 1, .cooldown_ms = 0};
    struct smm_viral_state_rec st = {.state = VIRAL, .seq = 1};
    struct smm_viral_state_step s;
    smm_viral_state_step(&st, 0, 10, 1, &c1, &s);
    cr_assert(s.changed && s.to == COOLING);
    st = s.next;
    smm_viral_state_step(&st, 0, 10, 0, &c1, &s); /* cooldown 0: normal at once */
    cr_assert(s.changed && s.to == NORMAL);
}

Test(viral_state_machine, stale_rule)
{
    struct smm_viral_state_rec st = {.state = VIRAL, .seq = 1};
    cr_assert(!smm_viral_state_stale(&st, 1000, 1000 + 59999, 60000));
    cr_assert(smm_viral_state_stale(&st, 1000, 1000 + 60000, 60000));
    struct smm_viral_state_rec normal = {0};
    cr_assert(!smm_viral_state_stale(&normal, 0, 1000000, 60000), "normal posts are not stale");
    /* A stale post is stepped as quiet on the clock: it cools, then goes back to normal. */
    for (int i = 0; i < 3; i++) {
        step(&st, 0, 200000 + i, 1);
    }
    cr_assert_eq(st.state, COOLING);
    step(&st, 0, 200002 + 60000, 1);
    cr_assert_eq(st.state, NORMAL);
}
