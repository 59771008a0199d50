/* sse.c - incremental server-sent events parser (framing in sse.h). */
#include "sse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void sse_init(struct sse_parser *p, size_t max)
{
	memset(p, 0, sizeof(*p));
	p->max = max;
}

void sse_deinit(struct sse_parser *p)
{
	free(p->line);
	free(p->data);
	memset(p, 0, sizeof(*p));
}

/* Make room for need bytes plus a NUL in *buf, growing geometrically up to
 * max + 1 so that a long stream reallocates only a few times. */
static int reserve(char **buf, size_t *cap, size_t need, size_t max)
{
	if (need > max)
		return -E2BIG;
	if (need + 1 <= *cap)
		return 0;
	size_t n = *cap ? *cap : 256;
	while (n < need + 1)
		n = n > max / 2 ? max + 1 : n * 2;
	char *b = realloc(*buf, n);
	if (!b)
		return -ENOMEM;
	*buf = b;
	*cap = n;
	return 0;
}

static int fail(struct sse_parser *p, int code)
{
	p->error = code;
	return code;
}

/* One complete line (without its end). */
static int line_done(struct sse_parser *p, sse_event_fn fn, void *user)
{
	const char *l = p->line ? p->line : "";
	size_t n = p->line_len;
	p->line_len = 0;
	if (n == 0) {
		/* Dispatch; the trailing LF added after each data line goes. */
		if (!p->has_data)
			return 0;
		size_t len = p->data_len ? p->data_len - 1 : 0;
		p->data_len = 0;
		p->has_data = false;
		p->data[len] = 0; /* has_data: a data line made the buffer */
		return fn(p->data, len, user);
	}
	if (l[0] == ':')
		return 0; /* a comment (keep-alive) */
	const char *colon = memchr(l, ':', n);
	size_t name_len = colon ? (size_t)(colon - l) : n;
	if (name_len != 4 || memcmp(l, "data", 4))
		return 0; /* event, id, retry or unknown: nothing smoked sends */
	const char *v = colon ? colon + 1 : l + n;
	size_t vn = (size_t)(l + n - v);
	if (vn && v[0] == ' ') {
		v++;
		vn--;
	}
	if (vn > p->max || p->data_len > p->max - vn - 1)
		return fail(p, -E2BIG);
	int rc = reserve(&p->data, &p->data_cap, p->data_len + vn + 1, p->max + 1);
	if (rc)
		return fail(p, rc);
	memcpy(p->data + p->data_len, v, vn);
	p->data_len += vn;
	p->data[p->data_len++] = '\n';
	p->has_data = true;
	return 0;
}

static int feed(struct sse_parser *p, const char *bytes, size_t n, sse_event_fn fn, void *user);

int sse_feed(struct sse_parser *p, const char *bytes, size_t n, sse_event_fn fn, void *user)
{
	p->error = 0;
	return feed(p, bytes, n, fn, user);
}

static int feed(struct sse_parser *p, const char *bytes, size_t n, sse_event_fn fn, void *user)
{
	size_t i = 0;
	while (i < n) {
		if (p->after_cr && bytes[i] == '\n') {
			/* The LF of a CRLF split across calls or read after the CR. */
			p->after_cr = false;
			i++;
			continue;
		}
		p->after_cr = false;
		/* Copy the run up to the next line end in one go. */
		size_t j = i;
		while (j < n && bytes[j] != '\n' && bytes[j] != '\r')
			j++;
		if (j > i) {
			size_t run = j - i;
			if (run > p->max || p->line_len > p->max - run)
				return fail(p, -E2BIG);
			int rc = reserve(&p->line, &p->line_cap, p->line_len + run, p->max);
			if (rc)
				return fail(p, rc);
			memcpy(p->line + p->line_len, bytes + i, run);
			p->line_len += run;
			p->line[p->line_len] = 0;
		}
		if (j == n)
			break;
		p->after_cr = bytes[j] == '\r';
		i = j + 1;
		int rc = line_done(p, fn, user);
		if (rc)
			return rc;
	}
	return 0;
}
