/* qtype.c - ggml tensor element types: sizes, names and scalar row decoders.
 *
 * Each decoder below documents the bit layout of its block.  All decoders
 * are written to give bit-identical floats to ggml's dequantize_row_* and to
 * the gguf Python package (the fixtures in tests/fixtures/qtype check that):
 * every value is computed with the same float operations in the same order,
 * e.g. Q4_K's y = (d*sc)*q - (dmin*m) as two roundings, never an FMA.
 *
 * The pragma below keeps the compiler from fusing a*b - c into one FMA when
 * the project is built with -march=native: a fused result differs from
 * ggml's in the last bit, which would break the bit-exact comparison and
 * make our tables depend on the build flags.
 */
#pragma GCC optimize("fp-contract=off")

#include "quant/qtype.h"

#include <string.h>

#include "util/ckmath.h"
#include "util/fp16.h"

/* ---- plain floats ------------------------------------------------------- */

/* F32: little-endian IEEE binary32, 4 bytes per value. */
static void dequant_f32(const void *src, float *dst, int64_t n)
{
	memcpy(dst, src, (size_t)n * sizeof(float));
}

/* F16: IEEE binary16, 2 bytes per value (sign, 5-bit exponent, 10-bit
 * mantissa); every half is exactly representable as a float. */
static void dequant_f16(const void *src, float *dst, int64_t n)
{
	const uint8_t *p = src;
	for (int64_t i = 0; i < n; i++) {
		uint16_t h;
		memcpy(&h, p + 2 * i, 2);
		dst[i] = fp16_to_fp32(h);
	}
}

/* BF16: the upper 16 bits of a binary32 (sign, 8-bit exponent, 7-bit
 * mantissa); decoding is a shift. */
static void dequant_bf16(const void *src, float *dst, int64_t n)
{
	const uint8_t *p = src;
	for (int64_t i = 0; i < n; i++) {
		uint16_t h;
		memcpy(&h, p + 2 * i, 2);
		dst[i] = bf16_to_fp32(h);
	}
}

/* ---- 32-value blocks ---------------------------------------------------- */

/* Q4_0, 18 bytes per 32 values:
 *   [0..1]  d      fp16 scale
 *   [2..17] qs[16] 4-bit quants: byte j holds value j in its low nibble and
 *                  value j+16 in its high nibble.
 *   y = d * (q - 8), q in 0..15. */
static void dequant_q4_0(const void *src, float *dst, int64_t n)
{
	const struct qtype_block_q4_0 *b = src;
	for (int64_t i = 0; i < n / QTYPE_QK; i++, b++, dst += QTYPE_QK) {
		const float d = fp16_to_fp32(b->d);
		for (int j = 0; j < 16; j++) {
			dst[j] = d * (float)((b->qs[j] & 15) - 8);
			dst[j + 16] = d * (float)((b->qs[j] >> 4) - 8);
		}
	}
}

/* Q4_1, 20 bytes per 32 values:
 *   [0..1] d fp16 scale, [2..3] m fp16 minimum, [4..19] qs[16] as in Q4_0.
 *   y = d * q + m, q in 0..15. */
static void dequant_q4_1(const void *src, float *dst, int64_t n)
{
	const struct qtype_block_q4_1 *b = src;
	for (int64_t i = 0; i < n / QTYPE_QK; i++, b++, dst += QTYPE_QK) {
		const float d = fp16_to_fp32(b->d), m = fp16_to_fp32(b->m);
		for (int j = 0; j < 16; j++) {
			dst[j] = d * (float)(b->qs[j] & 15) + m;
			dst[j + 16] = d * (float)(b->qs[j] >> 4) + m;
		}
	}
}

/* Q5_0, 22 bytes per 32 values:
 *   [0..1]   d      fp16 scale
 *   [2..5]   qh[4]  read as a little-endian u32 h: bit j is the 5th (top)
 *                   bit of value j
 *   [6..21]  qs[16] low 4 bits, nibble order as in Q4_0
 *   y = d * (q - 16), q = low | top << 4 in 0..31. */
