/* expert_predict.c - next-layer expert prediction (expert_predict.h). */
#include "exec/expert_predict.h"

#include "formats/gguf.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "compute/moe_route.h"
#include "quant/qtype.h"

/* History's memory: each step multiplies a layer's counts by this, so a
 * choice weighs half as much after about 22 steps (1/32 per step). */
#define XP_DECAY (1.0f - 1.0f / 32.0f)

struct xpredict {
	const struct model *m;
	enum xpredict_mode mode;
	int L, E, D, K, max_rows;
	float eps;
	/* the router's half (mode & XPREDICT_ROUTER) */
	float *router;          /* L x E x D: each MoE layer's router, as floats */
	float *norm;            /* L x D: its FFN pre-norm */
	float *bias;            /* L x E: the router's bias (gpt-oss), or NULL */
	struct wtensor *t_router, *t_norm, *t_bias;  /* L views of the above (F32) */
	struct backend *fwd_be; /* the forward's backend (the hidden state's memory) */
	struct backend *host;   /* the backend the product runs on: fwd_be, or
				 * a one-thread CPU backend of our own */
	float *x_host, *h_host, *l_host;  /* device backends: max_rows x D, D, E */
	uint64_t bytes;
	/* history (every mode: the first layer uses it) */
	uint8_t *recent;        /* L x E flags: the previous step's choice */
	float *freq;            /* L x E: decaying choice counts */
	/* the prediction waiting for its layer to route */
	int pend_layer;         /* -1: none */
	int pend_T;             /* rows of pend_sel (0: no per-row prediction) */
	int32_t *pend_sel;      /* max_rows x K */
	uint8_t *pend_set;      /* E: 0 = not predicted, 1 = router, 2 = history */
	uint8_t *seen;          /* E flags: scratch for the union */
	uint64_t *n_pred, *n_chosen, *n_both, *n_hist, *n_hist_both;  /* per layer; relaxed atomics */
};

const char *xpredict_mode_name(enum xpredict_mode mode)
{
	switch (mode) {
	case XPREDICT_OFF: return "off";
	case XPREDICT_ROUTER: return "router";
	case XPREDICT_HISTORY: return "history";
	case XPREDICT_DEFAULT:
	case XPREDICT_MERGED: return "merged";
	}
	return "?";
}

void xpredict_free(struct xpredict *p)
{
	if (!p)
		return;
	if (p->host && p->host != p->fwd_be)
		backend_free(p->host);
	free(p->router);
	free(p->norm);
	free(p->bias);
	free(p->t_router);
	free(p->t_norm);
	free(p->t_bias);
	free(p->x_host);
	free(p->h_host);
	free(p->l_host);
	free(p->recent);
	free(p->freq);
	free(p->pend_sel);
	free(p->pend_set);
	free(p->seen);
	free(p->n_pred);
	free(p->n_chosen);
	free(p->n_both);
	free(p->n_hist);
	free(p->n_hist_both);
	free(p);
}

enum xpredict_mode xpredict_mode(const struct xpredict *p)
{
	return p ? p->mode : XPREDICT_OFF;
}

uint64_t xpredict_bytes(const struct xpredict *p)
{
	return p ? p->bytes : 0;
}

float *xpredict_staging(struct xpredict *p)
{
	return p ? p->x_host : NULL;
}

/* The router's half: host float copies of every layer's router, FFN norm
 * and router bias, F32 views of them for the backend's ops, and with a
 * device backend a CPU backend and host scratch of our own. */
