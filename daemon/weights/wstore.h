/* wstore.h - where the forward pass gets its weights from.
 *
 * The forward pass asks for one weight block at a time (acquire), runs it and
 * gives it back (release).  Between the two the block's tensor views stay
 * valid and the block cannot be evicted.  Two stores implement the seam:
 *
 *  - resident: hands out views of the file mapping (the kernel's page cache
 *    is the only cache).  Used when no budget is configured.
 *  - tiered: the weight hierarchy of docs/hierarchy.md.  Tier 0 is the model
 *    file (read with pread or O_DIRECT, see enum wstore_io; never through
 *    the mapping, so a file truncated under a running model fails an
 *    acquire instead of raising SIGBUS);
 *    tier 1 a page-aligned, mlock'ed RAM arena of memory.ram_cache bytes;
 *    tier 2 a device-slot arena of memory.gpu_memory bytes: device memory
 *    filled by DMA copies when wstore_opts.dev is set (compute/wdev.h; the
 *    views then hold device addresses, never read on the host), else a
 *    host-memory stand-in filled by memcpy.  Residency is
 *    per unit: one unit per block, except that a tied output head shard shares
 *    the unit of the embedding shard with the same rows (loaded once).  A libuv loop on its
 *    own thread prefetches the units the plan needs next.
 *
 * Threads: acquire/release are called by one compute thread at a time;
 * wstore_get_stats() may be called from any thread at any time.
 */
#ifndef SMK_WEIGHTS_WSTORE_H
#define SMK_WEIGHTS_WSTORE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "arch/model.h"
#include "util/err.h"
#include "compute/wdev.h"
#include "weights/wpolicy.h"

struct wstore;

enum wstore_tier { WSTORE_TIER_RAM = 0, WSTORE_TIER_DEV = 1, WSTORE_N_TIERS = 2 };

/* How tier 0 (the model's files) is read into the RAM tier.
 *  - PREAD: buffered pread(2); the page cache keeps what it can.  Best when
 *    the page cache can hold the file: after the first pass every read is a
 *    memory copy.
 *  - DIRECT: O_DIRECT reads straight into the RAM slot (no page cache, no
 *    copy, almost no CPU).  Best when it cannot: the cache would only churn
 *    (copies, reclaim) and never hit.  The slot then mirrors the file's
 *    layout: each run of adjacent tensors is read as one 4 KiB-aligned span,
 *    so a unit takes up to 8 KiB more per span.
 *  - AUTO (the default, what the daemon uses): DIRECT when the model's
 *    weights are larger than the page cache could hold next to the arenas
 *    (MemAvailable and, inside a memory cgroup, its limit), else PREAD;
 *    PREAD where the file system refuses O_DIRECT. */
enum wstore_io { WSTORE_IO_AUTO = 0, WSTORE_IO_PREAD, WSTORE_IO_DIRECT };

/* Settings of the tiered store (memory.* and runtime.* of the config). */
struct wstore_opts {
	uint64_t ram_budget;       /* memory.ram_cache, bytes; 0: room for every unit */
	uint64_t dev_budget;       /* memory.gpu_memory, bytes; 0: room for every unit */
	bool compute_from_ram;     /* views point into the RAM tier; the device tier
				    * is not used (CPU compute, enable_cpu_offload) */
	enum wpolicy policy;       /* runtime.cache_policy */
	int prefetch_blocks;       /* runtime.prefetch_layers: blocks ahead (0: none) */
	int lookahead_max;         /* runtime.smoke_test_layers: the adaptive lookahead's cap */
	bool async_prefetch;       /* runtime.async_prefetch; false: load in acquire */
	bool check_budgets;        /* abort() if an arena ever exceeds its budget (tests) */
	int trace_cap;             /* remember the last trace_cap acquired blocks (0: none) */
	enum wstore_io io;         /* tier-0 reads; AUTO unless a benchmark or test forces one */
	/* The device behind tier 2 (compute/wdev.h: device memory, DMA copies
	 * on a copy stream, events); NULL: the host-memory stand-in.  Must
	 * outlive the store. */
	const struct wdev *dev;
	/* Test-only fault injection: replaces pread(2) for tier-0 reads (both
	 * modes: with DIRECT it is called on the O_DIRECT descriptor). */
	ssize_t (*pread_fn)(int fd, void *buf, size_t n, off_t off);
};

