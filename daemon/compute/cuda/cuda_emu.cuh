/* cuda_emu.cuh - a CPU stand-in for the part of CUDA our kernels use.
 *
 * Included (through cuda_compat.cuh) only by cuda_emu.cpp, the one
 * translation unit that compiles every kernel file with the host C++
 * compiler.  It exists so that the kernels' logic - indexing, tiling,
 * barriers, reductions, bounds - runs and is tested on machines without a
 * GPU, against the CPU backend, before any device time is spent.
 *
 * Model of execution.  A launch runs its blocks one after another.  Inside a
 * block every CUDA thread is a fiber (ucontext) on the calling OS thread;
 * the scheduler runs each fiber until it finishes or waits at a barrier:
 *   __syncthreads()      waits for every thread of the block;
 *   __shfl_xor_sync()    waits for the 32 lanes of its warp, twice (values
 *                        are posted, then read), as a warp-synchronous
 *                        exchange does.
 * A barrier that cannot complete - a thread that exited while others wait,
 * threads of one warp waiting at different barriers, a shuffle in a partial
 * warp - is a kernel bug that on a GPU hangs or gives undefined results;
 * here it aborts with a message naming the block.  Shared memory is poisoned
 * with 0xff bytes (a NaN in every float) at the start of every block, so a
 * kernel that reads shared memory it never wrote shows NaNs.
 *
 * What it does not model: concurrency between threads (fibers run in turn,
 * so data races go unnoticed - compute-sanitizer's racecheck on the GPU
 * covers those), device math precision (expf, sinf... are the host libm's,
 * which differ from CUDA's by an ulp or two), performance, and memory
 * spaces beyond a registry of "device" allocations that copies check.
 * Device memory is host memory from aligned_alloc.  Every call is
 * synchronous; streams are tokens, events keep the time of their last
 * record (so cudaEventElapsedTime times what ran between two records) and
 * refuse what CUDA refuses (timing an event never recorded or made with
 * cudaEventDisableTiming); cudaHostRegister keeps a registry of page-locked
 * ranges (overlaps and unknown pointers refused).  One launch runs at a time
 * (a mutex serialises callers on different OS threads).
 */
#ifndef SMK_COMPUTE_CUDA_EMU_CUH
#define SMK_COMPUTE_CUDA_EMU_CUH

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/clock.h"
#include <ucontext.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict

/* ---- types and error codes (values as in CUDA's driver_types.h) ---------- */

struct dim3 {
	unsigned x, y, z;
	constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};

enum cudaError {
	cudaSuccess = 0,
	cudaErrorInvalidValue = 1,
	cudaErrorMemoryAllocation = 2,
	cudaErrorInitializationError = 3,
	cudaErrorInvalidConfiguration = 9,
	cudaErrorInsufficientDriver = 35,
	cudaErrorNoDevice = 100,
	cudaErrorInvalidDevice = 101,
	cudaErrorInvalidResourceHandle = 400,
	cudaErrorHostMemoryAlreadyRegistered = 712,
	cudaErrorHostMemoryNotRegistered = 713,
	cudaErrorLaunchFailure = 719,
	cudaErrorNotSupported = 801,
};
typedef enum cudaError cudaError_t;

enum cudaMemcpyKind {
	cudaMemcpyHostToHost = 0,
	cudaMemcpyHostToDevice = 1,
	cudaMemcpyDeviceToHost = 2,
	cudaMemcpyDeviceToDevice = 3,
	cudaMemcpyDefault = 4,
};

enum cudaDeviceAttr {
	cudaDevAttrMaxSharedMemoryPerBlock = 8,
	cudaDevAttrMultiProcessorCount = 16,
	cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};

enum cudaFuncAttribute {
	cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
};

struct CUstream_st {
	int unused;
};
typedef struct CUstream_st *cudaStream_t;
/* Events keep what CUDA would refuse to time: never recorded, or made
 * with cudaEventDisableTiming.  Every call is synchronous here, so the
 * time of a record is the time its stream reaches it. */
