/* tests/unit/test_virality.c - share cascade tracker (metrics/virality.c).
 *
 * The incremental Wiener index is checked against values computed here from scratch:
 * closed forms for the star and the chain, all-pairs BFS on random trees of up to 300
 * nodes (after every insertion), and the edge formula W = sum_b s_b (n - s_b) on a large
 * random tree. The last tests pin the definitions the user docs give (docs/viral.md,
 * docs/redis-keys.md): a direct share has depth 1, the post counts as a node of the tree,
 * and smm:v stores virality to 6 significant digits (through the processor's encoder, so
 * this binary links smm_core). */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/virality.h"
#include "processor/pipeline.h"

static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static struct smm_cascade *new_cascade(int max_nodes)
{
    char err[128] = "";
    struct smm_cascade *c = smm_cascade_new(max_nodes, err, sizeof(err));
    cr_assert_not_null(c, "smm_cascade_new: %s", err);
    return c;
}

/* Node key of test node i (i >= 1): distinct, nonzero, sharing low bits on purpose. */
static uint64_t key_of(int i)
{
    return ((uint64_t)i << 40) | 0x5ull;
}

static void check_close(double got, double want, const char *what)
{
    cr_assert(fabs(got - want) <= 1e-12 * fabs(want) + 1e-15, "%s: got %.17g, want %.17g", what,
              got, want);
}

Test(virality, empty_root_only)
{
    struct smm_cascade *c = new_cascade(10);
    struct smm_cascade_stats st;
    smm_cascade_snapshot(c, &st);
    cr_assert_eq(st.size, 0);
    cr_assert_eq(st.nodes, 1);
    cr_assert_eq(st.max_depth, 0);
    cr_assert_eq(st.max_breadth, 0);
    cr_assert_eq(st.wiener, 0);
    cr_assert_eq(st.virality, 0.0);
    cr_assert_eq(smm_cascade_virality(c), 0.0);
    smm_cascade_destroy(c);
}

Test(virality, star)
{
    struct smm_cascade *c = new_cascade(1000);
    for (int i = 1; i <= 500; i++) {
        cr_assert_eq(smm_cascade_add(c, key_of(i), 0, 10, NULL), SMM_OK);
        uint64_t n = (uint64_t)i + 1; /* nodes, root included */
        struct smm_cascade_stats st;
        smm_cascade_snapshot(c, &st);
        cr_assert_eq(st.nodes, (int64_t)n);
        cr_assert_eq(st.wiener, (n - 1) * (n - 1), "star W at n=%llu", (unsigned long long)n);
        check_close(st.virality, 2.0 * (double)(n - 1) / (double)n, "star nu");
        cr_assert_eq(st.max_depth, 1);
        cr_assert_eq(st.max_breadth, i);
    }
    smm_cascade_destroy(c);
}

Test(virality, chain)
{
    struct smm_cascade *c = new_cascade(1000);
    for (int i = 1; i <= 500; i++) {
        cr_assert_eq(smm_cascade_add(c, key_of(i), i == 1 ? 0 : key_of(i - 1), 1, NULL), SMM_OK);
        uint64_t n = (uint64_t)i + 1;
        struct smm_cascade_stats st;
        smm_cascade_snapshot(c, &st);
        cr_assert_eq(st.wiener, (n * n * n - n) / 6, "chain W at n=%llu", (unsigned long long)n);
        check_close(st.virality, (double)(n + 1) / 3.0, "chain nu");
        cr_assert_eq(st.max_depth, i);
        cr_assert_eq(st.max_breadth, 1);
    }
    smm_cascade_destroy(c);
}

