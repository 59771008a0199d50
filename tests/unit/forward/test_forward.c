/* Forward-pass tests against llama.cpp: for each fixture made by
 * scripts/make-reference-fixtures (greedy continuations produced by
 * llama.cpp's own code), our greedy continuation of the same prompt ids must
 * be identical for at least the first 32 tokens.  The default model comes from
 * SMOKE_MODEL; the tiny Llama-family models are regenerated bit-exactly by
 * scripts/make-test-models into SMOKE_TEST_MODELS.  Missing models skip with
 * a message, they do not pass silently: the summary line says what ran. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

#define MIN_AGREE 32

static char *fixture(const char *name)
{
	static char path[4096];
	const char *dir = getenv("SMOKE_FIXTURES");
	snprintf(path, sizeof(path), "%s/reference/%s", dir ? dir : "tests/fixtures", name);
	return path;
}

static const char *model_path(const char *file)
{
	static char path[4096];
	if (!strcmp(file, "gemma-3-270m-q4_k_m.gguf") && getenv("SMOKE_MODEL"))
		return getenv("SMOKE_MODEL");
	const char *dir = getenv("SMOKE_TEST_MODELS");
	if (dir)
		snprintf(path, sizeof(path), "%s/%s", dir, file);
	else if (!strcmp(file, "gemma-3-270m-q4_k_m.gguf"))
		snprintf(path, sizeof(path), "%s/.cache/smoke/models/%s", getenv("HOME"), file);
	else
		snprintf(path, sizeof(path), "%s/.cache/smoke/test-models/%s", getenv("HOME"), file);
	return path;
}

/* Greedy-decode every case of one fixture; returns the number of cases run
 * (0 if the model is absent). */
static int check_greedy_fixture(const char *name)
{
	json_error_t jerr;
	json_t *root = json_load_file(fixture(name), 0, &jerr);
	ck_assert_msg(root, "%s: %s (line %d)", fixture(name), jerr.text, jerr.line);
	const char *file = json_string_value(json_object_get(root, "model"));
	ck_assert_ptr_nonnull(file);
	const char *path = model_path(file);
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "SKIP %s: model %s not found (run scripts/make-test-models / scripts/fetch-model)\n",
			name, path);
		json_decref(root);
		return 0;
	}
	fclose(f);

	struct smk_err err = { 0 };
	struct engine *e;
	struct engine_opts eo = { .model_path = path, .n_ctx = 512 };
	ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);
	struct sampler_params sp;
	sampler_params_default(&sp);
	sp.temperature = 0.0f;
	struct sampler *s;
	ck_assert_msg(sampler_new(&s, e->model->hp.n_vocab, &sp, &err) == 0, "%s", err.msg);

	json_t *cases = json_object_get(root, "cases");
	size_t ci;
	json_t *c;
	int total_agree = 0, total = 0, n_bad = 0;
	json_array_foreach(cases, ci, c) {
		json_t *pids = json_object_get(c, "prompt_ids"), *gids = json_object_get(c, "generated_ids");
		int np = (int)json_array_size(pids), ng = (int)json_array_size(gids);
		int32_t prompt[512];
		ck_assert_int_lt(np, 400);
		for (int i = 0; i < np; i++)
			prompt[i] = (int32_t)json_integer_value(json_array_get(pids, i));

		/* Our tokenizer must agree on the prompt too. */
		const char *text = json_string_value(json_object_get(c, "prompt"));
		int32_t ours[512];
		size_t n_ours = 0;
		ck_assert_int_eq(tokenizer_encode(e->tok, text, strlen(text), true, true, ours, 512,
						  &n_ours, &err), 0);
		ck_assert_msg((int)n_ours == np && !memcmp(ours, prompt, sizeof(int32_t) * (size_t)np),
			      "%s case %zu: prompt tokenizes differently from llama.cpp", name, ci);

		struct kvcache *kv;
		ck_assert_msg(kvcache_new(&kv, e->model, np + ng, &err) == 0, "%s", err.msg);
		const float *logits;
		ck_assert_msg(forward_run(e->fwd, kv, prompt, np, 1, &logits, &err) == 0, "%s", err.msg);
		int agree = 0;
		bool diverged = false;
		for (int g = 0; g < ng; g++) {
			int32_t want = (int32_t)json_integer_value(json_array_get(gids, g));
			int32_t got = sampler_sample(s, logits, NULL, 0, NULL);
			json_t *step = json_array_get(json_object_get(c, "steps"), g);
			double ref_logit = json_real_value(json_object_get(step, "logit"));
			if (got != want) {
				fprintf(stderr, "%s case %zu step %d: got %d (logit %.4f) want %d (llama.cpp logit %.4f, ours %.4f)\n",
					name, ci, g, got, logits[got], want, ref_logit, logits[want]);
				diverged = true;
				break;
			}
			if (g == 0) {
				/* llama.cpp's top 5 against ours: shows a bias, not just noise */
				json_t *top = json_object_get(step, "top5");
				fprintf(stderr, "%s case %zu step 0 top5 (id llama.cpp/ours):", name, ci);
				for (size_t k = 0; k < json_array_size(top); k++) {
					json_t *pr = json_array_get(top, k);
					int id = (int)json_integer_value(json_array_get(pr, 0));
					fprintf(stderr, " %d %.3f/%.3f", id,
						json_real_value(json_array_get(pr, 1)), logits[id]);
				}
				fprintf(stderr, "\n");
			}
			agree++;
			if (g + 1 < ng)
				ck_assert_msg(forward_run(e->fwd, kv, &got, 1, 1, &logits, &err) == 0, "%s", err.msg);
		}
		fprintf(stderr, "%s case %zu (\"%.30s\"): %d/%d greedy tokens equal to llama.cpp's\n",
			name, ci, text, agree, ng);
		int need = ng < MIN_AGREE ? ng : MIN_AGREE;
		if (!(agree >= need || (!diverged && agree == ng)))
			n_bad++;
		total_agree += agree;
		total += ng;
		kvcache_free(kv);
	}
	fprintf(stderr, "%s: %d/%d greedy tokens equal over %zu prompts\n", name, total_agree, total,
		json_array_size(cases));
	ck_assert_msg(n_bad == 0, "%s: %d prompts agree on fewer than %d tokens", name, n_bad, MIN_AGREE);
	sampler_free(s);
	engine_close(e);
	json_decref(root);
	return (int)json_array_size(cases);
}


