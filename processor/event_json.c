/* processor/event_json.c - decode and validate one event message with cJSON.
 *
 * We parse with an explicit length (payloads are not NUL-terminated), find the contract's
 * members in one pass over the object and copy what we keep into the event's fixed
 * buffers, so nothing borrowed from the tree outlives it.
 *
 * DESIGN (the arena). cJSON allocates a node per value and a copy of every key and string:
 * about 35 malloc and free pairs per event of the benchmark stream, a third of the
 * decoder's instructions. smm_event_json_init() installs cJSON hooks that, while a decode
 * with an arena runs on this thread (`active`), bump-allocate from that arena and ignore
 * frees (cJSON frees only inside the parse, on a parse error); the tree is dropped by the
 * next decode's reset, not by cJSON_Delete(). With no arena active, on any thread, the
 * hooks are malloc and free. Before each parse the arena grows, if it must, to the most
 * that payload's tree can take (smm_event_json_arena_size()), so it cannot run out below
 * its limit; if a too small limit runs out, the parse fails and the message is rejected
 * as too_large, never half-decoded. */
#include "processor/event_json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct smm_event_json_arena {
    char *buf;
    size_t size, used, limit;
    int exhausted; /* an allocation of the current decode did not fit */
};

static int hooks_installed;
static _Thread_local struct smm_event_json_arena *active;

#define ARENA_ALIGN 8                 /* cJSON nodes hold pointers and a double */
#define ARENA_MIN ((size_t)16 << 10)  /* first size: any event of up to ~220 bytes */
#define ARENA_KEEP ((size_t)1 << 20) /* kept between decodes; bigger is freed after use */

static void *arena_malloc(size_t n)
{
    struct smm_event_json_arena *a = active;
    if (!a) {
        return malloc(n);
    }
    size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < n || a->size - a->used < need) {
        a->exhausted = 1;
        return NULL;
    }
    void *p = a->buf + a->used;
    a->used += need;
    return p;
}

static void arena_free(void *p)
{
    if (!active) {
        free(p);
    }
}

void smm_event_json_init(void)
{
    if (!hooks_installed) {
        cJSON_Hooks hooks = {.malloc_fn = arena_malloc, .free_fn = arena_free};
        cJSON_InitHooks(&hooks);
        hooks_installed = 1;
    }
}

size_t smm_event_json_arena_size(size_t payload_bytes)
{
    return (sizeof(cJSON) + ARENA_ALIGN) * (payload_bytes + 1) + payload_bytes;
}

struct smm_event_json_arena *smm_event_json_arena_new(size_t limit)
{
    struct smm_event_json_arena *a = calloc(1, sizeof(*a));
    if (a) {
        a->limit = limit;
    }
    return a;
}

void smm_event_json_arena_destroy(struct smm_event_json_arena *arena)
{
    if (arena) {
        free(arena->buf);
        free(arena);
    }
}

/* Makes room for the worst case of a len-byte payload (up to the limit) and resets the
 * arena. Returns SMM_ERR when the memory cannot be had. */
static int arena_prepare(struct smm_event_json_arena *a, size_t len)
{
    size_t want = smm_event_json_arena_size(len);
    if (want > a->limit) {
        want = a->limit;
    }
    if (a->size < want) {
        size_t size = a->size * 2 > want ? a->size * 2 : want;
        size = size < ARENA_MIN ? ARENA_MIN : size;
        size = size > a->limit ? a->limit : size;
        free(a->buf);
        a->size = 0;
        a->buf = malloc(size ? size : 1);
        if (!a->buf) {
            return SMM_ERR;
        }
        a->size = size;
    }
    a->used = 0;
    a->exhausted = 0;
    return SMM_OK;
}

/* After a decode: a rare large payload does not keep its memory. */
static void arena_trim(struct smm_event_json_arena *a)
{
    if (a->size > ARENA_KEEP) {
        free(a->buf);
        a->buf = NULL;
        a->size = 0;
    }
}

static const char *const reason_names[SMM_REJECT__COUNT] = {
    "none",         "too_large",  "invalid_json",  "not_object", "missing_field", "wrong_type",
    "unknown_type", "id_too_long", "bad_id",       "bad_timestamp", "too_old",    "in_future",
};

const char *smm_reject_reason_name(enum smm_reject_reason reason)
{
    if ((int)reason < 0 || reason >= SMM_REJECT__COUNT) {
        return "unknown";
    }
    return reason_names[reason];
}

