/* cuda_backend.h - the CUDA backend: kernels for every backend op on device
 * pointers, and a struct backend that runs them.
 *
 * Two levels:
 *
 * 1. Kernel calls (cuda_matmul, cuda_rmsnorm, ...).  Every float pointer is
 *    DEVICE memory (activations, weights, KV cache); the work is queued on
 *    the caller's compute stream (struct cuda_ctx) and the call returns
 *    without waiting for it.  Nothing here synchronises the device, the
 *    stream or another stream: ordering is the stream's.  A call checks its
 *    arguments and the launch, and returns 0 or a negative code with a
 *    message in err (util/err.h): -EINVAL for arguments the kernels cannot
 *    take, or the code of the CUDA error (CUDA_CHECK in cuda_check.cuh).  A
 *    fault inside a kernel shows up at the caller's next synchronisation.
 *    Host pointers appear only where named: struct wtensor and struct
 *    attn_params live on the host (their fields are read when the call is
 *    made); rope_params.freq_factors and embed's token ids are host arrays
 *    whose values travel as kernel parameters, so the caller may reuse them
 *    as soon as the call returns.
 *
 * 2. backend_cuda_new(): struct backend_ops over those kernels; the layers
 *    above reach it through compute/backend.h's backend_open, and the
 *    forward pass keeps its activations and KV cache on the device with it.
 *    Every pointer the ops take is a device pointer, and wtensor.data points at device
 *    memory, except rope_params.freq_factors and embed's token ids (host
 *    arrays, as above).  Ops that return void record the first failure; the
 *    next matmul/embed returns it and cuda_be_sync() reports it.
 *
 * Numerics follow the CPU backend's scalar path (the reference,
 * compute/cpu/) operation for operation: matmul quantises each activation
 * row to the CPU's block format and dots it with the weight blocks in
 * integers (cuda_qdot.cuh), GELU reads the same fp16 table, RMSNorm sums
 * squares in double, RoPE fuses its rotation as the CPU does, and attention
 * sums in the CPU's order over the fp16 KV cache.  Under the emulator the
 * forward pass equals the CPU's scalar path to the bit; on a GPU, device
 * expf/sinf/cosf/tanhf differ from glibc's by an ulp or two (docs/cuda.md,
 * Numerics).  tests/unit/compute/cuda states the tolerances op by op.
 */
#ifndef SMK_COMPUTE_CUDA_BACKEND_H
#define SMK_COMPUTE_CUDA_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compute/backend.h"
#include "compute/tensor.h"
#include "util/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CUDA's stream type (cudaStream_t is `struct CUstream_st *`), named here
 * without pulling CUDA headers into C code. */
struct CUstream_st;

/* ---- 1. kernel calls ------------------------------------------------------ */

/* What every kernel call needs.  Made by cuda_ctx_init on the current
 * device; the stream stays the caller's (never destroyed here). */
struct cuda_ctx {
	struct CUstream_st *stream;   /* compute stream; NULL = the legacy default stream */
	uint16_t *gelu_table;         /* device: fp16 GELU of every fp16 value (65536) */
	int max_smem;                 /* dynamic shared memory a block may use (bytes) */
	uint8_t *act;                 /* device: activations quantised for the integer
				       * dot products (cuda_matmul_reserve), or NULL */
	size_t act_bytes;
	int tile_min_n;               /* products of this many rows or more take the
				       * tiled prefill kernel (cuda_matmul_reserve:
				       * 32, or $SMOKE_CUDA_TILE_MIN_N) */
};

/* Allocates the GELU table (128 KiB of device memory) and reads the device
 * limits; blocks until the table is on the device (a one-time cost).
 * Returns 0 or a negative code with err set.  Undo with cuda_ctx_deinit. */
int cuda_ctx_init(struct cuda_ctx *c, struct CUstream_st *stream, struct smk_err *err);
void cuda_ctx_deinit(struct cuda_ctx *c);

