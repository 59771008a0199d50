/* model.c - load a GGUF model into the plan: hyper-parameters from the
 * "<arch>.*" metadata, weight blocks from the tensor table.  Everything a
 * forward pass will touch is checked here, so the forward pass itself never
 * meets a missing tensor, a wrong shape or a type it cannot compute. */
#include "arch/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/model_file.h"
#include "quant/qtype.h"
#include "util/ckmath.h"

/* Each family's plan, indexed by enum family (formats/family.h lists them). */
static const struct family_desc families[FAMILY_COUNT] = {
	[FAMILY_LLAMA] = { .family = FAMILY_LLAMA, .rope = ROPE_NORM, .act = ACT_SILU },
	[FAMILY_QWEN2] = { .family = FAMILY_QWEN2, .rope = ROPE_NEOX, .act = ACT_SILU,
	  .qkv_bias = true },
	/* Gemma 3: the sliding pattern (5 local : 1 global) and the local RoPE
	 * base are fixed by the architecture, not stored in GGUF. */
	[FAMILY_GEMMA3] = { .family = FAMILY_GEMMA3, .rope = ROPE_NEOX, .act = ACT_GELU,
	  .qk_norm = true, .post_norms = true, .embed_scale = true,
	  .swa_pattern = 6, .swa_rope_base = 10000.0f },
	/* Qwen 3: per-head q/k RMSNorm before NEOX RoPE, no biases; the head
	 * size (attention.key_length) need not be n_embd / n_head.  Qwen3-MoE
	 * runs the same attention and a routed mixture of SiLU experts. */
	[FAMILY_QWEN3] = { .family = FAMILY_QWEN3, .rope = ROPE_NEOX, .act = ACT_SILU,
	  .qk_norm = true },
	[FAMILY_QWEN3MOE] = { .family = FAMILY_QWEN3MOE, .rope = ROPE_NEOX, .act = ACT_SILU,
	  .qk_norm = true, .moe = true },
	/* gpt-oss (llama.cpp's openai-moe graph): even layers slide over
	 * attention.sliding_window positions with the model's own RoPE (YaRN),
	 * biases on q/k/v/o, sinks, and the gpt-oss mixture of experts. */
	[FAMILY_GPT_OSS] = { .family = FAMILY_GPT_OSS, .rope = ROPE_NEOX, .act = ACT_SILU,
	  .qkv_bias = true, .o_bias = true, .sinks = true, .moe = true, .oai_moe = true,
	  .swa_pattern = 2, .swa_rope_base = 0.0f,
	  .ffn_norm_name = "post_attention_norm.weight" },
};

struct role {
	const char *suffix;
	bool one_dim;
};

static const struct role layer_roles[LT_COUNT] = {
	[LT_ATTN_NORM] = { "attn_norm.weight", true },
	[LT_WQ] = { "attn_q.weight", false },
	[LT_WK] = { "attn_k.weight", false },
	[LT_WV] = { "attn_v.weight", false },
	[LT_WO] = { "attn_output.weight", false },
	[LT_BQ] = { "attn_q.bias", true },
	[LT_BK] = { "attn_k.bias", true },
	[LT_BV] = { "attn_v.bias", true },
	[LT_BO] = { "attn_output.bias", true },
	[LT_Q_NORM] = { "attn_q_norm.weight", true },
	[LT_K_NORM] = { "attn_k_norm.weight", true },
	[LT_POST_ATTN_NORM] = { "post_attention_norm.weight", true },
	[LT_FFN_NORM] = { "ffn_norm.weight", true },
	[LT_GATE] = { "ffn_gate.weight", false },
	[LT_UP] = { "ffn_up.weight", false },
	[LT_DOWN] = { "ffn_down.weight", false },
	[LT_POST_FFN_NORM] = { "post_ffw_norm.weight", true },
	[LT_GATE_INP] = { "ffn_gate_inp.weight", false },
	[LT_GATE_INP_B] = { "ffn_gate_inp.bias", true },
	[LT_SINKS] = { "attn_sinks.weight", true },
};

/* The most experts a layer may have (llama.cpp's LLAMA_MAX_EXPERTS is 512). */
#define MAX_EXPERTS 1024

/* Read "<arch>.<key>" as a positive int; -ENOENT left to the caller when
 * optional. */
static int get_int(const struct model *m, const char *key, int *out, bool required,
		   struct smk_err *err)
{
	char full[160];
	snprintf(full, sizeof(full), "%s.%s", family_name(m->fam->family), key);
	uint32_t v;
	int rc = gguf_get_u32(m->gguf, full, &v, err);
	if (rc == -ENOENT) {
		if (!required)
			return -ENOENT;
		return smk_fail(err, -EINVAL, "%s: metadata key '%s' is missing",
				gguf_path(m->gguf), full);
	}
	if (rc)
		return rc;
	if (v == 0 || v > (1u << 24))
		return smk_fail(err, -EINVAL, "%s: metadata key '%s' = %u is out of range (1..%u)",
				gguf_path(m->gguf), full, v, 1u << 24);
	*out = (int)v;
	return 0;
}

static int get_float(const struct model *m, const char *key, float *out, struct smk_err *err)
{
	char full[160];
	snprintf(full, sizeof(full), "%s.%s", family_name(m->fam->family), key);
	int rc = gguf_get_f32(m->gguf, full, out, err);
	if (rc == 0 && !(isfinite(*out) && *out > 0.0f))
		return smk_fail(err, -EINVAL, "%s: metadata key '%s' = %g must be a positive number",
				gguf_path(m->gguf), full, (double)*out);
	return rc;
}

