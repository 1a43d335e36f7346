/* tests/unit/test_config.c - the configuration table and its sources (processor/config.c).
 *
 * Defaults, the one setter, the JSON file (written to a mkstemp() file), environment
 * variables (a fake envp array, never the real environment), the cross-key checks of
 * smm_config_finish() and secret masking in smm_config_print(). Every error test checks
 * that the message names the key, since that is what an operator reads. Links smm_core. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics/event.h"
#include "processor/config.h"

static void cfg_init(struct smm_config *cfg)
{
    char err[256] = "";
    cr_assert_eq(smm_config_init(cfg, err, sizeof(err)), SMM_OK, "init: %s", err);
}

static void set_ok(struct smm_config *cfg, const char *key, const char *value)
{
    char err[256] = "";
    cr_assert_eq(smm_config_set(cfg, key, value, "--set", err, sizeof(err)), SMM_OK,
                 "%s=%s: %s", key, value, err);
}

/* Asserts smm_config_set fails and that errstr contains each of the needles. */
static void set_fails(struct smm_config *cfg, const char *key, const char *value,
                      const char *needle1, const char *needle2)
{
    char err[256] = "";
    cr_assert_eq(smm_config_set(cfg, key, value, "--set", err, sizeof(err)), SMM_ERR,
                 "%s=%s accepted", key, value);
    cr_assert(strstr(err, needle1) != NULL, "\"%s\" does not mention \"%s\"", err, needle1);
    if (needle2) {
        cr_assert(strstr(err, needle2) != NULL, "\"%s\" does not mention \"%s\"", err, needle2);
    }
}

static void finish_ok(struct smm_config *cfg)
{
    char err[256] = "";
    cr_assert_eq(smm_config_finish(cfg, err, sizeof(err)), SMM_OK, "finish: %s", err);
}

static void finish_fails(struct smm_config *cfg, const char *needle)
{
    char err[256] = "";
    cr_assert_eq(smm_config_finish(cfg, err, sizeof(err)), SMM_ERR, "finish accepted");
    cr_assert(strstr(err, needle) != NULL, "\"%s\" does not mention \"%s\"", err, needle);
}

/* Writes text to a fresh temp file; the caller unlinks path. */
static void write_temp(char *path, size_t size, const char *text)
{
    snprintf(path, size, "/tmp/smm-test-config-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0, "mkstemp failed");
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static const char *kafka_get(const struct smm_config *cfg, const char *key)
{
    for (int i = 0; i < cfg->n_kafka; i++) {
        if (strcmp(cfg->kafka_key[i], key) == 0) {
            return cfg->kafka_val[i];
        }
    }
    return NULL;
}

/* A config that passes finish(): defaults plus a bootstrap server. */
static void cfg_ready(struct smm_config *cfg)
{
    cfg_init(cfg);
    set_ok(cfg, "kafka.bootstrap.servers", "x:1");
}

/* ---- defaults and the setter ---- */

Test(config, defaults)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    cr_assert_str_eq(cfg.topic, "smm.events");
    cr_assert_str_eq(cfg.dlq_topic, "");
    cr_assert_str_eq(cfg.group_id, "smm-processor");
    cr_assert_str_eq(cfg.prefix, "smm:");
    cr_assert_str_eq(cfg.redis_host, "127.0.0.1");
    cr_assert_eq(cfg.redis_port, 6379);
    cr_assert_str_eq(cfg.redis_unix_socket, "");
    cr_assert_eq(cfg.redis_db, 0);
    cr_assert_str_eq(cfg.redis_username, "");
    cr_assert_str_eq(cfg.redis_password, "");
    cr_assert_str_eq(cfg.redis_password_file, "");
    cr_assert_eq(cfg.redis_timeout_ms, 5000);
    cr_assert_eq(cfg.flush_interval_ms, 250);
    cr_assert_eq(cfg.flush_max_events, 100000);
    cr_assert_eq(cfg.tick_ms, 1000);
    cr_assert_eq(cfg.stats_interval_ms, 10000);
    cr_assert_str_eq(cfg.windows, "5m,1h,24h");
    cr_assert_eq(cfg.window_grace_ms, 3600000);
    cr_assert_eq(cfg.retention_ms, 0);
    cr_assert_eq(cfg.max_future_ms, 300000);
    cr_assert_str_eq(cfg.engagement, "like,comment,share,click");
    cr_assert_eq(cfg.max_payload_bytes, 65536);
    cr_assert_eq(cfg.max_id_bytes, 128);
    cr_assert_eq(cfg.reach_refresh_max, 1000);
    cr_assert_str_eq(cfg.log_level, "info");
    cr_assert_str_eq(cfg.log_format, "text");
    cr_assert_eq(cfg.log_rate_limit_ms, 1000);
    cr_assert_eq(cfg.n_kafka, 0);
    cr_assert_eq(cfg.n_windows, 0); /* derived only by finish() */
    smm_config_free(&cfg);
    /* free() is idempotent on a freed config. */
    smm_config_free(&cfg);
    smm_config_free(NULL);
}

Test(config, set_values)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    set_ok(&cfg, "redis.port", "6380");
    cr_assert_eq(cfg.redis_port, 6380);
    set_ok(&cfg, "redis.host", "cache.internal");
    cr_assert_str_eq(cfg.redis_host, "cache.internal");
    set_ok(&cfg, "redis.host", "");
    cr_assert_str_eq(cfg.redis_host, "");
    /* Durations: bare ms and every suffix. */
    set_ok(&cfg, "redis.timeout_ms", "1500");
    cr_assert_eq(cfg.redis_timeout_ms, 1500);
    set_ok(&cfg, "redis.timeout_ms", "1500ms");
    cr_assert_eq(cfg.redis_timeout_ms, 1500);
    set_ok(&cfg, "redis.timeout_ms", "10s");
    cr_assert_eq(cfg.redis_timeout_ms, 10000);
    set_ok(&cfg, "redis.timeout_ms", "2m");
    cr_assert_eq(cfg.redis_timeout_ms, 120000);
    set_ok(&cfg, "window.grace_ms", "2h");
    cr_assert_eq(cfg.window_grace_ms, 7200000);
    set_ok(&cfg, "window.grace_ms", "1d");
    cr_assert_eq(cfg.window_grace_ms, 86400000);
    /* Bounds are inclusive. */
    set_ok(&cfg, "redis.port", "1");
    set_ok(&cfg, "redis.port", "65535");
    set_ok(&cfg, "tick_ms", "50");
    set_ok(&cfg, "tick_ms", "1m");
    cr_assert_eq(cfg.tick_ms, 60000);
    set_ok(&cfg, "limits.max_id_bytes", "128");
    smm_config_free(&cfg);
}

Test(config, set_bad_int_names_key)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    set_fails(&cfg, "redis.port", "abc", "redis.port", "abc");
    set_fails(&cfg, "redis.port", "12x", "redis.port", "12x");
    set_fails(&cfg, "redis.port", "", "redis.port", NULL);
    set_fails(&cfg, "redis.db", "1.5", "redis.db", NULL);
    set_fails(&cfg, "flush.max_events", "99999999999999999999999", "flush.max_events", NULL);
    cr_assert_eq(cfg.redis_port, 6379, "failed set changed the value");
    cr_assert_eq(cfg.redis_db, 0);
    /* The origin prefixes the message. */
    set_fails(&cfg, "redis.port", "abc", "--set", NULL);
    smm_config_free(&cfg);
}

Test(config, set_bad_duration_names_key)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    set_fails(&cfg, "tick_ms", "5x", "tick_ms", "5x");
    set_fails(&cfg, "tick_ms", "1 s", "tick_ms", NULL);
    set_fails(&cfg, "redis.timeout_ms", "s", "redis.timeout_ms", NULL);
    set_fails(&cfg, "redis.timeout_ms", "", "redis.timeout_ms", NULL);
    set_fails(&cfg, "flush.interval_ms", "10sec", "flush.interval_ms", NULL);
    set_fails(&cfg, "window.grace_ms", "9223372036854775807d", "window.grace_ms", NULL);
    cr_assert_eq(cfg.tick_ms, 1000);
    cr_assert_eq(cfg.redis_timeout_ms, 5000);
    smm_config_free(&cfg);
}

Test(config, log_rate_limit_key)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    set_ok(&cfg, "log.rate_limit_ms", "0");
    cr_assert_eq(cfg.log_rate_limit_ms, 0);
    set_fails(&cfg, "log.rate_limit_ms", "-1", "log.rate_limit_ms", NULL);
    set_fails(&cfg, "log.rate_limit_ms", "2h", "log.rate_limit_ms", NULL);
    char *envp[] = {"SMM_LOG_RATE_LIMIT_MS=5s", NULL};
    char err[256] = "";
    cr_assert_eq(smm_config_load_env(&cfg, envp, err, sizeof(err)), SMM_OK, "%s", err);
    cr_assert_eq(cfg.log_rate_limit_ms, 5000);
    smm_config_free(&cfg);
}

Test(config, set_out_of_range_names_key)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    set_fails(&cfg, "redis.port", "0", "redis.port", "0");
    set_fails(&cfg, "redis.port", "65536", "redis.port", "65536");
    set_fails(&cfg, "redis.port", "-1", "redis.port", NULL);
    set_fails(&cfg, "redis.db", "16", "redis.db", NULL);
    set_fails(&cfg, "tick_ms", "49", "tick_ms", NULL);
    set_fails(&cfg, "tick_ms", "61s", "tick_ms", "61000");
    set_fails(&cfg, "limits.max_id_bytes", "129", "limits.max_id_bytes", NULL);
    set_fails(&cfg, "limits.max_payload_bytes", "63", "limits.max_payload_bytes", NULL);
    set_fails(&cfg, "max_future_ms", "2d", "max_future_ms", NULL);
    cr_assert_eq(cfg.redis_port, 6379);
    cr_assert_eq(cfg.tick_ms, 1000);
    cr_assert_eq(cfg.max_id_bytes, 128);
    smm_config_free(&cfg);
}

