/* api tests: the request validation of every endpoint (daemon/http/api.c),
 * called directly with a struct server built by hand over a real engine:
 * the committed Hugging Face fixture tests/fixtures/hf-models/llama-f32
 * (SMOKE_FIXTURES; no download, never skipped).
 *
 *  - direct: /v1/completions and /v1/chat/completions (api_parse_generation),
 *    /tokenize, /detokenize (api_tokenize, api_detokenize) and /v1/models
 *    (api_models).  Valid requests give the values the request asked for;
 *    each invalid one (wrong JSON type, out of range, unknown field, missing
 *    field, not an object, over the context, bad token id, another model)
 *    is refused with the status proto/openapi.yaml gives, error.param
 *    naming the offending field and the message naming it too.
 *  - http: what only server.c sees (a body that is not JSON, duplicate
 *    keys, an empty body, the body limit, unknown paths and methods), and
 *    that api.c's answers reach the wire: a live server on 127.0.0.1 with
 *    no worker (nothing here generates), spoken to over a socket.
 *
 * Expected values come from the request, the engine (n_ctx, n_vocab, the
 * tokenizer) and the config the test sets, never from the code's output. */
#include <check.h>

#include "ck_main.h"
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "config/config.h"
#include "engine/chat.h"
#include "engine/engine.h"
#include "formats/family.h"
#include "http/api.h"
#include "http/tools.h"
#include "http/guard.h"
#include "http/server.h"

#define MODEL_ID "llama-f32"
#define N_CTX 64            /* asked of the engine; the tests read e->n_ctx */
#define MAX_TOKENS 40       /* limits.max_tokens, below N_CTX */
#define DEFAULT_MAX_TOKENS 8

static struct config cfg;
static struct server srv;
static struct engine *eng;
static int n_vocab, n_ctx;

static const char *model_dir(void)
{
	static char path[4096];
	const char *fx = getenv("SMOKE_FIXTURES");
	snprintf(path, sizeof(path), "%s/hf-models/llama-f32", fx && *fx ? fx : "tests/fixtures");
	return path;
}

static void setup(void)
{
	struct smk_err err = { 0 };
	struct engine_opts eo = { .model_path = model_dir(), .n_ctx = N_CTX, .n_batch = 16,
				  .max_logits = 1, .n_threads = 1, .backend = BACKEND_CPU };
	ck_assert_msg(engine_open(&eng, &eo, &err) == 0, "%s: %s", eo.model_path, err.msg);
	config_init(&cfg);
	cfg.limits.max_tokens = MAX_TOKENS;
	cfg.limits.default_max_tokens = DEFAULT_MAX_TOKENS;
	memset(&srv, 0, sizeof(srv));
	srv.cfg = &cfg;
	srv.e = eng;
	srv.chat = chat_detect(eng->model->gguf, eng->tok);
	srv.t_wall = 1700000000;
	snprintf(srv.model_id, sizeof(srv.model_id), "%s", MODEL_ID);
	n_vocab = eng->model->hp.n_vocab;
	n_ctx = eng->n_ctx;
	ck_assert_int_le(n_ctx, N_CTX);
	ck_assert_int_gt(n_ctx, MAX_TOKENS);
}

static void teardown(void)
{
	engine_close(eng);
	eng = NULL;
}

/* ---- helpers ---- */

/* printf into a static buffer (one body at a time). */
static const char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static const char *fmt(const char *f, ...)
{
	static char buf[1 << 17];
	va_list ap;
	va_start(ap, f);
	int n = vsnprintf(buf, sizeof(buf), f, ap);
	va_end(ap);
	ck_assert_msg(n >= 0 && (size_t)n < sizeof(buf), "test body too long");
	return buf;
}

/* "[a, a+1, ...]" of n valid token ids (cycling through the vocabulary),
 * malloc'd. */
static char *ids_json(int n, int32_t *out)
{
	size_t cap = (size_t)n * 8 + 8, at = 0;
	char *s = malloc(cap);
	ck_assert_ptr_nonnull(s);
	s[at++] = '[';
	for (int i = 0; i < n; i++) {
		int32_t id = (int32_t)(3 + i % (n_vocab - 3));
		if (out)
			out[i] = id;
		at += (size_t)snprintf(s + at, cap - at, "%s%d", i ? "," : "", id);
	}
	s[at++] = ']';
	s[at] = 0;
	return s;
}