struct CUevent_st {
	unsigned flags;
	bool recorded;
	double ms;                    /* CLOCK_MONOTONIC at the last record */
};
typedef struct CUevent_st *cudaEvent_t;

#define cudaStreamNonBlocking 0x01u
#define cudaEventDefault 0x00u
#define cudaEventDisableTiming 0x02u
#define cudaHostRegisterDefault 0x00u
#define cudaHostRegisterPortable 0x01u

enum cudaMemoryType {
	cudaMemoryTypeUnregistered = 0,
	cudaMemoryTypeHost = 1,
	cudaMemoryTypeDevice = 2,
};

struct cudaPointerAttributes {
	enum cudaMemoryType type;
	int device;
	void *devicePointer;
	void *hostPointer;
};

/* The emulated device's memory size (cudaMemGetInfo): an H100's. */
#define EMU_DEVICE_MEMORY (80ull << 30)

/* The limits the emulator reports and enforces (an H100's). */
#define EMU_SMEM_DEFAULT (48 * 1024)
#define EMU_SMEM_OPTIN (227 * 1024)
#define EMU_MAX_THREADS 1024
#define EMU_STACK (64 * 1024)

/* ---- emulator state ------------------------------------------------------ */

enum { EMU_RUN = 0, EMU_WAIT_BLOCK = 1, EMU_WAIT_WARP = 2 };

/* Switching fibers.  On x86-64 a few instructions save the callee-saved
 * registers on the current stack and swap stack pointers (the System V
 * ABI leaves nothing else to a callee: MXCSR and the x87 control word are
 * the same in every fiber).  ucontext's swapcontext also saves the signal
 * mask - a system call per switch, which made the emulator spend a third
 * of its time in the kernel; it remains the fallback elsewhere. */
#if defined(__x86_64__)
#define EMU_FAST_SWITCH 1
extern "C" void emu_switch_stack(void **save_sp, void *load_sp);
__asm__(".text\n"
	".globl emu_switch_stack\n"
	".hidden emu_switch_stack\n"
	".type emu_switch_stack,@function\n"
	"emu_switch_stack:\n"
	"	pushq %rbp\n"
	"	pushq %rbx\n"
	"	pushq %r12\n"
	"	pushq %r13\n"
	"	pushq %r14\n"
	"	pushq %r15\n"
	"	movq %rsp, (%rdi)\n"
	"	movq %rsi, %rsp\n"
	"	popq %r15\n"
	"	popq %r14\n"
	"	popq %r13\n"
	"	popq %r12\n"
	"	popq %rbx\n"
	"	popq %rbp\n"
	"	ret\n"
	".size emu_switch_stack, .-emu_switch_stack\n");
#endif

struct emu_fiber {
#ifdef EMU_FAST_SWITCH
	void *sp;
#else
	ucontext_t uc;
#endif
	int wait;
	bool done;
};

struct emu_smem_slot {
	const void *key;
	size_t off, bytes;
};

struct emu_state {
	/* the launch in progress */
	struct emu_fiber *fib;
	unsigned n, cur;
#ifdef EMU_FAST_SWITCH
	void *sched_sp;
#else
	ucontext_t sched;
#endif
	void (*body)(void *);
	void *body_ctx;
	dim3 grid, block;
	/* shared memory: static slots first, the dynamic part at dyn_off */
	unsigned char *smem;
	size_t smem_cap, smem_used, dyn_off, dyn_bytes;
	struct emu_smem_slot slots[32];
	int n_slots;
	uint64_t warp_post[EMU_MAX_THREADS];
	/* kept between launches */
	unsigned char *stacks;
	unsigned n_stacks;
	cudaError_t last_error;
	/* "device" allocations, for the checks in cudaMemcpy* */
	struct {
		void *p;
		size_t bytes;
	} dev[4096];
	int n_dev;
	/* cudaHostRegister'ed ranges: overlaps and unknown pointers are
	 * refused as CUDA refuses them */
	struct {
		void *p;
		size_t bytes;
	} reg[64];
	int n_reg;
	/* cudaFuncSetAttribute(MaxDynamicSharedMemorySize) per kernel */
	struct {
		const void *fn;
		int bytes;
	} fattr[64];
	int n_fattr;
};

