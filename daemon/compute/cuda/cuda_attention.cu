/* cuda_attention.cu - causal attention with sliding window and GQA, for
 * decode (n_q = 1) and prefill (n_q > 1) alike.
 *
 * One block of AT_WARPS warps per (head, query row).  Query head h reads KV
 * head h / (n_head / n_head_kv); query row t at position pos = pos0 + t
 * attends to positions first..pos, first = pos - window + 1 when a window
 * is set (clamped at 0).  K and V are the F16 KV cache: rows of IEEE
 * halves kv_stride halves apart, widened to float (exactly) as read.
 *
 * Computed as the CPU backend's scalar path computes it (compute/cpu/
 * attention.c), operation for operation where the order matters:
 *   1. s[p] = (float)(q . k_p) * scale, the dot's products (exact: q and k
 *      are fp16 values) summed in double - each a warp's butterfly, which
 *      gives the CPU's sequential double sum unless the terms span more
 *      than 2^31 - into shared memory; m = max s;
 *      with a sink (gpt-oss, attn_params.sinks) m = max(m, sink[h]);
 *   2. e[p] = expf(s[p] - m), summed in double (plus expf(sink - m) last);
 *   3. w[p] = fp16(e[p] * (float)(1 / sum))  - llama.cpp converts the
 *      probabilities to F16 for the product with the F16 V cache;
 *   4. out[i] = sum_p w[p] v_p[i] in float, p ascending, one thread per
 *      output value: the CPU's order (the products w*v are exact, so a
 *      contracted FMA rounds as the CPU's multiply-then-add).
 * Under the emulator (the host's expf) that is the CPU's result to the
 * bit; on a GPU, CUDA's expf (2 ulp) can move a weight one fp16 step at a
 * rounding tie.
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
	const float *__restrict__ q, const uint16_t *__restrict__ k, const uint16_t *__restrict__ v,
	float *__restrict__ out, int n_head, int group, int hd, int pos0, int window, float scale,
	int64_t kv_stride, const float *__restrict__ sinks)
{
	SMK_DYN_SMEM(float, s);
	SMK_SHARED(float, red, AT_WARPS);
	SMK_SHARED(double, dred, AT_WARPS);
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
		const uint16_t *kp = k + (int64_t)p * kv_stride + koff;
		double d = 0.0;
		for (int j = 0; j < AT_PER_LANE; j++) {
			const int i = lane + 32 * j;
			if (i < hd)
				d += (double)smk_mul(qv[j], smk_half_to_float(kp[i]));
		}
		const float sc = smk_mul((float)smk_warp_sum_d(d), scale);
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
	const float sink = sinks ? sinks[h] : 0.0f;
	if (sinks && sink > m)
		m = sink;

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
	if (sinks)
		total += (double)expf(sink - m); /* after the positions, as the CPU */
	const float inv = (float)(1.0 / total);

	/* 3. fp16 weights */
	for (int i = tid; i < span; i += AT_THREADS)
		s[i] = smk_round_f16(smk_mul(s[i], inv));
	__syncthreads();

	/* 4. weighted sum of V: thread i's values in position order (reads of
	 * one position's row are consecutive across the threads) */
	for (int i = tid; i < hd; i += AT_THREADS) {
		float o = 0.0f;
		const uint16_t *vp = v + (int64_t)first * kv_stride + koff + i;
		for (int p = 0; p < span; p++, vp += kv_stride)
			o = smk_add(o, smk_mul(s[p], smk_half_to_float(*vp)));
		out[qrow + i] = o;
	}
}

/* Static shared memory of attn_kernel (red, dred), which the dynamic part
 * shares the block's allowance with. */
#define AT_STATIC_SMEM (AT_WARPS * (sizeof(float) + sizeof(double)))

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

extern "C" int cuda_attention(const struct cuda_ctx *c, const float *q, const uint16_t *k,
			      const uint16_t *v, float *out, const struct attn_params *ap,
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
		   ap->kv_stride, ap->sinks);
	CUDA_CHECK(err, cudaGetLastError());
	return 0;
}