/* Allocates c->act for products of up to max_rows activation rows of up
 * to max_cols values (a set-up cost: cudaMalloc; freed by
 * cuda_ctx_deinit).  cuda_matmul needs it for the quantised weight types. */
int cuda_matmul_reserve(struct cuda_ctx *c, int max_rows, int64_t max_cols, struct smk_err *err);

/* Bytes cuda_matmul_reserve takes for those limits. */
size_t cuda_matmul_scratch_bytes(int max_rows, int64_t max_cols);

/* True if cuda_matmul / cuda_embed take weights of this type: F32, F16,
 * BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K. */
bool cuda_can_compute(uint32_t type);

/* y[t][r] = sum_c W[r][c] x[t][c] for t < n, r < w->ne1, c < w->ne0.
 * w->data: device, rows of w->row_bytes in w->type's layout (float types
 * aligned to their element size).  x: n rows of ne0 floats, y: n rows of
 * ne1 floats, both device; y must not overlap x.  n <= 8 runs the
 * matrix-vector kernel (each warp streams one weight row once for all n
 * activation rows: decode), larger n the tiled matrix-matrix kernel
 * (prefill).  TODO: cuBLAS (cublasGemmEx on dequantised tiles, or tensor
 * core MMA on the fly) for large prefill batches; not done yet. */
int cuda_matmul(const struct cuda_ctx *c, const struct wtensor *w, const float *x, int n,
		float *y, struct smk_err *err);

/* y = x / rms(x) * w over n rows of `width` (w: device F32 of width, or
 * NULL); y may equal x. */
int cuda_rmsnorm(const struct cuda_ctx *c, const float *x, const float *w, float *y, int width,
		 int n, float eps, struct smk_err *err);

/* In-place RoPE on n rows of n_heads heads of head_dim (row t at position
 * pos0 + t).  rp->freq_factors: HOST array of n_rot/2 values or NULL.
 * n_rot <= head_dim, n_rot even and <= 1024. */
int cuda_rope(const struct cuda_ctx *c, float *x, int n, int n_heads, int head_dim, int pos0,
	      const struct rope_params *rp, struct smk_err *err);

/* Causal attention, as backend.h's attn_params describes: q and out are
 * n_q rows of n_head*head_dim, k and v hold positions 0..pos0+n_q-1 at
 * kv_stride halves apart (all device; k and v the F16 cache's IEEE halves,
 * q fp16-rounded floats).  The scores of
 * one query row live in shared memory, so the attended span (the window,
 * or pos0 + n_q) is limited to cuda_attention_max_span(). */
int cuda_attention(const struct cuda_ctx *c, const float *q, const uint16_t *k,
		   const uint16_t *v, float *out, const struct attn_params *ap,
		   struct smk_err *err);

/* Longest span cuda_attention takes on this context's device. */
int cuda_attention_max_span(const struct cuda_ctx *c);

/* g[i] = act(g[i]) * u[i]: GeGLU (tanh gelu through the fp16 table, as the
 * CPU) and SwiGLU. */
int cuda_gelu_mul(const struct cuda_ctx *c, float *g, const float *u, int64_t n,
		  struct smk_err *err);
/* gpt-oss's clamped SwiGLU (backend.h swiglu_oai) on device memory. */
int cuda_swiglu_oai(const struct cuda_ctx *c, float *g, const float *u, int64_t n, float alpha,
		    float limit, struct smk_err *err);
int cuda_silu_mul(const struct cuda_ctx *c, float *g, const float *u, int64_t n,
		  struct smk_err *err);

/* x[i] *= s (Gemma's query scaling before the fp16 rounding) */
int cuda_scale(const struct cuda_ctx *c, float *x, float s, int64_t n, struct smk_err *err);

/* MoE rows (backend.h gather_rows / scatter_scaled_rows): rows and scale
 * in device memory. */
int cuda_gather_rows(const struct cuda_ctx *c, float *dst, const float *src, const int32_t *rows,
		     int n, int64_t width, struct smk_err *err);
