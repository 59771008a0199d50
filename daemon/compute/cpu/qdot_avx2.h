/* qdot_avx2.h - private to the AVX2 dot-product files (qdot_avx2.c,
 * qdot_avx2_k23.c) and the AVX-512 ones built on them (qdot_avx512.c, the
 * VNNI four-row kernel in qdot_avx2.c): the building blocks they share.
 *
 * Everything here carries the AVX2 target attribute (see simd_avx2.h) and
 * is reached only after qdot.c's CPU check.
 */
#ifndef SMK_COMPUTE_CPU_QDOT_AVX2_H
#define SMK_COMPUTE_CPU_QDOT_AVX2_H

#include "compute/cpu/qdot_impl.h"
#include "compute/cpu/simd_avx2.h"

#ifdef CPU_HAVE_AVX2_CODE

#include <stdbool.h>
#include <stddef.h>

/* Reductions (cpu_hsum8, cpu_hsum4, cpu_reduce4) come from simd_avx2.h. */
#define QDOT_AVX2 CPU_AVX2

/* The AVX-512 + VNNI target: qdot_avx512.c's passes, and the four-row
 * decode kernel in qdot_avx2.c that inlines the AVX2 unpackers. */
#define QDOT_AVX512 \
	__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

/* For the several-activation and tile kernels, whose `na` must be a
 * compile-time constant in every instance (see qdot_avx2.c). */
#define QDOT4_INLINE QDOT_AVX2 __attribute__((always_inline)) static inline

/* Software prefetch distance for the weight stream.  A single thread
 * streaming a large matrix waits on DRAM latency between hardware-prefetch
 * ramps; asking for the lines 512 bytes ahead (measured against 256 and
 * 1024 on Q4_K) lifted 64 MB throughput by 10-60% on the first development
 * VM (Zen 3).  On Zen 4, 2 KiB: the 8B-shaped model's Q4_K/Q6_K decode
 * +4.5% at 1 thread (5 alternating pairs, all won), +3-9% at 2 (3 of 3);
 * the default and Q8_0 models' decode and prefill the same (+-2%).
 * Prefetches never fault, so running past the end of a row is harmless. */
#define QDOT_PREFETCH 2048

/* Prefetch the `bytes` bytes starting QDOT_PREFETCH after p.
 *
 * Always inlined: called from an always_inline helper of the AVX-512
 * target, a plain static inline of this one was not inlined, and GCC
 * deleted the call outright (a function with no side effects whose
 * result goes unused) - session 18 found that the exact Q4_K kernels,
 * the four-row (rows4), four-activation (x4) and block-order kernels had
 * no prefetch at all, though they asked for one.  Each was measured with
 * it once it worked: the block order's Q6_K decode +6% (it stays; its
 * long rows, ffn_down, went 14 -> 19 GB/s); the exact Q4_K kernel -7%,
 * the rows4 kernels -5% (the default model's decode), the block order's
 * Q4_K/Q5_K -6%: those calls were removed, leaving the code as it ran
 * when it was tuned.  Which streams want a software prefetch on Zen 4 is
 * a per-kernel measurement, not a rule. */
QDOT_AVX2 __attribute__((always_inline)) static inline void prefetch_ahead(const void *p, size_t bytes)
{
	const char *c = (const char *)p + QDOT_PREFETCH;
	for (size_t off = 0; off < bytes; off += 64)
		_mm_prefetch(c + off, _MM_HINT_T0);
}

/* fp16 -> float (exact). */
QDOT_AVX2 static inline float h2f(uint16_t h)
{
	return _cvtsh_ss(h);
}

QDOT_AVX2 static inline __m256i load256(const void *p)
{
	return _mm256_loadu_si256((const __m256i *)p);
}

/* Scales k and k+1 of a 16-byte int8 vector as 16 int16 lanes (8 each):
 * one 32-value chunk spans two 16-value scale groups (Q2_K, Q3_K, Q6_K;
 * ggml's get_scale_shuffle_q3k gives the same lanes). */
