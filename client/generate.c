/* generate.c - completions and chat completions, whole or streamed.
 *
 * Request bodies follow CompletionRequest / ChatRequest of
 * proto/openapi.yaml; replies Completion / ChatCompletion, and for streams
 * a text/event-stream of CompletionChunk / ChatChunk objects ending with
 * "data: [DONE]" (framing in sse.h).  The daemon reports a failure after the
 * stream has begun as one event holding an Error object, then [DONE]. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_impl.h"
#include "sse.h"

/* Bound on one event; a chunk holds a few tokens' text and logprobs. */
#define MAX_EVENT ((size_t)16 << 20)

void smoke_params_init(struct smoke_params *p)
{
	memset(p, 0, sizeof(*p));
	p->max_tokens = SMOKE_UNSET;
	p->temperature = NAN;
	p->top_p = NAN;
	p->top_k = SMOKE_UNSET;
	p->min_p = NAN;
	p->repeat_penalty = NAN;
	p->seed = SMOKE_UNSET;
}

void smoke_result_free(struct smoke_result *r)
{
	if (!r)
		return;
	free(r->text);
	free(r->id);
	free(r->model);
	free(r->json);
	free(r);
}

static struct smoke_result *result_new(void)
{
	struct smoke_result *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->prompt_tokens = r->completion_tokens = r->total_tokens = -1;
	r->text = strdup("");
	r->id = strdup("");
	r->model = strdup("");
	if (!r->text || !r->id || !r->model) {
		smoke_result_free(r);
		return NULL;
	}
	return r;
}

static bool set_str(char **dst, const char *s)
{
	if (!s)
		return true;
	char *d = strdup(s);
	if (!d)
		return false;
	free(*dst);
	*dst = d;
	return true;
}

static void read_usage(struct smoke_result *r, json_t *u)
{
	if (!json_is_object(u))
		return;
	json_t *v;
	if (json_is_integer(v = json_object_get(u, "prompt_tokens")))
		r->prompt_tokens = json_integer_value(v);
	if (json_is_integer(v = json_object_get(u, "completion_tokens")))
		r->completion_tokens = json_integer_value(v);
	if (json_is_integer(v = json_object_get(u, "total_tokens")))
		r->total_tokens = json_integer_value(v);
}

/* ---- request bodies ---- */

static int add_num(smoke_client *c, struct smoke_error *err, json_t *o, const char *name, double v)
{
	if (isnan(v))
		return 0;
	if (!isfinite(v))
		return smoke__fail(c, err, SMOKE_E_INVALID, "'%s' is not a finite number", name);
	if (json_object_set_new(o, name, json_real(v)))
		return smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
	return 0;
}

static int add_int(smoke_client *c, struct smoke_error *err, json_t *o, const char *name, int64_t v)
{
	if (v == SMOKE_UNSET)
		return 0;
	if (json_object_set_new(o, name, json_integer((json_int_t)v)))
		return smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
	return 0;
}

/* o[key] = s; what names the field in an error ("messages[2].content"). */
static int add_str(smoke_client *c, struct smoke_error *err, json_t *o, const char *key, const char *s,
		   const char *what)
{
	json_t *v = json_string(s);
	if (!v)
		return smoke__fail(c, err, SMOKE_E_INVALID, "'%s' is not valid UTF-8", what);
	if (json_object_set_new(o, key, v))
		return smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
	return 0;
}

