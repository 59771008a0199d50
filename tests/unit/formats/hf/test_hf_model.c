/* Hugging Face model directories against transformers.
 *
 * scripts/make-hf-reference-models.py (torch + transformers, not in CI)
 * built small random-weight models of each architecture smoke maps from
 * config.json, saved them as safetensors directories in float32, float16 and
 * bfloat16, and recorded the float32 logits transformers computes from each
 * saved file.  Here the same directories run through smoke's reader and
 * forward pass:
 *   - top-1 (argmax) must agree at every position of every sequence: the
 *     generator only keeps seeds whose reference top-1/top-2 gap is at least
 *     0.03 everywhere (measured: 0.034..0.064);
 *   - the logits of the last positions must agree within LOGIT_TOL.  Both
 *     sides compute in float32 from the same stored weights (F16/BF16 are
 *     widened exactly; our F16/BF16 dot products take float activations as
 *     transformers' float32 matmuls do).  The one deliberate difference is
 *     attention, which runs at fp16 precision as llama.cpp's CPU attention
 *     does (docs/reference.md): Q, the cached K and V, and the softmax
 *     weights are rounded to fp16 (2^-11 relative each).  At these models'
 *     logit scale (|logit| up to ~6.5) that moves logits by up to ~0.02
 *     (measured: 0.004..0.017).  LOGIT_TOL = 0.03 (0.5% of the largest
 *     logit) still catches any mapping mistake: a wrong norm, rope layout or
 *     window moves logits by 0.1..several.
 * memory.default_dtype conversions are checked for round-trip accuracy
 * against the dtype's precision, and the converted models' logits against
 * the unconverted ones (tolerances stated at each check). */
#include <check.h>

#include "ck_main.h"
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compute/cpu/qdot.h"
#include "compute/cuda/cuda_backend.h"
#include "compute/cuda/cuda_probe.h"
#include "engine/engine.h"
#include "quant/convert.h"
#include "quant/qtype.h"
#include "util/fp16.h"

#define LOGIT_TOL 0.03
#define MAX_SEQ 64

static const char *cases[] = {
	"llama-f32", "llama-f16", "llama-bf16",
	"mistral-f32", "mistral-f16", "mistral-bf16",
	"qwen2-f32", "qwen2-f16", "qwen2-bf16",
	"gemma3-f32", "gemma3-f16", "gemma3-bf16",
};

static const char *case_dir(const char *name)
{
	static char path[4096];
	const char *dir = getenv("SMOKE_FIXTURES");
	snprintf(path, sizeof(path), "%s/hf-models/%s", dir ? dir : "tests/fixtures", name);
	return path;
}

/* Logits of every position of seq (n tokens) into out[n][n_vocab]. */
static void run_seq(struct engine *e, const int32_t *seq, int n, float *out)
{
	struct smk_err err = { 0 };
	struct kvcache *kv;
	ck_assert_msg(kvcache_new(&kv, e->model, e->n_ctx, e->be, &err) == 0, "%s", err.msg);
	const float *logits;
	ck_assert_msg(forward_run(e->fwd, kv, seq, n, n, &logits, &err) == 0, "%s", err.msg);
	memcpy(out, logits, sizeof(float) * (size_t)n * (size_t)e->model->hp.n_vocab);
	kvcache_free(kv);
}

/* The backend the checks run on (a test sets it before check_case; each
 * test runs in its own process). */
static enum backend_kind backend = BACKEND_CPU;
static const struct wstore_opts *backend_weights; /* NULL: the default store */

static struct engine *open_engine_ws(const char *dir, enum convert_dtype dt,
				     const struct wstore_opts *wo)
{
	struct smk_err err = { 0 };
	struct engine *e;
	struct engine_opts eo = { .model_path = dir, .n_ctx = MAX_SEQ, .n_batch = MAX_SEQ,
				  .max_logits = MAX_SEQ, .n_threads = 1, .dtype = dt,
				  .no_tokenizer = true, .weights = wo ? wo : backend_weights,
				  .backend = backend };
	ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s: %s", dir, err.msg);
	return e;
}

static struct engine *open_engine(const char *dir, enum convert_dtype dt)
{
	return open_engine_ws(dir, dt, NULL);
}

struct result {
	int agree, total;
	double max_err;
};

