/* tests/unit/test_status.c - the status snapshot and its renderings (processor/status.c),
 * and the HTTP server's percent-decoding (connectors/http_server.c).
 *
 * Rendering is a pure function of a snapshot, so the Prometheus text and the summary JSON
 * are checked line by line from a snapshot built by hand; the publishing API is driven with
 * a synthetic clock. Links smm_core. */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/http_server.h"
#include "metrics/event.h"
#include "processor/status.h"

static void has_line(const char *text, const char *line)
{
    char want[512];
    snprintf(want, sizeof(want), "\n%s\n", line);
    /* the first line has no newline before it */
    int first = strncmp(text, line, strlen(line)) == 0 && text[strlen(line)] == '\n';
    cr_assert(first || strstr(text, want) != NULL, "missing line \"%s\" in:\n%s", line, text);
}

static struct smm_status_snap sample(struct smm_status_part *parts)
{
    struct smm_status_snap s;
    memset(&s, 0, sizeof(s));
    s.started = 1;
    s.c.consumed = 1037;
    s.c.counted = 1000;
    s.c.dead_lettered = 37;
    s.c.rejects[SMM_REJECT_INVALID_JSON] = 30;
    s.c.rejects[SMM_REJECT_TOO_OLD] = 7;
    s.c.late = 12;
    s.c.flushes = 5;
    s.c.flush_failures = 1;
    s.c.redis_errors = 2;
    s.c.redis_retries = 1;
    s.c.redis_up = 1;
    s.c.partitions = 2;
    s.flush_bucket[0] = 1;                  /* <= 1 ms */
    s.flush_bucket[3] = 3;                  /* <= 10 ms */
    s.flush_bucket[SMM_STATUS_BUCKETS] = 1; /* > 5 s */
    s.flush_count = 5;
    s.flush_sum_s = 6.5;
    snprintf(parts[0].topic, sizeof(parts[0].topic), "smm.events");
    parts[0].partition = 0;
    parts[0].lag = 42;
    snprintf(parts[1].topic, sizeof(parts[1].topic), "we\"ird\\topic");
    parts[1].partition = 7;
    parts[1].lag = 3;
    snprintf(parts[2].topic, sizeof(parts[2].topic), "smm.events");
    parts[2].partition = 1;
    parts[2].lag = -1; /* unknown: no sample */
    s.parts = parts;
    s.n_parts = 3;
    s.lag_total = 45;
    s.lag_known = 1;
    snprintf(s.kind[0], sizeof(s.kind[0]), "viral");
    s.kind_n[0] = 4;
    snprintf(s.kind[1], sizeof(s.kind[1]), "sla_breach");
    s.kind_n[1] = 1;
    s.n_kinds = 2;
    s.open_threads = 9;
    s.tracked_cascades = 11;
    s.rss_bytes = 123456;
    s.events_per_sec = 250.5;
    s.flush_ms_recent = 12.25;
    return s;
}

Test(status, prometheus_exact_lines)
{
    struct smm_status_part parts[3];
    struct smm_status_snap s = sample(parts);
    char *text = smm_status_render_prometheus(&s, "1.2.3");
    cr_assert_not_null(text);
    has_line(text, "# HELP smm_events_consumed_total Kafka messages read.");
    has_line(text, "# TYPE smm_events_consumed_total counter");
    has_line(text, "smm_events_consumed_total 1037");
    has_line(text, "smm_events_counted_total 1000");
    has_line(text, "smm_events_dead_lettered_total{reason=\"invalid_json\"} 30");
    has_line(text, "smm_events_dead_lettered_total{reason=\"too_old\"} 7");
    has_line(text, "smm_events_dead_lettered_total{reason=\"bad_id\"} 0");
    has_line(text, "smm_events_late_total 12");
    has_line(text, "smm_flushes_total 5");
    has_line(text, "smm_flush_failures_total 1");
    has_line(text, "# TYPE smm_flush_duration_seconds histogram");
    has_line(text, "smm_flush_duration_seconds_bucket{le=\"0.001\"} 1");
    has_line(text, "smm_flush_duration_seconds_bucket{le=\"0.005\"} 1");
    has_line(text, "smm_flush_duration_seconds_bucket{le=\"0.01\"} 4");
    has_line(text, "smm_flush_duration_seconds_bucket{le=\"5\"} 4");
    has_line(text, "smm_flush_duration_seconds_bucket{le=\"+Inf\"} 5");
    has_line(text, "smm_flush_duration_seconds_sum 6.5");
    has_line(text, "smm_flush_duration_seconds_count 5");
    has_line(text, "smm_redis_errors_total 2");
    has_line(text, "smm_redis_retries_total 1");
    has_line(text, "# TYPE smm_consumer_lag gauge");
    has_line(text, "smm_consumer_lag{topic=\"smm.events\",partition=\"0\"} 42");
    has_line(text, "smm_consumer_lag{topic=\"we\\\"ird\\\\topic\",partition=\"7\"} 3");
    cr_assert(strstr(text, "partition=\"1\"") == NULL, "unknown lag rendered:\n%s", text);
    has_line(text, "smm_partitions_assigned 2");
    has_line(text, "smm_alerts_emitted_total{kind=\"viral\"} 4");
    has_line(text, "smm_alerts_emitted_total{kind=\"sla_breach\"} 1");
    has_line(text, "smm_open_threads 9");
    has_line(text, "smm_tracked_cascades 11");
    has_line(text, "smm_process_resident_memory_bytes 123456");
    has_line(text, "smm_ready 1");
    has_line(text, "smm_build_info{version=\"1.2.3\"} 1");
    /* Every family has HELP and TYPE before its first sample, and each appears once. */
    static const char *const names[] = {
        "smm_events_consumed_total", "smm_events_counted_total", "smm_events_dead_lettered_total",
        "smm_events_late_total", "smm_flushes_total", "smm_flush_failures_total",
        "smm_flush_duration_seconds", "smm_redis_errors_total", "smm_redis_retries_total",
        "smm_consumer_lag", "smm_partitions_assigned", "smm_alerts_emitted_total",
        "smm_open_threads", "smm_tracked_cascades", "smm_process_resident_memory_bytes",
        "smm_ready", "smm_build_info"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char type[128];
        snprintf(type, sizeof(type), "# TYPE %s ", names[i]);
        const char *at = strstr(text, type);
        cr_assert_not_null(at, "no TYPE for %s", names[i]);
        cr_assert_null(strstr(at + 1, type), "two TYPE lines for %s", names[i]);
        char help[128];
        snprintf(help, sizeof(help), "# HELP %s ", names[i]);
        const char *h = strstr(text, help);
        cr_assert(h && h < at, "HELP of %s missing or after TYPE", names[i]);
    }
    cr_assert_eq(text[strlen(text) - 1], '\n');
    free(text);
}