QDOT_AVX2 static inline __m256i k_scale_pair(__m128i sc, int k)
{
	const __m128i shuf = _mm_set_epi64x(0x0101010101010101LL * (2 * k + 1),
					    0x0101010101010101LL * (2 * k));
	return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, shuf));
}

/* The 8 (scale, min) pairs of a Q4_K/Q5_K block as 16 int16 lanes: scales in
 * lanes 0..7, mins in lanes 8..15 (ggml's utmp shuffle, 32 bits at a time). */
QDOT_AVX2 static inline __m256i k4_scales_mins(const uint8_t *scales)
{
	uint32_t u[4];
	memcpy(u, scales, 12);
	const uint32_t m1 = 0x3f3f3f3f, m2 = 0x0f0f0f0f, m3 = 0x03030303;
	u[3] = ((u[2] >> 4) & m2) | (((u[1] >> 6) & m3) << 4);
	const uint32_t t = u[1] & m1;
	u[1] = (u[2] & m2) | (((u[0] >> 6) & m3) << 4);
	u[2] = t;
	u[0] &= m1;
	/* u[0..1]: scales 0..7, u[2..3]: mins 0..7, one byte each */
	return _mm256_cvtepu8_epi16(_mm_set_epi32((int)u[3], (int)u[2], (int)u[1], (int)u[0]));
}

/* Broadcast int16 lane k of a 128-bit register duplicated in both halves. */
#define BCAST16(v, k) \
	_mm256_shuffle_epi8((v), _mm256_set1_epi16((short)(((2 * (k) + 1) << 8) | (2 * (k)))))

/* Rows of n values per K-quant tile whose unpacked super-blocks take
 * blk_bytes each: into *rows, and 1; 0 where not even one row fits
 * QDOT_TILE_BYTES (the caller then has no tile). */
static inline int tile_k_rows(size_t blk_bytes, int64_t n, int *rows)
{
	const int64_t nb = n / QTYPE_QK_K;
	if (nb <= 0)
		return 0;
	const int64_t fit = QDOT_TILE_BYTES / ((int64_t)blk_bytes * nb);
	if (fit < 1)
		return 0;
	*rows = fit < QDOT_TILE_ROWS ? (int)fit : QDOT_TILE_ROWS;
	return 1;
}

/* ---- the tiles' unpacked weights (qdot_avx2.c unpacks, qdot_avx2.c and
 * qdot_avx512.c run the passes over them) ------------------------------- */

/* One unpacked block of a 32-value format. */
struct tile_blk {
	__m256i q, aq; /* the 32 quants as signed bytes; their absolute values */
};

/* The unpacked weight rows, x[r] (blocks), d[r] (scales), m[r] (mins). */
struct tq_rows {
	const struct tile_blk *x[QDOT_TILE_ROWS];
	const float *d[QDOT_TILE_ROWS], *m[QDOT_TILE_ROWS];
};

/* One unpacked Q4_K or Q5_K super-block (Q5_K's 5th bit merged into the
 * quant bytes). */
struct tile_k4 {
	__m256i q[8];  /* sub-block pairs: q[2j] low nibbles, q[2j + 1] high */
	__m256i sc[8]; /* sub-block k's scale in every int16 lane (BCAST16) */
	__m256i ms;    /* k4_scales_mins */
	float d, dmin; /* the block's fp16 d and dmin as floats */
	float pad[6];
};

/* One unpacked Q6_K super-block. */
struct tile_k6 {
	__m256i q[8];  /* q[4h + k]: 32 quants of chunk k of half h */
	__m256i sc[8]; /* k_scale_pair(sc, k) */
	__m256i sc16;  /* the 16 scales as int16 */
	float d;       /* the block's fp16 d as a float */
	float pad[7];
};

/* Unpack nw rows (ws bytes apart) of nb blocks, for the AVX-512 tiles:
 * Q4_0, Q5_0 and Q8_0 rows into q (nw * nb blocks of 32 unsigned bytes,
 * the quants + 128, row after row) and d (the nw * nb scales as floats),
 * false for other types; Q4_K, Q5_K and Q6_K into nb super-blocks per
 * row, row after row (buf: QDOT_TILE_BYTES, 32-byte aligned). */
