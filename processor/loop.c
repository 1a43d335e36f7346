/* processor/loop.c - the main loop: consume, fold, flush atomically, tick, report.
 *
 * DESIGN (exactly once): each assigned partition has an owner token written to Redis on
 * assignment, the offset Redis stored for it (base) and the offset after the last message
 * folded (next). All partitions fold into one batch; a flush sends it with every
 * partition's (token, base, next) to the state script, which applies it only if Redis
 * still names us as owner and still holds base, for every partition; then base = next and
 * the offset is stored in Kafka for lag monitoring. One flush is in flight at a time while
 * the next batch fills. Failure modes:
 *   RETRY   Redis unreachable: keep the batch, pause consumption, back off, resend. A
 *           resend of a batch that did apply answers DUP, which counts as success.
 *   FENCED  someone else owns a partition: stop writing for it; drop both batches and
 *           send the other partitions back to their stored offsets (discard_all).
 *   STALE   Redis holds another offset (restored from an older AOF): the same, the
 *           partition going back to what Redis holds; the re-read recounts it.
 * Dead letters are acknowledged by Kafka before the flush that moves an offset past them;
 * if any failed, the batch is dropped and the partitions re-read instead. A stopping
 * processor waits for them DLQ_STOP_WAIT_MS at most (dlq_settle): the ones left are
 * behind no stored offset, so the next start dead-letters them again. */
#include "processor/loop.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "connectors/alert_relay.h"
#include "connectors/kafka_source.h"
#include "connectors/redis_sink.h"
#include "processor/log.h"
#include "processor/pipeline.h"
#include "metrics/viral.h"
#include "processor/status.h"
#include "processor/top.h"

enum part_state { PART_ACTIVE, PART_UNCLAIMED, PART_FENCED };

struct part {
    char topic[256];
    int32_t partition;
    char tp[300];    /* "<topic>:<partition>", the field in <prefix>offsets */
    char token[160]; /* our ownership token for this assignment */
    enum part_state state;
    int64_t base; /* offset stored in Redis (-1 none) */
    int64_t next; /* offset after the last folded message (-1 none yet) */
    int64_t lag;  /* from librdkafka statistics, -1 unknown */
    int64_t origin; /* with no stored offset (base -1): the first offset folded, else -1 */
    /* The loop's filling batch holds [flight_next or base, next) of this partition, the
     * batch in flight [base, flight_next) when in_flight. */
    int64_t flight_next;
    int in_flight;
    int64_t warm_until;       /* viral warm-up: messages before this feed only the tracker */
    int64_t warm_deadline_ms; /* give up warming by then (e.g. a control record at the end) */
    int seen_at;              /* its entry in loop->seen, -1 none (out of memory) */
};

/* The offset after the last message of a partition the viral tracker observed. Kept for
 * the process's life, across revocations (a struct part is not), because the tracker
 * keeps its memory too: it counts every share it is given (an event_id sent twice is two
 * shares, as in the counters; docs/events.md), so each Kafka message must reach it once,
 * not again when a rewind (discard_all) or a warm-up after a rebalance re-reads it. */
struct seen {
    char tp[300];
    int64_t next;
};

struct smm_loop {
    const struct smm_config *cfg;
    struct smm_loop_opts opts;
    struct smm_pipeline *pipe;
    struct smm_viral *viral; /* NULL when viral.enabled = 0 */
    struct smm_kafka_source *src;
    struct smm_redis_sink *sink;
    struct smm_alert_relay *relay; /* NULL when alerts.kafka is off */
    struct part **parts;
    int n_parts, cap_parts;
    struct smm_argv av;
    /* One filling batch and one in flight for all partitions: the script applies a flush's
     * partitions all or none, so keeping them apart only multiplied every account, segment
     * value and popular post by the partition count (in memory, and in a merge per flush). */
    struct smm_batch batch, flight;
    int dead_letters; /* dead letters produced into the filling batch */
    int64_t dlq_give_up_ms; /* stopping: when waiting for dead letters ends (0: not yet) */
    int dlq_gave_up;        /* stopping, and dead letters were still not acknowledged then */
    uint64_t token_seq;
    char token_base[128];
    int fatal;
    int paused;
    int warming; /* partitions still in their viral warm-up: no viral writes meanwhile */
    int64_t retry_at_ms, backoff_ms;
    int64_t last_msg_ms;
    int64_t last_msg_kafka_ts; /* Kafka timestamp of the last message folded, -1 unknown */
    /* totals and per-interval figures for the stats line */
    int64_t consumed, counted, dead_lettered, flushes, flush_failures, stale, fenced;
    int64_t rejects[SMM_REJECT__COUNT];
    int64_t iv_consumed, iv_flush_us_sum, iv_flush_us_max, iv_flushes;
    int64_t iv_start_ms;
    /* the flush in flight (at most one): its partitions and when it was sent */
    int inflight;
    struct part **flight_parts;
    int n_flight;
    int64_t flight_t0_us;
    int64_t retries;         /* failed flush rounds scheduled again (for /metrics) */
    int64_t next_publish_ms; /* next copy into opts.status */
    int64_t next_goals_ms;   /* next goal evaluation (tick) */
    struct smm_goal_report goals[SMM_CFG_MAX_GOALS];
    struct smm_top *top;    /* --top view, NULL without it */
    int64_t flush_us_total; /* for the --top view's latency */
    struct seen *seen;      /* per partition ever assigned: see struct seen */
    int n_seen, cap_seen;
};

static int64_t clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* How long a stopping processor waits, in all, for dead letters to be acknowledged. */
#define DLQ_STOP_WAIT_MS 2000

/* Waits for every dead letter produced so far to be acknowledged (the result of
 * smm_kafka_source_dlq_wait), in 100 ms slices: up to 10 s while running, but once a
 * stop signal came only until DLQ_STOP_WAIT_MS after it was first seen here (one budget
 * for the final flush and the revoke flushes together), and not at all after a second
 * signal. Giving up loses nothing: the offset never moves past an unacknowledged dead
 * letter, so the next start reads and dead-letters it again. */
static int dlq_settle(struct smm_loop *loop)
{
    volatile sig_atomic_t *stop = loop->opts.stop;
    int64_t t0 = clock_ms();
    for (;;) {
        int stopping = stop ? *stop : 0;
        if (stopping && !loop->dlq_give_up_ms) {
            loop->dlq_give_up_ms = clock_ms() + DLQ_STOP_WAIT_MS;
        }
        int late = stopping && (stopping >= 2 || clock_ms() >= loop->dlq_give_up_ms);
        int w = smm_kafka_source_dlq_wait(loop->src, late ? 0 : 100);
        if (w > 0 && late) {
            loop->dlq_gave_up = 1; /* the final flush stops retrying */
        }
        if (w <= 0 || late || (!stopping && clock_ms() - t0 >= 10000)) {
            return w;
        }
    }
}

/* ---- partitions ---- */

/* Sleeps ms milliseconds, in slices short enough that a stop signal ends the wait at once
 * (SIGTERM during a start-up retry, not 30 s later). Returns 1 when stopped. */
static int nap(volatile sig_atomic_t *stop, int64_t ms)
{
    for (int64_t left = ms; left > 0 && !(stop && *stop); left -= 50) {
        int64_t step = left < 50 ? left : 50;
        nanosleep(&(struct timespec){0, (long)step * 1000000}, NULL);
    }
    return stop && *stop;
}

/* The index of tp's entry in loop->seen, created on first use; -1 on out of memory (its
 * messages then always reach the tracker, as they did before it existed). */
static int seen_index(struct smm_loop *loop, const char *tp)
{
    for (int i = 0; i < loop->n_seen; i++) {
        if (strcmp(loop->seen[i].tp, tp) == 0) {
            return i;
        }
    }
    if (loop->n_seen == loop->cap_seen) {
        int ncap = loop->cap_seen ? loop->cap_seen * 2 : 64;
        struct seen *ns = realloc(loop->seen, (size_t)ncap * sizeof(*ns));
        if (!ns) {
            return -1;
        }
        loop->seen = ns;
        loop->cap_seen = ncap;
    }
    struct seen *e = &loop->seen[loop->n_seen];
    snprintf(e->tp, sizeof(e->tp), "%s", tp);
    e->next = -1;
    return loop->n_seen++;
}