/* Teacher-forced comparison: feed llama.cpp's own greedy tokens (prompt as
 * one batch, then one token at a time, as llama-ref did) and compare our
 * logits with llama.cpp's at every step.  Quantised activations make both
 * engines' logits noisy at the ~0.1-0.3 level (our scalar and AVX2 kernels,
 * which differ only in float summation order, already disagree by that
 * much: see the note in docs/reference.md), so the checks are: every one of
 * llama.cpp's top-5 logits within TF_ABS of ours, and the same arg-max
 * wherever llama.cpp's top-1/top-2 margin exceeds TF_MARGIN. */
#define TF_ABS 0.75
#define TF_MARGIN 0.5

static void teacher_forced_fixture(const char *name)
{
	json_error_t jerr;
	json_t *root = json_load_file(fixture(name), 0, &jerr);
	ck_assert_msg(root, "%s: %s (line %d)", fixture(name), jerr.text, jerr.line);
	const char *path = model_path(json_string_value(json_object_get(root, "model")));
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "SKIP %s (teacher-forced): model %s not found\n", name, path);
		json_decref(root);
		return;
	}
	fclose(f);
	struct smk_err err = { 0 };
	struct engine *e;
	struct engine_opts eo = { .model_path = path, .n_ctx = 512 };
	ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);

	json_t *cases = json_object_get(root, "cases");
	size_t ci;
	json_t *c;
	double worst = 0.0;
	int steps = 0, decided = 0, same = 0;
	json_array_foreach(cases, ci, c) {
		json_t *pids = json_object_get(c, "prompt_ids"), *gids = json_object_get(c, "generated_ids");
		json_t *jsteps = json_object_get(c, "steps");
		int np = (int)json_array_size(pids), ng = (int)json_array_size(gids);
		int32_t prompt[512];
		ck_assert_int_lt(np, 400);
		for (int i = 0; i < np; i++)
			prompt[i] = (int32_t)json_integer_value(json_array_get(pids, i));
		struct kvcache *kv;
		ck_assert_msg(kvcache_new(&kv, e->model, np + ng, &err) == 0, "%s", err.msg);
		const float *logits;
		ck_assert_msg(forward_run(e->fwd, kv, prompt, np, 1, &logits, &err) == 0, "%s", err.msg);
		for (int g = 0; g < ng; g++) {
			json_t *top = json_object_get(json_array_get(jsteps, g), "top5");
			int32_t want = (int32_t)json_integer_value(json_array_get(gids, g));
			double l1 = json_real_value(json_array_get(json_array_get(top, 0), 1));
			double l2 = json_real_value(json_array_get(json_array_get(top, 1), 1));
			for (size_t k = 0; k < json_array_size(top); k++) {
				json_t *pr = json_array_get(top, k);
				int id = (int)json_integer_value(json_array_get(pr, 0));
				double d = fabs(json_real_value(json_array_get(pr, 1)) - logits[id]);
				if (d > worst)
					worst = d;
				ck_assert_msg(d <= TF_ABS, "%s case %zu step %d: token %d logit %.4f, llama.cpp %.4f",
					      name, ci, g, id, logits[id], json_real_value(json_array_get(pr, 1)));
			}
			int32_t ours = sampler_argmax(logits, e->model->hp.n_vocab);
			if (l1 - l2 > TF_MARGIN) {
				decided++;
				ck_assert_msg(ours == want, "%s case %zu step %d: our arg-max %d, llama.cpp's %d (margin %.3f)",
					      name, ci, g, ours, want, l1 - l2);
			}
			same += ours == want;
			steps++;
			if (g + 1 < ng)
				ck_assert_msg(forward_run(e->fwd, kv, &want, 1, 1, &logits, &err) == 0, "%s", err.msg);
		}
		kvcache_free(kv);
	}
	fprintf(stderr, "%s teacher-forced: arg-max equal at %d/%d steps (all %d steps with margin > %.2f), "
		"worst top-5 logit difference %.4f (limit %.2f)\n",
		name, same, steps, decided, TF_MARGIN, worst, TF_ABS);
	engine_close(e);
	json_decref(root);
}

