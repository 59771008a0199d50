/* qdot_avx512_kblock.c - Q4_K, Q5_K and Q6_K in the block order, AVX-512
 * + VNNI: the prefill tile with sixteen weight rows in the lanes of every
 * register, and the single kernels that give the same bits.
 *
 * The block order (qdot.h, qdot_block_order) sums every output as
 *
 *   for each super-block b:
 *     isum = sum over sub-blocks s of scale_s * (q_s . y_s)     int32, exact
 *     msum = sum over s of min_s * (y's sum over sub-block s)    int32, exact
 *     v_b = fmaf(-(dmin_w * d_y), msum, (d_w * d_y) * isum)     (Q6_K: q_s - 32,
 *                                                    16 sub-blocks of 16, no msum)
 *   acc = 0; for each group of eight blocks (a short last one padded with +0):
 *     acc += ((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7))
 *
 * where llama.cpp's order (the exact one) keeps eight float lanes of
 * partial sums per output.  Integer sums are exact in any grouping, so
 * every kernel that follows these float operations gives the same bits
 * however it gets the integers - which frees the tile to put a different
 * output in every lane:
 *
 *   lanes = 16 weight rows.  A super-block's quants are unpacked to bytes
 *   (0..15) and transposed so that dword g of sub-block s of rows 0..15
 *   is one 512-bit vector; each activation dword (four int8 values) is
 *   broadcast, and one vpdpbusd adds 4 x 16 products into the 16 rows'
 *   sums.  A sub-block's 8 vpdpbusd per token give its raw sums, one
 *   vpmulld by the 16 rows' scales adds them to isum; msum is 4 vpdpwssd
 *   (the mins as int16 pairs against the activation's 32-value sums);
 *   then the block's value for 16 outputs at once, and at the end of a
 *   slab (eight blocks: a group) the group's tree.
 *
 * Against the exact order's tile (two rows per register, maddubs +
 * vpdpwssd per 32 values and token, eight float lanes and a horizontal
 * sum per output) this is about half the instructions per product and no
 * horizontal sums at all.  The weights are unpacked once per tile for
 * every token; the tokens go eight at a time (each weight vector loaded
 * once for eight vpdpbusd).
 *
 * The single kernel (decode) gets each block's isum with maddubs +
 * vpdpwssd in eight lanes, a group's eight blocks' lanes added up together
 * (exact), then the group's values in the lanes of one register - the
 * same operations lane by lane.  Both are held to the scalar kernel of the
 * order (qdot_scalar.c) bit for bit by test_qtype, and the order to the
 * exact one by the forward tests (docs/reference.md).  Streaming from
 * memory they decode as fast as the exact kernels (the 8B-shaped model,
 * 1 thread: 0.98x, alternating runs) since session 18 took the gathers
 * out (kb_dwords) and made the Q6_K kernel's prefetch real (qdot_avx2.h,
 * prefetch_ahead); before, they cost that decode 11%.
 */
#include "compute/cpu/qdot_avx2.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#ifdef CPU_HAVE_AVX2_CODE

#define KB_INLINE QDOT_AVX512 __attribute__((always_inline)) static inline

/* Weight rows of a tile: one per lane. */
#define KB_ROWS 16

/* Tokens per pass (each weight vector loaded once for all of them):
 * 8 x (raw sums, isum, float accumulator) = 24 registers of 32. */
#define KB_T 8

/* One super-block of 16 Q4_K rows, unpacked: lane r of each vector is
 * row r's. */
struct kb_blk {
	__m512i q[64];  /* dword g of sub-block s at q[8 s + g]: quants 32 s + 4 g .. + 3 */
	__m512i sc[8];  /* scale of sub-block s, int32 */
	__m512i mp[4];  /* mins 2p (low int16) and 2p + 1 (high) */
	__m512 d, dmin;
};

/* Super-blocks unpacked at a time: a group of the block order (45 KiB of
 * stack); a longer row goes slab by slab, its outputs' sums kept in `out`
 * in between - the same float operations in the same order. */
