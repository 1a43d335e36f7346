/* tests/integration/oracle.c - see oracle.h. Deliberately simple: linear lists and
 * string keys, a different shape from the processor's aggregation and from the Function
 * library's reads, so none of them can share a mistake with it.
 *
 * What it expects of Redis (docs/redis-keys.md, "Counters", "Reading", "Reach"):
 * - every entity hash `smm:{N}:<entity>`, N from Redis' own SHA-1 (EVAL, cached per
 *   entity), holds `t` = the lifetime counters exactly, every `m<minute>` field of the last
 *   180 minutes before the newest event minute and every `h<hour>` field of the last 192
 *   hours = the bucket exactly (older bucket fields may be pruned, but one that is there is
 *   exact), nothing else but `p`; no entity hash the oracle does not know carries counters;
 * - `smm_get` at that minute and the one before, for every entity and window: the
 *   counters summed from the buckets by the contract's rule (minute-granular up to 180
 *   minutes, else the current hour's minutes plus n whole hours, the length rounded up to
 *   whole hours), nonzero ones only,
 *   er_impr (4 decimals, absent without impressions), lifetime reach (contents, accounts,
 *   segment values; equal to PFCOUNT of the sketch) and window reach (accounts: minute
 *   sketches up to 60 minutes, hour-granular like the counters up to 48 hours, else whole
 *   UTC days) within the
 *   HyperLogLog's error of the exact sets, er_reach consistent with that reach; the
 *   account hour sketches are expected for every hour with events (the tests' events are
 *   younger than the longest window plus window.grace_ms, which keeps them);
 * - `smm_top` for lifetime and some windows: the oracle's top 10 posts by engagement
 *   (ties by id), posts with engagement above 0 only.
 * Counts of matched-state metrics (response times, referral credit) are not expected or
 * forbidden here: tests/integration/test_insights_e2e.c checks them. */
#define _DEFAULT_SOURCE /* timegm */
#include "tests/integration/oracle.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MINUTES_KEPT 180 /* m<minute> fields are kept this long after the minute */
#define HOURS_KEPT 192   /* h<hour> fields: 8 days */
#define PIPE 512         /* commands in flight per pipelined round */

/* ---- a flat string -> int64 map (open addressing) ---- */

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
        big.cap = m->cap ? m->cap * 2 : 16;
        big.k = calloc(big.cap, sizeof(char *));
        big.v = calloc(big.cap, sizeof(int64_t));
        cr_assert(big.k && big.v);
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
    memset(m, 0, sizeof(*m));
}

