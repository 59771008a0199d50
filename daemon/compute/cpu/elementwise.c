/* elementwise.c - the CPU backend's element-wise and row operations
 * (activations, residual adds, norms, RoPE, fp16 rounding and stores,
 * scaling).  Numerics follow ggml's CPU code (its AVX2+FMA build, see
 * docs/reference.md) operation for operation, because our greedy tokens are
 * checked against llama.cpp's and a near-tie can flip on the last bit: RMS
 * sums in double; RoPE angles built by repeated float multiplication and
 * the rotation with the fused multiply-adds GCC emits for ggml's C; GELU
 * through an fp16 table whose entries use the same fused multiply-add; SiLU
 * with ggml's polynomial exp on 8 values at a time.  Without AVX2 (or with
 * SMOKE_NO_SIMD) the same maths runs unfused, equal to within rounding.
 * On a batch the work is split across the pool (par_range); every value is
 * computed by the same operations wherever the split falls. */
#include "compute/cpu/cpu_backend.h"
#include "compute/cpu/qdot.h"
#include "compute/cpu/simd_avx2.h"
#include "util/fp16.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

/* ---- splitting element-wise work ---- */

/* Element-wise and row ops over a batch (prefill: 512 rows of 640 to 2048
 * values) split their units across the pool; below this many values (a
 * decode step's row) one thread does it, since the threads' meeting
 * would cost more than the work. */
#define PAR_MIN_VALUES 32768

typedef void (*range_fn)(void *ctx, int64_t lo, int64_t hi);

struct range_job {
	range_fn fn;
	void *ctx;
	int64_t n, align;
};

static void range_share(void *c, int ith, int nth)
{
	const struct range_job *j = c;
	int64_t lo, hi;
	cpu_share((j->n + j->align - 1) / j->align, ith, nth, &lo, &hi);
	lo *= j->align;
	hi = hi * j->align < j->n ? hi * j->align : j->n;
	if (lo < hi)
		j->fn(j->ctx, lo, hi);
}

/* fn over units [0, n), each `values` values of work; the parts start at
 * multiples of `align` units (the SIMD loops' 8-value groups stay where a
 * single pass puts them, so the results are the same bits). */
static void par_range(struct backend *b, int64_t n, int64_t values, int64_t align, range_fn fn, void *ctx)
{
	struct tpool *pool = cpu_of(b)->pool;
	if (n * values < PAR_MIN_VALUES || tpool_size(pool) == 1) {
		fn(ctx, 0, n);
		return;
	}
	struct range_job j = { fn, ctx, n, align };
	tpool_run(pool, range_share, &j);
}

#ifdef CPU_HAVE_AVX2_CODE
#define SIMD_RANGE(f) f
#else
#define SIMD_RANGE(f) NULL
#endif

/* par_range over n values for the ops with an 8-wide path (simd, NULL
 * where there is none) beside the plain one: the 8-wide one where the AVX2
 * kernels are active. */
static void par_values(struct backend *b, int64_t n, range_fn simd, range_fn plain, void *ctx)
{
	par_range(b, n, 1, 64, simd && qdot_simd_active() ? simd : plain, ctx);
}

/* The operands of an element-wise op (which fields mean what: the op's own
 * range function says). */
struct ew {
	float *x;
	const float *y;
	const void *w;
	float a, c;
	int width;
};

/* GELU (tanh approximation) of every fp16 value, as fp16: ggml evaluates
 * GELU by rounding the input to fp16 and looking it up here. */
static uint16_t gelu_table[(1 << 16) + 1]; /* + 1: gelu_mul_range_avx2's gather */
static pthread_once_t gelu_once = PTHREAD_ONCE_INIT;

/* ggml's ggml_gelu_f32 as its -mfma build computes it: 1 + c*x*x becomes
 * fma(c*x, x, 1) (checked in the disassembly of ggml_cpu_init, which
 * fills ggml's table); the rest are plain multiplies.  fmaf is exact in
 * software too, so the table is the same on any CPU. */
static float gelu_f32(float x)
{
	const float c = 0.044715f, sqrt_2_over_pi = 0.79788456080286535587989211986876f;
	return 0.5f * x * (1.0f + tanhf(sqrt_2_over_pi * x * fmaf(c * x, x, 1.0f)));
}

