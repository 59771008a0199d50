/* test_grammar.c - the schema compiler and the token matcher.
 *
 * The schemas of schemas.json (shared with tests/integration/
 * test_structured.py) are compiled, and random walks over a vocabulary -
 * at each step a token drawn from the mask - must always end in text that
 * parses (jansson) and validates against the schema (the checker below,
 * written apart from the compiler).  Two vocabularies: a small SentencePiece
 * one built here (always), and the default model's (SMOKE_MODEL; skipped
 * without it).  At every step tokens outside the mask must be refused by
 * gmatch_accept, so the mask and the automaton agree.  Then bytes fed by
 * hand (valid and invalid JSON for a schema), and the keywords we refuse. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ck_main.h"
#include "formats/gguf.h"
#include "formats/gguf_build.h"
#include "grammar/grammar.h"
#include "tokenizer/tokenizer.h"

/* ---- the schemas ---- */

static json_t *load_schemas(void)
{
	const char *root = getenv("SMOKE_SOURCE_ROOT");
	char path[4096];
	snprintf(path, sizeof(path), "%s/tests/unit/grammar/schemas.json", root && *root ? root : ".");
	json_error_t je;
	json_t *s = json_load_file(path, 0, &je);
	ck_assert_msg(s != NULL, "%s: %s", path, je.text);
	ck_assert_msg(json_array_size(s) >= 30, "schemas.json has %zu schemas", json_array_size(s));
	return s;
}

/* ---- an independent checker for the keywords we generate ---- */

static size_t utf8_chars(const char *s, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xc0) != 0x80;
	return c;
}

static json_t *resolve_ref(json_t *doc, const char *ref)
{
	/* "#/$defs/name" only: what the schemas use */
	const char *p = strrchr(ref, '/');
	if (!strncmp(ref, "#/$defs/", 8))
		return json_object_get(json_object_get(doc, "$defs"), p + 1);
	return NULL;
}

static bool is_type(json_t *v, const char *t)
{
	if (!strcmp(t, "object"))
		return json_is_object(v);
	if (!strcmp(t, "array"))
		return json_is_array(v);
	if (!strcmp(t, "string"))
		return json_is_string(v);
	if (!strcmp(t, "integer"))
		return json_is_integer(v);
	if (!strcmp(t, "number"))
		return json_is_number(v);
	if (!strcmp(t, "boolean"))
		return json_is_boolean(v);
	if (!strcmp(t, "null"))
		return json_is_null(v);
	return false;
}

static bool valid(json_t *doc, json_t *s, json_t *v, char *why, size_t cap);

static bool fail_why(char *why, size_t cap, const char *what)
{
	snprintf(why, cap, "%s", what);
	return false;
}

