/* tests/integration/harness.h - real services for integration tests.
 *
 * Starts a private redis-server on a free port and a Kafka that speaks the real protocol:
 * the broker named by SMMT_BOOTSTRAP (a real Apache Kafka started by .ci/run), or else
 * our librdkafka mock cluster (smm-mock-kafka) in its own process. Spawns smm-processor
 * and kills it; produces and consumes messages with librdkafka directly; reads an entity's
 * counters the way readers do, through the Function library smm (h_entity_*). */
#ifndef SMM_TESTS_HARNESS_H
#define SMM_TESTS_HARNESS_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct h_redis {
    pid_t pid;
    int port;
    int aof;
    char dir[256];
};

struct h_kafka {
    pid_t pid; /* 0 for an external broker */
    char bootstrap[256];
    char topic[128];
    char dlq[160];
};

struct h_msg {
    char *key;
    char *payload;
    size_t len;
};

int h_free_port(void);
int64_t h_now_ms(void);
/* Creates a fresh directory for one test's files. */
void h_tmpdir(char *out, size_t size, const char *name);

/* Starts redis-server (AOF everysec when aof). Waits until it answers PING. */
void h_redis_start(struct h_redis *r, int aof);
/* Restarts on the same port and directory (data comes back from the AOF). */
void h_redis_restart(struct h_redis *r);
void h_redis_kill(struct h_redis *r, int sig);
void h_redis_stop(struct h_redis *r);
redisContext *h_redis_connect(const struct h_redis *r);

/* Unique topic (prefix + counter + pid) with `partitions` partitions and its .dlq. */
void h_kafka_start(struct h_kafka *k, const char *prefix, int partitions);
void h_kafka_stop(struct h_kafka *k);
/* Produces msgs in order and waits for every acknowledgement. */
void h_produce(const struct h_kafka *k, const char *topic, const struct h_msg *msgs, size_t n);
/* Consumes a whole topic from the beginning (until idle_ms without messages).
 * Returns the count; calls each(opaque, payload, len, reason_header) for every message. */
size_t h_consume_all(const struct h_kafka *k, const char *topic, int idle_ms,
                     void (*each)(void *opaque, const char *payload, size_t len,
                                  const char *reason),
                     void *opaque);

/* Starts smm-processor with the common test flags plus extra "--set k=v" pairs
 * (NULL-terminated). Output goes to logfile. */
pid_t h_processor_start(const struct h_kafka *k, const struct h_redis *r, const char *logfile,
                        const char *const *extra);
/* Waits for exit; returns the exit status (or 128+signal). timeout_ms <= 0 waits forever. */
int h_wait(pid_t pid, int timeout_ms);
void h_sleep_ms(int ms);

/* JSON lines file to messages keyed by content_id (or account_id). */
struct h_msg *h_load_jsonl(const char *path, size_t *n_out);
void h_free_msgs(struct h_msg *msgs, size_t n);
/* Runs a shell command; aborts the test if it fails. */
void h_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- streaming producer (added for tests/integration/test_faults.c) ----
 * One long-lived idempotent producer that a background thread can feed while the test's
 * main thread injects faults: it never asserts (Criterion asserts must stay on the main
 * thread), survives a broker outage (librdkafka retries until message.timeout.ms, 300 s),
 * and records where every message landed: part[idx] / off[idx] are filled by the delivery
 * report of message idx (written with __atomic stores; -1 until delivered). */
struct h_stream;
/* NULL on failure (err filled). part and off must hold every idx the caller will send. */
struct h_stream *h_stream_new(const struct h_kafka *k, const char *topic, int32_t *part,
                              int64_t *off, char *err, size_t err_size);
/* Queues a copy of m as message idx (waits while the local queue is full). 0 or -1. */
int h_stream_send(struct h_stream *s, const struct h_msg *m, size_t idx);
/* Serves delivery reports for up to ms milliseconds. */
void h_stream_poll(struct h_stream *s, int ms);
/* Waits until everything queued is acknowledged. Returns the number of failed deliveries
 * so far, or -1 when timeout_ms passed first. */
int64_t h_stream_flush(struct h_stream *s, int timeout_ms);
/* Acknowledged (ok) deliveries so far; safe from any thread. */
int64_t h_stream_delivered(const struct h_stream *s);
void h_stream_destroy(struct h_stream *s);

/* ---- authenticated Redis, processor with arguments and environment (added for
 * tests/integration/test_security.c) ---- */
/* Like h_redis_start(r, 0) with extra redis-server arguments (NULL-terminated), e.g.
 * {"--requirepass", pw, NULL}. Ready when PING gets any reply (NOAUTH included). */
void h_redis_start_args(struct h_redis *r, const char *const *args);
/* Connects and authenticates (AUTH password, or AUTH user password when user is set). */
redisContext *h_redis_connect_auth(const struct h_redis *r, const char *user,
                                   const char *password);
/* Like h_processor_start, but k and/or r may be NULL (no --brokers/--topic and common
 * kafka settings, or no --redis), sets are "k=v" passed as --set, args are raw arguments
 * appended last (e.g. "-c", file, "--print-config"), and the processor's environment has
 * no inherited SMM_* variable, only those in env ("NAME=VALUE"). All lists NULL-terminated
 * or NULL. stdout and stderr go to logfile. */
pid_t h_processor_start_ex(const struct h_kafka *k, const struct h_redis *r, const char *logfile,
                           const char *const *sets, const char *const *args,
                           const char *const *env);
/* A whole file, NUL-terminated ("" when it cannot be read); *len_out may be NULL. Free it. */
char *h_read_file(const char *path, size_t *len_out);

/* ---- counters (docs/redis-keys.md, "Counters: one hash per entity"): reading them the way
 * a dashboard does, through the Function library smm, so no test builds the call itself.
 * prefix is the key prefix ("smm:"), entity "<kind>:<id>" ("a:acct-1", "s:acct|newsletter"),
 * window "total" or "<n>m" / "<n>h" / "<n>d". minute is the minute (epoch_ms / 60000) the
 * window ends at; pass it whenever the test's event times are synthetic, so the figure does
 * not depend on the wall clock; minute < 0 reads at the Redis server's clock. ---- */
/* One metric of the window (FCALL smm_get): 0 when absent (a metric that is absent is 0);
 * a derived rate (er_impr, er_reach) gives its integer part. */
int64_t h_entity_get(redisContext *c, const char *prefix, const char *entity,
                     const char *window, int64_t minute, const char *metric);
/* Every metric smm_get returns for the window: each(opaque, metric, value as text). Returns
 * how many. */
size_t h_entity_each(redisContext *c, const char *prefix, const char *entity, const char *window,
                     int64_t minute,
                     void (*each)(void *opaque, const char *metric, const char *value),
                     void *opaque);
/* The key of the entity's counter hash, "<prefix>{<N>}:<entity>": N from SHA-1 of the entity
 * and the shard count in <prefix>meta (field shards, which must exist). */
void h_entity_key(redisContext *c, const char *prefix, const char *entity, char *out,
                  size_t size);
/* One metric of one raw bucket field of the hash ("t", "m<minute>", "h<hour>"), parsed from
 * its packed "name=value,..." text: 0 when the field or the metric is absent. */
int64_t h_entity_field(redisContext *c, const char *prefix, const char *entity,
                       const char *field, const char *metric);
/* Every entity with a counter hash under prefix (SCAN, so only for a test's own Redis):
 * each(opaque, entity). Returns how many. */
size_t h_entities(redisContext *c, const char *prefix,
                  void (*each)(void *opaque, const char *entity), void *opaque);

#endif
