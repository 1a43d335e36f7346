/* tests/integration/test_security.c - credentials and the key namespace (docs/security.md).
 *
 * - redis_requirepass: the Redis password from a config file, SMM_REDIS_PASSWORD and
 *   redis.password_file; each run is compared field by field with the oracle. A wrong or
 *   missing password stops the processor within seconds with a message naming Redis AUTH.
 * - redis_acl_prefix: an ACL user limited to ~smm:* and to the commands the processor sends
 *   (the rule documented in docs/security.md, kept in sync with connectors/lua/smm.lua and
 *   the read library smm_lib.lua here);
 *   Redis' ACL LOG must show no denial. redis_acl_refused_fails_fast: a user limited to
 *   another prefix, or missing one command, makes the processor stop with the NOPERM reason
 *   instead of retrying forever or counting nothing silently;
 *   redis_acl_refused_writes_no_partial_batch: a command refused half-way through the script
 *   leaves no counters without their offsets (smm.lua checks every command first).
 * - kafka_sasl_plain (and kafka_sasl_scram on Kafka 3.9.1): a private real broker with a
 *   SASL_PLAINTEXT listener; the processor authenticates with the password from
 *   SMM_KAFKA_SASL_PASSWORD, counts exactly and dead-letters through SASL; a wrong password
 *   stops it within seconds with a message naming SASL authentication.
 * - hostile_ids_stay_in_namespace: ids made of ':', braces, '*', spaces, unicode, "smm:total",
 *   "../x", "c:x:impression", the prefix itself...: every key Redis holds afterwards is one of
 *   the documented keys under the configured prefix, built from exactly one of the ids sent;
 *   every counter hash is <prefix>{<N>}:<kind>:<id> in the entity's own shard N, holding only
 *   t / p / m<minute> / h<hour> buckets of stored metrics, and the leaderboards hold only
 *   content ids sent. Ids with a newline are dead letters (bad_id), exactly.
 * - secrets_never_logged: passwords given by file, environment and --set never show in
 *   --print-config, --check-config, the log (log.level=debug in every variant, stats every
 *   500 ms, the --top lines, librdkafka debug on, text and JSON format) or error messages.
 * That /metrics exports neither the Redis password nor the HTTP token is checked by test_http
 * (api_metrics_auth_and_secrets). */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/integration/oracle.h"

#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- helpers ---- */

static int is_number(const char *s)
{
    return *s && strspn(s, "0123456789") == strlen(s);
}

/* The repository root, for tools/kafka/broker.sh and connectors/lua/smm.lua. */
static const char *source_dir(void)
{
    static char dir[512];
    if (!dir[0]) {
#ifdef SMM_SOURCE_DIR
        snprintf(dir, sizeof(dir), "%s", SMM_SOURCE_DIR);
#else
        const char *env = getenv("SMMT_SOURCE_DIR");
        if (env && *env) {
            snprintf(dir, sizeof(dir), "%s", env);
        } else {
            /* CMake compiles this file by its absolute path. */
            snprintf(dir, sizeof(dir), "%s", __FILE__);
            char *t = strstr(dir, "/tests/integration/test_security.c");
            cr_assert(t, "cannot locate the source tree from %s (set SMMT_SOURCE_DIR)", __FILE__);
            *t = '\0';
        }
#endif
    }
    return dir;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    chmod(path, 0600);
}

/* Fails when the file holds any of the secrets (NULL-terminated list). */
static void assert_lacks(const char *path, const char *const *secrets)
{
    size_t len;
    char *text = h_read_file(path, &len);
    for (int i = 0; secrets[i]; i++) {
        cr_assert(strstr(text, secrets[i]) == NULL, "%s contains the secret \"%s\"", path,
                  secrets[i]);
    }
    free(text);
}

static int file_has(const char *path, const char *needle)
{
    char *text = h_read_file(path, NULL);
    int found = strstr(text, needle) != NULL;
    free(text);
    return found;
}

static int count_in_file(const char *path, const char *needle)
{
    char *text = h_read_file(path, NULL);
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) {
        n++;
    }
    free(text);
    return n;
}

/* A connection to the test's Redis (NULL when it is not reachable), authenticated with
 * admin_pw when given. Does not assert: used while polling. */
static redisContext *try_connect(const struct h_redis *r, const char *admin_pw)
{
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, (struct timeval){1, 0});
    if (!c || c->err) {
        if (c) {
            redisFree(c);
        }
        return NULL;
    }
    if (admin_pw) {
        redisReply *a = redisCommand(c, "AUTH %s", admin_pw);
        int ok = a && a->type == REDIS_REPLY_STATUS;
        if (a) {
            freeReplyObject(a);
        }
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* Sum of the offsets Redis stores under prefix: messages durably accounted for. */
static int64_t stored_sum(const struct h_redis *r, const char *admin_pw, const char *prefix)
{
    redisContext *c = try_connect(r, admin_pw);
    int64_t sum = -1;
    if (c) {
        redisReply *rep = redisCommand(c, "HVALS %soffsets", prefix);
        if (rep && rep->type == REDIS_REPLY_ARRAY) {
            sum = 0;
            for (size_t i = 0; i < rep->elements; i++) {
                sum += strtoll(rep->element[i]->str, NULL, 10);
            }
        }
        if (rep) {
            freeReplyObject(rep);
        }
        redisFree(c);
    }
    return sum;
}

/* Waits until Redis accounts for `want` messages; fails at once if the processor exits. */
static void wait_stored(const struct h_redis *r, const char *admin_pw, const char *prefix,
                        pid_t pid, int64_t want, int timeout_ms, const char *log)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    int64_t sum;
    while ((sum = stored_sum(r, admin_pw, prefix)) < want) {
        cr_assert(h_now_ms() < deadline, "timed out at %lld of %lld messages (see %s)",
                  (long long)sum, (long long)want, log);
        int status;
        cr_assert(waitpid(pid, &status, WNOHANG) == 0, "processor exited early (see %s)", log);
        h_sleep_ms(100);
    }
    cr_assert_eq(sum, want, "more messages stored than produced (see %s)", log);
}

static void stop_processor(pid_t pid, const char *log)
{
    kill(pid, SIGTERM);
    cr_assert_eq(h_wait(pid, 30000), 0, "processor exit status (see %s)", log);
}

/* Expects the processor to stop by itself, unsuccessfully, within max_ms. */
static void expect_fails_fast(pid_t pid, int max_ms, const char *log)
{
    int64_t t0 = h_now_ms();
    int rc = h_wait(pid, max_ms);
    int64_t took = h_now_ms() - t0;
    cr_assert(rc != -2, "processor still running after %d ms instead of failing (see %s)", max_ms,
              log);
    cr_assert(rc != 0, "processor exited 0 instead of failing (see %s)", log);
    cr_log_info("processor failed as expected: exit %d after %lld ms (%s)", rc, (long long)took,
                log);
}

/* Generated events (smm-gen, the last span_ms) loaded as messages and given to the oracle. */
static struct h_msg *gen_events(const char *dir, int seed, int count, int64_t span_ms,
                                struct oracle *o, size_t *n)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/events-%d.jsonl", dir, seed);
    h_run(SMM_BUILD_DIR "/tools/smm-gen --stdout --quiet --seed %d --count %d --contents 400 "
                        "--accounts 15 --users 3000 --start-ms %lld --span-ms %lld "
                        "--ts-format mixed > %s",
          seed, count, (long long)(h_now_ms() - span_ms - 20000), (long long)span_ms, path);
    struct h_msg *msgs = h_load_jsonl(path, n);
    for (size_t i = 0; i < *n; i++) {
        oracle_add_event(o, msgs[i].payload, msgs[i].len);
    }
    return msgs;
}

static void check_oracle(const struct h_redis *r, const char *admin_pw, struct oracle *o,
                         int64_t messages)
{
    redisContext *c = admin_pw ? h_redis_connect_auth(r, NULL, admin_pw) : h_redis_connect(r);
    struct oracle_report rep;
    oracle_check(o, c, messages, &rep);
    redisFree(c);
    cr_log_info("oracle: %zu fields over %zu entities and %zu minutes match",
                rep.fields_checked, rep.entities, rep.minutes);
}

