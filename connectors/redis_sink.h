/* connectors/redis_sink.h - the Redis connection and the atomic state script.
 *
 * One hiredis context, (re)connected lazily. Every state change goes through one Lua
 * script (connectors/lua/smm.lua) run with EVALSHA, alone or in a MULTI/EXEC with the
 * counter values as plain commands, so a batch of counters, sketches and the partition
 * offset commit together; each connect also installs the read library
 * (connectors/lua/smm_lib.lua) that readers call with FCALL. Not thread-safe: one sink
 * per thread. */
#ifndef SMM_CONNECTORS_REDIS_SINK_H
#define SMM_CONNECTORS_REDIS_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "connectors/argv.h"
#include "connectors/redis_conn.h"
#include "connectors/redis_keys.h"
#include "connectors/sink.h"


enum smm_flush_status { SMM_FLUSH_APPLIED, SMM_FLUSH_DUP, SMM_FLUSH_FENCED, SMM_FLUSH_STALE };

/* Why one partition of a flush was refused. */
struct smm_flush_reject {
    int part;                  /* 0-based index of the partition in the flush */
    enum smm_flush_status status; /* DUP, FENCED or STALE */
    int64_t stored_offset;     /* the offset Redis holds (DUP, STALE); -1 = none */
    char owner[160];           /* FENCED: the token that owns the partition now */
};

struct smm_redis_sink;

/* Copies opts. Does not connect. Returns NULL (errstr filled) on out-of-memory. */
struct smm_redis_sink *smm_redis_sink_new(const struct smm_redis_opts *opts, char *errstr,
                                          size_t errstr_size);
void smm_redis_sink_destroy(struct smm_redis_sink *sink);

/* Connects when not connected: AUTH, SELECT, SCRIPT LOAD, then FUNCTION LOAD REPLACE of
 * the read library `smm` (connectors/lua/smm_lib.lua). RETRY when unreachable, ERROR on
 * rejected credentials or a server that refuses the script or the library. */
int smm_redis_sink_connect(struct smm_redis_sink *sink);
int smm_redis_sink_connected(const struct smm_redis_sink *sink);
/* The source of the Function library `smm` this binary installs (static, NUL-terminated). */
const char *smm_redis_lib_source(void);
/* The last error, for logs and /healthz. Never contains the password. */
const char *smm_redis_sink_errstr(const struct smm_redis_sink *sink);

/* Runs the script in flush mode with av (built by the processor; see smm.lua) in one
 * MULTI/EXEC with the plain writes pre (idempotent ones: PFADD, SADD, EXPIREAT; NULL =
 * none), which Redis applies first. With plain (NULL = none) the counter values go as the
 * plain commands it holds, in that transaction, when the script's check passes
 * (redis_sink.c, "the plain path"); otherwise av goes whole. A server that refuses MULTI
 * gets pre ahead of a lone EVALSHA.
 * SMM_SINK_OK: *n_rejects = 0 when everything was applied, otherwise the script applied
 * nothing and rejects[0..*n_rejects) say which partitions failed their fence (at most
 * max). After RETRY the flush may or may not have been applied: resend it with pre, and
 * the fence answers DUP for partitions that were. */
int smm_redis_sink_flush(struct smm_redis_sink *sink, const struct smm_cmds *pre,
                         struct smm_flush_plain *plain, struct smm_argv *av,
                         struct smm_flush_reject *rejects, int max, int *n_rejects);
/* The same in two steps, so the caller can go on consuming while Redis works: send()
 * writes the call out; poll() answers SMM_SINK_PENDING until the reply is there (wait = 0),
 * or blocks for it up to the timeout (wait = 1), then answers like smm_redis_sink_flush().
 * At most one call may be in flight, and nothing else may use the sink meanwhile. */
int smm_redis_sink_flush_send(struct smm_redis_sink *sink, const struct smm_cmds *pre,
                              struct smm_flush_plain *plain, struct smm_argv *av);
int smm_redis_sink_flush_poll(struct smm_redis_sink *sink, int wait,
                              struct smm_flush_reject *rejects, int max, int *n_rejects);
/* Runs the script in tick mode. Writes the number of hours whose account reach sketches
 * were merged when merged is not NULL. */
int smm_redis_sink_tick(struct smm_redis_sink *sink, struct smm_argv *av, int64_t *merged);
/* Takes ownership of partition tp for token (HSET <prefix>owner) and reads its stored
 * next offset into *stored (-1 when none). */
int smm_redis_sink_claim(struct smm_redis_sink *sink, const char *prefix, const char *tp,
                         const char *token, int64_t *stored);

