/* expert_predict.c - next-layer expert prediction (expert_predict.h). */
#include "exec/expert_predict.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "compute/moe_route.h"
#include "quant/qtype.h"

struct xpredict {
	const struct model *m;
	int L, E, D, K, max_rows;
	float eps;
	float *router;          /* L x E x D: each MoE layer's router, as floats */
	float *norm;            /* L x D: its FFN pre-norm */
	float *bias;            /* L x E: the router's bias (gpt-oss), or NULL */
	struct wtensor *t_router, *t_norm, *t_bias;  /* L views of the above (F32) */
	uint64_t bytes;
	/* the prediction waiting for its layer to route */
	int pend_layer;         /* -1: none */
	bool pend_rows;         /* pend_sel holds per-row choices */
	int pend_T;
	int32_t *pend_sel;      /* max_rows x K */
	uint8_t *pend_set;      /* E flags: the union */
	uint8_t *first_set;     /* E flags: this step's choice at layer 0 */
	uint8_t *seen;          /* E flags: scratch for the union */
	uint64_t *n_pred, *n_chosen, *n_both;   /* per layer; relaxed atomics */
};

void xpredict_free(struct xpredict *p)
{
	if (!p)
		return;
	free(p->router);
	free(p->norm);
	free(p->bias);
	free(p->pend_sel);
	free(p->pend_set);
	free(p->first_set);
	free(p->t_router);
	free(p->t_norm);
	free(p->t_bias);
	free(p->seen);
	free(p->n_pred);
	free(p->n_chosen);
	free(p->n_both);
	free(p);
}

uint64_t xpredict_bytes(const struct xpredict *p)
{
	return p ? p->bytes : 0;
}

