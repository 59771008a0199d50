/* hf_model.c - a Hugging Face model directory read as a GGUF handle (see
 * hf_model.h).
 *
 * The translation follows llama.cpp's convert_hf_to_gguf.py (key names,
 * tensor names, the Gemma norm +1, the llama3 rope factors), so that what
 * arch/model.c checks and computes is the same for both formats.  Every value
 * read from config.json is type- and range-checked here; shapes and types of
 * the tensors are checked again by gguf.c (the built image) and model.c. */
#include "formats/hf/hf_model.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/family.h"
#include "formats/gguf_build.h"
#include "formats/json_err.h"
#include "quant/qtype.h"
#include "formats/safetensors.h"
#include "formats/hf/hf_gpt_oss.h"
#include "formats/hf/tokenizer_json.h"
#include "util/fp16.h"

/* Layer tensor names: HF suffix -> GGUF suffix.  post_attention_layernorm
 * is the FFN's pre-norm in llama and qwen2, but a real post-norm in Gemma 3
 * (which has pre_feedforward_layernorm for the FFN). */
struct name_map {
	const char *hf, *gguf;
};

static const struct name_map layer_names[] = {
	{ "input_layernorm.weight", "attn_norm.weight" },
	{ "self_attn.q_proj.weight", "attn_q.weight" },
	{ "self_attn.k_proj.weight", "attn_k.weight" },
	{ "self_attn.v_proj.weight", "attn_v.weight" },
	{ "self_attn.o_proj.weight", "attn_output.weight" },
	{ "self_attn.q_proj.bias", "attn_q.bias" },
	{ "self_attn.k_proj.bias", "attn_k.bias" },
	{ "self_attn.v_proj.bias", "attn_v.bias" },
	{ "self_attn.o_proj.bias", "attn_output.bias" },
	{ "mlp.gate_proj.weight", "ffn_gate.weight" },
	{ "mlp.up_proj.weight", "ffn_up.weight" },
	{ "mlp.down_proj.weight", "ffn_down.weight" },
};

static const struct name_map llama_names[] = {
	{ "post_attention_layernorm.weight", "ffn_norm.weight" },
};

/* Qwen 3: llama's norms plus per-head q/k norms (applied before RoPE, as
 * the plan does for the qwen3 family). */
static const struct name_map qwen3_names[] = {
	{ "post_attention_layernorm.weight", "ffn_norm.weight" },
	{ "self_attn.q_norm.weight", "attn_q_norm.weight" },
	{ "self_attn.k_norm.weight", "attn_k_norm.weight" },
};

struct hf;
static int moe_keys(struct hf *h, int64_t ff);

static const struct name_map gemma_names[] = {
	{ "self_attn.q_norm.weight", "attn_q_norm.weight" },
	{ "self_attn.k_norm.weight", "attn_k_norm.weight" },
	{ "post_attention_layernorm.weight", "post_attention_norm.weight" },
	{ "pre_feedforward_layernorm.weight", "ffn_norm.weight" },
	{ "post_feedforward_layernorm.weight", "post_ffw_norm.weight" },
};

/* What the finished handle's tensors point into. */
struct hf_res {
	struct st_set *set;
	struct hf_oss_cache *oss;   /* gpt-oss's converted experts, or NULL */
};

struct hf {
	const char *dir;
	char cfg_path[4096];
	json_t *cfg;
	const struct family_info *fam;   /* formats/family.h */
	const char *hf_class;            /* architectures[0], borrowed from cfg */
	bool gemma;                      /* Gemma: norms are (1 + w), extra norms */
	bool mixtral;                    /* MixtralForCausalLM: block_sparse_moe.* */
	bool gpt_oss;                    /* GptOssForCausalLM (hf_gpt_oss.h) */
	int n_expert;                    /* mixture of experts (0: dense) */
	struct gguf_builder *b;
	struct st_set *set;
	struct hf_res *res;              /* what the handle releases at close */
	int n_layer, head_dim;
	int64_t n_embd, n_ff;
	double rope_theta;
	json_t *rope_global, *rope_local;  /* borrowed from cfg; may be NULL */
	bool tied;
	struct smk_err *err;
};

/* ---- config.json -------------------------------------------------------- */

/* An integer key: -ENOENT if absent or null and not required. */
static int cfg_int(struct hf *h, const char *key, bool required, int64_t lo, int64_t hi,
		   int64_t *out)
{
	json_t *v = json_object_get(h->cfg, key);
	if (!v || json_is_null(v)) {
		if (!required)
			return -ENOENT;
		return smk_fail(h->err, -EINVAL, "%s: key '%s' is missing", h->cfg_path, key);
	}
	if (!json_is_integer(v))
		return smk_fail(h->err, -EINVAL, "%s: key '%s' must be an integer", h->cfg_path, key);
	int64_t x = json_integer_value(v);
	if (x < lo || x > hi)
		return smk_fail(h->err, -EINVAL, "%s: key '%s' is %" PRId64 ", outside %" PRId64
				"..%" PRId64, h->cfg_path, key, x, lo, hi);
	*out = x;
	return 0;
}