static json_t *load(const char *body)
{
	json_error_t je;
	json_t *root = json_loads(body, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
	ck_assert_msg(root, "test body is not JSON: %s: %s", body, je.text);
	return root;
}

static int parse_gen(const char *body, bool chat, struct hreq *r, struct api_error *e)
{
	memset(r, 0, sizeof(*r));
	memset(e, 0, sizeof(*e));
	r->srv = &srv;
	r->chat = chat;
	json_t *root = load(body);
	int rc = api_parse_generation(&srv, r, root, e);
	json_decref(root);
	return rc;
}

static void gen_free(struct hreq *r)
{
	tools_free(r->tools);
	free(r->prompt);
	for (int i = 0; i < WORKER_MAX_STOP; i++)
		free(r->stops[i]);
	memset(r, 0, sizeof(*r));
}

/* The error body that goes on the wire: an Error object whose param is
 * `param` (null for "") and whose message is e's. */
static void check_error_body(const struct api_error *e, const char *what, const char *param)
{
	char *b = api_error_body(e);
	ck_assert_msg(b, "%s: no error body", what);
	json_t *root = load(b);
	json_t *err = json_object_get(root, "error");
	ck_assert_msg(json_is_object(err), "%s: %s", what, b);
	json_t *p = json_object_get(err, "param");
	if (*param)
		ck_assert_msg(json_is_string(p) && !strcmp(json_string_value(p), param),
			      "%s: error.param in %s, want \"%s\"", what, b, param);
	else
		ck_assert_msg(json_is_null(p), "%s: error.param in %s, want null", what, b);
	ck_assert_msg(json_is_string(json_object_get(err, "message")) &&
		      !strcmp(json_string_value(json_object_get(err, "message")), e->msg),
		      "%s: error.message in %s", what, b);
	ck_assert_msg(json_is_string(json_object_get(err, "type")), "%s: error.type in %s", what, b);
	json_decref(root);
	free(b);
}

/* rc/e: refused with `status`, error.param `param` ("" for none) and a
 * message that names param. */
static void expect_error(int rc, const struct api_error *e, const char *what, int status,
			 const char *param)
{
	ck_assert_msg(rc < 0, "%s: accepted", what);
	ck_assert_msg(e->status == status, "%s: status %d, want %d (%s)", what, e->status, status, e->msg);
	ck_assert_msg(!strcmp(e->param, param), "%s: param '%s', want '%s' (%s)", what, e->param, param,
		      e->msg);
	if (*param)
		ck_assert_msg(strstr(e->msg, param) != NULL, "%s: the message does not name '%s': %s", what,
			      param, e->msg);
	check_error_body(e, what, param);
}

static void gen_expect(const char *body, bool chat, int status, const char *param)
{
	struct hreq r;
	struct api_error e;
	int rc = parse_gen(body, chat, &r, &e);
	char what[160];
	snprintf(what, sizeof(what), "%s %.120s", chat ? "chat" : "completions", body);
	expect_error(rc, &e, what, status, param);
	gen_free(&r);
}

/* The tokenizer's own ids for text, malloc'd. */
static int32_t *encode(const char *text, bool add_special, bool parse_special, int *n)
{
	size_t cap = strlen(text) * 6 + 8, got = 0;
	int32_t *ids = malloc(cap * sizeof(int32_t));
	ck_assert_ptr_nonnull(ids);
	struct smk_err err = { 0 };
	ck_assert_msg(tokenizer_encode(eng->tok, text, strlen(text), add_special, parse_special, ids, cap,
				       &got, &err) == 0, "%s", err.msg);
	*n = (int)got;
	return ids;
}

/* The chat format's own ids for one user message. */
static int32_t *chat_ids(const char *role, const char *content, int *n)
{
	struct chat_msg m = { .role = role, .content = content, .len = strlen(content) };
	int32_t *ids = NULL;
	struct smk_err err = { 0 };
	ck_assert_msg(chat_encode(srv.chat, eng->tok, &m, 1, n_ctx, &ids, n, &err) == 0, "%s", err.msg);
	return ids;
}

static void expect_ids(const int32_t *got, int n_got, const int32_t *want, int n_want, const char *what)
{
	ck_assert_msg(n_got == n_want, "%s: %d tokens, want %d", what, n_got, n_want);
	for (int i = 0; i < n_want; i++)
		ck_assert_msg(got[i] == want[i], "%s: token %d is %d, want %d", what, i, got[i], want[i]);
}

/* A text of more than n tokens (checked with the tokenizer). */
static const char *long_text(int n)
{
	static char buf[1 << 14];
	size_t at = 0;
	for (int w = 0; at + 16 < sizeof(buf); w++) {
		at += (size_t)snprintf(buf + at, sizeof(buf) - at, "%sq%dz", w ? " " : "", w * 7919 % 100000);
		int k;
		int32_t *ids = encode(buf, false, false, &k);
		free(ids);
		if (k > n)
			return buf;
	}
	ck_abort_msg("no text of more than %d tokens in %zu bytes", n, sizeof(buf));
	return NULL;
}

/* ---- generation: fields of both endpoints ---- */

/* One bad field each, added to a valid request of either endpoint. */
static const struct bad {
	const char *field;      /* "name": value */
	const char *param;      /* what error.param and the message must name */
	int status;
} common_bad[] = {
	{ "\"max_tokens\": 0", "max_tokens", 400 },
	{ "\"max_tokens\": -3", "max_tokens", 400 },
	{ "\"max_tokens\": \"5\"", "max_tokens", 400 },
	{ "\"max_tokens\": 2.5", "max_tokens", 400 },
	{ "\"max_tokens\": true", "max_tokens", 400 },
	{ "\"max_tokens\": 99999999999", "max_tokens", 400 },
	{ "\"temperature\": -0.5", "temperature", 400 },
	{ "\"temperature\": 2.001", "temperature", 400 },
	{ "\"temperature\": \"hot\"", "temperature", 400 },
	{ "\"temperature\": [1]", "temperature", 400 },
	{ "\"top_p\": 0", "top_p", 400 },
	{ "\"top_p\": 0.0", "top_p", 400 },
	/* In range as a double, 0 as the sampler's float (issue 17 l). */
	{ "\"top_p\": 1e-320", "top_p", 400 },
	{ "\"repeat_penalty\": 1e-50", "repeat_penalty", 400 },
	{ "\"top_p\": 1.5", "top_p", 400 },
	{ "\"top_p\": -1", "top_p", 400 },
	{ "\"top_p\": false", "top_p", 400 },
	{ "\"top_k\": -1", "top_k", 400 },
	{ "\"top_k\": 3.5", "top_k", 400 },
	{ "\"top_k\": \"3\"", "top_k", 400 },
	{ "\"min_p\": -0.01", "min_p", 400 },
	{ "\"min_p\": 1.01", "min_p", 400 },
	{ "\"min_p\": {}", "min_p", 400 },
	{ "\"repeat_penalty\": 0", "repeat_penalty", 400 },
	{ "\"repeat_penalty\": -1", "repeat_penalty", 400 },
	{ "\"repeat_penalty\": 10.5", "repeat_penalty", 400 },
	{ "\"repeat_penalty\": \"1\"", "repeat_penalty", 400 },
	{ "\"seed\": -1", "seed", 400 },
	{ "\"seed\": 1.5", "seed", 400 },
	{ "\"seed\": \"42\"", "seed", 400 },
	{ "\"n\": 2", "n", 400 },
	{ "\"n\": 0", "n", 400 },
	{ "\"n\": \"1\"", "n", 400 },
	{ "\"stream\": 1", "stream", 400 },
	{ "\"stream\": \"true\"", "stream", 400 },
	{ "\"stream_options\": true", "stream_options", 400 },
	{ "\"stream_options\": [true]", "stream_options", 400 },
	{ "\"stream_options\": {\"include_usage\": 1}", "stream_options.include_usage", 400 },
	{ "\"stream_options\": {\"include_usage\": \"yes\"}", "stream_options.include_usage", 400 },
	{ "\"user\": 5", "user", 400 },
	{ "\"user\": {}", "user", 400 },
	{ "\"presence_penalty\": 0.5", "presence_penalty", 400 },
	{ "\"presence_penalty\": \"0\"", "presence_penalty", 400 },
	{ "\"frequency_penalty\": -1", "frequency_penalty", 400 },
	{ "\"logit_bias\": {\"5\": 10}", "logit_bias", 400 },
	{ "\"logit_bias\": [1]", "logit_bias", 400 },
	{ "\"stop\": 5", "stop", 400 },
	{ "\"stop\": {}", "stop", 400 },
	{ "\"stop\": \"\"", "stop", 400 },
	{ "\"stop\": [\"a\", 5]", "stop[1]", 400 },
	{ "\"stop\": [\"a\", \"\"]", "stop[1]", 400 },
	{ "\"stop\": [null]", "stop[0]", 400 },
	{ "\"model\": 5", "model", 400 },
	{ "\"model\": [\"" MODEL_ID "\"]", "model", 400 },
	{ "\"model\": \"gpt-4\"", "model", 404 },
	{ "\"model\": \"" MODEL_ID "x\"", "model", 404 },
	{ "\"model\": \"\"", "model", 404 },
	/* unknown fields, named as written */
	{ "\"max_token\": 5", "max_token", 400 },
	{ "\"Model\": \"" MODEL_ID "\"", "Model", 400 },
	{ "\"frobnicate\": null", "frobnicate", 400 },
	{ "\"functions\": []", "functions", 400 },   /* OpenAI's old name of tools */
};

/* A valid request of each endpoint, to which one field is added. */
#define BASE_COMPLETION "\"prompt\": \"hello\""
#define BASE_CHAT "\"messages\": [{\"role\": \"user\", \"content\": \"hello\"}]"

START_TEST(generation_common_fields_refused)
{
	const struct bad *b = &common_bad[_i];
	for (int chat = 0; chat < 2; chat++)
		gen_expect(fmt("{%s, %s}", chat ? BASE_CHAT : BASE_COMPLETION, b->field), chat,
			   b->status, b->param);
}
END_TEST

/* The base requests themselves are valid, and so are the bounds of each
 * range; null means "default" for every field. */
START_TEST(generation_bounds_accepted)
{
	static const char *const ok[] = {
		"\"temperature\": 0", "\"temperature\": 2", "\"top_p\": 1", "\"top_p\": 1e-9",
		"\"min_p\": 0", "\"min_p\": 1", "\"repeat_penalty\": 10", "\"repeat_penalty\": 1e-9",
		"\"top_k\": 0", "\"seed\": 0", "\"seed\": 9223372036854775807", "\"n\": 1",
		"\"max_tokens\": 1", "\"stop\": \"x\"", "\"stop\": []", "\"user\": \"u\"",
		"\"presence_penalty\": 0", "\"frequency_penalty\": 0.0", "\"logit_bias\": {}",
		"\"stream_options\": {\"other\": 1}", "\"model\": \"" MODEL_ID "\"",
		"\"max_tokens\": null", "\"temperature\": null", "\"top_p\": null", "\"top_k\": null",
		"\"min_p\": null", "\"repeat_penalty\": null", "\"seed\": null", "\"stop\": null",
		"\"n\": null", "\"stream\": null", "\"stream_options\": null", "\"user\": null",
		"\"model\": null", "\"logit_bias\": null", "\"presence_penalty\": null",
	};
	for (int chat = 0; chat < 2; chat++) {
		for (size_t i = 0; i <= sizeof(ok) / sizeof(ok[0]); i++) {
			struct hreq r;
			struct api_error e;
			const char *body = i == 0 ? fmt("{%s}", chat ? BASE_CHAT : BASE_COMPLETION)
					   : fmt("{%s, %s}", chat ? BASE_CHAT : BASE_COMPLETION, ok[i - 1]);
			int rc = parse_gen(body, chat, &r, &e);
			ck_assert_msg(rc == 0, "%s: refused: %d %s (param %s)", body, e.status, e.msg, e.param);
			gen_free(&r);
		}
	}
	/* top_k up to the vocabulary; a stop string up to its length limit,
	 * and as many as the worker takes */
	char stop[WORKER_MAX_STOP_LEN + 1];
	memset(stop, 's', WORKER_MAX_STOP_LEN);
	stop[WORKER_MAX_STOP_LEN] = 0;
	char many[256] = "";
	for (int i = 0; i < WORKER_MAX_STOP; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s\"s%d\"", i ? "," : "", i);
	for (int i = 0; i < 3; i++) {
		const char *body = i == 0 ? fmt("{" BASE_COMPLETION ", \"top_k\": %d}", n_vocab)
				   : i == 1 ? fmt("{" BASE_COMPLETION ", \"stop\": \"%s\"}", stop)
				   : fmt("{" BASE_COMPLETION ", \"stop\": [%s]}", many);
		struct hreq r;
		struct api_error e;
		ck_assert_msg(parse_gen(body, false, &r, &e) == 0, "%.100s: refused: %s", body, e.msg);
		gen_free(&r);
	}
}
END_TEST

/* Limits that come from the engine and the config. */
START_TEST(generation_ranges_from_the_server)
{
	/* top_k past the vocabulary */
	gen_expect(fmt("{" BASE_COMPLETION ", \"top_k\": %d}", n_vocab + 1), false, 400, "top_k");
	/* a stop string past its length, one stop string too many */
	char stop[WORKER_MAX_STOP_LEN + 2];
	memset(stop, 's', WORKER_MAX_STOP_LEN + 1);
	stop[WORKER_MAX_STOP_LEN + 1] = 0;
	gen_expect(fmt("{" BASE_COMPLETION ", \"stop\": \"%s\"}", stop), false, 400, "stop");
	gen_expect(fmt("{" BASE_CHAT ", \"stop\": [\"a\", \"%s\"]}", stop), true, 400, "stop[1]");
	char many[256] = "";
	for (int i = 0; i <= WORKER_MAX_STOP; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s\"s%d\"", i ? "," : "", i);
	gen_expect(fmt("{" BASE_COMPLETION ", \"stop\": [%s]}", many), false, 400, "stop");
	/* max_tokens past limits.max_tokens, though within the context */
	for (int chat = 0; chat < 2; chat++)
		gen_expect(fmt("{%s, \"max_tokens\": %d}", chat ? BASE_CHAT : BASE_COMPLETION, MAX_TOKENS + 1),
			   chat, 400, "max_tokens");
	gen_expect(fmt("{" BASE_CHAT ", \"max_completion_tokens\": %d}", MAX_TOKENS + 1), true, 400,
		   "max_completion_tokens");
	/* and at limits.max_tokens it is taken */
	struct hreq r;
	struct api_error e;
	ck_assert_msg(parse_gen(fmt("{\"prompt\": [5], \"max_tokens\": %d}", MAX_TOKENS), false, &r, &e) == 0,
		      "%s", e.msg);
	ck_assert_int_eq(r.job.max_tokens, MAX_TOKENS);
	gen_free(&r);
}
END_TEST

/* ---- /v1/completions ---- */

START_TEST(completion_values)
{
	struct hreq r;
	struct api_error e;
	const char *body = "{\"model\": \"" MODEL_ID "\", \"prompt\": [7, 8, 9], \"max_tokens\": 5, "
			   "\"temperature\": 0.5, \"top_p\": 0.9, \"top_k\": 7, \"min_p\": 0.05, "
			   "\"repeat_penalty\": 1.25, \"seed\": 42, \"stop\": [\"ab\", \"\\n\"], \"stream\": true, "
			   "\"stream_options\": {\"include_usage\": true}, \"logprobs\": 2, \"n\": 1, "
			   "\"user\": \"u\", \"presence_penalty\": 0, \"frequency_penalty\": 0, "
			   "\"logit_bias\": {}, \"best_of\": 1, \"echo\": false, \"suffix\": null}";
	ck_assert_msg(parse_gen(body, false, &r, &e) == 0, "%d %s: %s", e.status, e.param, e.msg);
	const int32_t want[] = { 7, 8, 9 };
	expect_ids(r.prompt, r.n_prompt, want, 3, "prompt");
	ck_assert_ptr_eq(r.job.prompt, r.prompt);
	ck_assert_int_eq(r.job.n_prompt, 3);
	ck_assert_int_eq(r.job.max_tokens, 5);
	ck_assert(r.job.sp.temperature == 0.5f);
	ck_assert(r.job.sp.top_p == 0.9f);
	ck_assert_int_eq(r.job.sp.top_k, 7);
	ck_assert(r.job.sp.min_p == 0.05f);
	ck_assert(r.job.sp.repeat_penalty == 1.25f);
	ck_assert_uint_eq(r.job.sp.seed, 42);
	ck_assert_int_eq(r.job.n_stop, 2);
	ck_assert_str_eq(r.job.stop[0], "ab");
	ck_assert_str_eq(r.job.stop[1], "\n");
	ck_assert(r.stream);
	ck_assert(r.include_usage);
	ck_assert_int_eq(r.n_logprobs, 2);
	ck_assert_int_eq(r.job.n_logprobs, 2);
	gen_free(&r);

	/* defaults: temperature 1, no top-k/top-p/min-p/penalty, no stream, no
	 * logprobs, limits.default_max_tokens */
	ck_assert_msg(parse_gen("{\"prompt\": [4]}", false, &r, &e) == 0, "%s", e.msg);
	ck_assert(r.job.sp.temperature == 1.0f);
	ck_assert(r.job.sp.top_p == 1.0f);
	ck_assert_int_eq(r.job.sp.top_k, 0);
	ck_assert(r.job.sp.min_p == 0.0f);
	ck_assert(r.job.sp.repeat_penalty == 1.0f);
	ck_assert(!r.stream && !r.include_usage);
	ck_assert_int_eq(r.n_logprobs, -1);
	ck_assert_int_eq(r.job.n_logprobs, -1);
	ck_assert_int_eq(r.job.n_stop, 0);
	ck_assert_int_eq(r.job.max_tokens, DEFAULT_MAX_TOKENS);
	gen_free(&r);

	/* a single stop string, logprobs 0 (the sampled token only) */
	ck_assert_msg(parse_gen("{\"prompt\": [4], \"stop\": \"END\", \"logprobs\": 0, \"seed\": 0}", false,
				&r, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(r.job.n_stop, 1);
	ck_assert_str_eq(r.job.stop[0], "END");
	ck_assert_int_eq(r.n_logprobs, 0);
	ck_assert_uint_eq(r.job.sp.seed, 0);
	gen_free(&r);

	/* a text prompt is the tokenizer's ids for it, special tokens parsed */
	const char *text = "<|im_start|>hello world";
	int n_want;
	int32_t *ids = encode(text, true, true, &n_want);
	ck_assert_msg(parse_gen(fmt("{\"prompt\": \"%s\"}", text), false, &r, &e) == 0, "%s", e.msg);
	expect_ids(r.prompt, r.n_prompt, ids, n_want, "text prompt");
	ck_assert_int_eq(r.job.n_prompt, n_want);
	free(ids);
	/* ... which differ from the ids without special tokens */
	ids = encode(text, true, false, &n_want);
	ck_assert_msg(n_want != r.n_prompt || memcmp(ids, r.prompt, sizeof(int32_t) * (size_t)n_want),
		      "the fixture's tokenizer does not parse <|im_start|> as a special token");
	free(ids);
	gen_free(&r);
}
END_TEST

static const struct bad completion_bad[] = {
	{ "{}", "prompt", 400 },
	{ "{\"prompt\": null}", "prompt", 400 },
	{ "{\"max_tokens\": 5}", "prompt", 400 },
	{ "{\"prompt\": 5}", "prompt", 400 },
	{ "{\"prompt\": true}", "prompt", 400 },
	{ "{\"prompt\": {\"text\": \"a\"}}", "prompt", 400 },
	{ "{\"prompt\": []}", "prompt", 400 },
	{ "{\"prompt\": [\"a\", \"b\"]}", "prompt", 400 },
	{ "{\"prompt\": [[1, 2]]}", "prompt", 400 },
	{ "{\"prompt\": \"\"}", "prompt", 400 },
	{ "{\"prompt\": [1, \"x\"]}", "prompt[1]", 400 },
	{ "{\"prompt\": [1, 2.0]}", "prompt[1]", 400 },
	{ "{\"prompt\": [1, 2, -1]}", "prompt[2]", 400 },
	{ "{\"prompt\": [1, null]}", "prompt[1]", 400 },
	{ "{\"prompt\": \"a\", \"logprobs\": -1}", "logprobs", 400 },
	{ "{\"prompt\": \"a\", \"logprobs\": true}", "logprobs", 400 },
	{ "{\"prompt\": \"a\", \"logprobs\": 1.0}", "logprobs", 400 },
	{ "{\"prompt\": \"a\", \"best_of\": 2}", "best_of", 400 },
	{ "{\"prompt\": \"a\", \"best_of\": \"1\"}", "best_of", 400 },
	{ "{\"prompt\": \"a\", \"echo\": true}", "echo", 400 },
	{ "{\"prompt\": \"a\", \"echo\": 0}", "echo", 400 },
	{ "{\"prompt\": \"a\", \"suffix\": \"z\"}", "suffix", 400 },
	{ "{\"prompt\": \"a\", \"suffix\": \"\"}", "suffix", 400 },
	/* fields of /v1/chat/completions */
	{ "{\"prompt\": \"a\", \"messages\": []}", "messages", 400 },
	{ "{\"prompt\": \"a\", \"top_logprobs\": 1}", "top_logprobs", 400 },
	{ "{\"prompt\": \"a\", \"max_completion_tokens\": 5}", "max_completion_tokens", 400 },
	/* the body itself */
	{ "[]", "", 400 },
	{ "[{\"prompt\": \"a\"}]", "", 400 },
	{ "\"prompt\"", "", 400 },
	{ "42", "", 400 },
	{ "null", "", 400 },
	{ "true", "", 400 },
};

START_TEST(completion_refused)
{
	const struct bad *b = &completion_bad[_i];
	gen_expect(b->field, false, b->status, b->param);
}
END_TEST

START_TEST(completion_token_ids_checked)
{
	/* ids past the vocabulary, named by their index */
	gen_expect(fmt("{\"prompt\": [0, 1, %d]}", n_vocab), false, 400, "prompt[2]");
	gen_expect(fmt("{\"prompt\": [%d]}", n_vocab + 1000), false, 400, "prompt[0]");
	gen_expect(fmt("{\"prompt\": [1, 9223372036854775807]}"), false, 400, "prompt[1]");
	/* the last id is fine */
	struct hreq r;
	struct api_error e;
	ck_assert_msg(parse_gen(fmt("{\"prompt\": [0, %d]}", n_vocab - 1), false, &r, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(r.prompt[0], 0);
	ck_assert_int_eq(r.prompt[1], n_vocab - 1);
	gen_free(&r);
	/* logprobs up to WORKER_MAX_TOP alternatives */
	ck_assert_msg(parse_gen(fmt("{\"prompt\": [1], \"logprobs\": %d}", WORKER_MAX_TOP), false, &r, &e) == 0,
		      "%s", e.msg);
	ck_assert_int_eq(r.n_logprobs, WORKER_MAX_TOP);
	gen_free(&r);
	gen_expect(fmt("{\"prompt\": [1], \"logprobs\": %d}", WORKER_MAX_TOP + 1), false, 400, "logprobs");
}
END_TEST

/* Prompts against the context (e->n_ctx) and max_tokens against the room
 * the prompt leaves. */
START_TEST(completion_context)
{
	struct hreq r;
	struct api_error e;
	int32_t *want = malloc(sizeof(int32_t) * (size_t)(n_ctx + 1));
	ck_assert_ptr_nonnull(want);
	/* more ids than the context holds */
	char *ids = ids_json(n_ctx + 1, NULL);
	gen_expect(fmt("{\"prompt\": %s}", ids), false, 400, "prompt");
	free(ids);
	/* exactly the context: no room for a token */
	ids = ids_json(n_ctx, NULL);
	gen_expect(fmt("{\"prompt\": %s}", ids), false, 400, "prompt");
	free(ids);
	/* one position left: max_tokens defaults to it */
	ids = ids_json(n_ctx - 1, want);
	ck_assert_msg(parse_gen(fmt("{\"prompt\": %s}", ids), false, &r, &e) == 0, "%s", e.msg);
	expect_ids(r.prompt, r.n_prompt, want, n_ctx - 1, "prompt of n_ctx - 1");
	ck_assert_int_eq(r.job.max_tokens, 1);
	gen_free(&r);
	free(ids);
	/* three left: 3 is taken, 4 is refused naming max_tokens */
	ids = ids_json(n_ctx - 3, NULL);
	ck_assert_msg(parse_gen(fmt("{\"prompt\": %s, \"max_tokens\": 3}", ids), false, &r, &e) == 0, "%s",
		      e.msg);
	ck_assert_int_eq(r.job.max_tokens, 3);
	gen_free(&r);
	gen_expect(fmt("{\"prompt\": %s, \"max_tokens\": 4}", ids), false, 400, "max_tokens");
	free(ids);
	/* a text prompt of more tokens than the context */
	const char *text = long_text(n_ctx);
	gen_expect(fmt("{\"prompt\": \"%s\"}", text), false, 400, "prompt");
	free(want);
}
END_TEST

/* ---- /v1/chat/completions ---- */

START_TEST(chat_values)
{
	struct hreq r;
	struct api_error e;
	int n_want;
	int32_t *want = chat_ids("user", "hello there", &n_want);
	/* content as a string and as text parts: the same prompt, the chat
	 * format's own */
	const char *bodies[] = {
		"{\"messages\": [{\"role\": \"user\", \"content\": \"hello there\"}]}",
		"{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"hello \"}, "
		"{\"type\": \"text\", \"text\": \"there\"}]}]}",
		"{\"messages\": [{\"role\": \"user\", \"name\": \"ann\", \"content\": \"hello there\"}]}",
	};
	for (int i = 0; i < 3; i++) {
		ck_assert_msg(parse_gen(bodies[i], true, &r, &e) == 0, "%s: %s", bodies[i], e.msg);
		expect_ids(r.prompt, r.n_prompt, want, n_want, bodies[i]);
		ck_assert_int_eq(r.job.n_prompt, n_want);
		ck_assert_int_eq(r.job.max_tokens, DEFAULT_MAX_TOKENS);
		ck_assert(!r.chat_logprobs);
		ck_assert_int_eq(r.n_logprobs, -1);
		gen_free(&r);
	}
	free(want);
	/* every role is taken */
	ck_assert_msg(parse_gen("{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, "
				"{\"role\": \"developer\", \"content\": \"d\"}, {\"role\": \"user\", \"content\": \"u\"}, "
				"{\"role\": \"assistant\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": []}]}",
				true, &r, &e) == 0, "%s", e.msg);
	ck_assert_int_gt(r.n_prompt, 0);
	gen_free(&r);
	/* logprobs: true alone is the sampled token's; with top_logprobs n */
	ck_assert_msg(parse_gen("{" BASE_CHAT ", \"logprobs\": true}", true, &r, &e) == 0, "%s", e.msg);
	ck_assert(r.chat_logprobs);
	ck_assert_int_eq(r.n_logprobs, 0);
	ck_assert_int_eq(r.job.n_logprobs, 0);
	gen_free(&r);
	ck_assert_msg(parse_gen("{" BASE_CHAT ", \"logprobs\": true, \"top_logprobs\": 3}", true, &r, &e) == 0,
		      "%s", e.msg);
	ck_assert(r.chat_logprobs);
	ck_assert_int_eq(r.n_logprobs, 3);
	ck_assert_int_eq(r.job.n_logprobs, 3);
	gen_free(&r);
	ck_assert_msg(parse_gen("{" BASE_CHAT ", \"logprobs\": false}", true, &r, &e) == 0, "%s", e.msg);
	ck_assert(!r.chat_logprobs);
	ck_assert_int_eq(r.n_logprobs, -1);
	gen_free(&r);
	/* max_completion_tokens is OpenAI's newer max_tokens; when given,
	 * max_tokens is not read (proto/openapi.yaml) */
	ck_assert_msg(parse_gen("{" BASE_CHAT ", \"max_completion_tokens\": 4}", true, &r, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(r.job.max_tokens, 4);
	gen_free(&r);
	ck_assert_msg(parse_gen("{" BASE_CHAT ", \"max_tokens\": 3, \"max_completion_tokens\": 6}", true, &r,
				&e) == 0, "%s", e.msg);
	ck_assert_int_eq(r.job.max_tokens, 6);
	gen_free(&r);
	ck_assert_msg(parse_gen("{" BASE_CHAT ", \"max_tokens\": 3}", true, &r, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(r.job.max_tokens, 3);
	gen_free(&r);
	/* sampling fields as for completions */
	ck_assert_msg(parse_gen("{" BASE_CHAT ", \"temperature\": 0, \"top_k\": 2, \"seed\": 9, \"stream\": true, "
				"\"stop\": \"</s>\"}", true, &r, &e) == 0, "%s", e.msg);
	ck_assert(r.job.sp.temperature == 0.0f);
	ck_assert_int_eq(r.job.sp.top_k, 2);
	ck_assert_uint_eq(r.job.sp.seed, 9);
	ck_assert(r.stream);
	ck_assert_int_eq(r.job.n_stop, 1);
	ck_assert_str_eq(r.job.stop[0], "</s>");
	gen_free(&r);
}
END_TEST

static const struct bad chat_bad[] = {
	{ "{}", "messages", 400 },
	{ "{\"messages\": null}", "messages", 400 },
	{ "{\"max_tokens\": 5}", "messages", 400 },
	{ "{\"messages\": \"hello\"}", "messages", 400 },
	{ "{\"messages\": []}", "messages", 400 },
	{ "{\"messages\": {\"role\": \"user\", \"content\": \"a\"}}", "messages", 400 },
	{ "{\"messages\": [5]}", "messages[0]", 400 },
	{ "{\"messages\": [[]]}", "messages[0]", 400 },
	{ "{\"messages\": [{\"content\": \"a\"}]}", "messages[0].role", 400 },
	{ "{\"messages\": [{\"role\": 5, \"content\": \"a\"}]}", "messages[0].role", 400 },
	{ "{\"messages\": [{\"role\": \"robot\", \"content\": \"a\"}]}", "messages[0].role", 400 },
	{ "{\"messages\": [{\"role\": \"User\", \"content\": \"a\"}]}", "messages[0].role", 400 },
	{ "{\"messages\": [{\"role\": \"tool\", \"content\": \"a\"}]}", "messages[0].tool_call_id", 400 },
	{ "{\"messages\": [{\"role\": \"tools\", \"content\": \"a\"}]}", "messages[0].role", 400 },
	/* tool calls (docs/tool-calls.md) */
	{ "{" BASE_CHAT ", \"tools\": 5}", "tools", 400 },
	{ "{" BASE_CHAT ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"a b\"}}]}",
	  "tools[0].function.name", 400 },
	{ "{" BASE_CHAT ", \"tools\": [{\"type\": \"code\"}]}", "tools[0]", 400 },
	{ "{" BASE_CHAT ", \"tool_choice\": \"required\"}", "tool_choice", 400 },
	{ "{" BASE_CHAT ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}], "
	  "\"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"g\"}}}", "tool_choice", 400 },
	{ "{" BASE_CHAT ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}], "
	  "\"response_format\": {\"type\": \"json_object\"}}", "response_format", 400 },
	{ "{" BASE_CHAT ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", "
	  "\"parameters\": {\"type\": \"string\", \"format\": \"email\"}}}]}", "tools[0].function.parameters", 400 },
	{ "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"tool_calls\": "
	  "[{\"id\": \"c\", \"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": \"[1]\"}}]}]}",
	  "messages[1].tool_calls[0].function.arguments", 400 },
	{ "{\"messages\": [{\"role\": \"user\"}]}", "messages[0].content", 400 },
	{ "{\"messages\": [{\"role\": \"user\", \"content\": null}]}", "messages[0].content", 400 },
	{ "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", "messages[0].content", 400 },
	{ "{\"messages\": [{\"role\": \"user\", \"content\": {\"text\": \"a\"}}]}", "messages[0].content", 400 },
	{ "{\"messages\": [{\"role\": \"user\", \"content\": [5]}]}", "messages[0].content[0]", 400 },
	{ "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {}}]}]}",
	  "messages[0].content[0]", 400 },
	{ "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\"}]}]}", "messages[0].content[0]", 400 },
	{ "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": 5}]}]}",
	  "messages[0].content[0]", 400 },
	{ "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"}, {\"text\": \"b\"}]}]}",
	  "messages[0].content[1]", 400 },
	{ "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"bot\", \"content\": \"b\"}]}",
	  "messages[1].role", 400 },
	{ "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": 1}]}",
	  "messages[1].content", 400 },
	{ "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, \"b\"]}", "messages[1]", 400 },
	{ "{" BASE_CHAT ", \"logprobs\": 1}", "logprobs", 400 },
	{ "{" BASE_CHAT ", \"logprobs\": \"true\"}", "logprobs", 400 },
	{ "{" BASE_CHAT ", \"logprobs\": true, \"top_logprobs\": -1}", "top_logprobs", 400 },
	{ "{" BASE_CHAT ", \"logprobs\": true, \"top_logprobs\": 1.5}", "top_logprobs", 400 },
	{ "{" BASE_CHAT ", \"top_logprobs\": 2}", "top_logprobs", 400 },
	{ "{" BASE_CHAT ", \"logprobs\": false, \"top_logprobs\": 2}", "top_logprobs", 400 },
	{ "{" BASE_CHAT ", \"max_completion_tokens\": 0}", "max_completion_tokens", 400 },
	{ "{" BASE_CHAT ", \"max_completion_tokens\": \"4\"}", "max_completion_tokens", 400 },
	/* fields of /v1/completions */
	{ "{" BASE_CHAT ", \"prompt\": \"a\"}", "prompt", 400 },
	{ "{" BASE_CHAT ", \"echo\": false}", "echo", 400 },
	{ "{" BASE_CHAT ", \"suffix\": null}", "suffix", 400 },
	{ "{" BASE_CHAT ", \"best_of\": 1}", "best_of", 400 },
	/* the body itself */
	{ "[]", "", 400 },
	{ "\"hello\"", "", 400 },
	{ "3.5", "", 400 },
	{ "false", "", 400 },
};