static struct result check_case(const char *name, enum convert_dtype dt)
{
	const char *dir = case_dir(name);
	char ref_path[4200];
	snprintf(ref_path, sizeof(ref_path), "%s/reference.json", dir);
	json_error_t jerr;
	json_t *ref = json_load_file(ref_path, 0, &jerr);
	ck_assert_msg(ref, "%s: %s", ref_path, jerr.text);
	struct engine *e = open_engine(dir, dt);
	int nv = e->model->hp.n_vocab;
	float *logits = malloc(sizeof(float) * MAX_SEQ * (size_t)nv);
	ck_assert_ptr_nonnull(logits);
	struct result r = { 0 };
	json_t *seqs = json_object_get(ref, "sequences");
	for (size_t si = 0; si < json_array_size(seqs); si++) {
		json_t *js = json_array_get(seqs, si);
		int n = (int)json_array_size(js);
		ck_assert_int_le(n, MAX_SEQ);
		int32_t seq[MAX_SEQ];
		for (int i = 0; i < n; i++)
			seq[i] = (int32_t)json_integer_value(json_array_get(js, (size_t)i));
		run_seq(e, seq, n, logits);
		json_t *am = json_array_get(json_object_get(ref, "argmax"), si);
		for (int p = 0; p < n; p++) {
			int best = 0;
			for (int v = 1; v < nv; v++)
				if (logits[(size_t)p * nv + v] > logits[(size_t)p * nv + best])
					best = v;
			r.agree += best == json_integer_value(json_array_get(am, (size_t)p));
			r.total++;
		}
		json_t *rows = json_array_get(json_object_get(ref, "logits"), si);
		int nr = (int)json_array_size(rows);
		for (int k = 0; k < nr; k++) {
			json_t *row = json_array_get(rows, (size_t)k);
			ck_assert_int_eq((int)json_array_size(row), nv);
			const float *ours = logits + (size_t)(n - nr + k) * nv;
			for (int v = 0; v < nv; v++) {
				double d = fabs(ours[v] - json_number_value(json_array_get(row, (size_t)v)));
				if (d > r.max_err)
					r.max_err = d;
			}
		}
	}
	free(logits);
	engine_close(e);
	json_decref(ref);
	return r;
}

START_TEST(test_against_transformers)
{
	const char *name = cases[_i];
	struct result r = check_case(name, CONVERT_AUTO);
	printf("%-13s top-1 %d/%d, max |logit error| %.3g (tolerance %.2g)\n", name, r.agree,
	       r.total, r.max_err, LOGIT_TOL);
	ck_assert_msg(r.agree == r.total, "%s: top-1 agrees at %d of %d positions", name, r.agree,
		      r.total);
	ck_assert_msg(r.max_err <= LOGIT_TOL, "%s: max logit error %g > %g", name, r.max_err,
		      LOGIT_TOL);
}
END_TEST

/* The same checks with the CUDA backend's kernels and the forward pass in
 * device memory: under the CPU emulator everywhere, and on a real GPU when
 * there is one.  Odd cases stream the weights through a device tier of a
 * third of the model (evictions every pass, views into device slots).  The
 * tolerance is the CPU's: the kernels keep its rounding points (fp16 Q, K,
 * V and softmax weights) and multiply float activations exactly as
 * transformers' float32 matmuls do. */
static void check_device_case(int i)
{
	const char *name = cases[i];
	struct wstore_opts wo;
	if (i % 2) {
		struct engine *e = open_engine(case_dir(name), CONVERT_AUTO);
		wstore_opts_default(&wo);
		wo.dev_budget = e->model->weight_bytes / 3 + (64u << 10) + (4u << 20);
		wo.check_budgets = true;
		backend_weights = &wo;
		engine_close(e);
	}
	struct result r = check_case(name, CONVERT_AUTO);
	printf("%-13s %s%s top-1 %d/%d, max |logit error| %.3g (tolerance %.2g)\n", name,
	       backend == BACKEND_CUDA ? "cuda" : "cuda-emu", i % 2 ? " streamed" : "", r.agree,
	       r.total, r.max_err, LOGIT_TOL);
	ck_assert_msg(r.agree == r.total, "%s: top-1 agrees at %d of %d positions", name, r.agree,
		      r.total);
	ck_assert_msg(r.max_err <= LOGIT_TOL, "%s: max logit error %g > %g", name, r.max_err,
		      LOGIT_TOL);
}

START_TEST(test_cuda_emu_against_transformers)
{
	backend = BACKEND_CUDAEMU;
	const char *emu = getenv("SMOKE_CUDA_EMU");
	if (emu && !strcmp(emu, "0")) {
		printf("SKIP %s on the CUDA emulator: SMOKE_CUDA_EMU=0\n", cases[_i]);
		return;
	}
	struct backend *probe;
	struct backend_limits lim = { .max_cols = 64, .max_rows = 1, .max_ctx = 16, .max_heads = 1 };
	struct smk_err err = { 0 };
	if (backend_cudaemu_new(&probe, &lim, NULL, &err)) {
		printf("SKIP %s on the CUDA emulator: %s\n", cases[_i], err.msg);
		return;
	}
	backend_free(probe);
	check_device_case(_i);
}
END_TEST

