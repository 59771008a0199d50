#include "engine/chat.h"
#include "engine/toolcall.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const char *chat_format_name(enum chat_format f)
{
	switch (f) {
	case CHAT_GEMMA: return "gemma";
	case CHAT_CHATML: return "chatml";
	case CHAT_LLAMA3: return "llama3";
	case CHAT_PLAIN: return "plain";
	case CHAT_HARMONY: return "harmony";
	}
	return "?";
}

static bool has_token(const struct tokenizer *t, const char *s)
{
	return tokenizer_find(t, s, strlen(s)) >= 0;
}

enum chat_format chat_detect(const struct gguf *g, const struct tokenizer *t)
{
	const char *tpl;
	size_t len;
	if (gguf_has(g, "tokenizer.chat_template") &&
	    gguf_get_str(g, "tokenizer.chat_template", &tpl, &len, NULL) == 0) {
		if (memmem(tpl, len, "<start_of_turn>", 15))
			return CHAT_GEMMA;
		if (memmem(tpl, len, "<|im_start|>", 12))
			return CHAT_CHATML;
		if (memmem(tpl, len, "<|start_header_id|>", 19))
			return CHAT_LLAMA3;
		if (memmem(tpl, len, "<|start|>", 9) && memmem(tpl, len, "<|channel|>", 11))
			return CHAT_HARMONY;
	}
	if (has_token(t, "<start_of_turn>") && has_token(t, "<end_of_turn>"))
		return CHAT_GEMMA;
	if (has_token(t, "<|im_start|>") && has_token(t, "<|im_end|>"))
		return CHAT_CHATML;
	if (has_token(t, "<|start_header_id|>") && has_token(t, "<|eot_id|>"))
		return CHAT_LLAMA3;
	if (has_token(t, "<|start|>") && has_token(t, "<|message|>") && has_token(t, "<|channel|>") &&
	    has_token(t, "<|end|>") && has_token(t, "<|return|>"))
		return CHAT_HARMONY;
	return CHAT_PLAIN;
}

/* A growing id array, bounded by max. */
struct ids {
	int32_t *v;
	size_t n, cap, max;
};

static int ids_add(struct ids *a, const struct tokenizer *t, const char *s, size_t len,
		   bool special, struct smk_err *err)
{
	for (;;) {
		size_t n = 0;
		int rc = tokenizer_encode(t, s, len, false, special, a->v + a->n, a->cap - a->n, &n, err);
		if (rc == 0) {
			a->n += n;
			return 0;
		}
		if (rc != -ENOSPC)
			return rc;
		if (a->n + n > a->max)
			return smk_fail(err, -E2BIG, "the conversation is longer than %zu tokens", a->max);
		size_t cap = a->n + n + 64;
		int32_t *v = realloc(a->v, cap * sizeof(int32_t));
		if (!v)
			return smk_fail(err, -ENOMEM, "out of memory for %zu tokens", cap);
		a->v = v;
		a->cap = cap;
	}
}

#define ADD_T(s) ids_add(&a, t, s, strlen(s), true, err)
#define ADD_C(s, l) ids_add(&a, t, s, l, false, err)

/* Gemma's template trims the content. */
static void trimmed(const struct chat_msg *m, const char **s, size_t *len)
{
	const char *p = m->content, *e = m->content + m->len;
	while (p < e && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'))
		p++;
	while (e > p && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	*s = p;
	*len = (size_t)(e - p);
}

static bool is_system(const char *role)
{
	return !strcmp(role, "system") || !strcmp(role, "developer");
}

/* ---- harmony (chat.h) ---- */

/* Text between two special tokens, with special tokens off, as one piece
 * but cut after the "<|" of each "<|name|>" that is a token (chat.h). */
#define HARMONY_NAME_MAX 128   /* longer "<|...|>" are no tokens of o200k_harmony */
static int add_plain(struct ids *a, const struct tokenizer *t, const char *s, size_t len,
		     struct smk_err *err)
{
	size_t from = 0;
	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] != '<' || s[i + 1] != '|')
			continue;
		size_t room = len - i - 2 < HARMONY_NAME_MAX ? len - i - 2 : HARMONY_NAME_MAX;
		const char *e = memmem(s + i + 2, room, "|>", 2);
		if (!e || tokenizer_find(t, s + i, (size_t)(e + 2 - (s + i))) < 0)
			continue;
		int rc = ids_add(a, t, s + from, i + 2 - from, false, err);
		if (rc)
			return rc;
		from = i + 2;
	}
	return from < len ? ids_add(a, t, s + from, len - from, false, err) : 0;
}

