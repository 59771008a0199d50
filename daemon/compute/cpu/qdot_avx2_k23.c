/* qdot_avx2_k23.c - AVX2 dot products for Q2_K and Q3_K weights (against
 * Q8_K activations): the single-row kernels and their tiles.
 *
 * As for the other types (qdot_avx2.c, qdot.h), the single kernels
 * reproduce llama.cpp's AVX2 ggml_vec_dot_q2_K_q8_K / _q3_K_q8_K bit for
 * bit: the same int32 partial sums in the same lanes (one 32-value chunk
 * per maddubs, its two 16-value sub-block scales applied by madd, chunk by
 * chunk into one int32 vector per super-block), one float accumulator
 * updated with FMA per super-block, and hsum_float_8.  Q2_K's min term
 * (the 4-bit mins times the activation's 16-value sums) goes into the same
 * accumulator, by its own FMA, before the quants' one.
 *
 * Integer ranges: Q2_K quants are 0..3 and Q3_K's -4..3, activations within
 * +-127, so a maddubs pair sum is at most 2*4*127 = 1016 (no saturation)
 * and every int32 lane is exact; the lane a product lands in is what
 * matters for the float rounding, and that follows ggml's layout.
 */
#include "compute/cpu/qdot_avx2.h"

#ifdef CPU_HAVE_AVX2_CODE

#include <string.h>

/* The activation block's sixteen 16-value sums, as int16 lanes. */
QDOT_AVX2 static inline __m256i q8k_bsums(const struct qtype_block_q8_K *y)
{
	return load256((const uint8_t *)y + offsetof(struct qtype_block_q8_K, bsums));
}

/* ---- Q2_K --------------------------------------------------------------- */

/* Chunk c (0..7) of a Q2_K block: 32 quants 0..3, the 2-bit field c % 4 of
 * the 32 bytes of half c / 4. */
QDOT_AVX2 static inline __m256i k2_quants(const uint8_t *qs, int c)
{
	const __m256i bits = load256(qs + 32 * (c / 4));
	return _mm256_and_si256(_mm256_srli_epi16(bits, 2 * (c % 4)), _mm256_set1_epi8(3));
}

/* The 16 sub-block scales (low nibbles of scales[]) as bytes. */
QDOT_AVX2 static inline __m128i k2_scales(const struct qtype_block_q2_K *x)
{
	return _mm_and_si128(_mm_loadu_si128((const __m128i *)x->scales), _mm_set1_epi8(0x0f));
}

/* The 16 sub-block mins (high nibbles) as int16 lanes. */
QDOT_AVX2 static inline __m256i k2_mins(const struct qtype_block_q2_K *x)
{
	const __m128i sm = _mm_loadu_si128((const __m128i *)x->scales);
	return _mm256_cvtepi8_epi16(_mm_and_si128(_mm_srli_epi16(sm, 4), _mm_set1_epi8(0x0f)));
}

QDOT_AVX2 static float avx2_dot_q2_K(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q2_K *x = w;
	const struct qtype_block_q8_K *y = act;
	const int64_t nb = n / QTYPE_QK_K;
	__m256 acc = _mm256_setzero_ps();
	for (int64_t i = 0; i < nb; i++) {
		prefetch_ahead(&x[i], sizeof(x[0]));
		const float dy = y[i].d;
		const float d = dy * h2f(x[i].d);
		const float dmin = -dy * h2f(x[i].dmin);
		const __m256i prod = _mm256_madd_epi16(k2_mins(&x[i]), q8k_bsums(&y[i]));
		acc = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prod), acc);
		const __m128i sc = k2_scales(&x[i]);
		__m256i sumi = _mm256_setzero_si256();
		for (int c = 0; c < 8; c++) {
			const __m256i p = _mm256_maddubs_epi16(k2_quants(x[i].qs, c), load256(y[i].qs + 32 * c));
			sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(k_scale_pair(sc, c), p));
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
	}
	return cpu_hsum8(acc);
}

/* ---- Q3_K --------------------------------------------------------------- */

/* Chunk c (0..7) of a Q3_K block as signed bytes -4..3: the 2-bit field
 * c % 4 of half c / 4, minus 4 where bit c of the hmask byte is clear. */
QDOT_AVX2 static inline __m256i k3_quants(const uint8_t *qs, __m256i hbits, int c)
{
	const __m256i bits = load256(qs + 32 * (c / 4));
	const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * (c % 4)), _mm256_set1_epi8(3));
	const __m256i hm = _mm256_set1_epi8((char)(1 << c));
	const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(hbits, hm), hm);
	return _mm256_sub_epi8(lo, _mm256_andnot_si256(set, _mm256_set1_epi8(4)));
}

