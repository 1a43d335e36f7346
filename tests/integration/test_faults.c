/* tests/integration/test_faults.c - the fault suite: one scenario per fault, each streaming a
 * generated workload WHILE the fault happens, each ending with every Redis value compared
 * with the independent oracle (tests/integration/oracle.c) and every dead letter checked in
 * the dead-letter topic. Documented in docs/fault-suite.md.
 *
 * Every scenario:
 *   1. builds a message pool: smm-gen --stdout (fixed seed) well-formed events, poison of
 *      every generator malformed kind (smm-gen --malformed-rate 1 --malformed-kinds K, one
 *      run per kind, so each message's dead-letter reason is known from its kind) and
 *      hand-written poison and boundary events, interleaved at seeded random positions;
 *   2. starts redis-server, a Kafka (the mock cluster, the broker named by SMMT_BOOTSTRAP,
 *      or, for the broker scenario, a private real broker) and smm-processor;
 *   3. a feeder thread produces the pool at a fixed rate through one long-lived idempotent
 *      producer (h_stream_*), while the main thread injects the fault and measures recovery;
 *   4. finishes the feed (the rest of the pool at full speed), waits until Redis' stored
 *      offsets cover every delivered message, stops the processors (SIGTERM, exit 0);
 *   5. measures (oracle_diff: lost, double-counted, differing fields; the DLQ topic), appends
 *      its row to the table, THEN asserts: oracle_check (exact), DLQ complete with reasons,
 *      lost == 0, double-counted == 0, plus the scenario's own checks.
 * A report hook prints the table (markdown) after the last test and writes it to
 * $SMMT_FAULT_TABLE (default ${SMMT_TMP:-/tmp}/fault-table.md).
 *
 * Scenarios (one Test each; a_ .. f_ follow the list, b2/b3 emulate the power loss
 * that appendfsync everysec is specified to survive, which kill -9 of redis-server cannot):
 *   a_  kill -9 of the processor at random points, 11 times, each followed by a restart
 *   b1_ Redis kill -9 and restart from its AOF (appendfsync everysec) mid-stream
 *   b2_ Redis back from an AOF 1.2 s older than what the running processor saw (STALE path)
 *   b3_ the same in the first second of a fresh deployment, processor restarted too
 *   c_  a private real Kafka broker stopped for 20 s and restarted (same ports)
 *   d_  Redis unreachable for 30 s (SIGSTOP/SIGCONT): paused, RSS bounded, catches up
 *   d2_ Redis busy 3 s at a time (a script holds it): the processor sleeps, it does not spin
 *   e_  scale-out: 3 instances in one group, joins, a SIGTERM leave, a kill -9
 *   f_  poison of every dead-letter reason mixed in (and one kill -9)
 *
 * Recovery (per fault, "end of the fault" = the processor restarted, Redis restarted or
 * SIGCONTed, the broker ready again, or the instance killed):
 *   resume   = until every partition that was behind at the end of the fault has a stored
 *              offset in Redis that moved (or reached what had been produced by then);
 *   catch-up = until Redis' stored offsets cover every message produced (handed to the
 *              producer) before the end of the fault.
 * Alerts do not exist yet, so the "alerts appear exactly once" is not checked. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <criterion/logging.h>
#include <criterion/stats.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/integration/oracle.h"

#ifndef SMM_SOURCE_DIR
#error "SMM_SOURCE_DIR must point at the source tree (for tools/kafka/broker.sh)"
#endif

#define PARTS 12                   /* partitions of every scenario's topic */
#define MAX_PROCS 24
#define RSS_LIMIT_KB (300 * 1024)  /* documented bound for the Redis-outage scenario */
#define MAX_RECOV 16

/* ---------------------------------------------------------------- small helpers */

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static int rnd_int(int n)
{
    return (int)(rnd() % (uint64_t)n);
}

static void appendf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t size, const char *fmt, ...)
{
    size_t used = strlen(buf);
    if (used + 1 >= size) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, size - used, fmt, ap);
    va_end(ap);
}

/* Decided once per process (the broker scenario sets SMMT_BOOTSTRAP for itself later). */
static const char *table_path(void)
{
    static char path[512];
    if (path[0]) {
        return path;
    }
    const char *t = getenv("SMMT_FAULT_TABLE");
    const char *base = getenv("SMMT_TMP");
    if (t && *t) {
        snprintf(path, sizeof(path), "%s", t);
    } else {
        /* the real-broker variant (SMMT_BOOTSTRAP[_FILE]) gets its own table */
        const char *b = getenv("SMMT_BOOTSTRAP"), *bf = getenv("SMMT_BOOTSTRAP_FILE");
        snprintf(path, sizeof(path), "%s/fault-table%s.md", base && *base ? base : "/tmp",
                 (b && *b) || (bf && *bf) ? "-real-kafka" : "");
    }
    return path;
}

static void side_path(char *out, size_t size, const char *suffix)
{
    snprintf(out, size, "%s.%s", table_path(), suffix);
}

/* Everything started is registered, so the report hook can stop what a timed-out (killed)
 * test left behind: "pid comm" or "broker DIR". */
static void reg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reg(const char *fmt, ...)
{
    char path[600];
    side_path(path, sizeof(path), "cleanup");
    FILE *f = fopen(path, "a");
    if (!f) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
}

static int comm_is(pid_t pid, const char *comm)
{
    char path[64], buf[64] = "";
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return 0;
    }
    if (!fgets(buf, sizeof(buf), f)) {
        buf[0] = '\0';
    }
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    return strcmp(buf, comm) == 0;
}

/* CPU seconds (user + system) pid has used so far, -1 if unreadable. */
static double cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the command name (which may hold spaces): state is field 3, utime 14. */
    const char *p = strrchr(buf, ')');
    unsigned long utime, stime;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                     &stime) != 2) {
        return -1;
    }
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    if (!f) {
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) {
            break;
        }
    }
    fclose(f);
    return kb;
}

static int file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return 0;
    }
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f)) {
        found = strstr(line, needle) != NULL;
    }
    fclose(f);
    return found;
}

static int count_in_file(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return 0;
    }
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f)) {
        n += strstr(line, needle) != NULL;
    }
    fclose(f);
    return n;
}

/* ---------------------------------------------------------------- the message pool */

static const char *const all_reasons[] = {"too_large", "invalid_json", "not_object",
                                          "missing_field", "wrong_type", "unknown_type",
                                          "id_too_long", "bad_id", "bad_timestamp", "too_old",
                                          "in_future"};
#define N_REASONS (sizeof(all_reasons) / sizeof(all_reasons[0]))

/* smm-gen's malformed kinds and the reason docs/events.md gives for each. */
static const struct {
    const char *kind, *reason;
} gen_kinds[] = {
    {"truncated", "invalid_json"},     {"not_object", "not_object"},
    {"no_event_id", "missing_field"},  {"no_type", "missing_field"},
    {"unknown_type", "unknown_type"},  {"ts_string", "bad_timestamp"},
    {"account_number", "wrong_type"},  {"no_account", "missing_field"},
    {"no_content", "missing_field"},   {"oversize", "too_large"},
    {"long_id", "id_too_long"},        {"control_char", "bad_id"},
    {"ts_old", "too_old"},             {"ts_future", "in_future"},
};
#define N_KINDS (sizeof(gen_kinds) / sizeof(gen_kinds[0]))

struct pool {
    struct h_msg *m;     /* in produce order */
    const char **reason; /* NULL: well-formed and must be counted */
    int32_t *part;       /* from delivery reports */
    int64_t *off;
    size_t n, n_poison;
};

struct tmp_list {
    struct h_msg *m;
    const char **reason;
    size_t n, cap;
};

static void tl_add(struct tmp_list *t, char *payload, size_t len, char *key, const char *reason)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 256;
        t->m = realloc(t->m, t->cap * sizeof(*t->m));
        t->reason = realloc(t->reason, t->cap * sizeof(*t->reason));
        cr_assert(t->m && t->reason);
    }
    t->m[t->n].payload = payload;
    t->m[t->n].len = len;
    t->m[t->n].key = key;
    t->reason[t->n] = reason;
    t->n++;
}

static void tl_addf(struct tmp_list *t, const char *reason, const char *key, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));
static void tl_addf(struct tmp_list *t, const char *reason, const char *key, const char *fmt,
                    ...)
{
    char *p = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0);
    tl_add(t, p, (size_t)n, key ? strdup(key) : NULL, reason);
}

/* A payload of exactly `len` bytes: a valid event padded with an ignored field. */
static char *padded_event(size_t len, const char *head)
{
    size_t hl = strlen(head); /* head ends with "," and an open "pad":" string follows */
    char *p = malloc(len + 1);
    cr_assert(p && len > hl + 10);
    memcpy(p, head, hl);
    memcpy(p + hl, "\"pad\":\"", 7);
    memset(p + hl + 7, 'x', len - hl - 7 - 2);
    p[len - 2] = '"';
    p[len - 1] = '}';
    p[len] = '\0';
    return p;
}

/* Hand-written poison (one or more per reason, and the edges of each rule) plus well-formed
 * boundary events that must be counted. `copy` makes every payload unique. */
