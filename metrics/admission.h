/* metrics/admission.h - which values of a breakdown (an account's sources, regions,
 * segments) keep their own series; the others count under "other" (docs/insights.md,
 * "Segments").
 *
 * A Space-Saving sketch (Metwally, Agrawal, El Abbadi 2005) of m counters per account and
 * dimension, fed each flush with every value's events. A value already monitored adds its
 * weight to its counter; a new one takes a free counter or replaces the smallest counter
 * c_min (count c_min + w, overestimation e = c_min). So for the monitored values
 * count - e <= f <= count, e <= N/m, and every value with f > N/m is monitored (f: true
 * weight, N: total weight). Weights decay by half every half_life ms of event time, by
 * forward decay (Cormode, Shkapenyuk, Srivastava, Xu 2009): an event at minute t weighs
 * w * 2^((t - L) / half_life) against the sketch's landmark L, so stored counters never
 * need rewriting as time passes (they all share the factor and compare alike); the bounds
 * above then hold for decayed weights. When the factor passes 2^40 the sketch is scaled
 * back once (O(m)). A value is admitted while it is among the top_n by guaranteed weight
 * (count - e) and, once all m counters are taken, that guarantee exceeds the smallest
 * counter: a value seen once is guaranteed only its own weight, so one-off values cannot
 * take slots from real ones, and every value with f > N/top_n + N/m is admitted.
 *
 * Pure computation: the processor loads a sketch from its Redis hash (smm_adm_load_field),
 * feeds it (smm_adm_add), asks which values are admitted, and writes back the fields that
 * changed (smm_adm_each_changed, smm_adm_each_gone). Field names: c<value> and e<value>
 * (count and overestimation, "%.17g"), L (landmark, ms) and N (total weight). */
#ifndef SMM_METRICS_ADMISSION_H
#define SMM_METRICS_ADMISSION_H

#include <stddef.h>
#include <stdint.h>

struct smm_adm_counter {
    char *value;
    double c, e;
    int changed; /* since the last smm_adm_written() */
};

struct smm_adm {
    struct smm_adm_counter *v;
    int n, cap;
    double L, N;
    int has_L;
    int changed_LN; /* L or N moved since the last smm_adm_written() */
    char **gone;    /* values dropped since the last smm_adm_written() */
    int n_gone, cap_gone;
};

void smm_adm_init(struct smm_adm *s);
void smm_adm_free(struct smm_adm *s);

/* Takes one field of the stored hash (HGETALL); unknown fields are ignored. 0, or -1 when
 * out of memory. Loading leaves nothing marked changed. */
int smm_adm_load_field(struct smm_adm *s, const char *field, size_t flen, const char *val,
                       size_t vlen);

/* Adds w events of value (len bytes) seen at minute, with m counters and half_life_ms.
 * 0, or -1 when out of memory (the sketch is then unchanged). */
int smm_adm_add(struct smm_adm *s, const char *value, size_t len, double w, int64_t minute,
                int64_t half_life_ms, int m);

/* The admitted values, best first: at most top_n pointers into the sketch (valid until the
 * next add or load) written to out; returns how many. m as for smm_adm_add. */
int smm_adm_admitted(const struct smm_adm *s, int top_n, int m, const char **out);

/* Formats a stored number as Redis keeps it ("%.17g"): buf of at least 32 bytes. */
void smm_adm_format(double x, char *buf, size_t size);

/* Forgets what changed (called once the changes are written). */
void smm_adm_written(struct smm_adm *s);

#endif
