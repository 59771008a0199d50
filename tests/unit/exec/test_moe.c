/* test_moe.c - Qwen3, Qwen3-MoE and Mixtral (issue 13) on tiny random
 * models written at test time (tiny_moe.h): the plan with one weight block
 * per expert, routing batched over sequences bit-identical to one sequence
 * at a time, the tiered store at a third of the weights (every policy,
 * prefetch on and off, computing from RAM or the device stand-in) identical
 * to the resident store, a one-expert top-1 model identical to the dense
 * model it was made from, experts loaded one unit each and only when
 * chosen, the store's hint order, and the files refused at load with a
 * message naming file, tensor or key and the reason.
 */
#include <check.h>

#include "ck_main.h"
#include "tiny_moe.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/model.h"
#include "compute/backend.h"
#include "compute/cpu/qdot.h"
#include "compute/cuda/cuda_backend.h"
#include "compute/moe_route.h"
#include "engine/engine.h"
#include "formats/gguf.h"
#include "quant/qtype.h"
#include "exec/forward.h"
#include "exec/kvcache.h"
#include "weights/warena.h"
#include "weights/wstore.h"

static const struct tm_spec qwen3moe_spec = {
	.arch = TM_QWEN3MOE, .n_layer = 3, .n_embd = 64, .n_head = 4, .n_head_kv = 2,
	.head_dim = 24, .n_ff = 96, .n_vocab = 64, .n_expert = 16, .n_expert_used = 4,
	.n_ff_exp = 32, .seed = 11,
};

static const struct tm_spec mixtral_spec = {
	.arch = TM_MIXTRAL, .n_layer = 3, .n_embd = 64, .n_head = 4, .n_head_kv = 2,
	.head_dim = 16, .n_ff = 64, .n_vocab = 64, .n_expert = 8, .n_expert_used = 2,
	.seed = 23, .tied = true,
};

static const struct tm_spec qwen3_spec = {
	.arch = TM_QWEN3, .n_layer = 2, .n_embd = 64, .n_head = 4, .n_head_kv = 2,
	.head_dim = 32, .n_ff = 96, .n_vocab = 64, .seed = 5, .tied = true,
};

/* Write spec to a temporary file; the caller unlinks it. */
static const char *write_model(const struct tm_spec *sp, char *path, size_t len, const char *tag)
{
	snprintf(path, len, "/tmp/smoke-test-moe-%d-%s.gguf", (int)getpid(), tag);
	ck_assert_int_eq(tm_write(path, sp), 0);
	return path;
}

struct rig {
	struct model *m;
	struct backend *be;
	struct wstore *ws;
	struct forward *f;
};

/* shard_bytes: model_load_opts.shard_bytes (0: the default); max_cols the
 * backend's widest input row. */
static void rig_open_with(struct rig *r, const char *path, const struct wstore_opts *o,
			  uint64_t shard_bytes, int64_t max_cols)
{
	struct smk_err err = { 0 };
	struct model_load_opts mo = { .shard_bytes = shard_bytes };
	ck_assert_msg(model_load_opts(&r->m, path, &mo, &err) == 0, "%s", err.msg);
	struct backend_limits lim = { .max_cols = max_cols, .max_rows = 16, .max_ctx = 64, .max_heads = 8,
				      .n_threads = 2 };
	ck_assert(backend_cpu_new(&r->be, &lim, &err) == 0);
	if (o)
		ck_assert_msg(wstore_new_tiered(&r->ws, r->m, o, &err) == 0, "%s", err.msg);
	else
		ck_assert(wstore_new_resident(&r->ws, r->m, WSTORE_LOAD_MAP, &err) == 0);
	ck_assert_msg(forward_new(&r->f, r->m, r->be, r->ws, 16, 8, &err) == 0, "%s", err.msg);
}

static void rig_open(struct rig *r, const char *path, const struct wstore_opts *o)
{
	rig_open_with(r, path, o, 0, 256);
}

static void rig_close(struct rig *r)
{
	forward_free(r->f);
	wstore_free(r->ws);
	backend_free(r->be);
	model_free(r->m);
}

/* ---- the plan ---- */

START_TEST(qwen3moe_plan_has_one_block_per_expert)
{
	char path[256];
	write_model(&qwen3moe_spec, path, sizeof(path), "plan");
	struct model *m;
	struct smk_err err = { 0 };
	ck_assert_msg(model_load(&m, path, &err) == 0, "%s", err.msg);
	const struct hparams *hp = &m->hp;
	ck_assert_int_eq(m->fam->family, FAMILY_QWEN3MOE);
	ck_assert_int_eq(hp->n_expert, 16);
	ck_assert_int_eq(hp->n_expert_used, 4);
	ck_assert_int_eq(hp->n_ff_exp, 32);
	ck_assert_int_eq(hp->head_dim, 24); /* not n_embd / n_head */
	ck_assert_int_eq(m->n_blocks, m->n_emb_blocks + 3 * (1 + 16) + m->n_head_blocks);
	const struct gguf_tensor *up = gguf_find_tensor(m->gguf, "blk.1.ffn_up_exps.weight");
	ck_assert_ptr_nonnull(up);
	const uint64_t nb2 = up->nbytes / 16;
	for (int il = 0; il < 3; il++) {
		const struct wblock *d = &m->blocks[model_layer_block(m, il)];
		ck_assert_int_eq(d->kind, BLOCK_LAYER);
		ck_assert_int_eq(d->layer, il);
		ck_assert(d->has[LT_GATE_INP] && !d->has[LT_GATE] && !d->has[LT_UP] && !d->has[LT_DOWN]);
		ck_assert(d->has[LT_Q_NORM] && d->has[LT_K_NORM]);
		for (int e = 0; e < 16; e++) {
			const int bi = model_expert_block(m, il, e);
			ck_assert_int_eq(bi, model_layer_block(m, il) + 1 + e);
			const struct wblock *b = &m->blocks[bi];
			ck_assert_int_eq(b->kind, BLOCK_EXPERT);
			ck_assert_int_eq(b->layer, il);
			ck_assert_int_eq(b->expert, e);
			ck_assert(b->has[LT_GATE] && b->has[LT_UP] && b->has[LT_DOWN] && !b->has[LT_WQ]);
			ck_assert_int_eq(b->t[LT_UP].ne0, 64);
			ck_assert_int_eq(b->t[LT_UP].ne1, 32);
			ck_assert_int_eq(b->t[LT_DOWN].ne0, 32);
			ck_assert_int_eq(b->t[LT_DOWN].ne1, 64);
			if (il == 1) {
				ck_assert_uint_eq(b->t[LT_UP].nbytes, nb2);
				ck_assert_uint_eq(b->t[LT_UP].file_offset, up->file_offset + (uint64_t)e * nb2);
				ck_assert_ptr_eq(b->t[LT_UP].data, (const uint8_t *)up->data + (uint64_t)e * nb2);
			}
		}
	}
	ck_assert_int_eq(model_layer_block(m, 3), model_head_block(m, 0));
	model_free(m);
	unlink(path);
}
END_TEST

/* ---- routing ---- */

START_TEST(route_top_k_ties_go_to_the_lower_expert)
{
	/* Equal logits: every probability equal; the lower indices win. */
	const float lg[2][6] = { { 1, 1, 1, 1, 1, 1 }, { 0.5f, 3, -1, 3, 2, 0 } };
	float probs[2 * 6], w[2 * 3], raw[2 * 3];
	int32_t sel[2 * 3];
	moe_route(&lg[0][0], 6, 2, 3, probs, sel, raw, w);
	ck_assert(raw[3] == probs[6 + 1] && raw[4] == probs[6 + 3] && raw[5] == probs[6 + 4]);
	ck_assert_int_eq(sel[0], 0);
	ck_assert_int_eq(sel[1], 1);
	ck_assert_int_eq(sel[2], 2);
	ck_assert_int_eq(sel[3], 1);
	ck_assert_int_eq(sel[4], 3);
	ck_assert_int_eq(sel[5], 4);
	/* renormalised: the k weights sum to 1 (up to rounding) */
	ck_assert_float_eq_tol(w[3] + w[4] + w[5], 1.0f, 1e-6f);
	ck_assert(w[3] == w[4] && w[4] > w[5]);
}
END_TEST

/* ---- batching ---- */

/* Per layer, the expert blocks one pass acquired (from the trace), each
 * at most once; returns the largest count of any layer. */
static int experts_per_layer(const struct model *m, const int *tr, int n, int *total)
{
	int most = 0;
	*total = 0;
	for (int il = 0; il < m->hp.n_layer; il++) {
		int c = 0;
		for (int i = 0; i < n; i++) {
			const struct wblock *b = &m->blocks[tr[i]];
			if (b->kind != BLOCK_EXPERT || b->layer != il)
				continue;
			for (int j = 0; j < i; j++)
				ck_assert_msg(tr[j] != tr[i], "expert block %d acquired twice in one pass", tr[i]);
			c++;
		}
		*total += c;
		if (c > most)
			most = c;
	}
	return most;
}

