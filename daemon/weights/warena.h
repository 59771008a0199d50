/* warena.h - one tier's memory: a fixed byte budget carved into slots for
 * variable-size units.
 *
 * The units of one model are mostly equal-size layers plus a few large ones
 * (embedding table, output head), and they change only at eviction, so a
 * first-fit free list with coalescing is enough: the free extents are kept
 * sorted by offset in an array sized at init (one more extent than units
 * can ever be live), alloc takes the first extent that fits, free merges
 * with both neighbours.  No allocation happens after init.
 *
 * The memory itself is page-aligned and, for the RAM tier, mlock'ed so that
 * the cache cannot be paged out behind the budget's back (a refused mlock
 * degrades to an ordinary allocation and is reported once by the caller).
 */
#ifndef SMK_WEIGHTS_WARENA_H
#define SMK_WEIGHTS_WARENA_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

#define WARENA_ALIGN 64u   /* slot alignment: cache lines, SIMD loads */

struct warena_ext {
	uint64_t off, len;
};

struct warena {
	uint8_t *base;          /* the slots' memory (NULL: accounting only) */
	uint64_t map_len;       /* bytes mapped (0 when base is not ours) */
	bool owned;             /* base was mapped here (else warena_adopt) */
	uint64_t size;          /* the budget: slots live in [0, size) */
	uint64_t used, peak;
	struct warena_ext *free;/* sorted by off, disjoint, never adjacent */
	int n_free, cap_free;
	bool locked;            /* mlock succeeded */
	bool check;             /* abort() on any accounting inconsistency */
	const char *name;       /* for messages: "memory.ram_cache" */
};

/* An arena of `size` bytes (rounded down to WARENA_ALIGN) for at most
 * max_slots live slots.  with_memory: back it with page-aligned memory (else
 * only the accounting, for simulations).  lock: try mlock; *a->locked says
 * whether it worked.  Release with warena_deinit. */
int warena_init(struct warena *a, const char *name, uint64_t size, int max_slots,
		bool with_memory, bool lock, bool check, struct smk_err *err);
void warena_deinit(struct warena *a);

/* Serve the slots of an accounting-only arena from memory it does not own:
 * device memory (compute/wdev.h), which the host must not touch.  The arena
 * never maps, locks, unmaps or reads it; base must hold a->size bytes and
 * outlive the arena (its owner frees it after warena_deinit). */
void warena_adopt(struct warena *a, void *base);

/* Offset of a free slot of n bytes (n a multiple of WARENA_ALIGN), or -1 when
 * no free extent is large enough. */
int64_t warena_alloc(struct warena *a, uint64_t n);

/* Give back a slot returned by warena_alloc. */
void warena_free(struct warena *a, uint64_t off, uint64_t n);

/* Largest free extent (what the next alloc could get without evicting). */
uint64_t warena_largest_free(const struct warena *a);

static inline uint64_t warena_round(uint64_t n)
{
	return (n + WARENA_ALIGN - 1) / WARENA_ALIGN * WARENA_ALIGN;
}

#endif
