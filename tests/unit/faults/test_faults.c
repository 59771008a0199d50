/* Allocation failure injected at every allocation site that loading a
 * model and serving a request reach (issue 17 part 3; docs/fault-injection.md).
 *
 * The executable is linked with --wrap for the allocators (alloc_inject.h):
 * for n = 1, 2, ... the n-th allocation of one phase fails, until a run of
 * the phase completes without reaching an n-th allocation.  Every run must
 * end in a clean error whose message says memory ran out (or, where the
 * daemon can do without that allocation, in a success whose output is the
 * reference's, token for token), and must give back every allocation it
 * made: the wrapper's count of live allocations returns to where it was
 * (a leak check without a sanitizer; a build with -Db_sanitize=address
 * runs LeakSanitizer on top).
 *
 *  - load: engine_open of the default model (Gemma 3 GGUF, SMOKE_MODEL;
 *    skipped without), a Hugging Face safetensors directory (the committed
 *    fixture llama-f32), a mixture of experts (the fixture qwen3moe-bf16),
 *    and llama-f32 again through the tiered store (RAM and device tiers,
 *    the prefetch thread).
 *  - serve: a live server (server_listen, worker_new, server_publish) on
 *    127.0.0.1 over llama-f32, spoken to over a socket: the whole life of
 *    one request (the body read, api parse and tokenise, worker_submit,
 *    admission, generation, the response) for a completion with stop
 *    strings and logprobs, a chat completion, and a streamed completion.
 *    Each run's answer is either 200 with the reference's text or 500/503
 *    with a JSON error naming memory; the next request (nothing failing)
 *    is answered correctly.
 * Each test prints how many runs it made and how many distinct call sites
 * it failed. */
#include <check.h>

#include "ck_main.h"
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc_inject.h"
#include "engine/chat.h"
#include "engine/engine.h"
#include "engine/worker.h"
#include "http/server.h"
#include "serve/options.h"
#include "util/log.h"

#define MAX_RUNS 20000      /* a phase that never ends is a failure */
#define MAX_SITES 4096

/* Distinct call sites failed, for the report. */
struct sites {
	int n;
	uintptr_t at[MAX_SITES];
};

/* With AINJ_SITES set, each site as its offset in the executable (for
 * addr2line -f -e test_faults: docs/fault-injection.md). */
static void sites_print(const struct sites *s, const char *what)
{
	if (!getenv("AINJ_SITES"))
		return;
	extern const char __executable_start[];
	for (int i = 0; i < s->n; i++)
		fprintf(stderr, "site %s 0x%lx\n", what, (unsigned long)(s->at[i] - (uintptr_t)__executable_start));
}

static void sites_add(struct sites *s, uintptr_t a)
{
	for (int i = 0; i < s->n; i++)
		if (s->at[i] == a)
			return;
	if (s->n < MAX_SITES)
		s->at[s->n++] = a;
}

static const char *fixture(const char *name)
{
	static char path[4096];
	const char *fx = getenv("SMOKE_FIXTURES");
	snprintf(path, sizeof(path), "%s/hf-models/%s", fx && *fx ? fx : "tests/fixtures", name);
	return path;
}

/* ---- load ---- */

#define N_GEN 8

struct collect {
	int32_t *ids;
	int n;
};

static int on_tok(void *ctx, const char *text, size_t len, int32_t tok)
{
	(void)text;
	(void)len;
	struct collect *c = ctx;
	if (c->n < N_GEN)
		c->ids[c->n++] = tok;
	return 0;
}

/* Greedy tokens after a fixed prompt. */
static int generate(struct engine *e, int32_t *out, struct smk_err *err)
{
	const char *prompt = "The quick brown fox jumps over the lazy dog. Once upon a time";
	int32_t ids[128];
	size_t n = 0;
	int rc = tokenizer_encode(e->tok, prompt, strlen(prompt), true, true, ids, 128, &n, err);
	if (rc)
		return rc;
	struct sampler_params sp;
	sampler_params_default(&sp);
	sp.temperature = 0;
	struct kvcache *kv = NULL;
	struct sampler *s = NULL;
	if ((rc = kvcache_new(&kv, e->model, (int)n + N_GEN + 1, e->be, err)) ||
	    (rc = sampler_new(&s, e->model->hp.n_vocab, &sp, err)))
		goto out;
	struct collect c = { out, 0 };
	struct gen_stats st;
	rc = engine_generate(e, kv, ids, (int)n, N_GEN, s, on_tok, &c, &st, err);
out:
	sampler_free(s);
	kvcache_free(kv);
	return rc;
}

