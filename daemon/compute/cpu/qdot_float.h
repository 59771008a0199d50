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

#endif /* CPU_HAVE_AVX2_CODE */
#endif
