/* processor/status.c - the loop's figures behind a mutex, and their renderings.
 *
 * DESIGN: the loop never blocks on a reader. It publishes by copying its counters (and
 * one small record per assigned partition) under the mutex every 100 ms; readers copy the
 * whole status out under the same mutex and do all formatting, Redis and socket work on
 * their copy. The critical sections are memcpy-sized on both sides, so an HTTP request can
 * delay the loop by microseconds at most, never by a slow client. The renderers take the
 * snapshot (and the time, where they print one) as arguments, so tests check their exact
 * output without a daemon. */
#include "processor/status.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "connectors/http_server.h"
#include "metrics/event.h"
#include "processor/log.h"
#include "processor/pipeline.h"

const double smm_status_flush_le[SMM_STATUS_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                        0.1,   0.25,   0.5,   1,    2.5,   5};

struct smm_status {
    pthread_mutex_t mu;
    struct smm_status_snap s; /* parts is our array of cap_parts */
    int cap_parts;
    /* rate sampling (loop side, under mu) */
    int64_t rate_ts_ms, rate_consumed, rate_flush_count;
    double rate_flush_sum_s;
    int64_t heartbeat_ms; /* __atomic; CLOCK_MONOTONIC ms of the loop's last round, 0 none */
};

struct smm_status *smm_status_new(void)
{
    struct smm_status *st = calloc(1, sizeof(*st));
    if (!st) {
        return NULL;
    }
    if (pthread_mutex_init(&st->mu, NULL) != 0) {
        free(st);
        return NULL;
    }
    /* The one kind the first release emits: its series exists (at 0) from the start. */
    snprintf(st->s.kind[0], SMM_STATUS_KIND_MAX, "viral");
    st->s.n_kinds = 1;
    return st;
}

void smm_status_destroy(struct smm_status *st)
{
    if (!st) {
        return;
    }
    pthread_mutex_destroy(&st->mu);
    free(st->s.parts);
    free(st);
}

void smm_status_begin(struct smm_status *st, const struct smm_status_counts *c, int64_t now_ms)
{
    pthread_mutex_lock(&st->mu);
    st->s.started = 1;
    st->s.c = *c;
    st->s.n_parts = 0;
    st->s.lag_total = 0;
    st->s.lag_known = 0;
    if (st->rate_ts_ms == 0 || now_ms < st->rate_ts_ms) {
        st->rate_ts_ms = now_ms;
        st->rate_consumed = c->consumed;
    } else if (now_ms - st->rate_ts_ms >= 1000) {
        st->s.events_per_sec =
            (double)(c->consumed - st->rate_consumed) * 1000.0 / (double)(now_ms - st->rate_ts_ms);
        int64_t dn = st->s.flush_count - st->rate_flush_count;
        if (dn > 0) {
            st->s.flush_ms_recent = (st->s.flush_sum_s - st->rate_flush_sum_s) * 1000.0 / dn;
        }
        st->rate_ts_ms = now_ms;
        st->rate_consumed = c->consumed;
        st->rate_flush_count = st->s.flush_count;
        st->rate_flush_sum_s = st->s.flush_sum_s;
    }
}

void smm_status_part(struct smm_status *st, const char *topic, int32_t partition, int64_t lag,
                     int64_t offset)
{
    if (st->s.n_parts == st->cap_parts) {
        int ncap = st->cap_parts ? st->cap_parts * 2 : 16;
        struct smm_status_part *np = realloc(st->s.parts, (size_t)ncap * sizeof(*np));
        if (!np) {
            return; /* this publication lacks a partition; the next one retries */
        }
        st->s.parts = np;
        st->cap_parts = ncap;
    }
    struct smm_status_part *p = &st->s.parts[st->s.n_parts++];
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    p->partition = partition;
    p->lag = lag;
    p->offset = offset;
    if (lag > 0) {
        st->s.lag_total += lag;
    }
    if (lag >= 0 && !st->s.c.kafka_problem[0]) {
        st->s.lag_known = 1; /* with no partition, or brokers away, the lag is unknown, not 0 */
    }
}

void smm_status_end(struct smm_status *st)
{
    pthread_mutex_unlock(&st->mu);
}

