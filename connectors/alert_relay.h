/* connectors/alert_relay.h - copies the Redis alerts stream into the Kafka alerts topic,
 * exactly once (each alert_id once, in stream order), across kill -9 and several processes.
 *
 * The processor writes every alert into the capped stream <prefix>alerts atomically with
 * its counters. This relay reads that stream and produces each entry to the alerts topic
 * in Kafka transactions; the resume point is read back from the topic itself. The design
 * and its limits are in the comment atop alert_relay.c and in docs/alerts.md.
 *
 * Not thread-safe: one relay per thread. All work happens inside smm_alert_relay_poll(),
 * which is bounded (opts.budget_ms, plus at most one Redis timeout) so it can run from the
 * caller's wall-clock tick. */
#ifndef SMM_CONNECTORS_ALERT_RELAY_H
#define SMM_CONNECTORS_ALERT_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "connectors/kafka_source.h" /* enum smm_log_level */
#include "connectors/redis_sink.h"   /* struct smm_redis_opts */
#include "connectors/sink.h"         /* SMM_SINK_OK, _RETRY, _ERROR */

/* Test seam: where smm_alert_relay_poll() calls opts.hook (tests kill the process there). */
enum smm_alert_relay_point {
    SMM_ALERT_RELAY_PRODUCED,  /* a batch is produced in an open transaction, not committed */
    SMM_ALERT_RELAY_COMMITTED, /* the transaction of a batch is committed */
};

struct smm_alert_relay_opts {
    const char *topic;    /* the Kafka alerts topic */
    const char *prefix;   /* stream <prefix>alerts, lease key <prefix>alerts:relay */
    const char *group_id; /* transactional.id is "<group_id>.alerts-relay": one per deployment */
    int n_conf;           /* kafka.* pass-through properties, as for the source */
    char *const *conf_key;
    char *const *conf_val;
    struct smm_redis_opts redis; /* copied; the relay opens its own connection */
    int batch_max;        /* entries per transaction; 0 = 500 */
    int budget_ms;        /* time one poll may spend on Kafka calls; 0 = 250 */
    int poll_interval_ms; /* how often the caller polls; the lease lasts max(10 s, 5x this) */
    int lease_ms;         /* > 0: the lease lasts exactly this long instead (tests) */
    const char *instance; /* lease holder name for logs; NULL = host/pid/random */
    void *opaque;         /* passed to log and hook */
    void (*log)(void *opaque, enum smm_log_level level, const char *msg);
    void (*hook)(void *opaque, enum smm_alert_relay_point at, int64_t n); /* tests; may be NULL */
};

struct smm_alert_relay;

/* Copies opts. Creates the Kafka handles lazily (only once the stream exists and this
 * process holds the lease) and does not connect to Redis yet. Returns NULL with errstr
 * ("kafka.<key>: ...") on a bad kafka.* property or out of memory. Free with
 * smm_alert_relay_destroy(). */
struct smm_alert_relay *smm_alert_relay_new(const struct smm_alert_relay_opts *o, char *errstr,
                                            size_t n);
/* Does a bounded amount of work: take or renew the lease, (re)initialise the transactional
 * producer, find the resume point in the topic, relay batches. now_ms is the caller's wall
 * clock (used for retry timing only). *relayed (may be NULL) gets the number of alerts
 * committed to Kafka by this call. Returns SMM_SINK_OK (including "standby: another
 * process relays" and "nothing to do"), SMM_SINK_RETRY after a transient failure (it is
 * retried by a later poll, with backoff), or SMM_SINK_ERROR when retrying cannot help
 * (Redis refused our commands, Kafka refused our credentials); errstr says why, and later
 * polls keep trying at the slowest backoff. */
int smm_alert_relay_poll(struct smm_alert_relay *r, int64_t now_ms, int64_t *relayed);
/* The last error ("ok" when none), for logs and /healthz. Never contains a password. */
const char *smm_alert_relay_errstr(const struct smm_alert_relay *r);
/* 1 while this process holds the lease and relays, else 0. */
int smm_alert_relay_active(const struct smm_alert_relay *r);
/* Finishes a commit in progress (up to 5 s), aborts an open transaction, releases the
 * lease so another process can take over at once, and frees everything. NULL is a no-op. */
void smm_alert_relay_destroy(struct smm_alert_relay *r);

#endif
