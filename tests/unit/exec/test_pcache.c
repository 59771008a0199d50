/* prompt cache tests (exec/pcache.h).
 *  - structure: prefix lookup (longest, capped, ties), the copy back of
 *    exactly the reused rows, superseded entries, LRU eviction under the
 *    byte budget, a sequence larger than the budget: on small caches in CPU
 *    backend memory filled with values that name their layer, position and
 *    column, no model needed.
 *  - worker: the SWA rule in practice.  Jobs through the daemon's worker
 *    with the cache on give the same tokens and the same log-probabilities,
 *    to the bit, as with it off, while reusing prefixes longer than the
 *    sliding window of tiny-gpt-oss (16 positions) and shorter than the
 *    entry they come from, and a whole-entry reuse that continues a
 *    conversation (tiny-gpt-oss from SMOKE_TEST_MODELS; skipped without).
 *    Every assertion is on tokens, bits and counts, none on time. */
#include <check.h>

#include "ck_main.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/worker.h"
#include "exec/kvpool.h"
#include "exec/pcache.h"

/* ---- structure ---- */

#define NL 2
#define KD 64   /* so that an entry's size grows with its positions past the rounding */
#define CTX 32

static struct backend *cpu_be(void)
{
	struct backend_limits lim = { .max_cols = 64, .max_rows = 4, .max_ctx = 64, .max_heads = 4,
				      .n_threads = 1 };
	struct backend *be;
	struct smk_err err = { 0 };
	ck_assert_msg(backend_cpu_new(&be, &lim, &err) == 0, "%s", err.msg);
	return be;
}

/* A cache of CTX positions in host memory (the CPU backend's). */
struct hkv {
	struct kvcache kv;
	uint16_t k[NL * CTX * KD], v[NL * CTX * KD];
};

static void hkv_init(struct hkv *h, struct backend *be)
{
	memset(h, 0, sizeof(*h));
	h->kv = (struct kvcache){ .n_layer = NL, .n_ctx = CTX, .kv_dim = KD, .k = h->k, .v = h->v, .be = be };
}

/* A value naming (sequence tag, layer, position, column, K or V). */
static uint16_t val(int tag, int il, int pos, int c, int v)
{
	return (uint16_t)(1 + tag * 4099 + il * 1031 + pos * 17 + c * 3 + v);
}

/* Positions [0, n) as sequence `tag` computed them. */
static void hkv_fill(struct hkv *h, int tag, int n)
{
	for (int il = 0; il < NL; il++)
		for (int p = 0; p < n; p++)
			for (int c = 0; c < KD; c++) {
				kvcache_k(&h->kv, il)[p * KD + c] = val(tag, il, p, c, 0);
				kvcache_v(&h->kv, il)[p * KD + c] = val(tag, il, p, c, 1);
			}
	h->kv.n_pos = n;
}

/* Rows [0, p) hold tag's values and the rest is untouched (zero). */
static void hkv_expect(struct hkv *h, int tag, int p)
{
	for (int il = 0; il < NL; il++)
		for (int pos = 0; pos < CTX; pos++)
			for (int c = 0; c < KD; c++) {
				uint16_t k = kvcache_k(&h->kv, il)[pos * KD + c];
				uint16_t v = kvcache_v(&h->kv, il)[pos * KD + c];
				ck_assert_uint_eq(k, pos < p ? val(tag, il, pos, c, 0) : 0);
				ck_assert_uint_eq(v, pos < p ? val(tag, il, pos, c, 1) : 0);
			}
}

/* Tokens of sequence tag: distinct first tokens per tag. */
static void toks(int32_t *t, int tag, int n)
{
	for (int i = 0; i < n; i++)
		t[i] = tag * 1000 + i;
}

