/* sampler.h - turn a row of logits into the next token.
 *
 * The chain, in llama.cpp's order: repetition penalty -> top-k -> top-p ->
 * min-p -> temperature -> draw.  temperature <= 0 means greedy: the arg-max of
 * the (penalised) logits, first index on ties.  The random stream is a
 * splitmix64 seeded with `seed`, so the same seed gives the same tokens.
 * All memory is allocated by sampler_new(); sampling never allocates.
 */
#ifndef SMK_ENGINE_SAMPLER_H
#define SMK_ENGINE_SAMPLER_H

#include <stdint.h>

#include "util/err.h"

struct sampler_params {
	float temperature;    /* <= 0: greedy */
	int top_k;            /* 0: off */
	float top_p;          /* 1: off */
	float min_p;          /* 0: off */
	float repeat_penalty; /* 1: off */
	int repeat_last_n;    /* how many recent tokens the penalty looks at */
	uint64_t seed;
};

/* llama.cpp's defaults: top_k 40, top_p 0.95, min_p 0.05, temp 0.8, no
 * repetition penalty. */
void sampler_params_default(struct sampler_params *p);

/* Check ranges; the message names the parameter, its value and what is
 * allowed. */
int sampler_params_check(const struct sampler_params *p, struct smk_err *err);

struct sampler;

/* *out owned by the caller (sampler_free). */
int sampler_new(struct sampler **out, int n_vocab, const struct sampler_params *p,
		struct smk_err *err);
void sampler_free(struct sampler *s);

/* Restart the random stream (same seed, same sequence). */
void sampler_reset(struct sampler *s, uint64_t seed);

/* Pick a token from logits[n_vocab].  history[n_hist] are the tokens seen so
 * far (for the repetition penalty).  logits are not modified.  If prob is not
 * NULL it receives the chosen token's probability under the final
 * distribution (1 for greedy). */
int32_t sampler_sample(struct sampler *s, const float *logits, const int32_t *history,
		       int n_hist, float *prob);

/* As sampler_sample, over the tokens whose bit is set in allow (bit id & 31
 * of word id >> 5): the others' logits count as -infinity, before the
 * repetition penalty and every cut.  The token returned is always allowed
 * (at least one must be).  Uses the sampler's scratch; never allocates. */
int32_t sampler_sample_masked(struct sampler *s, const float *logits, const uint32_t *allow,
			      const int32_t *history, int n_hist, float *prob);

/* Index of the largest value, first on ties. */
int32_t sampler_argmax(const float *logits, int n);

#endif