/* memory.default_dtype: convert a float matrix at load into a buffer the
 * model owns.  Its bytes then live in memory only (source -1): the weight
 * store copies them from there instead of reading the file. */
static int normalise(struct model *m, struct wtensor *t, struct smk_err *err)
{
	uint32_t to = convert_target(t->type, t->ne0, m->dtype);
	if (to == t->type)
		return 0;
	uint64_t row_bytes, nbytes;
	if (qtype_row_bytes(to, t->ne0, &row_bytes, err) ||
	    ck_mul(row_bytes, (uint64_t)t->ne1, &nbytes) || nbytes > SIZE_MAX)
		return smk_fail(err, -EINVAL, "%s: tensor '%s': converted size overflows",
				gguf_path(m->gguf), t->name);
	if (m->n_owned == m->cap_owned) {
		int cap = m->cap_owned ? m->cap_owned * 2 : 64;
		void **o = realloc(m->owned, sizeof(*o) * (size_t)cap);
		if (!o)
			return smk_fail(err, -ENOMEM, "out of memory");
		m->owned = o;
		m->cap_owned = cap;
	}
	void *buf = NULL;
	if (posix_memalign(&buf, 64, (size_t)nbytes))
		return smk_fail(err, -ENOMEM, "%s: tensor '%s': out of memory for %llu bytes converted to %s",
				gguf_path(m->gguf), t->name, (unsigned long long)nbytes,
				qtype_name(to));
	m->owned[m->n_owned++] = buf;
	int rc = gguf_pin(m->gguf, t->source, t->file_offset, t->nbytes, err);
	if (rc)
		return rc;
	rc = convert_rows(t->type, t->data, to, buf, t->ne0 * t->ne1);
	if (rc)
		return smk_fail(err, rc, "%s: tensor '%s': cannot convert %s to %s",
				gguf_path(m->gguf), t->name, qtype_name(t->type), qtype_name(to));
	t->type = to;
	t->row_bytes = row_bytes;
	t->nbytes = nbytes;
	t->data = buf;
	t->source = -1;
	t->file_offset = 0;
	return 0;
}

/* Fill *t from the tensor called name, checking its shape and type. */
static int bind(struct model *m, struct wtensor *t, const char *name, int64_t ne0, int64_t ne1,
		bool need_f32, struct smk_err *err)
{
	const struct gguf_tensor *gt = gguf_find_tensor(m->gguf, name);
	const char *path = gguf_path(m->gguf);
	if (!gt)
		return smk_fail(err, -EINVAL, "%s: tensor '%s' is missing", path, name);
	if (gt->ne[0] != (uint64_t)ne0 || gt->ne[1] != (uint64_t)ne1 || gt->ne[2] != 1 ||
	    gt->ne[3] != 1)
		return smk_fail(err, -EINVAL,
				"%s: tensor '%s' has shape [%llu, %llu, %llu, %llu], expected [%lld, %lld]",
				path, name, (unsigned long long)gt->ne[0],
				(unsigned long long)gt->ne[1], (unsigned long long)gt->ne[2],
				(unsigned long long)gt->ne[3], (long long)ne0, (long long)ne1);
	if (need_f32 && gt->type != QTYPE_F32)
		return smk_fail(err, -EINVAL, "%s: tensor '%s' has type %s, expected F32", path,
				name, qtype_name(gt->type));
	if (!qtype_can_compute(gt->type))
		return smk_fail(err, -EINVAL, "%s: tensor '%s' has type %s, which smoke cannot compute",
				path, name, qtype_name(gt->type));
	t->name = gt->name;
	t->type = gt->type;
	t->ne0 = ne0;
	t->ne1 = ne1;
	t->nbytes = gt->nbytes;
	t->row_bytes = gt->nbytes / (uint64_t)ne1;
	t->file_offset = gt->file_offset;
	t->data = gt->data;
	t->source = gt->source;
	if (need_f32) /* read in place (norms, rope factors): fetched now if remote */
		return gguf_pin(m->gguf, t->source, t->file_offset, t->nbytes, err);
	return normalise(m, t, err);
}

/* "<arch>.<key>" as an unsigned value of any integer type; -ENOENT when
 * absent (no message), -EINVAL with one when it is not an integer. */
static int get_any_uint(const struct model *m, const char *key, uint64_t *out,
			struct smk_err *err)
{
	char full[160];
	snprintf(full, sizeof(full), "%s.%s", family_name(m->fam->family), key);
	uint32_t v;
	int rc = gguf_get_u32(m->gguf, full, &v, NULL);
	if (rc == 0) {
		*out = v;
		return 0;
	}
	if (rc == -ENOENT)
		return rc;
	return smk_fail(err, -EINVAL, "%s: metadata key '%s' is not an unsigned integer",
			gguf_path(m->gguf), full);
}

/* Mixture of experts: qwen3moe always, llama when expert_count is set
 * (Mixtral).  Routing is softmax over every expert, the top
 * expert_used_count, their weights renormalised: what llama.cpp's graphs
 * for these families hard-code.  Keys asking for anything else (shared
 * experts, expert groups, another gating function) are refused, not
 * ignored: the model would run, wrongly. */
