/* CPU backend tests: every op against a plain double-precision version
 * written here from the textbook definition (not from the backend's code),
 * with thread counts 1..3 so the work splitting is exercised.  These are the
 * reference checks a GPU backend will later be held to as well. */
#include <check.h>

#include "ck_main.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/backend.h"
#include "compute/cpu/attention_avx2.h"
#include "compute/cpu/cpu_backend.h"
#include "compute/cpu/qdot.h"
#include "compute/cpu/threadpool.h"
#include "quant/qtype.h"
#include "util/fp16.h"

static float frand(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return ((float)((*s >> 8) & 0xffff) / 65535.0f) * 2.0f - 1.0f;
}

static struct backend *make(int threads, int64_t cols, int rows, int ctx)
{
	struct backend_limits lim = { .max_cols = cols, .max_rows = rows, .max_ctx = ctx,
				      .max_heads = 16, .n_threads = threads };
	struct backend *b;
	struct smk_err err = { 0 };
	ck_assert_msg(backend_cpu_new(&b, &lim, &err) == 0, "%s", err.msg);
	return b;
}

/* --- thread pool ------------------------------------------------------- */

struct count_ctx {
	int hits[8];
};

static void count_share(void *ctx, int ith, int nth)
{
	struct count_ctx *c = ctx;
	c->hits[ith] += nth;
}

START_TEST(pool_runs_every_share_once)
{
	for (int n = 1; n <= 4; n++) {
		struct tpool *p;
		ck_assert_int_eq(tpool_new(&p, n, NULL), 0);
		struct count_ctx c = { { 0 } };
		for (int r = 0; r < 1000; r++)
			tpool_run(p, count_share, &c);
		for (int i = 0; i < n; i++)
			ck_assert_int_eq(c.hits[i], 1000 * n);
		tpool_free(p);
	}
}
END_TEST

/* --- matmul ------------------------------------------------------------ */

/* Random weight rows in the type's own layout: every byte is drawn from
 * 0..0x3b, so any fp16 scale field (whose high byte is then <= 0x3b) is a
 * finite value below 1, whatever the layout puts where.  The gguf-verified
 * decoder gives the rows' true values; the product is checked against double
 * sums over those, within the error the int8 activation quantisation allows. */
static void check_matmul_rows(uint32_t type, int threads, int n_tok, int64_t rows)
{
	const int64_t cols = 512;
	const struct qtype_info *qi = qtype_info(type);
	uint64_t rb;
	ck_assert_int_eq(qtype_row_bytes(type, cols, &rb, NULL), 0);
	unsigned seed = 17 + type;
	uint8_t *w = malloc(rb * rows);
	for (uint64_t i = 0; i < rb * rows; i++) {
		seed = seed * 1103515245u + 12345u;
		w[i] = (uint8_t)((seed >> 16) % 0x3c);
	}
	if (type == QTYPE_F32)
		for (int64_t i = 0; i < cols * rows; i++)
			((float *)w)[i] = frand(&seed);
	if (type == QTYPE_MXFP4) {
		/* every code in the quant bytes; exponent bytes 120..127, weight
		 * scales 2^-8..2^-1 (bytes below 0x3c would be 2^-128..2^-69) */
		for (uint64_t i = 0; i < rb * rows; i++) {
			seed = seed * 1103515245u + 12345u;
			w[i] = (uint8_t)(i % qi->block_bytes ? seed >> 16 : 120 + (seed >> 16) % 8);
		}
	}
	float *deq = malloc(sizeof(float) * cols * rows);
	for (int64_t r = 0; r < rows; r++) {
		qi->dequant_row(w + r * rb, deq + r * cols, cols);
		double mag = 0;
		for (int64_t c = 0; c < cols; c++) {
			ck_assert(isfinite(deq[r * cols + c]));
			mag += fabs(deq[r * cols + c]);
		}
		ck_assert_msg(mag > 0, "%s row %ld decodes to zeros: the test would be vacuous",
			      qi->name, (long)r);
	}
	float *x = malloc(sizeof(float) * cols * n_tok), *y = malloc(sizeof(float) * rows * n_tok);
	for (int64_t i = 0; i < cols * n_tok; i++)
		x[i] = frand(&seed);

	struct wtensor t = { .name = "w", .type = type, .ne0 = cols, .ne1 = rows, .row_bytes = rb,
			     .nbytes = rb * rows, .data = w };
	struct backend *b = make(threads, cols, n_tok, 16);
	ck_assert_int_eq(b->ops->matmul(b, &t, x, n_tok, y), 0);
	for (int tk = 0; tk < n_tok; tk++)
		for (int64_t r = 0; r < rows; r++) {
			double s = 0, mag = 0;
			for (int64_t c = 0; c < cols; c++) {
				s += (double)deq[r * cols + c] * x[tk * cols + c];
				mag += fabs((double)deq[r * cols + c] * x[tk * cols + c]);
			}
			/* int8 activations: each product off by <= |w| * d/2 with
			 * d = amax/127, so the sum is off by < 1% of sum|w*x|
			 * for |x| <= 1 (plus float rounding). */
			double tol = type == QTYPE_F32 ? 1e-5 * (mag + 1) : 0.01 * mag + 1e-4;
			ck_assert_msg(fabs(y[tk * rows + r] - s) <= tol,
				      "%s threads %d tok %d row %ld: %g vs %g (tol %g)", qi->name, threads,
				      tk, (long)r, y[tk * rows + r], s, tol);
		}
	backend_free(b);
	free(w);
	free(deq);
	free(x);
	free(y);
}

static void check_matmul(uint32_t type, int threads, int n_tok)
{
	check_matmul_rows(type, threads, n_tok, 37);
}

START_TEST(matmul_matches_dequantised_product)
{
	const uint32_t types[] = { QTYPE_F32, QTYPE_F16, QTYPE_Q8_0, QTYPE_Q4_0, QTYPE_Q5_0,
				   QTYPE_MXFP4, QTYPE_Q4_K, QTYPE_Q5_K, QTYPE_Q6_K };
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		for (int th = 1; th <= 3; th++) {
			check_matmul(types[i], th, 1);
			check_matmul(types[i], th, 5);
			check_matmul(types[i], th, 9); /* taken in chunks (matmul.c) */
		}
	/* the float tiles read their rows in place, and a long batch goes
	 * through them in blocks of rows and of tokens (in_place_blocks:
	 * 256 KiB each, so 300 rows of 1 KiB are two blocks and 133 tokens
	 * of 2 KiB two, the last ones partial) */
	for (int th = 1; th <= 2; th++) {
		check_matmul_rows(QTYPE_F16, th, 133, 300);
		check_matmul_rows(QTYPE_BF16, th, 133, 300);
	}
}
END_TEST