/* The 16 6-bit sub-block scales minus 32, as signed bytes (scales[0..7]
 * hold the low 4 bits, two per byte; scales[8..11] the top 2 bits, four per
 * byte). */
QDOT_AVX2 static inline __m128i k3_scales(const struct qtype_block_q3_K *x)
{
	uint32_t a[3];
	memcpy(a, x->scales, 12);
	const uint32_t m2 = 0x03030303, m4 = 0x0f0f0f0f;
	const __m128i s = _mm_set_epi32((int)(((a[1] >> 4) & m4) | (((a[2] >> 6) & m2) << 4)),
					(int)(((a[0] >> 4) & m4) | (((a[2] >> 4) & m2) << 4)),
					(int)((a[1] & m4) | (((a[2] >> 2) & m2) << 4)),
					(int)((a[0] & m4) | ((a[2] & m2) << 4)));
	return _mm_sub_epi8(s, _mm_set1_epi8(32));
}

/* Signed quants times activations: maddubs wants one unsigned operand, so
 * |q| times the activation with q's sign, the same pair sums as ggml's
 * (q + 4)*a - 4*a split. */
QDOT_AVX2 static inline __m256i k3_dot16(__m256i aq, __m256i q, __m256i a)
{
	return _mm256_maddubs_epi16(aq, _mm256_sign_epi8(a, q));
}

QDOT_AVX2 static float avx2_dot_q3_K(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q3_K *x = w;
	const struct qtype_block_q8_K *y = act;
	const int64_t nb = n / QTYPE_QK_K;
	__m256 acc = _mm256_setzero_ps();
	for (int64_t i = 0; i < nb; i++) {
		prefetch_ahead(&x[i], sizeof(x[0]));
		const float d = y[i].d * h2f(x[i].d);
		const __m128i sc = k3_scales(&x[i]);
		const __m256i hbits = load256(x[i].hmask);
		__m256i sumi = _mm256_setzero_si256();
		for (int c = 0; c < 8; c++) {
			const __m256i q = k3_quants(x[i].qs, hbits, c);
			const __m256i p = k3_dot16(_mm256_sign_epi8(q, q), q, load256(y[i].qs + 32 * c));
			sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(k_scale_pair(sc, c), p));
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
	}
	return cpu_hsum8(acc);
}

/* ---- tiles --------------------------------------------------------------- */

/* As the other K-quant tiles (qdot_avx2.c): a tile's super-blocks are
 * unpacked once for the batch - the quant chunks to bytes, each chunk's
 * scale pair widened, the fp16 scales converted - and each group of four
 * activation rows then runs the single kernel's operations per output, in
 * its order. */
struct tile_k2 {
	__m256i q[8];  /* chunk c's 32 quants, 0..3 */
	__m256i sc[8]; /* k_scale_pair(scales, c) */
	__m256i mins;  /* the 16 mins as int16 */
	float d, dmin; /* the block's fp16 d and dmin as floats */
	float pad[6];
};

QDOT4_INLINE void tile_k2_row(const struct tile_k2 *b, const struct qtype_block_q8_K *const y[4],
			      const int na, int64_t nb, float *out, int64_t os)
{
	__m256 acc[4];
	for (int t = 0; t < na; t++)
		acc[t] = _mm256_setzero_ps();
	for (int64_t i = 0; i < nb; i++, b++) {
		float d[4];
		__m256i sumi[4];
		for (int t = 0; t < na; t++) {
			const float dy = y[t][i].d;
			d[t] = dy * b->d;
			const float dmin = -dy * b->dmin;
			const __m256i prod = _mm256_madd_epi16(b->mins, q8k_bsums(&y[t][i]));
			acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prod), acc[t]);
			sumi[t] = _mm256_setzero_si256();
		}
		for (int c = 0; c < 8; c++) {
			const __m256i q = b->q[c], sc = b->sc[c];
			for (int t = 0; t < na; t++) {
				const __m256i p = _mm256_maddubs_epi16(q, load256(y[t][i].qs + 32 * c));
				sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(sc, p));
			}
		}
		for (int t = 0; t < na; t++)
			acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d[t]), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
	}
	for (int t = 0; t < na; t++)
		out[t * os] = cpu_hsum8(acc[t]);
}

TILE_K_PASS(k2, struct tile_k2)