static void dequant_q5_0(const void *src, float *dst, int64_t n)
{
	const struct qtype_block_q5_0 *b = src;
	for (int64_t i = 0; i < n / QTYPE_QK; i++, b++, dst += QTYPE_QK) {
		const float d = fp16_to_fp32(b->d);
		uint32_t h;
		memcpy(&h, b->qh, 4);
		for (int j = 0; j < 16; j++) {
			int q0 = (b->qs[j] & 15) | (int)((h >> j) & 1) << 4;
			int q1 = (b->qs[j] >> 4) | (int)((h >> (j + 16)) & 1) << 4;
			dst[j] = d * (float)(q0 - 16);
			dst[j + 16] = d * (float)(q1 - 16);
		}
	}
}

/* Q5_1, 24 bytes per 32 values: [0..1] d, [2..3] m (fp16), [4..7] qh,
 * [8..23] qs, bits as in Q5_0.  y = d * q + m, q in 0..31. */
static void dequant_q5_1(const void *src, float *dst, int64_t n)
{
	const struct qtype_block_q5_1 *b = src;
	for (int64_t i = 0; i < n / QTYPE_QK; i++, b++, dst += QTYPE_QK) {
		const float d = fp16_to_fp32(b->d), m = fp16_to_fp32(b->m);
		uint32_t h;
		memcpy(&h, b->qh, 4);
		for (int j = 0; j < 16; j++) {
			int q0 = (b->qs[j] & 15) | (int)((h >> j) & 1) << 4;
			int q1 = (b->qs[j] >> 4) | (int)((h >> (j + 16)) & 1) << 4;
			dst[j] = d * (float)q0 + m;
			dst[j + 16] = d * (float)q1 + m;
		}
	}
}

/* Q8_0, 34 bytes per 32 values: [0..1] d fp16, [2..33] qs[32] int8.
 * y = d * q.  (This is also the activation format of the 32-wide dots.) */
static void dequant_q8_0(const void *src, float *dst, int64_t n)
{
	const struct qtype_block_q8_0 *b = src;
	for (int64_t i = 0; i < n / QTYPE_QK; i++, b++, dst += QTYPE_QK) {
		const float d = fp16_to_fp32(b->d);
		for (int j = 0; j < 32; j++)
			dst[j] = (float)b->qs[j] * d;
	}
}

/* MXFP4 (OCP Microscaling FP4, as ggml stores it), 17 bytes per 32 values:
 *   [0]     e      E8M0 block exponent: the unsigned byte e stands for the
 *                  power of two 2^(e-127) (no sign, no mantissa)
 *   [1..16] qs[16] 4-bit E2M1 codes, split as in Q4_0: byte j holds value
 *                  j in its low nibble and value j+16 in its high nibble
 *                  (the OpenAI checkpoints interleave them, 2j and 2j+1;
 *                  ggml's converter reorders them to this split).
 *   A code's E2M1 value is +-{0, 0.5, 1, 1.5, 2, 3, 4, 6} (bit 3 the sign).
 *   ggml keeps those doubled as integers (qtype_mxfp4_values) and halves
 *   the scale: y = v[q] * 2^(e-128), as float v[q] times
 *   qtype_e8m0_half(e).  The product is exact (a power of two times a
 *   small integer) except where it leaves the float range: e >= 253 with
 *   the larger codes gives +-inf, as in ggml; e = 255 is not NaN here. */
const int8_t qtype_mxfp4_values[16] = {
	0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12,
};

static void dequant_mxfp4(const void *src, float *dst, int64_t n)
{
	const struct qtype_block_mxfp4 *b = src;
	for (int64_t i = 0; i < n / QTYPE_QK; i++, b++, dst += QTYPE_QK) {
		const float d = qtype_e8m0_half(b->e);
		for (int j = 0; j < 16; j++) {
			dst[j] = (float)qtype_mxfp4_values[b->qs[j] & 15] * d;
			dst[j + 16] = (float)qtype_mxfp4_values[b->qs[j] >> 4] * d;
		}
	}
}

/* ---- K-quants: 256-value super-blocks ----------------------------------- */

