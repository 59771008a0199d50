/* warena.c - first-fit slot allocator with coalescing (see warena.h). */
#include "weights/warena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Accounting invariants, checked after every change when a->check: the
 * free extents are sorted, disjoint, non-adjacent, inside [0, size), and
 * used + free bytes == size.  A violation is a bug in this file (or a
 * double free by the caller): abort with the arena's name. */
static void check_arena(const struct warena *a)
{
	uint64_t free_bytes = 0;
	for (int i = 0; i < a->n_free; i++) {
		const struct warena_ext *e = &a->free[i];
		if (e->len == 0 || e->off + e->len > a->size ||
		    (i > 0 && a->free[i - 1].off + a->free[i - 1].len >= e->off)) {
			fprintf(stderr, "warena %s: free list corrupt at extent %d\n", a->name, i);
			abort();
		}
		free_bytes += e->len;
	}
	if (a->used + free_bytes != a->size || a->used > a->size) {
		fprintf(stderr, "warena %s: used %llu + free %llu != budget %llu\n", a->name,
			(unsigned long long)a->used, (unsigned long long)free_bytes,
			(unsigned long long)a->size);
		abort();
	}
}

int warena_init(struct warena *a, const char *name, uint64_t size, int max_slots,
		bool with_memory, bool lock, bool check, struct smk_err *err)
{
	memset(a, 0, sizeof(*a));
	a->name = name;
	a->size = size / WARENA_ALIGN * WARENA_ALIGN;
	a->check = check;
	a->cap_free = max_slots + 2;
	a->free = calloc((size_t)a->cap_free, sizeof(*a->free));
	if (!a->free)
		return smk_fail(err, -ENOMEM, "%s: out of memory for the free list", name);
	if (a->size) {
		a->free[0] = (struct warena_ext){ 0, a->size };
		a->n_free = 1;
	}
	if (with_memory && a->size) {
		long pg = sysconf(_SC_PAGESIZE);
		uint64_t page = pg > 0 ? (uint64_t)pg : 4096;
		a->map_len = (a->size + page - 1) / page * page;
		void *p = mmap(NULL, a->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);
		if (p == MAP_FAILED) {
			int e = errno;
			free(a->free);
			a->free = NULL;
			return smk_fail(err, -e, "%s: cannot allocate %llu bytes: %s", name,
					(unsigned long long)a->map_len, strerror(e));
		}
		a->base = p;
		a->owned = true;
		/* Locking also faults every page in now, so the first load of a
		 * unit does not pay for page faults later. */
		if (lock && mlock(a->base, a->map_len) == 0)
			a->locked = true;
	}
	return 0;
}

void warena_adopt(struct warena *a, void *base)
{
	a->base = base;
	a->owned = false;
	a->map_len = 0;
	a->locked = false;
}

void warena_deinit(struct warena *a)
{
	if (a->owned && a->base) {
		if (a->locked)
			munlock(a->base, a->map_len);
		munmap(a->base, a->map_len);
	}
	free(a->free);
	memset(a, 0, sizeof(*a));
}

int64_t warena_alloc(struct warena *a, uint64_t n)
{
	if (n == 0 || n % WARENA_ALIGN)
		return -1;
	for (int i = 0; i < a->n_free; i++) {
		struct warena_ext *e = &a->free[i];
		if (e->len < n)
			continue;
		uint64_t off = e->off;
		e->off += n;
		e->len -= n;
		if (e->len == 0) {
			memmove(e, e + 1, sizeof(*e) * (size_t)(a->n_free - i - 1));
			a->n_free--;
		}
		a->used += n;
		if (a->used > a->peak)
			a->peak = a->used;
		if (a->check)
			check_arena(a);
		return (int64_t)off;
	}
	return -1;
}

void warena_free(struct warena *a, uint64_t off, uint64_t n)
{
	/* First extent after the freed range. */
	int i = 0;
	while (i < a->n_free && a->free[i].off < off)
		i++;
	bool merge_prev = i > 0 && a->free[i - 1].off + a->free[i - 1].len == off;
	bool merge_next = i < a->n_free && off + n == a->free[i].off;
	if (merge_prev && merge_next) {
		a->free[i - 1].len += n + a->free[i].len;
		memmove(&a->free[i], &a->free[i + 1], sizeof(a->free[0]) * (size_t)(a->n_free - i - 1));
		a->n_free--;
	} else if (merge_prev) {
		a->free[i - 1].len += n;
	} else if (merge_next) {
		a->free[i].off = off;
		a->free[i].len += n;
	} else {
		if (a->n_free == a->cap_free) {
			/* More live slots than promised at init: a caller bug. */
			fprintf(stderr, "warena %s: free list full (%d extents)\n", a->name, a->cap_free);
			abort();
		}
		memmove(&a->free[i + 1], &a->free[i], sizeof(a->free[0]) * (size_t)(a->n_free - i));
		a->free[i] = (struct warena_ext){ off, n };
		a->n_free++;
	}
	a->used -= n;
	if (a->check)
		check_arena(a);
}

uint64_t warena_largest_free(const struct warena *a)
{
	uint64_t best = 0;
	for (int i = 0; i < a->n_free; i++)
		if (a->free[i].len > best)
			best = a->free[i].len;
	return best;
}
