/* tests/integration/harness.c - see harness.h. */
#include "tests/integration/harness.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SMM_BUILD_DIR
#error "SMM_BUILD_DIR must point at the build tree"
#endif

int64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void h_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A port the kernel will not hand to a client: random below ip_local_port_range, free when
 * we bind it. A port from bind(port 0) lies inside that range, so any connect() on the machine
 * (the processor's reconnects, kcat, a JVM) may take it before our server binds it, or while a
 * broker or Redis we stopped is down and about to come back on it: CI lost a broker start that
 * way. Ports handed out before in this process are skipped (the check closes its socket). */
int h_free_port(void)
{
    static int given[256];
    static size_t ngiven;
    static unsigned seed;
    int lo = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d", &lo) != 1) {
            lo = 32768;
        }
        fclose(f);
    }
    if (seed == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (unsigned)ts.tv_nsec ^ ((unsigned)getpid() << 16) ^ 1u;
    }
    const int base = 15000;
    cr_assert(lo - base >= 1000, "ip_local_port_range starts at %d: no room below it", lo);
    for (int attempt = 0; attempt < 1000; attempt++) {
        int port = base + (int)(rand_r(&seed) % (unsigned)(lo - base));
        int seen = 0;
        for (size_t i = 0; i < ngiven && i < 256 && !seen; i++) {
            seen = given[i] == port;
        }
        if (seen) {
            continue;
        }
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        cr_assert(fd >= 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        if (ok) {
            given[ngiven++ % 256] = port;
            return port;
        }
    }
    cr_assert_fail("no free port in %d..%d", base, lo - 1);
    return -1;
}

void h_tmpdir(char *out, size_t size, const char *name)
{
    const char *base = getenv("SMMT_TMP");
    snprintf(out, size, "%s/%s-%d-XXXXXX", base ? base : "/tmp", name, (int)getpid());
    cr_assert(mkdtemp(out) != NULL, "mkdtemp %s: %s", out, strerror(errno));
}

void h_run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    cr_assert(rc == 0, "command failed (%d): %s", rc, cmd);
}

static pid_t spawn(char *const argv[], const char *logfile, int stdout_pipe[2])
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        int fd = open(logfile ? logfile : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (stdout_pipe) {
            dup2(stdout_pipe[1], 1);
            close(stdout_pipe[0]);
        } else {
            dup2(fd, 1);
        }
        dup2(fd, 2);
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

int h_wait(pid_t pid, int timeout_ms)
{
    int status;
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, &status, timeout_ms > 0 ? WNOHANG : 0);
        if (r == pid) {
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (r < 0) {
            return -1;
        }
        if (timeout_ms > 0 && h_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -2;
        }
        h_sleep_ms(20);
    }
}

/* ---- Redis ---- */

redisContext *h_redis_connect(const struct h_redis *r)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    cr_assert(c && !c->err, "redis connect: %s", c ? c->errstr : "oom");
    return c;
}

static void redis_spawn(struct h_redis *r)
{
    char port[16], log[300];
    snprintf(port, sizeof(port), "%d", r->port);
    snprintf(log, sizeof(log), "%s/redis.log", r->dir);
    char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", r->dir,
                    "--save", "", "--appendonly", r->aof ? "yes" : "no", "--appendfsync",
                    "everysec", "--daemonize", "no", NULL};
    r->pid = spawn(argv, log, NULL);
    for (int i = 0; i < 200; i++) {
        struct timeval tv = {1, 0};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
        if (c && !c->err) {
            redisReply *rep = redisCommand(c, "PING");
            int ok = rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
            if (rep) {
                freeReplyObject(rep);
            }
            redisFree(c);
            if (ok) {
                return;
            }
        } else if (c) {
            redisFree(c);
        }
        h_sleep_ms(25);
    }
    cr_assert_fail("redis-server did not start on port %d (see %s)", r->port, log);
}

void h_redis_start(struct h_redis *r, int aof)
{
    memset(r, 0, sizeof(*r));
    r->aof = aof;
    r->port = h_free_port();
    h_tmpdir(r->dir, sizeof(r->dir), "redis");
    redis_spawn(r);
}