static int router_new(struct xpredict *p, struct smk_err *err)
{
	const struct model *m = p->m;
	const size_t L = (size_t)p->L, E = (size_t)p->E, D = (size_t)p->D, R = (size_t)p->max_rows;
	const bool has_bias = m->blocks[model_layer_block(m, 0)].has[LT_GATE_INP_B];
	const bool dev = !p->fwd_be->ops->host_memory;
	p->bytes = sizeof(float) * (L * E * D + L * D + (has_bias ? L * E : 0) +
				    (dev ? 2 * R * D + R * E : 0));
	p->router = malloc(sizeof(float) * L * E * D);
	p->norm = malloc(sizeof(float) * L * D);
	p->bias = has_bias ? malloc(sizeof(float) * L * E) : NULL;
	p->t_router = calloc(L, sizeof(struct wtensor));
	p->t_norm = calloc(L, sizeof(struct wtensor));
	p->t_bias = calloc(L, sizeof(struct wtensor));
	if (dev) {
		p->x_host = malloc(sizeof(float) * R * D);
		p->h_host = malloc(sizeof(float) * R * D);
		p->l_host = malloc(sizeof(float) * R * E);
	}
	if (!p->router || !p->norm || (has_bias && !p->bias) || !p->t_router || !p->t_norm ||
	    !p->t_bias || (dev && (!p->x_host || !p->h_host || !p->l_host)))
		return smk_fail(err, -ENOMEM, "expert prediction: out of memory for %llu bytes of routers",
				(unsigned long long)p->bytes);
	if (dev) {
		struct backend_limits lim = { .max_cols = p->D, .max_rows = p->max_rows, .max_ctx = 1,
					      .max_heads = 1, .n_threads = 1 };
		int rc = backend_cpu_new(&p->host, &lim, err);
		if (rc)
			return rc;
	} else {
		p->host = p->fwd_be;
	}
	for (int il = 0; il < p->L; il++) {
		const struct wblock *b = &m->blocks[model_layer_block(m, il)];
		const struct wtensor *r = &b->t[LT_GATE_INP], *n = &b->t[LT_FFN_NORM];
		/* Read here through the mapping: fetched first if in object storage. */
		int prc = gguf_pin(m->gguf, r->source, r->file_offset, r->nbytes, err);
		if (!prc)
			prc = gguf_pin(m->gguf, n->source, n->file_offset, n->nbytes, err);
		if (!prc && p->bias)
			prc = gguf_pin(m->gguf, b->t[LT_GATE_INP_B].source, b->t[LT_GATE_INP_B].file_offset,
				       b->t[LT_GATE_INP_B].nbytes, err);
		if (prc)
			return prc;
		for (int e = 0; e < p->E; e++)
			if (qtype_dequant_row(r->type, wtensor_row(r, e), p->router + ((size_t)il * E + (size_t)e) * D,
					      p->D))
				return smk_fail(err, -EINVAL, "expert prediction: cannot decode %s", r->name);
		memcpy(p->norm + (size_t)il * D, n->data, sizeof(float) * D);
		if (p->bias)
			memcpy(p->bias + (size_t)il * E, b->t[LT_GATE_INP_B].data, sizeof(float) * E);
		p->t_router[il] = (struct wtensor){ .name = r->name, .type = QTYPE_F32, .ne0 = p->D,
						    .ne1 = p->E, .row_bytes = sizeof(float) * D,
						    .nbytes = sizeof(float) * D * E, .source = -1,
						    .data = p->router + (size_t)il * E * D };
		p->t_norm[il] = (struct wtensor){ .name = n->name, .type = QTYPE_F32, .ne0 = p->D, .ne1 = 1,
						  .row_bytes = sizeof(float) * D, .nbytes = sizeof(float) * D,
						  .source = -1, .data = p->norm + (size_t)il * D };
		if (p->bias)
			p->t_bias[il] = (struct wtensor){ .name = "router bias", .type = QTYPE_F32,
							  .ne0 = p->E, .ne1 = 1, .row_bytes = sizeof(float) * E,
							  .nbytes = sizeof(float) * E, .source = -1,
							  .data = p->bias + (size_t)il * E };
	}
	return 0;
}

