/* Tool calls in the chat formats (daemon/engine/toolcall.h, chat.h's
 * chat_encode_tools) and the grammar that constrains a call:
 *
 *  - prompts: the conversation of tests/fixtures/chat/tools-conversation.json
 *    (tools, an assistant's tool calls, tool results, a system message)
 *    encoded with the real vocabularies of the test models (tiny-qwen2:
 *    chatml; tiny-llama-bpe: llama3; the default Gemma 3 model: gemma),
 *    turned back into text token by token (special tokens as their text),
 *    must equal what the real templates render (the fixtures
 *    tools-qwen2.5.txt and tools-llama3.1.txt, made by
 *    scripts/make-tool-prompt-fixtures.py with jinja2 from the models'
 *    templates); Gemma, whose template has no tools, against the shape
 *    chat.h states, built from the same Qwen text.  Skipped per model when
 *    it is absent (scripts/make-test-models, scripts/fetch-model).
 *  - reading a call: toolcall_scan and toolcall_args_end on whole, partial
 *    and foreign texts;
 *  - the call's grammar: toolcall_schema compiled with its frame accepts
 *    the format's call text and nothing else around it; a $ref of a
 *    function's parameters still resolves; gmatch_mask_optional allows
 *    exactly the tokens that cannot begin a call plus those that begin it
 *    validly. */
#include <check.h>

#include "ck_main.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/chat.h"
#include "engine/toolcall.h"
#include "formats/gguf.h"
#include "grammar/grammar.h"
#include "tokenizer/tokenizer.h"

static char *fixture_text(const char *name)
{
	char path[4096];
	const char *dir = getenv("SMOKE_FIXTURES");
	snprintf(path, sizeof(path), "%s/chat/%s", dir ? dir : "tests/fixtures", name);
	FILE *f = fopen(path, "rb");
	ck_assert_msg(f, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *s = malloc((size_t)n + 1);
	ck_assert(s && fread(s, 1, (size_t)n, f) == (size_t)n);
	s[n] = 0;
	fclose(f);
	return s;
}

/* The tokenizer of a test model, or NULL (skip) when it is absent.
 * "o200k": gpt-oss's vocabulary (SMOKE_O200K_DIR's ggml-vocab-gpt-oss.gguf,
 * scripts/fetch-o200k). */
static struct tokenizer *model_vocab(const char *file, struct gguf **gout)
{
	char path[4096];
	const char *dir = getenv("SMOKE_TEST_MODELS");
	if (!strcmp(file, "o200k") && getenv("SMOKE_O200K_DIR"))
		snprintf(path, sizeof(path), "%s/ggml-vocab-gpt-oss.gguf", getenv("SMOKE_O200K_DIR"));
	else if (!strcmp(file, "o200k"))
		snprintf(path, sizeof(path), "%s/.cache/smoke/o200k/ggml-vocab-gpt-oss.gguf", getenv("HOME"));
	else if (!strcmp(file, "gemma-3-270m-q4_k_m.gguf") && getenv("SMOKE_MODEL"))
		snprintf(path, sizeof(path), "%s", getenv("SMOKE_MODEL"));
	else if (!strcmp(file, "gemma-3-270m-q4_k_m.gguf"))
		snprintf(path, sizeof(path), "%s/.cache/smoke/models/%s", getenv("HOME"), file);
	else if (dir)
		snprintf(path, sizeof(path), "%s/%s", dir, file);
	else
		snprintf(path, sizeof(path), "%s/.cache/smoke/test-models/%s", getenv("HOME"), file);
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "SKIP: no model at %s\n", path);
		return NULL;
	}
	fclose(f);
	struct gguf *g;
	struct tokenizer *t;
	struct smk_err err = { 0 };
	ck_assert_msg(gguf_open(&g, path, &err) == 0, "%s", err.msg);
	ck_assert_msg(tokenizer_load_gguf(&t, g, &err) == 0, "%s", err.msg);
	*gout = g;
	return t;
}

/* The conversation of the fixture as chat messages (calls' arguments
 * written as tojson writes them).  Freed by conv_free. */
struct conv {
	json_t *root;
	struct chat_msg m[16];
	struct chat_call c[16][4];
	int n;
};