Test(config, unknown_key_names_key)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    set_fails(&cfg, "redis.hots", "h", "redis.hots", "unknown");
    set_fails(&cfg, "Redis.port", "1", "Redis.port", NULL);
    set_fails(&cfg, "", "1", "unknown", NULL);
    set_fails(&cfg, "kafka.", "x", "kafka.", NULL);
    smm_config_free(&cfg);
}

static void load_fails(const char *text, const char *needle1, const char *needle2);

/* A typo gets the nearest known key; something unlike any key gets no guess. */
Test(config, unknown_key_did_you_mean)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    set_fails(&cfg, "redis.hots", "h", "redis.hots: unknown key", "did you mean redis.host?");
    set_fails(&cfg, "flush.intervl_ms", "5", "flush.intervl_ms", "did you mean flush.interval_ms?");
    set_fails(&cfg, "redis.prot", "1", "redis.prot", "did you mean redis.port?");
    char err[256] = "";
    cr_assert_eq(smm_config_set(&cfg, "zzzz", "1", "test", err, sizeof(err)), SMM_ERR);
    cr_assert(strstr(err, "zzzz") && !strstr(err, "did you mean"), "%s", err);
    smm_config_free(&cfg);
    /* In a file: the key, its line, and the guess. */
    load_fails("{\n  \"redis\": {\n    \"port\": 6380,\n    \"hots\": \"h\"\n  }\n}\n",
               "line 4: redis.hots: unknown key", "did you mean redis.host?");
    /* The same name twice: each occurrence has its own line. */
    load_fails("{\"http\": {\"port\": 0},\n\"redis\": {\n\"port\": 0}}\n",
               "line 3: redis.port", NULL);
}

Test(config, kafka_passthrough)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    set_ok(&cfg, "kafka.bootstrap.servers", "b1:9092");
    set_ok(&cfg, "kafka.security.protocol", "SASL_SSL");
    set_ok(&cfg, "kafka.sasl.username", "u");
    cr_assert_eq(cfg.n_kafka, 3);
    cr_assert_str_eq(cfg.kafka_key[0], "bootstrap.servers");
    cr_assert_str_eq(cfg.kafka_val[0], "b1:9092");
    cr_assert_str_eq(cfg.kafka_key[1], "security.protocol");
    cr_assert_str_eq(cfg.kafka_val[1], "SASL_SSL");
    cr_assert_str_eq(cfg.kafka_key[2], "sasl.username");
    /* Setting a key again replaces its value in place. */
    set_ok(&cfg, "kafka.bootstrap.servers", "b2:9092");
    cr_assert_eq(cfg.n_kafka, 3);
    cr_assert_str_eq(cfg.kafka_key[0], "bootstrap.servers");
    cr_assert_str_eq(cfg.kafka_val[0], "b2:9092");
    /* Values are taken verbatim, unvalidated (librdkafka judges them). */
    set_ok(&cfg, "kafka.some.future.property", "");
    cr_assert_str_eq(kafka_get(&cfg, "some.future.property"), "");
    smm_config_free(&cfg);
}

Test(config, kafka_passthrough_limit)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    char key[64];
    for (int i = 0; i < SMM_CFG_MAX_KAFKA; i++) {
        snprintf(key, sizeof(key), "kafka.p%d", i);
        set_ok(&cfg, key, "v");
    }
    set_fails(&cfg, "kafka.one.too.many", "v", "kafka.one.too.many", NULL);
    cr_assert_eq(cfg.n_kafka, SMM_CFG_MAX_KAFKA);
    smm_config_free(&cfg);
}

Test(config, kafka_reserved_keys_rejected)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    set_fails(&cfg, "kafka.enable.auto.offset.store", "true", "kafka.enable.auto.offset.store",
              NULL);
    set_fails(&cfg, "kafka.group.id", "g", "kafka.group.id", "group_id");
    set_fails(&cfg, "kafka.enable.partition.eof", "true", "kafka.enable.partition.eof", NULL);
    cr_assert_eq(cfg.n_kafka, 0);
    smm_config_free(&cfg);
}

/* ---- JSON file ---- */

Test(config, load_file_nested)
{
    char path[64];
    write_temp(path, sizeof(path),
               "{\n"
               "  \"redis\": {\"port\": 6380, \"host\": \"r1\"},\n"
               "  \"kafka\": {\"bootstrap.servers\": \"h:1\", \"enable.ssl.certificate."
               "verification\": false},\n"
               "  \"flush\": {\"interval_ms\": \"1s\"},\n"
               "  \"limits\": {\"max_id_bytes\": 64},\n"
               "  \"windows\": \"10m,2h\",\n"
               "  \"topic\": \"events\"\n"
               "}\n");
    struct smm_config cfg;
    cfg_init(&cfg);
    char err[512] = "";
    int rc = smm_config_load_file(&cfg, path, err, sizeof(err));
    unlink(path);
    cr_assert_eq(rc, SMM_OK, "%s", err);
    cr_assert_eq(cfg.redis_port, 6380);
    cr_assert_str_eq(cfg.redis_host, "r1");
    cr_assert_str_eq(kafka_get(&cfg, "bootstrap.servers"), "h:1");
    cr_assert_str_eq(kafka_get(&cfg, "enable.ssl.certificate.verification"), "false");
    cr_assert_eq(cfg.n_kafka, 2);
    cr_assert_eq(cfg.flush_interval_ms, 1000);
    cr_assert_eq(cfg.max_id_bytes, 64);
    cr_assert_str_eq(cfg.windows, "10m,2h");
    cr_assert_str_eq(cfg.topic, "events");
    /* Keys the file did not name keep their defaults. */
    cr_assert_eq(cfg.redis_db, 0);
    cr_assert_eq(cfg.tick_ms, 1000);
    smm_config_free(&cfg);
}

Test(config, load_file_dotted_keys_at_top_level)
{
    char path[64];
    write_temp(path, sizeof(path), "{\"redis.port\": 6390, \"kafka.client.id\": \"c\"}");
    struct smm_config cfg;
    cfg_init(&cfg);
    char err[512] = "";
    int rc = smm_config_load_file(&cfg, path, err, sizeof(err));
    unlink(path);
    cr_assert_eq(rc, SMM_OK, "%s", err);
    cr_assert_eq(cfg.redis_port, 6390);
    cr_assert_str_eq(kafka_get(&cfg, "client.id"), "c");
    smm_config_free(&cfg);
}

static void load_fails(const char *text, const char *needle1, const char *needle2)
{
    char path[64];
    write_temp(path, sizeof(path), text);
    struct smm_config cfg;
    cfg_init(&cfg);
    char err[512] = "";
    int rc = smm_config_load_file(&cfg, path, err, sizeof(err));
    unlink(path);
    cr_assert_eq(rc, SMM_ERR, "accepted: %s", text);
    cr_assert(strstr(err, path) != NULL, "\"%s\" does not name the file %s", err, path);
    cr_assert(strstr(err, needle1) != NULL, "\"%s\" does not mention \"%s\"", err, needle1);
    if (needle2) {
        cr_assert(strstr(err, needle2) != NULL, "\"%s\" does not mention \"%s\"", err, needle2);
    }
    smm_config_free(&cfg);
}

Test(config, load_file_invalid_json_names_file)
{
    load_fails("{\"redis\": {\"port\": 6380", "invalid JSON", NULL);
    load_fails("{\n\"redis\": {\n\"port\": ,\n}}\n", "invalid JSON", "line 3 column 9:");
    load_fails("{\n  \"redis\": {\"port\": 1}\n  \"tick_ms\": 100\n}\n", "invalid JSON",
               "line 3 column 3:");
    load_fails("", "invalid JSON", NULL);
    load_fails("[1, 2]", "object", NULL);
    load_fails("\"redis\"", "object", NULL);
}

Test(config, load_file_trailing_garbage_rejected)
{
    /* A second document or stray text after the object is a broken file, not a comment:
     * silently ignoring it would drop settings the operator believes are applied. */
    load_fails("{\"redis\": {\"port\": 6380}}\n{\"redis\": {\"port\": 6381}}\n", "invalid JSON",
               NULL);
    load_fails("{\"redis\": {\"port\": 6380}} x", "invalid JSON", NULL);
    /* Trailing whitespace is fine. */
    char path[64];
    write_temp(path, sizeof(path), "{\"redis\": {\"port\": 6380}}\n\n  \t\r\n");
    struct smm_config cfg;
    cfg_init(&cfg);
    char err[512] = "";
    int rc = smm_config_load_file(&cfg, path, err, sizeof(err));
    unlink(path);
    cr_assert_eq(rc, SMM_OK, "%s", err);
    cr_assert_eq(cfg.redis_port, 6380);
    smm_config_free(&cfg);
}

