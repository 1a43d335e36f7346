/* processor/counters.c - the processor's copy of the counter hashes it writes (see
 * counters.h).
 *
 * A chained hash table keyed by the entity's name (smm_hash64), grown by doubling. Eviction
 * is by round of last use: when the table is over its bound after a round, the entries
 * not used in the most recent rounds go, the horizon halving until enough are gone. That
 * costs one pass over the table per eviction, which happens at most once every max/4 new
 * entries. */
#include "processor/counters.h"

#include <stdlib.h>
#include <string.h>

#include "metrics/hash.h"
#include "metrics/hll.h"

struct smm_counters {
    struct smm_counters_entry **slot;
    size_t n_slots, n, max;
    size_t sketch_bytes, max_sketch_bytes;
    int64_t round;
};

struct smm_counters *smm_counters_new(size_t max_entries, size_t max_sketch_bytes)
{
    struct smm_counters *c = calloc(1, sizeof(*c));
    if (!c) {
        return NULL;
    }
    c->n_slots = 1024;
    c->slot = calloc(c->n_slots, sizeof(*c->slot));
    if (!c->slot) {
        free(c);
        return NULL;
    }
    c->max = max_entries ? max_entries : 1;
    c->max_sketch_bytes = max_sketch_bytes;
    return c;
}

static void adm_free(struct smm_counters_adm *a)
{
    if (a) {
        free(a->ranked);
        smm_adm_free(&a->sk);
        smm_counters_adm_set(a, NULL, NULL, 0);
        free(a);
    }
}

static void entry_free(struct smm_counters *c, struct smm_counters_entry *e)
{
    smm_counters_reach_forget(c, e);
    smm_counters_clear(e);
    free(e->f);
    adm_free(e->adm);
    free(e);
}

void smm_counters_adm_forget(struct smm_counters_entry *e)
{
    adm_free(e->adm);
    e->adm = NULL;
}

struct smm_counters_adm *smm_counters_adm(struct smm_counters_entry *e)
{
    if (!e->adm && (e->adm = calloc(1, sizeof(*e->adm))) != NULL) {
        smm_adm_init(&e->adm->sk);
    }
    return e->adm;
}

int smm_counters_adm_set(struct smm_counters_adm *a, const char *const *vals,
                         const size_t *lens, int n)
{
    for (int i = 0; i < a->n_set; i++) {
        free(a->set[i]);
    }
    free(a->set);
    a->set = NULL;
    a->n_set = 0;
    if (n <= 0) {
        return 0;
    }
    if (!(a->set = calloc((size_t)n, sizeof(*a->set)))) {
        return -1;
    }
    for (int i = 0; i < n; i++) {
        size_t len = lens ? lens[i] : strlen(vals[i]);
        if (!(a->set[i] = malloc(len + 1))) {
            smm_counters_adm_set(a, NULL, NULL, 0);
            return -1;
        }
        memcpy(a->set[i], vals[i], len);
        a->set[i][len] = '\0';
        a->n_set++;
    }
    return 0;
}

void smm_counters_free(struct smm_counters *c)
{
    if (!c) {
        return;
    }
    for (size_t i = 0; i < c->n_slots; i++) {
        for (struct smm_counters_entry *e = c->slot[i], *nx; e; e = nx) {
            nx = e->next;
            entry_free(c, e);
        }
    }
    free(c->slot);
    free(c);
}

size_t smm_counters_size(const struct smm_counters *c)
{
    return c->n;
}

static const char *name_of(const struct smm_counters_entry *e)
{
    return e->key + e->name_at;
}

static struct smm_counters_entry **where(struct smm_counters *c, const char *name, size_t len)
{
    struct smm_counters_entry **p = &c->slot[smm_hash64(name, len) & (c->n_slots - 1)];
    while (*p && (strncmp(name_of(*p), name, len) != 0 || name_of(*p)[len] != '\0')) {
        p = &(*p)->next;
    }
    return p;
}

struct smm_counters_entry *smm_counters_find(struct smm_counters *c, const char *name,
                                             size_t len)
{
    struct smm_counters_entry *e = *where(c, name, len);
    if (e) {
        e->used = c->round;
    }
    return e;
}

static void grow(struct smm_counters *c)
{
    size_t n = c->n_slots * 2;
    struct smm_counters_entry **s = calloc(n, sizeof(*s));
    if (!s) {
        return; /* longer chains, still correct */
    }
    for (size_t i = 0; i < c->n_slots; i++) {
        for (struct smm_counters_entry *e = c->slot[i], *nx; e; e = nx) {
            nx = e->next;
            const char *name = name_of(e);
            struct smm_counters_entry **p = &s[smm_hash64(name, strlen(name)) & (n - 1)];
            e->next = *p;
            *p = e;
        }
    }
    free(c->slot);
    c->slot = s;
    c->n_slots = n;
}

