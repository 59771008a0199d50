/* cuda_dequant.cuh - weight decoders for the kernels: eight consecutive
 * values of a row at a time, for every tensor type the CPU computes with.
 *
 * dq<T>::get8(row, e0, ne0, v) writes values e0..e0+7 of a weight row of
 * type T (ggml type id, quant/qtype.h) into v.  e0 is a multiple of 8; for
 * the block formats ne0 is a multiple of the block (32 or 256), so eight
 * values never straddle a block or a 16-value scale group.  For F32, F16 and
 * BF16 rows (no blocks) values at or past ne0 read as 0.
 *
 * The block layouts are documented byte by byte next to the decoders in
 * quant/qtype.c; the offsets below are the same (block sizes checked by the
 * _Static_asserts in qtype.h).  Blocks are only byte-aligned in a row, so
 * multi-byte fields are assembled from bytes.  Every value is computed with
 * the float operations of qtype.c in the same order, each product and sum
 * rounded on its own (smk_mul/smk_add, never a contracted FMA), so the
 * decoded floats equal the CPU's bit for bit - the embedding test checks
 * that for every type. */
#ifndef SMK_COMPUTE_CUDA_DEQUANT_CUH
#define SMK_COMPUTE_CUDA_DEQUANT_CUH

#include "compute/cuda/cuda_compat.cuh"
#include "quant/qtype.h"

__host__ __device__ static inline uint16_t dq_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

__host__ __device__ static inline uint32_t dq_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

__host__ __device__ static inline float dq_f16(const uint8_t *p)
{
	return smk_half_to_float(dq_u16(p));
}

/* qtype_k4_scale_min (quant/qtype.h), for the device. */
__host__ __device__ static inline void dq_k4_scale_min(const uint8_t *q, int j, int *sc, int *m)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4);
		*m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
	}
}

