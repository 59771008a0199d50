/* moe_route.h - a mixture-of-experts router's decision, on the host.
 *
 * The forward pass must know on the host which experts each row goes to
 * (it acquires exactly those expert blocks from the weight store), so the
 * router's logits come back from the backend and the choice is made here,
 * with the arithmetic of llama.cpp's build_moe_ffn for softmax gating
 * (qwen3moe, Mixtral), CPU backend, operation for operation:
 *   - probs = ggml_soft_max(logits): max, e^(x - max) (AVX2: ggml's
 *     polynomial exp 8 at a time, each group summed in float, the groups
 *     and a libm tail summed in double), times (float)(1 / sum);
 *   - the top k by probability: ggml_argsort (std::sort, descending) then
 *     the first k.  Ties go to the lower expert index, which is what
 *     std::sort's insertion sort does for up to 16 experts; for more, an
 *     exact tie of two probabilities may order differently in llama.cpp;
 *   - the k weights renormalised: their sum in double (ggml_sum_rows),
 *     rounded to float, clamped below at 6.103515625e-5, each weight
 *     divided by it in float.
 * Without AVX2 (or SMOKE_NO_SIMD) the exponentials are libm's expf.
 */
#ifndef SMK_COMPUTE_MOE_ROUTE_H
#define SMK_COMPUTE_MOE_ROUTE_H

#include <stdint.h>

/* For each of n rows of logits (n_expert floats each): probs[r*n_expert +
 * e] the softmax, sel[r*k + j] the expert of slot j (slot 0 the most
 * probable), w_raw[r*k + j] its probability (llama.cpp's ffn_moe_weights;
 * w_raw may be NULL) and w[r*k + j] its renormalised weight
 * (ffn_moe_weights_norm).  1 <= k <= n_expert. */
void moe_route(const float *logits, int n_expert, int n, int k, float *probs, int32_t *sel,
	       float *w_raw, float *w);

/* gpt-oss's gating (llama.cpp's SOFTMAX_WEIGHT): per row, the top k of
 * the raw (biased) logits, ties to the lower index as above, and their
 * weights the softmax over those k logits alone (not renormalised
 * further).  sel and w as moe_route; w_raw[r*k + j] the chosen logit
 * (ffn_moe_weights; may be NULL). */
void moe_route_topk_softmax(const float *logits, int n_expert, int n, int k, int32_t *sel,
			    float *w_raw, float *w);

/* The top k of x[0..n) into sel (indices) and, if not NULL, vals: a stable
 * descending sort's first k (ties to the lower index). */
void moe_top_k(const float *x, int n, int k, int32_t *sel, float *vals);

/* The softmax alone, over one row of n values (y may equal x). */
void moe_softmax_row(const float *x, float *y, int n);

#endif
