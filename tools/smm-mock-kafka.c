/* tools/smm-mock-kafka.c - librdkafka's built-in mock Kafka cluster as a stand-alone process.
 *
 * Integration tests, benchmarks and local runs need a Kafka broker, and a JVM broker takes
 * seconds and hundreds of MB to start. librdkafka ships a mock cluster (rdkafka_mock.h). We
 * host it in its own process so that smm-processor, smm-gen and kcat all reach it over TCP
 * exactly as they would reach a real broker, and so that a test can stop it independently of
 * the client under test. It prints the bootstrap list as one line on stdout and runs until
 * SIGTERM, SIGINT or SIGHUP. For fault-injection tests, SIGUSR1 makes every broker answer the
 * next MOCK_SLOW_CNT Produce requests only after MOCK_SLOW_MS, and SIGUSR2 does the same to
 * OffsetFetch requests (committed offsets): a broker that stopped answering, for clients
 * that are already connected.
 *
 * What the mock does not model (notes/kafka-broker.md section 9): SSL/SASL, CreateTopics
 * (topics come from --topic here, or are auto-created with 4 partitions on first produce),
 * durable storage. It keeps only about 5 MiB (at most 100,000 message sets) per partition and
 * drops older data, so consume while producing, or spread big runs over more partitions.
 * The header calls the API experimental; it is stable enough in librdkafka 2.0.2.
 *
 * DESIGN: the signals we stop on are blocked before rd_kafka_new() starts librdkafka's
 * threads (which inherit the mask) and are then taken synchronously with sigwait() on the
 * main thread, so no handler runs at an arbitrary point and teardown (cluster, then the
 * handle that owns it) happens in an ordinary function, not in a signal context. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOCK_MAX_BROKERS 32
#define MOCK_MAX_TOPICS 64
#define MOCK_MAX_PARTITIONS 10000
#define MOCK_TOPIC_NAME_MAX 249 /* Kafka's own limit */
#define MOCK_SLOW_CNT 50
#define MOCK_SLOW_MS 60000
#define MOCK_API_PRODUCE 0
#define MOCK_API_OFFSET_FETCH 9

struct mock_topic {
    char name[MOCK_TOPIC_NAME_MAX + 1];
    int partitions;
    int replication;
};

struct mock_opts {
    int brokers;
    int topic_cnt;
    struct mock_topic topics[MOCK_MAX_TOPICS];
    const char *debug; /* librdkafka debug contexts, or NULL */
    int quiet;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: smm-mock-kafka [--brokers N] [--topic NAME:PARTITIONS[:RF]]... [options]\n"
            "\n"
            "Runs librdkafka's mock Kafka cluster (no JVM) in this process, prints its\n"
            "bootstrap.servers list as one line on stdout, then serves until SIGTERM, SIGINT\n"
            "or SIGHUP and exits 0 (within about a second).\n"
            "\n"
            "Options:\n"
            "  --brokers N         number of mock brokers, 1..%d (default 1)\n"
            "  --topic NAME:P[:RF] create topic NAME with P partitions (1..%d) and replication\n"
            "                      factor RF (1..brokers, default 1). Repeatable, one per topic\n"
            "                      (e.g. --topic events:8 --topic events.dlq:1). Topics not\n"
            "                      created here are auto-created with 4 partitions on first\n"
            "                      produce; consumers never auto-create.\n"
            "  --debug CONTEXTS    librdkafka debug contexts, e.g. mock,protocol (default none)\n"
            "  --quiet             no summary line on stderr\n"
            "  -h, --help          this text\n"
            "\n"
            "Fault injection: SIGUSR1 delays the next %d Produce responses of every broker by\n"
            "%d s, SIGUSR2 the next %d OffsetFetch responses.\n"
            "\n"
            "Limits of the mock: plaintext only (no SSL/SASL), no CreateTopics/DeleteTopics,\n"
            "and only about 5 MiB (max 100,000 message sets) retained per partition: older data\n"
            "is dropped, so consume while producing or use more partitions for big runs.\n"
            "\n"
            "Example:\n"
            "  smm-mock-kafka --topic events:8 --topic events.dlq:1 > mock.bs & MOCK=$!\n"
            "  until [ -s mock.bs ]; do sleep 0.1; done; BOOT=$(head -1 mock.bs)\n"
            "  smm-gen --brokers \"$BOOT\" --topic events --count 200000\n"
            "  kcat -b \"$BOOT\" -C -t events -o beginning -e -q | wc -l\n"
            "  kill -TERM $MOCK; wait $MOCK\n"
            "\n"
            "Exit status: 0 after a clean stop, 1 if the cluster could not start, 2 on bad\n"
            "usage.\n",
            MOCK_MAX_BROKERS, MOCK_MAX_PARTITIONS, MOCK_SLOW_CNT, MOCK_SLOW_MS / 1000,
            MOCK_SLOW_CNT);
}