int xpredict_new(struct xpredict **out, const struct model *m, struct backend *be, int max_rows,
		 enum xpredict_mode mode, struct smk_err *err)
{
	const struct hparams *hp = &m->hp;
	if (hp->n_expert <= 0)
		return smk_fail(err, -EINVAL, "expert prediction: %s is not a mixture of experts", m->name);
	if (mode == XPREDICT_DEFAULT)
		mode = XPREDICT_MERGED;
	if (mode != XPREDICT_ROUTER && mode != XPREDICT_HISTORY && mode != XPREDICT_MERGED)
		return smk_fail(err, -EINVAL, "expert prediction: no such mode %d", (int)mode);
	struct xpredict *p = calloc(1, sizeof(*p));
	if (!p)
		return smk_fail(err, -ENOMEM, "expert prediction: out of memory");
	p->m = m;
	p->mode = mode;
	p->fwd_be = be;
	p->L = hp->n_layer, p->E = hp->n_expert, p->D = hp->n_embd, p->K = hp->n_expert_used;
	p->max_rows = max_rows;
	p->eps = hp->eps;
	p->pend_layer = -1;
	const size_t L = (size_t)p->L, E = (size_t)p->E;
	p->recent = calloc(L * E, 1);
	p->freq = calloc(L * E, sizeof(float));
	p->pend_sel = malloc(sizeof(int32_t) * (size_t)max_rows * (size_t)p->K);
	p->pend_set = calloc(E, 1);
	p->seen = calloc(E, 1);
	p->n_pred = calloc(L, sizeof(uint64_t));
	p->n_chosen = calloc(L, sizeof(uint64_t));
	p->n_both = calloc(L, sizeof(uint64_t));
	p->n_hist = calloc(L, sizeof(uint64_t));
	p->n_hist_both = calloc(L, sizeof(uint64_t));
	int rc = 0;
	if (!p->recent || !p->freq || !p->pend_sel || !p->pend_set || !p->seen || !p->n_pred ||
	    !p->n_chosen || !p->n_both || !p->n_hist || !p->n_hist_both)
		rc = smk_fail(err, -ENOMEM, "expert prediction: out of memory");
	else if (mode & XPREDICT_ROUTER)
		rc = router_new(p, err);
	if (rc) {
		xpredict_free(p);
		return rc;
	}
	p->bytes += (sizeof(float) + 1) * L * E;
	*out = p;
	return 0;
}

/* Append to experts[0..n) up to `cap` experts of `layer` that pend_set
 * does not hold yet, marking them as history's: the recent ones first,
 * then the others, each group most frequent first, never an expert with no
 * count.  Returns the new length; *n_recent = how many recent ones. */
static int add_history(struct xpredict *p, int layer, int *experts, int n, int cap, int *n_recent)
{
	*n_recent = 0;
	const uint8_t *recent = p->recent + (size_t)layer * p->E;
	const float *freq = p->freq + (size_t)layer * p->E;
	for (int added = 0; added < cap; added++) {
		int best = -1;
		for (int e = 0; e < p->E; e++) {
			if (p->pend_set[e] || freq[e] <= 0.0f)
				continue;
			if (best < 0 || recent[e] > recent[best] ||
			    (recent[e] == recent[best] && freq[e] > freq[best]))
				best = e;
		}
		if (best < 0)
			break;
		p->pend_set[best] = 2;
		experts[n++] = best;
		*n_recent += recent[best];
	}
	return n;
}

int xpredict_layer(struct xpredict *p, int layer, const float *x, int T, float *h,
		   float *logits, int *experts, int *n_read)
{
	*n_read = 0;
	p->pend_layer = -1;
	if (layer < 0 || layer >= p->L || T <= 0)
		return 0;
	if (T > p->max_rows)
		T = p->max_rows;
	memset(p->pend_set, 0, (size_t)p->E);
	p->pend_T = 0;
	int n = 0;
	if (p->mode & XPREDICT_ROUTER) {
		struct backend *be = p->host;
		bool ok = true;
		if (p->x_host) {
			/* the forward downloaded the hidden state (xpredict_staging) */
			x = p->x_host, h = p->h_host, logits = p->l_host;
		}
		/* The backend's own ops (threaded, SIMD): this runs once per
		 * MoE layer and step, on the per-token path. */
		if (ok) {
			be->ops->rmsnorm(be, x, &p->t_norm[layer], h, p->D, T, p->eps);
			ok = !be->ops->matmul(be, &p->t_router[layer], h, T, logits);
		}
		if (ok && p->bias)
			be->ops->add_bias(be, logits, &p->t_bias[layer], T);
		for (int t = 0; ok && t < T; t++) {
			int32_t *sel = p->pend_sel + (size_t)t * p->K;
			moe_top_k(logits + (size_t)t * p->E, p->E, p->K, sel, NULL);
			for (int j = 0; j < p->K; j++)
				if (!p->pend_set[sel[j]]) {
					p->pend_set[sel[j]] = 1;
					experts[n++] = sel[j];
				}
		}
		if (ok)
			p->pend_T = T;
	}
	*n_read = n;
	if (p->mode & XPREDICT_HISTORY) {
		int cap = p->K, n_recent;
		const bool alone = !(p->mode & XPREDICT_ROUTER);
		if (alone)
			for (int e = 0; e < p->E; e++)
				cap += p->recent[(size_t)layer * p->E + e];
		n = add_history(p, layer, experts, n, cap, &n_recent);
		/* alone, the recent choice is the prediction: worth a read */
		if (alone)
			*n_read = n_recent;
	}
	if (n)
		p->pend_layer = layer;
	return n;
}

