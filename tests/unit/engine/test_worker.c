/* worker tests: the daemon's compute thread without the HTTP server.
 *  - kv_pool: a request within limits.kv_budget that finds the KV pool's
 *    free bytes split waits until a running sequence ends (tiny-llama-spm
 *    from SMOKE_TEST_MODELS; skipped without).
 *  - limits, cancel, drain: admission up to max_active, the queue limit,
 *    the KV budget, worker_cancel of a queued and of a running job,
 *    worker_drain with and without a grace (the committed fixture
 *    tests/fixtures/hf-models/llama-f32: never skipped).  The test holds
 *    the worker thread inside a job's token callback (a test-only liberty
 *    with the "do not block" rule) to look at a known state; every
 *    assertion is on counts and bytes, none on time. */
#include <check.h>

#include "ck_main.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/worker.h"
#include "exec/kvpool.h"

#define A KVPOOL_ALIGN

/* ---- the pool in the worker ---- */

/* Jobs J0..J4 of the scenario below, and what their callbacks saw. */
struct frag {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct worker *w;
	bool gate_open;          /* main has queued J1..J4: J0 may go on */
	int n_done;
	struct worker_result res[5];
	int n_tok[5];
	bool seen;               /* J2's second token came */
	struct worker_stats at_j2_2;
};

struct frag_job {
	struct worker_job job;
	struct frag *f;
	int id;
	int32_t prompt[64];
};

static void frag_text(void *ctx, const char *text, size_t len, const struct worker_token *tok)
{
	struct frag_job *fj = ctx;
	struct frag *f = fj->f;
	(void)text;
	(void)len;
	if (!tok)
		return;
	pthread_mutex_lock(&f->lock);
	int n = ++f->n_tok[fj->id];
	if (fj->id == 0) {
		/* Hold the worker thread (a test-only liberty with the "do
		 * not block" rule) until J1..J4 wait in the queue, so that
		 * they are admitted in one scan, in order. */
		while (!f->gate_open)
			pthread_cond_wait(&f->cond, &f->lock);
	}
	pthread_mutex_unlock(&f->lock);
	if (fj->id == 2 && n == 2) {
		/* One admission scan has run since J1 and J3 ended. */
		struct worker_stats st;
		worker_get_stats(f->w, &st);
		pthread_mutex_lock(&f->lock);
		f->at_j2_2 = st;
		f->seen = true;
		pthread_mutex_unlock(&f->lock);
	}
}

