/* tests/unit/test_pipeline.c - bytes in, script arguments out (processor/pipeline.c).
 *
 * Events are fed as bytes with a synthetic clock, and the encoded argument list is read
 * back by a small parser that walks it exactly as connectors/lua/smm.lua does (same
 * offsets, same tonumber() on the same arguments), so a drift between the encoder and the
 * script fails here before it fails in Redis. Parsed sections are rendered as sorted text
 * lines: the script folds groups, users and stats order-independently, so the test does
 * not pin their order either. Links smm_core. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/redis_sink.h"
#include <hiredis/read.h>
#include "metrics/hll.h"
#include "processor/pipeline.h"

/* 2026-11-26T03:51:43Z = 1795665103000 ms = minute 29927751 + 43 s. */
#define NOW 1795665103000LL
#define NOW_MIN 29927751LL
#define DAY_MS (24LL * 3600 * 1000)

struct fixture {
    struct smm_config cfg;
    struct smm_pipeline *pipe;
};

/* A pipeline with the default config but key = value (key NULL: none). */
static void fixture_open_set(struct fixture *fx, const char *key, const char *value)
{
    char err[256] = "";
    cr_assert_eq(smm_config_init(&fx->cfg, err, sizeof(err)), SMM_OK, "%s", err);
    cr_assert_eq(smm_config_set(&fx->cfg, "kafka.bootstrap.servers", "x:1", "test", err,
                                sizeof(err)),
                 SMM_OK, "%s", err);
    if (key) {
        cr_assert_eq(smm_config_set(&fx->cfg, key, value, "test", err, sizeof(err)),
                     SMM_OK, "%s", err);
    }
    cr_assert_eq(smm_config_finish(&fx->cfg, err, sizeof(err)), SMM_OK, "%s", err);
    fx->pipe = smm_pipeline_new(&fx->cfg, err, sizeof(err));
    cr_assert_not_null(fx->pipe, "%s", err);
}

static void fixture_open(struct fixture *fx, const char *windows)
{
    fixture_open_set(fx, windows ? "windows" : NULL, windows);
}

static void fixture_close(struct fixture *fx)
{
    smm_pipeline_destroy(fx->pipe);
    smm_config_free(&fx->cfg);
}

static void batch_open(struct fixture *fx, struct smm_batch *b)
{
    char err[256] = "";
    cr_assert_eq(smm_batch_init(b, fx->pipe, err, sizeof(err)), SMM_OK, "%s", err);
}

/* Decides b's admission as the loop does, every sketch it feeds stored empty (no key):
 * returns how many sketches were loaded. */
static int decide_empty(struct fixture *fx, struct smm_batch *b)
{
    const struct smm_redis_hashset *rows;
    int n = smm_pipeline_admission_plan(fx->pipe, b, &rows);
    cr_assert(n >= 0);
    for (int i = 0; i < n; i++) {
        smm_pipeline_admission_loaded(fx->pipe, i, NULL, NULL, 0, NULL, NULL, 0);
    }
    cr_assert_eq(smm_pipeline_admission_decide(fx->pipe, b), SMM_OK);
    return n;
}

/* Feeds one message (an exact-size heap copy, not NUL-terminated) and checks the outcome. */
static void feed(struct fixture *fx, struct smm_batch *b, const char *json, int64_t kafka_ts,
                 enum smm_reject_reason want)
{
    size_t len = strlen(json);
    char *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, json, len);
    struct smm_reject rej;
    int rc = smm_pipeline_feed(fx->pipe, b, copy, len, kafka_ts, NOW, &rej);
    free(copy);
    if (want == SMM_REJECT_NONE) {
        cr_assert_eq(rc, SMM_OK, "rejected (%s: %s): %s", smm_reject_reason_name(rej.reason),
                     rej.detail, json);
    } else {
        cr_assert_eq(rc, SMM_ERR, "accepted: %s", json);
        cr_assert_eq(rej.reason, want, "%s, want %s: %s", smm_reject_reason_name(rej.reason),
                     smm_reject_reason_name(want), json);
    }
}

/* ---- a reader of the argument list that follows connectors/lua/smm.lua ---- */

struct lua_argv {
    int n;
    char **arg;  /* arg[0] is ARGV[1] */
    size_t *len; /* its length: the sketches hold NUL bytes */
};

static void lua_argv_load(struct lua_argv *la, struct smm_argv *av)
{
    la->n = av->n;
    la->arg = calloc((size_t)(av->n ? av->n : 1), sizeof(char *));
    la->len = calloc((size_t)(av->n ? av->n : 1), sizeof(size_t));
    cr_assert(la->arg && la->len);
    for (int i = 0; i < av->n; i++) {
        size_t len;
        const char *data = smm_argv_get(av, i, &len);
        la->len[i] = len;
        la->arg[i] = malloc(len + 1);
        cr_assert_not_null(la->arg[i]);
        memcpy(la->arg[i], data, len);
        la->arg[i][len] = '\0';
    }
}

static void lua_argv_free(struct lua_argv *la)
{
    for (int i = 0; i < la->n; i++) {
        free(la->arg[i]);
    }
    free(la->arg);
    free(la->len);
}

/* ARGV[i], 1-based as in the script; out of range fails the test (Lua would get nil). */
static const char *ARGV(const struct lua_argv *la, int i)
{
    cr_assert(i >= 1 && i <= la->n, "ARGV[%d] read past the end (%d arguments)", i, la->n);
    return la->arg[i - 1];
}

/* tonumber() on an integer argument: decimal digits with an optional '-', leading zeros
 * allowed (the patched placeholders have them). */
static int64_t tonumber(const struct lua_argv *la, int i)
{
    const char *s = ARGV(la, i);
    const char *p = s + (*s == '-');
    cr_assert(*p != '\0', "ARGV[%d] \"%s\" is not a number", i, s);
    int64_t v = 0;
    for (; *p; p++) {
        cr_assert(*p >= '0' && *p <= '9', "ARGV[%d] \"%s\" is not a number", i, s);
        v = v * 10 + (*p - '0');
    }
    return *s == '-' ? -v : v;
}

struct lines {
    int n;
    char *line[256];
};