/* Feeds ev, the message at offset of p, to the viral tracker unless it observed that
 * message already (see struct seen). */
static int viral_feed(struct smm_loop *loop, struct part *p, int64_t offset,
                      const struct smm_event *ev, int64_t now)
{
    if (p->seen_at >= 0) {
        struct seen *e = &loop->seen[p->seen_at];
        if (offset < e->next) {
            return SMM_OK;
        }
        e->next = offset + 1;
    }
    return smm_viral_observe(loop->viral, ev, now);
}

static struct part *part_find(struct smm_loop *loop, const char *topic, int32_t partition)
{
    for (int i = 0; i < loop->n_parts; i++) {
        struct part *p = loop->parts[i];
        if (p->partition == partition && strcmp(p->topic, topic) == 0) {
            return p;
        }
    }
    return NULL;
}

static void warm_done(struct smm_loop *loop, struct part *p, const char *why)
{
    if (p->warm_until < 0) {
        return;
    }
    p->warm_until = -1;
    loop->warming--;
    smm_log(SMM_LOG_INFO, "partition %s: viral tracker warmed up (%s)", p->tp, why);
}

static void part_remove(struct smm_loop *loop, struct part *p)
{
    warm_done(loop, p, "revoked");
    for (int i = 0; i < loop->n_parts; i++) {
        if (loop->parts[i] == p) {
            loop->parts[i] = loop->parts[--loop->n_parts];
            break;
        }
    }
    free(p);
}

/* Events of p wait in the filling batch or in the one in flight. */
static int part_unflushed(const struct part *p)
{
    return p->in_flight || (p->next >= 0 && p->next != p->base);
}

/* Where p re-reads from after a drop: the stored offset, or its first message. */
static int64_t part_restart(const struct part *p)
{
    return p->base >= 0 ? p->base : p->origin;
}

static int any_in_flight(const struct smm_loop *loop)
{
    for (int i = 0; i < loop->n_parts; i++) {
        if (loop->parts[i]->in_flight) {
            return 1;
        }
    }
    return 0;
}

static int complete(struct smm_loop *loop, int wait, int64_t now);

/* Drops both batches and sends every partition back to the offset Redis holds for it.
 * The batches mix all partitions, so one that must not be flushed as it is (fenced,
 * stale, revoked with events unstored, dead letters not acknowledged) takes the others
 * with it; the re-read counts them once. Rare: rebalances, restored Redis state.
 * A flush still awaiting its reply is settled first, so its outcome is known; if the
 * reply is lost, the fences decide on the re-read (a flush applied meanwhile makes the
 * next one answer STALE, which moves the partition to what Redis holds). */
static void discard_all(struct smm_loop *loop, const char *why)
{
    complete(loop, 1, clock_ms());
    int64_t dropped = loop->batch.messages + (any_in_flight(loop) ? loop->flight.messages : 0);
    smm_batch_clear(&loop->batch);
    smm_batch_clear(&loop->flight);
    loop->dead_letters = 0;
    for (int i = 0; i < loop->n_parts; i++) {
        struct part *p = loop->parts[i];
        if (!part_unflushed(p)) {
            continue;
        }
        int64_t to = part_restart(p);
        p->in_flight = 0;
        p->next = p->base;
        if (p->state == PART_ACTIVE) { /* to < 0: nothing stored, from the beginning */
            smm_kafka_source_seek(loop->src, p->topic, p->partition, to);
        }
    }
    if (dropped > 0) {
        smm_log(SMM_LOG_WARN, "%s: dropped %lld unstored event(s) of all partitions; "
                "re-reading them from the offsets in Redis", why, (long long)dropped);
    }
}


/* Redis refused something retrying cannot fix: an ACL without our keys or one of the
 * script's commands (NOPERM, "can't access", "can't run"), or credentials changed under us.
 * Stop with the reason instead of retrying forever, or running on without counting. */
static int refused(struct smm_loop *loop, const char *what)
{
    const char *e = smm_redis_sink_errstr(loop->sink);
    if (!strstr(e, "NOPERM") && !strstr(e, "NOAUTH") && !strstr(e, "WRONGPASS") &&
        !strstr(e, "can't access") && !strstr(e, "can't run")) {
        return 0;
    }
    if (!loop->fatal) {
        smm_log(SMM_LOG_ERROR,
                "%s: Redis refused access: %s (the Redis user needs the keys %s* and the "
                "commands listed in docs/security.md); stopping",
                what, e, loop->cfg->prefix);
    }
    loop->fatal = 1;
    return 1;
}

static int claim(struct smm_loop *loop, struct part *p)
{
    complete(loop, 1, clock_ms()); /* the sink carries one call at a time */
    if (part_unflushed(p)) {
        discard_all(loop, p->tp); /* (not expected: a partition being claimed folds nothing) */
    }
    snprintf(p->token, sizeof(p->token), "%s/%llu", loop->token_base,
             (unsigned long long)++loop->token_seq);
    int64_t stored = -1;
    int rc = smm_redis_sink_claim(loop->sink, loop->cfg->prefix, p->tp, p->token, &stored);
    if (rc != SMM_SINK_OK) {
        if (rc != SMM_SINK_ERROR || !refused(loop, p->tp)) {
            smm_log(SMM_LOG_WARN, "partition %s: cannot claim in Redis yet: %s", p->tp,
                    smm_redis_sink_errstr(loop->sink));
        }
        p->state = PART_UNCLAIMED;
        return SMM_ERR;
    }
    p->state = PART_ACTIVE;
    p->base = stored;
    p->next = stored;
    p->origin = -1;
    if (stored < 0) {
        smm_log(SMM_LOG_INFO, "partition %s: claimed; no offset in Redis (none stored): "
                "starting at the group's committed offset or auto.offset.reset", p->tp);
    } else {
        smm_log(SMM_LOG_INFO, "partition %s: claimed, resuming at offset %lld", p->tp,
                (long long)stored);
    }
    return SMM_OK;
}

/* After a restart or a rebalance the viral tracker knows nothing of what happened before
 * the stored offset. Re-reading the last viral.warmup_messages messages into the tracker
 * only (not the counters: they are in Redis) rebuilds its windows and cascades, so a post
 * that is viral stays viral instead of cooling down for lack of memory. */
static void warm_start(struct smm_loop *loop, struct part *p, int64_t *offset)
{
    int64_t want = loop->cfg->viral_warmup_messages;
    int64_t low;
    if (!loop->viral || want <= 0 || p->warm_until >= 0 || p->base <= 0 ||
        smm_kafka_source_low_watermark(loop->src, p->topic, p->partition, 5000, &low) != 0) {
        return;
    }
    int64_t start = p->base - want > low ? p->base - want : low;
    if (start >= p->base) {
        return;
    }
    p->warm_until = p->base;
    p->warm_deadline_ms = clock_ms() + 60000;
    loop->warming++;
    *offset = start;
    smm_log(SMM_LOG_INFO, "partition %s: warming the viral tracker from offset %lld "
            "(%lld messages)", p->tp, (long long)start, (long long)(p->base - start));
}

