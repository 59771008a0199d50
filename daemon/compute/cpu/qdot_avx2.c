/* qdot_avx2.c - AVX2+FMA+F16C dot products (weight row . prepared act).
 *
 * The project is not compiled with -mavx2: every function here carries a
 * target attribute and is reached only through qdot_get(), after the CPU
 * check.  Each kernel computes the same integer block sums as its scalar
 * reference in qdot_scalar.c (exactly: the int8/int16 intermediates below
 * are shown not to saturate), then scales and sums them in eight float
 * lanes with FMA.  So the results differ from the scalar ones only by float
 * summation order, which is what the tests' tolerance allows for.
 *
 * Techniques are ggml's (ggml-cpu/arch/x86/quants.c): signed x signed int8
 * products via _mm256_sign_epi8 + _mm256_maddubs_epi16, nibbles unpacked to
 * bytes with one shift and mask, K-quant sub-block scales applied with
 * _mm256_madd_epi16 and the K-quant min terms taken from the activation's
 * bsums.  Loads are all unaligned (blocks are byte-strided).
 *
 * Summation order is ggml's, not merely close to it (see qdot.h): one
 * float accumulator per kernel, updated block by block with FMA.  A second
 * accumulator would hide the FMA latency but round differently; the
 * matmul's independent rows give the out-of-order core the same overlap.
 */
#include "compute/cpu/qdot_avx2.h"

#ifdef CPU_HAVE_AVX2_CODE

#include <string.h>

/* ---- helpers ------------------------------------------------------------ */

/* Eight int32 sums of four signed-int8 products each, as floats.
 * sign(x,x) = |x| is unsigned for maddubs; sign(y,x) moves x's sign onto y.
 * A pair sum is at most 2*128*127 = 32512 (|x| = 128 only for a Q8_0 weight
 * of -128; activations are within +-127), so maddubs does not saturate. */
QDOT_AVX2 static inline __m256 mul_sum_i8_pairs_float(__m256i x, __m256i y)
{
	const __m256i ax = _mm256_sign_epi8(x, x);
	const __m256i sy = _mm256_sign_epi8(y, x);
	const __m256i dot16 = _mm256_maddubs_epi16(ax, sy);
	const __m256i dot32 = _mm256_madd_epi16(dot16, _mm256_set1_epi16(1));
	return _mm256_cvtepi32_ps(dot32);
}

/* 16 bytes of nibbles -> 32 bytes: low nibbles first (values 0..15), then
 * high nibbles (values 16..31), matching the Q4_0/Q5_0 value order.  The
 * 16 bytes are loaded into both halves (a load, no shuffle) and the high
 * half shifted by a nibble: one shuffle-port op fewer than shifting a copy
 * and inserting it (one core, rows in L2: Q4_0 8.1 -> 9.0 GB/s, Q5_0 8.3
 * -> 8.8). */
QDOT_AVX2 static inline __m256i bytes_from_nibbles_32(const uint8_t *p)
{
	const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
	const __m256i b = _mm256_srlv_epi64(t, _mm256_set_epi64x(4, 4, 0, 0));
	return _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
}

/* 32 bits -> 32 bytes, 0xff where the bit is set. */
QDOT_AVX2 static inline __m256i bytes_from_bits_32(const uint8_t *p)
{
	uint32_t x32;
	memcpy(&x32, p, 4);
	const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
					       0x0101010101010101, 0x0000000000000000);
	__m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x32), shuf);
	bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
	return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

/* Eight fp16 fields `stride` bytes apart (a block's d, the first field of
 * the 32-value formats), as floats: packed in general registers, moved
 * over with one vmovq per four.  For the batched kernels, which convert a
 * chunk's scales once for several activation rows; a single row's kernel
 * converts each block's two scales as it goes (Q8_0 in L2, one core:
 * 18.6 -> 20.2 GB/s against this plus a store and reload per chunk). */
QDOT_AVX2 static inline __m256 halves8(const uint8_t *p, size_t stride)
{
	uint64_t h[2] = { 0, 0 };
	for (int k = 0; k < 8; k++) {
		uint16_t v;
		memcpy(&v, p + k * stride, 2);
		h[k / 4] |= (uint64_t)v << (16 * (k % 4));
	}
	return _mm256_cvtph_ps(_mm_set_epi64x((long long)h[1], (long long)h[0]));
}

/* ---- 32-value blocks (activation: Q8_0, or Q8_1 for Q4_1/Q5_1) ---------- */

QDOT_AVX2 static float avx2_dot_q8_0(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q8_0 *x = w;
	const struct qtype_block_q8_0 *y = act;
	const int64_t nb = n / QTYPE_QK;
	__m256 acc = _mm256_setzero_ps();
	/* block by block, ggml's loop: d_w * d_a rounded once per block */
	for (int64_t i = 0; i < nb; i++) {
		if (i % 8 == 0)
			prefetch_ahead(&x[i], 8 * sizeof(x[0]));
		const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
		acc = _mm256_fmadd_ps(d, mul_sum_i8_pairs_float(load256(x[i].qs), load256(y[i].qs)), acc);
	}
	return cpu_hsum8(acc);
}

/* Q4_0 quants as signed bytes: nibble - 8 in -8..7. */
QDOT_AVX2 static inline __m256i q4_0_bytes(const struct qtype_block_q4_0 *b)
{
	return _mm256_sub_epi8(bytes_from_nibbles_32(b->qs), _mm256_set1_epi8(8));
}

QDOT_AVX2 static float avx2_dot_q4_0(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q4_0 *x = w;
	const struct qtype_block_q8_0 *y = act;
	const int64_t nb = n / QTYPE_QK;
	__m256 acc = _mm256_setzero_ps();
	for (int64_t i = 0; i < nb; i++) {
		if (i % 8 == 0)
			prefetch_ahead(&x[i], 8 * sizeof(x[0]));
		const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
		acc = _mm256_fmadd_ps(d, mul_sum_i8_pairs_float(q4_0_bytes(&x[i]), load256(y[i].qs)), acc);
	}
	return cpu_hsum8(acc);
}

/* Q5_0 quants as signed bytes: (nibble | top<<4) - 16.  OR-ing 0xf0 into a
 * nibble whose top bit is clear gives nibble - 16 as a signed byte; with the
 * top bit set, nibble + 16 - 16 = nibble. */
QDOT_AVX2 static inline __m256i q5_0_bytes(const struct qtype_block_q5_0 *b)
{
	const __m256i lo = bytes_from_nibbles_32(b->qs);
	const __m256i hi = _mm256_andnot_si256(bytes_from_bits_32(b->qh), _mm256_set1_epi8((char)0xf0));
	return _mm256_or_si256(lo, hi);
}

QDOT_AVX2 static float avx2_dot_q5_0(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q5_0 *x = w;
	const struct qtype_block_q8_0 *y = act;
	const int64_t nb = n / QTYPE_QK;
	__m256 acc = _mm256_setzero_ps();
	for (int64_t i = 0; i < nb; i++) {
		if (i % 8 == 0)
			prefetch_ahead(&x[i], 8 * sizeof(x[0]));
		const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
		acc = _mm256_fmadd_ps(d, mul_sum_i8_pairs_float(q5_0_bytes(&x[i]), load256(y[i].qs)), acc);
	}
	return cpu_hsum8(acc);
}

/* Unsigned x signed int8 products (Q4_1/Q5_1 quants are 0..31, so at most
 * 2*31*127 = 7874 per pair: no saturation), as eight float sums of four. */
QDOT_AVX2 static inline __m256 mul_sum_us8_pairs_float(__m256i ux, __m256i sy)
{
	const __m256i dot16 = _mm256_maddubs_epi16(ux, sy);
	return _mm256_cvtepi32_ps(_mm256_madd_epi16(dot16, _mm256_set1_epi16(1)));
}

/* Q4_1 quants as unsigned bytes 0..15. */
QDOT_AVX2 static inline __m256i q4_1_bytes(const struct qtype_block_q4_1 *b)
{
	return bytes_from_nibbles_32(b->qs);
}

/* Q5_1 quants as unsigned bytes 0..31: the nibble plus 16 where qh's bit is set. */
QDOT_AVX2 static inline __m256i q5_1_bytes(const struct qtype_block_q5_1 *b)
{
	const __m256i hi = _mm256_and_si256(bytes_from_bits_32(b->qh), _mm256_set1_epi8(16));
	return _mm256_or_si256(bytes_from_nibbles_32(b->qs), hi);
}

/* Q4_1 / Q5_1 against Q8_1: d*da*sum(q*a) in the vector lanes, plus the
 * min term m * s (s = the activation block's da*sum(a), see qdot.h) summed
 * as a scalar with a fused multiply-add, as ggml's -mfma build does. */
QDOT_AVX2 static float avx2_dot_q4_1(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q4_1 *x = w;
	const struct qtype_block_q8_1 *y = act;
	const int64_t nb = n / QTYPE_QK;
	__m256 acc = _mm256_setzero_ps();
	float summs = 0.0f;
	for (int64_t i = 0; i < nb; i++) {
		const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
		summs = cpu_fma_ss(h2f(x[i].m), h2f(y[i].s), summs);
		acc = _mm256_fmadd_ps(d, mul_sum_us8_pairs_float(q4_1_bytes(&x[i]), load256(y[i].qs)), acc);
	}
	return cpu_hsum8(acc) + summs;
}

QDOT_AVX2 static float avx2_dot_q5_1(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q5_1 *x = w;
	const struct qtype_block_q8_1 *y = act;
	const int64_t nb = n / QTYPE_QK;
	__m256 acc = _mm256_setzero_ps();
	float summs = 0.0f;
	for (int64_t i = 0; i < nb; i++) {
		const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
		summs = cpu_fma_ss(h2f(x[i].m), h2f(y[i].s), summs);
		acc = _mm256_fmadd_ps(d, mul_sum_us8_pairs_float(q5_1_bytes(&x[i]), load256(y[i].qs)), acc);
	}
	return cpu_hsum8(acc) + summs;
}

/* ---- MXFP4 (activation: Q8_0) ------------------------------------------- */

/* An MXFP4 block's 32 values as signed bytes (the doubled E2M1 values,
 * -12..12): each nibble looks itself up in the 16-byte value table with
 * pshufb; low nibbles (values 0..15) in the low half, high nibbles
 * (16..31) in the high half, the Q8_0 order. */
