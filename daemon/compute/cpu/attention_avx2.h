/* attention_avx2.h - the AVX2 attention kernels (attention_avx2.c), private
 * to compute/cpu/ and its tests.
 *
 * Both reproduce llama.cpp's non-flash CPU attention (its AVX2 build) bit
 * for bit; attention.c's file comment gives the order.  They work on
 * several query heads that read one KV head and several cache positions at
 * a time - register tiles, like a matrix product's - but every output's
 * float operations are the one-head, one-position order's.  The caller
 * checks qdot_simd_active() and head_dim % 8 == 0 first.
 */
#ifndef SMK_COMPUTE_CPU_ATTENTION_AVX2_H
#define SMK_COMPUTE_CPU_ATTENTION_AVX2_H

#include <stddef.h>
#include <stdint.h>

/* Query heads per call at most. */
#define ATTN_AVX2_HEADS 4

/* s[g][p - p0] = ggml_vec_dot_f16(head_dim, K row p, qh[g]) * scale for
 * p in [p0, p1] and g < nh (1..ATTN_AVX2_HEADS): K row p at k + p *
 * kv_stride halves, qh[g] fp16-exact floats. */
void attn_avx2_scores(const uint16_t *k, int64_t kv_stride, int p0, int p1, const float *const *qh, int nh,
		      int head_dim, float scale, float *const *s);

/* o[g][i] = the sum over p in [first, pos] of w[g][p - first] * V row
 * p's value i, as ggml_vec_dot_f16 sums it over the cache (position p in
 * partial sum p % 32), for i < head_dim and g < nh. */
void attn_avx2_values(const uint16_t *v, int64_t kv_stride, int first, int pos, const float *const *w, int nh,
		      int head_dim, float *const *o);

#endif
