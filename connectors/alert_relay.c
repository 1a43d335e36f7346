/* connectors/alert_relay.c - the Redis alerts stream into the Kafka alerts topic, exactly once.
 *
 * The processor appends each alert to the capped stream <prefix>alerts in the same atomic
 * script that applies its counters and offsets, so the stream holds every alert exactly
 * once (see docs/alerts.md for the one exception, a Redis restored from an older state).
 * This relay copies the stream into Kafka so that every entry (every alert_id) appears in
 * the topic once, in stream order, for read_committed consumers.
 *
 * DESIGN
 * 1. One relay at a time: a Redis lease <prefix>alerts:relay (SET NX PX, renewed atomically
 *    with every stream read by a script that first checks the holder). The lease is only an
 *    optimisation (no two relays fencing each other in turn); it is not what makes the
 *    relay safe, because a process can stall past its lease (GC-free C still gets SIGSTOP,
 *    swapped out, a VM paused).
 * 2. Safety comes from Kafka: every relay uses the same transactional.id
 *    (<group_id>.alerts-relay). init_transactions() bumps the producer epoch, which fences
 *    every older producer with that id (its next produce or commit fails fatally) and
 *    completes whatever transaction the older one left: aborted if it was open, finished if
 *    its commit was already accepted. It returns only after that, so the data of all earlier
 *    relays is final (committed or aborted) when it returns.
 * 3. The resume point is read from the topic itself, after init_transactions(): the largest
 *    smm.stream_id header of the committed messages (read_committed; per partition the last
 *    committed message carries the partition's largest id, so the tail of each partition is
 *    enough). No Redis cursor exists that could disagree with Kafka.
 * 4. Then: XRANGE after that id (<= batch_max entries), begin_transaction, produce each
 *    entry, commit_transaction; the cursor moves in memory only when the commit succeeded.
 *    A batch commits only while our epoch is the newest, i.e. no relay started after we read
 *    the resume point, so no other relay can have produced the same entries in between:
 *    each entry is committed at most once, and an entry is passed over only after it was
 *    committed (or, see 6, found to be a duplicate), so at least once too.
 * 5. Any error we cannot attribute (fenced, fatal, an abort that fails, the lease lost)
 *    takes the one recovery path: drop the producer, and start over at 1-3, which rereads
 *    the truth from Kafka. Timeouts of init/commit are resumed by the next poll (librdkafka
 *    2.0 makes both resumable), so no call blocks the caller's tick for long.
 * 6. Hole found in the first design: Redis restored from an older AOF loses the newest
 *    stream entries, which the relay may already have committed; the processor replays
 *    its partitions and appends the same alerts again (the alert_id is deterministic) under
 *    new stream ids. So the relay also skips any alert_id it committed recently: the
 *    ids of the last DEDUP_SLOTS relayed alerts are kept in memory and reloaded from the
 *    topic tail at resume. When the stream's newest id is older than the cursor, the cursor
 *    falls back to it (nothing new is skipped; replays are dropped by alert_id).
 * 7. Trimming: the stream is capped (MAXLEN ~ alerts.stream_max). Entries trimmed before
 *    the relay saw them are gone; each message carries smm.stream_seq, the entry's ordinal
 *    (XINFO STREAM entries-added, Redis 7), so a gap is counted and logged as a warning.
 *
 * Work per poll is bounded by budget_ms for Kafka calls (plus one Redis timeout), and
 * everything that can take long (init, resume read, commit) continues at the next poll. */
#include "connectors/alert_relay.h"

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "connectors/redis_conn.h"

#define LEASE_MIN_MS 10000
#define DEDUP_SLOTS 4096  /* alert_ids remembered (the last relayed ones) */
#define DEDUP_ID_MAX 200  /* longer alert_ids are compared by hash plus this prefix */
#define TAIL_WINDOW 2048  /* messages read back per partition at resume */
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000

/* One script for the lease and the reads, so a read happens only while we hold the lease
 * and renews it. KEYS: lease, stream. ARGV: mode, token, lease ms, first id, count.
 * acquire -> 0 (no stream: nothing to do), 1 (ours), -1 (held by another);
 * renew -> 1 / -1; release -> 0;
 * read -> -1, or {1, entries-added (-1 before Redis 7), length, first id, last id, entries}. */
static const char lease_script[] =
    "local lease, stream = KEYS[1], KEYS[2]\n"
    "local mode, token, ttl = ARGV[1], ARGV[2], ARGV[3]\n"
    "if mode == 'release' then\n"
    "  if redis.call('GET', lease) == token then redis.call('DEL', lease) end\n"
    "  return 0\n"
    "end\n"
    "if mode == 'acquire' then\n"
    "  if redis.call('EXISTS', stream) == 0 then return 0 end\n"
    "  if redis.call('SET', lease, token, 'NX', 'PX', ttl) then return 1 end\n"
    "end\n"
    "if redis.call('GET', lease) ~= token then return -1 end\n"
    "redis.call('PEXPIRE', lease, ttl)\n"
    "if mode ~= 'read' then return 1 end\n"
    "if redis.call('EXISTS', stream) == 0 then return {1, -1, 0, '', '', {}} end\n"
    "local info = redis.call('XINFO', 'STREAM', stream)\n"
    "local added, len = -1, 0\n"
    "for i = 1, #info, 2 do\n"
    "  if info[i] == 'entries-added' then added = info[i + 1] end\n"
    "  if info[i] == 'length' then len = info[i + 1] end\n"
    "end\n"
    "local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)\n"
    "local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)\n"
    "local e = redis.call('XRANGE', stream, ARGV[4], '+', 'COUNT', ARGV[5])\n"
    "return {1, added, len, first[1] and first[1][1] or '', last[1] and last[1][1] or '', e}\n";

enum relay_state {
    ST_IDLE,   /* no lease: standby, or nothing to relay */
    ST_INIT,   /* leased; init_transactions() in progress */
    ST_RESUME, /* reading the topic's tail for the resume point */
    ST_RUN,    /* relaying */
    ST_COMMIT, /* a commit timed out: resume it */
};