static int64_t fdiv(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* ---- the expectation ---- */

struct ent {
    char *id;    /* "c:<content>", "a:<account>", "s:...", "g:..." */
    struct map t;     /* metric -> lifetime value */
    struct map b;     /* "m<minute>:<metric>", "h<hour>:<metric>" -> value */
    struct map users; /* user -> 1: the lifetime reach set */
    struct map mu;    /* accounts: "<minute>|<user>" -> 1, for window reach */
    int64_t shard;    /* of shards_of below; -1 until asked */
};

struct oracle {
    struct map idx; /* entity -> index + 1 in e[] */
    struct ent **e;
    size_t n_e, cap_e;
    struct map minutes; /* "<minute>" -> events */
    struct map rejects; /* reason -> count */
    int64_t rejected;
    int64_t newest; /* newest event minute */
    int any;
    int64_t shards_of; /* the shard count e[]->shard was computed for (0: none) */
};

struct oracle *oracle_new(void)
{
    return calloc(1, sizeof(struct oracle));
}

static void ent_free(struct ent *e)
{
    free(e->id);
    map_free(&e->t);
    map_free(&e->b);
    map_free(&e->users);
    map_free(&e->mu);
    free(e);
}

void oracle_free(struct oracle *o)
{
    for (size_t i = 0; i < o->n_e; i++) {
        ent_free(o->e[i]);
    }
    free(o->e);
    map_free(&o->idx);
    map_free(&o->minutes);
    map_free(&o->rejects);
    free(o);
}

static struct ent *ent_get(struct oracle *o, const char *id)
{
    int64_t *slot = map_slot(&o->idx, id, 1);
    if (*slot) {
        return o->e[*slot - 1];
    }
    if (o->n_e == o->cap_e) {
        o->cap_e = o->cap_e ? o->cap_e * 2 : 256;
        o->e = realloc(o->e, o->cap_e * sizeof(*o->e));
        cr_assert(o->e);
    }
    struct ent *e = calloc(1, sizeof(*e));
    cr_assert(e);
    e->id = strdup(id);
    e->shard = -1;
    o->e[o->n_e++] = e;
    *slot = (int64_t)o->n_e;
    return e;
}

static struct ent *ent_find(struct oracle *o, const char *id)
{
    int64_t i = map_get(&o->idx, id);
    return i ? o->e[i - 1] : NULL;
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

static void count(struct ent *e, int64_t minute, const char *metric, int64_t d)
{
    char key[128];
    map_add(&e->t, metric, d);
    snprintf(key, sizeof(key), "m%lld:%s", (long long)minute, metric);
    map_add(&e->b, key, d);
    snprintf(key, sizeof(key), "h%lld:%s", (long long)fdiv(minute, 60), metric);
    map_add(&e->b, key, d);
}

void oracle_add_event(struct oracle *o, const char *json, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(json, len);
    cr_assert(j, "oracle: not JSON: %.*s", (int)len, json);
    const char *type = cJSON_GetObjectItemCaseSensitive(j, "type")->valuestring;
    int64_t ts = parse_ts(cJSON_GetObjectItemCaseSensitive(j, "ts"));
    int64_t minute = fdiv(ts, 60000);
    if (!o->any || minute > o->newest) {
        o->newest = minute;
        o->any = 1;
    }
    char mk[32];
    snprintf(mk, sizeof(mk), "%lld", (long long)minute);
    map_add(&o->minutes, mk, 1);
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
        struct ent *e = ent_get(o, ents[i]);
        /* Breakdowns publish a subset (docs/insights.md): sources the funnel (impression,
         * click, referral, conversion, value); segment values impression, engagement,
         * conversion, value and reach; mention sums only on accounts. */
        char kind = ents[i][0];
        int keep_type = kind == 'c' || kind == 'a' ||
                        (kind == 's' && (!strcmp(type, "impression") || !strcmp(type, "click") ||
                                         !strcmp(type, "referral") || !strcmp(type, "conversion"))) ||
                        (kind == 'g' && (!strcmp(type, "impression") || !strcmp(type, "conversion")));
        if (keep_type) {
            count(e, minute, type, 1);
        }
        if (eng && kind != 's') {
            count(e, minute, "engagement", eng);
        }
        if (!strcmp(type, "conversion") && cJSON_IsNumber(value)) {
            count(e, minute, "value_cents", (int64_t)llround(value->valuedouble * 100));
        }
        if (!strcmp(type, "mention") && kind == 'a') {
            if (cJSON_IsNumber(followers)) {
                count(e, minute, "mention_reach", (int64_t)followers->valuedouble);
            }
            if (cJSON_IsNumber(engagement)) {
                count(e, minute, "mention_engagement", (int64_t)engagement->valuedouble);
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
            map_add(&e->users, user->valuestring, 1);
            if (kind == 'a') {
                char rk[600];
                snprintf(rk, sizeof(rk), "%lld|%s", (long long)minute, user->valuestring);
                map_add(&e->mu, rk, 1);
            }
        }
    }
    cJSON_Delete(j);
}

/* ---- what is compared, and how a difference is reported ---- */

static const char *metric_of(const char *field)
{
    const char *p = strrchr(field, ':');
    return p ? p + 1 : field;
}

/* Metrics that depend on state matched across events (waits answered, response-time
 * histograms, referral attribution): their exact values are tests/integration/
 * test_insights_e2e.c's job; this oracle neither expects nor forbids them. */
static int is_stateful(const char *m)
{
    return !strcmp(m, "threads") || !strcmp(m, "answered") || !strcmp(m, "frt_ms") ||
           !strcmp(m, "frtb_ms") || !strncmp(m, "frt_", 4) || !strncmp(m, "frtb_", 5) ||
           !strcmp(m, "indirect_conversions") || !strcmp(m, "indirect_value_cents");
}

/* Differences of one kind of figure: counters (fields_differing) or the rest (reach,
 * rates, ranks). The first one is kept for the failure message. */
struct tally {
    int64_t diff;
    size_t checked;
    char first[700];
};

static void mismatch(struct tally *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mismatch(struct tally *t, const char *fmt, ...)
{
    if (t->diff++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->first, sizeof(t->first), fmt, ap);
        va_end(ap);
    }
}

/* Reading Redis: in the check every failure fails the test at once; in the diff it is
 * recorded (rc -1) and the figure counts as unread. */
struct rd {
    redisContext *c;
    int strict;
    int failed;
};

static int reply_ok(struct rd *r, redisReply *rep, const char *what)
{
    if (rep && rep->type != REDIS_REPLY_ERROR) {
        return 1;
    }
    if (r->strict) {
        cr_assert_fail("oracle: %s: %s", what,
                       rep ? rep->str : (r->c->err ? r->c->errstr : "no reply"));
    }
    r->failed = 1;
    return 0;
}

/* Runs n commands pipelined, PIPE at a time: make(i) appends command i, use(i, reply) reads
 * its reply (NULL when Redis failed) and returns 1 when it keeps it (then it frees it). */
static void pipeline(struct rd *r, size_t n, void (*make)(void *arg, size_t i, redisContext *c),
                     int (*use)(void *arg, size_t i, redisReply *rep), void *arg,
                     const char *what)
{
    for (size_t at = 0; at < n; at += PIPE) {
        size_t end = at + PIPE < n ? at + PIPE : n;
        for (size_t i = at; i < end; i++) {
            make(arg, i, r->c);
        }
        for (size_t i = at; i < end; i++) {
            void *rep = NULL;
            if (redisGetReply(r->c, &rep) != REDIS_OK) {
                rep = NULL;
            }
            int kept = use(arg, i, reply_ok(r, rep, what) ? rep : NULL);
            if (rep && !kept) {
                freeReplyObject(rep);
            }
        }
    }
}

int oracle_parse_packed(const char *s, size_t len, int *zeros,
                        void (*add)(void *arg, const char *name, int64_t value), void *arg)
{
    int pairs = 0, z = 0;
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && s[end] != ',') {
            end++;
        }
        const char *eq = memchr(s + i, '=', end - i);
        if (!eq || eq == s + i) {
            return -1;
        }
        size_t nlen = (size_t)(eq - (s + i));
        char name[128], num[32];
        size_t vlen = (size_t)(s + end - (eq + 1));
        if (nlen >= sizeof(name) || vlen == 0 || vlen >= sizeof(num)) {
            return -1;
        }
        memcpy(name, s + i, nlen);
        name[nlen] = '\0';
        memcpy(num, eq + 1, vlen);
        num[vlen] = '\0';
        char *stop;
        long long v = strtoll(num, &stop, 10);
        if (*stop || !(num[0] == '-' || (num[0] >= '0' && num[0] <= '9'))) {
            return -1;
        }
        /* a name given twice: look for ",name=" or a leading "name=" before this pair */
        for (size_t k = 0; k < i; k++) {
            if ((k == 0 || s[k - 1] == ',') && k + nlen < i && !memcmp(s + k, name, nlen) &&
                s[k + nlen] == '=') {
                return -1;
            }
        }
        z += v == 0;
        add(arg, name, (int64_t)v);
        pairs++;
        i = end + 1;
        if (end + 1 == len) {
            return -1; /* a trailing ',' */
        }
    }
    if (zeros) {
        *zeros = z;
    }
    return pairs;
}

static void add_to_map(void *arg, const char *name, int64_t value)
{
    map_add(arg, name, value);
}

/* ---- shards ---- */

static int64_t read_shards(struct rd *r)
{
    redisReply *rep = redisCommand(r->c, "HGET smm:meta shards");
    int64_t s = -1;
    if (reply_ok(r, rep, "HGET smm:meta shards")) {
        if (rep->type == REDIS_REPLY_STRING) {
            char *end;
            s = strtoll(rep->str, &end, 10);
            if (*end || s <= 0) {
                s = -1;
            }
        }
        if (s < 0 && r->strict) {
            cr_assert_fail("oracle: smm:meta shards is %s, want a positive integer",
                           rep->type == REDIS_REPLY_STRING ? rep->str : "missing");
        }
    }
    if (rep) {
        freeReplyObject(rep);
    }
    if (s < 0) {
        r->failed = 1;
    }
    return s;
}

