/* options.h - the configuration (config/config.h) mapped onto the options
 * of the engine, its weight store and the worker: the one place that says
 * which setting drives what, for the daemon and the offline modes alike.
 */
#ifndef SMK_SERVE_OPTIONS_H
#define SMK_SERVE_OPTIONS_H

#include <stdbool.h>

#include "config/config.h"
#include "engine/engine.h"
#include "engine/worker.h"
#include "weights/wstore.h"

/* Who runs the engine: the daemon batches requests (one logits row per
 * active sequence, a KV pool of limits.kv_budget), an offline run is one
 * sequence of model.context. */
enum options_use { OPTIONS_DAEMON, OPTIONS_OFFLINE };

struct run_options {
	struct engine_opts engine;   /* .weights points at .weights below, or is NULL */
	struct wstore_opts weights;
	struct worker_opts worker;   /* the daemon's; zero offline */
};

/* Fill o from c for model_path (which must outlive o).  o->engine.weights
 * points into o itself: use o in place, do not copy it. */
void options_from_config(struct run_options *o, const struct config *c, const char *model_path,
			 enum options_use use);

/* The weight store's settings: false (use the resident store, the file
 * mapping) when neither memory.ram_cache nor memory.gpu_memory is set, true
 * with *o filled otherwise.  On the CPU backend enable_cpu_offload computes
 * straight from the RAM tier (no stand-in copy); a GPU backend ignores it. */
bool options_weights(struct wstore_opts *o, const struct config *c);

#endif
