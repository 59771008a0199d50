/* attention.c - causal (optionally sliding-window) attention on the CPU.
 *
 * K and V hold one row per position: n_head_kv heads of head_dim floats,
 * kv_stride floats apart.  Query head h reads KV head h / (n_head /
 * n_head_kv) (grouped-query attention).  Work is split over (query row,
 * head) pairs; each thread keeps its scores in its own row of the scratch.
 * Numerics follow llama.cpp's non-flash path: K, V and Q are fp16 values
 * (rounded by the caller) and the softmax row is rounded to fp16 before it
 * weights V.
 */
#include "compute/cpu/cpu_backend.h"

#include <math.h>

#include "util/fp16.h"

struct attn_job {
	const float *q, *k, *v;
	float *out;
	const struct attn_params *ap;
	float *scores;
	int max_ctx;
};

static void attn_share(void *ctx, int ith, int nth)
{
	struct attn_job *j = ctx;
	const struct attn_params *ap = j->ap;
	const int hd = ap->head_dim;
	const int group = ap->n_head / ap->n_head_kv;
	const int64_t qw = (int64_t)ap->n_head * hd;
	float *s = j->scores + (int64_t)ith * j->max_ctx;

	for (int task = ith; task < ap->n_q * ap->n_head; task += nth) {
		int t = task / ap->n_head, h = task % ap->n_head;
		int pos = ap->pos0 + t;
		int first = 0;
		if (ap->window > 0 && pos - ap->window + 1 > 0)
			first = pos - ap->window + 1;
		const float *qh = j->q + t * qw + (int64_t)h * hd;
		const int64_t koff = (int64_t)(h / group) * hd;

		float mx = -INFINITY;
		for (int p = first; p <= pos; p++) {
			const float *kp = j->k + p * ap->kv_stride + koff;
			float d = 0.0f;
			for (int i = 0; i < hd; i++)
				d += qh[i] * kp[i];
			d *= ap->scale;
			s[p - first] = d;
			if (d > mx)
				mx = d;
		}
		double sum = 0.0;
		for (int p = 0; p <= pos - first; p++) {
			float e = expf(s[p] - mx);
			s[p] = e;
			sum += e;
		}
		float inv = (float)(1.0 / sum);
		float *o = j->out + t * qw + (int64_t)h * hd;
		for (int i = 0; i < hd; i++)
			o[i] = 0.0f;
		for (int p = first; p <= pos; p++) {
			const float *vp = j->v + p * ap->kv_stride + koff;
			/* llama.cpp (flash attention off) multiplies the
			 * F16 V cache by the probabilities converted to F16. */
			float wgt = fp16_to_fp32(fp32_to_fp16(s[p - first] * inv));
			for (int i = 0; i < hd; i++)
				o[i] += wgt * vp[i];
		}
	}
}

void cpu_attention(struct backend *b, const float *q, const float *k, const float *v,
		   float *out, const struct attn_params *ap)
{
	struct cpu_backend *cb = cpu_of(b);
	struct attn_job j = {
		.q = q, .k = k, .v = v, .out = out, .ap = ap,
		.scores = cb->scores, .max_ctx = b->limits.max_ctx,
	};
	tpool_run(cb->pool, attn_share, &j);
}
