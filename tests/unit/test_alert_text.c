/* tests/unit/test_alert_text.c - the clauses viral alerts say to people
 * (metrics/alert_text.c): numbers as people read them, one clause per rule, and the exact
 * forms docs/alerts.md lists. Links smm_metrics only. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "metrics/alert_text.h"

static const char *count(double n)
{
    static char buf[64];
    smm_alert_text_count(n, buf, sizeof(buf));
    return buf;
}

Test(alert_text, counts_are_whole_with_thousands_separators)
{
    cr_expect_str_eq(count(0), "0");
    cr_expect_str_eq(count(999), "999");
    cr_expect_str_eq(count(1000.19), "1,000");
    cr_expect_str_eq(count(999.6), "1,000");
    cr_expect_str_eq(count(1234567.4), "1,234,567");
    cr_expect_str_eq(count(-12345), "-12,345");
    cr_expect_str_eq(count(INFINITY), "unbounded");
    cr_expect_str_eq(count(NAN), "unknown");
    char small[6];
    cr_expect_eq(smm_alert_text_count(1234567, small, sizeof(small)), 5);
    cr_expect_str_eq(small, "1,234", "truncated, still terminated");
}

static const char *clause(int fact, double v, double bound, double ref)
{
    static char buf[640];
    buf[0] = '\0';
    cr_assert_eq(smm_alert_text_add(buf, sizeof(buf), fact, v, bound, ref), 0);
    return buf;
}

/* Every form docs/alerts.md lists, word for word. */
Test(alert_text, every_rule_in_plain_words)
{
    cr_expect_str_eq(clause(SMM_ALERT_REACH, 1000.19, 1000, 1000),
                     "reached 1,000 people in 5 minutes (its audience threshold is 1,000)");
    cr_expect_str_eq(clause(SMM_ALERT_REACH_EARLY, 612.4, 500, 1000),
                     "reached 612 people in 5 minutes, past the early-warning level of 500 "
                     "(50% of its audience threshold of 1,000)");
    cr_expect_str_eq(clause(SMM_ALERT_SHARE_Z, 4.12, 3, 14.2),
                     "is shared 14.2 times a minute, 4.1 standard deviations above this "
                     "account's earlier posts at the same age (share velocity z-score; the "
                     "rule needs 3.0)");
    cr_expect_str_eq(clause(SMM_ALERT_NON_FOLLOWERS, 63.04, 50, 0),
                     "63% of the people who saw it in 5 minutes do not follow the account "
                     "(the rule needs 50%)");
    cr_expect_str_eq(clause(SMM_ALERT_DEPTH, 5, 3, 0),
                     "its shares travelled 5 hops from the post (the rule needs 3)");
    cr_expect_str_eq(clause(SMM_ALERT_PREDICTED, 12900.5, 10000, 0),
                     "the SEISMIC prediction is 12,901 shares in the end (the rule needs 10,000)");
    cr_expect_str_eq(clause(SMM_ALERT_PREDICTED, INFINITY, 10000, 0),
                     "the SEISMIC prediction is unbounded shares in the end (the rule needs "
                     "10,000)");
    cr_expect_str_eq(clause(SMM_ALERT_SEISMIC, 3.55634, 1, 1250),
                     "the SEISMIC prediction says it will keep spreading: even on the "
                     "cautious estimate each share brings 3.56 more (1,250 shares so far)");
    cr_expect_str_eq(clause(SMM_ALERT_BELOW_EXIT, 412, 700, 1000),
                     "412 people saw it in the last 5 minutes, under the 700 a viral "
                     "post must keep (70% of its audience threshold of 1,000)");
    cr_expect_str_eq(clause(SMM_ALERT_BELOW_EARLY, 87, 500, 0.4),
                     "87 people saw it in the last 5 minutes, under the early-warning level "
                     "of 500, and it is shared 0.4 times a minute");
}

Test(alert_text, clauses_join_and_never_end_mid_sentence)
{
    char buf[640] = "";
    cr_assert_eq(smm_alert_text_add(buf, sizeof(buf), SMM_ALERT_REACH, 1200, 1000, 1000), 0);
    cr_assert_eq(smm_alert_text_add(buf, sizeof(buf), SMM_ALERT_DEPTH, 4, 2, 0), 0);
    cr_expect_str_eq(buf, "reached 1,200 people in 5 minutes (its audience threshold is 1,000); "
                          "its shares travelled 4 hops from the post (the rule needs 2)");
    char small[80] = "";
    cr_assert_eq(smm_alert_text_add(small, sizeof(small), SMM_ALERT_DEPTH, 4, 2, 0), 0);
    size_t before = strlen(small);
    cr_expect_eq(smm_alert_text_add(small, sizeof(small), SMM_ALERT_REACH, 1, 2, 2), -1);
    cr_expect_eq(strlen(small), before, "a clause that does not fit is left out whole");
    cr_expect_eq(smm_alert_text_add(small, sizeof(small), SMM_ALERT_FACT__COUNT, 1, 1, 1), -1);
    cr_expect_eq(smm_alert_text_add(small, sizeof(small), -1, 1, 1, 1), -1);
}
