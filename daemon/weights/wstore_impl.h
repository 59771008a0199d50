/* wstore_impl.h - what every weight store implements (internal to
 * daemon/weights).  struct wstore is the first member of each store. */
#ifndef SMK_WEIGHTS_WSTORE_IMPL_H
#define SMK_WEIGHTS_WSTORE_IMPL_H

#include "weights/wstore.h"

struct wstore_ops {
	const struct wblock *(*acquire)(struct wstore *ws, int block, struct smk_err *err);
	void (*release)(struct wstore *ws, int block);
	void (*free)(struct wstore *ws);
	void (*stats)(struct wstore *ws, struct wstore_stats *st);
	int (*trace)(struct wstore *ws, int *out, int max);
	int (*read_rows)(struct wstore *ws, int block, int role, int64_t row, int n, void *dst,
			 struct smk_err *err);
	/* optional; 0 <= n_sure <= n_read <= n (wstore.c clamps) */
	void (*hint)(struct wstore *ws, int *blocks, int n, int n_sure, int n_read);
	int (*expert_stats)(struct wstore *ws, struct wexpert_layer_stats *out, int max);
	int (*residency)(struct wstore *ws, uint8_t *out, int n);   /* optional */
	bool (*lookup_by_rows)(const struct wstore *ws);   /* optional: false */
};

struct wstore {
	const struct wstore_ops *ops;
};

/* wstore.c: the tensor of a wstore_read_rows call, or NULL with err set
 * (no such block/role, rows outside it). */
const struct wtensor *wstore_rows_tensor(const struct model *m, int block, int role, int64_t row,
					 int n, struct smk_err *err);

/* wio.c: the cap on what the page cache can hold for us: MemAvailable
 * and, in a memory cgroup (v1 or v2, and its ancestors), limit - usage +
 * the page cache it holds.  UINT64_MAX when nothing can be read.  The
 * tiered store picks its tier-0 reads by it, the resident store whether
 * to copy the weights (memory.weights_in_ram = auto). */
uint64_t wt_io_cache_room(void);

#endif
