/* cuda_backend.cu - the kernel context (cuda_ctx) and struct backend_ops
 * over the kernels, with device memory on the side (cuda_backend_ops).
 *
 * The backend owns: its cuda_ctx (the GELU table on the device), a compute
 * stream unless the caller passed one, and the first error of the ops that
 * return void.  It never synchronises anything but its own stream, and only
 * where asked to (download, sync).  Every op first makes the backend's
 * device current on the calling thread (cudaSetDevice costs no
 * synchronisation), so one thread may drive backends on several GPUs. */
#include "compute/cuda/cuda_internal.cuh"

#include <stdlib.h>

#include "quant/qtype.h"

extern "C" int cuda_ctx_init(struct cuda_ctx *c, struct CUstream_st *stream, struct smk_err *err)
{
	memset(c, 0, sizeof(*c));
	c->stream = stream;
	int dev = 0, optin = 0, rc = 0;
	uint16_t *host = NULL;
	CUDA_CHECK(err, cudaGetDevice(&dev));
	CUDA_CHECK(err, cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
	host = (uint16_t *)malloc(sizeof(uint16_t) << 16);
	if (!host)
		return smk_fail(err, -ENOMEM, "cuda: no host memory for the GELU table");
	cuda_gelu_table_fill(host);
	CUDA_CHECK_GOTO(err, rc, cudaMalloc(&c->gelu_table, sizeof(uint16_t) << 16), fail);
	/* On the compute stream, so the kernels that read the table are
	 * ordered after it (a plain cudaMemcpy from pageable memory may
	 * return before its DMA lands, and a non-blocking stream would not
	 * wait for it); the one wait of the set-up lets `host` go. */
	CUDA_CHECK_GOTO(err, rc, cudaMemcpyAsync(c->gelu_table, host, sizeof(uint16_t) << 16,
						 cudaMemcpyHostToDevice, c->stream), fail);
	CUDA_CHECK_GOTO(err, rc, cudaStreamSynchronize(c->stream), fail);
	rc = cuda_attention_init(c, optin, err);
	if (rc)
		goto fail;
	free(host);
	return 0;
fail:
	free(host);
	cuda_ctx_deinit(c);
	return rc;
}

extern "C" void cuda_ctx_deinit(struct cuda_ctx *c)
{
	if (c->gelu_table)
		cudaFree(c->gelu_table);
	c->gelu_table = NULL;
	if (c->act)
		cudaFree(c->act);
	c->act = NULL;
	c->act_bytes = 0;
}

/* ---- the backend ------------------------------------------------------------- */

struct cuda_be {
	struct backend base;
	struct cuda_ctx ctx;
	int device;
	cudaStream_t own_stream;   /* made here, destroyed in be_free; or NULL */
	struct smk_err first;      /* first failure of an op since the last sync */
};

static struct cuda_be *be_of(struct backend *b)
{
	return (struct cuda_be *)b;
}

/* Keep the first failure; later ones are usually its consequences. */
static int be_record(struct cuda_be *cb, int rc, const struct smk_err *e)
{
	if (rc && !cb->first.code) {
		cb->first = *e;
		cb->first.code = rc;
	}
	return rc;
}

/* Make the device current; fails only if the device went away. */
static int be_enter(struct cuda_be *cb, struct smk_err *e)
{
	CUDA_CHECK(e, cudaSetDevice(cb->device));
	return 0;
}

/* The body of an op that returns nothing: skip after a failure (the next
 * matmul/embed or cuda_be_sync reports it), make the device current, run
 * `call` (which may use cb and &e), keep its first failure. */
#define BE_RUN(b, call)                                   \
	do {                                              \
		struct cuda_be *cb = be_of(b);            \
		struct smk_err e = { 0, "" };             \
		if (cb->first.code)                       \
			return;                           \
		int rc_ = be_enter(cb, &e);               \
		if (!rc_)                                 \
			rc_ = (call);                     \
		be_record(cb, rc_, &e);                   \
	} while (0)

static int be_matmul(struct backend *b, const struct wtensor *w, const float *x, int n, float *y)
{
	struct cuda_be *cb = be_of(b);
	struct smk_err e = { 0, "" };
	if (cb->first.code)
		return cb->first.code;
	if (n <= 0 || n > b->limits.max_rows || w->ne0 > b->limits.max_cols)
		return be_record(cb, smk_fail(&e, -EINVAL, "matmul: %d rows of %lld values exceed the backend's %d x %lld",
					      n, (long long)w->ne0, b->limits.max_rows,
					      (long long)b->limits.max_cols), &e);
	int rc = be_enter(cb, &e);
	if (!rc)
		rc = cuda_matmul(&cb->ctx, w, x, n, y, &e);
	return be_record(cb, rc, &e);
}

static void be_rmsnorm(struct backend *b, const float *x, const struct wtensor *w, float *y,
		       int width, int n, float eps)
{
	struct cuda_be *cb = be_of(b);
	struct smk_err e = { 0, "" };
	if (cb->first.code)
		return;
	if (w && (w->type != QTYPE_F32 || w->ne0 < width)) {
		be_record(cb, smk_fail(&e, -EINVAL, "rmsnorm: weight %s must be F32 of at least %d values",
				       w->name ? w->name : "(unnamed)", width), &e);
		return;
	}
	int rc = be_enter(cb, &e);
	if (!rc)
		rc = cuda_rmsnorm(&cb->ctx, x, w ? (const float *)w->data : NULL, y, width, n, eps, &e);
	be_record(cb, rc, &e);
}

static void be_rope(struct backend *b, float *x, int n, int n_heads, int head_dim, int pos0,
		    const struct rope_params *rp)
{
	BE_RUN(b, cuda_rope(&cb->ctx, x, n, n_heads, head_dim, pos0, rp, &e));
}

static void be_attention(struct backend *b, const float *q, const uint16_t *k,
			 const uint16_t *v, float *out, const struct attn_params *ap)
{
	BE_RUN(b, cuda_attention(&cb->ctx, q, k, v, out, ap, &e));
}

static void be_gelu_mul(struct backend *b, float *g, const float *u, int64_t n)
{
	BE_RUN(b, cuda_gelu_mul(&cb->ctx, g, u, n, &e));
}

static void be_swiglu_oai(struct backend *b, float *g, const float *u, int64_t n, float alpha,
			  float limit)
{
	BE_RUN(b, cuda_swiglu_oai(&cb->ctx, g, u, n, alpha, limit, &e));
}

static void be_silu_mul(struct backend *b, float *g, const float *u, int64_t n)
{
	BE_RUN(b, cuda_silu_mul(&cb->ctx, g, u, n, &e));
}

static void be_add(struct backend *b, float *x, const float *y, int64_t n)
{
	BE_RUN(b, cuda_add(&cb->ctx, x, y, n, &e));
}

static int be_embed(struct backend *b, const struct wtensor *table, const int32_t *tok, int n,
		    float scale, float *y)
{
	struct cuda_be *cb = be_of(b);
	struct smk_err e = { 0, "" };
	if (cb->first.code)
		return cb->first.code;
	int rc = be_enter(cb, &e);
	if (!rc)
		rc = cuda_embed(&cb->ctx, table, tok, n, scale, y, &e);
	/* A bad token id is the caller's input, not a backend failure: report
	 * it without poisoning the ops that follow (the CPU backend's -ERANGE). */
	if (rc == -ERANGE)
		return rc;
	return be_record(cb, rc, &e);
}

static void be_add_bias(struct backend *b, float *x, const struct wtensor *bias, int n)
{
	struct cuda_be *cb = be_of(b);
	struct smk_err e = { 0, "" };
	if (cb->first.code)
		return;
	if (bias->type != QTYPE_F32) {
		be_record(cb, smk_fail(&e, -EINVAL, "add_bias: bias %s must be F32",
				       bias->name ? bias->name : "(unnamed)"), &e);
		return;
	}
	int rc = be_enter(cb, &e);
	if (!rc)
		rc = cuda_add_bias(&cb->ctx, x, (const float *)bias->data, bias->ne0, n, &e);
	be_record(cb, rc, &e);
}

static void be_round_fp16(struct backend *b, float *dst, const float *src, int64_t n)
{
	BE_RUN(b, cuda_round_fp16(&cb->ctx, dst, src, n, &e));
}

static void be_store_fp16(struct backend *b, uint16_t *dst, const float *src, int64_t n)
{
	BE_RUN(b, cuda_store_fp16(&cb->ctx, dst, src, n, &e));
}

static void be_scale(struct backend *b, float *x, float s, int64_t n)
{
	BE_RUN(b, cuda_scale(&cb->ctx, x, s, n, &e));
}

static void be_gather_rows(struct backend *b, float *dst, const float *src, const int32_t *rows,
			   int n, int64_t width)
{
	BE_RUN(b, cuda_gather_rows(&cb->ctx, dst, src, rows, n, width, &e));
}

static void be_scatter_scaled_rows(struct backend *b, float *dst, const float *src,
				   const int32_t *rows, const float *scale, int n, int64_t width)
{
	BE_RUN(b, cuda_scatter_scaled_rows(&cb->ctx, dst, src, rows, scale, n, width, &e));
}

static int be_copy_on_stream(struct cuda_be *cb, void *dst, const void *src, size_t bytes,
			     struct smk_err *e)
{
	CUDA_CHECK(e, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cb->ctx.stream));
	return 0;
}

