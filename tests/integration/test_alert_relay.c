/* tests/integration/test_alert_relay.c - the alerts stream into Kafka, exactly once.
 *
 * Entries are XADDed to <prefix>alerts of a private redis-server; the relay (in this
 * process, or in forked children that are killed with SIGKILL or stopped with SIGSTOP)
 * copies them; then the alerts topic is read back with isolation.level=read_committed and
 * every entry must be there exactly once, in stream order per partition, with its key,
 * value and headers.
 *
 * The librdkafka 2.0.2 mock cluster accepts the transactional API but does not model its
 * semantics (checked: a second init_transactions() with the same transactional.id does not
 * fence the first, whose commit still succeeds, and read_committed consumers see data of
 * transactions that never committed). So the crash and fencing tests run only against a
 * real broker (ctest test_alert_relay_real_kafka); on the mock they are skipped. Forked
 * children create their own librdkafka handles; the parent creates none before they are
 * reaped (librdkafka's threads do not survive fork). */
#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "connectors/alert_relay.h"
#include "tests/integration/harness.h"

#define PREFIX "smmt:"

static int real_broker(void)
{
    const char *a = getenv("SMMT_BOOTSTRAP"), *b = getenv("SMMT_BOOTSTRAP_FILE");
    return (a && *a) || (b && *b);
}

struct ctx {
    struct h_redis redis;
    struct h_kafka kafka;
    char alerts[200];
    char group[160];
    redisContext *c;
    int next; /* next alert number to add */
};

static void setup(struct ctx *x, const char *name, int partitions)
{
    memset(x, 0, sizeof(*x));
    h_redis_start(&x->redis, 0);
    h_kafka_start(&x->kafka, name, 1);
    snprintf(x->alerts, sizeof(x->alerts), "%s.alerts", x->kafka.topic);
    snprintf(x->group, sizeof(x->group), "g-%s", x->kafka.topic);
    if (partitions > 0 && x->kafka.pid == 0) {
        h_run("%s create-topic %s %s %d >/dev/null", getenv("SMMT_KAFKA_TOOL"),
              x->kafka.bootstrap, x->alerts, partitions);
    } /* else: created by the first transactional produce (the "topic missing" case) */
    x->c = h_redis_connect(&x->redis);
}

static void teardown(struct ctx *x)
{
    redisFree(x->c);
    h_kafka_stop(&x->kafka);
    h_redis_stop(&x->redis);
}

/* Adds alerts [x->next, x->next + n); every 7th has no content_id (key = account_id).
 * maxlen > 0 trims exactly (MAXLEN n). */
static void add_alerts(struct ctx *x, int n, int maxlen)
{
    for (int i = 0; i < n; i++, x->next++) {
        char id[64], content[32], account[32], json[256], ml[16];
        int a = x->next;
        snprintf(content, sizeof(content), a % 7 == 0 ? "" : "post-%d", a);
        snprintf(account, sizeof(account), "acct-%d", a % 5);
        snprintf(id, sizeof(id), "viral:%s:%d", a % 7 == 0 ? account : content, a);
        snprintf(json, sizeof(json),
                 "{\"alert_id\":\"%s\",\"kind\":\"viral\",\"content_id\":\"%s\","
                 "\"account_id\":\"%s\",\"from\":\"normal\",\"to\":\"rising\",\"n\":%d}",
                 id, content, account, a);
        snprintf(ml, sizeof(ml), "%d", maxlen);
        const char *av[16] = {"XADD", PREFIX "alerts"};
        int ac = 2;
        if (maxlen > 0) {
            av[ac++] = "MAXLEN";
            av[ac++] = ml;
        }
        const char *rest[] = {"*", "alert_id", id, "kind", "viral", "content_id", content,
                              "account_id", account, "json", json};
        for (size_t j = 0; j < sizeof(rest) / sizeof(rest[0]); j++) {
            av[ac++] = rest[j];
        }
        redisReply *rep = redisCommandArgv(x->c, ac, av, NULL);
        cr_assert(rep && rep->type == REDIS_REPLY_STRING, "XADD failed");
        freeReplyObject(rep);
    }
}

/* ---- the relay ---- */

struct logbuf {
    char text[65536];
    size_t len;
};

static void log_to(void *opaque, enum smm_log_level lvl, const char *msg)
{
    struct logbuf *lb = opaque;
    fprintf(stderr, "[%d] %d %s\n", (int)getpid(), (int)lvl, msg);
    if (lb && lb->len + strlen(msg) + 2 < sizeof(lb->text)) {
        lb->len += (size_t)snprintf(lb->text + lb->len, sizeof(lb->text) - lb->len, "%s\n", msg);
    }
}

