/* tests/integration/test_startup.c - what an operator meets first: start-up against
 * services that are missing or misnamed, and stopping the processor while it waits.
 *
 * A signal must end every wait at once (the Redis retries at start-up, the run-time
 * backoff while Redis is down, the committed-offsets request on assignment) or within a
 * stated bound (2 s for dead letters Kafka has not acknowledged), with a clean exit status. A real redis-server and the
 * librdkafka mock cluster (or the broker of SMMT_BOOTSTRAP) stand in for production. */
#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"

/* What a test started, stopped by fini() also when an assertion ended the test early. */
static pid_t proc = -1;
static struct h_redis *redis_up;
static struct h_kafka *kafka_up;

static void fini(void)
{
    if (proc > 0) {
        kill(proc, SIGKILL);
        h_wait(proc, 5000);
        proc = -1;
    }
    if (kafka_up) {
        h_kafka_stop(kafka_up);
        kafka_up = NULL;
    }
    if (redis_up) {
        h_redis_stop(redis_up);
        redis_up = NULL;
    }
}

/* Waits until the log contains needle; fails when the processor exits first. */
static void wait_log(pid_t pid, const char *log, const char *needle, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        char *text = h_read_file(log, NULL);
        int found = strstr(text, needle) != NULL;
        free(text);
        if (found) {
            return;
        }
        int status;
        cr_assert_eq(waitpid(pid, &status, WNOHANG), 0, "processor exited before \"%s\" (see %s)",
                     needle, log);
        cr_assert(h_now_ms() < deadline, "no \"%s\" in %s", needle, log);
        h_sleep_ms(50);
    }
}

/* The port of "http: listening on 127.0.0.1:<port>" in the log. */
static int http_port(pid_t pid, const char *log)
{
    wait_log(pid, log, "http: listening on 127.0.0.1:", 10000);
    char *text = h_read_file(log, NULL);
    int port = atoi(strstr(text, "http: listening on 127.0.0.1:") +
                    strlen("http: listening on 127.0.0.1:"));
    free(text);
    cr_assert(port > 0);
    return port;
}

/* The body of GET path (curl; "" when it failed). Caller frees. */
static char *http_body(int port, const char *path)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "curl -s -m 5 http://127.0.0.1:%d%s", port, path);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (len < cap - 1 && (n = fread(buf + len, 1, cap - 1 - len, f)) > 0) {
        len += n;
    }
    buf[len] = '\0';
    pclose(f);
    return buf;
}

/* Polls GET path until the body contains needle (10 s). */
static void wait_body(int port, const char *path, const char *needle)
{
    int64_t deadline = h_now_ms() + 10000;
    for (;;) {
        char *body = http_body(port, path);
        int found = strstr(body, needle) != NULL;
        if (found || h_now_ms() > deadline) {
            cr_assert(found, "GET %s: no \"%s\" in %s", path, needle, body);
            free(body);
            return;
        }
        free(body);
        h_sleep_ms(100);
    }
}

/* Whether the cluster lists the topic. Asks for all topics: a Metadata request that names
 * a topic would create it on the mock cluster. */
