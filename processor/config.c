/* processor/config.c - the key table and its parsers.
 *
 * One table (smm_config_keys[]) names every key with its type, default, bounds and help;
 * defaults go through the same parser as user input, so a bad default fails a test rather
 * than a deployment. kafka.* keys are collected verbatim for rd_kafka_conf_set(), except
 * the few the exactly-once design owns (see reserved_kafka[]), which are rejected.
 * Key families with an id in the middle (viral.account.<id>.<rule>,
 * response.account.<id>.<tz|hours|sla>, goal.<id>.<field>; the id runs to the last dot)
 * and sov.set.<name> have setters of their own that reuse the table's parsers. */
#include "processor/config.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/event.h"

enum cfg_type { CFG_STR, CFG_INT, CFG_DURATION, CFG_NUM, CFG_BOOL };

struct smm_config_key {
    const char *name;
    enum cfg_type type;
    const char *def;
    int64_t min, max;
    size_t off;
    const char *help;
};

#define OFF(f) offsetof(struct smm_config, f)
#define DAY_MS (24LL * 3600 * 1000)

static const struct smm_config_key keys[] = {
    {"topic", CFG_STR, "smm.events", 0, 0, OFF(topic), "Kafka topic to consume"},
    {"dlq_topic", CFG_STR, "", 0, 0, OFF(dlq_topic), "Dead-letter topic (default <topic>.dlq)"},
    {"group_id", CFG_STR, "smm-processor", 0, 0, OFF(group_id), "Kafka consumer group"},
    {"prefix", CFG_STR, "smm:", 0, 0, OFF(prefix), "Redis key namespace prefix"},
    {"redis.host", CFG_STR, "127.0.0.1", 0, 0, OFF(redis_host), "Redis host"},
    {"redis.port", CFG_INT, "6379", 1, 65535, OFF(redis_port), "Redis TCP port"},
    {"redis.unix_socket", CFG_STR, "", 0, 0, OFF(redis_unix_socket),
     "Redis unix socket path (overrides host/port)"},
    {"redis.db", CFG_INT, "0", 0, 15, OFF(redis_db), "Redis database number"},
    {"redis.shards", CFG_INT, "64", 1, 16384, OFF(redis_shards),
     "hash-tag shards of the per-entity keys; fixed for a prefix once written"},
    {"redis.cache_entities", CFG_INT, "50000", 1, 10000000, OFF(counters_cache_entries),
     "counter hashes the processor keeps a copy of (about 0.5 KB each), so a flush sends "
     "their new values instead of deltas Redis must add"},
    {"redis.cache_sketch_mb", CFG_INT, "64", 0, 65536, OFF(counters_cache_sketch_mb),
     "memory for the lifetime reach sketches (posts, accounts, segment values) kept with "
     "those hashes (0 = none), so a flush writes each sketch whole instead of sending its "
     "users to PFADD"},
    {"redis.username", CFG_STR, "", 0, 0, OFF(redis_username), "Redis ACL user (AUTH user pass)"},
    {"redis.password", CFG_STR, "", 0, 0, OFF(redis_password), "Redis password (secret)"},
    {"redis.password_file", CFG_STR, "", 0, 0, OFF(redis_password_file),
     "File holding the Redis password (first line)"},
    {"redis.timeout_ms", CFG_DURATION, "5000", 10, 600000, OFF(redis_timeout_ms),
     "Connect and command timeout"},
    {"flush.interval_ms", CFG_DURATION, "250", 1, 600000, OFF(flush_interval_ms),
     "Flush pre-aggregated deltas at least this often"},
    {"flush.max_interval_ms", CFG_DURATION, "2000", 1, 600000, OFF(flush_max_interval_ms),
     "While behind (a backlog), batch for up to this long"},
    {"flush.max_events", CFG_INT, "100000", 1, 100000000, OFF(flush_max_events),
     "...or when this many events are pending"},
    {"tick_ms", CFG_DURATION, "1000", 50, 60000, OFF(tick_ms),
     "Wall-clock tick: window retirement, reach refresh"},
    {"stats.interval_ms", CFG_DURATION, "10000", 0, 3600000, OFF(stats_interval_ms),
     "Stats line period (0 = off)"},
    {"windows", CFG_STR, "5m,1h,24h", 0, 0, OFF(windows),
     "Rolling windows, whole minutes (m, h, d suffixes)"},
    {"window.grace_ms", CFG_DURATION, "3600000", 0, 7 * DAY_MS, OFF(window_grace_ms),
     "Minute buckets live this long past the longest window"},
    {"retention_ms", CFG_DURATION, "0", 0, 3650 * DAY_MS, OFF(retention_ms),
     "Reject events older than this (0 = longest window; older than the buckets: lifetime "
     "and daily only)"},
    {"max_future_ms", CFG_DURATION, "300000", 0, DAY_MS, OFF(max_future_ms),
     "Reject events further than this in the future"},
    {"engagement", CFG_STR, "like,comment,share,click", 0, 0, OFF(engagement),
     "Event types counted as engagement (unlike/comment_delete subtract)"},
    {"limits.max_payload_bytes", CFG_INT, "65536", 64, 16777216, OFF(max_payload_bytes),
     "Larger messages are dead-lettered"},
    {"limits.max_id_bytes", CFG_INT, "128", 1, SMM_EVENT_ID_MAX, OFF(max_id_bytes),
     "Longer ids are dead-lettered"},
    {"reach.refresh_max", CFG_INT, "1000", 1, 1000000, OFF(reach_refresh_max),
     "account minute reach sketches one tick merges into hour sketches"},
    {"log.level", CFG_STR, "info", 0, 0, OFF(log_level), "debug, info, warn or error"},
    {"log.format", CFG_STR, "text", 0, 0, OFF(log_format), "text or json"},
    {"viral.enabled", CFG_BOOL, "true", 0, 1, OFF(viral_enabled),
     "Track cascades and flag viral posts"},
    {"viral.reach_min", CFG_NUM, "1000", 1, 1000000000, OFF(viral.reach_min),
     "Audience threshold floor: unique viewers in 5 min"},
    {"viral.reach_alpha", CFG_NUM, "0.1", 0, 1000, OFF(viral.reach_alpha),
     "Threshold = max(reach_min, reach_alpha x author_followers)"},
    {"viral.share_z", CFG_NUM, "0", 0, 1000, OFF(viral.share_z),
     "Viral also needs this share-velocity z-score (0 = off)"},
    {"viral.nf_share", CFG_NUM, "0", 0, 100, OFF(viral.nf_share),
     "Viral also needs this % of 5-min reach from non-followers (0 = off)"},
    {"viral.depth", CFG_INT, "0", 0, 1000000, OFF(viral.depth),
     "Viral also needs this cascade depth (0 = off)"},
    {"viral.predicted", CFG_NUM, "0", 0, 1e15, OFF(viral.predicted),
     "Viral also needs this SEISMIC predicted final size (0 = off)"},
    {"viral.rise_frac", CFG_NUM, "0.5", 0, 1, OFF(viral.rise_frac),
     "Rising (early warning) at this fraction of the threshold"},
    {"viral.rise_z", CFG_NUM, "3", 0, 1000, OFF(viral.rise_z),
     "Rising at this share-velocity z-score (0 = off)"},
    {"viral.rise_seismic_frac", CFG_NUM, "0.25", 0, 1, OFF(viral.rise_seismic_frac),
     "SEISMIC's supercritical early warning also needs this fraction of the threshold"},
    {"viral.exit_frac", CFG_NUM, "0.7", 0, 1, OFF(viral.exit_frac),
     "Viral holds while reach is above this fraction of the threshold"},
    {"viral.exit_ticks", CFG_INT, "3", 1, 1000, OFF(viral_exit_ticks),
     "Consecutive ticks below before viral cools / rising falls back"},
    {"viral.cooldown_ms", CFG_DURATION, "60000", 0, DAY_MS, OFF(viral_cooldown_ms),
     "Cooling lasts at least this long before normal or viral again"},
    {"viral.stale_ms", CFG_DURATION, "30000", 1000, DAY_MS, OFF(viral_stale_ms),
     "A flagged post nobody updates for this long is treated as quiet"},
    {"viral.max_nodes", CFG_INT, "100000", 1, 4000000, OFF(viral_max_nodes),
     "Shares stored per cascade tree (more still count in size)"},
    {"viral.max_posts", CFG_INT, "1000000", 1, 100000000, OFF(viral_max_posts),
     "Posts tracked in memory at once"},
    {"viral.evict_ms", CFG_DURATION, "7200000", 60000, 30 * DAY_MS, OFF(viral_evict_ms),
     "Forget a quiet post after this long (its figures stay in Redis)"},
    {"viral.n_star", CFG_NUM, "100", 0, 1e9, OFF(viral_n_star),
     "SEISMIC n*: mean follower count in the network"},
    {"viral.track_reach", CFG_INT, "100", 0, 1000000000, OFF(viral_track_reach),
     "Write figures of posts without shares from this 5-min reach"},
    {"viral.write_ms", CFG_DURATION, "5000", 0, 3600000, OFF(viral_write_ms),
     "Quiet posts (no rule near its threshold) rewrite their figures at most this often"},
    {"viral.baseline_min", CFG_INT, "5", 1, 1000000, OFF(viral_baseline_min),
     "Earlier posts needed before the z-score is used"},
    {"viral.sd_floor", CFG_NUM, "0.2", 0, 1e6, OFF(viral_sd_floor),
     "z-score denominator floor (shares/min)"},
    {"viral.warmup_messages", CFG_INT, "200000", 0, 100000000, OFF(viral_warmup_messages),
     "On assignment, re-read this many messages before the stored offset into the viral "
     "tracker only (rebuilds windows and cascades after a restart; 0 = off)"},
    {"http.enabled", CFG_BOOL, "true", 0, 1, OFF(http_enabled),
     "Serve /healthz, /readyz, /metrics, /events, the API and the dashboard"},
    {"http.address", CFG_STR, "127.0.0.1", 0, 0, OFF(http_address),
     "HTTP listen address (IPv4 or IPv6 literal, or a host name)"},
    {"http.port", CFG_INT, "8080", 0, 65535, OFF(http_port), "HTTP port (0 = ephemeral, logged)"},
    {"http.token", CFG_STR, "", 0, 0, OFF(http_token),
     "Bearer token required on every route but /healthz (secret)"},
    {"http.max_connections_per_ip", CFG_INT, "16", 0, 64, OFF(http_max_per_ip),
     "Connections one client address may hold at once, of 64 (0 = no limit)"},
    {"http.header_timeout_ms", CFG_DURATION, "5000", 0, 600000, OFF(http_header_timeout_ms),
     "A connection is closed when a request's headers take longer (0 = only the 30 s idle "
     "timeout)"},
    {"http.health_max_age_ms", CFG_DURATION, "60000", 0, DAY_MS, OFF(http_health_max_age_ms),
     "/healthz answers 503 when the main loop has not gone round for this long (0 = never)"},
    {"http.allowed_hosts", CFG_STR, "", 0, 0, OFF(http_allowed_hosts),
     "Without http.token, Host names served besides IP addresses and localhost (comma list)"},
    {"alerts.kafka", CFG_BOOL, "true", 0, 1, OFF(alerts_kafka),
     "Relay the alerts stream into the Kafka alerts topic, exactly once (docs/alerts.md)"},
    {"alerts.topic", CFG_STR, "", 0, 0, OFF(alerts_topic),
     "Kafka alerts topic (default <topic>.alerts)"},
    {"alerts.stream_max", CFG_INT, "10000", 100, 100000000, OFF(alerts_stream_max),
     "Alerts kept in the Redis stream <prefix>alerts (XADD MAXLEN ~)"},
    {"log.rate_limit_ms", CFG_DURATION, "1000", 0, 3600000, OFF(log_rate_limit_ms),
     "Identical log lines within this window are counted, then summarised (0 = off)"},
    {"response.tz", CFG_STR, "UTC", 0, 0, OFF(response_tz),
     "Time zone (IANA name) of response.hours; per account: response.account.<id>.tz"},
    {"response.hours", CFG_STR, "mon-fri 09:00-17:00", 0, 0, OFF(response_hours),
     "Opening hours for business-hours response time; per account: ...<id>.hours"},
    {"response.sla", CFG_DURATION, "60m", 1, 30 * DAY_MS, OFF(response_sla_ms),
     "Reply deadline: a later first reply raises an sla alert; per account: ...<id>.sla"},
    {"response.max_open", CFG_INT, "100000", 1, 100000000, OFF(response_max_open),
     "Cap on the open (unanswered) waits tracked per account"},
    {"response.reorder", CFG_DURATION, "10m", 0, DAY_MS, OFF(response_reorder_ms),
     "How long a reply is kept to match messages that arrive late, in event time (a reply "
     "before its message, or one that answered a wait whose messages are still coming)"},
    {"segments.enabled", CFG_BOOL, "true", 0, 1, OFF(segments_enabled),
     "Count region/segment breakdowns (g: entities; about a third of Redis' work when most "
     "events carry both)"},
    {"segments.top_n", CFG_INT, "20", 1, 1000, OFF(segments_top_n),
     "Region/segment/source values per account with their own series: the top_n by volume, "
     "the rest count as other"},
    {"segments.sketch_factor", CFG_INT, "4", 2, 16, OFF(segments_sketch_factor),
     "Space-Saving counters per account and dimension, as a multiple of segments.top_n"},
    {"segments.half_life", CFG_DURATION, "6h", 60000, 365 * DAY_MS, OFF(segments_half_life_ms),
     "Event-time half-life of the volumes that rank breakdown values (old campaigns yield)"},
    {"referral.window", CFG_DURATION, "30d", 1, 365 * DAY_MS, OFF(referral_window_ms),
     "A conversion is attributed to a referral at most this long before it"},
    {"referral.max_depth", CFG_INT, "3", 1, 10, OFF(referral_max_depth),
     "Referrers credited up a referral chain"},
    {"days.keep", CFG_INT, "400", 1, 3650, OFF(days_keep),
     "Daily account buckets (<prefix>d:<day>) kept, in days; goals read them"},
    {"retention.idle_days", CFG_INT, "90", 0, 3650, OFF(retention_idle_days),
     "Keys named by an event's id (sketches, viral, thread, referral, customer value) expire "
     "after this many days without a write (0 = never); at least referral.window + "
     "max_future_ms and every response.sla + response.reorder"},
    {"goals.eval_ms", CFG_DURATION, "60s", 50, DAY_MS, OFF(goals_eval_ms),
     "Goals (goal.<id>.*) are evaluated this often"},
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

/* Keys the design owns: offsets live in Redis, stored only after a confirmed flush. */
static const char *const reserved_kafka[] = {"enable.auto.offset.store", "group.id",
                                             "enable.partition.eof"};

static int fail(char *errstr, size_t errstr_size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, errstr_size, fmt, ap);
    va_end(ap);
    return SMM_ERR;
}

