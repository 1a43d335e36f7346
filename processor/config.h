/* processor/config.h - the processor's configuration: one table of keys, three sources.
 *
 * Precedence, lowest first: built-in defaults, the JSON config file (nested objects are
 * flattened with dots: {"redis": {"port": 6380}} sets redis.port), environment variables
 * (SMM_ + key upper-cased with '.' as '_': SMM_REDIS_PASSWORD), then command-line
 * --set key=value. Every kafka.* key goes to librdkafka unchanged (minus the prefix).
 * Unknown keys and bad values are errors that name the key. */
#ifndef SMM_PROCESSOR_CONFIG_H
#define SMM_PROCESSOR_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "metrics/viral.h"

#define SMM_CFG_MAX_WINDOWS 8
#define SMM_CFG_MAX_KAFKA 64
#define SMM_CFG_MAX_VIRAL_OVERRIDES 256
#define SMM_CFG_MAX_RESPONSE_ACCOUNTS 256
#define SMM_CFG_MAX_SOV_SETS 64
#define SMM_CFG_MAX_GOALS 64

/* viral.account.<account_id>.<rule> = value: one per-account rule override. */
struct smm_viral_override {
    char *account;
    char rule[32];
    double value;
};

/* response.account.<account_id>.{tz,hours,sla}: an account's own business hours, time
 * zone or reply deadline. NULL / -1 = the global response.* value. */
struct smm_response_account {
    char *account;
    char *tz;
    char *hours;
    int64_t sla_ms;
};

/* sov.set.<name> = "brandA,brandB,...": a competitor set for share of voice. */
struct smm_sov_set {
    char *name;
    int n_brands;
    char **brands;
};

/* goal.<id>.{account,metric,kind,target,start,days}: one business goal (docs/goals.md). */
struct smm_goal_cfg {
    char *id;
    char *account;
    char *metric;     /* an account metric field ("conversion", ...) or "response_rate" */
    char *kind;       /* "increase" or "at_least" */
    double target;    /* percent for increase; the value for at_least */
    char *start;      /* YYYY-MM-DD, UTC */
    int64_t start_day; /* derived: days since 1970-01-01 */
    int64_t days;
};

