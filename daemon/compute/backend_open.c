/* backend_open.c - which backend runs: CUDA when a GPU is usable, else the
 * CPU, with the reason in one line (backend.h). */
#include "compute/backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/cpu/qdot.h"
#include "compute/cuda/cuda_backend.h"
#include "compute/cuda/cuda_probe.h"
#include "compute/cuda/cuda_wdev.h"
#include "quant/qtype.h"

const char *backend_kind_name(enum backend_kind k)
{
	switch (k) {
	case BACKEND_AUTO: return "auto";
	case BACKEND_CPU: return "cpu";
	case BACKEND_CUDA: return "cuda";
	case BACKEND_CUDAEMU: return "cuda-emu";
	}
	return "?";
}

int backend_open(struct backend **out, enum backend_kind *kind_out, enum backend_kind want,
		 int gpu_id, int num_gpus, const struct backend_limits *lim,
		 char *note, size_t note_len, struct smk_err *err)
{
	char why[200];
	enum backend_kind kind = want;
	note[0] = '\0';
	/* A diagnostic override (scripts/gpu-check, tests): SMOKE_BACKEND. */
	const char *env = getenv("SMOKE_BACKEND");
	if (kind == BACKEND_AUTO && env && *env) {
		if (!strcmp(env, "cpu"))
			kind = BACKEND_CPU;
		else if (!strcmp(env, "cuda"))
			kind = BACKEND_CUDA;
		else if (!strcmp(env, "cuda-emu"))
			kind = BACKEND_CUDAEMU;
		else if (strcmp(env, "auto"))
			return smk_fail(err, -EINVAL, "SMOKE_BACKEND = \"%s\": expected auto, cpu, cuda or cuda-emu",
					env);
	}
	if (kind == BACKEND_AUTO && num_gpus <= 0) {
		snprintf(note, note_len, "cpu backend (device.num_gpus = 0)");
		kind = BACKEND_CPU;
	}
	if (kind == BACKEND_AUTO || kind == BACKEND_CUDA) {
		int n = cuda_probe(why, sizeof(why));
		if (n > 0 && (gpu_id < 0 || gpu_id >= n))
			return smk_fail(err, -EINVAL, "device.gpu_id = %d, but %d CUDA device%s found (0..%d)",
					gpu_id, n, n == 1 ? " was" : "s were", n - 1);
		struct smk_err e2 = { 0, "" };
		struct cuda_backend_opts co = { .device = gpu_id };
		int rc = n > 0 ? backend_cuda_new(out, lim, &co, &e2) : n;
		if (rc == 0) {
			cuda_describe(gpu_id, why, sizeof(why));
			snprintf(note, note_len, "cuda backend on %s%s", why,
				 num_gpus > 1 ? " (device.num_gpus > 1: one GPU is used; docs/cuda.md)" : "");
			*kind_out = BACKEND_CUDA;
			return 0;
		}
		if (n > 0)
			snprintf(why, sizeof(why), "the CUDA backend failed to start: %s", e2.msg);
		if (kind == BACKEND_CUDA)
			return smk_fail(err, rc, "cuda backend: %s", why);
		snprintf(note, note_len, "cpu backend (%s)", why);
		kind = BACKEND_CPU;
	}
	if (kind == BACKEND_CUDAEMU) {
		snprintf(note, note_len, "cuda kernels under the CPU emulator (tests only)");
		*kind_out = BACKEND_CUDAEMU;
		return backend_cudaemu_new(out, lim, NULL, err);
	}
	if (!note[0])
		snprintf(note, note_len, "cpu backend");
	*kind_out = BACKEND_CPU;
	const int rc = backend_cpu_new(out, lim, err);
	if (rc == 0) { /* which kernels CPUID, SMOKE_CPU and SMOKE_EXACT chose, for /stats and the log */
		const size_t used = strlen(note);
		snprintf(note + used, note_len - used, "; %s kernels%s", qdot_isa(),
			 qdot_block_order(QTYPE_Q4_K) ? ", K-quants in the block order (SMOKE_EXACT=1: llama.cpp's)" : "");
	}
	return rc;
}

int backend_wdev_new(struct wdev **out, struct backend *be, enum backend_kind kind,
		     struct smk_err *err)
{
	switch (kind) {
	case BACKEND_CUDA:
		return cuda_wdev_new(out, be, err);
	case BACKEND_CUDAEMU:
		return cuda_wdev_emu_new(out, be, err);
	default:
		return smk_fail(err, -EINVAL, "a %s backend has no device tier", backend_kind_name(kind));
	}
}

uint64_t backend_device_scratch_bytes(const struct backend_limits *lim)
{
	return (sizeof(uint16_t) << 16) + /* the kernels' GELU table */
	       cuda_matmul_scratch_bytes(lim->max_rows, lim->max_cols);
}
