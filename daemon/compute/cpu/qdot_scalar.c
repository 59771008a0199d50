/* qdot_scalar.c - scalar reference dot products (weight row . prepared act).
 *
 * These define what every SIMD kernel must compute.  Each block's result is
 * formed exactly as in ggml's generic vec_dot code: the integer dot of the
 * weight quants with the int8 activation quants (exact, in int32), scaled by
 * the float product of the two block scales; the K-quants' "min" terms use
 * the activation's bsums.  Block results are summed in double, so the only
 * rounding left is per block; the SIMD kernels, which sum in float lanes,
 * are tested against these within a summation-order tolerance.
 *
 * Weight blocks are read through the packed structs of quant/qtype.h (the
 * bit layouts are documented in qtype.c); activation blocks are the
 * qtype_block_q8_0 / qtype_block_q8_1 / qtype_block_q8_K written by qdot_prepare.
 */
#include "compute/cpu/qdot_impl.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "util/fp16.h"

/* ---- float weights (activation: float) ---------------------------------- */

static float dot_f32(const void *w, const void *act, int64_t n)
{
	const float *a = act;
	const uint8_t *p = w;
	double sum = 0.0;
	for (int64_t i = 0; i < n; i++) {
		float v;
		memcpy(&v, p + 4 * i, 4);
		sum += (double)(v * a[i]);
	}
	return (float)sum;
}

static float dot_f16(const void *w, const void *act, int64_t n)
{
	const float *a = act;
	const uint8_t *p = w;
	double sum = 0.0;
	for (int64_t i = 0; i < n; i++) {
		uint16_t h;
		memcpy(&h, p + 2 * i, 2);
		sum += (double)(fp16_to_fp32(h) * a[i]);
	}
	return (float)sum;
}

static float dot_bf16(const void *w, const void *act, int64_t n)
{
	const float *a = act;
	const uint8_t *p = w;
	double sum = 0.0;
	for (int64_t i = 0; i < n; i++) {
		uint16_t h;
		memcpy(&h, p + 2 * i, 2);
		sum += (double)(bf16_to_fp32(h) * a[i]);
	}
	return (float)sum;
}

/* ---- 32-value blocks (activation: Q8_0, or Q8_1 for Q4_1/Q5_1) ---------- */

static float dot_q4_0(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q4_0 *x = w;
	const struct qtype_block_q8_0 *y = act;
	double sum = 0.0;
	for (int64_t i = 0; i < n / QTYPE_QK; i++) {
		int isum = 0;
		for (int j = 0; j < 16; j++) {
			isum += ((x[i].qs[j] & 15) - 8) * y[i].qs[j];
			isum += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
		}
		const float d = fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d);
		sum += (double)((float)isum * d);
	}
	return (float)sum;
}

/* sum_j (d*q_j + m) * (da*a_j) = d*da*sum(q*a) + m*(da*sum(a)), the last
 * factor being the Q8_1 block's s (as in ggml, rounded to fp16). */
static float dot_q4_1(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q4_1 *x = w;
	const struct qtype_block_q8_1 *y = act;
	double sum = 0.0;
	for (int64_t i = 0; i < n / QTYPE_QK; i++) {
		int isum = 0;
		for (int j = 0; j < 16; j++) {
			isum += (x[i].qs[j] & 15) * y[i].qs[j];
			isum += (x[i].qs[j] >> 4) * y[i].qs[j + 16];
		}
		const float d = fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d);
		const float m = fp16_to_fp32(x[i].m);
		sum += (double)(d * (float)isum + m * fp16_to_fp32(y[i].s));
	}
	return (float)sum;
}

static float dot_q5_0(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q5_0 *x = w;
	const struct qtype_block_q8_0 *y = act;
	double sum = 0.0;
	for (int64_t i = 0; i < n / QTYPE_QK; i++) {
		uint32_t h;
		memcpy(&h, x[i].qh, 4);
		int isum = 0;
		for (int j = 0; j < 16; j++) {
			int q0 = ((x[i].qs[j] & 15) | (int)((h >> j) & 1) << 4) - 16;
			int q1 = ((x[i].qs[j] >> 4) | (int)((h >> (j + 16)) & 1) << 4) - 16;
			isum += q0 * y[i].qs[j] + q1 * y[i].qs[j + 16];
		}
		const float d = fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d);
		sum += (double)((float)isum * d);
	}
	return (float)sum;
}

