/* Model-level validation (arch/model.c): files that are valid GGUF but not a
 * runnable model must be refused with a message naming what is wrong, and the
 * valid tiny models of each family must load with the right plan.  The files
 * and their expectations come from scripts/make-bad-models.py. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/forward.h"
#include "arch/model.h"
#include "weights/wstore.h"

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
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