QDOT_AVX2 static inline __m256i mxfp4_bytes(const struct qtype_block_mxfp4 *b, __m128i table)
{
	const __m128i q = _mm_loadu_si128((const __m128i *)b->qs);
	const __m128i m4 = _mm_set1_epi8(0x0f);
	const __m128i lo = _mm_shuffle_epi8(table, _mm_and_si128(q, m4));
	const __m128i hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(q, 4), m4));
	return _mm256_set_m128i(hi, lo);
}

QDOT_AVX2 static inline __m128i mxfp4_table(void)
{
	return _mm_loadu_si128((const __m128i *)qtype_mxfp4_values);
}

/* The exact integer dot of one block, as ggml's leftover loop takes it
 * (sumi1 + sumi2: the order does not matter for an exact int sum). */
static inline int mxfp4_isum(const struct qtype_block_mxfp4 *x, const struct qtype_block_q8_0 *y)
{
	int isum = 0;
	for (int j = 0; j < 16; j++) {
		isum += qtype_mxfp4_values[x->qs[j] & 15] * y->qs[j];
		isum += qtype_mxfp4_values[x->qs[j] >> 4] * y->qs[j + 16];
	}
	return isum;
}

/* ggml_vec_dot_mxfp4_q8_0's AVX2 path, which differs from the Q4_0 one in
 * its order: blocks go in pairs to two accumulators (even blocks to the
 * first, odd to the second), added lane-wise before hsum_float_8, and an
 * odd last block is added after the reduction as a scalar, sumf += d*isum,
 * which its -mfma build contracts into one FMA.  The int8 products cannot
 * saturate maddubs: |value| <= 12, so a pair is at most 2*12*127. */
QDOT_AVX2 static float avx2_dot_mxfp4(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_mxfp4 *x = w;
	const struct qtype_block_q8_0 *y = act;
	const int64_t nb = n / QTYPE_QK;
	const __m128i table = mxfp4_table();
	__m256 acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps();
	int64_t i = 0;
	for (; i + 1 < nb; i += 2) {
		prefetch_ahead(&x[i], 2 * sizeof(x[0]));
		const __m256 d1 = _mm256_set1_ps(h2f(y[i].d) * qtype_e8m0_half(x[i].e));
		const __m256 d2 = _mm256_set1_ps(h2f(y[i + 1].d) * qtype_e8m0_half(x[i + 1].e));
		const __m256 p1 = mul_sum_i8_pairs_float(mxfp4_bytes(&x[i], table), load256(y[i].qs));
		const __m256 p2 = mul_sum_i8_pairs_float(mxfp4_bytes(&x[i + 1], table), load256(y[i + 1].qs));
		acc1 = _mm256_fmadd_ps(d1, p1, acc1);
		acc2 = _mm256_fmadd_ps(d2, p2, acc2);
	}
	float sum = cpu_hsum8(_mm256_add_ps(acc1, acc2));
	if (i < nb) {
		const float d = h2f(y[i].d) * qtype_e8m0_half(x[i].e);
		sum = cpu_fma_ss(d, (float)mxfp4_isum(&x[i], &y[i]), sum);
	}
	return sum;
}

/* ---- K-quants (activation: Q8_K) ---------------------------------------- */

/* sumi + scales . pairs: a K-quant sub-block's int16 scales applied to
 * maddubs' int16 pair sums, into int32 lanes - madd + add, or (k_add_vnni)
 * AVX-512 VNNI's vpdpwssd, which is the same sum in one instruction.  The
 * K-quant kernels take one or the other as a compile-time constant
 * (k_add_fn): one body for both, and the VNNI one only where qdot.c found
 * VNNI. */
typedef __m256i (*k_add_fn)(__m256i sumi, __m256i scales, __m256i pairs);

QDOT4_INLINE __m256i k_add_madd(__m256i sumi, __m256i scales, __m256i pairs)
{
	return _mm256_add_epi32(sumi, _mm256_madd_epi16(scales, pairs));
}

#define KV_INLINE QDOT_AVX512 __attribute__((always_inline)) static inline
KV_INLINE __m256i k_add_vnni(__m256i sumi, __m256i scales, __m256i pairs)
{
	return _mm256_dpwssd_epi32(sumi, scales, pairs);
}

/* Q4_K: weights 0..15 unsigned (maddubs: at most 2*15*127 = 3810 per pair),
 * times 6-bit scales by madd into int32; the min term is subtracted in
 * float from the bsums dot, as in the scalar kernel.  The low and the high
 * nibbles' sums are two chains, joined once per block (vpdpwssd's latency
 * would otherwise make one chain of eight); the integer total is the
 * same.  With VNNI, rows in L2, one core: 21.5 -> 22.9 GB/s; the 8B-shaped
 * model's 1-thread decode +1.9% (4 alternating pairs, all won). */
QDOT4_INLINE float dot_q4_K(const void *w, const void *act, int64_t n, k_add_fn add)
{
	const struct qtype_block_q4_K *x = w;
	const struct qtype_block_q8_K *y = act;
	const int64_t nb = n / QTYPE_QK_K;
	const __m256i m4 = _mm256_set1_epi8(0x0f);
	__m256 acc = _mm256_setzero_ps();
	__m128 acc_m = _mm_setzero_ps();
	for (int64_t i = 0; i < nb; i++) {
		const float dy = y[i].d;
		const float d = h2f(x[i].d) * dy;
		const float dmin = -h2f(x[i].dmin) * dy;
		const __m256i ms = k4_scales_mins(x[i].scales);
		acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(k4_min_dot(ms, &y[i])), acc_m);
		const __m128i sc128 = _mm256_castsi256_si128(ms);
		const __m256i scales = _mm256_set_m128i(sc128, sc128);
		const uint8_t *q4 = x[i].qs;
		const int8_t *q8 = y[i].qs;
		__m256i sum_l = _mm256_setzero_si256(), sum_h = _mm256_setzero_si256();
		for (int j = 0; j < 4; j++, q4 += 32, q8 += 64) {
			const __m256i bits = load256(q4);
			const __m256i q4l = _mm256_and_si256(bits, m4);
			const __m256i q4h = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
			sum_l = add(sum_l, BCAST16(scales, 2 * j), _mm256_maddubs_epi16(q4l, load256(q8)));
			sum_h = add(sum_h, BCAST16(scales, 2 * j + 1), _mm256_maddubs_epi16(q4h, load256(q8 + 32)));
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_add_epi32(sum_l, sum_h)), acc);
	}
	return cpu_hsum8(acc) + cpu_hsum4(acc_m);
}

QDOT_AVX2 static float avx2_dot_q4_K(const void *w, const void *act, int64_t n)
{
	return dot_q4_K(w, act, n, k_add_madd);
}

QDOT_AVX512 static float vnni_dot_q4_K(const void *w, const void *act, int64_t n)
{
	return dot_q4_K(w, act, n, k_add_vnni);
}

/* Q5_K: as Q4_K with the 5th bit from qh (weights 0..31: pairs at most
 * 2*31*127 = 7874).  Sub-block s takes bit s of each qh byte; the compare
 * turns it into 0xff, masked to 16. */
QDOT_AVX2 static float avx2_dot_q5_K(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q5_K *x = w;
	const struct qtype_block_q8_K *y = act;
	const int64_t nb = n / QTYPE_QK_K;
	const __m256i m4 = _mm256_set1_epi8(0x0f);
	const __m256i b16 = _mm256_set1_epi8(16);
	__m256 acc = _mm256_setzero_ps();
	float summs = 0.0f;
	for (int64_t i = 0; i < nb; i++) {
		prefetch_ahead(&x[i], sizeof(x[0]));
		const float dy = y[i].d;
		const float d = h2f(x[i].d) * dy;
		const float dmin = -h2f(x[i].dmin) * dy;
		const __m256i ms = k4_scales_mins(x[i].scales);
		/* Unlike Q4_K, ggml's Q5_K kernel sums the min term as a
		 * scalar: one integer total per block, fused into summs. */
		const int32_t mi = k4_min_total(ms, &y[i]);
		summs = cpu_fma_ss(dmin, (float)mi, summs);
		const __m128i sc128 = _mm256_castsi256_si128(ms);
		const __m256i scales = _mm256_set_m128i(sc128, sc128);
		const __m256i hbits = load256(x[i].qh);
		const uint8_t *q5 = x[i].qs;
		const int8_t *q8 = y[i].qs;
		__m256i sumi = _mm256_setzero_si256();
		for (int j = 0; j < 4; j++, q5 += 32, q8 += 64) {
			const __m256i bits = load256(q5);
			const __m256i hm0 = _mm256_set1_epi8((char)(1 << (2 * j)));
			const __m256i hm1 = _mm256_set1_epi8((char)(2 << (2 * j)));
			const __m256i h0 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hbits, hm0), hm0), b16);
			const __m256i h1 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hbits, hm1), hm1), b16);
			const __m256i q5l = _mm256_or_si256(_mm256_and_si256(bits, m4), h0);
			const __m256i q5h = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), h1);
			__m256i pl = _mm256_maddubs_epi16(q5l, load256(q8));
			__m256i ph = _mm256_maddubs_epi16(q5h, load256(q8 + 32));
			pl = _mm256_madd_epi16(BCAST16(scales, 2 * j), pl);
			ph = _mm256_madd_epi16(BCAST16(scales, 2 * j + 1), ph);
			sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
	}
	return cpu_hsum8(acc) + summs;
}

/* Q6_K: maddubs needs one unsigned operand, so the unsigned 6-bit q (0..63)
 * is multiplied (pair sums at most 2*63*127 = 16002) and the -32 offset is
 * taken out afterwards from the activation's bsums, lane by lane exactly as
 * ggml does: lane k loses 32*(bsums[2k]*sc[2k] + bsums[2k+1]*sc[2k+1]).
 * The integer total is the same in any layout, but each float lane must
 * hold the same partial sum as ggml's for the lanes to round alike. */
QDOT_AVX2 static float avx2_dot_q6_K(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q6_K *x = w;
	const struct qtype_block_q8_K *y = act;
	const int64_t nb = n / QTYPE_QK_K;
	__m256 acc = _mm256_setzero_ps();
	for (int64_t i = 0; i < nb; i++) {
		const float d = h2f(x[i].d) * y[i].d;
		acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(q6_K_lanes(&x[i], &y[i])), acc);
	}
	return cpu_hsum8(acc);
}

/* ---- several activation rows per weight row ----------------------------- */