START_TEST(test_cuda_against_transformers)
{
	char why[200];
	if (cuda_probe(why, sizeof(why)) <= 0) {
		printf("SKIP %s on a GPU: %s\n", cases[_i], why);
		return;
	}
	backend = BACKEND_CUDA;
	check_device_case(_i);
}
END_TEST

/* The CUDA kernels against the CPU backend on quantised GGUF models - the
 * default model (Gemma 3: Q4_K, Q6_K, Q5_0/Q8_0 for its 640-wide rows,
 * GeGLU, sliding windows, Q/K norms) and two tiny ones (Q4_K/Q6_K, Q4_0/
 * Q8_0) - greedy decoding through the whole forward pass, LOGITS EQUAL TO
 * THE BIT.  Every CUDA op computes what the CPU's scalar path computes in
 * its order: matmuls quantise activations to int8 and scale integer block
 * dots with the same float operations, summing block results in double
 * (compute/cuda/cuda_qdot.cuh); attention sums its dots in double and
 * weights V in position order; RoPE uses the same fused formula.  Under
 * the emulator the kernels also get the host's expf/sinf/cosf, so nothing
 * is left to differ, and any difference means one side changed its order
 * of operations - which is what this test is for.  (Measured before the
 * attention and RoPE were aligned: the default model's logits parted by 6
 * after layer 5, an int8 rounding moved by a last-bit difference.)  The
 * SIMD CPU kernels sum in float lanes, so the scalar ones are the
 * reference.  On a GPU, CUDA's expf/sinf/cosf differ by an ulp or two,
 * which the fp16 rounding of Q, K and the softmax weights absorbs but at
 * ties; bench_gpu compares the default model's greedy tokens there. */
#define EQ_PROMPT 12
#define EQ_MAX_STEPS 20

/* Greedy decoding after toks[0..EQ_PROMPT) for `steps` tokens: the chosen
 * tokens into toks, each step's logits into logits; returns the vocabulary
 * size. */
static int greedy_logits(enum backend_kind be, const char *path, int steps, int32_t *toks,
			 float *logits, int n_vocab_cap)
{
	struct smk_err err = { 0 };
	struct engine *e;
	struct engine_opts eo = { .model_path = path, .n_ctx = MAX_SEQ, .n_batch = MAX_SEQ,
				  .max_logits = 1, .n_threads = 1, .no_tokenizer = true,
				  .backend = be };
	ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s: %s", path, err.msg);
	const int nv = e->model->hp.n_vocab;
	ck_assert_int_le(nv, n_vocab_cap);
	struct kvcache *kv;
	ck_assert_msg(kvcache_new(&kv, e->model, e->n_ctx, e->be, &err) == 0, "%s", err.msg);
	const float *lg;
	ck_assert_msg(forward_run(e->fwd, kv, toks, EQ_PROMPT, 1, &lg, &err) == 0, "%s", err.msg);
	for (int s = 0; s < steps; s++) {
		memcpy(logits + (size_t)s * nv, lg, sizeof(float) * (size_t)nv);
		int best = 0;
		for (int v = 1; v < nv; v++)
			if (lg[v] > lg[best])
				best = v;
		toks[EQ_PROMPT + s] = best;
		if (s + 1 < steps)
			ck_assert_msg(forward_run(e->fwd, kv, &toks[EQ_PROMPT + s], 1, 1, &lg, &err) == 0,
				      "%s", err.msg);
	}
	kvcache_free(kv);
	engine_close(e);
	return nv;
}

/* env: where the file is (SMOKE_MODEL: the path itself).  The default
 * model takes ~15 s a step under the emulator: a short run. */
static const struct {
	const char *env, *file;
	int steps;
} eq_models[] = {
	{ "SMOKE_MODEL", NULL, 3 },
	{ "SMOKE_TEST_MODELS", "tiny-llama-spm.gguf", 20 },
	{ "SMOKE_TEST_MODELS", "tiny-qwen2.gguf", 20 },
};