START_TEST(matmul_rejects_out_of_limits)
{
	float w[64] = { 0 }, x[64] = { 0 }, y[4];
	struct wtensor t = { .type = QTYPE_F32, .ne0 = 64, .ne1 = 1, .row_bytes = 256, .data = w };
	struct backend *b = make(1, 32, 2, 16);
	ck_assert_int_eq(b->ops->matmul(b, &t, x, 1, y), -EINVAL); /* wider than max_cols */
	backend_free(b);
	b = make(1, 64, 2, 16);
	ck_assert_int_eq(b->ops->matmul(b, &t, x, 3, y), -EINVAL); /* more rows than max_rows */
	ck_assert_int_eq(b->ops->matmul(b, &t, x, 1, y), 0);
	backend_free(b);
}
END_TEST

/* Several weights on one input (q, k, v; gate, up) as one job: every
 * output equal to its own matmul's bit for bit, whatever mix of activation
 * formats (Q8_K for Q4_K/Q6_K, Q8_0, float for F16), threads 1..3, one and
 * several tokens, and a batch so large that the activation buffer holds
 * one format only (the job splits); the threads meet twice for weights of
 * one format, not twice per weight; widths that differ are refused. */
START_TEST(matmuls_equal_separate_matmuls)
{
	enum { COLS = 512, NW = 4 };
	const uint32_t types[NW] = { QTYPE_Q4_K, QTYPE_Q6_K, QTYPE_Q8_0, QTYPE_F16 };
	const int64_t rows[NW] = { 37, 11, 23, 5 };
	struct wtensor t[NW];
	unsigned seed = 5;
	for (int k = 0; k < NW; k++) {
		uint64_t rb;
		ck_assert_int_eq(qtype_row_bytes(types[k], COLS, &rb, NULL), 0);
		uint8_t *w = malloc(rb * rows[k]);
		for (uint64_t i = 0; i < rb * rows[k]; i++) {
			seed = seed * 1103515245u + 12345u;
			w[i] = (uint8_t)((seed >> 16) % 0x3c);
		}
		t[k] = (struct wtensor){ .name = "w", .type = types[k], .ne0 = COLS, .ne1 = rows[k],
					 .row_bytes = rb, .nbytes = rb * rows[k], .data = w };
	}
	const int toks[] = { 1, 5, 9 };
	for (int th = 1; th <= 3; th++)
		for (size_t c = 0; c < sizeof(toks) / sizeof(toks[0]); c++) {
			const int n = toks[c];
			float *x = malloc(sizeof(float) * COLS * n);
			for (int64_t i = 0; i < (int64_t)COLS * n; i++)
				x[i] = frand(&seed);
			float *one[NW], *all[NW];
			for (int k = 0; k < NW; k++) {
				one[k] = malloc(sizeof(float) * rows[k] * n);
				all[k] = malloc(sizeof(float) * rows[k] * n);
			}
			struct backend *b = make(th, COLS, n, 16);
			for (int k = 0; k < NW; k++)
				ck_assert_int_eq(b->ops->matmul(b, &t[k], x, n, one[k]), 0);
			const struct wtensor *ws[NW] = { &t[0], &t[1], &t[2], &t[3] };
			ck_assert_int_eq(b->ops->matmuls(b, ws, NW, x, n, all), 0);
			for (int k = 0; k < NW; k++)
				ck_assert_msg(!memcmp(one[k], all[k], sizeof(float) * rows[k] * n),
					      "threads %d tokens %d weight %d (%s) differs", th, n, k,
					      qtype_info(types[k])->name);
			/* Q4_K and Q6_K share Q8_K rows: one prepare and one dot
			 * job (the prepare is the caller's own at one token) */
			struct tpool *pool = cpu_of(b)->pool;
			unsigned long before = tpool_jobs(pool);
			ck_assert_int_eq(b->ops->matmuls(b, ws, 2, x, n, all), 0);
			ck_assert_uint_eq(tpool_jobs(pool) - before, n == 1 ? 1 : 2);
			before = tpool_jobs(pool);
			ck_assert_int_eq(b->ops->matmul(b, &t[0], x, n, one[0]), 0);
			ck_assert_int_eq(b->ops->matmul(b, &t[1], x, n, one[1]), 0);
			ck_assert_uint_eq(tpool_jobs(pool) - before, n == 1 ? 2 : 4);
			backend_free(b);
			for (int k = 0; k < NW; k++)
				free(one[k]), free(all[k]);
			free(x);
		}
	/* input widths that differ: refused */
	struct wtensor narrow = t[2];
	narrow.ne0 = COLS / 2;
	narrow.row_bytes /= 2;
	const struct wtensor *mixed[2] = { &t[0], &narrow };
	float y0[37], y1[23], x[COLS] = { 0 };
	struct backend *b = make(1, COLS, 1, 16);
	ck_assert_int_eq(b->ops->matmuls(b, mixed, 2, x, 1, (float *[]){ y0, y1 }), -EINVAL);
	backend_free(b);
	for (int k = 0; k < NW; k++)
		free((void *)t[k].data);
}
END_TEST

/* --- rmsnorm, rope, activations ----------------------------------------- */

