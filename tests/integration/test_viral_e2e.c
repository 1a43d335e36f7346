/* tests/integration/test_viral_e2e.c - viral alerts end to end through Kafka and a real
 * redis-server, with a kill -9 in the middle of a cascade.
 *
 * Phase 1 brings the post "hot" to 200 unique viewers (rising: >= 0.5 x 300) and a chain
 * of 20 shares; the processor is killed -9 once the rising alert is in the stream. Phase 2
 * adds 150 viewers and 20 more shares. Only a restarted processor that rebuilt phase 1
 * (the warm-up re-read) sees 350 >= 300 viewers and flags the post viral; the alerts must
 * be exactly normal->rising, rising->viral: none lost, none repeated — in the Redis stream,
 * in the stats and (when the relay is on) in the Kafka alerts topic. Thirty small posts
 * must raise nothing. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/integration/harness.h"

#define VIEWERS1 200
#define VIEWERS2 150
#define SHARES 20
#define SMALL 30

static struct h_msg *msgs;
static size_t n_msgs, cap_msgs;

static void add(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(const char *key, const char *fmt, ...)
{
    if (n_msgs == cap_msgs) {
        cap_msgs = cap_msgs ? cap_msgs * 2 : 1024;
        msgs = realloc(msgs, cap_msgs * sizeof(*msgs));
        cr_assert(msgs);
    }
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    msgs[n_msgs].key = strdup(key);
    msgs[n_msgs].payload = strdup(buf);
    msgs[n_msgs].len = (size_t)n;
    n_msgs++;
}

static void phase(int first_viewer, int viewers, int first_share, int64_t ts, int small)
{
    for (int i = first_viewer; i < first_viewer + viewers; i++) {
        add("hot",
            "{\"event_id\":\"v%d\",\"type\":\"impression\",\"ts\":%lld,\"account_id\":\"brand\","
            "\"content_id\":\"hot\",\"user_id\":\"u%d\",\"follows_author\":%s,"
            "\"author_followers\":1000}",
            i, (long long)ts, i, i % 2 ? "true" : "false");
    }
    for (int s = first_share; s < first_share + SHARES; s++) {
        if (s == 0) {
            add("hot", "{\"event_id\":\"s0\",\"type\":\"share\",\"ts\":%lld,\"account_id\":\"brand\","
                       "\"content_id\":\"hot\",\"user_id\":\"u0\",\"followers\":50}",
                (long long)ts);
        } else {
            add("hot", "{\"event_id\":\"s%d\",\"type\":\"share\",\"ts\":%lld,\"account_id\":"
                       "\"brand\",\"content_id\":\"hot\",\"user_id\":\"u%d\",\"followers\":50,"
                       "\"parent_id\":\"s%d\"}",
                s, (long long)ts, s, s - 1);
        }
    }
    for (int p = 0; small && p < SMALL; p++) {
        char key[16];
        snprintf(key, sizeof(key), "small-%d", p);
        for (int i = 0; i < 10; i++) {
            add(key, "{\"event_id\":\"%s-%d\",\"type\":\"impression\",\"ts\":%lld,\"account_id\":"
                     "\"brand\",\"content_id\":\"%s\",\"user_id\":\"w%d\"}",
                key, i, (long long)ts, key, i);
        }
        add(key, "{\"event_id\":\"%s-s\",\"type\":\"share\",\"ts\":%lld,\"account_id\":\"brand\","
                 "\"content_id\":\"%s\",\"user_id\":\"w1\"}",
            key, (long long)ts, key);
    }
}

static char said[4][512]; /* the `message` of the first alerts stream_alerts() read */

/* The alerts in the stream as "content:from>to" words; checks ids and JSON: each has a
 * sentence for people and a predicted_final that is a number or null. */