/* Every allocation of engine_open(o) failed in turn. */
static void load_phase(const char *what, const struct engine_opts *o)
{
	struct smk_err err = { 0 };
	struct engine *e;
	int32_t ref[N_GEN] = { 0 }, got[N_GEN];
	long live0 = ainj_live();
	ck_assert_msg(engine_open(&e, o, &err) == 0, "%s: %s", o->model_path, err.msg);
	ck_assert_msg(generate(e, ref, &err) == 0, "%s", err.msg);
	engine_close(e);
	ck_assert_int_eq(ainj_live(), live0);
	static struct sites sites;
	sites.n = 0;
	int n, tolerated = 0;
	long seen = 0;
	for (n = 1; n <= MAX_RUNS; n++) {
		memset(&err, 0, sizeof(err));
		e = NULL;
		if (getenv("AINJ_VERBOSE"))
			fprintf(stderr, "%s: run %d\n", what, n);
		ainj_arm(n);
		int rc = engine_open(&e, o, &err);
		uintptr_t site;
		bool hit = ainj_disarm(&site, &seen);
		char name[160];
		ainj_site_name(site, name, sizeof(name));
		if (hit)
			sites_add(&sites, site);
		if (rc == 0) {
			/* Done without it (or the last run, nothing failed):
			 * the engine must compute what the reference did. */
			memset(got, 0, sizeof(got));
			int grc = generate(e, got, &err);
			ck_assert_msg(grc == 0, "%s: allocation %d (%s) failed at load, then: %s", what, n, name, err.msg);
			ck_assert_msg(!memcmp(got, ref, sizeof(ref)),
				      "%s: allocation %d (%s) failed at load: wrong output", what, n, name);
			engine_close(e);
			tolerated += hit;
		} else {
			ck_assert_msg(hit, "%s: load failed with nothing injected: %s", what, err.msg);
			ck_assert_msg(err.msg[0] && (strstr(err.msg, "memory") || strstr(err.msg, "allocat")),
				      "%s: allocation %d (%s) failed: the error does not say so: '%s' (%d)",
				      what, n, name, err.msg, rc);
		}
		ck_assert_msg(ainj_live() == live0, "%s: allocation %d (%s) failed: %ld allocations leaked",
			      what, n, name, ainj_live() - live0);
		if (!hit)
			break;
	}
	ck_assert_int_le(n, MAX_RUNS);
	sites_print(&sites, what);
	fprintf(stderr, "alloc faults, load %s: %d runs (%ld allocations), %d distinct sites, %d failures tolerated\n",
		what, n, seen, sites.n, tolerated);
}

START_TEST(test_load_gguf)
{
	const char *m = getenv("SMOKE_MODEL");
	if (!m || access(m, R_OK)) {
		fprintf(stderr, "SKIP: the default model is absent (set SMOKE_MODEL)\n");
		return;
	}
	struct engine_opts eo = { .model_path = m, .n_ctx = 64, .n_batch = 16, .max_logits = 1,
				  .n_threads = 2, .backend = BACKEND_CPU };
	load_phase("gemma-3-270m gguf", &eo);
}
END_TEST

START_TEST(test_load_safetensors)
{
	struct engine_opts eo = { .model_path = fixture("llama-f32"), .n_ctx = 64, .n_batch = 16,
				  .max_logits = 1, .n_threads = 2, .backend = BACKEND_CPU };
	load_phase("llama-f32 safetensors", &eo);
}
END_TEST

START_TEST(test_load_moe)
{
	struct engine_opts eo = { .model_path = fixture("qwen3moe-bf16"), .n_ctx = 64, .n_batch = 16,
				  .max_logits = 1, .n_threads = 2, .backend = BACKEND_CPU };
	load_phase("qwen3moe-bf16 safetensors", &eo);
}
END_TEST

START_TEST(test_load_tiered)
{
	struct wstore_opts wo;
	wstore_opts_default(&wo);
	wo.ram_budget = 3 << 20;
	wo.dev_budget = 2 << 20;
	struct engine_opts eo = { .model_path = fixture("llama-f32"), .n_ctx = 64, .n_batch = 16,
				  .max_logits = 1, .n_threads = 2, .backend = BACKEND_CPU, .weights = &wo };
	load_phase("llama-f32 tiered", &eo);
}
END_TEST

