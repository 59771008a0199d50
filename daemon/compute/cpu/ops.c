/* ops.c - the CPU backend's element-wise and row operations, and its
 * constructor.  Numerics follow ggml's CPU code (its AVX2+FMA build, see
 * docs/reference.md) operation for operation, because our greedy tokens are
 * checked against llama.cpp's and a near-tie can flip on the last bit: RMS
 * sums in double; RoPE angles built by repeated float multiplication and
 * the rotation with the fused multiply-adds GCC emits for ggml's C; GELU
 * through an fp16 table whose entries use the same fused multiply-add; SiLU
 * with ggml's polynomial exp on 8 values at a time.  Without AVX2 (or with
 * SMOKE_NO_SIMD) the same maths runs unfused, equal to within rounding. */
#include "compute/cpu/cpu_backend.h"
#include "compute/cpu/qdot.h"
#include "compute/cpu/simd_avx2.h"
#include "quant/qtype.h"
#include "util/fp16.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* GELU (tanh approximation) of every fp16 value, as fp16: ggml evaluates
 * GELU by rounding the input to fp16 and looking it up here. */
static uint16_t gelu_table[1 << 16];
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

static void gelu_table_init(void)
{
	for (uint32_t i = 0; i < (1u << 16); i++)
		gelu_table[i] = fp32_to_fp16(gelu_f32(fp16_to_fp32((uint16_t)i)));
}