static int stream_alerts(const struct h_redis *redis, char *out, size_t size, char ids[][64])
{
    redisContext *c = h_redis_connect(redis);
    redisReply *r = redisCommand(c, "XRANGE smm:alerts - +");
    out[0] = '\0';
    int n = 0;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        for (size_t j = 0; j + 1 < f->elements; j += 2) {
            if (strcmp(f->element[j]->str, "json") != 0) {
                continue;
            }
            cJSON *a = cJSON_Parse(f->element[j + 1]->str);
            cr_assert(a);
            size_t used = strlen(out);
            snprintf(out + used, size - used, "%s:%s>%s ",
                     cJSON_GetObjectItem(a, "content_id")->valuestring,
                     cJSON_GetObjectItem(a, "from")->valuestring,
                     cJSON_GetObjectItem(a, "to")->valuestring);
            const cJSON *msg = cJSON_GetObjectItem(a, "message");
            cr_assert(cJSON_IsString(msg), "alert has a message: %s", f->element[j + 1]->str);
            if (n < 4) {
                snprintf(said[n], sizeof(said[n]), "%s", msg->valuestring);
            }
            const cJSON *pf = cJSON_GetObjectItem(cJSON_GetObjectItem(a, "metrics"),
                                                  "predicted_final");
            cr_expect(!pf || cJSON_IsNumber(pf) || cJSON_IsNull(pf), "predicted_final: %s",
                      f->element[j + 1]->str);
            if (ids && n < 16) {
                snprintf(ids[n], 64, "%s", cJSON_GetObjectItem(a, "alert_id")->valuestring);
            }
            n++;
            cJSON_Delete(a);
        }
    }
    freeReplyObject(r);
    redisFree(c);
    return n;
}

static char *hget(const struct h_redis *redis, const char *key, const char *field)
{
    redisContext *c = h_redis_connect(redis);
    redisReply *r = redisCommand(c, "HGET %s %s", key, field);
    char *v = strdup(r && r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    redisFree(c);
    return v;
}

struct kafka_alerts {
    char words[1024];
    int n;
};

static void on_kafka_alert(void *opaque, const char *payload, size_t len, const char *reason)
{
    (void)reason;
    struct kafka_alerts *ka = opaque;
    cJSON *a = cJSON_ParseWithLength(payload, len);
    cr_assert(a, "alerts topic holds JSON");
    size_t used = strlen(ka->words);
    snprintf(ka->words + used, sizeof(ka->words) - used, "%s:%s>%s ",
             cJSON_GetObjectItem(a, "content_id")->valuestring,
             cJSON_GetObjectItem(a, "from")->valuestring,
             cJSON_GetObjectItem(a, "to")->valuestring);
    ka->n++;
    cJSON_Delete(a);
}

Test(viral_e2e, kill9_mid_cascade_alerts_exactly_once, .timeout = 300)
{
    struct h_redis redis;
    struct h_kafka kafka;
    h_redis_start(&redis, 0);
    h_kafka_start(&kafka, "viral", 4);
    char dir[256], log1[320], log2[320];
    h_tmpdir(dir, sizeof(dir), "viral-e2e");
    snprintf(log1, sizeof(log1), "%s/processor-1.log", dir);
    snprintf(log2, sizeof(log2), "%s/processor-2.log", dir);
    const char *const sets[] = {"group_id=viral-e2e", "viral.reach_min=300",
                                "viral.reach_alpha=0", NULL};
    int64_t ts = h_now_ms();

    phase(0, VIEWERS1, 0, ts, 1);
    h_produce(&kafka, kafka.topic, msgs, n_msgs);
    size_t first = n_msgs;
    pid_t pid = h_processor_start(&kafka, &redis, log1, sets);
    char got[1024];
    int64_t deadline = h_now_ms() + 60000;
    while (stream_alerts(&redis, got, sizeof(got), NULL) < 1) {
        cr_assert(h_now_ms() < deadline, "no rising alert (see %s)", log1);
        h_sleep_ms(50);
    }
    kill(pid, SIGKILL);
    h_wait(pid, 10000);
    cr_expect_str_eq(got, "hot:normal>rising ");

    phase(VIEWERS1, VIEWERS2, SHARES, ts + 1000, 0);
    h_produce(&kafka, kafka.topic, msgs + first, n_msgs - first);
    pid = h_processor_start(&kafka, &redis, log2, sets);
    deadline = h_now_ms() + 90000;
    for (;;) {
        char *st = hget(&redis, "smm:v:hot", "state");
        int viral = strcmp(st, "viral") == 0;
        free(st);
        if (viral) {
            break;
        }
        cr_assert(h_now_ms() < deadline, "hot never became viral (see %s)", log2);
        h_sleep_ms(100);
    }
    h_sleep_ms(3000); /* a few ticks: nothing more may be emitted */
    kill(pid, SIGTERM);
    cr_assert_eq(h_wait(pid, 30000), 0);

    char ids[16][64];
    int n = stream_alerts(&redis, got, sizeof(got), ids);
    cr_expect_str_eq(got, "hot:normal>rising hot:rising>viral ");
    cr_expect_str_eq(ids[0], "viral:hot:1");
    cr_expect_str_eq(ids[1], "viral:hot:2");
    /* In words: 200 of 300 viewers (early warning at half), then 350 of 300. */
    const char *rising = "hot is rising: reached 200 people in 5 minutes, past the "
                         "early-warning level of 150 (50% of its audience threshold of 300)";
    cr_expect(strncmp(said[0], rising, strlen(rising)) == 0, "%s", said[0]);
    cr_expect_str_eq(said[1], "hot went viral: reached 350 people in 5 minutes (its audience "
                              "threshold is 300).");
    char *v = hget(&redis, "smm:stats", "alerts:viral");
    cr_expect_eq(atoi(v), n);
    free(v);
    v = hget(&redis, "smm:v:hot", "reach_5m");
    cr_expect_str_eq(v, "350", "the warm-up rebuilt phase 1's viewers");
    free(v);
    v = hget(&redis, "smm:v:hot", "nf_reach_5m");
    cr_expect_str_eq(v, "175");
    free(v);
    v = hget(&redis, "smm:v:hot", "size");
    cr_expect_str_eq(v, "40");
    free(v);
    v = hget(&redis, "smm:v:hot", "depth");
    cr_expect_str_eq(v, "40", "a chain: each share re-shares the previous one");
    free(v);

    /* The Kafka alerts topic (relay): the same alerts, once each. */
    char *log = h_read_file(log2, NULL);
    int relay = strstr(log, "alert relay") != NULL;
    free(log);
    if (relay) {
        struct kafka_alerts ka = {{0}, 0};
        char topic[200];
        snprintf(topic, sizeof(topic), "%s.alerts", kafka.topic);
        h_consume_all(&kafka, topic, 3000, on_kafka_alert, &ka);
        cr_expect_str_eq(ka.words, got);
    }
    h_free_msgs(msgs, n_msgs);
    msgs = NULL;
    n_msgs = cap_msgs = 0;
    h_kafka_stop(&kafka);
    h_redis_stop(&redis);
}

/* ---- a share sent twice with the same event_id ---- */

static int64_t offsets_sum(const struct h_redis *redis)
{
    redisContext *c = h_redis_connect(redis);
    redisReply *r = redisCommand(c, "HVALS smm:offsets");
    int64_t sum = 0;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        sum += strtoll(r->element[i]->str, NULL, 10);
    }
    freeReplyObject(r);
    redisFree(c);
    return sum;
}