struct sid {
    uint64_t ms, seq;
};

struct tail_part {
    int32_t partition;
    int64_t lo, start;
    int done, found;
};

struct dedup {
    uint64_t hash[DEDUP_SLOTS];
    char id[DEDUP_SLOTS][DEDUP_ID_MAX];
    int next, used;
};

struct pending {
    uint64_t hash;
    char id[DEDUP_ID_MAX];
};

struct smm_alert_relay {
    char *topic, *group;
    char stream_key[128], lease_key[128];
    char token[200];
    int n_conf;
    char **conf_key, **conf_val;
    char *host, *unix_socket, *username, *password;
    int port, db, timeout_ms;
    int batch_max, budget_ms, lease_ms;
    void *opaque;
    void (*log)(void *, enum smm_log_level, const char *);
    void (*hook)(void *, enum smm_alert_relay_point, int64_t);
    rd_kafka_conf_t *pconf, *cconf; /* validated templates, duplicated for each handle */

    redisContext *c;
    char sha[48];
    rd_kafka_t *rk;     /* transactional producer, while leased */
    rd_kafka_t *reader; /* read_committed consumer, during ST_RESUME */
    int kafka_fatal;
    enum relay_state st;

    int have_cursor;
    struct sid cursor;
    int64_t cursor_seq; /* ordinal of the cursor entry, -1 unknown */
    int gap_reported;

    struct tail_part *tail;
    int n_tail;
    int have_max;
    struct sid tail_max;
    int64_t tail_max_seq;

    /* the batch whose commit is pending */
    struct pending *pend;
    int n_pend;
    struct sid pend_last;
    int64_t pend_last_seq;
    int64_t pend_n;

    struct dedup *dd;
    int64_t retry_at, backoff;
    char errstr[256];
    char last_logged[256];
    int64_t last_logged_ms;
};

/* ---- small helpers ---- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void logf_(struct smm_alert_relay *r, enum smm_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void logf_(struct smm_alert_relay *r, enum smm_log_level lvl, const char *fmt, ...)
{
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (r->log) {
        r->log(r->opaque, lvl, buf);
    }
}

/* Records the error; logs it unless the same text was logged in the last 30 s. */
static int fail(struct smm_alert_relay *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct smm_alert_relay *r, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->errstr, sizeof(r->errstr), fmt, ap);
    va_end(ap);
    int64_t now = mono_ms();
    if (strcmp(r->errstr, r->last_logged) != 0 || now - r->last_logged_ms > 30000) {
        logf_(r, rc == SMM_SINK_ERROR ? SMM_LOG_ERROR : SMM_LOG_WARN, "alert relay: %s",
              r->errstr);
        snprintf(r->last_logged, sizeof(r->last_logged), "%s", r->errstr);
        r->last_logged_ms = now;
    }
    return rc;
}

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    }
    return h;
}

static int sid_parse(const char *s, size_t n, struct sid *out)
{
    char buf[48];
    if (n == 0 || n >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    unsigned long long ms = strtoull(buf, &end, 10);
    if (end == buf || *end != '-') {
        return -1;
    }
    char *p = end + 1;
    unsigned long long seq = strtoull(p, &end, 10);
    if (end == p || *end != '\0') {
        return -1;
    }
    out->ms = ms;
    out->seq = seq;
    return 0;
}

static int sid_cmp(struct sid a, struct sid b)
{
    if (a.ms != b.ms) {
        return a.ms < b.ms ? -1 : 1;
    }
    return a.seq < b.seq ? -1 : a.seq > b.seq;
}

static void sid_fmt(struct sid s, char *buf, size_t n)
{
    snprintf(buf, n, "%" PRIu64 "-%" PRIu64, s.ms, s.seq);
}

static int dedup_has(const struct dedup *d, uint64_t h, const char *id)
{
    for (int i = 0; i < d->used; i++) {
        if (d->hash[i] == h && strncmp(d->id[i], id, DEDUP_ID_MAX - 1) == 0) {
            return 1;
        }
    }
    return 0;
}

static void dedup_add(struct dedup *d, uint64_t h, const char *id)
{
    d->hash[d->next] = h;
    snprintf(d->id[d->next], DEDUP_ID_MAX, "%s", id);
    d->next = (d->next + 1) % DEDUP_SLOTS;
    if (d->used < DEDUP_SLOTS) {
        d->used++;
    }
}

/* The same alert_id twice in one batch (a replay right behind the original). */
static int pending_has(const struct smm_alert_relay *r, uint64_t h, const char *id, size_t n)
{
    for (int i = 0; i < r->n_pend; i++) {
        size_t cmp = n < DEDUP_ID_MAX - 1 ? n : DEDUP_ID_MAX - 1;
        if (r->pend[i].hash == h && strncmp(r->pend[i].id, id, cmp) == 0) {
            return 1;
        }
    }
    return 0;
}

static void backoff(struct smm_alert_relay *r, int64_t now)
{
    r->backoff = r->backoff ? r->backoff * 2 : BACKOFF_MIN_MS;
    if (r->backoff > BACKOFF_MAX_MS) {
        r->backoff = BACKOFF_MAX_MS;
    }
    r->retry_at = now + r->backoff;
}

/* ---- Kafka configuration ---- */

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *errstr, size_t n)
{
    char err[256];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, n, "kafka.%s: %s", k, err);
        return -1;
    }
    return 0;
}

