/* processor/config.c - the key table and its parsers.
 *
 * One table (smm_config_keys[]) names every key with its type, default, bounds and help;
 * defaults go through the same parser as user input, so a bad default fails a test rather
 * than a deployment. kafka.* keys are collected verbatim for rd_kafka_conf_set(), except
 * the few the exactly-once design owns (see reserved_kafka[]), which are rejected. */
#include "processor/config.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
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
    {"retention_ms", CFG_DURATION, "0", 0, 365 * DAY_MS, OFF(retention_ms),
     "Reject events older than this (0 = longest window)"},
    {"max_future_ms", CFG_DURATION, "300000", 0, DAY_MS, OFF(max_future_ms),
     "Reject events further than this in the future"},
    {"engagement", CFG_STR, "like,comment,share,click", 0, 0, OFF(engagement),
     "Event types counted as engagement (unlike/comment_delete subtract)"},
    {"limits.max_payload_bytes", CFG_INT, "65536", 64, 16777216, OFF(max_payload_bytes),
     "Larger messages are dead-lettered"},
    {"limits.max_id_bytes", CFG_INT, "128", 1, SMM_EVENT_ID_MAX, OFF(max_id_bytes),
     "Longer ids are dead-lettered"},
    {"reach.refresh_max", CFG_INT, "500", 1, 1000000, OFF(reach_refresh_max),
     "Entities whose reach rates are refreshed per tick"},
    {"reach.window_refresh_ms", CFG_DURATION, "5000", 0, 3600000, OFF(reach_window_refresh_ms),
     "Window reach of active accounts is recomputed this often"},
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
     "HTTP listen address (IPv4 or IPv6 literal)"},
    {"http.port", CFG_INT, "8080", 0, 65535, OFF(http_port), "HTTP port (0 = ephemeral, logged)"},
    {"http.token", CFG_STR, "", 0, 0, OFF(http_token),
     "Bearer token required on every route but /healthz (secret)"},
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
     "How long a reply that arrives before its message waits for it"},
    {"segments.top_n", CFG_INT, "20", 1, 1000, OFF(segments_top_n),
     "Distinct region/segment/source values kept per account; later ones count as other"},
    {"referral.window", CFG_DURATION, "30d", 1, 365 * DAY_MS, OFF(referral_window_ms),
     "A conversion is attributed to a referral at most this long before it"},
    {"referral.max_depth", CFG_INT, "3", 1, 10, OFF(referral_max_depth),
     "Referrers credited up a referral chain"},
    {"days.keep", CFG_INT, "400", 1, 3650, OFF(days_keep),
     "Daily account buckets (<prefix>d:<day>) kept, in days; goals read them"},
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

int smm_config_set(struct smm_config *cfg, const char *key, const char *value,
                   const char *origin, char *errstr, size_t errstr_size)
{
    if (strncmp(key, "kafka.", 6) == 0) {
        return set_kafka(cfg, key, value, origin, errstr, errstr_size);
    }
    if (strncmp(key, "viral.account.", 14) == 0) {
        return set_viral_override(cfg, key, value, origin, errstr, errstr_size);
    }
    const struct smm_config_key *k = find_key(key);
    if (!k) {
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
}

static int load_tree(struct smm_config *cfg, const cJSON *node, char *path, size_t path_size,
                     const char *origin, char *errstr, size_t errstr_size)
{
    size_t plen = strlen(path);
    for (const cJSON *it = node->child; it; it = it->next) {
        if (!it->string) {
            continue;
        }
        int n = snprintf(path + plen, path_size - plen, "%s%s", plen ? "." : "", it->string);
        if (n < 0 || (size_t)n >= path_size - plen) {
            return fail(errstr, errstr_size, "%s: key too long", origin);
        }
        int rc;
        char buf[64];
        if (cJSON_IsObject(it)) {
            rc = load_tree(cfg, it, path, path_size, origin, errstr, errstr_size);
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
        int line = 1;
        const char *stop = trail ? trail : root ? buf : (end ? end : buf);
        for (const char *p = buf; p < stop && p < buf + len; p++) {
            line += *p == '\n';
        }
        cJSON_Delete(root);
        free(buf);
        return fail(errstr, errstr_size, "config file %s line %d: %s", path, line, what);
    }
    char origin[300];
    snprintf(origin, sizeof(origin), "config file %s", path);
    char keypath[256] = "";
    int rc = load_tree(cfg, root, keypath, sizeof(keypath), origin, errstr, errstr_size);
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
    unsigned char addr[16];
    if (cfg->http_enabled && inet_pton(AF_INET, cfg->http_address, addr) != 1 &&
        inet_pton(AF_INET6, cfg->http_address, addr) != 1) {
        return fail(errstr, errstr_size,
                    "http.address: expected an IPv4 or IPv6 address, got \"%s\"",
                    cfg->http_address);
    }
    if (parse_windows(cfg, errstr, errstr_size) != SMM_OK ||
        parse_engagement(cfg, errstr, errstr_size) != SMM_OK) {
        return SMM_ERR;
    }
    int64_t longest_ms = cfg->window_min[cfg->n_windows - 1] * 60000;
    if (cfg->retention_ms == 0) {
        cfg->retention_ms = longest_ms;
    }
    if (cfg->retention_ms > longest_ms + cfg->window_grace_ms) {
        return fail(errstr, errstr_size,
                    "retention_ms: %lld exceeds the longest window plus window.grace_ms (%lld): "
                    "late events would land in expired buckets",
                    (long long)cfg->retention_ms, (long long)(longest_ms + cfg->window_grace_ms));
    }
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
    fprintf(f, "  %-26s\n      any librdkafka property, e.g. kafka.bootstrap.servers,\n"
               "      kafka.security.protocol, kafka.sasl.username (see librdkafka "
               "CONFIGURATION.md)\n",
            "kafka.<property>");
}