static struct emu_state emu_st;
static pthread_mutex_t emu_lock = PTHREAD_MUTEX_INITIALIZER;

/* The built-in index variables.  Only one fiber runs at a time, so one copy
 * set by the scheduler before each switch serves them all. */
static dim3 threadIdx, blockIdx, blockDim, gridDim;

__attribute__((noreturn, format(printf, 1, 2))) static void emu_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "cuda emulator: kernel bug in block (%u,%u,%u): ", blockIdx.x, blockIdx.y,
		blockIdx.z);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* ---- memory -------------------------------------------------------------- */

static bool emu_is_dev(const void *p, size_t bytes)
{
	for (int i = 0; i < emu_st.n_dev; i++) {
		const char *b = (const char *)emu_st.dev[i].p;
		if ((const char *)p >= b && (const char *)p + bytes <= b + emu_st.dev[i].bytes)
			return true;
	}
	return false;
}

static inline cudaError_t cudaMalloc(void **p, size_t bytes)
{
	pthread_mutex_lock(&emu_lock);
	cudaError_t rc = cudaErrorMemoryAllocation;
	*p = NULL;
	if (emu_st.n_dev < (int)(sizeof(emu_st.dev) / sizeof(emu_st.dev[0]))) {
		/* 256-byte aligned, as cudaMalloc's blocks are, and exactly
		 * `bytes` long, so that valgrind or ASan see a kernel that
		 * reads past the end of a buffer. */
		void *m = NULL;
		if (posix_memalign(&m, 256, bytes ? bytes : 1) == 0) {
			emu_st.dev[emu_st.n_dev].p = m;
			emu_st.dev[emu_st.n_dev].bytes = bytes;
			emu_st.n_dev++;
			*p = m;
			rc = cudaSuccess;
		}
	}
	if (rc)
		emu_st.last_error = rc;
	pthread_mutex_unlock(&emu_lock);
	return rc;
}

template <typename T> static inline cudaError_t cudaMalloc(T **p, size_t bytes)
{
	return cudaMalloc((void **)p, bytes);
}

static inline cudaError_t cudaFree(void *p)
{
	if (!p)
		return cudaSuccess;
	pthread_mutex_lock(&emu_lock);
	cudaError_t rc = cudaErrorInvalidValue;
	for (int i = 0; i < emu_st.n_dev; i++)
		if (emu_st.dev[i].p == p) {
			free(p);
			emu_st.dev[i] = emu_st.dev[--emu_st.n_dev];
			rc = cudaSuccess;
			break;
		}
	pthread_mutex_unlock(&emu_lock);
	return rc;
}

static inline cudaError_t cudaMallocHost(void **p, size_t bytes)
{
	*p = malloc(bytes ? bytes : 1);
	return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}

template <typename T> static inline cudaError_t cudaMallocHost(T **p, size_t bytes)
{
	return cudaMallocHost((void **)p, bytes);
}

static inline cudaError_t cudaFreeHost(void *p)
{
	free(p);
	return cudaSuccess;
}

static inline cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes,
					  enum cudaMemcpyKind kind, cudaStream_t s)
{
	(void)s;
	if (!bytes)
		return cudaSuccess;
	pthread_mutex_lock(&emu_lock);
	bool ok = true;
	if (kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice)
		ok = ok && emu_is_dev(dst, bytes);
	if (kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice)
		ok = ok && emu_is_dev(src, bytes);
	pthread_mutex_unlock(&emu_lock);
	if (!ok)
		return emu_st.last_error = cudaErrorInvalidValue;
	memmove(dst, src, bytes);
	return cudaSuccess;
}

