/* wstore_tiered.c - the weight hierarchy: file -> RAM arena -> device-slot
 * arena, with eviction by policy and demand loads in acquire.  The prefetch
 * loop lives in wprefetch.c; docs/hierarchy.md tells the whole story.
 *
 * Units: unit b holds block b's own tensors.  A tied output head has no
 * table of its own: head shard k uses embedding shard k's unit (plus, for
 * shard 0, its own unit with the output norm), so each table shard is
 * loaded once and shared.  A
 * block's units are pinned largest first, which (with the budget rule in
 * check_budgets) guarantees that they always fit together.
 */
#include "weights/wtiered.h"

#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "formats/gguf.h"
#include "util/log.h"

static const char *tier_key(int t)
{
	return t == WSTORE_TIER_RAM ? "memory.ram_cache (--ram-cache)" : "memory.gpu_memory (--gpu-memory)";
}

static const char *block_name(const struct wstore_tiered *ws, int b, char *buf, size_t len)
{
	const struct model *m = ws->m;
	const struct wblock *B = &m->blocks[b];
	if (B->kind == BLOCK_LAYER)
		snprintf(buf, len, "layer %d", B->layer);
	else if (B->kind == BLOCK_EXPERT)
		snprintf(buf, len, "layer %d expert %d", B->layer, B->expert);
	else if (B->kind == BLOCK_EMBED)
		snprintf(buf, len, m->n_emb_blocks > 1 ? "embedding shard %d of %d" : "embedding",
			 B->layer + 1, m->n_emb_blocks);
	else
		snprintf(buf, len, m->n_head_blocks > 1 ? "output head shard %d of %d" : "output head",
			 B->layer + 1, m->n_head_blocks);
	return buf;
}

/* ---- building units from the model's blocks ---- */

static void free_units(struct wstore_tiered *ws)
{
	free(ws->tens);
	free(ws->units);
	free(ws->blocks);
	free(ws->spans);
	ws->tens = NULL;
	ws->units = NULL;
	ws->blocks = NULL;
	ws->spans = NULL;
	ws->n_tens = ws->n_units = ws->n_blocks = ws->n_spans = 0;
}

/* Units, blocks and slot layouts (wt_io_layout: packed for pread, mirroring
 * the file for O_DIRECT, so ws->direct is decided before). */
static int build_units(struct wstore_tiered *ws, struct smk_err *err)
{
	const struct model *m = ws->m;
	ws->n_blocks = ws->n_units = m->n_blocks;
	ws->tens = calloc((size_t)m->n_blocks * LT_COUNT, sizeof(*ws->tens));
	ws->spans = calloc((size_t)m->n_blocks * LT_COUNT, sizeof(*ws->spans));
	ws->units = calloc((size_t)m->n_blocks, sizeof(*ws->units));
	ws->blocks = calloc((size_t)m->n_blocks, sizeof(*ws->blocks));
	if (!ws->tens || !ws->spans || !ws->units || !ws->blocks)
		return smk_fail(err, -ENOMEM, "weight hierarchy: out of memory for %d blocks", m->n_blocks);
	for (int b = 0; b < m->n_blocks; b++) {
		const struct wblock *src = &m->blocks[b];
		struct wt_block *B = &ws->blocks[b];
		struct wt_unit *U = &ws->units[b];
		int own[LT_COUNT];               /* tensor index of each own role */
		B->view = *src;
		U->first_tensor = ws->n_tens;
		U->blocks[U->n_blocks++] = b;
		B->units[B->n_units++] = b;
		for (int i = 0; i < LT_COUNT; i++) {
			own[i] = -1;
			if (!src->has[i])
				continue;
			const struct wtensor *t = &src->t[i];
			/* A tensor an earlier unit already holds: a tied head
			 * shard reads the embedding shard with the same rows.
			 * That unit is laid out already. */
			int shared = -1, shared_u = -1;
			/* Only head shards share (the search is quadratic: a MoE
			 * model has thousands of expert blocks). */
			for (int v = 0; v < b && shared < 0 && src->kind == BLOCK_HEAD; v++) {
				const struct wt_unit *E = &ws->units[v];
				for (int k = 0; k < E->n_tensors; k++)
					if (ws->tens[E->first_tensor + k].mem == t->data &&
					    ws->tens[E->first_tensor + k].nbytes == t->nbytes) {
						shared = E->first_tensor + k;
						shared_u = v;
					}
			}
			if (shared >= 0) {
				B->tunit[i] = shared_u;
				B->toff[i] = ws->tens[shared].slot_off;
				if (B->n_units == 1) {
					B->units[B->n_units++] = shared_u;
					struct wt_unit *S = &ws->units[shared_u];
					if (S->n_blocks < WT_MAX_BLOCKS_PER_UNIT)
						S->blocks[S->n_blocks++] = b;
				}
				continue;
			}
			struct wt_tensor *wt = &ws->tens[ws->n_tens];
			own[i] = ws->n_tens++;
			wt->name = t->name;
			wt->file_off = t->file_offset;
			wt->nbytes = t->nbytes;
			wt->source = t->source;
			wt->mem = t->data;
			U->n_tensors++;
			B->tunit[i] = b;
		}
		wt_io_layout(ws, b);
		for (int i = 0; i < LT_COUNT; i++)
			if (own[i] >= 0)
				B->toff[i] = ws->tens[own[i]].slot_off;
		if (U->n_tensors == 0 && B->n_units == 2) {
			/* Only shared tensors (head shards after the first of a
			 * tied model): the block uses the shared unit alone, and
			 * its own empty unit is never loaded. */
			B->units[0] = B->units[1];
			B->n_units = 1;
			U->n_blocks = 0;
		}
		/* Largest unit first (see the file comment). */
		if (B->n_units == 2 && ws->units[B->units[1]].size > U->size) {
			int tmp = B->units[0];
			B->units[0] = B->units[1];
			B->units[1] = tmp;
		}
	}
	return 0;
}