int smm_config_is_secret(const char *key)
{
    return strstr(key, "password") != NULL || strstr(key, "secret") != NULL ||
           strstr(key, "token") != NULL ||
           strstr(key, "sasl.oauthbearer.config") != NULL || strstr(key, ".key.pem") != NULL;
}

static const struct smm_config_key *find_key(const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strcmp(keys[i].name, name) == 0) {
            return &keys[i];
        }
    }
    return NULL;
}

/* Edit distance of a and b, counting an adjacent transposition as one edit (the optimal
 * string alignment distance), or a large number beyond 63 characters. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) {
        return 1000;
    }
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++) {
        d[i][0] = i;
    }
    for (size_t j = 0; j <= lb; j++) {
        d[0][j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t v = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < v) {
                v = d[i - 1][j] + 1;
            }
            if (d[i][j - 1] + 1 < v) {
                v = d[i][j - 1] + 1;
            }
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v) {
                v = d[i - 2][j - 2] + 1;
            }
            d[i][j] = v;
        }
    }
    return d[la][lb];
}

/* For "did you mean": the known key closest to an unknown one, if it is close (at most
 * 2 edits, or a third of the name's length for long names), else NULL. */
static const char *nearest_key(const char *name)
{
    size_t best = (size_t)-1, limit = strlen(name) / 3;
    const char *near = NULL;
    if (limit < 2) {
        limit = 2;
    }
    for (size_t i = 0; i < N_KEYS; i++) {
        size_t d = edit_distance(name, keys[i].name);
        if (d < best) {
            best = d;
            near = keys[i].name;
        }
    }
    return best <= limit ? near : NULL;
}

