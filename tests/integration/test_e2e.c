/* tests/integration/test_e2e.c - generated stream through Kafka and a real redis-server,
 * every Redis value compared with the independent oracle; then the same with Redis reached
 * only over a unix socket, after kill -9 of the processor and after kill -9 of Redis (AOF
 * everysec) mid-stream. The first run also proves the fault suite's measure (oracle_diff)
 * sees an event lost or counted twice, and a wrong minute bucket. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/integration/oracle.h"

struct bad {
    char *payload;
    const char *reason;
};

/* One message per dead-letter reason, plus well-formed events whose ids try to escape the
 * key namespace and whose time is an RFC 3339 string. */
static size_t make_inputs(struct h_msg **out_bad, struct bad **out_reasons, struct h_msg **good,
                          size_t *n_good)
{
    static char buf[16][512];
    int64_t now = h_now_ms();
    int i = 0;
    snprintf(buf[i++], 512, "{\"event_id\":\"b1\",\"type\":\"like\"");
    snprintf(buf[i++], 512, "[1,2,3]");
    snprintf(buf[i++], 512, "{\"type\":\"mention\",\"ts\":%lld,\"account_id\":\"a\"}", (long long)now);
    snprintf(buf[i++], 512, "{\"event_id\":\"b4\",\"type\":\"like\",\"ts\":%lld,\"account_id\":\"a\"}",
             (long long)now);
    snprintf(buf[i++], 512, "{\"event_id\":\"b5\",\"type\":\"teleport\",\"ts\":%lld,\"account_id\":\"a\"}",
             (long long)now);
    snprintf(buf[i++], 512, "{\"event_id\":\"b6\",\"type\":\"mention\",\"ts\":%lld,\"account_id\":42}",
             (long long)now);
    snprintf(buf[i++], 512, "{\"event_id\":\"b7\",\"type\":\"mention\",\"ts\":\"yesterday\",\"account_id\":\"a\"}");
    snprintf(buf[i++], 512, "{\"event_id\":\"b8\",\"type\":\"mention\",\"ts\":%lld,\"account_id\":\"a\"}",
             (long long)(now - 10LL * 86400000));
    snprintf(buf[i++], 512, "{\"event_id\":\"b9\",\"type\":\"mention\",\"ts\":%lld,\"account_id\":\"a\"}",
             (long long)(now + 86400000));
    snprintf(buf[i++], 512, "{\"event_id\":\"%0200d\",\"type\":\"mention\",\"ts\":%lld,\"account_id\":\"a\"}",
             7, (long long)now);
    snprintf(buf[i++], 512, "{\"event_id\":\"b11\",\"type\":\"mention\",\"ts\":%lld,\"account_id\":\"a\\u0001b\"}",
             (long long)now);
    static const char *const reasons[] = {"invalid_json", "not_object", "missing_field", "missing_field",
                                          "unknown_type", "wrong_type", "bad_timestamp", "too_old",
                                          "in_future", "id_too_long", "bad_id", "too_large"};
    size_t nb = (size_t)i + 1;
    struct h_msg *bad = calloc(nb, sizeof(*bad));
    struct bad *rs = calloc(nb, sizeof(*rs));
    for (int k = 0; k < i; k++) {
        bad[k].payload = strdup(buf[k]);
        bad[k].len = strlen(buf[k]);
        bad[k].key = strdup("bad");
    }
    /* over the 64 KiB limit */
    size_t big = 70 * 1024;
    bad[i].payload = malloc(big + 1);
    memset(bad[i].payload, ' ', big);
    memcpy(bad[i].payload, "{\"event_id\":\"big\",\"pad\":\"", 25);
    bad[i].payload[big - 2] = '"';
    bad[i].payload[big - 1] = '}';
    bad[i].payload[big] = '\0';
    bad[i].len = big;
    bad[i].key = strdup("bad");
    for (size_t k = 0; k < nb; k++) {
        rs[k].payload = bad[k].payload;
        rs[k].reason = reasons[k];
    }
    /* well-formed but hostile ids, and RFC 3339 time */
    time_t secs = (time_t)(now / 1000) - 30;
    struct tm tm;
    gmtime_r(&secs, &tm);
    char when[64];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S.250Z", &tm);
    static const char *const evil[] = {"x:reach", "{tag}", "*", "a b", "line\\u2028sep", "caf\\u00e9",
                                       "\\u6f22\\u5b57", "smm:total"};
    size_t ne = sizeof(evil) / sizeof(evil[0]);
    struct h_msg *g = calloc(ne, sizeof(*g));
    for (size_t k = 0; k < ne; k++) {
        char p[512];
        snprintf(p, sizeof(p),
                 "{\"event_id\":\"evil-%zu\",\"type\":\"impression\",\"ts\":\"%s\",\"account_id\":"
                 "\"acct:%s\",\"content_id\":\"%s\",\"user_id\":\"u %s\",\"extra\":{\"ignored\":true}}",
                 k, when, evil[k], evil[k], evil[k]);
        g[k].payload = strdup(p);
        g[k].len = strlen(p);
        g[k].key = strdup(evil[k]);
    }
    *out_bad = bad;
    *out_reasons = rs;
    *good = g;
    *n_good = ne;
    return nb;
}