/* All-pairs BFS over the test's own copy of the tree (parent[0] = -1 is the root). */
static uint64_t brute_wiener(const int *parent, int n)
{
    int *head = malloc((size_t)n * sizeof(int));
    int *next = malloc((size_t)(2 * n) * sizeof(int));
    int *to = malloc((size_t)(2 * n) * sizeof(int));
    int *dist = malloc((size_t)n * sizeof(int));
    int *queue = malloc((size_t)n * sizeof(int));
    cr_assert(head && next && to && dist && queue);
    int n_edges = 0;
    for (int v = 0; v < n; v++) {
        head[v] = -1;
    }
    for (int v = 1; v < n; v++) {
        int u = parent[v];
        to[n_edges] = v, next[n_edges] = head[u], head[u] = n_edges++;
        to[n_edges] = u, next[n_edges] = head[v], head[v] = n_edges++;
    }
    uint64_t total = 0;
    for (int src = 0; src < n; src++) {
        for (int v = 0; v < n; v++) {
            dist[v] = -1;
        }
        int qh = 0, qt = 0;
        dist[src] = 0;
        queue[qt++] = src;
        while (qh < qt) {
            int u = queue[qh++];
            total += (uint64_t)dist[u];
            for (int e = head[u]; e != -1; e = next[e]) {
                if (dist[to[e]] < 0) {
                    dist[to[e]] = dist[u] + 1;
                    queue[qt++] = to[e];
                }
            }
        }
        cr_assert_eq(qt, n, "test tree is disconnected");
    }
    free(queue);
    free(dist);
    free(to);
    free(next);
    free(head);
    return total / 2; /* every pair was counted from both ends */
}

enum shape { UNIFORM, DEEP, BUSHY };

static int pick_parent(enum shape shape, int n, uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    switch (shape) {
    case DEEP: /* one of the 3 newest nodes: long chains with side branches */
        return n - 1 - (int)(r % (uint64_t)(n < 3 ? n : 3));
    case BUSHY: /* the root or one of its first 4 children: broadcasts */
        return (int)(r % (uint64_t)(n < 5 ? n : 5));
    default: /* random recursive tree */
        return (int)(r % (uint64_t)n);
    }
}

Test(virality, random_trees_match_all_pairs_bfs)
{
    static const uint64_t seeds[] = {1, 2, 3, 42, 20240601};
    static const enum shape shapes[] = {UNIFORM, DEEP, BUSHY};
    enum { MAX_N = 300 };
    int parent[MAX_N], depth[MAX_N], width[MAX_N];
    for (size_t si = 0; si < sizeof(seeds) / sizeof(seeds[0]); si++) {
        for (size_t hi = 0; hi < sizeof(shapes) / sizeof(shapes[0]); hi++) {
            uint64_t rng = seeds[si];
            int size = 50 + (int)(rng_next(&rng) % (MAX_N - 50)); /* nodes incl. root */
            struct smm_cascade *c = new_cascade(MAX_N);
            parent[0] = -1;
            depth[0] = 0;
            memset(width, 0, sizeof(width));
            int64_t exposure = 0, max_depth = 0, max_breadth = 0;
            for (int v = 1; v < size; v++) {
                int p = pick_parent(shapes[hi], v, &rng);
                int64_t followers = (int64_t)(rng_next(&rng) % 100000);
                int orphan = -1;
                cr_assert_eq(
                    smm_cascade_add(c, key_of(v), p == 0 ? 0 : key_of(p), followers, &orphan),
                    SMM_OK);
                cr_assert_eq(orphan, 0);
                parent[v] = p;
                depth[v] = depth[p] + 1;
                width[depth[v]]++;
                exposure += followers;
                max_depth = depth[v] > max_depth ? depth[v] : max_depth;
                max_breadth = width[depth[v]] > max_breadth ? width[depth[v]] : max_breadth;

                int n = v + 1;
                uint64_t w = brute_wiener(parent, n);
                struct smm_cascade_stats st;
                smm_cascade_snapshot(c, &st);
                cr_assert_eq(st.wiener, w, "seed %llu shape %d n %d: W %llu, BFS %llu",
                             (unsigned long long)seeds[si], (int)shapes[hi], n,
                             (unsigned long long)st.wiener, (unsigned long long)w);
                check_close(st.virality, 2.0 * (double)w / ((double)n * (n - 1)), "nu vs BFS");
                cr_assert_eq(st.size, v);
                cr_assert_eq(st.nodes, n);
                cr_assert_eq(st.exposure, exposure);
                cr_assert_eq(st.max_depth, max_depth);
                cr_assert_eq(st.max_breadth, max_breadth);
            }
            smm_cascade_destroy(c);
        }
    }
}