struct shard_job {
    struct oracle *o;
    int64_t shards;
    struct ent **pending; /* entities whose shard is not known yet */
};

static void shard_make(void *arg, size_t i, redisContext *c)
{
    struct shard_job *j = arg;
    char s[32];
    snprintf(s, sizeof(s), "%lld", (long long)j->shards);
    redisAppendCommand(c,
                       "EVAL %s 0 %s %s",
                       "return tonumber(redis.sha1hex(ARGV[1]):sub(1,8),16) % tonumber(ARGV[2])",
                       j->pending[i]->id, s);
}

static int shard_use(void *arg, size_t i, redisReply *rep)
{
    struct shard_job *j = arg;
    if (rep && rep->type == REDIS_REPLY_INTEGER) {
        j->pending[i]->shard = rep->integer;
    }
    return 0;
}

/* Fills every entity's shard (computed by Redis' SHA-1, cached for this shard count). */
static void compute_shards(struct rd *r, struct oracle *o, int64_t shards)
{
    if (o->shards_of != shards) {
        for (size_t i = 0; i < o->n_e; i++) {
            o->e[i]->shard = -1;
        }
        o->shards_of = shards;
    }
    struct shard_job j = {o, shards, malloc((o->n_e + 1) * sizeof(struct ent *))};
    size_t n = 0;
    for (size_t i = 0; i < o->n_e; i++) {
        if (o->e[i]->shard < 0) {
            j.pending[n++] = o->e[i];
        }
    }
    pipeline(r, n, shard_make, shard_use, &j, "EVAL (shard of an entity)");
    free(j.pending);
}

/* ---- the entity hashes ---- */

/* What SCAN found: entity -> shard in its key (+1; -1 when found under two shards). */
struct found {
    struct map ents;
    size_t top_keys;
};

