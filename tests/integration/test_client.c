/* test_client.c - libsmoke against the live daemon (started by
 * test_client.py, which passes what to compare with).
 *
 * Usage: test_client URL KEY PROMPT N OFFLINE_FILE MODEL_ID FAKE_URL
 *   URL           the daemon (started with --api-key KEY)
 *   PROMPT, N     a prompt and a token count whose greedy continuation the
 *                 offline command (`smoked --prompt PROMPT -n N --temp 0`)
 *                 wrote to OFFLINE_FILE: the independent reference
 *   MODEL_ID      the id the daemon must report
 *   FAKE_URL      a scripted SSE server (in test_client.py) for what the
 *                 real daemon cannot be made to do on demand: an error object
 *                 mid-stream, a stream cut before [DONE], odd line endings
 *
 * Prints one "ok"/"FAIL" line per check and "N passed, N failed" last;
 * exits 1 if any check failed. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "smoke.h"
#include "sse.h"

static int n_pass, n_fail;

static bool check(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool check(bool cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf(cond ? "ok    " : "FAIL  ");
	vprintf(fmt, ap);
	putchar('\n');
	va_end(ap);
	fflush(stdout);
	cond ? n_pass++ : n_fail++;
	return cond;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	static char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	return strdup(buf);
}

/* ---- the SSE parser alone, against events written out by hand ---- */

struct events {
	char got[8][64];
	int n;
};

static int collect(const char *data, size_t len, void *user)
{
	struct events *e = user;
	if (e->n < 8)
		snprintf(e->got[e->n], sizeof(e->got[0]), "%.*s", (int)len, data);
	e->n++;
	return 0;
}

static int stop_at_first(const char *data, size_t len, void *user)
{
	return -7; /* any code; -7 is also -E2BIG, which must not be confused */
}

static void test_sse(void)
{
	/* CRLF, LF and CR line ends, a comment, an id field, a data line
	 * without a space, a two-line event, an empty data event, and a last
	 * event without its closing blank line (dropped, per the standard). */
	static const char stream[] =
		": keep-alive\r\n\r\n"
		"data: {\"a\":1}\r\n\r\n"
		"id: 7\ndata:x\n\n"
		"data: two\ndata: lines\r\r"
		"data:\n\n"
		"data: [DONE]\n\n"
		"data: unterminated";
	static const char *const want[] = { "{\"a\":1}", "x", "two\nlines", "", "[DONE]" };
	const size_t n = sizeof(stream) - 1;
	bool all = true;
	/* Every split point, fed in two pieces, then byte by byte. */
	for (size_t cut = 0; cut <= n + 1; cut++) {
		struct sse_parser p;
		struct events e = { .n = 0 };
		sse_init(&p, 1024);
		int rc = 0;
		if (cut <= n) {
			rc = sse_feed(&p, stream, cut, collect, &e);
			rc = rc ? rc : sse_feed(&p, stream + cut, n - cut, collect, &e);
		} else {
			for (size_t i = 0; i < n && !rc; i++)
				rc = sse_feed(&p, stream + i, 1, collect, &e);
		}
		bool ok = rc == 0 && e.n == 5;
		for (int i = 0; ok && i < 5; i++)
			ok = !strcmp(e.got[i], want[i]);
		if (!ok) {
			printf("      split at %zu: rc %d, %d events, first '%s'\n", cut, rc, e.n, e.got[0]);
			all = false;
		}
		sse_deinit(&p);
	}
	check(all, "SSE parser: 5 events from a stream split at every point and byte by byte");
	struct sse_parser p;
	struct events e = { .n = 0 };
	sse_init(&p, 16);
	int rc = sse_feed(&p, "data: 0123456789abcdefXYZ\n\n", 27, collect, &e);
	check(rc < 0 && p.error == rc && e.n == 0, "SSE parser: a line above the bound is refused (rc %d)", rc);
	sse_deinit(&p);
	sse_init(&p, 64);
	rc = sse_feed(&p, "data: a\n\ndata: b\n\n", 18, stop_at_first, &e);
	check(rc == -7 && p.error == 0, "SSE parser: the callback's code stops it and is returned as is");
	sse_deinit(&p);
}