static int cfg_num(struct hf *h, json_t *obj, const char *key, bool required, double *out)
{
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v)) {
		if (!required)
			return -ENOENT;
		return smk_fail(h->err, -EINVAL, "%s: key '%s' is missing", h->cfg_path, key);
	}
	if (!json_is_number(v) || !isfinite(json_number_value(v)))
		return smk_fail(h->err, -EINVAL, "%s: key '%s' must be a finite number", h->cfg_path, key);
	*out = json_number_value(v);
	return 0;
}

static const char *cfg_str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A key whose presence (non-null, non-false) means a feature we lack. */
static int refuse_if_set(struct hf *h, const char *key, const char *why)
{
	json_t *v = json_object_get(h->cfg, key);
	if (!v || json_is_null(v) || json_is_false(v))
		return 0;
	return smk_fail(h->err, -ENOTSUP, "%s: key '%s' is set, but %s", h->cfg_path, key, why);
}

static int read_config(struct hf *h)
{
	snprintf(h->cfg_path, sizeof(h->cfg_path), "%s/config.json", h->dir);
	json_error_t je;
	bool nomem;
	h->cfg = json_load_file_checked(h->cfg_path, JSON_REJECT_DUPLICATES, &je, &nomem);
	if (nomem)
		return smk_fail(h->err, -ENOMEM, "%s: out of memory reading it", h->cfg_path);
	if (!h->cfg)
		return smk_fail(h->err, -EINVAL, "%s: line %d: %s", h->cfg_path, je.line, je.text);
	if (!json_is_object(h->cfg))
		return smk_fail(h->err, -EINVAL, "%s: not a JSON object", h->cfg_path);
	json_t *ar = json_object_get(h->cfg, "architectures");
	const char *name = json_is_array(ar) && json_array_size(ar) == 1 ?
			   json_string_value(json_array_get(ar, 0)) : NULL;
	if (!name)
		return smk_fail(h->err, -EINVAL, "%s: key 'architectures' must be an array of one string",
				h->cfg_path);
	h->fam = family_by_hf_class(name);
	if (!h->fam) {
		char names[160];
		return smk_fail(h->err, -ENOTSUP, "%s: architecture '%.64s' is not supported (%s)",
				h->cfg_path, name, family_list(names, sizeof(names), 1));
	}
	h->hf_class = name;  /* lives as long as h->cfg */
	h->gemma = h->fam->family == FAMILY_GEMMA3;
	h->mixtral = !strcmp(name, "MixtralForCausalLM");
	h->gpt_oss = h->fam->family == FAMILY_GPT_OSS;
	return 0;
}

static void key_u32(struct hf *h, const char *k, int64_t v)
{
	char full[128];
	snprintf(full, sizeof(full), "%s.%s", h->fam->gguf_arch, k);
	gguf_builder_set_u32(h->b, full, (uint32_t)v);
}

static void key_f32(struct hf *h, const char *k, double v)
{
	char full[128];
	snprintf(full, sizeof(full), "%s.%s", h->fam->gguf_arch, k);
	gguf_builder_set_f32(h->b, full, (float)v);
}

static int check_act(struct hf *h)
{
	/* gpt-oss's config says hidden_act "silu", which its experts do not
	 * use (the clamped SwiGLU is fixed in the model; check_gpt_oss checks
	 * its two constants instead). */
	if (h->gpt_oss)
		return 0;
	const char *act = cfg_str(h->cfg, "hidden_activation");
	if (!act)
		act = cfg_str(h->cfg, "hidden_act");
	if (!act)
		return smk_fail(h->err, -EINVAL, "%s: key 'hidden_act' is missing", h->cfg_path);
	/* Gemma's checkpoints say gelu_pytorch_tanh; some say gelu meaning the
	 * same tanh approximation (transformers maps both for Gemma). */
	if (strcmp(act, h->fam->hf_act) && !(h->gemma && !strcmp(act, "gelu")))
		return smk_fail(h->err, -ENOTSUP, "%s: activation '%.32s' is not supported for %s (%s)",
				h->cfg_path, act, h->hf_class, h->fam->hf_act);
	return 0;
}

/* Gemma 3 facts the forward pass hard-wires (family_desc in model.c): check
 * that this checkpoint agrees instead of computing something else. */
