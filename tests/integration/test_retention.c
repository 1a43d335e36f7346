/* tests/integration/test_retention.c - retention.idle_days: keys named by an id from an
 * event expire that many days after the last write (connectors/lua/smm.lua touch/retain),
 * driven through the pipeline (JSON events into batches) and the Redis sink against a real
 * redis-server, with a clock the test sets (the script takes now_ms from the caller, so
 * every expiry is known to the second: EXPIRETIME, Redis 7).
 *   - a flood of one-off ids (posts, accounts, threads, visitors, referrers, regions,
 *     sources, viral posts): every key whose name holds one of them carries the expiry
 *     now + idle_days (segment sketches: the end of that UTC day), the entities' counter
 *     hashes smm:{<N>}:<entity> included, and only the keys docs/redis-keys.md
 *     ("Lifetimes") lists as fixed or time-named are without it;
 *   - the tick pushes the viral hashes of the posts it sends and the goal hashes;
 *   - a later flush that writes some of them again pushes exactly their expiry, with one
 *     EXPIREAT per key however many events wrote it (counted in INFO commandstats), and
 *     none for segment sketches already pushed that day;
 *   - idle_days = 0 leaves every key without expiry and adds no EXPIREAT;
 *   - the viral leaderboards (one key, a member per post) keep at most 1000 posts;
 *   - a thread hash that expired with an open wait leaves no stale count in rt:open, and
 *     an account without open waits has no rt:open field. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/redis_sink.h"
#include "metrics/viral.h"
#include "processor/config.h"
#include "processor/pipeline.h"
#include "tests/integration/harness.h"
#include "tests/integration/prepare.h"

#define DAY_S 86400LL
#define N_IDS 300
#define N_SIGS 1200
#define IDLE 40 /* retention.idle_days of the suite retention */

static struct h_redis redis;
static struct smm_config cfg;
static struct smm_pipeline *pipe_;
static struct smm_redis_sink *sink;
static struct smm_batch batch;
static int64_t offset;
static int seq;
static const char *idle_days = "40";
static struct smm_viral_signals sigs[N_SIGS];
static char sig_ids[N_SIGS][2][32];
static int n_sigs;

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
    set("retention.idle_days", idle_days);
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
    n_sigs = 0;
}

static void teardown(void)
{
    smm_batch_free(&batch);
    smm_redis_sink_destroy(sink);
    smm_pipeline_destroy(pipe_);
    smm_config_free(&cfg);
    h_redis_stop(&redis);
}

TestSuite(retention, .init = setup, .fini = teardown, .timeout = 120);

static void feed(const char *json, int64_t ts, int64_t now)
{
    struct smm_reject rej;
    cr_assert(smm_pipeline_feed(pipe_, &batch, json, strlen(json), ts, now, &rej) == SMM_OK,
              "%s", json);
    cr_assert_eq(rej.reason, SMM_REJECT_NONE, "%s", json);
}

/* Everything one-off id i can name: post p<i> of account acct<i> seen by user u<i> in region
 * r<i> via source s<i> (reps impressions), a message in thread t<i>, visitor v<i> referred by
 * w<i> who converts, and the post's viral figures. */
static void add_sig(int i, int reps);

