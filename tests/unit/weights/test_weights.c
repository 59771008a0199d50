/* test_weights.c - the weight hierarchy: slot allocator, eviction policies on
 * hand-checkable traces, predictive against Belady's optimal replay and LRU,
 * greedy tokens through small budgets identical to the resident store,
 * refused budgets, and faults (failing reads, a file truncated under a
 * running model).
 *
 * Models: SMOKE_MODEL (default Gemma 3 270M) and SMOKE_HIER_MODEL (the
 * layer-heavy model of scripts/make-hierarchy-model); tests that need an
 * absent model say so and pass without checking (Check has no skip).
 */
#include <check.h>

#include "ck_main.h"
#include "weights_check.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "weights/warena.h"
#include "weights/wpolicy.h"
#include "weights/wstore.h"
#include "weights/wstore_impl.h" /* wt_io_cache_room */

/* ---- models ---- */

static const char *model_path(const char *env, const char *rel, char *buf, size_t len)
{
	const char *p = getenv(env);
	if (p && *p)
		return p;
	const char *cache = getenv("SMOKE_CACHE");
	const char *home = getenv("HOME");
	if (cache && *cache)
		snprintf(buf, len, "%s/%s", cache, rel);
	else
		snprintf(buf, len, "%s/.cache/smoke/%s", home ? home : "", rel);
	return buf;
}

static const char *gemma(void)
{
	static char buf[4096];
	const char *p = model_path("SMOKE_MODEL", "models/gemma-3-270m-q4_k_m.gguf", buf, sizeof(buf));
	if (access(p, R_OK)) {
		fprintf(stderr, "SKIP: default model %s absent (scripts/fetch-model)\n", p);
		return NULL;
	}
	return p;
}

static const char *layer_heavy(void)
{
	static char buf[4096];
	const char *p = model_path("SMOKE_HIER_MODEL", "test-models/layer-heavy.gguf", buf, sizeof(buf));
	if (access(p, R_OK)) {
		fprintf(stderr, "SKIP: layer-heavy model %s absent (scripts/make-hierarchy-model)\n", p);
		return NULL;
	}
	return p;
}

/* ---- slot allocator ---- */

START_TEST(test_arena_random)
{
	/* Random allocs and frees against a byte map kept by the test: no two
	 * live slots overlap, every slot is inside the budget, and freeing all
	 * coalesces back to one extent. */
	enum { SIZE = 64 * 1024, SLOTS = 40 };
	struct warena a;
	ck_assert_int_eq(warena_init(&a, "test", SIZE, SLOTS, true, false, true, NULL), 0);
	static unsigned char owner[SIZE];
	memset(owner, 0, sizeof(owner));
	int64_t off[SLOTS];
	uint64_t len[SLOTS];
	for (int i = 0; i < SLOTS; i++)
		off[i] = -1;
	srand(7);
	for (int step = 0; step < 20000; step++) {
		int i = rand() % SLOTS;
		if (off[i] >= 0) {
			for (uint64_t k = 0; k < len[i]; k++)
				owner[off[i] + k] = 0;
			warena_free(&a, (uint64_t)off[i], len[i]);
			off[i] = -1;
			continue;
		}
		len[i] = WARENA_ALIGN * (uint64_t)(1 + rand() % 64);
		off[i] = warena_alloc(&a, len[i]);
		if (off[i] < 0)
			continue; /* full or fragmented: fine, the map says nothing */
		ck_assert_uint_le((uint64_t)off[i] + len[i], SIZE);
		ck_assert_uint_eq((uint64_t)off[i] % WARENA_ALIGN, 0);
		for (uint64_t k = 0; k < len[i]; k++) {
			ck_assert_int_eq(owner[off[i] + k], 0);
			owner[off[i] + k] = (unsigned char)(i + 1);
		}
		memset(a.base + off[i], i, len[i]); /* the memory is really there */
		ck_assert_uint_le(a.used, SIZE);
	}
	for (int i = 0; i < SLOTS; i++)
		if (off[i] >= 0)
			warena_free(&a, (uint64_t)off[i], len[i]);
	ck_assert_uint_eq(a.used, 0);
	ck_assert_int_eq(a.n_free, 1);
	ck_assert_uint_eq(warena_largest_free(&a), SIZE);
	ck_assert_uint_le(a.peak, SIZE);
	warena_deinit(&a);
}
END_TEST

/* The arena's memory is advised for transparent huge pages: /proc's smaps
 * says "THPeligible: 1" for its mapping.  Where the kernel's THP mode is
 * "madvise" only the advice makes it so; with "never" (or no THP) there is
 * nothing to see and the test says so. */
START_TEST(test_arena_huge_pages)
{
	char mode[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	if (!f || !fgets(mode, sizeof(mode), f) || strstr(mode, "[never]")) {
		if (f)
			fclose(f);
		fprintf(stderr, "SKIP arena_huge_pages: transparent huge pages off (%s)\n", mode);
		return;
	}
	fclose(f);
	struct warena a;
	ck_assert_int_eq(warena_init(&a, "test", 8u << 20, 4, true, false, true, NULL), 0);
	const uintptr_t base = (uintptr_t)a.base;
	f = fopen("/proc/self/smaps", "r");
	ck_assert_ptr_nonnull(f);
	char line[512];
	int in = 0, eligible = -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = base >= lo && base < hi;
		else if (in && sscanf(line, "THPeligible: %d", &eligible) == 1)
			break;
	}
	fclose(f);
	warena_deinit(&a);
	ck_assert_msg(eligible == 1, "the arena's mapping is not eligible for huge pages (%d; THP mode %s)",
		      eligible, mode);
}
END_TEST