static int topic_exists(const struct h_kafka *k, const char *topic)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    cr_assert_eq(rd_kafka_conf_set(conf, "bootstrap.servers", k->bootstrap, err, sizeof(err)),
                 RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    cr_assert_not_null(rk, "%s", err);
    const struct rd_kafka_metadata *md = NULL;
    cr_assert_eq(rd_kafka_metadata(rk, 1, NULL, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    int found = 0;
    for (int i = 0; i < md->topic_cnt; i++) {
        found |= strcmp(md->topics[i].topic, topic) == 0;
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return found;
}

/* Sends sig and asserts a clean exit within within_ms. */
static void stop_within(pid_t pid, int sig, int within_ms, const char *log)
{
    int64_t t0 = h_now_ms();
    kill(pid, sig);
    int rc = h_wait(pid, within_ms);
    proc = -1;
    cr_assert_eq(rc, 0, "exit status %d after signal %d (-2: still running after %d ms; see %s)",
                 rc, sig, within_ms, log);
    cr_log_info("signal %d: exited after %lld ms", sig, (long long)(h_now_ms() - t0));
}

/* Redis is not there at start-up: the processor retries for up to 30 s, but a signal ends
 * the wait at once. */
static void stop_while_redis_unreachable(int sig, const char *name)
{
    char dir[256], log[300], redis[64];
    h_tmpdir(dir, sizeof(dir), name);
    snprintf(log, sizeof(log), "%s/processor.log", dir);
    snprintf(redis, sizeof(redis), "127.0.0.1:%d", h_free_port()); /* nobody listens */
    const char *const args[] = {"--redis", redis, "--brokers", "127.0.0.1:1", NULL};
    pid_t pid = proc = h_processor_start_ex(NULL, NULL, log, NULL, args, NULL);
    wait_log(pid, log, "retrying for up to 30 s", 10000);
    h_sleep_ms(1000);
    stop_within(pid, sig, 2000, log);
}

Test(startup, sigterm_while_redis_unreachable, .timeout = 60, .fini = fini)
{
    stop_while_redis_unreachable(SIGTERM, "sigterm-noredis");
}

Test(startup, sigint_while_redis_unreachable, .timeout = 60, .fini = fini)
{
    stop_while_redis_unreachable(SIGINT, "sigint-noredis");
}

/* Redis goes away while running: the processor pauses and backs off; a SIGTERM then ends
 * it promptly (one last flush attempt, not ten seconds of them). */
Test(startup, sigterm_during_redis_backoff, .timeout = 120, .fini = fini)
{
    char dir[256], log[300];
    h_tmpdir(dir, sizeof(dir), "backoff");
    snprintf(log, sizeof(log), "%s/processor.log", dir);
    static struct h_redis redis;
    static struct h_kafka kafka;
    h_redis_start(&redis, 0);
    redis_up = &redis;
    h_kafka_start(&kafka, "backoff", 2);
    kafka_up = &kafka;
    static const char *const sets[] = {"group_id=backoff", "flush.interval_ms=100", NULL};
    pid_t pid = proc = h_processor_start_ex(&kafka, &redis, log, sets, NULL, NULL);
    wait_log(pid, log, "assigned", 30000);
    h_redis_kill(&redis, SIGKILL);
    /* Events to flush, so a flush fails and the loop backs off. */
    struct h_msg m[20];
    char buf[20][200];
    for (int i = 0; i < 20; i++) {
        snprintf(buf[i], sizeof(buf[i]),
                 "{\"event_id\":\"e%d\",\"type\":\"like\",\"ts\":%lld,\"account_id\":\"a\","
                 "\"content_id\":\"c\",\"user_id\":\"u%d\"}",
                 i, (long long)h_now_ms(), i);
        m[i] = (struct h_msg){.key = "c", .payload = buf[i], .len = strlen(buf[i])};
    }
    h_produce(&kafka, kafka.topic, m, 20);
    wait_log(pid, log, "consumption paused", 30000);
    h_sleep_ms(1000);
    stop_within(pid, SIGTERM, 2000, log);
}

/* Redis dies just before the stop, so the final flush retries (for up to 10 s); a second
 * SIGTERM ends that at once. */
Test(startup, second_sigterm_ends_final_flush_retries, .timeout = 120, .fini = fini)
{
    char dir[256], log[300];
    h_tmpdir(dir, sizeof(dir), "second");
    snprintf(log, sizeof(log), "%s/processor.log", dir);
    static struct h_redis redis;
    static struct h_kafka kafka;
    h_redis_start(&redis, 0);
    redis_up = &redis;
    h_kafka_start(&kafka, "second", 1);
    kafka_up = &kafka;
    /* No flush before the stop: the events wait in the batch, Redis is not known down. */
    static const char *const sets[] = {"group_id=second", "flush.interval_ms=600000",
                                       "flush.max_interval_ms=600000", "stats.interval_ms=500",
                                       NULL};
    pid_t pid = proc = h_processor_start_ex(&kafka, &redis, log, sets, NULL, NULL);
    wait_log(pid, log, "assigned", 30000);
    char ev[200];
    snprintf(ev, sizeof(ev),
             "{\"event_id\":\"s1\",\"type\":\"like\",\"ts\":%lld,\"account_id\":\"a\","
             "\"content_id\":\"c\",\"user_id\":\"u\"}",
             (long long)h_now_ms());
    struct h_msg m = {.key = "c", .payload = ev, .len = strlen(ev)};
    h_produce(&kafka, kafka.topic, &m, 1);
    wait_log(pid, log, "consumed 1", 15000);
    h_redis_kill(&redis, SIGKILL);
    kill(pid, SIGTERM);
    h_sleep_ms(1000); /* retrying the final flush now */
    cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "exited before the second signal (see %s)",
                 log);
    stop_within(pid, SIGTERM, 2000, log);
}

/* A misspelled topic: said in the log and in /readyz, and not created (nor its .dlq).
 * When the topic appears, the processor subscribes and consumes it. */
Test(startup, missing_topic_reported_not_created, .timeout = 120, .fini = fini)
{
    char dir[256], log[300], typo[200];
    h_tmpdir(dir, sizeof(dir), "typo");
    snprintf(log, sizeof(log), "%s/processor.log", dir);
    static struct h_redis redis;
    static struct h_kafka kafka;
    h_redis_start(&redis, 0);
    redis_up = &redis;
    h_kafka_start(&kafka, "typo", 2);
    kafka_up = &kafka;
    snprintf(typo, sizeof(typo), "%s-tpyo", kafka.topic);
    static const char *const sets[] = {"group_id=typo", "flush.interval_ms=100", NULL};
    const char *const args[] = {"--topic", typo, NULL}; /* after the harness' --topic: wins */
    pid_t pid = proc = h_processor_start_ex(&kafka, &redis, log, sets, args, NULL);
    int port = http_port(pid, log);
    char want[300];
    snprintf(want, sizeof(want), "topic \"%s\" does not exist on the Kafka cluster", typo);
    wait_log(pid, log, want, 15000);
    wait_body(port, "/readyz", "Kafka topic does not exist (check topic)");
    h_sleep_ms(1500); /* time for a late Metadata request to create it */
    char dlq[220];
    snprintf(dlq, sizeof(dlq), "%s.dlq", typo);
    cr_assert(!topic_exists(&kafka, typo), "topic %s was created", typo);
    cr_assert(!topic_exists(&kafka, dlq), "topic %s was created", dlq);
    cr_assert(topic_exists(&kafka, kafka.topic), "the listing itself is wrong");
    /* Created now (the mock creates a topic on first produce): consumed. */
    char ev[200];
    snprintf(ev, sizeof(ev),
             "{\"event_id\":\"t1\",\"type\":\"like\",\"ts\":%lld,\"account_id\":\"a\","
             "\"content_id\":\"c\",\"user_id\":\"u\"}",
             (long long)h_now_ms());
    struct h_msg m = {.key = "c", .payload = ev, .len = strlen(ev)};
    h_produce(&kafka, typo, &m, 1);
    wait_log(pid, log, "exists now: subscribing", 15000);
    wait_log(pid, log, "assigned", 30000);
    wait_log(pid, log, "counted 1", 15000);
    stop_within(pid, SIGTERM, 5000, log);
}

/* Kafka unreachable: each connect failure is logged once, /readyz names the brokers, and
 * the lag is unknown (null, "unknown"), not 0. */
Test(startup, brokers_unreachable_reported, .timeout = 60, .fini = fini)
{
    char dir[256], log[300], brokers[64];
    h_tmpdir(dir, sizeof(dir), "nobroker");
    snprintf(log, sizeof(log), "%s/processor.log", dir);
    static struct h_redis redis;
    h_redis_start(&redis, 0);
    redis_up = &redis;
    int kport = h_free_port(); /* nobody listens */
    snprintf(brokers, sizeof(brokers), "127.0.0.1:%d", kport);
    static const char *const sets[] = {"stats.interval_ms=1000", NULL};
    const char *const args[] = {"--brokers", brokers, NULL};
    pid_t pid = proc = h_processor_start_ex(NULL, &redis, log, sets, args, NULL);
    int port = http_port(pid, log);
    wait_body(port, "/readyz", "Kafka brokers unreachable (check kafka.bootstrap.servers)");
    wait_body(port, "/api/v1/summary", "\"lag\":null");
    wait_log(pid, log, "lag unknown []", 5000);
    /* The first failure, in full, exactly once (later ones are summarised by librdkafka
     * as "suppressed" and by our log as "repeated"). */
    char needle[128];
    snprintf(needle, sizeof(needle), "Connect to ipv4#127.0.0.1:%d failed: Connection refused",
             kport);
    char *text = h_read_file(log, NULL);
    int first = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        size_t n = strlen(line), tail = strlen("state CONNECT)");
        if (strstr(line, needle) && n > tail && !strcmp(line + n - tail, "state CONNECT)")) {
            first++;
        }
    }
    free(text);
    cr_assert_eq(first, 1, "the first connect failure was logged %d times (see %s)", first, log);
    stop_within(pid, SIGTERM, 2000, log);
}

/* http.address may be a host name: localhost binds what it resolves to. A second instance
 * on the same port is refused with the keys that move it. */
Test(startup, http_host_name_and_busy_port, .timeout = 60, .fini = fini)
{
    char dir[256], log[300], log2[300];
    h_tmpdir(dir, sizeof(dir), "httpname");
    snprintf(log, sizeof(log), "%s/processor.log", dir);
    snprintf(log2, sizeof(log2), "%s/second.log", dir);
    static struct h_redis redis;
    h_redis_start(&redis, 0);
    redis_up = &redis;
    char port_set[32];
    int port = h_free_port();
    snprintf(port_set, sizeof(port_set), "http.port=%d", port);
    const char *const sets[] = {"http.address=localhost", port_set, NULL};
    const char *const args[] = {"--brokers", "127.0.0.1:1", NULL};
    pid_t pid = proc = h_processor_start_ex(NULL, &redis, log, sets, args, NULL);
    wait_log(pid, log, "(localhost)", 10000);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "curl -sf -m 5 http://localhost:%d/healthz >/dev/null", port);
    cr_assert_eq(system(cmd), 0, "GET /healthz on localhost:%d (see %s)", port, log);
    /* The same port again: refused, naming the keys. */
    pid_t second = h_processor_start_ex(NULL, &redis, log2, sets, args, NULL);
    int rc = h_wait(second, 10000);
    char *text = h_read_file(log2, NULL);
    cr_assert(rc == 1 && strstr(text, "cannot listen") && strstr(text, "http.port") &&
                  strstr(text, "http.enabled=false"),
              "second instance: status %d, log: %s", rc, text);
    free(text);
    stop_within(pid, SIGTERM, 2000, log);
}

