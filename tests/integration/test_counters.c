/* tests/integration/test_counters.c - the values and reach sketches the processor computes
 * (processor/counters.h), written by the state script into a real redis-server, with two
 * writers on one post: two pipelines standing for two processors whose partitions both
 * carry the post (input not keyed by content_id).
 *   - one writer alone: its values and its sketch are written as they are (PFCOUNT of the
 *     stored sketch is the number of users, the hash's v moves by one per flush);
 *   - the other writer loads what the first wrote, and adds to it;
 *   - the first writer's copy is then stale: the script adds its deltas and merges its
 *     sketch into the stored one (PFMERGE), so no user and no count of either writer is
 *     lost, reports the hash, and the writer loads it again and goes on from there;
 *   - the sketch keeps the expiry of the idle-id retention; no scratch key is left;
 *   - after Redis comes back from an older state (the post's hash and sketch a write
 *     behind), the replayed events' users are merged back although the processor's copy
 *     already had them (its sketch did not change, the version check failed). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/redis_sink.h"
#include "processor/config.h"
#include "processor/pipeline.h"
#include "tests/integration/harness.h"
#include "tests/integration/prepare.h"

static struct h_redis redis;

/* One processor: its pipeline, Redis connection, open batch, partition and offset. */
struct writer {
    struct smm_config cfg;
    struct smm_pipeline *pipe;
    struct smm_redis_sink *sink;
    struct smm_batch batch;
    const char *tp, *token;
    int64_t offset;
    long long listed; /* hashes the last flush's check listed (-1: no plain path) */
};

static void conflict(void *opaque, const char *key, size_t len)
{
    smm_pipeline_counters_conflict(opaque, key, len);
}

static void writer_open(struct writer *w, const char *tp, const char *token)
{
    char err[256];
    cr_assert(smm_config_init(&w->cfg, err, sizeof(err)) == SMM_OK);
    cr_assert(smm_config_set(&w->cfg, "kafka.bootstrap.servers", "x:1", "test", err,
                             sizeof(err)) == SMM_OK);
    cr_assert(smm_config_finish(&w->cfg, err, sizeof(err)) == SMM_OK, "%s", err);
    w->pipe = smm_pipeline_new(&w->cfg, err, sizeof(err));
    cr_assert(w->pipe, "%s", err);
    struct smm_redis_opts o = {.host = "127.0.0.1", .port = redis.port, .timeout_ms = 5000};
    w->sink = smm_redis_sink_new(&o, err, sizeof(err));
    cr_assert(w->sink && smm_redis_sink_connect(w->sink) == SMM_SINK_OK);
    smm_redis_sink_on_conflict(w->sink, conflict, w->pipe);
    int64_t stored;
    cr_assert(smm_redis_sink_claim(w->sink, "smm:", tp, token, &stored) == SMM_SINK_OK);
    cr_assert(smm_batch_init(&w->batch, w->pipe, err, sizeof(err)) == SMM_OK);
    w->tp = tp;
    w->token = token;
    w->offset = -1;
}

static void writer_close(struct writer *w)
{
    smm_batch_free(&w->batch);
    smm_redis_sink_destroy(w->sink);
    smm_pipeline_destroy(w->pipe);
    smm_config_free(&w->cfg);
}

/* A view of post p by user u, into the writer's open batch. */
static void view(struct writer *w, const char *u)
{
    static int seq;
    char json[256];
    int64_t now = h_now_ms();
    int len = snprintf(json, sizeof(json),
                       "{\"event_id\":\"e%d\",\"type\":\"view\",\"ts\":%lld,"
                       "\"account_id\":\"acct\",\"content_id\":\"p\",\"user_id\":\"%s\"}",
                       ++seq, (long long)now, u);
    struct smm_reject rej;
    cr_assert(smm_pipeline_feed(w->pipe, &w->batch, json, (size_t)len, now, now, &rej) ==
              SMM_OK);
    cr_assert_eq(rej.reason, SMM_REJECT_NONE);
}

/* What the processor's loop does for one flush: load what the pipeline lacks, encode,
 * send, settle. */