static void on_assign(void *opaque, const char *topic, int32_t partition, int64_t *offset)
{
    struct smm_loop *loop = opaque;
    struct part *p = part_find(loop, topic, partition);
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p) {
            smm_log(SMM_LOG_ERROR, "out of memory on assignment");
            loop->fatal = 1;
            return;
        }
        snprintf(p->topic, sizeof(p->topic), "%s", topic);
        p->partition = partition;
        snprintf(p->tp, sizeof(p->tp), "%s:%d", topic, (int)partition);
        p->lag = -1;
        p->warm_until = -1;
        p->base = p->next = p->origin = -1;
        p->seen_at = seen_index(loop, p->tp);
        if (loop->n_parts == loop->cap_parts) {
            int ncap = loop->cap_parts ? loop->cap_parts * 2 : 64;
            struct part **np = realloc(loop->parts, (size_t)ncap * sizeof(*np));
            if (!np) {
                free(p);
                loop->fatal = 1;
                return;
            }
            loop->parts = np;
            loop->cap_parts = ncap;
        }
        loop->parts[loop->n_parts++] = p;
    }
    loop->last_msg_ms = clock_ms(); /* the idle exit counts from the assignment */
    if (claim(loop, p) == SMM_OK && p->base >= 0) {
        *offset = p->base;
        warm_start(loop, p, offset);
    } else {
        *offset = SMM_KAFKA_OFFSET_DEFAULT;
    }
}

static void flush_all(struct smm_loop *loop, int64_t now, int async);

static void on_revoke(void *opaque, const char *topic, int32_t partition, int lost)
{
    struct smm_loop *loop = opaque;
    struct part *p = part_find(loop, topic, partition);
    if (!p) {
        return;
    }
    /* The flush in flight may hold this partition: settle it first (the fence decides). */
    complete(loop, 1, clock_ms());
    if (!lost && p->state == PART_ACTIVE && part_unflushed(p)) {
        /* Hand over cleanly: what we counted is stored before the next owner starts (all
         * partitions: they share the batch). The fence makes this safe even if the next
         * owner was faster. */
        flush_all(loop, clock_ms(), 0);
    }
    if (part_unflushed(p)) {
        /* Lost, or Redis refused the flush: its events must not be stored by us. */
        p->state = PART_UNCLAIMED; /* no seek: it is no longer ours */
        discard_all(loop, p->tp);
    }
    part_remove(loop, p);
}

static void on_stats(void *opaque, const char *json, size_t len)
{
    struct smm_loop *loop = opaque;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        return;
    }
    cJSON *topics = cJSON_GetObjectItemCaseSensitive(root, "topics");
    for (int i = 0; i < loop->n_parts; i++) {
        struct part *p = loop->parts[i];
        cJSON *t = cJSON_GetObjectItemCaseSensitive(topics, p->topic);
        cJSON *parts = cJSON_GetObjectItemCaseSensitive(t, "partitions");
        char key[16];
        snprintf(key, sizeof(key), "%d", (int)p->partition);
        cJSON *pj = cJSON_GetObjectItemCaseSensitive(parts, key);
        cJSON *lag = cJSON_GetObjectItemCaseSensitive(pj, "consumer_lag");
        p->lag = cJSON_IsNumber(lag) ? (int64_t)lag->valuedouble : -1;
    }
    cJSON_Delete(root);
}

/* ---- consuming ---- */

static void on_msg(void *opaque, const struct smm_kafka_msg *msg)
{
    struct smm_loop *loop = opaque;
    struct part *p = part_find(loop, msg->topic, msg->partition);
    loop->consumed++;
    loop->iv_consumed++;
    if (!p || p->state != PART_ACTIVE) {
        return; /* re-read from the stored offset once the partition is ours */
    }
    if (p->warm_until >= 0) {
        if (msg->offset < p->warm_until) {
            const struct smm_event *ev = smm_pipeline_decode(
                loop->pipe, msg->payload, msg->len, msg->timestamp_ms, clock_ms());
            if (ev) {
                viral_feed(loop, p, msg->offset, ev, clock_ms());
            }
            if (msg->offset + 1 >= p->warm_until) {
                warm_done(loop, p, "caught up");
            }
            return;
        }
        warm_done(loop, p, "caught up");
    }
    if (p->next >= 0 && msg->offset < p->next) {
        return; /* already folded: a fetch from before a seek */
    }
    struct smm_reject rej;
    int64_t now = clock_ms();
    int rc = smm_pipeline_feed(loop->pipe, &loop->batch, msg->payload, msg->len,
                               msg->timestamp_ms, now, &rej);
    if (rc == SMM_OK && loop->viral &&
        viral_feed(loop, p, msg->offset, smm_pipeline_last_event(loop->pipe), now) != SMM_OK) {
        smm_log(SMM_LOG_WARN, "out of memory in the viral tracker; its figures are incomplete");
    }
    if (rc == SMM_PIPELINE_OOM) {
        smm_log(SMM_LOG_ERROR, "out of memory while aggregating; stopping (a restart resumes "
                               "from the stored offsets)");
        loop->fatal = 1;
        return;
    }
    if (rc != SMM_OK) {
        const char *reason = smm_reject_reason_name(rej.reason);
        smm_log(SMM_LOG_WARN, "dead letter %s offset %lld: %s: %s", p->tp,
                (long long)msg->offset, reason, rej.detail);
        if (p->next < 0) {
            p->origin = msg->offset;
        }
        p->next = msg->offset + 1;
        if (smm_kafka_source_dead_letter(loop->src, msg, reason, rej.detail) != 0) {
            /* Could not even queue it: rewind so it is retried, never skipped. */
            discard_all(loop, "dead-letter queue full");
            return;
        }
        loop->dead_letters++;
    }
    if (p->next < 0) {
        p->origin = msg->offset;
    }
    p->next = msg->offset + 1;
    loop->last_msg_ms = now;
    loop->last_msg_kafka_ts = msg->timestamp_ms;
}

/* ---- flushing ---- */

/* The batch a flush carries: the filling one, or the one in flight. */
static struct smm_batch *slot(struct smm_loop *loop, int flight)
{
    return flight ? &loop->flight : &loop->batch;
}

static int64_t slot_end(const struct part *p, int flight)
{
    return flight ? p->flight_next : p->next;
}

/* A batch is stored (applied now, or found applied by an earlier attempt): its statistics
 * count, and it is cleared for reuse. */
static void batch_stored(struct smm_loop *loop, int flight)
{
    struct smm_batch *b = slot(loop, flight);
    int64_t rejected = 0;
    for (int r = 0; r < SMM_REJECT__COUNT; r++) {
        loop->rejects[r] += b->rejects[r];
        rejected += b->rejects[r];
    }
    loop->dead_lettered += rejected;
    loop->counted += b->messages - rejected;
    smm_batch_clear(b);
    if (!flight) {
        loop->dead_letters = 0;
    }
}

/* p's share of a stored batch: its offset moves on (in Redis already; in Kafka for lag). */
static void committed(struct smm_loop *loop, struct part *p, int flight)
{
    p->base = slot_end(p, flight);
    if (flight) {
        p->in_flight = 0;
    }
    smm_kafka_source_store(loop->src, p->topic, p->partition, p->base);
}

/* p has events in the batch in flight (flight = 1) or, with nothing in flight, in the
 * filling one. */
static int has_pending(const struct part *p, int flight)
{
    if (flight) {
        return p->in_flight && p->state == PART_ACTIVE;
    }
    return p->state == PART_ACTIVE && !p->in_flight && p->next >= 0 && p->next != p->base;
}

static void note_flush(struct smm_loop *loop, int64_t us)
{
    loop->flushes++;
    loop->iv_flushes++;
    loop->iv_flush_us_sum += us;
    loop->flush_us_total += us;
    if (us > loop->iv_flush_us_max) {
        loop->iv_flush_us_max = us;
    }
    if (loop->opts.status) {
        smm_status_flush(loop->opts.status, us);
    }
}

/* Evaluates the goals every goals.eval_ms from the daily account buckets (metrics/goals.c);
 * the tick hands the results to the script, which keeps them and alerts on transitions.
 * Returns how many reports loop->goals holds for this tick (0 between evaluations, or
 * when Redis could not be read: the next tick tries again). */
static int caught_up(struct smm_loop *loop)
{
    if (loop->n_parts == 0 || loop->warming) {
        return 0;
    }
    for (int i = 0; i < loop->n_parts; i++) {
        const struct part *p = loop->parts[i];
        int64_t hi, pos = p->base; /* what Redis holds: goals read the flushed counters */
        if (p->state != PART_ACTIVE ||
            smm_kafka_source_high_cached(loop->src, p->topic, p->partition, &hi) != 0 ||
            pos < hi - loop->cfg->flush_max_events) {
            return 0;
        }
    }
    return 1;
}

