/* wstore.c - dispatch to the store implementation, option defaults and the
 * human-readable statistics (smoked --stats). */
#include "weights/wstore_impl.h"

#include <string.h>

void wstore_opts_default(struct wstore_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->policy = WPOLICY_PREDICTIVE;
	o->prefetch_blocks = 2;
	o->lookahead_max = 4;
	o->async_prefetch = true;
}

void wstore_free(struct wstore *ws)
{
	if (ws)
		ws->ops->free(ws);
}

int wstore_read_rows(struct wstore *ws, int block, int role, int64_t row, int n, void *dst,
		     struct smk_err *err)
{
	if (!ws->ops->read_rows)
		return smk_fail(err, -ENOTSUP, "weight store: no row reads");
	return ws->ops->read_rows(ws, block, role, row, n, dst, err);
}

/* The tensor a row read names, checked (every store shares this). */
const struct wtensor *wstore_rows_tensor(const struct model *m, int block, int role, int64_t row,
					 int n, struct smk_err *err)
{
	if (block < 0 || block >= m->n_blocks || role < 0 || role >= LT_COUNT ||
	    !m->blocks[block].has[role]) {
		smk_fail(err, -EINVAL, "weight store: block %d has no tensor of role %d", block, role);
		return NULL;
	}
	const struct wtensor *t = &m->blocks[block].t[role];
	if (n <= 0 || row < 0 || row + n > t->ne1) {
		smk_fail(err, -ERANGE, "weight store: rows %lld..%lld of %s are outside its %lld rows",
			 (long long)row, (long long)row + n - 1, t->name ? t->name : "(tensor)",
			 (long long)t->ne1);
		return NULL;
	}
	return t;
}

bool wstore_lookup_by_rows(const struct wstore *ws)
{
	return ws->ops->lookup_by_rows && ws->ops->read_rows && ws->ops->lookup_by_rows(ws);
}

void wstore_hint(struct wstore *ws, int *blocks, int n, int n_sure, int n_read)
{
	if (!ws || !ws->ops->hint || n <= 0)
		return;
	n_sure = n_sure < 0 ? 0 : n_sure > n ? n : n_sure;
	n_read = n_read < n_sure ? n_sure : n_read > n ? n : n_read;
	ws->ops->hint(ws, blocks, n, n_sure, n_read);
}

const struct wblock *wstore_acquire(struct wstore *ws, int block, struct smk_err *err)
{
	return ws->ops->acquire(ws, block, err);
}

void wstore_release(struct wstore *ws, int block)
{
	ws->ops->release(ws, block);
}

void wstore_get_stats(struct wstore *ws, struct wstore_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (ws && ws->ops->stats)
		ws->ops->stats(ws, st);
}

int wstore_expert_stats(struct wstore *ws, struct wexpert_layer_stats *out, int max)
{
	return ws && ws->ops->expert_stats ? ws->ops->expert_stats(ws, out, max) : 0;
}

int wstore_residency(struct wstore *ws, uint8_t *out, int n)
{
	return ws && ws->ops->residency && n > 0 ? ws->ops->residency(ws, out, n) : 0;
}

int wstore_trace(struct wstore *ws, int *out, int max)
{
	return ws && ws->ops->trace ? ws->ops->trace(ws, out, max) : 0;
}

static double ratio(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0.0;
}

void wstore_stats_print(const struct wstore_stats *st, FILE *f)
{
	if (!st->tiered) {
		fprintf(f, "weights: resident (%s; no budgets configured)\n",
			st->in_ram ? "a copy in memory" : "file mapping");
		return;
	}
	static const char *names[] = { "ram", "device" };
	fprintf(f, "weights: tiered, compute reads the %s tier\n", names[st->compute_tier]);
	for (int t = 0; t < WSTORE_N_TIERS; t++) {
		const struct wtier_stats *s = &st->tier[t];
		if (!s->active) {
			fprintf(f, "  %-6s  not used\n", names[t]);
			continue;
		}
		fprintf(f, "  %-6s  used %.1f / %.1f MiB (peak %.1f), hits %llu, misses %llu (hit rate %.1f%%), "
			"evictions %llu, in %.1f MiB at %.2f GB/s\n",
			names[t], s->used / 1048576.0, s->budget / 1048576.0, s->peak / 1048576.0,
			(unsigned long long)s->hits, (unsigned long long)s->misses,
			100.0 * ratio(s->hits, s->hits + s->misses), (unsigned long long)s->evictions,
			s->bytes_in / 1048576.0, s->bandwidth / 1e9);
	}
	fprintf(f, "  prefetch issued %llu, used %llu, wasted %llu, late %llu; lookahead %d blocks\n",
		(unsigned long long)st->prefetch_issued, (unsigned long long)st->prefetch_used,
		(unsigned long long)st->prefetch_wasted, (unsigned long long)st->prefetch_late,
		st->lookahead);
	fprintf(f, "  acquires %llu, stalls %llu, stalled %.3f s of %.3f s wall (%.1f%%), compute %.3f s\n",
		(unsigned long long)st->acquires, (unsigned long long)st->stalls, st->stall_s, st->wall_s,
		100.0 * (st->wall_s > 0 ? st->stall_s / st->wall_s : 0.0), st->compute_s);
	/* io_cache_room is only measured when the mode was chosen (AUTO). */
	fprintf(f, "  tier 0: %s", st->io == WSTORE_IO_DIRECT ? "O_DIRECT reads" : "pread through the page cache");
	if (st->io_cache_room != UINT64_MAX)
		fprintf(f, " (room for the page cache: %.1f MiB)", st->io_cache_room / 1048576.0);
	fputc('\n', f);
	fprintf(f, "  predictor accuracy %.1f%% (%llu of %llu), load errors %llu, RAM arena %s\n",
		100.0 * st->predictor_accuracy, (unsigned long long)st->predicted_ok,
		(unsigned long long)st->predictions, (unsigned long long)st->load_errors,
		st->mlocked ? "mlock'ed" : "not locked");
	if (st->dev_real)
		fprintf(f, "  device tier: device memory; RAM %s for DMA\n",
			st->ram_dma_pinned ? "page-locked" : "NOT page-locked (staged copies)");
}
