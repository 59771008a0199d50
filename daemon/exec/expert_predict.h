/* expert_predict.h - the "smoke test" for a mixture of experts: which
 * experts will the next layer choose?
 *
 * Two sources, merged into one list in priority order (the store fetches
 * the list's missing experts in that order, so the likeliest come first):
 *
 * 1. The router (XPREDICT_ROUTER).  While layer L runs, layer L+1's router
 *    is applied to layer L's hidden state, so that L+1's experts can be
 *    fetched while L's compute: the residual stream after L's attention
 *    (the input of L's FFN) - the earliest point the prediction can be
 *    made, before L's experts run - normalised with L+1's FFN norm, times
 *    L+1's router (plus its bias: gpt-oss), top-k per row (the families'
 *    gating is monotonic in the logits, so the top-k of the logits is the
 *    top-k of the gate).  The residual stream moves little across one
 *    layer's FFN, which is why this works (Eliseev & Mazur; Fate).  The
 *    union over the batch's rows, row 0's most likely first.
 *
 * 2. History (XPREDICT_HISTORY): each layer's recent choice (the experts
 *    the previous step chose there) and its frequent ones (a decaying count
 *    of choices per expert, about the last 32 steps).  After the router's
 *    set, up to k more: the recent experts it missed, most frequent first,
 *    then the most frequent others (never an expert the layer has not
 *    chosen).  History alone: the recent set, then k frequent ones.
 *    History's extras are weaker evidence than the router's, and whether
 *    an expert is worth its room is the cache policy's call: they are
 *    announced to be kept and moved up from the RAM tier to the device,
 *    never read from the file (measured on a synthetic 8 x 64-expert model
 *    at a third in RAM: reading them too took 41% more bytes for no fewer
 *    stalls).  Alone, history's recent experts are the prediction, and are
 *    read.
 *
 * The first MoE layer of a step has no earlier layer: its prediction is
 * history alone (with the router mode alone: the previous step's choice),
 * made when the step starts (xpredict_first), so it is fetched while the
 * first layer's attention runs and never while the daemon idles.
 *
 * The routers (and FFN norms, biases) are copied to host floats at load,
 * outside the weight store, because they are needed a layer early and are
 * small (n_layer x n_expert x n_embd floats: 8.8 MiB for gpt-oss-20b, 48
 * MiB for Qwen3-30B-A3B); xpredict_bytes says how much.  With a host-memory
 * backend the product runs on its ops (threads, SIMD) over the forward's
 * spent scratch; with a device backend the hidden state is downloaded
 * (T x n_embd floats, beside the router logits the host routes with
 * anyway) and the product runs on a one-thread CPU backend of the
 * predictor's own, on scratch made here: the host is idle while the device
 * computes.
 *
 * Scored per layer over the batch's expert sets: predicted (the announced
 * set), chosen, both; and of the predicted, how many history added and how
 * many of those were chosen.  Precision = both / predicted, recall = both /
 * chosen.
 */
#ifndef SMK_EXEC_EXPERT_PREDICT_H
#define SMK_EXEC_EXPERT_PREDICT_H

#include <stdint.h>

#include "arch/model.h"
#include "compute/backend.h"
#include "util/err.h"

enum xpredict_mode {
	XPREDICT_DEFAULT = 0,  /* = XPREDICT_MERGED (a zeroed options struct) */
	XPREDICT_ROUTER = 1,
	XPREDICT_HISTORY = 2,
	XPREDICT_MERGED = 3,   /* router, then history */
	XPREDICT_OFF = 4,
};

/* "off", "router", "history", "merged". */
const char *xpredict_mode_name(enum xpredict_mode mode);

struct xpredict;

struct xpredict_layer_stats {
	int layer;
	uint64_t predicted, chosen, both;   /* expert-set sizes summed over steps */
	uint64_t history, history_both;     /* of predicted: added by history, and chosen */
};

/* For model m (a mixture of experts), batches of up to max_rows rows whose
 * hidden states live in be's memory, predicting as mode says (not OFF).
 * *out owned by the caller (xpredict_free). */
int xpredict_new(struct xpredict **out, const struct model *m, struct backend *be, int max_rows,
		 enum xpredict_mode mode, struct smk_err *err);
void xpredict_free(struct xpredict *p);

enum xpredict_mode xpredict_mode(const struct xpredict *p);

/* Host bytes the copies and the device backend's scratch take. */
uint64_t xpredict_bytes(const struct xpredict *p);

/* Where a device backend's hidden state goes before xpredict_layer (host
 * memory, max_rows x n_embd floats: the caller downloads it, handling the
 * backend's errors), or NULL: pass the backend's own memory. */
float *xpredict_staging(struct xpredict *p);

/* Predict layer `layer`'s experts for rows x[0..T) (n_embd floats each,
 * the residual stream after the previous layer's attention: in the
 * backend's memory, or xpredict_staging's where that is not NULL),
 * remembering them for xpredict_score.  h (T x n_embd) and logits (T x
 * n_expert) are scratch in a host-memory backend's memory, overwritten
 * (with staging, the predictor's own are used).  *n_read: how many of the
 * list's first entries are worth reading from the file (the others are
 * only to be kept and moved up: wstore_hint).  The
 * list, most likely first, into experts[0..n_expert); returns its length
 * (0: nothing predicted - a failed product leaves the router's part out). */
int xpredict_layer(struct xpredict *p, int layer, const float *x, int T, float *h,
		   float *logits, int *experts, int *n_read);

/* The first MoE layer of a step (layer 0), from history: see above.
 * Returns the list's length, into experts[0..); *n_read as above. */
int xpredict_first(struct xpredict *p, int *experts, int *n_read);

/* Layer `layer` routed: sel[T x k] its choice.  Scores the prediction made
 * for it, if any, forgets it, and adds the choice to the history. */
void xpredict_score(struct xpredict *p, int layer, const int32_t *sel, int T, int k);

/* Row t's router-predicted experts for `layer` (k of them), or NULL when
 * the router made no per-row prediction for it. */
const int32_t *xpredict_row(const struct xpredict *p, int layer, int t);

/* Per-layer counts (any thread), up to max; returns the number of layers. */
int xpredict_stats(const struct xpredict *p, struct xpredict_layer_stats *out, int max);

#endif