START_TEST(rmsnorm_rope_gelu_silu)
{
	struct backend *b = make(2, 64, 4, 16);
	unsigned seed = 3;
	float x[2 * 64], y[2 * 64], wv[64];
	for (int i = 0; i < 128; i++)
		x[i] = frand(&seed) * 3;
	for (int i = 0; i < 64; i++)
		wv[i] = frand(&seed);
	struct wtensor w = { .type = QTYPE_F32, .ne0 = 64, .ne1 = 1, .row_bytes = 256, .data = wv };
	b->ops->rmsnorm(b, x, &w, y, 64, 2, 1e-6f);
	for (int t = 0; t < 2; t++) {
		double ss = 0;
		for (int i = 0; i < 64; i++)
			ss += (double)x[t * 64 + i] * x[t * 64 + i];
		double inv = 1.0 / sqrt(ss / 64 + 1e-6);
		for (int i = 0; i < 64; i++)
			ck_assert(fabs(y[t * 64 + i] - x[t * 64 + i] * inv * wv[i]) < 1e-5);
	}

	/* RoPE: a rotation preserves each pair's norm and turns it by
	 * pos * base^(-2i/d) radians; NORM pairs (2i, 2i+1), NEOX (i, i+d/2). */
	for (int kind = 0; kind < 2; kind++) {
		enum { hd = 16, pos0 = 7 };
		float v[2 * hd], orig[2 * hd];
		for (int i = 0; i < 2 * hd; i++)
			orig[i] = v[i] = frand(&seed);
		struct rope_params rp = { .kind = kind ? ROPE_NEOX : ROPE_NORM, .n_rot = hd,
					  .base = 10000.0f, .freq_scale = 1.0f };
		b->ops->rope(b, v, 2, 1, hd, pos0, &rp);
		for (int t = 0; t < 2; t++)
			for (int i = 0; i < hd / 2; i++) {
				int a = kind ? i : 2 * i, c = kind ? i + hd / 2 : 2 * i + 1;
				double th = (pos0 + t) * pow(10000.0, -2.0 * i / hd);
				double x0 = orig[t * hd + a], x1 = orig[t * hd + c];
				ck_assert(fabs(v[t * hd + a] - (x0 * cos(th) - x1 * sin(th))) < 1e-4);
				ck_assert(fabs(v[t * hd + c] - (x0 * sin(th) + x1 * cos(th))) < 1e-4);
			}
	}

	float g[6] = { -12.0f, -1.0f, 0.0f, 0.5f, 2.0f, 11.0f }, u[6] = { 1, 2, 3, 4, 5, 6 };
	float g2[6];
	memcpy(g2, g, sizeof(g));
	b->ops->gelu_mul(b, g, u, 6);
	for (int i = 0; i < 6; i++) {
		double xv = g2[i];
		double ge = 0.5 * xv * (1 + tanh(0.7978845608028654 * (xv + 0.044715 * xv * xv * xv)));
		/* fp16 table lookup: within fp16 precision of the exact value */
		ck_assert_msg(fabs(g[i] - ge * u[i]) <= 2e-3 * fabs(ge * u[i]) + 1e-6, "gelu(%g)", xv);
	}
	memcpy(g, g2, sizeof(g));
	b->ops->silu_mul(b, g, u, 6);
	for (int i = 0; i < 6; i++) {
		double xv = g2[i];
		ck_assert(fabs(g[i] - xv / (1 + exp(-xv)) * u[i]) < 1e-5 * (1 + fabs(xv * u[i])));
	}
	backend_free(b);
}
END_TEST

/* The element-wise and row ops on a prefill-sized batch (past the size
 * where the pool splits them) give one thread's bits on 2 and 3 threads,
 * with and without the SIMD paths; and the 8-wide GELU equals the scalar
 * one on every fp16 value, the +-10 edges, infinities and NaN. */
START_TEST(elementwise_split_is_exact)
{
	enum { W = 640, R = 67, N = W * R, HD = 64 };
	const int64_t big = (int64_t)N;
	float *in = malloc(sizeof(float) * N), *u = malloc(sizeof(float) * N);
	float *ref[8], *got = malloc(sizeof(float) * N);
	uint16_t *h_ref = malloc(2 * N), *h_got = malloc(2 * N);
	unsigned seed = 77;
	for (int i = 0; i < N; i++) {
		in[i] = frand(&seed) * 12.0f; /* past the GELU's +-10 */
		u[i] = frand(&seed);
	}
	in[5] = INFINITY, in[6] = -INFINITY, in[7] = NAN, in[8] = -10.0f, in[9] = 10.0f;
	float nw[W];
	for (int i = 0; i < W; i++)
		nw[i] = frand(&seed);
	struct wtensor norm = { .name = "n", .type = QTYPE_F32, .ne0 = W, .ne1 = 1, .row_bytes = 4 * W,
				.data = nw };
	struct rope_params rp = { .kind = ROPE_NEOX, .n_rot = HD, .base = 10000.0f, .freq_scale = 1.0f };
	for (int scalar = 0; scalar <= 1; scalar++) {
		qdot_force_scalar(scalar);
		for (int th = 1; th <= 3; th++) {
			struct backend *b = make(th, W, R, 16);
			for (int op = 0; op < 8; op++) {
				memcpy(got, in, sizeof(float) * N);
				switch (op) {
				case 0: b->ops->gelu_mul(b, got, u, big); break;
				case 1: b->ops->silu_mul(b, got, u, big); break;
				case 2: b->ops->swiglu_oai(b, got, u, big, 1.702f, 7.0f); break;
				case 3: b->ops->add(b, got, u, big); break;
				case 4: b->ops->rmsnorm(b, in, &norm, got, W, R, 1e-6f); break;
				case 5: b->ops->rope(b, got, R, W / HD, HD, 3, &rp); break;
				case 6: b->ops->round_fp16(b, got, in, big); break;
				default: b->ops->scale(b, got, 0.125f, big); break;
				}
				if (th == 1) {
					ref[op] = malloc(sizeof(float) * N);
					memcpy(ref[op], got, sizeof(float) * N);
				} else {
					ck_assert_msg(!memcmp(ref[op], got, sizeof(float) * N),
						      "op %d on %d threads (scalar %d) differs from one thread", op,
						      th, scalar);
				}
			}
			b->ops->store_fp16(b, th == 1 ? h_ref : h_got, in, big);
			if (th > 1)
				ck_assert(!memcmp(h_ref, h_got, 2 * N));
			backend_free(b);
		}
		for (int op = 0; op < 8; op++)
			free(ref[op]);
	}
	/* every fp16 value through the GELU, SIMD against scalar */
	float *g16 = malloc(sizeof(float) * 65536), *g16s = malloc(sizeof(float) * 65536);
	float *ones = malloc(sizeof(float) * 65536);
	for (int i = 0; i < 65536; i++) {
		g16[i] = fp16_to_fp32((uint16_t)i);
		ones[i] = 1.0f - (float)(i % 7) / 8;
	}
	memcpy(g16s, g16, sizeof(float) * 65536);
	struct backend *b = make(2, W, R, 16);
	qdot_force_scalar(true);
	b->ops->gelu_mul(b, g16s, ones, 65536);
	qdot_force_scalar(false);
	b->ops->gelu_mul(b, g16, ones, 65536);
	for (int i = 0; i < 65536; i++)
		ck_assert_msg(!memcmp(&g16[i], &g16s[i], 4), "gelu of half 0x%04x: %a vs scalar %a", i,
			      g16[i], g16s[i]);
	backend_free(b);
	free(g16), free(g16s), free(ones);
	free(in), free(u), free(got), free(h_ref), free(h_got);
}
END_TEST

/* The F16C paths of round_fp16 and store_fp16 give the scalar bits for
 * every float that matters to a rounding to fp16: each fp16 value and its
 * neighbours half an fp16 step away either side (the ties, to even), the
 * subnormal and overflow ranges, infinities, NaNs with payloads, and
 * random bit patterns; counts that leave a tail for the scalar loop. */