START_TEST(test_arena_first_fit)
{
	struct warena a;
	ck_assert_int_eq(warena_init(&a, "test", 10 * 64, 8, false, false, true, NULL), 0);
	ck_assert_int_eq(warena_alloc(&a, 128), 0);
	ck_assert_int_eq(warena_alloc(&a, 192), 128);
	ck_assert_int_eq(warena_alloc(&a, 64), 320);
	ck_assert_int_eq(warena_alloc(&a, 320), -1);     /* 256 left */
	warena_free(&a, 128, 192);                       /* hole of 192 at 128 */
	ck_assert_int_eq(warena_alloc(&a, 256), 384);    /* the tail fits, the hole not */
	ck_assert_int_eq(warena_alloc(&a, 64), 128);     /* first fit: the hole */
	warena_free(&a, 0, 128);
	warena_free(&a, 320, 64);
	warena_free(&a, 128, 64);                        /* 0..384 coalesces */
	ck_assert_int_eq(a.n_free, 1);
	ck_assert_int_eq(warena_alloc(&a, 384), 0);
	ck_assert_int_eq(warena_alloc(&a, 64), -1);
	warena_deinit(&a);
}
END_TEST

/* ---- policies on traces ---- */

/* A count-based cache of `cap` equal-size blocks replaying `trace` with the
 * store's own victim choice (wpolicy_pick) and, for predictive, the store's
 * own predictor.  Returns hits; evicted[] gets the victims in order. */
static int simulate(enum wpolicy p, const int *trace, int n, int n_blocks, int cap, int *evicted,
		    int *n_evicted)
{
	struct wpredict pr;
	ck_assert_int_eq(wpredict_init(&pr, n_blocks, NULL), 0);
	bool *in = calloc((size_t)n_blocks, sizeof(bool));
	struct wpolicy_cand *meta = calloc((size_t)n_blocks, sizeof(*meta));
	struct wpolicy_cand *cand = calloc((size_t)n_blocks, sizeof(*cand));
	int *idx = calloc((size_t)n_blocks, sizeof(int));
	int *dist = calloc((size_t)n_blocks, sizeof(int));
	int hits = 0, held = 0, ne = 0;
	for (int i = 0; i < n; i++) {
		int b = trace[i];
		wpredict_observe(&pr, b);
		wpredict_distances(&pr, b, dist);
		if (in[b]) {
			hits++;
		} else {
			if (held == cap) {
				int nc = 0;
				for (int v = 0; v < n_blocks; v++)
					if (in[v]) {
						cand[nc] = meta[v];
						cand[nc].dist = dist[v];
						idx[nc++] = v;
					}
				int k = wpolicy_pick(p, cand, nc);
				in[idx[k]] = false;
				held--;
				if (evicted)
					evicted[ne] = idx[k];
				ne++;
			}
			in[b] = true;
			held++;
			meta[b].load_seq = (uint64_t)i + 1;
			meta[b].uses = 0;
		}
		meta[b].last_use = (uint64_t)i + 1;
		meta[b].uses++;
	}
	if (n_evicted)
		*n_evicted = ne;
	wpredict_deinit(&pr);
	free(in);
	free(meta);
	free(cand);
	free(idx);
	free(dist);
	return hits;
}

/* Belady's MIN, written independently of the store: evict the block whose
 * next use in the actual future trace is furthest (never used again first). */
static int belady(const int *trace, int n, int n_blocks, int cap)
{
	bool *in = calloc((size_t)n_blocks, sizeof(bool));
	int hits = 0, held = 0;
	for (int i = 0; i < n; i++) {
		int b = trace[i];
		if (in[b]) {
			hits++;
			continue;
		}
		if (held == cap) {
			int victim = -1, far = -1;
			for (int v = 0; v < n_blocks; v++) {
				if (!in[v])
					continue;
				int j = i + 1;
				while (j < n && trace[j] != v)
					j++;
				if (j > far) {
					far = j;
					victim = v;
				}
			}
			in[victim] = false;
			held--;
		}
		in[b] = true;
		held++;
	}
	free(in);
	return hits;
}

START_TEST(test_policies_by_hand)
{
	/* Blocks 0..4 (plan 0,1,2,3,4), capacity 3, trace 0 1 2 0 3 0 4.
	 *  t4 loads 3 into {0,1,2}: lru evicts 1 (0 was used at t3); lfu
	 *     evicts 1 (0 has 2 uses, 1 and 2 one each, 1 older); fifo evicts
	 *     0 (loaded first).  predictive: the predictor has learned 2->0 and
	 *     0->3 and walks 3,4,0,3: 1 and 2 are not reached (far), the tie
	 *     goes to the older, 1.
	 *  t5 0: hit, except fifo (evicts 1, the next oldest).
	 *  t6 loads 4: lru {0,2,3} -> 2; lfu {0 (3 uses),2,3} -> 2 (older);
	 *     fifo {2,3,0} -> 2; predictive walks 4,0,4: 2 and 3 far -> 2. */
	const int tr[] = { 0, 1, 2, 0, 3, 0, 4 };
	int ev[8], ne;
	ck_assert_int_eq(simulate(WPOLICY_LRU, tr, 7, 5, 3, ev, &ne), 2);
	ck_assert_int_eq(ne, 2);
	ck_assert_int_eq(ev[0], 1);
	ck_assert_int_eq(ev[1], 2);
	ck_assert_int_eq(simulate(WPOLICY_LFU, tr, 7, 5, 3, ev, &ne), 2);
	ck_assert_int_eq(ev[0], 1);
	ck_assert_int_eq(ev[1], 2);
	ck_assert_int_eq(simulate(WPOLICY_FIFO, tr, 7, 5, 3, ev, &ne), 1);
	ck_assert_int_eq(ne, 3);
	ck_assert_int_eq(ev[0], 0);
	ck_assert_int_eq(ev[1], 1);
	ck_assert_int_eq(ev[2], 2);
	ck_assert_int_eq(simulate(WPOLICY_PREDICTIVE, tr, 7, 5, 3, ev, &ne), 2);
	ck_assert_int_eq(ev[0], 1);
	ck_assert_int_eq(ev[1], 2);
}
END_TEST