static int reject(struct smm_reject *rej, enum smm_reject_reason reason, const char *fmt, ...)
{
    va_list ap;
    rej->reason = reason;
    va_start(ap, fmt);
    vsnprintf(rej->detail, sizeof(rej->detail), fmt, ap);
    va_end(ap);
    return SMM_ERR;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return SMM_ERR;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return SMM_OK;
}

int smm_event_json_parse_rfc3339(const char *s, int64_t *ms_out)
{
    int y, mo, d, h, mi, sec, ms = 0;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
        s[7] != '-' || digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &sec)) {
        return SMM_ERR;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60) {
        return SMM_ERR;
    }
    if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) {
        return SMM_ERR;
    }
    const char *p = s + 19;
    if (*p == '.') {
        int n = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, n++) {
            if (n < 3) {
                ms = ms * 10 + (*p - '0');
            }
        }
        if (n == 0) {
            return SMM_ERR;
        }
        for (; n < 3; n++) {
            ms *= 10;
        }
    }
    int offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 ||
            om > 59) {
            return SMM_ERR;
        }
        offset_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return SMM_ERR;
    }
    if (*p != '\0') {
        return SMM_ERR;
    }
    if (sec == 60) {
        sec = 59; /* a leap second maps onto the last ms-resolution second */
        ms = 999;
    }
    int64_t days = days_from_civil(y, mo, d);
    int64_t t = ((days * 24 + h) * 60 + mi) * 60 + sec - (int64_t)offset_min * 60;
    *ms_out = t * 1000 + ms;
    return SMM_OK;
}

/* Validates one UTF-8 id: non-empty, short enough, no control characters, well-formed.
 * On success writes its length to *len_out. */
static int check_id(const char *name, const char *s, size_t max, struct smm_reject *rej,
                    size_t *len_out)
{
    /* Ids are nearly always printable ASCII: that prefix needs no further check, and its
     * scan finds the length when it reaches the NUL. */
    const unsigned char *p = (const unsigned char *)s;
    size_t ascii = 0;
    while ((unsigned)(p[ascii] - 0x20) < 0x5f) {
        ascii++;
    }
    size_t n = p[ascii] ? ascii + strlen(s + ascii) : ascii;
    if (n == 0) {
        return reject(rej, SMM_REJECT_BAD_ID, "%s: empty", name);
    }
    if (n > max) {
        return reject(rej, SMM_REJECT_ID_TOO_LONG, "%s: %zu bytes, limit %zu", name, n, max);
    }
    *len_out = n;
    for (size_t i = ascii; i < n;) {
        unsigned c = p[i];
        if (c < 0x20 || c == 0x7f) {
            return reject(rej, SMM_REJECT_BAD_ID, "%s: control character 0x%02x at byte %zu",
                          name, c, i);
        }
        size_t k = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
        if (k == 0 || i + k > n) {
            return reject(rej, SMM_REJECT_BAD_ID, "%s: invalid UTF-8 at byte %zu", name, i);
        }
        for (size_t j = 1; j < k; j++) {
            if ((p[i + j] & 0xc0) != 0x80) {
                return reject(rej, SMM_REJECT_BAD_ID, "%s: invalid UTF-8 at byte %zu", name, i);
            }
        }
        if (k == 2 && c < 0xc2) {
            return reject(rej, SMM_REJECT_BAD_ID, "%s: overlong UTF-8 at byte %zu", name, i);
        }
        /* RFC 3629: no overlong 3/4-byte forms, no UTF-16 surrogates, nothing past U+10FFFF. */
        unsigned c1 = p[i + 1];
        if ((k == 3 && ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0))) ||
            (k == 4 && (c > 0xf4 || (c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 >= 0x90)))) {
            return reject(rej, SMM_REJECT_BAD_ID, "%s: invalid UTF-8 at byte %zu", name, i);
        }
        i += k;
    }
    return SMM_OK;
}

/* The members the contract knows, found in one pass over the object instead of a
 * cJSON_GetObjectItemCaseSensitive() per field: 17 lookups per event, most of them for
 * absent fields, each walked every member with strcmp. As with that lookup, the first
 * member of a name wins and names are case-sensitive. */
enum field {
    F_EVENT_ID, F_TYPE, F_TS, F_ACCOUNT_ID, F_CONTENT_ID, F_USER_ID, F_PARENT_ID, F_SOURCE,
    F_THREAD_ID, F_REGION, F_SEGMENT, F_REFERRER_ID, F_FOLLOWERS, F_AUTHOR_FOLLOWERS,
    F_ENGAGEMENT, F_FOLLOWS_AUTHOR, F_VALUE, F__COUNT
};
static const char *const field_name[F__COUNT] = {
    "event_id", "type", "ts", "account_id", "content_id", "user_id", "parent_id", "source",
    "thread_id", "region", "segment", "referrer_id", "followers", "author_followers",
    "engagement", "follows_author", "value"};