static int eval_goals(struct smm_loop *loop, int64_t now)
{
    const struct smm_config *cfg = loop->cfg;
    /* Not before the processor has caught up with its partitions: a restart would
     * otherwise judge goals on half-read history (a false "off track"). */
    if (cfg->n_goals == 0 || now < loop->next_goals_ms || !caught_up(loop)) {
        return 0;
    }
    for (int i = 0; i < cfg->n_goals; i++) {
        const struct smm_goal_cfg *g = &cfg->goals[i];
        struct smm_goal_input in = {0};
        in.kind = strcmp(g->kind, "increase") == 0 ? SMM_GOAL_INCREASE : SMM_GOAL_AT_LEAST;
        in.target_param = g->target;
        in.is_rate = strcmp(g->metric, "response_rate") == 0;
        in.start_day = g->start_day;
        in.days = g->days;
        in.now_ms = now;
        int64_t bf, bt, cf, ct;
        smm_goal_days(&in, &bf, &bt, &cf, &ct);
        char num[300], den[300];
        snprintf(num, sizeof(num), "a:%s:%s", g->account, in.is_rate ? "answered" : g->metric);
        snprintf(den, sizeof(den), "a:%s:threads", g->account);
        int rc = smm_redis_sink_day_sum(loop->sink, cfg->prefix, num, bf, bt, &in.base_num);
        if (rc == SMM_SINK_OK) {
            rc = smm_redis_sink_day_sum(loop->sink, cfg->prefix, num, cf, ct, &in.cur_num);
        }
        if (rc == SMM_SINK_OK && in.is_rate) {
            rc = smm_redis_sink_day_sum(loop->sink, cfg->prefix, den, bf, bt, &in.base_den);
            if (rc == SMM_SINK_OK) {
                rc = smm_redis_sink_day_sum(loop->sink, cfg->prefix, den, cf, ct, &in.cur_den);
            }
        }
        if (rc != SMM_SINK_OK) {
            smm_log(SMM_LOG_WARN, "goals: cannot read daily buckets: %s",
                    smm_redis_sink_errstr(loop->sink));
            return 0;
        }
        loop->goals[i].cfg = g;
        smm_goal_eval(&in, &loop->goals[i].st);
    }
    loop->next_goals_ms = now + cfg->goals_eval_ms;
    return cfg->n_goals;
}

#define VIRAL_LOAD_MAX 1000 /* posts whose stored state one flush or tick loads at most */

int smm_loop_viral_load(struct smm_pipeline *pipe, struct smm_redis_sink *sink,
                        const char *prefix, const struct smm_viral_signals *sig, int n, int max)
{
    if (n <= 0 || max <= 0) {
        return SMM_SINK_OK;
    }
    const char **ids = malloc((size_t)max * sizeof(*ids));
    struct smm_redis_viral_row *rows = malloc((size_t)max * sizeof(*rows));
    int rc = SMM_SINK_RETRY;
    if (ids && rows) {
        int k = smm_pipeline_viral_unknown(pipe, sig, n, ids, max);
        rc = smm_redis_sink_viral_load(sink, prefix, ids, k, rows);
        for (int i = 0; i < k && rc == SMM_SINK_OK; i++) {
            if (smm_pipeline_viral_known(pipe, ids[i], rows[i].state, rows[i].since_ms,
                                         rows[i].seq, rows[i].below) != SMM_OK) {
                rc = SMM_SINK_RETRY;
            }
        }
    }
    free(rows);
    free(ids);
    return rc;
}

/* Appends the viral section to loop->av: the posts whose figures changed (tick: and the
 * hot ones), with the decisions of the flagged ones (their stored state loaded first when
 * the pipeline has none). Their write is settled by settle_call() once Redis answers. */
static int encode_viral(struct smm_loop *loop, int64_t now, int tick)
{
    const struct smm_viral_signals *sig = NULL;
    int n = 0;
    if (loop->viral && !loop->warming) {
        n = smm_viral_take(loop->viral, now, tick, &sig);
        if (n < 0) {
            smm_viral_settle(loop->viral, 0);
            n = 0;
        }
    }
    if (n > 0 && smm_loop_viral_load(loop->pipe, loop->sink, loop->cfg->prefix, sig, n,
                                     VIRAL_LOAD_MAX) == SMM_SINK_ERROR) {
        refused(loop, "viral load");
    }
    for (int i = 0; i < n; i++) {
        /* The tracker's mirror follows the stored state just loaded (it picks the hot
         * posts each tick sends). */
        int st = (sig[i].flags & SMM_VIRAL_EVAL)
                     ? smm_pipeline_viral_state(loop->pipe, sig[i].content_id)
                     : -1;
        if (st >= 0 && st != sig[i].state) {
            smm_viral_set_state(loop->viral, sig[i].content_id, strlen(sig[i].content_id), st);
        }
    }
    if (smm_pipeline_encode_viral(loop->pipe, now, tick, sig, n, &loop->av) != SMM_OK) {
        return SMM_ERR;
    }
    for (int i = 0; i < n; i++) {
        if ((sig[i].flags & SMM_VIRAL_EVAL) &&
            !smm_pipeline_viral_decides(loop->pipe, sig[i].content_id)) {
            smm_viral_retake(loop->viral, sig[i].content_id, strlen(sig[i].content_id));
        }
    }
    int rc = smm_pipeline_encode_insights(loop->pipe, now, &loop->av);
    if (!tick && rc == SMM_OK) {
        rc = smm_pipeline_encode_wseq(loop->pipe, &loop->av);
    }
    if (tick && rc == SMM_OK) {
        rc = smm_pipeline_encode_goals(loop->pipe, loop->goals, eval_goals(loop, now),
                                       &loop->av);
    }
    return rc;
}

/* Settles what the pipeline and the viral tracker expect of the call just answered (or
 * not sent): applied = 1 when Redis applied all of it. */
static void settle_call(struct smm_loop *loop, int applied)
{
    if (loop->viral) {
        smm_viral_settle(loop->viral, applied);
    }
    smm_pipeline_viral_settle(loop->pipe, applied);
    smm_pipeline_counters_settle(loop->pipe, applied, smm_redis_sink_alone(loop->sink));
}

static void on_conflict(void *opaque, const char *key, size_t len)
{
    struct smm_loop *loop = opaque;
    smm_pipeline_counters_conflict(loop->pipe, key, len);
}

static void on_change(void *opaque, const char *cid, size_t len, const char *state,
                      size_t state_len, int changed)
{
    struct smm_loop *loop = opaque;
    if (loop->viral) {
        smm_viral_set_state(loop->viral, cid, len, smm_viral_state_parse(state, state_len));
    }
    if (changed == SMM_REDIS_VIRAL_CONFLICT) {
        /* Another writer moved the post first: load its state and decide again. */
        smm_pipeline_viral_conflict(loop->pipe, cid, len);
        if (loop->viral) {
            smm_viral_retake(loop->viral, cid, len);
        }
        smm_log(SMM_LOG_INFO, "viral: %.*s was moved by another writer (now %.*s); deciding again",
                (int)len, cid, (int)state_len, state);
        return;
    }
    if (!changed) {
        return;
    }
    if (loop->opts.status) {
        smm_status_alert(loop->opts.status, "viral", 1);
    }
    smm_log(SMM_LOG_INFO, "viral: %.*s is now %.*s", (int)len, cid, (int)state_len, state);
}

/* Acts on a refused flush. If every partition was stored already (DUP: the resend of a
 * flush whose reply was lost), so is the batch. Otherwise nothing of it was applied: a
 * FENCED partition is dropped, a STALE one moves to the offset Redis holds, a DUP one past
 * this flush, and both batches are dropped so every partition re-reads its share. */
