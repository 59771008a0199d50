#include "engine/chat.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

const char *chat_format_name(enum chat_format f)
{
	switch (f) {
	case CHAT_GEMMA: return "gemma";
	case CHAT_CHATML: return "chatml";
	case CHAT_LLAMA3: return "llama3";
	case CHAT_PLAIN: return "plain";
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
	}
	if (has_token(t, "<start_of_turn>") && has_token(t, "<end_of_turn>"))
		return CHAT_GEMMA;
	if (has_token(t, "<|im_start|>") && has_token(t, "<|im_end|>"))
		return CHAT_CHATML;
	if (has_token(t, "<|start_header_id|>") && has_token(t, "<|eot_id|>"))
		return CHAT_LLAMA3;
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

int chat_encode(enum chat_format f, const struct tokenizer *t, const struct chat_msg *msgs,
		int n_msgs, int max_tokens, int32_t **out, int *n_out, struct smk_err *err)
{
	struct ids a = { .cap = 256, .max = (size_t)max_tokens };
	a.v = malloc(a.cap * sizeof(int32_t));
	if (!a.v)
		return smk_fail(err, -ENOMEM, "out of memory");
	int rc = 0;
	if (tokenizer_add_bos(t) && tokenizer_bos(t) >= 0)
		a.v[a.n++] = tokenizer_bos(t);
	const char *s;
	size_t len;
	for (int i = 0; i < n_msgs && rc == 0; i++) {
		const struct chat_msg *m = &msgs[i];
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
		}
	}
	if (rc == 0 && a.n > a.max)
		rc = smk_fail(err, -E2BIG, "the conversation is %zu tokens; at most %zu fit", a.n, a.max);
	if (rc) {
		free(a.v);
		return rc;
	}
	*out = a.v;
	*n_out = (int)a.n;
	return 0;
}
