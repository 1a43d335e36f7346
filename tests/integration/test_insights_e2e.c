/* tests/integration/test_insights_e2e.c - the issue-5 metric families (CONTRACT-5: response
 * times and business hours, SLA alerts, share of voice, referral chains and conversions,
 * segments) end to end: events through Kafka (the mock cluster, or the real broker of the
 * ctest fixture) into smm-processor and a real redis-server, every figure compared field by
 * field with an expectation computed here from the generated events.
 *
 * The expectation model is deliberately independent of the product: nothing from metrics/
 * or processor/ is linked. Business time is recomputed by the C library's own time zone
 * code (mktime/localtime_r in the zone, one day at a time), the FRT histogram bucket from
 * the contract's formula, and the hand-worked values of the time zone cases are in the
 * comments and asserted against that recomputation first. Events sit 7 to 31 minutes in the
 * past (or, for business hours, on chosen local dates), so `total` and the 1 h window can both
 * be compared exactly and the 5 min window must hold none of them. Windows are read through
 * the Function library smm (FCALL smm_get, docs/redis-keys.md) at the minute the events
 * were generated for, so the outcome does not depend on how long the run took. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <fnmatch.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/integration/harness.h"

#define P "smm:"
#define SEC_MS 1000LL
#define MIN_MS 60000LL
#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL

/* ---- messages to produce ---- */

static struct h_msg *msgs;
static size_t n_msgs, cap_msgs;
static int event_seq;

static void add(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(const char *key, const char *fmt, ...)
{
    if (n_msgs == cap_msgs) {
        cap_msgs = cap_msgs ? cap_msgs * 2 : 1024;
        msgs = realloc(msgs, cap_msgs * sizeof(*msgs));
        cr_assert(msgs);
    }
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && (size_t)n < sizeof(buf));
    msgs[n_msgs].key = strdup(key);
    msgs[n_msgs].payload = strdup(buf);
    msgs[n_msgs].len = (size_t)n;
    n_msgs++;
}

/* A customer message (thread may be NULL: counted as a message only). */
static void ev_message(const char *acct, const char *thread, int64_t ts)
{
    int id = ++event_seq;
    if (thread) {
        add(acct, "{\"event_id\":\"m%d\",\"type\":\"message\",\"ts\":%lld,\"account_id\":\"%s\","
                  "\"thread_id\":\"%s\",\"user_id\":\"cust-%s\"}",
            id, (long long)ts, acct, thread, thread);
    } else {
        add(acct, "{\"event_id\":\"m%d\",\"type\":\"message\",\"ts\":%lld,\"account_id\":\"%s\","
                  "\"user_id\":\"cust-none\"}",
            id, (long long)ts, acct);
    }
}

static void ev_reply(const char *acct, const char *thread, int64_t ts)
{
    add(acct, "{\"event_id\":\"r%d\",\"type\":\"reply\",\"ts\":%lld,\"account_id\":\"%s\","
              "\"thread_id\":\"%s\"}",
        ++event_seq, (long long)ts, acct, thread);
}

/* ---- a small string -> int64 map (expectations and Redis hashes) ---- */

struct kv {
    size_t n, cap;
    char **k;
    int64_t *v;
};

static int64_t *kv_slot(const struct kv *m, const char *key)
{
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->k[i], key) == 0) {
            return &m->v[i];
        }
    }
    return NULL;
}

static void kv_add(struct kv *m, const char *key, int64_t d)
{
    int64_t *s = kv_slot(m, key);
    if (s) {
        *s += d;
        return;
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 256;
        m->k = realloc(m->k, m->cap * sizeof(*m->k));
        m->v = realloc(m->v, m->cap * sizeof(*m->v));
        cr_assert(m->k && m->v);
    }
    m->k[m->n] = strdup(key);
    m->v[m->n] = d;
    m->n++;
}

static int64_t kv_get(const struct kv *m, const char *key)
{
    const int64_t *s = kv_slot(m, key);
    return s ? *s : 0;
}

static void kv_free(struct kv *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->k[i]);
    }
    free(m->k);
    free(m->v);
    memset(m, 0, sizeof(*m));
}

/* ---- the expectation model ---- */

struct expect {
    int64_t now;     /* when the events were generated: decides window membership */
    struct kv total; /* "<entity>:<metric>" -> lifetime value */
    struct kv w1h;   /* the same in the 1 h window ending at now's minute */
};

/* The minute the windows are read at (the model's now, not the wall clock of the read). */
static int64_t at(const struct expect *e)
{
    return e->now / MIN_MS;
}

/* Adds d to field fmt in total, and in the 1 h window when ts is inside it. No event may
 * sit near the window's edge (50 to 70 minutes old), where the outcome depends on timing. */
static void ex(struct expect *e, int64_t ts, int64_t d, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void ex(struct expect *e, int64_t ts, int64_t d, const char *fmt, ...)
{
    char key[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(key, sizeof(key), fmt, ap);
    va_end(ap);
    int64_t age = e->now - ts;
    cr_assert(age < 50 * MIN_MS || age > 70 * MIN_MS,
              "test data: %s at %lld is too close to the 1 h window's edge", key, (long long)ts);
    kv_add(&e->total, key, d);
    if (age < 50 * MIN_MS) {
        kv_add(&e->w1h, key, d);
    }
}

static void ex_free(struct expect *e)
{
    kv_free(&e->total);
    kv_free(&e->w1h);
}

/* The contract's histogram (metrics/response.h), re-implemented: gamma = 1.04, bucket 0 for
 * ms <= 1, else ceil(ln(ms) / ln(gamma)). */
static int frt_bucket(int64_t ms)
{
    if (ms <= 1) {
        return 0;
    }
    return (int)ceil(log((double)ms) / log(1.04));
}

/* ---- local time, independently of the product: the C library's tz database ---- */

struct ldate {
    int y, m, d, wday; /* wday 0 = Sunday */
};

static void tz_set(const char *zone)
{
    setenv("TZ", zone, 1);
    tzset();
}

/* Epoch ms of a local wall time in zone; day, hour... may overflow (normalised by mktime). */
static int64_t local_ms(const char *zone, int y, int m, int d, int hh, int mm, int ss)
{
    tz_set(zone);
    struct tm t = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d, .tm_hour = hh,
                   .tm_min = mm, .tm_sec = ss, .tm_isdst = -1};
    time_t s = mktime(&t);
    cr_assert(s != (time_t)-1, "mktime %04d-%02d-%02d %02d:%02d in %s", y, m, d, hh, mm, zone);
    return (int64_t)s * 1000;
}

static struct ldate local_date(const char *zone, int64_t ms)
{
    tz_set(zone);
    time_t s = (time_t)(ms / 1000);
    struct tm t;
    cr_assert(localtime_r(&s, &t));
    return (struct ldate){t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_wday};
}

static struct ldate date_add(const char *zone, struct ldate d, int days)
{
    return local_date(zone, local_ms(zone, d.y, d.m, d.d + days, 12, 0, 0));
}

static int local_isdst(const char *zone, int64_t ms)
{
    tz_set(zone);
    time_t s = (time_t)(ms / 1000);
    struct tm t;
    cr_assert(localtime_r(&s, &t));
    return t.tm_isdst > 0;
}

/* Business milliseconds between a and b under "mon-fri 09:00-17:00" local time in zone:
 * the overlap of [a, b) with each weekday's opening hours (CONTRACT-5: B(reply) - B(message),
 * time outside the hours does not count, a reply at night counts up to the close). */
static int64_t biz_ms(const char *zone, int64_t a, int64_t b)
{
    int64_t sum = 0;
    if (b <= a) {
        return 0;
    }
    struct ldate first = local_date(zone, a);
    for (int k = 0;; k++) {
        struct ldate day = date_add(zone, first, k);
        int64_t open = local_ms(zone, day.y, day.m, day.d, 9, 0, 0);
        if (open >= b) {
            break;
        }
        int64_t close = local_ms(zone, day.y, day.m, day.d, 17, 0, 0);
        if (day.wday >= 1 && day.wday <= 5) {
            int64_t lo = a > open ? a : open;
            int64_t hi = b < close ? b : close;
            if (hi > lo) {
                sum += hi - lo;
            }
        }
    }
    return sum;
}

/* One wait ended by a reply: answered, both FRT sums and both histograms, in the minute of
 * the message that started the wait (like threads: a window's answered waits are among
 * the waits it opened, so its response rate is at most 100 %). */
static void ex_answered(struct expect *e, const char *acct, const char *zone, int64_t msg_ts,
                        int64_t reply_ts)
{
    int64_t frt = reply_ts - msg_ts;
    int64_t frtb = biz_ms(zone, msg_ts, reply_ts);
    ex(e, msg_ts, 1, "a:%s:answered", acct);
    ex(e, msg_ts, frt, "a:%s:frt_ms", acct);
    ex(e, msg_ts, frtb, "a:%s:frtb_ms", acct);
    ex(e, msg_ts, 1, "a:%s:frt_%d", acct, frt_bucket(frt));
    ex(e, msg_ts, 1, "a:%s:frtb_%d", acct, frt_bucket(frtb));
}

/* ---- services ---- */

struct env {
    char dir[256];
    char log[320];
    struct h_redis redis;
    struct h_kafka kafka;
    pid_t pid;
    size_t sent;
    redisContext *c;
};

/* The running test's services: its .fini stops them also when an assertion ended the test
 * early, so a failing run leaves no redis-server, mock broker or processor behind. */
static struct env *live_env;

static void env_cleanup(void)
{
    struct env *e = live_env;
    live_env = NULL;
    if (!e) {
        return;
    }
    if (e->pid > 0) {
        kill(e->pid, SIGKILL);
        h_wait(e->pid, 10000);
        e->pid = 0;
    }
    if (e->c) {
        redisFree(e->c);
        e->c = NULL;
    }
    h_kafka_stop(&e->kafka);
    h_redis_stop(&e->redis);
    h_free_msgs(msgs, n_msgs);
    msgs = NULL;
    n_msgs = cap_msgs = 0;
}

static void env_start(struct env *e, const char *name, int partitions)
{
    memset(e, 0, sizeof(*e));
    live_env = e;
    h_tmpdir(e->dir, sizeof(e->dir), name);
    h_redis_start(&e->redis, 0);
    h_kafka_start(&e->kafka, name, partitions);
    e->c = h_redis_connect(&e->redis);
    event_seq = 0;
}

static void env_run(struct env *e, const char *tag, const char *const *sets)
{
    snprintf(e->log, sizeof(e->log), "%s/processor-%s.log", e->dir, tag);
    e->pid = h_processor_start_ex(&e->kafka, &e->redis, e->log, sets, NULL, NULL);
}

/* Produces every message added since the last call. */
static void env_produce(struct env *e)
{
    if (n_msgs > e->sent) {
        h_produce(&e->kafka, e->kafka.topic, msgs + e->sent, n_msgs - e->sent);
        e->sent = n_msgs;
    }
}

static int64_t stored_offsets(redisContext *c)
{
    redisReply *r = redisCommand(c, "HVALS " P "offsets");
    int64_t sum = 0;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        sum += strtoll(r->element[i]->str, NULL, 10);
    }
    freeReplyObject(r);
    return sum;
}

static void env_check_alive(struct env *e)
{
    int status;
    cr_assert(waitpid(e->pid, &status, WNOHANG) == 0,
              "the processor exited early (a configuration it refuses? see %s)", e->log);
}

/* Waits until the stored offsets cover every produced message. */
static void env_wait(struct env *e, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    int64_t sum;
    while ((sum = stored_offsets(e->c)) < (int64_t)e->sent) {
        cr_assert(h_now_ms() < deadline, "timed out at %lld of %zu messages (see %s)",
                  (long long)sum, e->sent, e->log);
        env_check_alive(e);
        h_sleep_ms(100);
    }
}

