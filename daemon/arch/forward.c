/* forward.c - the one forward implementation every family runs.  The
 * family's description (struct family_desc) switches the few places where
 * families differ; the order of operations follows llama.cpp's graphs
 * (src/models/gemma3.cpp, llama.cpp, qwen2.cpp) so results are comparable. */
#include "arch/forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/fp16.h"

struct forward {
	const struct model *m;
	struct backend *be;
	struct wstore *ws;
	int max_tokens, max_logits;
	float *x, *h, *q, *k, *v, *att, *o, *g, *u, *logits;
	float *arena;
};

int forward_new(struct forward **out, const struct model *m, struct backend *be,
		struct wstore *ws, int max_tokens, int max_logits, struct smk_err *err)
{
	const struct hparams *hp = &m->hp;
	if (max_tokens <= 0 || max_tokens > be->limits.max_rows || max_logits < 0 ||
	    max_logits > max_tokens)
		return smk_fail(err, -EINVAL, "forward: bad chunk sizes (%d tokens, %d logits)",
				max_tokens, max_logits);
	struct forward *f = calloc(1, sizeof(*f));
	if (!f)
		return smk_fail(err, -ENOMEM, "forward: out of memory");
	f->m = m;
	f->be = be;
	f->ws = ws;
	f->max_tokens = max_tokens;
	f->max_logits = max_logits;

	const size_t T = (size_t)max_tokens;
	const size_t q_dim = (size_t)hp->n_head * hp->head_dim;
	const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
	const size_t sizes[] = {
		T * hp->n_embd, T * hp->n_embd, T * q_dim, T * kv_dim, T * kv_dim, T * q_dim,
		T * hp->n_embd, T * hp->n_ff, T * hp->n_ff, (size_t)max_logits * hp->n_vocab,
	};
	float **bufs[] = { &f->x, &f->h, &f->q, &f->k, &f->v, &f->att, &f->o, &f->g, &f->u,
			   &f->logits };
	size_t total = 0;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		total += (sizes[i] + 15) / 16 * 16; /* keep every buffer 64-byte aligned */
	f->arena = aligned_alloc(64, total * sizeof(float) + 64);
	if (!f->arena) {
		free(f);
		return smk_fail(err, -ENOMEM, "forward: cannot allocate %zu bytes of activations",
				total * sizeof(float));
	}
	float *p = f->arena;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		*bufs[i] = p;
		p += (sizes[i] + 15) / 16 * 16;
	}
	*out = f;
	return 0;
}

void forward_free(struct forward *f)
{
	if (!f)
		return;
	free(f->arena);
	free(f);
}

/* Round through fp16: llama.cpp keeps K and V in an F16 cache and converts
 * Q to F16 for the Q.K product. */
static void round_fp16(float *dst, const float *src, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		dst[i] = fp16_to_fp32(fp32_to_fp16(src[i]));
}

