/* bench_forward - prefill and decode speed of the forward pass, measured the
 * way llama-bench measures them so the two can be compared in one run:
 *   pp N: N prompt tokens through the model in chunks, logits of the last;
 *   tg N: N tokens generated one at a time from an empty context.
 *   --seqs S (batched decode, as llama-batched-bench measures it): S
 *   sequences each get --pp prompt tokens (not timed), then --tg steps in
 *   which every sequence decodes one token, all S in one forward_run_batch
 *   call (the daemon's continuous-batching step); the figure is the
 *   aggregate S * tg / time, llama-batched-bench's S_TG.
 * Prints one line per test: "smoke pp512 t/s <mean> <stddev>" (batched:
 * "smoke bd4x128 t/s ...").  bench/cpu-vs-llamacpp runs this next to
 * llama-bench / llama-batched-bench and prints ratios.
 *   --tg also prints "smoke bytes/token <N>": the weight bytes one decoded
 *   token reads (every block but the embedding's, of which it reads a row).
 *   --load auto|map|copy: memory.weights_in_ram (the resident store's
 *   copy of the weights; default auto, as the daemon).
 *   --membw (no model): the read bandwidth of --threads threads streaming
 *   a 1 GiB buffer, "smoke membw GB/s <mean> <stddev>" - the physical bound
 *   of a decode that reads bytes/token from memory for every token. */
#include <getopt.h>
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

static void stats(const double *v, int n, double *mean, double *sd)
{
	double s = 0, ss = 0;
	for (int i = 0; i < n; i++)
		s += v[i];
	*mean = s / n;
	for (int i = 0; i < n; i++)
		ss += (v[i] - *mean) * (v[i] - *mean);
	*sd = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
}

static int fail(const struct smk_err *err)
{
	fprintf(stderr, "bench_forward: %s\n", err->msg);
	return 1;
}

/* ---- --membw ---- */

struct bw_part {
	const __m256i *p;
	size_t n;          /* vectors */
	__m256i sum;
};

/* Read every byte of the part once (xor of 256-bit loads: the loads are
 * the work, the result keeps them from being optimised away). */
__attribute__((target("avx2"))) static void *bw_read(void *arg)
{
	struct bw_part *b = arg;
	__m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
	for (size_t i = 0; i + 4 <= b->n; i += 4) {
		a0 = _mm256_xor_si256(a0, _mm256_load_si256(b->p + i));
		a1 = _mm256_xor_si256(a1, _mm256_load_si256(b->p + i + 1));
		a2 = _mm256_xor_si256(a2, _mm256_load_si256(b->p + i + 2));
		a3 = _mm256_xor_si256(a3, _mm256_load_si256(b->p + i + 3));
	}
	b->sum = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
	return NULL;
}

static int membw(int threads, int reps)
{
	const size_t bytes = (size_t)1 << 30;
	__m256i *buf = aligned_alloc(64, bytes);
	struct bw_part part[64];
	pthread_t th[64];
	double *v = malloc(sizeof(double) * (size_t)reps), mean, sd;
	if (threads < 1 || threads > 64 || !buf || !v) {
		fprintf(stderr, "bench_forward: --membw: 1..64 threads, 1 GiB of memory\n");
		return 1;
	}
	memset(buf, 1, bytes);
	const size_t n = bytes / sizeof(__m256i), per = n / (size_t)threads;
	for (int r = -1; r < reps; r++) {   /* r = -1: a warm-up pass */
		double t0 = smk_now();
		for (int k = 0; k < threads; k++) {
			part[k] = (struct bw_part){ .p = buf + (size_t)k * per, .n = per };
			if (k && pthread_create(&th[k], NULL, bw_read, &part[k]))
				return 1;
		}
		bw_read(&part[0]);
		for (int k = 1; k < threads; k++)
			pthread_join(th[k], NULL);
		if (r >= 0)
			v[r] = (double)(per * (size_t)threads * sizeof(__m256i)) / (smk_now() - t0) / 1e9;
	}
	stats(v, reps, &mean, &sd);
	printf("smoke membw GB/s %.2f %.2f\n", mean, sd);
	free(v);
	free(buf);
	return 0;
}

