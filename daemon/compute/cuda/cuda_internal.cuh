/* cuda_internal.cuh - what the CUDA backend's files share and nobody else
 * uses.  (The public entry points are in cuda_backend.h; cuda_emu.cpp
 * renames all of them, these included, for the emulator build.) */
#ifndef SMK_COMPUTE_CUDA_INTERNAL_CUH
#define SMK_COMPUTE_CUDA_INTERNAL_CUH

#include "compute/cuda/cuda_check.cuh"
#include "compute/cuda/cuda_backend.h"

#include <string.h>

/* Opt the attention kernel into the largest dynamic shared memory the
 * device allows (optin bytes per block) and store the usable part in
 * c->max_smem.  Called by cuda_ctx_init. */
int cuda_attention_init(struct cuda_ctx *c, int optin, struct smk_err *err);

/* The GELU table the CPU backend uses (compute/cpu/ops.c), computed on the
 * host with the same float operations: entry h is fp16(gelu(fp16 value h)).
 * tab holds 65536 entries. */
void cuda_gelu_table_fill(uint16_t *tab);

/* Blocks for a grid-stride loop over n items with `threads` per block. */
static inline unsigned cuda_grid_for(int64_t n, int threads)
{
	int64_t b = (n + threads - 1) / threads;
	if (b < 1)
		b = 1;
	return b > (1 << 20) ? (1u << 20) : (unsigned)b;
}

#endif
