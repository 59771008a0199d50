/* qdot_avx512.c - the tile kernels' passes in AVX-512 (F/BW/VL/DQ) with
 * VNNI, for the types most models' matrices are: Q4_0, Q5_0, Q8_0 (one
 * pass), Q4_K, Q5_K and Q6_K.
 *
 * Same results, fewer instructions.  A tile's weights are unpacked by the
 * AVX2 code (qdot__avx2_unpack_*, the layouts in qdot_avx2.h); the passes
 * here put two weight rows side by side in one 512-bit register - row a
 * in the low 256 bits, row b in the high ones - so every instruction works
 * on two (weight row, activation row) outputs, and replace the AVX2
 * multiply chains with VNNI's fused ones:
 *
 *   32-value formats: sign + maddubs + madd(1)  ->  one vpdpbusd.
 *     vpdpbusd multiplies unsigned by signed bytes, so the weights go in
 *     biased, q + 128 (0..255), and the accumulator starts at
 *     -128 * (the four activation bytes' sum), computed once per activation
 *     block for all weight rows: lane j ends as sum(q * y) over bytes
 *     4j..4j+3 - the same integer as madd(maddubs(|q|, sign(y, q)), 1)'s
 *     lane j.
 *   K-quants: madd(scale, maddubs(q, y)) + add  ->  maddubs + vpdpwssd,
 *     which adds the same two int16 x int16 products to the same lane.
 *
 * Every int32 lane is therefore the AVX2 kernel's lane exactly, and the
 * float operations per output are the AVX2 single kernel's, in its order:
 * the scale products d_w * d_a (a lane of a vector multiply rounds as a
 * scalar one), one FMA per block into eight lanes, the AVX2 kernel's min
 * terms and final reduction (cpu_hsum8 of each half).  So each output is
 * bit-identical to qdot_get()'s AVX2 kernel, and the exactness against the
 * llama.cpp reference build carries over (tests/emulated checks it on an
 * emulated AVX-512 CPU, test_qtype's tile_matches_single on a real one).
 *
 * Decode (one activation row) stays on the AVX2 kernels: it streams the
 * weights once and waits on memory, not on these instructions.
 */
#include "compute/cpu/qdot_avx2.h"
#include "compute/cpu/qdot_float.h"

#include <string.h>

#ifdef CPU_HAVE_AVX2_CODE

#define A512_INLINE QDOT_AVX512 __attribute__((always_inline)) static inline

/* Two 256-bit values side by side: a low, b high. */
A512_INLINE __m512i pair_si(const __m256i *a, const __m256i *b)
{
	return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_load_si256(a)), _mm256_load_si256(b), 1);
}

/* a in the low eight float lanes, b in the high eight. */
A512_INLINE __m512 pair_ps(float a, float b)
{
	return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1);
}

/* 32 activation bytes in both halves. */
A512_INLINE __m512i bcast_y(const void *p)
{
	return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p));
}

/* The two halves' eight-lane sums, to the outputs of rows a and b (none
 * for b where the pair is a lone last row). */
A512_INLINE void store_pair(__m512 acc, float *oa, float *ob)
{
	*oa = cpu_hsum8(_mm512_castps512_ps256(acc));
	if (ob)
		*ob = cpu_hsum8(_mm512_extractf32x8_ps(acc, 1));
}

/* ---- Q4_0, Q5_0, Q8_0 --------------------------------------------------- */

/* Here one register holds one weight row against two activation rows (row
 * t in the low half, t + 1 in the high one), so a weight block is a single
 * broadcast load and its scale a broadcast operand of the multiply, and
 * what belongs to the activation pair - its bytes, its scales, the
 * vpdpbusd start - is put together once per block for all the rows of a
 * pass.  The weights are unpacked unsigned, q + 128; the start is -128 x
 * the activation's four-byte sums, so each int32 lane ends as sum(q * y)
 * over its four bytes, the AVX2 kernel's lane.  The starts and the
 * activation scales as floats are computed once per matrix product, after
 * each prepared row (qdot_prepare_tile, qdot__avx512_prepare_side). */