#define KB_SLAB 8

/* Eight vectors z[j] = [row j's 8 dwords | row j + 8's] to t[g] = dword
 * g of rows 0..15 (lane r = row r): an 8 x 8 transpose in each 256-bit
 * half, then the quarters put in row order. */
KB_INLINE void kb_transpose(const __m512i z[8], __m512i t[8])
{
	__m512i a[8], b[8];
	for (int j = 0; j < 8; j += 2) {
		a[j] = _mm512_unpacklo_epi32(z[j], z[j + 1]);     /* per 128 bits: d0 d0' d1 d1' */
		a[j + 1] = _mm512_unpackhi_epi32(z[j], z[j + 1]); /* d2 d2' d3 d3' */
	}
	for (int j = 0; j < 8; j += 4) {
		b[j] = _mm512_unpacklo_epi64(a[j], a[j + 2]);         /* 4 rows' d0 (d4) */
		b[j + 1] = _mm512_unpackhi_epi64(a[j], a[j + 2]);     /* d1 (d5) */
		b[j + 2] = _mm512_unpacklo_epi64(a[j + 1], a[j + 3]); /* d2 (d6) */
		b[j + 3] = _mm512_unpackhi_epi64(a[j + 1], a[j + 3]); /* d3 (d7) */
	}
	/* b[k] holds rows 0-3 (128-bit quarter 0: dword k, 1: dword k + 4)
	 * and rows 8-11 (quarters 2, 3); b[4 + k] rows 4-7 and 12-15 */
	const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
	const __m512i hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
	for (int k = 0; k < 4; k++) {
		t[k] = _mm512_permutex2var_epi64(b[k], lo, b[4 + k]);
		t[k + 4] = _mm512_permutex2var_epi64(b[k], hi, b[4 + k]);
	}
}

/* Two rows' 32 bytes at a and b side by side: a low, b high. */
KB_INLINE __m512i kb_pair(const void *a, const void *b)
{
	return _mm512_inserti64x4(_mm512_castsi256_si512(load256(a)), load256(b), 1);
}

/* The 16 rows' super-block i (row r at rows[r], blk bytes a block) - its
 * Q4_K/Q5_K fields qs, qh (q5: the fifth bits; else NULL), scales, d and
 * dmin at these offsets. */
struct kb45_fields {
	size_t blk, qs, qh, scales, d, dmin;
	bool q5;
};

/* Super-blocks [i0, i0 + nblk) of nr <= 16 Q4_K or Q5_K rows (ws bytes
 * apart) into o; lanes past nr repeat the last row (their outputs are
 * never stored). */
