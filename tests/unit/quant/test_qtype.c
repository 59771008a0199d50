/* qtype + qdot tests.
 *
 * Independent references:
 *   - tests/fixtures/qtype/<type>.bin, made by scripts/make-qtype-fixtures.py
 *     with the gguf Python package (its dequantisation) and a numpy
 *     re-implementation of llama.cpp's activation quantisers (expected
 *     prepared bytes and float64 reference dots);
 *   - the CPU's F16C instructions and arithmetic written out here for the
 *     fp16/bf16 conversions;
 *   - the scalar kernels for the SIMD ones (the scalar ones are themselves
 *     checked against the fixtures).
 *
 * Tolerance for dot products: 1e-5 of S = sum_i |w_i * a_i| (w, a the
 * decoded weight and activation values).  All kernels compute each block's
 * integer sum exactly; they differ only in how per-block float products are
 * rounded and added (scalar: double; AVX2: eight float lanes with FMA; the
 * fixtures: float64 over the float32-rounded decoded weights).  Adding m
 * terms in float errs by at most about m * 2^-24 of the sum of their
 * magnitudes, and no row below puts more than 128 terms in one float lane
 * (128 * 6e-8 = 7.6e-6 < 1e-5).  A tolerance relative to the dot itself would
 * be meaningless: random rows cancel, so |dot| can be far below S.
 */
#include <check.h>

#include "ck_main.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/cpu/qdot.h"
#include "quant/qtype.h"
#include "util/fp16.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

#define DOT_TOL 1e-5

/* The types with decoders and dot products, and where their fp16 scale
 * fields sit in a block (for making random valid blocks; MXFP4's one-byte
 * exponent is set by random_row itself). */
static const struct {
	uint32_t id;
	const char *file;
	int scale_off[2];
	int n_scales;
} types[] = {
	{ QTYPE_F32, "f32", { 0 }, 0 },
	{ QTYPE_F16, "f16", { 0 }, 0 },
	{ QTYPE_BF16, "bf16", { 0 }, 0 },
	{ QTYPE_Q4_0, "q4_0", { 0 }, 1 },
	{ QTYPE_Q4_1, "q4_1", { 0, 2 }, 2 },
	{ QTYPE_Q5_0, "q5_0", { 0 }, 1 },
	{ QTYPE_Q5_1, "q5_1", { 0, 2 }, 2 },
	{ QTYPE_Q8_0, "q8_0", { 0 }, 1 },
	{ QTYPE_MXFP4, "mxfp4", { 0 }, 0 }, /* E8M0 byte: random_row */
	{ QTYPE_Q2_K, "q2_k", { 80, 82 }, 2 },
	{ QTYPE_Q3_K, "q3_k", { 108 }, 1 },
	{ QTYPE_Q4_K, "q4_k", { 0, 2 }, 2 },
	{ QTYPE_Q5_K, "q5_k", { 0, 2 }, 2 },
	{ QTYPE_Q6_K, "q6_k", { 208 }, 1 },
};
#define N_TYPES ((int)(sizeof(types) / sizeof(types[0])))

/* ---- small helpers ------------------------------------------------------ */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64*: deterministic, good enough for test data */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static double rnd_unit(void) /* [0, 1) */
{
	return (double)(rnd() >> 11) * (1.0 / 9007199254740992.0);
}

static float rnd_normal(void)
{
	double u = rnd_unit() + 1e-12, v = rnd_unit();
	return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	ck_assert_ptr_nonnull(p);
	return p;
}

/* Whether qdot should hand out SIMD kernels here: the CPU has them and the
 * suite is not being run with SMOKE_NO_SIMD=1 (which tests the scalar
 * path end to end). */
static bool simd_expected(void)
{
	const char *env = getenv("SMOKE_NO_SIMD");
	if (env && *env && strcmp(env, "0") != 0)
		return false;
#if HAVE_X86
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
	       __builtin_cpu_supports("f16c");
#else
	return false;
#endif
}

/* Decode a prepared activation row to doubles, written out here from the
 * ggml block layouts (not with qtype's decoders). */
static void decode_act(uint32_t act_type, const uint8_t *act, const float *x, int64_t n,
		       double *out)
{
	if (act_type == QTYPE_F32) {
		for (int64_t i = 0; i < n; i++)
			out[i] = x[i];
	} else if (act_type == QTYPE_Q8_0 || act_type == QTYPE_Q8_1) {
		/* Q8_1 is Q8_0 with a second fp16 (the block sum) before qs */
		const int qoff = act_type == QTYPE_Q8_0 ? 2 : 4;
		for (int64_t b = 0; b < n / 32; b++, act += qoff + 32) {
			uint16_t h;
			memcpy(&h, act, 2);
			double d = fp16_to_fp32(h);
			for (int j = 0; j < 32; j++)
				out[32 * b + j] = d * (int8_t)act[qoff + j];
		}
	} else {
		ck_assert_uint_eq(act_type, QTYPE_Q8_K);
		for (int64_t b = 0; b < n / 256; b++, act += 292) {
			float d;
			memcpy(&d, act, 4);
			for (int j = 0; j < 256; j++)
				out[256 * b + j] = (double)d * (int8_t)act[4 + j];
		}
	}
}

/* ---- fixtures ----------------------------------------------------------- */

struct fixture {
	uint32_t type, rows, n, row_bytes, act_type, act_bytes;
	uint8_t *raw;
	float *deq, *x;
	uint8_t *act;
	double *dot_q, *dot_f;
};

static void take(const uint8_t *buf, size_t len, size_t *pos, void *dst, size_t n,
		 const char *path)
{
	ck_assert_msg(n <= len && *pos <= len - n, "%s: truncated fixture", path);
	memcpy(dst, buf + *pos, n);
	*pos += n;
}

static void fixture_load(struct fixture *f, const char *name)
{
	const char *dir = getenv("SMOKE_FIXTURES");
	ck_assert_msg(dir, "SMOKE_FIXTURES is not set (run through meson test)");
	char path[4096];
	snprintf(path, sizeof(path), "%s/qtype/%s.bin", dir, name);
	FILE *fp = fopen(path, "rb");
	ck_assert_msg(fp, "%s: cannot open (run scripts/make-qtype-fixtures.py)", path);
	ck_assert_int_eq(fseek(fp, 0, SEEK_END), 0);
	long len = ftell(fp);
	ck_assert_msg(len > 32 && len < (1 << 24), "%s: bad size %ld", path, len);
	rewind(fp);
	uint8_t *buf = xmalloc((size_t)len);
	ck_assert_uint_eq(fread(buf, 1, (size_t)len, fp), (size_t)len);
	fclose(fp);

	size_t pos = 0;
	char magic[8];
	take(buf, (size_t)len, &pos, magic, 8, path);
	ck_assert_msg(memcmp(magic, "SMKQTF1", 8) == 0, "%s: bad magic", path);
	uint32_t h[6];
	take(buf, (size_t)len, &pos, h, sizeof(h), path);
	f->type = h[0], f->rows = h[1], f->n = h[2];
	f->row_bytes = h[3], f->act_type = h[4], f->act_bytes = h[5];
	ck_assert_msg(f->rows >= 1 && f->rows <= 64 && f->n >= 1 && f->n <= 65536 &&
		      f->row_bytes <= 4 * f->n && f->act_bytes <= 4 * f->n,
		      "%s: implausible header", path);
	size_t nf = (size_t)f->rows * f->n;
	f->raw = xmalloc((size_t)f->rows * f->row_bytes);
	f->deq = xmalloc(nf * sizeof(float));
	f->x = xmalloc(f->n * sizeof(float));
	f->act = xmalloc(f->act_bytes);
	f->dot_q = xmalloc(f->rows * sizeof(double));
	f->dot_f = xmalloc(f->rows * sizeof(double));
	take(buf, (size_t)len, &pos, f->raw, (size_t)f->rows * f->row_bytes, path);
	take(buf, (size_t)len, &pos, f->deq, nf * sizeof(float), path);
	take(buf, (size_t)len, &pos, f->x, f->n * sizeof(float), path);
	take(buf, (size_t)len, &pos, f->act, f->act_bytes, path);
	take(buf, (size_t)len, &pos, f->dot_q, f->rows * sizeof(double), path);
	take(buf, (size_t)len, &pos, f->dot_f, f->rows * sizeof(double), path);
	ck_assert_msg(pos == (size_t)len, "%s: %zu trailing bytes", path, (size_t)len - pos);
	free(buf);
}

