/* cuda_none.c - stand-in for the CUDA backend in builds without nvcc. */
#include "compute/cuda/cuda_probe.h"

#include <errno.h>
#include <stdio.h>

int cuda_probe(char *why, size_t why_len)
{
	snprintf(why, why_len, "this build has no CUDA support (meson -Dcuda=disabled or no nvcc)");
	return -ENODEV;
}

int cuda_selftest_dot(const float *a, const float *b, int n, float *out,
		      char *why, size_t why_len)
{
	(void)a; (void)b; (void)n; (void)out;
	return cuda_probe(why, why_len);
}
