/* api.c - request validation and response JSON for the OpenAI-compatible
 * endpoints.  Every field of a request body is type- and range-checked here,
 * and errors name the field (error.param) and what is allowed. */
#include "http/api.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "formats/json_err.h"
#include "grammar/grammar.h"
#include "http/tools.h"
#include "smk_config.h"
#include "unicode/unicode.h"

#define INVALID "invalid_request_error"

int api_fail(struct api_error *e, int status, const char *type, const char *param,
	     const char *code, const char *fmt, ...)
{
	e->status = status;
	e->type = type;
	snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
	e->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

static json_t *jstr(const char *s, size_t len)
{
	json_t *j = json_stringn(s, len);
	if (j)
		return j;
	/* jansson refuses invalid UTF-8, and token pieces and truncated
	 * client bytes can be partial characters: replace them by the one
	 * rule (unicode_utf8_sanitize). */
	char *c = len < SIZE_MAX / 3 ? malloc(len * 3 + 1) : NULL;
	j = c ? json_stringn(c, unicode_utf8_sanitize(s, len, c)) : NULL;
	free(c);
	return j;
}

json_t *api_json_text(const char *s, size_t len)
{
	return jstr(s, len);
}

/* The message and param quote client bytes (field names, the model name,
 * the path) and truncate them with %.Ns, which can cut a UTF-8 sequence:
 * jstr repairs both, where json_pack "s" would fail and leave no body. */
char *api_error_body(const struct api_error *e)
{
	json_build_begin();
	json_t *err = json_pack("{s:o, s:s, s:o, s:o}",
				"message", jstr(e->msg, strlen(e->msg)), "type", e->type ? e->type : INVALID,
				"param", e->param[0] ? jstr(e->param, strlen(e->param)) : json_null(),
				"code", e->code ? json_string(e->code) : json_null());
	json_t *root = err ? json_pack("{s:o}", "error", err) : NULL;
	char *s = json_build_dump(root);
	return s;
}

/* ---- field helpers: absent and null mean "default" ---- */

static json_t *field(json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);
	return v && !json_is_null(v) ? v : NULL;
}

static int get_int(json_t *o, const char *name, int64_t lo, int64_t hi, int64_t *out,
		   bool *given, struct api_error *e)
{
	json_t *v = field(o, name);
	if (given)
		*given = v != NULL;
	if (!v)
		return 0;
	if (!json_is_integer(v))
		return api_fail(e, 400, INVALID, name, "invalid_type", "'%s' must be an integer", name);
	int64_t x = json_integer_value(v);
	if (x < lo || x > hi)
		return api_fail(e, 400, INVALID, name, "out_of_range",
				"'%s' is %" PRId64 "; allowed: %" PRId64 "..%" PRId64, name, x, lo, hi);
	*out = x;
	return 0;
}

/* A number in [lo, hi] (lo excluded if lo_open). */
static int get_num(json_t *o, const char *name, double lo, bool lo_open, double hi, float *out,
		   struct api_error *e)
{
	json_t *v = field(o, name);
	if (!v)
		return 0;
	if (!json_is_number(v))
		return api_fail(e, 400, INVALID, name, "invalid_type", "'%s' must be a number", name);
	double x = json_number_value(v);
	if (!isfinite(x) || x < lo || (lo_open && x == lo) || x > hi)
		return api_fail(e, 400, INVALID, name, "out_of_range", "'%s' is %g; allowed: %s%g..%g",
				name, x, lo_open ? "more than " : "", lo, hi);
	/* The sampler's parameters are floats: a value that is in range as a
	 * double can round onto the open bound (1e-320 -> 0). */
	if (lo_open && !((float)x > (float)lo))
		return api_fail(e, 400, INVALID, name, "out_of_range",
				"'%s' is %g, which is %g as a 32-bit float; allowed: more than %g..%g",
				name, x, (double)(float)x, lo, hi);
	*out = (float)x;
	return 0;
}

static int get_bool(json_t *o, const char *name, bool *out, struct api_error *e)
{
	json_t *v = field(o, name);
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return api_fail(e, 400, INVALID, name, "invalid_type", "'%s' must be true or false", name);
	*out = json_is_true(v);
	return 0;
}

/* Fields we accept only with their neutral value. */
static int neutral_only(json_t *o, struct api_error *e)
{
	static const char *const zero[] = { "presence_penalty", "frequency_penalty" };
	for (size_t i = 0; i < 2; i++) {
		json_t *v = field(o, zero[i]);
		if (v && (!json_is_number(v) || json_number_value(v) != 0))
			return api_fail(e, 400, INVALID, zero[i], "unsupported",
					"'%s' is not supported (only 0)", zero[i]);
	}
	json_t *v = field(o, "logit_bias");
	if (v && (!json_is_object(v) || json_object_size(v)))
		return api_fail(e, 400, INVALID, "logit_bias", "unsupported", "'logit_bias' is not supported");
	v = field(o, "best_of");
	if (v && (!json_is_integer(v) || json_integer_value(v) != 1))
		return api_fail(e, 400, INVALID, "best_of", "unsupported", "'best_of' must be 1");
	v = field(o, "echo");
	if (v && !json_is_false(v))
		return api_fail(e, 400, INVALID, "echo", "unsupported", "'echo' must be false");
	v = field(o, "suffix");
	if (v)
		return api_fail(e, 400, INVALID, "suffix", "unsupported", "'suffix' is not supported");
	return 0;
}