static inline cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes,
				     enum cudaMemcpyKind kind)
{
	return cudaMemcpyAsync(dst, src, bytes, kind, NULL);
}

static inline cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s)
{
	(void)s;
	pthread_mutex_lock(&emu_lock);
	bool ok = emu_is_dev(p, bytes);
	pthread_mutex_unlock(&emu_lock);
	if (!ok)
		return emu_st.last_error = cudaErrorInvalidValue;
	memset(p, v, bytes);
	return cudaSuccess;
}

/* ---- streams, events, devices, errors ------------------------------------ */

static inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
	(void)flags;
	*s = (cudaStream_t)calloc(1, sizeof(struct CUstream_st));
	return *s ? cudaSuccess : cudaErrorMemoryAllocation;
}

static inline cudaError_t cudaStreamDestroy(cudaStream_t s)
{
	free(s);
	return cudaSuccess;
}

static inline cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
	(void)s;
	return cudaSuccess;
}

static inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags)
{
	*e = (cudaEvent_t)calloc(1, sizeof(struct CUevent_st));
	if (!*e)
		return emu_st.last_error = cudaErrorMemoryAllocation;
	(*e)->flags = flags;
	return cudaSuccess;
}

static inline cudaError_t cudaEventCreate(cudaEvent_t *e)
{
	return cudaEventCreateWithFlags(e, cudaEventDefault);
}

static inline cudaError_t cudaEventDestroy(cudaEvent_t e)
{
	free(e);
	return cudaSuccess;
}

static inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
	(void)s;
	if (!e)
		return emu_st.last_error = cudaErrorInvalidResourceHandle;
	e->ms = smk_now() * 1e3;
	e->recorded = true;
	return cudaSuccess;
}

/* As CUDA: both events recorded, neither made without timing. */
static inline cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
	if (!ms || !start || !end || !start->recorded || !end->recorded ||
	    (start->flags & cudaEventDisableTiming) || (end->flags & cudaEventDisableTiming))
		return emu_st.last_error = cudaErrorInvalidResourceHandle;
	*ms = (float)(end->ms - start->ms);
	return cudaSuccess;
}

static inline cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
	(void)e;
	return cudaSuccess;
}

static inline cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags)
{
	(void)s;
	(void)e;
	(void)flags;
	return cudaSuccess;
}

/* Page-locking is a registry here: CUDA refuses a range that overlaps one
 * registered already, and unregistering a pointer it never registered. */
static inline cudaError_t cudaHostRegister(void *p, size_t bytes, unsigned flags)
{
	(void)flags;
	if (!p || !bytes)
		return emu_st.last_error = cudaErrorInvalidValue;
	pthread_mutex_lock(&emu_lock);
	cudaError_t rc = cudaSuccess;
	for (int i = 0; i < emu_st.n_reg && !rc; i++) {
		const char *b = (const char *)emu_st.reg[i].p;
		if ((const char *)p < b + emu_st.reg[i].bytes && b < (const char *)p + bytes)
			rc = cudaErrorHostMemoryAlreadyRegistered;
	}
	if (!rc && emu_is_dev(p, 1))
		rc = cudaErrorInvalidValue;
	if (!rc && emu_st.n_reg == (int)(sizeof(emu_st.reg) / sizeof(emu_st.reg[0])))
		rc = cudaErrorMemoryAllocation;
	if (!rc) {
		emu_st.reg[emu_st.n_reg].p = p;
		emu_st.reg[emu_st.n_reg].bytes = bytes;
		emu_st.n_reg++;
	}
	pthread_mutex_unlock(&emu_lock);
	return rc ? (emu_st.last_error = rc) : cudaSuccess;
}

static inline cudaError_t cudaHostUnregister(void *p)
{
	pthread_mutex_lock(&emu_lock);
	cudaError_t rc = cudaErrorHostMemoryNotRegistered;
	for (int i = 0; i < emu_st.n_reg; i++)
		if (emu_st.reg[i].p == p) {
			emu_st.reg[i] = emu_st.reg[--emu_st.n_reg];
			rc = cudaSuccess;
			break;
		}
	pthread_mutex_unlock(&emu_lock);
	return rc ? (emu_st.last_error = rc) : cudaSuccess;
}