START_TEST(test_cyclic_scan)
{
	/* The textbook case: a cyclic scan of 10 blocks through 6 slots.  LRU
	 * and FIFO never hit after the first pass; predictive keeps 5 of the
	 * 10 blocks every pass, like Belady. */
	enum { NB = 10, PASSES = 20 };
	int tr[NB * PASSES];
	for (int i = 0; i < NB * PASSES; i++)
		tr[i] = i % NB;
	ck_assert_int_eq(simulate(WPOLICY_LRU, tr, NB * PASSES, NB, 6, NULL, NULL), 0);
	ck_assert_int_eq(simulate(WPOLICY_FIFO, tr, NB * PASSES, NB, 6, NULL, NULL), 0);
	int pred = simulate(WPOLICY_PREDICTIVE, tr, NB * PASSES, NB, 6, NULL, NULL);
	int opt = belady(tr, NB * PASSES, NB, 6);
	ck_assert_int_eq(pred, opt);
	ck_assert_int_gt(pred, (PASSES - 1) * 4);
}
END_TEST

START_TEST(test_predictor_learns)
{
	/* Prefill chunks without logits skip the head (block 3 of 0..3): the
	 * predictor mispredicts once per change, then follows. */
	struct wpredict p;
	ck_assert_int_eq(wpredict_init(&p, 4, NULL), 0);
	const int tr[] = { 0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3 };
	for (size_t i = 0; i < sizeof(tr) / sizeof(tr[0]); i++)
		wpredict_observe(&p, tr[i]);
	ck_assert_uint_eq(p.predictions, 13);
	ck_assert_uint_eq(p.correct, 11);   /* wrong at 2->0 once, and 2->3 once */
	int d[4];
	wpredict_distances(&p, 1, d);
	ck_assert_int_eq(d[2], 1);
	ck_assert_int_eq(d[3], 2);
	ck_assert_int_eq(d[0], 3);
	wpredict_deinit(&p);
}
END_TEST

/* ---- the engine through the hierarchy ---- */

struct collect {
	int32_t ids[64];
	int n;
};

static int on_token(void *ctx, const char *text, size_t len, int32_t token)
{
	struct collect *c = ctx;
	(void)text;
	(void)len;
	if (token >= 0 && c->n < 64)
		c->ids[c->n++] = token;
	return 0;
}

/* Greedy tokens for a fixed prompt; returns 0 or the error code (message
 * in err). */
static int generate(struct engine *e, int n_predict, struct collect *out, struct smk_err *err)
{
	const char *prompt = "The quick brown fox jumps over the lazy dog. Once upon a time";
	int32_t ids[128];
	size_t n = 0;
	int rc = tokenizer_encode(e->tok, prompt, strlen(prompt), true, true, ids, 128, &n, err);
	if (rc)
		return rc;
	struct kvcache *kv;
	struct sampler *s;
	struct sampler_params sp;
	sampler_params_default(&sp);
	sp.temperature = 0;
	ck_assert_int_eq(kvcache_new(&kv, e->model, (int)n + n_predict + 1, e->be, NULL), 0);
	ck_assert_int_eq(sampler_new(&s, e->model->hp.n_vocab, &sp, NULL), 0);
	struct gen_stats st;
	out->n = 0;
	rc = engine_generate(e, kv, ids, (int)n, n_predict, s, on_token, out, &st, err);
	sampler_free(s);
	kvcache_free(kv);
	return rc;
}

static void reference_tokens(const char *path, struct collect *ref)
{
	struct engine_opts eo = { .model_path = path, .n_threads = 2, .n_ctx = 256, .n_batch = 64 };
	struct engine *e;
	struct smk_err err = { 0 };
	ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);
	ck_assert_msg(generate(e, 16, ref, &err) == 0, "%s", err.msg);
	engine_close(e);
	ck_assert_int_ge(ref->n, 8);
}

/* Sum of the unique weight bytes the store manages (model.c counts a tied
 * table once). */
static uint64_t unique_weight_bytes(const struct model *m)
{
	return m->weight_bytes;
}

/* Run the model through the tiered store with opts and compare the greedy
 * tokens to ref. */
