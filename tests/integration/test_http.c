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
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "connectors/http_server.h"
#include "metrics/response.h"
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

/* ---- counters (docs/redis-keys.md): one hash per entity, read through the library ---- */

#define SHARDS 4 /* smm:meta shards of the hand-seeded tests */

/* Loads the Function library smm from the source tree, as the processor does on connect. */
static void lib_load(redisContext *c)
{
    size_t len;
    char *src = h_read_file(SMM_SOURCE_DIR "/connectors/lua/smm_lib.lua", &len);
    redisReply *r = redisCommand(c, "FUNCTION LOAD REPLACE %b", src, len);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "FUNCTION LOAD: %s", r ? r->str : c->errstr);
    freeReplyObject(r);
    free(src);
}

/* Adds packed counters ("name=value,...") into bucket field `field` (t, m<minute>,
 * h<hour>) of entity ent's hash smm:{N}:<ent>, N = SHA-1(ent) mod SHARDS, merging them
 * into what the field holds, as the state script does. */
static void seed_field(redisContext *c, const char *ent, const char *field, const char *packed)
{
    static const char *const script =
        "redis.call('HSET', 'smm:meta', 'shards', ARGV[2]) "
        "local n = tonumber(redis.sha1hex(ARGV[1]):sub(1, 8), 16) % tonumber(ARGV[2]) "
        "local key = 'smm:{' .. n .. '}:' .. ARGV[1] "
        "local acc, order = {}, {} "
        "local function add(s) for k, v in string.gmatch(s, '([^,=]+)=(-?%d+)') do "
        "  if not acc[k] then order[#order + 1] = k; acc[k] = 0 end "
        "  acc[k] = acc[k] + tonumber(v) end end "
        "add(redis.call('HGET', key, ARGV[3]) or '') add(ARGV[4]) "
        "local out = {} "
        "for _, k in ipairs(order) do out[#out + 1] = k .. '=' .. string.format('%d', acc[k]) end "
        "redis.call('HSET', key, ARGV[3], table.concat(out, ','))";
    redisReply *r = redisCommand(c, "EVAL %s 0 %b %d %s %s", script, ent, strlen(ent), SHARDS,
                                 field, packed);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "seed %s %s: %s", ent, field,
              r ? r->str : c->errstr);
    freeReplyObject(r);
}

/* Counters of events in `minute`: its minute and hour buckets (the lifetime t is seeded on
 * its own, so a test can give it other figures). */
static void seed_at(redisContext *c, const char *ent, int64_t minute, const char *packed)
{
    char f[32];
    snprintf(f, sizeof(f), "m%lld", (long long)minute);
    seed_field(c, ent, f, packed);
    snprintf(f, sizeof(f), "h%lld", (long long)(minute / 60));
    seed_field(c, ent, f, packed);
}

/* Metric `metric` of FCALL smm_get 0 smm: <ent> <window>; NAN when absent. */
static double lib_get(redisContext *c, const char *ent, const char *window, const char *metric)
{
    redisReply *r = redisCommand(c, "FCALL smm_get 0 smm: %b %s", ent, strlen(ent), window);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY, "smm_get %s %s: %s", ent, window,
              r && r->str ? r->str : "no array");
    double v = NAN;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (strcmp(r->element[i]->str, metric) == 0) {
            v = strtod(r->element[i + 1]->str, NULL);
        }
    }
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
    char enc[512], path[700], ent[600];
    url_encode(id, enc, sizeof(enc));
    snprintf(path, sizeof(path), "/api/v1/%s/%s", kind == 'c' ? "content" : "account", enc);
    cJSON *j = get_json(run->port, path, token, 200);
    const cJSON *idv = cJSON_GetObjectItemCaseSensitive(j, kind == 'c' ? "content_id"
                                                                       : "account_id");
    cr_assert(cJSON_IsString(idv) && !strcmp(idv->valuestring, id), "%s: id echoed wrong", path);
    const cJSON *life = cJSON_GetObjectItemCaseSensitive(j, "lifetime");
    snprintf(ent, sizeof(ent), "%c:%s", kind, id);
    double redis_impr = lib_get(run->c, ent, "total", "impression");
    double redis_eng = engagement ? lib_get(run->c, ent, "total", "engagement") : 0;
    cr_assert_eq(num(life, "impression"), redis_impr, "%s impression: API %g, Redis %g", path,
                 num(life, "impression"), redis_impr);
    cr_assert_eq(redis_impr, impressions, "%s impression: Redis %g, produced %d", path,
                 redis_impr, impressions);
    if (engagement) {
        cr_assert_eq(num(life, "engagement"), redis_eng, "%s engagement vs Redis", path);
        cr_assert_eq(redis_eng, engagement, "%s engagement: Redis %g, produced %d", path,
                     redis_eng, engagement);
        cr_assert_float_eq(num(life, "er_impr"), lib_get(run->c, ent, "total", "er_impr"),
                           1e-9);
        cr_assert_float_eq(num(life, "er_impr"), round(engagement * 1e6 / impressions) / 1e4,
                           1e-9);
    }
    /* Windows: everything is at most 2 minutes old, so the 5-minute window has it all. */
    const cJSON *w5 = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, "windows"), "5m");
    cr_assert_not_null(w5, "%s: no 5m window", path);
    cr_assert_eq(num(w5, "impression"), lib_get(run->c, ent, "5m", "impression"));
    cr_assert_eq(num(w5, "impression"), impressions);
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
    /* Open waits as the state script keeps them (CONTRACT-5): /metrics sums them. */
    redisReply *ro = redisCommand(run.c, "HSET smm:rt:open acct-h1 3 acct-h2 4");
    cr_assert(ro && ro->type == REDIS_REPLY_INTEGER);
    freeReplyObject(ro);

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
    cr_assert_eq(prom_parse(metrics, "smm_open_threads"), 7);
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
    r = redisCommand(run.c, "FCALL_RO smm_top 0 smm: 5m 1");
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 2, "smm_top: %s",
              r->str ? r->str : "not one post");
    cr_assert_str_eq(r->element[0]->str,
                     cJSON_GetObjectItem(cJSON_GetArrayItem(items, 0), "content_id")->valuestring);
    cr_assert_eq(atol(r->element[1]->str), best);
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
    r = redisCommand(run.c, "HSET smm:v:post-a state rising spm_5m 14.5 predicted_final %s",
                     "");
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
    /* A supercritical cascade's prediction is stored empty: null, not "" or "inf". */
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(viral, "predicted_final")));
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
    /* /healthz carries the loop's heartbeat: it goes round at least once a tick (1 s). */
    for (int i = 0; i < 5; i++) {
        j = get_json(run.port, "/healthz", NULL, 200);
        double age = num(j, "heartbeat_age_ms");
        cr_assert(age >= 0 && age < 2500, "heartbeat %.0f ms old", age);
        cr_assert_eq(num(j, "max_age_ms"), 60000); /* http.health_max_age_ms default */
        cJSON_Delete(j);
        h_sleep_ms(300);
    }
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

/* ---- insight routes, on a server started in this process ----
 *
 * /api/v1/response, sov, sources, segments, goals, customers read counters the state script
 * writes (CONTRACT-5); here the hashes are seeded by hand, following the contract's layout,
 * and the server gets its competitor sets and goal ids directly in its options (the
 * processor fills them from its config). Every figure below was worked out by hand. */

static void rcmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "%s: %s", fmt, r ? r->str : c->errstr);
    freeReplyObject(r);
}

static const cJSON *item(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    cr_assert_not_null(v, "no %s", name);
    return v;
}

static void is_null(const cJSON *o, const char *name)
{
    cr_assert(cJSON_IsNull(item(o, name)), "%s is not null", name);
}

static void num_eq(const cJSON *o, const char *name, double want)
{
    double got = num(o, name);
    cr_assert(fabs(got - want) <= 1e-9 * fmax(1.0, fabs(want)), "%s: got %.17g, want %.17g",
              name, got, want);
}

static void str_is(const cJSON *o, const char *name, const char *want)
{
    const cJSON *v = item(o, name);
    cr_assert(cJSON_IsString(v) && strcmp(v->valuestring, want) == 0, "%s is not \"%s\"", name,
              want);
}

/* Element i of array `name`, which must have n elements. */
static const cJSON *nth(const cJSON *o, const char *name, int n, int i)
{
    const cJSON *a = item(o, name);
    cr_assert(cJSON_IsArray(a) && cJSON_GetArraySize(a) == n, "%s: %d elements, want %d", name,
              cJSON_GetArraySize(a), n);
    return cJSON_GetArrayItem(a, i);
}

/* {n, mean_ms, p50_ms, p90_ms, p99_ms}; n = 0: the figures are null. */
static void frt_is(const cJSON *frt, const char *which, int n, double mean, double p50,
                   double p90, double p99)
{
    const cJSON *o = item(frt, which);
    num_eq(o, "n", n);
    if (n == 0) {
        is_null(o, "mean_ms");
        is_null(o, "p50_ms");
        is_null(o, "p90_ms");
        is_null(o, "p99_ms");
        return;
    }
    num_eq(o, "mean_ms", mean);
    num_eq(o, "p50_ms", p50);
    num_eq(o, "p90_ms", p90);
    num_eq(o, "p99_ms", p99);
}

static char *test_metrics_doc(void *opaque, int64_t open)
{
    (void)opaque;
    char *s = malloc(96);
    snprintf(s, 96, "# TYPE smm_open_threads gauge\nsmm_open_threads %lld\n", (long long)open);
    return s;
}

