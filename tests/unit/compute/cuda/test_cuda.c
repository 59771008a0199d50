/* CUDA backend tests: every op, and for the weight readers every tensor
 * type, on random inputs, held to the CPU backend (the reference) and where
 * it helps to a double-precision product computed here.
 *
 * Which kernels run:
 *   - a usable GPU: the CUDA kernels on the device (and, with
 *     SMOKE_CUDA_EMU=1, the emulated ones first);
 *   - no GPU, in a CUDA build: the same kernel code compiled for the CPU
 *     emulator (compute/cuda/cuda_emu.cuh), on smaller shapes.  A failure
 *     there is a kernel bug and fails the test; if all pass, the test still
 *     reports SKIP (exit 77) with the probe's reason, because no GPU ran.
 *     It runs the GPU's shapes (about 35 s); SMOKE_CUDA_EMU=small the
 *     smaller ones (a few seconds), SMOKE_CUDA_EMU=0 skips the emulated
 *     run;
 *   - a build without CUDA: SKIP with the probe's reason.
 * Every comparison prints one line "CUDA-CHECK <op> <case> max|err| ...
 * err/tol ... PASS|FAIL" (scripts/gpu-check summarises them) before it
 * asserts.
 *
 * Tolerances, and why (u = 2^-24, the float unit roundoff):
 *   matmul   Both backends quantise each activation block to int8 first
 *            (compute/cpu/qdot.h), take exact integer block dots and
 *            scale them with the same float operations; the block results
 *            are summed in double.  So:
 *            GPU vs CPU scalar kernels (qdot_force_scalar): the same
 *            doubles summed in another order, then rounded to float: 2u
 *            of |y| (one float rounding), plus cols*u^2*sum|terms| for
 *            the double sums.  This is the check that the kernels compute
 *            the CPU's numbers, not just close ones.
 *            CPU scalar (and GPU) vs the double product over the
 *            gguf-verified decoder's weights: each activation is off by
 *            at most amax_b*(1/254 + 2^-10) (half a quantisation step,
 *            plus the fp16 rounding of the block scale), times sum|w| over
 *            the block; Q4_1/Q5_1 also use the activation block's fp16 sum
 *            for their min term, which adds 64*|m|*amax_b*(1/254 + 2^-10);
 *            plus ne0 * u * sum|w*x|, the bound for a float sum of ne0
 *            products in any order.  Float weight types take float
 *            activations on both (no quantisation term).
 *            GPU vs the default (SIMD) CPU kernels, which sum in float
 *            lanes: twice the float bound.
 *   embed    bit-exact: the kernels decode with the CPU decoder's float
 *            operations, rounding for rounding.
 *   rmsnorm  4 ulp of |y|: the same operations; only the order of the
 *            double sum of squares differs, which can move the float scale
 *            by one ulp at a rounding boundary.
 *   rope     12u * (|x_a| + |x_b|) per rotated value: the angles are the
 *            same floats; cos/sin differ by at most 2 ulp (CUDA) + 1 ulp
 *            (glibc) = 3u absolute; the product x_b*sin and the result
 *            may each round one ulp (2u relative) apart: at most
 *            7u * (|x_a| + |x_b|) in all, 12u leaves a margin.
 *   attention 2^-9 * max|v| + 4*span*u*max|v|: a softmax weight (sum 1)
 *            near an fp16 rounding tie may round one fp16 step (2^-10
 *            relative) apart, doubled for the score differences (dot
 *            order, expf) that move a weight across a tie; plus the float
 *            accumulation over the span.  That bound would also pass
 *            kernels that skip the fp16 rounding, so a second check uses
 *            one-hot V rows: each output is then one softmax weight,
 *            which must be an fp16 value within one fp16 step of the
 *            CPU's (2^-10 relative, or 2^-24 among fp16 subnormals).
 *   gelu_mul bit-exact: the same fp16 table and one multiply.
 *   silu_mul 2^-19 relative (16 ulp): expf (CUDA 2 ulp, ggml's AVX2 exp
 *            ~1.5 ulp) and three roundings.
 *   add, add_bias, round_fp16, store_fp16: bit-exact.
 */
#include <check.h>

#include "ck_main.h"
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compute/backend.h"
#include "compute/cpu/qdot.h"
#include "compute/cuda/cuda_backend.h"
#include "compute/cuda/cuda_probe.h"
#include "quant/qtype.h"
#include "smk_config.h"
#include "util/fp16.h"

#define U (1.0 / 16777216.0)

typedef int (*backend_new_fn)(struct backend **, const struct backend_limits *,
			      const struct cuda_backend_opts *, struct smk_err *);

/* The implementation under test (set in main, inherited by the forked
 * test processes). */
static struct {
	const char *name;    /* "gpu" or "emu" */
	backend_new_fn make;
	bool big;            /* GPU: full-size shapes; emulator: small ones */
} impl;

/* ---- helpers ------------------------------------------------------------- */

static uint32_t rng_state;

static uint32_t rnd(void)
{
	rng_state = rng_state * 1664525u + 1013904223u;
	return rng_state >> 8;
}

/* uniform in [-1, 1] */
static float frand(void)
{
	return (float)(rnd() & 0xffff) / 32767.5f - 1.0f;
}

static struct backend *make_cpu(int64_t cols, int rows, int ctx)
{
	struct backend_limits lim = { .max_cols = cols, .max_rows = rows, .max_ctx = ctx,
				      .max_heads = 64, .n_threads = 0 };
	struct backend *b;
	struct smk_err err = { 0 };
	ck_assert_msg(backend_cpu_new(&b, &lim, &err) == 0, "%s", err.msg);
	return b;
}

static struct backend *make_gpu(int64_t cols, int rows, int ctx)
{
	struct backend_limits lim = { .max_cols = cols, .max_rows = rows, .max_ctx = ctx,
				      .max_heads = 64, .n_threads = 1 };
	struct backend *b;
	struct smk_err err = { 0 };
	ck_assert_msg(impl.make(&b, &lim, NULL, &err) == 0, "%s backend: %s", impl.name, err.msg);
	return b;
}

/* Device copy of bytes of host memory. */
static void *to_dev(struct backend *g, const void *host, size_t bytes)
{
	void *d;
	struct smk_err err = { 0 };
	ck_assert_msg(cuda_be_alloc(g, &d, bytes, &err) == 0, "%s", err.msg);
	ck_assert_msg(cuda_be_upload(g, d, host, bytes, &err) == 0, "%s", err.msg);
	return d;
}

static void from_dev(struct backend *g, void *host, const void *dev, size_t bytes)
{
	struct smk_err err = { 0 };
	ck_assert_msg(cuda_be_sync(g, &err) == 0, "an op failed: %s", err.msg);
	ck_assert_msg(cuda_be_download(g, host, dev, bytes, &err) == 0, "%s", err.msg);
}

/* Worst error of one comparison, and its ratio to the tolerance. */
struct stat {
	double max_err, max_ratio;
	long n;
	long worst;          /* index of the worst ratio */
};

static void stat_add(struct stat *s, double got, double want, double tol, long i)
{
	double e = fabs(got - want);
	if (isnan(got) || isnan(want))
		e = isnan(got) && isnan(want) ? 0 : INFINITY;
	const double r = tol > 0 ? e / tol : (e > 0 ? INFINITY : 0);
	if (e > s->max_err)
		s->max_err = e;
	if (r > s->max_ratio) {
		s->max_ratio = r;
		s->worst = i;
	}
	s->n++;
}

