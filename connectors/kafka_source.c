/* connectors/kafka_source.c - librdkafka high-level consumer plus a dead-letter producer.
 *
 * DESIGN (offsets): enable.auto.offset.store=false and our own rebalance callback. On
 * assign, the caller claims each partition in Redis and returns the stored next offset,
 * which we pass to rd_kafka_assign(); Redis is the source of truth, Kafka's committed
 * offsets only feed lag dashboards (auto-commit of offsets we store after a confirmed
 * flush). Seeks, pauses and assigns all happen on the polling thread, as librdkafka 2.0.x
 * requires. The dead-letter producer is idempotent, and the caller waits for its
 * acknowledgements before the flush that moves a partition's offset past a dead letter.
 *
 * DESIGN (a missing topic): Kafka brokers (and the mock cluster) create a topic that a
 * Metadata request names, unless the client says not to, and Metadata requests before
 * v4 cannot say it. So the consumer sets allow.auto.create.topics=false and subscribes
 * only once a Metadata request for all topics (which names none) lists the topic; until
 * then it re-checks every few seconds and problem() says what is wrong. A misspelled
 * topic is reported, never created (nor its .dlq: the dead-letter topic handle is made at
 * the first dead letter). kafka.allow.auto.create.topics=true restores subscribing at
 * once.
 *
 * DESIGN (stopping): the process' stop flag (opts.stop) cuts short the two waits made here:
 * the committed-offsets request on assignment (check_own_commits) and, at destroy, the
 * wait for unacknowledged dead letters (dropped when stopping: never behind a stored
 * offset, so the next start produces them again). */
#include "connectors/kafka_source.h"

#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct smm_kafka_source {
    rd_kafka_t *rk;  /* consumer */
    rd_kafka_t *dlq; /* producer */
    rd_kafka_topic_t *dlq_topic;
    struct smm_kafka_callbacks cb;
    char *topic;
    int assigned;
    int ever_assigned; /* a partition was assigned once: past startup */
    int fatal;
    int64_t dlq_outstanding;
    int64_t dlq_failed;
    rd_kafka_topic_partition_list_t *to_commit; /* offsets stored since the last commit */
    int64_t last_commit_ms;
    char *dlq_name;
    int subscribed;       /* subscribe() done (after the topic was seen, see DESIGN) */
    int topic_missing;    /* the cluster said the topic does not exist */
    int brokers_down;     /* ALL_BROKERS_DOWN, until a Metadata request succeeds again */
    int64_t next_check_ms; /* next Metadata probe (topic missing, or brokers down) */
    volatile sig_atomic_t *stop; /* the process' stop flag, or NULL (see opts) */
    int unchecked;        /* stopped before the committed offsets were read: deliver nothing */
    char errstr[512];
};

static void logf_(struct smm_kafka_source *src, enum smm_log_level lvl, const char *fmt, ...)
{
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (src->cb.log) {
        src->cb.log(src->cb.opaque, lvl, buf);
    }
}

/* Commits for lag monitoring carry this metadata, so a committed offset can be recognised
 * as ours: if Redis holds no offset for a partition that we committed before, Redis lost
 * its state (restored from before the first flush) and the partition must be replayed
 * from the start, not resumed from the commit. */
#define COMMIT_MARK "smm-processor"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define COMMITTED_ATTEMPT_MS 1000   /* one OffsetFetch attempt (the first: half); the stop
                                     * flag is read between attempts */
#define COMMITTED_TOTAL_MS 10000    /* as long as a single 10 s request waited before */

static int stopping(const struct smm_kafka_source *src)
{
    return src->stop && *src->stop;
}