KB_INLINE void kb_unpack_q45(const struct kb45_fields f, const void *w, size_t ws, int nr, int64_t i0,
			     int nblk, struct kb_blk *o)
{
	const uint8_t *x[KB_ROWS];
	for (int r = 0; r < KB_ROWS; r++)
		x[r] = (const uint8_t *)w + (size_t)(r < nr ? r : nr - 1) * ws + (size_t)i0 * f.blk;
	const __m512i low4 = _mm512_set1_epi8(0x0f), one = _mm512_set1_epi8(1);
	for (int i = 0; i < nblk; i++, o++) {
		const size_t b = (size_t)i * f.blk;
		for (int c = 0; c < 4; c++) {
			__m512i lo[8], hi[8];
			for (int j = 0; j < 8; j++) {
				const __m512i z = kb_pair(x[j] + b + f.qs + 32 * c, x[j + 8] + b + f.qs + 32 * c);
				lo[j] = _mm512_and_si512(z, low4);
				hi[j] = _mm512_and_si512(_mm512_srli_epi16(z, 4), low4);
				if (f.q5) { /* bit 2c of qh: the low nibbles' fifth bit, 2c + 1 the high ones' */
					const __m512i h = kb_pair(x[j] + b + f.qh, x[j + 8] + b + f.qh);
					lo[j] = _mm512_or_si512(lo[j], _mm512_slli_epi16(
						_mm512_and_si512(_mm512_srli_epi16(h, 2 * c), one), 4));
					hi[j] = _mm512_or_si512(hi[j], _mm512_slli_epi16(
						_mm512_and_si512(_mm512_srli_epi16(h, 2 * c + 1), one), 4));
				}
			}
			kb_transpose(lo, o->q + 16 * c);
			kb_transpose(hi, o->q + 16 * c + 8);
		}
		_Alignas(64) int32_t sc[8][KB_ROWS], mp[4][KB_ROWS];
		_Alignas(64) float d[KB_ROWS], dmin[KB_ROWS];
		for (int r = 0; r < KB_ROWS; r++) {
			int16_t sm[16]; /* scales 0..7, mins 0..7 */
			uint16_t hd, hm;
			_mm256_storeu_si256((__m256i *)sm, k4_scales_mins(x[r] + b + f.scales));
			for (int k = 0; k < 8; k++)
				sc[k][r] = sm[k];
			for (int p = 0; p < 4; p++)
				mp[p][r] = sm[8 + 2 * p] | (int32_t)sm[9 + 2 * p] << 16;
			memcpy(&hd, x[r] + b + f.d, 2);
			memcpy(&hm, x[r] + b + f.dmin, 2);
			d[r] = h2f(hd);
			dmin[r] = h2f(hm);
		}
		for (int k = 0; k < 8; k++)
			o->sc[k] = _mm512_load_si512(sc[k]);
		for (int p = 0; p < 4; p++)
			o->mp[p] = _mm512_load_si512(mp[p]);
		o->d = _mm512_load_ps(d);
		o->dmin = _mm512_load_ps(dmin);
	}
}

/* The fields of Q4_K and Q5_K blocks for kb_unpack_q45. */
#define KB45_FIELDS(blk_t, has_qh)                                                                   \
	((struct kb45_fields){ sizeof(blk_t), offsetof(blk_t, qs), has_qh, offsetof(blk_t, scales),      \
			       offsetof(blk_t, d), offsetof(blk_t, dmin), has_qh != 0 })

QDOT_AVX512 static void kb_unpack_q4_K(const void *w, size_t ws, int nr, int64_t i0, int nblk, void *o)
{
	kb_unpack_q45(KB45_FIELDS(struct qtype_block_q4_K, 0), w, ws, nr, i0, nblk, o);
}

QDOT_AVX512 static void kb_unpack_q5_K(const void *w, size_t ws, int nr, int64_t i0, int nblk, void *o)
{
	kb_unpack_q45(KB45_FIELDS(struct qtype_block_q5_K, offsetof(struct qtype_block_q5_K, qh)), w, ws, nr,
		      i0, nblk, o);
}

/* One super-block of 16 Q6_K rows, unpacked (lane r: row r's). */
struct kb6_blk {
	__m512i q[64];  /* dword g: quants 4 g .. 4 g + 3, 0..63 (q + 32) */
	__m512i sc[16]; /* scale of the 16 values 16 s .., int32 */
	__m512i sp[8];  /* scales 2p (low int16) and 2p + 1 (high) */
	__m512 d;
};

/* The 32 values 32 k .. of a Q6_K super-block (as ggml lays them out:
 * half h = k / 4, quarter k % 4 of it) of rows a (low) and b (high), as
 * bytes 0..63. */
KB_INLINE __m512i kb_q6_chunk(const struct qtype_block_q6_K *a, const struct qtype_block_q6_K *b, int k)
{
	const int h = k / 4, qt = k % 4;
	const __m512i ql = kb_pair(a->ql + 64 * h + 32 * (qt & 1), b->ql + 64 * h + 32 * (qt & 1));
	const __m512i qh = kb_pair(a->qh + 32 * h, b->qh + 32 * h);
	const __m512i lo = _mm512_and_si512(_mm512_srli_epi16(ql, 4 * (qt >> 1)), _mm512_set1_epi8(0x0f));
	const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(qh, 2 * qt), _mm512_set1_epi8(3));
	return _mm512_or_si512(lo, _mm512_slli_epi16(hi, 4));
}

