/* tests/fuzz/fuzz_config.c - libFuzzer target: configuration from all three sources
 * (processor/config.c), then the pipeline built from it (processor/pipeline.c).
 *
 * The input is written to an unlinked temporary file and loaded with
 * smm_config_load_file() through /proc/self/fd/N (no disk litter, no path in the corpus).
 * The same bytes are then read as lines: "SMM_KEY=value" lines go through
 * smm_config_load_env() and other "key=value" lines through smm_config_set(), as --set
 * would. So one corpus file can be a JSON config, an environment, a command line or a mix.
 *
 * smm_config_finish() reads redis.password_file. The fuzzer must not make it open
 * arbitrary paths (a FIFO or /dev/zero would hang or mislead it), so whatever
 * password_file the input sets, by any source and in any JSON escape spelling, is
 * replaced before finish() with a file of our own holding a known password; finish()
 * still takes the code path, and the harness checks the password it read.
 *
 * After a successful finish() the harness checks the derived tables (windows ascending,
 * retention within (0, 3650 days], dlq topic set), prints the config to
 * /dev/null and builds a pipeline from it. Broken invariants abort.
 *
 * Built by scripts/fuzz.sh; tests/unit/test_fuzz_regress.c links the same code
 * (SMM_FUZZ_NO_ENTRY) and replays tests/fuzz/regress/ and the seed corpora. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "processor/config.h"
#include "processor/pipeline.h"

#define PASSWORD "fuzz-secret"

int smm_fuzz_config_init(void);
int smm_fuzz_config_one(const uint8_t *data, size_t size);
void smm_fuzz_config_fini(void);

static struct {
    int ready;
    int cfg_fd, pw_fd;
    char cfg_path[64], pw_path[64];
    FILE *devnull;
} fz = {0, -1, -1, "", "", NULL};

static void die(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_config: contract broken: %s (input %zu bytes: %.*s)\n", what, size,
            (int)(size > 300 ? 300 : size), (const char *)data);
    abort();
}

/* An unlinked temporary file, reachable as /proc/self/fd/N. In /dev/shm when there is
 * one: rewriting a file on a disk file system for every input costs most of the time. */
static int scratch_file(char *path, size_t path_size)
{
    const char *dirs[] = {"/dev/shm", getenv("TMPDIR"), "/tmp"};
    int fd = -1;
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && fd < 0; i++) {
        char tmpl[4096];
        if (!dirs[i] || !*dirs[i]) {
            continue;
        }
        snprintf(tmpl, sizeof(tmpl), "%s/smm-fuzz-config-XXXXXX", dirs[i]);
        fd = mkstemp(tmpl);
        if (fd >= 0) {
            unlink(tmpl);
        }
    }
    if (fd < 0) {
        return -1;
    }
    snprintf(path, path_size, "/proc/self/fd/%d", fd);
    return fd;
}

