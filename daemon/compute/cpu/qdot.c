/* qdot.c - kernel dispatch and activation preparation for the dot products.
 *
 * The CPU check runs once (first qdot_get) and is cached: AVX-512 (F, BW,
 * VL, DQ, VNNI) tiles where the CPU has them, and there the VNNI variants
 * of some AVX2 K-quant kernels (the same bits), AVX2+FMA+F16C kernels for
 * the rest, else scalar.  SMOKE_CPU=avx2 stops at AVX2; SMOKE_CPU=scalar
 * (or the older SMOKE_NO_SIMD=1) in the environment or
 * qdot_force_scalar(true) pins the scalar kernels.  qdot_cpu_check() says
 * whether SMOKE_CPU names a choice this CPU and build can honour.  The
 * activation quantisers run once per activation row (not per weight row);
 * the prepared bytes never depend on which kernels were picked: the Q8_0/
 * Q8_1 one has an AVX2 twin held to the scalar bytes by test_qtype
 * (prepare_simd_equals_scalar), and so has the Q8_K one.
 *
 * No FMA contraction in this file: with -march=native the compiler would
 * fuse x*id + 1.5*2^23 (the rounding trick below) into one FMA, which
 * rounds x*id differently from ggml's separate multiply and add.
 */
#pragma GCC optimize("fp-contract=off")

#include "compute/cpu/qdot_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/fp16.h"

/* ---- dispatch ----------------------------------------------------------- */

/* The kernel levels, each including the one below. */
enum { ISA_SCALAR, ISA_AVX2, ISA_AVX512 };

/* -1: not probed yet; else the best ISA_* level the CPU has, capped by
 * SMOKE_CPU / SMOKE_NO_SIMD. */
static int qdot_hw_state = -1;
static bool qdot_forced_scalar;

/* -1: not read yet; else whether SMOKE_EXACT=1 asks for llama.cpp's
 * order everywhere (no block order); qdot_force_exact (tests) overrides. */
static int qdot_exact_state = -1;
static int qdot_forced_exact = -1;

static bool qdot_cpu_has(const char *feature)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	if (!strcmp(feature, "avx2"))
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
		       __builtin_cpu_supports("f16c");
	/* what qdot_avx512.c's target attribute asks for (libgcc reports
	 * AVX-512 only where the OS saves the ZMM state) */
	if (!strcmp(feature, "avx512"))
		return qdot_cpu_has("avx2") && __builtin_cpu_supports("avx512f") &&
		       __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
		       __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
#endif
	(void)feature;
	return false;
}

static int qdot_hw_level(void)
{
	int s = __atomic_load_n(&qdot_hw_state, __ATOMIC_ACQUIRE);
	if (s >= 0)
		return s;
	int level = qdot_cpu_has("avx512") ? ISA_AVX512 : qdot_cpu_has("avx2") ? ISA_AVX2 : ISA_SCALAR;
	const char *env = getenv("SMOKE_NO_SIMD");
	if (env && *env && strcmp(env, "0") != 0)
		level = ISA_SCALAR;
	env = getenv("SMOKE_CPU");
	if (env && strcmp(env, "scalar") == 0)
		level = ISA_SCALAR;
	else if (env && strcmp(env, "avx2") == 0 && level > ISA_AVX2)
		level = ISA_AVX2;
	/* Racing first callers compute the same answer; either store wins. */
	__atomic_store_n(&qdot_hw_state, level, __ATOMIC_RELEASE);
	return level;
}

static int qdot_cpu_choice_check(char *why, size_t len)
{
	const char *env = getenv("SMOKE_CPU");
	if (!env || !*env || !strcmp(env, "auto") || !strcmp(env, "scalar"))
		return 0;
	if (!strcmp(env, "avx2")) {
		if (qdot_cpu_has("avx2"))
			return 0;
		snprintf(why, len, "SMOKE_CPU=avx2: this CPU lacks AVX2, FMA or F16C "
			 "(use SMOKE_CPU=scalar or leave it unset)");
		return -1;
	}
	if (!strcmp(env, "avx512")) {
		if (qdot_cpu_has("avx512"))
			return 0;
		snprintf(why, len, "SMOKE_CPU=avx512: this CPU lacks one of AVX-512 F, BW, VL, DQ "
			 "and VNNI (use SMOKE_CPU=avx2, scalar, or leave it unset)");
		return -1;
	}
	snprintf(why, len, "SMOKE_CPU must be scalar, avx2 or avx512 (or unset), not '%.32s'", env);
	return -1;
}