static void be_copy(struct backend *b, void *dst, const void *src, size_t bytes)
{
	BE_RUN(b, be_copy_on_stream(cb, dst, src, bytes, &e));
}

static int be_alloc(struct backend *b, void **out, size_t bytes, struct smk_err *err)
{
	struct cuda_be *cb = be_of(b);
	int rc = be_enter(cb, err);
	if (rc)
		return rc;
	CUDA_CHECK(err, cudaMalloc(out, bytes ? bytes : 1));
	return 0;
}

static void be_free_mem(struct backend *b, void *p)
{
	struct cuda_be *cb = be_of(b);
	struct smk_err e = { 0, "" };
	if (p && !be_enter(cb, &e))
		cudaFree(p);
}

static int be_upload(struct backend *b, void *dst, const void *src, size_t bytes,
		     struct smk_err *err)
{
	struct cuda_be *cb = be_of(b);
	int rc = be_enter(cb, err);
	if (rc)
		return rc;
	CUDA_CHECK(err, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cb->ctx.stream));
	return 0;
}

static int be_download(struct backend *b, void *dst, const void *src, size_t bytes,
		       struct smk_err *err)
{
	struct cuda_be *cb = be_of(b);
	int rc = be_enter(cb, err);
	if (rc)
		return rc;
	CUDA_CHECK(err, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cb->ctx.stream));
	return b->ops->sync(b, err);
}

