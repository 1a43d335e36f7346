/* bench/pipeline_bench.c - smm-pipeline-bench: the processor's per-message CPU without
 * Kafka or Redis.
 *
 * bench/run.sh measures messages per processor CPU-second end to end, where librdkafka,
 * hiredis, the kernel and a machine shared with other work all move the figure by ±30%.
 * This driver replays a file of messages (one JSON object per line, as `smm-gen --stdout`
 * writes them) through the same calls smm-processor's on_msg() makes: smm_pipeline_feed()
 * into one batch, smm_viral_observe() of every accepted event, and every --flush-every
 * messages the flush encoding (smm_pipeline_encode_flush, the viral section) and a batch
 * clear. The clock is an argument (--now-ms), so the run is deterministic: under
 * `valgrind --tool=callgrind` its instruction count is repeatable to a few parts per
 * million, which is what changes to the hot path are judged by.
 *
 * The replay is one function, replay(), so `--toggle-collect=replay` counts it alone (not
 * reading and splitting the file).
 *
 * It prints the messages accepted and rejected per reason and, with --hash, a 64-bit FNV-1a
 * hash of every encoded flush and of every reject's reason and detail: two builds that
 * print the same line decoded, counted and encoded the same stream identically.
 *
 * Usage: smm-pipeline-bench --input FILE --now-ms T [--flush-every N] [--repeat R] [--hash]
 *        [--set KEY=VALUE]... */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/viral.h"
#include "processor/config.h"
#include "processor/event_json.h"
#include "processor/pipeline.h"

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 1099511628211ULL;
    }
    return h;
}

struct run {
    struct smm_pipeline *pipe;
    struct smm_viral *viral;
    struct smm_argv *av;
    struct smm_batch *b;
    int64_t now, flush_every;
    uint64_t hash;
    int hashing;
    int64_t accepted, rejected[SMM_REJECT__COUNT], flushes;
};

/* One pass over the messages, as on_msg() and a flush do them (see the header). The
 * last pass ends with a flush of what is left. Returns 0, or -1 on out-of-memory. */