/* "250", "250ms", "10s", "5m", "2h", "1d" -> ms. */
static int parse_duration(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno) {
        return SMM_ERR;
    }
    int64_t mul = 1;
    if (*end == '\0' || strcmp(end, "ms") == 0) {
        mul = 1;
    } else if (strcmp(end, "s") == 0) {
        mul = 1000;
    } else if (strcmp(end, "m") == 0) {
        mul = 60000;
    } else if (strcmp(end, "h") == 0) {
        mul = 3600000;
    } else if (strcmp(end, "d") == 0) {
        mul = DAY_MS;
    } else {
        return SMM_ERR;
    }
    if (v > INT64_MAX / mul || v < INT64_MIN / mul) {
        return SMM_ERR;
    }
    *out = v * mul;
    return SMM_OK;
}

static int set_kafka(struct smm_config *cfg, const char *key, const char *value,
                     const char *origin, char *errstr, size_t errstr_size)
{
    const char *k = key + strlen("kafka.");
    if (*k == '\0') {
        return fail(errstr, errstr_size, "%s: %s: empty librdkafka property", origin, key);
    }
    for (size_t i = 0; i < sizeof(reserved_kafka) / sizeof(reserved_kafka[0]); i++) {
        if (strcmp(k, reserved_kafka[i]) == 0) {
            return fail(errstr, errstr_size,
                        "%s: %s: set by smm-processor itself%s", origin, key,
                        strcmp(k, "group.id") == 0 ? " (use group_id)" : "");
        }
    }
    for (int i = 0; i < cfg->n_kafka; i++) {
        if (strcmp(cfg->kafka_key[i], k) == 0) {
            char *v = strdup(value);
            if (!v) {
                return fail(errstr, errstr_size, "out of memory");
            }
            free(cfg->kafka_val[i]);
            cfg->kafka_val[i] = v;
            return SMM_OK;
        }
    }
    if (cfg->n_kafka == SMM_CFG_MAX_KAFKA) {
        return fail(errstr, errstr_size, "%s: %s: more than %d kafka.* keys", origin, key,
                    SMM_CFG_MAX_KAFKA);
    }
    cfg->kafka_key[cfg->n_kafka] = strdup(k);
    cfg->kafka_val[cfg->n_kafka] = strdup(value);
    if (!cfg->kafka_key[cfg->n_kafka] || !cfg->kafka_val[cfg->n_kafka]) {
        return fail(errstr, errstr_size, "out of memory");
    }
    cfg->n_kafka++;
    return SMM_OK;
}

static const char *const viral_rules[] = {"reach_min", "reach_alpha", "share_z",
                                          "nf_share",  "depth",       "predicted",
                                          "rise_frac", "rise_z",      "exit_frac",
                                          "rise_seismic_frac"};

static double *viral_rule_slot(struct smm_viral_rules *r, const char *rule, int64_t **islot)
{
    *islot = NULL;
    if (strcmp(rule, "depth") == 0) {
        *islot = &r->depth;
        return NULL;
    }
    double *slots[] = {&r->reach_min, &r->reach_alpha, &r->share_z,  &r->nf_share,
                       NULL,          &r->predicted,   &r->rise_frac, &r->rise_z,
                       &r->exit_frac, &r->rise_seismic_frac};
    for (size_t i = 0; i < sizeof(viral_rules) / sizeof(viral_rules[0]); i++) {
        if (strcmp(rule, viral_rules[i]) == 0) {
            return slots[i];
        }
    }
    return NULL;
}

void smm_config_viral_rules(const struct smm_config *cfg, const char *account,
                            struct smm_viral_rules *r)
{
    for (int i = 0; i < cfg->n_viral_over; i++) {
        const struct smm_viral_override *o = &cfg->viral_over[i];
        if (strcmp(o->account, account) == 0) {
            int64_t *is;
            double *ds = viral_rule_slot(r, o->rule, &is);
            if (ds) {
                *ds = o->value;
            } else if (is) {
                *is = (int64_t)o->value;
            }
        }
    }
}

/* viral.account.<account_id>.<rule>: the account id is everything between the prefix and
 * the last dot, so ids may contain dots; bounds are those of viral.<rule>. */
static int set_viral_override(struct smm_config *cfg, const char *key, const char *value,
                              const char *origin, char *errstr, size_t errstr_size)
{
    const char *acct = key + strlen("viral.account.");
    const char *dot = strrchr(acct, '.');
    if (!dot || dot == acct) {
        return fail(errstr, errstr_size,
                    "%s: %s: expected viral.account.<account_id>.<rule>", origin, key);
    }
    char gkey[64];
    snprintf(gkey, sizeof(gkey), "viral.%s", dot + 1);
    int64_t *is;
    struct smm_viral_rules scratch;
    if (strlen(dot + 1) >= sizeof(cfg->viral_over[0].rule) ||
        (!viral_rule_slot(&scratch, dot + 1, &is) && !is)) {
        return fail(errstr, errstr_size,
                    "%s: %s: unknown rule \"%s\" (reach_min, reach_alpha, share_z, nf_share, "
                    "depth, predicted, rise_frac, rise_z, exit_frac, rise_seismic_frac)",
                    origin, key, dot + 1);
    }
    /* Parse and bound-check through the global key, on a scratch copy. */
    struct smm_config tmp;
    memset(&tmp, 0, sizeof(tmp));
    char err[256];
    if (smm_config_set(&tmp, gkey, value, origin, err, sizeof(err)) != SMM_OK) {
        return fail(errstr, errstr_size, "%s: %s: %s", origin, key,
                    strstr(err, ": ") ? strstr(err, ": ") + 2 : err);
    }
    double *ds = viral_rule_slot(&tmp.viral, dot + 1, &is);
    double v = ds ? *ds : (double)*is;
    if (cfg->n_viral_over >= SMM_CFG_MAX_VIRAL_OVERRIDES) {
        return fail(errstr, errstr_size, "%s: %s: more than %d viral.account.* keys", origin,
                    key, SMM_CFG_MAX_VIRAL_OVERRIDES);
    }
    struct smm_viral_override *o = &cfg->viral_over[cfg->n_viral_over];
    o->account = strndup(acct, (size_t)(dot - acct));
    if (!o->account) {
        return fail(errstr, errstr_size, "out of memory");
    }
    snprintf(o->rule, sizeof(o->rule), "%s", dot + 1);
    o->value = v;
    cfg->n_viral_over++;
    return SMM_OK;
}

/* Parses value as a number of key type k (CFG_NUM) within its bounds; errors name `key`,
 * which may differ from k->name (a dynamic key checked against its global one). */
static int parse_num(const struct smm_config_key *k, const char *key, const char *value,
                     const char *origin, double *out, char *errstr, size_t errstr_size)
{
    char *end;
    errno = 0;
    double d = strtod(value, &end);
    if (end == value || *end != '\0' || errno || !(d == d)) {
        return fail(errstr, errstr_size, "%s: %s: expected a number, got \"%s\"", origin, key,
                    value);
    }
    if (d < (double)k->min || d > (double)k->max) {
        return fail(errstr, errstr_size, "%s: %s: must be in [%lld, %lld], got %s", origin, key,
                    (long long)k->min, (long long)k->max, value);
    }
    *out = d;
    return SMM_OK;
}

/* The same for CFG_INT, CFG_DURATION and CFG_BOOL (stored as int64). */
static int parse_int(const struct smm_config_key *k, const char *key, const char *value,
                     const char *origin, int64_t *out, char *errstr, size_t errstr_size)
{
    int64_t v;
    if (k->type == CFG_BOOL) {
        if (!strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "yes") ||
            !strcmp(value, "on")) {
            v = 1;
        } else if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no") ||
                   !strcmp(value, "off")) {
            v = 0;
        } else {
            return fail(errstr, errstr_size, "%s: %s: expected true or false, got \"%s\"",
                        origin, key, value);
        }
    } else if (k->type == CFG_DURATION) {
        if (parse_duration(value, &v) != SMM_OK) {
            return fail(errstr, errstr_size,
                        "%s: %s: expected milliseconds or a duration like 250ms, 10s, 5m; got "
                        "\"%s\"",
                        origin, key, value);
        }
    } else {
        char *end;
        errno = 0;
        long long ll = strtoll(value, &end, 10);
        if (end == value || *end != '\0' || errno) {
            return fail(errstr, errstr_size, "%s: %s: expected an integer, got \"%s\"", origin,
                        key, value);
        }
        v = ll;
    }
    if (v < k->min || v > k->max) {
        return fail(errstr, errstr_size, "%s: %s: must be in [%lld, %lld], got %lld", origin,
                    key, (long long)k->min, (long long)k->max, (long long)v);
    }
    *out = v;
    return SMM_OK;
}

/* A dynamic key <prefix><id>.<sub>: the id is everything between the prefix and the last
 * dot, so ids may contain dots. SMM_ERR when the id or the sub-key is empty. */