/* pre + content + post as one piece of text, special tokens off; for
 * harmony cut as add_plain does. */
static int add_framed(struct ids *a, const struct tokenizer *t, const char *pre, const char *s,
		      size_t len, const char *post, bool harmony, struct smk_err *err)
{
	size_t lp = strlen(pre), lq = strlen(post);
	if (len > SIZE_MAX - lp - lq)
		return smk_fail(err, -E2BIG, "a message of %zu bytes is too long", len);
	char *buf = malloc(lp + len + lq + 1);
	if (!buf)
		return smk_fail(err, -ENOMEM, "out of memory for a message of %zu bytes", len);
	memcpy(buf, pre, lp);
	memcpy(buf + lp, s, len);
	memcpy(buf + lp + len, post, lq);
	int rc = harmony ? add_plain(a, t, buf, lp + len + lq, err)
			 : ids_add(a, t, buf, lp + len + lq, false, err);
	free(buf);
	return rc;
}

static const char harmony_system[] =
	"You are ChatGPT, a large language model trained by OpenAI.\n"
	"Knowledge cutoff: 2024-06\n\n"
	"Reasoning: medium\n\n"
	"# Valid channels: analysis, commentary, final. Channel must be included for every message.";

/* An allocated text (NULL: out of memory) as add_plain; freed. */
static int add_plain_owned(struct ids *a, const struct tokenizer *t, char *s, struct smk_err *err)
{
	if (!s)
		return smk_fail(err, -ENOMEM, "out of memory");
	int rc = add_plain(a, t, s, strlen(s), err);
	free(s);
	return rc;
}

/* A later assistant message without calls (the template's
 * future_final_message: then the calls' analysis text is dropped). */
static bool final_follows(const struct chat_msg *msgs, int n_msgs, int i)
{
	for (int k = i + 1; k < n_msgs; k++)
		if (!strcmp(msgs[k].role, "assistant") && !msgs[k].n_calls)
			return true;
	return false;
}

/* An assistant message with tool calls, as the gpt-oss template writes it
 * (each call a message of its own; the template writes only the first). */
static int harmony_calls(struct ids *a, const struct tokenizer *t, const struct chat_msg *msgs, int n_msgs,
			 int i, struct smk_err *err)
{
	const struct chat_msg *m = &msgs[i];
	int rc;
	if (m->len && !final_follows(msgs, n_msgs, i) &&
	    ((rc = ids_add(a, t, "<|start|>assistant<|channel|>analysis<|message|>", 48, true, err)) ||
	     (rc = add_plain(a, t, m->content, m->len, err)) || (rc = ids_add(a, t, "<|end|>", 7, true, err))))
		return rc;
	for (int k = 0; k < m->n_calls; k++) {
		char head[160];
		/* the name is [A-Za-z0-9_-] (tools.c checks it): no marker */
		int n = snprintf(head, sizeof(head), "<|start|>assistant to=functions.%s<|channel|>commentary json<|message|>",
				 m->calls[k].name);
		if (n < 0 || (size_t)n >= sizeof(head))
			return smk_fail(err, -EINVAL, "message %d: a tool name too long", i);
		if ((rc = ids_add(a, t, head, (size_t)n, true, err)) ||
		    (rc = add_plain(a, t, m->calls[k].args, strlen(m->calls[k].args), err)) ||
		    (rc = ids_add(a, t, "<|call|>", 8, true, err)))
			return rc;
	}
	return 0;
}

