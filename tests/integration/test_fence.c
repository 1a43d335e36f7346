/* tests/integration/test_fence.c - the state script's fence, driven directly through the
 * Redis sink against a real redis-server: a writer whose partition was claimed by another
 * token is refused and changes nothing; a resent batch answers DUP; a batch whose base
 * offset is not what Redis holds answers STALE; a refused call applies none of its
 * partitions. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/redis_sink.h"
#include "processor/config.h"
#include "processor/pipeline.h"
#include "tests/integration/harness.h"
#include "tests/integration/oracle.h"

static struct h_redis redis;
static struct smm_config cfg;
static struct smm_pipeline *pipe_;
static struct smm_redis_sink *sink;

static void setup(void)
{
    char err[256];
    h_redis_start(&redis, 0);
    cr_assert(smm_config_init(&cfg, err, sizeof(err)) == SMM_OK);
    cr_assert(smm_config_set(&cfg, "kafka.bootstrap.servers", "x:1", "test", err, sizeof(err)) ==
              SMM_OK);
    cr_assert(smm_config_finish(&cfg, err, sizeof(err)) == SMM_OK, "%s", err);
    pipe_ = smm_pipeline_new(&cfg, err, sizeof(err));
    struct smm_redis_opts o = {.host = "127.0.0.1", .port = redis.port, .timeout_ms = 2000};
    sink = smm_redis_sink_new(&o, err, sizeof(err));
    cr_assert(sink && smm_redis_sink_connect(sink) == SMM_SINK_OK, "%s",
              sink ? smm_redis_sink_errstr(sink) : err);
}

static void teardown(void)
{
    smm_redis_sink_destroy(sink);
    smm_pipeline_destroy(pipe_);
    smm_config_free(&cfg);
    h_redis_stop(&redis);
}

TestSuite(fence, .init = setup, .fini = teardown, .timeout = 60);

static void batch_of(struct smm_batch *b, int likes)
{
    char err[128], ev[256];
    cr_assert(smm_batch_init(b, pipe_, err, sizeof(err)) == SMM_OK);
    for (int i = 0; i < likes; i++) {
        int n = snprintf(ev, sizeof(ev),
                         "{\"event_id\":\"e%d\",\"type\":\"like\",\"ts\":%lld,\"account_id\":\"a\","
                         "\"content_id\":\"c\"}",
                         i, (long long)h_now_ms());
        struct smm_reject rej;
        cr_assert(smm_pipeline_feed(pipe_, b, ev, (size_t)n, -1, h_now_ms(), &rej) == SMM_OK);
    }
}

static int flush(const struct smm_batch *b, const char *tp, const char *token, int64_t base,
                 int64_t next, struct smm_flush_reject *rej, int *n_rej)
{
    struct smm_argv av;
    smm_argv_init(&av);
    cr_assert(smm_pipeline_encode_flush_begin(pipe_, h_now_ms(), &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_flush_part(pipe_, b, tp, token, base, next, &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_flush_end(&av, 1) == SMM_OK);
    int rc = smm_redis_sink_flush(sink, smm_pipeline_flush_writes(pipe_), smm_pipeline_flush_plain(pipe_), &av, rej, 8, n_rej);
    smm_argv_free(&av);
    return rc;
}

static long long likes(void)
{
    redisContext *c = h_redis_connect(&redis);
    /* the post's lifetime field t (docs/redis-keys.md) */
    long long v = (long long)oracle_lifetime(c, "c:c", "like");
    redisFree(c);
    return v;
}

Test(fence, stale_owner_refused_dup_and_stale_detected)
{
    struct smm_batch b;
    struct smm_flush_reject rej[8];
    int n;
    int64_t stored;
    batch_of(&b, 3);
    cr_assert(smm_redis_sink_claim(sink, "smm:", "t:0", "A", &stored) == SMM_SINK_OK);
    cr_assert_eq(stored, -1);
    cr_assert(flush(&b, "t:0", "A", -1, 3, rej, &n) == SMM_SINK_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(likes(), 3);

    /* The same batch again (a resend after a lost reply): DUP, nothing applied. */
    cr_assert(flush(&b, "t:0", "A", -1, 3, rej, &n) == SMM_SINK_OK);
    cr_assert(n == 1 && rej[0].status == SMM_FLUSH_DUP && rej[0].stored_offset == 3);
    cr_assert_eq(likes(), 3);

    /* B claims the partition; A (a zombie) flushes its next batch: FENCED, nothing applied. */
    cr_assert(smm_redis_sink_claim(sink, "smm:", "t:0", "B", &stored) == SMM_SINK_OK);
    cr_assert_eq(stored, 3);
    cr_assert(flush(&b, "t:0", "A", 3, 6, rej, &n) == SMM_SINK_OK);
    cr_assert(n == 1 && rej[0].status == SMM_FLUSH_FENCED && !strcmp(rej[0].owner, "B"));
    cr_assert_eq(likes(), 3);

    /* B with a wrong base (Redis restored from an older state, say): STALE. */
    cr_assert(flush(&b, "t:0", "B", 5, 8, rej, &n) == SMM_SINK_OK);
    cr_assert(n == 1 && rej[0].status == SMM_FLUSH_STALE && rej[0].stored_offset == 3);
    cr_assert_eq(likes(), 3);

    /* B right: applied. */
    cr_assert(flush(&b, "t:0", "B", 3, 6, rej, &n) == SMM_SINK_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(likes(), 6);
    smm_batch_free(&b);
}

Test(fence, one_refused_partition_applies_nothing)
{
    struct smm_batch b1, b2;
    struct smm_flush_reject rej[8];
    int n;
    int64_t stored;
    batch_of(&b1, 2);
    batch_of(&b2, 5);
    cr_assert(smm_redis_sink_claim(sink, "smm:", "t:0", "A", &stored) == SMM_SINK_OK);
    cr_assert(smm_redis_sink_claim(sink, "smm:", "t:1", "other", &stored) == SMM_SINK_OK);
    struct smm_argv av;
    smm_argv_init(&av);
    cr_assert(smm_pipeline_encode_flush_begin(pipe_, h_now_ms(), &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_flush_part(pipe_, &b1, "t:0", "A", -1, 2, &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_flush_part(pipe_, &b2, "t:1", "A", -1, 5, &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_flush_end(&av, 2) == SMM_OK);
    cr_assert(smm_redis_sink_flush(sink, smm_pipeline_flush_writes(pipe_), smm_pipeline_flush_plain(pipe_), &av, rej, 8, &n) == SMM_SINK_OK);
    cr_assert(n == 1 && rej[0].part == 1 && rej[0].status == SMM_FLUSH_FENCED);
    cr_assert_eq(likes(), 0, "a refused call must apply none of its partitions");
    smm_argv_free(&av);
    smm_batch_free(&b1);
    smm_batch_free(&b2);
}
