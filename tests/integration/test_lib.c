/* tests/integration/test_lib.c - the Redis Function library `smm` (connectors/lua/smm_lib.lua)
 * against a real redis-server 7.0.
 *
 * Each test starts Redis, installs the library the way the processor does
 * (smm_redis_sink_connect: SCRIPT LOAD, then FUNCTION LOAD REPLACE), writes entity hashes
 * by hand in the layout of docs/redis-keys.md ("Counters: one hash per entity") with the
 * shard computed here from SHA-1 (hex digest from Redis, arithmetic in C), and compares the
 * functions' answers with values computed in the test. Bucket values are distinct powers
 * of ten, so a sum says exactly which buckets were read: every window edge (one bucket
 * inside, one just outside on both sides) is checked. Reach is compared with the exact
 * number of distinct users PFADDed (within 2 %; the excluded sketches would move it more).
 * Checked: smm_get (total, 5m, 180m, 24h, the server clock, er_impr, reach of contents,
 * accounts, segment values, none for sources), smm_mget (nil for undefined derived values),
 * smm_top (exact re-scoring of stale boards, ties, n, total, hour windows), smm_series,
 * refused labels and arguments, no `meta shards` = no data, a user without FUNCTION LOAD
 * refused at connect with a message naming it, and the readers' ACL of docs/security.md.
 * Account reach by span: minute sketches up to 1 h, hour-granular up to 48 h (a whole
 * merged hour from its hour sketch, wherever it sits), day sketches beyond, nil past the 15
 * days kept. And the writer side of those rules (smm.lua through the pipeline and the
 * sink): a flush fills the UTC day sketches, the tick's hour sketches outlive 48 h. */
#include "connectors/redis_sink.h"
#include "processor/config.h"
#include "processor/pipeline.h"
#include "tests/integration/harness.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct h_redis redis;
static redisContext *c;
static int shards;

/* A fixed "now": minute 17 of hour H. */
#define H 491234LL
#define N (H * 60 + 17)

static void setup(void)
{
    h_redis_start(&redis, 0);
    struct smm_redis_opts o = {.host = "127.0.0.1", .port = redis.port, .timeout_ms = 5000};
    char err[256];
    struct smm_redis_sink *sink = smm_redis_sink_new(&o, err, sizeof(err));
    cr_assert(sink, "%s", err);
    cr_assert_eq(smm_redis_sink_connect(sink), SMM_SINK_OK, "connect: %s",
                 smm_redis_sink_errstr(sink));
    smm_redis_sink_destroy(sink);
    c = h_redis_connect(&redis);
}

static void teardown(void)
{
    if (c) {
        redisFree(c);
        c = NULL;
    }
    h_redis_stop(&redis);
}

TestSuite(lib, .init = setup, .fini = teardown, .timeout = 60);

/* Runs the NULL-terminated command; the caller frees the reply. */
static redisReply *cmd(const char *first, ...)
{
    const char *argv[64];
    int n = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && n < 64; a = va_arg(ap, const char *)) {
        argv[n++] = a;
    }
    va_end(ap);
    redisReply *r = redisCommandArgv(c, n, argv, NULL);
    cr_assert(r, "no reply to %s: %s", first, c->errstr);
    return r;
}

static void cmd_ok(const char *first, ...)
{
    const char *argv[64];
    int n = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && n < 64; a = va_arg(ap, const char *)) {
        argv[n++] = a;
    }
    va_end(ap);
    redisReply *r = redisCommandArgv(c, n, argv, NULL);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "%s: %s", first, r ? r->str : c->errstr);
    freeReplyObject(r);
}

static void set_shards(int s)
{
    char v[16];
    snprintf(v, sizeof(v), "%d", s);
    cmd_ok("HSET", "smm:meta", "shards", v, NULL);
    shards = s;
}

/* The contract's shard: first 8 hex digits of SHA-1(entity) as a number, modulo S. */
static int shard_of(const char *ent, int s)
{
    redisReply *r = cmd("EVAL", "return redis.sha1hex(ARGV[1])", "0", ent, NULL);
    cr_assert(r->type == REDIS_REPLY_STRING && r->len == 40);
    char hex[9];
    memcpy(hex, r->str, 8);
    hex[8] = 0;
    freeReplyObject(r);
    return (int)(strtoul(hex, NULL, 16) % (unsigned long)s);
}

static void ekey(char *out, size_t size, const char *ent)
{
    snprintf(out, size, "smm:{%d}:%s", shard_of(ent, shards), ent);
}

/* HSET smm:{<shard>}:<ent> <field> <packed>; field "m<k>" etc. built by the caller. */
static void put(const char *ent, const char *field, const char *packed)
{
    char key[256];
    ekey(key, sizeof(key), ent);
    cmd_ok("HSET", key, field, packed, NULL);
}

static void putm(const char *ent, char unit, long long bucket, const char *packed)
{
    char f[32];
    snprintf(f, sizeof(f), "%c%lld", unit, bucket);
    put(ent, f, packed);
}

static const char *ll(long long v)
{
    static char buf[16][32];
    static int i;
    i = (i + 1) % 16;
    snprintf(buf[i], sizeof(buf[i]), "%lld", v);
    return buf[i];
}

/* The value of `name` in a flat name, value reply; NULL when absent. */
static const char *pair(const redisReply *r, const char *name)
{
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "reply type %d: %s", r->type,
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    cr_assert_eq(r->elements % 2, 0);
    for (size_t i = 0; i < r->elements; i += 2) {
        if (strcmp(r->element[i]->str, name) == 0) {
            return r->element[i + 1]->str;
        }
    }
    return NULL;
}

/* The reply is exactly exp[0..n) (NULL = nil). */
static void expect_flat(const redisReply *r, const char *const *exp, size_t n)
{
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "reply type %d: %s", r->type,
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    cr_assert_eq(r->elements, n, "%zu elements, expected %zu", r->elements, n);
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[i];
        if (!exp[i]) {
            cr_assert_eq(e->type, REDIS_REPLY_NIL, "element %zu: expected nil, got '%s'", i,
                         e->type == REDIS_REPLY_STRING ? e->str : "?");
        } else {
            cr_assert_eq(e->type, REDIS_REPLY_STRING, "element %zu: type %d (expected '%s')", i,
                         e->type, exp[i]);
            cr_assert_str_eq(e->str, exp[i], "element %zu", i);
        }
    }
}

static void expect_error(redisReply *r, const char *needle)
{
    cr_assert_eq(r->type, REDIS_REPLY_ERROR, "expected an error naming '%s', got type %d",
                 needle, r->type);
    cr_assert(strstr(r->str, needle), "error '%s' does not name '%s'", r->str, needle);
    freeReplyObject(r);
}

