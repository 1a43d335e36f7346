/* tests/integration/test_viral_state.c - the viral state machine (decided by the pipeline,
 * metrics/viral_state.c; applied by connectors/lua/smm.lua), driven through the pipeline
 * encoder and the Redis sink against a real redis-server:
 * normal -> rising -> viral -> cooling -> normal with hysteresis and cooldown; every change
 * is one alert in the stream, one pub/sub message and one stats count; a resent flush
 * (DUP) or a refused one emits nothing; a flagged post nobody updates cools on the clock;
 * a second writer deciding from the same stored seq is refused and reloads.
 * Every alert, viral, SLA and goal, carries its sentence for people (docs/alerts.md). */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/redis_sink.h"
#include "metrics/alert_text.h"
#include "processor/config.h"
#include "processor/loop.h"
#include "processor/pipeline.h"
#include "tests/integration/harness.h"

static struct h_redis redis;
static struct smm_config cfg;
static struct smm_pipeline *pipe_;
static struct smm_redis_sink *sink;
static char changes[4096], states[4096], conflicts[4096];
static char said[8192]; /* the `message` of every alert alerts() read, one per line */

static void on_change(void *opaque, const char *cid, size_t len, const char *st, size_t sl,
                      int changed)
{
    if (changed == SMM_REDIS_VIRAL_CONFLICT) {
        smm_pipeline_viral_conflict(opaque ? opaque : pipe_, cid, len);
    }
    char *out = changed == SMM_REDIS_VIRAL_CONFLICT ? conflicts : changed ? changes : states;
    size_t used = strlen(out);
    snprintf(out + used, sizeof(changes) - used, "%.*s=%.*s ", (int)len, cid, (int)sl, st);
}

static void setup(void)
{
    char err[256];
    h_redis_start(&redis, 0);
    cr_assert(smm_config_init(&cfg, err, sizeof(err)) == SMM_OK);
    cr_assert(smm_config_set(&cfg, "kafka.bootstrap.servers", "x:1", "test", err, sizeof(err)) ==
              SMM_OK);
    cr_assert(smm_config_set(&cfg, "viral.cooldown_ms", "10000", "test", err, sizeof(err)) ==
              SMM_OK);
    cr_assert(smm_config_finish(&cfg, err, sizeof(err)) == SMM_OK, "%s", err);
    pipe_ = smm_pipeline_new(&cfg, err, sizeof(err));
    struct smm_redis_opts o = {.host = "127.0.0.1", .port = redis.port, .timeout_ms = 2000};
    sink = smm_redis_sink_new(&o, err, sizeof(err));
    cr_assert(sink && smm_redis_sink_connect(sink) == SMM_SINK_OK);
    smm_redis_sink_on_change(sink, on_change, NULL);
    changes[0] = states[0] = conflicts[0] = said[0] = '\0';
}

static void teardown(void)
{
    smm_redis_sink_destroy(sink);
    smm_pipeline_destroy(pipe_);
    smm_config_free(&cfg);
    h_redis_stop(&redis);
}

TestSuite(viral_state, .init = setup, .fini = teardown, .timeout = 60);

static struct smm_viral_signals sig(const char *post, unsigned flags, double reach)
{
    struct smm_viral_signals s;
    memset(&s, 0, sizeof(s));
    s.content_id = post;
    s.account_id = "acct";
    s.flags = SMM_VIRAL_EVAL | flags;
    s.reach_5m = reach;
    s.spm_5m = reach / 100;
    s.threshold = 1000;
    if (flags & SMM_VIRAL_ENTER) {
        snprintf(s.reasons, sizeof(s.reasons), "reach_5m %g >= 1000", reach);
        smm_alert_text_add(s.message, sizeof(s.message), SMM_ALERT_REACH, reach, 1000, 1000);
    } else if (flags & SMM_VIRAL_RISE) {
        smm_alert_text_add(s.message, sizeof(s.message), SMM_ALERT_REACH_EARLY, reach, 500,
                           1000);
    }
    smm_alert_text_add(s.message_down, sizeof(s.message_down), SMM_ALERT_BELOW_EXIT, reach,
                       700, 1000);
    return s;
}

/* Encodes one flush of partition tp (owner token) from base to next by pipe, carrying the
 * posts' signals and the decisions pipe makes for them (their state loaded through sk
 * first, as the processor does). */