struct run {
    char dir[256];
    struct h_redis redis;
    struct h_kafka kafka;
    struct oracle *oracle;
    int64_t messages;
    size_t n_bad;
    struct bad *bad_reasons;
};

/* Redis listens on TCP and, with unix_socket, also on that socket path. */
static void setup_run_on(struct run *run, const char *name, int aof, int partitions, int events,
                         const char *unix_socket)
{
    memset(run, 0, sizeof(*run));
    h_tmpdir(run->dir, sizeof(run->dir), name);
    if (unix_socket) {
        const char *args[] = {"--unixsocket", unix_socket, "--unixsocketperm", "700", NULL};
        h_redis_start_args(&run->redis, args);
    } else {
        h_redis_start(&run->redis, aof);
    }
    h_kafka_start(&run->kafka, name, partitions);
    run->oracle = oracle_new();

    /* Events over the last four minutes, so windows retire while the test runs. */
    char events_path[300];
    snprintf(events_path, sizeof(events_path), "%s/events.jsonl", run->dir);
    h_run(SMM_BUILD_DIR "/tools/smm-gen --stdout --quiet --seed 7 --count %d --contents 3000 "
                        "--accounts 40 --users 20000 --start-ms %lld --span-ms 240000 "
                        "--ts-format mixed --rfc3339-share 0.05 > %s",
          events, (long long)(h_now_ms() - 250000), events_path);
    size_t n;
    struct h_msg *msgs = h_load_jsonl(events_path, &n);
    for (size_t i = 0; i < n; i++) {
        oracle_add_event(run->oracle, msgs[i].payload, msgs[i].len);
    }
    struct h_msg *bad, *good;
    size_t n_good;
    run->n_bad = make_inputs(&bad, &run->bad_reasons, &good, &n_good);
    for (size_t i = 0; i < run->n_bad; i++) {
        oracle_add_reject(run->oracle, run->bad_reasons[i].reason);
    }
    for (size_t i = 0; i < n_good; i++) {
        oracle_add_event(run->oracle, good[i].payload, good[i].len);
    }
    /* Interleave: the generated stream in two halves around the bad and hostile ones. */
    h_produce(&run->kafka, run->kafka.topic, msgs, n / 2);
    h_produce(&run->kafka, run->kafka.topic, bad, run->n_bad);
    h_produce(&run->kafka, run->kafka.topic, good, n_good);
    h_produce(&run->kafka, run->kafka.topic, msgs + n / 2, n - n / 2);
    run->messages = (int64_t)(n + run->n_bad + n_good);
    h_free_msgs(msgs, n);
    h_free_msgs(good, n_good);
    for (size_t i = 0; i < run->n_bad; i++) {
        free(bad[i].key);
    }
    free(bad); /* payloads stay referenced by bad_reasons */
}

static void setup_run(struct run *run, const char *name, int aof, int partitions, int events)
{
    setup_run_on(run, name, aof, partitions, events, NULL);
}

struct dlq_seen {
    struct run *run;
    size_t matched;
};