/* Polls HGET key field until it equals want or timeout_ms passed; returns the last value
 * (caller frees). */
static char *hget_until(const struct h_redis *redis, const char *key, const char *field,
                        const char *want, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        char *v = hget(redis, key, field);
        if (strcmp(v, want) == 0 || h_now_ms() >= deadline) {
            return v;
        }
        free(v);
        h_sleep_ms(100);
    }
}

/* Polls the lifetime count of metric of entity (FCALL smm_get) until it equals want or
 * timeout_ms passed; returns the last value as text (caller frees). */
static char *total_until(const struct h_redis *redis, const char *entity, const char *metric,
                         const char *want, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    redisContext *c = h_redis_connect(redis);
    for (;;) {
        char num[32];
        snprintf(num, sizeof(num), "%lld",
                 (long long)h_entity_get(c, "smm:", entity, "total", -1, metric));
        char *v = strdup(num);
        if (strcmp(v, want) == 0 || h_now_ms() >= deadline) {
            redisFree(c);
            return v;
        }
        free(v);
        h_sleep_ms(100);
    }
}

static void rep_share(const char *id, const char *parent, int user, int64_t ts)
{
    char par[64] = "";
    if (parent) {
        snprintf(par, sizeof(par), ",\"parent_id\":\"%s\"", parent);
    }
    add("rep", "{\"event_id\":\"%s\",\"type\":\"share\",\"ts\":%lld,\"account_id\":\"brand\","
               "\"content_id\":\"rep\",\"user_id\":\"u%d\",\"followers\":10%s}",
        id, (long long)ts, user, par);
}

/* Event ids are not deduplicated (docs/events.md): a share produced twice with the same
 * event_id counts twice in the share counter and in the cascade, so the two always agree.
 * And each Kafka message counts once in both: a second processor joins the group and
 * leaves again, the first gets the partitions back and warms its tracker up by re-reading
 * messages it had already observed; the cascade must not count those again. */