struct smm_config {
    char *topic;
    char *dlq_topic; /* "" = <topic>.dlq */
    char *group_id;
    char *prefix;
    char *redis_host;
    int64_t redis_port;
    char *redis_unix_socket;
    int64_t redis_db;
    int64_t redis_shards; /* redis.shards: the {N} hash tags of per-entity keys */
    int64_t counters_cache_entries; /* redis.cache_entities: see processor/counters.h */
    int64_t counters_cache_sketch_mb; /* redis.cache_sketch_mb: the same */
    char *redis_username;
    char *redis_password;
    char *redis_password_file;
    int64_t redis_timeout_ms;
    int64_t flush_interval_ms;
    int64_t flush_max_interval_ms;
    int64_t flush_max_events;
    int64_t tick_ms;
    int64_t stats_interval_ms;
    char *windows; /* "5m,1h,24h" */
    int64_t window_grace_ms;
    int64_t retention_ms;
    int64_t max_future_ms;
    char *engagement;
    int64_t max_payload_bytes;
    int64_t max_id_bytes;
    int64_t reach_refresh_max;
    char *log_level;
    char *log_format;
    int64_t viral_enabled;
    struct smm_viral_rules viral; /* the default rules (viral.reach_min, ...) */
    int64_t viral_exit_ticks, viral_cooldown_ms, viral_stale_ms;
    int64_t viral_max_nodes, viral_max_posts, viral_evict_ms, viral_track_reach;
    int64_t viral_baseline_min, viral_warmup_messages, viral_write_ms;
    double viral_n_star, viral_sd_floor;
    int n_viral_over;
    struct smm_viral_override viral_over[SMM_CFG_MAX_VIRAL_OVERRIDES];
    int64_t http_enabled; /* 0/1 */
    char *http_address;
    int64_t http_port;
    char *http_token; /* secret; "" = no authentication */
    int64_t http_max_per_ip;         /* 0 = no per-address limit */
    int64_t http_header_timeout_ms;  /* 0 = only the 30 s idle timeout */
    int64_t http_health_max_age_ms;  /* 0 = /healthz ignores the loop's heartbeat */
    char *http_allowed_hosts;        /* comma list of Host names served without a token */
    int64_t alerts_kafka;      /* bool */
    char *alerts_topic;        /* "" = <topic>.alerts */
    int64_t alerts_stream_max; /* MAXLEN ~ of <prefix>alerts */
    int64_t log_rate_limit_ms;
    /* Response time, share of voice, referrals, segments, goals (docs/insights.md). */
    char *response_tz;           /* response.tz: default zone of business hours */
    char *response_hours;        /* response.hours: "mon-fri 09:00-17:00" */
    int64_t response_sla_ms;     /* response.sla */
    int64_t response_max_open;   /* response.max_open: open waits kept per account */
    int64_t response_reorder_ms; /* response.reorder: how long a reply waits for its message */
    int n_response_accounts;
    struct smm_response_account response_accounts[SMM_CFG_MAX_RESPONSE_ACCOUNTS];
    int n_sov_sets;
    struct smm_sov_set sov_sets[SMM_CFG_MAX_SOV_SETS];
    int64_t segments_enabled;    /* segments.enabled */
    int64_t segments_top_n;      /* segments.top_n */
    int64_t segments_sketch_factor; /* segments.sketch_factor: m = factor x top_n */
    int64_t segments_half_life_ms;  /* segments.half_life */
    int64_t referral_window_ms;  /* referral.window */
    int64_t referral_max_depth;  /* referral.max_depth */
    int64_t days_keep;           /* days.keep: daily account buckets kept */
    int64_t retention_idle_days; /* retention.idle_days: per-id keys expire this idle (0 = never) */
    int64_t goals_eval_ms;       /* goals.eval_ms */
    int n_goals;
    struct smm_goal_cfg goals[SMM_CFG_MAX_GOALS];
    /* Derived by smm_config_finish(): */
    int n_windows;
    int64_t window_min[SMM_CFG_MAX_WINDOWS]; /* window lengths in minutes, ascending */
    unsigned engagement_mask;
    /* kafka.* passthrough, in the order given (later wins in librdkafka too). */
    int n_kafka;
    char *kafka_key[SMM_CFG_MAX_KAFKA];
    char *kafka_val[SMM_CFG_MAX_KAFKA];
};

/* Fills cfg with the defaults. Returns SMM_OK; on failure errstr names the key. */
int smm_config_init(struct smm_config *cfg, char *errstr, size_t errstr_size);
void smm_config_free(struct smm_config *cfg);

/* Sets one key from text (the same parser for defaults, file, env and flags). `origin`
 * ("config file x.json", "env SMM_X", "--set") prefixes errors. */
int smm_config_set(struct smm_config *cfg, const char *key, const char *value,
                   const char *origin, char *errstr, size_t errstr_size);
int smm_config_load_file(struct smm_config *cfg, const char *path, char *errstr,
                         size_t errstr_size);
/* Applies SMM_* environment variables from envp (NULL-terminated, e.g. environ). */
int smm_config_load_env(struct smm_config *cfg, char **envp, char *errstr, size_t errstr_size);
/* Validates cross-key rules and derives window/engagement tables; reads
 * redis.password_file. Call once after all sources. */
int smm_config_finish(struct smm_config *cfg, char *errstr, size_t errstr_size);

/* Applies the overrides of cfg to r for one account (r starts as cfg->viral). */
void smm_config_viral_rules(const struct smm_config *cfg, const char *account,
                            struct smm_viral_rules *r);

/* An account's response settings: its own tz/hours/sla where set, else the global ones. */
void smm_config_response_for(const struct smm_config *cfg, const char *account,
                             const char **tz, const char **hours, int64_t *sla_ms);

/* Resolves http.address (an IP literal, or a host name such as localhost) to the numeric
 * address to bind: the first getaddrinfo() answer. Writes it into out and returns SMM_OK,
 * or SMM_ERR with the reason (naming the key) in errstr. */
int smm_config_http_bind_address(const char *address, char *out, size_t out_size, char *errstr,
                                 size_t errstr_size);

/* Writes "key = value" lines (secrets masked) to f. */
void smm_config_print(const struct smm_config *cfg, FILE *f);
/* Writes the key table (name, default, meaning) to f. */
void smm_config_print_help(FILE *f);
/* 1 when a key's value must never be printed or logged. */
int smm_config_is_secret(const char *key);

#endif