static bool listed(const char *const *list, const char *k)
{
	for (int i = 0; list && list[i]; i++)
		if (!strcmp(k, list[i]))
			return true;
	return false;
}

/* Refuse every top-level field outside `known` and `more` (400 unknown_field
 * naming it), as OpenAI does: a misspelt option (max_token) must not be
 * silently ignored.  A field of the sibling endpoint (`other`, at
 * `other_path`) says so.  proto/openapi.yaml lists exactly these fields
 * (additionalProperties: false). */
static int check_known(json_t *o, const char *const *known, const char *const *more,
		       const char *const *other, const char *other_path, struct api_error *e)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		if (listed(known, k) || listed(more, k))
			continue;
		if (listed(other, k))
			return api_fail(e, 400, INVALID, k, "unknown_field",
					"'%s' is a field of %s, not of this endpoint", k, other_path);
		return api_fail(e, 400, INVALID, k, "unknown_field", "unknown field '%.64s'", k);
	}
	return 0;
}

/* Fields of both generation endpoints; the neutral-only ones (penalties,
 * logit_bias) are accepted for compatibility with OpenAI clients. */
static const char *const common_fields[] = {
	"model", "max_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed",
	"stop", "n", "stream", "stream_options", "user", "presence_penalty", "frequency_penalty",
	"logit_bias", "response_format", NULL,
};
static const char *const completion_fields[] = { "prompt", "logprobs", "echo", "suffix", "best_of", NULL };
static const char *const chat_fields[] = {
	"messages", "logprobs", "top_logprobs", "max_completion_tokens", "tools", "tool_choice",
	"parallel_tool_calls", NULL,
};

static int parse_stop(struct hreq *r, json_t *o, struct api_error *e)
{
	json_t *v = field(o, "stop");
	if (!v)
		return 0;
	json_t *one[1] = { v };
	size_t n = 1;
	if (json_is_array(v)) {
		n = json_array_size(v);
		if (n > WORKER_MAX_STOP)
			return api_fail(e, 400, INVALID, "stop", "out_of_range",
					"'stop' has %zu strings; at most %d", n, WORKER_MAX_STOP);
	} else if (!json_is_string(v)) {
		return api_fail(e, 400, INVALID, "stop", "invalid_type", "'stop' must be a string or an array of strings");
	}
	for (size_t i = 0; i < n; i++) {
		json_t *s = json_is_array(v) ? json_array_get(v, i) : one[0];
		char param[32];
		snprintf(param, sizeof(param), json_is_array(v) ? "stop[%zu]" : "stop", i);
		if (!json_is_string(s))
			return api_fail(e, 400, INVALID, param, "invalid_type", "'%s' must be a string", param);
		size_t len = json_string_length(s);
		if (len < 1 || len > WORKER_MAX_STOP_LEN)
			return api_fail(e, 400, INVALID, param, "out_of_range",
					"'%s' must be 1..%d bytes long", param, WORKER_MAX_STOP_LEN);
		r->stops[r->job.n_stop] = strdup(json_string_value(s));
		if (!r->stops[r->job.n_stop])
			return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
		r->job.stop[r->job.n_stop] = r->stops[r->job.n_stop];
		r->job.n_stop++;
	}
	return 0;
}

static int encode_text(struct server *s, const char *text, size_t len, bool add_special,
		       bool parse_special, int max, int32_t **out, int *n_out, const char *param,
		       struct api_error *e)
{
	size_t cap = len + 8, n = 0;
	if (cap > (size_t)max + 8)
		cap = (size_t)max + 8;
	int32_t *ids = malloc(cap * sizeof(int32_t));
	if (!ids)
		return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
	struct smk_err err = { 0 };
	int rc = tokenizer_encode(s->e->tok, text, len, add_special, parse_special, ids, cap, &n, &err);
	if (rc == -ENOSPC || (rc == 0 && n > (size_t)max)) {
		free(ids);
		return api_fail(e, 400, INVALID, param, "context_length_exceeded",
				"'%s' is %zu tokens; the context holds %d", param, n, max);
	}
	if (rc) {
		free(ids);
		if (rc == -ENOMEM)  /* not the client's fault */
			return api_fail(e, 500, "server_error", NULL, NULL, "cannot tokenize '%s': %s", param, err.msg);
		return api_fail(e, 400, INVALID, param, NULL, "cannot tokenize '%s': %s", param, err.msg);
	}
	*out = ids;
	*n_out = (int)n;
	return 0;
}

