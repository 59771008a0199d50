/* test_framing.c - the HTTP/1.1 framing scanner (daemon/http/framing.c):
 * what passes, what is refused with which status, and that the bytes
 * arriving whole or one at a time make no difference. */
#include <check.h>

#include "ck_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/framing.h"

enum { HEAD_MAX = 4096 };

struct outcome {
	int status;          /* 0: every byte passed */
	size_t passed;       /* bytes passed on before the refusal (or all) */
	int requests;
	enum framing_state state;
	char code[48];
};

/* Feed `in` as a relay would: `step` bytes at a time (0: all at once),
 * passing on what the scanner lets through and keeping the rest. */
static struct outcome run(const char *in, size_t len, size_t step)
{
	struct framing f;
	framing_init(&f, HEAD_MAX);
	struct outcome o = { 0 };
	char *buf = malloc(HEAD_MAX);
	ck_assert_ptr_nonnull(buf);
	size_t have = 0, fed = 0;
	while (fed < len || have) {
		size_t n = step ? step : len;
		if (n > len - fed)
			n = len - fed;
		if (n > HEAD_MAX - have)
			n = HEAD_MAX - have;
		memcpy(buf + have, in + fed, n);
		have += n;
		fed += n;
		size_t pass = 0;
		struct api_error e = { 0 };
		long r;
		while ((r = framing_scan(&f, buf + pass, have - pass, &e)) > 0)
			pass += (size_t)r;
		o.passed += pass;
		memmove(buf, buf + pass, have - pass);
		have -= pass;
		if (r < 0) {
			o.status = e.status;
			snprintf(o.code, sizeof(o.code), "%s", e.code ? e.code : "");
			ck_assert_msg(e.msg[0], "a refusal without a message");
			break;
		}
		if (fed == len && !pass)
			break;   /* waiting for bytes that will not come */
	}
	free(buf);
	o.requests = f.requests;
	o.state = f.state;
	return o;
}

static struct outcome run_both(const char *in, size_t len)
{
	struct outcome whole = run(in, len, 0);
	for (size_t step = 1; step <= 7; step += 3) {
		struct outcome bytes = run(in, len, step);
		ck_assert_msg(bytes.status == whole.status && bytes.passed == whole.passed &&
				      bytes.requests == whole.requests,
			      "fed %zu at a time: status %d passed %zu requests %d; whole: %d %zu %d", step,
			      bytes.status, bytes.passed, bytes.requests, whole.status, whole.passed, whole.requests);
	}
	return whole;
}

#define S(x) x, sizeof(x) - 1

static const struct {
	const char *in;
	size_t len;
	int requests;
} good[] = {
	{ S("GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"), 1 },
	{ S("GET /health HTTP/1.0\r\n\r\n"), 1 },
	{ S("\r\nGET /health HTTP/1.0\r\n\r\n"), 1 },
	{ S("GET /health?a=1&b=%0a HTTP/1.1\r\nHost: x\r\nX-Empty:\r\n\r\n"), 1 },
	{ S("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
	    "POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"), 2 },
	{ S("POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:  Chunked \r\n\r\n"
	    "3\r\nabc\r\n10;name=value\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n"
	    "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"), 2 },
	{ S("POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 000\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"), 2 },
};

START_TEST(good_framing_passes_whole)
{
	struct outcome o = run_both(good[_i].in, good[_i].len);
	ck_assert_msg(o.status == 0, "case %d refused: %d %s", _i, o.status, o.code);
	ck_assert_uint_eq(o.passed, good[_i].len);
	ck_assert_int_eq(o.requests, good[_i].requests);
	ck_assert_int_eq(o.state, FRAMING_HEAD);
}
END_TEST

