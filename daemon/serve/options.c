/* options.c - config -> engine, weight store and worker options. */
#include "serve/options.h"

#include <string.h>

#include "objstore/osrc.h"

bool options_weights(struct wstore_opts *o, const struct config *c)
{
	static const enum wpolicy policies[] = {
		[CONFIG_POLICY_LRU] = WPOLICY_LRU, [CONFIG_POLICY_LFU] = WPOLICY_LFU,
		[CONFIG_POLICY_FIFO] = WPOLICY_FIFO, [CONFIG_POLICY_PREDICTIVE] = WPOLICY_PREDICTIVE,
	};
	wstore_opts_default(o);
	if (!c->memory.ram_cache && !c->memory.gpu_memory)
		return false;
	o->ram_budget = c->memory.ram_cache;
	o->dev_budget = c->memory.gpu_memory;
	/* On the CPU backend the device tier is a stand-in, so computing from
	 * RAM saves a copy whenever offload to the CPU is allowed; engine_open
	 * turns it off for a device backend, which always computes from its
	 * own tier (copying measured no slower than CPU compute, docs/cuda.md). */
	o->compute_from_ram = c->memory.enable_cpu_offload;
	o->policy = policies[c->runtime.cache_policy];
	o->prefetch_blocks = c->runtime.prefetch_layers;
	o->lookahead_max = c->runtime.smoke_test_layers;
	o->async_prefetch = c->runtime.async_prefetch;
	return true;
}

static const enum xpredict_mode xpredict_modes[] = {
	[CONFIG_XPREDICT_MERGED] = XPREDICT_MERGED, [CONFIG_XPREDICT_ROUTER] = XPREDICT_ROUTER,
	[CONFIG_XPREDICT_HISTORY] = XPREDICT_HISTORY, [CONFIG_XPREDICT_OFF] = XPREDICT_OFF,
};

static const enum wstore_load loads[] = {
	[CONFIG_LOAD_AUTO] = WSTORE_LOAD_AUTO, [CONFIG_LOAD_MAP] = WSTORE_LOAD_MAP,
	[CONFIG_LOAD_COPY] = WSTORE_LOAD_COPY,
};

void options_from_config(struct run_options *o, const struct config *c, const char *model_path,
			 enum options_use use)
{
	memset(o, 0, sizeof(*o));
	/* Object storage's disk cache is process-wide: set before the model opens. */
	objstore_configure(c->memory.disk_cache_dir, c->memory.disk_cache);
	o->engine = (struct engine_opts){
		.model_path = model_path, .n_threads = c->model.threads,
		.n_ctx = c->model.context, .n_batch = c->model.batch,
		.weights = options_weights(&o->weights, c) ? &o->weights : NULL,
		.dtype = (enum convert_dtype)c->memory.default_dtype,
		.gpu_id = c->device.gpu_id, .num_gpus = c->device.num_gpus,
		.expert_prediction = xpredict_modes[c->runtime.expert_prediction],
		.load = loads[c->memory.weights_in_ram],
	};
	if (use != OPTIONS_DAEMON)
		return;
	/* One logits row per sequence in a batched round; the KV pool's bytes
	 * counted in memory.gpu_memory on a device backend. */
	o->engine.max_logits = c->limits.concurrency;
	o->engine.kv_reserve = c->limits.kv_budget;
	o->worker = (struct worker_opts){
		.max_active = c->limits.concurrency, .queue_cap = c->limits.queue,
		.kv_budget = c->limits.kv_budget,
		.prompt_cache = c->limits.prompt_cache,
	};
}