/* For the partitions the caller had no offset for: replay from the start those whose
 * committed offset is one of ours (see COMMIT_MARK).
 *
 * This runs in the rebalance callback, on the polling thread, so while the coordinator is
 * slow nothing else runs, a stop signal included. The committed offsets are therefore
 * asked for in attempts of COMMITTED_ATTEMPT_MS (the first one half of it), with the stop
 * flag read between them, for up to COMMITTED_TOTAL_MS in all. A shorter total would not be
 * safe: without the answer, "Redis lost its state" goes undetected and the partition
 * resumes from Kafka's commit, skipping what Redis lost; so the total stays what it was,
 * and giving up is logged. (A late answer does not count for the next attempt, so a
 * coordinator slower than one attempt is now given up on, where one 10 s request
 * waited for it; such a coordinator is logged, not silent.)
 * Stopped before the answer: the partitions are still assigned (the rebalance protocol
 * wants it) but src->unchecked makes poll() deliver nothing more, so no event of a
 * partition whose start could not be checked is counted or has its offset stored; the
 * next start checks again. */
static void check_own_commits(struct smm_kafka_source *src, rd_kafka_t *rk,
                              rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts->cnt);
    for (int i = 0; i < parts->cnt; i++) {
        if (parts->elems[i].offset == RD_KAFKA_OFFSET_INVALID) {
            rd_kafka_topic_partition_list_add(l, parts->elems[i].topic, parts->elems[i].partition);
        }
    }
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    int64_t t0 = now_ms();
    for (int attempt_ms = COMMITTED_ATTEMPT_MS / 2; l->cnt > 0 && !stopping(src);
         attempt_ms = COMMITTED_ATTEMPT_MS) {
        err = rd_kafka_committed(rk, l, attempt_ms);
        if (err != RD_KAFKA_RESP_ERR__TIMED_OUT || now_ms() - t0 >= COMMITTED_TOTAL_MS) {
            break;
        }
    }
    if (l->cnt > 0 && err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (stopping(src)) {
            src->unchecked = 1;
            logf_(src, SMM_LOG_WARN, "stopped while reading the committed offsets of %d "
                  "partition(s): nothing more is consumed", l->cnt);
        } else {
            logf_(src, SMM_LOG_WARN, "committed offsets not read (%s): for %d partition(s) "
                  "Redis has no offset for, a loss of Redis' state cannot be detected",
                  rd_kafka_err2str(err), l->cnt);
        }
    }
    if (l->cnt > 0 && err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < l->cnt; i++) {
            rd_kafka_topic_partition_t *c = &l->elems[i];
            size_t n = strlen(COMMIT_MARK);
            if (c->offset < 0 || c->metadata_size != n || memcmp(c->metadata, COMMIT_MARK, n)) {
                continue;
            }
            rd_kafka_topic_partition_t *p =
                rd_kafka_topic_partition_list_find(parts, c->topic, c->partition);
            if (p) {
                p->offset = RD_KAFKA_OFFSET_BEGINNING;
                logf_(src, SMM_LOG_WARN,
                      "%s [%d]: Redis holds no offset but smm-processor committed %lld: Redis "
                      "lost its state, replaying the partition from the earliest offset",
                      c->topic, (int)c->partition, (long long)c->offset);
            }
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
}

