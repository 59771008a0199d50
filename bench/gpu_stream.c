/* gpu_stream.c - the CUDA backend's figures for scripts/gpu-check, from one
 * process and one run (issue 6):
 *
 *   bench_gpu [--model PATH] [-n N] [--ctx N] [--gpu-id N] [--fraction F]
 *             [--prompt TEXT] [--prefetch N] [--lookahead N] [--shard-mib N]
 *             [--prefill N] [--emu]
 *
 *  1. greedy tokens of the CPU backend (the reference) and its decode tok/s,
 *     and greedy tokens of the CPU backend with its scalar dot products
 *     (qdot_force_scalar: the block results summed in double, which the
 *     CUDA kernels reproduce to the last bit; the SIMD ones sum in float
 *     lanes, docs/cuda.md "Numerics");
 *  2. the CUDA backend with the whole model resident (memory.gpu_memory
 *     unset): greedy tokens, decode tok/s;
 *  3. the CUDA backend with memory.gpu_memory = F x the model's weight bytes
 *     (default a quarter; KV cache and activations come out of it too):
 *     greedy tokens, decode tok/s, the device tier's bytes per token and
 *     its achieved host->device bandwidth (device-timed copies);
 *  4. plain cudaMemcpyAsync from pinned memory, copies of the store's mean
 *     unit size, measured in the same process: the bound for 3's bandwidth;
 *  5. overlap: out-of-core time per token against max(copy time per token,
 *     resident compute time per token);
 *  6. with --prefill N: prefill tok/s of an N-token prompt on the CPU and
 *     on CUDA (resident) with the matrix-vector kernel only and with the
 *     tiled prefill kernel from 32 rows (where the tile kernel should start
 *     is this figure's question).
 *
 * Each decode figure covers one generation after a warm-up generation, from
 * its first token to its last.  The last line is "RESULT {json}" for
 * scripts/gpu-check.  Exit status: 0 when the three token sequences could
 * be produced (agreement is reported, not enforced here), 77 without a
 * GPU, 1 on any error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/cpu/qdot.h"
#include "compute/cuda/cuda_probe.h"
#include "engine/engine.h"

#define MAX_GEN 512

struct gopts {
	const char *path, *prompt;
	int n, ctx, gpu_id;
	double fraction;
	bool emu;          /* --emu: the emulated kernels, no GPU (checks this program) */
	int prefetch, lookahead;   /* runtime.prefetch_layers / smoke_test_layers (<0: default) */
	uint64_t shard_bytes;      /* table shards (0: default) */
	int prefill;               /* --prefill N: time N-token prompts (0: skip) */
};

struct grun {
	const char *name;
	int32_t ids[MAX_GEN];
	int n_ids;
	double tok_s, wall;
	int n_dec;
	struct wstore_stats a, b;    /* store statistics at the first and last token */
	struct wdev_times ta, tb;    /* the copy stream's, likewise (zero: no device tier) */
	uint64_t gpu_weights, gpu_kv, gpu_scratch;
	char note[320];
};

struct mark {
	struct engine *e;
	struct grun *r;
	double t_first;
	bool measuring;
};

static int on_token(void *ctx, const char *text, size_t len, int32_t token)
{
	struct mark *m = ctx;
	(void)text;
	(void)len;
	if (token < 0 || !m->measuring)
		return 0;
	if (m->r->n_ids == 0) {
		wstore_get_stats(m->e->ws, &m->r->a);
		if (m->e->wdev && m->e->wdev->times)
			m->e->wdev->times(m->e->wdev->ctx, &m->r->ta);
		m->t_first = smk_now();
	}
	if (m->r->n_ids < MAX_GEN)
		m->r->ids[m->r->n_ids++] = token;
	return 0;
}

/* The prompt's token ids (the peer is fed the same ids). */
static int32_t ids[256];
static size_t n_ids;

