/* metrics/alert_text.c - the words a viral alert says to people. See alert_text.h.
 *
 * One table holds every clause, as a template with named slots ({v}, {bound}, {ref},
 * {pct} = bound / ref in percent) and how each slot's number is written, so the wording
 * lives in one place and docs/alerts.md can list it line by line. Numbers are formatted
 * here, not with the locale (the processor runs in the C locale). */
#include "metrics/alert_text.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum style { COUNT, ONE, TWO, WHOLE };

static const struct {
    const char *say;
    enum style v, bound, ref;
} words[SMM_ALERT_FACT__COUNT] = {
    [SMM_ALERT_REACH] = {"reached {v} people in 5 minutes (its audience threshold is {bound})",
                         COUNT, COUNT, COUNT},
    [SMM_ALERT_REACH_EARLY] = {"reached {v} people in 5 minutes, past the early-warning level "
                               "of {bound} ({pct}% of its audience threshold of {ref})",
                               COUNT, COUNT, COUNT},
    [SMM_ALERT_SHARE_Z] = {"is shared {ref} times a minute, {v} standard deviations above this "
                           "account's earlier posts at the same age (share velocity z-score; "
                           "the rule needs {bound})",
                           ONE, ONE, ONE},
    [SMM_ALERT_NON_FOLLOWERS] = {"{v}% of the people who saw it in 5 minutes do not follow the "
                                 "account (the rule needs {bound}%)",
                                 WHOLE, WHOLE, WHOLE},
    [SMM_ALERT_DEPTH] = {"its shares travelled {v} hops from the post (the rule needs {bound})",
                         COUNT, COUNT, COUNT},
    [SMM_ALERT_PREDICTED] = {"the SEISMIC prediction is {v} shares in the end (the rule needs "
                             "{bound})",
                             COUNT, COUNT, COUNT},
    [SMM_ALERT_SEISMIC] = {"the SEISMIC prediction says it will keep spreading: even on the "
                           "cautious estimate each share brings {v} more ({ref} shares so far)",
                           TWO, TWO, COUNT},
    [SMM_ALERT_BELOW_EXIT] = {"{v} people saw it in the last 5 minutes, under the {bound} "
                              "a viral post must keep ({pct}% of its audience threshold of "
                              "{ref})",
                              COUNT, COUNT, COUNT},
    [SMM_ALERT_BELOW_EARLY] = {"{v} people saw it in the last 5 minutes, under the "
                               "early-warning level of {bound}, and it is shared {ref} times "
                               "a minute",
                               COUNT, COUNT, ONE},
};

size_t smm_alert_text_count(double n, char *out, size_t size)
{
    char digits[64];
    if (size == 0) {
        return 0;
    }
    if (isnan(n) || isinf(n) || fabs(n) >= 1e18) {
        snprintf(out, size, "%s", isnan(n) ? "unknown" : n > 0 ? "unbounded" : "-unbounded");
        return strlen(out);
    }
    double r = round(n);
    int len = snprintf(digits, sizeof(digits), "%.0f", fabs(r));
    size_t o = 0;
    if (r < 0 && o + 1 < size) {
        out[o++] = '-';
    }
    for (int i = 0; i < len && o + 1 < size; i++) {
        if (i > 0 && (len - i) % 3 == 0) {
            out[o++] = ',';
            if (o + 1 >= size) {
                break;
            }
        }
        out[o++] = digits[i];
    }
    out[o] = '\0';
    return o;
}

static void number(enum style st, double x, char *out, size_t size)
{
    if (st == COUNT || !isfinite(x)) {
        smm_alert_text_count(x, out, size);
    } else if (st == WHOLE) {
        snprintf(out, size, "%.0f", x);
    } else {
        snprintf(out, size, st == ONE ? "%.1f" : "%.2f", x);
    }
}

int smm_alert_text_add(char *buf, size_t size, int fact, double v, double bound, double ref)
{
    if (fact < 0 || fact >= SMM_ALERT_FACT__COUNT || size == 0) {
        return -1;
    }
    char clause[512], nv[32], nb[32], nr[32], np[32];
    number(words[fact].v, v, nv, sizeof(nv));
    number(words[fact].bound, bound, nb, sizeof(nb));
    number(words[fact].ref, ref, nr, sizeof(nr));
    snprintf(np, sizeof(np), "%.0f", ref > 0 ? 100.0 * bound / ref : 0.0);
    size_t o = 0;
    for (const char *t = words[fact].say; *t && o + 1 < sizeof(clause);) {
        const char *slot = NULL;
        size_t skip = 0;
        if (*t == '{') {
            static const char *const names[] = {"{v}", "{bound}", "{ref}", "{pct}"};
            const char *vals[] = {nv, nb, nr, np};
            for (int i = 0; i < 4; i++) {
                if (strncmp(t, names[i], strlen(names[i])) == 0) {
                    slot = vals[i];
                    skip = strlen(names[i]);
                }
            }
        }
        if (slot) {
            size_t sl = strlen(slot);
            if (o + sl >= sizeof(clause)) {
                return -1;
            }
            memcpy(clause + o, slot, sl);
            o += sl;
            t += skip;
        } else {
            clause[o++] = *t++;
        }
    }
    clause[o] = '\0';
    size_t used = strlen(buf);
    size_t need = (used ? 2 : 0) + o;
    if (used + need + 1 > size) {
        return -1;
    }
    snprintf(buf + used, size - used, "%s%s", used ? "; " : "", clause);
    return 0;
}

size_t smm_alert_text_viral(char *out, size_t size, const char *id, int to, const char *why)
{
    static const char *const heads[] = {"is back to normal", "is rising", "went viral",
                                        "is cooling down"};
    if (size == 0) {
        return 0;
    }
    const char *head = heads[to >= 0 && to < 4 ? to : 0];
    int n = why && *why ? snprintf(out, size, "%s %s: %s.", id, head, why)
                        : snprintf(out, size, "%s %s.", id, head);
    return n < 0 ? 0 : ((size_t)n < size ? (size_t)n : size - 1);
}
