/* wstore_resident.c - the trivial weight store: every block is resident in
 * the file mapping for the life of the model (the kernel's page cache is the
 * only cache).  Used when no budget is configured. */
#include "weights/wstore_impl.h"

#include <stdlib.h>
#include <string.h>

struct wstore_resident {
	struct wstore base;
	const struct model *m;
	int *refs; /* acquire/release balance per block, to catch misuse */
};

static const struct wblock *res_acquire(struct wstore *w, int block, struct smk_err *err)
{
	struct wstore_resident *ws = (struct wstore_resident *)w;
	if (block < 0 || block >= ws->m->n_blocks) {
		smk_fail(err, -EINVAL, "weight store: block %d out of range", block);
		return NULL;
	}
	ws->refs[block]++;
	return &ws->m->blocks[block];
}

static void res_release(struct wstore *w, int block)
{
	struct wstore_resident *ws = (struct wstore_resident *)w;
	if (block >= 0 && block < ws->m->n_blocks)
		ws->refs[block]--;
}

/* The resident store computes from the mapping: rows come from it too. */
static int res_read_rows(struct wstore *w, int block, int role, int64_t row, int n, void *dst,
			 struct smk_err *err)
{
	struct wstore_resident *ws = (struct wstore_resident *)w;
	const struct wtensor *t = wstore_rows_tensor(ws->m, block, role, row, n, err);
	if (!t)
		return err ? err->code : -EINVAL;
	memcpy(dst, wtensor_row(t, row), (size_t)n * t->row_bytes);
	return 0;
}

static void res_free(struct wstore *w)
{
	struct wstore_resident *ws = (struct wstore_resident *)w;
	free(ws->refs);
	free(ws);
}

static const struct wstore_ops resident_ops = {
	.acquire = res_acquire, .release = res_release, .free = res_free,
	.read_rows = res_read_rows,
};

int wstore_new_resident(struct wstore **out, const struct model *m, struct smk_err *err)
{
	struct wstore_resident *ws = calloc(1, sizeof(*ws));
	if (!ws || !(ws->refs = calloc((size_t)m->n_blocks, sizeof(int)))) {
		free(ws);
		return smk_fail(err, -ENOMEM, "weight store: out of memory");
	}
	ws->base.ops = &resident_ops;
	ws->m = m;
	*out = &ws->base;
	return 0;
}
