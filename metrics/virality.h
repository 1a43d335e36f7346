/* metrics/virality.h - the share cascade (diffusion tree) of one piece of content.
 *
 * The tree's root is the original post; each share is a node under the share it was
 * made from (or under the root). Per cascade we keep, updated in O(depth) per share and
 * never recomputed (see metrics/virality.c):
 *
 *   size                 shares counted, the root excluded (stored + truncated)
 *   nodes                n = nodes in the stored tree INCLUDING the root = 1 + stored shares
 *   max_depth            largest depth of a stored node; the root has depth 0, a direct
 *                        share of the post depth 1
 *   max_breadth          largest generation: max over depth d >= 1 of the number of stored
 *                        nodes at depth d (0 while there is no share)
 *   exposure             sum of the sharers' follower counts over all counted shares
 *                        (truncated ones included; the author's own followers are not in it)
 *   wiener               W = sum over unordered node pairs {i, j} of the tree distance d_ij
 *   virality             structural virality (Goel, Anderson, Hofman, Watts, Management
 *                        Science 62(1), 2016):
 *                            nu = 1/(n(n-1)) x sum_i sum_{j != i} d_ij = 2W / (n(n-1))
 *                        with n counting every node of the tree, the root included, as in
 *                        the paper; nu = 0 when n < 2. A star of n nodes (root + n-1
 *                        direct shares) gives 2(n-1)/n, a chain of n nodes (n+1)/3.
 *
 * Depth, breadth, W and nu describe the stored tree only; size and exposure count every
 * share. A share whose parent is not in the tree (never seen, seen later, or dropped by
 * truncation) is attached to the root. That usually lowers nu (the root is normally the
 * tree's hub) but is not a bound: D(root) can exceed D(true parent) in a long chain.
 *
 * Memory: bounded by max_nodes, the largest number of shares stored as nodes. Once it is
 * reached, further shares still count in size and exposure (and in `truncated`) but are
 * not added to the tree, so every figure stays defined. Per stored node the cascade uses
 * 16 bytes (key 8, parent index 4, subtree size 4), plus 4 bytes per hash slot (2 to 4
 * slots per node: the table is a power of two kept at most half full) and 4 bytes per
 * depth level (at most one per node). The node and level arrays grow by doubling and never
 * beyond max_nodes + 1 entries, the hash table to at most 4 x (max_nodes + 1) slots, so a
 * cascade holds at most about
 *     16 x (max_nodes + 1) + 4 x 4 x (max_nodes + 1) + 4 x (max_nodes + 1) = 36 x (max_nodes + 1)
 * bytes plus a fixed header of 152 bytes (x86-64); smm_cascade_memory_bytes() reports the
 * current figure. A new cascade (no share yet) holds 376 bytes: header plus initial arrays
 * for 8 nodes, 16 slots and 8 levels. Measured on a random 200,000-share tree: 26.5 bytes
 * per node.
 *
 * Not thread-safe: one cascade is owned by one thread (the processor's loop). */
#ifndef SMM_METRICS_VIRALITY_H
#define SMM_METRICS_VIRALITY_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/event.h"

/* smm_cascade_add() results besides SMM_OK and SMM_ERR. */
#define SMM_CASCADE_TRUNCATED 1 /* counted in size and exposure, not stored (tree full) */

/* Largest accepted max_nodes. Keeps W below 2^64: W is largest for a chain, where
 * W = (n^3 - n)/6, and n = 4,000,001 gives about 1.07e19 < 1.8e19. */
#define SMM_CASCADE_MAX_NODES_LIMIT 4000000

struct smm_cascade; /* opaque; see metrics/virality.c */

/* A consistent snapshot of one cascade (see the definitions above). */
struct smm_cascade_stats {
    int64_t size;              /* shares counted, root excluded: stored + truncated */
    int64_t nodes;             /* n: stored tree nodes, root included (>= 1) */
    int64_t truncated;         /* shares counted but not stored because the tree was full */
    int64_t orphans;           /* stored shares whose nonzero parent_key was unknown */
    int64_t repeats;           /* shares whose key was already stored (counted all the same) */
    int64_t exposure;          /* sum of followers over counted shares (saturates at INT64_MAX) */
    int64_t max_depth;         /* 0 for the root alone */
    int64_t max_breadth;       /* widest generation (depth >= 1); 0 without shares */
    int64_t max_breadth_depth; /* the depth of the first generation reaching max_breadth */
    uint64_t wiener;           /* W of the stored tree */
    double virality;           /* nu = 2W / (n(n-1)), 0 when n < 2 */
};

/* Creates an empty cascade (the root alone). max_nodes: most shares stored as nodes,
 * 1..SMM_CASCADE_MAX_NODES_LIMIT. Caller owns the result; free it with
 * smm_cascade_destroy(), which accepts NULL. Returns NULL and writes the reason into
 * errstr (when errstr_size > 0) on a bad max_nodes or out of memory. */
struct smm_cascade *smm_cascade_new(int max_nodes, char *errstr, size_t errstr_size);
void smm_cascade_destroy(struct smm_cascade *c);

/* Adds one share. node_key identifies the share (a 64-bit hash of its event id chosen by
 * the caller; 0 is reserved for the root and refused). parent_key is the key of the share
 * it was made from, or 0 when it shares the original post. Every call is one share: a
 * node_key already stored (the same event id sent twice) is counted and stored again,
 * under its own parent_key, and counted in `repeats`; the key keeps naming the first
 * share with it (the parent of later re-shares). Callers feed each Kafka message once:
 * a re-read is theirs to skip (processor/loop.c). followers: the sharer's
 * follower count, >= 0. O(depth of the parent) time.
 *
 * Returns:
 *  SMM_OK                 stored. *attached_to_root_out (may be NULL) is set to 1 when
 *                         parent_key was nonzero but not in the tree, so the share went
 *                         under the root (counted in `orphans`), else 0.
 *  SMM_CASCADE_TRUNCATED  the tree already holds max_nodes shares: counted in size,
 *                         exposure and `truncated`, not stored; *attached_to_root_out = 0.
 *  SMM_ERR                c NULL, node_key 0, followers < 0, or out of memory: nothing
 *                         changes, out-parameter untouched. */
int smm_cascade_add(struct smm_cascade *c, uint64_t node_key, uint64_t parent_key,
                    int64_t followers, int *attached_to_root_out);

/* Fills *out with the current figures. O(1). */
void smm_cascade_snapshot(const struct smm_cascade *c, struct smm_cascade_stats *out);

/* Structural virality nu = 2W / (n(n-1)) of the stored tree (n includes the root);
 * 0 when n < 2. O(1). */
double smm_cascade_virality(const struct smm_cascade *c);

/* Shares counted (root excluded, truncated included). */
int64_t smm_cascade_size(const struct smm_cascade *c);

/* Bytes currently allocated for this cascade, header included. */
size_t smm_cascade_memory_bytes(const struct smm_cascade *c);

#endif