Test(virality, large_random_tree_matches_edge_formula)
{
    enum { N = 200001 }; /* nodes incl. root */
    int *parent = malloc(N * sizeof(int));
    int64_t *sub = malloc(N * sizeof(int64_t));
    cr_assert(parent && sub);
    struct smm_cascade *c = new_cascade(N - 1);
    uint64_t rng = 7;
    parent[0] = -1;
    for (int v = 1; v < N; v++) {
        parent[v] = (int)(rng_next(&rng) % (uint64_t)v);
        /* raw 64-bit keys, as the caller's hashes would be */
        cr_assert_eq(smm_cascade_add(
                         c, 0x1000000000000000ull + (uint64_t)v * 0x10000,
                         parent[v] == 0 ? 0 : 0x1000000000000000ull + (uint64_t)parent[v] * 0x10000,
                         1, NULL),
                     SMM_OK);
    }
    /* W = sum over edges (parent(b), b) of s_b (n - s_b): the pairs the edge separates. */
    for (int v = 0; v < N; v++) {
        sub[v] = 1;
    }
    for (int v = N - 1; v >= 1; v--) {
        sub[parent[v]] += sub[v];
    }
    uint64_t w = 0;
    for (int v = 1; v < N; v++) {
        w += (uint64_t)sub[v] * (uint64_t)(N - sub[v]);
    }
    struct smm_cascade_stats st;
    smm_cascade_snapshot(c, &st);
    cr_assert_eq(st.wiener, w);
    cr_assert_eq(st.nodes, N);
    cr_assert_eq(st.truncated, 0);
    /* documented bound: 36 bytes per (max_nodes + 1) plus a small header */
    size_t mem = smm_cascade_memory_bytes(c);
    cr_assert_leq(mem, (size_t)36 * N + 256, "memory %zu", mem);
    cr_log_info("200000-share random tree: nu = %.4f, %zu bytes (%.1f per node)\n", st.virality,
                mem, (double)mem / N);
    smm_cascade_destroy(c);
    free(sub);
    free(parent);
}

Test(virality, depth_breadth_exposure_by_hand)
{
    /*        root
     *       /    \
     *      a      b          depth 1: a b       (2)
     *     / \      \
     *    c   d      f        depth 2: c d f     (3)
     *    |
     *    e                   depth 3: e         (1)
     */
    struct smm_cascade *c = new_cascade(100);
    cr_assert_eq(smm_cascade_add(c, 'a', 0, 100, NULL), SMM_OK);
    cr_assert_eq(smm_cascade_add(c, 'b', 0, 2000, NULL), SMM_OK);
    cr_assert_eq(smm_cascade_add(c, 'c', 'a', 30, NULL), SMM_OK);
    cr_assert_eq(smm_cascade_add(c, 'd', 'a', 4, NULL), SMM_OK);
    cr_assert_eq(smm_cascade_add(c, 'f', 'b', 0, NULL), SMM_OK);
    cr_assert_eq(smm_cascade_add(c, 'e', 'c', 500000, NULL), SMM_OK);
    struct smm_cascade_stats st;
    smm_cascade_snapshot(c, &st);
    cr_assert_eq(st.size, 6);
    cr_assert_eq(st.nodes, 7);
    cr_assert_eq(st.max_depth, 3);
    cr_assert_eq(st.max_breadth, 3);
    cr_assert_eq(st.max_breadth_depth, 2);
    cr_assert_eq(st.exposure, 100 + 2000 + 30 + 4 + 0 + 500000);
    /* W by hand: edge a (subtree 4): 4*3; b (2): 2*5; c (2): 2*5; d, e, f (1): 1*6 each */
    cr_assert_eq(st.wiener, 12 + 10 + 10 + 6 + 6 + 6);
    check_close(st.virality, 2.0 * 50 / (7.0 * 6.0), "hand nu");
    cr_assert_eq(st.orphans, 0);
    smm_cascade_destroy(c);
}

