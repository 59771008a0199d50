/* wdev.h - what the tiered store needs from a real device to make tier 2
 * device memory instead of the host-memory stand-in.
 *
 * The store decides *what* moves (policies, predictor, prefetch); a wdev
 * says *how*: device memory for the slot arena, page-locking of the RAM
 * arena (so host->device copies are DMA), and copies on a copy stream that
 * is not the compute stream, ordered against the compute stream by events:
 *
 *  - released(u): the compute thread has queued every kernel that reads
 *    unit u (called from wstore_release before the unit's pin drops); the
 *    device records u's "done" event on the compute stream.
 *  - evicted(u): unit u left its device slot (called under the store's
 *    mutex when the slot is freed); every later copy on the copy stream
 *    waits for u's done event, so a refill never races a kernel still
 *    reading the old bytes.  The host never blocks for this.
 *  - copy_in(): one unit's bytes into its slot on the copy stream; returns
 *    once they have landed (the caller is a prefetch worker, or the compute
 *    thread on a synchronous miss), with the copy's own device time.  The
 *    compute stream needs no wait for it: acquire hands out a view only
 *    after its copies returned.
 *
 * The store never reads or writes device memory on the host: the device
 * tier's views (wblock tensors' data) are device addresses for the kernels.
 *
 * NULL in wstore_opts.dev: tier 2 is the stand-in (host memory, memcpy).
 * Implemented for CUDA by compute/cuda/cuda_wdev.cu (cuda_wdev.h).
 */
#ifndef SMK_COMPUTE_WDEV_H
#define SMK_COMPUTE_WDEV_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* Where the copy engine's time went (wdev.times): copying, waiting on the
 * device for the kernels that read an evicted unit, and idle - nothing
 * queued - between the copies.  Seconds of device time, summed over every
 * copy since the wdev was made (the first copy's lead-in not counted). */
struct wdev_times {
	uint64_t copies;
	double busy_s, wait_s, idle_s;
};

struct wdev {
	void *ctx;
	/* Called once by wstore_new_tiered, before anything else: the store
	 * has n_units units, numbered 0..n_units-1 in the calls below (events
	 * are made here, not per copy).  A store made later with the same wdev
	 * calls it again; the previous store must be freed by then (one store
	 * per wdev at a time). */
	int (*init)(void *ctx, int n_units, struct smk_err *err);
	/* Device memory for the slot arena (set-up only: may synchronise). */
	int (*alloc)(void *ctx, void **out, size_t bytes, struct smk_err *err);
	void (*free)(void *ctx, void *p);
	/* Page-lock [p, p + bytes) (the RAM arena) for DMA; a refusal is
	 * reported and the store goes on with pageable memory (slower). */
	int (*host_register)(void *ctx, void *p, size_t bytes, struct smk_err *err);
	void (*host_unregister)(void *ctx, void *p);
	/* Unit `unit`'s n bytes from host src (its RAM slot) to device dst
	 * (its device slot) on the copy stream, after the waits evicted()
	 * queued; returns when they have landed.  *secs: the copy's device
	 * time (events around the copy alone, so the tier's bandwidth is the
	 * DMA's).  Called from several threads at once for different units.
	 * 0, or a negative code with a message in msg. */
	int (*copy_in)(void *ctx, int unit, void *dst, const void *src, size_t n, double *secs,
		       char *msg, size_t msg_len);
	/* Both called under the store's mutex: they queue work, never block. */
	void (*released)(void *ctx, int unit);
	void (*evicted)(void *ctx, int unit);
	/* Optional (NULL: not measured): the totals above, for diagnostics
	 * (bench_gpu's overlap figure). */
	void (*times)(void *ctx, struct wdev_times *t);
	/* Frees the wdev itself, once the store that used it is freed; NULL:
	 * its maker frees it (the tests' fake devices). */
	void (*destroy)(struct wdev *d);
};

static inline void wdev_destroy(struct wdev *d)
{
	if (d && d->destroy)
		d->destroy(d);
}

#endif