/* PFADD key <tag>-<from> .. <tag>-<to - 1>. */
static void users(const char *key, const char *tag, int from, int to)
{
    for (int i = from; i < to; i++) {
        char u[64];
        snprintf(u, sizeof(u), "%s-%d", tag, i);
        cmd_ok("PFADD", key, u, NULL);
    }
}

static void users_m(const char *acct, char unit, long long b, const char *tag, int n)
{
    char key[128];
    snprintf(key, sizeof(key), "smm:a:%s:reach:%c:%lld", acct, unit, b);
    users(key, tag, 0, n);
}

static void near(const char *got, double exact)
{
    cr_assert(got, "reach missing (expected about %.0f)", exact);
    double v = atof(got);
    cr_assert(v >= exact * 0.98 && v <= exact * 1.02, "reach %s, exact %.0f (off by more than 2 %%)",
              got, exact);
}

/* ---- smm_get ---- */

Test(lib, loaded_at_connect)
{
    redisReply *r = cmd("FUNCTION", "LIST", "LIBRARYNAME", "smm", "WITHCODE", NULL);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->elements, 1, "library smm not installed by smm_redis_sink_connect");
    /* The code Redis holds is the code the binary embeds. */
    const redisReply *lib = r->element[0];
    const char *code = NULL;
    for (size_t i = 0; i + 1 < lib->elements; i += 2) {
        if (strcmp(lib->element[i]->str, "library_code") == 0) {
            code = lib->element[i + 1]->str;
        }
    }
    cr_assert(code && strcmp(code, smm_redis_lib_source()) == 0);
    cr_assert(strncmp(code, "#!lua name=smm\n", 15) == 0);
    freeReplyObject(r);
}

Test(lib, get_total_sorted_rates_and_shard)
{
    set_shards(8);
    put("c:p1", "t", "impression=200,like=7,engagement=9,click=2");
    put("c:p1", "m100", "like=1000"); /* a bucket, not the lifetime */
    /* The same entity in every other shard: only the SHA-1 shard may be read. */
    for (int s = 0; s < 8; s++) {
        if (s != shard_of("c:p1", 8)) {
            char key[64];
            snprintf(key, sizeof(key), "smm:{%d}:c:p1", s);
            cmd_ok("HSET", key, "t", "like=99999", NULL);
        }
    }
    users("smm:c:p1:reach", "u", 0, 3);
    redisReply *r = cmd("FCALL", "smm_get", "0", "smm:", "c:p1", "total", NULL);
    static const char *const exp[] = {"click", "2", "engagement", "9", "impression", "200",
                                      "like", "7", "er_impr", "4.5000", "reach", "3",
                                      "er_reach", "300.0000"};
    expect_flat(r, exp, sizeof(exp) / sizeof(exp[0]));
    freeReplyObject(r);
}

Test(lib, get_minute_window_edges)
{
    set_shards(16);
    putm("a:x", 'm', N - 5, "like=1000");  /* just before the window */
    putm("a:x", 'm', N - 4, "like=1");     /* oldest minute inside */
    putm("a:x", 'm', N - 2, "like=10,impression=4");
    putm("a:x", 'm', N, "like=100,engagement=1");
    putm("a:x", 'm', N + 1, "like=10000"); /* future */
    putm("a:x", 'h', H - 1, "like=100000");
    put("a:x", "t", "like=1000000");
    redisReply *r = cmd("FCALL", "smm_get", "0", "smm:", "a:x", "5m", ll(N), NULL);
    cr_assert_str_eq(pair(r, "like"), "111");
    cr_assert_str_eq(pair(r, "impression"), "4");
    cr_assert_str_eq(pair(r, "er_impr"), "25.0000");
    cr_assert_null(pair(r, "reach"), "no minute sketch: no reach");
    freeReplyObject(r);
    /* 180 minutes is still minute-granular: N-179 .. N. */
    putm("a:x", 'm', N - 179, "comment=1");
    putm("a:x", 'm', N - 180, "comment=10");
    r = cmd("FCALL", "smm_get", "0", "smm:", "a:x", "180m", ll(N), NULL);
    cr_assert_str_eq(pair(r, "comment"), "1");
    cr_assert_str_eq(pair(r, "like"), "1111", "180m reads minutes only, no hour fields");
    freeReplyObject(r);
    r = cmd("FCALL", "smm_get", "0", "smm:", "a:x", "3h", ll(N), NULL);
    cr_assert_str_eq(pair(r, "comment"), "1");
    freeReplyObject(r);
}

Test(lib, get_hour_window_edges)
{
    set_shards(64);
    putm("a:y", 'm', H * 60, "share=1");       /* first minute of the current hour */
    putm("a:y", 'm', N, "share=10");           /* now */
    putm("a:y", 'm', N + 1, "share=100000");   /* future */
    putm("a:y", 'm', H * 60 - 1, "share=1000000"); /* in hour H-1: read through h<H-1> */
    putm("a:y", 'h', H - 1, "share=100");
    putm("a:y", 'h', H - 24, "share=1000");
    putm("a:y", 'h', H - 25, "share=10000000");    /* 25 hours back */
    putm("a:y", 'h', H, "share=100000000");        /* the current hour's own field */
    redisReply *r = cmd("FCALL", "smm_get", "0", "smm:", "a:y", "24h", ll(N), NULL);
    cr_assert_str_eq(pair(r, "share"), "1111");
    freeReplyObject(r);
    r = cmd("FCALL", "smm_get", "0", "smm:", "a:y", "1d", ll(N), NULL);
    cr_assert_str_eq(pair(r, "share"), "1111");
    freeReplyObject(r);
    /* 8 days is the longest window: hours H-192 .. H-1. */
    putm("a:y", 'h', H - 192, "view=1");
    putm("a:y", 'h', H - 193, "view=10");
    r = cmd("FCALL", "smm_get", "0", "smm:", "a:y", "8d", ll(N), NULL);
    cr_assert_str_eq(pair(r, "view"), "1");
    cr_assert_str_eq(pair(r, "share"), "10001111");
    freeReplyObject(r);
}