static void one_off(int i, int reps, int64_t ts, int64_t now)
{
    char json[512];
    for (int r = 0; r < reps; r++) {
        snprintf(json, sizeof(json),
                 "{\"event_id\":\"e%d\",\"type\":\"impression\",\"ts\":%lld,"
                 "\"account_id\":\"acct%d\",\"content_id\":\"p%d\",\"user_id\":\"u%d-%d\","
                 "\"region\":\"r%d\",\"source\":\"s%d\"}",
                 ++seq, (long long)ts, i, i, i, r, i, i);
        feed(json, ts, now);
    }
    snprintf(json, sizeof(json),
             "{\"event_id\":\"e%d\",\"type\":\"message\",\"ts\":%lld,\"account_id\":\"acct%d\","
             "\"thread_id\":\"t%d\",\"user_id\":\"c%d\"}",
             ++seq, (long long)ts, i, i, i);
    feed(json, ts, now);
    snprintf(json, sizeof(json),
             "{\"event_id\":\"e%d\",\"type\":\"referral\",\"ts\":%lld,\"account_id\":\"acct%d\","
             "\"user_id\":\"v%d\",\"referrer_id\":\"w%d\",\"source\":\"s%d\"}",
             ++seq, (long long)ts, i, i, i, i);
    feed(json, ts, now);
    snprintf(json, sizeof(json),
             "{\"event_id\":\"e%d\",\"type\":\"conversion\",\"ts\":%lld,\"account_id\":"
             "\"acct%d\",\"user_id\":\"v%d\",\"value\":2.5}",
             ++seq, (long long)(ts + 1), i, i);
    feed(json, ts + 1, now);
    add_sig(i, reps);
}

/* Post p<i>'s viral figures for the next flush: a velocity and a SEISMIC estimate. */
static void add_sig(int i, int reps)
{
    cr_assert(n_sigs < N_SIGS);
    struct smm_viral_signals *s = &sigs[n_sigs];
    memset(s, 0, sizeof(*s));
    snprintf(sig_ids[n_sigs][0], sizeof(sig_ids[0][0]), "p%d", i);
    snprintf(sig_ids[n_sigs][1], sizeof(sig_ids[0][1]), "acct%d", i);
    s->content_id = sig_ids[n_sigs][0];
    s->account_id = sig_ids[n_sigs][1];
    s->reach_5m = reps;
    s->spm_5m = 1 + i % 7;
    s->has_estimate = 1;
    s->est.predicted_final = 10 + i;
    n_sigs++;
}