static void check_batch_equals_alone(const struct tm_spec *sp, const char *tag)
{
	char path[256];
	write_model(sp, path, sizeof(path), tag);
	struct wstore_opts o;
	wstore_opts_default(&o);
	o.async_prefetch = false;
	o.compute_from_ram = true;
	o.trace_cap = 4096;
	struct rig r;
	rig_open(&r, path, &o);
	struct smk_err err = { 0 };
	const int V = r.m->hp.n_vocab;
	struct kvcache *alone[3], *batch[3];
	for (int i = 0; i < 3; i++) {
		ck_assert(kvcache_new(&alone[i], r.m, 32, r.be, &err) == 0);
		ck_assert(kvcache_new(&batch[i], r.m, 32, r.be, &err) == 0);
	}
	const int32_t hist[4] = { 1, 5, 2, 7 }, t0[5] = { 3, 10, 40, 1, 50 }, t1[1] = { 60 },
		      t2[3] = { 22, 7, 13 };
	const float *lg;
	ck_assert(forward_run(r.f, alone[2], hist, 4, 0, &lg, &err) == 0);
	ck_assert(forward_run(r.f, batch[2], hist, 4, 0, &lg, &err) == 0);
	static float want[4][64];
	ck_assert(forward_run(r.f, alone[0], t0, 5, 1, &lg, &err) == 0);
	memcpy(want[0], lg, sizeof(float) * V);
	ck_assert(forward_run(r.f, alone[1], t1, 1, 1, &lg, &err) == 0);
	memcpy(want[1], lg, sizeof(float) * V);
	ck_assert(forward_run(r.f, alone[2], t2, 3, 2, &lg, &err) == 0);
	memcpy(want[2], lg, sizeof(float) * 2 * V);

	struct wstore_stats st0, st1;
	wstore_get_stats(r.ws, &st0);
	struct fwd_item items[3] = {
		{ .kv = batch[0], .tok = t0, .n = 5, .n_logits = 1 },
		{ .kv = batch[1], .tok = t1, .n = 1, .n_logits = 1 },
		{ .kv = batch[2], .tok = t2, .n = 3, .n_logits = 2 },
	};
	ck_assert_msg(forward_run_batch(r.f, items, 3, &err) == 0, "%s", err.msg);
	ck_assert(!memcmp(items[0].logits, want[0], sizeof(float) * V));
	ck_assert(!memcmp(items[1].logits, want[1], sizeof(float) * V));
	ck_assert(!memcmp(items[2].logits, want[2], sizeof(float) * 2 * V));
	wstore_get_stats(r.ws, &st1);

	/* The batched pass's trace: the rows chose different experts (more
	 * than k in a layer), each acquired once. */
	static int tr[4096];
	int n = wstore_trace(r.ws, tr, 4096);
	int pass = (int)(st1.acquires - st0.acquires);
	ck_assert_int_le(pass, n);
	int total, most = experts_per_layer(r.m, tr + n - pass, pass, &total);
	ck_assert_int_gt(most, r.m->hp.n_expert_used);
	ck_assert_int_le(most, r.m->hp.n_expert);
	fprintf(stderr, "%s: batch of 9 rows acquired %d expert blocks over %d layers (k = %d, at most %d in a layer)\n",
		tag, total, r.m->hp.n_layer, r.m->hp.n_expert_used, most);
	for (int i = 0; i < 3; i++) {
		kvcache_free(alone[i]);
		kvcache_free(batch[i]);
	}
	rig_close(&r);
	unlink(path);
}

START_TEST(qwen3moe_batch_equals_alone)
{
	check_batch_equals_alone(&qwen3moe_spec, "q3m-batch");
}
END_TEST

START_TEST(mixtral_batch_equals_alone)
{
	check_batch_equals_alone(&mixtral_spec, "mix-batch");
}
END_TEST

/* A dense Qwen3 (tied head, head_dim 32 != n_embd / n_head = 16) runs and
 * batches like any dense family. */
START_TEST(qwen3_dense_runs_and_batches)
{
	char path[256];
	write_model(&qwen3_spec, path, sizeof(path), "q3");
	struct rig r;
	rig_open(&r, path, NULL);
	ck_assert_int_eq(r.m->fam->family, FAMILY_QWEN3);
	ck_assert_int_eq(r.m->n_blocks, r.m->hp.n_layer + 2);
	ck_assert_int_eq(r.m->hp.n_expert, 0);
	struct smk_err err = { 0 };
	struct kvcache *a, *b, *c;
	ck_assert(kvcache_new(&a, r.m, 32, r.be, &err) == 0);
	ck_assert(kvcache_new(&b, r.m, 32, r.be, &err) == 0);
	ck_assert(kvcache_new(&c, r.m, 32, r.be, &err) == 0);
	const int32_t t0[3] = { 4, 9, 33 }, t1[2] = { 8, 1 };
	const float *lg;
	static float w0[64], w1[64];
	ck_assert(forward_run(r.f, a, t0, 3, 1, &lg, &err) == 0);
	memcpy(w0, lg, sizeof(w0));
	for (int i = 0; i < 64; i++)
		ck_assert(isfinite(w0[i]));
	ck_assert(forward_run(r.f, b, t1, 2, 1, &lg, &err) == 0);
	memcpy(w1, lg, sizeof(w1));
	struct kvcache *d;
	ck_assert(kvcache_new(&d, r.m, 32, r.be, &err) == 0);
	struct fwd_item it[2] = { { .kv = c, .tok = t0, .n = 3, .n_logits = 1 },
				  { .kv = d, .tok = t1, .n = 2, .n_logits = 1 } };
	ck_assert(forward_run_batch(r.f, it, 2, &err) == 0);
	ck_assert(!memcmp(it[0].logits, w0, sizeof(w0)));
	ck_assert(!memcmp(it[1].logits, w1, sizeof(w1)));
	kvcache_free(a);
	kvcache_free(b);
	kvcache_free(c);
	kvcache_free(d);
	rig_close(&r);
	unlink(path);
}
END_TEST

/* ---- out of core ---- */

#define GEN_STEPS 6

/* Prefill a prompt, then GEN_STEPS greedy steps; every step's logits
 * into out (GEN_STEPS + 1 rows). */
static void generate(struct rig *r, float *out)
{
	struct smk_err err = { 0 };
	const int V = r->m->hp.n_vocab;
	struct kvcache *kv;
	ck_assert(kvcache_new(&kv, r->m, 32, r->be, &err) == 0);
	const int32_t prompt[5] = { 2, 17, 33, 4, 61 };
	const float *lg;
	ck_assert_msg(forward_run(r->f, kv, prompt, 5, 1, &lg, &err) == 0, "%s", err.msg);
	for (int s = 0;; s++) {
		memcpy(out + (size_t)s * V, lg, sizeof(float) * V);
		if (s == GEN_STEPS)
			break;
		int32_t best = 0;
		for (int i = 1; i < V; i++)
			if (lg[i] > lg[best])
				best = i;
		ck_assert_msg(forward_run(r->f, kv, &best, 1, 1, &lg, &err) == 0, "%s", err.msg);
	}
	kvcache_free(kv);
}

/* A model as a Hugging Face directory (config.json + model.safetensors
 * with HF names, F32, no tokenizer.json), written from the tensors of its
 * GGUF file (all F32; experts one tensor each), so both hold the same
 * bytes.  HF keeps q/k in rotate-half order: qwen3's NEOX layout, and a
 * llama GGUF written with smoke.rope.layout = neox. */
static const struct { const char *gguf, *hf; } hf_names[] = {
	{ "attn_norm.weight", "input_layernorm.weight" },
	{ "attn_q.weight", "self_attn.q_proj.weight" },
	{ "attn_k.weight", "self_attn.k_proj.weight" },
	{ "attn_v.weight", "self_attn.v_proj.weight" },
	{ "attn_output.weight", "self_attn.o_proj.weight" },
	{ "attn_q_norm.weight", "self_attn.q_norm.weight" },
	{ "attn_k_norm.weight", "self_attn.k_norm.weight" },
	{ "ffn_norm.weight", "post_attention_layernorm.weight" },
	{ "ffn_gate.weight", "mlp.gate_proj.weight" },
	{ "ffn_up.weight", "mlp.up_proj.weight" },
	{ "ffn_down.weight", "mlp.down_proj.weight" },
};

/* The HF name of GGUF layer tensor `rest` of layer il. */
static void hf_layer_name(const struct tm_spec *sp, int il, const char *rest, char *out, size_t cap)
{
	const bool mix = sp->arch == TM_MIXTRAL;
	int e = -1, used = 0;
	char proj[16] = "";
	if (!strcmp(rest, "ffn_gate_inp.weight")) {
		snprintf(out, cap, "model.layers.%d.%s.gate.weight", il, mix ? "block_sparse_moe" : "mlp");
		return;
	}
	if (sscanf(rest, "ffn_%15[a-z].%d.weight%n", proj, &e, &used) == 2 && rest[used] == '\0') {
		const char *p = !strcmp(proj, "gate") ? (mix ? "w1" : "gate_proj") :
				!strcmp(proj, "up") ? (mix ? "w3" : "up_proj") : (mix ? "w2" : "down_proj");
		snprintf(out, cap, "model.layers.%d.%s.experts.%d.%s.weight", il,
			 mix ? "block_sparse_moe" : "mlp", e, p);
		return;
	}
	for (size_t k = 0; k < sizeof(hf_names) / sizeof(hf_names[0]); k++)
		if (!strcmp(rest, hf_names[k].gguf)) {
			snprintf(out, cap, "model.layers.%d.%s", il, hf_names[k].hf);
			return;
		}
	ck_abort_msg("no HF name for blk.%d.%s", il, rest);
}

