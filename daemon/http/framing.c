/* framing.c - the HTTP/1.1 framing scanner (framing.h). */
#include "http/framing.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define INVALID "invalid_request_error"

void framing_init(struct framing *f, size_t head_max)
{
	memset(f, 0, sizeof(*f));
	f->head_max = head_max < 256 ? 256 : head_max;
}

static long fail(struct framing *f, struct api_error *e, int status, const char *code, const char *what)
{
	f->state = FRAMING_FAILED;
	api_fail(e, status, INVALID, NULL, code, "%s", what);
	return -1;
}

/* RFC 9110 5.6.2: the characters of a token (a method, a field name). */
static bool tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The next complete line of the section being gathered (a head, the
 * trailers, a chunk line), resuming where the last call stopped so that a
 * head trickled in a byte at a time is scanned once, not once per byte.
 * Returns 1 with the line in [*ls, *le) (le at its CR), 0 when it is not
 * complete yet, -1 when a line ends in a bare LF or a CR alone. */
static int next_line(struct framing *f, const char *buf, size_t len, const char **ls, const char **le)
{
	const char *end = buf + len;
	for (const char *q = buf + f->scan; q < end; q++) {
		if (*q == '\n')
			return -1;
		if (*q != '\r')
			continue;
		if (q + 1 == end) {
			f->scan = (size_t)(q - buf);
			return 0;
		}
		if (q[1] != '\n')
			return -1;
		*ls = buf + f->line;
		*le = q;
		f->line = f->scan = (size_t)(q + 2 - buf);
		return 1;
	}
	f->scan = len;
	return 0;
}

/* A section is passed on: the next starts afresh. */
static long passed(struct framing *f, size_t n)
{
	f->line = f->scan = 0;
	f->fields = 0;
	return (long)n;
}

/* The request line [p, eol). */
static long request_line(struct framing *f, const char *p, const char *eol, struct api_error *e)
{
	const char *m = p;
	while (m < eol && tchar((unsigned char)*m))
		m++;
	if (m == p || m == eol || *m != ' ')
		return fail(f, e, 400, "invalid_request_line", "the request line is not METHOD SP TARGET SP HTTP/x.y");
	const char *t = m + 1, *te = t;
	while (te < eol && (unsigned char)*te > 0x20 && (unsigned char)*te < 0x7f)
		te++;
	if (te == t || te == eol || *te != ' ')
		return fail(f, e, 400, "invalid_request_line",
			    "the request target is empty or holds a byte that is not visible ASCII");
	const char *v = te + 1;
	if (eol - v != 8 || memcmp(v, "HTTP/", 5) || v[5] < '0' || v[5] > '9' || v[6] != '.' || v[7] < '0' ||
	    v[7] > '9')
		return fail(f, e, 400, "invalid_request_line", "the request line does not end in HTTP/x.y");
	if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
		return fail(f, e, 505, "http_version_not_supported", "only HTTP/1.0 and HTTP/1.1 are served");
	/* Escapes that libmicrohttpd's unescaping would turn into bytes that
	 * cut the path short or hide in it, and the query's argument count. */
	const char *q = memchr(t, '?', (size_t)(te - t));
	int args = q ? 1 : 0;
	for (const char *c = t; c < te; c++) {
		if (q && c > q && *c == '&')
			args++;
		if (*c != '%' || te - c < 3 || hexval((unsigned char)c[1]) < 0 || hexval((unsigned char)c[2]) < 0)
			continue;
		int b = hexval((unsigned char)c[1]) * 16 + hexval((unsigned char)c[2]);
		if (b == 0)
			return fail(f, e, 400, "invalid_request_target",
				    "the request target contains an escaped NUL byte (%00)");
		if ((b < 0x20 || b == 0x7f) && (!q || c < q))
			return fail(f, e, 400, "invalid_request_target",
				    "the request path contains an escaped control byte");
	}
	if (args > FRAMING_MAX_ARGS) {
		f->state = FRAMING_FAILED;
		api_fail(e, 414, INVALID, NULL, "uri_too_long", "the request target has %d query arguments; at most %d",
			 args, FRAMING_MAX_ARGS);
		return -1;
	}
	return 0;
}