Test(lib, get_server_clock)
{
    set_shards(4);
    for (int attempt = 0; attempt < 3; attempt++) {
        redisReply *t = cmd("TIME", NULL);
        long long now = atoll(t->element[0]->str) / 60;
        freeReplyObject(t);
        putm("c:clock", 'm', now, "view=1");
        putm("c:clock", 'm', now - 1, "view=10");
        putm("c:clock", 'm', now - 2, "view=100");
        redisReply *r = cmd("FCALL", "smm_get", "0", "smm:", "c:clock", "2m", NULL);
        t = cmd("TIME", NULL);
        long long after = atoll(t->element[0]->str) / 60;
        freeReplyObject(t);
        if (after == now) {
            cr_assert_str_eq(pair(r, "view"), "11");
            freeReplyObject(r);
            return;
        }
        freeReplyObject(r); /* the minute turned during the call: try again */
    }
    cr_assert_fail("the minute turned on every attempt");
}

Test(lib, er_impr_absent_without_impressions)
{
    set_shards(4);
    put("c:z", "t", "engagement=5,like=5");
    put("c:w", "t", "engagement=1,impression=3");
    redisReply *r = cmd("FCALL", "smm_get", "0", "smm:", "c:z", "total", NULL);
    cr_assert_str_eq(pair(r, "engagement"), "5");
    cr_assert_null(pair(r, "er_impr"));
    cr_assert_null(pair(r, "reach"), "no sketch: reach 0 is not published");
    cr_assert_null(pair(r, "er_reach"));
    freeReplyObject(r);
    r = cmd("FCALL", "smm_get", "0", "smm:", "c:w", "total", NULL);
    cr_assert_str_eq(pair(r, "er_impr"), "33.3333");
    freeReplyObject(r);
}

Test(lib, reach_account_minutes)
{
    set_shards(4);
    put("a:r", "t", "engagement=50");
    char key[128];
    for (long long m = N - 4; m <= N; m++) {
        char tag[32];
        snprintf(tag, sizeof(tag), "r%lld", m);
        users_m("r", 'm', m, tag, 200);
        snprintf(key, sizeof(key), "smm:a:r:reach:m:%lld", m);
        users(key, "shared", 0, 100); /* the same 100 users every minute: a union, not a sum */
    }
    users_m("r", 'm', N - 5, "before", 300);
    users_m("r", 'm', N + 1, "after", 300);
    users("smm:a:r:reach", "life", 0, 1000);
    redisReply *r = cmd("FCALL", "smm_get", "0", "smm:", "a:r", "5m", ll(N), NULL);
    near(pair(r, "reach"), 5 * 200 + 100);
    char want[32];
    snprintf(want, sizeof(want), "%.4f", 0.0); /* no engagement in the window */
    cr_assert_null(pair(r, "engagement"));
    cr_assert_str_eq(pair(r, "er_reach"), want);
    freeReplyObject(r);
    r = cmd("FCALL", "smm_get", "0", "smm:", "a:r", "total", ll(N), NULL);
    const char *reach = pair(r, "reach");
    near(reach, 1000);
    snprintf(want, sizeof(want), "%.4f", 50.0 / atof(reach) * 100);
    cr_assert_str_eq(pair(r, "er_reach"), want);
    freeReplyObject(r);
}

Test(lib, reach_account_hours)
{
    set_shards(4);
    char key[128], tag[32];
    /* Whole hours H-24 .. H-1: 150 users each plus 50 seen every hour. */
    for (long long h = H - 24; h <= H - 1; h++) {
        snprintf(tag, sizeof(tag), "h%lld", h);
        users_m("q", 'h', h, tag, 150);
        snprintf(key, sizeof(key), "smm:a:q:reach:h:%lld", h);
        users(key, "every", 0, 50);
    }
    users_m("q", 'h', H - 25, "old", 500);             /* outside */
    for (long long m = H * 60; m <= N; m++) {          /* the current hour so far */
        snprintf(tag, sizeof(tag), "m%lld", m);
        users_m("q", 'm', m, tag, 40);
    }
    users_m("q", 'm', N + 1, "future", 300);
    /* Minute sketches of hour H-1 (merged into h<H-1> by the tick: not read while merged). */
    users_m("q", 'm', H * 60 - 1, "late", 300);
    users_m("q", 'm', H * 60 - 60, "early", 100);
    users_m("q", 'm', H * 60 - 30, "mid", 400);
    cmd_ok("HSET", "smm:meta", "hour_merged", ll(H - 1), NULL);
    double hours = 24 * 150 + 50, current = 18 * 40, minutes_h1 = 300 + 100 + 400;
    redisReply *r = cmd("FCALL", "smm_get", "0", "smm:", "a:q", "24h", ll(N), NULL);
    near(pair(r, "reach"), hours + current);
    freeReplyObject(r);
    /* Past 60 minutes reach is hour-granular: 90m = the current hour + hours H-2, H-1
     * (minute sketches would give current + minutes_h1). */
    r = cmd("FCALL", "smm_get", "0", "smm:", "a:q", "90m", ll(N), NULL);
    near(pair(r, "reach"), current + 2 * 150 + 50);
    freeReplyObject(r);
    /* Hour H-1 not merged yet: its minute sketches stand in for its hour sketch. */
    cmd_ok("HSET", "smm:meta", "hour_merged", ll(H - 2), NULL);
    r = cmd("FCALL", "smm_get", "0", "smm:", "a:q", "24h", ll(N), NULL);
    near(pair(r, "reach"), hours - 150 + minutes_h1 + current);
    freeReplyObject(r);
    /* Nothing merged ever: every hour from its minute sketches. */
    cmd_ok("HDEL", "smm:meta", "hour_merged", NULL);
    r = cmd("FCALL", "smm_get", "0", "smm:", "a:q", "24h", ll(N), NULL);
    near(pair(r, "reach"), minutes_h1 + current);
    freeReplyObject(r);
    /* 48 h is the longest hour-granular reach: hours H-48 .. H-1 (H-48 unmerged: minutes). */
    users_m("q", 'h', H - 49, "far", 100);
    users_m("q", 'm', (H - 48) * 60 + 5, "near48", 60);
    r = cmd("FCALL", "smm_get", "0", "smm:", "a:q", "48h", ll(N), NULL);
    near(pair(r, "reach"), minutes_h1 + current + 60);
    freeReplyObject(r);
}

/* A whole hour inside the span is read from its hour sketch once merged, wherever it sits:
 * a previous period read at the last minute of an hour (its minute sketches are gone). */