/* ---- helpers against the daemon ---- */

struct collected {
	char text[8192];
	size_t len;
	int chunks, finishes, abort_after;
	int finish_at, usage_at;     /* chunk index of the finish_reason / usage chunk, -1 if none */
	bool role_first;
	char finish[16];
	int64_t usage;
};

static void collected_init(struct collected *c)
{
	memset(c, 0, sizeof(*c));
	c->finish_at = c->usage_at = -1;
	c->usage = -1;
}

static int on_chunk(const struct smoke_chunk *ch, void *user)
{
	struct collected *c = user;
	if (ch->text_len && c->len + ch->text_len < sizeof(c->text)) {
		memcpy(c->text + c->len, ch->text, ch->text_len);
		c->len += ch->text_len;
		c->text[c->len] = 0;
	}
	if (c->chunks == 0)
		c->role_first = ch->role && !strcmp(ch->role, "assistant");
	else if (ch->role)
		c->role_first = false;
	if (ch->finish_reason) {
		c->finishes++;
		c->finish_at = c->chunks;
		snprintf(c->finish, sizeof(c->finish), "%s", ch->finish_reason);
	}
	if (ch->completion_tokens >= 0) {
		c->usage = ch->completion_tokens;
		c->usage_at = c->chunks;
	}
	c->chunks++;
	return c->abort_after && c->chunks >= c->abort_after;
}

static int closed_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) || getsockname(s, (struct sockaddr *)&a, &l))
		return 9; /* discard: nothing listens there either */
	close(s);
	return ntohs(a.sin_port);
}

static void test_generation(smoke_client *c, const char *prompt, int n, const char *offline)
{
	struct smoke_params p;
	smoke_params_init(&p);
	p.max_tokens = n;
	p.temperature = 0;
	struct smoke_result *r = NULL;
	struct smoke_error e;
	int rc = smoke_complete(c, prompt, &p, &r, &e);
	if (!check(rc == 0, "blocking completion (%s)", rc ? e.message : "0"))
		return;
	check(r->text_len == strlen(offline) && !memcmp(r->text, offline, r->text_len),
	      "greedy completion equals the offline command's output ('%s' vs '%s')", r->text, offline);
	check(!strcmp(r->finish_reason, "length") && r->completion_tokens == n &&
	      r->total_tokens == r->prompt_tokens + r->completion_tokens,
	      "finish_reason length, usage %lld + %lld = %lld", (long long)r->prompt_tokens,
	      (long long)r->completion_tokens, (long long)r->total_tokens);
	int32_t *ids = NULL;
	size_t n_ids = 0;
	rc = smoke_tokenize(c, prompt, 1, 1, &ids, &n_ids, &e);
	check(rc == 0 && (int64_t)n_ids == r->prompt_tokens, "usage.prompt_tokens equals /tokenize's count (%zu)", n_ids);
	char *back = NULL;
	size_t back_len = 0;
	rc = rc ? rc : smoke_detokenize(c, ids, n_ids, &back, &back_len, &e);
	check(rc == 0 && back_len == strlen(prompt) && !strcmp(back, prompt), "detokenize round trip ('%s')",
	      back ? back : e.message);
	smoke_free(ids);
	smoke_free(back);
	json_t *js = r->json ? json_loads(r->json, 0, NULL) : NULL;
	check(json_is_string(json_object_get(js, "id")) && !strcmp(json_string_value(json_object_get(js, "id")), r->id),
	      "result->json holds the reply (id %s)", r->id);
	json_decref(js);

	struct collected s;
	collected_init(&s);
	p.extra_json = "{\"stream_options\":{\"include_usage\":true}}";
	struct smoke_result *sr = NULL;
	rc = smoke_complete_stream(c, prompt, &p, on_chunk, &s, &sr, &e);
	check(rc == 0, "streamed completion (%s)", rc ? e.message : "0");
	check(s.len == r->text_len && !memcmp(s.text, r->text, s.len),
	      "blocking completion equals the streamed concatenation ('%s')", s.text);
	check(sr && sr->text_len == s.len && !memcmp(sr->text, s.text, s.len),
	      "stream result holds the concatenation");
	check(s.chunks >= 3 && s.finishes == 1 && s.finish_at == s.chunks - 2 && s.usage_at == s.chunks - 1 &&
	      !strcmp(s.finish, "length"),
	      "%d chunks, one finish_reason (%s) before the usage chunk", s.chunks, s.finish);
	check(s.usage == n && sr && sr->completion_tokens == n, "include_usage chunk: %lld tokens", (long long)s.usage);
	smoke_result_free(sr);

	/* A stop string from the expected text cuts it there. */
	const char *sp = strstr(offline + 1, " ");
	if (sp && sp[1]) {
		char stop[3] = { sp[1], sp[2] ? sp[2] : 0, 0 };
		const char *stops[1] = { stop };
		p.stop = stops;
		p.n_stop = 1;
		p.extra_json = NULL;
		struct smoke_result *st = NULL;
		rc = smoke_complete(c, prompt, &p, &st, &e);
		size_t want = (size_t)(strstr(offline, stop) - offline);
		check(rc == 0 && st->text_len == want && !strncmp(st->text, offline, want) &&
		      !strcmp(st->finish_reason, "stop"),
		      "stop '%s' cuts the text to %zu bytes (%s)", stop, want, rc ? e.message : st->text);
		smoke_result_free(st);
	}
	smoke_result_free(r);
}