static int parse_prompt(struct server *s, struct hreq *r, json_t *o, struct api_error *e)
{
	json_t *p = json_object_get(o, "prompt");
	const int n_ctx = s->e->n_ctx, n_vocab = s->e->model->hp.n_vocab;
	if (!p || json_is_null(p))
		return api_fail(e, 400, INVALID, "prompt", "missing_field", "'prompt' is required");
	if (json_is_string(p))
		return encode_text(s, json_string_value(p), json_string_length(p), true, true, n_ctx,
				   &r->prompt, &r->n_prompt, "prompt", e);
	if (!json_is_array(p))
		return api_fail(e, 400, INVALID, "prompt", "invalid_type",
				"'prompt' must be a string or an array of token ids");
	size_t n = json_array_size(p);
	if (n == 0)
		return api_fail(e, 400, INVALID, "prompt", "out_of_range", "'prompt' is empty");
	if (!json_is_integer(json_array_get(p, 0)))
		return api_fail(e, 400, INVALID, "prompt", "unsupported",
				"'prompt' must be one string or one array of token ids (n=1: no batches)");
	if (n > (size_t)n_ctx)
		return api_fail(e, 400, INVALID, "prompt", "context_length_exceeded",
				"'prompt' is %zu tokens; the context holds %d", n, n_ctx);
	r->prompt = malloc(n * sizeof(int32_t));
	if (!r->prompt)
		return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *t = json_array_get(p, i);
		char param[32];
		snprintf(param, sizeof(param), "prompt[%zu]", i);
		if (!json_is_integer(t))
			return api_fail(e, 400, INVALID, param, "invalid_type", "'%s' must be a token id", param);
		json_int_t id = json_integer_value(t);
		if (id < 0 || id >= n_vocab)
			return api_fail(e, 400, INVALID, param, "invalid_token",
					"'%s' is %" JSON_INTEGER_FORMAT "; token ids are 0..%d", param, id, n_vocab - 1);
		r->prompt[i] = (int32_t)id;
	}
	r->n_prompt = (int)n;
	return 0;
}

static int parse_messages(struct server *s, struct hreq *r, json_t *o, struct api_error *e)
{
	static const char *const roles[] = { "system", "developer", "user", "assistant", "tool" };
	json_t *m = json_object_get(o, "messages");
	if (!m || json_is_null(m))
		return api_fail(e, 400, INVALID, "messages", "missing_field", "'messages' is required");
	if (!json_is_array(m) || json_array_size(m) == 0)
		return api_fail(e, 400, INVALID, "messages", "invalid_type", "'messages' must be a non-empty array");
	size_t n = json_array_size(m);
	if (n > 4096)
		return api_fail(e, 400, INVALID, "messages", "out_of_range", "'messages' has more than 4096 entries");
	struct chat_msg *msgs = calloc(n, sizeof(*msgs));
	char **owned = calloc(n, sizeof(char *));
	int rc = 0;
	if (!msgs || !owned) {
		rc = api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		json_t *msg = json_array_get(m, i), *role, *content;
		char param[48];
		snprintf(param, sizeof(param), "messages[%zu]", i);
		if (!json_is_object(msg)) {
			rc = api_fail(e, 400, INVALID, param, "invalid_type", "'%s' must be an object", param);
			break;
		}
		role = json_object_get(msg, "role");
		snprintf(param, sizeof(param), "messages[%zu].role", i);
		if (!json_is_string(role)) {
			rc = api_fail(e, 400, INVALID, param, "invalid_type", "'%s' must be a string", param);
			break;
		}
		for (size_t k = 0; k < 5 && !msgs[i].role; k++)
			if (!strcmp(json_string_value(role), roles[k]))
				msgs[i].role = roles[k];
		if (!msgs[i].role) {
			rc = api_fail(e, 400, INVALID, param, "invalid_value",
				      "'%s' must be system, developer, user, assistant or tool", param);
			break;
		}
		bool optional;
		if ((rc = tools_message(msg, i, &msgs[i], &optional, e)))
			break;
		content = json_object_get(msg, "content");
		snprintf(param, sizeof(param), "messages[%zu].content", i);
		if (optional && (!content || json_is_null(content))) {
			msgs[i].content = "";    /* an assistant's tool calls alone */
			continue;
		}
		if (json_is_string(content)) {
			msgs[i].content = json_string_value(content);
			msgs[i].len = json_string_length(content);
			continue;
		}
		if (!json_is_array(content)) {
			rc = api_fail(e, 400, INVALID, param, "invalid_type",
				      "'%s' must be a string or an array of text parts", param);
			break;
		}
		size_t total = 0;
		for (size_t k = 0; k < json_array_size(content) && rc == 0; k++) {
			json_t *part = json_array_get(content, k), *text = json_object_get(part, "text");
			json_t *type = json_object_get(part, "type");
			if (!json_is_object(part) || !json_is_string(type) ||
			    strcmp(json_string_value(type), "text") || !json_is_string(text)) {
				snprintf(param, sizeof(param), "messages[%zu].content[%zu]", i, k);
				rc = api_fail(e, 400, INVALID, param, "invalid_value",
					      "'%s' must be {\"type\":\"text\",\"text\":...} (only text is supported)", param);
				break;
			}
			total += json_string_length(text);
		}
		if (rc)
			break;
		owned[i] = malloc(total + 1);
		if (!owned[i]) {
			rc = api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
			break;
		}
		size_t at = 0;
		for (size_t k = 0; k < json_array_size(content); k++) {
			json_t *text = json_object_get(json_array_get(content, k), "text");
			memcpy(owned[i] + at, json_string_value(text), json_string_length(text));
			at += json_string_length(text);
		}
		msgs[i].content = owned[i];
		msgs[i].len = total;
	}
	if (rc == 0) {
		struct smk_err err = { 0 };
		int c = chat_encode_tools(s->chat, s->e->tok, msgs, (int)n, r->tools ? r->tools->tools : NULL,
					  s->e->n_ctx, &r->prompt, &r->n_prompt, &err);
		if (c == -ENOTSUP)
			rc = api_fail(e, 400, INVALID, "messages", "unsupported", "'messages': %s", err.msg);
		else if (c == -E2BIG)
			rc = api_fail(e, 400, INVALID, "messages", "context_length_exceeded",
				      "'messages': %s (the context is %d tokens)", err.msg, s->e->n_ctx);
		else if (c == -ENOMEM)
			rc = api_fail(e, 500, "server_error", NULL, NULL, "cannot encode the messages: %s", err.msg);
		else if (c)
			rc = api_fail(e, 400, INVALID, "messages", NULL, "cannot encode the messages: %s", err.msg);
	}
out:
	for (size_t i = 0; msgs && i < n; i++)
		tools_message_free(&msgs[i]);
	for (size_t i = 0; owned && i < n; i++)
		free(owned[i]);
	free(owned);
	free(msgs);
	return rc;
}