/* What one block needs in the compute tier at once: its largest unit plus
 * twice the rest, so that the rest always finds a hole next to a pinned
 * large unit wherever that unit happens to sit. */
static uint64_t block_need(const struct wstore_tiered *ws, int b)
{
	const struct wt_block *B = &ws->blocks[b];
	uint64_t need = ws->units[B->units[0]].size;
	for (int k = 1; k < B->n_units; k++)
		need += 2 * ws->units[B->units[k]].size;
	return need;
}

static int size_tiers(struct wstore_tiered *ws, uint64_t size[WSTORE_N_TIERS], struct smk_err *err)
{
	uint64_t total = 0, max_unit = 0, max_block = 0;
	int max_unit_i = 0, max_block_i = 0;
	for (int u = 0; u < ws->n_units; u++) {
		total += ws->units[u].size;
		if (ws->units[u].size > max_unit) {
			max_unit = ws->units[u].size;
			max_unit_i = u;
		}
	}
	for (int b = 0; b < ws->n_blocks; b++)
		if (block_need(ws, b) > max_block) {
			max_block = block_need(ws, b);
			max_block_i = b;
		}
	uint64_t budget[WSTORE_N_TIERS] = { ws->o.ram_budget, ws->o.dev_budget };
	char name[64];
	for (int t = 0; t < WSTORE_N_TIERS; t++) {
		if (!ws->tier[t].active) {
			size[t] = 0;
			continue;
		}
		/* The compute tier holds a whole block at once; the RAM tier below
		 * the device tier only stages one unit at a time. */
		uint64_t need = t == ws->ct ? max_block : max_unit;
		int who = t == ws->ct ? max_block_i : max_unit_i;
		if (budget[t] == 0) {
			size[t] = total;
			continue;
		}
		if (budget[t] < need)
			return smk_fail(err, -EINVAL,
					"%s = %llu bytes (%.1f MiB) is smaller than the %s block, which needs %llu bytes (%.1f MiB) there; the model's weights are %llu bytes (%.1f MiB)",
					tier_key(t), (unsigned long long)budget[t], budget[t] / 1048576.0,
					block_name(ws, who, name, sizeof(name)), (unsigned long long)need,
					need / 1048576.0, (unsigned long long)total, total / 1048576.0);
		size[t] = budget[t] < total ? budget[t] : total;
	}
	return 0;
}

/* ---- eviction ---- */

void wt_update_dist(struct wstore_tiered *ws)
{
	wpredict_distances(&ws->pred, ws->cursor, ws->blk_dist);
	if (ws->cursor < 0)
		for (int b = wt_plan_first(ws); b < ws->n_blocks; b++)
			ws->blk_dist[b] = b - wt_plan_first(ws) + 1;
	else if (ws->skip) {
		/* The chain holds the dense blocks only (experts are not
		 * observed: which ones a layer takes changes from token to
		 * token).  An expert is next needed when its layer next runs:
		 * its dense block's distance, or a whole cycle for the layer
		 * running now.  So the predictive policy evicts the experts of
		 * the layer furthest ahead first, least recently used among
		 * them. */
		const struct model *m = ws->m;
		int cycle = 1;
		for (int b = 0; b < ws->n_blocks; b++)
			if (!ws->skip[b] && ws->blk_dist[b] != WPOLICY_FAR && ws->blk_dist[b] + 1 > cycle)
				cycle = ws->blk_dist[b] + 1;
		for (int b = 0; b < ws->n_blocks; b++)
			if (ws->skip[b]) {
				const int d = ws->blk_dist[m->layer_block[m->blocks[b].layer]];
				ws->blk_dist[b] = d == 0 ? cycle : d;
			}
	}
	/* Announced blocks come next, in hint order, whatever the chain
	 * learned (it only knows the experts of the last pass). */
	for (int i = 0, r = 1; i < ws->n_hint; i++) {
		int b = ws->hint[i];
		if (ws->hint_rank[b] != i)
			continue; /* acquired already */
		if (r < ws->blk_dist[b])
			ws->blk_dist[b] = r;
		r++;
	}
	for (int u = 0; u < ws->n_units; u++) {
		struct wt_unit *U = &ws->units[u];
		U->dist = WPOLICY_FAR;
		for (int k = 0; k < U->n_blocks; k++)
			if (ws->blk_dist[U->blocks[k]] < U->dist)
				U->dist = ws->blk_dist[U->blocks[k]];
	}
}

/* The distance that matters for keeping u in tier t: a RAM copy of a unit
 * that sits in the device tier is not needed until the device copy goes. */
static int tier_dist(const struct wstore_tiered *ws, const struct wt_unit *U, int t)
{
	if (t == WSTORE_TIER_RAM && ws->ct == WSTORE_TIER_DEV &&
	    U->t[WSTORE_TIER_DEV].state == WS_RESIDENT)
		return U->dist >= WPOLICY_FAR - ws->n_blocks ? U->dist : U->dist + ws->n_blocks;
	return U->dist;
}

