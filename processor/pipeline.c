/* processor/pipeline.c - decode, fold, encode. See pipeline.h.
 *
 * The encoding mirrors connectors/lua/smm.lua argument by argument; the two change
 * together. Counts that are known only at the end (number of groups) are reserved as
 * fixed-width placeholders and patched in place. */
#include "processor/pipeline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "metrics/alert_text.h"
#include "metrics/bizhours.h"
#include "connectors/redis_sink.h"
#include "metrics/hash.h"
#include "metrics/hll.h"
#include "metrics/packed.h"
#include "metrics/viral_state.h"
#include "processor/counters.h"
#include "processor/tz.h"

/* An account's business hours and reply deadline; accounts without their own entry share
 * the default (index 0). Zones are loaded once per distinct name. */
struct resp_account {
    const char *account; /* NULL for the default */
    struct smm_bizhours bh;
    int64_t sla_ms;
};

struct tz_cache {
    const char *name;
    struct smm_tz_span *spans;
    int n;
};

struct smm_pipeline {
    const struct smm_config *cfg;
    struct resp_account *resp;
    int n_resp;
    struct tz_cache *zones;
    int n_zones;
    struct smm_event ev; /* the last event decoded by feed() */
    struct smm_decode_limits lim;
    /* The decoder's parse trees (NULL: malloc per value). Its limit lets no payload within
     * limits.max_payload_bytes exhaust it. */
    struct smm_event_json_arena *arena;
    int64_t keep_minutes;
    int64_t late; /* see smm_pipeline_late() */
    /* Viral decisions: the persisted state of the posts this processor decides for
     * (a chained hash table by content id), and the posts the last encode_viral decided. */
    struct vpost **vtab;
    size_t vcap, vn;
    struct vpost **vlast;
    size_t n_vlast, vlast_cap;
    /* Counters the processor computes (processor/counters.h): its copy of the post hashes,
     * the loads the next flush needs (rows, their entries and field names), and the
     * entries the flush being settled wrote. */
    struct smm_counters *cc;
    struct smm_redis_hmget *loads;
    struct smm_counters_entry **load_ent;
    char (*load_names)[SMM_COUNTERS_FIELDS][SMM_COUNTERS_NAME];
    char **load_gets; /* the sketch key a load also reads (posts with users), or NULL */
    int n_loads, cap_loads;
    /* Admission sketches: the loads the next flush needs (rows, their entries and set
     * keys), and the sketches the batch being encoded feeds (decide(), then encode). */
    struct smm_redis_hashset *adm_rows;
    struct smm_counters_entry **adm_ent;
    int n_adm_rows, cap_adm_rows, cap_adm_ent;
    struct smm_counters_entry **adm_touch;
    int n_adm_touch, cap_adm_touch;
    uint32_t adm_mark; /* marks entries already listed, per plan or decide */
    struct smm_counters_entry **pend;
    size_t n_pend, cap_pend;
    int64_t enc_now_ms; /* now of the flush being encoded */
    struct abs_scratch *abs; /* abs_encode()'s working space */
    struct smm_counters_entry **held; /* per entity of the part being encoded: its entry
                                       * when its values go as such (held_entry) */
    int cap_held;
    unsigned char *sketch_buf; /* a serialised sketch (SMM_HLL_SERIALIZED_MAX bytes) */
    struct smm_cmds pre; /* the flush's reach writes, in its transaction (reach_writes) */
    /* The flush's counter values as plain commands (plain_record, plain_tops), the
     * leaderboard scores they carry, and where the check's counts are. */
    struct smm_flush_plain plain;
    struct top_score *tops;
    int n_tops, cap_tops;
    int chk_n_at, chk_parts_at, plain_ok;
    int64_t chk_n, chk_parts, plain_n;
    /* Who wrote last (see proven() and smm_pipeline_counters_settle()): every flush sets
     * <prefix>wseq to a value of its own (wseq_next, "<writer>#<n>"). While it still
     * holds the value of our last applied flush (wseq_mine), no other writer committed
     * since, and an entry known current in this epoch needs no version check. epoch moves
     * whenever another writer may have committed, which makes every entry's copy unproven
     * until it is checked or loaded again. */
    char writer[128];
    uint64_t wseq_n, epoch;
    char wseq_mine[160], wseq_next[160];
    int alone;     /* the last check found wseq_mine stored: nobody else committed */
    int64_t day_exp[4]; /* the daily buckets plain_days() gave their EXPIREAT this flush */
    int n_day_exp;
    int enc_flush; /* a flush is encoded and not settled yet */
};

/* One post's new engagement in a bucket, for that bucket's leaderboard. */
struct top_score {
    char field[SMM_COUNTERS_NAME];
    long long score;
    const char *id;
};

/* abs_encode()'s working space: one entity's values and deltas. */
struct abs_scratch {
    struct smm_packed cur, d;
    char vals[SMM_COUNTERS_FIELDS][SMM_PACKED_TEXT_MAX];
    char dels[SMM_COUNTERS_FIELDS][SMM_PACKED_TEXT_MAX];
};

/* The stored state of one post (smm:v:<id> state, state_since_ms, seq, below), and the
 * one a decision in flight would make it. */
struct vpost {
    struct vpost *next;
    uint64_t h;
    struct smm_viral_state_rec st, pend;
    int has_pend, conflict;
    char id[];
};

int64_t smm_pipeline_minute(int64_t ts_ms)
{
    int64_t q = ts_ms / 60000;
    return (ts_ms % 60000 != 0 && ts_ms < 0) ? q - 1 : q;
}

static void window_label(int64_t minutes, char *out, size_t size)
{
    if (minutes % 1440 == 0) {
        snprintf(out, size, "%lldd", (long long)(minutes / 1440));
    } else if (minutes % 60 == 0) {
        snprintf(out, size, "%lldh", (long long)(minutes / 60));
    } else {
        snprintf(out, size, "%lldm", (long long)minutes);
    }
    /* 24h reads better than 1d on dashboards. */
    if (minutes == 1440) {
        snprintf(out, size, "24h");
    }
}

void smm_pipeline_window_label(int64_t minutes, char *out, size_t size)
{
    window_label(minutes, out, size);
}

int64_t smm_pipeline_late(const struct smm_pipeline *pipe)
{
    return pipe->late;
}

/* Loads (or reuses) the span table of a zone. key names the setting for errors. */
static int zone_get(struct smm_pipeline *pipe, const char *name, const char *key,
                    const struct smm_tz_span **spans, int *n, char *errstr, size_t errstr_size)
{
    for (int i = 0; i < pipe->n_zones; i++) {
        if (strcmp(pipe->zones[i].name, name) == 0) {
            *spans = pipe->zones[i].spans;
            *n = pipe->zones[i].n;
            return SMM_OK;
        }
    }
    struct tz_cache *z = &pipe->zones[pipe->n_zones];
    /* Spans cover every event time the processor accepts, and three years ahead. Set-up
     * reads the clock once; decoding and folding never do. */
    int64_t now = (int64_t)(time(NULL) / 86400) * 86400000; /* by day: see processor/tz.c */
    int64_t from = now - pipe->cfg->retention_ms - 2 * 86400000LL;
    int64_t to = now + 3 * 366 * 86400000LL;
    char err[256];
    if (smm_tz_load(name, from, to, &z->spans, &z->n, err, sizeof(err)) != SMM_OK) {
        snprintf(errstr, errstr_size, "%s: %s", key, err);
        return SMM_ERR;
    }
    z->name = name;
    pipe->n_zones++;
    *spans = z->spans;
    *n = z->n;
    return SMM_OK;
}

static int resp_setup(struct smm_pipeline *pipe, struct resp_account *r, const char *account,
                      char *errstr, size_t errstr_size)
{
    const struct smm_config *cfg = pipe->cfg;
    const char *tz, *hours;
    int64_t sla;
    char key_tz[300], key_hours[300];
    if (account) {
        smm_config_response_for(cfg, account, &tz, &hours, &sla);
        snprintf(key_tz, sizeof(key_tz), "response.account.%s.tz", account);
        snprintf(key_hours, sizeof(key_hours), "response.account.%s.hours", account);
    } else {
        tz = cfg->response_tz;
        hours = cfg->response_hours;
        sla = cfg->response_sla_ms;
        snprintf(key_tz, sizeof(key_tz), "response.tz");
        snprintf(key_hours, sizeof(key_hours), "response.hours");
    }
    char err[256];
    r->account = account;
    r->sla_ms = sla;
    if (smm_bizhours_parse(hours, &r->bh, err, sizeof(err)) != SMM_OK) {
        snprintf(errstr, errstr_size, "%s: %s", key_hours, err);
        return SMM_ERR;
    }
    return zone_get(pipe, tz, key_tz, &r->bh.tz, &r->bh.n_tz, errstr, errstr_size);
}

static const struct resp_account *resp_for(const struct smm_pipeline *pipe, const char *account)
{
    for (int i = 1; i < pipe->n_resp; i++) {
        if (strcmp(pipe->resp[i].account, account) == 0) {
            return &pipe->resp[i];
        }
    }
    return &pipe->resp[0];
}

struct smm_pipeline *smm_pipeline_new(const struct smm_config *cfg, char *errstr,
                                      size_t errstr_size)
{
    struct smm_pipeline *pipe = calloc(1, sizeof(*pipe));
    int n = cfg->n_response_accounts + 1;
    if (pipe) {
        pipe->resp = calloc((size_t)n, sizeof(*pipe->resp));
        pipe->zones = calloc((size_t)n, sizeof(*pipe->zones));
    }
    if (!pipe || !pipe->resp || !pipe->zones) {
        snprintf(errstr, errstr_size, "out of memory");
        smm_pipeline_destroy(pipe);
        return NULL;
    }
    pipe->cfg = cfg;
    for (int i = 0; i < n; i++) {
        const char *acct = i ? cfg->response_accounts[i - 1].account : NULL;
        if (resp_setup(pipe, &pipe->resp[i], acct, errstr, errstr_size) != SMM_OK) {
            smm_pipeline_destroy(pipe);
            return NULL;
        }
        pipe->n_resp++;
    }
    pipe->cfg = cfg;
    pipe->lim.max_payload_bytes = (size_t)cfg->max_payload_bytes;
    pipe->lim.max_id_bytes = (size_t)cfg->max_id_bytes;
    pipe->lim.retention_ms = cfg->retention_ms;
    pipe->lim.max_future_ms = cfg->max_future_ms;
    pipe->arena =
        smm_event_json_arena_new(smm_event_json_arena_size(pipe->lim.max_payload_bytes));
    if (!pipe->arena) {
        snprintf(errstr, errstr_size, "out of memory");
        smm_pipeline_destroy(pipe);
        return NULL;
    }
    /* Hour reach sketches (and the hour sets) live this long after their hour: the longest
     * window, and at least 48 h (the previous period of a 24 h window), plus the grace. */
    int64_t longest = cfg->window_min[cfg->n_windows - 1];
    pipe->keep_minutes = (longest > 48 * 60 ? longest : 48 * 60) +
                         (cfg->window_grace_ms + 59999) / 60000;
    pipe->cc = smm_counters_new((size_t)cfg->counters_cache_entries,
                                (size_t)cfg->counters_cache_sketch_mb << 20);
    pipe->abs = calloc(1, sizeof(*pipe->abs));
    smm_cmds_init(&pipe->plain.cmds);
    smm_argv_init(&pipe->plain.check);
    if (!pipe->cc || !pipe->abs) {
        snprintf(errstr, errstr_size, "out of memory");
        smm_pipeline_destroy(pipe);
        return NULL;
    }
    /* A writer id no other pipeline has had: host, process, clock and a count within
     * this process (tests run several pipelines in one). */
    static unsigned long made;
    char host[64] = "host";
    gethostname(host, sizeof(host) - 1);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(pipe->writer, sizeof(pipe->writer), "%s/%d/%lx.%lx/%lu", host, (int)getpid(),
             (unsigned long)ts.tv_sec, (unsigned long)ts.tv_nsec, ++made);
    pipe->epoch = 1;
    return pipe;
}

void smm_pipeline_destroy(struct smm_pipeline *pipe)
{
    if (!pipe) {
        return;
    }
    for (int i = 0; i < pipe->n_zones; i++) {
        free(pipe->zones[i].spans);
    }
    free(pipe->zones);
    free(pipe->resp);
    smm_event_json_arena_destroy(pipe->arena);
    for (size_t i = 0; i < pipe->vcap; i++) {
        for (struct vpost *vp = pipe->vtab[i], *nx; vp; vp = nx) {
            nx = vp->next;
            free(vp);
        }
    }
    free(pipe->vtab);
    free(pipe->vlast);
    smm_counters_free(pipe->cc);
    free(pipe->abs);
    free(pipe->held);
    free(pipe->loads);
    free(pipe->load_ent);
    free(pipe->load_names);
    for (int r = 0; r < pipe->n_loads; r++) {
        free(pipe->load_gets[r]);
    }
    free(pipe->load_gets);
    free(pipe->sketch_buf);
    smm_cmds_free(&pipe->pre);
    smm_cmds_free(&pipe->plain.cmds);
    smm_argv_free(&pipe->plain.check);
    free(pipe->tops);
    for (int r = 0; r < pipe->n_adm_rows; r++) {
        free((char *)pipe->adm_rows[r].set_key);
    }
    free(pipe->adm_rows);
    free(pipe->adm_ent);
    free(pipe->adm_touch);
    free(pipe->pend);
    free(pipe);
}

int smm_batch_init(struct smm_batch *b, const struct smm_pipeline *pipe, char *errstr,
                   size_t errstr_size)
{
    memset(b, 0, sizeof(*b));
    b->agg = smm_agg_new(pipe->cfg->engagement_mask, errstr, errstr_size);
    return b->agg ? SMM_OK : SMM_ERR;
}