/* --seqs: S sequences, each prefilled with pp tokens, then tg batched
 * decode steps of one token per sequence, timed. */
static int batched(struct engine_opts *eo, int seqs, int pp, int tg, int reps)
{
	eo->n_ctx = pp + tg + 1;
	eo->n_batch = pp > seqs ? pp : seqs;
	eo->max_logits = seqs;
	eo->kv_reserve = 0;
	struct smk_err err = { 0 };
	struct engine *e;
	if (engine_open(&e, eo, &err))
		return fail(&err);
	struct kvcache **kv = calloc((size_t)seqs, sizeof(*kv));
	struct fwd_item *it = calloc((size_t)seqs, sizeof(*it));
	int32_t *tok = malloc(sizeof(int32_t) * (size_t)seqs * (size_t)(pp + tg + 1));
	double *v = malloc(sizeof(double) * (size_t)reps), mean, sd;
	if (!kv || !it || !tok || !v) {
		fprintf(stderr, "bench_forward: out of memory\n");
		return 1;
	}
	srand(1);
	for (int i = 0; i < seqs * (pp + tg + 1); i++)
		tok[i] = rand() % e->model->hp.n_vocab;
	for (int s = 0; s < seqs; s++)
		if (kvcache_new(&kv[s], e->model, eo->n_ctx, e->be, &err))
			return fail(&err);
	const float *logits;
	for (int r = 0; r < reps; r++) {
		/* the prompts, one sequence at a time (not timed) */
		for (int s = 0; s < seqs; s++) {
			kv[s]->n_pos = 0;
			const int32_t *t = tok + (size_t)s * (size_t)(pp + tg + 1);
			if (pp > 0 && forward_run(e->fwd, kv[s], t, pp, 1, &logits, &err))
				return fail(&err);
		}
		double t0 = smk_now();
		for (int i = 0; i < tg; i++) {
			for (int s = 0; s < seqs; s++)
				it[s] = (struct fwd_item){ .kv = kv[s], .n = 1, .n_logits = 1,
					.tok = tok + (size_t)s * (size_t)(pp + tg + 1) + pp + i };
			if (forward_run_batch(e->fwd, it, seqs, &err))
				return fail(&err);
		}
		v[r] = (double)seqs * tg / (smk_now() - t0);
	}
	stats(v, reps, &mean, &sd);
	printf("smoke bd%dx%d t/s %.2f %.2f\n", seqs, tg, mean, sd);
	for (int s = 0; s < seqs; s++)
		kvcache_free(kv[s]);
	free(v);
	free(tok);
	free(it);
	free(kv);
	engine_close(e);
	return 0;
}