Test(virality, unknown_parent_attaches_to_root)
{
    struct smm_cascade *c = new_cascade(100);
    int orphan = -1;
    cr_assert_eq(smm_cascade_add(c, 11, 0, 5, &orphan), SMM_OK);
    cr_assert_eq(orphan, 0, "a direct share of the post is not an orphan");
    cr_assert_eq(smm_cascade_add(c, 12, 11, 5, &orphan), SMM_OK);
    cr_assert_eq(orphan, 0);
    /* parent 99 was never seen (or arrives later): goes under the root, reported */
    cr_assert_eq(smm_cascade_add(c, 13, 99, 7, &orphan), SMM_OK);
    cr_assert_eq(orphan, 1);
    /* a share of the orphan is an ordinary child of it */
    cr_assert_eq(smm_cascade_add(c, 14, 13, 1, &orphan), SMM_OK);
    cr_assert_eq(orphan, 0);
    /* the late parent itself is just another share of the post; 13 stays under the root */
    cr_assert_eq(smm_cascade_add(c, 99, 0, 1, &orphan), SMM_OK);
    cr_assert_eq(orphan, 0);
    struct smm_cascade_stats st;
    smm_cascade_snapshot(c, &st);
    cr_assert_eq(st.orphans, 1);
    cr_assert_eq(st.size, 5);
    cr_assert_eq(st.max_depth, 2);
    cr_assert_eq(st.max_breadth, 3); /* 11, 13, 99 at depth 1 */
    /* tree: root-{11,13,99}, 11-12, 13-14: edges 11 (2*4), 13 (2*4), 99, 12, 14 (1*5) */
    cr_assert_eq(st.wiener, 8 + 8 + 5 + 5 + 5);
    cr_assert_eq(st.exposure, 19);
    smm_cascade_destroy(c);
}

Test(virality, truncation_keeps_counting)
{
    struct smm_cascade *c = new_cascade(3);
    int orphan = -1;
    cr_assert_eq(smm_cascade_add(c, 1, 0, 10, &orphan), SMM_OK);
    cr_assert_eq(smm_cascade_add(c, 2, 1, 20, &orphan), SMM_OK);
    cr_assert_eq(smm_cascade_add(c, 3, 2, 30, &orphan), SMM_OK);
    struct smm_cascade_stats before;
    smm_cascade_snapshot(c, &before);
    cr_assert_eq(before.wiener, 10); /* chain of 4 nodes: (64 - 4)/6 */

    orphan = -1;
    cr_assert_eq(smm_cascade_add(c, 4, 3, 40, &orphan), SMM_CASCADE_TRUNCATED);
    cr_assert_eq(orphan, 0);
    cr_assert_eq(smm_cascade_add(c, 5, 0, 50, NULL), SMM_CASCADE_TRUNCATED);
    /* a share of a truncated share cannot be placed either */
    cr_assert_eq(smm_cascade_add(c, 6, 4, 60, NULL), SMM_CASCADE_TRUNCATED);
    /* a stored key sent again is one more share: counted, not stored when full */
    cr_assert_eq(smm_cascade_add(c, 2, 1, 20, NULL), SMM_CASCADE_TRUNCATED);

    struct smm_cascade_stats st;
    smm_cascade_snapshot(c, &st);
    cr_assert_eq(st.size, 7);
    cr_assert_eq(st.truncated, 4);
    cr_assert_eq(st.repeats, 1);
    cr_assert_eq(st.nodes, 4);
    cr_assert_eq(st.exposure, 10 + 20 + 30 + 40 + 50 + 60 + 20);
    cr_assert_eq(st.wiener, before.wiener, "the stored tree does not change");
    cr_assert_eq(st.virality, before.virality);
    cr_assert_eq(st.max_depth, 3);
    cr_assert_eq(smm_cascade_size(c), 7);
    smm_cascade_destroy(c);
}

