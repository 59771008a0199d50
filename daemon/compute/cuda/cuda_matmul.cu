/* cuda_matmul.cu - the kernels that read quantised weights: matrix-vector
 * products for decode, tiled products for prefill, and the embedding
 * lookup.
 *
 * Weights stay in their file layout in device memory.  As on the CPU
 * backend, a quantised weight type never meets a float activation: each
 * activation row is first quantised to the int8 block format the CPU uses
 * for that type (Q8_0, Q8_1 or Q8_K, with the CPU's float operations, so
 * the quants are the same bytes), then every weight block is dotted with
 * its activation block in integers and scaled in float exactly as
 * compute/cpu/qdot_scalar.c does (cuda_qdot.cuh says why).  Block results
 * are summed in double, as there.  F32/F16/BF16 weights take float
 * activations (the CPU's too): float products summed in double.
 *
 * Decode (fewer than MM_TILE_MIN_N rows): one warp per weight row; a launch
 * row of up to MV_MAX_N activation rows (blockIdx.y) streams the weight row
 * once for all of them.  Lanes share out a row's blocks: a K-quant block
 * to eight lanes (32 values each), a 32-value block to four (8 each); the
 * lanes of a block add their integer sums with shuffles and the first of
 * them applies the scales.  Memory-bound, as decode is.
 * Prefill (MM_TILE_MIN_N rows or more): 64x64 output tiles, one block
 * column of weights and activations staged in shared memory per step, so
 * each weight block is read once per 64 tokens (mm_quant_tile_kernel).
 * Float weight types always take the matrix-vector kernel.
 * TODO: dp4a / IMMA in the tile kernel, and cuBLAS on dequantised tiles
 * as an opt-in where a GPU session measures that it wins (it would give
 * float-activation numbers, not the CPU's); MM_TILE_MIN_N is a guess until
 * then.  The tiled float kernel this file had before could not give the
 * CPU's numbers. */
#include "compute/cuda/cuda_qdot.cuh"
#include "compute/cuda/cuda_internal.cuh"

#include <math.h>
#include <stdlib.h>

#define MV_WARPS 4
#define MV_MAX_N 8
#define MM_TM 64        /* prefill tile: weight rows */
#define MM_TN 64        /* prefill tile: tokens */
#define MM_TILE_MIN_N 32 /* rows from which products take the tile kernel */
#define QZ_WARPS 4      /* activation blocks quantised per 128-thread block */
#define EMB_CHUNK 512   /* token ids per embedding launch (kernel parameters) */
#define EMB_THREADS 128

/* ---- activation quantisers (compute/cpu/qdot.c, operation for operation) --- */

/* ggml's nearest_int: round to nearest even by adding 1.5*2^23. */
__device__ static inline int qz_round_even(float v)
{
	return (smk_float_bits(smk_add(v, 12582912.f)) & 0x007fffff) - 0x00400000;
}

__device__ static inline int qz_sat8(int v)
{
	return v < -128 ? -128 : v > 127 ? 127 : v;
}

/* Q8_0 / Q8_1 (with_sum): one warp per 32-value block, lane j value j.
 * amax is a max, the same whatever the order; d = amax/127 and id =
 * 127/amax are separate divisions, as on the CPU. */
