#include "compute/cpu/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* How long a worker spins before it sleeps: long enough to cover the gap
 * between two ops of one forward pass, short enough not to burn a core
 * while the daemon is idle. */
#define SPIN_ROUNDS 200000

struct worker {
	struct tpool *pool;
	pthread_t thread;
	int ith;
};

struct tpool {
	int n;
	struct worker *workers;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	atomic_uint generation;   /* bumped for every job */
	atomic_int pending;       /* workers still running the current job */
	atomic_bool stop;
	tpool_fn fn;
	void *ctx;
	unsigned long jobs;       /* tpool_run calls (the calling thread's) */
};

static void run_share(struct tpool *p, int ith)
{
	p->fn(p->ctx, ith, p->n);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct tpool *p = w->pool;
	unsigned seen = 0;

	for (;;) {
		unsigned gen;
		int spins = 0;
		while ((gen = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen &&
		       !atomic_load(&p->stop)) {
			if (++spins < SPIN_ROUNDS) {
				if (spins % 1024 == 0)
					sched_yield();
				else
					cpu_relax();
				continue;
			}
			pthread_mutex_lock(&p->lock);
			while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
				pthread_cond_wait(&p->wake, &p->lock);
			pthread_mutex_unlock(&p->lock);
		}
		if (atomic_load(&p->stop))
			return NULL;
		seen = gen;
		run_share(p, w->ith);
		atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel);
	}
}

int tpool_new(struct tpool **out, int n_threads, struct smk_err *err)
{
	if (n_threads <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		n_threads = n > 0 ? (int)n : 1;
	}
	if (n_threads > 256)
		return smk_fail(err, -EINVAL, "threads: %d is more than the 256 allowed", n_threads);

	struct tpool *p = calloc(1, sizeof(*p));
	if (!p)
		return smk_fail(err, -ENOMEM, "thread pool: out of memory");
	p->n = n_threads;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	p->workers = calloc((size_t)n_threads, sizeof(*p->workers));
	if (!p->workers) {
		free(p);
		return smk_fail(err, -ENOMEM, "thread pool: out of memory");
	}
	for (int i = 1; i < n_threads; i++) {
		p->workers[i].pool = p;
		p->workers[i].ith = i;
		if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i])) {
			p->n = i; /* tpool_free joins the ones that started */
			tpool_free(p);
			return smk_fail(err, -EAGAIN, "thread pool: cannot start thread %d", i);
		}
	}
	*out = p;
	return 0;
}

void tpool_free(struct tpool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	atomic_store(&p->stop, true);
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	for (int i = 1; i < p->n; i++)
		pthread_join(p->workers[i].thread, NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->wake);
	free(p->workers);
	free(p);
}

int tpool_size(const struct tpool *p)
{
	return p->n;
}

unsigned long tpool_jobs(const struct tpool *p)
{
	return p->jobs;
}

void tpool_run(struct tpool *p, tpool_fn fn, void *ctx)
{
	p->jobs++;
	if (p->n == 1) {
		fn(ctx, 0, 1);
		return;
	}
	p->fn = fn;
	p->ctx = ctx;
	atomic_store_explicit(&p->pending, p->n - 1, memory_order_release);
	pthread_mutex_lock(&p->lock);
	atomic_fetch_add_explicit(&p->generation, 1, memory_order_acq_rel);
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);

	run_share(p, 0);
	/* Yield now and then: when the machine is oversubscribed the workers
	 * we wait for may need this very core to finish. */
	for (unsigned spins = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; spins++) {
		if (spins % 1024 == 1023)
			sched_yield();
		else
			cpu_relax();
	}
}