static int prefixed(const char *k, const char *const *list, size_t cnt)
{
    for (size_t i = 0; i < cnt; i++) {
        size_t len = strlen(list[i]);
        if (list[i][len - 1] == '.' ? strncmp(k, list[i], len) == 0 : strcmp(k, list[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Properties of the other client type only make librdkafka warn; skip them. */
static int consumer_only(const char *k)
{
    static const char *const keys[] = {"auto.offset.reset", "session.timeout.ms",
                                       "heartbeat.interval.ms", "max.poll.interval.ms",
                                       "partition.assignment.strategy", "fetch.", "queued.",
                                       "enable.auto.commit", "auto.commit.", "isolation.level",
                                       "group.instance.id", "check.crcs",
                                       "enable.auto.offset.store", "enable.partition.eof"};
    return prefixed(k, keys, sizeof(keys) / sizeof(keys[0]));
}

static int producer_only(const char *k)
{
    static const char *const keys[] = {"linger.ms", "acks", "request.required.acks",
                                       "compression.", "transactional.id", "transaction.",
                                       "enable.idempotence", "message.timeout.ms",
                                       "queue.buffering.", "batch.", "retries",
                                       "delivery.timeout.ms", "enable.gapless.guarantee"};
    return prefixed(k, keys, sizeof(keys) / sizeof(keys[0]));
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct smm_alert_relay *r = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[200];
        rd_kafka_fatal_error(rk, buf, sizeof(buf));
        snprintf(r->errstr, sizeof(r->errstr), "kafka fatal error: %s", buf);
        r->kafka_fatal = 1;
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION) {
        snprintf(r->errstr, sizeof(r->errstr), "Kafka authentication failed: %s", reason);
        r->kafka_fatal = 2;
    }
    /* Transport errors: librdkafka retries by itself. */
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    struct smm_alert_relay *r = rd_kafka_opaque(rk);
    if (!r || !r->log || level > 4) {
        return; /* warnings and worse only: the relay is a side job of the processor */
    }
    char msg[600];
    snprintf(msg, sizeof(msg), "alert relay: rdkafka %s: %s", fac, buf);
    r->log(r->opaque, level <= 3 ? SMM_LOG_ERROR : SMM_LOG_WARN, msg);
}

static int build_confs(struct smm_alert_relay *r, char *errstr, size_t n)
{
    char tid[300], gid[300];
    snprintf(tid, sizeof(tid), "%s.alerts-relay", r->group);
    snprintf(gid, sizeof(gid), "%s.alerts-relay-resume", r->group);
    r->pconf = rd_kafka_conf_new();
    r->cconf = rd_kafka_conf_new();
    /* Producer: our defaults, the user's keys, then what the design owns. */
    if (conf_set(r->pconf, "linger.ms", "5", errstr, n) ||
        conf_set(r->pconf, "transaction.timeout.ms", "30000", errstr, n)) {
        return -1;
    }
    for (int i = 0; i < r->n_conf; i++) {
        if (!consumer_only(r->conf_key[i]) &&
            conf_set(r->pconf, r->conf_key[i], r->conf_val[i], errstr, n)) {
            return -1;
        }
    }
    if (conf_set(r->pconf, "transactional.id", tid, errstr, n) ||
        conf_set(r->pconf, "enable.idempotence", "true", errstr, n) ||
        conf_set(r->pconf, "acks", "all", errstr, n)) {
        return -1;
    }
    for (int i = 0; i < r->n_conf; i++) {
        if (!producer_only(r->conf_key[i]) &&
            conf_set(r->cconf, r->conf_key[i], r->conf_val[i], errstr, n)) {
            return -1;
        }
    }
    /* Resume reader: assign() only, never commits, sees committed data only. */
    if (conf_set(r->cconf, "group.id", gid, errstr, n) ||
        conf_set(r->cconf, "isolation.level", "read_committed", errstr, n) ||
        conf_set(r->cconf, "enable.partition.eof", "true", errstr, n) ||
        conf_set(r->cconf, "enable.auto.commit", "false", errstr, n) ||
        conf_set(r->cconf, "enable.auto.offset.store", "false", errstr, n) ||
        conf_set(r->cconf, "auto.offset.reset", "earliest", errstr, n)) {
        return -1;
    }
    rd_kafka_conf_set_opaque(r->pconf, r);
    rd_kafka_conf_set_error_cb(r->pconf, error_cb);
    rd_kafka_conf_set_log_cb(r->pconf, log_cb);
    rd_kafka_conf_set_opaque(r->cconf, r);
    rd_kafka_conf_set_error_cb(r->cconf, error_cb);
    rd_kafka_conf_set_log_cb(r->cconf, log_cb);
    return 0;
}

/* ---- lifecycle ---- */

static char *dup0(const char *s)
{
    return strdup(s ? s : "");
}

struct smm_alert_relay *smm_alert_relay_new(const struct smm_alert_relay_opts *o, char *errstr,
                                            size_t n)
{
    struct smm_alert_relay *r = calloc(1, sizeof(*r));
    if (!r || !(r->dd = calloc(1, sizeof(*r->dd)))) {
        free(r);
        snprintf(errstr, n, "out of memory");
        return NULL;
    }
    r->topic = dup0(o->topic);
    r->group = dup0(o->group_id);
    r->host = dup0(o->redis.host);
    r->unix_socket = dup0(o->redis.unix_socket);
    r->username = dup0(o->redis.username);
    r->password = dup0(o->redis.password);
    r->n_conf = o->n_conf;
    r->conf_key = calloc((size_t)o->n_conf + 1, sizeof(char *));
    r->conf_val = calloc((size_t)o->n_conf + 1, sizeof(char *));
    r->batch_max = o->batch_max > 0 ? o->batch_max : 500;
    r->pend = calloc((size_t)r->batch_max, sizeof(*r->pend));
    int oom = !r->topic || !r->group || !r->host || !r->unix_socket || !r->username ||
              !r->password || !r->conf_key || !r->conf_val || !r->pend;
    for (int i = 0; !oom && i < o->n_conf; i++) {
        r->conf_key[i] = strdup(o->conf_key[i]);
        r->conf_val[i] = strdup(o->conf_val[i]);
        oom = !r->conf_key[i] || !r->conf_val[i];
    }
    if (oom) {
        snprintf(errstr, n, "out of memory");
        goto fail;
    }
    if (!r->topic[0]) {
        snprintf(errstr, n, "alerts.topic: must not be empty");
        goto fail;
    }
    const char *prefix = o->prefix ? o->prefix : "";
    snprintf(r->stream_key, sizeof(r->stream_key), "%salerts", prefix);
    snprintf(r->lease_key, sizeof(r->lease_key), "%salerts:relay", prefix);
    r->port = o->redis.port;
    r->db = o->redis.db;
    r->timeout_ms = o->redis.timeout_ms > 0 ? o->redis.timeout_ms : 2000;
    r->budget_ms = o->budget_ms > 0 ? o->budget_ms : 250;
    r->lease_ms = o->poll_interval_ms * 5 > LEASE_MIN_MS ? o->poll_interval_ms * 5 : LEASE_MIN_MS;
    if (o->lease_ms > 0) {
        r->lease_ms = o->lease_ms;
    }
    r->opaque = o->opaque;
    r->log = o->log;
    r->hook = o->hook;
    r->cursor_seq = -1;
    if (o->instance && *o->instance) {
        snprintf(r->token, sizeof(r->token), "%s", o->instance);
    } else {
        char host[64] = "host";
        gethostname(host, sizeof(host) - 1);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(r->token, sizeof(r->token), "%s/%d/%lx", host, (int)getpid(),
                 (unsigned long)(ts.tv_nsec ^ (long)ts.tv_sec));
    }
    if (build_confs(r, errstr, n) != 0) {
        goto fail;
    }
    snprintf(r->errstr, sizeof(r->errstr), "ok");
    return r;
fail:
    smm_alert_relay_destroy(r);
    return NULL;
}

static void drop_reader(struct smm_alert_relay *r)
{
    if (r->reader) {
        rd_kafka_destroy(r->reader); /* assign()-only consumer: nothing to leave or commit */
        r->reader = NULL;
    }
    free(r->tail);
    r->tail = NULL;
    r->n_tail = 0;
}

/* The one recovery path: forget the producer and everything learnt under it; the next
 * acquisition re-initialises (fencing and completing what this one left) and rereads. */
static void drop_kafka(struct smm_alert_relay *r)
{
    drop_reader(r);
    if (r->rk) {
        rd_kafka_purge(r->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_destroy(r->rk);
        r->rk = NULL;
    }
    r->kafka_fatal = 0;
    r->have_cursor = 0;
    r->cursor_seq = -1;
    r->n_pend = 0;
    r->st = ST_IDLE;
}

/* ---- Redis ---- */

static void redis_drop(struct smm_alert_relay *r)
{
    if (r->c) {
        redisFree(r->c);
        r->c = NULL;
    }
}

/* A reply error retrying cannot fix (ACL, credentials) -> ERROR; others -> RETRY. */
static int reply_class(const char *e)
{
    return strstr(e, "NOPERM") || strstr(e, "NOAUTH") || strstr(e, "WRONGPASS") ||
                   strstr(e, "can't access") || strstr(e, "ERR unknown command")
               ? SMM_SINK_ERROR
               : SMM_SINK_RETRY;
}

static int redis_simple(struct smm_alert_relay *r, int argc, const char **argv, const char *what)
{
    redisReply *rep = redisCommandArgv(r->c, argc, argv, NULL);
    if (!rep) {
        int rc = fail(r, SMM_SINK_RETRY, "redis %s: %s", what, r->c->errstr);
        redis_drop(r);
        return rc;
    }
    int rc = SMM_SINK_OK;
    if (rep->type == REDIS_REPLY_ERROR) {
        rc = fail(r, reply_class(rep->str), "redis %s: %s", what, rep->str);
        redis_drop(r);
    } else if (rep->type == REDIS_REPLY_STRING && (size_t)rep->len < sizeof(r->sha)) {
        memcpy(r->sha, rep->str, (size_t)rep->len); /* SCRIPT LOAD */
        r->sha[rep->len] = '\0';
    }
    freeReplyObject(rep);
    return rc;
}

static int redis_connect(struct smm_alert_relay *r)
{
    if (r->c) {
        return SMM_SINK_OK;
    }
    /* Connecting must not stall the caller's tick: at most 1 s, commands get the timeout. */
    struct smm_redis_opts o = {
        .host = r->host, .port = r->port, .unix_socket = r->unix_socket, .db = r->db,
        .username = r->username, .password = r->password, .timeout_ms = r->timeout_ms,
    };
    char err[256];
    int rc;
    r->c = smm_redis_open(&o, r->timeout_ms < 1000 ? r->timeout_ms : 1000, &rc, err, sizeof(err));
    if (!r->c) {
        return fail(r, rc, "%s", err);
    }
    const char *load[] = {"SCRIPT", "LOAD", lease_script};
    return redis_simple(r, 3, load, "SCRIPT LOAD");
}

/* Runs the lease script in one mode. *out gets the reply (caller frees) on SMM_SINK_OK. */
static int lease_call(struct smm_alert_relay *r, const char *mode, const char *from, int count,
                      redisReply **out)
{
    int rc = redis_connect(r);
    if (rc != SMM_SINK_OK) {
        return rc;
    }
    char ttl[24], cnt[24];
    snprintf(ttl, sizeof(ttl), "%d", r->lease_ms);
    snprintf(cnt, sizeof(cnt), "%d", count);
    for (int attempt = 0;; attempt++) {
        const char *argv[] = {"EVALSHA",  r->sha,  "2",  r->lease_key, r->stream_key,
                              mode,       r->token, ttl, from ? from : "-", cnt};
        redisReply *rep = redisCommandArgv(r->c, 10, argv, NULL);
        if (!rep) {
            rc = fail(r, SMM_SINK_RETRY, "redis %s: %s", mode, r->c->errstr);
            redis_drop(r);
            return rc;
        }
        if (rep->type == REDIS_REPLY_ERROR) {
            if (attempt == 0 && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
                freeReplyObject(rep); /* script cache flushed: load again */
                const char *load[] = {"SCRIPT", "LOAD", lease_script};
                if ((rc = redis_simple(r, 3, load, "SCRIPT LOAD")) != SMM_SINK_OK) {
                    return rc;
                }
                continue;
            }
            rc = fail(r, reply_class(rep->str), "redis %s: %s", mode, rep->str);
            freeReplyObject(rep);
            redis_drop(r);
            return rc;
        }
        *out = rep;
        return SMM_SINK_OK;
    }
}

/* acquire/renew: 1 ours, 0 nothing to relay, -1 held by another; < -1 on failure (rc). */
static int lease_int(struct smm_alert_relay *r, const char *mode, int *rc)
{
    redisReply *rep = NULL;
    *rc = lease_call(r, mode, NULL, 0, &rep);
    if (*rc != SMM_SINK_OK) {
        return -2;
    }
    int v = rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : -2;
    freeReplyObject(rep);
    return v;
}

/* ---- state steps ---- */

static int step_idle(struct smm_alert_relay *r)
{
    int rc;
    int v = lease_int(r, "acquire", &rc);
    if (v < -1) {
        return rc;
    }
    if (v <= 0) {
        return SMM_SINK_OK; /* nothing to relay yet, or another process relays */
    }
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(r->pconf);
    r->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!r->rk) {
        rd_kafka_conf_destroy(conf); /* still ours on failure */
        return fail(r, SMM_SINK_ERROR, "kafka producer: %s", err);
    }
    logf_(r, SMM_LOG_INFO, "alert relay: took the lease %s (%s); initialising transactions",
          r->lease_key, r->token);
    r->st = ST_INIT;
    return SMM_SINK_OK;
}

static int remaining(int64_t deadline)
{
    int64_t left = deadline - mono_ms();
    return left < 50 ? 50 : (int)left;
}

static int step_init(struct smm_alert_relay *r, int64_t deadline)
{
    rd_kafka_error_t *e = rd_kafka_init_transactions(r->rk, remaining(deadline));
    if (!e) {
        r->st = ST_RESUME;
        return SMM_SINK_OK;
    }
    int retriable = rd_kafka_error_is_retriable(e);
    int rc = fail(r, SMM_SINK_RETRY, "init_transactions: %s", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    if (!retriable) {
        drop_kafka(r);
    }
    return rc; /* retriable (a timeout): the next poll resumes the same call */
}

/* Reads one message's relay headers. Returns 1 when it carries smm.stream_id. */
static int read_headers(rd_kafka_message_t *m, struct sid *id, int64_t *seq, char *alert,
                        size_t alert_size)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t n;
    if (rd_kafka_message_headers(m, &h) || !h) {
        return 0;
    }
    if (rd_kafka_header_get_last(h, "smm.stream_id", &v, &n) || !v || sid_parse(v, n, id)) {
        return 0;
    }
    *seq = -1;
    if (!rd_kafka_header_get_last(h, "smm.stream_seq", &v, &n) && v && n > 0 && n < 24) {
        char buf[24];
        memcpy(buf, v, n);
        buf[n] = '\0';
        *seq = strtoll(buf, NULL, 10);
    }
    alert[0] = '\0';
    if (!rd_kafka_header_get_last(h, "smm.alert_id", &v, &n) && v) {
        snprintf(alert, alert_size, "%.*s", (int)(n < alert_size ? n : alert_size - 1),
                 (const char *)v);
    }
    return 1;
}

static void assign_tail(struct smm_alert_relay *r)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(r->n_tail);
    for (int i = 0; i < r->n_tail; i++) {
        if (!r->tail[i].done) {
            rd_kafka_topic_partition_list_add(l, r->topic, r->tail[i].partition)->offset =
                r->tail[i].start;
        }
    }
    rd_kafka_assign(r->reader, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* Metadata and watermarks of the topic; assigns the tail of every non-empty partition.
 * Returns OK, RETRY, or OK with r->tail == NULL when the topic does not exist. */
static int resume_start(struct smm_alert_relay *r, int64_t deadline, int *missing)
{
    char err[512];
    *missing = 0;
    if (!r->reader) {
        rd_kafka_conf_t *conf = rd_kafka_conf_dup(r->cconf);
        r->reader = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        if (!r->reader) {
            rd_kafka_conf_destroy(conf);
            return fail(r, SMM_SINK_ERROR, "kafka resume reader: %s", err);
        }
        rd_kafka_poll_set_consumer(r->reader); /* its callbacks are served by consumer_poll */
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(r->reader, r->topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rkt ? rd_kafka_metadata(r->reader, 0, rkt, &md, remaining(deadline))
                                : rd_kafka_last_error();
    if (rkt) {
        rd_kafka_topic_destroy(rkt);
    }
    if (e) {
        return fail(r, SMM_SINK_RETRY, "metadata of %s: %s", r->topic, rd_kafka_err2str(e));
    }
    int rc = SMM_SINK_OK;
    const struct rd_kafka_metadata_topic *t = md->topic_cnt == 1 ? &md->topics[0] : NULL;
    if (t && t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        *missing = 1;
    } else if (!t || t->err || t->partition_cnt <= 0) {
        rc = fail(r, SMM_SINK_RETRY, "metadata of %s: %s", r->topic,
                  t ? rd_kafka_err2str(t->err) : "no topic in the answer");
    } else {
        r->tail = calloc((size_t)t->partition_cnt, sizeof(*r->tail));
        if (!r->tail) {
            rc = fail(r, SMM_SINK_RETRY, "out of memory");
        }
        for (int i = 0; rc == SMM_SINK_OK && i < t->partition_cnt; i++) {
            struct tail_part *tp = &r->tail[r->n_tail++];
            int64_t lo = 0, hi = 0;
            tp->partition = t->partitions[i].id;
            e = rd_kafka_query_watermark_offsets(r->reader, r->topic, tp->partition, &lo, &hi,
                                                 remaining(deadline));
            if (e) {
                rc = fail(r, SMM_SINK_RETRY, "watermarks of %s [%d]: %s", r->topic,
                          (int)tp->partition, rd_kafka_err2str(e));
                break;
            }
            tp->lo = lo;
            tp->start = hi - TAIL_WINDOW > lo ? hi - TAIL_WINDOW : lo;
            tp->done = hi <= lo;
        }
    }
    rd_kafka_metadata_destroy(md);
    if (rc != SMM_SINK_OK) {
        drop_reader(r);
        return rc;
    }
    if (r->tail) {
        assign_tail(r);
    }
    return SMM_SINK_OK;
}

static void resume_done(struct smm_alert_relay *r, const char *why)
{
    char buf[48] = "the start of the stream";
    r->have_cursor = r->have_max;
    r->cursor = r->tail_max;
    r->cursor_seq = r->tail_max_seq;
    r->gap_reported = 0;
    if (r->have_cursor) {
        sid_fmt(r->cursor, buf, sizeof(buf));
    }
    logf_(r, SMM_LOG_INFO, "alert relay: %sresuming after %s (%d alert ids remembered)", why,
          buf, r->dd->used);
    drop_reader(r);
    r->st = ST_RUN;
}

static int step_resume(struct smm_alert_relay *r, int64_t deadline)
{
    if (!r->tail) {
        int missing;
        r->have_max = 0;
        r->tail_max_seq = -1;
        r->dd->used = 0;
        r->dd->next = 0;
        int rc = resume_start(r, deadline, &missing);
        if (rc != SMM_SINK_OK) {
            return rc;
        }
        if (missing) {
            resume_done(r, "topic does not exist yet (producing creates it if the broker "
                           "auto-creates topics): ");
            return SMM_SINK_OK;
        }
    }
    while (mono_ms() < deadline) {
        int open = 0;
        for (int i = 0; i < r->n_tail; i++) {
            open += !r->tail[i].done;
        }
        if (open == 0) {
            resume_done(r, "");
            return SMM_SINK_OK;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->reader, remaining(deadline));
        if (!m) {
            continue;
        }
        struct tail_part *tp = NULL;
        for (int i = 0; i < r->n_tail; i++) {
            if (r->tail[i].partition == m->partition) {
                tp = &r->tail[i];
            }
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && tp && !tp->done) {
            if (tp->found || tp->start <= tp->lo) {
                tp->done = 1;
            } else {
                /* Only aborted or foreign data in the window: look further back. */
                int64_t w = TAIL_WINDOW * 4;
                tp->start = tp->start - w > tp->lo ? tp->start - w : tp->lo;
                assign_tail(r);
            }
        } else if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            int rc = fail(r, SMM_SINK_RETRY, "reading %s for the resume point: %s", r->topic,
                          rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            drop_reader(r); /* start over at the next poll */
            return rc;
        } else if (!m->err && tp) {
            struct sid id;
            int64_t seq;
            char alert[DEDUP_ID_MAX];
            if (read_headers(m, &id, &seq, alert, sizeof(alert))) {
                tp->found = 1;
                if (!r->have_max || sid_cmp(id, r->tail_max) > 0) {
                    r->have_max = 1;
                    r->tail_max = id;
                    r->tail_max_seq = seq;
                }
                if (alert[0]) {
                    uint64_t h = fnv(alert, strlen(alert));
                    if (!dedup_has(r->dd, h, alert)) {
                        dedup_add(r->dd, h, alert);
                    }
                }
            }
        }
        rd_kafka_message_destroy(m);
    }
    return SMM_SINK_OK; /* more to read: the next poll goes on */
}

/* The commit of the pending batch answered; *relayed counts it on success. */
static int after_commit(struct smm_alert_relay *r, rd_kafka_error_t *e, int64_t *relayed)
{
    if (!e) {
        for (int i = 0; i < r->n_pend; i++) {
            dedup_add(r->dd, r->pend[i].hash, r->pend[i].id);
        }
        r->have_cursor = 1;
        r->cursor = r->pend_last;
        r->cursor_seq = r->pend_last_seq;
        *relayed += r->pend_n;
        r->n_pend = 0;
        r->st = ST_RUN;
        r->backoff = 0;
        r->gap_reported = 0;
        if (r->hook) {
            r->hook(r->opaque, SMM_ALERT_RELAY_COMMITTED, r->pend_n);
        }
        return SMM_SINK_OK;
    }
    if (rd_kafka_error_is_retriable(e) && !rd_kafka_error_txn_requires_abort(e)) {
        r->st = ST_COMMIT; /* timed out: the next poll resumes the commit (not an error) */
        snprintf(r->errstr, sizeof(r->errstr), "commit_transaction: %s",
                 rd_kafka_error_string(e));
        logf_(r, SMM_LOG_DEBUG, "alert relay: %s; resuming at the next poll", r->errstr);
        rd_kafka_error_destroy(e);
        return SMM_SINK_RETRY;
    }
    int rc = fail(r, SMM_SINK_RETRY, "commit_transaction%s: %s",
                  rd_kafka_error_is_fatal(e) ? " (fatal)" : "", rd_kafka_error_string(e));
    int abortable = rd_kafka_error_txn_requires_abort(e);
    rd_kafka_error_destroy(e);
    r->n_pend = 0;
    if (abortable) {
        rd_kafka_error_t *ae = rd_kafka_abort_transaction(r->rk, 5000);
        if (!ae) {
            r->st = ST_RUN; /* nothing committed; the cursor did not move: retry later */
            return rc;
        }
        rd_kafka_error_destroy(ae);
    }
    drop_kafka(r); /* fenced, fatal, or the abort failed: start over */
    return rc;
}

static char *field(const redisReply *kv, const char *name, size_t *len)
{
    for (size_t i = 0; kv && kv->type == REDIS_REPLY_ARRAY && i + 1 < kv->elements; i += 2) {
        const redisReply *k = kv->element[i], *v = kv->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0 &&
            v->type == REDIS_REPLY_STRING) {
            *len = (size_t)v->len;
            return v->str;
        }
    }
    *len = 0;
    return NULL;
}

/* Reads a batch after the cursor and relays it in one transaction. Sets *more when the
 * batch was full (more may be waiting). */
static int relay_batch(struct smm_alert_relay *r, int64_t deadline, int64_t *relayed, int *more)
{
    *more = 0;
    char from[48] = "-";
    if (r->have_cursor) {
        struct sid nx = r->cursor;
        if (nx.seq == UINT64_MAX) {
            nx.ms++;
            nx.seq = 0;
        } else {
            nx.seq++;
        }
        sid_fmt(nx, from, sizeof(from));
    }
    redisReply *rep = NULL;
    int rc = lease_call(r, "read", from, r->batch_max, &rep);
    if (rc != SMM_SINK_OK) {
        return rc;
    }
    if (rep->type == REDIS_REPLY_INTEGER) {
        freeReplyObject(rep);
        logf_(r, SMM_LOG_WARN, "alert relay: lost the lease %s; standing by", r->lease_key);
        drop_kafka(r);
        return SMM_SINK_OK;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 6 ||
        rep->element[5]->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rep);
        return fail(r, SMM_SINK_ERROR, "redis read: unexpected reply shape");
    }
    int64_t added = rep->element[1]->integer, len = rep->element[2]->integer;
    struct sid first = {0, 0}, last = {0, 0};
    int has_first = rep->element[3]->type == REDIS_REPLY_STRING &&
                    !sid_parse(rep->element[3]->str, (size_t)rep->element[3]->len, &first);
    int has_last = rep->element[4]->type == REDIS_REPLY_STRING &&
                   !sid_parse(rep->element[4]->str, (size_t)rep->element[4]->len, &last);
    redisReply *es = rep->element[5];
    char cur[48] = "";
    sid_fmt(r->cursor, cur, sizeof(cur));

    /* Redis restored from an older state: the stream ends before what we relayed. */
    if (r->have_cursor && has_last && sid_cmp(last, r->cursor) < 0) {
        char lb[48];
        sid_fmt(last, lb, sizeof(lb));
        logf_(r, SMM_LOG_WARN,
              "alert relay: the stream ends at %s, before %s which is already in Kafka (Redis "
              "restored from an older state?); continuing from %s and skipping alert ids "
              "already relayed",
              lb, cur, lb);
        r->cursor = last;
        r->cursor_seq = added;
        freeReplyObject(rep);
        *more = 1;
        return SMM_SINK_OK;
    }
    /* Trimmed past the cursor: entries between the cursor and the first entry are gone. */
    if (has_first && es->elements > 0 && !r->gap_reported &&
        (!r->have_cursor || sid_cmp(first, r->cursor) > 0)) {
        int64_t first_seq = added >= 0 ? added - len + 1 : -1;
        int64_t cseq = r->have_cursor ? r->cursor_seq : 0;
        if (first_seq >= 0 && cseq >= 0 && first_seq - cseq - 1 > 0) {
            logf_(r, SMM_LOG_WARN,
                  "alert relay: %lld alert(s) were trimmed from %s before they were relayed "
                  "(after %s; raise alerts.stream_max or keep the relay running)",
                  (long long)(first_seq - cseq - 1), r->stream_key,
                  r->have_cursor ? cur : "the start");
        } else if (r->have_cursor && (first_seq < 0 || cseq < 0)) {
            logf_(r, SMM_LOG_WARN,
                  "alert relay: %s was trimmed past %s: an unknown number of alerts were lost "
                  "(Redis < 7 or messages without smm.stream_seq)",
                  r->stream_key, cur);
        }
        r->gap_reported = 1;
    }
    size_t n = es->elements;
    if (n == 0) {
        freeReplyObject(rep);
        return SMM_SINK_OK;
    }
    *more = (int)n >= r->batch_max;
    /* Ordinals: anchored at the stream's end, else its start, else the cursor's. */
    int64_t seq0 = -1;
    struct sid e0, en;
    sid_parse(es->element[0]->element[0]->str, (size_t)es->element[0]->element[0]->len, &e0);
    sid_parse(es->element[n - 1]->element[0]->str, (size_t)es->element[n - 1]->element[0]->len,
              &en);
    if (added >= 0 && has_last && sid_cmp(en, last) == 0) {
        seq0 = added - (int64_t)n + 1;
    } else if (added >= 0 && has_first && sid_cmp(e0, first) == 0) {
        seq0 = added - len + 1;
    } else if (r->have_cursor && r->cursor_seq >= 0) {
        seq0 = r->cursor_seq + 1;
    }

    rd_kafka_error_t *e = rd_kafka_begin_transaction(r->rk);
    if (e) {
        rc = fail(r, SMM_SINK_RETRY, "begin_transaction: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        freeReplyObject(rep);
        drop_kafka(r);
        return rc;
    }
    r->n_pend = 0;
    r->pend_n = 0;
    int skipped = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *ent = es->element[i];
        const redisReply *kv = ent->elements > 1 ? ent->element[1] : NULL;
        size_t al, jl, cl, accl;
        const char *alert = field(kv, "alert_id", &al);
        const char *json = field(kv, "json", &jl);
        const char *content = field(kv, "content_id", &cl);
        const char *account = field(kv, "account_id", &accl);
        const char *key = cl ? content : accl ? account : NULL;
        size_t key_len = cl ? cl : accl;
        char seqs[24];
        snprintf(seqs, sizeof(seqs), "%lld", (long long)(seq0 >= 0 ? seq0 + (int64_t)i : -1));
        sid_parse(ent->element[0]->str, (size_t)ent->element[0]->len, &r->pend_last);
        r->pend_last_seq = seq0 >= 0 ? seq0 + (int64_t)i : -1;
        if (!alert || !json || al == 0) {
            logf_(r, SMM_LOG_WARN, "alert relay: stream entry %s has no alert_id or json; "
                  "skipped", ent->element[0]->str);
            continue;
        }
        uint64_t h = fnv(alert, al);
        if (dedup_has(r->dd, h, alert) || pending_has(r, h, alert, al)) {
            skipped++;
            continue;
        }
        rd_kafka_resp_err_t pe = rd_kafka_producev(
            r->rk, RD_KAFKA_V_TOPIC(r->topic), RD_KAFKA_V_VALUE((void *)json, jl),
            RD_KAFKA_V_KEY((void *)key, key_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER("smm.alert_id", alert, (ssize_t)al),
            RD_KAFKA_V_HEADER("smm.stream_id", ent->element[0]->str,
                              (ssize_t)ent->element[0]->len),
            RD_KAFKA_V_HEADER("smm.stream_seq", seqs, (ssize_t)(seq0 >= 0 ? -1 : 0)),
            RD_KAFKA_V_END); /* header lengths are read as ssize_t from the varargs */
        if (pe) {
            rc = fail(r, SMM_SINK_RETRY, "produce to %s: %s", r->topic, rd_kafka_err2str(pe));
            freeReplyObject(rep);
            e = rd_kafka_abort_transaction(r->rk, 5000);
            if (e) {
                rd_kafka_error_destroy(e);
                drop_kafka(r);
            }
            r->n_pend = 0;
            return rc;
        }
        r->pend[r->n_pend].hash = h;
        snprintf(r->pend[r->n_pend].id, DEDUP_ID_MAX, "%.*s", (int)al, alert);
        r->n_pend++;
        r->pend_n++;
    }
    freeReplyObject(rep);
    if (skipped) {
        logf_(r, SMM_LOG_WARN, "alert relay: skipped %d alert(s) already in Kafka (same alert_id)",
              skipped);
    }
    if (r->hook) {
        r->hook(r->opaque, SMM_ALERT_RELAY_PRODUCED, r->pend_n);
    }
    /* A batch of only skipped entries commits an empty transaction: cheap, and it keeps one
     * path. The commit resumes at the next poll if it runs out of time. */
    int t = remaining(deadline);
    e = rd_kafka_commit_transaction(r->rk, t < 200 ? 200 : t);
    return after_commit(r, e, relayed);
}

static int step_run(struct smm_alert_relay *r, int64_t deadline, int64_t *relayed)
{
    int rc = SMM_SINK_OK, more = 1;
    while (more && r->st == ST_RUN && mono_ms() < deadline) {
        rc = relay_batch(r, deadline, relayed, &more);
        if (rc != SMM_SINK_OK) {
            break;
        }
    }
    return rc;
}

int smm_alert_relay_poll(struct smm_alert_relay *r, int64_t now_ms, int64_t *relayed)
{
    int64_t dummy = 0;
    if (!relayed) {
        relayed = &dummy;
    }
    *relayed = 0;
    if (r->retry_at && now_ms < r->retry_at) {
        return SMM_SINK_OK;
    }
    r->retry_at = 0;
    int64_t deadline = mono_ms() + r->budget_ms;
    int rc = SMM_SINK_OK;
    if (r->kafka_fatal) {
        char why[sizeof(r->errstr)];
        snprintf(why, sizeof(why), "%s", r->errstr);
        rc = fail(r, r->kafka_fatal == 2 ? SMM_SINK_ERROR : SMM_SINK_RETRY, "%s", why);
        drop_kafka(r);
        backoff(r, now_ms);
        return rc;
    }
    if (r->st != ST_IDLE && r->st != ST_RUN) {
        /* INIT, RESUME and COMMIT span polls: keep the lease meanwhile. RUN renews it with
         * every read. */
        int v = lease_int(r, "renew", &rc);
        if (v == -1) {
            logf_(r, SMM_LOG_WARN, "alert relay: lost the lease %s; standing by", r->lease_key);
            drop_kafka(r);
        }
        if (v < -1) {
            backoff(r, now_ms);
            return rc;
        }
    }
    if (r->st == ST_IDLE) {
        rc = step_idle(r);
    }
    if (rc == SMM_SINK_OK && r->st == ST_INIT) {
        rc = step_init(r, deadline);
    }
    if (rc == SMM_SINK_OK && r->st == ST_RESUME) {
        rc = step_resume(r, deadline);
    }
    if (rc == SMM_SINK_OK && r->st == ST_COMMIT) {
        rc = after_commit(r, rd_kafka_commit_transaction(r->rk, remaining(deadline)), relayed);
    }
    if (rc == SMM_SINK_OK && r->st == ST_RUN) {
        rc = step_run(r, deadline, relayed);
    }
    if (r->rk) {
        rd_kafka_poll(r->rk, 0); /* serve error and log callbacks */
    }
    if (rc != SMM_SINK_OK && !(rc == SMM_SINK_RETRY && (r->st == ST_INIT || r->st == ST_COMMIT))) {
        backoff(r, now_ms); /* a resumable timeout goes on at the next poll instead */
    } else if (rc == SMM_SINK_OK) {
        r->backoff = 0;
        snprintf(r->errstr, sizeof(r->errstr), "ok");
    }
    return rc;
}

const char *smm_alert_relay_errstr(const struct smm_alert_relay *r)
{
    return r->errstr;
}

int smm_alert_relay_active(const struct smm_alert_relay *r)
{
    return r->st != ST_IDLE;
}

void smm_alert_relay_destroy(struct smm_alert_relay *r)
{
    if (!r) {
        return;
    }
    if (r->rk && r->st == ST_COMMIT) {
        int64_t relayed = 0;
        after_commit(r, rd_kafka_commit_transaction(r->rk, 5000), &relayed);
    }
    int held = r->rk != NULL;
    drop_kafka(r); /* an open transaction is aborted by the next relay's init */
    if (held && r->c) {
        redisReply *rep = NULL;
        if (lease_call(r, "release", NULL, 0, &rep) == SMM_SINK_OK) {
            freeReplyObject(rep);
        }
    }
    redis_drop(r);
    if (r->pconf) {
        rd_kafka_conf_destroy(r->pconf);
    }
    if (r->cconf) {
        rd_kafka_conf_destroy(r->cconf);
    }
    for (int i = 0; r->conf_key && i < r->n_conf; i++) {
        free(r->conf_key[i]);
        free(r->conf_val[i]);
    }
    free(r->conf_key);
    free(r->conf_val);
    if (r->password) {
        memset(r->password, 0, strlen(r->password));
    }
    free(r->topic);
    free(r->group);
    free(r->host);
    free(r->unix_socket);
    free(r->username);
    free(r->password);
    free(r->pend);
    free(r->dd);
    free(r);
}
