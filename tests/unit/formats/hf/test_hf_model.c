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
 * gpt-oss (GptOssForCausalLM: 4 layers, window 8, 6 experts top-3, YaRN
 * with truncate false) is more sensitive: the same fp16 rounding of
 * attention moves its logits by up to 0.070 (bf16 dense experts); emulating
 * that rounding in transformers moves them by 0.066 at the same rows, so
 * GPT_OSS_TOL = 0.1.  Its MXFP4 experts run as llama.cpp runs MXFP4 on the
 * CPU, against activations quantised to Q8_0 (8 bits per value): measured
 * 0.39, transformers with fp16 attention and Q8_0-rounded expert inputs
 * 0.41, so MXFP4_TOL = 0.6.  Top-1 must still agree everywhere, and the
 * converted MXFP4 values are compared exactly with transformers'
 * dequantiser (test_gpt_oss_mxfp4_values), so the loose logit tolerance
 * hides no layout mistake.
 * memory.default_dtype conversions are checked for round-trip accuracy
 * against the dtype's precision, and the converted models' logits against
 * the unconverted ones (tolerances stated at each check). */
#include <check.h>

#include "ck_main.h"
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compute/cpu/qdot.h"
#include "compute/cuda/cuda_backend.h"
#include "compute/cuda/cuda_probe.h"
#include "engine/engine.h"
#include "formats/safetensors.h"
#include "quant/convert.h"
#include "quant/qtype.h"
#include "util/fp16.h"

#define LOGIT_TOL 0.03
#define GPT_OSS_TOL 0.1
#define MXFP4_TOL 0.6
#define MAX_SEQ 64

static const char *cases[] = {
	"llama-f32", "llama-f16", "llama-bf16",
	"mistral-f32", "mistral-f16", "mistral-bf16",
	"qwen2-f32", "qwen2-f16", "qwen2-bf16",
	"gemma3-f32", "gemma3-f16", "gemma3-bf16",
	"gpt-oss-bf16", "gpt-oss-mxfp4",
};

static const char *case_dir(const char *name)
{
	static char path[4096];
	const char *dir = getenv("SMOKE_FIXTURES");
	snprintf(path, sizeof(path), "%s/hf-models/%s", dir ? dir : "tests/fixtures", name);
	return path;
}

static double case_tol(const char *name)
{
	if (!strcmp(name, "gpt-oss-mxfp4"))
		return MXFP4_TOL;
	return strncmp(name, "gpt-oss", 7) ? LOGIT_TOL : GPT_OSS_TOL;
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
	       r.total, r.max_err, case_tol(name));
	fflush(stdout);
	ck_assert_msg(r.agree == r.total, "%s: top-1 agrees at %d of %d positions", name, r.agree,
		      r.total);
	ck_assert_msg(r.max_err <= case_tol(name), "%s: max logit error %g > %g", name, r.max_err,
		      case_tol(name));
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
	       r.total, r.max_err, case_tol(name));
	ck_assert_msg(r.agree == r.total, "%s: top-1 agrees at %d of %d positions", name, r.agree,
		      r.total);
	ck_assert_msg(r.max_err <= case_tol(name), "%s: max logit error %g > %g", name, r.max_err,
		      case_tol(name));
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
		 * misses would be a race) and some had to leave it - but an
		 * untied embedding table, whose rows the lookups read alone
		 * (wstore_lookup_by_rows). */
		const struct model *mt = e->model;
		uint64_t acquired = total;
		if (mt->blocks[0].t[EMB_TOKEN].data != mt->blocks[model_head_block(mt, 0)].t[HEAD_OUTPUT].data)
			for (int b = 0; b < mt->n_emb_blocks; b++)
				acquired -= mt->blocks[b].t[EMB_TOKEN].nbytes;
		ck_assert_uint_lt(acquired, total);
		ck_assert_uint_ge(st.tier[WSTORE_TIER_RAM].bytes_in, acquired);
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
	{ "gpt-oss-bf16", "layer_types", "[\"full_attention\", \"sliding_attention\", \"full_attention\", "
	  "\"sliding_attention\"]", "layer_types[0] is 'full_attention'" },
	{ "gpt-oss-bf16", "swiglu_limit", "10.0", "swiglu_limit 10 is not supported" },
	{ "gpt-oss-bf16", "sliding_window", NULL, "'sliding_window' is missing" },
	{ "gpt-oss-bf16", "rope_parameters", "{\"rope_type\": \"yarn\", \"rope_theta\": 150000.0, "
	  "\"factor\": 32.0, \"original_max_position_embeddings\": 4096, \"attention_factor\": 1.5}",
	  "'attention_factor' is set" },
	{ "gpt-oss-bf16", "num_local_experts", "8", "shape [6, 64, 64], expected [8, 64, 64]" },
	{ "gpt-oss-mxfp4", "quantization_config", "{\"quant_method\": \"gptq\"}",
	  "quant_method 'gptq' is not supported" },
	{ "gpt-oss-mxfp4", "intermediate_size", "64", "shape [6, 64, 2, 16], expected [6, 128, 2, 16]" },
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

