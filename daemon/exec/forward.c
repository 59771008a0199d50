/* forward.c - the one forward implementation every family runs.  The
 * family's description (struct family_desc) switches the few places where
 * families differ; the order of operations follows llama.cpp's graphs
 * (src/models/gemma3.cpp, llama.cpp, qwen2.cpp) so results are comparable. */
#include "exec/forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compute/moe_route.h"
#include "exec/expert_predict.h"
#include "quant/qtype.h"
#include "util/mapfile.h"

/* Every activation buffer lives in the backend's memory (device memory
 * with CUDA), so the pass only calls backend ops on them; the logits come
 * back to the host once per step (logits_host), unless the backend's memory
 * is the host's. */
struct forward {
	const struct model *m;
	struct backend *be;
	struct wstore *ws;
	int max_tokens, max_logits;
	float *x, *h, *q, *k, *v, *att, *o, *g, *u, *logits;
	struct attn_call *acalls;  /* one per item of a batch (max_tokens) */
	float *shard_out;         /* L x shard rows, when the head has several shards */
	/* Mixture of experts (zero-sized for dense models): the router's
	 * logits (T x n_expert), an expert's gathered input rows and output
	 * rows (T x n_embd each; its gate/up go through g and u), and each
	 * row's k weighted expert outputs, slot-major (k x T x n_embd) so
	 * they are summed in slot order as llama.cpp sums them. */
	float *rlog, *xg, *eo, *ys;
	/* The routed (row, slot) pairs grouped by expert, in the backend's
	 * memory for gather_rows / scatter_scaled_rows: each pair's input
	 * row, its destination row in ys (slot * T + row) and its weight. */
	float *mrow, *mdst;       /* int32 values in float-sized slots */
	float *mw;
	float *arena;             /* backend memory holding all of the above */
	float *logits_host;       /* max_logits x n_vocab (NULL: host_memory) */
	forward_debug_fn dbg;     /* tests/tools only; NULL in the daemon */
	void *dbg_ctx;
	float *dbg_host;          /* the hook's copy of a stage (device backends) */
	size_t dbg_cap;           /* floats */
	/* Embeddings looked up by rows (device backends, and the CPU backend
	 * on a tiered store: wstore_lookup_by_rows): the batch's rows read
	 * from the store (one table row, not a 16 MiB shard through every
	 * tier) and dequantised on the host; a device backend's land in
	 * emb_host and go up in one copy. */
	uint8_t *emb_row;         /* one stored row of the table (NULL: shards) */
	float *emb_host;          /* max_tokens x n_embd (NULL: host_memory) */
	/* MoE routing on the host (NULL for dense models), all sized at
	 * forward_new for max_tokens rows: */
	float *rlog_host;         /* the logits downloaded (device backends) */
	float *probs;             /* T x n_expert: the router's softmax */
	int32_t *sel;             /* T x k chosen experts, slot order */
	float *wraw;              /* T x k their probabilities */
	float *wsel;              /* T x k their weights (renormalised) */
	int *cnt, *start;         /* per expert: routed (row, slot) pairs, CSR offsets */
	int *pairs;               /* row * k + slot, grouped by expert */
	int *order;               /* the batch's experts, in run order */
	int32_t *hrow, *hdst;     /* host copies of mrow, mdst, mw (uploaded per layer) */
	float *hw;
	int *hint;                /* their blocks, then the next layer's predicted
				   * ones (2 x n_expert: wstore_hint reorders) */
	int *xp_list;             /* the next layer's predicted experts */
	struct xpredict *xp;      /* next-layer prediction (host-memory backends) */
	FILE *trace;              /* forward_set_expert_trace, or NULL */
	uint64_t n_tokens;        /* forward_tokens (relaxed atomic) */
	uint64_t map_faults;      /* smk_map_faults() when the pass could be trusted */
};

int forward_expert_prediction(const struct forward *f, struct xpredict_layer_stats *out, int max)
{
	return f && f->xp ? xpredict_stats(f->xp, out, max) : 0;
}

uint64_t forward_tokens(const struct forward *f)
{
	return f ? __atomic_load_n(&f->n_tokens, __ATOMIC_RELAXED) : 0;
}

const struct xpredict *forward_expert_predictor(const struct forward *f)
{
	return f ? f->xp : NULL;
}

int forward_set_expert_prediction(struct forward *f, enum xpredict_mode mode, struct smk_err *err)
{
	if (mode == XPREDICT_DEFAULT)
		mode = XPREDICT_MERGED;
	if (f->m->hp.n_expert <= 0 || xpredict_mode(f->xp) == mode)
		return 0;
	struct xpredict *xp = NULL;
	int rc = mode == XPREDICT_OFF ? 0 : xpredict_new(&xp, f->m, f->be, f->max_tokens, mode, err);
	if (rc)
		return rc;
	xpredict_free(f->xp);
	f->xp = xp;
	return 0;
}

int forward_set_expert_trace(struct forward *f, FILE *out, struct smk_err *err)
{
	const struct model *m = f->m;
	if (out && m->hp.n_expert == 0)
		return smk_fail(err, -EINVAL, "expert trace: %s is not a mixture of experts", m->name);
	f->trace = out;
	if (out) {
		const struct wblock *b = &m->blocks[model_expert_block(m, 0, 0)];
		fprintf(out, "smoke-expert-trace 1\nlayers %d experts %d top_k %d expert_bytes %llu\n",
			m->hp.n_layer, m->hp.n_expert, m->hp.n_expert_used, (unsigned long long)b->nbytes);
	}
	return 0;
}