/* The sampling fields of params into o.  Returns 0 or a code (recorded). */
static int add_params(smoke_client *c, struct smoke_error *err, json_t *o, const struct smoke_params *p)
{
	int rc;
	if (!p)
		return 0;
	if ((rc = add_int(c, err, o, "max_tokens", p->max_tokens)) || (rc = add_int(c, err, o, "top_k", p->top_k)) ||
	    (rc = add_int(c, err, o, "seed", p->seed)) ||
	    (rc = add_num(c, err, o, "temperature", p->temperature)) ||
	    (rc = add_num(c, err, o, "top_p", p->top_p)) || (rc = add_num(c, err, o, "min_p", p->min_p)) ||
	    (rc = add_num(c, err, o, "repeat_penalty", p->repeat_penalty)))
		return rc;
	if (p->model && (rc = add_str(c, err, o, "model", p->model, "model")))
		return rc;
	if (p->n_stop) {
		if (!p->stop)
			return smoke__fail(c, err, SMOKE_E_INVALID, "n_stop is %zu but stop is NULL", p->n_stop);
		json_t *a = json_array();
		if (!a || json_object_set_new(o, "stop", a))
			return smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
		for (size_t i = 0; i < p->n_stop; i++) {
			json_t *s = p->stop[i] ? json_string(p->stop[i]) : NULL;
			if (!s)
				return smoke__fail(c, err, SMOKE_E_INVALID, "stop[%zu] is NULL or not valid UTF-8", i);
			if (json_array_append_new(a, s))
				return smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
		}
	}
	if (p->extra_json) {
		json_error_t je;
		json_t *x = json_loads(p->extra_json, 0, &je);
		if (!json_is_object(x)) {
			json_decref(x);
			return smoke__fail(c, err, SMOKE_E_INVALID, "extra_json is not a JSON object: %s",
					   x ? "another value" : je.text);
		}
		rc = json_object_update(o, x);
		json_decref(x);
		if (rc)
			return smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
	}
	return 0;
}

/* A whole request body as a malloc'd string; *body NULL on failure. */
static int build_body(smoke_client *c, struct smoke_error *err, const char *prompt,
		      const struct smoke_message *msgs, size_t n_msgs, const struct smoke_params *p,
		      bool stream, char **body)
{
	*body = NULL;
	json_t *o = json_object();
	if (!o)
		return smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
	int rc = add_params(c, err, o, p);
	if (!rc && prompt) {
		rc = add_str(c, err, o, "prompt", prompt, "prompt");
	} else if (!rc) {
		json_t *a = json_array();
		if (!a || json_object_set_new(o, "messages", a))
			rc = smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
		for (size_t i = 0; !rc && i < n_msgs; i++) {
			if (!msgs[i].role || !msgs[i].content) {
				rc = smoke__fail(c, err, SMOKE_E_INVALID, "messages[%zu] has a NULL role or content", i);
				break;
			}
			json_t *m = json_object();
			if (!m || json_array_append_new(a, m)) {
				rc = smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
				break;
			}
			char name[48];
			snprintf(name, sizeof(name), "messages[%zu].role", i);
			if ((rc = add_str(c, err, m, "role", msgs[i].role, name)))
				break;
			snprintf(name, sizeof(name), "messages[%zu].content", i);
			rc = add_str(c, err, m, "content", msgs[i].content, name);
		}
	}
	if (!rc && stream && json_object_set_new(o, "stream", json_true()))
		rc = smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
	if (!rc && !(*body = smoke__dump(o)))
		rc = smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
	json_decref(o);
	return rc;
}

/* ---- blocking ---- */

static int generate(smoke_client *c, const char *prompt, const struct smoke_message *msgs, size_t n_msgs,
		    const struct smoke_params *p, struct smoke_result **out, struct smoke_error *err)
{
	if (out)
		*out = NULL;
	if (!c || !out)
		return smoke__fail(c, err, SMOKE_E_INVALID, "the client or out is NULL");
	const char *path = prompt ? "/v1/completions" : "/v1/chat/completions";
	char *body;
	int rc = build_body(c, err, prompt, msgs, n_msgs, p, false, &body);
	if (rc)
		return rc;
	struct smoke__sink s;
	memset(&s, 0, sizeof(s));
	rc = smoke__perform(c, "POST", path, body, &s, err);
	free(body);
	if (rc) {
		free(s.body);
		return rc;
	}
	json_t *root = s.body ? json_loadb(s.body, s.len, 0, NULL) : NULL;
	json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
	json_t *text = prompt ? json_object_get(choice, "text")
			      : json_object_get(json_object_get(choice, "message"), "content");
	struct smoke_result *r = json_is_string(text) ? result_new() : NULL;
	if (!r) {
		json_decref(root);
		free(s.body);
		return json_is_string(text) ? smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory")
			: smoke__fail(c, err, SMOKE_E_PROTOCOL, "POST %s%s: the reply has no choices[0].%s",
				      c->url, path, prompt ? "text" : "message.content");
	}
	size_t n = json_string_length(text);
	char *t = malloc(n + 1);
	if (t) {
		memcpy(t, json_string_value(text), n);
		t[n] = 0;
		free(r->text);
		r->text = t;
		r->text_len = n;
	}
	smoke__copy(r->finish_reason, sizeof(r->finish_reason),
		    json_string_value(json_object_get(choice, "finish_reason")));
	read_usage(r, json_object_get(root, "usage"));
	bool ok = t && set_str(&r->id, json_string_value(json_object_get(root, "id"))) &&
		  set_str(&r->model, json_string_value(json_object_get(root, "model")));
	json_decref(root);
	r->json = s.body;
	if (!ok) {
		smoke_result_free(r);
		return smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
	}
	*out = r;
	return 0;
}