/* A prepared Q8_0 row's half of its pair's side (QDOT_Q8_0_SIDE). */
QDOT_AVX512 void qdot__avx512_prepare_side(const void *row, int64_t nb, void *pair_side, bool odd)
{
	const uint8_t *y = row;
	uint8_t *side = pair_side;
	const size_t ab = sizeof(struct qtype_block_q8_0);
	const __m256i bias = _mm256_set1_epi8((char)0x80), zero = _mm256_setzero_si256();
	for (int64_t i = 0; i < nb; i++, side += QDOT_SIDE_BLOCK) {
		const uint8_t *yb = y + (size_t)i * ab;
		uint16_t h;
		memcpy(&h, yb, 2);
		const __m256i q = load256(yb + 2);
		const __m256i start = _mm256_sub_epi32(zero, _mm256_dpbusd_epi32(zero, bias, q));
		const __m256 d = _mm256_set1_ps(h2f(h));
		for (int half = odd; half < 2; half++) {
			_mm256_storeu_si256((__m256i *)(side + QDOT_SIDE_Q + 32 * half), q);
			_mm256_storeu_si256((__m256i *)(side + QDOT_SIDE_START + 32 * half), start);
			_mm256_storeu_ps((float *)(side + QDOT_SIDE_D + 32 * half), d);
		}
	}
}

/* Rows per pass at most: R rows x 2 activation pairs = 2R accumulators. */
#define Q32_PASS_ROWS 8

/* A tile's unpacked rows: q[r * nb + i], d[r * nb + i]. */
struct q32_tile {
	const __m256i *q;
	const float *d;
	int64_t nb;
};

/* Rows [r0, r0 + R) of the tile times the activation pairs whose sides
 * are y[p], p < P: every block, the accumulators in registers. */
A512_INLINE void q32_pass(const struct q32_tile *w, int r0, const int R, const uint8_t *const y[2],
			  const int P, float *out, int64_t os, int n_out)
{
	const int64_t nb = w->nb;
	const __m256i *q0 = w->q + (int64_t)r0 * nb;
	const float *d0 = w->d + (int64_t)r0 * nb;
	__m512 acc[Q32_PASS_ROWS][2];
	for (int r = 0; r < R; r++)
		for (int p = 0; p < P; p++)
			acc[r][p] = _mm512_setzero_ps();
	for (int64_t i = 0; i < nb; i++) {
		__m512i yp[2], start[2];
		__m512 dy[2];
		for (int p = 0; p < P; p++) {
			const uint8_t *v = y[p] + (size_t)i * QDOT_SIDE_BLOCK;
			yp[p] = _mm512_loadu_si512(v + QDOT_SIDE_Q);
			start[p] = _mm512_loadu_si512(v + QDOT_SIDE_START);
			dy[p] = _mm512_loadu_ps(v + QDOT_SIDE_D);
		}
		for (int r = 0; r < R; r++) {
			const __m512i wq = _mm512_broadcast_i64x4(_mm256_load_si256(q0 + (int64_t)r * nb + i));
			const __m512 dw = _mm512_set1_ps(d0[(int64_t)r * nb + i]);
			for (int p = 0; p < P; p++) {
				const __m512i s = _mm512_dpbusd_epi32(start[p], wq, yp[p]);
				acc[r][p] = _mm512_fmadd_ps(_mm512_mul_ps(dw, dy[p]), _mm512_cvtepi32_ps(s),
							    acc[r][p]);
			}
		}
	}
	/* outputs: activation row t of the group is out[t * os], n_out of them */
	for (int r = 0; r < R; r++)
		for (int p = 0; p < P; p++) {
			out[(2 * p) * os + r0 + r] = cpu_hsum8(_mm512_castps512_ps256(acc[r][p]));
			if (2 * p + 1 < n_out)
				out[(2 * p + 1) * os + r0 + r] =
					cpu_hsum8(_mm512_extractf32x8_ps(acc[r][p], 1));
		}
}

typedef void (*q32_pass_fn)(const struct q32_tile *w, int r0, const uint8_t *const y[2], float *out,
			    int64_t os, int n_out);

#define A512_Q32_PASS(R, P)                                                                  \
	QDOT_AVX512 static void q32_pass_##R##_##P(const struct q32_tile *w, int r0,          \
						   const uint8_t *const y[2], float *out,     \
						   int64_t os, int n_out)                     \
	{                                                                                    \
		q32_pass(w, r0, R, y, P, out, os, n_out);                                    \
	}
#define A512_Q32_PASSES(R) A512_Q32_PASS(R, 1) A512_Q32_PASS(R, 2)
A512_Q32_PASSES(1)
A512_Q32_PASSES(2)
A512_Q32_PASSES(3)
A512_Q32_PASSES(4)
A512_Q32_PASSES(5)
A512_Q32_PASSES(6)
A512_Q32_PASSES(7)
A512_Q32_PASSES(8)