/* ---- serve ---- */

/* The daemon as serve/serve.c builds it, on llama-f32, port 0. */
static struct config scfg;
static struct server srv;
static struct engine *seng;
static struct worker *swork;
static struct run_options sro;

static void server_up(const char *model, const struct wstore_opts *weights)
{
	struct smk_err err = { 0 };
	config_init(&scfg);
	snprintf(scfg.server.host, sizeof(scfg.server.host), "127.0.0.1");
	scfg.server.port = 0;
	scfg.server.http_threads = 2;
	scfg.model.context = 512;  /* capped by the model (llama-f32: 128) */
	scfg.model.threads = 2;
	scfg.limits.kv_budget = 4 << 20;
	log_init(CONFIG_LOG_WARN);
	if (weights) {
		scfg.memory.ram_cache = weights->ram_budget;
		scfg.memory.gpu_memory = weights->dev_budget;
	}
	options_from_config(&sro, &scfg, model, OPTIONS_DAEMON);
	sro.engine.backend = BACKEND_CPU;
	if (weights) {
		sro.weights.pread_fn = weights->pread_fn;
		sro.weights.io = weights->io;
	}
	ck_assert_msg(server_listen(&srv, &scfg, sro.engine.model_path, "model", &err) == 0, "%s", err.msg);
	ck_assert_msg(engine_open(&seng, &sro.engine, &err) == 0, "%s", err.msg);
	ck_assert_msg(worker_new(&swork, seng, &sro.worker, &err) == 0, "%s", err.msg);
	server_publish(&srv, seng, swork, chat_detect(seng->model->gguf, seng->tok));
}

static void server_down(void)
{
	server_stop(&srv, 0);
	worker_free(swork);
	engine_close(seng);
	memset(&srv, 0, sizeof(srv));
}

/* One request over a fresh connection (closed after it), the raw
 * response into resp (NUL-terminated).  This thread's allocations (Check's)
 * are not counted meanwhile: the countdown counts the daemon's alone. */
static char resp[1 << 16];

static int http_post_counted(const char *path, const char *body)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)srv.port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	static char req[4096];
	int n = snprintf(req, sizeof(req),
			 "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
			 path, srv.port, strlen(body), body);
	ck_assert_int_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
	size_t got = 0;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ck_assert_msg(poll(&p, 1, 30000) == 1, "no answer in 30 s");
		ssize_t r = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
		if (r <= 0)
			break;
		got += (size_t)r;
		ck_assert_uint_lt(got, sizeof(resp) - 1);
	}
	resp[got] = 0;
	close(fd);
	int status = 0;
	if (sscanf(resp, "HTTP/1.1 %d", &status) != 1)
		status = 0;
	return status;
}

static int http_post(const char *path, const char *body)
{
	ainj_thread_counted(false);
	int status = http_post_counted(path, body);
	ainj_thread_counted(true);
	return status;
}

/* The body of resp after the head (chunked framing removed for a stream:
 * the events are found by their "data: " prefix, so the chunk sizes in
 * between do not matter). */
static const char *resp_body(void)
{
	const char *b = strstr(resp, "\r\n\r\n");
	return b ? b + 4 : "";
}

/* What a response says, reduced to what must not differ between runs:
 * the output text, the finish reason, the logprobs; or the error. */
struct answer {
	int status;
	char out[8192];
	bool error_memory;     /* an error object (whole body or an event) that names memory */
	bool done;             /* stream: [DONE] came */
};

static void append(char *dst, size_t cap, const char *s)
{
	size_t n = strlen(dst);
	snprintf(dst + n, cap - n, "%s", s);
}

