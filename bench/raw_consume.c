/* bench/raw_consume.c - the baseline of bench/run.sh: a plain librdkafka consumer.
 *
 * It reads N messages of a topic with rd_kafka_consumer_poll(), the same call and the same
 * consumer settings smm-processor uses (connectors/kafka_source.c), and does nothing with
 * them except touch every payload byte (a checksum that is printed, so the compiler cannot
 * drop the loop). Whatever smm-processor does beyond this - JSON decoding, aggregation,
 * Redis - is what the ratio smm/raw of the benchmark measures.
 *
 * Three spans are reported, all on CLOCK_MONOTONIC and all ending at the N-th message: from
 * the start of the process, from the first partition assignment (the group join is over;
 * the mock cluster's join takes about 3 s, which would otherwise dominate short runs) and
 * from the first message. bench/run.sh compares "from assignment" with smm-processor's
 * span from its assignment to the moment Redis holds all N offsets. CPU time is
 * CLOCK_PROCESS_CPUTIME_ID, all of librdkafka's threads included.
 *
 * --watermarks queries each partition's low and high watermark instead, so run.sh can
 * prove that the mock cluster kept every message (low = 0 everywhere, sum of highs = N).
 *
 * Output (stdout, one line each, parsed by run.sh):
 *   raw: N msgs; from start S s = R msg/s; from assignment S s = R msg/s; from first message
 *        S s = R msg/s; cpu C s = P msg/cpu-s; bytes B; checksum X
 *   watermarks: partitions P low_sum L high_sum H nonzero_low Z max_high M */
#include <librdkafka/rdkafka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RAW_MAX_X 32

struct raw_opts {
    const char *brokers;
    const char *topic;
    const char *group;
    long long count;
    long long timeout_ms; /* give up (exit 1) after this long without reaching count */
    int watermarks;
    int x_cnt;
    const char *x_key[RAW_MAX_X];
    const char *x_val[RAW_MAX_X];
};

static volatile sig_atomic_t stop;
static double t_assigned; /* CLOCK_MONOTONIC of the first assignment, 0 before */

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Records when partitions arrive (the group join is over) and assigns them as given. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    (void)opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (t_assigned == 0) {
            t_assigned = mono_s();
        }
        if (strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0) {
            rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
            if (e) {
                rd_kafka_error_destroy(e);
            }
        } else {
            rd_kafka_assign(rk, parts);
        }
    } else if (strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
        if (e) {
            rd_kafka_error_destroy(e);
        }
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: smm-raw-consume -b BROKERS -t TOPIC -n COUNT [-g GROUP] [--timeout-ms T]\n"
            "                       [-X key=value]...\n"
            "       smm-raw-consume -b BROKERS -t TOPIC --watermarks\n"
            "\n"
            "Consumes COUNT messages of TOPIC from the beginning with a plain librdkafka\n"
            "high-level consumer (rd_kafka_consumer_poll, smm-processor's consumer settings:\n"
            "queued.min.messages=200000, queued.max.messages.kbytes=262144,\n"
            "auto.offset.reset=earliest), touching every payload byte, and prints\n"
            "  raw: N msgs; from start S s = R msg/s; from assignment ...; cpu C s = ...\n"
            "The group id defaults to a fresh one (smm-raw-<pid>-<time>). -X sets any\n"
            "librdkafka property after ours. --timeout-ms (default 300000) bounds the run.\n"
            "\n"
            "--watermarks prints, instead, the sums of the partitions' low and high\n"
            "watermarks: \"watermarks: partitions P low_sum L high_sum H nonzero_low Z\n"
            "max_high M\" (one line).\n"
            "\n"
            "Exit status: 0 on success, 1 on a Kafka error or timeout, 2 on bad usage.\n");
}

static int parse_args(int argc, char **argv, struct raw_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--watermarks") == 0) {
            o->watermarks = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "smm-raw-consume: %s needs a value\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "-b") == 0 || strcmp(a, "--brokers") == 0) {
            o->brokers = v;
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--topic") == 0) {
            o->topic = v;
        } else if (strcmp(a, "-g") == 0 || strcmp(a, "--group") == 0) {
            o->group = v;
        } else if (strcmp(a, "-n") == 0 || strcmp(a, "--count") == 0) {
            char *end;
            errno = 0;
            o->count = strtoll(v, &end, 10);
            if (errno || *end || o->count <= 0) {
                fprintf(stderr, "smm-raw-consume: -n: expected a count > 0, got '%s'\n", v);
                return -1;
            }
        } else if (strcmp(a, "--timeout-ms") == 0) {
            char *end;
            errno = 0;
            o->timeout_ms = strtoll(v, &end, 10);
            if (errno || *end || o->timeout_ms <= 0) {
                fprintf(stderr, "smm-raw-consume: --timeout-ms: expected ms > 0, got '%s'\n", v);
                return -1;
            }
        } else if (strcmp(a, "-X") == 0) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || o->x_cnt == RAW_MAX_X) {
                fprintf(stderr, "smm-raw-consume: -X: expected key=value (at most %d), got '%s'\n",
                        RAW_MAX_X, v);
                return -1;
            }
            /* Split in place: argv strings are ours to modify. */
            argv[i][eq - v] = '\0';
            o->x_key[o->x_cnt] = v;
            o->x_val[o->x_cnt] = eq + 1;
            o->x_cnt++;
        } else {
            fprintf(stderr, "smm-raw-consume: unknown option '%s'\n", a);
            return -1;
        }
    }
    if (!o->brokers || !o->topic || (!o->watermarks && o->count <= 0)) {
        fprintf(stderr, "smm-raw-consume: -b, -t and -n (or --watermarks) are required\n");
        return -1;
    }
    return 0;
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[256];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "smm-raw-consume: %s=%s: %s\n", k, v, err);
        return -1;
    }
    return 0;
}

