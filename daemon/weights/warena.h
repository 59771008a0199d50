/* warena.h - one tier's memory: a fixed byte budget carved into slots for
 * variable-size units.
 *
 * The units of one model are mostly equal-size layers plus a few large ones
 * (embedding table, output head), and they change only at eviction, so a
 * first-fit free list with coalescing is enough: the extent allocator
 * (util/extent.h) does the placement, sized at init for max_slots live
 * slots.  No allocation happens after init.  The arena adds the memory, the
 * used/peak figures the tier's statistics report, and a check mode.
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
#include "util/extent.h"

#define WARENA_ALIGN 64u   /* slot alignment: cache lines, SIMD loads */

struct warena {
	uint8_t *base;          /* the slots' memory (NULL: accounting only) */
	uint64_t map_len;       /* bytes mapped (0 when base is not ours) */
	bool owned;             /* base was mapped here (else warena_adopt) */
	uint64_t size;          /* the budget: slots live in [0, size) */
	uint64_t used, peak;
	int n_free;             /* free extents (the allocator's, after each change) */
	struct extents ext;     /* the placement; owned */
	bool locked;            /* mlock succeeded */
	bool check;             /* verify all accounting after every change */
	const char *name;       /* for messages: "memory.ram_cache" */
};

/* An arena of `size` bytes (rounded down to WARENA_ALIGN) for at most
 * max_slots live slots.  with_memory: back it with page-aligned memory (else
 * only the accounting, for simulations).  lock: try mlock; *a->locked says
 * whether it worked.  check: run the full invariant check after every alloc
 * and free (tests; O(slots) each).  The arena owns its free list and the
 * memory it maps; release with warena_deinit.  -EINVAL for a bad
 * max_slots, -ENOMEM, or mmap's error; on failure nothing is held. */
int warena_init(struct warena *a, const char *name, uint64_t size, int max_slots,
		bool with_memory, bool lock, bool check, struct smk_err *err);
void warena_deinit(struct warena *a);

/* Serve the slots of an accounting-only arena from memory it does not own:
 * device memory (compute/wdev.h), which the host must not touch.  The arena
 * never maps, locks, unmaps or reads it; base must hold a->size bytes and
 * outlive the arena (its owner frees it after warena_deinit). */
void warena_adopt(struct warena *a, void *base);

/* Offset of a free slot of n bytes at the lowest offset that holds it, or
 * -1 when there is none: no free extent is large enough, max_slots slots are
 * live, or n is not a positive multiple of WARENA_ALIGN.  In check mode,
 * -EFAULT (< -1) if the accounting is found inconsistent afterwards (a bug:
 * the arena is not to be trusted from then on). */
int64_t warena_alloc(struct warena *a, uint64_t n);

/* Give back a slot of n bytes returned by warena_alloc at off.  -ENOENT if
 * no slot starts at off (a double free), -EINVAL if n is not the slot's
 * size; the arena is then unchanged.  In check mode, -EFAULT if the
 * accounting is found inconsistent afterwards (a bug). */
int warena_free(struct warena *a, uint64_t off, uint64_t n);

/* Largest free extent (what the next alloc could get without evicting). */
uint64_t warena_largest_free(const struct warena *a);

static inline uint64_t warena_round(uint64_t n)
{
	return (n + WARENA_ALIGN - 1) / WARENA_ALIGN * WARENA_ALIGN;
}

#endif