static void test_chat(smoke_client *c)
{
	struct smoke_message m[2] = { { "system", "You are terse." }, { "user", "Name a colour." } };
	struct smoke_params p;
	smoke_params_init(&p);
	p.max_tokens = 8;
	p.temperature = 0;
	struct smoke_result *r = NULL, *sr = NULL;
	struct smoke_error e;
	int rc = smoke_chat(c, m, 2, &p, &r, &e);
	check(rc == 0 && r->completion_tokens >= 1 && r->completion_tokens <= 8 && r->finish_reason[0],
	      "blocking chat (%s)", rc ? e.message : r->text);
	struct collected s;
	collected_init(&s);
	int rc2 = smoke_chat_stream(c, m, 2, &p, on_chunk, &s, &sr, &e);
	check(rc2 == 0 && s.role_first && s.finishes == 1 && s.finish_at == s.chunks - 1 && s.usage_at == -1,
	      "streamed chat: role on the first chunk only, finish on the last (%s)", rc2 ? e.message : "0");
	check(rc == 0 && rc2 == 0 && s.len == r->text_len && !memcmp(s.text, r->text, s.len) &&
	      !strcmp(s.finish, r->finish_reason),
	      "streamed chat equals blocking chat");
	smoke_result_free(r);
	smoke_result_free(sr);
}

static void test_service(smoke_client *c, const char *model_id)
{
	char status[16];
	struct smoke_error e;
	int rc = smoke_health(c, status, sizeof(status), &e);
	check(rc == 0 && !strcmp(status, "ok"), "health: ready, status '%s'", status);
	char *id = NULL;
	rc = smoke_model_id(c, &id, &e);
	check(rc == 0 && !strcmp(id, model_id), "model id '%s'", id ? id : e.message);
	smoke_free(id);
	struct smoke_stats st;
	rc = smoke_stats(c, &st, &e);
	check(rc == 0 && !strcmp(st.status, "ok") && !strcmp(st.model_id, model_id) && st.queue_capacity > 0 &&
	      st.max_active > 0 && st.generated_tokens > 0 && st.completed > 0 && st.admitted >= st.completed,
	      "stats: status %s, %lld generated, %lld/%lld completed/admitted, queue cap %lld", st.status,
	      (long long)st.generated_tokens, (long long)st.completed, (long long)st.admitted,
	      (long long)st.queue_capacity);
	char *js = NULL;
	rc = smoke_stats_json(c, &js, &e);
	json_t *root = rc == 0 ? json_loads(js, 0, NULL) : NULL;
	check(json_is_object(json_object_get(root, "timings")) &&
	      json_integer_value(json_object_get(json_object_get(root, "tokens"), "generated")) >= st.generated_tokens,
	      "stats JSON parses, has timings");
	json_decref(root);
	smoke_free(js);
}