Test(config, load_file_bad_values_name_key_and_file)
{
    load_fails("{\"redis\": {\"prot\": 6380}}", "redis.prot", "unknown");
    load_fails("{\"redis\": {\"port\": 70000}}", "redis.port", "70000");
    load_fails("{\"redis\": {\"port\": 1.5}}", "redis.port", NULL);
    load_fails("{\"redis\": {\"port\": null}}", "redis.port", NULL);
    load_fails("{\"windows\": [\"5m\"]}", "windows", NULL);
    load_fails("{\"kafka\": {\"group.id\": \"g\"}}", "kafka.group.id", NULL);
    /* Numbers beyond the int64 range must be reported, not converted (UB in C). */
    load_fails("{\"redis\": {\"port\": 1e300}}", "redis.port", NULL);
    load_fails("{\"redis\": {\"port\": -1e300}}", "redis.port", NULL);
    load_fails("{\"redis\": {\"port\": 9223372036854775808}}", "redis.port", NULL);
}

Test(config, load_file_missing_names_file)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    char err[512] = "";
    const char *path = "/nonexistent/smm-test/config.json";
    cr_assert_eq(smm_config_load_file(&cfg, path, err, sizeof(err)), SMM_ERR);
    cr_assert(strstr(err, path) != NULL, "%s", err);
    smm_config_free(&cfg);
}

/* ---- environment ---- */

Test(config, load_env)
{
    char *envp[] = {
        "PATH=/usr/bin",
        "SMM_REDIS_PORT=7000",
        "SMM_REDIS_UNIX_SOCKET=/x",
        "SMM_KAFKA_BOOTSTRAP_SERVERS=b1:9092,b2:9092",
        "SMM_WINDOW_GRACE_MS=1m",
        "SMM_LIMITS_MAX_PAYLOAD_BYTES=1024",
        "SMM_DLQ_TOPIC=dead",
        "SMMX_REDIS_PORT=1",
        "SMM_=ignored",
        "SMM_NOEQUALS",
        "smm_redis_port=2",
        NULL,
    };
    struct smm_config cfg;
    cfg_init(&cfg);
    char err[512] = "";
    cr_assert_eq(smm_config_load_env(&cfg, envp, err, sizeof(err)), SMM_OK, "%s", err);
    cr_assert_eq(cfg.redis_port, 7000);
    cr_assert_str_eq(cfg.redis_unix_socket, "/x");
    cr_assert_eq(cfg.n_kafka, 1);
    cr_assert_str_eq(kafka_get(&cfg, "bootstrap.servers"), "b1:9092,b2:9092");
    cr_assert_eq(cfg.window_grace_ms, 60000);
    cr_assert_eq(cfg.max_payload_bytes, 1024);
    cr_assert_str_eq(cfg.dlq_topic, "dead");
    /* NULL envp is an empty environment. */
    cr_assert_eq(smm_config_load_env(&cfg, NULL, err, sizeof(err)), SMM_OK);
    smm_config_free(&cfg);
}

Test(config, load_env_overrides_file)
{
    char path[64];
    write_temp(path, sizeof(path), "{\"redis\": {\"port\": 6380, \"host\": \"file-host\"}}");
    struct smm_config cfg;
    cfg_init(&cfg);
    char err[512] = "";
    int rc = smm_config_load_file(&cfg, path, err, sizeof(err));
    unlink(path);
    cr_assert_eq(rc, SMM_OK, "%s", err);
    char *envp[] = {"SMM_REDIS_PORT=7000", NULL};
    cr_assert_eq(smm_config_load_env(&cfg, envp, err, sizeof(err)), SMM_OK, "%s", err);
    cr_assert_eq(cfg.redis_port, 7000);
    cr_assert_str_eq(cfg.redis_host, "file-host");
    smm_config_free(&cfg);
}

Test(config, load_env_errors_name_variable_and_key)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    char err[512] = "";
    char *bad_port[] = {"SMM_REDIS_PORT=abc", NULL};
    cr_assert_eq(smm_config_load_env(&cfg, bad_port, err, sizeof(err)), SMM_ERR);
    cr_assert(strstr(err, "SMM_REDIS_PORT") != NULL, "%s", err);
    cr_assert(strstr(err, "redis.port") != NULL, "%s", err);
    char *unknown[] = {"SMM_REDIS_PROT=1", NULL};
    cr_assert_eq(smm_config_load_env(&cfg, unknown, err, sizeof(err)), SMM_ERR);
    cr_assert(strstr(err, "SMM_REDIS_PROT") != NULL, "%s", err);
    cr_assert(strstr(err, "unknown") != NULL, "%s", err);
    char *reserved[] = {"SMM_KAFKA_GROUP_ID=g", NULL};
    cr_assert_eq(smm_config_load_env(&cfg, reserved, err, sizeof(err)), SMM_ERR);
    cr_assert(strstr(err, "kafka.group.id") != NULL, "%s", err);
    cr_assert_eq(cfg.redis_port, 6379);
    smm_config_free(&cfg);
}

/* ---- finish ---- */

Test(config, finish_defaults)
{
    struct smm_config cfg;
    cfg_ready(&cfg);
    finish_ok(&cfg);
    cr_assert_eq(cfg.n_windows, 3);
    cr_assert_eq(cfg.window_min[0], 5);
    cr_assert_eq(cfg.window_min[1], 60);
    cr_assert_eq(cfg.window_min[2], 1440);
    cr_assert_eq(cfg.retention_ms, 1440LL * 60000, "retention defaults to the longest window");
    cr_assert_str_eq(cfg.dlq_topic, "smm.events.dlq");
    smm_config_free(&cfg);
}

Test(config, finish_windows_sorted)
{
    struct smm_config cfg;
    cfg_ready(&cfg);
    set_ok(&cfg, "windows", "24h,5m,1h");
    finish_ok(&cfg);
    cr_assert_eq(cfg.n_windows, 3);
    cr_assert_eq(cfg.window_min[0], 5);
    cr_assert_eq(cfg.window_min[1], 60);
    cr_assert_eq(cfg.window_min[2], 1440);
    smm_config_free(&cfg);

    cfg_ready(&cfg);
    set_ok(&cfg, "windows", "7d,1m,120s,3h,15m");
    set_ok(&cfg, "window.grace_ms", "7d");
    finish_ok(&cfg);
    static const int64_t want[] = {1, 2, 15, 180, 10080};
    cr_assert_eq(cfg.n_windows, 5);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(cfg.window_min[i], want[i], "window %d: %lld", i,
                     (long long)cfg.window_min[i]);
    }
    smm_config_free(&cfg);

    cfg_ready(&cfg);
    set_ok(&cfg, "windows", "1h");
    finish_ok(&cfg);
    cr_assert_eq(cfg.n_windows, 1);
    cr_assert_eq(cfg.window_min[0], 60);
    cr_assert_eq(cfg.retention_ms, 3600000);
    smm_config_free(&cfg);
}

static void windows_fail(const char *windows, const char *needle)
{
    struct smm_config cfg;
    cfg_ready(&cfg);
    set_ok(&cfg, "windows", windows);
    finish_fails(&cfg, "windows");
    if (needle) {
        finish_fails(&cfg, needle);
    }
    smm_config_free(&cfg);
}

Test(config, finish_windows_rejected)
{
    windows_fail("5m,1h,60m", "given twice");   /* same length, different spelling */
    windows_fail("5m,5m", "given twice");
    windows_fail("1h,5m,1h", "given twice");
    windows_fail("90s", "90s");                 /* not whole minutes */
    windows_fail("5m,1500ms", "1500ms");
    windows_fail("0m", "0m");
    windows_fail("-5m", "-5m");
    windows_fail("31d", "31d");
    windows_fail("5x", "5x");
    windows_fail("", "at least one");
    windows_fail(",5m", NULL);
    windows_fail("5m,,1h", NULL);
    windows_fail("1m,2m,3m,4m,5m,6m,7m,8m,9m", "at most");
}

Test(config, finish_engagement_mask)
{
    struct smm_config cfg;
    cfg_ready(&cfg);
    finish_ok(&cfg);
    cr_assert_eq(cfg.engagement_mask, (1u << SMM_EV_LIKE) | (1u << SMM_EV_COMMENT) |
                                          (1u << SMM_EV_SHARE) | (1u << SMM_EV_CLICK),
                 "mask 0x%x", cfg.engagement_mask);
    smm_config_free(&cfg);

    cfg_ready(&cfg);
    set_ok(&cfg, "engagement", "share,conversion,like");
    finish_ok(&cfg);
    cr_assert_eq(cfg.engagement_mask,
                 (1u << SMM_EV_SHARE) | (1u << SMM_EV_CONVERSION) | (1u << SMM_EV_LIKE));
    smm_config_free(&cfg);

    /* An empty set is allowed: nothing counts as engagement. */
    cfg_ready(&cfg);
    set_ok(&cfg, "engagement", "");
    finish_ok(&cfg);
    cr_assert_eq(cfg.engagement_mask, 0u);
    smm_config_free(&cfg);
}

Test(config, finish_engagement_rejected)
{
    static const char *const bad[] = {"like,unlike", "comment_delete", "like,bogus", "Like",
                                      "like,,share"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct smm_config cfg;
        cfg_ready(&cfg);
        set_ok(&cfg, "engagement", bad[i]);
        finish_fails(&cfg, "engagement");
        smm_config_free(&cfg);
    }
    struct smm_config cfg;
    cfg_ready(&cfg);
    set_ok(&cfg, "engagement", "like,unlike");
    finish_fails(&cfg, "\"unlike\"");
    smm_config_free(&cfg);
}

Test(config, finish_requires_bootstrap_servers)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    set_ok(&cfg, "kafka.client.id", "x");
    finish_fails(&cfg, "kafka.bootstrap.servers");
    smm_config_free(&cfg);
    /* librdkafka's alias counts. */
    cfg_init(&cfg);
    set_ok(&cfg, "kafka.metadata.broker.list", "h:1");
    finish_ok(&cfg);
    smm_config_free(&cfg);
}

