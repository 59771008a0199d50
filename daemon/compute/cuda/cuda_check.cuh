/* cuda_check.cuh - CUDA_CHECK records the failing expression, function, file
 * and line, and turns the error into a negative status code for C callers. */
#ifndef SMK_COMPUTE_CUDA_CHECK_CUH
#define SMK_COMPUTE_CUDA_CHECK_CUH

#include <cuda_runtime.h>
#include <errno.h>
#include <stdio.h>

#define CUDA_CHECK_OR(expr, why, why_len, label)                              \
	do {                                                                  \
		cudaError_t e_ = (expr);                                      \
		if (e_ != cudaSuccess) {                                      \
			snprintf((why), (why_len), "%s failed in %s (%s:%d): %s", \
				 #expr, __func__, __FILE__, __LINE__,         \
				 cudaGetErrorString(e_));                     \
			goto label;                                           \
		}                                                             \
	} while (0)

#endif