static void commit_stored(struct smm_kafka_source *src, int force);

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct smm_kafka_source *src = opaque;
    int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < parts->cnt; i++) {
            rd_kafka_topic_partition_t *p = &parts->elems[i];
            int64_t off = SMM_KAFKA_OFFSET_DEFAULT;
            if (src->cb.on_assign) {
                src->cb.on_assign(src->cb.opaque, p->topic, p->partition, &off);
            }
            /* Always overwrite: the list may carry stale offsets (librdkafka #1767). */
            p->offset = off == SMM_KAFKA_OFFSET_DEFAULT ? RD_KAFKA_OFFSET_INVALID : off;
        }
        check_own_commits(src, rk, parts);
        if (cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
            if (e) {
                logf_(src, SMM_LOG_ERROR, "incremental assign: %s", rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
            }
        } else {
            rd_kafka_assign(rk, parts);
        }
        src->assigned += parts->cnt;
        src->ever_assigned = 1;
        src->topic_missing = 0;
        src->brokers_down = 0;
        logf_(src, SMM_LOG_INFO, "assigned %d partition(s)", parts->cnt);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        int lost = rd_kafka_assignment_lost(rk);
        for (int i = 0; i < parts->cnt; i++) {
            if (src->cb.on_revoke) {
                src->cb.on_revoke(src->cb.opaque, parts->elems[i].topic,
                                  parts->elems[i].partition, lost);
            }
        }
        commit_stored(src, 1); /* the final offsets of what we hand over */
        if (cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
            if (e) {
                rd_kafka_error_destroy(e);
            }
        } else {
            rd_kafka_assign(rk, NULL);
        }
        src->assigned = cooperative ? src->assigned - parts->cnt : 0;
        if (src->assigned < 0) {
            src->assigned = 0;
        }
        logf_(src, SMM_LOG_INFO, "revoked %d partition(s)%s", parts->cnt, lost ? " (lost)" : "");
    } else {
        logf_(src, SMM_LOG_ERROR, "rebalance error: %s", rd_kafka_err2str(err));
        rd_kafka_assign(rk, NULL);
        src->assigned = 0;
    }
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct smm_kafka_source *src = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[256];
        rd_kafka_fatal_error(rk, buf, sizeof(buf));
        snprintf(src->errstr, sizeof(src->errstr), "kafka fatal error: %s", buf);
        src->fatal = 1;
        logf_(src, SMM_LOG_ERROR, "%s", src->errstr);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION && !src->ever_assigned) {
        /* Rejected credentials at startup: retrying cannot fix them, so stop and say so
         * (librdkafka's reason names the broker, never the password). Later, while running,
         * it may be a transient broker-side problem: fall through and let librdkafka retry. */
        snprintf(src->errstr, sizeof(src->errstr),
                 "Kafka SASL authentication failed (check kafka.sasl.username, "
                 "kafka.sasl.password and kafka.sasl.mechanisms): %s",
                 reason);
        src->fatal = 1;
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        src->brokers_down = 1; /* cleared by a Metadata probe in poll() */
    }
    /* Broker down, transport errors: librdkafka retries by itself; report, go on. Its
     * reason ends "(after 0ms in state CONNECT)": the duration varies between otherwise
     * identical failures, so it is dropped and our log's repeat suppression sees them as
     * the repeats they are (librdkafka also compares without it). */
    char text[512];
    const char *after = strstr(reason, " (after ");
    const char *in = after ? strstr(after, "ms in state ") : NULL;
    if (in) {
        snprintf(text, sizeof(text), "%.*s (in state %s", (int)(after - reason), reason,
                 in + strlen("ms in state "));
        reason = text;
    }
    logf_(src, err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ? SMM_LOG_WARN : SMM_LOG_INFO,
          "kafka: %s", reason);
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk;
    struct smm_kafka_source *src = opaque;
    if (src->cb.on_stats) {
        src->cb.on_stats(src->cb.opaque, json, len);
    }
    return 0; /* librdkafka frees json */
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    struct smm_kafka_source *src = rd_kafka_opaque(rk);
    if (!src || !src->cb.log) {
        return;
    }
    if (strcmp(fac, "FAIL") == 0) {
        return; /* a broker connection failed: error_cb reports the same failure */
    }
    if (strcmp(fac, "AUTOCREATE") == 0) {
        level = 7; /* "may be auto created" by an old broker: we subscribe only to a topic
                    * that exists (see DESIGN), so this is no news */
    }
    enum smm_log_level lvl = level <= 3 ? SMM_LOG_ERROR : level <= 4 ? SMM_LOG_WARN
                             : level <= 6                  ? SMM_LOG_INFO
                                                           : SMM_LOG_DEBUG;
    char msg[600];
    snprintf(msg, sizeof(msg), "rdkafka %s: %s", fac, buf);
    src->cb.log(src->cb.opaque, lvl, msg);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct smm_kafka_source *src = opaque;
    src->dlq_outstanding--;
    if (m->err) {
        src->dlq_failed++;
        /* Purged by destroy when stopping: the shutdown already said how many were left. */
        int purged = m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
                     m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT;
        logf_(src, purged ? SMM_LOG_DEBUG : SMM_LOG_ERROR, "dead-letter delivery failed: %s",
              rd_kafka_err2str(m->err));
    }
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *errstr,
                    size_t errstr_size)
{
    char err[256];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errstr_size, "kafka.%s: %s", k, err);
        return -1;
    }
    return 0;
}

