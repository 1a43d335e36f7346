/* connectors/argv.h - a growable list of binary-safe arguments for one Redis command,
 * kept in the wire format.
 *
 * The processor encodes a flush as script arguments: hundreds of thousands of short ones.
 * Each is written straight into one buffer as a RESP bulk string ("$<len>\r\n<data>\r\n"),
 * so the command is sent with redisAppendFormattedCommand() from that buffer: no pointer
 * and length arrays for redisAppendCommandArgv(), and no second copy formatted by hiredis
 * (together they were three times the arguments' size at the moment of a flush). */
#ifndef SMM_CONNECTORS_ARGV_H
#define SMM_CONNECTORS_ARGV_H

#include <stddef.h>
#include <stdint.h>

/* Room kept in front of the arguments for the command's header (see smm_argv_command). */
#define SMM_ARGV_HEAD 128

struct smm_argv {
    char *buf;    /* SMM_ARGV_HEAD bytes, then the arguments in RESP */
    size_t used, cap;
    size_t *off;  /* start of each argument's data in buf */
    uint32_t *len;
    int n, cap_args;
};

void smm_argv_init(struct smm_argv *av);
void smm_argv_free(struct smm_argv *av);
void smm_argv_reset(struct smm_argv *av);
/* Appends one argument. Returns 0, or -1 on out-of-memory (the list is then unusable). */
int smm_argv_add(struct smm_argv *av, const void *data, size_t len);
int smm_argv_add_str(struct smm_argv *av, const char *s);
int smm_argv_add_int(struct smm_argv *av, int64_t v);
/* Overwrites argument i with an integer of the same width, padded with leading zeros (for
 * counts known only after the list; Lua's tonumber() reads them). Returns 0 or -1. */
int smm_argv_set_int(struct smm_argv *av, int i, int64_t v);
/* Argument i (not NUL-terminated) and its length. */
const char *smm_argv_get(const struct smm_argv *av, int i, size_t *len);
/* The whole command in RESP: the n_head arguments head[] (at most SMM_ARGV_HEAD - 16 bytes
 * once encoded, e.g. EVALSHA <sha> 0), then the list. The result points into av->buf and
 * stays valid until the next add or reset. Returns 0, or -1 when head does not fit. */
int smm_argv_command(struct smm_argv *av, const char *const *head, int n_head,
                     const char **cmd, size_t *cmd_len);

/* The same command with the arguments at .. end-1 replaced by `sections` arguments "0"
 * (section counts: the sections left out), in three pieces to send back to back; they
 * point into av->buf (and a constant) like smm_argv_command()'s. Returns 0, or -1 when
 * head does not fit, not 0 <= at < end <= av->n or not 1 <= sections <= 4. */
struct smm_piece {
    const char *p;
    size_t len;
};
int smm_argv_command_cut(struct smm_argv *av, const char *const *head, int n_head, int at,
                         int end, int sections, struct smm_piece out[3]);

/* A list of whole Redis commands in RESP, sent back to back (the flush's plain writes,
 * which need no script). Out of memory is sticky: oom stays set until the next reset. */
struct smm_cmds {
    char *buf;
    size_t used, cap;
    int n;   /* commands */
    int oom;
};

void smm_cmds_init(struct smm_cmds *c);
void smm_cmds_free(struct smm_cmds *c);
void smm_cmds_reset(struct smm_cmds *c);
/* Starts a command of argc arguments; exactly argc smm_cmds_arg*() calls must follow. */
void smm_cmds_begin(struct smm_cmds *c, int argc);
void smm_cmds_arg(struct smm_cmds *c, const void *data, size_t len);
void smm_cmds_arg_str(struct smm_cmds *c, const char *s);
void smm_cmds_arg_int(struct smm_cmds *c, int64_t v);

/* A flush's counter values and post sketches as plain commands (connectors/redis_sink.c,
 * "the plain path"): cmds runs in a MULTI/EXEC with the script's flush call, once the
 * script's 'check' call with the arguments check has passed; they replace the flush's
 * sections from argument cut_at (the first one's count) to cut_end (excluded), cut_sections
 * of them. check.n == 0: this flush has no plain path. */
struct smm_flush_plain {
    struct smm_cmds cmds;
    struct smm_argv check;
    int cut_at, cut_end, cut_sections;
};

#endif