static void handle_rejects(struct smm_loop *loop, struct part **ps, int n,
                           const struct smm_flush_reject *rejects, int n_rej, int flight)
{
    int dups = 0;
    for (int r = 0; r < n_rej; r++) {
        dups += rejects[r].status == SMM_FLUSH_DUP && rejects[r].part >= 0 &&
                rejects[r].part < n;
    }
    if (dups == n) {
        for (int i = 0; i < n; i++) {
            committed(loop, ps[i], flight);
        }
        batch_stored(loop, flight);
        return;
    }
    for (int r = 0; r < n_rej; r++) {
        if (rejects[r].part < 0 || rejects[r].part >= n) {
            continue;
        }
        struct part *p = ps[rejects[r].part];
        switch (rejects[r].status) {
        case SMM_FLUSH_DUP:
            committed(loop, p, flight);
            break;
        case SMM_FLUSH_FENCED:
            loop->fenced++;
            smm_log(SMM_LOG_WARN, "partition %s: fenced (now owned by %s); dropping its batch",
                    p->tp, rejects[r].owner[0] ? rejects[r].owner : "nobody");
            p->state = PART_FENCED;
            break;
        default:
            loop->stale++;
            smm_log(SMM_LOG_WARN,
                    "partition %s: Redis holds offset %lld, we expected %lld (restored from an "
                    "older state?); re-reading from there",
                    p->tp, (long long)rejects[r].stored_offset, (long long)p->base);
            warm_done(loop, p, "rewound");
            p->base = rejects[r].stored_offset;
            p->origin = -1; /* none stored: from the beginning */
            break;
        }
    }
    discard_all(loop, "flush refused");
}

/* Decides the admission of the breakdown values of the filling (flight = 0) or in-flight
 * (flight = 1) batch: the sketches it feeds that the pipeline lacks are loaded in one round
 * trip. SMM_ERR (logged) when they cannot be: the batch waits, as for an unreachable
 * Redis. */
static int decide_admission(struct smm_loop *loop, int flight)
{
    const struct smm_redis_hashset *rows;
    int n = smm_pipeline_admission_plan(loop->pipe, slot(loop, flight), &rows);
    int rc = n < 0 ? SMM_SINK_ERROR : SMM_SINK_OK;
    if (n > 0) {
        rc = smm_redis_sink_hashsets(loop->sink, rows, n, smm_pipeline_admission_loaded,
                                     loop->pipe);
    }
    if (rc == SMM_SINK_OK && smm_pipeline_admission_decide(loop->pipe, slot(loop, flight)) ==
                                 SMM_OK) {
        return SMM_OK;
    }
    smm_pipeline_counters_settle(loop->pipe, 0, 0);
    loop->flush_failures++;
    smm_log(SMM_LOG_WARN, "cannot load the admission sketches, will retry: %s",
            n < 0 ? "out of memory" : smm_redis_sink_errstr(loop->sink));
    return SMM_ERR;
}

/* Encodes the filling (flight = 0) or in-flight (flight = 1) batch as one flush of the
 * partitions ps[0..n) into loop->av: the first carries the batch, each its fence.
 * Returns SMM_OK or SMM_ERR (out of memory). */
static int encode_flush(struct smm_loop *loop, struct part **ps, int n, int64_t now, int flight)
{
    struct smm_flush_fence *fp = malloc((size_t)(n ? n : 1) * sizeof(*fp));
    if (!fp) {
        return SMM_ERR;
    }
    for (int i = 0; i < n; i++) {
        fp[i] = (struct smm_flush_fence){.tp = ps[i]->tp, .token = ps[i]->token,
                                         .base = ps[i]->base, .next = slot_end(ps[i], flight)};
    }
    /* The post buckets the pipeline does not hold yet, loaded in one round trip; should
     * that fail, the script adds those posts' deltas itself. */
    const struct smm_redis_hmget *rows;
    int n_rows = smm_pipeline_counters_plan(loop->pipe, slot(loop, flight), now, &rows);
    if (n_rows > 0 &&
        smm_redis_sink_hmget(loop->sink, rows, n_rows, smm_pipeline_counters_loaded,
                             loop->pipe) != SMM_SINK_OK) {
        smm_log(SMM_LOG_WARN, "cannot load post counters (their deltas go to the script): %s",
                smm_redis_sink_errstr(loop->sink));
    }
    int rc = smm_pipeline_encode_flush(loop->pipe, slot(loop, flight), now, fp, n, &loop->av);
    free(fp);
    return rc;
}

/* Flushes the filling (flight = 0) or in-flight (flight = 1: a resend) batch of the
 * partitions ps[0..n) (all that have events in it) in one atomic unit and waits for the
 * answer. Returns SMM_OK when nothing is left pending, SMM_ERR to retry later. */
static int flush_parts(struct smm_loop *loop, struct part **ps, int n, int64_t now, int flight)
{
    struct smm_flush_reject rejects[64];
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (has_pending(ps[i], flight)) {
            ps[k++] = ps[i];
        }
    }
    n = k;
    if (!flight && any_in_flight(loop)) {
        return SMM_ERR; /* the filling batch follows the one in flight */
    }
    if (n == 0) {
        return SMM_OK;
    }
    if (!flight && loop->dead_letters) {
        /* Dead letters must be in Kafka before the offset moves past them. */
        int w = dlq_settle(loop);
        if (w > 0) {
            return SMM_ERR;
        }
        if (w < 0) {
            discard_all(loop, "dead letters not acknowledged");
            return SMM_OK;
        }
        loop->dead_letters = 0;
    }
    if (decide_admission(loop, flight) != SMM_OK) {
        return SMM_ERR;
    }
    int rc = encode_flush(loop, ps, n, now, flight);
    if (rc != SMM_OK || encode_viral(loop, now, 0) != SMM_OK) {
        settle_call(loop, 0);
        smm_log(SMM_LOG_ERROR, "out of memory encoding a flush");
        loop->fatal = 1;
        return SMM_ERR;
    }
    int64_t t0 = mono_us();
    int n_rej = 0;
    rc = smm_redis_sink_flush(loop->sink, smm_pipeline_flush_writes(loop->pipe),
                              smm_pipeline_flush_plain(loop->pipe), &loop->av, rejects, 64,
                              &n_rej);
    int64_t us = mono_us() - t0;
    settle_call(loop, rc == SMM_SINK_OK && n_rej == 0);
    if (rc != SMM_SINK_OK) {
        loop->flush_failures++;
        if (rc == SMM_SINK_ERROR && refused(loop, "flush")) {
            return SMM_ERR;
        }
        smm_log(rc == SMM_SINK_ERROR ? SMM_LOG_ERROR : SMM_LOG_WARN,
                "flush failed, will retry: %s", smm_redis_sink_errstr(loop->sink));
        return SMM_ERR;
    }
    note_flush(loop, us);
    if (n_rej == 0) {
        for (int i = 0; i < n; i++) {
            committed(loop, ps[i], flight);
        }
        batch_stored(loop, flight);
    } else {
        handle_rejects(loop, ps, n, rejects, n_rej, flight);
    }
    return SMM_OK;
}

/* Pauses consumption and backs off after a failed flush; resumes after a good one. */
static void flush_outcome(struct smm_loop *loop, int ok, int64_t now)
{
    if (!ok) {
        loop->retries++;
        if (!loop->paused) {
            smm_kafka_source_pause(loop->src, 1);
            loop->paused = 1;
            smm_log(SMM_LOG_WARN, "consumption paused until Redis accepts writes again");
        }
        loop->backoff_ms = loop->backoff_ms ? loop->backoff_ms * 2 : 100;
        if (loop->backoff_ms > 5000) {
            loop->backoff_ms = 5000;
        }
        loop->retry_at_ms = now + loop->backoff_ms;
        return;
    }
    loop->backoff_ms = 0;
    loop->retry_at_ms = 0;
    if (loop->paused) {
        smm_kafka_source_pause(loop->src, 0);
        loop->paused = 0;
        loop->last_msg_ms = now; /* the idle exit counts from the resume */
        smm_log(SMM_LOG_INFO, "Redis is back: consumption resumed");
    }
}