Test(lib, reach_whole_hour_from_hour_sketch)
{
    set_shards(4);
    long long last = (H - 1) * 60 + 59; /* the last minute of hour H-1 */
    users_m("w", 'h', H - 1, "hour", 500);
    users_m("w", 'm', last, "minute", 30); /* a stale minute sketch: not read once merged */
    for (long long h = H - 24; h <= H - 2; h++) {
        char tag[32];
        snprintf(tag, sizeof(tag), "h%lld", h);
        users_m("w", 'h', h, tag, 20);
    }
    cmd_ok("HSET", "smm:meta", "hour_merged", ll(H - 1), NULL);
    /* 1h read at the hour's last minute: exactly hour H-1 */
    redisReply *r = cmd("FCALL", "smm_get", "0", "smm:", "a:w", "1h", ll(last), NULL);
    near(pair(r, "reach"), 500);
    freeReplyObject(r);
    /* 23h read there: hour H-1 whole plus the 23 hours before (H-24 .. H-2) */
    r = cmd("FCALL", "smm_get", "0", "smm:", "a:w", "23h", ll(last), NULL);
    near(pair(r, "reach"), 500 + 23 * 20);
    freeReplyObject(r);
    /* a minute earlier the hour is partial: minute sketches */
    r = cmd("FCALL", "smm_get", "0", "smm:", "a:w", "1h", ll(last - 1), NULL);
    cr_assert_str_eq(pair(r, "reach") ? pair(r, "reach") : "0", "0");
    freeReplyObject(r);
    /* not merged yet: its minute sketches, even when whole */
    cmd_ok("HSET", "smm:meta", "hour_merged", ll(H - 2), NULL);
    r = cmd("FCALL", "smm_get", "0", "smm:", "a:w", "1h", ll(last), NULL);
    near(pair(r, "reach"), 30);
    freeReplyObject(r);
}

/* The server clock's day: the day rules are relative to it (day sketches expire). */
static long long server_day(void)
{
    redisReply *t = cmd("TIME", NULL);
    long long d = atoll(t->element[0]->str) / 86400;
    freeReplyObject(t);
    return d;
}

/* Beyond 48 h, reach is day-granular: the read minute's day sketch and the ceil(n/1440)
 * whole days before it; nil once the oldest of those is past the 15 days kept. */
Test(lib, reach_account_days)
{
    set_shards(4);
    long long today = server_day(), now = today * 1440 + 600;
    for (long long d = today - 20; d <= today; d++) {
        char tag[32];
        snprintf(tag, sizeof(tag), "d%lld", d);
        users_m("y", 'd', d, tag, 100);
    }
    /* hour sketches of the last 48 hours, merged: read by 48h, never by the day windows */
    for (long long h = now / 60 - 48; h < now / 60; h++) {
        users_m("y", 'h', h, "hours", 1000);
    }
    cmd_ok("HSET", "smm:meta", "hour_merged", ll(now / 60 - 1), NULL);
    redisReply *r = cmd("FCALL", "smm_get", "0", "smm:", "a:y", "48h", ll(now), NULL);
    near(pair(r, "reach"), 1000);
    freeReplyObject(r);
    /* 7d: today and the 7 days before (8 days) */
    r = cmd("FCALL", "smm_get", "0", "smm:", "a:y", "7d", ll(now), NULL);
    near(pair(r, "reach"), 8 * 100);
    freeReplyObject(r);
    /* 49h: ceil(2940 / 1440) = 3 days before today */
    r = cmd("FCALL", "smm_get", "0", "smm:", "a:y", "49h", ll(now), NULL);
    near(pair(r, "reach"), 4 * 100);
    freeReplyObject(r);
    /* 6d read at the last minute of day today-7: days today-13 .. today-7 */
    r = cmd("FCALL", "smm_mget", "0", "smm:", "6d", ll((today - 6) * 1440 - 1), "reach", "a:y",
            NULL);
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 1);
    near(r->element[0]->str, 7 * 100);
    freeReplyObject(r);
    /* 7d read 8 days ago: oldest day today-15, still kept */
    r = cmd("FCALL", "smm_get", "0", "smm:", "a:y", "7d", ll(now - 8 * 1440), NULL);
    near(pair(r, "reach"), 8 * 100);
    freeReplyObject(r);
    /* 7d read 9 days ago: it would need day today-16, expired: nil, never an undercount */
    r = cmd("FCALL", "smm_get", "0", "smm:", "a:y", "7d", ll(now - 9 * 1440), NULL);
    cr_assert_null(pair(r, "reach"));
    cr_assert_null(pair(r, "er_reach"));
    freeReplyObject(r);
    r = cmd("FCALL", "smm_mget", "0", "smm:", "7d", ll(now - 9 * 1440), "reach,er_reach", "a:y",
            NULL);
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    cr_assert_eq(r->element[0]->type, REDIS_REPLY_NIL);
    cr_assert_eq(r->element[1]->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
}

Test(lib, reach_contents_and_segments_lifetime_only)
{
    set_shards(4);
    put("c:k", "t", "engagement=10");
    putm("c:k", 'm', N, "engagement=10");
    users("smm:c:k:reach", "v", 0, 50);
    users("smm:g:acct|region=eu:reach", "v", 0, 40);
    users("smm:s:acct|mail:reach", "v", 0, 40); /* no such sketch in the layout: never read */
    put("g:acct|region=eu", "t", "impression=3");
    put("s:acct|mail", "t", "click=1");
    redisReply *r = cmd("FCALL", "smm_get", "0", "smm:", "c:k", "total", ll(N), NULL);
    near(pair(r, "reach"), 50);
    freeReplyObject(r);
    r = cmd("FCALL", "smm_get", "0", "smm:", "c:k", "5m", ll(N), NULL);
    cr_assert_str_eq(pair(r, "engagement"), "10");
    cr_assert_null(pair(r, "reach"), "contents have no windowed reach");
    cr_assert_null(pair(r, "er_reach"));
    freeReplyObject(r);
    r = cmd("FCALL", "smm_get", "0", "smm:", "g:acct|region=eu", "total", ll(N), NULL);
    near(pair(r, "reach"), 40);
    freeReplyObject(r);
    r = cmd("FCALL", "smm_get", "0", "smm:", "s:acct|mail", "total", ll(N), NULL);
    cr_assert_str_eq(pair(r, "click"), "1");
    cr_assert_null(pair(r, "reach"), "sources have no reach");
    freeReplyObject(r);
}

/* ---- smm_mget ---- */

