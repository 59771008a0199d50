/* cuda_ops.cu - the row and element-wise kernels: RMSNorm, RoPE, GeGLU,
 * SwiGLU, add, bias, fp16 rounding; and the host-side GELU table.
 *
 * Each follows the CPU backend's arithmetic (compute/cpu/ops.c) at the
 * points where rounding decides the result:
 *   RMSNorm  squares rounded to float, summed in double; scale =
 *            1/sqrtf((float)(sum/width) + eps) with IEEE division and square
 *            root (nvcc's defaults, no fast math); y = (x*scale)*w.
 *   RoPE     theta_i built by repeated float multiplication from pos (one
 *            thread, in order, as the CPU loop); theta_scale = powf(base,
 *            -2/n_rot) computed on the host with the CPU's libm; the
 *            rotation a' = fma(a, cos, -(c*sin)), c' = fma(a, sin, c*cos) as
 *            the CPU's AVX2 build (and ggml's compiled loops) fuse it.
 *            cosf/sinf are CUDA's (within 2 ulp), not glibc's.
 *   GeGLU    through the same fp16 GELU table, built on the host by the
 *            CPU's formula: bit-identical results.
 *   SwiGLU   g / (1 + expf(-g)) * u with CUDA's expf.
 */
#include "compute/cuda/cuda_internal.cuh"

#include <math.h>

#define ROW_THREADS 256
#define EW_THREADS 256
#define ROPE_THREADS 128
#define ROPE_MAX_HALF 512

/* ---- RMSNorm ---------------------------------------------------------------- */

static __global__ void __launch_bounds__(ROW_THREADS) rms_kernel(
	const float *x, const float *__restrict__ w, float *y, int width, float eps)
{
	SMK_SHARED(double, part, ROW_THREADS / 32);
	SMK_SHARED(float, scale_s, 1);
	const int tid = threadIdx.x;
	const float *xr = x + (int64_t)blockIdx.x * width;
	float *yr = y + (int64_t)blockIdx.x * width;
	double s = 0.0;
	for (int i = tid; i < width; i += ROW_THREADS)
		s += (double)smk_mul(xr[i], xr[i]);
	s = smk_warp_sum_d(s);
	if ((tid & 31) == 0)
		part[tid >> 5] = s;
	__syncthreads();
	if (tid == 0) {
		double sum = 0.0;
		for (int i = 0; i < ROW_THREADS / 32; i++)
			sum += part[i];
		scale_s[0] = 1.0f / sqrtf((float)(sum / width) + eps);
	}
	__syncthreads();
	/* every value was read above by the thread that now writes it, so
	 * y == x is safe */
	const float sc = scale_s[0];
	for (int i = tid; i < width; i += ROW_THREADS)
		yr[i] = w ? smk_mul(smk_mul(xr[i], sc), w[i]) : smk_mul(xr[i], sc);
}

extern "C" int cuda_rmsnorm(const struct cuda_ctx *c, const float *x, const float *w, float *y,
			    int width, int n, float eps, struct smk_err *err)
{
	if (width <= 0 || n <= 0 || !x || !y)
		return smk_fail(err, -EINVAL, "rmsnorm: %d rows of width %d", n, width);
	SMK_LAUNCH(rms_kernel, dim3((unsigned)n), dim3(ROW_THREADS), 0, c->stream, x, w, y, width,
		   eps);
	CUDA_CHECK(err, cudaGetLastError());
	return 0;
}

/* ---- RoPE -------------------------------------------------------------------- */

/* The n_rot/2 frequency divisors (llama3's rope_freqs), by value. */
struct rope_ff {
	float f[ROPE_MAX_HALF];
};

/* YaRN's settings (backend.h rope_params), by value; ext_factor 0 = off. */
struct rope_yarn {
	float ext_factor, mscale, corr0, corr1;
};

