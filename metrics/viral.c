/* metrics/viral.c - per-post spread signals and the viral rule. See viral.h.
 *
 * Posts and accounts live in two chained hash tables keyed by smm_hash64 of the id; the
 * tick walks every post once (baseline sampling, eviction, hot posts), which costs a few
 * nanoseconds per post and keeps every decision time-driven in one place, as Redis's
 * serverCron does. Shares per minute use a 64-slot ring indexed by minute, each slot
 * stamped with its minute so a stale slot reads as zero without being cleared. */
#include "metrics/viral.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/alert_text.h"
#include "metrics/hash.h"
#include "metrics/reach_window.h"

#define RING 64
#define BUCKETS 8
static const int64_t bucket_end_min[BUCKETS] = {5, 15, 30, 60, 120, 360, 1440, INT64_MAX};

struct ring {
    int64_t stamp[RING];
    int32_t count[RING];
};

struct post {
    struct post *next; /* hash chain */
    uint64_t h;
    char *id;
    struct account *acct;
    int64_t first_ms, last_event_ms, last_seen_now_ms;
    int64_t author_followers;
    struct smm_rwin *reach, *nf_reach;
    struct smm_cascade *cas;
    struct smm_seismic *sei;
    int seismic_started;
    struct ring *shares;
    struct smm_seismic_estimate est;
    int has_est;
    int64_t est_at_ms, est_reshares;
    double sent_spm, sent_pred; /* leaderboard scores last written */
    double last_spm;            /* spm_5m at the last evaluation, for the baseline */
    int bucket;                 /* age bucket of the last evaluation, -1 none */
    int64_t written_ms;         /* wall clock of the last take that wrote it */
    int state;
    int changed, taken;
};

struct baseline {
    int64_t n;
    double mean, m2;
};

struct account {
    struct account *next;
    uint64_t h;
    char *id;
    int has_rules;
    struct smm_viral_rules rules;
    struct baseline base[BUCKETS];
};

struct smm_viral {
    struct smm_viral_opts o;
    struct post **ptab;
    size_t pcap, n_posts;
    struct account **atab;
    size_t acap, n_accts;
    int64_t n_cascades, untracked;
    struct post **dirty; /* posts whose `changed` went from 0 to 1 since the last take */
    size_t n_dirty, dirty_cap;
    int oom;
    struct smm_viral_signals *out;
    struct post **out_posts;
    size_t out_cap;
    int n_out;
};

static char *dupn(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) {
        memcpy(d, s, n);
    }
    return d;
}

static int64_t minute_of(int64_t ms)
{
    int64_t q = ms / 60000;
    return (ms % 60000 != 0 && ms < 0) ? q - 1 : q;
}