Test(config, finish_dlq_topic)
{
    struct smm_config cfg;
    cfg_ready(&cfg);
    set_ok(&cfg, "topic", "social.in");
    finish_ok(&cfg);
    cr_assert_str_eq(cfg.dlq_topic, "social.in.dlq");
    smm_config_free(&cfg);

    cfg_ready(&cfg);
    set_ok(&cfg, "dlq_topic", "rejects");
    finish_ok(&cfg);
    cr_assert_str_eq(cfg.dlq_topic, "rejects");
    smm_config_free(&cfg);
}

Test(config, finish_other_checks_name_key)
{
    struct smm_config cfg;
    cfg_ready(&cfg);
    set_ok(&cfg, "topic", "");
    finish_fails(&cfg, "topic");
    smm_config_free(&cfg);

    static const char *const prefixes[] = {"", "a b", "smm{1}:", "s*", "x\t"};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        cfg_ready(&cfg);
        set_ok(&cfg, "prefix", prefixes[i]);
        finish_fails(&cfg, "prefix");
        smm_config_free(&cfg);
    }

    cfg_ready(&cfg);
    set_ok(&cfg, "log.level", "verbose");
    finish_fails(&cfg, "log.level");
    smm_config_free(&cfg);

    cfg_ready(&cfg);
    set_ok(&cfg, "log.format", "xml");
    finish_fails(&cfg, "log.format");
    smm_config_free(&cfg);

    /* Retention beyond the longest window plus grace: late events count in lifetime and
     * daily buckets only (a backfill of last year's history), up to ten years. */
    cfg_ready(&cfg);
    set_ok(&cfg, "retention_ms", "400d");
    finish_ok(&cfg);
    cr_assert_eq(cfg.retention_ms, 400LL * 86400000);
    smm_config_free(&cfg);
    cfg_ready(&cfg);
    set_fails(&cfg, "retention_ms", "3651d", "retention_ms", NULL);
    smm_config_free(&cfg);
}

Test(config, finish_reads_password_file)
{
    char path[64];
    write_temp(path, sizeof(path), "s3cr3t-pw\nsecond line ignored\n");
    struct smm_config cfg;
    cfg_ready(&cfg);
    set_ok(&cfg, "redis.password", "overridden");
    set_ok(&cfg, "redis.password_file", path);
    finish_ok(&cfg);
    unlink(path);
    cr_assert_str_eq(cfg.redis_password, "s3cr3t-pw");
    smm_config_free(&cfg);

    /* CRLF line ending and a file without a newline. */
    write_temp(path, sizeof(path), "pw2\r\n");
    cfg_ready(&cfg);
    set_ok(&cfg, "redis.password_file", path);
    finish_ok(&cfg);
    unlink(path);
    cr_assert_str_eq(cfg.redis_password, "pw2");
    smm_config_free(&cfg);

    write_temp(path, sizeof(path), "pw3");
    cfg_ready(&cfg);
    set_ok(&cfg, "redis.password_file", path);
    finish_ok(&cfg);
    unlink(path);
    cr_assert_str_eq(cfg.redis_password, "pw3");
    smm_config_free(&cfg);

    /* A missing file is an error naming the key and the path. */
    cfg_ready(&cfg);
    set_ok(&cfg, "redis.password_file", "/nonexistent/smm-test/pw");
    finish_fails(&cfg, "redis.password_file");
    finish_fails(&cfg, "/nonexistent/smm-test/pw");
    smm_config_free(&cfg);
}

/* ---- printing ---- */

static char *print_to_string(const struct smm_config *cfg)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    cr_assert_not_null(f);
    smm_config_print(cfg, f);
    fclose(f);
    cr_assert_not_null(text);
    return text;
}

Test(config, print_masks_secrets)
{
    struct smm_config cfg;
    cfg_ready(&cfg);
    set_ok(&cfg, "redis.password", "hunter2-redis");
    set_ok(&cfg, "redis.username", "svc");
    set_ok(&cfg, "kafka.sasl.username", "kuser");
    set_ok(&cfg, "kafka.sasl.password", "hunter2-kafka");
    set_ok(&cfg, "kafka.ssl.key.password", "hunter2-key");
    set_ok(&cfg, "kafka.sasl.oauthbearer.config", "clientSecret=hunter2-oauth");
    finish_ok(&cfg);
    char *text = print_to_string(&cfg);
    cr_assert(strstr(text, "hunter2") == NULL, "secret printed:\n%s", text);
    cr_assert(strstr(text, "redis.password = ********\n") != NULL, "%s", text);
    cr_assert(strstr(text, "kafka.sasl.password = ********\n") != NULL, "%s", text);
    cr_assert(strstr(text, "kafka.ssl.key.password = ********\n") != NULL, "%s", text);
    cr_assert(strstr(text, "kafka.sasl.oauthbearer.config = ********\n") != NULL, "%s", text);
    /* Non-secrets are printed as they are. */
    cr_assert(strstr(text, "redis.username = svc\n") != NULL, "%s", text);
    cr_assert(strstr(text, "kafka.sasl.username = kuser\n") != NULL, "%s", text);
    cr_assert(strstr(text, "kafka.bootstrap.servers = x:1\n") != NULL, "%s", text);
    cr_assert(strstr(text, "redis.port = 6379\n") != NULL, "%s", text);
    cr_assert(strstr(text, "windows = 5m,1h,24h\n") != NULL, "%s", text);
    cr_assert(strstr(text, "topic = smm.events\n") != NULL, "%s", text);
    free(text);
    smm_config_free(&cfg);
}

Test(config, print_masks_password_from_file)
{
    char path[64];
    write_temp(path, sizeof(path), "hunter2-file\n");
    struct smm_config cfg;
    cfg_ready(&cfg);
    set_ok(&cfg, "redis.password_file", path);
    finish_ok(&cfg);
    unlink(path);
    char *text = print_to_string(&cfg);
    cr_assert(strstr(text, "hunter2") == NULL, "secret printed:\n%s", text);
    cr_assert(strstr(text, "redis.password = ********\n") != NULL, "%s", text);
    free(text);
    smm_config_free(&cfg);
}

Test(config, print_empty_secret_not_masked)
{
    /* An unset password prints empty, so an operator can tell it is unset. */
    struct smm_config cfg;
    cfg_ready(&cfg);
    char *text = print_to_string(&cfg);
    cr_assert(strstr(text, "redis.password = \n") != NULL, "%s", text);
    free(text);
    smm_config_free(&cfg);
}

Test(config, is_secret)
{
    cr_assert(smm_config_is_secret("redis.password"));
    cr_assert(smm_config_is_secret("sasl.password"));
    cr_assert(smm_config_is_secret("ssl.key.password"));
    cr_assert(smm_config_is_secret("sasl.oauthbearer.client.secret"));
    cr_assert(smm_config_is_secret("sasl.oauthbearer.config"));
    cr_assert(smm_config_is_secret("ssl.key.pem"));
    cr_assert(!smm_config_is_secret("redis.host"));
    cr_assert(!smm_config_is_secret("sasl.username"));
    cr_assert(!smm_config_is_secret("bootstrap.servers"));
}

Test(config, print_help_lists_every_key)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    cr_assert_not_null(f);
    smm_config_print_help(f);
    fclose(f);
    static const char *const names[] = {"topic", "redis.port", "redis.unix_socket", "windows",
                                        "engagement", "limits.max_id_bytes", "kafka.<property>"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        cr_assert(strstr(text, names[i]) != NULL, "help lacks %s", names[i]);
    }
    free(text);
}

/* ---- http.* (the embedded HTTP server) ---- */

Test(config, http_keys)
{
    struct smm_config cfg;
    cfg_ready(&cfg);
    cr_assert_eq(cfg.http_enabled, 1);
    cr_assert_str_eq(cfg.http_address, "127.0.0.1");
    cr_assert_eq(cfg.http_port, 8080);
    cr_assert_str_eq(cfg.http_token, "");
    set_ok(&cfg, "http.enabled", "false");
    cr_assert_eq(cfg.http_enabled, 0);
    set_ok(&cfg, "http.enabled", "on");
    cr_assert_eq(cfg.http_enabled, 1);
    set_ok(&cfg, "http.port", "0");
    cr_assert_eq(cfg.http_port, 0);
    set_ok(&cfg, "http.address", "::1");
    finish_ok(&cfg);
    set_fails(&cfg, "http.enabled", "maybe", "http.enabled", "true or false");
    set_fails(&cfg, "http.port", "65536", "http.port", "65535");
    set_ok(&cfg, "http.address", "localhost"); /* a host name resolves */
    finish_ok(&cfg);
    char addr[64], err[256];
    cr_assert_eq(smm_config_http_bind_address("localhost", addr, sizeof(addr), err, sizeof(err)),
                 SMM_OK, "%s", err);
    cr_assert(!strcmp(addr, "127.0.0.1") || !strcmp(addr, "::1"), "localhost -> %s", addr);
    cr_assert_eq(smm_config_http_bind_address("::1", addr, sizeof(addr), err, sizeof(err)),
                 SMM_OK);
    cr_assert_str_eq(addr, "::1");
    set_ok(&cfg, "http.address", "no-such-host.invalid"); /* RFC 6761: never resolves */
    finish_fails(&cfg, "http.address: \"no-such-host.invalid\" is neither");
    set_ok(&cfg, "http.enabled", "false"); /* not serving: the address is not used */
    finish_ok(&cfg);
    smm_config_free(&cfg);
}