static void handcrafted(struct tmp_list *bad, struct tmp_list *good, int copy)
{
    long long now = (long long)h_now_ms();
    char k[32];
    snprintf(k, sizeof(k), "poison-%d", copy);
    /* invalid_json */
    tl_add(bad, strdup(""), 0, strdup(k), "invalid_json");
    tl_addf(bad, "invalid_json", k,
            "{\"event_id\":\"hc%d-trail\",\"type\":\"like\",\"ts\":%lld,\"account_id\":\"a\","
            "\"content_id\":\"p\"} x",
            copy, now);
    tl_addf(bad, "invalid_json", k, "{\"event_id\":\"hc%d-open\",\"type\":", copy);
    tl_addf(bad, "invalid_json", k,
            "{\"event_id\":\"hc%d-nul\",\"type\":\"mention\",\"ts\":%lld,\"account_id\":"
            "\"a\\u0000b\"}",
            copy, now);
    /* not_object */
    tl_addf(bad, "not_object", k, "\"hc%d just a string\"", copy);
    tl_addf(bad, "not_object", k, "[%d, null]", copy);
    /* missing_field */
    tl_addf(bad, "missing_field", k,
            "{\"event_id\":\"hc%d-view\",\"type\":\"view\",\"ts\":%lld,\"account_id\":\"a\"}",
            copy, now);
    tl_addf(bad, "missing_field", k,
            "{\"event_id\":\"hc%d-nullacct\",\"type\":\"mention\",\"ts\":%lld,"
            "\"account_id\":null}",
            copy, now);
    /* wrong_type */
    tl_addf(bad, "wrong_type", k,
            "{\"event_id\":\"hc%d-fol\",\"type\":\"share\",\"ts\":%lld,\"account_id\":\"a\","
            "\"content_id\":\"p\",\"followers\":-1}",
            copy, now);
    tl_addf(bad, "wrong_type", k,
            "{\"event_id\":\"hc%d-fa\",\"type\":\"impression\",\"ts\":%lld,\"account_id\":"
            "\"a\",\"content_id\":\"p\",\"follows_author\":\"yes\"}",
            copy, now);
    tl_addf(bad, "wrong_type", k,
            "{\"event_id\":\"hc%d-type\",\"type\":7,\"ts\":%lld,\"account_id\":\"a\"}", copy,
            now);
    /* unknown_type */
    tl_addf(bad, "unknown_type", k,
            "{\"event_id\":\"hc%d-uk\",\"type\":\"Like\",\"ts\":%lld,\"account_id\":\"a\","
            "\"content_id\":\"p\"}",
            copy, now);
    /* bad_timestamp */
    tl_addf(bad, "bad_timestamp", k,
            "{\"event_id\":\"hc%d-date\",\"type\":\"mention\",\"ts\":\"2026-13-45T99:99:99Z\","
            "\"account_id\":\"a\"}",
            copy);
    tl_addf(bad, "bad_timestamp", k,
            "{\"event_id\":\"hc%d-frac\",\"type\":\"mention\",\"ts\":%lld.5,\"account_id\":"
            "\"a\"}",
            copy, now);
    /* bad_id: empty, control character, invalid UTF-8 (raw 0xff) */
    tl_addf(bad, "bad_id", k,
            "{\"event_id\":\"hc%d-empty\",\"type\":\"like\",\"ts\":%lld,\"account_id\":\"a\","
            "\"content_id\":\"\"}",
            copy, now);
    tl_addf(bad, "bad_id", k,
            "{\"event_id\":\"hc%d-ctl\",\"type\":\"mention\",\"ts\":%lld,\"account_id\":"
            "\"a\\u001fb\"}",
            copy, now);
    tl_addf(bad, "bad_id", k,
            "{\"event_id\":\"hc%d-utf8\",\"type\":\"view\",\"ts\":%lld,\"account_id\":\"a\","
            "\"content_id\":\"p\",\"user_id\":\"u\xff\xfe\"}",
            copy, now);
    /* id_too_long: 129 bytes (the limit is 128) */
    char id129[130], id128[129];
    int hl = snprintf(id129, sizeof(id129), "hc%d-", copy);
    memset(id129 + hl, 'L', (size_t)(129 - hl));
    id129[129] = '\0';
    tl_addf(bad, "id_too_long", k,
            "{\"event_id\":\"%s\",\"type\":\"mention\",\"ts\":%lld,\"account_id\":\"a\"}", id129,
            now);
    /* too_old (retention = the longest window, 24 h) and in_future (limit 5 min) */
    tl_addf(bad, "too_old", k,
            "{\"event_id\":\"hc%d-old\",\"type\":\"mention\",\"ts\":%lld,\"account_id\":\"a\"}",
            copy, now - 25LL * 3600 * 1000);
    tl_addf(bad, "in_future", k,
            "{\"event_id\":\"hc%d-fut\",\"type\":\"mention\",\"ts\":%lld,\"account_id\":\"a\"}",
            copy, now + 15LL * 60 * 1000);
    /* too_large: one byte over 64 KiB, valid JSON otherwise */
    char head[256];
    snprintf(head, sizeof(head),
             "{\"event_id\":\"hc%d-big\",\"type\":\"mention\",\"ts\":%lld,\"account_id\":\"a\",",
             copy, now);
    tl_add(bad, padded_event(65537, head), 65537, strdup(k), "too_large");

    /* Well-formed edges: an id of exactly 128 bytes, a payload of exactly 64 KiB. */
    memcpy(id128, id129, 128);
    id128[128] = '\0';
    tl_addf(good, NULL, "edge",
            "{\"event_id\":\"hc%d-edge\",\"type\":\"impression\",\"ts\":%lld,\"account_id\":"
            "\"%s\",\"content_id\":\"edge-post\",\"user_id\":\"edge-user-%d\"}",
            copy, now - 5000, id128, copy);
    snprintf(head, sizeof(head),
             "{\"event_id\":\"hc%d-64k\",\"type\":\"like\",\"ts\":%lld,\"account_id\":\"edge-acct\","
             "\"content_id\":\"edge-post\",",
             copy, now - 5000);
    tl_add(good, padded_event(65536, head), 65536, strdup("edge-post"), NULL);
}

/* Builds the pool: `good` generated events, `per_kind` poison of every generator kind,
 * `copies` sets of hand-written poison and edges; poison at seeded random positions. */
static void pool_build(struct pool *p, const char *dir, uint64_t seed, int good, int per_kind,
                       int copies)
{
    memset(p, 0, sizeof(*p));
    char path[400];
    long long start = (long long)h_now_ms() - 250000;
    snprintf(path, sizeof(path), "%s/good.jsonl", dir);
    h_run(SMM_BUILD_DIR "/tools/smm-gen --stdout --quiet --seed %llu --count %d --contents 5000 "
                        "--zipf 0.8 --accounts 40 --users 20000 --start-ms %lld --span-ms 240000 "
                        "--ts-format mixed --rfc3339-share 0.05 > %s",
          (unsigned long long)seed, good, start, path);
    size_t ng;
    struct h_msg *g = h_load_jsonl(path, &ng);
    cr_assert_eq(ng, (size_t)good);

    struct tmp_list bad = {0}, extra = {0};
    for (size_t k = 0; k < N_KINDS && per_kind > 0; k++) {
        snprintf(path, sizeof(path), "%s/poison-%s.jsonl", dir, gen_kinds[k].kind);
        h_run(SMM_BUILD_DIR "/tools/smm-gen --stdout --quiet --seed %llu --count %d "
                            "--malformed-rate 1 --malformed-kinds %s --contents 5000 --accounts 40 "
                            "--users 20000 --span-ms 240000 > %s",
              (unsigned long long)(seed * 100 + k + 1), per_kind, gen_kinds[k].kind, path);
        size_t nk;
        struct h_msg *km = h_load_jsonl(path, &nk);
        cr_assert_eq(nk, (size_t)per_kind, "%s: %zu lines", path, nk);
        for (size_t i = 0; i < nk; i++) {
            tl_add(&bad, km[i].payload, km[i].len, km[i].key, gen_kinds[k].reason);
        }
        free(km);
    }
    for (int c = 0; c < copies; c++) {
        handcrafted(&bad, &extra, c);
    }

    /* Merge: the good stream in order; each poison (and edge event) at a random position. */
    size_t n_ins = bad.n + extra.n;
    size_t *pos = malloc((n_ins + 1) * sizeof(*pos));
    struct h_msg *ins = malloc((n_ins + 1) * sizeof(*ins));
    const char **ins_r = malloc((n_ins + 1) * sizeof(*ins_r));
    for (size_t i = 0; i < bad.n; i++) {
        ins[i] = bad.m[i];
        ins_r[i] = bad.reason[i];
    }
    for (size_t i = 0; i < extra.n; i++) {
        ins[bad.n + i] = extra.m[i];
        ins_r[bad.n + i] = NULL;
    }
    rng_state = seed;
    for (size_t i = 0; i < n_ins; i++) {
        pos[i] = (size_t)(rnd() % (ng + 1));
    }
    /* sort insertions by position (insertion sort on a few hundred) */
    for (size_t i = 1; i < n_ins; i++) {
        size_t pp = pos[i];
        struct h_msg mm = ins[i];
        const char *rr = ins_r[i];
        size_t j = i;
        while (j > 0 && pos[j - 1] > pp) {
            pos[j] = pos[j - 1];
            ins[j] = ins[j - 1];
            ins_r[j] = ins_r[j - 1];
            j--;
        }
        pos[j] = pp;
        ins[j] = mm;
        ins_r[j] = rr;
    }
    p->n = ng + n_ins;
    p->m = malloc(p->n * sizeof(*p->m));
    p->reason = malloc(p->n * sizeof(*p->reason));
    p->part = malloc(p->n * sizeof(*p->part));
    p->off = malloc(p->n * sizeof(*p->off));
    cr_assert(p->m && p->reason && p->part && p->off);
    size_t gi = 0, ii = 0;
    for (size_t o = 0; o < p->n; o++) {
        if (ii < n_ins && (gi >= ng || pos[ii] <= gi)) {
            p->m[o] = ins[ii];
            p->reason[o] = ins_r[ii];
            ii++;
        } else {
            p->m[o] = g[gi++];
            p->reason[o] = NULL;
        }
        p->part[o] = -1;
        p->off[o] = -1;
        p->n_poison += p->reason[o] != NULL;
    }
    free(g);
    free(pos);
    free(ins);
    free(ins_r);
    free(bad.m);
    free(bad.reason);
    free(extra.m);
    free(extra.reason);
}

