/* tests/integration/oracle.c - see oracle.h. Deliberately simple: linear lists and
 * string keys, a different shape from the processor's aggregation, so the two cannot
 * share a mistake. */
#define _DEFAULT_SOURCE /* timegm */
#include "tests/integration/oracle.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_FIELDS (1 << 20)

/* A flat string -> int64 map (open addressing). */
struct map {
    char **k;
    int64_t *v;
    size_t n, cap;
};

static uint64_t h64(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    while (*s) {
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    }
    return h;
}

static int64_t *map_slot(struct map *m, const char *key, int create)
{
    if (create && (m->n + 1) * 2 > m->cap) {
        struct map big = {0};
        big.cap = m->cap ? m->cap * 2 : 1024;
        big.k = calloc(big.cap, sizeof(char *));
        big.v = calloc(big.cap, sizeof(int64_t));
        for (size_t i = 0; i < m->cap; i++) {
            if (m->k[i]) {
                size_t j = h64(m->k[i]) & (big.cap - 1);
                while (big.k[j]) {
                    j = (j + 1) & (big.cap - 1);
                }
                big.k[j] = m->k[i];
                big.v[j] = m->v[i];
            }
        }
        free(m->k);
        free(m->v);
        big.n = m->n;
        *m = big;
    }
    if (!m->cap) {
        return NULL;
    }
    size_t j = h64(key) & (m->cap - 1);
    while (m->k[j]) {
        if (strcmp(m->k[j], key) == 0) {
            return &m->v[j];
        }
        j = (j + 1) & (m->cap - 1);
    }
    if (!create) {
        return NULL;
    }
    m->k[j] = strdup(key);
    m->v[j] = 0;
    m->n++;
    return &m->v[j];
}

static void map_add(struct map *m, const char *key, int64_t d)
{
    *map_slot(m, key, 1) += d;
}

static int64_t map_get(struct map *m, const char *key)
{
    int64_t *v = map_slot(m, key, 0);
    return v ? *v : 0;
}

static void map_free(struct map *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->k[i]);
    }
    free(m->k);
    free(m->v);
}

struct oracle {
    struct map total;   /* "c:<id>:<metric>" -> value */
    struct map minute;  /* "<minute>|c:<id>:<metric>" -> value */
    struct map minutes; /* "<minute>" -> 1 */
    struct map ents;    /* "c:<id>" -> 1 */
    struct map reach;   /* "c:<id>|<user>" -> 1 (exact sets) */
    struct map reach_n; /* "c:<id>" -> distinct users */
    struct map rejects; /* reason -> count */
    int64_t rejected;
};

struct oracle *oracle_new(void)
{
    return calloc(1, sizeof(struct oracle));
}

void oracle_free(struct oracle *o)
{
    map_free(&o->total);
    map_free(&o->minute);
    map_free(&o->minutes);
    map_free(&o->ents);
    map_free(&o->reach);
    map_free(&o->reach_n);
    map_free(&o->rejects);
    free(o);
}

void oracle_add_reject(struct oracle *o, const char *reason)
{
    map_add(&o->rejects, reason, 1);
    o->rejected++;
}

static int64_t parse_ts(const cJSON *ts)
{
    if (cJSON_IsNumber(ts)) {
        return (int64_t)ts->valuedouble;
    }
    /* RFC 3339 "YYYY-MM-DDTHH:MM:SS(.mmm)Z" only: the generator's form. */
    int y, mo, d, h, mi, s, ms = 0;
    cr_assert(cJSON_IsString(ts) && sscanf(ts->valuestring, "%d-%d-%dT%d:%d:%d.%dZ", &y, &mo,
                                           &d, &h, &mi, &s, &ms) >= 6);
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi, .tm_sec = s};
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static void count(struct oracle *o, const char *ent, int64_t minute, const char *metric,
                  int64_t d)
{
    char key[512];
    snprintf(key, sizeof(key), "%s:%s", ent, metric);
    map_add(&o->total, key, d);
    char mkey[600];
    snprintf(mkey, sizeof(mkey), "%lld|%s", (long long)minute, key);
    map_add(&o->minute, mkey, d);
    snprintf(mkey, sizeof(mkey), "%lld", (long long)minute);
    map_add(&o->minutes, mkey, 1);
    map_add(&o->ents, ent, 0);
}