/* .fini of every test: kills and reaps what the test started and did not stop because an
 * assertion ended it early (redis-server, smm-mock-kafka, smm-processor are all direct
 * children of the test process; anything else is left alone). */
static void kill_children(void)
{
    pid_t self = getpid();
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!is_number(e->d_name)) {
            continue;
        }
        char path[300];
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        char *stat = h_read_file(path, NULL);
        const char *rp = strrchr(stat, ')');
        char state = 0;
        int ppid = 0;
        if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == (int)self) {
            pid_t pid = (pid_t)atoi(e->d_name);
            int status;
            if (waitpid(pid, &status, WNOHANG) == 0) { /* our child, not reaped yet */
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
            }
        }
        free(stat);
    }
    if (d) {
        closedir(d);
    }
}

/* ---- Redis: requirepass ---- */

/* One run: a fresh Redis with requirepass and a fresh Kafka topic, a generated stream, the
 * processor started with the password given as `how`, the result compared with the oracle. */
static void run_with_password(const char *dir, const char *pw, int variant)
{
    struct h_redis redis;
    h_redis_start_args(&redis, LIST("--requirepass", pw));
    struct h_kafka kafka;
    h_kafka_start(&kafka, "sec-pass", 3);
    struct oracle *o = oracle_new();
    size_t n;
    struct h_msg *msgs = gen_events(dir, 100 + variant, 1500, 240000, o, &n);
    h_produce(&kafka, kafka.topic, msgs, n);

    char log[400], cfg[400], pwfile[400], envpw[300];
    snprintf(log, sizeof(log), "%s/processor-pass-%d.log", dir, variant);
    pid_t pid;
    if (variant == 0) { /* config file */
        char text[600];
        snprintf(cfg, sizeof(cfg), "%s/pass-%d.json", dir, variant);
        snprintf(text, sizeof(text), "{\"group_id\": \"sec-pass\", \"redis\": {\"password\": \"%s\"}}\n",
                 pw);
        write_file(cfg, text);
        pid = h_processor_start_ex(&kafka, &redis, log, NULL, LIST("-c", cfg), NULL);
    } else if (variant == 1) { /* environment */
        snprintf(envpw, sizeof(envpw), "SMM_REDIS_PASSWORD=%s", pw);
        pid = h_processor_start_ex(&kafka, &redis, log, LIST("group_id=sec-pass"), NULL,
                                   LIST(envpw));
    } else { /* redis.password_file */
        char text[300], set[500];
        snprintf(pwfile, sizeof(pwfile), "%s/redis-password-%d", dir, variant);
        snprintf(text, sizeof(text), "%s\n", pw);
        write_file(pwfile, text);
        snprintf(set, sizeof(set), "redis.password_file=%s", pwfile);
        pid = h_processor_start_ex(&kafka, &redis, log, LIST("group_id=sec-pass", set), NULL,
                                   NULL);
    }
    wait_stored(&redis, pw, "smm:", pid, (int64_t)n, 120000, log);
    stop_processor(pid, log);
    check_oracle(&redis, pw, o, (int64_t)n);
    assert_lacks(log, LIST(pw));
    oracle_free(o);
    h_free_msgs(msgs, n);
    h_kafka_stop(&kafka);
    h_redis_stop(&redis);
}

Test(security, redis_requirepass, .timeout = 300, .fini = kill_children)
{
    char dir[256];
    h_tmpdir(dir, sizeof(dir), "sec-pass");
    char pw[64], wrong[64];
    snprintf(pw, sizeof(pw), "Rq-%d-s3cr3t!pw", (int)getpid());
    snprintf(wrong, sizeof(wrong), "Wr-%d-n0t1t!pw", (int)getpid());
    for (int variant = 0; variant < 3; variant++) {
        run_with_password(dir, pw, variant);
    }

    /* Wrong password, then none at all: a clear startup failure, not a retry loop. */
    struct h_redis redis;
    h_redis_start_args(&redis, LIST("--requirepass", pw));
    struct h_kafka kafka;
    h_kafka_start(&kafka, "sec-pass-wrong", 1);
    char log[400], set[200];
    snprintf(log, sizeof(log), "%s/processor-wrong.log", dir);
    snprintf(set, sizeof(set), "redis.password=%s", wrong);
    expect_fails_fast(h_processor_start_ex(&kafka, &redis, log, LIST(set), NULL, NULL), 10000,
                      log);
    cr_assert(file_has(log, "redis AUTH") && file_has(log, "WRONGPASS"),
              "no clear Redis authentication message in %s", log);
    assert_lacks(log, LIST(pw, wrong));

    snprintf(log, sizeof(log), "%s/processor-nopass.log", dir);
    expect_fails_fast(h_processor_start_ex(&kafka, &redis, log, NULL, NULL, NULL), 10000, log);
    cr_assert(file_has(log, "NOAUTH"), "no clear Redis authentication message in %s", log);
    assert_lacks(log, LIST(pw));

    redisContext *c = h_redis_connect_auth(&redis, NULL, pw);
    redisReply *rep = redisCommand(c, "DBSIZE");
    cr_assert(rep && rep->integer == 0, "a processor without the password wrote to Redis");
    freeReplyObject(rep);
    redisFree(c);
    h_kafka_stop(&kafka);
    h_redis_stop(&redis);
}

/* ---- Redis: ACL user limited to the key prefix ---- */

/* Everything the processor sends: SCRIPT LOAD, FUNCTION LOAD and EVALSHA
 * (connectors/redis_sink.c), HSET and HGET (the partition claim), and every command
 * connectors/lua/smm.lua, the read library and the alert relay's lease script call; Redis 7
 * checks the commands a script runs against the caller's ACL too. SELECT only when
 * redis.db is not 0; AUTH needs no permission. */
static const char *const acl_commands[] = {
    "script|load", "evalsha", "hset", "hget", "hmget", "hgetall", "hincrby", "hdel",
    "del", "expireat", "pfadd", "pfcount", "pfmerge", "sadd", "smembers", "spop",
    "zadd", "zrangebyscore", "zremrangebyscore",
    /* the alert relay's lease script (connectors/alert_relay.c) */
    "exists", "get", "set", "pexpire", "xinfo", "xrange", "xrevrange",
    /* viral leaderboards and alerts (connectors/lua/smm.lua), the HTTP API's reads */
    "zrem", "zremrangebyrank", "zrange", "xadd", "publish", "ping", "zrevrange", "xread",
    /* insights: attribution, segment admission, open-thread counts (docs/insights.md) */
    "zincrby", "hvals",
    /* pruning an entity's expired buckets, bounded hour merges (connectors/lua/smm.lua) */
    "hkeys", "scard",
    /* the read library connectors/lua/smm_lib.lua: installed at connect, called by the
     * HTTP API's reads (FCALL for smm_get/smm_mget, which count reach with PFCOUNT; FCALL_RO
     * for the others); TIME is its clock */
    "function|load", "fcall", "fcall_ro", "time",
    /* the plain path: counter values in a MULTI/EXEC beside the script
     * (connectors/redis_sink.c); a source's expiry read before it moves */
    "watch", "unwatch", "multi", "exec", "expiretime",
    NULL};

