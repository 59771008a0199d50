/* tools.c - tool calls over the API (tools.h). */
#include "http/tools.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "formats/json_err.h"
#include "grammar/grammar.h"
#include "http/api.h"

#define INVALID "invalid_request_error"
/* Bytes of the output held back from the stream while a call's arguments
 * are written: what may close them (whitespace, the object's '}', the
 * format's close text; the grammar allows at most a newline and 24 blanks
 * between JSON tokens), sent once the generation is done. */
#define ARGS_HOLD 64

static json_t *field(json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);
	return v && !json_is_null(v) ? v : NULL;
}

/* The object's members outside `known`: the first is refused, naming it. */
static int only(json_t *o, const char *const *known, const char *param, struct api_error *e)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		bool ok = false;
		for (int i = 0; known[i] && !ok; i++)
			ok = !strcmp(k, known[i]);
		if (!ok)
			return api_fail(e, 400, INVALID, param, "unknown_field", "unknown field '%s.%.64s'",
					param, k);
	}
	return 0;
}

static int parse_tool(json_t *t, size_t i, json_t *tools, struct api_error *e)
{
	static const char *const tool_fields[] = { "type", "function", NULL };
	static const char *const fn_fields[] = { "name", "description", "parameters", "strict", NULL };
	char p[64];
	snprintf(p, sizeof(p), "tools[%zu]", i);
	if (!json_is_object(t))
		return api_fail(e, 400, INVALID, p, "invalid_type", "'%s' must be an object", p);
	if (only(t, tool_fields, p, e))
		return -1;
	json_t *ty = json_object_get(t, "type");
	if (!json_is_string(ty) || strcmp(json_string_value(ty), "function"))
		return api_fail(e, 400, INVALID, p, "invalid_value", "'%s.type' must be \"function\"", p);
	json_t *fn = json_object_get(t, "function");
	snprintf(p, sizeof(p), "tools[%zu].function", i);
	if (!json_is_object(fn))
		return api_fail(e, 400, INVALID, p, fn ? "invalid_type" : "missing_field",
				"'%s' must be an object", p);
	if (only(fn, fn_fields, p, e))
		return -1;
	json_t *name = json_object_get(fn, "name");
	snprintf(p, sizeof(p), "tools[%zu].function.name", i);
	if (!json_is_string(name) || !toolcall_name_ok(json_string_value(name), json_string_length(name)))
		return api_fail(e, 400, INVALID, p, name ? "invalid_value" : "missing_field",
				"'%s' must be 1 to %d letters, digits, '_' or '-'", p, TOOLCALL_NAME_MAX);
	for (size_t k = 0; k < i; k++)
		if (json_equal(json_object_get(json_object_get(json_array_get(tools, k), "function"), "name"), name))
			return api_fail(e, 400, INVALID, p, "invalid_value",
					"'%s' is \"%s\", the name of tools[%zu] too", p, json_string_value(name), k);
	json_t *v = field(fn, "description");
	snprintf(p, sizeof(p), "tools[%zu].function.description", i);
	if (v && !json_is_string(v))
		return api_fail(e, 400, INVALID, p, "invalid_type", "'%s' must be a string", p);
	v = field(fn, "parameters");
	snprintf(p, sizeof(p), "tools[%zu].function.parameters", i);
	if (v && !json_is_object(v))
		return api_fail(e, 400, INVALID, p, "invalid_type", "'%s' must be a JSON schema (an object)", p);
	v = field(fn, "strict");
	snprintf(p, sizeof(p), "tools[%zu].function.strict", i);
	if (v && !json_is_boolean(v))
		return api_fail(e, 400, INVALID, p, "invalid_type", "'%s' must be true or false", p);
	return 0;
}

static int find_tool(json_t *tools, const char *name)
{
	size_t i;
	json_t *t;
	json_array_foreach(tools, i, t)
		if (!strcmp(json_string_value(json_object_get(json_object_get(t, "function"), "name")), name))
			return (int)i;
	return -1;
}

