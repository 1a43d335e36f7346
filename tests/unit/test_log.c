/* tests/unit/test_log.c - the pure parts of processor/log.c: RFC 3339 stamps, JSON escaping
 * (every JSON line is parsed back with cJSON), the text format's one-line guarantee, and the
 * rate limiter driven with a synthetic clock. Links smm_core. */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "processor/log.h"

#define TS 1764140000123LL /* 2025-11-26T06:53:20.123Z */

/* Parses a JSON log line (must end in exactly one '\n') and returns the object. */
static cJSON *parse_line(const char *line, size_t len)
{
    cr_assert(len > 0 && line[len - 1] == '\n', "line does not end in a newline: %s", line);
    cr_assert(memchr(line, '\n', len - 1) == NULL, "more than one line: %s", line);
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(line, len - 1, &end, 0);
    cr_assert(o != NULL && cJSON_IsObject(o), "not a JSON object: %s", line);
    return o;
}

Test(log, rfc3339_milliseconds)
{
    char b[32];
    smm_log_format_time(b, sizeof(b), TS);
    cr_assert_str_eq(b, "2025-11-26T06:53:20.123Z");
    smm_log_format_time(b, sizeof(b), 0);
    cr_assert_str_eq(b, "1970-01-01T00:00:00.000Z");
    smm_log_format_time(b, sizeof(b), 951782400007LL); /* leap day 2000 */
    cr_assert_str_eq(b, "2000-02-29T00:00:00.007Z");
}

Test(log, json_record_fields)
{
    char line[SMM_LOG_LINE_MAX];
    size_t n = smm_log_format(line, sizeof(line), TS, SMM_LOG_WARN, 1, "flush failed", 0, 0);
    cr_assert_eq(n, strlen(line));
    cr_assert_str_eq(line, "{\"ts\":\"2025-11-26T06:53:20.123Z\",\"level\":\"warn\","
                           "\"msg\":\"flush failed\"}\n");
    cJSON *o = parse_line(line, n);
    cr_assert_str_eq(cJSON_GetObjectItem(o, "level")->valuestring, "warn");
    cJSON_Delete(o);
}

Test(log, json_escapes_parse_back)
{
    /* quotes, backslash, every control character, DEL, valid 2/3/4-byte UTF-8 */
    char msg[256];
    size_t m = 0;
    const char *pre = "q\"b\\s/ \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 ";
    memcpy(msg, pre, strlen(pre));
    m = strlen(pre);
    for (int c = 1; c < 0x20; c++) {
        msg[m++] = (char)c;
    }
    msg[m++] = 0x7f;
    msg[m] = '\0';
    char line[SMM_LOG_LINE_MAX];
    size_t n = smm_log_format(line, sizeof(line), TS, SMM_LOG_INFO, 1, msg, 0, 0);
    cJSON *o = parse_line(line, n);
    cr_assert_str_eq(cJSON_GetObjectItem(o, "msg")->valuestring, msg);
    cJSON_Delete(o);
    cr_assert(strstr(line, "\\n") && strstr(line, "\\t") && strstr(line, "\\u0001") &&
              strstr(line, "\\u001f") && strstr(line, "\\\"") && strstr(line, "\\\\"));
}

Test(log, json_invalid_utf8_replaced)
{
    /* lone continuation, truncated sequence, overlong '/', surrogate, > U+10FFFF, 0xFF */
    const char *bad[] = {"a\x80z", "a\xe2\x82z", "a\xc0\xafz", "a\xed\xa0\x80z",
                         "a\xf4\x90\x80\x80z", "a\xffz", "end\xe2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char line[SMM_LOG_LINE_MAX];
        size_t n = smm_log_format(line, sizeof(line), TS, SMM_LOG_INFO, 1, bad[i], 0, 0);
        cJSON *o = parse_line(line, n);
        const char *v = cJSON_GetObjectItem(o, "msg")->valuestring;
        cr_assert(strstr(v, "\xef\xbf\xbd") != NULL, "case %zu: no U+FFFD in %s", i, line);
        cr_assert_eq(v[0], bad[i][0]);
        cJSON_Delete(o);
    }
}

