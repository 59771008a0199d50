#include "exec/kvcache.h"

#include <stdlib.h>

uint64_t kvcache_bytes(const struct model *m, int n_ctx)
{
	/* fp16 halves: kvcache.h's layout */
	return 2ull * (uint64_t)m->hp.n_layer * (uint64_t)n_ctx *
	       (uint64_t)m->hp.n_head_kv * (uint64_t)m->hp.head_dim * sizeof(uint16_t);
}

static int check_ctx(const struct model *m, int n_ctx, struct smk_err *err)
{
	if (n_ctx <= 0 || n_ctx > m->hp.n_ctx_train)
		return smk_fail(err, -EINVAL, "context size %d is out of range (1..%d for this model)",
				n_ctx, m->hp.n_ctx_train);
	return 0;
}

static void fill(struct kvcache *kv, const struct model *m, int n_ctx, struct backend *be)
{
	kv->n_layer = m->hp.n_layer;
	kv->n_ctx = n_ctx;
	kv->kv_dim = (int64_t)m->hp.n_head_kv * m->hp.head_dim;
	kv->n_pos = 0;
	kv->be = be;
}

int kvcache_new(struct kvcache **out, const struct model *m, int n_ctx, struct backend *be,
		struct smk_err *err)
{
	int rc = check_ctx(m, n_ctx, err);
	if (rc)
		return rc;
	struct kvcache *kv = calloc(1, sizeof(*kv));
	if (!kv)
		return smk_fail(err, -ENOMEM, "kv cache: out of memory");
	fill(kv, m, n_ctx, be);
	kv->owns_mem = true;
	size_t half = kvcache_bytes(m, n_ctx) / 2;
	struct smk_err e;
	if (backend_alloc(be, (void **)&kv->k, half, &e) || backend_alloc(be, (void **)&kv->v, half, &e)) {
		kvcache_free(kv);
		return smk_fail(err, -ENOMEM, "kv cache: cannot allocate %zu bytes for %d positions (%s)",
				2 * half, n_ctx, e.msg);
	}
	*out = kv;
	return 0;
}

int kvcache_init_at(struct kvcache *kv, const struct model *m, int n_ctx, struct backend *be,
		    void *k_mem, void *v_mem, struct smk_err *err)
{
	int rc = check_ctx(m, n_ctx, err);
	if (rc)
		return rc;
	if (!k_mem || !v_mem)
		return smk_fail(err, -EINVAL, "kv cache: no memory given for %d positions", n_ctx);
	fill(kv, m, n_ctx, be);
	kv->k = k_mem;
	kv->v = v_mem;
	kv->owns_mem = false;
	return 0;
}

void kvcache_free(struct kvcache *kv)
{
	if (!kv)
		return;
	if (kv->owns_mem) {
		if (kv->k)
			backend_free_mem(kv->be, kv->k);
		if (kv->v)
			backend_free_mem(kv->be, kv->v);
	}
	free(kv);
}
