/* harmony.c - the streaming channel parser of harmony.h. */
#include "engine/harmony.h"

#include <string.h>

enum mark { M_START, M_END, M_MESSAGE, M_CHANNEL, M_CONSTRAIN, M_RETURN, M_CALL, N_MARK };

/* No marker is a prefix of another, and all begin with "<|". */
static const char *const marks[N_MARK] = {
	"<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>", "<|return|>", "<|call|>",
};

#define NO_MARK (-2)
#define PREFIX (-1)

/* The marker h[n] is, PREFIX if it can still become one, else NO_MARK. */
static int match(const char *h, int n)
{
	bool prefix = false;
	for (int i = 0; i < N_MARK; i++) {
		int l = (int)strlen(marks[i]);
		if (n <= l && !memcmp(marks[i], h, (size_t)n)) {
			if (n == l)
				return i;
			prefix = true;
		}
	}
	return prefix ? PREFIX : NO_MARK;
}

static void header_reset(struct harmony_parser *p)
{
	p->in_body = false;
	p->ch = HARMONY_DROP;
	p->in_channel = false;
	p->has_channel = false;
	p->channel_long = false;
	p->n_channel = 0;
	p->to_match = 0;
	p->has_recipient = false;
	p->in_recipient = false;
	p->recipient_long = false;
	p->n_recipient = 0;
}

void harmony_init(struct harmony_parser *p)
{
	header_reset(p);
	p->n_hold = 0;
	p->n_msg = 0;
}

/* One byte of header text: the channel name, the recipient (" to="). */
static void header_byte(struct harmony_parser *p, char c)
{
	static const char to[] = " to=";
	if (p->in_recipient) {
		if (c == ' ')
			p->in_recipient = false;
		else if (p->n_recipient < HARMONY_RECIPIENT_MAX)
			p->recipient[p->n_recipient++] = c;
		else
			p->recipient_long = true;
		return;
	}
	if (c == to[p->to_match]) {
		if (++p->to_match == 4) {
			/* a second recipient replaces the first */
			p->has_recipient = true;
			p->in_recipient = true;
			p->recipient_long = false;
			p->n_recipient = 0;
			p->to_match = 0;
		}
	} else {
		p->to_match = c == ' ' ? 1 : 0;
	}
	if (!p->in_channel)
		return;
	if (c == ' ')
		p->in_channel = false;
	else if (p->n_channel < HARMONY_CHANNEL_MAX)
		p->channel[p->n_channel++] = c;
	else
		p->channel_long = true;
}

static void text(struct harmony_parser *p, const char *s, size_t len, harmony_emit_fn emit, void *ctx)
{
	if (!len)
		return;
	if (p->in_body) {
		if (p->ch != HARMONY_DROP)
			emit(ctx, p->ch, s, len);
		return;
	}
	for (size_t i = 0; i < len; i++)
		header_byte(p, s[i]);
}

static bool channel_is(const struct harmony_parser *p, const char *name)
{
	size_t l = strlen(name);
	return !p->channel_long && (size_t)p->n_channel == l && !memcmp(p->channel, name, l);
}

static void marker(struct harmony_parser *p, enum mark m)
{
	p->to_match = 0;
	p->in_recipient = false;
	switch (m) {
	case M_START:
	case M_END:
	case M_RETURN:
	case M_CALL:
		header_reset(p);
		break;
	case M_CHANNEL:
		if (p->in_body)
			header_reset(p);       /* a header without <|end|><|start|> */
		p->in_channel = true;
		p->has_channel = true;
		p->channel_long = false;
		p->n_channel = 0;
		break;
	case M_CONSTRAIN:
		p->in_channel = false;         /* in a body: dropped */
		break;
	case M_MESSAGE:
		if (p->in_body)
			break;                 /* dropped */
		if (p->has_recipient)
			p->ch = p->recipient_long ? HARMONY_DROP : HARMONY_CALL;
		else if (p->has_channel && channel_is(p, "analysis"))
			p->ch = HARMONY_REASONING;
		else
			p->ch = HARMONY_CONTENT;
		p->in_body = true;
		p->in_channel = false;
		p->n_msg++;
		break;
	case N_MARK:
		break;
	}
}

/* A byte while a marker may be starting (n_hold > 0, or c is '<'). */
static void hold_byte(struct harmony_parser *p, char c, harmony_emit_fn emit, void *ctx)
{
	p->hold[p->n_hold++] = c;
	int m = match(p->hold, p->n_hold);
	if (m == PREFIX)
		return;
	if (m >= 0) {
		p->n_hold = 0;
		marker(p, (enum mark)m);
		return;
	}
	/* Not a marker: its first byte is text, the rest is read again (it
	 * may begin a marker itself: "<<|end|>"). */
	char tmp[HARMONY_HOLD];
	int n = p->n_hold;
	memcpy(tmp, p->hold, (size_t)n);
	p->n_hold = 0;
	text(p, tmp, 1, emit, ctx);
	for (int k = 1; k < n; k++) {
		if (p->n_hold == 0 && tmp[k] != '<')
			text(p, tmp + k, 1, emit, ctx);
		else
			hold_byte(p, tmp[k], emit, ctx);
	}
}

void harmony_push(struct harmony_parser *p, const char *s, size_t len, harmony_emit_fn emit,
		  void *ctx)
{
	size_t run = 0;
	for (size_t i = 0; i < len; i++) {
		if (p->n_hold == 0 && s[i] != '<')
			continue;
		text(p, s + run, i - run, emit, ctx);
		hold_byte(p, s[i], emit, ctx);
		run = i + 1;
	}
	text(p, s + run, len - run, emit, ctx);
}

void harmony_push_step(struct harmony_parser *p, const struct tokenizer *t, int32_t id,
		       const char *s, size_t len, harmony_emit_fn emit, void *ctx)
{
	harmony_push(p, s, len, emit, ctx);
	if (id < 0 || !tokenizer_is_control(t, id) || tokenizer_piece(t, id, false, NULL, 0))
		return;
	size_t n;
	const char *text = tokenizer_text(t, id, &n);
	for (int i = M_START; i <= M_CONSTRAIN && text; i++)
		if (strlen(marks[i]) == n && !memcmp(marks[i], text, n)) {
			harmony_push(p, text, n, emit, ctx);
			return;
		}
}

void harmony_finish(struct harmony_parser *p, harmony_emit_fn emit, void *ctx)
{
	if (p->in_body && p->ch != HARMONY_DROP && p->n_hold)
		emit(ctx, p->ch, p->hold, (size_t)p->n_hold);
	harmony_init(p);
}
