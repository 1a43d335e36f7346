/* metrics/aggregate.c - the pre-aggregation table of a batch.
 *
 * DESIGN: everything lives in growable arrays indexed by int (entities, minute blocks,
 * users) plus one open-addressing hash from (kind, id) to the entity index, and a bump
 * arena for id strings. A clear resets counts to zero and keeps the memory, so steady
 * state allocates nothing per event. A batch usually spans one or two minutes, so each
 * entity's minute list is short and walked linearly. A second hash holds each entity's
 * distinct users (per minute for accounts, whose window sketches need it), so a user
 * reaches the script once per batch however often it was seen. */
#include "metrics/aggregate.h"
#include "metrics/hll.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK (64 * 1024)

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, size;
    char data[];
};

/* One hash table slot. The hash sits beside the index so that a probe reads one cache
 * line, and skips the entity or user it does not match: the tables of a large batch are
 * megabytes, and their cache misses were most of count()'s time. */
struct slot {
    uint32_t hash;
    int idx; /* entity or user index + 1; 0 = empty */
};

struct smm_agg {
    unsigned engagement_mask;
    int64_t events;
    struct smm_agg_entity *ents;
    int n_ents, cap_ents;
    struct smm_agg_minute *mins;
    int n_mins, cap_mins;
    struct smm_agg_user *users;
    int n_users, cap_users;
    int last_ent; /* the entity count() touched last */
    struct smm_agg_link *links;
    int n_links, cap_links;
    struct slot *slots; /* (kind, id) -> entity */
    size_t n_slots;     /* power of two */
    struct slot *uslots; /* (entity, minute, user) -> user */
    size_t n_uslots;     /* power of two */
    struct arena_chunk *arena, *arena_cur;
};

static uint32_t hash_id(int kind, const char *s, size_t *len_out)
{
    uint32_t h = 2166136261u ^ (uint32_t)kind; /* FNV-1a */
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    for (; p[n]; n++) {
        h ^= p[n];
        h *= 16777619u;
    }
    *len_out = n;
    return h ? h : 1;
}

static char *arena_dup(struct smm_agg *agg, const char *s, size_t len)
{
    struct arena_chunk *c = agg->arena_cur;
    while (c && c->used + len + 1 > c->size) {
        c = c->next;
    }
    if (!c) {
        size_t size = len + 1 > ARENA_CHUNK ? len + 1 : ARENA_CHUNK;
        c = malloc(sizeof(*c) + size);
        if (!c) {
            return NULL;
        }
        c->used = 0;
        c->size = size;
        c->next = NULL;
        if (agg->arena_cur) {
            /* Append after the current chunk so a clear can rewind to the head. */
            c->next = agg->arena_cur->next;
            agg->arena_cur->next = c;
        } else {
            agg->arena = c;
        }
    }
    agg->arena_cur = c;
    char *dst = c->data + c->used;
    memcpy(dst, s, len + 1);
    c->used += len + 1;
    return dst;
}

static int grow(void **arr, int *cap, size_t elem, int need)
{
    if (need <= *cap) {
        return SMM_OK;
    }
    int ncap = *cap ? *cap * 2 : 256;
    while (ncap < need) {
        ncap *= 2;
    }
    void *p = realloc(*arr, (size_t)ncap * elem);
    if (!p) {
        return SMM_ERR;
    }
    *arr = p;
    *cap = ncap;
    return SMM_OK;
}

static int rehash_table(struct slot **slots_p, size_t *n_p, size_t n_slots)
{
    struct slot *slots = calloc(n_slots, sizeof(*slots));
    if (!slots) {
        return SMM_ERR;
    }
    for (size_t i = 0; i < *n_p; i++) {
        if (!(*slots_p)[i].idx) {
            continue;
        }
        size_t j = (*slots_p)[i].hash & (n_slots - 1);
        while (slots[j].idx) {
            j = (j + 1) & (n_slots - 1);
        }
        slots[j] = (*slots_p)[i];
    }
    free(*slots_p);
    *slots_p = slots;
    *n_p = n_slots;
    return SMM_OK;
}

static int rehash(struct smm_agg *agg, size_t n_slots)
{
    return rehash_table(&agg->slots, &agg->n_slots, n_slots);
}