template <bool NEOX, bool FF>
static __global__ void __launch_bounds__(ROPE_THREADS) rope_kernel(
	float *x, int n_heads, int head_dim, int half, int pos0, float theta_scale,
	float freq_scale, const struct rope_ff ff, const struct rope_yarn yr)
{
	SMK_SHARED(float, cs, ROPE_MAX_HALF);
	SMK_SHARED(float, sn, ROPE_MAX_HALF);
	const int tid = threadIdx.x, t = blockIdx.x;
	if (tid == 0) {
		/* the CPU's sequence of roundings: theta *= theta_scale */
		float theta = (float)(pos0 + t);
		for (int i = 0; i < half; i++) {
			cs[i] = theta;
			theta *= theta_scale;
		}
	}
	__syncthreads();
	for (int i = tid; i < half; i += ROPE_THREADS) {
		const float theta = cs[i];
		const float te = FF ? theta / ff.f[i] : theta;
		float th = smk_mul(freq_scale, te);
		if (yr.ext_factor != 0.0f) {
			/* rope_yarn_theta (backend.h), the same operations */
			const float d = yr.corr1 - yr.corr0;
			const float y = ((float)i - yr.corr0) / (d > 0.001f ? d : 0.001f);
			const float mix = smk_mul(1.0f - (y < 0.0f ? 0.0f : y > 1.0f ? 1.0f : y),
						  yr.ext_factor);
			th = smk_fma(th, 1.0f - mix, smk_mul(te, mix));
		}
		/* times 1 when YaRN is off and attn_factor is 1: exact */
		cs[i] = smk_mul(cosf(th), yr.mscale);
		sn[i] = smk_mul(sinf(th), yr.mscale);
	}
	__syncthreads();
	float *xr = x + (int64_t)t * n_heads * head_dim;
	for (int j = tid; j < n_heads * half; j += ROPE_THREADS) {
		const int h = j / half, i = j % half;
		float *v = xr + (int64_t)h * head_dim;
		const int a = NEOX ? i : 2 * i, b = NEOX ? i + half : 2 * i + 1;
		const float x0 = v[a], x1 = v[b];
		v[a] = smk_fma(x0, cs[i], -smk_mul(x1, sn[i]));
		v[b] = smk_fma(x0, sn[i], smk_mul(x1, cs[i]));
	}
}

extern "C" int cuda_rope(const struct cuda_ctx *c, float *x, int n, int n_heads, int head_dim,
			 int pos0, const struct rope_params *rp, struct smk_err *err)
{
	if (n <= 0 || n_heads <= 0 || head_dim <= 0 || pos0 < 0 || !x)
		return smk_fail(err, -EINVAL, "rope: %d rows, %d heads of %d, position %d", n,
				n_heads, head_dim, pos0);
	if (rp->n_rot <= 0 || rp->n_rot % 2 || rp->n_rot > head_dim ||
	    rp->n_rot / 2 > ROPE_MAX_HALF)
		return smk_fail(err, -EINVAL, "rope: n_rot %d (head_dim %d; even, at most %d)",
				rp->n_rot, head_dim, 2 * ROPE_MAX_HALF);
	const int half = rp->n_rot / 2;
	/* host powf, as the CPU backend computes it */
	const float theta_scale = powf(rp->base, -2.0f / (float)rp->n_rot);
	struct rope_ff ff;
	memset(&ff, 0, sizeof(ff));
	if (rp->freq_factors)
		memcpy(ff.f, rp->freq_factors, sizeof(float) * (size_t)half);
	const bool neox = rp->kind == ROPE_NEOX, has_ff = rp->freq_factors != NULL;
	const struct rope_yarn yr = { rp->ext_factor, rope_yarn_mscale(rp), rp->corr_dims[0],
				      rp->corr_dims[1] };
	void (*k)(float *, int, int, int, int, float, float, const struct rope_ff,
		  const struct rope_yarn) =
		neox ? (has_ff ? rope_kernel<true, true> : rope_kernel<true, false>)
		     : (has_ff ? rope_kernel<false, true> : rope_kernel<false, false>);
	SMK_LAUNCH(k, dim3((unsigned)n), dim3(ROPE_THREADS), 0, c->stream, x, n_heads, head_dim,
		   half, pos0, theta_scale, rp->freq_scale, ff, yr);
	CUDA_CHECK(err, cudaGetLastError());
	return 0;
}

/* ---- element-wise -------------------------------------------------------------- */

static __global__ void __launch_bounds__(EW_THREADS) gelu_mul_kernel(
	float *g, const float *__restrict__ u, int64_t n, const uint16_t *__restrict__ tab)
{
	for (int64_t i = (int64_t)blockIdx.x * EW_THREADS + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * EW_THREADS) {
		const float x = g[i];
		if (x <= -10.0f)
			g[i] = 0.0f; /* +0, as the CPU (and ggml) store it */
		else if (x >= 10.0f)
			g[i] = smk_mul(x, u[i]);
		else
			g[i] = smk_mul(smk_half_to_float(tab[smk_float_to_half_bits(x)]), u[i]);
	}
}

static __global__ void __launch_bounds__(EW_THREADS) silu_mul_kernel(
	float *g, const float *__restrict__ u, int64_t n)
{
	for (int64_t i = (int64_t)blockIdx.x * EW_THREADS + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * EW_THREADS) {
		const float x = g[i];
		g[i] = x / (1.0f + expf(-x)) * u[i];
	}
}

static __global__ void __launch_bounds__(EW_THREADS) add_kernel(
	float *x, const float *y, int64_t n)
{
	for (int64_t i = (int64_t)blockIdx.x * EW_THREADS + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * EW_THREADS)
		x[i] += y[i];
}