static int be_sync(struct backend *b, struct smk_err *err)
{
	struct cuda_be *cb = be_of(b);
	int rc = be_enter(cb, err);
	if (rc)
		return rc;
	CUDA_CHECK(err, cudaStreamSynchronize(cb->ctx.stream));
	if (cb->first.code) {
		rc = cb->first.code;
		if (err)
			*err = cb->first;
		smk_err_clear(&cb->first);
		return rc;
	}
	return 0;
}

static const struct cuda_ctx *be_ctx(struct backend *b)
{
	return &be_of(b)->ctx;
}

static void be_free(struct backend *b)
{
	struct cuda_be *cb = be_of(b);
	struct smk_err e = { 0, "" };
	if (!be_enter(cb, &e)) {
		/* the table may still be read by queued work */
		cudaStreamSynchronize(cb->ctx.stream);
		cuda_ctx_deinit(&cb->ctx);
		if (cb->own_stream)
			cudaStreamDestroy(cb->own_stream);
	}
	free(cb);
}

static const struct cuda_backend_ops cuda_ops = {
	{
		"cuda",
		be_free,
		be_matmul,
		be_rmsnorm,
		be_rope,
		be_attention,
		be_gelu_mul,
		be_silu_mul,
		be_swiglu_oai,
		be_add,
		be_embed,
		be_add_bias,
		be_round_fp16,
		be_store_fp16,
		be_scale,
		be_copy,
		false,
		be_alloc,
		be_free_mem,
		be_upload,
		be_download,
		be_sync,
		be_gather_rows,
		be_scatter_scaled_rows,
		NULL, /* matmuls: the forward pass runs one matmul per weight */
		NULL, /* attentions: one attention call per sequence */
	},
	be_ctx,
};

extern "C" int backend_cuda_new(struct backend **out, const struct backend_limits *lim,
				const struct cuda_backend_opts *opts, struct smk_err *err)
{
	const int dev = opts ? opts->device : 0;
	if (lim->max_cols <= 0 || lim->max_rows <= 0 || lim->max_ctx <= 0)
		return smk_fail(err, -EINVAL, "cuda backend: limits must be positive");
	int count = 0;
	CUDA_CHECK(err, cudaGetDeviceCount(&count));
	if (dev < 0 || dev >= count)
		return smk_fail(err, -ENODEV, "cuda backend: device %d does not exist (%d found)", dev,
				count);
	CUDA_CHECK(err, cudaSetDevice(dev));

	struct cuda_be *cb = (struct cuda_be *)calloc(1, sizeof(*cb));
	if (!cb)
		return smk_fail(err, -ENOMEM, "cuda backend: out of memory");
	cb->base.ops = &cuda_ops.base;
	cb->base.limits = *lim;
	cb->base.limits.n_threads = 1;
	cb->device = dev;
	cudaStream_t stream = opts ? opts->stream : NULL;
	int rc = 0;
	if (!stream) {
		/* non-blocking: never implicitly ordered with the legacy stream */
		CUDA_CHECK_GOTO(err, rc, cudaStreamCreateWithFlags(&cb->own_stream, cudaStreamNonBlocking), fail);
		stream = cb->own_stream;
	}
	rc = cuda_ctx_init(&cb->ctx, stream, err);
	if (rc)
		goto fail;
	rc = cuda_matmul_reserve(&cb->ctx, lim->max_rows, lim->max_cols, err);
	if (rc) {
		cuda_ctx_deinit(&cb->ctx);
		goto fail;
	}
	if (lim->max_ctx > cuda_attention_max_span(&cb->ctx)) {
		rc = smk_fail(err, -EINVAL, "cuda backend: max_ctx %d exceeds the %d positions attention holds on device %d",
			      lim->max_ctx, cuda_attention_max_span(&cb->ctx), dev);
		cuda_ctx_deinit(&cb->ctx);
		goto fail;
	}
	*out = &cb->base;
	return 0;
fail:
	if (cb->own_stream)
		cudaStreamDestroy(cb->own_stream);
	free(cb);
	return rc;
}