struct smm_agg *smm_agg_new(unsigned engagement_mask, char *errstr, size_t errstr_size)
{
    struct smm_agg *agg = calloc(1, sizeof(*agg));
    if (!agg || rehash(agg, 1024) != SMM_OK ||
        rehash_table(&agg->uslots, &agg->n_uslots, 1024) != SMM_OK) {
        snprintf(errstr, errstr_size, "out of memory");
        smm_agg_destroy(agg);
        return NULL;
    }
    agg->engagement_mask = engagement_mask;
    return agg;
}

void smm_agg_destroy(struct smm_agg *agg)
{
    if (!agg) {
        return;
    }
    struct arena_chunk *c = agg->arena;
    while (c) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(agg->ents);
    free(agg->mins);
    free(agg->users);
    free(agg->links);
    free(agg->slots);
    free(agg->uslots);
    free(agg);
}

int smm_agg_engagement_sign(const struct smm_agg *agg, enum smm_event_type type)
{
    unsigned m = agg->engagement_mask;
    if (m & (1u << type)) {
        return 1;
    }
    if (type == SMM_EV_UNLIKE && (m & (1u << SMM_EV_LIKE))) {
        return -1;
    }
    if (type == SMM_EV_COMMENT_DELETE && (m & (1u << SMM_EV_COMMENT))) {
        return -1;
    }
    return 0;
}

static int entity_get(struct smm_agg *agg, enum smm_agg_kind kind, const char *id)
{
    size_t len;
    uint32_t h = hash_id((int)kind, id, &len);
    size_t mask = agg->n_slots - 1;
    for (size_t j = h & mask;; j = (j + 1) & mask) {
        int s = agg->slots[j].idx;
        if (!s) {
            if ((size_t)(agg->n_ents + 1) * 2 > agg->n_slots) {
                if (rehash(agg, agg->n_slots * 2) != SMM_OK) {
                    return -1;
                }
                return entity_get(agg, kind, id);
            }
            if (grow((void **)&agg->ents, &agg->cap_ents, sizeof(*agg->ents),
                     agg->n_ents + 1) != SMM_OK) {
                return -1;
            }
            const char *copy = arena_dup(agg, id, len);
            if (!copy) {
                return -1;
            }
            struct smm_agg_entity *e = &agg->ents[agg->n_ents];
            e->kind = kind;
            e->id = copy;
            e->first_minute = -1;
            e->first_user = -1;
            e->n_users = 0;
            e->split = 0;
            agg->slots[j].idx = ++agg->n_ents;
            agg->slots[j].hash = h;
            return agg->n_ents - 1;
        }
        if (agg->slots[j].hash != h) {
            continue;
        }
        const struct smm_agg_entity *e = &agg->ents[s - 1];
        if (e->kind == kind && strcmp(e->id, id) == 0) {
            return s - 1;
        }
    }
}

static struct smm_agg_minute *minute_get(struct smm_agg *agg, int ent, int64_t minute)
{
    int *link = &agg->ents[ent].first_minute;
    while (*link >= 0) {
        struct smm_agg_minute *m = &agg->mins[*link];
        if (m->minute == minute) {
            return m;
        }
        link = &m->next;
    }
    if (grow((void **)&agg->mins, &agg->cap_mins, sizeof(*agg->mins), agg->n_mins + 1) !=
        SMM_OK) {
        return NULL;
    }
    /* The realloc above may have moved mins; re-walk to the tail link. */
    link = &agg->ents[ent].first_minute;
    while (*link >= 0) {
        link = &agg->mins[*link].next;
    }
    struct smm_agg_minute *m = &agg->mins[agg->n_mins];
    memset(m, 0, sizeof(*m));
    m->minute = minute;
    m->next = -1;
    *link = agg->n_mins++;
    return m;
}

/* Adds user to entity ent's reach list unless the batch already has it (for an account:
 * in that minute; for the others the minute is not used and any earlier sighting counts). */
