/* connectors/http_server.c - libmicrohttpd routes: health, metrics, SSE, JSON API, assets.
 *
 * DESIGN: libmicrohttpd runs one thread per connection (MHD_USE_THREAD_PER_CONNECTION) with
 * a connection limit, so an event stream may simply block in its content callback (waiting
 * in XREAD BLOCK for the next alert, at most until the next one-second summary) without
 * stalling other clients, and nothing here ever runs on the processor's loop thread. The
 * price is a thread and a slot per connection, idle ones included: so one client address
 * holds at most max_per_ip of them, and a connection gets header_timeout_ms for a request's
 * headers (the watchdog below), so idle or trickling clients cannot keep /healthz and
 * /metrics from answering. Without a token, only Host names that cannot be a DNS-rebinding
 * page are served (smm_http_host_allowed()). What the loop knows comes through
 * smm_http_ops (a snapshot copied under the status mutex; /healthz also asks the age of the
 * loop's heartbeat); Redis is read on connections this file owns: a small pool for API
 * requests and one connection per event stream, all with short timeouts, so a slow or
 * absent Redis turns into a 503, never into a stuck loop.
 *
 * Ids in paths are arbitrary bytes: we keep libmicrohttpd from unescaping the path (a
 * no-op unescape callback), split the raw path first and percent-decode the id after, so
 * "%2F" is part of an id and not a separator. Keys and fields are built as length-counted
 * arguments (RESP bulk strings, connectors/argv.h), never by formatting a command string,
 * so no id can inject a command or reach another key than the one it names. Counters are
 * read only through the Redis Function library smm (smm_get, smm_mget, smm_top, smm_series:
 * see "reading counters" below), which sums an entity's time buckets next to the data, so
 * this file knows no counter key or field. Every request does bounded work: limits are
 * capped, a content or account lookup is a fixed pipeline of one call per window plus 3,
 * and the insight routes (response, sov, sources, segments, goals, customers) make at most
 * two round trips of a size fixed by the configuration (the response histogram is one
 * smm_mget of the 1202 bucket counters that can exist). The account view's routes
 * (accounts, kpis, series) read 25 hourly account sets plus one smm_mget per 500 accounts,
 * at most four library calls (a window, its previous period, the reach of each), or one
 * pipeline of at most 2 x 90 HMGETs on day buckets. All
 * Redis reading is in the route_* functions, one per route. */
#include "connectors/http_server.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include "connectors/argv.h"
#include "connectors/redis_conn.h"
#include "connectors/web_assets.h"
#include "metrics/response.h"

#define POOL_MAX 8
#define LIMIT_MAX 1000
#define ID_MAX 1024
#define SERIES_MINUTES 30
#define SSE_BLOCK_MS 1000

/* One open connection, for the header deadline (see the watchdog). */
struct conn_watch {
    int fd;
    int64_t since_ms; /* waiting for request headers since (monotonic); 0 = serving one */
    int shut;         /* the watchdog shut it down */
    struct conn_watch *prev, *next;
};

/* A competitor set, copied from the options. */
struct sov_set {
    char *name;
    char **brands;
    int n_brands;
};

struct smm_http_server {
    struct MHD_Daemon *d;
    int port;
    char *token, *prefix;
    char *redis_host, *redis_unix_socket, *redis_username, *redis_password;
    int redis_port, redis_db, redis_timeout_ms;
    char **windows;
    int n_windows;
    char **metrics;
    int n_metrics;
    struct sov_set *sov;
    int n_sov;
    char **goal_ids;
    int n_goals;
    struct smm_http_ops ops;
    void (*log)(void *opaque, enum smm_log_level level, const char *msg);
    char *allowed_hosts;
    int64_t health_max_age_ms;
    int header_timeout_ms;
    int64_t keep_minutes; /* hour reach sketches live this long after their hour */
    int64_t days_keep;    /* day buckets live this long */
    struct conn_watch *watch; /* open connections, guarded by mu */
    pthread_t watchdog;
    int watchdog_on;
    pthread_cond_t watch_cv; /* wakes the watchdog to stop */
    int max_sse;
    int sse_open;  /* guarded by mu */
    int stopping;  /* __atomic */
    pthread_mutex_t mu;
    redisContext *pool[POOL_MAX]; /* idle API connections, guarded by mu */
    int n_pool;
};

static void log_msg(struct smm_http_server *srv, enum smm_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void log_msg(struct smm_http_server *srv, enum smm_log_level level, const char *fmt, ...)
{
    if (!srv->log) {
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    srv->log(NULL, level, msg);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long smm_http_url_decode(const char *s, size_t len, char *out, int plus)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= len) {
                return -1;
            }
            int v = 0;
            for (int k = 1; k <= 2; k++) {
                char h = s[i + k];
                v <<= 4;
                if (h >= '0' && h <= '9') {
                    v |= h - '0';
                } else if (h >= 'a' && h <= 'f') {
                    v |= h - 'a' + 10;
                } else if (h >= 'A' && h <= 'F') {
                    v |= h - 'A' + 10;
                } else {
                    return -1;
                }
            }
            out[o++] = (char)v;
            i += 2;
        } else if (ch == '+' && plus) {
            out[o++] = ' ';
        } else {
            out[o++] = ch;
        }
    }
    return (long)o;
}

/* ---- Redis ---- */

static redisContext *redis_open(struct smm_http_server *srv, int timeout_ms, char *err,
                                size_t err_size)
{
    struct smm_redis_opts o = {
        .host = srv->redis_host, .port = srv->redis_port,
        .unix_socket = srv->redis_unix_socket, .db = srv->redis_db,
        .username = srv->redis_username, .password = srv->redis_password,
        .timeout_ms = timeout_ms,
    };
    int rc;
    return smm_redis_open(&o, timeout_ms, &rc, err, err_size);
}

/* An idle connection has nothing to read; if it has, the server closed it (restart,
 * timeout) or sent something we never asked for: either way it is of no use. */
static int idle_ok(const redisContext *c)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    return poll(&pfd, 1, 0) == 0;
}

static redisContext *pool_get(struct smm_http_server *srv, char *err, size_t err_size)
{
    for (;;) {
        redisContext *c = NULL;
        pthread_mutex_lock(&srv->mu);
        if (srv->n_pool > 0) {
            c = srv->pool[--srv->n_pool];
        }
        pthread_mutex_unlock(&srv->mu);
        if (!c) {
            return redis_open(srv, srv->redis_timeout_ms, err, err_size);
        }
        if (idle_ok(c)) {
            return c;
        }
        redisFree(c);
    }
}

/* Returns a healthy connection to the pool; a failed one (c->err) is closed. */
static void pool_put(struct smm_http_server *srv, redisContext *c)
{
    if (!c) {
        return;
    }
    if (!c->err) {
        pthread_mutex_lock(&srv->mu);
        if (srv->n_pool < POOL_MAX) {
            srv->pool[srv->n_pool++] = c;
            c = NULL;
        }
        pthread_mutex_unlock(&srv->mu);
    }
    redisFree(c);
}

static int append(redisContext *c, struct smm_argv *av)
{
    const char *cmd;
    size_t len;
    if (smm_argv_command(av, NULL, 0, &cmd, &len) != 0) {
        return -1;
    }
    return redisAppendFormattedCommand(c, cmd, len) == REDIS_OK ? 0 : -1;
}

/* Appends prefix + a + b (binary) as one argument. */
static int add_cat(struct smm_argv *av, const char *prefix, const char *a, const char *b,
                   size_t blen, const char *c)
{
    size_t pl = strlen(prefix), al = strlen(a), cl = c ? strlen(c) : 0;
    char stack[2048];
    size_t n = pl + al + blen + cl;
    char *buf = n <= sizeof(stack) ? stack : malloc(n);
    if (!buf) {
        return -1;
    }
    memcpy(buf, prefix, pl);
    memcpy(buf + pl, a, al);
    memcpy(buf + pl + al, b, blen);
    if (cl) {
        memcpy(buf + pl + al + blen, c, cl);
    }
    int rc = smm_argv_add(av, buf, n);
    if (buf != stack) {
        free(buf);
    }
    return rc;
}

/* A growable byte string for entity names built from ids read from Redis. */
struct sbuf {
    char *p;
    size_t len, cap;
    int err;
};

static void sb_add(struct sbuf *b, const void *s, size_t n)
{
    if (b->err) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = (b->len + n + 1) * 2;
        char *np = realloc(b->p, ncap);
        if (!np) {
            b->err = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* ---- JSON helpers ---- */

/* A Redis value as a JSON number when it is one (finite), else as a string. */
static cJSON *value_json(const char *s, size_t len)
{
    if (len > 0 && len < 64) {
        char tmp[64];
        memcpy(tmp, s, len);
        tmp[len] = '\0';
        char *end;
        double v = strtod(tmp, &end);
        if (end == tmp + len && isfinite(v) && tmp[0] != ' ') {
            return cJSON_CreateNumber(v);
        }
    }
    char *z = malloc(len + 1);
    if (!z) {
        return NULL;
    }
    memcpy(z, s, len);
    z[len] = '\0';
    cJSON *j = cJSON_CreateString(z);
    free(z);
    return j;
}

static int reply_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* A reply element holding a figure: an integer reply or a string. */
static int reply_val(const redisReply *r)
{
    return reply_str(r) || (r && r->type == REDIS_REPLY_INTEGER);
}

/* A figure of a reply element as JSON: a number when it is one, else text. */
static cJSON *reply_json(const redisReply *e)
{
    if (e->type == REDIS_REPLY_INTEGER) {
        return cJSON_CreateNumber((double)e->integer);
    }
    return value_json(e->str, e->len);
}

/* A counter from a reply element: the number (an integer reply or a decimal string), or 0
 * when absent or not a finite number. */
static double rnum(const redisReply *e)
{
    if (e && e->type == REDIS_REPLY_INTEGER) {
        return (double)e->integer;
    }
    if (!reply_str(e) || e->len == 0 || e->len > 63) {
        return 0.0;
    }
    char *end;
    double v = strtod(e->str, &end);
    return end == e->str + e->len && isfinite(v) ? v : 0.0;
}

/* Element i of an array reply, or NULL. */
static const redisReply *elem(const redisReply *r, size_t i)
{
    return r && r->type == REDIS_REPLY_ARRAY && i < r->elements ? r->element[i] : NULL;
}

/* ---- reading counters: the Function library smm (docs/redis-keys.md, "Reading") ----
 *
 * Counters live in one hash per entity, as packed time buckets; a window is summed and the
 * rates and reach derived by the library when read. So every read of a counter here is one
 * of its calls (none writes), built by fcall_begin() and the argument helpers below:
 *   smm_get    <entity> <window> [<minute>]           -> name, value, name, value, ...
 *   smm_mget   <window> <minute|''> <m1,m2> <entity>... -> entities x metrics (nil: a rate
 *                                                      or reach that is not defined)
 *   smm_top    <window> <n> [<minute>]                -> content_id, engagement, ...
 *   smm_series <entity> m|h <from> <to> <m1,m2>       -> buckets x metrics, 0 = absent
 * and its reply is read with pair_value() (smm_get) or elem() (the others). The minute is
 * always passed, the wall clock's, so a response's spans (from_ms, start_ms) are the ones
 * summed. */

/* Resets av to FCALL[_RO] <fn> 0 <prefix>. smm_get and smm_mget count reach with PFCOUNT,
 * which Redis refuses in a read-only (no-writes) function, so they are called with FCALL;
 * they never write (connectors/lua/smm_lib.lua). 0, or -1 on out-of-memory. */
static int fcall_begin(struct smm_argv *av, const struct smm_http_server *srv, const char *fn)
{
    int ro = strcmp(fn, "smm_top") == 0 || strcmp(fn, "smm_series") == 0;
    smm_argv_reset(av);
    int bad = smm_argv_add_str(av, ro ? "FCALL_RO" : "FCALL");
    bad |= smm_argv_add_str(av, fn);
    bad |= smm_argv_add_str(av, "0");
    bad |= smm_argv_add_str(av, srv->prefix);
    return bad;
}

/* Appends the entity <kind><id> (kind "c:", "a:", ...) as one argument. */
static int add_entity(struct smm_argv *av, const char *kind, const char *id, size_t idlen)
{
    return add_cat(av, "", kind, id, idlen, NULL);
}

/* Appends names[0..n) joined by ',' as one argument: the metric list of smm_mget and
 * smm_series. */
static int add_list(struct smm_argv *av, const char *const *names, int n)
{
    struct sbuf b = {0};
    for (int i = 0; i < n; i++) {
        if (i) {
            sb_str(&b, ",");
        }
        sb_str(&b, names[i]);
    }
    int rc = b.err ? -1 : smm_argv_add(av, b.p ? b.p : "", b.len);
    free(b.p);
    return rc;
}

/* smm_get of one entity: FCALL smm_get 0 <prefix> <kind><id> <window> <minute>. */
static int fcall_get(struct smm_argv *av, const struct smm_http_server *srv, const char *kind,
                     const char *id, size_t idlen, const char *window, int64_t minute)
{
    int bad = fcall_begin(av, srv, "smm_get");
    bad |= add_entity(av, kind, id, idlen);
    bad |= smm_argv_add_str(av, window);
    bad |= smm_argv_add_int(av, minute);
    return bad;
}

/* The value of metric name in a flat name, value reply of smm_get, or NULL when absent
 * (a counter that is 0, a rate whose denominator is 0). */
static const redisReply *pair_value(const redisReply *r, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i];
        if (reply_str(f) && f->len == len && memcmp(f->str, name, len) == 0) {
            return reply_val(r->element[i + 1]) ? r->element[i + 1] : NULL;
        }
    }
    return NULL;
}

/* An alert from a stream entry's field/value list: its `json` field when that parses to an
 * object, else an object of the plain fields. */
static cJSON *alert_json(const redisReply *fields)
{
    if (!fields || fields->type != REDIS_REPLY_ARRAY) {
        return cJSON_CreateObject();
    }
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i], *v = fields->element[i + 1];
        if (reply_str(f) && reply_str(v) && f->len == 4 && memcmp(f->str, "json", 4) == 0) {
            cJSON *j = cJSON_ParseWithLength(v->str, v->len);
            if (cJSON_IsObject(j)) {
                return j;
            }
            cJSON_Delete(j);
        }
    }
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; o && i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i], *v = fields->element[i + 1];
        if (!reply_str(f) || !reply_str(v) || memchr(f->str, '\0', f->len) ||
            (f->len == 4 && memcmp(f->str, "json", 4) == 0)) {
            continue;
        }
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)(f->len < 127 ? f->len : 127), f->str);
        cJSON_AddItemToObject(o, name, value_json(v->str, v->len));
    }
    return o;
}

/* ---- responses ---- */

static enum MHD_Result send_buf(struct MHD_Connection *conn, unsigned status, const char *type,
                                char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE) {
            free(body);
        }
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (strncmp(type, "text/html", 9) == 0) {
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:");
    }
    if (mode != MHD_RESPMEM_PERSISTENT || status != MHD_HTTP_OK) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    }
    if (status == MHD_HTTP_UNAUTHORIZED) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"smm\"");
    }
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    }
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* Sends j (consumed) as the JSON body. */
static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, cJSON *j)
{
    char *body = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!body) {
        static char oom[] = "{\"error\":\"out of memory\"}";
        return send_buf(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "application/json", oom,
                        sizeof(oom) - 1, MHD_RESPMEM_PERSISTENT);
    }
    return send_buf(conn, status, "application/json", body, strlen(body), MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *fmt,
                                  ...) __attribute__((format(printf, 3, 4)));

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *fmt,
                                  ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", msg);
    return send_json(conn, status, j);
}