/* Print the summary line, then fail if any value was out of tolerance. */
static void stat_check(const struct stat *s, const char *op, const char *what)
{
	bool ok = s->max_ratio <= 1.0;
	printf("CUDA-CHECK %-3s %-10s %-34s max|err| %-10.3g err/tol %-8.3g %s\n", impl.name, op,
	       what, s->max_err, s->max_ratio, ok ? "PASS" : "FAIL");
	fflush(stdout);
	ck_assert_msg(ok, "%s %s %s: value %ld off by %g, %.3g times the tolerance", impl.name, op,
		      what, s->worst, s->max_err, s->max_ratio);
}

/* ---- weights ------------------------------------------------------------- */

static const uint32_t all_types[] = {
	QTYPE_F32, QTYPE_F16, QTYPE_BF16, QTYPE_Q4_0, QTYPE_Q4_1, QTYPE_Q5_0, QTYPE_Q5_1,
	QTYPE_Q8_0, QTYPE_MXFP4, QTYPE_Q2_K, QTYPE_Q3_K, QTYPE_Q4_K, QTYPE_Q5_K, QTYPE_Q6_K,
};
#define N_TYPES (int)(sizeof(all_types) / sizeof(all_types[0]))

/* Random rows of a type, with their true values from the gguf-verified
 * decoder (quant/qtype.c).  Block formats get random bytes 0..0x3b, so any
 * fp16 field (high byte <= 0x3b) is a finite value below 1 whatever the
 * layout puts where; float formats get values in [-1, 1].  MXFP4 has no
 * fp16 field: its quant bytes take every value (all 16 codes in both
 * nibbles) and its exponent bytes 118..129 (scales 2^-10..2^1; bytes below
 * 0x3c would make every weight smaller than 2^-68). */
struct wmat {
	uint32_t type;
	int64_t cols, rows;
	uint64_t row_bytes;
	uint8_t *bytes;
	float *deq;
};

static void wmat_make(struct wmat *m, uint32_t type, int64_t cols, int64_t rows)
{
	m->type = type;
	m->cols = cols;
	m->rows = rows;
	ck_assert_int_eq(qtype_row_bytes(type, (uint64_t)cols, &m->row_bytes, NULL), 0);
	m->bytes = malloc(m->row_bytes * (size_t)rows);
	m->deq = malloc(sizeof(float) * (size_t)(cols * rows));
	ck_assert(m->bytes && m->deq);
	const int64_t n = cols * rows;
	if (type == QTYPE_F32) {
		for (int64_t i = 0; i < n; i++)
			((float *)m->bytes)[i] = frand();
	} else if (type == QTYPE_F16) {
		for (int64_t i = 0; i < n; i++)
			((uint16_t *)m->bytes)[i] = fp32_to_fp16(frand());
	} else if (type == QTYPE_BF16) {
		for (int64_t i = 0; i < n; i++)
			((uint16_t *)m->bytes)[i] = fp32_to_bf16(frand());
	} else if (type == QTYPE_MXFP4) {
		for (uint64_t i = 0; i < m->row_bytes * (uint64_t)rows; i++)
			m->bytes[i] = (uint8_t)(i % 17 ? rnd() : 118 + rnd() % 12);
	} else {
		for (uint64_t i = 0; i < m->row_bytes * (uint64_t)rows; i++)
			m->bytes[i] = (uint8_t)(rnd() % 0x3c);
	}
	for (int64_t r = 0; r < rows; r++)
		ck_assert_int_eq(qtype_dequant_row(type, m->bytes + r * m->row_bytes,
						   m->deq + r * cols, cols), 0);
}

static void wmat_free(struct wmat *m)
{
	free(m->bytes);
	free(m->deq);
}

static struct wtensor wmat_tensor(const struct wmat *m, const void *data)
{
	struct wtensor t = { .name = "w", .type = m->type, .ne0 = m->cols, .ne1 = m->rows,
			     .row_bytes = m->row_bytes,
			     .nbytes = m->row_bytes * (uint64_t)m->rows, .source = -1,
			     .data = data };
	return t;
}

/* ---- matmul ---------------------------------------------------------------- */

/* The CPU's error bound for one output (see the file comment). */
static double cpu_bound(const struct wmat *m, int64_t r, const float *x)
{
	const uint32_t t = m->type;
	if (t == QTYPE_F32 || t == QTYPE_F16 || t == QTYPE_BF16)
		return 0;
	const int blk = (int)qtype_info(t)->block_elems < 256 ? 32 : 256; /* activation block */
	const uint64_t bb = qtype_info(t)->block_bytes;
	const bool has_s = t == QTYPE_Q4_1 || t == QTYPE_Q5_1;
	double tol = 0;
	for (int64_t b0 = 0; b0 < m->cols; b0 += blk) {
		double amax = 0, sw = 0;
		for (int i = 0; i < blk; i++) {
			amax = fmax(amax, fabs(x[b0 + i]));
			sw += fabs(m->deq[r * m->cols + b0 + i]);
		}
		if (has_s) {
			/* the weight block's min m: fp16 at byte 2 (qtype.c) */
			const uint8_t *wb = m->bytes + r * m->row_bytes + (uint64_t)(b0 / 32) * bb;
			sw += 64 * fabs(fp16_to_fp32((uint16_t)(wb[2] | wb[3] << 8)));
		}
		tol += sw * amax * (1.0 / 254 + 1.0 / 1024);
	}
	return tol;
}

static void check_matmul(uint32_t type, int64_t cols, int64_t rows, const int *ns, int n_ns)
{
	int max_n = 0;
	for (int i = 0; i < n_ns; i++)
		max_n = ns[i] > max_n ? ns[i] : max_n;
	struct wmat m;
	wmat_make(&m, type, cols, rows);
	float *x = malloc(sizeof(float) * (size_t)(cols * max_n));
	float *yc = malloc(sizeof(float) * (size_t)(rows * max_n));
	float *yg = malloc(sizeof(float) * (size_t)(rows * max_n));
	ck_assert(x && yc && yg);
	for (int64_t i = 0; i < cols * max_n; i++)
		x[i] = frand();

	float *ys = malloc(sizeof(float) * (size_t)(rows * max_n));
	ck_assert(ys);
	struct backend *cpu = make_cpu(cols, max_n, 16), *gpu = make_gpu(cols, max_n, 16);
	void *dw = to_dev(gpu, m.bytes, m.row_bytes * (size_t)rows);
	float *dx = to_dev(gpu, x, sizeof(float) * (size_t)(cols * max_n));
	float *dy;
	struct smk_err err = { 0 };
	ck_assert_int_eq(cuda_be_alloc(gpu, (void **)&dy, sizeof(float) * (size_t)(rows * max_n), &err), 0);
	const struct wtensor th = wmat_tensor(&m, m.bytes), td = wmat_tensor(&m, dw);

	for (int k = 0; k < n_ns; k++) {
		const int n = ns[k];
		ck_assert_int_eq(cpu->ops->matmul(cpu, &th, x, n, yc), 0);
		qdot_force_scalar(true);
		ck_assert_int_eq(cpu->ops->matmul(cpu, &th, x, n, ys), 0);
		qdot_force_scalar(false);
		ck_assert_int_eq(gpu->ops->matmul(gpu, &td, dx, n, dy), 0);
		from_dev(gpu, yg, dy, sizeof(float) * (size_t)(rows * n));
		struct stat s_ref = { 0 }, s_cpu = { 0 }, s_sc = { 0 }, s_cr = { 0 };
		for (int t = 0; t < n; t++)
			for (int64_t r = 0; r < rows; r++) {
				const float *xr = x + t * cols;
				double want = 0, mag = 0;
				for (int64_t c = 0; c < cols; c++) {
					double p = (double)m.deq[r * cols + c] * xr[c];
					want += p;
					mag += fabs(p);
				}
				const double cb = cpu_bound(&m, r, xr);
				const double tol_c = cb + (double)(cols + 8) * U * (mag + cb) + 1e-30;
				/* the same block results summed in double in
				 * another order: one float rounding apart */
				const double tol_s = 2 * U * fabs(ys[t * rows + r]) +
						     (double)cols * U * U * (mag + cb) + 1e-30;
				const long at = (long)(t * rows + r);
				stat_add(&s_ref, yg[at], want, tol_c, at);
				stat_add(&s_sc, yg[at], ys[at], tol_s, at);
				stat_add(&s_cpu, yg[at], yc[at], 2 * (double)(cols + 8) * U * (mag + cb) + 1e-30, at);
				stat_add(&s_cr, ys[at], want, tol_c, at);
			}
		char what[96];
		snprintf(what, sizeof(what), "%s %lldx%lld n=%d vs double", qtype_name(type),
			 (long long)rows, (long long)cols, n);
		stat_check(&s_ref, "matmul", what);
		snprintf(what, sizeof(what), "%s %lldx%lld n=%d vs cpu-scalar", qtype_name(type),
			 (long long)rows, (long long)cols, n);
		stat_check(&s_sc, "matmul", what);
		snprintf(what, sizeof(what), "%s %lldx%lld n=%d vs cpu", qtype_name(type),
			 (long long)rows, (long long)cols, n);
		stat_check(&s_cpu, "matmul", what);
		snprintf(what, sizeof(what), "%s n=%d cpu-scalar vs double (bound)", qtype_name(type), n);
		stat_check(&s_cr, "matmul", what);
	}
	free(ys);
	cuda_be_free(gpu, dw);
	cuda_be_free(gpu, dx);
	cuda_be_free(gpu, dy);
	backend_free(gpu);
	backend_free(cpu);
	wmat_free(&m);
	free(x);
	free(yc);
	free(yg);
}

