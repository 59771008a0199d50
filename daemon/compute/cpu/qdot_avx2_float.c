/* qdot_avx2_float.c - AVX2+FMA+F16C dot products of float weight rows (F32,
 * F16, BF16) with float activations: the single-row kernels and the tiles
 * (qdot.h), private to compute/cpu/ through qdot_impl.h.
 *
 * F32 is ggml's ggml_vec_dot_f32 operation for operation (bit-exact with
 * the reference build): four 8-lane accumulators, accumulator j taking the
 * 8-value chunks j, j + 4, j + 8, ... of the row, reduced in ggml's order,
 * the last values (fewer than 32) added one FMA at a time.
 *
 * F16 and BF16 dot against the float activation itself, where ggml rounds
 * it to fp16/bf16 first (qdot.h), so their order is smoke's own, chosen
 * for the tiles: one accumulator taking the row's whole 8-value chunks in
 * order, hsum8, then the last values (fewer than 8) one FMA each.  One
 * accumulator is one FMA chain, too slow alone to keep up with decode
 * streaming the rows from memory - so the CPU backend computes a single
 * activation row with the tile as well (qdot_tile_for_one_row: 3 rows, 3
 * chains), and this kernel only serves rows left over and the tests.
 *
 * The tiles (prefill, batched decode) hold each output to the single
 * kernel's bits: TILE_R rows x TILE_T tokens of accumulators in registers,
 * each weight chunk converted once for TILE_T tokens, each activation
 * chunk loaded once for TILE_R rows.  F16/BF16 walk the rows once, the
 * outputs reduced four at a time in the single kernel's order of
 * additions.  F32's accumulators are interleaved, so its tile computes one
 * accumulator per pass for the whole block, a 1024-value stretch at a
 * time.  The weights stay where they are (no unpacking): a
 * tile is as many rows as fit QDOT_TILE_BYTES, a multiple of TILE_R, so
 * that they stay in L1 while the activation rows stream past four at a
 * time.
 */
#include "compute/cpu/qdot_impl.h"

#if defined(__x86_64__) || defined(__i386__)

#include "compute/cpu/qdot_float.h"

/* F32: where ggml's groups of four chunks end. */
static inline int64_t f32_group_end(int64_t n)
{
	return n - n % 32;
}

/* ---- single rows ---------------------------------------------------------- */

CPU_AVX2 static float dot_f32(const void *w, const void *act, int64_t n)
{
	const float *a = act;
	__m256 s[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps() };
	const int64_t ge = f32_group_end(n);
	for (int64_t i = 0; i < ge; i += 32) {
#pragma GCC unroll 4
		for (int j = 0; j < 4; j++)
			s[j] = _mm256_fmadd_ps(fk_load8(FK_F32, w, i + 8 * j), _mm256_loadu_ps(a + i + 8 * j), s[j]);
	}
	return fk_tail(FK_F32, cpu_reduce4(s[0], s[1], s[2], s[3]), w, a, ge, n);
}

/* F16/BF16: one accumulator, the chunks in order. */
FLOAT_INLINE float ordered_dot(enum fkind k, const void *x, const float *a, int64_t n)
{
	const int64_t ce = n & ~(int64_t)7;
	__m256 s = _mm256_setzero_ps();
	for (int64_t i = 0; i < ce; i += 8)
		s = _mm256_fmadd_ps(fk_load8(k, x, i), _mm256_loadu_ps(a + i), s);
	return fk_tail(k, cpu_hsum8(s), x, a, ce, n);
}

CPU_AVX2 static float dot_f16(const void *w, const void *act, int64_t n)
{
	return ordered_dot(FK_F16, w, act, n);
}

CPU_AVX2 static float dot_bf16(const void *w, const void *act, int64_t n)
{
	return ordered_dot(FK_BF16, w, act, n);
}

/* ---- tiles ------------------------------------------------------------------ */

/* A register block: TILE_R rows x TILE_T tokens of accumulators (12 of
 * the 16 registers; the rest hold TILE_R converted weight chunks and one
 * activation chunk). */
#define TILE_R 3
#define TILE_T 4

/* The 8-value chunk at i of nr rows times nt tokens into acc. */
FLOAT_INLINE void fk_chunk(enum fkind k, int nr, int nt, const void *const *w, const float *const *a, int64_t i,
			   __m256 acc[TILE_R][TILE_T])
{
	__m256 wv[TILE_R];
	for (int r = 0; r < nr; r++)
		wv[r] = fk_load8(k, w[r], i);
	for (int t = 0; t < nt; t++) {
		const __m256 av = _mm256_loadu_ps(a[t] + i);
		for (int r = 0; r < nr; r++)
			acc[r][t] = _mm256_fmadd_ps(wv[r], av, acc[r][t]);
	}
}