static void take_object(struct answer *a, json_t *o, bool chat)
{
	json_t *err = json_object_get(o, "error");
	if (err) {
		const char *m = json_string_value(json_object_get(err, "message"));
		a->error_memory = m && strstr(m, "memory");
		append(a->out, sizeof(a->out), "ERROR:");
		append(a->out, sizeof(a->out), m ? m : "?");
		return;
	}
	json_t *c0 = json_array_get(json_object_get(o, "choices"), 0);
	json_t *msg = json_object_get(c0, chat ? (json_object_get(c0, "delta") ? "delta" : "message") : "");
	const char *text = chat ? json_string_value(json_object_get(msg, "content"))
				: json_string_value(json_object_get(c0, "text"));
	if (text)
		append(a->out, sizeof(a->out), text);
	json_t *calls = json_object_get(msg, "tool_calls");
	if (json_is_array(calls)) {
		/* A call's id is random: the rest must be the reference's. */
		size_t i;
		json_t *call;
		json_array_foreach(calls, i, call)
			json_object_del(call, "id");
		char *d = json_dumps(calls, JSON_SORT_KEYS | JSON_COMPACT);
		append(a->out, sizeof(a->out), "|tool_calls:");
		append(a->out, sizeof(a->out), d ? d : "?");
		free(d);
	}
	const char *fin = json_string_value(json_object_get(c0, "finish_reason"));
	if (fin) {
		append(a->out, sizeof(a->out), "|finish:");
		append(a->out, sizeof(a->out), fin);
	}
	json_t *lp = json_object_get(c0, "logprobs");
	if (lp && !json_is_null(lp)) {
		char *d = json_dumps(lp, JSON_SORT_KEYS | JSON_COMPACT);
		append(a->out, sizeof(a->out), "|logprobs:");
		append(a->out, sizeof(a->out), d ? d : "?");
		free(d);
	}
}

static void answer_of(struct answer *a, int status, bool stream, bool chat)
{
	memset(a, 0, sizeof(*a));
	a->status = status;
	const char *b = resp_body();
	if (!stream || status != 200) {
		json_t *o = json_loads(b, 0, NULL);
		if (o)
			take_object(a, o, chat);
		else
			append(a->out, sizeof(a->out), "NOT JSON");
		json_decref(o);
		return;
	}
	for (const char *p = strstr(b, "data: "); p; p = strstr(p + 6, "data: ")) {
		if (!strncmp(p + 6, "[DONE]", 6)) {
			a->done = true;
			break;
		}
		const char *end = strstr(p, "\n\n");
		json_t *o = end ? json_loadb(p + 6, (size_t)(end - p - 6), 0, NULL) : NULL;
		if (o)
			take_object(a, o, chat);
		else
			append(a->out, sizeof(a->out), "|BAD EVENT");
		json_decref(o);
	}
}

struct serve_case {
	const char *name, *path, *body;
	bool stream, chat;
	const char *test_model;   /* in SMOKE_TEST_MODELS (skipped without); NULL: llama-f32 */
};

static const struct serve_case serve_cases[] = {
	{ "completion", "/v1/completions",
	  "{\"prompt\": \"The quick brown fox\", \"max_tokens\": 6, \"temperature\": 0,"
	  " \"stop\": [\"zz\", \"qq\"], \"logprobs\": 2}", false, false, NULL },
	{ "chat", "/v1/chat/completions",
	  "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
	  " {\"role\": \"user\", \"content\": \"Name a colour.\"}], \"max_tokens\": 6, \"temperature\": 0}",
	  false, true, NULL },
	{ "stream", "/v1/completions",
	  "{\"prompt\": \"Once upon a time\", \"max_tokens\": 6, \"temperature\": 0, \"stream\": true,"
	  " \"stream_options\": {\"include_usage\": true}}", true, false, NULL },
	/* Tool calls (http/tools.c, engine/toolcall.c): the tools in the
	 * prompt, the call parsed out of the output; a chatml model whose
	 * context holds the tools' preamble. */
	{ "tools", "/v1/chat/completions",
	  "{\"messages\": [{\"role\": \"user\", \"content\": \"Weather in Paris?\"}], \"max_tokens\": 16,"
	  " \"temperature\": 0, \"tool_choice\": \"required\", \"tools\": [{\"type\": \"function\", \"function\":"
	  " {\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\", \"properties\":"
	  " {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}]}", false, true, "tiny-qwen2.gguf" },
};

/* The model a case runs on, or NULL (skip). */
static const char *case_model(const struct serve_case *c)
{
	if (!c->test_model)
		return fixture("llama-f32");
	static char path[4096];
	const char *dir = getenv("SMOKE_TEST_MODELS");
	snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : ".", c->test_model);
	if (access(path, R_OK)) {
		fprintf(stderr, "SKIP: %s: %s is absent (SMOKE_TEST_MODELS)\n", c->name, path);
		return NULL;
	}
	return path;
}