static float dot_q5_1(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q5_1 *x = w;
	const struct qtype_block_q8_1 *y = act;
	double sum = 0.0;
	for (int64_t i = 0; i < n / QTYPE_QK; i++) {
		uint32_t h;
		memcpy(&h, x[i].qh, 4);
		int isum = 0;
		for (int j = 0; j < 16; j++) {
			int q0 = (x[i].qs[j] & 15) | (int)((h >> j) & 1) << 4;
			int q1 = (x[i].qs[j] >> 4) | (int)((h >> (j + 16)) & 1) << 4;
			isum += q0 * y[i].qs[j] + q1 * y[i].qs[j + 16];
		}
		const float d = fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d);
		const float m = fp16_to_fp32(x[i].m);
		sum += (double)(d * (float)isum + m * fp16_to_fp32(y[i].s));
	}
	return (float)sum;
}

static float dot_q8_0(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q8_0 *x = w;
	const struct qtype_block_q8_0 *y = act;
	double sum = 0.0;
	for (int64_t i = 0; i < n / QTYPE_QK; i++) {
		int isum = 0;
		for (int j = 0; j < 32; j++)
			isum += x[i].qs[j] * y[i].qs[j];
		const float d = fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d);
		sum += (double)((float)isum * d);
	}
	return (float)sum;
}

/* MXFP4: the doubled E2M1 values (qtype_mxfp4_values) times the int8
 * activations, scaled by fp16(d_a) * 2^(e-128) (the halved E8M0 scale
 * undoes the doubling), as ggml_vec_dot_mxfp4_q8_0. */
static float dot_mxfp4(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_mxfp4 *x = w;
	const struct qtype_block_q8_0 *y = act;
	double sum = 0.0;
	for (int64_t i = 0; i < n / QTYPE_QK; i++) {
		int isum = 0;
		for (int j = 0; j < 16; j++) {
			isum += qtype_mxfp4_values[x[i].qs[j] & 15] * y[i].qs[j];
			isum += qtype_mxfp4_values[x[i].qs[j] >> 4] * y[i].qs[j + 16];
		}
		const float d = fp16_to_fp32(y[i].d) * qtype_e8m0_half(x[i].e);
		sum += (double)(d * (float)isum);
	}
	return (float)sum;
}

/* ---- K-quants (activation: Q8_K) ---------------------------------------- */

/* The activation's bsums as plain ints (the packed struct's field may be
 * misaligned, so it is copied out rather than pointed into). */
static void q8k_bsums(const struct qtype_block_q8_K *y, int16_t out[16])
{
	memcpy(out, (const uint8_t *)y + offsetof(struct qtype_block_q8_K, bsums),
	       16 * sizeof(int16_t));
}

/* y = (d*sc_g)*q - (dmin*m_g) per 16-value group g, q 2-bit. */
static float dot_q2_K(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q2_K *x = w;
	const struct qtype_block_q8_K *y = act;
	double sum = 0.0;
	for (int64_t i = 0; i < n / QTYPE_QK_K; i++) {
		int16_t bs[16];
		q8k_bsums(&y[i], bs);
		int summs = 0;
		for (int g = 0; g < 16; g++)
			summs += bs[g] * (x[i].scales[g] >> 4);
		const int8_t *a = y[i].qs;
		const uint8_t *q = x[i].qs;
		int isum = 0, g = 0;
		for (int half = 0; half < 2; half++, q += 32) {
			for (int shift = 0; shift < 8; shift += 2) {
				for (int k = 0; k < 2; k++, g++, a += 16) {
					int s = 0;
					for (int l = 0; l < 16; l++)
						s += a[l] * ((q[16 * k + l] >> shift) & 3);
					isum += (x[i].scales[g] & 15) * s;
				}
			}
		}
		const float da = y[i].d;
		const float dall = da * fp16_to_fp32(x[i].d);
		const float dmin = da * fp16_to_fp32(x[i].dmin);
		sum += (double)(dall * (float)isum - dmin * (float)summs);
	}
	return (float)sum;
}

static float dot_q3_K(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q3_K *x = w;
	const struct qtype_block_q8_K *y = act;
	double sum = 0.0;
	for (int64_t i = 0; i < n / QTYPE_QK_K; i++) {
		int8_t sc[16];
		qtype_k3_scales(x[i].scales, sc);
		const int8_t *a = y[i].qs;
		const uint8_t *q = x[i].qs;
		uint8_t m = 1;
		int isum = 0, g = 0;
		for (int half = 0; half < 2; half++, q += 32) {
			for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
				for (int k = 0; k < 2; k++, g++, a += 16) {
					/* Values first, then the products: GCC 12.2
					 * vectorised the fused form of this loop into
					 * wrong code when AVX-VNNI is enabled
					 * (-march=native on recent Intel); the
					 * fixture test caught it. */
					int8_t v[16];
					for (int l = 0; l < 16; l++) {
						int lo = (q[16 * k + l] >> shift) & 3;
						int hi = (x[i].hmask[16 * k + l] & m) ? 0 : 4;
						v[l] = (int8_t)(lo - hi);
					}
					int s = 0;
					for (int l = 0; l < 16; l++)
						s += v[l] * a[l];
					isum += sc[g] * s;
				}
			}
		}
		const float d = fp16_to_fp32(x[i].d) * y[i].d;
		sum += (double)(d * (float)isum);
	}
	return (float)sum;
}