static void gelu_table_fill(void)
{
	for (uint32_t i = 0; i < (1u << 16); i++)
		gelu_table[i] = fp32_to_fp16(gelu_f32(fp16_to_fp32((uint16_t)i)));
}

void cpu_gelu_init(void)
{
	pthread_once(&gelu_once, gelu_table_fill);
}

static void gelu_mul_range(void *ctx, int64_t lo, int64_t hi)
{
	const struct ew *e = ctx;
	float *g = e->x;
	const float *u = e->y;
	for (int64_t i = lo; i < hi; i++) {
		float x = g[i];
		if (x <= -10.0f)
			g[i] = 0.0f; /* +0, as ggml stores it (not 0 * u, which may be -0) */
		else if (x >= 10.0f)
			g[i] = x * u[i];
		else
			g[i] = fp16_to_fp32(gelu_table[fp32_to_fp16(x)]) * u[i];
	}
}

#ifdef CPU_HAVE_AVX2_CODE
/* gelu_mul_range 8 values at a time: F16C rounds to fp16 as fp32_to_fp16
 * (nearest even, NaN quieted alike) and widens exactly, the table is read
 * by a gather (32-bit loads at 2-byte steps: the table has a spare entry
 * for the last one), and the same single multiply by u follows. */
CPU_AVX2 static void gelu_mul_range_avx2(void *ctx, int64_t lo, int64_t hi)
{
	const struct ew *e = ctx;
	float *g = e->x;
	const float *u = e->y;
	const __m256 lo10 = _mm256_set1_ps(-10.0f), hi10 = _mm256_set1_ps(10.0f);
	const __m256i low16 = _mm256_set1_epi32(0xffff);
	int64_t i = lo;
	for (; i + 8 <= hi; i += 8) {
		const __m256 x = _mm256_loadu_ps(g + i), uv = _mm256_loadu_ps(u + i);
		const __m256i h = _mm256_cvtepu16_epi32(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
		const __m256i t = _mm256_and_si256(_mm256_i32gather_epi32((const int *)gelu_table, h, 2), low16);
		const __m128i t16 = _mm_packus_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
		__m256 r = _mm256_mul_ps(_mm256_cvtph_ps(t16), uv);
		r = _mm256_blendv_ps(r, _mm256_mul_ps(x, uv), _mm256_cmp_ps(x, hi10, _CMP_GE_OQ));
		r = _mm256_andnot_ps(_mm256_cmp_ps(x, lo10, _CMP_LE_OQ), r);
		_mm256_storeu_ps(g + i, r);
	}
	if (i < hi)
		gelu_mul_range(ctx, i, hi);
}
#endif

void cpu_gelu_mul(struct backend *b, float *g, const float *u, int64_t n)
{
	struct ew e = { .x = g, .y = u };
	par_values(b, n, SIMD_RANGE(gelu_mul_range_avx2), gelu_mul_range, &e);
}

static void silu_mul_range(void *ctx, int64_t lo, int64_t hi)
{
	const struct ew *e = ctx;
	for (int64_t i = lo; i < hi; i++)
		e->x[i] = e->x[i] / (1.0f + expf(-e->x[i])) * e->y[i];
}

#ifdef CPU_HAVE_AVX2_CODE
/* ggml_vec_swiglu_f32: 8 values at a time with ggml's exp, times u; a tail
 * of fewer than 8 with libm's expf.  ggml restarts the 8-groups at every
 * row of n_ff values, which is the same grouping as long as n_ff is a
 * multiple of 8 (true of every model we know). */
CPU_AVX2 static void silu_mul_range_avx2(void *ctx, int64_t lo, int64_t hi)
{
	const struct ew *e = ctx;
	int64_t i = lo;
	for (; i + 8 <= hi; i += 8)
		_mm256_storeu_ps(e->x + i, _mm256_mul_ps(cpu_silu8(_mm256_loadu_ps(e->x + i)),
							 _mm256_loadu_ps(e->y + i)));
	silu_mul_range(ctx, i, hi);
}
#endif

void cpu_silu_mul(struct backend *b, float *g, const float *u, int64_t n)
{
	struct ew e = { .x = g, .y = u };
	par_values(b, n, SIMD_RANGE(silu_mul_range_avx2), silu_mul_range, &e);
}

/* ggml's swiglu_oai has no SIMD path: one loop, its operations. */
static void swiglu_oai_range(void *ctx, int64_t lo, int64_t hi)
{
	const struct ew *e = ctx;
	const float alpha = e->a, limit = e->c;
	float *g = e->x;
	const float *u = e->y;
	for (int64_t i = lo; i < hi; i++) {
		const float x = limit < g[i] ? limit : g[i];             /* std::min */
		const float y = u[i] < -limit ? -limit : limit < u[i] ? limit : u[i]; /* std::clamp */
		const float glu = x / (1.0f + expf(alpha * (-x)));
		g[i] = glu * (y + 1.0f);
	}
}

void cpu_swiglu_oai(struct backend *b, float *g, const float *u, int64_t n, float alpha,
			   float limit)
{
	struct ew e = { .x = g, .y = u, .a = alpha, .c = limit };
	par_range(b, n, 1, 64, swiglu_oai_range, &e);
}

static void add_range(void *ctx, int64_t lo, int64_t hi)
{
	const struct ew *e = ctx;
	for (int64_t i = lo; i < hi; i++)
		e->x[i] += e->y[i];
}

void cpu_add(struct backend *b, float *x, const float *y, int64_t n)
{
	struct ew e = { .x = x, .y = y };
	par_range(b, n, 1, 64, add_range, &e);
}

void cpu_add_bias(struct backend *b, float *x, const struct wtensor *bias, int n)
{
	const float *bv = bias->data;
	for (int t = 0; t < n; t++)
		for (int64_t i = 0; i < bias->ne0; i++)
			x[t * bias->ne0 + i] += bv[i];
}

/* Rows [lo, hi) of e->y (x, w->data or NULL, eps in a) normalised. */
/* Row t scaled: ggml's rms_norm from the row's sum of squares. */
static void rmsnorm_apply(const struct ew *e, int64_t t, double sum)
{
	const struct wtensor *w = e->w;
	const float *wv = w ? w->data : NULL;
	const int width = e->width;
	const float *xr = e->y + t * width;
	float *yr = e->x + t * width;
	const float scale = 1.0f / sqrtf((float)(sum / width) + e->a);
	for (int i = 0; i < width; i++)
		yr[i] = wv ? (xr[i] * scale) * wv[i] : xr[i] * scale;
}

/* ggml's sum of squares: each square rounded to float, added in double in
 * order - one chain of dependent additions per row. */
static double rmsnorm_sum(const float *xr, int width)
{
	double sum = 0.0;
	for (int i = 0; i < width; i++)
		sum += (double)(xr[i] * xr[i]);
	return sum;
}

static void rmsnorm_range(void *ctx, int64_t lo, int64_t hi)
{
	const struct ew *e = ctx;
	for (int64_t t = lo; t < hi; t++)
		rmsnorm_apply(e, t, rmsnorm_sum(e->y + t * e->width, e->width));
}

#ifdef CPU_HAVE_AVX2_CODE
/* Four rows' sums at once, one row per double lane: each lane adds its
 * row's squares in the row's order, so every sum is rmsnorm_sum's, bit for
 * bit; four chains instead of one hide the additions' latency (a prefill's
 * norms: 2.3% of a 1-thread Gemma 3 270M pp512 with one chain). */
CPU_AVX2 static void rmsnorm_range_avx2(void *ctx, int64_t lo, int64_t hi)
{
	const struct ew *e = ctx;
	const int width = e->width, w4 = width & ~3;
	int64_t t = lo;
	for (; t + 4 <= hi; t += 4) {
		const float *x0 = e->y + t * width, *x1 = x0 + width, *x2 = x1 + width, *x3 = x2 + width;
		__m256d sum = _mm256_setzero_pd();
		for (int i = 0; i < w4; i += 4) {
			/* rows x0..x3, values i..i+3: transposed so that vector j
			 * holds value i + j of the four rows */
			__m128 r0 = _mm_loadu_ps(x0 + i), r1 = _mm_loadu_ps(x1 + i);
			__m128 r2 = _mm_loadu_ps(x2 + i), r3 = _mm_loadu_ps(x3 + i);
			_MM_TRANSPOSE4_PS(r0, r1, r2, r3);
			sum = _mm256_add_pd(sum, _mm256_cvtps_pd(_mm_mul_ps(r0, r0)));
			sum = _mm256_add_pd(sum, _mm256_cvtps_pd(_mm_mul_ps(r1, r1)));
			sum = _mm256_add_pd(sum, _mm256_cvtps_pd(_mm_mul_ps(r2, r2)));
			sum = _mm256_add_pd(sum, _mm256_cvtps_pd(_mm_mul_ps(r3, r3)));
		}
		for (int i = w4; i < width; i++) {
			const __m128 v = _mm_setr_ps(x0[i], x1[i], x2[i], x3[i]);
			sum = _mm256_add_pd(sum, _mm256_cvtps_pd(_mm_mul_ps(v, v)));
		}
		double s[4];
		_mm256_storeu_pd(s, sum);
		for (int r = 0; r < 4; r++)
			rmsnorm_apply(e, t + r, s[r]);
	}
	rmsnorm_range(ctx, t, hi);
}
#endif

void cpu_rmsnorm(struct backend *b, const float *x, const struct wtensor *w, float *y,
			int width, int n, float eps)
{
	struct ew e = { .x = y, .y = x, .w = w, .a = eps, .width = width };
	range_fn simd = SIMD_RANGE(rmsnorm_range_avx2);
	par_range(b, n, width, 4, simd && qdot_simd_active() ? simd : rmsnorm_range, &e);
}

/* Rotate one head's pairs (a, c) = (x[i], x[i + n_rot/2]) (NEOX) or
 * (x[2i], x[2i + 1]) (NORM) as ggml's compiled loops do: GCC contracts its
 * `x0*cos - x1*sin` and `x0*sin + x1*cos` into
 *   a' = fma(a, cos, -(c*sin)),  c' = fma(a, sin, c*cos)
 * in both the scalar NEOX loop and the vectorised (fmaddsub) NORM loop;
 * checked element by element against the reference build's output.  (For
 * NORM heads whose pair count is not a multiple of 4, GCC's vector epilogue
 * leaves the last pair unfused; not mirrored, no model we know has one.) */
#ifdef CPU_HAVE_AVX2_CODE
CPU_AVX2 static void rope_head_fma(float *v, int half, bool neox, const float *cs, const float *sn)
{
	for (int i = 0; i < half; i++) {
		const int a = neox ? i : 2 * i, c = neox ? i + half : 2 * i + 1;
		const float x0 = v[a], x1 = v[c];
		v[a] = __builtin_fmaf(x0, cs[i], -(x1 * sn[i]));
		v[c] = __builtin_fmaf(x0, sn[i], x1 * cs[i]);
	}
}
#endif

struct rope_job {
	float *x;
	int n_heads, head_dim, pos0;
	const struct rope_params *rp;
};

/* Rows [lo, hi): each its own angles (position pos0 + t). */
static void rope_range(void *ctx, int64_t lo, int64_t hi)
{
	const struct rope_job *j = ctx;
	const struct rope_params *rp = j->rp;
	const int half = rp->n_rot / 2;
	const bool neox = rp->kind == ROPE_NEOX;
	const float theta_scale = powf(rp->base, -2.0f / (float)rp->n_rot);
	float cs[512], sn[512]; /* n_rot <= 1024 is checked at model load */
#ifdef CPU_HAVE_AVX2_CODE
	const bool fused = qdot_simd_active();
#endif

	/* 1 unless YaRN or attn_factor scale the magnitude (x * 1 is exact) */
	const float mscale = rope_yarn_mscale(rp);

	for (int64_t t = lo; t < hi; t++) {
		float theta = (float)(j->pos0 + t);
		for (int i = 0; i < half; i++) {
			float ff = rp->freq_factors ? rp->freq_factors[i] : 1.0f;
			float th = rope_yarn_theta(rp, i, theta / ff);
			cs[i] = cosf(th) * mscale;
			sn[i] = sinf(th) * mscale;
			theta *= theta_scale;
		}
		for (int h = 0; h < j->n_heads; h++) {
			float *v = j->x + (t * j->n_heads + h) * j->head_dim;
#ifdef CPU_HAVE_AVX2_CODE
			if (fused) {
				rope_head_fma(v, half, neox, cs, sn);
				continue;
			}
#endif
			for (int i = 0; i < half; i++) {
				int a = neox ? i : 2 * i;
				int c = neox ? i + half : 2 * i + 1;
				/* rope_head_fma's formula, whatever the compiler
				 * would contract: the scalar path (the reference the
				 * CUDA kernel is held to) rounds as the SIMD one */
				float x0 = v[a], x1 = v[c];
				v[a] = fmaf(x0, cs[i], -(x1 * sn[i]));
				v[c] = fmaf(x0, sn[i], x1 * cs[i]);
			}
		}
	}
}

void cpu_rope(struct backend *b, float *x, int n, int n_heads, int head_dim, int pos0,
		     const struct rope_params *rp)
{
	struct rope_job j = { x, n_heads, head_dim, pos0, rp };
	par_range(b, n, (int64_t)n_heads * head_dim, 1, rope_range, &j);
}

static void round_fp16_range(void *ctx, int64_t lo, int64_t hi)
{
	const struct ew *e = ctx;
	for (int64_t i = lo; i < hi; i++)
		e->x[i] = fp16_to_fp32(fp32_to_fp16(e->y[i]));
}

#ifdef CPU_HAVE_AVX2_CODE
/* F16C both ways: vcvtps2ph as in store_fp16_range_avx2 (below), and
 * vcvtph2ps is exact as fp16_to_fp32 is - the same bits.  Scalar, this
 * (the K/V rows' rounding to the fp16 cache's values) was 1.8% of the
 * default model's 1-thread pp512. */
CPU_AVX2 static void round_fp16_range_avx2(void *ctx, int64_t lo, int64_t hi)
{
	const struct ew *e = ctx;
	int64_t i = lo;
	for (; i + 8 <= hi; i += 8)
		_mm256_storeu_ps(e->x + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(e->y + i),
									  _MM_FROUND_TO_NEAREST_INT)));
	round_fp16_range(ctx, i, hi);
}
#endif