/* Children die or stop at these points (set before fork). */
static int kill_at_produced, kill_at_committed, stop_at_produced;
static int n_produced, n_committed;

static void hook(void *opaque, enum smm_alert_relay_point at, int64_t n)
{
    (void)opaque;
    (void)n;
    if (at == SMM_ALERT_RELAY_PRODUCED) {
        n_produced++;
        if (n_produced == kill_at_produced) {
            raise(SIGKILL); /* mid-transaction: produced, not committed */
        }
        if (n_produced == stop_at_produced) {
            raise(SIGSTOP); /* a zombie: resumes when the parent says so */
        }
    } else if (++n_committed == kill_at_committed) {
        raise(SIGKILL);
    }
}

static struct smm_alert_relay *relay_new(struct ctx *x, struct logbuf *lb, int batch)
{
    struct smm_alert_relay_opts o = {
        .topic = x->alerts,
        .prefix = PREFIX,
        .group_id = x->group,
        .n_conf = 1,
        .conf_key = (char *[]){"bootstrap.servers"},
        .conf_val = (char *[]){x->kafka.bootstrap},
        .redis = {.host = "127.0.0.1", .port = x->redis.port, .timeout_ms = 2000},
        .batch_max = batch,
        .budget_ms = 300,
        .lease_ms = 2000,
        .opaque = lb,
        .log = log_to,
        .hook = hook,
    };
    char err[256];
    struct smm_alert_relay *r = smm_alert_relay_new(&o, err, sizeof(err));
    return r;
}

/* Polls every 50 ms until idle_ms passed without anything relayed while active, or
 * max_ms. Returns the number relayed. */
static int64_t relay_run(struct smm_alert_relay *r, int idle_ms, int max_ms)
{
    int64_t total = 0, start = h_now_ms(), last = start;
    while (h_now_ms() - start < max_ms) {
        int64_t n = 0;
        smm_alert_relay_poll(r, h_now_ms(), &n);
        total += n;
        if (n > 0 || !smm_alert_relay_active(r)) {
            last = h_now_ms();
        }
        if (h_now_ms() - last >= idle_ms) {
            break;
        }
        h_sleep_ms(50);
    }
    return total;
}

/* A forked relay process: runs until idle (exit 0) or killed. */
static pid_t relay_child(struct ctx *x, int batch, int kp, int kc, int sp)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        kill_at_produced = kp;
        kill_at_committed = kc;
        stop_at_produced = sp;
        struct smm_alert_relay *r = relay_new(x, NULL, batch);
        if (!r) {
            _exit(3);
        }
        relay_run(r, 3000, 120000);
        smm_alert_relay_destroy(r);
        _exit(0);
    }
    return pid;
}

/* ---- reading the topic back ---- */

struct got {
    char alert[64], stream_id[48], key[64];
    char *value;
    int32_t partition;
};

static size_t read_topic(struct ctx *x, struct got **out)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", x->kafka.bootstrap, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", "reader", err, sizeof(err));
    rd_kafka_conf_set(conf, "isolation.level", "read_committed", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    cr_assert(rk, "%s", err);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, x->alerts, NULL);
    cr_assert(rd_kafka_metadata(rk, 0, rkt, &md, 10000) == 0);
    int np = md->topics[0].partition_cnt;
    cr_assert(np > 0, "alerts topic %s has no partitions", x->alerts);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
    for (int i = 0; i < np; i++) {
        rd_kafka_topic_partition_list_add(l, x->alerts, md->topics[0].partitions[i].id)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    size_t n = 0, cap = 1024;
    struct got *g = calloc(cap, sizeof(*g));
    int eofs = 0;
    int64_t deadline = h_now_ms() + 60000;
    while (eofs < np && h_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) {
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eofs++;
        } else if (!m->err) {
            if (n == cap) {
                cap *= 2;
                g = realloc(g, cap * sizeof(*g));
            }
            struct got *e = &g[n++];
            memset(e, 0, sizeof(*e));
            e->partition = m->partition;
            e->value = strndup(m->payload, m->len);
            snprintf(e->key, sizeof(e->key), "%.*s", (int)m->key_len, (const char *)m->key);
            rd_kafka_headers_t *h = NULL;
            const void *v;
            size_t vl;
            if (!rd_kafka_message_headers(m, &h)) {
                if (!rd_kafka_header_get_last(h, "smm.alert_id", &v, &vl)) {
                    snprintf(e->alert, sizeof(e->alert), "%.*s", (int)vl, (const char *)v);
                }
                if (!rd_kafka_header_get_last(h, "smm.stream_id", &v, &vl)) {
                    snprintf(e->stream_id, sizeof(e->stream_id), "%.*s", (int)vl,
                             (const char *)v);
                }
            }
        }
        rd_kafka_message_destroy(m);
    }
    cr_assert(eofs == np, "did not reach the end of %s", x->alerts);
    rd_kafka_destroy(rk);
    *out = g;
    return n;
}

