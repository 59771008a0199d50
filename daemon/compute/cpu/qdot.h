/* qdot.h - dot products of one quantised weight row with one activation row.
 *
 * This is the inner loop of the CPU matmul.  Like llama.cpp's CPU backend, it
 * never dequantises weights: the activation row is first quantised once
 * ("prepared") into the format the weight type's dot product consumes, and
 * each weight row is then dotted against it with integer arithmetic:
 *
 *   weight type                      prepared activation (qdot_act_type)
 *   Q4_0 Q5_0 Q8_0 MXFP4             Q8_0 blocks: fp16 d + int8 qs[32]
 *   Q4_1 Q5_1                        Q8_1 blocks: fp16 d, fp16 s + int8 qs[32]
 *   Q2_K Q3_K Q4_K Q5_K Q6_K         Q8_K blocks: f32 d + int8 qs[256] +
 *                                    int16 bsums[16]
 *   F32 F16 BF16                     F32 (a plain copy of the row)
 *
 * The prepared rows use ggml's block layouts byte for byte (block_q8_0,
 * block_q8_1, block_q8_K; struct qtype_block_* in quant/qtype.h), and the quantisation
 * follows the code llama.cpp runs on x86 (AVX2 builds), so that our integer
 * dot products see exactly the int8 activations llama.cpp's do:
 *   - Q8_0 (ggml-cpu/arch/x86 quantize_row_q8_0): amax = max |x| of the 32
 *     values, d = amax/127 stored as fp16 (round to nearest even, as F16C),
 *     id = 127/amax (0 if amax is 0), q = round-half-even(x*id).
 *     NOTE: ggml's portable reference (quantize_row_q8_0_ref) differs in two
 *     last-bit details: it uses id = 1/d and roundf (ties away from zero).
 *     We follow the x86 code because that is what the peer runs here.
 *   - Q8_1 (x86 quantize_row_q8_1): as Q8_0, plus s = fp16(d * sum(q)) with
 *     the unrounded float d; the Q4_1/Q5_1 dots use s for their min term.
 *   - Q8_K (quantize_row_q8_K_ref, also used on x86): max = the signed value
 *     of largest magnitude (the first one on ties), iscale = -127/max,
 *     q = min(127, round-half-even(iscale*x)), d = 1/iscale, bsums[g] = sum
 *     of qs[16g..16g+15]; a block of zeros gets d = 0, qs = 0, bsums = 0.
 *
 * The AVX2 kernels then reproduce llama.cpp's AVX2 vec_dot kernels (the
 * reference build of scripts/build-llama-cpp) bit for bit: the same int32
 * partial sums in the same lanes, one float accumulator updated with FMA in
 * block order (MXFP4: two, for even and odd blocks, as ggml's MXFP4 kernel
 * has), the same horizontal reduction, and the scalar min terms (Q4_1,
 * Q5_1, Q5_K) and leftover blocks (MXFP4) fused as ggml's compiler fuses
 * them.  The scalar kernels sum block results in double: they are the
 * readable reference and differ from the AVX2 ones only by float summation
 * order (about 1e-7 of sum|w*x|), which the tests allow for.  One known difference from ggml:
 * F16/BF16 weights are dotted against float activations, where ggml first
 * rounds the activation to fp16/bf16 (ours is the more precise of the two).
 *
 * Activation pointers and weight rows may have any alignment.  Nothing here
 * allocates, and every function is safe to call from several threads.
 */