QDOT_AVX512 static void kb_unpack_q6_K(const void *w, size_t ws, int nr, int64_t i0, int nblk, void *out)
{
	struct kb6_blk *o = out;
	const struct qtype_block_q6_K *x[KB_ROWS];
	for (int r = 0; r < KB_ROWS; r++)
		x[r] = (const struct qtype_block_q6_K *)((const char *)w + (size_t)(r < nr ? r : nr - 1) * ws) + i0;
	for (int i = 0; i < nblk; i++, o++) {
		for (int k = 0; k < 8; k++) {
			__m512i z[8];
			for (int j = 0; j < 8; j++)
				z[j] = kb_q6_chunk(&x[j][i], &x[j + 8][i], k);
			kb_transpose(z, o->q + 8 * k);
		}
		_Alignas(64) int32_t sc[16][KB_ROWS], sp[8][KB_ROWS];
		_Alignas(64) float d[KB_ROWS];
		for (int r = 0; r < KB_ROWS; r++) {
			const int8_t *s = x[r][i].scales;
			for (int g = 0; g < 16; g++)
				sc[g][r] = s[g];
			for (int p = 0; p < 8; p++)
				sp[p][r] = (int32_t)(uint16_t)(int16_t)s[2 * p] | (int32_t)((uint32_t)(int16_t)s[2 * p + 1] << 16);
			d[r] = h2f(x[r][i].d);
		}
		for (int g = 0; g < 16; g++)
			o->sc[g] = _mm512_load_si512(sc[g]);
		for (int p = 0; p < 8; p++)
			o->sp[p] = _mm512_load_si512(sp[p]);
		o->d = _mm512_load_ps(d);
	}
}

/* The activation's eight 32-value sums (int16 each: at most 32 x 128) as
 * four int16 pairs: pair p is dword p. */
KB_INLINE __m128i kb_sums32(const struct qtype_block_q8_K *y)
{
	return _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)y->bsums),
			      _mm_loadu_si128((const __m128i *)(y->bsums + 8)));
}

/* Activation dword g of a Q8_K block in every lane. */
KB_INLINE __m512i kb_act(const struct qtype_block_q8_K *y, int g)
{
	int32_t a;
	memcpy(&a, y->qs + 4 * g, 4);
	return _mm512_set1_epi32(a);
}

/* Super-blocks b[0 .. nblk) of 16 rows times nt <= KB_T tokens (y[t]: the
 * token's Q8_K blocks from the slab's first), into the outputs o[t][r]
 * for the rows in mask m; `first`: the slab that starts the row (else the
 * accumulators are what the last slab left in o).  q6: Q6_K (struct
 * kb6_blk), else Q4_K/Q5_K (struct kb_blk). */
