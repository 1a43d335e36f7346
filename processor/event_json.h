/* processor/event_json.h - one Kafka message (JSON bytes) to one struct smm_event.
 *
 * The event contract is docs/events.md. Every way a message can break it has a reason
 * code; a rejected message is dead-lettered with its original bytes, the reason name and
 * a detail string, and counted per reason. Decoding never aborts on input. */
#ifndef SMM_PROCESSOR_EVENT_JSON_H
#define SMM_PROCESSOR_EVENT_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/event.h"

enum smm_reject_reason {
    SMM_REJECT_NONE = 0,
    SMM_REJECT_TOO_LARGE,       /* payload over limits.max_payload_bytes (or its parse tree
                                   over the decode arena) */
    SMM_REJECT_INVALID_JSON,    /* not parseable, or trailing garbage */
    SMM_REJECT_NOT_OBJECT,      /* valid JSON but not an object */
    SMM_REJECT_MISSING_FIELD,   /* a required field is absent (detail names it) */
    SMM_REJECT_WRONG_TYPE,      /* a field has the wrong JSON type or range */
    SMM_REJECT_UNKNOWN_TYPE,    /* "type" is not an event type we know */
    SMM_REJECT_ID_TOO_LONG,     /* an id is longer than limits.max_id_bytes */
    SMM_REJECT_BAD_ID,          /* an id is empty, has control characters or bad UTF-8 */
    SMM_REJECT_BAD_TIMESTAMP,   /* "ts" is neither epoch ms nor RFC 3339 */
    SMM_REJECT_TOO_OLD,         /* event time older than retention */
    SMM_REJECT_IN_FUTURE,       /* event time beyond the allowed clock skew */
    SMM_REJECT__COUNT
};

struct smm_decode_limits {
    size_t max_payload_bytes; /* default 65536 */
    size_t max_id_bytes;      /* default 128, at most SMM_EVENT_ID_MAX */
    int64_t retention_ms;     /* events older than now - retention are rejected */
    int64_t max_future_ms;    /* events newer than now + this are rejected */
};

struct smm_reject {
    enum smm_reject_reason reason;
    char detail[160];
};

/* Stable name of a reason ("invalid_json", ...), used in Redis fields, DLQ headers and
 * metrics. */
const char *smm_reject_reason_name(enum smm_reject_reason reason);

/* Installs cJSON allocation hooks that let a decode take its tree from an arena (below).
 * The hooks are process-global: call this once, before any thread that uses cJSON starts
 * (main() does). Outside a decode with an arena, and on every other thread, they call
 * malloc and free, so the rest of the program's cJSON use is unchanged, except that cJSON
 * no longer uses realloc while printing (it allocates the final size and copies). Without
 * this call, decodes ignore their arena. */
void smm_event_json_init(void);

/* A per-message bump arena for cJSON's nodes and strings: a decode resets it, parses into
 * it and drops the tree by the next reset, instead of a malloc and a free per value. */
struct smm_event_json_arena;

/* Bytes that no payload of at most payload_bytes can exceed in an arena. cJSON 1.7.15
 * allocates one node (sizeof(cJSON)) for the root and one per '[', '{' or ',' it reads,
 * and one string copy per '"' that opens a string, no longer than that string's literal;
 * each is rounded up to 8 bytes here. About 73 bytes per payload byte. */
size_t smm_event_json_arena_size(size_t payload_bytes);

/* An arena that grows on demand, before each parse, to smm_event_json_arena_size() of
 * that payload, but never beyond limit bytes; it keeps up to 1 MiB between decodes (a
 * decode that needed more frees it after). Pass smm_event_json_arena_size(max payload) as
 * the limit and no payload within the size limit can exhaust it. Caller owns the result;
 * free it with smm_event_json_arena_destroy(), which accepts NULL. NULL on out-of-memory. */
struct smm_event_json_arena *smm_event_json_arena_new(size_t limit);
void smm_event_json_arena_destroy(struct smm_event_json_arena *arena);

/* Decodes and validates buf[0..len) (not NUL-terminated). kafka_ts_ms is the message
 * timestamp used when "ts" is absent (-1 if none); now_ms is the caller's clock. arena
 * (NULL: malloc) holds the parse tree until the next decode with the same arena; one
 * arena serves one thread at a time. A payload whose tree does not fit the arena's limit
 * is rejected as too_large (never within the limit above); if growing the arena fails,
 * that payload is parsed with malloc instead, so the outcome is the same as without.
 * Returns SMM_OK and fills *ev, or SMM_ERR and fills *rej (ev is then undefined). */
int smm_event_json_decode(const void *buf, size_t len, int64_t kafka_ts_ms, int64_t now_ms,
                          const struct smm_decode_limits *lim,
                          struct smm_event_json_arena *arena, struct smm_event *ev,
                          struct smm_reject *rej);

/* Parses an RFC 3339 date-time ("2026-11-26T03:51:43.123Z", "+02:00" offsets, 'T' or
 * ' ', fraction to ms). Returns SMM_OK and writes epoch ms, or SMM_ERR. */
int smm_event_json_parse_rfc3339(const char *s, int64_t *ms_out);

#endif