static void pool_free(struct pool *p)
{
    if (p->m) {
        h_free_msgs(p->m, p->n);
    }
    free(p->reason);
    free(p->part);
    free(p->off);
    memset(p, 0, sizeof(*p));
}

/* ---------------------------------------------------------------- the feeder thread */

struct feeder {
    struct pool *pool;
    struct h_stream *stream;
    double rate; /* messages per second */
    size_t handed;  /* __atomic: messages queued to the producer */
    int finish;     /* __atomic: send the rest at full speed */
    int abort_;     /* __atomic: stop now */
    int send_errors;
    int running;
    int64_t started_ms, finished_ms;
    pthread_t th;
};

static void *feed_main(void *arg)
{
    struct feeder *f = arg;
    struct pool *p = f->pool;
    size_t i = 0;
    f->started_ms = h_now_ms();
    while (i < p->n && !__atomic_load_n(&f->abort_, __ATOMIC_SEQ_CST)) {
        size_t due = p->n;
        if (!__atomic_load_n(&f->finish, __ATOMIC_SEQ_CST)) {
            due = (size_t)((double)(h_now_ms() - f->started_ms) * f->rate / 1000.0);
        }
        if (due > p->n) {
            due = p->n;
        }
        while (i < due && !__atomic_load_n(&f->abort_, __ATOMIC_SEQ_CST)) {
            if (h_stream_send(f->stream, &p->m[i], i) != 0) {
                f->send_errors++;
                __atomic_store_n(&f->abort_, 1, __ATOMIC_SEQ_CST);
                break;
            }
            i++;
            __atomic_store_n(&f->handed, i, __ATOMIC_SEQ_CST);
        }
        h_stream_poll(f->stream, 5);
    }
    f->finished_ms = h_now_ms();
    /* Keep serving delivery reports (they fill part/off) until the test ends the feed. */
    while (!__atomic_load_n(&f->finish, __ATOMIC_SEQ_CST) &&
           !__atomic_load_n(&f->abort_, __ATOMIC_SEQ_CST)) {
        h_stream_poll(f->stream, 50);
    }
    return NULL;
}

static size_t handed(struct feeder *f)
{
    return __atomic_load_n(&f->handed, __ATOMIC_SEQ_CST);
}

/* ---------------------------------------------------------------- scenarios */

struct proc {
    pid_t pid;
    char log[300];
    char tag[32];
    int alive;
    int status; /* exit status once reaped */
};

struct recov {
    char label[48];
    double resume_ms, catchup_ms; /* < 0: not measured / not reached */
};

struct scen {
    const char *name;  /* short: directory and topic names */
    const char *title; /* the table's scenario column */
    char dir[256];
    struct h_redis redis;
    struct h_kafka kafka;
    char broker_dir[300]; /* private real broker, when started */
    struct pool pool;
    struct feeder feed;
    struct proc procs[MAX_PROCS];
    int n_procs;
    const char *const *flags;
    struct recov rec[MAX_RECOV];
    int n_rec;
    char notes[1200];
    char problems[1200]; /* failures noticed before the final asserts */
    int64_t t0;
};

static struct scen *cur; /* for the suite's fini (cleanup after a failed assert) */

static void problem(struct scen *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct scen *s, const char *fmt, ...)
{
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    cr_log_error("%s: %s", s->name, buf);
    appendf(s->problems, sizeof(s->problems), "%s%s", s->problems[0] ? "; " : "", buf);
}

static void reap(struct scen *s)
{
    for (int i = 0; i < s->n_procs; i++) {
        struct proc *p = &s->procs[i];
        int st;
        if (p->alive && waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->alive = 0;
            p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            problem(s, "processor %s exited on its own with status %d (see %s)", p->tag,
                    p->status, p->log);
        }
    }
}

static int n_alive(struct scen *s)
{
    reap(s);
    int n = 0;
    for (int i = 0; i < s->n_procs; i++) {
        n += s->procs[i].alive;
    }
    return n;
}

static int proc_start(struct scen *s, const char *tag)
{
    cr_assert(s->n_procs < MAX_PROCS);
    struct proc *p = &s->procs[s->n_procs];
    snprintf(p->tag, sizeof(p->tag), "%s", tag);
    snprintf(p->log, sizeof(p->log), "%s/processor-%s.log", s->dir, tag);
    p->pid = h_processor_start(&s->kafka, &s->redis, p->log, s->flags);
    p->alive = 1;
    reg("%d smm-processor", (int)p->pid);
    return s->n_procs++;
}

static void proc_signal(struct scen *s, int i, int sig)
{
    struct proc *p = &s->procs[i];
    if (!p->alive) {
        return;
    }
    kill(p->pid, sig);
    p->status = h_wait(p->pid, sig == SIGKILL ? 10000 : 30000);
    p->alive = 0;
}

/* ---- Redis offsets (never asserts: Redis may be down) ---- */

static int read_offsets(struct scen *s, int64_t off[PARTS])
{
    redisContext *c =
        redisConnectWithTimeout("127.0.0.1", s->redis.port, (struct timeval){0, 500000});
    int rc = -1;
    if (c && !c->err) {
        redisSetTimeout(c, (struct timeval){0, 500000});
        redisReply *r = redisCommand(c, "HGETALL smm:offsets");
        if (r && r->type == REDIS_REPLY_ARRAY) {
            for (int p = 0; p < PARTS; p++) {
                off[p] = 0;
            }
            size_t tl = strlen(s->kafka.topic);
            for (size_t i = 0; i + 1 < r->elements; i += 2) {
                const char *f = r->element[i]->str;
                if (strncmp(f, s->kafka.topic, tl) == 0 && f[tl] == ':') {
                    int p = atoi(f + tl + 1);
                    if (p >= 0 && p < PARTS) {
                        off[p] = strtoll(r->element[i + 1]->str, NULL, 10);
                    }
                }
            }
            rc = 0;
        }
        if (r) {
            freeReplyObject(r);
        }
    }
    if (c) {
        redisFree(c);
    }
    return rc;
}

static int64_t sum_offsets(const int64_t off[PARTS])
{
    int64_t sum = 0;
    for (int p = 0; p < PARTS; p++) {
        sum += off[p];
    }
    return sum;
}

/* End offset of each partition over messages [0, upto): -1 when one is not yet delivered. */
static int targets_for(struct scen *s, size_t upto, int64_t target[PARTS])
{
    for (int p = 0; p < PARTS; p++) {
        target[p] = 0;
    }
    for (size_t i = 0; i < upto; i++) {
        int64_t o = __atomic_load_n(&s->pool.off[i], __ATOMIC_SEQ_CST);
        int32_t p = __atomic_load_n(&s->pool.part[i], __ATOMIC_SEQ_CST);
        if (o < 0) {
            return -1;
        }
        if (p >= 0 && p < PARTS && o + 1 > target[p]) {
            target[p] = o + 1;
        }
    }
    return 0;
}

/* Measures recovery from the end of a fault (t_end, snapshot `snap` of the offsets then, or
 * NULL to take the first readable one, `upto` messages handed by then). Returns 0 when
 * measured; -1 on timeout or when every processor died. */