static void frag_done(void *ctx, const struct worker_result *r)
{
	struct frag_job *fj = ctx;
	struct frag *f = fj->f;
	pthread_mutex_lock(&f->lock);
	f->res[fj->id] = *r;
	f->n_done++;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

static void frag_submit(struct frag *f, struct frag_job *fj, int id, int n_prompt, int max_tokens)
{
	struct smk_err err = { 0 };
	memset(&fj->job, 0, sizeof(fj->job));
	fj->f = f;
	fj->id = id;
	for (int i = 0; i < n_prompt; i++)
		fj->prompt[i] = i ? 100 + (id * 37 + i * 11) % 200 : 1;
	fj->job.prompt = fj->prompt;
	fj->job.n_prompt = n_prompt;
	fj->job.max_tokens = max_tokens;
	fj->job.sp.temperature = 0; /* greedy */
	fj->job.sp.top_p = 1;
	fj->job.sp.repeat_penalty = 1;
	fj->job.n_logprobs = -1;
	fj->job.on_text = frag_text;
	fj->job.on_done = frag_done;
	fj->job.ctx = fj;
	ck_assert_msg(worker_submit(f->w, &fj->job, &err) == 0, "J%d: %s", id, err.msg);
}

/* Budget 3U, U = the cache of 16 positions; three caches may run at once.
 * J0 (16 positions) holds the worker while J1..J4 are queued; then J1, J2,
 * J3 (U each) are placed at 0, U and 2U.  J1 and J3 end after one token,
 * J2 runs on.  J4 (2U) is within the budget (U used) but the free bytes
 * are two pieces of about U: it must wait until J2 ends, instead of being
 * admitted over J2's cache.  A request over the whole budget is still
 * refused at submit. */
START_TEST(worker_waits_for_a_free_extent)
{
	const char *dir = getenv("SMOKE_TEST_MODELS");
	char path[1024];
	snprintf(path, sizeof(path), "%s/tiny-llama-spm.gguf", dir ? dir : "");
	FILE *probe = dir ? fopen(path, "rb") : NULL;
	if (!probe) {
		fprintf(stderr, "SKIP worker_waits_for_a_free_extent: %s not found (scripts/make-test-models)\n",
			path);
		return;
	}
	fclose(probe);
	struct smk_err err = { 0 };
	struct engine *e;
	struct engine_opts eo = { .model_path = path, .n_ctx = 64, .n_batch = 32, .max_logits = 4,
				  .n_threads = 1, .backend = BACKEND_CPU };
	ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);
	const uint64_t unit = kvcache_bytes(e->model, 16);
	struct frag f = { .n_done = 0 };
	pthread_mutex_init(&f.lock, NULL);
	pthread_cond_init(&f.cond, NULL);
	struct worker_opts wo = { .max_active = 3, .queue_cap = 8, .kv_budget = 3 * unit };
	ck_assert_msg(worker_new(&f.w, e, &wo, &err) == 0, "%s", err.msg);

	static struct frag_job jobs[6];
	frag_submit(&f, &jobs[0], 0, 15, 1);
	/* J0's token comes only once it runs: wait for it to be admitted */
	for (;;) {
		struct worker_stats st;
		worker_get_stats(f.w, &st);
		if (st.active == 1 && st.queue_depth == 0)
			break;
		usleep(1000);
	}
	frag_submit(&f, &jobs[1], 1, 15, 1);
	frag_submit(&f, &jobs[2], 2, 1, 15);
	frag_submit(&f, &jobs[3], 3, 15, 1);
	frag_submit(&f, &jobs[4], 4, 31, 1);
	/* more than the whole budget: refused at once, as before the pool */
	memset(&jobs[5], 0, sizeof(jobs[5]));
	jobs[5].f = &f;
	jobs[5].id = 5;
	jobs[5].prompt[0] = 1;
	jobs[5].job = (struct worker_job){ .prompt = jobs[5].prompt, .n_prompt = 1, .max_tokens = 63,
					   .sp = jobs[1].job.sp, .n_logprobs = -1,
					   .on_text = frag_text, .on_done = frag_done, .ctx = &jobs[5] };
	ck_assert_int_eq(worker_submit(f.w, &jobs[5].job, &err), -E2BIG);
	ck_assert_msg(strstr(err.msg, "limits.kv_budget") != NULL, "%s", err.msg);

	pthread_mutex_lock(&f.lock);
	f.gate_open = true;
	pthread_cond_broadcast(&f.cond);
	while (f.n_done < 5)
		pthread_cond_wait(&f.cond, &f.lock);
	pthread_mutex_unlock(&f.lock);

	for (int i = 0; i < 5; i++)
		ck_assert_msg(f.res[i].finish == WORKER_FINISH_LENGTH || f.res[i].finish == WORKER_FINISH_STOP,
			      "J%d ended %s: %s", i, worker_finish_name(f.res[i].finish), f.res[i].err.msg);
	ck_assert_msg(f.seen, "J2 ended after %d token(s) (%s): the scenario needs two",
		      f.n_tok[2], worker_finish_name(f.res[2].finish));
	/* J2 alone ran at its second token: J4 waited in the queue although
	 * U + 2U is within the budget */
	ck_assert_int_eq(f.at_j2_2.active, 1);
	ck_assert_int_eq(f.at_j2_2.queue_depth, 1);
	ck_assert_uint_eq(f.at_j2_2.kv_bytes, unit);
	/* and it ran once J2 had ended */
	ck_assert_int_eq(f.n_tok[4], 1);
	struct worker_stats st;
	worker_get_stats(f.w, &st);
	ck_assert_uint_eq(st.kv_bytes, 0);
	ck_assert_int_eq(st.active, 0);
	ck_assert_uint_eq(st.rejected_size, 1);
	worker_free(f.w);
	engine_close(e);
	pthread_mutex_destroy(&f.lock);
	pthread_cond_destroy(&f.cond);
}
END_TEST