/* Share fields of `key` over the brands add up to 100 within 0.01. */
static void shares_sum_100(const cJSON *j, const char *key)
{
    double sum = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, item(j, "brands"))
    {
        sum += num(b, key);
    }
    cr_assert(fabs(sum - 100.0) <= 0.01 + 1e-9, "%s adds up to %.6f", key, sum);
}

Test(http, insight_routes, .timeout = 120)
{
    struct h_redis redis;
    h_redis_start(&redis, 0);
    redisContext *c = h_redis_connect(&redis);

    /* -- seed: response times (account "acct r/ü": an id that needs encoding) --
     * Lifetime: 12 messages, 8 waits started, 6 answered; all-hours FRT of the 6 answered:
     * 30 s, 45 s, 2 min, 5 min, 10 min, 3 h -> buckets 263, 274, 299, 322, 340, 413 (sum
     * 11,895,000 ms); business-hours FRT: 0, 0 (after hours), 30 s, 45 s, 2 min, 1 h ->
     * buckets 0, 0, 263, 274, 299, 385 (sum 3,795,000 ms). Last hour: 3 messages, 3 waits,
     * 1 answered after 45 s (business 45 s). 2 waits open now. Last 24 h (account "night"):
     * 2 waits answered after 2 min and 5 min, both at night: business-hours FRT 0, 0. */
    lib_load(c);
    /* Window data lands in minute now - 10 (in 1h and 24h, not in 5m), now - 120 (in 24h
     * only) or now - 1 (in every window); lifetime figures go to t on their own. */
    int64_t now_min = (int64_t)time(NULL) / 60;
    const char *ra = "a:acct r/\xc3\xbc";
    char packed[1024];
    int pl = snprintf(packed, sizeof(packed),
                      "message=12,threads=8,answered=6,frt_ms=11895000,frtb_ms=3795000,"
                      "frtb_0=2,frtb_263=1,frtb_274=1,frtb_299=1,frtb_385=1,frt_601=4");
    static const int all_b[] = {263, 274, 299, 322, 340, 413};
    for (int i = 0; i < 6; i++) {
        pl += snprintf(packed + pl, sizeof(packed) - (size_t)pl, ",frt_%d=1", all_b[i]);
    }
    seed_field(c, ra, "t", packed);
    seed_at(c, ra, now_min - 10, "message=3,threads=3,answered=1,frt_ms=45000,frtb_ms=45000,"
                                 "frt_274=1,frtb_274=1");
    rcmd(c, "HSET smm:rt:open %s 2 acct-x 5", ra + 2);
    seed_at(c, "a:night", now_min - 120, "threads=2,answered=2,frt_ms=420000,frt_299=1,"
                                         "frt_322=1,frtb_0=2");
    /* 3 days ago (in 7d, not in 24h): one more answered thread of "night" */
    seed_at(c, "a:night", now_min - 3 * 1440, "threads=1,answered=1,frt_ms=60000,frt_100=1");
    /* other accounts' counters and out-of-range buckets (frt_601 above) do not leak in */
    seed_field(c, "a:acct-x", "t", "frt_10=7,threads=9");

    /* -- seed: share of voice. Set "cola" = brand-a, brand-b, brand-c (lifetime):
     * mentions 1/1/1 of 3, reach 1000/3000/2000 of 6000, engagement 50/0/0 of 50.
     * Last hour: brand-b 2 mentions of 2, nothing else. Set "six": six brands with one
     * mention each. Set "quiet": nothing at all. */
    seed_field(c, "v:cola|brand-a", "t", "mention=1,mention_reach=1000,mention_engagement=50");
    seed_field(c, "v:cola|brand-b", "t", "mention=1,mention_reach=3000");
    seed_field(c, "v:cola|brand-c", "t", "mention=1,mention_reach=2000");
    seed_field(c, "v:cola", "t", "mention=3,mention_reach=6000,mention_engagement=50");
    seed_at(c, "v:cola|brand-b", now_min - 10, "mention=2");
    seed_at(c, "v:cola", now_min - 10, "mention=2");
    seed_at(c, "v:cola|brand-c", now_min - 2 * 1440, "mention=6"); /* 7d, not 24h */
    seed_at(c, "v:cola", now_min - 2 * 1440, "mention=6");
    for (int i = 0; i < 6; i++) {
        char ent[32];
        snprintf(ent, sizeof(ent), "v:six|s%d", i);
        seed_field(c, ent, "t", "mention=1");
    }
    seed_field(c, "v:six", "t", "mention=6");

    /* -- seed: sources of acct-s (admitted: ads, newsletter; then other). Lifetime:
     * ads: 40 clicks of 1000 impressions, 5 referrals, 4 conversions worth 123.45, 1
     * indirect worth 2.50; newsletter: 3 clicks, no impression, 1 conversion worth 9.99;
     * other: 7 impressions. Last 5 minutes: ads 2 clicks of 8 impressions. */
    rcmd(c, "SADD smm:seg:acct-s:source ads newsletter other");
    seed_field(c, "s:acct-s|ads", "t", "click=40,referral=5,conversion=4,value_cents=12345,"
                                       "impression=1000,indirect_conversions=1,"
                                       "indirect_value_cents=250");
    seed_field(c, "s:acct-s|newsletter", "t", "click=3,conversion=1,value_cents=999");
    seed_field(c, "s:acct-s|other", "t", "impression=7");
    seed_at(c, "s:acct-s|ads", now_min - 1, "click=2,impression=8");
    seed_at(c, "s:acct-s|ads", now_min - 3 * 1440, "click=5,impression=12"); /* in 7d only */

    /* -- seed: segments of acct-s. Regions eu, us (+ other). Lifetime: eu engagement 30
     * of 600 impressions, 2 conversions worth 50.00, 45 users reached; us engagement 1 of
     * 3 impressions, 3 users. Segment vip: engagement 7 of 70 impressions, 40 users
     * lifetime; the same counters in the last 24 h, where a segment has no reach (its
     * sketch is lifetime only). */
    rcmd(c, "SADD smm:seg:acct-s:region us eu");
    rcmd(c, "SADD smm:seg:acct-s:segment vip");
    seed_field(c, "g:acct-s|region=eu", "t",
               "engagement=30,impression=600,conversion=2,value_cents=5000");
    seed_field(c, "g:acct-s|region=us", "t", "engagement=1,impression=3");
    seed_field(c, "g:acct-s|segment=vip", "t", "engagement=7,impression=70");
    seed_at(c, "g:acct-s|segment=vip", now_min - 120, "engagement=7,impression=70");
    seed_at(c, "g:acct-s|segment=vip", now_min - 4 * 1440, "engagement=3,impression=50");
    static const struct {
        const char *key;
        int users;
    } sketches[] = {{"smm:g:acct-s|region=eu:reach", 45},
                    {"smm:g:acct-s|region=us:reach", 3},
                    {"smm:g:acct-s|segment=vip:reach", 40}};
    long long seg_reach[3];
    for (int k = 0; k < 3; k++) {
        for (int u = 0; u < sketches[k].users; u++) {
            rcmd(c, "PFADD %s user-%d", sketches[k].key, u);
        }
        redisReply *pr = redisCommand(c, "PFCOUNT %s", sketches[k].key);
        seg_reach[k] = pr->integer;
        freeReplyObject(pr);
    }

    /* -- seed: goals g1 (evaluated) and g2 (not yet) -- */
    rcmd(c, "HSET smm:goal:g1 account acct-s metric conversion kind increase start_day 20400 "
            "end_day 20430 baseline 10 current 8 target 12 expected 6 progress_pct 66.6667 "
            "on_track 1 reached 0 updated_ms 1764140000123");

    /* -- seed: customers of acct-s: 25 direct (u-00 .. u-24, (i + 1) x 100 + 5 cents),
     * 1 indirect (r-1, 250 cents) -- */
    for (int i = 0; i < 25; i++) {
        rcmd(c, "ZADD smm:cv:direct:acct-s %d u-%02d", (i + 1) * 100 + 5, i);
    }
    rcmd(c, "ZADD smm:cv:indirect:acct-s 250 r-1");

    /* -- the server -- */
    static const char *const windows[] = {"5m", "1h", "24h"};
    static const char *const metrics[] = {"impression"};
    static const char *const cola[] = {"brand-a", "brand-b", "brand-c"};
    static const char *const six[] = {"s0", "s1", "s2", "s3", "s4", "s5"};
    static const char *const quiet[] = {"q1", "q2"};
    const struct smm_http_sov_set sets[] = {{"cola", cola, 3}, {"six", six, 6},
                                            {"quiet", quiet, 2}};
    static const char *const goals[] = {"g1", "g2"};
    struct smm_http_opts o = {
        .address = "127.0.0.1", .token = TOKEN, .prefix = "smm:", .redis_host = "127.0.0.1",
        .redis_port = redis.port, .redis_timeout_ms = 1000, .windows = windows, .n_windows = 3,
        .metrics = metrics, .n_metrics = 1, .sov_sets = sets, .n_sov_sets = 3,
        .goal_ids = goals, .n_goals = 2, .ops = {.metrics = test_metrics_doc},
    };
    char err[256];
    struct smm_http_server *srv = smm_http_server_start(&o, err, sizeof(err));
    cr_assert_not_null(srv, "smm_http_server_start: %s", err);
    int port = smm_http_server_port(srv);
    const char *tok = TOKEN;

    /* -- /api/v1/sets: the configured competitor sets, in order -- */
    cJSON *sj = get_json(port, "/api/v1/sets", tok, 200);
    const cJSON *s0 = nth(sj, "sets", 3, 0);
    str_is(s0, "set", "cola");
    cr_assert_str_eq(nth(s0, "brands", 3, 2)->valuestring, "brand-c");
    str_is(nth(sj, "sets", 3, 2), "set", "quiet");
    cJSON_Delete(sj);

    /* -- /api/v1/response -- */
    const char *racct = "acct%20r%2F%C3%BC";
    char path[512];
    snprintf(path, sizeof(path), "/api/v1/response?account=%s", racct);
    cJSON *j = get_json(port, path, tok, 200);
    str_is(j, "account", "acct r/\xc3\xbc");
    str_is(j, "window", "total");
    num_eq(j, "messages", 12);
    num_eq(j, "threads", 8);
    num_eq(j, "answered", 6);
    num_eq(j, "response_rate", 75.0); /* 6 / 8 */
    num_eq(j, "open_threads", 2);
    /* ranks: p50 ceil(3) = 3rd, p90 ceil(5.4) = 6th, p99 ceil(5.94) = 6th;
     * representatives 2 x 1.04^b / 2.04, to 0.1 ms: b 299 -> 121441.823..., 413 ->
     * 10621086.813..., 263 -> 29591.573..., 385 -> 3541893.172..., 274 -> 45554.868... */
    const cJSON *frt = item(j, "frt");
    frt_is(frt, "all", 6, 1982500, 121441.8, 10621086.8, 10621086.8);
    /* Business hours: the 2 waits with no business time are not replies in business
     * hours; the other 4 are 30 s, 45 s, 2 min, 1 h: mean 3,795,000 / 4, p50 the 2nd,
     * p90 and p99 the 4th. */
    frt_is(frt, "business", 4, 948750, 45554.9, 3541893.2, 3541893.2);
    num_eq(item(frt, "business"), "outside_hours", 2);
    cJSON_Delete(j);
    /* Every reply at night: no replies in business hours, not "0 ms". */
    j = get_json(port, "/api/v1/response?account=night&window=24h", tok, 200);
    num_eq(j, "answered", 2);
    frt = item(j, "frt");
    frt_is(frt, "all", 2, 210000, 121441.8, 299319.5, 299319.5);
    frt_is(frt, "business", 0, 0, 0, 0, 0);
    num_eq(item(frt, "business"), "outside_hours", 2);
    cJSON_Delete(j);
    /* 7 d: the hour buckets of the last 7 days (168 hours), not lifetime: 3 threads */
    j = get_json(port, "/api/v1/response?account=night&window=7d", tok, 200);
    num_eq(j, "threads", 3);
    num_eq(j, "answered", 3);
    num_eq(item(item(j, "frt"), "all"), "n", 3);
    cJSON_Delete(j);
    snprintf(path, sizeof(path), "/api/v1/response?account=%s&window=1h", racct);
    j = get_json(port, path, tok, 200);
    str_is(j, "window", "1h");
    num_eq(j, "messages", 3);
    num_eq(j, "response_rate", 33.3333); /* 1 / 3, 4 decimals */
    frt = item(j, "frt");
    frt_is(frt, "all", 1, 45000, 45554.9, 45554.9, 45554.9);
    frt_is(frt, "business", 1, 45000, 45554.9, 45554.9, 45554.9);
    num_eq(j, "open_threads", 2); /* not windowed: open now */
    cJSON_Delete(j);
    snprintf(path, sizeof(path), "/api/v1/response?account=%s&window=5m", racct);
    j = get_json(port, path, tok, 200);
    num_eq(j, "messages", 0);
    num_eq(j, "threads", 0);
    is_null(j, "response_rate");
    frt_is(item(j, "frt"), "all", 0, 0, 0, 0, 0);
    frt_is(item(j, "frt"), "business", 0, 0, 0, 0, 0);
    cJSON_Delete(j);
    j = get_json(port, "/api/v1/response?account=nobody", tok, 200);
    num_eq(j, "threads", 0);
    num_eq(j, "open_threads", 0);
    is_null(j, "response_rate");
    cJSON_Delete(j);

    /* -- /api/v1/sov -- */
    j = get_json(port, "/api/v1/sov?set=cola", tok, 200);
    str_is(j, "set", "cola");
    str_is(j, "window", "total");
    /* mentions 1/3 each: 33.333.. -> hundredths 3333 x 3 = 9999, the one left goes to the
     * largest remainder (a tie: the first brand); reach 1000/6000 = 16.666.., 50, 33.333..
     * -> 1666 + 5000 + 3333, the one left to brand-a (remainder .67) */
    static const struct {
        const char *brand;
        double m, r, e, sm, sr, se;
    } want[] = {{"brand-a", 1, 1000, 50, 33.34, 16.67, 100},
                {"brand-b", 1, 3000, 0, 33.33, 50, 0},
                {"brand-c", 1, 2000, 0, 33.33, 33.33, 0}};
    for (int i = 0; i < 3; i++) {
        const cJSON *b = nth(j, "brands", 3, i);
        str_is(b, "brand", want[i].brand);
        num_eq(b, "mentions", want[i].m);
        num_eq(b, "reach", want[i].r);
        num_eq(b, "engagement", want[i].e);
        num_eq(b, "share_mentions", want[i].sm);
        num_eq(b, "share_reach", want[i].sr);
        num_eq(b, "share_engagement", want[i].se);
    }
    num_eq(item(j, "totals"), "mentions", 3);
    num_eq(item(j, "totals"), "reach", 6000);
    num_eq(item(j, "totals"), "engagement", 50);
    shares_sum_100(j, "share_mentions");
    shares_sum_100(j, "share_reach");
    shares_sum_100(j, "share_engagement");
    cJSON_Delete(j);
    /* last hour: brand-b has all the mentions; no reach at all -> every reach share 0 */
    j = get_json(port, "/api/v1/sov?set=cola&window=1h", tok, 200);
    num_eq(nth(j, "brands", 3, 0), "share_mentions", 0);
    num_eq(nth(j, "brands", 3, 1), "share_mentions", 100);
    num_eq(nth(j, "brands", 3, 1), "mentions", 2);
    num_eq(nth(j, "brands", 3, 2), "share_mentions", 0);
    for (int i = 0; i < 3; i++) {
        num_eq(nth(j, "brands", 3, i), "share_reach", 0);
    }
    num_eq(item(j, "totals"), "mentions", 2);
    num_eq(item(j, "totals"), "reach", 0);
    cJSON_Delete(j);
    /* six brands, one mention each: 16.666.. rounded alone would add up to 100.02; by
     * largest remainder the first four get 16.67 and the last two 16.66 */
    j = get_json(port, "/api/v1/sov?set=six", tok, 200);
    for (int i = 0; i < 6; i++) {
        num_eq(nth(j, "brands", 6, i), "share_mentions", i < 4 ? 16.67 : 16.66);
    }
    shares_sum_100(j, "share_mentions");
    cJSON_Delete(j);
    /* 7 d: brand-b's 2 of the last hour and brand-c's 6 of two days ago */
    j = get_json(port, "/api/v1/sov?set=cola&window=7d", tok, 200);
    num_eq(nth(j, "brands", 3, 1), "mentions", 2);
    num_eq(nth(j, "brands", 3, 2), "mentions", 6);
    num_eq(nth(j, "brands", 3, 2), "share_mentions", 75);
    num_eq(item(j, "totals"), "mentions", 8);
    cJSON_Delete(j);
    j = get_json(port, "/api/v1/sov?set=quiet&window=24h", tok, 200);
    num_eq(nth(j, "brands", 2, 1), "mentions", 0);
    num_eq(nth(j, "brands", 2, 1), "share_mentions", 0);
    num_eq(item(j, "totals"), "mentions", 0);
    cJSON_Delete(j);

    /* -- /api/v1/sources -- */
    j = get_json(port, "/api/v1/sources?account=acct-s", tok, 200);
    str_is(j, "account", "acct-s");
    const cJSON *s = nth(j, "sources", 3, 0);
    str_is(s, "source", "ads");
    num_eq(s, "clicks", 40);
    num_eq(s, "referrals", 5);
    num_eq(s, "conversions", 4);
    num_eq(s, "value", 123.45);
    num_eq(s, "impressions", 1000);
    num_eq(s, "ctr", 4.0);              /* 40 / 1000 */
    num_eq(s, "conversion_rate", 10.0); /* 4 / 40 */
    num_eq(s, "indirect_conversions", 1);
    num_eq(s, "indirect_value", 2.5);
    s = nth(j, "sources", 3, 1);
    str_is(s, "source", "newsletter");
    num_eq(s, "clicks", 3);
    num_eq(s, "value", 9.99);
    is_null(s, "ctr"); /* no impression */
    num_eq(s, "conversion_rate", 33.3333); /* 1 / 3 */
    num_eq(s, "indirect_value", 0);
    s = nth(j, "sources", 3, 2);
    str_is(s, "source", "other");
    num_eq(s, "impressions", 7);
    num_eq(s, "ctr", 0);
    is_null(s, "conversion_rate");
    cJSON_Delete(j);
    j = get_json(port, "/api/v1/sources?account=acct-s&window=5m", tok, 200);
    s = nth(j, "sources", 3, 0);
    num_eq(s, "clicks", 2);
    num_eq(s, "ctr", 25.0);            /* 2 / 8 */
    num_eq(s, "conversion_rate", 0.0); /* 0 / 2 */
    is_null(nth(j, "sources", 3, 1), "ctr");
    cJSON_Delete(j);
    j = get_json(port, "/api/v1/sources?account=acct-s&window=7d", tok, 200);
    s = nth(j, "sources", 3, 0);
    str_is(s, "source", "ads");
    num_eq(s, "clicks", 7);
    num_eq(s, "impressions", 20);
    num_eq(s, "ctr", 35.0); /* 7 / 20 */
    cJSON_Delete(j);
    j = get_json(port, "/api/v1/sources?account=nobody", tok, 200);
    str_is(nth(j, "sources", 1, 0), "source", "other");
    cJSON_Delete(j);

    /* -- /api/v1/segments -- */
    j = get_json(port, "/api/v1/segments?account=acct-s&dim=region", tok, 200);
    str_is(j, "dim", "region");
    s = nth(j, "segments", 3, 0);
    str_is(s, "name", "eu");
    num_eq(s, "engagement", 30);
    num_eq(s, "impression", 600);
    num_eq(s, "conversion", 2);
    num_eq(s, "value", 50);
    num_eq(s, "reach", (double)seg_reach[0]);
    num_eq(s, "er_impr", 5.0); /* 30 / 600 */
    s = nth(j, "segments", 3, 1);
    str_is(s, "name", "us");
    num_eq(s, "er_impr", 33.3333); /* 1 / 3 */
    num_eq(s, "reach", (double)seg_reach[1]);
    s = nth(j, "segments", 3, 2);
    str_is(s, "name", "other");
    num_eq(s, "engagement", 0);
    is_null(s, "er_impr");
    cJSON_Delete(j);
    j = get_json(port, "/api/v1/segments?account=acct-s&dim=segment", tok, 200);
    str_is(nth(j, "segments", 2, 0), "name", "vip");
    num_eq(nth(j, "segments", 2, 0), "reach", (double)seg_reach[2]);
    num_eq(nth(j, "segments", 2, 0), "er_impr", 10.0); /* 7 / 70 */
    cJSON_Delete(j);
    j = get_json(port, "/api/v1/segments?account=acct-s&dim=segment&window=24h", tok, 200);
    num_eq(nth(j, "segments", 2, 0), "engagement", 7);
    num_eq(nth(j, "segments", 2, 0), "er_impr", 10.0);
    num_eq(nth(j, "segments", 2, 0), "reach", 0);
    cJSON_Delete(j);
    j = get_json(port, "/api/v1/segments?account=acct-s&dim=segment&window=7d", tok, 200);
    num_eq(nth(j, "segments", 2, 0), "engagement", 10);
    num_eq(nth(j, "segments", 2, 0), "impression", 120);
    cJSON_Delete(j);
    j = get_json(port, "/api/v1/segments?account=acct-s&dim=segment&window=1h", tok, 200);
    num_eq(nth(j, "segments", 2, 0), "engagement", 0);
    is_null(nth(j, "segments", 2, 0), "er_impr");
    cJSON_Delete(j);

    /* -- /api/v1/goals -- */
    j = get_json(port, "/api/v1/goals", tok, 200);
    const cJSON *g = nth(j, "goals", 2, 0);
    str_is(g, "id", "g1");
    cr_assert(cJSON_IsTrue(item(g, "evaluated")));
    str_is(g, "account", "acct-s");
    str_is(g, "metric", "conversion");
    str_is(g, "kind", "increase");
    num_eq(g, "start_day", 20400);
    num_eq(g, "end_day", 20430);
    num_eq(g, "baseline", 10);
    num_eq(g, "current", 8);
    num_eq(g, "target", 12);
    num_eq(g, "expected", 6);
    num_eq(g, "progress_pct", 66.6667);
    cr_assert(cJSON_IsTrue(item(g, "on_track")));
    cr_assert(cJSON_IsFalse(item(g, "reached")));
    num_eq(g, "updated_ms", 1764140000123.0);
    g = nth(j, "goals", 2, 1);
    str_is(g, "id", "g2");
    cr_assert(cJSON_IsFalse(item(g, "evaluated")));
    cr_assert_eq(cJSON_GetArraySize(g), 2);
    cJSON_Delete(j);

    /* -- /api/v1/customers -- */
    j = get_json(port, "/api/v1/customers?account=acct-s", tok, 200);
    for (int i = 0; i < 20; i++) {
        const cJSON *cu = nth(j, "direct", 20, i);
        char id[16];
        snprintf(id, sizeof(id), "u-%02d", 24 - i);
        str_is(cu, "user_id", id);
        num_eq(cu, "value", ((25 - i) * 100 + 5) / 100.0); /* 25.05, 24.05, ... */
    }
    str_is(nth(j, "indirect", 1, 0), "user_id", "r-1");
    num_eq(nth(j, "indirect", 1, 0), "value", 2.5);
    cJSON_Delete(j);
    j = get_json(port, "/api/v1/customers?account=acct-s&limit=2", tok, 200);
    num_eq(nth(j, "direct", 2, 1), "value", 24.05);
    cJSON_Delete(j);
    j = get_json(port, "/api/v1/customers?account=nobody", tok, 200);
    nth(j, "direct", 0, 0);
    cJSON_Delete(j);

    /* -- /metrics: smm_open_threads is the sum of rt:open (2 + 5) -- */
    struct resp m = http_get(port, "/metrics", tok);
    cr_assert_eq(m.status, 200);
    cr_assert(strstr(m.body, "\nsmm_open_threads 7\n") != NULL, "%s", m.body);
    resp_free(&m);

    /* -- errors: 400 on bad or missing parameters, 404 on an unknown set, 401 without the
     * token -- */
    static const char *const bad[] = {
        "/api/v1/response", "/api/v1/response?account=", "/api/v1/response?account=%zz",
        "/api/v1/response?account=acct-s&window=7m", "/api/v1/response?account=acct-s&window=",
        "/api/v1/sov", "/api/v1/sov?set=cola&window=2h", "/api/v1/sources",
        "/api/v1/sources?account=acct-s&window=TOTAL", "/api/v1/segments?account=acct-s",
        "/api/v1/segments?account=acct-s&dim=city", "/api/v1/segments?dim=region",
        "/api/v1/segments?account=acct-s&dim=region&window=1d", "/api/v1/customers",
        "/api/v1/customers?account=acct-s&limit=0", "/api/v1/customers?account=a%00b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = get_json(port, bad[i], tok, 400);
        cr_assert(cJSON_IsString(cJSON_GetObjectItem(j, "error")), "%s", bad[i]);
        cJSON_Delete(j);
    }
    cJSON_Delete(get_json(port, "/api/v1/sov?set=pepsi", tok, 404));
    static const char *const closed[] = {
        "/api/v1/response?account=acct-s", "/api/v1/sov?set=cola",
        "/api/v1/sources?account=acct-s", "/api/v1/segments?account=acct-s&dim=region",
        "/api/v1/goals", "/api/v1/customers?account=acct-s"};
    for (size_t i = 0; i < sizeof(closed) / sizeof(closed[0]); i++) {
        cJSON_Delete(get_json(port, closed[i], NULL, 401));
        cJSON_Delete(get_json(port, closed[i], "wrong-token", 401));
        cJSON_Delete(get_json(port, closed[i], tok, 200));
    }

    /* -- the state script's bucket index (Lua in this redis-server) equals
     * smm_frt_bucket() at both sides of every boundary up to 192 days, and 2..3000 ms -- */
    static char *args[3 + 2 * 600 + 3000];
    int na = 0;
    args[na++] = "EVAL";
    args[na++] = "local o = {} for i, v in ipairs(ARGV) do "
                 "o[i] = math.ceil(math.log(tonumber(v)) / math.log(1.04)) end return o";
    args[na++] = "0";
    int64_t ms_list[2 * 600 + 3000];
    int nm = 0;
    for (int b = 84; b <= 600; b++) {
        int64_t below = (int64_t)floor(pow(1.04, b));
        ms_list[nm++] = below;
        ms_list[nm++] = below + 1;
    }
    for (int64_t ms = 2; ms < 3000; ms++) {
        ms_list[nm++] = ms;
    }
    for (int i = 0; i < nm; i++) {
        char tmp[32];
        snprintf(tmp, sizeof(tmp), "%lld", (long long)ms_list[i]);
        args[na++] = strdup(tmp);
    }
    redisReply *lr = redisCommandArgv(c, na, (const char **)args, NULL);
    cr_assert(lr && lr->type == REDIS_REPLY_ARRAY && lr->elements == (size_t)nm, "EVAL: %s",
              lr && lr->str ? lr->str : "bad reply");
    for (int i = 0; i < nm; i++) {
        cr_assert_eq(lr->element[i]->integer, smm_frt_bucket(ms_list[i]),
                     "%lld ms: Lua bucket %lld, C %d", (long long)ms_list[i],
                     lr->element[i]->integer, smm_frt_bucket(ms_list[i]));
        free(args[3 + i]);
    }
    freeReplyObject(lr);

    smm_http_server_stop(srv);
    redisFree(c);
    h_redis_stop(&redis);
}