static int measure(struct scen *s, const char *label, int64_t t_end, const int64_t *snap,
                   size_t upto, int want_catchup, int timeout_ms)
{
    struct recov *r = s->n_rec < MAX_RECOV ? &s->rec[s->n_rec++] : &s->rec[MAX_RECOV - 1];
    snprintf(r->label, sizeof(r->label), "%s", label);
    r->resume_ms = r->catchup_ms = -1;
    int64_t base[PARTS], off[PARTS], target[PARTS];
    int have_base = 0, have_target = 0;
    if (snap) {
        memcpy(base, snap, sizeof(base));
        have_base = 1;
    }
    int64_t deadline = t_end + timeout_ms;
    for (;;) {
        int64_t now = h_now_ms();
        if (!have_target && targets_for(s, upto, target) == 0) {
            have_target = 1;
        }
        if (read_offsets(s, off) == 0) {
            if (!have_base) {
                memcpy(base, off, sizeof(base));
                have_base = 1;
            }
            if (r->resume_ms < 0 && have_target) {
                int all = 1, moved = 0;
                for (int p = 0; p < PARTS; p++) {
                    int behind = base[p] < target[p];
                    if (off[p] != base[p]) {
                        moved = 1;
                    } else if (behind) {
                        all = 0;
                    }
                }
                if (all && moved) {
                    r->resume_ms = (double)(now - t_end);
                }
            }
            if (have_target && r->catchup_ms < 0) {
                int done = 1;
                for (int p = 0; p < PARTS; p++) {
                    done &= off[p] >= target[p];
                }
                if (done) {
                    r->catchup_ms = (double)(now - t_end);
                    if (r->resume_ms < 0) {
                        r->resume_ms = r->catchup_ms;
                    }
                }
            }
        }
        if (r->resume_ms >= 0 && (!want_catchup || r->catchup_ms >= 0)) {
            return 0;
        }
        if (n_alive(s) == 0) {
            problem(s, "%s: no processor alive while waiting for recovery", label);
            return -1;
        }
        if (now > deadline) {
            problem(s, "%s: no %s within %d s", label, r->resume_ms < 0 ? "resume" : "catch-up",
                    timeout_ms / 1000);
            return -1;
        }
        h_sleep_ms(50);
    }
}

/* Waits until the first start stored offsets in Redis (not a recovery: not in the table). */
static void wait_started(struct scen *s)
{
    int64_t off[PARTS], deadline = h_now_ms() + 60000;
    while (read_offsets(s, off) != 0 || sum_offsets(off) == 0) {
        cr_assert(h_now_ms() < deadline && n_alive(s) > 0,
                  "%s: the processor stored no offsets within 60 s (see %s)", s->name,
                  s->procs[0].log);
        h_sleep_ms(50);
    }
}

static int wait_log(struct proc *p, const char *needle, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    while (h_now_ms() < deadline) {
        if (file_has(p->log, needle)) {
            return 0;
        }
        h_sleep_ms(100);
    }
    return -1;
}

static void scen_setup(struct scen *s, const char *name, int aof, uint64_t seed, int good,
                       int per_kind, int copies, double rate, const char *const *flags)
{
    memset(s, 0, sizeof(*s));
    cur = s;
    s->name = name;
    s->t0 = h_now_ms();
    s->flags = flags;
    h_tmpdir(s->dir, sizeof(s->dir), name);
    h_redis_start(&s->redis, aof);
    reg("%d redis-server", (int)s->redis.pid);
    h_kafka_start(&s->kafka, name, PARTS);
    if (s->kafka.pid > 0) {
        reg("%d smm-mock-kafka", (int)s->kafka.pid);
    }
    pool_build(&s->pool, s->dir, seed, good, per_kind, copies);
    s->feed.pool = &s->pool;
    s->feed.rate = rate;
    char err[256];
    s->feed.stream =
        h_stream_new(&s->kafka, s->kafka.topic, s->pool.part, s->pool.off, err, sizeof(err));
    cr_assert(s->feed.stream, "producer: %s", err);
    cr_log_info("%s: %zu messages (%zu poison) at %.0f/s into %s (%s); files in %s", name,
                s->pool.n, s->pool.n_poison, rate, s->kafka.topic, s->kafka.bootstrap, s->dir);
}

static void feed_start(struct scen *s)
{
    cr_assert(pthread_create(&s->feed.th, NULL, feed_main, &s->feed) == 0);
    s->feed.running = 1;
}

/* Ends the feed (the rest at full speed) and waits for every acknowledgement. */
static int feed_finish(struct scen *s)
{
    if (!s->feed.running) {
        return -1;
    }
    __atomic_store_n(&s->feed.finish, 1, __ATOMIC_SEQ_CST);
    pthread_join(s->feed.th, NULL);
    s->feed.running = 0;
    int64_t failed = h_stream_flush(s->feed.stream, 180000);
    if (s->feed.send_errors || failed != 0) {
        problem(s, "producing failed: %d send errors, flush %lld", s->feed.send_errors,
                (long long)failed);
        return -1;
    }
    if (handed(&s->feed) != s->pool.n) {
        problem(s, "only %zu of %zu messages produced", handed(&s->feed), s->pool.n);
        return -1;
    }
    return 0;
}

/* ---- DLQ check ---- */

struct dlq_ctx {
    struct pool *pool;
    size_t upto;
    int *seen; /* per pool index */
    size_t records, unknown, wrong_reason;
    char example[300];
};

static void on_dlq(void *opaque, const char *payload, size_t len, const char *reason)
{
    struct dlq_ctx *d = opaque;
    d->records++;
    size_t best = (size_t)-1;
    int reason_ok = 0;
    for (size_t i = 0; i < d->upto; i++) {
        const char *want = d->pool->reason[i];
        if (!want || d->pool->m[i].len != len || memcmp(d->pool->m[i].payload, payload, len)) {
            continue;
        }
        int ok = strcmp(want, reason) == 0;
        /* prefer an unseen twin with the right reason */
        if (best == (size_t)-1 || (ok && !reason_ok) ||
            (ok == reason_ok && d->seen[i] < d->seen[best])) {
            best = i;
            reason_ok = ok;
        }
    }
    if (best == (size_t)-1) {
        if (d->unknown++ == 0) {
            snprintf(d->example, sizeof(d->example), "unexpected dead letter (%s): %.120s",
                     reason, payload);
        }
        return;
    }
    d->seen[best]++;
    if (!reason_ok && d->wrong_reason++ == 0) {
        snprintf(d->example, sizeof(d->example), "dead letter with reason %s, want %s: %.120s",
                 reason, d->pool->reason[best], payload);
    }
}

struct dlq_result {
    size_t records, expected, present, missing, unknown, wrong_reason, reasons_covered;
    char example[300];
};

static void check_dlq(struct scen *s, struct dlq_result *out)
{
    memset(out, 0, sizeof(*out));
    struct dlq_ctx d = {.pool = &s->pool, .upto = s->pool.n};
    d.seen = calloc(s->pool.n, sizeof(int));
    h_consume_all(&s->kafka, s->kafka.dlq, 4000, on_dlq, &d);
    int covered[N_REASONS] = {0};
    for (size_t i = 0; i < s->pool.n; i++) {
        if (!s->pool.reason[i]) {
            continue;
        }
        out->expected++;
        if (d.seen[i]) {
            out->present++;
            for (size_t r = 0; r < N_REASONS; r++) {
                covered[r] |= !strcmp(all_reasons[r], s->pool.reason[i]);
            }
        } else if (out->missing++ == 0 && !d.example[0]) {
            snprintf(d.example, sizeof(d.example), "missing from the DLQ (%s): %.120s",
                     s->pool.reason[i], s->pool.m[i].payload);
        }
    }
    for (size_t r = 0; r < N_REASONS; r++) {
        out->reasons_covered += (size_t)covered[r];
    }
    out->records = d.records;
    out->unknown = d.unknown;
    out->wrong_reason = d.wrong_reason;
    snprintf(out->example, sizeof(out->example), "%s", d.example);
    free(d.seen);
}

/* ---- the table ---- */

static void fmt_ms(char *out, size_t size, double ms)
{
    if (ms < 0) {
        snprintf(out, size, "n/a");
    } else {
        snprintf(out, size, "%.1f s", ms / 1000.0);
    }
}

static void write_row(struct scen *s, int64_t sent, int64_t counted, int64_t dead, int64_t lost,
                      int64_t dup)
{
    /* recovery: the worst resume and the worst catch-up over this scenario's faults */
    double resume = -1, catchup = -1;
    const char *rl = "", *cl = "";
    for (int i = 0; i < s->n_rec; i++) {
        if (s->rec[i].resume_ms > resume) {
            resume = s->rec[i].resume_ms;
            rl = s->rec[i].label;
        }
        if (s->rec[i].catchup_ms > catchup) {
            catchup = s->rec[i].catchup_ms;
            cl = s->rec[i].label;
        }
    }
    char rs[32], cs[32], rcol[160], ccol[160];
    fmt_ms(rs, sizeof(rs), resume);
    fmt_ms(cs, sizeof(cs), catchup);
    snprintf(rcol, sizeof(rcol), "%s%s%s%s", rs, s->n_rec > 1 && resume >= 0 ? " (" : "",
             s->n_rec > 1 && resume >= 0 ? rl : "", s->n_rec > 1 && resume >= 0 ? ")" : "");
    snprintf(ccol, sizeof(ccol), "%s%s%s%s", cs, s->n_rec > 1 && catchup >= 0 ? " (" : "",
             s->n_rec > 1 && catchup >= 0 ? cl : "", s->n_rec > 1 && catchup >= 0 ? ")" : "");
    char path[600];
    side_path(path, sizeof(path), "rows");
    FILE *f = fopen(path, "a");
    if (!f) {
        cr_log_error("cannot append to %s: %s", path, strerror(errno));
        return;
    }
    fprintf(f, "%s\t%s\t%lld\t%lld\t%lld\t%lld\t%lld\t%s\t%s\t%.0f s\t%s%s%s\n",
            criterion_current_test ? criterion_current_test->name : "?",
            s->title ? s->title : s->name,
            (long long)sent, (long long)counted, (long long)dead, (long long)lost, (long long)dup,
            rcol, ccol, (double)(h_now_ms() - s->t0) / 1000.0, s->notes,
            s->problems[0] ? " PROBLEMS: " : "", s->problems);
    fclose(f);
}

