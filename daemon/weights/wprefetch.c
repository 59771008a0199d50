/* wprefetch.c - the prefetch loop: a libuv event loop on its own thread.
 *
 * The compute thread kicks the loop (uv_async_send, which coalesces) after
 * every acquire and release.  The loop then walks the predicted plan from
 * the block in use, `lookahead` blocks ahead, and starts the first missing
 * transfers in that order (nearest first) on libuv's threadpool
 * (uv_queue_work): disk->RAM reads with pread, RAM->device copies.  At most
 * WT_JOBS transfers are in flight, so a far block never delays a near one.
 * When a transfer ends (after_work, back on the loop thread) the next ones
 * are started.  A prefetch never evicts a unit that the plan needs sooner
 * than the one it loads, and never waits: when no room can be made it stops
 * until the next kick.
 *
 * The lookahead adapts: ceil(load time per transfer / compute time per
 * block) + 1 blocks, clamped to [runtime.prefetch_layers,
 * max(runtime.prefetch_layers, runtime.smoke_test_layers)].
 */
#include "weights/wtiered.h"

#include <math.h>
#include <stddef.h>

static void schedule(struct wstore_tiered *ws);

static void work_cb(uv_work_t *req)
{
	struct wt_job *j = (struct wt_job *)((char *)req - offsetof(struct wt_job, req));
	j->rc = wt_transfer(j->ws, j->unit, j->tier, j->msg, sizeof(j->msg), &j->secs);
}

static void close_if_done(struct wstore_tiered *ws)
{
	if (ws->pf_stopping && ws->jobs_active == 0 && !uv_is_closing((uv_handle_t *)&ws->wake))
		uv_close((uv_handle_t *)&ws->wake, NULL);
}

static void after_cb(uv_work_t *req, int status)
{
	struct wt_job *j = (struct wt_job *)((char *)req - offsetof(struct wt_job, req));
	struct wstore_tiered *ws = j->ws;
	pthread_mutex_lock(&ws->mu);
	ws->tier[j->tier].busy--;
	wt_transfer_done(ws, j->unit, j->tier, status ? status : j->rc, j->secs, true);
	j->active = false;
	ws->jobs_active--;
	if (ws->pf_stopping)
		close_if_done(ws);
	else
		schedule(ws);
	pthread_mutex_unlock(&ws->mu);
}

static void on_wake(uv_async_t *h)
{
	struct wstore_tiered *ws = h->data;
	pthread_mutex_lock(&ws->mu);
	if (ws->pf_stopping)
		close_if_done(ws);
	else
		schedule(ws);
	pthread_mutex_unlock(&ws->mu);
}

static void adapt_lookahead(struct wstore_tiered *ws)
{
	int lo = ws->o.prefetch_blocks;
	int hi = ws->o.lookahead_max > lo ? ws->o.lookahead_max : lo;
	int want = lo;
	if (ws->ewma_compute_s > 0 && ws->ewma_load_s > 0)
		want = (int)ceil(ws->ewma_load_s / ws->ewma_compute_s) + 1;
	ws->lookahead = want < lo ? lo : want > hi ? hi : want;
}

/* Start one transfer for unit u towards the compute tier; returns 1 when
 * started, 0 when nothing is to do for u now, -1 when no room can be made
 * (stop: units further ahead would fare no better).  cold_before: see
 * wt_reserve (a predicted unit's victims). */
static int start_one(struct wstore_tiered *ws, int u, uint64_t cold_before)
{
	struct wt_unit *U = &ws->units[u];
	int ct = ws->ct, t;
	if (U->t[ct].state != WS_ABSENT || U->t[ct].pf_failed ||
	    U->t[WSTORE_TIER_RAM].pf_failed)
		return 0;
	if (ct == WSTORE_TIER_DEV && U->t[WSTORE_TIER_RAM].state == WS_LOADING)
		return 0; /* its read is in flight; the copy follows when it ends */
	if (ct == WSTORE_TIER_DEV && U->t[WSTORE_TIER_RAM].state == WS_RESIDENT) {
		t = WSTORE_TIER_DEV;
		U->t[WSTORE_TIER_RAM].pin++;
		if (wt_reserve(ws, u, t, U->dist, cold_before, false)) {
			U->t[WSTORE_TIER_RAM].pin--;
			return -1;
		}
	} else {
		t = WSTORE_TIER_RAM;
		if (wt_reserve(ws, u, t, U->dist, cold_before, false))
			return -1;
	}
	struct wt_job *j = NULL;
	for (int i = 0; i < WT_JOBS && !j; i++)
		if (!ws->jobs[i].active)
			j = &ws->jobs[i];
	j->active = true;
	j->unit = u;
	j->tier = t;
	j->rc = 0;
	j->secs = 0;
	U->t[t].state = WS_LOADING;
	U->fetched_at = ws->clock;
	ws->tier[t].busy++;
	ws->jobs_active++;
	if (t == ws->ct)
		ws->st.prefetch_issued++;
	int rc = uv_queue_work(&ws->loop, &j->req, work_cb, after_cb);
	if (rc) {
		/* The callback will never run: undo as a failed transfer. */
		ws->tier[t].busy--;
		ws->jobs_active--;
		j->active = false;
		wt_transfer_done(ws, u, t, rc, 0, true);
		return -1;
	}
	return 1;
}