static void run_tiered(const char *path, const struct wstore_opts *wo, const struct collect *ref,
		       struct wstore_stats *st_out)
{
	struct engine_opts eo = { .model_path = path, .n_threads = 2, .n_ctx = 256, .n_batch = 64,
				  .weights = wo };
	struct engine *e;
	struct smk_err err = { 0 };
	ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);
	struct collect got;
	ck_assert_msg(generate(e, 16, &got, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(got.n, ref->n);
	for (int i = 0; i < ref->n; i++)
		ck_assert_msg(got.ids[i] == ref->ids[i], "token %d: %d, resident store gave %d (policy %s, async %d)",
			      i, got.ids[i], ref->ids[i], wpolicy_name(wo->policy), wo->async_prefetch);
	struct wstore_stats st;
	wstore_get_stats(e->ws, &st);
	check_budgets_held(&st);
	ck_assert(st.tiered);
	if (st_out)
		*st_out = st;
	engine_close(e);
}

/* The set-up of the tiered-store tests: the layer-heavy model's path, its
 * tokens from the resident store, and default options with the budgets
 * checked on every allocation.  NULL (the test skips) without the model. */
static const char *tiered_setup(struct collect *ref, struct wstore_opts *wo)
{
	const char *path = layer_heavy();
	if (!path)
		return NULL;
	reference_tokens(path, ref);
	wstore_opts_default(wo);
	wo->check_budgets = true;
	return path;
}

START_TEST(test_quarter_budget_tokens)
{
	/* The proof: weights >= 4x (ram_cache + gpu_memory), same greedy tokens
	 * as the resident store, three tiers, every policy, async on and off. */
	struct collect ref;
	struct wstore_opts wo;
	const char *path = tiered_setup(&ref, &wo);
	if (!path)
		return;
	struct model *m;
	ck_assert_int_eq(model_load(&m, path, NULL), 0);
	uint64_t total = unique_weight_bytes(m);
	uint64_t table = m->blocks[0].nbytes;
	model_free(m);
	wo.dev_budget = table + 3 * (total - table) / 64 + 4096; /* head + ~2 layers */
	wo.ram_budget = table + 4096;
	ck_assert_uint_le(4 * (wo.dev_budget + wo.ram_budget), total);
	for (int async = 0; async < 2; async++)
		for (int p = 0; p <= WPOLICY_PREDICTIVE; p++) {
			wo.async_prefetch = async;
			wo.policy = (enum wpolicy)p;
			struct wstore_stats st;
			run_tiered(path, &wo, &ref, &st);
			ck_assert_uint_gt(st.tier[WSTORE_TIER_DEV].evictions, 0);
			ck_assert_uint_gt(st.tier[WSTORE_TIER_RAM].evictions, 0);
			if (async)
				ck_assert_uint_gt(st.prefetch_issued, 0);
			else
				ck_assert_uint_eq(st.prefetch_issued, 0);
		}
	/* Computing from the RAM tier (enable_cpu_offload without a GPU). */
	wo.compute_from_ram = true;
	wo.ram_budget = wo.dev_budget;
	wo.dev_budget = 0;
	wo.policy = WPOLICY_PREDICTIVE;
	run_tiered(path, &wo, &ref, NULL);
}
END_TEST

START_TEST(test_default_model_tokens)
{
	/* Gemma 3 270M with budgets that hold its whole tied table (72% of the
	 * weights) plus a layer or two: the layers stream, the table's shards
	 * stay. */
	const char *path = gemma();
	if (!path)
		return;
	struct collect ref;
	reference_tokens(path, &ref);
	struct model *m;
	ck_assert_int_eq(model_load(&m, path, NULL), 0);
	/* The whole table (the model splits it into vocabulary shards). */
	uint64_t table = m->blocks[0].t[EMB_TOKEN].row_bytes * (uint64_t)m->hp.n_vocab;
	uint64_t layer = m->blocks[model_layer_block(m, 0)].nbytes;
	model_free(m);
	struct wstore_opts wo;
	wstore_opts_default(&wo);
	wo.check_budgets = true;
	wo.dev_budget = table + 2 * layer + 65536;
	wo.ram_budget = table + 65536;
	for (int async = 0; async < 2; async++) {
		wo.async_prefetch = async;
		struct wstore_stats st;
		run_tiered(path, &wo, &ref, &st);
		ck_assert_uint_gt(st.tier[WSTORE_TIER_DEV].evictions, 0);
		ck_assert_double_gt(st.predictor_accuracy, 0.95);
	}
}
END_TEST

START_TEST(test_default_model_quarter)
{
	/* The proof on the default model: Gemma 3 270M's tied table (72% of
	 * its weights) is split into vocabulary shards shared by the
	 * embedding and the head, so (ram_cache + gpu_memory) <= 1/4 of the
	 * weights runs it, with the same greedy tokens and budgets held. */
	const char *path = gemma();
	if (!path)
		return;
	struct model *m;
	ck_assert_int_eq(model_load(&m, path, NULL), 0);
	uint64_t total = unique_weight_bytes(m), big = 0;
	uint64_t layer = m->blocks[model_layer_block(m, 0)].nbytes;
	for (int b = 0; b < m->n_blocks; b++)
		if (m->blocks[b].nbytes > big)
			big = m->blocks[b].nbytes;
	/* tied: one shard set, seen by both ends of the plan */
	ck_assert_int_gt(m->n_emb_blocks, 1);
	ck_assert_int_eq(m->n_head_blocks, m->n_emb_blocks);
	ck_assert_int_eq(m->n_blocks, m->n_emb_blocks + m->hp.n_layer + m->n_head_blocks);
	ck_assert_ptr_eq(m->blocks[model_head_block(m, 1)].t[HEAD_OUTPUT].data,
			 m->blocks[1].t[EMB_TOKEN].data);
	model_free(m);
	struct collect ref;
	reference_tokens(path, &ref);
	struct wstore_opts wo;
	wstore_opts_default(&wo);
	wo.check_budgets = true;
	wo.ram_budget = big + 65536;                /* stages one block */
	wo.dev_budget = total / 4 - wo.ram_budget;  /* the rest of the quarter */
	ck_assert_uint_ge(wo.dev_budget, big + 2 * layer);
	ck_assert_uint_le(4 * (wo.dev_budget + wo.ram_budget), total);
	for (int async = 0; async < 2; async++) {
		wo.async_prefetch = async;
		struct wstore_stats st;
		run_tiered(path, &wo, &ref, &st);
		ck_assert_uint_gt(st.tier[WSTORE_TIER_DEV].evictions, 0);
		ck_assert_uint_gt(st.tier[WSTORE_TIER_RAM].evictions, 0);
		fprintf(stderr, "gemma at 1/4 (async %d): predictor accuracy %.1f%%, stalled %.1f%%\n",
			async, 100 * st.predictor_accuracy,
			100 * (st.wall_s > 0 ? st.stall_s / st.wall_s : 0));
	}
	/* Computing from the RAM tier with the whole quarter. */
	wo.compute_from_ram = true;
	wo.ram_budget = total / 4;
	wo.dev_budget = 0;
	wo.async_prefetch = true;
	run_tiered(path, &wo, &ref, NULL);
}
END_TEST

START_TEST(test_budget_refused)
{
	const char *path = layer_heavy();
	if (!path)
		path = gemma();
	if (!path)
		return;
	struct wstore_opts wo;
	wstore_opts_default(&wo);
	wo.dev_budget = 1 << 20;
	wo.ram_budget = (uint64_t)1 << 31; /* ample, so the device budget is what fails */
	struct engine_opts eo = { .model_path = path, .n_threads = 1, .n_ctx = 64, .weights = &wo };
	struct engine *e = NULL;
	struct smk_err err = { 0 };
	ck_assert_int_eq(engine_open(&e, &eo, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "memory.gpu_memory") && strstr(err.msg, "--gpu-memory") &&
		      strstr(err.msg, "1048576 bytes") && strstr(err.msg, "needs"), "%s", err.msg);
	wo.dev_budget = (uint64_t)1 << 31;
	wo.ram_budget = 4096;
	ck_assert_int_eq(engine_open(&e, &eo, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "memory.ram_cache") && strstr(err.msg, "4096 bytes"), "%s", err.msg);
}
END_TEST

START_TEST(test_whole_model_fits)
{
	/* Budgets that hold everything: after the first step every acquire
	 * hits, nothing is evicted, no byte moves again. */
	struct collect ref;
	struct wstore_opts wo;
	const char *path = tiered_setup(&ref, &wo);
	if (!path)
		return;
	wo.ram_budget = 1ull << 30;
	wo.dev_budget = 1ull << 30;
	struct wstore_stats st;
	run_tiered(path, &wo, &ref, &st);
	ck_assert_uint_eq(st.tier[WSTORE_TIER_DEV].evictions, 0);
	ck_assert_uint_eq(st.tier[WSTORE_TIER_RAM].evictions, 0);
	ck_assert_uint_eq(st.tier[WSTORE_TIER_DEV].bytes_in, st.tier[WSTORE_TIER_DEV].used);
	ck_assert_uint_le(st.tier[WSTORE_TIER_DEV].misses, 66); /* each unit once */
}
END_TEST

/* A tiered store's lookups read the table's rows alone (the CPU backend as
 * well as the device ones): no embedding block is ever acquired, the plan's
 * walk never prefetches one, and the tokens are the resident store's.  The
 * resident store, whose shards cost nothing to acquire, keeps them. */
START_TEST(test_lookup_by_rows)
{
	struct collect ref;
	struct wstore_opts wo;
	const char *path = tiered_setup(&ref, &wo);
	if (!path)
		return;
	for (int async = 0; async < 2; async++) {
		wo.ram_budget = 1ull << 30;
		wo.compute_from_ram = true;
		wo.async_prefetch = async;
		wo.trace_cap = 1 << 16;
		struct engine_opts eo = { .model_path = path, .n_threads = 2, .n_ctx = 256, .n_batch = 64,
					  .weights = &wo };
		struct engine *e;
		struct smk_err err = { 0 };
		ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);
		ck_assert(wstore_lookup_by_rows(e->ws));
		struct collect got;
		ck_assert_msg(generate(e, 16, &got, &err) == 0, "%s", err.msg);
		ck_assert_int_eq(got.n, ref.n);
		ck_assert_mem_eq(got.ids, ref.ids, sizeof(int32_t) * (size_t)ref.n);
		static int tr[1 << 16];
		const int n = wstore_trace(e->ws, tr, 1 << 16);
		ck_assert_int_gt(n, 16 * e->model->hp.n_layer);
		for (int i = 0; i < n; i++)
			ck_assert_msg(e->model->blocks[tr[i]].kind != BLOCK_EMBED,
				      "acquire %d of %d is embedding block %d", i, n, tr[i]);
		/* Nothing read that no block acquired: an untied table's units
		 * are never loaded (a tied one's come in with the head). */
		uint8_t res[4096];
		const int nb = wstore_residency(e->ws, res, 4096);
		ck_assert_int_eq(nb, e->model->n_blocks);
		const struct wtensor *table = &e->model->blocks[0].t[EMB_TOKEN];
		const struct wtensor *head = &e->model->blocks[model_head_block(e->model, 0)].t[HEAD_OUTPUT];
		if (table->data != head->data)
			for (int b = 0; b < e->model->n_emb_blocks; b++)
				ck_assert_msg(res[b] == 0, "embedding block %d is resident (%d)", b, res[b]);
		engine_close(e);
	}
	struct wstore *rs;
	struct model *m;
	ck_assert_int_eq(model_load(&m, path, NULL), 0);
	ck_assert_int_eq(wstore_new_resident(&rs, m, WSTORE_LOAD_MAP, NULL), 0);
	ck_assert(!wstore_lookup_by_rows(rs));
	wstore_free(rs);
	model_free(m);
}
END_TEST