static void encode(struct smm_pipeline *pipe, struct smm_redis_sink *sk, const char *tp,
                   const char *token, int64_t now, int64_t base, int64_t next,
                   const struct smm_viral_signals *s, int n, struct smm_argv *av)
{
    char err[128];
    struct smm_batch b;
    cr_assert(smm_batch_init(&b, pipe, err, sizeof(err)) == SMM_OK);
    cr_assert(smm_pipeline_encode_flush_begin(pipe, now, av) == SMM_OK);
    cr_assert(smm_pipeline_encode_flush_part(pipe, &b, tp, token, base, next, av) == SMM_OK);
    cr_assert(smm_pipeline_encode_flush_end(av, 1) == SMM_OK);
    cr_assert(smm_loop_viral_load(pipe, sk, "smm:", s, n, 1000) == SMM_SINK_OK);
    cr_assert(smm_pipeline_encode_viral(pipe, now, 0, s, n, av) == SMM_OK);
    smm_batch_free(&b);
}

/* Sends an encoded flush through sk and settles pipe's decisions. */
static int send_flush(struct smm_pipeline *pipe, struct smm_redis_sink *sk, struct smm_argv *av,
                      int *n_rej)
{
    struct smm_flush_reject rej[4];
    int rc = smm_redis_sink_flush(sk, smm_pipeline_flush_writes(pipe), smm_pipeline_flush_plain(pipe), av, rej, 4, n_rej);
    smm_pipeline_viral_settle(pipe, rc == SMM_SINK_OK && *n_rej == 0);
    smm_argv_free(av);
    return rc;
}

/* One flush of partition t:0 from base to next, carrying the posts' signals. */
static int flush(int64_t now, int64_t base, int64_t next, const struct smm_viral_signals *s,
                 int n, int *n_rej)
{
    struct smm_argv av;
    smm_argv_init(&av);
    encode(pipe_, sink, "t:0", "A", now, base, next, s, n, &av);
    return send_flush(pipe_, sink, &av, n_rej);
}

static void tick(int64_t now, const struct smm_viral_signals *s, int n)
{
    struct smm_argv av;
    smm_argv_init(&av);
    cr_assert(smm_pipeline_encode_tick(pipe_, now, 100, &av) == SMM_OK);
    cr_assert(smm_loop_viral_load(pipe_, sink, "smm:", s, n, 1000) == SMM_SINK_OK);
    cr_assert(smm_pipeline_encode_viral(pipe_, now, 1, s, n, &av) == SMM_OK);
    cr_assert(smm_redis_sink_tick(sink, &av, NULL) == SMM_SINK_OK, "%s",
              smm_redis_sink_errstr(sink));
    smm_pipeline_viral_settle(pipe_, 1);
    smm_argv_free(&av);
}

static char *hget(const char *key, const char *field)
{
    redisContext *c = h_redis_connect(&redis);
    redisReply *r = redisCommand(c, "HGET %s %s", key, field);
    char *v = r && r->type == REDIS_REPLY_STRING ? strdup(r->str) : strdup("");
    freeReplyObject(r);
    redisFree(c);
    return v;
}

/* The stream's alerts as "post:from>to" words, checking each entry's JSON. */
static void alerts(char *out, size_t size)
{
    redisContext *c = h_redis_connect(&redis);
    redisReply *r = redisCommand(c, "XRANGE smm:alerts - +");
    out[0] = '\0';
    for (size_t i = 0; r && i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        const char *json = NULL, *id = NULL;
        for (size_t j = 0; j + 1 < f->elements; j += 2) {
            if (!strcmp(f->element[j]->str, "json")) {
                json = f->element[j + 1]->str;
            } else if (!strcmp(f->element[j]->str, "alert_id")) {
                id = f->element[j + 1]->str;
            }
        }
        cr_assert(json && id);
        cJSON *a = cJSON_Parse(json);
        cr_assert(a, "alert is JSON: %s", json);
        const char *cid = cJSON_GetObjectItem(a, "content_id")->valuestring;
        const char *from = cJSON_GetObjectItem(a, "from")->valuestring;
        const char *to = cJSON_GetObjectItem(a, "to")->valuestring;
        cr_expect_str_eq(cJSON_GetObjectItem(a, "alert_id")->valuestring, id);
        cr_expect_str_eq(cJSON_GetObjectItem(a, "kind")->valuestring, "viral");
        cr_expect(cJSON_IsArray(cJSON_GetObjectItem(a, "reasons")));
        cr_expect(cJSON_IsNumber(cJSON_GetObjectItem(a, "at_ms")));
        /* For people: a sentence about the post; figures with no finite value are null. */
        const cJSON *msg = cJSON_GetObjectItem(a, "message");
        cr_assert(cJSON_IsString(msg), "alert has a message: %s", json);
        cr_expect(strncmp(msg->valuestring, cid, strlen(cid)) == 0, "%s", msg->valuestring);
        const cJSON *pf = cJSON_GetObjectItem(cJSON_GetObjectItem(a, "metrics"),
                                              "predicted_final");
        cr_expect(!pf || cJSON_IsNumber(pf) || cJSON_IsNull(pf), "predicted_final: %s", json);
        size_t used = strlen(out);
        snprintf(out + used, size - used, "%s:%s>%s ", cid, from, to);
        used = strlen(said);
        snprintf(said + used, sizeof(said) - used, "%s\n", msg->valuestring);
        cJSON_Delete(a);
    }
    freeReplyObject(r);
    redisFree(c);
}