static int load_moe_hparams(struct model *m, struct smk_err *err)
{
	struct hparams *hp = &m->hp;
	const char *path = gguf_path(m->gguf);
	const char *arch = family_name(m->fam->family);
	bool may = m->fam->moe || m->fam->family == FAMILY_LLAMA;
	int rc;
	hp->n_expert = hp->n_expert_used = hp->n_ff_exp = 0;
	if (!may)
		return 0;
	uint64_t v = 0;
	rc = get_any_uint(m, "expert_count", &v, err);
	if (rc && rc != -ENOENT)
		return rc;
	if (rc == -ENOENT || v == 0) {
		if (m->fam->moe)
			return smk_fail(err, -EINVAL, "%s: metadata key '%s.expert_count' is missing (a %s model is a mixture of experts)",
					path, arch, arch);
		return 0;
	}
	if (v > MAX_EXPERTS)
		return smk_fail(err, -EINVAL, "%s: metadata key '%s.expert_count' = %llu is out of range (1..%d)",
				path, arch, (unsigned long long)v, MAX_EXPERTS);
	hp->n_expert = (int)v;
	rc = get_any_uint(m, "expert_used_count", &v, err);
	if (rc == -ENOENT)
		return smk_fail(err, -EINVAL, "%s: metadata key '%s.expert_used_count' is missing (experts per token)",
				path, arch);
	if (rc)
		return rc;
	if (v < 1 || v > (uint64_t)hp->n_expert)
		return smk_fail(err, -EINVAL, "%s: metadata key '%s.expert_used_count' = %llu must be between 1 and expert_count (%d)",
				path, arch, (unsigned long long)v, hp->n_expert);
	hp->n_expert_used = (int)v;
	static const struct { const char *key, *what; } refused[] = {
		{ "expert_shared_count", "shared experts are not supported" },
		{ "expert_shared_feed_forward_length", "shared experts are not supported" },
		{ "expert_group_count", "expert groups (group-limited routing) are not supported" },
		{ "expert_group_used_count", "expert groups (group-limited routing) are not supported" },
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		v = 0;
		rc = get_any_uint(m, refused[i].key, &v, err);
		if (rc && rc != -ENOENT)
			return rc;
		/* A group count of 1 is no grouping. */
		bool harmless = v == 0 || (v == 1 && !strcmp(refused[i].key, "expert_group_count"));
		if (rc == 0 && !harmless)
			return smk_fail(err, -EINVAL, "%s: metadata key '%s.%s' = %llu: %s",
					path, arch, refused[i].key, (unsigned long long)v, refused[i].what);
	}
	/* llama.cpp's LLAMA_EXPERT_GATING_FUNC_TYPE: 1 is softmax. */
	rc = get_any_uint(m, "expert_gating_func", &v, err);
	if (rc && rc != -ENOENT)
		return rc;
	if (rc == 0 && v != 1)
		return smk_fail(err, -EINVAL, "%s: metadata key '%s.expert_gating_func' = %llu: only softmax gating (1) is supported",
				path, arch, (unsigned long long)v);
	/* Expert FFN width: Mixtral's experts are feed_forward_length wide;
	 * Qwen3-MoE says expert_feed_forward_length (llama.cpp falls back to
	 * n_ff / n_expert_used). */
	hp->n_ff_exp = hp->n_ff;
	if (m->fam->moe) {
		hp->n_ff_exp = hp->n_ff / hp->n_expert_used;
		if ((rc = get_int(m, "expert_feed_forward_length", &hp->n_ff_exp, false, err)) &&
		    rc != -ENOENT)
			return rc;
		if (hp->n_ff_exp <= 0)
			return smk_fail(err, -EINVAL, "%s: metadata key '%s.expert_feed_forward_length' is missing",
					path, arch);
	}
	return 0;
}

/* YaRN's settings as llama.cpp derives them (llama-context.cpp): ext_factor
 * 1; attn_factor = get_mscale(factor) / (1 + 0.1 ln factor) times
 * rope.scaling.attn_factor, in float and in that order (ggml multiplies
 * the 1 + 0.1 ln(factor) back in: net 1 + 0.1 ln factor); the ramp's
 * training context and its ends (beta_fast 32, beta_slow 1 unless the
 * file says otherwise).  yarn_log_multiplier (DeepSeek's mscale_all_dim)
 * is refused: no family here uses it. */
static int load_yarn(struct model *m, float factor, struct smk_err *err)
{
	struct hparams *hp = &m->hp;
	const char *path = gguf_path(m->gguf);
	int rc;
	float v;
	if ((rc = get_float(m, "rope.scaling.yarn_log_multiplier", &v, err)) != -ENOENT)
		return rc ? rc : smk_fail(err, -EINVAL, "%s: %s.rope.scaling.yarn_log_multiplier is not supported",
					  path, family_name(m->fam->family));
	if ((rc = get_int(m, "rope.scaling.original_context_length", &hp->yarn_orig_ctx, true, err)))
		return rc;
	hp->yarn_beta_fast = 32.0f;
	hp->yarn_beta_slow = 1.0f;
	if ((rc = get_float(m, "rope.scaling.yarn_beta_fast", &hp->yarn_beta_fast, err)) && rc != -ENOENT)
		return rc;
	if ((rc = get_float(m, "rope.scaling.yarn_beta_slow", &hp->yarn_beta_slow, err)) && rc != -ENOENT)
		return rc;
	float attn = 1.0f;
	if ((rc = get_float(m, "rope.scaling.attn_factor", &attn, err)) && rc != -ENOENT)
		return rc;
	float a = factor <= 1.0f ? 1.0f : 0.1f * 1.0f * logf(factor) + 1.0f;
	a *= 1.0f / (1.0f + 0.1f * logf(factor));
	a *= attn;
	hp->yarn_ext_factor = 1.0f;
	hp->yarn_attn_factor = a;
	/* formats/hf writes it for transformers' "truncate": false */
	bool trunc = true;
	if ((rc = gguf_get_bool(m->gguf, "smoke.rope.yarn_truncate", &trunc, err)) && rc != -ENOENT)
		return rc;
	hp->yarn_unrounded = !trunc;
	return 0;
}