static bool valid(json_t *doc, json_t *s, json_t *v, char *why, size_t cap)
{
	json_t *k;
	if ((k = json_object_get(s, "$ref")))
		return valid(doc, resolve_ref(doc, json_string_value(k)), v, why, cap);
	if ((k = json_object_get(s, "anyOf"))) {
		for (size_t i = 0; i < json_array_size(k); i++)
			if (valid(doc, json_array_get(k, i), v, why, cap))
				return true;
		return fail_why(why, cap, "no anyOf branch");
	}
	if ((k = json_object_get(s, "allOf")))
		for (size_t i = 0; i < json_array_size(k); i++)
			if (!valid(doc, json_array_get(k, i), v, why, cap))
				return false;
	if ((k = json_object_get(s, "const")) && !json_equal(k, v))
		return fail_why(why, cap, "const");
	if ((k = json_object_get(s, "enum"))) {
		bool found = false;
		for (size_t i = 0; i < json_array_size(k); i++)
			found |= json_equal(json_array_get(k, i), v);
		if (!found)
			return fail_why(why, cap, "enum");
	}
	if ((k = json_object_get(s, "type"))) {
		bool ok = false;
		if (json_is_string(k))
			ok = is_type(v, json_string_value(k));
		for (size_t i = 0; json_is_array(k) && i < json_array_size(k); i++)
			ok |= is_type(v, json_string_value(json_array_get(k, i)));
		if (!ok)
			return fail_why(why, cap, "type");
	}
	if (json_is_object(v)) {
		json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
		json_t *add = json_object_get(s, "additionalProperties");
		for (size_t i = 0; i < json_array_size(req); i++)
			if (!json_object_get(v, json_string_value(json_array_get(req, i))))
				return fail_why(why, cap, "required");
		const char *key;
		json_t *val;
		json_object_foreach(v, key, val) {
			json_t *ps = props ? json_object_get(props, key) : NULL;
			if (ps) {
				if (!valid(doc, ps, val, why, cap))
					return false;
			} else if (add && json_is_false(add)) {
				return fail_why(why, cap, "additionalProperties");
			} else if (add && json_is_object(add) && !valid(doc, add, val, why, cap)) {
				return false;
			}
		}
	}
	if (json_is_array(v)) {
		json_t *items = json_object_get(s, "items");
		size_t n = json_array_size(v);
		if ((k = json_object_get(s, "minItems")) && n < (size_t)json_integer_value(k))
			return fail_why(why, cap, "minItems");
		if ((k = json_object_get(s, "maxItems")) && n > (size_t)json_integer_value(k))
			return fail_why(why, cap, "maxItems");
		for (size_t i = 0; items && i < n; i++)
			if (!valid(doc, items, json_array_get(v, i), why, cap))
				return false;
	}
	if (json_is_string(v)) {
		size_t n = utf8_chars(json_string_value(v), json_string_length(v));
		if ((k = json_object_get(s, "minLength")) && n < (size_t)json_integer_value(k))
			return fail_why(why, cap, "minLength");
		if ((k = json_object_get(s, "maxLength")) && n > (size_t)json_integer_value(k))
			return fail_why(why, cap, "maxLength");
	}
	if (json_is_number(v)) {
		double x = json_number_value(v);
		if ((k = json_object_get(s, "minimum")) && x < json_number_value(k))
			return fail_why(why, cap, "minimum");
		if ((k = json_object_get(s, "maximum")) && x > json_number_value(k))
			return fail_why(why, cap, "maximum");
		if ((k = json_object_get(s, "exclusiveMinimum")) && x <= json_number_value(k))
			return fail_why(why, cap, "exclusiveMinimum");
		if ((k = json_object_get(s, "exclusiveMaximum")) && x >= json_number_value(k))
			return fail_why(why, cap, "exclusiveMaximum");
	}
	return true;
}

/* ---- vocabularies ---- */

/* A small SentencePiece vocabulary: <unk> <s> </s>, the 256 byte tokens,
 * and pieces that JSON output is made of (and some that cut across it). */
static struct tokenizer *tiny_vocab(void)
{
	static const char *const words[] = {
		"{", "}", "[", "]", ",", ":", "\"", "{\"", "\":", "\",", "\"}", "\"]", "\":\"",
		",\"", "},", "],", "[]", "{}", "true", "false", "null", "tr", "ue", "nu", "ll",
		"0", "1", "12", "123", "0.", ".5", "-", "-1", "e+", "E-", "10", "100",
		"\xe2\x96\x81", "\xe2\x96\x81\"", "\xe2\x96\x81the", "\xe2\x96\x81" "cat", "name", "age",
		"ab", "abc", "red", "green", "blue", "caf\xc3\xa9", "\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac",
		"\\n", "\\\"", "\\u00e9", "\\ud83d", "\n", "\n\xe2\x96\x81\xe2\x96\x81", "kind", "circle",
		"square", "steps", "x", "y", "v", "kids", "\"x", "\"y\":", "q\\\"uote", "na\xc3\xafve",
		"fixed", "item", "grams", "title", ",\n", "\"\n", "}\n", "a", "k", "\xe2\x96\x81\xe2\x96\x81\xe2\x96\x81",
	};
	const size_t n_words = sizeof(words) / sizeof(words[0]);
	const size_t n = 3 + 256 + n_words;
	struct gguf_builder *b;
	struct gguf *g;
	struct tokenizer *t;
	struct smk_err err = { 0 };
	ck_assert_int_eq(gguf_builder_new(&b, "tiny-vocab"), 0);
	gguf_builder_set_str(b, "general.architecture", "llama", 5);
	gguf_builder_set_str(b, "tokenizer.ggml.model", "llama", 5);
	gguf_builder_begin_str_arr(b, "tokenizer.ggml.tokens", n);
	gguf_builder_push_str(b, "<unk>", 5);
	gguf_builder_push_str(b, "<s>", 3);
	gguf_builder_push_str(b, "</s>", 4);
	for (int i = 0; i < 256; i++) {
		char s[8];
		snprintf(s, sizeof(s), "<0x%02X>", i);
		gguf_builder_push_str(b, s, strlen(s));
	}
	for (size_t i = 0; i < n_words; i++)
		gguf_builder_push_str(b, words[i], strlen(words[i]));
	float *scores = gguf_builder_alloc(b, sizeof(float) * n);
	int32_t *types = gguf_builder_alloc(b, sizeof(int32_t) * n);
	for (size_t i = 0; i < n; i++) {
		scores[i] = -(float)i;
		types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
	}
	gguf_builder_set_arr(b, "tokenizer.ggml.scores", GGUF_VT_F32, scores, n);
	gguf_builder_set_arr(b, "tokenizer.ggml.token_type", GGUF_VT_I32, types, n);
	gguf_builder_set_u32(b, "tokenizer.ggml.unknown_token_id", 0);
	gguf_builder_set_u32(b, "tokenizer.ggml.bos_token_id", 1);
	gguf_builder_set_u32(b, "tokenizer.ggml.eos_token_id", 2);
	ck_assert_msg(gguf_builder_finish(b, &g, &err) == 0, "%s", err.msg);
	ck_assert_msg(tokenizer_load_gguf(&t, g, &err) == 0, "%s", err.msg);
	gguf_close(g);
	return t;
}

