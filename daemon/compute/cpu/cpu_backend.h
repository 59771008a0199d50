/* cpu_backend.h - internals shared by the CPU backend's files. */
#ifndef SMK_COMPUTE_CPU_BACKEND_H
#define SMK_COMPUTE_CPU_BACKEND_H

#include "compute/backend.h"
#include "compute/cpu/threadpool.h"
#include "util/fp16.h"

struct cpu_backend {
	struct backend base;
	struct tpool *pool;
	void *act;            /* prepared (quantised) activations, max_rows rows */
	size_t act_bytes;
	float *scores;        /* attention scores: CPU_ATTN_HEADS scores_row rows per thread */
	int scores_row;       /* max_ctx plus room for two partial 8-cell groups */
};

/* Query heads one attention task scores at once at most (attention.c). */
#define CPU_ATTN_HEADS 4

static inline struct cpu_backend *cpu_of(struct backend *b)
{
	return (struct cpu_backend *)b;
}

int cpu_matmul(struct backend *b, const struct wtensor *w, const float *x, int n, float *y);
int cpu_matmuls(struct backend *b, const struct wtensor *const *w, int nw, const float *x, int n,
		float *const *y);
/* The element-wise and row ops (elementwise.c; backend.h says what each
 * computes).  cpu_gelu_init fills the GELU table once per process. */
void cpu_gelu_init(void);
void cpu_gelu_mul(struct backend *b, float *g, const float *u, int64_t n);
void cpu_silu_mul(struct backend *b, float *g, const float *u, int64_t n);
void cpu_swiglu_oai(struct backend *b, float *g, const float *u, int64_t n, float alpha, float limit);
void cpu_add(struct backend *b, float *x, const float *y, int64_t n);
void cpu_add_bias(struct backend *b, float *x, const struct wtensor *bias, int n);
void cpu_rmsnorm(struct backend *b, const float *x, const struct wtensor *w, float *y, int width, int n,
		 float eps);
void cpu_rope(struct backend *b, float *x, int n, int n_heads, int head_dim, int pos0,
	      const struct rope_params *rp);
void cpu_round_fp16(struct backend *b, float *dst, const float *src, int64_t n);
void cpu_store_fp16(struct backend *b, uint16_t *dst, const float *src, int64_t n);
void cpu_scale(struct backend *b, float *x, float s, int64_t n);
/* k, v: the F16 KV cache's halves (backend.h's attention op) */
void cpu_attention(struct backend *b, const float *q, const uint16_t *k, const uint16_t *v,
		   float *out, const struct attn_params *ap);
void cpu_attentions(struct backend *b, const struct attn_call *calls, int n);

/* Half -> float, equal to fp16_to_fp32 for every input (NaN quieted the
 * same way) but without branches, so that the compiler vectorises it (the
 * attention's scalar path on CPUs without F16C).  The half's exponent and
 * mantissa, shifted into a float's fields, are the value times 2^-112 -
 * exactly, subnormal halves becoming float subnormals - and one
 * multiplication by 2^112 (exact) restores it; all-ones exponents (inf,
 * NaN) are set apart. */
static inline float cpu_h2f(uint16_t h)
{
	const uint32_t em = h & 0x7fffu;
	uint32_t x = fp32_to_bits(fp32_from_bits(em << 13) * 0x1p112f);
	x |= em >= 0x7c00u ? 0x7f800000u : 0;
	x |= em > 0x7c00u ? 0x400000u : 0;
	return fp32_from_bits(x | (uint32_t)(h & 0x8000u) << 16);
}

/* Split [0, total) into nth nearly equal parts; part ith is [*lo, *hi). */
static inline void cpu_share(int64_t total, int ith, int nth, int64_t *lo, int64_t *hi)
{
	int64_t per = total / nth, rem = total % nth;
	*lo = ith * per + (ith < rem ? ith : rem);
	*hi = *lo + per + (ith < rem ? 1 : 0);
}

#endif