/* Wait until the server holds no request: the last response's memory
 * is given back after the client has read it.  A minute at most (a
 * loaded machine); a leak is what is left after it. */
static void settle(long live_want)
{
	for (int i = 0; i < 6000 && (atomic_load(&srv.inflight) || ainj_live() != live_want); i++)
		usleep(10000);
}

/* The same where the count to reach is not known yet: until it stays. */
static long settle_any(void)
{
	long prev = -1;
	for (int i = 0; i < 3000; i++) {
		long cur = ainj_live();
		if (!atomic_load(&srv.inflight) && cur == prev)
			break;
		prev = cur;
		usleep(20000);
	}
	return ainj_live();
}

START_TEST(test_serve)
{
	const struct serve_case *c = &serve_cases[_i];
	signal(SIGPIPE, SIG_IGN);
	const char *model = case_model(c);
	if (!model)
		return;
	long live_start = ainj_live();
	server_up(model, NULL);
	struct answer ref, got;
	answer_of(&ref, http_post(c->path, c->body), c->stream, c->chat);
	ck_assert_msg(ref.status == 200 && !strstr(ref.out, "ERROR") && (!c->stream || ref.done),
		      "%s: %d %s", c->name, ref.status, resp);
	long live0 = settle_any();
	static struct sites sites;
	sites.n = 0;
	int n, tolerated = 0;
	long seen = 0;
	for (n = 1; n <= MAX_RUNS; n++) {
		if (getenv("AINJ_VERBOSE"))
			fprintf(stderr, "%s: run %d\n", c->name, n);
		ainj_arm(n);
		int status = http_post(c->path, c->body);
		uintptr_t site;
		bool hit = ainj_disarm(&site, &seen);
		char name[160];
		ainj_site_name(site, name, sizeof(name));
		settle(live0);
		ck_assert_msg(ainj_live() == live0, "%s: allocation %d (%s) failed: %ld allocations leaked",
			      c->name, n, name, ainj_live() - live0);
		answer_of(&got, status, c->stream, c->chat);
		if (hit)
			sites_add(&sites, site);
		if (status == 200 && !got.error_memory) {
			/* Served in spite of it: exactly the reference. */
			ck_assert_msg(!strcmp(got.out, ref.out) && got.done == ref.done,
				      "%s: allocation %d (%s) failed: wrong output '%s', want '%s'",
				      c->name, n, name, got.out, ref.out);
			tolerated += hit;
		} else {
			ck_assert_msg(hit, "%s: failed with nothing injected: %s", c->name, resp);
			/* A clear error: 500 or 503 with a JSON error naming
			 * memory, or (a stream already under way) an error
			 * event after text that is the reference's beginning. */
			ck_assert_msg((status == 500 || status == 503 || (status == 200 && c->stream)) &&
				      got.error_memory,
				      "%s: allocation %d (%s) failed: no clear error: status %d, '%s'\n%s",
				      c->name, n, name, status, got.out, resp);
			if (status == 200) {
				size_t k = strcspn(got.out, "|E");
				ck_assert_msg(!strncmp(got.out, ref.out, k), "%s: allocation %d (%s) failed: wrong output '%s'",
					      c->name, n, name, got.out);
			}
		}
		/* The next request is served, and right. */
		answer_of(&got, http_post(c->path, c->body), c->stream, c->chat);
		ck_assert_msg(!strcmp(got.out, ref.out), "%s: after allocation %d (%s) failed: '%s'",
			      c->name, n, name, got.out);
		settle(live0);
		if (!hit)
			break;
	}
	ck_assert_int_le(n, MAX_RUNS);
	sites_print(&sites, c->name);
	fprintf(stderr, "alloc faults, serve %s: %d runs (%ld allocations), %d distinct sites, %d failures tolerated\n",
		c->name, n, seen, sites.n, tolerated);
	server_down();
	ck_assert_msg(ainj_live() == live_start, "the server's life leaked %ld allocations",
		      ainj_live() - live_start);
}
END_TEST

/* ---- tier-0 read errors while serving ---- */

enum { IO_PASS, IO_EIO, IO_SHORT, IO_EOF };
static atomic_int io_mode;
static atomic_long io_calls;

/* The tiered store's pread hook (wstore_opts.pread_fn): EIO, a read of
 * half what was asked (legal: the store must read the rest), or the end
 * of the file (what a truncated file gives). */
