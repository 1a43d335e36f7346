/* metrics/virality.c - structural virality (Goel et al. 2016) of one diffusion tree.
 *
 * Recomputing all pairwise distances per share is O(n^2) (O(n) BFS from each node), far
 * too much for a cascade that grows by thousands of shares an hour. Instead each node
 * keeps its parent and subtree size, and attaching a share under p adds D(p) + n to the
 * Wiener index, with D(p) obtained while walking p up to the root: O(depth) per share.
 *
 * DESIGN. Notation: n = nodes in the tree before the insertion (root included), d(x, y)
 * the tree distance, D(x) = sum_y d(x, y) the total distance from x, s_b the number of
 * nodes in the subtree of b (b included), W = sum over unordered pairs of d = 1/2 sum_x D(x).
 *
 * 1. New leaf v under p: every old node y has d(v, y) = d(p, y) + 1, so the n new pairs
 *    add  W' = W + D(p) + n.
 * 2. Moving from a node a to its child b, the s_b nodes of b's subtree get one step closer
 *    and the other n - s_b one step farther:  D(b) = D(a) + (n - s_b) - s_b = D(a) + n - 2 s_b.
 *    From the root, D(root) = sum of all depths, so along the path root = b_0, ..., b_k = p:
 *        D(p) = D(root) + sum_{i=1..k} (n - 2 s_{b_i}) = D(root) + k n - 2 sum_{i=1..k} s_{b_i}
 *    which is the notes' formula (metrics.md section 5.4) with k = depth(p).
 * 3. Afterwards v lies in the subtree of every node on p..root, so each of those s grows
 *    by one, D(root) grows by depth(v) = k + 1, and n grows by one.
 * One walk from p to the root does all of it: it adds each s_b (before incrementing it,
 * root excluded) to the sum, counts k, and increments s_b. The arithmetic is done in
 * uint64_t: D(root) + k n - 2 sum may pass below zero only in intermediate modular terms,
 * and the true D(p) is nonnegative and below 2^64, so the wrapped result is exact.
 *
 * Checked by tests/unit/test_virality.c against all-pairs BFS on random trees and against
 * the star 2(n-1)/n and chain (n+1)/3 values.
 *
 * Node lookup is an open-addressing table (linear probing, power-of-two size, at most half
 * full) of node indexes; keys live in the node array, so a slot is 4 bytes. Node keys are
 * already hashes, but they are mixed again (splitmix64 finaliser) so keys that differ only
 * in their high bits do not collide. Nodes are never removed, so no tombstones. A share
 * whose key is already stored is stored too but not hashed (its key entry is 0): the key
 * keeps naming the first share with it. */
#include "metrics/virality.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INIT_NODES  8
#define INIT_SLOTS  16
#define INIT_LEVELS 8

struct smm_cascade {
    int max_nodes;      /* shares we may store */
    int n;              /* stored tree nodes, root included (index 0) */
    int cap;            /* allocated entries of key/parent/subtree */
    uint64_t *key;      /* key[0] = 0 for the root; 0 also for a repeated key (not hashed) */
    int32_t *parent;    /* parent[0] = -1 */
    int32_t *subtree;   /* s: nodes in the subtree, itself included */
    int32_t *slots;     /* node index, 0 = empty (the root is never hashed) */
    size_t n_slots;     /* power of two */
    int32_t *level;     /* level[d] = stored nodes at depth d */
    int n_levels;       /* cap of level[] */
    uint64_t wiener;    /* W */
    uint64_t depth_sum; /* D(root) */
    int64_t size, truncated, orphans, repeats, exposure;
    int64_t max_depth, max_breadth, max_breadth_depth;
};