static void scan_keys(struct rd *r, struct found *f, struct tally *t)
{
    char cursor[32] = "0";
    do {
        redisReply *rep = redisCommand(r->c, "SCAN %s MATCH smm:{* COUNT 1000", cursor);
        if (!reply_ok(r, rep, "SCAN") || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
            if (rep) {
                freeReplyObject(rep);
            }
            r->failed = 1;
            return;
        }
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        redisReply *keys = rep->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            const char *k = keys->element[i]->str;
            char *end;
            long long n = strtoll(k + 5, &end, 10);
            if (end == k + 5 || end[0] != '}' || end[1] != ':') {
                mismatch(t, "key %s: not smm:{<shard>}:<entity>", k);
                continue;
            }
            const char *rest = end + 2;
            if (!strncmp(rest, "top:", 4)) {
                f->top_keys++;
                continue;
            }
            int64_t *slot = map_slot(&f->ents, rest, 1);
            if (*slot) {
                mismatch(t, "entity %s has hashes under two shards (%lld and %lld)", rest,
                         (long long)(*slot - 1), n);
                *slot = -1;
            } else {
                *slot = n + 1;
            }
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
}

/* One entity as Redis holds it. */
struct held {
    const char *id;
    struct ent *e;    /* NULL: an entity the oracle does not know */
    int64_t shard;    /* the key read */
    redisReply *hash; /* HGETALL, kept until compared */
};

struct hash_job {
    struct held *h;
};

static void hash_make(void *arg, size_t i, redisContext *c)
{
    struct hash_job *j = arg;
    char key[32];
    snprintf(key, sizeof(key), "smm:{%lld}:", (long long)j->h[i].shard);
    redisAppendCommand(c, "HGETALL %s%s", key, j->h[i].id);
}

static int hash_use(void *arg, size_t i, redisReply *rep)
{
    struct hash_job *j = arg;
    if (rep && rep->type == REDIS_REPLY_ARRAY) {
        j->h[i].hash = rep; /* compared after the last reply, freed then */
        return 1;
    }
    return 0;
}

/* exp: metric -> expected; act: metric -> stored. Counters compared both ways (absent = 0),
 * stateful metrics ignored. Returns the differences. */
static int64_t compare_counters(struct map *exp, struct map *act, struct tally *t,
                                const char *ent, const char *where)
{
    int64_t before = t->diff;
    for (size_t i = 0; i < exp->cap; i++) {
        if (exp->k[i] && !is_stateful(exp->k[i])) {
            int64_t a = map_get(act, exp->k[i]);
            if (a != exp->v[i]) {
                mismatch(t, "%s %s %s: expected %lld, Redis has %lld", ent, where, exp->k[i],
                         (long long)exp->v[i], (long long)a);
            }
            t->checked++;
        }
    }
    for (size_t i = 0; i < act->cap; i++) {
        if (act->k[i] && !is_stateful(act->k[i]) && !map_slot(exp, act->k[i], 0) &&
            act->v[i] != 0) {
            mismatch(t, "%s %s: unexpected %s = %lld", ent, where, act->k[i],
                     (long long)act->v[i]);
        }
    }
    return t->diff - before;
}

/* The expected bucket "m<minute>" / "h<hour>" of e: metric -> value. */
static void bucket_of(struct ent *e, const char *bucket, struct map *out)
{
    size_t bl = strlen(bucket);
    for (size_t i = 0; e && i < e->b.cap; i++) {
        if (e->b.k[i] && !strncmp(e->b.k[i], bucket, bl) && e->b.k[i][bl] == ':') {
            map_add(out, e->b.k[i] + bl + 1, e->b.v[i]);
        }
    }
}

/* Whether Redis must still hold the bucket field (older ones may have been pruned). */
static int bucket_kept(const struct oracle *o, char kind, int64_t b)
{
    return kind == 'm' ? b > o->newest - MINUTES_KEPT
                       : b > fdiv(o->newest, 60) - HOURS_KEPT;
}

/* Parses one packed field of h into act; malformed text or stored zeros are differences. */
static int parse_field(struct tally *t, const struct held *h, const char *field,
                       const redisReply *v, struct map *act)
{
    int zeros = 0;
    if (v->type != REDIS_REPLY_STRING ||
        oracle_parse_packed(v->str, v->len, &zeros, add_to_map, act) < 0) {
        mismatch(t, "%s field %s: malformed \"%.200s\"", h->id, field,
                 v->type == REDIS_REPLY_STRING ? v->str : "?");
        return -1;
    }
    if (zeros) {
        mismatch(t, "%s field %s: stores %d zero counters (\"%.200s\")", h->id, field, zeros,
                 v->str);
    }
    return 0;
}

/* The bucket fields of one entity hash, parsed: a link bucket l<bucket> (what the state
 * script's links yield, smm.lua write_links) adds to its bucket, as readers sum them. */
struct bucket_set {
    char **name;
    struct map *m;
    size_t n;
};

static struct map *bucket_get(struct bucket_set *bs, const char *name)
{
    for (size_t i = 0; i < bs->n; i++) {
        if (!strcmp(bs->name[i], name)) {
            return &bs->m[i];
        }
    }
    bs->name = realloc(bs->name, (bs->n + 1) * sizeof(*bs->name));
    bs->m = realloc(bs->m, (bs->n + 1) * sizeof(*bs->m));
    bs->name[bs->n] = strdup(name);
    memset(&bs->m[bs->n], 0, sizeof(bs->m[bs->n]));
    return &bs->m[bs->n++];
}

static void bucket_set_free(struct bucket_set *bs)
{
    for (size_t i = 0; i < bs->n; i++) {
        free(bs->name[i]);
        map_free(&bs->m[i]);
    }
    free(bs->name);
    free(bs->m);
}

/* Compares one entity hash with the expectation; acct_t (may be NULL) receives the parsed
 * lifetime counters. */
static void compare_hash(struct oracle *o, const struct held *h, struct tally *t,
                         struct map *acct_t)
{
    struct map seen = {0}; /* bucket fields present */
    struct bucket_set bs = {0};
    int has_t = 0;
    for (size_t i = 0; h->hash && i + 1 < h->hash->elements; i += 2) {
        const char *f = h->hash->element[i]->str;
        const redisReply *v = h->hash->element[i + 1];
        const char *b = f[0] == 'l' && (h->id[0] == 'a' || h->id[0] == 's') ? f + 1 : f;
        if (!strcmp(f, "p") || !strcmp(f, "v")) {
            /* p: the minute of the last prune; v: the version, moved by every write. */
            char *end = NULL;
            long long x = -1;
            if (v->type == REDIS_REPLY_STRING) {
                x = strtoll(v->str, &end, 10);
            }
            if (!end || !v->len || *end || x < (f[0] == 'v')) {
                mismatch(t, "%s field %s: \"%.100s\" is not a %s", h->id, f, v->str,
                         f[0] == 'p' ? "minute" : "version (1 or more)");
            }
            continue;
        }
        char *end = NULL;
        if (strcmp(b, "t") != 0 && ((b[0] != 'm' && b[0] != 'h') || !b[1] ||
                                    (strtoll(b + 1, &end, 10), *end))) {
            mismatch(t, "%s: unexpected field %s", h->id, f);
            continue;
        }
        parse_field(t, h, f, v, bucket_get(&bs, b));
    }
    for (size_t i = 0; i < bs.n; i++) {
        const char *f = bs.name[i];
        struct map *act = &bs.m[i], exp = {0};
        if (!strcmp(f, "t")) {
            has_t = 1;
            struct map none = {0};
            compare_counters(h->e ? &h->e->t : &none, act, t, h->id, "t");
            for (size_t k = 0; acct_t && k < act->cap; k++) {
                if (act->k[k]) {
                    map_add(acct_t, act->k[k], act->v[k]);
                }
            }
        } else {
            bucket_of(h->e, f, &exp);
            compare_counters(&exp, act, t, h->id, f);
            map_add(&seen, f, 1);
        }
        map_free(&exp);
    }
    bucket_set_free(&bs);
    /* Every expected bucket still kept must be there (all its counters count as missing). */
    for (size_t i = 0; h->e && i < h->e->b.cap; i++) {
        if (h->e->b.k[i] && h->e->b.v[i] != 0 && !is_stateful(metric_of(h->e->b.k[i]))) {
            char bucket[40];
            snprintf(bucket, sizeof(bucket), "%.*s",
                     (int)(strchr(h->e->b.k[i], ':') - h->e->b.k[i]), h->e->b.k[i]);
            if (!map_slot(&seen, bucket, 0) &&
                bucket_kept(o, bucket[0], strtoll(bucket + 1, NULL, 10))) {
                mismatch(t, "%s: field %s missing (%s expected %lld)", h->id, bucket,
                         h->e->b.k[i], (long long)h->e->b.v[i]);
                t->checked++;
            }
        }
    }
    if (!has_t && h->e) {
        for (size_t i = 0; i < h->e->t.cap; i++) {
            if (h->e->t.k[i] && h->e->t.v[i] != 0 && !is_stateful(h->e->t.k[i])) {
                mismatch(t, "%s: no field t (%s expected %lld)", h->id, h->e->t.k[i],
                         (long long)h->e->t.v[i]);
                t->checked++;
            }
        }
    }
    map_free(&seen);
}

/* Reads every entity hash: the oracle's (at their computed shard) and every other one
 * under the prefix. acct (may be NULL) receives "<account entity>\n<type>" -> stored
 * lifetime count. counters: differences of counters; other: keys, shards, formats. */
static void check_hashes(struct oracle *o, struct rd *r, struct tally *t, struct map *acct)
{
    int64_t shards = read_shards(r);
    if (shards < 0) {
        return;
    }
    compute_shards(r, o, shards);
    struct found f = {0};
    scan_keys(r, &f, t);
    size_t n = o->n_e + f.ents.n;
    struct held *h = calloc(n + 1, sizeof(*h));
    size_t k = 0;
    for (size_t i = 0; i < o->n_e; i++) {
        struct ent *e = o->e[i];
        if (e->shard < 0) {
            r->failed = 1;
            continue;
        }
        int64_t at = map_get(&f.ents, e->id);
        if (at > 0 && at - 1 != e->shard) {
            mismatch(t, "%s is under smm:{%lld}, its shard is %lld", e->id, (long long)(at - 1),
                     (long long)e->shard);
        }
        h[k++] = (struct held){e->id, e, e->shard, NULL};
    }
    for (size_t i = 0; i < f.ents.cap; i++) {
        if (f.ents.k[i] && !ent_find(o, f.ents.k[i]) && f.ents.v[i] > 0) {
            h[k++] = (struct held){f.ents.k[i], NULL, f.ents.v[i] - 1, NULL};
        }
    }
    struct hash_job j = {h};
    pipeline(r, k, hash_make, hash_use, &j, "HGETALL (entity hash)");
    for (size_t i = 0; i < k; i++) {
        struct map lt = {0};
        int is_acct = h[i].id[0] == 'a' && h[i].id[1] == ':';
        compare_hash(o, &h[i], t, acct && is_acct ? &lt : NULL);
        for (size_t m = 0; m < lt.cap; m++) {
            if (lt.k[m]) {
                char key[600];
                snprintf(key, sizeof(key), "%s\n%s", h[i].id, lt.k[m]);
                map_add(acct, key, lt.v[m]);
            }
        }
        map_free(&lt);
        if (h[i].hash) {
            freeReplyObject(h[i].hash);
        }
    }
    free(h);
    map_free(&f.ents);
}

/* ---- windows, rates and reach through the Function library ---- */

struct window {
    const char *name;
    int64_t minutes; /* 0: lifetime */
};

/* The configured windows (processor default "5m,1h,24h"), a window shorter than the
 * stream's minutes (2m), the edges of the minute-granular rule (180m) and of the hour
 * fields (7d), and lifetime. */
static const struct window windows[] = {{"2m", 2},     {"5m", 5},     {"1h", 60},
                                        {"180m", 180}, {"24h", 1440}, {"7d", 10080},
                                        {"total", 0}};
#define N_WINDOWS (sizeof(windows) / sizeof(windows[0]))

/* Each window is read at the newest event minute and at the minute before it (so events
 * after the minute read are left out too), lifetime once: slot i of an entity is window
 * i / 2 read at newest - i % 2. */
#define N_SLOTS (2 * N_WINDOWS - 1)

/* Whether bucket b (kind 'm' minute or 'h' hour) is part of a window of n minutes read at
 * minute now, for counters (granular_to = 180) or account reach (granular_to = 60):
 * minute-granular up to granular_to, else the current hour's minutes so far plus the
 * whole hours before it that the length takes, rounded up. */
static int in_window(int64_t n, int64_t granular_to, int64_t now, char kind, int64_t b)
{
    if (n <= granular_to) {
        return kind == 'm' && b > now - n && b <= now;
    }
    int64_t hour = fdiv(now, 60);
    if (kind == 'm') {
        return fdiv(b, 60) == hour && b <= now;
    }
    return b >= hour - (n + 59) / 60 && b < hour;
}

/* Expected counters of e in window w at minute now. */
static void window_sum(struct ent *e, const struct window *w, int64_t now, struct map *out)
{
    if (!w->minutes) {
        for (size_t i = 0; i < e->t.cap; i++) {
            if (e->t.k[i]) {
                map_add(out, e->t.k[i], e->t.v[i]);
            }
        }
        return;
    }
    for (size_t i = 0; i < e->b.cap; i++) {
        const char *k = e->b.k[i];
        if (k && in_window(w->minutes, MINUTES_KEPT, now, k[0], strtoll(k + 1, NULL, 10))) {
            map_add(out, metric_of(k), e->b.v[i]);
        }
    }
}

/* Exact unique users of account e in window w at minute now, by the sketches the window
 * unions (docs/redis-keys.md, "Reach"): minutes up to 60 minutes; up to 48 hours the
 * current hour's minutes so far plus the whole hours before it (length rounded up);
 * longer, the whole current UTC day plus the whole days before it (length rounded up). */
static int64_t window_users(struct ent *e, const struct window *w, int64_t now)
{
    if (!w->minutes) {
        return (int64_t)e->users.n;
    }
    struct map u = {0};
    for (size_t i = 0; i < e->mu.cap; i++) {
        const char *k = e->mu.k[i];
        if (!k) {
            continue;
        }
        int64_t minute = strtoll(k, NULL, 10);
        int in;
        if (w->minutes <= 60) {
            in = in_window(w->minutes, 60, now, 'm', minute);
        } else if (w->minutes <= 48 * 60) {
            in = in_window(w->minutes, 60, now, 'm', minute) ||
                 in_window(w->minutes, 60, now, 'h', fdiv(minute, 60));
        } else {
            int64_t day = fdiv(now, 1440), d = fdiv(minute, 1440);
            in = d <= day && d >= day - (w->minutes + 1439) / 1440;
        }
        if (in) {
            map_add(&u, strchr(k, '|') + 1, 1);
        }
    }
    int64_t n = (int64_t)u.n;
    map_free(&u);
    return n;
}

struct get_job {
    struct oracle *o;
    struct tally *counters, *other;
    int check_other;
    double max_reach_error;
};

static void slot_of(const struct oracle *o, size_t i, const struct window **w, int64_t *now)
{
    *w = &windows[(i % N_SLOTS) / 2];
    *now = o->newest - (int64_t)((i % N_SLOTS) % 2);
}

/* smm_get is called with FCALL: it counts reach with PFCOUNT, which Redis 7.0 refuses in
 * a function flagged no-writes (FCALL_RO needs that flag). */
static void get_make(void *arg, size_t i, redisContext *c)
{
    struct get_job *j = arg;
    struct ent *e = j->o->e[i / N_SLOTS];
    const struct window *w;
    int64_t now;
    slot_of(j->o, i, &w, &now);
    if (!w->minutes) {
        redisAppendCommand(c, "FCALL smm_get 0 smm: %s total", e->id);
    } else {
        redisAppendCommand(c, "FCALL smm_get 0 smm: %s %s %lld", e->id, w->name, (long long)now);
    }
}

/* HLL estimate against the exact count: 5 standard errors (0.81 %) and at least 2, since
 * thousands of entities are checked per run. */
static int reach_close(int64_t est, int64_t exact)
{
    double tol = exact < 50 ? 2.0 : 5 * 0.0081 * (double)exact;
    return fabs((double)(est - exact)) <= tol;
}

static int get_use(void *arg, size_t i, redisReply *rep)
{
    struct get_job *j = arg;
    struct ent *e = j->o->e[i / N_SLOTS];
    const struct window *w;
    int64_t now;
    slot_of(j->o, i, &w, &now);
    if (!rep) {
        return 0;
    }
    char where[80];
    snprintf(where, sizeof(where), "smm_get %s at %lld", w->name, (long long)now);
    struct tally *t = j->counters, *x = j->other;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2) {
        mismatch(t, "%s %s: not a flat name, value array", e->id, where);
        return 0;
    }
    struct map act = {0}, exp = {0};
    int has_er = 0, has_reach = 0, has_er_reach = 0;
    double er = 0, er_reach = 0;
    int64_t reach = 0;
    for (size_t k = 0; k + 1 < rep->elements; k += 2) {
        const redisReply *nm = rep->element[k], *v = rep->element[k + 1];
        const char *val = v->type == REDIS_REPLY_STRING ? v->str : NULL;
        char buf[32];
        if (v->type == REDIS_REPLY_INTEGER) {
            snprintf(buf, sizeof(buf), "%lld", v->integer);
            val = buf;
        }
        if (nm->type != REDIS_REPLY_STRING || !val) {
            mismatch(t, "%s %s: pair %zu is not name, value", e->id, where, k / 2);
            continue;
        }
        char *end;
        if (!strcmp(nm->str, "er_impr") || !strcmp(nm->str, "er_reach")) {
            double d = strtod(val, &end);
            if (*end || end == val) {
                mismatch(x, "%s %s: %s = \"%s\"", e->id, where, nm->str, val);
            }
            *(nm->str[3] == 'i' ? &er : &er_reach) = d;
            *(nm->str[3] == 'i' ? &has_er : &has_er_reach) = 1;
            continue;
        }
        long long iv = strtoll(val, &end, 10);
        if (*end || end == val) {
            mismatch(t, "%s %s: %s = \"%s\" is not an integer", e->id, where, nm->str,
                     val);
            continue;
        }
        if (!strcmp(nm->str, "reach")) {
            reach = iv;
            has_reach = 1;
            continue;
        }
        if (map_slot(&act, nm->str, 0)) {
            mismatch(t, "%s %s: %s given twice", e->id, where, nm->str);
        }
        if (iv == 0) {
            mismatch(t, "%s %s: %s = 0 published (absent means 0)", e->id, where,
                     nm->str);
        }
        map_add(&act, nm->str, iv);
    }
    window_sum(e, w, now, &exp);
    compare_counters(&exp, &act, t, e->id, where);
    if (!j->check_other) {
        goto out;
    }
    /* er_impr = engagement / impression x 100, 4 decimals; absent without impressions. */
    int64_t impr = map_get(&exp, "impression"), eng = map_get(&exp, "engagement");
    if (impr > 0) {
        double want = (double)eng * 100.0 / (double)impr;
        if (!has_er || fabs(er - want) >= 0.00006) {
            mismatch(x, "%s %s: er_impr %s%.6f, want %.4f (engagement %lld, impressions %lld)",
                     e->id, where, has_er ? "" : "missing, not ", er, want, (long long)eng,
                     (long long)impr);
        }
        x->checked++;
    } else if (has_er) {
        mismatch(x, "%s %s: er_impr %.4f published without impressions", e->id, where, er);
    }
    /* reach: lifetime for contents, accounts and segment values, every window for accounts;
     * er_reach = engagement / reach x 100 with the reach published. */
    char kind = e->id[0];
    int want_reach = kind == 'a' || (!w->minutes && (kind == 'c' || kind == 'g'));
    int64_t exact = want_reach ? window_users(e, w, now) : 0;
    if (!want_reach) {
        if (has_reach || has_er_reach) {
            mismatch(x, "%s %s: reach/er_reach published (none is defined)", e->id, where);
        }
    } else {
        if (!reach_close(has_reach ? reach : 0, exact) || (exact > 0 && !has_reach)) {
            mismatch(x, "%s %s: reach %lld%s, exact %lld", e->id, where, (long long)reach,
                     has_reach ? "" : " (absent)", (long long)exact);
        }
        x->checked++;
        if (exact >= 100 && !w->minutes) {
            double rel = fabs((double)(reach - exact)) / (double)exact;
            if (rel > j->max_reach_error) {
                j->max_reach_error = rel;
            }
        }
        if (reach > 0) {
            double want = (double)eng * 100.0 / (double)reach;
            if (!has_er_reach || fabs(er_reach - want) >= 0.00006) {
                mismatch(x, "%s %s: er_reach %s%.6f, want %.4f (engagement %lld, reach %lld)",
                         e->id, where, has_er_reach ? "" : "missing, not ", er_reach, want,
                         (long long)eng, (long long)reach);
            }
            x->checked++;
        } else if (has_er_reach) {
            mismatch(x, "%s %s: er_reach published with reach 0", e->id, where);
        }
    }
out:
    map_free(&act);
    map_free(&exp);
    return 0;
}