static void fixture_free(struct fixture *f)
{
	free(f->raw), free(f->deq), free(f->x), free(f->act), free(f->dot_q), free(f->dot_f);
}

/* ---- type table --------------------------------------------------------- */

START_TEST(info_table_matches_ggml)
{
	static const struct {
		uint32_t id;
		const char *name;
		uint32_t elems, bytes;
	} want[] = {
		{ 0, "F32", 1, 4 },       { 1, "F16", 1, 2 },      { 2, "Q4_0", 32, 18 },
		{ 3, "Q4_1", 32, 20 },    { 6, "Q5_0", 32, 22 },   { 7, "Q5_1", 32, 24 },
		{ 8, "Q8_0", 32, 34 },    { 9, "Q8_1", 32, 36 },   { 10, "Q2_K", 256, 84 },
		{ 11, "Q3_K", 256, 110 }, { 12, "Q4_K", 256, 144 }, { 13, "Q5_K", 256, 176 },
		{ 14, "Q6_K", 256, 210 }, { 15, "Q8_K", 256, 292 }, { 30, "BF16", 1, 2 },
		{ 39, "MXFP4", 32, 17 },
	};
	int known = 0;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct qtype_info *t = qtype_info(want[i].id);
		ck_assert_msg(t, "id %u missing", want[i].id);
		ck_assert_str_eq(t->name, want[i].name);
		ck_assert_str_eq(qtype_name(want[i].id), want[i].name);
		ck_assert_uint_eq(t->block_elems, want[i].elems);
		ck_assert_uint_eq(t->block_bytes, want[i].bytes);
		known++;
	}
	int found = 0;
	for (uint32_t id = 0; id < 64; id++)
		found += qtype_info(id) != NULL;
	ck_assert_int_eq(found, known);
	const uint32_t unknown[] = { 4, 5, 16, 29, 31, 38, 40, 1000, UINT32_MAX };
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		ck_assert_ptr_null(qtype_info(unknown[i]));
		ck_assert_str_eq(qtype_name(unknown[i]), "unknown");
		ck_assert(!qtype_can_compute(unknown[i]));
	}
	/* activation-only formats are sized but not computable */
	ck_assert(!qtype_can_compute(QTYPE_Q8_1));
	ck_assert(!qtype_can_compute(QTYPE_Q8_K));
	for (int i = 0; i < N_TYPES; i++)
		ck_assert_msg(qtype_can_compute(types[i].id), "%s", types[i].file);
}
END_TEST

START_TEST(row_bytes_accepts_and_rejects)
{
	struct smk_err err = { 0 };
	uint64_t out = 0;
	ck_assert_int_eq(qtype_row_bytes(QTYPE_Q4_K, 512, &out, &err), 0);
	ck_assert_uint_eq(out, 288);
	ck_assert_int_eq(qtype_row_bytes(QTYPE_Q8_0, 640, &out, &err), 0);
	ck_assert_uint_eq(out, 680);
	ck_assert_int_eq(qtype_row_bytes(QTYPE_F32, 7, &out, NULL), 0);
	ck_assert_uint_eq(out, 28);
	ck_assert_int_eq(qtype_row_bytes(QTYPE_BF16, 0, &out, NULL), 0);
	ck_assert_uint_eq(out, 0);
	/* the largest row that fits: 2^64/292 blocks of Q8_K would not */
	ck_assert_int_eq(qtype_row_bytes(QTYPE_F16, UINT64_MAX / 2, &out, NULL), 0);
	ck_assert_uint_eq(out, UINT64_MAX - 1);

	smk_err_clear(&err);
	ck_assert_int_eq(qtype_row_bytes(QTYPE_Q4_K, 640, &out, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "multiple"));
	ck_assert_ptr_nonnull(strstr(err.msg, "Q4_K"));
	ck_assert_int_eq(qtype_row_bytes(QTYPE_Q4_0, 33, &out, NULL), -EINVAL);
	smk_err_clear(&err);
	ck_assert_int_eq(qtype_row_bytes(QTYPE_Q8_K, (UINT64_MAX / 256) * 256, &out, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "overflow"));
	ck_assert_int_eq(qtype_row_bytes(QTYPE_F32, UINT64_MAX / 4 + 1, &out, NULL), -EINVAL);
	smk_err_clear(&err);
	ck_assert_int_eq(qtype_row_bytes(4, 32, &out, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "unknown"));
	ck_assert_int_eq(qtype_row_bytes(UINT32_MAX, 32, &out, NULL), -EINVAL);

	float dst[32];
	uint8_t src[64] = { 0 };
	ck_assert_int_eq(qtype_dequant_row(QTYPE_Q8_0, src, dst, 33), -EINVAL);
	ck_assert_int_eq(qtype_dequant_row(QTYPE_Q8_K, src, dst, 256), -EINVAL);
	ck_assert_int_eq(qtype_dequant_row(5, src, dst, 32), -EINVAL);
	ck_assert_int_eq(qtype_dequant_row(QTYPE_Q8_0, src, dst, 32), 0);
}
END_TEST

START_TEST(act_formats)
{
	for (uint32_t id = 0; id < 64; id++) {
		bool c = qtype_can_compute(id);
		ck_assert_msg(c == (qdot_get_scalar(id) != NULL), "id %u", id);
		ck_assert_msg(c == (qdot_get(id) != NULL), "id %u", id);
		ck_assert_msg(c == (qdot_act_type(id) != UINT32_MAX), "id %u", id);
		if (!c)
			ck_assert_uint_eq(qdot_act_row_bytes(id, 256), 0);
	}
	ck_assert_uint_eq(qdot_act_type(QTYPE_Q5_0), QTYPE_Q8_0);
	ck_assert_uint_eq(qdot_act_type(QTYPE_MXFP4), QTYPE_Q8_0); /* ggml's vec_dot_type */
	ck_assert_uint_eq(qdot_act_row_bytes(QTYPE_MXFP4, 96), 3 * 34);
	ck_assert_uint_eq(qdot_act_type(QTYPE_Q4_1), QTYPE_Q8_1);
	ck_assert_uint_eq(qdot_act_type(QTYPE_Q5_1), QTYPE_Q8_1);
	ck_assert_uint_eq(qdot_act_row_bytes(QTYPE_Q5_1, 64), 72);
	ck_assert_uint_eq(qdot_act_type(QTYPE_Q6_K), QTYPE_Q8_K);
	ck_assert_uint_eq(qdot_act_type(QTYPE_Q2_K), QTYPE_Q8_K);
	ck_assert_uint_eq(qdot_act_type(QTYPE_BF16), QTYPE_F32);
	ck_assert_uint_eq(qdot_act_row_bytes(QTYPE_Q4_0, 64), 68);
	ck_assert_uint_eq(qdot_act_row_bytes(QTYPE_Q4_K, 512), 584);
	ck_assert_uint_eq(qdot_act_row_bytes(QTYPE_F16, 10), 40);
	/* rounded up to whole activation blocks (buffer sizing) */
	ck_assert_uint_eq(qdot_act_row_bytes(QTYPE_Q6_K, 640), 3 * 292);
	ck_assert_uint_eq(qdot_act_row_bytes(QTYPE_Q8_0, 33), 2 * 34);
	ck_assert_uint_eq(qdot_act_row_bytes(QTYPE_Q8_0, -32), 0);
}
END_TEST