/* ---- end of a scenario: measure, record, then assert ---- */

static void scen_stop_all(struct scen *s)
{
    reap(s);
    for (int i = 0; i < s->n_procs; i++) {
        if (s->procs[i].alive) {
            proc_signal(s, i, SIGTERM);
            if (s->procs[i].status != 0) {
                problem(s, "processor %s: exit status %d after SIGTERM (see %s)",
                        s->procs[i].tag, s->procs[i].status, s->procs[i].log);
            }
        }
    }
}

static void scen_finish(struct scen *s)
{
    /* 1. The rest of the stream, then full catch-up. */
    int fed = feed_finish(s);
    int64_t target[PARTS], off[PARTS] = {0};
    int caught_up = 0;
    if (fed == 0 && targets_for(s, s->pool.n, target) == 0) {
        int64_t deadline = h_now_ms() + 150000;
        while (h_now_ms() < deadline && n_alive(s) > 0) {
            if (read_offsets(s, off) == 0) {
                caught_up = 1;
                for (int p = 0; p < PARTS; p++) {
                    caught_up &= off[p] >= target[p];
                }
                if (caught_up) {
                    break;
                }
            }
            h_sleep_ms(100);
        }
        if (!caught_up) {
            problem(s, "Redis offsets stopped at %lld of %zu messages",
                    (long long)sum_offsets(off), s->pool.n);
        }
    }
    h_sleep_ms(1500); /* a last tick (it merges a finished hour of account reach sketches) */
    scen_stop_all(s);

    /* 2. Measure without asserting. */
    size_t sent = handed(&s->feed);
    struct oracle *o = oracle_new();
    for (size_t i = 0; i < sent; i++) {
        if (s->pool.reason[i]) {
            oracle_add_reject(o, s->pool.reason[i]);
        } else {
            oracle_add_event(o, s->pool.m[i].payload, s->pool.m[i].len);
        }
    }
    redisContext *c = h_redis_connect(&s->redis);
    struct oracle_diff d;
    int drc = oracle_diff(o, c, &d);
    if (drc != 0) {
        problem(s, "reading Redis for the diff failed");
    }
    struct dlq_result q;
    check_dlq(s, &q);
    appendf(s->notes, sizeof(s->notes),
            "%sDLQ: %zu/%zu poison present (%zu reasons), %zu records (%zu re-produced)",
            s->notes[0] ? "; " : "", q.present, q.expected, q.reasons_covered, q.records,
            q.records >= q.present ? q.records - q.present : 0);
    if (d.fields_differing) {
        appendf(s->notes, sizeof(s->notes), "; %lld fields differ", (long long)d.fields_differing);
    }
    write_row(s, (int64_t)sent, d.counted, d.stats_dead_letter, d.lost, d.double_counted);
    cr_log_info("%s: sent %zu, counted %lld (expected %lld), dead-lettered %lld, lost %lld, "
                "double-counted %lld, fields differing %lld; %s",
                s->name, sent, (long long)d.counted, (long long)d.expected_events,
                (long long)d.stats_dead_letter, (long long)d.lost, (long long)d.double_counted,
                (long long)d.fields_differing, s->notes);

    /* 3. Assert: exactness first (its messages name the first differing field). */
    cr_assert(fed == 0 && caught_up, "%s: %s", s->name, s->problems);
    struct oracle_report rep;
    oracle_check(o, c, (int64_t)sent, &rep);
    redisFree(c);
    cr_log_info("%s: checked %zu fields over %zu entities and %zu minutes; max reach error %.4f",
                s->name, rep.fields_checked, rep.entities, rep.minutes, rep.max_reach_error);
    cr_assert_eq(d.lost, 0, "%s: lost %lld", s->name, (long long)d.lost);
    cr_assert_eq(d.double_counted, 0, "%s: double-counted %lld", s->name,
                 (long long)d.double_counted);
    cr_assert_eq(d.fields_differing, 0);
    cr_assert(q.missing == 0 && q.unknown == 0 && q.wrong_reason == 0,
              "%s: DLQ: %zu missing, %zu unexpected, %zu with a wrong reason (%s)", s->name,
              q.missing, q.unknown, q.wrong_reason, q.example);
    cr_assert(s->problems[0] == '\0', "%s: %s", s->name, s->problems);
    oracle_free(o);
}

static void scen_cleanup(struct scen *s)
{
    if (!s) {
        return;
    }
    if (s->feed.running) {
        __atomic_store_n(&s->feed.abort_, 1, __ATOMIC_SEQ_CST);
        pthread_join(s->feed.th, NULL);
        s->feed.running = 0;
    }
    if (s->feed.stream) {
        h_stream_destroy(s->feed.stream);
        s->feed.stream = NULL;
    }
    for (int i = 0; i < s->n_procs; i++) {
        if (s->procs[i].alive) {
            proc_signal(s, i, SIGKILL);
        }
    }
    h_kafka_stop(&s->kafka);
    if (s->redis.pid > 0) {
        kill(s->redis.pid, SIGCONT);
        h_redis_stop(&s->redis);
    }
    if (s->broker_dir[0]) {
        char cmd[800];
        snprintf(cmd, sizeof(cmd), SMM_SOURCE_DIR "/tools/kafka/broker.sh stop '%s' 2>/dev/null",
                 s->broker_dir);
        if (system(cmd) != 0) {
            cr_log_warn("stopping the private broker in %s failed", s->broker_dir);
        }
        s->broker_dir[0] = '\0';
    }
    pool_free(&s->pool);
    cur = NULL;
}

static void suite_fini(void)
{
    scen_cleanup(cur);
}

TestSuite(faults, .fini = suite_fini);

static uint64_t fault_seed(void)
{
    const char *e = getenv("SMMT_FAULT_SEED");
    return e && *e ? strtoull(e, NULL, 10) : (uint64_t)h_now_ms();
}

/* ---------------------------------------------------------------- the scenarios */

/* Small batches: many flushes, so kills land before, between and inside them. */
static const char *const small_batches[] = {"flush.max_events=1500", "flush.interval_ms=50",
                                            NULL};
static const char *const normal[] = {"flush.max_events=20000", NULL};

/* 1. kill -9 of the processor at random points, ten times, each followed by a restart. */
Test(faults, a_kill9_random_restarts, .timeout = 420)
{
    struct scen s;
    scen_setup(&s, "kill9", 0, 101, 100000, 1, 1, 400, small_batches);
    s.title = "processor kill -9, 11 times";
    uint64_t seed = fault_seed();
    rng_state = seed;
    appendf(s.notes, sizeof(s.notes), "SMMT_FAULT_SEED=%llu", (unsigned long long)seed);
    feed_start(&s);
    int64_t snap[PARTS] = {0};
    int cur_p = proc_start(&s, "k0");
    wait_started(&s);
    int kills = 0, early = 0, behind = 0;
    for (int round = 1; round <= 10; round++) {
        /* Kill: a quarter of the rounds at a random moment of start-up (join, claim, first
         * fetches), the others 0-2 s after this incarnation resumed (mid catch-up or mid
         * flush: flushes run every 50 ms). */
        if (round % 4 == 0) {
            h_sleep_ms(rnd_int(5000));
            early++;
        } else {
            h_sleep_ms(rnd_int(2000));
        }
        int64_t before[PARTS];
        size_t produced = handed(&s.feed);
        proc_signal(&s, cur_p, SIGKILL);
        kills++;
        if (read_offsets(&s, before) == 0 && (size_t)sum_offsets(before) < produced) {
            behind++; /* killed with produced messages not yet stored */
        }
        char tag[16], label[48];
        snprintf(tag, sizeof(tag), "k%d", round);
        int64_t t_end = h_now_ms();
        read_offsets(&s, snap);
        size_t upto = handed(&s.feed);
        cur_p = proc_start(&s, tag);
        if (round % 4 == 3) {
            continue; /* the next round kills during start-up: nothing to measure */
        }
        snprintf(label, sizeof(label), "restart %d", round);
        if (measure(&s, label, t_end, snap, upto, 0, 60000) != 0) {
            break; /* recorded as a problem; no point in killing a processor that is stuck */
        }
    }
    /* The last incarnation: resume and full catch-up. */
    h_sleep_ms(rnd_int(1000));
    proc_signal(&s, cur_p, SIGKILL);
    kills++;
    int64_t t_end = h_now_ms();
    read_offsets(&s, snap);
    size_t upto = handed(&s.feed);
    proc_start(&s, "final");
    measure(&s, "final restart", t_end, snap, upto, 1, 90000);
    int feeding = handed(&s.feed) < s.pool.n;
    double sum = 0;
    int n = 0;
    for (int i = 0; i < s.n_rec; i++) {
        if (s.rec[i].resume_ms >= 0) {
            sum += s.rec[i].resume_ms;
            n++;
        }
    }
    appendf(s.notes, sizeof(s.notes),
            "; %d kill -9 (%d at random moments of start-up, %d with produced messages not yet "
            "stored), all while producing: %s; mean resume %.1f s",
            kills, early, behind, feeding ? "yes" : "no", n ? sum / n / 1000.0 : -1.0);
    if (!feeding) {
        problem(&s, "the feed ended before the last kill (not mid-stream)");
    }
    scen_finish(&s);
    cr_assert_geq(kills, 10);
    scen_cleanup(&s);
}