static int split_dynamic(const char *key, size_t prefix_len, const char **id, size_t *id_len,
                         const char **sub)
{
    const char *s = key + prefix_len;
    const char *dot = strrchr(s, '.');
    if (!dot || dot == s || dot[1] == '\0') {
        return SMM_ERR;
    }
    *id = s;
    *id_len = (size_t)(dot - s);
    *sub = dot + 1;
    return SMM_OK;
}

static int same_id(const char *s, const char *id, size_t id_len)
{
    return strlen(s) == id_len && memcmp(s, id, id_len) == 0;
}

/* response.account.<account_id>.{tz,hours,sla}: all keys of one account fill one entry;
 * the sla has the bounds of response.sla. */
static int set_response_account(struct smm_config *cfg, const char *key, const char *value,
                                 const char *origin, char *errstr, size_t errstr_size)
{
    const char *id, *sub;
    size_t id_len;
    if (split_dynamic(key, strlen("response.account."), &id, &id_len, &sub) != SMM_OK) {
        return fail(errstr, errstr_size,
                    "%s: %s: expected response.account.<account_id>.<tz|hours|sla>", origin,
                    key);
    }
    int is_tz = strcmp(sub, "tz") == 0, is_sla = strcmp(sub, "sla") == 0;
    if (!is_tz && !is_sla && strcmp(sub, "hours") != 0) {
        return fail(errstr, errstr_size, "%s: %s: unknown setting \"%s\" (tz, hours, sla)",
                    origin, key, sub);
    }
    int64_t sla = -1;
    if (is_sla) {
        if (parse_int(find_key("response.sla"), key, value, origin, &sla, errstr,
                      errstr_size) != SMM_OK) {
            return SMM_ERR;
        }
    } else if (value[0] == '\0') {
        return fail(errstr, errstr_size, "%s: %s: must not be empty", origin, key);
    }
    struct smm_response_account *ra = NULL;
    for (int i = 0; i < cfg->n_response_accounts && !ra; i++) {
        if (same_id(cfg->response_accounts[i].account, id, id_len)) {
            ra = &cfg->response_accounts[i];
        }
    }
    if (!ra) {
        if (cfg->n_response_accounts >= SMM_CFG_MAX_RESPONSE_ACCOUNTS) {
            return fail(errstr, errstr_size,
                        "%s: %s: response.account.* keys for more than %d accounts", origin, key,
                        SMM_CFG_MAX_RESPONSE_ACCOUNTS);
        }
        ra = &cfg->response_accounts[cfg->n_response_accounts];
        ra->account = strndup(id, id_len);
        if (!ra->account) {
            return fail(errstr, errstr_size, "out of memory");
        }
        ra->tz = NULL;
        ra->hours = NULL;
        ra->sla_ms = -1;
        cfg->n_response_accounts++;
    }
    if (is_sla) {
        ra->sla_ms = sla;
        return SMM_OK;
    }
    char *v = strdup(value);
    if (!v) {
        return fail(errstr, errstr_size, "out of memory");
    }
    char **slot = is_tz ? &ra->tz : &ra->hours;
    free(*slot);
    *slot = v;
    return SMM_OK;
}

void smm_config_response_for(const struct smm_config *cfg, const char *account,
                             const char **tz, const char **hours, int64_t *sla_ms)
{
    const struct smm_response_account *ra = NULL;
    for (int i = 0; account && i < cfg->n_response_accounts && !ra; i++) {
        if (strcmp(cfg->response_accounts[i].account, account) == 0) {
            ra = &cfg->response_accounts[i];
        }
    }
    if (tz) {
        *tz = ra && ra->tz ? ra->tz : cfg->response_tz;
    }
    if (hours) {
        *hours = ra && ra->hours ? ra->hours : cfg->response_hours;
    }
    if (sla_ms) {
        *sla_ms = ra && ra->sla_ms >= 0 ? ra->sla_ms : cfg->response_sla_ms;
    }
}

static void free_strv(char **v, int n)
{
    for (int i = 0; v && i < n; i++) {
        free(v[i]);
    }
    free(v);
}

/* sov.set.<name> = "brandA, brandB": names trimmed, none empty, none twice, at least two
 * (a share of one is always 100 %). The name ends up in fields "v:<name>|<brand>:<metric>",
 * hence no '|' or ':' in it. Setting a set again replaces its list. */
static int set_sov_set(struct smm_config *cfg, const char *key, const char *value,
                       const char *origin, char *errstr, size_t errstr_size)
{
    const char *name = key + strlen("sov.set.");
    if (*name == '\0') {
        return fail(errstr, errstr_size, "%s: %s: expected sov.set.<name>", origin, key);
    }
    if (strpbrk(name, "|:")) {
        return fail(errstr, errstr_size, "%s: %s: a set name must not contain '|' or ':'",
                    origin, key);
    }
    int cap = 1;
    for (const char *p = value; *p; p++) {
        cap += *p == ',';
    }
    char **brands = calloc((size_t)cap, sizeof(*brands));
    if (!brands) {
        return fail(errstr, errstr_size, "out of memory");
    }
    int nb = 0;
    const char *p = value;
    for (;;) {
        size_t n = strcspn(p, ",");
        const char *b = p, *e = p + n;
        while (b < e && isspace((unsigned char)*b)) {
            b++;
        }
        while (e > b && isspace((unsigned char)e[-1])) {
            e--;
        }
        if (b == e) {
            free_strv(brands, nb);
            if (cap == 1) {
                return fail(errstr, errstr_size,
                            "%s: %s: needs at least 2 brands, e.g. \"brandA,brandB\"", origin,
                            key);
            }
            return fail(errstr, errstr_size, "%s: %s: empty brand name in \"%s\"", origin, key,
                        value);
        }
        for (int i = 0; i < nb; i++) {
            if (same_id(brands[i], b, (size_t)(e - b))) {
                free_strv(brands, nb);
                return fail(errstr, errstr_size, "%s: %s: brand \"%.*s\" listed twice", origin,
                            key, (int)(e - b), b);
            }
        }
        brands[nb] = strndup(b, (size_t)(e - b));
        if (!brands[nb]) {
            free_strv(brands, nb);
            return fail(errstr, errstr_size, "out of memory");
        }
        nb++;
        if (p[n] == '\0') {
            break;
        }
        p += n + 1;
    }
    if (nb < 2) {
        free_strv(brands, nb);
        return fail(errstr, errstr_size,
                    "%s: %s: needs at least 2 brands, e.g. \"brandA,brandB\"; got \"%s\"", origin,
                    key, value);
    }
    struct smm_sov_set *set = NULL;
    for (int i = 0; i < cfg->n_sov_sets && !set; i++) {
        if (strcmp(cfg->sov_sets[i].name, name) == 0) {
            set = &cfg->sov_sets[i];
        }
    }
    if (!set) {
        if (cfg->n_sov_sets >= SMM_CFG_MAX_SOV_SETS) {
            free_strv(brands, nb);
            return fail(errstr, errstr_size, "%s: %s: more than %d sov.set.* keys", origin, key,
                        SMM_CFG_MAX_SOV_SETS);
        }
        set = &cfg->sov_sets[cfg->n_sov_sets];
        set->name = strdup(name);
        if (!set->name) {
            free_strv(brands, nb);
            return fail(errstr, errstr_size, "out of memory");
        }
        set->brands = NULL;
        set->n_brands = 0;
        cfg->n_sov_sets++;
    }
    free_strv(set->brands, set->n_brands);
    set->brands = brands;
    set->n_brands = nb;
    return SMM_OK;
}

/* ---- goal.<id>.<field> (docs/goals.md) ---- */

enum goal_field { GF_ACCOUNT, GF_METRIC, GF_KIND, GF_TARGET, GF_START, GF_DAYS, GF__COUNT };

static const char *const goal_fields[GF__COUNT] = {"account", "metric", "kind",
                                                   "target",  "start",  "days"};

/* Account metric fields a goal can follow (sums), and the one rate. */
static const char *const goal_metrics[] = {
    "impression", "view",         "like",          "comment",
    "share",      "click",        "referral",      "conversion",
    "mention",    "message",      "reply",         "follow",
    "engagement", "value_cents",  "threads",       "answered",
    "indirect_conversions",       "indirect_value_cents",
    "mention_reach",              "response_rate"};

static const struct smm_config_key goal_target_key = {
    "goal.<id>.target", CFG_NUM, NULL, 0, 1000000000000000LL, 0, NULL};
