/* forward.h - one forward pass of a dense decoder over a chunk of tokens.
 *
 * The pass walks the model's plan (embedding block, each layer block, head
 * block), acquiring each weight block from the weight store just before it
 * runs and releasing it right after, so an out-of-core store can stream
 * blocks through a small budget.  All activation buffers are allocated by
 * forward_new() for at most max_tokens tokens per call; forward_run() never
 * allocates.
 */
#ifndef SMK_ARCH_FORWARD_H
#define SMK_ARCH_FORWARD_H

#include "arch/kvcache.h"
#include "arch/model.h"
#include "compute/backend.h"
#include "weights/wstore.h"

struct forward;

/* Activation scratch for chunks of up to max_tokens tokens, of which up to
 * max_logits get logits.  *out owned by the caller (forward_free). */
int forward_new(struct forward **out, const struct model *m, struct backend *be,
		struct wstore *ws, int max_tokens, int max_logits, struct smk_err *err);
void forward_free(struct forward *f);

/* Run tok[0..n) at positions kv->n_pos.. and append their keys and values to
 * kv.  Logits of the last n_logits tokens (n_logits <= max_logits, may be 0)
 * are written to *logits (n_logits rows of n_vocab floats, owned by f, valid
 * until the next call).  On failure kv is left as it was. */
int forward_run(struct forward *f, struct kvcache *kv, const int32_t *tok, int n,
		int n_logits, const float **logits, struct smk_err *err);

#endif
