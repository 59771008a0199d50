/* attention_avx2.c - the AVX2 attention kernels: scores (Q.K) and the
 * probability-weighted sum of V, several heads and positions at a time.
 *
 * Scores: each score is ggml_vec_dot_f16 over head_dim - four 8-lane
 * accumulators, accumulator j taking the 8-value chunks j, j + 4, ... in
 * order, reduced as GGML_F32x8_REDUCE, the head_dim % 32 leftover added in
 * double.  The accumulators do not meet until the reduction, so a block of
 * up to 4 heads x 3 positions (12 registers, the K chunks widened once for
 * all heads, each query chunk loaded once for all positions) computes one
 * accumulator per pass and then reduces every score alone, as the one-score
 * loop does.  Before, each K row was widened into a buffer and each score
 * was its own loop and reduction: twice the loads per FMA.
 *
 * Values: ggml's dot of the probabilities with one V column over the cache
 * keeps 32 partial sums per output value, position p in sum p % 32, in
 * rising p.  The old loop kept all 32 (x heads) in memory, a load and a
 * store per FMA; here the partial sum l of a strip of output values (2 or
 * 4 chunks of 8) for every head is a register while the positions p = l,
 * l + 32, ... pass (each V chunk widened once for all heads), then set
 * aside, and the strip's 32 partial sums are reduced as before.
 */
#include "compute/cpu/attention_avx2.h"
#include "compute/cpu/simd_avx2.h"

#ifdef CPU_HAVE_AVX2_CODE

#include "util/fp16.h"

#define ATT_INLINE CPU_AVX2 __attribute__((always_inline)) static inline

/* Eight cache halves widened to floats (F16C: exact). */
ATT_INLINE __m256 load_h8(const uint16_t *h)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}

/* ---- scores --------------------------------------------------------------- */

/* Positions per score block. */
#define QK_POS 3

/* nh heads x np positions (K rows kp[]) of scores into out[g][t]. */
ATT_INLINE void qk_block(int nh, int np, const uint16_t *const *kp, const float *const *qh, int hd, float scale,
			 float *const *out, int t0)
{
	const int n32 = hd & ~31;
	__m256 s[4][ATTN_AVX2_HEADS][QK_POS];
	for (int j = 0; j < 4; j++) {
		__m256 acc[ATTN_AVX2_HEADS][QK_POS];
		for (int g = 0; g < nh; g++)
			for (int t = 0; t < np; t++)
				acc[g][t] = _mm256_setzero_ps();
		for (int i = 8 * j; i < n32; i += 32) {
			__m256 kv[QK_POS];
			for (int t = 0; t < np; t++)
				kv[t] = load_h8(kp[t] + i);
			for (int g = 0; g < nh; g++) {
				const __m256 qv = _mm256_loadu_ps(qh[g] + i);
				for (int t = 0; t < np; t++)
					acc[g][t] = _mm256_fmadd_ps(kv[t], qv, acc[g][t]);
			}
		}
		for (int g = 0; g < nh; g++)
			for (int t = 0; t < np; t++)
				s[j][g][t] = acc[g][t];
	}
	for (int g = 0; g < nh; g++)
		for (int t = 0; t < np; t++) {
			double sum = n32 ? (double)cpu_reduce4(s[0][g][t], s[1][g][t], s[2][g][t], s[3][g][t]) : 0.0;
			for (int i = n32; i < hd; i++)
				sum += (double)(fp16_to_fp32(kp[t][i]) * qh[g][i]);
			out[g][t0 + t] = (float)sum * scale;
		}
}

#define QK_BLOCK(NH, NP)                                                                                  \
	CPU_AVX2 static void qk_##NH##x##NP(const uint16_t *const *kp, const float *const *qh, int hd,     \
					    float scale, float *const *out, int t0)                        \
	{                                                                                                 \
		qk_block(NH, NP, kp, qh, hd, scale, out, t0);                                              \
	}
#define QK_BLOCKS(NH) QK_BLOCK(NH, 1) QK_BLOCK(NH, 2) QK_BLOCK(NH, 3)
QK_BLOCKS(1)
QK_BLOCKS(2)
QK_BLOCKS(3)
QK_BLOCKS(4)

typedef void (*qk_fn)(const uint16_t *const *, const float *const *, int, float, float *const *, int);
static const qk_fn qk_blocks[ATTN_AVX2_HEADS][QK_POS] = {
	{ qk_1x1, qk_1x2, qk_1x3 }, { qk_2x1, qk_2x2, qk_2x3 },
	{ qk_3x1, qk_3x2, qk_3x3 }, { qk_4x1, qk_4x2, qk_4x3 },
};