static void conv_load(struct conv *cv, const char *key)
{
	char *text = fixture_text("tools-conversation.json");
	json_error_t je;
	cv->root = json_loads(text, 0, &je);
	free(text);
	ck_assert_msg(cv->root, "%s", je.text);
	json_t *msgs = json_object_get(cv->root, key);
	cv->n = (int)json_array_size(msgs);
	ck_assert_int_le(cv->n, 16);
	for (int i = 0; i < cv->n; i++) {
		json_t *m = json_array_get(msgs, (size_t)i), *content = json_object_get(m, "content");
		struct chat_msg *o = &cv->m[i];
		memset(o, 0, sizeof(*o));
		o->role = json_string_value(json_object_get(m, "role"));
		o->content = json_is_string(content) ? json_string_value(content) : "";
		o->len = strlen(o->content);
		json_t *calls = json_object_get(m, "tool_calls");
		for (size_t k = 0; k < json_array_size(calls); k++) {
			json_t *fn = json_object_get(json_array_get(calls, k), "function");
			cv->c[i][k].name = json_string_value(json_object_get(fn, "name"));
			cv->c[i][k].args = json_dumps(json_object_get(fn, "arguments"), 0);
			o->n_calls++;
		}
		o->calls = o->n_calls ? cv->c[i] : NULL;
	}
}

static void conv_free(struct conv *cv)
{
	for (int i = 0; i < cv->n; i++)
		for (int k = 0; k < cv->m[i].n_calls; k++)
			free((char *)cv->c[i][k].args);
	json_decref(cv->root);
}

/* The prompt's tokens as text, special tokens written out. */
static char *prompt_text(const struct tokenizer *t, const int32_t *ids, int n)
{
	size_t cap = 1 << 16, len = 0;
	char *s = malloc(cap);
	ck_assert_ptr_nonnull(s);
	for (int i = 0; i < n; i++) {
		size_t k = tokenizer_piece(t, ids[i], true, s + len, cap - len - 1);
		ck_assert_uint_lt(len + k, cap - 1);
		len += k;
	}
	s[len] = 0;
	return s;
}

static char *encode_text(enum chat_format f, const struct tokenizer *t, struct conv *cv, json_t *tools)
{
	int32_t *ids;
	int n;
	struct smk_err err = { 0 };
	ck_assert_msg(chat_encode_tools(f, t, cv->m, cv->n, tools, 8192, &ids, &n, &err) == 0, "%s", err.msg);
	char *s = prompt_text(t, ids, n);
	free(ids);
	return s;
}

/* want with the tokenizer's BOS text in front when it adds one. */
static void expect_text(const struct tokenizer *t, const char *got, const char *want)
{
	char bos[64] = "";
	if (tokenizer_add_bos(t) && tokenizer_bos(t) >= 0)
		bos[tokenizer_piece(t, tokenizer_bos(t), true, bos, sizeof(bos) - 1)] = 0;
	size_t lb = strlen(bos);
	ck_assert_msg(!strncmp(got, bos, lb) && !strcmp(got + lb, want),
		      "prompt differs from the template's:\n---- got ----\n%s\n---- want ----\n%s%s", got, bos, want);
}

START_TEST(prompt_chatml_as_qwen25)
{
	struct gguf *g;
	struct tokenizer *t = model_vocab("tiny-qwen2.gguf", &g);
	if (!t)
		return;
	ck_assert_int_eq(chat_detect(g, t), CHAT_CHATML);
	struct conv cv;
	conv_load(&cv, "messages");
	char *got = encode_text(CHAT_CHATML, t, &cv, json_object_get(cv.root, "tools"));
	char *want = fixture_text("tools-qwen2.5.txt");
	expect_text(t, got, want);
	free(got);
	free(want);
	conv_free(&cv);
	tokenizer_free(t);
	gguf_close(g);
}
END_TEST

START_TEST(prompt_llama3_as_llama31)
{
	struct gguf *g;
	struct tokenizer *t = model_vocab("tiny-llama-bpe.gguf", &g);
	if (!t)
		return;
	ck_assert_int_eq(chat_detect(g, t), CHAT_LLAMA3);
	struct conv cv;
	conv_load(&cv, "messages_llama");
	char *got = encode_text(CHAT_LLAMA3, t, &cv, json_object_get(cv.root, "tools"));
	char *want = fixture_text("tools-llama3.1.txt");
	expect_text(t, got, want);
	free(got);
	free(want);
	/* two calls in one message: the template refuses, so do we */
	conv_load(&cv, "messages");
	int32_t *ids;
	int n;
	struct smk_err err = { 0 };
	ck_assert_int_eq(chat_encode_tools(CHAT_LLAMA3, t, cv.m, cv.n, json_object_get(cv.root, "tools"),
					   8192, &ids, &n, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "one per assistant message"));
	conv_free(&cv);
	tokenizer_free(t);
	gguf_close(g);
}
END_TEST