/* ---- fixtures: decode, prepare, dot ------------------------------------- */

START_TEST(dequant_matches_gguf)
{
	struct fixture f;
	fixture_load(&f, types[_i].file);
	ck_assert_uint_eq(f.type, types[_i].id);
	uint64_t rb;
	ck_assert_int_eq(qtype_row_bytes(f.type, f.n, &rb, NULL), 0);
	ck_assert_uint_eq(rb, f.row_bytes);
	const struct qtype_info *t = qtype_info(f.type);
	float *got = xmalloc(f.n * sizeof(float));
	for (uint32_t r = 0; r < f.rows; r++) {
		const uint8_t *src = f.raw + (size_t)r * f.row_bytes;
		const float *want = f.deq + (size_t)r * f.n;
		/* three paths, all bit-exact: the table's decoder, the checked
		 * wrapper, and qdot's (SIMD where it has one) fast path */
		for (int path = 0; path < 3; path++) {
			memset(got, 0xa5, f.n * sizeof(float));
			if (path == 0)
				t->dequant_row(src, got, f.n);
			else if (path == 1)
				ck_assert_int_eq(qtype_dequant_row(f.type, src, got, f.n), 0);
			else
				qdot_dequant_row(f.type, src, got, f.n);
			for (uint32_t i = 0; i < f.n; i++)
				ck_assert_msg(fp32_to_bits(got[i]) == fp32_to_bits(want[i]),
					      "%s row %u [%u] path %d: %.9g, gguf %.9g", t->name, r, i,
					      path, (double)got[i], (double)want[i]);
		}
	}
	free(got);
	fixture_free(&f);
}
END_TEST

START_TEST(prepare_matches_numpy)
{
	struct fixture f;
	fixture_load(&f, types[_i].file);
	ck_assert_uint_eq(qdot_act_type(f.type), f.act_type);
	size_t ab = qdot_act_row_bytes(f.type, f.n);
	uint8_t *act = xmalloc(ab + 1);
	for (int scalar = 0; scalar < 2; scalar++) {
		qdot_force_scalar(scalar);
		/* misaligned on purpose: prepare must not assume alignment */
		memset(act, 0x5a, ab + 1);
		qdot_prepare(f.type, f.x, act + 1, f.n);
		if (f.act_type == QTYPE_F32) {
			ck_assert_uint_eq(f.act_bytes, 0);
			ck_assert_uint_eq(ab, 4 * (size_t)f.n);
			ck_assert(memcmp(act + 1, f.x, ab) == 0);
			continue;
		}
		ck_assert_uint_eq(ab, f.act_bytes);
		size_t blk = qtype_info(f.act_type)->block_bytes;
		for (size_t i = 0; i < ab; i++)
			ck_assert_msg(act[1 + i] == f.act[i],
				      "%s: prepared byte %zu (block %zu, offset %zu): %u, numpy %u",
				      qtype_name(f.type), i, i / blk, i % blk, act[1 + i], f.act[i]);
	}
	qdot_force_scalar(false);
	free(act);
	fixture_free(&f);
}
END_TEST

/* The AVX2 Q8_0/Q8_1/Q8_K quantisers give the scalar ones' bytes (qdot.c): rows
 * of random values over many scales, with the values that take the edge
 * paths - zeros and -0, all-zero blocks, a block's maximum repeated and of
 * either sign, ties of the rounding (x * id = k + 0.5), subnormals, values
 * near FLT_MAX, infinities and NaNs. */
START_TEST(prepare_simd_equals_scalar)
{
	if (!simd_expected()) {
		fprintf(stderr, "prepare_simd_equals_scalar: no AVX2 here (or SMOKE_NO_SIMD), skipped\n");
		return;
	}
	/* Q8_0, Q8_1 and Q8_K rows */
	static const uint32_t wtypes[] = { QTYPE_Q8_0, QTYPE_Q4_1, QTYPE_Q4_K };
	enum { N = 32 * 64 };
	float *x = xmalloc(N * sizeof(float));
	rng_state = 0x5851f42d4c957f2dULL;
	for (size_t w = 0; w < sizeof(wtypes) / sizeof(wtypes[0]); w++) {
		const size_t ab = qdot_act_row_bytes(wtypes[w], N);
		uint8_t *a_simd = xmalloc(ab), *a_scalar = xmalloc(ab);
		for (int rep = 0; rep < 200; rep++) {
			const float xs = (float)exp(rnd_unit() * 80.0 - 40.0);
			for (int i = 0; i < N; i++) {
				const uint32_t r = rnd() % 64;
				const float v = rnd_normal() * xs;
				x[i] = r == 0 ? 0.0f : r == 1 ? -0.0f : r == 2 ? (float)(rnd() % 255 - 127) * 0.5f
				     : r == 3 ? 1e-40f * (float)(rnd() % 7) : r == 4 && rep % 8 == 0 ? 3e38f : v;
			}
			if (rep % 5 == 0)
				memset(x + 32 * (rnd() % 64), 0, 32 * sizeof(float));
			if (rep % 7 == 0) { /* the block maximum twice, with both signs */
				const int b = 32 * (int)(rnd() % 64);
				x[b + 3] = 10.0f, x[b + 9] = -10.0f, x[b + 20] = 10.0f;
			}
			if (rep % 3 == 0) { /* a 256-block's maximum twice, either sign first */
				const int b = 256 * (int)(rnd() % (N / 256)), a = (int)(rnd() % 128);
				const float s1 = rep % 2 ? 1000.0f : -1000.0f;
				for (int i = 0; i < 256; i++)
					x[b + i] = rnd_normal();
				x[b + a] = s1, x[b + a + 1 + (int)(rnd() % 127)] = -s1;
			}
			if (rep % 11 == 0) {
				x[rnd() % N] = INFINITY;
				x[rnd() % N] = -INFINITY;
			}
			if (rep % 13 == 0)
				x[rnd() % N] = NAN;
			qdot_force_scalar(false);
			qdot_prepare(wtypes[w], x, a_simd, N);
			qdot_force_scalar(true);
			qdot_prepare(wtypes[w], x, a_scalar, N);
			for (size_t i = 0; i < ab; i++)
				ck_assert_msg(a_simd[i] == a_scalar[i], "%s rep %d: byte %zu: simd %u, scalar %u",
					      qtype_name(wtypes[w]), rep, i, a_simd[i], a_scalar[i]);
		}
		free(a_simd), free(a_scalar);
	}
	qdot_force_scalar(false);
	free(x);
}
END_TEST