bool qdot__avx2_unpack_q32_u8(uint32_t wtype, const void *w, size_t ws, int nw, int64_t nb,
			      __m256i *q, float *d);
void qdot__avx2_unpack_q4_K(const void *w, size_t ws, int nw, int64_t nb, struct tile_k4 *b0);
void qdot__avx2_unpack_q5_K(const void *w, size_t ws, int nw, int64_t nb, struct tile_k4 *b0);
void qdot__avx2_unpack_q6_K(const void *w, size_t ws, int nw, int64_t nb, struct tile_k6 *b0);

/* sum_j m_j * (activation sum of sub-block j), as 4 int32 lanes.  bsums
 * holds 16-value sums; hadd pairs them into the eight 32-value sums. */
QDOT_AVX2 static inline __m128i k4_min_dot(__m256i mins_scales, const struct qtype_block_q8_K *y)
{
	const __m256i bs = load256((const uint8_t *)y + offsetof(struct qtype_block_q8_K, bsums));
	const __m128i s8 = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
	return _mm_madd_epi16(_mm256_extracti128_si256(mins_scales, 1), s8);
}

/* k4_min_dot's four lanes as one integer total, lane 0 + 1 + 2 + 3 (ggml's
 * Q5_K kernel sums its min term as a scalar per block). */
QDOT_AVX2 static inline int32_t k4_min_total(__m256i mins_scales, const struct qtype_block_q8_K *y)
{
	const __m128i md = k4_min_dot(mins_scales, y);
	return _mm_cvtsi128_si32(md) + _mm_extract_epi32(md, 1) + _mm_extract_epi32(md, 2) +
	       _mm_extract_epi32(md, 3);
}

/* A Q6_K super-block's integer sum against a Q8_K block, in eight int32
 * lanes (their total is sum_s scale_s * ((q_s - 32) . y_s)): the 6-bit
 * quants unpacked to 0..63, maddubs against the activation, the scales
 * by madd, the -32 taken out with the activation's 16-value sums.  The
 * exact order's kernel (avx2_dot_q6_K) adds the lanes in floats, the
 * block order's (qdot_avx512_kblock.c) in integers - one copy of the
 * integer steps for both.  The row 2 KiB ahead is asked for (measured:
 * qdot_avx2.h's prefetch_ahead). */
QDOT_AVX2 __attribute__((always_inline)) static inline __m256i q6_K_lanes(const struct qtype_block_q6_K *x,
									const struct qtype_block_q8_K *y)
{
	const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x03);
	prefetch_ahead(x, sizeof(*x));
	const __m128i sc = _mm_loadu_si128((const __m128i *)x->scales);
	const __m256i bs = load256((const uint8_t *)y + offsetof(struct qtype_block_q8_K, bsums));
	const __m256i sub = _mm256_slli_epi32(_mm256_madd_epi16(bs, _mm256_cvtepi8_epi16(sc)), 5);
	const uint8_t *ql = x->ql, *qh = x->qh;
	const int8_t *q8 = y->qs;
	__m256i sumi = _mm256_setzero_si256();
	for (int h = 0; h < 2; h++, ql += 64, qh += 32, q8 += 128) {
		const __m256i b1 = load256(ql), b2 = load256(ql + 32), bh = load256(qh);
		const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(bh, m2), 4);
		const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 2), m2), 4);
		const __m256i h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 4), m2), 4);
		const __m256i h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 6), m2), 4);
		const __m256i q0 = _mm256_or_si256(_mm256_and_si256(b1, m4), h0);
		const __m256i q1 = _mm256_or_si256(_mm256_and_si256(b2, m4), h1);
		const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4), h2);
		const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4), h3);
		const __m256i p0 = _mm256_madd_epi16(k_scale_pair(sc, 4 * h + 0), _mm256_maddubs_epi16(q0, load256(q8)));
		const __m256i p1 = _mm256_madd_epi16(k_scale_pair(sc, 4 * h + 1), _mm256_maddubs_epi16(q1, load256(q8 + 32)));
		const __m256i p2 = _mm256_madd_epi16(k_scale_pair(sc, 4 * h + 2), _mm256_maddubs_epi16(q2, load256(q8 + 64)));
		const __m256i p3 = _mm256_madd_epi16(k_scale_pair(sc, 4 * h + 3), _mm256_maddubs_epi16(q3, load256(q8 + 96)));
		sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3)));
	}
	return _mm256_sub_epi32(sumi, sub);
}