int main(int argc, char **argv)
{
	/* token ids are fed directly: no tokenizer (a Hugging Face directory
	 * without tokenizer.json, as scripts/gguf-to-hf.py writes it, loads) */
	struct engine_opts eo = { .n_batch = 512, .no_tokenizer = true };
	int pp = 512, tg = 128, reps = 3, seqs = 0, bw = 0;
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "pp", required_argument, NULL, 'p' },
		{ "tg", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{ "reps", required_argument, NULL, 'r' },
		{ "seqs", required_argument, NULL, 's' },
		{ "membw", no_argument, NULL, 'b' },
		{ "load", required_argument, NULL, 'l' },
		{ 0 },
	};
	int o;
	while ((o = getopt_long(argc, argv, "m:p:n:t:r:s:", opts, NULL)) != -1) {
		switch (o) {
		case 'm': eo.model_path = optarg; break;
		case 'p': pp = atoi(optarg); break;
		case 'n': tg = atoi(optarg); break;
		case 't': eo.n_threads = atoi(optarg); break;
		case 'r': reps = atoi(optarg); break;
		case 's': seqs = atoi(optarg); break;
		case 'b': bw = 1; break;
		case 'l':
			if (!strcmp(optarg, "auto") || !strcmp(optarg, "map") || !strcmp(optarg, "copy")) {
				eo.load = !strcmp(optarg, "map") ? WSTORE_LOAD_MAP
					  : !strcmp(optarg, "copy") ? WSTORE_LOAD_COPY : WSTORE_LOAD_AUTO;
				break;
			}
			fprintf(stderr, "bench_forward: --load '%s': expected auto, map or copy\n", optarg);
			return 2;
		default:
			fprintf(stderr, "usage: bench_forward --model PATH [--pp N] [--tg N] [--threads N] [--reps N] [--seqs S] [--load auto|map|copy]\n"
					"       bench_forward --membw [--threads N] [--reps N]\n");
			return 2;
		}
	}
	if (bw)
		return membw(eo.n_threads > 0 ? eo.n_threads : 1, reps < 1 ? 1 : reps);
	if (!eo.model_path || pp < 0 || tg < 0 || reps < 1 || reps > 100 || seqs < 0 || seqs > 256) {
		fprintf(stderr, "bench_forward: --model is required; pp, tg >= 0; 1 <= reps <= 100; 0 <= seqs <= 256\n");
		return 2;
	}
	if (seqs > 0)
		return batched(&eo, seqs, pp, tg, reps);
	eo.n_ctx = (pp > tg ? pp : tg) + 1;
	if (eo.n_batch > pp && pp > 0)
		eo.n_batch = pp;
	struct smk_err err = { 0 };
	struct engine *e;
	if (engine_open(&e, &eo, &err)) {
		fprintf(stderr, "bench_forward: %s\n", err.msg);
		return 1;
	}
	struct kvcache *kv;
	if (kvcache_new(&kv, e->model, eo.n_ctx, e->be, &err)) {
		fprintf(stderr, "bench_forward: %s\n", err.msg);
		return 1;
	}
	int n_tok = pp > tg ? pp : tg;
	int32_t *tok = malloc(sizeof(int32_t) * (size_t)(n_tok + 1));
	srand(1);
	for (int i = 0; i < n_tok; i++)
		tok[i] = rand() % e->model->hp.n_vocab;

	double *v = malloc(sizeof(double) * (size_t)reps), mean, sd;
	const float *logits;
	/* one warm-up pass so page faults of the mapping are not timed */
	kv->n_pos = 0;
	if (forward_run(e->fwd, kv, tok, 1, 1, &logits, &err)) {
		fprintf(stderr, "bench_forward: %s\n", err.msg);
		return 1;
	}
	if (pp > 0) {
		for (int r = 0; r < reps; r++) {
			kv->n_pos = 0;
			double t0 = smk_now();
			for (int i = 0; i < pp; i += e->n_batch) {
				int n = pp - i < e->n_batch ? pp - i : e->n_batch;
				if (forward_run(e->fwd, kv, tok + i, n, i + n == pp ? 1 : 0, &logits, &err)) {
					fprintf(stderr, "bench_forward: %s\n", err.msg);
					return 1;
				}
			}
			v[r] = pp / (smk_now() - t0);
		}
		stats(v, reps, &mean, &sd);
		printf("smoke pp%d t/s %.2f %.2f\n", pp, mean, sd);
	}
	if (tg > 0) {
		for (int r = 0; r < reps; r++) {
			kv->n_pos = 0;
			double t0 = smk_now();
			for (int i = 0; i < tg; i++) {
				if (forward_run(e->fwd, kv, tok + i, 1, 1, &logits, &err)) {
					fprintf(stderr, "bench_forward: %s\n", err.msg);
					return 1;
				}
			}
			v[r] = tg / (smk_now() - t0);
		}
		stats(v, reps, &mean, &sd);
		printf("smoke tg%d t/s %.2f %.2f\n", tg, mean, sd);
		uint64_t per_token = 0;
		for (int b = e->model->n_emb_blocks; b < e->model->n_blocks; b++)
			per_token += e->model->blocks[b].nbytes;
		printf("smoke bytes/token %llu\n", (unsigned long long)per_token);
	}
	free(v);
	free(tok);
	kvcache_free(kv);
	engine_close(e);
	return 0;
}