static const struct smm_config_key goal_days_key = {
    "goal.<id>.days", CFG_INT, NULL, 1, 3650, 0, NULL};

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Strict "YYYY-MM-DD", 1970-01-01 .. 9999-12-31 -> days since the epoch. */
static int parse_date(const char *s, int64_t *day)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (int i = 0; i < 10; i++) {
        int want_dash = i == 4 || i == 7;
        if (want_dash ? s[i] != '-' : !isdigit((unsigned char)s[i])) {
            return SMM_ERR;
        }
    }
    if (s[10] != '\0') {
        return SMM_ERR;
    }
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0');
    int d = (s[8] - '0') * 10 + (s[9] - '0');
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] + (m == 2 && leap)) {
        return SMM_ERR;
    }
    *day = days_from_civil(y, m, d);
    return SMM_OK;
}

/* Checks one goal value; numbers are parsed into *num / *i64 (start: its day). `key` is
 * the full key, for the message. */
static int goal_check(enum goal_field f, const char *key, const char *value, const char *origin,
                      double *num, int64_t *i64, char *errstr, size_t errstr_size)
{
    switch (f) {
    case GF_ACCOUNT:
        if (value[0] == '\0') {
            return fail(errstr, errstr_size, "%s: %s: must not be empty", origin, key);
        }
        return SMM_OK;
    case GF_METRIC:
        for (size_t i = 0; i < sizeof(goal_metrics) / sizeof(goal_metrics[0]); i++) {
            if (strcmp(value, goal_metrics[i]) == 0) {
                return SMM_OK;
            }
        }
        return fail(errstr, errstr_size,
                    "%s: %s: \"%s\" is not an account metric (e.g. conversion, value_cents, "
                    "engagement, response_rate; docs/goals.md)",
                    origin, key, value);
    case GF_KIND:
        if (strcmp(value, "increase") == 0 || strcmp(value, "at_least") == 0) {
            return SMM_OK;
        }
        return fail(errstr, errstr_size, "%s: %s: expected increase or at_least, got \"%s\"",
                    origin, key, value);
    case GF_TARGET:
        return parse_num(&goal_target_key, key, value, origin, num, errstr, errstr_size);
    case GF_START:
        if (parse_date(value, i64) != SMM_OK) {
            return fail(errstr, errstr_size,
                        "%s: %s: expected a date YYYY-MM-DD (UTC, from 1970), got \"%s\"", origin,
                        key, value);
        }
        return SMM_OK;
    case GF_DAYS:
        return parse_int(&goal_days_key, key, value, origin, i64, errstr, errstr_size);
    default:
        return SMM_ERR;
    }
}

/* goal.<id>.<field>: the id is everything between "goal." and the last dot. It names
 * Redis keys (<prefix>goal:<id>) and alert ids, hence a plain character set. Values are
 * checked as they are set; smm_config_finish() checks each goal is complete. */
static int set_goal(struct smm_config *cfg, const char *key, const char *value,
                    const char *origin, char *errstr, size_t errstr_size)
{
    const char *id, *sub;
    size_t id_len;
    if (split_dynamic(key, strlen("goal."), &id, &id_len, &sub) != SMM_OK) {
        return fail(errstr, errstr_size,
                    "%s: %s: expected goal.<id>.<account|metric|kind|target|start|days>", origin,
                    key);
    }
    for (size_t i = 0; i < id_len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!isalnum(c) && c != '_' && c != '-' && c != '.') {
            return fail(errstr, errstr_size,
                        "%s: %s: a goal id may hold only letters, digits, '_', '-' and '.'",
                        origin, key);
        }
    }
    int f = 0;
    while (f < GF__COUNT && strcmp(sub, goal_fields[f]) != 0) {
        f++;
    }
    if (f == GF__COUNT) {
        return fail(errstr, errstr_size,
                    "%s: %s: unknown setting \"%s\" (account, metric, kind, target, start, days)",
                    origin, key, sub);
    }
    double num = 0;
    int64_t i64 = 0;
    if (goal_check((enum goal_field)f, key, value, origin, &num, &i64, errstr, errstr_size) !=
        SMM_OK) {
        return SMM_ERR;
    }
    struct smm_goal_cfg *g = NULL;
    for (int i = 0; i < cfg->n_goals && !g; i++) {
        if (same_id(cfg->goals[i].id, id, id_len)) {
            g = &cfg->goals[i];
        }
    }
    if (!g) {
        if (cfg->n_goals >= SMM_CFG_MAX_GOALS) {
            return fail(errstr, errstr_size, "%s: %s: more than %d goals", origin, key,
                        SMM_CFG_MAX_GOALS);
        }
        g = &cfg->goals[cfg->n_goals];
        memset(g, 0, sizeof(*g));
        g->id = strndup(id, id_len);
        if (!g->id) {
            return fail(errstr, errstr_size, "out of memory");
        }
        g->target = NAN; /* unset until goal.<id>.target */
        cfg->n_goals++;
    }
    if (f == GF_TARGET) {
        g->target = num;
        return SMM_OK;
    }
    if (f == GF_DAYS) {
        g->days = i64;
        return SMM_OK;
    }
    char *v = strdup(value);
    if (!v) {
        return fail(errstr, errstr_size, "out of memory");
    }
    char **slot = f == GF_ACCOUNT ? &g->account
                  : f == GF_METRIC ? &g->metric
                  : f == GF_KIND   ? &g->kind
                                   : &g->start;
    free(*slot);
    *slot = v;
    if (f == GF_START) {
        g->start_day = i64;
    }
    return SMM_OK;
}

/* Every goal complete and consistent with days.keep (the daily buckets it reads). */
static int finish_goals(struct smm_config *cfg, char *errstr, size_t errstr_size)
{
    for (int i = 0; i < cfg->n_goals; i++) {
        struct smm_goal_cfg *g = &cfg->goals[i];
        const int set[GF__COUNT] = {g->account != NULL, g->metric != NULL, g->kind != NULL,
                                    !isnan(g->target),  g->start != NULL,  g->days > 0};
        for (int f = 0; f < GF__COUNT; f++) {
            if (!set[f]) {
                return fail(errstr, errstr_size,
                            "goal.%s.%s: required (a goal needs account, metric, kind, target, "
                            "start and days)",
                            g->id, goal_fields[f]);
            }
        }
        /* Checked when set; again here for configs assembled by other means. */
        const char *text[GF__COUNT] = {g->account, g->metric, g->kind, NULL, g->start, NULL};
        for (int f = 0; f < GF__COUNT; f++) {
            char key[300];
            double num;
            int64_t i64;
            snprintf(key, sizeof(key), "goal.%s.%s", g->id, goal_fields[f]);
            if (text[f] &&
                goal_check((enum goal_field)f, key, text[f], "config", &num, &i64, errstr,
                           errstr_size) != SMM_OK) {
                return SMM_ERR;
            }
            if (f == GF_START && text[f]) {
                g->start_day = i64;
            }
        }
        int increase = strcmp(g->kind, "increase") == 0;
        if (!increase && strcmp(g->metric, "response_rate") == 0 && g->target > 100) {
            return fail(errstr, errstr_size,
                        "goal.%s.target: a response_rate is a percentage; %g can never be met",
                        g->id, g->target);
        }
        /* The baseline of an increase covers the `days` days before start as well. */
        int64_t need = increase ? 2 * g->days : g->days;
        if (need > cfg->days_keep) {
            return fail(errstr, errstr_size,
                        "goal.%s.days: %lld needs %lld days of daily buckets but days.keep is "
                        "%lld",
                        g->id, (long long)g->days, (long long)need, (long long)cfg->days_keep);
        }
    }
    return SMM_OK;
}

/* retention.idle_days against the state it would drop while still in use: a referral is
 * kept referral.window after its event time (at most max_future_ms ahead of the write), a
 * thread's open wait is due within its SLA, a reply is kept response.reorder, and each
 * write of those keys pushes their expiry to idle_days later. So with idle_days at least the longest of them a key holds nothing
 * still in use when it expires, except a breached wait still unanswered after idle_days
 * of silence on its account (docs/redis-keys.md, "Lifetimes"). */