/* SMOKE_EXACT: unset, empty, 0 or 1. */
static int qdot_exact_check(char *why, size_t len)
{
	const char *env = getenv("SMOKE_EXACT");
	if (!env || !*env || !strcmp(env, "0") || !strcmp(env, "1"))
		return 0;
	snprintf(why, len, "SMOKE_EXACT must be 0 or 1 (or unset), not '%.32s'", env);
	return -1;
}

static bool qdot_exact(void)
{
	const int forced = __atomic_load_n(&qdot_forced_exact, __ATOMIC_RELAXED);
	if (forced >= 0)
		return forced;
	int s = __atomic_load_n(&qdot_exact_state, __ATOMIC_ACQUIRE);
	if (s < 0) {
		const char *env = getenv("SMOKE_EXACT");
		s = env && !strcmp(env, "1");
		__atomic_store_n(&qdot_exact_state, s, __ATOMIC_RELEASE);
	}
	return s;
}

void qdot_force_exact(int on)
{
	__atomic_store_n(&qdot_forced_exact, on < 0 ? -1 : on > 0, __ATOMIC_RELAXED);
}

bool qdot_block_order(uint32_t wtype)
{
	return (wtype == QTYPE_Q4_K || wtype == QTYPE_Q5_K || wtype == QTYPE_Q6_K) && qdot_simd_active() &&
	       qdot_hw_level() >= ISA_AVX512 && !qdot_exact();
}

qdot_fn qdot_get_scalar_block_order(uint32_t wtype)
{
	return qdot__scalar_block_kernel(wtype);
}

bool qdot_simd_active(void)
{
	return qdot_hw_level() >= ISA_AVX2 && !__atomic_load_n(&qdot_forced_scalar, __ATOMIC_RELAXED);
}

const char *qdot_isa(void)
{
	if (!qdot_simd_active())
		return "scalar";
	return qdot_hw_level() >= ISA_AVX512 ? "avx512" : "avx2";
}

void qdot_force_scalar(bool on)
{
	__atomic_store_n(&qdot_forced_scalar, on, __ATOMIC_RELAXED);
}

int qdot_cpu_check(char *why, size_t len)
{
	return qdot_cpu_choice_check(why, len) ? -1 : qdot_exact_check(why, len);
}

qdot_fn qdot_get_scalar(uint32_t wtype)
{
	return qdot__scalar_kernel(wtype);
}

qdot_fn qdot_get(uint32_t wtype)
{
	if (qdot_block_order(wtype))
		return qdot__avx512_kblock_dot(wtype);
	if (qdot_simd_active()) {
		qdot_fn f = qdot_hw_level() >= ISA_AVX512 ? qdot__avx512_kernel(wtype) : NULL;
		if (!f)
			f = qdot__avx2_kernel(wtype);
		if (!f)
			f = qdot__avx2_float_kernel(wtype);
		if (f)
			return f;
	}
	return qdot__scalar_kernel(wtype);
}

qdot4_fn qdot_get4(uint32_t wtype)
{
	/* No scalar version: with scalar kernels the single-row loop is the
	 * reference path and costs nothing extra. */
	if (!qdot_simd_active() || qdot_block_order(wtype))
		return NULL; /* the block order's tile takes every batch */
	qdot4_fn f = qdot_hw_level() >= ISA_AVX512 ? qdot__avx512_vnni_kernel4(wtype) : NULL;
	return f ? f : qdot__avx2_kernel4(wtype);
}

qdot_rows4_fn qdot_get_rows4(uint32_t wtype)
{
	if (!qdot_simd_active())
		return NULL;
	qdot_rows4_fn f = qdot_hw_level() >= ISA_AVX512 ? qdot__avx512_rows4(wtype) : NULL;
	return f ? f : qdot__avx2_rows4(wtype);
}

qdot_tile_fn qdot_get_tile(uint32_t wtype, int64_t n, int *rows)
{
	if (!qdot_simd_active())
		return NULL;
	if (qdot_block_order(wtype))
		return qdot__avx512_kblock_tile(wtype, n, rows);
	qdot_tile_fn f = qdot_hw_level() >= ISA_AVX512 ? qdot__avx512_tile(wtype, n, rows) : NULL;
	if (!f)
		f = qdot__avx2_tile(wtype, n, rows);
	return f ? f : qdot__avx2_float_tile(wtype, n, rows);
}

