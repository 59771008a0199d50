/* worker tests: the daemon's compute thread without the HTTP server.
 * A request within limits.kv_budget that finds the KV pool's free bytes
 * split waits until a running sequence ends (tiny-llama-spm from
 * SMOKE_TEST_MODELS; skipped without). */
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
				  .n_threads = 1, .backend = ENGINE_BE_CPU };
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

int main(void)
{
	Suite *s = suite_create("worker");
	TCase *tw = tcase_create("kv_pool");
	tcase_set_timeout(tw, 120);
	tcase_add_test(tw, worker_waits_for_a_free_extent);
	suite_add_tcase(s, tw);
	return ck_run(s);
}