/* ---- limits, cancellation and drain, on the committed fixture ---- */

/* The test's side of the worker: jobs whose token callbacks may wait at
 * a gate the test opens, and what their callbacks saw. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct engine *e;
	struct worker *w;
	int n_held;              /* callbacks waiting at the gate now */
	int n_done;              /* on_done calls, all jobs */
	int max_active_seen;     /* the most active sequences a callback saw */
};

struct gjob {
	struct worker_job job;
	struct gate *g;
	int id;
	bool hold;               /* the next token's callback waits until cleared */
	bool held;               /* its callback waits at the gate now */
	int cancel_at;           /* the callback cancels its job at this token (0: never) */
	int n_tok, n_done;
	struct worker_result res;
	int32_t prompt[64];
};

static void g_text(void *ctx, const char *text, size_t len, const struct worker_token *tok)
{
	struct gjob *j = ctx;
	struct gate *g = j->g;
	(void)text;
	(void)len;
	if (!tok)
		return;
	struct worker_stats st;
	worker_get_stats(g->w, &st);
	pthread_mutex_lock(&g->lock);
	j->n_tok++;
	if (st.active > g->max_active_seen)
		g->max_active_seen = st.active;
	if (j->hold) {
		j->held = true;
		g->n_held++;
		pthread_cond_broadcast(&g->cond);
		while (j->hold)
			pthread_cond_wait(&g->cond, &g->lock);
		j->held = false;
		g->n_held--;
		pthread_cond_broadcast(&g->cond);
	}
	bool cancel = j->cancel_at && j->n_tok == j->cancel_at;
	pthread_mutex_unlock(&g->lock);
	if (cancel)
		worker_cancel(g->w, &j->job);  /* allowed from a callback */
}

