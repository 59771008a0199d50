/* cuda_attention.cu - causal attention with sliding window and GQA, for
 * decode (n_q = 1) and prefill (n_q > 1) alike.
 *
 * One block of AT_WARPS warps per (head, query row).  Query head h reads KV
 * head h / (n_head / n_head_kv); query row t at position pos = pos0 + t
 * attends to positions first..pos, first = pos - window + 1 when a window
 * is set (clamped at 0).  K and V rows are kv_stride floats apart.
 *
 * The softmax is computed as the CPU backend computes it (compute/cpu/
 * attention.c), with the same rounding points, so the two agree to float
 * rounding plus at most one fp16 step per weight:
 *   1. s[p] = (q . k_p) * scale, each dot a warp's butterfly sum, into
 *      shared memory; m = max s;
 *   2. e[p] = expf(s[p] - m), summed in double;
 *   3. w[p] = fp16(e[p] * (float)(1 / sum))  - llama.cpp converts the
 *      probabilities to F16 for the product with the F16 V cache;
 *   4. out = sum_p w[p] v_p, each warp over its positions, lanes over the
 *      head's dimensions, the warps' partial sums added at the end.
 * Because step 3 needs the final sum before any weight is rounded, the
 * scores of the whole span are kept in dynamic shared memory, which limits
 * the span to cuda_attention_max_span() positions (about 56K on an H100).
 * TODO: split the span over several blocks (flash-decoding) for long
 * contexts with few heads, where one block per head leaves most SMs idle;
 * the split needs a second pass to round the weights against the global
 * sum, so it is left until a GPU session can measure it. */
#include "compute/cuda/cuda_internal.cuh"

#include <math.h>

#define AT_WARPS 4
#define AT_THREADS (AT_WARPS * 32)
#define AT_MAX_HD 512
#define AT_PER_LANE (AT_MAX_HD / 32)

static __global__ void __launch_bounds__(AT_THREADS) attn_kernel(
	const float *__restrict__ q, const float *__restrict__ k, const float *__restrict__ v,
	float *__restrict__ out, int n_head, int group, int hd, int pos0, int window, float scale,
	int64_t kv_stride)
{
	SMK_DYN_SMEM(float, s);
	SMK_SHARED(float, red, AT_WARPS);
	SMK_SHARED(double, dred, AT_WARPS);
	SMK_SHARED(float, ored, AT_WARPS * AT_MAX_HD);
	const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
	const int h = blockIdx.x, t = blockIdx.y;
	const int pos = pos0 + t;
	const int first = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
	const int span = pos - first + 1;
	const int64_t qrow = ((int64_t)t * n_head + h) * hd;
	const int64_t koff = (int64_t)(h / group) * hd;

	float qv[AT_PER_LANE];
	for (int j = 0; j < AT_PER_LANE; j++) {
		const int d = lane + 32 * j;
		qv[j] = d < hd ? q[qrow + d] : 0.0f;
	}

	/* 1. scores */
	float mx = -INFINITY;
	for (int p = first + warp; p <= pos; p += AT_WARPS) {
		const float *kp = k + (int64_t)p * kv_stride + koff;
		float d = 0.0f;
		for (int j = 0; j < AT_PER_LANE; j++) {
			const int i = lane + 32 * j;
			if (i < hd)
				d += qv[j] * kp[i];
		}
		const float sc = smk_mul(smk_warp_sum(d), scale);
		if (lane == 0)
			s[p - first] = sc;
		mx = sc > mx ? sc : mx;
	}
	if (lane == 0)
		red[warp] = mx;
	__syncthreads();
	float m = red[0];
	for (int w = 1; w < AT_WARPS; w++)
		m = red[w] > m ? red[w] : m;

	/* 2. exponentials and their sum */
	double sum = 0.0;
	for (int i = tid; i < span; i += AT_THREADS) {
		const float e = expf(s[i] - m);
		s[i] = e;
		sum += (double)e;
	}
	sum = smk_warp_sum_d(sum);
	if (lane == 0)
		dred[warp] = sum;
	__syncthreads();
	double total = 0.0;
	for (int w = 0; w < AT_WARPS; w++)
		total += dred[w];
	const float inv = (float)(1.0 / total);

	/* 3. fp16 weights */
	for (int i = tid; i < span; i += AT_THREADS)
		s[i] = smk_round_f16(smk_mul(s[i], inv));
	__syncthreads();

	/* 4. weighted sum of V */
	float acc[AT_PER_LANE];
	for (int j = 0; j < AT_PER_LANE; j++)
		acc[j] = 0.0f;
	for (int p = first + warp; p <= pos; p += AT_WARPS) {
		const float wgt = s[p - first];
		const float *vp = v + (int64_t)p * kv_stride + koff;
		for (int j = 0; j < AT_PER_LANE; j++) {
			const int i = lane + 32 * j;
			if (i < hd)
				acc[j] += wgt * vp[i];
		}
	}
	for (int j = 0; j < AT_PER_LANE; j++) {
		const int i = lane + 32 * j;
		if (i < hd)
			ored[warp * AT_MAX_HD + i] = acc[j];
	}
	__syncthreads();
	for (int i = tid; i < hd; i += AT_THREADS) {
		float o = 0.0f;
		for (int w = 0; w < AT_WARPS; w++)
			o += ored[w * AT_MAX_HD + i];
		out[qrow + i] = o;
	}
}

