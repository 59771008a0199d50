/* avx512_count.c - how many instructions the AVX-512 tiles take against
 * the AVX2 ones, counted on the emulated CPU (bench/avx512-emulated).
 *
 * This machine has no AVX-512, so the tiles' speed cannot be timed here;
 * what can be measured is their work.  Bochs advances its time stamp
 * counter by one tick per instruction executed (its "ticks"), so an RDTSC
 * interval on the emulated CPU is an instruction count (plus the few of
 * any interrupt taken meanwhile: the least of three runs is kept).  For each type the
 * program times the same tile calls once with the AVX2 kernels and once
 * with the AVX-512 ones (each in a child process, since the kernel choice
 * is read once per process: SMOKE_CPU) and prints both counts and their
 * ratio.  Instructions are not cycles - a 512-bit instruction may take
 * longer, or share a port - so the ratio bounds the speed-up from above;
 * on a real AVX-512 CPU bench/cpu-vs-llamacpp measures it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <x86intrin.h>

#include "compute/cpu/qdot.h"
#include "quant/qtype.h"
#include "util/fp16.h"

/* The emulated CPU's tick counter: instructions executed. */
static double ticks(void)
{
	return (double)__rdtsc();
}

static const struct {
	uint32_t id;
	const char *name;
	int64_t n; /* row length: the default model's */
} types[] = {
	{ QTYPE_Q5_0, "Q5_0", 640 }, { QTYPE_Q8_0, "Q8_0", 640 }, { QTYPE_Q4_K, "Q4_K", 1024 },
	{ QTYPE_Q6_K, "Q6_K", 2048 }, { QTYPE_F16, "F16", 640 },
};

enum { N_ACT = 32 }; /* a short prompt's tokens */

/* Millions of instructions for the tiles over 32 rows x N_ACT tokens of
 * type ti, with the kernels this process has. */
static double count(int ti)
{
	const uint32_t id = types[ti].id;
	const int64_t n = types[ti].n;
	int rows = 0;
	const qdot_tile_fn tile = qdot_get_tile(id, n, &rows);
	uint64_t rb;
	if (!tile || qtype_row_bytes(id, (uint64_t)n, &rb, NULL))
		return -1;
	const int nw = 32;
	uint8_t *w = malloc(nw * rb);
	const size_t ab = qdot_tile_act_row_bytes(id, n);
	uint8_t *act = malloc(N_ACT * ab);
	float *x = malloc((size_t)n * sizeof(float)), *out = malloc((size_t)N_ACT * nw * sizeof(float));
	if (!w || !act || !x || !out)
		return -1;
	/* contents do not change the instruction count; fp16 ones are finite */
	for (size_t i = 0; i < nw * rb; i += 2) {
		const uint16_t h = fp32_to_fp16((float)(i % 97) * 1e-3f);
		memcpy(w + i, &h, 2);
	}
	for (int t = 0; t < N_ACT; t++) {
		for (int64_t i = 0; i < n; i++)
			x[i] = (float)((i * 7 + t) % 31) - 15.0f;
		qdot_prepare_tile(id, x, act, ab, t, n);
	}
	double best = 1e30;
	for (int rep = 0; rep < 3; rep++) { /* the least: timer interrupts add */
		const double t0 = ticks();
		for (int r0 = 0; r0 < nw; r0 += rows)
			tile(w + (size_t)r0 * rb, rb, nw - r0 < rows ? nw - r0 : rows, act, ab, N_ACT, n,
			     out + r0, nw);
		const double t = ticks() - t0;
		best = t < best ? t : best;
	}
	free(w), free(act), free(x), free(out);
	return best / 1e6;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--child")) {
		for (int ti = 0; ti < (int)(sizeof(types) / sizeof(types[0])); ti++)
			printf("%s %.3f\n", types[ti].name, count(ti));
		return 0;
	}
	static const char *isa[2] = { "avx2", "avx512" };
	double m[2][8];
	for (int k = 0; k < 2; k++) {
		int fd[2];
		if (pipe(fd))
			return 1;
		const pid_t pid = fork();
		if (pid == 0) {
			dup2(fd[1], 1);
			setenv("SMOKE_CPU", isa[k], 1);
			execl("/proc/self/exe", argv[0], "--child", (char *)NULL);
			_exit(127);
		}
		close(fd[1]);
		FILE *f = fdopen(fd[0], "r");
		char name[16];
		for (int ti = 0; ti < (int)(sizeof(types) / sizeof(types[0])); ti++)
			if (!f || fscanf(f, "%15s %lf", name, &m[k][ti]) != 2)
				m[k][ti] = -1;
		if (f)
			fclose(f);
		int st;
		waitpid(pid, &st, 0);
	}
	printf("tiles of 32 rows x %d tokens, millions of emulated instructions\n", N_ACT);
	printf("%-5s %6s %10s %10s %8s\n", "type", "n", "avx2", "avx512", "ratio");
	for (int ti = 0; ti < (int)(sizeof(types) / sizeof(types[0])); ti++)
		printf("%-5s %6lld %10.2f %10.2f %8.2f\n", types[ti].name, (long long)types[ti].n, m[0][ti],
		       m[1][ti], m[1][ti] > 0 ? m[0][ti] / m[1][ti] : 0.0);
	return 0;
}