void oracle_add_event(struct oracle *o, const char *json, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(json, len);
    cr_assert(j, "oracle: not JSON: %.*s", (int)len, json);
    const char *type = cJSON_GetObjectItemCaseSensitive(j, "type")->valuestring;
    int64_t ts = parse_ts(cJSON_GetObjectItemCaseSensitive(j, "ts"));
    int64_t minute = ts >= 0 ? ts / 60000 : -((-ts + 59999) / 60000);
    const cJSON *acct = cJSON_GetObjectItemCaseSensitive(j, "account_id");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(j, "content_id");
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(j, "user_id");
    int eng = 0;
    if (!strcmp(type, "like") || !strcmp(type, "comment") || !strcmp(type, "share") ||
        !strcmp(type, "click")) {
        eng = 1;
    } else if (!strcmp(type, "unlike") || !strcmp(type, "comment_delete")) {
        eng = -1;
    }
    /* The entities an event counts under: its post, its account, and the breakdowns of
     * docs/insights.md (source, region, segment; the generator's vocabularies are small
     * enough that every value is admitted, none folds into "other"). */
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(j, "source");
    const cJSON *region = cJSON_GetObjectItemCaseSensitive(j, "region");
    const cJSON *segment = cJSON_GetObjectItemCaseSensitive(j, "segment");
    char ents[5][400];
    int n = 0;
    if (cJSON_IsString(content)) {
        snprintf(ents[n++], sizeof(ents[0]), "c:%s", content->valuestring);
    }
    snprintf(ents[n++], sizeof(ents[0]), "a:%s", acct->valuestring);
    if (cJSON_IsString(src)) {
        snprintf(ents[n++], sizeof(ents[0]), "s:%s|%s", acct->valuestring, src->valuestring);
    }
    if (cJSON_IsString(region)) {
        snprintf(ents[n++], sizeof(ents[0]), "g:%s|region=%s", acct->valuestring,
                 region->valuestring);
    }
    if (cJSON_IsString(segment)) {
        snprintf(ents[n++], sizeof(ents[0]), "g:%s|segment=%s", acct->valuestring,
                 segment->valuestring);
    }
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(j, "value");
    const cJSON *followers = cJSON_GetObjectItemCaseSensitive(j, "followers");
    const cJSON *engagement = cJSON_GetObjectItemCaseSensitive(j, "engagement");
    for (int i = 0; i < n; i++) {
        /* Breakdowns publish a subset (docs/insights.md): sources the funnel (impression,
         * click, referral, conversion, value); segment values impression, engagement,
         * conversion, value and reach; mention sums only on accounts. */
        char kind = ents[i][0];
        int keep_type = kind == 'c' || kind == 'a' ||
                        (kind == 's' && (!strcmp(type, "impression") || !strcmp(type, "click") ||
                                         !strcmp(type, "referral") || !strcmp(type, "conversion"))) ||
                        (kind == 'g' && (!strcmp(type, "impression") || !strcmp(type, "conversion")));
        if (keep_type) {
            count(o, ents[i], minute, type, 1);
        } else {
            map_add(&o->ents, ents[i], 0);
        }
        if (eng && kind != 's') {
            count(o, ents[i], minute, "engagement", eng);
        }
        if (!strcmp(type, "conversion") && cJSON_IsNumber(value)) {
            count(o, ents[i], minute, "value_cents", (int64_t)llround(value->valuedouble * 100));
        }
        if (!strcmp(type, "mention") && kind == 'a') {
            if (cJSON_IsNumber(followers)) {
                count(o, ents[i], minute, "mention_reach", (int64_t)followers->valuedouble);
            }
            if (cJSON_IsNumber(engagement)) {
                count(o, ents[i], minute, "mention_engagement", (int64_t)engagement->valuedouble);
            }
        }
        /* Reach: every user with a content event, seen or acted on (the eight types that
         * need content_id, docs/events.md), spelled out here rather than asked of
         * metrics/event.h so the oracle stays independent. */
        int reaches = !strcmp(type, "impression") || !strcmp(type, "view") ||
                      !strcmp(type, "like") || !strcmp(type, "unlike") ||
                      !strcmp(type, "comment") || !strcmp(type, "comment_delete") ||
                      !strcmp(type, "share") || !strcmp(type, "click");
        if (cJSON_IsString(user) && kind != 's' && reaches) {
            char rk[2600];
            snprintf(rk, sizeof(rk), "%s|%s", ents[i], user->valuestring);
            if (!map_slot(&o->reach, rk, 0)) {
                map_add(&o->reach, rk, 1);
                map_add(&o->reach_n, ents[i], 1);
            }
        }
    }
    cJSON_Delete(j);
}