static struct h_redis rep_redis;
static struct h_kafka rep_kafka;
static pid_t rep_pids[2];

/* .fini: also after a failed assertion, no processor, redis-server or broker is left. */
static void rep_cleanup(void)
{
    for (int i = 0; i < 2; i++) {
        if (rep_pids[i] > 0) {
            kill(rep_pids[i], SIGKILL);
            h_wait(rep_pids[i], 10000);
            rep_pids[i] = 0;
        }
    }
    h_free_msgs(msgs, n_msgs);
    msgs = NULL;
    n_msgs = cap_msgs = 0;
    h_kafka_stop(&rep_kafka);
    h_redis_stop(&rep_redis);
}

Test(viral_e2e, repeated_share_counts_alike_in_counter_and_cascade, .timeout = 200,
     .fini = rep_cleanup)
{
    struct h_redis redis;
    struct h_kafka kafka;
    h_redis_start(&rep_redis, 0);
    h_kafka_start(&rep_kafka, "viralrep", 2);
    redis = rep_redis;
    kafka = rep_kafka;
    char dir[256], log1[320], log2[320];
    h_tmpdir(dir, sizeof(dir), "viral-rep");
    snprintf(log1, sizeof(log1), "%s/processor-1.log", dir);
    snprintf(log2, sizeof(log2), "%s/processor-2.log", dir);
    const char *const sets[] = {"group_id=viral-rep", NULL};
    int64_t ts = h_now_ms();
    rep_share("sa", NULL, 1, ts);
    rep_share("sb", "sa", 2, ts + 1);
    rep_share("sa", NULL, 1, ts + 2); /* the same event sent again */
    h_produce(&kafka, kafka.topic, msgs, n_msgs);
    size_t first = n_msgs;
    pid_t a = rep_pids[0] = h_processor_start(&kafka, &redis, log1, sets);
    int64_t deadline = h_now_ms() + 60000;
    while (offsets_sum(&redis) < 3 && h_now_ms() < deadline) {
        h_sleep_ms(100);
    }
    char *share = total_until(&redis, "c:rep", "share", "3", 10000);
    char *size = hget_until(&redis, "smm:v:rep", "size", "3", 10000);
    cr_expect_str_eq(share, "3", "share counter %s, want 3 (see %s)", share, log1);
    cr_expect_str_eq(size, "3", "cascade size %s, want 3: the repeated share counts as in the "
                     "counter", size);
    free(share);
    free(size);
    char *depth = hget(&redis, "smm:v:rep", "depth");
    cr_expect_str_eq(depth, "2", "depth %s: sb re-shares the first sa", depth);
    free(depth);

    /* A second instance joins and leaves: the partitions come back to the first one. */
    pid_t b = rep_pids[1] = h_processor_start(&kafka, &redis, log2, sets);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "grep -q 'claimed' %s 2>/dev/null", log2);
    deadline = h_now_ms() + 60000;
    while (system(cmd) != 0 && h_now_ms() < deadline) {
        h_sleep_ms(100);
    }
    h_sleep_ms(1000);
    kill(b, SIGTERM);
    cr_expect_eq(h_wait(b, 30000), 0, "second processor's exit (see %s)", log2);
    rep_pids[1] = 0;
    snprintf(cmd, sizeof(cmd), "test $(grep -c 'claimed' %s) -ge 5", log1);
    deadline = h_now_ms() + 60000;
    while (system(cmd) != 0 && h_now_ms() < deadline) {
        h_sleep_ms(100);
    }
    rep_share("sc", "sb", 3, ts + 3);
    h_produce(&kafka, kafka.topic, msgs + first, n_msgs - first);
    share = total_until(&redis, "c:rep", "share", "4", 60000);
    size = hget_until(&redis, "smm:v:rep", "size", "4", 15000);
    h_sleep_ms(2000); /* a flush or two more: the size may not move past 4 either */
    free(size);
    size = hget(&redis, "smm:v:rep", "size");
    kill(a, SIGTERM);
    cr_expect_eq(h_wait(a, 30000), 0, "first processor's exit (see %s)", log1);
    rep_pids[0] = 0;
    cr_expect_str_eq(share, "4", "share counter %s after the rebalance, want 4 (see %s)", share,
                     log1);
    cr_expect_str_eq(size, "4", "cascade size %s after the rebalance and warm-up, want 4 (see %s)",
                     size, log1);
    free(share);
    free(size);
}