static void lines_add(struct lines *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void lines_add(struct lines *l, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    cr_assert(l->n < 256);
    l->line[l->n] = strdup(buf);
    cr_assert_not_null(l->line[l->n]);
    l->n++;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted lines joined with '\n' (caller frees), and the lines freed. */
static char *lines_join(struct lines *l)
{
    qsort(l->line, (size_t)l->n, sizeof(l->line[0]), cmp_str);
    size_t size = 1;
    for (int i = 0; i < l->n; i++) {
        size += strlen(l->line[i]) + 1;
    }
    char *out = malloc(size);
    cr_assert_not_null(out);
    out[0] = '\0';
    for (int i = 0; i < l->n; i++) {
        strcat(out, l->line[i]);
        strcat(out, "\n");
        free(l->line[i]);
    }
    l->n = 0;
    return out;
}

struct part {
    char tp[64], token[64], base[32], next[32];
    char *groups; /* "kind|id|minute|metric=delta,..." per group, sorted */
    char *reach;  /* "kind|id|minute|user" per user (minute "-" but for accounts), sorted */
    char *stats;  /* "field=delta" per field, sorted */
    char *links;  /* "type|account|a|b|c|ts|biz|x" per link, in order */
    char *adm;    /* "key|base|set|expire_at|push|f=v;...|del;...|n:members" per sketch, sorted */
    int n_groups, n_abs, n_days, n_sketches, n_reach, n_stats, n_links, n_adm;
    int n_moves; /* HINCRBY <hash> v 1: versions moved by users alone (version_move) */
    char *sketches; /* "key|sketch_key|expire_at|changed|<PFCOUNT of the bytes>" per post */
    char *days; /* "minute|field|delta" per daily delta, sorted */
    char *abs; /* "id|base_v|prune|expire_at|field=value/delta/score;..." per post, sorted */
};

struct flush {
    char mode[16], prefix[64], shards[16];
    int64_t now_min, keep;
    int n_parts;
    struct part parts[8];
};

/* The plain writes sent ahead of a flush (smm_pipeline_flush_writes): the reach of its
 * batch, shown with the first part as "kind|id|minute|user" per user (minute "-" but for
 * accounts' minute sketches), n_reach = the lifetime sketches written. Checks that each
 * account's users reach its lifetime, minute and day sketches alike, that every minute
 * sketch is listed for the hour merge, and that nothing else is there but version moves
 * (counted in n_moves). */
static void parse_writes(const struct smm_cmds *c, const char *prefix, struct part *p)
{
    redisReader *rd = redisReaderCreate();
    cr_assert_not_null(rd);
    cr_assert_eq(redisReaderFeed(rd, c->buf, c->used), REDIS_OK);
    struct lines l = {0};
    size_t pl = strlen(prefix);
    int64_t life_a = 0, minute_a = 0, day_a = 0, listed = 0, n_minute_keys = 0;
    for (int x = 0; x < c->n; x++) {
        redisReply *r = NULL;
        cr_assert(redisReaderGetReply(rd, (void **)&r) == REDIS_OK && r);
        cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements >= 3);
        const char *cmd = r->element[0]->str, *key = r->element[1]->str;
        cr_assert(strncmp(key, prefix, pl) == 0, "%s", key);
        key += pl;
        if (!strcmp(cmd, "SADD")) {
            cr_assert(!strncmp(key, "reach_accounts:h:", 17), "%s", key);
            listed += (int64_t)r->elements - 2;
        } else if (!strcmp(cmd, "EXPIREAT")) {
            cr_assert_eq(r->elements, 3);
        } else if (!strcmp(cmd, "HINCRBY")) {
            cr_assert(r->elements == 4 && !strcmp(r->element[2]->str, "v") &&
                      !strcmp(r->element[3]->str, "1"));
            p->n_moves++;
        } else {
            cr_assert_str_eq(cmd, "PFADD");
            char kind[8], id[256];
            const char *colon = strchr(key, ':'), *tail = strstr(key, ":reach");
            cr_assert(colon && tail && colon < tail && colon - key < 8, "%s", key);
            snprintf(kind, sizeof(kind), "%.*s", (int)(colon - key), key);
            snprintf(id, sizeof(id), "%.*s", (int)(tail - colon - 1), colon + 1);
            tail += 6;
            int64_t k = (int64_t)r->elements - 2;
            if (!*tail) {
                p->n_reach++;
                if (!strcmp(kind, "a")) {
                    life_a += k;
                } else {
                    for (size_t u = 2; u < r->elements; u++) {
                        lines_add(&l, "%s|%s|-|%s", kind, id, r->element[u]->str);
                    }
                }
            } else if (!strncmp(tail, ":m:", 3)) {
                cr_assert_str_eq(kind, "a");
                minute_a += k;
                n_minute_keys++;
                for (size_t u = 2; u < r->elements; u++) {
                    lines_add(&l, "a|%s|%s|%s", id, tail + 3, r->element[u]->str);
                }
            } else {
                cr_assert(!strncmp(tail, ":d:", 3), "%s", key);
                day_a += k;
            }
        }
        freeReplyObject(r);
    }
    redisReaderFree(rd);
    /* (an account whose lifetime sketch the processor holds goes whole, not by PFADD) */
    cr_assert(life_a == 0 || minute_a == life_a,
              "accounts' minute sketches take %lld users, lifetime %lld", (long long)minute_a,
              (long long)life_a);
    cr_assert_eq(day_a, minute_a);
    cr_assert_eq(listed, n_minute_keys, "every minute sketch listed for the merge");
    p->reach = lines_join(&l);
}

/* Walks a 'flush' argument list the way the script does and checks it is consumed
 * exactly: the fence loop computes each section's position, then the apply loops read
 * them; writes: the plain writes sent with it (NULL: none). */
static void parse_flush(struct lua_argv *la, const struct smm_cmds *writes, struct flush *fl)
{
    memset(fl, 0, sizeof(*fl));
    snprintf(fl->mode, sizeof(fl->mode), "%s", ARGV(la, 1));
    snprintf(fl->prefix, sizeof(fl->prefix), "%s", ARGV(la, 2));
    fl->now_min = tonumber(la, 3);
    snprintf(fl->shards, sizeof(fl->shards), "%s", ARGV(la, 4));
    fl->keep = tonumber(la, 5);
    fl->n_parts = (int)tonumber(la, 6);
    cr_assert(fl->n_parts >= 0 && fl->n_parts <= 8);
    int i = 7;
    int groups_at[8], abs_at[8], days_at[8], sketches_at[8], stats_at[8], links_at[8],
        adm_at[8];
    /* 1. the fence loop: positions only */
    for (int pi = 0; pi < fl->n_parts; pi++) {
        struct part *p = &fl->parts[pi];
        snprintf(p->tp, sizeof(p->tp), "%s", ARGV(la, i));
        snprintf(p->token, sizeof(p->token), "%s", ARGV(la, i + 1));
        snprintf(p->base, sizeof(p->base), "%s", ARGV(la, i + 2));
        snprintf(p->next, sizeof(p->next), "%s", ARGV(la, i + 3));
        i += 4;
        groups_at[pi] = i;
        int64_t n = tonumber(la, i);
        i++;
        for (int64_t g = 0; g < n; g++) {
            i = i + 4 + 2 * (int)tonumber(la, i + 3);
        }
        abs_at[pi] = i;
        n = tonumber(la, i);
        i++;
        for (int64_t a = 0; a < n; a++) {
            i = i + 6 + 4 * (int)tonumber(la, i + 5);
        }
        sketches_at[pi] = i;
        i = i + 1 + 5 * (int)tonumber(la, i);
        days_at[pi] = i;
        i = i + 1 + 3 * (int)tonumber(la, i);
        stats_at[pi] = i;
        i = i + 1 + 2 * (int)tonumber(la, i);
        links_at[pi] = i;
        i = i + 1 + 8 * (int)tonumber(la, i);
        adm_at[pi] = i;
        int64_t n_adm = tonumber(la, i);
        i++;
        for (int64_t a = 0; a < n_adm; a++) {
            i = i + 6 + 2 * (int)tonumber(la, i + 5);
            i = i + 1 + (int)tonumber(la, i);
            int64_t n_set = tonumber(la, i);
            i = i + 1 + (n_set > 0 ? (int)n_set : 0);
        }
    }
    cr_assert_eq(i, la->n + 1, "flush has %d arguments, the script reads %d", la->n, i - 1);

    /* 2-4. the apply loops */
    for (int pi = 0; pi < fl->n_parts; pi++) {
        struct part *p = &fl->parts[pi];
        struct lines l = {0};
        i = groups_at[pi] + 1;
        p->n_groups = (int)tonumber(la, groups_at[pi]);
        for (int g = 0; g < p->n_groups; g++) {
            /* entity, minute, rated, k, {field, delta}*k; shown as kind|id|minute|m=d,... */
            char buf[400];
            const char *ent = ARGV(la, i);
            size_t elen = strlen(ent);
            cr_assert(elen > 2 && ent[1] == ':' && strchr("casgv", ent[0]), "bad entity %s", ent);
            int64_t minute = tonumber(la, i + 1);
            const char *rated = ARGV(la, i + 2);
            int64_t k = tonumber(la, i + 3);
            cr_assert(k > 0, "empty group");
            int used = snprintf(buf, sizeof(buf), "%c|%s|%lld|", ent[0], ent + 2,
                                (long long)minute);
            i += 4;
            int rate_inputs = 0;
            for (int64_t x = 0; x < k; x++) {
                const char *f = ARGV(la, i);
                cr_assert(strncmp(f, ent, elen) == 0 && f[elen] == ':',
                          "field %s does not belong to %s", f, ent);
                const char *metric = f + elen + 1;
                rate_inputs |= !strcmp(metric, "engagement") || !strcmp(metric, "impression");
                used += snprintf(buf + used, sizeof(buf) - (size_t)used, "%s%s=%lld",
                                 x ? "," : "", metric, (long long)tonumber(la, i + 1));
                i += 2;
            }
            /* er_impr is kept for posts and accounts only */
            int want_rated = rate_inputs && (ent[0] == 'c' || ent[0] == 'a');
            cr_assert_str_eq(rated, want_rated ? "1" : "0", "rated flag of %s", ent);
            lines_add(&l, "%s", buf);
        }
        p->groups = lines_join(&l);

        /* key, id, base_v, prune, expire_at, k, {field, value, delta, score}*k; shown as
         * id|base|prune|field=value/delta/score;... */
        struct lines la_abs = {0};
        i = abs_at[pi] + 1;
        p->n_abs = (int)tonumber(la, abs_at[pi]);
        for (int a = 0; a < p->n_abs; a++) {
            char buf[1200];
            int used = snprintf(buf, sizeof(buf), "%s|%s|%s|%s|", ARGV(la, i + 1), ARGV(la, i + 2),
                                ARGV(la, i + 3), ARGV(la, i + 4));
            int64_t k = tonumber(la, i + 5);
            i += 6;
            for (int64_t x = 0; x < k; x++) {
                used += snprintf(buf + used, sizeof(buf) - (size_t)used, "%s%s=%s/%s/%s",
                                 x ? ";" : "", ARGV(la, i), ARGV(la, i + 1), ARGV(la, i + 2),
                                 ARGV(la, i + 3));
                i += 4;
            }
            lines_add(&la_abs, "%s", buf);
        }
        p->abs = lines_join(&la_abs);
        struct lines ld = {0};
        i = days_at[pi] + 1;
        p->n_days = (int)tonumber(la, days_at[pi]);
        for (int d = 0; d < p->n_days; d++, i += 3) {
            lines_add(&ld, "%s|%s|%s", ARGV(la, i), ARGV(la, i + 1), ARGV(la, i + 2));
        }
        p->days = lines_join(&ld);
        struct lines lsk = {0};
        i = sketches_at[pi] + 1;
        p->n_sketches = (int)tonumber(la, sketches_at[pi]);
        for (int x = 0; x < p->n_sketches; x++, i += 5) {
            /* key, sketch_key, expire_at, changed, bytes (la->arg is 0-based) */
            struct smm_hll *h = smm_hll_new();
            cr_assert(h && smm_hll_load(h, la->arg[i + 3], la->len[i + 3]) == SMM_OK,
                      "the sketch of %s is not a Redis HyperLogLog string", ARGV(la, i));
            lines_add(&lsk, "%s|%s|%s|%s|%llu", ARGV(la, i), ARGV(la, i + 1), ARGV(la, i + 2),
                      ARGV(la, i + 3), (unsigned long long)smm_hll_count(h));
            smm_hll_destroy(h);
        }
        p->sketches = lines_join(&lsk);

        i = stats_at[pi] + 1;
        p->n_stats = (int)tonumber(la, stats_at[pi]);
        for (int s = 0; s < p->n_stats; s++) {
            lines_add(&l, "%s=%lld", ARGV(la, i), (long long)tonumber(la, i + 1));
            i += 2;
        }
        p->stats = lines_join(&l);

        /* links keep their order: the script matches them one by one */
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        cr_assert_not_null(f);
        i = links_at[pi] + 1;
        p->n_links = (int)tonumber(la, links_at[pi]);
        for (int k = 0; k < p->n_links; k++, i += 8) {
            fprintf(f, "%s|%s|%s|%s|%s|%s|%s|%s\n", ARGV(la, i), ARGV(la, i + 1), ARGV(la, i + 2),
                    ARGV(la, i + 3), ARGV(la, i + 4), ARGV(la, i + 5), ARGV(la, i + 6),
                    ARGV(la, i + 7));
        }
        fclose(f);
        p->links = buf;
        struct lines la2 = {0};
        i = adm_at[pi] + 1;
        p->n_adm = (int)tonumber(la, adm_at[pi]);
        for (int k = 0; k < p->n_adm; k++) {
            /* key, base_v, set_key, expire_at, push, n_f, {field, value}*n_f, n_del,
             * {field}*n_del, n_set, {member}*n_set; shown as
             * key|base|set|expire_at|push|f=v;...|del;...|n_set:member,... */
            char rec[1024];
            int used = snprintf(rec, sizeof(rec), "%s|%s|%s|%s|%s|", ARGV(la, i),
                                ARGV(la, i + 1), ARGV(la, i + 2), ARGV(la, i + 3),
                                ARGV(la, i + 4));
            int64_t nf = tonumber(la, i + 5);
            i += 6;
            for (int64_t x = 0; x < nf; x++, i += 2) {
                used += snprintf(rec + used, sizeof(rec) - (size_t)used, "%s%s=%s",
                                 x ? ";" : "", ARGV(la, i), ARGV(la, i + 1));
            }
            int64_t nd = tonumber(la, i++);
            used += snprintf(rec + used, sizeof(rec) - (size_t)used, "|");
            for (int64_t x = 0; x < nd; x++, i++) {
                used += snprintf(rec + used, sizeof(rec) - (size_t)used, "%s%s", x ? ";" : "",
                                 ARGV(la, i));
            }
            int64_t ns = tonumber(la, i++);
            used += snprintf(rec + used, sizeof(rec) - (size_t)used, "|%lld:", (long long)ns);
            for (int64_t x = 0; x < ns; x++, i++) {
                used += snprintf(rec + used, sizeof(rec) - (size_t)used, "%s%s", x ? "," : "",
                                 ARGV(la, i));
            }
            lines_add(&la2, "%s", rec);
        }
        p->adm = lines_join(&la2);
    }
    for (int pi = 0; pi < fl->n_parts; pi++) {
        if (pi == 0 && writes) {
            parse_writes(writes, fl->prefix, &fl->parts[0]);
        } else {
            fl->parts[pi].reach = strdup("");
        }
    }
}

static void flush_free(struct flush *fl)
{
    for (int pi = 0; pi < fl->n_parts; pi++) {
        free(fl->parts[pi].groups);
        free(fl->parts[pi].abs);
        free(fl->parts[pi].days);
        free(fl->parts[pi].sketches);
        free(fl->parts[pi].reach);
        free(fl->parts[pi].stats);
        free(fl->parts[pi].links);
        free(fl->parts[pi].adm);
    }
}

/* ---- tests ---- */

Test(pipeline, minute_floor)
{
    cr_assert_eq(smm_pipeline_minute(0), 0);
    cr_assert_eq(smm_pipeline_minute(59999), 0);
    cr_assert_eq(smm_pipeline_minute(60000), 1);
    cr_assert_eq(smm_pipeline_minute(-1), -1);
    cr_assert_eq(smm_pipeline_minute(-60000), -1);
    cr_assert_eq(smm_pipeline_minute(-60001), -2);
    cr_assert_eq(smm_pipeline_minute(NOW), NOW_MIN);
}

Test(pipeline, feed_counts_messages_and_rejects)
{
    struct fixture fx;
    fixture_open(&fx, NULL);
    struct smm_batch b;
    batch_open(&fx, &b);
    char ok[256];
    snprintf(ok, sizeof(ok),
             "{\"event_id\":\"e1\",\"type\":\"like\",\"ts\":%lld,\"account_id\":\"a1\","
             "\"content_id\":\"c1\"}",
             NOW);
    feed(&fx, &b, ok, -1, SMM_REJECT_NONE);
    feed(&fx, &b, "{", -1, SMM_REJECT_INVALID_JSON);
    feed(&fx, &b, "", -1, SMM_REJECT_INVALID_JSON);
    feed(&fx, &b, "[1,2]", -1, SMM_REJECT_NOT_OBJECT);
    feed(&fx, &b, "{\"event_id\":\"e\",\"type\":\"poke\",\"account_id\":\"a\"}", NOW,
         SMM_REJECT_UNKNOWN_TYPE);
    /* Retention defaults to the longest window (24h). */
    char old[256];
    snprintf(old, sizeof(old),
             "{\"event_id\":\"e\",\"type\":\"like\",\"ts\":%lld,\"account_id\":\"a\","
             "\"content_id\":\"c\"}",
             NOW - DAY_MS - 1);
    feed(&fx, &b, old, -1, SMM_REJECT_TOO_OLD);
    /* max_future_ms defaults to 5 minutes. */
    char future[256];
    snprintf(future, sizeof(future),
             "{\"event_id\":\"e\",\"type\":\"like\",\"ts\":%lld,\"account_id\":\"a\","
             "\"content_id\":\"c\"}",
             NOW + 300001);
    feed(&fx, &b, future, -1, SMM_REJECT_IN_FUTURE);
    feed(&fx, &b, ok, -1, SMM_REJECT_NONE); /* duplicates are counted: dedup is not ours */

    cr_assert_eq(b.messages, 8);
    cr_assert_eq(b.rejects[SMM_REJECT_NONE], 0);
    cr_assert_eq(b.rejects[SMM_REJECT_INVALID_JSON], 2);
    cr_assert_eq(b.rejects[SMM_REJECT_NOT_OBJECT], 1);
    cr_assert_eq(b.rejects[SMM_REJECT_UNKNOWN_TYPE], 1);
    cr_assert_eq(b.rejects[SMM_REJECT_TOO_OLD], 1);
    cr_assert_eq(b.rejects[SMM_REJECT_IN_FUTURE], 1);
    cr_assert_eq(b.rejects[SMM_REJECT_TOO_LARGE], 0);
    cr_assert_eq(smm_agg_events(b.agg), 2);

    smm_batch_clear(&b);
    cr_assert_eq(b.messages, 0);
    for (int r = 0; r < SMM_REJECT__COUNT; r++) {
        cr_assert_eq(b.rejects[r], 0);
    }
    cr_assert_eq(smm_agg_events(b.agg), 0);
    cr_assert_eq(smm_agg_entities(b.agg), 0);
    smm_batch_free(&b);
    smm_batch_free(&b); /* safe twice: agg is NULLed */
    fixture_close(&fx);
}

Test(pipeline, feed_uses_configured_limits)
{
    struct fixture fx;
    char err[256] = "";
    cr_assert_eq(smm_config_init(&fx.cfg, err, sizeof(err)), SMM_OK, "%s", err);
    cr_assert_eq(smm_config_set(&fx.cfg, "kafka.bootstrap.servers", "x:1", "t", err, sizeof(err)),
                 SMM_OK);
    cr_assert_eq(smm_config_set(&fx.cfg, "limits.max_id_bytes", "4", "t", err, sizeof(err)),
                 SMM_OK);
    cr_assert_eq(smm_config_set(&fx.cfg, "limits.max_payload_bytes", "100", "t", err,
                                sizeof(err)),
                 SMM_OK);
    cr_assert_eq(smm_config_set(&fx.cfg, "max_future_ms", "0", "t", err, sizeof(err)), SMM_OK);
    cr_assert_eq(smm_config_set(&fx.cfg, "retention_ms", "1h", "t", err, sizeof(err)), SMM_OK);
    cr_assert_eq(smm_config_finish(&fx.cfg, err, sizeof(err)), SMM_OK, "%s", err);
    fx.pipe = smm_pipeline_new(&fx.cfg, err, sizeof(err));
    cr_assert_not_null(fx.pipe);
    struct smm_batch b;
    batch_open(&fx, &b);
    char json[256];
    snprintf(json, sizeof(json),
             "{\"event_id\":\"e\",\"type\":\"follow\",\"ts\":%lld,\"account_id\":\"abcd\"}",
             NOW);
    feed(&fx, &b, json, -1, SMM_REJECT_NONE);
    snprintf(json, sizeof(json),
             "{\"event_id\":\"e\",\"type\":\"follow\",\"ts\":%lld,\"account_id\":\"abcde\"}",
             NOW);
    feed(&fx, &b, json, -1, SMM_REJECT_ID_TOO_LONG);
    snprintf(json, sizeof(json),
             "{\"event_id\":\"e\",\"type\":\"follow\",\"ts\":%lld,\"account_id\":\"a\"}",
             NOW + 1);
    feed(&fx, &b, json, -1, SMM_REJECT_IN_FUTURE);
    snprintf(json, sizeof(json),
             "{\"event_id\":\"e\",\"type\":\"follow\",\"ts\":%lld,\"account_id\":\"a\"}",
             NOW - 3600001);
    feed(&fx, &b, json, -1, SMM_REJECT_TOO_OLD);
    snprintf(json, sizeof(json),
             "{\"event_id\":\"e\",\"type\":\"follow\",\"ts\":%lld,\"account_id\":\"a\","
             "\"padding\":\"%040d\"}",
             NOW, 0);
    feed(&fx, &b, json, -1, SMM_REJECT_TOO_LARGE);
    cr_assert_eq(b.messages, 5);
    smm_batch_free(&b);
    fixture_close(&fx);
}

/* Two partitions in one flush: the layout, every header value, every part's fence values,
 * counter groups, reach users and exactly-once stats. */
Test(pipeline, encode_flush_two_parts)
{
    struct fixture fx;
    fixture_open(&fx, NULL);
    struct smm_batch b1, b2;
    batch_open(&fx, &b1);
    batch_open(&fx, &b2);
    char json[512];

    /* Partition 0: three accepted events over two minutes, four rejects. */
    snprintf(json, sizeof(json),
             "{\"event_id\":\"e1\",\"type\":\"like\",\"ts\":%lld,\"account_id\":\"a1\","
             "\"content_id\":\"c1\"}",
             NOW - 1000); /* minute NOW_MIN */
    feed(&fx, &b1, json, -1, SMM_REJECT_NONE);
    snprintf(json, sizeof(json),
             "{\"event_id\":\"e2\",\"type\":\"impression\",\"ts\":%lld,\"account_id\":\"a1\","
             "\"content_id\":\"c1\",\"user_id\":\"u1\"}",
             NOW - 60000); /* minute NOW_MIN - 1 */
    feed(&fx, &b1, json, -1, SMM_REJECT_NONE);
    snprintf(json, sizeof(json),
             "{\"event_id\":\"e3\",\"type\":\"mention\",\"ts\":%lld,\"account_id\":\"a1\","
             "\"user_id\":\"u2\"}",
             NOW);
    feed(&fx, &b1, json, -1, SMM_REJECT_NONE);
    feed(&fx, &b1, "{", -1, SMM_REJECT_INVALID_JSON);
    feed(&fx, &b1, "{} x", -1, SMM_REJECT_INVALID_JSON);
    feed(&fx, &b1, "{\"event_id\":\"e\",\"type\":\"poke\",\"account_id\":\"a\"}", NOW,
         SMM_REJECT_UNKNOWN_TYPE);
    snprintf(json, sizeof(json),
             "{\"event_id\":\"e\",\"type\":\"like\",\"ts\":%lld,\"account_id\":\"a\","
             "\"content_id\":\"c\"}",
             NOW - 2 * DAY_MS);
    feed(&fx, &b1, json, -1, SMM_REJECT_TOO_OLD);
    cr_assert_eq(b1.messages, 7);

    /* Partition 1: a view with a reach user (Kafka timestamp) and an unlike. */
    feed(&fx, &b2,
         "{\"event_id\":\"e4\",\"type\":\"view\",\"account_id\":\"a2\",\"content_id\":\"c2\","
         "\"user_id\":\"u9\"}",
         NOW, SMM_REJECT_NONE);
    snprintf(json, sizeof(json),
             "{\"event_id\":\"e5\",\"type\":\"unlike\",\"ts\":%lld,\"account_id\":\"a2\","
             "\"content_id\":\"c2\"}",
             NOW);
    feed(&fx, &b2, json, -1, SMM_REJECT_NONE);
    cr_assert_eq(b2.messages, 2);

    struct smm_argv av;
    smm_argv_init(&av);
    cr_assert_eq(smm_pipeline_encode_flush_begin(fx.pipe, NOW, &av), SMM_OK);
    cr_assert_eq(smm_pipeline_encode_flush_part(fx.pipe, &b1, "smm.events:0", "tok-0", 41, 48,
                                                &av),
                 SMM_OK);
    cr_assert_eq(smm_pipeline_encode_flush_part(fx.pipe, &b2, "smm.events:1", "tok-1", -1, 2,
                                                &av),
                 SMM_OK);
    cr_assert_eq(smm_pipeline_encode_flush_end(&av, 2), SMM_OK);

    struct lua_argv la;
    lua_argv_load(&la, &av);
    struct flush fl;
    parse_flush(&la, smm_pipeline_flush_writes(fx.pipe), &fl);

    cr_assert_str_eq(fl.mode, "flush");
    cr_assert_str_eq(fl.prefix, "smm:");
    cr_assert_eq(fl.now_min, NOW_MIN);
    cr_assert_str_eq(fl.shards, "64"); /* redis.shards, default */
    cr_assert_eq(fl.keep, 2880 + 60, "keep = max(longest window, 48 h) + grace (1h)");
    cr_assert_eq(fl.n_parts, 2);

    struct part *p = &fl.parts[0];
    cr_assert_str_eq(p->tp, "smm.events:0");
    cr_assert_str_eq(p->token, "tok-0");
    cr_assert_str_eq(p->base, "41"); /* compared as a string with HGET by the script */
    cr_assert_str_eq(p->next, "48");
    cr_assert_eq(p->n_groups, 4);
    char want[1024];
    snprintf(want, sizeof(want),
             "a|a1|%lld|impression=1\n"
             "a|a1|%lld|like=1,mention=1,engagement=1\n"
             "c|c1|%lld|impression=1\n"
             "c|c1|%lld|like=1,engagement=1\n",
             NOW_MIN - 1, NOW_MIN, NOW_MIN - 1, NOW_MIN);
    cr_assert_str_eq(p->groups, want);
    /* The reach of both parts' batches goes ahead of the call, shown with part 0; the
     * mention's user is not reach. */
    cr_assert_eq(p->n_reach, 4);
    snprintf(want, sizeof(want), "a|a1|%lld|u1\na|a2|%lld|u9\nc|c1|-|u1\nc|c2|-|u9\n",
             NOW_MIN - 1, NOW_MIN);
    cr_assert_str_eq(p->reach, want);
    cr_assert_eq(p->n_stats, 6);
    cr_assert_str_eq(p->stats, "dead_letter:invalid_json=2\n"
                               "dead_letter:too_old=1\n"
                               "dead_letter:unknown_type=1\n"
                               "dead_letter=4\n"
                               "events_counted=3\n"
                               "messages=7\n");

    p = &fl.parts[1];
    cr_assert_str_eq(p->tp, "smm.events:1");
    cr_assert_str_eq(p->token, "tok-1");
    cr_assert_str_eq(p->base, "-1"); /* the script's "no stored offset" */
    cr_assert_str_eq(p->next, "2");
    cr_assert_eq(p->n_groups, 2);
    snprintf(want, sizeof(want),
             "a|a2|%lld|view=1,unlike=1,engagement=-1\n"
             "c|c2|%lld|view=1,unlike=1,engagement=-1\n",
             NOW_MIN, NOW_MIN);
    cr_assert_str_eq(p->groups, want);
    cr_assert_eq(p->n_reach, 0);
    cr_assert_eq(p->n_stats, 2);
    cr_assert_str_eq(p->stats, "events_counted=2\nmessages=2\n");

    flush_free(&fl);
    lua_argv_free(&la);

    /* The same argv is reused for the next flush: begin() resets it. */
    smm_batch_clear(&b1);
    cr_assert_eq(smm_pipeline_encode_flush_begin(fx.pipe, NOW + 60000, &av), SMM_OK);
    cr_assert_eq(smm_pipeline_encode_flush_part(fx.pipe, &b1, "smm.events:0", "tok-0", 48, 48,
                                                &av),
                 SMM_OK);
    cr_assert_eq(smm_pipeline_encode_flush_end(&av, 1), SMM_OK);
    lua_argv_load(&la, &av);
    parse_flush(&la, smm_pipeline_flush_writes(fx.pipe), &fl);
    cr_assert_eq(fl.now_min, NOW_MIN + 1);
    cr_assert_eq(fl.n_parts, 1);
    cr_assert_eq(fl.parts[0].n_groups, 0);
    cr_assert_eq(fl.parts[0].n_reach, 0);
    cr_assert_eq(fl.parts[0].n_stats, 0);
    cr_assert_eq(la.n, 6 + 4 + 7, "an empty part is its fence and seven zero counts");
    cr_assert_eq(smm_pipeline_flush_writes(fx.pipe)->n, 0, "and no writes ahead");
    flush_free(&fl);
    lua_argv_free(&la);

    smm_argv_free(&av);
    smm_batch_free(&b1);
    smm_batch_free(&b2);
    fixture_close(&fx);
}

/* Exact argument positions for a tiny flush, independent of the parser above. */
Test(pipeline, encode_flush_exact_positions)
{
    struct fixture fx;
    fixture_open(&fx, NULL);
    struct smm_batch b;
    batch_open(&fx, &b);
    char json[256];
    snprintf(json, sizeof(json),
             "{\"event_id\":\"e\",\"type\":\"follow\",\"ts\":%lld,\"account_id\":\"acc\"}", NOW);
    feed(&fx, &b, json, -1, SMM_REJECT_NONE);
    struct smm_argv av;
    smm_argv_init(&av);
    cr_assert_eq(smm_pipeline_encode_flush_begin(fx.pipe, NOW, &av), SMM_OK);
    cr_assert_eq(smm_pipeline_encode_flush_part(fx.pipe, &b, "t:3", "tk", 7, 8, &av), SMM_OK);
    cr_assert_eq(smm_pipeline_encode_flush_end(&av, 1), SMM_OK);
    struct lua_argv la;
    lua_argv_load(&la, &av);
    char now_min[32];
    snprintf(now_min, sizeof(now_min), "%lld", NOW_MIN);
    const char *want[] = {
        "flush", "smm:", now_min, "64", "2940", "1", /* header, n_parts */
        "t:3", "tk", "7", "8",                                         /* fence */
        "1", "a:acc", now_min, "0", "1", "a:acc:follow", "1",          /* one group */
        "0", "0", "0",                          /* no absolutes, no sketches, no days */
        "2", "messages", "1", "events_counted", "1",                   /* stats */
        "0",                                                           /* no links */
        "0",                                                           /* no admissions */
    };
    int n_want = (int)(sizeof(want) / sizeof(want[0]));
    cr_assert_eq(la.n, n_want, "%d arguments, want %d", la.n, n_want);
    for (int i = 0; i < n_want; i++) {
        /* Counts patched into placeholders carry leading zeros; compare as numbers. */
        if (i == 5 || i == 10 || i == 17 || i == 18 || i == 19 || i == 20 || i == 26) {
            /* n_parts, n_groups, n_abs, n_sketches, n_days, n_stats, n_adm */
            cr_assert_eq(tonumber(&la, i + 1), strtoll(want[i], NULL, 10), "ARGV[%d] = %s",
                         i + 1, la.arg[i]);
        } else {
            cr_assert_str_eq(la.arg[i], want[i], "ARGV[%d]", i + 1);
        }
    }
    lua_argv_free(&la);
    smm_argv_free(&av);
    smm_batch_free(&b);
    fixture_close(&fx);
}

Test(pipeline, like_unlike_cancel_keeps_type_counts)
{
    struct fixture fx;
    fixture_open(&fx, NULL);
    struct smm_batch b;
    batch_open(&fx, &b);
    char json[256];
    snprintf(json, sizeof(json),
             "{\"event_id\":\"e\",\"type\":\"like\",\"ts\":%lld,\"account_id\":\"a\","
             "\"content_id\":\"c\"}",
             NOW);
    feed(&fx, &b, json, -1, SMM_REJECT_NONE);
    snprintf(json, sizeof(json),
             "{\"event_id\":\"e\",\"type\":\"unlike\",\"ts\":%lld,\"account_id\":\"a\","
             "\"content_id\":\"c\"}",
             NOW);
    feed(&fx, &b, json, -1, SMM_REJECT_NONE);
    struct smm_argv av;
    smm_argv_init(&av);
    cr_assert_eq(smm_pipeline_encode_flush_begin(fx.pipe, NOW, &av), SMM_OK);
    cr_assert_eq(smm_pipeline_encode_flush_part(fx.pipe, &b, "t:0", "tk", -1, 2, &av), SMM_OK);
    cr_assert_eq(smm_pipeline_encode_flush_end(&av, 1), SMM_OK);
    struct lua_argv la;
    lua_argv_load(&la, &av);
    struct flush fl;
    parse_flush(&la, smm_pipeline_flush_writes(fx.pipe), &fl);
    char want[256];
    snprintf(want, sizeof(want), "a|a|%lld|like=1,unlike=1\nc|c|%lld|like=1,unlike=1\n", NOW_MIN,
             NOW_MIN);
    cr_assert_str_eq(fl.parts[0].groups, want);
    flush_free(&fl);
    lua_argv_free(&la);
    smm_argv_free(&av);
    smm_batch_free(&b);
    fixture_close(&fx);
}

Test(pipeline, encode_flush_many_entities)
{
    /* Enough groups that the argv buffers grow several times while placeholders wait to be
     * patched; the parser then checks every count still matches its section. */
    struct fixture fx;
    fixture_open(&fx, NULL);
    struct smm_batch b;
    batch_open(&fx, &b);
    char json[256];
    for (int i = 0; i < 20000; i++) {
        snprintf(json, sizeof(json),
                 "{\"event_id\":\"e%d\",\"type\":\"impression\",\"ts\":%lld,"
                 "\"account_id\":\"acct-%d\",\"content_id\":\"content-%d\",\"user_id\":\"u%d\"}",
                 i, NOW - (i % 3) * 60000, i % 10, i, i % 100);
        feed(&fx, &b, json, -1, SMM_REJECT_NONE);
    }
    struct smm_argv av;
    smm_argv_init(&av);
    cr_assert_eq(smm_pipeline_encode_flush_begin(fx.pipe, NOW, &av), SMM_OK);
    cr_assert_eq(smm_pipeline_encode_flush_part(fx.pipe, &b, "t:0", "tk", -1, 20000, &av),
                 SMM_OK);
    cr_assert_eq(smm_pipeline_encode_flush_end(&av, 1), SMM_OK);
    struct lua_argv la;
    lua_argv_load(&la, &av);
    /* Walk like the fence loop and count. */
    int i = 7 + 4;
    int64_t n_groups = tonumber(&la, i), impressions = 0;
    i++;
    for (int64_t g = 0; g < n_groups; g++) {
        int64_t k = tonumber(&la, i + 3);
        cr_assert_eq(k, 1);
        const char *f = ARGV(&la, i + 4);
        cr_assert(strlen(f) > 11 && !strcmp(f + strlen(f) - 11, ":impression"), "%s", f);
        if (strncmp(ARGV(&la, i), "c:", 2) == 0) {
            impressions += tonumber(&la, i + 5);
        }
        i += 4 + 2 * (int)k;
    }
    /* 20000 contents x 1 minute + 10 accounts x 3 minutes */
    cr_assert_eq(n_groups, 20000 + 30);
    cr_assert_eq(impressions, 20000);
    cr_assert_eq(tonumber(&la, i), 0, "no absolutes: nothing was loaded");
    cr_assert_eq(tonumber(&la, i + 1), 0);
    cr_assert_eq(tonumber(&la, i + 2), 0, "no sketches: nothing was loaded");
    i += 3;
    /* The reach goes ahead of the call: one lifetime PFADD per entity with users. Each
     * content saw one user. Account j's events are i = j, j+10, ...: their minute (i % 3)
     * and user (i % 100) repeat every 300, so an account has 30 distinct (minute, user)
     * pairs, each sent once to its lifetime, minute and day sketches. */
    const struct smm_cmds *w = smm_pipeline_flush_writes(fx.pipe);
    redisReader *rd = redisReaderCreate();
    cr_assert(rd && redisReaderFeed(rd, w->buf, w->used) == REDIS_OK);
    int64_t lifetimes = 0, users = 0, minute_users = 0;
    for (int x = 0; x < w->n; x++) {
        redisReply *r = NULL;
        cr_assert(redisReaderGetReply(rd, (void **)&r) == REDIS_OK && r);
        const char *key = r->element[1]->str;
        size_t kl = strlen(key);
        if (!strcmp(r->element[0]->str, "PFADD") && kl > 6 && !strcmp(key + kl - 6, ":reach")) {
            lifetimes++;
            users += (int64_t)r->elements - 2;
        } else if (!strcmp(r->element[0]->str, "PFADD") && strstr(key, ":reach:m:")) {
            minute_users += (int64_t)r->elements - 2;
        }
        freeReplyObject(r);
    }
    redisReaderFree(rd);
    cr_assert_eq(lifetimes, 20000 + 10);
    cr_assert_eq(users, 20000 + 10 * 30);
    cr_assert_eq(minute_users, 10 * 30);
    int64_t n_stats = tonumber(&la, i);
    cr_assert_eq(n_stats, 2);
    i += 1 + 2 * (int)n_stats;
    cr_assert_eq(tonumber(&la, i), 0, "no links");
    cr_assert_eq(tonumber(&la, i + 1), 0, "no admissions");
    cr_assert_eq(i + 2, la.n + 1);
    lua_argv_free(&la);
    smm_argv_free(&av);
    smm_batch_free(&b);
    fixture_close(&fx);
}

Test(pipeline, encode_tick)
{
    struct fixture fx;
    fixture_open(&fx, NULL);
    struct smm_argv av;
    smm_argv_init(&av);
    cr_assert_eq(smm_pipeline_encode_tick(fx.pipe, NOW, 2000, &av), SMM_OK);
    struct lua_argv la;
    lua_argv_load(&la, &av);
    /* tick: the common header, max_refresh (the script's SPOP count), now in ms and an
     * unused slot. */
    cr_assert_eq(la.n, 8);
    cr_assert_str_eq(ARGV(&la, 1), "tick");
    cr_assert_str_eq(ARGV(&la, 2), "smm:");
    cr_assert_eq(tonumber(&la, 3), NOW_MIN);
    cr_assert_str_eq(ARGV(&la, 4), "64");
    cr_assert_eq(tonumber(&la, 5), 2880 + 60);
    cr_assert_str_eq(ARGV(&la, 6), "2000");
    cr_assert_eq(tonumber(&la, 7), NOW);
    cr_assert_eq(tonumber(&la, 8), 0); /* unused */
    lua_argv_free(&la);

    /* The same argv after a flush: the tick resets it first. */
    cr_assert_eq(smm_pipeline_encode_flush_begin(fx.pipe, NOW, &av), SMM_OK);
    cr_assert_eq(smm_pipeline_encode_flush_end(&av, 0), SMM_OK);
    cr_assert_eq(smm_pipeline_encode_tick(fx.pipe, NOW + 59999 - 43000, 0, &av), SMM_OK);
    lua_argv_load(&la, &av);
    cr_assert_eq(la.n, 8);
    cr_assert_str_eq(ARGV(&la, 1), "tick");
    cr_assert_eq(tonumber(&la, 3), NOW_MIN);
    cr_assert_str_eq(ARGV(&la, 6), "0");
    cr_assert_eq(tonumber(&la, 7), NOW + 59999 - 43000);
    lua_argv_free(&la);
    smm_argv_free(&av);
    fixture_close(&fx);
}

Test(pipeline, shards_and_keep)
{
    struct fixture fx;
    fixture_open(&fx, "2d,90m,2h,1m");
    char err[256] = "";
    cr_assert_eq(smm_config_set(&fx.cfg, "redis.shards", "16", "test", err, sizeof(err)), SMM_OK,
                 "%s", err);
    struct smm_argv av;
    smm_argv_init(&av);
    cr_assert_eq(smm_pipeline_encode_tick(fx.pipe, 0, 1, &av), SMM_OK);
    struct lua_argv la;
    lua_argv_load(&la, &av);
    cr_assert_str_eq(ARGV(&la, 4), "16");
    cr_assert_eq(tonumber(&la, 5), 2880 + 60);
    cr_assert_eq(tonumber(&la, 3), 0);
    lua_argv_free(&la);
    /* Before 1970 the minute is floored, as the script's buckets are. */
    cr_assert_eq(smm_pipeline_encode_tick(fx.pipe, -1, 1, &av), SMM_OK);
    lua_argv_load(&la, &av);
    cr_assert_eq(tonumber(&la, 3), -1);
    lua_argv_free(&la);
    smm_argv_free(&av);
    fixture_close(&fx);
}

/* Sources, segments, competitor sets and the links of messages, replies, referrals and
 * conversions: what the script gets for the insights (docs/insights.md). */
Test(pipeline, insights_routing_and_links)
{
    struct fixture fx;
    char err[256] = "";
    cr_assert_eq(smm_config_init(&fx.cfg, err, sizeof(err)), SMM_OK, "%s", err);
    const char *sets[][2] = {{"kafka.bootstrap.servers", "x:1"},
                             {"sov.set.cat", "b1,b2"},
                             {"sov.set.big", "b9,b1"},
                             {"response.sla", "30m"},
                             {"response.account.ny.tz", "America/New_York"},
                             {"response.account.ny.sla", "2h"}};
    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        cr_assert_eq(smm_config_set(&fx.cfg, sets[i][0], sets[i][1], "test", err, sizeof(err)),
                     SMM_OK, "%s", err);
    }
    cr_assert_eq(smm_config_finish(&fx.cfg, err, sizeof(err)), SMM_OK, "%s", err);
    fx.pipe = smm_pipeline_new(&fx.cfg, err, sizeof(err));
    cr_assert_not_null(fx.pipe, "%s", err);
    struct smm_batch b;
    batch_open(&fx, &b);
    char json[512];
    /* 1795665103000 = 2026-11-26T00:31:43Z, a Thursday: 19:31:43 the day before in New York */
#define EV(fmt, ...) (snprintf(json, sizeof(json), fmt, __VA_ARGS__), \
                      feed(&fx, &b, json, -1, SMM_REJECT_NONE))
    EV("{\"event_id\":\"1\",\"type\":\"impression\",\"ts\":%lld,\"account_id\":\"b1\","
       "\"content_id\":\"p\",\"user_id\":\"u\",\"source\":\"news\",\"region\":\"eu\","
       "\"segment\":\"18-24\"}", NOW);
    EV("{\"event_id\":\"2\",\"type\":\"mention\",\"ts\":%lld,\"account_id\":\"b1\","
       "\"followers\":120,\"engagement\":7}", NOW);
    EV("{\"event_id\":\"3\",\"type\":\"mention\",\"ts\":%lld,\"account_id\":\"b3\","
       "\"followers\":5}", NOW);
    EV("{\"event_id\":\"4\",\"type\":\"message\",\"ts\":%lld,\"account_id\":\"ny\","
       "\"thread_id\":\"t\",\"user_id\":\"c\"}", NOW);
    EV("{\"event_id\":\"5\",\"type\":\"reply\",\"ts\":%lld,\"account_id\":\"b1\","
       "\"thread_id\":\"t\"}", NOW);
    EV("{\"event_id\":\"6\",\"type\":\"referral\",\"ts\":%lld,\"account_id\":\"b1\","
       "\"user_id\":\"v\",\"referrer_id\":\"r\",\"source\":\"news\"}", NOW);
    EV("{\"event_id\":\"7\",\"type\":\"conversion\",\"ts\":%lld,\"account_id\":\"b1\","
       "\"content_id\":\"p\",\"user_id\":\"v\",\"value\":19.995}", NOW);
    EV("{\"event_id\":\"8\",\"type\":\"message\",\"ts\":%lld,\"account_id\":\"b1\","
       "\"user_id\":\"c\"}", NOW); /* no thread: counted, not linked */
