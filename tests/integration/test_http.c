/* tests/integration/test_http.c - the embedded HTTP server of the real processor binary.
 *
 * A private redis-server, the mock Kafka (smm-mock-kafka) and smm-processor on an ephemeral
 * HTTP port (read from its log line "http: listening on <addr>:<port>"). HTTP is spoken over
 * plain POSIX sockets, HTTP/1.0 so no response is chunked. The events are written here with
 * known counts, so every API value is checked twice: against Redis read by the test itself
 * and against what the test computed from the events it produced. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"

#define PW "redis-pw-Zq81xx"
#define TOKEN "http-token-Kp3Yvv"

/* ---- HTTP over a socket ---- */

struct resp {
    int status;
    char *head; /* status line and headers */
    char *body;
};

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect :%d: %s", port,
                 strerror(errno));
    return fd;
}

static void send_request(int fd, const char *path, const char *token)
{
    char req[2048];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n%s%s%s\r\n", path,
                     token ? "Authorization: Bearer " : "", token ? token : "",
                     token ? "\r\n" : "");
    cr_assert_eq(write(fd, req, (size_t)n), n);
}

/* Reads until EOF (at most 10 s). */
static struct resp http_get(int port, const char *path, const char *token)
{
    int fd = dial(port);
    send_request(fd, path, token);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    int64_t deadline = h_now_ms() + 10000;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        cr_assert(h_now_ms() < deadline, "GET %s: no complete answer in 10 s", path);
        if (poll(&p, 1, 200) <= 0) {
            continue;
        }
        if (len + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    struct resp r = {0, buf, NULL};
    char *sep = strstr(buf, "\r\n\r\n");
    cr_assert_not_null(sep, "GET %s: no header end in \"%s\"", path, buf);
    *sep = '\0';
    r.body = sep + 4;
    cr_assert_eq(sscanf(buf, "HTTP/1.%*d %d", &r.status), 1, "status line: %s", buf);
    return r;
}

static void resp_free(struct resp *r)
{
    free(r->head);
}

/* GET that must answer `status`; returns the body parsed as JSON (caller deletes). */
static cJSON *get_json(int port, const char *path, const char *token, int status)
{
    struct resp r = http_get(port, path, token);
    cr_assert_eq(r.status, status, "GET %s: %d, want %d: %s", path, r.status, status, r.body);
    cr_assert(strstr(r.head, "Content-Type: application/json") != NULL, "GET %s: %s", path,
              r.head);
    cJSON *j = cJSON_Parse(r.body);
    cr_assert_not_null(j, "GET %s: not JSON: %s", path, r.body);
    resp_free(&r);
    return j;
}

static double num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    cr_assert(cJSON_IsNumber(v), "%s is not a number", name);
    return v->valuedouble;
}

/* ---- processor ---- */

/* Waits for "http: listening on 127.0.0.1:<port>" in the log. */
static int http_port(pid_t pid, const char *log)
{
    int64_t deadline = h_now_ms() + 30000;
    for (;;) {
        char *text = h_read_file(log, NULL);
        char *at = strstr(text, "http: listening on 127.0.0.1:");
        int port = at ? atoi(at + strlen("http: listening on 127.0.0.1:")) : 0;
        free(text);
        if (port > 0) {
            return port;
        }
        int status;
        cr_assert_eq(waitpid(pid, &status, WNOHANG), 0, "processor exited (see %s)", log);
        cr_assert(h_now_ms() < deadline, "no listening line in %s", log);
        h_sleep_ms(50);
    }
}

static void wait_status(int port, const char *path, const char *token, int status,
                        int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        struct resp r = http_get(port, path, token);
        if (r.status == status) {
            resp_free(&r);
            return;
        }
        cr_assert(h_now_ms() < deadline, "GET %s stayed %d (want %d): %s", path, r.status,
                  status, r.body);
        resp_free(&r);
        h_sleep_ms(200);
    }
}

static int64_t offsets_sum(redisContext *c)
{
    redisReply *r = redisCommand(c, "HVALS smm:offsets");
    int64_t sum = 0;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        sum += strtoll(r->element[i]->str, NULL, 10);
    }
    freeReplyObject(r);
    return sum;
}

