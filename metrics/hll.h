/* metrics/hll.h - a HyperLogLog that reads and writes the string Redis keeps for PFADD.
 *
 * The processor counts reach (distinct users per post) for the posts it owns in memory and
 * stores the sketch into Redis as the very string PFADD would have built, so PFCOUNT,
 * PFMERGE and every reader keep working unchanged. smm_hll_count() is the estimate
 * PFCOUNT returns for the same registers, to the unit. metrics/hll.c has the design.
 *
 * THE REDIS STRING FORMAT (Redis 7.0, as documented atop its src/hyperloglog.c)
 *
 *  Hashing. An element (any bytes, empty allowed) is hashed with MurmurHash64A, seed
 *  0xadc83b19, reading 8-byte words little-endian on every host. The low 14 bits pick one
 *  of m = 16384 registers; the rank is 1 + the number of zero bits above them, counted
 *  from bit 14 upwards, at most 64 - 14 + 1 = 51. A register keeps the largest rank seen.
 *
 *  Header, 16 bytes: "HYLL", one encoding byte (0 dense, 1 sparse), three zero bytes, then
 *  a cached cardinality, uint64 little-endian. When the top bit of its last byte (byte 15)
 *  is set the cache is stale and PFCOUNT recomputes it (and writes it back into the key).
 *
 *  Dense, exactly 16 + 12288 bytes: 16384 6-bit registers packed from the least
 *  significant bit of byte 0 upwards; register i occupies bits 6i .. 6i+5 of the stream.
 *
 *  Sparse, 16 + n bytes: run-length opcodes covering exactly the 16384 registers in order.
 *    00xxxxxx           ZERO   1..64 registers at 0 (xxxxxx + 1)
 *    01xxxxxx yyyyyyyy  XZERO  1..16384 registers at 0 (the 14-bit number xxxxxxyyyyyyyy + 1)
 *    1vvvvvxx           VAL    1..4 registers (xx + 1) at value 1..32 (vvvvv + 1)
 *  A register above 32 cannot be written sparse. Redis starts every key sparse and turns it
 *  dense, for good, when a register exceeds 32 or when an update would make the string
 *  longer than hll-sparse-max-bytes (default 3000, header included).
 *
 *  Estimate: Ertl's improved estimator (arXiv:1702.01284) over the register histogram,
 *  rounded to the nearest integer.
 *
 * WHAT smm_hll_serialize() WRITES, AND WHEN IT EQUALS REDIS' BYTES
 *  Sparse when no register exceeds 32 and the sparse string is at most sparse_max_bytes
 *  long, else dense; dense also when the sketch holds a dense string loaded from Redis
 *  (or merged from one), because Redis never turns a dense key back. The cache is always
 *  marked stale with value 0 (bytes 8..15 = 00 .. 00 80), which is what a key built by
 *  PFADD alone holds; after one PFCOUNT Redis holds the count there instead.
 *  The sparse opcodes are canonical: each maximal run of zero registers is one ZERO (up to
 *  64) or one XZERO, and each run of equal non-zero registers is cut greedily from the left
 *  into VALs of 4 (the last one shorter). Redis' own sparse bytes depend on the order of
 *  the PFADDs only where 5 or more adjacent registers hold one value (added from the right,
 *  it cuts 5 as 1+4; it may also use more VALs than needed, so its string can be longer),
 *  and it turns dense when an intermediate string (before merging equal neighbours) would
 *  pass the limit, so it can turn dense a couple of bytes before the final string would.
 *  Hence: same registers always; the same bytes except in those two cases, where Redis is
 *  dense and ours sparse within a few bytes of the limit, or both sparse but split
 *  differently. PFCOUNT and PFMERGE do not depend on either choice.
 *  tests/integration/test_hll_redis.c checks these rules against redis-server 7.0.
 *
 * What smm_hll_load() accepts: a string as above with zero reserved bytes, a dense length of
 * exactly 12304, sparse opcodes that cover exactly 16384 registers (none running past the
 * end, no trailing or truncated opcode), and no register above 51 (a rank no hash can
 * produce). Anything else is refused. Redis itself is laxer on the last two points only.
 */