/* Batches of 1..8 are one launch row of the matrix-vector kernel, 9..31
 * several (9, 20: a partial last one), 32 and more the tiled kernel; rows
 * are odd so the last warp of the grid and the last tile are partial. */
START_TEST(matmul_every_type)
{
	const uint32_t type = all_types[_i];
	rng_state = 1000 + type;
	static const int ns_small[] = { 1, 3, 8, 9, 20, 40 };
	static const int ns_big[] = { 1, 2, 5, 8, 9, 33, 64, 130 };
	if (impl.big)
		check_matmul(type, 2048, 301, ns_big, (int)(sizeof(ns_big) / sizeof(ns_big[0])));
	else
		check_matmul(type, 512, 37, ns_small, (int)(sizeof(ns_small) / sizeof(ns_small[0])));
	/* The tiled prefill kernel on every batch size, partial tiles
	 * included (it starts at 32 rows by default). */
	if (type != QTYPE_F32 && type != QTYPE_F16 && type != QTYPE_BF16) {
		static const int ns_tile[] = { 1, 9, 65 };
		setenv("SMOKE_CUDA_TILE_MIN_N", "1", 1);
		check_matmul(type, impl.big ? 2048 : 512, impl.big ? 301 : 37, ns_tile, 3);
		unsetenv("SMOKE_CUDA_TILE_MIN_N");
	}
	/* float rows need not be whole 8-value chunks */
	if (type == QTYPE_F32 || type == QTYPE_F16 || type == QTYPE_BF16) {
		static const int ns_odd[] = { 1, 7, 70 };
		check_matmul(type, 100, 13, ns_odd, 3);
	}
}
END_TEST

/* ---- embed -------------------------------------------------------------------- */

static void check_embed(uint32_t type, int64_t cols, int64_t rows, int n, float scale)
{
	struct wmat m;
	wmat_make(&m, type, cols, rows);
	int32_t *tok = malloc(sizeof(int32_t) * (size_t)n);
	float *yc = malloc(sizeof(float) * (size_t)(cols * n));
	float *yg = malloc(sizeof(float) * (size_t)(cols * n));
	ck_assert(tok && yc && yg);
	for (int t = 0; t < n; t++)
		tok[t] = t == 0 ? 0 : t == 1 ? (int32_t)rows - 1 : (int32_t)(rnd() % (uint32_t)rows);
	struct backend *cpu = make_cpu(cols, 8, 16), *gpu = make_gpu(cols, 8, 16);
	void *dw = to_dev(gpu, m.bytes, m.row_bytes * (size_t)rows);
	float *dy;
	struct smk_err err = { 0 };
	ck_assert_int_eq(cuda_be_alloc(gpu, (void **)&dy, sizeof(float) * (size_t)(cols * n), &err), 0);
	const struct wtensor th = wmat_tensor(&m, m.bytes), td = wmat_tensor(&m, dw);
	ck_assert_int_eq(cpu->ops->embed(cpu, &th, tok, n, scale, yc), 0);
	ck_assert_int_eq(gpu->ops->embed(gpu, &td, tok, n, scale, dy), 0);
	from_dev(gpu, yg, dy, sizeof(float) * (size_t)(cols * n));
	struct stat s = { 0 };
	for (int64_t i = 0; i < cols * n; i++)
		stat_add(&s, yg[i], yc[i], 0, (long)i);
	char what[96];
	snprintf(what, sizeof(what), "%s %d rows of %lld scale %g", qtype_name(type), n,
		 (long long)cols, scale);
	stat_check(&s, "embed", what);
	ck_assert_msg(memcmp(yg, yc, sizeof(float) * (size_t)(cols * n)) == 0,
		      "%s embed: not bit-identical (signed zeros?)", qtype_name(type));

	/* an id out of range: refused like the CPU's, and the backend goes on */
	int32_t bad[2] = { 1, (int32_t)rows };
	ck_assert_int_eq(cpu->ops->embed(cpu, &th, bad, 2, 1.0f, yc), -ERANGE);
	ck_assert_int_eq(gpu->ops->embed(gpu, &td, bad, 2, 1.0f, dy), -ERANGE);
	ck_assert_int_eq(cuda_be_sync(gpu, &err), 0);

	cuda_be_free(gpu, dw);
	cuda_be_free(gpu, dy);
	backend_free(gpu);
	backend_free(cpu);
	wmat_free(&m);
	free(tok);
	free(yc);
	free(yg);
}

START_TEST(embed_every_type)
{
	const uint32_t type = all_types[_i];
	rng_state = 2000 + type;
	const int64_t cols = impl.big ? 2048 : 512;
	check_embed(type, cols, 37, 6, 1.0f);
	check_embed(type, cols, 37, 3, sqrtf(640.0f));
	/* more ids than one launch carries */
	check_embed(type, 256, 41, 600, 1.0f);
	if (type == QTYPE_F32 || type == QTYPE_F16 || type == QTYPE_BF16)
		check_embed(type, 100, 5, 4, 2.0f);
}
END_TEST

/* MXFP4's exponent byte over all 256 values, one block each: subnormal
 * scales at 0 and 1, infinities from 253 up (as ggml and the CPU decode
 * them).  The kernels' decoder gives the CPU's floats bit for bit. */
