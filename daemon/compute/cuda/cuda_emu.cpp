/* cuda_emu.cpp - the CUDA backend's kernels compiled for the CPU emulator
 * (cuda_emu.cuh): one translation unit that includes every kernel file with
 * SMK_CUDA_EMU defined.  It exports backend_cudaemu_new() and the kernel
 * calls under cudaemu_* names, so the unit test can hold the very kernel
 * code the GPU runs to the CPU backend on machines without a GPU.  The
 * weight store's device tier (cuda_wdev.cu) comes along as
 * cuda_wdev_emu_new(), over a backend made by backend_cudaemu_new.
 *
 * Tests reach it directly or through the engine (ENGINE_BE_CUDAEMU); the
 * daemon never chooses it.  Products and sums are rounded one
 * by one, as on the device where the kernels ask for it; the host compiler
 * must not fuse the others either, or the emulator would show rounding the
 * GPU does not have - hence fp-contract=off. */
#pragma GCC optimize("fp-contract=off")

#define SMK_CUDA_EMU 1

/* Every external name of the kernel files, renamed so that this copy links
 * beside the GPU one (a name missing here fails the link: duplicate
 * symbol). */
#define cuda_ctx_init cudaemu_ctx_init
#define cuda_ctx_deinit cudaemu_ctx_deinit
#define cuda_can_compute cudaemu_can_compute
#define cuda_matmul cudaemu_matmul
#define cuda_matmul_reserve cudaemu_matmul_reserve
#define cuda_matmul_scratch_bytes cudaemu_matmul_scratch_bytes
#define cuda_rmsnorm cudaemu_rmsnorm
#define cuda_rope cudaemu_rope
#define cuda_attention cudaemu_attention
#define cuda_attention_max_span cudaemu_attention_max_span
#define cuda_gelu_mul cudaemu_gelu_mul
#define cuda_silu_mul cudaemu_silu_mul
#define cuda_swiglu_oai cudaemu_swiglu_oai
#define cuda_add cudaemu_add
#define cuda_scale cudaemu_scale
#define cuda_gather_rows cudaemu_gather_rows
#define cuda_scatter_scaled_rows cudaemu_scatter_scaled_rows
#define cuda_add_bias cudaemu_add_bias
#define cuda_embed cudaemu_embed
#define cuda_round_fp16 cudaemu_round_fp16
#define cuda_store_fp16 cudaemu_store_fp16
#define cuda_attention_init cudaemu_attention_init
#define cuda_gelu_table_fill cudaemu_gelu_table_fill
#define backend_cuda_new backend_cudaemu_new
#define cuda_wdev_new cuda_wdev_emu_new
#define cuda_wdev_free cuda_wdev_emu_free

#include "compute/cuda/cuda_matmul.cu"
#include "compute/cuda/cuda_ops.cu"
#include "compute/cuda/cuda_attention.cu"
#include "compute/cuda/cuda_backend.cu"
#include "compute/cuda/cuda_wdev.cu"