#ifndef SMM_METRICS_HLL_H
#define SMM_METRICS_HLL_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/event.h" /* SMM_OK, SMM_ERR */

#define SMM_HLL_REGISTERS    16384
#define SMM_HLL_HEADER_BYTES 16
/* Length of a dense string. */
#define SMM_HLL_DENSE_BYTES (SMM_HLL_HEADER_BYTES + SMM_HLL_REGISTERS * 6 / 8)
/* The longest string smm_hll_serialize() can write, whatever sparse_max_bytes (a sparse
 * string spends at most one byte per register). A buffer this long always suffices. */
#define SMM_HLL_SERIALIZED_MAX (SMM_HLL_HEADER_BYTES + SMM_HLL_REGISTERS)
/* Redis' default hll-sparse-max-bytes. */
#define SMM_HLL_SPARSE_MAX_BYTES 3000

/* One sketch. Small sketches are a sorted list of their non-zero registers (4 bytes each);
 * past a few thousand of them, one byte per register (16 KB). */
struct smm_hll;

/* An empty sketch (every register 0). Caller owns it; free it with smm_hll_destroy(),
 * which accepts NULL. Returns NULL when out of memory. */
struct smm_hll *smm_hll_new(void);
void smm_hll_destroy(struct smm_hll *h);

/* Adds len bytes at elem (elem may be NULL when len is 0; the bytes are not kept).
 * Returns 1 when a register grew, 0 when the sketch did not change: PFADD's reply for the
 * same element on the same registers. SMM_ERR when out of memory (nothing changed). */
int smm_hll_add(struct smm_hll *h, const void *elem, size_t len);

/* The register an element raises and by how much, (index << 8) | rank: smm_hll_add() is
 * smm_hll_add_position(h, smm_hll_position(elem, len)). Computed once, an element can go
 * into many sketches without its bytes being read again. */
uint32_t smm_hll_position(const void *elem, size_t len);
int smm_hll_add_position(struct smm_hll *h, uint32_t pos);

/* The estimate PFCOUNT gives for these registers. Cached until the next change. */
uint64_t smm_hll_count(struct smm_hll *h);

/* Register-wise maximum: dst becomes the union of dst and src (as PFMERGE). src is not
 * changed. Returns SMM_OK, or SMM_ERR when out of memory (dst unchanged). */
int smm_hll_merge(struct smm_hll *dst, const struct smm_hll *src);

/* Replaces h's registers with those of the Redis string buf[0..len) (GET of a PFADD key).
 * Returns SMM_OK, or SMM_ERR when the string is not valid (see above) or on out of memory;
 * then h is unchanged. Reads only buf[0..len). */
int smm_hll_load(struct smm_hll *h, const void *buf, size_t len);

/* Writes the Redis string for h's registers into buf (cap bytes; SMM_HLL_SERIALIZED_MAX
 * always suffice): sparse when it fits sparse_max_bytes (Redis' hll-sparse-max-bytes,
 * SMM_HLL_SPARSE_MAX_BYTES by default), else dense; see the rules above. Returns SMM_OK
 * and sets *len, or SMM_ERR when cap is too small (buf contents then undefined). */
int smm_hll_serialize(const struct smm_hll *h, size_t sparse_max_bytes, void *buf, size_t cap,
                      size_t *len);

/* Register idx (0 .. SMM_HLL_REGISTERS-1), 0 for an index out of range. */
unsigned smm_hll_register(const struct smm_hll *h, unsigned idx);

/* Heap bytes held by h, struct included (for sizing the processor). */
size_t smm_hll_memory(const struct smm_hll *h);

#endif