static const char *model_path(void)
{
	static char buf[4096];
	const char *v = getenv("SMOKE_MODEL");
	if (v && *v)
		return v;
	const char *home = getenv("HOME");
	snprintf(buf, sizeof(buf), "%s/.cache/smoke/models/gemma-3-270m-q4_k_m.gguf", home ? home : ".");
	return buf;
}

static struct tokenizer *model_vocab_or_skip(void)
{
	const char *p = model_path();
	FILE *f = fopen(p, "rb");
	if (!f) {
		fprintf(stderr, "SKIP: no model at %s (scripts/fetch-model or set SMOKE_MODEL)\n", p);
		return NULL;
	}
	fclose(f);
	struct gguf *g;
	struct tokenizer *t;
	struct smk_err err = { 0 };
	ck_assert_msg(gguf_open(&g, p, &err) == 0, "%s", err.msg);
	ck_assert_msg(tokenizer_load_gguf(&t, g, &err) == 0, "%s", err.msg);
	gguf_close(g);
	return t;
}

static struct grammar *compile_ok(const char *schema_text, bool strict);

/* ---- random walks ---- */

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static bool bit(const uint32_t *m, int32_t id)
{
	return m[id >> 5] >> (id & 31) & 1;
}

struct walker {
	const struct tokenizer *t;
	struct gvocab *v;
	int32_t n_vocab;
	int32_t *ids;                  /* allowed ids scratch */
	bool *closer;                  /* tokens that end something: " } ] or an end token */
};

static void walker_init(struct walker *w, const struct tokenizer *t)
{
	struct smk_err err = { 0 };
	w->t = t;
	ck_assert_msg(gvocab_new(&w->v, t, &err) == 0, "%s", err.msg);
	w->n_vocab = gvocab_n_vocab(w->v);
	w->ids = malloc(sizeof(int32_t) * (size_t)w->n_vocab);
	w->closer = calloc((size_t)w->n_vocab, 1);
	ck_assert(w->ids && w->closer);
	for (int32_t id = 0; id < w->n_vocab; id++) {
		char b[8];
		size_t n = tokenizer_piece(t, id, false, b, sizeof(b));
		w->closer[id] = tokenizer_is_eog(t, id) ||
				(n == 1 && (b[0] == '"' || b[0] == '}' || b[0] == ']'));
	}
}

static void walker_free(struct walker *w)
{
	gvocab_free(w->v);
	free(w->ids);
	free(w->closer);
}