static int parse_choice(struct tools_req *t, json_t *c, struct api_error *e)
{
	const char *P = "tool_choice";
	size_t n = t->tools ? json_array_size(t->tools) : 0;
	t->choice = n ? TOOLS_AUTO : TOOLS_NONE;
	if (!c)
		return 0;
	if (json_is_string(c)) {
		const char *s = json_string_value(c);
		if (!strcmp(s, "none"))
			t->choice = TOOLS_NONE;
		else if (!strcmp(s, "auto"))
			t->choice = TOOLS_AUTO;
		else if (!strcmp(s, "required"))
			t->choice = TOOLS_REQUIRED;
		else
			return api_fail(e, 400, INVALID, P, "invalid_value",
					"'tool_choice' must be \"none\", \"auto\", \"required\" or "
					"{\"type\": \"function\", \"function\": {\"name\": ...}}");
	} else if (json_is_object(c)) {
		static const char *const fields[] = { "type", "function", NULL };
		static const char *const fn_fields[] = { "name", NULL };
		json_t *ty = json_object_get(c, "type"), *fn = json_object_get(c, "function");
		if (only(c, fields, P, e))
			return -1;
		if (!json_is_string(ty) || strcmp(json_string_value(ty), "function"))
			return api_fail(e, 400, INVALID, P, "invalid_value", "'tool_choice.type' must be \"function\"");
		if (!json_is_object(fn) || only(fn, fn_fields, "tool_choice.function", e) ||
		    !json_is_string(json_object_get(fn, "name"))) {
			if (e->status)
				return -1;
			return api_fail(e, 400, INVALID, P, "invalid_value",
					"'tool_choice.function' must be {\"name\": a function of 'tools'}");
		}
		const char *name = json_string_value(json_object_get(fn, "name"));
		t->named = n ? find_tool(t->tools, name) : -1;
		if (t->named < 0)
			return api_fail(e, 400, INVALID, P, "invalid_value",
					"'tool_choice' names the function '%.64s', which 'tools' does not have", name);
		t->choice = TOOLS_NAMED;
	} else {
		return api_fail(e, 400, INVALID, P, "invalid_type", "'tool_choice' must be a string or an object");
	}
	if (t->choice != TOOLS_NONE && !n)
		return api_fail(e, 400, INVALID, P, "invalid_value",
				"'tool_choice' \"%s\" needs 'tools'", json_is_string(c) ? json_string_value(c) : "function");
	return 0;
}

int tools_parse(struct server *s, struct hreq *r, json_t *o, struct api_error *e)
{
	json_t *tools = field(o, "tools"), *choice = field(o, "tool_choice");
	json_t *par = field(o, "parallel_tool_calls");
	if (!tools && !choice && !par)
		return 0;
	if (par && !json_is_boolean(par))
		return api_fail(e, 400, INVALID, "parallel_tool_calls", "invalid_type",
				"'parallel_tool_calls' must be true or false");
	if (tools && !json_is_array(tools))
		return api_fail(e, 400, INVALID, "tools", "invalid_type", "'tools' must be an array of tools");
	if (tools && json_array_size(tools) > TOOLS_MAX)
		return api_fail(e, 400, INVALID, "tools", "out_of_range", "'tools' has %zu tools; at most %d",
				json_array_size(tools), TOOLS_MAX);
	for (size_t i = 0; tools && i < json_array_size(tools); i++)
		if (parse_tool(json_array_get(tools, i), i, tools, e))
			return -1;
	struct tools_req *t = calloc(1, sizeof(*t));
	if (!t)
		return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
	r->tools = t;
	if (tools && json_array_size(tools))
		t->tools = json_incref(tools);
	if (parse_choice(t, choice, e))
		return -1;
	if (t->tools && !toolcall_syntax(s->chat))
		return api_fail(e, 400, INVALID, "tools", "unsupported",
				"'tools' is not supported with the %s chat format (the model has no chat template)",
				chat_format_name(s->chat));
	/* What a call cannot go with (docs/tool-calls.md). */
	json_t *rf = field(o, "response_format"), *rft = rf ? json_object_get(rf, "type") : NULL;
	if (t->tools && rf && !(json_is_string(rft) && !strcmp(json_string_value(rft), "text")))
		return api_fail(e, 400, INVALID, "response_format", "unsupported",
				"'response_format' with 'tools' is not supported: a call's arguments follow "
				"its function's parameters, the rest is text");
	if (t->choice == TOOLS_NONE)
		return 0;
	t->sx = toolcall_syntax(s->chat);
	/* Each function's schema alone, so that an error names it; before the
	 * messages are tokenised. */
	size_t i;
	json_t *tool;
	json_array_foreach(t->tools, i, tool) {
		json_t *fn = json_object_get(tool, "function"), *params = field(fn, "parameters");
		if (!params || (t->choice == TOOLS_NAMED && (int)i != t->named))
			continue;
		struct grammar *g = NULL;
		struct grammar_error ge;
		int rc = grammar_compile_schema(&g, params, json_is_true(json_object_get(fn, "strict")), &ge);
		grammar_free(g);
		char p[64];
		snprintf(p, sizeof(p), "tools[%zu].function.parameters", i);
		if (rc == -ENOMEM)
			return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
		if (rc)
			return api_fail(e, 400, INVALID, p, rc == -ENOTSUP ? "unsupported_schema_keyword" : "invalid_schema",
					"%s: %s (at %s in the schema)", p, ge.msg, ge.path);
	}
	json_t *lp = field(o, "logprobs");
	if (lp && !json_is_false(lp))
		return api_fail(e, 400, INVALID, "logprobs", "unsupported",
				"'logprobs' with 'tools' is not supported yet (with tool_choice \"none\" it is)");
	if (field(o, "stop"))
		return api_fail(e, 400, INVALID, "stop", "unsupported",
				"'stop' with 'tools' is not supported: a stop string could cut a call "
				"(with tool_choice \"none\" it is)");
	return 0;
}

