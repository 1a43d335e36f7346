/* metrics/admission.c - Space-Saving with forward decay for breakdown admission (the
 * design is in metrics/admission.h).
 *
 * The counters are a plain array searched linearly: m is small (segments.top_n times
 * segments.sketch_factor, 80 by default) and a flush touches few values per sketch, so a
 * scan beats keeping an index in step. */
#include "metrics/admission.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESCALE 40 /* scale back once the decay factor passes 2^RESCALE */

void smm_adm_init(struct smm_adm *s)
{
    memset(s, 0, sizeof(*s));
}

static void gone_clear(struct smm_adm *s)
{
    for (int i = 0; i < s->n_gone; i++) {
        free(s->gone[i]);
    }
    s->n_gone = 0;
}

void smm_adm_free(struct smm_adm *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->v[i].value);
    }
    free(s->v);
    gone_clear(s);
    free(s->gone);
    smm_adm_init(s);
}

static int find(const struct smm_adm *s, const char *value, size_t len)
{
    for (int i = 0; i < s->n; i++) {
        if (strncmp(s->v[i].value, value, len) == 0 && s->v[i].value[len] == '\0') {
            return i;
        }
    }
    return -1;
}

/* Room for need counters and need_gone dropped values. 0, or -1 when out of memory. */
static int reserve(struct smm_adm *s, int need, int need_gone)
{
    if (need > s->cap) { /* most sketches hold a value or two: grow from there */
        int cap = need > 2 * s->cap ? need : 2 * s->cap;
        void *p = realloc(s->v, (size_t)cap * sizeof(*s->v));
        if (!p) {
            return -1;
        }
        s->v = p;
        s->cap = cap;
    }
    if (need_gone > s->cap_gone) {
        int cap = need_gone > 2 * s->cap_gone ? need_gone : 2 * s->cap_gone;
        void *p = realloc(s->gone, (size_t)cap * sizeof(*s->gone));
        if (!p) {
            return -1;
        }
        s->gone = p;
        s->cap_gone = cap;
    }
    return 0;
}

static char *dup_n(const char *value, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, value, len);
        copy[len] = '\0';
    }
    return copy;
}

/* The counter of value, created (0, 0) when absent; -1 when out of memory. */
static int counter(struct smm_adm *s, const char *value, size_t len)
{
    int i = find(s, value, len);
    if (i >= 0) {
        return i;
    }
    char *copy = dup_n(value, len);
    if (!copy || reserve(s, s->n + 1, 0) != 0) {
        free(copy);
        return -1;
    }
    s->v[s->n] = (struct smm_adm_counter){.value = copy};
    return s->n++;
}

int smm_adm_load_field(struct smm_adm *s, const char *field, size_t flen, const char *val,
                       size_t vlen)
{
    char num[64];
    if (flen == 0 || vlen >= sizeof(num)) {
        return 0;
    }
    memcpy(num, val, vlen);
    num[vlen] = '\0';
    double x = strtod(num, NULL);
    if (flen == 1 && field[0] == 'L') {
        s->L = x;
        s->has_L = 1;
    } else if (flen == 1 && field[0] == 'N') {
        s->N = x;
    } else if (field[0] == 'c' || field[0] == 'e') {
        int i = counter(s, field + 1, flen - 1);
        if (i < 0) {
            return -1;
        }
        if (field[0] == 'c') {
            s->v[i].c = x;
        } else {
            s->v[i].e = x;
        }
    }
    return 0;
}

/* The counter with the smallest count (ties: the smaller value), or -1 when none. */
static int min_counter(const struct smm_adm *s)
{
    int best = -1;
    for (int i = 0; i < s->n; i++) {
        if (best < 0 || s->v[i].c < s->v[best].c ||
            (s->v[i].c == s->v[best].c && strcmp(s->v[i].value, s->v[best].value) < 0)) {
            best = i;
        }
    }
    return best;
}

/* Drops counter i, remembering its value so the writer deletes its fields (room reserved
 * by the caller). */
static void drop(struct smm_adm *s, int i)
{
    s->gone[s->n_gone++] = s->v[i].value;
    s->v[i] = s->v[--s->n];
}

/* A value taken again after being dropped in the same write: its fields are rewritten, not
 * deleted. */
static void ungone(struct smm_adm *s, const char *value)
{
    for (int i = 0; i < s->n_gone; i++) {
        if (strcmp(s->gone[i], value) == 0) {
            free(s->gone[i]);
            s->gone[i] = s->gone[--s->n_gone];
            return;
        }
    }
}

int smm_adm_add(struct smm_adm *s, const char *value, size_t len, double w, int64_t minute,
                int64_t half_life_ms, int m)
{
    /* Everything that can fail first, so that a failure leaves the sketch as it was. */
    char *copy = dup_n(value, len);
    if (!copy || reserve(s, s->n + 1, s->n_gone + s->n + 1) != 0) {
        free(copy);
        return -1;
    }
    double t = (double)minute * 60000.0;
    if (!s->has_L) {
        s->L = t;
        s->has_L = 1;
    }
    double x = (t - s->L) / (double)half_life_ms;
    if (x > RESCALE) {
        double f = pow(2.0, -x);
        for (int i = 0; i < s->n; i++) {
            s->v[i].c *= f;
            s->v[i].e *= f;
            s->v[i].changed = 1;
        }
        s->N *= f;
        s->L = t;
        x = 0;
    }
    double g = w * pow(2.0, x);
    s->N += g;
    s->changed_LN = 1;
    while (s->n > m) { /* m was lowered: shed the smallest */
        drop(s, min_counter(s));
    }
    int i = find(s, value, len);
    if (i >= 0) {
        free(copy);
        s->v[i].c += g;
    } else {
        double c = g, e = 0;
        if (s->n >= m) {
            int mi = min_counter(s);
            e = s->v[mi].c;
            c = e + g;
            drop(s, mi);
        }
        i = s->n++;
        s->v[i] = (struct smm_adm_counter){.value = copy, .c = c, .e = e};
    }
    s->v[i].changed = 1;
    ungone(s, s->v[i].value);
    return 0;
}

/* Ranking: guaranteed weight (count - e) first, then the value. */
struct ranked {
    double sure;
    const char *value;
};

static int by_sure(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    if (x->sure != y->sure) {
        return x->sure > y->sure ? -1 : 1;
    }
    return strcmp(x->value, y->value);
}

int smm_adm_admitted(const struct smm_adm *s, int top_n, int m, const char **out)
{
    if (s->n == 0 || top_n <= 0) {
        return 0;
    }
    struct ranked *r = malloc((size_t)s->n * sizeof(*r));
    if (!r) {
        return -1;
    }
    for (int i = 0; i < s->n; i++) {
        r[i] = (struct ranked){s->v[i].c - s->v[i].e, s->v[i].value};
    }
    qsort(r, (size_t)s->n, sizeof(*r), by_sure);
    double floor_c = 0;
    if (s->n >= m) {
        floor_c = s->v[min_counter(s)].c;
    }
    int k = 0;
    for (int j = 0; j < s->n && k < top_n; j++) {
        if (r[j].sure > floor_c) {
            out[k++] = r[j].value;
        }
    }
    free(r);
    return k;
}

void smm_adm_format(double x, char *buf, size_t size)
{
    snprintf(buf, size, "%.17g", x);
}

void smm_adm_written(struct smm_adm *s)
{
    for (int i = 0; i < s->n; i++) {
        s->v[i].changed = 0;
    }
    s->changed_LN = 0;
    gone_clear(s);
}
