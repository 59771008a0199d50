/* avx512_tiles.c - the AVX-512 tile kernels (qdot_avx512.c, and the
 * K-quants' block-order tiles, qdot_avx512_kblock.c) against the single-row
 * kernels of their order (AVX2, or the block order's), bit for bit.
 *
 * A plain program, not a Check suite: it runs as the only process of a
 * Linux booted under an emulated AVX-512 CPU (scripts/run-emulated-avx512,
 * docs/avx512-emulation.md), where every instruction costs ~100 of the
 * host's, so the sizes are small and chosen to reach every path: lone and
 * paired weight rows, 1..10 activation rows (whole and partial groups of
 * four and of eight), rows of one block and rows whose length is not a multiple of
 * eight blocks, row strides larger than a row, unaligned rows.  On a real
 * AVX-512 CPU it runs directly (and test_qtype's tile_matches_single
 * covers the same kernels at full size).
 *
 * `avx512_tiles --any-isa` checks whichever tiles the CPU gets (AVX2 ones
 * here), which tests the program itself anywhere.
 *
 * Exit 0: every output equal; 1: a difference (printed); 77: the kernels
 * in use are not the AVX-512 ones (the CPU lacks AVX-512 F/BW/VL/DQ or
 * VNNI), which the test runner reports as skipped.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/cpu/qdot.h"
#include "quant/qtype.h"
#include "util/fp16.h"

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

/* A float in [-1, 1). */
static float rnd_f(void)
{
	return (float)(rnd() % 65536) / 32768.0f - 1.0f;
}

/* A positive fp16 scale between about 1e-4 and 0.06. */
static uint16_t rnd_scale(void)
{
	return fp32_to_fp16((float)(1 + rnd() % 600) * 1e-4f);
}

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

/* The types with AVX-512 tiles; where each block's fp16 scales sit (the
 * float types have none: a block is one value). */
static const struct {
	uint32_t id;
	const char *name;
	int nscale;
	size_t scale_off[2];
} types[] = {
	{ QTYPE_Q4_0, "Q4_0", 1, { offsetof(struct qtype_block_q4_0, d) } },
	{ QTYPE_Q5_0, "Q5_0", 1, { offsetof(struct qtype_block_q5_0, d) } },
	{ QTYPE_Q8_0, "Q8_0", 1, { offsetof(struct qtype_block_q8_0, d) } },
	{ QTYPE_Q4_K, "Q4_K", 2, { offsetof(struct qtype_block_q4_K, d), offsetof(struct qtype_block_q4_K, dmin) } },
	{ QTYPE_Q5_K, "Q5_K", 2, { offsetof(struct qtype_block_q5_K, d), offsetof(struct qtype_block_q5_K, dmin) } },
	{ QTYPE_Q6_K, "Q6_K", 1, { offsetof(struct qtype_block_q6_K, d) } },
	{ QTYPE_F16, "F16", 0, { 0 } },
	{ QTYPE_BF16, "BF16", 0, { 0 } },
};

/* Random quants, sane scales. */
static void random_row(int ti, uint8_t *dst, int64_t n)
{
	const struct qtype_info *t = qtype_info(types[ti].id);
	const int64_t nb = n / t->block_elems;
	if (types[ti].id == QTYPE_F16 || types[ti].id == QTYPE_BF16) {
		for (int64_t i = 0; i < n; i++)
			put16(dst + 2 * i, types[ti].id == QTYPE_F16 ? fp32_to_fp16(rnd_f()) : fp32_to_bf16(rnd_f()));
		return;
	}
	for (int64_t i = 0; i < nb * (int64_t)t->block_bytes; i++)
		dst[i] = (uint8_t)rnd();
	for (int64_t b = 0; b < nb; b++)
		for (int k = 0; k < types[ti].nscale; k++)
			put16(dst + b * t->block_bytes + types[ti].scale_off[k], rnd_scale());
}

enum { NA = 10, OS = QDOT_TILE_ROWS + 1 };

/* One type at one row length: every row count up to the tile's, every
 * activation count up to NA.  Returns the number of differing outputs. */
