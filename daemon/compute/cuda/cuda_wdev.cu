/* cuda_wdev.cu - the weight store's device tier on CUDA (cuda_wdev.h,
 * compute/wdev.h).
 *
 * Ordering, without the host ever waiting on the compute stream:
 *  - released(u) records done[u] on the compute stream after the last
 *    kernel that reads unit u was queued;
 *  - evicted(u) makes the copy stream wait for done[u], so every later
 *    copy (the one refilling u's slot among them) starts after those
 *    kernels finished;
 *  - copy_in() queues the copy between two timing events on the copy
 *    stream and waits for the second: the caller (a prefetch worker, or the
 *    compute thread on a miss) marks the unit resident only once its bytes
 *    have landed, so the kernels queued after acquire() read whole units
 *    and the compute stream needs no wait of its own.
 * Timing: each copy takes the next entry of a ring of event pairs (start,
 * end) in queue order; an eviction's wait is preceded by a third event of
 * the entry the next copy will take.  So on the copy stream, between one
 * copy's end and the next one's start, [end, wait mark] is idle (nothing
 * queued) and [wait mark, start] is the wait for kernels (wdev.times).
 * Copies from threads running at once share the copy stream (one DMA
 * direction); each waits on its own unit's events.  The mutex that keeps a
 * copy's events around it is held only while the three calls are queued,
 * which takes microseconds from page-locked memory; from pageable memory
 * (cudaHostRegister refused) cudaMemcpyAsync returns only once the bytes
 * are staged, so evicted(), which takes the same mutex under the store's,
 * can then stall the store for a copy's time: one more reason the store
 * warns when page-locking fails.
 *
 * A failed record or wait must not let a refill overtake a kernel: a unit
 * whose done event could not be recorded is marked so, and its eviction
 * then waits for the whole compute stream on the host; a wait that cannot
 * be queued is done on the host too.  If even that fails the device is
 * gone: the first error is kept and every later copy returns it.
 *
 * Every failed runtime call is cleared from CUDA's per-thread last error
 * (cudaGetLastError), so it is not reported again by a kernel launch check
 * of the backend on the same thread.
 *
 * Compiled twice, as the kernels are: by nvcc (cuda_wdev_new) and into
 * cuda_emu.cpp for the CPU emulator (cuda_wdev_emu_new). */
#include "compute/cuda/cuda_check.cuh"
#include "compute/cuda/cuda_backend.h"
#include "compute/cuda/cuda_wdev.h"

#include <pthread.h>
#include <stdlib.h>