static void write_hf_dir(const char *gguf_path, const struct tm_spec *sp, const char *dir)
{
	struct gguf *g;
	struct smk_err err = { 0 };
	ck_assert_msg(gguf_open(&g, gguf_path, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	char path[512], name[128];
	static char hdr[65536];
	size_t hl = (size_t)snprintf(hdr, sizeof(hdr), "{");
	uint64_t off = 0;
	const uint64_t n = gguf_n_tensors(g);
	for (uint64_t i = 0; i < n; i++) {
		const struct gguf_tensor *t = gguf_tensor(g, i);
		ck_assert_int_eq(t->type, QTYPE_F32);
		if (!strcmp(t->name, "token_embd.weight"))
			snprintf(name, sizeof(name), "model.embed_tokens.weight");
		else if (!strcmp(t->name, "output_norm.weight"))
			snprintf(name, sizeof(name), "model.norm.weight");
		else if (!strcmp(t->name, "output.weight"))
			snprintf(name, sizeof(name), "lm_head.weight");
		else {
			int il = -1, used = 0;
			ck_assert_int_eq(sscanf(t->name, "blk.%d.%n", &il, &used), 1);
			hf_layer_name(sp, il, t->name + used, name, sizeof(name));
		}
		char shape[64];
		if (t->n_dims == 1)
			snprintf(shape, sizeof(shape), "[%llu]", (unsigned long long)t->ne[0]);
		else
			snprintf(shape, sizeof(shape), "[%llu, %llu]", (unsigned long long)t->ne[1],
				 (unsigned long long)t->ne[0]);
		hl += (size_t)snprintf(hdr + hl, sizeof(hdr) - hl,
				       "%s\"%s\": {\"dtype\": \"F32\", \"shape\": %s, \"data_offsets\": [%llu, %llu]}",
				       i ? ", " : "", name, shape, (unsigned long long)off,
				       (unsigned long long)(off + t->nbytes));
		off += t->nbytes;
	}
	hl += (size_t)snprintf(hdr + hl, sizeof(hdr) - hl, "}");
	ck_assert_uint_lt(hl, sizeof(hdr) - 1);
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	uint64_t hl64 = hl;
	fwrite(&hl64, 8, 1, f);
	fwrite(hdr, 1, hl, f);
	for (uint64_t i = 0; i < n; i++)
		fwrite(gguf_tensor(g, i)->data, 1, gguf_tensor(g, i)->nbytes, f);
	ck_assert_int_eq(fclose(f), 0);
	snprintf(path, sizeof(path), "%s/config.json", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	const char *cls = sp->arch == TM_QWEN3 ? "Qwen3ForCausalLM" :
			  sp->arch == TM_QWEN3MOE ? "Qwen3MoeForCausalLM" : "MixtralForCausalLM";
	fprintf(f, "{\"architectures\": [\"%s\"], "
		"\"hidden_size\": %d, \"num_hidden_layers\": %d, \"intermediate_size\": %d, "
		"\"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"head_dim\": %d, "
		"\"vocab_size\": %d, \"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-06, "
		"\"rope_theta\": 1000000.0, \"hidden_act\": \"silu\", \"attention_bias\": false, "
		"\"sliding_window\": null, \"tie_word_embeddings\": %s, ",
		cls, sp->n_embd, sp->n_layer, sp->n_ff, sp->n_head, sp->n_head_kv, sp->head_dim,
		sp->n_vocab, sp->tied ? "true" : "false");
	if (sp->arch == TM_QWEN3MOE)
		fprintf(f, "\"num_experts\": %d, \"num_experts_per_tok\": %d, \"moe_intermediate_size\": %d, "
			"\"norm_topk_prob\": true, \"decoder_sparse_step\": 1, \"mlp_only_layers\": [], ",
			sp->n_expert, sp->n_expert_used, sp->n_ff_exp);
	if (sp->arch == TM_MIXTRAL)
		fprintf(f, "\"num_local_experts\": %d, \"num_experts_per_tok\": %d, ", sp->n_expert,
			sp->n_expert_used);
	fprintf(f, "\"use_sliding_window\": false, \"torch_dtype\": \"float32\"}\n");
	ck_assert_int_eq(fclose(f), 0);
	gguf_close(g);
}

/* GGUF and its HF directory: the same logits bit for bit. */
static void check_hf_equals_gguf(const struct tm_spec *sp, const char *tag, enum family fam)
{
	char path[256], dir[256], p2[600];
	write_model(sp, path, sizeof(path), tag);
	snprintf(dir, sizeof(dir), "/tmp/smoke-test-moe-%d-%s-hf", (int)getpid(), tag);
	write_hf_dir(path, sp, dir);
	static float a[(GEN_STEPS + 1) * 64], b[(GEN_STEPS + 1) * 64];
	struct rig r;
	rig_open(&r, path, NULL);
	generate(&r, a);
	rig_close(&r);
	rig_open(&r, dir, NULL);
	ck_assert_int_eq(r.m->fam->family, fam);
	ck_assert_int_eq(r.m->hp.head_dim, sp->head_dim);
	ck_assert_int_eq(r.m->hp.n_expert, sp->arch == TM_QWEN3 ? 0 : sp->n_expert);
	generate(&r, b);
	rig_close(&r);
	ck_assert_msg(!memcmp(a, b, sizeof(a)), "%s: the HF directory's logits differ from the GGUF's", tag);
	snprintf(p2, sizeof(p2), "%s/model.safetensors", dir);
	unlink(p2);
	snprintf(p2, sizeof(p2), "%s/config.json", dir);
	unlink(p2);
	rmdir(dir);
	unlink(path);
}

START_TEST(qwen3moe_hf_dir_equals_gguf)
{
	struct tm_spec sp = qwen3moe_spec;
	sp.all_f32 = true;
	sp.legacy_experts = true;
	check_hf_equals_gguf(&sp, "q3m-hf", FAMILY_QWEN3MOE);
}
END_TEST

/* What the plan does not compute is refused, naming config.json and the key. */
START_TEST(qwen3moe_hf_refusals)
{
	struct tm_spec sp = qwen3moe_spec;
	sp.all_f32 = true;
	sp.legacy_experts = true;
	static const struct { const char *from, *to, *word; } cases[] = {
		{ "\"norm_topk_prob\": true", "\"norm_topk_prob\": false", "norm_topk_prob" },
		{ "\"mlp_only_layers\": []", "\"mlp_only_layers\": [1]", "mlp_only_layers" },
		{ "\"num_experts_per_tok\": 4", "\"num_experts_per_tok\": 17", "num_experts_per_tok" },
	};
	char path[256], dir[256], cfg[600], p2[600];
	write_model(&sp, path, sizeof(path), "q3m-hf-bad");
	snprintf(dir, sizeof(dir), "/tmp/smoke-test-moe-%d-q3m-hf-bad", (int)getpid());
	write_hf_dir(path, &sp, dir);
	snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
	static char good[8192], bad[8192];
	FILE *f = fopen(cfg, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(good, 1, sizeof(good) - 1, f);
	good[n] = '\0';
	fclose(f);
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const char *at = strstr(good, cases[c].from);
		ck_assert_ptr_nonnull(at);
		snprintf(bad, sizeof(bad), "%.*s%s%s", (int)(at - good), good, cases[c].to,
			 at + strlen(cases[c].from));
		f = fopen(cfg, "w");
		fputs(bad, f);
		fclose(f);
		struct model *m = NULL;
		struct smk_err err = { 0 };
		ck_assert_int_ne(model_load(&m, dir, &err), 0);
		ck_assert_ptr_null(m);
		ck_assert_msg(strstr(err.msg, "config.json") && strstr(err.msg, cases[c].word),
			      "case %zu: %s", c, err.msg);
	}
	/* transformers 5 writes Qwen3-MoE's expert count as num_local_experts:
	 * read either; neither is refused naming the key */
	static const struct { const char *to; bool ok; } spell[] = {
		{ "\"num_local_experts\": 16", true }, { "\"num_expertz\": 16", false },
	};
	for (size_t c = 0; c < sizeof(spell) / sizeof(spell[0]); c++) {
		const char *at = strstr(good, "\"num_experts\": 16");
		ck_assert_ptr_nonnull(at);
		snprintf(bad, sizeof(bad), "%.*s%s%s", (int)(at - good), good, spell[c].to,
			 at + strlen("\"num_experts\": 16"));
		f = fopen(cfg, "w");
		fputs(bad, f);
		fclose(f);
		struct model *m = NULL;
		struct smk_err err = { 0 };
		const int rc = model_load(&m, dir, &err);
		if (spell[c].ok) {
			ck_assert_msg(rc == 0, "%s", err.msg);
			ck_assert_int_eq(m->hp.n_expert, 16);
			model_free(m);
		} else {
			ck_assert_int_ne(rc, 0);
			ck_assert_msg(strstr(err.msg, "config.json") && strstr(err.msg, "'num_experts'"), "%s",
				      err.msg);
		}
	}
	snprintf(p2, sizeof(p2), "%s/model.safetensors", dir);
	unlink(p2);
	unlink(cfg);
	rmdir(dir);
	unlink(path);
}
END_TEST

START_TEST(mixtral_hf_dir_equals_gguf)
{
	struct tm_spec sp = mixtral_spec;
	sp.all_f32 = true;
	sp.legacy_experts = true;
	sp.neox_key = true;
	check_hf_equals_gguf(&sp, "mix-hf", FAMILY_LLAMA);
}
END_TEST

START_TEST(qwen3_hf_dir_equals_gguf)
{
	struct tm_spec sp = qwen3_spec;
	sp.all_f32 = true;
	check_hf_equals_gguf(&sp, "q3-hf", FAMILY_QWEN3);
}
END_TEST

static void check_out_of_core(const struct tm_spec *sp, const char *tag)
{
	char path[256];
	write_model(sp, path, sizeof(path), tag);
	struct rig r;
	rig_open(&r, path, NULL);
	const int V = r.m->hp.n_vocab;
	const uint64_t third = r.m->weight_bytes / 3;
	static float want[(GEN_STEPS + 1) * 64], got[(GEN_STEPS + 1) * 64];
	generate(&r, want);
	rig_close(&r);

	static const enum wpolicy pols[] = { WPOLICY_LRU, WPOLICY_LFU, WPOLICY_FIFO, WPOLICY_PREDICTIVE };
	int runs = 0;
	for (int p = 0; p < 4; p++)
		for (int async = 0; async < 2; async++)
			for (int from_ram = 0; from_ram < 2; from_ram++) {
				struct wstore_opts o;
				wstore_opts_default(&o);
				o.policy = pols[p];
				o.async_prefetch = async;
				o.compute_from_ram = from_ram;
				o.ram_budget = third;
				o.dev_budget = from_ram ? 0 : third;
				o.check_budgets = true;
				rig_open(&r, path, &o);
				generate(&r, got);
				struct wstore_stats st;
				wstore_get_stats(r.ws, &st);
				ck_assert_msg(!memcmp(got, want, sizeof(float) * (GEN_STEPS + 1) * V),
					      "%s: %s, prefetch %s, compute from %s: logits differ from the resident store",
					      tag, wpolicy_name(pols[p]), async ? "on" : "off", from_ram ? "RAM" : "device");
				for (int t = 0; t < WSTORE_N_TIERS; t++)
					if (st.tier[t].active)
						ck_assert_uint_le(st.tier[t].peak, st.tier[t].budget);
				ck_assert_uint_le(st.tier[st.compute_tier].budget, third);
				ck_assert_uint_gt(st.tier[st.compute_tier].evictions, 0);
				ck_assert_int_eq(st.pinned, 0);
				rig_close(&r);
				runs++;
			}
	fprintf(stderr, "%s: %d out-of-core configurations at 1/3 of %llu bytes equal the resident store\n",
		tag, runs, (unsigned long long)(third * 3));
	unlink(path);
}

START_TEST(qwen3moe_out_of_core_equals_resident)
{
	check_out_of_core(&qwen3moe_spec, "q3m-ooc");
}
END_TEST

START_TEST(mixtral_out_of_core_equals_resident)
{
	check_out_of_core(&mixtral_spec, "mix-ooc");
}
END_TEST

/* ---- gpt-oss: the tiny-gpt-oss fixture model (scripts/make-test-models) ----
 * Its llama.cpp agreement (greedy tokens, every intermediate tensor) is in
 * test_forward; here what llama.cpp cannot show: batched == one at a time
 * and out of core == resident, with its sinks, biases, YaRN and MXFP4
 * experts. */

static const char *gpt_oss_path(void)
{
	static char path[512];
	const char *dir = getenv("SMOKE_TEST_MODELS");
	if (dir && *dir)
		snprintf(path, sizeof(path), "%s/tiny-gpt-oss.gguf", dir);
	else
		snprintf(path, sizeof(path), "%s/.cache/smoke/test-models/tiny-gpt-oss.gguf",
			 getenv("HOME") ? getenv("HOME") : ".");
	if (access(path, R_OK)) {
		fprintf(stderr, "SKIP gpt-oss: %s missing (scripts/make-test-models)\n", path);
		return NULL;
	}
	return path;
}

/* rig_open with small head shards (so a third of the weights holds every
 * block of this 32000-row model) and room for its widths. */
static void rig_open_sharded(struct rig *r, const char *path, const struct wstore_opts *o)
{
	rig_open_with(r, path, o, 256 << 10, 512);
	ck_assert_int_eq(r->m->fam->family, FAMILY_GPT_OSS);
}

START_TEST(gpt_oss_out_of_core_equals_resident)
{
	const char *path = gpt_oss_path();
	if (!path)
		return;
	struct rig r;
	rig_open_sharded(&r, path, NULL);
	const int V = r.m->hp.n_vocab;
	const uint64_t third = r.m->weight_bytes / 3;
	float *want = malloc(sizeof(float) * (size_t)V * (GEN_STEPS + 1));
	float *got = malloc(sizeof(float) * (size_t)V * (GEN_STEPS + 1));
	ck_assert(want && got);
	generate(&r, want);
	rig_close(&r);
	static const enum wpolicy pols[] = { WPOLICY_LRU, WPOLICY_LFU, WPOLICY_FIFO, WPOLICY_PREDICTIVE };
	for (int p = 0; p < 4; p++)
		for (int async = 0; async < 2; async++) {
			struct wstore_opts o;
			wstore_opts_default(&o);
			o.policy = pols[p];
			o.async_prefetch = async;
			o.compute_from_ram = true;
			o.ram_budget = third;
			o.check_budgets = true;
			rig_open_sharded(&r, path, &o);
			generate(&r, got);
			struct wstore_stats st;
			wstore_get_stats(r.ws, &st);
			ck_assert_msg(!memcmp(got, want, sizeof(float) * (size_t)V * (GEN_STEPS + 1)),
				      "gpt-oss: %s, prefetch %s: logits differ from the resident store",
				      wpolicy_name(pols[p]), async ? "on" : "off");
			ck_assert_uint_gt(st.tier[st.compute_tier].evictions, 0);
			ck_assert_uint_le(st.tier[st.compute_tier].peak, third);
			ck_assert_int_eq(st.pinned, 0);
			rig_close(&r);
		}
	free(want);
	free(got);
}
END_TEST

START_TEST(gpt_oss_batch_equals_alone)
{
	const char *path = gpt_oss_path();
	if (!path)
		return;
	struct rig r;
	rig_open_sharded(&r, path, NULL);
	struct smk_err err = { 0 };
	const int V = r.m->hp.n_vocab;
	struct kvcache *alone[3], *batch[3];
	for (int i = 0; i < 3; i++) {
		ck_assert(kvcache_new(&alone[i], r.m, 32, r.be, &err) == 0);
		ck_assert(kvcache_new(&batch[i], r.m, 32, r.be, &err) == 0);
	}
	/* item 2 has a history: the batch mixes positions, and its last row
	 * (position 16) is past the sliding layers' window of 16 */
	int32_t hist[14];
	for (int i = 0; i < 14; i++)
		hist[i] = 100 + 37 * i;
	const int32_t t0[5] = { 3, 10, 40, 1, 50 }, t1[1] = { 60 }, t2[3] = { 22, 7, 13 };
	const float *lg;
	ck_assert(forward_run(r.f, alone[2], hist, 14, 0, &lg, &err) == 0);
	ck_assert(forward_run(r.f, batch[2], hist, 14, 0, &lg, &err) == 0);
	float *want = malloc(sizeof(float) * (size_t)V * 4);
	ck_assert(want);
	ck_assert(forward_run(r.f, alone[0], t0, 5, 1, &lg, &err) == 0);
	memcpy(want, lg, sizeof(float) * V);
	ck_assert(forward_run(r.f, alone[1], t1, 1, 1, &lg, &err) == 0);
	memcpy(want + V, lg, sizeof(float) * V);
	ck_assert(forward_run(r.f, alone[2], t2, 3, 2, &lg, &err) == 0);
	memcpy(want + 2 * V, lg, sizeof(float) * 2 * V);
	struct fwd_item items[3] = {
		{ .kv = batch[0], .tok = t0, .n = 5, .n_logits = 1 },
		{ .kv = batch[1], .tok = t1, .n = 1, .n_logits = 1 },
		{ .kv = batch[2], .tok = t2, .n = 3, .n_logits = 2 },
	};
	ck_assert_msg(forward_run_batch(r.f, items, 3, &err) == 0, "%s", err.msg);
	ck_assert(!memcmp(items[0].logits, want, sizeof(float) * V));
	ck_assert(!memcmp(items[1].logits, want + V, sizeof(float) * V));
	ck_assert(!memcmp(items[2].logits, want + 2 * V, sizeof(float) * 2 * V));
	for (int i = 0; i < 3; i++) {
		kvcache_free(alone[i]);
		kvcache_free(batch[i]);
	}
	free(want);
	rig_close(&r);
}
END_TEST

/* STEPS greedy one-row steps on the tiny-qwen3moe fixture with expert
 * prediction `mode`; the per-layer counts into x (n_layer of them).  false
 * (SKIP printed) when the fixture is missing. */
enum { PRED_STEPS = 24 };
static bool predict_run(enum xpredict_mode mode, struct xpredict_layer_stats *x)
{
	const char *dir = getenv("SMOKE_TEST_MODELS");
	char path[512];
	snprintf(path, sizeof(path), "%s/tiny-qwen3moe.gguf", dir && *dir ? dir : "/nonexistent");
	if (access(path, R_OK)) {
		fprintf(stderr, "SKIP prediction: %s missing (scripts/make-test-models)\n", path);
		return false;
	}
	struct rig r;
	rig_open(&r, path, NULL);
	const struct hparams *hp = &r.m->hp;
	struct smk_err err = { 0 };
	ck_assert_msg(forward_set_expert_prediction(r.f, mode, &err) == 0, "%s", err.msg);
	struct kvcache *kv;
	ck_assert(kvcache_new(&kv, r.m, 32, r.be, &err) == 0);
	int32_t tok = 9;
	const float *lg;
	for (int s = 0; s < PRED_STEPS; s++) {
		ck_assert_msg(forward_run(r.f, kv, &tok, 1, 1, &lg, &err) == 0, "%s", err.msg);
		int32_t best = 0;
		for (int i = 1; i < hp->n_vocab; i++)
			if (lg[i] > lg[best])
				best = i;
		tok = best;
	}
	ck_assert_int_eq(forward_expert_prediction(r.f, x, 16), hp->n_layer);
	kvcache_free(kv);
	rig_close(&r);
	return true;
}

/* The next-layer predictor (expert_predict.h) on the tiny-qwen3moe fixture
 * (scripts/make-test-models), one row a step.  The router alone: every
 * layer past the first is predicted k experts a step and chooses k, the
 * first (the previous step's choice) from the second step on; "both"
 * never exceeds either; and over the run the router's predictions beat
 * chance (k of n_expert), which a predictor looking at the wrong layer's
 * router or the wrong hidden state would not reliably do.  Merged: the
 * router's part is the same prediction (the same steps: the outputs are
 * untouched by prediction - test_forward holds them to llama.cpp bit for
 * bit), history adds at most k a layer and step and never loses recall;
 * history alone predicts without the router; off counts nothing. */
START_TEST(next_layer_prediction_counts)
{
	struct xpredict_layer_stats ro[16], me[16], hi[16], off[16];
	if (!predict_run(XPREDICT_ROUTER, ro))
		return;
	predict_run(XPREDICT_MERGED, me);
	predict_run(XPREDICT_HISTORY, hi);
	struct smk_err err = { 0 };
	struct model *m;
	const char *dir = getenv("SMOKE_TEST_MODELS");
	char path[512];
	snprintf(path, sizeof(path), "%s/tiny-qwen3moe.gguf", dir);
	ck_assert(model_load(&m, path, &err) == 0);
	const int L = m->hp.n_layer, E = m->hp.n_expert;
	const uint64_t k = (uint64_t)m->hp.n_expert_used;
	model_free(m);
	uint64_t pred = 0, both = 0, hist = 0, rec_r = 0, rec_m = 0, chosen = 0;
	for (int il = 0; il < L; il++) {
		const uint64_t steps = il == 0 ? PRED_STEPS - 1 : PRED_STEPS;
		/* router alone */
		ck_assert_uint_eq(ro[il].predicted, k * steps);
		ck_assert_uint_eq(ro[il].chosen, k * steps);
		ck_assert_uint_le(ro[il].both, ro[il].predicted);
		ck_assert_uint_eq(ro[il].history, 0);
		/* merged: the first layer is history's; the others the router's
		 * set plus at most k */
		ck_assert_uint_eq(me[il].chosen, k * steps);
		if (il > 0) {
			ck_assert_uint_eq(me[il].predicted - me[il].history, ro[il].predicted);
			ck_assert_uint_eq(me[il].both - me[il].history_both, ro[il].both);
			ck_assert_uint_le(me[il].history, k * steps);
			ck_assert_uint_ge(me[il].both, ro[il].both);
			pred += ro[il].predicted;
			both += ro[il].both;
			hist += me[il].history;
		} else {
			ck_assert_uint_eq(me[il].predicted, me[il].history);
			ck_assert_uint_ge(me[il].both, ro[il].both);
		}
		ck_assert_uint_le(me[il].history_both, me[il].history);
		ck_assert_uint_le(me[il].both, me[il].chosen);
		/* history alone: the recent set (k) plus at most k frequent */
		ck_assert_uint_eq(hi[il].predicted, hi[il].history);
		ck_assert_uint_le(hi[il].predicted, 2 * k * (PRED_STEPS - 1));
		ck_assert_uint_ge(hi[il].predicted, k * (PRED_STEPS - 1));
		rec_r += ro[il].both;
		rec_m += me[il].both;
		chosen += me[il].chosen;
		fprintf(stderr, "prediction layer %d: router precision %.1f%% recall %.1f%%; merged +%.1f history a step, recall %.1f%%; history alone recall %.1f%% (chance %.1f%%)\n",
			il, 100.0 * (double)ro[il].both / (double)ro[il].predicted,
			100.0 * (double)ro[il].both / (double)ro[il].chosen,
			(double)me[il].history / (double)steps,
			100.0 * (double)me[il].both / (double)me[il].chosen,
			100.0 * (double)hi[il].both / (double)hi[il].chosen, 100.0 * (double)k / E);
	}
	ck_assert_msg(both * (uint64_t)E > 2 * pred * k,
		      "router-based prediction no better than twice chance: %llu of %llu",
		      (unsigned long long)both, (unsigned long long)pred);
	ck_assert_uint_gt(hist, 0);
	fprintf(stderr, "prediction recall over all layers: router %.1f%%, merged %.1f%%\n",
		100.0 * (double)rec_r / (double)chosen, 100.0 * (double)rec_m / (double)chosen);
	/* off: no predictor, nothing counted */
	struct rig r;
	rig_open(&r, path, NULL);
	ck_assert(forward_set_expert_prediction(r.f, XPREDICT_OFF, &err) == 0);
	ck_assert_ptr_null(forward_expert_predictor(r.f));
	ck_assert_int_eq(forward_expert_prediction(r.f, off, 16), 0);
	rig_close(&r);
}
END_TEST

/* ---- one expert, top 1 == the dense FFN ---- */

START_TEST(one_expert_top1_equals_dense)
{
	struct tm_spec dense = mixtral_spec;
	dense.arch = TM_LLAMA;
	dense.n_expert = 0;
	struct tm_spec one = dense;
	one.dense_as_expert = true;
	one.n_expert = 1;
	one.n_expert_used = 1;
	char pd[256], po[256];
	write_model(&dense, pd, sizeof(pd), "dense");
	write_model(&one, po, sizeof(po), "one");
	struct rig r;
	static float a[(GEN_STEPS + 1) * 64], b[(GEN_STEPS + 1) * 64];
	rig_open(&r, pd, NULL);
	ck_assert_int_eq(r.m->hp.n_expert, 0);
	generate(&r, a);
	rig_close(&r);
	rig_open(&r, po, NULL);
	ck_assert_int_eq(r.m->hp.n_expert, 1);
	ck_assert_int_eq(r.m->blocks[model_expert_block(r.m, 0, 0)].kind, BLOCK_EXPERT);
	generate(&r, b);
	rig_close(&r);
	ck_assert(!memcmp(a, b, sizeof(a)));
	unlink(pd);
	unlink(po);
}
END_TEST

/* One 2-D tensor per expert (blk.N.ffn_gate.E.weight: the pre-2024
 * Mixtral GGUF layout, and how Hugging Face stores experts) holding the
 * same bytes as the slabs: the same plan (each expert its own block) and
 * the same logits. */
START_TEST(per_expert_tensors_equal_slabs)
{
	struct tm_spec one = mixtral_spec;
	one.legacy_experts = true;
	char ps[256], pe[256];
	write_model(&mixtral_spec, ps, sizeof(ps), "slabs");
	write_model(&one, pe, sizeof(pe), "per-expert");
	static float a[(GEN_STEPS + 1) * 64], b[(GEN_STEPS + 1) * 64];
	struct rig r;
	rig_open(&r, ps, NULL);
	generate(&r, a);
	const int nb = r.m->n_blocks;
	rig_close(&r);
	struct wstore_opts o;
	wstore_opts_default(&o);
	o.compute_from_ram = true;
	rig_open(&r, pe, &o);
	ck_assert_int_eq(r.m->n_blocks, nb);
	const struct wblock *x = &r.m->blocks[model_expert_block(r.m, 2, 5)];
	ck_assert(x->kind == BLOCK_EXPERT && x->layer == 2 && x->expert == 5);
	ck_assert_str_eq(x->t[LT_DOWN].name, "blk.2.ffn_down.5.weight");
	generate(&r, b);
	rig_close(&r);
	ck_assert(!memcmp(a, b, sizeof(a)));
	unlink(pe);
	unlink(ps);
}
END_TEST

/* Backends without gather_rows / scatter_scaled_rows (optional ops): the
 * forward pass copies and scales row by row, with the same results. */
START_TEST(row_ops_and_row_by_row_agree)
{
	char path[256];
	write_model(&qwen3moe_spec, path, sizeof(path), "rowops");
	static float a[(GEN_STEPS + 1) * 64], b[(GEN_STEPS + 1) * 64];
	struct rig r;
	rig_open(&r, path, NULL);
	ck_assert_ptr_nonnull(r.be->ops->gather_rows);
	generate(&r, a);
	struct backend_ops plain = *r.be->ops;
	const struct backend_ops *saved = r.be->ops;
	plain.gather_rows = NULL;
	plain.scatter_scaled_rows = NULL;
	r.be->ops = &plain;
	generate(&r, b);
	r.be->ops = saved;
	rig_close(&r);
	ck_assert(!memcmp(a, b, sizeof(a)));
	unlink(path);
}
END_TEST

/* The expert trace (docs/expert-trace.md) of a batch: the header, one
 * record per MoE layer and row, k distinct experts each, positions and
 * items as fed, and per layer the experts the store was asked for are the
 * union of the records'. */
START_TEST(expert_trace_records_the_routing)
{
	char path[256];
	write_model(&qwen3moe_spec, path, sizeof(path), "trace");
	struct wstore_opts o;
	wstore_opts_default(&o);
	o.async_prefetch = false;
	o.compute_from_ram = true;
	o.trace_cap = 4096;
	struct rig r;
	rig_open(&r, path, &o);
	const struct model *m = r.m;
	struct smk_err err = { 0 };
	FILE *tf = tmpfile();
	ck_assert_ptr_nonnull(tf);
	ck_assert_int_eq(forward_set_expert_trace(r.f, tf, &err), 0);
	struct kvcache *a, *b;
	ck_assert(kvcache_new(&a, m, 32, r.be, &err) == 0);
	ck_assert(kvcache_new(&b, m, 32, r.be, &err) == 0);
	const int32_t ta[2] = { 5, 6 }, tb[3] = { 40, 41, 42 };
	const float *lg;
	ck_assert(forward_run(r.f, a, ta, 2, 1, &lg, &err) == 0);
	struct fwd_item it[2] = { { .kv = a, .tok = ta, .n = 1, .n_logits = 1 },
				  { .kv = b, .tok = tb, .n = 3, .n_logits = 1 } };
	ck_assert(forward_run_batch(r.f, it, 2, &err) == 0);
	forward_set_expert_trace(r.f, NULL, NULL);
	rewind(tf);
	char line[512];
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), tf));
	ck_assert_str_eq(line, "smoke-expert-trace 1\n");
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), tf));
	char want[128];
	snprintf(want, sizeof(want), "layers 3 experts 16 top_k 4 expert_bytes %llu\n",
		 (unsigned long long)m->blocks[model_expert_block(m, 0, 0)].nbytes);
	ck_assert_str_eq(line, want);
	/* pass 1: item 0 rows at 0, 1; pass 2: item 0 at 2, item 1 at 0..2 */
	static const int seq[2][4] = { { 0, 0, -1, -1 }, { 0, 1, 1, 1 } };
	static const int pos[2][4] = { { 0, 1, -1, -1 }, { 2, 0, 1, 2 } };
	static int tr[4096];
	const int n_tr = wstore_trace(r.ws, tr, 4096);
	int tpos = 0; /* into the store's trace */
	for (int pass = 0; pass < 2; pass++) {
		const int rows = pass ? 4 : 2;
		for (int il = 0; il < 3; il++) {
			bool chosen[16] = { false };
			for (int t = 0; t < rows; t++) {
				int s, p, l, e[4];
				ck_assert_ptr_nonnull(fgets(line, sizeof(line), tf));
				if (line[0] == 'p') {
					/* the predictor's k experts for this row and
					 * layer (every layer past the first), before
					 * its r record, same key */
					int ps, pp, pl, pe[4];
					ck_assert_int_eq(sscanf(line, "p %d %d %d %d %d %d %d", &ps, &pp, &pl, &pe[0],
								&pe[1], &pe[2], &pe[3]), 7);
					ck_assert_int_eq(pl, il);
					ck_assert_int_gt(il, 0);
					ck_assert_ptr_nonnull(fgets(line, sizeof(line), tf));
					ck_assert_int_eq(sscanf(line, "r %d %d", &s, &p), 2);
					ck_assert(s == ps && p == pp);
				} else {
					ck_assert_int_eq(il, 0);
				}
				ck_assert_int_eq(sscanf(line, "r %d %d %d %d %d %d %d", &s, &p, &l, &e[0], &e[1], &e[2],
							&e[3]), 7);
				ck_assert_int_eq(s, seq[pass][t]);
				ck_assert_int_eq(p, pos[pass][t]);
				ck_assert_int_eq(l, il);
				for (int j = 0; j < 4; j++) {
					ck_assert(e[j] >= 0 && e[j] < 16);
					for (int q = 0; q < j; q++)
						ck_assert_int_ne(e[q], e[j]);
					chosen[e[j]] = true;
				}
			}
			/* the store's acquires of this layer's experts */
			while (tpos < n_tr && !(m->blocks[tr[tpos]].kind == BLOCK_EXPERT &&
						m->blocks[tr[tpos]].layer == il))
				tpos++;
			bool got[16] = { false };
			while (tpos < n_tr && m->blocks[tr[tpos]].kind == BLOCK_EXPERT &&
			       m->blocks[tr[tpos]].layer == il)
				got[m->blocks[tr[tpos++]].expert] = true;
			for (int e = 0; e < 16; e++)
				ck_assert_msg(got[e] == chosen[e], "pass %d layer %d expert %d: acquired %d, routed %d",
					      pass, il, e, got[e], chosen[e]);
		}
	}
	ck_assert_ptr_null(fgets(line, sizeof(line), tf));
	fclose(tf);
	kvcache_free(a);
	kvcache_free(b);
	/* A dense model has no routing to record. */
	struct tm_spec d = qwen3_spec;
	char dp[256];
	write_model(&d, dp, sizeof(dp), "trace-dense");
	struct rig rd;
	rig_open(&rd, dp, NULL);
	ck_assert_int_eq(forward_set_expert_trace(rd.f, stderr, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "not a mixture of experts"));
	rig_close(&rd);
	rig_close(&r);
	unlink(dp);
	unlink(path);
}
END_TEST