KB_INLINE void kb_pass(const bool q6, const int nt, const void *blocks, int nblk,
		       const struct qtype_block_q8_K *const y[KB_T], float *const o[KB_T], __mmask16 m, bool first)
{
	__m512 v[KB_SLAB][KB_T]; /* the blocks' values (the slab is one group) */
	for (int j = 0; j < KB_SLAB; j++) {
		for (int t = 0; t < nt; t++)
			v[j][t] = _mm512_setzero_ps();
		if (j >= nblk)
			continue;
		const struct kb_blk *b4 = (const struct kb_blk *)blocks + j;
		const struct kb6_blk *b6 = (const struct kb6_blk *)blocks + j;
		const __m512i *q = q6 ? b6->q : b4->q, *sc = q6 ? b6->sc : b4->sc;
		const int sub = q6 ? 16 : 8, per = 64 / sub; /* sub-blocks, their dwords */
		__m512i isum[KB_T];
		for (int t = 0; t < nt; t++)
			isum[t] = _mm512_setzero_si512();
		for (int s = 0; s < sub; s++) {
			__m512i raw[KB_T];
			for (int t = 0; t < nt; t++)
				raw[t] = _mm512_setzero_si512();
			for (int g = s * per; g < (s + 1) * per; g++) {
				const __m512i w = _mm512_load_si512(&q[g]);
				for (int t = 0; t < nt; t++)
					raw[t] = _mm512_dpbusd_epi32(raw[t], w, kb_act(&y[t][j], g));
			}
			for (int t = 0; t < nt; t++)
				isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(raw[t], sc[s]));
		}
		for (int t = 0; t < nt; t++) {
			const __m512 dy = _mm512_set1_ps(y[t][j].d);
			if (q6) {
				/* isum - 32 x (scales . 16-value sums): the quants' -32 */
				__m512i bs = _mm512_setzero_si512();
				for (int p = 0; p < 8; p++) {
					int32_t pair;
					memcpy(&pair, y[t][j].bsums + 2 * p, 4);
					bs = _mm512_dpwssd_epi32(bs, b6->sp[p], _mm512_set1_epi32(pair));
				}
				isum[t] = _mm512_sub_epi32(isum[t], _mm512_slli_epi32(bs, 5));
				v[j][t] = _mm512_mul_ps(_mm512_mul_ps(b6->d, dy), _mm512_cvtepi32_ps(isum[t]));
				continue;
			}
			_Alignas(16) int32_t pair[4];
			_mm_store_si128((__m128i *)pair, kb_sums32(&y[t][j]));
			__m512i msum = _mm512_setzero_si512();
			for (int p = 0; p < 4; p++)
				msum = _mm512_dpwssd_epi32(msum, b4->mp[p], _mm512_set1_epi32(pair[p]));
			v[j][t] = _mm512_fnmadd_ps(_mm512_mul_ps(b4->dmin, dy), _mm512_cvtepi32_ps(msum),
						   _mm512_mul_ps(_mm512_mul_ps(b4->d, dy), _mm512_cvtepi32_ps(isum[t])));
		}
	}
	for (int t = 0; t < nt; t++) {
		const __m512 g = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(v[0][t], v[4][t]), _mm512_add_ps(v[2][t], v[6][t])),
					       _mm512_add_ps(_mm512_add_ps(v[1][t], v[5][t]), _mm512_add_ps(v[3][t], v[7][t])));
		const __m512 acc = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, o[t]);
		_mm512_mask_storeu_ps(o[t], m, _mm512_add_ps(acc, g));
	}
}

typedef void (*kb_unpack_fn)(const void *w, size_t ws, int nr, int64_t i0, int nblk, void *o);
typedef void (*kb_pass_fn)(const void *, int, const struct qtype_block_q8_K *const[KB_T], float *const[KB_T],
			   __mmask16, bool);

/* One pass instance per kind and token count, so that the loops over
 * tokens unroll. */
#define KB_PASS(kind, q6, nt)                                                                         \
	QDOT_AVX512 static void kb_pass_##kind##_##nt(const void *b, int nblk,                          \
						      const struct qtype_block_q8_K *const y[KB_T],     \
						      float *const o[KB_T], __mmask16 m, bool first)    \
	{                                                                                             \
		kb_pass(q6, nt, b, nblk, y, o, m, first);                                              \
	}
#define KB_PASSES(kind, q6)                                                                            \
	KB_PASS(kind, q6, 1) KB_PASS(kind, q6, 2) KB_PASS(kind, q6, 3) KB_PASS(kind, q6, 4)              \
	KB_PASS(kind, q6, 5) KB_PASS(kind, q6, 6) KB_PASS(kind, q6, 7) KB_PASS(kind, q6, 8)              \
	static const kb_pass_fn kb_passes_##kind[KB_T] = {                                             \
		kb_pass_##kind##_1, kb_pass_##kind##_2, kb_pass_##kind##_3, kb_pass_##kind##_4,         \
		kb_pass_##kind##_5, kb_pass_##kind##_6, kb_pass_##kind##_7, kb_pass_##kind##_8,         \
	};
KB_PASSES(k45, false)
KB_PASSES(k6, true)

