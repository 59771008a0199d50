/* test_tokenizer_json.c - tokenizer.json -> GGUF keys -> tokenizer, against
 * Hugging Face `tokenizers`.
 *
 * Reference: tests/fixtures/hf-tokenizers/<name>/expect.json, written by
 * scripts/make-hf-tokenizer-fixtures.py with the `tokenizers` library itself
 * (it trains each tokenizer, saves tokenizer.json and records encode() of
 * hard strings, with and without special tokens, and whether decode() gives
 * the string back).  Each tokenizer must give identical ids for every string;
 * the agreement counts are printed.  bad/ holds broken variants, each refused
 * with the errno and the words bad/bad.json lists.  Plus: hostile mutations
 * and truncations never crash, NFC of hostile mark runs is linear.
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ck_main.h"
#include "formats/gguf_build.h"
#include "tokenizer/tokenizer.h"
#include "formats/hf/tokenizer_json.h"
#include "unicode/unicode.h"

static const char *fixtures(void)
{
	const char *f = getenv("SMOKE_FIXTURES");
	return f && *f ? f : "tests/fixtures";
}

static void dir_of(char *out, size_t cap, const char *name)
{
	int n = snprintf(out, cap, "%s/hf-tokenizers/%s", fixtures(), name);
	ck_assert_msg(n > 0 && (size_t)n < cap, "path too long");
}

/* The whole pipeline the model loader runs: translate, finish, load.  On
 * success *g is kept open if g is not NULL. */
static int load_dir(const char *dir, struct tokenizer **t, struct gguf **g, struct smk_err *err)
{
	struct gguf_builder *b;
	struct gguf *gg;
	*t = NULL;
	ck_assert_int_eq(gguf_builder_new(&b, dir), 0);
	int rc = tokenizer_json_to_gguf(b, dir, err);
	if (rc) {
		gguf_builder_free(b);
		return rc;
	}
	if ((rc = gguf_builder_finish(b, &gg, err)))
		return rc;
	rc = tokenizer_load_gguf(t, gg, err);
	if (g && !rc)
		*g = gg;
	else
		gguf_close(gg);
	return rc;
}

static struct tokenizer *load_path(const char *dir, struct gguf **g)
{
	struct smk_err err = { 0 };
	struct tokenizer *t;
	int rc = load_dir(dir, &t, g, &err);
	ck_assert_msg(rc == 0, "%s: %d %s", dir, rc, err.msg);
	return t;
}

static struct tokenizer *load_ok(const char *name, struct gguf **g)
{
	char dir[4096];
	dir_of(dir, sizeof(dir), name);
	return load_path(dir, g);
}

static int32_t *encode(const struct tokenizer *t, const char *s, size_t len, bool add, size_t *n)
{
	size_t cap = 6 * len + 8;
	int32_t *ids = malloc(sizeof(*ids) * cap);
	struct smk_err err = { 0 };
	ck_assert_ptr_nonnull(ids);
	/* `tokenizers` always splits added tokens out of the text. */
	int rc = tokenizer_encode(t, s, len, add, true, ids, cap, n, &err);
	ck_assert_msg(rc == 0, "encode failed: %d %s", rc, err.msg);
	return ids;
}

static bool same_ids(const int32_t *a, size_t na, json_t *want)
{
	if (!json_is_array(want) || json_array_size(want) != na)
		return false;
	for (size_t i = 0; i < na; i++)
		if (json_integer_value(json_array_get(want, i)) != a[i])
			return false;
	return true;
}

static void show(const char *what, const char *text, const int32_t *got, size_t n, json_t *want)
{
	fprintf(stderr, "  %s mismatch for \"", what);
	for (const char *p = text; *p; p++)
		fprintf(stderr, (unsigned char)*p < 0x20 ? "\\x%02x" : "%c", (unsigned char)*p);
	fprintf(stderr, "\"\n    ours:");
	for (size_t i = 0; i < n && i < 48; i++)
		fprintf(stderr, " %d", got[i]);
	fprintf(stderr, "\n    hf:  ");
	for (size_t i = 0; i < json_array_size(want) && i < 48; i++)
		fprintf(stderr, " %lld", (long long)json_integer_value(json_array_get(want, i)));
	fprintf(stderr, "\n");
}