#undef EV
    struct smm_argv av;
    smm_argv_init(&av);
    cr_assert_eq(decide_empty(&fx, &b), 3, "b1's region, segment and source sketches");
    cr_assert_eq(smm_pipeline_encode_flush_begin(fx.pipe, NOW, &av), SMM_OK);
    cr_assert_eq(smm_pipeline_encode_flush_part(fx.pipe, &b, "t:0", "tk", -1, 8, &av), SMM_OK);
    cr_assert_eq(smm_pipeline_encode_flush_end(&av, 1), SMM_OK);
    struct lua_argv la;
    lua_argv_load(&la, &av);
    struct flush fl;
    parse_flush(&la, smm_pipeline_flush_writes(fx.pipe), &fl);
    const struct part *p = &fl.parts[0];
    int64_t m = NOW_MIN;
    /* Compare as sets of groups, whatever the metric order within a group. */
    const char *groups[] = {"a|b1|", "a|b3|", "a|ny|", "c|p|", "g|b1|region=eu|",
                            "g|b1|segment=18-24|", "s|b1|news|", "v|big|", "v|big|b1|",
                            "v|cat|", "v|cat|b1|"};
    cr_assert_eq(p->n_groups, 11, "groups:\n%s", p->groups);
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "%s%lld|", groups[i], (long long)m);
        const char *hit = strstr(p->groups, line);
        while (hit && hit != p->groups && hit[-1] != '\n') {
            hit = strstr(hit + 1, line);
        }
        cr_assert_not_null(hit, "no group %s in\n%s", line, p->groups);
    }
    cr_assert_not_null(strstr(p->groups, "value_cents=2000"), "19.995 rounds to 2000 cents");
    cr_assert_not_null(strstr(p->groups, "mention_reach=120"));
    cr_assert_not_null(strstr(p->groups, "mention_engagement=7"));
    /* Links in arrival order. Business clocks: UTC Thu 00:31:43 is before the 09:00
     * opening, so the default clock stands at Thursday's start of business; New York
     * (Wed 19:31:43 local) stands at Wednesday's close. Both are checked against the
     * clock function itself in test_bizhours; here the deadline (sla) and the shape. */
    char *l1 = strstr(p->links, "m|ny|t|c||");
    cr_assert_not_null(l1, "links:\n%s", p->links);
    char want_tail[64];
    snprintf(want_tail, sizeof(want_tail), "|%lld|", NOW);
    cr_assert_not_null(strstr(l1, want_tail));
    cr_assert_not_null(strstr(p->links, "|7200000\n"), "ny's own SLA: 2 h\n%s", p->links);
    cr_assert_not_null(strstr(p->links, "r|b1|t|||"), "%s", p->links);
    cr_assert_not_null(strstr(p->links, "f|b1|v|r|news|"), "%s", p->links);
    cr_assert_not_null(strstr(p->links, "|2000\n"), "conversion value in cents\n%s", p->links);
    cr_assert_eq(p->n_links, 4, "%s", p->links);
    const char *order[] = {"m|ny|", "r|b1|", "f|b1|", "v|b1|"};
    const char *at = p->links;
    for (size_t i = 0; i < 4; i++) {
        const char *x = strstr(at, order[i]);
        cr_assert(x == at, "link %zu is not %s:\n%s", i, order[i], p->links);
        at = strchr(x, '\n') + 1;
    }
    cr_assert_eq(p->n_adm, 3);
    /* Each sketch new (version 0), fed with its value's events in the batch (news: the
     * impression and the referral) at their latest minute, the landmark: so each is
     * admitted, and the expiry (retention.idle_days 90) is set with the first write. */
    char want_adm[1024];
    long long x_at = (NOW / 86400000 + 1 + 90) * 86400;
    snprintf(want_adm, sizeof(want_adm),
             "smm:ss:b1:region|0|smm:seg:b1:region|%lld|1|L=%lld;N=1;X=%lld;ceu=1;eeu=0||1:eu\n"
             "smm:ss:b1:segment|0|smm:seg:b1:segment|%lld|1|L=%lld;N=1;X=%lld;c18-24=1;"
             "e18-24=0||1:18-24\n"
             "smm:ss:b1:source|0|smm:seg:b1:source|%lld|1|L=%lld;N=2;X=%lld;cnews=2;enews=0||"
             "1:news\n",
             x_at, NOW_MIN * 60000, x_at, x_at, NOW_MIN * 60000, x_at, x_at, NOW_MIN * 60000,
             x_at);
    cr_assert_str_eq(p->adm, want_adm);
    flush_free(&fl);
    lua_argv_free(&la);
    smm_argv_free(&av);
    smm_batch_free(&b);
    fixture_close(&fx);
}