int forward_set_debug(struct forward *f, forward_debug_fn fn, void *ctx)
{
	if (fn && !f->be->ops->host_memory && !f->dbg_host) {
		const struct hparams *hp = &f->m->hp;
		size_t w = (size_t)hp->n_embd;
		if ((size_t)hp->n_ff > w)
			w = (size_t)hp->n_ff;
		if ((size_t)hp->n_head * hp->head_dim > w)
			w = (size_t)hp->n_head * hp->head_dim;
		if ((size_t)hp->n_ff_exp > w)
			w = (size_t)hp->n_ff_exp;
		if ((size_t)hp->n_expert > w)
			w = (size_t)hp->n_expert;
		f->dbg_cap = w * (size_t)f->max_tokens;
		if ((size_t)f->max_logits * hp->n_vocab > f->dbg_cap)
			f->dbg_cap = (size_t)f->max_logits * hp->n_vocab;
		f->dbg_host = malloc(sizeof(float) * f->dbg_cap);
		if (!f->dbg_host)
			return -ENOMEM;
	}
	f->dbg = fn;
	f->dbg_ctx = ctx;
	return 0;
}

/* The debug hook sees host memory: a device stage is downloaded first. */
static void dbg_call(struct forward *f, const char *name, int il, const float *data, int rows,
		     int64_t len)
{
	if (!f->be->ops->host_memory) {
		size_t n = (size_t)rows * (size_t)len;
		struct smk_err e;
		if (n > f->dbg_cap || backend_download(f->be, f->dbg_host, data, sizeof(float) * n, &e))
			return;
		data = f->dbg_host;
	}
	f->dbg(f->dbg_ctx, name, il, data, rows, len);
}

/* Report a stage's output to the debug hook, if one is set. */
#define DBG(f, name, il, data, rows, len)                                     \
	do {                                                                  \
		if ((f)->dbg)                                                 \
			dbg_call(f, name, il, data, rows, len);               \
	} while (0)

#define N_BUFS 18

/* Floats of each activation buffer (x, h, q, k, v, att, o, g, u, logits,
 * shard_out, rlog, xg, eo, ys) for chunks of T tokens and L logit rows;
 * returns the arena's total, every buffer rounded up to keep the next
 * 64-byte aligned.  A dense model's MoE buffers are empty. */
static size_t scratch_floats(const struct model *m, int max_tokens, int max_logits,
			     size_t sizes[N_BUFS])
{
	const struct hparams *hp = &m->hp;
	/* With several head shards and several logit rows, a shard's matmul
	 * writes L x rows contiguously; it goes through shard_out into the
	 * logits' column range. */
	size_t shard_rows = 0;
	if (m->n_head_blocks > 1)
		for (int k = 0; k < m->n_head_blocks; k++)
			if ((size_t)m->blocks[model_head_block(m, k)].n_rows > shard_rows)
				shard_rows = (size_t)m->blocks[model_head_block(m, k)].n_rows;
	const size_t T = (size_t)max_tokens;
	const size_t q_dim = (size_t)hp->n_head * hp->head_dim;
	const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
	const size_t ff = (size_t)(hp->n_ff > hp->n_ff_exp ? hp->n_ff : hp->n_ff_exp);
	const size_t moe_rows = hp->n_expert > 0 ? T : 0;
	const size_t s[N_BUFS] = {
		T * hp->n_embd, T * hp->n_embd, T * q_dim, T * kv_dim, T * kv_dim, T * q_dim,
		T * hp->n_embd, T * ff, T * ff, (size_t)max_logits * hp->n_vocab,
		(size_t)max_logits * shard_rows,
		moe_rows * hp->n_expert, moe_rows * hp->n_embd, moe_rows * hp->n_embd,
		moe_rows * hp->n_expert_used * hp->n_embd,
		moe_rows * hp->n_expert_used, moe_rows * hp->n_expert_used,
		moe_rows * hp->n_expert_used,
	};
	size_t total = 0;
	for (int i = 0; i < N_BUFS; i++) {
		sizes[i] = s[i];
		total += (s[i] + 15) / 16 * 16;
	}
	return total;
}