static int check_gemma(struct hf *h)
{
	double v;
	int64_t n;
	int rc;
	if (h->rope_local)
		rc = cfg_num(h, h->rope_local, "rope_theta", false, &v);
	else
		rc = cfg_num(h, h->cfg, "rope_local_base_freq", false, &v);
	if (rc == 0 && v != 10000.0)
		return smk_fail(h->err, -ENOTSUP, "%s: the sliding layers' rope theta %g is not "
				"supported (10000)", h->cfg_path, v);
	if (rc && rc != -ENOENT)
		return rc;
	if ((rc = cfg_num(h, h->cfg, "query_pre_attn_scalar", false, &v)) == 0 && v != h->head_dim)
		return smk_fail(h->err, -ENOTSUP, "%s: query_pre_attn_scalar %g != head_dim %d is not supported",
				h->cfg_path, v, h->head_dim);
	if (rc && rc != -ENOENT)
		return rc;
	if ((rc = cfg_int(h, "sliding_window_pattern", false, 1, 1 << 20, &n)) == 0 && n != 6)
		return smk_fail(h->err, -ENOTSUP, "%s: sliding_window_pattern %" PRId64
				" is not supported (6)", h->cfg_path, n);
	if (rc && rc != -ENOENT)
		return rc;
	json_t *lt = json_object_get(h->cfg, "layer_types");
	if (lt && !json_is_null(lt)) {
		if (!json_is_array(lt) || json_array_size(lt) != (size_t)h->n_layer)
			return smk_fail(h->err, -EINVAL, "%s: key 'layer_types' must be an array of %d strings",
					h->cfg_path, h->n_layer);
		for (int il = 0; il < h->n_layer; il++) {
			const char *t = json_string_value(json_array_get(lt, (size_t)il));
			const char *want = il % 6 < 5 ? "sliding_attention" : "full_attention";
			if (!t || strcmp(t, want))
				return smk_fail(h->err, -ENOTSUP, "%s: layer_types[%d] is '%.32s'; only "
						"the 5 sliding : 1 full pattern is supported ('%s')",
						h->cfg_path, il, t ? t : "(not a string)", want);
		}
	}
	if ((rc = refuse_if_set(h, "final_logit_softcapping", "logit softcapping is not implemented")) ||
	    (rc = refuse_if_set(h, "attn_logit_softcapping", "attention softcapping is not implemented")))
		return rc;
	int64_t sw;
	if ((rc = cfg_int(h, "sliding_window", true, 1, INT32_MAX, &sw)))
		return rc;
	key_u32(h, "attention.sliding_window", sw);
	return 0;
}

/* llama3 rope scaling as frequency factors, computed as the converter does
 * (LlamaModel.generate_extra_tensors in convert_hf_to_gguf.py). */
static int llama3_factors(struct hf *h, json_t *rs)
{
	double factor = 8.0, lo = 1.0, hi = 4.0, old_ctx = 8192.0;
	int rc;
	if (((rc = cfg_num(h, rs, "factor", false, &factor)) && rc != -ENOENT) ||
	    ((rc = cfg_num(h, rs, "low_freq_factor", false, &lo)) && rc != -ENOENT) ||
	    ((rc = cfg_num(h, rs, "high_freq_factor", false, &hi)) && rc != -ENOENT) ||
	    ((rc = cfg_num(h, rs, "original_max_position_embeddings", false, &old_ctx)) &&
	     rc != -ENOENT))
		return smk_err_prefix(h->err, "rope_scaling");
	if (!(factor > 0) || !(lo > 0) || !(hi > lo) || !(old_ctx > 0))
		return smk_fail(h->err, -EINVAL, "%s: rope_scaling: llama3 needs factor > 0 and "
				"0 < low_freq_factor < high_freq_factor", h->cfg_path);
	int n = h->head_dim / 2;
	float *f = gguf_builder_alloc(h->b, sizeof(float) * (size_t)n);
	if (!f)
		return smk_fail(h->err, -ENOMEM, "out of memory");
	double lo_wl = old_ctx / lo, hi_wl = old_ctx / hi;
	for (int i = 0; i < n; i++) {
		double freq = 1.0 / pow(h->rope_theta, (2.0 * i) / h->head_dim);
		double wl = 2.0 * M_PI / freq;
		if (wl < hi_wl) {
			f[i] = 1.0f;
		} else if (wl > lo_wl) {
			f[i] = (float)factor;
		} else {
			double smooth = (old_ctx / wl - lo) / (hi - lo);
			f[i] = (float)(1.0 / ((1.0 - smooth) / factor + smooth));
		}
	}
	uint64_t ne[1] = { (uint64_t)n };
	gguf_builder_add_tensor(h->b, "rope_freqs.weight", QTYPE_F32, 1, ne, f, -1, 0);
	return 0;
}

/* RoPE settings come in two spellings: transformers 4 wrote rope_theta +
 * rope_scaling (+ Gemma's rope_local_base_freq); transformers 5 writes
 * rope_parameters, one object, or one per layer type (Gemma 3:
 * full_attention / sliding_attention). */
static int rope_objects(struct hf *h)
{
	json_t *rp = json_object_get(h->cfg, "rope_parameters");
	if (!rp || json_is_null(rp)) {
		h->rope_global = json_object_get(h->cfg, "rope_scaling");
		if (h->rope_global && json_is_null(h->rope_global))
			h->rope_global = NULL;
		if (h->rope_global && !json_is_object(h->rope_global))
			return smk_fail(h->err, -EINVAL, "%s: key 'rope_scaling' must be an object or null",
					h->cfg_path);
		h->rope_theta = 10000.0;
		int rc = cfg_num(h, h->cfg, "rope_theta", false, &h->rope_theta);
		return rc == -ENOENT ? 0 : rc;
	}
	if (!json_is_object(rp))
		return smk_fail(h->err, -EINVAL, "%s: key 'rope_parameters' must be an object", h->cfg_path);
	json_t *full = json_object_get(rp, "full_attention");
	if (full) {
		h->rope_global = full;
		h->rope_local = json_object_get(rp, "sliding_attention");
		if (!json_is_object(full) || (h->rope_local && !json_is_object(h->rope_local)))
			return smk_fail(h->err, -EINVAL, "%s: rope_parameters: per-layer-type entries "
					"must be objects", h->cfg_path);
	} else {
		h->rope_global = rp;
	}
	int rc = cfg_num(h, h->rope_global, "rope_theta", true, &h->rope_theta);
	return rc ? smk_err_prefix(h->err, "rope_parameters") : 0;
}