/* Every string of dir/expect.json, with and without special tokens. */
static void check_dir(const char *dir, const char *name)
{
	char path[4200];
	json_error_t je;
	struct tokenizer *t = load_path(dir, NULL);
	snprintf(path, sizeof(path), "%s/expect.json", dir);
	json_t *root = json_load_file(path, JSON_ALLOW_NUL, &je);
	ck_assert_msg(root, "%s: %s", path, je.text);
	json_t *cases = json_object_get(root, "cases");
	ck_assert(json_array_size(cases) > 50);
	ck_assert_int_eq(tokenizer_n_vocab(t), json_integer_value(json_object_get(root, "vocab_size")));

	/* SPM-style decoders (Strip, Metaspace) drop the space the encoder put
	 * in front; our pieces keep it. */
	bool spm = strcmp(tokenizer_model(t), "gemma4") == 0;
	size_t n_cases = json_array_size(cases), ok = 0, ok_sp = 0, n_dec = 0, ok_dec = 0;
	for (size_t i = 0; i < n_cases; i++) {
		json_t *c = json_array_get(cases, i);
		const char *s = json_string_value(json_object_get(c, "text"));
		size_t len = json_string_length(json_object_get(c, "text")), n;
		int32_t *ids = encode(t, s, len, false, &n);
		if (same_ids(ids, n, json_object_get(c, "ids")))
			ok++;
		else
			show("ids", s, ids, n, json_object_get(c, "ids"));
		if (json_is_true(json_object_get(c, "decodes"))) {
			n_dec++;
			char *out = malloc(n * tokenizer_max_piece(t) + 1);
			size_t m = 0;
			ck_assert_ptr_nonnull(out);
			for (size_t k = 0; k < n; k++)
				m += tokenizer_piece(t, ids[k], true, out + m, tokenizer_max_piece(t));
			const char *o = out;
			if (spm && m > len && m > 0 && out[0] == ' ')
				o++, m--;
			if (m == len && memcmp(o, s, len) == 0)
				ok_dec++;
			else
				fprintf(stderr, "  decode mismatch for case %zu: \"%.*s\"\n", i, (int)m, o);
			free(out);
		}
		free(ids);
		ids = encode(t, s, len, true, &n);
		if (same_ids(ids, n, json_object_get(c, "ids_special")))
			ok_sp++;
		else
			show("ids_special", s, ids, n, json_object_get(c, "ids_special"));
		free(ids);
	}
	printf("%-16s %zu/%zu ids, %zu/%zu ids with special tokens, %zu/%zu decode back\n",
	       name, ok, n_cases, ok_sp, n_cases, ok_dec, n_dec);
	fflush(stdout);
	ck_assert_msg(ok == n_cases && ok_sp == n_cases && ok_dec == n_dec,
		      "%s: %zu/%zu ids, %zu/%zu with specials, %zu/%zu decode", name, ok, n_cases,
		      ok_sp, n_cases, ok_dec, n_dec);
	json_decref(root);
	tokenizer_free(t);
}

static void check_fixture(const char *name)
{
	char dir[4096];
	dir_of(dir, sizeof(dir), name);
	check_dir(dir, name);
}

START_TEST(test_gpt2) { check_fixture("gpt2"); }
END_TEST
START_TEST(test_gpt2_prefix) { check_fixture("gpt2-prefix"); }
END_TEST
START_TEST(test_llama3) { check_fixture("llama3"); }
END_TEST
START_TEST(test_qwen2) { check_fixture("qwen2"); }
END_TEST
START_TEST(test_spm_legacy) { check_fixture("spm-legacy"); }
END_TEST
START_TEST(test_spm_unk) { check_fixture("spm-unk"); }
END_TEST
START_TEST(test_spm_unk_nofuse) { check_fixture("spm-unk-nofuse"); }
END_TEST
START_TEST(test_metaspace) { check_fixture("metaspace"); }
END_TEST
START_TEST(test_metaspace_first) { check_fixture("metaspace-first"); }
END_TEST

/* Real vocabularies (Llama 3, Qwen2, GPT-2, Llama 2, Gemma 3) rebuilt as
 * tokenizer.json by scripts/make-hf-tokenizer-fixtures.py --big: tens of MB,
 * so not committed; checked when present.  gpt-oss-real is gpt-oss's own
 * tokenizer.json (o200k_harmony) as scripts/fetch-o200k builds it from the
 * o200k_base ranks on PyPI. */