void smm_batch_clear(struct smm_batch *b)
{
    smm_agg_clear(b->agg);
    memset(b->rejects, 0, sizeof(b->rejects));
    b->messages = 0;
    b->n_adm = 0;
    b->adm_decided = 0;
}

void smm_batch_free(struct smm_batch *b)
{
    smm_agg_destroy(b->agg);
    b->agg = NULL;
    free(b->adm);
    b->adm = NULL;
    b->n_adm = b->cap_adm = 0;
}

/* Writes s (n bytes, then a NUL) at out and returns the end, for building ids and field
 * names on the hot path: snprintf("%s|%s") spent ~900 instructions a call parsing its
 * format, a tenth of the processor's per-event work. Callers size out for the result. */
static char *put(char *out, const char *s, size_t n)
{
    memcpy(out, s, n);
    out[n] = '\0';
    return out + n;
}

/* The entities beyond content and account an event counts under (source, region, segment,
 * competitor sets), and the links the state script matches (docs/insights.md). */
static int route(const struct smm_pipeline *pipe, struct smm_agg *agg,
                 const struct smm_event *ev)
{
    const struct smm_config *cfg = pipe->cfg;
    /* "<account>|segment=<value>": ids are at most SMM_EVENT_ID_MAX bytes. */
    char id[2 * SMM_EVENT_ID_MAX + 32];
    size_t split = strlen(ev->account_id);
    char *rest = put(id, ev->account_id, split);
    int rc = 0;
    if (ev->flags & SMM_EVF_SOURCE) {
        put(put(rest, "|", 1), ev->source, strlen(ev->source));
        rc |= smm_agg_add_split(agg, SMM_AGG_SOURCE, id, (int)split, ev);
    }
    if ((ev->flags & SMM_EVF_REGION) && cfg->segments_enabled) {
        put(put(rest, "|region=", 8), ev->region, strlen(ev->region));
        rc |= smm_agg_add_split(agg, SMM_AGG_SEGMENT, id, (int)split, ev);
    }
    if ((ev->flags & SMM_EVF_SEGMENT) && cfg->segments_enabled) {
        put(put(rest, "|segment=", 9), ev->segment, strlen(ev->segment));
        rc |= smm_agg_add_split(agg, SMM_AGG_SEGMENT, id, (int)split, ev);
    }
    if (ev->type == SMM_EV_MENTION) {
        for (int i = 0; i < cfg->n_sov_sets; i++) {
            const struct smm_sov_set *set = &cfg->sov_sets[i];
            for (int j = 0; j < set->n_brands; j++) {
                if (strcmp(set->brands[j], ev->account_id) == 0) {
                    snprintf(id, sizeof(id), "%s|%s", set->name, ev->account_id);
                    rc |= smm_agg_add_to(agg, SMM_AGG_VOICE, id, ev);
                    rc |= smm_agg_add_to(agg, SMM_AGG_VOICE, set->name, ev);
                    break;
                }
            }
        }
    }
    struct smm_agg_link l = {.type = ev->type, .account = ev->account_id, .ts_ms = ev->ts_ms};
    int linked = 0;
    if ((ev->type == SMM_EV_MESSAGE || ev->type == SMM_EV_REPLY) &&
        (ev->flags & SMM_EVF_THREAD)) {
        const struct resp_account *r = resp_for(pipe, ev->account_id);
        l.a = ev->thread_id;
        l.b = ev->type == SMM_EV_MESSAGE ? ev->user_id : "";
        l.biz_ms = smm_bizhours_clock(&r->bh, ev->ts_ms);
        l.x = ev->type == SMM_EV_MESSAGE ? r->sla_ms : 0;
        linked = 1;
    } else if (ev->type == SMM_EV_REFERRAL && (ev->flags & SMM_EVF_USER)) {
        l.a = ev->user_id;
        l.b = ev->referrer_id;
        l.c = ev->source;
        linked = 1;
    } else if (ev->type == SMM_EV_CONVERSION && (ev->flags & SMM_EVF_USER)) {
        l.a = ev->user_id;
        l.c = ev->source;
        l.x = (ev->flags & SMM_EVF_VALUE) ? smm_agg_cents(ev->value) : 0;
        linked = 1;
    }
    if (linked) {
        rc |= smm_agg_link_add(agg, &l);
    }
    return rc ? SMM_ERR : SMM_OK;
}

int smm_pipeline_feed(struct smm_pipeline *pipe, struct smm_batch *b, const void *buf,
                      size_t len, int64_t kafka_ts_ms, int64_t now_ms, struct smm_reject *rej)
{
    struct smm_event *ev = &pipe->ev;
    b->messages++;
    if (smm_event_json_decode(buf, len, kafka_ts_ms, now_ms, &pipe->lim, pipe->arena, ev,
                              rej) != SMM_OK) {
        b->rejects[rej->reason]++;
        return SMM_ERR;
    }
    if (smm_agg_add(b->agg, ev) != SMM_OK || route(pipe, b->agg, ev) != SMM_OK) {
        /* Out of memory is not the event's fault and must not lose it: the caller stops,
         * and a restart replays from the last stored offset. */
        b->messages--;
        return SMM_PIPELINE_OOM;
    }
    pipe->late += ev->ts_ms < now_ms - SMM_PIPELINE_LATE_MS;
    return SMM_OK;
}

const struct smm_event *smm_pipeline_decode(struct smm_pipeline *pipe, const void *buf,
                                            size_t len, int64_t kafka_ts_ms, int64_t now_ms)
{
    struct smm_reject rej;
    if (smm_event_json_decode(buf, len, kafka_ts_ms, now_ms, &pipe->lim, pipe->arena, &pipe->ev,
                              &rej) != SMM_OK) {
        return NULL;
    }
    return &pipe->ev;
}

const struct smm_event *smm_pipeline_last_event(const struct smm_pipeline *pipe)
{
    return &pipe->ev;
}

static int header(const struct smm_pipeline *pipe, const char *mode, int64_t now_ms,
                  struct smm_argv *av)
{
    smm_argv_reset(av);
    int rc = smm_argv_add_str(av, mode);
    rc |= smm_argv_add_str(av, pipe->cfg->prefix);
    rc |= smm_argv_add_int(av, smm_pipeline_minute(now_ms));
    rc |= smm_argv_add_int(av, pipe->cfg->redis_shards);
    rc |= smm_argv_add_int(av, pipe->keep_minutes);
    return rc ? SMM_ERR : SMM_OK;
}


#define PLACEHOLDER "0000000000" /* ten digits: room for any count we produce */
#define PARTS_AT 5                /* argument index of the partition count */

int smm_pipeline_encode_flush_begin(struct smm_pipeline *pipe, int64_t now_ms,
                                    struct smm_argv *av)
{
    pipe->enc_now_ms = now_ms;
    smm_cmds_reset(&pipe->pre);
    smm_cmds_reset(&pipe->plain.cmds);
    pipe->n_tops = 0;
    pipe->n_day_exp = 0;
    pipe->plain_ok = 1;
    pipe->chk_n = pipe->chk_parts = pipe->plain_n = 0;
    pipe->chk_parts_at = -1;
    pipe->plain.cut_at = pipe->plain.cut_end = -1;
    pipe->enc_flush = 1;
    snprintf(pipe->wseq_next, sizeof(pipe->wseq_next), "%s#%llu", pipe->writer,
             (unsigned long long)++pipe->wseq_n);
    /* The check: whether wseq still holds our last value, and whether the list below
     * leaves out the entries that proof covers (1: then it must hold). */
    int rc = header(pipe, "check", now_ms, &pipe->plain.check);
    rc |= smm_argv_add_str(&pipe->plain.check, pipe->wseq_mine);
    rc |= smm_argv_add_str(&pipe->plain.check, pipe->alone ? "1" : "0");
    pipe->chk_n_at = pipe->plain.check.n;
    rc |= smm_argv_add_str(&pipe->plain.check, PLACEHOLDER);
    rc |= header(pipe, "flush", now_ms, av);
    rc |= smm_argv_add_str(av, PLACEHOLDER); /* patched by encode_flush_end() */
    return rc ? SMM_ERR : SMM_OK;
}

const struct smm_cmds *smm_pipeline_flush_writes(const struct smm_pipeline *pipe)
{
    return &pipe->pre;
}

struct smm_flush_plain *smm_pipeline_flush_plain(struct smm_pipeline *pipe)
{
    return pipe->plain_ok && pipe->plain_n > 0 && pipe->plain.cut_at >= 0 &&
                   !pipe->plain.cmds.oom
               ? &pipe->plain
               : NULL;
}

int smm_pipeline_encode_flush_end(struct smm_argv *av, int n_parts)
{
    return smm_argv_set_int(av, PARTS_AT, n_parts) == 0 ? SMM_OK : SMM_ERR;
}

struct user_ref {
    int64_t minute;
    const char *user;
};

/* ---- counters the processor computes (processor/counters.h) ---- */

/* How long write_entities in connectors/lua/smm.lua keeps buckets: the same numbers. */
#define MINUTE_KEEP 180
#define HOUR_KEEP   192

/* The key of an entity's counter hash, <prefix>{<shard>}:<kind>:<id>, into out (sized by
 * the caller for a prefix and an id within route()'s bounds); *ent_at: where the entity
 * name starts in it. */
static void entity_key(const struct smm_pipeline *pipe, const struct smm_agg_entity *ent,
                       char *out, size_t size, size_t *ent_at)
{
    char name[2 * SMM_EVENT_ID_MAX + 96];
    int n = snprintf(name, sizeof(name), "%s:%s", smm_agg_kind_prefix(ent->kind), ent->id);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof(name) ? (size_t)n : sizeof(name) - 1;
    int shard = smm_redis_shard(name, len, (int)pipe->cfg->redis_shards);
    int at = snprintf(out, size, "%s{%d}:", pipe->cfg->prefix, shard);
    snprintf(out + at, size - (size_t)at, "%s", name);
    *ent_at = (size_t)at;
}

/* The entity's name, "<kind>:<id>", into out; returns its length. */
static size_t ent_name(const struct smm_agg_entity *ent, char *out, size_t size)
{
    int n = snprintf(out, size, "%s:%s", smm_agg_kind_prefix(ent->kind), ent->id);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

/* Entities whose values the processor may compute: every kind with counters in the
 * batch. What the script adds itself (the yields of messages, replies, referrals and
 * conversions) goes to buckets of their own (write_links in smm.lua). */
static int computable(const struct smm_agg_entity *ent)
{
    return ent->first_minute >= 0;
}

/* Entities whose lifetime reach sketch the processor may hold and write whole: those with
 * reach (posts, accounts, segment values). Every batch that adds users to an entity's
 * sketch moves its hash's version in the same transaction, so a writer holding a stale
 * copy fails its check and merges: posts and accounts move a kept counter with every
 * event; a segment value keeps only some (a view moves none), so a batch of views still
 * writes its version (abs_encode's record without buckets, or version_move()). */
static int holds_sketch(const struct smm_agg_entity *ent)
{
    return ent->kind == SMM_AGG_CONTENT || ent->kind == SMM_AGG_ACCOUNT ||
           ent->kind == SMM_AGG_SEGMENT;
}

static int has_name(char names[][SMM_COUNTERS_NAME], int n, const char *name)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The bucket fields ent's deltas go to: t, each kept minute, each kept hour (as
 * write_entities). -1 when there are more than max. */
static int entity_buckets(const struct smm_agg *agg, const struct smm_agg_entity *ent,
                        int64_t now_min, char names[][SMM_COUNTERS_NAME], int max)
{
    int n = 0;
    strcpy(names[n++], "t");
    for (int mi = ent->first_minute; mi >= 0;) {
        const struct smm_agg_minute *m = smm_agg_minute_at(agg, mi);
        char f[SMM_COUNTERS_NAME];
        if (m->minute > now_min - MINUTE_KEEP &&
            snprintf(f, sizeof(f), "m%lld", (long long)m->minute) < (int)sizeof(f)) {
            if (!has_name(names, n, f)) {
                if (n == max) {
                    return -1;
                }
                strcpy(names[n++], f);
            }
        }
        if (m->minute / 60 > now_min / 60 - HOUR_KEEP &&
            snprintf(f, sizeof(f), "h%lld", (long long)(m->minute / 60)) < (int)sizeof(f)) {
            if (!has_name(names, n, f)) {
                if (n == max) {
                    return -1;
                }
                strcpy(names[n++], f);
            }
        }
        mi = m->next;
    }
    return n;
}

/* The deltas of ent that fall in bucket name ("t", "m<minute>", "h<hour>"). -1 when they
 * do not fit a packed value. */
static int bucket_delta(const struct smm_agg *agg, const struct smm_agg_entity *ent,
                        const char *name, struct smm_packed *d)
{
    d->n = 0;
    long long num = name[0] == 't' ? 0 : strtoll(name + 1, NULL, 10);
    for (int mi = ent->first_minute; mi >= 0;) {
        const struct smm_agg_minute *m = smm_agg_minute_at(agg, mi);
        mi = m->next;
        if (!(name[0] == 't' || (name[0] == 'm' && m->minute == num) ||
              (name[0] == 'h' && m->minute / 60 == num))) {
            continue;
        }
        for (int x = 0; x < SMM_AGG_METRICS; x++) {
            int64_t v = smm_agg_delta(m, x);
            if (v != 0 && smm_agg_kind_keeps(ent->kind, x) &&
                smm_packed_add(d, smm_agg_metric_name(x), v) != 0) {
                return -1;
            }
        }
    }
    return 0;
}

static int has_all(const struct smm_counters_entry *e, char names[][SMM_COUNTERS_NAME], int n)
{
    for (int i = 0; i < n; i++) {
        if (!smm_counters_get(e, names[i])) {
            return 0;
        }
    }
    return 1;
}

#define LOADS_MAX 32768 /* counter hashes one flush loads at most */

/* A post's reach sketch key, <prefix>c:<id>:reach, from its name "c:<id>" (malloc'd; NULL
 * when out of memory: the post is then loaded without it). */