/* Collects the partitions with a pending batch of the given kind into a new array. */
static struct part **pending_parts(struct smm_loop *loop, int flight, int *n_out)
{
    struct part **ps = malloc((size_t)(loop->n_parts ? loop->n_parts : 1) * sizeof(*ps));
    int n = 0;
    for (int i = 0; ps && i < loop->n_parts; i++) {
        if (has_pending(loop->parts[i], flight)) {
            ps[n++] = loop->parts[i];
        }
    }
    *n_out = n;
    return ps;
}

/* Settles the flush in flight. wait = 0 answers SMM_SINK_PENDING if Redis has not replied
 * yet. On a lost reply or refused partitions, what is left is resent synchronously.
 * Returns SMM_OK, SMM_SINK_PENDING, or SMM_ERR (batches stay in flight for a resend). */
static int complete(struct smm_loop *loop, int wait, int64_t now)
{
    if (!loop->inflight) {
        return SMM_OK;
    }
    struct smm_flush_reject rejects[64];
    int n_rej = 0;
    int rc = smm_redis_sink_flush_poll(loop->sink, wait, rejects, 64, &n_rej);
    if (rc == SMM_SINK_PENDING) {
        return SMM_SINK_PENDING;
    }
    settle_call(loop, rc == SMM_SINK_OK && n_rej == 0);
    struct part **ps = loop->flight_parts;
    int n = loop->n_flight;
    loop->inflight = 0;
    loop->flight_parts = NULL;
    loop->n_flight = 0;
    if (rc == SMM_SINK_OK) {
        note_flush(loop, mono_us() - loop->flight_t0_us);
        if (n_rej == 0) {
            for (int i = 0; i < n; i++) {
                committed(loop, ps[i], 1);
            }
            batch_stored(loop, 1);
        } else {
            handle_rejects(loop, ps, n, rejects, n_rej, 1);
        }
    } else {
        loop->flush_failures++;
        if (rc == SMM_SINK_ERROR && refused(loop, "flush")) {
            free(ps);
            return SMM_ERR;
        }
        smm_log(SMM_LOG_WARN, "flush failed, will resend: %s", smm_redis_sink_errstr(loop->sink));
    }
    /* Whatever is still in flight (a lost reply). */
    rc = flush_parts(loop, ps, n, now, 1);
    free(ps);
    return rc;
}

/* Sends the filling batch as one flush and returns without waiting; it becomes the batch
 * in flight. Returns SMM_OK or SMM_ERR (nothing sent). */
static int launch(struct smm_loop *loop, int64_t now)
{
    if (any_in_flight(loop)) {
        return SMM_ERR;
    }
    int n;
    struct part **ps = pending_parts(loop, 0, &n);
    if (!ps) {
        return SMM_ERR;
    }
    if (loop->dead_letters) {
        /* Leave the dead-letter wait and its failure handling to the synchronous path. */
        int rc = flush_parts(loop, ps, n, now, 0);
        free(ps);
        return rc;
    }
    if (n == 0) {
        free(ps);
        return SMM_OK;
    }
    if (decide_admission(loop, 0) != SMM_OK) {
        free(ps);
        return SMM_ERR;
    }
    int rc = encode_flush(loop, ps, n, now, 0);
    if (rc != SMM_OK || encode_viral(loop, now, 0) != SMM_OK) {
        settle_call(loop, 0);
        smm_log(SMM_LOG_ERROR, "out of memory encoding a flush");
        loop->fatal = 1;
        free(ps);
        return SMM_ERR;
    }
    loop->flight_t0_us = mono_us();
    if (smm_redis_sink_flush_send(loop->sink, smm_pipeline_flush_writes(loop->pipe),
                                  smm_pipeline_flush_plain(loop->pipe), &loop->av) !=
        SMM_SINK_OK) {
        settle_call(loop, 0);
        loop->flush_failures++;
        smm_log(SMM_LOG_WARN, "flush failed, will retry: %s", smm_redis_sink_errstr(loop->sink));
        free(ps);
        return SMM_ERR;
    }
    struct smm_batch tmp = loop->flight; /* empty: the last one was stored or dropped */
    loop->flight = loop->batch;
    loop->batch = tmp;
    for (int i = 0; i < n; i++) {
        ps[i]->flight_next = ps[i]->next;
        ps[i]->in_flight = 1;
    }
    loop->inflight = 1;
    loop->flight_parts = ps;
    loop->n_flight = n;
    return SMM_OK;
}

/* One flush round. async: leave the new flush in flight (the main loop); otherwise wait
 * for everything to be stored (revocation, shutdown). */
static void flush_all(struct smm_loop *loop, int64_t now, int async)
{
    int rc = complete(loop, 1, now);
    if (rc == SMM_OK) {
        int n;
        struct part **ps = pending_parts(loop, 1, &n); /* leftovers of a failed resend */
        rc = ps && n ? flush_parts(loop, ps, n, now, 1) : SMM_OK;
        free(ps);
    }
    if (rc == SMM_OK) {
        if (async) {
            rc = launch(loop, now);
        } else {
            int n;
            struct part **ps = pending_parts(loop, 0, &n);
            rc = ps ? flush_parts(loop, ps, n, now, 0) : SMM_ERR;
            free(ps);
        }
    }
    flush_outcome(loop, rc == SMM_OK, now);
}

/* ---- tick and stats ---- */

/* The wall-clock work: claims, the alert relay, and the script's tick (hour reach merges
 * of at most reach.refresh_max accounts, viral, SLA and goal rules). */
static void tick(struct smm_loop *loop, int64_t now)
{
    if (complete(loop, 1, now) == SMM_ERR) {
        flush_outcome(loop, 0, now);
    }
    for (int i = 0; i < loop->n_parts; i++) {
        struct part *p = loop->parts[i];
        if (p->warm_until >= 0 && now > p->warm_deadline_ms) {
            smm_log(SMM_LOG_WARN, "partition %s: viral warm-up did not reach offset %lld",
                    p->tp, (long long)p->warm_until);
            warm_done(loop, p, "timed out");
        }
        if (p->state == PART_UNCLAIMED && claim(loop, p) == SMM_OK) {
            smm_kafka_source_seek(loop->src, p->topic, p->partition, p->base);
        }
    }
    if (loop->relay) {
        smm_alert_relay_poll(loop->relay, now, NULL); /* bounded; logs its own errors */
    }
    if (smm_pipeline_encode_tick(loop->pipe, now, loop->cfg->reach_refresh_max, &loop->av) !=
            SMM_OK ||
        encode_viral(loop, now, 1) != SMM_OK) {
        settle_call(loop, 0);
        return;
    }
    int64_t merged = 0;
    int rc = smm_redis_sink_tick(loop->sink, &loop->av, &merged);
    settle_call(loop, rc == SMM_SINK_OK);
    if (rc == SMM_SINK_ERROR) {
        refused(loop, "tick");
    } else if (rc == SMM_SINK_OK && merged) {
        smm_log(SMM_LOG_DEBUG, "tick: merged the reach sketches of %lld hour(s)",
                (long long)merged);
    }
}