/* Consumer-only properties would make the producer log a warning each; skip them. */
static int consumer_only(const char *k)
{
    static const char *const keys[] = {"auto.offset.reset", "session.timeout.ms",
                                       "heartbeat.interval.ms", "max.poll.interval.ms",
                                       "partition.assignment.strategy", "fetch.",
                                       "queued.", "enable.auto.commit", "auto.commit.",
                                       "isolation.level", "group.instance.id",
                                       "statistics.interval.ms", "check.crcs",
                                       "fetch.wait.max.ms"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        size_t n = strlen(keys[i]);
        if (keys[i][n - 1] == '.' ? strncmp(k, keys[i], n) == 0 : strcmp(k, keys[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static int subscribe(struct smm_kafka_source *src, char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, src->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(src->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e) {
        snprintf(errstr, errstr_size, "topic: subscribe to %s: %s", src->topic,
                 rd_kafka_err2str(e));
        return -1;
    }
    src->subscribed = 1;
    return 0;
}

/* A Metadata request, at most timeout_ms: for all topics until subscribed (naming none, so
 * nothing is auto-created; then subscribes when our topic is listed), for the known topics
 * after (to see brokers back after ALL_BROKERS_DOWN). */
static void probe(struct smm_kafka_source *src, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(src->rk, !src->subscribed, NULL, &md, timeout_ms);
    if (e) {
        /* No broker (yet): error_cb says why. Until subscribed, look again at the next
         * poll, so a cluster that comes up is used at once. */
        src->next_check_ms = src->subscribed ? now_ms() + 1000 : 0;
        return;
    }
    src->brokers_down = 0;
    int found = 0;
    for (int i = 0; !src->subscribed && i < md->topic_cnt; i++) {
        found |= !strcmp(md->topics[i].topic, src->topic) && md->topics[i].err == 0 &&
                 md->topics[i].partition_cnt > 0;
    }
    rd_kafka_metadata_destroy(md);
    if (src->subscribed) {
        return;
    }
    if (!found) {
        src->next_check_ms = now_ms() + 5000;
        if (!src->topic_missing) {
            src->topic_missing = 1;
            logf_(src, SMM_LOG_ERROR,
                  "topic \"%s\" does not exist on the Kafka cluster: nothing to consume (check "
                  "the topic key or --topic; the processor does not create topics); waiting "
                  "for it to be created",
                  src->topic);
        }
        return;
    }
    if (src->topic_missing) {
        logf_(src, SMM_LOG_INFO, "topic \"%s\" exists now: subscribing", src->topic);
    }
    src->topic_missing = 0;
    char err[300];
    if (subscribe(src, err, sizeof(err)) != 0) {
        snprintf(src->errstr, sizeof(src->errstr), "%s", err);
        src->fatal = 1;
    }
}

struct smm_kafka_source *smm_kafka_source_new(const struct smm_kafka_opts *opts,
                                              const struct smm_kafka_callbacks *cb,
                                              char *errstr, size_t errstr_size)
{
    struct smm_kafka_source *src = calloc(1, sizeof(*src));
    rd_kafka_conf_t *conf = NULL;
    char err[512];
    if (src) {
        src->stop = opts->stop;
    }
    if (!src || !(src->topic = strdup(opts->topic))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    src->cb = *cb;

    /* Consumer: our defaults first, then the user's kafka.* keys (which win). */
    conf = rd_kafka_conf_new();
    static const char *const defaults[][2] = {
        {"auto.offset.reset", "earliest"},
        {"enable.auto.commit", "false"}, /* we commit, with COMMIT_MARK, after each flush */
        {"queued.min.messages", "20000"},
        {"queued.max.messages.kbytes", "32768"},
        {"fetch.max.bytes", "16777216"}, /* 50 MB by default: a memory spike per fetch */
        {"statistics.interval.ms", "10000"},
        {"session.timeout.ms", "10000"},
        {"allow.auto.create.topics", "false"}, /* see DESIGN: a typo is no new topic */
    };
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        if (conf_set(conf, defaults[i][0], defaults[i][1], errstr, errstr_size) != 0) {
            goto fail;
        }
    }
    for (int i = 0; i < opts->n_conf; i++) {
        if (conf_set(conf, opts->conf_key[i], opts->conf_val[i], errstr, errstr_size) != 0) {
            goto fail;
        }
    }
    if (conf_set(conf, "group.id", opts->group_id, errstr, errstr_size) != 0 ||
        conf_set(conf, "enable.auto.offset.store", "false", errstr, errstr_size) != 0 ||
        conf_set(conf, "enable.partition.eof", "false", errstr, errstr_size) != 0) {
        goto fail;
    }
    rd_kafka_conf_set_opaque(conf, src);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_stats_cb(conf, stats_cb);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    src->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!src->rk) {
        snprintf(errstr, errstr_size, "kafka consumer: %s", err);
        goto fail; /* conf is still ours on failure */
    }
    conf = NULL; /* rd_kafka_new() took ownership */
    rd_kafka_poll_set_consumer(src->rk);

    /* Dead-letter producer: same connection properties, idempotent, acks=all. */
    conf = rd_kafka_conf_new();
    for (int i = 0; i < opts->n_conf; i++) {
        if (consumer_only(opts->conf_key[i])) {
            continue;
        }
        if (conf_set(conf, opts->conf_key[i], opts->conf_val[i], errstr, errstr_size) != 0) {
            goto fail;
        }
    }
    if (conf_set(conf, "enable.idempotence", "true", errstr, errstr_size) != 0 ||
        conf_set(conf, "linger.ms", "5", errstr, errstr_size) != 0) {
        goto fail;
    }
    rd_kafka_conf_set_opaque(conf, src);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    src->dlq = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!src->dlq) {
        snprintf(errstr, errstr_size, "kafka dead-letter producer: %s", err);
        goto fail;
    }
    conf = NULL;
    if (!(src->dlq_name = strdup(opts->dlq_topic))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    /* Subscribe now only when the user lets the cluster create the topic; otherwise the
     * first poll() looks for it (see DESIGN). */
    for (int i = 0; i < opts->n_conf; i++) {
        if (!strcmp(opts->conf_key[i], "allow.auto.create.topics") &&
            !strcmp(opts->conf_val[i], "true") && subscribe(src, errstr, errstr_size) != 0) {
            goto fail;
        }
    }
    snprintf(src->errstr, sizeof(src->errstr), "ok");
    return src;

fail:
    if (conf) {
        rd_kafka_conf_destroy(conf);
    }
    smm_kafka_source_destroy(src);
    return NULL;
}

void smm_kafka_source_close(struct smm_kafka_source *src)
{
    /* Stopped while the coordinator did not answer (see check_own_commits): leaving the
     * group would wait for it too; the group notices the departure by the session timeout.
     * The final flush came before this call, so nothing counted is left. */
    if (src && src->rk && !src->unchecked) {
        if (src->to_commit && src->to_commit->cnt > 0) {
            rd_kafka_commit(src->rk, src->to_commit, 0); /* last lag figure, synchronously */
            rd_kafka_topic_partition_list_destroy(src->to_commit);
            src->to_commit = NULL;
        }
        rd_kafka_consumer_close(src->rk);
    }
}

void smm_kafka_source_destroy(struct smm_kafka_source *src)
{
    if (!src) {
        return;
    }
    if (src->dlq) {
        /* Stopping: the caller already waited (bounded); what is left is produced again
         * by the next start, so drop it instead of waiting for a broker that went away. */
        for (int waited = 0; src->dlq_outstanding > 0 && waited < 10000 && !stopping(src);
             waited += 100) {
            rd_kafka_flush(src->dlq, 100);
        }
        if (src->dlq_outstanding > 0) {
            rd_kafka_purge(src->dlq, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_poll(src->dlq, 0);
        }
    }
    if (src->dlq_topic) {
        rd_kafka_topic_destroy(src->dlq_topic);
    }
    if (src->dlq) {
        rd_kafka_destroy(src->dlq);
    }
    if (src->rk) {
        rd_kafka_destroy_flags(src->rk, src->unchecked ? RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE : 0);
    }
    if (src->to_commit) {
        rd_kafka_topic_partition_list_destroy(src->to_commit);
    }
    free(src->topic);
    free(src->dlq_name);
    free(src);
}

const char *smm_kafka_source_errstr(const struct smm_kafka_source *src)
{
    return src->errstr;
}

int smm_kafka_source_assigned(const struct smm_kafka_source *src)
{
    return src->assigned;
}

const char *smm_kafka_source_problem(const struct smm_kafka_source *src)
{
    if (src->brokers_down) {
        return "Kafka brokers unreachable (check kafka.bootstrap.servers)";
    }
    if (src->topic_missing) {
        return "Kafka topic does not exist (check topic)";
    }
    return NULL;
}

static int deliver(struct smm_kafka_source *src, rd_kafka_message_t *m,
                   void (*on_msg)(void *, const struct smm_kafka_msg *), void *opaque)
{
    if (src->unchecked) {
        rd_kafka_message_destroy(m); /* see check_own_commits */
        return 0;
    }
    if (m->err) {
        int unknown = m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                      m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        if (unknown && !src->topic_missing) {
            src->topic_missing = 1; /* deleted while subscribed: say it once */
            logf_(src, SMM_LOG_ERROR, "topic \"%s\" does not exist on the Kafka cluster: %s",
                  src->topic, rd_kafka_message_errstr(m));
        } else if (!unknown && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            logf_(src, SMM_LOG_WARN, "consume: %s", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
        return 0;
    }
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    struct smm_kafka_msg msg = {
        .payload = m->payload,
        .len = m->len,
        .key = m->key,
        .key_len = m->key_len,
        .topic = rd_kafka_topic_name(m->rkt),
        .partition = m->partition,
        .offset = m->offset,
        .timestamp_ms = tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts,
    };
    on_msg(opaque, &msg);
    rd_kafka_message_destroy(m);
    return 1;
}

int smm_kafka_source_poll(struct smm_kafka_source *src, int timeout_ms, int max_msgs,
                          void (*on_msg)(void *opaque, const struct smm_kafka_msg *msg),
                          void *opaque)
{
    int n = 0;
    rd_kafka_poll(src->dlq, 0); /* serve dead-letter delivery reports */
    commit_stored(src, 0);
    if ((!src->subscribed || src->brokers_down) && now_ms() >= src->next_check_ms &&
        (timeout_ms >= 20 || !src->subscribed)) {
        probe(src, timeout_ms > 0 ? timeout_ms : 1); /* spends the wait it was given */
        timeout_ms = 0;
    }
    rd_kafka_message_t *m = rd_kafka_consumer_poll(src->rk, timeout_ms);
    while (m) {
        n += deliver(src, m, on_msg, opaque);
        if (n >= max_msgs) {
            break;
        }
        m = rd_kafka_consumer_poll(src->rk, 0);
    }
    return src->fatal ? -1 : n;
}

int smm_kafka_source_seek(struct smm_kafka_source *src, const char *topic, int32_t partition,
                          int64_t offset)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(src->rk, topic, NULL);
    if (!rkt) {
        return -1;
    }
    rd_kafka_resp_err_t e =
        rd_kafka_seek(rkt, partition, offset < 0 ? RD_KAFKA_OFFSET_BEGINNING : offset, 5000);
    rd_kafka_topic_destroy(rkt);
    if (e) {
        logf_(src, SMM_LOG_WARN, "seek %s [%d] to %lld: %s", topic, partition, (long long)offset,
              rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

int smm_kafka_source_low_watermark(struct smm_kafka_source *src, const char *topic,
                                   int32_t partition, int timeout_ms, int64_t *low)
{
    int64_t lo = -1, hi = -1;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(src->rk, topic, partition, &lo, &hi, timeout_ms);
    if (e) {
        logf_(src, SMM_LOG_WARN, "watermarks of %s [%d]: %s", topic, partition,
              rd_kafka_err2str(e));
        return -1;
    }
    *low = lo;
    return 0;
}

int smm_kafka_source_high_cached(struct smm_kafka_source *src, const char *topic,
                                 int32_t partition, int64_t *high)
{
    int64_t lo = -1, hi = -1;
    if (rd_kafka_get_watermark_offsets(src->rk, topic, partition, &lo, &hi) ||
        hi == RD_KAFKA_OFFSET_INVALID) {
        return -1;
    }
    *high = hi;
    return 0;
}

void smm_kafka_source_store(struct smm_kafka_source *src, const char *topic, int32_t partition,
                            int64_t next_offset)
{
    if (!src->to_commit) {
        src->to_commit = rd_kafka_topic_partition_list_new(16);
    }
    rd_kafka_topic_partition_t *p =
        rd_kafka_topic_partition_list_find(src->to_commit, topic, partition);
    if (!p) {
        p = rd_kafka_topic_partition_list_add(src->to_commit, topic, partition);
        p->metadata = strdup(COMMIT_MARK); /* freed with the list */
        p->metadata_size = p->metadata ? strlen(COMMIT_MARK) : 0;
    }
    p->offset = next_offset;
}

/* Commits the stored offsets at most once a second (asynchronously; a commit for a
 * partition we no longer own fails harmlessly). */
static void commit_stored(struct smm_kafka_source *src, int force)
{
    int64_t now = now_ms();
    if (!src->to_commit || src->to_commit->cnt == 0 || (!force && now - src->last_commit_ms < 1000)) {
        return;
    }
    rd_kafka_commit(src->rk, src->to_commit, 1);
    rd_kafka_topic_partition_list_destroy(src->to_commit);
    src->to_commit = NULL;
    src->last_commit_ms = now;
}

void smm_kafka_source_pause(struct smm_kafka_source *src, int pause)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(src->rk, &l) || !l) {
        return;
    }
    if (pause) {
        rd_kafka_pause_partitions(src->rk, l);
    } else {
        rd_kafka_resume_partitions(src->rk, l);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

int smm_kafka_source_dead_letter(struct smm_kafka_source *src, const struct smm_kafka_msg *msg,
                                 const char *reason, const char *detail)
{
    if (!src->dlq_topic && !(src->dlq_topic = rd_kafka_topic_new(src->dlq, src->dlq_name, NULL))) {
        logf_(src, SMM_LOG_ERROR, "dead-letter topic %s: %s", src->dlq_name,
              rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    char part[16], off[24];
    snprintf(part, sizeof(part), "%d", (int)msg->partition);
    snprintf(off, sizeof(off), "%lld", (long long)msg->offset);
    rd_kafka_resp_err_t e;
    for (int attempt = 0;; attempt++) {
        e = rd_kafka_producev(
            src->dlq, RD_KAFKA_V_RKT(src->dlq_topic),
            RD_KAFKA_V_VALUE((void *)msg->payload, msg->len),
            RD_KAFKA_V_KEY((void *)msg->key, msg->key_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER("smm.reason", reason, -1), RD_KAFKA_V_HEADER("smm.detail", detail, -1),
            RD_KAFKA_V_HEADER("smm.topic", msg->topic, -1), RD_KAFKA_V_HEADER("smm.partition", part, -1),
            RD_KAFKA_V_HEADER("smm.offset", off, -1), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || attempt > 100) {
            break;
        }
        rd_kafka_poll(src->dlq, 10);
    }
    if (e) {
        logf_(src, SMM_LOG_ERROR, "dead-letter produce: %s", rd_kafka_err2str(e));
        return -1;
    }
    src->dlq_outstanding++;
    return 0;
}

int64_t smm_kafka_source_dlq_outstanding(const struct smm_kafka_source *src)
{
    return src->dlq_outstanding;
}

int smm_kafka_source_dlq_wait(struct smm_kafka_source *src, int timeout_ms)
{
    if (src->dlq_outstanding > 0) {
        rd_kafka_flush(src->dlq, timeout_ms);
    } else {
        rd_kafka_poll(src->dlq, 0);
    }
    if (src->dlq_failed) {
        src->dlq_failed = 0;
        return -1;
    }
    return src->dlq_outstanding > 0 ? 1 : 0;
}