START_TEST(chat_refused)
{
	const struct bad *b = &chat_bad[_i];
	gen_expect(b->field, true, b->status, b->param);
}
END_TEST

START_TEST(chat_limits)
{
	/* top_logprobs up to WORKER_MAX_TOP */
	struct hreq r;
	struct api_error e;
	ck_assert_msg(parse_gen(fmt("{" BASE_CHAT ", \"logprobs\": true, \"top_logprobs\": %d}", WORKER_MAX_TOP),
				true, &r, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(r.n_logprobs, WORKER_MAX_TOP);
	gen_free(&r);
	gen_expect(fmt("{" BASE_CHAT ", \"logprobs\": true, \"top_logprobs\": %d}", WORKER_MAX_TOP + 1), true, 400,
		   "top_logprobs");
	/* more messages than a request may carry */
	const int n = 4097;
	size_t cap = (size_t)n * 48 + 64, at = 0;
	char *body = malloc(cap);
	ck_assert_ptr_nonnull(body);
	at += (size_t)snprintf(body, cap, "{\"messages\": [");
	for (int i = 0; i < n; i++)
		at += (size_t)snprintf(body + at, cap - at, "%s{\"role\": \"user\", \"content\": \"a\"}", i ? "," : "");
	snprintf(body + at, cap - at, "]}");
	gen_expect(body, true, 400, "messages");
	free(body);
}
END_TEST

/* The conversation against the context: the chat format's tokens are
 * counted, and max_tokens against the room they leave.  Both error.param
 * and the message name the field. */
START_TEST(chat_context)
{
	const char *text = long_text(n_ctx);
	struct hreq r;
	struct api_error e;
	int rc = parse_gen(fmt("{\"messages\": [{\"role\": \"user\", \"content\": \"%s\"}]}", text), true, &r, &e);
	ck_assert_msg(rc < 0, "a conversation of more than %d tokens was accepted", n_ctx);
	ck_assert_int_eq(e.status, 400);
	ck_assert_str_eq(e.param, "messages");
	ck_assert_msg(strstr(e.msg, fmt("%d", n_ctx)) != NULL, "the message does not give the context (%d): %s",
		      n_ctx, e.msg);
	ck_assert_msg(strstr(e.msg, "messages") != NULL, "the message does not name 'messages': %s", e.msg);
	check_error_body(&e, "chat over the context", "messages");
	gen_free(&r);
	/* a short conversation: max_tokens up to the room it leaves */
	int n_p;
	int32_t *p = chat_ids("user", "hello", &n_p);
	free(p);
	int room = n_ctx - n_p;
	ck_assert_int_gt(room, 2);
	cfg.limits.max_tokens = n_ctx;  /* the context is the limit here */
	ck_assert_msg(parse_gen(fmt("{" BASE_CHAT ", \"max_tokens\": %d}", room), true, &r, &e) == 0, "%s",
		      e.msg);
	ck_assert_int_eq(r.job.max_tokens, room);
	gen_free(&r);
	gen_expect(fmt("{" BASE_CHAT ", \"max_tokens\": %d}", room + 1), true, 400, "max_tokens");
	gen_expect(fmt("{" BASE_CHAT ", \"max_completion_tokens\": %d}", room + 1), true, 400,
		   "max_completion_tokens");
}
END_TEST

/* ---- /tokenize and /detokenize ---- */

static int call_simple(bool tok, const char *body, char **out, struct api_error *e)
{
	memset(e, 0, sizeof(*e));
	*out = NULL;
	json_t *root = load(body);
	int rc = tok ? api_tokenize(&srv, root, out, e) : api_detokenize(&srv, root, out, e);
	json_decref(root);
	return rc;
}

/* The ids of a /tokenize answer. */
static int32_t *answer_ids(const char *body, int *n)
{
	json_t *root = load(body);
	json_t *t = json_object_get(root, "tokens");
	ck_assert_msg(json_is_array(t), "%s", body);
	*n = (int)json_array_size(t);
	int32_t *ids = malloc(sizeof(int32_t) * (size_t)(*n + 1));
	ck_assert_ptr_nonnull(ids);
	for (int i = 0; i < *n; i++) {
		ck_assert(json_is_integer(json_array_get(t, (size_t)i)));
		ids[i] = (int32_t)json_integer_value(json_array_get(t, (size_t)i));
	}
	json_decref(root);
	return ids;
}

START_TEST(tokenize_values)
{
	const char *text = "<|im_start|>hello, world";
	static const struct {
		const char *extra;
		bool add, parse;
	} cases[] = {
		{ "", true, true },
		{ ", \"add_special\": false", false, true },
		{ ", \"parse_special\": false", true, false },
		{ ", \"add_special\": false, \"parse_special\": false", false, false },
		{ ", \"add_special\": null, \"parse_special\": null", true, true },
		/* the model field is accepted and ignored (proto/openapi.yaml) */
		{ ", \"model\": \"some-other-model\"", true, true },
		{ ", \"model\": 5", true, true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *body = fmt("{\"content\": \"%s\"%s}", text, cases[i].extra);
		char *out;
		struct api_error e;
		int st = call_simple(true, body, &out, &e);
		ck_assert_msg(st == 200, "%s: %d %s", body, st < 0 ? e.status : st, e.msg);
		int n, n_want;
		int32_t *got = answer_ids(out, &n);
		int32_t *want = encode(text, cases[i].add, cases[i].parse, &n_want);
		expect_ids(got, n, want, n_want, body);
		free(got);
		free(want);
		free(out);
	}
	/* empty text: no ids (BOS only where the model adds one) */
	char *out;
	struct api_error e;
	ck_assert_int_eq(call_simple(true, "{\"content\": \"\", \"add_special\": false}", &out, &e), 200);
	int n;
	int32_t *got = answer_ids(out, &n);
	ck_assert_int_eq(n, 0);
	free(got);
	free(out);
}
END_TEST

static const struct bad tokenize_bad[] = {
	{ "{}", "content", 400 },
	{ "{\"content\": null}", "content", 400 },
	{ "{\"content\": 5}", "content", 400 },
	{ "{\"content\": [\"a\"]}", "content", 400 },
	{ "{\"content\": {}}", "content", 400 },
	{ "{\"add_special\": true}", "content", 400 },
	{ "{\"content\": \"a\", \"add_special\": \"yes\"}", "add_special", 400 },
	{ "{\"content\": \"a\", \"add_special\": 1}", "add_special", 400 },
	{ "{\"content\": \"a\", \"parse_special\": 0}", "parse_special", 400 },
	{ "{\"content\": \"a\", \"parse_special\": []}", "parse_special", 400 },
	{ "{\"content\": \"a\", \"prompt\": \"b\"}", "prompt", 400 },
	{ "{\"content\": \"a\", \"tokens\": [1]}", "tokens", 400 },
	{ "{\"content\": \"a\", \"text\": \"b\"}", "text", 400 },
	{ "[]", "", 400 },
	{ "\"hello\"", "", 400 },
	{ "7", "", 400 },
	{ "null", "", 400 },
};

START_TEST(tokenize_refused)
{
	const struct bad *b = &tokenize_bad[_i];
	char *out;
	struct api_error e;
	int rc = call_simple(true, b->field, &out, &e);
	free(out);
	expect_error(rc, &e, fmt("/tokenize %s", b->field), 400, b->param);
}
END_TEST

START_TEST(detokenize_values)
{
	/* the ids of a text give the text back */
	const char *text = "hello, world";
	int n;
	int32_t *ids = encode(text, false, false, &n);
	ck_assert_int_gt(n, 0);
	char list[1024];
	size_t at = 0;
	for (int i = 0; i < n; i++)
		at += (size_t)snprintf(list + at, sizeof(list) - at, "%s%d", i ? "," : "", ids[i]);
	free(ids);
	const char *bodies[] = { "{\"tokens\": [%s]}", "{\"tokens\": [%s], \"model\": \"another\"}" };
	for (int k = 0; k < 2; k++) {
		char body[1200];
		snprintf(body, sizeof(body), bodies[k], list);
		char *out;
		struct api_error e;
		int st = call_simple(false, body, &out, &e);
		ck_assert_msg(st == 200, "%s: %s", body, e.msg);
		json_t *root = load(out);
		ck_assert_str_eq(json_string_value(json_object_get(root, "content")), text);
		json_decref(root);
		free(out);
	}
	/* no ids: no text; the last id of the vocabulary is valid */
	char *out;
	struct api_error e;
	ck_assert_int_eq(call_simple(false, "{\"tokens\": []}", &out, &e), 200);
	json_t *root = load(out);
	ck_assert_str_eq(json_string_value(json_object_get(root, "content")), "");
	json_decref(root);
	free(out);
	int st = call_simple(false, fmt("{\"tokens\": [0, %d]}", n_vocab - 1), &out, &e);
	ck_assert_msg(st == 200, "%s", e.msg);
	free(out);
}
END_TEST

static const struct bad detokenize_bad[] = {
	{ "{}", "tokens", 400 },
	{ "{\"tokens\": null}", "tokens", 400 },
	{ "{\"tokens\": \"1 2\"}", "tokens", 400 },
	{ "{\"tokens\": 1}", "tokens", 400 },
	{ "{\"tokens\": {\"0\": 1}}", "tokens", 400 },
	{ "{\"tokens\": [-1]}", "tokens[0]", 400 },
	{ "{\"tokens\": [1, -5]}", "tokens[1]", 400 },
	{ "{\"tokens\": [1, \"a\"]}", "tokens[1]", 400 },
	{ "{\"tokens\": [1, 2.0]}", "tokens[1]", 400 },
	{ "{\"tokens\": [1, 2, null]}", "tokens[2]", 400 },
	{ "{\"tokens\": [[1]]}", "tokens[0]", 400 },
	{ "{\"tokens\": [1], \"content\": \"a\"}", "content", 400 },
	{ "{\"tokens\": [1], \"add_special\": true}", "add_special", 400 },
	{ "[1, 2]", "", 400 },
	{ "\"1 2\"", "", 400 },
	{ "12", "", 400 },
};

START_TEST(detokenize_refused)
{
	const struct bad *b = &detokenize_bad[_i];
	char *out;
	struct api_error e;
	int rc = call_simple(false, b->field, &out, &e);
	free(out);
	expect_error(rc, &e, fmt("/detokenize %s", b->field), 400, b->param);
}
END_TEST

START_TEST(detokenize_ids_past_the_vocabulary)
{
	const struct {
		const char *body;
		const char *param;
	} cases[] = {
		{ "{\"tokens\": [%d]}", "tokens[0]" },
		{ "{\"tokens\": [0, 1, %d]}", "tokens[2]" },
	};
	for (int k = 0; k < 2; k++)
		for (int d = 0; d < 2; d++) {
			char body[128];
			snprintf(body, sizeof(body), cases[k].body, d ? n_vocab + 100000 : n_vocab);
			char *out;
			struct api_error e;
			int rc = call_simple(false, body, &out, &e);
			free(out);
			expect_error(rc, &e, body, 400, cases[k].param);
		}
}
END_TEST

/* ---- /v1/models ---- */

START_TEST(models_list)
{
	char *out = api_models(&srv);
	ck_assert_ptr_nonnull(out);
	json_t *root = load(out);
	ck_assert_str_eq(json_string_value(json_object_get(root, "object")), "list");
	json_t *data = json_object_get(root, "data");
	ck_assert_msg(json_is_array(data) && json_array_size(data) == 1, "%s", out);
	json_t *m = json_array_get(data, 0);
	ck_assert_str_eq(json_string_value(json_object_get(m, "id")), srv.model_id);
	ck_assert_str_eq(json_string_value(json_object_get(m, "object")), "model");
	ck_assert_int_eq(json_integer_value(json_object_get(m, "created")), srv.t_wall);
	ck_assert_str_eq(json_string_value(json_object_get(m, "owned_by")), "smoke");
	ck_assert_int_eq(json_integer_value(json_object_get(m, "context_length")), n_ctx);
	ck_assert_str_eq(json_string_value(json_object_get(m, "architecture")),
			 family_name(eng->model->fam->family));
	json_decref(root);
	free(out);
	/* while loading (no engine yet): id only, no model figures */
	srv.e = NULL;
	out = api_models(&srv);
	srv.e = eng;
	ck_assert_ptr_nonnull(out);
	root = load(out);
	m = json_array_get(json_object_get(root, "data"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(m, "id")), srv.model_id);
	ck_assert_ptr_null(json_object_get(m, "context_length"));
	ck_assert_ptr_null(json_object_get(m, "architecture"));
	json_decref(root);
	free(out);
}
END_TEST

/* ---- generated output: channels of the harmony format ---- */

/* What gpt-oss writes after the prompt's <|start|>assistant, one token a
 * piece (<|return|> ended it: an end-of-generation token, no text). */
static const char *const oss_pieces[] = {
	"<|channel|>", "analysis", "<|message|>", "User", " greets", ".", "<|end|>", "<|start|>",
	"assistant", "<|channel|>", "final", "<|message|>", "Hel", "lo", " \xc3\xa9", "<", "3", NULL,
};
#define OSS_REASONING "User greets."
#define OSS_CONTENT "Hello \xc3\xa9<3"

/* One event's ChatChunk / CompletionChunk JSON ("data: {...}\n\n"). */
static json_t *event_json(char *ev)
{
	ck_assert_ptr_nonnull(ev);
	size_t n = strlen(ev);
	ck_assert_msg(n > 8 && !strncmp(ev, "data: ", 6) && !strcmp(ev + n - 2, "\n\n"), "event '%s'", ev);
	json_error_t je;
	json_t *j = json_loadb(ev + 6, n - 8, 0, &je);
	ck_assert_msg(j, "event '%s': %s", ev, je.text);
	free(ev);
	return j;
}

static json_t *body_json(char *body)
{
	ck_assert_ptr_nonnull(body);
	json_t *j = json_loads(body, 0, NULL);
	ck_assert_msg(j, "body '%s'", body);
	free(body);
	return j;
}

static const char *jget_str(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	ck_assert_msg(json_is_string(v), "'%s' is not a string", k);
	return json_string_value(v);
}

/* Run a generation's text through r as server.c does: the role chunk,
 * api_take_text per piece and a chunk whenever something new is there,
 * api_end_text, the finish chunk.  The deltas are concatenated into
 * content / reasoning (each at most 255 bytes). */
static void stream(struct hreq *r, const char *const *pieces, char *content, char *reasoning)
{
	content[0] = reasoning[0] = 0;
	snprintf(r->id, sizeof(r->id), "chatcmpl-test");
	r->created = 1700000000;
	json_t *j = event_json(api_stream_chunk(r, 0, 0, 0, 0, 0, 0, NULL, false, true));
	json_t *d = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "delta");
	ck_assert_str_eq(jget_str(d, "role"), "assistant");
	ck_assert_str_eq(jget_str(d, "content"), "");
	ck_assert_ptr_null(json_object_get(d, "reasoning_content"));
	json_decref(j);
	for (int i = 0; pieces[i] || !r->done; i++) {
		if (pieces[i]) {
			ck_assert_int_eq(api_take_text(r, pieces[i], strlen(pieces[i]), -1), 0);
		} else {
			ck_assert_int_eq(api_end_text(r), 0);
			r->done = true;
			i--;
		}
		if (r->n_text == r->sent_text && r->n_reason == r->sent_reason)
			continue;
		j = event_json(api_stream_chunk(r, r->sent_text, r->n_text, r->sent_reason, r->n_reason, 0, 0,
						NULL, false, false));
		r->sent_text = r->n_text;
		r->sent_reason = r->n_reason;
		json_t *c = json_array_get(json_object_get(j, "choices"), 0);
		ck_assert(json_is_null(json_object_get(c, "finish_reason")));
		d = json_object_get(c, "delta");
		const char *k;
		json_t *v;
		json_object_foreach(d, k, v) {
			ck_assert_msg(!strcmp(k, "content") || !strcmp(k, "reasoning_content"), "delta.%s", k);
			ck_assert_msg(json_is_string(v) && json_string_length(v) > 0, "delta.%s empty", k);
			char *acc = !strcmp(k, "content") ? content : reasoning;
			ck_assert_uint_lt(strlen(acc) + json_string_length(v), 256);
			strcat(acc, json_string_value(v));
		}
		json_decref(j);
	}
	j = event_json(api_stream_chunk(r, 0, 0, 0, 0, 0, 0, "stop", false, false));
	json_t *c = json_array_get(json_object_get(j, "choices"), 0);
	ck_assert_str_eq(jget_str(c, "finish_reason"), "stop");
	ck_assert_int_eq(json_object_size(json_object_get(c, "delta")), 0);
	json_decref(j);
}

static void out_free(struct hreq *r)
{
	free(r->text);
	free(r->reason);
	gen_free(r);
}

/* A chat request on a harmony model as api_parse_generation leaves it.
 * (llama-f32's context of 64 cannot hold harmony's system message, so the
 * request is set up here; chat_harmony_channels checks that parsing
 * renders the harmony prompt.) */
static void harmony_req(struct hreq *r)
{
	memset(r, 0, sizeof(*r));
	r->srv = &srv;
	r->chat = true;
	r->harmony = true;
	harmony_init(&r->hp);
	r->n_logprobs = -1;
}

START_TEST(chat_harmony_channels)
{
	struct hreq r;
	struct api_error e;
	char content[256], reasoning[256];
	srv.chat = CHAT_HARMONY;

	/* the harmony prompt (its system message alone is some 200 tokens of
	 * llama-f32's vocabulary) is what the chat endpoint renders */
	int rc = parse_gen("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", true, &r, &e);
	expect_error(rc, &e, "harmony prompt", 400, "messages");
	ck_assert_str_eq(e.code, "context_length_exceeded");
	gen_free(&r);

	/* tools with harmony (docs/tool-calls.md): a tool result without a
	 * call before it is a history the format cannot write */
	rc = parse_gen("{\"messages\": [{\"role\": \"tool\", \"tool_call_id\": \"c\", \"content\": \"22\"}]}",
		       true, &r, &e);
	expect_error(rc, &e, "harmony tool result", 400, "messages");
	ck_assert_msg(strstr(e.msg, "tool call"), "%s", e.msg);
	gen_free(&r);

	/* non-streamed: message.content is the final channel, reasoning_content
	 * the analysis channel, no marker of either */
	harmony_req(&r);
	for (int i = 0; oss_pieces[i]; i++)
		ck_assert_int_eq(api_take_text(&r, oss_pieces[i], strlen(oss_pieces[i]), -1), 0);
	ck_assert_int_eq(api_end_text(&r), 0);
	r.res.finish = WORKER_FINISH_STOP;
	r.res.n_gen = 17;
	snprintf(r.id, sizeof(r.id), "chatcmpl-test");
	json_t *j = body_json(api_generation_body(&r));
	json_t *m = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message");
	ck_assert_str_eq(jget_str(m, "role"), "assistant");
	ck_assert_str_eq(jget_str(m, "content"), OSS_CONTENT);
	ck_assert_str_eq(jget_str(m, "reasoning_content"), OSS_REASONING);
	json_decref(j);
	out_free(&r);

	/* streamed: delta.reasoning_content, then delta.content */
	harmony_req(&r);
	stream(&r, oss_pieces, content, reasoning);
	ck_assert_str_eq(content, OSS_CONTENT);
	ck_assert_str_eq(reasoning, OSS_REASONING);
	out_free(&r);

	/* cut off while reasoning (max_tokens), mid-marker: the held "<|en"
	 * is reasoning text after all; content is "" */
	const char *cut[] = { "<|channel|>", "analysis", "<|message|>", "Hmm", "<|en", NULL };
	harmony_req(&r);
	stream(&r, cut, content, reasoning);
	ck_assert_str_eq(content, "");
	ck_assert_str_eq(reasoning, "Hmm<|en");
	j = body_json(api_generation_body(&r));
	m = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message");
	ck_assert_str_eq(jget_str(m, "content"), "");
	ck_assert_str_eq(jget_str(m, "reasoning_content"), "Hmm<|en");
	json_decref(j);
	out_free(&r);

	/* /v1/completions on the same model: the raw text, markers and all */
	ck_assert_msg(parse_gen("{\"prompt\": \"hi\"}", false, &r, &e) == 0, "%s", e.msg);
	ck_assert(!r.harmony);
	char raw[256] = "";
	for (int i = 0; oss_pieces[i]; i++) {
		strcat(raw, oss_pieces[i]);
		ck_assert_int_eq(api_take_text(&r, oss_pieces[i], strlen(oss_pieces[i]), -1), 0);
	}
	ck_assert_int_eq(api_end_text(&r), 0);
	j = body_json(api_generation_body(&r));
	ck_assert_str_eq(jget_str(json_array_get(json_object_get(j, "choices"), 0), "text"), raw);
	json_decref(j);
	out_free(&r);
}
END_TEST

/* A harmony call streamed: the arguments' deltas add up to the whole
 * arguments, their last byte included, whatever lies in the text buffer past
 * the text (a continuation byte there once cut the closing '}' off). */
START_TEST(chat_harmony_call_streamed_whole)
{
	static const char *const call[] = {
		"<|channel|>", "commentary", " to", "=functions", ".get", "_weather", " <|constrain|>", "json",
		"<|message|>", "{\"", "city", "\":\"", "Z\xc3\xbc", "rich", "\"}", NULL,
	};
	const char *args = "{\"city\":\"Z\xc3\xbcrich\"}";
	for (int poison = 0; poison < 2; poison++) {
		struct hreq r;
		harmony_req(&r);
		r.tools = calloc(1, sizeof(*r.tools));
		ck_assert_ptr_nonnull(r.tools);
		r.tools->tools = json_pack("[{s:s, s:{s:s}}]", "type", "function", "function", "name", "get_weather");
		r.tools->choice = TOOLS_REQUIRED;
		r.tools->sx = toolcall_syntax(CHAT_HARMONY);
		ck_assert_ptr_nonnull(r.tools->sx);
		char got[256] = "";
		int heads = 0;
		for (int i = 0; call[i] || !r.done; i++) {
			if (call[i]) {
				ck_assert_int_eq(api_take_text(&r, call[i], strlen(call[i]), -1), 0);
			} else {
				ck_assert_int_eq(api_end_text(&r), 0);
				if (poison && r.text) {
					ck_assert_uint_gt(r.cap_text, r.n_text);
					r.text[r.n_text] = (char)0x80;   /* stale bytes past the text */
				}
				r.done = true;
				i--;
			}
			json_t *d;
			while ((d = tools_stream_delta(&r))) {
				json_t *c = json_array_get(json_object_get(d, "tool_calls"), 0);
				json_t *fn = json_object_get(c, "function");
				heads += json_object_get(fn, "name") != NULL;
				const char *a = jget_str(fn, "arguments");
				ck_assert_uint_lt(strlen(got) + strlen(a), sizeof(got));
				strcat(got, a);
				json_decref(d);
			}
		}
		ck_assert_int_eq(heads, 1);
		ck_assert_msg(!strcmp(got, args), "poison %d: streamed '%s', want '%s'", poison, got, args);
		json_t *whole = tools_calls_json(&r);
		ck_assert_str_eq(jget_str(json_object_get(json_array_get(whole, 0), "function"), "arguments"), args);
		json_decref(whole);
		out_free(&r);
	}
}
END_TEST

START_TEST(chat_other_formats_unsplit)
{
	/* llama-f32's own format: the text is the content, markers or not,
	 * and there is no reasoning_content */
	struct hreq r;
	struct api_error e;
	char content[256], reasoning[256], raw[256] = "";
	ck_assert_int_ne(srv.chat, CHAT_HARMONY);
	ck_assert_msg(parse_gen("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", true, &r, &e) == 0,
		      "%s", e.msg);
	ck_assert(!r.harmony);
	for (int i = 0; oss_pieces[i]; i++)
		strcat(raw, oss_pieces[i]);
	stream(&r, oss_pieces, content, reasoning);
	ck_assert_str_eq(content, raw);
	ck_assert_str_eq(reasoning, "");
	r.res.finish = WORKER_FINISH_LENGTH;
	json_t *j = body_json(api_generation_body(&r));
	json_t *c = json_array_get(json_object_get(j, "choices"), 0);
	json_t *m = json_object_get(c, "message");
	ck_assert_str_eq(jget_str(m, "content"), raw);
	ck_assert_ptr_null(json_object_get(m, "reasoning_content"));
	ck_assert_str_eq(jget_str(c, "finish_reason"), "length");
	json_decref(j);
	out_free(&r);
}
END_TEST

/* ---- over HTTP: what server.c checks before api.c ---- */

static struct server hs;
static struct config hcfg;

#define HTTP_MAX_BODY 512

static void http_setup(void)
{
	setup();
	config_init(&hcfg);
	snprintf(hcfg.server.host, sizeof(hcfg.server.host), "127.0.0.1");
	hcfg.server.port = 0;
	hcfg.limits.max_body = HTTP_MAX_BODY;
	memset(&hs, 0, sizeof(hs));
	struct smk_err err = { 0 };
	ck_assert_msg(server_listen(&hs, &hcfg, model_dir(), MODEL_ID, &err) == 0, "%s", err.msg);
	/* no worker: nothing here reaches worker_submit */
	server_publish(&hs, eng, NULL, srv.chat);
}

static void http_teardown(void)
{
	server_stop(&hs, 0);
	teardown();
}

struct http_answer {
	int status;
	char head[2048];
	json_t *json;      /* the body, or NULL if not JSON */
};

static void http_call(const char *method, const char *path, const char *body, struct http_answer *a)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	struct timeval tv = { .tv_sec = 20 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)hs.port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect: %s", strerror(errno));
	size_t n_body = body ? strlen(body) : 0;
	char *req = NULL;
	int n = body ? asprintf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
				"Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
				method, path, n_body, body)
		     : asprintf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
				method, path);
	ck_assert_int_gt(n, 0);
	for (int off = 0; off < n;) {
		ssize_t w = send(fd, req + off, (size_t)(n - off), MSG_NOSIGNAL);
		if (w <= 0)
			break;  /* the server may answer (413) before reading it all */
		off += (int)w;
	}
	free(req);
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap + 1);
	ck_assert_ptr_nonnull(buf);
	for (;;) {
		ssize_t r = recv(fd, buf + len, cap - len, 0);
		if (r <= 0)
			break;
		len += (size_t)r;
		ck_assert_msg(len < cap, "answer too long");
	}
	close(fd);
	buf[len] = 0;
	ck_assert_msg(sscanf(buf, "HTTP/1.%*d %d", &a->status) == 1, "%s %s: no status line in '%.200s'", method,
		      path, buf);
	char *sep = strstr(buf, "\r\n\r\n");
	ck_assert_msg(sep, "%s %s: no end of headers", method, path);
	snprintf(a->head, sizeof(a->head), "%.*s", (int)(sep - buf), buf);
	a->json = json_loads(sep + 4, 0, NULL);
	free(buf);
}