/* Clean stop: waits until the processor consumes (a SIGTERM before its handler would kill
 * it), then SIGTERM; it must exit 0 after its last flush. */
static void env_stop(struct env *e)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "grep -q 'consuming' %s 2>/dev/null", e->log);
    for (int i = 0; i < 200 && system(cmd) != 0; i++) {
        h_sleep_ms(50);
    }
    kill(e->pid, SIGTERM);
    cr_assert_eq(h_wait(e->pid, 30000), 0, "processor exit status (see %s)", e->log);
    e->pid = 0;
}

static void env_finish(struct env *e)
{
    cr_assert(live_env == e);
    env_cleanup();
}

/* ---- reading Redis ---- */

static void load_hash(redisContext *c, const char *key, struct kv *out)
{
    redisReply *r = redisCommand(c, "HGETALL %s", key);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY, "HGETALL %s", key);
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        kv_add(out, r->element[i]->str, (int64_t)strtod(r->element[i + 1]->str, NULL));
    }
    freeReplyObject(r);
}

/* A window of every entity, as "<entity>:<metric>" -> value: what smm_get returns for each
 * entity with a counter hash (integer counters; a derived rate is read as its integer part
 * and never compared). */
struct window_load {
    redisContext *c;
    const char *window;
    int64_t minute;
    struct kv *out;
    const char *entity;
};

static void load_metric(void *opaque, const char *metric, const char *value)
{
    struct window_load *w = opaque;
    char key[512];
    snprintf(key, sizeof(key), "%s:%s", w->entity, metric);
    kv_add(w->out, key, (int64_t)strtod(value, NULL));
}

static void load_entity(void *opaque, const char *entity)
{
    struct window_load *w = opaque;
    w->entity = entity;
    h_entity_each(w->c, P, entity, w->window, w->minute, load_metric, w);
}

static void load_window(redisContext *c, const char *window, int64_t minute, struct kv *out)
{
    struct window_load w = {c, window, minute, out, NULL};
    h_entities(c, P, load_entity, &w);
}

/* One "<entity>:<metric>" of a window (0 when absent). */
static int64_t window_get(redisContext *c, const char *window, int64_t minute, const char *field)
{
    char entity[512];
    const char *last = strrchr(field, ':');
    cr_assert(last && (size_t)(last - field) < sizeof(entity), "test bug: field %s", field);
    memcpy(entity, field, (size_t)(last - field));
    entity[last - field] = '\0';
    return h_entity_get(c, P, entity, window, minute, last + 1);
}

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Every expected "<entity>:<metric>" of the window (read at minute) equals Redis. Among the
 * ones matching one of the closed glob patterns (fnmatch), Redis may hold no non-zero metric
 * the model does not expect (e.g. a histogram bucket too many, a source that should have
 * folded into "other"). */
static void compare(redisContext *c, const char *window, int64_t minute, const struct kv *exp,
                    const char *const *closed)
{
    struct kv act = {0};
    load_window(c, window, minute, &act);
    for (size_t i = 0; i < exp->n; i++) {
        int64_t a = kv_get(&act, exp->k[i]);
        cr_expect_eq(a, exp->v[i], "window %s %s: expected %lld, Redis has %lld%s", window,
                     exp->k[i], (long long)exp->v[i], (long long)a,
                     kv_slot(&act, exp->k[i]) ? "" : " (absent)");
    }
    for (size_t i = 0; closed && closed[i]; i++) {
        for (size_t j = 0; j < act.n; j++) {
            if (fnmatch(closed[i], act.k[j], 0) == 0 && act.v[j] != 0) {
                cr_expect(kv_slot(exp, act.k[j]) != NULL, "window %s: unexpected %s = %lld",
                          window, act.k[j], (long long)act.v[j]);
            }
        }
    }
    kv_free(&act);
}

/* P d:<day> holds only account fields, and over all days they sum to the lifetime totals:
 * checked for every expected a: field (independent of which event's day a derived metric
 * such as frt_ms is booked on). */
static void compare_days(redisContext *c, const struct kv *total)
{
    redisReply *keys = redisCommand(c, "KEYS " P "d:*");
    cr_assert(keys && keys->type == REDIS_REPLY_ARRAY);
    if (keys->elements == 0) {
        cr_expect_fail("no " P "d:<day> hash at all (daily account buckets)");
        freeReplyObject(keys);
        return;
    }
    struct kv sum = {0};
    for (size_t i = 0; i < keys->elements; i++) {
        struct kv day = {0};
        load_hash(c, keys->element[i]->str, &day);
        for (size_t j = 0; j < day.n; j++) {
            cr_expect(starts(day.k[j], "a:"), "%s holds a non-account field %s",
                      keys->element[i]->str, day.k[j]);
            kv_add(&sum, day.k[j], day.v[j]);
        }
        kv_free(&day);
    }
    for (size_t i = 0; i < total->n; i++) {
        if (starts(total->k[i], "a:")) {
            int64_t a = kv_get(&sum, total->k[i]);
            cr_expect_eq(a, total->v[i], "sum over the %zu " P "d:<day> hashes of %s: expected "
                         "%lld, Redis has %lld", keys->elements, total->k[i],
                         (long long)total->v[i], (long long)a);
        }
    }
    kv_free(&sum);
    freeReplyObject(keys);
}

/* No metric of the account has a non-zero value in the 5-minute window ending at minute:
 * all its events are older than 6 minutes. */
static void expect_not_in_5m(redisContext *c, int64_t minute, const char *ent_prefix)
{
    struct kv w = {0};
    load_window(c, "5m", minute, &w);
    for (size_t i = 0; i < w.n; i++) {
        cr_expect(!starts(w.k[i], ent_prefix) || w.v[i] == 0,
                  "window 5m %s = %lld: every event of the test is older than 6 minutes", w.k[i],
                  (long long)w.v[i]);
    }
    kv_free(&w);
}

static void expect_no_dead_letters(struct env *e)
{
    struct kv st = {0};
    load_hash(e->c, P "stats", &st);
    for (size_t i = 0; i < st.n; i++) {
        cr_expect(!starts(st.k[i], "dead_letter") || st.v[i] == 0,
                  P "stats %s = %lld: test events were dead-lettered (see %s)", st.k[i],
                  (long long)st.v[i], e->log);
    }
    kv_free(&st);
}

static int64_t hget_int(redisContext *c, const char *key, const char *field)
{
    redisReply *r = redisCommand(c, "HGET %s %s", key, field);
    int64_t v = r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
    freeReplyObject(r);
    return v;
}