/* Event ids are not deduplicated (docs/events.md): a share whose key is already stored is
 * another share, stored under its own parent, while the key keeps naming the first one.
 * Tree: root-1, 1-2, root-1' (the repeat), 2-3 and 1-4 (re-shares of "1" go to the first).
 * Distances: 1-2 1, 1-1' 2, 1-3 2, 1-4 1, 2-1' 3, 2-3 1, 2-4 2, 1'-3 4, 1'-4 3, 3-4 3, plus
 * the root's 1 + 2 + 1 + 3 + 2 = 9: W = 22 + 9 = 31. */
Test(virality, repeated_key_is_another_share)
{
    struct smm_cascade *c = new_cascade(10);
    int orphan = 7;
    cr_assert_eq(smm_cascade_add(c, 1, 0, 10, NULL), SMM_OK);
    cr_assert_eq(smm_cascade_add(c, 2, 1, 20, NULL), SMM_OK);
    cr_assert_eq(smm_cascade_add(c, 1, 0, 10, &orphan), SMM_OK);
    cr_assert_eq(orphan, 0);
    cr_assert_eq(smm_cascade_add(c, 3, 2, 30, NULL), SMM_OK);
    cr_assert_eq(smm_cascade_add(c, 4, 1, 40, &orphan), SMM_OK);
    cr_assert_eq(orphan, 0, "a re-share of the repeated id attaches to the first share");
    struct smm_cascade_stats st;
    smm_cascade_snapshot(c, &st);
    cr_assert_eq(st.size, 5);
    cr_assert_eq(st.nodes, 6);
    cr_assert_eq(st.repeats, 1);
    cr_assert_eq(st.exposure, 110);
    cr_assert_eq(st.max_depth, 3);
    cr_assert_eq(st.max_breadth, 2);
    cr_assert_eq(st.wiener, 31);
    smm_cascade_destroy(c);
}

Test(virality, bad_arguments)
{
    char err[128] = "";
    cr_assert_null(smm_cascade_new(0, err, sizeof(err)));
    cr_assert(strstr(err, "max_nodes") != NULL, "errstr: %s", err);
    cr_assert_null(smm_cascade_new(SMM_CASCADE_MAX_NODES_LIMIT + 1, err, sizeof(err)));
    cr_assert_null(smm_cascade_new(-1, NULL, 0));
    smm_cascade_destroy(NULL);

    struct smm_cascade *c = new_cascade(10);
    int orphan = 7;
    cr_assert_eq(smm_cascade_add(c, 0, 0, 1, &orphan), SMM_ERR, "key 0 is the root");
    cr_assert_eq(smm_cascade_add(c, 1, 0, -1, &orphan), SMM_ERR, "negative followers");
    cr_assert_eq(smm_cascade_add(NULL, 1, 0, 1, &orphan), SMM_ERR);
    cr_assert_eq(orphan, 7);
    struct smm_cascade_stats st;
    smm_cascade_snapshot(c, &st);
    cr_assert_eq(st.size, 0);
    cr_assert_eq(st.nodes, 1);
    cr_assert_eq(smm_cascade_add(c, 5, 5, 1, &orphan), SMM_OK, "self-parent: not yet present");
    cr_assert_eq(orphan, 1);
    smm_cascade_destroy(c);
}

Test(virality, exposure_saturates)
{
    struct smm_cascade *c = new_cascade(10);
    cr_assert_eq(smm_cascade_add(c, 1, 0, INT64_MAX - 5, NULL), SMM_OK);
    cr_assert_eq(smm_cascade_add(c, 2, 0, 100, NULL), SMM_OK);
    struct smm_cascade_stats st;
    smm_cascade_snapshot(c, &st);
    cr_assert_eq(st.exposure, INT64_MAX);
    smm_cascade_destroy(c);
}