/* An Error object with error.param `param` ("" null). */
static void http_expect(const char *method, const char *path, const char *body, int status, const char *param)
{
	struct http_answer a;
	http_call(method, path, body, &a);
	char what[160];
	snprintf(what, sizeof(what), "%s %s %.100s", method, path, body ? body : "");
	ck_assert_msg(a.status == status, "%s: status %d, want %d", what, a.status, status);
	json_t *err = json_object_get(a.json, "error");
	ck_assert_msg(json_is_object(err), "%s: no error object", what);
	json_t *p = json_object_get(err, "param");
	if (*param) {
		ck_assert_msg(json_is_string(p) && !strcmp(json_string_value(p), param), "%s: param is not '%s'",
			      what, param);
		ck_assert_msg(strstr(json_string_value(json_object_get(err, "message")), param) != NULL,
			      "%s: the message does not name '%s'", what, param);
	} else {
		ck_assert_msg(json_is_null(p), "%s: param is not null", what);
	}
	ck_assert_msg(json_is_string(json_object_get(err, "message")), "%s: no message", what);
	json_decref(a.json);
}

START_TEST(http_bodies_not_json)
{
	static const char *const paths[] = { "/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize" };
	static const char *const bodies[] = {
		"{\"prompt\": \"a\",",             /* cut short */
		"prompt=a",                        /* a form */
		"{'prompt': 'a'}",                 /* not JSON quotes */
		"",                                /* empty */
		"\"a string\"",                    /* a bare scalar is not a request body */
		"{\"content\": \"a\", \"content\": \"b\", \"tokens\": [1], \"tokens\": [2], "
		"\"prompt\": \"a\", \"prompt\": \"b\"}",  /* duplicate keys */
		"{\"content\": \"\xff\xfe\"}",     /* not UTF-8 */
	};
	for (size_t p = 0; p < 4; p++)
		for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++)
			http_expect("POST", paths[p], bodies[b], 400, "");
	/* JSON but not an object: api.c's answer */
	for (size_t p = 0; p < 4; p++)
		http_expect("POST", paths[p], "[1, 2]", 400, "");
}
END_TEST