static char *hget_str(redisContext *c, const char *key, const char *field)
{
    redisReply *r = redisCommand(c, "HGET %s %s", key, field);
    char *v = strdup(r && r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return v;
}

/* ZSCORE as an integer; -1 when the member is absent. */
static int64_t zscore(redisContext *c, const char *key, const char *member)
{
    redisReply *r = redisCommand(c, "ZSCORE %s %s", key, member);
    int64_t v = r && r->type == REDIS_REPLY_STRING ? llround(strtod(r->str, NULL)) : -1;
    freeReplyObject(r);
    return v;
}

static int64_t zcard(redisContext *c, const char *key)
{
    redisReply *r = redisCommand(c, "ZCARD %s", key);
    int64_t v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

/* The members of a set, sorted, as "a,b,c". */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void smembers(redisContext *c, const char *key, char *out, size_t size)
{
    redisReply *r = redisCommand(c, "SMEMBERS %s", key);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY, "SMEMBERS %s", key);
    char **v = calloc(r->elements + 1, sizeof(*v));
    for (size_t i = 0; i < r->elements; i++) {
        v[i] = r->element[i]->str;
    }
    qsort(v, r->elements, sizeof(*v), cmp_str);
    out[0] = '\0';
    for (size_t i = 0; i < r->elements; i++) {
        size_t used = strlen(out);
        snprintf(out + used, size - used, "%s%s", i ? "," : "", v[i]);
    }
    free(v);
    freeReplyObject(r);
}

/* ---- deterministic pseudo-random numbers (xorshift64*) ---- */

static uint64_t rng = 88172645463325252ULL;

static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

/* Log-uniform in [1, max] ms: first response times from milliseconds to minutes. */
static int64_t rnd_delay(int64_t max)
{
    double u = (double)(rnd() >> 11) / 9007199254740992.0;
    int64_t d = (int64_t)exp(u * log((double)max));
    return d < 1 ? 1 : d;
}

/* =========================================================================================
 * 1. Response times: 100 threads per account, every shape of conversation.
 * ========================================================================================= */

/* Generates one account's threads and their expectation; returns the waits left open.
 * Business hours are the defaults (UTC, mon-fri 09:00-17:00): biz_ms recomputes them. */
static int response_account(struct expect *e, const char *acct, int64_t base)
{
    int open = 0;
    for (int i = 0; i < 100; i++) {
        char th[16];
        snprintf(th, sizeof(th), "t%d", i); /* the same thread ids in both accounts */
        int64_t m = base + i * SEC_MS;
        int64_t d;
        switch (i) {
        case 38: d = 1; break;          /* bucket 0 */
        case 39: d = 2; break;          /* the first bucket above 0 */
        case 40: d = 3; break;
        case 41: d = 1000; break;
        case 42: d = 60000; break;
        default: d = rnd_delay(15 * MIN_MS); break;
        }
        if (i < 10) {
            /* The reply is in the topic right before its message (event time after it): it
             * must wait for the message and then answer it. FRT up to 30 s, so the outcome
             * does not depend on how response.reorder is measured (wall clock or event
             * time), only on its default being at least that. */
            d = rnd_delay(30 * SEC_MS);
            ev_reply(acct, th, m + d);
            ev_message(acct, th, m);
            ex(e, m + d, 1, "a:%s:reply", acct);
            ex(e, m, 1, "a:%s:message", acct);
            ex(e, m, 1, "a:%s:threads", acct);
            ex_answered(e, acct, "UTC", m, m + d);
        } else if (i < 13) {
            /* A reply whose event time is 20 s before the message that arrives after it:
             * it answers nothing; the message's wait stays open. */
            ev_reply(acct, th, m - 20 * SEC_MS);
            ev_message(acct, th, m);
            ex(e, m - 20 * SEC_MS, 1, "a:%s:reply", acct);
            ex(e, m, 1, "a:%s:message", acct);
            ex(e, m, 1, "a:%s:threads", acct);
            open++;
        } else if (i < 18) {
            /* Two customer messages before the reply: one wait, timed from the first. */
            d = 6 * SEC_MS + rnd_delay(10 * MIN_MS);
            ev_message(acct, th, m);
            ev_message(acct, th, m + 5 * SEC_MS);
            ev_reply(acct, th, m + d);
            ex(e, m, 1, "a:%s:message", acct);
            ex(e, m + 5 * SEC_MS, 1, "a:%s:message", acct);
            ex(e, m, 1, "a:%s:threads", acct);
            ex(e, m + d, 1, "a:%s:reply", acct);
            ex_answered(e, acct, "UTC", m, m + d);
        } else if (i < 28) {
            /* Never answered. */
            ev_message(acct, th, m);
            ex(e, m, 1, "a:%s:message", acct);
            ex(e, m, 1, "a:%s:threads", acct);
            open++;
        } else if (i < 33) {
            /* Answered, then the customer writes again and is answered again: two waits. */
            int64_t d1 = rnd_delay(5 * MIN_MS), d2 = rnd_delay(5 * MIN_MS);
            int64_t m2 = m + d1 + 10 * SEC_MS;
            ev_message(acct, th, m);
            ev_reply(acct, th, m + d1);
            ev_message(acct, th, m2);
            ev_reply(acct, th, m2 + d2);
            ex(e, m, 1, "a:%s:message", acct);
            ex(e, m2, 1, "a:%s:message", acct);
            ex(e, m, 1, "a:%s:threads", acct);
            ex(e, m2, 1, "a:%s:threads", acct);
            ex(e, m + d1, 1, "a:%s:reply", acct);
            ex(e, m2 + d2, 1, "a:%s:reply", acct);
            ex_answered(e, acct, "UTC", m, m + d1);
            ex_answered(e, acct, "UTC", m2, m2 + d2);
        } else if (i < 38) {
            /* Two replies: only the first ends the wait. */
            ev_message(acct, th, m);
            ev_reply(acct, th, m + d);
            ev_reply(acct, th, m + d + 3 * SEC_MS);
            ex(e, m, 1, "a:%s:message", acct);
            ex(e, m, 1, "a:%s:threads", acct);
            ex(e, m + d, 1, "a:%s:reply", acct);
            ex(e, m + d + 3 * SEC_MS, 1, "a:%s:reply", acct);
            ex_answered(e, acct, "UTC", m, m + d);
        } else {
            ev_message(acct, th, m);
            ev_reply(acct, th, m + d);
            ex(e, m, 1, "a:%s:message", acct);
            ex(e, m, 1, "a:%s:threads", acct);
            ex(e, m + d, 1, "a:%s:reply", acct);
            ex_answered(e, acct, "UTC", m, m + d);
        }
    }
    /* Messages without a thread: messages only. Replies to threads nobody wrote to. */
    for (int i = 0; i < 3; i++) {
        ev_message(acct, NULL, base + 150 * SEC_MS + i);
        ex(e, base + 150 * SEC_MS + i, 1, "a:%s:message", acct);
    }
    for (int i = 0; i < 2; i++) {
        char th[16];
        snprintf(th, sizeof(th), "orphan%d", i);
        ev_reply(acct, th, base + 160 * SEC_MS + i);
        ex(e, base + 160 * SEC_MS + i, 1, "a:%s:reply", acct);
    }
    return open;
}

Test(insights_e2e, response_times_and_open_waits, .timeout = 150, .fini = env_cleanup)
{
    static struct env env; /* static: .fini reads it after an assertion unwound the test */
    env_start(&env, "resp", 4);
    struct expect e = {.now = h_now_ms()};
    /* All events 7 to 31 minutes old: inside 1h (and 24h), outside 5m. */
    int64_t base = e.now - 30 * MIN_MS;
    int open_alpha = response_account(&e, "alpha", base);
    int open_beta = response_account(&e, "beta", base + 250);
    for (size_t i = 0; i < n_msgs; i++) {
        cJSON *j = cJSON_Parse(msgs[i].payload);
        int64_t ts = (int64_t)cJSON_GetObjectItem(j, "ts")->valuedouble;
        cJSON_Delete(j);
        cr_assert(ts <= e.now - 7 * MIN_MS && ts >= e.now - 31 * MIN_MS,
                  "test data: event %zu at %lld outside [now-31m, now-7m]", i, (long long)ts);
    }
    env_produce(&env);
    const char *const sets[] = {"group_id=insights-resp", NULL};
    env_run(&env, "1", sets);
    env_wait(&env, 90000);
    env_stop(&env);

    expect_no_dead_letters(&env);
    static const char *const closed[] = {"a:alpha:frt*", "a:beta:frt*", NULL};
    compare(env.c, "total", -1, &e.total, closed);
    compare(env.c, "24h", at(&e), &e.total, closed);
    compare(env.c, "1h", at(&e), &e.w1h, closed);
    expect_not_in_5m(env.c, at(&e), "a:alpha:");
    expect_not_in_5m(env.c, at(&e), "a:beta:");
    compare_days(env.c, &e.total);
    int64_t oa = hget_int(env.c, P "rt:open", "alpha");
    int64_t ob = hget_int(env.c, P "rt:open", "beta");
    cr_expect_eq(oa, open_alpha, P "rt:open alpha: expected %d open waits, Redis has %lld",
                 open_alpha, (long long)oa);
    cr_expect_eq(ob, open_beta, P "rt:open beta: expected %d open waits, Redis has %lld",
                 open_beta, (long long)ob);
    ex_free(&e);
    env_finish(&env);
}

/* =========================================================================================
 * 2. Business hours in other time zones: "ny" (America/New_York, hours given explicitly)
 *    and "be" (Europe/Berlin, the default hours mon-fri 09:00-17:00).
 * ========================================================================================= */

struct bcase {
    int wday;           /* weekday of the message, 0 = Sunday */
    int h, mi, s;       /* local time of the message */
    int rdays;          /* the reply this many local days later */
    int rh, rmi, rs;    /* local time of the reply */
    int64_t biz;        /* business ms, worked out by hand */
    const char *why;
};

/* Hand-worked business time (local clock, mon-fri 09:00-17:00). */
static const struct bcase recent_cases[] = {
    {5, 16, 0, 0, 3, 10, 0, 0, 2 * HOUR_MS, "Fri 16:00 -> Mon 10:00: Fri 16-17 + Mon 9-10 = 2 h"},
    {1, 8, 0, 0, 0, 9, 30, 0, 30 * MIN_MS, "Mon 08:00 -> 09:30: from the opening = 30 min"},
    {2, 16, 30, 0, 0, 18, 0, 0, 30 * MIN_MS, "Tue 16:30 -> 18:00: up to the close = 30 min"},
    {2, 18, 0, 0, 0, 20, 0, 0, 0, "Tue 18:00 -> 20:00: after hours = 0"},
    {3, 9, 0, 0, 0, 9, 0, 1, 1 * SEC_MS, "Wed 09:00:00 -> 09:00:01 = 1 s"},
    {3, 17, 0, 0, 1, 9, 0, 0, 0, "Wed 17:00 -> Thu 09:00: close to opening = 0"},
    {4, 12, 0, 0, 1, 12, 0, 0, 8 * HOUR_MS, "Thu 12:00 -> Fri 12:00: 5 h + 3 h = 8 h"},
    {6, 10, 0, 0, 1, 12, 0, 0, 0, "Sat 10:00 -> Sun 12:00: weekend = 0"},
    {0, 23, 0, 0, 1, 9, 15, 0, 15 * MIN_MS, "Sun 23:00 -> Mon 09:15 = 15 min"},
    {5, 16, 59, 59, 0, 17, 0, 1, 1 * SEC_MS, "Fri 16:59:59 -> 17:00:01: 1 s before the close"},
    {4, 20, 0, 0, 1, 8, 0, 0, 0, "Thu 20:00 -> Fri 08:00: the night = 0"},
};

/* The most recent local date with the case's weekday whose reply is at least 2 hours in
 * the past. */
static struct ldate recent_date(const char *zone, const struct bcase *bc, int64_t now)
{
    struct ldate today = local_date(zone, now);
    for (int k = 0; k < 15; k++) {
        struct ldate d = date_add(zone, today, -k);
        if (d.wday != bc->wday) {
            continue;
        }
        int64_t reply = local_ms(zone, d.y, d.m, d.d + bc->rdays, bc->rh, bc->rmi, bc->rs);
        if (reply < now - 2 * HOUR_MS) { /* older than any window edge the model checks */
            return d;
        }
    }
    cr_assert_fail("no date for case %s", bc->why);
    return today;
}

/* Messages and replies of one local-time case (message and reply adjacent in the topic). */
static void biz_thread(struct expect *e, const char *acct, const char *zone, const char *th,
                       int64_t msg, int64_t reply, int64_t biz, const char *why)
{
    int64_t got = biz_ms(zone, msg, reply);
    cr_assert_eq(got, biz, "test data: %s in %s: recomputed %lld ms, worked out %lld ms", why,
                 zone, (long long)got, (long long)biz);
    ev_message(acct, th, msg);
    ev_reply(acct, th, reply);
    ex(e, msg, 1, "a:%s:message", acct);
    ex(e, msg, 1, "a:%s:threads", acct);
    ex(e, reply, 1, "a:%s:reply", acct);
    ex_answered(e, acct, zone, msg, reply);
}

static void check_biz(struct env *env, struct expect *e)
{
    expect_no_dead_letters(env);
    static const char *const closed[] = {"a:ny:frt*", "a:be:frt*", NULL};
    compare(env->c, "total", -1, &e->total, closed);
    compare_days(env->c, &e->total);
    int64_t ny = hget_int(env->c, P "rt:open", "ny"), be = hget_int(env->c, P "rt:open", "be");
    cr_expect_eq(ny, 0, P "rt:open ny = %lld: every wait was answered", (long long)ny);
    cr_expect_eq(be, 0, P "rt:open be = %lld: every wait was answered", (long long)be);
}

/* Events on the latest dates that fit each case: up to ~11 days back, so the retention is
 * raised to 14 days (a 7-day window plus 7 days of grace, within config.c's rules). */
Test(insights_e2e, business_hours_time_zones, .timeout = 120, .fini = env_cleanup)
{
    static struct env env; /* static: .fini reads it after an assertion unwound the test */
    env_start(&env, "bizrecent", 2);
    struct expect e = {.now = h_now_ms()};
    static const char *const zones[][2] = {{"ny", "America/New_York"}, {"be", "Europe/Berlin"}};
    for (int z = 0; z < 2; z++) {
        for (size_t i = 0; i < sizeof(recent_cases) / sizeof(recent_cases[0]); i++) {
            const struct bcase *bc = &recent_cases[i];
            struct ldate d = recent_date(zones[z][1], bc, e.now);
            int64_t msg = local_ms(zones[z][1], d.y, d.m, d.d, bc->h, bc->mi, bc->s);
            int64_t reply = local_ms(zones[z][1], d.y, d.m, d.d + bc->rdays, bc->rh, bc->rmi,
                                     bc->rs);
            char th[16];
            snprintf(th, sizeof(th), "c%zu", i);
            biz_thread(&e, zones[z][0], zones[z][1], th, msg, reply, bc->biz, bc->why);
        }
    }
    env_produce(&env);
    const char *const sets[] = {"group_id=insights-bizrecent",
                                "windows=5m,1h,24h,7d",
                                "window.grace_ms=7d",
                                "retention_ms=14d",
                                "response.account.ny.tz=America/New_York",
                                "response.account.ny.hours=mon-fri 09:00-17:00",
                                "response.account.be.tz=Europe/Berlin",
                                NULL};
    env_run(&env, "1", sets);
    env_wait(&env, 60000);
    env_stop(&env);
    check_biz(&env, &e);
    ex_free(&e);
    env_finish(&env);
}

struct dcase {
    int dfrom;          /* message: local days from the change's Sunday */
    int h, mi;
    int dto;            /* reply: local days from that Sunday */
    int rh, rmi;
    int64_t biz;        /* business ms, by hand */
    int64_t wall_spring, wall_autumn; /* wall-clock ms, by hand (the Sunday has 23 / 25 h) */
    const char *why;
};

static const struct dcase dst_cases[] = {
    {-2, 16, 0, 1, 10, 0, 2 * HOUR_MS, 65 * HOUR_MS, 67 * HOUR_MS,
     "Fri 16:00 -> Mon 10:00 over the change: 1 h + 1 h = 2 h (66 h of clock -/+ 1 h)"},
    {-3, 12, 0, 2, 12, 0, 24 * HOUR_MS, 119 * HOUR_MS, 121 * HOUR_MS,
     "Thu 12:00 -> Tue 12:00: 5 + 8 + 8 + 3 = 24 h (120 h of clock -/+ 1 h)"},
    {-1, 12, 0, 1, 9, 30, 30 * MIN_MS, 44 * HOUR_MS + 30 * MIN_MS, 46 * HOUR_MS + 30 * MIN_MS,
     "Sat 12:00 -> Mon 09:30: 30 min (45.5 h of clock -/+ 1 h)"},
    {1, 16, 30, 2, 9, 15, 45 * MIN_MS, 16 * HOUR_MS + 45 * MIN_MS, 16 * HOUR_MS + 45 * MIN_MS,
     "Mon 16:30 -> Tue 09:15 on the new offset: 30 + 15 = 45 min"},
};

/* The most recent Sunday on which zone's clocks went forward (spring) or back, with all the
 * cases' replies (up to Tuesday 12:00 local) at least 2 hours in the past. */
static struct ldate last_change(const char *zone, int spring, int64_t now)
{
    int64_t today_noon = now / DAY_MS * DAY_MS + 12 * HOUR_MS;
    for (int k = 0; k < 800; k++) {
        int64_t noon = today_noon - (int64_t)k * DAY_MS;
        int before = local_isdst(zone, noon - DAY_MS), after = local_isdst(zone, noon);
        if (spring ? (!before && after) : (before && !after)) {
            struct ldate s = local_date(zone, noon);
            cr_assert_eq(s.wday, 0, "test data: %s changes its clocks on a Sunday", zone);
            if (local_ms(zone, s.y, s.m, s.d + 2, 12, 0, 0) < now - 2 * HOUR_MS) {
                return s;
            }
        }
    }
    cr_assert_fail("no DST change found for %s", zone);
    return (struct ldate){0};
}

/* The latest spring-forward and fall-back weekends of New York (2026: Mar 8, Nov 1) and
 * Berlin (2026: Mar 29, Oct 25), whichever are the most recent when the test runs: up to
 * ~375 days back, hence retention_ms=400d (the brief's value; days.keep defaults to 400).
 * Such events are in no window: only `total` and the d:<day> sums are compared. */
Test(insights_e2e, business_hours_across_dst, .timeout = 120, .fini = env_cleanup)
{
    static struct env env; /* static: .fini reads it after an assertion unwound the test */
    env_start(&env, "bizdst", 2);
    struct expect e = {.now = h_now_ms()};
    static const char *const zones[][2] = {{"ny", "America/New_York"}, {"be", "Europe/Berlin"}};
    for (int z = 0; z < 2; z++) {
        const char *zone = zones[z][1];
        for (int spring = 0; spring < 2; spring++) {
            struct ldate s = last_change(zone, spring, e.now);
            cr_log_info("%s: clocks went %s on %04d-%02d-%02d", zone,
                        spring ? "forward" : "back", s.y, s.m, s.d);
            for (size_t i = 0; i < sizeof(dst_cases) / sizeof(dst_cases[0]); i++) {
                const struct dcase *dc = &dst_cases[i];
                int64_t msg = local_ms(zone, s.y, s.m, s.d + dc->dfrom, dc->h, dc->mi, 0);
                int64_t reply = local_ms(zone, s.y, s.m, s.d + dc->dto, dc->rh, dc->rmi, 0);
                int64_t wall = spring ? dc->wall_spring : dc->wall_autumn;
                cr_assert_eq(reply - msg, wall, "test data: %s in %s: %lld ms of clock, by hand "
                             "%lld", dc->why, zone, (long long)(reply - msg), (long long)wall);
                char th[24];
                snprintf(th, sizeof(th), "%s%zu", spring ? "sp" : "au", i);
                biz_thread(&e, zones[z][0], zone, th, msg, reply, dc->biz, dc->why);
            }
        }
    }
    env_produce(&env);
    const char *const sets[] = {"group_id=insights-bizdst",
                                "retention_ms=400d",
                                "response.account.ny.tz=America/New_York",
                                "response.account.ny.hours=mon-fri 09:00-17:00",
                                "response.account.be.tz=Europe/Berlin",
                                NULL};
    env_run(&env, "1", sets);
    env_wait(&env, 60000);
    env_stop(&env);
    /* By hand, per account: 2 changes x (2 h + 24 h + 30 min + 45 min) = 54.5 h. */
    cr_assert_eq(kv_get(&e.total, "a:ny:frtb_ms"), 2 * (26 * HOUR_MS + 75 * MIN_MS));
    cr_assert_eq(kv_get(&e.total, "a:be:frtb_ms"), 2 * (26 * HOUR_MS + 75 * MIN_MS));
    check_biz(&env, &e);
    ex_free(&e);
    env_finish(&env);
}

/* =========================================================================================
 * 3. SLA alerts exactly once across kill -9.
 * ========================================================================================= */

struct sla_thread {
    const char *acct;
    char th[16];
    int64_t sla;
    int64_t msg_ts;
    int64_t reply_ts; /* 0 = never answered */
    int late;         /* waits past its SLA: one "breached" alert */
};

struct sla_alert {
    char id[200];
    char to[16];
    char acct[32];
    char thread[32];
    int64_t at, msg_ts, sla, waited;
};

/* The stream's "sla" alerts, with the stream fields checked against the JSON. */
static int read_sla_alerts(redisContext *c, struct sla_alert *out, int max)
{
    redisReply *r = redisCommand(c, "XRANGE " P "alerts - +");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY);
    int n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        const char *sid = "", *skind = "", *sacct = "", *json = NULL;
        for (size_t j = 0; j + 1 < f->elements; j += 2) {
            const char *k = f->element[j]->str, *v = f->element[j + 1]->str;
            if (!strcmp(k, "alert_id")) {
                sid = v;
            } else if (!strcmp(k, "kind")) {
                skind = v;
            } else if (!strcmp(k, "account_id")) {
                sacct = v;
            } else if (!strcmp(k, "json")) {
                json = v;
            }
        }
        if (strcmp(skind, "sla") != 0) {
            continue;
        }
        cr_assert(json, "sla alert %s without json", sid);
        cJSON *a = cJSON_Parse(json);
        cr_assert(a, "sla alert %s: json does not parse: %s", sid, json);
        static const char *const strs[] = {"alert_id", "kind", "account_id", "thread_id", "to"};
        for (size_t k = 0; k < 5; k++) {
            cr_assert(cJSON_IsString(cJSON_GetObjectItem(a, strs[k])),
                      "sla alert %s: no string \"%s\": %s", sid, strs[k], json);
        }
        static const char *const nums[] = {"at_ms", "message_ts_ms", "sla_ms", "waited_ms"};
        for (size_t k = 0; k < 4; k++) {
            cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(a, nums[k])),
                      "sla alert %s: no number \"%s\": %s", sid, nums[k], json);
        }
        cr_assert(n < max);
        struct sla_alert *s = &out[n++];
        snprintf(s->id, sizeof(s->id), "%s", cJSON_GetObjectItem(a, "alert_id")->valuestring);
        snprintf(s->to, sizeof(s->to), "%s", cJSON_GetObjectItem(a, "to")->valuestring);
        snprintf(s->acct, sizeof(s->acct), "%s", cJSON_GetObjectItem(a, "account_id")->valuestring);
        snprintf(s->thread, sizeof(s->thread), "%s",
                 cJSON_GetObjectItem(a, "thread_id")->valuestring);
        s->at = (int64_t)cJSON_GetObjectItem(a, "at_ms")->valuedouble;
        s->msg_ts = (int64_t)cJSON_GetObjectItem(a, "message_ts_ms")->valuedouble;
        s->sla = (int64_t)cJSON_GetObjectItem(a, "sla_ms")->valuedouble;
        s->waited = (int64_t)cJSON_GetObjectItem(a, "waited_ms")->valuedouble;
        cr_expect_str_eq(cJSON_GetObjectItem(a, "kind")->valuestring, "sla", "%s", json);
        cr_expect_str_eq(sid, s->id, "stream field alert_id vs json: %s", json);
        cr_expect_str_eq(sacct, s->acct, "stream field account_id vs json: %s", json);
        cJSON_Delete(a);
    }
    freeReplyObject(r);
    return n;
}