START_TEST(fp16_rounding_simd_equals_scalar)
{
	enum { N = 65536 * 3 + 200003 };
	float *in = malloc(sizeof(float) * N), *ref = malloc(sizeof(float) * N), *got = malloc(sizeof(float) * N);
	uint16_t *h_ref = malloc(2 * N), *h_got = malloc(2 * N);
	int n = 0;
	for (int h = 0; h < 65536; h++) {
		const float v = fp16_to_fp32((uint16_t)h);
		uint32_t bits;
		memcpy(&bits, &v, 4);
		in[n++] = v;
		/* 13 mantissa bits below an fp16 normal's last: +-0x1000 is half its step */
		const uint32_t up = bits + 0x1000, down = bits - 0x1000;
		memcpy(&in[n++], &up, 4);
		memcpy(&in[n++], &down, 4);
	}
	unsigned seed = 99;
	while (n < N) {
		const uint32_t r = (uint32_t)rand_r(&seed) << 16 ^ (uint32_t)rand_r(&seed);
		memcpy(&in[n++], &r, 4);
	}
	struct backend *b = make(2, 640, 16, 16);
	for (int len = N; len >= N - 7; len -= 7) {
		qdot_force_scalar(true);
		b->ops->round_fp16(b, ref, in, len);
		b->ops->store_fp16(b, h_ref, in, len);
		qdot_force_scalar(false);
		b->ops->round_fp16(b, got, in, len);
		b->ops->store_fp16(b, h_got, in, len);
		for (int i = 0; i < len; i++) {
			ck_assert_msg(!memcmp(&ref[i], &got[i], 4), "round_fp16(%a) [%d]: %a, scalar %a", in[i], i,
				      got[i], ref[i]);
			ck_assert_msg(h_ref[i] == h_got[i], "store_fp16(%a) [%d]: 0x%04x, scalar 0x%04x", in[i], i,
				      h_got[i], h_ref[i]);
		}
	}
	backend_free(b);
	free(in), free(ref), free(got), free(h_ref), free(h_got);
}
END_TEST

/* The AVX2 rmsnorm sums four rows at once, one per double lane: every row
 * must come out as the scalar loop's, bit for bit.  Widths with and
 * without a tail of fewer than four values; row counts with and without
 * rows left over after the groups of four; an infinite and a NaN row;
 * squares over 2^-30 .. 2^30.  A lane that takes another row's values, or
 * misses or repeats one (both planted: caught), fails.  (Two additions
 * swapped within a row were not caught: the double sum's last bits rarely
 * survive its rounding to float.) */
START_TEST(rmsnorm_simd_equals_scalar)
{
	static const int widths[] = { 640, 256, 2048, 7, 3, 1 };
	enum { RMAX = 13, WMAX = 2048 };
	float *in = malloc(sizeof(float) * RMAX * WMAX), *ref = malloc(sizeof(float) * RMAX * WMAX);
	float *got = malloc(sizeof(float) * RMAX * WMAX), nw[WMAX];
	unsigned seed = 4242;
	for (int i = 0; i < RMAX * WMAX; i++)
		in[i] = ldexpf(frand(&seed), (int)(rand_r(&seed) % 31) - 15);
	for (int i = 0; i < WMAX; i++)
		nw[i] = frand(&seed);
	struct backend *b = make(1, WMAX, RMAX, 16);
	for (size_t wi = 0; wi < sizeof(widths) / sizeof(widths[0]); wi++) {
		const int W = widths[wi];
		struct wtensor norm = { .name = "n", .type = QTYPE_F32, .ne0 = W, .ne1 = 1,
					.row_bytes = 4 * (size_t)W, .data = nw };
		float keep[2] = { in[5 * W], in[9 * W + W / 2] };
		in[5 * W] = INFINITY, in[9 * W + W / 2] = NAN;
		for (int R = 1; R <= RMAX; R++) {
			qdot_force_scalar(true);
			b->ops->rmsnorm(b, in, &norm, ref, W, R, 1e-6f);
			qdot_force_scalar(false);
			b->ops->rmsnorm(b, in, &norm, got, W, R, 1e-6f);
			for (int i = 0; i < R * W; i++)
				ck_assert_msg(!memcmp(&ref[i], &got[i], 4),
					      "width %d, %d rows: row %d value %d is %a, the scalar sum gives %a", W,
					      R, i / W, i % W, got[i], ref[i]);
		}
		in[5 * W] = keep[0], in[9 * W + W / 2] = keep[1];
	}
	backend_free(b);
	free(in), free(ref), free(got);
}
END_TEST

/* YaRN (gpt-oss's RoPE), written out from its definition in double: dim
 * pair i turns by theta_i = mix(pos * base^(-2i/d) * freq_scale, pos *
 * base^(-2i/d)) with ramp_mix = ext * (1 - clamp((i - c0) / (c1 - c0), 0,
 * 1)), and the pair is scaled by attn_factor * (1 + 0.1 ln(1/freq_scale)).
 * Off (ext_factor 0, attn_factor 0), the op must give the plain RoPE's
 * bits. */
START_TEST(rope_yarn)
{
	struct backend *b = make(1, 64, 4, 16);
	unsigned seed = 5;
	enum { hd = 64, n = 3, pos0 = 1000 };
	float v[n * hd], orig[n * hd], plain[n * hd];
	for (int i = 0; i < n * hd; i++)
		orig[i] = frand(&seed);
	for (int scalar = 0; scalar <= 1; scalar++) {
		qdot_force_scalar(scalar);
		struct rope_params rp = { .kind = ROPE_NEOX, .n_rot = hd, .base = 150000.0f,
					  .freq_scale = 1.0f / 32, .ext_factor = 1.0f,
					  .attn_factor = 1.0f };
		rope_yarn_corr_dims(hd, 4096, rp.base, 32.0f, 1.0f, rp.corr_dims);
		/* gpt-oss's figures (head_dim 64, base 150000, 4096): dims 8..18 */
		ck_assert(rp.corr_dims[0] == 8.0f && rp.corr_dims[1] == 18.0f);
		memcpy(v, orig, sizeof(v));
		b->ops->rope(b, v, n, 1, hd, pos0, &rp);
		const double mscale = 1 + 0.1 * log(32.0);
		for (int t = 0; t < n; t++)
			for (int i = 0; i < hd / 2; i++) {
				double extrap = (pos0 + t) * pow(150000.0, -2.0 * i / hd);
				double y = (i - 8.0) / (18.0 - 8.0);
				double mix = 1 - (y < 0 ? 0 : y > 1 ? 1 : y);
				double th = extrap / 32 * (1 - mix) + extrap * mix;
				double x0 = orig[t * hd + i], x1 = orig[t * hd + i + hd / 2];
				double w0 = (x0 * cos(th) - x1 * sin(th)) * mscale;
				double w1 = (x0 * sin(th) + x1 * cos(th)) * mscale;
				/* angles up to ~1000 rad in float: 1e-4 rad of slack */
				ck_assert_msg(fabs(v[t * hd + i] - w0) < 2e-3 && fabs(v[t * hd + i + hd / 2] - w1) < 2e-3,
					      "scalar %d pos %d pair %d: %g %g vs %g %g", scalar, pos0 + t, i,
					      v[t * hd + i], v[t * hd + i + hd / 2], w0, w1);
			}
		/* off: the same bits as a rope_params without the YaRN fields */
		struct rope_params off = { .kind = ROPE_NEOX, .n_rot = hd, .base = 150000.0f,
					   .freq_scale = 1.0f };
		memcpy(plain, orig, sizeof(plain));
		b->ops->rope(b, plain, n, 1, hd, pos0, &off);
		off.attn_factor = 1.0f;
		off.corr_dims[0] = 8.0f;
		off.corr_dims[1] = 18.0f;
		memcpy(v, orig, sizeof(v));
		b->ops->rope(b, v, n, 1, hd, pos0, &off);
		ck_assert(memcmp(v, plain, sizeof(v)) == 0);
	}
	qdot_force_scalar(false);
	backend_free(b);
}
END_TEST