/* Fill o with the config defaults (predictive, 2 ahead, lookahead 4, async). */
void wstore_opts_default(struct wstore_opts *o);

/* One tier's figures.  bytes_in / busy_s is the achieved bandwidth of the
 * transfers into the tier (disk->RAM reads, RAM->device copies). */
struct wtier_stats {
	bool active;
	uint64_t budget, used, peak;    /* bytes */
	uint64_t hits, misses;          /* unit requests that found / did not find it here */
	uint64_t evictions;
	uint64_t bytes_in;
	double busy_s;
	double bandwidth;               /* bytes/s, 0 before the first transfer */
};

struct wstore_stats {
	bool tiered;                    /* false: the resident store (all else 0
					 * but in_ram) */
	bool in_ram;                    /* resident: the views point into a copy
					 * in anonymous memory (WSTORE_LOAD_COPY) */
	int compute_tier;               /* enum wstore_tier the views point into */
	struct wtier_stats tier[WSTORE_N_TIERS];
	uint64_t acquires;
	uint64_t stalls;                /* acquires that waited for a load */
	double stall_s;                 /* time acquire spent waiting for weights */
	double compute_s;               /* time between acquire and release */
	double wall_s;                  /* since the store was created */
	uint64_t prefetch_issued, prefetch_used, prefetch_wasted, prefetch_late;
	uint64_t predictions, predicted_ok;   /* next block == predicted next block */
	double predictor_accuracy;      /* predicted_ok / predictions */
	int lookahead;                  /* current adaptive prefetch depth, blocks */
	uint64_t load_errors;
	int pinned;                     /* units in use right now (0 between steps) */
	bool mlocked;                   /* the RAM arena is locked in memory */
	bool dev_real;                  /* tier 2 is device memory (a wdev), not the stand-in */
	bool ram_dma_pinned;            /* the RAM arena is page-locked for DMA (wdev) */
	enum wstore_io io;              /* tier-0 reads as chosen (PREAD or DIRECT) */
	uint64_t io_cache_room;         /* AUTO: bytes the page cache could hold
					 * (UINT64_MAX: no limit found) */
};

/* Where the resident store's views point (memory.weights_in_ram).
 *  - MAP: into the model's file mapping (the page cache).
 *  - COPY: into a copy of the weights made at load in anonymous memory
 *    with transparent huge pages, read-only once filled.  Decode streams
 *    every weight once a token, and from 4 KiB page-cache pages the
 *    streams stall on the TLB: on Zen 4, 1 thread, the Q8_0 model decodes
 *    +5% and the 8B-shaped Q4_K_M +4% from the copy (docs/cpu.md).  It
 *    holds the weights' bytes in the process (the page cache's copy of
 *    the file stays reclaimable) and takes a memory copy at load.
 *  - AUTO (the default): COPY when the weights take at most half of what
 *    the page cache could hold (wt_io_cache_room: MemAvailable, a memory
 *    cgroup's limit), else MAP - a model near the memory's size keeps
 *    being served from the page cache, which can drop what it must. */
enum wstore_load { WSTORE_LOAD_AUTO = 0, WSTORE_LOAD_MAP, WSTORE_LOAD_COPY };

/* A store that serves every block from the model's mapping or a copy of
 * it (load).  The model must outlive the store.  *out owned by the caller
 * (wstore_free).  COPY fails with a message when the memory cannot be had. */
int wstore_new_resident(struct wstore **out, const struct model *m, enum wstore_load load,
			struct smk_err *err);

/* The weight hierarchy.  Allocates both arenas now (nothing later); refuses
 * a budget smaller than what one block needs, naming the key and the sizes.
 * The model must outlive the store.  *out owned by the caller (wstore_free),
 * which stops the prefetch thread. */
int wstore_new_tiered(struct wstore **out, const struct model *m, const struct wstore_opts *o,
		      struct smk_err *err);

void wstore_free(struct wstore *ws);

/* Block i of the model's plan, ready to compute with, or NULL with err set
 * (a read failed, the file was truncated, ...; the store stays usable).
 * Every successful acquire must be paired with one release. */
const struct wblock *wstore_acquire(struct wstore *ws, int block, struct smk_err *err);
void wstore_release(struct wstore *ws, int block);

