/* tests/fuzz/fuzz_event.c - libFuzzer target: one Kafka message through the event decoder
 * and the pipeline (processor/event_json.c, processor/pipeline.c, metrics/aggregate.c).
 *
 * Each input is decoded three times with fixed limits and a fixed clock (the production
 * defaults, wide limits that let any RFC 3339 instant of years 0000..9999 through to the
 * id checks, and tight limits that reach too_large and id_too_long with short inputs),
 * then fed into one long-lived batch exactly as the daemon does; every FLUSH_EVERY inputs
 * the batch is encoded as a flush script call and cleared. Beyond what the sanitizers
 * catch, the harness checks the decoder's contract and aborts when it is broken: a
 * decoded event has NUL-terminated ids within the limit, its flags match its fields and
 * its time lies inside the accepted window; a reject names a real reason with a
 * terminated detail; the pipeline (which decodes in its cJSON arena) accepts exactly what
 * the decoder with the same limits and malloc accepts, and rejects the rest with the same
 * reason and detail; wide limits accept whatever the defaults accept.
 *
 * Built by scripts/fuzz.sh with clang -fsanitize=fuzzer,address,undefined. Without
 * libFuzzer (SMM_FUZZ_NO_ENTRY), tests/unit/test_fuzz_regress.c links the same code and
 * replays tests/fuzz/regress/ and the seed corpora through smm_fuzz_event_one(). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/argv.h"
#include "processor/config.h"
#include "processor/event_json.h"
#include "processor/pipeline.h"

/* 2026-11-26T03:51:43Z, the clock of the unit tests; the seed corpus is generated around it. */
#define NOW 1795665103000LL
#define DAY_MS (24LL * 3600 * 1000)
#define KAFKA_TS (NOW - 1000)
#define FLUSH_EVERY 16

int smm_fuzz_event_init(void);
int smm_fuzz_event_one(const uint8_t *data, size_t size);
void smm_fuzz_event_flush(void);
void smm_fuzz_event_fini(void);

/* The daemon's defaults: config.c's limits, retention = the longest window (24h). */
static const struct smm_decode_limits lim_default = {
    .max_payload_bytes = 65536,
    .max_id_bytes = 128,
    .retention_ms = DAY_MS,
    .max_future_ms = 300000,
};
static const struct smm_decode_limits lim_wide = {
    .max_payload_bytes = 65536,
    .max_id_bytes = 128,
    .retention_ms = 10000LL * 366 * DAY_MS, /* 10,000 years each way */
    .max_future_ms = 10000LL * 366 * DAY_MS,
};
static const struct smm_decode_limits lim_tight = {
    .max_payload_bytes = 512,
    .max_id_bytes = 8,
    .retention_ms = 60000,
    .max_future_ms = 0,
};

static struct {
    int ready;
    struct smm_config cfg;
    struct smm_pipeline *pipe;
    struct smm_batch batch;
    struct smm_argv av;
    unsigned fed;
} fz;

/* Which decode is being checked ("default limits", ...), for the report. */
static const char *checking = "";

static void die(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_event: contract broken: %s%s%s (input %zu bytes: %.*s)\n", what,
            *checking ? ", with " : "", checking, size, (int)(size > 200 ? 200 : size),
            (const char *)data);
    abort();
}

int smm_fuzz_event_init(void)
{
    char err[256] = "";
    if (fz.ready) {
        return 0;
    }
    smm_event_json_init(); /* the pipeline decodes in its arena, as in the daemon */
    if (smm_config_init(&fz.cfg, err, sizeof(err)) != SMM_OK ||
        smm_config_set(&fz.cfg, "kafka.bootstrap.servers", "127.0.0.1:9", "fuzz", err,
                       sizeof(err)) != SMM_OK ||
        smm_config_finish(&fz.cfg, err, sizeof(err)) != SMM_OK) {
        fprintf(stderr, "fuzz_event: config: %s\n", err);
        return -1;
    }
    fz.pipe = smm_pipeline_new(&fz.cfg, err, sizeof(err));
    if (!fz.pipe || smm_batch_init(&fz.batch, fz.pipe, err, sizeof(err)) != SMM_OK) {
        fprintf(stderr, "fuzz_event: pipeline: %s\n", err);
        return -1;
    }
    smm_argv_init(&fz.av);
    fz.ready = 1;
    return 0;
}