int smoke_complete(smoke_client *c, const char *prompt, const struct smoke_params *params,
		   struct smoke_result **out, struct smoke_error *err)
{
	if (!prompt)
		return smoke__fail(c, err, SMOKE_E_INVALID, "the prompt is NULL");
	return generate(c, prompt, NULL, 0, params, out, err);
}

int smoke_chat(smoke_client *c, const struct smoke_message *messages, size_t n_messages,
	       const struct smoke_params *params, struct smoke_result **out, struct smoke_error *err)
{
	if (!messages && n_messages)
		return smoke__fail(c, err, SMOKE_E_INVALID, "messages is NULL");
	return generate(c, NULL, messages, n_messages, params, out, err);
}

/* ---- streaming ---- */

struct stream {
	struct smoke__sink sink;     /* first: the sink callback finds the stream */
	struct sse_parser sse;
	bool chat, done;
	smoke_stream_cb cb;
	void *user;
	struct smoke_result *res;
	size_t cap;                  /* of res->text */
	size_t index;
	const char *path;
};

static int text_append(struct stream *st, const char *p, size_t n)
{
	struct smoke_result *r = st->res;
	if (r->text_len + n + 1 > st->cap) {
		size_t cap = st->cap ? st->cap : 256;
		while (cap < r->text_len + n + 1)
			cap *= 2;
		char *t = realloc(r->text, cap);
		if (!t)
			return SMOKE_E_NOMEM;
		r->text = t;
		st->cap = cap;
	}
	memcpy(r->text + r->text_len, p, n);
	r->text_len += n;
	r->text[r->text_len] = 0;
	return 0;
}

/* One event: "[DONE]", an Error object, or a chunk. */
static int on_event(const char *data, size_t len, void *user)
{
	struct stream *st = user;
	struct smoke_error *e = &st->sink.stop_err;
	smoke_client *c = st->sink.c;
	if (st->done)
		return 0; /* nothing follows [DONE]; ignore what would */
	if (len == 6 && !memcmp(data, "[DONE]", 6)) {
		st->done = true;
		return 0;
	}
	json_error_t je;
	json_t *root = json_loadb(data, len, 0, &je);
	if (!json_is_object(root)) {
		json_decref(root);
		smoke__error_set(e, SMOKE_E_PROTOCOL, "POST %s%s: stream event %zu is not a JSON object (%s)",
				 c->url, st->path, st->index, root ? "another value" : je.text);
		return SMOKE_E_PROTOCOL;
	}
	json_t *jerr = json_object_get(root, "error");
	if (jerr) {
		const char *msg = json_string_value(json_object_get(jerr, "message"));
		smoke__error_set(e, SMOKE_E_STREAM, "POST %s%s: error in the stream: %s", c->url, st->path,
				 msg ? msg : "(no message)");
		e->http_status = (int)st->sink.status;
		smoke__copy(e->type, sizeof(e->type), json_string_value(json_object_get(jerr, "type")));
		smoke__copy(e->param, sizeof(e->param), json_string_value(json_object_get(jerr, "param")));
		smoke__copy(e->err_code, sizeof(e->err_code), json_string_value(json_object_get(jerr, "code")));
		json_decref(root);
		return SMOKE_E_STREAM;
	}
	struct smoke_chunk ch = { .text = "", .completion_tokens = -1, .json = data, .index = st->index++ };
	json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
	json_t *text = st->chat ? json_object_get(json_object_get(choice, "delta"), "content")
				: json_object_get(choice, "text");
	if (json_is_string(text)) {
		ch.text = json_string_value(text);
		ch.text_len = json_string_length(text);
	}
	if (st->chat)
		ch.role = json_string_value(json_object_get(json_object_get(choice, "delta"), "role"));
	ch.finish_reason = json_string_value(json_object_get(choice, "finish_reason"));
	json_t *usage = json_object_get(root, "usage");
	if (json_is_integer(json_object_get(usage, "completion_tokens")))
		ch.completion_tokens = json_integer_value(json_object_get(usage, "completion_tokens"));

	int rc = text_append(st, ch.text, ch.text_len);
	if (rc) {
		json_decref(root);
		smoke__error_set(e, rc, "out of memory");
		return rc;
	}
	if (ch.finish_reason)
		smoke__copy(st->res->finish_reason, sizeof(st->res->finish_reason), ch.finish_reason);
	read_usage(st->res, usage);
	if (st->index == 1 && (!set_str(&st->res->id, json_string_value(json_object_get(root, "id"))) ||
			       !set_str(&st->res->model, json_string_value(json_object_get(root, "model"))))) {
		json_decref(root);
		smoke__error_set(e, SMOKE_E_NOMEM, "out of memory");
		return SMOKE_E_NOMEM;
	}
	int stop = st->cb ? st->cb(&ch, st->user) : 0;
	json_decref(root);
	if (stop) {
		smoke__error_set(e, SMOKE_E_ABORTED, "POST %s%s: the stream callback stopped the stream",
				 c->url, st->path);
		return SMOKE_E_ABORTED;
	}
	return 0;
}