Test(log, json_truncation_stays_valid)
{
    char msg[3000];
    for (size_t i = 0; i < sizeof(msg) - 1; i++) {
        msg[i] = i % 3 == 0 ? '"' : i % 3 == 1 ? '\n' : 'x';
    }
    msg[sizeof(msg) - 1] = '\0';
    for (size_t size = 128; size <= 4096; size += 61) {
        char line[4096];
        size_t n = smm_log_format(line, size, TS, SMM_LOG_ERROR, 1, msg, 7, 0);
        cr_assert(n < size, "size %zu: wrote %zu", size, n);
        cJSON *o = parse_line(line, n);
        cr_assert_eq(cJSON_GetObjectItem(o, "repeated")->valueint, 7);
        const char *v = cJSON_GetObjectItem(o, "msg")->valuestring;
        cr_assert(strlen(v) >= 3 && strcmp(v + strlen(v) - 3, "...") == 0, "not marked: %s", v);
        cJSON_Delete(o);
    }
    /* A multi-byte character is never split. */
    char euro[400] = "";
    for (int i = 0; i < 100; i++) {
        strcat(euro, "\xe2\x82\xac");
    }
    char out[100];
    int cut;
    size_t n = smm_log_json_escape(out, sizeof(out), euro, &cut);
    cr_assert(cut && n % 3 == 0 && n == 99 - 99 % 3, "n = %zu", n);
}

Test(log, text_one_line_and_summaries)
{
    char line[SMM_LOG_LINE_MAX];
    size_t n = smm_log_format(line, sizeof(line), TS, SMM_LOG_INFO, 0,
                              "id a\nforged line\r\x1b[2J", 0, 0);
    cr_assert_str_eq(line, "2025-11-26T06:53:20.123Z info  id a\\x0aforged line\\x0d\\x1b[2J\n");
    cr_assert_eq(n, strlen(line));
    smm_log_format(line, sizeof(line), TS, SMM_LOG_WARN, 0, "Redis down", 41, 0);
    cr_assert_str_eq(line, "2025-11-26T06:53:20.123Z warn  Redis down (repeated 41 times)\n");
    smm_log_format(line, sizeof(line), TS, SMM_LOG_WARN, 0, "dead letter 9", 5, 1);
    cr_assert_str_eq(line,
                     "2025-11-26T06:53:20.123Z warn  dead letter 9 (and 5 similar messages)\n");
    n = smm_log_format(line, sizeof(line), TS, SMM_LOG_WARN, 1, "dead letter 9", 5, 1);
    cJSON *o = parse_line(line, n);
    cr_assert_eq(cJSON_GetObjectItem(o, "similar")->valueint, 5);
    cJSON_Delete(o);
}

static struct smm_log_limiter lim; /* large: keep it off the stack */

static int summary(int64_t now, long *n, int *similar, char *msg)
{
    enum smm_log_level lv;
    return smm_log_limiter_summary(&lim, now, &lv, n, similar, msg, SMM_LOG_MSG_MAX);
}

Test(log, limiter_identical_repeats)
{
    static const char site[] = "site";
    char msg[SMM_LOG_MSG_MAX];
    long n;
    int similar;
    smm_log_limiter_init(&lim, 1000, 10);
    cr_assert_eq(smm_log_limiter_admit(&lim, site, SMM_LOG_WARN, "Redis down", 0), 1);
    for (int t = 100; t < 1000; t += 100) {
        cr_assert_eq(summary(t, &n, &similar, msg), 0, "summary before the window ended");
        cr_assert_eq(smm_log_limiter_admit(&lim, site, SMM_LOG_WARN, "Redis down", t), 0);
    }
    /* Another text, or the same text at another level, is not a repeat. */
    cr_assert_eq(smm_log_limiter_admit(&lim, site, SMM_LOG_WARN, "Redis up", 950), 1);
    cr_assert_eq(smm_log_limiter_admit(&lim, site, SMM_LOG_ERROR, "Redis down", 960), 1);
    cr_assert_eq(summary(1000, &n, &similar, msg), 1);
    cr_assert_eq(n, 9);
    cr_assert_eq(similar, 0);
    cr_assert_str_eq(msg, "Redis down");
    cr_assert_eq(summary(1000, &n, &similar, msg), 0, "one summary per window");
    /* The window has passed: the next one prints and opens a new window. */
    cr_assert_eq(smm_log_limiter_admit(&lim, site, SMM_LOG_WARN, "Redis down", 1000), 1);
    cr_assert_eq(smm_log_limiter_admit(&lim, site, SMM_LOG_WARN, "Redis down", 1500), 0);
    cr_assert_eq(summary(INT64_MAX, &n, &similar, msg), 1, "flush at exit");
    cr_assert_eq(n, 1);
}