/* Device 0 for an emulated device allocation, host otherwise (CUDA 11+
 * answers cudaMemoryTypeUnregistered for plain host memory). */
static inline cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *a, const void *p)
{
	memset(a, 0, sizeof(*a));
	a->device = -2;
	pthread_mutex_lock(&emu_lock);
	bool dev = emu_is_dev(p, 1);
	bool reg = false;
	for (int i = 0; i < emu_st.n_reg && !reg; i++)
		reg = (const char *)p >= (const char *)emu_st.reg[i].p &&
		      (const char *)p < (const char *)emu_st.reg[i].p + emu_st.reg[i].bytes;
	pthread_mutex_unlock(&emu_lock);
	if (dev) {
		a->type = cudaMemoryTypeDevice;
		a->device = 0;
		a->devicePointer = (void *)p;
	} else if (reg) {
		a->type = cudaMemoryTypeHost;
		a->device = 0;
		a->devicePointer = a->hostPointer = (void *)p;
	} else {
		a->hostPointer = (void *)p;
	}
	return cudaSuccess;
}

static inline cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b)
{
	pthread_mutex_lock(&emu_lock);
	size_t used = 0;
	for (int i = 0; i < emu_st.n_dev; i++)
		used += emu_st.dev[i].bytes;
	pthread_mutex_unlock(&emu_lock);
	*total_b = (size_t)EMU_DEVICE_MEMORY;
	*free_b = used < *total_b ? *total_b - used : 0;
	return cudaSuccess;
}

static inline cudaError_t cudaGetDeviceCount(int *n)
{
	*n = 1;
	return cudaSuccess;
}

static inline cudaError_t cudaSetDevice(int d)
{
	return d == 0 ? cudaSuccess : (emu_st.last_error = cudaErrorInvalidDevice);
}

static inline cudaError_t cudaGetDevice(int *d)
{
	*d = 0;
	return cudaSuccess;
}

static inline cudaError_t cudaDeviceGetAttribute(int *v, enum cudaDeviceAttr a, int dev)
{
	if (dev != 0)
		return cudaErrorInvalidDevice;
	switch (a) {
	case cudaDevAttrMaxSharedMemoryPerBlock: *v = EMU_SMEM_DEFAULT; break;
	case cudaDevAttrMultiProcessorCount: *v = 132; break;
	case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = EMU_SMEM_OPTIN; break;
	default: return cudaErrorInvalidValue;
	}
	return cudaSuccess;
}

static inline cudaError_t cudaFuncSetAttribute(const void *fn, enum cudaFuncAttribute a, int v)
{
	if (a != cudaFuncAttributeMaxDynamicSharedMemorySize || v < 0 ||
	    v > EMU_SMEM_OPTIN)
		return emu_st.last_error = cudaErrorInvalidValue;
	pthread_mutex_lock(&emu_lock);
	cudaError_t rc = cudaSuccess;
	int i = 0;
	while (i < emu_st.n_fattr && emu_st.fattr[i].fn != fn)
		i++;
	if (i == emu_st.n_fattr) {
		if (i == (int)(sizeof(emu_st.fattr) / sizeof(emu_st.fattr[0])))
			rc = cudaErrorMemoryAllocation;
		else
			emu_st.n_fattr++;
	}
	if (!rc) {
		emu_st.fattr[i].fn = fn;
		emu_st.fattr[i].bytes = v;
	}
	pthread_mutex_unlock(&emu_lock);
	return rc;
}

template <typename T>
static inline cudaError_t cudaFuncSetAttribute(T *fn, enum cudaFuncAttribute a, int v)
{
	return cudaFuncSetAttribute((const void *)fn, a, v);
}

