/* ops.c - the CPU backend's constructor, its op table, embedding
 * lookups, row copies and memory (its element-wise ops: elementwise.c). */
#include "compute/cpu/cpu_backend.h"
#include "compute/cpu/qdot.h"
#include "quant/qtype.h"

#include <stdlib.h>
#include <string.h>

static int cpu_embed(struct backend *b, const struct wtensor *table, const int32_t *tok, int n,
		     float scale, float *y)
{
	const struct qtype_info *qi = qtype_info(table->type);
	if (!qi || !qi->dequant_row)
		return -EINVAL;
	for (int t = 0; t < n; t++) {
		if (tok[t] < 0 || tok[t] >= table->ne1)
			return -ERANGE;
		float *yr = y + (int64_t)t * table->ne0;
		qi->dequant_row(wtensor_row(table, tok[t]), yr, table->ne0);
		if (scale != 1.0f)
			for (int64_t i = 0; i < table->ne0; i++)
				yr[i] *= scale;
	}
	return 0;
}

static void cpu_copy(struct backend *b, void *dst, const void *src, size_t bytes)
{
	(void)b;
	memmove(dst, src, bytes);
}

static void cpu_gather_rows(struct backend *b, float *dst, const float *src, const int32_t *rows,
			    int n, int64_t width)
{
	(void)b;
	for (int i = 0; i < n; i++)
		memcpy(dst + (int64_t)i * width, src + (int64_t)rows[i] * width, sizeof(float) * (size_t)width);
}

static void cpu_scatter_scaled_rows(struct backend *b, float *dst, const float *src,
				    const int32_t *rows, const float *scale, int n, int64_t width)
{
	(void)b;
	for (int i = 0; i < n; i++) {
		float *y = dst + (int64_t)rows[i] * width;
		const float *x = src + (int64_t)i * width, s = scale[i];
		for (int64_t j = 0; j < width; j++)
			y[j] = x[j] * s;
	}
}

/* The CPU backend's memory is the process's: 64-byte aligned for the SIMD
 * loads, and every op has finished when it returns. */
static int cpu_alloc(struct backend *b, void **out, size_t bytes, struct smk_err *err)
{
	(void)b;
	*out = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
	if (!*out)
		return smk_fail(err, -ENOMEM, "cpu backend: cannot allocate %zu bytes", bytes);
	return 0;
}

static void cpu_free_mem(struct backend *b, void *p)
{
	(void)b;
	free(p);
}

static int cpu_move(struct backend *b, void *dst, const void *src, size_t bytes,
		    struct smk_err *err)
{
	(void)b;
	(void)err;
	memmove(dst, src, bytes);
	return 0;
}

static int cpu_sync(struct backend *b, struct smk_err *err)
{
	(void)b;
	(void)err;
	return 0;
}

static void cpu_free(struct backend *b)
{
	struct cpu_backend *cb = cpu_of(b);
	tpool_free(cb->pool);
	free(cb->act);
	free(cb->scores);
	free(cb);
}

static const struct backend_ops cpu_ops = {
	.name = "cpu",
	.free = cpu_free,
	.matmul = cpu_matmul,
	.matmuls = cpu_matmuls,
	.rmsnorm = cpu_rmsnorm,
	.rope = cpu_rope,
	.attention = cpu_attention,
	.attentions = cpu_attentions,
	.gelu_mul = cpu_gelu_mul,
	.silu_mul = cpu_silu_mul,
	.swiglu_oai = cpu_swiglu_oai,
	.add = cpu_add,
	.embed = cpu_embed,
	.add_bias = cpu_add_bias,
	.round_fp16 = cpu_round_fp16,
	.store_fp16 = cpu_store_fp16,
	.scale = cpu_scale,
	.copy = cpu_copy,
	.host_memory = true,
	.alloc = cpu_alloc,
	.free_mem = cpu_free_mem,
	.upload = cpu_move,
	.download = cpu_move,
	.sync = cpu_sync,
	.gather_rows = cpu_gather_rows,
	.scatter_scaled_rows = cpu_scatter_scaled_rows,
};

int backend_cpu_new(struct backend **out, const struct backend_limits *lim, struct smk_err *err)
{
	if (lim->max_cols <= 0 || lim->max_rows <= 0 || lim->max_ctx <= 0)
		return smk_fail(err, -EINVAL, "cpu backend: limits must be positive");
	char why[200];
	if (qdot_cpu_check(why, sizeof(why)))
		return smk_fail(err, -EINVAL, "cpu backend: %s", why);
	cpu_gelu_init();

	struct cpu_backend *cb = calloc(1, sizeof(*cb));
	if (!cb)
		return smk_fail(err, -ENOMEM, "cpu backend: out of memory");
	cb->base.ops = &cpu_ops;
	cb->base.limits = *lim;
	int rc = tpool_new(&cb->pool, lim->n_threads, err);
	if (rc) {
		free(cb);
		return rc;
	}
	cb->base.limits.n_threads = tpool_size(cb->pool);

	/* The widest prepared activation row any weight type asks for (a
	 * tile's rows are the widest: qdot_tile_act_row_bytes). */
	size_t per_row = 0;
	for (uint32_t t = 0; t < QTYPE_COUNT; t++) {
		if (!qtype_can_compute(t) || qdot_act_type(t) == QTYPE_F32)
			continue;
		size_t r = qdot_tile_act_row_bytes(t, lim->max_cols);
		if (r > per_row)
			per_row = r;
	}
	cb->act_bytes = per_row * (size_t)lim->max_rows;
	cb->act = aligned_alloc(64, (cb->act_bytes + 63) / 64 * 64 + 64);
	/* The SIMD attention scores whole 8-position groups around the
	 * window, up to 14 cells more than the window itself. */
	cb->scores_row = (lim->max_ctx + 16 + 7) / 8 * 8;
	cb->scores = malloc(sizeof(float) * (size_t)cb->scores_row * CPU_ATTN_HEADS *
			    (size_t)cb->base.limits.n_threads);
	if (!cb->act || !cb->scores) {
		cpu_free(&cb->base);
		return smk_fail(err, -ENOMEM, "cpu backend: cannot allocate scratch");
	}
	*out = &cb->base;
	return 0;
}