static const char *const big_names[] = {
	"llama3-real", "qwen2-real", "gpt2-real", "llama2-real", "gemma3-real", "gpt-oss-real" };

START_TEST(test_big)
{
	char base[4096], dir[4200];
	const char *e = getenv("SMOKE_HF_TOKENIZERS_BIG"), *home = getenv("HOME");
	snprintf(base, sizeof(base), "%s%s", e && *e ? e : home ? home : ".",
		 e && *e ? "" : "/.cache/smoke/hf-tokenizers-big");
	snprintf(dir, sizeof(dir), "%s/%s/expect.json", base, big_names[_i]);
	if (access(dir, R_OK) != 0) {
		printf("SKIP %s: no %s (scripts/make-hf-tokenizer-fixtures.py --big%s)\n", big_names[_i],
		       dir, strcmp(big_names[_i], "gpt-oss-real") == 0 ? " after scripts/fetch-o200k" : "");
		return;
	}
	snprintf(dir, sizeof(dir), "%s/%s", base, big_names[_i]);
	check_dir(dir, big_names[_i]);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* what the translation says besides ids                                   */

static int32_t id_of(const struct tokenizer *t, const char *s)
{
	int32_t id = tokenizer_find(t, s, strlen(s));
	ck_assert_msg(id >= 0, "no token '%s'", s);
	return id;
}

static void want_str(const struct gguf *g, const char *key, const char *prefix)
{
	const char *s;
	size_t len;
	struct smk_err err = { 0 };
	ck_assert_msg(gguf_get_str(g, key, &s, &len, &err) == 0, "%s: %s", key, err.msg);
	ck_assert_msg(len >= strlen(prefix) && memcmp(s, prefix, strlen(prefix)) == 0,
		      "%s = '%.*s'", key, (int)len, s);
}

START_TEST(test_llama3_specials)
{
	struct gguf *g;
	struct tokenizer *t = load_ok("llama3", &g);
	ck_assert_str_eq(tokenizer_model(t), "gpt2");
	want_str(g, "tokenizer.ggml.pre", "llama-bpe");
	/* BOS from the TemplateProcessing, EOS from tokenizer_config.json,
	 * every id of generation_config.json's eos_token_id ends generation. */
	ck_assert_int_eq(tokenizer_bos(t), id_of(t, "<|begin_of_text|>"));
	ck_assert(tokenizer_add_bos(t));
	ck_assert(!tokenizer_add_eos(t));
	ck_assert_int_eq(tokenizer_eos(t), id_of(t, "<|eot_id|>"));
	ck_assert(tokenizer_is_eog(t, id_of(t, "<|eot_id|>")));
	ck_assert(tokenizer_is_eog(t, id_of(t, "<|eom_id|>")));
	ck_assert(tokenizer_is_eog(t, id_of(t, "<|end_of_text|>")));
	ck_assert(!tokenizer_is_eog(t, id_of(t, "<|start_header_id|>")));
	ck_assert(tokenizer_is_control(t, id_of(t, "<|start_header_id|>")));
	ck_assert(!tokenizer_is_control(t, id_of(t, "Hello")));
	want_str(g, "tokenizer.chat_template", "{{ bos_token }}");
	gguf_close(g);
	tokenizer_free(t);
}
END_TEST

START_TEST(test_qwen2_specials)
{
	struct gguf *g;
	struct tokenizer *t = load_ok("qwen2", &g);
	want_str(g, "tokenizer.ggml.pre", "qwen2");
	want_str(g, "smoke.tokenizer.normalizer", "nfc");
	ck_assert_int_eq(tokenizer_bos(t), -1);       /* bos_token null */
	ck_assert(!tokenizer_add_bos(t));
	ck_assert_int_eq(tokenizer_eos(t), id_of(t, "<|im_end|>"));
	ck_assert_int_eq(tokenizer_pad(t), id_of(t, "<|endoftext|>"));
	ck_assert(tokenizer_is_eog(t, id_of(t, "<|im_end|>")));
	/* A non-special added token is matched in text but is no control token. */
	ck_assert(!tokenizer_is_control(t, id_of(t, "<tool_call>")));
	/* Named templates: "default" is the template, the others keep a suffix. */
	want_str(g, "tokenizer.chat_template", "{% for m in messages %}");
	want_str(g, "tokenizer.chat_template.tool_use", "{{ tools }}");
	gguf_close(g);
	tokenizer_free(t);
}
END_TEST

START_TEST(test_spm_specials)
{
	struct gguf *g;
	struct tokenizer *t = load_ok("spm-legacy", &g);
	ck_assert_str_eq(tokenizer_model(t), "gemma4");
	want_str(g, "tokenizer.ggml.pre", "smoke-none");
	want_str(g, "smoke.tokenizer.space_prefix", "every");
	ck_assert_int_eq(tokenizer_bos(t), 1);
	ck_assert_int_eq(tokenizer_eos(t), 2);
	ck_assert_int_eq(tokenizer_unk(t), 0);
	ck_assert(tokenizer_add_bos(t));
	/* Byte tokens render as their byte. */
	char buf[8];
	ck_assert_uint_eq(tokenizer_piece(t, id_of(t, "<0x41>"), false, buf, sizeof(buf)), 1);
	ck_assert_int_eq(buf[0], 'A');
	gguf_close(g);
	tokenizer_free(t);

	t = load_ok("metaspace", &g);
	want_str(g, "tokenizer.ggml.pre", "smoke-metaspace");
	want_str(g, "smoke.tokenizer.space_prefix", "missing");
	ck_assert(tokenizer_add_bos(t));
	ck_assert(tokenizer_add_eos(t));              /* "<s> $A </s>" */
	gguf_close(g);
	tokenizer_free(t);
}
END_TEST

/* Small valid variants of bad/valid (errno OK in bad.json) and what their
 * translation must say. */
START_TEST(test_ok_variants)
{
	struct gguf *g;
	struct tokenizer *t = load_ok("bad/ok-jinja", &g);
	want_str(g, "tokenizer.chat_template", "JINJA {{ x }}\n");
	gguf_close(g);
	tokenizer_free(t);

	/* RobertaProcessing: cls $A sep. */
	t = load_ok("bad/ok-roberta", NULL);
	ck_assert(tokenizer_add_bos(t) && tokenizer_add_eos(t));
	ck_assert_int_eq(tokenizer_bos(t), id_of(t, "abc"));
	ck_assert_int_eq(tokenizer_eos(t), id_of(t, "<|end|>"));
	size_t n;
	int32_t *ids = encode(t, "ab", 2, true, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(ids[0], 4);
	ck_assert_int_eq(ids[1], 3);
	ck_assert_int_eq(ids[2], 6);
	free(ids);
	tokenizer_free(t);

	/* Unused ids 6..8 become [PAD<id>] placeholders that nothing encodes to. */
	t = load_ok("bad/ok-gap", NULL);
	ck_assert_int_eq(tokenizer_n_vocab(t), 10);
	ck_assert_int_eq(id_of(t, "[PAD7]"), 7);
	ck_assert_int_eq(id_of(t, "<|end|>"), 9);
	ids = encode(t, "[PAD7]", 6, false, &n);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_ne(ids[i], 7);
	free(ids);
	tokenizer_free(t);

	/* No post-processor: tokenizer_config.json's add_bos_token decides. */
	t = load_ok("bad/ok-config-bos", NULL);
	ck_assert(tokenizer_add_bos(t) && !tokenizer_add_eos(t));
	ck_assert_int_eq(tokenizer_bos(t), id_of(t, "<|end|>"));
	ck_assert_int_eq(tokenizer_eos(t), id_of(t, "<|end|>"));
	tokenizer_free(t);
}
END_TEST

/* transformers writes model_max_length = int(1e30) (VERY_LARGE_INTEGER) into
 * tokenizer_config.json, as gpt-oss's has it: more than a JSON integer of
 * jansson holds, and not a reason to refuse the file.  bad/ok-config-bos with
 * that line: its add_bos_token and bos_token still count. */
START_TEST(test_config_huge_int)
{
	char dir[4096], path[4200], tmp[] = "/tmp/smoke-tj-XXXXXX";
	dir_of(dir, sizeof(dir), "bad/ok-config-bos");
	snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	static char src[1 << 16];
	size_t n = fread(src, 1, sizeof(src), f);
	fclose(f);
	ck_assert(n > 100 && n < sizeof(src));
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	char tj[4200], cfg[4200];
	snprintf(tj, sizeof(tj), "%s/tokenizer.json", tmp);
	snprintf(cfg, sizeof(cfg), "%s/tokenizer_config.json", tmp);
	f = fopen(tj, "wb");
	ck_assert_ptr_nonnull(f);
	fwrite(src, 1, n, f);
	fclose(f);
	f = fopen(cfg, "wb");
	ck_assert_ptr_nonnull(f);
	fputs("{\"bos_token\": \"<|end|>\", \"add_bos_token\": true, \"eos_token\": {\"content\": "
	      "\"<|end|>\"}, \"model_max_length\": 1000000000000000019884624838656, \"x\": [1, 2.5]}\n", f);
	fclose(f);
	struct tokenizer *t = load_path(tmp, NULL);
	ck_assert(tokenizer_add_bos(t) && !tokenizer_add_eos(t));
	ck_assert_int_eq(tokenizer_bos(t), id_of(t, "<|end|>"));
	tokenizer_free(t);
	/* a number beyond a double is still refused, with the place */
	f = fopen(cfg, "wb");
	ck_assert_ptr_nonnull(f);
	fputs("{\"model_max_length\": 1e999}\n", f);
	fclose(f);
	struct smk_err err = { 0 };
	int rc = load_dir(tmp, &t, NULL, &err);
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(strstr(err.msg, "tokenizer_config.json") != NULL, "%s", err.msg);
	unlink(tj);
	unlink(cfg);
	rmdir(tmp);
}
END_TEST

/* ------------------------------------------------------------------------- */
/* broken input                                                          */

static int errno_of(const char *name)
{
	static const struct { const char *n; int v; } map[] = {
		{ "OK", 0 }, { "EINVAL", -EINVAL }, { "ENOTSUP", -ENOTSUP }, { "ENOENT", -ENOENT },
		{ "ENOMEM", -ENOMEM } };
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].n, name) == 0)
			return map[i].v;
	ck_abort_msg("unknown errno name %s", name);
	return 0;
}