Test(viral_state, lifecycle_hysteresis_cooldown_exactly_once)
{
    int64_t stored, t = h_now_ms();
    int n_rej;
    cr_assert(smm_redis_sink_claim(sink, "smm:", "t:0", "A", &stored) == SMM_SINK_OK);
    redisContext *sub = h_redis_connect(&redis);
    redisReply *r = redisCommand(sub, "SUBSCRIBE smm:alerts");
    freeReplyObject(r);

    struct smm_viral_signals s = sig("p", SMM_VIRAL_RISE, 600);
    cr_assert(flush(t, -1, 10, &s, 1, &n_rej) == SMM_SINK_OK && n_rej == 0);
    /* The same flush resent (lost reply): DUP, so nothing of it applies again. */
    cr_assert(flush(t, -1, 10, &s, 1, &n_rej) == SMM_SINK_OK && n_rej == 1);
    s = sig("p", SMM_VIRAL_RISE | SMM_VIRAL_HOLD | SMM_VIRAL_ENTER, 1200);
    cr_assert(flush(t + 1000, 10, 20, &s, 1, &n_rej) == SMM_SINK_OK && n_rej == 0);
    cr_assert(flush(t + 1100, 20, 30, &s, 1, &n_rej) == SMM_SINK_OK && n_rej == 0);
    char got[1024];
    alerts(got, sizeof(got));
    cr_expect_str_eq(got, "p:normal>rising p:rising>viral ");
    cr_expect_str_eq(changes, "p=rising p=viral ");
    cr_expect_str_eq(states, "p=viral ", "the unchanged state of an evaluated flagged post");
    char *seq = hget("smm:v:p", "seq");
    cr_expect_str_eq(seq, "2");
    free(seq);

    /* Below the exit level: two ticks are not enough (exit_ticks = 3), an event in between
     * that holds resets the count. */
    s = sig("p", 0, 300);
    tick(t + 2000, &s, 1);
    tick(t + 3000, &s, 1);
    struct smm_viral_signals h = sig("p", SMM_VIRAL_HOLD, 800);
    tick(t + 4000, &h, 1);
    tick(t + 5000, &s, 1);
    tick(t + 6000, &s, 1);
    alerts(got, sizeof(got));
    cr_expect_str_eq(got, "p:normal>rising p:rising>viral ");
    tick(t + 7000, &s, 1);
    alerts(got, sizeof(got));
    cr_expect_str_eq(got, "p:normal>rising p:rising>viral p:viral>cooling ");
    /* Cooling lasts cooldown_ms (10 s) even if the post is quiet, and re-entering viral
     * inside it does not flap. */
    struct smm_viral_signals e = sig("p", SMM_VIRAL_ENTER | SMM_VIRAL_HOLD | SMM_VIRAL_RISE, 2000);
    tick(t + 8000, &e, 1);
    tick(t + 12000, &s, 1);
    alerts(got, sizeof(got));
    cr_expect_str_eq(got, "p:normal>rising p:rising>viral p:viral>cooling ");
    tick(t + 17001, &s, 1);
    alerts(got, sizeof(got));
    cr_expect_str_eq(got, "p:normal>rising p:rising>viral p:viral>cooling p:cooling>normal ");
    char *state = hget("smm:v:p", "state");
    cr_expect_str_eq(state, "normal");
    free(state);

    redisContext *c = h_redis_connect(&redis);
    r = redisCommand(c, "ZCARD smm:viral:active");
    cr_expect_eq(r->integer, 0);
    freeReplyObject(r);
    r = redisCommand(c, "HGET smm:stats alerts:viral");
    cr_expect_str_eq(r->str, "4");
    freeReplyObject(r);
    redisFree(c);

    /* Each change was published once. */
    struct timeval tv = {2, 0};
    redisSetTimeout(sub, tv);
    for (int i = 0; i < 4; i++) {
        cr_assert(redisGetReply(sub, (void **)&r) == REDIS_OK, "publish %d", i);
        cr_expect_str_eq(r->element[0]->str, "message");
        cr_expect(strstr(r->element[2]->str, "\"alert_id\":\"viral:p:") != NULL);
        freeReplyObject(r);
    }
    redisFree(sub);
}