static void test_errors(smoke_client *c, const char *url)
{
	struct smoke_error e;
	struct smoke_result *r = NULL;
	struct smoke_params p;
	smoke_params_init(&p);
	p.max_tokens = 2;

	smoke_client *bad;
	smoke_client_new(&bad, url, "not-the-key", NULL);
	int rc = smoke_complete(bad, "Hi", &p, &r, &e);
	check(rc == SMOKE_E_UNAUTHORIZED && e.http_status == 401 && !strcmp(e.type, "authentication_error") &&
	      strstr(e.message, "HTTP 401") && strstr(e.message, "API key") &&
	      smoke_client_error(bad)->code == SMOKE_E_UNAUTHORIZED,
	      "wrong API key: %d, '%s'", rc, e.message);
	smoke_client_free(bad);

	p.temperature = -1;
	rc = smoke_complete(c, "Hi", &p, &r, &e);
	check(rc == SMOKE_E_BAD_REQUEST && e.http_status == 400 && !strcmp(e.param, "temperature") &&
	      strstr(e.message, "'temperature'") && !strcmp(e.err_code, "out_of_range"),
	      "temperature -1: %d, param '%s', '%s'", rc, e.param, e.message);
	p.temperature = NAN;
	p.model = "gpt-4";
	rc = smoke_complete(c, "Hi", &p, &r, &e);
	check(rc == SMOKE_E_NOT_FOUND && !strcmp(e.param, "model"), "unknown model: %d '%s'", rc, e.message);
	p.model = NULL;
	rc = smoke_complete(c, "\xff\xfe", &p, &r, &e);
	check(rc == SMOKE_E_INVALID && strstr(e.message, "UTF-8"), "invalid UTF-8 prompt refused here: '%s'", e.message);
	long status = 0;
	char *body = NULL;
	rc = smoke_request(c, "GET", "/nowhere", NULL, &status, &body, &e);
	check(rc == -404 && status == 404 && body && strstr(body, "not_found"), "smoke_request: 404 with its body");
	smoke_free(body);

	char closed[64];
	snprintf(closed, sizeof(closed), "http://127.0.0.1:%d", closed_port());
	smoke_client *nobody;
	smoke_client_new(&nobody, closed, NULL, NULL);
	rc = smoke_complete(nobody, "Hi", &p, &r, &e);
	check(rc == SMOKE_E_CONNECT && strstr(e.message, closed) && e.http_status == 0,
	      "closed port: %d, '%s'", rc, e.message);
	char hs[16];
	rc = smoke_health(nobody, hs, sizeof(hs), &e);
	check(rc == SMOKE_E_CONNECT && strstr(e.message, closed), "closed port, health: '%s'", e.message);
	smoke_client_free(nobody);
}

static void test_abort(smoke_client *c)
{
	struct smoke_stats before, after;
	struct smoke_error e;
	smoke_stats(c, &before, NULL);
	struct smoke_params p;
	smoke_params_init(&p);
	p.max_tokens = 2000; /* far more than arrive before the abort is seen */
	p.temperature = 0.8;
	p.seed = 7;
	struct collected s;
	collected_init(&s);
	s.abort_after = 3;
	struct smoke_result *r = NULL;
	int rc = smoke_complete_stream(c, "Once upon a time", &p, on_chunk, &s, &r, &e);
	check(rc == SMOKE_E_ABORTED && s.chunks == 3 && r && r->text_len == s.len,
	      "callback abort: %d after %d chunks, partial text kept ('%s')", rc, s.chunks, r ? r->text : "");
	smoke_result_free(r);
	/* The daemon notices the closed connection at its next step; wait for
	 * it with a generous deadline rather than a fixed sleep. */
	time_t deadline = time(NULL) + 120;
	do {
		rc = smoke_stats(c, &after, &e);
		if (rc == 0 && after.active == 0 && after.cancelled > before.cancelled)
			break;
		usleep(200000);
	} while (time(NULL) < deadline);
	check(rc == 0 && after.active == 0 && after.cancelled == before.cancelled + 1 &&
	      after.kv_bytes == 0,
	      "aborted stream cancelled and freed (cancelled %lld -> %lld, active %lld)",
	      (long long)before.cancelled, (long long)after.cancelled, (long long)after.active);
	p.max_tokens = 1;
	rc = smoke_complete(c, "Hi", &p, &r, &e);
	check(rc == 0 && r->completion_tokens == 1, "daemon still serving after the abort");
	smoke_result_free(r);
}

