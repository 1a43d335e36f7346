/* tests/integration/test_startup.c - what an operator meets first: start-up against
 * services that are missing or misnamed, and stopping the processor while it waits.
 *
 * A signal must end every wait at once (the Redis retries at start-up, the run-time
 * backoff while Redis is down), with a clean exit status. A real redis-server and the
 * librdkafka mock cluster (or the broker of SMMT_BOOTSTRAP) stand in for production. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"

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

/* Sends sig and asserts a clean exit within within_ms. */
static void stop_within(pid_t pid, int sig, int within_ms, const char *log)
{
    int64_t t0 = h_now_ms();
    kill(pid, sig);
    int rc = h_wait(pid, within_ms);
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
    pid_t pid = h_processor_start_ex(NULL, NULL, log, NULL, args, NULL);
    wait_log(pid, log, "retrying for up to 30 s", 10000);
    h_sleep_ms(1000);
    stop_within(pid, sig, 2000, log);
}

Test(startup, sigterm_while_redis_unreachable, .timeout = 60)
{
    stop_while_redis_unreachable(SIGTERM, "sigterm-noredis");
}

Test(startup, sigint_while_redis_unreachable, .timeout = 60)
{
    stop_while_redis_unreachable(SIGINT, "sigint-noredis");
}

/* Redis goes away while running: the processor pauses and backs off; a SIGTERM then ends
 * it promptly (one last flush attempt, not ten seconds of them). */
Test(startup, sigterm_during_redis_backoff, .timeout = 120)
{
    char dir[256], log[300];
    h_tmpdir(dir, sizeof(dir), "backoff");
    snprintf(log, sizeof(log), "%s/processor.log", dir);
    struct h_redis redis;
    struct h_kafka kafka;
    h_redis_start(&redis, 0);
    h_kafka_start(&kafka, "backoff", 2);
    static const char *const sets[] = {"group_id=backoff", "flush.interval_ms=100", NULL};
    pid_t pid = h_processor_start_ex(&kafka, &redis, log, sets, NULL, NULL);
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
    h_kafka_stop(&kafka);
    h_redis_stop(&redis);
}