static int check(int ti, int64_t blocks)
{
	const uint32_t id = types[ti].id;
	const struct qtype_info *t = qtype_info(id);
	const int64_t n = blocks * t->block_elems;
	int rows = 0;
	const qdot_tile_fn tile = qdot_get_tile(id, n, &rows);
	const qdot_fn dot = qdot_get(id);
	if (!tile || !dot) {
		printf("%s n=%lld: no tile kernel\n", types[ti].name, (long long)n);
		return 1;
	}
	uint64_t rb;
	if (qtype_row_bytes(id, (uint64_t)n, &rb, NULL))
		return 1;
	const size_t ws = rb + 3, ab = qdot_tile_act_row_bytes(id, n) + 5;
	uint8_t *wbuf = malloc(rows * ws + 8), *abuf = malloc(NA * ab + 8);
	float *x = malloc((size_t)n * sizeof(float)), out[NA * OS];
	if (!wbuf || !abuf || !x)
		return 1;
	uint8_t *w = wbuf + rnd() % 8, *act = abuf + rnd() % 8;
	for (int r = 0; r < rows; r++)
		random_row(ti, w + r * ws, n);
	for (int a = 0; a < NA; a++) {
		const float scale = (float)(1 + rnd() % 1000) * 0.01f;
		for (int64_t i = 0; i < n; i++)
			x[i] = rnd_f() * scale;
		if (a == 2) /* an all-zero activation block */
			memset(x, 0, (size_t)t->block_elems * sizeof(float));
		qdot_prepare_tile(id, x, act, ab, a, n);
	}
	int bad = 0;
	for (int nw = 1; nw <= rows; nw++) {
		for (int na = 1; na <= NA; na++) {
			for (int k = 0; k < NA * OS; k++)
				out[k] = -1.5f;
			tile(w, ws, nw, act, ab, na, n, out, OS);
			for (int a = 0; a < NA; a++) {
				for (int r = 0; r < OS; r++) {
					const float want = a < na && r < nw ? dot(w + r * ws, act + a * ab, n) : -1.5f;
					if (memcmp(&out[a * OS + r], &want, sizeof(float)) && bad++ < 5)
						printf("%s n=%lld rows %d acts %d: row %d act %d: tile %.9g, single %.9g\n",
						       types[ti].name, (long long)n, nw, na, r, a, out[a * OS + r], want);
				}
			}
		}
	}
	/* the four-row decode kernel where the type has one (activation row 0:
	 * the low half of its pair's side, as a batch of one row has it) */
	const qdot_rows4_fn rows4 = qdot_get_rows4(id);
	if (rows4 && rows >= 4) {
		float o4[4];
		rows4(w, ws, act, n, o4);
		for (int r = 0; r < 4; r++) {
			const float want = dot(w + r * ws, act, n);
			if (memcmp(&o4[r], &want, sizeof(float)) && bad++ < 5)
				printf("%s n=%lld four-row kernel: row %d: %.9g, single %.9g\n", types[ti].name,
				       (long long)n, r, o4[r], want);
		}
	}
	free(wbuf), free(abuf), free(x);
	return bad;
}

int main(int argc, char **argv)
{
	/* --any-isa: check whatever tiles this CPU gets (the program's own
	 * test, runnable anywhere) */
	const bool any_isa = argc > 1 && !strcmp(argv[1], "--any-isa");
	char why[200];
	if (qdot_cpu_check(why, sizeof(why))) {
		printf("%s\n", why);
		return 1;
	}
	if (!any_isa && strcmp(qdot_isa(), "avx512")) {
		printf("avx512_tiles: the kernels in use are '%s', not avx512: this CPU lacks AVX-512 "
		       "F/BW/VL/DQ or VNNI (or SMOKE_CPU caps them); skipped\n", qdot_isa());
		return 77;
	}
	/* 32-value rows: one block, a chunk of eight and a tail; K-quants:
	 * one super-block, and three; float rows: shorter than a chunk, and
	 * chunks with a tail */
	static const int64_t q32_blocks[] = { 1, 11 }, k_blocks[] = { 1, 3 }, f_values[] = { 5, 203 };
	int bad = 0, checked = 0;
	for (int ti = 0; ti < (int)(sizeof(types) / sizeof(types[0])); ti++) {
		const int be = (int)qtype_info(types[ti].id)->block_elems;
		const int64_t *blocks = be == QTYPE_QK_K ? k_blocks : be == 1 ? f_values : q32_blocks;
		for (int c = 0; c < 2; c++) {
			const int b = check(ti, blocks[c]);
			printf("%s, %lld blocks a row: %s\n", types[ti].name, (long long)blocks[c],
			       b ? "DIFFERS" : "equal");
			bad += b;
			checked++;
		}
	}
	printf("avx512_tiles: %d cases, %d outputs differ\n", checked, bad);
	return bad ? 1 : 0;
}
