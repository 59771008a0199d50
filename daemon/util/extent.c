/* extent.c - first-fit extent allocator with coalescing (see extent.h). */
#include "util/extent.h"

#include <stdlib.h>
#include <string.h>

int extent_init(struct extents *x, uint64_t size, uint64_t align, int max_live,
		struct smk_err *err)
{
	memset(x, 0, sizeof(*x));
	if (align == 0 || (align & (align - 1)))
		return smk_fail(err, -EINVAL, "extent allocator: alignment %llu is not a power of two",
				(unsigned long long)align);
	if (max_live < 0 || max_live > EXTENT_MAX_LIVE)
		return smk_fail(err, -EINVAL, "extent allocator: %d live extents (need 0..%d)",
				max_live, EXTENT_MAX_LIVE);
	/* One block: max_live + 1 free extents, then max_live live ones. */
	struct extent *mem = calloc(2 * (size_t)max_live + 1, sizeof(*mem));
	if (!mem)
		return smk_fail(err, -ENOMEM, "extent allocator: out of memory for %d extents",
				max_live);
	x->size = size / align * align;
	x->align = align;
	x->free = mem;
	x->live = mem + max_live + 1;
	x->max_live = max_live;
	if (x->size) {
		x->free[0] = (struct extent){ 0, x->size };
		x->n_free = 1;
	}
	return 0;
}

void extent_deinit(struct extents *x)
{
	free(x->free);
	memset(x, 0, sizeof(*x));
}

uint64_t extent_round(uint64_t len, uint64_t align)
{
	if (len > UINT64_MAX - (align - 1))
		return UINT64_MAX;
	return (len + align - 1) & ~(align - 1);
}

/* Index of the first free extent that holds len bytes, or -1. */
static int first_fit(const struct extents *x, uint64_t len)
{
	for (int i = 0; i < x->n_free; i++)
		if (x->free[i].len >= len)
			return i;
	return -1;
}