/* In a batch (prefill, or several sequences decoding together) each weight
 * row meets several activation rows.  The kernels below unpack a weight
 * block once and apply it to up to four prepared activation rows.  For every
 * activation row they perform exactly the float operations of the
 * single-row kernel above, in the same order: its own accumulators, the same
 * FMA per block, the same final reduction.  Only integer work (unpacking
 * and the int32 block sums, which are exact) is shared or reordered, so each
 * output is bit-identical to the single-row kernel's (the qtype tests check
 * this).  `na` (1..4) is a compile-time constant in every instance: the
 * loops over rows unroll and the accumulators stay in registers. */

/* mul_sum_i8_pairs_float with sign(x,x) computed once for several y. */
QDOT_AVX2 static inline __m256 mul_sum_i8_abs_float(__m256i ax, __m256i x, __m256i y)
{
	const __m256i dot16 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(y, x));
	return _mm256_cvtepi32_ps(_mm256_madd_epi16(dot16, _mm256_set1_epi16(1)));
}

/* Q4_0/Q5_0/Q8_0 share one loop; `bytes` gives a block's 32 signed
 * quants.  Groups of eight blocks with the scale products of eight at a
 * time (the weight halves converted once for all activation rows), then
 * single blocks. */
QDOT4_INLINE void x4_q32(const uint8_t *x, size_t wbytes, __m256i (*bytes)(const uint8_t *),
			 const void *const act[4], const int na, int64_t n, float out[4])
{
	const struct qtype_block_q8_0 *y[4];
	__m256 acc[4];
	for (int t = 0; t < na; t++) {
		y[t] = act[t];
		acc[t] = _mm256_setzero_ps();
	}
	const int64_t nb = n / QTYPE_QK;
	int64_t i = 0;
	for (; i + 8 <= nb; i += 8) {
		const uint8_t *xb = x + (size_t)i * wbytes;
		const __m256 dw = halves8(xb, wbytes);
		float ds[4][8];
		for (int t = 0; t < na; t++)
			_mm256_storeu_ps(ds[t], _mm256_mul_ps(dw, halves8((const uint8_t *)&y[t][i],
									   sizeof(y[t][0]))));
		for (int k = 0; k < 8; k++) {
			const __m256i q = bytes(xb + k * wbytes);
			const __m256i aq = _mm256_sign_epi8(q, q);
			for (int t = 0; t < na; t++)
				acc[t] = _mm256_fmadd_ps(_mm256_broadcast_ss(&ds[t][k]),
							 mul_sum_i8_abs_float(aq, q, load256(y[t][i + k].qs)),
							 acc[t]);
		}
	}
	for (; i < nb; i++) {
		const uint8_t *xb = x + (size_t)i * wbytes;
		uint16_t hw;
		memcpy(&hw, xb, 2);
		const float dw = h2f(hw);
		const __m256i q = bytes(xb);
		const __m256i aq = _mm256_sign_epi8(q, q);
		for (int t = 0; t < na; t++) {
			const __m256 d = _mm256_set1_ps(dw * h2f(y[t][i].d));
			acc[t] = _mm256_fmadd_ps(d, mul_sum_i8_abs_float(aq, q, load256(y[t][i].qs)), acc[t]);
		}
	}
	for (int t = 0; t < na; t++)
		out[t] = cpu_hsum8(acc[t]);
}

QDOT4_INLINE __m256i x4_bytes_q8_0(const uint8_t *b)
{
	return load256(b + offsetof(struct qtype_block_q8_0, qs));
}

QDOT4_INLINE __m256i x4_bytes_q4_0(const uint8_t *b)
{
	return q4_0_bytes((const struct qtype_block_q4_0 *)b);
}

QDOT4_INLINE __m256i x4_bytes_q5_0(const uint8_t *b)
{
	return q5_0_bytes((const struct qtype_block_q5_0 *)b);
}

QDOT4_INLINE void x4_q8_0(const void *w, const void *const act[4], const int na, int64_t n,
			  float out[4])
{
	x4_q32(w, sizeof(struct qtype_block_q8_0), x4_bytes_q8_0, act, na, n, out);
}

QDOT4_INLINE void x4_q4_0(const void *w, const void *const act[4], const int na, int64_t n,
			  float out[4])
{
	x4_q32(w, sizeof(struct qtype_block_q4_0), x4_bytes_q4_0, act, na, n, out);
}

QDOT4_INLINE void x4_q5_0(const void *w, const void *const act[4], const int na, int64_t n,
			  float out[4])
{
	x4_q32(w, sizeof(struct qtype_block_q5_0), x4_bytes_q5_0, act, na, n, out);
}

/* Four weight rows (ws bytes apart) times one activation row, for decode:
 * each row's operations are x4_q32's with one activation row (so the
 * single kernel's, bit for bit), four rows at once.  A row's blocks are
 * one FMA chain; alone, a row of 20 blocks waited on the FMA latency and
 * the call around it - four chains overlap, and the activation block is
 * loaded once for the four. */
/* How far ahead the four-row decode kernels ask for weight rows: whole
 * calls' four rows, about this many bytes (at least the next call's). */
#define R4_AHEAD 8192

/* Share g of ng of the four rows R4_AHEAD ahead of the call's (w, ws
 * bytes apart), into L2 (prefetcht2, as matmul.c's prefetch_rows).  A
 * call asks for them a share per group of eight blocks, spread over its
 * work: one burst of all their lines before each call (dot_rows, until
 * session 18) held the miss buffers - Q8_0 model tg64 at 1 thread 54.8
 * -> 72.3 tok/s (4 alternating pairs, all won).  Without any prefetch
 * these loops run at half speed on Zen 4 (its hardware prefetcher leaves
 * four interleaved rows to software), and so did asking for only part
 * of the lines.  Past the matrix's end the requests are harmless:
 * prefetches never fault. */
QDOT4_INLINE void r4_ahead(const uint8_t *w, size_t ws, int64_t g, int64_t ng)
{
	const size_t span = 4 * ws, calls = span < R4_AHEAD ? R4_AHEAD / span : 1;
	const size_t slice = ((span + (size_t)ng - 1) / (size_t)ng + 63) & ~(size_t)63;
	const char *p = (const char *)w + calls * span + (size_t)g * slice;
	for (size_t o = 0; o < slice; o += 64)
		_mm_prefetch(p + o, _MM_HINT_T2);
}

/* The scale products d_w * d_a of blocks i..i+7 (a group of the nb) of
 * four rows (ws bytes apart) against the Q8_0 activation act, ds[r][k];
 * the group's share of the rows ahead asked for. */
QDOT4_INLINE void r4_scales(const uint8_t *w, size_t ws, size_t wbytes, const void *act, int64_t i,
			    int64_t nb, float ds[4][8])
{
	r4_ahead(w, ws, i / 8, nb / 8);
	const size_t ab = sizeof(struct qtype_block_q8_0);
	const __m256 dy = halves8((const uint8_t *)act + (size_t)i * ab, ab);
	for (int r = 0; r < 4; r++) {
		const uint8_t *xb = w + (size_t)r * ws + (size_t)i * wbytes;
		_mm256_storeu_ps(ds[r], _mm256_mul_ps(halves8(xb, wbytes), dy));
	}
}

QDOT4_INLINE void r4_q32(const uint8_t *w, size_t ws, size_t wbytes, __m256i (*bytes)(const uint8_t *),
			 const void *act, int64_t n, float out[4])
{
	const struct qtype_block_q8_0 *y = act;
	__m256 acc[4];
	for (int r = 0; r < 4; r++)
		acc[r] = _mm256_setzero_ps();
	const int64_t nb = n / QTYPE_QK;
	int64_t i = 0;
	for (; i + 8 <= nb; i += 8) {
		float ds[4][8];
		r4_scales(w, ws, wbytes, act, i, nb, ds);
		for (int k = 0; k < 8; k++) {
			const __m256i yq = load256(y[i + k].qs);
			for (int r = 0; r < 4; r++) {
				const __m256i q = bytes(w + (size_t)r * ws + (size_t)(i + k) * wbytes);
				const __m256i aq = _mm256_sign_epi8(q, q);
				acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(&ds[r][k]), mul_sum_i8_abs_float(aq, q, yq),
							 acc[r]);
			}
		}
	}
	if (nb < 8)
		r4_ahead(w, ws, 0, 1); /* no group to spread the request over */
	for (; i < nb; i++) {
		const float dy = h2f(y[i].d);
		const __m256i yq = load256(y[i].qs);
		for (int r = 0; r < 4; r++) {
			const uint8_t *xb = w + (size_t)r * ws + (size_t)i * wbytes;
			uint16_t hw;
			memcpy(&hw, xb, 2);
			const __m256i q = bytes(xb);
			const __m256i aq = _mm256_sign_epi8(q, q);
			acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(h2f(hw) * dy), mul_sum_i8_abs_float(aq, q, yq), acc[r]);
		}
	}
	for (int r = 0; r < 4; r++)
		out[r] = cpu_hsum8(acc[r]);
}

QDOT_AVX2 static void r4_q8_0(const void *w, size_t ws, const void *act, int64_t n, float out[4])
{
	r4_q32(w, ws, sizeof(struct qtype_block_q8_0), x4_bytes_q8_0, act, n, out);
}

QDOT_AVX2 static void r4_q4_0(const void *w, size_t ws, const void *act, int64_t n, float out[4])
{
	r4_q32(w, ws, sizeof(struct qtype_block_q4_0), x4_bytes_q4_0, act, n, out);
}

QDOT_AVX2 static void r4_q5_0(const void *w, size_t ws, const void *act, int64_t n, float out[4])
{
	r4_q32(w, ws, sizeof(struct qtype_block_q5_0), x4_bytes_q5_0, act, n, out);
}

/* The four-row decode kernel where the CPU has AVX-512 VNNI (here, not in
 * qdot_avx512.c, for this file's unpackers): as r4_q32, with vpdpbusd for
 * sign + sign + maddubs + madd.  The weights go in unsigned, q + 128, and
 * each block's sum starts at -128 x the activation's four-byte sums, which
 * qdot_prepare_tile computed once for the row (its pair side's low
 * halves, QDOT_SIDE_*), so each int32
 * lane is mul_sum_i8_abs_float's before conversion, and the float
 * operations are r4_q32's: the same bits. */