Test(viral_state, unowned_flagged_post_cools_on_the_clock)
{
    int64_t stored, t = h_now_ms();
    int n_rej;
    cr_assert(smm_redis_sink_claim(sink, "smm:", "t:0", "A", &stored) == SMM_SINK_OK);
    struct smm_viral_signals s = sig("q", SMM_VIRAL_ENTER | SMM_VIRAL_HOLD | SMM_VIRAL_RISE, 5000);
    cr_assert(flush(t, -1, 1, &s, 1, &n_rej) == SMM_SINK_OK && n_rej == 0);
    /* Nobody sends q again (its tracker restarted): before stale_ms (30 s) nothing moves. */
    for (int i = 1; i <= 5; i++) {
        tick(t + i * 1000, NULL, 0);
    }
    char got[512];
    alerts(got, sizeof(got));
    cr_expect_str_eq(got, "q:normal>viral ");
    for (int i = 0; i < 3; i++) {
        tick(t + 31000 + i * 1000, NULL, 0);
    }
    said[0] = '\0';
    alerts(got, sizeof(got));
    cr_expect_str_eq(got, "q:normal>viral q:viral>cooling ");
    cr_expect_str_eq(said, "q went viral: reached 5,000 people in 5 minutes (its audience "
                           "threshold is 1,000).\n"
                           "q is cooling down: no new figures for it for 30 s.\n");
}

/* Two processors decide for the same post from the same stored state (partitions not keyed
 * by content_id): both see it normal at seq 0 and both decide normal -> viral. The first
 * write applies; the second finds seq 1 stored, applies nothing of its decision, reports
 * the post, and its processor loads the state again: one alert, not two. */
Test(viral_state, second_writer_of_the_same_seq_is_refused_and_reloads)
{
    char err[256];
    int64_t stored, t = h_now_ms();
    int n_rej;
    struct smm_pipeline *p2 = smm_pipeline_new(&cfg, err, sizeof(err));
    struct smm_redis_opts o = {.host = "127.0.0.1", .port = redis.port, .timeout_ms = 2000};
    struct smm_redis_sink *sink2 = smm_redis_sink_new(&o, err, sizeof(err));
    cr_assert(p2 && sink2 && smm_redis_sink_connect(sink2) == SMM_SINK_OK);
    smm_redis_sink_on_change(sink2, on_change, p2);
    cr_assert(smm_redis_sink_claim(sink, "smm:", "t:0", "A", &stored) == SMM_SINK_OK);
    cr_assert(smm_redis_sink_claim(sink2, "smm:", "t:1", "B", &stored) == SMM_SINK_OK);

    struct smm_viral_signals s = sig("x", SMM_VIRAL_ENTER | SMM_VIRAL_HOLD | SMM_VIRAL_RISE, 1500);
    struct smm_argv a1, a2;
    smm_argv_init(&a1);
    smm_argv_init(&a2);
    encode(pipe_, sink, "t:0", "A", t, -1, 10, &s, 1, &a1);
    encode(p2, sink2, "t:1", "B", t, -1, 10, &s, 1, &a2);
    cr_assert(send_flush(pipe_, sink, &a1, &n_rej) == SMM_SINK_OK && n_rej == 0);
    cr_assert(send_flush(p2, sink2, &a2, &n_rej) == SMM_SINK_OK && n_rej == 0,
              "the flush itself applies (counters, offsets)");
    char got[512];
    alerts(got, sizeof(got));
    cr_expect_str_eq(got, "x:normal>viral ", "one alert for one change");
    cr_expect_str_eq(changes, "x=viral ");
    cr_expect_str_eq(conflicts, "x=viral ", "the second decision is reported, not applied");
    char *seq = hget("smm:v:x", "seq");
    cr_expect_str_eq(seq, "1");
    free(seq);
    cr_expect(!smm_pipeline_viral_decides(p2, "x"), "its state is forgotten, to be reloaded");

    /* The next flush of the second processor loads seq 1 (viral) and decides from there:
     * nothing changes, nothing is emitted. */
    states[0] = conflicts[0] = '\0';
    smm_argv_init(&a2);
    encode(p2, sink2, "t:1", "B", t + 1000, 10, 20, &s, 1, &a2);
    cr_assert(send_flush(p2, sink2, &a2, &n_rej) == SMM_SINK_OK && n_rej == 0);
    alerts(got, sizeof(got));
    cr_expect_str_eq(got, "x:normal>viral ");
    cr_expect_str_eq(conflicts, "");
    cr_expect_str_eq(states, "x=viral ");
    cr_expect(smm_pipeline_viral_decides(p2, "x"));
    redisContext *c = h_redis_connect(&redis);
    redisReply *r = redisCommand(c, "HGET smm:stats alerts:viral");
    cr_expect_str_eq(r->str, "1");
    freeReplyObject(r);
    redisFree(c);
    smm_redis_sink_destroy(sink2);
    smm_pipeline_destroy(p2);
}