/* gpt-oss's clamped SwiGLU, from its definition (alpha 1.702, limit 7):
 * the gate clamped above only, the up value on both sides, +1 on up. */
START_TEST(swiglu_oai_clamps)
{
	struct backend *b = make(1, 64, 4, 16);
	enum { N = 12 };
	const float alpha = 1.702f, limit = 7.0f;
	float g[N] = { -20.0f, -7.5f, -1.0f, -0.0f, 0.0f, 0.5f, 3.0f, 6.99f, 7.0f, 7.01f, 9.0f, 100.0f };
	float u[N] = { -100.0f, -8.0f, -7.0f, -1.0f, 0.0f, 0.25f, 2.0f, 6.5f, 7.0f, 7.5f, -9.0f, 3.0f };
	float g0[N];
	memcpy(g0, g, sizeof(g));
	b->ops->swiglu_oai(b, g, u, N, alpha, limit);
	for (int i = 0; i < N; i++) {
		double x = g0[i] < limit ? g0[i] : limit;
		double y = u[i] < -limit ? -limit : u[i] > limit ? limit : u[i];
		double want = x / (1 + exp(-(double)alpha * x)) * (y + 1);
		ck_assert_msg(fabs(g[i] - want) <= 2e-6 * (1 + fabs(want)), "g %g u %g: %g, want %g", g0[i],
			      u[i], g[i], want);
	}
	/* the clamps are exact: a gate past the limit acts as the limit */
	float a[2] = { 7.0f, 50.0f }, c[2] = { 9.0f, 7.0f };
	b->ops->swiglu_oai(b, a, c, 2, alpha, limit);
	ck_assert(a[0] == a[1]);
	backend_free(b);
}
END_TEST

/* --- attention ---------------------------------------------------------- */

/* Naive causal GQA attention in double over fp16-rounded q, k, v (as
 * floats: the backend reads k and v as halves). */
static void naive_attention(const float *q, const float *k, const float *v, double *out,
			    const struct attn_params *ap)
{
	const int hd = ap->head_dim, group = ap->n_head / ap->n_head_kv;
	for (int t = 0; t < ap->n_q; t++)
		for (int h = 0; h < ap->n_head; h++) {
			int pos = ap->pos0 + t;
			double sc[64], mx = -INFINITY, sum = 0;
			for (int p = 0; p <= pos; p++) {
				bool masked = ap->window > 0 && pos - p >= ap->window;
				double d = 0;
				for (int i = 0; i < hd; i++)
					d += (double)q[(t * ap->n_head + h) * hd + i] *
					     k[p * ap->kv_stride + (h / group) * hd + i];
				sc[p] = masked ? -INFINITY : d * ap->scale;
				if (sc[p] > mx)
					mx = sc[p];
			}
			/* a sink joins the softmax's max and sum, with no value */
			const double sink = ap->sinks ? ap->sinks[h] : -INFINITY;
			if (sink > mx)
				mx = sink;
			for (int p = 0; p <= pos; p++)
				sum += (sc[p] = exp(sc[p] - mx));
			sum += exp(sink - mx);
			for (int i = 0; i < hd; i++) {
				double o = 0;
				for (int p = 0; p <= pos; p++)
					o += sc[p] / sum * v[p * ap->kv_stride + (h / group) * hd + i];
				out[(t * ap->n_head + h) * hd + i] = o;
			}
		}
}

START_TEST(attention_causal_window_gqa)
{
	/* head_dim 8: whole SIMD vectors; 40: the dot's 8-value tail after
	 * one 32-value step */
	enum { N_HEAD = 4, N_KV = 2, MAX_HD = 40, N_POS = 20 };
	static float q[N_POS * N_HEAD * MAX_HD], k[N_POS * N_KV * MAX_HD], v[N_POS * N_KV * MAX_HD];
	static float out[N_POS * N_HEAD * MAX_HD];
	static uint16_t kh[N_POS * N_KV * MAX_HD], vh[N_POS * N_KV * MAX_HD];
	static double ref[N_POS * N_HEAD * MAX_HD];
	unsigned seed = 11;
	/* the cache holds halves; the reference reads the same values as floats */
	for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++)
		q[i] = fp16_to_fp32(fp32_to_fp16(frand(&seed) * 2));
	for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
		kh[i] = fp32_to_fp16(frand(&seed) * 2);
		vh[i] = fp32_to_fp16(frand(&seed));
		k[i] = fp16_to_fp32(kh[i]);
		v[i] = fp16_to_fp32(vh[i]);
	}
	/* sinks (gpt-oss): one logit per head, around the scores' range, so
	 * that they take a visible share of the probability */
	static const float sinks[N_HEAD] = { -1.5f, 0.25f, 2.0f, 6.0f };
	for (int with_sinks = 0; with_sinks <= 1; with_sinks++)
	for (int hd = 8; hd <= MAX_HD; hd += MAX_HD - 8)
		for (int scalar = 0; scalar <= 1; scalar++)
			for (int th = 1; th <= 3; th++)
				for (int window = 0; window <= 5; window += 5) {
					qdot_force_scalar(scalar);
					struct backend *b = make(th, 64, N_POS, N_POS);
					/* the last 6 queries of a 20-position sequence */
					struct attn_params ap = { .n_head = N_HEAD, .n_head_kv = N_KV,
								  .head_dim = hd, .pos0 = 14, .n_q = 6,
								  .window = window, .scale = 0.35f,
								  .kv_stride = N_KV * hd,
								  .sinks = with_sinks ? sinks : NULL };
					b->ops->attention(b, q, kh, vh, out, &ap);
					naive_attention(q, k, v, ref, &ap);
					for (int i = 0; i < 6 * N_HEAD * hd; i++)
						/* probabilities are rounded to fp16 (as
						 * llama.cpp does): 1e-3 relative */
						ck_assert_msg(fabs(out[i] - ref[i]) < 2e-3,
							      "sinks %d hd %d scalar %d threads %d window %d [%d]: %g vs %g",
							      with_sinks, hd, scalar, th, window, i, out[i], ref[i]);
					backend_free(b);
				}
	qdot_force_scalar(false);
}
END_TEST

