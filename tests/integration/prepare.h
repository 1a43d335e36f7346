/* tests/integration/prepare.h - what smm-processor's loop does before it encodes a flush
 * of a batch (processor/loop.c, decide_admission and encode_flush), for the tests that
 * drive the pipeline and the Redis sink themselves: decide the admission of the batch's
 * breakdown values (loading the sketches the pipeline lacks), then load the counter
 * hashes it lacks. Fails the test when Redis does not answer. */
#ifndef SMM_TESTS_PREPARE_H
#define SMM_TESTS_PREPARE_H

#include <criterion/criterion.h>

#include "connectors/redis_sink.h"
#include "processor/pipeline.h"

static inline void h_flush_prepare(struct smm_pipeline *pipe, struct smm_redis_sink *sink,
                                   struct smm_batch *b, int64_t now_ms)
{
    const struct smm_redis_hashset *sets;
    int n = smm_pipeline_admission_plan(pipe, b, &sets);
    cr_assert(n >= 0);
    cr_assert(n == 0 || smm_redis_sink_hashsets(sink, sets, n, smm_pipeline_admission_loaded,
                                                pipe) == SMM_SINK_OK,
              "%s", smm_redis_sink_errstr(sink));
    cr_assert(smm_pipeline_admission_decide(pipe, b) == SMM_OK);
    const struct smm_redis_hmget *rows;
    n = smm_pipeline_counters_plan(pipe, b, now_ms, &rows);
    cr_assert(n == 0 || smm_redis_sink_hmget(sink, rows, n, smm_pipeline_counters_loaded,
                                             pipe) == SMM_SINK_OK,
              "%s", smm_redis_sink_errstr(sink));
}

#endif