/* ---- parameters ---- */

/* A query parameter, percent-decoded into out; def when absent. 0, or -1 when malformed. */
static int param(struct MHD_Connection *conn, const char *name, const char *def, char *out,
                 size_t out_size)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
    if (!v) {
        snprintf(out, out_size, "%s", def);
        return 0;
    }
    size_t len = strlen(v);
    if (len >= out_size) {
        return -1;
    }
    long n = smm_http_url_decode(v, len, out, 1);
    if (n < 0 || memchr(out, '\0', (size_t)n)) {
        return -1;
    }
    out[n] = '\0';
    return 0;
}

/* limit=N with 1 <= N <= max. 0, or -1 (and a 400 sent by the caller). */
static int param_limit(struct MHD_Connection *conn, int def, int max, int *out)
{
    char buf[32];
    if (param(conn, "limit", "", buf, sizeof(buf)) != 0) {
        return -1;
    }
    if (!buf[0]) {
        *out = def;
        return 0;
    }
    long v = 0;
    for (const char *p = buf; *p; p++) {
        if (*p < '0' || *p > '9' || v > max) {
            return -1;
        }
        v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > max) {
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* 1 when s[0..len) is valid UTF-8 without NUL: anything else cannot be an id the event
 * decoder accepted, and could not be printed as a JSON string. Overlongs and surrogates
 * are left to Redis to not find. */
static int valid_id(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t more;
        if (c == 0) {
            return 0;
        } else if (c < 0x80) {
            more = 0;
        } else if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
        } else {
            return 0;
        }
        if (more >= len - i) {
            return 0;
        }
        for (size_t k = 1; k <= more; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return 0;
            }
        }
        i += more + 1;
    }
    return 1;
}

/* ---- routes ---- */

static enum MHD_Result redis_unavailable(struct MHD_Connection *conn, const char *why)
{
    return send_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "redis unavailable: %s", why);
}

/* Reads replies 0..n) of a pipeline into r[]; on failure frees what was read. */
static int read_replies(redisContext *c, redisReply **r, int n)
{
    for (int i = 0; i < n; i++) {
        void *rep = NULL;
        if (redisGetReply(c, &rep) != REDIS_OK || !rep) {
            for (int k = 0; k < i; k++) {
                freeReplyObject(r[k]);
            }
            return -1;
        }
        r[i] = rep;
    }
    return 0;
}

static int collect(redisContext *c, int bad, redisReply **r, int n, char *err, size_t err_size);

static void free_replies(redisReply **r, int n)
{
    for (int i = 0; i < n; i++) {
        freeReplyObject(r[i]);
    }
}

/* Fills obj with metric -> value for the configured metrics (srv->metrics, in that order)
 * present in an smm_get reply. */
static void add_fields(struct smm_http_server *srv, cJSON *obj, const redisReply *r)
{
    for (int m = 0; m < srv->n_metrics; m++) {
        const redisReply *v = pair_value(r, srv->metrics[m]);
        if (v) {
            cJSON_AddItemToObject(obj, srv->metrics[m], reply_json(v));
        }
    }
}

/* GET /api/v1/content/<id> (kind 'c') and /api/v1/account/<id> (kind 'a'). */
static enum MHD_Result route_entity(struct smm_http_server *srv, struct MHD_Connection *conn,
                                   char kind, const char *raw)
{
    const char *what = kind == 'c' ? "content" : "account";
    size_t rawlen = strlen(raw);
    if (rawlen == 0) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "%s id missing", what);
    }
    if (rawlen > ID_MAX * 3) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "%s id too long", what);
    }
    char id[ID_MAX * 3 + 1];
    long idlen = smm_http_url_decode(raw, rawlen, id, 0);
    if (idlen < 0) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "%s id: malformed percent-encoding", what);
    }
    if (idlen > ID_MAX) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "%s id too long", what);
    }
    id[idlen] = '\0';
    if (!valid_id((const unsigned char *)id, (size_t)idlen)) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "%s id: not valid UTF-8 (or has NUL)",
                          what);
    }
    char ent[3] = {kind, ':', '\0'};
    char err[256];
    redisContext *c = pool_get(srv, err, sizeof(err));
    if (!c) {
        return redis_unavailable(conn, err);
    }
    struct smm_argv av;
    smm_argv_init(&av);
    int bad = 0, n = 0;
    int64_t minute = wall_ms() / 60000;
    /* 0: lifetime; 1..n_windows: windows; then reach, viral (content), minute series. */
    for (int w = -1; w < srv->n_windows; w++) {
        bad |= fcall_get(&av, srv, ent, id, (size_t)idlen, w < 0 ? "total" : srv->windows[w],
                         minute);
        bad |= bad ? -1 : append(c, &av);
        n++;
    }
    int at_reach = n;
    smm_argv_reset(&av);
    bad |= smm_argv_add_str(&av, "PFCOUNT");
    bad |= add_cat(&av, srv->prefix, ent, id, (size_t)idlen, ":reach");
    bad |= bad ? -1 : append(c, &av);
    n++;
    int at_viral = -1;
    if (kind == 'c') {
        smm_argv_reset(&av);
        bad |= smm_argv_add_str(&av, "HGETALL");
        bad |= add_cat(&av, srv->prefix, "v:", id, (size_t)idlen, NULL);
        bad |= bad ? -1 : append(c, &av);
        at_viral = n++;
    }
    int at_series = n;
    static const char *const series_metrics[2] = {"engagement", "impression"};
    bad |= fcall_begin(&av, srv, "smm_series");
    bad |= add_entity(&av, ent, id, (size_t)idlen);
    bad |= smm_argv_add_str(&av, "m");
    bad |= smm_argv_add_int(&av, minute - (SERIES_MINUTES - 1));
    bad |= smm_argv_add_int(&av, minute);
    bad |= add_list(&av, series_metrics, 2);
    bad |= bad ? -1 : append(c, &av);
    n++;
    smm_argv_free(&av);
    redisReply *r[64];
    if (bad || read_replies(c, r, n) != 0) {
        snprintf(err, sizeof(err), "%s", c->err ? c->errstr : "out of memory");
        c->err = c->err ? c->err : REDIS_ERR_OOM;
        pool_put(srv, c);
        return redis_unavailable(conn, err);
    }
    pool_put(srv, c);
    for (int i = 0; i < n; i++) {
        if (r[i]->type == REDIS_REPLY_ERROR) {
            snprintf(err, sizeof(err), "%s", r[i]->str);
            free_replies(r, n);
            return redis_unavailable(conn, err);
        }
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, kind == 'c' ? "content_id" : "account_id", cJSON_CreateString(id));
    cJSON *life = cJSON_AddObjectToObject(o, "lifetime");
    add_fields(srv, life, r[0]);
    cJSON *wins = cJSON_AddObjectToObject(o, "windows");
    for (int w = 0; w < srv->n_windows; w++) {
        add_fields(srv, cJSON_AddObjectToObject(wins, srv->windows[w]), r[1 + w]);
    }
    long long reach = r[at_reach]->type == REDIS_REPLY_INTEGER ? r[at_reach]->integer : 0;
    cJSON_AddNumberToObject(o, "reach", (double)reach);
    int viral_fields = 0;
    if (at_viral >= 0) {
        cJSON *v = cJSON_AddObjectToObject(o, "viral");
        const redisReply *h = r[at_viral];
        for (size_t i = 0; h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2) {
            const redisReply *f = h->element[i], *val = h->element[i + 1];
            if (!reply_str(f) || !reply_str(val) || memchr(f->str, '\0', f->len) ||
                f->len > 127) {
                continue;
            }
            char name[128];
            memcpy(name, f->str, f->len);
            name[f->len] = '\0';
            /* account and state are text even when they look like numbers; an empty
             * figure has no finite value (predicted_final of a supercritical cascade,
             * docs/redis-keys.md): null, as in the alert JSON. */
            cJSON *item = strcmp(name, "account") == 0 || strcmp(name, "state") == 0
                              ? cJSON_CreateString(val->str)
                          : val->len == 0 ? cJSON_CreateNull()
                                          : value_json(val->str, val->len);
            cJSON_AddItemToObject(v, name, item);
            viral_fields++;
        }
    }
    cJSON *series = cJSON_AddObjectToObject(o, "series");
    cJSON *eng = cJSON_AddArrayToObject(series, "engagement");
    cJSON *imp = cJSON_AddArrayToObject(series, "impression");
    for (int i = 0; i < SERIES_MINUTES; i++) {
        cJSON_AddItemToArray(eng, cJSON_CreateNumber(rnum(elem(r[at_series], 2 * (size_t)i))));
        cJSON_AddItemToArray(imp,
                             cJSON_CreateNumber(rnum(elem(r[at_series], 2 * (size_t)i + 1))));
    }
    int known = cJSON_GetArraySize(life) > 0 || reach > 0 || viral_fields > 0;
    free_replies(r, n);
    if (!known) {
        cJSON_Delete(o);
        return send_error(conn, MHD_HTTP_NOT_FOUND, "unknown %s", what);
    }
    return send_json(conn, MHD_HTTP_OK, o);
}

/* ZREVRANGE key 0 limit-1 WITHSCORES into *out (caller frees). NULL + err on failure. */
static redisReply *zrevrange(struct smm_http_server *srv, redisContext *c, const char *suffix,
                             int limit, char *err, size_t err_size)
{
    struct smm_argv av;
    smm_argv_init(&av);
    int bad = smm_argv_add_str(&av, "ZREVRANGE");
    bad |= add_cat(&av, srv->prefix, suffix, "", 0, NULL);
    bad |= smm_argv_add_str(&av, "0");
    bad |= smm_argv_add_int(&av, limit - 1);
    bad |= smm_argv_add_str(&av, "WITHSCORES");
    redisReply *r = NULL;
    if (!bad && append(c, &av) == 0) {
        void *rep = NULL;
        if (redisGetReply(c, &rep) == REDIS_OK) {
            r = rep;
        }
    }
    smm_argv_free(&av);
    if (!r) {
        snprintf(err, err_size, "%s", c->err ? c->errstr : "out of memory");
        return NULL;
    }
    if (r->type != REDIS_REPLY_ARRAY) {
        snprintf(err, err_size, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static enum MHD_Result route_top(struct smm_http_server *srv, struct MHD_Connection *conn)
{
    char window[64];
    int limit;
    if (param(conn, "window", srv->n_windows ? srv->windows[0] : "total", window,
              sizeof(window)) != 0) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "window: malformed");
    }
    int ok = strcmp(window, "total") == 0;
    for (int w = 0; w < srv->n_windows; w++) {
        ok |= strcmp(window, srv->windows[w]) == 0;
    }
    if (!ok) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST,
                          "window: expected one of the configured windows or total");
    }
    if (param_limit(conn, 10, LIMIT_MAX, &limit) != 0) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "limit: expected an integer from 1 to %d",
                          LIMIT_MAX);
    }
    char err[256];
    redisContext *c = pool_get(srv, err, sizeof(err));
    if (!c) {
        return redis_unavailable(conn, err);
    }
    struct smm_argv av;
    smm_argv_init(&av);
    int bad = fcall_begin(&av, srv, "smm_top");
    bad |= smm_argv_add_str(&av, window);
    bad |= smm_argv_add_int(&av, limit);
    bad |= smm_argv_add_int(&av, wall_ms() / 60000);
    bad |= bad ? -1 : append(c, &av);
    smm_argv_free(&av);
    redisReply *r;
    if (collect(c, bad, &r, 1, err, sizeof(err)) != 0) {
        pool_put(srv, c);
        return redis_unavailable(conn, err);
    }
    pool_put(srv, c);
    cJSON *o = cJSON_CreateObject();
    cJSON *items = cJSON_AddArrayToObject(o, "items");
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const redisReply *m = r->element[i], *s = r->element[i + 1];
        if (!reply_str(m) || !reply_val(s) || memchr(m->str, '\0', m->len)) {
            continue;
        }
        cJSON *it = cJSON_CreateObject();
        cJSON_AddItemToObject(it, "content_id", cJSON_CreateString(m->str));
        cJSON_AddNumberToObject(it, "value", rnum(s));
        cJSON_AddItemToArray(items, it);
    }
    freeReplyObject(r);
    return send_json(conn, MHD_HTTP_OK, o);
}

static enum MHD_Result route_viral(struct smm_http_server *srv, struct MHD_Connection *conn)
{
    char by[32];
    int limit;
    if (param(conn, "by", "velocity", by, sizeof(by)) != 0 ||
        (strcmp(by, "velocity") != 0 && strcmp(by, "predicted") != 0)) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "by: expected velocity or predicted");
    }
    if (param_limit(conn, 10, LIMIT_MAX, &limit) != 0) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "limit: expected an integer from 1 to %d",
                          LIMIT_MAX);
    }
    char err[256], key[64];
    snprintf(key, sizeof(key), "viral:%s", by);
    redisContext *c = pool_get(srv, err, sizeof(err));
    redisReply *r = c ? zrevrange(srv, c, key, limit, err, sizeof(err)) : NULL;
    if (!r) {
        pool_put(srv, c);
        return redis_unavailable(conn, err);
    }
    /* The state and account of each, in one pipeline. */
    int n = 0, bad = 0;
    struct smm_argv av;
    smm_argv_init(&av);
    for (size_t i = 0; i + 1 < r->elements && !bad; i += 2) {
        const redisReply *m = r->element[i];
        smm_argv_reset(&av);
        bad |= smm_argv_add_str(&av, "HMGET");
        bad |= add_cat(&av, srv->prefix, "v:", reply_str(m) ? m->str : "",
                       reply_str(m) ? m->len : 0, NULL);
        bad |= smm_argv_add_str(&av, "state");
        bad |= smm_argv_add_str(&av, "account");
        bad |= bad ? -1 : append(c, &av);
        n++;
    }
    smm_argv_free(&av);
    redisReply **h = calloc((size_t)(n ? n : 1), sizeof(*h));
    if (bad || !h || read_replies(c, h, n) != 0) {
        snprintf(err, sizeof(err), "%s", c->err ? c->errstr : "out of memory");
        c->err = c->err ? c->err : REDIS_ERR_OOM;
        pool_put(srv, c);
        freeReplyObject(r);
        free(h);
        return redis_unavailable(conn, err);
    }
    pool_put(srv, c);
    cJSON *o = cJSON_CreateObject();
    cJSON *items = cJSON_AddArrayToObject(o, "items");
    for (int i = 0; i < n; i++) {
        const redisReply *m = r->element[2 * i], *s = r->element[2 * i + 1];
        if (!reply_str(m) || !reply_str(s)) {
            continue;
        }
        cJSON *it = cJSON_CreateObject();
        cJSON_AddItemToObject(it, "content_id", cJSON_CreateString(m->str));
        cJSON_AddNumberToObject(it, "score", strtod(s->str, NULL));
        const redisReply *st = h[i]->type == REDIS_REPLY_ARRAY && h[i]->elements == 2
                                   ? h[i]->element[0] : NULL;
        const redisReply *ac = st ? h[i]->element[1] : NULL;
        /* A post that never changed state has no state field: it is normal. */
        cJSON_AddItemToObject(it, "state",
                              cJSON_CreateString(reply_str(st) ? st->str : "normal"));
        cJSON_AddItemToObject(it, "account",
                              reply_str(ac) ? cJSON_CreateString(ac->str) : cJSON_CreateNull());
        cJSON_AddItemToArray(items, it);
    }
    free_replies(h, n);
    free(h);
    freeReplyObject(r);
    return send_json(conn, MHD_HTTP_OK, o);
}