/* YaRN as the converter writes it (TextModel.set_gguf_parameters): the
 * factor, the training context and beta_fast/slow; arch/model.c derives
 * the rest as llama.cpp does (ext_factor 1, magnitude 1 + 0.1 ln factor,
 * which is transformers' default attention_factor).  What would make
 * transformers compute something else is refused: an explicit
 * attention_factor or mscale, a partial rotary factor.  "truncate": false
 * (gpt-oss's setting: the ramp's ends unrounded, where llama.cpp rounds
 * them down and up) becomes smoke.rope.yarn_truncate false, which
 * arch/model.c honours (docs/models.md). */
static int yarn_keys(struct hf *h, json_t *rs)
{
	double factor, orig, bf = 32.0, bs = 1.0, prf = 1.0;
	int rc;
	if ((rc = cfg_num(h, rs, "factor", true, &factor)) ||
	    (rc = cfg_num(h, rs, "original_max_position_embeddings", true, &orig)) ||
	    ((rc = cfg_num(h, rs, "beta_fast", false, &bf)) && rc != -ENOENT) ||
	    ((rc = cfg_num(h, rs, "beta_slow", false, &bs)) && rc != -ENOENT) ||
	    ((rc = cfg_num(h, rs, "partial_rotary_factor", false, &prf)) && rc != -ENOENT))
		return smk_err_prefix(h->err, "rope scaling");
	if (!(factor >= 1.0) || !(orig >= 1.0 && orig <= INT32_MAX && orig == floor(orig)) ||
	    !(bf > 0.0) || !(bs > 0.0))
		return smk_fail(h->err, -EINVAL, "%s: yarn needs factor >= 1, an integer "
				"original_max_position_embeddings and positive beta_fast/beta_slow",
				h->cfg_path);
	if (prf != 1.0)
		return smk_fail(h->err, -ENOTSUP, "%s: rope scaling key 'partial_rotary_factor' %g is not "
				"supported (1)", h->cfg_path, prf);
	static const char *const refused[] = { "attention_factor", "mscale", "mscale_all_dim" };
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		json_t *v = json_object_get(rs, refused[i]);
		if (v && !json_is_null(v))
			return smk_fail(h->err, -ENOTSUP, "%s: rope scaling key '%s' is set, but only "
					"yarn's default magnitude (1 + 0.1 ln factor) is implemented",
					h->cfg_path, refused[i]);
	}
	json_t *tr = json_object_get(rs, "truncate");
	if (tr && !json_is_boolean(tr) && !json_is_null(tr))
		return smk_fail(h->err, -EINVAL, "%s: rope scaling key 'truncate' must be a boolean",
				h->cfg_path);
	char key[64];
	snprintf(key, sizeof(key), "%s.rope.scaling.type", h->fam->gguf_arch);
	gguf_builder_set_str(h->b, key, "yarn", 4);
	key_f32(h, "rope.scaling.factor", factor);
	key_u32(h, "rope.scaling.original_context_length", (int64_t)orig);
	key_f32(h, "rope.scaling.yarn_beta_fast", bf);
	key_f32(h, "rope.scaling.yarn_beta_slow", bs);
	/* transformers' default is true (llama.cpp's floor/ceil) */
	if (json_is_false(tr))
		gguf_builder_set_bool(h->b, "smoke.rope.yarn_truncate", false);
	return 0;
}

/* gpt-oss facts the forward pass hard-wires (family_desc in model.c and
 * the clamped SwiGLU of exec/): even layers slide over sliding_window
 * positions, odd layers see everything; alpha 1.702, limit 7; biases on
 * q/k/v/o. */