/* What the fields of one head say about its framing. */
struct fields {
	int n, n_host, n_cl, n_te;
	uint64_t cl;
	bool cl_differ;
	const char *te;
	size_t te_len;
};

static bool name_is(const char *n, size_t len, const char *want)
{
	return strlen(want) == len && !strncasecmp(n, want, len);
}

/* One field line [p, eol) of a head (trailers: fl == NULL). */
static long field_line(struct framing *f, const char *p, const char *eol, struct fields *fl, struct api_error *e)
{
	if (*p == ' ' || *p == '\t')
		return fail(f, e, 400, "invalid_header", "a header line is folded (obs-fold, RFC 9112 5.2)");
	const char *colon = memchr(p, ':', (size_t)(eol - p));
	if (!colon)
		return fail(f, e, 400, "invalid_header", "a header line has no colon");
	int nlen = (int)(colon - p < 40 ? colon - p : 40);
	for (const char *c = p; c < colon; c++)
		if (!tchar((unsigned char)*c)) {
			f->state = FRAMING_FAILED;
			api_fail(e, 400, INVALID, NULL, "invalid_header",
				 "header field name '%.*s' contains a space or a character not allowed in a name "
				 "(RFC 9112 5.1)", nlen, p);
			return -1;
		}
	if (colon == p)
		return fail(f, e, 400, "invalid_header", "a header line has an empty field name");
	const char *v = colon + 1, *ve = eol;
	for (const char *c = v; c < ve; c++) {
		unsigned char ch = (unsigned char)*c;
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			f->state = FRAMING_FAILED;
			api_fail(e, 400, INVALID, NULL, "invalid_header", "header '%.*s' contains a %s", nlen, p,
				 ch ? "control byte" : "NUL byte");
			return -1;
		}
	}
	if (!fl)
		return 0;
	while (v < ve && (*v == ' ' || *v == '\t'))
		v++;
	while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
		ve--;
	size_t name_len = (size_t)(colon - p);
	if (name_is(p, name_len, "Host")) {
		fl->n_host++;
	} else if (name_is(p, name_len, "Content-Length")) {
		if (v == ve || ve - v > 18) {
			if (v == ve)
				return fail(f, e, 400, "invalid_framing", "Content-Length is empty");
			for (const char *c = v; c < ve; c++)
				if (*c < '0' || *c > '9')
					goto not_number;
			return fail(f, e, 413, "body_too_large", "Content-Length is larger than any body this server takes");
		}
		uint64_t n = 0;
		for (const char *c = v; c < ve; c++) {
			if (*c < '0' || *c > '9')
				goto not_number;
			n = n * 10 + (uint64_t)(*c - '0');
		}
		if (fl->n_cl++ && n != fl->cl)
			fl->cl_differ = true;
		fl->cl = n;
	} else if (name_is(p, name_len, "Transfer-Encoding")) {
		fl->n_te++;
		fl->te = v;
		fl->te_len = (size_t)(ve - v);
	}
	return 0;
not_number:
	f->state = FRAMING_FAILED;
	api_fail(e, 400, INVALID, NULL, "invalid_framing", "Content-Length '%.*s' is not a decimal number",
		 (int)(ve - v < 24 ? ve - v : 24), v);
	return -1;
}

/* The first CRLF in [p, end) (the head is complete and checked line by
 * line: every line ends in one). */
static const char *crlf(const char *p, const char *end)
{
	while (p + 1 < end && !(p[0] == '\r' && p[1] == '\n'))
		p++;
	return p;
}

