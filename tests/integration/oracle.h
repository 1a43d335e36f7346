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

#endif