static __global__ void __launch_bounds__(EW_THREADS) scale_kernel(
	float *x, float s, int64_t n)
{
	for (int64_t i = (int64_t)blockIdx.x * EW_THREADS + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * EW_THREADS)
		x[i] = smk_mul(x[i], s);
}

static __global__ void __launch_bounds__(EW_THREADS) add_bias_kernel(
	float *x, const float *__restrict__ bias, int64_t width, int64_t n)
{
	for (int64_t i = (int64_t)blockIdx.x * EW_THREADS + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * EW_THREADS)
		x[i] += bias[i % width];
}

static __global__ void __launch_bounds__(EW_THREADS) round_f16_kernel(
	float *dst, const float *src, int64_t n)
{
	for (int64_t i = (int64_t)blockIdx.x * EW_THREADS + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * EW_THREADS)
		dst[i] = smk_round_f16(src[i]);
}

static __global__ void __launch_bounds__(EW_THREADS) store_f16_kernel(
	uint16_t *dst, const float *src, int64_t n)
{
	for (int64_t i = (int64_t)blockIdx.x * EW_THREADS + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * EW_THREADS)
		dst[i] = smk_float_to_half_bits(src[i]);
}

extern "C" int cuda_gelu_mul(const struct cuda_ctx *c, float *g, const float *u, int64_t n,
			     struct smk_err *err)
{
	if (n <= 0 || !g || !u || !c->gelu_table)
		return smk_fail(err, -EINVAL, "gelu_mul: %lld values (or no GELU table)", (long long)n);
	SMK_LAUNCH(gelu_mul_kernel, dim3(cuda_grid_for(n, EW_THREADS)), dim3(EW_THREADS), 0,
		   c->stream, g, u, n, c->gelu_table);
	CUDA_CHECK(err, cudaGetLastError());
	return 0;
}

extern "C" int cuda_silu_mul(const struct cuda_ctx *c, float *g, const float *u, int64_t n,
			     struct smk_err *err)
{
	if (n <= 0 || !g || !u)
		return smk_fail(err, -EINVAL, "silu_mul: %lld values", (long long)n);
	SMK_LAUNCH(silu_mul_kernel, dim3(cuda_grid_for(n, EW_THREADS)), dim3(EW_THREADS), 0,
		   c->stream, g, u, n);
	CUDA_CHECK(err, cudaGetLastError());
	return 0;
}

/* ggml's swiglu_oai, operation for operation (no contraction: the
 * division and the products are separate roundings in ggml too). */
static __global__ void __launch_bounds__(EW_THREADS) swiglu_oai_kernel(
	float *g, const float *__restrict__ u, int64_t n, float alpha, float limit)
{
	for (int64_t i = (int64_t)blockIdx.x * EW_THREADS + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * EW_THREADS) {
		const float gx = g[i], uy = u[i];
		const float x = limit < gx ? limit : gx;
		const float y = uy < -limit ? -limit : limit < uy ? limit : uy;
		const float glu = x / smk_add(1.0f, expf(smk_mul(alpha, -x)));
		g[i] = smk_mul(glu, smk_add(y, 1.0f));
	}
}

extern "C" int cuda_swiglu_oai(const struct cuda_ctx *c, float *g, const float *u, int64_t n,
			       float alpha, float limit, struct smk_err *err)
{
	if (n <= 0 || !g || !u)
		return smk_fail(err, -EINVAL, "swiglu_oai: %lld values", (long long)n);
	SMK_LAUNCH(swiglu_oai_kernel, dim3(cuda_grid_for(n, EW_THREADS)), dim3(EW_THREADS), 0,
		   c->stream, g, u, n, alpha, limit);
	CUDA_CHECK(err, cudaGetLastError());
	return 0;
}

extern "C" int cuda_add(const struct cuda_ctx *c, float *x, const float *y, int64_t n,
			struct smk_err *err)
{
	if (n <= 0 || !x || !y)
		return smk_fail(err, -EINVAL, "add: %lld values", (long long)n);
	SMK_LAUNCH(add_kernel, dim3(cuda_grid_for(n, EW_THREADS)), dim3(EW_THREADS), 0, c->stream,
		   x, y, n);
	CUDA_CHECK(err, cudaGetLastError());
	return 0;
}

extern "C" int cuda_scale(const struct cuda_ctx *c, float *x, float s, int64_t n,
			  struct smk_err *err)
{
	if (n <= 0 || !x)
		return smk_fail(err, -EINVAL, "scale: %lld values", (long long)n);
	SMK_LAUNCH(scale_kernel, dim3(cuda_grid_for(n, EW_THREADS)), dim3(EW_THREADS), 0, c->stream,
		   x, s, n);
	CUDA_CHECK(err, cudaGetLastError());
	return 0;
}