static void on_dead_letter(void *opaque, const char *payload, size_t len, const char *reason)
{
    struct dlq_seen *s = opaque;
    for (size_t i = 0; i < s->run->n_bad; i++) {
        const struct bad *b = &s->run->bad_reasons[i];
        if (strlen(b->payload) == len && memcmp(b->payload, payload, len) == 0) {
            cr_assert_str_eq(reason, b->reason, "dead letter %zu: reason %s, want %s", i, reason,
                             b->reason);
            s->matched++;
            return;
        }
    }
    cr_assert_fail("unexpected dead letter: %.80s", payload);
}

/* The key of an entity's hash: smm:{<shard>}:<entity> (docs/redis-keys.md). */
static void entity_key(redisContext *c, const char *entity, char *out, size_t size)
{
    redisReply *r = redisCommand(c, "HGET smm:meta shards");
    cr_assert(r && r->type == REDIS_REPLY_STRING, "smm:meta shards missing");
    redisReply *n = redisCommand(
        c, "EVAL %s 0 %s %s",
        "return tonumber(redis.sha1hex(ARGV[1]):sub(1,8),16) % tonumber(ARGV[2])", entity, r->str);
    cr_assert(n && n->type == REDIS_REPLY_INTEGER);
    snprintf(out, size, "smm:{%lld}:%s", n->integer, entity);
    freeReplyObject(n);
    freeReplyObject(r);
}

static void set_field(redisContext *c, const char *key, const char *field, const char *value)
{
    redisReply *r = value ? redisCommand(c, "HSET %s %s %s", key, field, value)
                          : redisCommand(c, "HDEL %s %s", key, field);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
}

/* oracle_diff (the fault suite's measure) finds an event lost or counted twice in an
 * account's lifetime field, and a wrong minute bucket; Redis is restored after. The
 * hostile account "acct:*" has exactly one impression. */
static void diff_detects_tampering(struct run *run, redisContext *c)
{
    struct oracle_diff d;
    cr_assert_eq(oracle_diff(run->oracle, c, &d), 0);
    cr_assert(d.lost == 0 && d.double_counted == 0 && d.fields_differing == 0 &&
                  d.counted == d.expected_events && d.expected_events > 0,
              "untouched: lost %lld, double %lld, differing %lld, counted %lld of %lld",
              (long long)d.lost, (long long)d.double_counted, (long long)d.fields_differing,
              (long long)d.counted, (long long)d.expected_events);
    char key[300];
    entity_key(c, "a:acct:*", key, sizeof(key));
    redisReply *r = redisCommand(c, "HGET %s t", key);
    cr_assert(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "impression=1"),
              "%s t: %s", key, r && r->str ? r->str : "(none)");
    freeReplyObject(r);

    set_field(c, key, "t", "impression=2"); /* counted twice */
    cr_assert_eq(oracle_diff(run->oracle, c, &d), 0);
    cr_assert(d.double_counted == 1 && d.lost == 0 && d.counted == d.expected_events + 1 &&
                  d.fields_differing >= 1,
              "doubled: lost %lld, double %lld, differing %lld", (long long)d.lost,
              (long long)d.double_counted, (long long)d.fields_differing);
    set_field(c, key, "t", NULL); /* lost */
    cr_assert_eq(oracle_diff(run->oracle, c, &d), 0);
    cr_assert(d.lost == 1 && d.double_counted == 0 && d.counted == d.expected_events - 1 &&
                  d.fields_differing >= 1,
              "lost: lost %lld, double %lld, differing %lld", (long long)d.lost,
              (long long)d.double_counted, (long long)d.fields_differing);
    set_field(c, key, "t", "impression=1");

    /* the minute bucket (and so every window through smm_get) off by one */
    r = redisCommand(c, "HKEYS %s", key);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY);
    char minute[32] = "";
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->str[0] == 'm') {
            snprintf(minute, sizeof(minute), "%s", r->element[i]->str);
        }
    }
    freeReplyObject(r);
    cr_assert(minute[0], "%s has no minute field", key);
    set_field(c, key, minute, "impression=2");
    cr_assert_eq(oracle_diff(run->oracle, c, &d), 0);
    cr_assert(d.lost == 0 && d.double_counted == 0 && d.fields_differing >= 2,
              "minute bucket: lost %lld, double %lld, differing %lld", (long long)d.lost,
              (long long)d.double_counted, (long long)d.fields_differing);
    set_field(c, key, minute, "impression=1");
    cr_assert_eq(oracle_diff(run->oracle, c, &d), 0);
    cr_assert(d.lost == 0 && d.double_counted == 0 && d.fields_differing == 0, "restored");
}