/* harmony: gpt-oss's template (its tools declaration, a call and its
 * result, the call's content as analysis or dropped) */
START_TEST(prompt_harmony_as_gpt_oss)
{
	struct gguf *g;
	struct tokenizer *t = model_vocab("o200k", &g);
	if (!t)
		return;
	ck_assert_int_eq(chat_detect(g, t), CHAT_HARMONY);
	static const char *const cases[][2] = { { "messages_harmony", "tools-gpt-oss.txt" },
						{ "messages_harmony_open", "tools-gpt-oss-open.txt" } };
	for (int k = 0; k < 2; k++) {
		struct conv cv;
		conv_load(&cv, cases[k][0]);
		char *got = encode_text(CHAT_HARMONY, t, &cv, json_object_get(cv.root, "tools_harmony"));
		char *want = fixture_text(cases[k][1]);
		expect_text(t, got, want);
		free(got);
		free(want);
		conv_free(&cv);
	}
	/* a tool result with no call before it: the template raises, so do we */
	struct chat_msg m[2] = { { .role = "user", .content = "x", .len = 1 },
				 { .role = "tool", .content = "1", .len = 1 } };
	int32_t *ids;
	int n;
	struct smk_err err = { 0 };
	ck_assert_int_eq(chat_encode_tools(CHAT_HARMONY, t, m, 2, NULL, 8192, &ids, &n, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "tool call"));
	tokenizer_free(t);
	gguf_close(g);
}
END_TEST

/* Text between a and b in s (malloc'd). */
static char *between(const char *s, const char *a, const char *b)
{
	const char *p = strstr(s, a);
	ck_assert_ptr_nonnull(p);
	p += strlen(a);
	const char *q = strstr(p, b);
	ck_assert_ptr_nonnull(q);
	return strndup(p, (size_t)(q - p));
}

START_TEST(prompt_gemma)
{
	struct gguf *g;
	struct tokenizer *t = model_vocab("gemma-3-270m-q4_k_m.gguf", &g);
	if (!t)
		return;
	ck_assert_int_eq(chat_detect(g, t), CHAT_GEMMA);
	struct conv cv;
	conv_load(&cv, "messages");
	char *got = encode_text(CHAT_GEMMA, t, &cv, json_object_get(cv.root, "tools"));
	/* Qwen's system text (the system message and the tools block) opens
	 * the first user turn; calls and results in the same tags. */
	char *q = fixture_text("tools-qwen2.5.txt");
	char *sys = between(q, "<|im_start|>system\n", "<|im_end|>");
	char *want;
	ck_assert_int_gt(asprintf(&want,
		"<start_of_turn>user\n%s\n\nWeather in Paris and Zürich?<end_of_turn>\n"
		"<start_of_turn>model\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
		"</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Zürich\", \"days\": 2}}\n"
		"</tool_call><end_of_turn>\n"
		"<start_of_turn>user\n<tool_response>\n22 C\n</tool_response>\n<tool_response>\n{\"temp\": 18}\n"
		"</tool_response><end_of_turn>\n"
		"<start_of_turn>model\nParis 22 C, Zürich 18 C.<end_of_turn>\n"
		"<start_of_turn>user\nThanks<end_of_turn>\n<start_of_turn>model\n", sys), 0);
	expect_text(t, got, want);
	free(got);
	free(want);
	free(sys);
	free(q);
	/* no system message: the block alone opens the first user turn */
	cv.m[0].content = "";
	cv.m[0].len = 0;
	cv.m[0].role = "user";
	cv.m[0].content = "Hi";
	cv.m[0].len = 2;
	got = encode_text(CHAT_GEMMA, t, &cv, json_object_get(cv.root, "tools"));
	ck_assert_msg(strstr(got, "<start_of_turn>user\n# Tools\n\n"), "%s", got);
	ck_assert_msg(strstr(got, "</tool_call>\n\nHi<end_of_turn>"), "%s", got);
	free(got);
	conv_free(&cv);
	tokenizer_free(t);
	gguf_close(g);
}
END_TEST