/* ---- slow clients, the header deadline, /healthz's heartbeat, tokens, Host names ----
 *
 * On servers started in this process. Requests are written raw, from a chosen loopback
 * address (Linux routes all of 127.0.0.0/8 to lo), so one test can be several clients. */

/* A TCP connection from src (a 127.x address) to 127.0.0.1:port, or -1. */
static int dial_from(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in s = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &s.sin_addr);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&s, sizeof(s)) != 0 ||
        connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends req from src and reads the answer for at most timeout_ms: until EOF, or only until
 * the end of the headers when head_only (an event stream never ends). The status, or -1
 * when the connection was refused or closed without a status line, or time ran out. What
 * was read goes to out (NUL-terminated). */
static int exchange(int port, const char *src, const char *req, int head_only, int timeout_ms,
                    char *out, size_t out_size)
{
    out[0] = '\0';
    int fd = dial_from(src, port);
    if (fd < 0) {
        return -1;
    }
    size_t len = 0, n = strlen(req);
    if (write(fd, req, n) != (ssize_t)n) {
        close(fd);
        return -1;
    }
    int64_t deadline = h_now_ms() + timeout_ms;
    int eof = 0;
    while (!eof && !(head_only && strstr(out, "\r\n\r\n"))) {
        int64_t left = deadline - h_now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0) {
            close(fd);
            return -1;
        }
        if (poll(&p, 1, (int)left) <= 0) {
            continue;
        }
        ssize_t r = len + 1 < out_size ? read(fd, out + len, out_size - len - 1) : 0;
        if (r <= 0) {
            eof = 1;
            break;
        }
        len += (size_t)r;
        out[len] = '\0';
    }
    close(fd);
    int status = -1;
    if (sscanf(out, "HTTP/1.%*d %d", &status) != 1) {
        return -1;
    }
    return status;
}

