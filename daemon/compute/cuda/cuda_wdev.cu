/* cuda_wdev.cu - the weight store's device tier on CUDA (cuda_wdev.h).
 *
 * Ordering, without the host ever waiting on the compute stream:
 *  - released(u) records done[u] on the compute stream after the last
 *    kernel that reads unit u was queued;
 *  - evicted(u) makes the copy stream wait for done[u], so every later
 *    copy (the one refilling u's bytes among them) starts after those
 *    kernels finished;
 *  - copy_in() queues the copy between two timing events on the copy
 *    stream and waits for the second: the caller (a prefetch worker, or the
 *    compute thread on a miss) marks the unit resident only once its bytes
 *    have landed, so the kernels queued after acquire() read whole units.
 * Copies from threads running at once share the copy stream (one DMA
 * engine direction); each waits on its own unit's events. */
#include "compute/cuda/cuda_check.cuh"
#include "compute/cuda/cuda_backend.h"
#include "compute/cuda/cuda_wdev.h"

#include <pthread.h>
#include <stdlib.h>

struct cuda_wdev {
	struct wdev base;
	int device;
	cudaStream_t compute, copy;
	int n_units;
	cudaEvent_t *done, *t0, *t1;   /* per unit */
	bool *recorded;                /* done[u] recorded at least once */
	/* Keeps each copy's (t0, copy, t1) together on the copy stream, with
	 * no other copy or wait between them, so t1 - t0 is that copy alone. */
	pthread_mutex_t mu;
};

static int wd_enter(struct cuda_wdev *w, struct smk_err *err)
{
	CUDA_CHECK(err, cudaSetDevice(w->device));
	return 0;
}

static void wd_free_events(struct cuda_wdev *w)
{
	for (int u = 0; u < w->n_units; u++) {
		if (w->done && w->done[u])
			cudaEventDestroy(w->done[u]);
		if (w->t0 && w->t0[u])
			cudaEventDestroy(w->t0[u]);
		if (w->t1 && w->t1[u])
			cudaEventDestroy(w->t1[u]);
	}
	free(w->done);
	free(w->t0);
	free(w->t1);
	free(w->recorded);
	w->done = w->t0 = w->t1 = NULL;
	w->recorded = NULL;
	w->n_units = 0;
}

/* One unit's copy between its timing events; waits for the second. */
static int copy_timed(struct cuda_wdev *w, int u, void *dst, const void *src, size_t n, float *ms,
		      struct smk_err *err)
{
	pthread_mutex_lock(&w->mu);
	cudaError_t e = cudaEventRecord(w->t0[u], w->copy);
	if (e == cudaSuccess)
		e = cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, w->copy);
	if (e == cudaSuccess)
		e = cudaEventRecord(w->t1[u], w->copy);
	pthread_mutex_unlock(&w->mu);
	CUDA_CHECK(err, e);
	CUDA_CHECK(err, cudaEventSynchronize(w->t1[u]));
	CUDA_CHECK(err, cudaEventElapsedTime(ms, w->t0[u], w->t1[u]));
	return 0;
}

static int wd_init(void *ctx, int n_units, struct smk_err *err)
{
	struct cuda_wdev *w = (struct cuda_wdev *)ctx;
	int rc = wd_enter(w, err);
	if (rc)
		return rc;
	wd_free_events(w);
	w->done = (cudaEvent_t *)calloc((size_t)n_units, sizeof(cudaEvent_t));
	w->t0 = (cudaEvent_t *)calloc((size_t)n_units, sizeof(cudaEvent_t));
	w->t1 = (cudaEvent_t *)calloc((size_t)n_units, sizeof(cudaEvent_t));
	w->recorded = (bool *)calloc((size_t)n_units, sizeof(bool));
	if (!w->done || !w->t0 || !w->t1 || !w->recorded) {
		wd_free_events(w);
		return smk_fail(err, -ENOMEM, "cuda device tier: out of memory for %d units' events",
				n_units);
	}
	w->n_units = n_units;
	for (int u = 0; u < n_units; u++) {
		CUDA_CHECK(err, cudaEventCreateWithFlags(&w->done[u], cudaEventDisableTiming));
		CUDA_CHECK(err, cudaEventCreate(&w->t0[u]));
		CUDA_CHECK(err, cudaEventCreate(&w->t1[u]));
	}
	return 0;
}

static int wd_alloc(void *ctx, void **out, size_t bytes, struct smk_err *err)
{
	struct cuda_wdev *w = (struct cuda_wdev *)ctx;
	int rc = wd_enter(w, err);
	if (rc)
		return rc;
	cudaError_t e = cudaMalloc(out, bytes ? bytes : 1);
	if (e != cudaSuccess) {
		cudaGetLastError(); /* an allocation failure is not sticky: clear it */
		size_t free_b = 0, total_b = 0;
		cudaMemGetInfo(&free_b, &total_b);
		return smk_fail(err, -ENOMEM, "memory.gpu_memory: cannot allocate %zu bytes of weight slots on device %d (%zu of %zu bytes free): %s",
				bytes, w->device, free_b, total_b, cudaGetErrorString(e));
	}
	return 0;
}