/* One signed scale of qtype_k3_scales (quant/qtype.h), for the device. */
__host__ __device__ static inline int dq_k3_scale(const uint8_t *q, int j)
{
	int lo = j < 8 ? q[j] & 15 : q[j - 8] >> 4;
	int hi = (q[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
	return (lo | hi << 4) - 32;
}

template <int T> struct dq;

/* ---- plain floats ---------------------------------------------------------- */

template <> struct dq<QTYPE_F32> {
	enum { block_elems = 1, block_bytes = 4 };
	__host__ __device__ static inline void get8(const uint8_t *row, int64_t e0, int64_t ne0,
						    float v[8])
	{
		const float *r = (const float *)row;
		for (int k = 0; k < 8; k++)
			v[k] = e0 + k < ne0 ? r[e0 + k] : 0.0f;
	}
};

template <> struct dq<QTYPE_F16> {
	enum { block_elems = 1, block_bytes = 2 };
	__host__ __device__ static inline void get8(const uint8_t *row, int64_t e0, int64_t ne0,
						    float v[8])
	{
		const uint16_t *r = (const uint16_t *)row;
		for (int k = 0; k < 8; k++)
			v[k] = e0 + k < ne0 ? smk_half_to_float(r[e0 + k]) : 0.0f;
	}
};

template <> struct dq<QTYPE_BF16> {
	enum { block_elems = 1, block_bytes = 2 };
	__host__ __device__ static inline void get8(const uint8_t *row, int64_t e0, int64_t ne0,
						    float v[8])
	{
		const uint16_t *r = (const uint16_t *)row;
		for (int k = 0; k < 8; k++)
			v[k] = e0 + k < ne0 ? smk_bf16_to_float(r[e0 + k]) : 0.0f;
	}
};

/* ---- 32-value blocks -------------------------------------------------------- */

/* The 4-bit quant of value o (0..31) of a block whose qs[16] holds value j
 * in the low nibble of byte j and value j+16 in the high nibble. */
__host__ __device__ static inline int dq_nib(const uint8_t *qs, int o)
{
	return o < 16 ? qs[o] & 15 : qs[o - 16] >> 4;
}

/* Q4_0 (18 bytes): d fp16 @0, qs[16] @2.  y = d * (q - 8). */
template <> struct dq<QTYPE_Q4_0> {
	enum { block_elems = 32, block_bytes = 18 };
	__host__ __device__ static inline void get8(const uint8_t *row, int64_t e0, int64_t ne0,
						    float v[8])
	{
		(void)ne0;
		const uint8_t *b = row + (e0 / 32) * block_bytes;
		const int o = (int)(e0 % 32);
		const float d = dq_f16(b);
		for (int k = 0; k < 8; k++)
			v[k] = smk_mul(d, (float)(dq_nib(b + 2, o + k) - 8));
	}
};

/* Q4_1 (20 bytes): d @0, m @2 (fp16), qs[16] @4.  y = d * q + m. */
template <> struct dq<QTYPE_Q4_1> {
	enum { block_elems = 32, block_bytes = 20 };
	__host__ __device__ static inline void get8(const uint8_t *row, int64_t e0, int64_t ne0,
						    float v[8])
	{
		(void)ne0;
		const uint8_t *b = row + (e0 / 32) * block_bytes;
		const int o = (int)(e0 % 32);
		const float d = dq_f16(b), m = dq_f16(b + 2);
		for (int k = 0; k < 8; k++)
			v[k] = smk_add(smk_mul(d, (float)dq_nib(b + 4, o + k)), m);
	}
};

/* Q5_0 (22 bytes): d @0, qh u32 @2 (bit j: top bit of value j), qs @6.
 * y = d * (q - 16). */
template <> struct dq<QTYPE_Q5_0> {
	enum { block_elems = 32, block_bytes = 22 };
	__host__ __device__ static inline void get8(const uint8_t *row, int64_t e0, int64_t ne0,
						    float v[8])
	{
		(void)ne0;
		const uint8_t *b = row + (e0 / 32) * block_bytes;
		const int o = (int)(e0 % 32);
		const float d = dq_f16(b);
		const uint32_t h = dq_u32(b + 2);
		for (int k = 0; k < 8; k++) {
			int q = dq_nib(b + 6, o + k) | (int)((h >> (o + k)) & 1) << 4;
			v[k] = smk_mul(d, (float)(q - 16));
		}
	}
};

/* Q5_1 (24 bytes): d @0, m @2, qh @4, qs @8.  y = d * q + m. */
template <> struct dq<QTYPE_Q5_1> {
	enum { block_elems = 32, block_bytes = 24 };
	__host__ __device__ static inline void get8(const uint8_t *row, int64_t e0, int64_t ne0,
						    float v[8])
	{
		(void)ne0;
		const uint8_t *b = row + (e0 / 32) * block_bytes;
		const int o = (int)(e0 % 32);
		const float d = dq_f16(b), m = dq_f16(b + 2);
		const uint32_t h = dq_u32(b + 4);
		for (int k = 0; k < 8; k++) {
			int q = dq_nib(b + 8, o + k) | (int)((h >> (o + k)) & 1) << 4;
			v[k] = smk_add(smk_mul(d, (float)q), m);
		}
	}
};

/* Q8_0 (34 bytes): d @0, int8 qs[32] @2.  y = q * d. */
template <> struct dq<QTYPE_Q8_0> {
	enum { block_elems = 32, block_bytes = 34 };
	__host__ __device__ static inline void get8(const uint8_t *row, int64_t e0, int64_t ne0,
						    float v[8])
	{
		(void)ne0;
		const uint8_t *b = row + (e0 / 32) * block_bytes;
		const int o = (int)(e0 % 32);
		const float d = dq_f16(b);
		for (int k = 0; k < 8; k++)
			v[k] = smk_mul((float)(int8_t)b[2 + o + k], d);
	}
};

/* ---- MXFP4 ---------------------------------------------------------------- */

/* The doubled E2M1 value of a 4-bit MXFP4 code (quant/qtype.h's
 * qtype_mxfp4_values, a host table): the magnitudes 0, 1, 2, 3, 4, 6, 8,
 * 12 of codes 0..7 packed as the nibbles of one word, bit 3 the sign (code
 * 8, -0, gives 0). */
__host__ __device__ static inline int dq_mxfp4_value(int code)
{
	const int m = (int)((0xC8643210u >> (4 * (code & 7))) & 15);
	return code & 8 ? -m : m;
}

/* qtype_e8m0_half (quant/qtype.h), for the device: 2^(e-128) from its
 * bits, subnormal for e = 0, 1 (nvcc keeps subnormals: no -ftz here). */
__host__ __device__ static inline float dq_e8m0_half(uint8_t e)
{
	const uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
#ifdef __CUDA_ARCH__
	return __uint_as_float(bits);
#else
	float f;
	memcpy(&f, &bits, sizeof(f));
	return f;
#endif
}

/* MXFP4 (17 bytes): e (E8M0 exponent) @0, qs[16] @1, nibbles as in Q4_0.
 * y = v[q] * 2^(e-128), v the doubled E2M1 value. */
template <> struct dq<QTYPE_MXFP4> {
	enum { block_elems = 32, block_bytes = 17 };
	__host__ __device__ static inline void get8(const uint8_t *row, int64_t e0, int64_t ne0,
						    float v[8])
	{
		(void)ne0;
		const uint8_t *b = row + (e0 / 32) * block_bytes;
		const int o = (int)(e0 % 32);
		const float d = dq_e8m0_half(b[0]);
		for (int k = 0; k < 8; k++)
			v[k] = smk_mul((float)dq_mxfp4_value(dq_nib(b + 1, o + k)), d);
	}
};

/* ---- K-quants: 256-value super-blocks --------------------------------------- */

/* Q2_K (84 bytes): scales[16] @0 (low nibble scale, high nibble min per 16
 * values), qs[64] @16, d @80, dmin @82.  Value e: half h = e/128, shift
 * 2*((e%128)/32), byte qs[32h + e%32].  y = (d*sc)*q - (dmin*m). */
template <> struct dq<QTYPE_Q2_K> {
	enum { block_elems = 256, block_bytes = 84 };
	__host__ __device__ static inline void get8(const uint8_t *row, int64_t e0, int64_t ne0,
						    float v[8])
	{
		(void)ne0;
		const uint8_t *b = row + (e0 / 256) * block_bytes;
		const int e = (int)(e0 % 256);
		const float d = dq_f16(b + 80), dmin = dq_f16(b + 82);
		const int sc = b[e / 16];
		const float dl = smk_mul(d, (float)(sc & 15)), ml = smk_mul(dmin, (float)(sc >> 4));
		const uint8_t *q = b + 16 + 32 * (e / 128);
		const int shift = 2 * ((e % 128) / 32);
		for (int k = 0; k < 8; k++) {
			int qv = (q[(e + k) % 32] >> shift) & 3;
			v[k] = smk_sub(smk_mul(dl, (float)qv), ml);
		}
	}
};

/* Q3_K (110 bytes): hmask[32] @0, qs[64] @32, scales[12] @96, d @108.
 * Value e: low 2 bits as Q2_K; top bit at bit 4*(e/128) + (e%128)/32 of
 * hmask[e%32], a clear bit subtracting 4.  y = (d * s_g) * q. */
template <> struct dq<QTYPE_Q3_K> {
	enum { block_elems = 256, block_bytes = 110 };
	__host__ __device__ static inline void get8(const uint8_t *row, int64_t e0, int64_t ne0,
						    float v[8])
	{
		(void)ne0;
		const uint8_t *b = row + (e0 / 256) * block_bytes;
		const int e = (int)(e0 % 256);
		const float d = dq_f16(b + 108);
		const float dl = smk_mul(d, (float)dq_k3_scale(b + 96, e / 16));
		const uint8_t *q = b + 32 + 32 * (e / 128);
		const int s = (e % 128) / 32;
		const int m = 1 << (4 * (e / 128) + s);
		for (int k = 0; k < 8; k++) {
			const int l = (e + k) % 32;
			int qv = (q[l] >> (2 * s)) & 3;
			qv -= (b[l] & m) ? 0 : 4;
			v[k] = smk_mul(dl, (float)qv);
		}
	}
};

/* Q4_K (144 bytes): d @0, dmin @2, scales[12] @4, qs[128] @16.  Value e:
 * chunk c = e/64; the low nibble of qs[32c + e%32] for e%64 < 32 (sub-block
 * 2c), the high nibble otherwise (sub-block 2c+1).  y = (d*sc)*q - (dmin*m). */
template <> struct dq<QTYPE_Q4_K> {
	enum { block_elems = 256, block_bytes = 144 };
	__host__ __device__ static inline void get8(const uint8_t *row, int64_t e0, int64_t ne0,
						    float v[8])
	{
		(void)ne0;
		const uint8_t *b = row + (e0 / 256) * block_bytes;
		const int e = (int)(e0 % 256);
		const int j = e / 32, hi = j & 1;
		int sc, m;
		dq_k4_scale_min(b + 4, j, &sc, &m);
		const float dl = smk_mul(dq_f16(b), (float)sc), ml = smk_mul(dq_f16(b + 2), (float)m);
		const uint8_t *q = b + 16 + 32 * (e / 64);
		for (int k = 0; k < 8; k++) {
			const int l = (e + k) % 32;
			const int qv = hi ? q[l] >> 4 : q[l] & 15;
			v[k] = smk_sub(smk_mul(dl, (float)qv), ml);
		}
	}
};

/* Q5_K (176 bytes): d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48.
 * As Q4_K, plus 16 where bit j (the sub-block) of qh[e%32] is set. */
template <> struct dq<QTYPE_Q5_K> {
	enum { block_elems = 256, block_bytes = 176 };
	__host__ __device__ static inline void get8(const uint8_t *row, int64_t e0, int64_t ne0,
						    float v[8])
	{
		(void)ne0;
		const uint8_t *b = row + (e0 / 256) * block_bytes;
		const int e = (int)(e0 % 256);
		const int j = e / 32, hi = j & 1;
		int sc, m;
		dq_k4_scale_min(b + 4, j, &sc, &m);
		const float dl = smk_mul(dq_f16(b), (float)sc), ml = smk_mul(dq_f16(b + 2), (float)m);
		const uint8_t *qh = b + 16, *q = b + 48 + 32 * (e / 64);
		for (int k = 0; k < 8; k++) {
			const int l = (e + k) % 32;
			int qv = hi ? q[l] >> 4 : q[l] & 15;
			qv += (qh[l] >> j) & 1 ? 16 : 0;
			v[k] = smk_sub(smk_mul(dl, (float)qv), ml);
		}
	}
};

/* Q6_K (210 bytes): ql[128] @0, qh[64] @128, int8 scales[16] @192, d @208.
 * Value e: half h = e/128 (ql + 64h, qh + 32h, scales + 8h), quarter
 * r = (e%128)/32, l = e%32: low 4 bits from ql[l + 32*(r&1)] (low nibble
 * for r < 2, high for r >= 2), top 2 bits at bits 2r of qh[l], scale
 * scales[l/16 + 2r].  y = (d * sc) * (q - 32). */
template <> struct dq<QTYPE_Q6_K> {
	enum { block_elems = 256, block_bytes = 210 };
	__host__ __device__ static inline void get8(const uint8_t *row, int64_t e0, int64_t ne0,
						    float v[8])
	{
		(void)ne0;
		const uint8_t *b = row + (e0 / 256) * block_bytes;
		const int e = (int)(e0 % 256);
		const int h = e / 128, r = (e % 128) / 32;
		const uint8_t *ql = b + 64 * h + 32 * (r & 1), *qh = b + 128 + 32 * h;
		const int8_t *sc = (const int8_t *)(b + 192 + 8 * h);
		const float d = dq_f16(b + 208);
		for (int k = 0; k < 8; k++) {
			const int l = (e + k) % 32;
			const int lo = r < 2 ? ql[l] & 15 : ql[l] >> 4;
			const int q = (lo | ((qh[l] >> (2 * r)) & 3) << 4) - 32;
			v[k] = smk_mul(smk_mul(d, (float)sc[l / 16 + 2 * r]), (float)q);
		}
	}
};

/* The cases of the quantised weight types, for the dispatch switches. */
#define DQ_QUANT_CASES(CALL)                                      \
	case QTYPE_Q4_0: CALL(QTYPE_Q4_0); break;                 \
	case QTYPE_Q4_1: CALL(QTYPE_Q4_1); break;                 \
	case QTYPE_Q5_0: CALL(QTYPE_Q5_0); break;                 \
	case QTYPE_Q5_1: CALL(QTYPE_Q5_1); break;                 \
	case QTYPE_Q8_0: CALL(QTYPE_Q8_0); break;                 \
	case QTYPE_MXFP4: CALL(QTYPE_MXFP4); break;               \
	case QTYPE_Q2_K: CALL(QTYPE_Q2_K); break;                 \
	case QTYPE_Q3_K: CALL(QTYPE_Q3_K); break;                 \
	case QTYPE_Q4_K: CALL(QTYPE_Q4_K); break;                 \
	case QTYPE_Q5_K: CALL(QTYPE_Q5_K); break;                 \
	case QTYPE_Q6_K: CALL(QTYPE_Q6_K); break;

/* Expands CALL(T) for the weight type `type` with T its constant (types
 * without a decoder match no case; callers check cuda_can_compute first).
 * The one switch over types that every kernel family shares. */
#define DQ_DISPATCH(type, CALL)                                   \
	switch (type) {                                           \
	case QTYPE_F32: CALL(QTYPE_F32); break;                   \
	case QTYPE_F16: CALL(QTYPE_F16); break;                   \
	case QTYPE_BF16: CALL(QTYPE_BF16); break;                 \
	DQ_QUANT_CASES(CALL)                                      \
	default: break;                                           \
	}

#endif