static int on_stream_data(struct smoke__sink *s, const char *p, size_t n)
{
	struct stream *st = (struct stream *)s;
	int rc = sse_feed(&st->sse, p, n, on_event, st);
	/* A code of on_event has its message in stop_err already; the
	 * parser's own failures get theirs here. */
	if (st->sse.error == -ENOMEM) {
		smoke__error_set(&s->stop_err, SMOKE_E_NOMEM, "out of memory");
		rc = SMOKE_E_NOMEM;
	} else if (st->sse.error) {
		smoke__error_set(&s->stop_err, SMOKE_E_PROTOCOL, "POST %s%s: a stream line or event is larger than %zu bytes",
				 s->c->url, st->path, MAX_EVENT);
		rc = SMOKE_E_PROTOCOL;
	}
	return rc;
}

static int generate_stream(smoke_client *c, const char *prompt, const struct smoke_message *msgs,
			   size_t n_msgs, const struct smoke_params *p, smoke_stream_cb cb, void *user,
			   struct smoke_result **out, struct smoke_error *err)
{
	if (out)
		*out = NULL;
	if (!c)
		return smoke__fail(c, err, SMOKE_E_INVALID, "the client is NULL");
	struct stream st;
	memset(&st, 0, sizeof(st));
	st.sink.on_data = on_stream_data;
	st.chat = prompt == NULL;
	st.cb = cb;
	st.user = user;
	st.path = prompt ? "/v1/completions" : "/v1/chat/completions";
	char *body;
	int rc = build_body(c, err, prompt, msgs, n_msgs, p, true, &body);
	if (rc)
		return rc;
	if (!(st.res = result_new())) {
		free(body);
		return smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
	}
	st.cap = 1;
	sse_init(&st.sse, MAX_EVENT);
	rc = smoke__perform(c, "POST", st.path, body, &st.sink, err);
	free(body);
	free(st.sink.body);
	sse_deinit(&st.sse);
	if (rc == 0 && !st.done)
		rc = smoke__fail(c, err, SMOKE_E_PROTOCOL, "POST %s%s: the stream ended without 'data: [DONE]'",
				 c->url, st.path);
	if ((rc == 0 || rc == SMOKE_E_ABORTED) && out)
		*out = st.res;
	else
		smoke_result_free(st.res);
	return rc;
}

int smoke_complete_stream(smoke_client *c, const char *prompt, const struct smoke_params *params,
			  smoke_stream_cb cb, void *user, struct smoke_result **out, struct smoke_error *err)
{
	if (!prompt)
		return smoke__fail(c, err, SMOKE_E_INVALID, "the prompt is NULL");
	return generate_stream(c, prompt, NULL, 0, params, cb, user, out, err);
}

int smoke_chat_stream(smoke_client *c, const struct smoke_message *messages, size_t n_messages,
		      const struct smoke_params *params, smoke_stream_cb cb, void *user,
		      struct smoke_result **out, struct smoke_error *err)
{
	if (!messages && n_messages)
		return smoke__fail(c, err, SMOKE_E_INVALID, "messages is NULL");
	return generate_stream(c, NULL, messages, n_messages, params, cb, user, out, err);
}