__attribute__((noinline)) static int replay(struct run *run, const char *data,
                                            const size_t *start, const size_t *len,
                                            size_t n_msgs, int last_pass)
{
    struct smm_pipeline *pipe = run->pipe;
    struct smm_viral *viral = run->viral;
    struct smm_batch *b = run->b;
    int64_t now = run->now;
    for (size_t i = 0; i < n_msgs; i++) {
        struct smm_reject rej;
        int rc = smm_pipeline_feed(pipe, b, data + start[i], len[i], -1, now, &rej);
        if (rc == SMM_OK) {
            run->accepted++;
            if (viral && smm_viral_observe(viral, smm_pipeline_last_event(pipe), now) != SMM_OK) {
                fprintf(stderr, "smm-pipeline-bench: out of memory in the viral tracker\n");
                return -1;
            }
        } else if (rc == SMM_ERR) {
            run->rejected[rej.reason]++;
            if (run->hashing) {
                run->hash = fnv(run->hash, &rej.reason, sizeof(rej.reason));
                run->hash = fnv(run->hash, rej.detail, strlen(rej.detail));
            }
        } else {
            fprintf(stderr, "smm-pipeline-bench: out of memory while aggregating\n");
            return -1;
        }
        if (b->messages >= run->flush_every || (last_pass && i + 1 == n_msgs)) {
            struct smm_flush_fence fence = {"bench-0", "token", 0, (int64_t)i + 1};
            const struct smm_viral_signals *sig = NULL;
            int n_sig = viral ? smm_viral_take(viral, now, 0, &sig) : 0;
            if (n_sig < 0 || smm_pipeline_encode_flush(pipe, b, now, &fence, 1, run->av) != SMM_OK ||
                smm_pipeline_encode_viral(pipe, now, 0, sig, n_sig, run->av) != SMM_OK) {
                fprintf(stderr, "smm-pipeline-bench: out of memory while encoding\n");
                return -1;
            }
            if (viral) {
                smm_viral_settle(viral, 1);
            }
            if (run->hashing) {
                run->hash = fnv(run->hash, run->av->buf + SMM_ARGV_HEAD,
                                run->av->used - SMM_ARGV_HEAD);
            }
            smm_batch_clear(b);
            run->flushes++;
        }
    }
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: smm-pipeline-bench --input FILE --now-ms T [--flush-every N] "
                    "[--repeat R] [--hash] [--set KEY=VALUE]...\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *input = NULL;
    int64_t now = -1, flush_every = 60000;
    int repeat = 1, hashing = 0;
    char err[256] = "";
    struct smm_config cfg;
    smm_event_json_init(); /* as smm-processor's main() */
    if (smm_config_init(&cfg, err, sizeof(err)) != SMM_OK ||
        smm_config_set(&cfg, "kafka.bootstrap.servers", "x:1", "bench", err, sizeof(err)) !=
            SMM_OK) {
        fprintf(stderr, "smm-pipeline-bench: %s\n", err);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--input") == 0 && v) {
            input = v;
        } else if (strcmp(a, "--now-ms") == 0 && v) {
            now = strtoll(v, NULL, 10);
        } else if (strcmp(a, "--flush-every") == 0 && v) {
            flush_every = strtoll(v, NULL, 10);
        } else if (strcmp(a, "--repeat") == 0 && v) {
            repeat = atoi(v);
        } else if (strcmp(a, "--hash") == 0) {
            hashing = 1;
            continue;
        } else if (strcmp(a, "--set") == 0 && v) {
            char key[256];
            const char *eq = strchr(v, '=');
            if (!eq || (size_t)(eq - v) >= sizeof(key)) {
                return usage();
            }
            memcpy(key, v, (size_t)(eq - v));
            key[eq - v] = '\0';
            if (smm_config_set(&cfg, key, eq + 1, "--set", err, sizeof(err)) != SMM_OK) {
                fprintf(stderr, "smm-pipeline-bench: %s\n", err);
                return 1;
            }
        } else {
            return usage();
        }
        i++;
    }
    if (!input || now < 0 || flush_every < 1 || repeat < 1) {
        return usage();
    }
    if (smm_config_finish(&cfg, err, sizeof(err)) != SMM_OK) {
        fprintf(stderr, "smm-pipeline-bench: %s\n", err);
        return 1;
    }

    /* The whole input in memory, split into lines, so reading it is not measured. */
    FILE *f = fopen(input, "rb");
    if (!f) {
        fprintf(stderr, "smm-pipeline-bench: %s: %s\n", input, strerror(errno));
        return 1;
    }
    size_t cap = 1 << 20, used = 0;
    char *data = malloc(cap);
    for (size_t got; data && (got = fread(data + used, 1, cap - used, f)) > 0;) {
        used += got;
        if (used == cap) {
            cap *= 2;
            data = realloc(data, cap);
        }
    }
    fclose(f);
    if (!data) {
        fprintf(stderr, "smm-pipeline-bench: out of memory\n");
        return 1;
    }
    size_t n_msgs = 0, cap_msgs = 1024;
    size_t *start = malloc(cap_msgs * sizeof(*start)), *len = malloc(cap_msgs * sizeof(*len));
    for (size_t at = 0; at < used && start && len;) {
        char *nl = memchr(data + at, '\n', used - at);
        size_t end = nl ? (size_t)(nl - data) : used;
        if (n_msgs == cap_msgs) {
            cap_msgs *= 2;
            start = realloc(start, cap_msgs * sizeof(*start));
            len = realloc(len, cap_msgs * sizeof(*len));
            if (!start || !len) {
                break;
            }
        }
        start[n_msgs] = at;
        len[n_msgs++] = end - at;
        at = end + 1;
    }
    if (!start || !len) {
        fprintf(stderr, "smm-pipeline-bench: out of memory\n");
        return 1;
    }

    struct smm_pipeline *pipe = smm_pipeline_new(&cfg, err, sizeof(err));
    struct smm_batch b;
    if (!pipe || smm_batch_init(&b, pipe, err, sizeof(err)) != SMM_OK) {
        fprintf(stderr, "smm-pipeline-bench: %s\n", err);
        return 1;
    }
    struct smm_viral *viral = NULL;
    if (cfg.viral_enabled) {
        struct smm_viral_opts vo = {
            .rules = cfg.viral,
            .max_nodes = (int)cfg.viral_max_nodes,
            .max_posts = cfg.viral_max_posts,
            .evict_ms = cfg.viral_evict_ms,
            .n_star = cfg.viral_n_star,
            .sd_floor = cfg.viral_sd_floor,
            .baseline_min = (int)cfg.viral_baseline_min,
            .track_reach = cfg.viral_track_reach,
            .write_ms = cfg.viral_write_ms,
        };
        viral = smm_viral_new(&vo, err, sizeof(err));
        if (!viral) {
            fprintf(stderr, "smm-pipeline-bench: %s\n", err);
            return 1;
        }
    }
    struct smm_argv av;
    smm_argv_init(&av);

    struct run run = {.pipe = pipe, .viral = viral, .av = &av, .b = &b, .now = now,
                      .flush_every = flush_every, .hash = 14695981039346656037ULL,
                      .hashing = hashing};
    struct timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    for (int r = 0; r < repeat; r++) {
        if (replay(&run, data, start, len, n_msgs, r + 1 == repeat) != 0) {
            return 1;
        }
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    double cpu = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    int64_t total = (int64_t)n_msgs * repeat;
    printf("messages %" PRId64 " accepted %" PRId64 " flushes %" PRId64, total, run.accepted,
           run.flushes);
    for (int x = 1; x < SMM_REJECT__COUNT; x++) {
        if (run.rejected[x]) {
            printf(" %s %" PRId64, smm_reject_reason_name(x), run.rejected[x]);
        }
    }
    if (hashing) {
        printf(" hash %016" PRIx64, run.hash);
    }
    printf("\n");
    printf("cpu %.3f s, %.0f messages per CPU-second\n", cpu, cpu > 0 ? (double)total / cpu : 0);

    smm_argv_free(&av);
    smm_viral_destroy(viral);
    smm_batch_free(&b);
    smm_pipeline_destroy(pipe);
    smm_config_free(&cfg);
    free(start);
    free(len);
    free(data);
    return 0;
}
