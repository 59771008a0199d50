/* bench_forward - prefill and decode speed of the forward pass, measured the
 * way llama-bench measures them so the two can be compared in one run:
 *   pp N: N prompt tokens through the model in chunks, logits of the last;
 *   tg N: N tokens generated one at a time from an empty context.
 * Prints one line per test: "smoke pp512 t/s <mean> <stddev>".
 * bench/cpu-vs-llamacpp runs this next to llama-bench and prints ratios. */
#include <getopt.h>
#include <math.h>
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

int main(int argc, char **argv)
{
	struct engine_opts eo = { .n_batch = 512 };
	int pp = 512, tg = 128, reps = 3;
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "pp", required_argument, NULL, 'p' },
		{ "tg", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{ "reps", required_argument, NULL, 'r' },
		{ 0 },
	};
	int o;
	while ((o = getopt_long(argc, argv, "m:p:n:t:r:", opts, NULL)) != -1) {
		switch (o) {
		case 'm': eo.model_path = optarg; break;
		case 'p': pp = atoi(optarg); break;
		case 'n': tg = atoi(optarg); break;
		case 't': eo.n_threads = atoi(optarg); break;
		case 'r': reps = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: bench_forward --model PATH [--pp N] [--tg N] [--threads N] [--reps N]\n");
			return 2;
		}
	}
	if (!eo.model_path || pp < 0 || tg < 0 || reps < 1 || reps > 100) {
		fprintf(stderr, "bench_forward: --model is required; pp, tg >= 0; 1 <= reps <= 100\n");
		return 2;
	}
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
	}
	free(v);
	free(tok);
	kvcache_free(kv);
	engine_close(e);
	return 0;
}