static enum MHD_Result route_alerts(struct smm_http_server *srv, struct MHD_Connection *conn)
{
    int limit;
    if (param_limit(conn, 50, LIMIT_MAX, &limit) != 0) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "limit: expected an integer from 1 to %d",
                          LIMIT_MAX);
    }
    char err[256];
    redisContext *c = pool_get(srv, err, sizeof(err));
    if (!c) {
        return redis_unavailable(conn, err);
    }
    struct smm_argv av;
    smm_argv_init(&av);
    int bad = smm_argv_add_str(&av, "XREVRANGE");
    bad |= add_cat(&av, srv->prefix, "alerts", "", 0, NULL);
    bad |= smm_argv_add_str(&av, "+");
    bad |= smm_argv_add_str(&av, "-");
    bad |= smm_argv_add_str(&av, "COUNT");
    bad |= smm_argv_add_int(&av, limit);
    redisReply *r = NULL;
    if (!bad && append(c, &av) == 0) {
        void *rep = NULL;
        if (redisGetReply(c, &rep) == REDIS_OK) {
            r = rep;
        }
    }
    smm_argv_free(&av);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        snprintf(err, sizeof(err), "%s",
                 r && r->type == REDIS_REPLY_ERROR ? r->str : c->err ? c->errstr : "bad reply");
        freeReplyObject(r);
        pool_put(srv, c);
        return redis_unavailable(conn, err);
    }
    pool_put(srv, c);
    cJSON *o = cJSON_CreateObject();
    cJSON *items = cJSON_AddArrayToObject(o, "items");
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_ARRAY && e->elements == 2) {
            cJSON_AddItemToArray(items, alert_json(e->element[1]));
        }
    }
    freeReplyObject(r);
    return send_json(conn, MHD_HTTP_OK, o);
}

/* ---- insight routes: response time, share of voice, sources, segments, goals, customers
 *
 * All read the counters of CONTRACT-5 (docs/redis-keys.md) with smm_mget, in a window
 * label or total (the default). Each is a fixed, bounded pipeline: at most two round trips
 * (SMEMBERS, then one smm_mget). */

#define MEMBERS_MAX 1000 /* admitted values read per dimension (top_n is 20 by default) */

/* A required query parameter naming an id (account, competitor set): percent-decoded into
 * out (ID_MAX * 3 + 1 bytes), non-empty, at most ID_MAX bytes, UTF-8 without NUL. 0 and
 * *len, or -1 with the reason in why. */
static int param_id(struct MHD_Connection *conn, const char *name, char *out, size_t *len,
                    char *why, size_t why_size)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
    size_t rawlen = v ? strlen(v) : 0;
    if (rawlen == 0) {
        snprintf(why, why_size, "%s: missing", name);
        return -1;
    }
    if (rawlen > ID_MAX * 3) {
        snprintf(why, why_size, "%s: too long", name);
        return -1;
    }
    long n = smm_http_url_decode(v, rawlen, out, 1);
    if (n < 0) {
        snprintf(why, why_size, "%s: malformed percent-encoding", name);
        return -1;
    }
    if (n > ID_MAX) {
        snprintf(why, why_size, "%s: too long", name);
        return -1;
    }
    out[n] = '\0';
    if (n == 0 || !valid_id((const unsigned char *)out, (size_t)n)) {
        snprintf(why, why_size, "%s: empty, or not valid UTF-8 (or has NUL)", name);
        return -1;
    }
    *len = (size_t)n;
    return 0;
}

/* window=: a configured window label, "7d" (the library sums it from the hour buckets,
 * kept 8 days) or "total" (the default). 0, or -1 when unknown. */
static int param_window(struct smm_http_server *srv, struct MHD_Connection *conn, char *out,
                        size_t out_size)
{
    if (param(conn, "window", "total", out, out_size) != 0) {
        return -1;
    }
    if (strcmp(out, "total") == 0 || strcmp(out, "7d") == 0) {
        return 0;
    }
    for (int w = 0; w < srv->n_windows; w++) {
        if (strcmp(out, srv->windows[w]) == 0) {
            return 0;
        }
    }
    return -1;
}

static enum MHD_Result bad_window(struct smm_http_server *srv, struct MHD_Connection *conn)
{
    char list[256] = "";
    size_t used = 0;
    for (int w = 0; w < srv->n_windows && used < sizeof(list); w++) {
        int k = snprintf(list + used, sizeof(list) - used, "%s, ", srv->windows[w]);
        used += k > 0 ? (size_t)k : 0;
    }
    return send_error(conn, MHD_HTTP_BAD_REQUEST, "window: expected one of %s7d, total", list);
}

/* Reads the replies of n pipelined commands into r. On a transport failure, an error
 * while building (bad) or an error reply: frees them, fills err, and marks a connection
 * that may hold unread replies as failed (pool_put() then closes it). 0 or -1. */
static int collect(redisContext *c, int bad, redisReply **r, int n, char *err, size_t err_size)
{
    if (bad || read_replies(c, r, n) != 0) {
        snprintf(err, err_size, "%s", c->err ? c->errstr : "out of memory");
        c->err = c->err ? c->err : REDIS_ERR_OOM;
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (r[i]->type == REDIS_REPLY_ERROR) {
            snprintf(err, err_size, "%s", r[i]->str);
            free_replies(r, n);
            return -1;
        }
    }
    return 0;
}


static double round_to(double v, double scale)
{
    return round(v * scale) / scale;
}

/* num / den x 100, 4 decimals (as er_impr in Redis), or JSON null when den is 0. */
static cJSON *rate_json(double num, double den)
{
    return den > 0 ? cJSON_CreateNumber(round_to(num / den * 100.0, 1e4)) : cJSON_CreateNull();
}

static int cmp_reply_str(const void *a, const void *b)
{
    const redisReply *x = *(const redisReply *const *)a, *y = *(const redisReply *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->str, y->str, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The admitted values of SMEMBERS reply r (valid ids, "other" left out: the caller adds
 * it last), sorted bytewise, at most MEMBERS_MAX. Returns the count; *out is malloc'd
 * pointers into r (caller frees the array), NULL when none. -1 on out-of-memory. */
static int admitted(const redisReply *r, const redisReply ***out)
{
    *out = NULL;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        return 0;
    }
    const redisReply **v = calloc(r->elements, sizeof(*v));
    if (!v) {
        return -1;
    }
    int n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (!reply_str(e) || e->len == 0 || e->len > ID_MAX ||
            !valid_id((const unsigned char *)e->str, e->len) ||
            (e->len == 5 && memcmp(e->str, "other", 5) == 0)) {
            continue;
        }
        v[n++] = e;
    }
    qsort(v, (size_t)n, sizeof(*v), cmp_reply_str);
    *out = v;
    return n < MEMBERS_MAX ? n : MEMBERS_MAX;
}

/* The 601 bucket counts <name>_0 .. _600 at elements first .. first + 600 of an smm_mget
 * reply and the sum of the durations as an FRT summary object {n, mean_ms, p50_ms, p90_ms, p99_ms} (null figures
 * when n is 0; metrics/response.h).
 *
 * business = 1: the business-hours row. A wait answered with no business time in it (the
 * message and the reply both outside opening hours, no opening between) is bucket 0 of the
 * business histogram; it is not a reply in business hours, and counting it as one made
 * the row read "0 ms" for an account whose replies all came at night. Those waits are
 * left out of n and the figures and counted in `outside_hours` instead, so a row with no
 * reply in business hours has n 0 and null figures. (Bucket 0 also holds a 1 ms wait:
 * too short to matter, and its 1 ms stays in the sum.) */
static cJSON *frt_json(const redisReply *counts, size_t first, double sum_ms, int business)
{
    int buckets[SMM_FRT_MAX_BUCKET + 1];
    int64_t n[SMM_FRT_MAX_BUCKET + 1];
    int k = 0;
    long long outside = 0;
    for (int b = 0; b <= SMM_FRT_MAX_BUCKET; b++) {
        double d = rnum(elem(counts, first + (size_t)b));
        long long v = d >= 9e18 ? INT64_MAX : (long long)d;
        if (business && b == 0) {
            outside = v > 0 ? v : 0;
            continue;
        }
        if (v > 0) {
            buckets[k] = b;
            n[k++] = v;
        }
    }
    struct smm_frt_summary s = {0};
    int64_t sum = sum_ms <= 0 ? 0 : sum_ms >= 9e18 ? INT64_MAX : (int64_t)sum_ms;
    if (smm_frt_summarize(buckets, n, k, sum, &s) != SMM_OK) {
        s.n = 0; /* counts overflowing int64: nothing sensible to show */
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", (double)s.n);
    /* The mean is exact; a percentile is a bucket's representative, within 1.96 % of the
     * true value: 0.1 ms is more than enough digits. */
    const char *names[4] = {"mean_ms", "p50_ms", "p90_ms", "p99_ms"};
    double vals[4] = {s.mean_ms, round_to(s.p50_ms, 10), round_to(s.p90_ms, 10),
                      round_to(s.p99_ms, 10)};
    for (int i = 0; i < 4; i++) {
        cJSON_AddItemToObject(o, names[i],
                              s.n > 0 ? cJSON_CreateNumber(vals[i]) : cJSON_CreateNull());
    }
    if (business) {
        cJSON_AddNumberToObject(o, "outside_hours", (double)outside);
    }
    return o;
}

/* GET /api/v1/response?account=A&window=W */
static enum MHD_Result route_response(struct smm_http_server *srv, struct MHD_Connection *conn)
{
    char acct[ID_MAX * 3 + 1], window[64], why[128], err[256];
    size_t alen;
    if (param_id(conn, "account", acct, &alen, why, sizeof(why)) != 0) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "%s", why);
    }
    if (param_window(srv, conn, window, sizeof(window)) != 0) {
        return bad_window(srv, conn);
    }
    redisContext *c = pool_get(srv, err, sizeof(err));
    if (!c) {
        return redis_unavailable(conn, err);
    }
    /* One smm_mget of the 5 counters and every histogram bucket that can exist (601 of
     * each), then the open waits. */
    struct sbuf list = {0};
    sb_str(&list, "message,threads,answered,frt_ms,frtb_ms");
    for (int h = 0; h < 2; h++) {
        for (int b = 0; b <= SMM_FRT_MAX_BUCKET; b++) {
            char name[24];
            snprintf(name, sizeof(name), ",%s_%d", h ? "frtb" : "frt", b);
            sb_str(&list, name);
        }
    }
    struct smm_argv av;
    smm_argv_init(&av);
    int bad = fcall_begin(&av, srv, "smm_mget");
    bad |= smm_argv_add_str(&av, window);
    bad |= smm_argv_add_int(&av, wall_ms() / 60000);
    bad |= list.err ? -1 : smm_argv_add(&av, list.p, list.len);
    bad |= add_entity(&av, "a:", acct, alen);
    bad |= bad ? -1 : append(c, &av);
    free(list.p);
    smm_argv_reset(&av);
    bad |= smm_argv_add_str(&av, "HGET");
    bad |= add_cat(&av, srv->prefix, "rt:open", "", 0, NULL);
    bad |= smm_argv_add(&av, acct, alen);
    bad |= bad ? -1 : append(c, &av);
    smm_argv_free(&av);
    redisReply *r[2];
    if (collect(c, bad, r, 2, err, sizeof(err)) != 0) {
        pool_put(srv, c);
        return redis_unavailable(conn, err);
    }
    pool_put(srv, c);
    double messages = rnum(elem(r[0], 0)), threads = rnum(elem(r[0], 1));
    double answered = rnum(elem(r[0], 2));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "account", cJSON_CreateString(acct));
    cJSON_AddItemToObject(o, "window", cJSON_CreateString(window));
    cJSON_AddNumberToObject(o, "messages", messages);
    cJSON_AddNumberToObject(o, "threads", threads);
    cJSON_AddNumberToObject(o, "answered", answered);
    cJSON_AddItemToObject(o, "response_rate", rate_json(answered, threads));
    cJSON *frt = cJSON_AddObjectToObject(o, "frt");
    cJSON_AddItemToObject(frt, "all", frt_json(r[0], 5, rnum(elem(r[0], 3)), 0));
    cJSON_AddItemToObject(frt, "business",
                          frt_json(r[0], 5 + SMM_FRT_MAX_BUCKET + 1, rnum(elem(r[0], 4)), 1));
    cJSON_AddNumberToObject(o, "open_threads", rnum(r[1]));
    free_replies(r, 2);
    return send_json(conn, MHD_HTTP_OK, o);
}

/* Shares of a total in percent, rounded to hundredths by largest remainder: each share is
 * within 0.01 of v[i] / total x 100, and they add up to exactly 100.00 when the v[i] add up
 * to the total (to the rounded sum of the exact shares otherwise). All 0 when total <= 0. */
static void shares(const double *v, int n, double total, double *out)
{
    if (n <= 0) {
        return;
    }
    double *rem = calloc((size_t)n, sizeof(*rem));
    double exact_sum = 0, floor_sum = 0;
    for (int i = 0; i < n; i++) {
        double e = total > 0 ? v[i] * 10000.0 / total : 0;
        out[i] = floor(e);
        if (rem) {
            rem[i] = e - out[i];
        }
        exact_sum += e;
        floor_sum += out[i];
    }
    long long extra = llround(exact_sum - floor_sum);
    for (; rem && extra > 0; extra--) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            if (rem[i] > 0 && (best < 0 || rem[i] > rem[best])) {
                best = i;
            }
        }
        if (best < 0) {
            break;
        }
        out[best] += 1;
        rem[best] = 0;
    }
    free(rem);
    for (int i = 0; i < n; i++) {
        out[i] /= 100.0;
    }
}