void smm_status_flush(struct smm_status *st, int64_t us)
{
    double s = (double)us / 1e6;
    int b = 0;
    while (b < SMM_STATUS_BUCKETS && s > smm_status_flush_le[b]) {
        b++;
    }
    pthread_mutex_lock(&st->mu);
    st->s.flush_bucket[b]++;
    st->s.flush_count++;
    st->s.flush_sum_s += s;
    pthread_mutex_unlock(&st->mu);
}

void smm_status_alert(struct smm_status *st, const char *kind, int64_t n)
{
    pthread_mutex_lock(&st->mu);
    int i = 0;
    while (i < st->s.n_kinds && strncmp(st->s.kind[i], kind, SMM_STATUS_KIND_MAX - 1) != 0) {
        i++;
    }
    if (i == st->s.n_kinds && i < SMM_STATUS_MAX_KINDS) {
        snprintf(st->s.kind[i], SMM_STATUS_KIND_MAX, "%s", kind);
        st->s.kind_n[i] = 0;
        st->s.n_kinds++;
    }
    if (i < st->s.n_kinds) {
        st->s.kind_n[i] += n;
    }
    pthread_mutex_unlock(&st->mu);
}

void smm_status_set_open_threads(struct smm_status *st, int64_t n)
{
    pthread_mutex_lock(&st->mu);
    st->s.open_threads = n;
    pthread_mutex_unlock(&st->mu);
}

void smm_status_set_tracked_cascades(struct smm_status *st, int64_t n)
{
    pthread_mutex_lock(&st->mu);
    st->s.tracked_cascades = n;
    pthread_mutex_unlock(&st->mu);
}

void smm_status_heartbeat(struct smm_status *st, int64_t mono_ms)
{
    __atomic_store_n(&st->heartbeat_ms, mono_ms > 0 ? mono_ms : 1, __ATOMIC_RELEASE);
}

int smm_status_snapshot(struct smm_status *st, struct smm_status_snap *out)
{
    pthread_mutex_lock(&st->mu);
    *out = st->s;
    out->parts = NULL;
    out->rss_bytes = -1;
    int rc = SMM_OK;
    if (st->s.n_parts > 0) {
        out->parts = malloc((size_t)st->s.n_parts * sizeof(*out->parts));
        if (out->parts) {
            memcpy(out->parts, st->s.parts, (size_t)st->s.n_parts * sizeof(*out->parts));
        } else {
            out->n_parts = 0;
            rc = SMM_ERR;
        }
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

void smm_status_snap_free(struct smm_status_snap *snap)
{
    if (!snap) {
        return;
    }
    free(snap->parts);
    snap->parts = NULL;
    snap->n_parts = 0;
}

/* ---- rendering ---- */

struct text {
    char *buf;
    size_t len, cap;
    int oom;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...)
{
    if (t->oom) {
        return;
    }
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = 1;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t ncap = (t->cap + (size_t)n + 1) * 2;
        char *nb = realloc(t->buf, ncap);
        if (!nb) {
            t->oom = 1;
            return;
        }
        t->buf = nb;
        t->cap = ncap;
    }
}

static int text_init(struct text *t)
{
    t->cap = 4096;
    t->len = 0;
    t->oom = 0;
    t->buf = malloc(t->cap);
    if (t->buf) {
        t->buf[0] = '\0';
    }
    return t->buf ? SMM_OK : SMM_ERR;
}

static char *text_done(struct text *t)
{
    if (t->oom) {
        free(t->buf);
        return NULL;
    }
    return t->buf;
}

/* A label value: backslash, double quote and newline escaped (exposition format 0.0.4). */
static void put_label(struct text *t, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\') {
            put(t, "\\\\");
        } else if (*v == '"') {
            put(t, "\\\"");
        } else if (*v == '\n') {
            put(t, "\\n");
        } else {
            put(t, "%c", *v);
        }
    }
}