START_TEST(dot_matches_reference)
{
	struct fixture f;
	fixture_load(&f, types[_i].file);
	size_t ab = qdot_act_row_bytes(f.type, f.n);
	uint8_t *act = xmalloc(ab);
	double *a = xmalloc(f.n * sizeof(double));
	qdot_prepare(f.type, f.x, act, f.n);
	decode_act(f.act_type, act, f.x, f.n, a);
	qdot_fn ks = qdot_get_scalar(f.type), kb = qdot_get(f.type);
	for (uint32_t r = 0; r < f.rows; r++) {
		const float *w = f.deq + (size_t)r * f.n;
		double s = 0.0;
		for (uint32_t i = 0; i < f.n; i++)
			s += fabs((double)w[i] * a[i]);
		const void *row = f.raw + (size_t)r * f.row_bytes;
		double vs = ks(row, act, f.n), vb = kb(row, act, f.n);
		ck_assert_msg(fabs(vs - f.dot_q[r]) <= DOT_TOL * s,
			      "%s row %u scalar %.9g, reference %.9g (S %.3g)",
			      qtype_name(f.type), r, vs, f.dot_q[r], s);
		ck_assert_msg(fabs(vb - f.dot_q[r]) <= DOT_TOL * s,
			      "%s row %u best kernel %.9g, reference %.9g (S %.3g)",
			      qtype_name(f.type), r, vb, f.dot_q[r], s);
		if (f.act_type == QTYPE_F32)
			ck_assert(f.dot_q[r] == f.dot_f[r]);
	}
	free(a);
	free(act);
	fixture_free(&f);
}
END_TEST

/* ---- MXFP4: every exponent ----------------------------------------------- */

/* qtype_e8m0_half(e) is 2^(e-128) for every byte, the subnormals (e = 0, 1)
 * and e = 255 (2^127: ggml does not treat it as NaN) included. */
START_TEST(mxfp4_e8m0_half)
{
	for (int e = 0; e < 256; e++) {
		const float want = ldexpf(1.0f, e - 128);
		ck_assert_msg(fp32_to_bits(qtype_e8m0_half((uint8_t)e)) == fp32_to_bits(want),
			      "e %d: %a, want %a", e, (double)qtype_e8m0_half((uint8_t)e), (double)want);
	}
}
END_TEST

/* mxfp4_scales.bin (scripts/make-qtype-fixtures.py) holds 256 blocks, block
 * k with exponent byte k and each of the 16 codes once in either nibble
 * position.  gguf's floats for them equal the definition written out here
 * (the doubled E2M1 value times 2^(e-128), rounded to float: +-inf for the
 * large codes at e >= 253, as ggml), and the decoders give them bit for
 * bit on all three paths. */
START_TEST(mxfp4_every_scale)
{
	static const int doubled[16] = { 0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12 };
	struct fixture f;
	fixture_load(&f, "mxfp4_scales");
	ck_assert_uint_eq(f.type, QTYPE_MXFP4);
	ck_assert_uint_eq((uint64_t)f.rows * f.n, 256 * 32);
	ck_assert_uint_eq(f.row_bytes, f.n / 32 * 17);
	bool seen[256] = { false };
	float *got = xmalloc(f.n * sizeof(float));
	for (uint32_t r = 0; r < f.rows; r++) {
		const uint8_t *src = f.raw + (size_t)r * f.row_bytes;
		const float *want = f.deq + (size_t)r * f.n;
		for (uint32_t b = 0; b < f.n / 32; b++) {
			const uint8_t *blk = src + 17 * b;
			unsigned lo = 0, hi = 0;
			for (int j = 0; j < 16; j++) {
				lo |= 1u << (blk[1 + j] & 15);
				hi |= 1u << (blk[1 + j] >> 4);
			}
			ck_assert_msg(lo == 0xffff && hi == 0xffff, "block e=%u: codes %04x/%04x",
				      blk[0], lo, hi);
			seen[blk[0]] = true;
			for (int i = 0; i < 32; i++) {
				const int code = i < 16 ? blk[1 + i] & 15 : blk[1 + i - 16] >> 4;
				const float def = ldexpf((float)doubled[code], blk[0] - 128);
				ck_assert_msg(fp32_to_bits(def) == fp32_to_bits(want[32 * b + i]),
					      "e %u code %d: gguf %a, definition %a", blk[0], code,
					      (double)want[32 * b + i], (double)def);
			}
		}
		for (int path = 0; path < 3; path++) {
			memset(got, 0xa5, f.n * sizeof(float));
			if (path == 0)
				qtype_info(QTYPE_MXFP4)->dequant_row(src, got, f.n);
			else if (path == 1)
				ck_assert_int_eq(qtype_dequant_row(QTYPE_MXFP4, src, got, f.n), 0);
			else
				qdot_dequant_row(QTYPE_MXFP4, src, got, f.n);
			for (uint32_t i = 0; i < f.n; i++)
				ck_assert_msg(fp32_to_bits(got[i]) == fp32_to_bits(want[i]),
					      "row %u [%u] (e %u) path %d: %a, gguf %a", r, i,
					      src[17 * (i / 32)], path, (double)got[i], (double)want[i]);
		}
	}
	for (int e = 0; e < 256; e++)
		ck_assert_msg(seen[e], "exponent %d missing from the fixture", e);
	free(got);
	fixture_free(&f);
}
END_TEST

/* ---- SIMD against scalar on random data --------------------------------- */

/* A random row of nb blocks of type types[ti]: random bytes with sane fp16
 * scales for the quantised types, random finite values for the float ones. */
static void random_row(int ti, uint8_t *dst, int64_t n)
{
	const struct qtype_info *t = qtype_info(types[ti].id);
	int64_t nb = n / t->block_elems;
	if (types[ti].id == QTYPE_F32) {
		for (int64_t i = 0; i < n; i++) {
			float v = rnd_normal();
			memcpy(dst + 4 * i, &v, 4);
		}
		return;
	}
	if (types[ti].id == QTYPE_F16 || types[ti].id == QTYPE_BF16) {
		for (int64_t i = 0; i < n; i++) {
			float v = rnd_normal();
			uint16_t h = types[ti].id == QTYPE_F16 ? fp32_to_fp16(v) : fp32_to_bf16(v);
			memcpy(dst + 2 * i, &h, 2);
		}
		return;
	}
	for (int64_t i = 0; i < nb * t->block_bytes; i++)
		dst[i] = (uint8_t)rnd();
	if (types[ti].id == QTYPE_MXFP4) {
		/* exponent byte 115..130: scales 2^-13..2^2 */
		for (int64_t b = 0; b < nb; b++)
			dst[b * t->block_bytes] = (uint8_t)(115 + rnd() % 16);
		return;
	}
	for (int64_t b = 0; b < nb; b++) {
		for (int k = 0; k < types[ti].n_scales; k++) {
			float mag = (float)exp(log(1e-4) + rnd_unit() * (log(1e-1) - log(1e-4)));
			uint16_t h = fp32_to_fp16(rnd() % 5 == 0 ? -mag : mag);
			memcpy(dst + b * t->block_bytes + types[ti].scale_off[k], &h, 2);
		}
	}
}