void smm_fuzz_event_fini(void)
{
    if (!fz.ready) {
        return;
    }
    smm_argv_free(&fz.av);
    smm_batch_free(&fz.batch);
    smm_pipeline_destroy(fz.pipe);
    smm_config_free(&fz.cfg);
    memset(&fz, 0, sizeof(fz));
}

/* Encodes the pending batch as one flush (and a tick), as the loop would, then clears it. */
void smm_fuzz_event_flush(void)
{
    int rc = smm_pipeline_encode_flush_begin(fz.pipe, NOW, &fz.av);
    rc |= smm_pipeline_encode_flush_part(fz.pipe, &fz.batch, "fuzz-0", "token", 0,
                                         fz.batch.messages, &fz.av);
    const char *cmd;
    size_t len;
    rc |= smm_pipeline_encode_flush_end(&fz.av, 1);
    rc |= smm_argv_command(&fz.av, NULL, 0, &cmd, &len);
    rc |= smm_pipeline_encode_tick(fz.pipe, NOW, 1000, &fz.av);
    rc |= smm_argv_command(&fz.av, NULL, 0, &cmd, &len);
    if (rc != 0) {
        fprintf(stderr, "fuzz_event: encoding a batch of %lld messages failed\n",
                (long long)fz.batch.messages);
        abort();
    }
    smm_batch_clear(&fz.batch);
}

/* 1 when buf (of SMM_EVENT_ID_MAX + 1 bytes) holds a terminated string of at most max bytes. */
static int id_ok(const char *buf, size_t max)
{
    const char *nul = memchr(buf, '\0', SMM_EVENT_ID_MAX + 1);
    return nul && (size_t)(nul - buf) <= max;
}

static void check_event(const struct smm_event *ev, const struct smm_decode_limits *lim,
                        const uint8_t *data, size_t size)
{
    static const struct {
        size_t off;
        unsigned flag; /* 0: required */
    } ids[] = {
        {offsetof(struct smm_event, event_id), 0},
        {offsetof(struct smm_event, account_id), 0},
        {offsetof(struct smm_event, content_id), SMM_EVF_CONTENT},
        {offsetof(struct smm_event, user_id), SMM_EVF_USER},
        {offsetof(struct smm_event, parent_id), SMM_EVF_PARENT},
        {offsetof(struct smm_event, source), SMM_EVF_SOURCE},
        {offsetof(struct smm_event, thread_id), SMM_EVF_THREAD},
        {offsetof(struct smm_event, region), SMM_EVF_REGION},
        {offsetof(struct smm_event, segment), SMM_EVF_SEGMENT},
    };
    if ((int)ev->type < 0 || ev->type >= SMM_EV__COUNT || !smm_event_type_name(ev->type)) {
        die("event type out of range", data, size);
    }
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        const char *s = (const char *)ev + ids[i].off;
        if (!id_ok(s, lim->max_id_bytes)) {
            die("id not terminated or over limits.max_id_bytes", data, size);
        }
        int present = ids[i].flag == 0 || (ev->flags & ids[i].flag);
        if (present != (s[0] != '\0')) {
            die("id presence does not match its flag", data, size);
        }
    }
    if (smm_event_type_needs_content(ev->type) && !(ev->flags & SMM_EVF_CONTENT)) {
        die("content event without content_id", data, size);
    }
    if (ev->ts_ms < NOW - lim->retention_ms || ev->ts_ms > NOW + lim->max_future_ms) {
        die("event time outside [now - retention, now + max_future]", data, size);
    }
    if ((ev->flags & SMM_EVF_FOLLOWERS) && (ev->followers < 0 || ev->followers > 1000000000000)) {
        die("followers out of range", data, size);
    }
    if ((ev->flags & SMM_EVF_VALUE) && !isfinite(ev->value)) {
        die("value not finite", data, size);
    }
    if ((ev->flags & SMM_EVF_FOLLOWS_AUTHOR) && ev->follows_author != 0 &&
        ev->follows_author != 1) {
        die("follows_author not 0/1", data, size);
    }
}

