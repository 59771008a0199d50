/* bench_qdot_tile - one thread's speed in the CPU backend's matrix tiles
 * against the core's FMA peak, measured in the same run.
 *
 * A prefill's matrix products are the tiles (compute/cpu/qdot.h): a tile of
 * weight rows times every activation row of the batch.  This times them on
 * the shapes of a model's projections, the whole matrix walked tile by tile
 * as cpu_matmul walks one thread's share, and prints GFLOPS (2 per
 * multiply-add) and the ratio to the FMA peak: 12 independent 8-lane FMA
 * chains in registers, nothing loaded - the bound no matrix product on this
 * core passes for float weights (F16, BF16, F32; on Zen 4 a 512-bit FMA
 * takes both 256-bit pipes, so the 8-lane peak is the AVX-512 one too).
 * For Q8_0, whose products are integer, the ratio is only relative.
 * Shared hosts swing these figures by a third from one minute to the
 * next: compare two builds alternately, run after run (docs/cpu.md).
 *
 *   bench_qdot_tile [--type f16|bf16|f32|q8_0] [--shape NxR]... [--tokens T] [--reps K]
 *
 * Default: F16, the shapes of Gemma 3 270M's gate/up (640 x 2048) and down
 * (2048 x 640) projections, 512 tokens (pp512's batch), 5 reps.  Lines:
 *   "tile f16 640x2048 t512 GFLOPS <mean> <sd> peak <p> ratio <r>". */
#include <getopt.h>
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compute/cpu/qdot.h"
#include "quant/convert.h"
#include "quant/qtype.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the FMA peak ---- */

#define PEAK_CHAINS 12

__attribute__((target("avx2,fma"), noinline)) static float fma_chains(long iters)
{
	__m256 acc[PEAK_CHAINS];
	const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
	for (int c = 0; c < PEAK_CHAINS; c++)
		acc[c] = _mm256_set1_ps((float)c);
	for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
		for (int c = 0; c < PEAK_CHAINS; c++)
			acc[c] = _mm256_fmadd_ps(acc[c], m, a); /* float FMAs: not folded without fast-math */
	}
	float out[8], s = 0;
	for (int c = 0; c < PEAK_CHAINS; c++) {
		_mm256_storeu_ps(out, acc[c]);
		s += out[0];
	}
	return s;
}

/* GFLOPS of the chains: the best of a few short runs (the peak is a bound,
 * so the least disturbed run is the one to keep). */
static double fma_peak(void)
{
	const long iters = 20000000;
	double best = 0;
	volatile float sink = 0;
	for (int k = 0; k < 5; k++) {
		const double t0 = now();
		sink += fma_chains(iters);
		const double g = 2.0 * 8 * PEAK_CHAINS * (double)iters / (now() - t0) / 1e9;
		best = g > best ? g : best;
	}
	(void)sink;
	return best;
}

/* ---- the tiles ---- */

struct shape {
	int64_t n, rows;
};

static uint32_t type_of(const char *s)
{
	if (!strcmp(s, "f16"))
		return QTYPE_F16;
	if (!strcmp(s, "bf16"))
		return QTYPE_BF16;
	if (!strcmp(s, "f32"))
		return QTYPE_F32;
	if (!strcmp(s, "q8_0"))
		return QTYPE_Q8_0;
	return UINT32_MAX;
}

