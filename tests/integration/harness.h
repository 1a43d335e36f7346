/* tests/integration/harness.h - real services for integration tests.
 *
 * Starts a private redis-server on a free port and a Kafka that speaks the real protocol:
 * the broker named by SMMT_BOOTSTRAP (a real Apache Kafka started by .ci/run), or else
 * our librdkafka mock cluster (smm-mock-kafka) in its own process. Spawns smm-processor
 * and kills it; produces and consumes messages with librdkafka directly. */
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

#endif