static uint64_t random_seed(void)
{
	uint64_t v;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
		return v;
	static atomic_ullong ctr;
	return (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull + atomic_fetch_add(&ctr, 1);
}

/* response_format (OpenAI's structured outputs): "text", "json_object"
 * (any JSON object) or "json_schema" with json_schema {name, description,
 * schema, strict}.  The schema is compiled here, once, into r->job.grammar
 * (which worker_submit takes); a keyword the compiler does not implement is
 * a 400 naming it.  Called last, so that no later check fails with the
 * grammar allocated.  docs/structured-outputs.md. */
static int parse_response_format(struct server *s, struct hreq *r, json_t *o, struct api_error *e)
{
	static const char *const rf_fields[] = { "type", "json_schema", NULL };
	static const char *const js_fields[] = { "name", "description", "schema", "strict", NULL };
	const char *P = "response_format";
	json_t *v = field(o, P);
	if (!v)
		return 0;
	if (!json_is_object(v))
		return api_fail(e, 400, INVALID, P, "invalid_type", "'response_format' must be an object");
	json_t *ty = json_object_get(v, "type");
	const char *t = json_is_string(ty) ? json_string_value(ty) : "";
	bool js = !strcmp(t, "json_schema");
	if (!js && strcmp(t, "json_object") && strcmp(t, "text"))
		return api_fail(e, 400, INVALID, P, "invalid_value",
				"'response_format.type' must be \"text\", \"json_object\" or \"json_schema\"");
	const char *k;
	json_t *m;
	json_object_foreach(v, k, m)
		if (!listed(rf_fields, k) || (!js && strcmp(k, "type")))
			return api_fail(e, 400, INVALID, P, "unknown_field",
					"unknown field 'response_format.%.64s' for type \"%s\"", k, t);
	if (!strcmp(t, "text"))
		return 0;
	if (r->harmony)
		return api_fail(e, 400, INVALID, P, "unsupported",
				"'response_format' is not supported with the harmony chat format (gpt-oss) yet");
	struct grammar_error ge;
	int rc;
	if (!js) {
		rc = grammar_compile_any_object(&r->job.grammar, &ge);
	} else {
		json_t *j = json_object_get(v, "json_schema");
		if (!json_is_object(j))
			return api_fail(e, 400, INVALID, P, j ? "invalid_type" : "missing_field",
					"'response_format.json_schema' must be an object");
		json_object_foreach(j, k, m)
			if (!listed(js_fields, k))
				return api_fail(e, 400, INVALID, P, "unknown_field",
						"unknown field 'response_format.json_schema.%.64s'", k);
		json_t *name = json_object_get(j, "name"), *desc = json_object_get(j, "description");
		json_t *strict = field(j, "strict"), *schema = json_object_get(j, "schema");
		if ((name && !json_is_string(name)) || (desc && !json_is_string(desc)))
			return api_fail(e, 400, INVALID, P, "invalid_type",
					"'response_format.json_schema.name' and '.description' must be strings");
		if (strict && !json_is_boolean(strict))
			return api_fail(e, 400, INVALID, P, "invalid_type",
					"'response_format.json_schema.strict' must be true or false");
		if (schema && !json_is_object(schema) && !json_is_boolean(schema))
			return api_fail(e, 400, INVALID, P, "invalid_type",
					"'response_format.json_schema.schema' must be a JSON schema (an object)");
		/* No schema: any JSON object, as json_object. */
		rc = schema ? grammar_compile_schema(&r->job.grammar, schema, strict && json_is_true(strict), &ge)
			    : grammar_compile_any_object(&r->job.grammar, &ge);
	}
	if (rc == -ENOMEM)
		return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
	if (rc)
		return api_fail(e, 400, INVALID, P,
				rc == -ENOTSUP ? "unsupported_schema_keyword" : "invalid_schema",
				"response_format: %s (at %s in the schema)", ge.msg, ge.path);
	return 0;
}

int api_parse_generation(struct server *s, struct hreq *r, json_t *o, struct api_error *e)
{
	const struct config *cfg = s->cfg;
	if (!json_is_object(o))
		return api_fail(e, 400, INVALID, NULL, "invalid_type", "the body must be a JSON object");
	if (check_known(o, common_fields, r->chat ? chat_fields : completion_fields,
			r->chat ? completion_fields : chat_fields,
			r->chat ? "/v1/completions" : "/v1/chat/completions", e) ||
	    neutral_only(o, e))
		return -1;
	json_t *v = field(o, "model");
	if (v && !json_is_string(v))
		return api_fail(e, 400, INVALID, "model", "invalid_type", "'model' must be a string");
	if (v && strcmp(json_string_value(v), s->model_id))
		return api_fail(e, 404, "not_found_error", "model", "model_not_found",
				"model '%.200s' is not served here; this server serves '%s'",
				json_string_value(v), s->model_id);
	int64_t n = 1;
	if (get_int(o, "n", 1, 1, &n, NULL, e))
		return -1;

	struct sampler_params *sp = &r->job.sp;
	sampler_params_default(sp);
	sp->temperature = 1.0f;
	sp->top_k = 0;
	sp->top_p = 1.0f;
	sp->min_p = 0.0f;
	sp->repeat_penalty = 1.0f;
	int64_t i64 = 0;
	bool given;
	if (get_num(o, "temperature", 0, false, 2, &sp->temperature, e) ||
	    get_num(o, "top_p", 0, true, 1, &sp->top_p, e) ||
	    get_num(o, "min_p", 0, false, 1, &sp->min_p, e) ||
	    get_num(o, "repeat_penalty", 0, true, 10, &sp->repeat_penalty, e))
		return -1;
	if (get_int(o, "top_k", 0, s->e->model->hp.n_vocab, &i64, &given, e))
		return -1;
	if (given)
		sp->top_k = (int)i64;
	if (get_int(o, "seed", 0, INT64_MAX, &i64, &given, e))
		return -1;
	sp->seed = given ? (uint64_t)i64 : random_seed();

	if (get_bool(o, "stream", &r->stream, e))
		return -1;
	v = field(o, "stream_options");
	if (v) {
		if (!json_is_object(v))
			return api_fail(e, 400, INVALID, "stream_options", "invalid_type", "'stream_options' must be an object");
		json_t *iu = field(v, "include_usage");
		if (iu && !json_is_boolean(iu))
			return api_fail(e, 400, INVALID, "stream_options.include_usage", "invalid_type",
					"'stream_options.include_usage' must be true or false");
		r->include_usage = iu && json_is_true(iu);
	}
	v = field(o, "user");
	if (v && !json_is_string(v))
		return api_fail(e, 400, INVALID, "user", "invalid_type", "'user' must be a string");

	r->n_logprobs = -1;
	if (r->chat) {
		bool lp = false;
		if (get_bool(o, "logprobs", &lp, e) ||
		    get_int(o, "top_logprobs", 0, WORKER_MAX_TOP, &i64, &given, e))
			return -1;
		if (given && !lp)
			return api_fail(e, 400, INVALID, "top_logprobs", "invalid_value",
					"'top_logprobs' needs 'logprobs': true");
		r->chat_logprobs = lp;
		if (lp)
			r->n_logprobs = given ? (int)i64 : 0;
	} else {
		if (get_int(o, "logprobs", 0, WORKER_MAX_TOP, &i64, &given, e))
			return -1;
		if (given)
			r->n_logprobs = (int)i64;
	}
	if (parse_stop(r, o, e))
		return -1;

	/* max_tokens is checked before the (costly) tokenisation. */
	int64_t max_tokens = 0;
	bool mt_given = false;
	const char *mt_name = "max_tokens";
	if (r->chat && field(o, "max_completion_tokens"))
		mt_name = "max_completion_tokens";
	if (get_int(o, mt_name, 1, INT32_MAX, &max_tokens, &mt_given, e))
		return -1;
	if (mt_given && max_tokens > cfg->limits.max_tokens)
		return api_fail(e, 400, INVALID, mt_name, "out_of_range",
				"'%s' is %" PRId64 "; this server allows at most %d (limits.max_tokens)",
				mt_name, max_tokens, cfg->limits.max_tokens);

	if (r->chat && tools_parse(s, r, o, e))
		return -1;
	if (r->chat ? parse_messages(s, r, o, e) : parse_prompt(s, r, o, e))
		return -1;
	if (r->n_prompt < 1)
		return api_fail(e, 400, INVALID, r->chat ? "messages" : "prompt", "out_of_range",
				"'%s' is empty (no tokens)", r->chat ? "messages" : "prompt");
	int room = s->e->n_ctx - r->n_prompt;
	if (room < 1)
		return api_fail(e, 400, INVALID, r->chat ? "messages" : "prompt", "context_length_exceeded",
				"'%s' is %d tokens and fills the context of %d", r->chat ? "messages" : "prompt",
				r->n_prompt, s->e->n_ctx);
	if (!mt_given)
		max_tokens = cfg->limits.default_max_tokens < room ? cfg->limits.default_max_tokens : room;
	else if (max_tokens > room)
		return api_fail(e, 400, INVALID, mt_name, "context_length_exceeded",
				"the prompt (%d tokens) + '%s' (%" PRId64 ") exceed the context of %d tokens",
				r->n_prompt, mt_name, max_tokens, s->e->n_ctx);
	r->harmony = r->chat && s->chat == CHAT_HARMONY;
	harmony_init(&r->hp);
	if (parse_response_format(s, r, o, e) || tools_grammar(r, e))
		return -1;
	r->job.prompt = r->prompt;
	r->job.n_prompt = r->n_prompt;
	r->job.max_tokens = (int)max_tokens;
	r->job.n_logprobs = r->n_logprobs;
	return 0;
}

const char *api_finish(struct hreq *r)
{
	tools_update(r);
	if (tools_active(r) && r->tools->state == TOOLS_CALL && r->res.finish == WORKER_FINISH_STOP)
		return "tool_calls";
	return api_finish_reason(r->res.finish);
}

const char *api_finish_reason(enum worker_finish f)
{
	switch (f) {
	case WORKER_FINISH_STOP: return "stop";
	case WORKER_FINISH_LENGTH: return "length";
	default: return "cancelled";
	}
}

/* ---- output ---- */

static int buf_add(char **b, size_t *n, size_t *cap, const char *s, size_t len)
{
	if (*n + len + 1 > *cap) {
		if (len > SIZE_MAX / 4 - *n)
			return -ENOMEM;
		size_t c = (*n + len + 1) * 2;
		char *t = realloc(*b, c);
		if (!t)
			return -ENOMEM;
		*b = t;
		*cap = c;
	}
	memcpy(*b + *n, s, len);
	*n += len;
	return 0;
}

static void on_channel(void *ctx, enum harmony_channel ch, const char *s, size_t len)
{
	struct hreq *r = ctx;
	if (ch == HARMONY_CALL && !tools_harmony_call(r, r->hp.recipient, (size_t)r->hp.n_recipient,
						     r->hp.n_msg))
		return;
	if (ch != HARMONY_CALL && !tools_harmony_content(r))
		return;
	int rc = ch == HARMONY_REASONING ? buf_add(&r->reason, &r->n_reason, &r->cap_reason, s, len)
					 : buf_add(&r->text, &r->n_text, &r->cap_text, s, len);
	if (rc)
		r->out_of_memory = true;
}

int api_take_text(struct hreq *r, const char *s, size_t len, int32_t id)
{
	if (r->harmony)
		harmony_push_step(&r->hp, r->srv->e->tok, id, s, len, on_channel, r);
	else if (len && buf_add(&r->text, &r->n_text, &r->cap_text, s, len))
		r->out_of_memory = true;
	return r->out_of_memory ? -ENOMEM : 0;
}

int api_end_text(struct hreq *r)
{
	if (r->harmony)
		harmony_finish(&r->hp, on_channel, r);
	return r->out_of_memory ? -ENOMEM : 0;
}

/* ---- responses ---- */

/* Token id's bytes into buf (at most PIECE_MAX of them); returns how many. */
#define PIECE_MAX 256
static size_t piece_bytes(struct server *s, int32_t id, char buf[PIECE_MAX])
{
	size_t n = tokenizer_piece(s->e->tok, id, false, buf, PIECE_MAX);
	return n > PIECE_MAX ? PIECE_MAX : n;
}

static json_t *piece_json(struct server *s, int32_t id, json_t **bytes)
{
	char buf[PIECE_MAX];
	size_t n = piece_bytes(s, id, buf);
	if (bytes) {
		*bytes = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(*bytes, json_integer((unsigned char)buf[i]));
	}
	return jstr(buf, n);
}

/* A token's name in the completions layout: its text, or where its bytes
 * are not whole UTF-8 characters (a byte-fallback token, part of a
 * character) "bytes:\xe2\x80"-style, as OpenAI names them - cleaning them
 * to U+FFFD instead would give different tokens the same top_logprobs key,
 * and one would overwrite the other. */
static json_t *piece_name(struct server *s, int32_t id)
{
	char buf[PIECE_MAX];
	size_t n = piece_bytes(s, id, buf);
	json_t *j = memchr(buf, 0, n) ? NULL : json_stringn(buf, n);
	if (j)
		return j;
	char name[6 + 4 * PIECE_MAX + 1];
	size_t o = (size_t)snprintf(name, sizeof(name), "bytes:");
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(name + o, sizeof(name) - o, "\\x%02x", (unsigned char)buf[i]);
	return json_stringn(name, o);
}

/* Logprobs of tokens [from, to) in the completions or chat layout. */
static json_t *logprobs_json(struct hreq *r, int from, int to, size_t text_base)
{
	struct server *s = r->srv;
	if (r->n_logprobs < 0)
		return json_null();
	if (r->chat) {
		json_t *content = json_array();
		for (int i = from; i < to; i++) {
			const struct worker_token *t = &r->toks[i];
			json_t *bytes, *top = json_array();
			json_t *tok = piece_json(s, t->id, &bytes);
			for (int k = 0; k < t->n_top; k++) {
				json_t *tb;
				json_t *tt = piece_json(s, t->top[k].id, &tb);
				json_array_append_new(top, json_pack("{s:o, s:f, s:o}", "token", tt,
								     "logprob", (double)t->top[k].logprob, "bytes", tb));
			}
			json_array_append_new(content, json_pack("{s:o, s:f, s:o, s:o}", "token", tok,
								 "logprob", (double)t->logprob, "bytes", bytes,
								 "top_logprobs", top));
		}
		return json_pack("{s:o}", "content", content);
	}
	json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
	for (int i = from; i < to; i++) {
		const struct worker_token *t = &r->toks[i];
		json_array_append_new(tokens, piece_name(s, t->id));
		json_array_append_new(lps, json_real(t->logprob));
		json_t *top = json_object();
		for (int k = 0; k < t->n_top; k++) {
			json_t *name = piece_name(s, t->top[k].id);
			if (name)
				json_object_set_new(top, json_string_value(name),
						    json_real(t->top[k].logprob));
			json_decref(name);
		}
		json_array_append_new(tops, top);
		/* Where the token's text starts in the generated text: what was
		 * released after the previous token and what was held back. */
		size_t start = i == 0 ? 0 : r->tok_end[i - 1] + (r->harmony ? 0 : r->toks[i - 1].held);
		json_array_append_new(offs, json_integer((json_int_t)(start - text_base)));
	}
	return json_pack("{s:o, s:o, s:o, s:o}", "tokens", tokens, "token_logprobs", lps,
			 "top_logprobs", tops, "text_offset", offs);
}

int api_tokens_in_text(const struct hreq *r)
{
	if (r->harmony || r->job.n_stop == 0 || !r->toks)
		return r->n_tok;
	size_t start = 0;
	for (int i = 0; i < r->n_tok; i++) {
		size_t end = r->tok_end[i] + r->toks[i].held;
		if (start >= r->n_text && end > start)
			return i;
		start = end;
	}
	return r->n_tok;
}

/* OpenAI's usage; cached_tokens: the prompt's positions that the prompt
 * cache supplied (engine/worker.h). */
static json_t *usage_json(struct hreq *r)
{
	return json_pack("{s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", r->n_prompt,
			 "completion_tokens", r->res.n_gen, "total_tokens", r->n_prompt + r->res.n_gen,
			 "prompt_tokens_details", "cached_tokens", r->res.n_cached);
}

char *api_generation_body(struct hreq *r)
{
	json_build_begin();
	json_t *choice;
	const char *finish = api_finish(r);
	int n_tok = api_tokens_in_text(r);
	if (r->chat) {
		bool call = tools_active(r) && r->tools->state == TOOLS_CALL;
		choice = json_pack("{s:i, s:{s:s, s:o}, s:s, s:o}", "index", 0, "message", "role", "assistant",
				   "content", call && !tools_content_end(r) ? json_null() : jstr(r->text, tools_content_end(r)),
				   "finish_reason", finish,
				   "logprobs", logprobs_json(r, 0, n_tok, 0));
		if (choice && call)
			json_object_set_new(json_object_get(choice, "message"), "tool_calls", tools_calls_json(r));
		if (choice && r->harmony)
			json_object_set_new(json_object_get(choice, "message"), "reasoning_content",
					    jstr(r->reason ? r->reason : "", r->n_reason));
	} else
		choice = json_pack("{s:i, s:o, s:s, s:o}", "index", 0, "text", jstr(r->text, r->n_text),
				   "finish_reason", finish, "logprobs", logprobs_json(r, 0, n_tok, 0));
	json_t *root = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[o], s:o}", "id", r->id,
				 "object", r->chat ? "chat.completion" : "text_completion",
				 "created", (json_int_t)r->created, "model", r->srv->model_id,
				 "system_fingerprint", "smoke-" SMK_VERSION, "choices", choice,
				 "usage", usage_json(r));
	char *out = json_build_dump(root);
	return out;
}