START_TEST(http_api_errors_reach_the_client)
{
	http_expect("POST", "/v1/completions", "{\"prompt\": \"a\", \"model\": \"nope\"}", 404, "model");
	http_expect("POST", "/v1/chat/completions", "{" BASE_CHAT ", \"model\": \"nope\"}", 404, "model");
	http_expect("POST", "/v1/completions", "{\"prompt\": \"a\", \"temperature\": 9}", 400, "temperature");
	http_expect("POST", "/v1/chat/completions", "{\"messages\": [{\"role\": \"x\", \"content\": \"a\"}]}", 400,
		    "messages[0].role");
	http_expect("POST", "/tokenize", "{\"text\": \"a\"}", 400, "text");
	http_expect("POST", "/detokenize", fmt("{\"tokens\": [%d]}", n_vocab), 400, "tokens[0]");
	/* and valid answers: the tokenizer's ids, the model */
	struct http_answer a;
	http_call("POST", "/tokenize", "{\"content\": \"hello world\"}", &a);
	ck_assert_int_eq(a.status, 200);
	json_t *t = json_object_get(a.json, "tokens");
	int n_want;
	int32_t *want = encode("hello world", true, true, &n_want);
	ck_assert_int_eq((int)json_array_size(t), n_want);
	for (int i = 0; i < n_want; i++)
		ck_assert_int_eq(json_integer_value(json_array_get(t, (size_t)i)), want[i]);
	free(want);
	json_decref(a.json);
	http_call("GET", "/v1/models", NULL, &a);
	ck_assert_int_eq(a.status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(a.json, "data"), 0), "id")),
			 MODEL_ID);
	json_decref(a.json);
}
END_TEST