static inline cudaError_t cudaGetLastError(void)
{
	cudaError_t e = emu_st.last_error;
	emu_st.last_error = cudaSuccess;
	return e;
}

static inline cudaError_t cudaPeekAtLastError(void)
{
	return emu_st.last_error;
}

static inline const char *cudaGetErrorString(cudaError_t e)
{
	switch (e) {
	case cudaSuccess: return "no error";
	case cudaErrorInvalidValue: return "invalid argument";
	case cudaErrorMemoryAllocation: return "out of memory";
	case cudaErrorInitializationError: return "initialization error";
	case cudaErrorInvalidConfiguration: return "invalid configuration argument";
	case cudaErrorInsufficientDriver: return "insufficient driver";
	case cudaErrorNoDevice: return "no CUDA-capable device is detected";
	case cudaErrorInvalidDevice: return "invalid device ordinal";
	case cudaErrorInvalidResourceHandle: return "invalid resource handle";
	case cudaErrorHostMemoryAlreadyRegistered: return "part or all of the requested memory range is already mapped";
	case cudaErrorHostMemoryNotRegistered: return "pointer does not correspond to a registered memory region";
	case cudaErrorLaunchFailure: return "unspecified launch failure";
	case cudaErrorNotSupported: return "operation not supported";
	}
	return "unknown error";
}

/* ---- block scheduler ----------------------------------------------------- */

static void emu_wait(int kind)
{
	struct emu_fiber *f = &emu_st.fib[emu_st.cur];
	f->wait = kind;
#ifdef EMU_FAST_SWITCH
	emu_switch_stack(&f->sp, emu_st.sched_sp);
#else
	swapcontext(&f->uc, &emu_st.sched);
#endif
}

static inline void __syncthreads(void)
{
	emu_wait(EMU_WAIT_BLOCK);
}

static inline unsigned emu_tid(void)
{
	return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}

/* Value of lane (lane ^ m) of the caller's warp.  Posting and reading are
 * separated by warp barriers, so every lane sees the others' posted values
 * of this step, never a later one. */
template <typename T> static inline T __shfl_xor_sync(unsigned mask, T v, int m)
{
	static_assert(sizeof(T) <= sizeof(uint64_t), "shuffle of a wide type");
	const unsigned tid = emu_tid();
	if (mask != 0xffffffffu)
		emu_die("__shfl_xor_sync with a partial mask (%#x)", mask);
	if (emu_st.n % 32)
		emu_die("__shfl_xor_sync in a block of %u threads (not whole warps)", emu_st.n);
	if (m < 0 || m > 31)
		emu_die("__shfl_xor_sync lane mask %d", m);
	memcpy(&emu_st.warp_post[tid], &v, sizeof(T));
	emu_wait(EMU_WAIT_WARP);
	T r;
	memcpy(&r, &emu_st.warp_post[(tid & ~31u) | ((tid & 31u) ^ (unsigned)m)], sizeof(T));
	emu_wait(EMU_WAIT_WARP);
	return r;
}

/* Block-shared array for the SMK_SHARED call site `key`: the first thread
 * of the block to get there allocates and poisons it. */
static void *emu_smem_static(const void *key, size_t bytes)
{
	for (int i = 0; i < emu_st.n_slots; i++)
		if (emu_st.slots[i].key == key) {
			if (emu_st.slots[i].bytes != bytes)
				emu_die("shared array declared with two sizes");
			return emu_st.smem + emu_st.slots[i].off;
		}
	size_t off = (emu_st.smem_used + 15) / 16 * 16;
	if (emu_st.n_slots == (int)(sizeof(emu_st.slots) / sizeof(emu_st.slots[0])) ||
	    off + bytes > emu_st.dyn_off)
		emu_die("static shared memory over %d bytes", EMU_SMEM_DEFAULT);
	emu_st.slots[emu_st.n_slots].key = key;
	emu_st.slots[emu_st.n_slots].off = off;
	emu_st.slots[emu_st.n_slots].bytes = bytes;
	emu_st.n_slots++;
	emu_st.smem_used = off + bytes;
	memset(emu_st.smem + off, 0xff, bytes);
	return emu_st.smem + off;
}