/* rm -r of a scratch folder of plain files and folders. */
static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char p[8192];
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (unlink(p))
			remove_tree(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

/* ---- gpt-oss ------------------------------------------------------------
 * The experts of a gpt-oss directory are converted into a cache file
 * (formats/hf/hf_gpt_oss.h); the checks above compare its logits with
 * transformers'.  Here: the converted bytes value by value, the cache's
 * reuse and invalidation, and broken directories refused by name. */

/* Row r of expert e's matrix `role` in layer il, as floats. */
static void expert_row(const struct model *m, int il, int e, int role, int64_t r, float *out)
{
	const struct wblock *b = &m->blocks[model_expert_block(m, il, e)];
	const struct wtensor *t = &b->t[role];
	ck_assert(b->has[role]);
	ck_assert_int_lt(r, t->ne1);
	const uint8_t *row = wtensor_row(t, r);
	if (t->type == QTYPE_MXFP4) {
		/* ggml's block: element j in the low nibble of qs[j], j + 16
		 * in its high nibble; value = doubled E2M1 * 2^(e-128) */
		for (int64_t k = 0; k < t->ne0 / 32; k++) {
			struct qtype_block_mxfp4 q;
			memcpy(&q, row + k * (int64_t)sizeof(q), sizeof(q));
			for (int j = 0; j < 16; j++) {
				out[k * 32 + j] = qtype_mxfp4_values[q.qs[j] & 15] * qtype_e8m0_half(q.e);
				out[k * 32 + j + 16] = qtype_mxfp4_values[q.qs[j] >> 4] * qtype_e8m0_half(q.e);
			}
		}
	} else if (t->type == QTYPE_F32) {
		memcpy(out, row, sizeof(float) * (size_t)t->ne0);
	} else {
		ck_assert_int_eq(t->type, QTYPE_BF16);
		for (int64_t i = 0; i < t->ne0; i++) {
			uint16_t u;
			memcpy(&u, row + 2 * i, 2);
			out[i] = bf16_to_fp32(u);
		}
	}
}

static int proj_role(const char *p)
{
	return !strcmp(p, "gate") ? LT_GATE : !strcmp(p, "up") ? LT_UP : LT_DOWN;
}

/* MXFP4: the converted blocks give exactly the values transformers'
 * dequantiser gives for the same checkpoint bytes (recorded by the
 * generator), so nibble order, scale and the gate/up split are right. */
START_TEST(test_gpt_oss_mxfp4_values)
{
	const char *dir = case_dir("gpt-oss-mxfp4");
	char ref_path[4200];
	snprintf(ref_path, sizeof(ref_path), "%s/reference.json", dir);
	json_t *ref = json_load_file(ref_path, 0, NULL);
	ck_assert_ptr_nonnull(ref);
	struct smk_err err = { 0 };
	struct model *m;
	ck_assert_msg(model_load(&m, dir, &err) == 0, "%s", err.msg);
	json_t *dq = json_object_get(ref, "dequant");
	ck_assert_int_ge((int)json_array_size(dq), 4);
	for (size_t i = 0; i < json_array_size(dq); i++) {
		json_t *c = json_array_get(dq, i);
		json_t *vals = json_object_get(c, "values");
		const char *proj = json_string_value(json_object_get(c, "proj"));
		float got[256];
		ck_assert_int_le((int)json_array_size(vals), 256);
		int e = (int)json_integer_value(json_object_get(c, "expert"));
		int64_t r = json_integer_value(json_object_get(c, "row"));
		const struct wtensor *t = &m->blocks[model_expert_block(m, 0, e)].t[proj_role(proj)];
		ck_assert_int_eq(t->type, QTYPE_MXFP4);
		ck_assert_int_eq(t->ne0, (int64_t)json_array_size(vals));
		expert_row(m, 0, e, proj_role(proj), r, got);
		for (size_t k = 0; k < json_array_size(vals); k++)
			ck_assert_msg(got[k] == (float)json_number_value(json_array_get(vals, k)),
				      "%s expert %d row %lld value %zu: %g, transformers %g", proj, e,
				      (long long)r, k, (double)got[k],
				      json_number_value(json_array_get(vals, k)));
	}
	model_free(m);
	json_decref(ref);
}
END_TEST

/* Dense: the converted rows are the checkpoint's columns (gate = even,
 * up = odd columns of gate_up_proj [E, H, 2I]; down = columns of
 * down_proj [E, I, H]), read here straight from the safetensors file. */
/* Element i of a BF16 or F32 safetensors tensor. */
static float st_value(const struct st_tensor *t, int64_t i)
{
	if (t->dtype == ST_F32) {
		float f;
		memcpy(&f, (const uint8_t *)t->data + 4 * i, 4);
		return f;
	}
	uint16_t u;
	memcpy(&u, (const uint8_t *)t->data + 2 * i, 2);
	return bf16_to_fp32(u);
}

static void check_dense_values(const char *dir, enum st_dtype dt)
{
	char st_path[4200];
	snprintf(st_path, sizeof(st_path), "%s/model.safetensors", dir);
	struct smk_err err = { 0 };
	struct st_file *f;
	ck_assert_msg(st_open(&f, st_path, &err) == 0, "%s", err.msg);
	struct model *m;
	ck_assert_msg(model_load(&m, dir, &err) == 0, "%s", err.msg);
	const int64_t H = m->hp.n_embd, I = m->hp.n_ff_exp, E = m->hp.n_expert;
	for (int il = 0; il < m->hp.n_layer; il++) {
		char name[96];
		snprintf(name, sizeof(name), "model.layers.%d.mlp.experts.gate_up_proj", il);
		const struct st_tensor *gu = st_find(f, name);
		snprintf(name, sizeof(name), "model.layers.%d.mlp.experts.down_proj", il);
		const struct st_tensor *dn = st_find(f, name);
		ck_assert(gu && dn && gu->dtype == dt && dn->dtype == dt);
		for (int e = 0; e < E; e++) {
			float row[256];
			for (int64_t r = 0; r < I; r++)
				for (int p = 0; p < 2; p++) {
					expert_row(m, il, e, p ? LT_UP : LT_GATE, r, row);
					for (int64_t h = 0; h < H; h++) {
						ck_assert(row[h] == st_value(gu, (e * H + h) * 2 * I + 2 * r + p));
					}
				}
			for (int64_t r = 0; r < H; r++) {
				expert_row(m, il, e, LT_DOWN, r, row);
				for (int64_t i = 0; i < I; i++) {
					ck_assert(row[i] == st_value(dn, (e * I + i) * H + r));
				}
			}
		}
	}
	model_free(m);
	st_close(f);
}

START_TEST(test_gpt_oss_dense_values)
{
	check_dense_values(case_dir("gpt-oss-bf16"), ST_BF16);
}
END_TEST

/* The cache file is a tier-0 source like the shards: with RAM and device
 * budgets far below the model, experts are read from it (pread by file
 * offset, not the handle's mapping) and the logits are bit-identical to
 * the resident store's. */
START_TEST(test_gpt_oss_tiered)
{
	const char *dir = case_dir(_i ? "gpt-oss-mxfp4" : "gpt-oss-bf16");
	int32_t seq[24];
	for (int i = 0; i < 24; i++)
		seq[i] = (i * 37 + 11) % 336;
	struct engine *e = open_engine(dir, CONVERT_AUTO);
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
	e = open_engine_ws(dir, CONVERT_AUTO, &wo);
	run_seq(e, seq, 24, got);
	struct wstore_stats st;
	wstore_get_stats(e->ws, &st);
	printf("%s tiered: %llu weight bytes, %llu bytes read into RAM, %llu evictions\n",
	       _i ? "gpt-oss-mxfp4" : "gpt-oss-bf16", (unsigned long long)total,
	       (unsigned long long)st.tier[WSTORE_TIER_RAM].bytes_in,
	       (unsigned long long)st.tier[WSTORE_TIER_RAM].evictions);
	ck_assert_uint_gt(st.tier[WSTORE_TIER_RAM].evictions, 0);
	ck_assert(memcmp(want, got, sizeof(float) * 24 * (size_t)nv) == 0);
	engine_close(e);
	free(want);
	free(got);
}
END_TEST

/* OpenAI's published config.json is transformers-4 style: rope_theta plus
 * rope_scaling (yarn, truncate false) and a few keys of its own
 * (experts_per_token, initial_context_length).  The fixture's weights with
 * such a config give bit-identical logits. */
START_TEST(test_gpt_oss_legacy_config)
{
	const char *src = case_dir("gpt-oss-mxfp4");
	char dir[] = "/tmp/smoke-hf-oss-legacy-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	static const char *files[] = { "model.safetensors", "tokenizer.json", "tokenizer_config.json" };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char from[4300], to[256];
		snprintf(from, sizeof(from), "%s/%s", src, files[i]);
		snprintf(to, sizeof(to), "%s/%s", dir, files[i]);
		char *abs = realpath(from, NULL);
		ck_assert_ptr_nonnull(abs);
		ck_assert_int_eq(symlink(abs, to), 0);
		free(abs);
	}
	char cfg[4300];
	snprintf(cfg, sizeof(cfg), "%s/config.json", src);
	json_t *c = json_load_file(cfg, 0, NULL);
	ck_assert_ptr_nonnull(c);
	json_t *rp = json_deep_copy(json_object_get(c, "rope_parameters"));
	json_object_set(c, "rope_theta", json_object_get(rp, "rope_theta"));
	json_object_del(rp, "rope_theta");
	json_object_set_new(c, "rope_scaling", rp);
	json_object_del(c, "rope_parameters");
	json_object_set_new(c, "experts_per_token", json_integer(3));
	json_object_set_new(c, "initial_context_length", json_integer(4096));
	snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
	ck_assert_int_eq(json_dump_file(c, cfg, JSON_INDENT(1)), 0);
	json_decref(c);

	int32_t seq[24];
	for (int i = 0; i < 24; i++)
		seq[i] = (i * 37 + 11) % 336;
	struct engine *e = open_engine(src, CONVERT_AUTO);
	int nv = e->model->hp.n_vocab;
	float *want = malloc(sizeof(float) * 24 * (size_t)nv);
	float *got = malloc(sizeof(float) * 24 * (size_t)nv);
	ck_assert(want && got);
	run_seq(e, seq, 24, want);
	engine_close(e);
	e = open_engine(dir, CONVERT_AUTO);
	ck_assert(e->model->hp.yarn_unrounded && e->model->hp.yarn_ext_factor == 1.0f);
	run_seq(e, seq, 24, got);
	engine_close(e);
	remove_tree(dir);
	ck_assert(memcmp(want, got, sizeof(float) * 24 * (size_t)nv) == 0);
	free(want);
	free(got);
}
END_TEST