static int pick_victim(struct wstore_tiered *ws, int t, int limit, uint64_t max_size,
		       uint64_t cold_before)
{
	/* Scratch from the heap would be an allocation per eviction: the
	 * candidates go into a stack array in chunks instead. */
	struct wpolicy_cand cand[64];
	int idx[64], best = -1;
	struct wpolicy_cand best_c = { 0 };
	int n = 0;
	for (int u = 0; u <= ws->n_units; u++) {
		if (u < ws->n_units) {
			const struct wt_unit *U = &ws->units[u];
			int d = tier_dist(ws, U, t);
			if (U->t[t].state != WS_RESIDENT || U->t[t].pin > 0 || (limit >= 0 && d <= limit) ||
			    U->size > max_size || U->last_use >= cold_before ||
			    U->fetched_at >= cold_before)
				continue;
			cand[n] = (struct wpolicy_cand){ U->last_use, U->uses, U->load_seq, d };
			idx[n++] = u;
			if (n < 63)
				continue;
		}
		/* Flush the chunk, carrying the best so far as candidate 0. */
		if (best >= 0) {
			cand[n] = best_c;
			idx[n++] = best;
		}
		int k = wpolicy_pick(ws->o.policy, cand, n);
		if (k >= 0) {
			best = idx[k];
			best_c = cand[k];
		}
		n = 0;
	}
	return best;
}

/* Record the first error of tier t's arena (see wtiered.h) and return rc. */
static int arena_failed(struct wstore_tiered *ws, int t, int rc)
{
	if (!ws->arena_rc) {
		ws->arena_rc = rc;
		ws->arena_tier = t;
	}
	return rc;
}

static int arena_error(const struct wstore_tiered *ws, struct smk_err *err)
{
	return smk_fail(err, ws->arena_rc, "weight hierarchy: the slot accounting of %s failed: %s (a bug)",
			tier_key(ws->arena_tier), strerror(-ws->arena_rc));
}

static int evict(struct wstore_tiered *ws, int u, int t)
{
	struct wt_unit *U = &ws->units[u];
	int rc = warena_free(&ws->tier[t].arena, U->t[t].off, U->size);
	if (rc)
		return arena_failed(ws, t, rc);
	/* Kernels queued before the unit's last release may still read the
	 * slot: the next copies wait for them on the device. */
	if (t == WSTORE_TIER_DEV && ws->dev)
		ws->dev->evicted(ws->dev->ctx, u);
	U->t[t].state = WS_ABSENT;
	ws->tier[t].st.evictions++;
	if (U->t[t].prefetched)
		ws->st.prefetch_wasted++;
	U->t[t].prefetched = false;
	return 0;
}

int wt_reserve(struct wstore_tiered *ws, int u, int t, int limit, uint64_t cold_before,
	       bool can_wait)
{
	struct wt_tier *T = &ws->tier[t];
	struct wt_unit *U = &ws->units[u];
	for (;;) {
		int64_t off = warena_alloc(&T->arena, U->size);
		if (off < -1)
			return arena_failed(ws, t, (int)off);
		if (off >= 0) {
			U->t[t].off = (uint64_t)off;
			if (ws->o.check_budgets && T->arena.used > T->st.budget) {
				fprintf(stderr, "weight hierarchy: %s exceeded: %llu > %llu bytes\n",
					tier_key(t), (unsigned long long)T->arena.used,
					(unsigned long long)T->st.budget);
				abort();
			}
			return 0;
		}
		/* A prefetch evicts nothing much larger than what it loads:
		 * pushing out a large table to make room for a small layer
		 * ahead of time costs far more bytes than it saves (Belady
		 * counts blocks, the disk counts bytes).  Units of about one
		 * size trade places: a table shard is cut to at most the
		 * largest layer block, so a head shard is often a little
		 * smaller than the layer it would replace, and refusing that
		 * left every head shard to be loaded on demand (Llama-8B
		 * shape at a quarter, 16 clients: 90% of the stalls). */
		int v = pick_victim(ws, t, limit, limit >= 0 ? WT_PREFETCH_VICTIM_RATIO * U->size : UINT64_MAX,
				    cold_before);
		if (v >= 0) {
			int rc = evict(ws, v, t);
			if (rc)
				return rc;
			continue;
		}
		/* Nothing evictable: wait only for transfers that will end. */
		bool transient = T->busy > 0 ||
				 (t == WSTORE_TIER_RAM && ws->tier[WSTORE_TIER_DEV].busy > 0);
		if (!can_wait || !transient)
			return -ENOMEM;
		pthread_cond_wait(&ws->cv, &ws->mu);
		if (U->t[t].state != WS_ABSENT)
			return -EAGAIN; /* someone else started this very load */
	}
}

/* ---- transfers ---- */

int wt_transfer(struct wstore_tiered *ws, int u, int t, char *msg, size_t msg_len, double *secs)
{
	const struct wt_unit *U = &ws->units[u];
	double t0 = smk_now();
	uint8_t *dst = ws->tier[t].arena.base + U->t[t].off;
	int rc = 0;
	if (t == WSTORE_TIER_RAM) {
		rc = wt_io_read_unit(ws, U, dst, msg, msg_len);
	} else if (ws->dev) {
		/* A DMA copy on the device's copy stream, after the kernels
		 * that read whatever this slot held (evict() queued the wait);
		 * the device's own timing of the copy is the tier's busy time,
		 * so its bandwidth is the DMA's. */
		const uint8_t *src = ws->tier[WSTORE_TIER_RAM].arena.base + U->t[WSTORE_TIER_RAM].off;
		return ws->dev->copy_in(ws->dev->ctx, u, dst, src, U->size, secs, msg, msg_len);
	} else {
		/* The device stand-in: a host copy, where CUDA will issue a
		 * cudaMemcpyAsync on the copy stream from pinned RAM. */
		const uint8_t *src = ws->tier[WSTORE_TIER_RAM].arena.base + U->t[WSTORE_TIER_RAM].off;
		memcpy(dst, src, U->size);
	}
	*secs = smk_now() - t0;
	return rc;
}