/* Every window of every entity through smm_get. */
static void check_windows(struct oracle *o, struct rd *r, struct tally *counters,
                          struct tally *other, int check_other, double *max_reach_error)
{
    struct get_job j = {o, counters, other, check_other, 0};
    pipeline(r, o->n_e * N_SLOTS, get_make, get_use, &j, "FCALL smm_get");
    if (max_reach_error) {
        *max_reach_error = j.max_reach_error;
    }
}

/* Lifetime reach sketches: PFCOUNT smm:<entity>:reach must be what smm_get publishes (it
 * counts that sketch) and close to the exact set. */
struct pf_job {
    struct oracle *o;
    size_t *which;
    int64_t *est;
};

static void pf_make(void *arg, size_t i, redisContext *c)
{
    struct pf_job *j = arg;
    redisAppendCommand(c, "PFCOUNT smm:%s:reach", j->o->e[j->which[i]]->id);
}

static int pf_use(void *arg, size_t i, redisReply *rep)
{
    struct pf_job *j = arg;
    j->est[i] = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    return 0;
}

struct rg_job {
    struct oracle *o;
    size_t *which;
    int64_t *got; /* smm_get's lifetime reach, -1 absent */
};

static void rg_make(void *arg, size_t i, redisContext *c)
{
    struct rg_job *j = arg;
    redisAppendCommand(c, "FCALL smm_mget 0 smm: total %s reach %s", "",
                       j->o->e[j->which[i]]->id);
}