struct smm_viral *smm_viral_new(const struct smm_viral_opts *o, char *errstr, size_t errstr_size)
{
    if (o->max_nodes < 1 || o->max_nodes > SMM_CASCADE_MAX_NODES_LIMIT || o->max_posts < 1 ||
        !(o->n_star > 0) || !(o->sd_floor > 0)) {
        snprintf(errstr, errstr_size, "viral: bad options");
        return NULL;
    }
    struct smm_viral *v = calloc(1, sizeof(*v));
    if (!v) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    v->o = *o;
    v->pcap = 1024;
    v->acap = 256;
    v->ptab = calloc(v->pcap, sizeof(*v->ptab));
    v->atab = calloc(v->acap, sizeof(*v->atab));
    if (!v->ptab || !v->atab) {
        smm_viral_destroy(v);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    return v;
}

static void post_free(struct smm_viral *v, struct post *p)
{
    if (p->cas) {
        v->n_cascades--;
    }
    smm_rwin_destroy(p->reach);
    smm_rwin_destroy(p->nf_reach);
    smm_cascade_destroy(p->cas);
    smm_seismic_destroy(p->sei);
    free(p->shares);
    free(p->id);
    free(p);
}

void smm_viral_destroy(struct smm_viral *v)
{
    if (!v) {
        return;
    }
    for (size_t i = 0; v->ptab && i < v->pcap; i++) {
        for (struct post *p = v->ptab[i], *nx; p; p = nx) {
            nx = p->next;
            post_free(v, p);
        }
    }
    for (size_t i = 0; v->atab && i < v->acap; i++) {
        for (struct account *a = v->atab[i], *nx; a; a = nx) {
            nx = a->next;
            free(a->id);
            free(a);
        }
    }
    free(v->ptab);
    free(v->atab);
    free(v->dirty);
    free(v->out);
    free(v->out_posts);
    free(v);
}

/* Doubles a chained table when it holds more entries than buckets. */
#define GROW(tab, cap, n, type)                                                              \
    do {                                                                                     \
        if ((n) > (cap)) {                                                                   \
            size_t ncap = (cap) * 2;                                                         \
            type **nt = calloc(ncap, sizeof(*nt));                                           \
            if (nt) {                                                                        \
                for (size_t i_ = 0; i_ < (cap); i_++) {                                      \
                    for (type *e_ = (tab)[i_], *nx_; e_; e_ = nx_) {                         \
                        nx_ = e_->next;                                                      \
                        e_->next = nt[e_->h & (ncap - 1)];                                   \
                        nt[e_->h & (ncap - 1)] = e_;                                         \
                    }                                                                        \
                }                                                                            \
                free(tab);                                                                   \
                (tab) = nt;                                                                  \
                (cap) = ncap;                                                                \
            }                                                                                \
        }                                                                                    \
    } while (0)

static struct account *account_get(struct smm_viral *v, const char *id, int create)
{
    uint64_t h = smm_hash64(id, strlen(id));
    for (struct account *a = v->atab[h & (v->acap - 1)]; a; a = a->next) {
        if (a->h == h && strcmp(a->id, id) == 0) {
            return a;
        }
    }
    if (!create) {
        return NULL;
    }
    struct account *a = calloc(1, sizeof(*a));
    if (!a || !(a->id = dupn(id))) {
        free(a);
        return NULL;
    }
    a->h = h;
    a->next = v->atab[h & (v->acap - 1)];
    v->atab[h & (v->acap - 1)] = a;
    v->n_accts++;
    GROW(v->atab, v->acap, v->n_accts, struct account);
    return a;
}

int smm_viral_set_rules(struct smm_viral *v, const char *account_id,
                        const struct smm_viral_rules *r)
{
    struct account *a = account_get(v, account_id, 1);
    if (!a) {
        return SMM_ERR;
    }
    a->rules = *r;
    a->has_rules = 1;
    return SMM_OK;
}

static struct post *post_find(struct smm_viral *v, const char *id, size_t len, uint64_t h)
{
    for (struct post *p = v->ptab[h & (v->pcap - 1)]; p; p = p->next) {
        if (p->h == h && strncmp(p->id, id, len) == 0 && p->id[len] == '\0') {
            return p;
        }
    }
    return NULL;
}

static struct post *post_get(struct smm_viral *v, const struct smm_event *ev)
{
    size_t len = strlen(ev->content_id);
    uint64_t h = smm_hash64(ev->content_id, len);
    struct post *p = post_find(v, ev->content_id, len, h);
    if (p) {
        return p;
    }
    if ((int64_t)v->n_posts >= v->o.max_posts) {
        v->untracked++;
        return NULL;
    }
    struct account *a = account_get(v, ev->account_id, 1);
    p = calloc(1, sizeof(*p));
    if (!a || !p || !(p->id = dupn(ev->content_id))) {
        free(p);
        return NULL;
    }
    p->h = h;
    p->acct = a;
    p->first_ms = ev->ts_ms;
    p->bucket = -1;
    p->next = v->ptab[h & (v->pcap - 1)];
    v->ptab[h & (v->pcap - 1)] = p;
    v->n_posts++;
    GROW(v->ptab, v->pcap, v->n_posts, struct post);
    return p;
}

static int64_t ring_sum(const struct ring *r, int64_t from_min, int64_t to_min)
{
    int64_t s = 0;
    if (!r) {
        return 0;
    }
    if (to_min - from_min >= RING) {
        from_min = to_min - RING + 1;
    }
    for (int64_t m = from_min; m <= to_min; m++) {
        int slot = (int)(m & (RING - 1));
        if (r->stamp[slot] == m) {
            s += r->count[slot];
        }
    }
    return s;
}

static void mark_changed(struct smm_viral *v, struct post *p)
{
    if (p->changed) {
        return;
    }
    if (v->n_dirty == v->dirty_cap) {
        size_t ncap = v->dirty_cap ? v->dirty_cap * 2 : 1024;
        struct post **nd = realloc(v->dirty, ncap * sizeof(*nd));
        if (!nd) {
            v->oom = 1; /* the next tick finds it by its flag */
            p->changed = 1;
            return;
        }
        v->dirty = nd;
        v->dirty_cap = ncap;
    }
    v->dirty[v->n_dirty++] = p;
    p->changed = 1;
}

static int observe_share(struct smm_viral *v, struct post *p, const struct smm_event *ev)
{
    if (!p->cas) {
        char err[128];
        p->cas = smm_cascade_new(v->o.max_nodes, err, sizeof(err));
        p->sei = smm_seismic_new(err, sizeof(err));
        p->shares = calloc(1, sizeof(*p->shares));
        if (!p->cas || !p->sei || !p->shares) {
            smm_cascade_destroy(p->cas);
            smm_seismic_destroy(p->sei);
            free(p->shares);
            p->cas = NULL;
            p->sei = NULL;
            p->shares = NULL;
            return SMM_ERR;
        }
        smm_seismic_set_n_star(p->sei, v->o.n_star);
        for (int i = 0; i < RING; i++) {
            p->shares->stamp[i] = INT64_MIN;
        }
        v->n_cascades++;
    }
    uint64_t node = smm_hash64(ev->event_id, strlen(ev->event_id));
    node = node ? node : 1;
    uint64_t parent = 0;
    if ((ev->flags & SMM_EVF_PARENT) && ev->parent_id[0]) {
        parent = smm_hash64(ev->parent_id, strlen(ev->parent_id));
        parent = parent ? parent : 1;
    }
    int64_t followers = (ev->flags & SMM_EVF_FOLLOWERS) ? ev->followers : 0;
    /* A repeated event_id is another share, as in the counters (docs/events.md); a Kafka
     * message read again after a rewind never gets here (processor/loop.c skips it). */
    int rc = smm_cascade_add(p->cas, node, parent, followers, NULL);
    if (rc == SMM_ERR) {
        return SMM_ERR;
    }
    if (!p->seismic_started) {
        smm_seismic_start(p->sei, p->author_followers);
        p->seismic_started = 1;
    }
    int64_t t = ev->ts_ms - p->first_ms;
    smm_seismic_observe(p->sei, t > 0 ? t : 0, followers);
    int64_t m = minute_of(ev->ts_ms);
    int slot = (int)(m & (RING - 1));
    if (p->shares->stamp[slot] != m) {
        if (p->shares->stamp[slot] > m) {
            return SMM_OK; /* older than the ring: counted in the cascade only */
        }
        p->shares->stamp[slot] = m;
        p->shares->count[slot] = 0;
    }
    p->shares->count[slot]++;
    return SMM_OK;
}

int smm_viral_observe(struct smm_viral *v, const struct smm_event *ev, int64_t now_ms)
{
    if (!(ev->flags & SMM_EVF_CONTENT) || !ev->content_id[0]) {
        return SMM_OK;
    }
    struct post *p = post_get(v, ev);
    if (!p) {
        return (int64_t)v->n_posts >= v->o.max_posts ? SMM_OK : SMM_ERR;
    }
    if (ev->ts_ms < p->first_ms) {
        p->first_ms = ev->ts_ms;
    }
    if (ev->ts_ms > p->last_event_ms) {
        p->last_event_ms = ev->ts_ms;
    }
    p->last_seen_now_ms = now_ms;
    if (ev->flags & SMM_EVF_AUTHOR_FOLLOWERS) {
        p->author_followers = ev->author_followers;
    }
    int rc = SMM_OK;
    if (ev->type == SMM_EV_SHARE) {
        rc = observe_share(v, p, ev);
        mark_changed(v, p);
    }
    /* Reach: every user with a content event, seen or acted on (a sharer was reached). */
    if (rc == SMM_OK && smm_event_type_reaches(ev->type) && (ev->flags & SMM_EVF_USER) &&
        ev->user_id[0]) {
        char err[128];
        if (!p->reach && !(p->reach = smm_rwin_new(60, err, sizeof(err)))) {
            return SMM_ERR;
        }
        uint64_t u = smm_hash64(ev->user_id, strlen(ev->user_id));
        int64_t m = minute_of(ev->ts_ms);
        smm_rwin_add(p->reach, u, m);
        if ((ev->flags & SMM_EVF_FOLLOWS_AUTHOR) && !ev->follows_author) {
            if (!p->nf_reach && !(p->nf_reach = smm_rwin_new(60, err, sizeof(err)))) {
                return SMM_ERR;
            }
            smm_rwin_add(p->nf_reach, u, m);
        }
        mark_changed(v, p);
    }
    return rc;
}

static const struct smm_viral_rules *rules_of(const struct smm_viral *v, const struct post *p)
{
    return p->acct->has_rules ? &p->acct->rules : &v->o.rules;
}

static int age_bucket(int64_t age_ms)
{
    int64_t min = age_ms / 60000;
    int b = 0;
    while (b < BUCKETS - 1 && min >= bucket_end_min[b]) {
        b++;
    }
    return b;
}

/* Moves p to its current age bucket; when it leaves one, its last share velocity there
 * joins the account's baseline for that bucket. Returns the current bucket. */
static int sample(struct post *p, int64_t now_ms, double spm_5m)
{
    int b = age_bucket(now_ms - p->first_ms);
    if (p->bucket >= 0 && b > p->bucket) {
        struct baseline *old = &p->acct->base[p->bucket];
        old->n++;
        double d = p->last_spm - old->mean;
        old->mean += d / (double)old->n;
        old->m2 += d * (p->last_spm - old->mean);
    }
    p->bucket = b;
    p->last_spm = spm_5m;
    return b;
}

static void append_reason(char *buf, size_t size, const char *what, double value, double bound)
{
    size_t used = strlen(buf);
    if (used + 2 >= size) {
        return;
    }
    snprintf(buf + used, size - used, "%s%s %.6g >= %.6g", used ? ";" : "", what, value, bound);
}

/* Computes every signal of p at now_ms into s, and samples the age baseline. */
static void evaluate(struct smm_viral *v, struct post *p, int64_t now_ms,
                     struct smm_viral_signals *s)
{
    memset(s, 0, sizeof(*s));
    int64_t now_min = minute_of(now_ms);
    s->content_id = p->id;
    s->account_id = p->acct->id;
    s->state = p->state;
    s->first_ms = p->first_ms;
    s->author_followers = p->author_followers;
    if (p->reach) {
        s->reach_5m = smm_rwin_count(p->reach, now_min, 5);
        s->reach_1h = smm_rwin_count(p->reach, now_min, 60);
    }
    if (p->nf_reach) {
        s->nf_reach_5m = smm_rwin_count(p->nf_reach, now_min, 5);
        s->nf_reach_1h = smm_rwin_count(p->nf_reach, now_min, 60);
    }
    /* Both are estimates: keep the share a percentage even where they disagree. */
    s->nf_share_5m = s->reach_5m > 0 ? fmin(100.0, 100.0 * s->nf_reach_5m / s->reach_5m) : 0;
    s->nf_share_1h = s->reach_1h > 0 ? fmin(100.0, 100.0 * s->nf_reach_1h / s->reach_1h) : 0;
    int64_t last5 = ring_sum(p->shares, now_min - 4, now_min);
    int64_t prev5 = ring_sum(p->shares, now_min - 9, now_min - 5);
    s->spm_5m = (double)last5 / 5.0;
    s->spm_1h = (double)ring_sum(p->shares, now_min - 59, now_min) / 60.0;
    s->accel = (double)(last5 - prev5) / 25.0;

