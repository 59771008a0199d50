/* model.h - a model as the forward pass sees it: hyper-parameters, the
 * family's plan, and the weight blocks of one execution.
 *
 * The execution plan is the same for every family:
 *   blocks 0..E-1        embedding table, in E vocabulary-row shards
 *   then per layer il    its dense block (attention, norms, dense FFN or
 *                        the router), at model_layer_block(m, il); in a
 *                        mixture-of-experts layer followed by one block per
 *                        expert (model_expert_block(m, il, e), e <
 *                        n_expert): the views of expert e's byte ranges in
 *                        the three 3-D expert slabs
 *   last H blocks        output head in H vocabulary-row shards; the first
 *                        also holds the output norm.  A tied head's shards
 *                        are the embedding's shards (same rows, same bytes).
 * Expert blocks are conditional: a pass acquires only the experts its rows
 * are routed to, after the layer's dense block has told it which.
 * A shard holds at most max(largest layer block, 16 MiB) of table bytes, so
 * no block dwarfs the others and a weight budget a fraction of the model's
 * can still hold the largest block (E = H = 1 for small tables).
 * Families differ in which tensors a layer has and how a layer runs (norm
 * placement, activation, RoPE layout, sliding windows): that is data in
 * struct family_desc, read by one forward implementation (forward.c).  The
 * weight hierarchy reads the same blocks to know what to load and when.
 */
#ifndef SMK_ARCH_MODEL_H
#define SMK_ARCH_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "compute/backend.h"
#include "compute/tensor.h"
#include "quant/convert.h"
#include "formats/gguf.h"
#include "formats/family.h"
#include "util/err.h"

enum ffn_act { ACT_SILU, ACT_GELU };

/* What distinguishes one family's layer from another's (which families
 * exist: formats/family.h; family_name() gives general.architecture). */
struct family_desc {
	enum family family;
	enum rope_kind rope;
	enum ffn_act act;
	bool qk_norm;              /* per-head RMSNorm of q and k (gemma3) */
	bool post_norms;           /* RMSNorm after attention and FFN (gemma3) */
	bool embed_scale;          /* x = embd * sqrt(n_embd) (gemma) */
	bool qkv_bias;             /* q, k, v biases required (qwen2) */
	bool moe;                  /* every layer is a mixture of experts (qwen3moe);
				    * llama is one when <arch>.expert_count is set */
	int swa_pattern;           /* layer il is sliding iff il % p < p-1; 0 = none */
	float swa_rope_base;       /* RoPE base of the sliding layers (0: the model's
				    * own base and scaling, as gpt-oss) */
	/* gpt-oss: an output bias too, attention sinks, a router bias and per
	 * expert biases, the experts gated by a softmax over the top-k raw
	 * logits (no renormalisation) and activated by the clamped SwiGLU;
	 * the FFN's pre-norm is stored as "post_attention_norm". */
	bool o_bias, sinks, oai_moe;
	const char *ffn_norm_name; /* NULL: "ffn_norm.weight" */
};

/* Tensors of one transformer layer, by role. */
enum layer_tensor {
	LT_ATTN_NORM, LT_WQ, LT_WK, LT_WV, LT_WO,
	LT_BQ, LT_BK, LT_BV, LT_BO,
	LT_Q_NORM, LT_K_NORM, LT_POST_ATTN_NORM,
	LT_FFN_NORM, LT_GATE, LT_UP, LT_DOWN, LT_POST_FFN_NORM,
	LT_GATE_INP,               /* MoE router {n_embd, n_expert} (dense block) */
	LT_GATE_INP_B,             /* its bias {n_expert} (gpt-oss) */
	LT_SINKS,                  /* attention sinks {n_head} (gpt-oss) */
	LT_GATE_B, LT_UP_B, LT_DOWN_B, /* an expert's biases (gpt-oss; expert blocks) */
	LT_COUNT
};

/* Tensors of the embedding block and the head block. */
enum { EMB_TOKEN = 0 };
enum { HEAD_NORM = 0, HEAD_OUTPUT = 1 };

/* BLOCK_EXPERT: one expert of a MoE layer, its tensors LT_GATE, LT_UP and
 * LT_DOWN (views of expert `expert`'s slice of each 3-D slab: a plain 2-D
 * matrix at slab offset + expert * slab nb2). */
enum block_kind { BLOCK_EMBED, BLOCK_LAYER, BLOCK_HEAD, BLOCK_EXPERT };