START_TEST(test_cuda_emu_equals_cpu_quantised)
{
	const char *where = getenv(eq_models[_i].env);
	char path[4096];
	if (eq_models[_i].file)
		snprintf(path, sizeof(path), "%s/%s", where ? where : "", eq_models[_i].file);
	else
		snprintf(path, sizeof(path), "%s", where ? where : "");
	const int steps = eq_models[_i].steps;
	struct backend *probe;
	struct backend_limits lim = { .max_cols = 64, .max_rows = 1, .max_ctx = 16, .max_heads = 1 };
	struct smk_err err = { 0 };
	if (!where || access(path, R_OK)) {
		printf("SKIP %s: not found (%s; scripts/setup fetches the models)\n", path,
		       eq_models[_i].env);
		return;
	}
	if (backend_cudaemu_new(&probe, &lim, NULL, &err)) {
		printf("SKIP %s on the CUDA emulator: %s\n", path, err.msg);
		return;
	}
	backend_free(probe);
	enum { CAP = 1 << 18 };
	int32_t tc[EQ_PROMPT + EQ_MAX_STEPS], tg[EQ_PROMPT + EQ_MAX_STEPS];
	for (int i = 0; i < EQ_PROMPT; i++)
		tc[i] = tg[i] = 1 + 37 * i % 200;
	float *lc = malloc(sizeof(float) * (size_t)CAP * (size_t)steps);
	float *lgp = malloc(sizeof(float) * (size_t)CAP * (size_t)steps);
	ck_assert(lc && lgp);
	qdot_force_scalar(true);
	const int nv = greedy_logits(BACKEND_CPU, path, steps, tc, lc, CAP);
	qdot_force_scalar(false);
	ck_assert_int_eq(greedy_logits(BACKEND_CUDAEMU, path, steps, tg, lgp, CAP), nv);
	double worst = 0;
	int same = 0, first_diff = -1;
	for (int s = 0; s < steps; s++) {
		same += tc[EQ_PROMPT + s] == tg[EQ_PROMPT + s];
		for (int v = 0; v < nv; v++) {
			const double d = fabs((double)lc[(size_t)s * nv + v] - lgp[(size_t)s * nv + v]);
			if (d > 0 && first_diff < 0)
				first_diff = s;
			worst = fmax(worst, d);
		}
	}
	const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	printf("%-28s cuda-emu vs cpu (scalar kernels): greedy %d/%d equal, logits %s (max |diff| %.3g, first at step %d)\n",
	       name, same, steps, worst == 0 ? "bit-identical" : "DIFFER", worst, first_diff);
	ck_assert_msg(same == steps, "%s: greedy tokens equal at %d of %d steps", name, same, steps);
	ck_assert_msg(worst == 0, "%s: logits differ by up to %g, from step %d", name, worst,
		      first_diff);
	free(lc);
	free(lgp);
}
END_TEST

/* Which backend engine_open picks, and what it says about it. */
START_TEST(test_backend_choice)
{
	const char *dir = case_dir("llama-f32");
	struct smk_err err = { 0 };
	struct engine *e;
	struct engine_opts eo = { .model_path = dir, .n_ctx = MAX_SEQ, .n_batch = 8,
				  .n_threads = 1, .no_tokenizer = true };
	unsetenv("SMOKE_BACKEND");
	eo.num_gpus = 0;
	ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(e->kind, BACKEND_CPU);
	ck_assert_msg(strstr(e->backend_note, "num_gpus = 0"), "%s", e->backend_note);
	engine_close(e);

	/* A GPU is used when one is usable; otherwise the note says why not. */
	char why[200];
	const bool gpu = cuda_probe(why, sizeof(why)) > 0;
	eo.num_gpus = 1;
	ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(e->kind, gpu ? BACKEND_CUDA : BACKEND_CPU);
	if (!gpu)
		ck_assert_msg(strstr(e->backend_note, "cpu backend (") &&
			      strstr(e->backend_note, why), "%s / %s", e->backend_note, why);
	engine_close(e);

	/* The diagnostic override: a bad value is named, cpu wins over a GPU. */
	setenv("SMOKE_BACKEND", "tpu", 1);
	ck_assert_int_eq(engine_open(&e, &eo, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "SMOKE_BACKEND") && strstr(err.msg, "tpu"), "%s", err.msg);
	setenv("SMOKE_BACKEND", "cpu", 1);
	ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(e->kind, BACKEND_CPU);
	engine_close(e);
	unsetenv("SMOKE_BACKEND");
}
END_TEST

/* memory.gpu_memory with a device backend holds the KV cache and the
 * activations too: what is left is the device tier's budget, and a budget
 * that cannot hold the first two is refused naming the three sizes. */
