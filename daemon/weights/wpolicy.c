/* wpolicy.c - victim choice and the successor-learning plan predictor (see
 * wpolicy.h).  Both are O(candidates) / O(blocks) per call: a model has a
 * few hundred blocks at most, and the calls happen once per block step, not
 * per token row. */
#include "weights/wpolicy.h"

#include <stdlib.h>

const char *wpolicy_name(enum wpolicy p)
{
	switch (p) {
	case WPOLICY_LRU: return "lru";
	case WPOLICY_LFU: return "lfu";
	case WPOLICY_FIFO: return "fifo";
	case WPOLICY_PREDICTIVE: return "predictive";
	}
	return "?";
}

/* Is a a better victim than b under policy p? */
static bool better(enum wpolicy p, const struct wpolicy_cand *a, const struct wpolicy_cand *b)
{
	switch (p) {
	case WPOLICY_LFU:
		if (a->uses != b->uses)
			return a->uses < b->uses;
		return a->last_use < b->last_use;
	case WPOLICY_FIFO:
		return a->load_seq < b->load_seq;
	case WPOLICY_PREDICTIVE:
		if (a->dist != b->dist)
			return a->dist > b->dist;
		return a->last_use < b->last_use;
	case WPOLICY_LRU:
	default:
		return a->last_use < b->last_use;
	}
}

int wpolicy_pick(enum wpolicy p, const struct wpolicy_cand *c, int n)
{
	int best = -1;
	for (int i = 0; i < n; i++)
		if (best < 0 || better(p, &c[i], &c[best]))
			best = i;
	return best;
}

int wpredict_init(struct wpredict *p, int n_blocks, struct smk_err *err)
{
	p->n = n_blocks;
	p->cur = -1;
	p->predictions = p->correct = 0;
	p->succ = malloc(sizeof(int) * (size_t)n_blocks);
	if (!p->succ)
		return smk_fail(err, -ENOMEM, "predictor: out of memory for %d blocks", n_blocks);
	for (int b = 0; b < n_blocks; b++)
		p->succ[b] = (b + 1) % n_blocks;
	return 0;
}

void wpredict_deinit(struct wpredict *p)
{
	free(p->succ);
	p->succ = NULL;
}

void wpredict_observe(struct wpredict *p, int block)
{
	if (block < 0 || block >= p->n)
		return;
	if (p->cur >= 0) {
		p->predictions++;
		if (p->succ[p->cur] == block)
			p->correct++;
		else
			p->succ[p->cur] = block;
	}
	p->cur = block;
}

void wpredict_distances(const struct wpredict *p, int from, int *dist)
{
	for (int b = 0; b < p->n; b++)
		dist[b] = WPOLICY_FAR;
	if (from < 0 || from >= p->n)
		return;
	dist[from] = 0;
	int b = from;
	for (int d = 1; d <= p->n; d++) {
		b = p->succ[b];
		if (dist[b] != WPOLICY_FAR)
			break; /* the chain closed a loop: the rest is unreachable */
		dist[b] = d;
	}
}

int wpredict_ahead_skip(const struct wpredict *p, int from, int k, const bool *skip, int *out)
{
	int n = 0, b = from;
	if (from < 0 || from >= p->n)
		return 0;
	for (int step = 0; n < k && step < p->n; step++) {
		b = p->succ[b];
		if (b == from)
			break;
		if (skip[b])
			continue;
		for (int i = 0; i < n; i++)
			if (out[i] == b)
				return n;
		out[n++] = b;
	}
	return n;
}

int wpredict_ahead(const struct wpredict *p, int from, int k, int *out)
{
	int n = 0, b = from;
	if (from < 0 || from >= p->n)
		return 0;
	while (n < k && n < p->n) {
		b = p->succ[b];
		if (b == from)
			break;
		for (int i = 0; i < n; i++)
			if (out[i] == b)
				return n;
		out[n++] = b;
	}
	return n;
}