/* Whether the tiles (and four-row kernels) of wtype are the AVX-512
 * 32-value ones, which read a side after each activation row - whatever
 * n: a row too long for any tile never has its side asked for, and
 * counting it keeps qdot_tile_act_row_bytes growing with n, a bound for
 * buffers. */
static bool tile_wants_side(uint32_t wtype)
{
	return qdot_simd_active() && qdot_hw_level() >= ISA_AVX512 &&
	       (wtype == QTYPE_Q4_0 || wtype == QTYPE_Q5_0 || wtype == QTYPE_Q8_0);
}

size_t qdot_tile_act_row_bytes(uint32_t wtype, int64_t n)
{
	const size_t b = qdot_act_row_bytes(wtype, n);
	if (!b || !tile_wants_side(wtype))
		return b;
	const int64_t nb = (n + QTYPE_QK - 1) / QTYPE_QK;
	return QDOT_Q8_0_SIDE(nb) + QDOT_Q8_0_SIDE_BYTES(nb);
}

void qdot_prepare_tile(uint32_t wtype, const float *x, void *rows, size_t act_row, int t, int64_t n)
{
	char *row = (char *)rows + (size_t)t * act_row;
	qdot_prepare(wtype, x, row, n);
	if (tile_wants_side(wtype)) {
		const int64_t nb = n / QTYPE_QK;
		char *pair = (char *)rows + (size_t)(t & ~1) * act_row;
		qdot__avx512_prepare_side(row, nb, pair + QDOT_Q8_0_SIDE(nb), t & 1);
	}
}

bool qdot_tile_for_one_row(uint32_t wtype)
{
	return wtype == QTYPE_F16 || wtype == QTYPE_BF16;
}

bool qdot_tile_in_place(uint32_t wtype)
{
	return wtype == QTYPE_F16 || wtype == QTYPE_BF16;
}

/* ---- activation formats ------------------------------------------------- */

uint32_t qdot_act_type(uint32_t wtype)
{
	switch (wtype) {
	case QTYPE_F32:
	case QTYPE_F16:
	case QTYPE_BF16:
		return QTYPE_F32;
	case QTYPE_Q4_0:
	case QTYPE_Q5_0:
	case QTYPE_Q8_0:
	case QTYPE_MXFP4:
		return QTYPE_Q8_0;
	case QTYPE_Q4_1:
	case QTYPE_Q5_1:
		return QTYPE_Q8_1;
	case QTYPE_Q2_K:
	case QTYPE_Q3_K:
	case QTYPE_Q4_K:
	case QTYPE_Q5_K:
	case QTYPE_Q6_K:
		return QTYPE_Q8_K;
	default:
		return UINT32_MAX;
	}
}

size_t qdot_act_row_bytes(uint32_t wtype, int64_t n)
{
	const struct qtype_info *a = qtype_info(qdot_act_type(wtype));
	if (!a || n < 0)
		return 0;
	const uint64_t blocks = ((uint64_t)n + a->block_elems - 1) / a->block_elems;
	return (size_t)(blocks * a->block_bytes);
}

/* Round to nearest, ties to even, exactly as ggml's nearest_int(): adding
 * 1.5*2^23 leaves the rounded integer in the low mantissa bits.  Valid for
 * |v| < 2^22 (ours are within +-128); NaN gives some value, never UB, where
 * a float->int cast would be undefined. */
static inline int qdot_round_even(float v)
{
	float t = v + 12582912.f;
	int32_t i;
	memcpy(&i, &t, sizeof(i));
	return (i & 0x007fffff) - 0x00400000;
}

static inline int8_t qdot_sat8(int v)
{
	return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
}

/* One 32-value block as llama.cpp's x86 quantize_row_q8_0/q8_1 (see
 * qdot.h): returns the unrounded float d; the fp16 of it is what the dot
 * products use.  id = 127/amax is a separate float, so q is not exactly
 * x/fp16(d) rounded. */