static __global__ void __launch_bounds__(QZ_WARPS * 32) qz_q8_32_kernel(
	const float *__restrict__ x, int64_t ne0, int64_t n_blocks, uint8_t *__restrict__ act,
	int block_bytes, int qs_off, bool with_sum)
{
	const int lane = threadIdx.x & 31;
	const int64_t bi = (int64_t)blockIdx.x * QZ_WARPS + (threadIdx.x >> 5);
	if (bi >= n_blocks)
		return;
	const int64_t per_row = ne0 / 32, t = bi / per_row, b = bi % per_row;
	const float v = x[t * ne0 + b * 32 + lane];
	const float amax = smk_warp_max(fabsf(v));
	const float id = amax != 0.0f ? smk_div(127.f, amax) : 0.0f;
	const int q = qz_sat8(qz_round_even(smk_mul(v, id)));
	uint8_t *ab = act + bi * block_bytes;
	ab[qs_off + lane] = (uint8_t)(int8_t)q;
	int sum = q;
	if (with_sum)
		for (int m = 16; m > 0; m >>= 1)
			sum += __shfl_xor_sync(0xffffffffu, sum, m);
	if (lane == 0) {
		const float d = smk_div(amax, 127.f);
		const uint16_t dh = smk_float_to_half_bits(d);
		memcpy(ab, &dh, 2);
		if (with_sum) {
			const uint16_t sh = smk_float_to_half_bits(smk_mul(d, (float)sum));
			memcpy(ab + 2, &sh, 2);
		}
	}
}

/* Q8_K: one warp per 256-value block, lane l values 8l..8l+7.  The scale
 * comes from the value of largest magnitude, the first one on a tie (the
 * CPU scans in order and keeps the first strict maximum), sign included. */
static __global__ void __launch_bounds__(QZ_WARPS * 32) qz_q8_k_kernel(
	const float *__restrict__ x, int64_t ne0, int64_t n_blocks, uint8_t *__restrict__ act)
{
	const int lane = threadIdx.x & 31;
	const int64_t bi = (int64_t)blockIdx.x * QZ_WARPS + (threadIdx.x >> 5);
	if (bi >= n_blocks)
		return;
	const int64_t per_row = ne0 / 256, t = bi / per_row, b = bi % per_row;
	const float *xb = x + t * ne0 + b * 256 + lane * 8;
	float v[8], amax = 0.0f, max = 0.0f;
	int at = 0;
	for (int k = 0; k < 8; k++) {
		v[k] = xb[k];
		if (fabsf(v[k]) > amax) {
			amax = fabsf(v[k]);
			max = v[k];
			at = lane * 8 + k;
		}
	}
	for (int m = 16; m > 0; m >>= 1) {
		const float oa = __shfl_xor_sync(0xffffffffu, amax, m);
		const float om = __shfl_xor_sync(0xffffffffu, max, m);
		const int oat = __shfl_xor_sync(0xffffffffu, at, m);
		if (oa > amax || (oa == amax && oat < at)) {
			amax = oa;
			max = om;
			at = oat;
		}
	}
	uint8_t *ab = act + bi * 292;
	if (amax == 0.0f) {
		/* the CPU writes an all-zero block here */
		for (int k = 0; k < 8; k++)
			ab[QD_Q8_K_QS + lane * 8 + k] = 0;
		if (lane < 16)
			memset(ab + QD_Q8_K_BSUMS + 2 * lane, 0, 2);
		if (lane == 0)
			memset(ab, 0, 4);
		return;
	}
	const float iscale = smk_div(-127.f, max);
	int sum = 0;
	for (int k = 0; k < 8; k++) {
		const int r = qz_round_even(smk_mul(iscale, v[k]));
		const int q = qz_sat8(r < 127 ? r : 127);
		ab[QD_Q8_K_QS + lane * 8 + k] = (uint8_t)(int8_t)q;
		sum += q;
	}
	/* 16-value groups: lanes 2g and 2g+1 */
	sum += __shfl_xor_sync(0xffffffffu, sum, 1);
	if ((lane & 1) == 0) {
		const int16_t bs = (int16_t)sum;
		memcpy(ab + QD_Q8_K_BSUMS + lane, &bs, 2);
	}
	if (lane == 0) {
		const float d = smk_div(1.0f, iscale);
		memcpy(ab, &d, 4);
	}
}

/* ---- products -------------------------------------------------------------------- */

/* The end of both product kernels: each activation row's double sum over
 * the warp, rounded once to float, into y[t0 + j][r]. */