static struct smm_http_server *start_test_server(struct smm_http_opts *o, int redis_port);

/* ---- the marketing view: /api/v1/accounts, /kpis, /series ----
 * Minute and day buckets are seeded by hand relative to the wall clock (the routes read
 * the clock); every expected figure is summed here from the same formulas that wrote
 * them, never read back from Redis. */

#define SEED_MINUTES 131 /* minute buckets now - 0 .. now - 130 */
#define SEED_DAYS 15     /* day buckets today - 0 .. today - 14 */

static double m_imp(int m) { return 10 + m; }
static double m_eng(int m) { return m % 7; }
static double m_share(int m) { return m % 3; }
static double m_click(int m) { return m % 2; }
static double d_imp(int d) { return 100 + d; }
static double d_eng(int d) { return 3 * d; }

/* Sum of f over minutes-ago a .. b (inclusive) that were seeded. */
static double msum(double (*f)(int), int a, int b)
{
    double s = 0;
    for (int m = a; m <= b && m < SEED_MINUTES; m++) {
        s += f(m);
    }
    return s;
}

static double dsum(double (*f)(int), int a, int b)
{
    double s = 0;
    for (int d = a; d <= b && d < SEED_DAYS; d++) {
        s += f(d);
    }
    return s;
}

/* The KPI tile `name` of j: value and previous (NAN = must be null, with a reason). */
static void kpi_is(const cJSON *j, const char *name, double value, double previous)
{
    const cJSON *k = item(item(j, "kpis"), name);
    if (isnan(value)) {
        is_null(k, "value");
        cr_assert(cJSON_IsString(item(k, "reason")), "%s: null without a reason", name);
    } else {
        num_eq(k, "value", value);
    }
    if (isnan(previous)) {
        is_null(k, "previous");
        is_null(k, "change_pct");
        cr_assert(cJSON_IsString(item(k, "previous_reason")), "%s: null without a reason",
                  name);
    } else {
        num_eq(k, "previous", previous);
        if (!isnan(value) && previous != 0) {
            num_eq(k, "change_pct", round((value - previous) / previous * 1e4) / 100);
        }
    }
}