void wt_transfer_done(struct wstore_tiered *ws, int u, int t, int rc, double secs, bool prefetch)
{
	struct wt_unit *U = &ws->units[u];
	struct wt_tier *T = &ws->tier[t];
	if (t == WSTORE_TIER_DEV)
		U->t[WSTORE_TIER_RAM].pin--;
	if (rc) {
		int frc = warena_free(&T->arena, U->t[t].off, U->size);
		if (frc)
			arena_failed(ws, t, frc);
		U->t[t].state = WS_ABSENT;
		U->t[t].pf_failed = prefetch;
		ws->st.load_errors++;
	} else {
		U->t[t].state = WS_RESIDENT;
		U->t[t].pf_failed = false;
		/* Only the hop into the compute tier counts as a prefetch: a RAM
		 * copy made on the way to the device is used by that copy. */
		U->t[t].prefetched = prefetch && t == ws->ct;
		U->load_seq = ++ws->load_clock;
		T->st.bytes_in += U->size;
		const struct wblock *b0 = &ws->m->blocks[U->blocks[0]];
		if (t == WSTORE_TIER_RAM && ws->xp_bytes && b0->kind == BLOCK_EXPERT)
			ws->xp_bytes[b0->layer] += U->size;
		T->st.busy_s += secs;
		/* Per-block load time for the lookahead: both hops count. */
		ws->ewma_load_s = ws->ewma_load_s > 0 ? 0.8 * ws->ewma_load_s + 0.2 * secs : secs;
	}
	pthread_cond_broadcast(&ws->cv);
}

/* Make unit u resident in tier t (mutex held; released while bytes move). */
static int ensure(struct wstore_tiered *ws, int u, int t, bool *waited, struct smk_err *err)
{
	struct wt_unit *U = &ws->units[u];
	char msg[256];
	if (ws->arena_rc)
		return arena_error(ws, err);
	for (;;) {
		if (U->t[t].state == WS_RESIDENT)
			return 0;
		if (U->t[t].state == WS_LOADING) {
			*waited = true;
			pthread_cond_wait(&ws->cv, &ws->mu);
			continue;
		}
		if (t == WSTORE_TIER_DEV) {
			struct wtier_stats *rs = &ws->tier[WSTORE_TIER_RAM].st;
			if (U->t[WSTORE_TIER_RAM].state == WS_RESIDENT)
				rs->hits++;
			else
				rs->misses++;
			int rc = ensure(ws, u, WSTORE_TIER_RAM, waited, err);
			if (rc)
				return rc;
			if (U->t[t].state != WS_ABSENT)
				continue;
			U->t[WSTORE_TIER_RAM].pin++;
			rc = wt_reserve(ws, u, t, -1, UINT64_MAX, true);
			if (rc) {
				U->t[WSTORE_TIER_RAM].pin--;
				pthread_cond_broadcast(&ws->cv);
				if (rc == -EAGAIN)
					continue;
				if (ws->arena_rc)
					return arena_error(ws, err);
				return smk_fail(err, rc, "weight hierarchy: no room for %llu bytes in %s although the budget passed the start-up check (fragmentation)",
						(unsigned long long)U->size, tier_key(t));
			}
		} else {
			int rc = wt_reserve(ws, u, t, -1, UINT64_MAX, true);
			if (rc == -EAGAIN)
				continue;
			if (rc && ws->arena_rc)
				return arena_error(ws, err);
			if (rc)
				return smk_fail(err, rc, "weight hierarchy: no room for %llu bytes in %s although the budget passed the start-up check (fragmentation)",
						(unsigned long long)U->size, tier_key(t));
		}
		U->t[t].state = WS_LOADING;
		ws->tier[t].busy++;
		*waited = true;
		pthread_mutex_unlock(&ws->mu);
		double secs = 0;
		int rc = wt_transfer(ws, u, t, msg, sizeof(msg), &secs);
		pthread_mutex_lock(&ws->mu);
		ws->tier[t].busy--;
		wt_transfer_done(ws, u, t, rc, secs, false);
		if (ws->arena_rc)
			return arena_error(ws, err);
		if (rc)
			return smk_fail(err, rc, "%s", msg);
	}
}

/* ---- the store interface ---- */

static void fix_views(struct wstore_tiered *ws, struct wt_block *B)
{
	const uint8_t *base = ws->tier[ws->ct].arena.base;
	for (int i = 0; i < LT_COUNT; i++)
		if (B->view.has[i])
			B->view.t[i].data = base + ws->units[B->tunit[i]].t[ws->ct].off + B->toff[i];
}