/* ---- experts are units of their own ---- */

/* Bytes of block b's own unit as the tiered store packs it for pread
 * (each tensor rounded up to the arena's alignment). */
static uint64_t unit_bytes(const struct model *m, int b)
{
	uint64_t n = 0;
	for (int i = 0; i < LT_COUNT; i++)
		if (m->blocks[b].has[i])
			n += warena_round(m->blocks[b].t[i].nbytes);
	return n;
}

/* wstore_expert_stats (/stats, /metrics, --stats): per layer, the expert
 * acquires equal the expert blocks of that layer in the store's trace; a
 * second pass over the same token hits every expert (unlimited budget);
 * resident counts what was loaded; the resident store holds every expert. */
START_TEST(expert_stats_count_acquires_and_hits)
{
	char path[256];
	write_model(&qwen3moe_spec, path, sizeof(path), "xstats");
	for (int tiered = 0; tiered < 2; tiered++) {
		struct wstore_opts o;
		wstore_opts_default(&o);
		o.compute_from_ram = true;
		o.async_prefetch = false;
		o.trace_cap = 4096;
		struct rig r;
		rig_open(&r, path, tiered ? &o : NULL);
		const struct model *m = r.m;
		struct smk_err err = { 0 };
		struct kvcache *kv;
		ck_assert(kvcache_new(&kv, m, 32, r.be, &err) == 0);
		const int32_t toks[3] = { 9, 30, 9 };
		const float *lg;
		ck_assert(forward_run(r.f, kv, toks, 1, 1, &lg, &err) == 0);
		struct wexpert_layer_stats x[16];
		int n = wstore_expert_stats(r.ws, x, 16);
		ck_assert_int_eq(n, m->hp.n_layer);
		for (int il = 0; il < n; il++) {
			ck_assert_int_eq(x[il].layer, il);
			ck_assert_int_eq(x[il].n_expert, m->hp.n_expert);
			ck_assert_uint_eq(x[il].acquires, (uint64_t)m->hp.n_expert_used);
			/* first token, tiered: every expert was a miss */
			ck_assert_uint_eq(x[il].hits, tiered ? 0 : x[il].acquires);
			ck_assert_int_eq(x[il].resident, tiered ? m->hp.n_expert_used : m->hp.n_expert);
		}
		/* the same token again at the next position: same routing? not
		 * necessarily (position changes the hidden state), so count
		 * from the store's own trace */
		ck_assert(forward_run(r.f, kv, toks + 2, 1, 1, &lg, &err) == 0);
		n = wstore_expert_stats(r.ws, x, 16);
		if (tiered) {
			static int tr[4096];
			int nt = wstore_trace(r.ws, tr, 4096);
			uint64_t per_layer[16] = { 0 };
			for (int i = 0; i < nt; i++)
				if (m->blocks[tr[i]].kind == BLOCK_EXPERT)
					per_layer[m->blocks[tr[i]].layer]++;
			for (int il = 0; il < n; il++) {
				ck_assert_uint_eq(x[il].acquires, per_layer[il]);
				ck_assert_uint_le(x[il].hits, x[il].acquires - (uint64_t)m->hp.n_expert_used);
				/* nothing evicted: resident = distinct experts acquired */
				ck_assert_int_eq(x[il].resident, (int)(x[il].acquires - x[il].hits));
			}
		}
		kvcache_free(kv);
		rig_close(&r);
	}
	unlink(path);
}
END_TEST