/* GET /api/v1/sov?set=S&window=W */
static enum MHD_Result route_sov(struct smm_http_server *srv, struct MHD_Connection *conn)
{
    char name[ID_MAX * 3 + 1], window[64], why[128], err[256];
    size_t nlen;
    if (param_id(conn, "set", name, &nlen, why, sizeof(why)) != 0) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "%s", why);
    }
    if (param_window(srv, conn, window, sizeof(window)) != 0) {
        return bad_window(srv, conn);
    }
    const struct sov_set *set = NULL;
    for (int i = 0; i < srv->n_sov && !set; i++) {
        set = strcmp(srv->sov[i].name, name) == 0 ? &srv->sov[i] : NULL;
    }
    if (!set) {
        return send_error(conn, MHD_HTTP_NOT_FOUND, "unknown competitor set (config sov.set.*)");
    }
    static const char *const metrics[3] = {"mention", "mention_reach", "mention_engagement"};
    static const char *const keys[3] = {"mentions", "reach", "engagement"};
    int nb = set->n_brands;
    /* Entities v:<set>|<brand> for every brand, then v:<set> (the set's total). */
    struct smm_argv av;
    smm_argv_init(&av);
    struct sbuf ent = {0};
    int bad = fcall_begin(&av, srv, "smm_mget");
    bad |= smm_argv_add_str(&av, window);
    bad |= smm_argv_add_int(&av, wall_ms() / 60000);
    bad |= add_list(&av, metrics, 3);
    for (int b = 0; b <= nb && !bad; b++) {
        ent.len = 0;
        sb_str(&ent, "v:");
        sb_add(&ent, name, nlen);
        if (b < nb) {
            sb_str(&ent, "|");
            sb_str(&ent, set->brands[b]);
        }
        bad |= ent.err ? -1 : smm_argv_add(&av, ent.p, ent.len);
    }
    free(ent.p);
    redisContext *c = bad ? NULL : pool_get(srv, err, sizeof(err));
    if (!c) {
        smm_argv_free(&av);
        return bad ? send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory")
                   : redis_unavailable(conn, err);
    }
    bad |= append(c, &av);
    smm_argv_free(&av);
    redisReply *r[1];
    if (collect(c, bad, r, 1, err, sizeof(err)) != 0) {
        pool_put(srv, c);
        return redis_unavailable(conn, err);
    }
    pool_put(srv, c);
    double *val = calloc((size_t)(nb + 1) * 3, sizeof(*val));
    double *share = calloc((size_t)(nb + 1) * 3, sizeof(*share));
    if (!val || !share) {
        free(val);
        free(share);
        free_replies(r, 1);
        return send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    /* val[m * (nb + 1) + b]: metric m of brand b (b = nb: the set total). */
    for (int b = 0; b <= nb; b++) {
        for (int m = 0; m < 3; m++) {
            val[m * (nb + 1) + b] = rnum(elem(r[0], (size_t)(b * 3 + m)));
        }
    }
    free_replies(r, 1);
    for (int m = 0; m < 3; m++) {
        shares(val + m * (nb + 1), nb, val[m * (nb + 1) + nb], share + m * (nb + 1));
    }
    static const char *const share_keys[3] = {"share_mentions", "share_reach",
                                              "share_engagement"};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "set", cJSON_CreateString(name));
    cJSON_AddItemToObject(o, "window", cJSON_CreateString(window));
    cJSON *brands = cJSON_AddArrayToObject(o, "brands");
    for (int b = 0; b < nb; b++) {
        cJSON *it = cJSON_CreateObject();
        cJSON_AddItemToObject(it, "brand", cJSON_CreateString(set->brands[b]));
        for (int m = 0; m < 3; m++) {
            cJSON_AddNumberToObject(it, keys[m], val[m * (nb + 1) + b]);
        }
        for (int m = 0; m < 3; m++) {
            cJSON_AddNumberToObject(it, share_keys[m], share[m * (nb + 1) + b]);
        }
        cJSON_AddItemToArray(brands, it);
    }
    cJSON *totals = cJSON_AddObjectToObject(o, "totals");
    for (int m = 0; m < 3; m++) {
        cJSON_AddNumberToObject(totals, keys[m], val[m * (nb + 1) + nb]);
    }
    free(val);
    free(share);
    return send_json(conn, MHD_HTTP_OK, o);
}

/* The two-step read of sources and segments: SMEMBERS <prefix>seg:<acct>:<dim>, then one
 * smm_mget of <fields> of the entities <kind><acct><sep><value> for each admitted value and
 * "other". On success *vals (admitted values, caller frees) and *n_vals (without "other"),
 * *hm the smm_mget reply and *members the SMEMBERS reply (caller frees both). On failure an
 * answer has been queued and *res holds it. */
struct dim_read {
    const redisReply **vals;
    int n_vals;
    redisReply *members, *hm;
};

static int read_dim(struct smm_http_server *srv, struct MHD_Connection *conn, const char *acct,
                    size_t alen, const char *dim, const char *window, const char *kind,
                    const char *sep, const char *const *fields, int n_fields,
                    struct dim_read *out, enum MHD_Result *res)
{
    char err[256];
    memset(out, 0, sizeof(*out));
    redisContext *c = pool_get(srv, err, sizeof(err));
    if (!c) {
        *res = redis_unavailable(conn, err);
        return -1;
    }
    struct smm_argv av;
    smm_argv_init(&av);
    struct sbuf key = {0};
    sb_str(&key, srv->prefix);
    sb_str(&key, "seg:");
    sb_add(&key, acct, alen);
    sb_str(&key, ":");
    sb_str(&key, dim);
    int bad = smm_argv_add_str(&av, "SMEMBERS");
    bad |= key.err ? -1 : smm_argv_add(&av, key.p, key.len);
    free(key.p);
    bad |= bad ? -1 : append(c, &av);
    redisReply *r[1];
    if (collect(c, bad, r, 1, err, sizeof(err)) != 0) {
        smm_argv_free(&av);
        pool_put(srv, c);
        *res = redis_unavailable(conn, err);
        return -1;
    }
    out->members = r[0];
    out->n_vals = admitted(out->members, &out->vals);
    bad = out->n_vals < 0 ? -1 : 0;
    bad |= fcall_begin(&av, srv, "smm_mget");
    bad |= smm_argv_add_str(&av, window);
    bad |= smm_argv_add_int(&av, wall_ms() / 60000);
    bad |= add_list(&av, fields, n_fields);
    struct sbuf ent = {0};
    for (int v = 0; !bad && v <= out->n_vals; v++) {
        ent.len = 0;
        sb_str(&ent, kind);
        sb_add(&ent, acct, alen);
        sb_str(&ent, sep);
        if (v < out->n_vals) {
            sb_add(&ent, out->vals[v]->str, out->vals[v]->len);
        } else {
            sb_str(&ent, "other");
        }
        bad |= ent.err ? -1 : smm_argv_add(&av, ent.p, ent.len);
    }
    free(ent.p);
    bad |= bad ? -1 : append(c, &av);
    smm_argv_free(&av);
    if (collect(c, bad, r, 1, err, sizeof(err)) != 0) {
        pool_put(srv, c);
        free(out->vals);
        freeReplyObject(out->members);
        *res = redis_unavailable(conn, err);
        return -1;
    }
    pool_put(srv, c);
    out->hm = r[0];
    return 0;
}

static void dim_free(struct dim_read *d)
{
    free(d->vals);
    freeReplyObject(d->members);
    freeReplyObject(d->hm);
}

/* The name of admitted value v of d (v = n_vals: "other") as a JSON string. */
static cJSON *dim_name(const struct dim_read *d, int v)
{
    if (v == d->n_vals) {
        return cJSON_CreateString("other");
    }
    return cJSON_CreateString(d->vals[v]->str); /* valid_id: no NUL, UTF-8 */
}

/* GET /api/v1/sources?account=A&window=W */
static enum MHD_Result route_sources(struct smm_http_server *srv, struct MHD_Connection *conn)
{
    char acct[ID_MAX * 3 + 1], window[64], why[128];
    size_t alen;
    if (param_id(conn, "account", acct, &alen, why, sizeof(why)) != 0) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "%s", why);
    }
    if (param_window(srv, conn, window, sizeof(window)) != 0) {
        return bad_window(srv, conn);
    }
    enum { CLICK, REFERRAL, CONVERSION, VALUE, IMPRESSION, IND_CONV, IND_VALUE, NF };
    static const char *const fields[NF] = {"click", "referral", "conversion",
                                           "value_cents", "impression",
                                           "indirect_conversions", "indirect_value_cents"};
    struct dim_read d;
    enum MHD_Result res;
    if (read_dim(srv, conn, acct, alen, "source", window, "s:", "|", fields, NF, &d, &res) != 0) {
        return res;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "account", cJSON_CreateString(acct));
    cJSON_AddItemToObject(o, "window", cJSON_CreateString(window));
    cJSON *list = cJSON_AddArrayToObject(o, "sources");
    for (int v = 0; v <= d.n_vals; v++) {
        double f[NF];
        for (int k = 0; k < NF; k++) {
            f[k] = rnum(elem(d.hm, (size_t)(v * NF + k)));
        }
        cJSON *it = cJSON_CreateObject();
        cJSON_AddItemToObject(it, "source", dim_name(&d, v));
        cJSON_AddNumberToObject(it, "clicks", f[CLICK]);
        cJSON_AddNumberToObject(it, "referrals", f[REFERRAL]);
        cJSON_AddNumberToObject(it, "conversions", f[CONVERSION]);
        cJSON_AddNumberToObject(it, "value", f[VALUE] / 100.0);
        cJSON_AddNumberToObject(it, "impressions", f[IMPRESSION]);
        cJSON_AddItemToObject(it, "ctr", rate_json(f[CLICK], f[IMPRESSION]));
        cJSON_AddItemToObject(it, "conversion_rate", rate_json(f[CONVERSION], f[CLICK]));
        cJSON_AddNumberToObject(it, "indirect_conversions", f[IND_CONV]);
        cJSON_AddNumberToObject(it, "indirect_value", f[IND_VALUE] / 100.0);
        cJSON_AddItemToArray(list, it);
    }
    dim_free(&d);
    return send_json(conn, MHD_HTTP_OK, o);
}

/* GET /api/v1/segments?account=A&dim=region|segment&window=W */
static enum MHD_Result route_segments(struct smm_http_server *srv, struct MHD_Connection *conn)
{
    char acct[ID_MAX * 3 + 1], window[64], dim[16], why[128];
    size_t alen;
    if (param_id(conn, "account", acct, &alen, why, sizeof(why)) != 0) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "%s", why);
    }
    if (param(conn, "dim", "", dim, sizeof(dim)) != 0 ||
        (strcmp(dim, "region") != 0 && strcmp(dim, "segment") != 0)) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "dim: expected region or segment");
    }
    if (param_window(srv, conn, window, sizeof(window)) != 0) {
        return bad_window(srv, conn);
    }
    enum { ENGAGEMENT, IMPRESSION, CONVERSION, VALUE, REACH, NF };
    static const char *const fields[NF] = {"engagement", "impression", "conversion",
                                           "value_cents", "reach"};
    char sep[24];
    snprintf(sep, sizeof(sep), "|%s=", dim);
    struct dim_read d;
    enum MHD_Result res;
    if (read_dim(srv, conn, acct, alen, dim, window, "g:", sep, fields, NF, &d, &res) != 0) {
        return res;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "account", cJSON_CreateString(acct));
    cJSON_AddItemToObject(o, "window", cJSON_CreateString(window));
    cJSON_AddItemToObject(o, "dim", cJSON_CreateString(dim));
    cJSON *list = cJSON_AddArrayToObject(o, "segments");
    for (int v = 0; v <= d.n_vals; v++) {
        double f[NF];
        for (int k = 0; k < NF; k++) {
            f[k] = rnum(elem(d.hm, (size_t)(v * NF + k)));
        }
        cJSON *it = cJSON_CreateObject();
        cJSON_AddItemToObject(it, "name", dim_name(&d, v));
        cJSON_AddNumberToObject(it, "engagement", f[ENGAGEMENT]);
        cJSON_AddNumberToObject(it, "impression", f[IMPRESSION]);
        cJSON_AddNumberToObject(it, "conversion", f[CONVERSION]);
        cJSON_AddNumberToObject(it, "value", f[VALUE] / 100.0);
        cJSON_AddNumberToObject(it, "reach", f[REACH]);
        cJSON_AddItemToObject(it, "er_impr", rate_json(f[ENGAGEMENT], f[IMPRESSION]));
        cJSON_AddItemToArray(list, it);
    }
    dim_free(&d);
    return send_json(conn, MHD_HTTP_OK, o);
}

/* GET /api/v1/goals */
static enum MHD_Result route_goals(struct smm_http_server *srv, struct MHD_Connection *conn)
{
    char err[256];
    int n = srv->n_goals;
    redisReply **r = calloc((size_t)(n > 0 ? n : 1), sizeof(*r));
    redisContext *c = r ? pool_get(srv, err, sizeof(err)) : NULL;
    if (!c) {
        free(r);
        return r ? redis_unavailable(conn, err)
                 : send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    struct smm_argv av;
    smm_argv_init(&av);
    int bad = 0;
    for (int g = 0; g < n && !bad; g++) {
        smm_argv_reset(&av);
        bad |= smm_argv_add_str(&av, "HGETALL");
        bad |= add_cat(&av, srv->prefix, "goal:", srv->goal_ids[g], strlen(srv->goal_ids[g]),
                       NULL);
        bad |= bad ? -1 : append(c, &av);
    }
    smm_argv_free(&av);
    if (collect(c, bad, r, n, err, sizeof(err)) != 0) {
        pool_put(srv, c);
        free(r);
        return redis_unavailable(conn, err);
    }
    pool_put(srv, c);
    cJSON *o = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(o, "goals");
    for (int g = 0; g < n; g++) {
        cJSON *it = cJSON_CreateObject();
        cJSON_AddItemToObject(it, "id", cJSON_CreateString(srv->goal_ids[g]));
        const redisReply *h = r[g];
        int fields = 0;
        for (size_t i = 0; h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2) {
            const redisReply *f = h->element[i], *val = h->element[i + 1];
            if (!reply_str(f) || !reply_str(val) || memchr(f->str, '\0', f->len) ||
                f->len > 127 || (f->len == 2 && memcmp(f->str, "id", 2) == 0)) {
                continue;
            }
            char name[128];
            memcpy(name, f->str, f->len);
            name[f->len] = '\0';
            cJSON *item;
            if (!strcmp(name, "account") || !strcmp(name, "metric") || !strcmp(name, "kind")) {
                if (memchr(val->str, '\0', val->len)) {
                    continue;
                }
                item = cJSON_CreateString(val->str); /* text even when it looks numeric */
            } else if (!strcmp(name, "on_track") || !strcmp(name, "reached")) {
                item = cJSON_CreateBool(rnum(val) != 0);
            } else {
                item = value_json(val->str, val->len);
            }
            cJSON_AddItemToObject(it, name, item);
            fields++;
        }
        /* A goal the processor has not evaluated yet has no hash. */
        cJSON_AddBoolToObject(it, "evaluated", fields > 0);
        cJSON_AddItemToArray(list, it);
    }
    free_replies(r, n);
    free(r);
    return send_json(conn, MHD_HTTP_OK, o);
}

/* GET /api/v1/customers?account=A&limit=20 */
static enum MHD_Result route_customers(struct smm_http_server *srv, struct MHD_Connection *conn)
{
    char acct[ID_MAX * 3 + 1], why[128], err[256];
    size_t alen;
    int limit;
    if (param_id(conn, "account", acct, &alen, why, sizeof(why)) != 0) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "%s", why);
    }
    if (param_limit(conn, 20, LIMIT_MAX, &limit) != 0) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "limit: expected an integer from 1 to %d",
                          LIMIT_MAX);
    }
    redisContext *c = pool_get(srv, err, sizeof(err));
    if (!c) {
        return redis_unavailable(conn, err);
    }
    struct smm_argv av;
    smm_argv_init(&av);
    int bad = 0;
    static const char *const zsets[2] = {"cv:direct:", "cv:indirect:"};
    for (int k = 0; k < 2; k++) {
        smm_argv_reset(&av);
        bad |= smm_argv_add_str(&av, "ZREVRANGE");
        bad |= add_cat(&av, srv->prefix, zsets[k], acct, alen, NULL);
        bad |= smm_argv_add_str(&av, "0");
        bad |= smm_argv_add_int(&av, limit - 1);
        bad |= smm_argv_add_str(&av, "WITHSCORES");
        bad |= bad ? -1 : append(c, &av);
    }
    smm_argv_free(&av);
    redisReply *r[2];
    if (collect(c, bad, r, 2, err, sizeof(err)) != 0) {
        pool_put(srv, c);
        return redis_unavailable(conn, err);
    }
    pool_put(srv, c);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "account", cJSON_CreateString(acct));
    static const char *const names[2] = {"direct", "indirect"};
    for (int k = 0; k < 2; k++) {
        cJSON *list = cJSON_AddArrayToObject(o, names[k]);
        for (size_t i = 0; r[k]->type == REDIS_REPLY_ARRAY && i + 1 < r[k]->elements; i += 2) {
            const redisReply *m = r[k]->element[i], *s = r[k]->element[i + 1];
            if (!reply_str(m) || !reply_str(s) ||
                !valid_id((const unsigned char *)m->str, m->len)) {
                continue;
            }
            cJSON *it = cJSON_CreateObject();
            cJSON_AddItemToObject(it, "user_id", cJSON_CreateString(m->str));
            /* scores are cents: value in currency units, to the cent */
            cJSON_AddNumberToObject(it, "value", round(rnum(s)) / 100.0);
            cJSON_AddItemToArray(list, it);
        }
    }
    free_replies(r, 2);
    return send_json(conn, MHD_HTTP_OK, o);
}

