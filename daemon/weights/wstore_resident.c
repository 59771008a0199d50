/* wstore_resident.c - the trivial weight store: every block is resident
 * for the life of the model, in the file mapping (the kernel's page cache
 * is the only cache) or in one copy of the weights in anonymous memory
 * (enum wstore_load says when and why).  Used when no budget is
 * configured. */
#include "formats/gguf.h"
#include "weights/wstore_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct wstore_resident {
	struct wstore base;
	const struct model *m;
	int *refs; /* acquire/release balance per block, to catch misuse */
	uint64_t *expert_acquires; /* per layer (MoE models; NULL otherwise) */
	/* WSTORE_LOAD_COPY: the model's blocks with their views into `copy`
	 * (else NULL: the model's own blocks, views into the mapping) */
	struct wblock *blocks;
	void *copy;
	size_t copy_len;
};

/* A run of source bytes that the copy holds in one piece: the views
 * whose bytes overlap or touch (a tied head's views are the embedding's,
 * so they are copied once), at `off` in the copy. */
struct span {
	const char *lo, *hi;
	size_t off;
};

static int span_cmp(const void *a, const void *b)
{
	const char *x = ((const struct span *)a)->lo, *y = ((const struct span *)b)->lo;
	return x < y ? -1 : x > y;
}

/* The span holding p (spans sorted, disjoint, p in one of them). */
static const struct span *span_of(const struct span *sp, int n, const char *p)
{
	int lo = 0, hi = n - 1;
	while (lo < hi) {
		const int mid = (lo + hi + 1) / 2;
		if (sp[mid].lo <= p)
			lo = mid;
		else
			hi = mid - 1;
	}
	return &sp[lo];
}

/* Whether the copy holds view k of b: the views of a file's bytes (a
 * tensor converted at load, memory.default_dtype, is in memory already). */
static bool copied(const struct wblock *b, int k)
{
	return b->has[k] && b->t[k].nbytes && b->t[k].data && b->t[k].source >= 0;
}

/* Copy the file-backed views' bytes into one anonymous mapping, the
 * spans in address order, each at the same offset within a 64-byte line
 * as its source (the kernels see the alignment the file gave them);
 * ws->blocks get the views into it.  AUTO: nothing copied when the
 * weights would take more than half of the page cache's room. */
static int copy_weights(struct wstore_resident *ws, enum wstore_load load, struct smk_err *err)
{
	const struct model *m = ws->m;
	int n = 0;
	for (int b = 0; b < m->n_blocks; b++)
		for (int k = 0; k < LT_COUNT; k++)
			n += copied(&m->blocks[b], k);
	struct span *sp = calloc(n ? (size_t)n : 1, sizeof(*sp));
	if (!sp)
		return smk_fail(err, -ENOMEM, "weight store: out of memory");
	n = 0;
	for (int b = 0; b < m->n_blocks; b++)
		for (int k = 0; k < LT_COUNT; k++) {
			const struct wtensor *t = &m->blocks[b].t[k];
			if (copied(&m->blocks[b], k))
				sp[n++] = (struct span){ t->data, (const char *)t->data + t->nbytes, 0 };
		}
	qsort(sp, (size_t)n, sizeof(*sp), span_cmp);
	int ns = 0;
	for (int i = 0; i < n; i++) {
		if (ns && sp[i].lo <= sp[ns - 1].hi) { /* overlaps or touches the last */
			if (sp[i].hi > sp[ns - 1].hi)
				sp[ns - 1].hi = sp[i].hi;
			continue;
		}
		sp[ns++] = sp[i];
	}
	size_t len = 0;
	for (int i = 0; i < ns; i++) {
		len = (len + 63) / 64 * 64 + (size_t)((uintptr_t)sp[i].lo % 64);
		sp[i].off = len;
		len += (size_t)(sp[i].hi - sp[i].lo);
	}
	const uint64_t room = load == WSTORE_LOAD_AUTO ? wt_io_cache_room() : 0;
	if (load == WSTORE_LOAD_AUTO && (room == UINT64_MAX || len > room / 2)) {
		free(sp);
		return 0; /* the mapping: too big to copy beside the page cache (or no figure) */
	}
	void *copy = len ? mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) : NULL;
	if (copy == MAP_FAILED) {
		const int e = errno;
		free(sp);
		return smk_fail(err, -e, "memory.weights_in_ram = copy: cannot allocate %zu bytes for the weights: %s",
				len, strerror(e));
	}
	ws->copy = copy;
	ws->copy_len = len;
	if (!(ws->blocks = malloc((size_t)m->n_blocks * sizeof(*ws->blocks)))) {
		free(sp);
		return smk_fail(err, -ENOMEM, "weight store: out of memory");
	}
	if (len) {
		(void)madvise(copy, len, MADV_HUGEPAGE); /* advice: huge pages where the kernel has them */
		for (int i = 0; i < ns; i++)
			memcpy((char *)copy + sp[i].off, sp[i].lo, (size_t)(sp[i].hi - sp[i].lo));
		(void)mprotect(copy, len, PROT_READ); /* nothing writes weights */
	}
	memcpy(ws->blocks, m->blocks, (size_t)m->n_blocks * sizeof(*ws->blocks));
	for (int b = 0; b < m->n_blocks; b++)
		for (int k = 0; k < LT_COUNT; k++) {
			struct wtensor *t = &ws->blocks[b].t[k];
			if (!copied(&ws->blocks[b], k))
				continue;
			const struct span *s = span_of(sp, ns, t->data);
			t->data = (const char *)copy + s->off + ((const char *)t->data - s->lo);
		}
	free(sp);
	return 0;
}

static const struct wblock *res_acquire(struct wstore *w, int block, struct smk_err *err)
{
	struct wstore_resident *ws = (struct wstore_resident *)w;
	if (block < 0 || block >= ws->m->n_blocks) {
		smk_fail(err, -EINVAL, "weight store: block %d out of range", block);
		return NULL;
	}
	ws->refs[block]++;
	const struct wblock *b = ws->blocks ? &ws->blocks[block] : &ws->m->blocks[block];
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

static void res_stats(struct wstore *w, struct wstore_stats *st)
{
	st->in_ram = ((struct wstore_resident *)w)->blocks != NULL;
}

static void res_free(struct wstore *w)
{
	struct wstore_resident *ws = (struct wstore_resident *)w;
	if (ws->copy)
		munmap(ws->copy, ws->copy_len);
	free(ws->blocks);
	free(ws->expert_acquires);
	free(ws->refs);
	free(ws);
}

static const struct wstore_ops resident_ops = {
	.acquire = res_acquire, .release = res_release, .free = res_free,
	.read_rows = res_read_rows, .expert_stats = res_expert_stats, .stats = res_stats,
};

int wstore_new_resident(struct wstore **out, const struct model *m, enum wstore_load load,
			struct smk_err *err)
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
	if (load != WSTORE_LOAD_MAP && (rc = copy_weights(ws, load, err))) {
		res_free(&ws->base);
		return rc;
	}
	*out = &ws->base;
	return 0;
}