static int rg_use(void *arg, size_t i, redisReply *rep)
{
    struct rg_job *j = arg;
    j->got[i] = -2; /* unreadable */
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 1) {
        const redisReply *v = rep->element[0];
        j->got[i] = v->type == REDIS_REPLY_NIL       ? -1
                    : v->type == REDIS_REPLY_INTEGER ? v->integer
                    : v->type == REDIS_REPLY_STRING  ? strtoll(v->str, NULL, 10)
                                                     : -2;
    }
    return 0;
}

static void check_sketches(struct oracle *o, struct rd *r, struct tally *x)
{
    size_t *which = malloc((o->n_e + 1) * sizeof(size_t));
    size_t n = 0;
    for (size_t i = 0; i < o->n_e; i++) {
        if (o->e[i]->id[0] == 'c' || o->e[i]->id[0] == 'a' || o->e[i]->id[0] == 'g') {
            which[n++] = i;
        }
    }
    int64_t *est = calloc(n + 1, sizeof(int64_t)), *got = calloc(n + 1, sizeof(int64_t));
    struct pf_job pj = {o, which, est};
    pipeline(r, n, pf_make, pf_use, &pj, "PFCOUNT");
    struct rg_job gj = {o, which, got};
    pipeline(r, n, rg_make, rg_use, &gj, "FCALL smm_mget reach");
    for (size_t i = 0; i < n; i++) {
        struct ent *e = o->e[which[i]];
        int64_t exact = (int64_t)e->users.n;
        if (!reach_close(est[i], exact)) {
            mismatch(x, "reach of %s: PFCOUNT %lld, exact %lld", e->id, (long long)est[i],
                     (long long)exact);
        }
        if (est[i] > 0 ? got[i] != est[i] : got[i] > 0 || got[i] == -2) {
            mismatch(x, "reach of %s: smm_mget total says %lld, PFCOUNT %lld", e->id,
                     (long long)got[i], (long long)est[i]);
        }
        x->checked += 2;
    }
    free(which);
    free(est);
    free(got);
}