static int add_user(struct smm_agg *agg, int ent, int64_t minute, const char *user)
{
    struct smm_agg_entity *e = &agg->ents[ent];
    int64_t key_minute = e->kind == SMM_AGG_ACCOUNT ? minute : 0;
    size_t len;
    uint32_t h = hash_id(0, user, &len);
    h ^= (uint32_t)ent * 0x9e3779b1u ^ (uint32_t)key_minute * 0x85ebca77u;
    h = h ? h : 1;
    size_t mask = agg->n_uslots - 1;
    size_t j = h & mask;
    for (; agg->uslots[j].idx; j = (j + 1) & mask) {
        if (agg->uslots[j].hash != h) {
            continue;
        }
        const struct smm_agg_user *u = &agg->users[agg->uslots[j].idx - 1];
        if (u->ent == ent &&
            (e->kind != SMM_AGG_ACCOUNT || u->minute == minute) && strcmp(u->user, user) == 0) {
            return SMM_OK;
        }
    }
    if ((size_t)(agg->n_users + 1) * 2 > agg->n_uslots) {
        if (rehash_table(&agg->uslots, &agg->n_uslots, agg->n_uslots * 2) != SMM_OK) {
            return SMM_ERR;
        }
        return add_user(agg, ent, minute, user);
    }
    if (grow((void **)&agg->users, &agg->cap_users, sizeof(*agg->users), agg->n_users + 1) !=
        SMM_OK) {
        return SMM_ERR;
    }
    const char *copy = arena_dup(agg, user, len);
    if (!copy) {
        return SMM_ERR;
    }
    struct smm_agg_user *u = &agg->users[agg->n_users];
    u->minute = minute;
    u->user = copy;
    u->reach_pos = smm_hll_position(user, len); /* (the bytes are at hand now) */
    u->ent = ent;
    u->next = e->first_user;
    e->first_user = agg->n_users++;
    e->n_users++;
    agg->uslots[j].idx = agg->n_users;
    agg->uslots[j].hash = h;
    return SMM_OK;
}

int smm_agg_fold(struct smm_agg *agg, int from, enum smm_agg_kind kind, const char *id)
{
    int to = entity_get(agg, kind, id);
    if (to < 0) {
        return SMM_ERR;
    }
    if (to == from) {
        return SMM_OK;
    }
    agg->ents[to].split = agg->ents[from].split;
    for (int mi = agg->ents[from].first_minute; mi >= 0;) {
        struct smm_agg_minute src = agg->mins[mi]; /* minute_get may move mins */
        struct smm_agg_minute *m = minute_get(agg, to, src.minute);
        if (!m) {
            return SMM_ERR;
        }
        for (int x = 0; x < SMM_AGG_COUNTS; x++) {
            m->count[x] += src.count[x];
        }
        for (int x = 0; x < SMM_AGG_METRICS - SMM_AGG_COUNTS; x++) {
            m->sum[x] += src.sum[x];
        }
        mi = src.next;
    }
    for (int ui = agg->ents[from].first_user; ui >= 0;) {
        struct smm_agg_user u = agg->users[ui]; /* add_user may move users */
        if (add_user(agg, to, u.minute, u.user) != SMM_OK) {
            return SMM_ERR;
        }
        ui = u.next;
    }
    agg->ents[from].first_minute = -1;
    agg->ents[from].first_user = -1;
    agg->ents[from].n_users = 0;
    return SMM_OK;
}