Test(viral_state, leaderboards_follow_velocity_and_prediction)
{
    int64_t stored, t = h_now_ms();
    int n_rej;
    cr_assert(smm_redis_sink_claim(sink, "smm:", "t:0", "A", &stored) == SMM_SINK_OK);
    struct smm_viral_signals s[2] = {sig("a", 0, 500), sig("b", 0, 200)};
    s[0].has_estimate = 1;
    s[0].est.predicted_final = 1.0 / 0.0; /* supercritical */
    s[0].est.supercritical = 1;
    cr_assert(flush(t, -1, 1, s, 2, &n_rej) == SMM_SINK_OK && n_rej == 0);
    redisContext *c = h_redis_connect(&redis);
    redisReply *r = redisCommand(c, "ZREVRANGE smm:viral:velocity 0 -1 WITHSCORES");
    cr_assert_eq(r->elements, 4);
    cr_expect_str_eq(r->element[0]->str, "a");
    cr_expect_str_eq(r->element[1]->str, "5");
    cr_expect_str_eq(r->element[2]->str, "b");
    freeReplyObject(r);
    r = redisCommand(c, "ZSCORE smm:viral:predicted a");
    cr_expect_str_eq(r->str, "1000000000000000");
    freeReplyObject(r);
    r = redisCommand(c, "HGET smm:v:a predicted_final");
    cr_expect_str_eq(r->str, "", "no finite prediction: empty, never \"inf\"");
    freeReplyObject(r);
    /* b's velocity decays to zero: it leaves the board. */
    s[1].spm_5m = 0;
    tick(t + 1000, &s[1], 1);
    r = redisCommand(c, "ZRANGE smm:viral:velocity 0 -1");
    cr_assert_eq(r->elements, 1);
    cr_expect_str_eq(r->element[0]->str, "a");
    freeReplyObject(r);
    redisFree(c);
}

/* A supercritical post goes viral: the alert says why in words (the processor's clauses,
 * metrics/alert_text.c, behind the post and its new state), keeps `reasons` for machines,
 * and gives predicted_final as JSON null (the hash holds ""), never the string "inf". */