static void set_err(char *errstr, size_t errstr_size, const char *msg)
{
    if (errstr && errstr_size > 0) {
        snprintf(errstr, errstr_size, "%s", msg);
    }
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

struct smm_cascade *smm_cascade_new(int max_nodes, char *errstr, size_t errstr_size)
{
    if (max_nodes < 1 || max_nodes > SMM_CASCADE_MAX_NODES_LIMIT) {
        if (errstr && errstr_size > 0) {
            snprintf(errstr, errstr_size, "cascade max_nodes: must be 1..%d, got %d",
                     SMM_CASCADE_MAX_NODES_LIMIT, max_nodes);
        }
        return NULL;
    }
    struct smm_cascade *c = calloc(1, sizeof(*c));
    if (!c) {
        goto oom;
    }
    c->max_nodes = max_nodes;
    c->cap = INIT_NODES;
    c->n_slots = INIT_SLOTS;
    c->n_levels = INIT_LEVELS;
    c->key = calloc((size_t)c->cap, sizeof(*c->key));
    c->parent = calloc((size_t)c->cap, sizeof(*c->parent));
    c->subtree = calloc((size_t)c->cap, sizeof(*c->subtree));
    c->slots = calloc(c->n_slots, sizeof(*c->slots));
    c->level = calloc((size_t)c->n_levels, sizeof(*c->level));
    if (!c->key || !c->parent || !c->subtree || !c->slots || !c->level) {
        goto oom;
    }
    c->n = 1; /* the root: key 0, no parent, depth 0 */
    c->parent[0] = -1;
    c->subtree[0] = 1;
    c->level[0] = 1;
    return c;
oom:
    smm_cascade_destroy(c);
    set_err(errstr, errstr_size, "cascade: out of memory");
    return NULL;
}

void smm_cascade_destroy(struct smm_cascade *c)
{
    if (!c) {
        return;
    }
    free(c->level);
    free(c->slots);
    free(c->subtree);
    free(c->parent);
    free(c->key);
    free(c);
}

/* Index of the stored node with this key, or 0 (the root's index) when absent. */
static int32_t lookup(const struct smm_cascade *c, uint64_t key)
{
    size_t mask = c->n_slots - 1;
    for (size_t i = (size_t)mix64(key) & mask;; i = (i + 1) & mask) {
        int32_t idx = c->slots[i];
        if (idx == 0) {
            return 0;
        }
        if (c->key[idx] == key) {
            return idx;
        }
    }
}

static void slot_put(int32_t *slots, size_t n_slots, uint64_t key, int32_t idx)
{
    size_t mask = n_slots - 1;
    size_t i = (size_t)mix64(key) & mask;
    while (slots[i] != 0) {
        i = (i + 1) & mask;
    }
    slots[i] = idx;
}

/* Makes room for one more node, one more hashed key and depth level `depth`.
 * Allocates before anything is changed, so a failure leaves the cascade as it was. */
static int reserve(struct smm_cascade *c, int64_t depth)
{
    int limit = c->max_nodes + 1;
    if (c->n == c->cap) {
        int cap = c->cap * 2 > limit ? limit : c->cap * 2;
        uint64_t *key = realloc(c->key, (size_t)cap * sizeof(*key));
        if (!key) {
            return SMM_ERR;
        }
        c->key = key;
        int32_t *parent = realloc(c->parent, (size_t)cap * sizeof(*parent));
        if (!parent) {
            return SMM_ERR;
        }
        c->parent = parent;
        int32_t *subtree = realloc(c->subtree, (size_t)cap * sizeof(*subtree));
        if (!subtree) {
            return SMM_ERR;
        }
        c->subtree = subtree;
        c->cap = cap; /* only now: all three arrays hold cap entries */
    }
    /* After the insertion n - 1 keys are hashed; keep them at most half the slots. */
    if ((size_t)c->n * 2 > c->n_slots) {
        size_t n_slots = c->n_slots * 2;
        int32_t *slots = calloc(n_slots, sizeof(*slots));
        if (!slots) {
            return SMM_ERR;
        }
        for (int32_t idx = 1; idx < c->n; idx++) {
            if (c->key[idx] != 0) {
                slot_put(slots, n_slots, c->key[idx], idx);
            }
        }
        free(c->slots);
        c->slots = slots;
        c->n_slots = n_slots;
    }
    if (depth >= c->n_levels) {
        int n_levels = c->n_levels * 2 > limit ? limit : c->n_levels * 2;
        int32_t *level = realloc(c->level, (size_t)n_levels * sizeof(*level));
        if (!level) {
            return SMM_ERR;
        }
        memset(level + c->n_levels, 0, (size_t)(n_levels - c->n_levels) * sizeof(*level));
        c->level = level;
        c->n_levels = n_levels;
    }
    return SMM_OK;
}

static void add_exposure(struct smm_cascade *c, int64_t followers)
{
    c->exposure = followers > INT64_MAX - c->exposure ? INT64_MAX : c->exposure + followers;
}

int smm_cascade_add(struct smm_cascade *c, uint64_t node_key, uint64_t parent_key,
                    int64_t followers, int *attached_to_root_out)
{
    if (!c || node_key == 0 || followers < 0) {
        return SMM_ERR;
    }
    /* A key already stored is another share with the same id (event ids are not
     * deduplicated, docs/events.md): it counts like any share. The key keeps naming the
     * first one, so re-shares of that id attach there. */
    int repeat = lookup(c, node_key) != 0;
    c->repeats += repeat;
    if (c->n - 1 >= c->max_nodes) {
        /* Full: count it so size and exposure stay right, but keep no trace of it, which
         * is why a redelivered truncated share is counted again. */
        c->size++;
        c->truncated++;
        add_exposure(c, followers);
        if (attached_to_root_out) {
            *attached_to_root_out = 0;
        }
        return SMM_CASCADE_TRUNCATED;
    }
    int32_t p = parent_key != 0 ? lookup(c, parent_key) : 0;
    int orphan = parent_key != 0 && p == 0;

    /* depth(p) first (one read-only walk) so reserve() can size the level array before
     * anything changes; the second walk below does the update. */
    int64_t depth_p = 0;
    for (int32_t b = p; b != 0; b = c->parent[b]) {
        depth_p++;
    }
    if (reserve(c, depth_p + 1) != SMM_OK) {
        return SMM_ERR;
    }

    /* D(p) = D(root) + depth(p) n - 2 sum_{b on p..root, b != root} s_b, see DESIGN. */
    uint64_t n = (uint64_t)c->n;
    uint64_t s_sum = 0;
    for (int32_t b = p; b != 0; b = c->parent[b]) {
        s_sum += (uint64_t)c->subtree[b];
        c->subtree[b]++;
    }
    c->subtree[0]++;
    uint64_t d_p = c->depth_sum + (uint64_t)depth_p * n - 2 * s_sum;
    c->wiener += d_p + n;
    c->depth_sum += (uint64_t)(depth_p + 1);

    int32_t v = c->n++;
    c->key[v] = repeat ? 0 : node_key;
    c->parent[v] = p;
    c->subtree[v] = 1;
    if (!repeat) {
        slot_put(c->slots, c->n_slots, node_key, v);
    }

    int64_t depth_v = depth_p + 1;
    int64_t width = ++c->level[depth_v];
    if (depth_v > c->max_depth) {
        c->max_depth = depth_v;
    }
    if (width > c->max_breadth) {
        c->max_breadth = width;
        c->max_breadth_depth = depth_v;
    }
    c->size++;
    c->orphans += orphan;
    add_exposure(c, followers);
    if (attached_to_root_out) {
        *attached_to_root_out = orphan;
    }
    return SMM_OK;
}

double smm_cascade_virality(const struct smm_cascade *c)
{
    if (!c || c->n < 2) {
        return 0.0;
    }
    double n = (double)c->n;
    return 2.0 * (double)c->wiener / (n * (n - 1.0));
}

int64_t smm_cascade_size(const struct smm_cascade *c)
{
    return c ? c->size : 0;
}

void smm_cascade_snapshot(const struct smm_cascade *c, struct smm_cascade_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!c) {
        out->nodes = 1;
        return;
    }
    out->size = c->size;
    out->nodes = c->n;
    out->truncated = c->truncated;
    out->orphans = c->orphans;
    out->repeats = c->repeats;
    out->exposure = c->exposure;
    out->max_depth = c->max_depth;
    out->max_breadth = c->max_breadth;
    out->max_breadth_depth = c->max_breadth_depth;
    out->wiener = c->wiener;
    out->virality = smm_cascade_virality(c);
}

size_t smm_cascade_memory_bytes(const struct smm_cascade *c)
{
    if (!c) {
        return 0;
    }
    return sizeof(*c) +
           (size_t)c->cap * (sizeof(*c->key) + sizeof(*c->parent) + sizeof(*c->subtree)) +
           c->n_slots * sizeof(*c->slots) + (size_t)c->n_levels * sizeof(*c->level);
}
