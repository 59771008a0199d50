/* cuda_check.cuh - CUDA errors into smoke's error convention.
 *
 * CUDA_CHECK(err, expr) evaluates a CUDA runtime call; on failure it records
 * in err (struct smk_err, may be NULL) the expression, the function, the
 * file and line, and CUDA's own message, and returns the negative code of
 * cuda_errno() from the enclosing function:
 *
 *   CUDA_CHECK(err, cudaMalloc(&p, bytes));
 *   -> "cudaMalloc(&p, bytes) failed in cuda_ctx_init (cuda_backend.cu:120):
 *       out of memory", return -ENOMEM
 *
 * CUDA_CHECK_GOTO does the same but stores the code in rc and jumps to a
 * cleanup label; CUDA_CHECK_OR is the probe's variant for a plain char
 * buffer.  Kernel launches are checked with CUDA_CHECK(err,
 * cudaGetLastError()) right after the launch: that reports configuration
 * errors; faults inside a kernel surface at the next synchronisation. */
#ifndef SMK_COMPUTE_CUDA_CHECK_CUH
#define SMK_COMPUTE_CUDA_CHECK_CUH

#include "compute/cuda/cuda_compat.cuh"

#include <errno.h>
#include <stdio.h>

#include "util/err.h"

/* The errno-style code for a CUDA error. */
static inline int cuda_errno(cudaError_t e)
{
	switch (e) {
	case cudaSuccess: return 0;
	case cudaErrorMemoryAllocation: return -ENOMEM;
	case cudaErrorInvalidValue:
	case cudaErrorInvalidConfiguration: return -EINVAL;
	case cudaErrorNoDevice:
	case cudaErrorInvalidDevice:
	case cudaErrorInsufficientDriver: return -ENODEV;
	case cudaErrorNotSupported: return -ENOTSUP;
	default: return -EIO;
	}
}

#define CUDA_FAIL_(err, e_, expr)                                                 \
	smk_fail((err), cuda_errno(e_), "%s failed in %s (%s:%d): %s", expr, __func__, \
		 __FILE__, __LINE__, cudaGetErrorString(e_))

#define CUDA_CHECK(err, expr)                                         \
	do {                                                          \
		cudaError_t e_ = (expr);                              \
		if (e_ != cudaSuccess)                                \
			return CUDA_FAIL_((err), e_, #expr);          \
	} while (0)

#define CUDA_CHECK_GOTO(err, rc, expr, label)                         \
	do {                                                          \
		cudaError_t e_ = (expr);                              \
		if (e_ != cudaSuccess) {                              \
			(rc) = CUDA_FAIL_((err), e_, #expr);          \
			goto label;                                   \
		}                                                     \
	} while (0)

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