/* The field named k, or -1: only the names that share k's first letter are compared
 * (field + 1 per letter, 0 ends a list). */
static int field_of(const char *k)
{
#define L(c) [(c) - 'a']
    static const unsigned char by_first[26][4] = {
        L('a') = {F_ACCOUNT_ID + 1, F_AUTHOR_FOLLOWERS + 1},
        L('c') = {F_CONTENT_ID + 1},
        L('e') = {F_EVENT_ID + 1, F_ENGAGEMENT + 1},
        L('f') = {F_FOLLOWERS + 1, F_FOLLOWS_AUTHOR + 1},
        L('p') = {F_PARENT_ID + 1},
        L('r') = {F_REGION + 1, F_REFERRER_ID + 1},
        L('s') = {F_SOURCE + 1, F_SEGMENT + 1},
        L('t') = {F_TYPE + 1, F_TS + 1, F_THREAD_ID + 1},
        L('u') = {F_USER_ID + 1},
        L('v') = {F_VALUE + 1},
    };
#undef L
    unsigned c = (unsigned)(unsigned char)k[0] - 'a';
    for (int i = 0; c < 26 && i < 4 && by_first[c][i]; i++) {
        int f = by_first[c][i] - 1;
        if (strcmp(k, field_name[f]) == 0) {
            return f;
        }
    }
    return -1;
}

static void index_fields(const cJSON *root, const cJSON *at[F__COUNT])
{
    for (int f = 0; f < F__COUNT; f++) {
        at[f] = NULL;
    }
    for (const cJSON *m = root->child; m; m = m->next) {
        const char *k = m->string;
        int f = k ? field_of(k) : -1;
        if (f >= 0 && !at[f]) {
            at[f] = m;
        }
    }
}

/* cJSON 1.7.15's cJSON_Is*() tests, inline: they are library calls, a dozen per event. */
#define JSON_TYPE_IS(it, t) ((it) != NULL && ((it)->type & 0xFF) == (t))
#define IS_NULL(it) JSON_TYPE_IS(it, cJSON_NULL)
#define IS_STRING(it) JSON_TYPE_IS(it, cJSON_String)
#define IS_NUMBER(it) JSON_TYPE_IS(it, cJSON_Number)
#define IS_OBJECT(it) JSON_TYPE_IS(it, cJSON_Object)
#define IS_TRUE(it) JSON_TYPE_IS(it, cJSON_True)
#define IS_BOOL(it) ((it) != NULL && ((it)->type & (cJSON_True | cJSON_False)) != 0)

/* Copies an optional (required when `required`) string id field into dst. Returns 1 when
 * present, 0 when absent, -1 on a reject. */
static int get_id(const cJSON *it, const char *name, int required, char *dst, size_t max,
                  struct smm_reject *rej)
{
    if (!it || IS_NULL(it)) {
        if (required) {
            reject(rej, SMM_REJECT_MISSING_FIELD, "%s: required", name);
            return -1;
        }
        return 0;
    }
    if (!IS_STRING(it) || !it->valuestring) {
        reject(rej, SMM_REJECT_WRONG_TYPE, "%s: must be a string", name);
        return -1;
    }
    size_t n = 0;
    if (check_id(name, it->valuestring, max, rej, &n) != SMM_OK) {
        return -1;
    }
    memcpy(dst, it->valuestring, n + 1);
    return 1;
}

static int decode_tree(const cJSON *root, int64_t kafka_ts_ms, int64_t now_ms,
                       const struct smm_decode_limits *lim, struct smm_event *ev,
                       struct smm_reject *rej)
{
    size_t max = lim->max_id_bytes;
    if (!IS_OBJECT(root)) {
        return reject(rej, SMM_REJECT_NOT_OBJECT, "top-level value must be an object");
    }
    memset(ev, 0, offsetof(struct smm_event, event_id));
    ev->account_id[0] = ev->content_id[0] = ev->user_id[0] = ev->parent_id[0] = '\0';
    ev->source[0] = ev->thread_id[0] = ev->region[0] = ev->segment[0] = '\0';
    ev->referrer_id[0] = '\0';
    const cJSON *at[F__COUNT];
    index_fields(root, at);

