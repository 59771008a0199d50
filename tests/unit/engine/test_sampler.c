/* Sampler tests: each property is checked against a value computed here
 * independently (softmax by formula, arg-max by scan), not against output
 * the sampler produced earlier. */
#include <check.h>

#include "ck_main.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"

static struct sampler *make(int n_vocab, struct sampler_params p)
{
	struct sampler *s = NULL;
	struct smk_err err = { 0 };
	ck_assert_msg(sampler_new(&s, n_vocab, &p, &err) == 0, "%s", err.msg);
	return s;
}

static struct sampler_params plain(float temp)
{
	struct sampler_params p;
	sampler_params_default(&p);
	p.temperature = temp;
	p.top_k = 0;
	p.top_p = 1.0f;
	p.min_p = 0.0f;
	return p;
}

START_TEST(greedy_is_argmax_first_on_ties)
{
	float logits[8] = { 0.1f, 2.0f, -1.0f, 2.0f, 1.9f, 0.0f, -5.0f, 1.0f };
	struct sampler *s = make(8, plain(0.0f));
	ck_assert_int_eq(sampler_sample(s, logits, NULL, 0, NULL), 1);
	ck_assert_int_eq(sampler_argmax(logits, 8), 1);
	sampler_free(s);
}
END_TEST

START_TEST(top_k_one_is_greedy_at_any_temperature)
{
	enum { N = 1000 };
	static float logits[N];
	srand(7);
	for (int i = 0; i < N; i++)
		logits[i] = (float)rand() / RAND_MAX * 10.0f;
	int best = 0;
	for (int i = 1; i < N; i++)
		if (logits[i] > logits[best])
			best = i;
	struct sampler_params p = plain(5.0f);
	p.top_k = 1;
	struct sampler *s = make(N, p);
	for (int r = 0; r < 50; r++)
		ck_assert_int_eq(sampler_sample(s, logits, NULL, 0, NULL), best);
	sampler_free(s);
}
END_TEST

START_TEST(same_seed_same_tokens)
{
	enum { N = 64, DRAWS = 200 };
	float logits[N];
	for (int i = 0; i < N; i++)
		logits[i] = sinf((float)i);
	struct sampler_params p = plain(1.0f);
	p.seed = 1234;
	struct sampler *a = make(N, p), *b = make(N, p);
	p.seed = 999;
	struct sampler *c = make(N, p);
	int differ = 0;
	for (int i = 0; i < DRAWS; i++) {
		int32_t ta = sampler_sample(a, logits, NULL, 0, NULL);
		ck_assert_int_eq(ta, sampler_sample(b, logits, NULL, 0, NULL));
		differ += ta != sampler_sample(c, logits, NULL, 0, NULL);
	}
	ck_assert_int_gt(differ, DRAWS / 4);
	sampler_reset(a, 1234);
	sampler_reset(b, 1234);
	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(sampler_sample(a, logits, NULL, 0, NULL),
				 sampler_sample(b, logits, NULL, 0, NULL));
	sampler_free(a);
	sampler_free(b);
	sampler_free(c);
}
END_TEST

/* Empirical frequencies follow softmax(logits / T) within 4 sigma. */
START_TEST(draws_follow_softmax)
{
	enum { N = 5, DRAWS = 40000 };
	float logits[N] = { 1.0f, 2.0f, 0.5f, -1.0f, 1.5f };
	const float temp = 0.7f;
	double expect[N], z = 0.0;
	for (int i = 0; i < N; i++)
		z += exp(logits[i] / temp);
	for (int i = 0; i < N; i++)
		expect[i] = exp(logits[i] / temp) / z;
	struct sampler_params p = plain(temp);
	p.seed = 42;
	struct sampler *s = make(N, p);
	int count[N] = { 0 };
	for (int i = 0; i < DRAWS; i++) {
		float prob;
		int32_t t = sampler_sample(s, logits, NULL, 0, &prob);
		ck_assert(t >= 0 && t < N);
		ck_assert(fabs(prob - expect[t]) < 1e-5);
		count[t]++;
	}
	for (int i = 0; i < N; i++) {
		double f = (double)count[i] / DRAWS;
		double sigma = sqrt(expect[i] * (1 - expect[i]) / DRAWS);
		ck_assert_msg(fabs(f - expect[i]) < 4 * sigma + 1e-9,
			      "token %d: freq %.4f expected %.4f", i, f, expect[i]);
	}
	sampler_free(s);
}
END_TEST