static void cpu_gelu_mul(struct backend *b, float *g, const float *u, int64_t n)
{
	for (int64_t i = 0; i < n; i++) {
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
/* ggml_vec_swiglu_f32: 8 values at a time with ggml's exp, times u; a tail
 * of fewer than 8 with libm's expf.  ggml restarts the 8-groups at every
 * row of n_ff values, which is the same grouping as long as n_ff is a
 * multiple of 8 (true of every model we know). */
CPU_AVX2 static void silu_mul_avx2(float *g, const float *u, int64_t n)
{
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(g + i, _mm256_mul_ps(cpu_silu8(_mm256_loadu_ps(g + i)),
						      _mm256_loadu_ps(u + i)));
	for (; i < n; i++)
		g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}
#endif

static void cpu_silu_mul(struct backend *b, float *g, const float *u, int64_t n)
{
#ifdef CPU_HAVE_AVX2_CODE
	if (qdot_simd_active()) {
		silu_mul_avx2(g, u, n);
		return;
	}
#endif
	for (int64_t i = 0; i < n; i++)
		g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* ggml's swiglu_oai has no SIMD path: one loop, its operations. */
static void cpu_swiglu_oai(struct backend *b, float *g, const float *u, int64_t n, float alpha,
			   float limit)
{
	(void)b;
	for (int64_t i = 0; i < n; i++) {
		const float x = limit < g[i] ? limit : g[i];             /* std::min */
		const float y = u[i] < -limit ? -limit : limit < u[i] ? limit : u[i]; /* std::clamp */
		const float glu = x / (1.0f + expf(alpha * (-x)));
		g[i] = glu * (y + 1.0f);
	}
}

static void cpu_add(struct backend *b, float *x, const float *y, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		x[i] += y[i];
}

static void cpu_add_bias(struct backend *b, float *x, const struct wtensor *bias, int n)
{
	const float *bv = bias->data;
	for (int t = 0; t < n; t++)
		for (int64_t i = 0; i < bias->ne0; i++)
			x[t * bias->ne0 + i] += bv[i];
}

static void cpu_rmsnorm(struct backend *b, const float *x, const struct wtensor *w, float *y,
			int width, int n, float eps)
{
	const float *wv = w ? w->data : NULL;
	for (int t = 0; t < n; t++) {
		const float *xr = x + (int64_t)t * width;
		float *yr = y + (int64_t)t * width;
		double sum = 0.0;
		for (int i = 0; i < width; i++)
			sum += (double)(xr[i] * xr[i]);
		float scale = 1.0f / sqrtf((float)(sum / width) + eps);
		for (int i = 0; i < width; i++)
			yr[i] = wv ? (xr[i] * scale) * wv[i] : xr[i] * scale;
	}
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

static void cpu_rope(struct backend *b, float *x, int n, int n_heads, int head_dim, int pos0,
		     const struct rope_params *rp)
{
	const int half = rp->n_rot / 2;
	const bool neox = rp->kind == ROPE_NEOX;
	const float theta_scale = powf(rp->base, -2.0f / (float)rp->n_rot);
	float cs[512], sn[512]; /* n_rot <= 1024 is checked at model load */
#ifdef CPU_HAVE_AVX2_CODE
	const bool fused = qdot_simd_active();
#endif

	/* 1 unless YaRN or attn_factor scale the magnitude (x * 1 is exact) */
	const float mscale = rope_yarn_mscale(rp);

	for (int t = 0; t < n; t++) {
		float theta = (float)(pos0 + t);
		for (int i = 0; i < half; i++) {
			float ff = rp->freq_factors ? rp->freq_factors[i] : 1.0f;
			float th = rope_yarn_theta(rp, i, theta / ff);
			cs[i] = cosf(th) * mscale;
			sn[i] = sinf(th) * mscale;
			theta *= theta_scale;
		}
		for (int h = 0; h < n_heads; h++) {
			float *v = x + ((int64_t)t * n_heads + h) * head_dim;
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

static int cpu_embed(struct backend *b, const struct wtensor *table, const int32_t *tok, int n,
		     float scale, float *y)
{
	const struct qtype_info *qi = qtype_info(table->type);
	if (!qi || !qi->dequant_row)
		return -EINVAL;
	for (int t = 0; t < n; t++) {
		if (tok[t] < 0 || tok[t] >= table->ne1)
			return -ERANGE;
		float *yr = y + (int64_t)t * table->ne0;
		qi->dequant_row(wtensor_row(table, tok[t]), yr, table->ne0);
		if (scale != 1.0f)
			for (int64_t i = 0; i < table->ne0; i++)
				yr[i] *= scale;
	}
	return 0;
}

static void cpu_round_fp16(struct backend *b, float *dst, const float *src, int64_t n)
{
	(void)b;
	for (int64_t i = 0; i < n; i++)
		dst[i] = fp16_to_fp32(fp32_to_fp16(src[i]));
}

#ifdef CPU_HAVE_AVX2_CODE
/* F16C's vcvtps2ph rounds to nearest even and quiets NaN as fp32_to_fp16
 * does, so both paths store the same bits. */
CPU_AVX2 static void store_fp16_avx2(uint16_t *dst, const float *src, int64_t n)
{
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(dst + i),
				 _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
	for (; i < n; i++)
		dst[i] = fp32_to_fp16(src[i]);
}
#endif

static void cpu_store_fp16(struct backend *b, uint16_t *dst, const float *src, int64_t n)
{
	(void)b;
#ifdef CPU_HAVE_AVX2_CODE
	if (qdot_simd_active()) {
		store_fp16_avx2(dst, src, n);
		return;
	}
#endif
	for (int64_t i = 0; i < n; i++)
		dst[i] = fp32_to_fp16(src[i]);
}

static void cpu_scale(struct backend *b, float *x, float s, int64_t n)
{
	(void)b;
	for (int64_t i = 0; i < n; i++)
		x[i] *= s;
}

static void cpu_copy(struct backend *b, void *dst, const void *src, size_t bytes)
{
	(void)b;
	memmove(dst, src, bytes);
}

static void cpu_gather_rows(struct backend *b, float *dst, const float *src, const int32_t *rows,
			    int n, int64_t width)
{
	(void)b;
	for (int i = 0; i < n; i++)
		memcpy(dst + (int64_t)i * width, src + (int64_t)rows[i] * width, sizeof(float) * (size_t)width);
}

static void cpu_scatter_scaled_rows(struct backend *b, float *dst, const float *src,
				    const int32_t *rows, const float *scale, int n, int64_t width)
{
	(void)b;
	for (int i = 0; i < n; i++) {
		float *y = dst + (int64_t)rows[i] * width;
		const float *x = src + (int64_t)i * width, s = scale[i];
		for (int64_t j = 0; j < width; j++)
			y[j] = x[j] * s;
	}
}

/* The CPU backend's memory is the process's: 64-byte aligned for the SIMD
 * loads, and every op has finished when it returns. */
static int cpu_alloc(struct backend *b, void **out, size_t bytes, struct smk_err *err)
{
	(void)b;
	*out = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
	if (!*out)
		return smk_fail(err, -ENOMEM, "cpu backend: cannot allocate %zu bytes", bytes);
	return 0;
}

static void cpu_free_mem(struct backend *b, void *p)
{
	(void)b;
	free(p);
}

static int cpu_move(struct backend *b, void *dst, const void *src, size_t bytes,
		    struct smk_err *err)
{
	(void)b;
	(void)err;
	memmove(dst, src, bytes);
	return 0;
}

static int cpu_sync(struct backend *b, struct smk_err *err)
{
	(void)b;
	(void)err;
	return 0;
}

static void cpu_free(struct backend *b)
{
	struct cpu_backend *cb = cpu_of(b);
	tpool_free(cb->pool);
	free(cb->act);
	free(cb->scores);
	free(cb);
}

static const struct backend_ops cpu_ops = {
	.name = "cpu",
	.free = cpu_free,
	.matmul = cpu_matmul,
	.matmuls = cpu_matmuls,
	.rmsnorm = cpu_rmsnorm,
	.rope = cpu_rope,
	.attention = cpu_attention,
	.gelu_mul = cpu_gelu_mul,
	.silu_mul = cpu_silu_mul,
	.swiglu_oai = cpu_swiglu_oai,
	.add = cpu_add,
	.embed = cpu_embed,
	.add_bias = cpu_add_bias,
	.round_fp16 = cpu_round_fp16,
	.store_fp16 = cpu_store_fp16,
	.scale = cpu_scale,
	.copy = cpu_copy,
	.host_memory = true,
	.alloc = cpu_alloc,
	.free_mem = cpu_free_mem,
	.upload = cpu_move,
	.download = cpu_move,
	.sync = cpu_sync,
	.gather_rows = cpu_gather_rows,
	.scatter_scaled_rows = cpu_scatter_scaled_rows,
};

int backend_cpu_new(struct backend **out, const struct backend_limits *lim, struct smk_err *err)
{
	if (lim->max_cols <= 0 || lim->max_rows <= 0 || lim->max_ctx <= 0)
		return smk_fail(err, -EINVAL, "cpu backend: limits must be positive");
	char why[200];
	if (qdot_cpu_check(why, sizeof(why)))
		return smk_fail(err, -EINVAL, "cpu backend: %s", why);
	pthread_once(&gelu_once, gelu_table_init);

	struct cpu_backend *cb = calloc(1, sizeof(*cb));
	if (!cb)
		return smk_fail(err, -ENOMEM, "cpu backend: out of memory");
	cb->base.ops = &cpu_ops;
	cb->base.limits = *lim;
	int rc = tpool_new(&cb->pool, lim->n_threads, err);
	if (rc) {
		free(cb);
		return rc;
	}
	cb->base.limits.n_threads = tpool_size(cb->pool);

	/* The widest prepared activation row any weight type asks for. */
	size_t per_row = 0;
	for (uint32_t t = 0; t < QTYPE_COUNT; t++) {
		if (!qtype_can_compute(t) || qdot_act_type(t) == QTYPE_F32)
			continue;
		size_t r = qdot_act_row_bytes(t, lim->max_cols);
		if (r > per_row)
			per_row = r;
	}
	cb->act_bytes = per_row * (size_t)lim->max_rows;
	cb->act = aligned_alloc(64, (cb->act_bytes + 63) / 64 * 64 + 64);
	/* The SIMD attention scores whole 8-position groups around the
	 * window, up to 14 cells more than the window itself. */
	cb->scores_row = (lim->max_ctx + 16 + 7) / 8 * 8;
	cb->scores = malloc(sizeof(float) * (size_t)cb->scores_row * CPU_ATTN_HEADS *
			    (size_t)cb->base.limits.n_threads);
	if (!cb->act || !cb->scores) {
		cpu_free(&cb->base);
		return smk_fail(err, -ENOMEM, "cpu backend: cannot allocate scratch");
	}
	*out = &cb->base;
	return 0;
}