static const struct {
	const char *in;
	size_t len;
	int status;
	const char *code;
	const char *upto;   /* what passes ends after the first of these (NULL: nothing passes) */
} bad[] = {
	{ S("GET /health HTTP/2.0\r\nHost: x\r\n\r\n"), 505, "http_version_not_supported", NULL },
	{ S("GET /health HTTP/1.2\r\nHost: x\r\n\r\n"), 505, "http_version_not_supported", NULL },
	{ S("GET /health\r\n\r\n"), 400, "invalid_request_line", NULL },
	{ S("GET  /health HTTP/1.1\r\nHost: x\r\n\r\n"), 400, "invalid_request_line", NULL },
	{ S("G(T /health HTTP/1.1\r\nHost: x\r\n\r\n"), 400, "invalid_request_line", NULL },
	{ S("GET /he\x80lth HTTP/1.1\r\nHost: x\r\n\r\n"), 400, "invalid_request_line", NULL },
	{ S("GET /health HTTP/1.1\nHost: x\n\n"), 400, "invalid_request_line", NULL },
	{ S("GET /health HTTP/1.1\r\nHost: x\n\r\n"), 400, "invalid_header", NULL },
	{ S("GET /health HTTP/1.1\r\nHost: x\rX: y\r\n\r\n"), 400, "invalid_header", NULL },
	{ S("GET /stats%00 HTTP/1.1\r\nHost: x\r\n\r\n"), 400, "invalid_request_target", NULL },
	{ S("GET /v1/%0d%0ax HTTP/1.1\r\nHost: x\r\n\r\n"), 400, "invalid_request_target", NULL },
	{ S("GET /health HTTP/1.1\r\n\r\n"), 400, "invalid_host", NULL },
	{ S("GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400, "invalid_host", NULL },
	{ S("GET /health HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n"), 400, "invalid_header", NULL },
	{ S("GET /health HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n"), 400, "invalid_header", NULL },
	{ S("GET /health HTTP/1.1\r\nHost: x\r\n: empty name\r\n\r\n"), 400, "invalid_header", NULL },
	{ S("POST /t HTTP/1.1\r\nHost: x\r\nContent-Length : 16\r\n\r\n"), 400, "invalid_header", NULL },
	{ S("GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer K\0junk\r\n\r\n"), 400, "invalid_header", NULL },
	{ S("GET /health HTTP/1.1\r\nHost: x\r\nX: a\x01" "b\r\n\r\n"), 400, "invalid_header", NULL },
	{ S("POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"), 400, "invalid_framing", NULL },
	{ S("POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"), 400, "invalid_framing", NULL },
	{ S("POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n"), 400, "invalid_framing", NULL },
	{ S("POST /t HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n"), 400, "invalid_framing", NULL },
	{ S("POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"), 413, "body_too_large", NULL },
	{ S("POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400, "invalid_framing", NULL },
	{ S("POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400,
	  "invalid_framing", NULL },
	{ S("POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501,
	  "unsupported_transfer_coding", NULL },
	{ S("POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n"), 501, "unsupported_transfer_coding", NULL },
	{ S("POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), 501,
	  "unsupported_transfer_coding", NULL },
	{ S("POST /t HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400, "invalid_framing", NULL },
	{ S("POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), 400, "invalid_chunk", "\r\n\r\n" },
	{ S("POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n"), 400, "invalid_chunk", "\r\n\r\n" },
	{ S("POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n"), 400, "invalid_chunk", "abc" },
	{ S("POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n"), 400, "invalid_chunk", "\r\n\r\n" },
	{ S("POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n"), 413,
	  "body_too_large", "\r\n\r\n" },
	{ S("POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer: x\r\n\r\n"), 400,
	  "invalid_header", "\r\n\r\n0\r\n" },
	/* The first request passes; the second is refused. */
	{ S("GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/9.9\r\nHost: x\r\n\r\n"), 505,
	  "http_version_not_supported", "\r\n\r\n" },
};

START_TEST(bad_framing_refused)
{
	struct outcome o = run_both(bad[_i].in, bad[_i].len);
	ck_assert_msg(o.status == bad[_i].status && !strcmp(o.code, bad[_i].code),
		      "case %d: got %d %s, want %d %s", _i, o.status, o.code, bad[_i].status, bad[_i].code);
	ck_assert_int_eq(o.state, FRAMING_FAILED);
	/* Nothing of a refused head is passed on: only the requests before
	 * it, or (a bad chunk) its head and the chunks before. */
	const char *upto = bad[_i].upto ? strstr(bad[_i].in, bad[_i].upto) : NULL;
	size_t want = upto ? (size_t)(upto - bad[_i].in) + strlen(bad[_i].upto) : 0;
	ck_assert_msg(o.passed == want, "case %d: passed %zu bytes, want %zu", _i, o.passed, want);
}
END_TEST

/* Limits: the request line, the head, the fields, the query arguments. */
START_TEST(limits)
{
	char *b = malloc(3 * HEAD_MAX);
	ck_assert_ptr_nonnull(b);
	/* A request line longer than the head limit: 414, and no wait. */
	int n = snprintf(b, 3 * HEAD_MAX, "GET /%0*d", HEAD_MAX, 0);
	struct outcome o = run_both(b, (size_t)n);
	ck_assert_int_eq(o.status, 414);
	/* A head of many long fields: 431. */
	n = snprintf(b, 3 * HEAD_MAX, "GET / HTTP/1.1\r\nHost: x\r\n");
	while (n < HEAD_MAX + 100)
		n += snprintf(b + n, 3 * HEAD_MAX - (size_t)n, "X-Long: %0100d\r\n", 0);
	n += snprintf(b + n, 3 * HEAD_MAX - (size_t)n, "\r\n");
	o = run_both(b, (size_t)n);
	ck_assert_int_eq(o.status, 431);
	/* At the limit a head passes; one more is refused. */
	static const struct {
		const char *before, *unit, *after;
		int limit, status;
	} at_limit[] = {
		{ "GET / HTTP/1.1\r\nHost: x\r\n", "A:\r\n", "\r\n", FRAMING_MAX_FIELDS, 431 },
		{ "GET /health?", "&", " HTTP/1.1\r\nHost: x\r\n\r\n", FRAMING_MAX_ARGS, 414 },
	};
	for (size_t c = 0; c < sizeof(at_limit) / sizeof(at_limit[0]); c++)
		for (int extra = 0; extra < 2; extra++) {
			n = snprintf(b, 3 * HEAD_MAX, "%s", at_limit[c].before);
			for (int i = 1; i < at_limit[c].limit + extra; i++)
				n += snprintf(b + n, 3 * HEAD_MAX - (size_t)n, "%s", at_limit[c].unit);
			n += snprintf(b + n, 3 * HEAD_MAX - (size_t)n, "%s", at_limit[c].after);
			o = run_both(b, (size_t)n);
			ck_assert_int_eq(o.status, extra ? at_limit[c].status : 0);
		}
	/* A chunk line without its end: 400 at FRAMING_MAX_CHUNK_LINE. */
	n = snprintf(b, 3 * HEAD_MAX, "POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;");
	memset(b + n, 'e', FRAMING_MAX_CHUNK_LINE);
	o = run_both(b, (size_t)n + FRAMING_MAX_CHUNK_LINE);
	ck_assert_int_eq(o.status, 400);
	/* A whole chunk line, CRLF and all, of FRAMING_MAX_CHUNK_LINE bytes
	 * passes; one byte more is the same 400 whether it arrives whole or a
	 * few bytes at a time - also when its size overflows (the fuzzer
	 * found that line a 413 whole and a 400 in pieces). */
	for (int extra = 0; extra < 2; extra++) {
		n = snprintf(b, 3 * HEAD_MAX, "POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;");
		const int line = 2 + FRAMING_MAX_CHUNK_LINE - 4 + extra;
		memset(b + n, 'e', (size_t)line - 2);
		n += line - 2;
		n += snprintf(b + n, 3 * HEAD_MAX - (size_t)n, "\r\n");
		o = run_both(b, (size_t)n);
		ck_assert_int_eq(o.status, extra ? 400 : 0);
	}
	n = snprintf(b, 3 * HEAD_MAX, "POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
	memset(b + n, '9', FRAMING_MAX_CHUNK_LINE + 100);
	n += FRAMING_MAX_CHUNK_LINE + 100;
	n += snprintf(b + n, 3 * HEAD_MAX - (size_t)n, "\r\n");
	o = run_both(b, (size_t)n);
	ck_assert_int_eq(o.status, 400);
	free(b);
}
END_TEST

/* A scanner whose caller holds less than a chunk line's limit refuses the
 * line when the buffer is full instead of waiting for more (found by the
 * framing fuzz harness: a relay would stall). */
START_TEST(chunk_line_within_small_buffer)
{
	struct framing f;
	framing_init(&f, 256);
	char b[256];
	static const char head[] = "POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
	struct api_error e = { 0 };
	ck_assert_int_eq(framing_scan(&f, head, sizeof(head) - 1, &e), (long)sizeof(head) - 1);
	memset(b, ';', sizeof(b));
	b[0] = '1';
	ck_assert_int_eq(framing_scan(&f, b, 255, &e), 0);
	ck_assert_int_eq(framing_scan(&f, b, 256, &e), -1);
	ck_assert_int_eq(e.status, 400);
}
END_TEST

/* An incomplete head waits (0), and passes nothing until it is whole. */
START_TEST(incomplete_head_waits)
{
	static const char req[] = "POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody";
	for (size_t cut = 1; cut < sizeof(req) - 1; cut++) {
		struct outcome o = run(req, cut, 0);
		ck_assert_int_eq(o.status, 0);
		size_t head = sizeof(req) - 1 - 4;
		ck_assert_uint_eq(o.passed, cut < head ? 0 : cut);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("framing");
	TCase *tc = tcase_create("scan");
	tcase_add_loop_test(tc, good_framing_passes_whole, 0, (int)(sizeof(good) / sizeof(good[0])));
	tcase_add_loop_test(tc, bad_framing_refused, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, limits);
	tcase_add_test(tc, chunk_line_within_small_buffer);
	tcase_add_test(tc, incomplete_head_waits);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ck_run(suite());
}
