/* processor/pipeline.h - bytes in, aggregated deltas and script arguments out.
 *
 * The pipeline is the processor's pure part: it never sees librdkafka or hiredis. It
 * decodes one message into an event and folds it into a batch (a struct smm_agg), and it
 * encodes a batch with its partitions' fences (or a tick) as the arguments of
 * connectors/lua/smm.lua. It also decides the viral state of the flagged posts
 * (metrics/viral_state.c) from the state it holds for them, which the caller loads from
 * Redis for posts new to it (processor/loop.c smm_loop_viral_load).
 * Tests drive it with bytes and a synthetic clock. */
#ifndef SMM_PROCESSOR_PIPELINE_H
#define SMM_PROCESSOR_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "connectors/argv.h"
#include "metrics/aggregate.h"
#include "metrics/goals.h"
#include "metrics/viral.h"
#include "processor/config.h"
#include "processor/event_json.h"

struct smm_pipeline;

/* What the processor has pending between flushes (all its partitions). */
/* One breakdown value's events in a batch, as they feed its admission sketch. */
struct smm_batch_adm {
    int ent;        /* the value's entity in the batch's agg */
    int64_t weight; /* its events */
    int64_t minute; /* its latest event minute */
};

struct smm_batch {
    struct smm_agg *agg;
    int64_t rejects[SMM_REJECT__COUNT]; /* dead-lettered, per reason */
    int64_t messages;                   /* messages consumed (accepted + rejected) */
    /* Admission (smm_pipeline_admission_*): the values' weights, taken once, and whether
     * the values not admitted were folded into "other" (done once per batch). */
    struct smm_batch_adm *adm;
    int n_adm, cap_adm;
    int adm_decided;
};

/* cfg must outlive the pipeline. Returns NULL with errstr on failure. */
struct smm_pipeline *smm_pipeline_new(const struct smm_config *cfg, char *errstr,
                                      size_t errstr_size);
void smm_pipeline_destroy(struct smm_pipeline *pipe);

int smm_batch_init(struct smm_batch *b, const struct smm_pipeline *pipe, char *errstr,
                   size_t errstr_size);
void smm_batch_clear(struct smm_batch *b);
void smm_batch_free(struct smm_batch *b);

#define SMM_PIPELINE_OOM (-2)

/* Decodes buf and folds it into b. Returns SMM_OK when counted, SMM_ERR when rejected
 * (rej says why; the rejection is already counted in b->rejects), SMM_PIPELINE_OOM when
 * memory ran out (nothing counted; the caller must stop without flushing). */
int smm_pipeline_feed(struct smm_pipeline *pipe, struct smm_batch *b, const void *buf,
                      size_t len, int64_t kafka_ts_ms, int64_t now_ms, struct smm_reject *rej);

/* Decodes buf without counting it anywhere (the viral warm-up). Returns the event (valid
 * until the next decode or feed) or NULL when the message is rejected. */
const struct smm_event *smm_pipeline_decode(struct smm_pipeline *pipe, const void *buf,
                                            size_t len, int64_t kafka_ts_ms, int64_t now_ms);

/* The event the last successful feed() decoded (valid until the next feed). */
const struct smm_event *smm_pipeline_last_event(const struct smm_pipeline *pipe);

/* Post counters the processor computes (processor/counters.h). Before encoding a flush of
 * b, plan() lists the post hashes whose buckets the pipeline does not hold yet (*rows:
 * HMGET key v p <buckets>, owned by the pipeline until the next plan) and the caller hands
 * each reply row to loaded() (an smm_redis_row_cb; opaque = pipe). A post whose buckets
 * are held goes as absolute values, any other as deltas the script adds. Once the flush is
 * answered, conflict() names each hash the script reports (another writer moved it) and
 * settle() keeps what an applied flush wrote, or forgets it (not applied, or unknown). */
struct smm_redis_hmget;
int smm_pipeline_counters_plan(struct smm_pipeline *pipe, const struct smm_batch *b,
                               int64_t now_ms, const struct smm_redis_hmget **rows);