/* The SIMD path scores up to four query heads that share a KV head at
 * once (each K row widened once for them).  Per head it must compute what
 * the one-head path (llama.cpp's order) computes, bit for bit: the same
 * attention with every query head given its own copy of the KV head
 * (n_head_kv = n_head, one head per task) is the reference.  Group sizes
 * 1..9 cover whole and partial four-head tasks; head_dim 8 and 40 (the
 * dot's tail); windows, sinks, one and three threads.  (The probabilities'
 * fp16 rounding hides most last-bit score differences, so the forward
 * test's llama.cpp logits are the sharper check of the scores.) */
START_TEST(attention_grouped_heads_bit_exact)
{
	enum { MAX_H = 9, HD = 40, N_POS = 20, N_Q = 7 };
	static float q[N_POS * MAX_H * HD], out[N_POS * MAX_H * HD], ref[N_POS * MAX_H * HD];
	static uint16_t kh[N_POS * HD], vh[N_POS * HD];
	static uint16_t kr[N_POS * MAX_H * HD], vr[N_POS * MAX_H * HD];
	static float sinks[MAX_H];
	unsigned seed = 29;
	for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++)
		q[i] = fp16_to_fp32(fp32_to_fp16(frand(&seed) * 2));
	for (size_t i = 0; i < N_POS * HD; i++) {
		kh[i] = fp32_to_fp16(frand(&seed) * 2);
		vh[i] = fp32_to_fp16(frand(&seed));
	}
	for (int h = 0; h < MAX_H; h++)
		sinks[h] = frand(&seed) * 3;
	qdot_force_scalar(false);
	for (int nh = 1; nh <= MAX_H; nh++)
		for (int hd = 8; hd <= HD; hd += HD - 8)
			for (int th = 1; th <= 3; th += 2)
				for (int window = 0; window <= 6; window += 6)
					for (int with_sinks = 0; with_sinks <= 1; with_sinks++) {
						/* the reference layout: head h's own copy of the KV row */
						for (int p = 0; p < N_POS; p++)
							for (int h = 0; h < nh; h++) {
								memcpy(kr + (p * nh + h) * hd, kh + p * hd, hd * 2);
								memcpy(vr + (p * nh + h) * hd, vh + p * hd, hd * 2);
							}
						struct backend *b = make(th, 64, N_POS, N_POS);
						struct attn_params ap = { .n_head = nh, .n_head_kv = 1, .head_dim = hd,
									  .pos0 = N_POS - N_Q, .n_q = N_Q,
									  .window = window, .scale = 0.3f,
									  .kv_stride = hd,
									  .sinks = with_sinks ? sinks : NULL };
						b->ops->attention(b, q, kh, vh, out, &ap);
						ap.n_head_kv = nh;
						ap.kv_stride = nh * hd;
						b->ops->attention(b, q, kr, vr, ref, &ap);
						for (int i = 0; i < N_Q * nh * hd; i++)
							ck_assert_msg(memcmp(&out[i], &ref[i], sizeof(float)) == 0,
								      "heads %d hd %d threads %d window %d sinks %d [%d]: %.9g vs %.9g",
								      nh, hd, th, window, with_sinks, i, out[i], ref[i]);
						backend_free(b);
					}
}
END_TEST

/* ggml_vec_dot_f16(n, k, q) in plain C: four accumulators of 8 lanes, lane
 * (i % 32) / 8, i % 8, one fused multiply-add per value in rising i, reduced
 * as GGML_F32x8_REDUCE - (s0+s2)+(s1+s3) lane-wise, the 128-bit halves
 * added, then (l0+l1)+(l2+l3) - and the n % 32 leftover added in double. */
static float ggml_dot_f16_ref(const uint16_t *k, const float *q, int n)
{
	float acc[4][8] = { { 0 } };
	const int n32 = n & ~31;
	for (int i = 0; i < n32; i++)
		acc[(i % 32) / 8][i % 8] = fmaf(fp16_to_fp32(k[i]), q[i], acc[(i % 32) / 8][i % 8]);
	float l[8], h[4];
	for (int x = 0; x < 8; x++)
		l[x] = (acc[0][x] + acc[2][x]) + (acc[1][x] + acc[3][x]);
	for (int x = 0; x < 4; x++)
		h[x] = l[x] + l[x + 4];
	double sum = n32 ? (double)((h[0] + h[1]) + (h[2] + h[3])) : 0.0;
	for (int i = n32; i < n; i++)
		sum += (double)(fp16_to_fp32(k[i]) * q[i]);
	return (float)sum;
}

/* One output value of the probabilities' product with V, as ggml sums it
 * over the cache: position p into partial sum p % 32 (lane p % 8 of
 * accumulator (p % 32) / 8), the 32 reduced as GGML_F32x8_REDUCE. */
static float ggml_pv_ref(const uint16_t *v, int64_t stride, int first, int pos, const float *w, int i)
{
	float part[32] = { 0 };
	for (int p = first; p <= pos; p++)
		part[p % 32] = fmaf(fp16_to_fp32(v[(int64_t)p * stride + i]), w[p - first], part[p % 32]);
	float l[8], h[4];
	for (int x = 0; x < 8; x++)
		l[x] = (part[x] + part[16 + x]) + (part[8 + x] + part[24 + x]);
	for (int x = 0; x < 4; x++)
		h[x] = l[x] + l[x + 4];
	return (h[0] + h[1]) + (h[2] + h[3]);
}

/* The AVX2 attention kernels tile heads x positions (scores) and keep
 * partial sums in registers across positions 32 apart (values); each
 * output must still be ggml's one-score, one-value order bit for bit:
 * held against that order written out in plain C above, for 1-4 heads,
 * head_dim 8 (all leftover), 40 (a 32-group and a leftover), 72 and 256
 * (Gemma 3), position ranges shorter and several times longer than the 32
 * partial sums, starting at positions that are not multiples of 32 or of
 * the 3-position blocks, and a KV stride wider than the head. */