static int check_gpt_oss(struct hf *h)
{
	double v;
	int rc;
	if ((rc = cfg_num(h, h->cfg, "swiglu_alpha", false, &v)) == 0 && fabs(v - 1.702) > 1e-6)
		return smk_fail(h->err, -ENOTSUP, "%s: swiglu_alpha %g is not supported (1.702)", h->cfg_path, v);
	if (rc && rc != -ENOENT)
		return rc;
	if ((rc = cfg_num(h, h->cfg, "swiglu_limit", false, &v)) == 0 && v != 7.0)
		return smk_fail(h->err, -ENOTSUP, "%s: swiglu_limit %g is not supported (7)", h->cfg_path, v);
	if (rc && rc != -ENOENT)
		return rc;
	json_t *ab = json_object_get(h->cfg, "attention_bias");
	if (ab && !json_is_true(ab))
		return smk_fail(h->err, -ENOTSUP, "%s: key 'attention_bias' must be true for gpt-oss",
				h->cfg_path);
	json_t *lt = json_object_get(h->cfg, "layer_types");
	if (lt && !json_is_null(lt)) {
		if (!json_is_array(lt) || json_array_size(lt) != (size_t)h->n_layer)
			return smk_fail(h->err, -EINVAL, "%s: key 'layer_types' must be an array of %d strings",
					h->cfg_path, h->n_layer);
		for (int il = 0; il < h->n_layer; il++) {
			const char *t = json_string_value(json_array_get(lt, (size_t)il));
			const char *want = il % 2 ? "full_attention" : "sliding_attention";
			if (!t || strcmp(t, want))
				return smk_fail(h->err, -ENOTSUP, "%s: layer_types[%d] is '%.32s'; only "
						"sliding and full layers alternating is supported ('%s')",
						h->cfg_path, il, t ? t : "(not a string)", want);
		}
	}
	json_t *qc = json_object_get(h->cfg, "quantization_config");
	if (qc && !json_is_null(qc)) {
		const char *qm = json_is_object(qc) ? cfg_str(qc, "quant_method") : NULL;
		if (!qm || strcmp(qm, "mxfp4"))
			return smk_fail(h->err, -ENOTSUP, "%s: quantization_config.quant_method '%.32s' is not "
					"supported (mxfp4, or no quantization_config)", h->cfg_path,
					qm ? qm : "(missing)");
	}
	int64_t sw;
	if ((rc = cfg_int(h, "sliding_window", true, 1, INT32_MAX, &sw)))
		return rc;
	key_u32(h, "attention.sliding_window", sw);
	return 0;
}

static int rope_scaling(struct hf *h)
{
	json_t *rs = h->rope_global;
	if (!rs)
		return 0;
	const char *type = cfg_str(rs, "rope_type");
	if (!type)
		type = cfg_str(rs, "type");
	if (!type)
		return smk_fail(h->err, -EINVAL, "%s: rope scaling has no 'rope_type'", h->cfg_path);
	if (!strcmp(type, "default"))
		return 0;
	if (!strcmp(type, "llama3") && !h->gemma)
		return llama3_factors(h, rs);
	if (!strcmp(type, "linear")) {
		double factor;
		int rc = cfg_num(h, rs, "factor", true, &factor);
		if (rc)
			return smk_err_prefix(h->err, "rope_scaling");
		if (!(factor >= 1.0))
			return smk_fail(h->err, -EINVAL, "%s: rope_scaling factor %g must be >= 1",
					h->cfg_path, factor);
		char key[64];
		snprintf(key, sizeof(key), "%s.rope.scaling.type", h->fam->gguf_arch);
		gguf_builder_set_str(h->b, key, "linear", 6);
		key_f32(h, "rope.scaling.factor", factor);
		return 0;
	}
	if (!strcmp(type, "yarn") && h->gpt_oss)
		return yarn_keys(h, rs);
	return smk_fail(h->err, -ENOTSUP, "%s: rope_scaling type '%.32s' is not supported "
			"(linear, llama3%s)", h->cfg_path, type, h->gpt_oss ? ", yarn" : "");
}