START_TEST(test_gpu_memory_split)
{
	struct backend *probe;
	struct backend_limits lim = { .max_cols = 64, .max_rows = 1, .max_ctx = 16, .max_heads = 1 };
	struct smk_err err = { 0 };
	if (backend_cudaemu_new(&probe, &lim, NULL, &err)) {
		printf("SKIP gpu_memory split: %s\n", err.msg);
		return;
	}
	backend_free(probe);
	const char *dir = case_dir("llama-f32");
	struct wstore_opts wo;
	wstore_opts_default(&wo);
	wo.check_budgets = true;
	wo.dev_budget = 4096;
	struct engine *e;
	struct engine_opts eo = { .model_path = dir, .n_ctx = MAX_SEQ, .n_batch = 8, .max_logits = 2,
				  .n_threads = 1, .no_tokenizer = true, .weights = &wo,
				  .backend = BACKEND_CUDAEMU };
	ck_assert_int_eq(engine_open(&e, &eo, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "memory.gpu_memory") && strstr(err.msg, "KV cache"), "%s",
		      err.msg);

	struct model *m;
	ck_assert_msg(model_load(&m, dir, &err) == 0, "%s", err.msg);
	const uint64_t kv = kvcache_bytes(m, MAX_SEQ), w = m->weight_bytes;
	model_free(m);
	wo.dev_budget = kv + w / 2 + (1u << 20);
	ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(e->gpu_kv, kv);
	ck_assert_uint_gt(e->gpu_scratch, 0);
	ck_assert_uint_eq(e->gpu_weights + e->gpu_kv + e->gpu_scratch, wo.dev_budget);
	struct wstore_stats st;
	wstore_get_stats(e->ws, &st);
	ck_assert_uint_le(st.tier[WSTORE_TIER_DEV].budget, e->gpu_weights);
	ck_assert(st.dev_real); /* the emulated device tier, not the stand-in */
	engine_close(e);
}
END_TEST

/* Round trips of the conversions against each dtype's precision: F16 has an
 * 11-bit significand (relative error <= 2^-11 after round-to-nearest), BF16
 * 8 bits (2^-8); Q8_0 stores q = round(x / d) with d = amax / 127 per block
 * of 32, so |x - q d| <= d / 2 plus d's own fp16 rounding (d * 2^-11 * 127). */
START_TEST(test_convert_round_trip)
{
	enum { N = 4096 };
	static float x[N], back[N];
	static uint8_t buf[N * 4];
	unsigned s = 12345;
	for (int i = 0; i < N; i++) {
		s = s * 1103515245u + 12345u;
		x[i] = ((float)(s >> 8) / (float)(1u << 24) - 0.5f) * (i % 7 ? 2.0f : 300.0f);
	}
	struct { uint32_t to; double rel; } fl[] = { { QTYPE_F16, 1.0 / 2048 }, { QTYPE_BF16, 1.0 / 256 } };
	for (int k = 0; k < 2; k++) {
		ck_assert_int_eq(convert_rows(QTYPE_F32, x, fl[k].to, buf, N), 0);
		ck_assert_int_eq(convert_rows(fl[k].to, buf, QTYPE_F32, back, N), 0);
		for (int i = 0; i < N; i++)
			ck_assert_msg(fabs(back[i] - x[i]) <= fl[k].rel * fabs(x[i]) + 1e-30,
				      "%s: %g -> %g", qtype_name(fl[k].to), x[i], back[i]);
	}
	ck_assert_int_eq(convert_rows(QTYPE_F32, x, QTYPE_Q8_0, buf, N), 0);
	ck_assert_int_eq(qtype_dequant_row(QTYPE_Q8_0, buf, back, N), 0);
	for (int b = 0; b < N / 32; b++) {
		float amax = 0;
		for (int j = 0; j < 32; j++)
			amax = fmaxf(amax, fabsf(x[b * 32 + j]));
		double d = amax / 127.0, tol = d / 2 + d * 127.0 / 2048;
		for (int j = 0; j < 32; j++)
			ck_assert_msg(fabs(back[b * 32 + j] - x[b * 32 + j]) <= tol * 1.0001,
				      "q8_0 block %d: %g -> %g (tol %g)", b, x[b * 32 + j],
				      back[b * 32 + j], tol);
	}
	/* Unconvertible pairs are refused, not garbled. */
	ck_assert_int_eq(convert_rows(QTYPE_Q8_0, buf, QTYPE_F32, back, 32), -EINVAL);
	ck_assert_int_eq(convert_rows(QTYPE_F32, x, QTYPE_Q8_0, buf, 31), -EINVAL);
}
END_TEST

