/* metrics.c - GET /stats (JSON) and GET /metrics (Prometheus text format
 * 0.0.4: "# HELP", "# TYPE", then samples; histograms as cumulative
 * _bucket{le=...} series ending with le="+Inf", plus _sum and _count).
 * Only real counters are exported: the weight hierarchy's per-tier figures
 * join here when that subsystem exists. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "formats/json_err.h"
#include "http/server.h"
#include "smk_config.h"

static const char *state_name(int st)
{
	switch (st) {
	case SERVER_LOADING: return "loading";
	case SERVER_READY: return "ok";
	default: return "stopping";
	}
}

static json_t *histo_json(const struct worker_histo *h)
{
	json_t *b = json_array();
	uint64_t cum = 0;
	for (int i = 0; i <= h->n; i++) {
		cum += h->count[i];
		json_array_append_new(b, json_pack("{s:o, s:I}", "le",
						   i < h->n ? json_real(h->le[i]) : json_string("+Inf"),
						   "count", (json_int_t)cum));
	}
	return json_pack("{s:I, s:f, s:o}", "count", (json_int_t)h->total, "sum", h->sum, "buckets", b);
}

/* The prompt cache's counters (exec/pcache.h); zeros when it is off. */
static json_t *prompt_cache_json(const struct pcache_stats *p)
{
	return json_pack("{s:I, s:I, s:i, s:I, s:I, s:I, s:I, s:I}", "budget", (json_int_t)p->budget,
			 "bytes", (json_int_t)p->bytes, "entries", p->entries, "lookups", (json_int_t)p->lookups,
			 "hits", (json_int_t)p->hits, "tokens_saved", (json_int_t)p->tokens_saved,
			 "stores", (json_int_t)p->stores, "evictions", (json_int_t)p->evictions);
}

/* The weight hierarchy's figures (weights/wstore.h), one object per tier. */
/* A mixture of experts' per-layer figures (wstore_expert_stats), or NULL
 * for a dense model.  Allocated per request, not per token. */
static double frac(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0.0;
}

static json_t *experts_json(const struct engine *e)
{
	const int n_layer = e->model->hp.n_layer;
	struct wexpert_layer_stats *x = calloc((size_t)n_layer, sizeof(*x));
	struct xpredict_layer_stats *pr = calloc((size_t)n_layer, sizeof(*pr));
	int n = x && pr ? wstore_expert_stats(e->ws, x, n_layer) : 0;
	int np = n ? forward_expert_prediction(e->fwd, pr, n_layer) : 0;
	json_t *o = NULL, *layers = n > 0 ? json_array() : NULL;
	uint64_t acq = 0, hits = 0, bytes = 0, stalls = 0;
	double stall_s = 0;
	const uint64_t tokens = forward_tokens(e->fwd);
	for (int i = 0; layers && i < n; i++) {
		acq += x[i].acquires;
		hits += x[i].hits;
		bytes += x[i].bytes_read;
		stalls += x[i].stalls;
		stall_s += x[i].stall_s;
		json_t *l = json_pack("{s:i, s:i, s:i, s:I, s:I, s:f, s:I, s:f, s:I, s:f, s:I, s:f}",
			"layer", x[i].layer, "experts", x[i].n_expert, "resident", x[i].resident,
			"acquires", (json_int_t)x[i].acquires, "hits", (json_int_t)x[i].hits,
			"hit_rate", frac(x[i].hits, x[i].acquires),
			"ram_hits", (json_int_t)x[i].ram_hits, "ram_hit_rate", frac(x[i].ram_hits, x[i].acquires),
			"bytes_read", (json_int_t)x[i].bytes_read,
			"bytes_read_per_token", tokens ? (double)x[i].bytes_read / (double)tokens : 0.0,
			"stalls", (json_int_t)x[i].stalls, "stall_s", x[i].stall_s);
		/* the next-layer predictor's score for this layer, where it ran */
		if (i < np && pr[i].predicted)
			json_object_set_new(l, "prediction", json_pack("{s:I, s:I, s:I, s:f, s:f, s:I, s:I}",
				"predicted", (json_int_t)pr[i].predicted, "chosen", (json_int_t)pr[i].chosen,
				"both", (json_int_t)pr[i].both, "precision", frac(pr[i].both, pr[i].predicted),
				"recall", frac(pr[i].both, pr[i].chosen),
				"history", (json_int_t)pr[i].history,
				"history_both", (json_int_t)pr[i].history_both));
		json_array_append_new(layers, l);
	}
	if (layers)
		o = json_pack("{s:I, s:I, s:f, s:I, s:I, s:f, s:I, s:f, s:o}", "acquires", (json_int_t)acq,
			      "hits", (json_int_t)hits, "hit_rate", frac(hits, acq), "tokens", (json_int_t)tokens,
			      "bytes_read", (json_int_t)bytes,
			      "bytes_read_per_token", tokens ? (double)bytes / (double)tokens : 0.0,
			      "stalls", (json_int_t)stalls, "stall_s", stall_s, "layers", layers);
	free(x);
	free(pr);
	return o;
}