static int check_retention(const struct smm_config *cfg, char *errstr, size_t errstr_size)
{
    int64_t idle_ms = cfg->retention_idle_days * DAY_MS;
    if (idle_ms == 0) {
        return SMM_OK;
    }
    /* A referral with a future event time is kept from that time on. */
    const char *what = "referral.window + max_future_ms";
    int64_t need = cfg->referral_window_ms + cfg->max_future_ms;
    if (cfg->response_sla_ms + cfg->response_reorder_ms > need) {
        what = "response.sla + response.reorder";
        need = cfg->response_sla_ms + cfg->response_reorder_ms;
    }
    char acct_what[300];
    for (int i = 0; i < cfg->n_response_accounts; i++) {
        const struct smm_response_account *a = &cfg->response_accounts[i];
        if (a->sla_ms >= 0 && a->sla_ms + cfg->response_reorder_ms > need) {
            snprintf(acct_what, sizeof(acct_what), "response.account.%s.sla + response.reorder",
                     a->account);
            what = acct_what;
            need = a->sla_ms + cfg->response_reorder_ms;
        }
    }
    if (idle_ms < need) {
        return fail(errstr, errstr_size,
                    "retention.idle_days: %lld days would expire state still in use: %s is "
                    "%.2f days (raise it to at least %lld, or 0 to keep keys forever)",
                    (long long)cfg->retention_idle_days, what, (double)need / DAY_MS,
                    (long long)((need + DAY_MS - 1) / DAY_MS));
    }
    return SMM_OK;
}

int smm_config_set(struct smm_config *cfg, const char *key, const char *value,
                   const char *origin, char *errstr, size_t errstr_size)
{
    if (strncmp(key, "kafka.", 6) == 0) {
        return set_kafka(cfg, key, value, origin, errstr, errstr_size);
    }
    if (strncmp(key, "viral.account.", 14) == 0) {
        return set_viral_override(cfg, key, value, origin, errstr, errstr_size);
    }
    if (strncmp(key, "response.account.", 17) == 0) {
        return set_response_account(cfg, key, value, origin, errstr, errstr_size);
    }
    if (strncmp(key, "sov.set.", 8) == 0) {
        return set_sov_set(cfg, key, value, origin, errstr, errstr_size);
    }
    if (strncmp(key, "goal.", 5) == 0) {
        return set_goal(cfg, key, value, origin, errstr, errstr_size);
    }
    const struct smm_config_key *k = find_key(key);
    if (!k) {
        const char *near = nearest_key(key);
        if (near) {
            return fail(errstr, errstr_size,
                        "%s: %s: unknown key; did you mean %s? (see --help-config)", origin, key,
                        near);
        }
        return fail(errstr, errstr_size, "%s: %s: unknown key (see --help-config)", origin, key);
    }
    char *base = (char *)cfg;
    if (k->type == CFG_STR) {
        char *v = strdup(value);
        if (!v) {
            return fail(errstr, errstr_size, "out of memory");
        }
        char **slot = (char **)(base + k->off);
        free(*slot);
        *slot = v;
        return SMM_OK;
    }
    if (k->type == CFG_NUM) {
        return parse_num(k, key, value, origin, (double *)(base + k->off), errstr, errstr_size);
    }
    return parse_int(k, key, value, origin, (int64_t *)(base + k->off), errstr, errstr_size);
}

int smm_config_init(struct smm_config *cfg, char *errstr, size_t errstr_size)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < N_KEYS; i++) {
        if (smm_config_set(cfg, keys[i].name, keys[i].def, "default", errstr, errstr_size) !=
            SMM_OK) {
            return SMM_ERR;
        }
    }
    return SMM_OK;
}

void smm_config_free(struct smm_config *cfg)
{
    if (!cfg) {
        return;
    }
    char *base = (char *)cfg;
    for (size_t i = 0; i < N_KEYS; i++) {
        if (keys[i].type == CFG_STR) {
            char **slot = (char **)(base + keys[i].off);
            free(*slot);
            *slot = NULL;
        }
    }
    for (int i = 0; i < cfg->n_kafka; i++) {
        free(cfg->kafka_key[i]);
        free(cfg->kafka_val[i]);
    }
    cfg->n_kafka = 0;
    for (int i = 0; i < cfg->n_viral_over; i++) {
        free(cfg->viral_over[i].account);
    }
    cfg->n_viral_over = 0;
    for (int i = 0; i < cfg->n_response_accounts; i++) {
        struct smm_response_account *ra = &cfg->response_accounts[i];
        free(ra->account);
        free(ra->tz);
        free(ra->hours);
    }
    cfg->n_response_accounts = 0;
    for (int i = 0; i < cfg->n_sov_sets; i++) {
        free(cfg->sov_sets[i].name);
        free_strv(cfg->sov_sets[i].brands, cfg->sov_sets[i].n_brands);
    }
    cfg->n_sov_sets = 0;
    for (int i = 0; i < cfg->n_goals; i++) {
        struct smm_goal_cfg *g = &cfg->goals[i];
        free(g->id);
        free(g->account);
        free(g->metric);
        free(g->kind);
        free(g->start);
    }
    cfg->n_goals = 0;
}

/* {"sov": {"set": {"coffee": ["a", "b"]}}}: a competitor set may be a JSON array of
 * brand names; it is joined with commas and parsed like the string form. Only this key
 * family takes arrays: elsewhere a list is one comma string, and an array is an error. */
static int set_joined(struct smm_config *cfg, const cJSON *arr, const char *path,
                      const char *origin, char *errstr, size_t errstr_size)
{
    size_t len = 1;
    for (const cJSON *e = arr->child; e; e = e->next) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, ',')) {
            return fail(errstr, errstr_size,
                        "%s: %s: expected an array of brand names (strings without ',')", origin,
                        path);
        }
        len += strlen(e->valuestring) + 1;
    }
    char *joined = malloc(len);
    if (!joined) {
        return fail(errstr, errstr_size, "out of memory");
    }
    size_t n = 0;
    for (const cJSON *e = arr->child; e; e = e->next) {
        size_t l = strlen(e->valuestring);
        if (n) {
            joined[n++] = ',';
        }
        memcpy(joined + n, e->valuestring, l);
        n += l;
    }
    joined[n] = '\0';
    int rc = smm_config_set(cfg, path, joined, origin, errstr, errstr_size);
    free(joined);
    return rc;
}

/* Where load_tree() is in the file text, to give each key's line: cJSON keeps no
 * positions, but a depth-first walk meets the keys in text order, so each is searched for
 * ("name" then ':') after the previous one. A key whose text differs from its value
 * (escapes) is not found, and its errors name the file only. */
struct text_pos {
    const char *buf;
    size_t len, at;
    const char *file;
};

/* The origin for errors about key: "config file F line N" (or without the line). */
static void key_origin(struct text_pos *tp, const char *key, char *out, size_t out_size)
{
    size_t kl = strlen(key);
    for (size_t i = tp->at; kl + 2 <= tp->len && i <= tp->len - kl - 2; i++) {
        if (tp->buf[i] != '"' || memcmp(tp->buf + i + 1, key, kl) != 0 ||
            tp->buf[i + 1 + kl] != '"') {
            continue;
        }
        size_t j = i + kl + 2;
        while (j < tp->len && strchr(" \t\r\n", tp->buf[j])) {
            j++;
        }
        if (j >= tp->len || tp->buf[j] != ':') {
            continue;
        }
        int line = 1;
        for (size_t p = 0; p < i; p++) {
            line += tp->buf[p] == '\n';
        }
        tp->at = j + 1;
        snprintf(out, out_size, "config file %s line %d", tp->file, line);
        return;
    }
    snprintf(out, out_size, "config file %s", tp->file);
}

static int load_tree(struct smm_config *cfg, const cJSON *node, char *path, size_t path_size,
                     struct text_pos *tp, char *errstr, size_t errstr_size)
{
    size_t plen = strlen(path);
    for (const cJSON *it = node->child; it; it = it->next) {
        if (!it->string) {
            continue;
        }
        char origin[400];
        key_origin(tp, it->string, origin, sizeof(origin));
        int n = snprintf(path + plen, path_size - plen, "%s%s", plen ? "." : "", it->string);
        if (n < 0 || (size_t)n >= path_size - plen) {
            return fail(errstr, errstr_size, "%s: key too long", origin);
        }
        int rc;
        char buf[64];
        if (cJSON_IsObject(it)) {
            rc = load_tree(cfg, it, path, path_size, tp, errstr, errstr_size);
        } else if (cJSON_IsString(it)) {
            rc = smm_config_set(cfg, path, it->valuestring, origin, errstr, errstr_size);
        } else if (cJSON_IsNumber(it)) {
            /* Range-check before the cast: converting an out-of-range double is UB. */
            double d = it->valuedouble;
            if (d > -9.2e18 && d < 9.2e18 && d == (double)(long long)d) {
                snprintf(buf, sizeof(buf), "%lld", (long long)d);
            } else {
                snprintf(buf, sizeof(buf), "%.17g", d);
            }
            rc = smm_config_set(cfg, path, buf, origin, errstr, errstr_size);
        } else if (cJSON_IsBool(it)) {
            rc = smm_config_set(cfg, path, cJSON_IsTrue(it) ? "true" : "false", origin, errstr,
                                errstr_size);
        } else if (cJSON_IsArray(it) && strncmp(path, "sov.set.", 8) == 0) {
            rc = set_joined(cfg, it, path, origin, errstr, errstr_size);
        } else {
            rc = fail(errstr, errstr_size, "%s: %s: expected a string, number, boolean or object",
                      origin, path);
        }
        path[plen] = '\0';
        if (rc != SMM_OK) {
            return rc;
        }
    }
    return SMM_OK;
}