#define R4V_INLINE QDOT_AVX512 __attribute__((always_inline)) static inline
R4V_INLINE void r4v_q32(const uint8_t *w, size_t ws, size_t wbytes, __m256i (*bytes)(const uint8_t *),
			const void *act, int64_t n, float out[4])
{
	const int64_t nb = n / QTYPE_QK;
	const uint8_t *side = (const uint8_t *)act + QDOT_Q8_0_SIDE(nb);
	const size_t sb = QDOT_SIDE_BLOCK;
	const __m256i bias = _mm256_set1_epi8((char)0x80);
	__m256 acc[4];
	for (int r = 0; r < 4; r++)
		acc[r] = _mm256_setzero_ps();
	int64_t i = 0;
	for (; i + 8 <= nb; i += 8) {
		float ds[4][8];
		r4_scales(w, ws, wbytes, act, i, nb, ds);
		for (int k = 0; k < 8; k++) {
			const uint8_t *yb = side + (size_t)(i + k) * sb;
			const __m256i yq = load256(yb + QDOT_SIDE_Q), start = load256(yb + QDOT_SIDE_START);
			for (int r = 0; r < 4; r++) {
				const __m256i q = _mm256_xor_si256(bytes(w + (size_t)r * ws + (size_t)(i + k) * wbytes), bias);
				acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(&ds[r][k]),
							 _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(start, q, yq)), acc[r]);
			}
		}
	}
	if (nb < 8)
		r4_ahead(w, ws, 0, 1); /* no group to spread the request over */
	for (; i < nb; i++) {
		const uint8_t *yb = side + (size_t)i * sb;
		const __m256i yq = load256(yb + QDOT_SIDE_Q), start = load256(yb + QDOT_SIDE_START);
		float dy;
		memcpy(&dy, yb + QDOT_SIDE_D, sizeof(dy));
		for (int r = 0; r < 4; r++) {
			const uint8_t *xb = w + (size_t)r * ws + (size_t)i * wbytes;
			uint16_t hw;
			memcpy(&hw, xb, 2);
			const __m256i q = _mm256_xor_si256(bytes(xb), bias);
			acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(h2f(hw) * dy),
						 _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(start, q, yq)), acc[r]);
		}
	}
	for (int r = 0; r < 4; r++)
		out[r] = cpu_hsum8(acc[r]);
}

#define R4V_ENTRY(name, blk, bytes)                                                                \
	QDOT_AVX512 static void name(const void *w, size_t ws, const void *act, int64_t n, float out[4]) \
	{                                                                                          \
		r4v_q32(w, ws, sizeof(struct blk), bytes, act, n, out);                            \
	}
R4V_ENTRY(r4v_q8_0, qtype_block_q8_0, x4_bytes_q8_0)
R4V_ENTRY(r4v_q4_0, qtype_block_q4_0, x4_bytes_q4_0)
R4V_ENTRY(r4v_q5_0, qtype_block_q5_0, x4_bytes_q5_0)

qdot_rows4_fn qdot__avx512_rows4(uint32_t wtype)
{
	switch (wtype) {
	case QTYPE_Q4_0: return r4v_q4_0;
	case QTYPE_Q5_0: return r4v_q5_0;
	case QTYPE_Q8_0: return r4v_q8_0;
	default: return NULL;
	}
}

qdot_rows4_fn qdot__avx2_rows4(uint32_t wtype)
{
	switch (wtype) {
	case QTYPE_Q4_0: return r4_q4_0;
	case QTYPE_Q5_0: return r4_q5_0;
	case QTYPE_Q8_0: return r4_q8_0;
	default: return NULL;
	}
}

/* As avx2_dot_mxfp4, per activation row: each row keeps its own pair of
 * accumulators and its own leftover FMA. */
QDOT4_INLINE void x4_mxfp4(const void *w, const void *const act[4], const int na, int64_t n,
			   float out[4])
{
	const struct qtype_block_mxfp4 *x = w;
	const struct qtype_block_q8_0 *y[4];
	__m256 acc1[4], acc2[4];
	for (int t = 0; t < na; t++) {
		y[t] = act[t];
		acc1[t] = _mm256_setzero_ps();
		acc2[t] = _mm256_setzero_ps();
	}
	const int64_t nb = n / QTYPE_QK;
	const __m128i table = mxfp4_table();
	int64_t i = 0;
	for (; i + 1 < nb; i += 2) {
		const __m256i q1 = mxfp4_bytes(&x[i], table), q2 = mxfp4_bytes(&x[i + 1], table);
		const __m256i a1 = _mm256_sign_epi8(q1, q1), a2 = _mm256_sign_epi8(q2, q2);
		const float e1 = qtype_e8m0_half(x[i].e), e2 = qtype_e8m0_half(x[i + 1].e);
		for (int t = 0; t < na; t++) {
			const __m256 d1 = _mm256_set1_ps(h2f(y[t][i].d) * e1);
			const __m256 d2 = _mm256_set1_ps(h2f(y[t][i + 1].d) * e2);
			acc1[t] = _mm256_fmadd_ps(d1, mul_sum_i8_abs_float(a1, q1, load256(y[t][i].qs)), acc1[t]);
			acc2[t] = _mm256_fmadd_ps(d2, mul_sum_i8_abs_float(a2, q2, load256(y[t][i + 1].qs)),
						  acc2[t]);
		}
	}
	for (int t = 0; t < na; t++) {
		out[t] = cpu_hsum8(_mm256_add_ps(acc1[t], acc2[t]));
		if (i < nb) {
			const float d = h2f(y[t][i].d) * qtype_e8m0_half(x[i].e);
			out[t] = cpu_fma_ss(d, (float)mxfp4_isum(&x[i], &y[t][i]), out[t]);
		}
	}
}

/* As avx2_dot_q4_K (q5 false) or avx2_dot_q5_K (q5 true), per activation
 * row (`add`: k_add_fn); the two layouts share d, dmin and the scales.
 * Q5_K's 5th bit comes from qh as there, and its min term is a scalar per
 * block fused into summs[t] where Q4_K's is a 4-lane FMA into acc_m[t],
 * each as its single kernel does.  A prefill's rows too long for a tile
 * (ffn_down of 8B-class models) come here. */
QDOT4_INLINE void x4_k45_with(const void *w, const void *const act[4], const int na, int64_t n,
			      float out[4], k_add_fn add, const bool q5)
{
	const size_t xb = q5 ? sizeof(struct qtype_block_q5_K) : sizeof(struct qtype_block_q4_K);
	const size_t qs_at = q5 ? offsetof(struct qtype_block_q5_K, qs) : offsetof(struct qtype_block_q4_K, qs);
	const struct qtype_block_q8_K *y[4];
	__m256 acc[4];
	__m128 acc_m[4];
	float summs[4];
	for (int t = 0; t < na; t++) {
		y[t] = act[t];
		acc[t] = _mm256_setzero_ps();
		acc_m[t] = _mm_setzero_ps();
		summs[t] = 0.0f;
	}
	const int64_t nb = n / QTYPE_QK_K;
	const __m256i m4 = _mm256_set1_epi8(0x0f), b16 = _mm256_set1_epi8(16);
	for (int64_t i = 0; i < nb; i++) {
		const uint8_t *blk = (const uint8_t *)w + (size_t)i * xb;
		const struct qtype_block_q4_K *x = (const void *)blk; /* d, dmin, scales */
		const float dx = h2f(x->d), mx = h2f(x->dmin);
		const __m256i ms = k4_scales_mins(x->scales);
		float d[4];
		for (int t = 0; t < na; t++) {
			const float dy = y[t][i].d;
			d[t] = dx * dy;
			const float dmin = -mx * dy;
			if (q5)
				summs[t] = cpu_fma_ss(dmin, (float)k4_min_total(ms, &y[t][i]), summs[t]);
			else
				acc_m[t] = _mm_fmadd_ps(_mm_set1_ps(dmin),
							_mm_cvtepi32_ps(k4_min_dot(ms, &y[t][i])), acc_m[t]);
		}
		const __m128i sc128 = _mm256_castsi256_si128(ms);
		const __m256i scales = _mm256_set_m128i(sc128, sc128);
		const __m256i hbits = q5 ? load256(blk + offsetof(struct qtype_block_q5_K, qh)) : m4;
		const uint8_t *qs = blk + qs_at;
		__m256i sumi[4];
		for (int t = 0; t < na; t++)
			sumi[t] = _mm256_setzero_si256();
		for (int j = 0; j < 4; j++, qs += 32) {
			const __m256i bits = load256(qs);
			__m256i ql = _mm256_and_si256(bits, m4);
			__m256i qh = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
			if (q5) {
				const __m256i hm0 = _mm256_set1_epi8((char)(1 << (2 * j)));
				const __m256i hm1 = _mm256_set1_epi8((char)(2 << (2 * j)));
				ql = _mm256_or_si256(ql, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hbits, hm0), hm0), b16));
				qh = _mm256_or_si256(qh, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hbits, hm1), hm1), b16));
			}
			const __m256i sl = BCAST16(scales, 2 * j), sh = BCAST16(scales, 2 * j + 1);
			for (int t = 0; t < na; t++) {
				const int8_t *q8 = y[t][i].qs + 64 * j;
				sumi[t] = add(sumi[t], sl, _mm256_maddubs_epi16(ql, load256(q8)));
				sumi[t] = add(sumi[t], sh, _mm256_maddubs_epi16(qh, load256(q8 + 32)));
			}
		}
		for (int t = 0; t < na; t++)
			acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d[t]), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
	}
	for (int t = 0; t < na; t++)
		out[t] = cpu_hsum8(acc[t]) + (q5 ? summs[t] : cpu_hsum4(acc_m[t]));
}

QDOT4_INLINE void x4_q4_K_with(const void *w, const void *const act[4], const int na, int64_t n,
			       float out[4], k_add_fn add)
{
	x4_k45_with(w, act, na, n, out, add, false);
}

QDOT4_INLINE void x4_q5_K_with(const void *w, const void *const act[4], const int na, int64_t n,
			       float out[4], k_add_fn add)
{
	x4_k45_with(w, act, na, n, out, add, true);
}