/* 2. Redis killed (-9) and restarted from its AOF (appendfsync everysec) mid-stream. */
Test(faults, b1_redis_kill9_aof_restart, .timeout = 300)
{
    struct scen s;
    scen_setup(&s, "redis-kill9", 1, 202, 60000, 1, 1, 1000, small_batches);
    s.title = "Redis kill -9, AOF restart";
    feed_start(&s);
    proc_start(&s, "1");
    wait_started(&s);
    h_sleep_ms(6000 + rnd_int(2000));
    int64_t before[PARTS] = {0};
    read_offsets(&s, before);
    h_redis_kill(&s.redis, SIGKILL);
    int64_t t_kill = h_now_ms();
    h_sleep_ms(3000); /* the processor sees Redis gone: pauses and backs off */
    h_redis_restart(&s.redis);
    reg("%d redis-server", (int)s.redis.pid);
    int64_t t_end = h_now_ms();
    int64_t restored[PARTS] = {0};
    read_offsets(&s, restored);
    size_t upto = handed(&s.feed);
    measure(&s, "redis restart", t_end, restored, upto, 1, 120000);
    appendf(s.notes, sizeof(s.notes),
            "Redis down %.1f s; stored offsets %lld before the kill, %lld after the AOF reload; "
            "STALE rewinds logged: %d",
            (double)(t_end - t_kill) / 1000.0, (long long)sum_offsets(before),
            (long long)sum_offsets(restored),
            count_in_file(s.procs[0].log, "restored from an older state"));
    h_sleep_ms(5000);
    if (handed(&s.feed) >= s.pool.n) {
        problem(&s, "the feed ended before Redis came back (not mid-stream)");
    }
    scen_finish(&s);
    scen_cleanup(&s);
}

/* Emulates what appendfsync everysec can lose on a power loss (up to ~1-2 s of writes;
 * kill -9 of redis-server loses nothing, the kernel still has the data): the AOF directory
 * is copied while Redis runs, then Redis is killed after ~1.2 s more and restarted from the
 * copy (a copy taken mid-write ends in a torn command or an open MULTI, which Redis drops on
 * load, aof-load-truncated yes). Rewrites are disabled so the copy is self-consistent. */
static void aof_no_rewrite(struct scen *s)
{
    redisContext *c = h_redis_connect(&s->redis);
    redisReply *r = redisCommand(c, "CONFIG SET auto-aof-rewrite-percentage 0");
    cr_assert(r && r->type == REDIS_REPLY_STATUS, "CONFIG SET failed");
    freeReplyObject(r);
    redisFree(c);
}

static void aof_copy(struct scen *s, const char *name)
{
    h_run("rm -rf '%s/%s' && cp -a '%s/appendonlydir' '%s/%s'", s->redis.dir, name, s->redis.dir,
          s->redis.dir, name);
}

static void redis_power_loss_restart(struct scen *s, const char *copy)
{
    h_redis_kill(&s->redis, SIGKILL);
    h_run("rm -rf '%s/appendonlydir' && mv '%s/%s' '%s/appendonlydir'", s->redis.dir,
          s->redis.dir, copy, s->redis.dir);
    h_redis_restart(&s->redis);
    reg("%d redis-server", (int)s->redis.pid);
}

/* 2b. Power loss of the Redis host mid-stream: Redis comes back ~1.2 s older than what the
 * (still running) processor saw acknowledged; the offset fence answers STALE and the
 * processor re-reads from what Redis holds. */
Test(faults, b2_redis_power_loss_mid_stream, .timeout = 300)
{
    struct scen s;
    scen_setup(&s, "redis-power-loss", 1, 212, 60000, 1, 1, 1000, small_batches);
    s.title = "Redis power loss mid-stream (AOF 1.2 s older)";
    aof_no_rewrite(&s);
    feed_start(&s);
    proc_start(&s, "1");
    wait_started(&s);
    h_sleep_ms(5000 + rnd_int(2000));
    int64_t at_copy[PARTS] = {0}, at_kill[PARTS] = {0};
    read_offsets(&s, at_copy);
    aof_copy(&s, "aof-older");
    h_sleep_ms(1200);
    read_offsets(&s, at_kill);
    int64_t t_kill = h_now_ms();
    redis_power_loss_restart(&s, "aof-older");
    int64_t t_end = h_now_ms();
    int64_t restored[PARTS] = {0};
    read_offsets(&s, restored);
    size_t upto = handed(&s.feed);
    measure(&s, "redis back, 1.2 s older", t_end, restored, upto, 1, 120000);
    appendf(s.notes, sizeof(s.notes),
            "Redis down %.1f s; stored offsets %lld at the kill, %lld after the reload (%lld "
            "messages rolled back); STALE rewinds logged: %d",
            (double)(t_end - t_kill) / 1000.0, (long long)sum_offsets(at_kill),
            (long long)sum_offsets(restored),
            (long long)(sum_offsets(at_kill) - sum_offsets(restored)),
            count_in_file(s.procs[0].log, "restored from an older state"));
    h_sleep_ms(5000);
    if (sum_offsets(restored) >= sum_offsets(at_kill)) {
        problem(&s, "the reload did not roll anything back (the fault did not happen)");
    }
    if (handed(&s.feed) >= s.pool.n) {
        problem(&s, "the feed ended before Redis came back (not mid-stream)");
    }
    scen_finish(&s);
    scen_cleanup(&s);
}

/* 2c. The same power loss in the first second of a fresh deployment, on a host that runs
 * both Redis and the processor: the lost second held the processor's first flushes (Redis
 * comes back with the owner tokens but no offsets), while Kafka kept the offsets the
 * processor committed for lag monitoring (auto-commit every 1 s). Both restart. */
Test(faults, b3_redis_power_loss_first_second, .timeout = 300)
{
    struct scen s;
    scen_setup(&s, "power-loss-1st-s", 1, 222, 40000, 1, 1, 1000, small_batches);
    s.title = "power loss in the first second (Redis + processor host)";
    aof_no_rewrite(&s);
    feed_start(&s);
    int p1 = proc_start(&s, "1");
    /* Keep the newest AOF copy taken before the first offsets appear in Redis. */
    int64_t off[PARTS], deadline = h_now_ms() + 60000;
    int have_copy = 0;
    for (;;) {
        aof_copy(&s, "aof-next");
        if (read_offsets(&s, off) == 0 && sum_offsets(off) > 0) {
            break;
        }
        h_run("rm -rf '%s/aof-first' && mv '%s/aof-next' '%s/aof-first'", s.redis.dir,
              s.redis.dir, s.redis.dir);
        have_copy = 1;
        cr_assert(h_now_ms() < deadline && n_alive(&s) > 0, "no first flush within 60 s");
        h_sleep_ms(10);
    }
    cr_assert(have_copy);
    h_sleep_ms(1200); /* the second the AOF loses: flushes, and an auto-commit to Kafka */
    int64_t at_kill[PARTS] = {0};
    read_offsets(&s, at_kill);
    proc_signal(&s, p1, SIGKILL); /* the host loses power: both die */
    redis_power_loss_restart(&s, "aof-first");
    int64_t t_end = h_now_ms();
    int64_t restored[PARTS] = {0};
    read_offsets(&s, restored);
    size_t upto = handed(&s.feed);
    proc_start(&s, "2");
    measure(&s, "host back", t_end, restored, upto, 1, 90000);
    appendf(s.notes, sizeof(s.notes),
            "stored offsets %lld at the power loss, %lld after the reload; restarted processor: "
            "%s",
            (long long)sum_offsets(at_kill), (long long)sum_offsets(restored),
            file_has(s.procs[1].log, "replaying the partition")
                ? "no offset in Redis; its own commit mark seen, partitions replayed from the start"
            : file_has(s.procs[1].log, "(none stored)") ? "no offset in Redis, resumed at the "
                                                        "Kafka-committed offset"
                                                      : "resumed at Redis offsets");
    h_sleep_ms(3000);
    scen_finish(&s);
    scen_cleanup(&s);
}

/* The scenario's temporary directory is gone when CI reports: print the broker's log. */
static void show_broker_log(const char *dir)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "tail -n 30 '%s/broker.log' >&2", dir);
    if (system(cmd) != 0) {
        cr_log_warn("no %s/broker.log", dir);
    }
}

/* 3. The Kafka broker stopped for 20 s and restarted mid-stream: a private real broker
 * (own state dir, fixed ports so the restart reuses them), never the shared fixture. */