/* Sums field over the daily hashes <prefix>d:<from_day> .. d:<to_day> (absent = 0). */
int smm_redis_sink_day_sum(struct smm_redis_sink *sink, const char *prefix, const char *field,
                           int64_t from_day, int64_t to_day, double *sum);

/* The stored viral state of one post (fields of <prefix>v:<id>; "" and 0 when absent). */
struct smm_redis_viral_row {
    char state[16];
    int64_t since_ms, seq, below;
};
/* Reads state, state_since_ms, seq and below of the n posts ids[0..n) (HMGET of
 * <prefix>v:<id>, pipelined: one round trip) into out[0..n). Not while a flush is in
 * flight. SMM_SINK_OK, RETRY (unreachable) or ERROR (a reply error). */
int smm_redis_sink_viral_load(struct smm_redis_sink *sink, const char *prefix,
                              const char *const *ids, int n, struct smm_redis_viral_row *out);

/* Called for each viral state a flush or tick reports (content id, state) while the reply
 * is read: changed = 1 for a state change (one alert), 0 for the unchanged state of a
 * post whose decision was applied, SMM_REDIS_VIRAL_CONFLICT for a post whose decision was
 * not applied because its stored seq was not the one the decision started from (another
 * writer moved it first; state is the stored one): the caller reloads it. */
#define SMM_REDIS_VIRAL_CONFLICT (-1)
typedef void (*smm_redis_change_cb)(void *opaque, const char *content_id, size_t len,
                                    const char *state, size_t state_len, int changed);
void smm_redis_sink_on_change(struct smm_redis_sink *sink, smm_redis_change_cb cb, void *opaque);
/* Viral state changes reported since creation. */
int64_t smm_redis_sink_changes(const struct smm_redis_sink *sink);
/* 1 when the last flush's check found, in <prefix>wseq, the value its writer's previous
 * flush stored: no other writer committed in between (processor/pipeline.c, proven()). */
int smm_redis_sink_alone(const struct smm_redis_sink *sink);

/* Reads fields[0..n_fields) of each hash keys[i], i < n (HMGET, pipelined: one round trip),
 * and hands each row to row(opaque, i, vals, lens): vals[j] NULL for a missing field.
 * A row with get_key also reads that string key (GET, right after the HMGET), handed over
 * as vals[n_fields]. Not while a flush is in flight. SMM_SINK_OK, RETRY (unreachable) or
 * ERROR (a reply error; the other rows were still handed over). */
typedef void (*smm_redis_row_cb)(void *opaque, int i, const char *const *vals,
                                 const size_t *lens);
#define SMM_REDIS_HMGET_MAX 16 /* fields of one row */
struct smm_redis_hmget {
    const char *key;
    const char *get_key; /* NULL, or a string key to read with the row */
    int n_fields;
    const char *field[SMM_REDIS_HMGET_MAX];
};
int smm_redis_sink_hmget(struct smm_redis_sink *sink, const struct smm_redis_hmget *rows, int n,
                         smm_redis_row_cb row, void *opaque);

/* Reads each hash rows[i].hash_key whole and the set rows[i].set_key (HGETALL and SMEMBERS,
 * pipelined: one round trip), i < n, and hands them to row(opaque, i, kv, kv_lens, n_kv,
 * members, m_lens, n_members): kv holds field, value pairs. Not while a flush is in flight.
 * SMM_SINK_OK, RETRY (unreachable) or ERROR (a reply error, or out of memory: that row is
 * not handed over, the others are). */
struct smm_redis_hashset {
    const char *hash_key, *set_key;
};
typedef void (*smm_redis_hashset_cb)(void *opaque, int i, const char *const *kv,
                                     const size_t *kv_lens, size_t n_kv,
                                     const char *const *members, const size_t *m_lens,
                                     size_t n_members);
int smm_redis_sink_hashsets(struct smm_redis_sink *sink, const struct smm_redis_hashset *rows,
                            int n, smm_redis_hashset_cb row, void *opaque);

/* Called, while a flush reply is read, for each counter hash the flush wrote from its
 * deltas because the hash was not at the version the processor computed from (another
 * writer moved it): the caller forgets its copy of that hash. */
typedef void (*smm_redis_conflict_cb)(void *opaque, const char *key, size_t len);
void smm_redis_sink_on_conflict(struct smm_redis_sink *sink, smm_redis_conflict_cb cb,
                                void *opaque);

/* Number of commands sent and replies with errors since creation, for /metrics. */
int64_t smm_redis_sink_errors(const struct smm_redis_sink *sink);

#endif