static int load_hparams(struct model *m, struct smk_err *err)
{
	struct hparams *hp = &m->hp;
	const char *path = gguf_path(m->gguf);
	int rc;
	if ((rc = get_int(m, "context_length", &hp->n_ctx_train, true, err)) ||
	    (rc = get_int(m, "embedding_length", &hp->n_embd, true, err)) ||
	    (rc = get_int(m, "block_count", &hp->n_layer, true, err)) ||
	    (rc = get_int(m, "feed_forward_length", &hp->n_ff, true, err)) ||
	    (rc = get_int(m, "attention.head_count", &hp->n_head, true, err)))
		return rc;
	hp->n_head_kv = hp->n_head;
	if ((rc = get_int(m, "attention.head_count_kv", &hp->n_head_kv, false, err)) && rc != -ENOENT)
		return rc;
	if (hp->n_head % hp->n_head_kv)
		return smk_fail(err, -EINVAL, "%s: attention.head_count %d is not a multiple of head_count_kv %d",
				path, hp->n_head, hp->n_head_kv);
	if (hp->n_layer > 4096 || hp->n_head > 1024)
		return smk_fail(err, -EINVAL, "%s: block_count %d or head_count %d is implausibly large",
				path, hp->n_layer, hp->n_head);
	hp->head_dim = hp->n_embd / hp->n_head;
	if ((rc = get_int(m, "attention.key_length", &hp->head_dim, false, err)) && rc != -ENOENT)
		return rc;
	hp->head_dim_v = hp->head_dim;
	if ((rc = get_int(m, "attention.value_length", &hp->head_dim_v, false, err)) && rc != -ENOENT)
		return rc;
	if (hp->head_dim_v != hp->head_dim)
		return smk_fail(err, -EINVAL, "%s: key_length %d != value_length %d is not supported",
				path, hp->head_dim, hp->head_dim_v);
	hp->n_rot = hp->head_dim;
	if ((rc = get_int(m, "rope.dimension_count", &hp->n_rot, false, err)) && rc != -ENOENT)
		return rc;
	if (hp->n_rot > hp->head_dim || hp->n_rot % 2 || hp->n_rot > 1024)
		return smk_fail(err, -EINVAL, "%s: rope.dimension_count %d must be even and <= head dim %d",
				path, hp->n_rot, hp->head_dim);
	if ((rc = get_float(m, "attention.layer_norm_rms_epsilon", &hp->eps, err))) {
		if (rc != -ENOENT)
			return rc;
		return smk_fail(err, -EINVAL, "%s: metadata key '%s.attention.layer_norm_rms_epsilon' is missing",
				path, family_name(m->fam->family));
	}
	hp->rope_base = 10000.0f;
	if ((rc = get_float(m, "rope.freq_base", &hp->rope_base, err)) && rc != -ENOENT)
		return rc;
	hp->rope_freq_scale = 1.0f;
	char key[160];
	snprintf(key, sizeof(key), "%s.rope.scaling.type", family_name(m->fam->family));
	const char *st;
	size_t stlen;
	if (gguf_get_str(m->gguf, key, &st, &stlen, NULL) == 0 &&
	    !(stlen == 4 && !memcmp(st, "none", 4))) {
		const bool yarn = stlen == 4 && !memcmp(st, "yarn", 4);
		if (!(stlen == 6 && !memcmp(st, "linear", 6)) && !yarn)
			return smk_fail(err, -EINVAL, "%s: %s '%.*s' is not supported (none, linear, yarn)",
					path, key, (int)(stlen > 32 ? 32 : stlen), st);
		float factor;
		if ((rc = get_float(m, "rope.scaling.factor", &factor, err)))
			return rc == -ENOENT ? smk_fail(err, -EINVAL, "%s: %.*s rope scaling without a factor",
							 path, (int)stlen, st) : rc;
		hp->rope_freq_scale = 1.0f / factor;
		if (yarn && (rc = load_yarn(m, factor, err)))
			return rc;
	}
	hp->sliding_window = 0;
	if (m->fam->swa_pattern &&
	    (rc = get_int(m, "attention.sliding_window", &hp->sliding_window, true, err)))
		return rc;
	return load_moe_hparams(m, err);
}

/* Table bytes per vocabulary shard: at least 16 MiB (fewer, larger reads
 * for small models), and no less than the largest layer, so a shard is
 * never what sizes a budget when a layer is bigger anyway. */
#define SHARD_MIN_BYTES (16ull << 20)

/* How many shards of at most max_bytes a table of rows x row_bytes takes,
 * and the rows per shard (balanced: all shards but the last equal). */
static void shard_table(const struct wtensor *t, uint64_t max_bytes, int *n_shards, int64_t *rows)
{
	uint64_t per = max_bytes / t->row_bytes;
	if (per == 0)
		per = 1;
	int64_t n = (t->ne1 + (int64_t)per - 1) / (int64_t)per;
	*n_shards = (int)n;
	*rows = (t->ne1 + n - 1) / n;
}

/* Fill blocks [first, first + n) with the shards of table t, as tensor role
 * `role` of blocks of kind `kind`. */
