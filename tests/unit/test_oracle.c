/* tests/unit/test_oracle.c - the end-to-end oracle's own reading of packed counter fields
 * (docs/redis-keys.md: "name=value" pairs joined by ","), so a malformed field written by
 * the processor is reported as such and never read as zeros. */
#include <criterion/criterion.h>
#include <string.h>

#include "tests/integration/oracle.h"

struct got {
    char names[8][32];
    long long values[8];
    int n;
};

static void add(void *arg, const char *name, int64_t value)
{
    struct got *g = arg;
    cr_assert(g->n < 8);
    snprintf(g->names[g->n], sizeof(g->names[0]), "%s", name);
    g->values[g->n++] = (long long)value;
}

static int parse(const char *s, struct got *g, int *zeros)
{
    memset(g, 0, sizeof(*g));
    return oracle_parse_packed(s, strlen(s), zeros, add, g);
}

Test(oracle, packed_fields_parse)
{
    struct got g;
    int z = -1;
    cr_assert_eq(parse("impression=120,like=7,engagement=-9", &g, &z), 3);
    cr_assert_eq(z, 0);
    cr_assert_str_eq(g.names[0], "impression");
    cr_assert_eq(g.values[0], 120);
    cr_assert_str_eq(g.names[2], "engagement");
    cr_assert_eq(g.values[2], -9);
    cr_assert_eq(parse("", &g, &z), 0);
    cr_assert_eq(parse("frt_5m=3", &g, &z), 1);
    cr_assert_eq(parse("like=0,share=2", &g, &z), 2);
    cr_assert_eq(z, 1, "a stored zero is counted");
    cr_assert_eq(parse("value_cents=123456789012", &g, NULL), 1);
    cr_assert_eq(g.values[0], 123456789012LL);
}

Test(oracle, malformed_fields_rejected)
{
    struct got g;
    static const char *const bad[] = {"like",      "like=",     "=3",        "like=3,",
                                      ",like=3",   "like=3,,x=1", "like=3.5", "like=+3",
                                      "like=3x",   "like=3,like=4", "a=1,b=2,a=3", "like= 3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(parse(bad[i], &g, NULL), -1, "\"%s\" accepted", bad[i]);
    }
    /* a name that is a prefix or suffix of another is not a repeat */
    cr_assert_eq(parse("frt_ms=1,frtb_ms=2,ms=3,frt=4", &g, NULL), 4);
}
