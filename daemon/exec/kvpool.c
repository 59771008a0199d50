/* kvpool.c - the KV region's placement (see kvpool.h): a thin wrapper over
 * the extent allocator (util/extent.h), which does the first fit and the
 * coalescing; the pool adds its size rules and messages. */
#include "exec/kvpool.h"

#include <stdlib.h>

#include "util/extent.h"

struct kvpool {
	struct extents ext;
};

uint64_t kvpool_round(uint64_t bytes)
{
	return extent_round(bytes, KVPOOL_ALIGN);
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
	int rc = extent_init(&p->ext, size, KVPOOL_ALIGN, max_live, err);
	if (rc) {
		free(p);
		smk_err_prefix(err, "kv pool");
		return rc;
	}
	*out = p;
	return 0;
}

void kvpool_free(struct kvpool *p)
{
	if (!p)
		return;
	extent_deinit(&p->ext);
	free(p);
}

bool kvpool_fits(const struct kvpool *p, uint64_t bytes)
{
	return extent_fits(&p->ext, bytes);
}

int kvpool_alloc(struct kvpool *p, uint64_t bytes, uint64_t *off)
{
	return extent_alloc(&p->ext, bytes, off);
}

int kvpool_release(struct kvpool *p, uint64_t off)
{
	return extent_release(&p->ext, off, NULL);
}

uint64_t kvpool_size(const struct kvpool *p)
{
	return p->ext.size;
}

uint64_t kvpool_free_bytes(const struct kvpool *p)
{
	return extent_free_bytes(&p->ext);
}

uint64_t kvpool_largest_free(const struct kvpool *p)
{
	return extent_largest_free(&p->ext);
}

int kvpool_n_live(const struct kvpool *p)
{
	return extent_n_live(&p->ext);
}

int kvpool_n_extents(const struct kvpool *p)
{
	return extent_n_free(&p->ext);
}

bool kvpool_extent(const struct kvpool *p, int i, uint64_t *off, uint64_t *bytes)
{
	return extent_free_at(&p->ext, i, off, bytes);
}
