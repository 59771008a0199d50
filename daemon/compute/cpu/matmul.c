/* matmul.c - quantised weight x float activation products on the CPU.
 *
 * As in llama.cpp, weights are never dequantised: each activation row is
 * quantised once to the format the weight type's integer dot product takes
 * (Q8_0 or Q8_K), then every weight row is dotted with it.  Threads split the
 * weight rows into contiguous ranges, so each thread streams its own part of
 * the matrix once and reuses it for every activation row in the batch.
 * Where the type has a tile kernel (qdot_get_tile), a tile of weight rows
 * times every activation row is one call, the tile's weight blocks
 * unpacked once for the whole batch; else, where it has a several-activation kernel
 * (qdot_get4), a weight row is decoded once per four activation rows
 * instead of once per row.  Either way each output equals the single-row
 * kernel's bit for bit.
 */
#include "compute/cpu/cpu_backend.h"
#include "compute/cpu/qdot.h"
#include "quant/qtype.h"

#include <string.h>

struct matmul_job {
	const struct wtensor *w;
	const float *x;
	float *y;
	int n;
	const void *act;
	size_t act_row;
	qdot_fn dot;
	qdot4_fn dot4; /* NULL: loop over dot */
	qdot_tile_fn tile; /* NULL: dot4 or dot */
	int tile_rows;     /* weight rows per tile call */
};

static void prepare_share(void *ctx, int ith, int nth)
{
	struct matmul_job *j = ctx;
	int64_t lo, hi;
	cpu_share(j->n, ith, nth, &lo, &hi);
	for (int64_t t = lo; t < hi; t++)
		qdot_prepare(j->w->type, j->x + t * j->w->ne0,
			     (char *)j->act + t * j->act_row, j->w->ne0);
}

/* Weight rows per inner tile: with many activation rows, a tile of weight
 * rows stays in L1/L2 while every activation row passes over it. */
#define ROW_TILE 16

static void dot_share(void *ctx, int ith, int nth)
{
	struct matmul_job *j = ctx;
	const struct wtensor *w = j->w;
	int64_t lo, hi;
	cpu_share(w->ne1, ith, nth, &lo, &hi);

	if (j->n == 1) {
		for (int64_t r = lo; r < hi; r++)
			j->y[r] = j->dot(wtensor_row(w, r), j->act, w->ne0);
		return;
	}
	const int rt = j->tile ? j->tile_rows : ROW_TILE;
	for (int64_t r0 = lo; r0 < hi; r0 += rt) {
		int64_t r1 = r0 + rt < hi ? r0 + rt : hi;
		if (j->tile) {
			j->tile(wtensor_row(w, r0), (size_t)w->row_bytes, (int)(r1 - r0), j->act,
				j->act_row, j->n, w->ne0, j->y + r0, w->ne1);
			continue;
		}
		if (j->dot4) {
			/* Up to four activation rows per weight-row pass: each
			 * weight block is unpacked once for all of them (the
			 * results equal the single kernel's bit for bit). */
			for (int t0 = 0; t0 < j->n; t0 += 4) {
				const int na = j->n - t0 < 4 ? j->n - t0 : 4;
				const void *a[4];
				for (int k = 0; k < 4; k++)
					a[k] = (const char *)j->act +
					       (size_t)(t0 + (k < na ? k : 0)) * j->act_row;
				float *y0 = j->y + (int64_t)t0 * w->ne1;
				for (int64_t r = r0; r < r1; r++) {
					float o[4];
					j->dot4(wtensor_row(w, r), a, na, w->ne0, o);
					for (int k = 0; k < na; k++)
						y0[(int64_t)k * w->ne1 + r] = o[k];
				}
			}
			continue;
		}
		for (int t = 0; t < j->n; t++) {
			const void *a = (const char *)j->act + t * j->act_row;
			float *yt = j->y + (int64_t)t * w->ne1;
			for (int64_t r = r0; r < r1; r++)
				yt[r] = j->dot(wtensor_row(w, r), a, w->ne0);
		}
	}
}

int cpu_matmul(struct backend *b, const struct wtensor *w, const float *x, int n, float *y)
{
	struct cpu_backend *cb = cpu_of(b);
	qdot_fn dot = qdot_get(w->type);
	if (!dot || n <= 0 || n > b->limits.max_rows || w->ne0 > b->limits.max_cols)
		return -EINVAL;

	struct matmul_job j = { .w = w, .x = x, .y = y, .n = n, .dot = dot,
				.dot4 = n > 1 ? qdot_get4(w->type) : NULL };
	int tile_rows = 0;
	if (n > 1 && (j.tile = qdot_get_tile(w->type, w->ne0, &tile_rows)))
		j.tile_rows = tile_rows;
	if (qdot_act_type(w->type) == QTYPE_F32) {
		j.act = x;
		j.act_row = (size_t)w->ne0 * sizeof(float);
	} else {
		j.act = cb->act;
		j.act_row = qdot_act_row_bytes(w->type, w->ne0);
		if (j.act_row * (size_t)n > cb->act_bytes)
			return -EINVAL;
		if (n == 1)
			qdot_prepare(w->type, x, cb->act, w->ne0);
		else
			tpool_run(cb->pool, prepare_share, &j);
	}
	tpool_run(cb->pool, dot_share, &j);
	return 0;
}
