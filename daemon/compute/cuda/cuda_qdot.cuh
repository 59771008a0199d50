/* cuda_qdot.cuh - the integer dot products of quantised weights with
 * quantised activations, block by block, as the CPU backend computes them.
 *
 * Why: the CPU backend (compute/cpu/qdot_scalar.c, after ggml) never
 * multiplies a quantised weight by a float activation.  It quantises each
 * activation row to int8 blocks first (Q8_0, Q8_1 or Q8_K by weight type:
 * qdot_act_type), takes the exact integer dot of the quants block by block,
 * and only then applies the two blocks' float scales.  Kernels that
 * multiplied float activations (as this backend's first version did) give
 * logits about 1e-2 apart from the CPU's, enough for greedy decoding to
 * part within a few dozen tokens.  Doing the same integer arithmetic leaves
 * only the order in which the blocks' float results are summed, and both
 * sum them in double, so the two backends' products agree to the last bit
 * but for a rounding tie of the final double -> float conversion.
 *
 * qd<T>::dot8(wb, aq, e): the integer sum over values e..e+7 (e a multiple
 * of 8) of one weight block wb with the activation block's quants aq,
 * each product times the value's integer sub-block scale (K-quants).  The
 * sum is linear in these pieces, so splitting a block among lanes and
 * adding their int results (exactly) gives the CPU's isum.
 * qd<T>::finish(wb, ab, isum): the block's float result, with the float
 * operations of qdot_scalar.c in its order (no contraction: smk_mul/add).
 *
 * Layouts: weight blocks as cuda_dequant.cuh (offsets documented there and
 * in quant/qtype.c); activation blocks as quant/qtype.h's
 * qtype_block_q8_0 {fp16 d; int8 qs[32]} (34 bytes), q8_1 {fp16 d, s;
 * int8 qs[32]} (36), q8_K {float d; int8 qs[256]; int16 bsums[16]} (292),
 * written by the quantisers in cuda_matmul.cu; the act buffer's blocks are
 * aligned for those fields (34, 36 and 292 keep 2- and 4-byte alignment). */
#ifndef SMK_COMPUTE_CUDA_QDOT_CUH
#define SMK_COMPUTE_CUDA_QDOT_CUH

#include "compute/cuda/cuda_dequant.cuh"

/* Where an activation block keeps its quants. */
#define QD_Q8_0_QS 2
#define QD_Q8_1_QS 4
#define QD_Q8_K_QS 4
#define QD_Q8_K_BSUMS 260

template <int T> struct qd;

/* Shared by the 32-value formats: the activation type and its block. */
#define QD_SMALL(act, act_bytes, qs_off)                          \
	enum { block_elems = 32, lanes = 4, act_type = act,         \
	       act_block_bytes = act_bytes, act_qs = qs_off }

/* Shared by the K-quants: eight lanes per block, four 8-value parts each. */
#define QD_K()                                                    \
	enum { block_elems = 256, lanes = 8, act_type = QTYPE_Q8_K, \
	       act_block_bytes = 292, act_qs = QD_Q8_K_QS }

/* The activation block's scale products of the 32-value formats. */
__host__ __device__ static inline float qd_d8(const uint8_t *wb, const uint8_t *ab)
{
	return smk_mul(dq_f16(wb), dq_f16(ab));
}

template <> struct qd<QTYPE_Q4_0> {
	QD_SMALL(QTYPE_Q8_0, 34, QD_Q8_0_QS);
	enum { block_bytes = 18 };
	__host__ __device__ static inline int dot8(const uint8_t *wb, const int8_t *aq, int e)
	{
		int s = 0;
		for (int k = 0; k < 8; k++)
			s += (dq_nib(wb + 2, e + k) - 8) * aq[e + k];
		return s;
	}
	__host__ __device__ static inline float finish(const uint8_t *wb, const uint8_t *ab, int isum)
	{
		return smk_mul((float)isum, qd_d8(wb, ab));
	}
};

/* d*da*isum + m * s, s being the Q8_1 block's fp16 da*sum(a). */
template <> struct qd<QTYPE_Q4_1> {
	QD_SMALL(QTYPE_Q8_1, 36, QD_Q8_1_QS);
	enum { block_bytes = 20 };
	__host__ __device__ static inline int dot8(const uint8_t *wb, const int8_t *aq, int e)
	{
		int s = 0;
		for (int k = 0; k < 8; k++)
			s += dq_nib(wb + 4, e + k) * aq[e + k];
		return s;
	}
	__host__ __device__ static inline float finish(const uint8_t *wb, const uint8_t *ab, int isum)
	{
		return smk_add(smk_mul(qd_d8(wb, ab), (float)isum), smk_mul(dq_f16(wb + 2), dq_f16(ab + 2)));
	}
};

