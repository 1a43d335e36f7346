/* metrics/viral_state.c - the viral state machine of one post. See viral_state.h.
 *
 * Why here and not in the Redis script: the rules are product logic, and C is where they
 * can be unit-tested over any timeline (time is an argument). Redis still makes a decision
 * and its alert commit with the counters and offsets they follow from (one script call),
 * but it only checks that the post's stored seq is the one this step started from and
 * applies the writes (connectors/lua/smm.lua, viral section).
 *
 * The rules, exactly as docs/viral.md states them:
 *   normal:  ENTER -> viral, else RISE -> rising.
 *   rising:  ENTER -> viral; RISE resets below; a tick without RISE counts below, and
 *            exit_ticks of them -> normal.
 *   viral:   ENTER or HOLD resets below; a tick without either counts, exit_ticks -> cooling.
 *   cooling: nothing before cooldown_ms; after it ENTER -> viral, and no ENTER, HOLD or
 *            RISE -> normal (on a flush as well as on a tick).
 * A flush (tick = 0) never counts towards an exit. */
#include "metrics/viral_state.h"

#include <string.h>

void smm_viral_state_step(const struct smm_viral_state_rec *prev, unsigned flags, int64_t now_ms,
                          int tick, const struct smm_viral_state_config *cfg,
                          struct smm_viral_state_step *out)
{
    memset(out, 0, sizeof(*out));
    out->next = *prev;
    out->from = prev->state;
    int enter = (flags & SMM_VIRAL_STATE_ENTER) != 0;
    int hold = (flags & SMM_VIRAL_STATE_HOLD) != 0;
    int rise = (flags & SMM_VIRAL_STATE_RISE) != 0;
    int64_t below = prev->below;
    int to = -1;
    switch (prev->state) {
    case 1: /* rising */
        if (enter) {
            to = 2;
        } else if (rise) {
            below = 0;
        } else if (tick && ++below >= cfg->exit_ticks) {
            to = 0;
        }
        break;
    case 2: /* viral */
        if (enter || hold) {
            below = 0;
        } else if (tick && ++below >= cfg->exit_ticks) {
            to = 3;
        }
        break;
    case 3: /* cooling: stays at least cooldown_ms, then viral again or normal */
        if (now_ms - prev->since_ms >= cfg->cooldown_ms) {
            if (enter) {
                to = 2;
            } else if (!hold && !rise) {
                to = 0;
            }
        }
        break;
    default: /* normal (and anything unknown, read as normal) */
        if (enter) {
            to = 2;
        } else if (rise) {
            to = 1;
        }
        break;
    }
    if (to >= 0) {
        out->changed = 1;
        out->to = to;
        out->next.state = to;
        out->next.since_ms = now_ms;
        out->next.seq = prev->seq + 1;
        out->next.below = 0;
        out->dirty = SMM_VIRAL_STATE_F_STATE | SMM_VIRAL_STATE_F_BELOW;
        return;
    }
    out->to = prev->state;
    out->next.below = below;
    if (below != prev->below) {
        out->dirty = SMM_VIRAL_STATE_F_BELOW;
    }
}

int smm_viral_state_stale(const struct smm_viral_state_rec *st, int64_t updated_ms, int64_t now_ms,
                          int64_t stale_ms)
{
    return st->state != 0 && now_ms - updated_ms >= stale_ms;
}
