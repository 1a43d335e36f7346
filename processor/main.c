/* processor/main.c - smm-processor: command line, configuration, signals, the loop.
 *
 * The only main() of the product (libcriterion exports one, so the libraries have none). */
#include <signal.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/event.h"
#include "processor/config.h"
#include "processor/event_json.h"
#include "processor/log.h"
#include "processor/loop.h"
#include "processor/pipeline.h"
#include "processor/status.h"
#include "connectors/http_server.h"

extern char **environ;

static volatile sig_atomic_t stop_flag;

/* Counts the stop signals (to 2): the first stops, a second one also gives up the final
 * flush's retries (processor/loop.h). */
static void on_signal(int sig)
{
    (void)sig;
    stop_flag = stop_flag ? 2 : 1;
}

static void usage(FILE *f)
{
    fprintf(f,
"Usage: smm-processor [options]\n"
"\n"
"Consumes social-media interaction events (JSON, one per Kafka message) and keeps\n"
"engagement, impressions, reach and rates in Redis, exactly once, in rolling windows.\n"
"\n"
"Options:\n"
"  -c, --config FILE      JSON config file (keys: see --help-config)\n"
"  -b, --brokers LIST     Kafka bootstrap servers (= --set kafka.bootstrap.servers=LIST)\n"
"  -t, --topic NAME       input topic (= --set topic=NAME), default smm.events\n"
"  -r, --redis HOST:PORT  Redis address (= redis.host and redis.port)\n"
"  -s, --set KEY=VALUE    set any config key; repeatable; wins over file and environment\n"
"      --check-config     validate the configuration and exit (0 = valid)\n"
"      --print-config     print the effective configuration (secrets masked) and exit\n"
"      --help-config      list every configuration key with its default\n"
"      --idle-exit-ms N   exit after N ms with nothing consumed and everything flushed\n"
"      --top              live summary on stderr, redrawn every second when stderr is a\n"
"                         terminal (events/s, totals, lag per partition, flush latency,\n"
"                         Redis); one plain \"top:\" line a second otherwise\n"
"  -h, --help             this help\n"
"  -V, --version          print the version\n"
"\n"
"Precedence: defaults < config file < SMM_* environment < command line.\n"
"Environment: SMM_<KEY> with dots as underscores, e.g. SMM_REDIS_PASSWORD,\n"
"  SMM_KAFKA_BOOTSTRAP_SERVERS, SMM_FLUSH_INTERVAL_MS.\n"
"Any kafka.<property> goes to librdkafka as is (SASL, SSL, timeouts...).\n"
"\n"
"Examples:\n"
"  smm-processor -b 127.0.0.1:9092 -t smm.events -r 127.0.0.1:6379\n"
"  smm-processor -c /etc/smm-stream/smm-processor.json --print-config\n"
"  SMM_REDIS_PASSWORD_FILE=/run/secrets/redis smm-processor -c prod.json\n"
"\n"
"Reading the results (the Function library smm; key layout: docs/redis-keys.md):\n"
"  redis-cli FCALL smm_get 0 smm: c:<content_id> total  a post's lifetime, rates, reach\n"
"  redis-cli FCALL smm_get 0 smm: a:<account_id> 1h     an account's last hour\n"
"  redis-cli FCALL_RO smm_top 0 smm: 5m 10              top 10 posts of the last 5 min\n"
"A stats line is logged every stats.interval_ms; SIGINT/SIGTERM flush and exit.\n");
}

static int set(struct smm_config *cfg, const char *key, const char *value, char *err,
               size_t errsz)
{
    return smm_config_set(cfg, key, value, "command line", err, errsz);
}