/* CUDA_CHECK, clearing the thread's last error on the way out. */
#define WD_CHECK(err, expr)                                           \
	do {                                                          \
		cudaError_t e_ = (expr);                              \
		if (e_ != cudaSuccess) {                              \
			cudaGetLastError();                           \
			return CUDA_FAIL_((err), e_, #expr);          \
		}                                                     \
	} while (0)

#define WD_RING 64

enum wd_done {
	WD_NONE = 0,     /* never released: no kernel has read the unit */
	WD_EVENT,        /* done[u] marks the last kernel that read it */
	WD_UNKNOWN,      /* the record failed: only the whole stream is safe */
};

/* One copy's timing events (the ring below). */
struct wd_mark {
	cudaEvent_t start, end, wait;
	bool waited;                   /* wait recorded for this entry's copy */
};

struct cuda_wdev {
	struct wdev base;
	int device;
	cudaStream_t compute, copy;
	int n_units;
	cudaEvent_t *done;             /* per unit */
	enum wd_done *state;           /* per unit: what done[u] says */
	/* Copy k's events are ring[k % WD_RING]: copies in flight at once are
	 * bounded by the threads that copy, far below WD_RING, so an entry is
	 * reused only long after its copy was timed. */
	struct wd_mark ring[WD_RING];
	bool ring_made;
	uint64_t seq;                  /* copies queued */
	struct wdev_times times;
	/* Keeps each copy's (start, copy, end) together on the copy stream,
	 * with no other copy or wait between them, so end - start is that copy
	 * alone; also guards state[], seq, times and failed. */
	pthread_mutex_t mu;
	struct smk_err failed;         /* the device is unusable (code != 0) */
};

static int wd_enter(struct cuda_wdev *w, struct smk_err *err)
{
	WD_CHECK(err, cudaSetDevice(w->device));
	return 0;
}

static void wd_free_events(struct cuda_wdev *w)
{
	for (int u = 0; u < w->n_units; u++)
		if (w->done && w->done[u])
			cudaEventDestroy(w->done[u]);
	free(w->done);
	free(w->state);
	w->done = NULL;
	w->state = NULL;
	w->n_units = 0;
}

static void wd_free_ring(struct cuda_wdev *w)
{
	for (int i = 0; i < WD_RING; i++) {
		struct wd_mark *m = &w->ring[i];
		if (m->start)
			cudaEventDestroy(m->start);
		if (m->end)
			cudaEventDestroy(m->end);
		if (m->wait)
			cudaEventDestroy(m->wait);
		memset(m, 0, sizeof(*m));
	}
	w->ring_made = false;
}

static int wd_make_ring(struct cuda_wdev *w, struct smk_err *err)
{
	wd_free_ring(w); /* what an earlier attempt made half-way */
	for (int i = 0; i < WD_RING; i++) {
		struct wd_mark *m = &w->ring[i];
		WD_CHECK(err, cudaEventCreateWithFlags(&m->start, cudaEventDefault));
		WD_CHECK(err, cudaEventCreateWithFlags(&m->end, cudaEventDefault));
		WD_CHECK(err, cudaEventCreateWithFlags(&m->wait, cudaEventDefault));
	}
	w->ring_made = true;
	return 0;
}

/* Keep the first fatal error (mutex held). */
static void wd_fail(struct cuda_wdev *w, const struct smk_err *e)
{
	if (!w->failed.code)
		w->failed = *e;
}

static int wd_init(void *ctx, int n_units, struct smk_err *err)
{
	struct cuda_wdev *w = (struct cuda_wdev *)ctx;
	if (n_units <= 0)
		return smk_fail(err, -EINVAL, "cuda device tier: %d units", n_units);
	int rc = wd_enter(w, err);
	if (rc)
		return rc;
	/* A store made earlier with this wdev is gone: its copies and waits
	 * must have drained before its events go. */
	WD_CHECK(err, cudaStreamSynchronize(w->copy));
	wd_free_events(w);
	w->done = (cudaEvent_t *)calloc((size_t)n_units, sizeof(cudaEvent_t));
	w->state = (enum wd_done *)calloc((size_t)n_units, sizeof(enum wd_done));
	if (!w->done || !w->state) {
		wd_free_events(w);
		return smk_fail(err, -ENOMEM, "cuda device tier: out of memory for %d units' events",
				n_units);
	}
	/* From here wd_free_events destroys what was made, even half-way. */
	w->n_units = n_units;
	for (int u = 0; u < n_units; u++)
		/* done only orders streams: no timestamp to take */
		WD_CHECK(err, cudaEventCreateWithFlags(&w->done[u], cudaEventDisableTiming));
	/* The copy stream's order restarts with this store (its stream has
	 * drained): the ring's entries are free again. */
	w->seq = 0;
	for (int i = 0; i < WD_RING; i++)
		w->ring[i].waited = false;
	return w->ring_made ? 0 : wd_make_ring(w, err);
}

static int wd_alloc(void *ctx, void **out, size_t bytes, struct smk_err *err)
{
	struct cuda_wdev *w = (struct cuda_wdev *)ctx;
	int rc = wd_enter(w, err);
	if (rc)
		return rc;
	*out = NULL;
	cudaError_t e = cudaMalloc(out, bytes ? bytes : 1);
	if (e != cudaSuccess) {
		cudaGetLastError(); /* an allocation failure is not sticky: clear it */
		size_t free_b = 0, total_b = 0;
		if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess)
			cudaGetLastError();
		*out = NULL;
		return smk_fail(err, cuda_errno(e),
				"memory.gpu_memory: cannot allocate %zu bytes of weight slots on device %d (%zu of %zu bytes free): cudaMalloc failed in %s (%s:%d): %s",
				bytes, w->device, free_b, total_b, __func__, __FILE__, __LINE__,
				cudaGetErrorString(e));
	}
	return 0;
}

static void wd_free(void *ctx, void *p)
{
	struct cuda_wdev *w = (struct cuda_wdev *)ctx;
	struct smk_err e = { 0, "" };
	if (p && !wd_enter(w, &e) && cudaFree(p) != cudaSuccess)
		cudaGetLastError();
}

static int wd_host_register(void *ctx, void *p, size_t bytes, struct smk_err *err)
{
	struct cuda_wdev *w = (struct cuda_wdev *)ctx;
	int rc = wd_enter(w, err);
	if (rc)
		return rc;
	if (!p || !bytes)
		return smk_fail(err, -EINVAL, "cuda device tier: nothing to page-lock");
	/* Portable: pinned for every device, as several GPUs will share it. */
	WD_CHECK(err, cudaHostRegister(p, bytes, cudaHostRegisterPortable));
	return 0;
}

