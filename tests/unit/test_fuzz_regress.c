/* tests/unit/test_fuzz_regress.c - replays every fuzzer regression and seed input.
 *
 * Every file in tests/fuzz/regress/ (inputs that once crashed a fuzz target, kept forever)
 * and in the seed corpora tests/fuzz/corpus/event/ and tests/fuzz/corpus/config/ goes
 * through both fuzz harnesses, tests/fuzz/fuzz_event.c and tests/fuzz/fuzz_config.c,
 * linked here without their libFuzzer entry points (SMM_FUZZ_NO_ENTRY). The harnesses
 * abort when the decoder's or the config loader's contract is broken, and under
 * scripts/test-sanitizers.sh a memory error or UB in a returning bug is a sanitizer
 * report, so a regression fails here without clang or libFuzzer. Each input is fed alone
 * and its batch flushed, so a failure names one file.
 *
 * The directory comes from SMMT_FUZZ_DIR (set by tests/CMakeLists.txt; SMMT_, not SMM_,
 * because the processor rejects unknown SMM_* variables). Links smm_core. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* tests/fuzz/fuzz_event.c and fuzz_config.c, built into this binary. */
int smm_fuzz_event_init(void);
int smm_fuzz_event_one(const uint8_t *data, size_t size);
void smm_fuzz_event_flush(void);
void smm_fuzz_event_fini(void);
int smm_fuzz_config_init(void);
int smm_fuzz_config_one(const uint8_t *data, size_t size);
void smm_fuzz_config_fini(void);

enum target { EVENT = 1, CONFIG = 2 };

static const char *fuzz_dir(void)
{
    const char *d = getenv("SMMT_FUZZ_DIR");
    cr_assert(d && *d, "SMMT_FUZZ_DIR is not set (run through ctest)");
    return d;
}

/* Reads a whole file into an exact-size heap buffer (no NUL after it, as a Kafka payload
 * would be, so ASan sees any read past the end). */
static uint8_t *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert(n >= 0);
    rewind(f);
    uint8_t *buf = malloc(n ? (size_t)n : 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n, "read %s", path);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Feeds every regular file of dir (sorted; dot files and README.md skipped) to the chosen
 * targets.
 * Returns the number of files; a missing directory counts as empty. */
static size_t replay_dir(const char *dir, int targets)
{
    DIR *d = opendir(dir);
    if (!d) {
        return 0;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (de->d_name[0] == '.' || strcmp(de->d_name, "README.md") == 0) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof(*names));
            cr_assert_not_null(names);
        }
        names[n] = strdup(de->d_name);
        cr_assert_not_null(names[n]);
        n++;
    }
    closedir(d);
    if (n > 1) { /* qsort(NULL, 0, ...) is undefined */
        qsort(names, n, sizeof(*names), by_name);
    }
    size_t files = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            size_t size;
            uint8_t *data = slurp(path, &size);
            /* On stderr before the call, so a crash or sanitizer report names the file. */
            fprintf(stderr, "replaying %s\n", path);
            if (targets & EVENT) {
                smm_fuzz_event_one(data, size);
                smm_fuzz_event_flush();
            }
            if (targets & CONFIG) {
                smm_fuzz_config_one(data, size);
            }
            free(data);
            files++;
        }
        free(names[i]);
    }
    free(names);
    return files;
}

static void setup(void)
{
    cr_assert_eq(smm_fuzz_event_init(), 0);
    cr_assert_eq(smm_fuzz_config_init(), 0);
}

static void teardown(void)
{
    smm_fuzz_event_fini();
    smm_fuzz_config_fini();
}

TestSuite(fuzz_regress, .init = setup, .fini = teardown);

/* Crash inputs may have come from either target: each goes through both. */
Test(fuzz_regress, regressions)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/regress", fuzz_dir());
    struct stat st;
    cr_assert(stat(dir, &st) == 0 && S_ISDIR(st.st_mode), "%s: not a directory", dir);
    size_t n = replay_dir(dir, EVENT | CONFIG);
    cr_log_info("%zu regression inputs replayed", n);
}

Test(fuzz_regress, event_seed_corpus)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/corpus/event", fuzz_dir());
    size_t n = replay_dir(dir, EVENT);
    cr_assert_geq(n, 50, "%s: only %zu seed inputs", dir, n);
}

Test(fuzz_regress, config_seed_corpus)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/corpus/config", fuzz_dir());
    size_t n = replay_dir(dir, CONFIG);
    cr_assert_geq(n, 10, "%s: only %zu seed inputs", dir, n);
}

/* Cross-feeding is cheap and finds harness assumptions about input shape. */
Test(fuzz_regress, corpora_crossed)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/corpus/event", fuzz_dir());
    replay_dir(dir, CONFIG);
    snprintf(dir, sizeof(dir), "%s/corpus/config", fuzz_dir());
    replay_dir(dir, EVENT);
}