static void wait_offsets(redisContext *c, pid_t pid, int64_t want, const char *log)
{
    int64_t deadline = h_now_ms() + 60000;
    while (offsets_sum(c) < want) {
        int status;
        cr_assert_eq(waitpid(pid, &status, WNOHANG), 0, "processor exited (see %s)", log);
        cr_assert(h_now_ms() < deadline, "offsets stuck at %lld of %lld (see %s)",
                  (long long)offsets_sum(c), (long long)want, log);
        h_sleep_ms(100);
    }
}

static double hget_num(redisContext *c, const char *key, const char *field)
{
    redisReply *r = redisCommand(c, "HGET %s %b", key, field, strlen(field));
    cr_assert(r && r->type == REDIS_REPLY_STRING, "HGET %s %s: no value", key, field);
    double v = strtod(r->str, NULL);
    freeReplyObject(r);
    return v;
}

/* ---- events with known counts ---- */

struct expect {
    const char *content, *account;
    int impressions, likes, shares, late, users;
};

/* impressions by distinct users, likes and shares, `late` of the impressions 2 minutes old. */
static size_t make_events(struct h_msg *out, size_t at, const struct expect *e, int64_t now)
{
    char p[1024];
    size_t n = at;
    for (int i = 0; i < e->impressions; i++) {
        int64_t ts = i < e->late ? now - 120000 : now - 3000;
        snprintf(p, sizeof(p),
                 "{\"event_id\":\"%s-i%d\",\"type\":\"impression\",\"ts\":%lld,\"account_id\":"
                 "\"%s\",\"content_id\":\"%s\",\"user_id\":\"u-%d\"}",
                 e->content, i, (long long)ts, e->account, e->content, i % e->users);
        out[n].payload = strdup(p);
        out[n].len = strlen(p);
        out[n].key = strdup(e->content);
        n++;
    }
    for (int i = 0; i < e->likes + e->shares; i++) {
        snprintf(p, sizeof(p),
                 "{\"event_id\":\"%s-e%d\",\"type\":\"%s\",\"ts\":%lld,\"account_id\":\"%s\","
                 "\"content_id\":\"%s\",\"user_id\":\"u-%d\"}",
                 e->content, i, i < e->likes ? "like" : "share", (long long)(now - 2000),
                 e->account, e->content, i);
        out[n].payload = strdup(p);
        out[n].len = strlen(p);
        out[n].key = strdup(e->content);
        n++;
    }
    return n;
}

/* Percent-encodes every byte outside [A-Za-z0-9._-]. */
static void url_encode(const char *s, char *out, size_t size)
{
    size_t o = 0;
    for (; *s && o + 4 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '_' || c == '-') {
            out[o++] = (char)c;
        } else {
            o += (size_t)snprintf(out + o, size - o, "%%%02X", c);
        }
    }
    out[o] = '\0';
}

struct run {
    char dir[256], log[300];
    struct h_redis redis;
    struct h_kafka kafka;
    pid_t pid;
    int port;
    redisContext *c;
    int64_t messages;
};

static const struct expect contents[] = {
    {"post-a", "acct-h1", 12, 5, 3, 4, 10},
    /* an id with a slash, a percent sign, a space and non-ASCII: decoded after routing */
    {"p%/\xc3\xbc b", "acct-h1", 7, 2, 1, 0, 7},
    {"post-c", "acct-h2", 3, 0, 2, 1, 3},
};
#define N_CONTENTS (sizeof(contents) / sizeof(contents[0]))
#define N_BAD 3