static void wd_host_unregister(void *ctx, void *p)
{
	struct cuda_wdev *w = (struct cuda_wdev *)ctx;
	struct smk_err e = { 0, "" };
	if (p && !wd_enter(w, &e) && cudaHostUnregister(p) != cudaSuccess)
		cudaGetLastError();
}

/* ms between two completed events, or 0 where CUDA cannot say (an event
 * whose record failed): the accounting is a diagnostic, never an error. */
static double wd_elapsed(cudaEvent_t a, cudaEvent_t b)
{
	float ms = 0.0f;
	if (cudaEventElapsedTime(&ms, a, b) != cudaSuccess) {
		cudaGetLastError();
		return 0.0;
	}
	return ms > 0.0f ? ms : 0.0;
}

/* One unit's copy between its timing events; waits for the second, then
 * adds the copy and the gap before it to the totals. */
static int copy_timed(struct cuda_wdev *w, void *dst, const void *src, size_t n, float *ms,
		      struct smk_err *err)
{
	pthread_mutex_lock(&w->mu);
	if (w->failed.code) {
		*err = w->failed;
		pthread_mutex_unlock(&w->mu);
		return err->code;
	}
	const uint64_t k = w->seq++;
	struct wd_mark *m = &w->ring[k % WD_RING];
	const struct wd_mark *prev = k ? &w->ring[(k - 1) % WD_RING] : NULL;
	const bool waited = m->waited;
	m->waited = false;
	int rc = 0;
	CUDA_CHECK_GOTO(err, rc, cudaEventRecord(m->start, w->copy), queued);
	CUDA_CHECK_GOTO(err, rc, cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, w->copy), queued);
	CUDA_CHECK_GOTO(err, rc, cudaEventRecord(m->end, w->copy), queued);
queued:
	pthread_mutex_unlock(&w->mu);
	if (rc) {
		cudaGetLastError();
		return rc;
	}
	WD_CHECK(err, cudaEventSynchronize(m->end));
	WD_CHECK(err, cudaEventElapsedTime(ms, m->start, m->end));
	/* prev's end and m's wait come before m's start on the stream: all
	 * three have completed. */
	const double gap = prev ? wd_elapsed(prev->end, m->start) : 0.0;
	const double idle = prev && waited ? wd_elapsed(prev->end, m->wait) : gap;
	pthread_mutex_lock(&w->mu);
	w->times.copies++;
	w->times.busy_s += *ms * 1e-3;
	w->times.idle_s += idle * 1e-3;
	w->times.wait_s += (gap > idle ? gap - idle : 0.0) * 1e-3;
	pthread_mutex_unlock(&w->mu);
	return 0;
}

static void wd_times(void *ctx, struct wdev_times *t)
{
	struct cuda_wdev *w = (struct cuda_wdev *)ctx;
	pthread_mutex_lock(&w->mu);
	*t = w->times;
	pthread_mutex_unlock(&w->mu);
}

static int wd_copy_in(void *ctx, int u, void *dst, const void *src, size_t n, double *secs,
		      char *msg, size_t msg_len)
{
	struct cuda_wdev *w = (struct cuda_wdev *)ctx;
	struct smk_err e = { 0, "" };
	float ms = 0.0f;
	int rc = u < 0 || u >= w->n_units
			 ? smk_fail(&e, -EINVAL, "unit out of range (%d units)", w->n_units)
			 : wd_enter(w, &e);
	if (!rc)
		rc = copy_timed(w, dst, src, n, &ms, &e);
	if (rc) {
		snprintf(msg, msg_len, "cuda device tier: unit %d: host->device copy of %zu bytes: %s",
			 u, n, e.msg);
		return rc;
	}
	*secs = ms * 1e-3;
	return 0;
}

static void wd_released(void *ctx, int u)
{
	struct cuda_wdev *w = (struct cuda_wdev *)ctx;
	struct smk_err e = { 0, "" };
	if (u < 0 || u >= w->n_units)
		return;
	pthread_mutex_lock(&w->mu);
	if (wd_enter(w, &e) || cudaEventRecord(w->done[u], w->compute) != cudaSuccess) {
		cudaGetLastError();
		w->state[u] = WD_UNKNOWN;
	} else {
		w->state[u] = WD_EVENT;
	}
	pthread_mutex_unlock(&w->mu);
}

