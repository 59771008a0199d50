#include "exec/kvpool.h"

#include <stdlib.h>
#include <string.h>

struct kvpool_span {
	uint64_t off, bytes;
};

struct kvpool {
	uint64_t size;
	int max_live;
	/* Free extents sorted by offset, never touching one another (a
	 * release merges neighbours): at most max_live + 1 of them. */
	struct kvpool_span *free_ext;
	int n_free;
	/* Live allocations, unordered (release searches: max_live is the
	 * daemon's concurrency, a few dozen at most). */
	struct kvpool_span *live;
	int n_live;
};

uint64_t kvpool_round(uint64_t bytes)
{
	if (bytes > UINT64_MAX - (KVPOOL_ALIGN - 1))
		return UINT64_MAX;
	return (bytes + KVPOOL_ALIGN - 1) / KVPOOL_ALIGN * KVPOOL_ALIGN;
}

int kvpool_new(struct kvpool **out, uint64_t size, int max_live, struct smk_err *err)
{
	size = size / KVPOOL_ALIGN * KVPOOL_ALIGN;
	if (size == 0 || max_live < 1 || max_live > (1 << 20))
		return smk_fail(err, -EINVAL,
				"kv pool: %llu bytes for %d caches (need at least %u bytes and 1..%d caches)",
				(unsigned long long)size, max_live, KVPOOL_ALIGN, 1 << 20);
	struct kvpool *p = calloc(1, sizeof(*p));
	if (!p)
		return smk_fail(err, -ENOMEM, "kv pool: out of memory");
	p->free_ext = calloc((size_t)max_live + 1, sizeof(*p->free_ext));
	p->live = calloc((size_t)max_live, sizeof(*p->live));
	if (!p->free_ext || !p->live) {
		kvpool_free(p);
		return smk_fail(err, -ENOMEM, "kv pool: out of memory for %d caches", max_live);
	}
	p->size = size;
	p->max_live = max_live;
	p->free_ext[0] = (struct kvpool_span){ 0, size };
	p->n_free = 1;
	*out = p;
	return 0;
}

void kvpool_free(struct kvpool *p)
{
	if (!p)
		return;
	free(p->free_ext);
	free(p->live);
	free(p);
}

/* Index of the first extent that holds need bytes, or -1. */
static int first_fit(const struct kvpool *p, uint64_t need)
{
	for (int i = 0; i < p->n_free; i++)
		if (p->free_ext[i].bytes >= need)
			return i;
	return -1;
}

bool kvpool_fits(const struct kvpool *p, uint64_t bytes)
{
	return bytes > 0 && p->n_live < p->max_live && first_fit(p, kvpool_round(bytes)) >= 0;
}

int kvpool_alloc(struct kvpool *p, uint64_t bytes, uint64_t *off)
{
	if (bytes == 0)
		return -EINVAL;
	if (p->n_live >= p->max_live)
		return -ENOBUFS;
	const uint64_t need = kvpool_round(bytes);
	int i = first_fit(p, need);
	if (i < 0)
		return -ENOSPC;
	struct kvpool_span *e = &p->free_ext[i];
	*off = e->off;
	e->off += need;
	e->bytes -= need;
	if (e->bytes == 0) {
		memmove(e, e + 1, sizeof(*e) * (size_t)(p->n_free - i - 1));
		p->n_free--;
	}
	p->live[p->n_live++] = (struct kvpool_span){ *off, need };
	return 0;
}

int kvpool_release(struct kvpool *p, uint64_t off)
{
	int l = 0;
	while (l < p->n_live && p->live[l].off != off)
		l++;
	if (l == p->n_live)
		return -ENOENT;
	const struct kvpool_span a = p->live[l];
	p->live[l] = p->live[--p->n_live];

	/* i: the first free extent after the allocation */
	int i = 0;
	while (i < p->n_free && p->free_ext[i].off < a.off)
		i++;
	const bool join_prev = i > 0 && p->free_ext[i - 1].off + p->free_ext[i - 1].bytes == a.off;
	const bool join_next = i < p->n_free && a.off + a.bytes == p->free_ext[i].off;
	if (join_prev && join_next) {
		p->free_ext[i - 1].bytes += a.bytes + p->free_ext[i].bytes;
		memmove(&p->free_ext[i], &p->free_ext[i + 1],
			sizeof(p->free_ext[0]) * (size_t)(p->n_free - i - 1));
		p->n_free--;
	} else if (join_prev) {
		p->free_ext[i - 1].bytes += a.bytes;
	} else if (join_next) {
		p->free_ext[i].off = a.off;
		p->free_ext[i].bytes += a.bytes;
	} else {
		/* Room is certain: L live allocations (this one counted) leave
		 * L + 1 gaps, at most one extent each, and this one's two
		 * gaps are empty, so n_free <= L - 1 < max_live + 1. */
		memmove(&p->free_ext[i + 1], &p->free_ext[i],
			sizeof(p->free_ext[0]) * (size_t)(p->n_free - i));
		p->free_ext[i] = a;
		p->n_free++;
	}
	return 0;
}

uint64_t kvpool_size(const struct kvpool *p)
{
	return p->size;
}

uint64_t kvpool_free_bytes(const struct kvpool *p)
{
	uint64_t s = 0;
	for (int i = 0; i < p->n_free; i++)
		s += p->free_ext[i].bytes;
	return s;
}

uint64_t kvpool_largest_free(const struct kvpool *p)
{
	uint64_t m = 0;
	for (int i = 0; i < p->n_free; i++)
		if (p->free_ext[i].bytes > m)
			m = p->free_ext[i].bytes;
	return m;
}

int kvpool_n_live(const struct kvpool *p)
{
	return p->n_live;
}

int kvpool_n_extents(const struct kvpool *p)
{
	return p->n_free;
}

bool kvpool_extent(const struct kvpool *p, int i, uint64_t *off, uint64_t *bytes)
{
	if (i < 0 || i >= p->n_free)
		return false;
	*off = p->free_ext[i].off;
	*bytes = p->free_ext[i].bytes;
	return true;
}