static void setup(struct run *run, const char *name, int secure)
{
    memset(run, 0, sizeof(*run));
    h_tmpdir(run->dir, sizeof(run->dir), name);
    if (secure) {
        static const char *const args[] = {"--requirepass", PW, NULL};
        h_redis_start_args(&run->redis, args);
        run->c = h_redis_connect_auth(&run->redis, NULL, PW);
    } else {
        h_redis_start(&run->redis, 0);
        run->c = h_redis_connect(&run->redis);
    }
    h_kafka_start(&run->kafka, name, 3);
    struct h_msg *msgs = calloc(256, sizeof(*msgs)); /* h_free_msgs() frees the array */
    size_t n = 0;
    int64_t now = h_now_ms();
    for (size_t i = 0; i < N_CONTENTS; i++) {
        n = make_events(msgs, n, &contents[i], now);
    }
    static const char *const bad[N_BAD] = {"{not json", "[1]", "{\"type\":\"like\"}"};
    for (int i = 0; i < N_BAD; i++) {
        msgs[n].payload = strdup(bad[i]);
        msgs[n].len = strlen(bad[i]);
        msgs[n].key = strdup("bad");
        n++;
    }
    h_produce(&run->kafka, run->kafka.topic, msgs, n);
    run->messages = (int64_t)n;
    h_free_msgs(msgs, n);
    snprintf(run->log, sizeof(run->log), "%s/processor.log", run->dir);
    const char *sets[8] = {"group_id=http", NULL};
    if (secure) {
        sets[1] = "redis.password=" PW;
        sets[2] = "http.token=" TOKEN;
    }
    run->pid = h_processor_start_ex(&run->kafka, &run->redis, run->log, sets, NULL, NULL);
    run->port = http_port(run->pid, run->log);
}

static void teardown(struct run *run, int graceful)
{
    if (graceful) {
        kill(run->pid, SIGTERM);
        cr_assert_eq(h_wait(run->pid, 30000), 0, "processor exit status (see %s)", run->log);
    } else {
        kill(run->pid, SIGKILL);
        h_wait(run->pid, 10000);
    }
    if (run->c) {
        redisFree(run->c);
    }
    h_kafka_stop(&run->kafka);
    h_redis_stop(&run->redis);
}

/* ---- Prometheus text format ---- */

static int metric_name_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok) {
            return 0;
        }
    }
    return n > 0;
}

/* Checks every line against the text exposition format 0.0.4 and returns the value of the
 * unlabelled sample `want` (NAN when absent). Each sample's family must have a TYPE line
 * before it. */
static double prom_parse(const char *text, const char *want)
{
    double found = NAN;
    char *copy = strdup(text);
    char typed[64][64];
    int n_typed = 0;
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') {
            char kw[8], name[128], rest[256] = "";
            int k = sscanf(line, "# %7s %127s %255[^\n]", kw, name, rest);
            cr_assert(k >= 2, "bad comment line: %s", line);
            cr_assert(!strcmp(kw, "HELP") || !strcmp(kw, "TYPE"), "bad comment: %s", line);
            cr_assert(metric_name_ok(name, strlen(name)), "bad name: %s", line);
            if (!strcmp(kw, "TYPE")) {
                cr_assert(!strcmp(rest, "counter") || !strcmp(rest, "gauge") ||
                              !strcmp(rest, "histogram") || !strcmp(rest, "summary") ||
                              !strcmp(rest, "untyped"),
                          "bad type: %s", line);
                cr_assert(n_typed < 64);
                snprintf(typed[n_typed++], 64, "%s", name);
            }
            continue;
        }
        size_t nl = strcspn(line, "{ ");
        cr_assert(metric_name_ok(line, nl), "bad sample: %s", line);
        const char *p = line + nl;
        if (*p == '{') {
            p++;
            while (*p != '}') {
                size_t ln = strcspn(p, "=");
                cr_assert(metric_name_ok(p, ln) && p[ln] == '=' && p[ln + 1] == '"',
                          "bad label in: %s", line);
                p += ln + 2;
                while (*p && *p != '"') {
                    if (*p == '\\') {
                        cr_assert(p[1] == '\\' || p[1] == '"' || p[1] == 'n', "bad escape: %s",
                                  line);
                        p++;
                    }
                    p++;
                }
                cr_assert(*p == '"', "unterminated label value: %s", line);
                p++;
                if (*p == ',') {
                    p++;
                }
                cr_assert(*p == '}' || metric_name_ok(p, 1), "bad label list: %s", line);
            }
            p++;
        }
        cr_assert(*p == ' ', "no value: %s", line);
        p++;
        char *end;
        double v = strtod(p, &end);
        cr_assert(end != p && (*end == '\0' || *end == ' '), "bad value: %s", line);
        int family_typed = 0;
        for (int i = 0; i < n_typed; i++) {
            size_t tl = strlen(typed[i]);
            family_typed |= strncmp(line, typed[i], tl) == 0 &&
                            (nl == tl || !strncmp(line + tl, "_bucket", 7) ||
                             !strncmp(line + tl, "_sum", 4) || !strncmp(line + tl, "_count", 6));
        }
        cr_assert(family_typed, "sample before its TYPE: %s", line);
        if (strlen(want) == nl && strncmp(line, want, nl) == 0 && line[nl] == ' ') {
            found = v;
        }
    }
    free(copy);
    return found;
}