static int harmony_encode(struct ids *a, const struct tokenizer *t, const struct chat_msg *msgs,
			  int n_msgs, json_t *tools, struct smk_err *err)
{
	static const char calls_line[] = "\nCalls to these tools must go to the commentary channel: 'functions'.";
	bool with_tools = tools && json_array_size(tools) > 0;
	int rc;
	if ((rc = ids_add(a, t, "<|start|>system<|message|>", 26, true, err)) ||
	    (rc = add_framed(a, t, harmony_system, "", 0, with_tools ? calls_line : "", true, err)) ||
	    (rc = ids_add(a, t, "<|end|>", 7, true, err)))
		return rc;
	int i = 0;
	if (with_tools) {
		/* the first system message's instructions, then the tools, in
		 * one developer message */
		if ((rc = ids_add(a, t, "<|start|>developer<|message|>", 29, true, err)))
			return rc;
		if (n_msgs && is_system(msgs[0].role)) {
			if (msgs[0].len &&
			    (rc = add_framed(a, t, "# Instructions\n\n", msgs[0].content, msgs[0].len, "\n\n", true, err)))
				return rc;
			i = 1;
		}
		if ((rc = add_plain_owned(a, t, toolcall_harmony_tools_text(tools), err)) ||
		    (rc = ids_add(a, t, "<|end|>", 7, true, err)))
			return rc;
	}
	const char *last_call = NULL;      /* the function a tool message answers */
	for (; i < n_msgs; i++) {
		const struct chat_msg *m = &msgs[i];
		if (m->n_calls) {
			if ((rc = harmony_calls(a, t, msgs, n_msgs, i, err)))
				return rc;
			last_call = m->calls[m->n_calls - 1].name;
			continue;
		}
		if (!strcmp(m->role, "tool")) {
			char head[128];
			if (!last_call)
				return smk_fail(err, -EINVAL, "message %d is a tool result, but no assistant "
						"message with a tool call comes before it", i);
			snprintf(head, sizeof(head), "<|start|>functions.%s to=assistant<|channel|>commentary<|message|>",
				 last_call);
			if ((rc = ids_add(a, t, head, strlen(head), true, err)) ||
			    (rc = add_plain_owned(a, t, toolcall_json_string(m->content, m->len), err)) ||
			    (rc = ids_add(a, t, "<|end|>", 7, true, err)))
				return rc;
			continue;
		}
		if (is_system(m->role)) {
			if (m->len == 0)
				continue;
			if ((rc = ids_add(a, t, "<|start|>developer<|message|>", 29, true, err)) ||
			    (rc = add_framed(a, t, "# Instructions\n\n", m->content, m->len, "\n\n", true, err)))
				return rc;
		} else {
			bool assistant = !strcmp(m->role, "assistant");
			const char *head = assistant ? "<|start|>assistant<|channel|>final<|message|>"
						     : "<|start|>user<|message|>";
			if (assistant)
				last_call = NULL;
			if ((rc = ids_add(a, t, head, strlen(head), true, err)) ||
			    (rc = add_plain(a, t, m->content, m->len, err)))
				return rc;
		}
		if ((rc = ids_add(a, t, "<|end|>", 7, true, err)))
			return rc;
	}
	return ids_add(a, t, "<|start|>assistant", 18, true, err);
}

/* ---- tools (toolcall.h) ---- */

static int add_text(struct ids *a, const struct tokenizer *t, char *s, struct smk_err *err)
{
	if (!s)
		return smk_fail(err, -ENOMEM, "out of memory");
	int rc = ids_add(a, t, s, strlen(s), false, err);
	free(s);
	return rc;
}

/* An assistant message with tool calls, or the tool results from msgs[*i]
 * on (*i moves to the last one the turn holds). */
static int tool_turn(enum chat_format f, struct ids *a, const struct tokenizer *t,
		     const struct chat_msg *msgs, int n_msgs, int *i, struct smk_err *err)
{
	const struct chat_msg *m = &msgs[*i];
	int rc;
	if (m->n_calls) {
		if (f == CHAT_LLAMA3 && m->n_calls != 1)
			return smk_fail(err, -EINVAL, "message %d has %d tool calls; the Llama 3 format "
					"takes one per assistant message", *i, m->n_calls);
		const char *head = f == CHAT_GEMMA ? "<start_of_turn>model\n"
				   : f == CHAT_CHATML ? "<|im_start|>assistant"
						      : "<|start_header_id|>assistant<|end_header_id|>\n\n";
		if ((rc = ids_add(a, t, head, strlen(head), true, err)) ||
		    (rc = add_text(a, t, toolcall_assistant_text(f, m), err)))
			return rc;
	} else {
		int n = 1;
		while (f != CHAT_LLAMA3 && *i + n < n_msgs && !strcmp(msgs[*i + n].role, "tool") &&
		       !msgs[*i + n].n_calls)
			n++;
		const char *head = f == CHAT_GEMMA ? "<start_of_turn>user\n"
				   : f == CHAT_CHATML ? "<|im_start|>user"
						      : "<|start_header_id|>ipython<|end_header_id|>\n\n";
		if ((rc = ids_add(a, t, head, strlen(head), true, err)) ||
		    (rc = add_text(a, t, toolcall_results_text(f, m, n), err)))
			return rc;
		*i += n - 1;
	}
	const char *tail = f == CHAT_GEMMA ? "<end_of_turn>\n" : f == CHAT_CHATML ? "<|im_end|>\n" : "<|eot_id|>";
	return ids_add(a, t, tail, strlen(tail), true, err);
}

