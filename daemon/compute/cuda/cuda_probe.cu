/* cuda_probe.cu - device discovery and a one-kernel self test.  Kept in every
 * CUDA-enabled build so that nvcc compiles and links something real even
 * before (and alongside) the full backend. */
#include "compute/cuda/cuda_probe.h"
#include "compute/cuda/cuda_check.cuh"

extern "C" int cuda_probe(char *why, size_t why_len)
{
	int n = 0;
	cudaError_t e = cudaGetDeviceCount(&n);
	if (e != cudaSuccess) {
		snprintf(why, why_len, "no usable GPU: %s", cudaGetErrorString(e));
		return -ENODEV;
	}
	if (n <= 0) {
		snprintf(why, why_len, "no usable GPU: no CUDA device found");
		return -ENODEV;
	}
	return n;
}

extern "C" int cuda_describe(int dev, char *buf, size_t len)
{
	cudaDeviceProp p;
	int drv = 0, rt = 0;
	CUDA_CHECK_OR(cudaGetDeviceProperties(&p, dev), buf, len, fail);
	CUDA_CHECK_OR(cudaDriverGetVersion(&drv), buf, len, fail);
	CUDA_CHECK_OR(cudaRuntimeGetVersion(&rt), buf, len, fail);
	snprintf(buf, len, "device %d: %s, compute capability %d.%d, %d SMs, %.1f GiB, "
		 "driver %d.%d, runtime %d.%d", dev, p.name, p.major, p.minor,
		 p.multiProcessorCount, (double)p.totalGlobalMem / (1024.0 * 1024 * 1024),
		 drv / 1000, drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
	return 0;
fail:
	return -ENODEV;
}

/* One block, shared-memory tree reduction. */
__global__ static void dot_kernel(const float *a, const float *b, int n, float *out)
{
	__shared__ float part[256];
	float s = 0.0f;
	for (int i = threadIdx.x; i < n; i += blockDim.x)
		s += a[i] * b[i];
	part[threadIdx.x] = s;
	__syncthreads();
	for (int w = blockDim.x / 2; w > 0; w /= 2) {
		if (threadIdx.x < w)
			part[threadIdx.x] += part[threadIdx.x + w];
		__syncthreads();
	}
	if (threadIdx.x == 0)
		*out = part[0];
}

extern "C" int cuda_selftest_dot(const float *a, const float *b, int n, float *out,
				 char *why, size_t why_len)
{
	float *da = NULL, *db = NULL, *dout = NULL;
	int rc = -EIO;
	size_t bytes = (size_t)n * sizeof(float);
	CUDA_CHECK_OR(cudaMalloc(&da, bytes), why, why_len, done);
	CUDA_CHECK_OR(cudaMalloc(&db, bytes), why, why_len, done);
	CUDA_CHECK_OR(cudaMalloc(&dout, sizeof(float)), why, why_len, done);
	CUDA_CHECK_OR(cudaMemcpy(da, a, bytes, cudaMemcpyHostToDevice), why, why_len, done);
	CUDA_CHECK_OR(cudaMemcpy(db, b, bytes, cudaMemcpyHostToDevice), why, why_len, done);
	dot_kernel<<<1, 256>>>(da, db, n, dout);
	CUDA_CHECK_OR(cudaGetLastError(), why, why_len, done);
	CUDA_CHECK_OR(cudaMemcpy(out, dout, sizeof(float), cudaMemcpyDeviceToHost), why, why_len, done);
	rc = 0;
done:
	cudaFree(da);
	cudaFree(db);
	cudaFree(dout);
	return rc;
}

/* The reference the weight store's copies are held to: plain
 * cudaMemcpyAsync from pinned (cudaHostAlloc) memory on a stream of its own,
 * `reps` copies of `bytes` timed with events after one warm-up copy. */
extern "C" int cuda_bench_h2d(int dev, size_t bytes, int reps, double *bytes_per_s, char *why,
			      size_t why_len)
{
	void *host = NULL, *d = NULL;
	cudaStream_t st = NULL;
	cudaEvent_t t0 = NULL, t1 = NULL;
	float ms = 0.0f;
	int rc = -EIO;
	CUDA_CHECK_OR(cudaSetDevice(dev), why, why_len, done);
	CUDA_CHECK_OR(cudaHostAlloc(&host, bytes, cudaHostAllocPortable), why, why_len, done);
	CUDA_CHECK_OR(cudaMalloc(&d, bytes), why, why_len, done);
	CUDA_CHECK_OR(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), why, why_len, done);
	CUDA_CHECK_OR(cudaEventCreate(&t0), why, why_len, done);
	CUDA_CHECK_OR(cudaEventCreate(&t1), why, why_len, done);
	memset(host, 0x5a, bytes);
	CUDA_CHECK_OR(cudaMemcpyAsync(d, host, bytes, cudaMemcpyHostToDevice, st), why, why_len, done);
	CUDA_CHECK_OR(cudaEventRecord(t0, st), why, why_len, done);
	for (int i = 0; i < reps; i++)
		CUDA_CHECK_OR(cudaMemcpyAsync(d, host, bytes, cudaMemcpyHostToDevice, st), why, why_len,
			      done);
	CUDA_CHECK_OR(cudaEventRecord(t1, st), why, why_len, done);
	CUDA_CHECK_OR(cudaEventSynchronize(t1), why, why_len, done);
	CUDA_CHECK_OR(cudaEventElapsedTime(&ms, t0, t1), why, why_len, done);
	*bytes_per_s = ms > 0 ? (double)bytes * reps / (ms * 1e-3) : 0.0;
	rc = 0;
done:
	if (t0)
		cudaEventDestroy(t0);
	if (t1)
		cudaEventDestroy(t1);
	if (st)
		cudaStreamDestroy(st);
	cudaFree(d);
	cudaFreeHost(host);
	return rc;
}