static int hparams(struct hf *h)
{
	int64_t ctx = 0, embd = 0, layers = 0, ff = 0, heads = 0, heads_kv, head_dim;
	double eps;
	int rc;
	if ((rc = cfg_int(h, "max_position_embeddings", true, 1, INT32_MAX, &ctx)) ||
	    (rc = cfg_int(h, "hidden_size", true, 1, 1 << 20, &embd)) ||
	    (rc = cfg_int(h, "num_hidden_layers", true, 1, 4096, &layers)) ||
	    (rc = cfg_int(h, "intermediate_size", true, 1, 1 << 22, &ff)) ||
	    (rc = cfg_int(h, "num_attention_heads", true, 1, 1024, &heads)) ||
	    (rc = cfg_num(h, h->cfg, "rms_norm_eps", true, &eps)) || (rc = check_act(h)))
		return rc;
	heads_kv = heads;
	if ((rc = cfg_int(h, "num_key_value_heads", false, 1, 1024, &heads_kv)) && rc != -ENOENT)
		return rc;
	head_dim = embd / heads;
	if ((rc = cfg_int(h, "head_dim", false, 1, 4096, &head_dim)) && rc != -ENOENT)
		return rc;
	if ((rc = rope_objects(h)))
		return rc;
	if (!(h->rope_theta > 1.0) || !(eps > 0.0 && eps < 1.0))
		return smk_fail(h->err, -EINVAL, "%s: rope_theta %g or rms_norm_eps %g out of range",
				h->cfg_path, h->rope_theta, eps);
	h->n_layer = (int)layers;
	h->head_dim = (int)head_dim;
	h->n_embd = embd;
	h->n_ff = ff;

	gguf_builder_set_str(h->b, "general.architecture", h->fam->gguf_arch, strlen(h->fam->gguf_arch));
	const char *base = strrchr(h->dir, '/');
	base = base && base[1] ? base + 1 : h->dir;
	gguf_builder_set_str(h->b, "general.name", base, strlen(base));
	gguf_builder_set_str(h->b, "smoke.rope.layout", "neox", 4);
	key_u32(h, "context_length", ctx);
	key_u32(h, "embedding_length", embd);
	key_u32(h, "block_count", layers);
	key_u32(h, "feed_forward_length", ff);
	key_u32(h, "attention.head_count", heads);
	key_u32(h, "attention.head_count_kv", heads_kv);
	key_u32(h, "attention.key_length", head_dim);
	key_u32(h, "attention.value_length", head_dim);
	key_f32(h, "attention.layer_norm_rms_epsilon", eps);
	key_f32(h, "rope.freq_base", h->rope_theta);

	if ((rc = moe_keys(h, ff)))
		return rc;

	/* What the plan cannot compute: refuse rather than compute it wrong. */
	if ((rc = refuse_if_set(h, "mlp_bias", "MLP biases are not implemented")))
		return rc;
	if (!h->gemma && (rc = refuse_if_set(h, "use_sliding_window",
						"sliding windows are only implemented for Gemma 3")))
		return rc;
	if ((!strcmp(h->hf_class, "MistralForCausalLM") || h->mixtral) &&
	    (rc = refuse_if_set(h, "sliding_window", "sliding windows are only implemented for Gemma 3")))
		return rc;
	if (h->gemma && (rc = check_gemma(h)))
		return rc;
	if (h->gpt_oss && (rc = check_gpt_oss(h)))
		return rc;
	json_t *tie = json_object_get(h->cfg, "tie_word_embeddings");
	if (tie && !json_is_boolean(tie))
		return smk_fail(h->err, -EINVAL, "%s: key 'tie_word_embeddings' must be a boolean",
				h->cfg_path);
	/* transformers' own default: tied unless the config says otherwise,
	 * except llama/mistral/qwen2 whose configs default to untied. */
	h->tied = tie ? json_is_true(tie) : h->gemma;
	return rope_scaling(h);
}

/* Mixture of experts: Mixtral (num_local_experts, experts intermediate_size
 * wide) and Qwen3-MoE (num_experts, moe_intermediate_size; transformers 5
 * writes num_local_experts instead).  The plan
 * renormalises the top-k weights and runs every layer as MoE, as
 * llama.cpp does: a checkpoint that says otherwise is refused. */
static int moe_keys(struct hf *h, int64_t ff)
{
	const bool qmoe = h->fam->family == FAMILY_QWEN3MOE;
	if (!qmoe && !h->mixtral && !h->gpt_oss)
		return 0;
	int64_t ne, used, ffe = ff;
	int rc;
	rc = cfg_int(h, qmoe ? "num_experts" : "num_local_experts", !qmoe, 1, 1024, &ne);
	if (rc == -ENOENT && (rc = cfg_int(h, "num_local_experts", false, 1, 1024, &ne)) == -ENOENT)
		return smk_fail(h->err, -EINVAL, "%s: key 'num_experts' (or 'num_local_experts') is missing",
				h->cfg_path);
	if (rc || (rc = cfg_int(h, "num_experts_per_tok", true, 1, 1024, &used)))
		return rc;
	if (used > ne)
		return smk_fail(h->err, -EINVAL, "%s: num_experts_per_tok %lld exceeds the %lld experts",
				h->cfg_path, (long long)used, (long long)ne);
	if (qmoe) {
		if ((rc = cfg_int(h, "moe_intermediate_size", true, 1, 1 << 22, &ffe)))
			return rc;
		json_t *nt = json_object_get(h->cfg, "norm_topk_prob");
		if (nt && !json_is_true(nt))
			return smk_fail(h->err, -ENOTSUP, "%s: norm_topk_prob false is not supported (the top-k weights are renormalised, as llama.cpp does)",
					h->cfg_path);
		int64_t step = 1;
		if ((rc = cfg_int(h, "decoder_sparse_step", false, 1, 1 << 20, &step)) && rc != -ENOENT)
			return rc;
		json_t *mo = json_object_get(h->cfg, "mlp_only_layers");
		if (step != 1 || (mo && !(json_is_array(mo) && json_array_size(mo) == 0)))
			return smk_fail(h->err, -ENOTSUP, "%s: dense layers between MoE layers (decoder_sparse_step, mlp_only_layers) are not supported",
					h->cfg_path);
		key_u32(h, "expert_feed_forward_length", ffe);
	}
	if (h->gpt_oss)  /* the converter's expert_feed_forward_length */
		key_u32(h, "expert_feed_forward_length", ff);
	if ((rc = refuse_if_set(h, "shared_expert_intermediate_size", "shared experts are not supported")))
		return rc;
	key_u32(h, "expert_count", ne);
	key_u32(h, "expert_used_count", used);
	h->n_expert = (int)ne;
	return 0;
}

/* ---- tensors ------------------------------------------------------------ */