__device__ static inline void mv_store(const double acc[MV_MAX_N], int nt, int t0, int64_t ne1,
				       int64_t r, int lane, float *__restrict__ y)
{
	for (int j = 0; j < MV_MAX_N; j++) {
		if (j >= nt)
			break;
		const double s = smk_warp_sum_d(acc[j]);
		if (lane == 0)
			y[(int64_t)(t0 + j) * ne1 + r] = (float)s;
	}
}

template <int T>
static __global__ void __launch_bounds__(MV_WARPS * 32) mv_quant_kernel(
	const uint8_t *__restrict__ w, uint64_t row_bytes, int64_t ne0, int64_t ne1,
	const uint8_t *__restrict__ act, uint64_t act_row, int n, float *__restrict__ y)
{
	typedef qd<T> Q;
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	const int64_t r = (int64_t)blockIdx.x * MV_WARPS + warp;
	if (r >= ne1)
		return; /* the whole warp: no barrier follows that it would miss */
	const int t0 = blockIdx.y * MV_MAX_N;
	const int nt = n - t0 < MV_MAX_N ? n - t0 : MV_MAX_N;
	const int per_block = 32 / Q::lanes;            /* blocks a warp takes at once */
	const int parts = Q::block_elems / 8 / Q::lanes; /* 8-value parts per lane */
	const int g = lane / Q::lanes, gl = lane % Q::lanes;
	const int64_t n_blocks = ne0 / Q::block_elems;
	const uint8_t *row = w + (uint64_t)r * row_bytes;
	double acc[MV_MAX_N];
	for (int j = 0; j < MV_MAX_N; j++)
		acc[j] = 0.0;
	for (int64_t ib0 = 0; ib0 < n_blocks; ib0 += per_block) {
		const int64_t ib = ib0 + g;
		const bool live = ib < n_blocks; /* every lane shuffles below */
		const uint8_t *wb = row + (live ? ib : 0) * Q::block_bytes;
		for (int j = 0; j < MV_MAX_N; j++) {
			if (j >= nt)
				break;
			const uint8_t *ab = act + (uint64_t)(t0 + j) * act_row +
					    (uint64_t)(live ? ib : 0) * Q::act_block_bytes;
			const int8_t *aq = (const int8_t *)(ab + Q::act_qs);
			int isum = 0;
			if (live)
				for (int p = 0; p < parts; p++)
					isum += Q::dot8(wb, aq, (gl * parts + p) * 8);
			for (int m = Q::lanes / 2; m > 0; m >>= 1)
				isum += __shfl_xor_sync(0xffffffffu, isum, m);
			if (live && gl == 0)
				acc[j] += (double)Q::finish(wb, ab, isum);
		}
	}
	mv_store(acc, nt, t0, ne1, r, lane, y);
}

/* Prefill: a 64-row x 64-token output tile per block of 256 threads.  Each
 * step stages one block column - the 64 weight rows' blocks and the 64
 * tokens' activation blocks, as raw bytes - in shared memory, then every
 * thread takes the integer block dots of its 4 rows x 4 tokens with the
 * same dot8/finish as mv_quant_kernel and adds the float block results to
 * double sums.  A weight block is read from memory once per 64 tokens
 * instead of once per 8.  The sum runs over blocks in order (the matrix-
 * vector kernel's warp adds them in a tree): the two agree to the final
 * float rounding, and both with the CPU's scalar kernels. */