/* ---- leaderboards ---- */

struct rank {
    const char *id; /* content id (after "c:") */
    int64_t eng;
};

static int rank_cmp(const void *a, const void *b)
{
    const struct rank *x = a, *y = b;
    if (x->eng != y->eng) {
        return x->eng > y->eng ? -1 : 1;
    }
    return strcmp(x->id, y->id);
}

static void check_top(struct oracle *o, struct rd *r, struct tally *x)
{
    /* lifetime, and the windows at the newest event minute and the one before */
    static const struct {
        const char *name;
        int back;
    } boards[] = {{"total", 0}, {"2m", 0}, {"2m", 1}, {"5m", 0}, {"1h", 0}, {"1h", 1},
                  {"24h", 0}};
    struct rank *rk = malloc((o->n_e + 1) * sizeof(*rk));
    for (size_t b = 0; b < sizeof(boards) / sizeof(boards[0]); b++) {
        const struct window *w = NULL;
        for (size_t i = 0; i < N_WINDOWS; i++) {
            if (!strcmp(windows[i].name, boards[b].name)) {
                w = &windows[i];
            }
        }
        int64_t now = o->newest - boards[b].back;
        size_t n = 0, pos = 0;
        struct map ids = {0};
        for (size_t i = 0; i < o->n_e; i++) {
            struct ent *e = o->e[i];
            if (e->id[0] != 'c') {
                continue;
            }
            struct map sum = {0};
            window_sum(e, w, now, &sum);
            int64_t eng = map_get(&sum, "engagement");
            map_free(&sum);
            map_add(&ids, e->id + 2, eng);
            if (eng > 0) {
                rk[n++] = (struct rank){e->id + 2, eng};
            }
        }
        qsort(rk, n, sizeof(*rk), rank_cmp);
        redisReply *rep = w->minutes ? redisCommand(r->c, "FCALL_RO smm_top 0 smm: %s 10 %lld",
                                                    w->name, (long long)now)
                                     : redisCommand(r->c, "FCALL_RO smm_top 0 smm: total 10");
        if (!reply_ok(r, rep, "FCALL_RO smm_top")) {
            if (rep) {
                freeReplyObject(rep);
            }
            map_free(&ids);
            continue;
        }
        size_t want = n < 10 ? n : 10;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2 || rep->elements > 20 ||
            rep->elements / 2 < want) {
            mismatch(x, "smm_top %s 10 %lld: %zu entries, want %zu", w->name, (long long)now,
                     rep->type == REDIS_REPLY_ARRAY ? rep->elements / 2 : 0, want);
        } else {
            for (size_t k = 0; k + 1 < rep->elements; k += 2, pos++) {
                const redisReply *id = rep->element[k], *sc = rep->element[k + 1];
                long long s = sc->type == REDIS_REPLY_INTEGER  ? sc->integer
                              : sc->type == REDIS_REPLY_STRING ? strtoll(sc->str, NULL, 10)
                                                               : LLONG_MIN;
                if (id->type != REDIS_REPLY_STRING) {
                    mismatch(x, "smm_top %s %lld: entry %zu has no id", w->name, (long long)now, pos);
                } else if (pos < want && (strcmp(id->str, rk[pos].id) || s != rk[pos].eng)) {
                    mismatch(x, "smm_top %s %lld #%zu: %s %lld, want %s %lld", w->name, (long long)now, pos + 1,
                             id->str, s, rk[pos].id, (long long)rk[pos].eng);
                } else if (pos >= want &&
                           (!map_slot(&ids, id->str, 0) || map_get(&ids, id->str) != s || s > 0)) {
                    mismatch(x, "smm_top %s %lld #%zu: %s %lld is not a post without engagement",
                             w->name, (long long)now, pos + 1, id->str, s);
                }
                x->checked++;
            }
        }
        freeReplyObject(rep);
        map_free(&ids);
    }
    free(rk);
}