/* ---- the marketing view: accounts, KPI tiles, time series ----
 *
 * These read the account's time buckets through the library: a window and its previous
 * period with smm_get (minute buckets, kept MINUTES_KEPT minutes, for windows up to that;
 * hour buckets, kept HOURS_KEPT hours, beyond), a series with smm_series, and whole days
 * from the day buckets <prefix>d:<day> (a: fields, kept days_keep days, read with HMGET).
 * A figure is the exact sum of whole buckets, and a span whose buckets (or reach sketches)
 * are no longer kept is answered null with the reason, never a partial sum. */

#define MINUTES_KEPT 180     /* minute buckets of an entity hash (docs/redis-keys.md) */
#define HOURS_KEPT 192       /* hour buckets */
#define MINUTE_REACH_KEPT 61 /* a minute reach sketch lives this long after its minute */
#define KPI_FIELDS 4
static const char *const kpi_fields[KPI_FIELDS] = {"impression", "engagement", "share", "click"};
#define ACCOUNTS_HOURS 25      /* reach_accounts:h: sets read: this hour and the 24 before */
#define ACCOUNTS_MAX 10000     /* candidates ranked per request */
#define ACCOUNTS_CHUNK 500     /* accounts per smm_mget call */

/* Pipelines HMGET <prefix><kind><first + i> <a:acct:field>... for i in [0, count) (the day
 * buckets, kind "d:") and adds each reply's numbers into out[i / per][f] (per buckets per
 * output point). 0, or -1 with err (the connection is then marked failed). */
static int sum_buckets(struct smm_http_server *srv, redisContext *c, const char *kind,
                       int64_t first, int count, int per, const char *acct, size_t alen,
                       double (*out)[KPI_FIELDS], char *err, size_t err_size)
{
    struct smm_argv av;
    smm_argv_init(&av);
    int bad = 0;
    for (int i = 0; i < count && !bad; i++) {
        char key[48];
        snprintf(key, sizeof(key), "%s%lld", kind, (long long)(first + i));
        smm_argv_reset(&av);
        bad |= smm_argv_add_str(&av, "HMGET");
        bad |= add_cat(&av, srv->prefix, key, "", 0, NULL);
        for (int f = 0; f < KPI_FIELDS; f++) {
            char suffix[32];
            snprintf(suffix, sizeof(suffix), ":%s", kpi_fields[f]);
            bad |= add_cat(&av, "", "a:", acct, alen, suffix);
        }
        bad |= bad ? -1 : append(c, &av);
    }
    smm_argv_free(&av);
    if (bad) {
        snprintf(err, err_size, "%s", c->err ? c->errstr : "out of memory");
        c->err = c->err ? c->err : REDIS_ERR_OOM;
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < count; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) {
            snprintf(err, err_size, "%s", c->err ? c->errstr : "no reply");
            c->err = c->err ? c->err : REDIS_ERR_EOF;
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR && rc == 0) {
            snprintf(err, err_size, "%s", r->str);
            rc = -1; /* keep reading: the pipeline must be drained */
        }
        for (int f = 0; f < KPI_FIELDS; f++) {
            out[i / per][f] += rnum(elem(r, (size_t)f));
        }
        freeReplyObject(r);
    }
    return rc;
}

/* A window label as minutes: "<n>m", "<n>h" or "<n>d". 0 when not of that form. */
static int64_t label_minutes(const char *s)
{
    char *end;
    long long n = strtoll(s, &end, 10);
    if (end == s || n <= 0 || n > 100000 || end[0] == '\0' || end[1] != '\0') {
        return 0;
    }
    return end[0] == 'm' ? n : end[0] == 'h' ? n * 60 : end[0] == 'd' ? n * 1440 : 0;
}

/* GET /api/v1/sets: the configured competitor sets and their brands (no Redis), so a
 * page can ask /api/v1/sov for each. */
static enum MHD_Result route_sets(struct smm_http_server *srv, struct MHD_Connection *conn)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(o, "sets");
    for (int i = 0; i < srv->n_sov; i++) {
        cJSON *it = cJSON_CreateObject();
        cJSON_AddStringToObject(it, "set", srv->sov[i].name);
        cJSON *b = cJSON_AddArrayToObject(it, "brands");
        for (int k = 0; k < srv->sov[i].n_brands; k++) {
            cJSON_AddItemToArray(b, cJSON_CreateString(srv->sov[i].brands[k]));
        }
        cJSON_AddItemToArray(list, it);
    }
    return send_json(conn, MHD_HTTP_OK, o);
}

/* GET /api/v1/accounts?limit=N: the accounts whose content reached someone in this hour or
 * the 24 before (SMEMBERS of the 25 sets <prefix>reach_accounts:h:<hour>), ranked by their
 * engagement in the longest configured window (smm_mget), then by id. */
static enum MHD_Result route_accounts(struct smm_http_server *srv, struct MHD_Connection *conn)
{
    int limit;
    char err[256];
    if (param_limit(conn, 100, LIMIT_MAX, &limit) != 0) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "limit: expected an integer from 1 to %d",
                          LIMIT_MAX);
    }
    redisContext *c = pool_get(srv, err, sizeof(err));
    if (!c) {
        return redis_unavailable(conn, err);
    }
    int64_t hour = wall_ms() / 3600000;
    struct smm_argv av;
    smm_argv_init(&av);
    int bad = 0;
    for (int h = 0; h < ACCOUNTS_HOURS; h++) {
        char key[48];
        snprintf(key, sizeof(key), "reach_accounts:h:%lld", (long long)(hour - h));
        smm_argv_reset(&av);
        bad |= smm_argv_add_str(&av, "SMEMBERS");
        bad |= add_cat(&av, srv->prefix, key, "", 0, NULL);
        bad |= bad ? -1 : append(c, &av);
    }
    redisReply *r[ACCOUNTS_HOURS];
    if (collect(c, bad, r, ACCOUNTS_HOURS, err, sizeof(err)) != 0) {
        smm_argv_free(&av);
        pool_put(srv, c);
        return redis_unavailable(conn, err);
    }
    /* Every "a:<id>" member, sorted and deduplicated, at most ACCOUNTS_MAX. */
    size_t total = 0;
    for (int h = 0; h < ACCOUNTS_HOURS; h++) {
        total += r[h]->type == REDIS_REPLY_ARRAY ? r[h]->elements : 0;
    }
    const redisReply **ids = calloc(total ? total : 1, sizeof(*ids));
    int n = 0;
    for (int h = 0; ids && h < ACCOUNTS_HOURS; h++) {
        for (size_t i = 0; r[h]->type == REDIS_REPLY_ARRAY && i < r[h]->elements; i++) {
            const redisReply *e = r[h]->element[i];
            if (reply_str(e) && e->len > 2 && e->len <= ID_MAX + 2 &&
                memcmp(e->str, "a:", 2) == 0 &&
                valid_id((const unsigned char *)e->str + 2, e->len - 2)) {
                ids[n++] = e;
            }
        }
    }
    qsort(ids, (size_t)n, sizeof(*ids), cmp_reply_str);
    int u = 0;
    for (int i = 0; i < n; i++) {
        if (u == 0 || cmp_reply_str(&ids[u - 1], &ids[i]) != 0) {
            ids[u++] = ids[i];
        }
    }
    n = u < ACCOUNTS_MAX ? u : ACCOUNTS_MAX;
    const char *win = srv->n_windows ? srv->windows[srv->n_windows - 1] : NULL;
    /* Their engagement in the window: smm_mget of ACCOUNTS_CHUNK accounts per call, all
     * pipelined, so no single call holds Redis for long. */
    int n_calls = n > 0 && win && ids ? (n + ACCOUNTS_CHUNK - 1) / ACCOUNTS_CHUNK : 0;
    redisReply *eng[ACCOUNTS_MAX / ACCOUNTS_CHUNK];
    int64_t minute = wall_ms() / 60000;
    for (int k = 0; k < n_calls; k++) {
        static const char *const engagement[1] = {"engagement"};
        bad |= fcall_begin(&av, srv, "smm_mget");
        bad |= smm_argv_add_str(&av, win);
        bad |= smm_argv_add_int(&av, minute);
        bad |= add_list(&av, engagement, 1);
        for (int i = k * ACCOUNTS_CHUNK; i < n && i < (k + 1) * ACCOUNTS_CHUNK; i++) {
            bad |= smm_argv_add(&av, ids[i]->str, ids[i]->len);
        }
        bad |= bad ? -1 : append(c, &av);
    }
    smm_argv_free(&av);
    if (n_calls > 0 && collect(c, bad, eng, n_calls, err, sizeof(err)) != 0) {
        free(ids);
        free_replies(r, ACCOUNTS_HOURS);
        pool_put(srv, c);
        return redis_unavailable(conn, err);
    }
    pool_put(srv, c);
    if (!ids) {
        free_replies(r, ACCOUNTS_HOURS);
        return send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    /* rank: engagement descending, then id (stable: ids are sorted already) */
    double *score = calloc((size_t)(n ? n : 1), sizeof(*score));
    int *order = calloc((size_t)(n ? n : 1), sizeof(*order));
    for (int i = 0; score && order && i < n; i++) {
        score[i] = rnum(elem(eng[i / ACCOUNTS_CHUNK], (size_t)(i % ACCOUNTS_CHUNK)));
        order[i] = i;
        for (int k = i; k > 0 && score[order[k]] > score[order[k - 1]]; k--) {
            int t = order[k];
            order[k] = order[k - 1];
            order[k - 1] = t;
        }
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "window", win ? cJSON_CreateString(win) : cJSON_CreateNull());
    cJSON *list = cJSON_AddArrayToObject(o, "accounts");
    for (int i = 0; score && order && i < n && i < limit; i++) {
        const redisReply *e = ids[order[i]];
        cJSON *it = cJSON_CreateObject();
        char *id = strndup(e->str + 2, e->len - 2);
        cJSON_AddItemToObject(it, "account", cJSON_CreateString(id ? id : ""));
        free(id);
        cJSON_AddNumberToObject(it, "engagement", score[order[i]]);
        cJSON_AddItemToArray(list, it);
    }
    cJSON_AddNumberToObject(o, "total", (double)n);
    free(score);
    free(order);
    free(ids);
    free_replies(eng, n_calls);
    free_replies(r, ACCOUNTS_HOURS);
    return send_json(conn, MHD_HTTP_OK, o);
}

/* (cur - prev) / prev x 100 to 2 decimals; null when either is unknown or prev is 0. */
static cJSON *change_json(const cJSON *cur, const cJSON *prev)
{
    if (!cJSON_IsNumber(cur) || !cJSON_IsNumber(prev) || prev->valuedouble == 0) {
        return cJSON_CreateNull();
    }
    return cJSON_CreateNumber(
        round_to((cur->valuedouble - prev->valuedouble) / prev->valuedouble * 100.0, 100));
}

/* One KPI tile: {value, previous, change_pct, exact, granularity[, reason,
 * previous_reason]}; a NULL cur or prev is null, with its reason. Takes cur and prev. */
static void kpi_add(cJSON *kpis, const char *name, cJSON *cur, cJSON *prev, int exact,
                    const char *gran, const char *reason, const char *prev_reason)
{
    cJSON *k = cJSON_AddObjectToObject(kpis, name);
    cur = cur ? cur : cJSON_CreateNull();
    prev = prev ? prev : cJSON_CreateNull();
    cJSON_AddItemToObject(k, "value", cur);
    cJSON_AddItemToObject(k, "previous", prev);
    cJSON_AddItemToObject(k, "change_pct", change_json(cur, prev));
    cJSON_AddBoolToObject(k, "exact", exact && cJSON_IsNumber(cur));
    cJSON_AddStringToObject(k, "granularity", gran);
    if (cJSON_IsNull(cur) && reason) {
        cJSON_AddStringToObject(k, "reason", reason);
    }
    if (cJSON_IsNull(prev) && prev_reason) {
        cJSON_AddStringToObject(k, "previous_reason", prev_reason);
    }
}

/* Where the library is asked for an account's reach over a KPI span (p = 0: the window,
 * 1: the previous period): the window label and the minute to read it at (smm_mget). The
 * library unions minute sketches up to 60 minutes (each kept 61 minutes after its minute
 * once its hour is merged), the current hour's minutes and whole hour sketches up to 48 h
 * (kept keep_minutes after the hour's end), and UTC day sketches beyond (kept 15 days), an
 * hour wholly inside the span from its hour sketch: docs/redis-keys.md, "Reach". So:
 * - minute windows: the window; the previous period from minute sketches up to 30 minutes
 *   (still kept), else hour-granular: the ceil(len/60) whole hours before the hour the
 *   window starts in (1h: the whole hour before it);
 * - hour windows: the window; the previous period as its counters, the same number of
 *   whole hours before the window's first (24h: "23h" read at that hour's last minute);
 * - day windows: today and the len - 1 days before ("6d": the counters' UTC days), and the
 *   len days before those (read at the last minute of the day before the window's first).
 * 0, or -1 with why when the span's sketches are no longer kept (an undercount). */