static int sid_less(const char *a, const char *b)
{
    unsigned long long am, as, bm, bs;
    sscanf(a, "%llu-%llu", &am, &as);
    sscanf(b, "%llu-%llu", &bm, &bs);
    return am < bm || (am == bm && as < bs);
}

/* Alerts [from, to) must each be in the topic exactly once, in stream order within each
 * partition, with key = content_id (account_id when empty) and value = the json field;
 * `absent` (may be NULL) names numbers that must not be there. */
static void check_exactly_once(struct ctx *x, int from, int to, const char *what)
{
    struct got *g;
    size_t n = read_topic(x, &g);
    int *seen = calloc((size_t)to + 1, sizeof(int));
    char last[64][48];
    memset(last, 0, sizeof(last));
    for (size_t i = 0; i < n; i++) {
        int a = -1;
        const char *p = strrchr(g[i].alert, ':');
        cr_assert(p, "%s: message without smm.alert_id: %s", what, g[i].value);
        a = atoi(p + 1);
        cr_assert(a >= from && a < to, "%s: unexpected alert %s", what, g[i].alert);
        seen[a]++;
        char want_key[32];
        if (a % 7 == 0) {
            snprintf(want_key, sizeof(want_key), "acct-%d", a % 5);
        } else {
            snprintf(want_key, sizeof(want_key), "post-%d", a);
        }
        cr_assert_str_eq(g[i].key, want_key, "%s: key of %s", what, g[i].alert);
        char needle[96];
        snprintf(needle, sizeof(needle), "\"alert_id\":\"%s\"", g[i].alert);
        cr_assert(strstr(g[i].value, needle), "%s: value of %s is %s", what, g[i].alert,
                  g[i].value);
        int part = g[i].partition & 63;
        cr_assert(last[part][0] == 0 || sid_less(last[part], g[i].stream_id),
                  "%s: partition %d out of stream order: %s after %s", what, part,
                  g[i].stream_id, last[part]);
        snprintf(last[part], sizeof(last[part]), "%s", g[i].stream_id);
    }
    int missing = 0, dup = 0;
    for (int a = from; a < to; a++) {
        missing += seen[a] == 0;
        dup += seen[a] > 1;
    }
    fprintf(stderr, "%s: %zu messages, alerts %d..%d: %d missing, %d duplicated\n", what, n,
            from, to - 1, missing, dup);
    cr_assert(missing == 0 && dup == 0 && n == (size_t)(to - from),
              "%s: %d missing, %d duplicated, %zu messages for %d alerts", what, missing, dup, n,
              to - from);
    for (size_t i = 0; i < n; i++) {
        free(g[i].value);
    }
    free(g);
    free(seen);
}

/* ---- tests ---- */

Test(alert_relay, exactly_once_in_order, .timeout = 300)
{
    struct ctx x;
    setup(&x, "relay-basic", 3);
    add_alerts(&x, 1200, 0);
    struct logbuf lb = {.len = 0};
    struct smm_alert_relay *r = relay_new(&x, &lb, 500);
    cr_assert(r);
    int64_t n = relay_run(r, 1500, 120000);
    cr_assert_eq(n, 1200, "relayed %lld", (long long)n);
    add_alerts(&x, 300, 0); /* more while running */
    n = relay_run(r, 1500, 60000);
    cr_assert_eq(n, 300, "relayed %lld", (long long)n);
    smm_alert_relay_destroy(r);
    /* A new relay resumes from the topic: nothing twice, the new ones once. */
    add_alerts(&x, 100, 0);
    r = relay_new(&x, &lb, 500);
    n = relay_run(r, 1500, 60000);
    cr_assert_eq(n, 100, "after a restart relayed %lld", (long long)n);
    smm_alert_relay_destroy(r);
    check_exactly_once(&x, 0, 1600, "in order");
    teardown(&x);
}

Test(alert_relay, stream_trimmed_is_reported, .timeout = 300)
{
    struct ctx x;
    setup(&x, "relay-trim", 1);
    add_alerts(&x, 100, 0);
    struct logbuf lb = {.len = 0};
    struct smm_alert_relay *r = relay_new(&x, &lb, 500);
    cr_assert_eq(relay_run(r, 1500, 60000), 100);
    smm_alert_relay_destroy(r);
    add_alerts(&x, 500, 200); /* alerts 100..599 added, only 400..599 kept: 300 lost */
    r = relay_new(&x, &lb, 500);
    cr_assert_eq(relay_run(r, 1500, 60000), 200);
    smm_alert_relay_destroy(r);
    cr_assert(strstr(lb.text, "300 alert(s) were trimmed"), "log:\n%s", lb.text);
    /* what was relayed is there exactly once: 0..99 and 400..599 */
    struct got *g;
    size_t n = read_topic(&x, &g);
    cr_assert_eq(n, 300);
    int seen[600] = {0};
    for (size_t i = 0; i < n; i++) {
        int a = atoi(strrchr(g[i].alert, ':') + 1);
        cr_assert(a >= 0 && a < 600 && (a < 100 || a >= 400) && !seen[a], "alert %d", a);
        seen[a] = 1;
        free(g[i].value);
    }
    free(g);
    teardown(&x);
}