/* Loads a whole hash into a map. */
static void load_hash(redisContext *c, const char *key, struct map *out)
{
    redisReply *r = redisCommand(c, "HGETALL %s", key);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY, "HGETALL %s", key);
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        char *end;
        const char *v = r->element[i + 1]->str;
        long long iv = strtoll(v, &end, 10);
        /* rates are "12.3456": store as 1e4 fixed point */
        if (*end == '.') {
            iv = llround(strtod(v, NULL) * 10000.0);
            char k2[600];
            snprintf(k2, sizeof(k2), "%s", r->element[i]->str);
            map_add(out, k2, iv);
            continue;
        }
        map_add(out, r->element[i]->str, iv);
    }
    freeReplyObject(r);
}

static const char *metric_of(const char *field)
{
    const char *p = strrchr(field, ':');
    return p ? p + 1 : field;
}

static int is_rate(const char *m)
{
    return !strcmp(m, "er_impr") || !strcmp(m, "er_reach") || !strcmp(m, "reach");
}

/* Fields that depend on state matched across events (waits answered, response-time
 * histograms, referral attribution): their exact values are tests/integration/
 * test_insights_e2e.c's job; this oracle neither expects nor forbids them. */
static int is_stateful(const char *m)
{
    return !strcmp(m, "threads") || !strcmp(m, "answered") || !strcmp(m, "frt_ms") ||
           !strcmp(m, "frtb_ms") || !strncmp(m, "frt_", 4) || !strncmp(m, "frtb_", 5) ||
           !strcmp(m, "indirect_conversions") || !strcmp(m, "indirect_value_cents");
}

/* expected: "<ent>:<metric>" -> count; actual Redis hash. Checks counts both ways and
 * er_impr for every entity with impressions. */
static void compare_counts(struct oracle *o, struct map *exp, struct map *act, const char *what,
                           struct oracle_report *rep)
{
    for (size_t i = 0; i < exp->cap; i++) {
        if (!exp->k[i]) {
            continue;
        }
        int64_t a = map_get(act, exp->k[i]);
        cr_assert_eq(a, exp->v[i], "%s: %s expected %lld, Redis has %lld", what, exp->k[i],
                     (long long)exp->v[i], (long long)a);
        rep->fields_checked++;
    }
    for (size_t i = 0; i < act->cap; i++) {
        if (!act->k[i] || is_rate(metric_of(act->k[i])) || is_stateful(metric_of(act->k[i]))) {
            continue;
        }
        int64_t *e = map_slot(exp, act->k[i], 0);
        cr_assert(e || act->v[i] == 0, "%s: unexpected field %s = %lld", what, act->k[i],
                  (long long)act->v[i]);
    }
    /* er_impr = engagement / impression x 100, to 4 decimals; absent when impressions are 0 */
    for (size_t i = 0; i < o->ents.cap; i++) {
        if (!o->ents.k[i]) {
            continue;
        }
        char fi[400], fe[400], fr[400];
        snprintf(fi, sizeof(fi), "%s:impression", o->ents.k[i]);
        snprintf(fe, sizeof(fe), "%s:engagement", o->ents.k[i]);
        snprintf(fr, sizeof(fr), "%s:er_impr", o->ents.k[i]);
        int64_t impr = map_get(exp, fi), eng = map_get(exp, fe);
        int64_t *er = map_slot(act, fr, 0);
        if (o->ents.k[i][0] != 'c' && o->ents.k[i][0] != 'a') {
            /* breakdowns carry no er_impr: their readers divide */
            cr_assert(!er, "%s: %s present", what, fr);
        } else if (impr > 0) {
            cr_assert(er, "%s: %s missing", what, fr);
            double want = (double)eng * 100.0 / (double)impr;
            cr_assert(fabs((double)*er / 10000.0 - want) < 0.00006, "%s: %s = %.4f, want %.4f",
                      what, fr, (double)*er / 10000.0, want);
            rep->fields_checked++;
        } else if (map_slot(exp, fi, 0) || map_slot(act, fi, 0)) {
            cr_assert(!er || impr > 0, "%s: %s present without impressions", what, fr);
        }
    }
}

