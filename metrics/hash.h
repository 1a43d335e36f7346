/* metrics/hash.h - a fast 64-bit non-cryptographic hash for keys such as user ids.
 *
 * smm_hash64() maps a byte string to 64 bits that behave like random bits for counting
 * sketches (metrics/reach_window.h splits one hash into a register index and a rank) and
 * hash tables. smm_hash64_u64() is its finaliser on its own: a bijection of uint64_t that
 * turns structured integers (sequential ids, keys differing only in high bits) into
 * well-spread values, without ever mapping two keys to one.
 *
 * Not cryptographic: anyone who knows the function can build colliding keys, so do not
 * use it where an adversary chooses keys and a collision does harm (a flooded hash table,
 * a forged identity). Distinct counting is only skewed by such input, not broken.
 * The design, constants and measured quality are described in metrics/hash.c. */
#ifndef SMM_METRICS_HASH_H
#define SMM_METRICS_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Hash of len bytes at data (data may be NULL when len is 0). The result depends on the
 * bytes and len only: not on alignment, the host's byte order or a per-process seed, so
 * it is stable across runs and machines. About 1.2 ns for 16 bytes (x86-64, -O2). */
uint64_t smm_hash64(const void *data, size_t len);

/* The finaliser of smm_hash64(): a bijection (distinct inputs give distinct outputs)
 * with full avalanche; smm_hash64_u64(0) == 0. */
uint64_t smm_hash64_u64(uint64_t x);

#endif