static void store(struct pcache *pc, struct backend *be, int tag, int n)
{
	struct hkv h;
	int32_t t[CTX];
	hkv_init(&h, be);
	hkv_fill(&h, tag, n);
	toks(t, tag, n);
	struct smk_err err = { 0 };
	ck_assert_msg(pcache_store(pc, t, &h.kv, &err) == 0, "%s", err.msg);
}

START_TEST(pcache_longest_prefix)
{
	struct backend *be = cpu_be();
	struct pcache *pc;
	struct smk_err err = { 0 };
	ck_assert_msg(pcache_new(&pc, 1 << 20, NL, KD, &err) == 0, "%s", err.msg);
	store(pc, be, 1, 8);
	store(pc, be, 2, 12);
	int32_t q[CTX];
	/* tag 1's first 5 tokens, then others */
	toks(q, 1, 8);
	q[5] = 77;
	ck_assert_int_eq(pcache_peek(pc, q, 10, 9), 5);
	struct hkv h;
	hkv_init(&h, be);
	ck_assert_int_eq(pcache_restore(pc, q, 10, 9, &h.kv, &err), 5);
	ck_assert_int_eq(h.kv.n_pos, 5);
	hkv_expect(&h, 1, 5);
	/* the whole entry matches: capped at max_len (n_prompt - 1 in the
	 * worker, so the last token is always computed) */
	toks(q, 2, 12);
	ck_assert_int_eq(pcache_peek(pc, q, 12, 11), 11);
	hkv_init(&h, be);
	ck_assert_int_eq(pcache_restore(pc, q, 12, 11, &h.kv, &err), 11);
	hkv_expect(&h, 2, 11);
	/* a prompt longer than the entry reuses all of it */
	toks(q, 2, 20);
	ck_assert_int_eq(pcache_peek(pc, q, 20, 19), 12);
	/* no shared first token: nothing, kv untouched */
	toks(q, 3, 6);
	hkv_init(&h, be);
	ck_assert_int_eq(pcache_restore(pc, q, 6, 5, &h.kv, &err), 0);
	ck_assert_int_eq(h.kv.n_pos, 0);
	hkv_expect(&h, 0, 0);
	struct pcache_stats st;
	pcache_get_stats(pc, &st);
	ck_assert_uint_eq(st.lookups, 3);
	ck_assert_uint_eq(st.hits, 2);
	ck_assert_uint_eq(st.tokens_saved, 16);
	ck_assert_int_eq(st.entries, 2);
	ck_assert_uint_eq(st.bytes, pcache_entry_bytes(pc, 8) + pcache_entry_bytes(pc, 12));
	pcache_free(pc);
	backend_free(be);
}
END_TEST

START_TEST(pcache_supersede)
{
	struct backend *be = cpu_be();
	struct pcache *pc;
	struct smk_err err = { 0 };
	ck_assert_msg(pcache_new(&pc, 1 << 20, NL, KD, &err) == 0, "%s", err.msg);
	store(pc, be, 1, 4);
	store(pc, be, 1, 10);   /* extends it: the shorter one goes */
	store(pc, be, 1, 6);    /* held already by the longer one: not kept again */
	struct pcache_stats st;
	pcache_get_stats(pc, &st);
	ck_assert_int_eq(st.entries, 1);
	ck_assert_uint_eq(st.stores, 2);
	ck_assert_uint_eq(st.superseded, 1);
	ck_assert_uint_eq(st.bytes, pcache_entry_bytes(pc, 10));
	int32_t q[CTX];
	toks(q, 1, 10);
	ck_assert_int_eq(pcache_peek(pc, q, 10, 10), 10);
	pcache_free(pc);
	backend_free(be);
}
END_TEST