int xpredict_first(struct xpredict *p, int *experts, int *n_read)
{
	memset(p->pend_set, 0, (size_t)p->E);
	p->pend_T = 0;
	int n = 0;
	if (p->mode & XPREDICT_HISTORY) {
		int cap = p->K;
		for (int e = 0; e < p->E; e++)
			cap += p->recent[e];
		n = add_history(p, 0, experts, 0, cap, n_read);
	} else {
		/* the router alone: the previous step's choice, as such */
		for (int e = 0; e < p->E; e++)
			if (p->recent[e]) {
				p->pend_set[e] = 1;
				experts[n++] = e;
			}
		*n_read = n;
	}
	p->pend_layer = n ? 0 : -1;
	return n;
}

void xpredict_score(struct xpredict *p, int layer, const int32_t *sel, int T, int k)
{
	if (layer < 0 || layer >= p->L)
		return;
	uint8_t *recent = p->recent + (size_t)layer * p->E;
	float *freq = p->freq + (size_t)layer * p->E;
	memset(p->seen, 0, (size_t)p->E);
	uint64_t chosen = 0;
	for (int e = 0; e < p->E; e++)
		freq[e] *= XP_DECAY;
	for (int i = 0; i < T * k; i++) {
		freq[sel[i]] += 1.0f;
		if (!p->seen[sel[i]]) {
			p->seen[sel[i]] = 1;
			chosen++;
		}
	}
	memcpy(recent, p->seen, (size_t)p->E);
	if (p->pend_layer != layer)
		return;
	uint64_t pred = 0, both = 0, hist = 0, hist_both = 0;
	for (int e = 0; e < p->E; e++) {
		pred += p->pend_set[e] != 0;
		both += p->pend_set[e] && p->seen[e];
		hist += p->pend_set[e] == 2;
		hist_both += p->pend_set[e] == 2 && p->seen[e];
	}
	__atomic_add_fetch(&p->n_pred[layer], pred, __ATOMIC_RELAXED);
	__atomic_add_fetch(&p->n_chosen[layer], chosen, __ATOMIC_RELAXED);
	__atomic_add_fetch(&p->n_both[layer], both, __ATOMIC_RELAXED);
	__atomic_add_fetch(&p->n_hist[layer], hist, __ATOMIC_RELAXED);
	__atomic_add_fetch(&p->n_hist_both[layer], hist_both, __ATOMIC_RELAXED);
	p->pend_layer = -1;
}

const int32_t *xpredict_row(const struct xpredict *p, int layer, int t)
{
	if (!p || p->pend_layer != layer || t < 0 || t >= p->pend_T)
		return NULL;
	return p->pend_sel + (size_t)t * p->K;
}

int xpredict_stats(const struct xpredict *p, struct xpredict_layer_stats *out, int max)
{
	int n = 0;
	for (int il = 0; p && il < p->L && n < max; il++, n++)
		out[n] = (struct xpredict_layer_stats){
			.layer = il,
			.predicted = __atomic_load_n(&p->n_pred[il], __ATOMIC_RELAXED),
			.chosen = __atomic_load_n(&p->n_chosen[il], __ATOMIC_RELAXED),
			.both = __atomic_load_n(&p->n_both[il], __ATOMIC_RELAXED),
			.history = __atomic_load_n(&p->n_hist[il], __ATOMIC_RELAXED),
			.history_both = __atomic_load_n(&p->n_hist_both[il], __ATOMIC_RELAXED),
		};
	return n;
}