static void head(struct text *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void scalar(struct text *t, const char *name, const char *type, const char *help,
                   int64_t v)
{
    head(t, name, type, help);
    put(t, "%s %lld\n", name, (long long)v);
}

char *smm_status_render_prometheus(const struct smm_status_snap *s, const char *version)
{
    struct text t;
    if (text_init(&t) != SMM_OK) {
        return NULL;
    }
    scalar(&t, "smm_events_consumed_total", "counter", "Kafka messages read.", s->c.consumed);
    scalar(&t, "smm_events_counted_total", "counter",
           "Events counted and stored in Redis (exactly once).", s->c.counted);
    head(&t, "smm_events_dead_lettered_total", "counter",
         "Messages stored in the dead-letter topic, by reason.");
    for (int r = 1; r < SMM_REJECT__COUNT; r++) {
        put(&t, "smm_events_dead_lettered_total{reason=\"%s\"} %lld\n",
            smm_reject_reason_name((enum smm_reject_reason)r), (long long)s->c.rejects[r]);
    }
    scalar(&t, "smm_events_late_total", "counter",
           "Events whose event time was more than 60 s behind the wall clock when folded.",
           s->c.late);
    scalar(&t, "smm_flushes_total", "counter", "Flushes Redis applied.", s->c.flushes);
    scalar(&t, "smm_flush_failures_total", "counter", "Flushes that failed and were retried.",
           s->c.flush_failures);
    head(&t, "smm_flush_duration_seconds", "histogram",
         "Time from sending a flush to Redis until its reply.");
    int64_t cum = 0;
    for (int b = 0; b < SMM_STATUS_BUCKETS; b++) {
        cum += s->flush_bucket[b];
        put(&t, "smm_flush_duration_seconds_bucket{le=\"%g\"} %lld\n", smm_status_flush_le[b],
            (long long)cum);
    }
    cum += s->flush_bucket[SMM_STATUS_BUCKETS];
    put(&t, "smm_flush_duration_seconds_bucket{le=\"+Inf\"} %lld\n", (long long)cum);
    put(&t, "smm_flush_duration_seconds_sum %.9g\n", s->flush_sum_s);
    put(&t, "smm_flush_duration_seconds_count %lld\n", (long long)s->flush_count);
    scalar(&t, "smm_redis_errors_total", "counter", "Redis calls that failed.",
           s->c.redis_errors);
    scalar(&t, "smm_redis_retries_total", "counter",
           "Flush rounds that failed and were scheduled again with backoff.", s->c.redis_retries);
    head(&t, "smm_consumer_lag", "gauge",
         "Messages behind the partition's high watermark (librdkafka statistics).");
    for (int i = 0; i < s->n_parts; i++) {
        if (s->parts[i].lag < 0) {
            continue; /* unknown until the first statistics */
        }
        put(&t, "smm_consumer_lag{topic=\"");
        put_label(&t, s->parts[i].topic);
        put(&t, "\",partition=\"%d\"} %lld\n", (int)s->parts[i].partition,
            (long long)s->parts[i].lag);
    }
    scalar(&t, "smm_partitions_assigned", "gauge", "Kafka partitions assigned to this instance.",
           s->c.partitions);
    head(&t, "smm_alerts_emitted_total", "counter", "Alerts emitted, by kind.");
    for (int k = 0; k < s->n_kinds; k++) {
        put(&t, "smm_alerts_emitted_total{kind=\"");
        put_label(&t, s->kind[k]);
        put(&t, "\"} %lld\n", (long long)s->kind_n[k]);
    }
    if (s->open_threads >= 0) {
        scalar(&t, "smm_open_threads", "gauge",
               "Conversation threads waiting for a reply (sum of rt:open in Redis).",
               s->open_threads);
    }
    scalar(&t, "smm_tracked_cascades", "gauge", "Share cascades currently tracked.",
           s->tracked_cascades);
    if (s->rss_bytes >= 0) {
        scalar(&t, "smm_process_resident_memory_bytes", "gauge", "Resident set size.",
               s->rss_bytes);
    }
    char why[256];
    scalar(&t, "smm_ready", "gauge", "1 when /readyz answers 200.",
           smm_status_ready(s, why, sizeof(why)));
    head(&t, "smm_build_info", "gauge", "Always 1; the version is the label.");
    put(&t, "smm_build_info{version=\"");
    put_label(&t, version);
    put(&t, "\"} 1\n");
    return text_done(&t);
}

/* JSON numbers must be finite. */
static double finite(double v)
{
    return isfinite(v) ? v : 0.0;
}

char *smm_status_render_summary(const struct smm_status_snap *s, int64_t ts_ms)
{
    struct text t;
    if (text_init(&t) != SMM_OK) {
        return NULL;
    }
    char why[256];
    int ready = smm_status_ready(s, why, sizeof(why));
    double avg = s->flush_ms_recent;
    if (avg == 0 && s->flush_count > 0) {
        avg = s->flush_sum_s * 1000.0 / (double)s->flush_count;
    }
    char lag[24] = "null"; /* unknown: no partition with a known lag, or Kafka away */
    if (s->lag_known) {
        snprintf(lag, sizeof(lag), "%lld", (long long)s->lag_total);
    }
    put(&t,
        "{\"events_per_sec\":%.1f,\"consumed\":%lld,\"counted\":%lld,\"dead_lettered\":%lld,"
        "\"lag\":%s,\"flush_ms_avg\":%.3f,\"partitions\":%d,\"redis\":\"%s\",\"ready\":%s,"
        "\"ts_ms\":%lld}",
        finite(s->events_per_sec), (long long)s->c.consumed, (long long)s->c.counted,
        (long long)s->c.dead_lettered, lag, finite(avg), s->c.partitions,
        s->c.redis_up ? "up" : "down", ready ? "true" : "false", (long long)ts_ms);
    return text_done(&t);
}

int smm_status_ready(const struct smm_status_snap *s, char *why, size_t why_size)
{
    const char *reasons[5];
    int n = 0;
    if (!s->started) {
        reasons[n++] = "starting (not consuming yet)";
    } else {
        if (s->c.kafka_problem[0]) {
            reasons[n++] = s->c.kafka_problem;
        }
        if (s->c.partitions <= 0) {
            reasons[n++] = "no partitions assigned";
        }
        if (!s->c.redis_up) {
            reasons[n++] = "redis unreachable from the processing loop";
        }
        if (s->c.paused) {
            reasons[n++] = "consumption paused: Redis does not accept writes";
        }
    }
    size_t used = 0;
    if (why_size > 0) {
        why[0] = '\0';
    }
    for (int i = 0; i < n && used < why_size; i++) {
        int w = snprintf(why + used, why_size - used, "%s%s", i ? "; " : "", reasons[i]);
        if (w < 0) {
            break;
        }
        used += (size_t)w;
    }
    return n == 0;
}

/* ---- the HTTP server's view of the status ---- */

static int64_t read_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) {
        return -1;
    }
    long long size = 0, resident = -1;
    if (fscanf(f, "%lld %lld", &size, &resident) != 2) {
        resident = -1;
    }
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return resident >= 0 && page > 0 ? (int64_t)resident * page : -1;
}