static __global__ void __launch_bounds__(EW_THREADS) gather_rows_kernel(
	float *dst, const float *src, const int32_t *rows, int64_t width, int64_t n)
{
	for (int64_t i = (int64_t)blockIdx.x * EW_THREADS + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * EW_THREADS)
		dst[i] = src[(int64_t)rows[i / width] * width + i % width];
}

static __global__ void __launch_bounds__(EW_THREADS) scatter_scaled_rows_kernel(
	float *dst, const float *src, const int32_t *rows, const float *scale, int64_t width,
	int64_t n)
{
	for (int64_t i = (int64_t)blockIdx.x * EW_THREADS + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * EW_THREADS)
		dst[(int64_t)rows[i / width] * width + i % width] = smk_mul(src[i], scale[i / width]);
}

extern "C" int cuda_gather_rows(const struct cuda_ctx *c, float *dst, const float *src,
				const int32_t *rows, int n, int64_t width, struct smk_err *err)
{
	if (n <= 0 || width <= 0 || !dst || !src || !rows)
		return smk_fail(err, -EINVAL, "gather_rows: %d rows of %lld", n, (long long)width);
	const int64_t total = (int64_t)n * width;
	SMK_LAUNCH(gather_rows_kernel, dim3(cuda_grid_for(total, EW_THREADS)), dim3(EW_THREADS), 0,
		   c->stream, dst, src, rows, width, total);
	CUDA_CHECK(err, cudaGetLastError());
	return 0;
}

extern "C" int cuda_scatter_scaled_rows(const struct cuda_ctx *c, float *dst, const float *src,
					const int32_t *rows, const float *scale, int n,
					int64_t width, struct smk_err *err)
{
	if (n <= 0 || width <= 0 || !dst || !src || !rows || !scale)
		return smk_fail(err, -EINVAL, "scatter_scaled_rows: %d rows of %lld", n, (long long)width);
	const int64_t total = (int64_t)n * width;
	SMK_LAUNCH(scatter_scaled_rows_kernel, dim3(cuda_grid_for(total, EW_THREADS)),
		   dim3(EW_THREADS), 0, c->stream, dst, src, rows, scale, width, total);
	CUDA_CHECK(err, cudaGetLastError());
	return 0;
}

extern "C" int cuda_add_bias(const struct cuda_ctx *c, float *x, const float *bias, int64_t width,
			     int n, struct smk_err *err)
{
	if (width <= 0 || n <= 0 || !x || !bias)
		return smk_fail(err, -EINVAL, "add_bias: %d rows of width %lld", n, (long long)width);
	const int64_t total = width * n;
	SMK_LAUNCH(add_bias_kernel, dim3(cuda_grid_for(total, EW_THREADS)), dim3(EW_THREADS), 0,
		   c->stream, x, bias, width, total);
	CUDA_CHECK(err, cudaGetLastError());
	return 0;
}

extern "C" int cuda_round_fp16(const struct cuda_ctx *c, float *dst, const float *src, int64_t n,
			       struct smk_err *err)
{
	if (n <= 0 || !dst || !src)
		return smk_fail(err, -EINVAL, "round_fp16: %lld values", (long long)n);
	SMK_LAUNCH(round_f16_kernel, dim3(cuda_grid_for(n, EW_THREADS)), dim3(EW_THREADS), 0,
		   c->stream, dst, src, n);
	CUDA_CHECK(err, cudaGetLastError());
	return 0;
}

extern "C" int cuda_store_fp16(const struct cuda_ctx *c, uint16_t *dst, const float *src,
			       int64_t n, struct smk_err *err)
{
	if (n <= 0 || !dst || !src)
		return smk_fail(err, -EINVAL, "store_fp16: %lld values", (long long)n);
	SMK_LAUNCH(store_f16_kernel, dim3(cuda_grid_for(n, EW_THREADS)), dim3(EW_THREADS), 0,
		   c->stream, dst, src, n);
	CUDA_CHECK(err, cudaGetLastError());
	return 0;
}

/* ---- the GELU table (host) ------------------------------------------------------ */

/* compute/cpu/ops.c's gelu_f32: 1 + c*x*x as fma(c*x, x, 1), the rest
 * plain multiplies (no product here feeds an addition, so no compiler can
 * fuse anything else); tanhf is the host libm's, as on the CPU side. */
static float gelu_host(float x)
{
	const float c = 0.044715f, sqrt_2_over_pi = 0.79788456080286535587989211986876f;
	return 0.5f * x * (1.0f + tanhf(sqrt_2_over_pi * x * fmaf(c * x, x, 1.0f)));
}

void cuda_gelu_table_fill(uint16_t *tab)
{
	for (uint32_t i = 0; i < (1u << 16); i++)
		tab[i] = fp32_to_fp16(gelu_host(fp16_to_fp32((uint16_t)i)));
}