/* The float32 models converted at load: logits stay close to the
 * unconverted model's (the transformers reference of the float32 file).
 * Tolerances: weights rounded to F16 (2^-11 relative) or BF16 (2^-8) move
 * these tiny models' logits (|logit| up to ~5) by about |logit| x precision
 * x sqrt(depth), on top of the fp16 KV cache's ~0.01; Q8_0 (per-block
 * scale, |error| <= amax/254) moves them most.  We allow 0.05 for F16, 0.3
 * for BF16 and 1.0 for Q8_0 (these tiny random models, where each of 32
 * inputs carries 1/32 of a dot product, are its worst case),
 * and report the figures.  Top-1 may flip only where the reference margin
 * is below the tolerance, so it is reported, not asserted, for BF16/Q8_0. */
START_TEST(test_default_dtype)
{
	static const struct { enum convert_dtype dt; double tol; } dts[] = {
		{ CONVERT_F16, 0.05 }, { CONVERT_BF16, 0.3 }, { CONVERT_Q8_0, 1.0 },
	};
	static const char *f32[] = { "llama-f32", "mistral-f32", "qwen2-f32", "gemma3-f32" };
	for (size_t a = 0; a < 4; a++)
		for (size_t k = 0; k < 3; k++) {
			struct result r = check_case(f32[a], dts[k].dt);
			printf("%-12s as %-8s top-1 %d/%d, max |logit error| %.3g (tolerance %.2g)\n",
			       f32[a], convert_dtype_name(dts[k].dt), r.agree, r.total, r.max_err,
			       dts[k].tol);
			ck_assert_msg(r.max_err <= dts[k].tol, "%s as %s: max logit error %g > %g",
				      f32[a], convert_dtype_name(dts[k].dt), r.max_err, dts[k].tol);
			if (dts[k].dt == CONVERT_F16)
				ck_assert_int_eq(r.agree, r.total);
		}
}
END_TEST

/* The weight hierarchy over a sharded directory (qwen2-f32: four
 * safetensors files, one descriptor each) and over weights converted at
 * load (q8_0: bytes held in memory, not in a file): with budgets far below
 * the model, the logits are bit-identical to the resident store's (the
 * same kernels read the same bytes, wherever they were staged). */
START_TEST(test_tiered_sources)
{
	static const enum convert_dtype dts[] = { CONVERT_AUTO, CONVERT_Q8_0 };
	const char *dir = case_dir("qwen2-f32");
	int32_t seq[24];
	for (int i = 0; i < 24; i++)
		seq[i] = (i * 37 + 11) % 336;  /* the second reference sequence */
	for (int k = 0; k < 2; k++) {
		struct engine *e = open_engine(dir, dts[k]);
		int nv = e->model->hp.n_vocab;
		uint64_t total = e->model->weight_bytes;
		float *want = malloc(sizeof(float) * 24 * (size_t)nv);
		float *got = malloc(sizeof(float) * 24 * (size_t)nv);
		ck_assert(want && got);
		run_seq(e, seq, 24, want);
		engine_close(e);

		struct wstore_opts wo;
		wstore_opts_default(&wo);
		wo.ram_budget = total / 2;
		wo.dev_budget = total / 3;
		wo.check_budgets = true;
		e = open_engine_ws(dir, dts[k], &wo);
		run_seq(e, seq, 24, got);
		struct wstore_stats st;
		wstore_get_stats(e->ws, &st);
		printf("qwen2-f32 (%s) tiered: %llu weight bytes, ram %llu/%llu dev %llu/%llu peak, %llu bytes read into RAM\n",
		       convert_dtype_name(dts[k]), (unsigned long long)total,
		       (unsigned long long)st.tier[WSTORE_TIER_RAM].peak,
		       (unsigned long long)st.tier[WSTORE_TIER_RAM].budget,
		       (unsigned long long)st.tier[WSTORE_TIER_DEV].peak,
		       (unsigned long long)st.tier[WSTORE_TIER_DEV].budget,
		       (unsigned long long)st.tier[WSTORE_TIER_RAM].bytes_in);
		/* Every unit went through the half-size RAM tier (whether a
		 * demand load or the prefetcher brought it there first: the
		 * prefetcher may start before the first acquire, so counting
		 * misses would be a race) and some had to leave it. */
		ck_assert_uint_ge(st.tier[WSTORE_TIER_RAM].bytes_in, total);
		ck_assert_uint_gt(st.tier[WSTORE_TIER_RAM].evictions, 0);
		/* Row reads (device backends' embedding lookups): the stored
		 * bytes of the last rows of the last shard, from the file (or
		 * the converted copy), and a range past the end refused. */
		const struct model *m = e->model;
		const int sb = m->n_emb_blocks - 1;
		const struct wtensor *tab = &m->blocks[sb].t[EMB_TOKEN];
		uint8_t rows[4096];
		ck_assert_uint_le(2 * tab->row_bytes, sizeof(rows));
		struct smk_err rerr = { 0 };
		ck_assert_msg(wstore_read_rows(e->ws, sb, EMB_TOKEN, tab->ne1 - 2, 2, rows, &rerr) == 0,
			      "%s", rerr.msg);
		ck_assert(memcmp(rows, wtensor_row(tab, tab->ne1 - 2), 2 * tab->row_bytes) == 0);
		ck_assert_int_eq(wstore_read_rows(e->ws, sb, EMB_TOKEN, tab->ne1 - 1, 2, rows, &rerr),
				 -ERANGE);
		ck_assert_msg(strstr(rerr.msg, "outside"), "%s", rerr.msg);
		ck_assert(memcmp(want, got, sizeof(float) * 24 * (size_t)nv) == 0);
		engine_close(e);
		free(want);
		free(got);
	}
}
END_TEST