/* Sums every sample of a labelled family. */
static double prom_sum(const char *text, const char *family)
{
    double sum = 0;
    char pre[128];
    snprintf(pre, sizeof(pre), "\n%s{", family);
    for (const char *p = strstr(text, pre); p; p = strstr(p + 1, pre)) {
        const char *sp = strchr(p + 1, '}');
        sum += strtod(sp + 2, NULL);
    }
    return sum;
}

/* ---- tests ---- */

static void check_entity(struct run *run, const char *token, char kind, const char *id,
                         int impressions, int engagement, int users)
{
    char enc[512], path[700], field[600];
    url_encode(id, enc, sizeof(enc));
    snprintf(path, sizeof(path), "/api/v1/%s/%s", kind == 'c' ? "content" : "account", enc);
    cJSON *j = get_json(run->port, path, token, 200);
    const cJSON *idv = cJSON_GetObjectItemCaseSensitive(j, kind == 'c' ? "content_id"
                                                                       : "account_id");
    cr_assert(cJSON_IsString(idv) && !strcmp(idv->valuestring, id), "%s: id echoed wrong", path);
    const cJSON *life = cJSON_GetObjectItemCaseSensitive(j, "lifetime");
    snprintf(field, sizeof(field), "%c:%s:impression", kind, id);
    double redis_impr = hget_num(run->c, "smm:total", field);
    snprintf(field, sizeof(field), "%c:%s:engagement", kind, id);
    double redis_eng = engagement ? hget_num(run->c, "smm:total", field) : 0;
    cr_assert_eq(num(life, "impression"), redis_impr, "%s impression: API %g, Redis %g", path,
                 num(life, "impression"), redis_impr);
    cr_assert_eq(redis_impr, impressions, "%s impression: Redis %g, produced %d", path,
                 redis_impr, impressions);
    if (engagement) {
        cr_assert_eq(num(life, "engagement"), redis_eng, "%s engagement vs Redis", path);
        cr_assert_eq(redis_eng, engagement, "%s engagement: Redis %g, produced %d", path,
                     redis_eng, engagement);
        snprintf(field, sizeof(field), "%c:%s:er_impr", kind, id);
        cr_assert_float_eq(num(life, "er_impr"), hget_num(run->c, "smm:total", field), 1e-9);
    }
    /* Windows: everything is at most 2 minutes old, so the 5-minute window has it all. */
    const cJSON *w5 = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, "windows"), "5m");
    cr_assert_not_null(w5, "%s: no 5m window", path);
    snprintf(field, sizeof(field), "%c:%s:impression", kind, id);
    cr_assert_eq(num(w5, "impression"), hget_num(run->c, "smm:w:5m", field));
    /* Reach: what PFCOUNT says, which for this few users is the exact count. */
    char key[600];
    snprintf(key, sizeof(key), "smm:%c:%s:reach", kind, id);
    redisReply *r = redisCommand(run->c, "PFCOUNT %b", key, strlen(key));
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    cr_assert_eq(num(j, "reach"), (double)r->integer, "%s reach: API %g, PFCOUNT %lld", path,
                 num(j, "reach"), r->integer);
    cr_assert_eq(r->integer, users, "%s reach: PFCOUNT %lld, produced %d users", path,
                 r->integer, users);
    freeReplyObject(r);
    /* The 30-minute series adds up to the lifetime (all events are recent). */
    const cJSON *series = cJSON_GetObjectItemCaseSensitive(j, "series");
    const cJSON *si = cJSON_GetObjectItemCaseSensitive(series, "impression");
    const cJSON *se = cJSON_GetObjectItemCaseSensitive(series, "engagement");
    cr_assert_eq(cJSON_GetArraySize(si), 30);
    cr_assert_eq(cJSON_GetArraySize(se), 30);
    double sum_i = 0, sum_e = 0;
    for (int i = 0; i < 30; i++) {
        sum_i += cJSON_GetArrayItem(si, i)->valuedouble;
        sum_e += cJSON_GetArrayItem(se, i)->valuedouble;
    }
    cr_assert_eq(sum_i, impressions, "%s: impression series sums to %g", path, sum_i);
    cr_assert_eq(sum_e, engagement, "%s: engagement series sums to %g", path, sum_e);
    cr_assert_eq(cJSON_HasObjectItem(j, "viral"), kind == 'c');
    cJSON_Delete(j);
}