/* The chunks at from, from + step, ... below to of nr rows x nt tokens
 * into s (kept in registers for the run). */
FLOAT_INLINE void fk_run(enum fkind k, int nr, int nt, const void *const *w, const float *const *a, int64_t from,
			 int64_t to, int64_t step, __m256 s[TILE_R][TILE_T])
{
	__m256 acc[TILE_R][TILE_T];
	for (int r = 0; r < nr; r++)
		for (int t = 0; t < nt; t++)
			acc[r][t] = s[r][t];
	for (int64_t i = from; i < to; i += step)
		fk_chunk(k, nr, nt, w, a, i, acc);
	for (int r = 0; r < nr; r++)
		for (int t = 0; t < nt; t++)
			s[r][t] = acc[r][t];
}

/* Values of a row per stretch (F32): the accumulator passes walk one
 * stretch of the rows and tokens (3 x 4 KiB of weights, 4 x 4 KiB of
 * activations) before the next, so each pass finds it in L1 - passes over
 * whole 2048-value rows fetched every line from L2 four times.  A multiple
 * of 32, so every chunk keeps its accumulator and its order. */
#define F32_STRETCH 1024

/* F32: nr rows x nt tokens of outputs, each of ggml's four accumulators
 * its chunks in order (one pass per accumulator over a stretch at a time),
 * then each output reduced as dot_f32 reduces it. */
FLOAT_INLINE void f32_block(int nr, int nt, const void *const *w, const float *const *a, int64_t n, float *out,
			    int64_t os)
{
	const int64_t ge = f32_group_end(n);
	__m256 s[4][TILE_R][TILE_T];
	for (int j = 0; j < 4; j++)
		for (int r = 0; r < nr; r++)
			for (int t = 0; t < nt; t++)
				s[j][r][t] = _mm256_setzero_ps();
	for (int64_t k0 = 0; k0 < ge; k0 += F32_STRETCH) {
		const int64_t k1 = k0 + F32_STRETCH < ge ? k0 + F32_STRETCH : ge;
		for (int j = 0; j < 4; j++)
			fk_run(FK_F32, nr, nt, w, a, k0 + 8 * j, k1, 32, s[j]);
	}
	for (int t = 0; t < nt; t++)
		for (int r = 0; r < nr; r++)
			out[t * os + r] = fk_tail(FK_F32, cpu_reduce4(s[0][r][t], s[1][r][t], s[2][r][t], s[3][r][t]),
						  w[r], a[t], ge, n);
}

/* cpu_hsum8 of four vectors at once, each sum's additions the same:
 * (t0 + t2) + (t1 + t3) of t = low half + high half. */
FLOAT_INLINE __m128 hsum8x4(__m256 v0, __m256 v1, __m256 v2, __m256 v3)
{
	const __m128 t0 = _mm_add_ps(_mm256_extractf128_ps(v0, 1), _mm256_castps256_ps128(v0));
	const __m128 t1 = _mm_add_ps(_mm256_extractf128_ps(v1, 1), _mm256_castps256_ps128(v1));
	const __m128 t2 = _mm_add_ps(_mm256_extractf128_ps(v2, 1), _mm256_castps256_ps128(v2));
	const __m128 t3 = _mm_add_ps(_mm256_extractf128_ps(v3, 1), _mm256_castps256_ps128(v3));
	/* (x0+x2, y0+y2, x1+x3, y1+y3) for the pairs (t0, t1) and (t2, t3) */
	const __m128 p01 = _mm_add_ps(_mm_unpacklo_ps(t0, t1), _mm_unpackhi_ps(t0, t1));
	const __m128 p23 = _mm_add_ps(_mm_unpacklo_ps(t2, t3), _mm_unpackhi_ps(t2, t3));
	return _mm_add_ps(_mm_movelh_ps(p01, p23), _mm_movehl_ps(p23, p01));
}

/* F16/BF16: nr rows x nt tokens of outputs in one walk along the rows,
 * then every output reduced as ordered_dot reduces it (four at a time by
 * hsum8x4).  Meanwhile the lines of [pf, pf + pf_bytes) are asked for
 * into L2, spread over the chunks (fk_tile's next tile). */