START_TEST(no_tools_in_plain)
{
	struct gguf *g;
	struct tokenizer *t = model_vocab("tiny-qwen2.gguf", &g);
	if (!t)
		return;
	struct conv cv;
	conv_load(&cv, "messages");
	int32_t *ids;
	int n;
	struct smk_err err = { 0 };
	ck_assert_int_eq(chat_encode_tools(CHAT_PLAIN, t, cv.m, cv.n, NULL, 8192, &ids, &n, &err), -ENOTSUP);
	ck_assert_ptr_eq(toolcall_syntax(CHAT_PLAIN), NULL);
	ck_assert(toolcall_syntax(CHAT_HARMONY) && toolcall_syntax(CHAT_HARMONY)->harmony);
	conv_free(&cv);
	tokenizer_free(t);
	gguf_close(g);
}
END_TEST

/* ---- reading a call ---- */

START_TEST(scan_hermes)
{
	const struct toolcall_syntax *sx = toolcall_syntax(CHAT_CHATML);
	struct toolcall_head h;
	const char *call = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
	size_t n = strlen(call), end;
	ck_assert_int_eq(toolcall_scan(sx, call, n, &h), TOOLCALL_HEAD);
	ck_assert_int_eq((int)h.name_len, 11);
	ck_assert(!memcmp(call + h.name_off, "get_weather", 11));
	ck_assert(!memcmp(call + h.args_off, "{\"city\"", 7));
	ck_assert_int_eq(toolcall_args_end(sx, call, n, &h, &end), 0);
	ck_assert_str_eq(strndup(call + h.args_off, end - h.args_off), "{\"city\": \"Paris\"}");
	/* every beginning of the head waits */
	for (size_t k = 0; k < h.args_off; k++)
		ck_assert_msg(toolcall_scan(sx, call, k, &h) == TOOLCALL_MAYBE, "prefix %zu", k);
	/* a call cut off (max_tokens): no end */
	ck_assert_int_eq(toolcall_scan(sx, call, n - 20, &h), TOOLCALL_HEAD);
	ck_assert_int_eq(toolcall_args_end(sx, call, n - 20, &h, &end), -1);
	/* compact, no close text (a model that stopped after the object) */
	const char *c2 = "<tool_call>{\"name\":\"f\",\"arguments\":{}}";
	ck_assert_int_eq(toolcall_scan(sx, c2, strlen(c2), &h), TOOLCALL_HEAD);
	ck_assert_int_eq(toolcall_args_end(sx, c2, strlen(c2), &h, &end), 0);
	ck_assert_int_eq((int)(end - h.args_off), 2);
	/* text */
	const char *texts[] = { "Hello", " <tool_call>", "<tool_cal>", "<tool_call>\n[", "<tool_call>{\"nome\"",
				"<tool_call>{\"name\": \"a b\"", "<tool_call>{\"name\": \"f\", \"parameters\":" };
	for (size_t k = 0; k < sizeof(texts) / sizeof(*texts); k++)
		ck_assert_msg(toolcall_scan(sx, texts[k], strlen(texts[k]), &h) == TOOLCALL_TEXT, "%s", texts[k]);
}
END_TEST

START_TEST(scan_llama3)
{
	const struct toolcall_syntax *sx = toolcall_syntax(CHAT_LLAMA3);
	struct toolcall_head h;
	const char *call = "{\"name\": \"add\", \"parameters\": {\"a\": 1}}";
	size_t end;
	ck_assert_int_eq(toolcall_scan(sx, call, strlen(call), &h), TOOLCALL_HEAD);
	ck_assert_int_eq(toolcall_args_end(sx, call, strlen(call), &h, &end), 0);
	ck_assert_str_eq(strndup(call + h.args_off, end - h.args_off), "{\"a\": 1}");
	ck_assert_int_eq(toolcall_scan(sx, "", 0, &h), TOOLCALL_MAYBE);
	ck_assert_int_eq(toolcall_scan(sx, "Sure", 4, &h), TOOLCALL_TEXT);
	ck_assert_int_eq(toolcall_scan(sx, "{\"name\": \"add\", \"arguments\"", 27, &h), TOOLCALL_TEXT);
}
END_TEST

/* ---- the grammar of a call ---- */