/* Q2_K, 84 bytes per 256 values:
 *   [0..15]  scales[16] one byte per 16-value group g: low nibble = scale,
 *                       high nibble = min (both 4-bit, unsigned)
 *   [16..79] qs[64]     2-bit quants.  Two halves of 128 values, each using
 *                       32 bytes; in half h, byte l (0..31) holds at bits
 *                       2s..2s+1 the value 128h + 32s + l  (s = 0..3).
 *   [80..81] d fp16, [82..83] dmin fp16
 *   y = (d * sc_g) * q - (dmin * m_g), g = value index / 16. */
static void dequant_q2_K(const void *src, float *dst, int64_t n)
{
	const struct qtype_block_q2_K *b = src;
	for (int64_t i = 0; i < n / QTYPE_QK_K; i++, b++) {
		const float d = fp16_to_fp32(b->d), dmin = fp16_to_fp32(b->dmin);
		const uint8_t *q = b->qs;
		int g = 0;
		for (int half = 0; half < 2; half++, q += 32) {
			for (int shift = 0; shift < 8; shift += 2) {
				for (int k = 0; k < 2; k++, g++) {
					const float dl = d * (float)(b->scales[g] & 15);
					const float ml = dmin * (float)(b->scales[g] >> 4);
					for (int l = 0; l < 16; l++) {
						int v = (q[16 * k + l] >> shift) & 3;
						*dst++ = dl * (float)v - ml;
					}
				}
			}
		}
	}
}

/* Q3_K, 110 bytes per 256 values:
 *   [0..31]   hmask[32]  the 3rd (top) bit of each value: value 32s + l has
 *                        it at bit s of hmask[l] (s = 0..7, l = 0..31).  A
 *                        SET bit means "no offset"; a clear one subtracts 4.
 *   [32..95]  qs[64]     low 2 bits, same arrangement as Q2_K.
 *   [96..107] scales[12] sixteen 6-bit scales stored with an offset of 32:
 *                        scale j's low 4 bits are the low (j<8) or high (j>=8)
 *                        nibble of byte j%8; its top 2 bits are bits
 *                        2*(j/4)..+1 of byte 8 + j%4.
 *   [108..109] d fp16
 *   y = (d * (s_g - 32)) * (low2 - (top ? 0 : 4)), g = index / 16. */
static void dequant_q3_K(const void *src, float *dst, int64_t n)
{
	const struct qtype_block_q3_K *b = src;
	for (int64_t i = 0; i < n / QTYPE_QK_K; i++, b++) {
		const float d = fp16_to_fp32(b->d);
		int8_t sc[16];
		qtype_k3_scales(b->scales, sc);
		const uint8_t *q = b->qs;
		uint8_t m = 1;
		int g = 0;
		for (int half = 0; half < 2; half++, q += 32) {
			for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
				for (int k = 0; k < 2; k++, g++) {
					const float dl = d * (float)sc[g];
					for (int l = 16 * k; l < 16 * k + 16; l++) {
						int v = (q[l] >> shift) & 3;
						v -= (b->hmask[l] & m) ? 0 : 4;
						*dst++ = dl * (float)v;
					}
				}
			}
		}
	}
}

/* Q4_K, 144 bytes per 256 values:
 *   [0..1]    d fp16     super-scale of the sub-block scales
 *   [2..3]    dmin fp16  super-scale of the sub-block mins
 *   [4..15]   scales[12] eight 6-bit (sc, m) pairs, one per 32 values
 *                        (qtype_k4_scale_min): for j<4, sc = q[j]&63 and
 *                        m = q[j+4]&63; for j>=4, the low 4 bits come from
 *                        q[j+4] (sc: low nibble, m: high nibble) and the top
 *                        2 bits from bits 6..7 of q[j-4] (sc) and q[j] (m).
 *   [16..143] qs[128]    4-bit quants in four chunks of 32 bytes; chunk c,
 *                        byte l holds value 64c+l (low nibble, sub-block 2c)
 *                        and value 64c+32+l (high nibble, sub-block 2c+1).
 *   y = (d * sc_j) * q - (dmin * m_j), q in 0..15. */