/* A weight block: the unit of residency of the weight hierarchy. */
struct wblock {
	enum block_kind kind;
	int layer;                        /* BLOCK_LAYER/EXPERT; the shard index otherwise */
	int expert;                       /* BLOCK_EXPERT: its index in the layer; else -1 */
	int64_t row0, n_rows;             /* EMBED/HEAD: the vocabulary rows it holds */
	struct wtensor t[LT_COUNT];       /* indexed by enum layer_tensor / EMB_ / HEAD_ */
	bool has[LT_COUNT];
	uint64_t nbytes;                  /* sum of its tensors' bytes */
};

struct hparams {
	int n_vocab, n_ctx_train, n_embd, n_layer, n_ff;
	int n_head, n_head_kv, head_dim, head_dim_v;
	int n_rot;
	float eps;
	float rope_base, rope_freq_scale;
	int sliding_window;
	/* Mixture of experts (0 for dense models): n_expert experts per layer,
	 * n_expert_used chosen per token (softmax over all, top-k, the k
	 * weights renormalised), each an FFN of n_ff_exp. */
	int n_expert, n_expert_used, n_ff_exp;
	/* YaRN (rope.scaling.type "yarn": gpt-oss), else yarn_ext_factor 0:
	 * the ramp's training context and ends, and llama.cpp's attn_factor
	 * (rope_params). */
	float yarn_ext_factor, yarn_attn_factor, yarn_beta_fast, yarn_beta_slow;
	int yarn_orig_ctx;
	/* YaRN's ramp ends unrounded (transformers' truncate=false, what a
	 * gpt-oss HF directory asks for: smoke.rope.yarn_truncate false);
	 * else llama.cpp's floor/ceil (every GGUF file). */
	bool yarn_unrounded;
};

struct model {
	struct gguf *gguf;                /* owned */
	const struct family_desc *fam;
	enum rope_kind rope;              /* the family's, unless the source says otherwise */
	enum convert_dtype dtype;         /* float matrices converted to this at load */
	void **owned;                     /* converted weights (freed by model_free) */
	int n_owned, cap_owned;
	struct hparams hp;
	char name[128];
	int n_blocks;                     /* embedding shards, layers (+ experts), head */
	int n_emb_blocks;                 /* embedding shards (blocks 0..n_emb_blocks-1) */
	int n_head_blocks;                /* head shards (the last n_head_blocks blocks) */
	struct wblock *blocks;            /* owned */
	int *layer_block;                 /* n_layer + 1 entries: block of layer il's dense
					   * part; [n_layer] = the first head block (owned) */
	struct wtensor rope_freqs;        /* llama3 frequency factors, or data NULL */
	uint64_t shard_target;            /* model_load_opts.shard_bytes */
	uint64_t weight_bytes;            /* all blocks */
};

struct model_load_opts {
	/* memory.default_dtype: what float matrices (F32/F16/BF16) are
	 * converted to at load; norms and biases stay F32. */
	enum convert_dtype dtype;
	/* Bytes per embedding/output-head shard (0: the default, at least
	 * 16 MiB; never less than the largest layer).  Smaller shards pipeline
	 * better through a small device budget. */
	uint64_t shard_bytes;
};

/* Open a model: a GGUF file, or a Hugging Face directory (config.json,
 * *.safetensors, tokenizer.json).  Validates the file(s), the architecture,
 * every tensor's presence, type and shape.  *out owned by caller
 * (model_free).  model_load() uses the defaults (dtype as in the file). */
int model_load(struct model **out, const char *path, struct smk_err *err);
int model_load_opts(struct model **out, const char *path, const struct model_load_opts *o,
		    struct smk_err *err);
void model_free(struct model *m);

/* Plan positions: layer il's block, head shard k's block. */
static inline int model_layer_block(const struct model *m, int il)
{
	return m->layer_block[il];
}

/* Expert e of MoE layer il (only when m->hp.n_expert > 0). */
static inline int model_expert_block(const struct model *m, int il, int e)
{
	return m->layer_block[il] + 1 + e;
}

static inline int model_head_block(const struct model *m, int k)
{
	return m->n_blocks - m->n_head_blocks + k;
}

/* Is layer il a sliding-window layer, and its RoPE parameters. */
bool model_layer_is_swa(const struct model *m, int il);
void model_layer_rope(const struct model *m, int il, struct rope_params *rp);

#endif