    if (get_id(at[F_EVENT_ID], "event_id", 1, ev->event_id, max, rej) < 0) {
        return SMM_ERR;
    }
    const cJSON *type = at[F_TYPE];
    if (!type || IS_NULL(type)) {
        return reject(rej, SMM_REJECT_MISSING_FIELD, "type: required");
    }
    if (!IS_STRING(type) || !type->valuestring) {
        return reject(rej, SMM_REJECT_WRONG_TYPE, "type: must be a string");
    }
    if (smm_event_type_parse(type->valuestring, &ev->type) != SMM_OK) {
        return reject(rej, SMM_REJECT_UNKNOWN_TYPE, "type: unknown event type \"%.40s\"",
                      type->valuestring);
    }

    const cJSON *ts = at[F_TS];
    if (!ts || IS_NULL(ts)) {
        if (kafka_ts_ms < 0) {
            return reject(rej, SMM_REJECT_MISSING_FIELD, "ts: absent and no Kafka timestamp");
        }
        ev->ts_ms = kafka_ts_ms;
    } else if (IS_NUMBER(ts)) {
        double v = ts->valuedouble;
        if (!isfinite(v) || v != floor(v) || v < 0 || v > 9.0e15) {
            return reject(rej, SMM_REJECT_BAD_TIMESTAMP, "ts: %.17g is not epoch milliseconds", v);
        }
        ev->ts_ms = (int64_t)v;
        ev->flags |= SMM_EVF_TS;
    } else if (IS_STRING(ts) && ts->valuestring) {
        if (smm_event_json_parse_rfc3339(ts->valuestring, &ev->ts_ms) != SMM_OK) {
            return reject(rej, SMM_REJECT_BAD_TIMESTAMP, "ts: \"%.40s\" is not RFC 3339",
                          ts->valuestring);
        }
        ev->flags |= SMM_EVF_TS;
    } else {
        return reject(rej, SMM_REJECT_WRONG_TYPE, "ts: must be a number or a string");
    }
    if (ev->ts_ms < now_ms - lim->retention_ms) {
        return reject(rej, SMM_REJECT_TOO_OLD, "ts: %lld ms older than retention (%lld ms)",
                      (long long)(now_ms - ev->ts_ms), (long long)lim->retention_ms);
    }
    if (ev->ts_ms > now_ms + lim->max_future_ms) {
        return reject(rej, SMM_REJECT_IN_FUTURE, "ts: %lld ms in the future (limit %lld ms)",
                      (long long)(ev->ts_ms - now_ms), (long long)lim->max_future_ms);
    }

    if (get_id(at[F_ACCOUNT_ID], "account_id", 1, ev->account_id, max, rej) < 0) {
        return SMM_ERR;
    }
    int r = get_id(at[F_CONTENT_ID], "content_id", smm_event_type_needs_content(ev->type),
                   ev->content_id, max, rej);
    if (r < 0) {
        return SMM_ERR;
    }
    ev->flags |= r ? SMM_EVF_CONTENT : 0;