/* A copy of a fixture's safetensors file with one tensor edited: dropped,
 * given another dtype or shape (of the same byte size), or one byte of its
 * data set.  The file is rebuilt (offsets recomputed) so that it is a
 * valid safetensors file: what is wrong is only what the edit made. */
struct st_edit {
	const char *base, *tensor;
	bool drop;
	bool widen;                /* every BF16 tensor becomes F32 (same values) */
	const char *dtype;         /* NULL: unchanged */
	int n_shape;               /* 0: unchanged */
	int64_t shape[4];
	int64_t poke_at;           /* -1: no byte set */
	int poke;
	const char *want;          /* the message must say this */
};

struct st_ent {
	const char *name;
	json_t *v;
	uint64_t b, e;
};

static int ent_cmp(const void *x, const void *y)
{
	const struct st_ent *p = x, *q = y;
	return p->b < q->b ? -1 : p->b > q->b ? 1 : p->e < q->e ? -1 : p->e > q->e;
}

/* Only tensors number part, part + n_parts, ... (in file order) go into
 * out_path: a shard of the file (part 0 of 1: all of it). */
static void write_st_part(const struct st_edit *ed, const char *out_path, size_t part, size_t n_parts)
{
	char src[4200];
	snprintf(src, sizeof(src), "%s/model.safetensors", case_dir(ed->base));
	FILE *f = fopen(src, "rb");
	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *all = malloc((size_t)size), *out = malloc(2 * (size_t)size);
	ck_assert(all && out && fread(all, 1, (size_t)size, f) == (size_t)size);
	fclose(f);
	uint64_t hl;
	memcpy(&hl, all, 8);
	json_t *hdr = json_loadb((const char *)all + 8, hl, 0, NULL);
	ck_assert_ptr_nonnull(hdr);
	const uint8_t *data = all + 8 + hl;
	size_t n = 0;
	struct st_ent ents[512];
	const char *key;
	json_t *v;
	json_object_foreach(hdr, key, v) {
		if (!strcmp(key, "__metadata__"))
			continue;
		ck_assert_uint_lt(n, 512);
		json_t *offs = json_object_get(v, "data_offsets");
		ents[n++] = (struct st_ent){ key, v, (uint64_t)json_integer_value(json_array_get(offs, 0)),
					     (uint64_t)json_integer_value(json_array_get(offs, 1)) };
	}
	qsort(ents, n, sizeof(ents[0]), ent_cmp);
	json_t *nh = json_object();
	uint64_t pos = 0;
	bool found = false;
	for (size_t i = 0; i < n; i++) {
		if (i % n_parts != part)
			continue;
		const bool it = !strcmp(ents[i].name, ed->tensor);
		found |= it;
		if (it && ed->drop)
			continue;
		json_t *c = json_deep_copy(ents[i].v);
		if (it && ed->dtype)
			json_object_set_new(c, "dtype", json_string(ed->dtype));
		if (it && ed->n_shape) {
			json_t *sh = json_array();
			for (int d = 0; d < ed->n_shape; d++)
				json_array_append_new(sh, json_integer(ed->shape[d]));
			json_object_set_new(c, "shape", sh);
		}
		uint64_t len = ents[i].e - ents[i].b;
		if (ed->widen && !strcmp(json_string_value(json_object_get(c, "dtype")), "BF16")) {
			json_object_set_new(c, "dtype", json_string("F32"));
			for (uint64_t k = 0; k < len / 2; k++) {
				uint16_t u;
				memcpy(&u, data + ents[i].b + 2 * k, 2);
				const uint32_t w = (uint32_t)u << 16;
				memcpy(out + pos + 4 * k, &w, 4);
			}
			len *= 2;
		} else {
			memcpy(out + pos, data + ents[i].b, len);
		}
		if (it && ed->poke_at >= 0)
			out[pos + (uint64_t)ed->poke_at] = (uint8_t)ed->poke;
		json_t *no = json_array();
		json_array_append_new(no, json_integer((json_int_t)pos));
		json_array_append_new(no, json_integer((json_int_t)(pos + len)));
		json_object_set_new(c, "data_offsets", no);
		json_object_set_new(nh, ents[i].name, c);
		pos += len;
	}
	ck_assert_msg(found || n_parts > 1, "%s has no tensor %s", src, ed->tensor);
	char *text = json_dumps(nh, JSON_COMPACT);
	ck_assert_ptr_nonnull(text);
	uint64_t tl = strlen(text), padded = (tl + 7) / 8 * 8;
	FILE *o = fopen(out_path, "wb");
	ck_assert_ptr_nonnull(o);
	fwrite(&padded, 8, 1, o);
	fprintf(o, "%-*s", (int)padded, text);
	fwrite(out, 1, pos, o);
	fclose(o);
	free(text);
	json_decref(nh);
	json_decref(hdr);
	free(out);
	free(all);
}