/* One walk; returns the text (malloc'd).  Checks the mask against
 * gmatch_accept along the way.  budget 0: steered towards the end after a
 * while; else at most budget tokens through gmatch_mask_budget, drawn
 * without any steering. */
static char *walk_budget(struct walker *w, struct gmatch *m, uint64_t *rng, int *n_steps, int budget)
{
	size_t cap = 1 << 16, len = 0;
	char *text = malloc(cap);
	ck_assert_ptr_nonnull(text);
	gmatch_reset(m);
	int step;
	for (step = 0; step < 4000 && !gmatch_done(m); step++) {
		/* at the budget's end the value must be complete */
		if (budget && step == budget && gmatch_can_end(m))
			break;
		ck_assert_msg(!budget || step < budget, "over the budget of %d tokens: \"%.*s\"", budget,
			      (int)len, text);
		const uint32_t *mask = budget ? gmatch_mask_budget(m, budget - step) : gmatch_mask(m);
		int n = 0, n_close = 0;
		for (int32_t id = 0; id < w->n_vocab; id++)
			if (bit(mask, id))
				w->ids[n++] = id;
		ck_assert_msg(n > 0, "step %d: empty mask after \"%.*s\"", step, (int)len, text);
		ck_assert_int_eq(n, gmatch_mask_count(m));
		/* a few tokens outside the mask must be refused (a budget's
		 * mask also leaves out tokens that the automaton takes) */
		for (int k = 0; k < 4 && !budget; k++) {
			int32_t id = (int32_t)(rng_next(rng) % (uint64_t)w->n_vocab);
			if (!bit(mask, id))
				ck_assert_msg(gmatch_accept(m, id) == -EINVAL,
					      "token %d outside the mask accepted after \"%.*s\"", id, (int)len, text);
		}
		/* after a while, steer towards the end of the value */
		int32_t pick = w->ids[rng_next(rng) % (uint64_t)n];
		if (!budget && step > 40 && rng_next(rng) % 2) {
			for (int i = 0; i < n; i++)
				if (w->closer[w->ids[i]])
					w->ids[n_close++] = w->ids[i];
			if (n_close)
				pick = w->ids[rng_next(rng) % (uint64_t)n_close];
		}
		ck_assert_msg(gmatch_accept(m, pick) == 0, "token %d of the mask refused", pick);
		if (tokenizer_is_eog(w->t, pick))
			break;
		char piece[512];
		size_t pn = tokenizer_piece(w->t, pick, false, piece, sizeof(piece));
		ck_assert(pn <= sizeof(piece));
		if (len + pn + 1 > cap) {
			cap *= 2;
			text = realloc(text, cap);
			ck_assert_ptr_nonnull(text);
		}
		memcpy(text + len, piece, pn);
		len += pn;
	}
	ck_assert_msg(gmatch_done(m) || (budget && gmatch_can_end(m)), "no end after %d steps: \"%.60s...\"",
		      step, text);
	text[len] = 0;
	*n_steps = step;
	return text;
}

static char *walk(struct walker *w, struct gmatch *m, uint64_t *rng, int *n_steps)
{
	return walk_budget(w, m, rng, n_steps, 0);
}

