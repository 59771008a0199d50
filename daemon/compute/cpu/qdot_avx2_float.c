/* qdot_avx2_float.c - AVX2+FMA+F16C dot products of float weight rows (F32,
 * F16, BF16) with float activations: the single-row kernels and the tiles
 * (qdot.h), private to compute/cpu/ through qdot_impl.h.
 *
 * A single-row kernel keeps a few 8-lane accumulators (F32: four, as
 * ggml; F16 and BF16: two - decode streams those rows from memory, where
 * two FMA chains keep up, and every tile then does half the passes: 10-15%
 * faster prefill than with four); accumulator j takes the 8-value chunks j, j + nacc, j +
 * 2 nacc, ... of the row, in order, one FMA each (F16 and BF16 also give
 * accumulator 0 the whole chunks left over after the last full group).
 * The accumulators are then reduced in the format's order and the last
 * values (fewer than 8, or fewer than 32 for F32) added one FMA at a time.
 * F32 is ggml's ggml_vec_dot_f32 operation for operation (bit-exact with
 * the reference build); F16/BF16 dot against the float activation itself,
 * where ggml rounds it to fp16/bf16 first (qdot.h).
 *
 * The tiles (prefill, batched decode) hold each output to the single
 * kernel's bits: an accumulator's chunks do not depend on the other
 * accumulators until the reduction, so a tile computes accumulator j of a
 * block of rows x tokens in one pass (TILE_R rows x TILE_T tokens of
 * accumulators in registers, each weight chunk converted once for TILE_T
 * tokens, each activation chunk loaded once for TILE_R rows), the passes
 * for j = 0 .. nacc-1 one after another, and then reduces every output
 * exactly as the single kernel does.  The weights stay where they are (no
 * unpacking): a tile is as many rows as fit QDOT_TILE_BYTES, so that they
 * stay in L1 while the activation rows stream past four at a time.
 */
#include "compute/cpu/qdot_impl.h"

#if defined(__x86_64__) || defined(__i386__)

#include <string.h>

#include "compute/cpu/simd_avx2.h"

#define FLOAT_INLINE CPU_AVX2 __attribute__((always_inline)) static inline

/* The float formats; a compile-time constant wherever it is passed, so
 * every switch below folds away. */
enum fkind { FK_F32, FK_F16, FK_BF16 };

FLOAT_INLINE int fk_nacc(enum fkind k)
{
	return k == FK_F32 ? 4 : 2;   /* see the top of the file */
}

/* Accumulator 0 takes the whole chunks after the last full group. */
FLOAT_INLINE bool fk_tail8(enum fkind k)
{
	return k != FK_F32;
}

static inline size_t fk_bytes(enum fkind k)
{
	return k == FK_F32 ? 4 : 2;   /* see the top of the file */
}

/* Values i..i+7 of row x as floats (both conversions are exact). */
FLOAT_INLINE __m256 fk_load8(enum fkind k, const void *x, int64_t i)
{
	switch (k) {
	case FK_F32:
		return _mm256_loadu_ps((const float *)x + i);
	case FK_F16:
		return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)x + i)));
	default:
		return _mm256_castsi256_ps(_mm256_slli_epi32(
			_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)x + i))), 16));
	}
}

FLOAT_INLINE float fk_value(enum fkind k, const void *x, int64_t i)
{
	uint16_t h;
	float v;
	switch (k) {
	case FK_F32:
		memcpy(&v, (const float *)x + i, 4);
		return v;
	case FK_F16:
		memcpy(&h, (const uint16_t *)x + i, 2);
		return _cvtsh_ss(h);
	default: {
		memcpy(&h, (const uint16_t *)x + i, 2);
		const uint32_t u = (uint32_t)h << 16;
		memcpy(&v, &u, 4);
		return v;
	}
	}
}

/* Where the grouped chunks end and the single values begin. */
FLOAT_INLINE int64_t fk_group_end(enum fkind k, int64_t n)
{
	return n - n % (8 * fk_nacc(k));
}