Test(http, api_metrics_auth_and_secrets, .timeout = 180)
{
    struct run run;
    setup(&run, "http-api", 1);
    const char *tok = TOKEN;

    /* /healthz and the page's own files are open; everything with data needs the token
     * (the header; /events also takes ?token= for EventSource). */
    cJSON *j = get_json(run.port, "/healthz", NULL, 200);
    cJSON_Delete(j);
    cJSON_Delete(get_json(run.port, "/events?token=wrong-token", NULL, 401));
    cJSON_Delete(get_json(run.port, "/api/v1/summary?token=" TOKEN, NULL, 401));
    static const char *const closed[] = {"/readyz", "/metrics", "/api/v1/summary",
                                         "/api/v1/content/post-a", "/events"};
    for (size_t i = 0; i < sizeof(closed) / sizeof(closed[0]); i++) {
        cJSON_Delete(get_json(run.port, closed[i], NULL, 401));
        cJSON_Delete(get_json(run.port, closed[i], "wrong-token", 401));
    }
    wait_status(run.port, "/readyz", tok, 200, 30000);
    wait_offsets(run.c, run.pid, run.messages, run.log);

    /* /metrics: valid exposition format; consumed equals what we produced. Redis may hold
     * the last flush before the loop has collected its reply (and published, <= 100 ms). */
    int late = 0, events = 0;
    for (size_t i = 0; i < N_CONTENTS; i++) {
        late += contents[i].late;
        events += contents[i].impressions + contents[i].likes + contents[i].shares;
    }
    double consumed = NAN, counted = NAN;
    char *metrics = NULL;
    int64_t deadline = h_now_ms() + 5000;
    for (;;) {
        struct resp r = http_get(run.port, "/metrics", tok);
        cr_assert_eq(r.status, 200);
        cr_assert(strstr(r.head, "Content-Type: text/plain; version=0.0.4") != NULL, "%s",
                  r.head);
        consumed = prom_parse(r.body, "smm_events_consumed_total");
        counted = prom_parse(r.body, "smm_events_counted_total");
        int dead = prom_sum(r.body, "smm_events_dead_lettered_total") == N_BAD;
        free(metrics);
        metrics = strdup(r.body);
        resp_free(&r);
        if ((consumed == (double)run.messages && counted == events && dead) ||
            h_now_ms() > deadline) {
            break;
        }
        h_sleep_ms(100);
    }
    cr_assert_eq(consumed, (double)run.messages, "smm_events_consumed_total %g, produced %lld",
                 consumed, (long long)run.messages);
    cr_assert_eq(counted, events, "smm_events_counted_total %g, produced %d", counted, events);
    cr_assert_eq(prom_parse(metrics, "smm_events_late_total"), late);
    cr_assert_eq(prom_sum(metrics, "smm_events_dead_lettered_total"), N_BAD);
    cr_assert_eq(prom_parse(metrics, "smm_partitions_assigned"), 3);
    cr_assert_eq(prom_parse(metrics, "smm_ready"), 1);
    cr_assert(prom_parse(metrics, "smm_flush_duration_seconds_count") >= 1);
    cr_assert(prom_parse(metrics, "smm_process_resident_memory_bytes") > 0);
    static const char *const families[] = {
        "smm_events_consumed_total", "smm_events_counted_total", "smm_events_dead_lettered_total",
        "smm_events_late_total", "smm_flushes_total", "smm_flush_failures_total",
        "smm_flush_duration_seconds", "smm_redis_errors_total", "smm_redis_retries_total",
        "smm_consumer_lag", "smm_partitions_assigned", "smm_alerts_emitted_total",
        "smm_open_threads", "smm_tracked_cascades", "smm_process_resident_memory_bytes",
        "smm_ready", "smm_build_info"};
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        char type[128];
        snprintf(type, sizeof(type), "# TYPE %s ", families[i]);
        cr_assert(strstr(metrics, type) != NULL, "no %s in /metrics", families[i]);
    }
    cr_assert_null(strstr(metrics, PW), "the Redis password is in /metrics");
    cr_assert_null(strstr(metrics, TOKEN), "the HTTP token is in /metrics");
    free(metrics);

    /* Summary. */
    j = get_json(run.port, "/api/v1/summary", tok, 200);
    cr_assert_eq(num(j, "consumed"), (double)run.messages);
    cr_assert_eq(num(j, "counted"), events);
    cr_assert_eq(num(j, "dead_lettered"), N_BAD);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "redis")->valuestring, "up");
    cJSON_Delete(j);

    /* Content and account: API == Redis == what we produced. */
    for (size_t i = 0; i < N_CONTENTS; i++) {
        const struct expect *e = &contents[i];
        check_entity(&run, tok, 'c', e->content, e->impressions, e->likes + e->shares,
                     e->users);
    }
    check_entity(&run, tok, 'a', "acct-h1", 12 + 7, 5 + 3 + 2 + 1, 10);
    check_entity(&run, tok, 'a', "acct-h2", 3, 2, 3);

    /* Leaderboards kept by the state script: the API shows what Redis holds, and the
     * top of the 5-minute board is the post with the most engagement we produced. */
    redisReply *r;
    long best = -1;
    for (size_t i = 0; i < N_CONTENTS; i++) {
        long eng = contents[i].likes + contents[i].shares;
        best = eng > best ? eng : best;
    }
    j = get_json(run.port, "/api/v1/top?window=5m&limit=1", tok, 200);
    cJSON *items = cJSON_GetObjectItem(j, "items");
    cr_assert_eq(cJSON_GetArraySize(items), 1);
    cr_assert_eq(num(cJSON_GetArrayItem(items, 0), "value"), (double)best);
    r = redisCommand(run.c, "ZSCORE smm:top:engagement:5m %s",
                     cJSON_GetObjectItem(cJSON_GetArrayItem(items, 0), "content_id")->valuestring);
    cr_assert(r->type == REDIS_REPLY_STRING && atol(r->str) == best);
    freeReplyObject(r);
    cJSON_Delete(j);
    r = redisCommand(run.c, "ZREVRANGE smm:viral:velocity 0 9 WITHSCORES");
    j = get_json(run.port, "/api/v1/viral?by=velocity", tok, 200);
    items = cJSON_GetObjectItem(j, "items");
    cr_assert(r->elements >= 2, "posts with shares are on the velocity board");
    cr_assert_eq((size_t)cJSON_GetArraySize(items), r->elements / 2);
    for (size_t i = 0; i < r->elements / 2; i++) {
        cJSON *it = cJSON_GetArrayItem(items, (int)i);
        const char *cid = cJSON_GetObjectItem(it, "content_id")->valuestring;
        cr_assert_str_eq(cid, r->element[2 * i]->str);
        cr_assert_float_eq(num(it, "score"), atof(r->element[2 * i + 1]->str), 1e-9);
        redisReply *st = redisCommand(run.c, "HMGET smm:v:%s state account", cid);
        cr_assert_str_eq(cJSON_GetObjectItem(it, "state")->valuestring,
                         st->element[0]->type == REDIS_REPLY_STRING ? st->element[0]->str
                                                                    : "normal");
        cr_assert_str_eq(cJSON_GetObjectItem(it, "account")->valuestring, st->element[1]->str);
        freeReplyObject(st);
    }
    freeReplyObject(r);
    cJSON_Delete(j);
    /* An alert as the state script writes it (none fires at this test's reach). */
    r = redisCommand(run.c, "HSET smm:v:post-a state rising spm_5m 14.5");
    freeReplyObject(r);
    r = redisCommand(run.c, "XADD smm:alerts * alert_id viral:post-a:1 kind viral content_id "
                            "post-a account_id acct-h1 json %s",
                     "{\"alert_id\":\"viral:post-a:1\",\"kind\":\"viral\",\"content_id\":"
                     "\"post-a\",\"from\":\"normal\",\"to\":\"rising\"}");
    freeReplyObject(r);
    j = get_json(run.port, "/api/v1/content/post-a", tok, 200);
    cJSON *viral = cJSON_GetObjectItem(j, "viral");
    cr_assert_str_eq(cJSON_GetObjectItem(viral, "state")->valuestring, "rising");
    cr_assert_float_eq(num(viral, "spm_5m"), 14.5, 1e-9);
    cJSON_Delete(j);
    j = get_json(run.port, "/api/v1/alerts?limit=5", tok, 200);
    items = cJSON_GetObjectItem(j, "items");
    cr_assert_eq(cJSON_GetArraySize(items), 1);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(items, 0), "to")->valuestring,
                     "rising");
    cJSON_Delete(j);

    /* Errors. */
    static const char *const bad_requests[] = {
        "/api/v1/top?limit=0", "/api/v1/top?limit=abc", "/api/v1/top?limit=100000",
        "/api/v1/top?window=7m", "/api/v1/viral?by=likes", "/api/v1/alerts?limit=-1",
        "/api/v1/content/%zz", "/api/v1/content/"};
    for (size_t i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]); i++) {
        j = get_json(run.port, bad_requests[i], tok, 400);
        cr_assert(cJSON_IsString(cJSON_GetObjectItem(j, "error")), "%s", bad_requests[i]);
        cJSON_Delete(j);
    }
    static const char *const missing[] = {"/api/v1/content/no-such-post",
                                          "/api/v1/account/nobody", "/api/v1/nothing", "/nope",
                                          "/api/v1/content/post-a%2Fx"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        j = get_json(run.port, missing[i], tok, 404);
        cr_assert(cJSON_IsString(cJSON_GetObjectItem(j, "error")), "%s", missing[i]);
        cJSON_Delete(j);
    }
    /* The dashboard page: no data in it, so no token needed; locked to its own origin. */
    struct resp page = http_get(run.port, "/", NULL);
    cr_assert_eq(page.status, 200);
    cr_assert(strstr(page.head, "Content-Type: text/html") != NULL, "%s", page.head);
    cr_assert(strstr(page.head, "Content-Security-Policy: default-src 'self'") != NULL, "%s",
              page.head);
    cr_assert(strstr(page.body, "app.js") != NULL);
    resp_free(&page);

    teardown(&run, 1);
    /* Neither secret in the log (stats lines every second, startup, shutdown). */
    char *log = h_read_file(run.log, NULL);
    cr_assert(strstr(log, "http: listening on") != NULL);
    cr_assert_null(strstr(log, PW), "the Redis password is in %s", run.log);
    cr_assert_null(strstr(log, TOKEN), "the HTTP token is in %s", run.log);
    free(log);
}