template <int T>
static __global__ void __launch_bounds__(256) mm_quant_tile_kernel(
	const uint8_t *__restrict__ w, uint64_t row_bytes, int64_t ne0, int64_t ne1,
	const uint8_t *__restrict__ act, uint64_t act_row, int n, float *__restrict__ y)
{
	typedef qd<T> Q;
	SMK_SHARED(uint8_t, wsm, MM_TM * Q::block_bytes);
	SMK_SHARED(uint8_t, asb, MM_TN * Q::act_block_bytes);
	const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
	const int64_t r0 = (int64_t)blockIdx.x * MM_TM;
	const int t0 = blockIdx.y * MM_TN;
	const int64_t n_blocks = ne0 / Q::block_elems;
	double acc[4][4];
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++)
			acc[i][j] = 0.0;
	for (int64_t ib = 0; ib < n_blocks; ib++) {
		for (int o = tid; o < MM_TM * Q::block_bytes; o += 256) {
			const int64_t r = r0 + o / Q::block_bytes;
			wsm[o] = r < ne1 ? w[(uint64_t)r * row_bytes + (uint64_t)ib * Q::block_bytes +
					     o % Q::block_bytes] : 0;
		}
		for (int o = tid; o < MM_TN * Q::act_block_bytes; o += 256) {
			const int t = t0 + o / Q::act_block_bytes;
			asb[o] = t < n ? act[(uint64_t)t * act_row + (uint64_t)ib * Q::act_block_bytes +
					      o % Q::act_block_bytes] : 0;
		}
		__syncthreads();
		for (int i = 0; i < 4; i++) {
			const uint8_t *wb = wsm + (ty * 4 + i) * Q::block_bytes;
			for (int j = 0; j < 4; j++) {
				const uint8_t *ab = asb + (tx * 4 + j) * Q::act_block_bytes;
				const int8_t *aq = (const int8_t *)(ab + Q::act_qs);
				int isum = 0;
				for (int e = 0; e < Q::block_elems; e += 8)
					isum += Q::dot8(wb, aq, e);
				acc[i][j] += (double)Q::finish(wb, ab, isum);
			}
		}
		__syncthreads();
	}
	for (int i = 0; i < 4; i++) {
		const int64_t r = r0 + ty * 4 + i;
		if (r >= ne1)
			continue;
		for (int j = 0; j < 4; j++) {
			const int t = t0 + tx * 4 + j;
			if (t < n)
				y[(int64_t)t * ne1 + r] = (float)acc[i][j];
		}
	}
}

/* F32/F16/BF16 weights: float products v*x, each rounded, summed in double
 * (compute/cpu/qdot_scalar.c's dot_f32/f16/bf16). */
template <int T>
static __global__ void __launch_bounds__(MV_WARPS * 32) mv_float_kernel(
	const uint8_t *__restrict__ w, uint64_t row_bytes, int64_t ne0, int64_t ne1,
	const float *__restrict__ x, int n, float *__restrict__ y)
{
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	const int64_t r = (int64_t)blockIdx.x * MV_WARPS + warp;
	if (r >= ne1)
		return;
	const int t0 = blockIdx.y * MV_MAX_N;
	const int nt = n - t0 < MV_MAX_N ? n - t0 : MV_MAX_N;
	const uint8_t *row = w + (uint64_t)r * row_bytes;
	double acc[MV_MAX_N];
	for (int j = 0; j < MV_MAX_N; j++)
		acc[j] = 0.0;
	for (int64_t e0 = (int64_t)lane * 8; e0 < ne0; e0 += 32 * 8) {
		float v[8];
		dq<T>::get8(row, e0, ne0, v);
		const int m = ne0 - e0 < 8 ? (int)(ne0 - e0) : 8;
		for (int j = 0; j < MV_MAX_N; j++) {
			if (j >= nt)
				break;
			const float *xr = x + (int64_t)(t0 + j) * ne0 + e0;
			for (int k = 0; k < m; k++)
				acc[j] += (double)smk_mul(v[k], xr[k]);
		}
	}
	mv_store(acc, nt, t0, ne1, r, lane, y);
}

/* Token ids of one launch, passed by value: the kernel parameters carry
 * them to the device, so there is no staging buffer to keep alive. */
struct emb_ids {
	int32_t id[EMB_CHUNK];
};