static const q32_pass_fn q32_passes[Q32_PASS_ROWS][2] = {
	{ q32_pass_1_1, q32_pass_1_2 }, { q32_pass_2_1, q32_pass_2_2 }, { q32_pass_3_1, q32_pass_3_2 },
	{ q32_pass_4_1, q32_pass_4_2 }, { q32_pass_5_1, q32_pass_5_2 }, { q32_pass_6_1, q32_pass_6_2 },
	{ q32_pass_7_1, q32_pass_7_2 }, { q32_pass_8_1, q32_pass_8_2 },
};

/* Bytes a tile row of nb blocks takes unpacked. */
#define Q32_ROW_BYTES(nb) ((int64_t)(nb) * (int64_t)(sizeof(__m256i) + sizeof(float)))

/* The tile of a 32-value type (qdot_tile_fn, with the type): unpack, then
 * the activation rows four at a time (two pairs; a last odd row is paired
 * with its copy, dropped), the rows in as few passes as fit the
 * registers, evenly split. */
A512_INLINE void tile512_q32(uint32_t wtype, const void *w, size_t ws, int nw, const void *act,
			     size_t act_row, int n_act, int64_t n, float *out, int64_t os)
{
	_Alignas(64) uint8_t buf[QDOT_TILE_BYTES];
	const int64_t nb = n / QTYPE_QK;
	__m256i *q = (__m256i *)buf;
	float *d = (float *)(buf + (size_t)nw * (size_t)nb * sizeof(__m256i));
	/* A512_Q32_ENTRY below instantiates this for Q8_0, Q4_0 and Q5_0
	 * only, all of which the unpacker takes. */
	if (!qdot__avx2_unpack_q32_u8(wtype, w, ws, nw, nb, q, d))
		__builtin_unreachable();
	const struct q32_tile tile = { q, d, nb };
	const int passes = (nw + Q32_PASS_ROWS - 1) / Q32_PASS_ROWS;
	const size_t side = QDOT_Q8_0_SIDE(nb);
	for (int t0 = 0; t0 < n_act; t0 += 4) {
		const int na = n_act - t0 < 4 ? n_act - t0 : 4;
		const uint8_t *y[2];
		for (int p = 0; p < 2; p++)
			y[p] = (const uint8_t *)act + (size_t)(t0 + (2 * p < na ? 2 * p : 0)) * act_row + side;
		float *o = out + (int64_t)t0 * os;
		for (int k = 0, r0 = 0; k < passes; k++) {
			const int rows = (nw - r0) / (passes - k);
			q32_passes[rows - 1][(na + 1) / 2 - 1](&tile, r0, y, o, os, na);
			r0 += rows;
		}
	}
}

#define A512_Q32_ENTRY(name, wtype)                                                              \
	QDOT_AVX512 static void name(const void *w, size_t ws, int nw, const void *act,          \
				     size_t act_row, int n_act, int64_t n, float *o, int64_t os) \
	{                                                                                        \
		tile512_q32(wtype, w, ws, nw, act, act_row, n_act, n, o, os);                    \
	}
A512_Q32_ENTRY(tile512_q8_0, QTYPE_Q8_0)
A512_Q32_ENTRY(tile512_q4_0, QTYPE_Q4_0)
A512_Q32_ENTRY(tile512_q5_0, QTYPE_Q5_0)

/* ---- K-quants ----------------------------------------------------------- */

/* The integer sums of unpacked super-block pair (ba, bb) - Q4_K/Q5_K
 * layout - against block i of the na activation rows: sub-block k's
 * quants times the activation, times its scale, into sumi[t]. */
A512_INLINE void k4_pair_sums(const struct tile_k4 *ba, const struct tile_k4 *bb,
			      const struct qtype_block_q8_K *const y[4], const int na, int64_t i,
			      __m512i sumi[4])
{
	for (int t = 0; t < na; t++)
		sumi[t] = _mm512_setzero_si512();
	for (int k = 0; k < 8; k++) {
		const __m512i q = pair_si(&ba->q[k], &bb->q[k]), sc = pair_si(&ba->sc[k], &bb->sc[k]);
		for (int t = 0; t < na; t++)
			sumi[t] = _mm512_dpwssd_epi32(sumi[t], sc,
						      _mm512_maddubs_epi16(q, bcast_y(y[t][i].qs + 32 * k)));
	}
}

/* A pair of unpacked Q4_K rows (ob NULL: a lone row, ba == bb) times the
 * na activation rows: tile_k4_row's operations per output. */