static int write_all(int fd, const void *data, size_t size)
{
    if (ftruncate(fd, 0) != 0) {
        return -1;
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(fd, (const char *)data + done, size - done, (off_t)done);
        if (n <= 0) {
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

int smm_fuzz_config_init(void)
{
    if (fz.ready) {
        return 0;
    }
    fz.cfg_fd = scratch_file(fz.cfg_path, sizeof(fz.cfg_path));
    fz.pw_fd = scratch_file(fz.pw_path, sizeof(fz.pw_path));
    fz.devnull = fopen("/dev/null", "w");
    if (fz.cfg_fd < 0 || fz.pw_fd < 0 || !fz.devnull ||
        write_all(fz.pw_fd, PASSWORD "\nsecond line\n", strlen(PASSWORD "\nsecond line\n"))) {
        fprintf(stderr, "fuzz_config: cannot create scratch files\n");
        return -1;
    }
    fz.ready = 1;
    return 0;
}

void smm_fuzz_config_fini(void)
{
    if (fz.cfg_fd >= 0) {
        close(fz.cfg_fd);
    }
    if (fz.pw_fd >= 0) {
        close(fz.pw_fd);
    }
    if (fz.devnull) {
        fclose(fz.devnull);
    }
    fz.ready = 0;
    fz.cfg_fd = fz.pw_fd = -1;
    fz.devnull = NULL;
}

static void check_errstr(const char *err, size_t size, const uint8_t *data, size_t dsize)
{
    if (!memchr(err, '\0', size)) {
        die("error message not terminated", data, dsize);
    }
}

/* Applies each "SMM_X=v" line as the environment and each other "k=v" line as --set. */
static void apply_lines(struct smm_config *cfg, const uint8_t *data, size_t size)
{
    char err[512];
    const uint8_t *p = data, *end = data + size;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char line[1024];
        if (n > 0 && n < sizeof(line) && !memchr(p, '\0', n)) {
            memcpy(line, p, n);
            line[n] = '\0';
            char *eq = strchr(line, '=');
            if (eq && strncmp(line, "SMM_", 4) == 0) {
                char *envp[] = {line, NULL};
                err[0] = '\0';
                smm_config_load_env(cfg, envp, err, sizeof(err));
                check_errstr(err, sizeof(err), data, size);
            } else if (eq && eq != line) {
                *eq = '\0';
                err[0] = '\0';
                smm_config_set(cfg, line, eq + 1, "command line", err, sizeof(err));
                check_errstr(err, sizeof(err), data, size);
            }
        }
        p += n + 1;
    }
}

static void check_finished(const struct smm_config *cfg, const uint8_t *data, size_t size)
{
    if (cfg->n_windows < 1 || cfg->n_windows > SMM_CFG_MAX_WINDOWS) {
        die("n_windows out of range", data, size);
    }
    for (int i = 0; i < cfg->n_windows; i++) {
        if (cfg->window_min[i] < 1 || cfg->window_min[i] > 30 * 1440 ||
            (i > 0 && cfg->window_min[i] <= cfg->window_min[i - 1])) {
            die("window table not strictly ascending within 1m..30d", data, size);
        }
    }
    /* Retention may exceed the minute buckets (backfills count in lifetime and daily
     * buckets only), up to ten years. */
    if (cfg->retention_ms <= 0 || cfg->retention_ms > 3650LL * 86400000) {
        die("retention_ms outside (0, 3650 days]", data, size);
    }
    if (!cfg->dlq_topic || !cfg->dlq_topic[0] || !cfg->topic[0]) {
        die("empty topic or dlq_topic after finish", data, size);
    }
    if (cfg->redis_password_file[0] && strcmp(cfg->redis_password, PASSWORD) != 0) {
        die("password_file not read as its first line", data, size);
    }
    if (cfg->n_kafka < 1 || cfg->n_kafka > SMM_CFG_MAX_KAFKA) {
        die("n_kafka out of range", data, size);
    }
    for (int i = 0; i < cfg->n_sov_sets; i++) {
        if (cfg->sov_sets[i].n_brands < 2 || strpbrk(cfg->sov_sets[i].name, "|:")) {
            die("sov set with fewer than 2 brands or a '|'/':' in its name", data, size);
        }
    }
    for (int i = 0; i < cfg->n_goals; i++) {
        const struct smm_goal_cfg *g = &cfg->goals[i];
        if (!g->account || !g->metric || !g->kind || !g->start || g->days < 1 ||
            !(g->target >= 0) || g->start_day < 0) {
            die("incomplete goal after finish", data, size);
        }
    }
    for (int i = 0; i < cfg->n_response_accounts; i++) {
        const char *tz, *hours;
        int64_t sla;
        smm_config_response_for(cfg, cfg->response_accounts[i].account, &tz, &hours, &sla);
        if (!tz || !*tz || !hours || !*hours || sla < 1) {
            die("response settings of an account unset after finish", data, size);
        }
    }
}

int smm_fuzz_config_one(const uint8_t *data, size_t size)
{
    struct smm_config cfg;
    char err[512];
    if (!fz.ready && smm_fuzz_config_init() != 0) {
        abort();
    }
    if (smm_config_init(&cfg, err, sizeof(err)) != SMM_OK) {
        die("defaults do not parse", data, size);
    }
    if (write_all(fz.cfg_fd, data, size) != 0) {
        abort();
    }
    err[0] = '\0';
    smm_config_load_file(&cfg, fz.cfg_path, err, sizeof(err));
    check_errstr(err, sizeof(err), data, size);
    apply_lines(&cfg, data, size);

    if (cfg.redis_password_file[0] &&
        smm_config_set(&cfg, "redis.password_file", fz.pw_path, "fuzz", err, sizeof(err)) !=
            SMM_OK) {
        die("cannot neutralise redis.password_file", data, size);
    }
    err[0] = '\0';
    if (smm_config_finish(&cfg, err, sizeof(err)) == SMM_OK) {
        check_finished(&cfg, data, size);
        smm_config_print(&cfg, fz.devnull);
        struct smm_pipeline *pipe = smm_pipeline_new(&cfg, err, sizeof(err));
        struct smm_batch b;
        /* Business hours and time zones are checked when the pipeline loads them (a zone
         * is a tzdata file): refusing one is fine, with an error that names the key. */
        if (pipe || strncmp(err, "response.", 9) != 0) {
            if (!pipe || smm_batch_init(&b, pipe, err, sizeof(err)) != SMM_OK) {
                die("no pipeline from a valid config", data, size);
            }
            smm_batch_free(&b);
            smm_pipeline_destroy(pipe);
        }
    }
    check_errstr(err, sizeof(err), data, size);
    smm_config_free(&cfg);
    return 0;
}

#ifndef SMM_FUZZ_NO_ENTRY
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return smm_fuzz_config_init() == 0 ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return smm_fuzz_config_one(data, size);
}
#endif