static float qdot_quantize_32(const float *x, int8_t *qs)
{
	float amax = 0.0f;
	for (int j = 0; j < QTYPE_QK; j++) {
		float ax = fabsf(x[j]);
		amax = ax > amax ? ax : amax;
	}
	const float id = amax != 0.0f ? 127.f / amax : 0.0f;
	for (int j = 0; j < QTYPE_QK; j++)
		qs[j] = qdot_sat8(qdot_round_even(x[j] * id));
	return amax / 127.f;
}

#if defined(__x86_64__) || defined(__i386__)
#include "compute/cpu/simd_avx2.h"

/* The largest |x| of eight lanes' maxima. */
CPU_AVX2 static inline float qdot_hmax8(__m256 m)
{
	__m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
	m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
	m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
	return _mm_cvtss_f32(m4);
}

/* 32 values x * scale, rounded (1.5 * 2^23) and packed saturating to
 * int8 into qs. */
CPU_AVX2 static inline void qdot_round_pack_32(const float *x, __m256 scale, int8_t *qs)
{
	const __m256 magic = _mm256_set1_ps(12582912.f);
	const __m256i mant = _mm256_set1_epi32(0x007fffff), half = _mm256_set1_epi32(0x00400000);
	__m256i q[4];
	for (int k = 0; k < 4; k++) {
		const __m256 t = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), scale), magic);
		q[k] = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(t), mant), half);
	}
	/* packs work within 128-bit halves: dwords come out as blocks of four
	 * values 0, 8, 16, 24 | 4, 12, 20, 28, put back in order */
	const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
	_mm256_storeu_si256((__m256i *)qs, _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

/* qdot_quantize_32 eight values at a time, the same bytes: amax as the
 * scalar loop takes it (max_ps(a, m) is `a > m ? a : m`, so a NaN is
 * skipped alike, and the maximum of the rest does not depend on the
 * order), the same x * id and the same 1.5 * 2^23 rounding (two separate
 * roundings: this file is compiled without FMA contraction), and packs
 * saturating to int8 as qdot_sat8 does.  A prefill quantises every
 * activation row once per matrix; scalar, that was 3-4% of a 1-thread
 * Q8_0 prefill. */
CPU_AVX2 static float qdot_quantize_32_avx2(const float *x, int8_t *qs)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	__m256 m = _mm256_setzero_ps();
	for (int k = 0; k < 4; k++)
		m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * k)), m);
	const float amax = qdot_hmax8(m);
	const float id = amax != 0.0f ? 127.f / amax : 0.0f;
	qdot_round_pack_32(x, _mm256_set1_ps(id), qs);
	return amax / 127.f;
}
#endif

/* One block's quants and unrounded d, by the AVX2 code where the kernels
 * are AVX2 ones (the same bytes either way). */
static inline float qdot_quantize_block(bool simd, const float *x, int8_t *qs)
{
#if defined(__x86_64__) || defined(__i386__)
	if (simd)
		return qdot_quantize_32_avx2(x, qs);
#endif
	(void)simd;
	return qdot_quantize_32(x, qs);
}

static void qdot_quantize_q8_0(const float *x, struct qtype_block_q8_0 *y, int64_t n)
{
	const bool simd = qdot_simd_active();
	for (int64_t i = 0; i < n / QTYPE_QK; i++, x += QTYPE_QK) {
		struct qtype_block_q8_0 b;
		b.d = fp32_to_fp16(qdot_quantize_block(simd, x, b.qs));
		memcpy(&y[i], &b, sizeof(b));
	}
}

/* Q8_1: Q8_0 plus s = d * sum(q), with the unrounded d, stored as fp16. */
static void qdot_quantize_q8_1(const float *x, struct qtype_block_q8_1 *y, int64_t n)
{
	const bool simd = qdot_simd_active();
	for (int64_t i = 0; i < n / QTYPE_QK; i++, x += QTYPE_QK) {
		struct qtype_block_q8_1 b;
		const float d = qdot_quantize_block(simd, x, b.qs);
		int sum = 0;
		for (int j = 0; j < QTYPE_QK; j++)
			sum += b.qs[j];
		b.d = fp32_to_fp16(d);
		b.s = fp32_to_fp16(d * (float)sum);
		memcpy(&y[i], &b, sizeof(b));
	}
}

/* One Q8_K block's bsums: the sums of its 16 groups of 16 quants. */
static void qdot_q8_K_bsums(struct qtype_block_q8_K *b)
{
	for (int g = 0; g < 16; g++) {
		int s = 0;
		for (int l = 0; l < 16; l++)
			s += b->qs[16 * g + l];
		b->bsums[g] = (int16_t)s;
	}
}