static void *emu_smem_dynamic(void)
{
	return emu_st.smem + emu_st.dyn_off;
}

static void emu_fiber_main(void)
{
	emu_st.body(emu_st.body_ctx);
	emu_st.fib[emu_st.cur].done = true;
#ifdef EMU_FAST_SWITCH
	/* never resumed: the next block gives this stack a new start */
	emu_switch_stack(&emu_st.fib[emu_st.cur].sp, emu_st.sched_sp);
	abort();
#endif
	/* ucontext: returning resumes uc_link, the scheduler */
}

#ifdef EMU_FAST_SWITCH
/* A fresh fiber on stack [lo, lo + bytes): the first switch to it pops six
 * zero registers and "returns" into emu_fiber_main with the stack aligned
 * as after a call (rsp % 16 == 8 at entry). */
static void *emu_fiber_start(unsigned char *lo, size_t bytes)
{
	uintptr_t top = ((uintptr_t)(lo + bytes)) & ~(uintptr_t)15;
	void **sp = (void **)top;
	*--sp = NULL;                          /* emu_fiber_main's return address */
	*--sp = (void *)emu_fiber_main;        /* where the first switch returns */
	for (int i = 0; i < 6; i++)
		*--sp = NULL;                  /* rbp rbx r12 r13 r14 r15 */
	return sp;
}
#endif

/* Release the barriers that every waiting party has reached; die on the
 * ones that can never complete.  Returns true if some fiber was released. */
static bool emu_release(void)
{
	const unsigned n = emu_st.n;
	bool released = false;
	unsigned at_block = 0, done = 0;
	for (unsigned i = 0; i < n; i++) {
		at_block += emu_st.fib[i].wait == EMU_WAIT_BLOCK;
		done += emu_st.fib[i].done;
	}
	if (at_block && at_block + done == n) {
		if (done)
			emu_die("%u thread(s) exited while %u wait at __syncthreads", done,
				at_block);
		for (unsigned i = 0; i < n; i++)
			emu_st.fib[i].wait = EMU_RUN;
		return true;
	}
	for (unsigned w = 0; w * 32 < n; w++) {
		unsigned lo = w * 32, hi = lo + 32 < n ? lo + 32 : n, at_warp = 0, wdone = 0;
		for (unsigned i = lo; i < hi; i++) {
			at_warp += emu_st.fib[i].wait == EMU_WAIT_WARP;
			wdone += emu_st.fib[i].done;
		}
		if (at_warp && at_warp + wdone == hi - lo) {
			if (wdone)
				emu_die("warp %u: %u lane(s) exited while %u shuffle", w, wdone,
					at_warp);
			for (unsigned i = lo; i < hi; i++)
				emu_st.fib[i].wait = EMU_RUN;
			released = true;
		}
	}
	return released;
}