static void stats_line(struct smm_loop *loop, int64_t now)
{
    double secs = (double)(now - loop->iv_start_ms) / 1000.0;
    if (secs <= 0) {
        secs = 1;
    }
    char lag[512] = "";
    size_t used = 0;
    int64_t total_lag = 0;
    int lag_known = 0; /* no partition (Kafka away, topic missing) is no lag of 0 */
    for (int i = 0; i < loop->n_parts && used < sizeof(lag) - 32; i++) {
        struct part *p = loop->parts[i];
        used += (size_t)snprintf(lag + used, sizeof(lag) - used, "%s%d=%lld", i ? "," : "",
                                 (int)p->partition, (long long)p->lag);
        total_lag += p->lag > 0 ? p->lag : 0;
        lag_known |= p->lag >= 0;
    }
    char lag_total[24] = "unknown";
    if (lag_known && !smm_kafka_source_problem(loop->src)) {
        snprintf(lag_total, sizeof(lag_total), "%lld", (long long)total_lag);
    }
    char dl[512] = "";
    used = 0;
    for (int r = 1; r < SMM_REJECT__COUNT; r++) {
        if (loop->rejects[r]) {
            used += (size_t)snprintf(dl + used, sizeof(dl) - used, "%s%s=%lld", used ? " " : " (",
                                     smm_reject_reason_name(r), (long long)loop->rejects[r]);
        }
    }
    if (used) {
        snprintf(dl + used, sizeof(dl) - used, ")");
    }
    smm_log(SMM_LOG_INFO,
            "stats: %.0f events/s, consumed %lld, counted %lld, dead-lettered %lld%s, "
            "flushes %lld (avg %.1f ms, max %.1f ms), redis %s, lag %s [%s]",
            (double)loop->iv_consumed / secs, (long long)loop->consumed, (long long)loop->counted,
            (long long)loop->dead_lettered, dl,
            (long long)loop->flushes,
            loop->iv_flushes ? (double)loop->iv_flush_us_sum / loop->iv_flushes / 1000.0 : 0.0,
            (double)loop->iv_flush_us_max / 1000.0,
            smm_redis_sink_connected(loop->sink) ? "up" : "DOWN", lag_total, lag);
    loop->iv_consumed = 0;
    loop->iv_flush_us_sum = 0;
    loop->iv_flush_us_max = 0;
    loop->iv_flushes = 0;
    loop->iv_start_ms = now;
}

/* Copies the counters into the status the HTTP server reads, at most every 100 ms (force:
 * now). The copy is memcpy-sized under the status mutex: readers never hold it longer. */
static void publish(struct smm_loop *loop, int64_t now, int force)
{
    struct smm_status *st = loop->opts.status;
    if (!st || (!force && now < loop->next_publish_ms)) {
        return;
    }
    loop->next_publish_ms = now + 100;
    struct smm_status_counts c = {
        .consumed = loop->consumed,
        .counted = loop->counted,
        .dead_lettered = loop->dead_lettered,
        .late = smm_pipeline_late(loop->pipe),
        .flushes = loop->flushes,
        .flush_failures = loop->flush_failures,
        .redis_errors = smm_redis_sink_errors(loop->sink),
        .redis_retries = loop->retries,
        .redis_up = smm_redis_sink_connected(loop->sink),
        .paused = loop->paused,
        .partitions = loop->n_parts,
    };
    memcpy(c.rejects, loop->rejects, sizeof(c.rejects));
    const char *kp = smm_kafka_source_problem(loop->src);
    snprintf(c.kafka_problem, sizeof(c.kafka_problem), "%s", kp ? kp : "");
    smm_status_set_tracked_cascades(st, loop->viral ? smm_viral_cascades(loop->viral) : 0);
    smm_status_begin(st, &c, now);
    for (int i = 0; i < loop->n_parts; i++) {
        struct part *p = loop->parts[i];
        smm_status_part(st, p->topic, p->partition, p->lag, p->base);
    }
    smm_status_end(st);
}

/* The --top view (processor/top.c) gets a snapshot; it derives the rates itself. */
static void top_refresh(struct smm_loop *loop, int64_t now)
{
    struct smm_top_part parts[512];
    int n = 0;
    for (int i = 0; i < loop->n_parts && n < 512; i++) {
        parts[n].partition = loop->parts[i]->partition;
        parts[n++].lag = loop->parts[i]->lag;
    }
    struct smm_top_view v = {
        .now_ms = now, .topic = loop->cfg->topic, .consumed = loop->consumed,
        .counted = loop->counted, .dead_lettered = loop->dead_lettered,
        .rejects = loop->rejects, .n_rejects = SMM_REJECT__COUNT, .flushes = loop->flushes,
        .flush_failures = loop->flush_failures, .flush_us_total = loop->flush_us_total,
        .redis_up = smm_redis_sink_connected(loop->sink), .paused = loop->paused,
        .n_parts = n, .parts = parts,
    };
    smm_top_update(loop->top, &v);
}

/* ---- lifecycle ---- */

struct smm_loop *smm_loop_new(const struct smm_config *cfg, const struct smm_loop_opts *opts,
                              char *errstr, size_t errstr_size)
{
    struct smm_loop *loop = calloc(1, sizeof(*loop));
    if (!loop) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    loop->cfg = cfg;
    loop->opts = *opts;
    smm_argv_init(&loop->av);
    char host[64] = "host";
    gethostname(host, sizeof(host) - 1);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(loop->token_base, sizeof(loop->token_base), "%s/%d/%lx", host, (int)getpid(),
             (unsigned long)(ts.tv_nsec ^ (long)ts.tv_sec));

    loop->pipe = smm_pipeline_new(cfg, errstr, errstr_size);
    if (!loop->pipe || smm_batch_init(&loop->batch, loop->pipe, errstr, errstr_size) != SMM_OK ||
        smm_batch_init(&loop->flight, loop->pipe, errstr, errstr_size) != SMM_OK) {
        goto fail;
    }
    struct smm_redis_opts ro = {
        .host = cfg->redis_host,
        .port = (int)cfg->redis_port,
        .unix_socket = cfg->redis_unix_socket,
        .db = (int)cfg->redis_db,
        .username = cfg->redis_username,
        .password = cfg->redis_password,
        .timeout_ms = (int)cfg->redis_timeout_ms,
    };
    loop->sink = smm_redis_sink_new(&ro, errstr, errstr_size);
    if (!loop->sink) {
        goto fail;
    }
    smm_redis_sink_on_change(loop->sink, on_change, loop);
    smm_redis_sink_on_conflict(loop->sink, on_conflict, loop);
    if (cfg->viral_enabled) {
        struct smm_viral_opts vo = {
            .rules = cfg->viral,
            .max_nodes = (int)cfg->viral_max_nodes,
            .max_posts = cfg->viral_max_posts,
            .evict_ms = cfg->viral_evict_ms,
            .n_star = cfg->viral_n_star,
            .sd_floor = cfg->viral_sd_floor,
            .baseline_min = (int)cfg->viral_baseline_min,
            .track_reach = cfg->viral_track_reach,
            .write_ms = cfg->viral_write_ms,
        };
        loop->viral = smm_viral_new(&vo, errstr, errstr_size);
        if (!loop->viral) {
            goto fail;
        }
        for (int i = 0; i < cfg->n_viral_over; i++) {
            struct smm_viral_rules r = cfg->viral;
            smm_config_viral_rules(cfg, cfg->viral_over[i].account, &r);
            if (smm_viral_set_rules(loop->viral, cfg->viral_over[i].account, &r) != SMM_OK) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
            }
        }
    }
    /* Fail fast on what retrying cannot fix (credentials, ACLs); wait for the rest, but
     * never past a stop signal (a signal also cuts a connect short: no SA_RESTART). */
    for (int attempt = 0;; attempt++) {
        int rc = smm_redis_sink_connect(loop->sink);
        if (rc == SMM_SINK_OK) {
            break;
        }
        if (opts->stop && *opts->stop) {
            snprintf(errstr, errstr_size, "stopped while waiting for Redis (%s)",
                     smm_redis_sink_errstr(loop->sink));
            goto fail;
        }
        if (rc == SMM_SINK_ERROR || attempt >= 30) {
            snprintf(errstr, errstr_size, "%s", smm_redis_sink_errstr(loop->sink));
            goto fail;
        }
        if (attempt == 0) {
            smm_log(SMM_LOG_WARN, "%s; retrying for up to 30 s",
                    smm_redis_sink_errstr(loop->sink));
        }
        if (nap(opts->stop, 1000)) {
            snprintf(errstr, errstr_size, "stopped while waiting for Redis (%s)",
                     smm_redis_sink_errstr(loop->sink));
            goto fail;
        }
    }
    struct smm_kafka_opts ko = {
        .topic = cfg->topic,
        .dlq_topic = cfg->dlq_topic,
        .group_id = cfg->group_id,
        .n_conf = cfg->n_kafka,
        .conf_key = cfg->kafka_key,
        .conf_val = cfg->kafka_val,
        .stop = opts->stop,
    };
    struct smm_kafka_callbacks cb = {
        .opaque = loop,
        .on_assign = on_assign,
        .on_revoke = on_revoke,
        .on_stats = on_stats,
        .log = smm_log_cb,
    };
    loop->src = smm_kafka_source_new(&ko, &cb, errstr, errstr_size);
    if (!loop->src) {
        goto fail;
    }
    if (cfg->alerts_kafka) {
        struct smm_alert_relay_opts ao = {
            .topic = cfg->alerts_topic, .prefix = cfg->prefix, .group_id = cfg->group_id,
            .n_conf = cfg->n_kafka, .conf_key = cfg->kafka_key, .conf_val = cfg->kafka_val,
            .redis = ro, .poll_interval_ms = (int)cfg->tick_ms, .log = smm_log_cb,
        };
        loop->relay = smm_alert_relay_new(&ao, errstr, errstr_size);
        if (!loop->relay) {
            goto fail;
        }
    }
    if (opts->top && !(loop->top = smm_top_new())) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    return loop;