/* ACL SETUSER user reset on >pw ~<keys> resetchannels -@all +cmd... (without `skip`). */
static void acl_setuser(redisContext *admin, const char *user, const char *pw, const char *keys,
                        const char *skip)
{
    const char *argv[96];
    char pass[128], pattern[128], channels[128], cmds[64][40];
    int n = 0, k = 0;
    snprintf(pass, sizeof(pass), ">%s", pw);
    snprintf(pattern, sizeof(pattern), "~%s", keys);
    argv[n++] = "ACL";
    argv[n++] = "SETUSER";
    argv[n++] = user;
    argv[n++] = "reset";
    argv[n++] = "on";
    argv[n++] = pass;
    argv[n++] = pattern;
    argv[n++] = "resetchannels";
    snprintf(channels, sizeof(channels), "&%s", keys);
    argv[n++] = channels;
    argv[n++] = "-@all";
    for (int i = 0; acl_commands[i]; i++) {
        if (skip && strcmp(skip, acl_commands[i]) == 0) {
            continue;
        }
        snprintf(cmds[k], sizeof(cmds[k]), "+%s", acl_commands[i]);
        argv[n++] = cmds[k++];
    }
    redisReply *r = redisCommandArgv(admin, n, argv, NULL);
    cr_assert(r && r->type == REDIS_REPLY_STATUS, "ACL SETUSER %s: %s", user,
              r && r->str ? r->str : "no reply");
    freeReplyObject(r);
}