/* Static shared memory of attn_kernel (red, dred, ored), which the dynamic
 * part shares the block's allowance with. */
#define AT_STATIC_SMEM (AT_WARPS * (sizeof(float) + sizeof(double)) + AT_WARPS * AT_MAX_HD * sizeof(float))

int cuda_attention_init(struct cuda_ctx *c, int optin, struct smk_err *err)
{
	/* leave room for the static arrays and a little for the runtime */
	int dyn = optin - (int)AT_STATIC_SMEM - 1024;
	if (dyn < 48 * 1024 - (int)AT_STATIC_SMEM - 1024)
		dyn = 48 * 1024 - (int)AT_STATIC_SMEM - 1024;
	CUDA_CHECK(err, cudaFuncSetAttribute(attn_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, dyn));
	c->max_smem = dyn;
	return 0;
}

extern "C" int cuda_attention_max_span(const struct cuda_ctx *c)
{
	return c->max_smem / (int)sizeof(float);
}

extern "C" int cuda_attention(const struct cuda_ctx *c, const float *q, const float *k,
			      const float *v, float *out, const struct attn_params *ap,
			      struct smk_err *err)
{
	if (ap->n_head <= 0 || ap->n_head_kv <= 0 || ap->n_head % ap->n_head_kv ||
	    ap->head_dim <= 0 || ap->head_dim > AT_MAX_HD)
		return smk_fail(err, -EINVAL, "attention: %d heads over %d KV heads of %d dims (at most %d)",
				ap->n_head, ap->n_head_kv, ap->head_dim, AT_MAX_HD);
	if (ap->pos0 < 0 || ap->n_q <= 0 || ap->n_q > 65535 || ap->window < 0 ||
	    ap->kv_stride < (int64_t)ap->n_head_kv * ap->head_dim)
		return smk_fail(err, -EINVAL, "attention: %d rows at %d, window %d, kv_stride %lld",
				ap->n_q, ap->pos0, ap->window, (long long)ap->kv_stride);
	if (!q || !k || !v || !out)
		return smk_fail(err, -EINVAL, "attention: missing buffer");
	int span = ap->pos0 + ap->n_q;
	if (ap->window > 0 && ap->window < span)
		span = ap->window;
	if (span > cuda_attention_max_span(c))
		return smk_fail(err, -EINVAL, "attention: a span of %d positions exceeds the %d the kernel holds in shared memory",
				span, cuda_attention_max_span(c));
	SMK_LAUNCH(attn_kernel, dim3((unsigned)ap->n_head, (unsigned)ap->n_q), dim3(AT_THREADS),
		   sizeof(float) * (size_t)span, c->stream, q, k, v, out, ap->n_head,
		   ap->n_head / ap->n_head_kv, ap->head_dim, ap->pos0, ap->window, ap->scale,
		   ap->kv_stride);
	CUDA_CHECK(err, cudaGetLastError());
	return 0;
}