void h_redis_kill(struct h_redis *r, int sig)
{
    if (r->pid > 0) {
        kill(r->pid, sig);
        h_wait(r->pid, 10000);
        r->pid = 0;
    }
}

void h_redis_restart(struct h_redis *r)
{
    redis_spawn(r);
}

void h_redis_stop(struct h_redis *r)
{
    h_redis_kill(r, SIGKILL);
}

/* ---- Kafka ---- */

void h_kafka_start(struct h_kafka *k, const char *prefix, int partitions)
{
    static int seq;
    memset(k, 0, sizeof(*k));
    snprintf(k->topic, sizeof(k->topic), "%s-%d-%d", prefix, (int)getpid(), ++seq);
    snprintf(k->dlq, sizeof(k->dlq), "%s.dlq", k->topic);
    const char *ext = getenv("SMMT_BOOTSTRAP");
    const char *ext_file = getenv("SMMT_BOOTSTRAP_FILE");
    char from_file[256] = "";
    if ((!ext || !*ext) && ext_file && *ext_file) {
        FILE *bf = fopen(ext_file, "r");
        cr_assert(bf && fgets(from_file, sizeof(from_file), bf), "cannot read %s", ext_file);
        fclose(bf);
        from_file[strcspn(from_file, "\r\n")] = '\0';
        ext = from_file;
    }
    if (ext && *ext) {
        snprintf(k->bootstrap, sizeof(k->bootstrap), "%s", ext);
        const char *tool = getenv("SMMT_KAFKA_TOOL");
        cr_assert(tool && *tool, "SMMT_BOOTSTRAP needs SMMT_KAFKA_TOOL (broker.sh)");
        h_run("%s create-topic %s %s %d >/dev/null", tool, k->bootstrap, k->topic, partitions);
        h_run("%s create-topic %s %s 1 >/dev/null", tool, k->bootstrap, k->dlq);
        return;
    }
    int p[2];
    cr_assert(pipe(p) == 0);
    char t1[200], t2[200];
    snprintf(t1, sizeof(t1), "%s:%d", k->topic, partitions);
    snprintf(t2, sizeof(t2), "%s:1", k->dlq);
    char *argv[] = {SMM_BUILD_DIR "/tools/smm-mock-kafka", "--topic", t1, "--topic", t2,
                    "--quiet", NULL};
    k->pid = spawn(argv, NULL, p);
    close(p[1]);
    FILE *f = fdopen(p[0], "r");
    cr_assert(f && fgets(k->bootstrap, sizeof(k->bootstrap), f), "mock kafka did not start");
    k->bootstrap[strcspn(k->bootstrap, "\r\n")] = '\0';
    fclose(f);
}

void h_kafka_stop(struct h_kafka *k)
{
    if (k->pid > 0) {
        kill(k->pid, SIGTERM);
        if (h_wait(k->pid, 5000) == -2) {
            kill(k->pid, SIGKILL);
        }
        k->pid = 0;
    }
}

static rd_kafka_conf_t *conf_for(const struct h_kafka *k)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", k->bootstrap, err, sizeof(err));
    const char *extra = getenv("SMMT_KAFKA_CONF"); /* "k=v,k=v" for SASL tests */
    if (extra && *extra) {
        char *copy = strdup(extra);
        for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
            char *eq = strchr(tok, '=');
            if (eq) {
                *eq = '\0';
                rd_kafka_conf_set(conf, tok, eq + 1, err, sizeof(err));
            }
        }
        free(copy);
    }
    return conf;
}

static int delivered_fail;
static void dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err) {
        delivered_fail++;
    }
}

void h_produce(const struct h_kafka *k, const char *topic, const struct h_msg *msgs, size_t n)
{
    char err[256];
    rd_kafka_conf_t *conf = conf_for(k);
    rd_kafka_conf_set(conf, "linger.ms", "20", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err));
    rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", err, sizeof(err));
    rd_kafka_conf_set(conf, "message.max.bytes", "2000000", err, sizeof(err));
    rd_kafka_conf_set_dr_msg_cb(conf, dr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    cr_assert(rk, "producer: %s", err);
    delivered_fail = 0;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t e;
        do {
            e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                  RD_KAFKA_V_VALUE(msgs[i].payload, msgs[i].len),
                                  RD_KAFKA_V_KEY(msgs[i].key, msgs[i].key ? strlen(msgs[i].key) : 0),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(rk, 50);
            }
        } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        cr_assert(e == 0, "produce: %s", rd_kafka_err2str(e));
        rd_kafka_poll(rk, 0);
    }
    cr_assert(rd_kafka_flush(rk, 60000) == 0, "produce: flush timed out");
    cr_assert(delivered_fail == 0, "produce: %d deliveries failed", delivered_fail);
    rd_kafka_destroy(rk);
}