static int count_to(const struct sla_alert *a, int n, const char *to)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        k += strcmp(a[i].to, to) == 0;
    }
    return k;
}

struct kafka_ids {
    char ids[64][200];
    int n;
};

static void on_kafka_alert(void *opaque, const char *payload, size_t len, const char *reason)
{
    (void)reason;
    struct kafka_ids *k = opaque;
    cJSON *a = cJSON_ParseWithLength(payload, len);
    cr_assert(a, "alerts topic holds JSON");
    const cJSON *kind = cJSON_GetObjectItem(a, "kind");
    if (cJSON_IsString(kind) && strcmp(kind->valuestring, "sla") == 0) {
        cr_assert(k->n < 64, "too many sla alerts in Kafka");
        snprintf(k->ids[k->n++], 200, "%s", cJSON_GetObjectItem(a, "alert_id")->valuestring);
    }
    cJSON_Delete(a);
}

#define SLA_LATE_BRAND 10
#define SLA_LATE_X 6

Test(insights_e2e, sla_alerts_exactly_once_across_kill9, .timeout = 200, .fini = env_cleanup)
{
    static struct env env; /* static: .fini reads it after an assertion unwound the test */
    env_start(&env, "sla", 2);
    /* response.reorder=1s: a message already overdue when it is first read (the group
     * join can take longer than the SLA) alerts 1 s later instead of the default 10 min. */
    const char *const sets[] = {"group_id=insights-sla", "response.sla=3s",
                                "response.account.x.sla=5s", "response.reorder=1s", NULL};
    struct sla_thread ts[32];
    int nt = 0;
    int64_t t0 = h_now_ms();
    /* Waits that will pass their SLA: "brand" (global 3 s) and "x" (its own 5 s). */
    for (int i = 0; i < SLA_LATE_BRAND + SLA_LATE_X; i++) {
        struct sla_thread *t = &ts[nt++];
        int is_x = i >= SLA_LATE_BRAND;
        t->acct = is_x ? "x" : "brand";
        t->sla = is_x ? 5000 : 3000;
        snprintf(t->th, sizeof(t->th), "late%d", i);
        t->msg_ts = t0 + i;
        t->reply_ts = 0;
        t->late = 1;
        ev_message(t->acct, t->th, t->msg_ts);
    }
    env_produce(&env);
    env_run(&env, "1", sets);
    env_wait(&env, 60000);

    /* Answered well within the SLA (300 ms of event time, consumed within a flush or two):
     * no alert at all. */
    int64_t tq = h_now_ms();
    for (int i = 0; i < 6; i++) {
        struct sla_thread *t = &ts[nt++];
        t->acct = i < 4 ? "brand" : "x";
        t->sla = i < 4 ? 3000 : 5000;
        snprintf(t->th, sizeof(t->th), "quick%d", i);
        t->msg_ts = tq + i;
        t->reply_ts = tq + i + 300;
        t->late = 0;
        ev_message(t->acct, t->th, t->msg_ts);
        ev_reply(t->acct, t->th, t->reply_ts);
    }
    env_produce(&env);
    env_wait(&env, 30000);

    /* kill -9 as soon as the first breach is in the stream. */
    struct sla_alert al[64];
    int64_t deadline = h_now_ms() + 60000;
    while (read_sla_alerts(env.c, al, 64) < 1) {
        cr_assert(h_now_ms() < deadline, "no sla alert (see %s)", env.log);
        env_check_alive(&env);
        h_sleep_ms(50);
    }
    kill(env.pid, SIGKILL);
    h_wait(env.pid, 10000);
    char log1[320];
    snprintf(log1, sizeof(log1), "%s", env.log);

    /* Restart; once every late wait has its breach, answer half of them. */
    env_run(&env, "2", sets);
    deadline = h_now_ms() + 60000;
    int n;
    while ((n = read_sla_alerts(env.c, al, 64)) < SLA_LATE_BRAND + SLA_LATE_X ||
           h_now_ms() < t0 + 7000) {
        cr_assert(h_now_ms() < deadline, "%d of %d breaches after the restart (see %s, %s)", n,
                  SLA_LATE_BRAND + SLA_LATE_X, log1, env.log);
        env_check_alive(&env);
        h_sleep_ms(100);
    }
    int answered_late = 0;
    for (int i = 0; i < nt; i++) {
        struct sla_thread *t = &ts[i];
        int k = atoi(t->th + 4);
        if (t->late && k % 2 == 0) {
            t->reply_ts = h_now_ms();
            ev_reply(t->acct, t->th, t->reply_ts);
            answered_late++;
        }
    }
    env_produce(&env);
    env_wait(&env, 60000);
    deadline = h_now_ms() + 30000;
    while (count_to(al, read_sla_alerts(env.c, al, 64), "resolved") < answered_late) {
        cr_assert(h_now_ms() < deadline, "resolved alerts missing (see %s)", env.log);
        h_sleep_ms(100);
    }
    h_sleep_ms(3000); /* a few ticks: nothing more may be emitted */
    env_stop(&env);

    /* Exactly the expected ids, each once. */
    n = read_sla_alerts(env.c, al, 64);
    int want = 0;
    for (int i = 0; i < nt; i++) {
        const struct sla_thread *t = &ts[i];
        char id[200];
        snprintf(id, sizeof(id), "sla:%s:%s:%lld", t->acct, t->th, (long long)t->msg_ts);
        for (int pass = 0; pass < 2; pass++) {
            char want_id[220];
            snprintf(want_id, sizeof(want_id), "%s%s", id, pass ? ":resolved" : "");
            int expected = pass ? (t->late && t->reply_ts) : t->late;
            int seen = 0;
            for (int j = 0; j < n; j++) {
                if (strcmp(al[j].id, want_id) != 0) {
                    continue;
                }
                seen++;
                const struct sla_alert *a = &al[j];
                cr_expect_str_eq(a->to, pass ? "resolved" : "breached", "%s: to", want_id);
                cr_expect_str_eq(a->acct, t->acct, "%s: account_id", want_id);
                cr_expect_str_eq(a->thread, t->th, "%s: thread_id", want_id);
                cr_expect_eq(a->msg_ts, t->msg_ts, "%s: message_ts_ms %lld, want %lld", want_id,
                             (long long)a->msg_ts, (long long)t->msg_ts);
                cr_expect_eq(a->sla, t->sla, "%s: sla_ms %lld, want %lld", want_id,
                             (long long)a->sla, (long long)t->sla);
                cr_expect(a->at >= t->msg_ts + t->sla, "%s: at_ms %lld before the deadline %lld",
                          want_id, (long long)a->at, (long long)(t->msg_ts + t->sla));
                cr_expect(a->waited >= t->sla, "%s: waited_ms %lld < sla_ms %lld", want_id,
                          (long long)a->waited, (long long)t->sla);
                if (pass) {
                    cr_expect_eq(a->waited, t->reply_ts - t->msg_ts,
                                 "%s: waited_ms %lld, want the first response time %lld", want_id,
                                 (long long)a->waited, (long long)(t->reply_ts - t->msg_ts));
                    cr_expect(a->at >= t->reply_ts, "%s: at_ms %lld before the reply %lld",
                              want_id, (long long)a->at, (long long)t->reply_ts);
                }
            }
            cr_expect_eq(seen, expected, "alert %s: %d in the stream, want %d", want_id, seen,
                         expected);
            want += expected;
        }
    }
    cr_expect_eq(n, want, "%d sla alerts in the stream, want %d (breached %d, resolved %d)", n,
                 want, count_to(al, n, "breached"), count_to(al, n, "resolved"));
    int64_t st = hget_int(env.c, P "stats", "alerts:sla");
    cr_expect_eq(st, want, P "stats alerts:sla = %lld, want %d", (long long)st, want);

    /* Counters and open waits after the restart. */
    struct expect e = {.now = h_now_ms()};
    for (int i = 0; i < nt; i++) {
        const struct sla_thread *t = &ts[i];
        ex(&e, t->msg_ts, 1, "a:%s:message", t->acct);
        ex(&e, t->msg_ts, 1, "a:%s:threads", t->acct);
        if (t->reply_ts) {
            ex(&e, t->reply_ts, 1, "a:%s:reply", t->acct);
            ex_answered(&e, t->acct, "UTC", t->msg_ts, t->reply_ts);
        }
    }
    static const char *const closed[] = {"a:brand:frt*", "a:x:frt*", NULL};
    /* frtb depends on the business clock at the moment of the run: recomputed by biz_ms. */
    compare(env.c, "total", -1, &e.total, closed);
    compare(env.c, "1h", at(&e), &e.w1h, closed);
    expect_no_dead_letters(&env);
    int64_t ob = hget_int(env.c, P "rt:open", "brand"), ox = hget_int(env.c, P "rt:open", "x");
    cr_expect_eq(ob, SLA_LATE_BRAND / 2, P "rt:open brand = %lld, want %d (late, unanswered)",
                 (long long)ob, SLA_LATE_BRAND / 2);
    cr_expect_eq(ox, SLA_LATE_X / 2, P "rt:open x = %lld, want %d (late, unanswered)",
                 (long long)ox, SLA_LATE_X / 2);

    /* The Kafka alerts topic (relay): the same sla alerts, once each. */
    char *log = h_read_file(env.log, NULL);
    int relay = strstr(log, "alert relay") != NULL;
    free(log);
    if (relay) {
        struct kafka_ids k = {.n = 0};
        char topic[200];
        snprintf(topic, sizeof(topic), "%s.alerts", env.kafka.topic);
        h_consume_all(&env.kafka, topic, 3000, on_kafka_alert, &k);
        cr_expect_eq(k.n, n, "%d sla alerts in Kafka, %d in the stream", k.n, n);
        for (int j = 0; j < n; j++) {
            int seen = 0;
            for (int i = 0; i < k.n; i++) {
                seen += strcmp(k.ids[i], al[j].id) == 0;
            }
            cr_expect_eq(seen, 1, "alert %s is %d times in the Kafka alerts topic", al[j].id,
                         seen);
        }
    }
    ex_free(&e);
    env_finish(&env);
}