int tools_message(json_t *msg, size_t i, struct chat_msg *m, bool *content_optional,
		  struct api_error *e)
{
	char p[96];
	*content_optional = false;
	if (!strcmp(m->role, "tool")) {
		json_t *id = json_object_get(msg, "tool_call_id");
		snprintf(p, sizeof(p), "messages[%zu].tool_call_id", i);
		if (!json_is_string(id))
			return api_fail(e, 400, INVALID, p, id ? "invalid_type" : "missing_field",
					"'%s' must be a string: the id of the call this message answers", p);
		return 0;
	}
	json_t *calls = field(msg, "tool_calls");
	if (!calls)
		return 0;
	snprintf(p, sizeof(p), "messages[%zu].tool_calls", i);
	if (strcmp(m->role, "assistant"))
		return api_fail(e, 400, INVALID, p, "invalid_value", "'%s': only an assistant message has tool calls", p);
	if (!json_is_array(calls) || json_array_size(calls) > TOOLS_MAX)
		return api_fail(e, 400, INVALID, p, "invalid_type", "'%s' must be an array of at most %d calls",
				p, TOOLS_MAX);
	size_t n = json_array_size(calls);
	if (!n)
		return 0;
	struct chat_call *c = calloc(n, sizeof(*c));
	if (!c)
		return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
	m->calls = c;
	for (size_t k = 0; k < n; k++) {
		json_t *call = json_array_get(calls, k), *fn = json_object_get(call, "function");
		json_t *ty = json_object_get(call, "type"), *id = json_object_get(call, "id");
		json_t *name = json_object_get(fn, "name"), *args = json_object_get(fn, "arguments");
		snprintf(p, sizeof(p), "messages[%zu].tool_calls[%zu]", i, k);
		if (!json_is_object(call) || !json_is_object(fn) || (ty && !json_is_string(ty)) ||
		    (ty && strcmp(json_string_value(ty), "function")) || (id && !json_is_string(id)))
			return api_fail(e, 400, INVALID, p, "invalid_value",
					"'%s' must be {\"id\": ..., \"type\": \"function\", \"function\": "
					"{\"name\": ..., \"arguments\": ...}}", p);
		snprintf(p, sizeof(p), "messages[%zu].tool_calls[%zu].function.name", i, k);
		if (!json_is_string(name) || !toolcall_name_ok(json_string_value(name), json_string_length(name)))
			return api_fail(e, 400, INVALID, p, "invalid_value",
					"'%s' must be 1 to %d letters, digits, '_' or '-'", p, TOOLCALL_NAME_MAX);
		snprintf(p, sizeof(p), "messages[%zu].tool_calls[%zu].function.arguments", i, k);
		json_error_t je;
		bool nomem = false;
		json_t *a = json_is_string(args) ? json_loadb_checked(json_string_value(args), json_string_length(args),
								      0, &je, &nomem) : NULL;
		if (nomem)
			return api_fail(e, 500, "server_error", NULL, NULL, "out of memory reading '%s'", p);
		/* written again as the templates' tojson writes it */
		const bool object = json_is_object(a);
		char *text = object ? json_dumps_checked(a, 0) : NULL;
		json_decref(a);
		if (!text && object)
			return api_fail(e, 500, "server_error", NULL, NULL, "out of memory writing '%s'", p);
		if (!text)
			return api_fail(e, 400, INVALID, p, "invalid_value",
					"'%s' must be a string holding a JSON object", p);
		c[k].name = json_string_value(name);
		c[k].args = text;
		m->n_calls = (int)k + 1;
	}
	*content_optional = true;
	return 0;
}

void tools_message_free(struct chat_msg *m)
{
	struct chat_call *c = (struct chat_call *)m->calls;
	for (int k = 0; c && k < m->n_calls; k++)
		free((char *)c[k].args);
	free(c);
	m->calls = NULL;
	m->n_calls = 0;
}

