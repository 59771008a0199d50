/* engine.h - a loaded model ready to run: weights, tokenizer, compute
 * backend, weight store and activation scratch, sized once at load.
 *
 * The offline modes use it for one generation or a perplexity run; the
 * daemon's worker thread (worker.h) owns one and batches requests through
 * it.  serve/options.c fills struct engine_opts from the configuration.
 * Not thread-safe: one thread drives an engine at a time.
 */
#ifndef SMK_ENGINE_ENGINE_H
#define SMK_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "exec/forward.h"
#include "exec/kvcache.h"
#include "arch/model.h"
#include "engine/sampler.h"
#include "tokenizer/tokenizer.h"
#include "util/clock.h"
#include "util/err.h"


struct engine_opts {
	const char *model_path;
	int n_threads;      /* <= 0: all CPUs */
	int n_ctx;          /* context positions per sequence (<= 0: 4096, capped by the model) */
	int n_batch;        /* prefill chunk (<= 0: 256) */
	int max_logits;     /* logit rows per chunk (<= 0: 1; perplexity needs n_batch) */
	/* The weight hierarchy's settings, or NULL for the resident store (the
	 * file mapping).  Copied; need not outlive engine_open. */
	const struct wstore_opts *weights;
	enum convert_dtype dtype;  /* memory.default_dtype (CONVERT_AUTO: as stored) */
	bool no_tokenizer;         /* weights only (logit checks feed token ids): e->tok NULL */
	enum backend_kind backend; /* compute/backend.h (AUTO: CUDA when a GPU is usable) */
	int gpu_id, num_gpus;      /* device.gpu_id / device.num_gpus (AUTO: 0 = CPU) */
	/* KV-cache bytes the caller will allocate in the backend's memory at
	 * most (the daemon: limits.kv_budget); 0: one sequence of n_ctx.
	 * With a device backend it is counted in memory.gpu_memory. */
	uint64_t kv_reserve;
	uint64_t shard_bytes;      /* model_load_opts.shard_bytes (0: default) */
	/* runtime.expert_prediction (a mixture of experts only; 0: the
	 * default, merged) */
	enum xpredict_mode expert_prediction;
	/* memory.weights_in_ram: the resident store's copy (weights NULL on
	 * the CPU backend; 0: AUTO) */
	enum wstore_load load;
};

struct engine {
	struct model *model;
	struct tokenizer *tok;
	struct backend *be;
	enum backend_kind kind;  /* what runs: CPU, CUDA or CUDAEMU (never AUTO) */
	struct wdev *wdev;         /* the weight store's device tier (CUDA), or NULL */
	struct wstore *ws;
	struct forward *fwd;
	int n_ctx, n_batch;
	/* Which backend runs and why (one log line for the caller to print):
	 * "cuda: device 0: NVIDIA H100 ...", or "cpu: no usable GPU (...)". */
	char backend_note[320];
	/* memory.gpu_memory's split with a device backend, bytes */
	uint64_t gpu_weights, gpu_kv, gpu_scratch;
};

int engine_open(struct engine **out, const struct engine_opts *o, struct smk_err *err);
void engine_close(struct engine *e);

/* One line on a mixture of experts' shape and expert prediction (mode,
 * host bytes of router copies and history, outside the weight budgets),
 * into buf; false (buf empty) for a dense model. */
bool engine_expert_note(const struct engine *e, char *buf, size_t len);

/* Timings of one generation, for the diagnostics line. */
struct gen_stats {
	int n_prompt, n_gen;
	double prefill_s, decode_s;
};

/* Callback for each generated piece of text (whole UTF-8 characters only).
 * Return non-zero to stop. */
typedef int (*gen_emit_fn)(void *ctx, const char *text, size_t len, int32_t token);

/* Generate up to n_predict tokens after the prompt tokens, stopping at an
 * end-of-generation token.  kv must be empty or hold exactly this prompt's
 * prefix history (positions are appended). */
int engine_generate(struct engine *e, struct kvcache *kv, const int32_t *prompt, int n_prompt,
		    int n_predict, struct sampler *s, gen_emit_fn emit, void *emit_ctx,
		    struct gen_stats *st, struct smk_err *err);

/* Perplexity of a token sequence, scored as llama-perplexity does: chunks of
 * n_ctx tokens, the first replaced by BOS, only the second half of each chunk
 * scored.  Returns 0 and the PPL in *ppl; *n_scored tokens were scored. */
int engine_perplexity(struct engine *e, const int32_t *tok, int n_tok, int n_ctx,
		      double *ppl, int *n_scored, int *n_chunks, struct smk_err *err);


#endif