START_TEST(pcache_lru_under_budget)
{
	struct backend *be = cpu_be();
	struct pcache *pc;
	struct smk_err err = { 0 };
	/* a budget of exactly three entries of 8 positions */
	ck_assert_msg(pcache_new(&pc, 1 << 20, NL, KD, &err) == 0, "%s", err.msg);
	const uint64_t e8 = pcache_entry_bytes(pc, 8);
	pcache_free(pc);
	ck_assert_msg(pcache_new(&pc, 3 * e8, NL, KD, &err) == 0, "%s", err.msg);
	store(pc, be, 1, 8);
	store(pc, be, 2, 8);
	store(pc, be, 3, 8);
	/* use 1: 2 is now the least recently used */
	int32_t q[CTX];
	struct hkv h;
	hkv_init(&h, be);
	toks(q, 1, 8);
	ck_assert_int_eq(pcache_restore(pc, q, 8, 7, &h.kv, &err), 7);
	store(pc, be, 4, 8);
	struct pcache_stats st;
	pcache_get_stats(pc, &st);
	ck_assert_int_eq(st.entries, 3);
	ck_assert_uint_eq(st.evictions, 1);
	ck_assert_uint_le(st.bytes, st.budget);
	toks(q, 2, 8);
	ck_assert_int_eq(pcache_peek(pc, q, 8, 8), 0);
	for (int tag = 1; tag <= 4; tag += tag == 1 ? 2 : 1) {
		toks(q, tag, 8);
		ck_assert_int_eq(pcache_peek(pc, q, 8, 8), 8);
	}
	/* use 3: the order is 1, 4, 3 (least recent first); an entry of 16
	 * positions takes about two of 8 and evicts 1 then 4, whose places
	 * (0 and the next) are adjacent */
	hkv_init(&h, be);
	toks(q, 3, 8);
	ck_assert_int_eq(pcache_restore(pc, q, 8, 7, &h.kv, &err), 7);
	ck_assert_uint_le(pcache_entry_bytes(pc, 16), 2 * e8);
	store(pc, be, 5, 16);
	pcache_get_stats(pc, &st);
	ck_assert_uint_le(st.bytes, st.budget);
	ck_assert_uint_eq(st.evictions, 3);
	ck_assert_int_eq(st.entries, 2);
	toks(q, 3, 8);
	ck_assert_int_eq(pcache_peek(pc, q, 8, 8), 8);
	toks(q, 5, 16);
	ck_assert_int_eq(pcache_peek(pc, q, 16, 16), 16);
	/* the restored rows are tag 5's, not a neighbour's */
	hkv_init(&h, be);
	ck_assert_int_eq(pcache_restore(pc, q, 16, 15, &h.kv, &err), 15);
	hkv_expect(&h, 5, 15);
	/* larger than the whole budget: not kept, nothing evicted for it */
	store(pc, be, 6, 32);
	pcache_get_stats(pc, &st);
	ck_assert_uint_eq(st.too_big, 1);
	ck_assert_uint_eq(st.evictions, 3);
	ck_assert_int_eq(st.entries, 2);
	pcache_free(pc);
	backend_free(be);
}
END_TEST

START_TEST(pcache_refuses_tiny_budget)
{
	struct pcache *pc = NULL;
	struct smk_err err = { 0 };
	ck_assert_int_eq(pcache_new(&pc, 256, NL, KD, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "limits.prompt_cache") != NULL, "%s", err.msg);
}
END_TEST

/* ---- the worker, cache on and off ---- */

#define NJ 6
#define PLEN 64

struct run {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int n_done;
};

struct rjob {
	struct worker_job job;
	struct run *r;
	int32_t prompt[PLEN + 40];
	int32_t out[16];
	float lp[16];
	int n_out;
	struct worker_result res;
};

static void r_text(void *ctx, const char *text, size_t len, const struct worker_token *tok)
{
	struct rjob *j = ctx;
	(void)text;
	(void)len;
	if (tok && j->n_out < 16) {
		j->out[j->n_out] = tok->id;
		j->lp[j->n_out++] = tok->logprob;
	}
}