static struct grammar *call_grammar(enum chat_format f, const char *tools_json)
{
	json_error_t je;
	json_t *tools = json_loads(tools_json, 0, &je);
	ck_assert_msg(tools, "%s", je.text);
	json_t *fns[8];
	int n = (int)json_array_size(tools);
	for (int i = 0; i < n; i++)
		fns[i] = json_object_get(json_array_get(tools, (size_t)i), "function");
	const struct toolcall_syntax *sx = toolcall_syntax(f);
	json_t *schema = toolcall_schema(sx, fns, n);
	ck_assert_ptr_nonnull(schema);
	struct grammar *g;
	struct grammar_error ge;
	ck_assert_msg(grammar_compile_schema(&g, schema, false, &ge) == 0, "%s at %s", ge.msg, ge.path);
	ck_assert_int_eq(grammar_set_frame(g, sx->pre, strlen(sx->pre), sx->post, strlen(sx->post)), 0);
	json_decref(schema);
	json_decref(tools);
	return g;
}

static const char tools2[] =
	"[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\","
	" \"properties\": {\"city\": {\"$ref\": \"#/$defs/city\"}}, \"required\": [\"city\"],"
	" \"$defs\": {\"city\": {\"type\": \"string\", \"maxLength\": 8}}}}},"
	" {\"type\": \"function\", \"function\": {\"name\": \"now\"}}]";

/* Feed whole text to a fresh matcher: accepted and complete? */
static bool accepts(struct gmatch *m, const char *s)
{
	gmatch_reset(m);
	return gmatch_feed(m, s, strlen(s)) == 0 && gmatch_done(m);
}

/* harmony: one header per function before its arguments
 * (grammar_set_frame_alts), so the name picks the schema; the byte mask
 * a token sees is the same automaton, so bytes suffice here. */
START_TEST(grammar_harmony_alternatives)
{
	struct gguf *g0;
	struct tokenizer *t = model_vocab("tiny-qwen2.gguf", &g0);
	if (!t)
		return;
	json_error_t je;
	json_t *tools = json_loads(tools2, 0, &je);
	json_t *fns[2] = { json_object_get(json_array_get(tools, 0), "function"),
			   json_object_get(json_array_get(tools, 1), "function") };
	json_t *schema = toolcall_harmony_schema(fns, 2);
	ck_assert_ptr_nonnull(schema);
	struct grammar *g;
	struct grammar_error ge;
	ck_assert_msg(grammar_compile_schema(&g, schema, false, &ge) == 0, "%s at %s", ge.msg, ge.path);
	const char *pre[2] = { "<|channel|>commentary to=functions.get_weather" TOOLCALL_HARMONY_MID,
			       "<|channel|>commentary to=functions.now" TOOLCALL_HARMONY_MID };
	ck_assert_int_eq(grammar_set_frame_alts(g, pre, 2, "", 0), 0);
	struct smk_err err = { 0 };
	struct gvocab *v;
	ck_assert_msg(gvocab_new(&v, t, &err) == 0, "%s", err.msg);
	struct gmatch *m;
	ck_assert_int_eq(gmatch_new(&m, g, v, 1 << 20, &err), 0);
	char buf[256];
	snprintf(buf, sizeof(buf), "%s{\"city\":\"Paris\"}", pre[0]);
	ck_assert(accepts(m, buf));
	snprintf(buf, sizeof(buf), "%s{}", pre[1]);
	ck_assert(accepts(m, buf));
	const char *bad[][2] = {
		{ pre[0], "{}" },                       /* get_weather needs its city */
		{ pre[1], "{\"city\":\"Paris\"}" },     /* now's schema has no city */
		{ pre[0], "{\"city\":\"Amsterdam!\"}" },/* the $ref (rebased) keeps maxLength */
		{ "<|channel|>commentary to=functions.later <|constrain|>json<|message|>", "{}" },
		{ "<|channel|>analysis<|message|>", "{}" },
		{ "", "{}" },
	};
	for (size_t k = 0; k < sizeof(bad) / sizeof(*bad); k++) {
		snprintf(buf, sizeof(buf), "%s%s", bad[k][0], bad[k][1]);
		ck_assert_msg(!accepts(m, buf), "accepted %s", buf);
	}
	/* the shortest call: now's header and {} */
	ck_assert_uint_eq(grammar_min_len(g), strlen(pre[1]) + 2);
	/* not done in the middle of a header */
	gmatch_reset(m);
	ck_assert_int_eq(gmatch_feed(m, "<|channel|>commentary to=functions.", 35), 0);
	ck_assert(!gmatch_done(m) && !gmatch_can_end(m));
	/* the root must be an anyOf of as many schemas */
	ck_assert_int_eq(grammar_set_frame_alts(g, pre, 1, "", 0), -EINVAL);
	const char *three[3] = { pre[0], pre[1], "x" };
	ck_assert_int_eq(grammar_set_frame_alts(g, three, 3, "", 0), -EINVAL);
	gmatch_free(m);
	grammar_free(g);
	json_decref(schema);
	json_decref(tools);
	gvocab_free(v);
	tokenizer_free(t);
	gguf_close(g0);
}
END_TEST

