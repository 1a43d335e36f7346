/* tests/integration/oracle.h - the expected Redis state, computed independently.
 *
 * Reads the JSON lines the test produced and recomputes, with its own straightforward
 * code (no processor code, no Function library code), every counter the processor must
 * have written (docs/redis-keys.md): per entity (content, account, source, region and
 * segment value) per event-time minute, per hour and lifetime, each rolling window summed
 * from those buckets, engagement and its rate, exact reach sets (lifetime, and per minute
 * for accounts), the leaderboards, dead-letter counts.
 *
 * oracle_check() reads every entity hash `smm:{N}:<entity>` (its packed `t`, `m<minute>`,
 * `h<hour>` fields), asks the `smm` Function library for every window of every entity at
 * explicit minutes (the newest event minute and the one before) and for the leaderboards,
 * and fails the test at the first section with a difference, naming the first one. */
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
    size_t fields_checked; /* counters, rates, reach figures and ranks compared */
    size_t entities;
    size_t minutes;
    double max_reach_error; /* relative, over lifetime reach of entities with reach >= 100 */
};

/* Compares Redis (prefix "smm:") with the expectation; cr_assert on any difference. */
void oracle_check(struct oracle *o, redisContext *c, int64_t messages,
                  struct oracle_report *rep);

/* How far Redis is from the expectation, without asserting (for test_faults.c, whose table
 * must be printed also when a scenario fails). Event units come from the per-type counters
 * of the account entities' lifetime fields (`t` of `smm:{N}:a:<account>`): every
 * well-formed event adds exactly 1 to exactly one of them, so their sums are events. */
struct oracle_diff {
    int64_t expected_events;  /* well-formed events given to the oracle */
    int64_t counted;          /* events Redis counted: the per-type counts of every a: `t` */
    int64_t lost;             /* sum over (account, type) of max(0, expected - actual) */
    int64_t double_counted;   /* sum over (account, type) of max(0, actual - expected),
                                 including accounts and types the oracle does not have */
    int64_t fields_differing; /* every counter (all entities, all metrics incl. engagement)
                                 that differs in `t`, in the kept `m<minute>` / `h<hour>`
                                 fields and in every window read through smm_get */
    int64_t expected_dead_letter;
    int64_t stats_messages, stats_counted, stats_dead_letter; /* smm:stats */
};

/* Fills d; returns 0, or -1 when Redis could not be read (d then partial). */
int oracle_diff(struct oracle *o, redisContext *c, struct oracle_diff *d);

/* One lifetime counter as the writer stored it: `metric` of the `t` field of the entity's
 * hash (0 when absent). For tests that check a single value without the whole oracle.
 * Returns -1 and fails the test when Redis cannot be read or the field is malformed. */
int64_t oracle_lifetime(redisContext *c, const char *entity, const char *metric);

/* Parses a packed counter field ("name=value,..."): calls add(arg, name, value) per pair.
 * Returns the number of pairs, or -1 when the text is malformed (a pair without '=', an
 * empty name, a value that is not a whole integer, a name given twice). *zeros (may be
 * NULL) receives the number of pairs whose value is 0 (the writer stores only nonzero
 * counters). Exposed for the oracle's own unit check. */
int oracle_parse_packed(const char *s, size_t len, int *zeros,
                        void (*add)(void *arg, const char *name, int64_t value), void *arg);

#endif