START_TEST(test_recorded_trace_belady)
{
	/* Record the real acquire sequence of a generation (prefill chunks
	 * without logits skip the head), then replay it through a cache of
	 * half the blocks: predictive within 2 points of Belady, above LRU. */
	const char *path = layer_heavy();
	if (!path)
		path = gemma();
	if (!path)
		return;
	struct wstore_opts wo;
	wstore_opts_default(&wo);
	wo.ram_budget = 1ull << 30;
	wo.compute_from_ram = true;
	wo.trace_cap = 1 << 16;
	struct engine_opts eo = { .model_path = path, .n_threads = 2, .n_ctx = 256, .n_batch = 4,
				  .weights = &wo };
	struct engine *e;
	struct smk_err err = { 0 };
	ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);
	struct collect got;
	ck_assert_msg(generate(e, 16, &got, &err) == 0, "%s", err.msg);
	int *tr = malloc(sizeof(int) * (1 << 16));
	int n = wstore_trace(e->ws, tr, 1 << 16);
	int nb = e->model->n_blocks;
	engine_close(e);
	ck_assert_int_gt(n, 10 * nb);
	int cap = nb / 2;
	double opt = (double)belady(tr, n, nb, cap) / n;
	double pred = (double)simulate(WPOLICY_PREDICTIVE, tr, n, nb, cap, NULL, NULL) / n;
	double lru = (double)simulate(WPOLICY_LRU, tr, n, nb, cap, NULL, NULL) / n;
	double lfu = (double)simulate(WPOLICY_LFU, tr, n, nb, cap, NULL, NULL) / n;
	double fifo = (double)simulate(WPOLICY_FIFO, tr, n, nb, cap, NULL, NULL) / n;
	fprintf(stderr, "trace of %d acquires over %d blocks, cache %d blocks: hit rate belady %.2f%%, predictive %.2f%%, lru %.2f%%, lfu %.2f%%, fifo %.2f%%\n",
		n, nb, cap, 100 * opt, 100 * pred, 100 * lru, 100 * lfu, 100 * fifo);
	ck_assert_double_le(opt - pred, 0.02);
	ck_assert_double_gt(pred, lru);
	free(tr);
}
END_TEST