Test(faults, c_broker_stop_20s, .timeout = 300)
{
    if (system("command -v java >/dev/null && command -v mvn >/dev/null && "
               "command -v kcat >/dev/null") != 0) {
        cr_skip_test("java, mvn or kcat missing: no real broker (scripts/install-deps.sh "
                     "--with-java)");
    }
    struct scen s;
    memset(&s, 0, sizeof(s));
    char dir[256], bdir[300], cmd[1200];
    h_tmpdir(dir, sizeof(dir), "broker");
    snprintf(bdir, sizeof(bdir), "%s/kafka", dir);
    int port = h_free_port(), cport = h_free_port(); /* never the same port twice */
    /* No pipe: system() would return the pipe's last status and hide a failed start. */
    snprintf(cmd, sizeof(cmd),
             SMM_SOURCE_DIR "/tools/kafka/broker.sh start '%s' %d %d 2>>'%s/broker.log' >/dev/null",
             bdir, port, cport, dir);
    reg("broker %s", bdir);
    int64_t t_b = h_now_ms();
    int brc = system(cmd);
    if (brc != 0) {
        snprintf(cmd, sizeof(cmd), SMM_SOURCE_DIR "/tools/kafka/broker.sh stop '%s'", bdir);
        if (system(cmd) != 0) {
            cr_log_warn("broker.sh stop failed");
        }
        show_broker_log(dir);
        cr_assert_fail("private broker did not start on ports %d/%d (its log above)", port, cport);
    }
    double broker_start_s = (double)(h_now_ms() - t_b) / 1000.0;
    char bootstrap[64];
    snprintf(bootstrap, sizeof(bootstrap), "127.0.0.1:%d", port);
    (void)table_path(); /* before SMMT_BOOTSTRAP changes its default */
    setenv("SMMT_BOOTSTRAP", bootstrap, 1); /* this test's process only */
    setenv("SMMT_KAFKA_TOOL", SMM_SOURCE_DIR "/tools/kafka/broker.sh", 1);
    scen_setup(&s, "broker-stop", 0, 303, 60000, 1, 1, 600, normal);
    s.title = "Kafka broker stopped 20 s";
    snprintf(s.broker_dir, sizeof(s.broker_dir), "%s", bdir);
    feed_start(&s);
    proc_start(&s, "1");
    wait_started(&s);
    h_sleep_ms(5000 + rnd_int(2000));
    int64_t t_stop = h_now_ms();
    snprintf(cmd, sizeof(cmd), SMM_SOURCE_DIR "/tools/kafka/broker.sh stop '%s' 2>>'%s/broker.log'",
             bdir, dir);
    h_run("%s", cmd);
    int64_t t_stopped = h_now_ms();
    h_sleep_ms(20000);
    snprintf(cmd, sizeof(cmd),
             SMM_SOURCE_DIR "/tools/kafka/broker.sh start '%s' %d %d 2>>'%s/broker.log' >/dev/null",
             bdir, port, cport, dir);
    int64_t t_start = h_now_ms();
    brc = system(cmd);
    int64_t t_end = h_now_ms();
    if (brc != 0) {
        show_broker_log(dir);
    }
    cr_assert(brc == 0, "the broker did not come back on port %d (its log above)", port);
    int64_t now_off[PARTS] = {0};
    read_offsets(&s, now_off);
    size_t upto = handed(&s.feed);
    measure(&s, "broker restart", t_end, now_off, upto, 1, 180000);
    appendf(s.notes, sizeof(s.notes),
            "broker stopped in %.1f s, down %.1f s (20 s stopped + %.1f s restart to ready), "
            "first start %.1f s; the processor's session expired (partitions revoked as lost, "
            "re-claimed from Redis): %s",
            (double)(t_stopped - t_stop) / 1000.0, (double)(t_end - t_stop) / 1000.0,
            (double)(t_end - t_start) / 1000.0, broker_start_s,
            file_has(s.procs[0].log, "partition(s) (lost)") ? "yes" : "no");
    h_sleep_ms(5000);
    if (handed(&s.feed) >= s.pool.n) {
        problem(&s, "the feed ended before the broker came back (not mid-stream)");
    }
    scen_finish(&s);
    scen_cleanup(&s);
}

/* 4. Redis unreachable for 30 s (SIGSTOP / SIGCONT): the processor pauses with bounded
 * memory, then catches up. */
Test(faults, d_redis_unreachable_30s, .timeout = 300)
{
    struct scen s;
    scen_setup(&s, "redis-stop-30s", 0, 404, 90000, 1, 1, 1200, normal);
    s.title = "Redis unreachable 30 s (SIGSTOP)";
    feed_start(&s);
    int pi = proc_start(&s, "1");
    wait_started(&s);
    h_sleep_ms(5000 + rnd_int(2000));
    pid_t ppid = s.procs[pi].pid;
    long rss_before = rss_kb(ppid), rss_max = rss_before;
    size_t at_stop = handed(&s.feed);
    kill(s.redis.pid, SIGSTOP);
    int64_t t_stop = h_now_ms();
    double cpu_before = cpu_s(ppid);
    while (h_now_ms() - t_stop < 30000) {
        h_sleep_ms(1000);
        long kb = rss_kb(ppid);
        if (kb > rss_max) {
            rss_max = kb;
        }
    }
    size_t during = handed(&s.feed) - at_stop;
    /* A paused processor sleeps between its reconnect attempts; it must not spin (the
     * spin while a flush awaits a busy Redis is d2_'s to catch). */
    double cpu_during = cpu_s(ppid) - cpu_before;
    int paused = file_has(s.procs[pi].log, "consumption paused");
    kill(s.redis.pid, SIGCONT);
    int64_t t_end = h_now_ms();
    size_t upto = handed(&s.feed);
    measure(&s, "SIGCONT", t_end, NULL, upto, 1, 120000);
    appendf(s.notes, sizeof(s.notes),
            "%zu messages produced during the 30 s outage; processor RSS %.1f MiB before, max "
            "%.1f MiB during (bound %d MiB); paused: %s; processor CPU during the outage "
            "%.2f s of 30 s",
            during, (double)rss_before / 1024.0, (double)rss_max / 1024.0, RSS_LIMIT_KB / 1024,
            paused ? "yes" : "NO", cpu_during);
    h_sleep_ms(5000);
    if (!paused) {
        problem(&s, "the processor never logged that it paused consumption");
    }
    if (rss_max >= RSS_LIMIT_KB) {
        problem(&s, "processor RSS %ld kB during the outage, bound %d kB", rss_max, RSS_LIMIT_KB);
    }
    if (cpu_before < 0 || cpu_during < 0 || cpu_during > 3.0) {
        problem(&s, "processor used %.2f CPU seconds while Redis was stopped for 30 s (bound "
                    "3: it should sleep until Redis answers)", cpu_during);
    }
    scen_finish(&s);
    scen_cleanup(&s);
}

/* Holds Redis for ms milliseconds with a script (every client waits, a flush sent meanwhile
 * included) and returns the CPU seconds pid used during it, -1 on error. */
static double redis_busy_cpu(struct scen *s, pid_t pid, int ms)
{
    static const char *const busy =
        "local t = redis.call('TIME') local t0 = t[1] * 1e6 + t[2] "
        "repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] - t0 >= tonumber(ARGV[1]) * 1000 "
        "return 1";
    redisContext *c = h_redis_connect(&s->redis);
    double before = cpu_s(pid);
    redisReply *r = redisCommand(c, "EVAL %s 0 %d", busy, ms);
    double used = before >= 0 && r && r->type == REDIS_REPLY_INTEGER ? cpu_s(pid) - before : -1;
    if (r) {
        freeReplyObject(r);
    }
    redisFree(c);
    return used;
}

/* 4b. Redis busy (a script holds it 3 s, three times): a flush waits for its reply and the
 * next one falls due; the processor must sleep meanwhile, not spin on the Redis socket as
 * it once did (3 poll(2) calls per event in the benchmark; 2.6 CPU seconds of 3 here).
 * The tick and a late flush would block in their own calls and hide a spin, and a reply
 * timeout would pause consumption: all three are set beyond the busy spells. The worst of
 * three spells counts, as one may fall between flushes. */
static const char *const busy_flags[] = {"flush.max_events=20000", "tick_ms=60000",
                                         "redis.timeout_ms=10000",
                                         "flush.max_interval_ms=10000", NULL};
Test(faults, d2_redis_busy_no_spin, .timeout = 300)
{
    struct scen s;
    scen_setup(&s, "redis-busy", 0, 414, 30000, 1, 1, 1200, busy_flags);
    s.title = "Redis busy 3 × 3 s (a script holds it)";
    feed_start(&s);
    int pi = proc_start(&s, "1");
    wait_started(&s);
    h_sleep_ms(3000);
    double cpu[3], worst = 0;
    for (int i = 0; i < 3; i++) {
        cpu[i] = redis_busy_cpu(&s, s.procs[pi].pid, 3000);
        double v = cpu[i] < 0 ? 99 : cpu[i]; /* 99: unreadable, a failure */
        if (v > worst) {
            worst = v;
        }
        h_sleep_ms(1000);
    }
    appendf(s.notes, sizeof(s.notes),
            "processor CPU while a script held Redis 3 s: %.2f, %.2f, %.2f s", cpu[0], cpu[1],
            cpu[2]);
    if (worst > 0.75) {
        problem(&s, "processor used up to %.2f CPU seconds while Redis was busy for 3 s (bound "
                    "0.75: it should sleep until Redis answers)", worst);
    }
    scen_finish(&s);
    scen_cleanup(&s);
}

/* 5. Scale-out: three instances in one consumer group; instances added and removed
 * mid-stream (rebalances), one removed with SIGTERM, one killed with -9. */