/* Bad config.json values: each variant of a good fixture's config is
 * refused with a message naming the file and what was wrong, and nothing
 * is left half-loaded (the good model still loads afterwards). */
struct bad_cfg {
	const char *base;          /* fixture the variant starts from */
	const char *key;           /* key to set (NULL: raw text below) */
	const char *json;          /* its new value as JSON, or NULL to delete it */
	const char *want;          /* substring the message must contain */
};

static const struct bad_cfg bad_cfgs[] = {
	{ "llama-f32", "architectures", NULL, "architectures" },
	{ "llama-f32", "architectures", "[\"BertModel\"]", "'BertModel' is not supported" },
	{ "llama-f32", "hidden_size", "\"32\"", "'hidden_size' must be an integer" },
	{ "llama-f32", "num_hidden_layers", "0", "'num_hidden_layers' is 0" },
	{ "llama-f32", "rms_norm_eps", "-1", "rms_norm_eps" },
	{ "llama-f32", "rope_parameters", "{\"rope_type\": \"yarn\", \"rope_theta\": 10000.0, \"factor\": 2.0}",
	  "'yarn' is not supported" },
	{ "llama-f32", "rope_parameters", "[1]", "'rope_parameters' must be an object" },
	{ "llama-f32", "mlp_bias", "true", "'mlp_bias' is set" },
	{ "llama-f32", "hidden_act", "\"relu\"", "activation 'relu'" },
	{ "llama-f32", "num_hidden_layers", "3", "blk.2.attn_norm.weight' is missing" },
	{ "llama-f32", "num_hidden_layers", "1", "model.layers.1." },
	{ "llama-f32", "head_dim", "8", "blk.0.attn_q.weight' has shape" },
	{ "llama-f32", "tie_word_embeddings", "\"yes\"", "'tie_word_embeddings' must be a boolean" },
	{ "llama-f16", "rope_scaling", "{\"type\": \"dynamic\", \"factor\": 2.0}", "'dynamic' is not supported" },
	{ "mistral-f32", "sliding_window", "4096", "'sliding_window' is set" },
	{ "qwen2-f32", "use_sliding_window", "true", "'use_sliding_window' is set" },
	{ "gemma3-f32", "final_logit_softcapping", "30.0", "'final_logit_softcapping' is set" },
	{ "gemma3-f32", "query_pre_attn_scalar", "256", "query_pre_attn_scalar" },
	{ "gemma3-f32", "layer_types", "[\"full_attention\"]", "'layer_types' must be an array of 6" },
	{ "gemma3-f32", "sliding_window", NULL, "'sliding_window' is missing" },
	{ "gemma3-f16", "rope_local_base_freq", "50000.0", "rope theta 50000" },
	{ "gemma3-f32", NULL, "{\"architectures\": [\"Gemma3ForCausalLM\"],", "config.json: line" },
};

/* A scratch directory with the fixture's files linked in and config.json
 * replaced by the variant. */