FLOAT_INLINE void ordered_block(enum fkind k, int nr, int nt, const void *const *w, const float *const *a,
				int64_t n, float *out, int64_t os, ptrdiff_t ahead, const char *pf,
				int64_t pf_bytes)
{
	const int64_t ce = n & ~(int64_t)7;
	const int64_t per = fk_ahead_per_chunk(pf_bytes, ce / 8);
	__m256 acc[TILE_R][TILE_T];
	for (int r = 0; r < nr; r++)
		for (int t = 0; t < nt; t++)
			acc[r][t] = _mm256_setzero_ps();
	/* One activation row (decode): the rows come from memory, TILE_R
	 * streams at once, which the hardware prefetcher does not follow
	 * soon enough - so fetch the block `ahead` bytes on (two blocks:
	 * its rows are contiguous) as one ascending sweep, nr lines per 32
	 * values (1-thread microbenchmark, 640-value F16 rows from memory:
	 * no prefetch 7.9 GB/s, a line per row at each row's position 12.2,
	 * the sweep 14.9; the old single-row kernel with two interleaved
	 * accumulators, one stream, 13.0). */
	const char *sweep = (const char *)w[0] + ahead;
	for (int64_t i = 0; i < ce; i += 8) {
		if (nt == 1 && i % 32 == 0) {
			for (int r = 0; r < nr; r++)
				_mm_prefetch(sweep + 64 * r, _MM_HINT_T0);
			sweep += 64 * nr;
		}
		fk_ahead_chunk(pf, pf_bytes, per, i / 8);
		fk_chunk(k, nr, nt, w, a, i, acc);
	}
	for (int r = 0; r < nr; r++) {
		if (nt == TILE_T) {
			float sum[TILE_T];
			_mm_storeu_ps(sum, hsum8x4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]));
			for (int t = 0; t < TILE_T; t++)
				out[t * os + r] = fk_tail(k, sum[t], w[r], a[t], ce, n);
			continue;
		}
		for (int t = 0; t < nt; t++)
			out[t * os + r] = fk_tail(k, cpu_hsum8(acc[r][t]), w[r], a[t], ce, n);
	}
}

FLOAT_INLINE void fk_block(enum fkind k, int nr, int nt, const void *const *w, const float *const *a, int64_t n,
			   float *out, int64_t os, ptrdiff_t ahead, const char *pf, int64_t pf_bytes)
{
	if (k == FK_F32)
		f32_block(nr, nt, w, a, n, out, os);
	else
		ordered_block(k, nr, nt, w, a, n, out, os, ahead, pf, pf_bytes);
}

/* One function per format and block shape (the shape a constant, so the
 * accumulators are registers), chosen per block by fk_tile. */
#define FK_BLOCK(kind, K, R, T)                                                                     \
	CPU_AVX2 static void blk_##kind##_##R##x##T(const void *const *w, const float *const *a,    \
						    int64_t n, float *out, int64_t os, ptrdiff_t ahead,  \
						    const char *pf, int64_t pf_bytes)                    \
	{                                                                                           \
		fk_block(K, R, T, w, a, n, out, os, ahead, pf, pf_bytes);                           \
	}