static double rate4(double num, double den)
{
    return round(num / den * 100 * 1e4) / 1e4;
}

/* Unique users of acct-k's minute sketches, minutes-ago a .. b, as Redis counts them. */
static double reach_of(redisContext *c, int64_t now_min, int a, int b)
{
    char cmd[16384];
    int o = snprintf(cmd, sizeof(cmd), "PFCOUNT");
    for (int m = a; m <= b; m++) {
        o += snprintf(cmd + o, sizeof(cmd) - (size_t)o, " smm:a:acct-k:reach:m:%lld",
                      (long long)(now_min - m));
    }
    redisReply *r = redisCommand(c, cmd);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    double v = (double)r->integer;
    freeReplyObject(r);
    return v;
}

/* PFCOUNT of acct-k's sketches <kind> (h: hours, d: days) first .. last, as Redis counts
 * them; the count must be within 2 % of exact (the distinct users the test PFADDed). */
static double reach_span(redisContext *c, char kind, int64_t first, int64_t last, double exact)
{
    char cmd[16384];
    int o = snprintf(cmd, sizeof(cmd), "PFCOUNT");
    for (int64_t b = first; b <= last; b++) {
        o += snprintf(cmd + o, sizeof(cmd) - (size_t)o, " smm:a:acct-k:reach:%c:%lld", kind,
                      (long long)b);
    }
    redisReply *r = redisCommand(c, cmd);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    double v = (double)r->integer;
    freeReplyObject(r);
    cr_assert(fabs(v - exact) <= 0.02 * exact, "%c %lld..%lld: reach %g, exact %g", kind,
              (long long)first, (long long)last, v, exact);
    return v;
}

/* Distinct users of the seeded minute sketches (u-<m>, u-all) within hour h, and those of
 * its hour sketch (the same plus HOUR_USERS of its own). */
#define HOUR_USERS 5
static double hour_users(int64_t now_min, int64_t h)
{
    double n = 0;
    for (int m = 0; m < SEED_MINUTES; m++) {
        n += (now_min - m) / 60 == h;
    }
    return n + (n > 0) + HOUR_USERS;
}

static double day_users(int d) { return 20 + d; }