START_TEST(grammar_frames_the_call)
{
	struct gguf *g0;
	struct tokenizer *t = model_vocab("tiny-qwen2.gguf", &g0);
	if (!t)
		return;
	struct smk_err err = { 0 };
	struct gvocab *v;
	ck_assert_msg(gvocab_new(&v, t, &err) == 0, "%s", err.msg);
	struct grammar *g = call_grammar(CHAT_CHATML, tools2);
	struct gmatch *m;
	ck_assert_int_eq(gmatch_new(&m, g, v, 1 << 20, &err), 0);
	ck_assert(accepts(m, "<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}\n</tool_call>"));
	ck_assert(accepts(m, "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>"));
	const char *bad[] = {
		"{\"name\":\"now\",\"arguments\":{}}",                                   /* no open text */
		"<tool_call>\n{\"name\":\"later\",\"arguments\":{}}\n</tool_call>",         /* not a tool */
		"<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{}}\n</tool_call>",   /* city required */
		"<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Amsterdam!\"}}\n</tool_call>", /* $ref'd maxLength */
		"<tool_call>\n{\"arguments\":{},\"name\":\"now\"}\n</tool_call>",           /* name first */
		"<tool_call>\n{\"name\":\"now\",\"arguments\":{}}\n</tool_call> ",          /* nothing after */
	};
	for (size_t k = 0; k < sizeof(bad) / sizeof(*bad); k++)
		ck_assert_msg(!accepts(m, bad[k]), "accepted %s", bad[k]);
	/* not done before the close text is whole */
	gmatch_reset(m);
	const char *part = "<tool_call>\n{\"name\":\"now\",\"arguments\":{}}\n</tool_";
	ck_assert_int_eq(gmatch_feed(m, part, strlen(part)), 0);
	ck_assert(!gmatch_done(m) && !gmatch_can_end(m));
	ck_assert_uint_eq(grammar_min_len(g), strlen("<tool_call>\n{\"name\":\"now\",\"arguments\":{}}\n</tool_call>"));

	/* optional (auto): every token is allowed that cannot begin the call
	 * ('<' is its only first byte) or begins it validly */
	gmatch_reset(m);
	const uint32_t *mask = gmatch_mask_optional(m);
	int32_t nv = gvocab_n_vocab(v), n_call = 0, n_free = 0;
	uint32_t *copy = malloc(sizeof(uint32_t) * (size_t)((nv + 31) / 32));
	memcpy(copy, mask, sizeof(uint32_t) * (size_t)((nv + 31) / 32));
	for (int32_t id = 0; id < nv; id++) {
		char b[300];
		size_t len = tokenizer_piece(t, id, false, b, sizeof(b));
		bool allowed = copy[id >> 5] >> (id & 31) & 1, want;
		if (len == 0 || len > 255) {
			want = true;
		} else if (b[0] != '<') {
			want = true;
			n_free++;
		} else {
			gmatch_reset(m);
			want = gmatch_feed(m, b, len) == 0;
			n_call += want;
		}
		ck_assert_msg(allowed == want, "token %d (%.*s): allowed %d, want %d", id, (int)len, b, allowed, want);
	}
	ck_assert_int_gt(n_call, 0);
	ck_assert_int_gt(n_free, 1000);
	free(copy);
	gmatch_free(m);
	grammar_free(g);

	/* llama3: no frame, "parameters" */
	g = call_grammar(CHAT_LLAMA3, tools2);
	ck_assert_int_eq(gmatch_new(&m, g, v, 1 << 20, &err), 0);
	ck_assert(accepts(m, "{\"name\": \"now\", \"parameters\": {}}"));
	ck_assert(!accepts(m, "{\"name\": \"now\", \"arguments\": {}}"));
	gmatch_free(m);
	grammar_free(g);
	gvocab_free(v);
	tokenizer_free(t);
	gguf_close(g0);
}
END_TEST