START_TEST(embed_mxfp4_every_exponent)
{
	enum { COLS = 1024, ROWS = 8, RB = COLS / 32 * 17 };
	static uint8_t bytes[ROWS * RB];
	rng_state = 3039;
	for (int b = 0; b < ROWS * COLS / 32; b++) {
		bytes[17 * b] = (uint8_t)b;
		for (int j = 1; j < 17; j++)
			bytes[17 * b + j] = (uint8_t)rnd();
	}
	int32_t tok[ROWS];
	for (int t = 0; t < ROWS; t++)
		tok[t] = ROWS - 1 - t;
	float *yc = malloc(sizeof(float) * COLS * ROWS), *yg = malloc(sizeof(float) * COLS * ROWS);
	ck_assert(yc && yg);
	struct backend *cpu = make_cpu(COLS, 8, 16), *gpu = make_gpu(COLS, 8, 16);
	void *dw = to_dev(gpu, bytes, sizeof(bytes));
	float *dy;
	struct smk_err err = { 0 };
	ck_assert_int_eq(cuda_be_alloc(gpu, (void **)&dy, sizeof(float) * COLS * ROWS, &err), 0);
	struct wtensor th = { .name = "w", .type = QTYPE_MXFP4, .ne0 = COLS, .ne1 = ROWS,
			      .row_bytes = RB, .nbytes = sizeof(bytes), .source = -1, .data = bytes };
	struct wtensor td = th;
	td.data = dw;
	ck_assert_int_eq(cpu->ops->embed(cpu, &th, tok, ROWS, 1.0f, yc), 0);
	ck_assert_int_eq(gpu->ops->embed(gpu, &td, tok, ROWS, 1.0f, dy), 0);
	from_dev(gpu, yg, dy, sizeof(float) * COLS * ROWS);
	struct stat s = { 0 };
	int infs = 0, subnormal = 0;
	for (long i = 0; i < COLS * ROWS; i++) {
		infs += isinf(yc[i]) != 0;
		subnormal += fpclassify(yc[i]) == FP_SUBNORMAL;
		if (isfinite(yc[i]))
			stat_add(&s, yg[i], yc[i], 0, i);
	}
	ck_assert(infs > 0 && subnormal > 0); /* the edges are there */
	stat_check(&s, "embed", "MXFP4 every exponent byte 0..255");
	ck_assert_msg(memcmp(yg, yc, sizeof(float) * COLS * ROWS) == 0,
		      "MXFP4 every exponent: not bit-identical (infinities, signed zeros?)");
	cuda_be_free(gpu, dw);
	cuda_be_free(gpu, dy);
	backend_free(gpu);
	backend_free(cpu);
	free(yc);
	free(yg);
}
END_TEST

/* ---- rmsnorm --------------------------------------------------------------------- */

static void check_rmsnorm(int width, int n, bool weighted, bool in_place)
{
	float *x = malloc(sizeof(float) * (size_t)(width * n)), *w = malloc(sizeof(float) * (size_t)width);
	float *yc = malloc(sizeof(float) * (size_t)(width * n)), *yg = malloc(sizeof(float) * (size_t)(width * n));
	ck_assert(x && w && yc && yg);
	for (int i = 0; i < width * n; i++)
		x[i] = frand() * 4.0f;
	for (int i = 0; i < width; i++)
		w[i] = 1.0f + frand();
	struct backend *cpu = make_cpu(width, n, 16), *gpu = make_gpu(width, n, 16);
	float *dx = to_dev(gpu, x, sizeof(float) * (size_t)(width * n));
	float *dw = to_dev(gpu, w, sizeof(float) * (size_t)width);
	float *dy = dx;
	struct smk_err err = { 0 };
	if (!in_place)
		ck_assert_int_eq(cuda_be_alloc(gpu, (void **)&dy, sizeof(float) * (size_t)(width * n), &err), 0);
	struct wtensor wh = { .name = "norm", .type = QTYPE_F32, .ne0 = width, .ne1 = 1,
			      .row_bytes = 4 * (uint64_t)width, .nbytes = 4 * (uint64_t)width,
			      .source = -1, .data = w };
	struct wtensor wd = wh;
	wd.data = dw;
	cpu->ops->rmsnorm(cpu, x, weighted ? &wh : NULL, yc, width, n, 1e-6f);
	gpu->ops->rmsnorm(gpu, dx, weighted ? &wd : NULL, dy, width, n, 1e-6f);
	from_dev(gpu, yg, dy, sizeof(float) * (size_t)(width * n));
	struct stat s = { 0 };
	for (int i = 0; i < width * n; i++)
		stat_add(&s, yg[i], yc[i], 4 * U * 2 * fabs(yc[i]) + 1e-37, i);
	char what[96];
	snprintf(what, sizeof(what), "%d rows of %d%s%s", n, width, weighted ? " weighted" : "",
		 in_place ? " in place" : "");
	stat_check(&s, "rmsnorm", what);
	cuda_be_free(gpu, dx);
	cuda_be_free(gpu, dw);
	if (!in_place)
		cuda_be_free(gpu, dy);
	backend_free(gpu);
	backend_free(cpu);
	free(x);
	free(w);
	free(yc);
	free(yg);
}

START_TEST(rmsnorm_rows)
{
	rng_state = 3;
	check_rmsnorm(640, 5, true, false);
	check_rmsnorm(640, 1, false, false);
	check_rmsnorm(64, 40, true, true);   /* per-head q/k norm: many short rows */
	check_rmsnorm(100, 3, true, true);
	if (impl.big)
		check_rmsnorm(8192, 64, true, false);
}
END_TEST

/* ---- rope ------------------------------------------------------------------------- */

static void check_rope(enum rope_kind kind, int head_dim, int n_rot, float base, float fscale,
		       bool factors, int n, int n_heads, int pos0, bool yarn)
{
	const int len = n * n_heads * head_dim;
	float *x = malloc(sizeof(float) * (size_t)len), *yc = malloc(sizeof(float) * (size_t)len);
	float *yg = malloc(sizeof(float) * (size_t)len), ff[512];
	ck_assert(x && yc && yg);
	for (int i = 0; i < len; i++)
		x[i] = frand() * 3.0f;
	for (int i = 0; i < n_rot / 2; i++)
		ff[i] = 1.0f + (float)(i % 7) * 1.5f; /* llama3-like divisors */
	struct rope_params rp = { .kind = kind, .n_rot = n_rot, .base = base, .freq_scale = fscale,
				  .freq_factors = factors ? ff : NULL };
	if (yarn) {
		/* gpt-oss's YaRN: ramp over the dims rope_yarn_corr_dims gives,
		 * cos/sin scaled by 1 + 0.1 ln(1/freq_scale) */
		rp.ext_factor = 1.0f;
		rp.attn_factor = 1.0f;
		rope_yarn_corr_dims(n_rot, 4096, base, 32.0f, 1.0f, rp.corr_dims);
	}
	struct backend *cpu = make_cpu(64, n, 16), *gpu = make_gpu(64, n, 16);
	float *dx = to_dev(gpu, x, sizeof(float) * (size_t)len);
	memcpy(yc, x, sizeof(float) * (size_t)len);
	cpu->ops->rope(cpu, yc, n, n_heads, head_dim, pos0, &rp);
	gpu->ops->rope(gpu, dx, n, n_heads, head_dim, pos0, &rp);
	from_dev(gpu, yg, dx, sizeof(float) * (size_t)len);
	struct stat s = { 0 };
	const int half = n_rot / 2;
	for (int i = 0; i < len; i++) {
		const int d = i % head_dim;
		double tol = 0;
		if (d < n_rot) {
			/* the pair this value belongs to */
			const int base_i = i - d;
			int a, b;
			if (kind == ROPE_NEOX) {
				a = d < half ? d : d - half;
				b = a + half;
			} else {
				a = d & ~1;
				b = a + 1;
			}
			tol = 12 * U * (yarn ? 1.5 : 1.0) * (fabs(x[base_i + a]) + fabs(x[base_i + b])) + 1e-37;
		}
		stat_add(&s, yg[i], yc[i], tol, i);
	}
	char what[96];
	snprintf(what, sizeof(what), "%s hd%d rot%d pos%d+%d%s fs%g%s", kind == ROPE_NEOX ? "neox" : "norm",
		 head_dim, n_rot, pos0, n, factors ? " ff" : "", fscale, yarn ? " yarn" : "");
	stat_check(&s, "rope", what);
	cuda_be_free(gpu, dx);
	backend_free(gpu);
	backend_free(cpu);
	free(x);
	free(yc);
	free(yg);
}