static int one_gen(struct engine *e, const struct gopts *go, struct mark *mk, struct smk_err *err)
{
	size_t n = 0;
	int rc = tokenizer_encode(e->tok, go->prompt, strlen(go->prompt), true, true, ids, 256, &n, err);
	if (rc)
		return rc;
	n_ids = n;
	struct kvcache *kv;
	struct sampler *s;
	struct sampler_params sp;
	sampler_params_default(&sp);
	sp.temperature = 0;
	if ((rc = kvcache_new(&kv, e->model, e->n_ctx, e->be, err)))
		return rc;
	if ((rc = sampler_new(&s, e->model->hp.n_vocab, &sp, err))) {
		kvcache_free(kv);
		return rc;
	}
	struct gen_stats gs;
	rc = engine_generate(e, kv, ids, (int)n, go->n, s, on_token, mk, &gs, err);
	sampler_free(s);
	kvcache_free(kv);
	return rc;
}

/* Open an engine on `backend` (gpu_memory bytes, 0: unlimited), warm it up
 * with one generation, then measure one. */
static int measure(const struct gopts *go, enum backend_kind backend, uint64_t gpu_memory,
		   struct grun *r, struct smk_err *err)
{
	struct wstore_opts wo;
	wstore_opts_default(&wo);
	wo.dev_budget = gpu_memory;
	wo.check_budgets = true;
	if (go->prefetch >= 0)
		wo.prefetch_blocks = go->prefetch;
	if (go->lookahead >= 0)
		wo.lookahead_max = go->lookahead;
	struct engine_opts eo = {
		.model_path = go->path, .n_ctx = go->ctx, .n_batch = 64, .backend = backend,
		.gpu_id = go->gpu_id, .num_gpus = 1, .weights = gpu_memory ? &wo : NULL,
		.shard_bytes = go->shard_bytes,
	};
	struct engine *e;
	int rc = engine_open(&e, &eo, err);
	if (rc)
		return rc;
	snprintf(r->note, sizeof(r->note), "%s", e->backend_note);
	r->gpu_weights = e->gpu_weights;
	r->gpu_kv = e->gpu_kv;
	r->gpu_scratch = e->gpu_scratch;
	struct mark mk = { .e = e, .r = r };
	if ((rc = one_gen(e, go, &mk, err)))
		goto out;
	mk.measuring = true;
	r->n_ids = 0;
	if ((rc = one_gen(e, go, &mk, err)))
		goto out;
	double t_end = smk_now();
	wstore_get_stats(e->ws, &r->b);
	if (e->wdev && e->wdev->times)
		e->wdev->times(e->wdev->ctx, &r->tb);
	r->n_dec = r->n_ids - 1;
	r->wall = t_end - mk.t_first;
	r->tok_s = r->n_dec > 0 && r->wall > 0 ? r->n_dec / r->wall : 0;
out:
	engine_close(e);
	return rc;
}

/* First step where two greedy sequences differ, or -1. */
#define MAX_PREFILL 4096

/* Prefill tokens/s on `backend`, the model resident: one forward pass over
 * go->prefill synthetic token ids, the second of two passes timed (the
 * logits' download waits for the device).  tile_min: the CUDA matmul's
 * SMOKE_CUDA_TILE_MIN_N for this engine (NULL: its default). */
static int prefill_rate(const struct gopts *go, enum backend_kind backend, const char *tile_min,
			double *tok_s, struct smk_err *err)
{
	static int32_t tok[MAX_PREFILL];
	const int n = go->prefill;
	for (int i = 0; i < n; i++)
		tok[i] = 1 + i % 1000;
	if (tile_min)
		setenv("SMOKE_CUDA_TILE_MIN_N", tile_min, 1);
	struct engine_opts eo = { .model_path = go->path, .n_ctx = n + 1, .n_batch = n,
				  .backend = backend, .gpu_id = go->gpu_id, .num_gpus = 1 };
	struct engine *e;
	int rc = engine_open(&e, &eo, err);
	unsetenv("SMOKE_CUDA_TILE_MIN_N");
	if (rc)
		return rc;
	double t = 0;
	for (int rep = 0; rep < 2 && !rc; rep++) {
		struct kvcache *kv;
		if ((rc = kvcache_new(&kv, e->model, e->n_ctx, e->be, err)))
			break;
		const float *lg;
		const double t0 = smk_now();
		rc = forward_run(e->fwd, kv, tok, n, 1, &lg, err);
		t = smk_now() - t0;
		kvcache_free(kv);
	}
	engine_close(e);
	*tok_s = !rc && t > 0 ? n / t : 0;
	return rc;
}