A512_INLINE void k4_pair(const struct tile_k4 *ba, const struct tile_k4 *bb,
			 const struct qtype_block_q8_K *const y[4], const int na, int64_t nb,
			 float *oa, float *ob, int64_t os)
{
	__m512 acc[4];
	__m256 acc_m[4]; /* tile_k4_row's four-lane min sums, row a low, b high */
	for (int t = 0; t < na; t++) {
		acc[t] = _mm512_setzero_ps();
		acc_m[t] = _mm256_setzero_ps();
	}
	for (int64_t i = 0; i < nb; i++, ba++, bb++) {
		__m512i sumi[4];
		k4_pair_sums(ba, bb, y, na, i, sumi);
		const __m512 d = pair_ps(ba->d, bb->d);
		/* -dmin * dy rounds as -(dmin * dy) */
		const __m256 ndmin = _mm256_set_m128(_mm_set1_ps(-bb->dmin), _mm_set1_ps(-ba->dmin));
		/* both rows' mins (the high halves of k4_scales_mins) */
		const __m256i mins = _mm256_permute2x128_si256(ba->ms, bb->ms, 0x31);
		for (int t = 0; t < na; t++) {
			const float dy = y[t][i].d;
			/* k4_min_dot of both rows: the 32-value sums once, in
			 * both halves */
			const __m256i bs = load256((const uint8_t *)&y[t][i] + offsetof(struct qtype_block_q8_K, bsums));
			const __m128i s8 = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
			const __m256i md = _mm256_madd_epi16(mins, _mm256_broadcastsi128_si256(s8));
			acc_m[t] = _mm256_fmadd_ps(_mm256_mul_ps(ndmin, _mm256_set1_ps(dy)),
						   _mm256_cvtepi32_ps(md), acc_m[t]);
			acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(dy)),
						 _mm512_cvtepi32_ps(sumi[t]), acc[t]);
		}
	}
	for (int t = 0; t < na; t++) {
		oa[t * os] = cpu_hsum8(_mm512_castps512_ps256(acc[t])) +
			     cpu_hsum4(_mm256_castps256_ps128(acc_m[t]));
		if (ob)
			ob[t * os] = cpu_hsum8(_mm512_extractf32x8_ps(acc[t], 1)) +
				     cpu_hsum4(_mm256_extractf128_ps(acc_m[t], 1));
	}
}

/* Q5_K, likewise with tile_k5_row's min term: one integer total per
 * block, fused into a scalar. */
A512_INLINE void k5_pair(const struct tile_k4 *ba, const struct tile_k4 *bb,
			 const struct qtype_block_q8_K *const y[4], const int na, int64_t nb,
			 float *oa, float *ob, int64_t os)
{
	__m512 acc[4];
	float sa[4], sb[4];
	for (int t = 0; t < na; t++) {
		acc[t] = _mm512_setzero_ps();
		sa[t] = sb[t] = 0.0f;
	}
	for (int64_t i = 0; i < nb; i++, ba++, bb++) {
		__m512i sumi[4];
		k4_pair_sums(ba, bb, y, na, i, sumi);
		const __m512 d = pair_ps(ba->d, bb->d);
		for (int t = 0; t < na; t++) {
			const float dy = y[t][i].d;
			const int32_t ia = k4_min_total(ba->ms, &y[t][i]), ib = k4_min_total(bb->ms, &y[t][i]);
			sa[t] = cpu_fma_ss(-ba->dmin * dy, (float)ia, sa[t]);
			sb[t] = cpu_fma_ss(-bb->dmin * dy, (float)ib, sb[t]);
			acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(dy)),
						 _mm512_cvtepi32_ps(sumi[t]), acc[t]);
		}
	}
	for (int t = 0; t < na; t++) {
		oa[t * os] = cpu_hsum8(_mm512_castps512_ps256(acc[t])) + sa[t];
		if (ob)
			ob[t * os] = cpu_hsum8(_mm512_extractf32x8_ps(acc[t], 1)) + sb[t];
	}
}

/* A pair of unpacked Q6_K rows times the na activation rows:
 * tile_k6_row's operations per output (the bsums term, -32 * scales .
 * bsums, as the sums' start). */