/* =========================================================================================
 * 3b. Replies out of order, matched in event time (docs/insights.md, "Out of order").
 *     Worked by hand: every thread's waits, answers and FRTs are written out below. With a
 *     3 s response.reorder and a 60 s SLA on events 10 to 20 minutes old, a wait left open
 *     by mistake is overdue on arrival and breaches 3 s later: the test waits for that and
 *     requires no "sla" alert at all.
 * ========================================================================================= */

/* "<entity>:<metric>" in the minute bucket of ts (the hash's raw field m<minute>). */
static int64_t minute_field(redisContext *c, int64_t ts, const char *field)
{
    char entity[512], bucket[32];
    const char *last = strrchr(field, ':');
    cr_assert(last && (size_t)(last - field) < sizeof(entity), "test bug: field %s", field);
    memcpy(entity, field, (size_t)(last - field));
    entity[last - field] = '\0';
    snprintf(bucket, sizeof(bucket), "m%lld", (long long)(ts / MIN_MS));
    int64_t own = h_entity_field(c, P, entity, bucket, last + 1);
    snprintf(bucket, sizeof(bucket), "lm%lld", (long long)(ts / MIN_MS));
    return own + h_entity_field(c, P, entity, bucket, last + 1); /* + the link bucket */
}

Test(insights_e2e, out_of_order_replies_match_in_event_time, .timeout = 150,
     .fini = env_cleanup)
{
    static struct env env; /* static: .fini reads it after an assertion unwound the test */
    env_start(&env, "ooo", 1);
    struct expect e = {.now = h_now_ms()};
    int64_t base = (e.now - 20 * MIN_MS) / MIN_MS * MIN_MS;
    for (int k = 0; k < 3; k++) {
        char th[16];
        int64_t m = base + k * 3 * MIN_MS;
        /* (a) A reopened thread whose two replies both arrive before both messages.
         *     Event time: m1 = m, r1 = m + 20 s, m2 = m + 40 s, r2 = m + 70 s.
         *     Topic order: r1, r2, m1, m2. Two waits: m1 -> r1 (20 s), m2 -> r2 (30 s);
         *     r2 is still pending when m2 arrives, so m2's wait is answered, not open. */
        snprintf(th, sizeof(th), "a%d", k);
        ev_reply("ooo", th, m + 20 * SEC_MS);
        ev_reply("ooo", th, m + 70 * SEC_MS);
        ev_message("ooo", th, m);
        ev_message("ooo", th, m + 40 * SEC_MS);
        ex(&e, m, 2, "a:ooo:threads");
        ex_answered(&e, "ooo", "UTC", m, m + 20 * SEC_MS);
        ex_answered(&e, "ooo", "UTC", m + 40 * SEC_MS, m + 70 * SEC_MS);
        ex(&e, m, 2, "a:ooo:message");
        ex(&e, m, 2, "a:ooo:reply");
        /* (b) Reply -> message -> follow-up message, the follow-up older than the reply.
         *     Event time: m1 = m + 90 s, m2 = m + 100 s, r = m + 130 s. Topic order r, m1,
         *     m2. One wait, m1 -> r (40 s): m2 is inside the wait r already answered. */
        snprintf(th, sizeof(th), "b%d", k);
        ev_reply("ooo", th, m + 130 * SEC_MS);
        ev_message("ooo", th, m + 90 * SEC_MS);
        ev_message("ooo", th, m + 100 * SEC_MS);
        ex(&e, m + 90 * SEC_MS, 1, "a:ooo:threads");
        ex_answered(&e, "ooo", "UTC", m + 90 * SEC_MS, m + 130 * SEC_MS);
        ex(&e, m, 2, "a:ooo:message");
        ex(&e, m, 1, "a:ooo:reply");
        /* (b') The same with the two messages swapped, in account "oob": topic order r,
         *     m2, m1 with m1 = m + 170 s, m2 = m + 185 s, r = m + 200 s. m2 takes r first,
         *     then m1, older, starts that wait instead: one wait, m1 -> r (30 s), counted in
         *     m1's minute (m1 and m2 sit in different minutes: the base is minute-aligned). */
        snprintf(th, sizeof(th), "c%d", k);
        ev_reply("oob", th, m + 200 * SEC_MS);
        ev_message("oob", th, m + 185 * SEC_MS);
        ev_message("oob", th, m + 170 * SEC_MS);
        ex(&e, m + 170 * SEC_MS, 1, "a:oob:threads");
        ex_answered(&e, "oob", "UTC", m + 170 * SEC_MS, m + 200 * SEC_MS);
        ex(&e, m, 2, "a:oob:message");
        ex(&e, m, 1, "a:oob:reply");
    }
    /* By hand, over the 3 rounds: "ooo" 9 waits, all answered, FRT sum 3 x (20 + 30 + 40) s;
     * "oob" 3 waits, all answered, FRT sum 3 x 30 s. */
    cr_assert_eq(kv_get(&e.total, "a:ooo:threads"), 9);
    cr_assert_eq(kv_get(&e.total, "a:ooo:answered"), 9);
    cr_assert_eq(kv_get(&e.total, "a:ooo:frt_ms"), 3 * 90 * SEC_MS);
    cr_assert_eq(kv_get(&e.total, "a:oob:threads"), 3);
    cr_assert_eq(kv_get(&e.total, "a:oob:answered"), 3);
    cr_assert_eq(kv_get(&e.total, "a:oob:frt_ms"), 3 * 30 * SEC_MS);
    env_produce(&env);
    const char *const sets[] = {"group_id=insights-ooo", "response.reorder=3s",
                                "response.account.ooo.sla=60s", "response.account.oob.sla=60s",
                                NULL};
    env_run(&env, "1", sets);
    env_wait(&env, 60000);
    h_sleep_ms(6000); /* a wait left open would be breached 3 s after it was read */
    env_stop(&env);

    expect_no_dead_letters(&env);
    static const char *const closed[] = {"a:ooo:frt*", "a:oob:frt*", NULL};
    compare(env.c, "total", -1, &e.total, closed);
    compare(env.c, "1h", at(&e), &e.w1h, closed);
    compare_days(env.c, &e.total);
    for (int a = 0; a < 2; a++) {
        const char *acct = a ? "oob" : "ooo";
        int64_t open = hget_int(env.c, P "rt:open", acct);
        cr_expect_eq(open, 0, P "rt:open %s = %lld: every wait was answered", acct,
                     (long long)open);
    }
    /* (b'): each wait moved to m1's minute, m2's minute holds none. */
    for (int k = 0; k < 3; k++) {
        int64_t m1 = base + k * 3 * MIN_MS + 170 * SEC_MS, m2 = m1 + 15 * SEC_MS;
        cr_expect_eq(minute_field(env.c, m1, "a:oob:threads"), 1, "oob round %d: m1's minute", k);
        cr_expect_eq(minute_field(env.c, m1, "a:oob:answered"), 1, "oob round %d", k);
        cr_expect_eq(minute_field(env.c, m1, "a:oob:frt_ms"), 30 * SEC_MS, "oob round %d", k);
        cr_expect_eq(minute_field(env.c, m2, "a:oob:threads"), 0, "oob round %d: m2's minute", k);
        cr_expect_eq(minute_field(env.c, m2, "a:oob:answered"), 0, "oob round %d", k);
    }
    struct sla_alert al[64];
    int n = read_sla_alerts(env.c, al, 64);
    for (int i = 0; i < n; i++) {
        cr_expect_fail("false sla alert %s (%s): message_ts_ms %lld, every wait was answered",
                       al[i].id, al[i].to, (long long)al[i].msg_ts);
    }
    ex_free(&e);
    env_finish(&env);
}