int smm_config_load_file(struct smm_config *cfg, const char *path, char *errstr,
                         size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return fail(errstr, errstr_size, "config file %s: %s", path, strerror(errno));
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return fail(errstr, errstr_size, "out of memory");
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            break;
        }
    }
    fclose(f);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    /* Only whitespace may follow the object: a second document or stray text would
     * otherwise be ignored silently, with settings the operator believes applied. */
    const char *trail = NULL;
    for (const char *p = root ? end : NULL; p && p < buf + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            trail = p;
            break;
        }
    }
    if (!root || trail || !cJSON_IsObject(root)) {
        const char *what = !root ? "invalid JSON"
                           : trail ? "invalid JSON (content after the top-level value)"
                                   : "top level must be an object";
        /* Line and column (1-based, in bytes) of where parsing stopped. */
        int line = 1, col = 1;
        const char *stop = trail ? trail : root ? buf : (end ? end : buf);
        for (const char *p = buf; p < stop && p < buf + len; p++) {
            col = *p == '\n' ? 1 : col + 1;
            line += *p == '\n';
        }
        cJSON_Delete(root);
        free(buf);
        return fail(errstr, errstr_size, "config file %s line %d column %d: %s", path, line, col,
                    what);
    }
    struct text_pos tp = {buf, len, 0, path};
    char keypath[256] = "";
    int rc = load_tree(cfg, root, keypath, sizeof(keypath), &tp, errstr, errstr_size);
    cJSON_Delete(root);
    free(buf);
    return rc;
}

int smm_config_load_env(struct smm_config *cfg, char **envp, char *errstr, size_t errstr_size)
{
    for (char **e = envp; e && *e; e++) {
        if (strncmp(*e, "SMM_", 4) != 0) {
            continue;
        }
        const char *eq = strchr(*e, '=');
        if (!eq || eq - *e - 4 <= 0 || eq - *e - 4 >= 200) {
            continue;
        }
        char key[256];
        size_t n = (size_t)(eq - *e - 4);
        for (size_t i = 0; i < n; i++) {
            char c = (*e)[4 + i];
            key[i] = c == '_' ? '.' : (char)tolower((unsigned char)c);
        }
        key[n] = '\0';
        /* Our own keys may contain '_' (redis.unix_socket): match them underscore-blind. */
        if (strncmp(key, "kafka.", 6) != 0) {
            for (size_t i = 0; i < N_KEYS; i++) {
                const char *a = keys[i].name;
                size_t j = 0;
                for (; a[j] && key[j]; j++) {
                    if (!(a[j] == key[j] || (a[j] == '_' && key[j] == '.'))) {
                        break;
                    }
                }
                if (!a[j] && !key[j]) {
                    snprintf(key, sizeof(key), "%s", a);
                    break;
                }
            }
        }
        char origin[300];
        snprintf(origin, sizeof(origin), "environment %.*s", (int)(eq - *e), *e);
        if (smm_config_set(cfg, key, eq + 1, origin, errstr, errstr_size) != SMM_OK) {
            return SMM_ERR;
        }
    }
    return SMM_OK;
}

static int parse_windows(struct smm_config *cfg, char *errstr, size_t errstr_size)
{
    cfg->n_windows = 0;
    const char *p = cfg->windows;
    while (*p) {
        char item[32];
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= sizeof(item)) {
            return fail(errstr, errstr_size, "windows: bad item in \"%s\"", cfg->windows);
        }
        memcpy(item, p, n);
        item[n] = '\0';
        int64_t ms;
        if (parse_duration(item, &ms) != SMM_OK || ms <= 0 || ms % 60000 != 0 ||
            ms > 30 * DAY_MS) {
            return fail(errstr, errstr_size,
                        "windows: \"%s\" is not a whole number of minutes up to 30d", item);
        }
        if (cfg->n_windows == SMM_CFG_MAX_WINDOWS) {
            return fail(errstr, errstr_size, "windows: at most %d", SMM_CFG_MAX_WINDOWS);
        }
        int64_t m = ms / 60000;
        int i = cfg->n_windows++;
        while (i > 0 && cfg->window_min[i - 1] > m) {
            cfg->window_min[i] = cfg->window_min[i - 1];
            i--;
        }
        if (i > 0 && cfg->window_min[i - 1] == m) {
            return fail(errstr, errstr_size, "windows: \"%s\" given twice", item);
        }
        cfg->window_min[i] = m;
        p += n;
        if (*p == ',') {
            p++;
        }
    }
    if (cfg->n_windows == 0) {
        return fail(errstr, errstr_size, "windows: at least one window is needed");
    }
    return SMM_OK;
}

static int parse_engagement(struct smm_config *cfg, char *errstr, size_t errstr_size)
{
    cfg->engagement_mask = 0;
    const char *p = cfg->engagement;
    while (*p) {
        char item[32];
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= sizeof(item)) {
            return fail(errstr, errstr_size, "engagement: bad item in \"%s\"", cfg->engagement);
        }
        memcpy(item, p, n);
        item[n] = '\0';
        enum smm_event_type t;
        if (smm_event_type_parse(item, &t) != SMM_OK || t == SMM_EV_UNLIKE ||
            t == SMM_EV_COMMENT_DELETE) {
            return fail(errstr, errstr_size,
                        "engagement: \"%s\" is not a countable event type (unlike and "
                        "comment_delete subtract automatically)",
                        item);
        }
        cfg->engagement_mask |= 1u << t;
        p += n;
        if (*p == ',') {
            p++;
        }
    }
    return SMM_OK;
}