/* The scripted server of test_client.py: each prompt selects a script. */
static void test_fake(const char *fake)
{
	smoke_client *c;
	smoke_client_new(&c, fake, NULL, NULL);
	smoke_client_set_timeouts(c, 10000, 60000);
	struct smoke_error e;
	struct smoke_result *r = NULL;
	struct collected s;
	collected_init(&s);
	int rc = smoke_complete_stream(c, "error-mid-stream", NULL, on_chunk, &s, &r, &e);
	check(rc == SMOKE_E_STREAM && !strcmp(s.text, "Hel") && strstr(e.message, "generation failed: boom") &&
	      !strcmp(e.type, "server_error") && r == NULL,
	      "error object mid-stream: %d, '%s' after '%s'", rc, e.message, s.text);
	collected_init(&s);
	rc = smoke_complete_stream(c, "no-done", NULL, on_chunk, &s, &r, &e);
	check(rc == SMOKE_E_PROTOCOL && strstr(e.message, "[DONE]"), "stream cut before [DONE]: '%s'", e.message);
	collected_init(&s);
	rc = smoke_complete_stream(c, "crlf", NULL, on_chunk, &s, &r, &e);
	check(rc == 0 && !strcmp(s.text, "one two three") && r && !strcmp(r->finish_reason, "stop"),
	      "CRLF events in odd pieces: '%s'", s.text);
	smoke_result_free(r);
	rc = smoke_complete(c, "not-json", NULL, &r, &e);
	check(rc == SMOKE_E_PROTOCOL, "a reply that is not JSON: %d '%s'", rc, e.message);
	rc = smoke_complete(c, "busy", NULL, &r, &e);
	check(rc == SMOKE_E_UNAVAILABLE && e.retry_after == 3 && !strcmp(e.err_code, "queue_full"),
	      "503 with Retry-After 3: %d retry_after %d", rc, e.retry_after);
	smoke_client_free(c);
}

int main(int argc, char **argv)
{
	if (argc != 8) {
		fprintf(stderr, "usage: %s URL KEY PROMPT N OFFLINE_FILE MODEL_ID FAKE_URL\n", argv[0]);
		return 2;
	}
	const char *url = argv[1], *key = argv[2], *prompt = argv[3];
	int n = atoi(argv[4]);
	char *offline = read_file(argv[5]);
	if (!offline) {
		fprintf(stderr, "cannot read %s\n", argv[5]);
		return 2;
	}
	printf("libsmoke %s\n", smoke_version());
	test_sse();
	smoke_client *c;
	struct smoke_error e;
	char v1[256];
	snprintf(v1, sizeof(v1), "%s/v1/", url);
	int rc = smoke_client_new(&c, v1, key, &e);
	check(rc == 0 && !strcmp(smoke_client_url(c), url), "client for '%s' uses base '%s'", v1,
	      c ? smoke_client_url(c) : e.message);
	if (rc)
		return 1;
	smoke_client_set_timeouts(c, 30000, 600000);
	test_generation(c, prompt, n, offline);
	test_chat(c);
	test_service(c, argv[6]);
	test_errors(c, url);
	test_abort(c);
	test_fake(argv[7]);
	smoke_client_free(c);
	free(offline);
	printf("%d passed, %d failed\n", n_pass, n_fail);
	return n_fail ? 1 : 0;
}