    static const struct {
        enum field f;
        size_t off;
        unsigned flag;
    } opt[] = {
        {F_USER_ID, offsetof(struct smm_event, user_id), SMM_EVF_USER},
        {F_PARENT_ID, offsetof(struct smm_event, parent_id), SMM_EVF_PARENT},
        {F_SOURCE, offsetof(struct smm_event, source), SMM_EVF_SOURCE},
        {F_THREAD_ID, offsetof(struct smm_event, thread_id), SMM_EVF_THREAD},
        {F_REGION, offsetof(struct smm_event, region), SMM_EVF_REGION},
        {F_SEGMENT, offsetof(struct smm_event, segment), SMM_EVF_SEGMENT},
        {F_REFERRER_ID, offsetof(struct smm_event, referrer_id), SMM_EVF_REFERRER},
    };
    for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++) {
        r = get_id(at[opt[i].f], field_name[opt[i].f], 0, (char *)ev + opt[i].off, max, rej);
        if (r < 0) {
            return SMM_ERR;
        }
        ev->flags |= r ? opt[i].flag : 0;
    }

    static const struct {
        enum field f;
        size_t off;
        unsigned flag;
    } counts[] = {
        {F_FOLLOWERS, offsetof(struct smm_event, followers), SMM_EVF_FOLLOWERS},
        {F_AUTHOR_FOLLOWERS, offsetof(struct smm_event, author_followers),
         SMM_EVF_AUTHOR_FOLLOWERS},
        {F_ENGAGEMENT, offsetof(struct smm_event, engagement), SMM_EVF_ENGAGEMENT},
    };
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        const cJSON *f = at[counts[i].f];
        if (f && !IS_NULL(f)) {
            if (!IS_NUMBER(f) || !isfinite(f->valuedouble) || f->valuedouble < 0 ||
                f->valuedouble != floor(f->valuedouble) || f->valuedouble > 1e12) {
                return reject(rej, SMM_REJECT_WRONG_TYPE, "%s: must be a non-negative integer",
                              field_name[counts[i].f]);
            }
            *(int64_t *)(void *)((char *)ev + counts[i].off) = (int64_t)f->valuedouble;
            ev->flags |= counts[i].flag;
        }
    }
    const cJSON *fa = at[F_FOLLOWS_AUTHOR];
    if (fa && !IS_NULL(fa)) {
        if (!IS_BOOL(fa)) {
            return reject(rej, SMM_REJECT_WRONG_TYPE, "follows_author: must be true or false");
        }
        ev->follows_author = IS_TRUE(fa) ? 1 : 0;
        ev->flags |= SMM_EVF_FOLLOWS_AUTHOR;
    }
    const cJSON *val = at[F_VALUE];
    if (val && !IS_NULL(val)) {
        if (!IS_NUMBER(val) || !isfinite(val->valuedouble) || fabs(val->valuedouble) > 1e12) {
            return reject(rej, SMM_REJECT_WRONG_TYPE, "value: must be a finite number");
        }
        ev->value = val->valuedouble;
        ev->flags |= SMM_EVF_VALUE;
    }
    return SMM_OK;
}

int smm_event_json_decode(const void *buf, size_t len, int64_t kafka_ts_ms, int64_t now_ms,
                          const struct smm_decode_limits *lim,
                          struct smm_event_json_arena *arena, struct smm_event *ev,
                          struct smm_reject *rej)
{
    rej->reason = SMM_REJECT_NONE;
    rej->detail[0] = '\0';
    if (len > lim->max_payload_bytes) {
        return reject(rej, SMM_REJECT_TOO_LARGE, "payload %zu bytes, limit %zu", len,
                      lim->max_payload_bytes);
    }
    if (len == 0 || buf == NULL) {
        return reject(rej, SMM_REJECT_INVALID_JSON, "empty payload");
    }
    /* cJSON decodes \u0000 into a NUL that silently truncates the string ("acct\u0000x"
     * would count as "acct"). Every backslash in valid JSON is inside a string, so a scan
     * of the escapes finds them without tracking quotes. */
    for (const char *p = buf, *stop = (const char *)buf + len;
         (p = memchr(p, '\\', (size_t)(stop - p))) != NULL; p += 2) {
        if (p + 1 >= stop) {
            break;
        }
        if (p[1] == 'u' && stop - p >= 6 && p[2] == '0' && p[3] == '0' && p[4] == '0' &&
            p[5] == '0') {
            return reject(rej, SMM_REJECT_INVALID_JSON,
                          "NUL character (\\u0000) at byte %zu is not accepted",
                          (size_t)(p - (const char *)buf));
        }
    }
    if (!hooks_installed || (arena && arena_prepare(arena, len) != SMM_OK)) {
        arena = NULL; /* cJSON allocates with malloc, as without an arena */
    }
    active = arena;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    active = NULL;
    if (!root) {
        if (arena && arena->exhausted) {
            size_t limit = arena->limit;
            arena_trim(arena);
            return reject(rej, SMM_REJECT_TOO_LARGE,
                          "payload %zu bytes: its parse tree exceeds the decode arena (%zu "
                          "bytes)", len, limit);
        }
        if (arena) {
            arena_trim(arena);
        }
        size_t at = end && end >= (const char *)buf ? (size_t)(end - (const char *)buf) : 0;
        return reject(rej, SMM_REJECT_INVALID_JSON, "parse error at byte %zu", at);
    }
    int rc;
    /* Only whitespace may follow the value. */
    const char *p = end;
    while (p < (const char *)buf + len && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
        p++;
    }
    if (p < (const char *)buf + len) {
        rc = reject(rej, SMM_REJECT_INVALID_JSON, "trailing bytes at byte %zu",
                    (size_t)(p - (const char *)buf));
    } else {
        rc = decode_tree(root, kafka_ts_ms, now_ms, lim, ev, rej);
    }
    if (arena) {
        arena_trim(arena); /* the tree goes with the arena's next reset */
    } else {
        cJSON_Delete(root);
    }
    return rc;
}