START_TEST(rope_layouts)
{
	rng_state = 4;
	check_rope(ROPE_NEOX, 64, 64, 10000.0f, 1.0f, false, 1, 3, 0, false);
	check_rope(ROPE_NEOX, 64, 64, 10000.0f, 1.0f, false, 7, 3, 37, false);
	check_rope(ROPE_NORM, 128, 128, 500000.0f, 1.0f, true, 5, 2, 11, false);
	check_rope(ROPE_NEOX, 64, 32, 10000.0f, 0.25f, false, 4, 3, 100, false);   /* partial, scaled */
	check_rope(ROPE_NORM, 80, 40, 10000.0f, 1.0f, true, 3, 2, 9, false);       /* partial, factors */
	check_rope(ROPE_NEOX, 256, 256, 1000000.0f, 1.0f, false, 2, 4, 4000, false); /* gemma, far */
	check_rope(ROPE_NEOX, 64, 64, 150000.0f, 1.0f / 32, false, 3, 4, 5000, true); /* gpt-oss YaRN */
	check_rope(ROPE_NEOX, 64, 64, 150000.0f, 1.0f / 32, false, 5, 2, 0, true);
	if (impl.big)
		check_rope(ROPE_NORM, 128, 128, 500000.0f, 0.125f, true, 64, 32, 30000, false);
}
END_TEST

/* ---- attention ------------------------------------------------------------------------ */

static void check_attention(int n_head, int n_head_kv, int hd, int pos0, int n_q, int window,
			    int pad, bool with_sinks)
{
	const int ctx = pos0 + n_q;
	const int64_t kv_stride = (int64_t)n_head_kv * hd + pad;
	const size_t qn = (size_t)n_q * n_head * hd, kvn = (size_t)ctx * (size_t)kv_stride;
	float *q = malloc(sizeof(float) * qn), *oc = malloc(sizeof(float) * qn);
	float *og = malloc(sizeof(float) * qn);
	uint16_t *k = malloc(sizeof(uint16_t) * kvn), *v = malloc(sizeof(uint16_t) * kvn);
	ck_assert(q && k && v && oc && og);
	/* q as fp16 values in floats, K and V as the cache's halves, as
	 * forward.c hands them over; q spread wider so the softmax is not flat */
	for (size_t i = 0; i < qn; i++)
		q[i] = fp16_to_fp32(fp32_to_fp16(frand() * 3.0f));
	for (size_t i = 0; i < kvn; i++) {
		k[i] = fp32_to_fp16(frand());
		v[i] = fp32_to_fp16(frand());
	}
	struct attn_params ap = { .n_head = n_head, .n_head_kv = n_head_kv, .head_dim = hd,
				  .pos0 = pos0, .n_q = n_q, .window = window,
				  .scale = 1.0f / sqrtf((float)hd), .kv_stride = kv_stride };
	struct backend *cpu = make_cpu(64, n_q, ctx), *gpu = make_gpu(64, n_q, ctx);
	float *dq = to_dev(gpu, q, sizeof(float) * qn), *dout;
	/* sinks (gpt-oss): per head, around the scores' range */
	float sinks[64];
	for (int h = 0; h < n_head && h < 64; h++)
		sinks[h] = frand() * 4.0f;
	float *dsinks = with_sinks ? to_dev(gpu, sinks, sizeof(float) * (size_t)n_head) : NULL;
	struct attn_params apg = ap;
	ap.sinks = with_sinks ? sinks : NULL;
	apg.sinks = dsinks;
	uint16_t *dk = to_dev(gpu, k, sizeof(uint16_t) * kvn);
	uint16_t *dv = to_dev(gpu, v, sizeof(uint16_t) * kvn);
	struct smk_err err = { 0 };
	ck_assert_int_eq(cuda_be_alloc(gpu, (void **)&dout, sizeof(float) * qn, &err), 0);
	cpu->ops->attention(cpu, q, k, v, oc, &ap);
	gpu->ops->attention(gpu, dq, dk, dv, dout, &apg);
	from_dev(gpu, og, dout, sizeof(float) * qn);
	if (dsinks)
		cuda_be_free(gpu, dsinks);
	struct stat s = { 0 };
	const int group = n_head / n_head_kv;
	for (int t = 0; t < n_q; t++) {
		const int pos = pos0 + t;
		const int first = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
		const int span = pos - first + 1;
		for (int h = 0; h < n_head; h++) {
			double vmax = 0;
			for (int p = first; p <= pos; p++)
				for (int d = 0; d < hd; d++)
					vmax = fmax(vmax, fabs(fp16_to_fp32(v[p * kv_stride + (h / group) * hd + d])));
			const double tol = vmax * (1.0 / 512 + 4.0 * span * U) + 1e-30;
			for (int d = 0; d < hd; d++) {
				const long at = ((long)t * n_head + h) * hd + d;
				stat_add(&s, og[at], oc[at], tol, at);
			}
		}
	}
	char what[96];
	snprintf(what, sizeof(what), "h%d/%d hd%d pos%d+%d win%d%s%s", n_head, n_head_kv, hd, pos0,
		 n_q, window, pad ? " padded" : "", with_sinks ? " sinks" : "");
	stat_check(&s, "attention", what);
	cuda_be_free(gpu, dq);
	cuda_be_free(gpu, dk);
	cuda_be_free(gpu, dv);
	cuda_be_free(gpu, dout);
	backend_free(gpu);
	backend_free(cpu);
	free(q);
	free(k);
	free(v);
	free(oc);
	free(og);
}

/* V rows one-hot (v_p = e_p), so out[d] is the softmax weight of position
 * first + d: it must be an fp16 value (the rounding point llama.cpp has),
 * within one fp16 step (2^-10 relative) of the CPU's weight. */