/* The slab buffer: KB_SLAB super-blocks of the larger layout. */
#define KB_SLAB_BYTES (KB_SLAB * sizeof(struct kb6_blk))
_Static_assert(sizeof(struct kb6_blk) >= sizeof(struct kb_blk), "slab sized by Q6_K");

/* The tile (qdot_tile_fn): 16 rows at a time, slab by slab, the tokens
 * KB_T at a time over each slab. */
KB_INLINE void kb_tile(kb_unpack_fn unpack, const kb_pass_fn passes[KB_T], const void *w, size_t ws, int nw,
		       const void *act, size_t act_row, int n_act, int64_t n, float *out, int64_t os)
{
	_Alignas(64) uint8_t buf[KB_SLAB_BYTES];
	const int64_t nb = n / QTYPE_QK_K;
	for (int r0 = 0; r0 < nw; r0 += KB_ROWS) {
		const int nr = nw - r0 < KB_ROWS ? nw - r0 : KB_ROWS;
		const __mmask16 m = (__mmask16)((1u << nr) - 1);
		const char *wr = (const char *)w + (size_t)r0 * ws;
		for (int64_t i0 = 0; i0 < nb; i0 += KB_SLAB) {
			const int nblk = nb - i0 < KB_SLAB ? (int)(nb - i0) : KB_SLAB;
			unpack(wr, ws, nr, i0, nblk, buf);
			for (int t0 = 0; t0 < n_act; t0 += KB_T) {
				const int nt = n_act - t0 < KB_T ? n_act - t0 : KB_T;
				const struct qtype_block_q8_K *y[KB_T];
				float *o[KB_T];
				for (int t = 0; t < KB_T; t++) {
					const int tt = t0 + (t < nt ? t : 0);
					y[t] = (const struct qtype_block_q8_K *)((const char *)act + (size_t)tt * act_row) + i0;
					o[t] = out + (int64_t)tt * os + r0;
				}
				passes[nt - 1](buf, nblk, y, o, m, i0 == 0);
			}
		}
	}
}

#define KB_TILE(name, unpack, passes)                                                                 \
	QDOT_AVX512 static void name(const void *w, size_t ws, int nw, const void *act, size_t act_row,  \
				     int n_act, int64_t n, float *out, int64_t os)                     \
	{                                                                                              \
		kb_tile(unpack, passes, w, ws, nw, act, act_row, n_act, n, out, os);                    \
	}
KB_TILE(kb_tile_q4_K, kb_unpack_q4_K, kb_passes_k45)
KB_TILE(kb_tile_q5_K, kb_unpack_q5_K, kb_passes_k45)
KB_TILE(kb_tile_q6_K, kb_unpack_q6_K, kb_passes_k6)

/* The single kernels: one row, one activation row, the same bits.  The
 * integer sums in eight lanes (maddubs + vpdpwssd: the pair sums fit
 * int16), added up - exact - then the block order's float operations in
 * scalar registers. */

/* Lane k: the sum of s[k]'s eight lanes (exact). */
KB_INLINE __m256i kb_hsum8x8(const __m256i s[KB_SLAB])
{
	const __m256i b0 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
	const __m256i b1 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[4], s[5]), _mm256_hadd_epi32(s[6], s[7]));
	/* b0: per 128-bit half, s[0..3]'s sums of that half's lanes; b1 s[4..7] */
	return _mm256_add_epi32(_mm256_permute2x128_si256(b0, b1, 0x20), _mm256_permute2x128_si256(b0, b1, 0x31));
}

/* Lane k: the sum of m[k]'s four lanes. */
KB_INLINE __m256i kb_hsum4x8(const __m128i m[KB_SLAB])
{
	const __m128i lo = _mm_hadd_epi32(_mm_hadd_epi32(m[0], m[1]), _mm_hadd_epi32(m[2], m[3]));
	const __m128i hi = _mm_hadd_epi32(_mm_hadd_epi32(m[4], m[5]), _mm_hadd_epi32(m[6], m[7]));
	return _mm256_set_m128i(hi, lo);
}