static int in_acl(const char *cmd)
{
    for (int i = 0; acl_commands[i]; i++) {
        if (strcasecmp(acl_commands[i], cmd) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The documented ACL stays complete when someone adds a command to the state script or
 * to the read library (Redis checks the commands a function runs against the caller's
 * ACL too). */
static void check_acl_covers_script(void)
{
    static const char *const files[] = {"connectors/lua/smm.lua", "connectors/lua/smm_lib.lua"};
    static const int at_least[] = {10, 5};
    for (int f = 0; f < 2; f++) {
        char path[600];
        snprintf(path, sizeof(path), "%s/%s", source_dir(), files[f]);
        char *lua = h_read_file(path, NULL);
        cr_assert(lua[0], "cannot read %s", path);
        int found = 0;
        for (const char *p = lua; (p = strstr(p, "call('")); p++) {
            const char *s = p + 6;
            size_t len = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
            if (len == 0 || s[len] != '\'') {
                continue;
            }
            char cmd[40];
            snprintf(cmd, sizeof(cmd), "%.*s", (int)len, s);
            cr_assert(in_acl(cmd), "%s calls %s, which the documented ACL rule does not grant "
                                   "(update acl_commands here and docs/security.md)",
                      files[f], cmd);
            found++;
        }
        cr_assert(found >= at_least[f], "found only %d commands in %s", found, path);
        free(lua);
    }
}

static int64_t acl_log_len(redisContext *admin)
{
    redisReply *r = redisCommand(admin, "ACL LOG");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY);
    int64_t n = (int64_t)r->elements;
    freeReplyObject(r);
    return n;
}

Test(security, redis_acl_prefix, .timeout = 300, .fini = kill_children)
{
    check_acl_covers_script();
    char dir[256];
    h_tmpdir(dir, sizeof(dir), "sec-acl");
    char admin_pw[64], pw[64];
    snprintf(admin_pw, sizeof(admin_pw), "Adm-%d-pw", (int)getpid());
    snprintf(pw, sizeof(pw), "Acl-%d-s3cr3t", (int)getpid());
    struct h_redis redis;
    h_redis_start_args(&redis, LIST("--requirepass", admin_pw));
    redisContext *admin = h_redis_connect_auth(&redis, NULL, admin_pw);
    acl_setuser(admin, "smm", pw, "smm:*", NULL);

    /* Two hours of events: minute buckets retire from the 5 m window, late minutes of the
     * previous hour go to hour sketches; every script path the stream can reach runs. */
    struct h_kafka kafka;
    h_kafka_start(&kafka, "sec-acl", 3);
    struct oracle *o = oracle_new();
    size_t n;
    struct h_msg *msgs = gen_events(dir, 200, 3000, 2 * 3600 * 1000LL, o, &n);
    h_produce(&kafka, kafka.topic, msgs, n);
    char log[400], envpw[200];
    snprintf(log, sizeof(log), "%s/processor-acl.log", dir);
    snprintf(envpw, sizeof(envpw), "SMM_REDIS_PASSWORD=%s", pw);
    pid_t pid = h_processor_start_ex(&kafka, &redis, log,
                                     LIST("group_id=sec-acl", "redis.username=smm"), NULL,
                                     LIST(envpw));
    wait_stored(&redis, admin_pw, "smm:", pid, (int64_t)n, 120000, log);
    h_sleep_ms(2500); /* a few ticks: retirement and reach refresh also run as this user */
    stop_processor(pid, log);
    check_oracle(&redis, admin_pw, o, (int64_t)n);
    cr_assert_eq(acl_log_len(admin), 0, "Redis denied the processor something (ACL LOG)");
    assert_lacks(log, LIST(pw, admin_pw));

    /* Every key is inside the prefix (the ACL would have refused anything else anyway). */
    redisReply *r = redisCommand(admin, "KEYS *");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements > 0);
    for (size_t i = 0; i < r->elements; i++) {
        cr_assert(strncmp(r->element[i]->str, "smm:", 4) == 0, "key %s", r->element[i]->str);
    }
    freeReplyObject(r);
    redisFree(admin);
    oracle_free(o);
    h_free_msgs(msgs, n);
    h_kafka_stop(&kafka);
    h_redis_stop(&redis);
}

/* A user that may not touch the prefix, or lacks one command the script needs: the
 * processor stops with Redis' reason instead of retrying forever (or, with the wrong prefix,
 * running on without ever counting). */
static void refused_setup(const char *name, struct h_redis *redis, redisContext **admin,
                          struct h_kafka *kafka, char *dir, size_t dir_size, char *pw,
                          size_t pw_size, char *admin_pw, size_t admin_pw_size)
{
    h_tmpdir(dir, dir_size, name);
    snprintf(admin_pw, admin_pw_size, "Adm-%d-pw", (int)getpid());
    snprintf(pw, pw_size, "Usr-%d-s3cr3t", (int)getpid());
    h_redis_start_args(redis, LIST("--requirepass", admin_pw));
    *admin = h_redis_connect_auth(redis, NULL, admin_pw);
    h_kafka_start(kafka, name, 2);
    struct oracle *o = oracle_new();
    size_t n;
    struct h_msg *msgs = gen_events(dir, 300, 500, 120000, o, &n);
    h_produce(kafka, kafka->topic, msgs, n);
    oracle_free(o);
    h_free_msgs(msgs, n);
}

static void run_refused(const char *dir, struct h_kafka *kafka, struct h_redis *redis,
                        const char *user, const char *pw, const char *admin_pw)
{
    char log[400], envpw[200], set_user[64], group[64];
    snprintf(log, sizeof(log), "%s/processor-%s.log", dir, user);
    snprintf(envpw, sizeof(envpw), "SMM_REDIS_PASSWORD=%s", pw);
    snprintf(set_user, sizeof(set_user), "redis.username=%s", user);
    snprintf(group, sizeof(group), "group_id=sec-%s", user);
    pid_t pid = h_processor_start_ex(kafka, redis, log, LIST(group, set_user), NULL, LIST(envpw));
    expect_fails_fast(pid, 30000, log);
    cr_assert(file_has(log, "NOPERM") || file_has(log, "can't run this command") ||
                  file_has(log, "can't access"),
              "no clear Redis permission message in %s", log);
    assert_lacks(log, LIST(pw, admin_pw));
}

/* How many of the space-separated keys exist. */
static int64_t exists_any(redisContext *admin, const char *keys)
{
    int64_t n = 0;
    char *copy = strdup(keys), *save = NULL;
    for (char *k = strtok_r(copy, " ", &save); k; k = strtok_r(NULL, " ", &save)) {
        redisReply *r = redisCommand(admin, "EXISTS %s", k);
        cr_assert(r && r->type == REDIS_REPLY_INTEGER);
        n += r->integer;
        freeReplyObject(r);
    }
    free(copy);
    return n;
}

Test(security, redis_acl_refused_fails_fast, .timeout = 200, .fini = kill_children)
{
    char dir[256], pw[64], admin_pw[64];
    struct h_redis redis;
    struct h_kafka kafka;
    redisContext *admin;
    refused_setup("sec-aclno", &redis, &admin, &kafka, dir, sizeof(dir), pw, sizeof(pw), admin_pw,
                  sizeof(admin_pw));
    acl_setuser(admin, "other", pw, "other:*", NULL);
    acl_setuser(admin, "nopf", pw, "smm:*", "pfadd");
    run_refused(dir, &kafka, &redis, "other", pw, admin_pw);
    /* ~other:* cannot have written anything (Redis refused every smm: key). */
    redisReply *r = redisCommand(admin, "DBSIZE");
    cr_assert(r && r->integer == 0, "user other wrote %lld keys", r ? r->integer : -1LL);
    freeReplyObject(r);
    run_refused(dir, &kafka, &redis, "nopf", pw, admin_pw);
    cr_assert_eq(exists_any(admin, "smm:stats smm:offsets"), 0,
                 "user nopf stored statistics or offsets");
    redisFree(admin);
    h_kafka_stop(&kafka);
    h_redis_stop(&redis);
}

static void no_entity(void *opaque, const char *entity)
{
    (void)opaque;
    cr_log_info("counter hash of %s", entity);
}

/* A command the script lacks mid-way must not leave half a batch behind: Redis does not roll
 * a script back on an error, so counters written before the refused command would stay
 * without the offsets that cover them, and be counted again after the ACL is fixed. */
Test(security, redis_acl_refused_writes_no_partial_batch, .timeout = 200, .fini = kill_children)
{
    char dir[256], pw[64], admin_pw[64];
    struct h_redis redis;
    struct h_kafka kafka;
    redisContext *admin;
    refused_setup("sec-aclpart", &redis, &admin, &kafka, dir, sizeof(dir), pw, sizeof(pw),
                  admin_pw, sizeof(admin_pw));
    acl_setuser(admin, "nopf", pw, "smm:*", "pfadd");
    char log[400], envpw[200];
    snprintf(log, sizeof(log), "%s/processor-nopf.log", dir);
    snprintf(envpw, sizeof(envpw), "SMM_REDIS_PASSWORD=%s", pw);
    pid_t pid = h_processor_start_ex(&kafka, &redis, log,
                                     LIST("group_id=sec-part", "redis.username=nopf"), NULL,
                                     LIST(envpw));
    /* Whether it stops or retries, give it time for several flushes. */
    int rc = h_wait(pid, 8000);
    cr_log_info("processor %s (see %s)", rc == -2 ? "still retrying after 8 s" : "exited", log);
    size_t hashes = h_entities(admin, "smm:", no_entity, NULL);
    cr_assert_eq(hashes, 0,
                 "a refused flush left %zu counter hashes behind without their offsets: they "
                 "would be counted again after the ACL is fixed (see %s)", hashes, log);
    redisFree(admin);
    h_kafka_stop(&kafka);
    h_redis_stop(&redis);
}

/* ---- Kafka: SASL on a private real broker ---- */

static char broker_dir[512];

static void stop_broker(void)
{
    if (broker_dir[0]) {
        char cmd[1400];
        snprintf(cmd, sizeof(cmd), "'%s/tools/kafka/broker.sh' stop '%s' >/dev/null 2>&1",
                 source_dir(), broker_dir);
        if (system(cmd) != 0) {
            cr_log_warn("broker.sh stop %s failed", broker_dir);
        }
        broker_dir[0] = '\0';
    }
}

static int have(const char *tool)
{
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

/* Starts the broker with a SASL listener in its own directory under the build tree (a
 * leftover from a killed run is stopped first) plus a watchdog that stops it if this test
 * process dies without running its .fini (timeout, crash). Fills the two addresses. */
static void start_sasl_broker(const char *name, const char *version, const char *user,
                              const char *pw, char *plain, char *sasl, size_t size)
{
    const char *src = source_dir();
    snprintf(broker_dir, sizeof(broker_dir), "%s/%s", SMM_BUILD_DIR, name);
    h_run("'%s/tools/kafka/broker.sh' stop '%s' >/dev/null 2>&1; rm -rf '%s' '%s.out'", src,
          broker_dir, broker_dir, broker_dir);
    char path[700], text[2400];
    snprintf(path, sizeof(path), "%s.watchdog.sh", broker_dir);
    snprintf(text, sizeof(text),
             "while kill -0 %d 2>/dev/null && [ ! -f '%s/.done' ]; do sleep 1; done\n"
             "exec '%s/tools/kafka/broker.sh' stop '%s'\n",
             (int)getpid(), broker_dir, src, broker_dir);
    write_file(path, text);
    h_run("mkdir -p '%s' && setsid sh '%s' </dev/null >/dev/null 2>&1 &", broker_dir, path);
    char ver[64] = "";
    if (version) {
        /* another version lives in its own default cache dir */
        snprintf(ver, sizeof(ver), "env -u SMM_KAFKA_CACHE SMM_KAFKA_VERSION=%s", version);
    }
    h_run("%s SMM_KAFKA_SASL_USER=%s SMM_KAFKA_SASL_PASSWORD='%s' '%s/tools/kafka/broker.sh' "
          "start '%s' > '%s.out'",
          ver, user, pw, src, broker_dir, broker_dir);
    snprintf(path, sizeof(path), "%s.out", broker_dir);
    char *out = h_read_file(path, NULL);
    /* "sasl=127.0.0.1:N" then "127.0.0.1:PORT" last */
    const char *s = strstr(out, "sasl=");
    cr_assert(s, "no sasl= line from broker.sh start: %s", out);
    snprintf(sasl, size, "%.*s", (int)strcspn(s + 5, "\r\n"), s + 5);
    size_t len = strlen(out);
    while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r')) {
        out[--len] = '\0';
    }
    const char *last = strrchr(out, '\n');
    snprintf(plain, size, "%s", last ? last + 1 : out);
    free(out);
    cr_assert(plain[0] && sasl[0] && strcmp(plain, sasl) != 0,
              "broker addresses: plain \"%s\", sasl \"%s\"", plain, sasl);
}

static void mark_broker_done(void)
{
    if (broker_dir[0]) {
        char done[600];
        snprintf(done, sizeof(done), "%s/.done", broker_dir);
        write_file(done, "");
    }
}

static void fini_broker(void)
{
    kill_children();
    mark_broker_done();
    stop_broker();
}

struct dlq_seen {
    int bad_id;
    int other;
};

static void on_dead_letter(void *opaque, const char *payload, size_t len, const char *reason)
{
    (void)payload;
    (void)len;
    struct dlq_seen *s = opaque;
    if (strcmp(reason, "bad_id") == 0) {
        s->bad_id++;
    } else {
        s->other++;
    }
}

static void run_sasl(const char *name, const char *version, const char *mechanism)
{
    if (!have("java") || !have("mvn")) {
        cr_skip_test("java and mvn are needed for the real broker (scripts/install-deps.sh "
                     "--with-java)");
    }
    char dir[256];
    h_tmpdir(dir, sizeof(dir), name);
    char pw[64], wrong[64], plain[256], sasl[256];
    snprintf(pw, sizeof(pw), "Kp-%d-s3cr3t.x~y", (int)getpid());
    snprintf(wrong, sizeof(wrong), "Kw-%d-n0t.it", (int)getpid());
    int64_t t0 = h_now_ms();
    start_sasl_broker(name, version, "smm", pw, plain, sasl, sizeof(plain));
    cr_log_info("broker up in %lld ms: plaintext %s, sasl %s", (long long)(h_now_ms() - t0),
                plain, sasl);

    /* Topics and test traffic over the PLAINTEXT listener; the processor uses SASL only. */
    struct h_kafka kplain;
    memset(&kplain, 0, sizeof(kplain));
    snprintf(kplain.bootstrap, sizeof(kplain.bootstrap), "%s", plain);
    snprintf(kplain.topic, sizeof(kplain.topic), "%s-%d", name, (int)getpid());
    snprintf(kplain.dlq, sizeof(kplain.dlq), "%s.dlq", kplain.topic);
    h_run("'%s/tools/kafka/broker.sh' create-topic %s %s 3 >/dev/null", source_dir(), plain,
          kplain.topic);
    h_run("'%s/tools/kafka/broker.sh' create-topic %s %s 1 >/dev/null", source_dir(), plain,
          kplain.dlq);
    struct h_kafka ksasl = kplain;
    snprintf(ksasl.bootstrap, sizeof(ksasl.bootstrap), "%s", sasl);

    struct h_redis redis;
    h_redis_start(&redis, 0);
    struct oracle *o = oracle_new();
    size_t n;
    struct h_msg *msgs = gen_events(dir, 400, 2000, 240000, o, &n);
    h_produce(&kplain, kplain.topic, msgs, n);
    /* one dead letter: the processor's producer must authenticate too */
    char bad[300];
    snprintf(bad, sizeof(bad),
             "{\"event_id\":\"nl\",\"type\":\"like\",\"ts\":%lld,\"account_id\":\"a\\nb\","
             "\"content_id\":\"p\"}",
             (long long)h_now_ms());
    struct h_msg badm = {.key = "bad", .payload = bad, .len = strlen(bad)};
    h_produce(&kplain, kplain.topic, &badm, 1);
    oracle_add_reject(o, "bad_id");

    char log[400], envpw[200], mech[100];
    snprintf(log, sizeof(log), "%s/processor-sasl.log", dir);
    snprintf(envpw, sizeof(envpw), "SMM_KAFKA_SASL_PASSWORD=%s", pw);
    snprintf(mech, sizeof(mech), "kafka.sasl.mechanisms=%s", mechanism);
    const char *const *sets = LIST("group_id=sec-sasl", "kafka.security.protocol=SASL_PLAINTEXT",
                                   mech, "kafka.sasl.username=smm",
                                   /* librdkafka's SASL handshake, logged */
                                   "kafka.debug=security,broker", "log.level=debug");
    pid_t pid = h_processor_start_ex(&ksasl, &redis, log, sets, NULL, LIST(envpw));
    wait_stored(&redis, NULL, "smm:", pid, (int64_t)n + 1, 180000, log);
    stop_processor(pid, log);
    check_oracle(&redis, NULL, o, (int64_t)n + 1);
    struct dlq_seen seen = {0, 0};
    h_consume_all(&kplain, kplain.dlq, 3000, on_dead_letter, &seen);
    cr_assert(seen.bad_id >= 1 && seen.other == 0, "dead letters: %d bad_id, %d other",
              seen.bad_id, seen.other);
    cr_assert(file_has(log, "assigned"), "no assignment in %s", log);
    assert_lacks(log, LIST(pw));

    /* Wrong password: a clear, quick failure. */
    snprintf(log, sizeof(log), "%s/processor-sasl-wrong.log", dir);
    snprintf(envpw, sizeof(envpw), "SMM_KAFKA_SASL_PASSWORD=%s", wrong);
    pid = h_processor_start_ex(&ksasl, &redis, log, sets, NULL, LIST(envpw));
    expect_fails_fast(pid, 10000, log);
    cr_assert(file_has(log, "Kafka SASL authentication failed"),
              "no clear SASL authentication message in %s", log);
    assert_lacks(log, LIST(pw, wrong));

    oracle_free(o);
    h_free_msgs(msgs, n);
    h_redis_stop(&redis);
    mark_broker_done();
    stop_broker();
}

Test(security, kafka_sasl_plain, .timeout = 420, .fini = fini_broker)
{
    run_sasl("sec-kafka-plain", NULL, "PLAIN");
}

/* SCRAM-SHA-256 from librdkafka 2.0.2 works against Kafka 3.9.x only (docs/kafka-broker.md),
 * so this runs on the 3.9.1 broker, and only when its jars are already cached. */
Test(security, kafka_sasl_scram, .timeout = 420, .fini = fini_broker)
{
    char marker[512];
    const char *home = getenv("HOME");
    snprintf(marker, sizeof(marker), "%s/.cache/smm-stream/kafka-3.9.1/lib/.complete",
             home ? home : "/tmp");
    if (access(marker, R_OK) != 0) {
        cr_skip_test("Kafka 3.9.1 jars not cached (SMM_KAFKA_VERSION=3.9.1 "
                     "tools/kafka/broker.sh fetch)");
    }
    run_sasl("sec-kafka-scram", "3.9.1", "SCRAM-SHA-256");
}

/* ---- hostile ids ---- */

/* JSON string contents (escapes as they appear in the message). */
static const char *const hostile[] = {
    "a:b", "x:reach", "c:x:impression", "smm:total", "t1:total", "t1:", ":", "::",
    "{tag}", "}{", "{", "}", "*", "*:*", "a*b?[c]", "a b", " lead", "trail ", "../x",
    "..", "caf\\u00e9", "caf\xc3\xa9 raw", "\\u6f22\\u5b57", "\xe6\xbc\xa2\xe5\xad\x97 raw",
    "\\ud83d\\ude80", "\xf0\x9f\x98\x80 raw", "line\\u2028sep", "back\\\\slash", "q\\\"uote",
    "%s%n", "$(id)", "a:reach:m:29000000", "reach_accounts:h:1", "w:5m", "dirty"};
#define N_HOSTILE (sizeof(hostile) / sizeof(hostile[0]))

/* The stored metrics (docs/redis-keys.md); er_impr, reach and er_reach are derived when read
 * and never stored. */
static const char *const metrics[] = {
    "impression", "view", "like", "unlike", "comment", "comment_delete", "share", "click",
    "referral", "conversion", "mention", "message", "reply", "follow", "engagement", NULL};

struct idset {
    char *ids[2 * N_HOSTILE + 4];
    int n;
};

static void idset_add(struct idset *s, const char *id)
{
    for (int i = 0; i < s->n; i++) {
        if (strcmp(s->ids[i], id) == 0) {
            return;
        }
    }
    s->ids[s->n++] = strdup(id);
}

static int idset_has(const struct idset *s, const char *id, size_t len)
{
    for (int i = 0; i < s->n; i++) {
        if (strlen(s->ids[i]) == len && memcmp(s->ids[i], id, len) == 0) {
            return 1;
        }
    }
    return 0;
}

/* "seg:<account>:<region|segment|source>" (admitted values) or "ss:..." (their sketch)
 * for an account we sent. */
static int seg_key(const char *rest, const struct idset *accts)
{
    size_t pre = !strncmp(rest, "seg:", 4) ? 4 : !strncmp(rest, "ss:", 3) ? 3 : 0;
    if (!pre) {
        return 0;
    }
    const char *dim = strrchr(rest + pre, ':');
    return dim && (!strcmp(dim, ":region") || !strcmp(dim, ":segment") ||
                   !strcmp(dim, ":source")) &&
           idset_has(accts, rest + pre, (size_t)(dim - rest - pre));
}

/* rest = "<kind>:<id>" + suffix exactly, id one of the ids of that kind. */
static int entity_with_suffix(const char *rest, const struct idset *accts,
                              const struct idset *contents, const char *suffix,
                              int digits_after)
{
    const struct idset *ids = rest[0] == 'a' ? accts : rest[0] == 'c' ? contents : NULL;
    if (!ids || rest[1] != ':') {
        return 0;
    }
    const char *id = rest + 2;
    size_t len = strlen(id);
    for (int i = 0; i < ids->n; i++) {
        size_t il = strlen(ids->ids[i]);
        size_t sl = strlen(suffix);
        if (il <= len && memcmp(id, ids->ids[i], il) == 0 &&
            strncmp(id + il, suffix, sl) == 0 &&
            (digits_after ? is_number(id + il + sl) : id[il + sl] == '\0')) {
            return 1;
        }
    }
    return 0;
}

static int documented_metric(const char *m)
{
    for (int i = 0; metrics[i]; i++) {
        if (strcmp(metrics[i], m) == 0) {
            return 1;
        }
    }
    return 0;
}

/* A counter hash "<prefix>{<N>}:<kind>:<id>": an id we sent of that kind, in its own shard
 * (the braces of an id cannot move it: Redis Cluster hashes the first "{...}", ours). */
static void check_counter_key(redisContext *c, const char *key, const char *entity,
                              const struct idset *accts, const struct idset *contents)
{
    cr_assert(entity_with_suffix(entity, accts, contents, "", 0),
              "%s: \"%s\" is not <kind>:<id> of an id sent", key, entity);
    char want[1024];
    h_entity_key(c, "t1:", entity, want, sizeof(want));
    cr_assert_str_eq(key, want, "%s is not in the shard of %s", key, entity);
}

/* Its fields: t, p (a minute), v (a version), m<minute>, h<hour>; each bucket packed
 * "name=value,..." with stored metrics and integer values only. Returns the number of
 * name=value pairs. */
static size_t check_counter_hash(redisContext *c, const char *key)
{
    redisReply *r = redisCommand(c, "HGETALL %s", key);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements > 0, "HGETALL %s", key);
    size_t pairs = 0;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *f = r->element[i]->str, *v = r->element[i + 1]->str;
        if (!strcmp(f, "p") || !strcmp(f, "v")) {
            cr_assert(is_number(v), "%s: field %s = \"%s\"", key, f, v);
            continue;
        }
        cr_assert(!strcmp(f, "t") || ((f[0] == 'm' || f[0] == 'h') && is_number(f + 1)),
                  "%s: field \"%s\" is not t, p, m<minute> or h<hour>", key, f);
        char *copy = strdup(v), *save = NULL;
        for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(kv, '=');
            cr_assert(eq, "%s %s: \"%s\" is not name=value", key, f, kv);
            *eq = '\0';
            cr_assert(documented_metric(kv), "%s %s: metric \"%s\" is not a stored one", key,
                      f, kv);
            cr_assert(is_number(eq + 1), "%s %s: %s = \"%s\"", key, f, kv, eq + 1);
            pairs++;
        }
        free(copy);
    }
    freeReplyObject(r);
    return pairs;
}