static void dequant_q4_K(const void *src, float *dst, int64_t n)
{
	const struct qtype_block_q4_K *b = src;
	for (int64_t i = 0; i < n / QTYPE_QK_K; i++, b++) {
		const float d = fp16_to_fp32(b->d), dmin = fp16_to_fp32(b->dmin);
		const uint8_t *q = b->qs;
		for (int c = 0; c < 4; c++, q += 32) {
			uint8_t sc0, m0, sc1, m1;
			qtype_k4_scale_min(b->scales, 2 * c, &sc0, &m0);
			qtype_k4_scale_min(b->scales, 2 * c + 1, &sc1, &m1);
			const float d0 = d * (float)sc0, mm0 = dmin * (float)m0;
			const float d1 = d * (float)sc1, mm1 = dmin * (float)m1;
			for (int l = 0; l < 32; l++)
				*dst++ = d0 * (float)(q[l] & 15) - mm0;
			for (int l = 0; l < 32; l++)
				*dst++ = d1 * (float)(q[l] >> 4) - mm1;
		}
	}
}

/* Q5_K, 176 bytes per 256 values:
 *   [0..1] d, [2..3] dmin (fp16), [4..15] scales[12] exactly as in Q4_K,
 *   [16..47]  qh[32]  the 5th bit of each value: value 32s + l has it at bit
 *                     s of qh[l] (s = sub-block 0..7, l = 0..31)
 *   [48..175] qs[128] low 4 bits, arranged as in Q4_K
 *   y = (d * sc_j) * q - (dmin * m_j), q = low | top << 4 in 0..31. */
static void dequant_q5_K(const void *src, float *dst, int64_t n)
{
	const struct qtype_block_q5_K *b = src;
	for (int64_t i = 0; i < n / QTYPE_QK_K; i++, b++) {
		const float d = fp16_to_fp32(b->d), dmin = fp16_to_fp32(b->dmin);
		const uint8_t *q = b->qs;
		for (int c = 0; c < 4; c++, q += 32) {
			uint8_t sc0, m0, sc1, m1;
			qtype_k4_scale_min(b->scales, 2 * c, &sc0, &m0);
			qtype_k4_scale_min(b->scales, 2 * c + 1, &sc1, &m1);
			const float d0 = d * (float)sc0, mm0 = dmin * (float)m0;
			const float d1 = d * (float)sc1, mm1 = dmin * (float)m1;
			const uint8_t u0 = (uint8_t)(1u << (2 * c));
			const uint8_t u1 = (uint8_t)(2u << (2 * c));
			for (int l = 0; l < 32; l++) {
				int v = (q[l] & 15) + ((b->qh[l] & u0) ? 16 : 0);
				*dst++ = d0 * (float)v - mm0;
			}
			for (int l = 0; l < 32; l++) {
				int v = (q[l] >> 4) + ((b->qh[l] & u1) ? 16 : 0);
				*dst++ = d1 * (float)v - mm1;
			}
		}
	}
}

/* Q6_K, 210 bytes per 256 values:
 *   [0..127]   ql[128]    low 4 bits
 *   [128..191] qh[64]     top 2 bits
 *   [192..207] scales[16] int8 scale per 16 values
 *   [208..209] d fp16 (last, unlike the other K-quants)
 *   Two halves h = 0,1 of 128 values use ql + 64h, qh + 32h, scales + 8h.
 *   Within a half, for l = 0..31 (is = l/16):
 *     y[l]    = d*sc[is+0] * ((ql[l]    & 15 | (qh[l]>>0 & 3) << 4) - 32)
 *     y[l+32] = d*sc[is+2] * ((ql[l+32] & 15 | (qh[l]>>2 & 3) << 4) - 32)
 *     y[l+64] = d*sc[is+4] * ((ql[l]    >> 4 | (qh[l]>>4 & 3) << 4) - 32)
 *     y[l+96] = d*sc[is+6] * ((ql[l+32] >> 4 | (qh[l]>>6 & 3) << 4) - 32)
 *   i.e. value index / 16 selects the scale. */