static void finish_run_ex(struct run *run, int tamper)
{
    redisContext *c = h_redis_connect(&run->redis);
    struct oracle_report rep;
    oracle_check(run->oracle, c, run->messages, &rep);
    if (tamper) {
        diff_detects_tampering(run, c);
    }
    redisFree(c);
    cr_log_info("checked %zu fields over %zu entities and %zu minutes; max reach error %.4f",
                rep.fields_checked, rep.entities, rep.minutes, rep.max_reach_error);
    struct dlq_seen seen = {run, 0};
    size_t n = h_consume_all(&run->kafka, run->kafka.dlq, 3000, on_dead_letter, &seen);
    /* At-least-once to the dead-letter topic: a crash between producing a dead letter and
     * storing the offset re-produces it. Every one must be there, with its reason. */
    cr_assert(seen.matched >= run->n_bad && n == seen.matched,
              "dead letters: %zu consumed, %zu matched, %zu expected", n, seen.matched, run->n_bad);
    h_kafka_stop(&run->kafka);
    h_redis_stop(&run->redis);
    oracle_free(run->oracle);
    for (size_t i = 0; i < run->n_bad; i++) {
        free(run->bad_reasons[i].payload);
    }
    free(run->bad_reasons);
}

static void finish_run(struct run *run)
{
    finish_run_ex(run, 0);
}

/* Sum of the offsets Redis stores: how many messages are durably accounted for. */
static int64_t stored_offsets(struct run *run)
{
    redisContext *c = redisConnectWithTimeout("127.0.0.1", run->redis.port, (struct timeval){1, 0});
    int64_t sum = -1;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "HVALS smm:offsets");
        if (r && r->type == REDIS_REPLY_ARRAY) {
            sum = 0;
            for (size_t i = 0; i < r->elements; i++) {
                sum += strtoll(r->element[i]->str, NULL, 10);
            }
        }
        if (r) {
            freeReplyObject(r);
        }
    }
    if (c) {
        redisFree(c);
    }
    return sum;
}

/* Waits until Redis accounts for `want` messages; fails at once if the processor exits. */
static void wait_offsets(struct run *run, pid_t pid, int64_t want, int timeout_ms,
                         const char *log)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    int64_t sum;
    while ((sum = stored_offsets(run)) < want) {
        cr_assert(h_now_ms() < deadline, "timed out at %lld of %lld messages (see %s)",
                  (long long)sum, (long long)want, log);
        int status;
        cr_assert(waitpid(pid, &status, WNOHANG) == 0, "processor exited early (see %s)", log);
        h_sleep_ms(100);
    }
}

/* Small batches in the fault tests: many flushes, so a kill lands between or inside them
 * at many different points. */
static const char *const fast[] = {"group_id=e2e", NULL};
static const char *const small_batches[] = {"group_id=e2e", "flush.max_events=1500",
                                            "flush.interval_ms=50", NULL};

static pid_t start_with(struct run *run, const char *tag, char *log, size_t log_size,
                        const char *const *extra)
{
    snprintf(log, log_size, "%s/processor-%s.log", run->dir, tag);
    return h_processor_start(&run->kafka, &run->redis, log, extra);
}

static pid_t start(struct run *run, const char *tag, char *log, size_t log_size)
{
    return start_with(run, tag, log, log_size, fast);
}

static void stop(pid_t pid, const char *log)
{
    /* A SIGTERM before main() installs its handler would kill it with 143: wait until the
     * processor says it is consuming (or exited). */
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "grep -q 'consuming' %s 2>/dev/null", log);
    for (int i = 0; i < 200 && system(cmd) != 0; i++) {
        h_sleep_ms(50);
    }
    kill(pid, SIGTERM);
    cr_assert_eq(h_wait(pid, 30000), 0, "processor exit status (see %s)", log);
}

/* Events 23, 24 and 25 hours old (accepted with retention_ms=26h): they land only in the
 * hour and lifetime fields, on both sides of the 24h window's old edge (the current
 * hour's minutes plus 24 whole hours), which the oracle checks through smm_get. */