static void flush(struct writer *w)
{
    int64_t now = h_now_ms();
    h_flush_prepare(w->pipe, w->sink, &w->batch, now);
    struct smm_argv av;
    smm_argv_init(&av);
    struct smm_flush_reject rej[4];
    int n_rej = 0;
    cr_assert(smm_pipeline_encode_flush_begin(w->pipe, now, &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_flush_part(w->pipe, &w->batch, w->tp, w->token, w->offset,
                                             w->offset + 10, &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_flush_end(&av, 1) == SMM_OK);
    cr_assert(smm_pipeline_encode_viral(w->pipe, now, 0, NULL, 0, &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_insights(w->pipe, now, &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_wseq(w->pipe, &av) == SMM_OK);
    struct smm_flush_plain *plain = smm_pipeline_flush_plain(w->pipe);
    w->listed = -1;
    if (plain) { /* ARGV[8] of the check: how many hashes it lists */
        size_t len;
        const char *n = smm_argv_get(&plain->check, 7, &len);
        w->listed = atoll(n);
    }
    cr_assert(smm_redis_sink_flush(w->sink, smm_pipeline_flush_writes(w->pipe), smm_pipeline_flush_plain(w->pipe), &av, rej, 4, &n_rej) == SMM_SINK_OK, "%s",
              smm_redis_sink_errstr(w->sink));
    cr_assert_eq(n_rej, 0);
    smm_pipeline_counters_settle(w->pipe, 1, smm_redis_sink_alone(w->sink));
    w->offset += 10;
    smm_argv_free(&av);
    smm_batch_clear(&w->batch);
}

static long long integer(redisContext *c, const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(c, fmt, arg);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "%s: %s", fmt,
              r && r->type == REDIS_REPLY_ERROR ? r->str : "not an integer");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* DUMP of key (a string reply, kept by the caller) or RESTORE of it, REPLACE. */
static redisReply *dump(redisContext *c, const char *key)
{
    redisReply *r = redisCommand(c, "DUMP %s", key);
    cr_assert(r && r->type == REDIS_REPLY_STRING, "DUMP %s", key);
    return r;
}

static void restore(redisContext *c, const char *key, const redisReply *d)
{
    redisReply *r = redisCommand(c, "RESTORE %s 0 %b REPLACE", key, d->str, d->len);
    cr_assert(r && r->type == REDIS_REPLY_STATUS, "RESTORE %s", key);
    freeReplyObject(r);
}

static long long version(redisContext *c)
{
    char key[64];
    h_entity_key(c, "smm:", "c:p", key, sizeof(key));
    redisReply *r = redisCommand(c, "HGET %s v", key);
    cr_assert(r && r->type == REDIS_REPLY_STRING);
    long long v = atoll(r->str);
    freeReplyObject(r);
    return v;
}

/* Views and reach of p as stored: lifetime views, PFCOUNT of its sketch. */
static void check(redisContext *c, long long views, long long users, const char *when)
{
    cr_assert_eq(h_entity_get(c, "smm:", "c:p", "total", -1, "view"), views, "views %s", when);
    cr_assert_eq(integer(c, "PFCOUNT %s", "smm:c:p:reach"), users, "reach %s", when);
}

/* A Redis and two writers on one post from partitions t:0 (A) and t:1 (B). */
static redisContext *start_two(struct writer *a, struct writer *b)
{
    h_redis_start(&redis, 0);
    writer_open(a, "t:0", "A");
    writer_open(b, "t:1", "B");
    return h_redis_connect(&redis);
}

static void stop_two(redisContext *c, struct writer *a, struct writer *b)
{
    redisFree(c);
    writer_close(a);
    writer_close(b);
    h_redis_stop(&redis);
}

Test(counters, two_writers_one_post, .timeout = 60)
{
    struct writer a, b;
    redisContext *c = start_two(&a, &b);

    view(&a, "u1");
    view(&a, "u2");
    view(&a, "u3");
    flush(&a);
    check(c, 3, 3, "after A alone");
    long long v1 = version(c);
    cr_assert(integer(c, "TTL %s", "smm:c:p:reach") > 80 * 86400, "retention expiry");

    view(&b, "u4"); /* B loads what A wrote */
    flush(&b);
    check(c, 4, 4, "after B, which loaded A's");
    cr_assert_eq(version(c), v1 + 1);

    view(&a, "u5"); /* A's copy is one version behind */
    flush(&a);
    check(c, 5, 5, "after A's stale copy was merged");
    view(&a, "u6"); /* A loaded it again: the fast path once more */
    view(&a, "u1");
    flush(&a);
    check(c, 7, 6, "after A loaded it again");
    cr_assert_eq(version(c), v1 + 3);
    cr_assert_eq(integer(c, "EXISTS %s", "smm:c:p:reach:merge"), 0, "no scratch key left");
    cr_assert(integer(c, "TTL %s", "smm:c:p:reach") > 80 * 86400, "retention expiry kept");

    stop_two(c, &a, &b);
}

/* Calls of one command so far (INFO commandstats). */
static long long calls_of(redisContext *c, const char *cmd)
{
    redisReply *r = redisCommand(c, "INFO commandstats");
    cr_assert(r && r->type == REDIS_REPLY_STRING);
    char want[64];
    snprintf(want, sizeof(want), "cmdstat_%s:calls=", cmd);
    const char *at = strstr(r->str, want);
    long long n = at ? atoll(at + strlen(want)) : 0;
    freeReplyObject(r);
    return n;
}

/* A writer alone (processor/pipeline.c, proven()): once a check found the writer's own
 * last value in smm:wseq, its next check lists none of the hashes it holds; a commit of
 * another writer in between makes that check say NO and the flush goes whole, with every
 * figure exact; the writer proves its copies again after one full check. */
Test(counters, a_writer_alone_proves_its_copies_by_wseq, .timeout = 60)
{
    struct writer a, b;
    redisContext *c = start_two(&a, &b);

    view(&a, "u1");
    flush(&a);
    cr_assert_eq(a.listed, 2, "first flush: the post and its account checked");
    view(&a, "u2");
    flush(&a);
    cr_assert_eq(a.listed, 2, "the first check found no value of A's yet");
    view(&a, "u3");
    flush(&a);
    cr_assert_eq(a.listed, 0, "A alone: nothing to check");
    check(c, 3, 3, "after A alone");
    long long v = version(c);

    view(&b, "u4");
    flush(&b);
    check(c, 4, 4, "after B");
    long long unwatch = calls_of(c, "unwatch");
    view(&a, "u5"); /* A's copy is stale, and wseq says so */
    flush(&a);
    cr_assert_eq(a.listed, 0);
    cr_assert_eq(calls_of(c, "unwatch"), unwatch + 1, "the check said NO: the flush went whole");
    check(c, 5, 5, "after A's stale flush");
    cr_assert_eq(version(c), v + 2);
    view(&a, "u6");
    flush(&a);
    cr_assert(a.listed > 0, "after a foreign commit, copies are checked");
    view(&a, "u7");
    flush(&a);
    cr_assert_eq(a.listed, 0, "and proven again once A is found alone");
    check(c, 7, 7, "at the end");
    cr_assert_eq(calls_of(c, "unwatch"), unwatch + 1);

    stop_two(c, &a, &b);
}

/* The plain path (connectors/redis_sink.c): a flush whose values the writer holds goes as
 * plain commands in a MULTI/EXEC once the script's check passed; a stale copy fails the
 * check and the flush goes whole (the script adds the deltas); a Redis user that may not
 * run WATCH, MULTI or EXEC gets every flush whole, with the same figures. */
Test(counters, plain_path_and_its_fallbacks, .timeout = 60)
{
    struct writer a, b;
    redisContext *c = start_two(&a, &b);

    /* (each connection asks at connect whether it may run transactions, with an empty
     * MULTI/EXEC: two so far) */
    cr_assert_eq(calls_of(c, "exec"), 2);
    view(&a, "u1");
    flush(&a);
    check(c, 1, 1, "after A's first flush");
    cr_assert_eq(calls_of(c, "exec"), 3, "a new post, loaded empty: the plain path");
    cr_assert_eq(calls_of(c, "multi"), calls_of(c, "exec"));
    view(&a, "u2");
    view(&a, "u3");
    flush(&a);
    check(c, 3, 3, "after A's second flush");
    cr_assert_eq(calls_of(c, "exec"), 4, "held values: the plain path");

    view(&b, "u4"); /* B loads what A wrote, and writes through the plain path */
    flush(&b);
    check(c, 4, 4, "after B");
    cr_assert_eq(calls_of(c, "exec"), 5);

    /* A's copy is stale: its check fails, the flush goes whole, in a transaction of its
     * own with its reach writes (the user lands with the version move) */
    long long multi = calls_of(c, "multi");
    view(&a, "u5");
    flush(&a);
    check(c, 5, 5, "after A's stale flush");
    cr_assert_eq(calls_of(c, "unwatch"), 1);
    cr_assert_eq(calls_of(c, "multi"), multi + 1, "one transaction: the whole flush's");
    cr_assert_eq(calls_of(c, "exec"), 6);

    /* A Redis user without WATCH, MULTI and EXEC: whole flushes, the same figures. */
    redisReply *r = redisCommand(c, "ACL SETUSER nowatch on >pw ~* &* +@all -watch -multi -exec");
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    struct writer d;
    writer_open(&d, "t:2", "D");
    smm_redis_sink_destroy(d.sink);
    char err[256];
    struct smm_redis_opts o = {.host = "127.0.0.1", .port = redis.port, .timeout_ms = 5000,
                               .username = "nowatch", .password = "pw"};
    d.sink = smm_redis_sink_new(&o, err, sizeof(err));
    cr_assert(d.sink && smm_redis_sink_connect(d.sink) == SMM_SINK_OK);
    smm_redis_sink_on_conflict(d.sink, conflict, d.pipe);
    for (int i = 0; i < 3; i++) {
        char u[8];
        snprintf(u, sizeof(u), "w%d", i);
        view(&d, u);
        flush(&d);
    }
    check(c, 8, 8, "after the writer without transactions");
    /* A user that may open a transaction but not run it: asked at connect, the same. */
    r = redisCommand(c, "ACL SETUSER noexec on >pw ~* &* +@all -exec");
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    smm_redis_sink_destroy(d.sink);
    o.username = "noexec";
    d.sink = smm_redis_sink_new(&o, err, sizeof(err));
    cr_assert(d.sink && smm_redis_sink_connect(d.sink) == SMM_SINK_OK, "%s",
              smm_redis_sink_errstr(d.sink));
    smm_redis_sink_on_conflict(d.sink, conflict, d.pipe);
    view(&d, "w3");
    flush(&d);
    check(c, 9, 9, "after the writer that may not EXEC");
    cr_assert_eq(calls_of(c, "exec"), 7, "its flushes went whole, reach writes ahead (and "
                                         "D's first connection asked once)");

    writer_close(&d);
    stop_two(c, &a, &b);
}

Test(counters, redis_restored_from_an_older_state, .timeout = 60)
{
    h_redis_start(&redis, 0);
    struct writer a;
    writer_open(&a, "t:0", "A");
    redisContext *c = h_redis_connect(&redis);
    char key[64];
    view(&a, "u1");
    flush(&a);
    h_entity_key(c, "smm:", "c:p", key, sizeof(key));
    redisReply *hash = dump(c, key), *sketch = dump(c, "smm:c:p:reach");
    redisReply *wseq = dump(c, "smm:wseq");
    view(&a, "u2");
    flush(&a);
    check(c, 2, 2, "after two writes");
    /* Redis loses the second write (as an AOF a second older would), and with it who
     * wrote last */
    restore(c, key, hash);
    restore(c, "smm:c:p:reach", sketch);
    restore(c, "smm:wseq", wseq);
    check(c, 1, 1, "after the restore");
    view(&a, "u2"); /* the replay, from the offset Redis holds */
    flush(&a);
    check(c, 2, 2, "after the replay");
    freeReplyObject(hash);
    freeReplyObject(sketch);
    freeReplyObject(wseq);
    redisFree(c);
    writer_close(&a);
    h_redis_stop(&redis);
}