static void emu_run_block(void)
{
	const unsigned n = emu_st.n;
	emu_st.n_slots = 0;
	emu_st.smem_used = 0;
	/* Static slots are poisoned as each block allocates them
	 * (emu_smem_static); the dynamic part here. */
	memset(emu_st.smem + emu_st.dyn_off, 0xff, emu_st.dyn_bytes);
	for (unsigned i = 0; i < n; i++) {
		struct emu_fiber *f = &emu_st.fib[i];
		f->wait = EMU_RUN;
		f->done = false;
#ifdef EMU_FAST_SWITCH
		f->sp = emu_fiber_start(emu_st.stacks + (size_t)i * EMU_STACK, EMU_STACK);
#else
		getcontext(&f->uc);
		f->uc.uc_stack.ss_sp = emu_st.stacks + (size_t)i * EMU_STACK;
		f->uc.uc_stack.ss_size = EMU_STACK;
		f->uc.uc_link = &emu_st.sched;
		makecontext(&f->uc, emu_fiber_main, 0);
#endif
	}
	unsigned left = n;
	while (left) {
		bool ran = false;
		for (unsigned i = 0; i < n; i++) {
			struct emu_fiber *f = &emu_st.fib[i];
			if (f->done || f->wait != EMU_RUN)
				continue;
			emu_st.cur = i;
			threadIdx = dim3(i % emu_st.block.x, i / emu_st.block.x % emu_st.block.y,
					 i / (emu_st.block.x * emu_st.block.y));
#ifdef EMU_FAST_SWITCH
			emu_switch_stack(&emu_st.sched_sp, f->sp);
#else
			swapcontext(&emu_st.sched, &f->uc);
#endif
			ran = true;
			left -= f->done;
		}
		if (!emu_release() && !ran && left)
			emu_die("deadlock: threads wait at different barriers "
				"(__syncthreads or a shuffle inside a divergent branch)");
	}
}

/* Run `body` (the kernel call) for every thread of every block. */
template <typename F>
static void emu_launch(const void *kernel, dim3 grid, dim3 block, size_t dyn, cudaStream_t s,
		       const F &body)
{
	(void)s;
	const unsigned long nt = (unsigned long)block.x * block.y * block.z;
	int allowed = EMU_SMEM_DEFAULT;
	pthread_mutex_lock(&emu_lock);
	for (int i = 0; i < emu_st.n_fattr; i++)
		if (emu_st.fattr[i].fn == kernel && emu_st.fattr[i].bytes > allowed)
			allowed = emu_st.fattr[i].bytes;
	if (nt == 0 || nt > EMU_MAX_THREADS || !grid.x || !grid.y || !grid.z ||
	    grid.y > 65535 || grid.z > 65535) {
		emu_st.last_error = cudaErrorInvalidConfiguration;
		pthread_mutex_unlock(&emu_lock);
		return;
	}
	if (dyn > (size_t)allowed) {
		/* what a GPU reports when the kernel was not opted in */
		emu_st.last_error = cudaErrorInvalidValue;
		pthread_mutex_unlock(&emu_lock);
		return;
	}
	if (emu_st.n_stacks < nt) {
		free(emu_st.stacks);
		free(emu_st.fib);
		emu_st.stacks = (unsigned char *)malloc((size_t)nt * EMU_STACK);
		emu_st.fib = (struct emu_fiber *)calloc(nt, sizeof(struct emu_fiber));
		if (!emu_st.stacks || !emu_st.fib) {
			fprintf(stderr, "cuda emulator: out of memory for %lu fibers\n", nt);
			abort();
		}
		emu_st.n_stacks = (unsigned)nt;
	}
	/* static slots below dyn_off (48 KiB, the static limit), dynamic above */
	emu_st.dyn_off = EMU_SMEM_DEFAULT;
	emu_st.dyn_bytes = dyn;
	emu_st.smem_cap = EMU_SMEM_DEFAULT + dyn;
	emu_st.smem = (unsigned char *)malloc(emu_st.smem_cap);
	if (!emu_st.smem) {
		fprintf(stderr, "cuda emulator: out of memory for shared memory\n");
		abort();
	}
	emu_st.n = (unsigned)nt;
	emu_st.grid = grid;
	emu_st.block = block;
	emu_st.body_ctx = (void *)&body;
	/* F is known here only; the fibers call through this one pointer. */
	struct call {
		static void run(void *p) { (*(const F *)p)(); }
	};
	emu_st.body = call::run;
	gridDim = grid;
	blockDim = block;
	for (unsigned z = 0; z < grid.z; z++)
		for (unsigned y = 0; y < grid.y; y++)
			for (unsigned x = 0; x < grid.x; x++) {
				blockIdx = dim3(x, y, z);
				emu_run_block();
			}
	free(emu_st.smem);
	emu_st.smem = NULL;
	pthread_mutex_unlock(&emu_lock);
}

#endif
