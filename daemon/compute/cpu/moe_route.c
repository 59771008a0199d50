/* moe_route.c - the MoE router's softmax, top-k and renormalisation on the
 * host (compute/moe_route.h), in llama.cpp's CPU order of operations. */
#include "compute/moe_route.h"

#include <math.h>

#include "compute/cpu/qdot.h"
#include "compute/cpu/simd_avx2.h"

#ifdef CPU_HAVE_AVX2_CODE
/* ggml_vec_soft_max_f32's AVX2 loop: 8 exponentials at a time, each
 * group's sum in float (high half + low half, then hsum4), added in
 * double; *done = values handled. */
CPU_AVX2 static double exp_sum_avx2(const float *x, float *y, int n, float max, int *done)
{
	double sum = 0.0;
	int i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 v = cpu_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(max)));
		_mm256_storeu_ps(y + i, v);
		sum += (double)cpu_hsum8(v);
	}
	*done = i;
	return sum;
}
#endif

void moe_softmax_row(const float *x, float *y, int n)
{
	float max = -INFINITY;
	for (int i = 0; i < n; i++)
		max = x[i] > max ? x[i] : max;
	double sum = 0.0;
	int i = 0;
#ifdef CPU_HAVE_AVX2_CODE
	if (qdot_simd_active())
		sum = exp_sum_avx2(x, y, n, max, &i);
#endif
	for (; i < n; i++) {
		float v = expf(x[i] - max);
		sum += (double)v;
		y[i] = v;
	}
	const float inv = (float)(1.0 / sum);
	for (i = 0; i < n; i++)
		y[i] *= inv;
}

/* Each pass takes the largest value not yet taken, the lowest index on a
 * tie: k passes over n values (k is small: 2..8). */
void moe_top_k(const float *x, int n, int k, int32_t *s, float *v)
{
	for (int j = 0; j < k; j++) {
		int best = -1;
		for (int e = 0; e < n; e++) {
			bool taken = false;
			for (int q = 0; q < j && !taken; q++)
				taken = s[q] == e;
			if (!taken && (best < 0 || x[e] > x[best]))
				best = e;
		}
		s[j] = best;
		if (v)
			v[j] = x[best];
	}
}

void moe_route_topk_softmax(const float *logits, int n_expert, int n, int k, int32_t *sel,
			    float *w_raw, float *w)
{
	for (int r = 0; r < n; r++) {
		int32_t *s = sel + (int64_t)r * k;
		float *wr = w + (int64_t)r * k;
		moe_top_k(logits + (int64_t)r * n_expert, n_expert, k, s, wr);
		if (w_raw)
			for (int j = 0; j < k; j++)
				w_raw[(int64_t)r * k + j] = wr[j];
		/* ggml_soft_max over the k chosen logits */
		moe_softmax_row(wr, wr, k);
	}
}

void moe_route(const float *logits, int n_expert, int n, int k, float *probs_all, int32_t *sel,
	       float *w_raw, float *w)
{
	for (int r = 0; r < n; r++) {
		float *probs = probs_all + (int64_t)r * n_expert;
		moe_softmax_row(logits + (int64_t)r * n_expert, probs, n_expert);
		int32_t *s = sel + (int64_t)r * k;
		float *wr = w + (int64_t)r * k;
		moe_top_k(probs, n_expert, k, s, wr);
		if (w_raw)
			for (int j = 0; j < k; j++)
				w_raw[(int64_t)r * k + j] = wr[j];
		double sum = 0.0;
		for (int j = 0; j < k; j++)
			sum += (double)wr[j];
		float fs = (float)sum;
		if (fs < 6.103515625e-5f)
			fs = 6.103515625e-5f;
		for (int j = 0; j < k; j++)
			wr[j] = wr[j] / fs;
	}
}