Test(http, marketing_routes, .timeout = 120)
{
    struct h_redis redis;
    h_redis_start(&redis, 0);
    redisContext *c = h_redis_connect(&redis);
    /* Not within 10 s of a minute's end: the routes must see the same "now" minute (and
     * day) as the seeding. */
    while (time(NULL) % 60 >= 50) {
        h_sleep_ms(500);
    }
    int64_t now_min = (int64_t)time(NULL) / 60;
    int64_t today = now_min / 1440, now_hour = now_min / 60;
    lib_load(c);
    for (int m = 0; m < SEED_MINUTES; m++) {
        char packed[160];
        snprintf(packed, sizeof(packed), "impression=%.0f,engagement=%.0f,share=%.0f,click=%.0f",
                 m_imp(m), m_eng(m), m_share(m), m_click(m));
        seed_at(c, "a:acct-k", now_min - m, packed);
        seed_at(c, "a:other", now_min - m, "impression=1000");
        /* reached users: minute m reaches u-<m> and u-all (window reach is a union) */
        rcmd(c, "PFADD smm:a:acct-k:reach:m:%lld u-%d u-all", (long long)(now_min - m), m);
    }
    for (int d = 0; d < SEED_DAYS; d++) {
        rcmd(c, "HSET smm:d:%lld a:acct-k:impression %.0f a:acct-k:engagement %.0f "
                "a:other:engagement 999", (long long)(today - d), d_imp(d), d_eng(d));
        /* day reach sketches: day_users(d) users of that day, and u-all */
        rcmd(c, "PFADD smm:a:acct-k:reach:d:%lld u-all", (long long)(today - d));
        for (int u = 0; u < day_users(d); u++) {
            rcmd(c, "PFADD smm:a:acct-k:reach:d:%lld d%d-%d", (long long)(today - d), d, u);
        }
    }
    /* hour reach sketches of the 48 whole hours before this one, merged as the tick does:
     * the union of the hour's minute sketches plus HOUR_USERS users of its own */
    for (int64_t h = now_hour - 48; h < now_hour; h++) {
        char cmd[8192];
        int o = snprintf(cmd, sizeof(cmd), "PFMERGE smm:a:acct-k:reach:h:%lld", (long long)h);
        for (int64_t m = h * 60; m < h * 60 + 60; m++) {
            o += snprintf(cmd + o, sizeof(cmd) - (size_t)o, " smm:a:acct-k:reach:m:%lld",
                          (long long)m);
        }
        rcmd(c, cmd);
        for (int u = 0; u < HOUR_USERS; u++) {
            rcmd(c, "PFADD smm:a:acct-k:reach:h:%lld h%lld-%d", (long long)h, (long long)h, u);
        }
    }
    rcmd(c, "HSET smm:meta hour_merged %lld", (long long)(now_hour - 1));
    /* accounts: acct-z and acct-k this hour, acct-y 3 hours ago, acct-old 30 hours ago */
    rcmd(c, "SADD smm:reach_accounts:h:%lld a:acct-k a:acct-z", (long long)now_hour);
    rcmd(c, "SADD smm:reach_accounts:h:%lld a:acct-y a:acct-k", (long long)(now_hour - 3));
    rcmd(c, "SADD smm:reach_accounts:h:%lld a:acct-old", (long long)(now_hour - 30));
    seed_at(c, "a:acct-z", now_min - 200, "engagement=5000");
    seed_at(c, "a:acct-old", now_min - 30 * 60, "engagement=9000");

    static const char *const windows[] = {"5m", "1h", "24h"};
    static const char *const metrics[] = {"impression"};
    struct smm_http_opts o = {
        .windows = windows, .n_windows = 3, .metrics = metrics, .n_metrics = 1,
        .token = TOKEN, .keep_minutes = 48 * 60 + 1, .days_keep = 400,
    };
    struct smm_http_server *srv = start_test_server(&o, redis.port);
    int port = smm_http_server_port(srv);
    const char *tok = TOKEN;

    /* -- accounts: ranked by 24 h engagement; acct-old's hour is past the 25 read -- */
    cJSON *j = get_json(port, "/api/v1/accounts", tok, 200);
    num_eq(j, "total", 3);
    static const char *const order[] = {"acct-z", "acct-k", "acct-y"};
    const double eng24[] = {5000, msum(m_eng, 0, SEED_MINUTES - 1), 0};
    for (int i = 0; i < 3; i++) {
        const cJSON *a = nth(j, "accounts", 3, i);
        str_is(a, "account", order[i]);
        num_eq(a, "engagement", eng24[i]);
    }
    cJSON_Delete(j);
    j = get_json(port, "/api/v1/accounts?limit=2", tok, 200);
    str_is(nth(j, "accounts", 2, 1), "account", "acct-k");
    cJSON_Delete(j);
    /* More accounts than one smm_mget call takes (500): bulk-099, -199, .. -699 have the
     * most engagement, the last ones sorted into the second call. */
    for (int i = 0; i < 700; i++) {
        char ent[32], packed[32];
        snprintf(ent, sizeof(ent), "a:bulk-%03d", i);
        rcmd(c, "SADD smm:reach_accounts:h:%lld %s", (long long)now_hour, ent);
        if (i % 100 == 99) {
            snprintf(packed, sizeof(packed), "engagement=%d", 10000 + i);
            seed_at(c, ent, now_min - 1, packed);
        }
    }
    j = get_json(port, "/api/v1/accounts?limit=10", tok, 200);
    num_eq(j, "total", 703);
    for (int k = 0; k < 7; k++) {
        char want[32];
        snprintf(want, sizeof(want), "bulk-%03d", 699 - 100 * k);
        str_is(nth(j, "accounts", 10, k), "account", want);
        num_eq(nth(j, "accounts", 10, k), "engagement", 10000 + 699 - 100 * k);
    }
    str_is(nth(j, "accounts", 10, 7), "account", "acct-z");
    str_is(nth(j, "accounts", 10, 8), "account", "acct-k");
    str_is(nth(j, "accounts", 10, 9), "account", "acct-y"); /* 0, then by id */
    cJSON_Delete(j);

    /* -- kpis, 5 min: minutes now-4 .. now against now-9 .. now-5; reach of both from the
     * minute sketches (kept 61 minutes) -- */
    j = get_json(port, "/api/v1/kpis?account=acct-k&window=5m", tok, 200);
    str_is(j, "granularity", "minute");
    num_eq(j, "from_ms", (double)((now_min - 4) * 60000));
    num_eq(j, "to_ms", (double)((now_min + 1) * 60000));
    num_eq(j, "previous_from_ms", (double)((now_min - 9) * 60000));
    kpi_is(j, "impression", msum(m_imp, 0, 4), msum(m_imp, 5, 9));
    kpi_is(j, "engagement", msum(m_eng, 0, 4), msum(m_eng, 5, 9));
    kpi_is(j, "share", msum(m_share, 0, 4), msum(m_share, 5, 9));
    kpi_is(j, "click", msum(m_click, 0, 4), msum(m_click, 5, 9));
    kpi_is(j, "er_impr", rate4(msum(m_eng, 0, 4), msum(m_imp, 0, 4)),
           rate4(msum(m_eng, 5, 9), msum(m_imp, 5, 9)));
    double r5 = reach_of(c, now_min, 0, 4), r5p = reach_of(c, now_min, 5, 9);
    cr_assert(r5 >= 5 && r5p >= 5, "5 min reach %g, before %g", r5, r5p);
    kpi_is(j, "reach", r5, r5p);
    kpi_is(j, "er_reach", rate4(msum(m_eng, 0, 4), r5), rate4(msum(m_eng, 5, 9), r5p));
    cr_assert(cJSON_IsTrue(item(item(item(j, "kpis"), "impression"), "exact")));
    cr_assert(cJSON_IsFalse(item(item(item(j, "kpis"), "reach"), "exact")));
    cJSON_Delete(j);

    /* -- 1 h: 60 minutes each; the previous hour's minute sketches are gone, so its reach
     * is hour-granular: the whole hour before the hour the window starts in -- */
    j = get_json(port, "/api/v1/kpis?account=acct-k&window=1h", tok, 200);
    kpi_is(j, "impression", msum(m_imp, 0, 59), msum(m_imp, 60, 119));
    kpi_is(j, "engagement", msum(m_eng, 0, 59), msum(m_eng, 60, 119));
    double r60 = reach_of(c, now_min, 0, 59);
    int64_t hp = (now_min - 59) / 60 - 1;
    double r60p = reach_span(c, 'h', hp, hp, hour_users(now_min, hp));
    kpi_is(j, "reach", r60, r60p);
    kpi_is(j, "er_reach", rate4(msum(m_eng, 0, 59), r60), rate4(msum(m_eng, 60, 119), r60p));
    cJSON_Delete(j);

    /* -- 24 h: the current hour so far and the 24 whole hours before, against the 24
     * whole hours before those (hour buckets are kept 192 hours, hour sketches 48 h +
     * grace); reach of both from the hour sketches -- */
    j = get_json(port, "/api/v1/kpis?account=acct-k&window=24h", tok, 200);
    str_is(j, "granularity", "hour");
    num_eq(j, "from_ms", (double)((now_hour - 24) * 3600000));
    num_eq(j, "previous_from_ms", (double)((now_hour - 48) * 3600000));
    num_eq(j, "previous_to_ms", (double)((now_hour - 24) * 3600000));
    kpi_is(j, "impression", msum(m_imp, 0, SEED_MINUTES - 1), 0);
    kpi_is(j, "share", msum(m_share, 0, SEED_MINUTES - 1), 0);
    kpi_is(j, "er_impr",
           rate4(msum(m_eng, 0, SEED_MINUTES - 1), msum(m_imp, 0, SEED_MINUTES - 1)), NAN);
    {
        /* the current hour's minutes (u-<m>, u-all) and hours now-24 .. now-1 */
        char cmd[16384];
        int at = snprintf(cmd, sizeof(cmd), "PFCOUNT");
        for (int64_t m = now_hour * 60; m <= now_min; m++) {
            at += snprintf(cmd + at, sizeof(cmd) - (size_t)at, " smm:a:acct-k:reach:m:%lld",
                           (long long)m);
        }
        for (int64_t h = now_hour - 24; h < now_hour; h++) {
            at += snprintf(cmd + at, sizeof(cmd) - (size_t)at, " smm:a:acct-k:reach:h:%lld",
                           (long long)h);
        }
        redisReply *r = redisCommand(c, cmd);
        cr_assert(r && r->type == REDIS_REPLY_INTEGER);
        double r24 = (double)r->integer, exact = SEED_MINUTES + 1 + 24 * HOUR_USERS;
        freeReplyObject(r);
        cr_assert(fabs(r24 - exact) <= 0.02 * exact, "24 h reach %g, exact %g", r24, exact);
        double r24p = reach_span(c, 'h', now_hour - 48, now_hour - 25, 24 * HOUR_USERS);
        kpi_is(j, "reach", r24, r24p);
        kpi_is(j, "er_reach", rate4(msum(m_eng, 0, SEED_MINUTES - 1), r24), 0);
    }
    cJSON_Delete(j);

    /* -- 7 d: whole UTC days from the day buckets; reach from the day sketches of the same
     * days (today and the 6 before, against the 7 before those) -- */
    j = get_json(port, "/api/v1/kpis?account=acct-k&window=7d", tok, 200);
    str_is(j, "granularity", "day");
    num_eq(j, "from_ms", (double)((today - 6) * 86400000));
    num_eq(j, "previous_from_ms", (double)((today - 13) * 86400000));
    kpi_is(j, "impression", dsum(d_imp, 0, 6), dsum(d_imp, 7, 13));
    kpi_is(j, "engagement", dsum(d_eng, 0, 6), dsum(d_eng, 7, 13));
    double r7 = reach_span(c, 'd', today - 6, today, dsum(day_users, 0, 6) + 1);
    double r7p = reach_span(c, 'd', today - 13, today - 7, dsum(day_users, 7, 13) + 1);
    kpi_is(j, "reach", r7, r7p);
    kpi_is(j, "er_reach", rate4(dsum(d_eng, 0, 6), r7), rate4(dsum(d_eng, 7, 13), r7p));
    cJSON_Delete(j);
    /* an account Redis knows nothing about: zeros, null rates */
    j = get_json(port, "/api/v1/kpis?account=nobody&window=1h", tok, 200);
    kpi_is(j, "impression", 0, 0);
    kpi_is(j, "er_impr", NAN, NAN);
    cJSON_Delete(j);

    /* -- series: minutes, hours (60 minute buckets each), days -- */
    j = get_json(port, "/api/v1/series?account=acct-k&step=minute&points=10", tok, 200);
    num_eq(j, "start_ms", (double)((now_min - 9) * 60000));
    for (int i = 0; i < 10; i++) {
        int m = 9 - i;
        const cJSON *s = item(j, "series");
        cr_assert_eq(nth(s, "impression", 10, i)->valuedouble, m_imp(m));
        cr_assert_eq(nth(s, "share", 10, i)->valuedouble, m_share(m));
        cr_assert_eq(nth(s, "click", 10, i)->valuedouble, m_click(m));
    }
    cJSON_Delete(j);
    j = get_json(port, "/api/v1/series?account=acct-k&step=hour&points=4", tok, 200);
    num_eq(j, "step_ms", 3600000);
    for (int i = 0; i < 4; i++) {
        int64_t h = now_hour - 3 + i;
        double imp = 0, eng = 0;
        for (int m = 0; m < SEED_MINUTES; m++) {
            if ((now_min - m) / 60 == h) {
                imp += m_imp(m);
                eng += m_eng(m);
            }
        }
        const cJSON *s = item(j, "series");
        cr_assert_eq(nth(s, "impression", 4, i)->valuedouble, imp, "hour %d", i);
        cr_assert_eq(nth(s, "engagement", 4, i)->valuedouble, eng, "hour %d", i);
        const cJSON *er = nth(s, "er_impr", 4, i);
        if (imp > 0) {
            cr_assert(fabs(er->valuedouble - rate4(eng, imp)) < 1e-9);
        } else {
            cr_assert(cJSON_IsNull(er));
        }
    }
    cJSON_Delete(j);
    j = get_json(port, "/api/v1/series?account=acct-k&step=day&points=14", tok, 200);
    for (int i = 0; i < 14; i++) {
        cr_assert_eq(nth(item(j, "series"), "impression", 14, i)->valuedouble, d_imp(13 - i));
    }
    cJSON_Delete(j);

    /* -- bad parameters -- */
    cJSON_Delete(get_json(port, "/api/v1/kpis?account=acct-k&window=2h", tok, 400));
    cJSON_Delete(get_json(port, "/api/v1/kpis?window=1h", tok, 400));
    cJSON_Delete(get_json(port, "/api/v1/series?account=acct-k&step=week", tok, 400));
    cJSON_Delete(get_json(port, "/api/v1/series?account=acct-k&step=hour&points=193", tok, 400));
    cJSON_Delete(get_json(port, "/api/v1/series?account=acct-k&step=minute&points=181", tok, 400));
    cJSON_Delete(get_json(port, "/api/v1/kpis?account=acct-k&window=9d", tok, 400));
    cJSON_Delete(get_json(port, "/api/v1/accounts?limit=0", tok, 400));
    cJSON_Delete(get_json(port, "/api/v1/kpis?account=acct-k&window=1h", NULL, 401));

    smm_http_server_stop(srv);
    redisFree(c);
    h_redis_stop(&redis);
}