A512_INLINE void k6_pair(const struct tile_k6 *ba, const struct tile_k6 *bb,
			 const struct qtype_block_q8_K *const y[4], const int na, int64_t nb,
			 float *oa, float *ob, int64_t os)
{
	__m512 acc[4];
	for (int t = 0; t < na; t++)
		acc[t] = _mm512_setzero_ps();
	for (int64_t i = 0; i < nb; i++, ba++, bb++) {
		__m512i sumi[4];
		const __m512i sc16 = pair_si(&ba->sc16, &bb->sc16);
		for (int t = 0; t < na; t++) {
			const __m512i bs = bcast_y((const uint8_t *)&y[t][i] + offsetof(struct qtype_block_q8_K, bsums));
			sumi[t] = _mm512_sub_epi32(_mm512_setzero_si512(),
						   _mm512_slli_epi32(_mm512_madd_epi16(bs, sc16), 5));
		}
		for (int c = 0; c < 8; c++) {
			const __m512i q = pair_si(&ba->q[c], &bb->q[c]), sc = pair_si(&ba->sc[c], &bb->sc[c]);
			for (int t = 0; t < na; t++)
				sumi[t] = _mm512_dpwssd_epi32(sumi[t], sc,
							      _mm512_maddubs_epi16(q, bcast_y(y[t][i].qs + 32 * c)));
		}
		const __m512 d = pair_ps(ba->d, bb->d);
		for (int t = 0; t < na; t++)
			acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(y[t][i].d)),
						 _mm512_cvtepi32_ps(sumi[t]), acc[t]);
	}
	for (int t = 0; t < na; t++)
		store_pair(acc[t], oa + t * os, ob ? ob + t * os : NULL);
}

/* The K-quant pass of one kind over the batch: rows in pairs (a lone last
 * row as a pair with itself), activation rows four at a time, each group
 * size its own instance so that the loops over them unroll. */
#define A512_K_GROUP(kind, blk_t, na)                                                            \
	QDOT_AVX512 static void kind##_pairs_g##na(const blk_t *b, int nw, int64_t nb,            \
						   const struct qtype_block_q8_K *const y[4],      \
						   float *o, int64_t os)                           \
	{                                                                                        \
		for (int r = 0; r < nw; r += 2) {                                                \
			const int r2 = r + 1 < nw ? r + 1 : r;                                   \
			kind##_pair(b + (size_t)r * nb, b + (size_t)r2 * nb, y, na, nb, o + r,      \
				    r2 != r ? o + r2 : NULL, os);                                \
		}                                                                                \
	}
#define A512_K_TILE(kind, blk_t, name, unpack)                                                   \
	A512_K_GROUP(kind, blk_t, 1) A512_K_GROUP(kind, blk_t, 2)                                 \
	A512_K_GROUP(kind, blk_t, 3) A512_K_GROUP(kind, blk_t, 4)                                 \
	TILE_K_BATCH(QDOT_AVX512, kind##_pass, kind##_pairs, blk_t)                               \
	TILE_K_ENTRY(QDOT_AVX512, name, blk_t, unpack, kind##_pass)
A512_K_TILE(k4, struct tile_k4, tile512_q4_K, qdot__avx2_unpack_q4_K)
A512_K_TILE(k5, struct tile_k4, tile512_q5_K, qdot__avx2_unpack_q5_K)
A512_K_TILE(k6, struct tile_k6, tile512_q6_K, qdot__avx2_unpack_q6_K)

/* ---- F16 and BF16 -------------------------------------------------------- */

/* Where the CPU has AVX-512, F16 and BF16 rows dot in 16 lanes: one
 * accumulator taking the row's whole 16-value chunks in order, its two
 * halves added and reduced by cpu_hsum8, then the last values (fewer than
 * 16) one FMA each - the AVX2 kernels' order (qdot_avx2_float.c) in
 * vectors twice as wide.  Their order is smoke's own (ggml rounds the
 * activation to fp16/bf16 first), so each kernel level keeps its own:
 * the single kernel and the tile here give the same bits as each other,
 * not as the AVX2 ones.  A chunk of weights is then one load and one
 * conversion, an activation chunk one load, and a block of 4 rows x 4
 * activation rows 16 FMAs, each on 16 lanes. */

/* Values i..i+15 of row x as floats (the conversions are exact). */
A512_INLINE __m512 fk_load16(const enum fkind k, const void *x, int64_t i)
{
	const __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)x + i));
	if (k == FK_F16)
		return _mm512_cvtph_ps(h);
	return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* An accumulator's sum: the halves added, then cpu_hsum8. */
A512_INLINE float fk_hsum16(__m512 acc)
{
	return cpu_hsum8(_mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1)));
}

/* fk_hsum16 of each of a 4 x 4 block's accumulators, every sum's
 * additions the same, but as one tree over all sixteen: each level adds
 * two vectors' halves lane by lane (halves, quarters, then pairs within
 * each quarter), 15 additions and 30 shuffles where sixteen reductions
 * take about 130 operations - a 640-value row's block is only 40 chunks
 * of 16 FMAs, so the reductions were a tenth of its time.  Lane j of the
 * result holds token j's four rows, stored as one vector. */