/* ---- statistics and offsets ---- */

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
    rep->entities = o->n_e;
    rep->minutes = o->minutes.n;
    struct rd r = {c, 1, 0};

    /* 1. The entity hashes: lifetime, minute and hour buckets, exactly. */
    struct tally t = {0};
    check_hashes(o, &r, &t, NULL);
    cr_assert(!r.failed, "oracle: Redis could not be read");
    cr_assert_eq(t.diff, 0, "entity hashes: %lld differences; the first: %s", (long long)t.diff,
                 t.first);
    rep->fields_checked += t.checked;

    /* 2. Every window, rates and reach through smm_get at the newest event minute. */
    struct tally x = {0};
    memset(&t, 0, sizeof(t));
    check_windows(o, &r, &t, &x, 1, &rep->max_reach_error);
    cr_assert_eq(t.diff, 0, "windows (smm_get at minute %lld): %lld differences; the first: %s",
                 (long long)o->newest, (long long)t.diff, t.first);
    cr_assert_eq(x.diff, 0, "rates and reach (smm_get): %lld differences; the first: %s",
                 (long long)x.diff, x.first);
    rep->fields_checked += t.checked + x.checked;

    /* 3. Lifetime reach sketches and the figure read from them. */
    memset(&x, 0, sizeof(x));
    check_sketches(o, &r, &x);
    cr_assert_eq(x.diff, 0, "reach sketches: %lld differences; the first: %s", (long long)x.diff,
                 x.first);
    rep->fields_checked += x.checked;

    /* 4. Leaderboards. */
    memset(&x, 0, sizeof(x));
    check_top(o, &r, &x);
    cr_assert_eq(x.diff, 0, "leaderboards (smm_top): %lld differences; the first: %s",
                 (long long)x.diff, x.first);
    rep->fields_checked += x.checked;

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
    redisReply *rr = redisCommand(c, "HVALS smm:offsets");
    int64_t sum = 0;
    for (size_t i = 0; rr && i < rr->elements; i++) {
        sum += strtoll(rr->element[i]->str, NULL, 10);
    }
    freeReplyObject(rr);
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

int oracle_diff(struct oracle *o, redisContext *c, struct oracle_diff *d)
{
    memset(d, 0, sizeof(*d));
    d->expected_dead_letter = o->rejected;
    struct rd r = {c, 0, 0};

    /* 1. Entity hashes; event units from the accounts' lifetime per-type counts. */
    struct tally t = {0};
    struct map acct = {0}; /* "<a:account>\n<type>" -> stored */
    check_hashes(o, &r, &t, &acct);
    for (size_t i = 0; i < o->n_e; i++) {
        struct ent *e = o->e[i];
        if (e->id[0] != 'a') {
            continue;
        }
        for (size_t k = 0; k < e->t.cap; k++) {
            if (e->t.k[k] && is_event_type(e->t.k[k])) {
                char key[600];
                snprintf(key, sizeof(key), "%s\n%s", e->id, e->t.k[k]);
                int64_t want = e->t.v[k], got = map_get(&acct, key);
                d->expected_events += want;
                d->lost += want > got ? want - got : 0;
                d->double_counted += got > want ? got - want : 0;
            }
        }
    }
    for (size_t i = 0; i < acct.cap; i++) {
        if (!acct.k[i]) {
            continue;
        }
        const char *nl = strchr(acct.k[i], '\n');
        if (!is_event_type(nl + 1)) {
            continue;
        }
        d->counted += acct.v[i];
        char ent[600];
        snprintf(ent, sizeof(ent), "%.*s", (int)(nl - acct.k[i]), acct.k[i]);
        struct ent *e = ent_find(o, ent);
        if ((!e || !map_slot(&e->t, nl + 1, 0)) && acct.v[i] > 0) {
            d->double_counted += acct.v[i];
        }
    }
    map_free(&acct);

    /* 2. Windows through smm_get (counters only). */
    struct tally x = {0};
    check_windows(o, &r, &t, &x, 0, NULL);
    d->fields_differing = t.diff;

    /* 3. Exactly-once statistics. */
    d->stats_messages = hget_ll(c, "smm:stats", "messages", 0);
    d->stats_counted = hget_ll(c, "smm:stats", "events_counted", 0);
    d->stats_dead_letter = hget_ll(c, "smm:stats", "dead_letter", 0);
    return r.failed ? -1 : 0;
}

int64_t oracle_lifetime(redisContext *c, const char *entity, const char *metric)
{
    struct rd r = {c, 0, 0};
    int64_t shards = read_shards(&r);
    if (shards < 0) {
        /* No shard count: nothing was ever written under the prefix, or the test fails. */
        redisReply *rep = redisCommand(c, "SCAN 0 MATCH smm:{* COUNT 100000");
        cr_assert(rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
                      rep->element[1]->elements == 0,
                  "smm:meta has no shards, yet entity keys exist");
        freeReplyObject(rep);
        return 0;
    }
    r.strict = 1;
    redisReply *rep = redisCommand(
        c, "EVAL %s 0 %s %lld",
        "return tonumber(redis.sha1hex(ARGV[1]):sub(1,8),16) % tonumber(ARGV[2])", entity,
        (long long)shards);
    cr_assert(reply_ok(&r, rep, "EVAL (shard)") && rep->type == REDIS_REPLY_INTEGER);
    long long n = rep->integer;
    freeReplyObject(rep);
    rep = redisCommand(c, "HGET smm:{%lld}:%s t", n, entity);
    cr_assert(reply_ok(&r, rep, "HGET t"));
    struct map m = {0};
    if (rep->type == REDIS_REPLY_STRING) {
        cr_assert(oracle_parse_packed(rep->str, rep->len, NULL, add_to_map, &m) >= 0,
                  "smm:{%lld}:%s t: malformed \"%s\"", n, entity, rep->str);
    }
    freeReplyObject(rep);
    int64_t v = map_get(&m, metric);
    map_free(&m);
    return v;
}