/* segments.enabled=false: no region/segment breakdowns, everything else unchanged. */
Test(pipeline, segments_disabled)
{
    struct fixture fx;
    char err[256] = "";
    cr_assert_eq(smm_config_init(&fx.cfg, err, sizeof(err)), SMM_OK, "%s", err);
    cr_assert_eq(smm_config_set(&fx.cfg, "kafka.bootstrap.servers", "x:1", "test", err,
                                sizeof(err)),
                 SMM_OK, "%s", err);
    cr_assert_eq(smm_config_set(&fx.cfg, "segments.enabled", "false", "test", err, sizeof(err)),
                 SMM_OK, "%s", err);
    cr_assert_eq(smm_config_finish(&fx.cfg, err, sizeof(err)), SMM_OK, "%s", err);
    fx.pipe = smm_pipeline_new(&fx.cfg, err, sizeof(err));
    cr_assert_not_null(fx.pipe, "%s", err);
    struct smm_batch b;
    batch_open(&fx, &b);
    char json[512];
    snprintf(json, sizeof(json),
             "{\"event_id\":\"1\",\"type\":\"impression\",\"ts\":%lld,\"account_id\":\"b1\","
             "\"content_id\":\"p\",\"user_id\":\"u\",\"source\":\"news\",\"region\":\"eu\","
             "\"segment\":\"18-24\"}",
             NOW);
    feed(&fx, &b, json, -1, SMM_REJECT_NONE);
    struct smm_argv av;
    smm_argv_init(&av);
    cr_assert_eq(decide_empty(&fx, &b), 1, "the source's sketch only");
    cr_assert_eq(smm_pipeline_encode_flush_begin(fx.pipe, NOW, &av), SMM_OK);
    cr_assert_eq(smm_pipeline_encode_flush_part(fx.pipe, &b, "t:0", "tk", -1, 1, &av), SMM_OK);
    cr_assert_eq(smm_pipeline_encode_flush_end(&av, 1), SMM_OK);
    struct lua_argv la;
    lua_argv_load(&la, &av);
    struct flush fl;
    parse_flush(&la, smm_pipeline_flush_writes(fx.pipe), &fl);
    cr_assert_eq(fl.parts[0].n_groups, 3, "content, account, source:\n%s", fl.parts[0].groups);
    cr_assert_null(strstr(fl.parts[0].groups, "g|"), "%s", fl.parts[0].groups);
    cr_assert(strncmp(fl.parts[0].adm, "smm:ss:b1:source|", 17) == 0 && fl.parts[0].n_adm == 1,
              "%s", fl.parts[0].adm);
    flush_free(&fl);
    lua_argv_free(&la);
    smm_argv_free(&av);
    smm_batch_free(&b);
    fixture_close(&fx);
}