struct smm_counters_entry *smm_counters_put(struct smm_counters *c, const char *key,
                                            size_t name_at)
{
    size_t len = strlen(key);
    struct smm_counters_entry **p = where(c, key + name_at, len - name_at);
    if (*p) {
        (*p)->used = c->round;
        return *p;
    }
    struct smm_counters_entry *e = calloc(1, sizeof(*e) + len + 1);
    if (!e) {
        return NULL;
    }
    memcpy(e->key, key, len + 1);
    e->name_at = name_at;
    e->pruned = -1;
    e->used = c->round;
    *p = e;
    if (++c->n > c->n_slots) {
        grow(c);
    }
    return e;
}

const char *smm_counters_get(const struct smm_counters_entry *e, const char *name)
{
    for (int i = 0; i < e->nf; i++) {
        if (strcmp(e->f[i].name, name) == 0) {
            return e->f[i].packed;
        }
    }
    return NULL;
}

/* Buckets compare by kind, then number: the oldest of the same kind goes first. */
static int64_t bucket_no(const char *name)
{
    return strtoll(name + 1, NULL, 10);
}

int smm_counters_set(struct smm_counters_entry *e, const char *name, const char *value,
                     size_t len)
{
    if (!e->f && !(e->f = malloc(SMM_COUNTERS_FIELDS * sizeof(*e->f)))) {
        return -1;
    }
    int i = 0;
    while (i < e->nf && strcmp(e->f[i].name, name) != 0) {
        i++;
    }
    if (i == e->nf && e->nf == SMM_COUNTERS_FIELDS) {
        /* Full: reuse the oldest minute bucket, else the oldest hour bucket. */
        int victim = -1;
        for (int k = 0; k < e->nf; k++) {
            char kind = e->f[k].name[0];
            if (kind == 't') {
                continue;
            }
            if (victim < 0 || (kind == 'm' && e->f[victim].name[0] == 'h') ||
                (kind == e->f[victim].name[0] &&
                 bucket_no(e->f[k].name) < bucket_no(e->f[victim].name))) {
                victim = k;
            }
        }
        i = victim;
        free(e->f[i].packed);
        e->f[i].packed = NULL;
    } else if (i == e->nf) {
        e->nf++;
        e->f[i].packed = NULL;
    }
    char *v = malloc(len + 1);
    if (!v || strlen(name) >= sizeof(e->f[i].name)) {
        free(v);
        free(e->f[i].packed);
        e->f[i] = e->f[--e->nf];
        return -1;
    }
    memcpy(v, value, len);
    v[len] = '\0';
    free(e->f[i].packed);
    e->f[i].packed = v;
    strcpy(e->f[i].name, name);
    return 0;
}

void smm_counters_clear(struct smm_counters_entry *e)
{
    for (int i = 0; i < e->nf; i++) {
        free(e->f[i].packed);
    }
    e->nf = 0;
}

void smm_counters_reach_forget(struct smm_counters *c, struct smm_counters_entry *e)
{
    smm_hll_destroy(e->reach);
    e->reach = NULL;
    c->sketch_bytes -= e->reach_mem;
    e->reach_mem = 0;
}

int smm_counters_reach_load(struct smm_counters *c, struct smm_counters_entry *e,
                            const void *buf, size_t len)
{
    smm_counters_reach_forget(c, e);
    e->reach_expire_s = 0;
    if (c->sketch_bytes >= c->max_sketch_bytes) {
        return -1;
    }
    struct smm_hll *h = smm_hll_new();
    if (!h || (buf && smm_hll_load(h, buf, len) != SMM_OK)) {
        smm_hll_destroy(h);
        return -1;
    }
    e->reach = h;
    e->reach_mem = smm_hll_memory(h);
    c->sketch_bytes += e->reach_mem;
    return 0;
}

int smm_counters_reach_add(struct smm_counters *c, struct smm_counters_entry *e, uint32_t pos)
{
    int r = smm_hll_add_position(e->reach, pos);
    if (r < 0) {
        smm_counters_reach_forget(c, e);
        return -1;
    }
    if (r > 0) {
        size_t mem = smm_hll_memory(e->reach); /* grows by doubling, or once to dense */
        c->sketch_bytes += mem - e->reach_mem;
        e->reach_mem = mem;
    }
    return r;
}

size_t smm_counters_reach_bytes(const struct smm_counters *c)
{
    return c->sketch_bytes;
}

void smm_counters_drop(struct smm_counters *c, const char *name, size_t len)
{
    struct smm_counters_entry **p = where(c, name, len), *e = *p;
    if (e) {
        *p = e->next;
        entry_free(c, e);
        c->n--;
    }
}

void smm_counters_tick(struct smm_counters *c)
{
    c->round++;
    if (c->n <= c->max) {
        return;
    }
    for (int64_t age = 64; c->n > c->max / 4 * 3 && age >= 0; age /= 2) {
        for (size_t i = 0; i < c->n_slots; i++) {
            struct smm_counters_entry **p = &c->slot[i];
            while (*p) {
                struct smm_counters_entry *e = *p;
                if (c->round - e->used > age) {
                    *p = e->next;
                    entry_free(c, e);
                    c->n--;
                } else {
                    p = &e->next;
                }
            }
        }
        if (age == 0) {
            break;
        }
    }
}