uint64_t forward_scratch_bytes(const struct model *m, int max_tokens, int max_logits)
{
	size_t sizes[N_BUFS];
	return (uint64_t)scratch_floats(m, max_tokens, max_logits, sizes) * sizeof(float);
}

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
	f->map_faults = smk_map_faults();
	f->ws = ws;
	f->max_tokens = max_tokens;
	f->max_logits = max_logits;

	float **bufs[] = { &f->x, &f->h, &f->q, &f->k, &f->v, &f->att, &f->o, &f->g, &f->u,
			   &f->logits, &f->shard_out, &f->rlog, &f->xg, &f->eo, &f->ys,
			   &f->mrow, &f->mdst, &f->mw };
	size_t sizes[N_BUFS], total = scratch_floats(m, max_tokens, max_logits, sizes);
	struct smk_err e;
	if (backend_alloc(be, (void **)&f->arena, total * sizeof(float), &e)) {
		free(f);
		return smk_fail(err, -ENOMEM, "forward: cannot allocate %zu bytes of activations (%s)",
				total * sizeof(float), e.msg);
	}
	f->acalls = malloc(sizeof(*f->acalls) * (size_t)max_tokens);
	if (!f->acalls) {
		backend_free_mem(be, f->arena);
		free(f);
		return smk_fail(err, -ENOMEM, "forward: cannot allocate the attention calls");
	}
	if (!be->ops->host_memory) {
		f->logits_host = malloc(sizeof(float) * (size_t)(max_logits ? max_logits : 1) *
					(size_t)hp->n_vocab);
		f->emb_host = malloc(sizeof(float) * (size_t)max_tokens * (size_t)hp->n_embd);
		if (!f->logits_host || !f->emb_host) {
			forward_free(f);
			return smk_fail(err, -ENOMEM, "forward: cannot allocate the host logits");
		}
	}
	if ((!be->ops->host_memory || wstore_lookup_by_rows(ws)) &&
	    !(f->emb_row = malloc((size_t)m->blocks[0].t[EMB_TOKEN].row_bytes))) {
		forward_free(f);
		return smk_fail(err, -ENOMEM, "forward: cannot allocate an embedding row");
	}
	if (hp->n_expert > 0) {
		const size_t T = (size_t)max_tokens, ne = (size_t)hp->n_expert,
			     tk = T * (size_t)hp->n_expert_used;
		f->probs = malloc(sizeof(float) * T * ne);
		f->sel = malloc(sizeof(int32_t) * tk);
		f->wraw = malloc(sizeof(float) * tk);
		f->wsel = malloc(sizeof(float) * tk);
		f->cnt = malloc(sizeof(int) * ne);
		f->start = malloc(sizeof(int) * (ne + 1));
		f->pairs = malloc(sizeof(int) * tk);
		f->order = malloc(sizeof(int) * ne);
		f->hrow = malloc(sizeof(int32_t) * tk);
		f->hdst = malloc(sizeof(int32_t) * tk);
		f->hw = malloc(sizeof(float) * tk);
		f->hint = malloc(sizeof(int) * 2 * ne);
		f->xp_list = malloc(sizeof(int) * ne);
		if (!be->ops->host_memory)
			f->rlog_host = malloc(sizeof(float) * T * ne);
		if (!f->probs || !f->sel || !f->wraw || !f->wsel || !f->cnt || !f->start || !f->pairs ||
		    !f->order || !f->hint || !f->xp_list || !f->hrow || !f->hdst || !f->hw ||
		    (!be->ops->host_memory && !f->rlog_host)) {
			forward_free(f);
			return smk_fail(err, -ENOMEM, "forward: cannot allocate the expert routing buffers");
		}
		/* The next layer's experts are predicted from the hidden
		 * state (expert_predict.h); forward_set_expert_prediction
		 * changes how. */
		int rc = xpredict_new(&f->xp, m, be, max_tokens, XPREDICT_MERGED, err);
		if (rc) {
			forward_free(f);
			return rc;
		}
	}
	float *p = f->arena;
	for (size_t i = 0; i < N_BUFS; i++) {
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
	if (f->arena)
		backend_free_mem(f->be, f->arena);
	free(f->acalls);
	free(f->logits_host);
	free(f->dbg_host);
	free(f->emb_row);
	free(f->emb_host);
	free(f->rlog_host);
	free(f->probs);
	free(f->sel);
	free(f->wraw);
	free(f->wsel);
	free(f->cnt);
	free(f->start);
	free(f->pairs);
	free(f->order);
	free(f->hint);
	free(f->xp_list);
	xpredict_free(f->xp);
	free(f->hrow);
	free(f->hdst);
	free(f->hw);
	free(f);
}

/* RoPE and cache append for one item's rows [row, row + n), and its
 * attention call (*call; run_layer runs the batch's calls together):
 * positions, cache and causal mask are per sequence. */
static void item_attention(struct forward *f, const struct wblock *b, struct fwd_item *it,
			   int row, struct attn_call *call)
{
	const struct model *m = f->m;
	const struct hparams *hp = &m->hp;
	struct backend *be = f->be;
	const int il = b->layer, hd = hp->head_dim, n = it->n, pos0 = it->kv->n_pos;
	const int64_t q_dim = (int64_t)hp->n_head * hd, kv_dim = it->kv->kv_dim;
	float *q = f->q + row * q_dim, *k = f->k + row * kv_dim, *v = f->v + row * kv_dim;

	struct rope_params rp;
	model_layer_rope(m, il, &rp);
	be->ops->rope(be, q, n, hp->n_head, hd, pos0, &rp);
	be->ops->rope(be, k, n, hp->n_head_kv, hd, pos0, &rp);
	DBG(f, "Qcur", il, q, n, q_dim);
	DBG(f, "Kcur", il, k, n, kv_dim);

	struct attn_params ap = {
		.n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hd,
		.pos0 = pos0, .n_q = n, .kv_stride = kv_dim,
		.window = model_layer_is_swa(m, il) ? hp->sliding_window : 0,
		.scale = 1.0f / sqrtf((float)hd),
		/* gpt-oss: one sink logit per head (backend memory, as the block) */
		.sinks = b->has[LT_SINKS] ? (const float *)b->t[LT_SINKS].data : NULL,
	};
	if (m->fam->family == FAMILY_GEMMA3) {
		/* Gemma scales q before the product (f_attention_scale). */
		be->ops->scale(be, q, ap.scale, n * q_dim);
		ap.scale = 1.0f;
	}
	/* Through fp16: llama.cpp keeps K and V in an F16 cache (so do we,
	 * as halves) and converts Q to F16 for the Q.K product. */
	be->ops->store_fp16(be, kvcache_k(it->kv, il) + (int64_t)pos0 * kv_dim, k, n * kv_dim);
	be->ops->store_fp16(be, kvcache_v(it->kv, il) + (int64_t)pos0 * kv_dim, v, n * kv_dim);
	be->ops->round_fp16(be, q, q, n * q_dim);
	*call = (struct attn_call){ .q = q, .k = kvcache_k(it->kv, il), .v = kvcache_v(it->kv, il),
				    .out = f->att + row * q_dim, .ap = ap };
}