/* The mock cluster stops answering a kind of request (smm-mock-kafka: SIGUSR1 delays
 * Produce responses by 60 s, SIGUSR2 OffsetFetch responses). Needs the mock: skipped on an
 * external broker. */
static void mock_slow(const struct h_kafka *k, int sig)
{
    if (k->pid <= 0) {
        cr_skip_test("needs smm-mock-kafka (fault injection), not an external broker");
    }
    cr_assert_eq(kill(k->pid, sig), 0);
    h_sleep_ms(200); /* taken by the mock's sigwait loop */
}

/* A dead letter is waiting for the broker's acknowledgement, which does not come: a SIGTERM
 * ends the wait within a bound (DLQ_STOP_WAIT_MS, 2 s), not after 10 s or more, and says
 * that the dead letter is produced again on the next start. */
Test(startup, sigterm_with_dead_letter_unacknowledged, .timeout = 120, .fini = fini)
{
    char dir[256], log[300];
    h_tmpdir(dir, sizeof(dir), "dlqstop");
    snprintf(log, sizeof(log), "%s/processor.log", dir);
    static struct h_redis redis;
    static struct h_kafka kafka;
    h_redis_start(&redis, 0);
    redis_up = &redis;
    h_kafka_start(&kafka, "dlqstop", 1);
    kafka_up = &kafka;
    struct h_msg m = {.key = "c", .payload = "not json", .len = strlen("not json")};
    h_produce(&kafka, kafka.topic, &m, 1);
    mock_slow(&kafka, SIGUSR1); /* from now on, the dead letter is not acknowledged */
    static const char *const sets[] = {"group_id=dlqstop", "flush.interval_ms=100", NULL};
    pid_t pid = proc = h_processor_start_ex(&kafka, &redis, log, sets, NULL, NULL);
    wait_log(pid, log, "dead letter ", 30000);
    h_sleep_ms(1000); /* a flush is due and waits for the dead letter */
    stop_within(pid, SIGTERM, 3500, log);
    char *text = h_read_file(log, NULL);
    cr_assert(strstr(text, "1 dead letter(s) not acknowledged at shutdown"),
              "no word of the dead letter left behind (see %s)", log);
    free(text);
}