START_TEST(attention_avx2_kernels_in_ggml_order)
{
	if (!qdot_simd_active()) {
		fprintf(stderr, "SKIP attention kernels: no AVX2+FMA+F16C (or SMOKE_NO_SIMD)\n");
		return;
	}
	enum { HMAX = ATTN_AVX2_HEADS, HD = 256, STRIDE = HD + 24, N_POS = 211 };
	static uint16_t kv[2][N_POS * STRIDE];
	static float q[HMAX][HD], w[HMAX][N_POS], sc[HMAX][N_POS], out[HMAX][HD];
	unsigned seed = 61;
	for (int x = 0; x < 2; x++)
		for (int i = 0; i < N_POS * STRIDE; i++)
			kv[x][i] = fp32_to_fp16(frand(&seed) * 3);
	for (int g = 0; g < HMAX; g++) {
		for (int i = 0; i < HD; i++)
			q[g][i] = fp16_to_fp32(fp32_to_fp16(frand(&seed) * 2));
		for (int p = 0; p < N_POS; p++)
			w[g][p] = fp16_to_fp32(fp32_to_fp16(frand(&seed) + 0.5f));
	}
	static const int hds[] = { 8, 40, 72, 256 };
	static const int ranges[][2] = { { 0, 0 }, { 0, 4 }, { 5, 36 }, { 0, 96 }, { 13, 210 }, { 100, 163 } };
	int checked = 0;
	for (int nh = 1; nh <= HMAX; nh++)
		for (size_t d = 0; d < sizeof(hds) / sizeof(hds[0]); d++)
			for (size_t r = 0; r < sizeof(ranges) / sizeof(ranges[0]); r++) {
				const int hd = hds[d], first = ranges[r][0], pos = ranges[r][1];
				const float *qh[HMAX], *wg[HMAX];
				float *sg[HMAX], *og[HMAX];
				for (int g = 0; g < nh; g++) {
					qh[g] = q[g];
					wg[g] = w[g];
					sg[g] = sc[g];
					og[g] = out[g];
				}
				attn_avx2_scores(kv[0], STRIDE, first, pos, qh, nh, hd, 0.125f, sg);
				attn_avx2_values(kv[1], STRIDE, first, pos, wg, nh, hd, og);
				for (int g = 0; g < nh; g++) {
					for (int p = first; p <= pos; p++, checked++) {
						const float ref = ggml_dot_f16_ref(kv[0] + (int64_t)p * STRIDE, q[g], hd) * 0.125f;
						ck_assert_msg(memcmp(&sc[g][p - first], &ref, 4) == 0,
							      "score heads %d hd %d [%d,%d] head %d pos %d: %.9g vs %.9g", nh,
							      hd, first, pos, g, p, sc[g][p - first], ref);
					}
					for (int i = 0; i < hd; i++, checked++) {
						const float ref = ggml_pv_ref(kv[1], STRIDE, first, pos, w[g], i);
						ck_assert_msg(memcmp(&out[g][i], &ref, 4) == 0,
							      "value heads %d hd %d [%d,%d] head %d [%d]: %.9g vs %.9g", nh,
							      hd, first, pos, g, i, out[g][i], ref);
					}
				}
			}
	ck_assert_int_gt(checked, 10000);
}
END_TEST

/* attentions (several sequences as one job): every output equals the
 * attention op's for its call bit for bit - calls of different positions,
 * query rows (decode rows of one and a prefill), windows and sinks, each
 * with its own KV cache, on 1-3 threads and both kernel paths - and the
 * pool meets once for all of them. */
START_TEST(attentions_equal_separate_attention)
{
	enum { NC = 5, NH = 4, NKV = 2, HD = 16, N_POS = 24 };
	static const int n_q[NC] = { 1, 1, 6, 1, 3 }, pos0[NC] = { 0, 17, 9, 23, 4 };
	static const int window[NC] = { 0, 5, 0, 0, 3 };
	static float q[NC][N_POS * NH * HD], out[NC][N_POS * NH * HD], ref[NC][N_POS * NH * HD];
	static uint16_t kc[NC][N_POS * NKV * HD], vc[NC][N_POS * NKV * HD];
	static float sinks[NH];
	unsigned seed = 31;
	for (int c = 0; c < NC; c++) {
		for (int i = 0; i < N_POS * NH * HD; i++)
			q[c][i] = fp16_to_fp32(fp32_to_fp16(frand(&seed) * 2));
		for (int i = 0; i < N_POS * NKV * HD; i++) {
			kc[c][i] = fp32_to_fp16(frand(&seed) * 2);
			vc[c][i] = fp32_to_fp16(frand(&seed));
		}
	}
	for (int h = 0; h < NH; h++)
		sinks[h] = frand(&seed) * 3;
	for (int scalar = 0; scalar <= 1; scalar++)
		for (int th = 1; th <= 3; th++) {
			qdot_force_scalar(scalar);
			struct backend *b = make(th, 64, N_POS, N_POS);
			ck_assert_ptr_nonnull(b->ops->attentions);
			struct attn_call calls[NC];
			for (int c = 0; c < NC; c++) {
				calls[c] = (struct attn_call){ .q = q[c], .k = kc[c], .v = vc[c], .out = out[c],
					.ap = { .n_head = NH, .n_head_kv = NKV, .head_dim = HD, .pos0 = pos0[c],
						.n_q = n_q[c], .window = window[c], .scale = 0.25f,
						.kv_stride = NKV * HD, .sinks = c == 3 ? sinks : NULL } };
				memset(out[c], 0, sizeof(out[c]));
				b->ops->attention(b, q[c], kc[c], vc[c], ref[c], &calls[c].ap);
			}
			const unsigned long jobs = tpool_jobs(cpu_of(b)->pool);
			b->ops->attentions(b, calls, NC);
			ck_assert_uint_eq(tpool_jobs(cpu_of(b)->pool) - jobs, 1);
			for (int c = 0; c < NC; c++)
				for (int i = 0; i < n_q[c] * NH * HD; i++)
					ck_assert_msg(memcmp(&out[c][i], &ref[c][i], sizeof(float)) == 0,
						      "scalar %d threads %d call %d [%d]: %.9g vs %.9g", scalar, th, c, i,
						      out[c][i], ref[c][i]);
			backend_free(b);
		}
	qdot_force_scalar(false);
}
END_TEST

/* SMOKE_CPU, the forced kernel choice: the backend starts with the
 * choices this CPU and build can honour and refuses the rest with a message
 * that names the variable and what is missing.  (The choice of kernels
 * itself is read once per process; SMOKE_NO_SIMD's test covers that.) */