/* Redis restored from an older state: the processor appends alerts the relay already
 * committed again, under new stream ids; they must not be relayed twice (also not by a
 * relay that starts afresh and learns them from the topic). */
Test(alert_relay, replayed_alert_ids_are_skipped, .timeout = 300)
{
    struct ctx x;
    setup(&x, "relay-replay", 2);
    add_alerts(&x, 50, 0);
    struct logbuf lb = {.len = 0};
    struct smm_alert_relay *r = relay_new(&x, &lb, 500);
    cr_assert_eq(relay_run(r, 1500, 60000), 50);
    redisReply *rep = redisCommand(x.c, "DEL " PREFIX "alerts");
    freeReplyObject(rep);
    x.next = 40;
    add_alerts(&x, 20, 0); /* 40..49 again, then 50..59 */
    cr_assert_eq(relay_run(r, 1500, 60000), 10);
    smm_alert_relay_destroy(r);
    x.next = 55;
    add_alerts(&x, 10, 0); /* 55..59 again, then 60..64 */
    r = relay_new(&x, &lb, 500);
    cr_assert_eq(relay_run(r, 1500, 60000), 5);
    smm_alert_relay_destroy(r);
    check_exactly_once(&x, 0, 65, "replayed ids");
    teardown(&x);
}

Test(alert_relay, kill9_mid_transaction, .timeout = 600)
{
    if (!real_broker()) {
        cr_skip_test("the mock cluster neither fences nor hides aborted transactions");
    }
    struct ctx x;
    setup(&x, "relay-kill", 0); /* no topic: the relay's first produce creates it */
    add_alerts(&x, 2000, 0);
    /* 1: killed with its 3rd batch produced but not committed */
    pid_t p = relay_child(&x, 100, 3, 0, 0);
    cr_assert_eq(h_wait(p, 120000), 128 + SIGKILL);
    /* 2: killed right after its 2nd commit */
    add_alerts(&x, 500, 0);
    p = relay_child(&x, 100, 0, 2, 0);
    cr_assert_eq(h_wait(p, 120000), 128 + SIGKILL);
    /* 3: killed mid-transaction again, then 4: at a random moment */
    p = relay_child(&x, 100, 5, 0, 0);
    cr_assert_eq(h_wait(p, 120000), 128 + SIGKILL);
    add_alerts(&x, 500, 0);
    p = relay_child(&x, 50, 0, 0, 0);
    h_sleep_ms(2500 + (int)(h_now_ms() % 1000));
    kill(p, SIGKILL);
    h_wait(p, 10000);
    /* 5: runs to the end */
    p = relay_child(&x, 100, 0, 0, 0);
    cr_assert_eq(h_wait(p, 300000), 0);
    check_exactly_once(&x, 0, 3000, "kill -9");
    teardown(&x);
}

Test(alert_relay, two_relays_lease_and_fencing, .timeout = 600)
{
    if (!real_broker()) {
        cr_skip_test("the mock cluster neither fences nor hides aborted transactions");
    }
    struct ctx x;
    setup(&x, "relay-two", 3);
    add_alerts(&x, 1500, 0);
    /* A stops itself (SIGSTOP) with its 4th batch produced, uncommitted; B stands by until
     * A's lease expires, then fences A and relays the rest. A then wakes up as a zombie. */
    pid_t a = relay_child(&x, 100, 0, 0, 4);
    int status = 0;
    cr_assert_eq(waitpid(a, &status, WUNTRACED), a);
    cr_assert(WIFSTOPPED(status), "A did not stop");
    pid_t b = relay_child(&x, 100, 0, 0, 0);
    add_alerts(&x, 500, 0);
    cr_assert_eq(h_wait(b, 300000), 0);
    kill(a, SIGCONT);
    add_alerts(&x, 100, 0); /* A, fenced, must not relay these twice either */
    b = relay_child(&x, 100, 0, 0, 0);
    int ra = h_wait(a, 120000);
    cr_assert_eq(h_wait(b, 300000), 0);
    cr_assert(ra == 0, "zombie exit %d", ra);
    check_exactly_once(&x, 0, 2100, "two relays");
    teardown(&x);
}
