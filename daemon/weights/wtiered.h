/* wtiered.h - the tiered store's state, shared by wstore_tiered.c (acquire,
 * release, loads, eviction) and wprefetch.c (the libuv prefetch loop).
 * Internal to daemon/weights.
 *
 * Locking: one mutex (ws->mu) guards every field below except the arenas'
 * memory contents.  Bytes are moved with the mutex released; a unit being
 * filled is in state LOADING in that tier, and a unit being read from (a
 * copy source, or the compute tier while in use) has pin > 0, so neither is
 * ever chosen for eviction while its bytes are touched.  ws->cv is broadcast
 * whenever a load ends or a pin drops, so waiters re-check their condition.
 */
#ifndef SMK_WEIGHTS_WTIERED_H
#define SMK_WEIGHTS_WTIERED_H

#include <pthread.h>
#include <uv.h>

#include "weights/warena.h"
#include "weights/wpolicy.h"
#include "util/clock.h"
#include "weights/wstore_impl.h"

enum wstate { WS_ABSENT, WS_LOADING, WS_RESIDENT };

#define WT_MAX_UNITS_PER_BLOCK 2   /* own tensors + a shared (tied) table shard */
#define WT_MAX_BLOCKS_PER_UNIT 2   /* a tied table shard: embedding + head */
#define WT_JOBS 2                  /* prefetch transfers in flight at once */
#define WT_DIRECT_ALIGN 4096u      /* O_DIRECT: offsets, lengths and buffers */
#define WT_PREFETCH_VICTIM_RATIO 2 /* a prefetch's victims: at most this x its unit */

/* One tensor of a unit: where its bytes are in the file and in the slot. */
struct wt_tensor {
	const char *name;
	uint64_t file_off, nbytes, slot_off;
	int source;                      /* index into ws->fds; -1: copy from mem */
	const void *mem;                 /* the bytes where they are mapped or held */
};

/* O_DIRECT layout: a run of a unit's tensors adjacent in one file, read
 * with one aligned read.  The span's bytes [file_off, file_off + len) land
 * at slot_off in the slot, so each tensor sits at slot_off + (its file
 * offset - file_off): the same alignment as in the file. */
struct wt_span {
	int source;
	uint64_t file_off, len;          /* WT_DIRECT_ALIGN-aligned */
	uint64_t need;                   /* bytes from file_off the tensors need (<= len) */
	uint64_t slot_off;
};

struct wt_unit {
	int first_tensor, n_tensors;     /* into ws->tens */
	int first_span, n_spans;         /* into ws->spans (direct reads only) */
	uint64_t size;                   /* slot bytes (tensors packed, aligned) */
	int blocks[WT_MAX_BLOCKS_PER_UNIT], n_blocks; /* blocks that use it (tied: embed + head shard) */
	struct {
		enum wstate state;
		int pin;                 /* readers right now (compute, copy source) */
		uint64_t off;            /* slot offset when LOADING/RESIDENT */
		bool prefetched;         /* loaded ahead, not acquired since */
		bool pf_failed;          /* a prefetch of it failed: leave it to the
		                          * compute thread, which reports the error
		                          * (retrying it ahead would livelock a
		                          * waiter against a failing read) */
	} t[WSTORE_N_TIERS];
	uint64_t last_use, uses, load_seq;
	uint64_t fetched_at;             /* clock when its last prefetch started */
	int dist;                        /* scratch: predicted distance to next use */
};

/* What a hinted block is (wstore_hint). */
enum wt_hint_kind {
	WT_HINT_NONE,
	WT_HINT_SURE,       /* about to be acquired */
	WT_HINT_PREDICTED,  /* worth a read, into cold room */
	WT_HINT_KEEP,       /* kept, moved up from RAM only */
};

struct wt_block {
	int units[WT_MAX_UNITS_PER_BLOCK];   /* largest first: pinned in this order */
	int n_units;
	int tunit[LT_COUNT];                 /* unit of tensor role i */
	uint64_t toff[LT_COUNT];             /* its offset in that unit's slot */
	struct wblock view;                  /* handed out; data fixed up at acquire */
	double t_acquired;
	int held;                            /* acquires not yet released */
};

struct wt_tier {
	bool active;
	struct warena arena;
	struct wtier_stats st;
	int busy;                            /* transfers in flight touching this tier */
};

struct wt_job {
	struct wstore_tiered *ws;
	uv_work_t req;
	bool active;
	int unit;
	int tier;                            /* tier being filled */
	int rc;
	double secs;
	char msg[256];
};

struct wstore_tiered {
	struct wstore base;
	const struct model *m;
	/* per layer of a MoE model (NULL for dense): expert acquires and how
	 * many found the unit resident in the compute tier (under mu) */
	uint64_t *xp_acquires, *xp_hits;     /* per layer (wexpert_layer_stats) */
	uint64_t *xp_ram_hits, *xp_bytes, *xp_stalls;
	double *xp_stall_s;
	struct wstore_opts o;
	int *fds;                            /* tier 0: the model's files, for pread */
	int *dfds;                           /* the same, opened O_DIRECT (direct only) */
	int n_fds;
	bool direct;                         /* tier-0 reads with O_DIRECT (wio.c) */
	bool remote;                         /* object storage: spans as for O_DIRECT,
					      * each one ranged GET (wio.c) */
	uint64_t io_room;                    /* AUTO's estimate of the page cache's room */
	struct wt_span *spans;
	int n_spans;
	const char *path;
	int ct;                              /* compute tier */
	const struct wdev *dev;              /* tier 2 on a device (o.dev), or NULL */
	void *dev_mem;                       /* its device arena (dev->alloc) */
	bool ram_registered;                 /* RAM arena page-locked by dev */