static void walk_all(const struct tokenizer *t, int walks_per_schema, const char *label)
{
	json_t *schemas = load_schemas();
	struct walker w;
	walker_init(&w, t);
	uint64_t rng = 12345;
	size_t i;
	json_t *item;
	long total_steps = 0, total_walks = 0;
	uint64_t computed = 0, cached = 0;
	double t0 = (double)clock() / CLOCKS_PER_SEC;
	json_array_foreach(schemas, i, item) {
		const char *name = json_string_value(json_object_get(item, "name"));
		json_t *schema = json_object_get(item, "schema");
		bool strict = json_is_true(json_object_get(item, "strict"));
		struct grammar *g;
		struct grammar_error ge;
		int rc = grammar_compile_schema(&g, schema, strict, &ge);
		ck_assert_msg(rc == 0, "%s: compile: %s (%s at %s)", name, ge.msg, ge.keyword, ge.path);
		struct gmatch *m;
		struct smk_err err = { 0 };
		ck_assert_int_eq(gmatch_new(&m, g, w.v, 8u << 20, &err), 0);
		for (int k = 0; k < 2 * walks_per_schema; k++) {
			/* half steered, half within a token budget */
			int steps, budget = 0;
			if (k >= walks_per_schema)
				budget = (int)grammar_min_len(g) + 1 + (int)(rng_next(&rng) % 40);
			char *text = walk_budget(&w, m, &rng, &steps, budget);
			json_error_t je;
			json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
			ck_assert_msg(v != NULL, "%s/%s walk %d: not JSON (%s): %s", label, name, k, je.text, text);
			char why[64] = "";
			ck_assert_msg(valid(schema, schema, v, why, sizeof(why)),
				      "%s/%s walk %d: fails %s: %s", label, name, k, why, text);
			if (k == 0 || k == walks_per_schema)
				printf("%s/%-22s %s%s\n", label, name, budget ? "(budget) " : "",
				       strlen(text) > 100 ? "(long)" : text);
			json_decref(v);
			free(text);
			total_steps += steps;
			total_walks++;
		}
		uint64_t c1, c2;
		gmatch_stats(m, &c1, &c2);
		computed += c1;
		cached += c2;
		gmatch_free(m);
		grammar_free(g);
	}
	double dt = (double)clock() / CLOCKS_PER_SEC - t0;
	uint32_t n_nodes;
	size_t bytes = gvocab_bytes(w.v, &n_nodes);
	printf("%s: vocabulary of %d tokens, trie of %u nodes, %.1f MiB\n", label, w.n_vocab, n_nodes,
	       (double)bytes / (1 << 20));
	printf("%s: %zu schemas, %ld walks, %ld tokens, %.1f us per token (masks: %llu computed, %llu cached)\n",
	       label, json_array_size(schemas), total_walks, total_steps,
	       total_steps ? dt * 1e6 / (double)total_steps : 0.0,
	       (unsigned long long)computed, (unsigned long long)cached);
	walker_free(&w);
	json_decref(schemas);
}

/* The same walk twice: the second finds every mask in the cache. */
START_TEST(cache_hits)
{
	struct tokenizer *t = tiny_vocab();
	struct walker w;
	walker_init(&w, t);
	struct grammar *g = compile_ok("{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":"
				       "{\"a\":{\"type\":\"string\"},\"b\":{\"type\":\"number\"}}}}", false);
	struct gmatch *m;
	struct smk_err err = { 0 };
	ck_assert_int_eq(gmatch_new(&m, g, w.v, 8u << 20, &err), 0);
	uint64_t rng = 7, rng2 = 7, c1, h1, c2, h2;
	int steps;
	char *a = walk(&w, m, &rng, &steps);
	gmatch_stats(m, &c1, &h1);
	char *b = walk(&w, m, &rng2, &steps);
	gmatch_stats(m, &c2, &h2);
	ck_assert_str_eq(a, b);
	ck_assert_uint_eq(c1, c2);
	ck_assert_uint_gt(h2, h1);
	free(a);
	free(b);
	gmatch_free(m);
	grammar_free(g);
	walker_free(&w);
	tokenizer_free(t);
}
END_TEST

START_TEST(walks_tiny_vocab)
{
	struct tokenizer *t = tiny_vocab();
	walk_all(t, 40, "tiny");
	tokenizer_free(t);
}
END_TEST

START_TEST(walks_model_vocab)
{
	struct tokenizer *t = model_vocab_or_skip();
	if (!t)
		return;
	walk_all(t, 6, "model");
	tokenizer_free(t);
}
END_TEST

/* ---- bytes by hand ---- */

static struct grammar *compile_ok(const char *schema_text, bool strict)
{
	json_error_t je;
	json_t *s = json_loads(schema_text, 0, &je);
	ck_assert_msg(s != NULL, "%s", je.text);
	struct grammar *g;
	struct grammar_error ge;
	int rc = grammar_compile_schema(&g, s, strict, &ge);
	ck_assert_msg(rc == 0, "compile %s: %s", schema_text, ge.msg);
	json_decref(s);
	return g;
}

/* Does the whole text match (fed byte by byte, then complete)? */
static bool matches(struct gmatch *m, const char *text)
{
	gmatch_reset(m);
	for (const char *p = text; *p; p++)
		if (gmatch_feed(m, p, 1))
			return false;
	return gmatch_can_end(m);
}