static char *sketch_key(const struct smm_pipeline *pipe, const char *name, size_t len)
{
    size_t pl = strlen(pipe->cfg->prefix);
    char *k = malloc(pl + len + sizeof(":reach"));
    if (k) {
        memcpy(k, pipe->cfg->prefix, pl);
        memcpy(k + pl, name, len);
        memcpy(k + pl + len, ":reach", sizeof(":reach"));
    }
    return k;
}

int smm_pipeline_counters_plan(struct smm_pipeline *pipe, const struct smm_batch *b,
                               int64_t now_ms, const struct smm_redis_hmget **rows)
{
    const struct smm_agg *agg = b->agg;
    int64_t now_min = smm_pipeline_minute(now_ms);
    for (int r = 0; r < pipe->n_loads; r++) {
        free(pipe->load_gets[r]);
    }
    pipe->n_loads = 0;
    char key[3 * SMM_EVENT_ID_MAX + 256];
    char names[SMM_COUNTERS_FIELDS][SMM_COUNTERS_NAME];
    for (int i = 0; i < smm_agg_entities(agg); i++) {
        const struct smm_agg_entity *ent = smm_agg_entity(agg, i);
        if (!computable(ent)) {
            continue;
        }
        int k = entity_buckets(agg, ent, now_min, names, SMM_COUNTERS_FIELDS);
        if (k < 0) {
            continue; /* a batch spread over many buckets: the script adds its deltas */
        }
        char name[2 * SMM_EVENT_ID_MAX + 96];
        size_t name_len = ent_name(ent, name, sizeof(name));
        struct smm_counters_entry *e = smm_counters_find(pipe->cc, name, name_len);
        /* A post or account with users: its lifetime reach sketch too, unless held or
         * refused (memory bound). */
        int sketch = holds_sketch(ent) && ent->first_user >= 0 &&
                     pipe->cfg->counters_cache_sketch_mb > 0 &&
                     !(e && (e->reach || e->reach_refused));
        if (e && has_all(e, names, k) && !sketch) {
            continue;
        }
        if (pipe->n_loads == LOADS_MAX) {
            continue; /* the rest go as deltas this time (bounds the rows, and memory) */
        }
        if (!e) {
            size_t ent_at;
            entity_key(pipe, ent, key, sizeof(key), &ent_at); /* the SHA-1, once per entry */
            if (!(e = smm_counters_put(pipe->cc, key, ent_at))) {
                continue;
            }
        }
        if (pipe->n_loads == pipe->cap_loads) {
            int cap = pipe->cap_loads ? 2 * pipe->cap_loads : 256;
            void *l = realloc(pipe->loads, (size_t)cap * sizeof(*pipe->loads));
            if (l) {
                pipe->loads = l;
            }
            void *le = realloc(pipe->load_ent, (size_t)cap * sizeof(*pipe->load_ent));
            if (le) {
                pipe->load_ent = le;
            }
            void *ln = realloc(pipe->load_names, (size_t)cap * sizeof(*pipe->load_names));
            if (ln) {
                pipe->load_names = ln;
            }
            void *lg = realloc(pipe->load_gets, (size_t)cap * sizeof(*pipe->load_gets));
            if (lg) {
                pipe->load_gets = lg;
            }
            if (!l || !le || !ln || !lg) {
                break;
            }
            pipe->cap_loads = cap;
        }
        int r = pipe->n_loads++;
        pipe->load_ent[r] = e;
        memcpy(pipe->load_names[r], names, sizeof(names));
        pipe->loads[r].n_fields = k + 2;
        pipe->load_gets[r] = sketch ? sketch_key(pipe, name, name_len) : NULL;
    }
    for (int r = 0; r < pipe->n_loads; r++) {
        struct smm_redis_hmget *row = &pipe->loads[r];
        row->key = pipe->load_ent[r]->key;
        row->get_key = pipe->load_gets[r];
        row->field[0] = "v";
        row->field[1] = "p";
        for (int j = 0; j + 2 < row->n_fields; j++) {
            row->field[j + 2] = pipe->load_names[r][j];
        }
    }
    *rows = pipe->loads;
    return pipe->n_loads;
}

void smm_pipeline_counters_loaded(void *opaque, int i, const char *const *vals,
                                  const size_t *lens)
{
    struct smm_pipeline *pipe = opaque;
    if (i < 0 || i >= pipe->n_loads) {
        return;
    }
    struct smm_counters_entry *e = pipe->load_ent[i];
    int64_t v = vals[0] ? strtoll(vals[0], NULL, 10) : 0;
    if (e->ver != v) {
        smm_counters_clear(e); /* another writer moved it: nothing held is current */
        smm_counters_reach_forget(pipe->cc, e);
        e->ver = v;
    }
    e->epoch = pipe->epoch; /* current now; the check proves nobody wrote since */
    e->pruned = vals[1] ? strtoll(vals[1], NULL, 10) : -1;
    int nf = pipe->loads[i].n_fields;
    if (pipe->load_gets[i] && smm_counters_reach_load(pipe->cc, e, vals[nf], lens[nf]) != 0) {
        e->reach_refused = 1; /* its users go to PFADD in the script */
    }
    for (int j = 0; j + 2 < nf; j++) {
        const char *x = vals[j + 2];
        if (smm_counters_set(e, pipe->load_names[i][j], x ? x : "", x ? lens[j + 2] : 0) != 0) {
            smm_counters_clear(e); /* out of memory: the script adds the deltas */
            return;
        }
    }
}

/* Lists e among the entries the flush being encoded writes: settle() keeps or forgets
 * them. 0, or -1 when out of memory. */
static int pend_add(struct smm_pipeline *pipe, struct smm_counters_entry *e)
{
    if (pipe->n_pend == pipe->cap_pend) {
        size_t cap = pipe->cap_pend ? 2 * pipe->cap_pend : 256;
        void *p = realloc(pipe->pend, cap * sizeof(*pipe->pend));
        if (!p) {
            return -1;
        }
        pipe->pend = p;
        pipe->cap_pend = cap;
    }
    pipe->pend[pipe->n_pend++] = e;
    return 0;
}

/* ---- breakdown admission (metrics/admission.h) ------------------------------------- */

/* A source or segment entity's account, dimension and value: "<account>|<value>" (source)
 * or "<account>|<dim>=<value>" (segment). */
struct adm_ref {
    const char *account, *dim, *value;
    size_t account_len, dim_len;
};

static void adm_ref_of(const struct smm_agg_entity *ent, struct adm_ref *r)
{
    const char *rest = ent->id + ent->split + 1;
    const char *eq = ent->kind == SMM_AGG_SEGMENT ? strchr(rest, '=') : NULL;
    r->account = ent->id;
    r->account_len = (size_t)ent->split;
    if (eq) {
        r->dim = rest;
        r->dim_len = (size_t)(eq - rest);
        r->value = eq + 1;
    } else {
        r->dim = "source";
        r->dim_len = 6;
        r->value = rest;
    }
}

/* "<what>:<account>:<dim>" into out (what: "ss" the sketch, "seg" its admitted set);
 * returns its length. Ids are bounded (route()), so it always fits SMM_ADM_NAME. */
#define SMM_ADM_NAME (2 * SMM_EVENT_ID_MAX + 64)
static size_t adm_name(const char *what, const struct adm_ref *r, char *out)
{
    char *p = put(out, what, strlen(what));
    p = put(p, ":", 1);
    p = put(p, r->account, r->account_len);
    p = put(p, ":", 1);
    p = put(p, r->dim, r->dim_len);
    return (size_t)(p - out);
}

static int grow_ptrs(void **arr, int *cap, size_t size, int need)
{
    if (need <= *cap) {
        return 0;
    }
    int n = *cap ? 2 * *cap : 64;
    while (n < need) {
        n *= 2;
    }
    void *p = realloc(*arr, (size_t)n * size);
    if (!p) {
        return -1;
    }
    *arr = p;
    *cap = n;
    return 0;
}

/* The batch's values and their weights, taken once per batch (before any fold). */
static int adm_collect(struct smm_batch *b)
{
    if (b->adm_decided || b->n_adm > 0) {
        return 0;
    }
    const struct smm_agg *agg = b->agg;
    for (int e = 0; e < smm_agg_entities(agg); e++) {
        const struct smm_agg_entity *ent = smm_agg_entity(agg, e);
        if ((ent->kind != SMM_AGG_SOURCE && ent->kind != SMM_AGG_SEGMENT) ||
            ent->first_minute < 0) {
            continue;
        }
        int64_t weight = 0, last = INT64_MIN;
        for (int mi = ent->first_minute; mi >= 0;) {
            const struct smm_agg_minute *m = smm_agg_minute_at(agg, mi);
            for (int t = 0; t < SMM_EV__COUNT; t++) {
                weight += m->count[t];
            }
            last = m->minute > last ? m->minute : last;
            mi = m->next;
        }
        if (grow_ptrs((void **)&b->adm, &b->cap_adm, sizeof(*b->adm), b->n_adm + 1) != 0) {
            return -1;
        }
        b->adm[b->n_adm++] = (struct smm_batch_adm){.ent = e, .weight = weight, .minute = last};
    }
    return 0;
}

int smm_pipeline_admission_plan(struct smm_pipeline *pipe, struct smm_batch *b,
                                const struct smm_redis_hashset **rows)
{
    for (int r = 0; r < pipe->n_adm_rows; r++) {
        free((char *)pipe->adm_rows[r].set_key);
    }
    pipe->n_adm_rows = 0;
    *rows = NULL;
    if (adm_collect(b) != 0) {
        return -1;
    }
    uint32_t mark = ++pipe->adm_mark;
    size_t pl = strlen(pipe->cfg->prefix);
    for (int i = 0; i < b->n_adm; i++) {
        struct adm_ref r;
        adm_ref_of(smm_agg_entity(b->agg, b->adm[i].ent), &r);
        char key[SMM_ADM_NAME + 256], set[SMM_ADM_NAME + 256];
        memcpy(key, pipe->cfg->prefix, pl);
        size_t len = adm_name("ss", &r, key + pl);
        struct smm_counters_entry *e = smm_counters_find(pipe->cc, key + pl, len);
        if (e && (e->adm || e->mark == mark)) {
            continue; /* held, or listed already */
        }
        if ((!e && !(e = smm_counters_put(pipe->cc, key, pl))) ||
            grow_ptrs((void **)&pipe->adm_rows, &pipe->cap_adm_rows, sizeof(*pipe->adm_rows),
                      pipe->n_adm_rows + 1) != 0 ||
            grow_ptrs((void **)&pipe->adm_ent, &pipe->cap_adm_ent, sizeof(*pipe->adm_ent),
                      pipe->n_adm_rows + 1) != 0) {
            return -1;
        }
        memcpy(set, pipe->cfg->prefix, pl);
        adm_name("seg", &r, set + pl);
        char *set_key = strdup(set);
        if (!set_key) {
            return -1;
        }
        e->mark = mark;
        pipe->adm_ent[pipe->n_adm_rows] = e;
        pipe->adm_rows[pipe->n_adm_rows++] =
            (struct smm_redis_hashset){.hash_key = e->key, .set_key = set_key};
    }
    *rows = pipe->adm_rows;
    return pipe->n_adm_rows;
}

void smm_pipeline_admission_loaded(void *opaque, int i, const char *const *kv,
                                   const size_t *kv_lens, size_t n_kv,
                                   const char *const *members, const size_t *m_lens,
                                   size_t n_members)
{
    struct smm_pipeline *pipe = opaque;
    if (i < 0 || i >= pipe->n_adm_rows) {
        return;
    }
    struct smm_counters_entry *e = pipe->adm_ent[i];
    smm_counters_adm_forget(e);
    struct smm_counters_adm *a = smm_counters_adm(e);
    int bad = !a;
    e->ver = 0;
    for (size_t j = 0; !bad && j + 1 < n_kv; j += 2) {
        const char *f = kv[j];
        if (kv_lens[j] == 1 && (f[0] == 'v' || f[0] == 'X')) {
            int64_t x = strtoll(kv[j + 1], NULL, 10);
            *(f[0] == 'v' ? &e->ver : &a->x) = x;
        } else {
            bad = smm_adm_load_field(&a->sk, f, kv_lens[j], kv[j + 1], kv_lens[j + 1]) != 0;
        }
    }
    bad = bad || smm_counters_adm_set(a, members, m_lens, (int)n_members) != 0;
    if (bad) {
        smm_counters_adm_forget(e); /* decide() then refuses the batch */
    }
}

/* The sketch entry of a batch value, or NULL when not held. */
static struct smm_counters_entry *adm_entry(struct smm_pipeline *pipe, const struct smm_batch *b,
                                            int i, struct adm_ref *r)
{
    char name[SMM_ADM_NAME];
    adm_ref_of(smm_agg_entity(b->agg, b->adm[i].ent), r);
    size_t len = adm_name("ss", r, name);
    struct smm_counters_entry *e = smm_counters_find(pipe->cc, name, len);
    return e && e->adm ? e : NULL;
}

/* Is value among the admitted of sketch a (ranked by adm_rank)? */
static int adm_is_admitted(const struct smm_counters_adm *a, const char *value)
{
    for (int j = 0; j < a->n_ranked; j++) {
        if (strcmp(a->ranked[j], value) == 0) {
            return 1;
        }
    }
    return !a->ranked; /* out of memory: keep its own series (nothing is lost either way) */
}

/* Ranks each sketch decide() fed, once (rank = 1), or forgets the rankings (rank = 0). */
static void adm_rank(struct smm_pipeline *pipe, int rank)
{
    int top_n = (int)pipe->cfg->segments_top_n;
    int m = (int)(pipe->cfg->segments_top_n * pipe->cfg->segments_sketch_factor);
    for (int t = 0; t < pipe->n_adm_touch; t++) {
        struct smm_counters_adm *a = pipe->adm_touch[t]->adm;
        free(a->ranked);
        a->ranked = NULL;
        a->n_ranked = 0;
        if (rank && (a->ranked = malloc((size_t)(top_n + 1) * sizeof(*a->ranked))) != NULL) {
            a->n_ranked = smm_adm_admitted(&a->sk, top_n, m, a->ranked);
            if (a->n_ranked < 0) {
                free(a->ranked);
                a->ranked = NULL;
                a->n_ranked = 0;
            }
        }
    }
}