int xpredict_new(struct xpredict **out, const struct model *m, int max_rows, struct smk_err *err)
{
	const struct hparams *hp = &m->hp;
	if (hp->n_expert <= 0)
		return smk_fail(err, -EINVAL, "expert prediction: %s is not a mixture of experts", m->name);
	struct xpredict *p = calloc(1, sizeof(*p));
	if (!p)
		return smk_fail(err, -ENOMEM, "expert prediction: out of memory");
	p->m = m;
	p->L = hp->n_layer, p->E = hp->n_expert, p->D = hp->n_embd, p->K = hp->n_expert_used;
	p->max_rows = max_rows;
	p->eps = hp->eps;
	p->pend_layer = -1;
	const size_t L = (size_t)p->L, E = (size_t)p->E, D = (size_t)p->D;
	const bool has_bias = m->blocks[model_layer_block(m, 0)].has[LT_GATE_INP_B];
	p->bytes = sizeof(float) * (L * E * D + L * D + (has_bias ? L * E : 0));
	p->router = malloc(sizeof(float) * L * E * D);
	p->norm = malloc(sizeof(float) * L * D);
	p->bias = has_bias ? malloc(sizeof(float) * L * E) : NULL;
	p->pend_sel = malloc(sizeof(int32_t) * (size_t)max_rows * (size_t)p->K);
	p->pend_set = calloc(E, 1);
	p->first_set = calloc(E, 1);
	p->t_router = calloc(L, sizeof(struct wtensor));
	p->t_norm = calloc(L, sizeof(struct wtensor));
	p->t_bias = calloc(L, sizeof(struct wtensor));
	p->seen = calloc(E, 1);
	p->n_pred = calloc(L, sizeof(uint64_t));
	p->n_chosen = calloc(L, sizeof(uint64_t));
	p->n_both = calloc(L, sizeof(uint64_t));
	if (!p->router || !p->norm || (has_bias && !p->bias) || !p->pend_sel || !p->pend_set ||
	    !p->first_set || !p->t_router || !p->t_norm || !p->t_bias || !p->seen || !p->n_pred ||
	    !p->n_chosen || !p->n_both) {
		xpredict_free(p);
		return smk_fail(err, -ENOMEM, "expert prediction: out of memory for %llu bytes of routers",
				(unsigned long long)p->bytes);
	}
	for (int il = 0; il < p->L; il++) {
		const struct wblock *b = &m->blocks[model_layer_block(m, il)];
		const struct wtensor *r = &b->t[LT_GATE_INP], *n = &b->t[LT_FFN_NORM];
		for (int e = 0; e < p->E; e++)
			if (qtype_dequant_row(r->type, wtensor_row(r, e), p->router + ((size_t)il * E + (size_t)e) * D,
					      p->D)) {
				xpredict_free(p);
				return smk_fail(err, -EINVAL, "expert prediction: cannot decode %s", r->name);
			}
		memcpy(p->norm + (size_t)il * D, n->data, sizeof(float) * D);
		if (p->bias)
			memcpy(p->bias + (size_t)il * E, b->t[LT_GATE_INP_B].data, sizeof(float) * E);
		/* F32 views for the backend's ops (host memory: the backends
		 * that predict compute there) */
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
	*out = p;
	return 0;
}

int xpredict_layer(struct xpredict *p, struct backend *be, int layer, const float *x, int T,
		   float *h, float *logits, int *experts)
{
	if (layer < 0 || layer >= p->L || T <= 0)
		return 0;
	if (T > p->max_rows)
		T = p->max_rows;
	/* The backend's own ops (threaded, SIMD): this runs once per MoE
	 * layer and step, on the per-token path. */
	be->ops->rmsnorm(be, x, &p->t_norm[layer], h, p->D, T, p->eps);
	if (be->ops->matmul(be, &p->t_router[layer], h, T, logits))
		return 0;
	if (p->bias)
		be->ops->add_bias(be, logits, &p->t_bias[layer], T);
	memset(p->pend_set, 0, (size_t)p->E);
	int n = 0;
	for (int t = 0; t < T; t++) {
		int32_t *sel = p->pend_sel + (size_t)t * p->K;
		moe_top_k(logits + (size_t)t * p->E, p->E, p->K, sel, NULL);
		for (int j = 0; j < p->K; j++)
			if (!p->pend_set[sel[j]]) {
				p->pend_set[sel[j]] = 1;
				experts[n++] = sel[j];
			}
	}
	p->pend_layer = layer;
	p->pend_rows = true;
	p->pend_T = T;
	return n;
}

int xpredict_wrap(struct xpredict *p, int *experts)
{
	int n = 0;
	for (int e = 0; e < p->E; e++) {
		p->pend_set[e] = p->first_set[e];
		if (p->first_set[e])
			experts[n++] = e;
	}
	p->pend_layer = n ? 0 : -1;
	p->pend_rows = false;
	return n;
}

void xpredict_score(struct xpredict *p, int layer, const int32_t *sel, int T, int k)
{
	if (layer < 0 || layer >= p->L)
		return;
	memset(p->seen, 0, (size_t)p->E);
	uint64_t chosen = 0, both = 0, pred = 0;
	for (int i = 0; i < T * k; i++)
		if (!p->seen[sel[i]]) {
			p->seen[sel[i]] = 1;
			chosen++;
		}
	if (layer == 0)
		memcpy(p->first_set, p->seen, (size_t)p->E);
	if (p->pend_layer != layer)
		return;
	for (int e = 0; e < p->E; e++) {
		pred += p->pend_set[e];
		both += p->pend_set[e] && p->seen[e];
	}
	__atomic_add_fetch(&p->n_pred[layer], pred, __ATOMIC_RELAXED);
	__atomic_add_fetch(&p->n_chosen[layer], chosen, __ATOMIC_RELAXED);
	__atomic_add_fetch(&p->n_both[layer], both, __ATOMIC_RELAXED);
	p->pend_layer = -1;
}

const int32_t *xpredict_row(const struct xpredict *p, int layer, int t)
{
	if (!p || p->pend_layer != layer || !p->pend_rows || t < 0 || t >= p->pend_T)
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
		};
	return n;
}