A512_INLINE __m512 fk_halves(__m512 x, __m512 y)
{
	/* low 256: x's halves added, high 256: y's */
	return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x44), _mm512_shuffle_f32x4(x, y, 0xee));
}

A512_INLINE __m512 fk_quarters(__m512 x, __m512 y)
{
	/* quarter j: the two quarters of 256-bit half j of (x, x, y, y) added */
	return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x88), _mm512_shuffle_f32x4(x, y, 0xdd));
}

A512_INLINE void fk_hsum16x16(__m512 acc[4][4], float *out, int64_t os)
{
	__m512 c[4];
	for (int r = 0; r < 4; r++)
		/* quarter t: row r, token t, its four-lane partial */
		c[r] = fk_quarters(fk_halves(acc[r][0], acc[r][1]), fk_halves(acc[r][2], acc[r][3]));
	/* per quarter, cpu_hsum4's two steps: lanes i and i + 2 added, then
	 * the two sums */
	const __m512 d01 = _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], 0x44), _mm512_shuffle_ps(c[0], c[1], 0xee));
	const __m512 d23 = _mm512_add_ps(_mm512_shuffle_ps(c[2], c[3], 0x44), _mm512_shuffle_ps(c[2], c[3], 0xee));
	const __m512 f = _mm512_add_ps(_mm512_shuffle_ps(d01, d23, 0x88), _mm512_shuffle_ps(d01, d23, 0xdd));
	_mm_storeu_ps(out, _mm512_castps512_ps128(f));
	_mm_storeu_ps(out + os, _mm512_extractf32x4_ps(f, 1));
	_mm_storeu_ps(out + 2 * os, _mm512_extractf32x4_ps(f, 2));
	_mm_storeu_ps(out + 3 * os, _mm512_extractf32x4_ps(f, 3));
}

/* The weight bytes of an F16/BF16 tile at most (its rows read in place,
 * so not bound by QDOT_TILE_BYTES' stack buffer): 8 rows of 2048 values
 * rather than 4 - each group of four activation rows then serves two
 * blocks of rows before the next group comes (Zen 4, 1-thread pp512 of
 * the F16 model +3% in six alternating pairs; batched decode of 16
 * unchanged); 16 rows (the most) of 640 or 1024. */
#define FK16_TILE_BYTES 32768

/* Rows and activation rows of a block at most: 16 accumulators. */
#define FK16_R 4
#define FK16_T 4

/* nr rows x nt activation rows: the single kernel's operations per
 * output.  Meanwhile the lines of [pf, pf + pf_bytes) are asked for into
 * L2, spread over the chunks (fk16_tile's next tile). */
A512_INLINE void fk16_block(const enum fkind k, const int nr, const int nt, const void *const *w,
			    const float *const *a, int64_t n, float *out, int64_t os, const char *pf,
			    int64_t pf_bytes)
{
	const int64_t ce = n & ~(int64_t)15;
	const int64_t per = fk_ahead_per_chunk(pf_bytes, ce / 16);
	__m512 acc[FK16_R][FK16_T];
	for (int r = 0; r < nr; r++)
		for (int t = 0; t < nt; t++)
			acc[r][t] = _mm512_setzero_ps();
	for (int64_t i = 0; i < ce; i += 16) {
		fk_ahead_chunk(pf, pf_bytes, per, i / 16);
		__m512 wv[FK16_R];
		for (int r = 0; r < nr; r++)
			wv[r] = fk_load16(k, w[r], i);
		for (int t = 0; t < nt; t++) {
			const __m512 av = _mm512_loadu_ps(a[t] + i);
			for (int r = 0; r < nr; r++)
				acc[r][t] = _mm512_fmadd_ps(wv[r], av, acc[r][t]);
		}
	}
	if (nr == 4 && nt == 4 && ce == n) {
		fk_hsum16x16(acc, out, os);
		return;
	}
	for (int r = 0; r < nr; r++)
		for (int t = 0; t < nt; t++)
			out[t * os + r] = fk_tail(k, fk_hsum16(acc[r][t]), w[r], a[t], ce, n);
}

/* One activation row (decode): the rows one after another, each one FMA
 * chain, so that the weights stream from memory in address order - the
 * order the hardware prefetcher follows (Zen 4, 1-thread tg64 of the F16
 * model: 4 rows side by side 37 tok/s, 2 rows 19 without software
 * prefetch, one row at a time 43; the chains of successive rows overlap
 * in the core's out-of-order window).  A line 8 rows ahead is fetched
 * into L2 every 32 values besides. */
