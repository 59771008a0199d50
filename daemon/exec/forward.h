/* forward.h - one forward pass of a dense decoder over a chunk of tokens.
 *
 * The pass walks the model's plan (embedding block, each layer block, head
 * block), acquiring each weight block from the weight store just before it
 * runs and releasing it right after, so an out-of-core store can stream
 * blocks through a small budget.  All activation buffers are allocated by
 * forward_new() for at most max_tokens tokens per call; forward_run() never
 * allocates.
 */
#ifndef SMK_EXEC_FORWARD_H
#define SMK_EXEC_FORWARD_H

#include <stdio.h>

#include "exec/expert_predict.h"
#include "exec/kvcache.h"
#include "arch/model.h"
#include "compute/backend.h"
#include "weights/wstore.h"

struct forward;

/* Activation scratch for chunks of up to max_tokens tokens, of which up to
 * max_logits get logits.  *out owned by the caller (forward_free). */
int forward_new(struct forward **out, const struct model *m, struct backend *be,
		struct wstore *ws, int max_tokens, int max_logits, struct smk_err *err);
void forward_free(struct forward *f);

/* Bytes of activation scratch forward_new takes in the backend's memory. */
uint64_t forward_scratch_bytes(const struct model *m, int max_tokens, int max_logits);

/* One sequence's share of a batched step: n tokens appended at positions
 * kv->n_pos.., and the logits of its last n_logits tokens wanted.  On
 * success `logits` points at n_logits rows of n_vocab floats (owned by the
 * forward, valid until the next call). */
struct fwd_item {
	struct kvcache *kv;
	const int32_t *tok;
	int n;
	int n_logits;
	const float *logits;  /* out */
};

/* Continuous batching: run every item's tokens through the model in one
 * pass, so that each weight block is acquired once and every matmul covers
 * all rows of all sequences; attention runs per sequence on its own cache.
 * The total of n over the items must be <= max_tokens and of n_logits <=
 * max_logits.  Either every item advances or (on failure) none does. */
int forward_run_batch(struct forward *f, struct fwd_item *items, int n_items,
		      struct smk_err *err);

/* Debug hook, for tests and tools only: called after each stage of a pass
 * with the stage's output, `rows` rows of row_len floats covering every row
 * of the batch (RoPE outputs: per sequence).  Stage names and layer numbers
 * are those of llama.cpp's graph callbacks ("attn_norm", "Qcur", "kqv_out",
 * "l_out", ... per layer; "inp_embd"/"inp_scaled", "result_norm",
 * "result_output" with layer -1), so a run of ours compares tensor by
 * tensor with `llama-ref dump` (docs/reference.md).  NULL (the default)
 * turns it off; then each stage costs one untaken branch.  With a device
 * backend each stage is downloaded for the hook (a host buffer made here:
 * -ENOMEM if it cannot be). */
typedef void (*forward_debug_fn)(void *ctx, const char *name, int layer, const float *data,
				 int rows, int64_t row_len);
int forward_set_debug(struct forward *f, forward_debug_fn fn, void *ctx);

/* Record every pass's mixture-of-experts routing to `out` as an expert
 * trace (docs/expert-trace.md, version 1): the two header lines now, then
 * for each MoE layer and each row of the batch "r SEQ POS LAYER E1 .. Ek",
 * the experts in slot order (the most probable first), SEQ the row's item
 * index in its batch and POS its position.  NULL stops.  out stays the
 * caller's (it must outlive the recording).  -EINVAL for a dense model. */
int forward_set_expert_trace(struct forward *f, FILE *out, struct smk_err *err);

/* The next-layer expert predictor's per-layer counts (expert_predict.h),
 * up to max layers; 0 for a dense model or with prediction off.  Any
 * thread. */
int forward_expert_prediction(const struct forward *f, struct xpredict_layer_stats *out, int max);

/* How the experts of a mixture are predicted (expert_predict.h):
 * XPREDICT_MERGED unless this says otherwise; OFF announces only each
 * layer's chosen experts.  Set-up only (not while a pass runs); a dense
 * model ignores it.  -ENOMEM with err set, the old predictor kept. */
int forward_set_expert_prediction(struct forward *f, enum xpredict_mode mode, struct smk_err *err);

/* Token rows that completed a pass (every batch's rows summed): the
 * denominator of per-token figures.  Any thread. */
uint64_t forward_tokens(const struct forward *f);

/* The predictor (for its mode and bytes), or NULL: dense, or off. */
const struct xpredict *forward_expert_predictor(const struct forward *f);

/* One sequence: run tok[0..n) at positions kv->n_pos.. and append their keys and values to
 * kv.  Logits of the last n_logits tokens (n_logits <= max_logits, may be 0)
 * are written to *logits (n_logits rows of n_vocab floats, owned by f, valid
 * until the next call).  On failure kv is left as it was. */
int forward_run(struct forward *f, struct kvcache *kv, const int32_t *tok, int n,
		int n_logits, const float **logits, struct smk_err *err);

#endif