static void fill_shards(struct wblock *blocks, int first, int n, int64_t rows,
			const struct wtensor *t, enum block_kind kind, int role)
{
	for (int k = 0; k < n; k++) {
		struct wblock *b = &blocks[first + k];
		int64_t r0 = (int64_t)k * rows;
		int64_t nr = t->ne1 - r0 < rows ? t->ne1 - r0 : rows;
		b->kind = kind;
		b->layer = k;
		b->expert = -1;
		b->row0 = r0;
		b->n_rows = nr;
		b->t[role] = *t;
		b->t[role].ne1 = nr;
		b->t[role].nbytes = (uint64_t)nr * t->row_bytes;
		b->t[role].file_offset = t->file_offset + (uint64_t)r0 * t->row_bytes;
		b->t[role].data = (const uint8_t *)t->data + (uint64_t)r0 * t->row_bytes;
		b->has[role] = true;
		b->nbytes += b->t[role].nbytes;
	}
}

/* An expert slab: the 3-D tensor `name` of shape {ne0, ne1, n_expert}
 * (ggml order: ne2, the expert, outermost), so expert e's matrix is the
 * contiguous byte range [e * nb2, (e + 1) * nb2) of it.  *nb2 = bytes per
 * expert.  dims names ne0 and ne1 for the message. */
static int find_slab(struct model *m, const char *name, int64_t ne0, int64_t ne1, const char *dims,
		     const struct gguf_tensor **out, uint64_t *nb2, struct smk_err *err)
{
	const struct hparams *hp = &m->hp;
	const char *path = gguf_path(m->gguf);
	const struct gguf_tensor *gt = gguf_find_tensor(m->gguf, name);
	if (!gt)
		return smk_fail(err, -EINVAL, "%s: tensor '%s' is missing (an expert slab of the mixture of experts, or one tensor per expert: '%.*s.0.weight')",
				path, name, (int)(strstr(name, "_exps.weight") ? strstr(name, "_exps.weight") - name : 0),
				name);
	
	if (gt->ne[0] != (uint64_t)ne0 || gt->ne[1] != (uint64_t)ne1 ||
	    gt->ne[2] != (uint64_t)hp->n_expert || gt->ne[3] != 1)
		return smk_fail(err, -EINVAL,
				"%s: tensor '%s' has shape [%llu, %llu, %llu, %llu], expected [%lld, %lld, %d] (%s, expert_count)",
				path, name, (unsigned long long)gt->ne[0], (unsigned long long)gt->ne[1],
				(unsigned long long)gt->ne[2], (unsigned long long)gt->ne[3],
				(long long)ne0, (long long)ne1, hp->n_expert, dims);
	if (!qtype_can_compute(gt->type))
		return smk_fail(err, -EINVAL, "%s: tensor '%s' has type %s, which smoke cannot compute",
				path, name, qtype_name(gt->type));
	uint64_t row_bytes, per;
	if (qtype_row_bytes(gt->type, ne0, &row_bytes, err) || ck_mul(row_bytes, (uint64_t)ne1, &per) ||
	    per * (uint64_t)hp->n_expert != gt->nbytes)
		return smk_fail(err, -EINVAL, "%s: tensor '%s': %llu bytes do not split into %d experts of %lld rows",
				path, name, (unsigned long long)gt->nbytes, hp->n_expert, (long long)ne1);
	*out = gt;
	*nb2 = per;
	return 0;
}

/* *t = expert e's matrix of slab gt (a view; converted at load like any
 * matrix when memory.default_dtype asks). */
static int bind_expert(struct model *m, struct wtensor *t, const struct gguf_tensor *gt, uint64_t nb2,
		       int e, struct smk_err *err)
{
	t->name = gt->name;
	t->type = gt->type;
	t->ne0 = (int64_t)gt->ne[0];
	t->ne1 = (int64_t)gt->ne[1];
	t->nbytes = nb2;
	t->row_bytes = nb2 / gt->ne[1];
	t->file_offset = gt->file_offset + (uint64_t)e * nb2;
	t->data = (const uint8_t *)gt->data + (uint64_t)e * nb2;
	t->source = gt->source;
	return normalise(m, t, err);
}

/* Tensors of a MoE layer that ask for what smoke does not run. */
static int refuse_moe_extras(struct model *m, int il, struct smk_err *err)
{
	static const struct { const char *suffix, *why; } extras[] = {
		{ "ffn_gate_up_exps.weight", "fused gate/up expert slabs are not supported (convert with separate ffn_gate_exps and ffn_up_exps)" },
		{ "ffn_gate_shexp.weight", "shared experts are not supported" },
		{ "ffn_up_shexp.weight", "shared experts are not supported" },
		{ "ffn_down_shexp.weight", "shared experts are not supported" },
		{ "ffn_gate_inp_shexp.weight", "shared experts are not supported" },
		{ "exp_probs_b.bias", "an expert selection bias is not supported" },
		{ "ffn_gate_inp.bias", "a router bias is not supported for this family" },
		{ "ffn_gate_exps.bias", "expert biases are not supported for this family" },
		{ "ffn_up_exps.bias", "expert biases are not supported for this family" },
		{ "ffn_down_exps.bias", "expert biases are not supported for this family" },
	};
	for (size_t i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
		/* gpt-oss has (and needs) the router's and the experts' biases */
		if (m->fam->oai_moe && strstr(extras[i].why, "for this family"))
			continue;
		char name[96];
		snprintf(name, sizeof(name), "blk.%d.%s", il, extras[i].suffix);
		if (gguf_find_tensor(m->gguf, name))
			return smk_fail(err, -EINVAL, "%s: tensor '%s': %s", gguf_path(m->gguf), name,
					extras[i].why);
	}
	return 0;
}

/* gpt-oss's expert biases: the F32 tensor `suffix` of layer il, shape
 * {len, n_expert}; expert e's bias is its row e, viewed as a 1-D tensor
 * of the expert block (role). */