/* Llama 3.1's opening with tools: the system turn and the tools before the
 * first user message, which msgs[*i] must be (*i moves past it). */
static int llama3_tools_head(struct ids *a, const struct tokenizer *t, const struct chat_msg *msgs,
			     int n_msgs, json_t *tools, int *i, struct smk_err *err)
{
	static const char env[] = "Environment: ipython\nCutting Knowledge Date: December 2023\n"
				  "Today Date: 26 Jul 2024\n\n";
	const char *s = "";
	size_t len = 0;
	if (*i < n_msgs && is_system(msgs[*i].role)) {
		trimmed(&msgs[*i], &s, &len);
		(*i)++;
	}
	if (*i >= n_msgs || strcmp(msgs[*i].role, "user"))
		return smk_fail(err, -EINVAL, "with tools the Llama 3 format needs a user message "
				"first (after the system message): the tools are written before it");
	int rc;
#define MARK(m) ids_add(a, t, m, strlen(m), true, err)
	if ((rc = MARK("<|start_header_id|>system<|end_header_id|>\n\n")) ||
	    (rc = add_framed(a, t, env, s, len, "", false, err)) || (rc = MARK("<|eot_id|>")) ||
	    (rc = MARK("<|start_header_id|>user<|end_header_id|>\n\n")))
		return rc;
	char *block = toolcall_tools_text(CHAT_LLAMA3, tools);
	if (!block)
		return smk_fail(err, -ENOMEM, "out of memory");
	trimmed(&msgs[*i], &s, &len);
	rc = add_framed(a, t, block, s, len, "", false, err);
	free(block);
	(*i)++;
	return rc ? rc : MARK("<|eot_id|>");
#undef MARK
}

/* chatml and gemma with tools: the block ends the first system message, or
 * is one put first.  *copy and *text are malloc'd (the caller frees); on
 * failure neither is left allocated. */
static int tools_in_system(enum chat_format f, const struct chat_msg *msgs, int n_msgs, json_t *tools,
			   struct chat_msg **copy, char **text, struct smk_err *err)
{
	char *block = toolcall_tools_text(f, tools);
	bool has = n_msgs > 0 && is_system(msgs[0].role);
	*copy = calloc((size_t)n_msgs + 1, sizeof(**copy));
	if (!block || !*copy) {
		free(block);
		free(*copy);
		*copy = NULL;
		return smk_fail(err, -ENOMEM, "out of memory");
	}
	const char *s = has ? msgs[0].content : "";
	size_t len = has ? msgs[0].len : 0, lb = strlen(block);
	if (has && f == CHAT_GEMMA)
		trimmed(&msgs[0], &s, &len);
	*text = len < SIZE_MAX - lb - 3 ? malloc(len + lb + 3) : NULL;
	if (!*text) {
		free(block);
		free(*copy);
		*copy = NULL;
		return smk_fail(err, -ENOMEM, "out of memory");
	}
	memcpy(*text, s, len);
	size_t o = len;
	if (len) {
		memcpy(*text + o, "\n\n", 2);
		o += 2;
	}
	memcpy(*text + o, block, lb);
	o += lb;
	free(block);
	struct chat_msg *c = *copy;
	c[0] = (struct chat_msg){ .role = "system", .content = *text, .len = o };
	memcpy(c + 1, msgs + has, sizeof(*c) * (size_t)(n_msgs - has));
	return n_msgs - has + 1;
}

int chat_encode(enum chat_format f, const struct tokenizer *t, const struct chat_msg *msgs,
		int n_msgs, int max_tokens, int32_t **out, int *n_out, struct smk_err *err)
{
	return chat_encode_tools(f, t, msgs, n_msgs, NULL, max_tokens, out, n_out, err);
}