Test(pipeline, encode_flush_one_batch_all_fences)
{
    /* Two partitions fold into one batch (as smm-processor does): the flush sends its
     * counters, reach, admissions, statistics and links once, with the first part; every
     * part carries its own fence. */
    struct fixture fx;
    fixture_open(&fx, NULL);
    struct smm_batch b;
    batch_open(&fx, &b);
    char json[512];
    snprintf(json, sizeof(json),
             "{\"event_id\":\"e1\",\"type\":\"impression\",\"ts\":%lld,\"account_id\":\"a\","
             "\"content_id\":\"c\",\"user_id\":\"u1\",\"region\":\"eu\"}", NOW);
    feed(&fx, &b, json, -1, SMM_REJECT_NONE); /* partition 0 */
    feed(&fx, &b, json, -1, SMM_REJECT_NONE); /* the same again, from partition 1 */
    snprintf(json, sizeof(json),
             "{\"event_id\":\"e2\",\"type\":\"like\",\"ts\":%lld,\"account_id\":\"a\","
             "\"content_id\":\"c\",\"user_id\":\"u2\",\"region\":\"eu\"}", NOW);
    feed(&fx, &b, json, -1, SMM_REJECT_NONE);
    snprintf(json, sizeof(json),
             "{\"event_id\":\"e3\",\"type\":\"message\",\"ts\":%lld,\"account_id\":\"a\","
             "\"thread_id\":\"t\",\"user_id\":\"u3\"}", NOW);
    feed(&fx, &b, json, -1, SMM_REJECT_NONE);
    feed(&fx, &b, "{", -1, SMM_REJECT_INVALID_JSON);

    struct smm_flush_fence fences[2] = {{.tp = "t:0", .token = "k0", .base = 10, .next = 11},
                                        {.tp = "t:1", .token = "k1", .base = -1, .next = 4}};
    struct smm_argv av;
    smm_argv_init(&av);
    for (int round = 0; round < 2; round++) { /* twice: encoding leaves the batch as it was */
        smm_pipeline_counters_settle(fx.pipe, 0, 0); /* (the loop's, between two encodes) */
        cr_assert_eq(decide_empty(&fx, &b), 1);
        cr_assert_eq(smm_pipeline_encode_flush(fx.pipe, &b, NOW, fences, 2, &av), SMM_OK);
        struct lua_argv la;
        lua_argv_load(&la, &av);
        struct flush fl;
        parse_flush(&la, smm_pipeline_flush_writes(fx.pipe), &fl);
        cr_assert_eq(fl.n_parts, 2);
        const struct part *p = &fl.parts[0];
        cr_assert_str_eq(p->tp, "t:0");
        cr_assert_str_eq(p->token, "k0");
        cr_assert_str_eq(p->base, "10");
        cr_assert_str_eq(p->next, "11");
        char want[1024];
        snprintf(want, sizeof(want),
                 "a|a|%lld|impression=2,like=1,message=1,engagement=1\n"
                 "c|c|%lld|impression=2,like=1,engagement=1\n"
                 "g|a|region=eu|%lld|impression=2,engagement=1\n",
                 NOW_MIN, NOW_MIN, NOW_MIN);
        cr_assert_str_eq(p->groups, want);
        /* u1 once per entity although both partitions saw it; u2 only liked and is reached
         * too (the message's u3 is not: not a content event) */
        snprintf(want, sizeof(want),
                 "a|a|%lld|u1\na|a|%lld|u2\nc|c|-|u1\nc|c|-|u2\ng|a|region=eu|-|u1\n"
                 "g|a|region=eu|-|u2\n",
                 NOW_MIN, NOW_MIN);
        cr_assert_str_eq(p->reach, want);
        cr_assert_eq(p->n_adm, 1);
        cr_assert_str_eq(p->stats, "dead_letter:invalid_json=1\ndead_letter=1\n"
                                   "events_counted=4\nmessages=5\n");
        cr_assert_eq(p->n_links, 1);
        cr_assert(strncmp(p->links, "m|a|t|u3|", 9) == 0, "%s", p->links);

        p = &fl.parts[1];
        cr_assert_str_eq(p->tp, "t:1");
        cr_assert_str_eq(p->token, "k1");
        cr_assert_str_eq(p->base, "-1");
        cr_assert_str_eq(p->next, "4");
        cr_assert_eq(p->n_groups, 0);
        cr_assert_eq(p->n_reach, 0);
        cr_assert_eq(p->n_adm, 0);
        cr_assert_str_eq(p->stats, "");
        cr_assert_eq(p->n_links, 0);
        flush_free(&fl);
        lua_argv_free(&la);
    }
    smm_argv_free(&av);
    smm_batch_free(&b);
    fixture_close(&fx);
}

