/* cuda_compat.cuh - what every kernel file includes first.
 *
 * The kernels are written once and compiled twice:
 *   - by nvcc, for the GPU (the CUDA backend proper), and
 *   - by the host C++ compiler with SMK_CUDA_EMU defined, against the CPU
 *     emulator in cuda_emu.cuh (cuda_emu.cpp includes every .cu file), so
 *     that machines without a GPU run the same kernel code: the unit test
 *     holds the emulated kernels to the CPU backend op by op, and a GPU
 *     session then only has to confirm what the CPU already showed.
 * To stay compilable both ways the kernels use a small subset of CUDA:
 * threadIdx/blockIdx/blockDim/gridDim, __syncthreads, full-warp
 * __shfl_xor_sync, shared memory through SMK_SHARED / SMK_DYN_SMEM, plain
 * loads and stores, and the helpers below.  Launches go through SMK_LAUNCH.
 *
 * Rounding: nvcc contracts a*b + c into one FMA unless told otherwise, and
 * the CPU reference (quant/qtype.c, compute/cpu/ops.c) rounds every product
 * on its own.  Where a result must equal the CPU's bit for bit (dequantised
 * weights, RMSNorm's scaling, RoPE's fused rotation), kernels spell each
 * rounding out with smk_mul / smk_add / smk_sub / smk_fma. */
#ifndef SMK_COMPUTE_CUDA_COMPAT_CUH
#define SMK_COMPUTE_CUDA_COMPAT_CUH

/* The project's C headers use C11's _Static_assert, which C++ spells
 * static_assert. */
#define _Static_assert static_assert

/* The project's C headers declare C functions but have no extern "C"
 * guards of their own: include them here, once, with C linkage (their
 * system headers first, outside the block, as C++ wants those). */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
extern "C" {
#include "util/err.h"
#include "util/fp16.h"
#include "quant/qtype.h"
#include "compute/tensor.h"
#include "compute/backend.h"
}

#ifdef SMK_CUDA_EMU

#include "compute/cuda/cuda_emu.cuh"

/* kernel(args...) on a grid of blocks; `kernel` is a plain name (alias a
 * template instantiation with a function pointer first). */
#define SMK_LAUNCH(kernel, grid, block, smem, stream, ...)                    \
	emu_launch((const void *)(kernel), (grid), (block), (smem), (stream), \
		   [&]() { kernel(__VA_ARGS__); })
/* A block-shared array of n elements (static size). */
#define SMK_SHARED(type, name, n)                                             \
	static char emu_key_##name;                                           \
	type *const name = (type *)emu_smem_static(&emu_key_##name, sizeof(type) * (n))
/* The launch's dynamic shared memory. */
#define SMK_DYN_SMEM(type, name) type *const name = (type *)emu_smem_dynamic()

#else

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define SMK_LAUNCH(kernel, grid, block, smem, stream, ...) \
	kernel<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__)
#define SMK_SHARED(type, name, n) __shared__ type name[n]
#define SMK_DYN_SMEM(type, name) extern __shared__ type name[]

#endif

/* ---- rounding-exact scalar helpers (host and device) -------------------- */

/* IEEE half bits -> float (exact). */
__host__ __device__ static inline float smk_half_to_float(uint16_t h)
{
#ifdef __CUDA_ARCH__
	return __half2float(__ushort_as_half(h));
#else
	return fp16_to_fp32(h);
#endif
}

/* bfloat16 bits -> float (exact: a shift). */
__host__ __device__ static inline float smk_bf16_to_float(uint16_t h)
{
#ifdef __CUDA_ARCH__
	return __uint_as_float((uint32_t)h << 16);
#else
	return bf16_to_fp32(h);
#endif
}

/* x rounded to the nearest fp16 value (ties to even), as a float: the
 * F16 KV cache and the fp16 softmax weights of llama.cpp. */
__host__ __device__ static inline float smk_round_f16(float x)
{
#ifdef __CUDA_ARCH__
	return __half2float(__float2half_rn(x));
#else
	return fp16_to_fp32(fp32_to_fp16(x));
#endif
}

/* fp16 bits of x, round to nearest even. */
__host__ __device__ static inline uint16_t smk_float_to_half_bits(float x)
{
#ifdef __CUDA_ARCH__
	return __half_as_ushort(__float2half_rn(x));
#else
	return fp32_to_fp16(x);
#endif
}

__host__ __device__ static inline float smk_mul(float a, float b)
{
#ifdef __CUDA_ARCH__
	return __fmul_rn(a, b);
#else
	return a * b;
#endif
}

__host__ __device__ static inline float smk_add(float a, float b)
{
#ifdef __CUDA_ARCH__
	return __fadd_rn(a, b);
#else
	return a + b;
#endif
}

__host__ __device__ static inline float smk_sub(float a, float b)
{
#ifdef __CUDA_ARCH__
	return __fsub_rn(a, b);
#else
	return a - b;
#endif
}

__host__ __device__ static inline float smk_div(float a, float b)
{
#ifdef __CUDA_ARCH__
	return __fdiv_rn(a, b);
#else
	return a / b;
#endif
}

/* The bits of a float (for ggml's rounding trick, which reads them). */
__host__ __device__ static inline int32_t smk_float_bits(float x)
{
#ifdef __CUDA_ARCH__
	return __float_as_int(x);
#else
	int32_t i;
	memcpy(&i, &x, sizeof(i));
	return i;
#endif
}

__host__ __device__ static inline float smk_fma(float a, float b, float c)
{
#ifdef __CUDA_ARCH__
	return __fmaf_rn(a, b, c);
#else
	return fmaf(a, b, c);
#endif
}

/* ---- warp reductions (every lane gets the same, bitwise) ---------------- */

/* XOR butterflies: lanes i and i^m add the same two values, and float
 * addition is commutative, so all 32 lanes end with identical bits. */
__device__ static inline float smk_warp_sum(float v)
{
	for (int m = 16; m > 0; m >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, m);
	return v;
}

__device__ static inline double smk_warp_sum_d(double v)
{
	for (int m = 16; m > 0; m >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, m);
	return v;
}

__device__ static inline float smk_warp_max(float v)
{
	for (int m = 16; m > 0; m >>= 1) {
		float o = __shfl_xor_sync(0xffffffffu, v, m);
		v = o > v ? o : v;
	}
	return v;
}

#endif