static void write_st_variant(const struct st_edit *ed, const char *out_path)
{
	write_st_part(ed, out_path, 0, 1);
}

/* A scratch model directory: the fixture's files linked in, except
 * model.safetensors (the edited copy). */
static void make_st_dir(const struct st_edit *ed, char *dir, size_t cap)
{
	snprintf(dir, cap, "/tmp/smoke-hf-oss-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	static const char *files[] = { "config.json", "tokenizer.json", "tokenizer_config.json" };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char from[4300], to[256];
		snprintf(from, sizeof(from), "%s/%s", case_dir(ed->base), files[i]);
		snprintf(to, sizeof(to), "%s/%s", dir, files[i]);
		char *abs = realpath(from, NULL);
		ck_assert_ptr_nonnull(abs);
		ck_assert_int_eq(symlink(abs, to), 0);
		free(abs);
	}
	char st[256];
	snprintf(st, sizeof(st), "%s/model.safetensors", dir);
	write_st_variant(ed, st);
}

#define L0 "model.layers.0.mlp.experts."
#define L1 "model.layers.1.mlp.experts."
static const struct st_edit bad_st[] = {
	/* the sinks of a layer, the experts' biases: missing */
	{ "gpt-oss-bf16", "model.layers.2.self_attn.sinks", .drop = true, .poke_at = -1,
	  .want = "'blk.2.attn_sinks.weight' is missing" },
	{ "gpt-oss-mxfp4", "model.layers.1.self_attn.sinks", .drop = true, .poke_at = -1,
	  .want = "'blk.1.attn_sinks.weight' is missing" },
	{ "gpt-oss-bf16", L0 "down_proj_bias", .drop = true, .poke_at = -1,
	  .want = "'" L0 "down_proj_bias' is missing" },
	{ "gpt-oss-bf16", L1 "gate_up_proj", .drop = true, .poke_at = -1,
	  .want = "'" L1 "gate_up_proj' is missing (or MXFP4" },
	/* dense: a shape that is not [E, H, 2I], the same bytes */
	{ "gpt-oss-bf16", L1 "gate_up_proj", .n_shape = 3, .shape = { 6, 32, 128 }, .poke_at = -1,
	  .want = "shape [6, 32, 128], expected [6, 64, 64]" },
	{ "gpt-oss-bf16", L0 "down_proj", .dtype = "I16", .poke_at = -1,
	  .want = "dtype I16; dense expert weights must be F32, F16 or BF16" },
	/* MXFP4: scales that do not match the blocks, wrong dtypes, a
	 * missing half, a NaN scale */
	{ "gpt-oss-mxfp4", L1 "gate_up_proj_scales", .n_shape = 3, .shape = { 6, 32, 4 }, .poke_at = -1,
	  .want = "shape [6, 32, 4], expected [6, 64, 2] (one scale per block" },
	{ "gpt-oss-mxfp4", L0 "down_proj_blocks", .n_shape = 4, .shape = { 6, 32, 2, 16 }, .poke_at = -1,
	  .want = "shape [6, 32, 2, 16], expected [6, 64, 1, 16]" },
	{ "gpt-oss-mxfp4", L0 "gate_up_proj_blocks", .dtype = "I8", .poke_at = -1,
	  .want = "dtype I8; MXFP4 blocks and scales are U8" },
	{ "gpt-oss-mxfp4", L1 "down_proj_scales", .drop = true, .poke_at = -1,
	  .want = "its scales tensor '" L1 "down_proj_scales' is missing" },
	{ "gpt-oss-mxfp4", L0 "gate_up_proj_scales", .poke_at = 7, .poke = 0xFF,
	  .want = "scale 0xFF (NaN in the OCP MX format) at expert 0, row 3, block 1" },
};