START_TEST(simd_matches_scalar)
{
	if (!simd_expected()) {
		fprintf(stderr, "simd_matches_scalar: no AVX2+FMA+F16C here (or SMOKE_NO_SIMD), skipped\n");
		return;
	}
	qdot_force_scalar(false);
	ck_assert(qdot_simd_active());
	const uint32_t id = types[_i].id;
	const struct qtype_info *t = qtype_info(id);
	rng_state = 0x9e3779b97f4a7c15ULL ^ id;
	/* block counts: odd ones exercise the kernels' tails; the largest
	 * rows stay within the tolerance note at the top */
	static const int64_t blocks_q[] = { 1, 2, 3, 5, 8, 17, 33, 64 };
	static const int64_t n_float[] = { 1, 7, 8, 9, 31, 33, 100, 1000, 2048 };
	const bool is_float = t->block_elems == 1;
	const int cases = is_float ? (int)(sizeof(n_float) / sizeof(n_float[0]))
				   : (int)(sizeof(blocks_q) / sizeof(blocks_q[0]));
	for (int c = 0; c < cases; c++) {
		const int64_t n = is_float ? n_float[c] : blocks_q[c] * t->block_elems;
		uint64_t rb;
		ck_assert_int_eq(qtype_row_bytes(id, (uint64_t)n, &rb, NULL), 0);
		const size_t ab = qdot_act_row_bytes(id, n);
		for (int rep = 0; rep < 8; rep++) {
			/* weight and activation at odd offsets: no alignment assumed */
			const int wo = (int)(rnd() % 8), ao = (int)(rnd() % 8);
			uint8_t *wbuf = xmalloc(rb + 8), *abuf = xmalloc(ab + 8);
			float *x = xmalloc((size_t)n * sizeof(float));
			float *w = xmalloc((size_t)n * sizeof(float));
			double *a = xmalloc((size_t)n * sizeof(double));
			random_row(_i, wbuf + wo, n);
			const float xs = (float)exp(rnd_unit() * 8.0 - 4.0);
			for (int64_t i = 0; i < n; i++)
				x[i] = rnd_normal() * xs;
			if (rep == 1) /* an all-zero activation block */
				memset(x, 0, (size_t)(is_float ? 1 : t->block_elems) * sizeof(float));
			qdot_prepare(id, x, abuf + ao, n);
			decode_act(qdot_act_type(id), abuf + ao, x, n, a);
			t->dequant_row(wbuf + wo, w, n);
			double s = 0.0;
			for (int64_t i = 0; i < n; i++)
				s += fabs((double)w[i] * a[i]);
			const double vs = qdot_get_scalar(id)(wbuf + wo, abuf + ao, n);
			const double vb = qdot_get(id)(wbuf + wo, abuf + ao, n);
			ck_assert_msg(fabs(vs - vb) <= DOT_TOL * s + 1e-30,
				      "%s n=%lld rep %d: scalar %.9g simd %.9g (S %.3g)", t->name,
				      (long long)n, rep, vs, vb, s);
			free(wbuf), free(abuf), free(x), free(w), free(a);
		}
	}
}
END_TEST

/* The several-activation kernels: out[t] equals the single-row kernel's
 * dot with act[t] bit for bit (the forward pass's exactness against
 * llama.cpp rests on that), for every n_act, row lengths with and without
 * the eight-block groups' tails, unaligned rows, and out[t] for t >= n_act
 * left alone. */
START_TEST(dot4_matches_single)
{
	const uint32_t id = types[_i].id;
	const struct qtype_info *t = qtype_info(id);
	qdot_force_scalar(false);
	const qdot4_fn dot4 = qdot_get4(id);
	/* none where the block order's tile takes every batch */
	const bool want = simd_expected() && !qdot_block_order(id) &&
			  (id == QTYPE_Q4_0 || id == QTYPE_Q5_0 || id == QTYPE_Q8_0 ||
			   id == QTYPE_MXFP4 || id == QTYPE_Q4_K || id == QTYPE_Q5_K || id == QTYPE_Q6_K);
	ck_assert_msg((dot4 != NULL) == want, "%s: qdot_get4 %s", t->name,
		      dot4 ? "non-NULL" : "NULL");
	qdot_force_scalar(true);
	ck_assert_ptr_null(qdot_get4(id));
	qdot_force_scalar(false);
	if (!dot4)
		return;
	const qdot_fn dot = qdot_get(id);
	rng_state = 0xd1b54a32d192ed03ULL ^ id;
	static const int64_t blocks[] = { 1, 2, 7, 8, 9, 16, 20, 23, 64 };
	for (size_t c = 0; c < sizeof(blocks) / sizeof(blocks[0]); c++) {
		const int64_t n = blocks[c] * t->block_elems;
		uint64_t rb;
		ck_assert_int_eq(qtype_row_bytes(id, (uint64_t)n, &rb, NULL), 0);
		const size_t ab = qdot_act_row_bytes(id, n);
		uint8_t *wbuf = xmalloc(rb + 8), *abuf = xmalloc(4 * (ab + 8));
		float *x = xmalloc((size_t)n * sizeof(float));
		for (int rep = 0; rep < 6; rep++) {
			const int wo = (int)(rnd() % 8);
			random_row(_i, wbuf + wo, n);
			const void *act[4];
			for (int a = 0; a < 4; a++) {
				/* activation rows of very different scales, at odd offsets */
				const float xs = (float)exp(rnd_unit() * 8.0 - 4.0);
				for (int64_t i = 0; i < n; i++)
					x[i] = rnd_normal() * xs;
				if ((rep + a) % 3 == 0) /* an all-zero activation block */
					memset(x + (rnd() % blocks[c]) * t->block_elems, 0,
					       (size_t)t->block_elems * sizeof(float));
				uint8_t *ap = abuf + a * (ab + 8) + rnd() % 8;
				qdot_prepare(id, x, ap, n);
				act[a] = ap;
			}
			for (int na = 1; na <= 4; na++) {
				float out[4] = { -1.5f, -1.5f, -1.5f, -1.5f };
				dot4(wbuf + wo, act, na, n, out);
				for (int a = 0; a < 4; a++) {
					const float want_v = a < na ? dot(wbuf + wo, act[a], n) : -1.5f;
					ck_assert_msg(memcmp(&out[a], &want_v, sizeof(float)) == 0,
						      "%s n=%lld rep %d n_act %d row %d: %.9g, single %.9g",
						      t->name, (long long)n, rep, na, a, out[a], want_v);
				}
			}
		}
		free(wbuf), free(abuf), free(x);
	}
}
END_TEST

/* The four-row decode kernels (qdot_get_rows4): each of the four outputs
 * equals the single-row kernel's bit for bit, for rows with and without a
 * whole group of eight blocks and with leftover blocks, rows further
 * apart than a row and unaligned, activations of very different scales
 * and with all-zero blocks; only Q4_0, Q5_0 and Q8_0 have one, and none
 * with scalar kernels. */
START_TEST(rows4_matches_single)
{
	const uint32_t id = types[_i].id;
	const struct qtype_info *t = qtype_info(id);
	qdot_force_scalar(false);
	const qdot_rows4_fn rows4 = qdot_get_rows4(id);
	const bool want = simd_expected() && (id == QTYPE_Q4_0 || id == QTYPE_Q5_0 || id == QTYPE_Q8_0);
	ck_assert_msg((rows4 != NULL) == want, "%s: qdot_get_rows4 %s", t->name, rows4 ? "non-NULL" : "NULL");
	qdot_force_scalar(true);
	ck_assert_ptr_null(qdot_get_rows4(id));
	qdot_force_scalar(false);
	if (!rows4)
		return;
	const qdot_fn dot = qdot_get(id);
	rng_state = 0x2545f4914f6cdd1dULL ^ id;
	static const int64_t blocks[] = { 1, 7, 8, 9, 16, 20, 23, 64 };
	for (size_t c = 0; c < sizeof(blocks) / sizeof(blocks[0]); c++) {
		const int64_t n = blocks[c] * t->block_elems;
		uint64_t rb;
		ck_assert_int_eq(qtype_row_bytes(id, (uint64_t)n, &rb, NULL), 0);
		const size_t ab = qdot_tile_act_row_bytes(id, n), ws = rb + 3;
		uint8_t *wbuf = xmalloc(4 * ws + 8), *abuf = xmalloc(ab + 8);
		float *x = xmalloc((size_t)n * sizeof(float));
		for (int rep = 0; rep < 6; rep++) {
			const int wo = (int)(rnd() % 8);
			for (int r = 0; r < 4; r++)
				random_row(_i, wbuf + wo + r * ws, n);
			const float xs = (float)exp(rnd_unit() * 8.0 - 4.0);
			for (int64_t i = 0; i < n; i++)
				x[i] = rnd_normal() * xs;
			if (rep % 3 == 0)
				memset(x + (rnd() % blocks[c]) * t->block_elems, 0,
				       (size_t)t->block_elems * sizeof(float));
			uint8_t *ap = abuf + rnd() % 8;
			qdot_prepare_tile(id, x, ap, ab, 0, n);
			float out[4];
			rows4(wbuf + wo, ws, ap, n, out);
			for (int r = 0; r < 4; r++) {
				const float want_v = dot(wbuf + wo + r * ws, ap, n);
				ck_assert_msg(memcmp(&out[r], &want_v, sizeof(float)) == 0,
					      "%s n=%lld rep %d row %d: %.9g, single %.9g", t->name, (long long)n, rep, r,
					      out[r], want_v);
			}
		}
		free(wbuf), free(abuf), free(x);
	}
}
END_TEST