static void check_attention_weights(int n_head, int n_head_kv, int pos0, int n_q, int window)
{
	const int hd = 64, ctx = pos0 + n_q;
	const int64_t kv_stride = (int64_t)n_head_kv * hd;
	const size_t qn = (size_t)n_q * n_head * hd, kvn = (size_t)ctx * (size_t)kv_stride;
	float *q = malloc(sizeof(float) * qn), *oc = malloc(sizeof(float) * qn);
	float *og = malloc(sizeof(float) * qn);
	uint16_t *k = malloc(sizeof(uint16_t) * kvn), *v = calloc(kvn, sizeof(uint16_t));
	ck_assert(q && k && v && oc && og && ctx <= hd);
	for (size_t i = 0; i < qn; i++)
		q[i] = fp16_to_fp32(fp32_to_fp16(frand() * 3.0f));
	for (size_t i = 0; i < kvn; i++)
		k[i] = fp32_to_fp16(frand());
	struct attn_params ap = { .n_head = n_head, .n_head_kv = n_head_kv, .head_dim = hd,
				  .pos0 = pos0, .n_q = n_q, .window = window,
				  .scale = 0.125f, .kv_stride = kv_stride };
	struct backend *cpu = make_cpu(64, n_q, ctx), *gpu = make_gpu(64, n_q, ctx);
	struct stat s = { 0 };
	int not_f16 = 0;
	for (int t = 0; t < n_q; t++) {
		/* one-hot rows relative to this query's first position */
		const int pos = pos0 + t;
		const int first = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
		memset(v, 0, sizeof(uint16_t) * kvn);
		for (int p = first; p <= pos; p++)
			for (int g = 0; g < n_head_kv; g++)
				v[p * kv_stride + g * hd + (p - first)] = 0x3c00; /* 1.0 */
		float *dq = to_dev(gpu, q, sizeof(float) * qn), *dout;
		uint16_t *dk = to_dev(gpu, k, sizeof(uint16_t) * kvn);
		uint16_t *dv = to_dev(gpu, v, sizeof(uint16_t) * kvn);
		struct smk_err err = { 0 };
		ck_assert_int_eq(cuda_be_alloc(gpu, (void **)&dout, sizeof(float) * qn, &err), 0);
		cpu->ops->attention(cpu, q, k, v, oc, &ap);
		gpu->ops->attention(gpu, dq, dk, dv, dout, &ap);
		from_dev(gpu, og, dout, sizeof(float) * qn);
		for (int h = 0; h < n_head; h++)
			for (int d = 0; d <= pos - first; d++) {
				const long at = ((long)t * n_head + h) * hd + d;
				not_f16 += og[at] != fp16_to_fp32(fp32_to_fp16(og[at]));
				/* one fp16 step: 2^-10 relative, 2^-24 below 2^-14 */
				stat_add(&s, og[at], oc[at], fabs(oc[at]) / 1024 + 1.0 / 16777216, at);
			}
		cuda_be_free(gpu, dq);
		cuda_be_free(gpu, dk);
		cuda_be_free(gpu, dv);
		cuda_be_free(gpu, dout);
	}
	char what[96];
	snprintf(what, sizeof(what), "one-hot V h%d/%d pos%d+%d win%d", n_head, n_head_kv, pos0,
		 n_q, window);
	if (not_f16)
		s.max_ratio = INFINITY;
	stat_check(&s, "attention", what);
	ck_assert_msg(not_f16 == 0, "%d softmax weights are not fp16 values", not_f16);
	backend_free(gpu);
	backend_free(cpu);
	free(q);
	free(k);
	free(v);
	free(oc);
	free(og);
}

START_TEST(attention_weights_are_fp16)
{
	rng_state = 7;
	check_attention_weights(4, 2, 12, 3, 0);
	check_attention_weights(2, 1, 40, 2, 9);
}
END_TEST

START_TEST(attention_decode_prefill_window_gqa)
{
	rng_state = 5;
	check_attention(4, 1, 256, 37, 1, 0, 0, false);     /* gemma-like decode */
	check_attention(8, 2, 64, 0, 20, 0, 0, false);      /* prefill from empty, GQA */
	check_attention(4, 4, 128, 10, 5, 8, 0, false);     /* sliding window */
	check_attention(2, 1, 80, 3, 4, 0, 16, false);      /* head_dim not a multiple of 32, padded rows */
	check_attention(3, 3, 32, 0, 1, 0, 0, false);       /* a single position */
	check_attention(8, 2, 64, 30, 4, 0, 0, true);       /* gpt-oss: sinks, full */
	check_attention(8, 2, 64, 200, 1, 128, 0, true);    /* gpt-oss: sinks, window 128 */
	if (impl.big) {
		check_attention(8, 8, 128, 3000, 1, 0, 0, false);
		check_attention(8, 2, 128, 3000, 1, 512, 0, false);
		check_attention(16, 4, 128, 0, 200, 0, 0, false);
		check_attention(4, 1, 256, 1000, 64, 512, 0, false);
	}
}
END_TEST

/* ---- element-wise ----------------------------------------------------------------------- */

