/* tests/integration/test_admission.c - which breakdown values (sources, regions, segments)
 * keep their own series: the Space-Saving sketch of connectors/lua/smm.lua, driven through
 * the pipeline (JSON events into batches) and the Redis sink against a real redis-server,
 * one flush per batch so the batch boundaries are the test's. segments.top_n = 3 and
 * sketch_factor 4, so m = 12 counters per account and dimension.
 *   - one-off values do not take the slots: a heavy new campaign that comes after them is
 *     admitted (admission by first sight would have kept the first three one-offs);
 *   - on a skewed random stream, after every flush: the sketch's invariants hold against
 *     exact counts (counters sum to N, count - e <= f <= count, every value with f > N/m
 *     monitored) and every value with f > N/top_n + N/m is admitted;
 *   - a heavy value of yesterday yields to today's values once its weight has decayed;
 *   - after 40 half-lives the sketch is rescaled to a new landmark and stays consistent. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/redis_sink.h"
#include "processor/config.h"
#include "processor/pipeline.h"
#include "tests/integration/harness.h"
#include "tests/integration/prepare.h"

#define TOP_N 3
#define M (4 * TOP_N)
#define HOUR_MS 3600000LL

static struct h_redis redis;
static struct smm_config cfg;
static struct smm_pipeline *pipe_;
static struct smm_redis_sink *sink;
static struct smm_batch batch;
static int64_t offset;
static int seq;
static const char *half_life = "1h";

static void set(const char *key, const char *value)
{
    char err[256];
    cr_assert(smm_config_set(&cfg, key, value, "test", err, sizeof(err)) == SMM_OK, "%s", err);
}

static void setup(void)
{
    char err[256];
    h_redis_start(&redis, 0);
    cr_assert(smm_config_init(&cfg, err, sizeof(err)) == SMM_OK);
    set("kafka.bootstrap.servers", "x:1");
    set("segments.top_n", "3");
    set("segments.sketch_factor", "4");
    set("segments.half_life", half_life);
    cr_assert(smm_config_finish(&cfg, err, sizeof(err)) == SMM_OK, "%s", err);
    pipe_ = smm_pipeline_new(&cfg, err, sizeof(err));
    cr_assert(pipe_, "%s", err);
    struct smm_redis_opts o = {.host = "127.0.0.1", .port = redis.port, .timeout_ms = 5000};
    sink = smm_redis_sink_new(&o, err, sizeof(err));
    cr_assert(sink && smm_redis_sink_connect(sink) == SMM_SINK_OK);
    int64_t stored;
    cr_assert(smm_redis_sink_claim(sink, "smm:", "t:0", "A", &stored) == SMM_SINK_OK);
    cr_assert(smm_batch_init(&batch, pipe_, err, sizeof(err)) == SMM_OK);
    offset = -1;
    seq = 0;
}

static void teardown(void)
{
    smm_batch_free(&batch);
    smm_redis_sink_destroy(sink);
    smm_pipeline_destroy(pipe_);
    smm_config_free(&cfg);
    h_redis_stop(&redis);
}

TestSuite(admission, .init = setup, .fini = teardown, .timeout = 120);

/* n impressions of source src at event time ts, into the open batch. */
static void events(const char *src, int n, int64_t ts)
{
    for (int i = 0; i < n; i++) {
        char json[256];
        int len = snprintf(json, sizeof(json),
                           "{\"event_id\":\"e%d\",\"type\":\"impression\",\"ts\":%lld,"
                           "\"account_id\":\"acct\",\"content_id\":\"post\",\"source\":\"%s\"}",
                           ++seq, (long long)ts, src);
        struct smm_reject rej;
        cr_assert(smm_pipeline_feed(pipe_, &batch, json, (size_t)len, ts, h_now_ms(), &rej) ==
                      SMM_OK,
                  "%s", json);
        cr_assert_eq(rej.reason, SMM_REJECT_NONE, "%s", json);
    }
}