/* The group coordinator does not answer the committed-offsets request made on assignment
 * (a partition Redis has no offset for): a SIGTERM ends that wait at once, and nothing is
 * consumed from a partition whose start could not be checked. */
Test(startup, sigterm_while_committed_offsets_unanswered, .timeout = 120, .fini = fini)
{
    char dir[256], log[300];
    h_tmpdir(dir, sizeof(dir), "committed");
    snprintf(log, sizeof(log), "%s/processor.log", dir);
    static struct h_redis redis;
    static struct h_kafka kafka;
    h_redis_start(&redis, 0);
    redis_up = &redis;
    h_kafka_start(&kafka, "committed", 1);
    kafka_up = &kafka;
    mock_slow(&kafka, SIGUSR2);
    static const char *const sets[] = {"group_id=committed", "flush.interval_ms=100", NULL};
    pid_t pid = proc = h_processor_start_ex(&kafka, &redis, log, sets, NULL, NULL);
    wait_log(pid, log, "consuming ", 30000);
    h_sleep_ms(5000); /* joined the group; the rebalance callback waits for the answer */
    stop_within(pid, SIGTERM, 2000, log);
    char *text = h_read_file(log, NULL);
    cr_assert(strstr(text, "stopped while reading the committed offsets of 1 partition(s)"),
              "the stop did not come during the committed-offsets wait (see %s)", log);
    free(text);
}