/* The viral figures are written as snprintf's "%.0f" (counts) or "%.6g" would write them,
 * whichever path formats them: whole numbers of every width, both signs, -0, fractions,
 * the edges of the direct path (1e6 for %.6g, 1e15 for %.0f); non-finite values are "". */
Test(pipeline, encode_viral_numbers_as_printf)
{
    struct fixture fx;
    fixture_open(&fx, NULL);
    static const double values[] = {
        0.0, -0.0, 1, -1, 7, 10, 12, 99, 100, 4096, 99999, 999999, -999999, 1000000, 1234567,
        -1000000, 999999999999999.0, 1e15, -1e15, 1e16, 0.5, -0.5, 1.5, 2.5, 1.25, 0.1,
        123456.5, 999999.5, 1e-7, -3.75, 4503599627370495.5, 9007199254740993.0, 1e300,
        INFINITY, -INFINITY, NAN,
    };
    struct smm_argv av;
    smm_argv_init(&av);
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        double v = values[i];
        struct smm_viral_signals sig;
        memset(&sig, 0, sizeof(sig));
        sig.content_id = "post-1";
        sig.account_id = "acct-1";
        sig.reach_5m = v;   /* a count: "%.0f" */
        sig.accel = v;      /* a rate: "%.6g" */
        sig.spm_5m = v;     /* positional, "%.6g" (also in its pair) */
        sig.has_estimate = 1;
        sig.est.predicted_final = v; /* positional: "%.6g", 1e15 when not finite */
        smm_argv_reset(&av);
        cr_assert_eq(smm_pipeline_encode_viral(fx.pipe, NOW, 0, &sig, 1, &av), SMM_OK);
        char want_int[64], want_g[64], want_pf[64];
        snprintf(want_int, sizeof(want_int), "%.0f", v);
        snprintf(want_g, sizeof(want_g), "%.6g", v);
        snprintf(want_pf, sizeof(want_pf), "%.6g", isfinite(v) ? v : 1e15);
        if (!isfinite(v)) {
            want_int[0] = want_g[0] = '\0';
        }
        /* now, 4 settings, n, then cid, account, base_seq, state, alert_id, alert_json,
         * spm_5m, predicted_final, k, {field, value}*k, n_state, {field, value}*n_state. */
        size_t len;
        const char *a = smm_argv_get(&av, 12, &len);
        char spm[64];
        snprintf(spm, sizeof(spm), "%.6g", v);
        cr_assert(len == strlen(spm) && memcmp(a, spm, len) == 0, "spm_5m %.17g: %.*s", v,
                  (int)len, a);
        a = smm_argv_get(&av, 13, &len);
        cr_assert(len == strlen(want_pf) && memcmp(a, want_pf, len) == 0,
                  "predicted_final %.17g: %.*s, want %s", v, (int)len, a, want_pf);
        int found = 0;
        for (int k = 15; k + 1 < av.n; k += 2) {
            const char *name = smm_argv_get(&av, k, &len);
            const char *want = NULL;
            if (len == 8 && memcmp(name, "reach_5m", 8) == 0) {
                want = want_int;
            } else if ((len == 5 && memcmp(name, "accel", 5) == 0) ||
                       (len == 6 && memcmp(name, "spm_5m", 6) == 0) ||
                       (len == 15 && memcmp(name, "predicted_final", 15) == 0)) {
                want = want_g;
            }
            if (want) {
                a = smm_argv_get(&av, k + 1, &len);
                cr_assert(len == strlen(want) && memcmp(a, want, len) == 0,
                          "%.*s of %.17g: \"%.*s\", want \"%s\"", (int)8, name, v, (int)len, a,
                          want);
                found++;
            }
        }
        cr_assert_eq(found, 4, "value %.17g: %d of the 4 fields found", v, found);
    }
    smm_argv_free(&av);
    fixture_close(&fx);
}