static int kpi_reach_span(const struct smm_http_server *srv, const char *window, int64_t now_min,
                          int64_t len, int by_day, int p, char *label, size_t label_size,
                          int64_t *minute, char *why, size_t why_size)
{
    int64_t now_hour = now_min / 60, k = (len + 59) / 60, oldest_hour;
    snprintf(why, why_size,
             "unique-user sketches of the %s are no longer kept (minute sketches: 61 minutes, "
             "hour sketches: %lld minutes after their hour, day sketches: 15 days)",
             p ? "previous period" : "window", (long long)srv->keep_minutes);
    if (by_day) {
        int64_t days = len / 1440, rdays = days >= 4 ? days - 1 : days;
        snprintf(label, label_size, "%lldd", (long long)rdays);
        *minute = p ? (now_min / 1440 - rdays) * 1440 - 1 : now_min;
        return p && days < 4 ? -1 : 0; /* 2d, 3d: "1d"/"2d" are not day-granular */
    }
    snprintf(label, label_size, "%s", window);
    if (p == 0) {
        *minute = now_min;
        oldest_hour = now_hour - k;
        return len <= 60 || len > 48 * 60 || now_min - (oldest_hour + 1) * 60 < srv->keep_minutes
                   ? 0
                   : -1;
    }
    if (len <= 30) {
        *minute = now_min - len; /* its minute sketches are younger than 61 minutes */
        return 0;
    }
    int64_t first_hour = len <= 60 ? (now_min - len + 1) / 60 : now_hour - k;
    if (len <= 60) {
        k = 1;
        snprintf(label, label_size, "60m");
    } else if (k >= 3 && k <= 49) {
        snprintf(label, label_size, "%lldh", (long long)(k - 1));
    } else {
        return -1; /* no library window is k whole hours ending with a whole hour */
    }
    *minute = first_hour * 60 - 1;
    oldest_hour = first_hour - k;
    return now_min - (oldest_hour + 1) * 60 < srv->keep_minutes ? 0 : -1;
}

/* GET /api/v1/kpis?account=A&window=5m|1h|24h|7d: impressions, reach, engagement, the two
 * engagement rates, shares and clicks of account A in the window and in the period of the
 * same length before it (docs/api.md). */
static enum MHD_Result route_kpis(struct smm_http_server *srv, struct MHD_Connection *conn)
{
    char acct[ID_MAX * 3 + 1], window[64], why[128], err[256];
    size_t alen;
    if (param_id(conn, "account", acct, &alen, why, sizeof(why)) != 0) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "%s", why);
    }
    if (param(conn, "window", "1h", window, sizeof(window)) != 0) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "window: malformed");
    }
    int configured = 0;
    for (int w = 0; w < srv->n_windows; w++) {
        configured |= strcmp(window, srv->windows[w]) == 0;
    }
    int64_t wmin = label_minutes(window);
    /* Whole days beyond one day come from the day buckets; up to MINUTES_KEPT minutes from
     * the minute buckets (exact to the minute); anything else from the hour buckets (the
     * current hour so far and the whole hours before it), as the library sums a window. */
    int by_day = wmin > 1440 && wmin % 1440 == 0;
    int by_hour = !by_day && wmin > MINUTES_KEPT;
    if (wmin <= 0 || (!configured && strcmp(window, "7d") != 0) ||
        (by_hour && (wmin % 60 != 0 || wmin / 60 >= HOURS_KEPT))) {
        char list[256] = "";
        size_t used = 0;
        for (int w = 0; w < srv->n_windows && used < sizeof(list); w++) {
            int k = snprintf(list + used, sizeof(list) - used, "%s, ", srv->windows[w]);
            used += k > 0 ? (size_t)k : 0;
        }
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "window: expected one of %s7d", list);
    }
    int64_t now_min = wall_ms() / 60000, now_hour = now_min / 60;
    int64_t hours = wmin / 60;
    int64_t prev_min = now_min - wmin; /* the minute the previous period ends with */
    /* A bucket is kept while it is younger than its lifetime: the previous period's oldest
     * bucket is 2 x len - 1 minutes / 2 x hours hours / 2 x len - 1 days old. */
    int prev_ok = by_day    ? 2 * (wmin / 1440) - 1 <= srv->days_keep
                  : by_hour ? 2 * hours < HOURS_KEPT
                            : 2 * wmin <= MINUTES_KEPT;
    char reach_label[2][64], reach_why[2][256];
    int64_t reach_min[2];
    int reach_ok[2];
    for (int p = 0; p < 2; p++) {
        reach_ok[p] = kpi_reach_span(srv, window, now_min, wmin, by_day, p, reach_label[p],
                                     sizeof(reach_label[p]), &reach_min[p], reach_why[p],
                                     sizeof(reach_why[p])) == 0;
    }
    redisContext *c = pool_get(srv, err, sizeof(err));
    if (!c) {
        return redis_unavailable(conn, err);
    }
    /* got[0]: smm_get of the window; got[1]: of the previous period (minute windows), or
     * smm_series of its hours (hour windows: the whole hours before the window's first,
     * never the minute fields of a partial hour that the window's first hour holds too);
     * NULL when not asked. Day windows then sum their day buckets. rgot[p]: smm_mget of the
     * reach of span p (kpi_reach_span()), NULL when its sketches are gone. */
    redisReply *got[2] = {NULL, NULL}, *rgot[2] = {NULL, NULL};
    int ask_prev = by_hour ? prev_ok : !by_day && prev_ok;
    struct smm_argv av;
    smm_argv_init(&av);
    int bad = 0, n = 0, ask_cur = !by_day; /* days: the day buckets below */
    if (ask_cur) {
        bad |= fcall_get(&av, srv, "a:", acct, alen, window, now_min);
        bad |= bad ? -1 : append(c, &av);
        n++;
    }
    if (ask_prev && by_hour) {
        bad |= fcall_begin(&av, srv, "smm_series");
        bad |= add_entity(&av, "a:", acct, alen);
        bad |= smm_argv_add_str(&av, "h");
        bad |= smm_argv_add_int(&av, now_hour - 2 * hours);
        bad |= smm_argv_add_int(&av, now_hour - hours - 1);
        bad |= add_list(&av, kpi_fields, KPI_FIELDS);
        bad |= bad ? -1 : append(c, &av);
    } else if (ask_prev) {
        bad |= fcall_get(&av, srv, "a:", acct, alen, window, prev_min);
        bad |= bad ? -1 : append(c, &av);
    }
    int n_reach = 0;
    for (int p = 0; p < 2; p++) {
        if (reach_ok[p]) {
            bad |= fcall_begin(&av, srv, "smm_mget");
            bad |= smm_argv_add_str(&av, reach_label[p]);
            bad |= smm_argv_add_int(&av, reach_min[p]);
            bad |= smm_argv_add_str(&av, "reach");
            bad |= add_entity(&av, "a:", acct, alen);
            bad |= bad ? -1 : append(c, &av);
            n_reach++;
        }
    }
    smm_argv_free(&av);
    redisReply *r[4];
    int rc = collect(c, bad, r, n + ask_prev + n_reach, err, sizeof(err));
    if (rc == 0) {
        got[0] = ask_cur ? r[0] : NULL;
        got[1] = ask_prev ? r[n] : NULL;
        int at = n + ask_prev;
        for (int p = 0; p < 2; p++) {
            rgot[p] = reach_ok[p] ? r[at++] : NULL;
        }
    }
    double sums[2][KPI_FIELDS] = {{0}};
    if (rc == 0 && by_day) {
        int64_t len = wmin / 1440, today = now_min / 1440;
        rc = sum_buckets(srv, c, "d:", today - len + 1, (int)len, (int)len, acct, alen,
                         &sums[0], err, sizeof(err));
        if (rc == 0 && prev_ok) {
            rc = sum_buckets(srv, c, "d:", today - 2 * len + 1, (int)len, (int)len, acct, alen,
                             &sums[1], err, sizeof(err));
        }
    } else if (rc == 0) {
        for (int f = 0; f < KPI_FIELDS; f++) {
            sums[0][f] = rnum(pair_value(got[0], kpi_fields[f]));
            if (!by_hour) {
                sums[1][f] = rnum(pair_value(got[1], kpi_fields[f]));
            }
            for (int64_t h = 0; by_hour && h < hours; h++) {
                sums[1][f] += rnum(elem(got[1], (size_t)(h * KPI_FIELDS + f)));
            }
        }
    }
    pool_put(srv, c);
    if (rc != 0) {
        freeReplyObject(got[0]);
        freeReplyObject(got[1]);
        freeReplyObject(rgot[0]);
        freeReplyObject(rgot[1]);
        return redis_unavailable(conn, err);
    }
    const char *gran = by_day ? "day" : by_hour ? "hour" : "minute";
    int64_t from, to, pfrom, pto; /* ms */
    if (by_day) {
        int64_t len = wmin / 1440, today = now_min / 1440;
        from = (today - len + 1) * 86400000;
        to = (today + 1) * 86400000;
        pfrom = (today - 2 * len + 1) * 86400000;
        pto = from;
    } else if (by_hour) {
        from = (now_hour - hours) * 3600000;
        to = (now_min + 1) * 60000;
        pfrom = (now_hour - 2 * hours) * 3600000;
        pto = from;
    } else {
        from = (now_min - wmin + 1) * 60000;
        to = (now_min + 1) * 60000;
        pfrom = (prev_min - wmin + 1) * 60000;
        pto = from;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "account", cJSON_CreateString(acct));
    cJSON_AddStringToObject(o, "window", window);
    cJSON_AddStringToObject(o, "granularity", gran);
    cJSON_AddNumberToObject(o, "from_ms", (double)from);
    cJSON_AddNumberToObject(o, "to_ms", (double)to);
    cJSON_AddNumberToObject(o, "previous_from_ms", (double)pfrom);
    cJSON_AddNumberToObject(o, "previous_to_ms", (double)pto);
    if (by_day) {
        cJSON_AddStringToObject(o, "note", "whole UTC days: today so far and the days before");
    }
    char prev_why[192];
    if (by_day) {
        snprintf(prev_why, sizeof(prev_why),
                 "day buckets are kept %lld days; the previous period needs %lld",
                 (long long)srv->days_keep, (long long)(2 * (wmin / 1440)));
    } else if (by_hour) {
        snprintf(prev_why, sizeof(prev_why),
                 "hour buckets are kept %d hours; the previous period needs %lld", HOURS_KEPT,
                 (long long)(2 * hours + 1));
    } else {
        snprintf(prev_why, sizeof(prev_why),
                 "minute buckets are kept %d minutes; the previous period needs %lld",
                 MINUTES_KEPT, (long long)(2 * wmin));
    }
    const char *pw = prev_ok ? NULL : prev_why;
    cJSON *kpis = cJSON_AddObjectToObject(o, "kpis");
#define CUR(f) cJSON_CreateNumber(sums[0][f])
#define PREV(f) (prev_ok ? cJSON_CreateNumber(sums[1][f]) : NULL)
    kpi_add(kpis, "impression", CUR(0), PREV(0), 1, gran, NULL, pw);
    /* Reach comes from the library (unique users do not add up over buckets: it unions the
     * account's sketches of the span, kpi_reach_span()), er_reach is the period's engagement
     * over it. */
    cJSON *reach[2], *er_reach[2];
    for (int p = 0; p < 2; p++) {
        const redisReply *rv = reach_ok[p] ? elem(rgot[p], 0) : NULL;
        int known = rv && (rv->type == REDIS_REPLY_STRING || rv->type == REDIS_REPLY_INTEGER);
        if (reach_ok[p] && !known) {
            snprintf(reach_why[p], sizeof(reach_why[p]),
                     "the unique-user sketches of the %s are no longer kept",
                     p ? "previous period" : "window");
        }
        reach[p] = known ? cJSON_CreateNumber(rnum(rv)) : NULL;
        er_reach[p] = known && (p == 0 || prev_ok) && rnum(rv) > 0
                          ? rate_json(sums[p][1], rnum(rv))
                          : NULL;
        reach_ok[p] = known;
    }
    kpi_add(kpis, "reach", reach[0], reach[1], 0, "estimate", reach_why[0], reach_why[1]);
    kpi_add(kpis, "engagement", CUR(1), PREV(1), 1, gran, NULL, pw);
    kpi_add(kpis, "er_impr", rate_json(sums[0][1], sums[0][0]),
            prev_ok ? rate_json(sums[1][1], sums[1][0]) : NULL, 1, gran,
            "no impressions in the window", pw ? pw : "no impressions in the previous period");
    kpi_add(kpis, "er_reach", er_reach[0], er_reach[1], 0, "estimate",
            reach_ok[0] ? "reach is 0" : reach_why[0],
            !reach_ok[1]   ? reach_why[1]
            : prev_ok      ? "reach is 0 in the previous period"
            : pw);
    kpi_add(kpis, "share", CUR(2), PREV(2), 1, gran, NULL, pw);
    kpi_add(kpis, "click", CUR(3), PREV(3), 1, gran, NULL, pw);
#undef CUR
#undef PREV
    freeReplyObject(got[0]);
    freeReplyObject(got[1]);
    freeReplyObject(rgot[0]);
    freeReplyObject(rgot[1]);
    return send_json(conn, MHD_HTTP_OK, o);
}

/* GET /api/v1/series?account=A&step=minute|hour|day&points=N: account A's impressions,
 * engagement, shares, clicks and er_impr per bucket, oldest first, the current one last. */
static enum MHD_Result route_series(struct smm_http_server *srv, struct MHD_Connection *conn)
{
    char acct[ID_MAX * 3 + 1], step[16], pts[16], why[128], err[256];
    size_t alen;
    if (param_id(conn, "account", acct, &alen, why, sizeof(why)) != 0) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "%s", why);
    }
    if (param(conn, "step", "minute", step, sizeof(step)) != 0 ||
        (strcmp(step, "minute") != 0 && strcmp(step, "hour") != 0 && strcmp(step, "day") != 0)) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "step: expected minute, hour or day");
    }
    /* The most points whose buckets are all still kept. */
    int64_t now_min = wall_ms() / 60000;
    int hour = strcmp(step, "hour") == 0, day = strcmp(step, "day") == 0;
    int64_t max = day    ? (srv->days_keep < 90 ? srv->days_keep : 90)
                  : hour ? HOURS_KEPT
                         : MINUTES_KEPT;
    int def = day ? 14 : hour ? 24 : 60;
    def = def > max ? (int)max : def;
    long n = def;
    if (param(conn, "points", "", pts, sizeof(pts)) != 0) {
        n = -1;
    } else if (pts[0]) {
        char *end;
        n = strtol(pts, &end, 10);
        n = *end || end == pts ? -1 : n;
    }
    if (n < 1 || n > max) {
        return send_error(conn, MHD_HTTP_BAD_REQUEST,
                          "points: expected an integer from 1 to %lld for step=%s "
                          "(the buckets kept)", (long long)max, step);
    }
    double(*v)[KPI_FIELDS] = calloc((size_t)n, sizeof(*v));
    if (!v) {
        return send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    redisContext *c = pool_get(srv, err, sizeof(err));
    if (!c) {
        free(v);
        return redis_unavailable(conn, err);
    }
    int64_t last = day ? now_min / 1440 : hour ? now_min / 60 : now_min;
    int64_t step_ms = day ? 86400000 : hour ? 3600000 : 60000;
    int rc;
    if (day) {
        rc = sum_buckets(srv, c, "d:", last - n + 1, (int)n, 1, acct, alen, v, err,
                         sizeof(err));
    } else {
        struct smm_argv av;
        smm_argv_init(&av);
        int bad = fcall_begin(&av, srv, "smm_series");
        bad |= add_entity(&av, "a:", acct, alen);
        bad |= smm_argv_add_str(&av, hour ? "h" : "m");
        bad |= smm_argv_add_int(&av, last - n + 1);
        bad |= smm_argv_add_int(&av, last);
        bad |= add_list(&av, kpi_fields, KPI_FIELDS);
        bad |= bad ? -1 : append(c, &av);
        smm_argv_free(&av);
        redisReply *r;
        rc = collect(c, bad, &r, 1, err, sizeof(err));
        for (long i = 0; rc == 0 && i < n; i++) {
            for (int f = 0; f < KPI_FIELDS; f++) {
                v[i][f] = rnum(elem(r, (size_t)(i * KPI_FIELDS + f)));
            }
        }
        if (rc == 0) {
            freeReplyObject(r);
        }
    }
    pool_put(srv, c);
    if (rc != 0) {
        free(v);
        return redis_unavailable(conn, err);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "account", cJSON_CreateString(acct));
    cJSON_AddStringToObject(o, "step", step);
    cJSON_AddNumberToObject(o, "step_ms", (double)step_ms);
    cJSON_AddNumberToObject(o, "start_ms", (double)((last - n + 1) * step_ms));
    cJSON_AddNumberToObject(o, "points", (double)n);
    cJSON *series = cJSON_AddObjectToObject(o, "series");
    for (int f = 0; f < KPI_FIELDS; f++) {
        cJSON *a = cJSON_AddArrayToObject(series, kpi_fields[f]);
        for (long i = 0; i < n; i++) {
            cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i][f]));
        }
    }
    cJSON *er = cJSON_AddArrayToObject(series, "er_impr");
    for (long i = 0; i < n; i++) {
        cJSON_AddItemToArray(er, rate_json(v[i][1], v[i][0]));
    }
    free(v);
    return send_json(conn, MHD_HTTP_OK, o);
}

