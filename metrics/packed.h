/* metrics/packed.h - an entity's counters in one bucket, as Redis stores them.
 *
 * A bucket field of an entity hash (t, m<minute>, h<hour>: docs/redis-keys.md) holds the
 * entity's counters of that bucket packed as "name=value,name=value": names are metric
 * names ([a-z0-9_], at most SMM_PACKED_NAME_MAX - 1 bytes), values integers; a zero is not
 * written. The processor keeps the buckets it writes, adds a batch's deltas to them and
 * sends the result, so Redis stores absolute values and computes nothing. The readers in
 * connectors/lua/smm_lib.lua parse the same text. */
#ifndef SMM_METRICS_PACKED_H
#define SMM_METRICS_PACKED_H

#include <stddef.h>
#include <stdint.h>

#define SMM_PACKED_MAX      48 /* metrics in one bucket (events, sums, insight counters) */
#define SMM_PACKED_NAME_MAX 40

struct smm_packed {
    int n;
    struct smm_packed_kv {
        char name[SMM_PACKED_NAME_MAX];
        int64_t v;
    } kv[SMM_PACKED_MAX];
};

/* Parses len bytes of s ("" = no counters) into p. Returns 0, or -1 when s is not packed
 * counters or holds more than SMM_PACKED_MAX of them (p is then unusable). */
int smm_packed_parse(struct smm_packed *p, const char *s, size_t len);
/* Adds d to the counter name (a new one is appended). -1 when p is full or name too long. */
int smm_packed_add(struct smm_packed *p, const char *name, int64_t d);
/* The counter name (0 when absent). */
int64_t smm_packed_get(const struct smm_packed *p, const char *name);
/* Writes p packed into out (NUL-terminated; zeros left out, names in p's order) and returns
 * its length: 0 means no counters (the field is deleted). Needs at most SMM_PACKED_TEXT_MAX
 * bytes; returns -1 when size is too small. */
#define SMM_PACKED_TEXT_MAX (SMM_PACKED_MAX * (SMM_PACKED_NAME_MAX + 22))
int smm_packed_format(const struct smm_packed *p, char *out, size_t size);

#endif
