/* tests/unit/test_admission_sketch.c - the Space-Saving sketch of metrics/admission.c on
 * hand-checked cases: a new value replaces the smallest counter and inherits its count as
 * overestimation, the replaced value is listed for deletion, admission needs a guarantee
 * above the smallest counter, a stored sketch loads as written, and forward decay scales
 * back after 40 half-lives. (tests/integration/test_admission.c checks the bounds on a
 * random stream through the processor and Redis.) */
#include <criterion/criterion.h>
#include <string.h>

#include "metrics/admission.h"

#define HOUR_MS 3600000LL

static void add(struct smm_adm *s, const char *v, double w, int64_t minute)
{
    cr_assert_eq(smm_adm_add(s, v, strlen(v), w, minute, HOUR_MS, 2), 0);
}

static const struct smm_adm_counter *get(const struct smm_adm *s, const char *v)
{
    for (int i = 0; i < s->n; i++) {
        if (strcmp(s->v[i].value, v) == 0) {
            return &s->v[i];
        }
    }
    return NULL;
}

Test(admission_sketch, replace_the_smallest)
{
    struct smm_adm s;
    smm_adm_init(&s);
    add(&s, "a", 5, 100);
    add(&s, "b", 3, 100);
    smm_adm_written(&s);
    add(&s, "c", 1, 100); /* m = 2: c takes b's counter, 3 + 1, overestimated by 3 */
    cr_assert_eq(s.n, 2);
    cr_assert_null(get(&s, "b"));
    cr_assert_float_eq(get(&s, "c")->c, 4.0, 1e-12);
    cr_assert_float_eq(get(&s, "c")->e, 3.0, 1e-12);
    cr_assert_float_eq(s.N, 9.0, 1e-12);
    cr_assert_eq(s.n_gone, 1);
    cr_assert_str_eq(s.gone[0], "b");
    cr_assert(get(&s, "c")->changed && !get(&s, "a")->changed);
    /* a is guaranteed 5 > the smallest counter 4; c only 1 */
    const char *adm[2];
    cr_assert_eq(smm_adm_admitted(&s, 2, 2, adm), 1);
    cr_assert_str_eq(adm[0], "a");
    /* b back in the same write: its fields are rewritten, not deleted */
    add(&s, "b", 10, 100);
    cr_assert_eq(s.n_gone, 1);
    cr_assert_str_eq(s.gone[0], "c");
    smm_adm_free(&s);
}

Test(admission_sketch, load_as_stored)
{
    struct smm_adm s;
    smm_adm_init(&s);
    const char *f[][2] = {{"L", "6000000"}, {"N", "12.5"}, {"cx", "10"}, {"ex", "2"},
                          {"cy", "2.5"}, {"ey", "0"}, {"X", "99"}, {"v", "7"}};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        cr_assert_eq(smm_adm_load_field(&s, f[i][0], strlen(f[i][0]), f[i][1],
                                        strlen(f[i][1])),
                     0);
    }
    cr_assert_eq(s.n, 2);
    cr_assert(s.has_L && s.L == 6000000.0 && s.N == 12.5);
    cr_assert(get(&s, "x")->c == 10.0 && get(&s, "x")->e == 2.0 && !get(&s, "x")->changed);
    const char *adm[2];
    cr_assert_eq(smm_adm_admitted(&s, 2, 2, adm), 1, "x: 8 > 2.5; y: 2.5, not above");
    cr_assert_str_eq(adm[0], "x");
    char num[40];
    smm_adm_format(0.1, num, sizeof(num));
    cr_assert_str_eq(num, "0.10000000000000001", "17 significant digits: loads back exact");
    smm_adm_free(&s);
}

Test(admission_sketch, decay_and_rescale)
{
    struct smm_adm s;
    smm_adm_init(&s);
    add(&s, "old", 8, 0);
    add(&s, "new", 1, 60); /* an hour later: weighs 2 against the landmark */
    cr_assert_float_eq(get(&s, "new")->c, 2.0, 1e-12);
    add(&s, "new", 1, 41 * 60); /* 41 half-lives: scaled back to a new landmark */
    cr_assert_float_eq(s.L, 41 * 60 * 60000.0, 1e-3);
    cr_assert_float_eq(get(&s, "new")->c, 1.0 + 2.0 / 2199023255552.0, 1e-12); /* 2^41 */
    cr_assert(get(&s, "old")->changed, "a rescale rewrites every counter");
    smm_adm_free(&s);
}