START_TEST(bytes_by_hand)
{
	struct tokenizer *t = tiny_vocab();
	struct gvocab *v;
	struct smk_err err = { 0 };
	ck_assert_int_eq(gvocab_new(&v, t, &err), 0);
	static const struct {
		const char *schema;
		const char *ok[6];
		const char *bad[8];
	} cases[] = {
		{ "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]}",
		  { "{\"a\":1,\"b\":\"x\"}", "{\"b\":\"\"}", "{ \"a\" : -0 , \"b\" : \"\\u00e9\\n\" }", NULL },
		  { "{\"a\":1}", "{\"b\":\"x\",\"a\":1}", "{\"b\":\"x\",\"c\":1}", "{\"a\":01,\"b\":\"\"}",
		    "{\"b\":\"x\"} ", "{\"b\":\"\\ud800\"}", "{\"b\":\"\x01\"}", NULL } },
		{ "{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"minimum\":-3,\"maximum\":40},\"minItems\":1,\"maxItems\":2}",
		  { "[-3]", "[0,40]", "[ 7 ]", NULL },
		  { "[]", "[1,2,3]", "[41]", "[-4]", "[400]", "[1.0]", "[1e1]", NULL } },
		{ "{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}",
		  { "\"ab\"", "\"\xc3\xa9\xc3\xa9\xc3\xa9\"", "\"\\n\\t\"", NULL },
		  { "\"a\"", "\"abcd\"", "\"\xc3\"", "\"\xc0\x80\"", "\"\xed\xa0\x80x\"", NULL } },
		{ "{\"enum\":[1,10,\"x\",null]}",
		  { "1", "10", "\"x\"", "null", NULL },
		  { "100", "2", "\"y\"", "nul", "1 ", NULL } },
		{ "{\"anyOf\":[{\"type\":\"object\",\"properties\":{\"k\":{\"const\":1}},\"required\":[\"k\"]},"
		  "{\"type\":\"object\",\"properties\":{\"k\":{\"const\":2},\"z\":{\"type\":\"boolean\"}},\"required\":[\"k\",\"z\"]}]}",
		  { "{\"k\":1}", "{\"k\":2,\"z\":true}", NULL },
		  { "{\"k\":2}", "{\"k\":1,\"z\":true}", "{\"k\":3}", NULL } },
		{ "{\"type\":\"number\"}",
		  { "0", "-1.5e+10", "3.25", "12E-3", NULL },
		  { "01", "1.", ".5", "-", "1e", "1e123", "+1", NULL } },
		{ "{\"type\":\"number\",\"minimum\":0.1,\"exclusiveMaximum\":2.5}",
		  { "0.1", "2.499999", "1", "0.25", NULL },
		  { "0.099999", "2.5", "0", "-1", "1e0", "0.1234567", "3", NULL } },
		{ "{\"type\":\"number\",\"exclusiveMinimum\":-3,\"maximum\":-0.5}",
		  { "-2.999999", "-0.5", "-1", "-2", NULL },
		  { "-3", "-0.4", "0", "-0", "-3.5", NULL } },
		{ "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"boolean\"}}",
		  { "{}", "{\"any\":true,\"key\":false}", NULL },
		  { "{\"a\":1}", "{\"a\":true,}", NULL } },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct grammar *g = compile_ok(cases[c].schema, false);
		struct gmatch *m;
		ck_assert_int_eq(gmatch_new(&m, g, v, 1 << 20, &err), 0);
		for (int i = 0; cases[c].ok[i]; i++)
			ck_assert_msg(matches(m, cases[c].ok[i]), "%s: refused %s", cases[c].schema, cases[c].ok[i]);
		for (int i = 0; cases[c].bad[i]; i++)
			ck_assert_msg(!matches(m, cases[c].bad[i]), "%s: accepted %s", cases[c].schema, cases[c].bad[i]);
		gmatch_free(m);
		grammar_free(g);
	}
	/* done: nothing may follow a closed object, and an end token ends it */
	struct grammar *g = compile_ok("{\"type\":\"object\",\"properties\":{}}", false);
	struct gmatch *m;
	ck_assert_int_eq(gmatch_new(&m, g, v, 1 << 20, &err), 0);
	ck_assert(!gmatch_done(m));
	ck_assert_int_eq(gmatch_feed(m, "{}", 2), 0);
	ck_assert(gmatch_done(m));
	gmatch_reset(m);
	ck_assert_int_eq(gmatch_accept(m, 2), -EINVAL);   /* </s> before the value */
	ck_assert_int_eq(gmatch_feed(m, "{}", 2), 0);
	ck_assert_int_eq(gmatch_accept(m, 2), 0);
	gmatch_free(m);
	grammar_free(g);
	/* a number at the top may end or go on: the end token is in the mask */
	g = compile_ok("{\"type\":\"integer\"}", false);
	ck_assert_int_eq(gmatch_new(&m, g, v, 1 << 20, &err), 0);
	ck_assert_int_eq(gmatch_feed(m, "12", 2), 0);
	ck_assert(!gmatch_done(m) && gmatch_can_end(m));
	ck_assert(bit(gmatch_mask(m), 2));
	gmatch_free(m);
	grammar_free(g);
	/* json_object mode */
	struct grammar_error ge;
	ck_assert_int_eq(grammar_compile_any_object(&g, &ge), 0);
	ck_assert_int_eq(gmatch_new(&m, g, v, 1 << 20, &err), 0);
	ck_assert(matches(m, "{\"a\":[1,{\"b\":null},\"c\"],\"d\":{}}"));
	ck_assert(!matches(m, "[1]"));
	ck_assert(!matches(m, "\"s\""));
	gmatch_free(m);
	grammar_free(g);
	gvocab_free(v);
	tokenizer_free(t);
}
END_TEST