START_TEST(test_gpt_oss_broken)
{
	const struct st_edit *ed = &bad_st[_i];
	char dir[64];
	make_st_dir(ed, dir, sizeof(dir));
	struct smk_err err = { 0 };
	struct model *m = NULL;
	int rc = model_load(&m, dir, &err);
	remove_tree(dir);
	ck_assert_msg(rc < 0, "%s %s: loaded", ed->base, ed->tensor);
	ck_assert_ptr_null(m);
	ck_assert_msg(strstr(err.msg, ed->want) && strstr(err.msg, dir),
		      "%s %s: message '%s' lacks '%s' or the path", ed->base, ed->tensor, err.msg,
		      ed->want);
}
END_TEST

/* The rebuilt copy itself is good (so the refusals above come from the
 * edits alone). */
START_TEST(test_gpt_oss_copy_loads)
{
	const struct st_edit ed = { "gpt-oss-mxfp4", L0 "down_proj_blocks", .poke_at = -1 };
	char dir[64];
	make_st_dir(&ed, dir, sizeof(dir));
	struct smk_err err = { 0 };
	struct model *m = NULL;
	int rc = model_load(&m, dir, &err);
	remove_tree(dir);
	ck_assert_msg(rc == 0, "%s", err.msg);
	model_free(m);
}
END_TEST

