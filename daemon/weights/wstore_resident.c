/* wstore_resident.c - the trivial weight store: every block is resident in
 * the file mapping for the life of the model (the kernel's page cache is the
 * only cache).  Used when no budget is configured. */
#include "formats/gguf.h"
#include "weights/wstore_impl.h"

#include <stdlib.h>
#include <string.h>

struct wstore_resident {
	struct wstore base;
	const struct model *m;
	int *refs; /* acquire/release balance per block, to catch misuse */
	uint64_t *expert_acquires; /* per layer (MoE models; NULL otherwise) */
};

static const struct wblock *res_acquire(struct wstore *w, int block, struct smk_err *err)
{
	struct wstore_resident *ws = (struct wstore_resident *)w;
	if (block < 0 || block >= ws->m->n_blocks) {
		smk_fail(err, -EINVAL, "weight store: block %d out of range", block);
		return NULL;
	}
	ws->refs[block]++;
	const struct wblock *b = &ws->m->blocks[block];
	if (b->kind == BLOCK_EXPERT && ws->expert_acquires)
		/* read by /stats on another thread: relaxed atomics */
		__atomic_add_fetch(&ws->expert_acquires[b->layer], 1, __ATOMIC_RELAXED);
	return b;
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

/* Every expert is resident in the mapping: every acquire is a hit. */
static int res_expert_stats(struct wstore *w, struct wexpert_layer_stats *out, int max)
{
	struct wstore_resident *ws = (struct wstore_resident *)w;
	const struct hparams *hp = &ws->m->hp;
	int n = 0;
	for (int il = 0; ws->expert_acquires && il < hp->n_layer && n < max; il++, n++) {
		const uint64_t a = __atomic_load_n(&ws->expert_acquires[il], __ATOMIC_RELAXED);
		out[n] = (struct wexpert_layer_stats){ .layer = il, .n_expert = hp->n_expert,
						       .resident = hp->n_expert, .acquires = a, .hits = a,
						       .ram_hits = a };
	}
	return n;
}

static void res_free(struct wstore *w)
{
	struct wstore_resident *ws = (struct wstore_resident *)w;
	free(ws->expert_acquires);
	free(ws->refs);
	free(ws);
}

static const struct wstore_ops resident_ops = {
	.acquire = res_acquire, .release = res_release, .free = res_free,
	.read_rows = res_read_rows, .expert_stats = res_expert_stats,
};

int wstore_new_resident(struct wstore **out, const struct model *m, struct smk_err *err)
{
	/* Every block is read through the mapping: a model in object storage
	 * is fetched whole into its backing file now. */
	int rc = gguf_pin_all(m->gguf, err);
	if (rc)
		return rc;
	struct wstore_resident *ws = calloc(1, sizeof(*ws));
	if (!ws || !(ws->refs = calloc((size_t)m->n_blocks, sizeof(int)))) {
		free(ws);
		return smk_fail(err, -ENOMEM, "weight store: out of memory");
	}
	if (m->hp.n_expert > 0 &&
	    !(ws->expert_acquires = calloc((size_t)m->hp.n_layer, sizeof(uint64_t)))) {
		free(ws->refs);
		free(ws);
		return smk_fail(err, -ENOMEM, "weight store: out of memory");
	}
	ws->base.ops = &resident_ops;
	ws->m = m;
	*out = &ws->base;
	return 0;
}