size_t h_consume_all(const struct h_kafka *k, const char *topic, int idle_ms,
                     void (*each)(void *, const char *, size_t, const char *), void *opaque)
{
    char err[256], group[64];
    snprintf(group, sizeof(group), "h-reader-%d-%lld", (int)getpid(), (long long)h_now_ms());
    rd_kafka_conf_t *conf = conf_for(k);
    rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
    rd_kafka_conf_set(conf, "session.timeout.ms", "6000", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    cr_assert(rk, "consumer: %s", err);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    size_t n = 0;
    int64_t last = h_now_ms(), start = last;
    int got_any_assignment = 0;
    while (h_now_ms() - last < idle_ms || (!got_any_assignment && h_now_ms() - start < 30000)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            rd_kafka_topic_partition_list_t *a = NULL;
            if (!got_any_assignment && rd_kafka_assignment(rk, &a) == 0 && a) {
                if (a->cnt > 0) {
                    got_any_assignment = 1;
                    last = h_now_ms();
                }
                rd_kafka_topic_partition_list_destroy(a);
            }
            continue;
        }
        if (!m->err) {
            const void *val = NULL;
            size_t vlen = 0;
            char reason[64] = "";
            rd_kafka_headers_t *hdrs = NULL;
            if (rd_kafka_message_headers(m, &hdrs) == 0 &&
                rd_kafka_header_get_last(hdrs, "smm.reason", &val, &vlen) == 0 && val) {
                snprintf(reason, sizeof(reason), "%.*s", (int)vlen, (const char *)val);
            }
            if (each) {
                each(opaque, m->payload, m->len, reason);
            }
            n++;
            last = h_now_ms();
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

/* ---- processor ---- */

pid_t h_processor_start(const struct h_kafka *k, const struct h_redis *r, const char *logfile,
                        const char *const *extra)
{
    char redis[64];
    snprintf(redis, sizeof(redis), "127.0.0.1:%d", r->port);
    const char *argv[64] = {SMM_BUILD_DIR "/processor/smm-processor",
                            "--brokers", k->bootstrap, "--topic", k->topic, "--redis", redis,
                            "--set", "kafka.session.timeout.ms=6000",
                            "--set", "kafka.heartbeat.interval.ms=500",
                            "--set", "stats.interval_ms=1000",
                            "--set", "reach.refresh_max=1000000",
                            "--set", "redis.timeout_ms=1000",
                            /* an ephemeral HTTP port: tests run processors side by side */
                            "--set", "http.port=0"};
    int n = 19;
    for (int i = 0; extra && extra[i] && n < 60; i++) {
        argv[n++] = "--set";
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    return spawn((char *const *)argv, logfile, NULL);
}

/* ---- messages ---- */

struct h_msg *h_load_jsonl(const char *path, size_t *n_out)
{
    FILE *f = fopen(path, "r");
    cr_assert(f, "open %s", path);
    size_t cap = 1024, n = 0;
    struct h_msg *msgs = malloc(cap * sizeof(*msgs));
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) > 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            line[--len] = '\0';
        }
        if (n == cap) {
            cap *= 2;
            msgs = realloc(msgs, cap * sizeof(*msgs));
        }
        cJSON *j = cJSON_ParseWithLength(line, (size_t)len);
        const cJSON *key = j ? cJSON_GetObjectItemCaseSensitive(j, "content_id") : NULL;
        if (!cJSON_IsString(key)) {
            key = j ? cJSON_GetObjectItemCaseSensitive(j, "account_id") : NULL;
        }
        msgs[n].key = cJSON_IsString(key) ? strdup(key->valuestring) : NULL;
        msgs[n].payload = strdup(line);
        msgs[n].len = (size_t)len;
        n++;
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    *n_out = n;
    return msgs;
}

void h_free_msgs(struct h_msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(msgs[i].key);
        free(msgs[i].payload);
    }
    free(msgs);
}

/* ---- streaming producer (see harness.h) ---- */

struct h_stream {
    rd_kafka_t *rk;
    char topic[256];
    int32_t *part;
    int64_t *off;
    int64_t delivered, failed; /* __atomic */
};

static void stream_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct h_stream *s = opaque;
    size_t idx = (size_t)(uintptr_t)m->_private;
    if (m->err) {
        __atomic_add_fetch(&s->failed, 1, __ATOMIC_SEQ_CST);
        return;
    }
    __atomic_store_n(&s->part[idx], m->partition, __ATOMIC_SEQ_CST);
    __atomic_store_n(&s->off[idx], m->offset, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&s->delivered, 1, __ATOMIC_SEQ_CST);
}