static char *test_summary_doc(void *opaque)
{
    (void)opaque;
    return strdup("{\"ok\":true}");
}

static int64_t test_heartbeat_age = -1; /* what the fake loop reports (-1: not started) */

static int64_t test_heartbeat(void *opaque)
{
    (void)opaque;
    return __atomic_load_n(&test_heartbeat_age, __ATOMIC_ACQUIRE);
}

/* A server with the processor's HTTP defaults (16 connections per address, 5 s for
 * request headers, health bound 60 s) unless the caller changed o. */
static struct smm_http_server *start_test_server(struct smm_http_opts *o, int redis_port)
{
    o->address = "127.0.0.1";
    o->prefix = "smm:";
    o->redis_host = "127.0.0.1";
    o->redis_port = redis_port;
    o->redis_timeout_ms = 1000;
    o->ops.metrics = test_metrics_doc;
    o->ops.summary = test_summary_doc;
    o->ops.heartbeat_age_ms = test_heartbeat;
    char err[256];
    struct smm_http_server *srv = smm_http_server_start(o, err, sizeof(err));
    cr_assert_not_null(srv, "smm_http_server_start: %s", err);
    return srv;
}

#define SLOW_PER_ADDR 150
#define SLOW_RUN_MS 7000

/* 300 slow clients on two addresses: half connect and send nothing, half send half a
 * request and then one byte every 500 ms; a closed one is re-opened after a second. Health
 * and metrics, asked from a third address every 250 ms meanwhile, must answer within 1.5 s
 * every time. With one thread and one of 64 slots per connection and no per-address bound,
 * they found no slot: /healthz did not answer, and a liveness probe would restart the pod. */
Test(http, slow_clients_keep_health_answering, .timeout = 120)
{
    struct h_redis redis;
    h_redis_start(&redis, 0);
    struct smm_http_opts o = {.max_per_ip = 16, .header_timeout_ms = 5000,
                              .health_max_age_ms = 60000};
    __atomic_store_n(&test_heartbeat_age, 10, __ATOMIC_RELEASE);
    struct smm_http_server *srv = start_test_server(&o, redis.port);
    int port = smm_http_server_port(srv);
    static const char *const src[2] = {"127.0.0.1", "127.0.0.2"};
    int fd[2 * SLOW_PER_ADDR];
    int64_t opened[2 * SLOW_PER_ADDR], dripped[2 * SLOW_PER_ADDR];
    int n_opened = 0;
    for (int i = 0; i < 2 * SLOW_PER_ADDR; i++) {
        fd[i] = -1;
        opened[i] = dripped[i] = 0;
    }
    static const char half[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    int64_t t0 = h_now_ms(), next_probe = t0 + 500;
    int probes = 0;
    int64_t worst = 0;
    char buf[16384];
    while (h_now_ms() - t0 < SLOW_RUN_MS) {
        int64_t now = h_now_ms();
        for (int i = 0; i < 2 * SLOW_PER_ADDR; i++) {
            if (fd[i] >= 0) {
                struct pollfd p = {.fd = fd[i], .events = POLLIN};
                char junk[512];
                if (poll(&p, 1, 0) > 0 && read(fd[i], junk, sizeof(junk)) <= 0) {
                    close(fd[i]); /* closed by the server */
                    fd[i] = -1;
                }
            }
            if (fd[i] < 0 && now - opened[i] >= 1000) {
                fd[i] = dial_from(src[i % 2], port);
                opened[i] = now;
                n_opened++;
                if (fd[i] >= 0 && i % 4 >= 2) {
                    ssize_t w = write(fd[i], half, sizeof(half) - 1);
                    (void)w;
                    dripped[i] = now;
                }
            } else if (fd[i] >= 0 && i % 4 >= 2 && now - dripped[i] >= 500) {
                ssize_t w = send(fd[i], "x", 1, MSG_NOSIGNAL);
                (void)w;
                dripped[i] = now;
            }
        }
        if (now >= next_probe) {
            static const char *const paths[2] = {"/healthz", "/metrics"};
            for (int k = 0; k < 2; k++) {
                char req[128];
                snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
                         paths[k]);
                int64_t s = h_now_ms();
                int st = exchange(port, "127.0.0.3", req, 0, 1500, buf, sizeof(buf));
                int64_t took = h_now_ms() - s;
                cr_assert_eq(st, 200, "GET %s from a third address under %d slow clients: %d "
                             "after %lld ms (%s)", paths[k], 2 * SLOW_PER_ADDR, st,
                             (long long)took, buf);
                worst = took > worst ? took : worst;
                probes++;
            }
            next_probe = h_now_ms() + 250;
        }
        h_sleep_ms(20);
    }
    cr_log_info("%d probes answered, slowest %lld ms; %d slow connections opened", probes,
                (long long)worst, n_opened);
    cr_assert(probes >= 20, "only %d probes in %d ms", probes, SLOW_RUN_MS);
    for (int i = 0; i < 2 * SLOW_PER_ADDR; i++) {
        if (fd[i] >= 0) {
            close(fd[i]);
        }
    }
    smm_http_server_stop(srv);
    h_redis_stop(&redis);
}

/* Waits up to ms for the server to close fd (EOF or reset). Returns the time it took, or
 * -1 if it stayed open. drip: send one header byte every 200 ms meanwhile. */
static int64_t closed_within(int fd, int ms, int drip)
{
    int64_t t0 = h_now_ms(), last = t0;
    while (h_now_ms() - t0 < ms) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) > 0) {
            char junk[4096];
            if (read(fd, junk, sizeof(junk)) <= 0) {
                return h_now_ms() - t0;
            }
        }
        if (drip && h_now_ms() - last >= 200) {
            if (send(fd, "y", 1, MSG_NOSIGNAL) != 1) {
                return h_now_ms() - t0;
            }
            last = h_now_ms();
        }
    }
    return -1;
}

/* A connection gets header_timeout_ms for a request's headers, however slowly it sends
 * them (libmicrohttpd's own timeout restarts at every byte); a request whose headers arrive
 * in time is answered, and an event stream lives on past the deadline. */
Test(http, header_deadline, .timeout = 60)
{
    struct h_redis redis;
    h_redis_start(&redis, 0);
    struct smm_http_opts o = {.header_timeout_ms = 1000};
    struct smm_http_server *srv = start_test_server(&o, redis.port);
    int port = smm_http_server_port(srv);

    int fd = dial_from("127.0.0.1", port);
    cr_assert(fd >= 0);
    static const char half[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    cr_assert_eq(write(fd, half, sizeof(half) - 1), (ssize_t)(sizeof(half) - 1));
    int64_t t = closed_within(fd, 4000, 1);
    cr_assert(t >= 0, "a header sent one byte per 200 ms was still open after 4 s");
    cr_assert(t >= 700 && t <= 2000, "closed after %lld ms, want about 1000", (long long)t);
    close(fd);

    /* Silent from the start. */
    fd = dial_from("127.0.0.1", port);
    t = closed_within(fd, 4000, 0);
    cr_assert(t >= 700 && t <= 2000, "an idle connection closed after %lld ms", (long long)t);
    close(fd);

    /* Headers complete within the deadline, after most of it went by: answered. */
    fd = dial_from("127.0.0.1", port);
    static const char full[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    h_sleep_ms(600);
    cr_assert_eq(write(fd, full, sizeof(full) - 1), (ssize_t)(sizeof(full) - 1));
    char buf[4096] = "";
    size_t len = 0;
    int64_t t0 = h_now_ms();
    while (!strstr(buf, "\"status\":\"ok\"") && h_now_ms() - t0 < 2000) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0) {
            ssize_t r = read(fd, buf + len, sizeof(buf) - len - 1);
            cr_assert(r > 0, "closed before the answer: %.*s", (int)len, buf);
            len += (size_t)r;
            buf[len] = '\0';
        }
    }
    cr_assert(strstr(buf, "HTTP/1.1 200") != NULL, "%s", buf);
    close(fd);

    /* A request being served has no deadline: an event stream outlives it. */
    fd = dial_from("127.0.0.1", port);
    static const char sse[] = "GET /events HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    cr_assert_eq(write(fd, sse, sizeof(sse) - 1), (ssize_t)(sizeof(sse) - 1));
    static char ev[1 << 16];
    size_t evlen = 0;
    ev[0] = '\0';
    cr_assert(sse_wait(fd, ev, sizeof(ev), &evlen, "event: summary", 2000), "%s", ev);
    h_sleep_ms(2500); /* past the deadline; then three summaries or more */
    cr_assert(sse_wait(fd, ev, sizeof(ev), &evlen, "}\n\nevent: summary\ndata: {\"ok\":true}\n\n"
                       "event: summary", 2000),
              "the event stream stopped after the header deadline: %s", ev);
    close(fd);
    smm_http_server_stop(srv);
    h_redis_stop(&redis);
}