static int watermarks(rd_kafka_t *rk, const char *topic)
{
    /* Ask for all topics: a request naming the topic would make the mock create it. */
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, 10000);
    const struct rd_kafka_metadata_topic *t = NULL;
    for (int i = 0; !e && i < md->topic_cnt; i++) {
        if (strcmp(md->topics[i].topic, topic) == 0) {
            t = &md->topics[i];
        }
    }
    if (!e && (!t || t->err)) {
        e = t ? t->err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    }
    if (e) {
        fprintf(stderr, "smm-raw-consume: metadata of %s: %s\n", topic, rd_kafka_err2str(e));
        if (md) {
            rd_kafka_metadata_destroy(md);
        }
        return -1;
    }
    int n = t->partition_cnt;
    long long low_sum = 0, high_sum = 0, max_high = 0;
    int nonzero_low = 0;
    int rc = 0;
    for (int i = 0; i < n; i++) {
        int32_t p = t->partitions[i].id;
        int64_t lo = 0, hi = 0;
        e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);
        if (e) {
            fprintf(stderr, "smm-raw-consume: watermarks of %s [%d]: %s\n", topic, (int)p,
                    rd_kafka_err2str(e));
            rc = -1;
            break;
        }
        low_sum += lo;
        high_sum += hi;
        nonzero_low += lo != 0;
        if (hi > max_high) {
            max_high = hi;
        }
    }
    rd_kafka_metadata_destroy(md);
    if (rc == 0) {
        printf("watermarks: partitions %d low_sum %lld high_sum %lld nonzero_low %d "
               "max_high %lld\n",
               n, low_sum, high_sum, nonzero_low, max_high);
    }
    return rc;
}

int main(int argc, char **argv)
{
    double t_start = mono_s();
    struct raw_opts o = {.timeout_ms = 300000};
    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    char group[128];
    if (!o.group) {
        snprintf(group, sizeof(group), "smm-raw-%d-%lld", (int)getpid(), (long long)time(NULL));
        o.group = group;
    }

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* smm-processor's consumer settings (connectors/kafka_source.c), minus its callbacks.
     * statistics.interval.ms is left out: it only feeds the processor's lag report. */
    static const char *const ours[][2] = {
        {"auto.offset.reset", "earliest"},
        {"enable.auto.commit", "true"},
        {"auto.commit.interval.ms", "1000"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "false"},
        {"queued.min.messages", "200000"},
        {"queued.max.messages.kbytes", "262144"},
        {"session.timeout.ms", "10000"},
    };
    int bad = conf_set(conf, "bootstrap.servers", o.brokers) ||
              conf_set(conf, "group.id", o.group);
    for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]) && !bad; i++) {
        bad = conf_set(conf, ours[i][0], ours[i][1]);
    }
    for (int i = 0; i < o.x_cnt && !bad; i++) {
        bad = conf_set(conf, o.x_key[i], o.x_val[i]);
    }
    if (bad) {
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    char err[512];
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "smm-raw-consume: rd_kafka_new: %s\n", err);
        rd_kafka_conf_destroy(conf); /* still ours on failure */
        return 1;
    }
    conf = NULL; /* rd_kafka_new() took ownership */

    if (o.watermarks) {
        int rc = watermarks(rk, o.topic);
        rd_kafka_destroy(rk);
        return rc == 0 ? 0 : 1;
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, o.topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e) {
        fprintf(stderr, "smm-raw-consume: subscribe %s: %s\n", o.topic, rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return 1;
    }

    long long n = 0, errors = 0;
    unsigned long long bytes = 0, sum = 0;
    double t_first = 0, t_last = 0;
    double deadline = t_start + (double)o.timeout_ms / 1000.0;
    while (n < o.count && !stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            if (mono_s() > deadline) {
                break;
            }
            continue;
        }
        if (m->err) {
            if (errors++ < 10) {
                fprintf(stderr, "smm-raw-consume: %s\n", rd_kafka_message_errstr(m));
            }
        } else {
            /* Touch every byte, as any real consumer must at least once. */
            const unsigned char *b = m->payload;
            for (size_t i = 0; i < m->len; i++) {
                sum += b[i];
            }
            bytes += m->len;
            if (n++ == 0) {
                t_first = mono_s();
            }
        }
        rd_kafka_message_destroy(m);
        if ((n & 0xffff) == 0 && mono_s() > deadline) {
            break;
        }
    }
    t_last = mono_s();
    double cpu = cpu_s();
    int rc = 0;
    if (n < o.count) {
        fprintf(stderr, "smm-raw-consume: got %lld of %lld messages before %s\n", n, o.count,
                stop ? "a signal" : "the timeout");
        rc = 1;
    }
    double total = t_last - t_start;
    double assigned = t_assigned > 0 ? t_last - t_assigned : 0;
    double steady = t_first > 0 ? t_last - t_first : 0;
    printf("raw: %lld msgs; from start %.3f s = %.0f msg/s; from assignment %.3f s = %.0f msg/s; "
           "from first message %.3f s = %.0f msg/s; cpu %.3f s = %.0f msg/cpu-s; bytes %llu; "
           "checksum %llu\n",
           n, total, total > 0 ? (double)n / total : 0.0, assigned,
           assigned > 0 ? (double)n / assigned : 0.0, steady,
           steady > 0 ? (double)(n - 1) / steady : 0.0, cpu, cpu > 0 ? (double)n / cpu : 0.0,
           bytes, sum);
    fflush(stdout);
    /* Leave the group at once; nothing is committed (offsets are never stored). */
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}