static const struct wblock *tiered_acquire(struct wstore *w, int block, struct smk_err *err)
{
	struct wstore_tiered *ws = (struct wstore_tiered *)w;
	if (block < 0 || block >= ws->n_blocks) {
		smk_fail(err, -EINVAL, "weight store: block %d out of range", block);
		return NULL;
	}
	double t0 = smk_now();
	pthread_mutex_lock(&ws->mu);
	struct wt_block *B = &ws->blocks[block];
	ws->st.acquires++;
	ws->clock++;
	if (ws->hint_rank && ws->hint_rank[block] >= 0)
		ws->hint_rank[block] = -1;
	if (ws->has_cond && block == ws->m->layer_block[0]) {
		/* a step starts (wt_reserve's cold_before) */
		ws->prev_step_clock = ws->step_clock;
		ws->step_clock = ws->clock;
	}
	/* The predictor and the walks follow the unconditional blocks; an
	 * expert block is placed by its layer (wt_update_dist). */
	if (!ws->skip || !ws->skip[block]) {
		wpredict_observe(&ws->pred, block);
		ws->cursor = block;
	}
	if (ws->trace) {
		ws->trace[ws->trace_pos] = block;
		ws->trace_pos = (ws->trace_pos + 1) % ws->o.trace_cap;
		if (ws->trace_n < ws->o.trace_cap)
			ws->trace_n++;
	}
	wt_update_dist(ws);
	bool waited = false;
	int k, rc = 0;
	for (k = 0; k < B->n_units; k++) {
		int u = B->units[k];
		struct wt_unit *U = &ws->units[u];
		struct wtier_stats *cs = &ws->tier[ws->ct].st;
		if (ws->xp_acquires && k == 0 && ws->m->blocks[block].kind == BLOCK_EXPERT) {
			const int il = ws->m->blocks[block].layer;
			ws->xp_acquires[il]++;
			ws->xp_hits[il] += U->t[ws->ct].state == WS_RESIDENT;
			ws->xp_ram_hits[il] += U->t[WSTORE_TIER_RAM].state == WS_RESIDENT;
		}
		if (U->t[ws->ct].state == WS_RESIDENT) {
			cs->hits++;
		} else {
			cs->misses++;
			if (U->t[ws->ct].state == WS_LOADING)
				ws->st.prefetch_late++;
		}
		if ((rc = ensure(ws, u, ws->ct, &waited, err)))
			break;
		U->t[ws->ct].pin++;
		if (U->t[ws->ct].prefetched) {
			ws->st.prefetch_used++;
			U->t[ws->ct].prefetched = false;
		}
		U->last_use = ws->clock;
		U->uses++;
	}
	if (rc) {
		while (k-- > 0)
			ws->units[B->units[k]].t[ws->ct].pin--;
		pthread_cond_broadcast(&ws->cv);
	} else {
		fix_views(ws, B);
		B->held++;
	}
	double t1 = smk_now();
	if (waited) {
		ws->st.stalls++;
		ws->st.stall_s += t1 - t0;
		if (ws->xp_stalls && ws->m->blocks[block].kind == BLOCK_EXPERT) {
			ws->xp_stalls[ws->m->blocks[block].layer]++;
			ws->xp_stall_s[ws->m->blocks[block].layer] += t1 - t0;
		}
	}
	B->t_acquired = t1;
	pthread_mutex_unlock(&ws->mu);
	wt_prefetch_kick(ws);
	return rc ? NULL : &B->view;
}

static void tiered_release(struct wstore *w, int block)
{
	struct wstore_tiered *ws = (struct wstore_tiered *)w;
	if (block < 0 || block >= ws->n_blocks)
		return;
	pthread_mutex_lock(&ws->mu);
	struct wt_block *B = &ws->blocks[block];
	if (B->held > 0) {
		B->held--;
		for (int k = 0; k < B->n_units; k++) {
			/* Every kernel reading the unit is queued by now: mark
			 * the spot on the compute stream before the unit can
			 * become a victim. */
			if (ws->dev && ws->ct == WSTORE_TIER_DEV)
				ws->dev->released(ws->dev->ctx, B->units[k]);
			ws->units[B->units[k]].t[ws->ct].pin--;
		}
		double dt = smk_now() - B->t_acquired;
		ws->st.compute_s += dt;
		ws->ewma_compute_s = ws->ewma_compute_s > 0 ? 0.8 * ws->ewma_compute_s + 0.2 * dt : dt;
		pthread_cond_broadcast(&ws->cv);
	}
	pthread_mutex_unlock(&ws->mu);
	wt_prefetch_kick(ws);
}

static void tiered_stats(struct wstore *w, struct wstore_stats *st)
{
	struct wstore_tiered *ws = (struct wstore_tiered *)w;
	pthread_mutex_lock(&ws->mu);
	*st = ws->st;
	st->tiered = true;
	st->compute_tier = ws->ct;
	for (int t = 0; t < WSTORE_N_TIERS; t++) {
		struct wtier_stats *s = &st->tier[t];
		*s = ws->tier[t].st;
		s->active = ws->tier[t].active;
		s->used = ws->tier[t].arena.used;
		s->peak = ws->tier[t].arena.peak;
		s->bandwidth = s->busy_s > 0 ? (double)s->bytes_in / s->busy_s : 0.0;
	}
	for (int u = 0; u < ws->n_units; u++)
		st->pinned += ws->units[u].t[ws->ct].pin > 0;
	st->predictions = ws->pred.predictions;
	st->predicted_ok = ws->pred.correct;
	st->predictor_accuracy = st->predictions ? (double)st->predicted_ok / (double)st->predictions : 0.0;
	st->lookahead = ws->lookahead;
	st->mlocked = ws->tier[WSTORE_TIER_RAM].arena.locked;
	st->dev_real = ws->dev != NULL;
	st->ram_dma_pinned = ws->ram_registered;
	st->io = ws->direct ? WSTORE_IO_DIRECT : WSTORE_IO_PREAD;
	st->io_cache_room = ws->io_room;
	st->wall_s = smk_now() - ws->t_start;
	pthread_mutex_unlock(&ws->mu);
}