int smm_pipeline_admission_decide(struct smm_pipeline *pipe, struct smm_batch *b)
{
    pipe->n_adm_touch = 0;
    if (adm_collect(b) != 0) {
        return SMM_ERR;
    }
    const struct smm_config *cfg = pipe->cfg;
    int m = (int)(cfg->segments_top_n * cfg->segments_sketch_factor);
    uint32_t mark = ++pipe->adm_mark;
    /* Every value feeds its sketch first; then each is decided. */
    for (int i = 0; i < b->n_adm; i++) {
        struct adm_ref r;
        struct smm_counters_entry *e = adm_entry(pipe, b, i, &r);
        if (!e) {
            goto fail; /* not loaded */
        }
        if (e->mark != mark) {
            if (grow_ptrs((void **)&pipe->adm_touch, &pipe->cap_adm_touch,
                          sizeof(*pipe->adm_touch), pipe->n_adm_touch + 1) != 0 ||
                pend_add(pipe, e) != 0) {
                goto fail;
            }
            e->mark = mark;
            pipe->adm_touch[pipe->n_adm_touch++] = e;
        }
        if (smm_adm_add(&e->adm->sk, r.value, strlen(r.value), (double)b->adm[i].weight,
                        b->adm[i].minute, cfg->segments_half_life_ms, m) != 0) {
            goto fail;
        }
    }
    if (!b->adm_decided) {
        adm_rank(pipe, 1);
        for (int i = 0; i < b->n_adm; i++) {
            struct adm_ref r;
            struct smm_counters_entry *e = adm_entry(pipe, b, i, &r);
            if (adm_is_admitted(e->adm, r.value)) {
                continue;
            }
            const struct smm_agg_entity *ent = smm_agg_entity(b->agg, b->adm[i].ent);
            enum smm_agg_kind kind = ent->kind;
            char other[SMM_ADM_NAME];
            char *p = put(other, r.account, r.account_len);
            p = put(p, "|", 1);
            if (kind == SMM_AGG_SEGMENT) {
                p = put(p, r.dim, r.dim_len);
                p = put(p, "=", 1);
            }
            put(p, "other", 5);
            if (smm_agg_fold(b->agg, b->adm[i].ent, kind, other) != SMM_OK) {
                adm_rank(pipe, 0);
                goto fail;
            }
        }
        adm_rank(pipe, 0);
        b->adm_decided = 1;
    }
    return SMM_OK;
fail:
    /* What was fed is not what is stored: those sketches are forgotten when the flush
     * settles (it is not sent), and loaded again. */
    for (int i = 0; i < pipe->n_adm_touch; i++) {
        pipe->adm_touch[i]->ver = -1;
    }
    pipe->n_adm_touch = 0;
    return SMM_ERR;
}

/* The sketch section (see encode_part) for the sketches decide() fed: each one's changed
 * fields under its version, and its admitted set when that changed. */
static int adm_encode(struct smm_pipeline *pipe, struct smm_argv *av, int64_t *n_out)
{
    const struct smm_config *cfg = pipe->cfg;
    int top_n = (int)cfg->segments_top_n;
    int m = (int)(cfg->segments_top_n * cfg->segments_sketch_factor);
    const char **adm = malloc((size_t)(top_n + 1) * sizeof(*adm));
    if (!adm) {
        return -1;
    }
    int64_t x_at = 0;
    if (cfg->retention_idle_days > 0) {
        x_at = (pipe->enc_now_ms / 86400000 + 1 + cfg->retention_idle_days) * 86400;
    }
    size_t pl = strlen(cfg->prefix);
    int rc = 0;
    for (int t = 0; t < pipe->n_adm_touch && !rc; t++) {
        struct smm_counters_entry *e = pipe->adm_touch[t];
        struct smm_counters_adm *a = e->adm;
        int k = smm_adm_admitted(&a->sk, top_n, m, adm);
        if (k < 0) {
            rc = -1;
            break;
        }
        int push = x_at > 0 && a->x != x_at;
        /* ss:<account>:<dim> -> seg:<account>:<dim> */
        char set[SMM_ADM_NAME + 256];
        memcpy(set, cfg->prefix, pl);
        snprintf(set + pl, sizeof(set) - pl, "seg%s", e->key + e->name_at + 2);
        rc |= smm_argv_add_str(av, e->key);
        rc |= smm_argv_add_int(av, e->ver);
        rc |= smm_argv_add_str(av, set);
        if (x_at > 0) {
            rc |= smm_argv_add_int(av, x_at);
        } else {
            rc |= smm_argv_add_str(av, "");
        }
        rc |= smm_argv_add_str(av, push ? "1" : "0");
        int n_f = (a->sk.changed_LN ? 2 : 0) + (push ? 1 : 0);
        for (int i = 0; i < a->sk.n; i++) {
            n_f += 2 * a->sk.v[i].changed;
        }
        rc |= smm_argv_add_int(av, n_f);
        char num[40], field[SMM_EVENT_ID_MAX + 8];
        if (a->sk.changed_LN) {
            smm_adm_format(a->sk.L, num, sizeof(num));
            rc |= smm_argv_add_str(av, "L");
            rc |= smm_argv_add_str(av, num);
            smm_adm_format(a->sk.N, num, sizeof(num));
            rc |= smm_argv_add_str(av, "N");
            rc |= smm_argv_add_str(av, num);
        }
        if (push) {
            rc |= smm_argv_add_str(av, "X");
            rc |= smm_argv_add_int(av, x_at);
            a->x = x_at;
        }
        for (int i = 0; i < a->sk.n; i++) {
            const struct smm_adm_counter *c = &a->sk.v[i];
            if (!c->changed) {
                continue;
            }
            snprintf(field, sizeof(field), "c%s", c->value);
            smm_adm_format(c->c, num, sizeof(num));
            rc |= smm_argv_add_str(av, field);
            rc |= smm_argv_add_str(av, num);
            field[0] = 'e';
            smm_adm_format(c->e, num, sizeof(num));
            rc |= smm_argv_add_str(av, field);
            rc |= smm_argv_add_str(av, num);
        }
        rc |= smm_argv_add_int(av, 2 * a->sk.n_gone);
        for (int i = 0; i < a->sk.n_gone; i++) {
            snprintf(field, sizeof(field), "c%s", a->sk.gone[i]);
            rc |= smm_argv_add_str(av, field);
            field[0] = 'e';
            rc |= smm_argv_add_str(av, field);
        }
        /* The admitted set: rewritten only when it changed (-1: as stored). */
        int same = k == a->n_set;
        for (int i = 0; i < k && same; i++) {
            int found = 0;
            for (int j = 0; j < a->n_set && !found; j++) {
                found = strcmp(adm[i], a->set[j]) == 0;
            }
            same = found;
        }
        rc |= smm_argv_add_int(av, same ? -1 : k);
        for (int i = 0; !same && i < k; i++) {
            rc |= smm_argv_add_str(av, adm[i]);
        }
        if (!same && smm_counters_adm_set(a, adm, NULL, k) != 0) {
            rc = -1;
        }
        smm_adm_written(&a->sk);
        e->ver++;
        (*n_out)++;
    }
    free(adm);
    pipe->n_adm_touch = 0;
    return rc ? -1 : 0;
}

void smm_pipeline_counters_conflict(struct smm_pipeline *pipe, const char *key, size_t len)
{
    /* <prefix>{<shard>}:<entity>, or <prefix>ss:<account>:<dim> (an admission sketch) */
    size_t pl = strlen(pipe->cfg->prefix);
    const char *name = NULL;
    if (len > pl + 3 && memcmp(key + pl, "ss:", 3) == 0) {
        name = key + pl;
    } else {
        const char *close = len > pl ? memchr(key + pl, '}', len - pl) : NULL;
        name = close && close + 2 <= key + len ? close + 2 : NULL;
    }
    if (!name) {
        return;
    }
    struct smm_counters_entry *e = smm_counters_find(pipe->cc, name, (size_t)(key + len - name));
    if (e) {
        e->ver = -1; /* dropped when the flush settles */
    }
}

void smm_pipeline_counters_settle(struct smm_pipeline *pipe, int applied, int alone)
{
    if (pipe->enc_flush) {
        /* Our value is stored when the flush applied; unless its check found ours before
         * it, another writer may have committed in between: every copy is unproven. */
        if (applied) {
            memcpy(pipe->wseq_mine, pipe->wseq_next, sizeof(pipe->wseq_mine));
        }
        pipe->alone = applied && alone;
        pipe->epoch += !pipe->alone;
        pipe->enc_flush = 0;
    }
    for (size_t i = 0; i < pipe->n_pend; i++) {
        struct smm_counters_entry *e = pipe->pend[i];
        if (!applied || e->ver < 0) {
            const char *name = e->key + e->name_at;
            smm_counters_drop(pipe->cc, name, strlen(name));
        } else {
            e->epoch = pipe->epoch; /* this flush wrote it, checked or proven */
        }
    }
    pipe->n_pend = 0;
    smm_counters_tick(pipe->cc);
}

/* The entry of ent when the pipeline holds every bucket ent writes in this flush (its
 * names in names[0..*k)), so the flush sends ent's values; otherwise NULL, and the entry
 * is forgotten: the script changes the hash. */
static struct smm_counters_entry *held_entry(struct smm_pipeline *pipe,
                                             const struct smm_agg *agg,
                                             const struct smm_agg_entity *ent,
                                             char names[][SMM_COUNTERS_NAME], int *k)
{
    if (ent->first_minute < 0 || smm_counters_size(pipe->cc) == 0) {
        return NULL;
    }
    char name[2 * SMM_EVENT_ID_MAX + 96];
    size_t len = ent_name(ent, name, sizeof(name));
    struct smm_counters_entry *e = smm_counters_find(pipe->cc, name, len);
    if (!e) {
        return NULL;
    }
    *k = entity_buckets(agg, ent, smm_pipeline_minute(pipe->enc_now_ms), names,
                        SMM_COUNTERS_FIELDS);
    if (!computable(ent) || *k < 0 || e->ver < 0 || !has_all(e, names, *k)) {
        smm_counters_drop(pipe->cc, name, len);
        return NULL;
    }
    return e;
}

/* How many posts a bucket's leaderboard keeps: TOPN in connectors/lua/smm.lua. */
#define TOP_KEEP 1000

/* The plain path's share of an abs_encode() record (see struct smm_flush_plain): the
 * check's {key, base_v, prune} (unless proven: see proven()), then what write_entities
 * in connectors/lua/smm.lua would write for it: HSET of v and each bucket's value (HDEL of
 * a bucket that went to nothing), EXPIREAT when the expiry moves, and each post bucket's
 * score for plain_tops(). */
static int plain_record(struct smm_pipeline *pipe, const struct smm_agg_entity *ent,
                        const struct smm_counters_entry *e, char names[][SMM_COUNTERS_NAME],
                        const int *which, int n, const char *prune, const char *exp,
                        char scores[][24], int proven)
{
    struct smm_argv *chk = &pipe->plain.check;
    struct smm_cmds *c = &pipe->plain.cmds;
    int rc = 0;
    if (!proven) {
        rc |= smm_argv_add_str(chk, e->key);
        rc |= smm_argv_add_int(chk, e->ver);
        rc |= smm_argv_add_str(chk, prune);
        pipe->chk_n++;
    }
    pipe->plain_n++;
    int empty = 0;
    for (int x = 0; x < n; x++) {
        empty += pipe->abs->vals[x][0] == '\0';
    }
    int is_new = strcmp(prune, "n") == 0;
    smm_cmds_begin(c, 4 + 2 * is_new + 2 * (n - empty));
    smm_cmds_arg_str(c, "HSET");
    smm_cmds_arg_str(c, e->key);
    smm_cmds_arg_str(c, "v");
    smm_cmds_arg_int(c, e->ver + 1);
    if (is_new) {
        smm_cmds_arg_str(c, "p");
        smm_cmds_arg_int(c, smm_pipeline_minute(pipe->enc_now_ms));
    }
    for (int x = 0; x < n; x++) {
        if (pipe->abs->vals[x][0]) {
            smm_cmds_arg_str(c, names[which[x]]);
            smm_cmds_arg_str(c, pipe->abs->vals[x]);
        }
    }
    if (empty > 0) {
        smm_cmds_begin(c, 2 + empty);
        smm_cmds_arg_str(c, "HDEL");
        smm_cmds_arg_str(c, e->key);
        for (int x = 0; x < n; x++) {
            if (!pipe->abs->vals[x][0]) {
                smm_cmds_arg_str(c, names[which[x]]);
            }
        }
    }
    if (exp[0]) {
        smm_cmds_begin(c, 3);
        smm_cmds_arg_str(c, "EXPIREAT");
        smm_cmds_arg_str(c, e->key);
        smm_cmds_arg_str(c, exp);
    }
    for (int x = 0; x < n && !rc; x++) {
        if (!scores[x][0]) {
            continue;
        }
        if (grow_ptrs((void **)&pipe->tops, &pipe->cap_tops, sizeof(*pipe->tops),
                      pipe->n_tops + 1) != 0) {
            return -1;
        }
        struct top_score *t = &pipe->tops[pipe->n_tops++];
        snprintf(t->field, sizeof(t->field), "%s", names[which[x]]);
        t->score = strtoll(scores[x], NULL, 10);
        t->id = ent->id;
    }
    return rc || c->oom ? -1 : 0;
}

static int top_cmp(const void *a, const void *b)
{
    return strcmp(((const struct top_score *)a)->field, ((const struct top_score *)b)->field);
}

