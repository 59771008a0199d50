/* wpolicy.h - eviction policies and the plan predictor of the weight
 * hierarchy, kept free of any store state so that the store and the trace
 * simulator of the tests run exactly the same decisions.
 *
 * A policy picks a victim among candidates (resident, not in use) from four
 * numbers per candidate:
 *   lru         least recent use
 *   lfu         fewest uses (ties: least recent use)
 *   fifo        earliest load
 *   predictive  furthest predicted next use (ties: least recent use): the
 *               plan of a dense model is cyclic (embed, layers, head, embed,
 *               ...), so the predictor knows the future and the choice
 *               approaches Belady's optimum.
 *
 * The predictor ("smoke test") learns the observed successor of each block
 * (initially the plan order, block b -> b+1, head -> embed) and walks that
 * chain to give each block its distance to the next use.  A chunk that needs
 * no logits skips the head; the learned chain follows such changes after one
 * misprediction.
 */
#ifndef SMK_WEIGHTS_WPOLICY_H
#define SMK_WEIGHTS_WPOLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

enum wpolicy { WPOLICY_LRU, WPOLICY_LFU, WPOLICY_FIFO, WPOLICY_PREDICTIVE };

#define WPOLICY_FAR (1 << 30)   /* distance of a block the walk never reaches */

struct wpolicy_cand {
	uint64_t last_use;   /* logical clock of the last acquire */
	uint64_t uses;
	uint64_t load_seq;   /* logical clock of the load */
	int dist;            /* predicted acquires until the next use */
};

/* Index (into c[0..n)) of the victim, or -1 if n == 0. */
int wpolicy_pick(enum wpolicy p, const struct wpolicy_cand *c, int n);

const char *wpolicy_name(enum wpolicy p);

struct wpredict {
	int n;                  /* blocks in the plan */
	int *succ;              /* learned successor of each block (owned) */
	int cur;                /* last observed block, -1 before the first */
	uint64_t predictions, correct;
};

/* *p's arrays owned by p (wpredict_deinit). */
int wpredict_init(struct wpredict *p, int n_blocks, struct smk_err *err);
void wpredict_deinit(struct wpredict *p);

/* Record that `block` was used next; updates the accuracy counters and
 * learns the successor. */
void wpredict_observe(struct wpredict *p, int block);

/* dist[b] for every block: how many acquires after `from` block b is next
 * predicted to be used (1 = the next one; from itself gets 0), WPOLICY_FAR
 * if the walk of up to p->n steps does not reach it. */
void wpredict_distances(const struct wpredict *p, int from, int *dist);

/* The next k predicted blocks after `from`, into out; returns how many
 * (fewer when the chain loops back onto a block already listed). */
int wpredict_ahead(const struct wpredict *p, int from, int k, int *out);

/* As wpredict_ahead, but the walk passes over blocks with skip[b] set
 * (conditional blocks: MoE experts, fetched only when announced) without
 * listing them: the next k others, at most one cycle of the chain. */
int wpredict_ahead_skip(const struct wpredict *p, int from, int k, const bool *skip, int *out);

#endif