/* Large schemas compile and match quickly: an enum of 3000 strings
 * (narrowed by binary search), a chain of 2000 references. */
START_TEST(big_schemas)
{
	struct tokenizer *t = tiny_vocab();
	struct gvocab *v;
	struct smk_err err = { 0 };
	ck_assert_int_eq(gvocab_new(&v, t, &err), 0);
	json_t *en = json_array();
	for (int i = 2999; i >= 0; i--) {
		char b[16];
		snprintf(b, sizeof(b), "v%d", i);
		json_array_append_new(en, json_string(b));
	}
	json_t *s = json_pack("{s:o}", "enum", en);
	json_t *defs = json_object();
	for (int i = 0; i < 2000; i++) {
		char name[16], ref[32];
		snprintf(name, sizeof(name), "a%d", i);
		snprintf(ref, sizeof(ref), "#/$defs/a%d", i + 1);
		json_object_set_new(defs, name, i == 1999 ? json_pack("{s:s}", "type", "integer")
							  : json_pack("{s:s}", "$ref", ref));
	}
	json_t *chain = json_pack("{s:o, s:s}", "$defs", defs, "$ref", "#/$defs/a0");
	json_t *schemas[2] = { s, chain };
	const char *ok[2][3] = { { "\"v1234\"", "\"v0\"", "\"v2999\"" }, { "5", "-12", "0" } };
	const char *bad[2][3] = { { "\"v3000\"", "\"v01\"", "\"w1\"" }, { "1.5", "\"5\"", "01" } };
	for (int k = 0; k < 2; k++) {
		struct grammar *g;
		struct grammar_error ge;
		ck_assert_msg(grammar_compile_schema(&g, schemas[k], false, &ge) == 0, "%s", ge.msg);
		struct gmatch *m;
		ck_assert_int_eq(gmatch_new(&m, g, v, 1 << 20, &err), 0);
		for (int i = 0; i < 3; i++) {
			ck_assert_msg(matches(m, ok[k][i]), "refused %s", ok[k][i]);
			ck_assert_msg(!matches(m, bad[k][i]), "accepted %s", bad[k][i]);
		}
		gmatch_reset(m);
		ck_assert_int_gt(gmatch_mask_count((gmatch_mask(m), m)), 0);
		gmatch_free(m);
		grammar_free(g);
		json_decref(schemas[k]);
	}
	gvocab_free(v);
	tokenizer_free(t);
}
END_TEST

/* ---- refusals ---- */