START_TEST(test_residency)
{
	/* wstore_residency (/stats weights.residency, the web view's map):
	 * once a generation is over and the prefetcher idle, no block is
	 * loading; a block is in a tier only if its bytes are (the layer
	 * blocks marked in a tier add up to no more than the tier holds); with
	 * budgets that hold the model every layer is in both tiers; and the
	 * resident store has no map. */
	const char *path = layer_heavy();
	if (!path)
		path = gemma();
	if (!path)
		return;
	for (int fits = 0; fits < 2; fits++) {
		struct wstore_opts wo;
		wstore_opts_default(&wo);
		wo.check_budgets = true;
		struct engine_opts eo = { .model_path = path, .n_threads = 2, .n_ctx = 256, .n_batch = 64,
					  .weights = &wo };
		struct engine *e;
		struct smk_err err = { 0 };
		ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);
		const struct model *m = e->model;
		wo.ram_budget = fits ? 1ull << 30 : m->weight_bytes / 3;
		wo.dev_budget = fits ? 1ull << 30 : m->weight_bytes / 4;
		engine_close(e);
		ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);
		m = e->model;
		struct collect got;
		ck_assert_msg(generate(e, 8, &got, &err) == 0, "%s", err.msg);
		uint8_t *r = malloc((size_t)m->n_blocks);
		int n = 0;
		for (int tries = 0; tries < 200; tries++) {   /* up to 2 s for prefetches in flight */
			n = wstore_residency(e->ws, r, m->n_blocks);
			bool loading = false;
			for (int b = 0; b < n; b++)
				loading |= (r[b] & WRES_LOADING) != 0;
			if (!loading)
				break;
			usleep(10000);
		}
		ck_assert_int_eq(n, m->n_blocks);
		struct wstore_stats st;
		wstore_get_stats(e->ws, &st);
		uint64_t in[2] = { 0, 0 };
		for (int il = 0; il < m->hp.n_layer; il++) {
			uint8_t x = r[model_layer_block(m, il)];
			ck_assert_msg(!(x & WRES_LOADING), "layer %d still loading", il);
			if (x & WRES_RAM)
				in[0] += m->blocks[model_layer_block(m, il)].nbytes;
			if (x & WRES_DEV)
				in[1] += m->blocks[model_layer_block(m, il)].nbytes;
			if (fits)
				ck_assert_msg((x & (WRES_RAM | WRES_DEV)) == (WRES_RAM | WRES_DEV),
					      "layer %d: residency %d with room for the whole model", il, x);
		}
		ck_assert_uint_le(in[0], st.tier[WSTORE_TIER_RAM].used);
		ck_assert_uint_le(in[1], st.tier[WSTORE_TIER_DEV].used);
		ck_assert_uint_gt(in[0] + in[1], 0);
		free(r);
		engine_close(e);
	}
	struct engine_opts eo = { .model_path = path, .n_threads = 2, .n_ctx = 256, .n_batch = 64 };
	struct engine *e;
	struct smk_err err = { 0 };
	ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);
	uint8_t one[4];
	ck_assert_int_eq(wstore_residency(e->ws, one, 4), 0);
	engine_close(e);
}
END_TEST