int smm_config_http_bind_address(const char *address, char *out, size_t out_size, char *errstr,
                                 size_t errstr_size)
{
    unsigned char addr[16];
    if (inet_pton(AF_INET, address, addr) == 1 || inet_pton(AF_INET6, address, addr) == 1) {
        snprintf(out, out_size, "%s", address);
        return SMM_OK;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rc = address[0] ? getaddrinfo(address, NULL, &hints, &res) : EAI_NONAME;
    if (rc != 0 || !res) {
        return fail(errstr, errstr_size,
                    "http.address: \"%s\" is neither an IPv4 or IPv6 address nor a host name "
                    "that resolves (%s)",
                    address, rc ? gai_strerror(rc) : "no address");
    }
    rc = getnameinfo(res->ai_addr, res->ai_addrlen, out, (socklen_t)out_size, NULL, 0,
                     NI_NUMERICHOST);
    freeaddrinfo(res);
    if (rc != 0) {
        return fail(errstr, errstr_size, "http.address: \"%s\": %s", address, gai_strerror(rc));
    }
    return SMM_OK;
}

int smm_config_finish(struct smm_config *cfg, char *errstr, size_t errstr_size)
{
    if (!(cfg->viral_n_star > 0)) {
        return fail(errstr, errstr_size, "viral.n_star: must be > 0");
    }
    if (!(cfg->viral_sd_floor > 0)) {
        return fail(errstr, errstr_size, "viral.sd_floor: must be > 0");
    }
    if (cfg->viral.exit_frac > 1 || cfg->viral.rise_frac > 1) {
        return fail(errstr, errstr_size, "viral.exit_frac/viral.rise_frac: must be <= 1");
    }
    if (cfg->topic[0] == '\0') {
        return fail(errstr, errstr_size, "topic: must not be empty");
    }
    if (cfg->prefix[0] == '\0' || strlen(cfg->prefix) > 64) {
        return fail(errstr, errstr_size, "prefix: must be 1 to 64 bytes");
    }
    for (const char *p = cfg->prefix; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == '{' || *p == '}' || *p == '*') {
            return fail(errstr, errstr_size, "prefix: no spaces, braces or '*' allowed");
        }
    }
    if (strcmp(cfg->log_level, "debug") && strcmp(cfg->log_level, "info") &&
        strcmp(cfg->log_level, "warn") && strcmp(cfg->log_level, "error")) {
        return fail(errstr, errstr_size, "log.level: expected debug, info, warn or error, got \"%s\"",
                    cfg->log_level);
    }
    if (strcmp(cfg->log_format, "text") && strcmp(cfg->log_format, "json")) {
        return fail(errstr, errstr_size, "log.format: expected text or json, got \"%s\"",
                    cfg->log_format);
    }
    /* The zone and hours syntax belong to metrics/bizhours; empty is never meant. */
    if (cfg->response_tz[0] == '\0') {
        return fail(errstr, errstr_size, "response.tz: must not be empty (e.g. UTC)");
    }
    if (cfg->response_hours[0] == '\0') {
        return fail(errstr, errstr_size,
                    "response.hours: must not be empty (e.g. mon-fri 09:00-17:00)");
    }
    char bind_addr[64];
    if (cfg->http_enabled && smm_config_http_bind_address(cfg->http_address, bind_addr,
                                                          sizeof(bind_addr), errstr,
                                                          errstr_size) != SMM_OK) {
        return SMM_ERR;
    }
    if (parse_windows(cfg, errstr, errstr_size) != SMM_OK ||
        parse_engagement(cfg, errstr, errstr_size) != SMM_OK ||
        finish_goals(cfg, errstr, errstr_size) != SMM_OK) {
        return SMM_ERR;
    }
    if (check_retention(cfg, errstr, errstr_size) != SMM_OK) {
        return SMM_ERR;
    }
    int64_t longest_ms = cfg->window_min[cfg->n_windows - 1] * 60000;
    if (cfg->retention_ms == 0) {
        cfg->retention_ms = longest_ms;
    }
    /* A retention beyond the longest window plus grace is allowed: such late events count
     * in lifetime totals and daily buckets (and in response times, attribution...), their
     * minute buckets expire at once (docs/redis-keys.md). */
    if (cfg->flush_max_interval_ms < cfg->flush_interval_ms) {
        cfg->flush_max_interval_ms = cfg->flush_interval_ms;
    }
    if (cfg->dlq_topic[0] == '\0') {
        size_t n = strlen(cfg->topic) + 5;
        char *d = malloc(n);
        if (!d) {
            return fail(errstr, errstr_size, "out of memory");
        }
        snprintf(d, n, "%s.dlq", cfg->topic);
        free(cfg->dlq_topic);
        cfg->dlq_topic = d;
    }
    if (cfg->alerts_topic[0] == '\0') {
        size_t n = strlen(cfg->topic) + 8;
        char *t = malloc(n);
        if (!t) {
            return fail(errstr, errstr_size, "out of memory");
        }
        snprintf(t, n, "%s.alerts", cfg->topic);
        free(cfg->alerts_topic);
        cfg->alerts_topic = t;
    }
    if (cfg->redis_password_file[0]) {
        FILE *f = fopen(cfg->redis_password_file, "r");
        if (!f) {
            return fail(errstr, errstr_size, "redis.password_file: %s: %s",
                        cfg->redis_password_file, strerror(errno));
        }
        char line[512];
        if (!fgets(line, sizeof(line), f)) {
            line[0] = '\0';
        }
        fclose(f);
        line[strcspn(line, "\r\n")] = '\0';
        free(cfg->redis_password);
        cfg->redis_password = strdup(line);
        if (!cfg->redis_password) {
            return fail(errstr, errstr_size, "out of memory");
        }
    }
    int has_bootstrap = 0;
    for (int i = 0; i < cfg->n_kafka; i++) {
        has_bootstrap |= strcmp(cfg->kafka_key[i], "bootstrap.servers") == 0 ||
                         strcmp(cfg->kafka_key[i], "metadata.broker.list") == 0;
    }
    if (!has_bootstrap) {
        return fail(errstr, errstr_size,
                    "kafka.bootstrap.servers: required (e.g. --brokers 127.0.0.1:9092)");
    }
    return SMM_OK;
}

void smm_config_print(const struct smm_config *cfg, FILE *f)
{
    const char *base = (const char *)cfg;
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct smm_config_key *k = &keys[i];
        if (k->type == CFG_STR) {
            const char *v = *(char *const *)(base + k->off);
            fprintf(f, "%s = %s\n", k->name,
                    smm_config_is_secret(k->name) && v && *v ? "********" : (v ? v : ""));
        } else if (k->type == CFG_NUM) {
            fprintf(f, "%s = %g\n", k->name, *(const double *)(base + k->off));
        } else if (k->type == CFG_BOOL) {
            fprintf(f, "%s = %s\n", k->name, *(const int64_t *)(base + k->off) ? "true" : "false");
        } else {
            fprintf(f, "%s = %lld\n", k->name, (long long)*(const int64_t *)(base + k->off));
        }
    }
    for (int i = 0; i < cfg->n_viral_over; i++) {
        fprintf(f, "viral.account.%s.%s = %g\n", cfg->viral_over[i].account,
                cfg->viral_over[i].rule, cfg->viral_over[i].value);
    }
    for (int i = 0; i < cfg->n_response_accounts; i++) {
        const struct smm_response_account *ra = &cfg->response_accounts[i];
        if (ra->tz) {
            fprintf(f, "response.account.%s.tz = %s\n", ra->account, ra->tz);
        }
        if (ra->hours) {
            fprintf(f, "response.account.%s.hours = %s\n", ra->account, ra->hours);
        }
        if (ra->sla_ms >= 0) {
            fprintf(f, "response.account.%s.sla = %lld\n", ra->account, (long long)ra->sla_ms);
        }
    }
    for (int i = 0; i < cfg->n_sov_sets; i++) {
        fprintf(f, "sov.set.%s = ", cfg->sov_sets[i].name);
        for (int j = 0; j < cfg->sov_sets[i].n_brands; j++) {
            fprintf(f, "%s%s", j ? "," : "", cfg->sov_sets[i].brands[j]);
        }
        fputc('\n', f);
    }
    for (int i = 0; i < cfg->n_goals; i++) {
        const struct smm_goal_cfg *g = &cfg->goals[i];
        const char *text[] = {g->account, g->metric, g->kind};
        for (int j = 0; j < 3; j++) {
            if (text[j]) {
                fprintf(f, "goal.%s.%s = %s\n", g->id, goal_fields[j], text[j]);
            }
        }
        if (!isnan(g->target)) {
            fprintf(f, "goal.%s.target = %.15g\n", g->id, g->target);
        }
        if (g->start) {
            fprintf(f, "goal.%s.start = %s\n", g->id, g->start);
        }
        if (g->days > 0) {
            fprintf(f, "goal.%s.days = %lld\n", g->id, (long long)g->days);
        }
    }
    for (int i = 0; i < cfg->n_kafka; i++) {
        fprintf(f, "kafka.%s = %s\n", cfg->kafka_key[i],
                smm_config_is_secret(cfg->kafka_key[i]) ? "********" : cfg->kafka_val[i]);
    }
}

void smm_config_print_help(FILE *f)
{
    fprintf(f, "Configuration keys (JSON file, SMM_<KEY> environment, or --set key=value):\n\n");
    for (size_t i = 0; i < N_KEYS; i++) {
        fprintf(f, "  %-26s default \"%s\"\n      %s\n", keys[i].name, keys[i].def, keys[i].help);
    }
    fprintf(f, "  %-26s\n      one account's own zone, opening hours or reply deadline\n"
               "      (unset: response.tz, response.hours, response.sla)\n",
            "response.account.<account_id>.tz|hours|sla");
    fprintf(f, "  %-26s\n      competitor set for share of voice: \"brandA,brandB,...\" (at least\n"
               "      2 brands; in a JSON file also an array of strings); the name has no | or :\n",
            "sov.set.<name>");
    fprintf(f, "  %-26s\n"
               "      a business goal (docs/goals.md): account; metric (an account metric\n"
               "      or response_rate); kind increase (target = percent over the baseline) or\n"
               "      at_least (target = the value); start YYYY-MM-DD (UTC); days >= 1\n",
            "goal.<id>.account|metric|kind|target|start|days");
    fprintf(f, "  %-26s\n      any librdkafka property, e.g. kafka.bootstrap.servers,\n"
               "      kafka.security.protocol, kafka.sasl.username (see librdkafka "
               "CONFIGURATION.md)\n",
            "kafka.<property>");
}