/* docs/viral.md: depth counts share hops from the post, so a direct share has depth 1 and
 * a re-share of it depth 2; structural virality counts the post as a node, so the post
 * with one direct share is two nodes one hop apart: 1.0. */
Test(virality, documented_definitions)
{
    struct smm_cascade *c = new_cascade(10);
    struct smm_cascade_stats st;
    cr_assert_eq(smm_cascade_add(c, key_of(1), 0, 0, NULL), SMM_OK);
    smm_cascade_snapshot(c, &st);
    cr_assert_eq(st.size, 1, "one share");
    cr_assert_eq(st.nodes, 2, "the post and its share");
    cr_assert_eq(st.max_depth, 1, "a direct share has depth 1");
    cr_assert_eq(st.virality, 1.0, "post + 1 share: 2 nodes at distance 1");
    cr_assert_eq(smm_cascade_add(c, key_of(2), key_of(1), 0, NULL), SMM_OK);
    smm_cascade_snapshot(c, &st);
    cr_assert_eq(st.max_depth, 2, "a re-share of a direct share has depth 2");
    check_close(st.virality, 4.0 / 3.0, "chain of 3 nodes: (1 + 1 + 2) / 3 pairs");
    smm_cascade_destroy(c);
}

/* The value of field `name` in the viral section the processor sends for one post. */
static void encoded_field(const struct smm_cascade_stats *st, const char *name, char *out,
                          size_t size)
{
    char err[256] = "";
    struct smm_config cfg;
    cr_assert_eq(smm_config_init(&cfg, err, sizeof(err)), SMM_OK, "%s", err);
    cr_assert_eq(smm_config_set(&cfg, "kafka.bootstrap.servers", "x:1", "test", err,
                                sizeof(err)),
                 SMM_OK, "%s", err);
    cr_assert_eq(smm_config_finish(&cfg, err, sizeof(err)), SMM_OK, "%s", err);
    struct smm_pipeline *pipe = smm_pipeline_new(&cfg, err, sizeof(err));
    cr_assert_not_null(pipe, "%s", err);
    struct smm_viral_signals s;
    memset(&s, 0, sizeof(s));
    s.content_id = "post-1";
    s.account_id = "acct-1";
    s.has_cascade = 1;
    s.cascade = *st;
    struct smm_argv av;
    smm_argv_init(&av);
    cr_assert_eq(smm_pipeline_encode_viral(pipe, 1795665103000LL, 0, &s, 1, &av), SMM_OK);
    out[0] = '\0';
    for (int i = 0; i + 1 < av.n; i++) {
        size_t len;
        const char *a = smm_argv_get(&av, i, &len);
        if (len == strlen(name) && memcmp(a, name, len) == 0) {
            const char *v = smm_argv_get(&av, i + 1, &len);
            snprintf(out, size, "%.*s", (int)len, v);
            break;
        }
    }
    smm_argv_free(&av);
    smm_pipeline_destroy(pipe);
    smm_config_free(&cfg);
}

/* docs/redis-keys.md: smm:v:<id> virality holds 6 significant digits; depth is whole. */
Test(virality, stored_precision)
{
    struct smm_cascade *c = new_cascade(10);
    for (int i = 1; i <= 5; i++) {
        cr_assert_eq(smm_cascade_add(c, key_of(i), i > 1 ? key_of(i - 1) : 0, 0, NULL), SMM_OK);
    }
    struct smm_cascade_stats st;
    smm_cascade_snapshot(c, &st);
    check_close(st.virality, 7.0 / 3.0, "chain of 6 nodes: (n + 1) / 3");
    char got[64];
    encoded_field(&st, "virality", got, sizeof(got));
    cr_assert_str_eq(got, "2.33333");
    encoded_field(&st, "depth", got, sizeof(got));
    cr_assert_str_eq(got, "5");
    smm_cascade_destroy(c);
}
