/* extent.h - first-fit placement of variable-size extents in one region of
 * fixed size, with coalescing on release.
 *
 * The allocator only does bookkeeping, in byte offsets from the region's
 * start: it never touches the region's memory, so one allocator serves host
 * memory, device memory and pure simulations alike.  Its users are the
 * weight tiers' slot arenas (weights/warena.h) and the KV cache pool
 * (exec/kvpool.h).
 *
 * The free extents are kept in an array sorted by offset; an allocation
 * takes the lowest free extent that holds it (first fit), cutting from its
 * start; a release merges the freed extent with both neighbours, so the free
 * extents are always maximal, disjoint and never adjacent: with everything
 * released the region is one free extent again.  The live extents are kept
 * sorted by offset too, so that a release finds its extent by offset alone
 * (binary search) and a double release is caught as -ENOENT.
 *
 * Alignment: the caller gives a power-of-two alignment at init.  The size is
 * rounded down to it and every length is rounded up to it, so every offset
 * and length the allocator records or returns is a multiple of it.
 *
 * Memory: both arrays are allocated once, at init, for max_live live extents
 * (between max_live live extents there are at most max_live + 1 gaps, so the
 * free list never needs more); alloc and release never allocate, print or
 * abort.  Not thread-safe: the caller serialises.
 */
#ifndef SMK_UTIL_EXTENT_H
#define SMK_UTIL_EXTENT_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

/* The most live extents one allocator may be sized for (keeps the arrays'
 * size far from overflow). */
#define EXTENT_MAX_LIVE (1 << 24)

struct extent {
	uint64_t off, len;
};

/* Embeddable.  size, align and used may be read directly; everything else
 * is the allocator's, and the lists are read through the functions below. */
struct extents {
	uint64_t size;          /* the region: extents live in [0, size) */
	uint64_t align;         /* every offset and length is a multiple */
	uint64_t used;          /* bytes in live extents */
	struct extent *free;    /* sorted by off, disjoint, never adjacent */
	struct extent *live;    /* sorted by off, disjoint */
	int n_free, n_live, max_live;
};

/* An allocator for a region of `size` bytes (rounded down to align; 0 is
 * allowed and makes every alloc fail with -ENOSPC) holding at most max_live
 * live extents (0..EXTENT_MAX_LIVE).  align: a power of two.  The arrays are
 * owned by x; release them with extent_deinit.  -EINVAL for a bad align or
 * max_live, -ENOMEM; on failure x holds nothing to release. */
int extent_init(struct extents *x, uint64_t size, uint64_t align, int max_live,
		struct smk_err *err);

/* Free the arrays and zero x (safe on a zeroed or deinit'ed x). */
void extent_deinit(struct extents *x);

/* len rounded up to a multiple of align (a power of two); UINT64_MAX if that
 * overflows (no region is that large, so such a length never fits). */
uint64_t extent_round(uint64_t len, uint64_t align);

/* Place len bytes (> 0, rounded up to align) at the lowest offset whose free
 * extent holds them; *off receives the offset.  -EINVAL: len is 0;
 * -ENOBUFS: max_live extents are already live; -ENOSPC: no free extent is
 * large enough (fragmentation or exhaustion).  The checks are made in that
 * order; on failure the allocator and *off are unchanged. */
int extent_alloc(struct extents *x, uint64_t len, uint64_t *off);

/* Would extent_alloc(x, len) succeed now? */
bool extent_fits(const struct extents *x, uint64_t len);

/* The length (rounded, as recorded) of the live extent starting at off in
 * *len (may be NULL).  -ENOENT if no live extent starts at off. */
int extent_lookup(const struct extents *x, uint64_t off, uint64_t *len);

/* Release the live extent starting at off, merging it with the free
 * extents on either side; *len (may be NULL) receives its length.
 * -ENOENT if no live extent starts there (a double release, or an offset
 * that alloc never returned); the allocator is then unchanged. */
int extent_release(struct extents *x, uint64_t off, uint64_t *len);

/* Free bytes in all, and the largest free extent (what the next alloc can
 * get at most). */
uint64_t extent_free_bytes(const struct extents *x);
uint64_t extent_largest_free(const struct extents *x);

/* The free list, lowest offset first (diagnostics and tests): its length,
 * and extent i (false past the end). */
int extent_n_free(const struct extents *x);
bool extent_free_at(const struct extents *x, int i, uint64_t *off, uint64_t *len);
int extent_n_live(const struct extents *x);

/* Verify every invariant: the free and live extents are non-empty, aligned,
 * sorted, and together tile [0, size) exactly with no two free extents
 * adjacent; the counts are within capacity; used is the live bytes.  O(n);
 * for tests and check modes.  0, or -EFAULT naming the first violation in
 * err. */
int extent_check(const struct extents *x, struct smk_err *err);

#endif