static int bind_expert_biases(struct model *m, int il, const char *suffix, int64_t len, int role,
			      struct wblock *out, struct smk_err *err)
{
	char name[96];
	snprintf(name, sizeof(name), "blk.%d.%s", il, suffix);
	struct wtensor all;
	int rc = bind(m, &all, name, len, m->hp.n_expert, true, err);
	if (rc)
		return rc;
	for (int e = 0; e < m->hp.n_expert; e++) {
		struct wtensor *t = &out[e].t[role];
		*t = all;
		t->ne1 = 1;
		t->nbytes = all.row_bytes;
		t->file_offset = all.file_offset + (uint64_t)e * all.row_bytes;
		t->data = (const uint8_t *)all.data + (uint64_t)e * all.row_bytes;
		out[e].has[role] = true;
		out[e].nbytes += t->nbytes;
	}
	return 0;
}

/* The experts of MoE layer il as blocks out[0..n_expert). */
static int load_experts(struct model *m, int il, struct wblock *out, struct smk_err *err)
{
	const struct hparams *hp = &m->hp;
	static const struct { int role; const char *suffix, *one; bool down; } slabs[] = {
		{ LT_GATE, "ffn_gate_exps.weight", "ffn_gate", false },
		{ LT_UP, "ffn_up_exps.weight", "ffn_up", false },
		{ LT_DOWN, "ffn_down_exps.weight", "ffn_down", true },
	};
	int rc = refuse_moe_extras(m, il, err);
	if (rc)
		return rc;
	for (size_t k = 0; k < 3; k++) {
		char name[96];
		snprintf(name, sizeof(name), "blk.%d.%s", il, slabs[k].suffix);
		const int64_t ne0 = slabs[k].down ? hp->n_ff_exp : hp->n_embd;
		const int64_t ne1 = slabs[k].down ? hp->n_embd : hp->n_ff_exp;
		char one[96];
		snprintf(one, sizeof(one), "blk.%d.%s.0.weight", il, slabs[k].one);
		if (!gguf_find_tensor(m->gguf, name) && gguf_find_tensor(m->gguf, one)) {
			/* One 2-D tensor per expert (blk.N.ffn_gate.E.weight): the
			 * pre-2024 Mixtral GGUF layout and how a Hugging Face
			 * directory stores experts.  Each is its expert's view. */
			for (int e = 0; e < hp->n_expert; e++) {
				struct wblock *b = &out[e];
				snprintf(one, sizeof(one), "blk.%d.%s.%d.weight", il, slabs[k].one, e);
				b->kind = BLOCK_EXPERT;
				b->layer = il;
				b->expert = e;
				if ((rc = bind(m, &b->t[slabs[k].role], one, ne0, ne1, false, err)))
					return rc;
				b->has[slabs[k].role] = true;
				b->nbytes += b->t[slabs[k].role].nbytes;
			}
			continue;
		}
		const struct gguf_tensor *gt;
		uint64_t nb2;
		if (slabs[k].down)
			rc = find_slab(m, name, hp->n_ff_exp, hp->n_embd, "expert_feed_forward_length, n_embd",
				       &gt, &nb2, err);
		else
			rc = find_slab(m, name, hp->n_embd, hp->n_ff_exp, "n_embd, expert_feed_forward_length",
				       &gt, &nb2, err);
		if (rc)
			return rc;
		for (int e = 0; e < hp->n_expert; e++) {
			struct wblock *b = &out[e];
			b->kind = BLOCK_EXPERT;
			b->layer = il;
			b->expert = e;
			if ((rc = bind_expert(m, &b->t[slabs[k].role], gt, nb2, e, err)))
				return rc;
			b->has[slabs[k].role] = true;
			b->nbytes += b->t[slabs[k].role].nbytes;
		}
	}
	if (m->fam->oai_moe &&
	    ((rc = bind_expert_biases(m, il, "ffn_gate_exps.bias", hp->n_ff_exp, LT_GATE_B, out, err)) ||
	     (rc = bind_expert_biases(m, il, "ffn_up_exps.bias", hp->n_ff_exp, LT_UP_B, out, err)) ||
	     (rc = bind_expert_biases(m, il, "ffn_down_exps.bias", hp->n_embd, LT_DOWN_B, out, err))))
		return rc;
	return 0;
}