/* F32, F16, BF16: weights the tiles read in place, one value a block. */
static bool float_type(uint32_t id)
{
	return id == QTYPE_F32 || id == QTYPE_F16 || id == QTYPE_BF16;
}

/* The tile kernels (qdot_get_tile): every output of a tile of nw weight
 * rows x n_act activation rows equals the single-row kernel's bit for bit,
 * for every nw up to the rows per tile (odd ones leave a single row),
 * n_act 1..9 (whole and partial groups of four), rows with and without
 * the eight-block chunks' tails, rows so long that one fits a tile, a row
 * stride larger than a row, unaligned rows; outputs outside the tile are
 * left alone, and a row too long for the tile buffer gets no tile kernel. */
START_TEST(tile_matches_single)
{
	const uint32_t id = types[_i].id;
	const struct qtype_info *t = qtype_info(id);
	int rows = -1;
	qdot_force_scalar(false);
	const int64_t n16 = 16 * t->block_elems; /* a row 16 blocks long */
	const qdot_tile_fn tile = qdot_get_tile(id, n16, &rows);
	const bool want = simd_expected() &&
			  (id == QTYPE_Q4_0 || id == QTYPE_Q4_1 || id == QTYPE_Q5_0 ||
			   id == QTYPE_Q5_1 || id == QTYPE_Q8_0 || id == QTYPE_MXFP4 ||
			   id == QTYPE_Q2_K || id == QTYPE_Q3_K || id == QTYPE_Q4_K ||
			   id == QTYPE_Q5_K || id == QTYPE_Q6_K || float_type(id));
	ck_assert_msg((tile != NULL) == want, "%s: qdot_get_tile %s", t->name,
		      tile ? "non-NULL" : "NULL");
	qdot_force_scalar(true);
	ck_assert_ptr_null(qdot_get_tile(id, n16, &rows));
	qdot_force_scalar(false);
	if (!tile)
		return;
	ck_assert(rows >= 1 && rows <= QDOT_TILE_ROWS);
	/* a row whose unpacked blocks alone overflow the buffer: no tile; a
	 * float row is not unpacked (a tile of one row, however long), and
	 * the block order's tile unpacks a long row a slab at a time */
	if (float_type(id)) {
		ck_assert_ptr_eq(qdot_get_tile(id, 1 << 20, &rows), tile);
		ck_assert_int_eq(rows, 1);
	} else if (qdot_block_order(id)) {
		ck_assert_ptr_eq(qdot_get_tile(id, 1024 * t->block_elems, &rows), tile);
	} else {
		ck_assert_ptr_null(qdot_get_tile(id, 1024 * t->block_elems, &rows));
	}
	const qdot_fn dot = qdot_get(id);
	rng_state = 0x9e3779b97f4a7c15ULL ^ id;
	static const int64_t blocks[] = { 1, 3, 8, 9, 20, 23, 64, 200, 1031, 2085 };
	/* activation rows: 1..9 (whole and partial groups of four), and a
	 * prefill's batches, past the float tiles' stretched walk (16 and
	 * more rows, 64 per pass: several passes, a partial last one) */
	static const int batch[] = { 16, 19, 64, 67, 131 };
	enum { NA = 131, OS = QDOT_TILE_ROWS + 3 };
	for (size_t c = 0; c < sizeof(blocks) / sizeof(blocks[0]); c++) {
		const int64_t n = blocks[c] * t->block_elems;
		if (!qdot_get_tile(id, n, &rows))
			continue; /* longer than this type's tile holds (Q4_K, Q5_K, Q6_K: 42 blocks) */
		ck_assert_ptr_eq(qdot_get_tile(id, n, &rows), tile);
		ck_assert(rows >= 1 && rows <= QDOT_TILE_ROWS);
		uint64_t rb;
		ck_assert_int_eq(qtype_row_bytes(id, (uint64_t)n, &rb, NULL), 0);
		const size_t ws = rb + 5; /* rows apart by more than a row, odd */
		const size_t ab = qdot_tile_act_row_bytes(id, n) + 3;
		uint8_t *wbuf = xmalloc(rows * ws + 8), *abuf = xmalloc(NA * ab + 8);
		float *x = xmalloc((size_t)n * sizeof(float));
		float *out = xmalloc(NA * OS * sizeof(float)), *single = xmalloc(NA * OS * sizeof(float));
		for (int rep = 0; rep < 2; rep++) {
			const int wo = (int)(rnd() % 8);
			for (int r = 0; r < rows; r++)
				random_row(_i, wbuf + wo + r * ws, n);
			const uint8_t *act = abuf + rnd() % 8;
			for (int a = 0; a < NA; a++) {
				const float xs = (float)exp(rnd_unit() * 8.0 - 4.0);
				for (int64_t i = 0; i < n; i++)
					x[i] = rnd_normal() * xs;
				if ((rep + a) % 3 == 0)
					memset(x + (rnd() % blocks[c]) * t->block_elems, 0,
					       (size_t)t->block_elems * sizeof(float));
				qdot_prepare_tile(id, x, (uint8_t *)act, ab, a, n);
			}
			for (int a = 0; a < NA; a++)
				for (int r = 0; r < rows; r++)
					single[a * OS + r] = dot(wbuf + wo + r * ws, act + a * ab, n);
			for (int nw = 1; nw <= rows; nw++) {
				int nas[16], n_nas = 0;
				for (int na = 1; na <= 9; na += (nw == rows ? 1 : 4))
					nas[n_nas++] = na;
				for (size_t b = 0; b < sizeof(batch) / sizeof(batch[0]); b++)
					nas[n_nas++] = batch[b];
				for (int q = 0; q < n_nas; q++) {
					const int na = nas[q];
					for (int k = 0; k < NA * OS; k++)
						out[k] = -1.5f;
					tile(wbuf + wo, ws, nw, act, ab, na, n, out, OS);
					/* the first output that differs, if any (one
					 * assertion per call: Check logs each one) */
					int bad = -1;
					float want_v = 0;
					for (int k = 0; k < NA * OS && bad < 0; k++) {
						const int a = k / OS, r = k % OS;
						want_v = a < na && r < nw ? single[k] : -1.5f;
						if (memcmp(&out[k], &want_v, sizeof(float)))
							bad = k;
					}
					ck_assert_msg(bad < 0,
						      "%s n=%lld rep %d nw %d n_act %d row %d act %d: %.9g, single %.9g",
						      t->name, (long long)n, rep, nw, na, bad % OS, bad / OS,
						      bad < 0 ? 0.0 : out[bad], want_v);
				}
			}
		}
		free(wbuf), free(abuf), free(x), free(out), free(single);
	}
}
END_TEST