static void wd_evicted(void *ctx, int u)
{
	struct cuda_wdev *w = (struct cuda_wdev *)ctx;
	struct smk_err e = { 0, "" };
	if (u < 0 || u >= w->n_units)
		return;
	pthread_mutex_lock(&w->mu);
	if (w->state[u] == WD_NONE || w->failed.code) {
		pthread_mutex_unlock(&w->mu);
		return;
	}
	int rc = wd_enter(w, &e);
	if (!rc && w->state[u] == WD_EVENT) {
		/* Mark where the copy stream starts waiting, once per copy (the
		 * entry the next copy takes); a failed record only loses the
		 * idle/wait split. */
		struct wd_mark *m = &w->ring[w->seq % WD_RING];
		if (w->ring_made && !m->waited) {
			if (cudaEventRecord(m->wait, w->copy) == cudaSuccess)
				m->waited = true;
			else
				cudaGetLastError();
		}
		if (cudaStreamWaitEvent(w->copy, w->done[u], 0) == cudaSuccess) {
			pthread_mutex_unlock(&w->mu);
			return;
		}
	}
	cudaGetLastError();
	/* No device-side wait: wait on the host for what done[u] stands for
	 * (rare, and only after a failure). */
	if (!rc) {
		if (w->state[u] == WD_EVENT)
			rc = cudaEventSynchronize(w->done[u]) == cudaSuccess ? 0 : -EIO;
		else
			rc = cudaStreamSynchronize(w->compute) == cudaSuccess ? 0 : -EIO;
		if (rc) {
			cudaGetLastError();
			smk_fail(&e, rc, "cuda device tier: cannot order the refill of unit %d after the kernels that read it",
				 u);
		}
	}
	if (rc)
		wd_fail(w, &e);
	pthread_mutex_unlock(&w->mu);
}

/* The device a backend computes on: where its GELU table lives (the
 * calling thread's current device need not be the backend's). */
static int be_device(struct backend *be, int *dev, struct smk_err *err)
{
	const struct cuda_ctx *c = cuda_be_ops(be)->ctx(be);
	if (c && c->gelu_table) {
		struct cudaPointerAttributes a;
		WD_CHECK(err, cudaPointerGetAttributes(&a, c->gelu_table));
		if (a.type == cudaMemoryTypeDevice) {
			*dev = a.device;
			return 0;
		}
	}
	WD_CHECK(err, cudaGetDevice(dev));
	return 0;
}

extern "C" int cuda_wdev_new(struct wdev **out, struct backend *be, struct smk_err *err)
{
	*out = NULL;
	if (!be || be->ops->host_memory)
		return smk_fail(err, -EINVAL, "cuda device tier: needs a backend made by backend_cuda_new");
	struct cuda_wdev *w = (struct cuda_wdev *)calloc(1, sizeof(*w));
	if (!w)
		return smk_fail(err, -ENOMEM, "cuda device tier: out of memory");
	w->compute = cuda_be_ops(be)->ctx(be)->stream;
	int rc = be_device(be, &w->device, err);
	if (rc || (rc = wd_enter(w, err))) {
		free(w);
		return rc;
	}
	cudaError_t e = cudaStreamCreateWithFlags(&w->copy, cudaStreamNonBlocking);
	if (e != cudaSuccess) {
		cudaGetLastError();
		rc = CUDA_FAIL_(err, e, "cudaStreamCreateWithFlags(&w->copy, cudaStreamNonBlocking)");
		free(w);
		return rc;
	}
	pthread_mutex_init(&w->mu, NULL);
	w->base.ctx = w;
	w->base.init = wd_init;
	w->base.alloc = wd_alloc;
	w->base.free = wd_free;
	w->base.host_register = wd_host_register;
	w->base.host_unregister = wd_host_unregister;
	w->base.copy_in = wd_copy_in;
	w->base.released = wd_released;
	w->base.evicted = wd_evicted;
	w->base.times = wd_times;
	w->base.destroy = cuda_wdev_free; /* cuda_wdev_emu_free in the emulator build */
	*out = &w->base;
	return 0;
}

extern "C" void cuda_wdev_free(struct wdev *d)
{
	if (!d)
		return;
	struct cuda_wdev *w = (struct cuda_wdev *)d->ctx;
	struct smk_err e = { 0, "" };
	if (!wd_enter(w, &e)) {
		/* Waits queued by the last evictions may still be pending. */
		if (cudaStreamSynchronize(w->copy) != cudaSuccess)
			cudaGetLastError();
		wd_free_events(w);
		wd_free_ring(w);
		cudaStreamDestroy(w->copy);
	}
	pthread_mutex_destroy(&w->mu);
	free(w);
}