int tools_grammar(struct hreq *r, struct api_error *e)
{
	struct tools_req *t = r->tools;
	if (!t || !t->sx)
		return 0;
	json_t *fns[TOOLS_MAX];
	int n = 0;
	size_t i;
	json_t *tool;
	json_array_foreach(t->tools, i, tool)
		if (t->choice != TOOLS_NAMED || (int)i == t->named)
			fns[n++] = json_object_get(tool, "function");
	int rc = 0;
	/* what a frame's failure says (a compile error overwrites it) */
	struct grammar_error ge = { .msg = "the call's fixed text is over the grammar's limits", .path = "#" };
	if (t->sx->harmony) {
		/* the frame is the call's header, one per allowed function
		 * (its name is in it), the value that function's parameters;
		 * <|call|> (an end of generation) ends it.  "required" and a
		 * named function go straight to the call; "auto" lets the
		 * model write freely until it opens a call's header (pre, the
		 * trigger), then the rest of the header follows. */
		bool wait = t->choice == TOOLS_AUTO;
		const char *head = wait ? "" : t->sx->pre;
		enum { PRE_MAX = 160 };
		char *texts = malloc((size_t)n * PRE_MAX);
		const char *pre[TOOLS_MAX];
		json_t *schema = texts ? toolcall_harmony_schema(fns, n) : NULL;
		if (!schema) {
			free(texts);
			return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
		}
		rc = grammar_compile_schema(&r->job.grammar, schema, false, &ge);
		json_decref(schema);
		for (int k = 0; k < n && rc == 0; k++) {
			pre[k] = texts + (size_t)k * PRE_MAX;
			int np = snprintf(texts + (size_t)k * PRE_MAX, PRE_MAX, "%s%s%s", head,
					  json_string_value(json_object_get(fns[k], "name")), TOOLCALL_HARMONY_MID);
			if (np < 0 || np >= PRE_MAX)
				rc = -E2BIG;
		}
		if (rc == 0 && n == 1 && grammar_set_frame(r->job.grammar, pre[0], strlen(pre[0]), "", 0))
			rc = -E2BIG;
		else if (rc == 0 && n > 1)
			rc = grammar_set_frame_alts(r->job.grammar, pre, n, "", 0);
		if (rc == 0 && wait)
			rc = grammar_set_trigger(r->job.grammar, t->sx->pre, strlen(t->sx->pre));
		free(texts);
	} else {
		json_t *schema = toolcall_schema(t->sx, fns, n);
		if (!schema)
			return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
		rc = grammar_compile_schema(&r->job.grammar, schema, false, &ge);
		json_decref(schema);
		if (rc == 0 && grammar_set_frame(r->job.grammar, t->sx->pre, strlen(t->sx->pre), t->sx->post,
						 strlen(t->sx->post)))
			rc = -E2BIG;
	}
	if (rc) {
		r->job.grammar = grammar_free(r->job.grammar);
		return rc == -ENOMEM ? api_fail(e, 500, "server_error", NULL, NULL, "out of memory")
				     : api_fail(e, 400, INVALID, "tools", "invalid_schema",
						"the tools' calls cannot be compiled together: %s (at %s)", ge.msg, ge.path);
	}
	r->job.grammar_optional = t->choice == TOOLS_AUTO && !t->sx->harmony;
	/* The call's id, as OpenAI writes them. */
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[24] = { 0 };
	if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
		for (size_t k = 0; k < sizeof(rnd); k++)
			rnd[k] = (unsigned char)(rand() ^ (int)(k * 131) ^ (int)(uintptr_t)r);
	memcpy(t->id, "call_", 5);
	for (size_t k = 0; k < sizeof(rnd); k++)
		t->id[5 + k] = abc[rnd[k] % (sizeof(abc) - 1)];
	t->id[5 + sizeof(rnd)] = 0;
	return 0;
}

void tools_free(struct tools_req *t)
{
	if (!t)
		return;
	json_decref(t->tools);
	free(t);
}

/* ---- the output ---- */

bool tools_active(const struct hreq *r)
{
	return r->tools && r->tools->sx;
}

