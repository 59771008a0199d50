/* attention.c - causal (optionally sliding-window) attention on the CPU.
 *
 * K and V hold one row per position: n_head_kv heads of head_dim IEEE
 * halves, kv_stride halves apart (the F16 KV cache, as llama.cpp's).
 * Query head h reads KV head h / (n_head / n_head_kv) (grouped-query
 * attention).  Work is split over (query row, head) pairs; each thread
 * keeps its scores in its own row of the scratch.  Q arrives as fp16
 * values in floats (rounded by the caller, as llama.cpp's F16 Q.K product
 * does).  A half widens to float exactly, so reading the cache's halves
 * gives the very floats an fp16-rounded float cache held.
 *
 * The AVX2 path (the scores and values kernels in attention_avx2.c, the
 * softmax here) reproduces llama.cpp's non-flash CPU attention bit for bit
 * (its AVX2 build; docs/reference.md):
 *   - q.k is ggml_vec_dot_f16 over head_dim: 32 values per step in four
 *     8-lane FMA accumulators, reduced in GGML_F32x8_REDUCE order, the
 *     head_dim % 32 leftover added one product at a time in double;
 *   - times scale; the softmax exponentials come from ggml's polynomial
 *     exp, computed on 8 positions at a time, each group's sum taken in
 *     float (hsum order) and the groups summed in double; then p * (float)
 *     (1/sum), rounded to fp16;
 *   - each output value is ggml_vec_dot_f16 of the probabilities with one
 *     V column over the KV cache: position p lands in accumulator
 *     (p % 32) / 8, lane p % 8.  llama.cpp's cache view is padded to a
 *     multiple of 256 positions whose masked weights are exactly 0, so
 *     positions outside [first, pos] add nothing (fma(v, 0, acc) = acc) and
 *     are skipped here.  This assumes position p sits in cache cell p,
 *     which holds for a fresh sequence that never wraps llama.cpp's
 *     sliding-window ring (contexts up to that cache's size).
 * The scalar path (no AVX2, or SMOKE_NO_SIMD) computes the same maths in
 * plain loops and agrees to within float rounding.
 * Sinks (gpt-oss, attn_params.sinks) enter as ggml's soft_max adds them:
 * max = max(max of the scores, sink), and expf(sink - max) added to the
 * double sum after the positions' exponentials; no value vector.
 */
#include "compute/cpu/cpu_backend.h"

#include <math.h>
#include <stdatomic.h>

#include "compute/cpu/attention_avx2.h"
#include "compute/cpu/qdot.h"
#include "compute/cpu/simd_avx2.h"
#include "util/fp16.h"

struct attn_job {
	const float *q;
	const uint16_t *k, *v;
	float *out;
	const struct attn_params *ap;
	float *scores;
	int max_ctx;
	bool simd;
	bool f16c;        /* the scalar path may widen halves with F16C */
};

/* The scalar path widens the cache's halves a chunk at a time ahead of its
 * loops, which then run on floats exactly as over a float cache: converting
 * inside them made the path 2-3x slower (the in-order double sum leaves no
 * room for the extra operations, and the V loop stopped vectorising).
 * Widening is exact either way, so F16C, where the CPU has it, changes no
 * result of this reference path - only its speed. */
#define WIDEN_CHUNK 64