#define FK_BLOCKS(kind, K)                                                                           \
	FK_BLOCK(kind, K, 1, 1) FK_BLOCK(kind, K, 1, 2) FK_BLOCK(kind, K, 1, 3) FK_BLOCK(kind, K, 1, 4) \
	FK_BLOCK(kind, K, 2, 1) FK_BLOCK(kind, K, 2, 2) FK_BLOCK(kind, K, 2, 3) FK_BLOCK(kind, K, 2, 4) \
	FK_BLOCK(kind, K, 3, 1) FK_BLOCK(kind, K, 3, 2) FK_BLOCK(kind, K, 3, 3) FK_BLOCK(kind, K, 3, 4) \
	static void (*const blk_##kind[TILE_R][TILE_T])(const void *const *, const float *const *,    \
							 int64_t, float *, int64_t, ptrdiff_t,        \
							 const char *, int64_t) = {                   \
		{ blk_##kind##_1x1, blk_##kind##_1x2, blk_##kind##_1x3, blk_##kind##_1x4 },             \
		{ blk_##kind##_2x1, blk_##kind##_2x2, blk_##kind##_2x3, blk_##kind##_2x4 },             \
		{ blk_##kind##_3x1, blk_##kind##_3x2, blk_##kind##_3x3, blk_##kind##_3x4 },             \
	};

FK_BLOCKS(f32, FK_F32)
FK_BLOCKS(f16, FK_F16)
FK_BLOCKS(bf16, FK_BF16)

typedef void (*fk_block_fn)(const void *const *, const float *const *, int64_t, float *, int64_t, ptrdiff_t,
			    const char *, int64_t);

/* The tile: activation rows four at a time (the outer loop, so that the
 * tile's weight rows are what stays in L1), the weight rows three at a
 * time under them.  With several activation rows the F16/BF16 blocks
 * also ask for a slice each of the rows after the tile - the next tile's
 * (qdot_tile_in_place): a short batch is otherwise its rows' first
 * reader, waiting on memory for each line. */
static void fk_tile(const fk_block_fn blk[TILE_R][TILE_T], const void *w, size_t ws, int nw,
		    const void *act, size_t act_row, int n_act, int64_t n, float *out, int64_t os)
{
	struct fk_ahead ahead =
		fk_ahead_start(w, ws, nw, (int64_t)((n_act + TILE_T - 1) / TILE_T) * ((nw + TILE_R - 1) / TILE_R));
	if (n_act == 1)
		ahead.end = ahead.next; /* one row: the block's own sweep */
	for (int t0 = 0; t0 < n_act; t0 += TILE_T) {
		const int nt = n_act - t0 < TILE_T ? n_act - t0 : TILE_T;
		const float *a[TILE_T];
		for (int t = 0; t < nt; t++)
			a[t] = (const float *)((const char *)act + (size_t)(t0 + t) * act_row);
		for (int r0 = 0; r0 < nw; r0 += TILE_R) {
			const int nr = nw - r0 < TILE_R ? nw - r0 : TILE_R;
			const void *wr[TILE_R];
			for (int r = 0; r < nr; r++)
				wr[r] = (const char *)w + (size_t)(r0 + r) * ws;
			const char *pf;
			const int64_t pf_bytes = fk_ahead_take(&ahead, &pf);
			blk[nr - 1][nt - 1](wr, a, n, out + (int64_t)t0 * os + r0, os, (ptrdiff_t)(2 * TILE_R * ws),
					    pf, pf_bytes);
		}
	}
}

static void tile_f32(const void *w, size_t ws, int nw, const void *act, size_t act_row, int n_act, int64_t n,
		     float *out, int64_t os)
{
	fk_tile(blk_f32, w, ws, nw, act, act_row, n_act, n, out, os);
}

static void tile_f16(const void *w, size_t ws, int nw, const void *act, size_t act_row, int n_act, int64_t n,
		     float *out, int64_t os)
{
	fk_tile(blk_f16, w, ws, nw, act, act_row, n_act, n, out, os);
}

static void tile_bf16(const void *w, size_t ws, int nw, const void *act, size_t act_row, int n_act, int64_t n,
		      float *out, int64_t os)
{
	fk_tile(blk_bf16, w, ws, nw, act, act_row, n_act, n, out, os);
}

qdot_fn qdot__avx2_float_kernel(uint32_t wtype)
{
	switch (wtype) {
	case QTYPE_F32: return dot_f32;
	case QTYPE_F16: return dot_f16;
	case QTYPE_BF16: return dot_bf16;
	default: return NULL;
	}
}

qdot_tile_fn qdot__avx2_float_tile(uint32_t wtype, int64_t n, int *rows)
{
	qdot_tile_fn f;
	enum fkind k;
	switch (wtype) {
	case QTYPE_F32: f = tile_f32, k = FK_F32; break;
	case QTYPE_F16: f = tile_f16, k = FK_F16; break;
	case QTYPE_BF16: f = tile_bf16, k = FK_BF16; break;
	default: return NULL;
	}
	if (n <= 0)
		return NULL;
	/* as many rows as stay in QDOT_TILE_BYTES, a multiple of TILE_R where
	 * that is at least one block (else a 1-row block ends every tile);
	 * a longer row is a tile of one */
	int64_t fit = QDOT_TILE_BYTES / (n * (int64_t)fk_bytes(k));
	fit = fit < QDOT_TILE_ROWS ? fit : QDOT_TILE_ROWS;
	*rows = fit < 1 ? 1 : fit < TILE_R ? (int)fit : (int)(fit - fit % TILE_R);
	return f;
}

#else /* not x86 */

qdot_fn qdot__avx2_float_kernel(uint32_t wtype)
{
	(void)wtype;
	return NULL;
}

qdot_tile_fn qdot__avx2_float_tile(uint32_t wtype, int64_t n, int *rows)
{
	(void)wtype, (void)n, (void)rows;
	return NULL;
}

#endif