START_TEST(gelu_silu_add_bias)
{
	rng_state = 6;
	const int n = impl.big ? 300000 : 5000, width = 100;
	float *g = malloc(sizeof(float) * n), *u = malloc(sizeof(float) * n);
	float *c = malloc(sizeof(float) * n), *r = malloc(sizeof(float) * n);
	ck_assert(g && u && c && r);
	for (int i = 0; i < n; i++) {
		g[i] = frand() * 12.0f;
		u[i] = frand() * 2.0f;
	}
	/* the edges of GELU's table range and signed zeros */
	const float edge[] = { -10.0f, 10.0f, -9.999f, 9.999f, 0.0f, -0.0f, 1e-30f, -1e-30f, 65504.0f };
	for (int i = 0; i < (int)(sizeof(edge) / sizeof(edge[0])); i++)
		g[i] = edge[i];
	struct backend *cpu = make_cpu(64, 1, 16), *gpu = make_gpu(64, 1, 16);
	float *dg = to_dev(gpu, g, sizeof(float) * n), *du = to_dev(gpu, u, sizeof(float) * n);
	struct stat s;

	memcpy(c, g, sizeof(float) * n);
	cpu->ops->gelu_mul(cpu, c, u, n);
	gpu->ops->gelu_mul(gpu, dg, du, n);
	from_dev(gpu, r, dg, sizeof(float) * n);
	memset(&s, 0, sizeof(s));
	for (int i = 0; i < n; i++)
		stat_add(&s, r[i], c[i], 0, i);
	stat_check(&s, "gelu_mul", "tanh gelu via fp16 table");
	ck_assert(memcmp(r, c, sizeof(float) * n) == 0);

	struct smk_err err = { 0 };
	ck_assert_int_eq(cuda_be_upload(gpu, dg, g, sizeof(float) * n, &err), 0);
	memcpy(c, g, sizeof(float) * n);
	cpu->ops->silu_mul(cpu, c, u, n);
	gpu->ops->silu_mul(gpu, dg, du, n);
	from_dev(gpu, r, dg, sizeof(float) * n);
	memset(&s, 0, sizeof(s));
	for (int i = 0; i < n; i++)
		stat_add(&s, r[i], c[i], fabs(c[i]) / 524288.0 + 1e-37, i);
	stat_check(&s, "silu_mul", "swiglu");

	/* gpt-oss's clamped SwiGLU: gates and ups past +-7 included (g spans
	 * +-12); expf as in silu_mul */
	ck_assert_int_eq(cuda_be_upload(gpu, dg, g, sizeof(float) * n, &err), 0);
	float *u7 = malloc(sizeof(float) * n);
	ck_assert(u7);
	for (int i = 0; i < n; i++)
		u7[i] = u[i] * 5.0f;
	float *du7 = to_dev(gpu, u7, sizeof(float) * n);
	memcpy(c, g, sizeof(float) * n);
	cpu->ops->swiglu_oai(cpu, c, u7, n, 1.702f, 7.0f);
	gpu->ops->swiglu_oai(gpu, dg, du7, n, 1.702f, 7.0f);
	from_dev(gpu, r, dg, sizeof(float) * n);
	memset(&s, 0, sizeof(s));
	for (int i = 0; i < n; i++)
		stat_add(&s, r[i], c[i], fabs(c[i]) / 524288.0 + 1e-37, i);
	stat_check(&s, "swiglu_oai", "alpha 1.702 limit 7");
	cuda_be_free(gpu, du7);
	free(u7);

	ck_assert_int_eq(cuda_be_upload(gpu, dg, g, sizeof(float) * n, &err), 0);
	memcpy(c, g, sizeof(float) * n);
	cpu->ops->add(cpu, c, u, n);
	gpu->ops->add(gpu, dg, du, n);
	from_dev(gpu, r, dg, sizeof(float) * n);
	memset(&s, 0, sizeof(s));
	for (int i = 0; i < n; i++)
		stat_add(&s, r[i], c[i], 0, i);
	stat_check(&s, "add", "x += y");

	/* bias over n / width rows */
	const int rows = n / width;
	ck_assert_int_eq(cuda_be_upload(gpu, dg, g, sizeof(float) * n, &err), 0);
	memcpy(c, g, sizeof(float) * n);
	struct wtensor bh = { .name = "bias", .type = QTYPE_F32, .ne0 = width, .ne1 = 1,
			      .row_bytes = 4 * width, .nbytes = 4 * width, .source = -1, .data = u };
	struct wtensor bd = bh;
	bd.data = du;
	cpu->ops->add_bias(cpu, c, &bh, rows);
	gpu->ops->add_bias(gpu, dg, &bd, rows);
	from_dev(gpu, r, dg, sizeof(float) * n);
	memset(&s, 0, sizeof(s));
	for (int i = 0; i < rows * width; i++)
		stat_add(&s, r[i], c[i], 0, i);
	stat_check(&s, "add_bias", "rows of 100");

	/* fp16 rounding (the KV cache's values) */
	ck_assert_int_eq(cuda_be_upload(gpu, dg, g, sizeof(float) * n, &err), 0);
	gpu->ops->round_fp16(gpu, du, dg, n);
	from_dev(gpu, r, du, sizeof(float) * n);
	memset(&s, 0, sizeof(s));
	for (int i = 0; i < n; i++)
		stat_add(&s, r[i], fp16_to_fp32(fp32_to_fp16(g[i])), 0, i);
	stat_check(&s, "round_fp16", "the query's fp16 values");

	/* the KV cache's store: fp32_to_fp16's bits (du is reused for n
	 * halves; the edges above included) */
	uint16_t *hb = malloc(sizeof(uint16_t) * n);
	ck_assert(hb);
	gpu->ops->store_fp16(gpu, (uint16_t *)du, dg, n);
	from_dev(gpu, hb, du, sizeof(uint16_t) * n);
	memset(&s, 0, sizeof(s));
	for (int i = 0; i < n; i++)
		stat_add(&s, fp16_to_fp32(hb[i]), fp16_to_fp32(fp32_to_fp16(g[i])), 0, i);
	stat_check(&s, "store_fp16", "KV cache halves");
	for (int i = 0; i < n; i++)
		ck_assert_msg(hb[i] == fp32_to_fp16(g[i]), "store_fp16 [%d] %a: %#x vs %#x", i,
			      (double)g[i], hb[i], fp32_to_fp16(g[i]));
	free(hb);

	/* Gemma's query scaling: one float multiplication, as the CPU's */
	ck_assert_int_eq(cuda_be_upload(gpu, dg, g, sizeof(float) * n, &err), 0);
	memcpy(c, g, sizeof(float) * n);
	cpu->ops->scale(cpu, c, 0.0625f * 1.37f, n);
	gpu->ops->scale(gpu, dg, 0.0625f * 1.37f, n);
	from_dev(gpu, r, dg, sizeof(float) * n);
	memset(&s, 0, sizeof(s));
	for (int i = 0; i < n; i++)
		stat_add(&s, r[i], c[i], 0, i);
	stat_check(&s, "scale", "x *= s");
	ck_assert(memcmp(r, c, sizeof(float) * n) == 0);

	/* MoE rows: gather rows by index, scatter them scaled to other rows
	 * (indices and scales in device memory), as the CPU's */
	{
		const int nr = rows < 40 ? rows : 40, W = width;
		int32_t gi[40], si[40];
		float sc[40];
		for (int i = 0; i < nr; i++) {
			gi[i] = (int32_t)(rnd() % (uint32_t)rows);
			si[i] = (int32_t)((i * 7 + 3) % nr); /* a permutation of 0..nr-1 */
			sc[i] = frand() * 3.0f;
		}
		int32_t *dgi = to_dev(gpu, gi, sizeof(gi)), *dsi = to_dev(gpu, si, sizeof(si));
		float *dsc = to_dev(gpu, sc, sizeof(sc));
		float *c2 = malloc(sizeof(float) * nr * W);
		ck_assert(c2);
		ck_assert_int_eq(cuda_be_upload(gpu, dg, g, sizeof(float) * n, &err), 0);
		cpu->ops->gather_rows(cpu, c, g, gi, nr, W);
		gpu->ops->gather_rows(gpu, du, dg, dgi, nr, W);
		from_dev(gpu, r, du, sizeof(float) * nr * W);
		ck_assert(memcmp(r, c, sizeof(float) * nr * W) == 0);
		cpu->ops->scatter_scaled_rows(cpu, c2, c, si, sc, nr, W);
		gpu->ops->scatter_scaled_rows(gpu, dg, du, dsi, dsc, nr, W);
		from_dev(gpu, r, dg, sizeof(float) * nr * W);
		memset(&s, 0, sizeof(s));
		for (int i = 0; i < nr * W; i++)
			stat_add(&s, r[i], c2[i], 0, i);
		stat_check(&s, "gather_rows + scatter_scaled_rows", "MoE rows");
		ck_assert(memcmp(r, c2, sizeof(float) * nr * W) == 0);
		free(c2);
		cuda_be_free(gpu, dgi);
		cuda_be_free(gpu, dsi);
		cuda_be_free(gpu, dsc);
	}

	/* device-to-device copy of an odd byte range, in stream order after
	 * the upload it reads */
	ck_assert_int_eq(cuda_be_upload(gpu, dg, u, sizeof(float) * n, &err), 0);
	gpu->ops->copy(gpu, du, (const char *)dg + 4, sizeof(float) * (n - 1) - 2);
	from_dev(gpu, r, du, sizeof(float) * (n - 1) - 2);
	ck_assert(memcmp(r, u + 1, sizeof(float) * (n - 1) - 2) == 0);
	ck_assert_int_eq(cuda_be_sync(gpu, &err), 0);

	cuda_be_free(gpu, dg);
	cuda_be_free(gpu, du);
	backend_free(gpu);
	backend_free(cpu);
	free(g);
	free(u);
	free(c);
	free(r);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------ */

START_TEST(errors_are_reported)
{
	struct backend *gpu = make_gpu(512, 4, 64);
	struct smk_err err = { 0 };
	float *d;
	ck_assert_int_eq(cuda_be_alloc(gpu, (void **)&d, 4096 * sizeof(float), &err), 0);
	/* Q8_K is an activation format: no kernel reads it as weights */
	uint8_t blk[292 * 2];
	memset(blk, 0, sizeof(blk));
	struct wtensor w = { .name = "act", .type = QTYPE_Q8_K, .ne0 = 256, .ne1 = 2,
			     .row_bytes = 292, .nbytes = sizeof(blk), .source = -1, .data = d };
	ck_assert_int_eq(gpu->ops->matmul(gpu, &w, d, 1, d + 1024), -EINVAL);
	/* the failure sticks: later ops are refused until sync reports it */
	w.type = QTYPE_F32;
	w.row_bytes = 1024;
	ck_assert_int_eq(gpu->ops->matmul(gpu, &w, d, 1, d + 1024), -EINVAL);
	ck_assert_int_eq(cuda_be_sync(gpu, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "Q8_K") != NULL, "message: %s", err.msg);
	ck_assert_int_eq(gpu->ops->matmul(gpu, &w, d, 1, d + 1024), 0);
	ck_assert_int_eq(cuda_be_sync(gpu, &err), 0);
	/* beyond the limits the backend was made for */
	ck_assert_int_eq(gpu->ops->matmul(gpu, &w, d, 5, d + 1024), -EINVAL);
	ck_assert_int_eq(cuda_be_sync(gpu, &err), -EINVAL);
	/* a void op's failure is kept for sync */
	struct wtensor bad_norm = { .name = "norm", .type = QTYPE_F16, .ne0 = 64, .ne1 = 1,
				    .row_bytes = 128, .nbytes = 128, .source = -1, .data = d };
	gpu->ops->rmsnorm(gpu, d, &bad_norm, d, 64, 1, 1e-6f);
	ck_assert_int_eq(cuda_be_sync(gpu, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "norm") != NULL, "message: %s", err.msg);
	/* a head_dim the attention kernel does not take */
	struct attn_params ap = { .n_head = 1, .n_head_kv = 1, .head_dim = 1024, .pos0 = 0,
				  .n_q = 1, .scale = 1.0f, .kv_stride = 1024 };
	gpu->ops->attention(gpu, d, (const uint16_t *)d, (const uint16_t *)d, d + 2048, &ap);
	ck_assert_int_eq(cuda_be_sync(gpu, &err), -EINVAL);
	cuda_be_free(gpu, d);
	backend_free(gpu);

	/* a context longer than attention can hold is refused up front */
	struct backend_limits lim = { .max_cols = 64, .max_rows = 1, .max_ctx = 10000000,
				      .max_heads = 1, .n_threads = 1 };
	struct backend *b = NULL;
	ck_assert_int_eq(impl.make(&b, &lim, NULL, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "max_ctx") != NULL, "message: %s", err.msg);
	/* and a device that does not exist */
	struct cuda_backend_opts o = { .device = 99 };
	lim.max_ctx = 64;
	ck_assert_int_eq(impl.make(&b, &lim, &o, &err), -ENODEV);
}
END_TEST

/* ---- the probe --------------------------------------------------------------------------- */

START_TEST(probe_and_selftest)
{
	char why[256] = "";
	int n = cuda_probe(why, sizeof(why));
	ck_assert_msg(n > 0, "%s", why);
	enum { N = 1000 };
	static float a[N], b[N];
	double want = 0;
	for (int i = 0; i < N; i++) {
		a[i] = (float)(i % 7) - 3.0f;
		b[i] = (float)(i % 5) * 0.5f;
		want += (double)a[i] * b[i];
	}
	float got = 0;
	ck_assert_msg(cuda_selftest_dot(a, b, N, &got, why, sizeof(why)) == 0, "%s", why);
	ck_assert_msg(got == (float)want, "GPU dot %g, CPU %g", got, want);
}
END_TEST

static Suite *make_suite(bool gpu)
{
	Suite *s = suite_create("cuda");
	TCase *tc = tcase_create(impl.name);
	/* the emulator runs every CUDA thread as a fiber: slow, but bounded */
	tcase_set_timeout(tc, impl.big ? 300 : 600);
	if (gpu)
		tcase_add_test(tc, probe_and_selftest);
	tcase_add_loop_test(tc, matmul_every_type, 0, N_TYPES);
	tcase_add_loop_test(tc, embed_every_type, 0, N_TYPES);
	tcase_add_test(tc, embed_mxfp4_every_exponent);
	tcase_add_test(tc, rmsnorm_rows);
	tcase_add_test(tc, rope_layouts);
	tcase_add_test(tc, attention_decode_prefill_window_gqa);
	tcase_add_test(tc, attention_weights_are_fp16);
	tcase_add_test(tc, gelu_silu_add_bias);
	tcase_add_test(tc, errors_are_reported);
	suite_add_tcase(s, tc);
	return s;
}

/* Run the suite against one implementation; true if every test passed. */
static bool run_with(const char *name, backend_new_fn make, bool big, bool gpu)
{
	impl.name = name;
	impl.make = make;
	impl.big = big;
	printf("cuda: running the kernels on the %s\n", gpu ? "GPU" : "CPU emulator");
	fflush(stdout);
	return ck_run(make_suite(gpu)) == EXIT_SUCCESS;
}

/* What the probe child found. */
struct probe_result {
	int n;                 /* devices, or a negative code */
	char why[256];         /* the reason when n <= 0 */
	char desc[4][256];     /* cuda_describe of the first devices */
};

/* Probe in a child process: CUDA must not be initialised in this process
 * before Check forks the test processes (a forked child of a process that
 * has initialised CUDA cannot use it), and cudaGetDeviceCount does
 * initialise it. */
static void probe_in_child(struct probe_result *r)
{
	memset(r, 0, sizeof(*r));
	int fd[2];
	if (pipe(fd) != 0) {
		r->n = -errno;
		snprintf(r->why, sizeof(r->why), "pipe: %s", strerror(errno));
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(fd[0]);
		struct probe_result c;
		memset(&c, 0, sizeof(c));
		c.n = cuda_probe(c.why, sizeof(c.why));
		for (int d = 0; d < c.n && d < 4; d++)
			if (cuda_describe(d, c.desc[d], sizeof(c.desc[d])) != 0)
				snprintf(c.desc[d], sizeof(c.desc[d]), "device %d: not described", d);
		ssize_t w = write(fd[1], &c, sizeof(c));
		_exit(w == (ssize_t)sizeof(c) ? 0 : 1);
	}
	close(fd[1]);
	ssize_t got = pid > 0 ? read(fd[0], r, sizeof(*r)) : -1;
	close(fd[0]);
	int st = 0;
	if (pid > 0)
		waitpid(pid, &st, 0);
	if (got != (ssize_t)sizeof(*r)) {
		memset(r, 0, sizeof(*r));
		r->n = -EIO;
		snprintf(r->why, sizeof(r->why), "the probe process failed (status %d)", st);
	}
}

int main(void)
{
	const char *emu_env = getenv("SMOKE_CUDA_EMU");
	struct probe_result pr;
	probe_in_child(&pr);
	if (pr.n > 0) {
		for (int d = 0; d < pr.n && d < 4; d++)
			printf("cuda: %s\n", pr.desc[d]);
		bool ok = true;
		if (emu_env && strcmp(emu_env, "1") == 0)
			ok = run_with("emu", backend_cudaemu_new, false, false);
		ok = run_with("gpu", backend_cuda_new, true, true) && ok;
		return ok ? EXIT_SUCCESS : EXIT_FAILURE;
	}
	/* No usable GPU: exit 77, which meson reports as SKIP, with the reason. */
	if (pr.n != -ENODEV || !pr.why[0]) {
		printf("FAIL cuda: probe returned %d (%s)\n", pr.n, pr.why[0] ? pr.why : "no reason");
		return 1;
	}
	struct backend *probe = NULL;
	struct backend_limits lim = { .max_cols = 64, .max_rows = 1, .max_ctx = 64,
				      .max_heads = 1, .n_threads = 1 };
	struct smk_err err = { 0 };
	const bool have_emu = backend_cudaemu_new(&probe, &lim, NULL, &err) == 0;
	if (have_emu)
		backend_free(probe);
	if (have_emu && !(emu_env && strcmp(emu_env, "0") == 0)) {
		/* The GPU's shapes (about 35 s since the emulator's fibers
		 * switch without system calls): rows of several full lane
		 * rounds and three token tiles, which the small shapes
		 * ("small": a few seconds) do not reach. */
		const bool big = !(emu_env && strcmp(emu_env, "small") == 0);
		if (!run_with("emu", backend_cudaemu_new, big, false)) {
			printf("FAIL cuda: the CUDA kernels fail under the CPU emulator (no GPU: %s)\n",
			       pr.why);
			return 1;
		}
		printf("SKIP cuda: %s (built %s CUDA; the kernels passed under the CPU emulator)\n",
		       pr.why, SMK_HAVE_CUDA ? "with" : "without");
		return 77;
	}
	printf("SKIP cuda: %s (built %s CUDA)\n", pr.why, SMK_HAVE_CUDA ? "with" : "without");
	return 77;
}