static redisReply *cmd(redisContext *c, const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(c, fmt, arg);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "redis %s %s: %s", fmt, arg,
              r && r->str ? r->str : "no reply");
    return r;
}

static int64_t hget_int(redisContext *c, const char *key, const char *field)
{
    redisReply *r = redisCommand(c, "HGET %s %s", key, field);
    cr_assert(r);
    int64_t v = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    freeReplyObject(r);
    return v;
}

Test(security, hostile_ids_stay_in_namespace, .timeout = 200, .fini = kill_children)
{
    char dir[256];
    h_tmpdir(dir, sizeof(dir), "sec-ids");
    struct h_redis redis;
    h_redis_start(&redis, 0);
    struct h_kafka kafka;
    h_kafka_start(&kafka, "sec-ids", 3);

    /* For each hostile id H: an impression by user H of content H of account H, and a like
     * by user H of content H of account "acct-ok". Then one message per id field with an
     * escaped newline: dead letters. */
    int64_t ts = h_now_ms() - 30000;
    struct h_msg msgs[2 * N_HOSTILE + 3];
    struct idset accts = {{0}, 0}, contents = {{0}, 0};
    size_t n = 0;
    for (size_t i = 0; i < N_HOSTILE; i++) {
        const char *h = hostile[i];
        char p[1024];
        snprintf(p, sizeof(p),
                 "{\"event_id\":\"h%zu-i\",\"type\":\"impression\",\"ts\":%lld,"
                 "\"account_id\":\"%s\",\"content_id\":\"%s\",\"user_id\":\"%s\"}",
                 i, (long long)ts, h, h, h);
        msgs[n++] = (struct h_msg){.payload = strdup(p), .len = strlen(p)};
        snprintf(p, sizeof(p),
                 "{\"event_id\":\"h%zu-l\",\"type\":\"like\",\"ts\":%lld,"
                 "\"account_id\":\"acct-ok\",\"content_id\":\"%s\",\"user_id\":\"%s\"}",
                 i, (long long)ts, h, h);
        msgs[n++] = (struct h_msg){.payload = strdup(p), .len = strlen(p)};
    }
    /* Decode each id the way the processor will (JSON), and key messages by it. */
    for (size_t i = 0; i < n; i++) {
        cJSON *j = cJSON_Parse(msgs[i].payload);
        cr_assert(j, "test bug: not JSON: %s", msgs[i].payload);
        const char *a = cJSON_GetObjectItemCaseSensitive(j, "account_id")->valuestring;
        const char *c = cJSON_GetObjectItemCaseSensitive(j, "content_id")->valuestring;
        idset_add(&accts, a);
        idset_add(&contents, c);
        msgs[i].key = strdup(c);
        cJSON_Delete(j);
    }
    cr_assert_eq(contents.n, (int)N_HOSTILE, "test bug: two hostile ids decode alike");
    for (int f = 0; f < 3; f++) {
        char p[512];
        snprintf(p, sizeof(p),
                 "{\"event_id\":\"nl-%d\",\"type\":\"impression\",\"ts\":%lld,"
                 "\"account_id\":\"%s\",\"content_id\":\"%s\",\"user_id\":\"%s\"}",
                 f, (long long)ts, f == 0 ? "acct\\nx" : "acct-ok",
                 f == 1 ? "post\\nx" : "post-ok", f == 2 ? "user\\nx" : "user-ok");
        msgs[n++] = (struct h_msg){.key = strdup("bad"), .payload = strdup(p), .len = strlen(p)};
    }
    h_produce(&kafka, kafka.topic, msgs, n);

    char log[400];
    snprintf(log, sizeof(log), "%s/processor-ids.log", dir);
    pid_t pid = h_processor_start_ex(&kafka, &redis, log,
                                     LIST("prefix=t1:", "group_id=sec-ids"), NULL, NULL);
    wait_stored(&redis, NULL, "t1:", pid, (int64_t)n, 60000, log);
    h_sleep_ms(2500); /* ticks refresh the reach fields */
    stop_processor(pid, log);

    redisContext *c = h_redis_connect(&redis);
    /* Exactly the newline messages were dead-lettered, as bad_id. */
    cr_assert_eq(hget_int(c, "t1:stats", "messages"), (int64_t)n);
    cr_assert_eq(hget_int(c, "t1:stats", "events_counted"), (int64_t)(2 * N_HOSTILE));
    cr_assert_eq(hget_int(c, "t1:stats", "dead_letter"), 3);
    cr_assert_eq(hget_int(c, "t1:stats", "dead_letter:bad_id"), 3);
    struct dlq_seen seen = {0, 0};
    size_t got = h_consume_all(&kafka, kafka.dlq, 2000, on_dead_letter, &seen);
    cr_assert(got == 3 && seen.bad_id == 3, "dead letters: %zu, %d of them bad_id", got,
              seen.bad_id);

    /* Each hostile id counted once, under its own entities and sketch. */
    for (int i = 0; i < contents.n; i++) {
        const char *id = contents.ids[i];
        char f[400];
        snprintf(f, sizeof(f), "c:%s", id);
        cr_assert_eq(h_entity_get(c, "t1:", f, "total", -1, "impression"), 1, "%s impression", f);
        cr_assert_eq(h_entity_get(c, "t1:", f, "total", -1, "like"), 1, "%s like", f);
        snprintf(f, sizeof(f), "a:%s", id);
        cr_assert_eq(h_entity_get(c, "t1:", f, "total", -1, "impression"), 1, "%s impression", f);
        snprintf(f, sizeof(f), "t1:c:%s:reach", id);
        redisReply *r = redisCommand(c, "PFCOUNT %s", f);
        cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1, "PFCOUNT %s", f);
        freeReplyObject(r);
    }
    cr_assert_eq(h_entity_get(c, "t1:", "a:acct-ok", "total", -1, "like"), (int64_t)N_HOSTILE);

    /* Every key: a documented one, under t1:, built from ids we sent. The counter hashes and
     * the leaderboards are kept for the checks after the walk. */
    size_t keys = 0, n_counters = 0, n_boards = 0;
    char **counters = calloc(8 * N_HOSTILE, sizeof(*counters));
    char **boards = calloc(8 * N_HOSTILE, sizeof(*boards));
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(c, "SCAN %s COUNT 1000", cursor);
        cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const char *key = r->element[1]->element[i]->str;
            keys++;
            cr_assert(strncmp(key, "smm:", 4) != 0, "key %s under the default prefix", key);
            cr_assert(strncmp(key, "t1:", 3) == 0, "key %s outside the prefix t1:", key);
            const char *rest = key + 3;
            if (rest[0] == '{') { /* {<N>}:<kind>:<id> */
                size_t digits = strspn(rest + 1, "0123456789");
                cr_assert(digits > 0 && !strncmp(rest + 1 + digits, "}:", 2),
                          "undocumented key %s", key);
                check_counter_key(c, key, rest + 1 + digits + 2, &accts, &contents);
                cr_assert(n_counters < 8 * N_HOSTILE);
                counters[n_counters++] = strdup(key);
                continue;
            }
            if (!strcmp(rest, "top:t") ||
                (!strncmp(rest, "top:", 4) && (rest[4] == 'm' || rest[4] == 'h') &&
                 is_number(rest + 5))) { /* top:t / top:m<minute> / top:h<hour> */
                cr_assert(n_boards < 8 * N_HOSTILE);
                boards[n_boards++] = strdup(key);
                continue;
            }
            int ok = !strcmp(rest, "stats") ||
                     !strcmp(rest, "offsets") || !strcmp(rest, "owner") ||
                     !strcmp(rest, "meta") || !strcmp(rest, "wseq") ||
                     !strcmp(rest, "viral:velocity") || !strcmp(rest, "viral:predicted") ||
                     !strcmp(rest, "viral:active") || !strcmp(rest, "alerts") ||
                     !strcmp(rest, "alerts:relay") ||
                     (!strncmp(rest, "v:", 2) && idset_has(&contents, rest + 2, strlen(rest + 2))) ||
                     (!strncmp(rest, "d:", 2) && is_number(rest + 2)) ||
                     !strcmp(rest, "rt:due") || !strcmp(rest, "rt:open") ||
                     !strcmp(rest, "ref:due") ||
                     (!strncmp(rest, "rt:", 3) && idset_has(&accts, rest + 3, strlen(rest + 3))) ||
                     (!strncmp(rest, "ref:", 4) && idset_has(&accts, rest + 4, strlen(rest + 4))) ||
                     (!strncmp(rest, "cv:direct:", 10) &&
                      idset_has(&accts, rest + 10, strlen(rest + 10))) ||
                     (!strncmp(rest, "cv:indirect:", 12) &&
                      idset_has(&accts, rest + 12, strlen(rest + 12))) ||
                     seg_key(rest, &accts) ||
                     (!strncmp(rest, "reach_accounts:h:", 17) && is_number(rest + 17)) ||
                     entity_with_suffix(rest, &accts, &contents, ":reach", 0) ||
                     (rest[0] == 'a' &&
                      (entity_with_suffix(rest, &accts, &contents, ":reach:m:", 1) ||
                       entity_with_suffix(rest, &accts, &contents, ":reach:h:", 1) ||
                       entity_with_suffix(rest, &accts, &contents, ":reach:d:", 1)));
            cr_assert(ok, "undocumented key %s", key);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    cr_log_info("%zu keys, all documented and under t1:", keys);

    /* Every content and account has its counter hash (the likes made acct-ok one more). */
    cr_assert_eq(n_counters, (size_t)(contents.n + accts.n), "%zu counter hashes for %d posts "
                 "and %d accounts", n_counters, contents.n, accts.n);
    /* Leaderboard members are content ids we sent, whatever bytes they hold: every post has
     * a like, so the lifetime board and the minute's and hour's hold all of them. */
    cr_assert(n_boards >= 3, "only %zu leaderboards (lifetime, minute, hour)", n_boards);
    for (size_t k = 0; k < n_boards; k++) {
        redisReply *r = cmd(c, "ZRANGE %s 0 -1", boards[k]);
        cr_assert_eq(r->elements, (size_t)contents.n, "%s holds %zu of the %d posts", boards[k],
                     r->elements, contents.n);
        for (size_t i = 0; i < r->elements; i++) {
            cr_assert(idset_has(&contents, r->element[i]->str, r->element[i]->len),
                      "%s member \"%s\"", boards[k], r->element[i]->str);
        }
        freeReplyObject(r);
    }
    static const char *const viral[] = {"t1:viral:velocity", "t1:viral:predicted"};
    for (int k = 0; k < 2; k++) {
        redisReply *r = cmd(c, "ZRANGE %s 0 -1", viral[k]);
        for (size_t i = 0; i < r->elements; i++) {
            cr_assert(idset_has(&contents, r->element[i]->str, r->element[i]->len),
                      "%s member \"%s\"", viral[k], r->element[i]->str);
        }
        freeReplyObject(r);
    }
    redisReply *hours = cmd(c, "KEYS %s", "t1:reach_accounts:h:*");
    for (size_t h = 0; h < hours->elements; h++) {
        redisReply *r = cmd(c, "SMEMBERS %s", hours->element[h]->str);
        for (size_t i = 0; i < r->elements; i++) {
            /* minute sketches to merge: a:<account>\n<minute> (ids hold no control
             * characters, so the last newline splits) */
            const char *m = r->element[i]->str;
            const char *nl = strrchr(m, '\n');
            int ok = nl && !strncmp(m, "a:", 2) &&
                     idset_has(&accts, m + 2, (size_t)(nl - (m + 2))) && is_number(nl + 1);
            cr_assert(ok, "%s member \"%s\"", hours->element[h]->str, m);
        }
        freeReplyObject(r);
    }
    freeReplyObject(hours);

    /* Every counter hash holds only buckets of stored metrics. */
    size_t fields = 0;
    for (size_t k = 0; k < n_counters; k++) {
        fields += check_counter_hash(c, counters[k]);
        free(counters[k]);
    }
    for (size_t k = 0; k < n_boards; k++) {
        free(boards[k]);
    }
    free(counters);
    free(boards);
    cr_assert(fields > 4 * N_HOSTILE, "only %zu counters", fields);
    /* The other hashes hold only their documented fields. */
    redisReply *r = cmd(c, "HKEYS %s", "t1:stats");
    for (size_t i = 0; i < r->elements; i++) {
        const char *f = r->element[i]->str;
        cr_assert(!strcmp(f, "messages") || !strcmp(f, "events_counted") ||
                      !strcmp(f, "dead_letter") || !strcmp(f, "dead_letter:bad_id"),
                  "t1:stats field %s", f);
    }
    freeReplyObject(r);
    r = cmd(c, "HKEYS %s", "t1:meta");
    for (size_t i = 0; i < r->elements; i++) {
        const char *f = r->element[i]->str;
        cr_assert(!strcmp(f, "shards") || !strcmp(f, "hour_merged"), "t1:meta field %s", f);
    }
    freeReplyObject(r);
    for (int k = 0; k < 2; k++) {
        r = cmd(c, "HKEYS %s", k ? "t1:owner" : "t1:offsets");
        for (size_t i = 0; i < r->elements; i++) {
            const char *f = r->element[i]->str;
            size_t tl = strlen(kafka.topic);
            cr_assert(!strncmp(f, kafka.topic, tl) && f[tl] == ':' && is_number(f + tl + 1),
                      "%s field %s", k ? "t1:owner" : "t1:offsets", f);
        }
        freeReplyObject(r);
    }
    redisFree(c);
    for (size_t i = 0; i < n; i++) {
        free(msgs[i].key);
        free(msgs[i].payload);
    }
    for (int i = 0; i < accts.n; i++) {
        free(accts.ids[i]);
    }
    for (int i = 0; i < contents.n; i++) {
        free(contents.ids[i]);
    }
    h_kafka_stop(&kafka);
    h_redis_stop(&redis);
}