char *api_stream_chunk(struct hreq *r, size_t from, size_t to, size_t rfrom, size_t rto, int tfrom,
		       int tto, const char *finish, bool usage, bool role)
{
	json_build_begin();
	json_t *choices = json_array();
	if (!usage || finish || to > from || rto > rfrom || role) {
		json_t *c;
		json_t *fin = finish ? json_string(finish) : json_null();
		if (r->chat) {
			json_t *delta = json_object();
			if (role)
				json_object_set_new(delta, "role", json_string("assistant"));
			if (rto > rfrom)
				json_object_set_new(delta, "reasoning_content",
						    jstr(r->reason + rfrom, rto - rfrom));
			if (role && to == from && tools_active(r))
				json_object_set_new(delta, "content", json_null());   /* maybe a call */
			else if (role || to > from)
				json_object_set_new(delta, "content", jstr(r->text + from, to - from));
			c = json_pack("{s:i, s:o, s:o}", "index", 0, "delta", delta, "finish_reason", fin);
		} else {
			c = json_pack("{s:i, s:o, s:o}", "index", 0, "text", jstr(r->text + from, to - from),
				      "finish_reason", fin);
		}
		if (r->n_logprobs >= 0 && tto > tfrom)
			json_object_set_new(c, "logprobs", logprobs_json(r, tfrom, tto, 0));
		json_array_append_new(choices, c);
	}
	json_t *root = json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", r->id,
				 "object", r->chat ? "chat.completion.chunk" : "text_completion",
				 "created", (json_int_t)r->created, "model", r->srv->model_id,
				 "choices", choices);
	if (root && usage)
		json_object_set_new(root, "usage", usage_json(r));
	char *js = json_build_dump(root);
	if (!js)
		return NULL;
	char *ev = NULL;
	if (asprintf(&ev, "data: %s\n\n", js) < 0)
		ev = NULL;
	free(js);
	return ev;
}