/* ---- faults ---- */

static volatile int fail_reads;   /* the fault-injection switch */

static ssize_t faulty_pread(int fd, void *buf, size_t n, off_t off)
{
	if (fail_reads) {
		errno = EIO;
		return -1;
	}
	return pread(fd, buf, n, off);
}

/* The fault tests run in both tier-0 read modes (_i: 0 pread, 1 O_DIRECT). */
static enum wstore_io io_mode(int i)
{
	return i ? WSTORE_IO_DIRECT : WSTORE_IO_PREAD;
}

START_TEST(test_read_error)
{
	struct collect ref;
	struct wstore_opts wo;
	const char *path = tiered_setup(&ref, &wo);
	if (!path)
		return;
	for (int async = 0; async < 2; async++) {
		wo.io = io_mode(_i);
		wo.pread_fn = faulty_pread;
		wo.async_prefetch = async;
		wo.dev_budget = 8 << 20;
		wo.ram_budget = 6 << 20;
		struct engine_opts eo = { .model_path = path, .n_threads = 2, .n_ctx = 256, .n_batch = 64,
					  .weights = &wo };
		struct engine *e;
		struct smk_err err = { 0 };
		ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);
		struct collect got;
		fail_reads = 1;
		ck_assert_int_eq(generate(e, 16, &got, &err), -EIO);
		ck_assert_msg(strstr(err.msg, path) && strstr(err.msg, "Input/output error") &&
			      strstr(err.msg, "tensor"), "%s", err.msg);
		struct wstore_stats st;
		wstore_get_stats(e->ws, &st);
		ck_assert_int_eq(st.io, wo.io);
		ck_assert_int_eq(st.pinned, 0);
		ck_assert_uint_gt(st.load_errors, 0);
		/* The store stays usable once reads work again. */
		fail_reads = 0;
		ck_assert_msg(generate(e, 16, &got, &err) == 0, "%s", err.msg);
		ck_assert_int_eq(got.n, ref.n);
		ck_assert_mem_eq(got.ids, ref.ids, sizeof(int32_t) * (size_t)ref.n);
		wstore_get_stats(e->ws, &st);
		ck_assert_int_eq(st.pinned, 0);
		engine_close(e);
	}
}
END_TEST

/* O_DIRECT tier-0 reads (what the store picks when the page cache cannot
 * hold the model): the quarter-budget proof's tokens, each policy, async
 * on and off, budgets held. */
START_TEST(test_direct_tokens)
{
	struct collect ref;
	struct wstore_opts wo;
	const char *path = tiered_setup(&ref, &wo);
	if (!path)
		return;
	wo.io = WSTORE_IO_DIRECT;
	wo.dev_budget = 8 << 20;
	wo.ram_budget = 6 << 20;
	for (int async = 0; async < 2; async++)
		for (int p = 0; p <= WPOLICY_PREDICTIVE; p++) {
			wo.async_prefetch = async;
			wo.policy = (enum wpolicy)p;
			struct wstore_stats st;
			run_tiered(path, &wo, &ref, &st);
			ck_assert_int_eq(st.io, WSTORE_IO_DIRECT);
			ck_assert_uint_gt(st.tier[WSTORE_TIER_RAM].evictions, 0);
		}
}
END_TEST

static int copy_file(const char *from, const char *to)
{
	FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
	if (!a || !b)
		return -1;
	static char buf[1 << 16];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), a)) > 0)
		if (fwrite(buf, 1, n, b) != n)
			return -1;
	fclose(a);
	return fclose(b);
}

START_TEST(test_truncated_file)
{
	struct collect ref;
	struct wstore_opts wo;
	const char *src = tiered_setup(&ref, &wo);
	if (!src)
		return;
	/* The copy sits next to the original (not in /tmp, which may be a
	 * tmpfs that refuses O_DIRECT). */
	char path[4200];
	snprintf(path, sizeof(path), "%s.trunc-XXXXXX", src);
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(copy_file(src, path), 0);
	wo.io = io_mode(_i);
	wo.dev_budget = 8 << 20;
	wo.ram_budget = 6 << 20;
	struct engine_opts eo = { .model_path = path, .n_threads = 2, .n_ctx = 256, .n_batch = 64,
				  .weights = &wo };
	struct engine *e;
	struct smk_err err = { 0 };
	ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);
	/* Cut the file in the middle of the layers, under the running model:
	 * only the tensor data goes, the metadata the tokenizer reads stays. */
	struct stat sb;
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(truncate(path, sb.st_size * 3 / 5), 0);
	struct collect got;
	ck_assert_int_eq(generate(e, 16, &got, &err), -EIO);
	ck_assert_msg(strstr(err.msg, "cut short") && strstr(err.msg, path), "%s", err.msg);
	struct wstore_stats st;
	wstore_get_stats(e->ws, &st);
	ck_assert_int_eq(st.pinned, 0);
	/* Put the bytes back: the same engine works again. */
	ck_assert_int_eq(copy_file(src, path), 0);
	ck_assert_msg(generate(e, 16, &got, &err) == 0, "%s", err.msg);
	ck_assert_mem_eq(got.ids, ref.ids, sizeof(int32_t) * (size_t)ref.n);
	engine_close(e);
	unlink(path);
}
END_TEST