static void wd_free(void *ctx, void *p)
{
	struct cuda_wdev *w = (struct cuda_wdev *)ctx;
	struct smk_err e = { 0, "" };
	if (p && !wd_enter(w, &e))
		cudaFree(p);
}

static int wd_host_register(void *ctx, void *p, size_t bytes, struct smk_err *err)
{
	struct cuda_wdev *w = (struct cuda_wdev *)ctx;
	int rc = wd_enter(w, err);
	if (rc)
		return rc;
	if (!p || !bytes)
		return smk_fail(err, -EINVAL, "nothing to page-lock");
	cudaError_t e = cudaHostRegister(p, bytes, cudaHostRegisterPortable);
	if (e != cudaSuccess) {
		cudaGetLastError();
		return smk_fail(err, -EIO, "cudaHostRegister of %zu bytes: %s", bytes, cudaGetErrorString(e));
	}
	return 0;
}

static void wd_host_unregister(void *ctx, void *p)
{
	struct cuda_wdev *w = (struct cuda_wdev *)ctx;
	struct smk_err e = { 0, "" };
	if (p && !wd_enter(w, &e))
		cudaHostUnregister(p);
}

static int wd_copy_in(void *ctx, int u, void *dst, const void *src, size_t n, double *secs,
		      char *msg, size_t msg_len)
{
	struct cuda_wdev *w = (struct cuda_wdev *)ctx;
	struct smk_err e = { 0, "" };
	float ms = 0.0f;
	int rc = u < 0 || u >= w->n_units ? smk_fail(&e, -EINVAL, "unit %d of %d", u, w->n_units)
					  : wd_enter(w, &e);
	if (!rc)
		rc = copy_timed(w, u, dst, src, n, &ms, &e);
	if (rc) {
		snprintf(msg, msg_len, "host->device copy of %zu bytes: %s", n, e.msg);
		return rc;
	}
	*secs = ms * 1e-3;
	return 0;
}

static void wd_released(void *ctx, int u)
{
	struct cuda_wdev *w = (struct cuda_wdev *)ctx;
	struct smk_err e = { 0, "" };
	if (u < 0 || u >= w->n_units || wd_enter(w, &e))
		return;
	/* A failure here would surface at the compute stream's next sync. */
	if (cudaEventRecord(w->done[u], w->compute) == cudaSuccess)
		w->recorded[u] = true;
}

static void wd_evicted(void *ctx, int u)
{
	struct cuda_wdev *w = (struct cuda_wdev *)ctx;
	struct smk_err e = { 0, "" };
	if (u < 0 || u >= w->n_units || !w->recorded[u] || wd_enter(w, &e))
		return;
	pthread_mutex_lock(&w->mu);
	cudaStreamWaitEvent(w->copy, w->done[u], 0);
	pthread_mutex_unlock(&w->mu);
}

extern "C" int cuda_wdev_new(struct wdev **out, struct backend *be, struct smk_err *err)
{
	if (!be || be->ops->host_memory)
		return smk_fail(err, -EINVAL, "cuda device tier: needs the cuda backend");
	struct cuda_wdev *w = (struct cuda_wdev *)calloc(1, sizeof(*w));
	if (!w)
		return smk_fail(err, -ENOMEM, "cuda device tier: out of memory");
	w->compute = cuda_be_ops(be)->ctx(be)->stream;
	pthread_mutex_init(&w->mu, NULL);
	int rc = 0;
	CUDA_CHECK_GOTO(err, rc, cudaGetDevice(&w->device), fail);
	CUDA_CHECK_GOTO(err, rc, cudaStreamCreateWithFlags(&w->copy, cudaStreamNonBlocking), fail);
	w->base.ctx = w;
	w->base.init = wd_init;
	w->base.alloc = wd_alloc;
	w->base.free = wd_free;
	w->base.host_register = wd_host_register;
	w->base.host_unregister = wd_host_unregister;
	w->base.copy_in = wd_copy_in;
	w->base.released = wd_released;
	w->base.evicted = wd_evicted;
	*out = &w->base;
	return 0;
fail:
	pthread_mutex_destroy(&w->mu);
	free(w);
	return rc;
}

extern "C" void cuda_wdev_free(struct wdev *d)
{
	if (!d)
		return;
	struct cuda_wdev *w = (struct cuda_wdev *)d->ctx;
	struct smk_err e = { 0, "" };
	if (!wd_enter(w, &e)) {
		cudaStreamSynchronize(w->copy);
		wd_free_events(w);
		cudaStreamDestroy(w->copy);
	}
	pthread_mutex_destroy(&w->mu);
	free(w);
}