Test(config, http_token_is_secret)
{
    struct smm_config cfg;
    cfg_ready(&cfg);
    set_ok(&cfg, "http.token", "t0psecret-token");
    finish_ok(&cfg);
    cr_assert(smm_config_is_secret("http.token"));
    char *text = print_to_string(&cfg);
    cr_assert(strstr(text, "t0psecret") == NULL, "token printed:\n%s", text);
    cr_assert(strstr(text, "http.token = ********\n") != NULL, "%s", text);
    cr_assert(strstr(text, "http.enabled = true\n") != NULL, "%s", text);
    free(text);
    char *help = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&help, &size);
    smm_config_print_help(f);
    fclose(f);
    static const char *const names[] = {"http.enabled", "http.address", "http.port",
                                        "http.token"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        cr_assert(strstr(help, names[i]) != NULL, "help lacks %s", names[i]);
    }
    free(help);
    smm_config_free(&cfg);
}

/* ---- issue 5: response time, segments, referrals, daily buckets, goals ---- */

Test(config, insight_keys_defaults)
{
    struct smm_config cfg;
    cfg_ready(&cfg);
    cr_assert_str_eq(cfg.response_tz, "UTC");
    cr_assert_str_eq(cfg.response_hours, "mon-fri 09:00-17:00");
    cr_assert_eq(cfg.response_sla_ms, 3600000);
    cr_assert_eq(cfg.response_max_open, 100000);
    cr_assert_eq(cfg.response_reorder_ms, 600000);
    cr_assert_eq(cfg.segments_top_n, 20);
    cr_assert_eq(cfg.segments_sketch_factor, 4);
    cr_assert_eq(cfg.segments_half_life_ms, 6LL * 3600000);
    cr_assert_eq(cfg.referral_window_ms, 30LL * 86400000);
    cr_assert_eq(cfg.referral_max_depth, 3);
    cr_assert_eq(cfg.days_keep, 400);
    cr_assert_eq(cfg.goals_eval_ms, 60000);
    cr_assert_eq(cfg.n_response_accounts, 0);
    cr_assert_eq(cfg.n_sov_sets, 0);
    cr_assert_eq(cfg.n_goals, 0);
    finish_ok(&cfg);
    smm_config_free(&cfg);
}

Test(config, insight_keys_set)
{
    struct smm_config cfg;
    cfg_ready(&cfg);
    set_ok(&cfg, "response.tz", "Europe/Berlin");
    cr_assert_str_eq(cfg.response_tz, "Europe/Berlin");
    set_ok(&cfg, "response.hours", "mon-sat 08:00-20:00");
    cr_assert_str_eq(cfg.response_hours, "mon-sat 08:00-20:00");
    set_ok(&cfg, "response.sla", "15m");
    cr_assert_eq(cfg.response_sla_ms, 900000);
    set_ok(&cfg, "response.sla", "1d");
    cr_assert_eq(cfg.response_sla_ms, 86400000);
    set_ok(&cfg, "response.max_open", "1");
    cr_assert_eq(cfg.response_max_open, 1);
    set_ok(&cfg, "response.reorder", "0");
    cr_assert_eq(cfg.response_reorder_ms, 0);
    set_ok(&cfg, "response.reorder", "30s");
    cr_assert_eq(cfg.response_reorder_ms, 30000);
    set_ok(&cfg, "segments.top_n", "1");
    set_ok(&cfg, "segments.top_n", "1000");
    cr_assert_eq(cfg.segments_top_n, 1000);
    set_ok(&cfg, "referral.window", "7d");
    cr_assert_eq(cfg.referral_window_ms, 7LL * 86400000);
    set_ok(&cfg, "referral.window", "12h");
    cr_assert_eq(cfg.referral_window_ms, 12LL * 3600000);
    set_ok(&cfg, "referral.max_depth", "1");
    set_ok(&cfg, "referral.max_depth", "10");
    cr_assert_eq(cfg.referral_max_depth, 10);
    set_ok(&cfg, "days.keep", "1");
    set_ok(&cfg, "days.keep", "3650");
    cr_assert_eq(cfg.days_keep, 3650);
    set_ok(&cfg, "goals.eval_ms", "5m");
    cr_assert_eq(cfg.goals_eval_ms, 300000);
    finish_ok(&cfg);
    smm_config_free(&cfg);
}

Test(config, insight_keys_bad_values_name_key)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    set_fails(&cfg, "response.sla", "soon", "response.sla", "soon");
    set_fails(&cfg, "response.sla", "0", "response.sla", NULL);
    set_fails(&cfg, "response.sla", "31d", "response.sla", NULL);
    set_fails(&cfg, "response.max_open", "0", "response.max_open", NULL);
    set_fails(&cfg, "response.max_open", "many", "response.max_open", "many");
    set_fails(&cfg, "response.reorder", "-1s", "response.reorder", NULL);
    set_fails(&cfg, "segments.top_n", "0", "segments.top_n", NULL);
    set_fails(&cfg, "segments.top_n", "1001", "segments.top_n", "1001");
    set_fails(&cfg, "segments.sketch_factor", "1", "segments.sketch_factor", NULL);
    set_fails(&cfg, "segments.sketch_factor", "17", "segments.sketch_factor", NULL);
    set_fails(&cfg, "segments.half_life", "59s", "segments.half_life", NULL);
    set_fails(&cfg, "referral.window", "30x", "referral.window", NULL);
    set_fails(&cfg, "referral.window", "0", "referral.window", NULL);
    set_fails(&cfg, "referral.window", "366d", "referral.window", NULL);
    set_fails(&cfg, "referral.max_depth", "0", "referral.max_depth", NULL);
    set_fails(&cfg, "referral.max_depth", "11", "referral.max_depth", NULL);
    set_fails(&cfg, "days.keep", "0", "days.keep", NULL);
    set_fails(&cfg, "days.keep", "3651", "days.keep", NULL);
    set_fails(&cfg, "goals.eval_ms", "10", "goals.eval_ms", NULL);
    set_fails(&cfg, "goals.eval_ms", "2d", "goals.eval_ms", NULL);
    /* Failed sets leave the defaults. */
    cr_assert_eq(cfg.response_sla_ms, 3600000);
    cr_assert_eq(cfg.segments_top_n, 20);
    cr_assert_eq(cfg.days_keep, 400);
    smm_config_free(&cfg);

    cfg_ready(&cfg);
    set_ok(&cfg, "response.tz", "");
    finish_fails(&cfg, "response.tz");
    smm_config_free(&cfg);
    cfg_ready(&cfg);
    set_ok(&cfg, "response.hours", "");
    finish_fails(&cfg, "response.hours");
    smm_config_free(&cfg);
}

/* retention.idle_days: default 90, 0 = keep forever, and never shorter than the state it
 * would expire while in use (referrals, open waits, kept replies). */
Test(config, retention_idle_days)
{
    struct smm_config cfg;
    cfg_ready(&cfg);
    cr_assert_eq(cfg.retention_idle_days, 90);
    finish_ok(&cfg);
    smm_config_free(&cfg);

    cfg_init(&cfg);
    set_fails(&cfg, "retention.idle_days", "-1", "retention.idle_days", NULL);
    set_fails(&cfg, "retention.idle_days", "3651", "retention.idle_days", NULL);
    set_fails(&cfg, "retention.idle_days", "soon", "retention.idle_days", "soon");
    smm_config_free(&cfg);

    cfg_ready(&cfg);
    set_ok(&cfg, "retention.idle_days", "0");
    set_ok(&cfg, "referral.window", "365d");
    finish_ok(&cfg);
    cr_assert_eq(cfg.retention_idle_days, 0);
    smm_config_free(&cfg);
    /* The 30 d referral window (+ max_future_ms) needs 31 days. */
    cfg_ready(&cfg);
    set_ok(&cfg, "retention.idle_days", "30");
    finish_fails(&cfg, "referral.window");
    smm_config_free(&cfg);
    cfg_ready(&cfg);
    set_ok(&cfg, "retention.idle_days", "31");
    finish_ok(&cfg);
    smm_config_free(&cfg);
    cfg_ready(&cfg);
    set_ok(&cfg, "retention.idle_days", "2");
    set_ok(&cfg, "referral.window", "1d");
    set_ok(&cfg, "response.sla", "2d");
    finish_fails(&cfg, "response.sla + response.reorder");
    smm_config_free(&cfg);
    /* An account's own SLA counts too. */
    cfg_ready(&cfg);
    set_ok(&cfg, "retention.idle_days", "3");
    set_ok(&cfg, "referral.window", "1d");
    set_ok(&cfg, "response.account.vip.sla", "3d");
    finish_fails(&cfg, "response.account.vip.sla");
    smm_config_free(&cfg);
}