Test(lib, mget_nil_for_undefined)
{
    set_shards(8);
    put("c:m1", "t", "like=3,engagement=3,impression=12");
    put("s:acct|mail", "t", "click=2,engagement=2");
    users("smm:c:m1:reach", "x", 0, 6);
    redisReply *r = cmd("FCALL", "smm_mget", "0", "smm:", "total", "",
                        "like,er_impr,reach,er_reach,comment", "c:m1", "s:acct|mail",
                        "c:none", NULL);
    static const char *const exp[] = {
        "3", "25.0000", "6", "50.0000", "0",  /* c:m1 */
        "0", NULL, NULL, NULL, "0",           /* s:: no impressions, no reach */
        "0", NULL, "0", NULL, "0",            /* c:none: reach defined but 0 */
    };
    expect_flat(r, exp, sizeof(exp) / sizeof(exp[0]));
    freeReplyObject(r);
    /* A window, at a given minute: contents have no windowed reach. */
    putm("c:m1", 'm', N, "like=1");
    putm("c:m1", 'm', N - 1, "like=10");
    r = cmd("FCALL", "smm_mget", "0", "smm:", "1m", ll(N), "like,reach", "c:m1", NULL);
    static const char *const exp2[] = {"1", NULL};
    expect_flat(r, exp2, 2);
    freeReplyObject(r);
}

/* ---- smm_top ---- */

/* ZADD smm:top:<bucket> score id (the writer keeps each bucket's exact engagement there) */
static void board(const char *bucket, const char *id, long long score)
{
    char key[256];
    snprintf(key, sizeof(key), "smm:top:%s", bucket);
    cmd_ok("ZADD", key, ll(score), id, NULL);
}

static const char *mb(long long m)
{
    static char buf[8][32];
    static int i;
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof(buf[i]), "m%lld", m);
    return buf[i];
}

Test(lib, top_rescored_exactly)
{
    set_shards(4);
    /* a-post: 3 + 4 = 7; one board says 100 (stale). */
    putm("c:a-post", 'm', N, "engagement=3");
    putm("c:a-post", 'm', N - 1, "engagement=4");
    board(mb(N), "a-post", 100);
    board(mb(N - 1), "a-post", 4);
    /* c-post: 7, ties with a-post (ids ascending). */
    putm("c:c-post", 'm', N - 3, "engagement=7");
    board(mb(N - 3), "c-post", 7);
    /* b-post: 20 inside; 1000 in the minute before the window does not count. */
    putm("c:b-post", 'm', N - 2, "engagement=20");
    putm("c:b-post", 'm', N - 5, "engagement=1000");
    board(mb(N - 2), "b-post", 20);
    board(mb(N - 5), "b-post", 1000);
    /* d-post: only before the window. */
    putm("c:d-post", 'm', N - 5, "engagement=5000");
    board(mb(N - 5), "d-post", 5000);
    /* e-post: 0 in the window: dropped. */
    putm("c:e-post", 'm', N, "like=1,unlike=1,engagement=0");
    board(mb(N), "e-post", 50);
    /* f-post: mention_engagement is another metric. */
    putm("c:f-post", 'm', N, "mention_engagement=500,engagement=1");
    board(mb(N), "f-post", 1);
    /* g-post: 2 now, 900 in the future minute. */
    putm("c:g-post", 'm', N, "engagement=2");
    putm("c:g-post", 'm', N + 1, "engagement=900");
    board(mb(N), "g-post", 2);
    board(mb(N + 1), "g-post", 900);

    redisReply *r = cmd("FCALL_RO", "smm_top", "0", "smm:", "5m", "10", ll(N), NULL);
    static const char *const exp[] = {"b-post", "20", "a-post", "7", "c-post", "7",
                                      "g-post", "2",  "f-post", "1"};
    expect_flat(r, exp, sizeof(exp) / sizeof(exp[0]));
    freeReplyObject(r);
    r = cmd("FCALL_RO", "smm_top", "0", "smm:", "5m", "2", ll(N), NULL);
    expect_flat(r, exp, 4);
    freeReplyObject(r);
    r = cmd("FCALL_RO", "smm_top", "0", "smm:", "5m", "3", ll(N), NULL);
    expect_flat(r, exp, 6);
    freeReplyObject(r);
    r = cmd("FCALL_RO", "smm_top", "0", "smm:", "5m", "0", ll(N), NULL);
    expect_flat(r, exp, 0);
    freeReplyObject(r);
    expect_error(cmd("FCALL_RO", "smm_top", "0", "smm:", "5m", "x", ll(N), NULL), "top");
}

Test(lib, top_total_and_hours)
{
    set_shards(4);
    put("c:p", "t", "engagement=30");
    put("c:q", "t", "engagement=31");
    board("t", "p", 1000); /* stale */
    board("t", "q", 1);
    redisReply *r = cmd("FCALL_RO", "smm_top", "0", "smm:", "total", "5", NULL);
    static const char *const exp[] = {"q", "31", "p", "30"};
    expect_flat(r, exp, 4);
    freeReplyObject(r);
    /* 24h: the current hour's minute boards and the hour boards of H-24 .. H-1. */
    putm("c:p", 'h', H - 1, "engagement=5");
    putm("c:p", 'm', H * 60, "engagement=1");
    putm("c:p", 'h', H - 25, "engagement=500");
    board(mb(H * 60), "p", 1);
    putm("c:q", 'h', H - 24, "engagement=2");
    char hb[32];
    snprintf(hb, sizeof(hb), "h%lld", H - 24);
    board(hb, "q", 2);
    putm("c:r", 'h', H - 25, "engagement=99");
    snprintf(hb, sizeof(hb), "h%lld", H - 25);
    board(hb, "r", 99);
    r = cmd("FCALL_RO", "smm_top", "0", "smm:", "24h", "5", ll(N), NULL);
    static const char *const exp2[] = {"p", "6", "q", "2"};
    expect_flat(r, exp2, 4);
    freeReplyObject(r);
}

/* Candidates are the top K = max(4n, 50) members of each board, and the 2n best sums of
 * those are re-scored: a post below the K-th place of every board is not one, however much
 * its buckets add up to. */
Test(lib, top_candidates_top_k_per_board)
{
    set_shards(1);
    char id[32];
    for (int i = 0; i < 60; i++) { /* a0..a59 in minute N, b0..b59 in N-1: 100..159 */
        snprintf(id, sizeof(id), "a%d", i);
        char ent[40], val[40];
        snprintf(ent, sizeof(ent), "c:a%d", i);
        snprintf(val, sizeof(val), "engagement=%d", 100 + i);
        putm(ent, 'm', N, val);
        board(mb(N), id, 100 + i);
        snprintf(id, sizeof(id), "b%d", i);
        snprintf(ent, sizeof(ent), "c:b%d", i);
        putm(ent, 'm', N - 1, val);
        board(mb(N - 1), id, 100 + i);
    }
    /* z: 99 in both minutes, 198 in the window: 61st on both boards. */
    putm("c:z", 'm', N, "engagement=99");
    putm("c:z", 'm', N - 1, "engagement=99");
    board(mb(N), "z", 99);
    board(mb(N - 1), "z", 99);
    redisReply *r = cmd("FCALL_RO", "smm_top", "0", "smm:", "2m", "1", ll(N), NULL);
    static const char *const exp1[] = {"a59", "159"}; /* K = 50: z is no candidate */
    expect_flat(r, exp1, 2);
    freeReplyObject(r);
    r = cmd("FCALL_RO", "smm_top", "0", "smm:", "2m", "15", ll(N), NULL); /* K = 60 */
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 30);
    cr_assert_str_neq(r->element[0]->str, "z");
    freeReplyObject(r);
    r = cmd("FCALL_RO", "smm_top", "0", "smm:", "2m", "16", ll(N), NULL); /* K = 64 */
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 32);
    cr_assert_str_eq(r->element[0]->str, "z");
    cr_assert_str_eq(r->element[1]->str, "198");
    freeReplyObject(r);
}