START_TEST(top_p_and_min_p_cut_the_tail)
{
	/* probabilities at T=1: roughly 0.64, 0.24, 0.09, 0.03, ... */
	enum { N = 6 };
	float logits[N] = { 3.0f, 2.0f, 1.0f, 0.0f, -1.0f, -2.0f };
	struct sampler_params p = plain(1.0f);
	p.top_p = 0.80f; /* 0.64 + 0.24 >= 0.8: keeps tokens 0 and 1 */
	struct sampler *s = make(N, p);
	int seen[N] = { 0 };
	for (int i = 0; i < 5000; i++)
		seen[sampler_sample(s, logits, NULL, 0, NULL)]++;
	ck_assert_int_gt(seen[0], 0);
	ck_assert_int_gt(seen[1], 0);
	for (int i = 2; i < N; i++)
		ck_assert_int_eq(seen[i], 0);
	sampler_free(s);

	p = plain(1.0f);
	p.min_p = 0.3f; /* p_i / p_max >= 0.3: e^-1 = 0.37 passes, e^-2 fails */
	s = make(N, p);
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < 5000; i++)
		seen[sampler_sample(s, logits, NULL, 0, NULL)]++;
	ck_assert_int_gt(seen[1], 0);
	for (int i = 2; i < N; i++)
		ck_assert_int_eq(seen[i], 0);
	sampler_free(s);
}
END_TEST

static int cmp_desc(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* Top-p over a large vocabulary without top-k: every draw lies in the
 * nucleus found by a full sort here, and the nucleus's probability matches. */
START_TEST(top_p_large_vocabulary_matches_full_sort)
{
	enum { N = 20000 };
	static float logits[N], sorted[N];
	unsigned seed = 5;
	for (int i = 0; i < N; i++) {
		seed = seed * 1103515245u + 12345u;
		logits[i] = (float)((seed >> 8) & 0xffff) / 65535.0f * 12.0f;
	}
	memcpy(sorted, logits, sizeof(sorted));
	qsort(sorted, N, sizeof(float), cmp_desc);
	double z = 0, acc = 0;
	for (int i = 0; i < N; i++)
		z += exp((double)sorted[i] - sorted[0]);
	int keep = N;
	for (int i = 0; i < N; i++) {
		acc += exp((double)sorted[i] - sorted[0]) / z;
		if (acc >= 0.9) {
			keep = i + 1;
			break;
		}
	}
	ck_assert_int_gt(keep, 256); /* the nucleus is wider than the first guesses */
	float cut = sorted[keep - 1];
	struct sampler_params p = plain(1.0f);
	p.top_p = 0.9f;
	p.seed = 9;
	struct sampler *s = make(N, p);
	double pk = 0;
	for (int j = 0; j < keep; j++)
		pk += exp((double)sorted[j] - sorted[0]);
	for (int i = 0; i < 200; i++) {
		float prob;
		int32_t t = sampler_sample(s, logits, NULL, 0, &prob);
		ck_assert_msg(logits[t] >= cut, "token %d (logit %g) outside the nucleus (cut %g)", t,
			      logits[t], cut);
		ck_assert(fabs(prob - exp((double)logits[t] - sorted[0]) / pk) < 1e-5);
	}
	sampler_free(s);
}
END_TEST

START_TEST(repetition_penalty_demotes_seen_tokens)
{
	float logits[4] = { 1.0f, 2.0f, 1.9f, -3.0f };
	int32_t hist[] = { 1, 3 };
	struct sampler_params p = plain(0.0f);
	p.repeat_penalty = 1.5f; /* 2.0 / 1.5 = 1.33 < 1.9 */
	struct sampler *s = make(4, p);
	ck_assert_int_eq(sampler_sample(s, logits, hist, 2, NULL), 2);
	ck_assert_int_eq(sampler_sample(s, logits, NULL, 0, NULL), 1);
	ck_assert(logits[1] == 2.0f); /* input untouched */
	sampler_free(s);
}
END_TEST

START_TEST(bad_params_are_named)
{
	struct sampler_params p = plain(0.5f);
	struct smk_err err = { 0 };
	p.top_p = 0.0f;
	ck_assert_int_eq(sampler_params_check(&p, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "top_p"));
	p = plain(-1.0f);
	ck_assert_int_eq(sampler_params_check(&p, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "temperature"));
	p = plain(NAN);
	ck_assert_int_eq(sampler_params_check(&p, &err), -EINVAL);
	p = plain(1.0f);
	p.min_p = 2.0f;
	ck_assert_int_eq(sampler_params_check(&p, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "min_p"));
	p = plain(1.0f);
	p.top_k = -3;
	ck_assert_int_eq(sampler_params_check(&p, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "top_k"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sampler");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, greedy_is_argmax_first_on_ties);
	tcase_add_test(tc, top_k_one_is_greedy_at_any_temperature);
	tcase_add_test(tc, same_seed_same_tokens);
	tcase_add_test(tc, draws_follow_softmax);
	tcase_add_test(tc, top_p_and_min_p_cut_the_tail);
	tcase_add_test(tc, repetition_penalty_demotes_seen_tokens);
	tcase_add_test(tc, top_p_large_vocabulary_matches_full_sort);
	tcase_add_test(tc, bad_params_are_named);
	suite_add_tcase(s, tc);
	return ck_run(s);
}