void tools_update(struct hreq *r)
{
	struct tools_req *t = r->tools;
	if (!tools_active(r) || t->state != TOOLS_UNDECIDED || t->sx->harmony)
		return;
	enum toolcall_scan sc = toolcall_scan(t->sx, r->text, r->n_text, &t->head);
	if (sc == TOOLCALL_HEAD) {
		/* A name outside the call's choices is no call (the grammar
		 * allows none; a robust reader of free text checks it). */
		char name[TOOLCALL_NAME_MAX + 1];
		memcpy(name, r->text + t->head.name_off, t->head.name_len);
		name[t->head.name_len] = 0;
		int k = find_tool(t->tools, name);
		t->state = k >= 0 && (t->choice != TOOLS_NAMED || k == t->named) ? TOOLS_CALL : TOOLS_TEXT;
		memcpy(t->name, name, t->head.name_len + 1);
		t->args_sent = t->head.args_off;
	} else if (sc == TOOLCALL_TEXT || r->done) {
		t->state = TOOLS_TEXT;
	}
}

bool tools_harmony_call(struct hreq *r, const char *recipient, size_t n, unsigned msg)
{
	struct tools_req *t = r->tools;
	if (!tools_active(r))
		return false;              /* a call nobody offered: dropped */
	if (t->state == TOOLS_CALL)
		return msg == t->call_msg; /* the call's body goes on; a second call is dropped */
	static const char ns[] = "functions.";
	const size_t lns = sizeof(ns) - 1;
	if (n <= lns || memcmp(recipient, ns, lns) || !toolcall_name_ok(recipient + lns, n - lns))
		return false;
	char name[TOOLCALL_NAME_MAX + 1];
	memcpy(name, recipient + lns, n - lns);
	name[n - lns] = 0;
	int k = find_tool(t->tools, name);
	if (k < 0 || (t->choice == TOOLS_NAMED && k != t->named))
		return false;
	memcpy(t->name, name, n - lns + 1);
	t->state = TOOLS_CALL;
	t->call_msg = msg;
	t->head.args_off = t->args_sent = r->n_text;
	return true;
}

bool tools_harmony_content(const struct hreq *r)
{
	return !tools_active(r) || r->tools->state != TOOLS_CALL;
}

size_t tools_content_end(const struct hreq *r)
{
	if (!tools_active(r))
		return r->n_text;
	if (r->tools->sx->harmony)         /* the text before the call's message */
		return r->tools->state == TOOLS_CALL ? r->tools->head.args_off : r->n_text;
	return r->tools->state == TOOLS_TEXT ? r->n_text : 0;
}

void tools_args_span(const struct hreq *r, size_t *from, size_t *to)
{
	const struct tools_req *t = r->tools;
	*from = t->head.args_off;
	if (t->sx->harmony) {              /* the message's body, to its end */
		*to = r->n_text;
		while (*to > *from && (r->text[*to - 1] == ' ' || r->text[*to - 1] == '\n'))
			(*to)--;
		return;
	}
	if (toolcall_args_end(t->sx, r->text, r->n_text, &t->head, to))
		*to = r->n_text;
}

static json_t *call_json(const struct hreq *r, bool head, size_t from, size_t to)
{
	const struct tools_req *t = r->tools;
	json_t *fn = json_object();
	if (head)
		json_object_set_new(fn, "name", json_string(t->name));
	json_object_set_new(fn, "arguments", api_json_text(r->text + from, to - from));
	json_t *c = json_pack("{s:i}", "index", 0);
	if (head) {
		json_object_set_new(c, "id", json_string(t->id));
		json_object_set_new(c, "type", json_string("function"));
	}
	json_object_set_new(c, "function", fn);
	return json_pack("[o]", c);
}

json_t *tools_calls_json(const struct hreq *r)
{
	size_t from, to;
	tools_args_span(r, &from, &to);
	json_t *a = call_json(r, true, from, to);
	json_object_del(json_array_get(a, 0), "index");
	return a;
}

json_t *tools_stream_delta(struct hreq *r)
{
	struct tools_req *t = r->tools;
	tools_update(r);
	if (t->state != TOOLS_CALL)
		return NULL;
	if (!t->head_sent) {
		t->head_sent = true;
		return json_pack("{s:o}", "tool_calls", call_json(r, true, t->head.args_off, t->head.args_off));
	}
	size_t from, to;
	if (r->done)
		tools_args_span(r, &from, &to);
	else
		to = r->n_text > t->head.args_off + ARGS_HOLD ? r->n_text - ARGS_HOLD : t->head.args_off;
	/* whole characters only: the text holds whole ones, a fragment must
	 * too.  A cut at the text's end is whole; the byte past it is no
	 * part of the text (whatever the buffer held before) and is not read. */
	while (to > t->args_sent && to < r->n_text && ((unsigned char)r->text[to] & 0xc0) == 0x80)
		to--;
	if (to <= t->args_sent)
		return NULL;
	json_t *d = json_pack("{s:o}", "tool_calls", call_json(r, false, t->args_sent, to));
	t->args_sent = to;
	return d;
}