START_TEST(experts_load_one_unit_each_and_only_when_chosen)
{
	char path[256];
	write_model(&qwen3moe_spec, path, sizeof(path), "units");
	for (int async = 0; async < 2; async++) {
		struct wstore_opts o;
		wstore_opts_default(&o);
		o.io = WSTORE_IO_PREAD;
		o.compute_from_ram = true;
		o.async_prefetch = async;
		o.trace_cap = 4096;
		struct rig r;
		rig_open(&r, path, &o);
		const struct model *m = r.m;
		struct smk_err err = { 0 };
		struct kvcache *kv;
		ck_assert(kvcache_new(&kv, m, 32, r.be, &err) == 0);
		const int32_t tok = 9;
		const float *lg;
		ck_assert(forward_run(r.f, kv, &tok, 1, 1, &lg, &err) == 0);
		static int tr[4096];
		int n = wstore_trace(r.ws, tr, 4096);
		int total, most = experts_per_layer(m, tr, n, &total);
		/* One token: exactly k experts per layer. */
		ck_assert_int_eq(most, m->hp.n_expert_used);
		ck_assert_int_eq(total, m->hp.n_expert_used * m->hp.n_layer);
		/* Bytes read = the units of the blocks acquired, nothing else:
		 * no expert was read that was not chosen (the predictor does
		 * not prefetch experts; budgets are unlimited, so nothing is
		 * read twice).  Wait for prefetches still running (async). */
		uint64_t want = 0, experts = 0;
		for (int i = 0; i < n; i++) {
			want += unit_bytes(m, tr[i]);
			if (m->blocks[tr[i]].kind == BLOCK_EXPERT)
				experts += unit_bytes(m, tr[i]);
		}
		struct wstore_stats st;
		for (int w = 0; w < 200; w++) {
			wstore_get_stats(r.ws, &st);
			if (st.tier[WSTORE_TIER_RAM].bytes_in >= want)
				break;
			usleep(5000);
		}
		/* With prefetch on, the next layer's predicted experts are
		 * fetched too (expert_predict.h): whole expert units beyond what
		 * was acquired, at most every unchosen expert.  Without it, a
		 * hint only orders: exactly what was acquired. */
		const uint64_t unit = unit_bytes(m, model_expert_block(m, 0, 0));
		const uint64_t in = st.tier[WSTORE_TIER_RAM].bytes_in;
		if (async) {
			ck_assert_uint_ge(in, want);
			ck_assert_uint_eq((in - want) % unit, 0);
			ck_assert_uint_le(in - want, (uint64_t)m->hp.n_layer *
							   (uint64_t)(m->hp.n_expert - m->hp.n_expert_used) * unit);
		} else {
			ck_assert_uint_eq(in, want);
		}
		ck_assert_uint_eq(experts, (uint64_t)m->hp.n_layer * m->hp.n_expert_used *
						   unit_bytes(m, model_expert_block(m, 0, 0)));
		/* What a whole-model read would add to what was acquired:
		 * exactly the experts not chosen - and the embedding table,
		 * whose rows a tiered store's lookup reads alone
		 * (wstore_lookup_by_rows): its blocks are never acquired. */
		ck_assert(wstore_lookup_by_rows(r.ws));
		uint64_t all = 0;
		for (int i = 0; i < n; i++)
			ck_assert_int_ne(m->blocks[tr[i]].kind, BLOCK_EMBED);
		for (int bi = 0; bi < m->n_blocks; bi++)
			if (m->blocks[bi].kind != BLOCK_EMBED)
				all += unit_bytes(m, bi);
		ck_assert_uint_eq(all - want, (uint64_t)m->hp.n_layer * (m->hp.n_expert - m->hp.n_expert_used) *
						      unit_bytes(m, model_expert_block(m, 0, 0)));
		/* Each expert unit is one read per slab range: three tensors. */
		ck_assert_uint_eq(unit_bytes(m, model_expert_block(m, 0, 0)),
				  3 * warena_round(m->blocks[model_expert_block(m, 0, 0)].t[LT_UP].nbytes));
		/* (Whether the prefetch loop issued anything depends on the
		 * scheduler: not asserted.) */
		/* The predictor follows the dense blocks only (experts are not
		 * predicted from the chain): one prediction per later one. */
		int dense = 0;
		for (int i = 0; i < n; i++)
			dense += m->blocks[tr[i]].kind != BLOCK_EXPERT;
		ck_assert_uint_eq(st.predictions + 1, (uint64_t)dense);
		fprintf(stderr, "one token, prefetch %s (%llu issued): read %llu bytes (experts %llu) of %llu\n",
			async ? "on" : "off", (unsigned long long)st.prefetch_issued,
			(unsigned long long)st.tier[WSTORE_TIER_RAM].bytes_in,
			(unsigned long long)experts, (unsigned long long)m->weight_bytes);
		kvcache_free(kv);
		rig_close(&r);
	}
	unlink(path);
}
END_TEST