Test(status, prometheus_not_ready_no_rss_no_open_threads)
{
    struct smm_status_part parts[3];
    struct smm_status_snap s = sample(parts);
    s.c.redis_up = 0;
    s.rss_bytes = -1;
    s.open_threads = -1; /* Redis could not be read: no made-up 0 */
    char *text = smm_status_render_prometheus(&s, "0.1.0");
    has_line(text, "smm_ready 0");
    cr_assert_null(strstr(text, "smm_process_resident_memory_bytes "));
    cr_assert_null(strstr(text, "smm_open_threads"));
    free(text);
}

Test(status, summary_json)
{
    struct smm_status_part parts[3];
    struct smm_status_snap s = sample(parts);
    char *text = smm_status_render_summary(&s, 1764140000123LL);
    cJSON *j = cJSON_Parse(text);
    cr_assert_not_null(j, "not JSON: %s", text);
    cr_assert_float_eq(cJSON_GetObjectItem(j, "events_per_sec")->valuedouble, 250.5, 1e-9);
    cr_assert_eq(cJSON_GetObjectItem(j, "consumed")->valuedouble, 1037);
    cr_assert_eq(cJSON_GetObjectItem(j, "counted")->valuedouble, 1000);
    cr_assert_eq(cJSON_GetObjectItem(j, "dead_lettered")->valuedouble, 37);
    cr_assert_eq(cJSON_GetObjectItem(j, "lag")->valuedouble, 45);
    cr_assert_float_eq(cJSON_GetObjectItem(j, "flush_ms_avg")->valuedouble, 12.25, 1e-9);
    cr_assert_eq(cJSON_GetObjectItem(j, "partitions")->valuedouble, 2);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "redis")->valuestring, "up");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "ready")));
    cr_assert_eq(cJSON_GetObjectItem(j, "ts_ms")->valuedouble, 1764140000123.0);
    cJSON_Delete(j);
    free(text);
}

/* No partition with a known lag (none assigned, or Kafka away): the lag is null, not 0. */
Test(status, summary_lag_unknown)
{
    struct smm_status *st = smm_status_new();
    struct smm_status_counts c = {.redis_up = 1};
    smm_status_begin(st, &c, 1000);
    smm_status_end(st);
    struct smm_status_snap s;
    cr_assert_eq(smm_status_snapshot(st, &s), SMM_OK);
    char *text = smm_status_render_summary(&s, 1);
    cr_assert(strstr(text, "\"lag\":null,") != NULL, "%s", text);
    free(text);
    smm_status_snap_free(&s);
    /* Partitions with lags, but the brokers are unreachable: the figures are stale. */
    c.partitions = 1;
    snprintf(c.kafka_problem, sizeof(c.kafka_problem), "Kafka brokers unreachable");
    smm_status_begin(st, &c, 2000);
    smm_status_part(st, "t", 0, 5, 50);
    smm_status_end(st);
    cr_assert_eq(smm_status_snapshot(st, &s), SMM_OK);
    text = smm_status_render_summary(&s, 1);
    cr_assert(strstr(text, "\"lag\":null,") != NULL, "%s", text);
    free(text);
    smm_status_snap_free(&s);
    c.kafka_problem[0] = '\0';
    smm_status_begin(st, &c, 3000);
    smm_status_part(st, "t", 0, 5, 50);
    smm_status_end(st);
    cr_assert_eq(smm_status_snapshot(st, &s), SMM_OK);
    text = smm_status_render_summary(&s, 1);
    cr_assert(strstr(text, "\"lag\":5,") != NULL, "%s", text);
    free(text);
    smm_status_snap_free(&s);
    smm_status_destroy(st);
}