/* Posts whose buckets the pipeline holds go as absolute values computed from the loaded
 * ones (processor/counters.h), with the deltas beside them; a flush's own writes are kept
 * only when it was applied, and a hash another writer moved is loaded again. */
static int plan_rows(struct fixture *fx, struct smm_batch *b, const struct smm_redis_hmget **rows)
{
    return smm_pipeline_counters_plan(fx->pipe, b, NOW, rows);
}

static void encode_one(struct fixture *fx, struct smm_batch *b, struct flush *fl,
                       struct lua_argv *la)
{
    struct smm_argv av;
    smm_argv_init(&av);
    cr_assert_eq(smm_pipeline_encode_flush_begin(fx->pipe, NOW, &av), SMM_OK);
    cr_assert_eq(smm_pipeline_encode_flush_part(fx->pipe, b, "t:0", "tk", 1, 2, &av), SMM_OK);
    cr_assert_eq(smm_pipeline_encode_flush_end(&av, 1), SMM_OK);
    lua_argv_load(la, &av);
    parse_flush(la, smm_pipeline_flush_writes(fx->pipe), fl);
    smm_argv_free(&av);
}

static void feed_like(struct fixture *fx, struct smm_batch *b, int n)
{
    static int seq;
    char json[256];
    snprintf(json, sizeof(json),
             "{\"event_id\":\"L%d\",\"type\":\"like\",\"ts\":%lld,\"account_id\":\"acc\","
             "\"content_id\":\"p\",\"user_id\":\"u%d\"}",
             ++seq, NOW, n);
    feed(fx, b, json, -1, SMM_REJECT_NONE);
}

/* Hands every planned load its reply: vals for the post p (and, when its sketch is read
 * too, sketch[0..sketch_len): NULL for no key), a new hash for the others. */
static int load_rows_sketch(struct fixture *fx, struct smm_batch *b, const char *post_key,
                            const char *const *vals, const char *sketch, size_t sketch_len)
{
    const struct smm_redis_hmget *rows;
    int n = plan_rows(fx, b, &rows);
    for (int i = 0; i < n; i++) {
        const char *got[SMM_REDIS_HMGET_MAX + 1] = {0};
        size_t lens[SMM_REDIS_HMGET_MAX + 1] = {0};
        int mine = !strcmp(rows[i].key, post_key);
        int nf = rows[i].n_fields;
        for (int j = 0; mine && j < nf; j++) {
            got[j] = vals[j];
            lens[j] = vals[j] ? strlen(vals[j]) : 0;
        }
        if (mine && rows[i].get_key) {
            got[nf] = sketch;
            lens[nf] = sketch_len;
        }
        smm_pipeline_counters_loaded(fx->pipe, i, got, lens);
    }
    return n;
}

static int load_rows(struct fixture *fx, struct smm_batch *b, const char *post_key,
                     const char *const *vals)
{
    return load_rows_sketch(fx, b, post_key, vals, NULL, 0);
}

Test(pipeline, counters_absolute_after_load)
{
    struct fixture fx;
    fixture_open(&fx, NULL);
    struct smm_batch b;
    batch_open(&fx, &b);
    feed_like(&fx, &b, 1);

    /* Nothing held: the post and its account are to load (v, p and their three buckets). */
    const struct smm_redis_hmget *rows;
    cr_assert_eq(plan_rows(&fx, &b, &rows), 2);
    char key[64], akey[64], m[24], h[24];
    snprintf(key, sizeof(key), "smm:{%d}:c:p", smm_redis_shard("c:p", 3, 64));
    snprintf(akey, sizeof(akey), "smm:{%d}:a:acc", smm_redis_shard("a:acc", 5, 64));
    snprintf(m, sizeof(m), "m%lld", NOW_MIN);
    snprintf(h, sizeof(h), "h%lld", NOW_MIN / 60);
    int pi = strcmp(rows[0].key, key) == 0 ? 0 : 1;
    cr_assert_str_eq(rows[pi].key, key);
    cr_assert_str_eq(rows[1 - pi].key, akey);
    cr_assert_eq(rows[pi].n_fields, 5);
    const char *want_fields[] = {"v", "p", "t", m, h};
    for (int j = 0; j < 5; j++) {
        cr_assert_str_eq(rows[pi].field[j], want_fields[j]);
    }
    char pruned[24];
    snprintf(pruned, sizeof(pruned), "%lld", NOW_MIN - 10);
    const char *vals[] = {"4", pruned, "engagement=3,like=3,view=7", NULL, "like=1,engagement=1"};
    cr_assert_eq(load_rows(&fx, &b, key, vals), 2);
    cr_assert_eq(plan_rows(&fx, &b, &rows), 0, "held now: nothing to load");

    struct lua_argv la;
    struct flush fl;
    encode_one(&fx, &b, &fl, &la);
    struct part *p = &fl.parts[0];
    cr_assert_eq(p->n_groups, 0, "nothing left for the script to add:\n%s", p->groups);
    cr_assert_eq(p->n_abs, 2);
    long long exp = NOW / 1000 + 90 * 86400; /* retention.idle_days 90 */
    char want[1024];
    snprintf(want, sizeof(want),
             /* the account: a new hash (p set with it); no leaderboard scores */
             "a:acc|0|n|%lld|t=like=1,engagement=1/like=1,engagement=1/;"
             "%s=like=1,engagement=1/like=1,engagement=1/;"
             "%s=like=1,engagement=1/like=1,engagement=1/\n"
             /* the post: loaded values plus the deltas; engagement scores its boards */
             "c:p|4|0|%lld|t=engagement=4,like=4,view=7/like=1,engagement=1/4;"
             "%s=like=1,engagement=1/like=1,engagement=1/1;"
             "%s=like=2,engagement=2/like=1,engagement=1/2\n",
             exp, m, h, exp, m, h);
    cr_assert_str_eq(p->abs, want);
    /* The account's daily buckets get its deltas (the script adds those). */
    snprintf(want, sizeof(want), "%lld|a:acc:engagement|1\n%lld|a:acc:like|1\n", NOW_MIN,
             NOW_MIN);
    cr_assert_str_eq(p->days, want);
    /* The user goes into the post's and the account's lifetime sketches they now hold (no
     * key was stored), written whole with the hash's expiry; the account's minute and day
     * sketches still get it by PFADD. */
    snprintf(want, sizeof(want), "%s|smm:a:acc:reach|%lld|1|1\n%s|smm:c:p:reach|%lld|1|1\n",
             akey, exp, key, exp);
    cr_assert_str_eq(p->sketches, want);
    snprintf(want, sizeof(want), "a|acc|%lld|u1\n", NOW_MIN);
    cr_assert_str_eq(p->reach, want);
    flush_free(&fl);
    lua_argv_free(&la);

    /* Applied: the next batch starts from what this one wrote (v 5), without a load, and
     * the expiry set a moment ago is not set again. */
    smm_pipeline_counters_settle(fx.pipe, 1, 0);
    smm_batch_clear(&b);
    feed_like(&fx, &b, 2);
    cr_assert_eq(plan_rows(&fx, &b, &rows), 0);
    encode_one(&fx, &b, &fl, &la);
    snprintf(want, sizeof(want),
             "a:acc|1|0||t=like=2,engagement=2/like=1,engagement=1/;"
             "%s=like=2,engagement=2/like=1,engagement=1/;"
             "%s=like=2,engagement=2/like=1,engagement=1/\n"
             "c:p|5|0||t=engagement=5,like=5,view=7/like=1,engagement=1/5;"
             "%s=like=2,engagement=2/like=1,engagement=1/2;"
             "%s=like=3,engagement=3/like=1,engagement=1/3\n",
             m, h, m, h);
    cr_assert_str_eq(fl.parts[0].abs, want);
    /* The sketches hold both users now; their expiry stands. */
    snprintf(want, sizeof(want), "%s|smm:a:acc:reach||1|2\n%s|smm:c:p:reach||1|2\n", akey,
             key);
    cr_assert_str_eq(fl.parts[0].sketches, want);
    flush_free(&fl);
    lua_argv_free(&la);

    /* Not applied (or not known to be): forgotten, loaded again. */
    smm_pipeline_counters_settle(fx.pipe, 0, 0);
    cr_assert_eq(load_rows(&fx, &b, key, vals), 2);
    encode_one(&fx, &b, &fl, &la);
    cr_assert_eq(fl.parts[0].n_abs, 2);
    flush_free(&fl);
    lua_argv_free(&la);
    /* The script reports a hash another writer moved: forgotten although applied. */
    smm_pipeline_counters_conflict(fx.pipe, key, strlen(key));
    smm_pipeline_counters_settle(fx.pipe, 1, 0);
    cr_assert_eq(plan_rows(&fx, &b, &rows), 1);
    cr_assert_str_eq(rows[0].key, key);

    /* An account the script adds to itself in this batch (a customer message: its answer
     * and response time go to the account's link buckets, smm.lua write_links) still goes
     * as values, and stays held. */
    smm_batch_clear(&b);
    char json[256];
    snprintf(json, sizeof(json),
             "{\"event_id\":\"M1\",\"type\":\"message\",\"ts\":%lld,\"account_id\":\"acc\","
             "\"thread_id\":\"t1\",\"user_id\":\"cust\"}",
             NOW);
    feed(&fx, &b, json, -1, SMM_REJECT_NONE);
    cr_assert_eq(plan_rows(&fx, &b, &rows), 0, "the held account is not loaded again");
    encode_one(&fx, &b, &fl, &la);
    cr_assert_eq(fl.parts[0].n_abs, 1);
    cr_assert_str_eq(fl.parts[0].groups, "");
    flush_free(&fl);
    lua_argv_free(&la);
    smm_pipeline_counters_settle(fx.pipe, 1, 0);
    smm_batch_clear(&b);
    feed_like(&fx, &b, 3);
    cr_assert_eq(plan_rows(&fx, &b, &rows), 1, "the post only: the account is still held");
    cr_assert_str_eq(rows[0].key, key);

    smm_batch_free(&b);
    fixture_close(&fx);
}

