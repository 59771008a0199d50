/* pcache.h - the prompt cache: the keys and values of finished sequences,
 * kept by token prefix so that a later request that starts with the same
 * tokens copies them instead of computing them again.
 *
 * Tier: host RAM, on every backend.  One region of limits.prompt_cache
 * bytes is allocated when the worker starts (allocate at load, never per
 * token); entries are placed in it first fit (exec/kvpool.h) and evicted
 * least recently used until a new one fits.  With CUDA the copies are
 * device <-> host (backend_download at the end of a sequence, backend_upload
 * at admission), so the prompt cache never takes device memory from the
 * weights (memory.gpu_memory) or from running sequences (limits.kv_budget):
 * it is a separate budget, and a restored prefix occupies the admitted
 * sequence's own KV extent like computed positions do.
 *
 * An entry: the n tokens it covers, then for each layer K rows [0, n), then
 * for each layer V rows [0, n), fp16 as in kvcache.h, so restoring a prefix
 * of p <= n positions is one contiguous copy per layer and half.
 *
 * Sliding-window layers (Gemma 3, gpt-oss): a sequence's cache holds every
 * position of every layer (kvcache.h: n_ctx rows per layer, the window is a
 * mask in attention, not a ring), and so does an entry.  Any prefix of an
 * entry is therefore exactly the keys and values a fresh prefill of those
 * tokens writes, sliding layers included, and a prefix shorter than the
 * entry is reused as safely as the whole one.  (Keeping only the last W
 * rows of sliding layers would save memory on long entries but then allow
 * only prefixes p with p - W >= n - W, i.e. the whole entry; not done.)
 *
 * The logits of the last prompt token are never cached: a lookup returns at
 * most max_len positions, and the caller passes n_prompt - 1, so at least one
 * token always runs through the model.
 *
 * Not thread-safe: the worker thread alone uses it; its counters reach other
 * threads through the worker's statistics (copied under the worker's lock). */
#ifndef SMK_EXEC_PCACHE_H
#define SMK_EXEC_PCACHE_H

#include <stdint.h>

#include "exec/kvcache.h"
#include "util/err.h"

struct pcache;

struct pcache_stats {
	uint64_t budget;           /* bytes of the region */
	uint64_t bytes;            /* held by entries (rounded as placed) */
	int entries;
	uint64_t lookups;          /* restores tried (requests admitted) */
	uint64_t hits;             /* of which reused at least one position */
	uint64_t tokens_saved;     /* positions copied instead of computed */
	uint64_t stores;           /* entries made */
	uint64_t evictions;        /* entries dropped for room (LRU) */
	uint64_t superseded;       /* entries dropped because a newer one extends them */
	uint64_t too_big;          /* sequences not kept: larger than the budget */
};

/* A cache of `budget` bytes for a model of n_layer layers and kv_dim halves
 * per position and layer (kvcache.h).  *out owned by the caller
 * (pcache_free).  -EINVAL for a budget that holds no entry of one position,
 * -ENOMEM naming limits.prompt_cache when the region cannot be had. */
int pcache_new(struct pcache **out, uint64_t budget, int n_layer, int64_t kv_dim,
	       struct smk_err *err);
void pcache_free(struct pcache *pc);

/* Bytes an entry of n positions takes in the region (with its tokens and
 * the rounding of each part). */
uint64_t pcache_entry_bytes(const struct pcache *pc, int n);

/* The longest prefix of tok[0..n) that an entry holds, at most max_len
 * positions, without copying (tests and diagnostics); 0 if none. */
int pcache_peek(const struct pcache *pc, const int32_t *tok, int n, int max_len);

/* Copy the longest cached prefix of tok[0..n), at most max_len positions,
 * into kv (which must be empty, kv->n_pos == 0, and hold max_len
 * positions), set kv->n_pos to its length and return it (0: nothing
 * reused, kv untouched).  The entry becomes the most recently used.  A
 * negative errno if the copy into backend memory fails (kv->n_pos is then
 * 0 again). */
int pcache_restore(struct pcache *pc, const int32_t *tok, int n, int max_len, struct kvcache *kv,
		   struct smk_err *err);

/* Keep kv's positions [0, kv->n_pos), which are tok[0..kv->n_pos), as an
 * entry, evicting least recently used entries until it fits.  An entry
 * that already holds these tokens (or more) is only marked used; entries
 * whose tokens are a prefix of these are dropped (the new one serves every
 * request they would).  A sequence larger than the whole region is not
 * kept (counted in too_big).  Returns 0, or a negative errno if the copy
 * out of backend memory fails (nothing is kept then). */
int pcache_store(struct pcache *pc, const int32_t *tok, struct kvcache *kv, struct smk_err *err);

void pcache_get_stats(const struct pcache *pc, struct pcache_stats *out);

#endif