START_TEST(refused_keywords)
{
	static const struct {
		const char *schema;
		bool strict;
		int rc;
		const char *keyword;
	} cases[] = {
		{ "{\"type\":\"string\",\"pattern\":\"^a$\"}", false, -ENOTSUP, "pattern" },
		{ "{\"type\":\"string\",\"format\":\"email\"}", false, -ENOTSUP, "format" },
		{ "{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", false, -ENOTSUP, "oneOf" },
		{ "{\"type\":\"integer\",\"multipleOf\":3}", false, -ENOTSUP, "multipleOf" },
		{ "{\"type\":\"object\",\"patternProperties\":{\"a\":{}}}", false, -ENOTSUP, "patternProperties" },
		{ "{\"type\":\"array\",\"uniqueItems\":true}", false, -ENOTSUP, "uniqueItems" },
		{ "{\"type\":\"array\",\"prefixItems\":[{}]}", false, -ENOTSUP, "prefixItems" },
		{ "{\"type\":\"number\",\"minimum\":1e10}", false, -E2BIG, "minimum" },
		{ "{\"type\":\"number\",\"minimum\":0.1000001,\"maximum\":0.1000009}", false, -EINVAL, "minimum" },
		{ "{\"allOf\":[{\"type\":\"string\"},{\"maxLength\":3}]}", false, -ENOTSUP, "allOf" },
		{ "{\"not\":{\"type\":\"string\"}}", false, -ENOTSUP, "not" },
		{ "{\"type\":\"object\",\"properties\":{\"a\":{\"if\":{}}}}", false, -ENOTSUP, "if" },
		{ "{\"$ref\":\"other.json#/a\"}", false, -ENOTSUP, "$ref" },
		{ "{\"type\":\"object\",\"minProperties\":1}", false, -ENOTSUP, "minProperties" },
		{ "{\"type\":\"object\",\"properties\":{\"a\":{}},\"required\":[\"b\"]}", false, -ENOTSUP, "required" },
		{ "{\"enum\":[\"a\"],\"maxLength\":3}", false, -ENOTSUP, "maxLength" },
		{ "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},\"required\":[\"a\"]}", true, -EINVAL,
		  "additionalProperties" },
		{ "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},\"additionalProperties\":false}", true,
		  -EINVAL, "required" },
		{ "{\"type\":\"strin\"}", false, -EINVAL, "type" },
		{ "{\"enum\":[]}", false, -EINVAL, "enum" },
		{ "{\"$ref\":\"#/$defs/missing\"}", false, -EINVAL, "$ref" },
		{ "{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}", false, -EINVAL, "$ref" },
		{ "{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}", false, -EINVAL, "minimum" },
		{ "{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", false, -EINVAL, "maxItems" },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		json_error_t je;
		json_t *s = json_loads(cases[c].schema, 0, &je);
		ck_assert_msg(s != NULL, "%s", je.text);
		struct grammar *g = NULL;
		struct grammar_error ge;
		int rc = grammar_compile_schema(&g, s, cases[c].strict, &ge);
		ck_assert_msg(rc == cases[c].rc && !strcmp(ge.keyword, cases[c].keyword),
			      "%s: rc %d keyword '%s' (%s); want %d '%s'", cases[c].schema, rc, ge.keyword,
			      ge.msg, cases[c].rc, cases[c].keyword);
		ck_assert_ptr_null(g);
		json_decref(s);
	}
	/* the path names where the keyword is */
	json_t *s = json_loads("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":"
			       "{\"type\":\"string\",\"format\":\"uri\"}}}}", 0, NULL);
	struct grammar *g;
	struct grammar_error ge;
	ck_assert_int_eq(grammar_compile_schema(&g, s, false, &ge), -ENOTSUP);
	ck_assert_str_eq(ge.path, "#/properties/a/items");
	json_decref(s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("grammar");
	TCase *tc = tcase_create("grammar");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, refused_keywords);
	tcase_add_test(tc, bytes_by_hand);
	tcase_add_test(tc, cache_hits);
	tcase_add_test(tc, big_schemas);
	tcase_add_test(tc, walks_tiny_vocab);
	tcase_add_test(tc, walks_model_vocab);
	suite_add_tcase(s, tc);
	return ck_run(s);
}