Test(config, insight_keys_env)
{
    char *envp[] = {"SMM_RESPONSE_SLA=90s",      "SMM_RESPONSE_MAX_OPEN=500",
                    "SMM_RESPONSE_TZ=Asia/Tokyo", "SMM_SEGMENTS_TOP_N=5",
                    "SMM_REFERRAL_WINDOW=2d",    "SMM_REFERRAL_MAX_DEPTH=2",
                    "SMM_DAYS_KEEP=90",          "SMM_GOALS_EVAL_MS=10s",
                    NULL};
    struct smm_config cfg;
    cfg_init(&cfg);
    char err[512] = "";
    cr_assert_eq(smm_config_load_env(&cfg, envp, err, sizeof(err)), SMM_OK, "%s", err);
    cr_assert_eq(cfg.response_sla_ms, 90000);
    cr_assert_eq(cfg.response_max_open, 500);
    /* Values keep their case; only the key is lower-cased. */
    cr_assert_str_eq(cfg.response_tz, "Asia/Tokyo");
    cr_assert_eq(cfg.segments_top_n, 5);
    cr_assert_eq(cfg.referral_window_ms, 2LL * 86400000);
    cr_assert_eq(cfg.referral_max_depth, 2);
    cr_assert_eq(cfg.days_keep, 90);
    cr_assert_eq(cfg.goals_eval_ms, 10000);
    char *bad[] = {"SMM_RESPONSE_SLA=later", NULL};
    cr_assert_eq(smm_config_load_env(&cfg, bad, err, sizeof(err)), SMM_ERR);
    cr_assert(strstr(err, "SMM_RESPONSE_SLA") != NULL, "%s", err);
    cr_assert(strstr(err, "response.sla") != NULL, "%s", err);
    cr_assert_eq(cfg.response_sla_ms, 90000);
    smm_config_free(&cfg);
}

static const struct smm_response_account *resp_get(const struct smm_config *cfg,
                                                   const char *account)
{
    for (int i = 0; i < cfg->n_response_accounts; i++) {
        if (strcmp(cfg->response_accounts[i].account, account) == 0) {
            return &cfg->response_accounts[i];
        }
    }
    return NULL;
}

Test(config, response_account_keys)
{
    struct smm_config cfg;
    cfg_ready(&cfg);
    set_ok(&cfg, "response.account.acme.tz", "America/New_York");
    set_ok(&cfg, "response.account.acme.sla", "30m");
    set_ok(&cfg, "response.account.acme.hours", "mon-sun 00:00-24:00");
    /* The account id is everything up to the last dot. */
    set_ok(&cfg, "response.account.shop.example.com.sla", "2h");
    set_ok(&cfg, "response.account.beta.hours", "sat-sun 10:00-14:00");
    cr_assert_eq(cfg.n_response_accounts, 3, "several keys of one account fill one entry");
    const struct smm_response_account *a = resp_get(&cfg, "acme");
    cr_assert_not_null(a);
    cr_assert_str_eq(a->tz, "America/New_York");
    cr_assert_str_eq(a->hours, "mon-sun 00:00-24:00");
    cr_assert_eq(a->sla_ms, 1800000);
    const struct smm_response_account *s = resp_get(&cfg, "shop.example.com");
    cr_assert_not_null(s);
    cr_assert_null(s->tz, "unset = NULL");
    cr_assert_null(s->hours);
    cr_assert_eq(s->sla_ms, 7200000);
    const struct smm_response_account *b = resp_get(&cfg, "beta");
    cr_assert_not_null(b);
    cr_assert_eq(b->sla_ms, -1, "unset = -1");
    /* Setting again replaces. */
    set_ok(&cfg, "response.account.acme.tz", "Europe/Paris");
    cr_assert_str_eq(resp_get(&cfg, "acme")->tz, "Europe/Paris");
    cr_assert_eq(cfg.n_response_accounts, 3);
    finish_ok(&cfg);
    smm_config_free(&cfg);
}

Test(config, response_for_falls_back_to_globals)
{
    struct smm_config cfg;
    cfg_ready(&cfg);
    set_ok(&cfg, "response.tz", "Europe/London");
    set_ok(&cfg, "response.sla", "45m");
    set_ok(&cfg, "response.account.acme.tz", "Asia/Tokyo");
    set_ok(&cfg, "response.account.acme.sla", "5m");
    set_ok(&cfg, "response.account.beta.hours", "mon-fri 10:00-18:00");
    finish_ok(&cfg);
    const char *tz, *hours;
    int64_t sla;
    smm_config_response_for(&cfg, "acme", &tz, &hours, &sla);
    cr_assert_str_eq(tz, "Asia/Tokyo");
    cr_assert_str_eq(hours, "mon-fri 09:00-17:00");
    cr_assert_eq(sla, 300000);
    smm_config_response_for(&cfg, "beta", &tz, &hours, &sla);
    cr_assert_str_eq(tz, "Europe/London");
    cr_assert_str_eq(hours, "mon-fri 10:00-18:00");
    cr_assert_eq(sla, 2700000);
    smm_config_response_for(&cfg, "nobody", &tz, &hours, &sla);
    cr_assert_str_eq(tz, "Europe/London");
    cr_assert_str_eq(hours, "mon-fri 09:00-17:00");
    cr_assert_eq(sla, 2700000);
    /* A prefix of a configured id is another account. */
    smm_config_response_for(&cfg, "acm", &tz, &hours, &sla);
    cr_assert_str_eq(tz, "Europe/London");
    smm_config_free(&cfg);
}

Test(config, response_account_bad_keys_name_key)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    set_fails(&cfg, "response.account.acme.timezone", "UTC", "response.account.acme.timezone",
              "unknown");
    set_fails(&cfg, "response.account.acme.sla", "soon", "response.account.acme.sla", "soon");
    set_fails(&cfg, "response.account.acme.sla", "0", "response.account.acme.sla", NULL);
    set_fails(&cfg, "response.account.acme.sla", "31d", "response.account.acme.sla", NULL);
    set_fails(&cfg, "response.account.acme.tz", "", "response.account.acme.tz", "empty");
    set_fails(&cfg, "response.account.acme", "UTC", "response.account.acme", NULL);
    set_fails(&cfg, "response.account..tz", "UTC", "response.account..tz", NULL);
    set_fails(&cfg, "response.account.acme.", "UTC", "response.account.acme.", NULL);
    set_fails(&cfg, "response.account.", "UTC", "response.account.", NULL);
    cr_assert_eq(cfg.n_response_accounts, 0, "a rejected key adds no account");
    smm_config_free(&cfg);
}

Test(config, response_account_limit)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    char key[64];
    for (int i = 0; i < SMM_CFG_MAX_RESPONSE_ACCOUNTS; i++) {
        snprintf(key, sizeof(key), "response.account.a%d.sla", i);
        set_ok(&cfg, key, "1m");
        snprintf(key, sizeof(key), "response.account.a%d.tz", i);
        set_ok(&cfg, key, "UTC");
    }
    cr_assert_eq(cfg.n_response_accounts, SMM_CFG_MAX_RESPONSE_ACCOUNTS);
    set_ok(&cfg, "response.account.a0.hours", "mon 09:00-10:00"); /* existing: fine */
    set_fails(&cfg, "response.account.one.more.sla", "1m", "response.account.one.more.sla",
              NULL);
    cr_assert_eq(cfg.n_response_accounts, SMM_CFG_MAX_RESPONSE_ACCOUNTS);
    smm_config_free(&cfg);
}

static const struct smm_sov_set *sov_get(const struct smm_config *cfg, const char *name)
{
    for (int i = 0; i < cfg->n_sov_sets; i++) {
        if (strcmp(cfg->sov_sets[i].name, name) == 0) {
            return &cfg->sov_sets[i];
        }
    }
    return NULL;
}

Test(config, sov_sets)
{
    struct smm_config cfg;
    cfg_ready(&cfg);
    set_ok(&cfg, "sov.set.coffee", "starbrew, beanco ,\tcupjoy");
    set_ok(&cfg, "sov.set.cars.eu", "a,b");
    cr_assert_eq(cfg.n_sov_sets, 2);
    const struct smm_sov_set *c = sov_get(&cfg, "coffee");
    cr_assert_not_null(c);
    cr_assert_eq(c->n_brands, 3);
    cr_assert_str_eq(c->brands[0], "starbrew", "trimmed");
    cr_assert_str_eq(c->brands[1], "beanco");
    cr_assert_str_eq(c->brands[2], "cupjoy");
    const struct smm_sov_set *e = sov_get(&cfg, "cars.eu");
    cr_assert_not_null(e);
    cr_assert_eq(e->n_brands, 2);
    /* Setting a set again replaces its list. */
    set_ok(&cfg, "sov.set.coffee", "x,y");
    c = sov_get(&cfg, "coffee");
    cr_assert_eq(cfg.n_sov_sets, 2);
    cr_assert_eq(c->n_brands, 2);
    cr_assert_str_eq(c->brands[0], "x");
    cr_assert_str_eq(c->brands[1], "y");
    finish_ok(&cfg);
    smm_config_free(&cfg);
}

Test(config, sov_sets_bad_name_key)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    set_fails(&cfg, "sov.set.coffee", "onlyone", "sov.set.coffee", "at least 2");
    set_fails(&cfg, "sov.set.coffee", "", "sov.set.coffee", "at least 2");
    set_fails(&cfg, "sov.set.coffee", "  ", "sov.set.coffee", "at least 2");
    set_fails(&cfg, "sov.set.coffee", "a,a", "sov.set.coffee", "twice");
    set_fails(&cfg, "sov.set.coffee", "a, b ,a", "sov.set.coffee", "twice");
    set_fails(&cfg, "sov.set.coffee", "a,,b", "sov.set.coffee", "empty");
    set_fails(&cfg, "sov.set.coffee", "a,b,", "sov.set.coffee", "empty");
    set_fails(&cfg, "sov.set.coffee", ",a,b", "sov.set.coffee", "empty");
    set_fails(&cfg, "sov.set.co|ffee", "a,b", "sov.set.co|ffee", "'|'");
    set_fails(&cfg, "sov.set.co:ffee", "a,b", "sov.set.co:ffee", NULL);
    set_fails(&cfg, "sov.set.", "a,b", "sov.set.", NULL);
    set_fails(&cfg, "sov.sets.coffee", "a,b", "sov.sets.coffee", "unknown");
    cr_assert_eq(cfg.n_sov_sets, 0);
    /* A rejected value leaves an existing set as it was. */
    set_ok(&cfg, "sov.set.tea", "a,b");
    set_fails(&cfg, "sov.set.tea", "c", "sov.set.tea", NULL);
    cr_assert_eq(sov_get(&cfg, "tea")->n_brands, 2);
    cr_assert_str_eq(sov_get(&cfg, "tea")->brands[1], "b");
    smm_config_free(&cfg);
}