FLOAT_INLINE int64_t fk_chunk_end(enum fkind k, int64_t n)
{
	return fk_tail8(k) ? n & ~(int64_t)7 : fk_group_end(k, n);
}

/* The accumulators s[0..nacc) of row x reduced in the format's order, the
 * values from fk_chunk_end on added one FMA each (ggml's leftover loop
 * `sumf += x[i]*y[i]`, contracted by its -mfma build). */
FLOAT_INLINE float fk_finish(enum fkind k, const __m256 *s, const void *x, const float *a, int64_t n)
{
	float sum;
	switch (k) {
	case FK_F32:
		sum = cpu_reduce4(s[0], s[1], s[2], s[3]);
		break;
	default: /* F16, BF16 */
		sum = cpu_hsum8(_mm256_add_ps(s[0], s[1]));
		break;
	}
	for (int64_t i = fk_chunk_end(k, n); i < n; i++)
		sum = cpu_fma_ss(fk_value(k, x, i), a[i], sum);
	return sum;
}

/* ---- single rows ---------------------------------------------------------- */

FLOAT_INLINE float fk_dot(enum fkind k, const void *x, const float *a, int64_t n)
{
	const int nacc = fk_nacc(k);
	__m256 s[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps() };
	const int64_t ge = fk_group_end(k, n), ce = fk_chunk_end(k, n);
	int64_t i = 0;
	for (; i < ge; i += 8 * nacc) {
#pragma GCC unroll 4
		for (int j = 0; j < nacc; j++)
			s[j] = _mm256_fmadd_ps(fk_load8(k, x, i + 8 * j), _mm256_loadu_ps(a + i + 8 * j), s[j]);
	}
	for (; i < ce; i += 8)
		s[0] = _mm256_fmadd_ps(fk_load8(k, x, i), _mm256_loadu_ps(a + i), s[0]);
	return fk_finish(k, s, x, a, n);
}

CPU_AVX2 static float dot_f32(const void *w, const void *act, int64_t n)
{
	return fk_dot(FK_F32, w, act, n);
}

CPU_AVX2 static float dot_f16(const void *w, const void *act, int64_t n)
{
	return fk_dot(FK_F16, w, act, n);
}

CPU_AVX2 static float dot_bf16(const void *w, const void *act, int64_t n)
{
	return fk_dot(FK_BF16, w, act, n);
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

/* Accumulator j of nr rows x nt tokens (s[j][r][t]) takes the chunks at
 * from, from + step, ... below to. */
FLOAT_INLINE void fk_run(enum fkind k, int nr, int nt, int j, const void *const *w, const float *const *a,
			 int64_t from, int64_t to, int64_t step, __m256 s[4][TILE_R][TILE_T])
{
	__m256 acc[TILE_R][TILE_T];
	for (int r = 0; r < nr; r++)
		for (int t = 0; t < nt; t++)
			acc[r][t] = s[j][r][t];
	for (int64_t i = from; i < to; i += step)
		fk_chunk(k, nr, nt, w, a, i, acc);
	for (int r = 0; r < nr; r++)
		for (int t = 0; t < nt; t++)
			s[j][r][t] = acc[r][t];
}

/* Values of a row per stretch: the accumulator passes walk one stretch of
 * the rows and tokens (3 x 2 KiB of F16 weights, 4 x 4 KiB of
 * activations) before the next, so each pass finds it in L1 - passes over
 * whole 2048-value rows fetched every line from L2 four times (32 against
 * 52 GFLOPS for Gemma's FFN down projection, 1 thread, 128 tokens).  A
 * multiple of 32, so every chunk keeps its accumulator and its order. */
#define FK_STRETCH 1024

/* nr rows x nt tokens of outputs: each accumulator's chunks in the single
 * kernel's order (a stretch at a time, then accumulator 0's leftover
 * chunks), then each output reduced as fk_dot reduces it. */
FLOAT_INLINE void fk_block(enum fkind k, int nr, int nt, const void *const *w, const float *const *a,
			   int64_t n, float *out, int64_t os)
{
	const int nacc = fk_nacc(k);
	const int64_t ge = fk_group_end(k, n), ce = fk_chunk_end(k, n);
	__m256 s[4][TILE_R][TILE_T];
	for (int j = 0; j < nacc; j++)
		for (int r = 0; r < nr; r++)
			for (int t = 0; t < nt; t++)
				s[j][r][t] = _mm256_setzero_ps();
	for (int64_t k0 = 0; k0 < ge; k0 += FK_STRETCH) {
		const int64_t k1 = k0 + FK_STRETCH < ge ? k0 + FK_STRETCH : ge;
		for (int j = 0; j < nacc; j++)
			fk_run(k, nr, nt, j, w, a, k0 + 8 * j, k1, 8 * nacc, s);
	}
	fk_run(k, nr, nt, 0, w, a, ge, ce, 8, s);
	for (int t = 0; t < nt; t++)
		for (int r = 0; r < nr; r++) {
			const __m256 v[4] = { s[0][r][t], s[1][r][t], s[nacc > 2 ? 2 : 0][r][t],
					      s[nacc > 3 ? 3 : 0][r][t] };
			out[t * os + r] = fk_finish(k, v, w[r], a[t], n);
		}
}

/* One function per format and block shape (the shape a constant, so the
 * accumulators are registers), chosen per block by fk_tile. */
#define FK_BLOCK(kind, K, R, T)                                                                     \
	CPU_AVX2 static void blk_##kind##_##R##x##T(const void *const *w, const float *const *a,    \
						    int64_t n, float *out, int64_t os)              \
	{                                                                                           \
		fk_block(K, R, T, w, a, n, out, os);                                                \
	}