/* The sum of the open waits of every account (HVALS <prefix>rt:open), or -1 when Redis
 * cannot be read: O(accounts with open waits) per scrape. */
static int64_t open_threads(struct smm_http_server *srv)
{
    char err[256];
    redisContext *c = pool_get(srv, err, sizeof(err));
    if (!c) {
        return -1;
    }
    struct smm_argv av;
    smm_argv_init(&av);
    int bad = smm_argv_add_str(&av, "HVALS");
    bad |= add_cat(&av, srv->prefix, "rt:open", "", 0, NULL);
    bad |= bad ? -1 : append(c, &av);
    smm_argv_free(&av);
    redisReply *r[1];
    if (collect(c, bad, r, 1, err, sizeof(err)) != 0) {
        pool_put(srv, c);
        return -1; /* /readyz and the loop report Redis; the gauge is left out */
    }
    pool_put(srv, c);
    int64_t sum = 0;
    for (size_t i = 0; r[0]->type == REDIS_REPLY_ARRAY && i < r[0]->elements; i++) {
        long long v = reply_str(r[0]->element[i]) ? strtoll(r[0]->element[i]->str, NULL, 10) : 0;
        sum += v > 0 ? v : 0;
    }
    free_replies(r, 1);
    return sum;
}

static enum MHD_Result route_readyz(struct smm_http_server *srv, struct MHD_Connection *conn)
{
    char why[512] = "";
    int ready = srv->ops.ready ? srv->ops.ready(srv->ops.opaque, why, sizeof(why)) : 1;
    /* Our own look at Redis too: the loop notices an outage only at its next call. */
    char err[256] = "";
    redisContext *c = pool_get(srv, err, sizeof(err));
    if (c) {
        redisReply *r = redisCommand(c, "PING");
        if (!r || r->type == REDIS_REPLY_ERROR) {
            snprintf(err, sizeof(err), "redis PING: %s", r ? r->str : c->errstr);
            c->err = c->err ? c->err : REDIS_ERR_OTHER;
        }
        freeReplyObject(r);
        pool_put(srv, c);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *reasons = cJSON_CreateArray();
    if (!ready) {
        for (char *p = why, *save = NULL, *tok; (tok = strtok_r(p, ";", &save)); p = NULL) {
            while (*tok == ' ') {
                tok++;
            }
            cJSON_AddItemToArray(reasons, cJSON_CreateString(tok));
        }
    }
    if (err[0]) {
        ready = 0;
        cJSON_AddItemToArray(reasons, cJSON_CreateString(err));
    }
    cJSON_AddBoolToObject(o, "ready", ready);
    cJSON_AddItemToObject(o, "reasons", reasons);
    return send_json(conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, o);
}

/* ---- Server-Sent Events ---- */

struct sse {
    struct smm_http_server *srv;
    redisContext *c;
    char last_id[64]; /* the last alert stream id delivered ("" = not resolved yet) */
    int64_t next_summary_ms;
    int64_t retry_at_ms;
    char *buf;
    size_t len, off, cap;
};

static int sse_put(struct sse *s, const char *a, size_t alen)
{
    if (s->len + alen > s->cap) {
        size_t ncap = (s->len + alen) * 2;
        char *nb = realloc(s->buf, ncap);
        if (!nb) {
            return -1;
        }
        s->buf = nb;
        s->cap = ncap;
    }
    memcpy(s->buf + s->len, a, alen);
    s->len += alen;
    return 0;
}

static int sse_event(struct sse *s, const char *event, const char *id, const char *data)
{
    char head[160];
    int n = id ? snprintf(head, sizeof(head), "event: %s\nid: %s\ndata: ", event, id)
               : snprintf(head, sizeof(head), "event: %s\ndata: ", event);
    return sse_put(s, head, (size_t)n) | sse_put(s, data, strlen(data)) | sse_put(s, "\n\n", 2);
}

static void sse_drop_redis(struct sse *s)
{
    redisFree(s->c);
    s->c = NULL;
    s->retry_at_ms = mono_ms() + 500;
}

/* Waits up to ms for new alerts and queues them as events. */
static void sse_alerts(struct sse *s, int64_t ms)
{
    struct smm_http_server *srv = s->srv;
    if (!s->c && mono_ms() >= s->retry_at_ms) {
        char err[256];
        s->c = redis_open(srv, srv->redis_timeout_ms, err, sizeof(err));
        if (!s->c) {
            s->retry_at_ms = mono_ms() + 500;
        }
    }
    if (!s->c) {
        int64_t nap = ms < 200 ? ms : 200;
        nanosleep(&(struct timespec){(time_t)(nap / 1000), (long)(nap % 1000) * 1000000}, NULL);
        return;
    }
    struct smm_argv av;
    smm_argv_init(&av);
    int bad = 0;
    if (!s->last_id[0]) {
        /* Start after the newest entry: a client gets the alerts from now on. */
        bad |= smm_argv_add_str(&av, "XREVRANGE");
        bad |= add_cat(&av, srv->prefix, "alerts", "", 0, NULL);
        bad |= smm_argv_add_str(&av, "+");
        bad |= smm_argv_add_str(&av, "-");
        bad |= smm_argv_add_str(&av, "COUNT");
        bad |= smm_argv_add_str(&av, "1");
    } else {
        bad |= smm_argv_add_str(&av, "XREAD");
        bad |= smm_argv_add_str(&av, "COUNT");
        bad |= smm_argv_add_str(&av, "100");
        bad |= smm_argv_add_str(&av, "BLOCK");
        bad |= smm_argv_add_int(&av, ms > 0 ? ms : 1);
        bad |= smm_argv_add_str(&av, "STREAMS");
        bad |= add_cat(&av, srv->prefix, "alerts", "", 0, NULL);
        bad |= smm_argv_add_str(&av, s->last_id);
    }
    struct timeval tv = {(time_t)((ms + srv->redis_timeout_ms) / 1000),
                         (suseconds_t)(((ms + srv->redis_timeout_ms) % 1000) * 1000)};
    redisSetTimeout(s->c, tv);
    redisReply *r = NULL;
    if (!bad && append(s->c, &av) == 0) {
        void *rep = NULL;
        if (redisGetReply(s->c, &rep) == REDIS_OK) {
            r = rep;
        }
    }
    smm_argv_free(&av);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        sse_drop_redis(s);
        return;
    }
    const redisReply *entries = NULL;
    if (!s->last_id[0]) {
        snprintf(s->last_id, sizeof(s->last_id), "0-0");
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
            r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
            reply_str(r->element[0]->element[0])) {
            snprintf(s->last_id, sizeof(s->last_id), "%s", r->element[0]->element[0]->str);
        }
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
               r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2) {
        entries = r->element[0]->element[1];
    }
    for (size_t i = 0; entries && entries->type == REDIS_REPLY_ARRAY && i < entries->elements;
         i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !reply_str(e->element[0])) {
            continue;
        }
        snprintf(s->last_id, sizeof(s->last_id), "%s", e->element[0]->str);
        cJSON *j = alert_json(e->element[1]);
        char *data = j ? cJSON_PrintUnformatted(j) : NULL;
        cJSON_Delete(j);
        if (data) {
            sse_event(s, "alert", s->last_id, data);
            free(data);
        }
    }
    freeReplyObject(r);
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct sse *s = cls;
    for (;;) {
        if (__atomic_load_n(&s->srv->stopping, __ATOMIC_ACQUIRE)) {
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (s->off < s->len) {
            size_t n = s->len - s->off < max ? s->len - s->off : max;
            memcpy(buf, s->buf + s->off, n);
            s->off += n;
            return (ssize_t)n;
        }
        s->off = s->len = 0;
        int64_t now = mono_ms();
        if (now >= s->next_summary_ms) {
            char *json = s->srv->ops.summary ? s->srv->ops.summary(s->srv->ops.opaque) : NULL;
            if (!json || sse_event(s, "summary", NULL, json) != 0) {
                free(json);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            free(json);
            s->next_summary_ms = now + 1000;
            continue;
        }
        sse_alerts(s, s->next_summary_ms - now);
    }
}

static void sse_free(void *cls)
{
    struct sse *s = cls;
    pthread_mutex_lock(&s->srv->mu);
    s->srv->sse_open--;
    pthread_mutex_unlock(&s->srv->mu);
    redisFree(s->c);
    free(s->buf);
    free(s);
}

static enum MHD_Result route_events(struct smm_http_server *srv, struct MHD_Connection *conn)
{
    pthread_mutex_lock(&srv->mu);
    int full = srv->sse_open >= srv->max_sse;
    if (!full) {
        srv->sse_open++;
    }
    pthread_mutex_unlock(&srv->mu);
    if (full) {
        return send_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "too many event streams (%d)",
                          srv->max_sse);
    }
    struct sse *s = calloc(1, sizeof(*s));
    struct MHD_Response *resp =
        s ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, s, sse_free)
          : NULL;
    if (!resp) {
        if (s) {
            s->srv = srv;
            sse_free(s);
        } else {
            pthread_mutex_lock(&srv->mu);
            srv->sse_open--;
            pthread_mutex_unlock(&srv->mu);
        }
        return send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    s->srv = srv;
    /* Tell EventSource to reconnect after 2 s if the stream ends. */
    sse_put(s, "retry: 2000\n\n", 13);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* ---- dispatch ---- */

/* Constant-time comparison, so the token cannot be guessed byte by byte from timings.
 * query_ok: also accept ?token= (only /events: a browser's EventSource cannot send
 * headers; the token then shows in access logs of proxies, so prefer the header). The
 * header carries the token as it is; the query value is form-encoded like every query
 * value: percent-decoded, and a literal '+' is a space (libmicrohttpd turns it into one
 * before we see it), so a token's '+' must arrive as %2B, as encodeURIComponent sends it. */
static int authorized(struct smm_http_server *srv, struct MHD_Connection *conn, int query_ok)
{
    if (!srv->token[0]) {
        return 1;
    }
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    char dec[1024];
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        h += 7;
        while (*h == ' ') {
            h++;
        }
    } else if (query_ok) {
        h = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "token");
        size_t len = h ? strlen(h) : 0;
        long n = h && len < sizeof(dec) ? smm_http_url_decode(h, len, dec, 1) : -1;
        if (n < 0 || memchr(dec, '\0', (size_t)n)) {
            return 0;
        }
        dec[n] = '\0';
        h = dec;
    } else {
        h = NULL;
    }
    if (!h) {
        return 0;
    }
    size_t a = strlen(h), b = strlen(srv->token);
    unsigned diff = (unsigned)(a ^ b);
    for (size_t i = 0; i < b; i++) {
        diff |= (unsigned char)(i < a ? h[i] : 0) ^ (unsigned char)srv->token[i];
    }
    return diff == 0;
}

/* Is name (len bytes, no port) one of the comma-separated names of list? */
static int in_host_list(const char *name, size_t len, const char *list)
{
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *q = p;
        while (n > 0 && (*q == ' ' || *q == '\t')) {
            q++;
            n--;
        }
        while (n > 0 && (q[n - 1] == ' ' || q[n - 1] == '\t')) {
            n--;
        }
        if (n == len && n > 0 && strncasecmp(q, name, n) == 0) {
            return 1;
        }
        p = end ? end + 1 : p + strlen(p);
    }
    return 0;
}

/* DESIGN: a page on evil.example whose name is then re-pointed at 127.0.0.1 (DNS
 * rebinding) is same-origin with our API, so the browser lets it read every answer; its
 * requests still carry Host: evil.example. An IP literal is safe to accept (a page can
 * only be same-origin with an IP literal by being served from that address), and so is
 * "localhost" (resolved from the hosts file, not by a DNS server an attacker runs); other
 * names only when configured. */
int smm_http_host_allowed(const char *host, const char *allowed)
{
    if (!host) {
        return 1;
    }
    char name[256];
    size_t len = strlen(host);
    const char *port = NULL;
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        if (!end || (size_t)(end - host - 1) >= sizeof(name)) {
            return 0;
        }
        memcpy(name, host + 1, (size_t)(end - host - 1));
        name[end - host - 1] = '\0';
        if (end[1] == ':') {
            port = end + 2;
        } else if (end[1] != '\0') {
            return 0;
        }
        struct in6_addr a6;
        if (inet_pton(AF_INET6, name, &a6) != 1) {
            return 0;
        }
    } else {
        const char *colon = strchr(host, ':');
        size_t n = colon ? (size_t)(colon - host) : len;
        if (n == 0 || n >= sizeof(name)) {
            return 0;
        }
        memcpy(name, host, n);
        name[n] = '\0';
        port = colon ? colon + 1 : NULL;
    }
    if (port && (!*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5)) {
        return 0;
    }
    if (host[0] == '[') {
        return 1;
    }
    struct in_addr a4;
    if (inet_pton(AF_INET, name, &a4) == 1 || strcasecmp(name, "localhost") == 0) {
        return 1;
    }
    return in_host_list(name, strlen(name), allowed);
}