template <int T>
static __global__ void __launch_bounds__(EMB_THREADS) emb_kernel(
	const uint8_t *__restrict__ table, uint64_t row_bytes, int64_t ne0, const struct emb_ids ids,
	float scale, float *__restrict__ y)
{
	const int t = blockIdx.y;
	const int64_t e0 = ((int64_t)blockIdx.x * EMB_THREADS + threadIdx.x) * 8;
	if (e0 >= ne0)
		return;
	float v[8];
	dq<T>::get8(table + (uint64_t)ids.id[t] * row_bytes, e0, ne0, v);
	float *yr = y + (int64_t)t * ne0 + e0;
	const int m = ne0 - e0 < 8 ? (int)(ne0 - e0) : 8;
	for (int k = 0; k < m; k++)
		yr[k] = scale != 1.0f ? smk_mul(v[k], scale) : v[k];
}

extern "C" bool cuda_can_compute(uint32_t type)
{
	switch (type) {
	case QTYPE_F32: case QTYPE_F16: case QTYPE_BF16:
	case QTYPE_Q4_0: case QTYPE_Q4_1: case QTYPE_Q5_0: case QTYPE_Q5_1: case QTYPE_Q8_0:
	case QTYPE_MXFP4:
	case QTYPE_Q2_K: case QTYPE_Q3_K: case QTYPE_Q4_K: case QTYPE_Q5_K: case QTYPE_Q6_K:
		return true;
	default:
		return false;
	}
}

/* Bytes of one activation row of `cols` values in the widest of the
 * quantised activation formats (Q8_0 34/32, Q8_1 36/32, Q8_K 292/256). */
static size_t act_row_bytes_max(int64_t cols)
{
	const uint32_t fmt[3] = { QTYPE_Q8_0, QTYPE_Q8_1, QTYPE_Q8_K };
	size_t best = 0;
	for (int i = 0; i < 3; i++) {
		const struct qtype_info *q = qtype_info(fmt[i]);
		const uint64_t blocks = ((uint64_t)cols + q->block_elems - 1) / q->block_elems;
		const size_t b = (size_t)(blocks * q->block_bytes);
		best = b > best ? b : best;
	}
	return best;
}

extern "C" size_t cuda_matmul_scratch_bytes(int max_rows, int64_t max_cols)
{
	if (max_rows <= 0 || max_cols <= 0)
		return 0;
	return (size_t)max_rows * act_row_bytes_max(max_cols);
}

extern "C" int cuda_matmul_reserve(struct cuda_ctx *c, int max_rows, int64_t max_cols,
				   struct smk_err *err)
{
	const size_t bytes = cuda_matmul_scratch_bytes(max_rows, max_cols);
	if (!bytes)
		return smk_fail(err, -EINVAL, "matmul: limits %d rows x %lld values", max_rows,
				(long long)max_cols);
	CUDA_CHECK(err, cudaMalloc(&c->act, bytes));
	c->act_bytes = bytes;
	/* Where the tiled kernel starts to pay is a GPU measurement (bench_gpu
	 * --prefill); the variable lets a session compare without a rebuild. */
	c->tile_min_n = MM_TILE_MIN_N;
	const char *env = getenv("SMOKE_CUDA_TILE_MIN_N");
	if (env && *env) {
		char *end;
		const long v = strtol(env, &end, 10);
		if (*end || v < 1 || v > (1 << 30))
			return smk_fail(err, -EINVAL, "SMOKE_CUDA_TILE_MIN_N=%s: want a row count >= 1", env);
		c->tile_min_n = (int)v;
	}
	return 0;
}

/* The activation block format a quantised weight type is dotted with
 * (compute/cpu/qdot.c's qdot_act_type). */
struct act_fmt {
	int elems, bytes, qs_off;
	bool with_sum;
};

/* Read from the weight type's qd<T> (cuda_qdot.cuh), the one place that
 * pairs each type with its activation block. */
static void act_format(uint32_t wtype, struct act_fmt *f)
{
#define AF_CALL(T)                                                             \
	*f = act_fmt{ qd<T>::block_elems, qd<T>::act_block_bytes, qd<T>::act_qs, \
		      (int)qd<T>::act_type == (int)QTYPE_Q8_1 };
	QD_DISPATCH(wtype, AF_CALL)
#undef AF_CALL
}