    /* Age-matched baseline: z against earlier posts (a post never counts in its own
     * baseline: it adds its sample only when it leaves a bucket). */
    int b = sample(p, now_ms, s->spm_5m);
    struct baseline *base = &p->acct->base[b];
    if (base->n >= v->o.baseline_min) {
        double sd = base->n > 1 ? sqrt(base->m2 / (double)(base->n - 1)) : 0;
        s->share_z = (s->spm_5m - base->mean) / fmax(sd, v->o.sd_floor);
    }

    if (p->cas) {
        s->has_cascade = 1;
        smm_cascade_snapshot(p->cas, &s->cascade);
        int64_t t = now_ms - p->first_ms;
        int64_t r = smm_seismic_reshares(p->sei);
        /* SEISMIC walks its buffer: at most once a second per post, or on new shares. */
        if (t > 0 && (r != p->est_reshares || now_ms - p->est_at_ms >= 1000)) {
            p->has_est = smm_seismic_estimate(p->sei, t, &p->est) == SMM_OK;
            p->est_at_ms = now_ms;
            p->est_reshares = r;
        }
        s->has_estimate = p->has_est;
        s->est = p->est;
    }

    const struct smm_viral_rules *ru = rules_of(v, p);
    double T = fmax(ru->reach_min, ru->reach_alpha * (double)p->author_followers);
    s->threshold = T;
    /* Each rule that holds goes into `reasons` (machine) and `message` (words) from the
     * same values. */
#define SAY(what, fact, value, bound, ref)                                                  \
    do {                                                                                   \
        append_reason(s->reasons, sizeof(s->reasons), what, value, bound);                 \
        smm_alert_text_add(s->message, sizeof(s->message), fact, value, bound, ref);       \
    } while (0)
    int enter = s->reach_5m >= T;
    if (enter) {
        SAY("reach_5m", SMM_ALERT_REACH, s->reach_5m, T, T);
    }
    if (ru->share_z > 0) {
        enter = enter && s->share_z >= ru->share_z;
        if (s->share_z >= ru->share_z) {
            SAY("share_z", SMM_ALERT_SHARE_Z, s->share_z, ru->share_z, s->spm_5m);
        }
    }
    if (ru->nf_share > 0) {
        enter = enter && s->nf_share_5m >= ru->nf_share;
    }
    if (ru->depth > 0) {
        enter = enter && s->cascade.max_depth >= ru->depth;
    }
    double pred = s->has_estimate ? s->est.predicted_final : 0;
    if (ru->predicted > 0) {
        enter = enter && pred >= ru->predicted;
    }
    if (enter) {
        /* The extra rules held too: say so (they have no machine reason of their own). */
        if (ru->nf_share > 0) {
            smm_alert_text_add(s->message, sizeof(s->message), SMM_ALERT_NON_FOLLOWERS,
                               s->nf_share_5m, ru->nf_share, 0);
        }
        if (ru->depth > 0) {
            smm_alert_text_add(s->message, sizeof(s->message), SMM_ALERT_DEPTH,
                               (double)s->cascade.max_depth, (double)ru->depth, 0);
        }
        if (ru->predicted > 0) {
            smm_alert_text_add(s->message, sizeof(s->message), SMM_ALERT_PREDICTED, pred,
                               ru->predicted, 0);
        }
    }
    int rise = s->reach_5m >= ru->rise_frac * T;
    if (rise && !enter) {
        SAY("reach_5m", SMM_ALERT_REACH_EARLY, s->reach_5m, ru->rise_frac * T, T);
    }
    if (ru->rise_z > 0 && s->share_z >= ru->rise_z && s->spm_5m >= 1) {
        rise = 1;
        if (!enter) {
            SAY("share_z", SMM_ALERT_SHARE_Z, s->share_z, ru->rise_z, s->spm_5m);
        }
    }
    if (s->has_estimate && s->est.supercritical_conservative && s->cascade.size >= 10 &&
        s->reach_5m >= ru->rise_seismic_frac * T) {
        rise = 1;
        if (!enter) {
            SAY("p_low x n_star", SMM_ALERT_SEISMIC, s->est.p_low * v->o.n_star, 1.0,
                (double)s->cascade.size);
        }
    }
#undef SAY
    s->flags = (enter ? SMM_VIRAL_ENTER : 0) | (rise ? SMM_VIRAL_RISE : 0) |
               (s->reach_5m >= ru->exit_frac * T ? SMM_VIRAL_HOLD : 0);
    /* A normal post with no flag cannot change state: no need to run the machine. */
    if (s->flags || p->state != SMM_VS_NORMAL) {
        s->flags |= SMM_VIRAL_EVAL;
        smm_alert_text_add(s->message_exit, sizeof(s->message_exit), SMM_ALERT_BELOW_EXIT,
                           s->reach_5m, ru->exit_frac * T, T);
        smm_alert_text_add(s->message_early, sizeof(s->message_early), SMM_ALERT_BELOW_EARLY,
                           s->reach_5m, ru->rise_frac * T, s->spm_5m);
        if (p->state == SMM_VS_VIRAL || p->state == SMM_VS_COOLING) {
            smm_alert_text_add(s->message_down, sizeof(s->message_down), SMM_ALERT_BELOW_EXIT,
                               s->reach_5m, ru->exit_frac * T, T);
        } else {
            smm_alert_text_add(s->message_down, sizeof(s->message_down),
                               SMM_ALERT_BELOW_EARLY, s->reach_5m, ru->rise_frac * T,
                               s->spm_5m);
        }
    }
}

static int out_push(struct smm_viral *v, struct post *p, int64_t now_ms)
{
    if ((size_t)v->n_out == v->out_cap) {
        size_t ncap = v->out_cap ? v->out_cap * 2 : 256;
        struct smm_viral_signals *no = realloc(v->out, ncap * sizeof(*no));
        if (!no) {
            return SMM_ERR;
        }
        v->out = no;
        struct post **np = realloc(v->out_posts, ncap * sizeof(*np));
        if (!np) {
            return SMM_ERR;
        }
        v->out_posts = np;
        v->out_cap = ncap;
    }
    struct smm_viral_signals *s = &v->out[v->n_out];
    evaluate(v, p, now_ms, s);
    /* Quiet posts (no flag, normal) refresh their figures at most every write_ms: they
     * stay dirty until then. Flagged ones are written on every take. */
    if (!(s->flags & SMM_VIRAL_EVAL) && p->written_ms && now_ms - p->written_ms < v->o.write_ms) {
        return 1;
    }
    v->out_posts[v->n_out++] = p;
    p->taken = 1;
    p->changed = 0;
    p->written_ms = now_ms;
    return SMM_OK;
}

/* A post is worth writing when it spreads (a cascade) or reaches enough people. */
static int worth(const struct smm_viral *v, const struct post *p, int64_t now_ms)
{
    if (p->cas || p->state != SMM_VS_NORMAL) {
        return 1;
    }
    return p->reach && smm_rwin_count(p->reach, minute_of(now_ms), 5) >= (double)v->o.track_reach;
}

static int push_if_worth(struct smm_viral *v, struct post *p, int64_t now_ms)
{
    if (p->taken) {
        return SMM_OK;
    }
    if (!worth(v, p, now_ms)) {
        p->changed = 0; /* below the bar: nothing to write */
        return SMM_OK;
    }
    int rc = out_push(v, p, now_ms);
    if (rc != SMM_OK) {
        return rc; /* SMM_ERR, or 1: deferred (still changed) */
    }
    struct smm_viral_signals *s = &v->out[v->n_out - 1];
    p->sent_spm = s->spm_5m;
    return SMM_OK;
}

int smm_viral_take(struct smm_viral *v, int64_t now_ms, int tick,
                   const struct smm_viral_signals **out)
{
    v->n_out = 0;
    *out = v->out;
    size_t keep = 0; /* deferred posts stay in the dirty list */
    for (size_t i = 0; i < v->n_dirty; i++) {
        struct post *p = v->dirty[i];
        if (!p->changed) {
            continue;
        }
        int rc = push_if_worth(v, p, now_ms);
        if (rc == SMM_ERR) {
            v->n_dirty = keep;
            return -1;
        }
        if (rc == 1) {
            v->dirty[keep++] = p;
        }
    }
    v->n_dirty = keep;
    if (!tick && !v->oom) {
        *out = v->out;
        return v->n_out;
    }
    v->oom = 0;
    int64_t now_min = minute_of(now_ms);
    for (size_t i = 0; i < v->pcap; i++) {
        struct post **link = &v->ptab[i];
        while (*link) {
            struct post *p = *link;
            if (p->state == SMM_VS_NORMAL && !p->taken && !p->changed && p->sent_spm <= 0 &&
                now_ms - p->last_seen_now_ms >= v->o.evict_ms) {
                *link = p->next;
                v->n_posts--;
                post_free(v, p);
                continue;
            }
            link = &p->next;
            if (p->taken) {
                continue;
            }
            /* Hot posts: the state may move on the clock alone, or a leaderboard score
             * must decay to zero. */
            if (p->changed || p->state != SMM_VS_NORMAL || p->sent_spm > 0) {
                int rc = push_if_worth(v, p, now_ms);
                if (rc == SMM_ERR) {
                    return -1;
                }
                if (rc == 1 && !p->changed) {
                    mark_changed(v, p); /* a decaying score: written when its time comes */
                }
            } else if (p->bucket != age_bucket(now_ms - p->first_ms)) {
                /* A quiet post ageing out of a bucket still feeds the baseline. */
                sample(p, now_ms, (double)ring_sum(p->shares, now_min - 4, now_min) / 5.0);
            }
        }
    }
    *out = v->out;
    return v->n_out;
}

void smm_viral_settle(struct smm_viral *v, int applied)
{
    for (int i = 0; i < v->n_out; i++) {
        struct post *p = v->out_posts[i];
        p->taken = 0;
        if (!applied) {
            p->changed = 0;
            mark_changed(v, p);
            if (p->sent_spm <= 0) {
                p->sent_spm = 1e-9; /* the next tick writes its leaderboard score again */
            }
        }
    }
    v->n_out = 0;
}

void smm_viral_set_state(struct smm_viral *v, const char *content_id, size_t len, int state)
{
    uint64_t h = smm_hash64(content_id, len);
    struct post *p = post_find(v, content_id, len, h);
    if (p) {
        p->state = state;
    }
}

void smm_viral_retake(struct smm_viral *v, const char *content_id, size_t len)
{
    uint64_t h = smm_hash64(content_id, len);
    struct post *p = post_find(v, content_id, len, h);
    if (p) {
        mark_changed(v, p);
    }
}

int64_t smm_viral_posts(const struct smm_viral *v)
{
    return (int64_t)v->n_posts;
}

int64_t smm_viral_cascades(const struct smm_viral *v)
{
    return v->n_cascades;
}

int64_t smm_viral_untracked(const struct smm_viral *v)
{
    return v->untracked;
}

static const char *const state_names[] = {"normal", "rising", "viral", "cooling"};

const char *smm_viral_state_name(int state)
{
    return state >= 0 && state < 4 ? state_names[state] : "normal";
}

int smm_viral_state_parse(const char *name, size_t len)
{
    for (int i = 0; i < 4; i++) {
        if (strlen(state_names[i]) == len && strncmp(state_names[i], name, len) == 0) {
            return i;
        }
    }
    return SMM_VS_NORMAL;
}