/* A post's stored sketch is loaded with its hash (GET beside the HMGET) and the batch's
 * users are added to it; a user it already counts writes nothing; with no memory for
 * sketches (redis.cache_sketch_mb 0) the users go to PFADD as before. */
Test(pipeline, counters_sketch_loaded)
{
    struct fixture fx;
    fixture_open(&fx, NULL);
    struct smm_batch b;
    batch_open(&fx, &b);
    feed_like(&fx, &b, 7);
    const struct smm_redis_hmget *rows;
    cr_assert_eq(plan_rows(&fx, &b, &rows), 2);
    char key[64];
    snprintf(key, sizeof(key), "smm:{%d}:c:p", smm_redis_shard("c:p", 3, 64));
    int pi = strcmp(rows[0].key, key) == 0 ? 0 : 1;
    cr_assert_str_eq(rows[pi].get_key, "smm:c:p:reach");
    cr_assert_str_eq(rows[1 - pi].get_key, "smm:a:acc:reach", "the account's lifetime too");

    /* Stored: a sketch of u1..u3 (as PFADD builds it) */
    struct smm_hll *h = smm_hll_new();
    cr_assert_not_null(h);
    for (int u = 1; u <= 3; u++) {
        char user[8];
        snprintf(user, sizeof(user), "u%d", u);
        smm_hll_add(h, user, strlen(user));
    }
    unsigned char stored[SMM_HLL_SERIALIZED_MAX];
    size_t len;
    cr_assert_eq(smm_hll_serialize(h, SMM_HLL_SPARSE_MAX_BYTES, stored, sizeof(stored), &len),
                 SMM_OK);
    const char *vals[] = {"4", "0", "like=3", NULL, NULL};
    cr_assert_eq(load_rows_sketch(&fx, &b, key, vals, (const char *)stored, len), 2);
    cr_assert_eq(plan_rows(&fx, &b, &rows), 0, "held with its sketch: nothing to load");
    struct lua_argv la;
    struct flush fl;
    encode_one(&fx, &b, &fl, &la);
    char want[256];
    char akey[64];
    snprintf(akey, sizeof(akey), "smm:{%d}:a:acc", smm_redis_shard("a:acc", 5, 64));
    long long exp = NOW / 1000 + 90 * 86400;
    snprintf(want, sizeof(want), "%s|smm:a:acc:reach|%lld|1|1\n%s|smm:c:p:reach|%lld|1|4\n",
             akey, exp, key, exp);
    cr_assert_str_eq(fl.parts[0].sketches, want, "the account's none stored, and u7; the "
                                                 "post's u1..u3 and u7");
    flush_free(&fl);
    lua_argv_free(&la);
    smm_pipeline_counters_settle(fx.pipe, 1, 0);

    /* u2 again: counted; the sketch does not change, so the script writes it only should
     * the post's version check fail (then it merges it: Redis may lack u2). */
    smm_batch_clear(&b);
    feed_like(&fx, &b, 2);
    encode_one(&fx, &b, &fl, &la);
    cr_assert_eq(fl.parts[0].n_abs, 2);
    snprintf(want, sizeof(want), "%s|smm:a:acc:reach||1|2\n%s|smm:c:p:reach||0|4\n", akey,
             key);
    cr_assert_str_eq(fl.parts[0].sketches, want);
    cr_assert(!strstr(fl.parts[0].reach, "|p|"), "%s", fl.parts[0].reach);
    flush_free(&fl);
    lua_argv_free(&la);
    smm_pipeline_counters_settle(fx.pipe, 1, 0);
    smm_batch_free(&b);
    fixture_close(&fx);

    fixture_open_set(&fx, "redis.cache_sketch_mb", "0");
    batch_open(&fx, &b);
    feed_like(&fx, &b, 7);
    cr_assert_eq(plan_rows(&fx, &b, &rows), 2);
    cr_assert(!rows[0].get_key && !rows[1].get_key);
    cr_assert_eq(load_rows(&fx, &b, key, vals), 2);
    encode_one(&fx, &b, &fl, &la);
    cr_assert_eq(fl.parts[0].n_abs, 2, "the values are still computed");
    cr_assert_eq(fl.parts[0].n_sketches, 0);
    cr_assert(strstr(fl.parts[0].reach, "c|p|-|u7\n"), "%s", fl.parts[0].reach);
    flush_free(&fl);
    lua_argv_free(&la);
    smm_hll_destroy(h);
    smm_batch_free(&b);
    fixture_close(&fx);
}

/* A segment value keeps some counters only (impressions, engagement, conversions): a view
 * moves none. Its sketch is held all the same: a batch of views still moves its hash's
 * version (a record without buckets when its values are held, else HINCRBY v first in
 * the transaction), so no other holder writes its copy over these users. */
Test(pipeline, a_segment_values_views_move_its_version)
{
    struct fixture fx;
    fixture_open(&fx, NULL);
    struct smm_batch b;
    batch_open(&fx, &b);
    const char *ev = "{\"event_id\":\"%s\",\"type\":\"%s\",\"ts\":%lld,\"account_id\":\"acc\","
                     "\"content_id\":\"p\",\"user_id\":\"%s\",\"region\":\"eu\"}";
    const char *seg_sketch = "smm:g:acc|region=eu:reach";
    char json[256];
    snprintf(json, sizeof(json), ev, "E1", "impression", NOW, "u1");
    feed(&fx, &b, json, -1, SMM_REJECT_NONE);
    decide_empty(&fx, &b);
    const struct smm_redis_hmget *rows;
    int n = plan_rows(&fx, &b, &rows), seg = -1;
    for (int i = 0; i < n; i++) {
        if (rows[i].get_key && strcmp(rows[i].get_key, seg_sketch) == 0) {
            seg = i;
        }
    }
    cr_assert(seg >= 0, "the segment value's sketch is loaded with its hash");
    const char *none[] = {NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    load_rows(&fx, &b, "-", none);
    struct lua_argv la;
    struct flush fl;
    encode_one(&fx, &b, &fl, &la);
    cr_assert(strstr(fl.parts[0].sketches, seg_sketch), "%s", fl.parts[0].sketches);
    flush_free(&fl);
    lua_argv_free(&la);
    smm_pipeline_counters_settle(fx.pipe, 1, 0);

    /* Views only: no bucket moves, the version does, and the user is in the copy. */
    smm_batch_clear(&b);
    snprintf(json, sizeof(json), ev, "E2", "view", NOW, "u9");
    feed(&fx, &b, json, -1, SMM_REJECT_NONE);
    decide_empty(&fx, &b);
    cr_assert_eq(plan_rows(&fx, &b, &rows), 0, "all held");
    encode_one(&fx, &b, &fl, &la);
    char want[512];
    snprintf(want, sizeof(want), "|smm:g:acc|region=eu:reach||1|2\n");
    cr_assert(strstr(fl.parts[0].sketches, want), "%s", fl.parts[0].sketches);
    cr_assert(!strstr(fl.parts[0].reach, "region=eu"), "%s", fl.parts[0].reach);
    cr_assert(strstr(fl.parts[0].abs, "g:acc|region=eu|1|0||\n"), "a record without buckets: %s",
              fl.parts[0].abs);
    cr_assert_eq(fl.parts[0].n_moves, 0);
    flush_free(&fl);
    lua_argv_free(&la);
    smm_batch_free(&b);
    fixture_close(&fx);

    /* Values not held (not loaded): views move the version by HINCRBY. */
    fixture_open(&fx, NULL);
    batch_open(&fx, &b);
    snprintf(json, sizeof(json), ev, "E3", "view", NOW, "u9");
    feed(&fx, &b, json, -1, SMM_REJECT_NONE);
    decide_empty(&fx, &b);
    encode_one(&fx, &b, &fl, &la);
    cr_assert(strstr(fl.parts[0].reach, "g|acc|region=eu|-|u9\n"), "%s", fl.parts[0].reach);
    cr_assert_eq(fl.parts[0].n_moves, 1, "the segment value's only: %d", fl.parts[0].n_moves);
    flush_free(&fl);
    lua_argv_free(&la);
    smm_batch_free(&b);
    fixture_close(&fx);
}