static int tiered_expert_stats(struct wstore *w, struct wexpert_layer_stats *out, int max)
{
	struct wstore_tiered *ws = (struct wstore_tiered *)w;
	const struct model *m = ws->m;
	int n = 0;
	if (!ws->xp_acquires)
		return 0;
	pthread_mutex_lock(&ws->mu);
	for (int il = 0; il < m->hp.n_layer && n < max; il++, n++) {
		struct wexpert_layer_stats *x = &out[n];
		*x = (struct wexpert_layer_stats){ .layer = il, .n_expert = m->hp.n_expert,
						   .acquires = ws->xp_acquires[il], .hits = ws->xp_hits[il],
						   .ram_hits = ws->xp_ram_hits[il],
						   .bytes_read = ws->xp_bytes[il],
						   .stalls = ws->xp_stalls[il],
						   .stall_s = ws->xp_stall_s[il] };
		for (int e = 0; e < m->hp.n_expert; e++) {
			const struct wt_block *B = &ws->blocks[model_expert_block(m, il, e)];
			bool all = B->n_units > 0;
			for (int k = 0; k < B->n_units && all; k++)
				all = ws->units[B->units[k]].t[ws->ct].state == WS_RESIDENT;
			x->resident += all;
		}
	}
	pthread_mutex_unlock(&ws->mu);
	return n;
}

static int tiered_residency(struct wstore *w, uint8_t *out, int n)
{
	struct wstore_tiered *ws = (struct wstore_tiered *)w;
	if (n > ws->n_blocks)
		n = ws->n_blocks;
	pthread_mutex_lock(&ws->mu);
	for (int b = 0; b < n; b++) {
		const struct wt_block *B = &ws->blocks[b];
		uint8_t in[WSTORE_N_TIERS] = { B->n_units > 0, B->n_units > 0 }, loading = 0;
		for (int k = 0; k < B->n_units; k++)
			for (int t = 0; t < WSTORE_N_TIERS; t++) {
				enum wstate st = ws->units[B->units[k]].t[t].state;
				in[t] &= st == WS_RESIDENT;
				loading |= st == WS_LOADING;
			}
		out[b] = (uint8_t)((in[WSTORE_TIER_RAM] ? WRES_RAM : 0) | (in[WSTORE_TIER_DEV] ? WRES_DEV : 0) |
				   (loading ? WRES_LOADING : 0));
	}
	pthread_mutex_unlock(&ws->mu);
	return n;
}

static int tiered_trace(struct wstore *w, int *out, int max)
{
	struct wstore_tiered *ws = (struct wstore_tiered *)w;
	pthread_mutex_lock(&ws->mu);
	int n = ws->trace_n < max ? ws->trace_n : max;
	int start = (ws->trace_pos - ws->trace_n + ws->o.trace_cap) % (ws->o.trace_cap ? ws->o.trace_cap : 1);
	for (int i = 0; i < n; i++)
		out[i] = ws->trace[(start + i) % ws->o.trace_cap];
	pthread_mutex_unlock(&ws->mu);
	return n;
}

static void tiered_free(struct wstore *w)
{
	struct wstore_tiered *ws = (struct wstore_tiered *)w;
	wt_prefetch_stop(ws);
	/* No transfer is in flight once the prefetch loop stopped, and no
	 * block is held (the caller's contract).  The RAM arena is unlocked
	 * before it is unmapped; the device memory goes after the arena that
	 * borrowed it (warena_adopt). */
	if (ws->dev && ws->ram_registered)
		ws->dev->host_unregister(ws->dev->ctx, ws->tier[WSTORE_TIER_RAM].arena.base);
	for (int t = 0; t < WSTORE_N_TIERS; t++)
		warena_deinit(&ws->tier[t].arena);
	if (ws->dev && ws->dev_mem)
		ws->dev->free(ws->dev->ctx, ws->dev_mem);
	for (int i = 0; i < ws->n_fds; i++)
		if (ws->fds[i] >= 0)
			close(ws->fds[i]);
	free(ws->fds);
	wt_io_close(ws);
	wpredict_deinit(&ws->pred);
	pthread_cond_destroy(&ws->cv);
	pthread_mutex_destroy(&ws->mu);
	free(ws->trace);
	free(ws->blk_dist);
	free(ws->ahead);
	free(ws->skip);
	free(ws->hint);
	free(ws->hint_rank);
	free(ws->hint_kind);
	free(ws->xp_acquires);
	free(ws->xp_hits);
	free(ws->xp_ram_hits);
	free(ws->xp_bytes);
	free(ws->xp_stalls);
	free(ws->xp_stall_s);
	free_units(ws);
	free(ws);
}

/* Rows straight from tier 0 (buffered pread: a few rows, which the page
 * cache may well hold), or from the memory a converted tensor lives in.
 * No tier is touched, so no lock is needed (but to count a failed read):
 * the descriptors and the model are fixed for the store's life. */
static int tiered_read_rows(struct wstore *w, int block, int role, int64_t row, int n, void *dst,
			    struct smk_err *err)
{
	struct wstore_tiered *ws = (struct wstore_tiered *)w;
	const struct wtensor *t = wstore_rows_tensor(ws->m, block, role, row, n, err);
	if (!t)
		return err ? err->code : -EINVAL;
	const size_t len = (size_t)n * t->row_bytes;
	if (t->source < 0) {
		memcpy(dst, wtensor_row(t, row), len);
		return 0;
	}
	if (t->source >= ws->n_fds)
		return smk_fail(err, -EINVAL, "%s: source %d out of range", t->name, t->source);
	char msg[512];
	int rc = wt_io_read_bytes(ws, t->source, dst, len, t->file_offset + (uint64_t)row * t->row_bytes,
				  t->name, msg, sizeof(msg));
	if (!rc)
		return 0;
	pthread_mutex_lock(&ws->mu);
	ws->st.load_errors++;
	pthread_mutex_unlock(&ws->mu);
	return smk_fail(err, rc, "%s", msg);
}