static const char *map_layer(const struct hf *h, const char *rest)
{
	for (size_t i = 0; i < sizeof(layer_names) / sizeof(layer_names[0]); i++)
		if (!strcmp(rest, layer_names[i].hf))
			return layer_names[i].gguf;
	const struct name_map *extra = llama_names;
	size_t n = sizeof(llama_names) / sizeof(llama_names[0]);
	if (h->gemma) {
		extra = gemma_names;
		n = sizeof(gemma_names) / sizeof(gemma_names[0]);
	} else if (h->fam->family == FAMILY_QWEN3 || h->fam->family == FAMILY_QWEN3MOE) {
		extra = qwen3_names;
		n = sizeof(qwen3_names) / sizeof(qwen3_names[0]);
	}
	for (size_t i = 0; i < n; i++)
		if (!strcmp(rest, extra[i].hf))
			return extra[i].gguf;
	return NULL;
}

/* The GGUF name of HF tensor `name` into out; 1 if the tensor is to be
 * skipped, 2 if it is a gpt-oss expert tensor (hf_gpt_oss.c), 0 if mapped,
 * <0 if unknown. */
static int map_name(struct hf *h, const char *name, char *out, size_t cap)
{
	if (!strcmp(name, "model.embed_tokens.weight"))
		return snprintf(out, cap, "token_embd.weight"), 0;
	if (!strcmp(name, "model.norm.weight"))
		return snprintf(out, cap, "output_norm.weight"), 0;
	if (!strcmp(name, "lm_head.weight"))
		/* A tied model's lm_head, where a writer stored it anyway, is
		 * the embedding: transformers ignores it, so do we. */
		return h->tied ? 1 : (snprintf(out, cap, "output.weight"), 0);
	const char *p = "model.layers.";
	if (strncmp(name, p, strlen(p)))
		return -ENOENT;
	const char *s = name + strlen(p);
	char *end;
	long il = strtol(s, &end, 10);
	if (end == s || *end != '.' || il < 0 || il >= h->n_layer || (s[0] == '0' && end - s > 1))
		return -ENOENT;
	if (!strcmp(end + 1, "self_attn.rotary_emb.inv_freq"))
		return 1;  /* recomputed from rope_theta, as transformers does */
	if (h->gpt_oss) {
		static const struct name_map oss[] = {
			{ "self_attn.sinks", "attn_sinks.weight" },
			{ "post_attention_layernorm.weight", "post_attention_norm.weight" },
			{ "mlp.router.weight", "ffn_gate_inp.weight" },
			{ "mlp.router.bias", "ffn_gate_inp.bias" },
		};
		if (hf_oss_is_expert_tensor(end + 1))
			return 2;  /* hf_gpt_oss.c reads them */
		for (size_t i = 0; i < sizeof(oss) / sizeof(oss[0]); i++)
			if (!strcmp(end + 1, oss[i].hf))
				return snprintf(out, cap, "blk.%ld.%s", il, oss[i].gguf), 0;
		if (!strncmp(end + 1, "mlp.", 4))
			return -ENOENT;
		goto dense;
	}
	if (h->n_expert) {
		/* The router and one tensor per expert (the plan's per-expert
		 * layout, blk.N.ffn_gate.E.weight). */
		const char *moe = h->mixtral ? "block_sparse_moe." : "mlp.";
		const size_t ml = strlen(moe);
		if (strncmp(end + 1, moe, ml))
			goto dense;
		const char *r = end + 1 + ml;
		if (!strcmp(r, "gate.weight"))
			return snprintf(out, cap, "blk.%ld.ffn_gate_inp.weight", il), 0;
		if (strncmp(r, "experts.", 8))
			return -ENOENT;
		r += 8;
		char *e_end;
		long e = strtol(r, &e_end, 10);
		if (e_end == r || *e_end != '.' || e < 0 || e >= h->n_expert || (r[0] == '0' && e_end - r > 1))
			return -ENOENT;
		static const struct name_map proj[] = {
			{ "gate_proj.weight", "ffn_gate" }, { "up_proj.weight", "ffn_up" },
			{ "down_proj.weight", "ffn_down" },
		};
		static const struct name_map mix[] = {
			{ "w1.weight", "ffn_gate" }, { "w3.weight", "ffn_up" }, { "w2.weight", "ffn_down" },
		};
		const struct name_map *pm = h->mixtral ? mix : proj;
		for (int i = 0; i < 3; i++)
			if (!strcmp(e_end + 1, pm[i].hf))
				return snprintf(out, cap, "blk.%ld.%s.%ld.weight", il, pm[i].gguf, e), 0;
		return -ENOENT;
	}
dense:;
	const char *g = map_layer(h, end + 1);
	if (!g)
		return -ENOENT;
	snprintf(out, cap, "blk.%ld.%s", il, g);
	return 0;
}

static bool is_norm(const char *gguf_name)
{
	size_t n = strlen(gguf_name);
	return n >= 11 && !strcmp(gguf_name + n - 11, "norm.weight");
}

/* 1-D tensors (norms, biases) become F32 copies; Gemma's norms get the +1
 * of its RMSNorm ((1 + w) * x), as convert_hf_to_gguf.py folds it in. */