START_TEST(test_bad)
{
	char dir[4096], path[4200], cdir[4400];
	json_error_t je;
	dir_of(dir, sizeof(dir), "bad");
	snprintf(path, sizeof(path), "%s/bad.json", dir);
	json_t *root = json_load_file(path, 0, &je);
	ck_assert_msg(root, "%s: %s", path, je.text);
	json_t *cases = json_object_get(root, "cases");
	size_t n = json_array_size(cases), good = 0;
	ck_assert(n > 30);
	for (size_t i = 0; i < n; i++) {
		json_t *c = json_array_get(cases, i);
		const char *name = json_string_value(json_object_get(c, "name"));
		int want = errno_of(json_string_value(json_object_get(c, "errno")));
		struct smk_err err = { 0 };
		struct tokenizer *t;
		snprintf(cdir, sizeof(cdir), "%s/%s", dir, name);
		int rc = load_dir(cdir, &t, NULL, &err);
		tokenizer_free(t);
		bool ok = rc == want;
		json_t *words = json_object_get(c, "words");
		for (size_t k = 0; k < json_array_size(words); k++)
			if (!strstr(err.msg, json_string_value(json_array_get(words, k))))
				ok = false;
		if (ok)
			good++;
		else
			fprintf(stderr, "  bad/%s: rc %d (want %d), message: %s\n", name, rc, want, err.msg);
	}
	printf("bad inputs: %zu/%zu refused as expected\n", good, n);
	ck_assert_uint_eq(good, n);
	json_decref(root);
}
END_TEST