/* Is block b in the compute tier right now (every unit it needs)? */
static bool block_ready(const struct wstore_tiered *ws, int b)
{
	const struct wt_block *B = &ws->blocks[b];
	for (int k = 0; k < B->n_units; k++)
		if (ws->units[B->units[k]].t[ws->ct].state != WS_RESIDENT)
			return false;
	return true;
}

static void tiered_hint(struct wstore *w, int *blocks, int n, int n_sure, int n_read)
{
	struct wstore_tiered *ws = (struct wstore_tiered *)w;
	if (!ws->hint)
		return;
	pthread_mutex_lock(&ws->mu);
	for (int i = 0; i < ws->n_hint; i++) {
		ws->hint_rank[ws->hint[i]] = -1;
		ws->hint_kind[ws->hint[i]] = WT_HINT_NONE;
	}
	ws->n_hint = 0;
	for (int i = 0; i < n; i++)
		if (blocks[i] >= 0 && blocks[i] < ws->n_blocks)
			ws->hint_kind[blocks[i]] = i < n_sure ? WT_HINT_SURE :
						   i < n_read ? WT_HINT_PREDICTED : WT_HINT_KEEP;
	/* Ready ones first (they cost no wait), then the missing ones in the
	 * caller's order: a stable partition through the hint array. */
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < n; i++) {
			int b = blocks[i];
			if (b < 0 || b >= ws->n_blocks || block_ready(ws, b) != (pass == 0))
				continue;
			if (ws->n_hint < ws->n_blocks && ws->hint_rank[b] < 0) {
				ws->hint_rank[b] = ws->n_hint;
				ws->hint[ws->n_hint++] = b;
			}
		}
	/* The caller's list in the order fetched (left as it was if it broke
	 * the contract: an entry out of range or repeated). */
	if (ws->n_hint == n)
		for (int i = 0; i < n; i++)
			blocks[i] = ws->hint[i];
	wt_update_dist(ws);
	pthread_mutex_unlock(&ws->mu);
	wt_prefetch_kick(ws);
}

static bool tiered_lookup_by_rows(const struct wstore *w)
{
	return wt_rows_lookup((const struct wstore_tiered *)w);
}

static const struct wstore_ops tiered_ops = {
	.acquire = tiered_acquire, .release = tiered_release, .free = tiered_free,
	.stats = tiered_stats, .trace = tiered_trace, .read_rows = tiered_read_rows,
	.hint = tiered_hint, .expert_stats = tiered_expert_stats, .residency = tiered_residency,
	.lookup_by_rows = tiered_lookup_by_rows,
};