static float frand(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* Seconds for the whole matrix times tokens activation rows, tile by tile. */
static int run_shape(uint32_t type, struct shape sh, int tokens, int reps, double peak)
{
	int tile_rows = 0;
	const qdot_tile_fn tile = qdot_get_tile(type, sh.n, &tile_rows);
	uint64_t row_bytes = 0;
	if (!tile || qtype_row_bytes(type, (uint64_t)sh.n, &row_bytes, NULL)) {
		fprintf(stderr, "bench_qdot_tile: no tile for %s rows of %lld\n", qtype_name(type), (long long)sh.n);
		return 1;
	}
	const size_t act_row = qdot_tile_act_row_bytes(type, sh.n);
	float *wf = malloc((size_t)(sh.n * sh.rows) * sizeof(float));
	float *x = malloc((size_t)sh.n * sizeof(float));
	void *w = aligned_alloc(64, (row_bytes * (size_t)sh.rows + 63) / 64 * 64);
	void *act = aligned_alloc(64, (act_row * (size_t)tokens + 63) / 64 * 64);
	float *out = malloc((size_t)(tokens * sh.rows) * sizeof(float));
	if (!wf || !x || !w || !act || !out) {
		fprintf(stderr, "bench_qdot_tile: out of memory\n");
		return 1;
	}
	unsigned seed = 42;
	for (int64_t i = 0; i < sh.n * sh.rows; i++)
		wf[i] = frand(&seed) * 0.05f;
	if (convert_rows(QTYPE_F32, wf, type, w, sh.n * sh.rows)) {
		fprintf(stderr, "bench_qdot_tile: cannot make %s weights\n", qtype_name(type));
		return 1;
	}
	for (int t = 0; t < tokens; t++) {
		for (int64_t i = 0; i < sh.n; i++)
			x[i] = frand(&seed);
		qdot_prepare_tile(type, x, act, act_row, t, sh.n);
	}
	double g[64], s = 0, ss = 0;
	reps = reps > 64 ? 64 : reps;
	for (int k = 0; k < reps; k++) {
		const double t0 = now();
		for (int64_t r0 = 0; r0 < sh.rows; r0 += tile_rows) {
			const int nr = sh.rows - r0 < tile_rows ? (int)(sh.rows - r0) : tile_rows;
			tile((const char *)w + (size_t)r0 * row_bytes, (size_t)row_bytes, nr, act, act_row, tokens,
			     sh.n, out + r0, sh.rows);
		}
		g[k] = 2.0 * (double)sh.n * (double)sh.rows * tokens / (now() - t0) / 1e9;
		s += g[k];
	}
	const double mean = s / reps;
	for (int k = 0; k < reps; k++)
		ss += (g[k] - mean) * (g[k] - mean);
	printf("tile %s %lldx%lld t%d (%d rows per tile) GFLOPS %.1f %.1f peak %.1f ratio %.3f\n",
	       qtype_name(type), (long long)sh.n, (long long)sh.rows, tokens, tile_rows, mean,
	       reps > 1 ? sqrt(ss / (reps - 1)) : 0.0, peak, mean / peak);
	free(wf), free(x), free(w), free(act), free(out);
	return 0;
}

int main(int argc, char **argv)
{
	uint32_t type = QTYPE_F16;
	struct shape shapes[16];
	int n_shapes = 0, tokens = 512, reps = 5;
	static const struct option opts[] = {
		{ "type", required_argument, NULL, 'y' }, { "shape", required_argument, NULL, 's' },
		{ "tokens", required_argument, NULL, 't' }, { "reps", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		long long a, b;
		switch (c) {
		case 'y':
			if ((type = type_of(optarg)) == UINT32_MAX) {
				fprintf(stderr, "bench_qdot_tile: --type: f16, bf16, f32 or q8_0, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 's':
			if (n_shapes == 16 || sscanf(optarg, "%lldx%lld", &a, &b) != 2 || a < 32 || b < 1 ||
			    a > 1 << 20 || b > 1 << 20) {
				fprintf(stderr, "bench_qdot_tile: --shape: NxR (row length x rows), not '%s'\n", optarg);
				return 2;
			}
			shapes[n_shapes++] = (struct shape){ a, b };
			break;
		case 't':
			tokens = atoi(optarg);
			break;
		case 'r':
			reps = atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	if (tokens < 1 || tokens > 4096 || reps < 1) {
		fprintf(stderr, "bench_qdot_tile: --tokens 1..4096, --reps at least 1\n");
		return 2;
	}
	if (!n_shapes) {
		shapes[n_shapes++] = (struct shape){ 640, 2048 };
		shapes[n_shapes++] = (struct shape){ 2048, 640 };
	}
	if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
		fprintf(stderr, "bench_qdot_tile: needs AVX2 and FMA\n");
		return 77;
	}
	const double peak = fma_peak();
	int rc = 0;
	for (int i = 0; i < n_shapes; i++)
		rc |= run_shape(type, shapes[i], tokens, reps, peak);
	return rc;
}