static void add_old_events(struct run *run)
{
    static const char *const types[] = {"impression", "like", "share"};
    struct h_msg *m = calloc(9, sizeof(*m));
    int64_t now = h_now_ms();
    int n = 0;
    for (int age = 23; age <= 25; age++) {
        for (int t = 0; t < 3; t++, n++) {
            char p[300];
            snprintf(p, sizeof(p),
                     "{\"event_id\":\"old-%d-%d\",\"type\":\"%s\",\"ts\":%lld,\"account_id\":"
                     "\"acct:old\",\"content_id\":\"old-%d\",\"user_id\":\"old-user-%d\"}",
                     age, t, types[t], (long long)(now - age * 3600000LL), age, n);
            m[n].payload = strdup(p);
            m[n].len = strlen(p);
            m[n].key = strdup("old");
            oracle_add_event(run->oracle, m[n].payload, m[n].len);
        }
    }
    h_produce(&run->kafka, run->kafka.topic, m, (size_t)n);
    run->messages += n;
    h_free_msgs(m, (size_t)n);
}

Test(e2e, exact_counters_and_dead_letters, .timeout = 240)
{
    struct run run;
    char log[300];
    static const char *const old_too[] = {"group_id=e2e", "retention_ms=26h", NULL};
    setup_run(&run, "e2e", 0, 6, 20000);
    add_old_events(&run);
    pid_t pid = start_with(&run, "1", log, sizeof(log), old_too);
    wait_offsets(&run, pid, run.messages, 180000, log);
    stop(pid, log);
    finish_run_ex(&run, 1);
}

/* redis.unix_socket: the state sink, the alert relay and the HTTP API all reach Redis over
 * the socket (the TCP port given to the processor has nobody listening), and the end
 * state is exact. TCP keepalive on an AF_UNIX socket once failed every command. */
Test(e2e, unix_socket_exact, .timeout = 240)
{
    struct run run;
    char sock[108], log[300];
    snprintf(sock, sizeof(sock), "/tmp/smmt-%d-%lld.sock", (int)getpid(), (long long)h_now_ms());
    setup_run_on(&run, "e2e-unix", 0, 4, 5000, sock);
    char unix_set[160], port_set[32];
    snprintf(unix_set, sizeof(unix_set), "redis.unix_socket=%s", sock);
    snprintf(port_set, sizeof(port_set), "redis.port=%d", h_free_port());
    const char *const sets[] = {"group_id=e2e", unix_set, "redis.host=127.0.0.1", port_set,
                                "alerts.kafka=true", NULL};
    snprintf(log, sizeof(log), "%s/processor-unix.log", run.dir);
    pid_t pid = h_processor_start_ex(&run.kafka, NULL, log, sets, NULL, NULL);
    wait_offsets(&run, pid, run.messages, 180000, log);
    /* The alert relay holds its lease in Redis, through its own connection. */
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "grep -q 'alert relay: took the lease' %s", log);
    int64_t deadline = h_now_ms() + 15000;
    while (system(cmd) != 0) {
        cr_assert(h_now_ms() < deadline, "the alert relay never took its lease (see %s)", log);
        h_sleep_ms(100);
    }
    /* The HTTP API reads Redis with its own connection: /metrics carries smm_open_threads
     * only when that read worked. */
    snprintf(cmd, sizeof(cmd),
             "port=$(sed -n 's/.*http: listening on 127.0.0.1:\\([0-9]*\\).*/\\1/p' %s "
             "| head -1) && "
             "curl -sf \"http://127.0.0.1:$port/metrics\" | grep -q '^smm_open_threads '",
             log);
    cr_assert_eq(system(cmd), 0, "/metrics has no smm_open_threads read over the socket (see %s)",
                 log);
    stop(pid, log);
    /* Neither the sink, nor the relay, nor the HTTP server logged a Redis failure. */
    snprintf(cmd, sizeof(cmd), "grep -Ei 'redis.*(not supported|failed|unreachable)' %s", log);
    cr_assert_neq(system(cmd), 0, "a Redis failure over the socket was logged (see %s)", log);
    finish_run(&run);
    unlink(sock);
}

/* kill -9 at random points, five times, each followed by a restart: nothing lost, nothing
 * counted twice. */