/* Reads the event stream until needle appears (returns 1) or timeout_ms passes (0). The
 * text read so far accumulates in buf. */
static int sse_wait(int fd, char *buf, size_t size, size_t *len, const char *needle,
                    int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    while (!strstr(buf, needle)) {
        int64_t left = deadline - h_now_ms();
        if (left <= 0) {
            return 0;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0) {
            continue;
        }
        cr_assert(*len + 1 < size, "event stream overflowed the test buffer");
        ssize_t n = read(fd, buf + *len, size - *len - 1);
        cr_assert(n > 0, "event stream closed: %s", buf);
        *len += (size_t)n;
        buf[*len] = '\0';
    }
    return 1;
}

Test(http, events_stream, .timeout = 120)
{
    struct run run;
    setup(&run, "http-sse", 0);
    wait_status(run.port, "/readyz", NULL, 200, 30000);
    int fd = dial(run.port);
    int64_t t0 = h_now_ms();
    send_request(fd, "/events", NULL);
    static char buf[1 << 20];
    size_t len = 0;
    buf[0] = '\0';
    cr_assert(sse_wait(fd, buf, sizeof(buf), &len, "event: summary\ndata: {", 2000),
              "no summary event within 2 s: %s", buf);
    cr_log_info("first summary after %lld ms", (long long)(h_now_ms() - t0));
    cr_assert(strstr(buf, "Content-Type: text/event-stream") != NULL, "%s", buf);
    /* A second one about a second later. */
    const char *first = strstr(buf, "event: summary");
    cr_assert(sse_wait(fd, buf, sizeof(buf), &len, "}\n\nevent: summary\ndata: {", 2500),
              "no second summary: %s", buf);
    (void)first;
    redisReply *r = redisCommand(
        run.c, "XADD smm:alerts * alert_id viral:post-a:2 kind viral content_id post-a "
               "account_id acct-h1 json %s",
        "{\"alert_id\":\"viral:post-a:2\",\"kind\":\"viral\",\"content_id\":\"post-a\","
        "\"account_id\":\"acct-h1\",\"from\":\"rising\",\"to\":\"viral\"}");
    cr_assert(r && r->type == REDIS_REPLY_STRING);
    char id_line[128];
    snprintf(id_line, sizeof(id_line), "id: %s\n", r->str);
    freeReplyObject(r);
    int64_t t1 = h_now_ms();
    cr_assert(sse_wait(fd, buf, sizeof(buf), &len, "event: alert\n", 3000),
              "no alert event within 3 s of XADD: %s", buf);
    cr_assert(sse_wait(fd, buf, sizeof(buf), &len, "\"to\":\"viral\"}\n\n", 1000), "%s", buf);
    cr_log_info("alert delivered %lld ms after XADD", (long long)(h_now_ms() - t1));
    const char *ev = strstr(buf, "event: alert\n");
    cr_assert(strstr(ev, id_line) != NULL, "alert without its stream id: %s", ev);
    const char *data = strstr(ev, "data: ");
    cJSON *j = cJSON_ParseWithLength(data + 6, strcspn(data + 6, "\n"));
    cr_assert_not_null(j, "alert data is not JSON: %s", data);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "alert_id")->valuestring, "viral:post-a:2");
    cJSON_Delete(j);
    /* A summary's data is the /api/v1/summary object. */
    const char *sd = strstr(buf, "event: summary\ndata: ") + strlen("event: summary\ndata: ");
    j = cJSON_ParseWithLength(sd, strcspn(sd, "\n"));
    cr_assert_not_null(j);
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, "events_per_sec")));
    cr_assert(cJSON_IsBool(cJSON_GetObjectItem(j, "ready")));
    cJSON_Delete(j);
    /* Other requests are served while the stream is open (thread per connection). */
    int64_t t2 = h_now_ms();
    cJSON_Delete(get_json(run.port, "/api/v1/summary", NULL, 200));
    cr_assert(h_now_ms() - t2 < 1000, "a request waited %lld ms behind the event stream",
              (long long)(h_now_ms() - t2));
    close(fd);
    teardown(&run, 1); /* also proves shutdown does not hang on an event stream */
}

Test(http, readyz_follows_redis, .timeout = 120)
{
    struct run run;
    setup(&run, "http-ready", 0);
    wait_status(run.port, "/readyz", NULL, 200, 30000);
    cJSON *j = get_json(run.port, "/readyz", NULL, 200);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "ready")));
    cJSON_Delete(j);
    redisFree(run.c);
    run.c = NULL;
    h_redis_stop(&run.redis);
    wait_status(run.port, "/readyz", NULL, 503, 5000);
    j = get_json(run.port, "/readyz", NULL, 503);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "ready")));
    char *text = cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "reasons"));
    cr_assert(strstr(text, "redis") != NULL, "no Redis reason in %s", text);
    cr_log_info("reasons with Redis stopped: %s", text);
    free(text);
    cJSON_Delete(j);
    /* Still alive, and the API says why it cannot answer. */
    cJSON_Delete(get_json(run.port, "/healthz", NULL, 200));
    cJSON_Delete(get_json(run.port, "/api/v1/content/post-a", NULL, 503));
    teardown(&run, 0);
}