Test(status, readiness_reasons)
{
    struct smm_status_snap s;
    memset(&s, 0, sizeof(s));
    char why[256];
    cr_assert_eq(smm_status_ready(&s, why, sizeof(why)), 0);
    cr_assert(strstr(why, "starting") != NULL, "%s", why);
    s.started = 1;
    s.c.paused = 1;
    cr_assert_eq(smm_status_ready(&s, why, sizeof(why)), 0);
    cr_assert_str_eq(why, "no partitions assigned; redis unreachable from the processing loop; "
                          "consumption paused: Redis does not accept writes");
    s.c.partitions = 0;
    s.c.redis_up = 1;
    s.c.paused = 0;
    snprintf(s.c.kafka_problem, sizeof(s.c.kafka_problem), "Kafka brokers unreachable");
    cr_assert_eq(smm_status_ready(&s, why, sizeof(why)), 0);
    cr_assert_str_eq(why, "Kafka brokers unreachable; no partitions assigned");
    s.c.kafka_problem[0] = '\0';
    s.c.partitions = 1;
    cr_assert_eq(smm_status_ready(&s, why, sizeof(why)), 1);
    cr_assert_str_eq(why, "");
}

Test(status, publish_snapshot_and_rate)
{
    struct smm_status *st = smm_status_new();
    cr_assert_not_null(st);
    struct smm_status_snap s;
    smm_status_snapshot(st, &s);
    cr_assert_eq(s.started, 0);
    cr_assert_eq(s.n_kinds, 1, "viral exists (at 0) from the start");
    cr_assert_str_eq(s.kind[0], "viral");
    smm_status_snap_free(&s);

    struct smm_status_counts c = {.consumed = 100, .redis_up = 1, .partitions = 2};
    smm_status_begin(st, &c, 10000);
    smm_status_part(st, "t", 0, 5, 50);
    smm_status_part(st, "t", 1, -1, -1);
    smm_status_end(st);
    smm_status_flush(st, 3000);    /* 3 ms -> le 0.005 */
    smm_status_flush(st, 9000000); /* 9 s -> +Inf */
    c.consumed = 400;
    smm_status_begin(st, &c, 12000); /* 300 events in 2 s */
    smm_status_part(st, "t", 0, 7, 60);
    smm_status_end(st);
    smm_status_alert(st, "viral", 2);
    smm_status_alert(st, "goal_reached", 1);
    smm_status_set_open_threads(st, 3);
    smm_status_set_tracked_cascades(st, 4);

    cr_assert_eq(smm_status_snapshot(st, &s), SMM_OK);
    cr_assert_eq(s.started, 1);
    cr_assert_eq(s.c.consumed, 400);
    cr_assert_float_eq(s.events_per_sec, 150.0, 1e-9);
    cr_assert_float_eq(s.flush_ms_recent, (3.0 + 9000.0) / 2, 1e-6);
    cr_assert_eq(s.n_parts, 1);
    cr_assert_eq(s.parts[0].lag, 7);
    cr_assert_eq(s.parts[0].offset, 60);
    cr_assert_eq(s.lag_total, 7);
    cr_assert_eq(s.flush_count, 2);
    cr_assert_eq(s.flush_bucket[2], 1);
    cr_assert_eq(s.flush_bucket[SMM_STATUS_BUCKETS], 1);
    cr_assert_eq(s.n_kinds, 2);
    cr_assert_eq(s.kind_n[0], 2);
    cr_assert_str_eq(s.kind[1], "goal_reached");
    cr_assert_eq(s.open_threads, 3);
    cr_assert_eq(s.tracked_cascades, 4);
    cr_assert_eq(s.rss_bytes, -1);
    smm_status_snap_free(&s);
    smm_status_destroy(st);
}

Test(status, url_decode)
{
    char out[64];
    long n = smm_http_url_decode("a%2Fb%20c+d", 11, out, 0);
    cr_assert_eq(n, 7);
    cr_assert(memcmp(out, "a/b c+d", 7) == 0);
    n = smm_http_url_decode("a+b%e2%82%AC", 12, out, 1);
    cr_assert_eq(n, 6);
    cr_assert(memcmp(out, "a b\xe2\x82\xac", 6) == 0);
    n = smm_http_url_decode("x%00y", 5, out, 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(out[1], '\0');
    cr_assert_eq(smm_http_url_decode("bad%2", 5, out, 0), -1);
    cr_assert_eq(smm_http_url_decode("bad%zz", 6, out, 0), -1);
    cr_assert_eq(smm_http_url_decode("%", 1, out, 0), -1);
}
