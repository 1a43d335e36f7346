/* tests/unit/test_packed.c - the packed bucket text "name=value,..." (metrics/packed.c):
 * parse, add and format round trips, zeros dropped, negative and extreme values, and a
 * buffer one byte short refused rather than cut. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "metrics/packed.h"

Test(packed, round_trip_and_zeros)
{
    struct smm_packed p;
    const char *in = "like=3,engagement=-2,view=7";
    cr_assert_eq(smm_packed_parse(&p, in, strlen(in)), 0);
    cr_assert_eq(smm_packed_add(&p, "like", -3), 0);
    cr_assert_eq(smm_packed_add(&p, "share", 1), 0);
    char out[SMM_PACKED_TEXT_MAX];
    int n = smm_packed_format(&p, out, sizeof(out));
    cr_assert_str_eq(out, "engagement=-2,view=7,share=1", "like fell to 0 and is dropped");
    cr_assert_eq(n, (int)strlen(out));
    cr_assert_eq(smm_packed_get(&p, "engagement"), -2);
}

Test(packed, extremes_as_printf_writes_them)
{
    struct smm_packed p;
    cr_assert_eq(smm_packed_parse(&p, "", 0), 0);
    cr_assert_eq(smm_packed_add(&p, "a", INT64_MIN), 0);
    cr_assert_eq(smm_packed_add(&p, "b", INT64_MAX), 0);
    cr_assert_eq(smm_packed_add(&p, "c", 10), 0);
    char out[SMM_PACKED_TEXT_MAX], want[128];
    snprintf(want, sizeof(want), "a=%" PRId64 ",b=%" PRId64 ",c=10", INT64_MIN, INT64_MAX);
    cr_assert_eq(smm_packed_format(&p, out, sizeof(out)), (int)strlen(want));
    cr_assert_str_eq(out, want);
}

Test(packed, short_buffer_refused)
{
    struct smm_packed p;
    cr_assert_eq(smm_packed_parse(&p, "like=12,view=3", 14), 0);
    char out[16];
    cr_assert_eq(smm_packed_format(&p, out, 15), 14, "14 bytes and the NUL fit 15");
    cr_assert_str_eq(out, "like=12,view=3");
    cr_assert_eq(smm_packed_format(&p, out, 14), -1, "the NUL does not fit 14");
    cr_assert_eq(smm_packed_format(&p, out, 0), -1);
    struct smm_packed empty;
    cr_assert_eq(smm_packed_parse(&empty, "", 0), 0);
    cr_assert_eq(smm_packed_format(&empty, out, 1), 0);
    cr_assert_str_eq(out, "");
}