static int run_layer(struct forward *f, const struct wblock *b, struct kvcache *kv, int n,
		     int pos0, struct smk_err *err)
{
	const struct model *m = f->m;
	const struct hparams *hp = &m->hp;
	const struct family_desc *fam = m->fam;
	struct backend *be = f->be;
	const struct backend_ops *op = be->ops;
	const int il = b->layer;
	const int hd = hp->head_dim;
	const int64_t q_dim = (int64_t)hp->n_head * hd, kv_dim = kv->kv_dim;
	int rc;

	op->rmsnorm(be, f->x, &b->t[LT_ATTN_NORM], f->h, hp->n_embd, n, hp->eps);
	if ((rc = op->matmul(be, &b->t[LT_WQ], f->h, n, f->q)) ||
	    (rc = op->matmul(be, &b->t[LT_WK], f->h, n, f->k)) ||
	    (rc = op->matmul(be, &b->t[LT_WV], f->h, n, f->v)))
		return smk_fail(err, rc, "layer %d: attention projection failed", il);
	if (fam->qkv_bias) {
		op->add_bias(be, f->q, &b->t[LT_BQ], n);
		op->add_bias(be, f->k, &b->t[LT_BK], n);
		op->add_bias(be, f->v, &b->t[LT_BV], n);
	}
	if (fam->qk_norm) {
		op->rmsnorm(be, f->q, &b->t[LT_Q_NORM], f->q, hd, n * hp->n_head, hp->eps);
		op->rmsnorm(be, f->k, &b->t[LT_K_NORM], f->k, hd, n * hp->n_head_kv, hp->eps);
	}
	struct rope_params rp;
	model_layer_rope(m, il, &rp);
	op->rope(be, f->q, n, hp->n_head, hd, pos0, &rp);
	op->rope(be, f->k, n, hp->n_head_kv, hd, pos0, &rp);

	struct attn_params ap = {
		.n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hd,
		.pos0 = pos0, .n_q = n, .kv_stride = kv_dim,
		.window = model_layer_is_swa(m, il) ? hp->sliding_window : 0,
		.scale = 1.0f / sqrtf((float)hd),
	};
	if (fam->family == FAMILY_GEMMA3) {
		/* Gemma scales q before the product (f_attention_scale). */
		for (int64_t i = 0; i < n * q_dim; i++)
			f->q[i] *= ap.scale;
		ap.scale = 1.0f;
	}
	round_fp16(kvcache_k(kv, il) + (int64_t)pos0 * kv_dim, f->k, n * kv_dim);
	round_fp16(kvcache_v(kv, il) + (int64_t)pos0 * kv_dim, f->v, n * kv_dim);
	round_fp16(f->q, f->q, n * q_dim);
	op->attention(be, f->q, kvcache_k(kv, il), kvcache_v(kv, il), f->att, &ap);

	if ((rc = op->matmul(be, &b->t[LT_WO], f->att, n, f->o)))
		return smk_fail(err, rc, "layer %d: attention output failed", il);
	if (fam->post_norms)
		op->rmsnorm(be, f->o, &b->t[LT_POST_ATTN_NORM], f->o, hp->n_embd, n, hp->eps);
	op->add(be, f->x, f->o, (int64_t)n * hp->n_embd);

	op->rmsnorm(be, f->x, &b->t[LT_FFN_NORM], f->h, hp->n_embd, n, hp->eps);
	if ((rc = op->matmul(be, &b->t[LT_GATE], f->h, n, f->g)) ||
	    (rc = op->matmul(be, &b->t[LT_UP], f->h, n, f->u)))
		return smk_fail(err, rc, "layer %d: feed-forward projection failed", il);
	if (fam->act == ACT_GELU)
		op->gelu_mul(be, f->g, f->u, (int64_t)n * hp->n_ff);
	else
		op->silu_mul(be, f->g, f->u, (int64_t)n * hp->n_ff);
	if ((rc = op->matmul(be, &b->t[LT_DOWN], f->g, n, f->o)))
		return smk_fail(err, rc, "layer %d: feed-forward output failed", il);
	if (fam->post_norms)
		op->rmsnorm(be, f->o, &b->t[LT_POST_FFN_NORM], f->o, hp->n_embd, n, hp->eps);
	op->add(be, f->x, f->o, (int64_t)n * hp->n_embd);
	return 0;
}

int forward_run(struct forward *f, struct kvcache *kv, const int32_t *tok, int n,
		int n_logits, const float **logits, struct smk_err *err)
{
	const struct model *m = f->m;
	const struct hparams *hp = &m->hp;
	struct backend *be = f->be;
	const int pos0 = kv->n_pos;
	int rc;

	if (n <= 0 || n > f->max_tokens || n_logits < 0 || n_logits > n ||
	    n_logits > f->max_logits)
		return smk_fail(err, -EINVAL, "forward: %d tokens / %d logits exceed the chunk limits (%d / %d)",
				n, n_logits, f->max_tokens, f->max_logits);
	if (pos0 + n > kv->n_ctx)
		return smk_fail(err, -ENOSPC, "context full: %d + %d tokens exceed %d positions",
				pos0, n, kv->n_ctx);
	if (pos0 + n > be->limits.max_ctx)
		return smk_fail(err, -ENOSPC, "context of %d positions exceeds the backend's %d",
				pos0 + n, be->limits.max_ctx);
	for (int i = 0; i < n; i++)
		if (tok[i] < 0 || tok[i] >= hp->n_vocab)
			return smk_fail(err, -ERANGE, "token id %d at position %d is out of range (0..%d)",
					tok[i], i, hp->n_vocab - 1);

	const struct wblock *b = wstore_acquire(f->ws, 0, err);
	if (!b)
		return err ? err->code : -EIO;
	float scale = m->fam->embed_scale ? sqrtf((float)hp->n_embd) : 1.0f;
	rc = be->ops->embed(be, &b->t[EMB_TOKEN], tok, n, scale, f->x);
	wstore_release(f->ws, 0);
	if (rc)
		return smk_fail(err, rc, "embedding lookup failed");

	for (int il = 0; il < hp->n_layer; il++) {
		b = wstore_acquire(f->ws, 1 + il, err);
		if (!b)
			return err ? err->code : -EIO;
		rc = run_layer(f, b, kv, n, pos0, err);
		wstore_release(f->ws, 1 + il);
		if (rc)
			return rc;
	}

	if (n_logits > 0) {
		int hb = m->n_blocks - 1;
		b = wstore_acquire(f->ws, hb, err);
		if (!b)
			return err ? err->code : -EIO;
		const float *xl = f->x + (int64_t)(n - n_logits) * hp->n_embd;
		be->ops->rmsnorm(be, xl, &b->t[HEAD_NORM], f->h, hp->n_embd, n_logits, hp->eps);
		rc = be->ops->matmul(be, &b->t[HEAD_OUTPUT], f->h, n_logits, f->logits);
		wstore_release(f->ws, hb);
		if (rc)
			return smk_fail(err, rc, "output head failed");
		*logits = f->logits;
	}
	kv->n_pos = pos0 + n;
	return 0;
}