static void dequant_q6_K(const void *src, float *dst, int64_t n)
{
	const struct qtype_block_q6_K *b = src;
	for (int64_t i = 0; i < n / QTYPE_QK_K; i++, b++) {
		const float d = fp16_to_fp32(b->d);
		for (int h = 0; h < 2; h++) {
			const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
			const int8_t *sc = b->scales + 8 * h;
			float *y = dst + 128 * h;
			for (int l = 0; l < 32; l++) {
				int is = l / 16;
				int q1 = ((ql[l] & 15) | ((qh[l] >> 0) & 3) << 4) - 32;
				int q2 = ((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4) - 32;
				int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
				int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
				y[l] = d * (float)sc[is + 0] * (float)q1;
				y[l + 32] = d * (float)sc[is + 2] * (float)q2;
				y[l + 64] = d * (float)sc[is + 4] * (float)q3;
				y[l + 96] = d * (float)sc[is + 6] * (float)q4;
			}
		}
		dst += QTYPE_QK_K;
	}
}

/* ---- the table ---------------------------------------------------------- */

/* Indexed by ggml type id.  Q8_1 and Q8_K are activation formats: sized so a
 * file holding them can be opened, but not decoded (no model ships them and
 * no dot product takes them as weights). */
static const struct qtype_info qtype_table[QTYPE_COUNT] = {
	[QTYPE_F32] = { "F32", 1, 4, dequant_f32 },
	[QTYPE_F16] = { "F16", 1, 2, dequant_f16 },
	[QTYPE_Q4_0] = { "Q4_0", 32, 18, dequant_q4_0 },
	[QTYPE_Q4_1] = { "Q4_1", 32, 20, dequant_q4_1 },
	[QTYPE_Q5_0] = { "Q5_0", 32, 22, dequant_q5_0 },
	[QTYPE_Q5_1] = { "Q5_1", 32, 24, dequant_q5_1 },
	[QTYPE_Q8_0] = { "Q8_0", 32, 34, dequant_q8_0 },
	[QTYPE_Q8_1] = { "Q8_1", 32, 36, NULL },
	[QTYPE_Q2_K] = { "Q2_K", 256, 84, dequant_q2_K },
	[QTYPE_Q3_K] = { "Q3_K", 256, 110, dequant_q3_K },
	[QTYPE_Q4_K] = { "Q4_K", 256, 144, dequant_q4_K },
	[QTYPE_Q5_K] = { "Q5_K", 256, 176, dequant_q5_K },
	[QTYPE_Q6_K] = { "Q6_K", 256, 210, dequant_q6_K },
	[QTYPE_Q8_K] = { "Q8_K", 256, 292, NULL },
	[QTYPE_BF16] = { "BF16", 1, 2, dequant_bf16 },
	[QTYPE_MXFP4] = { "MXFP4", 32, 17, dequant_mxfp4 },
};

const struct qtype_info *qtype_info(uint32_t id)
{
	if (id >= QTYPE_COUNT || !qtype_table[id].name)
		return NULL;
	return &qtype_table[id];
}

const char *qtype_name(uint32_t id)
{
	const struct qtype_info *t = qtype_info(id);
	return t ? t->name : "unknown";
}

int qtype_row_bytes(uint32_t id, uint64_t n, uint64_t *out, struct smk_err *err)
{
	const struct qtype_info *t = qtype_info(id);
	if (!t)
		return smk_fail(err, -EINVAL, "unknown tensor type id %u", id);
	if (n % t->block_elems)
		return smk_fail(err, -EINVAL,
				"row of %llu values is not a multiple of the %s block (%u)",
				(unsigned long long)n, t->name, t->block_elems);
	if (ck_mul(n / t->block_elems, t->block_bytes, out))
		return smk_fail(err, -EINVAL, "row of %llu %s values overflows its byte size",
				(unsigned long long)n, t->name);
	return 0;
}

bool qtype_can_compute(uint32_t id)
{
	const struct qtype_info *t = qtype_info(id);
	return t && t->dequant_row;
}

int qtype_dequant_row(uint32_t id, const void *src, float *dst, int64_t n)
{
	const struct qtype_info *t = qtype_info(id);
	if (!t || !t->dequant_row || n < 0 || n % t->block_elems)
		return -EINVAL;
	t->dequant_row(src, dst, n);
	return 0;
}