/* As avx2_dot_q6_K, per activation row (`add`: k_add_fn). */
QDOT4_INLINE void x4_q6_K_with(const void *w, const void *const act[4], const int na, int64_t n,
			       float out[4], k_add_fn add)
{
	const struct qtype_block_q6_K *x = w;
	const struct qtype_block_q8_K *y[4];
	__m256 acc[4];
	for (int t = 0; t < na; t++) {
		y[t] = act[t];
		acc[t] = _mm256_setzero_ps();
	}
	const int64_t nb = n / QTYPE_QK_K;
	const __m256i m4 = _mm256_set1_epi8(0x0f);
	const __m256i m2 = _mm256_set1_epi8(0x03);
	for (int64_t i = 0; i < nb; i++) {
		const float dx = h2f(x[i].d);
		const __m128i sc = _mm_loadu_si128((const __m128i *)x[i].scales);
		const __m256i sc16 = _mm256_cvtepi8_epi16(sc);
		__m256i sumi[4];
		for (int t = 0; t < na; t++) {
			const __m256i bs = load256((const uint8_t *)&y[t][i] +
						   offsetof(struct qtype_block_q8_K, bsums));
			/* start from -sub: the int32 total is the same */
			sumi[t] = _mm256_sub_epi32(_mm256_setzero_si256(),
						   _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5));
		}
		const uint8_t *ql = x[i].ql, *qh = x[i].qh;
		for (int h = 0; h < 2; h++, ql += 64, qh += 32) {
			const __m256i b1 = load256(ql), b2 = load256(ql + 32), bh = load256(qh);
			const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(bh, m2), 4);
			const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 2), m2), 4);
			const __m256i h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 4), m2), 4);
			const __m256i h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 6), m2), 4);
			const __m256i q[4] = {
				_mm256_or_si256(_mm256_and_si256(b1, m4), h0),
				_mm256_or_si256(_mm256_and_si256(b2, m4), h1),
				_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4), h2),
				_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4), h3),
			};
			for (int k = 0; k < 4; k++) {
				const __m256i s = k_scale_pair(sc, 4 * h + k);
				for (int t = 0; t < na; t++) {
					const int8_t *q8 = y[t][i].qs + 128 * h + 32 * k;
					sumi[t] = add(sumi[t], s, _mm256_maddubs_epi16(q[k], load256(q8)));
				}
			}
		}
		for (int t = 0; t < na; t++) {
			const float d = dx * y[t][i].d;
			acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
		}
	}
	for (int t = 0; t < na; t++)
		out[t] = cpu_hsum8(acc[t]);
}

/* A several-activation K-quant kernel's two instances: x4_KIND with madd
 * + add (AVX2), x4v_KIND with VNNI's vpdpwssd (k_add_fn). */
#define X4_K_INSTANCES(kind)                                                                 \
	QDOT4_INLINE void x4_##kind(const void *w, const void *const act[4], const int na,  \
				    int64_t n, float out[4])                                \
	{                                                                               \
		x4_##kind##_with(w, act, na, n, out, k_add_madd);                           \
	}                                                                               \
	KV_INLINE void x4v_##kind(const void *w, const void *const act[4], const int na,    \
				  int64_t n, float out[4])                                  \
	{                                                                               \
		x4_##kind##_with(w, act, na, n, out, k_add_vnni);                           \
	}
X4_K_INSTANCES(q4_K)
X4_K_INSTANCES(q5_K)
X4_K_INSTANCES(q6_K)

/* ---- tiles: several weight rows x all activation rows ------------------ */

/* The matmul's tile (qdot_tile_fn) for the 32-value formats.  The tile's
 * weight blocks are unpacked once, into signed bytes, their absolute
 * values and the float scale (QDOT_TILE_BYTES at most, in L1), and every
 * activation row of the batch then passes over them: the unpacking, most
 * of the single kernel's work per block, is paid once per batch instead of
 * once per activation row.  Per group of four activation rows the block
 * loop runs outside the row loop, eight blocks at a time: the activation
 * scales are converted once per chunk, two weight rows share each
 * activation load, and a row's tail blocks (nb % 8, a fifth of a 640-wide
 * row) take the same vector path as the rest.  For each (weight row,
 * activation row) the float operations are still exactly the single
 * kernel's: the same block order, the same dw*da products (a lane of a
 * vector multiply rounds as the scalar one; fp16 -> float is exact), one
 * FMA per block into its accumulator, the same final reduction; so every
 * output equals avx2_dot_* bit for bit.  The formats differ only in what
 * surrounds that (enum tq_kind, a compile-time constant in every
 * instance). */
enum tq_kind {
	TQ_Q8_0, /* Q4_0, Q5_0, Q8_0: one accumulator, result hsum8(acc) */
	TQ_MIN,	 /* Q4_1, Q5_1 against Q8_1 (36-byte blocks): plus the min
		  * term summs = fma(m, s, summs) per block, result
		  * hsum8(acc) + summs; their quants are unsigned, for which
		  * maddubs(|q|, sign(a, q)) = maddubs(q, a) exactly */
	TQ_MXFP4, /* even blocks to acc, odd ones to acc2, result
		   * hsum8(acc + acc2), an odd last block added after it as
		   * fma(d, (float)isum, sum) */
};

/* Bytes of one activation block: Q8_1 for TQ_MIN, else Q8_0. */
#define TQ_ACT_BYTES(kind) \
	((kind) == TQ_MIN ? sizeof(struct qtype_block_q8_1) : sizeof(struct qtype_block_q8_0))

/* Bytes one unpacked row of nb blocks takes: blocks, scales and (TQ_MIN)
 * mins. */
#define TILE_ROW_BYTES(nb, kind) \
	((size_t)(nb) * (sizeof(struct tile_blk) + ((kind) == TQ_MIN ? 2 : 1) * sizeof(float)))

/* Up to eight fp16 fields `stride` bytes apart as floats; lanes >= kb 0.
 * A full chunk takes halves8 (packed in registers); only a row's tail
 * chunk goes through memory, whose store-to-load stall is paid once per
 * row. */
QDOT_AVX2 static inline __m256 halves_n(const uint8_t *p, size_t stride, int kb)
{
	if (kb == 8)
		return halves8(p, stride);
	uint16_t h[8] = { 0 };
	for (int k = 0; k < kb; k++)
		memcpy(&h[k], p + k * stride, 2);
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}

/* The weight rows one pass of tile_q32_rows takes together: two share each
 * activation load; MXFP4's second accumulators leave registers for one. */
#define TQ_ROWS(kind) ((kind) == TQ_MXFP4 ? 1 : 2)

/* One block's FMA: acc += ds * (quants . activation quants yv). */
QDOT4_INLINE __m256 tq_fma(const struct tile_blk *b, const float *ds, __m256i yv, __m256 acc)
{
	const __m256i q = _mm256_load_si256(&b->q), aq = _mm256_load_si256(&b->aq);
	return _mm256_fmadd_ps(_mm256_broadcast_ss(ds), mul_sum_i8_abs_float(aq, q, yv), acc);
}

/* Where block k's four activation sums sit in tq_sums_t's output. */
static inline int tq_ys_at(int k)
{
	return 8 * (k & 3) + 4 * (k >> 2);
}

/* The Q8_1 sums s of blocks [i, i + 8) of four activation rows, transposed
 * into out[32] so that block k's four are the floats at tq_ys_at(k). */
QDOT_AVX2 static inline void tq_sums_t(const uint8_t *const y[4], int64_t i, int kb, float out[32])
{
	const size_t ab = sizeof(struct qtype_block_q8_1), so = offsetof(struct qtype_block_q8_1, s);
	__m256 v[4];
	for (int t = 0; t < 4; t++)
		v[t] = halves_n(y[t] + (size_t)i * ab + so, ab, kb);
	const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
	const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
	_mm256_storeu_ps(out, _mm256_shuffle_ps(t0, t2, 0x44));      /* blocks 0 | 4 */
	_mm256_storeu_ps(out + 8, _mm256_shuffle_ps(t0, t2, 0xee));  /* blocks 1 | 5 */
	_mm256_storeu_ps(out + 16, _mm256_shuffle_ps(t1, t3, 0x44)); /* blocks 2 | 6 */
	_mm256_storeu_ps(out + 24, _mm256_shuffle_ps(t1, t3, 0xee)); /* blocks 3 | 7 */
}

/* The exact integer dot of an unpacked block with activation quants yv
 * (the sum of mul_sum_i8_abs_float's int32 lanes, before conversion). */
QDOT_AVX2 static inline int tq_isum(const struct tile_blk *b, __m256i yv)
{
	const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(b->aq, _mm256_sign_epi8(yv, b->q)),
					    _mm256_set1_epi16(1));
	const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
	const __m128i s2 = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
	return _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_shuffle_epi32(s2, _MM_SHUFFLE(2, 3, 0, 1))));
}

/* Chunks of eight blocks in a row at most: a tile holds one row at least,
 * so nb <= QDOT_TILE_BYTES / sizeof(struct tile_blk). */
#define TQ_MAX_CHUNKS ((QDOT_TILE_BYTES / (int)sizeof(struct tile_blk) + 7) / 8)

/* nr (<= TQ_ROWS, constant) unpacked weight rows from r0 times the na
 * activation rows y[], all blocks: the accumulators stay in registers from
 * the first block to the last.  ya[c][t]: the activation scales of chunk
 * c (blocks 8c..8c+7) of row t; for TQ_MIN ys[c] their sums, block k's
 * four in lanes t of ys[c] + tq_ys_at(k).  Writes out[t * os + r0 + r]. */