/* F32 dense experts (the 4-byte transpose) from a widened copy. */
START_TEST(test_gpt_oss_dense_f32)
{
	const struct st_edit ed = { "gpt-oss-bf16", L0 "down_proj", .widen = true, .poke_at = -1 };
	char dir[64];
	make_st_dir(&ed, dir, sizeof(dir));
	check_dense_values(dir, ST_F32);
	remove_tree(dir);
}
END_TEST

/* Sharded as the Hub serves gpt-oss-20b (an index and several files, a
 * layer's tensors spread over the shards): the same logits, bit for bit,
 * as the single file, with the shards and the cache as the sources. */
START_TEST(test_gpt_oss_sharded)
{
	const char *src = case_dir("gpt-oss-mxfp4");
	const struct st_edit ed = { "gpt-oss-mxfp4", L0 "down_proj_blocks", .poke_at = -1 };
	char dir[64];
	make_st_dir(&ed, dir, sizeof(dir));
	char p[256];
	snprintf(p, sizeof(p), "%s/model.safetensors", dir);
	unlink(p);
	json_t *wm = json_object();
	for (size_t k = 0; k < 3; k++) {
		char name[64];
		snprintf(name, sizeof(name), "model-%05zu-of-00003.safetensors", k + 1);
		snprintf(p, sizeof(p), "%s/%s", dir, name);
		write_st_part(&ed, p, k, 3);
		struct smk_err err = { 0 };
		struct st_file *f;
		ck_assert_msg(st_open(&f, p, &err) == 0, "%s", err.msg);
		for (uint64_t i = 0; i < st_n_tensors(f); i++)
			json_object_set_new(wm, st_tensor_at(f, i)->name, json_string(name));
		st_close(f);
	}
	json_t *idx = json_object();
	json_object_set_new(idx, "metadata", json_object());
	json_object_set_new(idx, "weight_map", wm);
	snprintf(p, sizeof(p), "%s/model.safetensors.index.json", dir);
	ck_assert_int_eq(json_dump_file(idx, p, JSON_INDENT(1)), 0);
	json_decref(idx);

	int32_t seq[24];
	for (int i = 0; i < 24; i++)
		seq[i] = (i * 37 + 11) % 336;
	struct engine *e = open_engine(src, CONVERT_AUTO);
	int nv = e->model->hp.n_vocab;
	float *want = malloc(sizeof(float) * 24 * (size_t)nv);
	float *got = malloc(sizeof(float) * 24 * (size_t)nv);
	ck_assert(want && got);
	run_seq(e, seq, 24, want);
	engine_close(e);
	e = open_engine(dir, CONVERT_AUTO);
	ck_assert_int_eq(gguf_n_sources(e->model->gguf), 4);   /* 3 shards + the cache */
	run_seq(e, seq, 24, got);
	engine_close(e);
	ck_assert(memcmp(want, got, sizeof(float) * 24 * (size_t)nv) == 0);
	remove_tree(dir);
	free(want);
	free(got);
}
END_TEST