static char *op_metrics(void *opaque, int64_t open_threads)
{
    struct smm_status_snap snap;
    smm_status_snapshot(opaque, &snap);
    snap.rss_bytes = read_rss();
    /* Open waits live in Redis (<prefix>rt:open, kept by the state script): the server's
     * reading of it is the truth, whatever was set here; unknown (-1) leaves it out. */
    snap.open_threads = open_threads;
    char *out = smm_status_render_prometheus(&snap, SMM_VERSION);
    smm_status_snap_free(&snap);
    return out;
}

static char *op_summary(void *opaque)
{
    struct smm_status_snap snap;
    smm_status_snapshot(opaque, &snap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char *out = smm_status_render_summary(&snap, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    smm_status_snap_free(&snap);
    return out;
}

static int op_ready(void *opaque, char *why, size_t why_size)
{
    struct smm_status_snap snap;
    smm_status_snapshot(opaque, &snap);
    int ready = smm_status_ready(&snap, why, why_size);
    smm_status_snap_free(&snap);
    return ready;
}

static int64_t op_heartbeat_age(void *opaque)
{
    struct smm_status *st = opaque;
    int64_t hb = __atomic_load_n(&st->heartbeat_ms, __ATOMIC_ACQUIRE);
    if (hb == 0) {
        return -1; /* the loop has not started yet */
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t age = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - hb;
    return age > 0 ? age : 0;
}

struct smm_http_server *smm_status_serve(struct smm_status *st, const struct smm_config *cfg,
                                         char *errstr, size_t errstr_size)
{
    char labels[SMM_CFG_MAX_WINDOWS][32];
    const char *windows[SMM_CFG_MAX_WINDOWS];
    for (int i = 0; i < cfg->n_windows; i++) {
        smm_pipeline_window_label(cfg->window_min[i], labels[i], sizeof(labels[i]));
        windows[i] = labels[i];
    }
    /* Every count field of an entity (docs/redis-keys.md), then the derived ones. */
    const char *metrics[SMM_EV__COUNT + 4];
    int n_metrics = 0;
    for (int m = 0; m < SMM_EV__COUNT; m++) {
        metrics[n_metrics++] = smm_event_type_name((enum smm_event_type)m);
    }
    metrics[n_metrics++] = "engagement";
    metrics[n_metrics++] = "er_impr";
    metrics[n_metrics++] = "reach";
    metrics[n_metrics++] = "er_reach";
    /* Competitor sets and goal ids for /api/v1/sov and /api/v1/goals (copied by the
     * server). */
    struct smm_http_sov_set sov[SMM_CFG_MAX_SOV_SETS];
    int n_sov = cfg->n_sov_sets < SMM_CFG_MAX_SOV_SETS ? cfg->n_sov_sets : SMM_CFG_MAX_SOV_SETS;
    for (int i = 0; i < n_sov; i++) {
        sov[i] = (struct smm_http_sov_set){
            .name = cfg->sov_sets[i].name,
            .brands = (const char *const *)cfg->sov_sets[i].brands,
            .n_brands = cfg->sov_sets[i].n_brands,
        };
    }
    const char *goal_ids[SMM_CFG_MAX_GOALS];
    int n_goals = cfg->n_goals < SMM_CFG_MAX_GOALS ? cfg->n_goals : SMM_CFG_MAX_GOALS;
    for (int i = 0; i < n_goals; i++) {
        goal_ids[i] = cfg->goals[i].id;
    }
    /* A host name (localhost) binds the first address it resolves to. */
    char addr[64];
    if (smm_config_http_bind_address(cfg->http_address, addr, sizeof(addr), errstr,
                                     errstr_size) != SMM_OK) {
        return NULL;
    }
    struct smm_http_opts o = {
        .address = addr,
        .port = (int)cfg->http_port,
        .token = cfg->http_token,
        .prefix = cfg->prefix,
        .redis_host = cfg->redis_host,
        .redis_port = (int)cfg->redis_port,
        .redis_unix_socket = cfg->redis_unix_socket,
        .redis_db = (int)cfg->redis_db,
        .redis_username = cfg->redis_username,
        .redis_password = cfg->redis_password,
        /* Short: a slow Redis must answer an HTTP client with 503, not hold it. */
        .redis_timeout_ms = cfg->redis_timeout_ms < 1000 ? (int)cfg->redis_timeout_ms : 1000,
        .windows = windows,
        .n_windows = cfg->n_windows,
        .metrics = metrics,
        .n_metrics = n_metrics,
        .sov_sets = sov,
        .n_sov_sets = n_sov,
        .goal_ids = goal_ids,
        .n_goals = n_goals,
        /* as processor/pipeline.c tells the state script: hour reach sketches expire then */
        .keep_minutes = cfg->n_windows > 0
                            ? (cfg->window_min[cfg->n_windows - 1] > 48 * 60
                                   ? cfg->window_min[cfg->n_windows - 1]
                                   : 48 * 60) + (cfg->window_grace_ms + 59999) / 60000
                            : 0,
        .days_keep = cfg->days_keep,
        .max_per_ip = (int)cfg->http_max_per_ip,
        .header_timeout_ms = (int)cfg->http_header_timeout_ms,
        .health_max_age_ms = cfg->http_health_max_age_ms,
        .allowed_hosts = cfg->http_allowed_hosts,
        .ops = {.opaque = st, .metrics = op_metrics, .summary = op_summary, .ready = op_ready,
                .heartbeat_age_ms = op_heartbeat_age},
        .log = smm_log_cb,
    };
    struct smm_http_server *srv = smm_http_server_start(&o, errstr, errstr_size);
    if (srv) {
        int v6 = strchr(addr, ':') != NULL;
        int named = strcmp(addr, cfg->http_address) != 0;
        smm_log(SMM_LOG_INFO, "http: listening on %s%s%s:%d%s%s%s%s", v6 ? "[" : "", addr,
                v6 ? "]" : "", smm_http_server_port(srv), named ? " (" : "",
                named ? cfg->http_address : "", named ? ")" : "",
                cfg->http_token[0] ? " (bearer token required)" : "");
    } else if (strstr(errstr, "cannot listen")) {
        /* Most often a second instance on this host: say which keys move it. */
        size_t n = strlen(errstr);
        snprintf(errstr + n, errstr_size - n,
                 "; another process (a second smm-processor?) may hold the port: set "
                 "http.port (0 = any free port) or http.address, or http.enabled=false");
    }
    return srv;
}