int chat_encode_tools(enum chat_format f, const struct tokenizer *t, const struct chat_msg *msgs,
		      int n_msgs, json_t *tools, int max_tokens, int32_t **out, int *n_out,
		      struct smk_err *err)
{
	bool with_tools = tools && json_array_size(tools) > 0;
	for (int i = 0; i < n_msgs && !toolcall_syntax(f); i++)
		if (msgs[i].n_calls || !strcmp(msgs[i].role, "tool"))
			with_tools = true;
	if (with_tools && !toolcall_syntax(f))
		return smk_fail(err, -ENOTSUP, "the %s chat format has no tool calls here", chat_format_name(f));
	struct chat_msg *copy = NULL;
	char *sys_text = NULL;
	int first = 0;
	if (tools && json_array_size(tools) > 0 && f != CHAT_LLAMA3 && f != CHAT_HARMONY) {
		int n = tools_in_system(f, msgs, n_msgs, tools, &copy, &sys_text, err);
		if (n < 0)
			return n;
		msgs = copy;
		n_msgs = n;
	}
	struct ids a = { .cap = 256, .max = (size_t)max_tokens };
	a.v = malloc(a.cap * sizeof(int32_t));
	if (!a.v) {
		free(copy);
		free(sys_text);
		return smk_fail(err, -ENOMEM, "out of memory");
	}
	int rc = 0;
	if (tokenizer_add_bos(t) && tokenizer_bos(t) >= 0)
		a.v[a.n++] = tokenizer_bos(t);
	const char *s;
	size_t len;
	if (f == CHAT_HARMONY)
		rc = harmony_encode(&a, t, msgs, n_msgs, tools, err);
	if (f == CHAT_LLAMA3 && tools && json_array_size(tools) > 0)
		rc = llama3_tools_head(&a, t, msgs, n_msgs, tools, &first, err);
	for (int i = first; i < n_msgs && rc == 0 && f != CHAT_HARMONY; i++) {
		const struct chat_msg *m = &msgs[i];
		if (m->n_calls || !strcmp(m->role, "tool")) {
			rc = tool_turn(f, &a, t, msgs, n_msgs, &i, err);
			continue;
		}
		switch (f) {
		case CHAT_GEMMA: {
			/* The system text opens the next user turn. */
			if (is_system(m->role)) {
				if ((rc = ADD_T("<start_of_turn>user\n")))
					break;
				trimmed(m, &s, &len);
				if ((rc = ADD_C(s, len)) || (rc = ADD_T("\n\n")))
					break;
				if (i + 1 < n_msgs && !strcmp(msgs[i + 1].role, "user")) {
					i++;
					m = &msgs[i];
				} else {
					rc = ADD_T("<end_of_turn>\n");
					break;
				}
			} else if ((rc = ADD_T(!strcmp(m->role, "assistant") ? "<start_of_turn>model\n"
								      : "<start_of_turn>user\n"))) {
				break;
			}
			trimmed(m, &s, &len);
			if (!(rc = ADD_C(s, len)))
				rc = ADD_T("<end_of_turn>\n");
			break;
		}
		case CHAT_CHATML:
			if (!(rc = ADD_T("<|im_start|>")) &&
			    !(rc = ADD_T(is_system(m->role) ? "system" : m->role)) &&
			    !(rc = ADD_T("\n")) && !(rc = ADD_C(m->content, m->len)))
				rc = ADD_T("<|im_end|>\n");
			break;
		case CHAT_LLAMA3:
			trimmed(m, &s, &len);
			if (!(rc = ADD_T("<|start_header_id|>")) &&
			    !(rc = ADD_T(is_system(m->role) ? "system" : m->role)) &&
			    !(rc = ADD_T("<|end_header_id|>\n\n")) && !(rc = ADD_C(s, len)))
				rc = ADD_T("<|eot_id|>");
			break;
		case CHAT_HARMONY:
			break;
		case CHAT_PLAIN:
			if (!(rc = ADD_C(m->role, strlen(m->role))) && !(rc = ADD_C(": ", 2)) &&
			    !(rc = ADD_C(m->content, m->len)))
				rc = ADD_C("\n", 1);
			break;
		}
	}
	if (rc == 0) {
		switch (f) {
		case CHAT_GEMMA: rc = ADD_T("<start_of_turn>model\n"); break;
		case CHAT_CHATML: rc = ADD_T("<|im_start|>assistant\n"); break;
		case CHAT_LLAMA3: rc = ADD_T("<|start_header_id|>assistant<|end_header_id|>\n\n"); break;
		case CHAT_PLAIN: rc = ADD_C("assistant:", 10); break;
		case CHAT_HARMONY: break;   /* harmony_encode closed it */
		}
	}
	if (rc == 0 && a.n > a.max)
		rc = smk_fail(err, -E2BIG, "the conversation is %zu tokens; at most %zu fit", a.n, a.max);
	free(copy);
	free(sys_text);
	if (rc) {
		free(a.v);
		return rc;
	}
	*out = a.v;
	*n_out = (int)a.n;
	return 0;
}