/* A complete head [buf, end), its line endings checked. */
static long whole_head(struct framing *f, const char *buf, const char *end, struct api_error *e)
{
	const char *eol = crlf(buf, end);
	if (request_line(f, buf, eol, e))
		return -1;
	bool http10 = eol[-1] == '0';
	struct fields fl = { 0 };
	for (const char *p = eol + 2; p < end;) {
		const char *le = crlf(p, end);
		if (le == p)
			break;    /* the empty line: end of the head */
		if (++fl.n > FRAMING_MAX_FIELDS) {
			f->state = FRAMING_FAILED;
			api_fail(e, 431, INVALID, NULL, "header_fields_too_large", "more than %d header fields",
				 FRAMING_MAX_FIELDS);
			return -1;
		}
		if (field_line(f, p, le, &fl, e))
			return -1;
		p = le + 2;
	}
	if (!http10 && fl.n_host != 1)
		return fail(f, e, 400, "invalid_host",
			    fl.n_host ? "several Host headers (RFC 9112 3.2)" :
					"an HTTP/1.1 request without Host (RFC 9112 3.2)");
	if (fl.n_te && fl.n_cl)
		return fail(f, e, 400, "invalid_framing",
			    "both Content-Length and Transfer-Encoding given (RFC 9112 6.3)");
	if (fl.cl_differ)
		return fail(f, e, 400, "invalid_framing", "several different Content-Length headers (RFC 9112 6.3)");
	if (fl.n_te) {
		if (http10)
			return fail(f, e, 400, "invalid_framing",
				    "Transfer-Encoding in an HTTP/1.0 request (RFC 9112 6.1)");
		if (fl.n_te > 1 || !name_is(fl.te, fl.te_len, "chunked")) {
			f->state = FRAMING_FAILED;
			api_fail(e, 501, INVALID, NULL, "unsupported_transfer_coding",
				 "Transfer-Encoding '%.*s' is not supported: only 'chunked'",
				 (int)(fl.te_len < 48 ? fl.te_len : 48), fl.te);
			return -1;
		}
		f->state = FRAMING_CHUNK_LINE;
	} else if (fl.cl) {
		f->state = FRAMING_BODY;
		f->left = fl.cl;
	}
	f->requests++;
	return 0;
}

static const char bare_lf[] = "a line ends in a bare LF or a CR alone (RFC 9112 2.2)";

static long scan_head(struct framing *f, const char *buf, size_t len, struct api_error *e)
{
	/* Empty lines before the request line pass on by themselves. */
	if (f->line == 0 && (buf[0] == '\r' || buf[0] == '\n')) {
		if (buf[0] == '\r' && len < 2)
			return 0;
		if (buf[0] != '\r' || buf[1] != '\n')
			return fail(f, e, 400, "invalid_request_line", bare_lf);
		return passed(f, 2);
	}
	for (;;) {
		const char *ls, *le;
		int r = next_line(f, buf, len, &ls, &le);
		if (r < 0)
			return fail(f, e, 400, f->line ? "invalid_header" : "invalid_request_line", bare_lf);
		if (r == 0) {
			if (len < f->head_max)
				return 0;
			return f->line ? fail(f, e, 431, "header_fields_too_large", "the request head is too large") :
					 fail(f, e, 414, "uri_too_long", "the request line is too long");
		}
		if ((size_t)(le + 2 - buf) > f->head_max)
			return ls == buf ? fail(f, e, 414, "uri_too_long", "the request line is too long") :
					   fail(f, e, 431, "header_fields_too_large", "the request head is too large");
		/* The request line is judged as soon as it is in (a 505 need
		 * not wait for the fields); the fields when the head is whole. */
		if (ls == buf && request_line(f, ls, le, e))
			return -1;
		if (ls != buf && le == ls) {
			size_t n = (size_t)(le + 2 - buf);
			return whole_head(f, buf, le + 2, e) ? -1 : passed(f, n);
		}
	}
}