void attn_avx2_scores(const uint16_t *k, int64_t kv_stride, int p0, int p1, const float *const *qh, int nh,
		      int head_dim, float scale, float *const *s)
{
	for (int p = p0; p <= p1; p += QK_POS) {
		const int np = p1 - p + 1 < QK_POS ? p1 - p + 1 : QK_POS;
		const uint16_t *kp[QK_POS];
		for (int t = 0; t < np; t++)
			kp[t] = k + (int64_t)(p + t) * kv_stride;
		qk_blocks[nh - 1][np - 1](kp, qh, head_dim, scale, s, p - p0);
	}
}

/* ---- values --------------------------------------------------------------- */

/* Chunks of 8 output values per strip at most. */
#define PV_CHUNKS 4

/* The strip of nc chunks at value i of nh heads: part[g][l][c] = partial
 * sum l (positions p % 32 == l, rising) of chunk c, then each value
 * reduced in GGML_F32x8_REDUCE's order into o[g][i..]. */
ATT_INLINE void pv_strip(int nh, int nc, const uint16_t *v, int64_t kv_stride, int first, int pos,
			 const float *const *w, int i, float *const *o)
{
	__m256 part[ATTN_AVX2_HEADS][32][PV_CHUNKS];
	for (int l = 0; l < 32; l++) {
		__m256 acc[ATTN_AVX2_HEADS][PV_CHUNKS];
		for (int g = 0; g < nh; g++)
			for (int c = 0; c < nc; c++)
				acc[g][c] = _mm256_setzero_ps();
		/* the first position at or after `first` with p % 32 == l */
		for (int p = first + ((l - first % 32) + 32) % 32; p <= pos; p += 32) {
			const uint16_t *vp = v + (int64_t)p * kv_stride + i;
			__m256 vv[PV_CHUNKS];
			for (int c = 0; c < nc; c++)
				vv[c] = load_h8(vp + 8 * c);
			for (int g = 0; g < nh; g++) {
				const __m256 wv = _mm256_broadcast_ss(&w[g][p - first]);
				for (int c = 0; c < nc; c++)
					acc[g][c] = _mm256_fmadd_ps(vv[c], wv, acc[g][c]);
			}
		}
		for (int g = 0; g < nh; g++)
			for (int c = 0; c < nc; c++)
				part[g][l][c] = acc[g][c];
	}
	for (int g = 0; g < nh; g++)
		for (int c = 0; c < nc; c++) {
			__m256 lane[8];
			for (int l = 0; l < 8; l++)
				lane[l] = _mm256_add_ps(_mm256_add_ps(part[g][l][c], part[g][16 + l][c]),
							_mm256_add_ps(part[g][8 + l][c], part[g][24 + l][c]));
			for (int l = 0; l < 4; l++)
				lane[l] = _mm256_add_ps(lane[l], lane[l + 4]);
			_mm256_storeu_ps(o[g] + i + 8 * c, _mm256_add_ps(_mm256_add_ps(lane[0], lane[1]),
									  _mm256_add_ps(lane[2], lane[3])));
		}
}

#define PV_STRIP(NH, NC)                                                                                 \
	CPU_AVX2 static void pv_##NH##x##NC(const uint16_t *v, int64_t kv_stride, int first, int pos,     \
					    const float *const *w, int i, float *const *o)                 \
	{                                                                                                \
		pv_strip(NH, NC, v, kv_stride, first, pos, w, i, o);                                      \
	}
#define PV_STRIPS(NH) PV_STRIP(NH, 1) PV_STRIP(NH, 2) PV_STRIP(NH, 4)
PV_STRIPS(1)
PV_STRIPS(2)
PV_STRIPS(3)
PV_STRIPS(4)

typedef void (*pv_fn)(const uint16_t *, int64_t, int, int, const float *const *, int, float *const *);
/* [heads - 1][0: one chunk, 1: two, 2: four] */
static const pv_fn pv_strips[ATTN_AVX2_HEADS][3] = {
	{ pv_1x1, pv_1x2, pv_1x4 }, { pv_2x1, pv_2x2, pv_2x4 },
	{ pv_3x1, pv_3x2, pv_3x4 }, { pv_4x1, pv_4x2, pv_4x4 },
};

void attn_avx2_values(const uint16_t *v, int64_t kv_stride, int first, int pos, const float *const *w, int nh,
		      int head_dim, float *const *o)
{
	/* four chunks (a cache line of halves) where the registers allow:
	 * 2 heads x 4 or 4 heads x 2 accumulators */
	const int wide = nh <= 2 ? 4 : 2;
	int i = 0;
	for (; i + 8 * wide <= head_dim; i += 8 * wide)
		pv_strips[nh - 1][wide == 4 ? 2 : 1](v, kv_stride, first, pos, w, i, o);
	for (; i + 16 <= head_dim; i += 16)
		pv_strips[nh - 1][1](v, kv_stride, first, pos, w, i, o);
	for (; i < head_dim; i += 8)
		pv_strips[nh - 1][0](v, kv_stride, first, pos, w, i, o);
}

#endif /* CPU_HAVE_AVX2_CODE */
