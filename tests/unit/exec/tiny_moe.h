/* tiny_moe.h - tiny random GGUF models written at test time: Qwen3 (dense),
 * Qwen3-MoE and Mixtral-style Llama with experts, and variants broken on
 * purpose, for test_moe.c.
 *
 * The writer emits GGUF v3 as gguf.c reads it: "GGUF", version 3, the
 * tensor and key counts, the keys (string key, u32 type, value), the tensor
 * infos (name, n_dims, ne[] in ggml order, ggml type, data offset from the
 * data start), padding to 32 bytes, the data (each tensor 32-byte aligned).
 * Weights are F32 except the expert slabs, which are Q8_0 (a f16 scale and
 * 32 int8 per block of 32 values) so that an expert's view is a slice of a
 * quantised slab.  Values come from a fixed xorshift generator: the same
 * spec gives the same file.
 */
#ifndef SMK_TESTS_TINY_MOE_H
#define SMK_TESTS_TINY_MOE_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/fp16.h"

enum tm_arch { TM_QWEN3, TM_QWEN3MOE, TM_MIXTRAL, TM_LLAMA };

struct tm_spec {
	enum tm_arch arch;
	int n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab;
	int n_expert, n_expert_used, n_ff_exp;
	bool tied;
	uint32_t seed;
	/* Breakage, for the refusal tests (0/false: a valid model). */
	bool no_router;             /* blk.1.ffn_gate_inp.weight left out */
	bool shared_expert;         /* blk.0.ffn_up_shexp.weight added */
	bool fused_gate_up;         /* blk.0.ffn_gate_up_exps.weight instead of gate + up */
	int bad_slab_ne2;           /* blk.0.ffn_up_exps.weight with this many experts */
	int bad_down_ne0;           /* blk.0.ffn_down_exps.weight rows this wide */
	int group_count;            /* <arch>.expert_group_count */
	int gating_func;            /* <arch>.expert_gating_func */
	int used_override;          /* write this expert_used_count instead (-1: 0) */
	bool legacy_experts;        /* one tensor per expert, blk.N.ffn_gate.E.weight (pre-2024) */
	bool all_f32;               /* FFN and expert weights F32 too (a Hugging Face directory's) */
	bool neox_key;              /* smoke.rope.layout = neox (llama as HF orders q/k rows) */
	/* Mixtral with one expert: the slabs hold the bytes of the dense
	 * model's ffn_{gate,up,down} (same seed), so both compute the same. */
	bool dense_as_expert;
};

#define TM_MAX_T 512
#define TM_MAX_KV 32

struct tm_tensor {
	char name[96];
	uint32_t n_dims;
	uint64_t ne[3];
	uint32_t type;
	uint8_t *data;
	uint64_t nbytes, off;
};

struct tm_file {
	struct tm_tensor t[TM_MAX_T];
	int n_t;
	/* keys: pre-serialised records */
	uint8_t *kv;
	size_t kv_len, kv_cap;
	int n_kv;
};

static uint32_t tm_rng(uint32_t *s)
{
	uint32_t x = *s;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*s = x;
	return x;
}

/* Uniform in [-a, a). */
static float tm_uniform(uint32_t *s, float a)
{
	return a * ((float)(tm_rng(s) >> 8) / 8388608.0f - 1.0f);
}

static uint32_t tm_hash(const char *name, uint32_t seed)
{
	uint32_t h = 2166136261u ^ seed;
	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return h ? h : 1;
}

static void tm_kv_bytes(struct tm_file *f, const void *p, size_t n)
{
	if (f->kv_len + n > f->kv_cap) {
		f->kv_cap = (f->kv_len + n) * 2 + 256;
		f->kv = realloc(f->kv, f->kv_cap);
	}
	memcpy(f->kv + f->kv_len, p, n);
	f->kv_len += n;
}

static void tm_kv_str_raw(struct tm_file *f, const char *s)
{
	uint64_t n = strlen(s);
	tm_kv_bytes(f, &n, 8);
	tm_kv_bytes(f, s, n);
}

static void tm_kv_u32(struct tm_file *f, const char *key, uint32_t v)
{
	uint32_t type = 4;
	tm_kv_str_raw(f, key);
	tm_kv_bytes(f, &type, 4);
	tm_kv_bytes(f, &v, 4);
	f->n_kv++;
}

static void tm_kv_f32(struct tm_file *f, const char *key, float v)
{
	uint32_t type = 6;
	tm_kv_str_raw(f, key);
	tm_kv_bytes(f, &type, 4);
	tm_kv_bytes(f, &v, 4);
	f->n_kv++;
}