static long scan_chunk_line(struct framing *f, const char *buf, size_t len, struct api_error *e)
{
	const char *ls, *le;
	int r = next_line(f, buf, len, &ls, &le);
	if (r < 0)
		return fail(f, e, 400, "invalid_chunk", "a chunk-size line ends in a bare LF or a CR alone");
	/* Within the caller's buffer too (head_max may be below the line
	 * limit).  A whole line past the limit is refused as one still
	 * arriving would be: however the stream is cut into reads, the same
	 * line gets the same answer (a line whose size overflowed, seen
	 * whole, was a 413 where the same bytes a few at a time were this
	 * 400 - found by the framing fuzzer). */
	const size_t limit = FRAMING_MAX_CHUNK_LINE < f->head_max ? FRAMING_MAX_CHUNK_LINE : f->head_max;
	if (r == 0 ? len >= limit : (size_t)(le + 2 - buf) > limit)
		return fail(f, e, 400, "invalid_chunk", "a chunk-size line is too long");
	if (r == 0)
		return 0;
	uint64_t n = 0;
	const char *p = buf;
	for (; p < le && hexval((unsigned char)*p) >= 0; p++) {
		if (n >> 58)
			return fail(f, e, 413, "body_too_large", "a chunk is larger than any body this server takes");
		n = n * 16 + (uint64_t)hexval((unsigned char)*p);
	}
	if (p == buf || (p < le && *p != ';'))
		return fail(f, e, 400, "invalid_chunk", "a chunk-size line is not hexadecimal digits");
	for (; p < le; p++)
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
			return fail(f, e, 400, "invalid_chunk", "a chunk extension holds a control byte");
	f->left = n;
	f->state = n ? FRAMING_CHUNK_DATA : FRAMING_TRAILERS;
	return passed(f, (size_t)(le + 2 - buf));
}

static long scan_trailers(struct framing *f, const char *buf, size_t len, struct api_error *e)
{
	for (;;) {
		const char *ls, *le;
		int r = next_line(f, buf, len, &ls, &le);
		if (r < 0)
			return fail(f, e, 400, "invalid_chunk", "a trailer line ends in a bare LF or a CR alone");
		if (r == 0 || (size_t)(le + 2 - buf) > f->head_max)
			return len < f->head_max ? 0 :
				fail(f, e, 431, "header_fields_too_large", "the trailer section is too large");
		if (le == ls) {
			f->state = FRAMING_HEAD;
			return passed(f, (size_t)(le + 2 - buf));
		}
		if (++f->fields > FRAMING_MAX_FIELDS)
			return fail(f, e, 431, "header_fields_too_large", "too many trailer fields");
		if (field_line(f, ls, le, NULL, e))
			return -1;
	}
}

long framing_scan(struct framing *f, const char *buf, size_t len, struct api_error *e)
{
	switch (f->state) {
	case FRAMING_HEAD:
		return len ? scan_head(f, buf, len, e) : 0;
	case FRAMING_BODY:
	case FRAMING_CHUNK_DATA: {
		uint64_t n = len < f->left ? len : f->left;
		f->left -= n;
		if (!f->left)
			f->state = f->state == FRAMING_BODY ? FRAMING_HEAD : FRAMING_CHUNK_END;
		return (long)n;
	}
	case FRAMING_CHUNK_END:
		if (len < 2)
			return len && buf[0] != '\r' ? fail(f, e, 400, "invalid_chunk", "a chunk is not followed by CRLF") : 0;
		if (buf[0] != '\r' || buf[1] != '\n')
			return fail(f, e, 400, "invalid_chunk", "a chunk is not followed by CRLF (its size is wrong?)");
		f->state = FRAMING_CHUNK_LINE;
		return 2;
	case FRAMING_CHUNK_LINE:
		return len ? scan_chunk_line(f, buf, len, e) : 0;
	case FRAMING_TRAILERS:
		return len ? scan_trailers(f, buf, len, e) : 0;
	case FRAMING_FAILED:
		break;
	}
	return fail(f, e, 400, "invalid_framing", "the connection's framing already failed");
}