/* y[k] = w[k] x for nw weights on one input: one backend op where the
 * backend has one (the input prepared once, the threads meeting once),
 * else one matmul each; the results are the same. */
static int matmuls(struct backend *be, const struct wtensor *const *w, int nw, const float *x, int T,
		   float *const *y)
{
	if (be->ops->matmuls)
		return be->ops->matmuls(be, w, nw, x, T, y);
	for (int k = 0; k < nw; k++) {
		int rc = be->ops->matmul(be, w[k], x, T, y[k]);
		if (rc)
			return rc;
	}
	return 0;
}

/* One layer over all T rows of the batch. */
static int run_layer(struct forward *f, const struct wblock *b, struct fwd_item *items,
		     int n_items, int T, struct smk_err *err)
{
	const struct model *m = f->m;
	const struct hparams *hp = &m->hp;
	const struct family_desc *fam = m->fam;
	struct backend *be = f->be;
	const struct backend_ops *op = be->ops;
	const int il = b->layer;
	const int hd = hp->head_dim;
	int rc;

	op->rmsnorm(be, f->x, &b->t[LT_ATTN_NORM], f->h, hp->n_embd, T, hp->eps);
	DBG(f, "attn_norm", il, f->h, T, hp->n_embd);
	const struct wtensor *qkv[] = { &b->t[LT_WQ], &b->t[LT_WK], &b->t[LT_WV] };
	if ((rc = matmuls(be, qkv, 3, f->h, T, (float *const[]){ f->q, f->k, f->v })))
		return smk_fail(err, rc, "layer %d: attention projection failed", il);
	/* Biases where the model has them (qwen2 always; llama with
	 * attention_bias), whatever the family requires. */
	if (b->has[LT_BQ])
		op->add_bias(be, f->q, &b->t[LT_BQ], T);
	if (b->has[LT_BK])
		op->add_bias(be, f->k, &b->t[LT_BK], T);
	if (b->has[LT_BV])
		op->add_bias(be, f->v, &b->t[LT_BV], T);
	DBG(f, "Vcur", il, f->v, T, (int64_t)hp->n_head_kv * hd);
	if (fam->qk_norm) {
		op->rmsnorm(be, f->q, &b->t[LT_Q_NORM], f->q, hd, T * hp->n_head, hp->eps);
		op->rmsnorm(be, f->k, &b->t[LT_K_NORM], f->k, hd, T * hp->n_head_kv, hp->eps);
		DBG(f, "Qcur_normed", il, f->q, T, (int64_t)hp->n_head * hd);
		DBG(f, "Kcur_normed", il, f->k, T, (int64_t)hp->n_head_kv * hd);
	}
	for (int i = 0, row = 0; i < n_items; row += items[i].n, i++)
		item_attention(f, b, &items[i], row, &f->acalls[i]);
	/* The sequences' attention as one job where the backend has it (at
	 * batched decode each is one query row); the same results. */
	if (op->attentions)
		op->attentions(be, f->acalls, n_items);
	else
		for (int i = 0; i < n_items; i++)
			op->attention(be, f->acalls[i].q, f->acalls[i].k, f->acalls[i].v, f->acalls[i].out,
				      &f->acalls[i].ap);
	DBG(f, "kqv_out", il, f->att, T, (int64_t)hp->n_head * hd);

	if ((rc = op->matmul(be, &b->t[LT_WO], f->att, T, f->o)))
		return smk_fail(err, rc, "layer %d: attention output failed", il);
	if (b->has[LT_BO])
		op->add_bias(be, f->o, &b->t[LT_BO], T);
	if (fam->post_norms) {
		op->rmsnorm(be, f->o, &b->t[LT_POST_ATTN_NORM], f->o, hp->n_embd, T, hp->eps);
		DBG(f, "attn_post_norm", il, f->o, T, hp->n_embd);
	}
	op->add(be, f->x, f->o, (int64_t)T * hp->n_embd);
	DBG(f, fam->post_norms ? "sa_out" : "ffn_inp", il, f->x, T, hp->n_embd);

	op->rmsnorm(be, f->x, &b->t[LT_FFN_NORM], f->h, hp->n_embd, T, hp->eps);
	/* llama.cpp's gpt-oss graph calls the FFN's pre-norm attn_post_norm */
	DBG(f, fam->ffn_norm_name ? "attn_post_norm" : "ffn_norm", il, f->h, T, hp->n_embd);
	if (hp->n_expert > 0) {
		/* The experts run after this block is released (run_moe); the
		 * router's logits are all they need from it. */
		if ((rc = op->matmul(be, &b->t[LT_GATE_INP], f->h, T, f->rlog)))
			return smk_fail(err, rc, "layer %d: expert router failed", il);
		DBG(f, "ffn_moe_logits", il, f->rlog, T, hp->n_expert);
		if (b->has[LT_GATE_INP_B]) {
			/* gpt-oss: llama.cpp's ffn_moe_logits_biased, the tensor
			 * its dump names ffn_moe_probs (SOFTMAX_WEIGHT: probs =
			 * the biased logits) */
			op->add_bias(be, f->rlog, &b->t[LT_GATE_INP_B], T);
		}
		return 0;
	}
	const struct wtensor *gate_up[] = { &b->t[LT_GATE], &b->t[LT_UP] };
	if ((rc = matmuls(be, gate_up, 2, f->h, T, (float *const[]){ f->g, f->u })))
		return smk_fail(err, rc, "layer %d: feed-forward projection failed", il);
	DBG(f, "ffn_gate", il, f->g, T, hp->n_ff);
	DBG(f, "ffn_up", il, f->u, T, hp->n_ff);
	if (fam->act == ACT_GELU)
		op->gelu_mul(be, f->g, f->u, (int64_t)T * hp->n_ff);
	else
		op->silu_mul(be, f->g, f->u, (int64_t)T * hp->n_ff);
	DBG(f, fam->act == ACT_GELU ? "ffn_geglu" : "ffn_swiglu", il, f->g, T, hp->n_ff);
	if ((rc = op->matmul(be, &b->t[LT_DOWN], f->g, T, f->o)))
		return smk_fail(err, rc, "layer %d: feed-forward output failed", il);
	DBG(f, "ffn_out", il, f->o, T, hp->n_embd);
	if (fam->post_norms) {
		op->rmsnorm(be, f->o, &b->t[LT_POST_FFN_NORM], f->o, hp->n_embd, T, hp->eps);
		DBG(f, "ffn_post_norm", il, f->o, T, hp->n_embd);
	}
	op->add(be, f->x, f->o, (int64_t)T * hp->n_embd);
	DBG(f, "l_out", il, f->x, T, hp->n_embd);
	return 0;
}