/* =========================================================================================
 * 3c. The response rate of a window counts its answered waits among the waits it opened:
 *     answered and FRT go to the minute of the message, so a rate never exceeds 100 %.
 * ========================================================================================= */

Test(insights_e2e, answers_count_in_the_minute_of_the_message, .timeout = 120,
     .fini = env_cleanup)
{
    static struct env env; /* static: .fini reads it after an assertion unwound the test */
    env_start(&env, "rrate", 1);
    struct expect e = {.now = h_now_ms()};
    /* A wait opened 75 minutes ago (before the 1 h window) and answered 40 minutes ago
     * (inside it): the window holds the reply but neither the wait nor its answer (threads
     * 0, answered 0); were the answer counted at the reply, it would show 1 answered of 0
     * waits. */
    int64_t old_m = e.now - 75 * MIN_MS, old_r = e.now - 40 * MIN_MS;
    ev_message("rr", "old", old_m);
    ev_reply("rr", "old", old_r);
    ex(&e, old_m, 1, "a:rr:message");
    ex(&e, old_m, 1, "a:rr:threads");
    ex(&e, old_r, 1, "a:rr:reply");
    ex_answered(&e, "rr", "UTC", old_m, old_r);
    /* A wait opened 10 s before a minute ends and answered 20 s later, in the next minute. */
    int64_t edge = (e.now - 20 * MIN_MS) / MIN_MS * MIN_MS;
    int64_t m = edge - 10 * SEC_MS, r = edge + 10 * SEC_MS;
    ev_message("rr", "edge", m);
    ev_reply("rr", "edge", r);
    ex(&e, m, 1, "a:rr:message");
    ex(&e, m, 1, "a:rr:threads");
    ex(&e, r, 1, "a:rr:reply");
    ex_answered(&e, "rr", "UTC", m, r);
    /* And one never answered, in the reply's minute. */
    ev_message("rr", "open", r + 5 * SEC_MS);
    ex(&e, r + 5 * SEC_MS, 1, "a:rr:message");
    ex(&e, r + 5 * SEC_MS, 1, "a:rr:threads");
    cr_assert_eq(kv_get(&e.w1h, "a:rr:threads"), 2);
    cr_assert_eq(kv_get(&e.w1h, "a:rr:answered"), 1);
    cr_assert_eq(kv_get(&e.w1h, "a:rr:reply"), 2);
    env_produce(&env);
    const char *const sets[] = {"group_id=insights-rrate", NULL};
    env_run(&env, "1", sets);
    env_wait(&env, 60000);
    env_stop(&env);

    expect_no_dead_letters(&env);
    static const char *const closed[] = {"a:rr:frt*", "a:rr:answered", "a:rr:threads", NULL};
    compare(env.c, "total", -1, &e.total, closed);
    compare(env.c, "24h", at(&e), &e.total, closed);
    compare(env.c, "1h", at(&e), &e.w1h, closed);
    compare_days(env.c, &e.total);
    /* Every window: answered <= threads. */
    static const char *const windows[] = {"total", "24h", "1h", "5m"};
    for (size_t i = 0; i < sizeof(windows) / sizeof(windows[0]); i++) {
        int64_t th = window_get(env.c, windows[i], at(&e), "a:rr:threads");
        int64_t an = window_get(env.c, windows[i], at(&e), "a:rr:answered");
        cr_expect(an <= th, "window %s: answered %lld > threads %lld (a rate above 100 %%)",
                  windows[i], (long long)an, (long long)th);
    }
    /* The minute buckets: the edge wait and its answer in the message's minute, none in the
     * reply's (which holds the reply and the open wait). */
    cr_expect_eq(minute_field(env.c, m, "a:rr:threads"), 1);
    cr_expect_eq(minute_field(env.c, m, "a:rr:answered"), 1);
    cr_expect_eq(minute_field(env.c, m, "a:rr:frt_ms"), 20 * SEC_MS);
    cr_expect_eq(minute_field(env.c, r, "a:rr:threads"), 1);
    cr_expect_eq(minute_field(env.c, r, "a:rr:answered"), 0);
    cr_expect_eq(minute_field(env.c, r, "a:rr:frt_ms"), 0);
    cr_expect_eq(minute_field(env.c, r, "a:rr:reply"), 1);
    cr_expect_eq(minute_field(env.c, old_m, "a:rr:answered"), 1);
    cr_expect_eq(minute_field(env.c, old_r, "a:rr:answered"), 0);
    ex_free(&e);
    env_finish(&env);
}

/* =========================================================================================
 * 4. Share of voice.
 * ========================================================================================= */

Test(insights_e2e, share_of_voice, .timeout = 120, .fini = env_cleanup)
{
    static struct env env; /* static: .fini reads it after an assertion unwound the test */
    env_start(&env, "sov", 3);
    struct expect e = {.now = h_now_ms()};
    /* cat = b1,b2,b3; pair = b3,b5 (b3 counts in both); b4 is in no set. */
    static const struct {
        const char *brand;
        int mentions;
        const char *sets[2];
    } brands[] = {{"b1", 30, {"cat", NULL}}, {"b2", 20, {"cat", NULL}},
                  {"b3", 12, {"cat", "pair"}}, {"b4", 9, {NULL, NULL}},
                  {"b5", 7, {"pair", NULL}}};
    int64_t base = e.now - 25 * MIN_MS;
    for (size_t b = 0; b < sizeof(brands) / sizeof(brands[0]); b++) {
        const char *br = brands[b].brand;
        for (int i = 0; i < brands[b].mentions; i++) {
            int64_t ts = base + (int64_t)(b * 100 + (size_t)i) * SEC_MS;
            int64_t followers = (int64_t)(rnd() % 50000);
            int64_t engagement = (int64_t)(rnd() % 300);
            int has_f = i % 5 != 4, has_e = i % 3 != 2; /* both optional */
            char extra[128] = "";
            if (has_f) {
                snprintf(extra, sizeof(extra), ",\"followers\":%lld", (long long)followers);
            }
            if (has_e) {
                size_t used = strlen(extra);
                snprintf(extra + used, sizeof(extra) - used, ",\"engagement\":%lld",
                         (long long)engagement);
            }
            add(br, "{\"event_id\":\"mn%zu-%d\",\"type\":\"mention\",\"ts\":%lld,\"account_id\":"
                    "\"%s\",\"user_id\":\"author%d\"%s}",
                b, i, (long long)ts, br, i, extra);
            int64_t f = has_f ? followers : 0, g = has_e ? engagement : 0;
            ex(&e, ts, 1, "a:%s:mention", br);
            ex(&e, ts, f, "a:%s:mention_reach", br);
            ex(&e, ts, g, "a:%s:mention_engagement", br);
            for (int s = 0; s < 2 && brands[b].sets[s]; s++) {
                const char *set = brands[b].sets[s];
                ex(&e, ts, 1, "v:%s|%s:mention", set, br);
                ex(&e, ts, f, "v:%s|%s:mention_reach", set, br);
                ex(&e, ts, g, "v:%s|%s:mention_engagement", set, br);
                ex(&e, ts, 1, "v:%s:mention", set);
                ex(&e, ts, f, "v:%s:mention_reach", set);
                ex(&e, ts, g, "v:%s:mention_engagement", set);
            }
        }
    }
    env_produce(&env);
    const char *const sets[] = {"group_id=insights-sov", "sov.set.cat=b1,b2,b3",
                                "sov.set.pair=b3,b5", NULL};
    env_run(&env, "1", sets);
    env_wait(&env, 60000);
    env_stop(&env);

    expect_no_dead_letters(&env);
    /* The v: namespace holds exactly the two sets' fields: nothing for b4, no b5 in cat. */
    static const char *const closed[] = {"v:*", NULL};
    compare(env.c, "total", -1, &e.total, closed);
    compare(env.c, "1h", at(&e), &e.w1h, closed);
    compare_days(env.c, &e.total);

    /* Shares of voice from what Redis holds: they add up to 100 in each set. */
    static const char *const metrics[] = {"mention", "mention_reach", "mention_engagement"};
    static const char *const members[][4] = {{"cat", "b1", "b2", "b3"}, {"pair", "b3", "b5", NULL}};
    for (int s = 0; s < 2; s++) {
        for (int m = 0; m < 3; m++) {
            char f[128];
            snprintf(f, sizeof(f), "v:%s:%s", members[s][0], metrics[m]);
            int64_t all = window_get(env.c, "total", -1, f);
            if (all <= 0) {
                cr_expect_fail("total %s is %lld: no share of voice to compute", f,
                               (long long)all);
                continue;
            }
            double share = 0;
            for (int b = 1; b < 4 && members[s][b]; b++) {
                char fb[128];
                snprintf(fb, sizeof(fb), "v:%s|%s:%s", members[s][0], members[s][b], metrics[m]);
                share += 100.0 * (double)window_get(env.c, "total", -1, fb) / (double)all;
            }
            cr_expect(fabs(share - 100.0) < 1e-9, "shares of %s add up to %.12f, not 100", f,
                      share);
        }
    }
    ex_free(&e);
    env_finish(&env);
}

/* =========================================================================================
 * 5. Referral chains, conversions, sources.
 * ========================================================================================= */

static void ev_referral(struct expect *e, const char *user, const char *referrer,
                        const char *source, int64_t ts)
{
    add("shop", "{\"event_id\":\"rf%d\",\"type\":\"referral\",\"ts\":%lld,\"account_id\":\"shop\","
                "\"user_id\":\"%s\",\"referrer_id\":\"%s\",\"source\":\"%s\"}",
        ++event_seq, (long long)ts, user, referrer, source);
    ex(e, ts, 1, "a:shop:referral");
    ex(e, ts, 1, "s:shop|%s:referral", source);
}

/* value in cents (the events carry the decimal form); content and source optional. */
static void ev_conversion(struct expect *e, const char *user, const char *value, int64_t cents,
                          const char *content, const char *source, int64_t ts)
{
    char extra[128] = "";
    if (content) {
        snprintf(extra, sizeof(extra), ",\"content_id\":\"%s\"", content);
    }
    if (source) {
        size_t used = strlen(extra);
        snprintf(extra + used, sizeof(extra) - used, ",\"source\":\"%s\"", source);
    }
    add("shop", "{\"event_id\":\"cv%d\",\"type\":\"conversion\",\"ts\":%lld,\"account_id\":"
                "\"shop\",\"user_id\":\"%s\",\"value\":%s%s}",
        ++event_seq, (long long)ts, user, value, extra);
    ex(e, ts, 1, "a:shop:conversion");
    ex(e, ts, cents, "a:shop:value_cents");
    if (content) {
        ex(e, ts, 1, "c:%s:conversion", content);
        ex(e, ts, cents, "c:%s:value_cents", content);
    }
    if (source) {
        ex(e, ts, 1, "s:shop|%s:conversion", source);
        ex(e, ts, cents, "s:shop|%s:value_cents", source);
    }
}