static void r_done(void *ctx, const struct worker_result *res)
{
	struct rjob *j = ctx;
	pthread_mutex_lock(&j->r->lock);
	j->res = *res;
	j->r->n_done++;
	pthread_cond_broadcast(&j->r->cond);
	pthread_mutex_unlock(&j->r->lock);
}

static void r_submit(struct worker *w, struct run *r, struct rjob *j, int n_prompt, int max_tokens)
{
	j->r = r;
	j->n_out = 0;
	j->job = (struct worker_job){ .prompt = j->prompt, .n_prompt = n_prompt, .max_tokens = max_tokens,
				      .n_logprobs = 0, .on_text = r_text, .on_done = r_done, .ctx = j };
	j->job.sp.temperature = 0;
	j->job.sp.top_p = 1;
	j->job.sp.repeat_penalty = 1;
	struct smk_err err = { 0 };
	ck_assert_msg(worker_submit(w, &j->job, &err) == 0, "%s", err.msg);
}

static void r_wait(struct run *r, int n)
{
	pthread_mutex_lock(&r->lock);
	while (r->n_done < n)
		pthread_cond_wait(&r->cond, &r->lock);
	pthread_mutex_unlock(&r->lock);
}

/* One schedule: J0 alone; J1 continues J0's conversation (its prompt,
 * its output, more); then J2..J4 at once (batched): J0's first 40 tokens
 * and others, J1's prompt and more, J0's prompt again; J5 alone, J0's
 * first 24 tokens and others.  Returns the jobs' results in j[]. */
static void schedule(struct engine *e, uint64_t prompt_cache, struct rjob *j)
{
	struct worker *w;
	struct smk_err err = { 0 };
	struct worker_opts wo = { .max_active = 3, .queue_cap = 8,
				  .kv_budget = kvcache_bytes(e->model, 256) * 3, .prompt_cache = prompt_cache };
	ck_assert_msg(worker_new(&w, e, &wo, &err) == 0, "%s", err.msg);
	struct run r = { .n_done = 0 };
	pthread_mutex_init(&r.lock, NULL);
	pthread_cond_init(&r.cond, NULL);
	int n_vocab = e->model->hp.n_vocab;
	for (int i = 0; i < PLEN; i++)
		j[0].prompt[i] = (int32_t)((i * 7919 + 13) % (n_vocab - 10) + 5);
	r_submit(w, &r, &j[0], PLEN, 10);
	r_wait(&r, 1);
	int n1 = PLEN + j[0].n_out;
	memcpy(j[1].prompt, j[0].prompt, sizeof(int32_t) * PLEN);
	memcpy(j[1].prompt + PLEN, j[0].out, sizeof(int32_t) * (size_t)j[0].n_out);
	for (int i = 0; i < 12; i++)
		j[1].prompt[n1 + i] = (int32_t)((i * 31 + 101) % (n_vocab - 10) + 5);
	r_submit(w, &r, &j[1], n1 + 12, 8);
	r_wait(&r, 2);
	memcpy(j[2].prompt, j[0].prompt, sizeof(int32_t) * 40);
	for (int i = 40; i < PLEN; i++)
		j[2].prompt[i] = (int32_t)((i * 53 + 7) % (n_vocab - 10) + 5);
	memcpy(j[3].prompt, j[1].prompt, sizeof(int32_t) * (size_t)(n1 + 12));
	for (int i = 0; i < 6; i++)
		j[3].prompt[n1 + 12 + i] = (int32_t)(i + 5);
	memcpy(j[4].prompt, j[0].prompt, sizeof(int32_t) * PLEN);
	r_submit(w, &r, &j[2], PLEN, 8);
	r_submit(w, &r, &j[3], n1 + 18, 8);
	r_submit(w, &r, &j[4], PLEN, 8);
	r_wait(&r, 5);
	memcpy(j[5].prompt, j[0].prompt, sizeof(int32_t) * 24);
	for (int i = 24; i < 40; i++)
		j[5].prompt[i] = (int32_t)((i * 11 + 3) % (n_vocab - 10) + 5);
	r_submit(w, &r, &j[5], 40, 8);
	r_wait(&r, 6);
	worker_free(w);
	pthread_mutex_destroy(&r.lock);
	pthread_cond_destroy(&r.cond);
}

