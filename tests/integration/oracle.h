/* tests/integration/oracle.h - the expected Redis state, computed independently.
 *
 * Reads the JSON lines the test produced and recomputes, with its own straightforward
 * code (no processor code), every counter the processor must have written: per content
 * and account, per minute bucket, lifetime, each rolling window given the retirement
 * markers Redis reports, engagement and its rate, exact reach sets, dead-letter counts.
 * oracle_check() compares key by key and fails the test on the first difference. */
#ifndef SMM_TESTS_ORACLE_H
#define SMM_TESTS_ORACLE_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

struct oracle;

struct oracle *oracle_new(void);
void oracle_free(struct oracle *o);
/* Adds one well-formed event (JSON text). */
void oracle_add_event(struct oracle *o, const char *json, size_t len);
/* Adds one message that must be dead-lettered with this reason. */
void oracle_add_reject(struct oracle *o, const char *reason);

struct oracle_report {
    size_t fields_checked;
    size_t entities;
    size_t minutes;
    double max_reach_error; /* relative, over entities with reach >= 100 */
};

/* Compares Redis (prefix "smm:") with the expectation; cr_assert on any difference. */
void oracle_check(struct oracle *o, redisContext *c, int64_t messages,
                  struct oracle_report *rep);

/* How far Redis is from the expectation, without asserting (added for test_faults.c, whose
 * table must be printed also when a scenario fails). Event units come from the per-type
 * account fields of smm:total (a:<account>:<type>): every well-formed event adds exactly 1
 * to exactly one of them, so their sums are events. */
struct oracle_diff {
    int64_t expected_events;  /* well-formed events given to the oracle */
    int64_t counted;          /* events Redis counted: sum of a:<account>:<type> in smm:total */
    int64_t lost;             /* sum over those fields of max(0, expected - actual) */
    int64_t double_counted;   /* sum over those fields of max(0, actual - expected), including
                                 fields Redis has and the oracle does not */
    int64_t fields_differing; /* every count field (contents and accounts, all metrics incl.
                                 engagement) of smm:total, the expected minute buckets and the
                                 window hashes (given Redis' retirement markers) that differs */
    int64_t expected_dead_letter;
    int64_t stats_messages, stats_counted, stats_dead_letter; /* smm:stats */
};

/* Fills d; returns 0, or -1 when Redis could not be read (d then partial). */
int oracle_diff(struct oracle *o, redisContext *c, struct oracle_diff *d);

#endif