/* The valid tiny tokenizer.json cut at every length, and with bytes flipped:
 * always a clean error or a working tokenizer, never a crash (fork mode
 * reports one as a failure). */
START_TEST(test_mutations)
{
	char dir[4096], path[4200], tmp[] = "/tmp/smoke-tj-XXXXXX";
	dir_of(dir, sizeof(dir), "bad/valid");
	snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	char src[8192];
	size_t n = fread(src, 1, sizeof(src), f);
	fclose(f);
	ck_assert(n > 100 && n < sizeof(src));
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	char out[4200];
	snprintf(out, sizeof(out), "%s/tokenizer.json", tmp);
	unsigned seed = 12345;
	size_t loaded = 0, tries = 0;
	for (size_t round = 0; round < n + 600; round++) {
		char buf[8192];
		size_t m = n;
		memcpy(buf, src, n);
		if (round < n) {
			m = round;      /* truncation */
		} else {
			for (int k = 0; k < 3; k++) {
				seed = seed * 1103515245u + 12345u;
				size_t at = (seed >> 8) % n;
				static const char pool[] = "0123456789-\"[]{}:,. \\ae<>|\xe2\x96\x81";
				buf[at] = pool[(seed >> 20) % (sizeof(pool) - 1)];
			}
		}
		f = fopen(out, "wb");
		ck_assert_ptr_nonnull(f);
		fwrite(buf, 1, m, f);
		fclose(f);
		struct smk_err err = { 0 };
		struct tokenizer *t;
		int rc = load_dir(tmp, &t, NULL, &err);
		tries++;
		if (rc == 0) {
			size_t k;
			int32_t *ids = encode(t, "abc ab <|end|> c", 16, true, &k);
			free(ids);
			tokenizer_free(t);
			loaded++;
		} else {
			ck_assert_msg(err.msg[0] != '\0', "rc %d without a message", rc);
		}
	}
	unlink(out);
	rmdir(tmp);
	printf("mutations: %zu of %zu variants still load\n", loaded, tries);
	ck_assert(loaded > 0);
}
END_TEST