static int load_blocks(struct model *m, struct smk_err *err)
{
	const struct hparams *hp = &m->hp;
	const int64_t q_dim = (int64_t)hp->n_head * hp->head_dim;
	const int64_t kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
	int rc;

	/* The vocabulary size is the embedding table's row count. */
	const struct gguf_tensor *te = gguf_find_tensor(m->gguf, "token_embd.weight");
	if (!te)
		return smk_fail(err, -EINVAL, "%s: tensor 'token_embd.weight' is missing", gguf_path(m->gguf));
	if (te->ne[1] == 0 || te->ne[1] > (1u << 24))
		return smk_fail(err, -EINVAL, "%s: tensor 'token_embd.weight' has %llu rows (vocabulary), out of range",
				gguf_path(m->gguf), (unsigned long long)te->ne[1]);
	m->hp.n_vocab = (int)te->ne[1];

	/* The whole tables first: their shards are views of them. */
	struct wtensor emb_t = { 0 }, head_t = { 0 }, norm_t = { 0 };
	if ((rc = bind(m, &emb_t, "token_embd.weight", hp->n_embd, hp->n_vocab, false, err)) ||
	    (rc = bind(m, &norm_t, "output_norm.weight", hp->n_embd, 1, true, err)))
		return rc;
	bool tied = !gguf_find_tensor(m->gguf, "output.weight");
	if (tied)
		head_t = emb_t;
	else if ((rc = bind(m, &head_t, "output.weight", hp->n_embd, hp->n_vocab, false, err)))
		return rc;

	/* Per layer: its dense block, then (MoE) one block per expert. */
	const bool moe = hp->n_expert > 0;
	const int per_layer = 1 + (moe ? hp->n_expert : 0);
	const int n_layer_blocks = hp->n_layer * per_layer;
	struct wblock *layers = calloc((size_t)n_layer_blocks, sizeof(*layers));
	if (!layers)
		return smk_fail(err, -ENOMEM, "out of memory for %d layer blocks", n_layer_blocks);
	uint64_t max_layer = 0;
	for (int il = 0; il < hp->n_layer; il++) {
		struct wblock *b = &layers[il * per_layer];
		b->kind = BLOCK_LAYER;
		b->layer = il;
		b->expert = -1;
		const struct family_desc *f = m->fam;
		struct { int role; int64_t ne0, ne1; bool need; } want[] = {
			{ LT_ATTN_NORM, hp->n_embd, 1, true },
			{ LT_WQ, hp->n_embd, q_dim, true },
			{ LT_WK, hp->n_embd, kv_dim, true },
			{ LT_WV, hp->n_embd, kv_dim, true },
			{ LT_WO, q_dim, hp->n_embd, true },
			{ LT_BQ, q_dim, 1, f->qkv_bias },
			{ LT_BK, kv_dim, 1, f->qkv_bias },
			{ LT_BV, kv_dim, 1, f->qkv_bias },
			{ LT_BO, hp->n_embd, 1, f->o_bias },
			{ LT_SINKS, hp->n_head, 1, f->sinks },
			{ LT_Q_NORM, hp->head_dim, 1, f->qk_norm },
			{ LT_K_NORM, hp->head_dim, 1, f->qk_norm },
			{ LT_POST_ATTN_NORM, hp->n_embd, 1, f->post_norms },
			{ LT_FFN_NORM, hp->n_embd, 1, true },
			{ LT_GATE, hp->n_embd, hp->n_ff, !moe },
			{ LT_UP, hp->n_embd, hp->n_ff, !moe },
			{ LT_DOWN, hp->n_ff, hp->n_embd, !moe },
			{ LT_POST_FFN_NORM, hp->n_embd, 1, f->post_norms },
			{ LT_GATE_INP, hp->n_embd, hp->n_expert, moe },
			{ LT_GATE_INP_B, hp->n_expert, 1, moe && f->oai_moe },
		};
		for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
			const struct role *r = &layer_roles[want[i].role];
			const char *suffix = want[i].role == LT_FFN_NORM && f->ffn_norm_name ?
					     f->ffn_norm_name : r->suffix;
			char name[96];
			snprintf(name, sizeof(name), "blk.%d.%s", il, suffix);
			/* Biases are optional extras for families that do not
			 * require them (llama with attention_bias); other
			 * tensors a family does not use are ignored. */
			bool bias = want[i].role == LT_BQ || want[i].role == LT_BK ||
				    want[i].role == LT_BV || want[i].role == LT_BO;
			if (!want[i].need && !(bias && gguf_find_tensor(m->gguf, name)))
				continue;
			if ((rc = bind(m, &b->t[want[i].role], name, want[i].ne0, want[i].ne1,
				       r->one_dim, err))) {
				free(layers);
				return rc;
			}
			b->has[want[i].role] = true;
			b->nbytes += b->t[want[i].role].nbytes;
		}
		if (b->nbytes > max_layer)
			max_layer = b->nbytes;
		if (moe) {
			if ((rc = load_experts(m, il, b + 1, err))) {
				free(layers);
				return rc;
			}
			if (b[1].nbytes > max_layer)
				max_layer = b[1].nbytes;
		}
	}

	uint64_t want = m->shard_target ? m->shard_target : SHARD_MIN_BYTES;
	uint64_t shard_bytes = max_layer > want ? max_layer : want;
	int64_t emb_rows, head_rows;
	shard_table(&emb_t, shard_bytes, &m->n_emb_blocks, &emb_rows);
	shard_table(&head_t, shard_bytes, &m->n_head_blocks, &head_rows);
	m->n_blocks = m->n_emb_blocks + n_layer_blocks + m->n_head_blocks;
	m->blocks = calloc((size_t)m->n_blocks, sizeof(*m->blocks));
	m->layer_block = calloc((size_t)hp->n_layer + 1, sizeof(*m->layer_block));
	if (!m->blocks || !m->layer_block) {
		free(layers);
		return smk_fail(err, -ENOMEM, "out of memory for %d blocks", m->n_blocks);
	}
	fill_shards(m->blocks, 0, m->n_emb_blocks, emb_rows, &emb_t, BLOCK_EMBED, EMB_TOKEN);
	memcpy(&m->blocks[m->n_emb_blocks], layers, sizeof(*layers) * (size_t)n_layer_blocks);
	free(layers);
	for (int il = 0; il <= hp->n_layer; il++)
		m->layer_block[il] = m->n_emb_blocks + il * per_layer;
	/* A tied head's shards are the embedding's (same rows: same bytes, so
	 * the weight store keeps one copy of each). */
	fill_shards(m->blocks, model_head_block(m, 0), m->n_head_blocks, head_rows, &head_t,
		    BLOCK_HEAD, HEAD_OUTPUT);
	struct wblock *head = &m->blocks[model_head_block(m, 0)];
	head->t[HEAD_NORM] = norm_t;
	head->has[HEAD_NORM] = true;
	head->nbytes += norm_t.nbytes;

	if (gguf_find_tensor(m->gguf, "rope_freqs.weight") &&
	    (rc = bind(m, &m->rope_freqs, "rope_freqs.weight", hp->n_rot / 2, 1, true, err)))
		return rc;

	for (int i = 0; i < m->n_blocks; i++)
		m->weight_bytes += m->blocks[i].nbytes;
	/* A tied head reads the embedding table: count those bytes once. */
	if (tied)
		m->weight_bytes -= emb_t.nbytes;
	return 0;
}