START_TEST(http_paths_methods_and_size)
{
	/* a method the path does not take: 405 with Allow */
	struct http_answer a;
	http_call("GET", "/tokenize", NULL, &a);
	ck_assert_int_eq(a.status, 405);
	ck_assert_msg(strstr(a.head, "\r\nAllow: POST") != NULL, "no Allow: POST in %s", a.head);
	json_decref(a.json);
	http_call("POST", "/v1/models", "{}", &a);
	ck_assert_int_eq(a.status, 405);
	ck_assert_msg(strstr(a.head, "\r\nAllow: GET") != NULL, "no Allow: GET in %s", a.head);
	json_decref(a.json);
	/* no such path */
	http_expect("POST", "/v1/embeddings", "{}", 404, "");
	http_expect("GET", "/v2/models", NULL, 404, "");
	/* a body over limits.max_body, and one at it */
	char *big = malloc(HTTP_MAX_BODY + 2);
	ck_assert_ptr_nonnull(big);
	int at = snprintf(big, HTTP_MAX_BODY + 2, "{\"content\": \"");
	memset(big + at, 'a', (size_t)(HTTP_MAX_BODY + 1 - at - 2));
	memcpy(big + HTTP_MAX_BODY + 1 - 2, "\"}", 3);
	ck_assert_int_eq((int)strlen(big), HTTP_MAX_BODY + 1);
	http_expect("POST", "/tokenize", big, 413, "");
	big[HTTP_MAX_BODY - 2] = '"';
	big[HTTP_MAX_BODY - 1] = '}';
	big[HTTP_MAX_BODY] = 0;
	http_call("POST", "/tokenize", big, &a);
	ck_assert_msg(a.status == 200, "a body of limits.max_body bytes: %d", a.status);
	json_decref(a.json);
	free(big);
}
END_TEST