/* Parses a decimal int in [lo, hi]. Returns 0 and writes *out, or -1. */
static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int topic_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > MOCK_TOPIC_NAME_MAX) {
        return 0;
    }
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.')) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

/* Parses NAME:PARTITIONS[:RF] into *t (RF is checked against --brokers later, because the
 * flags may come in any order). Returns 0, or -1 after printing why. */
static int parse_topic(const char *arg, struct mock_topic *t)
{
    const char *colon = strchr(arg, ':');
    char num[32];
    const char *rf;
    size_t len;

    if (colon == NULL) {
        fprintf(stderr, "smm-mock-kafka: --topic: expected NAME:PARTITIONS[:RF], got '%s'\n", arg);
        return -1;
    }
    len = (size_t)(colon - arg);
    if (!topic_name_ok(arg, len)) {
        fprintf(stderr,
                "smm-mock-kafka: --topic: bad topic name in '%s' (1..%d of [A-Za-z0-9._-])\n", arg,
                MOCK_TOPIC_NAME_MAX);
        return -1;
    }
    memcpy(t->name, arg, len);
    t->name[len] = '\0';

    rf = strchr(colon + 1, ':');
    len = rf ? (size_t)(rf - (colon + 1)) : strlen(colon + 1);
    if (len >= sizeof(num)) {
        len = sizeof(num) - 1; /* too long to be valid anyway; parse_int rejects it */
    }
    memcpy(num, colon + 1, len);
    num[len] = '\0';
    if (parse_int(num, 1, MOCK_MAX_PARTITIONS, &t->partitions) != 0) {
        fprintf(stderr, "smm-mock-kafka: --topic: partitions must be 1..%d, got '%s' in '%s'\n",
                MOCK_MAX_PARTITIONS, num, arg);
        return -1;
    }
    t->replication = 1;
    if (rf != NULL && parse_int(rf + 1, 1, MOCK_MAX_BROKERS, &t->replication) != 0) {
        fprintf(stderr, "smm-mock-kafka: --topic: replication factor must be 1..%d, got '%s'\n",
                MOCK_MAX_BROKERS, rf + 1);
        return -1;
    }
    return 0;
}