static int add_vector(struct hf *h, const char *gname, const struct st_tensor *t, uint32_t type)
{
	float *f = gguf_builder_alloc(h->b, sizeof(float) * (size_t)t->n_elems);
	if (!f)
		return smk_fail(h->err, -ENOMEM, "out of memory");
	bool plus1 = h->gemma && is_norm(gname);
	for (uint64_t i = 0; i < t->n_elems; i++) {
		float x;
		uint16_t u;
		if (type == QTYPE_F32) {
			memcpy(&x, (const float *)t->data + i, 4);
		} else {
			memcpy(&u, (const uint16_t *)t->data + i, 2);
			x = type == QTYPE_F16 ? fp16_to_fp32(u) : bf16_to_fp32(u);
		}
		f[i] = plus1 ? x + 1.0f : x;
	}
	uint64_t ne[1] = { t->n_elems };
	gguf_builder_add_tensor(h->b, gname, QTYPE_F32, 1, ne, f, -1, 0);
	return 0;
}

static int add_tensors(struct hf *h)
{
	int src0 = -1;
	for (int i = 0; i < st_set_n_files(h->set); i++) {
		int s = gguf_builder_add_source(h->b, st_path(st_set_file(h->set, i)));
		if (s < 0)
			return smk_fail(h->err, -ENOMEM, "out of memory");
		if (i == 0)
			src0 = s;
	}
	for (uint64_t i = 0; i < st_set_n_tensors(h->set); i++) {
		int fi;
		const struct st_tensor *t = st_set_tensor_at(h->set, i, &fi);
		const char *path = st_path(st_set_file(h->set, fi));
		char gname[GGUF_MAX_NAME_LEN + 1];
		int rc = map_name(h, t->name, gname, sizeof(gname));
		if (rc == 1 || rc == 2)
			continue;
		if (rc)
			return smk_fail(h->err, -EINVAL, "%s: tensor '%s' is not part of a %s that smoke "
					"can run (unknown name)", path, t->name, h->hf_class);
		uint32_t type;
		switch (t->dtype) {
		case ST_F32: type = QTYPE_F32; break;
		case ST_F16: type = QTYPE_F16; break;
		case ST_BF16: type = QTYPE_BF16; break;
		default:
			return smk_fail(h->err, -EINVAL, "%s: tensor '%s' has dtype %s; model weights "
					"must be F32, F16 or BF16", path, t->name, st_dtype_name(t->dtype));
		}
		if (t->n_dims < 1 || t->n_dims > 2)
			return smk_fail(h->err, -EINVAL, "%s: tensor '%s' has %d dimensions (1 or 2 expected)",
					path, t->name, t->n_dims);
		if (t->n_elems == 0)
			return smk_fail(h->err, -EINVAL, "%s: tensor '%s' is empty", path, t->name);
		if (t->n_dims == 1) {
			if ((rc = add_vector(h, gname, t, type)))
				return rc;
			continue;
		}
		/* safetensors shapes are row-major [rows, cols]; ggml's ne[0]
		 * is the contiguous dimension. */
		uint64_t ne[2] = { t->shape[1], t->shape[0] };
		gguf_builder_add_tensor(h->b, gname, type, 2, ne, t->data, src0 + fi, t->file_offset);
	}
	if (h->gpt_oss) {
		struct hf_oss_shape sh = { .n_layer = h->n_layer, .n_expert = h->n_expert,
					   .n_embd = h->n_embd, .n_ff = h->n_ff };
		return hf_oss_experts(h->b, h->set, h->dir, &sh, &h->res->oss, h->err);
	}
	return 0;
}

static void close_res(void *arg)
{
	struct hf_res *r = arg;
	st_set_close(r->set);
	hf_oss_cache_close(r->oss);
	free(r);
}

int hf_open(struct gguf **out, const char *dir, struct smk_err *err)
{
	*out = NULL;
	struct hf h = { .dir = dir, .err = err };
	int rc = gguf_builder_new(&h.b, dir);
	if (rc)
		return smk_fail(err, rc, "%s: out of memory", dir);
	if (!(h.res = calloc(1, sizeof(*h.res)))) {
		gguf_builder_free(h.b);
		return smk_fail(err, -ENOMEM, "%s: out of memory", dir);
	}
	gguf_builder_on_close(h.b, close_res, h.res);
	if ((rc = read_config(&h)) || (rc = hparams(&h)) ||
	    (rc = st_set_open(&h.res->set, dir, err)))
		goto fail;
	h.set = h.res->set;
	char tj[4096];
	snprintf(tj, sizeof(tj), "%s/tokenizer.json", dir);
	/* Without tokenizer.json the weights still load (tests feed token
	 * ids); the engine then refuses the model for want of a tokenizer. */
	if ((rc = add_tensors(&h)) ||
	    (access(tj, F_OK) == 0 && (rc = tokenizer_json_to_gguf(h.b, dir, err))))
		goto fail;
	json_decref(h.cfg);
	return gguf_builder_finish(h.b, out, err);
fail:
	json_decref(h.cfg);
	gguf_builder_free(h.b);   /* closes the shards and the cache too (on_close) */
	return rc;
}