static void tm_kv_str(struct tm_file *f, const char *key, const char *v)
{
	uint32_t type = 8;
	tm_kv_str_raw(f, key);
	tm_kv_bytes(f, &type, 4);
	tm_kv_str_raw(f, v);
	f->n_kv++;
}

/* An F32 tensor of random values (norms: around 1). */
static void tm_f32(struct tm_file *f, const char *name, uint32_t seed, int64_t ne0, int64_t ne1,
		   bool norm)
{
	struct tm_tensor *t = &f->t[f->n_t++];
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->n_dims = ne1 > 1 ? 2 : 1;
	t->ne[0] = (uint64_t)ne0;
	t->ne[1] = (uint64_t)ne1;
	t->ne[2] = 1;
	t->type = 0;
	t->nbytes = (uint64_t)ne0 * (uint64_t)ne1 * 4;
	t->data = malloc(t->nbytes);
	float *v = (float *)t->data;
	uint32_t s = tm_hash(name, seed);
	const float a = norm ? 0.2f : 1.7f / sqrtf((float)ne0);
	for (int64_t i = 0; i < ne0 * ne1; i++)
		v[i] = norm ? 1.0f + tm_uniform(&s, a) : tm_uniform(&s, a);
}

/* Q8_0 rows of ne0 random values (ne0 % 32 == 0), n_mat matrices of ne1
 * rows; each matrix i drawn from the seed of name_i (so that a 1-expert
 * slab named like the dense tensor holds the very same bytes). */
static void tm_q8(struct tm_file *f, const char *name, const char *seed_name, uint32_t seed,
		  int64_t ne0, int64_t ne1, int64_t n_mat)
{
	struct tm_tensor *t = &f->t[f->n_t++];
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->n_dims = n_mat > 1 || strstr(name, "_exps") ? 3 : 2;
	t->ne[0] = (uint64_t)ne0;
	t->ne[1] = (uint64_t)ne1;
	t->ne[2] = (uint64_t)n_mat;
	t->type = 8;
	const uint64_t per = (uint64_t)ne0 / 32 * 34 * (uint64_t)ne1;
	t->nbytes = per * (uint64_t)n_mat;
	t->data = malloc(t->nbytes);
	for (int64_t m = 0; m < n_mat; m++) {
		char sn[128];
		if (n_mat == 1)
			snprintf(sn, sizeof(sn), "%s", seed_name);
		else
			snprintf(sn, sizeof(sn), "%s#%lld", seed_name, (long long)m);
		uint32_t s = tm_hash(sn, seed);
		uint8_t *p = t->data + (uint64_t)m * per;
		const float a = 1.7f / sqrtf((float)ne0);
		for (int64_t b = 0; b < ne0 / 32 * ne1; b++, p += 34) {
			const uint16_t d = fp32_to_fp16(a / 127.0f * (0.5f + (float)(tm_rng(&s) % 64) / 64.0f));
			memcpy(p, &d, 2);
			for (int i = 0; i < 32; i++)
				p[2 + i] = (uint8_t)(int8_t)((int)(tm_rng(&s) % 255) - 127);
		}
	}
}

static const char *tm_arch_name(enum tm_arch a)
{
	return a == TM_QWEN3 ? "qwen3" : a == TM_QWEN3MOE ? "qwen3moe" : "llama";
}