struct h_stream *h_stream_new(const struct h_kafka *k, const char *topic, int32_t *part,
                              int64_t *off, char *err, size_t err_size)
{
    struct h_stream *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    snprintf(s->topic, sizeof(s->topic), "%s", topic);
    s->part = part;
    s->off = off;
    rd_kafka_conf_t *conf = conf_for(k);
    static const char *const kv[][2] = {
        {"linger.ms", "10"},
        {"enable.idempotence", "true"},
        {"queue.buffering.max.messages", "1000000"},
        {"message.max.bytes", "2000000"},
        {"message.timeout.ms", "300000"},
    };
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
        if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], err, err_size) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            free(s);
            return NULL;
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, stream_dr);
    rd_kafka_conf_set_opaque(conf, s);
    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, err_size);
    if (!s->rk) {
        free(s);
        return NULL;
    }
    return s;
}

int h_stream_send(struct h_stream *s, const struct h_msg *m, size_t idx)
{
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            s->rk, RD_KAFKA_V_TOPIC(s->topic), RD_KAFKA_V_VALUE(m->payload, m->len),
            RD_KAFKA_V_KEY(m->key, m->key ? strlen(m->key) : 0),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)idx),
            RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(s->rk, 50);
            continue;
        }
        rd_kafka_poll(s->rk, 0);
        return e ? -1 : 0;
    }
}

void h_stream_poll(struct h_stream *s, int ms)
{
    rd_kafka_poll(s->rk, ms);
}

int64_t h_stream_flush(struct h_stream *s, int timeout_ms)
{
    if (rd_kafka_flush(s->rk, timeout_ms) != 0) {
        return -1;
    }
    return __atomic_load_n(&s->failed, __ATOMIC_SEQ_CST);
}

int64_t h_stream_delivered(const struct h_stream *s)
{
    return __atomic_load_n(&s->delivered, __ATOMIC_SEQ_CST);
}

void h_stream_destroy(struct h_stream *s)
{
    if (s) {
        rd_kafka_destroy(s->rk);
        free(s);
    }
}

/* ---- authenticated Redis, processor with arguments and environment (added for
 * tests/integration/test_security.c) ---- */

void h_redis_start_args(struct h_redis *r, const char *const *args)
{
    memset(r, 0, sizeof(*r));
    r->port = h_free_port();
    h_tmpdir(r->dir, sizeof(r->dir), "redis");
    char port[16], log[300];
    snprintf(port, sizeof(port), "%d", r->port);
    snprintf(log, sizeof(log), "%s/redis.log", r->dir);
    const char *argv[64] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--dir",
                            r->dir, "--save", "", "--appendonly", "no", "--daemonize", "no"};
    int n = 13;
    for (int i = 0; args && args[i] && n < 62; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    r->pid = spawn((char *const *)argv, log, NULL);
    /* Up = any reply to PING: with requirepass it is the NOAUTH error. */
    for (int i = 0; i < 200; i++) {
        struct timeval tv = {1, 0};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
        int ok = 0;
        if (c && !c->err) {
            redisReply *rep = redisCommand(c, "PING");
            ok = rep != NULL;
            if (rep) {
                freeReplyObject(rep);
            }
        }
        if (c) {
            redisFree(c);
        }
        if (ok) {
            return;
        }
        h_sleep_ms(25);
    }
    cr_assert_fail("redis-server did not start on port %d (see %s)", r->port, log);
}