Test(viral_state, alert_message_and_unbounded_prediction)
{
    int64_t stored, t = h_now_ms();
    int n_rej;
    cr_assert(smm_redis_sink_claim(sink, "smm:", "t:0", "A", &stored) == SMM_SINK_OK);
    struct smm_viral_signals s = sig("post-8887", SMM_VIRAL_ENTER | SMM_VIRAL_HOLD, 1000.19);
    snprintf(s.message, sizeof(s.message),
             "reached 1,000 people in 5 minutes (its audience threshold is 1,000)");
    snprintf(s.message_down, sizeof(s.message_down), "not used going up");
    s.has_estimate = 1;
    s.est.predicted_final = 1.0 / 0.0;
    s.est.supercritical = 1;
    cr_assert(flush(t, -1, 1, &s, 1, &n_rej) == SMM_SINK_OK && n_rej == 0);
    char got[512];
    alerts(got, sizeof(got));
    cr_expect_str_eq(got, "post-8887:normal>viral ");
    cr_expect_str_eq(said, "post-8887 went viral: reached 1,000 people in 5 minutes (its "
                           "audience threshold is 1,000).\n");
    redisContext *c = h_redis_connect(&redis);
    redisReply *r = redisCommand(c, "XRANGE smm:alerts - +");
    cr_assert_eq(r->elements, 1);
    const redisReply *f = r->element[0]->element[1];
    cJSON *a = NULL;
    for (size_t j = 0; j + 1 < f->elements; j += 2) {
        if (!strcmp(f->element[j]->str, "json")) {
            a = cJSON_Parse(f->element[j + 1]->str);
        }
    }
    cr_assert(a);
    const cJSON *m = cJSON_GetObjectItem(a, "metrics");
    cr_expect(cJSON_IsNull(cJSON_GetObjectItem(m, "predicted_final")), "null, not \"inf\"");
    cr_expect_eq(cJSON_GetObjectItem(m, "supercritical")->valuedouble, 1);
    const cJSON *rs = cJSON_GetObjectItem(a, "reasons");
    cr_assert_eq(cJSON_GetArraySize(rs), 1);
    cr_expect_str_eq(cJSON_GetArrayItem(rs, 0)->valuestring, "reach_5m 1000.19 >= 1000");
    cJSON_Delete(a);
    freeReplyObject(r);
    r = redisCommand(c, "HGET smm:v:post-8887 predicted_final");
    cr_expect_str_eq(r->str, "");
    freeReplyObject(r);

    /* Cooling: the words for going down. */
    redisFree(c);
    struct smm_viral_signals q = sig("post-8887", 0, 300);
    for (int i = 1; i <= 3; i++) {
        tick(t + i * 1000, &q, 1);
    }
    said[0] = '\0';
    alerts(got, sizeof(got));
    cr_expect_str_eq(got, "post-8887:normal>viral post-8887:viral>cooling ");
    cr_expect_str_eq(strchr(said, '\n') + 1,
                     "post-8887 is cooling down: 300 people saw it in the last 5 minutes, "
                     "under the 700 a viral post must keep (70% of its audience threshold of "
                     "1,000).\n");
}

/* The `message` of every alert in the stream, one per line. */
static void messages(char *out, size_t size)
{
    redisContext *c = h_redis_connect(&redis);
    redisReply *r = redisCommand(c, "XRANGE smm:alerts - +");
    out[0] = '\0';
    for (size_t i = 0; r && i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        for (size_t j = 0; j + 1 < f->elements; j += 2) {
            if (!strcmp(f->element[j]->str, "json")) {
                cJSON *a = cJSON_Parse(f->element[j + 1]->str);
                cr_assert(a);
                const cJSON *m = cJSON_GetObjectItem(a, "message");
                cr_assert(cJSON_IsString(m), "no message: %s", f->element[j + 1]->str);
                size_t used = strlen(out);
                snprintf(out + used, size - used, "%s\n", m->valuestring);
                cJSON_Delete(a);
            }
        }
    }
    freeReplyObject(r);
    redisFree(c);
}

/* SLA and goal alerts are worded by the script (one table, SAY): durations in words, whole
 * numbers with thousands separators. A 1 s reply deadline: the message waits 2 s (breached),
 * the reply comes after 2.5 s (resolved, rounded to 3 s); one goal is reached, a response
 * rate goal falls off track. */