#if defined(__x86_64__) || defined(__i386__)
/* One Q8_K block as the scalar loop below makes it, the same bytes: the
 * block's largest |x| (max_ps skips a NaN as `ax > amax` does, and a
 * maximum does not depend on the order), then the value of the first
 * element that has it - its sign gives the scale's - found by comparing;
 * the same iscale * x and 1.5 * 2^23 rounding (no FMA contraction here);
 * packs saturating as min(v, 127) and qdot_sat8 do; the bsums from the
 * quants, exact in any order.  Scalar, Q8_K was 3% of the default
 * model's 1-thread pp512 (its ffn_down takes Q8_K rows of 2048). */
CPU_AVX2 static void qdot_quantize_q8_K_avx2(const float *x, struct qtype_block_q8_K *b)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	__m256 m = _mm256_setzero_ps();
	for (int k = 0; k < QTYPE_QK_K; k += 8)
		m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)), m);
	const float amax = qdot_hmax8(m);
	if (amax == 0.0f) {
		memset(b, 0, sizeof(*b));
		return;
	}
	const __m256 va = _mm256_set1_ps(amax);
	float max = 0.0f;
	for (int k = 0; k < QTYPE_QK_K; k += 8) {
		const int hit = _mm256_movemask_ps(
			_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)), va, _CMP_EQ_OQ));
		if (hit) {
			max = x[k + __builtin_ctz((unsigned)hit)];
			break;
		}
	}
	const float iscale = -127.f / max;
	for (int k = 0; k < QTYPE_QK_K; k += 32)
		qdot_round_pack_32(x + k, _mm256_set1_ps(iscale), b->qs + k);
	qdot_q8_K_bsums(b);
	b->d = 1.0f / iscale;
}
#endif

/* Q8_K as ggml's quantize_row_q8_K_ref (see qdot.h). */
static void qdot_quantize_q8_K(const float *x, struct qtype_block_q8_K *y, int64_t n)
{
#if defined(__x86_64__) || defined(__i386__)
	if (qdot_simd_active()) {
		for (int64_t i = 0; i < n / QTYPE_QK_K; i++, x += QTYPE_QK_K)
			qdot_quantize_q8_K_avx2(x, &y[i]);
		return;
	}
#endif
	for (int64_t i = 0; i < n / QTYPE_QK_K; i++, x += QTYPE_QK_K) {
		struct qtype_block_q8_K b;
		float max = 0.0f, amax = 0.0f;
		for (int j = 0; j < QTYPE_QK_K; j++) {
			float ax = fabsf(x[j]);
			if (ax > amax) {
				amax = ax;
				max = x[j];
			}
		}
		if (amax == 0.0f) {
			/* ggml leaves bsums unwritten here; d = 0 makes them
			 * irrelevant, but zeros keep the output deterministic. */
			memset(&b, 0, sizeof(b));
			memcpy(&y[i], &b, sizeof(b));
			continue;
		}
		const float iscale = -127.f / max;
		for (int j = 0; j < QTYPE_QK_K; j++) {
			int v = qdot_round_even(iscale * x[j]);
			b.qs[j] = qdot_sat8(v < 127 ? v : 127);
		}
		qdot_q8_K_bsums(&b);
		b.d = 1.0f / iscale;
		memcpy(&y[i], &b, sizeof(b));
	}
}

void qdot_prepare(uint32_t wtype, const float *x, void *act, int64_t n)
{
	switch (qdot_act_type(wtype)) {
	case QTYPE_F32:
		memcpy(act, x, (size_t)n * sizeof(float));
		break;
	case QTYPE_Q8_0:
		qdot_quantize_q8_0(x, act, n);
		break;
	case QTYPE_Q8_1:
		qdot_quantize_q8_1(x, act, n);
		break;
	case QTYPE_Q8_K:
		qdot_quantize_q8_K(x, act, n);
		break;
	default:
		break;
	}
}

/* ---- row decode --------------------------------------------------------- */

void qdot_dequant_row(uint32_t type, const void *src, float *dst, int64_t n)
{
	if (qdot_simd_active() && qdot__avx2_dequant_row(type, src, dst, n))
		return;
	const struct qtype_info *t = qtype_info(type);
	if (t && t->dequant_row)
		t->dequant_row(src, dst, n);
}