	struct wt_tensor *tens;
	int n_tens;
	struct wt_unit *units;
	int n_units;
	struct wt_block *blocks;
	int n_blocks;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct wt_tier tier[WSTORE_N_TIERS];
	struct wpredict pred;
	int *blk_dist;                       /* scratch per block */
	int *ahead;                          /* scratch: predicted next blocks */
	/* Conditional (expert) blocks: the predictor's walk skips them
	 * (skip[b]), and wstore_hint lists the ones to fetch next. */
	bool has_cond;                       /* the plan has expert blocks */
	bool *skip;                          /* per block: BLOCK_EXPERT (NULL if none) */
	int *hint;                           /* hinted blocks, in fetch order */
	int n_hint;
	int *hint_rank;                      /* per block: index in hint[], -1 */
	uint8_t *hint_kind;                  /* per block: enum wt_hint_kind */
	/* Steps, for the predicted hints' victims: the clock when the plan's
	 * first layer was last acquired, and the time before. */
	uint64_t step_clock, prev_step_clock;
	uint64_t clock;                      /* logical time: acquires */
	uint64_t load_clock;
	int cursor;                          /* last acquired block (not an expert) */
	int lookahead;
	double ewma_compute_s, ewma_load_s;  /* per block, for the adaptive lookahead */

	struct wstore_stats st;              /* counters not kept per tier */
	/* The first error of a slot arena (warena_alloc/free: a bug in the
	 * accounting), kept because the prefetch loop has no caller to tell:
	 * every later acquire fails with it. */
	int arena_rc, arena_tier;
	double t_start;

	int *trace;
	int trace_n, trace_pos;

	/* the prefetch loop (wprefetch.c) */
	bool pf_running, pf_stopping;
	pthread_t pf_thread;
	uv_loop_t loop;
	uv_async_t wake;
	struct wt_job jobs[WT_JOBS];
	int jobs_active;
};

/* Embedding lookups read rows (wstore_lookup_by_rows) unless the model
 * comes from object storage, where a row would be a request of its own. */
static inline bool wt_rows_lookup(const struct wstore_tiered *ws)
{
	return !ws->remote;
}

/* The plan's first block as the store walks it: the first layer's where
 * the embedding's blocks are looked up by rows, else 0. */
static inline int wt_plan_first(const struct wstore_tiered *ws)
{
	return wt_rows_lookup(ws) && ws->m->n_emb_blocks < ws->n_blocks ? ws->m->n_emb_blocks : 0;
}

/* wstore_tiered.c, called with ws->mu held. */
void wt_update_dist(struct wstore_tiered *ws);
/* Make room for unit u in tier t and take a slot (state stays ABSENT; the
 * caller sets LOADING).  limit >= 0: only evict units whose predicted next
 * use is further than `limit` and no larger than u (prefetch must not push
 * out what is needed sooner, nor a large unit for a small one); only units
 * last used before the clock cold_before (UINT64_MAX: any); can_wait: wait
 * for transfers in flight when nothing is evictable.  Returns 0, -ENOMEM,
 * or an arena's error (recorded in ws->arena_rc). */
int wt_reserve(struct wstore_tiered *ws, int u, int t, int limit, uint64_t cold_before,
	       bool can_wait);
/* Transfers with the mutex released: fill unit u's slot in tier t (from the
 * file for RAM, from the RAM slot for the device).  Returns 0 or a negative
 * code with a message in msg. */
int wt_transfer(struct wstore_tiered *ws, int u, int t, char *msg, size_t msg_len, double *secs);
/* Book a finished transfer (state, stats, wake waiters).  A failed one
 * gives its slot back; an arena error doing so is recorded in ws->arena_rc. */
void wt_transfer_done(struct wstore_tiered *ws, int u, int t, int rc, double secs, bool prefetch);

/* wio.c: tier-0 reads (wt_io_cache_room: wstore_impl.h). */
/* Decide ws->direct (from ws->o.io and, for AUTO, the room left for the
 * page cache next to arena_bytes of arenas) and open the O_DIRECT
 * descriptors when direct; ws->fds are open already.  A forced DIRECT that
 * the file system refuses is an error naming the file; AUTO falls back to
 * pread. */
int wt_io_open(struct wstore_tiered *ws, uint64_t arena_bytes, struct smk_err *err);
void wt_io_close(struct wstore_tiered *ws);
/* Lay out unit u's slot (tensor slot offsets, spans, size) for the chosen
 * read mode. */
void wt_io_layout(struct wstore_tiered *ws, int u);
/* n bytes at off of source file `source` (not a unit: wstore_read_rows),
 * through the same reads and messages as units; `name` names them. */
int wt_io_read_bytes(struct wstore_tiered *ws, int source, void *dst, uint64_t n, uint64_t off,
		     const char *name, char *msg, size_t msg_len);
/* Fill dst (unit U's slot) from tier 0.  0, or a negative code with a
 * message naming the file, the tensor, its offset and the reason. */
int wt_io_read_unit(struct wstore_tiered *ws, const struct wt_unit *U, uint8_t *dst, char *msg,
		    size_t msg_len);

/* wprefetch.c */
int wt_prefetch_start(struct wstore_tiered *ws, struct smk_err *err);
void wt_prefetch_stop(struct wstore_tiered *ws);
void wt_prefetch_kick(struct wstore_tiered *ws);   /* any thread, mutex not held */

#endif