/* The checks both weight readers need: a type we decode, rows that are
 * whole blocks of the stated size, float rows aligned for their loads. */
static int check_weights(const struct wtensor *w, const char *op, struct smk_err *err)
{
	const char *name = w->name ? w->name : "(unnamed)";
	if (!cuda_can_compute(w->type))
		return smk_fail(err, -EINVAL, "%s: tensor %s has type %s, which the CUDA kernels do not read",
				op, name, qtype_name(w->type));
	uint64_t rb;
	if (w->ne0 <= 0 || w->ne1 <= 0 || qtype_row_bytes(w->type, (uint64_t)w->ne0, &rb, NULL) ||
	    rb != w->row_bytes)
		return smk_fail(err, -EINVAL, "%s: tensor %s: %lld x %lld %s with %llu-byte rows is not a whole-block layout",
				op, name, (long long)w->ne1, (long long)w->ne0, qtype_name(w->type),
				(unsigned long long)w->row_bytes);
	const unsigned align = w->type == QTYPE_F32 ? 4 : (w->type == QTYPE_F16 || w->type == QTYPE_BF16) ? 2 : 1;
	if (!w->data || (uintptr_t)w->data % align)
		return smk_fail(err, -EINVAL, "%s: tensor %s: data %p is not %u-byte aligned device memory",
				op, name, w->data, align);
	return 0;
}

extern "C" int cuda_matmul(const struct cuda_ctx *c, const struct wtensor *w, const float *x,
			   int n, float *y, struct smk_err *err)
{
	int rc = check_weights(w, "matmul", err);
	if (rc)
		return rc;
	if (n <= 0 || !x || !y)
		return smk_fail(err, -EINVAL, "matmul: %d activation rows (x %p, y %p)", n,
				(const void *)x, (void *)y);
	const uint8_t *wd = (const uint8_t *)w->data;
	const dim3 grid((unsigned)((w->ne1 + MV_WARPS - 1) / MV_WARPS),
			(unsigned)((n + MV_MAX_N - 1) / MV_MAX_N));
	if (w->type == QTYPE_F32 || w->type == QTYPE_F16 || w->type == QTYPE_BF16) {
#define MVF_CALL(T)                                                                       \
	{                                                                                 \
		void (*k)(const uint8_t *, uint64_t, int64_t, int64_t, const float *, int,  \
			  float *) = mv_float_kernel<T>;                                    \
		SMK_LAUNCH(k, grid, dim3(MV_WARPS * 32), 0, c->stream, wd, w->row_bytes,  \
			   w->ne0, w->ne1, x, n, y);                                        \
	}
		DQ_DISPATCH(w->type, MVF_CALL)
#undef MVF_CALL
		CUDA_CHECK(err, cudaGetLastError());
		return 0;
	}

	/* Quantise the activations into c->act (the CPU's format for this
	 * weight type), then the products; both on the stream, in order. */
	struct act_fmt f = { 0, 0, 0, false };
	act_format(w->type, &f);
	if (!f.elems) /* check_weights lets no such type through */
		return smk_fail(err, -EINVAL, "matmul: no activation format for %s",
				qtype_name(w->type));
	const uint64_t act_row = (uint64_t)(w->ne0 / f.elems) * (uint64_t)f.bytes;
	if (!c->act || act_row * (uint64_t)n > c->act_bytes)
		return smk_fail(err, -EINVAL, "matmul: %d rows of %lld values need %llu bytes of quantised activations; the context reserved %zu (cuda_matmul_reserve)",
				n, (long long)w->ne0, (unsigned long long)(act_row * (uint64_t)n),
				c->act_bytes);
	const int64_t n_act = (int64_t)n * (w->ne0 / f.elems);
	const dim3 qgrid((unsigned)((n_act + QZ_WARPS - 1) / QZ_WARPS));
	if (f.elems == 256) {
		void (*k)(const float *, int64_t, int64_t, uint8_t *) = qz_q8_k_kernel;
		SMK_LAUNCH(k, qgrid, dim3(QZ_WARPS * 32), 0, c->stream, x, w->ne0, n_act, c->act);
	} else {
		void (*k)(const float *, int64_t, int64_t, uint8_t *, int, int, bool) = qz_q8_32_kernel;
		SMK_LAUNCH(k, qgrid, dim3(QZ_WARPS * 32), 0, c->stream, x, w->ne0, n_act, c->act,
			   f.bytes, f.qs_off, f.with_sum);
	}
	CUDA_CHECK(err, cudaGetLastError());
	const uint8_t *act = c->act;
	if (n >= c->tile_min_n) {
		const dim3 tgrid((unsigned)((w->ne1 + MM_TM - 1) / MM_TM),
				 (unsigned)((n + MM_TN - 1) / MM_TN));
#define MMQ_CALL(T)                                                                       \
	{                                                                                 \
		void (*k)(const uint8_t *, uint64_t, int64_t, int64_t, const uint8_t *,     \
			  uint64_t, int, float *) = mm_quant_tile_kernel<T>;                \
		SMK_LAUNCH(k, tgrid, dim3(256), 0, c->stream, wd, w->row_bytes, w->ne0,   \
			   w->ne1, act, act_row, n, y);                                     \
	}
		QD_DISPATCH(w->type, MMQ_CALL)
#undef MMQ_CALL
	} else {
#define MVQ_CALL(T)                                                                       \
	{                                                                                 \
		void (*k)(const uint8_t *, uint64_t, int64_t, int64_t, const uint8_t *,     \
			  uint64_t, int, float *) = mv_quant_kernel<T>;                     \
		SMK_LAUNCH(k, grid, dim3(MV_WARPS * 32), 0, c->stream, wd, w->row_bytes,  \
			   w->ne0, w->ne1, act, act_row, n, y);                             \
	}
		QD_DISPATCH(w->type, MVQ_CALL)
#undef MVQ_CALL
	}
	CUDA_CHECK(err, cudaGetLastError());
	return 0;
}