static const char *make_variant(const struct bad_cfg *b, char *dir, size_t cap)
{
	snprintf(dir, cap, "/tmp/smoke-hf-bad-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char src[4096];
	snprintf(src, sizeof(src), "%s", case_dir(b->base));
	DIR *d = opendir(src);
	ck_assert_ptr_nonnull(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !strcmp(de->d_name, "config.json"))
			continue;
		char from[8192], to[8192];
		snprintf(from, sizeof(from), "%s/%s", src, de->d_name);
		snprintf(to, sizeof(to), "%s/%s", dir, de->d_name);
		char *abs = realpath(from, NULL);
		ck_assert_ptr_nonnull(abs);
		ck_assert_int_eq(symlink(abs, to), 0);
		free(abs);
	}
	closedir(d);
	char cfg[8192];
	snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
	FILE *f = fopen(cfg, "w");
	ck_assert_ptr_nonnull(f);
	if (!b->key) {
		fputs(b->json, f);
	} else {
		char orig[8192];
		snprintf(orig, sizeof(orig), "%s/config.json", src);
		json_t *root = json_load_file(orig, 0, NULL);
		ck_assert_ptr_nonnull(root);
		if (b->json) {
			json_error_t je;
			json_t *v = json_loads(b->json, JSON_DECODE_ANY, &je);
			ck_assert_msg(v, "%s: %s", b->json, je.text);
			json_object_set_new(root, b->key, v);
		} else {
			json_object_del(root, b->key);
		}
		json_dumpf(root, f, JSON_INDENT(1));
		json_decref(root);
	}
	fclose(f);
	return dir;
}

static void remove_variant(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char p[8192];
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

START_TEST(test_bad_config)
{
	const struct bad_cfg *b = &bad_cfgs[_i];
	char dir[64];
	make_variant(b, dir, sizeof(dir));
	struct smk_err err = { 0 };
	struct model *m = NULL;
	int rc = model_load(&m, dir, &err);
	remove_variant(dir);
	ck_assert_msg(rc < 0, "%s %s=%s: loaded", b->base, b->key, b->json);
	ck_assert_ptr_null(m);
	ck_assert_msg(strstr(err.msg, b->want) && strstr(err.msg, dir),
		      "%s %s=%s: message '%s' lacks '%s' or the path", b->base, b->key, b->json,
		      err.msg, b->want);
}
END_TEST

START_TEST(test_not_a_model_dir)
{
	struct smk_err err = { 0 };
	struct model *m = NULL;
	char dir[] = "/tmp/smoke-hf-empty-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	int rc = model_load(&m, dir, &err);
	rmdir(dir);
	ck_assert_int_lt(rc, 0);
	ck_assert_msg(strstr(err.msg, "config.json"), "%s", err.msg);
}
END_TEST

/* safetensors allows integer tensors; a model weight cannot be one. */
START_TEST(test_integer_weights)
{
	char dir[] = "/tmp/smoke-hf-int-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char p[256], src[4200];
	snprintf(src, sizeof(src), "%s/config.json", case_dir("llama-f32"));
	snprintf(p, sizeof(p), "%s/config.json", dir);
	char *abs = realpath(src, NULL);
	ck_assert_ptr_nonnull(abs);
	ck_assert_int_eq(symlink(abs, p), 0);
	free(abs);
	const char *hdr = "{\"model.embed_tokens.weight\":{\"dtype\":\"I32\",\"shape\":[320,32],"
			  "\"data_offsets\":[0,40960]}}";
	uint64_t hl = (strlen(hdr) + 7) / 8 * 8;
	snprintf(p, sizeof(p), "%s/model.safetensors", dir);
	FILE *f = fopen(p, "wb");
	ck_assert_ptr_nonnull(f);
	fwrite(&hl, 8, 1, f);
	fprintf(f, "%-*s", (int)hl, hdr);
	for (int i = 0; i < 40960; i++)
		fputc(0, f);
	fclose(f);
	struct smk_err err = { 0 };
	struct model *m = NULL;
	int rc = model_load(&m, dir, &err);
	unlink(p);
	snprintf(p, sizeof(p), "%s/config.json", dir);
	unlink(p);
	rmdir(dir);
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(strstr(err.msg, "model.embed_tokens.weight' has dtype I32") &&
		      strstr(err.msg, "must be F32, F16 or BF16"), "%s", err.msg);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("hf_model");
	TCase *tc = tcase_create("hf_model");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_against_transformers, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_loop_test(tc, test_cuda_emu_against_transformers, 0,
			    (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_loop_test(tc, test_cuda_against_transformers, 0,
			    (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_loop_test(tc, test_cuda_emu_equals_cpu_quantised, 0,
			    (int)(sizeof(eq_models) / sizeof(eq_models[0])));
	tcase_add_test(tc, test_backend_choice);
	tcase_add_test(tc, test_gpu_memory_split);
	tcase_add_test(tc, test_convert_round_trip);
	tcase_add_test(tc, test_default_dtype);
	tcase_add_test(tc, test_tiered_sources);
	tcase_add_loop_test(tc, test_bad_config, 0, (int)(sizeof(bad_cfgs) / sizeof(bad_cfgs[0])));
	tcase_add_test(tc, test_not_a_model_dir);
	tcase_add_test(tc, test_integer_weights);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ck_run(suite());
}
