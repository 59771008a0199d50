/* expert_predict.h - the "smoke test" for a mixture of experts: which
 * experts will the next layer choose?
 *
 * While layer L runs, layer L+1's router is applied to layer L's hidden
 * state, so that L+1's experts can be fetched while L's compute: the
 * residual stream after L's attention (the input of L's FFN) - the earliest
 * point the prediction can be made, before L's experts run - normalised
 * with L+1's FFN norm, times L+1's router (plus its bias: gpt-oss), top-k
 * per row (the families' gating is monotonic in the logits, so the top-k
 * of the logits is the top-k of the gate).  The residual stream moves
 * little across one layer's FFN, which is why this works (Eliseev & Mazur;
 * Fate).  The first MoE layer of the next token has no earlier layer: it
 * is predicted as the current token's choices there (consecutive tokens
 * reuse experts) - scored, but not announced to the store (the forward
 * pass hints only predictions its own step will consume).
 *
 * The routers (and FFN norms, biases) are copied to host floats at load,
 * outside the weight store, because they are needed a layer early and are
 * small (n_layer x n_expert x n_embd floats: 8.8 MiB for gpt-oss-20b, 48
 * MiB for Qwen3-30B-A3B); xpredict_bytes says how much.  Host-memory
 * backends only (the hidden state is read on the host); the CUDA backend
 * runs without prediction for now.
 *
 * Precision (predicted and chosen / predicted) and recall (predicted and
 * chosen / chosen) are counted per layer over the batch's expert sets.
 */
#ifndef SMK_EXEC_EXPERT_PREDICT_H
#define SMK_EXEC_EXPERT_PREDICT_H

#include <stdint.h>

#include "arch/model.h"
#include "compute/backend.h"
#include "util/err.h"

struct xpredict;

struct xpredict_layer_stats {
	int layer;
	uint64_t predicted, chosen, both;   /* expert-set sizes summed over steps */
};

/* For model m (a mixture of experts) and batches of up to max_rows rows.
 * *out owned by the caller (xpredict_free). */
int xpredict_new(struct xpredict **out, const struct model *m, int max_rows, struct smk_err *err);
void xpredict_free(struct xpredict *p);

/* Host bytes the copies take. */
uint64_t xpredict_bytes(const struct xpredict *p);

/* Predict layer `layer`'s experts for rows x[0..T) (n_embd floats each, the
 * residual stream after the previous layer's attention), remembering them
 * for xpredict_score, with the ops of be (a host-memory backend) and its
 * scratch h (T x n_embd) and logits (T x n_expert), both overwritten.  The
 * union over rows, most likely first, into experts[0..); returns its size
 * (0 if the product failed: no prediction). */
int xpredict_layer(struct xpredict *p, struct backend *be, int layer, const float *x, int T,
		   float *h, float *logits, int *experts);

/* The first MoE layer of the next step: the experts chosen there this step
 * (xpredict_score of that layer), remembered as its prediction.  Returns
 * the set's size, into experts[0..). */
int xpredict_wrap(struct xpredict *p, int *experts);

/* Layer `layer` routed: sel[T x k] its choice.  Scores the prediction made
 * for it, if any, and forgets it. */
void xpredict_score(struct xpredict *p, int layer, const int32_t *sel, int T, int k);

/* Row t's predicted experts for `layer` (k of them), or NULL when the
 * prediction was not made per row (no prediction, or the wrap-around). */
const int32_t *xpredict_row(const struct xpredict *p, int layer, int t);

/* Per-layer counts (any thread), up to max; returns the number of layers. */
int xpredict_stats(const struct xpredict *p, struct xpredict_layer_stats *out, int max);

#endif
