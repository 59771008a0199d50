/* sampler_sample_masked (engine/sampler.c), the hook structured outputs
 * sample through: only allowed tokens are drawn, with the probabilities the
 * chain gives them when the others' logits are -infinity (checked against
 * a softmax computed here), under greedy, temperature, top-k, top-p, min-p
 * and the repetition penalty; an allowed token even when no allowed logit
 * is finite. */
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ck_main.h"
#include "engine/sampler.h"

#define N 100

static struct sampler *make(struct sampler_params p)
{
	struct sampler *s = NULL;
	struct smk_err err = { 0 };
	ck_assert_msg(sampler_new(&s, N, &p, &err) == 0, "%s", err.msg);
	return s;
}

static struct sampler_params params(float temp, int top_k, float top_p, float min_p, float pen)
{
	struct sampler_params p;
	sampler_params_default(&p);
	p.temperature = temp;
	p.top_k = top_k;
	p.top_p = top_p;
	p.min_p = min_p;
	p.repeat_penalty = pen;
	p.seed = 42;
	return p;
}

static bool allowed(const uint32_t *m, int id)
{
	return m[id >> 5] >> (id & 31) & 1;
}

static void logits_and_mask(float *logits, uint32_t *mask, int stride)
{
	memset(mask, 0, 4 * ((N + 31) / 32));
	for (int i = 0; i < N; i++) {
		logits[i] = (float)((i * 37) % 23) / 4.0f;
		if (i % stride == 1)
			mask[i >> 5] |= 1u << (i & 31);
	}
}

START_TEST(greedy_takes_the_best_allowed)
{
	float logits[N];
	uint32_t mask[4];
	logits_and_mask(logits, mask, 7);
	struct sampler *s = make(params(0, 0, 1, 0, 1));
	int best = -1;
	for (int i = 0; i < N; i++)
		if (allowed(mask, i) && (best < 0 || logits[i] > logits[best]))
			best = i;
	ck_assert_int_eq(sampler_sample_masked(s, logits, mask, NULL, 0, NULL), best);
	/* the logits are not modified */
	float again[N];
	uint32_t m2[4];
	logits_and_mask(again, m2, 7);
	ck_assert(!memcmp(again, logits, sizeof(logits)));
	sampler_free(s);
}
END_TEST

/* Draw many times; every draw allowed, and the frequencies near the
 * softmax over the allowed tokens at temperature t. */
static void check_distribution(struct sampler_params p, int stride)
{
	float logits[N];
	uint32_t mask[4];
	logits_and_mask(logits, mask, stride);
	struct sampler *s = make(p);
	static int count[N];
	memset(count, 0, sizeof(count));
	const int draws = 20000;
	for (int k = 0; k < draws; k++) {
		int id = sampler_sample_masked(s, logits, mask, NULL, 0, NULL);
		ck_assert_msg(id >= 0 && id < N && allowed(mask, id), "drew %d, not allowed", id);
		count[id]++;
	}
	if (p.top_k == 0 && p.top_p >= 1 && p.min_p == 0) {
		double z = 0, mx = -1e30;
		for (int i = 0; i < N; i++)
			if (allowed(mask, i) && logits[i] > mx)
				mx = logits[i];
		for (int i = 0; i < N; i++)
			if (allowed(mask, i))
				z += exp((logits[i] - mx) / p.temperature);
		for (int i = 0; i < N; i++) {
			if (!allowed(mask, i))
				continue;
			double want = exp((logits[i] - mx) / p.temperature) / z;
			double got = (double)count[i] / draws;
			ck_assert_msg(fabs(got - want) < 0.02 + 0.1 * want, "token %d: %.4f drawn, %.4f expected", i,
				      got, want);
		}
	}
	sampler_free(s);
}

START_TEST(temperature_over_allowed_only)
{
	check_distribution(params(1.0f, 0, 1, 0, 1), 7);
	check_distribution(params(0.7f, 0, 1, 0, 1), 3);
}
END_TEST

START_TEST(cuts_keep_to_allowed)
{
	/* top-k beyond the allowed count, below it; top-p; min-p */
	check_distribution(params(1.0f, 40, 1, 0, 1), 7);
	check_distribution(params(1.0f, 2, 1, 0, 1), 7);
	check_distribution(params(1.0f, 0, 0.5f, 0, 1), 7);
	check_distribution(params(1.0f, 0, 1, 0.2f, 1), 7);
	check_distribution(params(1.0f, 40, 0.9f, 0.05f, 1), 50);
}
END_TEST

START_TEST(penalty_and_no_finite_logit)
{
	float logits[N];
	uint32_t mask[4];
	logits_and_mask(logits, mask, 7);
	int32_t hist[3] = { 1, 8, 15 };
	struct sampler *s = make(params(0, 0, 1, 0, 1.5f));
	int id = sampler_sample_masked(s, logits, mask, hist, 3, NULL);
	ck_assert(allowed(mask, id));
	sampler_free(s);
	/* every allowed logit -inf: still an allowed token */
	for (int i = 0; i < N; i++)
		if (allowed(mask, i))
			logits[i] = -INFINITY;
	s = make(params(1.0f, 0, 1, 0, 1));
	id = sampler_sample_masked(s, logits, mask, NULL, 0, NULL);
	ck_assert(allowed(mask, id));
	sampler_free(s);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("masked_sampler");
	TCase *tc = tcase_create("masked_sampler");
	tcase_add_test(tc, greedy_takes_the_best_allowed);
	tcase_add_test(tc, temperature_over_allowed_only);
	tcase_add_test(tc, cuts_keep_to_allowed);
	tcase_add_test(tc, penalty_and_no_finite_logit);
	suite_add_tcase(su, tc);
	return ck_run(su);
}