#ifndef SMK_COMPUTE_CPU_QDOT_H
#define SMK_COMPUTE_CPU_QDOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The activation format a weight type's dot product consumes: QTYPE_Q8_0 for
 * Q4_0/Q5_0/Q8_0/MXFP4 weights (ggml's vec_dot_type for MXFP4 is Q8_0 too), QTYPE_Q8_1 for Q4_1/Q5_1 (as in ggml: the min term
 * needs the activation block's sum), QTYPE_Q8_K for the K-quants, QTYPE_F32
 * for F32/F16/BF16 weights (those dot against float activations).  Returns
 * UINT32_MAX if the weight type cannot be computed. */
uint32_t qdot_act_type(uint32_t wtype);

/* Bytes of one prepared activation row of n values for weight type wtype;
 * 0 if the type cannot be computed or n < 0.  n is rounded up to whole
 * activation blocks, so that sizing a scratch buffer for the widest row
 * (which need not be a multiple of 256) gives an upper bound for every type;
 * for the n a dot product accepts, the size is exact.  (n is a tensor
 * dimension, so the product cannot overflow for any row that fits in
 * memory.) */
size_t qdot_act_row_bytes(uint32_t wtype, int64_t n);

/* Prepare (quantise) an activation row x[n] into act, which holds
 * qdot_act_row_bytes(wtype, n) bytes, for dot products with wtype rows.  n is
 * a multiple of the weight block size.  Deterministic: the same x gives the
 * same bytes whatever kernels are selected. */
void qdot_prepare(uint32_t wtype, const float *x, void *act, int64_t n);

/* dot(weight row, prepared activation) for n values. */
typedef float (*qdot_fn)(const void *w_row, const void *act, int64_t n);

/* Best kernel for this CPU (AVX2+FMA+F16C detected at run time with
 * __builtin_cpu_supports, scalar fallback), NULL if the type cannot be
 * computed.  Every computable type has an AVX2 kernel (single rows stay
 * AVX2 on AVX-512 CPUs: see qdot_avx512.c). */
qdot_fn qdot_get(uint32_t wtype);

/* dot(weight row, act[t]) into out[t] for t < n_act (1..4; out[t] for
 * t >= n_act is left alone), for n values.  Decodes each weight block once
 * and applies it to every activation row: in a batch the weight unpacking,
 * not the multiply, is most of the single kernel's work.  Each out[t] is
 * bit-identical to qdot_get(wtype)(w_row, act[t], n): per activation row
 * the kernel performs the same float operations in the same order (its own
 * accumulators, same FMA per block, same final reduction), so the
 * bit-exactness against llama.cpp carries over. */
typedef void (*qdot4_fn)(const void *w_row, const void *const act[4], int n_act, int64_t n,
			 float out[4]);

/* The several-activation kernel for this type, or NULL where there is none
 * (scalar kernels selected, no AVX2, or a type without one: only Q4_0,
 * Q5_0, Q8_0, MXFP4, Q4_K and Q6_K have one); callers then loop over qdot_get(). */
qdot4_fn qdot_get4(uint32_t wtype);

/* Four consecutive weight rows (w_stride bytes apart, the first at w)
 * times one activation row prepared by qdot_prepare_tile (a batch of one
 * row: the AVX-512 kernels read its side): out[r] = dot(weight row r,
 * act), each bit-identical to qdot_get(wtype)(row r, act, n).  Decode's kernel: a
 * single row's blocks are one FMA chain, and four rows are four chains
 * that overlap. */
typedef void (*qdot_rows4_fn)(const void *w, size_t w_stride, const void *act, int64_t n, float out[4]);

/* The four-row kernel for this type, or NULL where there is none (scalar
 * kernels selected, no AVX2, or a type without one: only Q4_0, Q5_0 and
 * Q8_0 have one); callers then loop over qdot_get(). */
qdot_rows4_fn qdot_get_rows4(uint32_t wtype);

/* Weight rows per tile at most (qdot_tile_fn's nw), and the bytes a tile's
 * unpacked weights may take (on the stack of the calling thread; sized to
 * stay in L1 beside the activation rows streaming past). */
#define QDOT_TILE_ROWS 16
#define QDOT_TILE_BYTES 24576

/* A tile of the matrix product: nw consecutive weight rows (w_stride bytes
 * apart, the first at w; 1 <= nw <= the rows qdot_get_tile gave) times
 * n_act >= 1 activation rows prepared by qdot_prepare_tile (act_row bytes
 * apart, the first at act: row 0 of the batch), n values each: out[t * out_stride + r] = dot(weight row r,
 * activation row t).  The tile's weight blocks are unpacked once for all
 * the activation rows.  As with qdot4_fn, every output is bit-identical to
 * qdot_get(wtype)(row r, act[t], n): the float operations per output are
 * the single kernel's, in its order. */
typedef void (*qdot_tile_fn)(const void *w, size_t w_stride, int nw, const void *act,
			     size_t act_row, int n_act, int64_t n, float *out, int64_t out_stride);

/* The tile kernel for weight rows of n values of this type, and in *rows
 * the weight rows per tile (at most QDOT_TILE_ROWS: as many as fit
 * QDOT_TILE_BYTES unpacked); NULL where there is none (scalar kernels
 * selected, no AVX2, a row too long for one unpacked row to fit, or a type
 * without one: today every computable type has one - the quantised types
 * and the float types F32, F16, BF16, whose rows are read in place: a tile
 * of one row however long); callers then use qdot_get4() or qdot_get(). */
qdot_tile_fn qdot_get_tile(uint32_t wtype, int64_t n, int *rows);

/* The activation rows a tile takes: qdot_prepare's bytes, and after them,
 * where the tile kernel of wtype wants it, what it would otherwise compute
 * per activation block in every tile - once per matrix product instead
 * (the AVX-512 Q4_0/Q5_0/Q8_0 tiles: each pair of rows' quants, vpdpbusd
 * starts and float scales, interleaved as their registers take them).
 * qdot_tile_act_row_bytes(wtype, n) >= qdot_act_row_bytes(wtype, n), and
 * grows with n.  qdot_prepare_tile prepares row t of a batch whose rows
 * start at `rows`, act_row (>= qdot_tile_act_row_bytes) bytes apart; row
 * 2p before row 2p + 1 (the pair's part sits in row 2p's stride, and row
 * 2p fills the whole of it until row 2p + 1 writes its half).  Rows so
 * prepared serve every kernel of wtype (the others read qdot_prepare's
 * part); the tile from qdot_get_tile and the four-row kernel from
 * qdot_get_rows4 need them, from row 0 of the batch. */
size_t qdot_tile_act_row_bytes(uint32_t wtype, int64_t n);
void qdot_prepare_tile(uint32_t wtype, const float *x, void *rows, size_t act_row, int t, int64_t n);

/* Whether the tile is also the better kernel for a single activation row:
 * true for F16 and BF16, whose tiles read the rows in place (nothing to
 * unpack) and whose single kernel is one FMA chain - a tile of 3 rows x 1
 * token is three.  Only when qdot_get_tile gives a tile. */
bool qdot_tile_for_one_row(uint32_t wtype);

/* Whether the tile reads its weight rows in place - nothing unpacked per
 * call, so a caller may pass the same rows again with other activation
 * rows at no cost but the reading (matmul.c blocks a long batch's
 * activation rows so) - and, given several activation rows, asks for the
 * rows after its own (the next tile's: nw rows from w + nw * w_stride,
 * within the same mapping or not - a prefetch never faults) while it
 * computes, spread over its passes, so that a short batch does not wait
 * on memory at the first touch of each line.  True for F16 and BF16; for
 * the other types the caller asks for the next tile's rows before the
 * call.  Only when qdot_get_tile gives a tile. */
bool qdot_tile_in_place(uint32_t wtype);

/* The scalar reference kernel, for tests; NULL if the type cannot be
 * computed. */
qdot_fn qdot_get_scalar(uint32_t wtype);

/* The summation order of wtype's kernels.  By default llama.cpp's for
 * every type (bit for bit with its reference build: docs/reference.md),
 * except where the block order is faster and the CPU has the kernels for
 * it - today Q4_K, Q5_K and Q6_K on AVX-512 VNNI.  The block order turns
 * each super-block's exact integer sums into one float value, v =
 * fmaf(-(dmin_w * d_y), msum, (d_w * d_y) * isum), and adds eight blocks'
 * values as a fixed tree, the groups in order (qdot_avx512_kblock.c),
 * where llama.cpp keeps eight float lanes of partial sums per output: it
 * lets a tile put 16 outputs in a register.  Every kernel of
 * one order agrees bit for bit (single, tile, scalar reference: batching
 * changes no bit either way); the two orders differ in the last bits, and
 * the forward tests hold the block order to the exact one.  SMOKE_EXACT=1
 * in the environment (read once) or qdot_force_exact(1) keeps llama.cpp's
 * order everywhere. */
bool qdot_block_order(uint32_t wtype);

/* Tests: 1 forces llama.cpp's order everywhere, 0 allows the block order
 * where qdot_block_order would pick it, -1 goes back to SMOKE_EXACT.  Set
 * it before the kernels are fetched (a matmul fetches them per call). */
void qdot_force_exact(int on);

/* The scalar kernel of the block order (tests: the definition the block
 * order's kernels match bit for bit); NULL for a type without one. */
qdot_fn qdot_get_scalar_block_order(uint32_t wtype);

/* Force scalar kernels (tests).  The environment variable SMOKE_NO_SIMD=1 has
 * the same effect; it is read once, on the first qdot_get(). */
void qdot_force_scalar(bool on);

/* Check SMOKE_CPU and SMOKE_EXACT (unset, empty, 0 or 1).  SMOKE_CPU, the forced kernel choice: unset, "auto" or "scalar"
 * (the scalar kernels, as SMOKE_NO_SIMD=1) are always accepted, "avx2"
 * (AVX2 kernels even where AVX-512 ones would be chosen) only where the
 * CPU has AVX2+FMA+F16C, "avx512" only where it also has AVX-512 F, BW,
 * VL, DQ and VNNI (the tiles of Q4_0, Q5_0, Q8_0, Q4_K, Q5_K and Q6_K are
 * then AVX-512 ones; every other kernel stays AVX2); any other value is
 * refused.  Returns 0, or -1 with a message naming the problem in
 * why[len].  The CPU backend refuses to start on -1. */
int qdot_cpu_check(char *why, size_t len);

/* True if qdot_get() currently hands out the AVX2 kernels. */
bool qdot_simd_active(void);

/* The kernels in use: "scalar", "avx2", or "avx512" (AVX-512 tiles beside
 * the AVX2 kernels). */
const char *qdot_isa(void);

/* Decode a weight row to floats (e.g. an embedding lookup).  Same values as
 * qtype_info(type)->dequant_row, bit for bit; uses F16C for F16 rows and
 * the SIMD Q8_0 decoder where available.  n a multiple of the block; types
 * that cannot be decoded leave dst untouched (callers check
 * qtype_can_compute first). */
void qdot_dequant_row(uint32_t type, const void *src, float *dst, int64_t n);

#endif
