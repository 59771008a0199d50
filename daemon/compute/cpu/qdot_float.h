/* qdot_float.h - private to the float-weight kernels (qdot_avx2_float.c,
 * and the AVX-512 tiles of qdot_avx512.c): the formats, their loads and
 * the single kernels' tail, one copy for both.
 *
 * AVX2-attributed like simd_avx2.h; reached only after the CPU check.
 */
#ifndef SMK_COMPUTE_CPU_QDOT_FLOAT_H
#define SMK_COMPUTE_CPU_QDOT_FLOAT_H

#include "compute/cpu/qdot_impl.h"
#include "compute/cpu/simd_avx2.h"

#ifdef CPU_HAVE_AVX2_CODE

#include <string.h>

#define FLOAT_INLINE CPU_AVX2 __attribute__((always_inline)) static inline

/* The float formats; a compile-time constant wherever it is passed, so
 * every switch below folds away. */
enum fkind { FK_F32, FK_F16, FK_BF16 };

static inline size_t fk_bytes(enum fkind k)
{
	return k == FK_F32 ? 4 : 2;
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

/* sum plus the values of row x from i0 on, one FMA each (ggml's leftover
 * loop `sumf += x[i]*y[i]`, contracted by its -mfma build). */
FLOAT_INLINE float fk_tail(enum fkind k, float sum, const void *x, const float *a, int64_t i0, int64_t n)
{
	for (int64_t i = i0; i < n; i++)
		sum = cpu_fma_ss(fk_value(k, x, i), a[i], sum);
	return sum;
}

/* The float tiles' request for the next tile's rows (qdot_tile_in_place):
 * the nw rows after the tile's, in slices of whole lines, one per block
 * of the tile, each block asking for its slice spread over its chunks. */
struct fk_ahead {
	const char *next, *end; /* what is left to ask for */
	int64_t slice;          /* bytes a block */
};

static inline struct fk_ahead fk_ahead_start(const void *w, size_t ws, int nw, int64_t blocks)
{
	const char *next = (const char *)w + (size_t)nw * ws;
	return (struct fk_ahead){ next, next + (size_t)nw * ws,
				  ((int64_t)((size_t)nw * ws) / blocks + 63) & ~(int64_t)63 };
}

/* The next block's slice: its start in *pf, its bytes returned. */
static inline int64_t fk_ahead_take(struct fk_ahead *f, const char **pf)
{
	const int64_t left = f->end - f->next, bytes = f->slice < left ? f->slice : left;
	*pf = f->next;
	f->next += bytes;
	return bytes;
}

/* Lines a chunk asks for, to cover pf_bytes in `chunks` chunks. */
FLOAT_INLINE int64_t fk_ahead_per_chunk(int64_t pf_bytes, int64_t chunks)
{
	return chunks ? (pf_bytes / 64 + chunks - 1) / chunks : 0;
}

/* Chunk c's lines of [pf, pf + pf_bytes), per lines a chunk, into L2. */
FLOAT_INLINE void fk_ahead_chunk(const char *pf, int64_t pf_bytes, int64_t per, int64_t c)
{
	for (int64_t q = 0, o = c * per * 64; q < per && o < pf_bytes; q++, o += 64)
		_mm_prefetch(pf + o, _MM_HINT_T1);
}

#endif /* CPU_HAVE_AVX2_CODE */
#endif