/* Sends the open batch as one flush at the test's clock now. */
static void flush(int64_t now)
{
    struct smm_argv av;
    smm_argv_init(&av);
    struct smm_flush_reject rej[4];
    int n_rej = 0;
    h_flush_prepare(pipe_, sink, &batch, now);
    cr_assert(smm_pipeline_encode_flush_begin(pipe_, now, &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_flush_part(pipe_, &batch, "t:0", "A", offset, offset + 1000,
                                             &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_flush_end(&av, 1) == SMM_OK);
    cr_assert(smm_pipeline_encode_viral(pipe_, now, 0, sigs, n_sigs, &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_insights(pipe_, now, &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_wseq(pipe_, &av) == SMM_OK);
    cr_assert(smm_redis_sink_flush(sink, smm_pipeline_flush_writes(pipe_), smm_pipeline_flush_plain(pipe_), &av, rej, 4, &n_rej) == SMM_SINK_OK, "%s",
              smm_redis_sink_errstr(sink));
    cr_assert_eq(n_rej, 0);
    smm_pipeline_counters_settle(pipe_, 1, smm_redis_sink_alone(sink));
    offset += 1000;
    smm_argv_free(&av);
    smm_batch_clear(&batch);
    n_sigs = 0;
}

/* Keys with a fixed name or a name made of time (docs/redis-keys.md, "Lifetimes"): their
 * lifetime does not depend on ids. Account minute sketches (a:<id>:reach:m:<minute>) get
 * theirs when the tick merges their hour. Every other key is named by an event's id. */
static int fixed_or_timed(const char *k)
{
    static const char *const fixed[] = {
        "smm:meta", "smm:offsets", "smm:owner", "smm:wseq", "smm:stats", "smm:alerts", "smm:rt:due",
        "smm:rt:open", "smm:ref:due", "smm:viral:velocity", "smm:viral:predicted",
        "smm:viral:active", "smm:top:t"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (strcmp(k, fixed[i]) == 0) {
            return 1;
        }
    }
    static const char *const timed[] = {"smm:d:", "smm:reach_accounts:h:", "smm:top:m",
                                        "smm:top:h"};
    for (size_t i = 0; i < sizeof(timed) / sizeof(timed[0]); i++) {
        if (strncmp(k, timed[i], strlen(timed[i])) == 0) {
            return 1;
        }
    }
    /* account minute and day reach sketches: expire by their own time */
    return strncmp(k, "smm:a:", 6) == 0 &&
           (strstr(k, ":reach:m:") != NULL || strstr(k, ":reach:d:") != NULL);
}

/* The leaderboards of the minute and the hour of ts_ms that exist (0 to 2: each one a flush
 * writes gets one EXPIREAT). */
static int boards_of(int64_t ts_ms)
{
    redisContext *c = h_redis_connect(&redis);
    redisReply *r = redisCommand(c, "EXISTS smm:top:m%lld smm:top:h%lld",
                                 (long long)(ts_ms / 60000), (long long)(ts_ms / 3600000));
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    int n = (int)r->integer;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

static long long expiretime(redisContext *c, const char *key)
{
    redisReply *r = redisCommand(c, "EXPIRETIME %s", key);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "EXPIRETIME %s", key);
    long long t = r->integer;
    freeReplyObject(r);
    return t;
}

static long long calls_of(const char *cmd)
{
    redisContext *c = h_redis_connect(&redis);
    redisReply *r = redisCommand(c, "INFO commandstats");
    cr_assert(r && r->type == REDIS_REPLY_STRING);
    char want[64];
    snprintf(want, sizeof(want), "cmdstat_%s:calls=", cmd);
    const char *p = strstr(r->str, want);
    long long n = p ? atoll(p + strlen(want)) : 0;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

static long long expireat_calls(void)
{
    return calls_of("expireat");
}

static int is_sketch(const char *k)
{
    return strncmp(k, "smm:ss:", 7) == 0 || strncmp(k, "smm:seg:", 8) == 0;
}

/* The expiry of key k last written at now_ms: idle days later; the segment sketches and
 * their admitted sets at the end of that UTC day (pushed once a day). */
static long long expected(const char *k, int64_t now_ms)
{
    if (is_sketch(k)) {
        return (now_ms / 86400000 + 1 + IDLE) * DAY_S;
    }
    return now_ms / 1000 + IDLE * DAY_S;
}

/* Walks every key: per-id keys are counted into *n_id and those expiring as written at
 * now_ms into *n_at (segment sketches among them into *n_sk); *n_none counts per-id keys
 * without expiry. A per-id key expiring as written neither at now_ms nor at one of the
 * earlier times before[0..n_before) fails. */
static void census(int64_t now_ms, const int64_t *before, int n_before, int *n_id, int *n_at,
                   int *n_none, int *n_sk)
{
    redisContext *c = h_redis_connect(&redis);
    *n_id = *n_at = *n_none = *n_sk = 0;
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(c, "SCAN %s COUNT 1000", cursor);
        cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const char *k = r->element[1]->element[i]->str;
            if (fixed_or_timed(k)) {
                continue;
            }
            (*n_id)++;
            long long t = expiretime(c, k);
            if (t == -1) {
                (*n_none)++;
            } else if (t == expected(k, now_ms)) {
                (*n_at)++;
                *n_sk += is_sketch(k);
            } else {
                int known = 0;
                for (int b = 0; b < n_before; b++) {
                    known |= t == expected(k, before[b]);
                }
                cr_assert(known, "%s expires at %lld, not as written at %lld or before", k, t,
                          (long long)now_ms);
            }
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    redisFree(c);
}

Test(retention, flood_of_one_off_ids_expires_idle_days_after_the_write)
{
    int64_t now = (h_now_ms() / 1000) * 1000 + 123; /* the script floors to the second */
    for (int i = 0; i < N_IDS; i++) {
        one_off(i, 2, now - 5000, now);
    }
    flush(now);
    int n_id, n_at, n_none, n_sk;
    census(now, NULL, 0, &n_id, &n_at, &n_none, &n_sk);
    /* Per id at least: c: and a: reach, the region's reach, v:, rt:, ref:, cv:direct:,
     * cv:indirect:, the region/segment/source sketches and admitted sets, and the counter
     * hashes of the post, the account, the source and the region. */
    cr_assert_geq(n_id, 16 * N_IDS, "only %d per-id keys", n_id);
    cr_assert_eq(n_none, 0, "%d of %d per-id keys never expire", n_none, n_id);
    cr_assert_eq(n_at, n_id);
    /* The kinds named in docs/redis-keys.md, by name. */
    redisContext *c = h_redis_connect(&redis);
    char counters[4][128];
    static const char *const entities[] = {"c:p7", "a:acct7", "s:acct7|s7", "g:acct7|region=r7"};
    for (int i = 0; i < 4; i++) {
        h_entity_key(c, "smm:", entities[i], counters[i], sizeof(counters[i]));
    }
    const char *const keys[] = {"smm:c:p7:reach",        "smm:a:acct7:reach",
                                "smm:g:acct7|region=r7:reach", "smm:v:p7",
                                "smm:rt:acct7",          "smm:ref:acct7",
                                "smm:cv:direct:acct7",   "smm:cv:indirect:acct7",
                                "smm:ss:acct7:source",   "smm:seg:acct7:source",
                                "smm:ss:acct7:region",   "smm:seg:acct7:region",
                                counters[0], counters[1], counters[2], counters[3]};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        cr_assert_eq(expiretime(c, keys[i]), expected(keys[i], now), "%s", keys[i]);
        cr_assert_geq(expiretime(c, keys[i]), now / 1000 + IDLE * DAY_S, "%s", keys[i]);
    }
    redisFree(c);
}

Test(retention, a_write_pushes_the_expiry_once_per_key_per_flush)
{
    int64_t now = (h_now_ms() / 1000) * 1000;
    for (int i = 0; i < N_IDS; i++) {
        one_off(i, 1, now - 5000, now);
    }
    flush(now);
    /* Five days later (10:00 UTC) ids 0..49 come back, each with 20 events on its post. */
    int64_t later = (now / 86400000 + 5) * 86400000 + 10 * 3600000LL;
    for (int i = 0; i < 50; i++) {
        one_off(i, 20, later - 5000, later);
    }
    long long before = expireat_calls(), sets_before = calls_of("set");
    flush(later);
    long long added = expireat_calls() - before;
    /* The reach sketches the processor holds get theirs with the SET that writes them
     * (EXAT); one more SET is smm:wseq's. */
    long long exat = calls_of("set") - sets_before - 1;
    int n_id, n_at2, n_none, n_sk;
    int64_t before_ms[2] = {now, later};
    census(later, before_ms, 1, &n_id, &n_at2, &n_none, &n_sk);
    cr_assert_eq(n_none, 0);
    cr_assert_geq(n_at2, 16 * 50);
    cr_assert_geq(n_sk, 4 * 50);
    cr_assert_lt(n_at2, n_id, "the ids not written again keep their expiry");
    redisContext *c = h_redis_connect(&redis);
    cr_assert_eq(expiretime(c, "smm:c:p3:reach"), later / 1000 + IDLE * DAY_S);
    cr_assert_eq(expiretime(c, "smm:rt:acct3"), later / 1000 + IDLE * DAY_S);
    cr_assert_eq(expiretime(c, "smm:c:p200:reach"), now / 1000 + IDLE * DAY_S);
    cr_assert_eq(expiretime(c, "smm:rt:acct200"), now / 1000 + IDLE * DAY_S);
    /* The counter hashes too: the post written again pushed, the other kept. */
    char key[128];
    h_entity_key(c, "smm:", "c:p3", key, sizeof(key));
    cr_assert_eq(expiretime(c, key), later / 1000 + IDLE * DAY_S, "%s", key);
    h_entity_key(c, "smm:", "a:acct3", key, sizeof(key));
    cr_assert_eq(expiretime(c, key), later / 1000 + IDLE * DAY_S, "%s", key);
    h_entity_key(c, "smm:", "c:p200", key, sizeof(key));
    cr_assert_eq(expiretime(c, key), now / 1000 + IDLE * DAY_S, "%s", key);
    redisFree(c);
    /* One EXPIREAT (or SET … EXAT) per pushed key (every one existed), plus those the
     * flush sets anyway (its day bucket, its reach_accounts hour set, the leaderboard
     * buckets it wrote and the day reach sketch of each of the 50 accounts): not one per
     * event (1250 here). The day bucket may get two: the plain commands add the held
     * accounts' counters to it, and the script what the links yield. */
    int boards = boards_of(later - 5000);
    long long want = n_at2 + 2 + boards + 50;
    cr_assert_geq(exat, 50, "the posts' sketches at least");
    cr_assert(added + exat == want || added + exat == want + 1,
                 "%lld EXPIREATs and %lld SET EXATs for %d keys, %d leaderboards and 50 day "
                 "reach sketches", added, exat, n_at2, boards);
    /* An hour later, the same day: the segment sketches already expire at its end. */
    int64_t again = later + 3600000;
    for (int i = 0; i < 50; i++) {
        one_off(i, 1, again - 5000, again);
    }
    before = expireat_calls();
    flush(again);
    added = expireat_calls() - before;
    int n_at3, n_sk3;
    census(again, before_ms, 2, &n_id, &n_at3, &n_none, &n_sk3);
    cr_assert_eq(n_sk3, n_sk, "the sketches keep their day");
    boards = boards_of(again - 5000);
    want = n_at3 - n_sk3 + 2 + boards + 50; /* + the 50 day reach sketches */
    cr_assert(added == want || added == want + 1, /* (the day bucket's may come twice) */
              "%lld EXPIREATs for %d keys, %d of them sketches, and %d leaderboards", added,
              n_at3, n_sk3, boards);
}

/* A thread hash that expired (idle) with its wait still open: the account's next message
 * finds no hash, so the open count it left in rt:open is dropped, not added to. */
Test(retention, expired_thread_hash_leaves_no_stale_open_count)
{
    int64_t now = (h_now_ms() / 1000) * 1000;
    char json[256];
    snprintf(json, sizeof(json),
             "{\"event_id\":\"m1\",\"type\":\"message\",\"ts\":%lld,\"account_id\":\"acct\","
             "\"thread_id\":\"t1\",\"user_id\":\"c1\"}",
             (long long)(now - 1000));
    feed(json, now - 1000, now);
    flush(now);
    redisContext *c = h_redis_connect(&redis);
    redisReply *r = redisCommand(c, "HGET smm:rt:open acct");
    cr_assert(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "1") == 0);
    freeReplyObject(r);
    freeReplyObject(redisCommand(c, "DEL smm:rt:acct")); /* what expiry does */
    snprintf(json, sizeof(json),
             "{\"event_id\":\"m2\",\"type\":\"message\",\"ts\":%lld,\"account_id\":\"acct\","
             "\"thread_id\":\"t2\",\"user_id\":\"c2\"}",
             (long long)(now - 500));
    feed(json, now - 500, now);
    flush(now);
    r = redisCommand(c, "HGET smm:rt:open acct");
    cr_assert(r && r->type == REDIS_REPLY_STRING);
    cr_assert_str_eq(r->str, "1", "open waits of acct: %s (t1 is gone with its hash)", r->str);
    freeReplyObject(r);
    cr_assert_eq(expiretime(c, "smm:rt:acct"), now / 1000 + IDLE * DAY_S);
    /* Its reply closes the last open wait: the account leaves rt:open. */
    snprintf(json, sizeof(json),
             "{\"event_id\":\"r2\",\"type\":\"reply\",\"ts\":%lld,\"account_id\":\"acct\","
             "\"thread_id\":\"t2\"}",
             (long long)(now - 100));
    feed(json, now - 100, now);
    flush(now);
    r = redisCommand(c, "HEXISTS smm:rt:open acct");
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    cr_assert_eq(r->integer, 0);
    freeReplyObject(r);
    redisFree(c);
}

/* The tick writes the figures of the posts it sends and the goals it evaluates: both are
 * pushed to idle_days after the tick's clock. */
Test(retention, tick_pushes_viral_and_goal_hashes)
{
    int64_t now = (h_now_ms() / 1000) * 1000;
    add_sig(5, 1);
    struct smm_goal_cfg g = {.id = "g1", .account = "acct5", .metric = "engagement",
                             .kind = "increase", .start_day = now / 86400000, .days = 7};
    struct smm_goal_report rep = {.cfg = &g, .st = {.current = 1, .target = 10, .on_track = 1}};
    struct smm_argv av;
    smm_argv_init(&av);
    cr_assert(smm_pipeline_encode_tick(pipe_, now, 100, &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_viral(pipe_, now, 1, sigs, n_sigs, &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_insights(pipe_, now, &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_goals(pipe_, &rep, 1, &av) == SMM_OK);
    cr_assert(smm_redis_sink_tick(sink, &av, NULL) == SMM_SINK_OK, "%s",
              smm_redis_sink_errstr(sink));
    smm_argv_free(&av);
    n_sigs = 0;
    redisContext *c = h_redis_connect(&redis);
    cr_assert_eq(expiretime(c, "smm:v:p5"), now / 1000 + IDLE * DAY_S);
    cr_assert_eq(expiretime(c, "smm:goal:g1"), now / 1000 + IDLE * DAY_S);
    redisFree(c);
}

static long long zcard(const char *key)
{
    redisContext *c = h_redis_connect(&redis);
    redisReply *r = redisCommand(c, "ZCARD %s", key);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* The viral leaderboards cannot expire (one key for every post): one-off posts with a
 * velocity and an estimate are trimmed to the top 1000 like the engagement boards, and
 * the top stays. */
Test(retention, viral_leaderboards_of_one_off_posts_stay_bounded)
{
    int64_t now = (h_now_ms() / 1000) * 1000;
    for (int i = 0; i < N_SIGS; i++) {
        add_sig(i, 1);
    }
    flush(now);
    cr_assert_eq(zcard("smm:viral:velocity"), 1000);
    cr_assert_eq(zcard("smm:viral:predicted"), 1000);
    redisContext *c = h_redis_connect(&redis);
    redisReply *r = redisCommand(c, "ZREVRANGE smm:viral:predicted 0 0");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1);
    cr_assert_str_eq(r->element[0]->str, "p1199");
    freeReplyObject(r);
    redisFree(c);
}

static void setup_keep(void)
{
    idle_days = "0";
    setup();
}

TestSuite(retention_off, .init = setup_keep, .fini = teardown, .timeout = 120);

Test(retention_off, idle_days_0_keeps_every_key)
{
    int64_t now = (h_now_ms() / 1000) * 1000;
    for (int i = 0; i < N_IDS; i++) {
        one_off(i, 2, now - 5000, now);
    }
    long long before = expireat_calls();
    flush(now);
    long long added = expireat_calls() - before, want = 2 + boards_of(now - 5000) + N_IDS;
    cr_assert(added == want || added == want + 1, /* (the day bucket's may come twice) */
              "only the day, the reach_accounts hour, leaderboard bucket keys and the "
              "accounts' day reach sketches expire: %lld EXPIREATs for %lld", added, want);
    int n_id, n_at, n_none;
    int n_sk;
    census(now, NULL, 0, &n_id, &n_at, &n_none, &n_sk);
    cr_assert_geq(n_id, 16 * N_IDS);
    cr_assert_eq(n_none, n_id);
}