/* The mixture-of-experts half of layer il over all T rows, after its
 * dense block ran the router (f->h: the FFN input, f->rlog: the logits).
 * Routing on the host (compute/moe_route.h); then every expert chosen by
 * some row is acquired once, run once over the rows routed to it
 * (gathered into xg), and released; each row's result lands, scaled by
 * its weight, in the row's slot of ys; the slots are summed in slot order
 * (llama.cpp's order) and added to the residual. */
static int run_moe(struct forward *f, const struct fwd_item *items, int n_items, int il, int T,
		   struct smk_err *err)
{
	const struct model *m = f->m;
	const struct hparams *hp = &m->hp;
	struct backend *be = f->be;
	const struct backend_ops *op = be->ops;
	const int ne = hp->n_expert, k = hp->n_expert_used, d = hp->n_embd, ff = hp->n_ff_exp;
	const size_t row_bytes = sizeof(float) * (size_t)d;
	int rc;

	const float *logits = f->rlog;
	if (f->rlog_host) {
		if ((rc = backend_download(be, f->rlog_host, f->rlog, sizeof(float) * (size_t)T * ne, err)))
			return rc;
		logits = f->rlog_host;
	}
	const bool oai = m->fam->oai_moe;
	if (oai) {
		/* gpt-oss: top-k of the biased logits, softmax over those k;
		 * probs (llama.cpp's ffn_moe_probs) are the logits themselves */
		moe_route_topk_softmax(logits, ne, T, k, f->sel, f->wraw, f->wsel);
		memcpy(f->probs, logits, sizeof(float) * (size_t)T * ne);
	} else {
		moe_route(logits, ne, T, k, f->probs, f->sel, f->wraw, f->wsel);
	}
	if (f->trace)
		for (int i = 0, row = 0; i < n_items; row += items[i].n, i++)
			for (int t = 0; t < items[i].n; t++) {
				const int32_t *pr = f->xp ? xpredict_row(f->xp, il, row + t) : NULL;
				if (pr) {
					fprintf(f->trace, "p %d %d %d", i, items[i].kv->n_pos + t, il);
					for (int j = 0; j < k; j++)
						fprintf(f->trace, " %d", (int)pr[j]);
					fputc('\n', f->trace);
				}
				fprintf(f->trace, "r %d %d %d", i, items[i].kv->n_pos + t, il);
				for (int j = 0; j < k; j++)
					fprintf(f->trace, " %d", (int)f->sel[(int64_t)(row + t) * k + j]);
				fputc('\n', f->trace);
			}
	if (f->dbg) {
		/* Host arrays: straight to the hook (no download). */
		f->dbg(f->dbg_ctx, "ffn_moe_probs", il, f->probs, T, ne);
		f->dbg(f->dbg_ctx, "ffn_moe_weights", il, f->wraw, T, k);
		f->dbg(f->dbg_ctx, oai ? "ffn_moe_weights_softmax" : "ffn_moe_weights_norm", il, f->wsel,
		       T, k);
	}