START_TEST(zero_activation_gives_zero)
{
	const uint32_t id = types[_i].id;
	const int64_t n = 512;
	uint64_t rb;
	ck_assert_int_eq(qtype_row_bytes(id, n, &rb, NULL), 0);
	uint8_t *w = xmalloc(rb), *act = xmalloc(qdot_act_row_bytes(id, n));
	float *x = calloc(n, sizeof(float));
	ck_assert_ptr_nonnull(x);
	rng_state = 12345 + id;
	random_row(_i, w, n);
	qdot_prepare(id, x, act, n);
	if (qdot_act_type(id) == QTYPE_Q8_K) {
		/* d = 0, all quants and bsums 0 */
		for (size_t i = 0; i < qdot_act_row_bytes(id, n); i++)
			ck_assert_uint_eq(act[i], 0);
	}
	ck_assert(qdot_get_scalar(id)(w, act, n) == 0.0f);
	ck_assert(qdot_get(id)(w, act, n) == 0.0f);
	free(w), free(act), free(x);
}
END_TEST

/* The block order (qdot_block_order): its scalar kernel - the
 * definition - is the exact order's dot to within rounding everywhere;
 * where the CPU picks the order, the single kernel equals the scalar one
 * bit for bit (the tile equals the single kernel: tile_matches_single),
 * and qdot_force_exact(1) gives the exact order's kernels back. */
START_TEST(block_order_kernels)
{
	const uint32_t id = types[_i].id;
	const struct qtype_info *t = qtype_info(id);
	const qdot_fn ref = qdot_get_scalar_block_order(id);
	if (!ref) {
		qdot_force_scalar(false);
		ck_assert(!qdot_block_order(id));
		return;
	}
	qdot_force_scalar(false);
	const bool on = qdot_block_order(id);
	if (!on)
		fprintf(stderr, "block_order_kernels: %s: the block order is not picked here (no AVX-512 VNNI, "
			"SMOKE_CPU or SMOKE_EXACT); only its scalar definition checked\n", t->name);
	const qdot_fn dot = qdot_get(id);
	rng_state = 0x2545f4914f6cdd1dULL ^ id;
	static const int64_t blocks[] = { 1, 2, 3, 5, 8, 9, 17, 33 };
	for (size_t c = 0; c < sizeof(blocks) / sizeof(blocks[0]); c++) {
		const int64_t n = blocks[c] * t->block_elems;
		uint64_t rb;
		ck_assert_int_eq(qtype_row_bytes(id, (uint64_t)n, &rb, NULL), 0);
		const size_t ab = qdot_act_row_bytes(id, n);
		uint8_t *wbuf = xmalloc(rb + 8), *abuf = xmalloc(ab + 8);
		float *x = xmalloc((size_t)n * sizeof(float)), *w = xmalloc((size_t)n * sizeof(float));
		double *a = xmalloc((size_t)n * sizeof(double));
		for (int rep = 0; rep < 12; rep++) {
			const int wo = (int)(rnd() % 8), ao = (int)(rnd() % 8);
			random_row(_i, wbuf + wo, n);
			const float xs = (float)exp(rnd_unit() * 8.0 - 4.0);
			for (int64_t i = 0; i < n; i++)
				x[i] = rnd_normal() * xs;
			if (rep % 3 == 1) /* an all-zero activation block */
				memset(x + (rnd() % blocks[c]) * t->block_elems, 0, (size_t)t->block_elems * sizeof(float));
			qdot_prepare(id, x, abuf + ao, n);
			decode_act(qdot_act_type(id), abuf + ao, x, n, a);
			t->dequant_row(wbuf + wo, w, n);
			double s = 0.0;
			for (int64_t i = 0; i < n; i++)
				s += fabs((double)w[i] * a[i]);
			const float vr = ref(wbuf + wo, abuf + ao, n);
			const double ve = qdot_get_scalar(id)(wbuf + wo, abuf + ao, n);
			ck_assert_msg(fabs(vr - ve) <= DOT_TOL * s + 1e-30, "%s n=%lld rep %d: block order %.9g, exact %.9g (S %.3g)",
				      t->name, (long long)n, rep, vr, ve, s);
			if (on) {
				const float v = dot(wbuf + wo, abuf + ao, n);
				ck_assert_msg(memcmp(&v, &vr, sizeof(v)) == 0, "%s n=%lld rep %d: kernel %.9g, block order %.9g",
					      t->name, (long long)n, rep, v, vr);
			}
		}
		free(wbuf), free(abuf), free(x), free(w), free(a);
	}
	qdot_force_exact(1);
	ck_assert(!qdot_block_order(id));
	if (on) {
		ck_assert(qdot_get(id) != dot);
		ck_assert_ptr_nonnull(qdot_get4(id));
	}
	qdot_force_exact(-1);
	ck_assert(qdot_block_order(id) == on);
}
END_TEST

/* SMOKE_EXACT=1 keeps llama.cpp's order (read once: its own forked
 * child, as env_disables_simd). */
START_TEST(env_exact_keeps_llama_order)
{
	const char *fork_mode = getenv("CK_FORK");
	if (fork_mode && strcmp(fork_mode, "no") == 0)
		return;
	setenv("SMOKE_EXACT", "1", 1);
	for (int i = 0; i < N_TYPES; i++)
		ck_assert_msg(!qdot_block_order(types[i].id), "%s", qtype_name(types[i].id));
}
END_TEST

START_TEST(force_scalar_switches_kernels)
{
	qdot_force_scalar(true);
	ck_assert(!qdot_simd_active());
	for (int i = 0; i < N_TYPES; i++)
		ck_assert(qdot_get(types[i].id) == qdot_get_scalar(types[i].id));
	qdot_force_scalar(false);
	ck_assert(qdot_simd_active() == simd_expected());
	if (simd_expected()) {
		const uint32_t simd_types[] = { QTYPE_F32, QTYPE_F16, QTYPE_BF16, QTYPE_Q4_0,
						QTYPE_Q4_1, QTYPE_Q5_0, QTYPE_Q5_1, QTYPE_Q8_0,
						QTYPE_MXFP4, QTYPE_Q2_K, QTYPE_Q3_K, QTYPE_Q4_K,
						QTYPE_Q5_K, QTYPE_Q6_K };
		for (size_t i = 0; i < sizeof(simd_types) / sizeof(simd_types[0]); i++)
			ck_assert_msg(qdot_get(simd_types[i]) != qdot_get_scalar(simd_types[i]),
				      "%s has no SIMD kernel", qtype_name(simd_types[i]));
	}
}
END_TEST

/* Runs in its own forked child (Check's default), so this is the process's
 * first qdot_get and the variable is seen. */
START_TEST(env_disables_simd)
{
	const char *fork_mode = getenv("CK_FORK");
	if (fork_mode && strcmp(fork_mode, "no") == 0)
		return;
	setenv("SMOKE_NO_SIMD", "1", 1);
	ck_assert(qdot_get(QTYPE_Q4_K) == qdot_get_scalar(QTYPE_Q4_K));
	ck_assert(!qdot_simd_active());
}
END_TEST

/* ---- fp16 / bf16 conversions -------------------------------------------- */

#if HAVE_X86
__attribute__((target("f16c"))) static float hw_h2f(uint16_t h)
{
	return _cvtsh_ss(h);
}