/* Where each block is (wstore_residency): one hex digit per block, a mask
 * of 1 RAM, 2 device, 4 loading, grouped as the plan is: embedding shards,
 * each layer's dense block, output head shards, and for a mixture of
 * experts one string per layer with a digit per expert (the web view's
 * expert map).  NULL for the resident store.  Allocated per request. */
static json_t *residency_json(const struct engine *e)
{
	const struct model *m = e->model;
	uint8_t *r = malloc((size_t)m->n_blocks);
	char *str = malloc((size_t)m->n_blocks + 1);
	json_t *o = NULL;
	if (r && str && wstore_residency(e->ws, r, m->n_blocks) == m->n_blocks) {
		const int L = m->hp.n_layer, X = m->hp.n_expert;
		int k = 0;
		for (int i = 0; i < m->n_emb_blocks; i++)
			str[k++] = "0123456789abcdef"[r[i] & 15];
		str[k] = 0;
		o = json_pack("{s:s}", "embed", str);
		for (k = 0; k < L; k++)
			str[k] = "0123456789abcdef"[r[model_layer_block(m, k)] & 15];
		str[k] = 0;
		json_object_set_new(o, "layers", json_string(str));
		for (k = 0; k < m->n_head_blocks; k++)
			str[k] = "0123456789abcdef"[r[model_head_block(m, k)] & 15];
		str[k] = 0;
		json_object_set_new(o, "head", json_string(str));
		json_t *ex = X > 0 ? json_array() : NULL;
		for (int il = 0; ex && il < L; il++) {
			for (k = 0; k < X; k++)
				str[k] = "0123456789abcdef"[r[model_expert_block(m, il, k)] & 15];
			str[k] = 0;
			json_array_append_new(ex, json_string(str));
		}
		if (ex)
			json_object_set_new(o, "experts", ex);
	}
	free(r);
	free(str);
	return o;
}

