/* qdot_impl.h - private to compute/cpu/qdot*.c: the kernel tables.
 *
 * qdot.c owns dispatch and activation preparation, qdot_scalar.c the scalar
 * reference kernels, qdot_avx2.c the AVX2+FMA+F16C kernels of the quantised
 * types (qdot_avx2_k23.c those of Q2_K and Q3_K) and qdot_avx2_float.c those
 * of the float types (compiled with a per-function target attribute, so the
 * files build on any x86-64 compiler flags and the caller checks the CPU
 * before calling anything in them; qdot_avx2.h holds what the quantised
 * ones share).
 */
#ifndef SMK_COMPUTE_CPU_QDOT_IMPL_H
#define SMK_COMPUTE_CPU_QDOT_IMPL_H

#include "compute/cpu/qdot.h"
#include "quant/qtype.h"

#include <stdbool.h>

/* Scalar reference kernel for a weight type, NULL if none. */
qdot_fn qdot__scalar_kernel(uint32_t wtype);

/* The scalar kernel of the block order (qdot_block_order; Q4_K, Q5_K,
 * Q6_K), NULL for other types. */
qdot_fn qdot__scalar_block_kernel(uint32_t wtype);

/* The block order's AVX-512 VNNI single kernel and tile
 * (qdot_avx512_kblock.c; Q4_K, Q5_K, Q6_K), NULL for other types.  Only where the CPU
 * has AVX-512 F/BW/VL/DQ and VNNI. */
qdot_fn qdot__avx512_kblock_dot(uint32_t wtype);
qdot_tile_fn qdot__avx512_kblock_tile(uint32_t wtype, int64_t n, int *rows);

/* AVX2 kernel for a weight type, NULL if none (or not an x86 build). */
qdot_fn qdot__avx2_kernel(uint32_t wtype);

/* The AVX2 Q2_K and Q3_K kernels and tiles (qdot_avx2_k23.c), reached
 * through qdot__avx2_kernel and qdot__avx2_tile; NULL for other types. */
qdot_fn qdot__avx2_k23_kernel(uint32_t wtype);
qdot_tile_fn qdot__avx2_k23_tile(uint32_t wtype, int64_t n, int *rows);

/* AVX2 several-activation kernel for a weight type, NULL if none. */
qdot4_fn qdot__avx2_kernel4(uint32_t wtype);

/* AVX2 four-weight-row kernel for a weight type, NULL if none; and the
 * AVX-512 VNNI one (Q4_0, Q5_0, Q8_0; its activation prepared by
 * qdot_prepare_tile). */
qdot_rows4_fn qdot__avx2_rows4(uint32_t wtype);
qdot_rows4_fn qdot__avx512_rows4(uint32_t wtype);

/* AVX2 tile kernel (several weight rows x activation rows) for rows of n
 * values and its rows per tile (*rows), NULL if none. */
qdot_tile_fn qdot__avx2_tile(uint32_t wtype, int64_t n, int *rows);

/* The tile kernels whose passes are AVX-512 + VNNI (qdot_avx512.c: Q4_0,
 * Q5_0, Q8_0, Q4_K, Q5_K, Q6_K, F16, BF16), NULL for other types.  Only
 * where the CPU has AVX-512 F/BW/VL/DQ and VNNI. */
qdot_tile_fn qdot__avx512_tile(uint32_t wtype, int64_t n, int *rows);

/* The single kernels where the CPU has AVX-512: those whose order is
 * AVX-512's own (F16, BF16: 16 lanes, qdot_avx512.c), so that a single row
 * and a tile agree, and the VNNI variants (qdot__avx512_vnni_dot); NULL
 * for other types, which keep the AVX2 ones. */
qdot_fn qdot__avx512_kernel(uint32_t wtype);

/* The AVX2 K-quant kernels' VNNI variants (qdot_avx2.c, the same bits:
 * vpdpwssd for madd + add): the single kernel of Q4_K and the
 * several-activation kernels of Q4_K, Q5_K and Q6_K; NULL for other
 * types.  Only where the CPU has AVX-512 F/BW/VL/DQ and VNNI. */
qdot_fn qdot__avx512_vnni_dot(uint32_t wtype);
qdot4_fn qdot__avx512_vnni_kernel4(uint32_t wtype);

/* What the AVX-512 Q4_0/Q5_0/Q8_0 tiles read of a batch of prepared Q8_0
 * activation rows (qdot_prepare_tile): each pair of rows 2p, 2p + 1 as
 * 512-bit vectors, row 2p in the low half, 2p + 1 in the high one - per
 * block i, the quants, the vpdpbusd starts (8 int32: -128 x the sums of
 * the quants four at a time) and the float scale eight times - stored in
 * row 2p's stride at QDOT_Q8_0_SIDE(nb) from its start (odd rows leave
 * theirs unused).  qdot__avx512_prepare_side writes prepared row `row`'s
 * half (odd: the high one; even: both, so that a batch of odd length ends
 * in a whole pair). */
#define QDOT_Q8_0_SIDE(nb) (((size_t)(nb) * sizeof(struct qtype_block_q8_0) + 63) & ~(size_t)63)
/* One block's part of a pair side: three 64-byte vectors, at these
 * offsets; a row's half of each is its first (even row) or last 32 bytes. */
enum { QDOT_SIDE_Q = 0, QDOT_SIDE_START = 64, QDOT_SIDE_D = 128, QDOT_SIDE_BLOCK = 192 };
#define QDOT_Q8_0_SIDE_BYTES(nb) ((size_t)(nb) * QDOT_SIDE_BLOCK)
void qdot__avx512_prepare_side(const void *row, int64_t nb, void *pair_side, bool odd);

/* The same two for float weights (F32, F16, BF16: qdot_avx2_float.c). */
qdot_fn qdot__avx2_float_kernel(uint32_t wtype);
qdot_tile_fn qdot__avx2_float_tile(uint32_t wtype, int64_t n, int *rows);

/* AVX2/F16C row decoders for the types where they pay off (F16, Q8_0);
 * return false if there is none for this type.  Bit-identical to the scalar
 * decoders in quant/qtype.c (the conversions involved are exact). */
bool qdot__avx2_dequant_row(uint32_t type, const void *src, float *dst, int64_t n);

#endif