static void ev_content(struct expect *e, const char *type, const char *source, int64_t ts)
{
    char extra[64] = "";
    if (source) {
        snprintf(extra, sizeof(extra), ",\"source\":\"%s\"", source);
    }
    int id = ++event_seq;
    add("shop", "{\"event_id\":\"ct%d\",\"type\":\"%s\",\"ts\":%lld,\"account_id\":\"shop\","
                "\"content_id\":\"p1\",\"user_id\":\"v%d\"%s}",
        id, type, (long long)ts, id, extra);
    ex(e, ts, 1, "a:shop:%s", type);
    ex(e, ts, 1, "c:p1:%s", type);
    if (source) {
        ex(e, ts, 1, "s:shop|%s:%s", source, type);
    }
}

Test(insights_e2e, referrals_and_conversions, .timeout = 120, .fini = env_cleanup)
{
    static struct env env; /* static: .fini reads it after an assertion unwound the test */
    env_start(&env, "ref", 2);
    struct expect e = {.now = h_now_ms()};
    int64_t n = e.now;
    /* Impressions and clicks by source (one of each without a source). */
    static const char *const imp_src[] = {"newsletter", "newsletter", "newsletter", "instagram",
                                          "instagram", NULL};
    static const char *const click_src[] = {"newsletter", "newsletter", "instagram", NULL};
    for (int i = 0; i < 6; i++) {
        ev_content(&e, "impression", imp_src[i], n - 30 * MIN_MS + i * SEC_MS);
    }
    for (int i = 0; i < 4; i++) {
        ev_content(&e, "click", click_src[i], n - 29 * MIN_MS + i * SEC_MS);
    }
    /* The chain A -> B (newsletter) -> C (instagram); C converts twice. The second
     * conversion has no source, the first a different one (checkout): indirect credit goes
     * to the source of C's referral, instagram. */
    int64_t ref_b = n - 20 * MIN_MS, ref_c = n - 19 * MIN_MS;
    ev_referral(&e, "B", "A", "newsletter", ref_b);
    ev_referral(&e, "C", "B", "instagram", ref_c);
    ev_conversion(&e, "C", "10.00", 1000, "p1", "checkout", n - 18 * MIN_MS);
    ev_conversion(&e, "C", "5.5", 550, NULL, NULL, n - 17 * MIN_MS);
    for (int k = 0; k < 2; k++) {
        int64_t ts = n - (18 - k) * MIN_MS;
        int64_t cents = k ? 550 : 1000;
        ex(&e, ts, 1, "a:shop:indirect_conversions");
        ex(&e, ts, cents, "a:shop:indirect_value_cents");
        ex(&e, ts, 1, "s:shop|instagram:indirect_conversions");
        ex(&e, ts, cents, "s:shop|instagram:indirect_value_cents");
    }
    /* F converts without a referral: 19.99 -> 1999 cents (rounded: x100 is 1998.99999...). */
    ev_conversion(&e, "F", "19.99", 1999, "p1", "newsletter", n - 16 * MIN_MS);
    /* E was referred by D 2 h 15 min before converting: outside referral.window=1h, so no
     * indirect credit; the referral itself is outside the 1 h window too. */
    ev_referral(&e, "E", "D", "tiktok", n - 135 * MIN_MS);
    ev_conversion(&e, "E", "7.25", 725, NULL, NULL, n - 10 * MIN_MS);

    env_produce(&env);
    const char *const sets[] = {"group_id=insights-ref", "referral.window=1h", NULL};
    env_run(&env, "1", sets);
    env_wait(&env, 60000);
    env_stop(&env);

    expect_no_dead_letters(&env);
    /* The s: metrics the contract lists, for any source; the new a:/c: ones. */
    static const char *const closed[] = {
        "s:shop|*:click",      "s:shop|*:impression", "s:shop|*:referral",
        "s:shop|*:conversion", "s:shop|*:value_cents", "s:shop|*:indirect_*",
        "a:shop:indirect_*",   "a:shop:value_cents",  "c:p1:value_cents",
        "c:p1:conversion",     NULL};
    compare(env.c, "total", -1, &e.total, closed);
    compare(env.c, "1h", at(&e), &e.w1h, closed);
    compare_days(env.c, &e.total);

    /* Chain credit: C's referrer B and B's referrer A; D (outside the window) nothing. */
    static const struct {
        const char *key, *member;
        int64_t score;
    } z[] = {{P "cv:indirect:shop", "B", 1550}, {P "cv:indirect:shop", "A", 1550},
             {P "cv:indirect:shop", "D", -1},   {P "cv:indirect:shop", "C", -1},
             {P "cv:direct:shop", "C", 1550},   {P "cv:direct:shop", "F", 1999},
             {P "cv:direct:shop", "E", 725}};
    for (size_t i = 0; i < sizeof(z) / sizeof(z[0]); i++) {
        int64_t got = zscore(env.c, z[i].key, z[i].member);
        cr_expect_eq(got, z[i].score, "ZSCORE %s %s: expected %lld, Redis has %lld (-1 = absent)",
                     z[i].key, z[i].member, (long long)z[i].score, (long long)got);
    }
    int64_t zi = zcard(env.c, P "cv:indirect:shop"), zd = zcard(env.c, P "cv:direct:shop");
    cr_expect_eq(zi, 2, P "cv:indirect:shop has %lld members: want only A and B", (long long)zi);
    cr_expect_eq(zd, 3, P "cv:direct:shop has %lld members: want C, F and E", (long long)zd);

    /* The referral records: "<referrer>\t<source>\t<ts_ms>". */
    char want[128];
    char *got = hget_str(env.c, P "ref:shop", "B");
    snprintf(want, sizeof(want), "A\tnewsletter\t%lld", (long long)ref_b);
    cr_expect_str_eq(got, want, P "ref:shop B: \"%s\", want \"%s\"", got, want);
    free(got);
    got = hget_str(env.c, P "ref:shop", "C");
    snprintf(want, sizeof(want), "B\tinstagram\t%lld", (long long)ref_c);
    cr_expect_str_eq(got, want, P "ref:shop C: \"%s\", want \"%s\"", got, want);
    free(got);
    ex_free(&e);
    env_finish(&env);
}

/* =========================================================================================
 * 6. Segments: the segments.top_n values per account and dimension with the most volume,
 *    the rest "other" (the Space-Saving bounds themselves: test_admission.c).
 * ========================================================================================= */

static void ev_seg(struct expect *e, const char *type, const char *user, const char *region,
                   const char *segment, const char *source, int64_t ts, struct kv *reach)
{
    char extra[160] = "";
    size_t used;
    if (region) {
        snprintf(extra, sizeof(extra), ",\"region\":\"%s\"", region);
    }
    if (segment) {
        used = strlen(extra);
        snprintf(extra + used, sizeof(extra) - used, ",\"segment\":\"%s\"", segment);
    }
    if (source) {
        used = strlen(extra);
        snprintf(extra + used, sizeof(extra) - used, ",\"source\":\"%s\"", source);
    }
    int id = ++event_seq;
    add("seg", "{\"event_id\":\"sg%d\",\"type\":\"%s\",\"ts\":%lld,\"account_id\":\"seg\","
               "\"content_id\":\"post%d\",\"user_id\":\"%s\"%s}",
        id, type, (long long)ts, id % 7, user, extra);
    int eng = !strcmp(type, "like") || !strcmp(type, "click");
    const char *ents[3][2] = {{"region", region}, {"segment", segment}, {NULL, NULL}};
    for (int i = 0; ents[i][0]; i++) {
        if (!ents[i][1]) {
            continue;
        }
        /* segment values publish impression, conversion, engagement, value (not every type) */
        if (!strcmp(type, "impression") || !strcmp(type, "conversion")) {
            ex(e, ts, 1, "g:seg|%s=%s:%s", ents[i][0], ents[i][1], type);
        }
        if (eng) {
            ex(e, ts, 1, "g:seg|%s=%s:engagement", ents[i][0], ents[i][1]);
        }
        /* reach: every user with a content event, seen or acted on */
        if ((!strcmp(type, "impression") || !strcmp(type, "like") || !strcmp(type, "click")) &&
            reach) {
            char rk[160];
            snprintf(rk, sizeof(rk), "g:seg|%s=%s:reach|%s", ents[i][0], ents[i][1], user);
            if (!kv_slot(reach, rk)) {
                kv_add(reach, rk, 1);
                snprintf(rk, sizeof(rk), "g:seg|%s=%s:reach", ents[i][0], ents[i][1]);
                kv_add(reach, rk, 1);
            }
        }
    }
    /* sources publish the funnel: impression, click, referral, conversion (and value) */
    if (source && (!strcmp(type, "impression") || !strcmp(type, "click") ||
                   !strcmp(type, "referral") || !strcmp(type, "conversion"))) {
        ex(e, ts, 1, "s:seg|%s:%s", source, type);
    }
}

