#include "arch/kvcache.h"

#include <stdlib.h>

uint64_t kvcache_bytes(const struct model *m, int n_ctx)
{
	return 2ull * (uint64_t)m->hp.n_layer * (uint64_t)n_ctx *
	       (uint64_t)m->hp.n_head_kv * (uint64_t)m->hp.head_dim * sizeof(float);
}

int kvcache_new(struct kvcache **out, const struct model *m, int n_ctx, struct smk_err *err)
{
	if (n_ctx <= 0 || n_ctx > m->hp.n_ctx_train)
		return smk_fail(err, -EINVAL, "context size %d is out of range (1..%d for this model)",
				n_ctx, m->hp.n_ctx_train);
	struct kvcache *kv = calloc(1, sizeof(*kv));
	if (!kv)
		return smk_fail(err, -ENOMEM, "kv cache: out of memory");
	kv->n_layer = m->hp.n_layer;
	kv->n_ctx = n_ctx;
	kv->kv_dim = (int64_t)m->hp.n_head_kv * m->hp.head_dim;
	size_t half = kvcache_bytes(m, n_ctx) / 2;
	kv->k = malloc(half);
	kv->v = malloc(half);
	if (!kv->k || !kv->v) {
		kvcache_free(kv);
		return smk_fail(err, -ENOMEM, "kv cache: cannot allocate %zu bytes for %d positions",
				2 * half, n_ctx);
	}
	*out = kv;
	return 0;
}

void kvcache_free(struct kvcache *kv)
{
	if (!kv)
		return;
	free(kv->k);
	free(kv->v);
	free(kv);
}