START_TEST(gemma3_teacher_forced_logits_match_llama_cpp)
{
	teacher_forced_fixture("gemma3-greedy.json");
}
END_TEST

START_TEST(tiny_llama_family_teacher_forced_logits_match_llama_cpp)
{
	static const char *names[] = {
		"tiny-llama-bpe-greedy.json", "tiny-llama-spm-greedy.json", "tiny-qwen2-greedy.json",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		teacher_forced_fixture(names[i]);
}
END_TEST

START_TEST(gemma3_greedy_matches_llama_cpp)
{
	check_greedy_fixture("gemma3-greedy.json");
}
END_TEST

START_TEST(tiny_llama_family_greedy_matches_llama_cpp)
{
	static const char *names[] = {
		"tiny-llama-bpe-greedy.json", "tiny-llama-spm-greedy.json", "tiny-qwen2-greedy.json",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		FILE *f = fopen(fixture(names[i]), "r");
		if (!f) {
			fprintf(stderr, "SKIP %s: fixture not generated\n", names[i]);
			continue;
		}
		fclose(f);
		check_greedy_fixture(names[i]);
	}
}
END_TEST


/* Perplexity on a fixed public-domain text, scored exactly as
 * llama-perplexity scores it (the protocol is recorded in the fixture), must
 * be within 1% of llama.cpp's. */
START_TEST(gemma3_perplexity_within_1pct_of_llama_cpp)
{
	json_error_t jerr;
	json_t *root = json_load_file(fixture("gemma3-perplexity.json"), 0, &jerr);
	ck_assert_msg(root, "%s", jerr.text);
	const char *path = model_path(json_string_value(json_object_get(root, "model")));
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "SKIP perplexity: model %s not found\n", path);
		json_decref(root);
		return;
	}
	fclose(f);
	const int n_ctx = (int)json_integer_value(json_object_get(root, "n_ctx"));
	const double ref = json_real_value(json_object_get(root, "ppl"));

	char text_path[4096];
	const char *src = getenv("SMOKE_SOURCE_ROOT");
	snprintf(text_path, sizeof(text_path), "%s/%s", src ? src : ".",
		 json_string_value(json_object_get(root, "text")));
	FILE *tf = fopen(text_path, "rb");
	ck_assert_msg(tf, "cannot open %s", text_path);
	static char text[1 << 20];
	size_t len = fread(text, 1, sizeof(text) - 1, tf);
	fclose(tf);

	struct smk_err err = { 0 };
	struct engine *e;
	struct engine_opts eo = { .model_path = path, .n_ctx = n_ctx, .n_batch = 64, .max_logits = 64 };
	ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);
	static int32_t tok[1 << 18];
	size_t n_tok = 0;
	ck_assert_msg(tokenizer_encode(e->tok, text, len, true, false, tok, sizeof(tok) / sizeof(tok[0]),
				       &n_tok, &err) == 0, "%s", err.msg);
	ck_assert_int_eq((int)n_tok, (int)json_integer_value(json_object_get(root, "n_tokens_with_bos")));
	double ppl;
	int n_scored, n_chunks;
	ck_assert_msg(engine_perplexity(e, tok, (int)n_tok, n_ctx, &ppl, &n_scored, &n_chunks, &err) == 0,
		      "%s", err.msg);
	fprintf(stderr, "perplexity: ours %.4f, llama.cpp %.4f (%+.2f%%), %d chunks, %d tokens scored\n",
		ppl, ref, 100.0 * (ppl - ref) / ref, n_chunks, n_scored);
	ck_assert_int_eq(n_scored, (int)json_integer_value(json_object_get(root, "scored_tokens")));
	ck_assert_msg(fabs(ppl - ref) / ref < 0.01, "perplexity %.4f is not within 1%% of llama.cpp's %.4f",
		      ppl, ref);
	engine_close(e);
	json_decref(root);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("forward");
	TCase *tc = tcase_create("greedy");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, gemma3_teacher_forced_logits_match_llama_cpp);
	tcase_add_test(tc, tiny_llama_family_teacher_forced_logits_match_llama_cpp);
	tcase_add_test(tc, gemma3_greedy_matches_llama_cpp);
	tcase_add_test(tc, gemma3_perplexity_within_1pct_of_llama_cpp);
	tcase_add_test(tc, tiny_llama_family_greedy_matches_llama_cpp);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