Test(e2e, kill9_restarts_exact, .timeout = 400)
{
    struct run run;
    char log[300];
    setup_run(&run, "kill9", 0, 8, 60000);
    srand((unsigned)h_now_ms());
    int kills = 0;
    for (int round = 0; round < 5; round++) {
        char tag[16];
        snprintf(tag, sizeof(tag), "k%d", round);
        pid_t pid = start_with(&run, tag, log, sizeof(log), small_batches);
        /* Wait until this incarnation made progress, then kill it at a random moment. */
        int64_t before = stored_offsets(&run);
        int64_t deadline = h_now_ms() + 60000;
        while (stored_offsets(&run) <= before && h_now_ms() < deadline) {
            h_sleep_ms(20);
        }
        h_sleep_ms(rand() % 300);
        if (stored_offsets(&run) >= run.messages) {
            stop(pid, log);
            break;
        }
        kill(pid, SIGKILL);
        h_wait(pid, 10000);
        kills++;
    }
    cr_log_info("killed the processor %d times mid-stream", kills);
    cr_assert(kills >= 2, "the stream finished too fast to kill the processor mid-way");
    pid_t pid = start(&run, "final", log, sizeof(log));
    wait_offsets(&run, pid, run.messages, 180000, log);
    stop(pid, log);
    finish_run(&run);
}

/* Redis killed (-9) and restarted from its AOF mid-stream: the processor pauses, retries,
 * notices offsets that went back and re-reads; the end state is exact. */
Test(e2e, redis_kill9_restart_exact, .timeout = 300)
{
    struct run run;
    char log[300];
    setup_run(&run, "rkill", 1, 8, 60000);
    pid_t pid = start_with(&run, "1", log, sizeof(log), small_batches);
    int64_t deadline = h_now_ms() + 60000;
    while (stored_offsets(&run) < run.messages / 4 && h_now_ms() < deadline) {
        h_sleep_ms(20);
    }
    cr_assert(stored_offsets(&run) < run.messages, "stream finished before Redis was killed");
    h_redis_kill(&run.redis, SIGKILL);
    h_sleep_ms(3000); /* the processor sees Redis gone: pauses and backs off */
    h_redis_restart(&run.redis);
    wait_offsets(&run, pid, run.messages, 180000, log);
    stop(pid, log);
    finish_run(&run);
}

/* A zombie: an instance frozen (SIGSTOP) past its session timeout while holding unflushed
 * counts. Another instance takes its partitions; when the zombie wakes, its flush must be
 * refused by the owner fence, and the end state is exact. */
Test(e2e, zombie_is_fenced, .timeout = 300)
{
    struct run run;
    char log_a[300], log_b[300];
    setup_run(&run, "zombie", 0, 4, 20000);
    static const char *const slow[] = {"group_id=e2e", "flush.interval_ms=30000",
                                       "flush.max_events=10000000", NULL};
    pid_t a = start_with(&run, "zombie", log_a, sizeof(log_a), slow);
    /* Let A consume (its first flush is 30 s away), then freeze it with counts in memory. */
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "grep -q 'consumed [1-9]' %s", log_a);
    int64_t deadline = h_now_ms() + 60000;
    while (system(cmd) != 0 && h_now_ms() < deadline) {
        h_sleep_ms(100);
    }
    kill(a, SIGSTOP);
    int64_t frozen_at = stored_offsets(&run);
    pid_t b = start(&run, "heir", log_b, sizeof(log_b));
    wait_offsets(&run, b, run.messages, 180000, log_b);
    kill(a, SIGCONT); /* wakes, flushes what it held: must be fenced */
    h_sleep_ms(5000);
    stop(b, log_b);
    kill(a, SIGTERM);
    cr_assert_eq(h_wait(a, 30000), 0, "zombie exit status (see %s)", log_a);
    /* Either its flush was refused by the fence, or librdkafka told it first that the
     * partitions were lost and it dropped them; the exact end state proves it wrote
     * nothing for them (tests/integration/test_fence.c forces the fence path). */
    snprintf(cmd, sizeof(cmd), "grep -Eq 'fenced|\\(lost\\)' %s", log_a);
    cr_assert(frozen_at < run.messages && system(cmd) == 0,
              "the zombie neither was fenced nor lost its partitions (stored %lld of %lld "
              "when frozen; see %s)",
              (long long)frozen_at, (long long)run.messages, log_a);
    finish_run(&run);
}