__attribute__((target("f16c"))) static uint16_t hw_f2h(float f)
{
	return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
#endif

static bool cpu_has_f16c(void)
{
#if HAVE_X86
	__builtin_cpu_init();
	return __builtin_cpu_supports("f16c");
#else
	return false;
#endif
}

/* Low-16-bit patterns of a float that sit on or next to every rounding
 * boundary a half (13 + k dropped bits for subnormals) or a bfloat16 (16
 * dropped bits) can have, plus a few arbitrary ones. */
static const uint32_t low_patterns[] = {
	0x0000, 0x0001, 0x0fff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x2001, 0x3000,
	0x3fff, 0x4000, 0x4001, 0x6000, 0x7fff, 0x8000, 0x8001, 0xa000, 0xc000,
	0xe000, 0xf000, 0xffff, 0x1234, 0x9abc, 0x5555,
};

START_TEST(fp16_to_fp32_exhaustive)
{
	/* Arithmetic definition, independent of the bit tricks in fp16.h. */
	for (uint32_t h = 0; h < 65536; h++) {
		const uint32_t e = (h >> 10) & 31, m = h & 1023;
		const float got = fp16_to_fp32((uint16_t)h);
		if (e == 31) {
			ck_assert(m ? isnan(got) : isinf(got));
			ck_assert(!!signbit(got) == !!(h & 0x8000));
			continue;
		}
		double v = e ? ldexp(1024.0 + m, (int)e - 25) : ldexp((double)m, -24);
		if (h & 0x8000)
			v = -v;
		ck_assert_msg((double)got == v && !!signbit(got) == !!(h & 0x8000),
			      "half %04x: %.9g, want %.9g", h, (double)got, v);
	}
	if (!cpu_has_f16c())
		return;
#if HAVE_X86
	/* Bit-exact against F16C, NaN payloads and quieting included. */
	for (uint32_t h = 0; h < 65536; h++)
		ck_assert_msg(fp32_to_bits(fp16_to_fp32((uint16_t)h)) == fp32_to_bits(hw_h2f((uint16_t)h)),
			      "half %04x: %08x, F16C %08x", h,
			      fp32_to_bits(fp16_to_fp32((uint16_t)h)), fp32_to_bits(hw_h2f((uint16_t)h)));
#endif
}
END_TEST

START_TEST(fp32_to_fp16_rounding)
{
	/* Every half value round-trips (NaNs come back quiet). */
	for (uint32_t h = 0; h < 65536; h++) {
		uint16_t back = fp32_to_fp16(fp16_to_fp32((uint16_t)h));
		bool nan = ((h >> 10) & 31) == 31 && (h & 1023);
		ck_assert_msg(back == (nan ? (h | 0x200) : h), "half %04x -> %04x", h, back);
	}
	if (!cpu_has_f16c()) {
		fprintf(stderr, "fp32_to_fp16_rounding: no F16C, hardware sweep skipped\n");
		return;
	}
#if HAVE_X86
	/* Every float's top 16 bits (sign, exponent, 7 mantissa bits) with the
	 * low 16 bits on and beside each rounding boundary: ties, overflow to
	 * inf, subnormal results, NaNs. */
	for (uint32_t hi = 0; hi < 65536; hi++) {
		for (size_t k = 0; k < sizeof(low_patterns) / sizeof(low_patterns[0]); k++) {
			const float f = fp32_from_bits(hi << 16 | low_patterns[k]);
			const uint16_t got = fp32_to_fp16(f), want = hw_f2h(f);
			ck_assert_msg(got == want, "float %08x: %04x, F16C %04x",
				      fp32_to_bits(f), got, want);
		}
	}
#endif
}
END_TEST

START_TEST(bf16_conversions)
{
	for (uint32_t h = 0; h < 65536; h++) {
		const uint32_t e = (h >> 7) & 255, m = h & 127;
		const float got = bf16_to_fp32((uint16_t)h);
		if (e == 255) {
			ck_assert(m ? isnan(got) : isinf(got));
			continue;
		}
		double v = e ? ldexp(128.0 + m, (int)e - 134) : ldexp((double)m, -133);
		if (h & 0x8000)
			v = -v;
		ck_assert_msg((double)got == v && !!signbit(got) == !!(h & 0x8000),
			      "bf16 %04x: %.9g, want %.9g", h, (double)got, v);
		ck_assert_uint_eq(fp32_to_bf16(got), h);
	}
	/* float -> bf16: nearest of the two neighbours in double arithmetic,
	 * ties to the even one; overflow rounds to inf at 2^128. */
	for (uint32_t hi = 0; hi < 65536; hi++) {
		for (size_t k = 0; k < sizeof(low_patterns) / sizeof(low_patterns[0]); k++) {
			const uint32_t bits = hi << 16 | low_patterns[k];
			const float f = fp32_from_bits(bits);
			const uint16_t got = fp32_to_bf16(f);
			if (isnan(f)) {
				ck_assert(isnan(bf16_to_fp32(got)));
				ck_assert_uint_eq(got & 0x8000, (bits >> 16) & 0x8000);
				continue;
			}
			if (isinf(f)) {
				ck_assert_uint_eq(got, bits >> 16);
				continue;
			}
			const uint16_t lo = (uint16_t)(bits >> 16), up = (uint16_t)(lo + 1);
			const double dlo = fabs((double)bf16_to_fp32(lo));
			const double dup = ((up & 0x7fff) == 0x7f80) ? ldexp(1.0, 128)
								     : fabs((double)bf16_to_fp32(up));
			const double af = fabs((double)f);
			uint16_t want;
			if (af - dlo < dup - af)
				want = lo;
			else if (af - dlo > dup - af)
				want = up;
			else
				want = (lo & 1) ? up : lo;
			ck_assert_msg(got == want, "float %08x: bf16 %04x, want %04x", bits, got, want);
		}
	}
}
END_TEST

static Suite *qtype_suite(void)
{
	Suite *s = suite_create("qtype");
	TCase *tc = tcase_create("table");
	tcase_add_test(tc, info_table_matches_ggml);
	tcase_add_test(tc, row_bytes_accepts_and_rejects);
	tcase_add_test(tc, act_formats);
	suite_add_tcase(s, tc);

	tc = tcase_create("fixtures");
	tcase_add_loop_test(tc, dequant_matches_gguf, 0, N_TYPES);
	tcase_add_loop_test(tc, prepare_matches_numpy, 0, N_TYPES);
	tcase_add_loop_test(tc, dot_matches_reference, 0, N_TYPES);
	tcase_add_test(tc, mxfp4_e8m0_half);
	tcase_add_test(tc, mxfp4_every_scale);
	suite_add_tcase(s, tc);

	tc = tcase_create("kernels");
	tcase_add_loop_test(tc, simd_matches_scalar, 0, N_TYPES);
	tcase_add_test(tc, prepare_simd_equals_scalar);
	tcase_add_loop_test(tc, zero_activation_gives_zero, 0, N_TYPES);
	tcase_add_loop_test(tc, dot4_matches_single, 0, N_TYPES);
	tcase_add_loop_test(tc, rows4_matches_single, 0, N_TYPES);
	tcase_add_loop_test(tc, tile_matches_single, 0, N_TYPES);
	tcase_add_loop_test(tc, block_order_kernels, 0, N_TYPES);
	tcase_add_test(tc, env_exact_keeps_llama_order);
	tcase_add_test(tc, force_scalar_switches_kernels);
	tcase_add_test(tc, env_disables_simd);
	suite_add_tcase(s, tc);

	tc = tcase_create("fp16");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, fp16_to_fp32_exhaustive);
	tcase_add_test(tc, fp32_to_fp16_rounding);
	tcase_add_test(tc, bf16_conversions);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ck_run(qtype_suite());
}