static json_t *weights_json(const struct engine *e)
{
	struct wstore *ws = e->ws;
	struct wstore_stats w;
	wstore_get_stats(ws, &w);
	json_t *o = json_pack("{s:s}", "store", w.tiered ? "tiered" : "resident");
	json_t *ex = experts_json(e);
	if (ex)
		json_object_set_new(o, "experts", ex);
	if (!w.tiered) {
		json_object_set_new(o, "in_ram", json_boolean(w.in_ram));
		return o;
	}
	static const char *names[] = { "ram", "device" };
	json_object_set_new(o, "compute_tier", json_string(names[w.compute_tier]));
	/* How tier 0 is read (chosen at start: O_DIRECT when the page cache
	 * could not hold the model next to the budgets). */
	json_object_set_new(o, "io", json_string(w.io == WSTORE_IO_DIRECT ? "direct" : "pread"));
	for (int t = 0; t < WSTORE_N_TIERS; t++) {
		const struct wtier_stats *x = &w.tier[t];
		json_object_set_new(o, names[t], json_pack(
			"{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "active", x->active,
			"bytes", (json_int_t)x->used, "budget_bytes", (json_int_t)x->budget,
			"peak_bytes", (json_int_t)x->peak, "hits", (json_int_t)x->hits,
			"misses", (json_int_t)x->misses, "evictions", (json_int_t)x->evictions,
			"bytes_in", (json_int_t)x->bytes_in, "bandwidth_bytes_per_s", x->bandwidth));
	}
	json_object_set_new(o, "prefetch", json_pack("{s:I, s:I, s:I, s:I, s:i}",
		"issued", (json_int_t)w.prefetch_issued, "used", (json_int_t)w.prefetch_used,
		"wasted", (json_int_t)w.prefetch_wasted, "late", (json_int_t)w.prefetch_late,
		"lookahead", w.lookahead));
	json_object_set_new(o, "acquires", json_integer((json_int_t)w.acquires));
	json_object_set_new(o, "stalls", json_integer((json_int_t)w.stalls));
	json_object_set_new(o, "stall_s", json_real(w.stall_s));
	json_object_set_new(o, "predictor_accuracy", json_real(w.predictor_accuracy));
	json_object_set_new(o, "load_errors", json_integer((json_int_t)w.load_errors));
	/* Tier 2 on a GPU (a wdev), or the host stand-in; and whether the RAM
	 * tier is page-locked for DMA there. */
	json_object_set_new(o, "device_tier", json_string(w.dev_real ? "gpu" : "host"));
	json_object_set_new(o, "ram_dma_pinned", json_boolean(w.ram_dma_pinned));
	json_t *res = residency_json(e);
	if (res)
		json_object_set_new(o, "residency", res);
	return o;
}

/* Which compute backend runs the layers, why, and (device backends) how
 * memory.gpu_memory is split between weight slots, KV cache and
 * activations. */
static json_t *backend_json(const struct engine *e)
{
	json_t *o = json_pack("{s:s, s:s}", "name", backend_kind_name(e->kind), "note", e->backend_note);
	if (e->kind != BACKEND_CPU)
		json_object_set_new(o, "gpu_memory", json_pack("{s:I, s:I, s:I}",
			"weights_bytes", (json_int_t)e->gpu_weights, "kv_bytes", (json_int_t)e->gpu_kv,
			"scratch_bytes", (json_int_t)e->gpu_scratch));
	return o;
}

json_t *server_stats_object(struct server *s)
{
	int state = atomic_load(&s->state);
	struct worker_stats st = { 0 };
	bool ready = state == SERVER_READY || (state == SERVER_STOPPING && s->w);
	if (ready)
		worker_get_stats(s->w, &st);
	json_t *model = json_pack("{s:s, s:s}", "id", s->model_id, "path", s->model_path);
	if (ready) {
		const struct model *m = s->e->model;
		json_object_set_new(model, "architecture", json_string(family_name(m->fam->family)));
		json_object_set_new(model, "n_layer", json_integer(m->hp.n_layer));
		json_object_set_new(model, "n_vocab", json_integer(m->hp.n_vocab));
		json_object_set_new(model, "context_length", json_integer(s->e->n_ctx));
		json_object_set_new(model, "weight_bytes", json_integer((json_int_t)m->weight_bytes));
		json_object_set_new(model, "chat_template", json_string(chat_format_name(s->chat)));
	}
	json_t *root = json_pack(
		"{s:s, s:f, s:o, s:{s:i, s:i}, s:{s:i, s:i, s:I, s:I}, s:{s:I, s:I},"
		" s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:o, s:o, s:o, s:o},"
		" s:{s:I, s:I, s:f}}",
		"status", state_name(state), "uptime_s", smk_now() - s->t_start, "model", model,
		"queue", "depth", st.queue_depth, "capacity", ready ? st.queue_cap : s->cfg->limits.queue,
		"sequences", "active", st.active, "max", ready ? st.max_active : s->cfg->limits.concurrency,
		"kv_bytes", (json_int_t)st.kv_bytes, "kv_budget", (json_int_t)s->cfg->limits.kv_budget,
		"tokens", "prompt", (json_int_t)st.prompt_tokens, "generated", (json_int_t)st.gen_tokens,
		"requests", "admitted", (json_int_t)st.admitted, "completed", (json_int_t)st.completed,
		"cancelled", (json_int_t)st.cancelled, "timeouts", (json_int_t)st.timeouts,
		"failed", (json_int_t)st.failed,
		"rejected", (json_int_t)(st.rejected_full + st.rejected_size + atomic_load(&s->rejected_loading)),
		"submitted", (json_int_t)st.submitted,
		"timings", "ttft_s", histo_json(&st.ttft), "time_per_output_token_s", histo_json(&st.tpot),
		"request_duration_s", histo_json(&st.duration), "queue_wait_s", histo_json(&st.queue_wait),
		"connections", "open", (json_int_t)atomic_load(&s->conns_open),
		"total", (json_int_t)atomic_load(&s->conns_total), "busy_s", st.busy_s);
	if (root) {
		json_object_set_new(json_object_get(root, "requests"), "in_flight", server_inflight_json(s));
		json_object_set_new(root, "prompt_cache", prompt_cache_json(&st.pcache));
	}
	if (root && ready) {
		json_object_set_new(root, "weights", weights_json(s->e));
		json_object_set_new(root, "backend", backend_json(s->e));
	}
	return root;
}