Test(log, limiter_call_site_burst)
{
    static const char site[] = "dead letter %lld";
    char msg[SMM_LOG_MSG_MAX], text[64];
    long n;
    int similar, printed = 0;
    smm_log_limiter_init(&lim, 1000, 10);
    for (int i = 0; i < 100; i++) {
        snprintf(text, sizeof(text), "dead letter %d", i);
        printed += smm_log_limiter_admit(&lim, site, SMM_LOG_WARN, text, i);
    }
    cr_assert_eq(printed, 10);
    /* Another call site is not capped by this one. */
    cr_assert_eq(smm_log_limiter_admit(&lim, "other", SMM_LOG_WARN, "other site", 200), 1);
    /* No call site (librdkafka's callback): only identical repeats are suppressed. */
    cr_assert_eq(smm_log_limiter_admit(&lim, NULL, SMM_LOG_INFO, "rdkafka a", 300), 1);
    cr_assert_eq(smm_log_limiter_admit(&lim, NULL, SMM_LOG_INFO, "rdkafka b", 301), 1);
    cr_assert_eq(smm_log_limiter_admit(&lim, NULL, SMM_LOG_INFO, "rdkafka a", 302), 0);
    int got = 0, sim = 0;
    long total = 0;
    while (summary(1400, &n, &similar, msg)) {
        got++;
        total += n;
        if (similar) {
            sim++;
            cr_assert_eq(n, 90);
            cr_assert_str_eq(msg, "dead letter 99");
        }
    }
    cr_assert_eq(sim, 1);
    cr_assert_eq(got, 2);
    cr_assert_eq(total, 91);
    /* Next window: ten more get through. */
    printed = 0;
    for (int i = 0; i < 20; i++) {
        snprintf(text, sizeof(text), "dead letter %d", 1000 + i);
        printed += smm_log_limiter_admit(&lim, site, SMM_LOG_WARN, text, 1500 + i);
    }
    cr_assert_eq(printed, 10);
}

Test(log, limiter_off_and_full_table)
{
    char text[64];
    smm_log_limiter_init(&lim, 0, 10);
    for (int i = 0; i < 50; i++) {
        cr_assert_eq(smm_log_limiter_admit(&lim, "s", SMM_LOG_INFO, "same", i), 1);
    }
    /* More distinct texts than slots: nothing is lost, extra ones are simply printed. */
    smm_log_limiter_init(&lim, 1000, 0);
    for (int i = 0; i < 3 * SMM_LOG_SLOTS; i++) {
        snprintf(text, sizeof(text), "text %d", i);
        cr_assert_eq(smm_log_limiter_admit(&lim, NULL, SMM_LOG_INFO, text, 10), 1);
    }
    long n, suppressed = 0;
    int similar;
    char msg[SMM_LOG_MSG_MAX];
    for (int i = 0; i < 3 * SMM_LOG_SLOTS; i++) {
        snprintf(text, sizeof(text), "text %d", i);
        smm_log_limiter_admit(&lim, NULL, SMM_LOG_INFO, text, 20);
    }
    while (summary(INT64_MAX, &n, &similar, msg)) {
        suppressed += n;
    }
    cr_assert(suppressed > 0 && suppressed <= SMM_LOG_SLOTS, "suppressed %ld", suppressed);
}

/* Regression: the call-site slot and the text slot must not claim the same free slot (the
 * cap then never engaged, depending on where the format string happened to live). Many
 * site addresses make such an overlap certain. */
Test(log, limiter_site_and_text_slots_distinct)
{
    static const char sites[64];
    char text[64];
    for (int s = 0; s < 64; s++) {
        smm_log_limiter_init(&lim, 1000, 3);
        int printed = 0;
        for (int i = 0; i < 8; i++) {
            snprintf(text, sizeof(text), "site %d text %d", s, i);
            printed += smm_log_limiter_admit(&lim, &sites[s], SMM_LOG_WARN, text, i);
        }
        cr_assert_eq(printed, 3, "site %d: %d printed", s, printed);
    }
}