START_TEST(hint_puts_resident_blocks_first)
{
	char path[256];
	write_model(&qwen3moe_spec, path, sizeof(path), "hint");
	struct wstore_opts o;
	wstore_opts_default(&o);
	o.compute_from_ram = true;
	o.async_prefetch = false;
	struct rig r;
	rig_open(&r, path, &o);
	struct smk_err err = { 0 };
	const int e3 = model_expert_block(r.m, 1, 3), e5 = model_expert_block(r.m, 1, 5),
		  e9 = model_expert_block(r.m, 1, 9);
	ck_assert_ptr_nonnull(wstore_acquire(r.ws, e5, &err));
	wstore_release(r.ws, e5);
	int list[3] = { e3, e9, e5 };
	wstore_hint(r.ws, list, 3, 3, 3);
	ck_assert_int_eq(list[0], e5);
	ck_assert_int_eq(list[1], e3);
	ck_assert_int_eq(list[2], e9);
	/* A list that breaks the contract (a repeat, a block out of range)
	 * is left as given; the valid entries still count as hints. */
	int l3[4] = { e9, e3, e9, r.m->n_blocks + 7 };
	wstore_hint(r.ws, l3, 4, 4, 4);
	ck_assert(l3[0] == e9 && l3[1] == e3 && l3[2] == e9 && l3[3] == r.m->n_blocks + 7);
	wstore_hint(r.ws, l3, 0, 0, 0);
	ck_assert_ptr_nonnull(wstore_acquire(r.ws, e9, &err));
	wstore_release(r.ws, e9);
	/* The resident store leaves the order alone. */
	struct wstore *res;
	ck_assert(wstore_new_resident(&res, r.m, WSTORE_LOAD_MAP, &err) == 0);
	int l2[3] = { e3, e9, e5 };
	wstore_hint(res, l2, 3, 3, 3);
	ck_assert(l2[0] == e3 && l2[1] == e9 && l2[2] == e5);
	wstore_free(res);
	rig_close(&r);
	unlink(path);
}
END_TEST