redisContext *h_redis_connect_auth(const struct h_redis *r, const char *user,
                                   const char *password)
{
    redisContext *c = h_redis_connect(r);
    redisReply *rep = user && *user ? redisCommand(c, "AUTH %s %s", user, password)
                                    : redisCommand(c, "AUTH %s", password);
    cr_assert(rep && rep->type == REDIS_REPLY_STATUS, "redis AUTH as %s failed: %s",
              user && *user ? user : "default", rep && rep->str ? rep->str : "no reply");
    freeReplyObject(rep);
    return c;
}

pid_t h_processor_start_ex(const struct h_kafka *k, const struct h_redis *r, const char *logfile,
                           const char *const *sets, const char *const *args,
                           const char *const *env)
{
    char redis[64];
    const char *argv[128] = {SMM_BUILD_DIR "/processor/smm-processor"};
    int n = 1;
    if (k) {
        argv[n++] = "--brokers";
        argv[n++] = k->bootstrap;
        argv[n++] = "--topic";
        argv[n++] = k->topic;
    }
    if (r) {
        snprintf(redis, sizeof(redis), "127.0.0.1:%d", r->port);
        argv[n++] = "--redis";
        argv[n++] = redis;
    }
    static const char *const common[] = {"kafka.session.timeout.ms=6000",
                                         "kafka.heartbeat.interval.ms=500",
                                         "stats.interval_ms=1000", "reach.refresh_max=1000000",
                                         "redis.timeout_ms=1000"};
    for (size_t i = 0; k && i < sizeof(common) / sizeof(common[0]); i++) {
        argv[n++] = "--set";
        argv[n++] = common[i];
    }
    argv[n++] = "--set";
    argv[n++] = "http.port=0"; /* ephemeral: tests run processors side by side */
    for (int i = 0; sets && sets[i] && n < 100; i++) {
        argv[n++] = "--set";
        argv[n++] = sets[i];
    }
    for (int i = 0; args && args[i] && n < 126; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        /* Only the variables given here: none inherited from whoever runs the tests. */
        extern char **environ;
        for (int again = 1; again;) {
            again = 0;
            for (char **e = environ; *e; e++) {
                if (strncmp(*e, "SMM_", 4) == 0) {
                    char name[256];
                    snprintf(name, sizeof(name), "%.*s", (int)strcspn(*e, "="), *e);
                    unsetenv(name);
                    again = 1;
                    break;
                }
            }
        }
        for (int i = 0; env && env[i]; i++) {
            char name[256];
            size_t len = strcspn(env[i], "=");
            snprintf(name, sizeof(name), "%.*s", (int)len, env[i]);
            setenv(name, env[i][len] ? env[i] + len + 1 : "", 1);
        }
        setpgid(0, 0);
        int fd = open(logfile ? logfile : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

char *h_read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    cr_assert(buf);
    while (f) {
        if (len + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert(buf);
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        if (got == 0) {
            break;
        }
        len += got;
    }
    if (f) {
        fclose(f);
    }
    buf[len] = '\0';
    if (len_out) {
        *len_out = len;
    }
    return buf;
}

/* ---- counters ---- */

size_t h_entity_each(redisContext *c, const char *prefix, const char *entity, const char *window,
                     int64_t minute,
                     void (*each)(void *opaque, const char *metric, const char *value),
                     void *opaque)
{
    char min[32];
    snprintf(min, sizeof(min), "%lld", (long long)minute);
    /* FCALL, not FCALL_RO: it runs read-only functions too, and smm_get counts reach with
     * PFCOUNT, which Redis may refuse in a function flagged no-writes. */
    const char *argv[] = {"FCALL", "smm_get", "0", prefix, entity, window, min};
    redisReply *r = redisCommandArgv(c, minute < 0 ? 6 : 7, argv, NULL);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements % 2 == 0,
              "FCALL smm_get 0 %s %s %s %s: %s", prefix, entity, window, minute < 0 ? "" : min,
              r && r->str ? r->str : r ? "not a list of pairs" : c->errstr);
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        char num[32];
        const char *text = v->str;
        if (v->type == REDIS_REPLY_INTEGER) {
            snprintf(num, sizeof(num), "%lld", v->integer);
            text = num;
        }
        cr_assert(k->type == REDIS_REPLY_STRING && text, "smm_get %s %s: pair %zu is not "
                  "name, value", entity, window, i / 2);
        each(opaque, k->str, text);
    }
    size_t n = r->elements / 2;
    freeReplyObject(r);
    return n;
}

struct one_metric {
    const char *want;
    int64_t v;
};

static void pick_metric(void *opaque, const char *metric, const char *value)
{
    struct one_metric *m = opaque;
    if (strcmp(metric, m->want) == 0) {
        m->v = (int64_t)strtod(value, NULL); /* a rate ("12.5000") gives its integer part */
    }
}

int64_t h_entity_get(redisContext *c, const char *prefix, const char *entity,
                     const char *window, int64_t minute, const char *metric)
{
    struct one_metric m = {metric, 0};
    h_entity_each(c, prefix, entity, window, minute, pick_metric, &m);
    return m.v;
}

void h_entity_key(redisContext *c, const char *prefix, const char *entity, char *out,
                  size_t size)
{
    /* The contract's shard formula, in the server's own Lua (redis.sha1hex). */
    static const char *const lua =
        "local s = tonumber(redis.call('HGET', KEYS[1], 'shards'))\n"
        "if not s then return redis.error_reply('no field shards in ' .. KEYS[1]) end\n"
        "local n = tonumber(redis.sha1hex(ARGV[1]):sub(1, 8), 16) % s\n"
        "return ARGV[2] .. '{' .. string.format('%d', n) .. '}:' .. ARGV[1]\n";
    char meta[256];
    snprintf(meta, sizeof(meta), "%smeta", prefix);
    const char *argv[] = {"EVAL", lua, "1", meta, entity, prefix};
    redisReply *r = redisCommandArgv(c, 6, argv, NULL);
    cr_assert(r && r->type == REDIS_REPLY_STRING, "the key of %s under %s: %s", entity, prefix,
              r && r->str ? r->str : c->errstr);
    cr_assert(r->len < size, "the key of %s does not fit %zu bytes", entity, size);
    memcpy(out, r->str, r->len + 1);
    freeReplyObject(r);
}

int64_t h_entity_field(redisContext *c, const char *prefix, const char *entity,
                       const char *field, const char *metric)
{
    char key[1024];
    h_entity_key(c, prefix, entity, key, sizeof(key));
    const char *argv[] = {"HGET", key, field};
    redisReply *r = redisCommandArgv(c, 3, argv, NULL);
    cr_assert(r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_NIL), "HGET %s %s: %s",
              key, field, r && r->str ? r->str : c->errstr);
    int64_t v = 0;
    size_t ml = strlen(metric);
    /* "name=value,name=value": a pair matches from its start ("like" is not "unlike=3") */
    for (const char *p = r->type == REDIS_REPLY_STRING ? r->str : ""; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > ml && strncmp(p, metric, ml) == 0 && p[ml] == '=') {
            v = strtoll(p + ml + 1, NULL, 10);
            break;
        }
        p += len + (end != NULL);
    }
    freeReplyObject(r);
    return v;
}

size_t h_entities(redisContext *c, const char *prefix,
                  void (*each)(void *opaque, const char *entity), void *opaque)
{
    char match[300];
    size_t o = 0;
    for (const char *p = prefix; *p && o + 4 < sizeof(match); p++) {
        if (strchr("*?[]\\", *p)) {
            match[o++] = '\\';
        }
        match[o++] = *p;
    }
    snprintf(match + o, sizeof(match) - o, "{*");
    size_t plen = strlen(prefix), n = 0;
    char cursor[32] = "0";
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", match, "COUNT", "1000"};
        redisReply *r = redisCommandArgv(c, 6, argv, NULL);
        cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2, "SCAN: %s",
                  r && r->str ? r->str : c->errstr);
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const char *k = r->element[1]->element[i]->str + plen;
            size_t digits = strspn(k + 1, "0123456789");
            if (digits > 0 && strncmp(k + 1 + digits, "}:", 2) == 0) { /* "{<N>}:<entity>" */
                each(opaque, k + 1 + digits + 2);
                n++;
            }
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return n;
}