template <> struct qd<QTYPE_Q5_0> {
	QD_SMALL(QTYPE_Q8_0, 34, QD_Q8_0_QS);
	enum { block_bytes = 22 };
	__host__ __device__ static inline int dot8(const uint8_t *wb, const int8_t *aq, int e)
	{
		const uint32_t h = dq_u32(wb + 2);
		int s = 0;
		for (int k = 0; k < 8; k++) {
			const int q = dq_nib(wb + 6, e + k) | (int)((h >> (e + k)) & 1) << 4;
			s += (q - 16) * aq[e + k];
		}
		return s;
	}
	__host__ __device__ static inline float finish(const uint8_t *wb, const uint8_t *ab, int isum)
	{
		return smk_mul((float)isum, qd_d8(wb, ab));
	}
};

template <> struct qd<QTYPE_Q5_1> {
	QD_SMALL(QTYPE_Q8_1, 36, QD_Q8_1_QS);
	enum { block_bytes = 24 };
	__host__ __device__ static inline int dot8(const uint8_t *wb, const int8_t *aq, int e)
	{
		const uint32_t h = dq_u32(wb + 4);
		int s = 0;
		for (int k = 0; k < 8; k++)
			s += (dq_nib(wb + 8, e + k) | (int)((h >> (e + k)) & 1) << 4) * aq[e + k];
		return s;
	}
	__host__ __device__ static inline float finish(const uint8_t *wb, const uint8_t *ab, int isum)
	{
		return smk_add(smk_mul(qd_d8(wb, ab), (float)isum), smk_mul(dq_f16(wb + 2), dq_f16(ab + 2)));
	}
};

template <> struct qd<QTYPE_Q8_0> {
	QD_SMALL(QTYPE_Q8_0, 34, QD_Q8_0_QS);
	enum { block_bytes = 34 };
	__host__ __device__ static inline int dot8(const uint8_t *wb, const int8_t *aq, int e)
	{
		int s = 0;
		for (int k = 0; k < 8; k++)
			s += (int8_t)wb[2 + e + k] * aq[e + k];
		return s;
	}
	__host__ __device__ static inline float finish(const uint8_t *wb, const uint8_t *ab, int isum)
	{
		return smk_mul((float)isum, qd_d8(wb, ab));
	}
};

/* MXFP4 against Q8_0: the doubled E2M1 values times the int8 activations,
 * scaled by fp16(d_a) * 2^(e-128) (qdot_scalar.c's dot_mxfp4). */
template <> struct qd<QTYPE_MXFP4> {
	QD_SMALL(QTYPE_Q8_0, 34, QD_Q8_0_QS);
	enum { block_bytes = 17 };
	__host__ __device__ static inline int dot8(const uint8_t *wb, const int8_t *aq, int e)
	{
		int s = 0;
		for (int k = 0; k < 8; k++)
			s += dq_mxfp4_value(dq_nib(wb + 1, e + k)) * aq[e + k];
		return s;
	}
	__host__ __device__ static inline float finish(const uint8_t *wb, const uint8_t *ab, int isum)
	{
		return smk_mul(smk_mul(dq_f16(ab), dq_e8m0_half(wb[0])), (float)isum);
	}
};

/* ---- K-quants against Q8_K -------------------------------------------------- */

__host__ __device__ static inline float qd_k_d(const uint8_t *ab)
{
	float d;
	memcpy(&d, ab, sizeof(d));
	return d;
}

__host__ __device__ static inline int qd_k_bsum(const uint8_t *ab, int g)
{
	return (int16_t)dq_u16(ab + QD_Q8_K_BSUMS + 2 * g);
}

/* (d*sc_g)*q - (dmin*m_g): isum carries sc_g, the min term is
 * dmin * sum_g m_g * bsum_g. */
template <> struct qd<QTYPE_Q2_K> {
	QD_K();
	enum { block_bytes = 84 };
	__host__ __device__ static inline int dot8(const uint8_t *wb, const int8_t *aq, int e)
	{
		const int sc = wb[e / 16] & 15;
		const uint8_t *q = wb + 16 + 32 * (e / 128);
		const int shift = 2 * ((e % 128) / 32);
		int s = 0;
		for (int k = 0; k < 8; k++)
			s += ((q[(e + k) % 32] >> shift) & 3) * aq[e + k];
		return sc * s;
	}
	__host__ __device__ static inline float finish(const uint8_t *wb, const uint8_t *ab, int isum)
	{
		int summs = 0;
		for (int g = 0; g < 16; g++)
			summs += qd_k_bsum(ab, g) * (wb[g] >> 4);
		const float da = qd_k_d(ab);
		const float dall = smk_mul(da, dq_f16(wb + 80));
		const float dmin = smk_mul(da, dq_f16(wb + 82));
		return smk_sub(smk_mul(dall, (float)isum), smk_mul(dmin, (float)summs));
	}
};