/* Wait (up to 20 s, polling) until the store's prefetches issued reach
 * `want`; the count reached.  Not a timing assertion: the deadline only
 * bounds a hang. */
static uint64_t wait_prefetches(struct wstore *ws, uint64_t want)
{
	struct wstore_stats st;
	for (int i = 0; i < 2000; i++) {
		wstore_get_stats(ws, &st);
		if (st.prefetch_issued >= want)
			break;
		usleep(10000);
	}
	return st.prefetch_issued;
}

/* Predicted hints (wstore.h): an expert hinted "keep" is never read from
 * the file; one hinted "predicted" is read only into free room or in place
 * of a unit unused this step and the last - not in place of the experts
 * the step just used.  RAM tier: layer 0's dense block and two experts. */
START_TEST(predicted_hints_read_only_into_cold_room)
{
	char path[256];
	write_model(&qwen3moe_spec, path, sizeof(path), "cold");
	struct model *m;
	struct smk_err err = { 0 };
	ck_assert(model_load(&m, path, &err) == 0);
	/* the cached experts a layer further ahead than the hinted one (a
	 * prefetch never evicts what is needed as soon as what it loads) */
	const int d0 = model_layer_block(m, 0), ea = model_expert_block(m, 2, 2),
		  eb = model_expert_block(m, 2, 7), ec = model_expert_block(m, 1, 11);
	const uint64_t unit = m->blocks[ea].nbytes;
	struct wstore_opts o;
	wstore_opts_default(&o);
	o.compute_from_ram = true;
	o.io = WSTORE_IO_PREAD;
	o.check_budgets = true;
	/* one block ahead: the chain learns d0 -> d0 below, which stays
	 * resident, so only the hints move */
	o.prefetch_blocks = 1;
	o.lookahead_max = 1;
	o.ram_budget = m->blocks[d0].nbytes + 2 * unit + unit / 2;
	model_free(m);
	struct rig r;
	rig_open(&r, path, &o);
	struct wstore_stats st;
	/* the plan's chain learns d0 -> d0 (three steps of the first layer
	 * alone), so the prefetch thread has nothing of its own to load */
	for (int i = 0; i < 3; i++) {
		ck_assert_ptr_nonnull(wstore_acquire(r.ws, d0, &err));
		wstore_release(r.ws, d0);
	}
	usleep(200000);
	/* this step: two experts fill the tier */
	ck_assert_ptr_nonnull(wstore_acquire(r.ws, ea, &err));
	wstore_release(r.ws, ea);
	ck_assert_ptr_nonnull(wstore_acquire(r.ws, eb, &err));
	wstore_release(r.ws, eb);
	usleep(200000);
	uint64_t pf = wait_prefetches(r.ws, 0);
	wstore_get_stats(r.ws, &st);
	const uint64_t ev = st.tier[WSTORE_TIER_RAM].evictions;
	/* keep: never read */
	int l1[1] = { ec };
	wstore_hint(r.ws, l1, 1, 0, 0);
	usleep(200000);
	ck_assert_uint_eq(wait_prefetches(r.ws, 0), pf);
	/* predicted, but both experts were used this step: no room */
	wstore_hint(r.ws, l1, 1, 0, 1);
	usleep(200000);
	ck_assert_uint_eq(wait_prefetches(r.ws, 0), pf);
	wstore_get_stats(r.ws, &st);
	ck_assert_uint_eq(st.tier[WSTORE_TIER_RAM].evictions, ev);
	/* two steps later, without them: the prediction takes one's place */
	for (int s = 0; s < 2; s++) {
		ck_assert_ptr_nonnull(wstore_acquire(r.ws, d0, &err));
		wstore_release(r.ws, d0);
	}
	/* keep, though there is cold room: never read */
	int l2[1] = { model_expert_block(r.m, 1, 13) };
	wstore_hint(r.ws, l2, 1, 0, 0);
	usleep(200000);
	ck_assert_uint_eq(wait_prefetches(r.ws, 0), pf);
	wstore_hint(r.ws, l1, 1, 0, 1);
	ck_assert_uint_eq(wait_prefetches(r.ws, pf + 1), pf + 1);
	wstore_get_stats(r.ws, &st);
	ck_assert_uint_eq(st.tier[WSTORE_TIER_RAM].evictions, ev + 1);
	ck_assert_ptr_nonnull(wstore_acquire(r.ws, ec, &err));
	wstore_release(r.ws, ec);
	rig_close(&r);
	unlink(path);
}
END_TEST

/* ---- the CUDA kernels (emulated) ---- */

/* Prompt + greedy steps through the engine on backend `kind` (CPU, or the
 * emulated CUDA kernels with the device weight tier); logits per step.
 * weights > 0: the device tier gets that many bytes for weights (the
 * engine's memory.gpu_memory is that plus the KV cache and activations). */
static void run_engine(enum backend_kind kind, const char *path, uint64_t weights, float *out,
		       struct xpredict_layer_stats *pred)
{
	struct smk_err err = { 0 };
	struct engine *e;
	struct wstore_opts wo;
	wstore_opts_default(&wo);
	wo.check_budgets = true;
	struct engine_opts eo = { .model_path = path, .n_ctx = 32, .n_batch = 8, .max_logits = 1,
				  .n_threads = 1, .no_tokenizer = true, .backend = kind };
	if (weights) {
		/* First the split of a roomy budget, to learn the rest's size. */
		wo.dev_budget = 1ull << 30;
		eo.weights = &wo;
		ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);
		wo.dev_budget = e->gpu_kv + e->gpu_scratch + weights;
		engine_close(e);
	}
	ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);
	struct rig r = { .m = e->model, .be = e->be, .ws = e->ws, .f = e->fwd };
	generate(&r, out);
	/* the predictor runs on every backend (on the host for a device) */
	ck_assert_ptr_nonnull(forward_expert_predictor(e->fwd));
	if (pred)
		ck_assert_int_eq(forward_expert_prediction(e->fwd, pred, 16), e->model->hp.n_layer);
	if (weights) {
		struct wstore_stats st;
		wstore_get_stats(e->ws, &st);
		ck_assert_int_eq(st.compute_tier, WSTORE_TIER_DEV);
		ck_assert_uint_le(st.tier[WSTORE_TIER_DEV].budget, weights);
		ck_assert_uint_gt(st.tier[WSTORE_TIER_DEV].evictions, 0);
	}
	engine_close(e);
}