/* Index of the first live extent at or after off (n_live if none). */
static int live_index(const struct extents *x, uint64_t off)
{
	int lo = 0, hi = x->n_live;
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		if (x->live[mid].off < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool extent_fits(const struct extents *x, uint64_t len)
{
	return len > 0 && x->n_live < x->max_live && first_fit(x, extent_round(len, x->align)) >= 0;
}

int extent_alloc(struct extents *x, uint64_t len, uint64_t *off)
{
	if (len == 0)
		return -EINVAL;
	if (x->n_live >= x->max_live)
		return -ENOBUFS;
	const uint64_t need = extent_round(len, x->align);
	const int i = first_fit(x, need);
	if (i < 0)
		return -ENOSPC;
	struct extent *e = &x->free[i];
	const uint64_t at = e->off;
	e->off += need;
	e->len -= need;
	if (e->len == 0) {
		memmove(e, e + 1, sizeof(*e) * (size_t)(x->n_free - i - 1));
		x->n_free--;
	}
	const int k = live_index(x, at);
	memmove(&x->live[k + 1], &x->live[k], sizeof(x->live[0]) * (size_t)(x->n_live - k));
	x->live[k] = (struct extent){ at, need };
	x->n_live++;
	x->used += need;
	*off = at;
	return 0;
}

int extent_lookup(const struct extents *x, uint64_t off, uint64_t *len)
{
	const int k = live_index(x, off);
	if (k == x->n_live || x->live[k].off != off)
		return -ENOENT;
	if (len)
		*len = x->live[k].len;
	return 0;
}

int extent_release(struct extents *x, uint64_t off, uint64_t *len)
{
	const int k = live_index(x, off);
	if (k == x->n_live || x->live[k].off != off)
		return -ENOENT;
	const struct extent a = x->live[k];
	memmove(&x->live[k], &x->live[k + 1], sizeof(x->live[0]) * (size_t)(x->n_live - k - 1));
	x->n_live--;
	x->used -= a.len;
	if (len)
		*len = a.len;

	/* i: the first free extent after the released one */
	int i = 0;
	while (i < x->n_free && x->free[i].off < a.off)
		i++;
	const bool join_prev = i > 0 && x->free[i - 1].off + x->free[i - 1].len == a.off;
	const bool join_next = i < x->n_free && a.off + a.len == x->free[i].off;
	if (join_prev && join_next) {
		x->free[i - 1].len += a.len + x->free[i].len;
		memmove(&x->free[i], &x->free[i + 1], sizeof(x->free[0]) * (size_t)(x->n_free - i - 1));
		x->n_free--;
	} else if (join_prev) {
		x->free[i - 1].len += a.len;
	} else if (join_next) {
		x->free[i].off = a.off;
		x->free[i].len += a.len;
	} else {
		/* Room is certain: L live extents (this one counted) leave L + 1
		 * gaps, at most one free extent each, and this one's two gaps
		 * are empty, so n_free <= L - 1 < max_live + 1. */
		memmove(&x->free[i + 1], &x->free[i], sizeof(x->free[0]) * (size_t)(x->n_free - i));
		x->free[i] = a;
		x->n_free++;
	}
	return 0;
}

uint64_t extent_free_bytes(const struct extents *x)
{
	return x->size - x->used;
}

uint64_t extent_largest_free(const struct extents *x)
{
	uint64_t m = 0;
	for (int i = 0; i < x->n_free; i++)
		if (x->free[i].len > m)
			m = x->free[i].len;
	return m;
}

int extent_n_free(const struct extents *x)
{
	return x->n_free;
}

bool extent_free_at(const struct extents *x, int i, uint64_t *off, uint64_t *len)
{
	if (i < 0 || i >= x->n_free)
		return false;
	*off = x->free[i].off;
	*len = x->free[i].len;
	return true;
}

int extent_n_live(const struct extents *x)
{
	return x->n_live;
}

int extent_check(const struct extents *x, struct smk_err *err)
{
	if (x->n_live < 0 || x->n_live > x->max_live || x->n_free < 0 ||
	    x->n_free > x->max_live + 1)
		return smk_fail(err, -EFAULT, "extent allocator: %d free and %d live extents for %d",
				x->n_free, x->n_live, x->max_live);
	/* Walk both sorted lists at once: at every position exactly one
	 * extent must start, and a free one never directly after another. */
	uint64_t pos = 0, live_bytes = 0;
	int f = 0, l = 0;
	bool after_free = false;
	while (f < x->n_free || l < x->n_live) {
		const bool is_free = f < x->n_free && x->free[f].off == pos;
		const bool is_live = l < x->n_live && x->live[l].off == pos;
		if (is_free == is_live)
			return smk_fail(err, -EFAULT, "extent allocator: %s extent starts at %llu",
					is_free ? "a free and a live" : "no", (unsigned long long)pos);
		const struct extent *e = is_free ? &x->free[f++] : &x->live[l++];
		if (e->len == 0 || e->len % x->align || e->len > x->size - pos)
			return smk_fail(err, -EFAULT, "extent allocator: %s extent %llu+%llu is empty, unaligned or past %llu",
					is_free ? "free" : "live", (unsigned long long)e->off,
					(unsigned long long)e->len, (unsigned long long)x->size);
		if (is_free && after_free)
			return smk_fail(err, -EFAULT, "extent allocator: free extents meet at %llu",
					(unsigned long long)pos);
		after_free = is_free;
		if (!is_free)
			live_bytes += e->len;
		pos += e->len;
	}
	if (pos != x->size || live_bytes != x->used)
		return smk_fail(err, -EFAULT, "extent allocator: extents cover %llu of %llu bytes, %llu live of %llu used",
				(unsigned long long)pos, (unsigned long long)x->size,
				(unsigned long long)live_bytes, (unsigned long long)x->used);
	return 0;
}