/* NFC of a hostile run of alternating marks is linear (counting sort). */
START_TEST(test_nfc_linear)
{
	size_t n = 1 << 20;
	uint32_t *in = malloc(sizeof(*in) * n);
	uint32_t *out = malloc(sizeof(*out) * 4 * n), *tmp = malloc(sizeof(*tmp) * 4 * n);
	ck_assert(in && out && tmp);
	in[0] = 'a';
	for (size_t i = 1; i < n; i++)
		in[i] = i & 1 ? 0x301 : 0x323;         /* classes 230, 220 */
	clock_t c0 = clock();
	size_t m = unicode_nfc(in, n, out, tmp);
	double s = (double)(clock() - c0) / CLOCKS_PER_SEC;
	/* a + U+0323 composes (U+1EA1), then U+0301 is not blocked by the
	 * remaining 220s: U+1EA1 + U+0301 has no composite. */
	ck_assert_uint_eq(out[0], 0x1EA1);
	ck_assert_uint_eq(m, n - 1);
	ck_assert_uint_eq(out[1], 0x323);
	ck_assert_uint_eq(out[m - 1], 0x301);
	ck_assert_msg(s < 2.0, "NFC of %zu marks took %.2f s", n, s);
	/* Known answers independent of the tables' source. */
	uint32_t hangul[] = { 0x1100, 0x1161, 0x11A8 }, r[16];
	ck_assert_uint_eq(unicode_nfc(hangul, 3, r, r + 8), 1);
	ck_assert_uint_eq(r[0], 0xAC01);
	uint32_t ohm[] = { 0x2126, 'e', 0x301 };
	ck_assert_uint_eq(unicode_nfc(ohm, 3, r, r + 8), 2);
	ck_assert_uint_eq(r[0], 0x3A9);
	ck_assert_uint_eq(r[1], 0xE9);
	free(in);
	free(out);
	free(tmp);
}
END_TEST

START_TEST(test_missing_dir)
{
	struct smk_err err = { 0 };
	struct tokenizer *t;
	ck_assert_int_eq(load_dir("/nonexistent/smoke", &t, NULL, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.msg, "tokenizer.json"));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("tokenizer_json");
	TCase *tc = tcase_create("hf");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_gpt2);
	tcase_add_test(tc, test_gpt2_prefix);
	tcase_add_test(tc, test_llama3);
	tcase_add_test(tc, test_qwen2);
	tcase_add_test(tc, test_spm_legacy);
	tcase_add_test(tc, test_spm_unk);
	tcase_add_test(tc, test_spm_unk_nofuse);
	tcase_add_test(tc, test_metaspace);
	tcase_add_test(tc, test_metaspace_first);
	tcase_add_loop_test(tc, test_big, 0, (int)(sizeof(big_names) / sizeof(big_names[0])));
	tcase_add_test(tc, test_llama3_specials);
	tcase_add_test(tc, test_qwen2_specials);
	tcase_add_test(tc, test_spm_specials);
	tcase_add_test(tc, test_bad);
	tcase_add_test(tc, test_ok_variants);
	tcase_add_test(tc, test_config_huge_int);
	tcase_add_test(tc, test_mutations);
	tcase_add_test(tc, test_nfc_linear);
	tcase_add_test(tc, test_missing_dir);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ck_run(suite());
}