static void check_reject(const struct smm_reject *rej, const uint8_t *data, size_t size)
{
    if (rej->reason <= SMM_REJECT_NONE || rej->reason >= SMM_REJECT__COUNT ||
        strcmp(smm_reject_reason_name(rej->reason), "unknown") == 0) {
        die("reject without a valid reason", data, size);
    }
    if (!memchr(rej->detail, '\0', sizeof(rej->detail))) {
        die("reject detail not terminated", data, size);
    }
}

/* Decodes with lim and checks the contract; returns the decoder's result. */
static int decode(const uint8_t *data, size_t size, int64_t kafka_ts,
                  const struct smm_decode_limits *lim, const char *name, struct smm_reject *rej)
{
    struct smm_event ev;
    checking = name;
    memset(rej, 0x5a, sizeof(*rej)); /* the decoder must overwrite it */
    int rc = smm_event_json_decode(data, size, kafka_ts, NOW, lim, NULL, &ev, rej);
    if (rc == SMM_OK) {
        check_event(&ev, lim, data, size);
    } else if (rc == SMM_ERR) {
        check_reject(rej, data, size);
    } else {
        die("decoder returned neither SMM_OK nor SMM_ERR", data, size);
    }
    checking = "";
    return rc;
}

/* Short inputs also go to the RFC 3339 parser directly, as a C string. */
static void parse_time(const uint8_t *data, size_t size)
{
    char s[64];
    if (size >= sizeof(s) || memchr(data, '\0', size)) {
        return;
    }
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t ms;
    if (smm_event_json_parse_rfc3339(s, &ms) == SMM_OK) {
        /* Years 0000..9999 with offsets up to +-23:59 and a leap second. */
        if (ms < -62167219200000LL - DAY_MS || ms > 253402300800000LL + DAY_MS) {
            die("RFC 3339 instant outside years 0000..9999", data, size);
        }
    }
}

int smm_fuzz_event_one(const uint8_t *data, size_t size)
{
    struct smm_reject rej, rej_pipe;
    if (!fz.ready && smm_fuzz_event_init() != 0) {
        abort();
    }
    parse_time(data, size);
    int rc_default = decode(data, size, KAFKA_TS, &lim_default, "default limits", &rej);
    int rc_wide = decode(data, size, -1, &lim_wide, "wide limits", &rej_pipe);
    if (rc_default == SMM_OK && rc_wide != SMM_OK && rej_pipe.reason != SMM_REJECT_MISSING_FIELD) {
        /* The wide run has no Kafka timestamp, so only a missing "ts" may differ. */
        die("wide limits reject what the defaults accept", data, size);
    }
    decode(data, size, KAFKA_TS, &lim_tight, "tight limits", &rej_pipe);

    int64_t before = fz.batch.messages;
    int rc = smm_pipeline_feed(fz.pipe, &fz.batch, data, size, KAFKA_TS, NOW, &rej_pipe);
    if (rc == SMM_PIPELINE_OOM) {
        die("pipeline out of memory", data, size);
    }
    if (fz.batch.messages != before + 1) {
        die("pipeline did not count the message", data, size);
    }
    if (rc != rc_default ||
        (rc == SMM_ERR && (rej_pipe.reason != rej.reason || strcmp(rej_pipe.detail, rej.detail)))) {
        die("pipeline and decoder disagree", data, size);
    }
    if (++fz.fed % FLUSH_EVERY == 0) {
        smm_fuzz_event_flush();
    }
    return 0;
}

#ifndef SMM_FUZZ_NO_ENTRY
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return smm_fuzz_event_init() == 0 ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return smm_fuzz_event_one(data, size);
}
#endif