QDOT4_INLINE void tile_q32_rows(const struct tq_rows *w, int r0, const int nr, const enum tq_kind kind,
				const uint8_t *const y[4], const __m256 (*ya)[4], const float (*ys)[32],
				const int na, int64_t nb, float *out, int64_t os)
{
	const size_t ab = TQ_ACT_BYTES(kind);
	/* MXFP4's odd last block is not in the vector accumulators */
	const int64_t nv = kind == TQ_MXFP4 ? nb & ~(int64_t)1 : nb;
	/* acc2 and summs stay untouched (and are optimised away) where kind
	 * does not use them */
	__m256 a[2][4], a2[2][4];
	__m128 summs[2];
	for (int r = 0; r < nr; r++) {
		for (int t = 0; t < na; t++)
			a[r][t] = a2[r][t] = _mm256_setzero_ps();
		summs[r] = _mm_setzero_ps();
	}
	for (int64_t i = 0; i < nv; i += 8) {
		const int kb = nv - i < 8 ? (int)(nv - i) : 8;
		const int64_t c = i / 8;
		float ds[2][4][8];
		for (int r = 0; r < nr; r++) {
			const __m256 dw = _mm256_loadu_ps(w->d[r0 + r] + i); /* lanes past kb unused */
			for (int t = 0; t < na; t++)
				_mm256_storeu_ps(ds[r][t], _mm256_mul_ps(dw, ya[c][t]));
		}
		/* TQ_MXFP4: i and kb are even, blocks go in (even, odd) pairs */
		for (int k = 0; k < kb; k += kind == TQ_MXFP4 ? 2 : 1) {
			for (int t = 0; t < na; t++) {
				const uint8_t *yb = y[t] + (size_t)(i + k) * ab + ab - QTYPE_QK;
				const __m256i yv = load256(yb);
				for (int r = 0; r < nr; r++)
					a[r][t] = tq_fma(&w->x[r0 + r][i + k], &ds[r][t][k], yv, a[r][t]);
				if (kind == TQ_MXFP4) {
					const __m256i yv2 = load256(yb + ab);
					for (int r = 0; r < nr; r++)
						a2[r][t] = tq_fma(&w->x[r0 + r][i + k + 1], &ds[r][t][k + 1], yv2,
								  a2[r][t]);
				}
			}
		}
		/* the min chains of the four activation rows side by side: lane t
		 * is fma(m, s_t, summs_t), the single kernel's rounding */
		if (kind == TQ_MIN)
			for (int r = 0; r < nr; r++)
				for (int k = 0; k < kb; k++)
					summs[r] = _mm_fmadd_ps(_mm_broadcast_ss(&w->m[r0 + r][i + k]),
								_mm_loadu_ps(ys[c] + tq_ys_at(k)), summs[r]);
	}
	for (int r = 0; r < nr; r++) {
		float sm[4];
		if (kind == TQ_MIN)
			_mm_storeu_ps(sm, summs[r]);
		for (int t = 0; t < na; t++) {
			float s;
			if (kind == TQ_MXFP4) {
				s = cpu_hsum8(_mm256_add_ps(a[r][t], a2[r][t]));
				if (nv < nb) {
					const uint8_t *yb = y[t] + (size_t)nv * ab;
					uint16_t hy;
					memcpy(&hy, yb, 2);
					const float d = h2f(hy) * w->d[r0 + r][nv];
					s = cpu_fma_ss(d, (float)tq_isum(&w->x[r0 + r][nv], load256(yb + ab - QTYPE_QK)),
						       s);
				}
			} else if (kind == TQ_MIN) {
				s = cpu_hsum8(a[r][t]) + sm[t];
			} else {
				s = cpu_hsum8(a[r][t]);
			}
			out[t * os + r0 + r] = s;
		}
	}
}

/* nw unpacked rows times the na activation rows y[]: the activation
 * scales (and sums) of every chunk once, then the rows TQ_ROWS at a time. */
QDOT4_INLINE void tile_q32_group(const struct tq_rows *w, int nw, const enum tq_kind kind,
				 const uint8_t *const y[4], const int na, int64_t nb, float *out,
				 int64_t os)
{
	const size_t ab = TQ_ACT_BYTES(kind);
	const int64_t nv = kind == TQ_MXFP4 ? nb & ~(int64_t)1 : nb;
	__m256 ya[TQ_MAX_CHUNKS][4];
	float ys[TQ_MAX_CHUNKS][32];  /* TQ_MIN only */
	for (int64_t i = 0; i < nv; i += 8) {
		const int kb = nv - i < 8 ? (int)(nv - i) : 8;
		for (int t = 0; t < na; t++)
			ya[i / 8][t] = halves_n(y[t] + (size_t)i * ab, ab, kb);
		if (kind == TQ_MIN)
			tq_sums_t(y, i, kb, ys[i / 8]);
	}
	const int nr = TQ_ROWS(kind);
	int r = 0;
	for (; r + nr <= nw; r += nr)
		tile_q32_rows(w, r, nr, kind, y, (const __m256 (*)[4])ya, (const float (*)[32])ys, na, nb, out, os);
	if (r < nw)
		tile_q32_rows(w, r, 1, kind, y, (const __m256 (*)[4])ya, (const float (*)[32])ys, na, nb, out, os);
}

/* The group kernels of one kind, one per activation-group size, so that
 * the loops over activation rows unroll. */
#define TQ_GROUP(kname, kind, na)                                                             \
	QDOT_AVX2 static void tq_##kname##_g##na(const struct tq_rows *w, int nw,             \
						 const uint8_t *const y[4], int64_t nb,       \
						 float *o, int64_t os)                        \
	{                                                                                     \
		tile_q32_group(w, nw, kind, y, na, nb, o, os);                                \
	}
#define TQ_GROUPS(kname, kind) \
	TQ_GROUP(kname, kind, 1) TQ_GROUP(kname, kind, 2) TQ_GROUP(kname, kind, 3) TQ_GROUP(kname, kind, 4)
TQ_GROUPS(q8_0, TQ_Q8_0)
TQ_GROUPS(min, TQ_MIN)
TQ_GROUPS(mxfp4, TQ_MXFP4)

typedef void (*tq_group_fn)(const struct tq_rows *w, int nw, const uint8_t *const y[4],
			    int64_t nb, float *o, int64_t os);

/* The weight scales of blocks [i, i + kb) of a row: the fp16 d that starts
 * each block, or MXFP4's E8M0 exponent. */
QDOT4_INLINE void tq_scales(const enum tq_kind kind, const uint8_t *xb, size_t wbytes, int kb,
			    float dw[8])
{
	if (kind == TQ_MXFP4) {
		for (int k = 0; k < kb; k++)
			dw[k] = qtype_e8m0_half(xb[(size_t)k * wbytes]);
	} else {
		_mm256_storeu_ps(dw, halves_n(xb, wbytes, kb));
	}
}

/* Unpack nw rows of nb blocks (each block by `bytes`) into buf, described
 * by *w.  The caller keeps nw <= the rows qdot__avx2_tile gave. */
QDOT4_INLINE void tq_unpack(const uint8_t *x, size_t wbytes, __m256i (*bytes)(const uint8_t *),
			    const enum tq_kind kind, size_t ws, int nw, int64_t nb, uint8_t *buf,
			    struct tq_rows *w)
{
	struct tile_blk *blk0 = (struct tile_blk *)buf;
	/* scales (then mins) after all the blocks, padded by 8 so that a tail
	 * chunk's full-width load stays inside the buffer */
	float *d0 = (float *)(buf + (size_t)nw * nb * sizeof(struct tile_blk));
	float *m0 = d0 + (size_t)nw * nb;
	for (int r = 0; r < nw; r++) {
		const uint8_t *xr = x + (size_t)r * ws;
		struct tile_blk *br = blk0 + (size_t)r * nb;
		float *dr = d0 + (size_t)r * nb, *mr = m0 + (size_t)r * nb;
		for (int64_t i = 0; i < nb; i += 8) {
			const int kb = nb - i < 8 ? (int)(nb - i) : 8;
			const uint8_t *xb = xr + (size_t)i * wbytes;
			float dw[8], mw[8];
			tq_scales(kind, xb, wbytes, kb, dw);
			if (kind == TQ_MIN)
				_mm256_storeu_ps(mw, halves_n(xb + offsetof(struct qtype_block_q4_1, m),
							      wbytes, kb));
			for (int k = 0; k < kb; k++) {
				const __m256i q = bytes(xb + (size_t)k * wbytes);
				_mm256_store_si256(&br[i + k].q, q);
				_mm256_store_si256(&br[i + k].aq, _mm256_sign_epi8(q, q));
				dr[i + k] = dw[k];
				if (kind == TQ_MIN)
					mr[i + k] = mw[k];
			}
		}
		w->x[r] = br;
		w->d[r] = dr;
		w->m[r] = mr;
	}
}

/* Unpack nw rows, then every activation row in groups of four. */
QDOT4_INLINE void tile_q32(const uint8_t *x, size_t wbytes, __m256i (*bytes)(const uint8_t *),
			   const enum tq_kind kind, const tq_group_fn g[4], size_t ws, int nw,
			   const void *act, size_t act_row, int n_act, int64_t n, float *out,
			   int64_t os)
{
	_Alignas(32) uint8_t buf[QDOT_TILE_BYTES];
	const int64_t nb = n / QTYPE_QK;
	struct tq_rows w;
	tq_unpack(x, wbytes, bytes, kind, ws, nw, nb, buf, &w);
	for (int t0 = 0; t0 < n_act; t0 += 4) {
		const int na = n_act - t0 < 4 ? n_act - t0 : 4;
		const uint8_t *y[4];
		for (int t = 0; t < 4; t++)
			y[t] = (const uint8_t *)act + (size_t)(t0 + (t < na ? t : 0)) * act_row;
		g[na - 1](&w, nw, y, nb, out + (int64_t)t0 * os, os);
	}
}

QDOT4_INLINE __m256i x4_bytes_q4_1(const uint8_t *b)
{
	return q4_1_bytes((const struct qtype_block_q4_1 *)b);
}

QDOT4_INLINE __m256i x4_bytes_q5_1(const uint8_t *b)
{
	return q5_1_bytes((const struct qtype_block_q5_1 *)b);
}

QDOT4_INLINE __m256i x4_bytes_mxfp4(const uint8_t *b)
{
	return mxfp4_bytes((const struct qtype_block_mxfp4 *)b, mxfp4_table());
}