/* A Q4_K/Q5_K super-block's integer sums against a Q8_K block: isum in
 * eight lanes of *s, msum in four of *md.  The low and high nibbles'
 * sums are two chains (one chain of eight vpdpwssd waits on their
 * latency). */
KB_INLINE void kb_sums_q45(const struct kb45_fields f, const uint8_t *x, const struct qtype_block_q8_K *y,
			   __m256i *s, __m128i *md)
{
	const __m256i low4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
	const __m256i ms = k4_scales_mins(x + f.scales);
	const __m128i sc128 = _mm256_castsi256_si128(ms);
	const __m256i scales = _mm256_set_m128i(sc128, sc128);
	__m256i sl = _mm256_setzero_si256(), sh = _mm256_setzero_si256();
	for (int c = 0; c < 4; c++) {
		const __m256i q = load256(x + f.qs + 32 * c);
		__m256i lo = _mm256_and_si256(q, low4);
		__m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
		if (f.q5) {
			const __m256i h = load256(x + f.qh);
			lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * c), one), 4));
			hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * c + 1), one), 4));
		}
		sl = _mm256_dpwssd_epi32(sl, _mm256_maddubs_epi16(lo, load256(y->qs + 64 * c)), BCAST16(scales, 2 * c));
		sh = _mm256_dpwssd_epi32(sh, _mm256_maddubs_epi16(hi, load256(y->qs + 64 * c + 32)),
					 BCAST16(scales, 2 * c + 1));
	}
	*s = _mm256_add_epi32(sl, sh);
	/* the mins against the 32-value sums */
	*md = _mm_madd_epi16(_mm256_extracti128_si256(ms, 1), kb_sums32(y));
}

/* A group's per-block fields in the lanes of one register: lane k from
 * block k < m (a short group's lanes past m repeat block 0; their values
 * are dropped), each a scalar load put in its lane.  A masked dword
 * gather did the same in one instruction, but streaming from memory the
 * gathers cost the 8B-shaped model's decode 10% (1 thread, alternating
 * runs); so did eight scalar stores and a vector load (no store
 * forwarding: 7%). */
KB_INLINE int32_t kb_u32(const void *p)
{
	int32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* The dwords at p + k * stride (k < 8; k >= m: block 0's). */
KB_INLINE __m256i kb_dwords(const uint8_t *p, size_t stride, int m)
{
#define KB_DW(k) kb_u32(p + ((k) < m ? (k) : 0) * stride)
	return _mm256_setr_epi32(KB_DW(0), KB_DW(1), KB_DW(2), KB_DW(3), KB_DW(4), KB_DW(5), KB_DW(6), KB_DW(7));
#undef KB_DW
}

/* The Q8_K blocks' d. */
KB_INLINE __m256 kb_dy(const struct qtype_block_q8_K *y, int m)
{
	return _mm256_castsi256_ps(kb_dwords((const uint8_t *)y + offsetof(struct qtype_block_q8_K, d), sizeof(*y), m));
}

/* Q4_K and Q5_K: a group's eight blocks' integer sums, their values in
 * the lanes of one register, the group's sum (cpu_hsum8 adds the lanes as
 * the block order's tree). */
KB_INLINE float kb_dot_q45(const struct kb45_fields f, const void *w, const void *act, int64_t n)
{
	const uint8_t *x = w;
	const struct qtype_block_q8_K *y = act;
	const int64_t nb = n / QTYPE_QK_K;
	float acc = 0.0f;
	for (int64_t i = 0; i < nb; i += KB_SLAB, x += KB_SLAB * f.blk) {
		const int m = nb - i < KB_SLAB ? (int)(nb - i) : KB_SLAB;
		__m256i s[KB_SLAB];
		__m128i md[KB_SLAB];
#pragma GCC unroll 8
		for (int k = 0; k < KB_SLAB; k++) {
			const int kk = k < m ? k : 0; /* a short group: block 0 again, its value dropped */
			kb_sums_q45(f, x + (size_t)kk * f.blk, &y[i + kk], &s[k], &md[k]);
		}
		/* d and dmin: adjacent fp16, d first */
		const __m256i dd16 = kb_dwords(x + f.d, f.blk, m);
		const __m256 dy = kb_dy(&y[i], m);
		const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_cvtepi32_epi16(dd16)), dy);
		const __m256 dmin = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_cvtepi32_epi16(_mm256_srli_epi32(dd16, 16))), dy);
		const __m256 v = _mm256_fnmadd_ps(dmin, _mm256_cvtepi32_ps(kb_hsum4x8(md)),
						  _mm256_mul_ps(d, _mm256_cvtepi32_ps(kb_hsum8x8(s))));
		acc += cpu_hsum8(_mm256_maskz_mov_ps((__mmask8)((1u << m) - 1), v));
	}
	return acc;
}