static int first_diff(const struct grun *x, const struct grun *y)
{
	int n = x->n_ids < y->n_ids ? x->n_ids : y->n_ids;
	for (int i = 0; i < n; i++)
		if (x->ids[i] != y->ids[i])
			return i;
	return x->n_ids == y->n_ids ? -1 : n;
}

/* The logit margin logit[a] - logit[b] after the prompt and tok[0..n), run
 * as engine_generate runs it (the prompt as one chunk, then one token at a
 * time), on `backend`: where two backends' greedy choices part, this says
 * whether it was a near-tie. */
static int margin_at(const struct gopts *go, enum backend_kind backend, const int32_t *tok, int n,
		     int32_t a, int32_t b, double *margin, struct smk_err *err)
{
	struct engine_opts eo = { .model_path = go->path, .n_ctx = go->ctx, .n_batch = 64,
				  .backend = backend, .gpu_id = go->gpu_id, .num_gpus = 1 };
	struct engine *e;
	int rc = engine_open(&e, &eo, err);
	if (rc)
		return rc;
	struct kvcache *kv = NULL;
	const float *logits = NULL;
	if ((rc = kvcache_new(&kv, e->model, e->n_ctx, e->be, err)) ||
	    (rc = forward_run(e->fwd, kv, ids, (int)n_ids, 1, &logits, err)))
		goto out;
	for (int i = 0; i < n && !rc; i++)
		rc = forward_run(e->fwd, kv, &tok[i], 1, 1, &logits, err);
	if (!rc)
		*margin = (double)logits[a] - (double)logits[b];
out:
	kvcache_free(kv);
	engine_close(e);
	return rc;
}

static void print_ids(const struct grun *r)
{
	printf("  %-12s %3d tokens:", r->name, r->n_ids);
	for (int i = 0; i < r->n_ids && i < 24; i++)
		printf(" %d", r->ids[i]);
	printf("%s\n", r->n_ids > 24 ? " ..." : "");
}