#define TILE_Q32_ENTRY(name, block, bytesfn, kind, kname)                                     \
	QDOT_AVX2 static void name(const void *w, size_t ws, int nw, const void *act,         \
				   size_t act_row, int n_act, int64_t n, float *o, int64_t os)    \
	{                                                                                     \
		static const tq_group_fn g[4] = { tq_##kname##_g1, tq_##kname##_g2,            \
						  tq_##kname##_g3, tq_##kname##_g4 };          \
		tile_q32(w, sizeof(struct block), bytesfn, kind, g, ws, nw, act, act_row, n_act, \
			 n, o, os);                                                           \
	}
TILE_Q32_ENTRY(tile_q8_0, qtype_block_q8_0, x4_bytes_q8_0, TQ_Q8_0, q8_0)
TILE_Q32_ENTRY(tile_q4_0, qtype_block_q4_0, x4_bytes_q4_0, TQ_Q8_0, q8_0)
TILE_Q32_ENTRY(tile_q5_0, qtype_block_q5_0, x4_bytes_q5_0, TQ_Q8_0, q8_0)
TILE_Q32_ENTRY(tile_q4_1, qtype_block_q4_1, x4_bytes_q4_1, TQ_MIN, min)
TILE_Q32_ENTRY(tile_q5_1, qtype_block_q5_1, x4_bytes_q5_1, TQ_MIN, min)
TILE_Q32_ENTRY(tile_mxfp4, qtype_block_mxfp4, x4_bytes_mxfp4, TQ_MXFP4, mxfp4)

/* Rows of a 32-value type for the AVX-512 passes: each block's quants as
 * unsigned bytes q + 128 (vpdpbusd's unsigned operand), the scales as
 * floats - 36 bytes a block, half the AVX2 tile's, so twice the rows stay
 * in L1. */
QDOT4_INLINE void tq_unpack_u8(const uint8_t *x, size_t wbytes, __m256i (*bytes)(const uint8_t *),
			       size_t ws, int nw, int64_t nb, __m256i *q, float *d)
{
	const __m256i bias = _mm256_set1_epi8((char)0x80);
	for (int r = 0; r < nw; r++) {
		const uint8_t *xr = x + (size_t)r * ws;
		for (int64_t i = 0; i < nb; i += 8) {
			const int kb = nb - i < 8 ? (int)(nb - i) : 8;
			const uint8_t *xb = xr + (size_t)i * wbytes;
			float dw[8];
			tq_scales(TQ_Q8_0, xb, wbytes, kb, dw);
			for (int k = 0; k < kb; k++) {
				_mm256_store_si256(q++, _mm256_xor_si256(bytes(xb + (size_t)k * wbytes), bias));
				*d++ = dw[k];
			}
		}
	}
}

QDOT_AVX2 bool qdot__avx2_unpack_q32_u8(uint32_t wtype, const void *w, size_t ws, int nw, int64_t nb,
					__m256i *q, float *d)
{
	switch (wtype) {
	case QTYPE_Q8_0:
		tq_unpack_u8(w, sizeof(struct qtype_block_q8_0), x4_bytes_q8_0, ws, nw, nb, q, d);
		return true;
	case QTYPE_Q4_0:
		tq_unpack_u8(w, sizeof(struct qtype_block_q4_0), x4_bytes_q4_0, ws, nw, nb, q, d);
		return true;
	case QTYPE_Q5_0:
		tq_unpack_u8(w, sizeof(struct qtype_block_q5_0), x4_bytes_q5_0, ws, nw, nb, q, d);
		return true;
	default: return false;
	}
}

/* Q4_K tiles: as the 32-value ones, a tile's blocks are unpacked once for
 * the batch (struct tile_k4) - the nibbles split into bytes, the 6-bit
 * scales and mins decoded and each sub-block scale broadcast, the fp16
 * scales widened - and each group of four activation rows then runs
 * avx2_dot_q4_K's operations per output (as x4_q4_K, whose order is the
 * single kernel's) on them. */
/* A Q4_K or Q5_K block's scales and mins into its tile entry (the two
 * types share the super-block header and the tile layout). */
QDOT4_INLINE void tile_k4_head(struct tile_k4 *b, uint16_t d, uint16_t dmin, const uint8_t *scales)
{
	b->d = h2f(d);
	b->dmin = h2f(dmin);
	b->ms = k4_scales_mins(scales);
	const __m128i sc128 = _mm256_castsi256_si128(b->ms);
	const __m256i sc = _mm256_set_m128i(sc128, sc128);
#define K4_SC(k) b->sc[k] = BCAST16(sc, k)
	K4_SC(0); K4_SC(1); K4_SC(2); K4_SC(3); K4_SC(4); K4_SC(5); K4_SC(6); K4_SC(7);
#undef K4_SC
}

/* The quants-times-scales sums of one unpacked Q4_K/Q5_K block against
 * the na activation rows' block i, added to sumi[] (both types' tiles hold
 * unsigned bytes and scale pairs in the same layout). */
QDOT4_INLINE void tile_k4_quant_sums(const struct tile_k4 *b, const struct qtype_block_q8_K *const y[4],
				     const int na, int64_t i, __m256i sumi[4])
{
	for (int j = 0; j < 4; j++) {
		const __m256i ql = b->q[2 * j], qh = b->q[2 * j + 1];
		const __m256i sl = b->sc[2 * j], sh = b->sc[2 * j + 1];
		for (int t = 0; t < na; t++) {
			const int8_t *q8 = y[t][i].qs + 64 * j;
			const __m256i pl = _mm256_madd_epi16(sl, _mm256_maddubs_epi16(ql, load256(q8)));
			const __m256i ph = _mm256_madd_epi16(sh, _mm256_maddubs_epi16(qh, load256(q8 + 32)));
			sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(pl, ph));
		}
	}
}

/* One unpacked row of nb blocks times the na activation rows y[]. */
QDOT4_INLINE void tile_k4_row(const struct tile_k4 *b, const struct qtype_block_q8_K *const y[4],
			      const int na, int64_t nb, float *out, int64_t os)
{
	__m256 acc[4];
	__m128 acc_m[4];
	for (int t = 0; t < na; t++) {
		acc[t] = _mm256_setzero_ps();
		acc_m[t] = _mm_setzero_ps();
	}
	for (int64_t i = 0; i < nb; i++, b++) {
		float d[4];
		__m256i sumi[4];
		for (int t = 0; t < na; t++) {
			const float dy = y[t][i].d;
			d[t] = b->d * dy;
			const float dmin = -b->dmin * dy;
			acc_m[t] = _mm_fmadd_ps(_mm_set1_ps(dmin),
						_mm_cvtepi32_ps(k4_min_dot(b->ms, &y[t][i])), acc_m[t]);
			sumi[t] = _mm256_setzero_si256();
		}
		tile_k4_quant_sums(b, y, na, i, sumi);
		for (int t = 0; t < na; t++)
			acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d[t]), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
	}
	for (int t = 0; t < na; t++)
		out[t * os] = cpu_hsum8(acc[t]) + cpu_hsum4(acc_m[t]);
}

TILE_K_PASS(k4, struct tile_k4)

QDOT_AVX2 void qdot__avx2_unpack_q4_K(const void *w, size_t ws, int nw, int64_t nb, struct tile_k4 *b0)
{
	const __m256i m4 = _mm256_set1_epi8(0x0f);
	for (int r = 0; r < nw; r++) {
		const struct qtype_block_q4_K *x = (const void *)((const char *)w + (size_t)r * ws);
		for (int64_t i = 0; i < nb; i++) {
			struct tile_k4 *b = b0 + (size_t)r * nb + i;
			tile_k4_head(b, x[i].d, x[i].dmin, x[i].scales);
			for (int j = 0; j < 4; j++) {
				const __m256i bits = load256(x[i].qs + 32 * j);
				b->q[2 * j] = _mm256_and_si256(bits, m4);
				b->q[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
			}
		}
	}
}

TILE_K_ENTRY(QDOT_AVX2, tile_q4_K, struct tile_k4, qdot__avx2_unpack_q4_K, tile_k4_pass)

/* Q5_K tiles: the Q4_K layout with the 5th bit merged into each quant
 * byte at unpack time; per output avx2_dot_q5_K's operations in its order
 * (the min term as one integer total per block, fused into a scalar). */
QDOT4_INLINE void tile_k5_row(const struct tile_k4 *b, const struct qtype_block_q8_K *const y[4],
			      const int na, int64_t nb, float *out, int64_t os)
{
	__m256 acc[4];
	float summs[4];
	for (int t = 0; t < na; t++) {
		acc[t] = _mm256_setzero_ps();
		summs[t] = 0.0f;
	}
	for (int64_t i = 0; i < nb; i++, b++) {
		float d[4];
		__m256i sumi[4];
		for (int t = 0; t < na; t++) {
			const float dy = y[t][i].d;
			d[t] = b->d * dy;
			const float dmin = -b->dmin * dy;
			const int32_t mi = k4_min_total(b->ms, &y[t][i]);
			summs[t] = cpu_fma_ss(dmin, (float)mi, summs[t]);
			sumi[t] = _mm256_setzero_si256();
		}
		tile_k4_quant_sums(b, y, na, i, sumi);
		for (int t = 0; t < na; t++)
			acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d[t]), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
	}
	for (int t = 0; t < na; t++)
		out[t * os] = cpu_hsum8(acc[t]) + summs[t];
}

TILE_K_PASS(k5, struct tile_k4)

QDOT_AVX2 void qdot__avx2_unpack_q5_K(const void *w, size_t ws, int nw, int64_t nb, struct tile_k4 *b0)
{
	const __m256i m4 = _mm256_set1_epi8(0x0f);
	const __m256i b16 = _mm256_set1_epi8(16);
	for (int r = 0; r < nw; r++) {
		const struct qtype_block_q5_K *x = (const void *)((const char *)w + (size_t)r * ws);
		for (int64_t i = 0; i < nb; i++) {
			struct tile_k4 *b = b0 + (size_t)r * nb + i;
			tile_k4_head(b, x[i].d, x[i].dmin, x[i].scales);
			const __m256i hbits = load256(x[i].qh);
			for (int j = 0; j < 4; j++) {
				const __m256i bits = load256(x[i].qs + 32 * j);
				const __m256i hm0 = _mm256_set1_epi8((char)(1 << (2 * j)));
				const __m256i hm1 = _mm256_set1_epi8((char)(2 << (2 * j)));
				const __m256i h0 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hbits, hm0), hm0), b16);
				const __m256i h1 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hbits, hm1), hm1), b16);
				b->q[2 * j] = _mm256_or_si256(_mm256_and_si256(bits, m4), h0);
				b->q[2 * j + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), h1);
			}
		}
	}
}

TILE_K_ENTRY(QDOT_AVX2, tile_q5_K, struct tile_k4, qdot__avx2_unpack_q5_K, tile_k5_pass)

/* Q6_K tiles, likewise (struct tile_k6): the 6-bit quants assembled into
 * bytes, the scale pairs widened and the bsums multiplier (the scales as
 * int16) kept, then x4_q6_K's operations per output. */
QDOT4_INLINE void tile_k6_row(const struct tile_k6 *b, const struct qtype_block_q8_K *const y[4],
			      const int na, int64_t nb, float *out, int64_t os)
{
	__m256 acc[4];
	for (int t = 0; t < na; t++)
		acc[t] = _mm256_setzero_ps();
	for (int64_t i = 0; i < nb; i++, b++) {
		__m256i sumi[4];
		for (int t = 0; t < na; t++) {
			const __m256i bs = load256((const uint8_t *)&y[t][i] +
						   offsetof(struct qtype_block_q8_K, bsums));
			sumi[t] = _mm256_sub_epi32(_mm256_setzero_si256(),
						   _mm256_slli_epi32(_mm256_madd_epi16(bs, b->sc16), 5));
		}
		for (int c = 0; c < 8; c++) {
			const __m256i q = b->q[c], sc = b->sc[c];
			for (int t = 0; t < na; t++) {
				const int8_t *q8 = y[t][i].qs + 32 * c;
				sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(sc, _mm256_maddubs_epi16(q, load256(q8))));
			}
		}
		for (int t = 0; t < na; t++) {
			const float d = b->d * y[t][i].d;
			acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
		}
	}
	for (int t = 0; t < na; t++)
		out[t * os] = cpu_hsum8(acc[t]);
}