/* Ties at the K-th place of a board: the answer orders ties by id ascending, so the lowest
 * ids of that score are candidates too (ZREVRANGE alone gives the highest). */
Test(lib, top_ties_at_the_board_cut)
{
    set_shards(2);
    char ent[48], id[40];
    for (int i = 0; i < 60; i++) {
        snprintf(id, sizeof(id), "p%02d", i);
        snprintf(ent, sizeof(ent), "c:%s", id);
        putm(ent, 'm', N, "engagement=1");
        board(mb(N), id, 1);
    }
    redisReply *r = cmd("FCALL_RO", "smm_top", "0", "smm:", "1m", "3", ll(N), NULL);
    static const char *const exp[] = {"p00", "1", "p01", "1", "p02", "1"};
    expect_flat(r, exp, 6);
    freeReplyObject(r);
}

/* ---- smm_series ---- */

Test(lib, series_buckets)
{
    set_shards(8);
    putm("a:s", 'm', N - 2, "like=1");
    putm("a:s", 'm', N, "like=3,impression=9");
    putm("a:s", 'm', N + 1, "like=1000");
    putm("a:s", 'h', H - 1, "like=5");
    redisReply *r = cmd("FCALL_RO", "smm_series", "0", "smm:", "a:s", "m", ll(N - 2), ll(N),
                        "like,impression", NULL);
    static const char *const exp[] = {"1", "0", "0", "0", "3", "9"};
    expect_flat(r, exp, 6);
    freeReplyObject(r);
    r = cmd("FCALL_RO", "smm_series", "0", "smm:", "a:s", "h", ll(H - 1), ll(H), "like", NULL);
    static const char *const exp2[] = {"5", "0"};
    expect_flat(r, exp2, 2);
    freeReplyObject(r);
    /* 10,080 buckets (a week of minutes) is the most. */
    r = cmd("FCALL_RO", "smm_series", "0", "smm:", "a:s", "m", ll(N - 10079), ll(N), "like",
            NULL);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->elements, 10080);
    cr_assert_str_eq(r->element[10077]->str, "1");
    cr_assert_str_eq(r->element[10079]->str, "3");
    freeReplyObject(r);
    expect_error(cmd("FCALL_RO", "smm_series", "0", "smm:", "a:s", "m", ll(N - 10080), ll(N),
                     "like", NULL),
                 "10081 buckets");
    expect_error(cmd("FCALL_RO", "smm_series", "0", "smm:", "a:s", "d", "1", "2", "like", NULL),
                 "series");
    expect_error(cmd("FCALL_RO", "smm_series", "0", "smm:", "a:s", "m", "1", "2", "er_impr",
                     NULL),
                 "er_impr");
}

/* ---- refusals and no data ---- */

Test(lib, bad_window_labels)
{
    set_shards(4);
    const char *bad[] = {"5x", "0m", "", "m", "9d", "11521m", "-5m", "5 m", "TOTAL"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_error(cmd("FCALL", "smm_get", "0", "smm:", "c:a", bad[i], NULL), "window");
        expect_error(cmd("FCALL", "smm_mget", "0", "smm:", bad[i], "", "like", "c:a", NULL),
                     "window");
        expect_error(cmd("FCALL_RO", "smm_top", "0", "smm:", bad[i], "3", NULL), "window");
    }
    /* The longest accepted: 8 days = 11,520 minutes. */
    redisReply *r = cmd("FCALL", "smm_get", "0", "smm:", "c:a", "11520m", NULL);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "");
    freeReplyObject(r);
    expect_error(cmd("FCALL", "smm_get", "0", "smm:", "c:a", "5m", "12.5", NULL), "minute");
}

Test(lib, no_shards_no_data)
{
    /* A hash where shard 0 of 1 would put it, but smm:meta has no shards field. */
    cmd_ok("HSET", "smm:{0}:c:p", "t", "like=5,impression=5", NULL);
    cmd_ok("ZADD", "smm:{0}:top:t", "5", "p", NULL);
    users("smm:c:p:reach", "u", 0, 5);
    redisReply *r = cmd("FCALL", "smm_get", "0", "smm:", "c:p", "total", NULL);
    expect_flat(r, NULL, 0);
    freeReplyObject(r);
    r = cmd("FCALL", "smm_mget", "0", "smm:", "total", "", "like,er_impr,reach", "c:p", NULL);
    static const char *const exp[] = {"0", NULL, NULL};
    expect_flat(r, exp, 3);
    freeReplyObject(r);
    r = cmd("FCALL_RO", "smm_top", "0", "smm:", "total", "5", NULL);
    expect_flat(r, NULL, 0);
    freeReplyObject(r);
    r = cmd("FCALL_RO", "smm_series", "0", "smm:", "c:p", "m", "1", "2", "like", NULL);
    static const char *const exp2[] = {"0", "0"};
    expect_flat(r, exp2, 2);
    freeReplyObject(r);
    /* With the field, the same hash is found (shard 0 of 1). */
    set_shards(1);
    r = cmd("FCALL", "smm_get", "0", "smm:", "c:p", "total", NULL);
    cr_assert_str_eq(pair(r, "like"), "5");
    freeReplyObject(r);
}

