/* cuda_matmul.cu - the kernels that read quantised weights: matrix-vector
 * and matrix-matrix products, and the embedding lookup.
 *
 * Weights stay in their file layout in device memory and are decoded in
 * registers as they are read (cuda_dequant.cuh), eight values at a time.
 * Activations are float and the products accumulate in float.
 *
 * Decode (n <= MV_MAX_N activation rows): one warp per weight row.  Lane l
 * takes the row's 8-value chunks l, l+32, ..., so a warp reads a run of
 * consecutive bytes; each decoded chunk is used for all n activation rows,
 * so the row is streamed once per call whatever n is.  A butterfly
 * reduction ends the row.  Memory-bound, as decode is.
 *
 * Prefill (n > MV_MAX_N): 64x64 output tiles per block of 256 threads;
 * each 32-wide step decodes a 64x32 weight tile and loads a 64x32
 * activation tile into shared memory, then every thread accumulates a 4x4
 * patch.  Each weight value is decoded once per 64 activation rows.
 * TODO: tensor cores (cublasGemmEx on tiles dequantised to fp16/bf16, or an
 * MMA kernel with on-the-fly decode) once a GPU session can measure where
 * they win; these float kernels are the correctness baseline. */
#include "compute/cuda/cuda_dequant.cuh"
#include "compute/cuda/cuda_internal.cuh"

#define MV_WARPS 4
#define MV_MAX_N 8
#define MM_TM 64
#define MM_TN 64
#define MM_TK 32
#define EMB_CHUNK 512   /* token ids per embedding launch (kernel parameters) */
#define EMB_THREADS 128

template <int T>
static __global__ void __launch_bounds__(MV_WARPS * 32) mm_vec_kernel(
	const uint8_t *__restrict__ w, uint64_t row_bytes, int64_t ne0, int64_t ne1,
	const float *__restrict__ x, int n, float *__restrict__ y)
{
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	const int64_t r = (int64_t)blockIdx.x * MV_WARPS + warp;
	if (r >= ne1)
		return; /* the whole warp: no barrier follows that it would miss */
	const uint8_t *row = w + (uint64_t)r * row_bytes;
	float acc[MV_MAX_N];
	for (int j = 0; j < MV_MAX_N; j++)
		acc[j] = 0.0f;
	const int64_t chunks = (ne0 + 7) / 8;
	for (int64_t ch = lane; ch < chunks; ch += 32) {
		float v[8];
		const int64_t e0 = ch * 8;
		dq<T>::get8(row, e0, ne0, v);
		const int m = ne0 - e0 < 8 ? (int)(ne0 - e0) : 8;
		for (int j = 0; j < MV_MAX_N; j++) {
			if (j >= n)
				break;
			const float *xr = x + (int64_t)j * ne0 + e0;
			float s = 0.0f;
			for (int k = 0; k < m; k++)
				s += v[k] * xr[k];
			acc[j] += s;
		}
	}
	for (int j = 0; j < MV_MAX_N; j++) {
		if (j >= n)
			break;
		const float s = smk_warp_sum(acc[j]);
		if (lane == 0)
			y[(int64_t)j * ne1 + r] = s;
	}
}

template <int T>
static __global__ void __launch_bounds__(256) mm_tile_kernel(
	const uint8_t *__restrict__ w, uint64_t row_bytes, int64_t ne0, int64_t ne1,
	const float *__restrict__ x, int n, float *__restrict__ y)
{
	/* k-major tiles, padded by one so a warp's column reads spread banks */
	SMK_SHARED(float, ws, MM_TK * (MM_TM + 1));
	SMK_SHARED(float, xs, MM_TK * (MM_TN + 1));
	const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
	const int64_t r0 = (int64_t)blockIdx.x * MM_TM;
	const int t0 = blockIdx.y * MM_TN;
	/* loader role: tile row lr (weight row or activation row), values
	 * part*8 .. part*8+7 of the 32-wide step */
	const int lr = tid / 4, part = tid % 4;
	const int64_t wr = r0 + lr;
	const int xt = t0 + lr;
	float acc[4][4];
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++)
			acc[i][j] = 0.0f;

	for (int64_t k0 = 0; k0 < ne0; k0 += MM_TK) {
		const int64_t e0 = k0 + part * 8;
		float v[8];
		if (wr < ne1 && e0 < ne0) {
			dq<T>::get8(w + (uint64_t)wr * row_bytes, e0, ne0, v);
		} else {
			for (int i = 0; i < 8; i++)
				v[i] = 0.0f;
		}
		for (int i = 0; i < 8; i++)
			ws[(part * 8 + i) * (MM_TM + 1) + lr] = v[i];
		for (int i = 0; i < 8; i++) {
			const int64_t e = e0 + i;
			xs[(part * 8 + i) * (MM_TN + 1) + lr] =
				xt < n && e < ne0 ? x[(int64_t)xt * ne0 + e] : 0.0f;
		}
		__syncthreads();
		for (int kk = 0; kk < MM_TK; kk++) {
			float a[4], b[4];
			for (int i = 0; i < 4; i++)
				a[i] = ws[kk * (MM_TM + 1) + ty * 4 + i];
			for (int j = 0; j < 4; j++)
				b[j] = xs[kk * (MM_TN + 1) + tx * 4 + j];
			for (int i = 0; i < 4; i++)
				for (int j = 0; j < 4; j++)
					acc[i][j] += a[i] * b[j];
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
				y[(int64_t)t * ne1 + r] = acc[i][j];
		}
	}
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
	return 0;
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
	if (n <= MV_MAX_N) {
		const dim3 grid((unsigned)((w->ne1 + MV_WARPS - 1) / MV_WARPS));
#define MV_CALL(T)                                                                        \
	{                                                                                 \
		void (*k)(const uint8_t *, uint64_t, int64_t, int64_t, const float *, int,  \
			  float *) = mm_vec_kernel<T>;                                      \
		SMK_LAUNCH(k, grid, dim3(MV_WARPS * 32), 0, c->stream, wd, w->row_bytes,  \
			   w->ne0, w->ne1, x, n, y);                                        \
	}
		DQ_DISPATCH(w->type, MV_CALL)
#undef MV_CALL
	} else {
		const dim3 grid((unsigned)((w->ne1 + MM_TM - 1) / MM_TM),
				(unsigned)((n + MM_TN - 1) / MM_TN));
#define MM_CALL(T)                                                                        \
	{                                                                                 \
		void (*k)(const uint8_t *, uint64_t, int64_t, int64_t, const float *, int,  \
			  float *) = mm_tile_kernel<T>;                                     \
		SMK_LAUNCH(k, grid, dim3(256), 0, c->stream, wd, w->row_bytes, w->ne0,    \
			   w->ne1, x, n, y);                                                \
	}
		DQ_DISPATCH(w->type, MM_CALL)
#undef MM_CALL
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
