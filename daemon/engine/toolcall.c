/* toolcall.c - tool calls in the chat formats (toolcall.h). */
#include "engine/toolcall.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/json_err.h"

static const struct toolcall_syntax hermes = {
	.pre = "<tool_call>\n", .post = "\n</tool_call>", .open = "<tool_call>", .close = "</tool_call>",
	.args_key = "arguments",
};
static const struct toolcall_syntax llama3 = {
	.pre = "", .post = "", .open = "", .close = "", .args_key = "parameters",
};

static const struct toolcall_syntax harmony = {
	.pre = "<|channel|>commentary to=functions.", .post = "", .open = "<|channel|>commentary to=functions.",
	.close = "", .args_key = "", .harmony = true,
};

const struct toolcall_syntax *toolcall_syntax(enum chat_format f)
{
	switch (f) {
	case CHAT_CHATML:
	case CHAT_GEMMA: return &hermes;
	case CHAT_LLAMA3: return &llama3;
	case CHAT_HARMONY: return &harmony;
	default: return NULL;
	}
}

bool toolcall_name_ok(const char *s, size_t len)
{
	if (len < 1 || len > TOOLCALL_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* ---- the prompt ---- */

/* What jinja's trim and Gemma's template strip. */
static bool is_blank(char c)
{
	return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

/* A growing string; a failed append leaves ok false. */
struct sbuf {
	char *s;
	size_t n, cap;
	bool ok;
};

static void sb_add(struct sbuf *b, const char *s, size_t len)
{
	if (!b->ok)
		return;
	if (b->n + len + 1 > b->cap) {
		size_t cap = (b->n + len + 1) * 2;
		char *t = realloc(b->s, cap);
		if (!t) {
			b->ok = false;
			return;
		}
		b->s = t;
		b->cap = cap;
	}
	memcpy(b->s + b->n, s, len);
	b->n += len;
	b->s[b->n] = 0;
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static char *sb_done(struct sbuf *b)
{
	if (!b->ok || !b->s) {
		free(b->s);
		return NULL;
	}
	return b->s;
}

static void sb_json_string(struct sbuf *b, const char *s, size_t len);

/* Qwen2.5's tool block (its tokenizer_config.json chat_template), after
 * the system text; Gemma takes the same (toolcall.h). */
static const char hermes_head[] =
	"# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
	"You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
static const char hermes_tail[] =
	"\n</tools>\n\nFor each function call, return a json object with function name and "
	"arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
	"{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>";
/* Llama 3.1's (tools_in_user_message, the template's default), before the
 * first user message. */
static const char llama3_head[] =
	"Given the following functions, please respond with a JSON for a function call "
	"with its proper arguments that best answers the given prompt.\n\n"
	"Respond in the format {\"name\": function name, \"parameters\": dictionary of "
	"argument name and its value}.Do not use variables.\n\n";

char *toolcall_tools_text(enum chat_format f, json_t *tools)
{
	if (!toolcall_syntax(f) || !json_is_array(tools))
		return NULL;
	struct sbuf b = { .ok = true };
	sb_str(&b, f == CHAT_LLAMA3 ? llama3_head : hermes_head);
	size_t i;
	json_t *t;
	json_array_foreach(tools, i, t) {
		/* jinja's tojson: Python's json.dumps, ", " and ": " (indent
		 * 4: "," at the line ends), UTF-8 kept, "/" not escaped. */
		char *js = json_dumps_checked(t, f == CHAT_LLAMA3 ? JSON_INDENT(4) : 0);
		if (!js) {
			b.ok = false;
			break;
		}
		if (f == CHAT_LLAMA3) {
			sb_str(&b, js);
			sb_str(&b, "\n\n");
		} else {
			sb_str(&b, "\n");
			sb_str(&b, js);
		}
		free(js);
	}
	if (f != CHAT_LLAMA3)
		sb_str(&b, hermes_tail);
	return sb_done(&b);
}

char *toolcall_call_text(enum chat_format f, const char *name, const char *args)
{
	const struct toolcall_syntax *sx = toolcall_syntax(f);
	if (!sx)
		return NULL;
	struct sbuf b = { .ok = true };
	sb_str(&b, sx->pre);
	sb_str(&b, "{\"name\": \"");
	sb_str(&b, name);
	sb_str(&b, "\", \"");
	sb_str(&b, sx->args_key);
	sb_str(&b, "\": ");
	sb_str(&b, args);
	sb_str(&b, "}");
	sb_str(&b, sx->post);
	return sb_done(&b);
}

static void sb_trimmed(struct sbuf *b, const char *s, size_t len)
{
	while (len && is_blank(*s)) {
		s++;
		len--;
	}
	while (len && is_blank(s[len - 1]))
		len--;
	sb_add(b, s, len);
}

char *toolcall_assistant_text(enum chat_format f, const struct chat_msg *m)
{
	struct sbuf b = { .ok = true };
	if (f == CHAT_LLAMA3) {
		char *c = m->n_calls == 1 ? toolcall_call_text(f, m->calls[0].name, m->calls[0].args) : NULL;
		return c;
	}
	if (m->len && f == CHAT_CHATML) {
		sb_str(&b, "\n");
		sb_add(&b, m->content, m->len);
	} else if (m->len) {
		sb_trimmed(&b, m->content, m->len);
	}
	for (int k = 0; k < m->n_calls; k++) {
		char *c = toolcall_call_text(f, m->calls[k].name, m->calls[k].args);
		if (!c)
			b.ok = false;
		else if (f == CHAT_CHATML || b.n)
			sb_str(&b, "\n");
		if (c)
			sb_str(&b, c);
		free(c);
	}
	return sb_done(&b);
}

char *toolcall_results_text(enum chat_format f, const struct chat_msg *m, int n)
{
	struct sbuf b = { .ok = true };
	if (f == CHAT_LLAMA3) {
		sb_json_string(&b, m->content, m->len);
		return sb_done(&b);
	}
	for (int k = 0; k < n; k++) {
		if (f == CHAT_CHATML) {
			sb_str(&b, "\n<tool_response>\n");
			sb_add(&b, m[k].content, m[k].len);
		} else {
			sb_str(&b, k ? "\n<tool_response>\n" : "<tool_response>\n");
			sb_trimmed(&b, m[k].content, m[k].len);
		}
		sb_str(&b, "\n</tool_response>");
	}
	if (!b.s)
		sb_str(&b, "");
	return sb_done(&b);
}

/* ---- the schema ---- */

/* Every "$ref": "#..." below s becomes base + the rest. */
static int rebase_refs(json_t *s, const char *base)
{
	if (json_is_array(s)) {
		size_t i;
		json_t *v;
		json_array_foreach(s, i, v)
			if (rebase_refs(v, base))
				return -1;
		return 0;
	}
	if (!json_is_object(s))
		return 0;
	const char *k;
	json_t *v;
	json_object_foreach(s, k, v) {
		if (!strcmp(k, "$ref") && json_is_string(v) && json_string_value(v)[0] == '#') {
			char *r = NULL;
			if (asprintf(&r, "%s%s", base, json_string_value(v) + 1) < 0)
				return -1;
			int rc = json_string_set(v, r);
			free(r);
			if (rc)
				return -1;
		} else if (rebase_refs(v, base)) {
			return -1;
		}
	}
	return 0;
}

static json_t *call_schema(const struct toolcall_syntax *sx, json_t *fn, const char *base)
{
	json_t *params = json_object_get(fn, "parameters");
	json_t *args = params ? json_deep_copy(params) : json_pack("{s:s, s:{}}", "type", "object", "properties");
	if (!args || rebase_refs(args, base)) {
		json_decref(args);
		return NULL;
	}
	return json_pack("{s:s, s:{s:{s:s, s:[O]}, s:o}, s:[s, s], s:b}", "type", "object", "properties",
			 "name", "type", "string", "enum", json_object_get(fn, "name"), sx->args_key, args,
			 "required", "name", sx->args_key, "additionalProperties", 0);
}

json_t *toolcall_schema(const struct toolcall_syntax *sx, json_t *const *fns, int n)
{
	char base[96];
	if (n == 1) {
		snprintf(base, sizeof(base), "#/properties/%s", sx->args_key);
		return call_schema(sx, fns[0], base);
	}
	json_t *any = json_array();
	for (int i = 0; i < n && any; i++) {
		snprintf(base, sizeof(base), "#/anyOf/%d/properties/%s", i, sx->args_key);
		json_t *c = call_schema(sx, fns[i], base);
		if (!c || json_array_append_new(any, c)) {
			json_decref(any);
			any = NULL;
		}
	}
	return any ? json_pack("{s:o}", "anyOf", any) : NULL;
}

json_t *toolcall_harmony_schema(json_t *const *fns, int n)
{
	json_t *any = json_array();
	for (int i = 0; i < n && any; i++) {
		json_t *params = json_object_get(fns[i], "parameters");
		json_t *p = params ? json_deep_copy(params) : json_pack("{s:s, s:{}}", "type", "object", "properties");
		char base[32];
		snprintf(base, sizeof(base), "#/anyOf/%d", i);
		if (!p || (n > 1 && rebase_refs(p, base)) || json_array_append_new(any, p)) {
			if (p && json_array_size(any) <= (size_t)i)
				json_decref(p);
			json_decref(any);
			any = NULL;
		}
	}
	if (!any || n == 1) {
		json_t *one = any ? json_incref(json_array_get(any, 0)) : NULL;
		json_decref(any);
		return one;
	}
	return json_pack("{s:o}", "anyOf", any);
}

/* ---- reading the output ---- */


enum toolcall_scan toolcall_scan(const struct toolcall_syntax *sx, const char *s, size_t n,
				 struct toolcall_head *h)
{
	size_t i = 0;
/* The next byte must be c; out of text: maybe. */
#define EXPECT(c)                                  \
	do {                                       \
		if (i == n)                        \
			return TOOLCALL_MAYBE;     \
		if (s[i] != (c))                   \
			return TOOLCALL_TEXT;      \
		i++;                               \
	} while (0)
#define SKIP_WS()                                  \
	do {                                       \
		while (i < n && is_blank(s[i]))       \
			i++;                       \
	} while (0)
	/* No whitespace before the call: the grammar allows none there, so
	 * text that begins with some is free text. */
	for (const char *p = sx->open; *p; p++)
		EXPECT(*p);
	if (*sx->open)
		SKIP_WS();
	EXPECT('{');
	SKIP_WS();
	for (const char *p = "\"name\""; *p; p++)
		EXPECT(*p);
	SKIP_WS();
	EXPECT(':');
	SKIP_WS();
	EXPECT('"');
	h->name_off = i;
	while (i < n && s[i] != '"') {
		if (i - h->name_off >= TOOLCALL_NAME_MAX || !toolcall_name_ok(s + i, 1))
			return TOOLCALL_TEXT;
		i++;
	}
	h->name_len = i - h->name_off;
	EXPECT('"');
	SKIP_WS();
	EXPECT(',');
	SKIP_WS();
	EXPECT('"');
	for (const char *p = sx->args_key; *p; p++)
		EXPECT(*p);
	EXPECT('"');
	SKIP_WS();
	EXPECT(':');
	SKIP_WS();
	if (i == n)
		return TOOLCALL_MAYBE;
	h->args_off = i;
	return TOOLCALL_HEAD;
#undef EXPECT
#undef SKIP_WS
}

int toolcall_args_end(const struct toolcall_syntax *sx, const char *s, size_t n,
		      const struct toolcall_head *h, size_t *end)
{
	size_t e = n, lc = strlen(sx->close);
	while (e > h->args_off && is_blank(s[e - 1]))
		e--;
	if (lc && e - h->args_off >= lc && !memcmp(s + e - lc, sx->close, lc)) {
		e -= lc;
		while (e > h->args_off && is_blank(s[e - 1]))
			e--;
	}
	if (e <= h->args_off || s[e - 1] != '}')
		return -1;
	e--;
	while (e > h->args_off && is_blank(s[e - 1]))
		e--;
	if (e <= h->args_off)
		return -1;
	*end = e;
	return 0;
}

/* ---- harmony's tool declarations ---- */

/* Python's json.dumps(ensure_ascii=False) of a string (jinja's tojson as
 * transformers runs it): '"', '\\' and control bytes escaped. */
static void sb_json_string(struct sbuf *b, const char *s, size_t len)
{
	sb_str(b, "\"");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];
		const char *e = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
			      : c == '\t' ? "\\t" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
		if (!e && c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			e = esc;
		}
		if (e)
			sb_str(b, e);
		else
			sb_add(b, (const char *)&c, 1);
	}
	sb_str(b, "\"");
}

char *toolcall_json_string(const char *s, size_t len)
{
	struct sbuf b = { .ok = true };
	sb_json_string(&b, s, len);
	return sb_done(&b);
}

static bool type_is(json_t *spec, const char *t)
{
	json_t *ty = json_object_get(spec, "type");
	return json_is_string(ty) && !strcmp(json_string_value(ty), t);
}

/* A value as jinja's {{ v }} writes it (Python's str): strings raw,
 * anything else as JSON (true/false/null differ from Python's; rare in
 * an enum or a default). */
static void sb_str_of(struct sbuf *b, json_t *v)
{
	if (json_is_string(v)) {
		sb_add(b, json_string_value(v), json_string_length(v));
		return;
	}
	char *js = json_dumps_checked(v, JSON_ENCODE_ANY);
	if (js)
		sb_str(b, js);
	else
		b->ok = false;
	free(js);
}

/* The template's render_typescript_type macro (gpt-oss chat template;
 * oneOf, which the grammar does not take, is left out: "any"). */
static void ts_type(struct sbuf *b, json_t *spec, int depth)
{
	json_t *ty = json_object_get(spec, "type");
	bool nullable = json_is_true(json_object_get(spec, "nullable"));
	if (depth > 16) {
		sb_str(b, "any");
	} else if (type_is(spec, "array")) {
		json_t *it = json_object_get(spec, "items");
		if (json_is_object(it) && json_object_size(it)) {
			if (type_is(it, "string"))
				sb_str(b, "string[]");
			else if (type_is(it, "number") || type_is(it, "integer"))
				sb_str(b, "number[]");
			else if (type_is(it, "boolean"))
				sb_str(b, "boolean[]");
			else {
				struct sbuf in = { .ok = true };
				ts_type(&in, it, depth + 1);
				const char *s = in.s ? in.s : "";
				if (!in.ok)
					b->ok = false;
				else if (!strcmp(s, "object | object") || strlen(s) > 50)
					sb_str(b, "any[]");
				else {
					sb_str(b, s);
					sb_str(b, "[]");
				}
				free(in.s);
			}
		} else {
			sb_str(b, "any[]");
		}
		if (nullable)
			sb_str(b, " | null");
	} else if (json_is_array(ty) && json_array_size(ty)) {
		size_t i;
		json_t *v;
		json_array_foreach(ty, i, v) {
			if (i)
				sb_str(b, " | ");
			sb_str_of(b, v);
		}
	} else if (type_is(spec, "string")) {
		json_t *en = json_object_get(spec, "enum");
		if (json_is_array(en) && json_array_size(en)) {
			size_t i;
			json_t *v;
			json_array_foreach(en, i, v) {
				sb_str(b, i ? "\" | \"" : "\"");
				sb_str_of(b, v);
			}
			sb_str(b, "\"");
		} else {
			sb_str(b, nullable ? "string | null" : "string");
		}
	} else if (type_is(spec, "number") || type_is(spec, "integer")) {
		sb_str(b, "number");
	} else if (type_is(spec, "boolean")) {
		sb_str(b, "boolean");
	} else if (type_is(spec, "object")) {
		json_t *props = json_object_get(spec, "properties"), *req = json_object_get(spec, "required");
		if (!json_is_object(props) || !json_object_size(props)) {
			sb_str(b, "object");
			return;
		}
		sb_str(b, "{\n");
		const char *k;
		json_t *v;
		size_t n = 0, last = json_object_size(props) - 1;
		json_object_foreach(props, k, v) {
			sb_str(b, k);
			bool required = false;
			size_t j;
			json_t *r;
			json_array_foreach(req, j, r)
				required |= json_is_string(r) && !strcmp(json_string_value(r), k);
			/* the template's own layout: "{{ render... }}" keeps the
			 * line break and indent before it */
			sb_str(b, required ? ": \n                " : "?: \n                ");
			ts_type(b, v, depth + 1);
			if (n++ != last)
				sb_str(b, ", ");
		}
		sb_str(b, "}");
	} else {
		sb_str(b, "any");
	}
}

char *toolcall_harmony_tools_text(json_t *tools)
{
	struct sbuf b = { .ok = true };
	sb_str(&b, "# Tools\n\n## functions\n\nnamespace functions {\n\n");
	size_t i;
	json_t *t;
	json_array_foreach(tools, i, t) {
		json_t *fn = json_object_get(t, "function"), *d = json_object_get(fn, "description");
		json_t *params = json_object_get(fn, "parameters"), *props = json_object_get(params, "properties");
		json_t *req = json_object_get(params, "required");
		/* no description: no comment line (the template fails there) */
		if (json_is_string(d)) {
			sb_str(&b, "// ");
			sb_add(&b, json_string_value(d), json_string_length(d));
			sb_str(&b, "\n");
		}
		sb_str(&b, "type ");
		sb_str(&b, json_string_value(json_object_get(fn, "name")));
		sb_str(&b, " = ");
		if (!json_is_object(props) || !json_object_size(props)) {
			sb_str(&b, "() => any;\n\n");
			continue;
		}
		sb_str(&b, "(_: {\n");
		const char *k;
		json_t *v;
		json_object_foreach(props, k, v) {
			json_t *pd = json_object_get(v, "description"), *def = json_object_get(v, "default");
			if (json_is_string(pd) && json_string_length(pd)) {
				sb_str(&b, "// ");
				sb_add(&b, json_string_value(pd), json_string_length(pd));
				sb_str(&b, "\n");
			}
			sb_str(&b, k);
			bool required = false;
			size_t j;
			json_t *r;
			json_array_foreach(req, j, r)
				required |= json_is_string(r) && !strcmp(json_string_value(r), k);
			sb_str(&b, required ? ": " : "?: ");
			ts_type(&b, v, 0);
			if (def) {
				sb_str(&b, ", // default: ");
				if (json_object_get(v, "enum")) {
					sb_str_of(&b, def);
				} else if (json_is_string(def)) {
					sb_json_string(&b, json_string_value(def), json_string_length(def));
				} else {
					char *js = json_dumps_checked(def, JSON_ENCODE_ANY);
					if (js)
						sb_str(&b, js);
					else
						b.ok = false;
					free(js);
				}
			}
			sb_str(&b, ",\n");
		}
		sb_str(&b, "}) => any;\n\n");
	}
	sb_str(&b, "} // namespace functions");
	return sb_done(&b);
}