Test(config, sov_sets_limit)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    char key[64];
    for (int i = 0; i < SMM_CFG_MAX_SOV_SETS; i++) {
        snprintf(key, sizeof(key), "sov.set.s%d", i);
        set_ok(&cfg, key, "a,b");
    }
    set_ok(&cfg, "sov.set.s0", "c,d"); /* replacing is not a new set */
    set_fails(&cfg, "sov.set.extra", "a,b", "sov.set.extra", NULL);
    cr_assert_eq(cfg.n_sov_sets, SMM_CFG_MAX_SOV_SETS);
    smm_config_free(&cfg);
}

Test(config, sov_sets_json)
{
    char path[64];
    write_temp(path, sizeof(path),
               "{\"sov\": {\"set\": {\"coffee\": [\"starbrew\", \"beanco\"],\n"
               "                   \"tea\": \"leafy, steep\"}}}\n");
    struct smm_config cfg;
    cfg_ready(&cfg);
    char err[512] = "";
    int rc = smm_config_load_file(&cfg, path, err, sizeof(err));
    unlink(path);
    cr_assert_eq(rc, SMM_OK, "%s", err);
    cr_assert_eq(cfg.n_sov_sets, 2);
    const struct smm_sov_set *c = sov_get(&cfg, "coffee");
    cr_assert_not_null(c);
    cr_assert_eq(c->n_brands, 2);
    cr_assert_str_eq(c->brands[0], "starbrew");
    cr_assert_str_eq(c->brands[1], "beanco");
    cr_assert_eq(sov_get(&cfg, "tea")->n_brands, 2);
    cr_assert_str_eq(sov_get(&cfg, "tea")->brands[1], "steep");
    finish_ok(&cfg);
    smm_config_free(&cfg);

    load_fails("{\"sov\": {\"set\": {\"coffee\": [\"a,b\", \"c\"]}}}", "sov.set.coffee", "','");
    load_fails("{\"sov\": {\"set\": {\"coffee\": [\"a\", 2]}}}", "sov.set.coffee", NULL);
    load_fails("{\"sov\": {\"set\": {\"coffee\": [\"a\"]}}}", "sov.set.coffee", "at least 2");
    load_fails("{\"sov\": {\"set\": {\"coffee\": []}}}", "sov.set.coffee", "at least 2");
    load_fails("{\"sov\": {\"set\": {\"coffee\": [\"a\", \"a\"]}}}", "sov.set.coffee", "twice");
    /* Arrays stay an error for every other key. */
    load_fails("{\"engagement\": [\"like\", \"share\"]}", "engagement", NULL);
    load_fails("{\"sov\": {\"set\": [\"a\", \"b\"]}}", "sov.set", NULL);
}

Test(config, sov_sets_env)
{
    char *envp[] = {"SMM_SOV_SET_COFFEE=starbrew,beanco", NULL};
    struct smm_config cfg;
    cfg_init(&cfg);
    char err[512] = "";
    cr_assert_eq(smm_config_load_env(&cfg, envp, err, sizeof(err)), SMM_OK, "%s", err);
    cr_assert_eq(cfg.n_sov_sets, 1);
    cr_assert_str_eq(cfg.sov_sets[0].name, "coffee");
    cr_assert_eq(cfg.sov_sets[0].n_brands, 2);
    smm_config_free(&cfg);
}

/* ---- goals ---- */

static const struct smm_goal_cfg *goal_get(const struct smm_config *cfg, const char *id)
{
    for (int i = 0; i < cfg->n_goals; i++) {
        if (strcmp(cfg->goals[i].id, id) == 0) {
            return &cfg->goals[i];
        }
    }
    return NULL;
}

/* Sets all six keys of goal `id`. */
static void goal_set(struct smm_config *cfg, const char *id, const char *account,
                     const char *metric, const char *kind, const char *target,
                     const char *start, const char *days)
{
    const char *fields[] = {"account", "metric", "kind", "target", "start", "days"};
    const char *values[] = {account, metric, kind, target, start, days};
    for (int i = 0; i < 6; i++) {
        if (values[i]) {
            char key[128];
            snprintf(key, sizeof(key), "goal.%s.%s", id, fields[i]);
            set_ok(cfg, key, values[i]);
        }
    }
}

Test(config, goals)
{
    struct smm_config cfg;
    cfg_ready(&cfg);
    goal_set(&cfg, "q1-conv", "acme", "conversion", "increase", "10", "2024-01-01", "90");
    goal_set(&cfg, "rr.eu", "acme.eu", "response_rate", "at_least", "95.5", "2024-03-01", "30");
    finish_ok(&cfg);
    cr_assert_eq(cfg.n_goals, 2);
    const struct smm_goal_cfg *g = goal_get(&cfg, "q1-conv");
    cr_assert_not_null(g);
    cr_assert_str_eq(g->account, "acme");
    cr_assert_str_eq(g->metric, "conversion");
    cr_assert_str_eq(g->kind, "increase");
    cr_assert_float_eq(g->target, 10.0, 1e-12);
    cr_assert_str_eq(g->start, "2024-01-01");
    cr_assert_eq(g->start_day, 19723, "2024-01-01 = day %lld", (long long)g->start_day);
    cr_assert_eq(g->days, 90);
    /* The id is everything between "goal." and the last dot. */
    g = goal_get(&cfg, "rr.eu");
    cr_assert_not_null(g);
    cr_assert_str_eq(g->account, "acme.eu");
    cr_assert_str_eq(g->metric, "response_rate");
    cr_assert_float_eq(g->target, 95.5, 1e-12);
    cr_assert_eq(g->start_day, 19783); /* 2024 is a leap year: 19723 + 31 + 29 */
    smm_config_free(&cfg);
}

Test(config, goal_start_days)
{
    static const struct {
        const char *date;
        long long day;
    } cases[] = {{"1970-01-01", 0},     {"1970-01-02", 1},     {"1970-12-31", 364},
                 {"1972-02-29", 789},   {"2000-02-29", 11016}, {"2000-03-01", 11017},
                 {"2023-12-31", 19722}, {"2024-02-29", 19782}, {"9999-12-31", 2932896}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct smm_config cfg;
        cfg_init(&cfg);
        set_ok(&cfg, "goal.g.start", cases[i].date);
        cr_assert_eq(cfg.goals[0].start_day, cases[i].day, "%s: %lld", cases[i].date,
                     (long long)cfg.goals[0].start_day);
        smm_config_free(&cfg);
    }
}

Test(config, goal_every_metric)
{
    static const char *const metrics[] = {
        "impression", "view",         "like",          "comment",     "share",
        "click",      "referral",     "conversion",    "mention",     "message",
        "reply",      "follow",       "engagement",    "value_cents", "threads",
        "answered",   "indirect_conversions",          "indirect_value_cents",
        "mention_reach",              "response_rate"};
    struct smm_config cfg;
    cfg_init(&cfg);
    for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++) {
        set_ok(&cfg, "goal.g.metric", metrics[i]);
    }
    set_fails(&cfg, "goal.g.metric", "unlike", "goal.g.metric", "unlike");
    set_fails(&cfg, "goal.g.metric", "frt_ms", "goal.g.metric", NULL);
    set_fails(&cfg, "goal.g.metric", "Conversion", "goal.g.metric", NULL);
    set_fails(&cfg, "goal.g.metric", "", "goal.g.metric", NULL);
    smm_config_free(&cfg);
}

Test(config, goal_bad_values_name_key)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    set_fails(&cfg, "goal.g.kind", "decrease", "goal.g.kind", "increase or at_least");
    set_fails(&cfg, "goal.g.target", "ten", "goal.g.target", "ten");
    set_fails(&cfg, "goal.g.target", "-5", "goal.g.target", NULL);
    set_fails(&cfg, "goal.g.target", "nan", "goal.g.target", NULL);
    set_fails(&cfg, "goal.g.days", "0", "goal.g.days", NULL);
    set_fails(&cfg, "goal.g.days", "3651", "goal.g.days", NULL);
    set_fails(&cfg, "goal.g.days", "1.5", "goal.g.days", NULL);
    set_fails(&cfg, "goal.g.account", "", "goal.g.account", "empty");
    static const char *const bad_dates[] = {"2024-1-01",  "2024-01-1",  "24-01-01",
                                            "2024/01/01", "2024-13-01", "2024-00-10",
                                            "2024-01-00", "2024-01-32", "2023-02-29",
                                            "1900-02-29", "1969-12-31", "2024-01-01T00:00",
                                            "",           "2024-01-01 "};
    for (size_t i = 0; i < sizeof(bad_dates) / sizeof(bad_dates[0]); i++) {
        set_fails(&cfg, "goal.g.start", bad_dates[i], "goal.g.start", "YYYY-MM-DD");
    }
    set_fails(&cfg, "goal.g.colour", "red", "goal.g.colour", "unknown");
    set_fails(&cfg, "goal.g", "x", "goal.g", NULL);
    set_fails(&cfg, "goal..kind", "increase", "goal..kind", NULL);
    set_fails(&cfg, "goal.a b.kind", "increase", "goal.a b.kind", "goal id");
    set_fails(&cfg, "goal.a:b.kind", "increase", "goal.a:b.kind", "goal id");
    set_fails(&cfg, "goal.{x}.kind", "increase", "goal.{x}.kind", "goal id");
    cr_assert_eq(cfg.n_goals, 0, "a rejected key adds no goal");
    smm_config_free(&cfg);
}