static int64_t hget_ll(redisContext *c, const char *key, const char *field, int64_t def)
{
    redisReply *r = redisCommand(c, "HGET %s %s", key, field);
    int64_t v = def;
    if (r && r->type == REDIS_REPLY_STRING) {
        v = strtoll(r->str, NULL, 10);
    }
    if (r) {
        freeReplyObject(r);
    }
    return v;
}

void oracle_check(struct oracle *o, redisContext *c, int64_t messages,
                  struct oracle_report *rep)
{
    memset(rep, 0, sizeof(*rep));
    rep->entities = o->ents.n;
    rep->minutes = o->minutes.n;

    /* 1. Lifetime totals. */
    struct map act = {0};
    load_hash(c, "smm:total", &act);
    compare_counts(o, &o->total, &act, "smm:total", rep);

    /* 2. Reach: lifetime HyperLogLog per entity within 5 standard errors, and the
     * refreshed reach / er_reach fields consistent with it. */
    for (size_t i = 0; i < o->ents.cap; i++) {
        if (!o->ents.k[i]) {
            continue;
        }
        const char *ent = o->ents.k[i];
        if (ent[0] == 's') {
            continue; /* sources have no reach */
        }
        int64_t exact = map_get(&o->reach_n, ent);
        redisReply *r = redisCommand(c, "PFCOUNT smm:%s:reach", ent);
        cr_assert(r && r->type == REDIS_REPLY_INTEGER);
        int64_t est = r->integer;
        freeReplyObject(r);
        /* Five standard errors: with thousands of entities (posts, accounts, sources,
         * segment values) checked per run, three would fail now and then by chance. */
        double tol = exact < 50 ? 2.0 : 5 * 0.0081 * (double)exact;
        cr_assert(fabs((double)(est - exact)) <= tol, "reach of %s: HLL %lld, exact %lld", ent,
                  (long long)est, (long long)exact);
        if (exact >= 100 && fabs((double)(est - exact)) / (double)exact > rep->max_reach_error) {
            rep->max_reach_error = fabs((double)(est - exact)) / (double)exact;
        }
        char f[400];
        snprintf(f, sizeof(f), "%s:reach", ent);
        int64_t *stored = map_slot(&act, f, 0);
        if (exact > 0) {
            cr_assert(stored && *stored == est, "%s = %lld, PFCOUNT says %lld", f,
                      stored ? (long long)*stored : -1LL, (long long)est);
            snprintf(f, sizeof(f), "%s:engagement", ent);
            double want = (double)map_get(&o->total, f) * 100.0 / (double)est;
            snprintf(f, sizeof(f), "%s:er_reach", ent);
            int64_t *er = map_slot(&act, f, 0);
            cr_assert(er && fabs((double)*er / 10000.0 - want) < 0.00006, "%s wrong", f);
            rep->fields_checked += 2;
        }
    }
    map_free(&act);

    /* 3. Minute buckets, exactly. */
    for (size_t i = 0; i < o->minutes.cap; i++) {
        if (!o->minutes.k[i]) {
            continue;
        }
        struct map exp = {0}, got = {0};
        size_t plen = strlen(o->minutes.k[i]);
        for (size_t j = 0; j < o->minute.cap; j++) {
            if (o->minute.k[j] && !strncmp(o->minute.k[j], o->minutes.k[i], plen) &&
                o->minute.k[j][plen] == '|') {
                map_add(&exp, o->minute.k[j] + plen + 1, o->minute.v[j]);
            }
        }
        char key[64];
        snprintf(key, sizeof(key), "smm:m:%s", o->minutes.k[i]);
        load_hash(c, key, &got);
        for (size_t j = 0; j < exp.cap; j++) {
            if (exp.k[j]) {
                cr_assert_eq(map_get(&got, exp.k[j]), exp.v[j], "%s %s: expected %lld, got %lld",
                             key, exp.k[j], (long long)exp.v[j],
                             (long long)map_get(&got, exp.k[j]));
                rep->fields_checked++;
            }
        }
        for (size_t j = 0; j < got.cap; j++) {
            cr_assert(!got.k[j] || got.v[j] == 0 || map_slot(&exp, got.k[j], 0) ||
                          is_stateful(metric_of(got.k[j])),
                      "%s: unexpected %s", key, got.k[j]);
        }
        map_free(&exp);
        map_free(&got);
    }