/* ---- guard.h: Host/Origin allow-list and raw request targets ---- */

START_TEST(guard_hosts)
{
	struct config c;
	config_init(&c);
	snprintf(c.server.host, sizeof(c.server.host), "127.0.0.1");
	static const struct { const char *host; bool ok; } loop[] = {
		{ "127.0.0.1:8080", true }, { "localhost", true }, { "LOCALHOST:1", true },
		{ "localhost.:80", true }, { "[::1]:8080", true }, { "evil.example", false },
		{ "127.0.0.1.evil.example", false }, { "", false }, { "[::2]", false },
	};
	for (size_t i = 0; i < sizeof(loop) / sizeof(loop[0]); i++)
		ck_assert_msg(guard_host_allowed(&c, loop[i].host, strlen(loop[i].host)) == loop[i].ok,
			      "loopback: Host '%s'", loop[i].host);
	snprintf(c.server.host, sizeof(c.server.host), "0.0.0.0");
	ck_assert(guard_host_allowed(&c, "anything.example", 16));
	snprintf(c.server.allowed_hosts, sizeof(c.server.allowed_hosts), "llm.example, ::1");
	ck_assert(guard_host_allowed(&c, "llm.example:443", 15));
	ck_assert(guard_host_allowed(&c, "[::1]", 5));
	ck_assert(!guard_host_allowed(&c, "localhost", 9));
	snprintf(c.server.allowed_hosts, sizeof(c.server.allowed_hosts), "*");
	ck_assert(guard_host_allowed(&c, "x", 1));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("api");
	TCase *tc = tcase_create("direct");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, generation_common_fields_refused, 0,
			    (int)(sizeof(common_bad) / sizeof(common_bad[0])));
	tcase_add_test(tc, generation_bounds_accepted);
	tcase_add_test(tc, generation_ranges_from_the_server);
	tcase_add_test(tc, completion_values);
	tcase_add_loop_test(tc, completion_refused, 0, (int)(sizeof(completion_bad) / sizeof(completion_bad[0])));
	tcase_add_test(tc, completion_token_ids_checked);
	tcase_add_test(tc, completion_context);
	tcase_add_test(tc, chat_values);
	tcase_add_loop_test(tc, chat_refused, 0, (int)(sizeof(chat_bad) / sizeof(chat_bad[0])));
	tcase_add_test(tc, chat_limits);
	tcase_add_test(tc, chat_context);
	tcase_add_test(tc, tokenize_values);
	tcase_add_loop_test(tc, tokenize_refused, 0, (int)(sizeof(tokenize_bad) / sizeof(tokenize_bad[0])));
	tcase_add_test(tc, detokenize_values);
	tcase_add_loop_test(tc, detokenize_refused, 0, (int)(sizeof(detokenize_bad) / sizeof(detokenize_bad[0])));
	tcase_add_test(tc, detokenize_ids_past_the_vocabulary);
	tcase_add_test(tc, models_list);
	tcase_add_test(tc, chat_harmony_channels);
	tcase_add_test(tc, chat_harmony_call_streamed_whole);
	tcase_add_test(tc, chat_other_formats_unsplit);
	suite_add_tcase(s, tc);
	tc = tcase_create("http");
	tcase_add_checked_fixture(tc, http_setup, http_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, http_bodies_not_json);
	tcase_add_test(tc, http_api_errors_reach_the_client);
	tcase_add_test(tc, http_paths_methods_and_size);
	suite_add_tcase(s, tc);
	tc = tcase_create("guard");
	tcase_add_test(tc, guard_hosts);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ck_run(suite());
}