template <> struct qd<QTYPE_Q3_K> {
	QD_K();
	enum { block_bytes = 110 };
	__host__ __device__ static inline int dot8(const uint8_t *wb, const int8_t *aq, int e)
	{
		const int sc = dq_k3_scale(wb + 96, e / 16);
		const uint8_t *q = wb + 32 + 32 * (e / 128);
		const int sh = (e % 128) / 32;
		const int m = 1 << (4 * (e / 128) + sh);
		int s = 0;
		for (int k = 0; k < 8; k++) {
			const int l = (e + k) % 32;
			const int v = ((q[l] >> (2 * sh)) & 3) - ((wb[l] & m) ? 0 : 4);
			s += v * aq[e + k];
		}
		return sc * s;
	}
	__host__ __device__ static inline float finish(const uint8_t *wb, const uint8_t *ab, int isum)
	{
		return smk_mul(smk_mul(dq_f16(wb + 108), qd_k_d(ab)), (float)isum);
	}
};

/* Q4_K and Q5_K: d*isum - dmin*msum, msum = sum over the eight sub-blocks
 * of their 6-bit min times the activation's sum there (two bsums each). */
__host__ __device__ static inline float qd_k45_finish(const uint8_t *wb, const uint8_t *ab, int isum)
{
	int msum = 0;
	for (int j = 0; j < 8; j++) {
		int sc, m;
		dq_k4_scale_min(wb + 4, j, &sc, &m);
		msum += m * (qd_k_bsum(ab, 2 * j) + qd_k_bsum(ab, 2 * j + 1));
	}
	const float da = qd_k_d(ab);
	const float d = smk_mul(dq_f16(wb), da);
	const float dmin = smk_mul(dq_f16(wb + 2), da);
	return smk_sub(smk_mul(d, (float)isum), smk_mul(dmin, (float)msum));
}

template <> struct qd<QTYPE_Q4_K> {
	QD_K();
	enum { block_bytes = 144 };
	__host__ __device__ static inline int dot8(const uint8_t *wb, const int8_t *aq, int e)
	{
		const int j = e / 32;
		int sc, m;
		dq_k4_scale_min(wb + 4, j, &sc, &m);
		const uint8_t *q = wb + 16 + 32 * (e / 64);
		int s = 0;
		for (int k = 0; k < 8; k++) {
			const int l = (e + k) % 32;
			s += ((j & 1) ? q[l] >> 4 : q[l] & 15) * aq[e + k];
		}
		return sc * s;
	}
	__host__ __device__ static inline float finish(const uint8_t *wb, const uint8_t *ab, int isum)
	{
		return qd_k45_finish(wb, ab, isum);
	}
};

template <> struct qd<QTYPE_Q5_K> {
	QD_K();
	enum { block_bytes = 176 };
	__host__ __device__ static inline int dot8(const uint8_t *wb, const int8_t *aq, int e)
	{
		const int j = e / 32;
		int sc, m;
		dq_k4_scale_min(wb + 4, j, &sc, &m);
		const uint8_t *qh = wb + 16, *q = wb + 48 + 32 * (e / 64);
		int s = 0;
		for (int k = 0; k < 8; k++) {
			const int l = (e + k) % 32;
			const int v = ((j & 1) ? q[l] >> 4 : q[l] & 15) + ((qh[l] >> j) & 1 ? 16 : 0);
			s += v * aq[e + k];
		}
		return sc * s;
	}
	__host__ __device__ static inline float finish(const uint8_t *wb, const uint8_t *ab, int isum)
	{
		return qd_k45_finish(wb, ab, isum);
	}
};

template <> struct qd<QTYPE_Q6_K> {
	QD_K();
	enum { block_bytes = 210 };
	__host__ __device__ static inline int dot8(const uint8_t *wb, const int8_t *aq, int e)
	{
		const int h = e / 128, r = (e % 128) / 32;
		const uint8_t *ql = wb + 64 * h + 32 * (r & 1), *qh = wb + 128 + 32 * h;
		const int sc = (int8_t)wb[192 + 8 * h + (e % 32) / 16 + 2 * r];
		int s = 0;
		for (int k = 0; k < 8; k++) {
			const int l = (e + k) % 32;
			const int lo = r < 2 ? ql[l] & 15 : ql[l] >> 4;
			s += ((lo | ((qh[l] >> (2 * r)) & 3) << 4) - 32) * aq[e + k];
		}
		return sc * s;
	}
	__host__ __device__ static inline float finish(const uint8_t *wb, const uint8_t *ab, int isum)
	{
		return smk_mul(smk_mul(dq_f16(wb + 208), qd_k_d(ab)), (float)isum);
	}
};

/* The quantised weight types only (the float ones multiply float
 * activations: cuda_matmul.cu's mv_float_kernel). */
#define QD_DISPATCH(type, CALL)                                   \
	switch (type) {                                           \
	DQ_QUANT_CASES(CALL)                                      \
	default: break;                                           \
	}

#endif