Test(faults, e_scale_out_rebalance, .timeout = 300)
{
    struct scen s;
    scen_setup(&s, "scale-out", 0, 505, 100000, 1, 1, 1000, small_batches);
    s.title = "scale-out 1 → 3 → 1 instances (rebalances)";
    feed_start(&s);
    int64_t off[PARTS];
    int a = proc_start(&s, "A");
    wait_started(&s);
    h_sleep_ms(4000);

    int64_t t = h_now_ms();
    read_offsets(&s, off);
    int b = proc_start(&s, "B");
    if (wait_log(&s.procs[b], "claimed", 60000) != 0) {
        problem(&s, "B never claimed a partition");
    }
    measure(&s, "B joins", t, off, handed(&s.feed), 1, 60000);
    h_sleep_ms(4000);

    t = h_now_ms();
    read_offsets(&s, off);
    int c = proc_start(&s, "C");
    if (wait_log(&s.procs[c], "claimed", 60000) != 0) {
        problem(&s, "C never claimed a partition");
    }
    measure(&s, "C joins", t, off, handed(&s.feed), 1, 60000);
    h_sleep_ms(4000);

    t = h_now_ms();
    read_offsets(&s, off);
    size_t upto = handed(&s.feed);
    proc_signal(&s, b, SIGTERM);
    if (s.procs[b].status != 0) {
        problem(&s, "B exited with %d after SIGTERM (see %s)", s.procs[b].status,
                s.procs[b].log);
    }
    measure(&s, "B leaves (SIGTERM)", t, off, upto, 1, 60000);
    h_sleep_ms(4000);

    read_offsets(&s, off);
    upto = handed(&s.feed);
    proc_signal(&s, c, SIGKILL);
    t = h_now_ms();
    measure(&s, "C killed (-9)", t, off, upto, 1, 90000);
    int fenced = 0, assigns = 0;
    for (int i = 0; i < s.n_procs; i++) {
        fenced += count_in_file(s.procs[i].log, "fenced");
        assigns += count_in_file(s.procs[i].log, "assigned ");
    }
    appendf(s.notes, sizeof(s.notes),
            "A, +B, +C, B SIGTERM, C kill -9, A finishes; %d assignments over 3 instances, %d "
            "fenced flushes logged",
            assigns, fenced);
    if (handed(&s.feed) >= s.pool.n) {
        problem(&s, "the feed ended before the last membership change (not mid-stream)");
    }
    if (!s.procs[a].alive) {
        problem(&s, "A is not alive at the end");
    }
    scen_finish(&s);
    scen_cleanup(&s);
}

/* 6. Poison mixed into the stream: every dead-letter reason, many of each, and one kill -9
 * in the middle; all of it in the dead-letter topic with its reason, none of it counted. */
Test(faults, f_poison_every_reason, .timeout = 300)
{
    struct scen s;
    scen_setup(&s, "poison", 0, 606, 40000, 25, 4, 1000, small_batches);
    s.title = "poison input, every dead-letter reason (+ kill -9)";
    int have[N_REASONS] = {0};
    for (size_t i = 0; i < s.pool.n; i++) {
        for (size_t r = 0; r < N_REASONS && s.pool.reason[i]; r++) {
            have[r] += !strcmp(s.pool.reason[i], all_reasons[r]);
        }
    }
    for (size_t r = 0; r < N_REASONS; r++) {
        cr_assert(have[r] > 0, "the pool has no %s poison", all_reasons[r]);
    }
    feed_start(&s);
    int64_t snap[PARTS] = {0};
    int p1 = proc_start(&s, "1");
    wait_started(&s);
    h_sleep_ms(8000 + rnd_int(4000));
    proc_signal(&s, p1, SIGKILL);
    int64_t t_end = h_now_ms();
    read_offsets(&s, snap);
    size_t upto = handed(&s.feed);
    proc_start(&s, "2");
    measure(&s, "restart after kill -9", t_end, snap, upto, 1, 90000);
    appendf(s.notes, sizeof(s.notes), "%zu poison messages, all %zu reasons, one kill -9",
            s.pool.n_poison, N_REASONS);
    scen_finish(&s);
    scen_cleanup(&s);
}

/* ---------------------------------------------------------------- the report */

static int64_t suite_t0;

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    suite_t0 = h_now_ms();
    char path[600];
    side_path(path, sizeof(path), "rows");
    unlink(path);
    side_path(path, sizeof(path), "cleanup");
    unlink(path);
}

/* Stops whatever a test that was killed (timeout) left behind. */
static void cleanup_leftovers(void)
{
    char path[600], line[700];
    side_path(path, sizeof(path), "cleanup");
    FILE *f = fopen(path, "r");
    if (!f) {
        return;
    }
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        int pid;
        char what[600];
        if (sscanf(line, "broker %599s", what) == 1) {
            char cmd[800];
            snprintf(cmd, sizeof(cmd),
                     SMM_SOURCE_DIR "/tools/kafka/broker.sh stop '%s' >/dev/null 2>&1", what);
            if (system(cmd) != 0) {
                fprintf(stderr, "faults: stopping broker %s failed\n", what);
            }
        } else if (sscanf(line, "%d %599s", &pid, what) == 2 && pid > 0 && comm_is(pid, what)) {
            kill(pid, SIGCONT);
            kill(pid, SIGKILL);
            fprintf(stderr, "faults: killed leftover %s (pid %d)\n", what, pid);
        }
    }
    fclose(f);
    unlink(path);
}

static const struct criterion_test_stats *find_test(struct criterion_global_stats *stats,
                                                    const char *name)
{
    for (struct criterion_suite_stats *ss = stats->suites; ss; ss = ss->next) {
        for (struct criterion_test_stats *ts = ss->tests; ts; ts = ts->next) {
            if (!strcmp(ts->test->name, name)) {
                return ts;
            }
        }
    }
    return NULL;
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    cleanup_leftovers();
    char rows_path[600];
    side_path(rows_path, sizeof(rows_path), "rows");
    const char *out_path = table_path();
    static char buf[32768];
    size_t pos = 0;
#define ADD(...)                                                                                  \
    do {                                                                                          \
        if (pos < sizeof(buf) - 1) {                                                              \
            pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, __VA_ARGS__);                   \
        }                                                                                         \
    } while (0)
    ADD("| scenario | events sent | counted | dead-lettered | lost | double-counted | "
        "recovery: resume | recovery: catch-up | run time | result | notes |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
    char line[4096], written[16][128];
    int n_written = 0;
    FILE *rows = fopen(rows_path, "r");
    while (rows && fgets(line, sizeof(line), rows)) {
        line[strcspn(line, "\n")] = '\0';
        char *col[11] = {0};
        int n = 0;
        for (char *tok = line; tok && n < 11; n++) {
            col[n] = tok;
            tok = strchr(tok, '\t');
            if (tok) {
                *tok++ = '\0';
            }
        }
        if (n < 11) {
            continue;
        }
        const struct criterion_test_stats *ts = find_test(stats, col[0]);
        const char *result = !ts                                     ? "?"
                             : ts->test_status == CR_STATUS_PASSED ? "pass"
                             : ts->test_status == CR_STATUS_SKIPPED ? "skipped"
                                                                    : "**FAIL**";
        if (n_written < 16) {
            snprintf(written[n_written++], sizeof(written[0]), "%s", col[0]);
        }
        ADD("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", col[1], col[2], col[3],
            col[4], col[5], col[6], col[7], col[8], col[9], result, col[10]);
    }
    if (rows) {
        fclose(rows);
    }
    /* Tests without a row: failed before measuring (timeout, crash, early assert) or skipped. */
    for (struct criterion_suite_stats *ss = stats->suites; ss; ss = ss->next) {
        for (struct criterion_test_stats *ts = ss->tests; ts; ts = ts->next) {
            int has_row = 0;
            for (int i = 0; i < n_written; i++) {
                has_row |= !strcmp(written[i], ts->test->name);
            }
            if (has_row || (ts->test_status == CR_STATUS_SKIPPED &&
                            (!ts->message || strstr(ts->message, "disabled")))) {
                continue;
            }
            ADD("| %s | | | | | | | | %.0f s | %s | %s%s%s |\n", ts->test->name,
                ts->elapsed_time,
                ts->test_status == CR_STATUS_SKIPPED ? "skipped" : "**FAIL**",
                ts->timed_out ? "timed out; " : ts->crashed ? "crashed; " : "",
                ts->message ? ts->message : "", ts->test_status == CR_STATUS_SKIPPED ? "" :
                " (see the test output)");
        }
    }
    ADD("\nSuite run time %.0f s (%zu tests: %zu passed, %zu failed, %zu skipped). Alerts do "
        "not exist yet and are not checked.\n",
        (double)(h_now_ms() - suite_t0) / 1000.0, stats->nb_tests, stats->tests_passed,
        stats->tests_failed + stats->tests_crashed, stats->tests_skipped);
#undef ADD
    printf("\nFault suite (%s):\n\n%s\n", out_path, buf);
    fflush(stdout);
    FILE *out = fopen(out_path, "w");
    if (out) {
        fputs(buf, out);
        fclose(out);
    }
    unlink(rows_path);
}