/* The MoE layer on a device backend: router logits downloaded, routing on
 * the host, gathers and scatters as copy ops, weights scaled on the device.
 * The emulator computes the CPU scalar kernels' numbers, so with the CPU
 * forced scalar (routing too) both must agree bit for bit. */
START_TEST(cuda_emu_moe_equals_cpu)
{
	struct backend *probe;
	struct backend_limits lim = { .max_cols = 64, .max_rows = 1, .max_ctx = 16, .max_heads = 1 };
	struct smk_err err = { 0 };
	if (backend_cudaemu_new(&probe, &lim, NULL, &err)) {
		printf("SKIP MoE on the CUDA emulator: %s\n", err.msg);
		return;
	}
	backend_free(probe);
	char path[256];
	write_model(&qwen3moe_spec, path, sizeof(path), "emu");
	static float a[(GEN_STEPS + 1) * 64], b[(GEN_STEPS + 1) * 64], c[(GEN_STEPS + 1) * 64];
	struct model *m;
	ck_assert(model_load(&m, path, &err) == 0);
	const uint64_t third = m->weight_bytes / 3;
	model_free(m);
	qdot_force_scalar(true);
	struct xpredict_layer_stats pa[16], pb[16];
	run_engine(BACKEND_CPU, path, 0, a, pa);
	run_engine(BACKEND_CUDAEMU, path, 0, b, pb);
	run_engine(BACKEND_CUDAEMU, path, third, c, NULL);
	qdot_force_scalar(false);
	/* the same hidden states (bit for bit, below): the same predictions,
	 * the device's made on the host from the downloaded state */
	for (int il = 0; il < qwen3moe_spec.n_layer; il++) {
		ck_assert_uint_gt(pb[il].predicted, 0);
		ck_assert_uint_eq(pa[il].predicted, pb[il].predicted);
		ck_assert_uint_eq(pa[il].both, pb[il].both);
		ck_assert_uint_eq(pa[il].history, pb[il].history);
		ck_assert_uint_eq(pa[il].chosen, pb[il].chosen);
	}
	double worst = 0, worst_ooc = 0;
	for (int i = 0; i < (GEN_STEPS + 1) * 64; i++) {
		worst = fmax(worst, fabs((double)a[i] - b[i]));
		worst_ooc = fmax(worst_ooc, fabs((double)a[i] - c[i]));
	}
	printf("qwen3moe cuda-emu vs cpu (scalar): max |logit diff| %g; device tier at 1/3 of the weights: %g\n",
	       worst, worst_ooc);
	ck_assert_msg(worst == 0, "logits differ by up to %g", worst);
	ck_assert_msg(worst_ooc == 0, "out of core: logits differ by up to %g", worst_ooc);
	unlink(path);
}
END_TEST

/* ---- refused at load ---- */

static void check_refused(const struct tm_spec *sp, const char *tag, const char *w1, const char *w2)
{
	char path[256];
	write_model(sp, path, sizeof(path), tag);
	struct model *m = NULL;
	struct smk_err err = { 0 };
	int rc = model_load(&m, path, &err);
	ck_assert_msg(rc == -EINVAL, "%s: expected -EINVAL, got %d (%s)", tag, rc, err.msg);
	ck_assert_ptr_null(m);
	ck_assert_msg(strstr(err.msg, path), "%s: message does not name the file: %s", tag, err.msg);
	ck_assert_msg(strstr(err.msg, w1), "%s: message lacks '%s': %s", tag, w1, err.msg);
	if (w2)
		ck_assert_msg(strstr(err.msg, w2), "%s: message lacks '%s': %s", tag, w2, err.msg);
	unlink(path);
}

START_TEST(refuse_shared_expert)
{
	struct tm_spec s = qwen3moe_spec;
	s.shared_expert = true;
	check_refused(&s, "shexp", "blk.0.ffn_up_shexp.weight", "shared experts");
}
END_TEST

START_TEST(refuse_expert_groups)
{
	struct tm_spec s = qwen3moe_spec;
	s.group_count = 4;
	check_refused(&s, "groups", "qwen3moe.expert_group_count", "expert groups");
}
END_TEST

START_TEST(refuse_sigmoid_gating)
{
	struct tm_spec s = mixtral_spec;
	s.gating_func = 2;
	check_refused(&s, "gating", "llama.expert_gating_func", "softmax");
}
END_TEST

START_TEST(refuse_more_used_than_experts)
{
	struct tm_spec s = mixtral_spec;
	s.used_override = 9;
	check_refused(&s, "used9", "llama.expert_used_count", "between 1 and expert_count");
}
END_TEST

START_TEST(refuse_no_used_experts)
{
	struct tm_spec s = qwen3moe_spec;
	s.used_override = -1;
	check_refused(&s, "used0", "qwen3moe.expert_used_count", "between 1 and expert_count");
}
END_TEST

START_TEST(refuse_slab_with_wrong_expert_count)
{
	struct tm_spec s = qwen3moe_spec;
	s.bad_slab_ne2 = 15;
	check_refused(&s, "ne2", "blk.0.ffn_up_exps.weight", "expected [64, 32, 16]");
}
END_TEST

START_TEST(refuse_slab_with_wrong_width)
{
	struct tm_spec s = mixtral_spec;
	s.bad_down_ne0 = 32;
	check_refused(&s, "down", "blk.0.ffn_down_exps.weight", "expert_feed_forward_length, n_embd");
}
END_TEST

START_TEST(refuse_missing_router)
{
	struct tm_spec s = qwen3moe_spec;
	s.no_router = true;
	check_refused(&s, "router", "blk.1.ffn_gate_inp.weight", "missing");
}
END_TEST

START_TEST(refuse_fused_gate_up)
{
	struct tm_spec s = qwen3moe_spec;
	s.fused_gate_up = true;
	check_refused(&s, "fused", "blk.0.ffn_gate_up_exps.weight", "fused gate/up");
}
END_TEST


START_TEST(refuse_truncated_slab)
{
	/* The last tensor of the file is layer 2's down slab: cut it short. */
	char path[256];
	write_model(&qwen3moe_spec, path, sizeof(path), "trunc");
	FILE *fp = fopen(path, "rb");
	ck_assert_ptr_nonnull(fp);
	fseek(fp, 0, SEEK_END);
	long size = ftell(fp);
	fclose(fp);
	ck_assert_int_eq(truncate(path, size - 100), 0);
	struct model *m = NULL;
	struct smk_err err = { 0 };
	ck_assert_int_eq(model_load(&m, path, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, path) && strstr(err.msg, "blk.2.ffn_down_exps.weight") &&
			      strstr(err.msg, "past end of file"),
		      "%s", err.msg);
	unlink(path);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("moe");
	TCase *tc = tcase_create("moe");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, qwen3moe_plan_has_one_block_per_expert);
	tcase_add_test(tc, route_top_k_ties_go_to_the_lower_expert);
	tcase_add_test(tc, qwen3moe_batch_equals_alone);
	tcase_add_test(tc, mixtral_batch_equals_alone);
	tcase_add_test(tc, qwen3_dense_runs_and_batches);
	tcase_add_test(tc, qwen3_hf_dir_equals_gguf);
	tcase_add_test(tc, qwen3moe_hf_dir_equals_gguf);
	tcase_add_test(tc, mixtral_hf_dir_equals_gguf);
	tcase_add_test(tc, qwen3moe_hf_refusals);
	tcase_add_test(tc, qwen3moe_out_of_core_equals_resident);
	tcase_add_test(tc, mixtral_out_of_core_equals_resident);
	tcase_add_test(tc, one_expert_top1_equals_dense);
	tcase_add_test(tc, gpt_oss_out_of_core_equals_resident);
	tcase_add_test(tc, gpt_oss_batch_equals_alone);
	tcase_add_test(tc, row_ops_and_row_by_row_agree);
	tcase_add_test(tc, per_expert_tensors_equal_slabs);
	tcase_add_test(tc, expert_trace_records_the_routing);
	tcase_add_test(tc, experts_load_one_unit_each_and_only_when_chosen);
	tcase_add_test(tc, expert_stats_count_acquires_and_hits);
	tcase_add_test(tc, next_layer_prediction_counts);
	tcase_add_test(tc, hint_puts_resident_blocks_first);
	tcase_add_test(tc, predicted_hints_read_only_into_cold_room);
	tcase_add_test(tc, cuda_emu_moe_equals_cpu);
	tcase_add_test(tc, refuse_shared_expert);
	tcase_add_test(tc, refuse_expert_groups);
	tcase_add_test(tc, refuse_sigmoid_gating);
	tcase_add_test(tc, refuse_more_used_than_experts);
	tcase_add_test(tc, refuse_no_used_experts);
	tcase_add_test(tc, refuse_slab_with_wrong_expert_count);
	tcase_add_test(tc, refuse_slab_with_wrong_width);
	tcase_add_test(tc, refuse_missing_router);
	tcase_add_test(tc, refuse_fused_gate_up);
	tcase_add_test(tc, refuse_truncated_slab);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ck_run(suite());
}