int model_load(struct model **out, const char *path, struct smk_err *err)
{
	return model_load_opts(out, path, NULL, err);
}

int model_load_opts(struct model **out, const char *path, const struct model_load_opts *o,
		    struct smk_err *err)
{
	static const struct model_load_opts defaults = { .dtype = CONVERT_AUTO };
	if (!o)
		o = &defaults;
	struct model *m = calloc(1, sizeof(*m));
	if (!m)
		return smk_fail(err, -ENOMEM, "out of memory");
	/* Two readers, one plan: a Hugging Face directory is translated into
	 * the keys and tensor names of a GGUF file (formats/model_file.h). */
	int rc = model_file_open(&m->gguf, path, err);
	m->dtype = o->dtype;
	m->shard_target = o->shard_bytes;
	if (rc)
		goto fail;

	const char *arch;
	size_t alen;
	rc = gguf_get_str(m->gguf, "general.architecture", &arch, &alen, err);
	if (rc) {
		if (rc == -ENOENT)
			rc = smk_fail(err, -EINVAL, "%s: metadata key 'general.architecture' is missing", path);
		goto fail;
	}
	const struct family_info *fi = family_by_gguf_arch(arch, alen);
	if (!fi) {
		char names[128];
		rc = smk_fail(err, -EINVAL, "%s: architecture '%.*s' is not supported (%s)",
			      path, (int)(alen > 64 ? 64 : alen), arch,
			      family_list(names, sizeof(names), 0));
		goto fail;
	}
	m->fam = &families[fi->family];
	const char *name;
	size_t nlen;
	if (gguf_get_str(m->gguf, "general.name", &name, &nlen, NULL) == 0)
		snprintf(m->name, sizeof(m->name), "%.*s", (int)(nlen > 120 ? 120 : nlen), name);
	else
		snprintf(m->name, sizeof(m->name), "%s", family_name(m->fam->family));

	/* HF checkpoints keep q/k rows in rotate-half order; llama.cpp's
	 * converter permutes llama's into interleaved order instead.  A
	 * translated model says which it has. */
	m->rope = m->fam->rope;
	const char *layout;
	size_t llen;
	if (gguf_get_str(m->gguf, "smoke.rope.layout", &layout, &llen, NULL) == 0) {
		if (llen == 4 && !memcmp(layout, "neox", 4))
			m->rope = ROPE_NEOX;
		else if (llen == 4 && !memcmp(layout, "norm", 4))
			m->rope = ROPE_NORM;
	}
	if ((rc = load_hparams(m, err)) || (rc = load_blocks(m, err)))
		goto fail;
	*out = m;
	return 0;
fail:
	model_free(m);
	return rc;
}

void model_free(struct model *m)
{
	if (!m)
		return;
	gguf_close(m->gguf);
	for (int i = 0; i < m->n_owned; i++)
		free(m->owned[i]);
	free(m->owned);
	free(m->blocks);
	free(m->layer_block);
	free(m);
}

bool model_layer_is_swa(const struct model *m, int il)
{
	int p = m->fam->swa_pattern;
	return p > 0 && il % p < p - 1;
}

void model_layer_rope(const struct model *m, int il, struct rope_params *rp)
{
	/* Every field, including those no family of ours sets (YaRN's
	 * ext_factor/attn_factor: 0 = off), so the op never reads garbage. */
	memset(rp, 0, sizeof(*rp));
	rp->kind = m->rope;
	rp->n_rot = m->hp.n_rot;
	rp->freq_factors = m->rope_freqs.data;
	if (model_layer_is_swa(m, il) && m->fam->swa_rope_base > 0.0f) {
		rp->base = m->fam->swa_rope_base;
		rp->freq_scale = 1.0f;
	} else {
		rp->base = m->hp.rope_base;
		rp->freq_scale = m->hp.rope_freq_scale;
		if (m->hp.yarn_ext_factor != 0.0f) {
			rp->ext_factor = m->hp.yarn_ext_factor;
			rp->attn_factor = m->hp.yarn_attn_factor;
			rope_yarn_corr_dims(rp->n_rot, m->hp.yarn_orig_ctx, rp->base, m->hp.yarn_beta_fast,
					    m->hp.yarn_beta_slow, rp->corr_dims);
			if (m->hp.yarn_unrounded) {
				/* transformers' find_correction_range(truncate=False) */
				const double n = rp->n_rot, lb = 2.0 * log(rp->base);
				const double lo = n * log(m->hp.yarn_orig_ctx / (m->hp.yarn_beta_fast * 2.0 * M_PI)) / lb;
				const double hi = n * log(m->hp.yarn_orig_ctx / (m->hp.yarn_beta_slow * 2.0 * M_PI)) / lb;
				rp->corr_dims[0] = (float)(lo > 0.0 ? lo : 0.0);
				rp->corr_dims[1] = (float)(hi < n - 1.0 ? hi : n - 1.0);
			}
		}
	}
}