Test(config, goal_incomplete_names_missing_key)
{
    static const char *const fields[] = {"account", "metric", "kind", "target", "start", "days"};
    for (int skip = 0; skip < 6; skip++) {
        struct smm_config cfg;
        cfg_ready(&cfg);
        goal_set(&cfg, "ok", "acme", "click", "at_least", "100", "2024-05-01", "7");
        const char *v[] = {"acme", "like", "increase", "5", "2024-05-01", "14"};
        v[skip] = NULL;
        goal_set(&cfg, "partial", v[0], v[1], v[2], v[3], v[4], v[5]);
        char want[64];
        snprintf(want, sizeof(want), "goal.partial.%s", fields[skip]);
        finish_fails(&cfg, want);
        finish_fails(&cfg, "required");
        smm_config_free(&cfg);
    }
}

Test(config, goal_finish_cross_checks)
{
    struct smm_config cfg;
    cfg_ready(&cfg);
    goal_set(&cfg, "rr", "acme", "response_rate", "at_least", "101", "2024-05-01", "7");
    finish_fails(&cfg, "goal.rr.target");
    set_ok(&cfg, "goal.rr.target", "100");
    finish_ok(&cfg);
    /* An increase of a rate may go beyond 100 % of the baseline. */
    set_ok(&cfg, "goal.rr.kind", "increase");
    set_ok(&cfg, "goal.rr.target", "150");
    finish_ok(&cfg);
    smm_config_free(&cfg);

    /* The daily buckets must cover what a goal reads: its days, and as many before its
     * start for the baseline of an increase. */
    cfg_ready(&cfg);
    set_ok(&cfg, "days.keep", "100");
    goal_set(&cfg, "g", "acme", "click", "at_least", "5", "2024-05-01", "100");
    finish_ok(&cfg);
    set_ok(&cfg, "goal.g.days", "101");
    finish_fails(&cfg, "goal.g.days");
    finish_fails(&cfg, "days.keep");
    set_ok(&cfg, "goal.g.days", "50");
    set_ok(&cfg, "goal.g.kind", "increase");
    finish_ok(&cfg);
    set_ok(&cfg, "goal.g.days", "51");
    finish_fails(&cfg, "goal.g.days");
    smm_config_free(&cfg);
}

Test(config, goals_limit)
{
    struct smm_config cfg;
    cfg_init(&cfg);
    char key[64];
    for (int i = 0; i < SMM_CFG_MAX_GOALS; i++) {
        snprintf(key, sizeof(key), "goal.g%d.kind", i);
        set_ok(&cfg, key, "increase");
    }
    set_ok(&cfg, "goal.g0.days", "5");
    set_fails(&cfg, "goal.extra.kind", "increase", "goal.extra.kind", NULL);
    cr_assert_eq(cfg.n_goals, SMM_CFG_MAX_GOALS);
    smm_config_free(&cfg);
}

Test(config, goals_json_nested)
{
    char path[64];
    write_temp(path, sizeof(path),
               "{\"goal\": {\n"
               "  \"q2\": {\"account\": \"acme\", \"metric\": \"value_cents\", \"kind\": "
               "\"increase\",\n"
               "         \"target\": 12.5, \"start\": \"2024-04-01\", \"days\": 91},\n"
               "  \"rr\": {\"account\": \"acme\", \"metric\": \"response_rate\",\n"
               "         \"kind\": \"at_least\", \"target\": 90, \"start\": \"2024-04-01\",\n"
               "         \"days\": \"30\"}\n"
               "}, \"response\": {\"sla\": \"20m\", \"account\": {\"acme\": {\"sla\": \"10m\",\n"
               "  \"tz\": \"Europe/Berlin\"}}}}\n");
    struct smm_config cfg;
    cfg_ready(&cfg);
    char err[512] = "";
    int rc = smm_config_load_file(&cfg, path, err, sizeof(err));
    unlink(path);
    cr_assert_eq(rc, SMM_OK, "%s", err);
    finish_ok(&cfg);
    cr_assert_eq(cfg.n_goals, 2);
    const struct smm_goal_cfg *g = goal_get(&cfg, "q2");
    cr_assert_not_null(g);
    cr_assert_str_eq(g->metric, "value_cents");
    cr_assert_float_eq(g->target, 12.5, 1e-12);
    cr_assert_eq(g->days, 91);
    cr_assert_eq(g->start_day, 19814);
    g = goal_get(&cfg, "rr");
    cr_assert_not_null(g);
    cr_assert_float_eq(g->target, 90.0, 1e-12);
    cr_assert_eq(g->days, 30);
    cr_assert_eq(cfg.response_sla_ms, 1200000);
    const char *tz, *hours;
    int64_t sla;
    smm_config_response_for(&cfg, "acme", &tz, &hours, &sla);
    cr_assert_str_eq(tz, "Europe/Berlin");
    cr_assert_eq(sla, 600000);
    smm_config_free(&cfg);

    load_fails("{\"goal\": {\"g\": {\"kind\": \"more\"}}}", "goal.g.kind", NULL);
    load_fails("{\"goal\": {\"g\": {\"start\": 20240101}}}", "goal.g.start", NULL);
    load_fails("{\"response\": {\"account\": {\"acme\": {\"zone\": \"UTC\"}}}}",
               "response.account.acme.zone", "unknown");
}

Test(config, goals_and_accounts_env)
{
    char *envp[] = {"SMM_GOAL_G1_ACCOUNT=acme",
                    "SMM_GOAL_G1_METRIC=conversion",
                    "SMM_GOAL_G1_KIND=at_least",
                    "SMM_GOAL_G1_TARGET=250",
                    "SMM_GOAL_G1_START=2024-06-01",
                    "SMM_GOAL_G1_DAYS=30",
                    "SMM_RESPONSE_ACCOUNT_ACME_SLA=15m",
                    NULL};
    struct smm_config cfg;
    cfg_ready(&cfg);
    char err[512] = "";
    cr_assert_eq(smm_config_load_env(&cfg, envp, err, sizeof(err)), SMM_OK, "%s", err);
    finish_ok(&cfg);
    const struct smm_goal_cfg *g = goal_get(&cfg, "g1");
    cr_assert_not_null(g);
    cr_assert_str_eq(g->account, "acme");
    cr_assert_float_eq(g->target, 250.0, 1e-12);
    cr_assert_eq(g->start_day, 19875);
    cr_assert_eq(resp_get(&cfg, "acme")->sla_ms, 900000);
    char *bad[] = {"SMM_GOAL_G1_KIND=double", NULL};
    cr_assert_eq(smm_config_load_env(&cfg, bad, err, sizeof(err)), SMM_ERR);
    cr_assert(strstr(err, "SMM_GOAL_G1_KIND") != NULL, "%s", err);
    cr_assert(strstr(err, "goal.g1.kind") != NULL, "%s", err);
    smm_config_free(&cfg);
}

Test(config, print_insight_keys)
{
    struct smm_config cfg;
    cfg_ready(&cfg);
    set_ok(&cfg, "response.account.acme.tz", "Asia/Tokyo");
    set_ok(&cfg, "response.account.acme.sla", "5m");
    set_ok(&cfg, "sov.set.coffee", "a, b");
    goal_set(&cfg, "g", "acme", "conversion", "increase", "12.5", "2024-01-01", "30");
    finish_ok(&cfg);
    char *text = print_to_string(&cfg);
    static const char *const lines[] = {
        "response.tz = UTC\n",          "response.hours = mon-fri 09:00-17:00\n",
        "response.sla = 3600000\n",     "response.max_open = 100000\n",
        "response.reorder = 600000\n",  "segments.top_n = 20\n",
        "referral.window = 2592000000\n", "referral.max_depth = 3\n",
        "days.keep = 400\n",            "goals.eval_ms = 60000\n",
        "response.account.acme.tz = Asia/Tokyo\n", "response.account.acme.sla = 300000\n",
        "sov.set.coffee = a,b\n",       "goal.g.account = acme\n",
        "goal.g.metric = conversion\n", "goal.g.kind = increase\n",
        "goal.g.target = 12.5\n",       "goal.g.start = 2024-01-01\n",
        "goal.g.days = 30\n"};
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        cr_assert(strstr(text, lines[i]) != NULL, "no \"%s\" in:\n%s", lines[i], text);
    }
    cr_assert(strstr(text, "response.account.acme.hours") == NULL, "unset printed:\n%s", text);
    free(text);
    smm_config_free(&cfg);
}

Test(config, print_help_lists_insight_keys)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    cr_assert_not_null(f);
    smm_config_print_help(f);
    fclose(f);
    static const char *const names[] = {
        "response.tz",       "response.hours",   "response.sla",       "response.max_open",
        "response.reorder",  "segments.top_n",   "referral.window",    "referral.max_depth",
        "days.keep",         "goals.eval_ms",    "response.account.<", "sov.set.<name>",
        "goal.<id>.account"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        cr_assert(strstr(text, names[i]) != NULL, "help lacks %s", names[i]);
    }
    free(text);
}