int main(int argc, char **argv)
{
	struct gopts go = {
		.path = getenv("SMOKE_MODEL"), .n = 64, .ctx = 256, .fraction = 0.25,
		.prompt = "The history of the city begins in the early middle ages, when",
		.prefetch = -1, .lookahead = -1,
	};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--model") && v)
			go.path = argv[++i];
		else if (!strcmp(a, "-n") && v)
			go.n = atoi(argv[++i]);
		else if (!strcmp(a, "--ctx") && v)
			go.ctx = atoi(argv[++i]);
		else if (!strcmp(a, "--gpu-id") && v)
			go.gpu_id = atoi(argv[++i]);
		else if (!strcmp(a, "--fraction") && v)
			go.fraction = atof(argv[++i]);
		else if (!strcmp(a, "--prompt") && v)
			go.prompt = argv[++i];
		else if (!strcmp(a, "--emu"))
			go.emu = true;
		else if (!strcmp(a, "--prefetch") && v)
			go.prefetch = atoi(argv[++i]);
		else if (!strcmp(a, "--lookahead") && v)
			go.lookahead = atoi(argv[++i]);
		else if (!strcmp(a, "--shard-mib") && v)
			go.shard_bytes = (uint64_t)atoi(argv[++i]) << 20;
		else if (!strcmp(a, "--prefill") && v)
			go.prefill = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: bench_gpu [--model PATH] [-n N] [--ctx N] [--gpu-id N] [--fraction F] [--prompt TEXT] [--prefetch N] [--lookahead N] [--shard-mib N] [--prefill N] [--emu]\n");
			return 2;
		}
	}
	if (!go.path || go.n <= 1 || go.n >= MAX_GEN || go.ctx <= go.n || go.fraction <= 0 ||
	    go.prefill < 0 || go.prefill > MAX_PREFILL) {
		fprintf(stderr, "bench_gpu: need --model (or SMOKE_MODEL), 1 < n < %d, ctx > n, fraction > 0\n",
			MAX_GEN);
		return 2;
	}
	char why[256];
	const enum backend_kind gpu = go.emu ? BACKEND_CUDAEMU : BACKEND_CUDA;
	if (!go.emu && cuda_probe(why, sizeof(why)) <= 0) {
		printf("SKIP bench_gpu: %s\n", why);
		return 77;
	}

	struct smk_err err = { 0 };
	static struct grun cpu = { .name = "cpu" }, cpu_sc = { .name = "cpu-scalar" },
			   res = { .name = "cuda" }, ooc = { .name = "cuda-ooc" };
	struct model *m;
	if (model_load(&m, go.path, &err)) {
		fprintf(stderr, "bench_gpu: %s\n", err.msg);
		return 1;
	}
	const uint64_t weights = m->weight_bytes;
	const uint64_t unit = weights / (uint64_t)m->n_blocks;
	model_free(m);
	const uint64_t budget = (uint64_t)(go.fraction * (double)weights);

	qdot_force_scalar(true);
	int rc = measure(&go, BACKEND_CPU, 0, &cpu_sc, &err);
	qdot_force_scalar(false);
	if (rc || measure(&go, BACKEND_CPU, 0, &cpu, &err) ||
	    measure(&go, gpu, 0, &res, &err) || measure(&go, gpu, budget, &ooc, &err)) {
		fprintf(stderr, "bench_gpu: %s\n", err.msg);
		return 1;
	}
	double h2d = 0;
	if (!go.emu && cuda_bench_h2d(go.gpu_id, unit, 40, &h2d, why, sizeof(why))) {
		fprintf(stderr, "bench_gpu: %s\n", why);
		return 1;
	}

	const struct wtier_stats *da = &ooc.a.tier[WSTORE_TIER_DEV], *db = &ooc.b.tier[WSTORE_TIER_DEV];
	const double dev_bytes = (double)(db->bytes_in - da->bytes_in);
	const double dev_busy = db->busy_s - da->busy_s;
	const double dev_bw = dev_busy > 0 ? dev_bytes / dev_busy : 0;
	const double bytes_tok = ooc.n_dec > 0 ? dev_bytes / ooc.n_dec : 0;
	const double copy_tok = dev_bw > 0 ? bytes_tok / dev_bw : 0;
	const double compute_tok = res.tok_s > 0 ? 1.0 / res.tok_s : 0;
	const double ooc_tok = ooc.tok_s > 0 ? 1.0 / ooc.tok_s : 0;
	const double bound = copy_tok > compute_tok ? copy_tok : compute_tok;
	const double stall = ooc.wall > 0 ? (ooc.b.stall_s - ooc.a.stall_s) / ooc.wall : 0;
	const int d_res = first_diff(&cpu, &res), d_ooc = first_diff(&res, &ooc);
	const int d_sc = first_diff(&cpu_sc, &res), d_cc = first_diff(&cpu, &cpu_sc);

	char prompt_list[256 * 8] = "";
	for (size_t i = 0, o = 0; i < n_ids && o + 16 < sizeof(prompt_list); i++)
		o += (size_t)snprintf(prompt_list + o, sizeof(prompt_list) - o, "%s%d", i ? "," : "",
				      ids[i]);
	printf("model %s: %.1f MiB of weights in %s units of %.2f MiB on average\n", go.path,
	       weights / 1048576.0, "its", unit / 1048576.0);
	printf("%s\n%s\n", res.note, cpu.note);
	printf("greedy tokens (%d requested after the prompt):\n", go.n);
	print_ids(&cpu);
	print_ids(&cpu_sc);
	print_ids(&res);
	print_ids(&ooc);
	printf("  cuda vs cpu: %s", d_res < 0 ? "EQUAL" : "differ");
	if (d_res >= 0)
		printf(" from step %d (cpu %d, cuda %d)", d_res, d_res < cpu.n_ids ? cpu.ids[d_res] : -1,
		       d_res < res.n_ids ? res.ids[d_res] : -1);
	printf("\n");
	printf("  cuda vs cpu with scalar kernels: %s", d_sc < 0 ? "EQUAL" : "differ");
	if (d_sc >= 0)
		printf(" from step %d", d_sc);
	printf("; cpu vs cpu with scalar kernels: %s", d_cc < 0 ? "EQUAL" : "differ");
	if (d_cc >= 0)
		printf(" from step %d", d_cc);
	printf("\n");
	double m_cpu = 0, m_gpu = 0;
	if (d_res >= 0 && d_res < cpu.n_ids && d_res < res.n_ids) {
		/* Both sides' margin between the two choices at the parting step. */
		int32_t a = cpu.ids[d_res], b = res.ids[d_res];
		if (margin_at(&go, BACKEND_CPU, cpu.ids, d_res, a, b, &m_cpu, &err) ||
		    margin_at(&go, gpu, cpu.ids, d_res, a, b, &m_gpu, &err)) {
			fprintf(stderr, "bench_gpu: %s\n", err.msg);
			return 1;
		}
		printf("  at step %d: logit[cpu's %d] - logit[cuda's %d] = %+.4f on the CPU, %+.4f on CUDA (a near-tie if both are small)\n",
		       d_res, a, b, m_cpu, m_gpu);
	}
	printf("  cuda-ooc vs cuda: %s\n", d_ooc < 0 ? "EQUAL" : "DIFFER");
	printf("decode: cpu %.1f tok/s, cuda resident %.1f tok/s, cuda gpu_memory=%.1f MiB (%.2f of the model: weights %.1f + KV %.1f + scratch %.1f MiB) %.1f tok/s\n",
	       cpu.tok_s, res.tok_s, budget / 1048576.0, go.fraction, ooc.gpu_weights / 1048576.0,
	       ooc.gpu_kv / 1048576.0, ooc.gpu_scratch / 1048576.0, ooc.tok_s);
	printf("host->device: store copies %.2f GB/s (device-timed, %.1f MiB per token), plain pinned cudaMemcpyAsync of %.2f MiB %.2f GB/s: ratio %.3f (goal >= 0.9)\n",
	       dev_bw / 1e9, bytes_tok / 1048576.0, unit / 1048576.0, h2d / 1e9,
	       h2d > 0 ? dev_bw / h2d : 0);
	printf("overlap: out-of-core %.3f ms/token vs max(copy %.3f, compute %.3f) ms/token: ratio %.3f (goal <= 1.15); stalled %.1f%% of decode wall time; RAM pinned for DMA: %s\n",
	       ooc_tok * 1e3, copy_tok * 1e3, compute_tok * 1e3, bound > 0 ? ooc_tok / bound : 0,
	       stall * 100, ooc.b.ram_dma_pinned ? "yes" : "no");
	/* memory.enable_cpu_offload: a block that misses the GPU could run on
	 * the CPU instead of being copied.  Per token, all blocks on the CPU
	 * (the CPU run) against copying all of them at the store's rate. */
	const double cpu_tok = cpu.tok_s > 0 ? 1.0 / cpu.tok_s : 0;
	const double copy_all = dev_bw > 0 ? (double)weights / dev_bw : 0;
	printf("cpu offload: the CPU backend computes a token's blocks in %.3f ms, copying them all to the GPU takes %.3f ms: %s is %.1fx faster\n",
	       cpu_tok * 1e3, copy_all * 1e3, cpu_tok > copy_all ? "copying" : "the CPU",
	       cpu_tok > copy_all ? (copy_all > 0 ? cpu_tok / copy_all : 0) : (cpu_tok > 0 ? copy_all / cpu_tok : 0));
	/* Where the copy engine's time went per out-of-core token: copying,
	 * waiting for the kernels that read an evicted unit, or idle. */
	const double nd = ooc.n_dec > 0 ? ooc.n_dec : 1;
	const double cs_busy = (ooc.tb.busy_s - ooc.ta.busy_s) / nd;
	const double cs_wait = (ooc.tb.wait_s - ooc.ta.wait_s) / nd;
	const double cs_idle = (ooc.tb.idle_s - ooc.ta.idle_s) / nd;
	printf("copy stream per out-of-core token: copying %.3f ms, waiting for kernels %.3f ms, idle %.3f ms (%.1f copies)\n",
	       cs_busy * 1e3, cs_wait * 1e3, cs_idle * 1e3, (double)(ooc.tb.copies - ooc.ta.copies) / nd);
	double pf_cpu = 0, pf_vec = 0, pf_tile = 0;
	if (go.prefill > 0) {
		if (prefill_rate(&go, BACKEND_CPU, NULL, &pf_cpu, &err) ||
		    prefill_rate(&go, gpu, "1073741824", &pf_vec, &err) ||
		    prefill_rate(&go, gpu, NULL, &pf_tile, &err)) {
			fprintf(stderr, "bench_gpu: prefill: %s\n", err.msg);
			return 1;
		}
		printf("prefill of %d tokens: cpu %.1f tok/s, cuda matrix-vector kernel only %.1f tok/s, cuda with the tiled kernel %.1f tok/s\n",
		       go.prefill, pf_cpu, pf_vec, pf_tile);
	}
	printf("RESULT {\"prefill_tokens\":%d,\"prefill_cpu_tok_s\":%.3f,\"prefill_vec_tok_s\":%.3f,"
	       "\"prefill_tile_tok_s\":%.3f,", go.prefill, pf_cpu, pf_vec, pf_tile);
	printf("\"offload_cpu_s_tok\":%.6f,\"offload_copy_s_tok\":%.6f,", cpu_tok, copy_all);
	printf("\"cs_busy_s_tok\":%.6f,\"cs_wait_s_tok\":%.6f,\"cs_idle_s_tok\":%.6f,", cs_busy,
	       cs_wait, cs_idle);
	printf("\"cpu_tok_s\":%.3f,\"cuda_tok_s\":%.3f,\"ooc_tok_s\":%.3f,\"gpu_memory\":%llu,"
	       "\"weight_bytes\":%llu,\"tokens_equal_cpu\":%s,\"first_diff_cpu\":%d,"
	       "\"tokens_equal_cpu_scalar\":%s,\"first_diff_cpu_scalar\":%d,\"tokens_equal_ooc\":%s,"
	       "\"n_tokens\":%d,\"store_h2d_Bps\":%.0f,\"plain_h2d_Bps\":%.0f,\"h2d_ratio\":%.4f,"
	       "\"copy_s_tok\":%.6f,\"compute_s_tok\":%.6f,\"ooc_s_tok\":%.6f,\"overlap_ratio\":%.4f,"
	       "\"stall_frac\":%.4f,\"dev_bytes_tok\":%.0f,\"margin_cpu\":%.4f,\"margin_cuda\":%.4f,\"prompt_ids\":\"%s\"}\n",
	       cpu.tok_s, res.tok_s, ooc.tok_s, (unsigned long long)budget, (unsigned long long)weights,
	       d_res < 0 ? "true" : "false", d_res, d_sc < 0 ? "true" : "false", d_sc, d_ooc < 0 ? "true" : "false", cpu.n_ids, dev_bw,
	       h2d, h2d > 0 ? dev_bw / h2d : 0, copy_tok, compute_tok, ooc_tok,
	       bound > 0 ? ooc_tok / bound : 0, stall, bytes_tok, m_cpu, m_gpu, prompt_list);
	return 0;
}