char *api_delta_event(struct hreq *r, json_t *delta)
{
	json_build_begin();
	json_t *c = json_pack("{s:i, s:o, s:n}", "index", 0, "delta", delta, "finish_reason");
	json_t *root = json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", r->id, "object", "chat.completion.chunk",
				 "created", (json_int_t)r->created, "model", r->srv->model_id, "choices", c);
	char *js = json_build_dump(root), *ev = NULL;
	if (js && asprintf(&ev, "data: %s\n\n", js) < 0)
		ev = NULL;
	free(js);
	return ev;
}

/* ---- simple endpoints ---- */

int api_tokenize(struct server *s, json_t *o, char **body, struct api_error *e)
{
	json_build_begin();
	static const char *const known[] = { "content", "add_special", "parse_special", "model", NULL };
	if (!json_is_object(o))
		return api_fail(e, 400, INVALID, NULL, "invalid_type", "the body must be a JSON object");
	if (check_known(o, known, NULL, NULL, NULL, e))
		return -1;
	json_t *c = json_object_get(o, "content");
	if (!json_is_string(c))
		return api_fail(e, 400, INVALID, "content", c ? "invalid_type" : "missing_field",
				"'content' must be a string");
	bool add_special = true, parse_special = true;
	if (get_bool(o, "add_special", &add_special, e) || get_bool(o, "parse_special", &parse_special, e))
		return -1;
	int32_t *ids;
	int n;
	/* Bounded by the body size; the context is not the limit here. */
	if (encode_text(s, json_string_value(c), json_string_length(c), add_special, parse_special,
			INT32_MAX / 2, &ids, &n, "content", e))
		return -1;
	json_t *arr = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(arr, json_integer(ids[i]));
	free(ids);
	json_t *root = json_pack("{s:o}", "tokens", arr);
	*body = json_build_dump(root);
	return *body ? 200 : api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
}