/* Write the model of spec *sp to path; 0 or -1. */
static int tm_write(const char *path, const struct tm_spec *sp)
{
	struct tm_file *f = calloc(1, sizeof(*f));
	const char *arch = tm_arch_name(sp->arch);
	char key[128], name[96], sname[128];
	const bool moe = sp->arch == TM_QWEN3MOE || sp->arch == TM_MIXTRAL;
	const bool qk_norm = sp->arch == TM_QWEN3 || sp->arch == TM_QWEN3MOE;
	const int q_dim = sp->n_head * sp->head_dim, kv_dim = sp->n_head_kv * sp->head_dim;
	const int n_ff_exp = sp->arch == TM_MIXTRAL || sp->dense_as_expert ? sp->n_ff : sp->n_ff_exp;

	tm_kv_str(f, "general.architecture", arch);
	tm_kv_str(f, "general.name", "tiny-moe-test");
#define KEY(k) (snprintf(key, sizeof(key), "%s.%s", arch, k), key)
	tm_kv_u32(f, KEY("context_length"), 256);
	tm_kv_u32(f, KEY("embedding_length"), (uint32_t)sp->n_embd);
	tm_kv_u32(f, KEY("block_count"), (uint32_t)sp->n_layer);
	tm_kv_u32(f, KEY("feed_forward_length"), (uint32_t)sp->n_ff);
	tm_kv_u32(f, KEY("attention.head_count"), (uint32_t)sp->n_head);
	tm_kv_u32(f, KEY("attention.head_count_kv"), (uint32_t)sp->n_head_kv);
	tm_kv_u32(f, KEY("attention.key_length"), (uint32_t)sp->head_dim);
	tm_kv_u32(f, KEY("attention.value_length"), (uint32_t)sp->head_dim);
	tm_kv_f32(f, KEY("attention.layer_norm_rms_epsilon"), 1e-6f);
	tm_kv_f32(f, KEY("rope.freq_base"), 1000000.0f);
	if (sp->neox_key)
		tm_kv_str(f, "smoke.rope.layout", "neox");
	if (moe || sp->dense_as_expert) {
		tm_kv_u32(f, KEY("expert_count"), (uint32_t)sp->n_expert);
		uint32_t used = (uint32_t)sp->n_expert_used;
		if (sp->used_override)
			used = sp->used_override < 0 ? 0 : (uint32_t)sp->used_override;
		tm_kv_u32(f, KEY("expert_used_count"), used);
		if (sp->arch == TM_QWEN3MOE)
			tm_kv_u32(f, KEY("expert_feed_forward_length"), (uint32_t)n_ff_exp);
		if (sp->group_count)
			tm_kv_u32(f, KEY("expert_group_count"), (uint32_t)sp->group_count);
		if (sp->gating_func)
			tm_kv_u32(f, KEY("expert_gating_func"), (uint32_t)sp->gating_func);
	}
#undef KEY

	tm_f32(f, "token_embd.weight", sp->seed, sp->n_embd, sp->n_vocab, false);
	tm_f32(f, "output_norm.weight", sp->seed, sp->n_embd, 1, true);
	if (!sp->tied)
		tm_f32(f, "output.weight", sp->seed, sp->n_embd, sp->n_vocab, false);
	for (int il = 0; il < sp->n_layer; il++) {
#define NAME(s) (snprintf(name, sizeof(name), "blk.%d.%s", il, s), name)
		tm_f32(f, NAME("attn_norm.weight"), sp->seed, sp->n_embd, 1, true);
		tm_f32(f, NAME("attn_q.weight"), sp->seed, sp->n_embd, q_dim, false);
		tm_f32(f, NAME("attn_k.weight"), sp->seed, sp->n_embd, kv_dim, false);
		tm_f32(f, NAME("attn_v.weight"), sp->seed, sp->n_embd, kv_dim, false);
		tm_f32(f, NAME("attn_output.weight"), sp->seed, q_dim, sp->n_embd, false);
		if (qk_norm) {
			tm_f32(f, NAME("attn_q_norm.weight"), sp->seed, sp->head_dim, 1, true);
			tm_f32(f, NAME("attn_k_norm.weight"), sp->seed, sp->head_dim, 1, true);
		}
		tm_f32(f, NAME("ffn_norm.weight"), sp->seed, sp->n_embd, 1, true);
		if (!moe && !sp->dense_as_expert && sp->all_f32) {
			tm_f32(f, NAME("ffn_gate.weight"), sp->seed, sp->n_embd, sp->n_ff, false);
			tm_f32(f, NAME("ffn_up.weight"), sp->seed, sp->n_embd, sp->n_ff, false);
			tm_f32(f, NAME("ffn_down.weight"), sp->seed, sp->n_ff, sp->n_embd, false);
			continue;
		}
		if (!moe && !sp->dense_as_expert) {
			tm_q8(f, NAME("ffn_gate.weight"), name, sp->seed, sp->n_embd, sp->n_ff, 1);
			tm_q8(f, NAME("ffn_up.weight"), name, sp->seed, sp->n_embd, sp->n_ff, 1);
			tm_q8(f, NAME("ffn_down.weight"), name, sp->seed, sp->n_ff, sp->n_embd, 1);
			continue;
		}
		if (!(sp->no_router && il == 1))
			tm_f32(f, NAME("ffn_gate_inp.weight"), sp->seed, sp->n_embd, sp->n_expert, false);
		/* A 1-expert slab seeded as the dense tensor of that name. */
		const bool same = sp->dense_as_expert;
		const int ne2 = sp->n_expert;
		if (sp->legacy_experts) {
			for (int e = 0; e < ne2; e++) {
				/* seeded as matrix e of the slab: the same bytes */
				char en[96], sn2[128];
				snprintf(en, sizeof(en), "blk.%d.ffn_gate.%d.weight", il, e);
				snprintf(sn2, sizeof(sn2), "blk.%d.ffn_gate_exps.weight#%d", il, e);
				if (sp->all_f32) {
					tm_f32(f, en, sp->seed, sp->n_embd, n_ff_exp, false);
					snprintf(en, sizeof(en), "blk.%d.ffn_up.%d.weight", il, e);
					tm_f32(f, en, sp->seed, sp->n_embd, n_ff_exp, false);
					snprintf(en, sizeof(en), "blk.%d.ffn_down.%d.weight", il, e);
					tm_f32(f, en, sp->seed, n_ff_exp, sp->n_embd, false);
					continue;
				}
				tm_q8(f, en, sn2, sp->seed, sp->n_embd, n_ff_exp, 1);
				snprintf(en, sizeof(en), "blk.%d.ffn_up.%d.weight", il, e);
				snprintf(sn2, sizeof(sn2), "blk.%d.ffn_up_exps.weight#%d", il, e);
				tm_q8(f, en, sn2, sp->seed, sp->n_embd, n_ff_exp, 1);
				snprintf(en, sizeof(en), "blk.%d.ffn_down.%d.weight", il, e);
				snprintf(sn2, sizeof(sn2), "blk.%d.ffn_down_exps.weight#%d", il, e);
				tm_q8(f, en, sn2, sp->seed, n_ff_exp, sp->n_embd, 1);
			}
			continue;
		}
		if (sp->fused_gate_up && il == 0) {
			tm_q8(f, NAME("ffn_gate_up_exps.weight"), name, sp->seed, sp->n_embd, 2 * n_ff_exp, ne2);
		} else {
			snprintf(sname, sizeof(sname), "blk.%d.%s", il, same ? "ffn_gate.weight" : "ffn_gate_exps.weight");
			tm_q8(f, NAME("ffn_gate_exps.weight"), sname, sp->seed, sp->n_embd, n_ff_exp, ne2);
			snprintf(sname, sizeof(sname), "blk.%d.%s", il, same ? "ffn_up.weight" : "ffn_up_exps.weight");
			tm_q8(f, NAME("ffn_up_exps.weight"), sname, sp->seed, sp->n_embd, n_ff_exp,
			      il == 0 && sp->bad_slab_ne2 ? sp->bad_slab_ne2 : ne2);
		}
		snprintf(sname, sizeof(sname), "blk.%d.%s", il, same ? "ffn_down.weight" : "ffn_down_exps.weight");
		tm_q8(f, NAME("ffn_down_exps.weight"), sname, sp->seed,
		      il == 0 && sp->bad_down_ne0 ? sp->bad_down_ne0 : n_ff_exp, sp->n_embd, ne2);
		if (sp->shared_expert && il == 0)
			tm_q8(f, NAME("ffn_up_shexp.weight"), name, sp->seed, sp->n_embd, n_ff_exp, 1);
#undef NAME
	}

	FILE *fp = fopen(path, "wb");
	if (!fp)
		return -1;
	uint32_t magic_ver[2];
	memcpy(&magic_ver[0], "GGUF", 4);
	magic_ver[1] = 3;
	uint64_t counts[2] = { (uint64_t)f->n_t, (uint64_t)f->n_kv };
	fwrite(magic_ver, 4, 2, fp);
	fwrite(counts, 8, 2, fp);
	fwrite(f->kv, 1, f->kv_len, fp);
	uint64_t off = 0;
	for (int i = 0; i < f->n_t; i++) {
		struct tm_tensor *t = &f->t[i];
		uint64_t n = strlen(t->name);
		fwrite(&n, 8, 1, fp);
		fwrite(t->name, 1, n, fp);
		fwrite(&t->n_dims, 4, 1, fp);
		fwrite(t->ne, 8, t->n_dims, fp);
		fwrite(&t->type, 4, 1, fp);
		t->off = off;
		fwrite(&off, 8, 1, fp);
		off += (t->nbytes + 31) / 32 * 32;
	}
	static const uint8_t zero[32];
	long pos = ftell(fp);
	fwrite(zero, 1, (size_t)((32 - pos % 32) % 32), fp);
	for (int i = 0; i < f->n_t; i++) {
		struct tm_tensor *t = &f->t[i];
		fwrite(t->data, 1, t->nbytes, fp);
		fwrite(zero, 1, (size_t)((32 - t->nbytes % 32) % 32), fp);
		free(t->data);
	}
	int rc = fclose(fp) ? -1 : 0;
	free(f->kv);
	free(f);
	return rc;
}

#endif