QDOT_AVX512 static float kb_dot_q4_K(const void *w, const void *act, int64_t n)
{
	return kb_dot_q45(KB45_FIELDS(struct qtype_block_q4_K, 0), w, act, n);
}

QDOT_AVX512 static float kb_dot_q5_K(const void *w, const void *act, int64_t n)
{
	return kb_dot_q45(KB45_FIELDS(struct qtype_block_q5_K, offsetof(struct qtype_block_q5_K, qh)), w, act, n);
}

QDOT_AVX512 static float kb_dot_q6_K(const void *w, const void *act, int64_t n)
{
	const struct qtype_block_q6_K *x = w;
	const struct qtype_block_q8_K *y = act;
	const int64_t nb = n / QTYPE_QK_K;
	float acc = 0.0f;
	for (int64_t i = 0; i < nb; i += KB_SLAB) {
		const int m = nb - i < KB_SLAB ? (int)(nb - i) : KB_SLAB;
		__m256i s[KB_SLAB];
#pragma GCC unroll 8
		for (int k = 0; k < KB_SLAB; k++) {
			const int64_t b = i + (k < m ? k : 0);
			s[k] = q6_K_lanes(&x[b], &y[b]);
		}
		/* the blocks' d in a register (a dword gather of the block's
		 * last four bytes, d the high half, raised SIGILL under Bochs) */
#define KB_D6(k) h2f(x[i + ((k) < m ? (k) : 0)].d)
		const __m256 d = _mm256_mul_ps(_mm256_setr_ps(KB_D6(0), KB_D6(1), KB_D6(2), KB_D6(3), KB_D6(4), KB_D6(5),
							      KB_D6(6), KB_D6(7)),
					       kb_dy(&y[i], m));
#undef KB_D6
		const __m256 v = _mm256_mul_ps(d, _mm256_cvtepi32_ps(kb_hsum8x8(s)));
		acc += cpu_hsum8(_mm256_maskz_mov_ps((__mmask8)((1u << m) - 1), v));
	}
	return acc;
}

qdot_fn qdot__avx512_kblock_dot(uint32_t wtype)
{
	switch (wtype) {
	case QTYPE_Q4_K: return kb_dot_q4_K;
	case QTYPE_Q5_K: return kb_dot_q5_K;
	case QTYPE_Q6_K: return kb_dot_q6_K;
	default: return NULL;
	}
}

qdot_tile_fn qdot__avx512_kblock_tile(uint32_t wtype, int64_t n, int *rows)
{
	if (n <= 0 || n % QTYPE_QK_K || !qdot__avx512_kblock_dot(wtype))
		return NULL;
	*rows = KB_ROWS;
	return wtype == QTYPE_Q4_K ? kb_tile_q4_K : wtype == QTYPE_Q5_K ? kb_tile_q5_K : kb_tile_q6_K;
}

#else

qdot_fn qdot__avx512_kblock_dot(uint32_t wtype)
{
	(void)wtype;
	return NULL;
}

qdot_tile_fn qdot__avx512_kblock_tile(uint32_t wtype, int64_t n, int *rows)
{
	(void)wtype, (void)n, (void)rows;
	return NULL;
}

#endif
