// qdot-vs-ggml: smoke's dot-product kernels (qdot_get) against the reference
// llama.cpp build's own ggml_vec_dot_<type>_q8_<act> (exported by its
// libggml-cpu.so), bit for bit, on random rows.  A check tool, not a test:
// CI has no llama.cpp build.  Built and run by scripts/check-qdot-vs-ggml.
//
//   qdot-vs-ggml [DOTS_PER_TYPE]      prints one line per type; exit 1 if any
//                                     result differs in any bit
//
// Each dot: a weight row of 1..12 super-blocks (or 1..40 32-value blocks)
// of random bytes with finite fp16 scales (MXFP4: exponents near 2^0), an
// activation row of normal values at a random scale (sometimes with a block
// of zeros) prepared by qdot_prepare, whose bytes are ggml's block_q8_0 /
// block_q8_1 / block_q8_K layouts.  With SMOKE_CPU=scalar the scalar
// kernels are compared instead (they differ by summation order: a check
// that the tool can tell).
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/cpu/qdot.h"
#include "quant/qtype.h"
#include "util/fp16.h"

typedef void (*ggml_dot_fn)(int n, float *s, size_t bs, const void *vx, size_t bx, const void *vy,
			    size_t by, int nrc);
void ggml_cpu_init(void);
#define GGML_DOTS(X)                                                          \
	X(q4_0_q8_0) X(q4_1_q8_1) X(q5_0_q8_0) X(q5_1_q8_1) X(q8_0_q8_0)      \
	X(mxfp4_q8_0) X(q2_K_q8_K) X(q3_K_q8_K) X(q4_K_q8_K) X(q5_K_q8_K)     \
	X(q6_K_q8_K)
#define DECL(name) void ggml_vec_dot_##name(int, float *, size_t, const void *, size_t, const void *, size_t, int);
GGML_DOTS(DECL)

static const struct {
	uint32_t id;
	ggml_dot_fn ggml;
	int scale_off[2]; /* fp16 fields of a block, -1: none */
} types[] = {
	{ QTYPE_Q4_0, ggml_vec_dot_q4_0_q8_0, { 0, -1 } },
	{ QTYPE_Q4_1, ggml_vec_dot_q4_1_q8_1, { 0, 2 } },
	{ QTYPE_Q5_0, ggml_vec_dot_q5_0_q8_0, { 0, -1 } },
	{ QTYPE_Q5_1, ggml_vec_dot_q5_1_q8_1, { 0, 2 } },
	{ QTYPE_Q8_0, ggml_vec_dot_q8_0_q8_0, { 0, -1 } },
	{ QTYPE_MXFP4, ggml_vec_dot_mxfp4_q8_0, { -1, -1 } },
	{ QTYPE_Q2_K, ggml_vec_dot_q2_K_q8_K, { 80, 82 } },
	{ QTYPE_Q3_K, ggml_vec_dot_q3_K_q8_K, { 108, -1 } },
	{ QTYPE_Q4_K, ggml_vec_dot_q4_K_q8_K, { 0, 2 } },
	{ QTYPE_Q5_K, ggml_vec_dot_q5_K_q8_K, { 0, 2 } },
	{ QTYPE_Q6_K, ggml_vec_dot_q6_K_q8_K, { 208, -1 } },
};

static uint64_t rng = 0x2545f4914f6cdd1dULL;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}
static double unit(void)
{
	return (double)(rnd() >> 11) / 9007199254740992.0;
}
static float normal(void)
{
	return (float)(sqrt(-2.0 * log(unit() + 1e-300)) * cos(6.283185307179586 * unit()));
}

int main(int argc, char **argv)
{
	const long dots = argc > 1 ? atol(argv[1]) : 20000;
	ggml_cpu_init();
	int failed = 0;
	for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
		const uint32_t id = types[k].id;
		const struct qtype_info *t = qtype_info(id);
		const qdot_fn dot = qdot_get(id);
		const int kblocks = t->block_elems == QTYPE_QK_K;
		long differ = 0;
		for (long rep = 0; rep < dots; rep++) {
			const int nb = 1 + (int)(rnd() % (kblocks ? 12 : 40));
			const int64_t n = (int64_t)nb * t->block_elems;
			uint8_t *w = malloc((size_t)nb * t->block_bytes);
			float *x = malloc((size_t)n * sizeof(float));
			void *a = malloc(qdot_act_row_bytes(id, n));
			if (!w || !x || !a)
				return 2;
			for (size_t i = 0; i < (size_t)nb * t->block_bytes; i++)
				w[i] = (uint8_t)rnd();
			for (int b = 0; b < nb; b++) {
				uint8_t *blk = w + (size_t)b * t->block_bytes;
				const float sc = (float)exp(unit() * 10.0 - 8.0);
				for (int f = 0; f < 2; f++) {
					if (types[k].scale_off[f] < 0)
						continue;
					const uint16_t h = fp32_to_fp16(sc * (float)(unit() * 2.0 - 1.0));
					memcpy(blk + types[k].scale_off[f], &h, 2);
				}
				if (id == QTYPE_MXFP4)
					blk[0] = (uint8_t)(118 + rnd() % 20);
			}
			const float xs = (float)exp(unit() * 8.0 - 4.0);
			for (int64_t i = 0; i < n; i++)
				x[i] = normal() * xs;
			if (rep % 7 == 0)
				memset(x, 0, (size_t)t->block_elems * sizeof(float));
			qdot_prepare(id, x, a, n);
			const float ours = dot(w, a, n);
			float ref;
			types[k].ggml((int)n, &ref, 0, w, 0, a, 0, 1);
			if (memcmp(&ours, &ref, sizeof(float)) != 0 && differ++ < 3)
				printf("  %s n=%lld: smoke %.9g, ggml %.9g\n", t->name, (long long)n, ours, ref);
			free(w), free(x), free(a);
		}
		printf("%-6s %s kernel: %ld of %ld dots differ from ggml's in some bit\n", t->name,
		       qdot_simd_active() ? "AVX2" : "scalar", differ, dots);
		failed |= differ != 0;
	}
	return failed;
}