/* GET /healthz: the process answers, and its loop went round recently. */
static enum MHD_Result route_healthz(struct smm_http_server *srv, struct MHD_Connection *conn)
{
    int64_t age = srv->ops.heartbeat_age_ms ? srv->ops.heartbeat_age_ms(srv->ops.opaque) : -1;
    cJSON *o = cJSON_CreateObject();
    int stalled = srv->health_max_age_ms > 0 && age > srv->health_max_age_ms;
    cJSON_AddStringToObject(o, "status", stalled ? "stalled" : "ok");
    if (srv->ops.heartbeat_age_ms) {
        if (age >= 0) {
            cJSON_AddNumberToObject(o, "heartbeat_age_ms", (double)age);
        } else {
            cJSON_AddNullToObject(o, "heartbeat_age_ms"); /* the loop has not started */
        }
        if (srv->health_max_age_ms > 0) {
            cJSON_AddNumberToObject(o, "max_age_ms", (double)srv->health_max_age_ms);
        }
    }
    if (stalled) {
        char msg[160];
        snprintf(msg, sizeof(msg), "the main loop has not gone round for %lld ms (limit %lld)",
                 (long long)age, (long long)srv->health_max_age_ms);
        cJSON_AddStringToObject(o, "error", msg);
    }
    return send_json(conn, stalled ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK, o);
}

static enum MHD_Result send_doc(struct MHD_Connection *conn, char *doc, const char *type)
{
    if (!doc) {
        return send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    return send_buf(conn, MHD_HTTP_OK, type, doc, strlen(doc), MHD_RESPMEM_MUST_FREE);
}

/* ---- the header deadline ----
 *
 * DESIGN: a thread per connection makes an idle or half-sent connection cost a thread and
 * one of max_connections; libmicrohttpd's own timeout counts from the last byte, so a client
 * sending a byte every few seconds would hold its slot for ever. So each connection is
 * listed (notify_connection) with the time it started waiting for request headers: its
 * accept, and the end of each request (notify_completed; libmicrohttpd closes the connection
 * after each of our answers today, which are queued at the first call); the access handler
 * clears it.
 * A watchdog thread shuts down (shutdown(2), not close: the descriptor stays libmicrohttpd's)
 * every connection waiting longer than header_timeout_ms; its thread then sees the end of
 * the stream and closes it. libmicrohttpd reports a connection closed before it closes the
 * descriptor, and both sides hold mu, so a shut down descriptor is never one reused. */

static struct conn_watch *watch_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* A request's headers are in: no deadline while it is served. */
static void watch_serving(struct smm_http_server *srv, struct MHD_Connection *conn)
{
    struct conn_watch *w = watch_of(conn);
    if (w) {
        pthread_mutex_lock(&srv->mu);
        w->since_ms = 0;
        pthread_mutex_unlock(&srv->mu);
    }
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct smm_http_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct conn_watch *w = ci ? calloc(1, sizeof(*w)) : NULL;
        if (!w) {
            return; /* not watched: only libmicrohttpd's idle timeout applies */
        }
        w->fd = ci->connect_fd;
        w->since_ms = mono_ms();
        pthread_mutex_lock(&srv->mu);
        w->next = srv->watch;
        if (srv->watch) {
            srv->watch->prev = w;
        }
        srv->watch = w;
        pthread_mutex_unlock(&srv->mu);
        *socket_context = w;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        struct conn_watch *w = *socket_context;
        pthread_mutex_lock(&srv->mu);
        if (w->prev) {
            w->prev->next = w->next;
        } else {
            srv->watch = w->next;
        }
        if (w->next) {
            w->next->prev = w->prev;
        }
        pthread_mutex_unlock(&srv->mu);
        free(w);
        *socket_context = NULL;
    }
}

/* A request ended: the connection (kept alive) waits for the next one's headers. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    (void)con_cls;
    (void)code;
    struct smm_http_server *srv = cls;
    struct conn_watch *w = watch_of(conn);
    if (w) {
        int64_t now = mono_ms();
        pthread_mutex_lock(&srv->mu);
        w->since_ms = now;
        pthread_mutex_unlock(&srv->mu);
    }
}

static void *watchdog_main(void *arg)
{
    struct smm_http_server *srv = arg;
    int64_t step = srv->header_timeout_ms / 4 < 250 ? srv->header_timeout_ms / 4 : 250;
    step = step < 10 ? 10 : step;
    pthread_mutex_lock(&srv->mu);
    while (!__atomic_load_n(&srv->stopping, __ATOMIC_ACQUIRE)) {
        int64_t now = mono_ms();
        int shut = 0;
        for (struct conn_watch *w = srv->watch; w; w = w->next) {
            if (w->since_ms > 0 && !w->shut && now - w->since_ms >= srv->header_timeout_ms) {
                shutdown(w->fd, SHUT_RDWR);
                w->shut = 1;
                shut++;
            }
        }
        if (shut) {
            pthread_mutex_unlock(&srv->mu);
            log_msg(srv, SMM_LOG_DEBUG,
                    "http: closed %d connection(s) without complete request headers in %d ms",
                    shut, srv->header_timeout_ms);
            pthread_mutex_lock(&srv->mu);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)step * 1000000;
        ts.tv_sec += ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&srv->watch_cv, &srv->mu, &ts);
    }
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)con_cls;
    struct smm_http_server *srv = cls;
    watch_serving(srv, conn);
    *upload_size = 0; /* a body on GET is ignored */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
    }
    if (!srv->token[0] &&
        !smm_http_host_allowed(MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                           MHD_HTTP_HEADER_HOST),
                               srv->allowed_hosts)) {
        return send_error(conn, MHD_HTTP_FORBIDDEN,
                          "Host not allowed: without http.token only IP addresses, localhost "
                          "and the names of http.allowed_hosts are served");
    }
    if (strcmp(url, "/healthz") == 0) {
        return route_healthz(srv, conn);
    }
    /* The page's own files hold no data: served without the token, so a browser can load
     * the dashboard, which then sends the token (from its ?token=) on every request. */
    for (const struct smm_web_asset *a = smm_web_assets; a->path; a++) {
        if (strcmp(url, a->path) == 0) {
            return send_buf(conn, MHD_HTTP_OK, a->content_type, (char *)a->data, a->len,
                            MHD_RESPMEM_PERSISTENT);
        }
    }
    if (!authorized(srv, conn, strcmp(url, "/events") == 0)) {
        return send_error(conn, MHD_HTTP_UNAUTHORIZED, "missing or wrong bearer token");
    }
    if (strcmp(url, "/readyz") == 0) {
        return route_readyz(srv, conn);
    }
    if (strcmp(url, "/metrics") == 0) {
        return send_doc(conn,
                        srv->ops.metrics ? srv->ops.metrics(srv->ops.opaque, open_threads(srv))
                                         : NULL,
                        "text/plain; version=0.0.4; charset=utf-8");
    }
    if (strcmp(url, "/events") == 0) {
        return route_events(srv, conn);
    }
    if (strcmp(url, "/api/v1/summary") == 0) {
        return send_doc(conn, srv->ops.summary ? srv->ops.summary(srv->ops.opaque) : NULL,
                        "application/json");
    }
    if (strncmp(url, "/api/v1/content/", 16) == 0) {
        return route_entity(srv, conn, 'c', url + 16);
    }
    if (strncmp(url, "/api/v1/account/", 16) == 0) {
        return route_entity(srv, conn, 'a', url + 16);
    }
    if (strcmp(url, "/api/v1/top") == 0) {
        return route_top(srv, conn);
    }
    if (strcmp(url, "/api/v1/viral") == 0) {
        return route_viral(srv, conn);
    }
    if (strcmp(url, "/api/v1/alerts") == 0) {
        return route_alerts(srv, conn);
    }
    if (strcmp(url, "/api/v1/response") == 0) {
        return route_response(srv, conn);
    }
    if (strcmp(url, "/api/v1/sov") == 0) {
        return route_sov(srv, conn);
    }
    if (strcmp(url, "/api/v1/sources") == 0) {
        return route_sources(srv, conn);
    }
    if (strcmp(url, "/api/v1/segments") == 0) {
        return route_segments(srv, conn);
    }
    if (strcmp(url, "/api/v1/goals") == 0) {
        return route_goals(srv, conn);
    }
    if (strcmp(url, "/api/v1/customers") == 0) {
        return route_customers(srv, conn);
    }
    if (strcmp(url, "/api/v1/sets") == 0) {
        return route_sets(srv, conn);
    }
    if (strcmp(url, "/api/v1/accounts") == 0) {
        return route_accounts(srv, conn);
    }
    if (strcmp(url, "/api/v1/kpis") == 0) {
        return route_kpis(srv, conn);
    }
    if (strcmp(url, "/api/v1/series") == 0) {
        return route_series(srv, conn);
    }
    return send_error(conn, MHD_HTTP_NOT_FOUND, "no such route");
}

/* Leaves the path and the query values escaped: we split first, then decode (see top). */
static size_t no_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct smm_http_server *srv = cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_msg(srv, SMM_LOG_WARN, "http: %s", msg);
}

/* ---- lifecycle ---- */

static char **dup_list(const char *const *v, int n)
{
    char **out = calloc((size_t)(n ? n : 1), sizeof(*out));
    for (int i = 0; out && i < n; i++) {
        out[i] = strdup(v[i]);
        if (!out[i]) {
            for (int k = 0; k < i; k++) {
                free(out[k]);
            }
            free(out);
            return NULL;
        }
    }
    return out;
}

static void free_list(char **v, int n)
{
    for (int i = 0; v && i < n; i++) {
        free(v[i]);
    }
    free(v);
}

/* Copies the competitor sets into srv->sov. 1, or 0 on out-of-memory (what was copied is
 * freed by srv_free()). */
static int copy_sov(struct smm_http_server *srv, const struct smm_http_sov_set *v, int n)
{
    srv->sov = calloc((size_t)(n > 0 ? n : 1), sizeof(*srv->sov));
    if (!srv->sov) {
        return 0;
    }
    for (int i = 0; i < n; i++) {
        struct sov_set *d = &srv->sov[srv->n_sov++];
        d->name = strdup(v[i].name ? v[i].name : "");
        d->brands = dup_list(v[i].brands, v[i].n_brands);
        d->n_brands = d->brands ? v[i].n_brands : 0;
        if (!d->name || !d->brands) {
            return 0;
        }
    }
    return 1;
}

static void srv_free(struct smm_http_server *srv)
{
    for (int i = 0; i < srv->n_pool; i++) {
        redisFree(srv->pool[i]);
    }
    if (srv->token) {
        memset(srv->token, 0, strlen(srv->token));
    }
    if (srv->redis_password) {
        memset(srv->redis_password, 0, strlen(srv->redis_password));
    }
    free(srv->token);
    free(srv->prefix);
    free(srv->redis_host);
    free(srv->redis_unix_socket);
    free(srv->redis_username);
    free(srv->redis_password);
    free_list(srv->windows, srv->n_windows);
    free_list(srv->metrics, srv->n_metrics);
    for (int i = 0; srv->sov && i < srv->n_sov; i++) {
        free(srv->sov[i].name);
        free_list(srv->sov[i].brands, srv->sov[i].n_brands);
    }
    free(srv->sov);
    free_list(srv->goal_ids, srv->n_goals);
    free(srv->allowed_hosts);
    pthread_cond_destroy(&srv->watch_cv);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
}

struct smm_http_server *smm_http_server_start(const struct smm_http_opts *o, char *errstr,
                                              size_t errstr_size)
{
    struct smm_http_server *srv = calloc(1, sizeof(*srv));
    if (!srv || pthread_mutex_init(&srv->mu, NULL) != 0) {
        free(srv);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (pthread_cond_init(&srv->watch_cv, NULL) != 0) {
        pthread_mutex_destroy(&srv->mu);
        free(srv);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    srv->token = strdup(o->token ? o->token : "");
    srv->prefix = strdup(o->prefix ? o->prefix : "smm:");
    srv->redis_host = strdup(o->redis_host ? o->redis_host : "127.0.0.1");
    srv->redis_unix_socket = strdup(o->redis_unix_socket ? o->redis_unix_socket : "");
    srv->redis_username = strdup(o->redis_username ? o->redis_username : "");
    srv->redis_password = strdup(o->redis_password ? o->redis_password : "");
    srv->windows = dup_list(o->windows, o->n_windows);
    srv->metrics = dup_list(o->metrics, o->n_metrics);
    srv->n_windows = srv->windows ? o->n_windows : 0;
    srv->n_metrics = srv->metrics ? o->n_metrics : 0;
    int sov_ok = copy_sov(srv, o->sov_sets, o->n_sov_sets);
    srv->goal_ids = dup_list(o->goal_ids, o->n_goals);
    srv->n_goals = srv->goal_ids ? o->n_goals : 0;
    srv->redis_port = o->redis_port;
    srv->redis_db = o->redis_db;
    srv->redis_timeout_ms = o->redis_timeout_ms > 0 ? o->redis_timeout_ms : 1000;
    srv->ops = o->ops;
    srv->log = o->log;
    srv->allowed_hosts = strdup(o->allowed_hosts ? o->allowed_hosts : "");
    srv->health_max_age_ms = o->health_max_age_ms;
    srv->header_timeout_ms = o->header_timeout_ms;
    srv->keep_minutes = o->keep_minutes > 0 ? o->keep_minutes : 1500;
    srv->days_keep = o->days_keep > 0 ? o->days_keep : 400;
    int max_conn = o->max_connections > 0 ? o->max_connections : 64;
    srv->max_sse = max_conn / 2;
    if (!srv->token || !srv->prefix || !srv->redis_host || !srv->redis_unix_socket ||
        !srv->redis_username || !srv->redis_password || !srv->windows || !srv->metrics ||
        !sov_ok || !srv->goal_ids || !srv->allowed_hosts || o->n_metrics > 32) {
        snprintf(errstr, errstr_size, "out of memory");
        srv_free(srv);
        return NULL;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, o->address, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)o->port);
    } else if (inet_pton(AF_INET6, o->address, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)o->port);
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(errstr, errstr_size, "http.address: \"%s\" is not an IPv4 or IPv6 address",
                 o->address);
        srv_free(srv);
        return NULL;
    }
    srv->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, handle, srv,
                              MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
                              MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)max_conn,
                              MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                              (unsigned)(o->max_per_ip > 0 ? o->max_per_ip : 0),
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                              MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                              MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
                              MHD_OPTION_END);
    if (!srv->d) {
        snprintf(errstr, errstr_size, "http: cannot listen on %s:%d (in use, or not permitted)",
                 o->address, o->port);
        srv_free(srv);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? (int)info->port : o->port;
    if (srv->header_timeout_ms > 0) {
        if (pthread_create(&srv->watchdog, NULL, watchdog_main, srv) != 0) {
            snprintf(errstr, errstr_size, "http: cannot start the header deadline thread");
            MHD_stop_daemon(srv->d);
            srv_free(srv);
            return NULL;
        }
        srv->watchdog_on = 1;
    }
    return srv;
}

int smm_http_server_port(const struct smm_http_server *srv)
{
    return srv->port;
}

void smm_http_server_stop(struct smm_http_server *srv)
{
    if (!srv) {
        return;
    }
    pthread_mutex_lock(&srv->mu);
    __atomic_store_n(&srv->stopping, 1, __ATOMIC_RELEASE);
    pthread_cond_signal(&srv->watch_cv);
    pthread_mutex_unlock(&srv->mu);
    if (srv->watchdog_on) {
        pthread_join(srv->watchdog, NULL);
    }
    MHD_stop_daemon(srv->d); /* joins the connection threads: streams end within ~1 s */
    srv_free(srv);
}
