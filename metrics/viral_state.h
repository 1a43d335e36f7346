/* metrics/viral_state.h - the viral state machine of one post, decided in the processor.
 *
 * A post's persisted state (smm:v:<content_id> fields state, state_since_ms, seq, below)
 * and one step of the machine (docs/viral.md, "The state machine"):
 *
 *   normal  --ENTER--> viral            normal  --RISE--> rising
 *   rising  --ENTER--> viral            rising  --no RISE on exit_ticks ticks--> normal
 *   viral   --no ENTER/HOLD on exit_ticks ticks--> cooling
 *   cooling --cooldown_ms over, ENTER--> viral
 *   cooling --cooldown_ms over, no ENTER/HOLD/RISE--> normal
 *
 * Hysteresis: `below` counts consecutive wall-clock ticks without the flag that keeps the
 * state (RISE for rising, ENTER or HOLD for viral); a flush never counts (it is evaluated
 * as often as events arrive), it only resets the count when the flag holds. A state
 * change sets since = now, below = 0 and seq + 1: seq numbers the post's alerts
 * ("viral:<id>:<seq>") and is what connectors/lua/smm.lua compares before it applies a
 * decision (another processor may have moved the post first). A flagged post nobody has
 * evaluated for viral.stale_ms is stepped with flags = 0 on a tick (quiet).
 *
 * Pure: no I/O, no clock (now is an argument), no allocation. */
#ifndef SMM_METRICS_VIRAL_STATE_H
#define SMM_METRICS_VIRAL_STATE_H

#include <stdint.h>

/* Flags and states are those of metrics/viral.h (SMM_VIRAL_ENTER/HOLD/RISE/EVAL,
 * enum smm_viral_state), repeated here as plain values so this header stands alone. */
#define SMM_VIRAL_STATE_ENTER 1u
#define SMM_VIRAL_STATE_HOLD 2u
#define SMM_VIRAL_STATE_RISE 4u
#define SMM_VIRAL_STATE_EVAL 8u

/* The persisted state of a post; all zero = a post never flagged (normal, seq 0). */
struct smm_viral_state_rec {
    int state;              /* 0 normal, 1 rising, 2 viral, 3 cooling */
    int64_t since_ms;       /* state_since_ms: when it entered state */
    int64_t seq;            /* number of state changes so far (alerts emitted) */
    int64_t below;          /* consecutive ticks without the flag that keeps the state */
};

struct smm_viral_state_config {
    int64_t exit_ticks;  /* viral.exit_ticks */
    int64_t cooldown_ms; /* viral.cooldown_ms */
};

/* What one step decided. */
struct smm_viral_state_step {
    struct smm_viral_state_rec next;
    int changed;      /* 1: an alert, from -> to, with next.seq as its number */
    int from, to;     /* the states of the alert (to == next.state) */
    int dirty;        /* fields of the stored state that differ from prev (to write) */
};
#define SMM_VIRAL_STATE_F_STATE 1 /* state, state_since_ms, seq */
#define SMM_VIRAL_STATE_F_BELOW 2

/* One evaluation of a post in state prev with the rule flags of now_ms. tick = 1 for a
 * wall-clock evaluation (counts towards exits), 0 for a flush. Writes *out; never fails. */
void smm_viral_state_step(const struct smm_viral_state_rec *prev, unsigned flags, int64_t now_ms,
                          int tick, const struct smm_viral_state_config *cfg,
                          struct smm_viral_state_step *out);

/* The flags a flagged post no processor has updated for stale_ms is stepped with (on a
 * tick): none, it is quiet. Returns 1 when the post is stale: state not normal and
 * now_ms - updated_ms >= stale_ms. */
int smm_viral_state_stale(const struct smm_viral_state_rec *st, int64_t updated_ms, int64_t now_ms,
                          int64_t stale_ms);

#endif
