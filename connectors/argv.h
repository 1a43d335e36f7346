/* connectors/argv.h - a growable list of binary-safe arguments for one Redis command.
 *
 * The processor encodes a flush as script arguments; the Redis sink sends them with
 * redisAppendCommandArgv(). Arguments are copied into one buffer, so building a batch of
 * 100k arguments costs a few reallocs, not 100k mallocs. */
#ifndef SMM_CONNECTORS_ARGV_H
#define SMM_CONNECTORS_ARGV_H

#include <stddef.h>
#include <stdint.h>

struct smm_argv {
    char *buf;
    size_t used, cap;
    size_t *off; /* start of each argument in buf */
    size_t *len;
    int n, cap_args;
    const char **ptrs; /* filled by smm_argv_finish() */
};

void smm_argv_init(struct smm_argv *av);
void smm_argv_free(struct smm_argv *av);
void smm_argv_reset(struct smm_argv *av);
/* Appends one argument. Returns 0, or -1 on out-of-memory (the list is then unusable). */
int smm_argv_add(struct smm_argv *av, const void *data, size_t len);
int smm_argv_add_str(struct smm_argv *av, const char *s);
int smm_argv_add_int(struct smm_argv *av, int64_t v);
/* Overwrites argument i with an integer (for counts known only after the list). */
int smm_argv_set_int(struct smm_argv *av, int i, int64_t v);
/* Builds the pointer array; valid until the next add. Returns 0 or -1. */
int smm_argv_finish(struct smm_argv *av);

#endif
