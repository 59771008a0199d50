/* kvcache.h - the keys and values one sequence has seen, for every layer.
 *
 * Layout: per layer, n_ctx rows of kv_dim IEEE halves for K, the same for
 * V: an F16 cache, as llama.cpp's default, so that both compute the same
 * attention (the backend's store_fp16 op writes it, its attention op reads
 * it).  Allocated once at admission, for the sequence's whole context, in
 * the compute backend's memory (device memory with CUDA: only backend ops
 * touch it there). */
#ifndef SMK_EXEC_KVCACHE_H
#define SMK_EXEC_KVCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/model.h"
#include "compute/backend.h"
#include "util/err.h"

struct kvcache {
	int n_layer;
	int n_ctx;         /* positions it can hold */
	int64_t kv_dim;    /* halves per position */
	int n_pos;         /* positions filled so far */
	uint16_t *k;       /* [n_layer][n_ctx][kv_dim] fp16, backend memory */
	uint16_t *v;
	struct backend *be;/* whose memory k and v are */
	bool owns_mem;     /* k and v were allocated here (kvcache_new) */
};

/* Bytes a cache of n_ctx positions takes for model m (K and V together;
 * each is half of it). */
uint64_t kvcache_bytes(const struct model *m, int n_ctx);

/* A cache in be's memory, allocated here.  *out owned by the caller
 * (kvcache_free); be must outlive it. */
int kvcache_new(struct kvcache **out, const struct model *m, int n_ctx, struct backend *be,
		struct smk_err *err);

/* A cache over caller-owned memory of be: k_mem and v_mem hold
 * kvcache_bytes(m, n_ctx) / 2 bytes each, suitably aligned for the
 * backend's loads (the daemon carves them from its KV pool so that
 * admitting a request allocates nothing in device memory).  kv is the
 * caller's too; nothing is allocated, and kvcache_free must not be called
 * on it (the caller returns the memory to where it came from).  Fails
 * with -EINVAL for an n_ctx out of the model's range. */
int kvcache_init_at(struct kvcache *kv, const struct model *m, int n_ctx, struct backend *be,
		    void *k_mem, void *v_mem, struct smk_err *err);

/* Frees a cache made by kvcache_new (its memory and the struct). */
void kvcache_free(struct kvcache *kv);

static inline uint16_t *kvcache_k(struct kvcache *kv, int layer)
{
	return kv->k + (int64_t)layer * kv->n_ctx * kv->kv_dim;
}

static inline uint16_t *kvcache_v(struct kvcache *kv, int layer)
{
	return kv->v + (int64_t)layer * kv->n_ctx * kv->kv_dim;
}

#endif