int cuda_scatter_scaled_rows(const struct cuda_ctx *c, float *dst, const float *src,
			     const int32_t *rows, const float *scale, int n, int64_t width,
			     struct smk_err *err);

/* x[i] += y[i] */
int cuda_add(const struct cuda_ctx *c, float *x, const float *y, int64_t n, struct smk_err *err);

/* x[t][i] += bias[i] for n rows of width (bias: device floats). */
int cuda_add_bias(const struct cuda_ctx *c, float *x, const float *bias, int64_t width, int n,
		  struct smk_err *err);

/* y[t] = row tok[t] of table, dequantised, times scale (y: device, n rows
 * of table->ne0).  tok: HOST array; ids are checked here (-ERANGE). */
int cuda_embed(const struct cuda_ctx *c, const struct wtensor *table, const int32_t *tok, int n,
	       float scale, float *y, struct smk_err *err);

/* dst[i] = src[i] rounded to fp16 (the F16 KV cache's values); dst may
 * equal src. */
int cuda_round_fp16(const struct cuda_ctx *c, float *dst, const float *src, int64_t n,
		    struct smk_err *err);

/* dst[i] = src[i] as IEEE half bits, round to nearest even (the F16 KV
 * cache's store; the same values cuda_round_fp16 gives). */
int cuda_store_fp16(const struct cuda_ctx *c, uint16_t *dst, const float *src, int64_t n,
		    struct smk_err *err);

/* ---- 2. the backend ------------------------------------------------------- */

struct cuda_backend_opts {
	int device;                   /* CUDA device ordinal */
	struct CUstream_st *stream;   /* compute stream; NULL: the backend makes (and owns) one */
};

/* The CUDA backend on opts->device (opts may be NULL: device 0, own
 * stream).  lim bounds the calls as for the CPU backend (max_ctx must fit
 * cuda_attention_max_span).  *out owned by the caller; backend_free(). */
int backend_cuda_new(struct backend **out, const struct backend_limits *lim,
		     const struct cuda_backend_opts *opts, struct smk_err *err);

/* The same kernels and backend compiled for the CPU emulator
 * (cuda_emu.cuh), for tests on machines without a GPU.  -ENOSYS in builds
 * without CUDA. */
int backend_cudaemu_new(struct backend **out, const struct backend_limits *lim,
			const struct cuda_backend_opts *opts, struct smk_err *err);

/* What a backend made by one of the two constructors above adds to struct
 * backend_ops (which it starts with): its kernel context, for cuda_* calls
 * and copies on the backend's compute stream (cuda_wdev.cu orders its copy
 * stream against it).  Device memory itself goes through backend_ops'
 * alloc/free_mem/upload/download/sync. */
struct cuda_backend_ops {
	struct backend_ops base;
	const struct cuda_ctx *(*ctx)(struct backend *b);
};

static inline const struct cuda_backend_ops *cuda_be_ops(struct backend *b)
{
	return (const struct cuda_backend_ops *)b->ops;
}

/* Shorthands kept for the kernel test. */
static inline int cuda_be_alloc(struct backend *b, void **out, size_t bytes, struct smk_err *err)
{
	return backend_alloc(b, out, bytes, err);
}

static inline void cuda_be_free(struct backend *b, void *p)
{
	backend_free_mem(b, p);
}

static inline int cuda_be_upload(struct backend *b, void *dst, const void *src, size_t bytes,
				 struct smk_err *err)
{
	return backend_upload(b, dst, src, bytes, err);
}

static inline int cuda_be_download(struct backend *b, void *dst, const void *src, size_t bytes,
				   struct smk_err *err)
{
	return backend_download(b, dst, src, bytes, err);
}

static inline int cuda_be_sync(struct backend *b, struct smk_err *err)
{
	return backend_sync(b, err);
}

#ifdef __cplusplus
}
#endif

#endif