START_TEST(pcache_worker_same_output)
{
	const char *dir = getenv("SMOKE_TEST_MODELS");
	char path[1024];
	snprintf(path, sizeof(path), "%s/tiny-gpt-oss.gguf", dir ? dir : "");
	FILE *probe = dir ? fopen(path, "rb") : NULL;
	if (!probe) {
		fprintf(stderr, "SKIP pcache_worker_same_output: %s not found (scripts/make-test-models)\n", path);
		return;
	}
	fclose(probe);
	struct smk_err err = { 0 };
	struct engine *e;
	/* a prefill chunk of 16, so that prompts are split differently with
	 * and without a reused prefix */
	struct engine_opts eo = { .model_path = path, .n_ctx = 256, .n_batch = 16, .max_logits = 3,
				  .n_threads = 1, .backend = BACKEND_CPU };
	ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);
	const int W = e->model->hp.sliding_window;
	ck_assert_msg(W > 0 && W < 24, "tiny-gpt-oss's window %d: the reuses below must exceed it", W);
	static struct rjob off[NJ], on[NJ];
	schedule(e, 0, off);
	schedule(e, 8u << 20, on);
	for (int i = 0; i < NJ; i++) {
		ck_assert_msg(off[i].res.finish == WORKER_FINISH_LENGTH || off[i].res.finish == WORKER_FINISH_STOP,
			      "J%d off: %s", i, off[i].res.err.msg);
		ck_assert_msg(on[i].res.finish == off[i].res.finish, "J%d: finish differs", i);
		ck_assert_int_eq(on[i].n_out, off[i].n_out);
		for (int t = 0; t < on[i].n_out; t++) {
			ck_assert_msg(on[i].out[t] == off[i].out[t], "J%d token %d: %d with the cache, %d without",
				      i, t, on[i].out[t], off[i].out[t]);
			ck_assert_msg(!memcmp(&on[i].lp[t], &off[i].lp[t], sizeof(float)),
				      "J%d token %d: logprob %.9g with the cache, %.9g without", i, t,
				      (double)on[i].lp[t], (double)off[i].lp[t]);
		}
		ck_assert_int_eq(off[i].res.n_cached, 0);
	}
	/* What was reused: J1 all of J0's kept positions (its prompt and all
	 * but its last token: that one never went through the model); J2 40
	 * of J0's (a prefix shorter than the entry, longer than the window);
	 * J3 at least J1's prompt; J4 J0's prompt but its last token; J5 24. */
	const int n1 = PLEN + off[0].n_out;
	ck_assert_int_eq(on[0].res.n_cached, 0);
	ck_assert_int_eq(on[1].res.n_cached, n1 - 1);
	ck_assert_int_eq(on[2].res.n_cached, 40);
	ck_assert_int_ge(on[3].res.n_cached, n1 + 12);
	ck_assert_int_eq(on[4].res.n_cached, PLEN - 1);
	ck_assert_int_eq(on[5].res.n_cached, 24);
	engine_close(e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pcache");
	TCase *ts = tcase_create("structure");
	tcase_set_timeout(ts, 60);
	tcase_add_test(ts, pcache_longest_prefix);
	tcase_add_test(ts, pcache_supersede);
	tcase_add_test(ts, pcache_lru_under_budget);
	tcase_add_test(ts, pcache_refuses_tiny_budget);
	suite_add_tcase(s, ts);
	TCase *tw = tcase_create("worker");
	tcase_set_timeout(tw, 300);
	tcase_add_test(tw, pcache_worker_same_output);
	suite_add_tcase(s, tw);
	return ck_run(s);
}
