/* cuda_none.c - stand-in for the CUDA backend in builds without nvcc
 * (meson -Dcuda=disabled, or no CUDA toolkit): every entry point says why
 * there is no GPU, so callers and tests need no #ifdef. */
#include "compute/cuda/cuda_backend.h"
#include "compute/cuda/cuda_probe.h"
#include "compute/cuda/cuda_wdev.h"

#include <errno.h>
#include <stdio.h>

#define NO_CUDA "this build has no CUDA support (meson -Dcuda=disabled or no nvcc)"

int cuda_probe(char *why, size_t why_len)
{
	snprintf(why, why_len, NO_CUDA);
	return -ENODEV;
}

int cuda_describe(int dev, char *buf, size_t len)
{
	(void)dev;
	return cuda_probe(buf, len);
}

int cuda_selftest_dot(const float *a, const float *b, int n, float *out,
		      char *why, size_t why_len)
{
	(void)a; (void)b; (void)n; (void)out;
	return cuda_probe(why, why_len);
}

int cuda_bench_h2d(int dev, size_t bytes, int reps, double *bytes_per_s, char *why,
		   size_t why_len)
{
	(void)dev; (void)bytes; (void)reps; (void)bytes_per_s;
	return cuda_probe(why, why_len);
}

int backend_cuda_new(struct backend **out, const struct backend_limits *lim,
		     const struct cuda_backend_opts *opts, struct smk_err *err)
{
	(void)out; (void)lim; (void)opts;
	return smk_fail(err, -ENODEV, "cuda backend: " NO_CUDA);
}

int cuda_wdev_new(struct wdev **out, struct backend *be, struct smk_err *err)
{
	(void)out; (void)be;
	return smk_fail(err, -ENODEV, "cuda device tier: " NO_CUDA);
}

void cuda_wdev_free(struct wdev *d)
{
	(void)d;
}

int cuda_wdev_emu_new(struct wdev **out, struct backend *be, struct smk_err *err)
{
	(void)out; (void)be;
	return smk_fail(err, -ENOSYS, "cuda emulator device tier: " NO_CUDA);
}

void cuda_wdev_emu_free(struct wdev *d)
{
	(void)d;
}

int backend_cudaemu_new(struct backend **out, const struct backend_limits *lim,
			const struct cuda_backend_opts *opts, struct smk_err *err)
{
	(void)out; (void)lim; (void)opts;
	return smk_fail(err, -ENOSYS, "cuda emulator: " NO_CUDA);
}

size_t cuda_matmul_scratch_bytes(int max_rows, int64_t max_cols)
{
	(void)max_rows; (void)max_cols;
	return 0;
}