Test(insights_e2e, segments_fold_into_other, .timeout = 120, .fini = env_cleanup)
{
    static struct env env; /* static: .fini reads it after an assertion unwound the test */
    env_start(&env, "seg", 2);
    struct expect e = {.now = h_now_ms()};
    struct kv reach = {0}; /* "<entity>:reach|<user>" seen, "<entity>:reach" -> distinct users */
    int64_t ts = e.now - 28 * MIN_MS;
    /* First the three regions that will be admitted (exact), segments s1, s2 and sources
     * src1..src3: heavy enough (>= 32 events each, against a minimum counter of at most
     * N/m = 300/12) that the 50 lighter z regions after them never outrank or evict them,
     * however the processor cuts the stream into flushes. */
    static const struct {
        const char *region;
        int impressions, likes;
    } first[] = {{"r1", 50, 2}, {"r2", 30, 1}, {"r3", 40, 0}};
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < first[r].impressions; i++) {
            char user[32];
            snprintf(user, sizeof(user), "%s-u%d", first[r].region, i % 4); /* a repeat viewer */
            ev_seg(&e, "impression", user, first[r].region, i % 2 ? "s1" : "s2", NULL,
                   ts += 100, &reach);
        }
        /* the liker and the clicker only acted: reached all the same */
        for (int i = 0; i < first[r].likes; i++) {
            ev_seg(&e, "like", "liker", first[r].region, NULL, NULL, ts += 100, &reach);
        }
        char src[16];
        snprintf(src, sizeof(src), "src%d", r + 1);
        for (int i = 0; i < 5; i++) {
            ev_seg(&e, "click", "clicker", first[r].region, NULL, src, ts += 100, &reach);
        }
    }
    /* A conversion in r1: value 12.34 -> 1234 cents in g:seg|region=r1. */
    add("seg", "{\"event_id\":\"sgcv1\",\"type\":\"conversion\",\"ts\":%lld,\"account_id\":"
               "\"seg\",\"user_id\":\"buyer\",\"value\":12.34,\"region\":\"r1\"}",
        (long long)(ts += 100));
    ex(&e, ts, 1, "g:seg|region=r1:conversion");
    ex(&e, ts, 1234, "g:seg|region=r1:value_cents");
    /* Then 50 more regions, in random order and amounts, and two more sources: all "other". */
    for (int i = 0; i < 120; i++) {
        char region[16], user[32];
        int z = (int)(rnd() % 50);
        snprintf(region, sizeof(region), "z%02d", z);
        snprintf(user, sizeof(user), "zu%d", (int)(rnd() % 1000));
        const char *type = rnd() % 3 ? "impression" : "like";
        ev_seg(&e, type, user, region, NULL, NULL, ts += 100, NULL);
        if (!strcmp(type, "impression")) { /* likes count as engagement only */
            ex(&e, ts, 1, "g:seg|region=other:%s", type);
        }
        if (!strcmp(type, "like")) {
            ex(&e, ts, 1, "g:seg|region=other:engagement");
        }
    }
    for (int z = 0; z < 50; z++) { /* every z region at least once */
        char region[16];
        snprintf(region, sizeof(region), "z%02d", z);
        ev_seg(&e, "impression", "zfill", region, NULL, NULL, ts += 100, NULL);
        ex(&e, ts, 1, "g:seg|region=other:impression");
    }
    add("seg", "{\"event_id\":\"sgcv2\",\"type\":\"conversion\",\"ts\":%lld,\"account_id\":"
               "\"seg\",\"user_id\":\"buyer2\",\"value\":1.5,\"region\":\"z07\"}",
        (long long)(ts += 100));
    ex(&e, ts, 1, "g:seg|region=other:conversion");
    ex(&e, ts, 150, "g:seg|region=other:value_cents");
    for (int i = 0; i < 2; i++) { /* one click each: lighter than src1..src3 */
        char src[16];
        snprintf(src, sizeof(src), "src%d", 4 + i % 2);
        ev_seg(&e, "click", "clicker", NULL, NULL, src, ts += 100, NULL);
        ex(&e, ts, 1, "s:seg|other:click");
    }
    /* ev_seg booked the z regions under their own names: the model folds them. */
    struct expect folded = {.now = e.now};
    for (int w = 0; w < 2; w++) {
        struct kv *from = w ? &e.w1h : &e.total, *to = w ? &folded.w1h : &folded.total;
        for (size_t i = 0; i < from->n; i++) {
            if (!starts(from->k[i], "g:seg|region=z") && !starts(from->k[i], "s:seg|src4") &&
                !starts(from->k[i], "s:seg|src5")) {
                kv_add(to, from->k[i], from->v[i]);
            }
        }
    }
    cr_assert(ts < e.now - 7 * MIN_MS);

    env_produce(&env);
    const char *const sets[] = {"group_id=insights-seg", "segments.top_n=3", NULL};
    env_run(&env, "1", sets);
    env_wait(&env, 60000);

    /* Reach of the admitted regions (counted when read): exact at these sizes. */
    int64_t reach_deadline = h_now_ms() + 15000;
    for (int r = 0; r < 3; r++) {
        char f[64];
        snprintf(f, sizeof(f), "g:seg|region=%s:reach", first[r].region);
        int64_t want = kv_get(&reach, f), got = 0;
        int64_t deadline = reach_deadline;
        while ((got = window_get(env.c, "total", -1, f)) != want && h_now_ms() < deadline) {
            h_sleep_ms(200);
        }
        cr_expect_eq(got, want, "total %s: expected %lld users reached, Redis has %lld", f,
                     (long long)want, (long long)got);
    }
    env_stop(&env);

    expect_no_dead_letters(&env);
    static const char *const closed[] = {"s:seg|*:click", "g:seg|*:value_cents",
                                         "g:seg|*:conversion", NULL};
    compare(env.c, "total", -1, &folded.total, closed);
    compare(env.c, "1h", at(&folded), &folded.w1h, closed);

    /* No g:seg|region=<v> entity but r1..r3 and other, lifetime and in the 1 h window. */
    static const char *const windows[] = {"total", "1h"};
    for (int h = 0; h < 2; h++) {
        struct kv act = {0};
        load_window(env.c, windows[h], at(&folded), &act);
        for (size_t i = 0; i < act.n; i++) {
            const char *pre = "g:seg|region=";
            if (!starts(act.k[i], pre)) {
                continue;
            }
            const char *v = act.k[i] + strlen(pre);
            size_t len = (size_t)(strrchr(v, ':') - v);
            int ok = (len == 2 && (!strncmp(v, "r1", 2) || !strncmp(v, "r2", 2) ||
                                   !strncmp(v, "r3", 2))) ||
                     (len == 5 && !strncmp(v, "other", 5));
            cr_expect(ok, "window %s: %s: only r1, r2, r3 and other may exist", windows[h],
                      act.k[i]);
        }
        kv_free(&act);
    }
    char set[256];
    smembers(env.c, P "seg:seg:region", set, sizeof(set));
    cr_expect_str_eq(set, "r1,r2,r3", P "seg:seg:region is {%s}: want the three heaviest",
                     set);
    smembers(env.c, P "seg:seg:source", set, sizeof(set));
    cr_expect_str_eq(set, "src1,src2,src3",
                     P "seg:seg:source is {%s}: want the three heaviest sources", set);
    smembers(env.c, P "seg:seg:segment", set, sizeof(set));
    cr_expect_str_eq(set, "s1,s2", P "seg:seg:segment is {%s}: want both (under top_n)", set);
    kv_free(&reach);
    ex_free(&folded);
    ex_free(&e);
    env_finish(&env);
}

/* ---- goals ---- */

/* The "goal" alerts in the stream, as "<alert_id> <to>" lines. */
static int read_goal_alerts(redisContext *c, char out[][128], int max)
{
    redisReply *r = redisCommand(c, "XRANGE " P "alerts - +");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY);
    int n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        const char *kind = "", *json = NULL;
        for (size_t j = 0; j + 1 < f->elements; j += 2) {
            if (!strcmp(f->element[j]->str, "kind")) {
                kind = f->element[j + 1]->str;
            } else if (!strcmp(f->element[j]->str, "json")) {
                json = f->element[j + 1]->str;
            }
        }
        if (strcmp(kind, "goal") != 0) {
            continue;
        }
        cJSON *a = cJSON_Parse(json ? json : "");
        cr_assert(a, "goal alert without JSON");
        const cJSON *id = cJSON_GetObjectItem(a, "alert_id"), *to = cJSON_GetObjectItem(a, "to");
        cr_assert(cJSON_IsString(id) && cJSON_IsString(to));
        cr_assert(n < max);
        snprintf(out[n++], 128, "%s %s", id->valuestring, to->valuestring);
        cJSON_Delete(a);
    }
    freeReplyObject(r);
    return n;
}

static double hget_num(redisContext *c, const char *key, const char *field)
{
    char *s = hget_str(c, key, field);
    double v = s ? strtod(s, NULL) : -1;
    free(s);
    return v;
}

/* Two goals, evaluated every 300 ms from the daily buckets: "conv" (at least 3 conversions
 * in 7 days from today) is on track with 2 and reached with the third: one "reached" alert;
 * "care" (response rate at least 90 %) sees 1 of 2 waits answered, 50 %: one "off_track"
 * alert. A kill -9 and a restart re-evaluate both and must repeat neither. */
Test(insights_e2e, goals_progress_and_alerts_once, .timeout = 200, .fini = env_cleanup)
{
    static struct env env;
    env_start(&env, "goals", 2);
    int64_t n = h_now_ms();
    /* The period starts on the UTC day of a minute ago, so events of the last seconds are
     * inside it also right after midnight. */
    time_t day_s = (time_t)((n - MIN_MS) / 1000);
    struct tm tm;
    gmtime_r(&day_s, &tm);
    char start[64], s_conv[6][96], s_care[6][96];
    strftime(start, sizeof(start), "%Y-%m-%d", &tm);
    const char *fields[6][2] = {{"account", "shop"}, {"metric", "conversion"},
                                {"kind", "at_least"}, {"target", "3"},
                                {"start", start}, {"days", "7"}};
    for (int i = 0; i < 6; i++) {
        snprintf(s_conv[i], sizeof(s_conv[i]), "goal.conv.%s=%s", fields[i][0], fields[i][1]);
    }
    const char *care[6][2] = {{"account", "shop"}, {"metric", "response_rate"},
                              {"kind", "at_least"}, {"target", "90"},
                              {"start", start}, {"days", "2"}};
    for (int i = 0; i < 6; i++) {
        snprintf(s_care[i], sizeof(s_care[i]), "goal.care.%s=%s", care[i][0], care[i][1]);
    }
    const char *const sets[] = {"group_id=insights-goals", "goals.eval_ms=300",
                                s_conv[0], s_conv[1], s_conv[2], s_conv[3], s_conv[4],
                                s_conv[5], s_care[0], s_care[1], s_care[2], s_care[3],
                                s_care[4], s_care[5], NULL};
    struct expect e = {0};
    ev_conversion(&e, "u1", "10.00", 1000, NULL, NULL, n - 9000);
    ev_conversion(&e, "u2", "5.00", 500, NULL, NULL, n - 8000);
    ev_message("shop", "g1", n - 20000);
    ev_reply("shop", "g1", n - 10000);
    ev_message("shop", "g2", n - 15000);
    env_produce(&env);
    env_run(&env, "1", sets);
    env_wait(&env, 60000);

    /* 2 of 3 conversions: on track (expected = 3 x the elapsed part of 7 days < 1). */
    int64_t deadline = h_now_ms() + 30000;
    while (hget_num(env.c, P "goal:conv", "current") != 2 ||
           hget_num(env.c, P "goal:care", "current") < 0) {
        cr_assert(h_now_ms() < deadline, "goals not evaluated (see %s)", env.log);
        h_sleep_ms(100);
    }
    cr_expect_eq(hget_num(env.c, P "goal:conv", "on_track"), 1);
    cr_expect_eq(hget_num(env.c, P "goal:conv", "reached"), 0);
    cr_expect_eq(hget_num(env.c, P "goal:conv", "target"), 3);
    cr_expect(hget_num(env.c, P "goal:conv", "expected") < 1);
    cr_expect_eq(hget_num(env.c, P "goal:care", "current"), 50);
    cr_expect_eq(hget_num(env.c, P "goal:care", "target"), 90);
    cr_expect_eq(hget_num(env.c, P "goal:care", "on_track"), 0);

    ev_conversion(&e, "u3", "1.00", 100, NULL, NULL, h_now_ms() - 1000);
    env_produce(&env);
    env_wait(&env, 60000);
    deadline = h_now_ms() + 30000;
    while (hget_num(env.c, P "goal:conv", "reached") != 1) {
        cr_assert(h_now_ms() < deadline, "goal conv not reached (see %s)", env.log);
        h_sleep_ms(100);
    }
    kill(env.pid, SIGKILL);
    h_wait(env.pid, 10000);
    /* The restarted processor evaluates again: same states, no new alert. */
    int64_t before = (int64_t)hget_num(env.c, P "goal:conv", "updated_ms");
    env_run(&env, "2", sets);
    deadline = h_now_ms() + 60000;
    while ((int64_t)hget_num(env.c, P "goal:conv", "updated_ms") <= before + 1000) {
        cr_assert(h_now_ms() < deadline, "no evaluation after the restart (see %s)", env.log);
        env_check_alive(&env);
        h_sleep_ms(100);
    }
    char al[8][128];
    int na = read_goal_alerts(env.c, al, 8);
    cr_assert_eq(na, 2, "goal alerts: %d (%s / %s)", na, na > 0 ? al[0] : "",
                 na > 1 ? al[1] : "");
    int reached = 0, off = 0;
    for (int i = 0; i < na; i++) {
        reached += !strcmp(al[i], "goal:conv:1 reached");
        off += !strcmp(al[i], "goal:care:1 off_track");
    }
    cr_expect_eq(reached, 1, "%s / %s", al[0], al[1]);
    cr_expect_eq(off, 1, "%s / %s", al[0], al[1]);
    cr_expect_eq(hget_int(env.c, P "stats", "alerts:goal"), 2);
    cr_expect_eq(hget_num(env.c, P "goal:conv", "current"), 3);
    env_stop(&env);
    env_finish(&env);
    ex_free(&e);
}