/* Conditional blocks announced: the forward pass calls this as soon as it
 * knows which blocks it will acquire next (a MoE layer's chosen experts,
 * known once the layer's router has run), before acquiring them, and which
 * it predicts it will acquire after (the next layer's likely experts).
 * blocks[0..n) are distinct; blocks[0..n_sure) are each about to be
 * acquired once, blocks[n_sure..n) are predicted and may never be: those
 * before n_read worth a read from the file, the rest (weaker guesses) only
 * worth keeping and moving up from the RAM tier to the device.  The store
 * reorders blocks[] in place so that the ones it can hand out at once
 * (resident in the compute tier) come first, the others keeping their
 * order, and fetches the others: the sure ones ahead of anything the plan
 * predictor would prefetch, the predicted ones after it, and only into
 * free room or in place of units unused during this step and the last (a
 * step starts at the first layer's dense block), so that a wrong guess
 * costs its own read but never pushes out what the routing keeps reusing.
 * A hint replaces the previous one; acquiring a hinted block consumes its
 * entry.  Advice only: it never fails, and the resident store leaves
 * blocks[] as it is.  The plan predictor itself never prefetches an expert
 * block on its own (that would read every expert of the next layer: most
 * of a MoE model); it prefetches the dense blocks ahead as for a dense
 * model. */
void wstore_hint(struct wstore *ws, int *blocks, int n, int n_sure, int n_read);

/* Rows [row, row + n) of tensor role `role` of block `block`, as stored
 * (n x row_bytes bytes), into host memory dst, without making the block
 * resident in any tier: an embedding lookup needs a few rows of a table
 * whose shard would otherwise cross every tier for them.  Read from tier 0
 * (pread, never the mapping) or from the memory a converted tensor is held
 * in.  0, or a negative code with the file, offset and reason in err. */
int wstore_read_rows(struct wstore *ws, int block, int role, int64_t row, int n, void *dst,
		     struct smk_err *err);

/* Whether a table lookup should read its rows (wstore_read_rows) instead of
 * acquiring the table's shards: true for the tiered store, where a shard
 * crosses the tiers (16 MiB read, and room in every tier taken) for the few
 * rows a step looks up - unless the model is read from object storage,
 * where every row read would be a request of its own and a shard is one
 * request, kept in RAM; false for the resident store, whose shards are
 * mapped in place and cost nothing to acquire. */
bool wstore_lookup_by_rows(const struct wstore *ws);

/* A consistent copy of the statistics; any thread. */
void wstore_get_stats(struct wstore *ws, struct wstore_stats *st);

/* One MoE layer's experts in the compute tier: acquires of its expert
 * blocks, how many found their unit already resident (hits), and how many
 * of its experts are resident now. */
struct wexpert_layer_stats {
	int layer;
	int n_expert;
	int resident;               /* in the compute tier now */
	uint64_t acquires, hits;    /* hits: found in the compute tier */
	uint64_t ram_hits;          /* found in the RAM tier (= hits when it computes) */
	uint64_t bytes_read;        /* read from the file into the RAM tier */
	uint64_t stalls;            /* acquires that waited for a transfer */
	double stall_s;             /* and how long */
};

/* Per-layer expert statistics of a mixture-of-experts model into out[0..),
 * one entry per MoE layer up to max; returns the number filled (0 for a
 * dense model).  The resident store holds every expert (resident ==
 * n_expert, every acquire a hit).  Any thread, any time. */
int wstore_expert_stats(struct wstore *ws, struct wexpert_layer_stats *out, int max);

/* Where each block is now: one byte per block of the plan, a mask of
 * WRES_* (all of the block's units resident in that tier; LOADING: one of
 * them is being filled).  For the web view and /stats. */
enum { WRES_RAM = 1, WRES_DEV = 2, WRES_LOADING = 4 };

/* Fill out[0..n) (n = the model's n_blocks; fewer: the first n) under the
 * store's lock; any thread, any time.  Returns the number filled, or 0 for
 * the resident store (no tiers: every block is in the file mapping). */
int wstore_residency(struct wstore *ws, uint8_t *out, int n);

/* Copy the recorded acquire sequence (oldest first, up to max); returns how
 * many were copied. */
int wstore_trace(struct wstore *ws, int *out, int max);

/* Print the statistics in human-readable form (smoked --stats). */
void wstore_stats_print(const struct wstore_stats *st, FILE *f);

#endif