/* The K-quant tiles' pass over the batch, one copy for every K-quant:
 * activation rows four at a time (the last group padded with row 0, whose
 * results are not stored), each group through a kernel specialised for its
 * size so that the per-activation loops unroll; every unpacked weight row of
 * the tile goes through tile_KIND_row(b, y, na, nb, out, os). */
#define TILE_K_GROUP(kind, blk_t, na)                                                          \
	QDOT_AVX2 static void tile_##kind##_g##na(const blk_t *b, int nw, int64_t nb,         \
						  const struct qtype_block_q8_K *const y[4],   \
						  float *o, int64_t os)                        \
	{                                                                                     \
		for (int r = 0; r < nw; r++)                                                  \
			tile_##kind##_row(b + (size_t)r * nb, y, na, nb, o + r, os);          \
	}
#define TILE_K_PASS(kind, blk_t)                                                                \
	TILE_K_GROUP(kind, blk_t, 1)                                                            \
	TILE_K_GROUP(kind, blk_t, 2)                                                            \
	TILE_K_GROUP(kind, blk_t, 3)                                                            \
	TILE_K_GROUP(kind, blk_t, 4)                                                            \
	TILE_K_BATCH(QDOT_AVX2, tile_##kind##_pass, tile_##kind, blk_t)

/* The batch loop of a K-quant pass (`attr` its target attribute, `pass`
 * its name), for the AVX2 and the AVX-512 tiles alike: activation rows
 * four at a time, each group through group##_g1 .. group##_g4. */
#define TILE_K_BATCH(attr, pass, group, blk_t)                                                  \
	attr static void pass(const blk_t *b0, int nw, int64_t nb, const void *act, size_t act_row, \
			      int n_act, float *out, int64_t os)                                \
	{                                                                                       \
		for (int t0 = 0; t0 < n_act; t0 += 4) {                                         \
			const int na = n_act - t0 < 4 ? n_act - t0 : 4;                         \
			const struct qtype_block_q8_K *y[4];                                    \
			for (int t = 0; t < 4; t++)                                             \
				y[t] = (const void *)((const char *)act +                       \
						      (size_t)(t0 + (t < na ? t : 0)) * act_row); \
			float *o = out + (int64_t)t0 * os;                                      \
			switch (na) {                                                           \
			case 1: group##_g1(b0, nw, nb, y, o, os); break;                        \
			case 2: group##_g2(b0, nw, nb, y, o, os); break;                        \
			case 3: group##_g3(b0, nw, nb, y, o, os); break;                        \
			default: group##_g4(b0, nw, nb, y, o, os); break;                       \
			}                                                                       \
		}                                                                               \
	}

/* A K-quant tile (qdot_tile_fn) `name`: the rows unpacked into blk_t
 * super-blocks by `unpack`, then `pass` over the batch. */
#define TILE_K_ENTRY(attr, name, blk_t, unpack, pass)                                            \
	attr static void name(const void *w, size_t ws, int nw, const void *act, size_t act_row,  \
			      int n_act, int64_t n, float *out, int64_t os)                     \
	{                                                                                       \
		_Alignas(64) uint8_t buf[QDOT_TILE_BYTES];                                       \
		blk_t *b0 = (blk_t *)buf;                                                        \
		const int64_t nb = n / QTYPE_QK_K;                                               \
		unpack(w, ws, nw, nb, b0);                                                       \
		pass(b0, nw, nb, act, act_row, n_act, out, os);                                  \
	}

#endif /* CPU_HAVE_AVX2_CODE */
#endif
