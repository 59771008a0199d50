/* kvpool.h - first-fit placement of KV caches in one region allocated at
 * load.
 *
 * The daemon allocates limits.kv_budget bytes of backend memory once, when
 * its worker starts, and carves each admitted sequence's cache out of it:
 * with CUDA that turns a cudaMalloc per request (an implicit device
 * synchronisation in the serving path) into a few comparisons.  The pool
 * only does the bookkeeping, in byte offsets from the region's start, so it
 * knows nothing of the memory itself (and is tested without any).
 *
 * Placement is the extent allocator's (util/extent.h): first fit over a
 * free list kept sorted by offset; a release coalesces with both
 * neighbours, so the free extents are always maximal and disjoint: with
 * every allocation released the pool is one extent again, which is what
 * guarantees that a request the budget admits can always be placed once the
 * sequences before it have ended.  Sizes are rounded up to KVPOOL_ALIGN
 * bytes, so every offset is a multiple of it.
 *
 * Memory: the free list and the table of live allocations are sized for
 * max_live allocations when the pool is made (at most max_live + 1 free
 * extents can exist between max_live allocations); alloc and release never
 * allocate.  Not thread-safe: the caller serialises (the worker's lock). */
#ifndef SMK_EXEC_KVPOOL_H
#define SMK_EXEC_KVPOOL_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

/* CUDA's allocation granularity (cudaMalloc returns 256-byte aligned
 * memory), and a multiple of every SIMD load width on the CPU. */
#define KVPOOL_ALIGN 256u

struct kvpool;

/* A pool of `size` bytes (rounded down to KVPOOL_ALIGN) holding at most
 * max_live allocations at once.  *out owned by the caller (kvpool_free).
 * -EINVAL if size < KVPOOL_ALIGN or max_live < 1, -ENOMEM. */
int kvpool_new(struct kvpool **out, uint64_t size, int max_live, struct smk_err *err);
void kvpool_free(struct kvpool *p);

/* bytes rounded up to a multiple of KVPOOL_ALIGN; UINT64_MAX if that
 * overflows (no pool is that large, so such a request never fits). */
uint64_t kvpool_round(uint64_t bytes);

/* Place `bytes` (> 0, rounded up to KVPOOL_ALIGN) at the lowest offset
 * whose free extent holds it; *off receives the offset.  -ENOSPC: no free
 * extent is large enough (fragmentation or exhaustion: wait for a
 * release); -ENOBUFS: max_live allocations are already live; -EINVAL:
 * bytes is 0.  On failure the pool is unchanged. */
int kvpool_alloc(struct kvpool *p, uint64_t bytes, uint64_t *off);

/* Would kvpool_alloc(p, bytes) succeed now? */
bool kvpool_fits(const struct kvpool *p, uint64_t bytes);

/* Return the allocation made at off.  -ENOENT if no live allocation
 * starts there (a caller's bug; the pool is unchanged). */
int kvpool_release(struct kvpool *p, uint64_t off);

/* The pool's usable size, free bytes, largest free extent, live
 * allocations. */
uint64_t kvpool_size(const struct kvpool *p);
uint64_t kvpool_free_bytes(const struct kvpool *p);
uint64_t kvpool_largest_free(const struct kvpool *p);
int kvpool_n_live(const struct kvpool *p);

/* The free list, lowest offset first (tests and diagnostics): the number
 * of extents, and extent i's offset and length (false past the end). */
int kvpool_n_extents(const struct kvpool *p);
bool kvpool_extent(const struct kvpool *p, int i, uint64_t *off, uint64_t *bytes);

#endif