    /* 4. Rolling windows: sum of the buckets newer than each window's retirement mark. */
    static const char *const labels[] = {"5m", "1h", "24h"};
    for (int w = 0; w < 3; w++) {
        char mark[32];
        snprintf(mark, sizeof(mark), "retired:%s", labels[w]);
        int64_t retired = hget_ll(c, "smm:meta", mark, INT64_MIN);
        cr_assert(retired != INT64_MIN, "smm:meta %s missing", mark);
        struct map exp = {0}, got = {0};
        for (size_t j = 0; j < o->minute.cap; j++) {
            if (o->minute.k[j] && strtoll(o->minute.k[j], NULL, 10) > retired) {
                map_add(&exp, strchr(o->minute.k[j], '|') + 1, o->minute.v[j]);
            }
        }
        char key[32];
        snprintf(key, sizeof(key), "smm:w:%s", labels[w]);
        load_hash(c, key, &got);
        for (size_t j = 0; j < exp.cap; j++) {
            if (exp.k[j]) {
                cr_assert_eq(map_get(&got, exp.k[j]), exp.v[j], "%s %s: expected %lld, got %lld",
                             key, exp.k[j], (long long)exp.v[j],
                             (long long)map_get(&got, exp.k[j]));
                rep->fields_checked++;
            }
        }
        for (size_t j = 0; j < got.cap; j++) {
            if (got.k[j] && !is_rate(metric_of(got.k[j])) && !is_stateful(metric_of(got.k[j]))) {
                cr_assert(got.v[j] != 0, "%s: zero field %s kept", key, got.k[j]);
                cr_assert(map_slot(&exp, got.k[j], 0), "%s: unexpected %s", key, got.k[j]);
            }
        }
        map_free(&exp);
        map_free(&got);
    }

    /* 5. Exactly-once statistics and dead letters per reason. */
    cr_assert_eq(hget_ll(c, "smm:stats", "messages", 0), messages, "smm:stats messages");
    cr_assert_eq(hget_ll(c, "smm:stats", "dead_letter", 0), o->rejected, "smm:stats dead_letter");
    cr_assert_eq(hget_ll(c, "smm:stats", "events_counted", 0), messages - o->rejected,
                 "smm:stats events_counted");
    for (size_t i = 0; i < o->rejects.cap; i++) {
        if (o->rejects.k[i]) {
            char f[128];
            snprintf(f, sizeof(f), "dead_letter:%s", o->rejects.k[i]);
            cr_assert_eq(hget_ll(c, "smm:stats", f, 0), o->rejects.v[i], "smm:stats %s", f);
        }
    }
    /* 6. Offsets: every partition's next offset, summed, is the number of messages. */
    redisReply *r = redisCommand(c, "HVALS smm:offsets");
    int64_t sum = 0;
    for (size_t i = 0; r && i < r->elements; i++) {
        sum += strtoll(r->element[i]->str, NULL, 10);
    }
    freeReplyObject(r);
    cr_assert_eq(sum, messages, "sum of stored offsets %lld != messages %lld", (long long)sum,
                 (long long)messages);
}

/* ---- oracle_diff: the same expectation, measured instead of asserted ---- */

static const char *const event_types[] = {
    "impression", "view",     "like",    "unlike",  "comment", "comment_delete", "share",
    "click",      "referral", "conversion", "mention", "message", "reply",       "follow"};

static int is_event_type(const char *m)
{
    for (size_t i = 0; i < sizeof(event_types) / sizeof(event_types[0]); i++) {
        if (!strcmp(m, event_types[i])) {
            return 1;
        }
    }
    return 0;
}

/* An account per-type field "a:<id>:<type>" (ids may contain ':'; the metric is the part
 * after the last one). */
static int is_account_event_field(const char *f)
{
    return f[0] == 'a' && f[1] == ':' && is_event_type(metric_of(f));
}

/* load_hash without asserting: 0, or -1 on a Redis error. */
static int load_hash_try(redisContext *c, const char *key, struct map *out)
{
    redisReply *r = redisCommand(c, "HGETALL %s", key);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r) {
            freeReplyObject(r);
        }
        return -1;
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *v = r->element[i + 1]->str;
        char *end;
        long long iv = strtoll(v, &end, 10);
        if (*end == '.') {
            iv = llround(strtod(v, NULL) * 10000.0);
        }
        map_add(out, r->element[i]->str, iv);
    }
    freeReplyObject(r);
    return 0;
}