/* Sends the open batch as one flush (with the insights settings: top_n, m, half-life). */
static void flush(void)
{
    int64_t now = h_now_ms();
    struct smm_argv av;
    smm_argv_init(&av);
    struct smm_flush_reject rej[4];
    int n_rej = 0;
    h_flush_prepare(pipe_, sink, &batch, now);
    cr_assert(smm_pipeline_encode_flush_begin(pipe_, now, &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_flush_part(pipe_, &batch, "t:0", "A", offset, offset + 1000,
                                             &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_flush_end(&av, 1) == SMM_OK);
    cr_assert(smm_pipeline_encode_viral(pipe_, now, 0, NULL, 0, &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_insights(pipe_, now, &av) == SMM_OK);
    cr_assert(smm_redis_sink_flush(sink, smm_pipeline_flush_writes(pipe_), smm_pipeline_flush_plain(pipe_), &av, rej, 4, &n_rej) == SMM_SINK_OK, "%s",
              smm_redis_sink_errstr(sink));
    cr_assert_eq(n_rej, 0);
    offset += 1000;
    smm_argv_free(&av);
    smm_batch_clear(&batch);
}

static int is_admitted(const char *src)
{
    redisContext *c = h_redis_connect(&redis);
    redisReply *r = redisCommand(c, "SISMEMBER smm:seg:acct:source %s", src);
    int yes = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    redisFree(c);
    return yes;
}

static long long n_admitted(void)
{
    redisContext *c = h_redis_connect(&redis);
    redisReply *r = redisCommand(c, "SCARD smm:seg:acct:source");
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* Lifetime impressions of the breakdown entity s:acct|<src>. */
static long long total(const char *src)
{
    redisContext *c = h_redis_connect(&redis);
    char entity[64];
    snprintf(entity, sizeof(entity), "s:acct|%s", src);
    long long v = h_entity_get(c, "smm:", entity, "total", -1, "impression");
    redisFree(c);
    return v;
}

Test(admission, heavy_new_campaign_displaces_one_offs)
{
    int64_t ts = h_now_ms() - 60000;
    /* 30 one-off campaigns, one impression each: more than the m = 12 counters. */
    for (int i = 0; i < 30; i++) {
        char src[32];
        snprintf(src, sizeof(src), "once-%02d", i);
        events(src, 1, ts);
    }
    flush();
    cr_expect_eq(n_admitted(), 0, "one-off values take no slot once the sketch is full");
    cr_expect_eq(total("other"), 30);
    /* Then a real campaign with 40 impressions among 10 more one-offs. */
    for (int i = 0; i < 10; i++) {
        char src[32];
        snprintf(src, sizeof(src), "later-%02d", i);
        events(src, 1, ts);
        if (i == 4) {
            events("launch", 40, ts);
        }
    }
    flush();
    cr_expect(is_admitted("launch"), "the heavy new campaign has its own series");
    cr_expect_eq(n_admitted(), 1, "and only it");
    cr_expect_eq(total("launch"), 40);
    cr_expect_eq(total("other"), 40, "the 30 + 10 one-offs");
    events("launch", 5, ts);
    events("once-00", 1, ts);
    flush();
    cr_expect_eq(total("launch"), 45);
    cr_expect_eq(total("once-00"), 0, "never admitted: no series of its own");
    cr_expect_eq(total("other"), 41);
}

/* xorshift64*: a fixed seed keeps the stream, and so the test, the same on every run. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

#define VOCAB 400

Test(admission, skewed_stream_keeps_the_space_saving_bounds)
{
    int64_t ts = h_now_ms() - 60000; /* one minute: no decay, so weights are counts */
    static long long f[VOCAB];
    memset(f, 0, sizeof(f));
    long long n_total = 0;
    char src[32];
    for (int round = 0; round < 12; round++) {
        /* A skewed stream: v000 on 45 % of events (above N/top_n + N/m), 35 % log-uniform
         * over v001..v039 (whose head moves every 4 rounds) and 20 % a long tail of
         * mostly one-off values. */
        for (int e = 0; e < 150; e++) {
            int k;
            uint64_t x = rnd() % 1000;
            if (x < 450) {
                k = 0;
            } else if (x < 800) {
                double u = (double)(rnd() % 1000000) / 1e6;
                k = (int)floor(pow(39.0, u)) - 1; /* log-uniform over 0..38: skewed */
                k = 1 + (k + round / 4 * 7) % 39;
            } else {
                k = 40 + (int)(rnd() % (VOCAB - 40)); /* the long tail */
            }
            snprintf(src, sizeof(src), "v%03d", k);
            events(src, 1, ts);
            f[k]++;
            n_total++;
        }
        flush();

        /* The sketch against exact counts. */
        redisContext *c = h_redis_connect(&redis);
        redisReply *r = redisCommand(c, "HGETALL smm:ss:acct:source");
        cr_assert(r && r->type == REDIS_REPLY_ARRAY);
        double sum = 0, n_field = -1;
        int monitored[VOCAB] = {0}, n_mon = 0;
        double cnt[VOCAB] = {0}, err[VOCAB] = {0};
        for (size_t j = 0; j + 1 < r->elements; j += 2) {
            const char *k = r->element[j]->str;
            double v = atof(r->element[j + 1]->str);
            if (k[0] == 'c') {
                int id = atoi(k + 2);
                monitored[id] = 1;
                cnt[id] = v;
                sum += v;
                n_mon++;
            } else if (k[0] == 'e') {
                err[atoi(k + 2)] = v;
            } else if (!strcmp(k, "N")) {
                n_field = v;
            }
        }
        freeReplyObject(r);
        redisFree(c);
        cr_assert_leq(n_mon, M, "round %d: %d counters", round, n_mon);
        cr_assert_float_eq(n_field, (double)n_total, 1e-6, "round %d: N", round);
        cr_assert_float_eq(sum, (double)n_total, 1e-6, "round %d: counters sum to N", round);
        double bound = (double)n_total / M;
        int heavy = 0;
        for (int k = 0; k < VOCAB; k++) {
            snprintf(src, sizeof(src), "v%03d", k);
            if (monitored[k]) {
                cr_assert_leq(cnt[k] - err[k], (double)f[k] + 1e-6, "%s: c - e <= f", src);
                cr_assert_geq(cnt[k], (double)f[k] - 1e-6, "%s: f <= c", src);
                cr_assert_leq(err[k], bound + 1e-6, "%s: e <= N/m", src);
            }
            if ((double)f[k] > bound) {
                cr_assert(monitored[k], "round %d: %s with f = %lld > N/m = %.2f monitored",
                          round, src, f[k], bound);
            }
            if ((double)f[k] > (double)n_total / TOP_N + bound) {
                heavy++;
                cr_assert(is_admitted(src), "round %d: %s with f = %lld > N/top_n + N/m "
                          "admitted", round, src, f[k]);
            }
        }
        cr_assert_leq(n_admitted(), TOP_N);
        cr_assert_gt(heavy, 0, "round %d: the stream has a value above the bound", round);
    }
}

Test(admission, stale_heavy_value_yields_after_decay)
{
    int64_t now = h_now_ms();
    int64_t yesterday = now - 12 * HOUR_MS; /* 12 half-lives ago: 1/4096 of its weight */
    events("old", 100, yesterday);
    events("minor", 2, yesterday);
    flush();
    cr_expect(is_admitted("old"));
    cr_expect(is_admitted("minor"));
    events("new1", 30, now - 60000);
    events("new2", 20, now - 60000);
    events("new3", 10, now - 60000);
    events("old", 1, now - 60000);
    flush();
    /* Undecayed, old (101) would outrank all three newcomers and keep its slot. */
    cr_expect(is_admitted("new1") && is_admitted("new2") && is_admitted("new3"),
              "today's values take the slots");
    cr_expect(!is_admitted("old"), "yesterday's heavy value yielded");
    cr_expect(!is_admitted("minor"));
    cr_expect_eq(total("old"), 100, "its past series stays");
    cr_expect_eq(total("other"), 1, "its event today counts under other");
    cr_expect_eq(n_admitted(), 3);
}

static void setup_fast_decay(void)
{
    half_life = "1m";
    setup();
}

/* A suite of its own: a test's .init runs after its suite's, which would start a second
 * redis-server. */
TestSuite(admission_fast_decay, .init = setup_fast_decay, .fini = teardown, .timeout = 120);

Test(admission_fast_decay, rescale_keeps_the_sketch_consistent)
{
    int64_t now = h_now_ms();
    int64_t t0 = (now - 60 * 60000) / 60000 * 60000; /* a whole minute, an hour ago */
    int64_t t1 = t0 + 59 * 60000;                     /* 59 half-lives later: > 2^40 */
    events("old", 100, t0);
    flush();
    events("new", 1, t1);
    flush();
    redisContext *c = h_redis_connect(&redis);
    redisReply *r = redisCommand(c, "HMGET smm:ss:acct:source L N cold cnew enew");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 5);
    cr_expect_eq(atoll(r->element[0]->str), t1, "the landmark moved to the new event");
    double n = atof(r->element[1]->str), cold = atof(r->element[2]->str);
    double cnew = atof(r->element[3]->str), enew = atof(r->element[4]->str);
    cr_expect_float_eq(cnew, 1.0, 1e-9, "a fresh event weighs 1 at the new landmark");
    cr_expect_float_eq(enew, 0.0, 1e-9);
    cr_expect_float_eq(cold, 100.0 * pow(2.0, -59.0), 1e-18, "old decayed by 2^-59");
    cr_expect_float_eq(n, cold + cnew, 1e-9, "counters still sum to N");
    freeReplyObject(r);
    redisFree(c);
    cr_expect(is_admitted("new"));
    cr_expect(is_admitted("old"), "still in the top 3 (nothing else), though tiny");
}