START_TEST(texts)
{
	ck_assert(toolcall_name_ok("get_weather-2", 13));
	ck_assert(!toolcall_name_ok("a.b", 3) && !toolcall_name_ok("", 0) && !toolcall_name_ok("a b", 3));
	char name[70];
	memset(name, 'a', sizeof(name));
	ck_assert(toolcall_name_ok(name, 64) && !toolcall_name_ok(name, 65));
	char *c = toolcall_call_text(CHAT_LLAMA3, "f", "{\"a\": 1}");
	ck_assert_str_eq(c, "{\"name\": \"f\", \"parameters\": {\"a\": 1}}");
	free(c);
	struct chat_msg tm = { .role = "tool", .content = "say \"hi\"\n", .len = 9 };
	c = toolcall_results_text(CHAT_LLAMA3, &tm, 1);
	ck_assert_str_eq(c, "\"say \\\"hi\\\"\\n\"");
	free(c);
	/* control bytes as \u00XX, other bytes as they are (Python's json.dumps) */
	struct chat_msg tc = { .role = "tool", .content = "a\x01\0\x7f\xc3\xa9\\", .len = 7 };
	c = toolcall_results_text(CHAT_LLAMA3, &tc, 1);
	ck_assert_str_eq(c, "\"a\\u0001\\u0000\x7f\xc3\xa9\\\\\"");
	free(c);
}
END_TEST

/* Encode with the format's markers (special tokens on) and accept each
 * token: false at the first one the matcher refuses.  With check, each
 * token must also be in the mask first (once the matcher no longer
 * waits). */
static bool accept_text(struct gmatch *m, const struct tokenizer *t, const char *s, bool check)
{
	int32_t ids[256];
	size_t n;
	struct smk_err err = { 0 };
	ck_assert_msg(tokenizer_encode(t, s, strlen(s), false, true, ids, 256, &n, &err) == 0, "%s", err.msg);
	for (size_t i = 0; i < n; i++) {
		if (check && !gmatch_waiting(m)) {
			const uint32_t *mask = gmatch_mask(m);
			if (!(mask[ids[i] >> 5] >> (ids[i] & 31) & 1))
				return false;
		}
		if (gmatch_accept(m, ids[i]))
			return false;
	}
	return true;
}

static bool allowed(struct gmatch *m, int32_t id)
{
	return id >= 0 && (gmatch_mask(m)[id >> 5] >> (id & 31) & 1);
}

/* harmony with tool_choice "auto": the grammar waits, free text, until
 * the output opens a call's header ("<|channel|>commentary to=functions.",
 * grammar_set_trigger); from there the mask holds the rest of one of the
 * offered headers, the arguments of that function and <|call|>.  Driven
 * token by token on gpt-oss's own vocabulary. */