START_TEST(test_resident_copy)
{
	/* memory.weights_in_ram: the copy's views hold the file's bytes, none
	 * of them in the mapping, a tied head's views the embedding's (one
	 * copy); /stats' in_ram says which store; auto copies a model far
	 * below the memory available; and the tokens are the mapping's. */
	const char *path = gemma();
	if (!path && !(path = layer_heavy()))
		return;
	struct model *m;
	struct smk_err err = { 0 };
	ck_assert_msg(model_load(&m, path, &err) == 0, "%s", err.msg);
	struct wstore *map, *copy;
	ck_assert_msg(wstore_new_resident(&map, m, WSTORE_LOAD_MAP, &err) == 0, "%s", err.msg);
	ck_assert_msg(wstore_new_resident(&copy, m, WSTORE_LOAD_COPY, &err) == 0, "%s", err.msg);
	struct wstore_stats st;
	wstore_get_stats(map, &st);
	ck_assert(!st.tiered && !st.in_ram);
	wstore_get_stats(copy, &st);
	ck_assert(!st.tiered && st.in_ram);
	const char *lo = (const char *)m->blocks[0].t[EMB_TOKEN].data, *hi = lo;
	int n_views = 0;
	for (int b = 0; b < m->n_blocks; b++)
		for (int k = 0; k < LT_COUNT; k++)
			if (m->blocks[b].has[k] && m->blocks[b].t[k].source >= 0) {
				const char *d = m->blocks[b].t[k].data;
				lo = d < lo ? d : lo;
				hi = d + m->blocks[b].t[k].nbytes > hi ? d + m->blocks[b].t[k].nbytes : hi;
			}
	for (int b = 0; b < m->n_blocks; b++) {
		const struct wblock *wm = wstore_acquire(map, b, &err), *wc = wstore_acquire(copy, b, &err);
		ck_assert(wm == &m->blocks[b] && wc && wc != wm);
		for (int k = 0; k < LT_COUNT; k++) {
			if (!wm->has[k])
				continue;
			const struct wtensor *a = &wm->t[k], *c = &wc->t[k];
			ck_assert(c->type == a->type && c->nbytes == a->nbytes && c->ne1 == a->ne1);
			ck_assert_mem_eq(c->data, a->data, a->nbytes);
			if (a->source < 0)
				continue;
			ck_assert_msg((const char *)c->data + c->nbytes <= lo || (const char *)c->data >= hi,
				      "block %d tensor %d: the copy's view is in the mapping", b, k);
			ck_assert_int_eq((uintptr_t)c->data % 64, (uintptr_t)a->data % 64);
			n_views++;
		}
		wstore_release(map, b);
		wstore_release(copy, b);
	}
	ck_assert_int_gt(n_views, m->hp.n_layer);
	const int head = model_head_block(m, 0);
	if (m->blocks[head].t[HEAD_OUTPUT].data == m->blocks[0].t[EMB_TOKEN].data) {
		const struct wblock *e0 = wstore_acquire(copy, 0, &err), *h0 = wstore_acquire(copy, head, &err);
		ck_assert(h0->t[HEAD_OUTPUT].data == e0->t[EMB_TOKEN].data);
		wstore_release(copy, 0);
		wstore_release(copy, head);
	}
	wstore_free(map);
	wstore_free(copy);
	model_free(m);

	struct collect got[3];
	const enum wstore_load loads[3] = { WSTORE_LOAD_MAP, WSTORE_LOAD_COPY, WSTORE_LOAD_AUTO };
	for (int i = 0; i < 3; i++) {
		struct engine_opts eo = { .model_path = path, .n_threads = 2, .n_ctx = 256, .n_batch = 8,
					  .load = loads[i] };
		struct engine *e;
		ck_assert_msg(engine_open(&e, &eo, &err) == 0, "%s", err.msg);
		wstore_get_stats(e->ws, &st);
		const uint64_t room = wt_io_cache_room();
		if (loads[i] != WSTORE_LOAD_AUTO)
			ck_assert(st.in_ram == (loads[i] == WSTORE_LOAD_COPY));
		else if (room != UINT64_MAX && room / 4 > e->model->weight_bytes)
			ck_assert_msg(st.in_ram, "auto: %llu bytes of weights, room %llu, not copied",
				      (unsigned long long)e->model->weight_bytes, (unsigned long long)room);
		ck_assert_msg(generate(e, 16, &got[i], &err) == 0, "%s", err.msg);
		ck_assert_int_eq(got[i].n, 16);
		ck_assert_mem_eq(got[i].ids, got[0].ids, sizeof(int32_t) * 16);
		engine_close(e);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("weights");
	TCase *tc = tcase_create("arena");
	tcase_add_test(tc, test_arena_random);
	tcase_add_test(tc, test_arena_first_fit);
	tcase_add_test(tc, test_arena_huge_pages);
	suite_add_tcase(s, tc);
	tc = tcase_create("policy");
	tcase_add_test(tc, test_policies_by_hand);
	tcase_add_test(tc, test_cyclic_scan);
	tcase_add_test(tc, test_predictor_learns);
	suite_add_tcase(s, tc);
	tc = tcase_create("engine");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_budget_refused);
	tcase_add_test(tc, test_whole_model_fits);
	tcase_add_test(tc, test_quarter_budget_tokens);
	tcase_add_test(tc, test_default_model_tokens);
	tcase_add_test(tc, test_default_model_quarter);
	tcase_add_test(tc, test_lookup_by_rows);
	tcase_add_test(tc, test_recorded_trace_belady);
	tcase_add_test(tc, test_residency);
	tcase_add_test(tc, test_resident_copy);
	tcase_add_loop_test(tc, test_read_error, 0, 2);
	tcase_add_loop_test(tc, test_truncated_file, 0, 2);
	tcase_add_test(tc, test_direct_tokens);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ck_run(suite());
}