void smm_pipeline_counters_loaded(void *pipe, int i, const char *const *vals,
                                  const size_t *lens);
void smm_pipeline_counters_conflict(struct smm_pipeline *pipe, const char *key, size_t len);
/* alone: the flush's check found the value of our previous flush in <prefix>wseq (no
 * other writer committed in between; smm_redis_sink_alone()). */
void smm_pipeline_counters_settle(struct smm_pipeline *pipe, int applied, int alone);

/* Breakdown admission (metrics/admission.h), decided here. Before encoding a flush of b,
 * plan() lists the admission sketches b feeds that the pipeline does not hold (*rows:
 * HGETALL of the sketch, SMEMBERS of its admitted set; owned by the pipeline until the
 * next plan) and the caller hands each reply to loaded() (an smm_redis_hashset_cb; opaque
 * = pipe); then decide() feeds the sketches with b's values and, the first time for b,
 * folds the values not admitted into their account's "other". SMM_ERR from decide(): a
 * sketch could not be loaded (or out of memory): do not flush b now. The flush writes the
 * sketches' changes under their version; conflict() and settle() as for the counters. */
struct smm_redis_hashset;
int smm_pipeline_admission_plan(struct smm_pipeline *pipe, struct smm_batch *b,
                                const struct smm_redis_hashset **rows);
void smm_pipeline_admission_loaded(void *pipe, int i, const char *const *kv,
                                   const size_t *kv_lens, size_t n_kv,
                                   const char *const *members, const size_t *m_lens,
                                   size_t n_members);
int smm_pipeline_admission_decide(struct smm_pipeline *pipe, struct smm_batch *b);

/* A flush carries the batches of several partitions in one atomic unit:
 * encode_flush_begin() resets av, then one encode_flush_part() per partition (tp, owner
 * token, stored base offset, new next offset), then encode_flush_end(). Each returns
 * SMM_OK or SMM_ERR on out-of-memory. */
int smm_pipeline_encode_flush_begin(struct smm_pipeline *pipe, int64_t now_ms,
                                    struct smm_argv *av);
int smm_pipeline_encode_flush_part(struct smm_pipeline *pipe, const struct smm_batch *b,
                                   const char *tp, const char *token, int64_t base,
                                   int64_t next, struct smm_argv *av);
int smm_pipeline_encode_flush_end(struct smm_argv *av, int n_parts);

/* The whole flush at once: begin, parts, end. smm-processor folds all its partitions into
 * one batch (the script applies a flush's partitions all or none), so the batch goes with
 * the first part and every part carries its fence: the next offset it stores and what it
 * checks (owner token, stored base offset). */
struct smm_flush_fence {
    const char *tp, *token;
    int64_t base, next;
};
int smm_pipeline_encode_flush(struct smm_pipeline *pipe, const struct smm_batch *b,
                              int64_t now_ms, const struct smm_flush_fence *fences, int n,
                              struct smm_argv *av);
/* The plain writes of the flush encoded last (its reach: PFADD, SADD, EXPIREAT), which
 * go to Redis first in its transaction (smm_redis_sink_flush).
 * Valid until the next encode_flush_begin(). */
const struct smm_cmds *smm_pipeline_flush_writes(const struct smm_pipeline *pipe);
/* The flush's counter values as plain commands (struct smm_flush_plain), or NULL when this
 * flush has none to send that way. Valid until the next encode_flush_begin(). */
struct smm_flush_plain *smm_pipeline_flush_plain(struct smm_pipeline *pipe);
/* Encodes a tick at now_ms that merges at most max_refresh account minute reach sketches
 * into hour sketches (reach.refresh_max). */
int smm_pipeline_encode_tick(const struct smm_pipeline *pipe, int64_t now_ms,
                             int64_t max_refresh, struct smm_argv *av);

