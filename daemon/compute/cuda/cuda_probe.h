/* cuda_probe.h - is there a usable GPU?  The C side of the CUDA build.
 *
 * Compiled from cuda_probe.cu when the build has CUDA (nvcc present), and from
 * cuda_none.c otherwise, so callers never need #ifdef. */
#ifndef SMK_COMPUTE_CUDA_PROBE_H
#define SMK_COMPUTE_CUDA_PROBE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of CUDA devices (>0), or a negative code with a reason in why
 * (-ENODEV: built without CUDA, no driver, or no device). */
int cuda_probe(char *why, size_t why_len);

/* One line about device dev (name, compute capability, SMs, memory,
 * driver and runtime versions) into buf; 0 or a negative code with the
 * reason in buf. */
int cuda_describe(int dev, char *buf, size_t len);

/* Sum a[i]*b[i] on the GPU (a smoke test that kernels really run).  Returns 0
 * or a negative code with the CUDA error text in why. */
int cuda_selftest_dot(const float *a, const float *b, int n, float *out,
		      char *why, size_t why_len);

/* Host->device bandwidth of plain cudaMemcpyAsync from pinned memory on
 * device dev: reps copies of bytes (after a warm-up), timed with events, in
 * bytes/s.  The bound the weight store's copy path is measured against. */
int cuda_bench_h2d(int dev, size_t bytes, int reps, double *bytes_per_s, char *why,
		   size_t why_len);

#ifdef __cplusplus
}
#endif

#endif