/* A Q4_K or Q5_K super-block's integer sums against a Q8_K block (q5
 * selects the 5th bit from qh): the scales times the quants' products,
 * and the mins times the activation's 32-value sums. */
static inline void q45_K_sums(const uint8_t *qs, const uint8_t *qh, const uint8_t *scales,
			      const struct qtype_block_q8_K *y, int *isum_out, int *msum_out)
{
	int16_t bs[16];
	q8k_bsums(y, bs);
	int isum = 0, msum = 0;
	const int8_t *a = y->qs;
	for (int c = 0; c < 4; c++, qs += 32, a += 64) {
		uint8_t sc0, m0, sc1, m1;
		qtype_k4_scale_min(scales, 2 * c, &sc0, &m0);
		qtype_k4_scale_min(scales, 2 * c + 1, &sc1, &m1);
		int s0 = 0, s1 = 0;
		for (int l = 0; l < 32; l++) {
			int v0 = qs[l] & 15, v1 = qs[l] >> 4;
			if (qh) {
				v0 += (qh[l] >> (2 * c)) & 1 ? 16 : 0;
				v1 += (qh[l] >> (2 * c + 1)) & 1 ? 16 : 0;
			}
			s0 += v0 * a[l];
			s1 += v1 * a[l + 32];
		}
		isum += sc0 * s0 + sc1 * s1;
		msum += m0 * (bs[4 * c] + bs[4 * c + 1]) + m1 * (bs[4 * c + 2] + bs[4 * c + 3]);
	}
	*isum_out = isum;
	*msum_out = msum;
}

/* Shared by Q4_K and Q5_K. */
static inline float dot_q45_K(const uint8_t *qs, const uint8_t *qh,
			      const uint8_t *scales, uint16_t dw, uint16_t dminw,
			      const struct qtype_block_q8_K *y)
{
	int isum, msum;
	q45_K_sums(qs, qh, scales, y, &isum, &msum);
	const float d = fp16_to_fp32(dw) * y->d;
	const float dmin = fp16_to_fp32(dminw) * y->d;
	return d * (float)isum - dmin * (float)msum;
}

/* The block order (qdot.h, qdot_block_order), the definition its AVX-512
 * kernels match bit for bit: a super-block's value from its exact integer
 * sums, v = fmaf(-(dmin_w * d_y), msum, (d_w * d_y) * isum) (Q6_K: no
 * msum term), eight consecutive blocks' values added as a tree
 * ((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7)) (a short last group's
 * missing values +0), and the groups' sums added in order. */