/* The one .smkx file in cache/hf-convert: its name into name (cap bytes)
 * and its stat; 0 if there is none, else how many there are. */
static int cache_files(const char *cache, char *name, size_t cap, struct stat *st)
{
	char d[4200];
	snprintf(d, sizeof(d), "%s/hf-convert", cache);
	DIR *dd = opendir(d);
	int n = 0;
	struct dirent *de;
	while (dd && (de = readdir(dd))) {
		if (de->d_name[0] == '.')
			continue;
		n++;
		snprintf(name, cap, "%s/%s", d, de->d_name);
	}
	if (dd)
		closedir(dd);
	if (n == 1)
		ck_assert_int_eq(stat(name, st), 0);
	return n;
}

/* The cache: written once, reused while the shards are unchanged, rebuilt
 * (and the old file removed) when one changes or the file is damaged; a
 * cache folder that cannot be made is an error that says where. */
START_TEST(test_gpt_oss_cache)
{
	char cache[] = "/tmp/smoke-hf-cache-t-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(cache));
	setenv("SMOKE_CACHE", cache, 1);
	const struct st_edit ed = { "gpt-oss-mxfp4", L0 "down_proj_blocks", .poke_at = -1 };
	char dir[64];
	make_st_dir(&ed, dir, sizeof(dir));
	struct smk_err err = { 0 };
	struct model *m = NULL;
	char f1[4600], f2[4600];
	struct stat s1, s2;
	ck_assert_int_eq(cache_files(cache, f1, sizeof(f1), &s1), 0);
	ck_assert_msg(model_load(&m, dir, &err) == 0, "%s", err.msg);
	model_free(m);
	ck_assert_int_eq(cache_files(cache, f1, sizeof(f1), &s1), 1);
	ck_assert_msg(strstr(f1, "/hf-convert/gpt-oss-") && strstr(f1, ".smkx"), "%s", f1);

	/* reused: the same file, not rewritten */
	ck_assert_msg(model_load(&m, dir, &err) == 0, "%s", err.msg);
	model_free(m);
	ck_assert_int_eq(cache_files(cache, f2, sizeof(f2), &s2), 1);
	ck_assert_str_eq(f1, f2);
	ck_assert(s1.st_ino == s2.st_ino && s1.st_mtim.tv_sec == s2.st_mtim.tv_sec &&
		  s1.st_mtim.tv_nsec == s2.st_mtim.tv_nsec);

	/* a shard touched: a new file, the old one gone */
	char st[256];
	snprintf(st, sizeof(st), "%s/model.safetensors", dir);
	struct timespec ts[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
	ck_assert_int_eq(utimensat(AT_FDCWD, st, ts, 0), 0);
	ck_assert_msg(model_load(&m, dir, &err) == 0, "%s", err.msg);
	model_free(m);
	ck_assert_int_eq(cache_files(cache, f2, sizeof(f2), &s2), 1);
	ck_assert_str_ne(f1, f2);

	/* a damaged file: rebuilt under the same name */
	int fd = open(f2, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "XXXXXXXX", 8, 0), 8);
	close(fd);
	ck_assert_msg(model_load(&m, dir, &err) == 0, "%s", err.msg);
	model_free(m);
	ck_assert_int_eq(cache_files(cache, f1, sizeof(f1), &s1), 1);
	ck_assert_str_eq(f1, f2);
	char magic[8];
	fd = open(f1, O_RDONLY);
	ck_assert_int_eq(pread(fd, magic, 8, 0), 8);
	close(fd);
	ck_assert(!memcmp(magic, "SMKHFX01", 8));

	/* no cache folder possible: SMOKE_CACHE under a regular file */
	char bad[4300];
	snprintf(bad, sizeof(bad), "%s/model.safetensors/sub", dir);
	setenv("SMOKE_CACHE", bad, 1);
	ck_assert_int_lt(model_load(&m, dir, &err), 0);
	ck_assert_msg(strstr(err.msg, "cannot create the conversion cache folder") &&
		      strstr(err.msg, "SMOKE_CACHE"), "%s", err.msg);
	remove_tree(dir);
	remove_tree(cache);
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
	tcase_add_test(tc, test_gpt_oss_mxfp4_values);
	tcase_add_test(tc, test_gpt_oss_dense_values);
	tcase_add_loop_test(tc, test_gpt_oss_tiered, 0, 2);
	tcase_add_test(tc, test_gpt_oss_legacy_config);
	tcase_add_loop_test(tc, test_gpt_oss_broken, 0, (int)(sizeof(bad_st) / sizeof(bad_st[0])));
	tcase_add_test(tc, test_gpt_oss_copy_loads);
	tcase_add_test(tc, test_gpt_oss_dense_f32);
	tcase_add_test(tc, test_gpt_oss_sharded);
	tcase_add_test(tc, test_gpt_oss_cache);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	/* gpt-oss's converted experts go to $SMOKE_CACHE/hf-convert: a scratch
	 * folder for this run (the tests' children inherit it). */
	char cache[] = "/tmp/smoke-hf-cache-XXXXXX";
	if (!mkdtemp(cache))
		return EXIT_FAILURE;
	setenv("SMOKE_CACHE", cache, 1);
	int rc = ck_run(suite());
	remove_tree(cache);
	return rc;
}
