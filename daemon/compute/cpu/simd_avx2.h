/* simd_avx2.h - AVX2+FMA building blocks shared by the CPU backend's dot
 * products (qdot_avx2.c), attention and element-wise ops, private to
 * compute/cpu/.
 *
 * Every function carries the target attribute (the project is not compiled
 * with -mavx2), so callers must check qdot_simd_active() first, as qdot_get()
 * does.  The arithmetic reproduces, operation for operation, what llama.cpp's
 * CPU backend computes in its AVX2 build (the reference flavour of
 * scripts/build-llama-cpp; see docs/reference.md): the same roundings in the
 * same order, so that results are bit-identical, not merely close.
 */
#ifndef SMK_COMPUTE_CPU_SIMD_AVX2_H
#define SMK_COMPUTE_CPU_SIMD_AVX2_H

#if defined(__x86_64__) || defined(__i386__)
#define CPU_HAVE_AVX2_CODE 1

#include <immintrin.h>

#define CPU_AVX2 __attribute__((target("avx2,fma,f16c")))

/* a*b + c rounded once, as the FMA instruction ggml's compiler emits for
 * `c += a*b` (GCC contracts by default when FMA is enabled). */
CPU_AVX2 static inline float cpu_fma_ss(float a, float b, float c)
{
	return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c)));
}

/* Sum of 4 lanes: (l0+l2)+(l1+l3).  ggml's hsum_float_4x4 tail. */
CPU_AVX2 static inline float cpu_hsum4(__m128 r)
{
	r = _mm_add_ps(r, _mm_movehl_ps(r, r));
	r = _mm_add_ss(r, _mm_movehdup_ps(r));
	return _mm_cvtss_f32(r);
}

/* Sum of 8 lanes: high half + low half, then cpu_hsum4 of the four sums.
 * ggml's hsum_float_8 (its quantised dot products) and the row sum of its
 * AVX2 softmax. */
CPU_AVX2 static inline float cpu_hsum8(__m256 x)
{
	return cpu_hsum4(_mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x)));
}

/* Four 8-lane accumulators to one float in ggml's GGML_F32x8_REDUCE order
 * (its F32/F16 dot products): (s0+s2)+(s1+s3) lane-wise, the 128-bit halves
 * added, then two horizontal adds: (l0+l1)+(l2+l3). */
CPU_AVX2 static inline float cpu_reduce4(__m256 s0, __m256 s1, __m256 s2, __m256 s3)
{
	const __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s2), _mm256_add_ps(s1, s3));
	const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
	const __m128 t1 = _mm_hadd_ps(t0, t0);
	return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
}

/* e^x for 8 floats, the polynomial approximation ggml's AVX2 softmax and
 * SiLU use (ggml_v_expf; max error about 1.5 ulp).  x = n*ln2 + b with n =
 * round(x/ln2) (the 1.5*2^23 shift rounds), ln2 split in two constants so
 * that b is exact; e^b by a degree-5 polynomial j with e^b = 1 + j; 2^n
 * built in the exponent bits (k).  |n| > 126 would overflow k, so those
 * lanes scale in two steps (s1, s2) and |n| > 192 saturates to 0 or inf:
 * e^-inf = 0 exactly, which the softmax relies on for masked positions.
 * Every operation and its rounding is kept exactly: a different but more
 * accurate exp would change the probabilities in their last bit. */
CPU_AVX2 static inline __m256 cpu_exp8(__m256 x)
{
	const __m256 shift = _mm256_set1_ps(0x1.8p23f);
	const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), shift);
	const __m256 n = _mm256_sub_ps(z, shift);
	const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
					  _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
	const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
	const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1))));
	const __m256 an = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
	const __m256 big = _mm256_cmp_ps(an, _mm256_set1_ps(126), _CMP_GT_OQ);
	const __m256 u = _mm256_mul_ps(b, b);
	const __m256 j = _mm256_fmadd_ps(
		_mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)),
				u,
				_mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
		u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
	if (!_mm256_movemask_ps(big))
		return _mm256_fmadd_ps(j, k, k);
	/* Out of range lanes: 2^n = s1 * s2, each factor representable. */
	const __m256i g = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
					   _mm256_set1_epi32((int)0x82000000u));
	const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
	const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
	const __m256 huge = _mm256_cmp_ps(an, _mm256_set1_ps(192), _CMP_GT_OQ);
	const __m256 mid = _mm256_or_ps(_mm256_and_ps(big, _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1)),
					_mm256_andnot_ps(big, _mm256_fmadd_ps(k, j, k)));
	return _mm256_or_ps(_mm256_and_ps(huge, _mm256_mul_ps(s1, s1)), _mm256_andnot_ps(huge, mid));
}

/* x / (1 + e^-x) for 8 floats, as ggml's AVX2 SiLU (0 - x, then the exp
 * above, an add and a true division). */
CPU_AVX2 static inline __m256 cpu_silu8(__m256 x)
{
	const __m256 e = cpu_exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
	return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

#endif /* x86 */
#endif