A512_INLINE void fk16_rows(const enum fkind k, const void *w, size_t ws, int nw, const float *a, int64_t n,
			   float *out)
{
	const int64_t ce = n & ~(int64_t)15;
	for (int r = 0; r < nw; r++) {
		const char *x = (const char *)w + (size_t)r * ws;
		const char *ahead = x + 8 * ws;
		__m512 acc = _mm512_setzero_ps();
		for (int64_t i = 0; i < ce; i += 16) {
			if (i % 32 == 0)
				_mm_prefetch(ahead + 2 * i, _MM_HINT_T1);
			acc = _mm512_fmadd_ps(fk_load16(k, x, i), _mm512_loadu_ps(a + i), acc);
		}
		out[r] = fk_tail(k, fk_hsum16(acc), x, a, ce, n);
	}
}

#define FK16_BLOCK(kind, K, R, T)                                                                  \
	QDOT_AVX512 static void fk16_##kind##_##R##x##T(const void *const *w, const float *const *a, \
							int64_t n, float *out, int64_t os,           \
							const char *pf, int64_t pf_bytes)            \
	{                                                                                          \
		fk16_block(K, R, T, w, a, n, out, os, pf, pf_bytes);                               \
	}
#define FK16_BLOCKS_R(kind, K, R) \
	FK16_BLOCK(kind, K, R, 1) FK16_BLOCK(kind, K, R, 2) FK16_BLOCK(kind, K, R, 3) FK16_BLOCK(kind, K, R, 4)