int api_detokenize(struct server *s, json_t *o, char **body, struct api_error *e)
{
	json_build_begin();
	static const char *const known[] = { "tokens", "model", NULL };
	if (!json_is_object(o))
		return api_fail(e, 400, INVALID, NULL, "invalid_type", "the body must be a JSON object");
	if (check_known(o, known, NULL, NULL, NULL, e))
		return -1;
	json_t *t = json_object_get(o, "tokens");
	if (!json_is_array(t))
		return api_fail(e, 400, INVALID, "tokens", t ? "invalid_type" : "missing_field",
				"'tokens' must be an array of token ids");
	size_t n = json_array_size(t);
	const int n_vocab = s->e->model->hp.n_vocab;
	size_t cap = tokenizer_detok_cap(s->e->tok) + 8, len = 0, room = n * cap + 64;
	char *out = malloc(room);
	if (!out)
		return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
	struct detok dt;
	detok_init(&dt);
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(t, i);
		char param[32];
		snprintf(param, sizeof(param), "tokens[%zu]", i);
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= n_vocab) {
			free(out);
			return api_fail(e, 400, INVALID, param, json_is_integer(v) ? "invalid_token" : "invalid_type",
					"'%s' must be a token id in 0..%d", param, n_vocab - 1);
		}
		len += detok_push(s->e->tok, &dt, (int32_t)json_integer_value(v), out + len, cap);
	}
	len += detok_flush(&dt, out + len, room - len);
	json_t *root = json_pack("{s:o}", "content", jstr(out, len));
	free(out);
	*body = json_build_dump(root);
	return *body ? 200 : api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
}

char *api_models(struct server *s)
{
	json_build_begin();
	json_t *m = json_pack("{s:s, s:s, s:I, s:s}", "id", s->model_id, "object", "model",
			      "created", (json_int_t)s->t_wall, "owned_by", "smoke");
	if (m && s->e) {
		json_object_set_new(m, "context_length", json_integer(s->e->n_ctx));
		json_object_set_new(m, "architecture", json_string(family_name(s->e->model->fam->family)));
	}
	json_t *root = json_pack("{s:s, s:[o]}", "object", "list", "data", m);
	char *out = json_build_dump(root);
	return out;
}