/* Fills *opts from argv. Returns 0 to run, 1 after --help, 2 on a usage error. */
static int parse_args(int argc, char **argv, struct mock_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->brokers = 1;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        const char *eq = NULL;
        char flag[32];

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(arg, "--quiet") == 0) {
            opts->quiet = 1;
            continue;
        }
        /* Every other flag takes a value, as "--flag value" or "--flag=value". */
        eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
        if (eq != NULL && (size_t)(eq - arg) < sizeof(flag)) {
            memcpy(flag, arg, (size_t)(eq - arg));
            flag[eq - arg] = '\0';
            val = eq + 1;
        } else {
            snprintf(flag, sizeof(flag), "%s", arg);
        }
        if (strcmp(flag, "--brokers") != 0 && strcmp(flag, "--topic") != 0 &&
            strcmp(flag, "--debug") != 0) {
            fprintf(stderr, "smm-mock-kafka: unknown option '%s' (see --help)\n", arg);
            return 2;
        }
        if (val == NULL) {
            if (i + 1 >= argc) {
                fprintf(stderr, "smm-mock-kafka: %s: missing value\n", flag);
                return 2;
            }
            val = argv[++i];
        }

        if (strcmp(flag, "--brokers") == 0) {
            if (parse_int(val, 1, MOCK_MAX_BROKERS, &opts->brokers) != 0) {
                fprintf(stderr, "smm-mock-kafka: --brokers: expected 1..%d, got '%s'\n",
                        MOCK_MAX_BROKERS, val);
                return 2;
            }
        } else if (strcmp(flag, "--topic") == 0) {
            struct mock_topic *t;

            if (opts->topic_cnt == MOCK_MAX_TOPICS) {
                fprintf(stderr, "smm-mock-kafka: --topic: at most %d topics\n", MOCK_MAX_TOPICS);
                return 2;
            }
            t = &opts->topics[opts->topic_cnt];
            if (parse_topic(val, t) != 0) {
                return 2;
            }
            for (int k = 0; k < opts->topic_cnt; k++) {
                if (strcmp(opts->topics[k].name, t->name) == 0) {
                    fprintf(stderr, "smm-mock-kafka: --topic: '%s' given twice\n", t->name);
                    return 2;
                }
            }
            opts->topic_cnt++;
        } else {
            opts->debug = val;
        }
    }

    for (int k = 0; k < opts->topic_cnt; k++) {
        if (opts->topics[k].replication > opts->brokers) {
            fprintf(stderr,
                    "smm-mock-kafka: --topic: %s: replication factor %d exceeds --brokers %d\n",
                    opts->topics[k].name, opts->topics[k].replication, opts->brokers);
            return 2;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct mock_opts opts;
    char errstr[512] = "";
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_mock_cluster_t *mc = NULL;
    sigset_t stop_set;
    int sig = 0;
    int rc = 1;

    rc = parse_args(argc, argv, &opts);
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    rc = 1;

    /* Before any librdkafka thread exists: they inherit this mask (see DESIGN). */
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGHUP);
    sigaddset(&stop_set, SIGUSR1);
    sigaddset(&stop_set, SIGUSR2);
    if (sigprocmask(SIG_BLOCK, &stop_set, NULL) != 0) {
        perror("smm-mock-kafka: sigprocmask");
        return 1;
    }

    /* The handle only hosts the cluster: it is never pointed at a broker itself. */
    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "client.id", "smm-mock-kafka", errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
        fprintf(stderr, "smm-mock-kafka: client.id: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    /* Level 5 would print a CONFWARN about the missing bootstrap.servers on every start. */
    if (opts.debug == NULL &&
        rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "smm-mock-kafka: log_level: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    if (opts.debug != NULL &&
        rd_kafka_conf_set(conf, "debug", opts.debug, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "smm-mock-kafka: --debug: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "smm-mock-kafka: rd_kafka_new: %s\n", errstr);
        rd_kafka_conf_destroy(conf); /* rd_kafka_new() owns conf only on success */
        return 1;
    }
    conf = NULL; /* owned by rk now */

    mc = rd_kafka_mock_cluster_new(rk, opts.brokers);
    if (mc == NULL) {
        fprintf(stderr, "smm-mock-kafka: could not create a mock cluster of %d broker(s)\n",
                opts.brokers);
        goto out;
    }
    for (int k = 0; k < opts.topic_cnt; k++) {
        const struct mock_topic *t = &opts.topics[k];
        rd_kafka_resp_err_t err =
            rd_kafka_mock_topic_create(mc, t->name, t->partitions, t->replication);

        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "smm-mock-kafka: --topic: creating %s: %s\n", t->name,
                    rd_kafka_err2str(err));
            goto out;
        }
    }

    /* The one line a caller waits for; flush so a redirect to a file sees it now. */
    if (printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc)) < 0 || fflush(stdout) != 0) {
        perror("smm-mock-kafka: stdout");
        goto out;
    }
    if (!opts.quiet) {
        fprintf(stderr, "smm-mock-kafka: %d broker(s) at %s", opts.brokers,
                rd_kafka_mock_cluster_bootstraps(mc));
        for (int k = 0; k < opts.topic_cnt; k++) {
            fprintf(stderr, "%s%s[%d]", k == 0 ? "; topics " : ", ", opts.topics[k].name,
                    opts.topics[k].partitions);
        }
        fprintf(stderr, "\n");
    }

    for (;;) {
        int err = sigwait(&stop_set, &sig);

        if (err == 0 && (sig == SIGUSR1 || sig == SIGUSR2)) {
            int16_t api = sig == SIGUSR1 ? MOCK_API_PRODUCE : MOCK_API_OFFSET_FETCH;
            for (int b = 1; b <= opts.brokers; b++) {
                for (int i = 0; i < MOCK_SLOW_CNT; i++) {
                    rd_kafka_mock_broker_push_request_error_rtts(
                        mc, b, api, 1, RD_KAFKA_RESP_ERR_NO_ERROR, (int)MOCK_SLOW_MS);
                }
            }
            continue;
        }
        if (err == 0) {
            break;
        }
        if (err != EINTR) {
            fprintf(stderr, "smm-mock-kafka: sigwait: %s\n", strerror(err));
            goto out;
        }
    }
    if (!opts.quiet) {
        fprintf(stderr, "smm-mock-kafka: signal %d, stopping\n", sig);
    }
    rc = 0;

out:
    if (mc != NULL) {
        rd_kafka_mock_cluster_destroy(mc);
    }
    if (rk != NULL) {
        rd_kafka_destroy(rk);
    }
    return rc;
}
