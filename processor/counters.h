/* processor/counters.h - the processor's copy of the counter hashes it writes.
 *
 * "The processor computes, Redis stores": for a post's counter hash
 * <prefix>{<shard>}:c:<id> (docs/redis-keys.md) the processor keeps the bucket fields it
 * writes (t, the current minutes and hours), loaded once (HMGET) and then kept up to date
 * by its own writes, so a flush sends each bucket's new absolute value and Redis parses
 * nothing. Every write to such a hash moves its version field v by one; a flush applies
 * an absolute value only if v is still the version the value was computed from, and
 * otherwise applies the deltas sent beside it and reports the hash, which is then dropped
 * from here and loaded again (another processor wrote it: partitions not keyed by
 * content_id). Bounded: at most max entries; the least recently used go first.
 *
 * A post's, account's or segment value's entry may also hold its lifetime reach sketch
 * (<prefix><entity>:reach, the HyperLogLog string PFADD builds; metrics/hll.h): loaded
 * with the hash, kept up to date by adding the batch's users here, and written whole (SET)
 * by the same flush and under the same version check as the entity's values, so Redis
 * hashes no user. Sketches are bounded by memory apart from entries: past
 * max_sketch_bytes no new one is held (its users then go to PFADD, as for an entity not
 * held).
 *
 * An account's admission sketch for one dimension (metrics/admission.h), the hash
 * <prefix>ss:<account>:<dim> with its admitted set <prefix>seg:<account>:<dim>, is held
 * the same way, as the entry named "ss:<account>:<dim>": loaded whole (HGETALL, SMEMBERS),
 * fed and decided here, its changed fields written under the same version check. */
#ifndef SMM_PROCESSOR_COUNTERS_H
#define SMM_PROCESSOR_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/admission.h"

struct smm_hll;

#define SMM_COUNTERS_FIELDS 8 /* bucket fields kept per hash (t and recent m/h buckets) */
#define SMM_COUNTERS_NAME   24 /* a bucket field name and its NUL */

struct smm_counters_field {
    char name[SMM_COUNTERS_NAME]; /* "t", "m<minute>", "h<hour>" */
    char *packed;  /* the stored value ("" = no counters) */
};

/* An admission sketch as stored, and its admitted set. */
struct smm_counters_adm {
    struct smm_adm sk;
    char **set;   /* the admitted set as stored (after this processor's last write) */
    int n_set;
    int64_t x;    /* the stored X: the expiry last set on the hash and the set (0: none) */
    const char **ranked; /* while a batch is decided: its admitted values (into sk) */
    int n_ranked;
};

struct smm_counters_entry {
    struct smm_counters_entry *next; /* hash chain */
    int64_t ver;      /* the stored v as of our last load or write (0: no hash) */
    int64_t pruned;   /* the stored p: minute of the last prune (-1: none) */
    int64_t expire_s; /* the EXPIREAT we last set (0: not known) */
    int64_t used;     /* smm_counters_tick() count of the last use */
    uint64_t epoch;   /* the pipeline's writer epoch when ver was last known current */
    int nf;
    struct smm_counters_field *f; /* SMM_COUNTERS_FIELDS, allocated by the first set */
    struct smm_hll *reach; /* the post's reach sketch as stored, or NULL: not held */
    size_t reach_mem;      /* its heap bytes, as last counted */
    int64_t reach_expire_s; /* the sketch's EXPIREAT set since it was loaded (0: none) */
    int reach_refused;     /* a load could not hold it: its users go to PFADD */
    struct smm_counters_adm *adm; /* an admission sketch's entry: the sketch, else NULL */
    uint32_t mark;        /* the user's: e.g. listed once per flush */
    size_t name_at; /* the entity's name, key + name_at ("c:<id>"): what entries go by */
    char key[];     /* <prefix>{<shard>}:<entity> */
};

struct smm_counters;

struct smm_counters *smm_counters_new(size_t max_entries, size_t max_sketch_bytes);
void smm_counters_free(struct smm_counters *c);
size_t smm_counters_size(const struct smm_counters *c);

/* The entry of the entity name (len bytes: "c:<id>", "a:<id>", ...), or NULL. Marks it used.
 * Entries go by name so that a lookup needs no shard (no SHA-1). */
struct smm_counters_entry *smm_counters_find(struct smm_counters *c, const char *name,
                                             size_t len);
/* The entry of the entity key + name_at, whose hash is key, created empty (ver 0, pruned -1,
 * no fields) when absent. NULL when out of memory. */
struct smm_counters_entry *smm_counters_put(struct smm_counters *c, const char *key,
                                            size_t name_at);
/* The cached value of field name, or NULL when not held. */
const char *smm_counters_get(const struct smm_counters_entry *e, const char *name);
/* Holds value for field name; when all SMM_COUNTERS_FIELDS are taken, the oldest minute
 * or hour bucket is forgotten (never t). -1 when out of memory (the entry is then left
 * without the field). */
int smm_counters_set(struct smm_counters_entry *e, const char *name, const char *value,
                     size_t len);
/* Forgets every field of e (a load found another version). */
void smm_counters_clear(struct smm_counters_entry *e);
/* Holds the reach sketch of e from the Redis string buf[0..len) (buf NULL: no key yet, an
 * empty sketch). -1, and e holds none, when the string is not a valid sketch, when out of
 * memory or when the sketches held already take max_sketch_bytes. */
int smm_counters_reach_load(struct smm_counters *c, struct smm_counters_entry *e,
                            const void *buf, size_t len);
/* Adds a user to e's held sketch, by its smm_hll_position(). 1 when a register grew, 0
 * when not, -1 when out of memory (the sketch is then forgotten). */
int smm_counters_reach_add(struct smm_counters *c, struct smm_counters_entry *e, uint32_t pos);
/* Forgets e's sketch. */
void smm_counters_reach_forget(struct smm_counters *c, struct smm_counters_entry *e);
/* The admission sketch of e, created empty when e has none; NULL when out of memory. */
struct smm_counters_adm *smm_counters_adm(struct smm_counters_entry *e);
/* Forgets e's admission sketch (a load that failed). */
void smm_counters_adm_forget(struct smm_counters_entry *e);
/* Replaces the admitted set a holds as stored by vals[0..n). -1 when out of memory (the
 * set is then empty). */
int smm_counters_adm_set(struct smm_counters_adm *a, const char *const *vals,
                         const size_t *lens, int n);
/* Heap bytes of the sketches held. */
size_t smm_counters_reach_bytes(const struct smm_counters *c);
/* Forgets the entity name (len bytes). */
void smm_counters_drop(struct smm_counters *c, const char *name, size_t len);
/* Starts a new round of use (one per flush); when over max entries, forgets the least
 * recently used until at most 3/4 of max remain. Never call between encoding a flush and
 * settling it: the flush holds pointers to its entries. */
void smm_counters_tick(struct smm_counters *c);

#endif