extern "C" int cuda_embed(const struct cuda_ctx *c, const struct wtensor *table,
			  const int32_t *tok, int n, float scale, float *y, struct smk_err *err)
{
	int rc = check_weights(table, "embed", err);
	if (rc)
		return rc;
	if (n <= 0 || !tok || !y)
		return smk_fail(err, -EINVAL, "embed: %d tokens", n);
	for (int t = 0; t < n; t++)
		if (tok[t] < 0 || tok[t] >= table->ne1)
			return smk_fail(err, -ERANGE, "embed: token id %d at %d is outside %s's %lld rows",
					tok[t], t, table->name ? table->name : "the table",
					(long long)table->ne1);
	const uint8_t *td = (const uint8_t *)table->data;
	const unsigned bx = (unsigned)(((table->ne0 + 7) / 8 + EMB_THREADS - 1) / EMB_THREADS);
	for (int t0 = 0; t0 < n; t0 += EMB_CHUNK) {
		const int m = n - t0 < EMB_CHUNK ? n - t0 : EMB_CHUNK;
		struct emb_ids ids;
		memset(&ids, 0, sizeof(ids));
		memcpy(ids.id, tok + t0, sizeof(int32_t) * (size_t)m);
		float *yc = y + (int64_t)t0 * table->ne0;
		const dim3 grid(bx, (unsigned)m);
#define EMB_CALL(T)                                                                        \
	{                                                                                  \
		void (*k)(const uint8_t *, uint64_t, int64_t, const struct emb_ids, float,   \
			  float *) = emb_kernel<T>;                                          \
		SMK_LAUNCH(k, grid, dim3(EMB_THREADS), 0, c->stream, td, table->row_bytes, \
			   table->ne0, ids, scale, yc);                                      \
	}
		DQ_DISPATCH(table->type, EMB_CALL)
#undef EMB_CALL
		CUDA_CHECK(err, cudaGetLastError());
	}
	return 0;
}