Test(lib, read_only_flags)
{
    set_shards(4);
    /* smm_top and smm_series run under FCALL_RO (tested above); smm_get and smm_mget
     * count reach with PFCOUNT, which Redis refuses in no-writes functions: FCALL only. */
    redisReply *r = cmd("FCALL_RO", "smm_get", "0", "smm:", "c:p", "total", NULL);
    cr_assert_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* A Redis user that may not run FUNCTION LOAD: the connect fails (ERROR, not a retry) and
 * says which command was refused. */
Test(lib, function_load_refused_names_it)
{
    cmd_ok("ACL", "SETUSER", "nofn", "reset", "on", ">pw-nofn", "~smm:*", "-@all",
           "+script|load", "+evalsha", "+hset", "+hget", NULL);
    struct smm_redis_opts o = {.host = "127.0.0.1", .port = redis.port, .username = "nofn",
                               .password = "pw-nofn", .timeout_ms = 5000};
    char err[256];
    struct smm_redis_sink *sink = smm_redis_sink_new(&o, err, sizeof(err));
    cr_assert(sink);
    cr_assert_eq(smm_redis_sink_connect(sink), SMM_SINK_ERROR);
    const char *why = smm_redis_sink_errstr(sink);
    cr_assert(strstr(why, "FUNCTION LOAD") && strstr(why, "NOPERM"), "errstr: %s", why);
    smm_redis_sink_destroy(sink);
    /* With +function|load it connects. */
    cmd_ok("ACL", "SETUSER", "nofn", "+function|load", NULL);
    sink = smm_redis_sink_new(&o, err, sizeof(err));
    cr_assert_eq(smm_redis_sink_connect(sink), SMM_SINK_OK, "%s", smm_redis_sink_errstr(sink));
    smm_redis_sink_destroy(sink);
}

/* The readers' user of docs/security.md: every function answers, nothing is denied
 * (ACL LOG stays empty), and a plain write is refused. */
Test(lib, reader_user_acl)
{
    set_shards(4);
    put("a:u", "t", "impression=4,engagement=1");
    putm("a:u", 'm', N, "engagement=1");
    board(mb(N), "p", 1);
    users("smm:a:u:reach", "r", 0, 10);
    users_m("u", 'm', N, "r", 5);
    cmd_ok("ACL", "SETUSER", "reader", "reset", "on", ">pw-reader", "~smm:*", "-@all", "+fcall",
           "+fcall_ro", "+hget", "+hmget", "+zrevrange", "+pfcount", "+time", NULL);
    cmd_ok("ACL", "LOG", "RESET", NULL);
    redisContext *admin = c;
    c = h_redis_connect_auth(&redis, "reader", "pw-reader");
    redisReply *r = cmd("FCALL", "smm_get", "0", "smm:", "a:u", "total", NULL);
    cr_assert_str_eq(pair(r, "er_impr"), "25.0000");
    near(pair(r, "reach"), 10);
    freeReplyObject(r);
    r = cmd("FCALL", "smm_get", "0", "smm:", "a:u", "24h", NULL); /* server clock, sketches */
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "");
    freeReplyObject(r);
    r = cmd("FCALL", "smm_mget", "0", "smm:", "5m", ll(N), "engagement,reach", "a:u", NULL);
    static const char *const exp[] = {"1", "5"};
    expect_flat(r, exp, 2);
    freeReplyObject(r);
    r = cmd("FCALL_RO", "smm_top", "0", "smm:", "5m", "3", NULL);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "");
    freeReplyObject(r);
    r = cmd("FCALL_RO", "smm_series", "0", "smm:", "a:u", "m", ll(N), ll(N), "engagement", NULL);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "");
    freeReplyObject(r);
    expect_error(cmd("HSET", "smm:x", "f", "1", NULL), "NOPERM");
    redisFree(c);
    c = admin;
    r = cmd("ACL", "LOG", NULL);
    cr_assert_eq(r->elements, 1, "the reader was denied something besides the HSET");
    freeReplyObject(r);
}

/* ---- the writer side of the reach rules (connectors/lua/smm.lua) ----
 * What the library reads must be written and kept that long: a flush adds each account's
 * users to its UTC day sketch (expiring 15 days after the day), and the tick's merged hour
 * sketches live at least 48 h + window.grace_ms after their hour's end. */

static void writer_feed(struct smm_pipeline *pipe, struct smm_batch *b, const char *user,
                        int64_t ts, int64_t now)
{
    static int seq;
    char json[256];
    snprintf(json, sizeof(json),
             "{\"event_id\":\"w%d\",\"type\":\"impression\",\"ts\":%lld,\"account_id\":\"acct-w\","
             "\"content_id\":\"p-w\",\"user_id\":\"%s\"}",
             ++seq, (long long)ts, user);
    struct smm_reject rej;
    cr_assert(smm_pipeline_feed(pipe, b, json, strlen(json), ts, now, &rej) == SMM_OK, "%s", json);
    cr_assert_eq(rej.reason, SMM_REJECT_NONE, "%s", json);
}

static void writer_tick(struct smm_pipeline *pipe, struct smm_redis_sink *sink, int64_t now)
{
    struct smm_argv av;
    smm_argv_init(&av);
    cr_assert(smm_pipeline_encode_tick(pipe, now, 100, &av) == SMM_OK);
    cr_assert(smm_redis_sink_tick(sink, &av, NULL) == SMM_SINK_OK, "%s",
              smm_redis_sink_errstr(sink));
    smm_argv_free(&av);
}

/* The integer reply of <command> <key>. */
static long long key_int(const char *command, const char *key)
{
    redisReply *r = cmd(command, key, NULL);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "%s %s", command, key);
    long long t = r->integer;
    freeReplyObject(r);
    return t;
}

static long long expire_at(const char *key)
{
    return key_int("EXPIRETIME", key);
}

/* A pipeline and a sink writing partition t:0 as owner "A". */
struct writer {
    struct smm_config cfg;
    struct smm_pipeline *pipe;
    struct smm_redis_sink *sink;
    struct smm_batch b;
    int64_t offset;
};

static void writer_open(struct writer *w)
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
    int64_t stored;
    cr_assert(smm_redis_sink_claim(w->sink, "smm:", "t:0", "A", &stored) == SMM_SINK_OK);
    cr_assert(smm_batch_init(&w->b, w->pipe, err, sizeof(err)) == SMM_OK);
    w->offset = -1;
}