START_TEST(smoke_cpu_choice)
{
	struct backend_limits lim = { .max_cols = 64, .max_rows = 4, .max_ctx = 16,
				      .max_heads = 16, .n_threads = 1 };
	__builtin_cpu_init();
	const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
			  __builtin_cpu_supports("f16c");
	const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
			    __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
			    __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
	static const struct {
		const char *value;
		/* 1 accepted, 0 refused, -1 accepted iff the CPU has AVX2, -2
		 * iff it has AVX-512 F/BW/VL/DQ and VNNI */
		int ok;
		const char *says;
	} cases[] = {
		{ "", 1, NULL },       { "auto", 1, NULL },
		{ "scalar", 1, NULL }, { "avx2", -1, "SMOKE_CPU=avx2: this CPU lacks AVX2" },
		{ "avx512", -2, "SMOKE_CPU=avx512: this CPU lacks one of AVX-512 F, BW, VL, DQ and VNNI" },
		{ "AVX2", 0, "SMOKE_CPU must be scalar, avx2 or avx512 (or unset), not 'AVX2'" },
		{ "neon", 0, "not 'neon'" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		setenv("SMOKE_CPU", cases[i].value, 1);
		struct backend *b = NULL;
		struct smk_err err = { 0 };
		const int rc = backend_cpu_new(&b, &lim, &err);
		const bool ok = cases[i].ok == 1 || (cases[i].ok == -1 && avx2) ||
				(cases[i].ok == -2 && avx512);
		ck_assert_msg((rc == 0) == ok, "SMOKE_CPU=%s: rc %d (%s)", cases[i].value, rc, err.msg);
		if (rc == 0) {
			backend_free(b);
			continue;
		}
		ck_assert_int_eq(rc, -EINVAL);
		ck_assert_msg(strstr(err.msg, cases[i].says), "SMOKE_CPU=%s: message '%s'",
			      cases[i].value, err.msg);
	}
	unsetenv("SMOKE_CPU");
	/* SMOKE_EXACT: 0, 1 or unset; anything else is refused, named */
	static const struct {
		const char *value;
		bool ok;
	} exact[] = { { "", true }, { "0", true }, { "1", true }, { "yes", false }, { "2", false } };
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
		setenv("SMOKE_EXACT", exact[i].value, 1);
		struct backend *b = NULL;
		struct smk_err err = { 0 };
		const int rc = backend_cpu_new(&b, &lim, &err);
		ck_assert_msg((rc == 0) == exact[i].ok, "SMOKE_EXACT=%s: rc %d (%s)", exact[i].value, rc, err.msg);
		if (rc == 0)
			backend_free(b);
		else
			ck_assert_msg(strstr(err.msg, "SMOKE_EXACT must be 0 or 1") && strstr(err.msg, exact[i].value),
				      "SMOKE_EXACT=%s: message '%s'", exact[i].value, err.msg);
	}
	unsetenv("SMOKE_EXACT");
}
END_TEST

/* store_fp16 (the KV cache's writes) gives fp32_to_fp16's bits on the
 * SIMD path (F16C, 8 at a time, then a tail) and the scalar one, for
 * ordinary values and the edges: ties, subnormals, overflow, inf, NaN. */
START_TEST(store_fp16_bits)
{
	enum { N = 1003 }; /* not a multiple of 8 */
	static float x[N];
	static uint16_t got[N + 1];
	unsigned seed = 3;
	for (int i = 0; i < N; i++)
		x[i] = frand(&seed) * 70000.0f * (i % 3 ? 1.0f : 1e-4f);
	const uint32_t edge[] = {
		0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00001u,
		0x7f800001u,             /* signalling NaN: quieted, payload kept */
		0x477fefffu, 0x477ff000u, /* just below / at 65520: 65504 / inf */
		0x33000000u, 0x33000001u, /* 2^-25 (tie to 0), just above (smallest subnormal) */
		0x387fc000u,             /* largest subnormal's neighbourhood */
		0x3f801000u, 0x3f803000u, /* 1 + half an ulp: tie to even down, up */
		0x00000001u,             /* fp32 subnormal */
	};
	for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++)
		x[N - 1 - i] = fp32_from_bits(edge[i]);
	for (int scalar = 0; scalar <= 1; scalar++) {
		qdot_force_scalar(scalar);
		struct backend *b = make(1, 64, 1, 16);
		got[N] = 0xabcd;
		b->ops->store_fp16(b, got, x, N);
		for (int i = 0; i < N; i++)
			ck_assert_msg(got[i] == fp32_to_fp16(x[i]), "scalar %d [%d] %a: %#x vs %#x",
				      scalar, i, (double)x[i], got[i], fp32_to_fp16(x[i]));
		ck_assert_uint_eq(got[N], 0xabcd); /* writes n halves, no more */
		backend_free(b);
	}
	qdot_force_scalar(false);
}
END_TEST

/* The branch-free half -> float of the attention's scalar path (CPUs
 * without F16C) equals fp16_to_fp32 on all 65536 halves, bit for bit. */
START_TEST(h2f_is_exact)
{
	for (uint32_t h = 0; h < 65536; h++)
		ck_assert_msg(fp32_to_bits(cpu_h2f((uint16_t)h)) == fp32_to_bits(fp16_to_fp32((uint16_t)h)),
			      "%#x: %#x vs %#x", h, fp32_to_bits(cpu_h2f((uint16_t)h)),
			      fp32_to_bits(fp16_to_fp32((uint16_t)h)));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cpu_backend");
	TCase *tc = tcase_create("ops");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, pool_runs_every_share_once);
	tcase_add_test(tc, matmul_matches_dequantised_product);
	tcase_add_test(tc, matmul_rejects_out_of_limits);
	tcase_add_test(tc, matmuls_equal_separate_matmuls);
	tcase_add_test(tc, elementwise_split_is_exact);
	tcase_add_test(tc, rmsnorm_rope_gelu_silu);
	tcase_add_test(tc, rmsnorm_simd_equals_scalar);
	tcase_add_test(tc, fp16_rounding_simd_equals_scalar);
	tcase_add_test(tc, attention_causal_window_gqa);
	tcase_add_test(tc, attention_grouped_heads_bit_exact);
	tcase_add_test(tc, attentions_equal_separate_attention);
	tcase_add_test(tc, attention_avx2_kernels_in_ggml_order);
	tcase_add_test(tc, smoke_cpu_choice);
	tcase_add_test(tc, rope_yarn);
	tcase_add_test(tc, swiglu_oai_clamps);
	tcase_add_test(tc, store_fp16_bits);
	tcase_add_test(tc, h2f_is_exact);
	suite_add_tcase(s, tc);
	return ck_run(s);
}