static void schedule(struct wstore_tiered *ws)
{
	if (ws->jobs_active >= WT_JOBS)
		return;
	adapt_lookahead(ws);
	int n = 0;
	/* Announced blocks first, in their order: the compute is about to
	 * acquire them.  Their hint ranks are their distances (wt_update_dist),
	 * so they may evict what the plan needs later.  Predicted ones come
	 * after the plan's blocks (those are sure), below. */
	for (int i = 0; i < ws->n_hint; i++)
		if (ws->hint_rank[ws->hint[i]] == i && ws->hint_kind[ws->hint[i]] == WT_HINT_SURE)
			ws->ahead[n++] = ws->hint[i];
	int *chain = ws->ahead + n, left = ws->n_blocks - n;
	int want = ws->lookahead < left ? ws->lookahead : left;
	if (ws->cursor < 0) {
		/* Before the first acquire: the plan's first blocks. */
		int m = 0;
		for (int b = wt_plan_first(ws); b < ws->n_blocks && m < want; b++)
			if (!ws->skip || !ws->skip[b])
				chain[m++] = b;
		n += m;
	} else if (ws->skip) {
		/* Conditional blocks are never predicted: only announced. */
		n += wpredict_ahead_skip(&ws->pred, ws->cursor, want, ws->skip, chain);
	} else {
		n += wpredict_ahead(&ws->pred, ws->cursor, want, chain);
	}
	const int n_plan = n;
	for (int i = 0; i < ws->n_hint && n < ws->n_blocks; i++)
		if (ws->hint_rank[ws->hint[i]] == i && ws->hint_kind[ws->hint[i]] != WT_HINT_SURE)
			ws->ahead[n++] = ws->hint[i];
	wt_update_dist(ws);
	/* A predicted unit may be wrong: it takes free room, or the place of
	 * a unit unused this step and the last - never what the routing keeps
	 * reusing, which a wrong guess would cost a second read.  One only to
	 * be kept is never read from the file. */
	const uint64_t cold = ws->prev_step_clock;
	for (int i = 0; i < n; i++) {
		const bool spec = i >= n_plan;
		const bool keep = spec && ws->hint_kind[ws->ahead[i]] == WT_HINT_KEEP;
		const struct wt_block *B = &ws->blocks[ws->ahead[i]];
		for (int k = 0; k < B->n_units; k++) {
			if (ws->jobs_active >= WT_JOBS)
				return;
			const struct wt_unit *U = &ws->units[B->units[k]];
			if (keep && (ws->ct != WSTORE_TIER_DEV ||
				     U->t[WSTORE_TIER_RAM].state != WS_RESIDENT))
				continue;
			if (start_one(ws, B->units[k], spec ? cold : UINT64_MAX) < 0)
				return;
		}
	}
}

static void *pf_main(void *arg)
{
	struct wstore_tiered *ws = arg;
	uv_run(&ws->loop, UV_RUN_DEFAULT);
	return NULL;
}

int wt_prefetch_start(struct wstore_tiered *ws, struct smk_err *err)
{
	for (int i = 0; i < WT_JOBS; i++)
		ws->jobs[i].ws = ws;
	int rc = uv_loop_init(&ws->loop);
	if (rc)
		return smk_fail(err, rc, "weight prefetch: uv_loop_init: %s", uv_strerror(rc));
	if ((rc = uv_async_init(&ws->loop, &ws->wake, on_wake))) {
		uv_loop_close(&ws->loop);
		return smk_fail(err, rc, "weight prefetch: uv_async_init: %s", uv_strerror(rc));
	}
	ws->wake.data = ws;
	if ((rc = pthread_create(&ws->pf_thread, NULL, pf_main, ws))) {
		uv_close((uv_handle_t *)&ws->wake, NULL);
		uv_run(&ws->loop, UV_RUN_DEFAULT);
		uv_loop_close(&ws->loop);
		return smk_fail(err, -rc, "weight prefetch: cannot start the thread");
	}
	ws->pf_running = true;
	/* Start loading the first blocks of the plan right away. */
	uv_async_send(&ws->wake);
	return 0;
}

void wt_prefetch_stop(struct wstore_tiered *ws)
{
	if (!ws->pf_running)
		return;
	pthread_mutex_lock(&ws->mu);
	ws->pf_stopping = true;
	pthread_mutex_unlock(&ws->mu);
	uv_async_send(&ws->wake);
	pthread_join(ws->pf_thread, NULL);
	uv_loop_close(&ws->loop);
	ws->pf_running = false;
}

void wt_prefetch_kick(struct wstore_tiered *ws)
{
	if (ws->pf_running)
		uv_async_send(&ws->wake);
}