/* The leaderboards of the plain path's posts, as write_entities writes them: per bucket,
 * ZADD of the posts whose engagement is positive, ZREM of the others, the board cut to
 * TOP_KEEP, and a minute's or hour's board expiring with its bucket. */
static void plain_tops(struct smm_pipeline *pipe)
{
    struct smm_cmds *c = &pipe->plain.cmds;
    if (pipe->n_tops == 0) {
        return; /* (qsort's array may not be NULL, even when empty) */
    }
    qsort(pipe->tops, (size_t)pipe->n_tops, sizeof(*pipe->tops), top_cmp);
    char key[64 + SMM_COUNTERS_NAME + 8]; /* prefix: at most 64 bytes (config.c) */
    for (int i = 0, j; i < pipe->n_tops; i = j) {
        const char *f = pipe->tops[i].field;
        int ins = 0;
        for (j = i; j < pipe->n_tops && strcmp(pipe->tops[j].field, f) == 0; j++) {
            ins += pipe->tops[j].score > 0;
        }
        snprintf(key, sizeof(key), "%stop:%s", pipe->cfg->prefix, f);
        for (int pass = 0; pass < 2; pass++) { /* 0: ZADD, 1: ZREM */
            int want = pass == 0 ? ins : (j - i) - ins;
            if (want == 0) {
                continue;
            }
            smm_cmds_begin(c, 2 + (pass == 0 ? 2 : 1) * want);
            smm_cmds_arg_str(c, pass == 0 ? "ZADD" : "ZREM");
            smm_cmds_arg_str(c, key);
            for (int x = i; x < j; x++) {
                if ((pipe->tops[x].score > 0) == (pass == 0)) {
                    if (pass == 0) {
                        smm_cmds_arg_int(c, pipe->tops[x].score);
                    }
                    smm_cmds_arg_str(c, pipe->tops[x].id);
                }
            }
        }
        if (ins > 0) {
            smm_cmds_begin(c, 4);
            smm_cmds_arg_str(c, "ZREMRANGEBYRANK");
            smm_cmds_arg_str(c, key);
            smm_cmds_arg_int(c, 0);
            smm_cmds_arg_int(c, -(TOP_KEEP + 1));
        }
        if (f[0] == 'm' || f[0] == 'h') {
            int64_t num = strtoll(f + 1, NULL, 10);
            smm_cmds_begin(c, 3);
            smm_cmds_arg_str(c, "EXPIREAT");
            smm_cmds_arg_str(c, key);
            smm_cmds_arg_int(c, f[0] == 'm' ? (num + 1 + MINUTE_KEEP) * 60
                                            : (num + 1 + HOUR_KEEP) * 3600);
        }
    }
    pipe->n_tops = 0;
}

/* 1 when e's version needs no check in this flush: nobody else committed since our last
 * flush (the check still verifies that, pipe->alone), e's copy was current in this epoch,
 * and the hash cannot have expired meanwhile: it did not exist (ver 0), or its expiry,
 * which we set (expire_s, before this flush moves it), is more than an hour away. A hash
 * due for pruning is checked, since the check prunes it. */
static int proven(const struct smm_pipeline *pipe, const struct smm_counters_entry *e,
                  int64_t expire_s, const char *prune)
{
    return pipe->alone && e->epoch == pipe->epoch && prune[0] != '1' &&
           (e->ver == 0 ||
            (pipe->cfg->retention_idle_days > 0 && expire_s > pipe->enc_now_ms / 1000 + 3600));
}

/* The record of the absolute section (see encode_part) of ent, whose buckets names[0..k)
 * e holds: each bucket's new value, delta and (posts) leaderboard score. Should a held
 * value not take the deltas (cannot happen with values this processor wrote), the record
 * carries the deltas only and a version no hash has, so the script adds them. Returns 1
 * when written, 0 when ent adds nothing, -1 when out of memory. */
static int abs_encode(struct smm_pipeline *pipe, const struct smm_agg *agg,
                      const struct smm_agg_entity *ent, struct smm_counters_entry *e,
                      char names[][SMM_COUNTERS_NAME], int k, struct smm_argv *av)
{
    int64_t now_min = smm_pipeline_minute(pipe->enc_now_ms);
    struct smm_packed *cur = &pipe->abs->cur, *d = &pipe->abs->d;
    char(*vals)[SMM_PACKED_TEXT_MAX] = pipe->abs->vals;
    char(*dels)[SMM_PACKED_TEXT_MAX] = pipe->abs->dels;
    char scores[SMM_COUNTERS_FIELDS][24];
    int which[SMM_COUNTERS_FIELDS], n = 0, bad = 0;
    for (int j = 0; j < k; j++) {
        const char *held = smm_counters_get(e, names[j]);
        if (bucket_delta(agg, ent, names[j], d) != 0 || smm_packed_format(d, dels[n], sizeof(dels[n])) < 0) {
            return -1; /* a batch's deltas of one entity always fit a packed value */
        }
        if (d->n == 0) {
            continue;
        }
        bad |= smm_packed_parse(cur, held, strlen(held)) != 0;
        for (int x = 0; x < d->n && !bad; x++) {
            bad |= smm_packed_add(cur, d->kv[x].name, d->kv[x].v) != 0;
        }
        bad |= !bad && smm_packed_format(cur, vals[n], sizeof(vals[n])) < 0;
        scores[n][0] = '\0';
        if (ent->kind == SMM_AGG_CONTENT && smm_packed_get(d, "engagement") != 0) {
            snprintf(scores[n], sizeof(scores[n]), "%lld",
                     bad ? 0LL : (long long)smm_packed_get(cur, "engagement"));
        }
        which[n++] = j;
    }
    if (n == 0 && ent->first_user < 0) {
        return 0; /* nothing to add: no record (with users: the version moves, see
                   * holds_sketch) */
    }
    const char *prune = "0";
    if (e->ver == 0 && e->pruned < 0) {
        prune = "n"; /* a new hash */
        e->pruned = now_min;
    } else if (now_min - e->pruned >= 60) {
        prune = "1";
        e->pruned = now_min;
    }
    char exp[24] = "";
    int is_proven = proven(pipe, e, e->expire_s, prune);
    int64_t idle = pipe->cfg->retention_idle_days;
    if (idle > 0) {
        int64_t want = pipe->enc_now_ms / 1000 + idle * 86400;
        if (e->expire_s == 0 || want - e->expire_s >= 86400) {
            snprintf(exp, sizeof(exp), "%lld", (long long)want);
            e->expire_s = want;
        }
    }
    if (bad) {
        pipe->plain_ok = 0;
    } else if (plain_record(pipe, ent, e, names, which, n, prune, exp, scores, is_proven) !=
               0) {
        return -1;
    }
    int rc = smm_argv_add_str(av, e->key);
    rc |= smm_argv_add_str(av, e->key + e->name_at);
    rc |= bad ? smm_argv_add_str(av, "") : smm_argv_add_int(av, e->ver);
    rc |= smm_argv_add_str(av, prune);
    rc |= smm_argv_add_str(av, exp);
    rc |= smm_argv_add_int(av, n);
    for (int x = 0; x < n; x++) {
        rc |= smm_argv_add_str(av, names[which[x]]);
        rc |= smm_argv_add_str(av, bad ? "" : vals[x]);
        rc |= smm_argv_add_str(av, dels[x]);
        rc |= smm_argv_add_str(av, scores[x]);
        if (!bad && smm_counters_set(e, names[which[x]], vals[x], strlen(vals[x])) != 0) {
            bad = 1;
        }
    }
    e->ver = bad ? -2 : e->ver + 1; /* -2: forgotten when the flush settles */
    return rc || pend_add(pipe, e) != 0 ? -1 : 1;
}

/* The record of the sketch section (see encode_part) of an entity whose values went in
 * the absolute section (e: its entry) and whose lifetime reach sketch e holds: its users
 * are added here and the sketch goes whole, with the hash's key (the script writes it as
 * it is only where the hash's version check passed; otherwise it merges it), whether it
 * changed and the expiry the sketch lacks. An unchanged sketch goes too: should the check fail
 * (another writer, or a Redis restored from an older state that lacks some of these
 * users), the script must merge it. Returns 1 when written, 0 when the sketch is not held
 * (the users then go to PFADD), -1 when out of memory. */
static int sketch_encode(struct smm_pipeline *pipe, const struct smm_agg *agg,
                         const struct smm_agg_entity *ent, struct smm_counters_entry *e,
                         struct smm_argv *av)
{
    if (!e || !e->reach || !holds_sketch(ent) || ent->first_user < 0) {
        return 0;
    }
    int changed = 0;
    for (int ui = ent->first_user; ui >= 0 && e->reach; ui = smm_agg_user_at(agg, ui)->next) {
        changed |= smm_counters_reach_add(pipe->cc, e, smm_agg_user_at(agg, ui)->reach_pos) > 0;
    }
    if (!e->reach) {
        return 0; /* out of memory: forgotten */
    }
    char exp[24] = "";
    if (pipe->cfg->retention_idle_days > 0 && e->reach_expire_s != e->expire_s) {
        snprintf(exp, sizeof(exp), "%lld", (long long)e->expire_s);
        e->reach_expire_s = e->expire_s;
        changed = 1;
    }
    if (!pipe->sketch_buf && !(pipe->sketch_buf = malloc(SMM_HLL_SERIALIZED_MAX))) {
        return -1;
    }
    size_t len;
    if (smm_hll_serialize(e->reach, SMM_HLL_SPARSE_MAX_BYTES, pipe->sketch_buf,
                          SMM_HLL_SERIALIZED_MAX, &len) != SMM_OK) {
        return -1; /* cannot happen: the buffer always suffices */
    }
    const char *name = e->key + e->name_at;
    char *skey = sketch_key(pipe, name, strlen(name));
    if (!skey) {
        return -1;
    }
    int rc = smm_argv_add_str(av, e->key);
    rc |= smm_argv_add_str(av, skey);
    rc |= smm_argv_add_str(av, exp);
    rc |= smm_argv_add_str(av, changed ? "1" : "0");
    rc |= smm_argv_add(av, (const char *)pipe->sketch_buf, len);
    /* The plain path's share: the check passed for every hash, so no sketch is merged and
     * an unchanged one need not go (the script's reach section, in plain commands). */
    struct smm_cmds *c = &pipe->plain.cmds;
    if (changed) { /* (a moved expiry counts as a change: it goes with the SET) */
        smm_cmds_begin(c, exp[0] ? 5 : 4);
        smm_cmds_arg_str(c, "SET");
        smm_cmds_arg_str(c, skey);
        smm_cmds_arg(c, pipe->sketch_buf, len);
        if (exp[0]) {
            smm_cmds_arg_str(c, "EXAT");
            smm_cmds_arg_str(c, exp);
        } else {
            smm_cmds_arg_str(c, "KEEPTTL");
        }
    }
    free(skey);
    return rc || c->oom ? -1 : 1;
}

/* An account's deltas for the daily hashes <prefix>d:<day> (goals, long-range charts):
 * minute, field, delta per metric and minute. */
static int day_deltas(const struct smm_agg *agg, const struct smm_agg_entity *ent,
                      struct smm_argv *out, int64_t *n)
{
    char field[2 * SMM_EVENT_ID_MAX + 96];
    int len = snprintf(field, sizeof(field), "a:%s:", ent->id);
    if (len < 0 || (size_t)len + 40 > sizeof(field)) {
        return SMM_ERR; /* cannot happen: route() bounds ids */
    }
    int rc = 0;
    for (int mi = ent->first_minute; mi >= 0;) {
        const struct smm_agg_minute *m = smm_agg_minute_at(agg, mi);
        for (int x = 0; x < SMM_AGG_METRICS; x++) {
            int64_t v = smm_agg_delta(m, x);
            if (v != 0 && smm_agg_kind_keeps(ent->kind, x)) {
                const char *mn = smm_agg_metric_name(x);
                char *end = put(field + len, mn, strlen(mn));
                rc |= smm_argv_add_int(out, m->minute);
                rc |= smm_argv_add(out, field, (size_t)(end - field));
                rc |= smm_argv_add_int(out, v);
                (*n)++;
            }
        }
        mi = m->next;
    }
    return rc ? SMM_ERR : SMM_OK;
}

/* The plain path's share of day_deltas(): ent's deltas summed per UTC day, as
 * HINCRBY <prefix>d:<day> a:<id>:<metric> <delta> (what the script's hash_add would add),
 * and each daily bucket's EXPIREAT once per flush. */
static void plain_days(struct smm_pipeline *pipe, const struct smm_agg *agg,
                       const struct smm_agg_entity *ent)
{
    struct smm_cmds *c = &pipe->plain.cmds;
    char key[64], field[2 * SMM_EVENT_ID_MAX + 96];
    int len = snprintf(field, sizeof(field), "a:%s:", ent->id);
    if (len < 0 || (size_t)len + 40 > sizeof(field)) {
        pipe->plain_ok = 0; /* cannot happen: route() bounds ids */
        return;
    }
    for (int mi = ent->first_minute; mi >= 0; mi = smm_agg_minute_at(agg, mi)->next) {
        int64_t day = smm_agg_minute_at(agg, mi)->minute / 1440;
        int seen = 0; /* a minute of this day came earlier in the list: summed then */
        for (int pj = ent->first_minute; pj != mi && !seen;
             pj = smm_agg_minute_at(agg, pj)->next) {
            seen = smm_agg_minute_at(agg, pj)->minute / 1440 == day;
        }
        if (seen) {
            continue;
        }
        snprintf(key, sizeof(key), "%sd:%lld", pipe->cfg->prefix, (long long)day);
        for (int x = 0; x < SMM_AGG_METRICS; x++) {
            if (!smm_agg_kind_keeps(ent->kind, x)) {
                continue;
            }
            int64_t v = 0;
            for (int pj = mi; pj >= 0; pj = smm_agg_minute_at(agg, pj)->next) {
                const struct smm_agg_minute *m = smm_agg_minute_at(agg, pj);
                v += m->minute / 1440 == day ? smm_agg_delta(m, x) : 0;
            }
            if (v != 0) {
                const char *mn = smm_agg_metric_name(x);
                char *end = put(field + len, mn, strlen(mn));
                smm_cmds_begin(c, 4);
                smm_cmds_arg_str(c, "HINCRBY");
                smm_cmds_arg_str(c, key);
                smm_cmds_arg(c, field, (size_t)(end - field));
                smm_cmds_arg_int(c, v);
            }
        }
        int have = 0;
        for (int d = 0; d < pipe->n_day_exp && !have; d++) {
            have = pipe->day_exp[d] == day;
        }
        if (!have) {
            if (pipe->n_day_exp < 4) {
                pipe->day_exp[pipe->n_day_exp++] = day;
            }
            smm_cmds_begin(c, 3);
            smm_cmds_arg_str(c, "EXPIREAT");
            smm_cmds_arg_str(c, key);
            smm_cmds_arg_int(c, (day + 1 + pipe->cfg->days_keep) * 86400);
        }
    }
}