#define FK16_BLOCKS(kind, K)                                                                        \
	FK16_BLOCKS_R(kind, K, 1) FK16_BLOCKS_R(kind, K, 2) FK16_BLOCKS_R(kind, K, 3)               \
	FK16_BLOCKS_R(kind, K, 4)                                                                   \
	static void (*const fk16_##kind[FK16_R][FK16_T])(const void *const *, const float *const *, \
							 int64_t, float *, int64_t, const char *,   \
							 int64_t) = {                               \
		{ fk16_##kind##_1x1, fk16_##kind##_1x2, fk16_##kind##_1x3, fk16_##kind##_1x4 },       \
		{ fk16_##kind##_2x1, fk16_##kind##_2x2, fk16_##kind##_2x3, fk16_##kind##_2x4 },       \
		{ fk16_##kind##_3x1, fk16_##kind##_3x2, fk16_##kind##_3x3, fk16_##kind##_3x4 },       \
		{ fk16_##kind##_4x1, fk16_##kind##_4x2, fk16_##kind##_4x3, fk16_##kind##_4x4 },       \
	};
FK16_BLOCKS(f16, FK_F16)
FK16_BLOCKS(bf16, FK_BF16)

typedef void (*fk16_block_fn)(const void *const *, const float *const *, int64_t, float *, int64_t, const char *,
			      int64_t);
typedef void (*fk16_rows_fn)(const void *w, size_t ws, int nw, const float *a, int64_t n, float *out);

QDOT_AVX512 static void fk16_rows_f16(const void *w, size_t ws, int nw, const float *a, int64_t n, float *out)
{
	fk16_rows(FK_F16, w, ws, nw, a, n, out);
}

QDOT_AVX512 static void fk16_rows_bf16(const void *w, size_t ws, int nw, const float *a, int64_t n, float *out)
{
	fk16_rows(FK_BF16, w, ws, nw, a, n, out);
}

/* The single kernels: one row, one activation row. */
QDOT_AVX512 static float dot512_f16(const void *w, const void *act, int64_t n)
{
	float out;
	const float *a = act;
	fk16_f16_1x1(&w, &a, n, &out, 1, NULL, 0);
	return out;
}

QDOT_AVX512 static float dot512_bf16(const void *w, const void *act, int64_t n)
{
	float out;
	const float *a = act;
	fk16_bf16_1x1(&w, &a, n, &out, 1, NULL, 0);
	return out;
}

/* The tile: activation rows four at a time (the outer loop, so that the
 * tile's rows are what stays in L1), the weight rows four at a time under
 * them; one activation row by fk16_rows.  With several activation rows
 * each block also asks for a slice of the rows after the tile - the next
 * tile's, a line per 16 values (qdot_tile_in_place): a short batch
 * (batched decode) is otherwise its rows' first reader, waiting on memory
 * for each line. */
static void fk16_tile(const fk16_block_fn blk[FK16_R][FK16_T], fk16_rows_fn rows, const void *w, size_t ws,
		      int nw, const void *act, size_t act_row, int n_act, int64_t n, float *out, int64_t os)
{
	if (n_act == 1) {
		rows(w, ws, nw, act, n, out);
		return;
	}
	struct fk_ahead ahead =
		fk_ahead_start(w, ws, nw, (int64_t)((n_act + FK16_T - 1) / FK16_T) * ((nw + FK16_R - 1) / FK16_R));
	for (int t0 = 0; t0 < n_act; t0 += FK16_T) {
		const int nt = n_act - t0 < FK16_T ? n_act - t0 : FK16_T;
		const float *a[FK16_T];
		for (int t = 0; t < nt; t++)
			a[t] = (const float *)((const char *)act + (size_t)(t0 + t) * act_row);
		for (int r0 = 0; r0 < nw; r0 += FK16_R) {
			const int nr = nw - r0 < FK16_R ? nw - r0 : FK16_R;
			const void *wr[FK16_R];
			for (int r = 0; r < nr; r++)
				wr[r] = (const char *)w + (size_t)(r0 + r) * ws;
			const char *pf;
			const int64_t pf_bytes = fk_ahead_take(&ahead, &pf);
			blk[nr - 1][nt - 1](wr, a, n, out + (int64_t)t0 * os + r0, os, pf, pf_bytes);
		}
	}
}

static void tile512_f16(const void *w, size_t ws, int nw, const void *act, size_t act_row, int n_act,
			int64_t n, float *out, int64_t os)
{
	fk16_tile(fk16_f16, fk16_rows_f16, w, ws, nw, act, act_row, n_act, n, out, os);
}

static void tile512_bf16(const void *w, size_t ws, int nw, const void *act, size_t act_row, int n_act,
			 int64_t n, float *out, int64_t os)
{
	fk16_tile(fk16_bf16, fk16_rows_bf16, w, ws, nw, act, act_row, n_act, n, out, os);
}

qdot_fn qdot__avx512_kernel(uint32_t wtype)
{
	return wtype == QTYPE_F16 ? dot512_f16 : wtype == QTYPE_BF16 ? dot512_bf16 : qdot__avx512_vnni_dot(wtype);
}

qdot_tile_fn qdot__avx512_tile(uint32_t wtype, int64_t n, int *rows)
{
	int r;
	if (wtype == QTYPE_F16 || wtype == QTYPE_BF16) {
		/* rows read in place: as many as stay in FK16_TILE_BYTES, a
		 * multiple of FK16_R where that is at least one block; a
		 * longer row is a tile of one */
		if (n <= 0)
			return NULL;
		int64_t fit = FK16_TILE_BYTES / (n * 2);
		fit = fit < QDOT_TILE_ROWS ? fit : QDOT_TILE_ROWS;
		*rows = fit < 1 ? 1 : fit < FK16_R ? (int)fit : (int)(fit - fit % FK16_R);
		return wtype == QTYPE_F16 ? tile512_f16 : tile512_bf16;
	}
	if (wtype == QTYPE_Q8_0 || wtype == QTYPE_Q4_0 || wtype == QTYPE_Q5_0) {
		/* unpacked here at 36 bytes a block (tile512_q32) */
		if (n <= 0 || n % QTYPE_QK)
			return NULL;
		const int64_t fit = QDOT_TILE_BYTES / Q32_ROW_BYTES(n / QTYPE_QK);
		if (fit < 1)
			return NULL;
		*rows = fit < QDOT_TILE_ROWS ? (int)fit : QDOT_TILE_ROWS;
		return wtype == QTYPE_Q8_0 ? tile512_q8_0 : wtype == QTYPE_Q4_0 ? tile512_q4_0 : tile512_q5_0;
	}
	/* the AVX2 tile's unpacked rows, so its rows per tile and limits */
	if (!qdot__avx2_tile(wtype, n, &r))
		return NULL;
	qdot_tile_fn f;
	switch (wtype) {
	case QTYPE_Q8_0: f = tile512_q8_0; break;
	case QTYPE_Q4_0: f = tile512_q4_0; break;
	case QTYPE_Q5_0: f = tile512_q5_0; break;
	case QTYPE_Q4_K: f = tile512_q4_K; break;
	case QTYPE_Q5_K: f = tile512_q5_K; break;
	case QTYPE_Q6_K: f = tile512_q6_K; break;
	default: return NULL;
	}
	*rows = r;
	return f;
}

#else

qdot_tile_fn qdot__avx512_tile(uint32_t wtype, int64_t n, int *rows)
{
	(void)wtype, (void)n, (void)rows;
	return NULL;
}

qdot_fn qdot__avx512_kernel(uint32_t wtype)
{
	(void)wtype;
	return NULL;
}

void qdot__avx512_prepare_side(const void *act, int64_t nb)
{
	(void)act, (void)nb;
}

#endif