static int count(struct smm_agg *agg, enum smm_agg_kind kind, const char *id,
                 const struct smm_event *ev, int64_t minute, int eng)
{
    int ent = entity_get(agg, kind, id);
    if (ent < 0) {
        return SMM_ERR;
    }
    agg->last_ent = ent;
    struct smm_agg_minute *m = minute_get(agg, ent, minute);
    if (!m) {
        return SMM_ERR;
    }
    int64_t *sum = m->sum; /* sum[metric - SMM_AGG_COUNTS] */
    m->count[ev->type]++;
    m->count[SMM_AGG_ENGAGEMENT] += eng;
    if (ev->type == SMM_EV_CONVERSION && (ev->flags & SMM_EVF_VALUE)) {
        sum[SMM_AGG_VALUE_CENTS - SMM_AGG_COUNTS] += smm_agg_cents(ev->value);
    } else if (ev->type == SMM_EV_MENTION) {
        sum[SMM_AGG_MENTION_REACH - SMM_AGG_COUNTS] +=
            (ev->flags & SMM_EVF_FOLLOWERS) ? ev->followers : 0;
        sum[SMM_AGG_MENTION_ENGAGEMENT - SMM_AGG_COUNTS] +=
            (ev->flags & SMM_EVF_ENGAGEMENT) ? ev->engagement : 0;
    }
    /* Unique reach: posts, accounts and segment values (not sources or sets); every user
     * with a content event, seen or acted on (smm_event_type_reaches). */
    if ((ev->flags & SMM_EVF_USER) && kind != SMM_AGG_SOURCE && kind != SMM_AGG_VOICE &&
        smm_event_type_reaches(ev->type)) {
        return add_user(agg, ent, minute, ev->user_id);
    }
    return SMM_OK;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int smm_agg_add(struct smm_agg *agg, const struct smm_event *ev)
{
    int64_t minute = floor_div(ev->ts_ms, 60000);
    int eng = smm_agg_engagement_sign(agg, ev->type);
    if ((ev->flags & SMM_EVF_CONTENT) &&
        count(agg, SMM_AGG_CONTENT, ev->content_id, ev, minute, eng) != SMM_OK) {
        return SMM_ERR;
    }
    if (count(agg, SMM_AGG_ACCOUNT, ev->account_id, ev, minute, eng) != SMM_OK) {
        return SMM_ERR;
    }
    agg->events++;
    return SMM_OK;
}

int smm_agg_add_to(struct smm_agg *agg, enum smm_agg_kind kind, const char *id,
                   const struct smm_event *ev)
{
    return count(agg, kind, id, ev, floor_div(ev->ts_ms, 60000),
                 smm_agg_engagement_sign(agg, ev->type));
}

int smm_agg_add_split(struct smm_agg *agg, enum smm_agg_kind kind, const char *id, int split,
                      const struct smm_event *ev)
{
    if (smm_agg_add_to(agg, kind, id, ev) != SMM_OK) {
        return SMM_ERR;
    }
    agg->ents[agg->last_ent].split = split;
    return SMM_OK;
}

int64_t smm_agg_cents(double value)
{
    return (int64_t)llround(value * 100.0);
}

const char *smm_agg_kind_prefix(enum smm_agg_kind kind)
{
    static const char *const p[SMM_AGG_KINDS] = {"c", "a", "s", "g", "v"};
    return (unsigned)kind < SMM_AGG_KINDS ? p[kind] : "?";
}

int smm_agg_kind_keeps(enum smm_agg_kind kind, int m)
{
    switch (kind) {
    case SMM_AGG_SEGMENT:
        return m == SMM_EV_IMPRESSION || m == SMM_EV_CONVERSION || m == SMM_AGG_ENGAGEMENT ||
               m == SMM_AGG_VALUE_CENTS;
    case SMM_AGG_SOURCE:
        return m == SMM_EV_IMPRESSION || m == SMM_EV_CLICK || m == SMM_EV_REFERRAL ||
               m == SMM_EV_CONVERSION || m == SMM_AGG_VALUE_CENTS;
    case SMM_AGG_VOICE:
        return m == SMM_EV_MENTION || m == SMM_AGG_MENTION_REACH ||
               m == SMM_AGG_MENTION_ENGAGEMENT;
    default:
        return m != SMM_AGG_MENTION_REACH && m != SMM_AGG_MENTION_ENGAGEMENT
                   ? 1
                   : kind == SMM_AGG_ACCOUNT;
    }
}

const char *smm_agg_metric_name(int m)
{
    switch (m) {
    case SMM_AGG_ENGAGEMENT:
        return "engagement";
    case SMM_AGG_VALUE_CENTS:
        return "value_cents";
    case SMM_AGG_MENTION_REACH:
        return "mention_reach";
    case SMM_AGG_MENTION_ENGAGEMENT:
        return "mention_engagement";
    default:
        return smm_event_type_name((enum smm_event_type)m);
    }
}

static const char *dup_or_empty(struct smm_agg *agg, const char *s)
{
    return s && *s ? arena_dup(agg, s, strlen(s)) : "";
}

int smm_agg_link_add(struct smm_agg *agg, const struct smm_agg_link *link)
{
    if (grow((void **)&agg->links, &agg->cap_links, sizeof(*agg->links), agg->n_links + 1) !=
        SMM_OK) {
        return SMM_ERR;
    }
    struct smm_agg_link *l = &agg->links[agg->n_links];
    *l = *link;
    l->account = dup_or_empty(agg, link->account);
    l->a = dup_or_empty(agg, link->a);
    l->b = dup_or_empty(agg, link->b);
    l->c = dup_or_empty(agg, link->c);
    if (!l->account || !l->a || !l->b || !l->c) {
        return SMM_ERR;
    }
    agg->n_links++;
    return SMM_OK;
}

int smm_agg_links(const struct smm_agg *agg)
{
    return agg->n_links;
}

const struct smm_agg_link *smm_agg_link_at(const struct smm_agg *agg, int i)
{
    return &agg->links[i];
}

int smm_agg_entities(const struct smm_agg *agg)
{
    return agg->n_ents;
}

const struct smm_agg_entity *smm_agg_entity(const struct smm_agg *agg, int i)
{
    return &agg->ents[i];
}

const struct smm_agg_minute *smm_agg_minute_at(const struct smm_agg *agg, int i)
{
    return &agg->mins[i];
}

const struct smm_agg_user *smm_agg_user_at(const struct smm_agg *agg, int i)
{
    return &agg->users[i];
}

int64_t smm_agg_events(const struct smm_agg *agg)
{
    return agg->events;
}

/* Capacity a clear keeps: a batch is large while a backlog is read (flush.max_events) and
 * then small for good; holding on to the largest one would keep that memory for good. */
#define KEEP_FLOOR 1024

static void shrink(void **arr, int *cap, size_t elem, int used)
{
    if (*cap <= KEEP_FLOOR || used >= *cap / 4) {
        return;
    }
    int ncap = used * 2 > KEEP_FLOOR ? used * 2 : KEEP_FLOOR;
    void *p = realloc(*arr, (size_t)ncap * elem);
    if (p) {
        *arr = p;
        *cap = ncap;
    }
}

/* An emptied hash table: kept (zeroed) when its size suits `used` entries, else replaced
 * by a smaller one. */
static void reset_table(struct slot **slots, size_t *n_slots, int used)
{
    size_t want = 2 * KEEP_FLOOR;
    while (want < (size_t)used * 4) {
        want *= 2;
    }
    if (*n_slots > 2 * want) {
        struct slot *ns = calloc(want, sizeof(*ns));
        if (ns) {
            free(*slots);
            *slots = ns;
            *n_slots = want;
            return;
        }
    }
    if (used) {
        memset(*slots, 0, *n_slots * sizeof(**slots));
    }
}

void smm_agg_clear(struct smm_agg *agg)
{
    /* Arena: keep the chunks this batch used (at least one), free the rest. */
    struct arena_chunk *keep = agg->arena;
    for (struct arena_chunk *c = agg->arena; c; c = c->next) {
        if (c->used) {
            keep = c;
        }
        c->used = 0;
    }
    if (keep) {
        struct arena_chunk *c = keep->next;
        keep->next = NULL;
        while (c) {
            struct arena_chunk *next = c->next;
            free(c);
            c = next;
        }
    }
    agg->arena_cur = agg->arena;
    reset_table(&agg->slots, &agg->n_slots, agg->n_ents);
    reset_table(&agg->uslots, &agg->n_uslots, agg->n_users);
    shrink((void **)&agg->ents, &agg->cap_ents, sizeof(*agg->ents), agg->n_ents);
    shrink((void **)&agg->mins, &agg->cap_mins, sizeof(*agg->mins), agg->n_mins);
    shrink((void **)&agg->users, &agg->cap_users, sizeof(*agg->users), agg->n_users);
    shrink((void **)&agg->links, &agg->cap_links, sizeof(*agg->links), agg->n_links);
    agg->n_ents = 0;
    agg->n_mins = 0;
    agg->n_users = 0;
    agg->n_links = 0;
    agg->events = 0;
}
