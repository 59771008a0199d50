/* cuda_wdev.h - the weight store's device tier on a CUDA device
 * (compute/wdev.h): slot memory from cudaMalloc, the RAM arena page-locked
 * with cudaHostRegister, copies on a copy stream of their own, ordered
 * against the backend's compute stream by per-unit events. */
#ifndef SMK_COMPUTE_CUDA_WDEV_H
#define SMK_COMPUTE_CUDA_WDEV_H

#include "compute/backend.h"
#include "util/err.h"
#include "compute/wdev.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A wdev for a backend made by backend_cuda_new: its device (where the
 * backend's memory lives) and compute stream, plus a non-blocking copy
 * stream made here.  One store at a time may use it (wstore_opts.dev).
 * *out owned by the caller: cuda_wdev_free after the store that uses it
 * (wstore_free), before the backend.  -ENODEV in builds without CUDA,
 * -EINVAL for a host-memory backend. */
int cuda_wdev_new(struct wdev **out, struct backend *be, struct smk_err *err);
void cuda_wdev_free(struct wdev *d);

/* The same code for the CPU emulator (cuda_emu.cuh), over a backend made
 * by backend_cudaemu_new: "device" memory is emulator memory, which
 * cudaMemcpy checks, so tests see every copy land in it.  -ENOSYS in
 * builds without CUDA.  Free with cuda_wdev_emu_free. */
int cuda_wdev_emu_new(struct wdev **out, struct backend *be, struct smk_err *err);
void cuda_wdev_emu_free(struct wdev *d);

#ifdef __cplusplus
}
#endif

#endif
