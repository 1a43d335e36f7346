/* processor/status.h - what the loop knows, readable by other threads (the HTTP server).
 *
 * The loop is single-threaded and must never wait for a reader, so it keeps its own
 * counters as before and copies them here under a mutex at most every 100 ms (and once
 * per flush for the latency histogram). Readers take a snapshot (a copy, under the same
 * mutex, held for microseconds) and render it without the lock. Rendering a snapshot as
 * Prometheus text, as the summary JSON or as readiness reasons is pure: no clock, no I/O.
 *
 * Other work streams feed the gauges and counters that are not the loop's own (alerts by
 * kind, tracked cascades) through the same handle; until they do, those read 0. Open
 * threads are Redis' figure: the HTTP server reads <prefix>rt:open on each scrape and
 * /metrics shows that, not what smm_status_set_open_threads() set (kept for renderers'
 * tests). All functions are thread-safe; the *_begin/_part/_end trio is for one thread at
 * a time (the loop). */
#ifndef SMM_PROCESSOR_STATUS_H
#define SMM_PROCESSOR_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "processor/config.h"
#include "processor/event_json.h"

struct smm_http_server;

#define SMM_STATUS_BUCKETS 12 /* flush latency histogram bounds; +Inf is one more bucket */
#define SMM_STATUS_MAX_KINDS 16
#define SMM_STATUS_KIND_MAX 32

/* Upper bounds, in seconds, of the flush latency buckets (Prometheus `le`). */
extern const double smm_status_flush_le[SMM_STATUS_BUCKETS];

struct smm_status_part {
    char topic[256];
    int32_t partition;
    int64_t lag;    /* consumer lag from librdkafka statistics, -1 unknown */
    int64_t offset; /* next offset stored in Redis, -1 none */
};

/* The loop's counters, copied by smm_status_begin(). */
struct smm_status_counts {
    int64_t consumed;      /* Kafka messages read */
    int64_t counted;       /* events stored in Redis */
    int64_t dead_lettered; /* messages stored as dead letters */
    int64_t rejects[SMM_REJECT__COUNT];
    int64_t late;          /* events folded 60 s or more behind the clock (pipeline.h) */
    int64_t flushes, flush_failures;
    int64_t redis_errors;  /* failed Redis calls (the sink's count) */
    int64_t redis_retries; /* flush rounds that failed and were scheduled again */
    int redis_up;          /* the loop's Redis connection is up */
    int paused;            /* consumption paused because Redis refuses writes */
    int partitions;        /* partitions assigned */
    char kafka_problem[96]; /* "" or why Kafka gives nothing (brokers, topic): a /readyz reason */
};

/* A consistent copy of everything, owned by the reader. */
struct smm_status_snap {
    int started; /* the loop has published at least once */
    struct smm_status_counts c;
    int64_t flush_bucket[SMM_STATUS_BUCKETS + 1]; /* per bucket, not cumulative; last = +Inf */
    int64_t flush_count;
    double flush_sum_s;
    double events_per_sec; /* consumed, over the last second or so */
    double flush_ms_recent; /* mean flush latency over the last second or so with flushes */
    int64_t lag_total;      /* sum of the known, positive lags */
    int lag_known;          /* some partition's lag is known and Kafka is reachable */
    struct smm_status_part *parts; /* n_parts entries; freed by smm_status_snap_free() */
    int n_parts;
    char kind[SMM_STATUS_MAX_KINDS][SMM_STATUS_KIND_MAX]; /* alerts emitted, by kind */
    int64_t kind_n[SMM_STATUS_MAX_KINDS];
    int n_kinds;
    int64_t open_threads;     /* -1 = unknown: smm_open_threads is left out */
    int64_t tracked_cascades;
    int64_t rss_bytes; /* filled by the caller before rendering (-1 unknown) */
};

struct smm_status;

/* Returns NULL on out-of-memory. */
struct smm_status *smm_status_new(void);
void smm_status_destroy(struct smm_status *st);

/* Loop side. begin() locks, copies c and starts a new partition list; part() adds one
 * partition; end() unlocks. now_ms drives events_per_sec. */
void smm_status_begin(struct smm_status *st, const struct smm_status_counts *c, int64_t now_ms);
void smm_status_part(struct smm_status *st, const char *topic, int32_t partition, int64_t lag,
                     int64_t offset);
void smm_status_end(struct smm_status *st);
/* One flush took us microseconds (the latency histogram). */
void smm_status_flush(struct smm_status *st, int64_t us);

/* Fed by other streams: n more alerts of this kind (at most SMM_STATUS_MAX_KINDS kinds,
 * names truncated to SMM_STATUS_KIND_MAX - 1 bytes), and the current gauge values. */
void smm_status_alert(struct smm_status *st, const char *kind, int64_t n);
void smm_status_set_open_threads(struct smm_status *st, int64_t n);
void smm_status_set_tracked_cascades(struct smm_status *st, int64_t n);

/* The loop went round at mono_ms (CLOCK_MONOTONIC, ms): called every iteration, a
 * lock-free atomic store. /healthz reports the age of the last one and fails past
 * http.health_max_age_ms, so a stuck loop shows as an unhealthy process. */
void smm_status_heartbeat(struct smm_status *st, int64_t mono_ms);

/* Copies the status into out (rss_bytes = -1). Returns SMM_OK, or SMM_ERR on
 * out-of-memory (out is then empty but valid). Free with smm_status_snap_free(). */
int smm_status_snapshot(struct smm_status *st, struct smm_status_snap *out);
void smm_status_snap_free(struct smm_status_snap *snap);

/* Pure renderers. Each returns a malloc'd NUL-terminated text (caller frees), or NULL on
 * out-of-memory. */
/* Prometheus text exposition format 0.0.4: every metric of CONTRACTS.md with HELP/TYPE. */
char *smm_status_render_prometheus(const struct smm_status_snap *s, const char *version);
/* The JSON object of GET /api/v1/summary, stamped ts_ms. */
char *smm_status_render_summary(const struct smm_status_snap *s, int64_t ts_ms);
/* 1 when ready (partitions assigned, Redis up, not paused, no Kafka problem); otherwise 0
 * and why holds the reasons separated by "; ". */
int smm_status_ready(const struct smm_status_snap *s, char *why, size_t why_size);

/* Starts the HTTP server of cfg's http.* keys on top of this status (reads Redis with its
 * own connections) and logs the address it listens on. Returns NULL with errstr on
 * failure. Stop it with smm_http_server_stop() before destroying st. */
struct smm_http_server *smm_status_serve(struct smm_status *st, const struct smm_config *cfg,
                                         char *errstr, size_t errstr_size);

#endif
