/* Model-level validation (arch/model.c): files that are valid GGUF but not a
 * runnable model must be refused with a message naming what is wrong, and the
 * valid tiny models of each family must load with the right plan.  The files
 * and their expectations come from scripts/make-bad-models.py. */
#include <check.h>

#include "ck_main.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/forward.h"
#include "arch/model.h"
#include "weights/wstore.h"
#include "exec/kvcache.h"
#include "compute/backend.h"

static const char *fixture_dir(void)
{
	const char *d = getenv("SMOKE_FIXTURES");
	return d ? d : "tests/fixtures";
}

START_TEST(models_accepted_and_refused_as_expected)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/model/expectations.json", fixture_dir());
	json_error_t jerr;
	json_t *root = json_load_file(path, 0, &jerr);
	ck_assert_msg(root, "%s: %s", path, jerr.text);
	json_t *cases = json_object_get(root, "cases"), *c;
	size_t i;
	int n_ok = 0, n_bad = 0;
	json_array_foreach(cases, i, c) {
		const char *file = json_string_value(json_object_get(c, "file"));
		snprintf(path, sizeof(path), "%s/model/%s", fixture_dir(), file);
		struct model *m = NULL;
		struct smk_err err = { 0 };
		int rc = model_load(&m, path, &err);
		if (json_is_true(json_object_get(c, "ok"))) {
			ck_assert_msg(rc == 0, "%s: %s", file, err.msg);
			ck_assert_int_eq(m->n_blocks, m->hp.n_layer + 2);
			ck_assert_int_eq(m->hp.n_vocab, 8);
			ck_assert_int_eq(m->hp.head_dim, 16);
			model_free(m);
			n_ok++;
			continue;
		}
		ck_assert_msg(rc == -EINVAL, "%s: expected -EINVAL, got %d (%s)", file, rc, err.msg);
		ck_assert_ptr_null(m);
		ck_assert_msg(strstr(err.msg, file) != NULL, "%s: message does not name the file: %s",
			      file, err.msg);
		json_t *words = json_object_get(c, "words"), *w;
		size_t k;
		json_array_foreach(words, k, w)
			ck_assert_msg(strstr(err.msg, json_string_value(w)) != NULL,
				      "%s: message lacks '%s': %s", file, json_string_value(w), err.msg);
		n_bad++;
	}
	fprintf(stderr, "model: %d valid models loaded, %d invalid ones refused with named reasons\n",
		n_ok, n_bad);
	ck_assert_int_ge(n_ok, 3);
	ck_assert_int_ge(n_bad, 10);
	json_decref(root);
}
END_TEST

/* The families' plans differ where they should: gemma3 alternates sliding and
 * global layers (5:1) with two RoPE bases, the others do not. */