#ifdef CPU_HAVE_AVX2_CODE
__attribute__((target("avx,f16c"))) static void widen_f16c(const uint16_t *h, float *f, int n)
{
	int i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(f + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
	for (; i < n; i++)
		f[i] = cpu_h2f(h[i]);
}
#endif

static void widen(bool f16c, const uint16_t *h, float *f, int n)
{
#ifdef CPU_HAVE_AVX2_CODE
	if (f16c) {
		widen_f16c(h, f, n);
		return;
	}
#endif
	(void)f16c;
	for (int i = 0; i < n; i++)
		f[i] = cpu_h2f(h[i]);
}

/* One (row, head) task in plain C. */
static void attn_one_scalar(const struct attn_job *j, const float *qh, int64_t koff, int first,
			    int pos, const float *sink, float *s, float *o)
{
	const struct attn_params *ap = j->ap;
	const int hd = ap->head_dim;
	float buf[WIDEN_CHUNK];
	float mx = -INFINITY;
	for (int p = first; p <= pos; p++) {
		const uint16_t *kp = j->k + p * ap->kv_stride + koff;
		double d = 0.0;
		for (int i0 = 0; i0 < hd; i0 += WIDEN_CHUNK) {
			const int n = hd - i0 < WIDEN_CHUNK ? hd - i0 : WIDEN_CHUNK;
			widen(j->f16c, kp + i0, buf, n);
			for (int i = 0; i < n; i++)
				d += (double)(qh[i0 + i] * buf[i]);
		}
		float sc = (float)d * ap->scale;
		s[p - first] = sc;
		if (sc > mx)
			mx = sc;
	}
	if (sink && *sink > mx)
		mx = *sink;
	double sum = 0.0;
	for (int p = 0; p <= pos - first; p++) {
		float e = expf(s[p] - mx);
		s[p] = e;
		sum += e;
	}
	if (sink)
		sum += (double)expf(*sink - mx);
	float inv = (float)(1.0 / sum);
	for (int i = 0; i < hd; i++)
		o[i] = 0.0f;
	for (int p = first; p <= pos; p++) {
		const uint16_t *vp = j->v + p * ap->kv_stride + koff;
		float wgt = fp16_to_fp32(fp32_to_fp16(s[p - first] * inv));
		for (int i0 = 0; i0 < hd; i0 += WIDEN_CHUNK) {
			const int n = hd - i0 < WIDEN_CHUNK ? hd - i0 : WIDEN_CHUNK;
			widen(j->f16c, vp + i0, buf, n);
			for (int i = 0; i < n; i++)
				o[i0 + i] += wgt * buf[i];
		}
	}
}

#ifdef CPU_HAVE_AVX2_CODE

/* The scores s[g0..g1) (masked cells -inf, mx their max) to fp16-rounded
 * probabilities, in place: ggml's soft_max, see the file comment. */
CPU_AVX2 static void softmax_avx2(float *s, int n, float mx, const float *sink)
{
	/* ggml's soft_max with sinks: the sink joins the max, and its
	 * exponential (libm expf) the double sum after the vector part */
	if (sink && *sink > mx)
		mx = *sink;
	double sum = 0.0;
	const __m256 vmx = _mm256_set1_ps(mx);
	for (int p = 0; p < n; p += 8) {
		const __m256 e = cpu_exp8(_mm256_sub_ps(_mm256_loadu_ps(s + p), vmx));
		_mm256_storeu_ps(s + p, e);
		sum += (double)cpu_hsum8(e);
	}
	if (sink)
		sum += (double)expf(*sink - mx);
	const __m256 vinv = _mm256_set1_ps((float)(1.0 / sum));
	for (int p = 0; p < n; p += 8) {
		/* fp16 round trip of p * inv (F16C, nearest even), as ggml
		 * converts the probabilities for the F16 product with V. */
		const __m256 w = _mm256_mul_ps(_mm256_loadu_ps(s + p), vinv);
		_mm256_storeu_ps(s + p, _mm256_cvtph_ps(_mm256_cvtps_ph(w, _MM_FROUND_TO_NEAREST_INT)));
	}
}

/* Query heads per attention task at most: the heads of one query row that
 * read the same KV head (grouped-query attention) go together, so that the
 * kernels (attention_avx2.c) widen each K and V chunk once for all of them.
 * Per head the float operations are those of the one-head path, in its
 * order: the results are the same bit for bit. */
#define ATTN_HEADS CPU_ATTN_HEADS
_Static_assert(ATTN_HEADS <= ATTN_AVX2_HEADS, "a task's heads fit one kernel call");

/* nh (1..ATTN_HEADS) heads of one query row sharing one KV head: qh[g]
 * the queries, o[g] the outputs, sink[g] their sinks (NULL: none), s[g]
 * their score rows (cells [first & ~7, pos rounded up to 8): the softmax
 * works on whole 8-cell groups, the masked cells -inf as ggml's mask
 * makes them). */
CPU_AVX2 static void attn_heads_avx2(const struct attn_job *j, const float *const *qh, int nh,
				     int64_t koff, int first, int pos, const float *const *sink,
				     float *const *s, float *const *o)
{
	const struct attn_params *ap = j->ap;
	const int g0 = first & ~7, g1 = (pos + 8) & ~7; /* whole 8-cell groups */
	float *sp[ATTN_HEADS] = { 0 }; /* position first's cell */
	for (int g = 0; g < nh; g++) {
		for (int p = g0; p < first; p++)
			s[g][p - g0] = -INFINITY;
		for (int p = pos + 1; p < g1; p++)
			s[g][p - g0] = -INFINITY;
		sp[g] = s[g] + (first - g0);
	}
	attn_avx2_scores(j->k + koff, ap->kv_stride, first, pos, qh, nh, ap->head_dim, ap->scale, sp);
	for (int g = 0; g < nh; g++) {
		float mx = -INFINITY;
		for (int p = 0; p <= pos - first; p++)
			if (sp[g][p] > mx)
				mx = sp[g][p];
		softmax_avx2(s[g], g1 - g0, mx, sink[g]);
	}
	attn_avx2_values(j->v + koff, ap->kv_stride, first, pos, (const float *const *)sp, nh, ap->head_dim, o);
}

#endif

/* Tasks per query row: the SIMD path takes up to CPU_ATTN_HEADS of a row's
 * heads that share a KV head together; *hpt_out heads per task. */
static int attn_per_row(const struct attn_job *j, int *hpt_out)
{
	const struct attn_params *ap = j->ap;
	const int group = ap->n_head / ap->n_head_kv;
	int hpt = 1;
#ifdef CPU_HAVE_AVX2_CODE
	if (j->simd)
		hpt = group < CPU_ATTN_HEADS ? group : CPU_ATTN_HEADS;
#endif
	*hpt_out = hpt;
	const int per_kv = (group + hpt - 1) / hpt; /* tasks per KV head */
	return ap->n_head_kv * per_kv;
}

/* Task `task` of one call: a query row's heads h0.. of one KV head. */
static void attn_task(const struct attn_job *j, int task, int per_row, int hpt, float *s)
{
	const struct attn_params *ap = j->ap;
	const int hd = ap->head_dim;
	const int group = ap->n_head / ap->n_head_kv;
	const int64_t qw = (int64_t)ap->n_head * hd;
	const int per_kv = per_row / ap->n_head_kv;
	const int t = task / per_row, r = task % per_row;
	const int kvh = r / per_kv, h0 = kvh * group + (r % per_kv) * hpt;
	const int nh = kvh * group + group - h0 < hpt ? kvh * group + group - h0 : hpt;
	int pos = ap->pos0 + t;
	int first = 0;
	if (ap->window > 0 && pos - ap->window + 1 > 0)
		first = pos - ap->window + 1;
	const int64_t koff = (int64_t)kvh * hd;
#ifdef CPU_HAVE_AVX2_CODE
	if (j->simd) {
		const float *qh[CPU_ATTN_HEADS], *sink[CPU_ATTN_HEADS];
		float *o[CPU_ATTN_HEADS], *sg[CPU_ATTN_HEADS];
		for (int g = 0; g < nh; g++) {
			const int h = h0 + g;
			qh[g] = j->q + t * qw + (int64_t)h * hd;
			o[g] = j->out + t * qw + (int64_t)h * hd;
			sink[g] = ap->sinks ? ap->sinks + h : NULL;
			sg[g] = s + (int64_t)g * j->max_ctx;
		}
		attn_heads_avx2(j, qh, nh, koff, first, pos, sink, sg, o);
		return;
	}
#else
	(void)nh;
#endif
	const float *qh = j->q + t * qw + (int64_t)h0 * hd;
	float *o = j->out + t * qw + (int64_t)h0 * hd;
	const float *sink = ap->sinks ? ap->sinks + h0 : NULL;
	attn_one_scalar(j, qh, koff, first, pos, sink, s, o);
}

/* Several calls as one job: the tasks of all of them, call after call,
 * dealt out as one call's are. */
struct attn_batch {
	struct attn_job base;      /* q, k, v, out, ap: set per call */
	const struct attn_call *calls;
	int n;
	atomic_llong next_task;    /* the tasks of all calls, taken in turn */
};

static void attn_batch_share(void *ctx, int ith, int nth)
{
	struct attn_batch *b = ctx;
	(void)nth;
	float *s = b->base.scores + (int64_t)ith * CPU_ATTN_HEADS * b->base.max_ctx;
	struct attn_job j = b->base;
	j.ap = &b->calls[0].ap;
	int hpt;
	const int per_row = attn_per_row(&j, &hpt);
	/* The tasks of call c are [first, first + n_q * per_row); a thread
	 * takes the next one left until none is (so that a thread on a
	 * slower core takes fewer: dot_share in matmul.c), its tasks rise,
	 * and the call only ever moves forward. */
	int c = -1;
	int64_t first = 0, end = 0;
	for (;;) {
		const int64_t task = atomic_fetch_add_explicit(&b->next_task, 1, memory_order_relaxed);
		while (task >= end) {
			if (++c == b->n)
				return;
			first = end;
			end += (int64_t)b->calls[c].ap.n_q * per_row;
			j.q = b->calls[c].q;
			j.k = b->calls[c].k;
			j.v = b->calls[c].v;
			j.out = b->calls[c].out;
			j.ap = &b->calls[c].ap;
		}
		attn_task(&j, (int)(task - first), per_row, hpt, s);
	}
}

void cpu_attentions(struct backend *b, const struct attn_call *calls, int n)
{
	struct cpu_backend *cb = cpu_of(b);
	if (n <= 0)
		return;
	const int hd = calls[0].ap.head_dim;
	struct attn_batch job = {
		.base = {
			.scores = cb->scores, .max_ctx = cb->scores_row,
			/* The SIMD path works on whole 8-value vectors of head_dim. */
			.simd = qdot_simd_active() && hd % 8 == 0,
#ifdef CPU_HAVE_AVX2_CODE
			.f16c = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c"),
#endif
		},
		.calls = calls, .n = n,
	};
	atomic_init(&job.next_task, 0);
	tpool_run(cb->pool, attn_batch_share, &job);
}

/* One call: the job of several, with one. */
void cpu_attention(struct backend *b, const float *q, const uint16_t *k, const uint16_t *v,
		   float *out, const struct attn_params *ap)
{
	const struct attn_call call = { .q = q, .k = k, .v = v, .out = out, .ap = *ap };
	cpu_attentions(b, &call, 1);
}