static ssize_t faulty_pread(int fd, void *buf, size_t n, off_t off)
{
	atomic_fetch_add(&io_calls, 1);
	switch (atomic_load(&io_mode)) {
	case IO_EIO:
		errno = EIO;
		return -1;
	case IO_SHORT:
		return pread(fd, buf, n > 1 ? n / 2 : n, off);
	case IO_EOF:
		return 0;
	}
	return pread(fd, buf, n, off);
}

/* One request in mode m: the answer, and how many reads it made. */
static long io_request(const struct serve_case *c, int m, struct answer *a)
{
	atomic_store(&io_mode, m);
	long before = atomic_load(&io_calls);
	answer_of(a, http_post(c->path, c->body), c->stream, c->chat);
	atomic_store(&io_mode, IO_PASS);
	return atomic_load(&io_calls) - before;
}

START_TEST(test_serve_io)
{
	const struct serve_case *c = &serve_cases[_i];
	signal(SIGPIPE, SIG_IGN);
	/* Budgets of the largest block (and a page): every request reads
	 * most of the model from tier 0 again. */
	struct model *m;
	ck_assert_int_eq(model_load(&m, fixture("llama-f32"), NULL), 0);
	uint64_t big = 0;
	for (int i = 0; i < m->n_blocks; i++)
		big = m->blocks[i].nbytes > big ? m->blocks[i].nbytes : big;
	model_free(m);
	struct wstore_opts wo = { .ram_budget = big + 4096, .dev_budget = big + 4096,
				  .pread_fn = faulty_pread, .io = WSTORE_IO_PREAD };
	long live_start = ainj_live();
	server_up(fixture("llama-f32"), &wo);
	struct answer ref, got;
	ck_assert_int_gt(io_request(c, IO_PASS, &ref), 0);
	ck_assert_msg(ref.status == 200 && !strstr(ref.out, "ERROR"), "%s: %d %s", c->name, ref.status, resp);
	ck_assert_int_gt(io_request(c, IO_PASS, &got), 0);
	ck_assert_str_eq(got.out, ref.out);
	static const struct { int mode; const char *says; } bad[] = {
		{ IO_EIO, "Input/output error" }, { IO_EOF, "cut short" },
	};
	for (int k = 0; k < 2; k++) {
		io_request(c, bad[k].mode, &got);
		/* A clear error naming the file and the reason: 500 before
		 * the response started, an error event in a stream. */
		ck_assert_msg(got.status == (c->stream ? 200 : 500) && strstr(got.out, "ERROR") &&
			      strstr(got.out, bad[k].says) && strstr(got.out, "llama-f32"),
			      "%s, %s: %d '%s'", c->name, bad[k].says, got.status, got.out);
		if (c->stream) {
			size_t n = strcspn(got.out, "|E");
			ck_assert_msg(!strncmp(got.out, ref.out, n), "%s: wrong output '%s'", c->name, got.out);
		}
		/* The next request is served, and right. */
		io_request(c, IO_PASS, &got);
		ck_assert_msg(!strcmp(got.out, ref.out), "%s after %s: '%s'", c->name, bad[k].says, got.out);
	}
	/* Short reads are no error: the same output. */
	ck_assert_int_gt(io_request(c, IO_SHORT, &got), 0);
	ck_assert_msg(got.status == 200 && !strcmp(got.out, ref.out), "%s, short reads: %d '%s'",
		      c->name, got.status, got.out);
	settle_any();
	server_down();
	ck_assert_msg(ainj_live() == live_start, "leaked %ld allocations", ainj_live() - live_start);
}
END_TEST

int main(void)
{
	ainj_init();
	Suite *s = suite_create("faults");
	TCase *tc = tcase_create("load");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_load_gguf);
	tcase_add_test(tc, test_load_safetensors);
	tcase_add_test(tc, test_load_moe);
	tcase_add_test(tc, test_load_tiered);
	suite_add_tcase(s, tc);
	tc = tcase_create("serve");
	tcase_set_timeout(tc, 600);
	tcase_add_loop_test(tc, test_serve, 0, (int)(sizeof(serve_cases) / sizeof(serve_cases[0])));
	suite_add_tcase(s, tc);
	tc = tcase_create("io");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_serve_io, 0, 3);  /* the cases on llama-f32 */
	suite_add_tcase(s, tc);
	return ck_run(s);
}