static void g_done(void *ctx, const struct worker_result *r)
{
	struct gjob *j = ctx;
	struct gate *g = j->g;
	pthread_mutex_lock(&g->lock);
	j->res = *r;
	j->n_done++;
	g->n_done++;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* The fixture's engine (64 positions) and a worker whose kv_budget holds
 * n_caches caches of `positions` positions (0: the whole context). */
static void g_open(struct gate *g, int max_active, int queue_cap, int n_caches, int positions)
{
	const char *fx = getenv("SMOKE_FIXTURES");
	char path[4096];
	snprintf(path, sizeof(path), "%s/hf-models/llama-f32", fx && *fx ? fx : "tests/fixtures");
	struct smk_err err = { 0 };
	struct engine_opts eo = { .model_path = path, .n_ctx = 64, .n_batch = 32, .max_logits = 8,
				  .n_threads = 1, .backend = BACKEND_CPU };
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	ck_assert_msg(engine_open(&g->e, &eo, &err) == 0, "%s: %s", path, err.msg);
	ck_assert_int_ge(g->e->n_ctx, 48);
	const uint64_t kv_budget = (uint64_t)n_caches *
				   kvcache_bytes(g->e->model, positions ? positions : g->e->n_ctx);
	struct worker_opts wo = { .max_active = max_active, .queue_cap = queue_cap, .kv_budget = kv_budget };
	ck_assert_msg(worker_new(&g->w, g->e, &wo, &err) == 0, "%s", err.msg);
}

static void g_close(struct gate *g)
{
	worker_free(g->w);
	engine_close(g->e);
	pthread_mutex_destroy(&g->lock);
	pthread_cond_destroy(&g->cond);
}

/* A greedy job of n_prompt tokens (ids valid for the fixture). */
static void g_job(struct gate *g, struct gjob *j, int id, int n_prompt, int max_tokens, bool hold)
{
	ck_assert_int_le(n_prompt, 64);
	memset(j, 0, sizeof(*j));
	j->g = g;
	j->id = id;
	j->hold = hold;
	const int n_vocab = g->e->model->hp.n_vocab;
	for (int i = 0; i < n_prompt; i++)
		j->prompt[i] = 3 + (id * 37 + i * 11) % (n_vocab - 3);
	j->job.prompt = j->prompt;
	j->job.n_prompt = n_prompt;
	j->job.max_tokens = max_tokens;
	j->job.sp.temperature = 0;
	j->job.sp.top_p = 1;
	j->job.sp.repeat_penalty = 1;
	j->job.n_logprobs = -1;
	j->job.on_text = g_text;
	j->job.on_done = g_done;
	j->job.ctx = j;
}

static void g_submit_ok(struct gate *g, struct gjob *j)
{
	struct smk_err err = { 0 };
	ck_assert_msg(worker_submit(g->w, &j->job, &err) == 0, "job %d: %s", j->id, err.msg);
}

/* Until n callbacks wait at the gate: the worker thread is inside one. */
static void g_wait_held(struct gate *g, int n)
{
	pthread_mutex_lock(&g->lock);
	while (g->n_held < n)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

/* Open j's gate and wait until its callback has left it (so that
 * g_wait_held then sees the next one). */
static void g_release(struct gate *g, struct gjob *j)
{
	pthread_mutex_lock(&g->lock);
	j->hold = false;
	pthread_cond_broadcast(&g->cond);
	while (j->held)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static void g_wait_done(struct gate *g, int n)
{
	pthread_mutex_lock(&g->lock);
	while (g->n_done < n)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static struct worker_stats g_stats(struct gate *g)
{
	struct worker_stats st;
	worker_get_stats(g->w, &st);
	return st;
}

static bool finished_normally(const struct worker_result *r)
{
	return r->finish == WORKER_FINISH_LENGTH || r->finish == WORKER_FINISH_STOP;
}

/* A job the greedy fixture runs to max_tokens without an end token, so
 * that a cancellation, not the model, is what ends the jobs below. */
static void g_check_no_eog(struct gate *g, int id, int n_prompt, int max_tokens)
{
	static struct gjob probe;
	g_job(g, &probe, id, n_prompt, max_tokens, false);
	int before = g->n_done;
	g_submit_ok(g, &probe);
	g_wait_done(g, before + 1);
	ck_assert_msg(probe.res.finish == WORKER_FINISH_LENGTH && probe.res.n_gen == max_tokens,
		      "the fixture ends job %d's text after %d tokens (%s): the test needs %d", id,
		      probe.res.n_gen, worker_finish_name(probe.res.finish), max_tokens);
}

/* max_active 2: J0 holds the worker while J1..J4 queue; once J0 ends, one
 * admission scan takes J1 and J2 and leaves J3, J4 queued, and no callback
 * ever sees more than two sequences. */
START_TEST(worker_admits_up_to_max_active)
{
	struct gate g;
	g_open(&g, 2, 8, 3, 0);
	static struct gjob j[5];
	g_job(&g, &j[0], 0, 4, 1, true);
	g_submit_ok(&g, &j[0]);
	g_wait_held(&g, 1);
	struct worker_stats st = g_stats(&g);
	ck_assert_int_eq(st.active, 1);
	ck_assert_int_eq(st.queue_depth, 0);
	ck_assert_uint_eq(st.kv_bytes, kvcache_bytes(g.e->model, 4 + 1));
	for (int i = 1; i < 5; i++) {
		g_job(&g, &j[i], i, 3 + i, 2, true);
		g_submit_ok(&g, &j[i]);
	}
	st = g_stats(&g);
	ck_assert_int_eq(st.queue_depth, 4);
	ck_assert_int_eq(st.active, 1);
	ck_assert_uint_eq(st.admitted, 1);
	ck_assert_uint_eq(st.submitted, 5);
	g_release(&g, &j[0]);
	/* the next round's first token of J1 or J2 holds the worker again */
	g_wait_held(&g, 1);
	st = g_stats(&g);
	ck_assert_int_eq(st.active, 2);
	ck_assert_int_eq(st.max_active, 2);
	ck_assert_int_eq(st.queue_depth, 2);
	ck_assert_uint_eq(st.admitted, 3);
	ck_assert_uint_eq(st.kv_bytes, kvcache_bytes(g.e->model, 4 + 2) + kvcache_bytes(g.e->model, 5 + 2));
	pthread_mutex_lock(&g.lock);
	ck_assert_int_eq(j[3].n_tok + j[4].n_tok, 0);
	pthread_mutex_unlock(&g.lock);
	for (int i = 1; i < 5; i++)
		g_release(&g, &j[i]);
	g_wait_done(&g, 5);
	for (int i = 0; i < 5; i++) {
		ck_assert_msg(finished_normally(&j[i].res), "J%d ended %s", i, worker_finish_name(j[i].res.finish));
		ck_assert_int_eq(j[i].n_done, 1);
		ck_assert_int_eq(j[i].res.n_prompt, j[i].job.n_prompt);
		ck_assert_int_eq(j[i].res.n_gen, j[i].n_tok);
	}
	ck_assert_int_eq(g.max_active_seen, 2);
	st = g_stats(&g);
	ck_assert_uint_eq(st.admitted, 5);
	ck_assert_uint_eq(st.completed, 5);
	ck_assert_int_eq(st.active, 0);
	ck_assert_int_eq(st.queue_depth, 0);
	ck_assert_uint_eq(st.kv_bytes, 0);
	uint64_t prompt = 0, gen = 0;
	for (int i = 0; i < 5; i++) {
		prompt += (uint64_t)j[i].job.n_prompt;
		gen += (uint64_t)j[i].res.n_gen;
	}
	ck_assert_uint_eq(st.prompt_tokens, prompt);
	ck_assert_uint_eq(st.gen_tokens, gen);
	g_close(&g);
}
END_TEST

/* queue_cap waiting jobs, then -EAGAIN (no callback, rejected_full
 * counted); with queue_cap 0 a job is still taken when a sequence is
 * free, and refused when none is. */
START_TEST(worker_queue_limit)
{
	for (int cap = 0; cap <= 2; cap += 2) {
		struct gate g;
		g_open(&g, 1, cap, 2, 0);
		static struct gjob j[4];
		g_job(&g, &j[0], 0, 4, 1, true);
		g_submit_ok(&g, &j[0]);
		g_wait_held(&g, 1);
		for (int i = 1; i <= cap; i++) {
			g_job(&g, &j[i], i, 4, 1, false);
			g_submit_ok(&g, &j[i]);
		}
		struct gjob *over = &j[cap + 1];
		g_job(&g, over, cap + 1, 4, 1, false);
		struct smk_err err = { 0 };
		ck_assert_int_eq(worker_submit(g.w, &over->job, &err), -EAGAIN);
		ck_assert_msg(strstr(err.msg, "queue") != NULL, "%s", err.msg);
		struct worker_stats st = g_stats(&g);
		ck_assert_int_eq(st.queue_depth, cap);
		ck_assert_int_eq(st.queue_cap, cap);
		ck_assert_uint_eq(st.rejected_full, 1);
		ck_assert_uint_eq(st.submitted, (uint64_t)cap + 2);
		g_release(&g, &j[0]);
		g_wait_done(&g, cap + 1);
		/* a place is free again */
		g_job(&g, over, cap + 1, 4, 1, false);
		g_submit_ok(&g, over);
		g_wait_done(&g, cap + 2);
		st = g_stats(&g);
		ck_assert_uint_eq(st.completed, (uint64_t)cap + 2);
		ck_assert_uint_eq(st.rejected_full, 1);
		ck_assert_uint_eq(st.admitted, (uint64_t)cap + 2);
		for (int i = 0; i <= cap + 1; i++)
			ck_assert_int_eq(j[i].n_done, 1);
		g_close(&g);
	}
}
END_TEST

/* kv_budget of one 16-position cache: a job of 16 positions runs; one of
 * 17 is refused at submit naming limits.kv_budget and both byte counts
 * (no callback; rejected_size counted); a job past the context is refused
 * as well. */
START_TEST(worker_kv_budget)
{
	struct gate g;
	g_open(&g, 2, 4, 1, 16);
	const uint64_t unit = kvcache_bytes(g.e->model, 16);
	ck_assert_uint_lt(unit, kvcache_bytes(g.e->model, 17));
	struct smk_err err = { 0 };

	static struct gjob j[4];
	g_job(&g, &j[0], 0, 8, 9, false);   /* 17 positions */
	ck_assert_int_eq(worker_submit(g.w, &j[0].job, &err), -E2BIG);
	ck_assert_msg(strstr(err.msg, "limits.kv_budget") != NULL, "%s", err.msg);
	char num[32];
	snprintf(num, sizeof(num), "%llu", (unsigned long long)kvcache_bytes(g.e->model, 17));
	ck_assert_msg(strstr(err.msg, num) != NULL, "the message does not give the job's %s bytes: %s", num, err.msg);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)unit);
	ck_assert_msg(strstr(err.msg, num) != NULL, "the message does not give the budget's %s bytes: %s", num,
		      err.msg);
	struct worker_stats st = g_stats(&g);
	ck_assert_uint_eq(st.rejected_size, 1);
	ck_assert_uint_eq(st.kv_budget, unit);

	/* past the context: refused before it is counted against the budget */
	g_job(&g, &j[1], 1, 8, g.e->n_ctx - 7, false);
	ck_assert_int_eq(worker_submit(g.w, &j[1].job, &err), -E2BIG);
	ck_assert_msg(strstr(err.msg, "context") != NULL, "%s", err.msg);

	/* 16 positions: the whole budget, held while it runs */
	g_job(&g, &j[2], 2, 8, 8, true);
	g_submit_ok(&g, &j[2]);
	g_wait_held(&g, 1);
	st = g_stats(&g);
	ck_assert_uint_eq(st.kv_bytes, unit);
	ck_assert_int_eq(st.active, 1);
	/* a second one fits max_active but not the budget: it waits */
	g_job(&g, &j[3], 3, 1, 1, false);
	g_submit_ok(&g, &j[3]);
	st = g_stats(&g);
	ck_assert_int_eq(st.queue_depth, 1);
	ck_assert_int_eq(st.active, 1);
	g_release(&g, &j[2]);
	g_wait_done(&g, 2);
	ck_assert_msg(finished_normally(&j[2].res), "%s", worker_finish_name(j[2].res.finish));
	ck_assert_msg(finished_normally(&j[3].res), "%s", worker_finish_name(j[3].res.finish));
	ck_assert_int_eq(j[0].n_done + j[1].n_done, 0);
	ck_assert_int_eq(j[0].n_tok + j[1].n_tok, 0);
	st = g_stats(&g);
	ck_assert_uint_eq(st.rejected_size, 1);
	ck_assert_uint_eq(st.completed, 2);
	ck_assert_uint_eq(st.kv_bytes, 0);
	g_close(&g);
}
END_TEST

/* worker_cancel of a queued job (dropped: on_done CANCELLED, no token, no
 * admission), of a running one from another thread (it stops at its next
 * step: exactly the tokens it had), and from its own callback; KV bytes go
 * back to 0 and the stats count each. */
START_TEST(worker_cancel_jobs)
{
	struct gate g;
	g_open(&g, 1, 4, 2, 0);
	const int n_long = 12;
	g_check_no_eog(&g, 1, 5, n_long);
	g_check_no_eog(&g, 2, 6, n_long);
	struct worker_stats st0 = g_stats(&g);
	ck_assert_uint_eq(st0.completed, 2);

	static struct gjob j[3];
	/* J1 runs and holds the worker at its first token; J0 waits behind it */
	g_job(&g, &j[1], 1, 5, n_long, true);
	g_submit_ok(&g, &j[1]);
	g_wait_held(&g, 1);
	g_job(&g, &j[0], 0, 4, 4, false);
	g_submit_ok(&g, &j[0]);
	struct worker_stats st = g_stats(&g);
	ck_assert_int_eq(st.queue_depth, 1);
	ck_assert_uint_eq(st.kv_bytes, kvcache_bytes(g.e->model, 5 + n_long));
	worker_cancel(g.w, &j[0].job);   /* queued */
	worker_cancel(g.w, &j[1].job);   /* running, inside its callback */
	g_release(&g, &j[1]);
	g_wait_done(&g, 4);
	ck_assert_int_eq(j[0].res.finish, WORKER_FINISH_CANCELLED);
	ck_assert_int_eq(j[0].res.n_gen, 0);
	ck_assert_int_eq(j[0].n_tok, 0);
	ck_assert_int_eq(j[0].n_done, 1);
	ck_assert_int_eq(j[1].res.finish, WORKER_FINISH_CANCELLED);
	ck_assert_int_eq(j[1].res.n_gen, 1);
	ck_assert_int_eq(j[1].n_tok, 1);
	ck_assert_int_eq(j[1].n_done, 1);
	st = g_stats(&g);
	ck_assert_uint_eq(st.cancelled, 2);
	ck_assert_uint_eq(st.admitted, st0.admitted + 1);   /* J0 never was */
	ck_assert_uint_eq(st.completed, st0.completed);
	ck_assert_uint_eq(st.gen_tokens, st0.gen_tokens + 1);
	ck_assert_uint_eq(st.prompt_tokens, st0.prompt_tokens + 5);
	ck_assert_uint_eq(st.kv_bytes, 0);
	ck_assert_int_eq(st.active, 0);
	ck_assert_int_eq(st.queue_depth, 0);

	/* J2 cancels itself from its third token's callback */
	g_job(&g, &j[2], 2, 6, n_long, false);
	j[2].cancel_at = 3;
	g_submit_ok(&g, &j[2]);
	g_wait_done(&g, 5);
	ck_assert_int_eq(j[2].res.finish, WORKER_FINISH_CANCELLED);
	ck_assert_int_eq(j[2].res.n_gen, 3);
	ck_assert_int_eq(j[2].n_tok, 3);
	st = g_stats(&g);
	ck_assert_uint_eq(st.cancelled, 3);
	ck_assert_uint_eq(st.gen_tokens, st0.gen_tokens + 1 + 3);
	ck_assert_uint_eq(st.kv_bytes, 0);
	g_close(&g);
}
END_TEST

/* worker_drain from another thread, while the test holds J0 at its first
 * token and J1 waits in the queue. */
struct drain_arg {
	struct worker *w;
	double grace;
};

static void *drain_thread(void *p)
{
	struct drain_arg *a = p;
	worker_drain(a->w, a->grace);
	return NULL;
}

/* Until worker_drain has begun: a job over the KV budget is refused with
 * -E2BIG while the worker accepts, with -ESHUTDOWN once it drains (and
 * is never queued either way).  Returns the probes refused for size. */
static int g_wait_draining(struct gate *g, int id)
{
	static struct gjob probe;
	g_job(g, &probe, id, 1, g->e->n_ctx - 1, false);
	int sized = 0;
	for (;;) {
		struct smk_err err = { 0 };
		int rc = worker_submit(g->w, &probe.job, &err);
		if (rc == -ESHUTDOWN)
			return sized;
		ck_assert_msg(rc == -E2BIG, "probe: %d %s", rc, err.msg);
		sized++;
		usleep(1000);
	}
}

START_TEST(worker_drain_jobs)
{
	/* grace 0: the running job stops at its next step, the queued one is
	 * dropped, both reported cancelled; later submits are refused */
	for (int grace = 0; grace < 2; grace++) {
		struct gate g;
		/* a budget for the two jobs, not for the probe */
		g_open(&g, 1, 4, 2, 16);
		struct smk_err err = { 0 };
		ck_assert_uint_lt(2 * kvcache_bytes(g.e->model, 16), kvcache_bytes(g.e->model, g.e->n_ctx));
		const int n_long = 6;
		g_check_no_eog(&g, 0, 4, n_long);
		const struct worker_stats st0 = g_stats(&g);

		static struct gjob j[3];
		g_job(&g, &j[0], 0, 4, n_long, true);
		g_submit_ok(&g, &j[0]);
		g_wait_held(&g, 1);
		g_job(&g, &j[1], 1, 4, 2, false);
		g_submit_ok(&g, &j[1]);

		/* grace 1: a whole minute, far more than two short jobs take */
		struct drain_arg a = { g.w, grace ? 60.0 : 0.0 };
		pthread_t th;
		ck_assert_int_eq(pthread_create(&th, NULL, drain_thread, &a), 0);
		int sized = g_wait_draining(&g, 2);
		g_release(&g, &j[0]);
		ck_assert_int_eq(pthread_join(th, NULL), 0);
		/* drain returned: no job is left running or queued, and every
		 * on_done has returned (worker.h's promise: drain waits for the
		 * callbacks, not only for the jobs to leave the queue). */
		struct worker_stats st = g_stats(&g);
		pthread_mutex_lock(&g.lock);
		const int done_at_drain = g.n_done;
		pthread_mutex_unlock(&g.lock);
		ck_assert_int_eq(done_at_drain, 3);
		ck_assert_int_eq(st.active, 0);
		ck_assert_int_eq(st.queue_depth, 0);
		ck_assert_uint_eq(st.kv_bytes, 0);
		ck_assert_uint_eq(st.rejected_size, st0.rejected_size + (uint64_t)sized);
		if (grace) {
			ck_assert_int_eq(j[0].res.finish, WORKER_FINISH_LENGTH);
			ck_assert_int_eq(j[0].res.n_gen, n_long);
			ck_assert_msg(finished_normally(&j[1].res), "J1 ended %s", worker_finish_name(j[1].res.finish));
			ck_assert_int_ge(j[1].res.n_gen, 1);
			ck_assert_uint_eq(st.completed, st0.completed + 2);
			ck_assert_uint_eq(st.cancelled, 0);
		} else {
			ck_assert_int_eq(j[0].res.finish, WORKER_FINISH_CANCELLED);
			ck_assert_int_eq(j[0].res.n_gen, 1);
			ck_assert_int_eq(j[1].res.finish, WORKER_FINISH_CANCELLED);
			ck_assert_int_eq(j[1].res.n_gen, 0);
			ck_assert_int_eq(j[1].n_tok, 0);
			ck_assert_uint_eq(st.completed, st0.completed);
			ck_assert_uint_eq(st.cancelled, 2);
		}
		/* closed for good: refused, no callback */
		g_job(&g, &j[2], 2, 4, 1, false);
		ck_assert_int_eq(worker_submit(g.w, &j[2].job, &err), -ESHUTDOWN);
		worker_drain(g.w, 0);   /* again: nothing left, returns */
		g_close(&g);
		ck_assert_int_eq(j[2].n_done, 0);
		ck_assert_int_eq(g.n_done, 3);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker");
	TCase *tw = tcase_create("kv_pool");
	tcase_set_timeout(tw, 120);
	tcase_add_test(tw, worker_waits_for_a_free_extent);
	suite_add_tcase(s, tw);
	TCase *tl = tcase_create("limits");
	tcase_set_timeout(tl, 120);
	tcase_add_test(tl, worker_admits_up_to_max_active);
	tcase_add_test(tl, worker_queue_limit);
	tcase_add_test(tl, worker_kv_budget);
	tcase_add_test(tl, worker_cancel_jobs);
	tcase_add_test(tl, worker_drain_jobs);
	suite_add_tcase(s, tl);
	return ck_run(s);
}