/* Flushes w's batch at now, as the loop does: its plain writes, then the script. */
static void writer_flush(struct writer *w, int64_t now)
{
    struct smm_argv av;
    smm_argv_init(&av);
    struct smm_flush_reject rej[4];
    int n_rej = 0;
    int64_t next = w->offset < 0 ? 1000 : w->offset + 1000;
    cr_assert(smm_pipeline_encode_flush_begin(w->pipe, now, &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_flush_part(w->pipe, &w->b, "t:0", "A", w->offset, next,
                                             &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_flush_end(&av, 1) == SMM_OK);
    cr_assert(smm_pipeline_encode_viral(w->pipe, now, 0, NULL, 0, &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_insights(w->pipe, now, &av) == SMM_OK);
    cr_assert(smm_pipeline_encode_wseq(w->pipe, &av) == SMM_OK);
    cr_assert(smm_redis_sink_flush(w->sink, smm_pipeline_flush_writes(w->pipe), smm_pipeline_flush_plain(w->pipe), &av, rej, 4,
                                   &n_rej) == SMM_SINK_OK,
              "%s", smm_redis_sink_errstr(w->sink));
    cr_assert_eq(n_rej, 0);
    smm_argv_free(&av);
    smm_pipeline_counters_settle(w->pipe, 1, smm_redis_sink_alone(w->sink));
    smm_batch_clear(&w->b);
    w->offset = next;
}

static void writer_close(struct writer *w)
{
    smm_batch_free(&w->b);
    smm_redis_sink_destroy(w->sink);
    smm_pipeline_destroy(w->pipe);
    smm_config_free(&w->cfg);
}


Test(lib, writer_day_sketches_and_hour_sketch_lifetime)
{
    struct writer w;
    writer_open(&w);
    struct smm_pipeline *pipe = w.pipe;
    struct smm_redis_sink *sink = w.sink;

    /* Events at 23:50 .. 23:59 of day D-1 and 00:00 .. 00:09 of day D, UTC, around "now". */
    long long day = server_day();
    int64_t mid = (int64_t)day * 86400000, now = mid + 10 * 60000;
    writer_tick(pipe, sink, mid - 15 * 60000); /* hour_merged: the hour before 23:xx */
    char user[32];
    for (int i = 0; i < 300; i++) {
        snprintf(user, sizeof(user), "y%d", i);
        writer_feed(pipe, &w.b, user, mid - 10 * 60000 + i * 2000, now);
    }
    for (int i = 0; i < 200; i++) {
        snprintf(user, sizeof(user), "t%d", i);
        writer_feed(pipe, &w.b, user, mid + i * 3000, now);
    }
    writer_feed(pipe, &w.b, "y0", mid + 1000, now); /* yesterday's user again today */
    writer_flush(&w, now);

    char key[96], got[32];
    snprintf(key, sizeof(key), "smm:a:acct-w:reach:d:%lld", day - 1);
    redisReply *r = cmd("PFCOUNT", key, NULL);
    snprintf(got, sizeof(got), "%lld", r->integer);
    freeReplyObject(r);
    near(got, 300);
    cr_assert_eq(expire_at(key), (day - 1 + 1 + 15) * 86400, "day sketch of D-1: 15 days after it");
    snprintf(key, sizeof(key), "smm:a:acct-w:reach:d:%lld", day);
    r = cmd("PFCOUNT", key, NULL);
    snprintf(got, sizeof(got), "%lld", r->integer);
    freeReplyObject(r);
    near(got, 201);
    cr_assert_eq(expire_at(key), (day + 1 + 15) * 86400);

    /* The tick after 23:xx merges that hour: its sketch lives 48 h + grace after its end.
     * The hour is more than 61 minutes before the server clock here (a tick catching up):
     * the minute sketches must be merged before their expiry, already past, is set. */
    writer_tick(pipe, sink, now);
    long long hour = day * 24 - 1;
    snprintf(key, sizeof(key), "smm:a:acct-w:reach:h:%lld", hour);
    r = cmd("PFCOUNT", key, NULL);
    cr_assert_gt(r->integer, 250, "hour %lld merged (%lld users)", hour, r->integer);
    freeReplyObject(r);
    long long grace = (w.cfg.window_grace_ms + 59999) / 60000;
    cr_assert_eq(expire_at(key), ((hour + 1) * 60 + 48 * 60 + grace) * 60,
                 "the hour sketch of the previous period of 24 h outlives it");
    writer_close(&w);
}

/* Reach goes to Redis ahead of the flush's script, so a minute sketch can be written just
 * after the tick merged its hour: the next tick merges it too. An hour older than the one
 * before now gets its users straight into its hour sketch, and the minute sketch its
 * expiry (no tick would ever merge it). */
Test(lib, writer_reach_after_the_hour_merge)
{
    struct writer w;
    writer_open(&w);
    long long now_min = server_day() * 1440 + 12 * 60 + 30; /* 12:30 UTC today */
    int64_t now = (int64_t)now_min * 60000, hour = now_min / 60;
    writer_tick(w.pipe, w.sink, now); /* merges 11:xx (empty): hour_merged = 11 */
    char user[32];
    for (int i = 0; i < 40; i++) {
        snprintf(user, sizeof(user), "s%d", i); /* 11:59: just after its merge */
        writer_feed(w.pipe, &w.b, user, (hour * 60 - 1) * 60000, now);
        snprintf(user, sizeof(user), "l%d", i); /* 09:59: long merged */
        writer_feed(w.pipe, &w.b, user, ((hour - 2) * 60 - 1) * 60000, now);
    }
    writer_flush(&w, now);
    char key[96], set[64];
    snprintf(key, sizeof(key), "smm:a:acct-w:reach:h:%lld", (long long)hour - 3);
    cr_assert_eq(key_int("PFCOUNT", key), 40, "09:xx's users straight into its hour sketch");
    cr_assert_eq(expire_at(key), ((hour - 3) * 60 + 60 + 48 * 60 + 60) * 60);
    snprintf(key, sizeof(key), "smm:a:acct-w:reach:m:%lld", (long long)(hour - 2) * 60 - 1);
    cr_assert_gt(expire_at(key), 0, "09:59's minute sketch expires without a merge");
    snprintf(key, sizeof(key), "smm:a:acct-w:reach:h:%lld", (long long)hour - 1);
    cr_assert_eq(key_int("PFCOUNT", key), 0, "11:xx was merged before its users came");
    snprintf(set, sizeof(set), "smm:reach_accounts:h:%lld", (long long)hour - 1);
    cr_assert_eq(key_int("SCARD", set), 1, "11:59's minute sketch listed for a merge");

    writer_tick(w.pipe, w.sink, now + 1000);
    cr_assert_eq(key_int("PFCOUNT", key), 40, "the next tick merged 11:59 into 11:xx");
    cr_assert_eq(key_int("SCARD", set), 0);
    snprintf(key, sizeof(key), "smm:a:acct-w:reach:m:%lld", (long long)hour * 60 - 1);
    cr_assert_neq(expire_at(key), -1, "11:59's minute sketch expires once merged (or is gone)");
    snprintf(key, sizeof(key), "smm:a:acct-w:reach");
    cr_assert_eq(key_int("PFCOUNT", key), 80);
    writer_close(&w);
}