QDOT_AVX2 static void tile_q2_K(const void *w, size_t ws, int nw, const void *act, size_t act_row,
				int n_act, int64_t n, float *out, int64_t os)
{
	_Alignas(32) uint8_t buf[QDOT_TILE_BYTES];
	struct tile_k2 *b0 = (struct tile_k2 *)buf;
	const int64_t nb = n / QTYPE_QK_K;
	for (int r = 0; r < nw; r++) {
		const struct qtype_block_q2_K *x = (const void *)((const char *)w + (size_t)r * ws);
		for (int64_t i = 0; i < nb; i++) {
			struct tile_k2 *b = b0 + (size_t)r * nb + i;
			b->d = h2f(x[i].d);
			b->dmin = h2f(x[i].dmin);
			b->mins = k2_mins(&x[i]);
			const __m128i sc = k2_scales(&x[i]);
			for (int c = 0; c < 8; c++) {
				b->q[c] = k2_quants(x[i].qs, c);
				b->sc[c] = k_scale_pair(sc, c);
			}
		}
	}
	tile_k2_pass(b0, nw, nb, act, act_row, n_act, out, os);
}

/* Q3_K keeps the signed quants; their absolute values are taken once per
 * chunk and group of activation rows (storing them too would halve the
 * rows per tile). */
struct tile_k3 {
	__m256i q[8];  /* chunk c's 32 quants, -4..3 */
	__m256i sc[8]; /* k_scale_pair(scales - 32, c) */
	float d;       /* the block's fp16 d as a float */
	float pad[7];
};

QDOT4_INLINE void tile_k3_row(const struct tile_k3 *b, const struct qtype_block_q8_K *const y[4],
			      const int na, int64_t nb, float *out, int64_t os)
{
	__m256 acc[4];
	for (int t = 0; t < na; t++)
		acc[t] = _mm256_setzero_ps();
	for (int64_t i = 0; i < nb; i++, b++) {
		__m256i sumi[4];
		for (int t = 0; t < na; t++)
			sumi[t] = _mm256_setzero_si256();
		for (int c = 0; c < 8; c++) {
			const __m256i q = b->q[c], aq = _mm256_sign_epi8(q, q), sc = b->sc[c];
			for (int t = 0; t < na; t++) {
				const __m256i p = k3_dot16(aq, q, load256(y[t][i].qs + 32 * c));
				sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(sc, p));
			}
		}
		for (int t = 0; t < na; t++) {
			const float d = y[t][i].d * b->d;
			acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
		}
	}
	for (int t = 0; t < na; t++)
		out[t * os] = cpu_hsum8(acc[t]);
}

TILE_K_PASS(k3, struct tile_k3)

QDOT_AVX2 static void tile_q3_K(const void *w, size_t ws, int nw, const void *act, size_t act_row,
				int n_act, int64_t n, float *out, int64_t os)
{
	_Alignas(32) uint8_t buf[QDOT_TILE_BYTES];
	struct tile_k3 *b0 = (struct tile_k3 *)buf;
	const int64_t nb = n / QTYPE_QK_K;
	for (int r = 0; r < nw; r++) {
		const struct qtype_block_q3_K *x = (const void *)((const char *)w + (size_t)r * ws);
		for (int64_t i = 0; i < nb; i++) {
			struct tile_k3 *b = b0 + (size_t)r * nb + i;
			b->d = h2f(x[i].d);
			const __m128i sc = k3_scales(&x[i]);
			const __m256i hbits = load256(x[i].hmask);
			for (int c = 0; c < 8; c++) {
				b->q[c] = k3_quants(x[i].qs, hbits, c);
				b->sc[c] = k_scale_pair(sc, c);
			}
		}
	}
	tile_k3_pass(b0, nw, nb, act, act_row, n_act, out, os);
}

qdot_tile_fn qdot__avx2_k23_tile(uint32_t wtype, int64_t n, int *rows)
{
	switch (wtype) {
	case QTYPE_Q2_K: return tile_k_rows(sizeof(struct tile_k2), n, rows) ? tile_q2_K : NULL;
	case QTYPE_Q3_K: return tile_k_rows(sizeof(struct tile_k3), n, rows) ? tile_q3_K : NULL;
	default: return NULL;
	}
}

qdot_fn qdot__avx2_k23_kernel(uint32_t wtype)
{
	switch (wtype) {
	case QTYPE_Q2_K: return avx2_dot_q2_K;
	case QTYPE_Q3_K: return avx2_dot_q3_K;
	default: return NULL;
	}
}

#endif /* CPU_HAVE_AVX2_CODE */
