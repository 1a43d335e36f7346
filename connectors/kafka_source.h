/* connectors/kafka_source.h - the Kafka consumer (input) and dead-letter producer.
 *
 * Offsets are not Kafka's business here: the state store (Redis) holds each partition's
 * next offset, written atomically with the counters. On assignment the source asks the
 * caller where each partition starts (on_assign), and the caller calls
 * smm_kafka_source_store() only after a flush is confirmed; Kafka commits of those stored
 * offsets happen in the background and serve lag monitoring only.
 * All callbacks run inside smm_kafka_source_poll() on the caller's thread. */
#ifndef SMM_CONNECTORS_KAFKA_SOURCE_H
#define SMM_CONNECTORS_KAFKA_SOURCE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define SMM_KAFKA_OFFSET_DEFAULT (-1001) /* committed offset, else auto.offset.reset */

enum smm_log_level { SMM_LOG_DEBUG, SMM_LOG_INFO, SMM_LOG_WARN, SMM_LOG_ERROR };

struct smm_kafka_msg {
    const void *payload;
    size_t len;
    const void *key;
    size_t key_len;
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /* -1 when the message has none */
};

struct smm_kafka_callbacks {
    void *opaque;
    /* A partition was assigned: set *offset to where consumption starts (an offset, or
     * SMM_KAFKA_OFFSET_DEFAULT). */
    void (*on_assign)(void *opaque, const char *topic, int32_t partition, int64_t *offset);
    /* A partition is being taken away; lost = 1 when it was lost (session timeout,
     * fencing) and must not be flushed anymore. */
    void (*on_revoke)(void *opaque, const char *topic, int32_t partition, int lost);
    /* librdkafka statistics JSON (statistics.interval.ms). */
    void (*on_stats)(void *opaque, const char *json, size_t len);
    void (*log)(void *opaque, enum smm_log_level level, const char *msg);
};

struct smm_kafka_opts {
    const char *topic;
    const char *dlq_topic;
    const char *group_id;
    int n_conf; /* kafka.* pass-through properties */
    char *const *conf_key;
    char *const *conf_val;
    /* The process' stop flag (set by SIGTERM/SIGINT, 2 after a second signal), or NULL:
     * the waits inside the source (committed offsets on assignment, dead letters at
     * destroy) end early when it is set. */
    volatile sig_atomic_t *stop;
};

struct smm_kafka_source;

/* Creates the consumer (subscribed to opts->topic) and the dead-letter producer. Returns
 * NULL with errstr naming the offending property ("kafka.xyz: ...") on failure. */
struct smm_kafka_source *smm_kafka_source_new(const struct smm_kafka_opts *opts,
                                              const struct smm_kafka_callbacks *cb,
                                              char *errstr, size_t errstr_size);
/* Leaves the group (revoke callbacks run) and frees everything; NULL is a no-op. Waits up
 * to 10 s for unacknowledged dead letters, in 100 ms slices, unless the stop flag is set:
 * then they are dropped at once (the caller's own bounded wait came first; a dead letter
 * not acknowledged is never behind a stored offset, so the next start produces it again). */
void smm_kafka_source_destroy(struct smm_kafka_source *src);
/* Leaves the group cleanly; call before destroy when shutting down. */
void smm_kafka_source_close(struct smm_kafka_source *src);

/* Waits up to timeout_ms for the first message, then takes up to max_msgs without
 * waiting; calls on_msg for each. Returns the number delivered, or -1 after a fatal
 * client error (errstr via smm_kafka_source_errstr). */
int smm_kafka_source_poll(struct smm_kafka_source *src, int timeout_ms, int max_msgs,
                          void (*on_msg)(void *opaque, const struct smm_kafka_msg *msg),
                          void *opaque);
const char *smm_kafka_source_errstr(const struct smm_kafka_source *src);
/* Why nothing can be consumed, for /readyz: the brokers are unreachable, or the topic
 * does not exist (it is not created; the source subscribes when it appears). NULL when
 * neither is known. The text is static. */
const char *smm_kafka_source_problem(const struct smm_kafka_source *src);

/* Restarts consumption of a partition at offset (after a rejected flush). */
int smm_kafka_source_seek(struct smm_kafka_source *src, const char *topic, int32_t partition,
                          int64_t offset);
/* The partition's first offset still in the log (blocks up to timeout_ms). Returns 0, or
 * -1 when the broker did not answer. */
int smm_kafka_source_low_watermark(struct smm_kafka_source *src, const char *topic,
                                   int32_t partition, int timeout_ms, int64_t *low);
/* Records the next offset to commit for lag monitoring. */
/* The high watermark the last fetch reported (no broker call). Returns 0, or -1 when
 * none is known yet. */
int smm_kafka_source_high_cached(struct smm_kafka_source *src, const char *topic,
                                 int32_t partition, int64_t *high);
void smm_kafka_source_store(struct smm_kafka_source *src, const char *topic, int32_t partition,
                            int64_t next_offset);
/* Pauses (1) or resumes (0) every assigned partition. */
void smm_kafka_source_pause(struct smm_kafka_source *src, int pause);

/* Produces the original bytes of msg to the dead-letter topic with headers smm.reason,
 * smm.detail, smm.topic, smm.partition, smm.offset. Returns 0, or -1 if it could not
 * even be queued. */
int smm_kafka_source_dead_letter(struct smm_kafka_source *src, const struct smm_kafka_msg *msg,
                                 const char *reason, const char *detail);
/* Waits until every dead letter produced so far is acknowledged. Returns 0 when all were
 * delivered, -1 when any delivery failed since the last call (they must be produced
 * again), 1 on timeout. */
int smm_kafka_source_dlq_wait(struct smm_kafka_source *src, int timeout_ms);
/* Dead letters produced and not acknowledged yet. */
int64_t smm_kafka_source_dlq_outstanding(const struct smm_kafka_source *src);
/* Number of partitions currently assigned. */
int smm_kafka_source_assigned(const struct smm_kafka_source *src);

#endif
