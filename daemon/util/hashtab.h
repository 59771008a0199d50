/* hashtab.h - FNV-1a 64 and a fixed-size open-addressing index.
 *
 * Every table the daemon looks names up in (GGUF keys and tensors,
 * safetensors tensors, a tokenizer's vocabulary and merges) is filled once
 * at load and only read afterwards, and its entries already live in an
 * array the caller owns.  So the index stores no keys, only entry numbers:
 * a power-of-two array of int32 slots, each an entry number (0..) or -1
 * (empty), probed linearly from a home slot chosen by the key's hash.  The
 * caller supplies the hash and an equality callback that compares the key
 * it looks for with entry e of its own array; nothing is allocated after
 * smk_hindex_init(), and a lookup is a handful of instructions plus the
 * callback (static inline, so a constant callback is inlined as well: the
 * tokenizer's per-token lookups go through here).
 *
 * Contract:
 *  - smk_hindex_init(x, max) sizes the slots for max entries with at least
 *    twice as many slots, so a probe always ends at an empty slot and the
 *    load factor stays at 1/2 or below.  A put beyond max is refused (-1):
 *    the caller sized the index, so that is its bug to report.
 *  - hash is any 64-bit hash of the key (smk_fnv1a64 for bytes); the index
 *    mixes it before masking, so hashes with weak low bits spread well.
 *    Equal keys must have equal hashes.
 *  - eq(key, e) is called only with entries already put, and must answer
 *    whether entry e's key equals *key.  It must not modify the index.
 *  - A zeroed struct (or one after smk_hindex_deinit) is a valid empty
 *    index for smk_hindex_find, which then returns -1; puts need init.
 *  - Not thread-safe for puts; concurrent finds on a built index are fine
 *    (they only read).
 */
#ifndef SMK_UTIL_HASHTAB_H
#define SMK_UTIL_HASHTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* FNV-1a 64 over len bytes (offset basis 0xcbf29ce484222325, prime
 * 0x100000001b3): fnv1a64("") = 0xcbf29ce484222325. */
static inline uint64_t smk_fnv1a64(const void *bytes, size_t len)
{
	const uint8_t *p = bytes;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* The same over a NUL-terminated string (without its NUL). */
static inline uint64_t smk_fnv1a64_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return h;
}

/* The most entries an index can be sized for: slots stay int32, and twice
 * the entries rounded up to a power of two must fit in a uint32 mask. */
#define SMK_HINDEX_MAX (1u << 30)

struct smk_hindex {
	int32_t *slot;          /* mask + 1 slots: an entry number, -1 = empty */
	uint32_t mask;          /* slots - 1; slots a power of two >= 2 * max */
	uint32_t n;             /* entries put */
	uint32_t max;           /* entries it was sized for */
};

/* Does caller entry e hold the key *key? */
typedef bool smk_hindex_eq_fn(const void *key, int32_t e);

/* Size x for up to max entries (at least 16 slots) and empty it.  Returns 0,
 * -E2BIG if max > SMK_HINDEX_MAX, or -ENOMEM; on failure x is zeroed.  The
 * index owns its slots until smk_hindex_deinit(). */
int smk_hindex_init(struct smk_hindex *x, uint64_t max);

/* Free the slots and zero x (a no-op on a zeroed x; safe to repeat). */
void smk_hindex_deinit(struct smk_hindex *x);

/* The home slot of hash: a final mix (xorshift-multiply, from splitmix64)
 * so that every bit of the hash reaches the masked low bits. */
static inline uint32_t smk_hindex_home(const struct smk_hindex *x, uint64_t hash)
{
	hash ^= hash >> 29;
	hash *= 0xbf58476d1ce4e5b9ull;
	hash ^= hash >> 32;
	return (uint32_t)hash & x->mask;
}

/* The slot holding an entry equal to key, or the empty slot where it would
 * go.  Terminates because at most half the slots are ever full. */
static inline int32_t *smk_hindex_slot(const struct smk_hindex *x, uint64_t hash,
				       smk_hindex_eq_fn *eq, const void *key)
{
	for (uint32_t i = smk_hindex_home(x, hash);; i = (i + 1) & x->mask) {
		int32_t e = x->slot[i];
		if (e < 0 || eq(key, e))
			return &x->slot[i];
	}
}

/* The entry equal to key, or -1 if none. */
static inline int32_t smk_hindex_find(const struct smk_hindex *x, uint64_t hash,
				      smk_hindex_eq_fn *eq, const void *key)
{
	return x->slot ? *smk_hindex_slot(x, hash, eq, key) : -1;
}

/* Put entry e (>= 0) under key.  Returns e once it is in; the entry already
 * there if an equal key was put before (which stays: the first one wins);
 * or -1, changing nothing, if x already holds the max entries it was sized
 * for. */
static inline int32_t smk_hindex_put(struct smk_hindex *x, uint64_t hash, smk_hindex_eq_fn *eq,
				     const void *key, int32_t e)
{
	int32_t *s = smk_hindex_slot(x, hash, eq, key);
	if (*s >= 0)
		return *s;
	if (x->n >= x->max)
		return -1;
	*s = e;
	x->n++;
	return e;
}

#endif
