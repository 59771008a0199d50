/* wstore_resident.c - the trivial weight store: every block is resident in
 * the file mapping for the life of the model (the kernel's page cache is the
 * only cache).  Used when the budgets hold the whole model. */
#include "weights/wstore.h"

#include <stdlib.h>

struct wstore {
	const struct model *m;
	int *refs; /* acquire/release balance per block, to catch misuse */
};

int wstore_new_resident(struct wstore **out, const struct model *m, struct smk_err *err)
{
	struct wstore *ws = calloc(1, sizeof(*ws));
	if (!ws || !(ws->refs = calloc((size_t)m->n_blocks, sizeof(int)))) {
		free(ws);
		return smk_fail(err, -ENOMEM, "weight store: out of memory");
	}
	ws->m = m;
	*out = ws;
	return 0;
}

void wstore_free(struct wstore *ws)
{
	if (!ws)
		return;
	free(ws->refs);
	free(ws);
}

const struct wblock *wstore_acquire(struct wstore *ws, int block, struct smk_err *err)
{
	if (block < 0 || block >= ws->m->n_blocks) {
		smk_fail(err, -EINVAL, "weight store: block %d out of range", block);
		return NULL;
	}
	ws->refs[block]++;
	return &ws->m->blocks[block];
}

void wstore_release(struct wstore *ws, int block)
{
	if (block >= 0 && block < ws->m->n_blocks)
		ws->refs[block]--;
}