Test(viral_state, sla_and_goal_alerts_in_words)
{
    char err[256];
    struct smm_config c2;
    cr_assert(smm_config_init(&c2, err, sizeof(err)) == SMM_OK);
    cr_assert(smm_config_set(&c2, "kafka.bootstrap.servers", "x:1", "test", err, sizeof(err)) ==
              SMM_OK);
    cr_assert(smm_config_set(&c2, "response.sla", "1s", "test", err, sizeof(err)) == SMM_OK,
              "%s", err);
    cr_assert(smm_config_finish(&c2, err, sizeof(err)) == SMM_OK, "%s", err);
    struct smm_pipeline *p2 = smm_pipeline_new(&c2, err, sizeof(err));
    cr_assert(p2, "%s", err);
    int64_t stored, t = h_now_ms();
    cr_assert(smm_redis_sink_claim(sink, "smm:", "t:0", "A", &stored) == SMM_SINK_OK);

    const char *events[2] = {"message", "reply"};
    for (int step = 0; step < 3; step++) {
        int64_t now = t + (step == 0 ? 0 : step == 1 ? 2000 : 2500);
        struct smm_argv av;
        smm_argv_init(&av);
        struct smm_batch b;
        cr_assert(smm_batch_init(&b, p2, err, sizeof(err)) == SMM_OK);
        if (step == 1) {
            /* the tick: the deadline passed; and the goal report */
            struct smm_goal_cfg g[2] = {{.id = "q1-conv", .account = "acct-1",
                                         .metric = "conversion", .kind = "increase",
                                         .start_day = t / 86400000, .days = 90},
                                        {.id = "care", .account = "acct-1",
                                         .metric = "response_rate", .kind = "at_least",
                                         .start_day = t / 86400000, .days = 7}};
            struct smm_goal_report rep[2] = {{.cfg = &g[0],
                                              .st = {.baseline = 1200, .current = 1381,
                                                     .target = 1380, .expected = 1104.4,
                                                     .progress_pct = 100.07, .on_track = 1,
                                                     .reached = 1}},
                                             {.cfg = &g[1],
                                              .st = {.current = 50, .target = 90,
                                                     .expected = 90, .progress_pct = 55.56}}};
            cr_assert(smm_pipeline_encode_tick(p2, now, 100, &av) == SMM_OK);
            cr_assert(smm_pipeline_encode_viral(p2, now, step == 1, NULL, 0, &av) == SMM_OK);
            cr_assert(smm_pipeline_encode_insights(p2, now, &av) == SMM_OK);
            cr_assert(smm_pipeline_encode_goals(p2, rep, 2, &av) == SMM_OK);
            cr_assert(smm_redis_sink_tick(sink, &av, NULL) == SMM_SINK_OK, "%s",
                      smm_redis_sink_errstr(sink));
        } else {
            char ev[256];
            int len = snprintf(ev, sizeof(ev),
                               "{\"event_id\":\"e%d\",\"type\":\"%s\",\"ts\":%lld,"
                               "\"account_id\":\"acct-1\",\"thread_id\":\"t-17\","
                               "\"user_id\":\"cust-1\"}",
                               step, events[step / 2], (long long)(t + (step ? 2500 : 0)));
            struct smm_reject rej;
            cr_assert(smm_pipeline_feed(p2, &b, ev, (size_t)len, now, now, &rej) == SMM_OK);
            struct smm_flush_reject frej[4];
            int n_rej;
            cr_assert(smm_pipeline_encode_flush_begin(p2, now, &av) == SMM_OK);
            cr_assert(smm_pipeline_encode_flush_part(p2, &b, "t:0", "A", step ? 1 : -1,
                                                     step ? 2 : 1, &av) == SMM_OK);
            cr_assert(smm_pipeline_encode_flush_end(&av, 1) == SMM_OK);
            cr_assert(smm_pipeline_encode_viral(p2, now, step == 1, NULL, 0, &av) == SMM_OK);
            cr_assert(smm_pipeline_encode_insights(p2, now, &av) == SMM_OK);
            cr_assert(smm_redis_sink_flush(sink, smm_pipeline_flush_writes(p2), smm_pipeline_flush_plain(p2), &av, frej, 4, &n_rej) == SMM_SINK_OK &&
                      n_rej == 0);
        }
        smm_batch_free(&b);
        smm_argv_free(&av);
    }
    char got[2048];
    messages(got, sizeof(got));
    cr_expect_str_eq(got,
                     "acct-1: the customer in thread t-17 has had no reply for 2 s, past the "
                     "reply deadline of 1 s (SLA breached).\n"
                     "acct-1: goal q1-conv reached: conversion is at 1,381, target 1,380.\n"
                     "acct-1: goal care is off track: response rate is at 50%, below the 90% "
                     "expected by now on the way to 90%.\n"
                     "acct-1: the customer in thread t-17 got a reply after 3 s, 2 s past the "
                     "reply deadline of 1 s (SLA breach resolved).\n");
    smm_pipeline_destroy(p2);
    smm_config_free(&c2);
}
