/* connectors/http_server.h - the embedded HTTP server (libmicrohttpd): health, readiness,
 * Prometheus metrics, Server-Sent Events, the JSON API over Redis, the dashboard assets.
 *
 * The server knows nothing of the processor: what the loop knows reaches it through
 * struct smm_http_ops (function + opaque pointer, called from the server's threads), and
 * it reads Redis itself on connections it owns. Routes and shapes: docs/api.md. */
#ifndef SMM_CONNECTORS_HTTP_SERVER_H
#define SMM_CONNECTORS_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "connectors/kafka_source.h" /* enum smm_log_level */

/* Called from the HTTP threads, concurrently: each must be thread-safe. */
struct smm_http_ops {
    void *opaque;
    /* Each returns a malloc'd NUL-terminated document (caller frees), or NULL on OOM. */
    /* Prometheus text exposition. open_threads: the server's own reading of Redis (sum of
     * HVALS <prefix>rt:open, the open waits of every account), -1 when Redis could not
     * be read: the gauge smm_open_threads shows it, or is left out. */
    char *(*metrics)(void *opaque, int64_t open_threads);
    char *(*summary)(void *opaque); /* the JSON object of /api/v1/summary */
    /* 1 when ready; otherwise 0 and why holds the reasons, separated by "; ". */
    int (*ready)(void *opaque, char *why, size_t why_size);
    /* Milliseconds since the processor's loop last went round, or -1 before its first
     * round. NULL: /healthz checks no heartbeat. */
    int64_t (*heartbeat_age_ms)(void *opaque);
};

/* One competitor set for share of voice (config sov.set.<name> = "brandA,brandB,..."). */
struct smm_http_sov_set {
    const char *name;
    const char *const *brands; /* n_brands account ids, in the config's order */
    int n_brands;
};

struct smm_http_opts {
    const char *address; /* IPv4 or IPv6 literal to bind */
    int port;            /* 0 = ephemeral (see smm_http_server_port()) */
    const char *token;   /* NULL or "" = no authentication */
    int max_connections; /* <= 0: 64 */
    int max_per_ip;      /* connections from one client address at once; <= 0: no limit */
    /* A connection gets this long for a request's headers, counted from its accept or from
     * the end of its previous request, then is closed (<= 0: only the 30 s idle timeout). */
    int header_timeout_ms;
    /* /healthz answers 503 when ops.heartbeat_age_ms is older than this (<= 0: never). */
    int64_t health_max_age_ms;
    /* Without a token, the Host names (no port; case-insensitive) accepted besides IP
     * literals and "localhost": a comma-separated list, NULL or "" = none. With a token,
     * every Host is accepted. */
    const char *allowed_hosts;
    const char *prefix;  /* Redis key prefix, e.g. "smm:" */
    const char *redis_host;
    int redis_port;
    const char *redis_unix_socket; /* NULL or "" = TCP */
    int redis_db;
    const char *redis_username;
    const char *redis_password;
    int redis_timeout_ms; /* connect and reply timeout of the API's Redis calls */
    const char *const *windows; /* window labels ("5m", "1h", "24h"), n_windows of them */
    int n_windows;
    const char *const *metrics; /* field suffixes read per entity ("impression", ...) */
    int n_metrics;
    /* GET /api/v1/sov: the configured competitor sets (processor/config.h sov_sets); a set
     * not listed here answers 404. NULL/0 = none. */
    const struct smm_http_sov_set *sov_sets;
    int n_sov_sets;
    /* GET /api/v1/goals: the ids of the configured goals (config goal.<id>.*), in the order
     * to list them; each is read from the hash <prefix>goal:<id>. NULL/0 = none. */
    const char *const *goal_ids;
    int n_goals;
    /* GET /api/v1/kpis: how long the processor keeps an account's hour reach sketches
     * after the hour's end (the longest window + window.grace_ms, in minutes; <= 0: 1500)
     * and, for /kpis and /series, day buckets (days.keep; <= 0: 400), so a span whose
     * sketches or buckets are gone is answered null, never a partial figure. (Minute and
     * hour counter buckets are kept 180 minutes / 192 hours: docs/redis-keys.md.) */
    int64_t keep_minutes;
    int64_t days_keep;
    struct smm_http_ops ops;
    void (*log)(void *opaque, enum smm_log_level level, const char *msg); /* thread-safe */
};

struct smm_http_server;

/* Copies opts (strings, lists, competitor sets and goal ids included) and starts
 * listening: thread per connection, at most max_connections at once (max_per_ip of them
 * from one address), each closed when its request headers are not complete within
 * header_timeout_ms. Returns NULL with
 * errstr (never containing a secret). */
struct smm_http_server *smm_http_server_start(const struct smm_http_opts *opts, char *errstr,
                                              size_t errstr_size);
/* The port it listens on (the chosen one when opts.port was 0). */
int smm_http_server_port(const struct smm_http_server *srv);
/* Ends open event streams (within about a second), stops, frees. NULL is a no-op. */
void smm_http_server_stop(struct smm_http_server *srv);

/* Decodes %XX escapes (and '+' when plus is set) of s[0..len) into out (room for len
 * bytes). Returns the decoded length, or -1 on a malformed escape. Pure; for tests. */
long smm_http_url_decode(const char *s, size_t len, char *out, int plus);

/* 1 when a request with this Host header may be answered by a server without a token:
 * host NULL (HTTP/1.0 without Host), an IPv4 or bracketed IPv6 literal, "localhost", or a
 * name of the comma-separated allowed list (NULL = none), each with or without ":port".
 * Any other name may be a DNS-rebinding page (docs/security.md). Pure; for tests. */
int smm_http_host_allowed(const char *host, const char *allowed);

#endif