static float block_order_group(const float v[8])
{
	return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

static float block_order_q45(const void *w, size_t blk, bool q5, const void *act, int64_t n)
{
	const struct qtype_block_q8_K *y = act;
	const int64_t nb = n / QTYPE_QK_K;
	float acc = 0.0f;
	for (int64_t i = 0; i < nb; i += 8) {
		float v[8] = { 0.0f };
		for (int k = 0; k < 8 && i + k < nb; k++) {
			const uint8_t *x = (const uint8_t *)w + (size_t)(i + k) * blk;
			/* Q4_K and Q5_K start alike: d, dmin, scales; then Q5_K's qh */
			_Static_assert(offsetof(struct qtype_block_q5_K, scales) ==
					       offsetof(struct qtype_block_q4_K, scales), "q4_K/q5_K heads");
			uint16_t d, dmin;
			memcpy(&d, x + offsetof(struct qtype_block_q4_K, d), 2);
			memcpy(&dmin, x + offsetof(struct qtype_block_q4_K, dmin), 2);
			const size_t qs = q5 ? offsetof(struct qtype_block_q5_K, qs) : offsetof(struct qtype_block_q4_K, qs);
			int isum, msum;
			q45_K_sums(x + qs, q5 ? x + offsetof(struct qtype_block_q5_K, qh) : NULL,
				   x + offsetof(struct qtype_block_q4_K, scales), &y[i + k], &isum, &msum);
			const float dy = y[i + k].d;
			v[k] = fmaf(-(fp16_to_fp32(dmin) * dy), (float)msum, (fp16_to_fp32(d) * dy) * (float)isum);
		}
		acc += block_order_group(v);
	}
	return acc;
}

static float dot_q4_K_blocks(const void *w, const void *act, int64_t n)
{
	return block_order_q45(w, sizeof(struct qtype_block_q4_K), false, act, n);
}

static float dot_q4_K(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q4_K *x = w;
	const struct qtype_block_q8_K *y = act;
	double sum = 0.0;
	for (int64_t i = 0; i < n / QTYPE_QK_K; i++)
		sum += (double)dot_q45_K(x[i].qs, NULL, x[i].scales, x[i].d, x[i].dmin, &y[i]);
	return (float)sum;
}

static float dot_q5_K(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q5_K *x = w;
	const struct qtype_block_q8_K *y = act;
	double sum = 0.0;
	for (int64_t i = 0; i < n / QTYPE_QK_K; i++)
		sum += (double)dot_q45_K(x[i].qs, x[i].qh, x[i].scales, x[i].d, x[i].dmin, &y[i]);
	return (float)sum;
}

/* A Q6_K super-block's integer sum against a Q8_K block: the scales
 * times the (quants - 32)'s products. */
static int q6_K_isum(const struct qtype_block_q6_K *x, const struct qtype_block_q8_K *y)
{
	int isum = 0;
	for (int h = 0; h < 2; h++) {
		const uint8_t *ql = x->ql + 64 * h, *qh = x->qh + 32 * h;
		const int8_t *sc = x->scales + 8 * h;
		const int8_t *a = y->qs + 128 * h;
		int s[8] = { 0 };
		for (int l = 0; l < 32; l++) {
			int is = l / 16;
			int q1 = ((ql[l] & 15) | ((qh[l] >> 0) & 3) << 4) - 32;
			int q2 = ((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4) - 32;
			int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
			int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
			s[is + 0] += q1 * a[l];
			s[is + 2] += q2 * a[l + 32];
			s[is + 4] += q3 * a[l + 64];
			s[is + 6] += q4 * a[l + 96];
		}
		for (int g = 0; g < 8; g++)
			isum += sc[g] * s[g];
	}
	return isum;
}

static float dot_q6_K(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q6_K *x = w;
	const struct qtype_block_q8_K *y = act;
	double sum = 0.0;
	for (int64_t i = 0; i < n / QTYPE_QK_K; i++) {
		const float d = fp16_to_fp32(x[i].d) * y[i].d;
		sum += (double)(d * (float)q6_K_isum(&x[i], &y[i]));
	}
	return (float)sum;
}

static float dot_q5_K_blocks(const void *w, const void *act, int64_t n)
{
	return block_order_q45(w, sizeof(struct qtype_block_q5_K), true, act, n);
}

static float dot_q6_K_blocks(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q6_K *x = w;
	const struct qtype_block_q8_K *y = act;
	const int64_t nb = n / QTYPE_QK_K;
	float acc = 0.0f;
	for (int64_t i = 0; i < nb; i += 8) {
		float v[8] = { 0.0f };
		for (int k = 0; k < 8 && i + k < nb; k++)
			v[k] = (fp16_to_fp32(x[i + k].d) * y[i + k].d) * (float)q6_K_isum(&x[i + k], &y[i + k]);
		acc += block_order_group(v);
	}
	return acc;
}

qdot_fn qdot__scalar_kernel(uint32_t wtype)
{
	switch (wtype) {
	case QTYPE_F32: return dot_f32;
	case QTYPE_F16: return dot_f16;
	case QTYPE_BF16: return dot_bf16;
	case QTYPE_Q4_0: return dot_q4_0;
	case QTYPE_Q4_1: return dot_q4_1;
	case QTYPE_Q5_0: return dot_q5_0;
	case QTYPE_Q5_1: return dot_q5_1;
	case QTYPE_Q8_0: return dot_q8_0;
	case QTYPE_MXFP4: return dot_mxfp4;
	case QTYPE_Q2_K: return dot_q2_K;
	case QTYPE_Q3_K: return dot_q3_K;
	case QTYPE_Q4_K: return dot_q4_K;
	case QTYPE_Q5_K: return dot_q5_K;
	case QTYPE_Q6_K: return dot_q6_K;
	default: return NULL;
	}
}

qdot_fn qdot__scalar_block_kernel(uint32_t wtype)
{
	switch (wtype) {
	case QTYPE_Q4_K: return dot_q4_K_blocks;
	case QTYPE_Q5_K: return dot_q5_K_blocks;
	case QTYPE_Q6_K: return dot_q6_K_blocks;
	default: return NULL;
	}
}