/* Viral decisions (metrics/viral_state.h). The pipeline keeps the stored state of each
 * post it decides for. Before encode_viral(), the caller loads the state of the posts it
 * has none for: smm_pipeline_viral_unknown() writes up to max of their ids (borrowed from
 * sig) into ids and returns the count; smm_pipeline_viral_known() records one post's
 * stored fields ("" / 0 for a post never flagged); SMM_OK or SMM_ERR (out of memory). */
int smm_pipeline_viral_unknown(const struct smm_pipeline *pipe,
                               const struct smm_viral_signals *sig, int n, const char **ids,
                               int max);
int smm_pipeline_viral_known(struct smm_pipeline *pipe, const char *id, const char *state,
                             int64_t since_ms, int64_t seq, int64_t below);
/* Appends the viral section (after encode_flush_end() or encode_tick()): the figures of n
 * posts, and for each flagged post (SMM_VIRAL_EVAL) whose state is known the decision of
 * one step of the machine (tick = 1 on the wall-clock tick): the seq it starts from, the
 * fields of smm:v:<id> to write, the alert (JSON and sentence) when the state changes.
 * See connectors/lua/smm.lua viral(). Flagged posts with no known state are sent with their
 * figures only (smm_pipeline_viral_decides() is 0 for them). The decisions are pending
 * until smm_pipeline_viral_settle(). */
int smm_pipeline_encode_viral(struct smm_pipeline *pipe, int64_t now_ms, int tick,
                              const struct smm_viral_signals *sig, int n, struct smm_argv *av);
/* 1 when the pipeline holds the state of post id (it decides for it). */
int smm_pipeline_viral_decides(const struct smm_pipeline *pipe, const char *id);
/* The state the pipeline holds for post id (enum smm_viral_state), -1 when none. */
int smm_pipeline_viral_state(const struct smm_pipeline *pipe, const char *id);
/* The script did not apply the decision for post id (its stored seq moved: another writer
 * decided first): its state is forgotten at settle, to be loaded again. */
void smm_pipeline_viral_conflict(struct smm_pipeline *pipe, const char *id, size_t len);
/* After the call carrying the last encode_viral(): applied = 1 keeps its decisions (but
 * those reported as conflicts), 0 drops them. */
void smm_pipeline_viral_settle(struct smm_pipeline *pipe, int applied);
/* Appends the insights settings (after the viral section of a flush or tick): now_ms,
 * days.keep, segments.top_n, response.max_open, response.reorder, referral.window,
 * referral.max_depth, the sketch size, segments.half_life and retention.idle_days (keys
 * named by event ids expire that many days after now_ms of the call that last wrote them). */
int smm_pipeline_encode_insights(const struct smm_pipeline *pipe, int64_t now_ms,
                                 struct smm_argv *av);

/* Appends, after the insights settings of a flush, the value the flush stores in
 * <prefix>wseq: who committed last (see smm_pipeline_counters_settle). */
int smm_pipeline_encode_wseq(const struct smm_pipeline *pipe, struct smm_argv *av);

/* One goal's evaluation, for the tick's goal section (after the viral section). */
struct smm_goal_report {
    const struct smm_goal_cfg *cfg;
    struct smm_goal_status st;
};
int smm_pipeline_encode_goals(const struct smm_pipeline *pipe, const struct smm_goal_report *g,
                              int n, struct smm_argv *av);

/* Events folded so far whose event time was more than SMM_PIPELINE_LATE_MS behind now_ms
 * (counted when folded: a re-read after a rewind counts again). For /metrics. */
#define SMM_PIPELINE_LATE_MS 60000
int64_t smm_pipeline_late(const struct smm_pipeline *pipe);
/* The label of a window of this many minutes ("5m", "1h", "24h"), as in Redis keys. */
void smm_pipeline_window_label(int64_t minutes, char *out, size_t size);

/* Minute of an epoch-ms time (floor division, also before 1970). */
int64_t smm_pipeline_minute(int64_t ts_ms);

#endif