#define FK_BLOCKS(kind, K)                                                                           \
	FK_BLOCK(kind, K, 1, 1) FK_BLOCK(kind, K, 1, 2) FK_BLOCK(kind, K, 1, 3) FK_BLOCK(kind, K, 1, 4) \
	FK_BLOCK(kind, K, 2, 1) FK_BLOCK(kind, K, 2, 2) FK_BLOCK(kind, K, 2, 3) FK_BLOCK(kind, K, 2, 4) \
	FK_BLOCK(kind, K, 3, 1) FK_BLOCK(kind, K, 3, 2) FK_BLOCK(kind, K, 3, 3) FK_BLOCK(kind, K, 3, 4) \
	static void (*const blk_##kind[TILE_R][TILE_T])(const void *const *, const float *const *,    \
							 int64_t, float *, int64_t) = {               \
		{ blk_##kind##_1x1, blk_##kind##_1x2, blk_##kind##_1x3, blk_##kind##_1x4 },             \
		{ blk_##kind##_2x1, blk_##kind##_2x2, blk_##kind##_2x3, blk_##kind##_2x4 },             \
		{ blk_##kind##_3x1, blk_##kind##_3x2, blk_##kind##_3x3, blk_##kind##_3x4 },             \
	};

FK_BLOCKS(f32, FK_F32)
FK_BLOCKS(f16, FK_F16)
FK_BLOCKS(bf16, FK_BF16)

typedef void (*fk_block_fn)(const void *const *, const float *const *, int64_t, float *, int64_t);

/* The tile: activation rows four at a time (the outer loop, so that the
 * tile's weight rows are what stays in L1), the weight rows three at a
 * time under them. */
static void fk_tile(const fk_block_fn blk[TILE_R][TILE_T], const void *w, size_t ws, int nw,
		    const void *act, size_t act_row, int n_act, int64_t n, float *out, int64_t os)
{
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
			blk[nr - 1][nt - 1](wr, a, n, out + (int64_t)t0 * os + r0, os);
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
	/* as many rows as stay in QDOT_TILE_BYTES; a longer row is a tile of one */
	const int64_t fit = QDOT_TILE_BYTES / (n * (int64_t)fk_bytes(k));
	*rows = fit < 1 ? 1 : fit < QDOT_TILE_ROWS ? (int)fit : QDOT_TILE_ROWS;
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
