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
};

struct wstore {
	const struct wstore_ops *ops;
};

#endif