fail:
    smm_loop_destroy(loop);
    return NULL;
}

int smm_loop_run(struct smm_loop *loop, volatile sig_atomic_t *stop)
{
    const struct smm_config *cfg = loop->cfg;
    int64_t now = clock_ms();
    int64_t next_flush = now + cfg->flush_interval_ms;
    int64_t next_tick = now;
    int64_t next_stats = cfg->stats_interval_ms ? now + cfg->stats_interval_ms : INT64_MAX;
    int64_t next_top = now + 1000;
    loop->iv_start_ms = now;
    loop->last_msg_ms = now;
    smm_log(SMM_LOG_INFO, "consuming %s into Redis with prefix %s (flush every %lld ms)",
            cfg->topic, cfg->prefix, (long long)cfg->flush_interval_ms);
    int64_t last_flush = now;
    int behind = 0; /* the last poll filled its batch: more is waiting locally */
    while (!*stop && !loop->fatal) {
        now = clock_ms();
        if (loop->opts.status) {
            smm_status_heartbeat(loop->opts.status, mono_us() / 1000); /* /healthz */
        }
        /* When behind, or while the previous flush is still running in Redis, batch up to
         * flush.max_interval_ms: a bigger batch repeats more keys, so Redis does less work
         * per event exactly when throughput matters. */
        int late = now >= last_flush + cfg->flush_max_interval_ms;
        int due = loop->batch.messages >= cfg->flush_max_events ||
                  (now >= next_flush && (!behind || late) && (!loop->inflight || late));
        if (loop->inflight) {
            int rc = complete(loop, 0, now); /* collect the reply if it is there */
            if (rc == SMM_ERR) {
                flush_outcome(loop, 0, now);
            }
        }
        if (due && (loop->retry_at_ms == 0 || now >= loop->retry_at_ms)) {
            flush_all(loop, now, 1);
            next_flush = now + cfg->flush_interval_ms;
            last_flush = now;
        }
        if (now >= next_tick) {
            tick(loop, now);
            next_tick = now + cfg->tick_ms;
        }
        if (now >= next_stats) {
            stats_line(loop, now);
            next_stats = now + cfg->stats_interval_ms;
        }
        publish(loop, now, 0);
        if (loop->top && now >= next_top) {
            top_refresh(loop, now);
            next_top = now + 1000;
        }
        if (loop->opts.idle_exit_ms > 0 && loop->batch.messages == 0 && !loop->inflight &&
            now - loop->last_msg_ms >= loop->opts.idle_exit_ms &&
            smm_kafka_source_assigned(loop->src) > 0) {
            smm_log(SMM_LOG_INFO, "idle for %lld ms: exiting", (long long)loop->opts.idle_exit_ms);
            break;
        }
        int64_t wait = next_flush - now;
        if (next_tick - now < wait) {
            wait = next_tick - now;
        }
        if (wait <= 0 && (loop->inflight || (loop->retry_at_ms && now < loop->retry_at_ms))) {
            /* Due, but waiting on Redis' reply or on a retry: sleep in the consumer poll,
             * looking again every millisecond. A zero wait here spun on poll(2) of the
             * Redis socket, 3 calls per event while Redis was the bottleneck, and took
             * the CPU that Redis needed. */
            wait = 1;
        }
        if (wait < 0) {
            wait = 0;
        }
        /* A signal does not wake librdkafka's poll: look at the stop flag at least this
         * often, whatever tick_ms and flush.interval_ms are. */
        if (wait > 200) {
            wait = 200;
        }
        /* Never fold more than flush.max_events before flushing. */
        int64_t room = cfg->flush_max_events - loop->batch.messages;
        if (room <= 0) {
            room = 1;
        }
        int want = room > 10000 ? 10000 : (int)room;
        int got = smm_kafka_source_poll(loop->src, behind ? 0 : (int)wait, want, on_msg, loop);
        if (got < 0) {
            smm_log(SMM_LOG_ERROR, "%s", smm_kafka_source_errstr(loop->src));
            loop->fatal = 1;
        }
        /* Behind: the local queue had more, or what we read was written a while ago. */
        behind = got == want ||
                 (got > 0 && loop->last_msg_kafka_ts > 0 &&
                  now - loop->last_msg_kafka_ts > 4 * cfg->flush_interval_ms);
    }
    if (!loop->fatal) {
        /* Final flush; keep trying for a while if Redis blinks. If Redis was already away
         * when the stop came (backing off), try once: an operator stopping a processor
         * that cannot write wants it gone, and nothing is lost, since the unflushed
         * events are re-read from the offsets Redis holds. A second signal (*stop == 2)
         * ends the retries too, and so do dead letters still unacknowledged when
         * dlq_settle gives up (DLQ_STOP_WAIT_MS): the flush would wait for them. */
        int away = loop->paused;
        for (int attempt = 0; attempt < (away ? 1 : 50) && *stop < 2 && !loop->dlq_gave_up;
             attempt++) {
            now = clock_ms();
            loop->retry_at_ms = 0;
            flush_all(loop, now, 0);
            if (!loop->paused) {
                break;
            }
            for (int slice = 0; slice < 4 && *stop < 2; slice++) {
                nanosleep(&(struct timespec){0, 50000000}, NULL);
            }
        }
        if (loop->paused) {
            if (!loop->dlq_gave_up) {
                smm_log(SMM_LOG_WARN, "Redis unreachable at shutdown: what was not flushed is "
                        "read again from Kafka on the next start");
            }
        } else {
            tick(loop, clock_ms()); /* viral and SLA rules see the last flush */
        }
    }
    stats_line(loop, clock_ms());
    smm_kafka_source_close(loop->src); /* revoke callbacks flush what is left */
    int64_t dlq_left = smm_kafka_source_dlq_outstanding(loop->src);
    if (dlq_left > 0) {
        smm_log(SMM_LOG_WARN, "%lld dead letter(s) not acknowledged at shutdown: their events "
                "are read and dead-lettered again on the next start", (long long)dlq_left);
    }
    publish(loop, clock_ms(), 1);
    return loop->fatal ? 1 : 0;
}

void smm_loop_destroy(struct smm_loop *loop)
{
    if (!loop) {
        return;
    }
    smm_alert_relay_destroy(loop->relay);
    smm_top_destroy(loop->top);
    smm_kafka_source_destroy(loop->src);
    while (loop->n_parts > 0) {
        part_remove(loop, loop->parts[0]);
    }
    free(loop->parts);
    free(loop->seen);
    smm_redis_sink_destroy(loop->sink);
    smm_viral_destroy(loop->viral);
    smm_batch_free(&loop->batch);
    smm_batch_free(&loop->flight);
    smm_pipeline_destroy(loop->pipe);
    smm_argv_free(&loop->av);
    free(loop);
}