START_TEST(family_plans)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/model/ok-gemma3.gguf", fixture_dir());
	struct model *m;
	struct smk_err err = { 0 };
	ck_assert_msg(model_load(&m, path, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(m->fam->family, FAMILY_GEMMA3);
	ck_assert(m->fam->qk_norm && m->fam->post_norms && m->fam->embed_scale);
	for (int il = 0; il < 12; il++)
		ck_assert_int_eq(model_layer_is_swa(m, il), il % 6 != 5);
	struct rope_params rp;
	model_layer_rope(m, 0, &rp);
	ck_assert(rp.base == 10000.0f && rp.kind == ROPE_NEOX);
	model_layer_rope(m, 5, &rp);
	ck_assert(rp.base == m->hp.rope_base);
	model_free(m);

	snprintf(path, sizeof(path), "%s/model/ok-llama.gguf", fixture_dir());
	ck_assert_msg(model_load(&m, path, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(m->fam->family, FAMILY_LLAMA);
	ck_assert(!model_layer_is_swa(m, 5));
	model_layer_rope(m, 0, &rp);
	ck_assert(rp.kind == ROPE_NORM);
	/* tied output: the head block reads the embedding table */
	ck_assert_ptr_eq(m->blocks[m->n_blocks - 1].t[HEAD_OUTPUT].data, m->blocks[0].t[EMB_TOKEN].data);
	model_free(m);
}
END_TEST

/* Continuous batching must not change results: a batch of sequences (two
 * prefill chunks and a decode step, different positions) gives bit-identical
 * logits to running each sequence alone, for every family. */
static void check_batch_equals_alone(const char *file)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/model/%s", fixture_dir(), file);
	struct model *m;
	struct smk_err err = { 0 };
	ck_assert_msg(model_load(&m, path, &err) == 0, "%s", err.msg);
	struct backend_limits lim = { .max_cols = 64, .max_rows = 16, .max_ctx = 32, .max_heads = 4,
				      .n_threads = 2 };
	struct backend *be;
	struct wstore *ws;
	struct forward *f;
	ck_assert(backend_cpu_new(&be, &lim, &err) == 0);
	ck_assert(wstore_new_resident(&ws, m, WSTORE_LOAD_MAP, &err) == 0);
	ck_assert_msg(forward_new(&f, m, be, ws, 16, 8, &err) == 0, "%s", err.msg);
	const int V = m->hp.n_vocab;

	struct kvcache *alone[3], *batch[3];
	for (int i = 0; i < 3; i++) {
		ck_assert(kvcache_new(&alone[i], m, 32, be, &err) == 0);
		ck_assert(kvcache_new(&batch[i], m, 32, be, &err) == 0);
	}
	/* history: sequence 2 already holds 4 positions in both setups */
	const int32_t hist[4] = { 1, 5, 2, 7 }, t0[5] = { 3, 1, 4, 1, 5 }, t1[1] = { 6 },
		      t2[3] = { 2, 7, 1 };
	const float *lg;
	ck_assert(forward_run(f, alone[2], hist, 4, 0, &lg, &err) == 0);
	ck_assert(forward_run(f, batch[2], hist, 4, 0, &lg, &err) == 0);
	ck_assert(forward_run(f, alone[1], hist, 2, 0, &lg, &err) == 0);
	ck_assert(forward_run(f, batch[1], hist, 2, 0, &lg, &err) == 0);

	static float want[4][64];
	ck_assert(forward_run(f, alone[0], t0, 5, 1, &lg, &err) == 0);
	memcpy(want[0], lg, sizeof(float) * V);
	ck_assert(forward_run(f, alone[1], t1, 1, 1, &lg, &err) == 0);
	memcpy(want[1], lg, sizeof(float) * V);
	ck_assert(forward_run(f, alone[2], t2, 3, 2, &lg, &err) == 0);
	memcpy(want[2], lg, sizeof(float) * 2 * V);

	struct fwd_item items[3] = {
		{ .kv = batch[0], .tok = t0, .n = 5, .n_logits = 1 },
		{ .kv = batch[1], .tok = t1, .n = 1, .n_logits = 1 },
		{ .kv = batch[2], .tok = t2, .n = 3, .n_logits = 2 },
	};
	ck_assert_msg(forward_run_batch(f, items, 3, &err) == 0, "%s", err.msg);
	ck_assert(!memcmp(items[0].logits, want[0], sizeof(float) * V));
	ck_assert(!memcmp(items[1].logits, want[1], sizeof(float) * V));
	ck_assert(!memcmp(items[2].logits, want[2], sizeof(float) * 2 * V));
	ck_assert_int_eq(batch[0]->n_pos, 5);
	ck_assert_int_eq(batch[2]->n_pos, 7);

	/* A batch with one bad item is refused whole: no cache advances. */
	const int32_t bad[1] = { 99 };
	struct fwd_item b2[2] = {
		{ .kv = batch[0], .tok = t1, .n = 1, .n_logits = 1 },
		{ .kv = batch[1], .tok = bad, .n = 1, .n_logits = 1 },
	};
	ck_assert_int_eq(forward_run_batch(f, b2, 2, &err), -ERANGE);
	ck_assert_ptr_nonnull(strstr(err.msg, "99"));
	ck_assert_int_eq(batch[0]->n_pos, 5);
	ck_assert_int_eq(batch[1]->n_pos, 3);

	for (int i = 0; i < 3; i++) {
		kvcache_free(alone[i]);
		kvcache_free(batch[i]);
	}
	forward_free(f);
	wstore_free(ws);
	backend_free(be);
	model_free(m);
}

START_TEST(batched_forward_equals_one_at_a_time)
{
	check_batch_equals_alone("ok-llama.gguf");
	check_batch_equals_alone("ok-qwen2.gguf");
	check_batch_equals_alone("ok-gemma3.gguf");
}
END_TEST

START_TEST(nonexistent_file_is_named)
{
	struct model *m = NULL;
	struct smk_err err = { 0 };
	ck_assert_int_lt(model_load(&m, "/nonexistent/dir/model.gguf", &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/dir/model.gguf"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("model");
	TCase *tc = tcase_create("load");
	tcase_add_test(tc, models_accepted_and_refused_as_expected);
	tcase_add_test(tc, family_plans);
	tcase_add_test(tc, nonexistent_file_is_named);
	tcase_add_test(tc, batched_forward_equals_one_at_a_time);
	suite_add_tcase(s, tc);
	return ck_run(s);
}