	/* Group the (row, slot) pairs by expert; the batch's experts in the
	 * order rows first ask for them (row 0's most probable first). */
	int n_used = 0;
	for (int e = 0; e < ne; e++)
		f->cnt[e] = 0;
	for (int i = 0; i < T * k; i++)
		if (f->cnt[f->sel[i]]++ == 0)
			f->order[n_used++] = f->sel[i];
	f->start[0] = 0;
	for (int e = 0; e < ne; e++) {
		f->start[e + 1] = f->start[e] + f->cnt[e];
		f->cnt[e] = 0;
	}
	for (int i = 0; i < T * k; i++) {
		const int e = f->sel[i];
		f->pairs[f->start[e] + f->cnt[e]++] = i;
	}
	/* Each pair's rows and weight, for the row ops, in one upload each. */
	const bool row_ops = op->gather_rows && op->scatter_scaled_rows;
	if (row_ops) {
		for (int p = 0; p < T * k; p++) {
			const int i = f->pairs[p], row = i / k, slot = i % k;
			f->hrow[p] = row;
			f->hdst[p] = slot * T + row;
			f->hw[p] = f->wsel[i];
		}
		const size_t nb = sizeof(int32_t) * (size_t)T * k;
		if ((rc = backend_upload(be, f->mrow, f->hrow, nb, err)) ||
		    (rc = backend_upload(be, f->mdst, f->hdst, nb, err)) ||
		    (rc = backend_upload(be, f->mw, f->hw, sizeof(float) * (size_t)T * k, err)))
			return rc;
	}
	/* Score the prediction made for this layer, then predict the next
	 * one (or, after the last, the first layer of the next step) from
	 * the residual stream after this layer's attention (f->x, not yet
	 * holding this layer's FFN output): expert_predict.h. */
	int n_pred = 0, n_read = 0, next = il + 1;
	if (f->xp) {
		xpredict_score(f->xp, il, f->sel, T, k);
		/* The last layer predicts nothing: the next step's first layer
		 * is announced when that step starts (run_pass) - a hint that
		 * outlived this step would keep the prefetch loop fetching and
		 * evicting against the plan's walk while the daemon idles
		 * (seen: 13k wasted prefetches after one request at a tight
		 * budget). */
		if (next < hp->n_layer) {
			const float *x = f->x;
			float *staging = xpredict_staging(f->xp);
			if (staging && (rc = backend_download(be, staging, f->x,
							      row_bytes * (size_t)T, err)))
				return rc;
			if (staging)
				x = staging;
			/* scratch: xg is gathered into only when the experts
			 * run, below; the router's logits are spent (routed) */
			n_pred = xpredict_layer(f->xp, next, x, T, f->xg, f->rlog, f->xp_list, &n_read);
		}
	}
	/* Announce them: the store fetches the missing ones in this order and
	 * puts the ones it holds first, so compute starts without waiting;
	 * the predicted ones follow, fetched while this layer computes. */
	for (int j = 0; j < n_used; j++)
		f->hint[j] = model_expert_block(m, il, f->order[j]);
	for (int j = 0; j < n_pred; j++)
		f->hint[n_used + j] = model_expert_block(m, next, f->xp_list[j]);
	wstore_hint(f->ws, f->hint, n_used + n_pred, n_used, n_used + n_read);
	/* Run this layer's experts in the store's order (ready first). */
	int nr = 0;
	for (int j = 0; j < n_used + n_pred; j++)
		if (m->blocks[f->hint[j]].layer == il)
			f->hint[nr++] = f->hint[j];

	for (int j = 0; j < n_used; j++) {
		const int bi = f->hint[j];
		const int e = m->blocks[bi].expert;
		const int *pr = f->pairs + f->start[e], r = f->cnt[e];
		const struct wblock *b = wstore_acquire(f->ws, bi, err);
		if (!b)
			return err ? err->code : -EIO;
		if (row_ops)
			op->gather_rows(be, f->xg, f->h, (const int32_t *)f->mrow + f->start[e], r, d);
		else
			for (int i = 0; i < r; i++)
				op->copy(be, f->xg + (int64_t)i * d, f->h + (int64_t)(pr[i] / k) * d, row_bytes);
		const struct wtensor *gate_up[] = { &b->t[LT_GATE], &b->t[LT_UP] };
		if ((rc = matmuls(be, gate_up, 2, f->xg, r, (float *const[]){ f->g, f->u }))) {
			wstore_release(f->ws, bi);
			return smk_fail(err, rc, "layer %d expert %d: projection failed", il, e);
		}
		if (oai) {
			/* gpt-oss: biased projections, the clamped SwiGLU (alpha
			 * 1.702, limit 7, fixed by the architecture as in
			 * llama.cpp), a biased output */
			op->add_bias(be, f->u, &b->t[LT_UP_B], r);
			op->add_bias(be, f->g, &b->t[LT_GATE_B], r);
			op->swiglu_oai(be, f->g, f->u, (int64_t)r * ff, 1.702f, 7.0f);
		} else {
			op->silu_mul(be, f->g, f->u, (int64_t)r * ff);
		}
		rc = op->matmul(be, &b->t[LT_DOWN], f->g, r, f->eo);
		if (!rc && oai)
			op->add_bias(be, f->eo, &b->t[LT_DOWN_B], r);
		wstore_release(f->ws, bi);
		if (rc)
			return smk_fail(err, rc, "layer %d expert %d: output failed", il, e);
		if (row_ops) {
			op->scatter_scaled_rows(be, f->ys, f->eo, (const int32_t *)f->mdst + f->start[e],
						f->mw + f->start[e], r, d);
			continue;
		}
		for (int i = 0; i < r; i++) {
			const int row = pr[i] / k, slot = pr[i] % k;
			float *y = f->ys + ((int64_t)slot * T + row) * d;
			op->copy(be, y, f->eo + (int64_t)i * d, row_bytes);
			op->scale(be, y, f->wsel[pr[i]], d);
		}
	}
	op->copy(be, f->o, f->ys, row_bytes * (size_t)T);
	for (int s = 1; s < k; s++)
		op->add(be, f->o, f->ys + (int64_t)s * T * d, (int64_t)T * d);
	DBG(f, "ffn_moe_out", il, f->o, T, d);
	op->add(be, f->x, f->o, (int64_t)T * d);
	DBG(f, "l_out", il, f->x, T, d);
	return 0;
}

/* Everything that can be wrong with a batch is checked before any cache is
 * touched, so a refused batch leaves every sequence as it was. */