/* Counts the count fields (not rates, not reach) where exp and act differ, both ways. */
static int64_t count_differing(struct map *exp, struct map *act)
{
    int64_t n = 0;
    for (size_t i = 0; i < exp->cap; i++) {
        if (exp->k[i] && map_get(act, exp->k[i]) != exp->v[i]) {
            n++;
        }
    }
    for (size_t i = 0; i < act->cap; i++) {
        if (act->k[i] && !is_rate(metric_of(act->k[i])) && !is_stateful(metric_of(act->k[i])) &&
            act->v[i] != 0 && !map_slot(exp, act->k[i], 0)) {
            n++;
        }
    }
    return n;
}

int oracle_diff(struct oracle *o, redisContext *c, struct oracle_diff *d)
{
    memset(d, 0, sizeof(*d));
    d->expected_dead_letter = o->rejected;
    int rc = 0;

    /* 1. Lifetime totals: event units from the account per-type fields. */
    struct map act = {0};
    if (load_hash_try(c, "smm:total", &act) != 0) {
        rc = -1;
    }
    for (size_t i = 0; i < o->total.cap; i++) {
        if (o->total.k[i] && is_account_event_field(o->total.k[i])) {
            int64_t e = o->total.v[i], a = map_get(&act, o->total.k[i]);
            d->expected_events += e;
            d->lost += e > a ? e - a : 0;
            d->double_counted += a > e ? a - e : 0;
        }
    }
    for (size_t i = 0; i < act.cap; i++) {
        if (act.k[i] && is_account_event_field(act.k[i])) {
            d->counted += act.v[i];
            if (!map_slot(&o->total, act.k[i], 0) && act.v[i] > 0) {
                d->double_counted += act.v[i];
            }
        }
    }
    d->fields_differing += count_differing(&o->total, &act);
    map_free(&act);

    /* 2. Minute buckets the oracle expects. */
    for (size_t i = 0; i < o->minutes.cap; i++) {
        if (!o->minutes.k[i]) {
            continue;
        }
        struct map exp = {0}, got = {0};
        size_t plen = strlen(o->minutes.k[i]);
        for (size_t j = 0; j < o->minute.cap; j++) {
            if (o->minute.k[j] && !strncmp(o->minute.k[j], o->minutes.k[i], plen) &&
                o->minute.k[j][plen] == '|') {
                map_add(&exp, o->minute.k[j] + plen + 1, o->minute.v[j]);
            }
        }
        char key[64];
        snprintf(key, sizeof(key), "smm:m:%s", o->minutes.k[i]);
        if (load_hash_try(c, key, &got) != 0) {
            rc = -1;
        }
        d->fields_differing += count_differing(&exp, &got);
        map_free(&exp);
        map_free(&got);
    }

    /* 3. Windows, given the retirement markers Redis holds. */
    static const char *const labels[] = {"5m", "1h", "24h"};
    for (int w = 0; w < 3; w++) {
        char mark[32], key[32];
        snprintf(mark, sizeof(mark), "retired:%s", labels[w]);
        int64_t retired = hget_ll(c, "smm:meta", mark, INT64_MIN);
        struct map exp = {0}, got = {0};
        for (size_t j = 0; j < o->minute.cap; j++) {
            if (o->minute.k[j] && strtoll(o->minute.k[j], NULL, 10) > retired) {
                map_add(&exp, strchr(o->minute.k[j], '|') + 1, o->minute.v[j]);
            }
        }
        snprintf(key, sizeof(key), "smm:w:%s", labels[w]);
        if (load_hash_try(c, key, &got) != 0) {
            rc = -1;
        }
        d->fields_differing += count_differing(&exp, &got);
        map_free(&exp);
        map_free(&got);
    }

    /* 4. Exactly-once statistics. */
    d->stats_messages = hget_ll(c, "smm:stats", "messages", 0);
    d->stats_counted = hget_ll(c, "smm:stats", "events_counted", 0);
    d->stats_dead_letter = hget_ll(c, "smm:stats", "dead_letter", 0);
    return rc;
}
