/* kvcache.h - the keys and values one sequence has seen, for every layer.
 *
 * Layout: per layer, n_ctx rows of kv_dim floats for K, the same for V.  The
 * values are rounded to fp16 on the way in, as llama.cpp's default F16 cache
 * does, so that both compute the same attention.  Allocated once at
 * admission, for the sequence's whole context, in the compute backend's
 * memory (device memory with CUDA: only backend ops touch it there). */
#ifndef SMK_ARCH_KVCACHE_H
#define SMK_ARCH_KVCACHE_H

#include <stdint.h>

#include "arch/model.h"
#include "compute/backend.h"
#include "util/err.h"

struct kvcache {
	int n_layer;
	int n_ctx;         /* positions it can hold */
	int64_t kv_dim;    /* floats per position */
	int n_pos;         /* positions filled so far */
	float *k;          /* [n_layer][n_ctx][kv_dim], backend memory */
	float *v;
	struct backend *be;/* whose memory k and v are */
};

/* Bytes a cache of n_ctx positions takes for model m. */
uint64_t kvcache_bytes(const struct model *m, int n_ctx);

/* A cache in be's memory.  *out owned by the caller (kvcache_free); be must
 * outlive it. */
int kvcache_new(struct kvcache **out, const struct model *m, int n_ctx, struct backend *be,
		struct smk_err *err);
void kvcache_free(struct kvcache *kv);

static inline float *kvcache_k(struct kvcache *kv, int layer)
{
	return kv->k + (int64_t)layer * kv->n_ctx * kv->kv_dim;
}

static inline float *kvcache_v(struct kvcache *kv, int layer)
{
	return kv->v + (int64_t)layer * kv->n_ctx * kv->kv_dim;
}

#endif