static int check_batch(struct forward *f, struct fwd_item *items, int n_items, int *T_out,
		       int *L_out, struct smk_err *err)
{
	const struct hparams *hp = &f->m->hp;
	int T = 0, L = 0;
	if (n_items <= 0)
		return smk_fail(err, -EINVAL, "forward: empty batch");
	for (int i = 0; i < n_items; i++) {
		struct fwd_item *it = &items[i];
		if (it->n <= 0 || it->n_logits < 0 || it->n_logits > it->n)
			return smk_fail(err, -EINVAL, "forward: item %d has %d tokens / %d logits", i,
					it->n, it->n_logits);
		if (it->kv->n_pos + it->n > it->kv->n_ctx)
			return smk_fail(err, -ENOSPC, "context full: %d + %d tokens exceed %d positions",
					it->kv->n_pos, it->n, it->kv->n_ctx);
		if (it->kv->n_pos + it->n > f->be->limits.max_ctx)
			return smk_fail(err, -ENOSPC, "context of %d positions exceeds the backend's %d",
					it->kv->n_pos + it->n, f->be->limits.max_ctx);
		for (int j = 0; j < i; j++)
			if (items[j].kv == it->kv)
				return smk_fail(err, -EINVAL, "forward: items %d and %d share a cache", j, i);
		for (int t = 0; t < it->n; t++)
			if (it->tok[t] < 0 || it->tok[t] >= hp->n_vocab)
				return smk_fail(err, -ERANGE, "token id %d at position %d is out of range (0..%d)",
						it->tok[t], t, hp->n_vocab - 1);
		T += it->n;
		L += it->n_logits;
	}
	if (T > f->max_tokens || L > f->max_logits)
		return smk_fail(err, -EINVAL, "forward: %d tokens / %d logits exceed the chunk limits (%d / %d)",
				T, L, f->max_tokens, f->max_logits);
	*T_out = T;
	*L_out = L;
	return 0;
}

/* The embedding lookup by rows, on the host: each token's row read from
 * the store and dequantised with the CPU decoder (bit-identical to the
 * kernels' decoder, so results do not change); on a device backend, then
 * one upload. */
static int embed_rows_host(struct forward *f, struct fwd_item *items, int n_items, float scale,
			   struct smk_err *err)
{
	const struct model *m = f->m;
	const int64_t d = m->hp.n_embd;
	int rc = 0, T = 0;
	for (int i = 0; i < n_items && !rc; i++)
		for (int t = 0; t < items[i].n && !rc; t++, T++) {
			const int32_t id = items[i].tok[t];
			int s = 0;
			while (s + 1 < m->n_emb_blocks && id >= m->blocks[s].row0 + m->blocks[s].n_rows)
				s++;
			const struct wtensor *tab = &m->blocks[s].t[EMB_TOKEN];
			float *y = (f->emb_host ? f->emb_host : f->x) + (int64_t)T * d;
			if ((rc = wstore_read_rows(f->ws, s, EMB_TOKEN, id - m->blocks[s].row0, 1, f->emb_row,
						   err)))
				break;
			if ((rc = qtype_dequant_row(tab->type, f->emb_row, y, d)))
				return smk_fail(err, rc, "embedding: cannot decode %s rows", tab->name);
			if (scale != 1.0f)
				for (int64_t k = 0; k < d; k++)
					y[k] *= scale;
		}
	if (!rc && f->emb_host)
		rc = backend_upload(f->be, f->x, f->emb_host, sizeof(float) * (size_t)T * (size_t)d, err);
	return rc;
}

/* The embedding lookup: by rows where the store says so or the backend
 * computes elsewhere (embed_rows_host); otherwise only the shards that
 * hold one of the batch's tokens are acquired, in shard order (the plan
 * order the predictor sees). */
static int run_embed(struct forward *f, struct fwd_item *items, int n_items, struct smk_err *err)
{
	const struct model *m = f->m;
	const struct hparams *hp = &m->hp;
	struct backend *be = f->be;
	const float scale = m->fam->embed_scale ? sqrtf((float)hp->n_embd) : 1.0f;
	if (f->emb_row)
		return embed_rows_host(f, items, n_items, scale, err);
	for (int s = 0; s < m->n_emb_blocks; s++) {
		const int64_t r0 = m->blocks[s].row0, r1 = r0 + m->blocks[s].n_rows;
		bool want = false;
		for (int i = 0; i < n_items && !want; i++)
			for (int t = 0; t < items[i].n && !want; t++)
				want = items[i].tok[t] >= r0 && items[i].tok[t] < r1;
		if (!want)
			continue;
		const struct wblock *b = wstore_acquire(f->ws, s, err);
		if (!b)
			return err ? err->code : -EIO;
		int rc = 0;
		if (m->n_emb_blocks == 1) {
			/* One shard holds every row: whole items at once. */
			for (int i = 0, row = 0; i < n_items && !rc; row += items[i].n, i++)
				rc = be->ops->embed(be, &b->t[EMB_TOKEN], items[i].tok, items[i].n,
						    scale, f->x + (int64_t)row * hp->n_embd);
		} else {
			for (int i = 0, row = 0; i < n_items && !rc; row += items[i].n, i++)
				for (int t = 0; t < items[i].n && !rc; t++) {
					if (items[i].tok[t] < r0 || items[i].tok[t] >= r1)
						continue;
					const int32_t local = (int32_t)(items[i].tok[t] - r0);
					rc = be->ops->embed(be, &b->t[EMB_TOKEN], &local, 1, scale,
							    f->x + (int64_t)(row + t) * hp->n_embd);
				}
		}
		wstore_release(f->ws, s);
		if (rc)
			return smk_fail(err, rc, "embedding lookup failed");
	}
	return 0;
}

/* The output head over the L gathered rows: norm, then the vocabulary
 * shards in order, each writing its column range of the logits.  Every
 * logit is the same per-row dot product as with one whole table. */