int main(int argc, char **argv)
{
#ifdef __GLIBC__
    /* Batches come and go in blocks of megabytes. glibc's default raises its mmap threshold
     * after the first such free and keeps later ones in the heap, where they stay resident;
     * a fixed threshold returns them to the kernel when freed. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024);
#endif
    /* cJSON's allocation hooks are process-global: installed before any thread starts. */
    smm_event_json_init();
    struct smm_config cfg;
    char err[512];
    const char *config_file = NULL;
    int check = 0, print = 0;
    struct smm_loop_opts lopts = {0};

    if (smm_config_init(&cfg, err, sizeof(err)) != SMM_OK) {
        fprintf(stderr, "smm-processor: %s\n", err);
        return 2;
    }
    /* Pass 1: find the config file and the informational flags. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            smm_config_free(&cfg);
            return 0;
        }
        if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            printf("smm-processor %s\n", SMM_VERSION);
            smm_config_free(&cfg);
            return 0;
        }
        if (!strcmp(a, "--help-config")) {
            smm_config_print_help(stdout);
            smm_config_free(&cfg);
            return 0;
        }
        if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && i + 1 < argc) {
            config_file = argv[++i];
        }
    }
    if (config_file && smm_config_load_file(&cfg, config_file, err, sizeof(err)) != SMM_OK) {
        goto bad;
    }
    if (smm_config_load_env(&cfg, environ, err, sizeof(err)) != SMM_OK) {
        goto bad;
    }
    /* Pass 2: everything else, in order. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = !strcmp(a, "-c") || !strcmp(a, "--config") || !strcmp(a, "-b") ||
                    !strcmp(a, "--brokers") || !strcmp(a, "-t") || !strcmp(a, "--topic") ||
                    !strcmp(a, "-r") || !strcmp(a, "--redis") || !strcmp(a, "-s") ||
                    !strcmp(a, "--set") || !strcmp(a, "--idle-exit-ms");
        if (takes && !v) {
            snprintf(err, sizeof(err), "%s: needs a value", a);
            goto bad;
        }
        if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            i++;
        } else if (!strcmp(a, "-b") || !strcmp(a, "--brokers")) {
            if (set(&cfg, "kafka.bootstrap.servers", v, err, sizeof(err))) {
                goto bad;
            }
            i++;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--topic")) {
            if (set(&cfg, "topic", v, err, sizeof(err))) {
                goto bad;
            }
            i++;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--redis")) {
            char host[256];
            const char *colon = strrchr(v, ':');
            if (!colon || colon == v || (size_t)(colon - v) >= sizeof(host)) {
                snprintf(err, sizeof(err), "--redis: expected HOST:PORT, got \"%s\"", v);
                goto bad;
            }
            memcpy(host, v, (size_t)(colon - v));
            host[colon - v] = '\0';
            if (set(&cfg, "redis.host", host, err, sizeof(err)) ||
                set(&cfg, "redis.port", colon + 1, err, sizeof(err))) {
                goto bad;
            }
            i++;
        } else if (!strcmp(a, "-s") || !strcmp(a, "--set")) {
            char key[256];
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || (size_t)(eq - v) >= sizeof(key)) {
                snprintf(err, sizeof(err), "--set: expected KEY=VALUE, got \"%s\"", v);
                goto bad;
            }
            memcpy(key, v, (size_t)(eq - v));
            key[eq - v] = '\0';
            if (set(&cfg, key, eq + 1, err, sizeof(err))) {
                goto bad;
            }
            i++;
        } else if (!strcmp(a, "--idle-exit-ms")) {
            lopts.idle_exit_ms = atoll(v);
            i++;
        } else if (!strcmp(a, "--top")) {
            lopts.top = 1;
        } else if (!strcmp(a, "--check-config")) {
            check = 1;
        } else if (!strcmp(a, "--print-config")) {
            print = 1;
        } else {
            snprintf(err, sizeof(err), "%s: unknown option (see --help)", a);
            goto bad;
        }
    }
    if (smm_config_finish(&cfg, err, sizeof(err)) != SMM_OK) {
        goto bad;
    }
    /* Business hours and time zones are checked (and the zones loaded) here, before any
     * thread starts: loading a zone sets TZ for a moment (processor/tz.c). */
    struct smm_pipeline *probe = smm_pipeline_new(&cfg, err, sizeof(err));
    if (!probe) {
        goto bad;
    }
    smm_pipeline_destroy(probe);
    if (print) {
        smm_config_print(&cfg, stdout);
    }
    if (check || print) {
        if (check) {
            printf("configuration OK\n");
        }
        smm_config_free(&cfg);
        return 0;
    }

    smm_log_setup(cfg.log_level, cfg.log_format);
    smm_log_set_rate_limit(cfg.log_rate_limit_ms);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* HTTP first, so /healthz answers (and /readyz says why not ready) while we connect. */
    struct smm_status *status = smm_status_new();
    struct smm_http_server *http = NULL;
    if (!status || (cfg.http_enabled && !(http = smm_status_serve(status, &cfg, err,
                                                                   sizeof(err))))) {
        smm_log(SMM_LOG_ERROR, "startup failed: %s", status ? err : "out of memory");
        smm_status_destroy(status);
        smm_config_free(&cfg);
        return 1;
    }
    lopts.status = status;
    lopts.stop = &stop_flag;
    struct smm_loop *loop = smm_loop_new(&cfg, &lopts, err, sizeof(err));
    if (!loop && stop_flag) {
        /* Asked to stop while waiting for Redis: a clean stop, not a failure. */
        smm_log(SMM_LOG_INFO, "%s", err);
        smm_log(SMM_LOG_INFO, "stopped");
        smm_http_server_stop(http);
        smm_status_destroy(status);
        smm_log_flush();
        smm_config_free(&cfg);
        return 0;
    }
    if (!loop) {
        smm_log(SMM_LOG_ERROR, "startup failed: %s", err);
        smm_http_server_stop(http);
        smm_status_destroy(status);
        smm_log_flush();
        smm_config_free(&cfg);
        return 1;
    }
    int rc = smm_loop_run(loop, &stop_flag);
    smm_loop_destroy(loop);
    smm_http_server_stop(http);
    smm_status_destroy(status);
    smm_config_free(&cfg);
    smm_log(SMM_LOG_INFO, "stopped");
    smm_log_flush(); /* summaries of suppressed repeats still pending */
    return rc;

bad:
    fprintf(stderr, "smm-processor: %s\n", err);
    smm_config_free(&cfg);
    return 2;
}