START_TEST(grammar_harmony_trigger)
{
	struct gguf *g0;
	struct tokenizer *t = model_vocab("o200k", &g0);
	if (!t)
		return;
	json_error_t je;
	json_t *tools = json_loads(tools2, 0, &je);
	json_t *fns[2] = { json_object_get(json_array_get(tools, 0), "function"),
			   json_object_get(json_array_get(tools, 1), "function") };
	json_t *schema = toolcall_harmony_schema(fns, 2);
	struct grammar *g;
	struct grammar_error ge;
	ck_assert_msg(grammar_compile_schema(&g, schema, false, &ge) == 0, "%s at %s", ge.msg, ge.path);
	const char *pre[2] = { "get_weather" TOOLCALL_HARMONY_MID, "now" TOOLCALL_HARMONY_MID };
	ck_assert_int_eq(grammar_set_frame_alts(g, pre, 2, "", 0), 0);
	const char *trig = toolcall_syntax(CHAT_HARMONY)->pre;
	ck_assert_str_eq(trig, "<|channel|>commentary to=functions.");
	ck_assert_int_eq(grammar_set_trigger(g, trig, 0), -EINVAL);
	ck_assert_int_eq(grammar_set_trigger(g, trig, strlen(trig)), 0);
	struct smk_err err = { 0 };
	struct gvocab *v;
	ck_assert_msg(gvocab_new(&v, t, &err) == 0, "%s", err.msg);
	struct gmatch *m;
	ck_assert_int_eq(gmatch_new(&m, g, v, 1 << 20, &err), 0);
	int32_t call = tokenizer_find(t, "<|call|>", 8), brace = tokenizer_find(t, "{", 1);
	int32_t channel = tokenizer_find(t, "<|channel|>", 11);
	ck_assert(call >= 0 && brace >= 0 && channel >= 0 && tokenizer_is_eog(t, call));

	/* free text, however close to a call, leaves it waiting */
	ck_assert(gmatch_waiting(m) && !gmatch_can_end(m) && !gmatch_done(m));
	ck_assert(accept_text(m, t, "<|channel|>analysis<|message|>Say to=functions.now {\"x\": 1}"
			      "<|end|><|start|>assistant<|channel|>commentary<|message|>to=functions.<|end|>"
			      "<|start|>assistant<|channel|>commentary to=functions", false));
	ck_assert(gmatch_waiting(m));
	/* the header's last byte arms it: only the offered names follow */
	ck_assert(accept_text(m, t, ".", false));
	ck_assert(!gmatch_waiting(m));
	ck_assert(!allowed(m, brace) && !allowed(m, call) && !allowed(m, channel));
	ck_assert(allowed(m, tokenizer_find(t, "now", 3)));
	ck_assert(accept_text(m, t, "get_weather <|constrain|>json<|message|>{\"city\": \"Paris\"}", true));
	ck_assert(allowed(m, call) && gmatch_accept(m, call) == 0 && gmatch_done(m));

	/* what the constraint refuses once armed: an unoffered name, the
	 * model's other header spelling, arguments off the schema */
	static const char *const bad[] = {
		"later <|constrain|>json<|message|>{}",
		"now json<|message|>{}",
		"get_weather <|constrain|>json<|message|>{\"city\": \"Amsterdam!\"}",
	};
	for (size_t k = 0; k < sizeof(bad) / sizeof(*bad); k++) {
		gmatch_reset(m);
		ck_assert(gmatch_waiting(m));
		ck_assert(accept_text(m, t, trig, false) && !gmatch_waiting(m));
		ck_assert_msg(!accept_text(m, t, bad[k], true), "accepted %s", bad[k]);
	}
	/* the end of generation while waiting is free text's end, no value */
	gmatch_reset(m);
	ck_assert(gmatch_accept(m, call) == 0 && gmatch_waiting(m) && !gmatch_done(m));
	/* a token running past the trigger's end: its tail is the frame's
	 * first bytes (".now" would begin a name, ".x" none) */
	int32_t dot_now = tokenizer_find(t, ".now", 4), dot_x = tokenizer_find(t, ".x", 2);
	gmatch_reset(m);
	ck_assert(accept_text(m, t, "<|channel|>commentary to=functions", false));
	if (dot_now >= 0) {
		ck_assert_int_eq(gmatch_accept(m, dot_now), 0);
		ck_assert(!gmatch_waiting(m));
		ck_assert(accept_text(m, t, " <|constrain|>json<|message|>{}", true));
		ck_assert(gmatch_accept(m, call) == 0 && gmatch_done(m));
	}
	if (dot_x >= 0) {
		gmatch_reset(m);
		ck_assert(accept_text(m, t, "<|channel|>commentary to=functions", false));
		ck_assert_int_eq(gmatch_accept(m, dot_x), -EINVAL);
	}
	gmatch_free(m);
	grammar_free(g);
	json_decref(schema);
	json_decref(tools);
	gvocab_free(v);
	tokenizer_free(t);
	gguf_close(g0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("toolcall");
	TCase *tc = tcase_create("toolcall");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, texts);
	tcase_add_test(tc, scan_hermes);
	tcase_add_test(tc, scan_llama3);
	tcase_add_test(tc, prompt_chatml_as_qwen25);
	tcase_add_test(tc, prompt_llama3_as_llama31);
	tcase_add_test(tc, prompt_gemma);
	tcase_add_test(tc, prompt_harmony_as_gpt_oss);
	tcase_add_test(tc, no_tools_in_plain);
	tcase_add_test(tc, grammar_frames_the_call);
	tcase_add_test(tc, grammar_harmony_alternatives);
	tcase_add_test(tc, grammar_harmony_trigger);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ck_run(suite());
}