static int run_head(struct forward *f, float *rows, int L, struct smk_err *err)
{
	const struct model *m = f->m;
	const struct hparams *hp = &m->hp;
	struct backend *be = f->be;
	for (int k = 0; k < m->n_head_blocks; k++) {
		const int bi = model_head_block(m, k);
		const struct wblock *b = wstore_acquire(f->ws, bi, err);
		if (!b)
			return err ? err->code : -EIO;
		if (k == 0) {
			be->ops->rmsnorm(be, rows, &b->t[HEAD_NORM], f->h, hp->n_embd, L, hp->eps);
			DBG(f, "result_norm", -1, f->h, L, hp->n_embd);
		}
		const int64_t r0 = b->row0, nr = b->n_rows;
		int rc;
		if (m->n_head_blocks == 1 || L == 1) {
			rc = be->ops->matmul(be, &b->t[HEAD_OUTPUT], f->h, L, f->logits + r0);
		} else {
			rc = be->ops->matmul(be, &b->t[HEAD_OUTPUT], f->h, L, f->shard_out);
			for (int r = 0; r < L && !rc; r++)
				be->ops->copy(be, f->logits + (int64_t)r * hp->n_vocab + r0,
					      f->shard_out + r * nr, sizeof(float) * (size_t)nr);
		}
		wstore_release(f->ws, bi);
		if (rc)
			return smk_fail(err, rc, "output head failed");
	}
	return 0;
}

/* The pass itself, after check_batch; on failure the caller clears the
 * backend's pending state. */
/* The first layer's predicted experts (history: expert_predict.h),
 * announced once its dense block is in hand, so that they are fetched
 * while its attention runs. */
static void announce_first_layer(struct forward *f)
{
	int n_read;
	const int n = xpredict_first(f->xp, f->xp_list, &n_read);
	for (int j = 0; j < n; j++)
		f->hint[j] = model_expert_block(f->m, 0, f->xp_list[j]);
	if (n)
		wstore_hint(f->ws, f->hint, n, 0, n_read);
}

static int run_pass(struct forward *f, struct fwd_item *items, int n_items, int T, int L,
		    struct smk_err *err)
{
	const struct model *m = f->m;
	const struct hparams *hp = &m->hp;
	int rc;

	if ((rc = run_embed(f, items, n_items, err)))
		return rc;
	DBG(f, m->fam->embed_scale ? "inp_scaled" : "inp_embd", -1, f->x, T, hp->n_embd);

	for (int il = 0; il < hp->n_layer; il++) {
		const int bi = model_layer_block(m, il);
		const struct wblock *b = wstore_acquire(f->ws, bi, err);
		if (!b)
			return err ? err->code : -EIO;
		if (il == 0 && f->xp)
			announce_first_layer(f);
		rc = run_layer(f, b, items, n_items, T, err);
		wstore_release(f->ws, bi);
		if (!rc && hp->n_expert > 0)
			rc = run_moe(f, items, n_items, il, T, err);
		if (rc)
			return rc;
	}

	if (L > 0) {
		/* Gather the rows that want logits, in item order, then one
		 * output-head pass for all of them. */
		float *rows = f->o;
		for (int i = 0, row = 0, k = 0; i < n_items; row += items[i].n, i++) {
			const int first = row + items[i].n - items[i].n_logits;
			f->be->ops->copy(f->be, rows + (int64_t)k * hp->n_embd,
					 f->x + (int64_t)first * hp->n_embd,
					 sizeof(float) * (size_t)items[i].n_logits * hp->n_embd);
			k += items[i].n_logits;
		}
		if ((rc = run_head(f, rows, L, err)))
			return rc;
		DBG(f, "result_output", -1, f->logits, L, hp->n_vocab);
	}
	/* One wait per step: the logits come home (device backends), and any
	 * failure of an op queued during the pass surfaces here, before a
	 * cache position is committed. */
	const float *logits = f->logits;
	if (f->logits_host) {
		rc = L > 0 ? backend_download(f->be, f->logits_host, f->logits,
					      sizeof(float) * (size_t)L * hp->n_vocab, err)
			   : backend_sync(f->be, err);
		if (rc)
			return rc;
		logits = f->logits_host;
	}
	for (int i = 0, k = 0; i < n_items; i++) {
		items[i].logits = items[i].n_logits ? logits + (int64_t)k * hp->n_vocab : NULL;
		k += items[i].n_logits;
		items[i].kv->n_pos += items[i].n;
	}
	__atomic_add_fetch(&f->n_tokens, (uint64_t)T, __ATOMIC_RELAXED);
	return 0;
}

int forward_run_batch(struct forward *f, struct fwd_item *items, int n_items,
		      struct smk_err *err)
{
	int T = 0, L = 0;
	int rc = check_batch(f, items, n_items, &T, &L, err);
	if (rc)
		return rc;
	rc = run_pass(f, items, n_items, T, L, err);
	if (rc == 0 && smk_map_faults() != f->map_faults)
		/* A mapped model file was cut short (util/mapfile.h): this
		 * pass, or the tokenizer, may have read zeros in place of the
		 * weights; its logits are never given out, nor any later. */
		rc = smk_fail(err, -EIO, "the model file %s was cut short while the daemon had it mapped "
			      "(truncated, or rewritten in place): its weights can no longer be read; "
			      "restart smoked to load it again", smk_map_fault_path());
	if (rc && !f->be->ops->host_memory) {
		/* Let the queued work drain and drop the failure the backend
		 * kept, so that the next pass starts clean (rc says it all). */
		backend_sync(f->be, NULL);
	}
	return rc;
}

int forward_run(struct forward *f, struct kvcache *kv, const int32_t *tok, int n,
		int n_logits, const float **logits, struct smk_err *err)
{
	struct fwd_item it = { .kv = kv, .tok = tok, .n = n, .n_logits = n_logits };
	int rc = forward_run_batch(f, &it, 1, err);
	if (rc == 0 && n_logits > 0)
		*logits = it.logits;
	return rc;
}