TILE_K_PASS(k6, struct tile_k6)

QDOT_AVX2 void qdot__avx2_unpack_q6_K(const void *w, size_t ws, int nw, int64_t nb, struct tile_k6 *b0)
{
	const __m256i m4 = _mm256_set1_epi8(0x0f);
	const __m256i m2 = _mm256_set1_epi8(0x03);
	for (int r = 0; r < nw; r++) {
		const struct qtype_block_q6_K *x = (const void *)((const char *)w + (size_t)r * ws);
		for (int64_t i = 0; i < nb; i++) {
			struct tile_k6 *b = b0 + (size_t)r * nb + i;
			b->d = h2f(x[i].d);
			const __m128i sc = _mm_loadu_si128((const __m128i *)x[i].scales);
			b->sc16 = _mm256_cvtepi8_epi16(sc);
			const uint8_t *ql = x[i].ql, *qh = x[i].qh;
			for (int h = 0; h < 2; h++, ql += 64, qh += 32) {
				const __m256i b1 = load256(ql), b2 = load256(ql + 32), bh = load256(qh);
				const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(bh, m2), 4);
				const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 2), m2), 4);
				const __m256i h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 4), m2), 4);
				const __m256i h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 6), m2), 4);
				b->q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(b1, m4), h0);
				b->q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(b2, m4), h1);
				b->q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4), h2);
				b->q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4), h3);
			}
			for (int k = 0; k < 8; k++)
				b->sc[k] = k_scale_pair(sc, k);
		}
	}
}

TILE_K_ENTRY(QDOT_AVX2, tile_q6_K, struct tile_k6, qdot__avx2_unpack_q6_K, tile_k6_pass)

qdot_tile_fn qdot__avx2_tile(uint32_t wtype, int64_t n, int *rows)
{
	qdot_tile_fn f;
	enum tq_kind kind = TQ_Q8_0; /* only TQ_MIN changes the row size */
	switch (wtype) {
	case QTYPE_Q4_0: f = tile_q4_0; break;
	case QTYPE_Q5_0: f = tile_q5_0; break;
	case QTYPE_Q8_0: f = tile_q8_0; break;
	case QTYPE_MXFP4: f = tile_mxfp4; break;
	case QTYPE_Q4_1: f = tile_q4_1; kind = TQ_MIN; break;
	case QTYPE_Q5_1: f = tile_q5_1; kind = TQ_MIN; break;
	case QTYPE_Q4_K: /* one unpacked layout (struct tile_k4) */
		return tile_k_rows(sizeof(struct tile_k4), n, rows) ? tile_q4_K : NULL;
	case QTYPE_Q5_K:
		return tile_k_rows(sizeof(struct tile_k4), n, rows) ? tile_q5_K : NULL;
	case QTYPE_Q6_K:
		return tile_k_rows(sizeof(struct tile_k6), n, rows) ? tile_q6_K : NULL;
	case QTYPE_Q2_K:
	case QTYPE_Q3_K:
		return qdot__avx2_k23_tile(wtype, n, rows);
	default: return NULL;
	}
	/* rows whose unpacked blocks, scales and mins (+ 8 floats of padding) fit */
	const int64_t nb = n / QTYPE_QK;
	if (nb <= 0)
		return NULL;
	const int64_t fit = (QDOT_TILE_BYTES - 8 * (int64_t)sizeof(float)) / (int64_t)TILE_ROW_BYTES(nb, kind);
	if (fit < 1)
		return NULL;
	*rows = fit < QDOT_TILE_ROWS ? (int)fit : QDOT_TILE_ROWS;
	return f;
}

/* One entry point per type: instances for na = 1..4 and a switch on
 * n_act (clamped to 1..4 by the caller, see qdot.h). */
#define QDOT4_ENTRY_FOR(attr, name)                                                       \
	attr static void name##_n1(const void *w, const void *const a[4], int64_t n,       \
				   float o[4]) { name(w, a, 1, n, o); }                    \
	attr static void name##_n2(const void *w, const void *const a[4], int64_t n,       \
				   float o[4]) { name(w, a, 2, n, o); }                    \
	attr static void name##_n3(const void *w, const void *const a[4], int64_t n,       \
				   float o[4]) { name(w, a, 3, n, o); }                    \
	attr static void name##_n4(const void *w, const void *const a[4], int64_t n,       \
				   float o[4]) { name(w, a, 4, n, o); }                    \
	attr static void name##_any(const void *w, const void *const a[4], int n_act,      \
				    int64_t n, float o[4])                                 \
	{                                                                                 \
		switch (n_act) {                                                          \
		case 1: name##_n1(w, a, n, o); break;                                     \
		case 2: name##_n2(w, a, n, o); break;                                     \
		case 3: name##_n3(w, a, n, o); break;                                     \
		default: name##_n4(w, a, n, o); break;                                    \
		}                                                                         \
	}

#define QDOT4_ENTRY(name) QDOT4_ENTRY_FOR(QDOT_AVX2, name)

QDOT4_ENTRY(x4_q8_0)
QDOT4_ENTRY(x4_q4_0)
QDOT4_ENTRY(x4_q5_0)
QDOT4_ENTRY(x4_mxfp4)
QDOT4_ENTRY(x4_q4_K)
QDOT4_ENTRY(x4_q5_K)
QDOT4_ENTRY(x4_q6_K)
QDOT4_ENTRY_FOR(QDOT_AVX512, x4v_q4_K)
QDOT4_ENTRY_FOR(QDOT_AVX512, x4v_q5_K)
QDOT4_ENTRY_FOR(QDOT_AVX512, x4v_q6_K)

/* The K-quant kernels whose VNNI variant (k_add_vnni) qdot.c picks where
 * the CPU has AVX-512 VNNI; NULL for the rest (the AVX2 ones then). */
qdot_fn qdot__avx512_vnni_dot(uint32_t wtype)
{
	return wtype == QTYPE_Q4_K ? vnni_dot_q4_K : NULL;
}

qdot4_fn qdot__avx512_vnni_kernel4(uint32_t wtype)
{
	switch (wtype) {
	case QTYPE_Q4_K: return x4v_q4_K_any;
	case QTYPE_Q5_K: return x4v_q5_K_any;
	case QTYPE_Q6_K: return x4v_q6_K_any;
	default: return NULL;
	}
}

qdot4_fn qdot__avx2_kernel4(uint32_t wtype)
{
	switch (wtype) {
	case QTYPE_Q4_0: return x4_q4_0_any;
	case QTYPE_Q5_0: return x4_q5_0_any;
	case QTYPE_Q8_0: return x4_q8_0_any;
	case QTYPE_MXFP4: return x4_mxfp4_any;
	case QTYPE_Q4_K: return x4_q4_K_any;
	case QTYPE_Q5_K: return x4_q5_K_any;
	case QTYPE_Q6_K: return x4_q6_K_any;
	default: return NULL;
	}
}

qdot_fn qdot__avx2_kernel(uint32_t wtype)
{
	switch (wtype) {
	case QTYPE_Q4_0: return avx2_dot_q4_0;
	case QTYPE_Q4_1: return avx2_dot_q4_1;
	case QTYPE_Q5_0: return avx2_dot_q5_0;
	case QTYPE_Q5_1: return avx2_dot_q5_1;
	case QTYPE_Q8_0: return avx2_dot_q8_0;
	case QTYPE_MXFP4: return avx2_dot_mxfp4;
	case QTYPE_Q4_K: return avx2_dot_q4_K;
	case QTYPE_Q5_K: return avx2_dot_q5_K;
	case QTYPE_Q6_K: return avx2_dot_q6_K;
	case QTYPE_Q2_K:
	case QTYPE_Q3_K: return qdot__avx2_k23_kernel(wtype);
	default: return NULL;
	}
}

/* ---- row decoders ------------------------------------------------------- */

/* F16C conversion is exact, like fp16_to_fp32. */
QDOT_AVX2 static void avx2_dequant_f16(const uint16_t *x, float *dst, int64_t n)
{
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
	for (; i < n; i++) {
		uint16_t h;
		memcpy(&h, x + i, 2);
		dst[i] = h2f(h);
	}
}

/* One multiply per value, as in the scalar decoder: bit-identical. */
QDOT_AVX2 static void avx2_dequant_q8_0(const struct qtype_block_q8_0 *x, float *dst, int64_t n)
{
	for (int64_t i = 0; i < n / QTYPE_QK; i++, dst += QTYPE_QK) {
		const __m256 d = _mm256_set1_ps(h2f(x[i].d));
		for (int k = 0; k < 32; k += 8) {
			const __m128i q = _mm_loadl_epi64((const __m128i *)(x[i].qs + k));
			const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
			_mm256_storeu_ps(dst + k, _mm256_mul_ps(v, d));
		}
	}
}

bool qdot__avx2_dequant_row(uint32_t type, const void *src, float *dst, int64_t n)
{
	switch (type) {
	case QTYPE_F16:
		avx2_dequant_f16(src, dst, n);
		return true;
	case QTYPE_Q8_0:
		avx2_dequant_q8_0(src, dst, n);
		return true;
	default:
		return false;
	}
}

#else /* not x86: scalar kernels only */

qdot_tile_fn qdot__avx2_tile(uint32_t wtype, int64_t n, int *rows)
{
	(void)wtype, (void)n, (void)rows;
	return NULL;
}

qdot4_fn qdot__avx2_kernel4(uint32_t wtype)
{
	(void)wtype;
	return NULL;
}

qdot_rows4_fn qdot__avx2_rows4(uint32_t wtype)
{
	(void)wtype;
	return NULL;
}

qdot_rows4_fn qdot__avx512_rows4(uint32_t wtype)
{
	(void)wtype;
	return NULL;
}

qdot_fn qdot__avx512_vnni_dot(uint32_t wtype)
{
	(void)wtype;
	return NULL;
}

qdot4_fn qdot__avx512_vnni_kernel4(uint32_t wtype)
{
	(void)wtype;
	return NULL;
}

qdot_fn qdot__avx2_kernel(uint32_t wtype)
{
	(void)wtype;
	return NULL;
}

bool qdot__avx2_dequant_row(uint32_t type, const void *src, float *dst, int64_t n)
{
	(void)type, (void)src, (void)dst, (void)n;
	return false;
}

#endif