static int user_ref_cmp(const void *a, const void *b)
{
    int64_t x = ((const struct user_ref *)a)->minute, y = ((const struct user_ref *)b)->minute;
    return (x > y) - (x < y);
}

/* a / b rounded down (b > 0), as the script's math.floor: minutes before 1970 too. */
static int64_t floor_div(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* PFADD key users[from..to), in commands of at most REACH_CHUNK users. */
#define REACH_CHUNK 1000
static void pfadd_refs(struct smm_cmds *c, const char *key, size_t key_len,
                       const struct user_ref *refs, int from, int to)
{
    for (int s = from; s < to; s += REACH_CHUNK) {
        int e = to - s > REACH_CHUNK ? s + REACH_CHUNK : to;
        smm_cmds_begin(c, 2 + e - s);
        smm_cmds_arg_str(c, "PFADD");
        smm_cmds_arg(c, key, key_len);
        for (int x = s; x < e; x++) {
            smm_cmds_arg_str(c, refs[x].user);
        }
    }
}

static void expireat(struct smm_cmds *c, const char *key, size_t key_len, int64_t at)
{
    smm_cmds_begin(c, 3);
    smm_cmds_arg_str(c, "EXPIREAT");
    smm_cmds_arg(c, key, key_len);
    smm_cmds_arg_int(c, at);
}

/* The batch's reach as plain commands into pipe->pre, which go first in the flush's
 * MULTI/EXEC (connectors/redis_sink.c): the users land with the version move of the hash
 * they belong to, so a writer holding the sketch never overwrites them. Every entity
 * with users whose lifetime sketch does not go whole (sketch_encode) gets PFADD
 * <prefix><kind>:<id>:reach, and with retention EXPIREAT now + idle_days. An account's users also go, sorted by minute, to its
 * minute sketch :m:<minute> (each listed as "a:<id>\n<minute>" in the set
 * reach_accounts:h:<hour> that drives the tick's hour merge) and to its day sketch
 * :d:<day> (expiring DAY_SKETCH_KEEP days after the day). The tick merges an hour once it
 * is over, and again whatever its set holds for the two hours before, so a minute sketch
 * written just after its hour's merge is merged on the next tick; for an older hour the
 * users go straight to its hour sketch :h:<hour> and the minute sketch gets its expiry.
 * Returns 0, or -1 when out of memory. */
#define DAY_SKETCH_KEEP 15
static int reach_writes(struct smm_pipeline *pipe, const struct smm_agg *agg)
{
    struct smm_cmds *c = &pipe->pre;
    const char *P = pipe->cfg->prefix;
    int64_t now_hour = smm_pipeline_minute(pipe->enc_now_ms) / 60;
    int64_t keep = pipe->keep_minutes, idle = pipe->cfg->retention_idle_days;
    int64_t expire_at = pipe->enc_now_ms / 1000 + idle * 86400;
    char key[2 * SMM_EVENT_ID_MAX + 256], sub[sizeof(key) + 64];
    struct user_ref *refs = NULL;
    int cap = 0, rc = 0;
    /* reach_accounts members of this batch, per hour: "a:<id>\n<minute>" */
    struct hour_member {
        int64_t hour;
        char *member;
    } *mem = NULL;
    int n_mem = 0, cap_mem = 0;
    for (int e = 0; e < smm_agg_entities(agg) && !rc; e++) {
        const struct smm_agg_entity *ent = smm_agg_entity(agg, e);
        int whole = pipe->held[e] && pipe->held[e]->reach; /* (sketch_encode) */
        if (ent->first_user < 0 || (whole && ent->kind != SMM_AGG_ACCOUNT)) {
            continue; /* no users, or they are all in the sketch written whole */
        }
        int kl = snprintf(key, sizeof(key), "%s%s:%s:reach", P, smm_agg_kind_prefix(ent->kind),
                          ent->id);
        if (kl < 0 || (size_t)kl >= sizeof(key)) {
            continue; /* cannot happen: route() bounds ids */
        }
        if (ent->n_users > cap) {
            int ncap = ent->n_users > 2 * cap ? ent->n_users : 2 * cap;
            struct user_ref *nr = realloc(refs, (size_t)ncap * sizeof(*refs));
            if (!nr) {
                rc = -1;
                break;
            }
            refs = nr;
            cap = ncap;
        }
        int n = 0;
        for (int ui = ent->first_user; ui >= 0 && n < ent->n_users;
             ui = smm_agg_user_at(agg, ui)->next) {
            refs[n].minute = smm_agg_user_at(agg, ui)->minute;
            refs[n++].user = smm_agg_user_at(agg, ui)->user;
        }
        if (!whole) {
            /* A copy of this sketch held here lacks these users now: loaded again before
             * it is written whole. */
            char name[2 * SMM_EVENT_ID_MAX + 96];
            struct smm_counters_entry *held =
                smm_counters_find(pipe->cc, name, ent_name(ent, name, sizeof(name)));
            if (held && held->reach) {
                smm_counters_reach_forget(pipe->cc, held);
            }
            pfadd_refs(c, key, (size_t)kl, refs, 0, n);
            if (idle > 0) {
                expireat(c, key, (size_t)kl, expire_at);
            }
        }
        if (ent->kind != SMM_AGG_ACCOUNT) {
            continue;
        }
        qsort(refs, (size_t)n, sizeof(*refs), user_ref_cmp);
        for (int x = 0, day_at = 0, run_at = 0; x < n && !rc; x++) {
            int64_t minute = refs[x].minute, day = floor_div(minute, 1440);
            int64_t hour = floor_div(minute, 60);
            if (x + 1 < n && refs[x + 1].minute == minute) {
                continue; /* the end of this minute's run comes later */
            }
            int sl = snprintf(sub, sizeof(sub), "%s:m:%lld", key, (long long)minute);
            pfadd_refs(c, sub, (size_t)sl, refs, run_at, x + 1);
            if (hour < now_hour - 1) {
                expireat(c, sub, (size_t)sl, (minute + 1 + keep) * 60);
                sl = snprintf(sub, sizeof(sub), "%s:h:%lld", key, (long long)hour);
                pfadd_refs(c, sub, (size_t)sl, refs, run_at, x + 1);
                expireat(c, sub, (size_t)sl, (hour * 60 + 60 + keep) * 60);
            } else {
                if (n_mem == cap_mem) {
                    int ncap = cap_mem ? 2 * cap_mem : 256;
                    void *nm = realloc(mem, (size_t)ncap * sizeof(*mem));
                    if (!nm) {
                        rc = -1;
                        break;
                    }
                    mem = nm;
                    cap_mem = ncap;
                }
                size_t il = strlen(ent->id);
                char *m = malloc(il + 26);
                if (!m) {
                    rc = -1;
                    break;
                }
                snprintf(m, il + 26, "a:%s\n%lld", ent->id, (long long)minute);
                mem[n_mem++] = (struct hour_member){hour, m};
            }
            run_at = x + 1;
            if (x + 1 == n || floor_div(refs[x + 1].minute, 1440) != day) {
                sl = snprintf(sub, sizeof(sub), "%s:d:%lld", key, (long long)day);
                pfadd_refs(c, sub, (size_t)sl, refs, day_at, x + 1);
                expireat(c, sub, (size_t)sl, (day + 1 + DAY_SKETCH_KEEP) * 86400);
                day_at = x + 1;
            }
        }
    }
    free(refs);
    /* One SADD per hour (members grouped by hour: few hours per batch), and its expiry. */
    for (int i = 0; i < n_mem && !rc; i++) {
        if (!mem[i].member) {
            continue;
        }
        int64_t hour = mem[i].hour;
        int k = 0;
        for (int j = i; j < n_mem; j++) {
            k += mem[j].member && mem[j].hour == hour;
        }
        int kl = snprintf(key, sizeof(key), "%sreach_accounts:h:%lld", P, (long long)hour);
        for (int j = i, left = k; left > 0;) {
            int chunk = left > REACH_CHUNK ? REACH_CHUNK : left;
            smm_cmds_begin(c, 2 + chunk);
            smm_cmds_arg_str(c, "SADD");
            smm_cmds_arg(c, key, (size_t)kl);
            for (int got = 0; got < chunk; j++) {
                if (mem[j].member && mem[j].hour == hour) {
                    smm_cmds_arg_str(c, mem[j].member);
                    free(mem[j].member);
                    mem[j].member = NULL;
                    got++;
                }
            }
            left -= chunk;
        }
        expireat(c, key, (size_t)kl, (hour * 60 + 60 + keep) * 60);
    }
    for (int i = 0; i < n_mem; i++) {
        free(mem[i].member);
    }
    free(mem);
    return rc || c->oom ? -1 : 0;
}

/* An entity whose users this batch adds by PFADD but whose counters it does not move (a
 * segment value's views) moves its hash's version all the same, in pipe->pre (first in
 * the flush's transaction): a writer holding a copy of its sketch then fails its check
 * and merges instead of writing over these users (see holds_sketch). With retention the
 * hash gets its expiry, as any write of it does. */
static void version_move(struct smm_pipeline *pipe, const struct smm_agg_entity *ent)
{
    char key[3 * SMM_EVENT_ID_MAX + 256];
    size_t ent_at;
    entity_key(pipe, ent, key, sizeof(key), &ent_at);
    struct smm_cmds *c = &pipe->pre;
    smm_cmds_begin(c, 4);
    smm_cmds_arg_str(c, "HINCRBY");
    smm_cmds_arg_str(c, key);
    smm_cmds_arg_str(c, "v");
    smm_cmds_arg_str(c, "1");
    if (pipe->cfg->retention_idle_days > 0) {
        expireat(c, key, strlen(key),
                 pipe->enc_now_ms / 1000 + pipe->cfg->retention_idle_days * 86400);
    }
}

/* One part: its fence, then b's counters, reach, statistics, links and admissions (b
 * NULL: empty sections, the fence only). */
static int encode_part(struct smm_pipeline *pipe, const struct smm_batch *b, const char *tp,
                       const char *token, int64_t base, int64_t next, struct smm_argv *av)
{
    const struct smm_agg *agg = b ? b->agg : NULL;
    int rc = 0;
    int n_all = agg ? smm_agg_entities(agg) : 0;
    if (n_all > pipe->cap_held) {
        void *h = realloc(pipe->held, (size_t)n_all * sizeof(*pipe->held));
        if (!h) {
            return SMM_ERR;
        }
        pipe->held = h;
        pipe->cap_held = n_all;
    }
    char names[SMM_COUNTERS_FIELDS][SMM_COUNTERS_NAME];
    rc |= smm_argv_add_str(av, tp);
    rc |= smm_argv_add_str(av, token);
    rc |= smm_argv_add_int(av, base);
    rc |= smm_argv_add_int(av, next);

    /* Counter groups: entity, minute, rated, k, {field, delta}*k. Field names are built
     * here, once, rather than by string concatenation in the script. */
    int groups_at = av->n;
    rc |= smm_argv_add_str(av, PLACEHOLDER);
    int64_t groups = 0;
    int n_ents = agg ? smm_agg_entities(agg) : 0;
    /* Entity ids are at most route()'s id buffer (two ids and a dimension); a field adds
     * the kind letter and a metric name. */
    char field[2 * SMM_EVENT_ID_MAX + 96];
    for (int e = 0; e < n_ents && !rc; e++) {
        const struct smm_agg_entity *ent = smm_agg_entity(agg, e);
        int n_buckets;
        if ((pipe->held[e] = held_entry(pipe, agg, ent, names, &n_buckets)) != NULL) {
            continue; /* its values go in the absolute section */
        }
        const char *kp = smm_agg_kind_prefix(ent->kind);
        size_t kn = strlen(kp), idn = strlen(ent->id);
        if (kn + 1 + idn + 40 > sizeof(field)) {
            return SMM_ERR; /* cannot happen: route() bounds ids */
        }
        int len = (int)(put(put(put(field, kp, kn), ":", 1), ent->id, idn) - field);
        int64_t groups_before = groups;
        for (int mi = ent->first_minute; mi >= 0 && !rc;) {
            const struct smm_agg_minute *m = smm_agg_minute_at(agg, mi);
            int k = 0;
            for (int x = 0; x < SMM_AGG_METRICS; x++) {
                k += smm_agg_delta(m, x) != 0 && smm_agg_kind_keeps(ent->kind, x);
            }
            if (k > 0) {
                /* er_impr is kept for posts and accounts; readers of the breakdowns
                 * divide themselves (/api/v1/segments does). */
                int rated = ent->kind <= SMM_AGG_ACCOUNT &&
                            (smm_agg_delta(m, SMM_AGG_ENGAGEMENT) != 0 ||
                             smm_agg_delta(m, SMM_EV_IMPRESSION) != 0);
                rc |= smm_argv_add(av, field, (size_t)len);
                rc |= smm_argv_add_int(av, m->minute);
                rc |= smm_argv_add_str(av, rated ? "1" : "0");
                rc |= smm_argv_add_int(av, k);
                for (int x = 0; x < SMM_AGG_METRICS; x++) {
                    if (smm_agg_delta(m, x) != 0 && smm_agg_kind_keeps(ent->kind, x)) {
                        const char *mn = smm_agg_metric_name(x); /* < 39 bytes */
                        char *end = put(put(field + len, ":", 1), mn, strlen(mn));
                        rc |= smm_argv_add(av, field, (size_t)(end - field));
                        rc |= smm_argv_add_int(av, smm_agg_delta(m, x));
                    }
                }
                field[len] = '\0';
                groups++;
            }
            mi = m->next;
        }
        if (groups == groups_before && ent->first_user >= 0) {
            version_move(pipe, ent);
        }
    }
    rc |= smm_argv_set_int(av, groups_at, groups);

    /* The entities whose buckets the pipeline holds: n_abs, {key, entity, base_v, prune,
     * expire_at, k, {field, value, delta, score}*k}*n_abs (abs_encode), then their lifetime
     * reach sketches (below), then their accounts' daily deltas (the groups carry their
     * own): n_days, {minute, "a:<id>:<metric>", delta}*n_days. These three sections are
     * what the plain path sends as commands. */
    int abs_at = av->n;
    rc |= smm_argv_add_str(av, PLACEHOLDER);
    int64_t n_abs = 0, n_days = 0;
    for (int e = 0; e < n_ents && !rc; e++) {
        if (pipe->held[e]) {
            const struct smm_agg_entity *ent = smm_agg_entity(agg, e);
            int k = entity_buckets(agg, ent, smm_pipeline_minute(pipe->enc_now_ms), names,
                                   SMM_COUNTERS_FIELDS);
            int a = abs_encode(pipe, agg, ent, pipe->held[e], names, k, av);
            rc |= a < 0;
            n_abs += a > 0;
            if (a == 0) {
                pipe->held[e] = NULL; /* no version check this flush: nothing else held */
            }
        }
    }
    rc |= smm_argv_set_int(av, abs_at, n_abs);
    if (agg) {
        rc |= smm_argv_set_int(&pipe->plain.check, pipe->chk_n_at, pipe->chk_n);
        plain_tops(pipe);
    }
    /* Their lifetime reach sketches: n_sketches, {key, sketch_key, expire_at, changed,
     * bytes}*n_sketches (sketch_encode). */
    int sketches_at = av->n;
    rc |= smm_argv_add_str(av, PLACEHOLDER);
    int64_t n_sketches = 0;
    for (int e = 0; e < n_ents && !rc; e++) {
        int w = sketch_encode(pipe, agg, smm_agg_entity(agg, e), pipe->held[e], av);
        rc |= w < 0;
        n_sketches += w > 0;
    }
    rc |= smm_argv_set_int(av, sketches_at, n_sketches);
    int days_at = av->n;
    rc |= smm_argv_add_str(av, PLACEHOLDER);
    for (int e = 0; e < n_ents && !rc; e++) {
        if (pipe->held[e] && smm_agg_entity(agg, e)->kind == SMM_AGG_ACCOUNT) {
            rc |= day_deltas(agg, smm_agg_entity(agg, e), av, &n_days);
            plain_days(pipe, agg, smm_agg_entity(agg, e));
        }
    }
    rc |= smm_argv_set_int(av, days_at, n_days);
    if (agg) { /* the part with the batch: these three sections are the plain path's */
        pipe->plain.cut_at = abs_at;
        pipe->plain.cut_end = av->n;
        pipe->plain.cut_sections = 3;
    }

    /* Reach: plain writes first in the flush's transaction (reach_writes). */
    if (agg && !rc) {
        rc |= reach_writes(pipe, agg);
    }

    /* Stats: exactly-once counters of what this batch consumed. */
    int stats_at = av->n;
    rc |= smm_argv_add_str(av, PLACEHOLDER);
    int64_t stats = 0;
    int64_t rejected = 0;
    for (int r = 1; b && r < SMM_REJECT__COUNT; r++) {
        if (b->rejects[r]) {
            char name[64];
            snprintf(name, sizeof(name), "dead_letter:%s", smm_reject_reason_name(r));
            rc |= smm_argv_add_str(av, name);
            rc |= smm_argv_add_int(av, b->rejects[r]);
            rejected += b->rejects[r];
            stats++;
        }
    }
    if (b && b->messages) {
        rc |= smm_argv_add_str(av, "messages");
        rc |= smm_argv_add_int(av, b->messages);
        rc |= smm_argv_add_str(av, "events_counted");
        rc |= smm_argv_add_int(av, b->messages - rejected);
        stats += 2;
    }
    if (rejected) {
        rc |= smm_argv_add_str(av, "dead_letter");
        rc |= smm_argv_add_int(av, rejected);
        stats++;
    }
    rc |= smm_argv_set_int(av, stats_at, stats);

    /* Links, in arrival order: type, account, a, b, c, ts, biz, x (see aggregate.h). */
    int n_links = b ? smm_agg_links(b->agg) : 0;
    rc |= smm_argv_add_int(av, n_links);
    for (int i = 0; i < n_links && !rc; i++) {
        const struct smm_agg_link *l = smm_agg_link_at(b->agg, i);
        const char *t = l->type == SMM_EV_MESSAGE ? "m"
                        : l->type == SMM_EV_REPLY ? "r"
                        : l->type == SMM_EV_REFERRAL ? "f"
                                                     : "v";
        rc |= smm_argv_add_str(av, t);
        rc |= smm_argv_add_str(av, l->account);
        rc |= smm_argv_add_str(av, l->a);
        rc |= smm_argv_add_str(av, l->b);
        rc |= smm_argv_add_str(av, l->c);
        rc |= smm_argv_add_int(av, l->ts_ms);
        rc |= smm_argv_add_int(av, l->biz_ms);
        rc |= smm_argv_add_int(av, l->x);
    }

    /* Admission sketches decide() fed (processor/counters.h): n_adm, {key, base_v, set_key,
     * expire_at, push, n_f, {field, value}*n_f, n_del, {field}*n_del, n_set,
     * {member}*n_set}*n_adm (adm_encode; n_set -1: the admitted set stands). */
    int adm_at = av->n;
    rc |= smm_argv_add_str(av, PLACEHOLDER);
    int64_t adm = 0;
    if (b && !rc) {
        rc |= adm_encode(pipe, av, &adm);
    }
    rc |= smm_argv_set_int(av, adm_at, adm);

    /* The check's fences (see struct smm_flush_plain): n_parts, {tp, token, base, next}. */
    struct smm_argv *chk = &pipe->plain.check;
    if (pipe->chk_parts_at < 0) {
        pipe->chk_parts_at = chk->n;
        rc |= smm_argv_add_str(chk, PLACEHOLDER);
    }
    rc |= smm_argv_add_str(chk, tp);
    rc |= smm_argv_add_str(chk, token);
    rc |= smm_argv_add_int(chk, base);
    rc |= smm_argv_add_int(chk, next);
    rc |= smm_argv_set_int(chk, pipe->chk_parts_at, ++pipe->chk_parts);
    return rc ? SMM_ERR : SMM_OK;
}

int smm_pipeline_encode_flush_part(struct smm_pipeline *pipe, const struct smm_batch *b,
                                   const char *tp, const char *token, int64_t base,
                                   int64_t next, struct smm_argv *av)
{
    return encode_part(pipe, b, tp, token, base, next, av);
}

int smm_pipeline_encode_flush(struct smm_pipeline *pipe, const struct smm_batch *b,
                              int64_t now_ms, const struct smm_flush_fence *fences, int n,
                              struct smm_argv *av)
{
    int rc = smm_pipeline_encode_flush_begin(pipe, now_ms, av);
    for (int i = 0; i < n && rc == SMM_OK; i++) {
        const struct smm_flush_fence *f = &fences[i];
        rc = encode_part(pipe, i == 0 ? b : NULL, f->tp, f->token, f->base, f->next, av);
    }
    return rc == SMM_OK ? smm_pipeline_encode_flush_end(av, n) : SMM_ERR;
}

int smm_pipeline_encode_insights(const struct smm_pipeline *pipe, int64_t now_ms,
                                 struct smm_argv *av)
{
    const struct smm_config *cfg = pipe->cfg;
    int rc = smm_argv_add_int(av, now_ms);
    rc |= smm_argv_add_int(av, cfg->days_keep);
    rc |= smm_argv_add_int(av, cfg->segments_top_n);
    rc |= smm_argv_add_int(av, cfg->response_max_open);
    rc |= smm_argv_add_int(av, cfg->response_reorder_ms);
    rc |= smm_argv_add_int(av, cfg->referral_window_ms);
    rc |= smm_argv_add_int(av, cfg->referral_max_depth);
    rc |= smm_argv_add_int(av, cfg->segments_top_n * cfg->segments_sketch_factor);
    rc |= smm_argv_add_int(av, cfg->segments_half_life_ms);
    rc |= smm_argv_add_int(av, cfg->retention_idle_days);
    return rc ? SMM_ERR : SMM_OK;
}

int smm_pipeline_encode_wseq(const struct smm_pipeline *pipe, struct smm_argv *av)
{
    return smm_argv_add_str(av, pipe->wseq_next) ? SMM_ERR : SMM_OK;
}

int smm_pipeline_encode_goals(const struct smm_pipeline *pipe, const struct smm_goal_report *g,
                              int n, struct smm_argv *av)
{
    (void)pipe;
    int rc = smm_argv_add_int(av, n);
    for (int i = 0; i < n && !rc; i++) {
        const struct smm_goal_cfg *c = g[i].cfg;
        const struct smm_goal_status *st = &g[i].st;
        char buf[64];
        rc |= smm_argv_add_str(av, c->id);
        rc |= smm_argv_add_str(av, c->account);
        rc |= smm_argv_add_str(av, c->metric);
        rc |= smm_argv_add_str(av, c->kind);
        rc |= smm_argv_add_int(av, c->start_day);
        rc |= smm_argv_add_int(av, c->start_day + c->days - 1);
        double nums[] = {st->baseline, st->current, st->target, st->expected, st->progress_pct};
        for (size_t j = 0; j < sizeof(nums) / sizeof(nums[0]); j++) {
            snprintf(buf, sizeof(buf), "%.4f", isfinite(nums[j]) ? nums[j] : 0.0);
            rc |= smm_argv_add_str(av, buf);
        }
        rc |= smm_argv_add_int(av, st->on_track);
        rc |= smm_argv_add_int(av, st->reached);
        rc |= smm_argv_add_int(av, st->ended);
    }
    return rc ? SMM_ERR : SMM_OK;
}

int smm_pipeline_encode_tick(const struct smm_pipeline *pipe, int64_t now_ms,
                             int64_t max_refresh, struct smm_argv *av)
{
    int rc = header(pipe, "tick", now_ms, av);
    rc |= smm_argv_add_int(av, max_refresh);
    rc |= smm_argv_add_int(av, now_ms);
    rc |= smm_argv_add_int(av, 0); /* (was the window reach refresh period) */
    return rc ? SMM_ERR : SMM_OK;
}

/* ---- Viral decisions ------------------------------------------------------------------
 * The state machine runs here (metrics/viral_state.c) on the state this processor holds
 * for each post: loaded from smm:v:<id> the first time it decides for the post
 * (smm_pipeline_viral_known), then kept from its own applied decisions. The script applies
 * a decision only when the post's stored seq is still the seq it started from; otherwise
 * (another processor moved the post first) it reports a conflict, the state is forgotten
 * here and loaded again before the next decision. Only posts in a state other than normal
 * (or with a decision in flight) are kept: a normal one costs one HMGET when it is next
 * flagged. */

static struct vpost *vfind(const struct smm_pipeline *pipe, const char *id, size_t len)
{
    if (!pipe->vcap) {
        return NULL;
    }
    uint64_t h = smm_hash64(id, len);
    for (struct vpost *vp = pipe->vtab[h & (pipe->vcap - 1)]; vp; vp = vp->next) {
        if (vp->h == h && strncmp(vp->id, id, len) == 0 && vp->id[len] == '\0') {
            return vp;
        }
    }
    return NULL;
}

static struct vpost *vput(struct smm_pipeline *pipe, const char *id)
{
    size_t len = strlen(id);
    struct vpost *vp = vfind(pipe, id, len);
    if (vp) {
        return vp;
    }
    if (pipe->vn >= pipe->vcap) {
        size_t ncap = pipe->vcap ? pipe->vcap * 2 : 256;
        struct vpost **nt = calloc(ncap, sizeof(*nt));
        if (!nt) {
            return NULL;
        }
        for (size_t i = 0; i < pipe->vcap; i++) {
            for (struct vpost *p = pipe->vtab[i], *nx; p; p = nx) {
                nx = p->next;
                p->next = nt[p->h & (ncap - 1)];
                nt[p->h & (ncap - 1)] = p;
            }
        }
        free(pipe->vtab);
        pipe->vtab = nt;
        pipe->vcap = ncap;
    }
    vp = calloc(1, sizeof(*vp) + len + 1);
    if (!vp) {
        return NULL;
    }
    memcpy(vp->id, id, len + 1);
    vp->h = smm_hash64(id, len);
    vp->next = pipe->vtab[vp->h & (pipe->vcap - 1)];
    pipe->vtab[vp->h & (pipe->vcap - 1)] = vp;
    pipe->vn++;
    return vp;
}

static void vdrop(struct smm_pipeline *pipe, struct vpost *vp)
{
    for (struct vpost **link = &pipe->vtab[vp->h & (pipe->vcap - 1)]; *link;
         link = &(*link)->next) {
        if (*link == vp) {
            *link = vp->next;
            pipe->vn--;
            free(vp);
            return;
        }
    }
}

int smm_pipeline_viral_unknown(const struct smm_pipeline *pipe,
                               const struct smm_viral_signals *sig, int n, const char **ids,
                               int max)
{
    int k = 0;
    for (int i = 0; i < n && k < max; i++) {
        if ((sig[i].flags & SMM_VIRAL_EVAL) &&
            !vfind(pipe, sig[i].content_id, strlen(sig[i].content_id))) {
            ids[k++] = sig[i].content_id;
        }
    }
    return k;
}

int smm_pipeline_viral_known(struct smm_pipeline *pipe, const char *id, const char *state,
                             int64_t since_ms, int64_t seq, int64_t below)
{
    struct vpost *vp = vput(pipe, id);
    if (!vp) {
        return SMM_ERR;
    }
    vp->st.state = smm_viral_state_parse(state, strlen(state));
    vp->st.since_ms = since_ms;
    vp->st.seq = seq;
    vp->st.below = below;
    vp->has_pend = vp->conflict = 0;
    return SMM_OK;
}

int smm_pipeline_viral_decides(const struct smm_pipeline *pipe, const char *id)
{
    return vfind(pipe, id, strlen(id)) != NULL;
}

int smm_pipeline_viral_state(const struct smm_pipeline *pipe, const char *id)
{
    const struct vpost *vp = vfind(pipe, id, strlen(id));
    return vp ? vp->st.state : -1;
}

void smm_pipeline_viral_conflict(struct smm_pipeline *pipe, const char *id, size_t len)
{
    struct vpost *vp = vfind(pipe, id, len);
    if (vp) {
        vp->conflict = 1;
    }
}

void smm_pipeline_viral_settle(struct smm_pipeline *pipe, int applied)
{
    for (size_t i = 0; i < pipe->n_vlast; i++) {
        struct vpost *vp = pipe->vlast[i];
        if (vp->conflict) {
            vdrop(pipe, vp); /* loaded again before its next decision */
            continue;
        }
        if (applied && vp->has_pend) {
            vp->st = vp->pend;
        }
        vp->has_pend = 0;
        if (vp->st.state == SMM_VS_NORMAL && vp->st.below == 0) {
            vdrop(pipe, vp);
        }
    }
    pipe->n_vlast = 0;
}

/* v as snprintf's "%.0f" (integer) or "%.6g" writes it, for finite v. Most of the viral
 * figures are whole numbers (counts, and rates of 0): those, when both formats print all
 * their digits (|v| < 1e6 for %.6g) and v is not -0, are written directly; snprintf and
 * its format parsing cost ~500 instructions a number. */
static void fmt_num(char *buf, size_t size, double v, int integer)
{
    if (fabs(v) < (integer ? 1e15 : 1e6) && v == floor(v) && !(v == 0 && signbit(v))) {
        int64_t i = (int64_t)v;
        uint64_t u = i < 0 ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
        char tmp[24], *p = tmp + sizeof(tmp);
        *--p = '\0';
        do {
            *--p = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (i < 0) {
            *--p = '-';
        }
        size_t n = (size_t)(tmp + sizeof(tmp) - p); /* with the NUL */
        if (n <= size) {
            memcpy(buf, p, n);
            return;
        }
    }
    snprintf(buf, size, integer ? "%.0f" : "%.6g", v);
}

/* The {field, value} pairs of a smm:v hash. A value that is not a finite number (SEISMIC's
 * predicted_final of a supercritical cascade is +inf) is written as the empty string: the
 * hash then holds "" and the alert JSON null, never the text "inf", which JSON readers
 * would take for a string (docs/redis-keys.md). */
struct vfig {
    int n;
    const char *field[32];
    char value[32][64];
};

static void add_fig(struct vfig *fg, const char *field, double v, int integer)
{
    fg->field[fg->n] = field;
    if (!isfinite(v)) {
        fg->value[fg->n][0] = '\0';
    } else {
        fmt_num(fg->value[fg->n], sizeof(fg->value[0]), v, integer);
    }
    fg->n++;
}

static void figures(const struct smm_viral_signals *s, struct vfig *fg)
{
    fg->n = 0;
    add_fig(fg, "reach_5m", s->reach_5m, 1);
    add_fig(fg, "reach_1h", s->reach_1h, 1);
    add_fig(fg, "nf_reach_5m", s->nf_reach_5m, 1);
    add_fig(fg, "nf_reach_1h", s->nf_reach_1h, 1);
    add_fig(fg, "nf_share_5m", s->nf_share_5m, 0);
    add_fig(fg, "nf_share_1h", s->nf_share_1h, 0);
    add_fig(fg, "rpm_5m", s->reach_5m / 5.0, 0);
    add_fig(fg, "rpm_1h", s->reach_1h / 60.0, 0);
    add_fig(fg, "spm_5m", s->spm_5m, 0);
    add_fig(fg, "spm_1h", s->spm_1h, 0);
    add_fig(fg, "accel", s->accel, 0);
    add_fig(fg, "share_z", s->share_z, 0);
    add_fig(fg, "threshold", s->threshold, 0);
    add_fig(fg, "first_ms", (double)s->first_ms, 1);
    add_fig(fg, "author_followers", (double)s->author_followers, 1);
    if (s->has_cascade) {
        add_fig(fg, "size", (double)s->cascade.size, 1);
        add_fig(fg, "depth", (double)s->cascade.max_depth, 1);
        add_fig(fg, "breadth", (double)s->cascade.max_breadth, 1);
        add_fig(fg, "exposure", (double)s->cascade.exposure, 1);
        add_fig(fg, "virality", s->cascade.virality, 0);
        add_fig(fg, "orphans", (double)s->cascade.orphans, 1);
        add_fig(fg, "truncated", (double)s->cascade.truncated, 1);
    }
    if (s->has_estimate) {
        add_fig(fg, "p", s->est.p, 0);
        add_fig(fg, "p_low", s->est.p_low, 0);
        add_fig(fg, "p_high", s->est.p_high, 0);
        add_fig(fg, "predicted_final", s->est.predicted_final, 0);
        add_fig(fg, "supercritical", (double)s->est.supercritical, 1);
    }
}

/* The alert of a decided state change (docs/alerts.md, "Viral"): alert_id
 * viral:<id>:<seq>, reasons (the rules that held; for a move down with none, "quiet" or
 * "below exit level"), the sentence for people, and the figures in metrics as the numbers
 * the hash holds (null for ""). Returns NULL on out-of-memory. */
static cJSON *viral_alert(const struct smm_viral_signals *s, const struct smm_viral_state_step *d,
                          int64_t now_ms, const char *alert_id, const struct vfig *fg)
{
    cJSON *a = cJSON_CreateObject();
    cJSON *rs = a ? cJSON_AddArrayToObject(a, "reasons") : NULL;
    if (!rs) {
        cJSON_Delete(a);
        return NULL;
    }
    cJSON_AddStringToObject(a, "alert_id", alert_id);
    cJSON_AddStringToObject(a, "kind", "viral");
    cJSON_AddStringToObject(a, "content_id", s->content_id);
    cJSON_AddStringToObject(a, "account_id", s->account_id);
    cJSON_AddStringToObject(a, "from", smm_viral_state_name(d->from));
    cJSON_AddStringToObject(a, "to", smm_viral_state_name(d->to));
    cJSON_AddNumberToObject(a, "at_ms", (double)now_ms);
    for (const char *r = s->reasons; *r;) {
        size_t len = strcspn(r, ";");
        if (len) {
            char one[sizeof(s->reasons)];
            memcpy(one, r, len);
            one[len] = '\0';
            cJSON_AddItemToArray(rs, cJSON_CreateString(one));
        }
        r += len + (r[len] == ';');
    }
    if (cJSON_GetArraySize(rs) == 0) {
        cJSON_AddItemToArray(rs, cJSON_CreateString(d->to == SMM_VS_NORMAL    ? "quiet"
                                                     : d->to == SMM_VS_COOLING ? "below exit level"
                                                                    : smm_viral_state_name(d->to)));
    }
    /* Up: every rule that holds. Down: the reach against the level it fell under, which
     * depends on the state it leaves (viral and cooling keep the exit level). */
    const char *why = s->message;
    if (d->to == SMM_VS_NORMAL || d->to == SMM_VS_COOLING) {
        int exit_level = d->from == SMM_VS_VIRAL || d->from == SMM_VS_COOLING;
        why = exit_level && s->message_exit[0]     ? s->message_exit
              : !exit_level && s->message_early[0] ? s->message_early
                                                   : s->message_down;
    }
    char msg[sizeof(s->message) + 200];
    smm_alert_text_viral(msg, sizeof(msg), s->content_id, d->to, why);
    cJSON_AddStringToObject(a, "message", msg);
    cJSON *m = cJSON_AddObjectToObject(a, "metrics");
    if (!m) {
        cJSON_Delete(a);
        return NULL;
    }
    for (int i = 0; i < fg->n; i++) {
        if (fg->value[i][0]) {
            cJSON_AddNumberToObject(m, fg->field[i], strtod(fg->value[i], NULL));
        } else {
            cJSON_AddNullToObject(m, fg->field[i]);
        }
    }
    return a;
}

int smm_pipeline_encode_viral(struct smm_pipeline *pipe, int64_t now_ms, int tick,
                              const struct smm_viral_signals *sig, int n, struct smm_argv *av)
{
    const struct smm_config *cfg = pipe->cfg;
    const struct smm_viral_state_config vcfg = {.exit_ticks = cfg->viral_exit_ticks,
                                                .cooldown_ms = cfg->viral_cooldown_ms};
    smm_pipeline_viral_settle(pipe, 0); /* a decision never settled did not apply */
    if ((size_t)n > pipe->vlast_cap) {
        struct vpost **nl = realloc(pipe->vlast, (size_t)n * sizeof(*nl));
        if (!nl) {
            return SMM_ERR;
        }
        pipe->vlast = nl;
        pipe->vlast_cap = (size_t)n;
    }
    int rc = smm_argv_add_int(av, now_ms);
    rc |= smm_argv_add_int(av, cfg->viral_exit_ticks);
    rc |= smm_argv_add_int(av, cfg->viral_cooldown_ms);
    rc |= smm_argv_add_int(av, cfg->alerts_stream_max);
    rc |= smm_argv_add_int(av, cfg->viral_stale_ms);
    rc |= smm_argv_add_int(av, n);
    for (int i = 0; i < n && !rc; i++) {
        const struct smm_viral_signals *s = &sig[i];
        struct vfig fg;
        figures(s, &fg);
        struct vpost *vp = (s->flags & SMM_VIRAL_EVAL)
                               ? vfind(pipe, s->content_id, strlen(s->content_id))
                               : NULL;
        struct smm_viral_state_step d;
        char *json = NULL;
        char alert_id[sizeof(s->reasons)];
        alert_id[0] = '\0';
        if (vp) {
            smm_viral_state_step(&vp->st, s->flags, now_ms, tick, &vcfg, &d);
            vp->pend = d.next;
            vp->has_pend = 1;
            vp->conflict = 0;
            pipe->vlast[pipe->n_vlast++] = vp;
            if (d.changed) {
                snprintf(alert_id, sizeof(alert_id), "viral:%s:%lld", s->content_id,
                         (long long)d.next.seq);
                cJSON *alert = viral_alert(s, &d, now_ms, alert_id, &fg);
                json = alert ? cJSON_PrintUnformatted(alert) : NULL;
                cJSON_Delete(alert);
                if (!json) {
                    return SMM_ERR;
                }
            }
        }
        rc |= smm_argv_add_str(av, s->content_id);
        rc |= smm_argv_add_str(av, s->account_id);
        /* The decision: the seq it starts from ('' = none: figures only), the state after
         * it, and the alert ('' = none): its id and JSON. */
        if (vp) {
            rc |= smm_argv_add_int(av, vp->st.seq);
            rc |= smm_argv_add_str(av, smm_viral_state_name(d.next.state));
        } else {
            rc |= smm_argv_add_str(av, "");
            rc |= smm_argv_add_str(av, "");
        }
        rc |= smm_argv_add_str(av, alert_id);
        rc |= smm_argv_add_str(av, json ? json : "");
        cJSON_free(json);
        char buf[64];
        fmt_num(buf, sizeof(buf), s->spm_5m, 0);
        rc |= smm_argv_add_str(av, buf);
        if (s->has_estimate) {
            double pf = s->est.predicted_final;
            fmt_num(buf, sizeof(buf), isfinite(pf) ? pf : 1e15, 0);
            rc |= smm_argv_add_str(av, buf);
        } else {
            rc |= smm_argv_add_str(av, "");
        }
        rc |= smm_argv_add_int(av, fg.n);
        for (int j = 0; j < fg.n; j++) {
            rc |= smm_argv_add_str(av, fg.field[j]);
            rc |= smm_argv_add_str(av, fg.value[j]);
        }
        /* The stored fields of the state the decision changes. */
        int nst = !vp ? 0
                      : (d.dirty & SMM_VIRAL_STATE_F_STATE ? 3 : 0) +
                            (d.dirty & SMM_VIRAL_STATE_F_BELOW ? 1 : 0);
        rc |= smm_argv_add_int(av, nst);
        if (vp && (d.dirty & SMM_VIRAL_STATE_F_STATE)) {
            rc |= smm_argv_add_str(av, "state");
            rc |= smm_argv_add_str(av, smm_viral_state_name(d.next.state));
            rc |= smm_argv_add_str(av, "state_since_ms");
            rc |= smm_argv_add_int(av, d.next.since_ms);
            rc |= smm_argv_add_str(av, "seq");
            rc |= smm_argv_add_int(av, d.next.seq);
        }
        if (vp && (d.dirty & SMM_VIRAL_STATE_F_BELOW)) {
            rc |= smm_argv_add_str(av, "below");
            rc |= smm_argv_add_int(av, d.next.below);
        }
    }
    return rc ? SMM_ERR : SMM_OK;
}