/* /healthz: 200 with the loop's heartbeat age while it is within http.health_max_age_ms,
 * 503 with the age once the loop has stalled past it; before the loop's first round, 200
 * with a null age (starting up is /readyz's business). */
Test(http, healthz_follows_heartbeat, .timeout = 60)
{
    struct h_redis redis;
    h_redis_start(&redis, 0);
    struct smm_http_opts o = {.health_max_age_ms = 2000};
    struct smm_http_server *srv = start_test_server(&o, redis.port);
    int port = smm_http_server_port(srv);

    __atomic_store_n(&test_heartbeat_age, -1, __ATOMIC_RELEASE);
    cJSON *j = get_json(port, "/healthz", NULL, 200);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "heartbeat_age_ms")));
    cJSON_Delete(j);

    __atomic_store_n(&test_heartbeat_age, 150, __ATOMIC_RELEASE);
    j = get_json(port, "/healthz", NULL, 200);
    str_is(j, "status", "ok");
    num_eq(j, "heartbeat_age_ms", 150);
    num_eq(j, "max_age_ms", 2000);
    cJSON_Delete(j);

    __atomic_store_n(&test_heartbeat_age, 2000, __ATOMIC_RELEASE); /* at the bound: fine */
    cJSON_Delete(get_json(port, "/healthz", NULL, 200));

    __atomic_store_n(&test_heartbeat_age, 7250, __ATOMIC_RELEASE); /* stalled */
    j = get_json(port, "/healthz", NULL, 503);
    str_is(j, "status", "stalled");
    num_eq(j, "heartbeat_age_ms", 7250);
    const cJSON *e = cJSON_GetObjectItem(j, "error");
    cr_assert(cJSON_IsString(e) && strstr(e->valuestring, "7250"), "no reason in /healthz");
    cJSON_Delete(j);

    __atomic_store_n(&test_heartbeat_age, 5, __ATOMIC_RELEASE); /* it recovers */
    cJSON_Delete(get_json(port, "/healthz", NULL, 200));
    smm_http_server_stop(srv);
    h_redis_stop(&redis);
}

/* A base64 token holding '/', '+' and '=': as a bearer header on every route, and as the
 * ?token= of the event stream percent-encoded as the page sends it (encodeURIComponent);
 * a literal '+' in a query is a space, so the token written raw there is refused. */
Test(http, base64_token_header_and_query, .timeout = 60)
{
    struct h_redis redis;
    h_redis_start(&redis, 0);
    const char *tok = "q/Zx+9Tt==a+/b=";
    struct smm_http_opts o = {.token = tok};
    struct smm_http_server *srv = start_test_server(&o, redis.port);
    int port = smm_http_server_port(srv);
    char enc[256], req[512], buf[8192];
    url_encode(tok, enc, sizeof(enc));
    cr_assert(strstr(enc, "%2B") && strstr(enc, "%2F") && strstr(enc, "%3D"), "%s", enc);

    snprintf(req, sizeof(req), "GET /events?token=%s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", enc);
    int st = exchange(port, "127.0.0.1", req, 1, 3000, buf, sizeof(buf));
    cr_assert_eq(st, 200, "/events?token=<percent-encoded>: %d: %s", st, buf);
    cr_assert(strstr(buf, "text/event-stream") != NULL, "%s", buf);
    /* Lower-case escapes too. */
    char lower[256];
    snprintf(lower, sizeof(lower), "%s", enc);
    for (char *p = lower; *p; p++) {
        if (p[0] == '%' && p[1] && p[2]) {
            p[1] = (char)tolower((unsigned char)p[1]);
            p[2] = (char)tolower((unsigned char)p[2]);
        }
    }
    snprintf(req, sizeof(req), "GET /events?token=%s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
             lower);
    cr_assert_eq(exchange(port, "127.0.0.1", req, 1, 3000, buf, sizeof(buf)), 200, "%s", buf);

    snprintf(req, sizeof(req),
             "GET /events HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n", tok);
    st = exchange(port, "127.0.0.1", req, 1, 3000, buf, sizeof(buf));
    cr_assert_eq(st, 200, "/events with the bearer header: %d: %s", st, buf);
    cr_assert(strstr(buf, "text/event-stream") != NULL, "%s", buf);
    cJSON_Delete(get_json(port, "/api/v1/summary", tok, 200));

    /* Refused: the raw token in the query ('+' = space), a wrong one, a malformed escape,
     * the query on a route that takes only the header. */
    static const char *const bad[] = {"/events?token=q/Zx+9Tt==a+/b=",
                                      "/events?token=q%2FZx%2B9Tt%3D%3Da%2B%2Fb",
                                      "/events?token=q%2FZx%2B9Tt%3D%3Da%2B%2Fb%3", NULL};
    for (int i = 0; bad[i]; i++) {
        snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", bad[i]);
        st = exchange(port, "127.0.0.1", req, 1, 3000, buf, sizeof(buf));
        cr_assert_eq(st, 401, "GET %s: %d", bad[i], st);
    }
    snprintf(req, sizeof(req), "GET /api/v1/summary?token=%s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
             enc);
    cr_assert_eq(exchange(port, "127.0.0.1", req, 0, 3000, buf, sizeof(buf)), 401, "%s", buf);
    smm_http_server_stop(srv);
    h_redis_stop(&redis);
}

/* Without a token, a Host name that is not an IP literal, localhost or configured could be
 * a DNS-rebinding page reading the API from a visitor's browser: 403. With a token, any
 * Host (the token is what a page cannot have). */
Test(http, host_check_without_token, .timeout = 60)
{
    static const struct {
        const char *host;
        int ok;
    } hosts[] = {
        {"127.0.0.1", 1}, {"127.0.0.1:8080", 1}, {"127.9.8.7", 1}, {"localhost", 1},
        {"LocalHost:8080", 1}, {"[::1]", 1}, {"[::1]:8080", 1}, {"10.1.2.3:8080", 1},
        {"dash.example.com", 1}, {"DASH.example.com:443", 1}, {"other.example", 1},
        {"evil.example", 0}, {"evil.example:8080", 0}, {"localhost.evil.example", 0},
        {"example.com", 0}, {"127.0.0.1.evil.example", 0}, {"[::1", 0}, {"[evil]:80", 0},
        {"127.0.0.1:", 0}, {"127.0.0.1:80x", 0}, {"::1", 0}, {"", 0},
    };
    const char *allowed = "dash.example.com, other.example";
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        cr_assert_eq(smm_http_host_allowed(hosts[i].host, allowed), hosts[i].ok, "Host \"%s\"",
                     hosts[i].host);
    }
    cr_assert(smm_http_host_allowed(NULL, NULL)); /* HTTP/1.0 without Host */
    cr_assert(!smm_http_host_allowed("dash.example.com", NULL));

    struct h_redis redis;
    h_redis_start(&redis, 0);
    struct smm_http_opts o = {.allowed_hosts = allowed};
    struct smm_http_server *srv = start_test_server(&o, redis.port);
    int port = smm_http_server_port(srv);
    char req[512], buf[8192];
    static const char *const paths[] = {"/api/v1/summary", "/metrics", "/healthz", "/"};
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        if (!hosts[i].host[0]) {
            continue; /* an empty Host is a bad request to libmicrohttpd already */
        }
        for (size_t k = 0; k < sizeof(paths) / sizeof(paths[0]); k++) {
            snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     paths[k], hosts[i].host);
            int st = exchange(port, "127.0.0.1", req, 0, 3000, buf, sizeof(buf));
            cr_assert_eq(st, hosts[i].ok ? 200 : 403, "GET %s, Host %s: %d: %s", paths[k],
                         hosts[i].host, st, buf);
            if (!hosts[i].ok) {
                cr_assert(strstr(buf, "Host not allowed") != NULL, "%s", buf);
            }
        }
    }
    smm_http_server_stop(srv);

    o = (struct smm_http_opts){.token = TOKEN};
    srv = start_test_server(&o, redis.port);
    port = smm_http_server_port(srv);
    snprintf(req, sizeof(req),
             "GET /api/v1/summary HTTP/1.0\r\nHost: evil.example\r\nAuthorization: Bearer "
             "%s\r\n\r\n", TOKEN);
    cr_assert_eq(exchange(port, "127.0.0.1", req, 0, 3000, buf, sizeof(buf)), 200, "%s", buf);
    snprintf(req, sizeof(req), "GET /api/v1/summary HTTP/1.0\r\nHost: evil.example\r\n\r\n");
    cr_assert_eq(exchange(port, "127.0.0.1", req, 0, 3000, buf, sizeof(buf)), 401, "%s", buf);
    smm_http_server_stop(srv);
    h_redis_stop(&redis);
}