void cpu_round_fp16(struct backend *b, float *dst, const float *src, int64_t n)
{
	struct ew e = { .x = dst, .y = src };
	par_values(b, n, SIMD_RANGE(round_fp16_range_avx2), round_fp16_range, &e);
}

/* e->w: the halves; e->y: the floats. */
static void store_fp16_range(void *ctx, int64_t lo, int64_t hi)
{
	const struct ew *e = ctx;
	uint16_t *dst = (uint16_t *)e->w;
	for (int64_t i = lo; i < hi; i++)
		dst[i] = fp32_to_fp16(e->y[i]);
}

#ifdef CPU_HAVE_AVX2_CODE
/* F16C's vcvtps2ph rounds to nearest even and quiets NaN as fp32_to_fp16
 * does, so both paths store the same bits. */
CPU_AVX2 static void store_fp16_range_avx2(void *ctx, int64_t lo, int64_t hi)
{
	const struct ew *e = ctx;
	uint16_t *dst = (uint16_t *)e->w;
	int64_t i = lo;
	for (; i + 8 <= hi; i += 8)
		_mm_storeu_si128((__m128i *)(dst + i),
				 _mm256_cvtps_ph(_mm256_loadu_ps(e->y + i), _MM_FROUND_TO_NEAREST_INT));
	store_fp16_range(ctx, i, hi);
}
#endif

void cpu_store_fp16(struct backend *b, uint16_t *dst, const float *src, int64_t n)
{
	struct ew e = { .y = src, .w = dst };
	par_values(b, n, SIMD_RANGE(store_fp16_range_avx2), store_fp16_range, &e);
}

static void scale_range(void *ctx, int64_t lo, int64_t hi)
{
	const struct ew *e = ctx;
	for (int64_t i = lo; i < hi; i++)
		e->x[i] *= e->a;
}

void cpu_scale(struct backend *b, float *x, float s, int64_t n)
{
	struct ew e = { .x = x, .a = s };
	par_range(b, n, 1, 64, scale_range, &e);
}