char *server_stats_json(struct server *s)
{
	json_build_begin();
	return json_build_dump(server_stats_object(s));
}

/* A growing text buffer for the exposition. */
struct buf {
	char *p;
	size_t n, cap;
	bool oom;
};

static void bprintf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(struct buf *b, const char *fmt, ...)
{
	for (int tries = 0; tries < 2 && !b->oom; tries++) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < b->cap - b->n) {
			b->n += (size_t)n;
			return;
		}
		size_t cap = (b->cap + (size_t)n) * 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

static void metric(struct buf *b, const char *name, const char *type, const char *help)
{
	bprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histo(struct buf *b, const char *name, const char *help, const struct worker_histo *h)
{
	metric(b, name, "histogram", help);
	uint64_t cum = 0;
	for (int i = 0; i < h->n; i++) {
		cum += h->count[i];
		bprintf(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->le[i], (unsigned long long)cum);
	}
	cum += h->count[h->n];
	bprintf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
	bprintf(b, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->total);
}

char *server_metrics_text(struct server *s)
{
	struct buf b = { .cap = 8192 };
	b.p = malloc(b.cap);
	if (!b.p)
		return NULL;
	b.p[0] = 0;
	int state = atomic_load(&s->state);
	struct worker_stats st = { 0 };
	bool have = s->w && state != SERVER_LOADING && state != SERVER_FAILED;
	if (have)
		worker_get_stats(s->w, &st);

	metric(&b, "smoke_build_info", "gauge", "Build information.");
	bprintf(&b, "smoke_build_info{version=\"%s\"} 1\n", SMK_VERSION);
	metric(&b, "smoke_up", "gauge", "1 when the model is loaded and requests are served.");
	bprintf(&b, "smoke_up %d\n", state == SERVER_READY);
	metric(&b, "smoke_uptime_seconds", "gauge", "Seconds since the daemon started.");
	bprintf(&b, "smoke_uptime_seconds %.3f\n", smk_now() - s->t_start);

	metric(&b, "smoke_http_responses_total", "counter", "HTTP responses by status code.");
	for (int i = 0; i < HTTP_CODES; i++)
		bprintf(&b, "smoke_http_responses_total{code=\"%d\"} %llu\n", server_codes[i],
			(unsigned long long)atomic_load(&s->responses[i]));
	bprintf(&b, "smoke_http_responses_total{code=\"other\"} %llu\n",
		(unsigned long long)atomic_load(&s->responses[HTTP_CODES]));
	metric(&b, "smoke_http_connections", "gauge", "Open HTTP connections.");
	bprintf(&b, "smoke_http_connections %llu\n", (unsigned long long)atomic_load(&s->conns_open));
	metric(&b, "smoke_http_connections_total", "counter", "HTTP connections accepted.");
	bprintf(&b, "smoke_http_connections_total %llu\n", (unsigned long long)atomic_load(&s->conns_total));

	metric(&b, "smoke_requests_rejected_total", "counter", "Generation requests refused, by reason.");
	bprintf(&b, "smoke_requests_rejected_total{reason=\"queue_full\"} %llu\n",
		(unsigned long long)st.rejected_full);
	bprintf(&b, "smoke_requests_rejected_total{reason=\"kv_budget\"} %llu\n",
		(unsigned long long)st.rejected_size);
	bprintf(&b, "smoke_requests_rejected_total{reason=\"not_ready\"} %llu\n",
		(unsigned long long)atomic_load(&s->rejected_loading));
	metric(&b, "smoke_requests_total", "counter", "Generation requests ended, by outcome.");
	bprintf(&b, "smoke_requests_total{outcome=\"completed\"} %llu\n", (unsigned long long)st.completed);
	bprintf(&b, "smoke_requests_total{outcome=\"cancelled\"} %llu\n", (unsigned long long)st.cancelled);
	bprintf(&b, "smoke_requests_total{outcome=\"timeout\"} %llu\n", (unsigned long long)st.timeouts);
	bprintf(&b, "smoke_requests_total{outcome=\"failed\"} %llu\n", (unsigned long long)st.failed);

	metric(&b, "smoke_queue_depth", "gauge", "Generation requests waiting for a sequence slot.");
	bprintf(&b, "smoke_queue_depth %d\n", st.queue_depth);
	metric(&b, "smoke_queue_capacity", "gauge", "Most requests that may wait (limits.queue).");
	bprintf(&b, "smoke_queue_capacity %d\n", s->cfg->limits.queue);
	metric(&b, "smoke_active_sequences", "gauge", "Sequences being generated.");
	bprintf(&b, "smoke_active_sequences %d\n", st.active);
	metric(&b, "smoke_kv_cache_bytes", "gauge", "KV-cache bytes reserved by active sequences.");
	bprintf(&b, "smoke_kv_cache_bytes %llu\n", (unsigned long long)st.kv_bytes);
	metric(&b, "smoke_kv_cache_budget_bytes", "gauge", "KV-cache budget (limits.kv_budget).");
	bprintf(&b, "smoke_kv_cache_budget_bytes %llu\n", (unsigned long long)s->cfg->limits.kv_budget);

	metric(&b, "smoke_prompt_cache_lookups_total", "counter",
	       "Admitted requests that looked up the prompt cache.");
	bprintf(&b, "smoke_prompt_cache_lookups_total %llu\n", (unsigned long long)st.pcache.lookups);
	metric(&b, "smoke_prompt_cache_hits_total", "counter",
	       "Requests that reused a cached prompt prefix.");
	bprintf(&b, "smoke_prompt_cache_hits_total %llu\n", (unsigned long long)st.pcache.hits);
	metric(&b, "smoke_prompt_cache_tokens_saved_total", "counter",
	       "Prompt positions copied from the prompt cache instead of computed.");
	bprintf(&b, "smoke_prompt_cache_tokens_saved_total %llu\n",
		(unsigned long long)st.pcache.tokens_saved);
	metric(&b, "smoke_prompt_cache_evictions_total", "counter",
	       "Prompt-cache entries dropped for room (least recently used).");
	bprintf(&b, "smoke_prompt_cache_evictions_total %llu\n", (unsigned long long)st.pcache.evictions);
	metric(&b, "smoke_prompt_cache_bytes", "gauge", "Prompt-cache bytes held by entries.");
	bprintf(&b, "smoke_prompt_cache_bytes %llu\n", (unsigned long long)st.pcache.bytes);
	metric(&b, "smoke_prompt_cache_budget_bytes", "gauge", "Prompt-cache budget (limits.prompt_cache).");
	bprintf(&b, "smoke_prompt_cache_budget_bytes %llu\n", (unsigned long long)s->cfg->limits.prompt_cache);

	metric(&b, "smoke_prompt_tokens_total", "counter", "Prompt tokens processed.");
	bprintf(&b, "smoke_prompt_tokens_total %llu\n", (unsigned long long)st.prompt_tokens);
	metric(&b, "smoke_generated_tokens_total", "counter", "Tokens generated.");
	bprintf(&b, "smoke_generated_tokens_total %llu\n", (unsigned long long)st.gen_tokens);
	metric(&b, "smoke_worker_busy_seconds_total", "counter", "Seconds the worker spent computing.");
	bprintf(&b, "smoke_worker_busy_seconds_total %.6f\n", st.busy_s);

	struct wstore_stats w = { 0 };
	if (have)
		wstore_get_stats(s->e->ws, &w);
	static const char *tiers[] = { "ram", "device" };
	/* One labelled series per tier for each of these wtier_stats fields. */
	static const struct {
		const char *name, *type, *help;
		size_t off;
	} tier_metrics[] = {
		{ "smoke_tier_bytes", "gauge", "Weight bytes resident in each tier of the hierarchy.",
		  offsetof(struct wtier_stats, used) },
		{ "smoke_tier_budget_bytes", "gauge", "Byte budget of each tier (memory.ram_cache, memory.gpu_memory).",
		  offsetof(struct wtier_stats, budget) },
		{ "smoke_tier_hits_total", "counter", "Weight requests that found the unit in the tier.",
		  offsetof(struct wtier_stats, hits) },
		{ "smoke_tier_misses_total", "counter", "Weight requests that had to load the unit into the tier.",
		  offsetof(struct wtier_stats, misses) },
		{ "smoke_tier_evictions_total", "counter", "Units evicted from the tier.",
		  offsetof(struct wtier_stats, evictions) },
		{ "smoke_tier_bytes_in_total", "counter", "Bytes moved into the tier (disk reads, device copies).",
		  offsetof(struct wtier_stats, bytes_in) },
	};
	for (size_t k = 0; k < sizeof(tier_metrics) / sizeof(tier_metrics[0]); k++) {
		metric(&b, tier_metrics[k].name, tier_metrics[k].type, tier_metrics[k].help);
		for (int t = 0; t < WSTORE_N_TIERS; t++) {
			uint64_t v;
			memcpy(&v, (const char *)&w.tier[t] + tier_metrics[k].off, sizeof(v));
			bprintf(&b, "%s{tier=\"%s\"} %llu\n", tier_metrics[k].name, tiers[t],
				(unsigned long long)v);
		}
	}
	metric(&b, "smoke_prefetch_total", "counter", "Prefetches by outcome (issued, used, wasted, late).");
	bprintf(&b, "smoke_prefetch_total{outcome=\"issued\"} %llu\n", (unsigned long long)w.prefetch_issued);
	bprintf(&b, "smoke_prefetch_total{outcome=\"used\"} %llu\n", (unsigned long long)w.prefetch_used);
	bprintf(&b, "smoke_prefetch_total{outcome=\"wasted\"} %llu\n", (unsigned long long)w.prefetch_wasted);
	bprintf(&b, "smoke_prefetch_total{outcome=\"late\"} %llu\n", (unsigned long long)w.prefetch_late);
	metric(&b, "smoke_weight_stall_seconds_total", "counter", "Seconds the compute waited for weights.");
	bprintf(&b, "smoke_weight_stall_seconds_total %.6f\n", w.stall_s);
	metric(&b, "smoke_predictor_accuracy", "gauge", "Fraction of weight blocks the predictor named correctly as next.");
	bprintf(&b, "smoke_predictor_accuracy %.6f\n", w.predictor_accuracy);
	metric(&b, "smoke_weight_load_errors_total", "counter", "Weight reads that failed.");
	bprintf(&b, "smoke_weight_load_errors_total %llu\n", (unsigned long long)w.load_errors);
	if (have && s->e->model->hp.n_expert > 0) {
		/* A mixture of experts: per MoE layer, in the compute tier */
		const int nl = s->e->model->hp.n_layer;
		struct wexpert_layer_stats *x = calloc((size_t)nl, sizeof(*x));
		const int n = x ? wstore_expert_stats(s->e->ws, x, nl) : 0;
		static const struct {
			const char *name, *help;
			size_t off;      /* of a uint64_t in wexpert_layer_stats */
		} counters[] = {
			{ "smoke_expert_acquires_total", "Expert weight blocks acquired, per MoE layer.",
			  offsetof(struct wexpert_layer_stats, acquires) },
			{ "smoke_expert_hits_total", "Expert acquires that found the expert in the compute tier, per MoE layer.",
			  offsetof(struct wexpert_layer_stats, hits) },
			{ "smoke_expert_ram_hits_total", "Expert acquires that found the expert in the RAM tier, per MoE layer.",
			  offsetof(struct wexpert_layer_stats, ram_hits) },
			{ "smoke_expert_read_bytes_total", "Bytes of experts read from the model file into the RAM tier, per MoE layer.",
			  offsetof(struct wexpert_layer_stats, bytes_read) },
		};
		for (size_t c = 0; c < sizeof(counters) / sizeof(counters[0]); c++) {
			metric(&b, counters[c].name, "counter", counters[c].help);
			for (int i = 0; i < n; i++)
				bprintf(&b, "%s{layer=\"%d\"} %llu\n", counters[c].name, x[i].layer,
					(unsigned long long)*(const uint64_t *)((const char *)&x[i] + counters[c].off));
		}
		metric(&b, "smoke_expert_stall_seconds_total", "counter", "Seconds expert acquires waited for a transfer, per MoE layer.");
		for (int i = 0; i < n; i++)
			bprintf(&b, "smoke_expert_stall_seconds_total{layer=\"%d\"} %.6f\n", x[i].layer,
				x[i].stall_s);
		metric(&b, "smoke_forward_tokens_total", "counter", "Token rows through the forward pass (prompt and generated), the denominator of per-token figures.");
		bprintf(&b, "smoke_forward_tokens_total %llu\n", (unsigned long long)forward_tokens(s->e->fwd));
		metric(&b, "smoke_experts_resident", "gauge", "Experts resident in the compute tier, per MoE layer.");
		for (int i = 0; i < n; i++)
			bprintf(&b, "smoke_experts_resident{layer=\"%d\"} %d\n", x[i].layer, x[i].resident);
		free(x);
		struct xpredict_layer_stats *pr = calloc((size_t)nl, sizeof(*pr));
		const int np = pr ? forward_expert_prediction(s->e->fwd, pr, nl) : 0;
		if (np > 0) {
			metric(&b, "smoke_expert_prediction_total", "counter",
			       "The expert predictor per MoE layer: experts predicted, chosen, both, and of the predicted those history added and of those the chosen.");
			static const char *kinds[] = { "predicted", "chosen", "both", "history", "history_both" };
			for (int c = 0; c < 5; c++)
				for (int i = 0; i < np; i++) {
					const uint64_t v[] = { pr[i].predicted, pr[i].chosen, pr[i].both,
							       pr[i].history, pr[i].history_both };
					bprintf(&b, "smoke_expert_prediction_total{layer=\"%d\",set=\"%s\"} %llu\n",
						pr[i].layer, kinds[c], (unsigned long long)v[c]);
				}
		}
		free(pr);
	}
	if (have) {
		/* Which backend computes, and how memory.gpu_memory is split
		 * (zeros on the CPU backend). */
		const struct engine *e = s->e;
		metric(&b, "smoke_backend_info", "gauge", "The compute backend running the layers (cpu, cuda, cuda-emu).");
		bprintf(&b, "smoke_backend_info{backend=\"%s\"} 1\n",
			backend_kind_name(e->kind));
		metric(&b, "smoke_gpu_memory_bytes", "gauge", "memory.gpu_memory's split with a GPU backend: weight slots, KV cache, activations.");
		bprintf(&b, "smoke_gpu_memory_bytes{use=\"weights\"} %llu\n", (unsigned long long)e->gpu_weights);
		bprintf(&b, "smoke_gpu_memory_bytes{use=\"kv_cache\"} %llu\n", (unsigned long long)e->gpu_kv);
		bprintf(&b, "smoke_gpu_memory_bytes{use=\"activations\"} %llu\n", (unsigned long long)e->gpu_scratch);
	}

	histo(&b, "smoke_time_to_first_token_seconds", "From arrival to the first generated token.", &st.ttft);
	histo(&b, "smoke_time_per_output_token_seconds", "Mean time between output tokens of a request.", &st.tpot);
	histo(&b, "smoke_request_duration_seconds", "From arrival to the end of generation.", &st.duration);
	histo(&b, "smoke_queue_wait_seconds", "From arrival to admission into a sequence slot.", &st.queue_wait);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}