int wstore_new_tiered(struct wstore **out, const struct model *m, const struct wstore_opts *o,
		      struct smk_err *err)
{
	static atomic_bool warned_mlock, warned_dma;
	struct wstore_tiered *ws = calloc(1, sizeof(*ws));
	if (!ws)
		return smk_fail(err, -ENOMEM, "weight hierarchy: out of memory");
	ws->base.ops = &tiered_ops;
	ws->m = m;
	ws->o = *o;
	ws->cursor = -1;
	ws->path = gguf_path(m->gguf);
	ws->ct = o->compute_from_ram ? WSTORE_TIER_RAM : WSTORE_TIER_DEV;
	ws->tier[WSTORE_TIER_RAM].active = true;
	ws->tier[WSTORE_TIER_DEV].active = ws->ct == WSTORE_TIER_DEV;
	ws->t_start = smk_now();
	pthread_mutex_init(&ws->mu, NULL);
	pthread_cond_init(&ws->cv, NULL);
	int rc;
	uint64_t size[WSTORE_N_TIERS] = { 0, 0 };
	const size_t nl = (size_t)m->hp.n_layer;
	if (m->hp.n_expert > 0 &&
	    (!(ws->xp_acquires = calloc(nl, sizeof(uint64_t))) ||
	     !(ws->xp_hits = calloc(nl, sizeof(uint64_t))) ||
	     !(ws->xp_ram_hits = calloc(nl, sizeof(uint64_t))) ||
	     !(ws->xp_bytes = calloc(nl, sizeof(uint64_t))) ||
	     !(ws->xp_stalls = calloc(nl, sizeof(uint64_t))) ||
	     !(ws->xp_stall_s = calloc(nl, sizeof(double))))) {
		rc = smk_fail(err, -ENOMEM, "weight hierarchy: out of memory");
		goto fail;
	}
	if (o->prefetch_blocks < 0 || o->lookahead_max < 0 || o->trace_cap < 0 ||
	    o->policy > WPOLICY_PREDICTIVE || o->io > WSTORE_IO_DIRECT) {
		rc = smk_fail(err, -EINVAL, "weight hierarchy: invalid options");
		goto fail;
	}
	/* One descriptor per file the weights live in (a GGUF file, or the
	 * shards of a safetensors directory). */
	ws->n_fds = gguf_n_sources(m->gguf);
	ws->fds = malloc(sizeof(int) * (size_t)ws->n_fds);
	if (!ws->fds) {
		ws->n_fds = 0;
		rc = smk_fail(err, -ENOMEM, "weight hierarchy: out of memory");
		goto fail;
	}
	for (int i = 0; i < ws->n_fds; i++)
		ws->fds[i] = -1;
	for (int i = 0; i < ws->n_fds; i++) {
		const char *src = gguf_source_path(m->gguf, i);
		if (gguf_source_remote(m->gguf, i))
			continue; /* object storage: read by wio.c through osrc_read */
		ws->fds[i] = open(src, O_RDONLY | O_CLOEXEC);
		if (ws->fds[i] < 0) {
			rc = smk_fail(err, -errno, "%s: cannot open for reading weights: %s", src,
				      strerror(errno));
			goto fail;
		}
		posix_fadvise(ws->fds[i], 0, 0, POSIX_FADV_SEQUENTIAL);
	}
	/* Tier-0 reads: O_DIRECT or pread (wio.c), decided before the layout,
	 * which depends on it.  The arenas, not yet allocated, will take at
	 * most the budgets (0: the whole model). */
	uint64_t wb = m->weight_bytes, arenas = o->ram_budget && o->ram_budget < wb ? o->ram_budget : wb;
	if (ws->tier[WSTORE_TIER_DEV].active)
		arenas += o->dev_budget && o->dev_budget < wb ? o->dev_budget : wb;
	if ((rc = wt_io_open(ws, arenas, err)) || (rc = build_units(ws, err)))
		goto fail;
	rc = size_tiers(ws, size, err);
	if (rc == -EINVAL && (ws->direct || ws->remote) && o->io == WSTORE_IO_AUTO) {
		/* Budgets that hold the packed units but not the aligned
		 * spans: read with pread rather than refuse. */
		wt_io_close(ws);
		free_units(ws);
		if ((rc = build_units(ws, err)))
			goto fail;
		rc = size_tiers(ws, size, err);
	}
	if (rc || (rc = wpredict_init(&ws->pred, ws->n_blocks, err)))
		goto fail;
	/* Lookups read the table's rows (wstore_lookup_by_rows) but from
	 * object storage, so the plan's walk leaves the embedding's blocks
	 * out: head -> first layer.  (A tied head still reaches their units
	 * through its own blocks; an acquire of one is learned like any other
	 * change of the plan.) */
	ws->pred.succ[ws->n_blocks - 1] = wt_plan_first(ws);
	ws->blk_dist = calloc((size_t)ws->n_blocks, sizeof(int));
	ws->ahead = calloc((size_t)ws->n_blocks + 1, sizeof(int));
	for (int b = 0; b < ws->n_blocks; b++)
		ws->has_cond |= m->blocks[b].kind == BLOCK_EXPERT;
	if (ws->has_cond) {
		ws->skip = calloc((size_t)ws->n_blocks, sizeof(bool));
		ws->hint = calloc((size_t)ws->n_blocks, sizeof(int));
		ws->hint_rank = malloc(sizeof(int) * (size_t)ws->n_blocks);
		ws->hint_kind = calloc((size_t)ws->n_blocks, 1);
		if (!ws->skip || !ws->hint || !ws->hint_rank || !ws->hint_kind) {
			rc = smk_fail(err, -ENOMEM, "weight hierarchy: out of memory");
			goto fail;
		}
		for (int b = 0; b < ws->n_blocks; b++) {
			ws->skip[b] = m->blocks[b].kind == BLOCK_EXPERT;
			ws->hint_rank[b] = -1;
		}
	}
	ws->trace = o->trace_cap ? calloc((size_t)o->trace_cap, sizeof(int)) : NULL;
	if (!ws->blk_dist || !ws->ahead || (o->trace_cap && !ws->trace)) {
		rc = smk_fail(err, -ENOMEM, "weight hierarchy: out of memory");
		goto fail;
	}
	static const char *arena_names[] = { "memory.ram_cache", "memory.gpu_memory" };
	ws->dev = ws->tier[WSTORE_TIER_DEV].active ? o->dev : NULL;
	if (ws->dev && (rc = ws->dev->init(ws->dev->ctx, ws->n_units, err)))
		goto fail;
	for (int t = 0; t < WSTORE_N_TIERS; t++) {
		if (!ws->tier[t].active)
			continue;
		/* A real device tier keeps only the accounting here; its
		 * memory is the device's. */
		bool host = !(t == WSTORE_TIER_DEV && ws->dev);
		if ((rc = warena_init(&ws->tier[t].arena, arena_names[t], size[t], ws->n_units, host,
				      t == WSTORE_TIER_RAM, o->check_budgets, err)))
			goto fail;
		ws->tier[t].st.budget = ws->tier[t].arena.size;
	}
	if (ws->dev) {
		struct warena *da = &ws->tier[WSTORE_TIER_DEV].arena, *ra = &ws->tier[WSTORE_TIER_RAM].arena;
		if ((rc = ws->dev->alloc(ws->dev->ctx, &ws->dev_mem, da->size, err)))
			goto fail;
		warena_adopt(da, ws->dev_mem);
		/* Page-locked RAM makes the copies true DMA, asynchronous to
		 * the host; refused, they still work (staged by the driver,
		 * slower).  Warned once per process, as the mlock below. */
		struct smk_err e2 = { 0, "" };
		if (ws->dev->host_register(ws->dev->ctx, ra->base, ra->map_len, &e2) == 0)
			ws->ram_registered = true;
		else if (!atomic_exchange(&warned_dma, true))
			log_warn("cannot page-lock the %.1f MiB RAM cache for DMA (%s); host->device weight copies will be staged and slower",
				ra->map_len / 1048576.0, e2.msg);
	}
	if (!ws->tier[WSTORE_TIER_RAM].arena.locked && !atomic_exchange(&warned_mlock, true))
		log_warn("cannot mlock the %.1f MiB RAM cache (%s); it may be paged out. Raise the memlock limit (ulimit -l, LimitMEMLOCK=) to pin it.",
			size[WSTORE_TIER_RAM] / 1048576.0, strerror(errno));
	ws->lookahead = o->prefetch_blocks;
	if (o->async_prefetch && o->prefetch_blocks > 0 && (rc = wt_prefetch_start(ws, err)))
		goto fail;
	*out = &ws->base;
	return 0;
fail:
	tiered_free(&ws->base);
	return rc;
}