/* ---- secrets never logged ---- */

Test(security, secrets_never_logged, .timeout = 300, .fini = kill_children)
{
    char dir[256];
    h_tmpdir(dir, sizeof(dir), "sec-log");
    char rpw[64], kpw[64], wrong[64];
    snprintf(rpw, sizeof(rpw), "Rs-%d-LogS3cret", (int)getpid());
    snprintf(kpw, sizeof(kpw), "Ks-%d-LogS3cret", (int)getpid());
    snprintf(wrong, sizeof(wrong), "Ws-%d-LogWr0ng", (int)getpid());
    const char *const *secrets = LIST(rpw, kpw, wrong);

    struct h_redis redis;
    h_redis_start_args(&redis, LIST("--requirepass", rpw));
    struct h_kafka kafka;
    h_kafka_start(&kafka, "sec-log", 2);
    struct oracle *o = oracle_new();
    size_t n;
    struct h_msg *msgs = gen_events(dir, 500, 600, 120000, o, &n);
    h_produce(&kafka, kafka.topic, msgs, n);

    char cfg_both[400], cfg_kafka[400], pwfile[400], text[800];
    snprintf(cfg_both, sizeof(cfg_both), "%s/both.json", dir);
    snprintf(text, sizeof(text),
             "{\"redis\": {\"password\": \"%s\"}, \"kafka\": {\"sasl\": {\"password\": \"%s\"}}}\n",
             rpw, kpw);
    write_file(cfg_both, text);
    snprintf(cfg_kafka, sizeof(cfg_kafka), "%s/kafka.json", dir);
    snprintf(text, sizeof(text), "{\"kafka\": {\"sasl.password\": \"%s\"}}\n", kpw);
    write_file(cfg_kafka, text);
    snprintf(pwfile, sizeof(pwfile), "%s/redis-password", dir);
    snprintf(text, sizeof(text), "%s\n", rpw);
    write_file(pwfile, text);

    char env_r[200], env_k[200], env_rf[600], set_r[200], set_k[200];
    snprintf(env_r, sizeof(env_r), "SMM_REDIS_PASSWORD=%s", rpw);
    snprintf(env_k, sizeof(env_k), "SMM_KAFKA_SASL_PASSWORD=%s", kpw);
    snprintf(env_rf, sizeof(env_rf), "SMM_REDIS_PASSWORD_FILE=%s", pwfile);
    snprintf(set_r, sizeof(set_r), "redis.password=%s", rpw);
    snprintf(set_k, sizeof(set_k), "kafka.sasl.password=%s", kpw);

    struct variant {
        const char *name;
        const char *const *sets;
        const char *const *args;
        const char *const *env;
    } variants[] = {
        {"file", NULL, LIST("-c", cfg_both), NULL},
        /* --top without a terminal: its plain "top:" lines go through the same log */
        {"env", NULL, LIST("--top"), LIST(env_r, env_k)},
        {"set", LIST(set_r, set_k), NULL, NULL},
        /* password file via the environment, Kafka password from a file; JSON log with
         * librdkafka's debug output on: its configuration dump must stay redacted */
        {"pwfile-json-debug", LIST("log.format=json", "log.level=debug", "kafka.debug=all"),
         LIST("-c", cfg_kafka), LIST(env_rf)},
    };
    for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
        const struct variant *va = &variants[v];
        char out[400], log[400], prefix[64], group[64];
        snprintf(prefix, sizeof(prefix), "prefix=v%zu:", v);
        snprintf(group, sizeof(group), "group_id=sec-log-%zu", v);
        /* Every variant logs at debug level (the most verbose our code gets). */
        const char *sets[16] = {prefix, group, "kafka.sasl.username=smm", "stats.interval_ms=500",
                                "log.level=debug"};
        int ns = 5;
        for (int i = 0; va->sets && va->sets[i]; i++) {
            sets[ns++] = va->sets[i];
        }
        sets[ns] = NULL;
        const char *args[8];
        int na = 0;
        for (int i = 0; va->args && va->args[i]; i++) {
            args[na++] = va->args[i];
        }

        /* --print-config and --check-config */
        snprintf(out, sizeof(out), "%s/print-%s.txt", dir, va->name);
        args[na] = "--print-config";
        args[na + 1] = NULL;
        cr_assert_eq(h_wait(h_processor_start_ex(&kafka, &redis, out, sets, args, va->env), 10000),
                     0, "--print-config (%s)", out);
        cr_assert(file_has(out, "redis.password = ********"), "redis.password not masked in %s", out);
        cr_assert(file_has(out, "kafka.sasl.password = ********"),
                  "kafka.sasl.password not masked in %s", out);
        assert_lacks(out, secrets);
        snprintf(out, sizeof(out), "%s/check-%s.txt", dir, va->name);
        args[na] = "--check-config";
        cr_assert_eq(h_wait(h_processor_start_ex(&kafka, &redis, out, sets, args, va->env), 10000),
                     0, "--check-config (%s)", out);
        assert_lacks(out, secrets);

        /* A real run: authenticates, counts the stream, logs stats every 500 ms. */
        snprintf(log, sizeof(log), "%s/processor-%s.log", dir, va->name);
        args[na] = NULL;
        pid_t pid = h_processor_start_ex(&kafka, &redis, log, sets, args, va->env);
        wait_stored(&redis, rpw, prefix + 7, pid, (int64_t)n, 60000, log);
        h_sleep_ms(1200);
        stop_processor(pid, log);
        cr_assert(count_in_file(log, "stats:") >= 2, "fewer than 2 stats lines in %s", log);
        if (va->args && strcmp(va->args[0], "--top") == 0) {
            cr_assert(count_in_file(log, "top: ") >= 2, "fewer than 2 --top lines in %s", log);
        }
        assert_lacks(log, secrets);
    }

    /* Error paths: a wrong password, and configuration errors next to secrets. */
    char log[400], set_w[200];
    snprintf(log, sizeof(log), "%s/processor-wrong.log", dir);
    snprintf(set_w, sizeof(set_w), "redis.password=%s", wrong);
    expect_fails_fast(h_processor_start_ex(&kafka, &redis, log, LIST(set_w, set_k), NULL, NULL),
                      10000, log);
    cr_assert(file_has(log, "WRONGPASS"), "no Redis authentication error in %s", log);
    assert_lacks(log, secrets);

    snprintf(log, sizeof(log), "%s/config-error-key.txt", dir);
    cr_assert_eq(h_wait(h_processor_start_ex(&kafka, &redis, log, LIST(set_r, set_k, "no.such=1"),
                                             NULL, NULL),
                        10000),
                 2);
    cr_assert(file_has(log, "no.such"), "the error does not name the bad key (%s)", log);
    assert_lacks(log, secrets);

    char env_typo[200];
    snprintf(env_typo, sizeof(env_typo), "SMM_REDIS_PASSWROD=%s", rpw);
    snprintf(log, sizeof(log), "%s/config-error-env.txt", dir);
    cr_assert_eq(h_wait(h_processor_start_ex(&kafka, &redis, log, NULL, NULL, LIST(env_typo, env_k)),
                        10000),
                 2);
    cr_assert(file_has(log, "SMM_REDIS_PASSWROD"), "the error does not name the variable (%s)",
              log);
    assert_lacks(log, secrets);

    snprintf(log, sizeof(log), "%s/config-error-file.txt", dir);
    snprintf(text, sizeof(text), "%s/missing-password-file", dir);
    char set_f[900];
    snprintf(set_f, sizeof(set_f), "redis.password_file=%s", text);
    cr_assert_eq(h_wait(h_processor_start_ex(&kafka, &redis, log, LIST(set_k, set_f), NULL, NULL),
                        10000),
                 2);
    cr_assert(file_has(log, "redis.password_file"), "the error does not name the key (%s)", log);
    assert_lacks(log, secrets);

    oracle_free(o);
    h_free_msgs(msgs, n);
    h_kafka_stop(&kafka);
    h_redis_stop(&redis);
}
