/* threadpool.h - a fork-join pool for the CPU backend.
 *
 * The calling thread takes part in every job, so a pool of n threads starts
 * n-1 workers.  Jobs are tiny and frequent (dozens per token), so workers
 * spin briefly on a generation counter before sleeping on a condition
 * variable: a wake-up through the kernel for every matmul would cost more
 * than the matmul itself on small models.
 */
#ifndef SMK_COMPUTE_CPU_THREADPOOL_H
#define SMK_COMPUTE_CPU_THREADPOOL_H

#include "util/err.h"

struct tpool;

/* fn(ctx, ith, nth): thread ith of nth does its share of the work. */
typedef void (*tpool_fn)(void *ctx, int ith, int nth);

/* n_threads <= 0 picks the number of online CPUs.  *out owned by caller,
 * freed with tpool_free(). */
int tpool_new(struct tpool **out, int n_threads, struct smk_err *err);
void tpool_free(struct tpool *p);
int tpool_size(const struct tpool *p);

/* Run fn on every thread of the pool and return when all have finished.
 * Not reentrant: call from one thread at a time (the engine worker). */
void tpool_run(struct tpool *p, tpool_fn fn, void *ctx);

/* How many jobs tpool_run has run (each is one meeting of the threads). */
unsigned long tpool_jobs(const struct tpool *p);

#endif
