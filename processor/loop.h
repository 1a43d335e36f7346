/* processor/loop.h - the processor's single-threaded main loop and its wiring.
 *
 * One thread owns time: it polls Kafka, feeds the pipeline, flushes partition batches to
 * Redis every flush.interval_ms (or flush.max_events), runs the wall-clock tick and prints
 * the stats line. Signals only set the stop flag. */
#ifndef SMM_PROCESSOR_LOOP_H
#define SMM_PROCESSOR_LOOP_H

#include <signal.h>
#include <stdint.h>

#include "connectors/redis_sink.h"
#include "processor/config.h"
#include "processor/pipeline.h"

struct smm_loop;
struct smm_status;

struct smm_loop_opts {
    int64_t idle_exit_ms; /* > 0: exit after this long with nothing consumed and all flushed */
    int top;              /* live terminal summary on stderr */
    struct smm_status *status; /* NULL, or published into every 100 ms (processor/status.h) */
    /* NULL, or the signal handler's flag: start-up waits (the Redis connect retries), the
     * Kafka source's waits (committed offsets on assignment) and the shutdown wait for
     * dead letters end as soon as it is non-zero. Pass the same flag to smm_loop_run(). */
    volatile sig_atomic_t *stop;
};

/* Connects Kafka and Redis (fails fast on bad credentials). Returns NULL with errstr,
 * also when opts->stop was set while it waited for Redis. */
struct smm_loop *smm_loop_new(const struct smm_config *cfg, const struct smm_loop_opts *opts,
                              char *errstr, size_t errstr_size);
/* Runs until *stop becomes non-zero or the idle exit fires, then flushes, retrying for
 * up to 10 s while Redis is unreachable unless it already was at the stop or *stop reaches
 * 2 (a second signal); dead letters Kafka has not acknowledged are waited for 2 s at most
 * (none after a second signal). Returns 0 on a clean stop, 1 on a fatal error. */
int smm_loop_run(struct smm_loop *loop, volatile sig_atomic_t *stop);
void smm_loop_destroy(struct smm_loop *loop);

/* Loads from Redis the stored viral state of up to max of the flagged posts in sig[0..n)
 * the pipeline has no state for (smm_pipeline_viral_unknown/_known), in one pipelined round
 * trip. Must not run while a flush is in flight. Returns the sink's status; posts not
 * loaded are sent without a decision. */
int smm_loop_viral_load(struct smm_pipeline *pipe, struct smm_redis_sink *sink,
                        const char *prefix, const struct smm_viral_signals *sig, int n, int max);

#endif
