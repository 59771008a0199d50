/* test_wdev.c - the weight store's device tier through struct wdev
 * (compute/wdev.h).
 *
 *  - fake: a wdev whose "device" memory is mapped PROT_NONE, so any host
 *    read or write of it by the store kills the test; the fake's copy_in
 *    fills a shadow of it instead.  It checks the hook order as it happens
 *    (a unit is never copied into or evicted from while a block using it
 *    is held, released() comes once per held unit before its pin drops,
 *    evicted() only for a filled slot), every view points into a filled
 *    slot holding the file's bytes, and the stats take the device's copy
 *    time (the fake reports exactly 1 GB/s) and page-locking state.
 *  - emu: cuda_wdev_emu_new over backend_cudaemu_new, the very code the GPU
 *    runs: a store whose device tier is emulated device memory, every
 *    block of small real models acquired under a third of the model, each
 *    tensor downloaded from its view and compared with the bytes read
 *    with pread from the model file.  The same with cuda_wdev_new over
 *    backend_cuda_new where a GPU is usable (else a SKIP line per case).
 * Both with prefetch on and off, budgets checked on every allocation.
 *
 * Models: the test models of scripts/make-test-models and
 * scripts/make-hierarchy-model (SMOKE_TEST_MODELS, default
 * ~/.cache/smoke/test-models) and the default model (SMOKE_MODEL: Gemma's
 * tied embedding shares units between blocks); absent ones are skipped
 * with a message (Check has no skip).  No GPU needed.
 */
#include <check.h>

#include "ck_main.h"
#include "weights_check.h"
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/model.h"
#include "compute/backend.h"
#include "compute/cuda/cuda_backend.h"
#include "compute/cuda/cuda_wdev.h"
#include "formats/gguf.h"
#include "weights/wstore.h"

/* ---- models ---- */

static const char *test_model(const char *file)
{
	static char buf[4096];
	const char *dir = getenv("SMOKE_TEST_MODELS");
	const char *cache = getenv("SMOKE_CACHE");
	const char *home = getenv("HOME");
	if (dir && *dir)
		snprintf(buf, sizeof(buf), "%s/%s", dir, file);
	else if (cache && *cache)
		snprintf(buf, sizeof(buf), "%s/test-models/%s", cache, file);
	else
		snprintf(buf, sizeof(buf), "%s/.cache/smoke/test-models/%s", home ? home : "", file);
	if (access(buf, R_OK)) {
		fprintf(stderr, "SKIP: test model %s absent (scripts/make-test-models, scripts/make-hierarchy-model)\n",
			buf);
		return NULL;
	}
	return buf;
}

static const char *default_model(void)
{
	static char buf[4096];
	const char *p = getenv("SMOKE_MODEL");
	const char *home = getenv("HOME");
	if (!p || !*p) {
		snprintf(buf, sizeof(buf), "%s/.cache/smoke/models/gemma-3-270m-q4_k_m.gguf",
			 home ? home : "");
		p = buf;
	}
	if (access(p, R_OK)) {
		fprintf(stderr, "SKIP: default model %s absent (scripts/fetch-model)\n", p);
		return NULL;
	}
	return p;
}

/* The models of the emu test, one per loop iteration. */
static const char *emu_model(int i)
{
	static const char *files[] = { "tiny-llama-spm.gguf", "tiny-qwen2.gguf", "layer-heavy.gguf" };
	return i < 3 ? test_model(files[i]) : default_model();
}
#define N_EMU_MODELS 4

/* The file's own bytes of tensor t, read independently of the store (and of
 * the model's mapping): pread at its file offset.  A tensor held in memory
 * only (converted at load) is compared with that memory. */
static void file_bytes(const struct model *m, const struct wtensor *t, uint8_t *buf)
{
	if (t->source < 0) {
		memcpy(buf, t->data, (size_t)t->nbytes);
		return;
	}
	const char *path = gguf_source_path(m->gguf, t->source);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "%s: cannot open", path);
	uint64_t done = 0;
	while (done < t->nbytes) {
		ssize_t r = pread(fd, buf + done, (size_t)(t->nbytes - done), (off_t)(t->file_offset + done));
		ck_assert_msg(r > 0, "%s: short read of %s at %llu", path, t->name,
			      (unsigned long long)(t->file_offset + done));
		done += (uint64_t)r;
	}
	close(fd);
}

static uint64_t max_block_bytes(const struct model *m)
{
	uint64_t mx = 0;
	for (int b = 0; b < m->n_blocks; b++)
		if (m->blocks[b].nbytes > mx)
			mx = m->blocks[b].nbytes;
	return mx;
}

/* A tiered store with the device tier near `dev` bytes: budgets the store
 * refuses (smaller than a block needs with its slot padding) grow by a
 * sixteenth of the model until it takes them.  The RAM tier gets half the
 * model, or twice the largest block where that is more (the tiny models'
 * tables are most of their weights).  Returns the store; *dev_out the
 * budget taken. */
static struct wstore *open_store(const struct model *m, struct wstore_opts *wo, uint64_t dev,
				 uint64_t *dev_out)
{
	struct smk_err err = { 0 };
	struct wstore *ws = NULL;
	wo->ram_budget = m->weight_bytes / 2;
	if (wo->ram_budget < 2 * max_block_bytes(m))
		wo->ram_budget = 2 * max_block_bytes(m);
	for (;;) {
		wo->dev_budget = dev;
		int rc = wstore_new_tiered(&ws, m, wo, &err);
		if (rc == 0)
			break;
		ck_assert_msg(rc == -EINVAL && dev < m->weight_bytes, "wstore_new_tiered: %s", err.msg);
		dev += m->weight_bytes / 16;
	}
	if (dev_out)
		*dev_out = dev;
	return ws;
}

/* The acquire order: three passes through the plan, then a scrambled pass
 * of twice as many acquires (a fixed LCG: reproducible). */
static int plan_len(const struct model *m)
{
	return 5 * m->n_blocks;
}

static int plan_block(const struct model *m, int i)
{
	if (i < 3 * m->n_blocks)
		return i % m->n_blocks;
	uint32_t x = (uint32_t)i * 2654435761u + 12345u;
	x ^= x >> 13;
	x *= 0x5bd1e995u;
	x ^= x >> 15;
	return (int)(x % (uint32_t)m->n_blocks);
}

/* ---- a fake device with PROT_NONE memory ---- */

#define FAKE_BW 1e9   /* bytes/s the fake reports for every copy */

struct fake_unit {
	uint8_t *dst;          /* where its last copy went (device address) */
	size_t n;
	bool filled;           /* copied in, not evicted since */
	int held;              /* blocks using it that the test holds */
};

struct fake {
	struct wdev w;
	pthread_mutex_t mu;
	int n_units, inits;
	uint8_t *base;         /* PROT_NONE: the store must never touch it */
	size_t bytes, map_len;
	uint8_t *shadow;       /* what the device would hold */
	struct fake_unit *u;
	uint64_t copies, copy_bytes, evictions, releases;
	int allocs, frees, regs, unregs;
	void *reg_p;
	bool refuse_register;
	int fail_unit;         /* the first copy of this unit fails (-1: none) */
	int violations;
	char why[512];         /* the first violation */
};

__attribute__((format(printf, 2, 3))) static void violation(struct fake *f, const char *fmt, ...)
{
	if (!f->violations++) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(f->why, sizeof(f->why), fmt, ap);
		va_end(ap);
	}
}

static int fake_init(void *ctx, int n_units, struct smk_err *err)
{
	struct fake *f = ctx;
	(void)err;
	free(f->u);
	f->u = calloc((size_t)n_units, sizeof(*f->u));
	ck_assert_ptr_nonnull(f->u);
	f->n_units = n_units;
	f->inits++;
	return 0;
}

static int fake_alloc(void *ctx, void **out, size_t bytes, struct smk_err *err)
{
	struct fake *f = ctx;
	(void)err;
	ck_assert_ptr_null(f->base);
	long pg = sysconf(_SC_PAGESIZE);
	f->map_len = (bytes + (size_t)pg - 1) / (size_t)pg * (size_t)pg;
	void *p = mmap(NULL, f->map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(p != MAP_FAILED);
	f->base = p;
	f->bytes = bytes;
	f->shadow = malloc(bytes);
	ck_assert_ptr_nonnull(f->shadow);
	memset(f->shadow, 0xa5, bytes);
	f->allocs++;
	*out = p;
	return 0;
}

static void fake_free(void *ctx, void *p)
{
	struct fake *f = ctx;
	if (p != f->base)
		violation(f, "free of %p, which alloc never returned", p);
	f->frees++;
}

static int fake_register(void *ctx, void *p, size_t bytes, struct smk_err *err)
{
	struct fake *f = ctx;
	f->regs++;
	if (!p || !bytes)
		violation(f, "host_register of %zu bytes at %p", bytes, p);
	if (f->refuse_register)
		return smk_fail(err, -EPERM, "fake device: page-locking refused (test)");
	f->reg_p = p;
	return 0;
}

static void fake_unregister(void *ctx, void *p)
{
	struct fake *f = ctx;
	f->unregs++;
	if (p != f->reg_p)
		violation(f, "host_unregister of %p, never registered", p);
}

static int fake_copy_in(void *ctx, int unit, void *dst, const void *src, size_t n, double *secs,
			char *msg, size_t msg_len)
{
	struct fake *f = ctx;
	pthread_mutex_lock(&f->mu);
	int rc = 0;
	if (unit < 0 || unit >= f->n_units) {
		violation(f, "copy_in of unit %d out of range", unit);
		rc = -EINVAL;
	} else if ((uint8_t *)dst < f->base || (uint8_t *)dst + n > f->base + f->bytes) {
		violation(f, "copy_in of unit %d outside the device arena", unit);
		rc = -EINVAL;
	} else if (f->u[unit].held) {
		violation(f, "copy_in of unit %d while a block using it is held", unit);
	} else if (f->u[unit].filled) {
		violation(f, "copy_in of unit %d, resident and never evicted", unit);
	} else if (unit == f->fail_unit) {
		f->fail_unit = -1;
		snprintf(msg, msg_len, "fake device: copy of unit %d failed (test)", unit);
		rc = -EIO;
	}
	/* The slot must be free: every unit that held any of its bytes was
	 * evicted (and so ordered after its kernels) first. */
	for (int v = 0; !rc && v < f->n_units; v++) {
		const struct fake_unit *V = &f->u[v];
		if (v != unit && V->filled && (uint8_t *)dst < V->dst + V->n && V->dst < (uint8_t *)dst + n) {
			violation(f, "copy_in of unit %d over the slot of unit %d, never evicted", unit, v);
			break;
		}
	}
	if (!rc) {
		/* The store's src is host memory (the RAM arena): readable. */
		memcpy(f->shadow + ((uint8_t *)dst - f->base), src, n);
		f->u[unit] = (struct fake_unit){ dst, n, true, 0 };
		f->copies++;
		f->copy_bytes += n;
		*secs = (double)n / FAKE_BW;
	}
	pthread_mutex_unlock(&f->mu);
	return rc;
}

static void fake_released(void *ctx, int unit)
{
	struct fake *f = ctx;
	pthread_mutex_lock(&f->mu);
	if (unit < 0 || unit >= f->n_units || f->u[unit].held <= 0)
		violation(f, "released(%d) of a unit no held block uses", unit);
	else
		f->u[unit].held--;
	f->releases++;
	pthread_mutex_unlock(&f->mu);
}

static void fake_evicted(void *ctx, int unit)
{
	struct fake *f = ctx;
	pthread_mutex_lock(&f->mu);
	if (unit < 0 || unit >= f->n_units)
		violation(f, "evicted(%d) out of range", unit);
	else if (f->u[unit].held)
		violation(f, "evicted(%d) while a block using it is held (pin dropped before released?)",
			  unit);
	else if (!f->u[unit].filled)
		violation(f, "evicted(%d), a slot never filled", unit);
	else
		f->u[unit].filled = false;
	f->evictions++;
	pthread_mutex_unlock(&f->mu);
}

static void fake_init_dev(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->mu, NULL);
	f->fail_unit = -1;
	f->w = (struct wdev){ .ctx = f, .init = fake_init, .alloc = fake_alloc, .free = fake_free,
			      .host_register = fake_register, .host_unregister = fake_unregister,
			      .copy_in = fake_copy_in, .released = fake_released,
			      .evicted = fake_evicted };
}

static void fake_deinit(struct fake *f)
{
	if (f->base)
		munmap(f->base, f->map_len);
	free(f->shadow);
	free(f->u);
	pthread_mutex_destroy(&f->mu);
}

/* The fake unit whose filled slot holds p..p+n (fake mutex held), or -1. */
static int fake_unit_of(const struct fake *f, const void *p, uint64_t n)
{
	for (int u = 0; u < f->n_units; u++) {
		const struct fake_unit *U = &f->u[u];
		if (U->filled && (const uint8_t *)p >= U->dst && (const uint8_t *)p + n <= U->dst + U->n)
			return u;
	}
	return -1;
}

/* Acquire block b through a fake-backed store, check its views (inside
 * filled slots, the file's bytes in the shadow), mark its units held, and
 * release it.  Returns false if the acquire failed (err set). */
static bool fake_visit(struct fake *f, struct wstore *ws, const struct model *m, int b,
		       uint8_t *want, struct smk_err *err)
{
	const struct wblock *B = wstore_acquire(ws, b, err);
	if (!B)
		return false;
	int units[LT_COUNT], n_units = 0;
	pthread_mutex_lock(&f->mu);
	ck_assert_msg(!f->violations, "acquire of block %d: %s", b, f->why);
	for (int i = 0; i < LT_COUNT; i++) {
		if (!B->has[i])
			continue;
		const struct wtensor *t = &B->t[i];
		int u = fake_unit_of(f, t->data, t->nbytes);
		ck_assert_msg(u >= 0, "block %d tensor %s: view %p outside every filled device slot", b,
			      t->name, t->data);
		bool seen = false;
		for (int k = 0; k < n_units; k++)
			seen = seen || units[k] == u;
		if (!seen)
			units[n_units++] = u;
	}
	for (int k = 0; k < n_units; k++)
		f->u[units[k]].held++;
	pthread_mutex_unlock(&f->mu);
	/* The slot's bytes, as the device holds them: unchanged while held. */
	for (int i = 0; i < LT_COUNT; i++) {
		if (!B->has[i])
			continue;
		const struct wtensor *t = &B->t[i];
		file_bytes(m, &m->blocks[b].t[i], want);
		const uint8_t *got = f->shadow + ((const uint8_t *)t->data - f->base);
		ck_assert_msg(memcmp(got, want, (size_t)t->nbytes) == 0,
			      "block %d tensor %s: device slot differs from the file", b, t->name);
	}
	wstore_release(ws, b);
	pthread_mutex_lock(&f->mu);
	for (int k = 0; k < n_units; k++)
		ck_assert_msg(f->u[units[k]].held == 0, "block %d: release() did not call released(%d)",
			      b, units[k]);
	pthread_mutex_unlock(&f->mu);
	return true;
}

/* The set-up every fake-device case shares: the test model `file` (NULL:
 * absent, the case skips), a fake device, store options with budgets
 * checked and the fake as tier 2. */
static struct model *fake_start(const char *file, struct fake *f, struct wstore_opts *wo)
{
	const char *path = test_model(file);
	if (!path)
		return NULL;
	struct model *m;
	struct smk_err err = { 0 };
	ck_assert_msg(model_load(&m, path, &err) == 0, "%s", err.msg);
	fake_init_dev(f);
	wstore_opts_default(wo);
	wo->check_budgets = true;
	wo->dev = &f->w;
	return m;
}

START_TEST(test_fake_device)
{
	/* _i: bit 0 prefetch on, bit 1 page-locking refused */
	const bool async = _i & 1, refuse = _i & 2;
	struct fake f;
	struct wstore_opts wo;
	struct smk_err err = { 0 };
	struct model *m = fake_start("layer-heavy.gguf", &f, &wo);
	if (!m)
		return;
	f.refuse_register = refuse;
	wo.async_prefetch = async;
	wo.io = WSTORE_IO_PREAD;
	uint64_t dev_budget;
	struct wstore *ws = open_store(m, &wo, m->weight_bytes / 3, &dev_budget);
	ck_assert_uint_lt(dev_budget, m->weight_bytes);
	ck_assert_int_eq(f.inits, 1);
	ck_assert_int_eq(f.allocs, 1);
	ck_assert_int_eq(f.regs, 1);
	uint8_t *want = malloc((size_t)max_block_bytes(m));
	ck_assert_ptr_nonnull(want);
	for (int i = 0; i < plan_len(m); i++) {
		int b = plan_block(m, i);
		ck_assert_msg(fake_visit(&f, ws, m, b, want, &err), "block %d: %s", b, err.msg);
		ck_assert_msg(!f.violations, "%s", f.why);
		if (async && i == 0)
			wait_for_prefetch(ws);
	}
	struct wstore_stats st;
	wstore_get_stats(ws, &st);
	ck_assert(st.dev_real);
	ck_assert(st.ram_dma_pinned == !refuse);
	check_budgets_held(&st);
	const struct wtier_stats *d = &st.tier[WSTORE_TIER_DEV];
	pthread_mutex_lock(&f.mu);
	/* A prefetch may still be copying (the fake counts a copy when it
	 * lands, the store a moment later, at most WT_JOBS of them); without
	 * prefetch every copy is booked. */
	ck_assert_uint_le(d->bytes_in, f.copy_bytes);
	if (async)
		ck_assert_uint_le(f.copy_bytes - d->bytes_in, 2 * max_block_bytes(m));
	else
		ck_assert_uint_eq(d->bytes_in, f.copy_bytes);
	/* evicted() runs under the store's mutex, as the stats do */
	ck_assert_uint_eq(d->evictions, f.evictions);
	ck_assert_uint_gt(f.evictions, 0);
	/* the tier's bandwidth is the device's copy time, not the host's */
	ck_assert_msg(d->bandwidth > 0.999999 * FAKE_BW && d->bandwidth < 1.000001 * FAKE_BW,
		      "device tier bandwidth %.6g B/s, the device reported %.6g", d->bandwidth, FAKE_BW);
	ck_assert_uint_ge(f.releases, (uint64_t)plan_len(m));
	pthread_mutex_unlock(&f.mu);
	if (async)
		ck_assert_uint_gt(st.prefetch_issued, 0);
	free(want);
	wstore_free(ws);
	ck_assert_int_eq(f.frees, 1);
	ck_assert_int_eq(f.unregs, refuse ? 0 : 1);
	ck_assert_msg(!f.violations, "%s", f.why);
	fake_deinit(&f);
	model_free(m);
}
END_TEST

START_TEST(test_fake_copy_fails)
{
	/* A device copy that fails: the acquire fails naming it, the next
	 * acquire of the same block loads it, the store stays consistent. */
	struct fake f;
	struct wstore_opts wo;
	struct smk_err err = { 0 };
	struct model *m = fake_start("layer-heavy.gguf", &f, &wo);
	if (!m)
		return;
	wo.async_prefetch = false;
	wo.io = WSTORE_IO_PREAD;
	struct wstore *ws = open_store(m, &wo, m->weight_bytes / 3, NULL);
	uint8_t *want = malloc((size_t)max_block_bytes(m));
	ck_assert_ptr_nonnull(want);
	/* Units are numbered as blocks (a block's own unit is its index). */
	const int b = model_layer_block(m, 1);
	f.fail_unit = b;
	ck_assert(!fake_visit(&f, ws, m, b, want, &err));
	ck_assert_msg(strstr(err.msg, "fake device: copy of unit") != NULL, "%s", err.msg);
	ck_assert_int_eq(f.fail_unit, -1);
	ck_assert_msg(fake_visit(&f, ws, m, b, want, &err), "%s", err.msg);
	for (int i = 0; i < m->n_blocks; i++)
		ck_assert_msg(fake_visit(&f, ws, m, i, want, &err), "block %d: %s", i, err.msg);
	struct wstore_stats st;
	wstore_get_stats(ws, &st);
	ck_assert_uint_eq(st.load_errors, 1);
	ck_assert_int_eq(st.pinned, 0);
	free(want);
	wstore_free(ws);
	ck_assert_msg(!f.violations, "%s", f.why);
	fake_deinit(&f);
	model_free(m);
}
END_TEST

START_TEST(test_fake_unused_from_ram)
{
	/* Computing from the RAM tier: no device tier, the wdev is never used. */
	struct fake f;
	struct wstore_opts wo;
	struct smk_err err = { 0 };
	struct model *m = fake_start("tiny-llama-spm.gguf", &f, &wo);
	if (!m)
		return;
	wo.compute_from_ram = true;
	struct wstore *ws;
	ck_assert_msg(wstore_new_tiered(&ws, m, &wo, &err) == 0, "%s", err.msg);
	for (int b = 0; b < m->n_blocks; b++) {
		const struct wblock *B = wstore_acquire(ws, b, &err);
		ck_assert_msg(B, "%s", err.msg);
		wstore_release(ws, b);
	}
	struct wstore_stats st;
	wstore_get_stats(ws, &st);
	ck_assert(!st.dev_real);
	wstore_free(ws);
	ck_assert_int_eq(f.inits + f.allocs + f.regs + (int)f.copies + (int)f.releases, 0);
	fake_deinit(&f);
	model_free(m);
}
END_TEST

/* ---- the emulated CUDA device tier ---- */

/* The copies a store makes through a wdev: its copy_in wrapped, counting
 * the calls that returned 0 and their bytes (each test case runs in a
 * process of its own). */
static struct {
	int (*copy_in)(void *ctx, int unit, void *dst, const void *src, size_t n, double *secs,
		       char *msg, size_t msg_len);
	pthread_mutex_t mu;
	uint64_t copies, bytes;
} counted = { .mu = PTHREAD_MUTEX_INITIALIZER };

static int counted_copy_in(void *ctx, int unit, void *dst, const void *src, size_t n, double *secs,
			   char *msg, size_t msg_len)
{
	int rc = counted.copy_in(ctx, unit, dst, src, n, secs, msg, msg_len);
	if (!rc) {
		pthread_mutex_lock(&counted.mu);
		counted.copies++;
		counted.bytes += n;
		pthread_mutex_unlock(&counted.mu);
	}
	return rc;
}

/* The emulated backend, or (gpu) the real one when a GPU is usable; NULL
 * (the case skips, saying why) where there is none. */
static struct backend *device_backend(bool gpu)
{
	struct backend *be = NULL;
	struct backend_limits lim = { .max_cols = 64, .max_rows = 1, .max_ctx = 16, .max_heads = 1,
				      .n_threads = 1 };
	struct smk_err err = { 0 };
	int rc = gpu ? backend_cuda_new(&be, &lim, NULL, &err)
		     : backend_cudaemu_new(&be, &lim, NULL, &err);
	if (gpu && rc) {
		fprintf(stderr, "SKIP: device tier on a GPU: %s\n", err.msg);
		return NULL;
	}
	if (rc == -ENOSYS) {
		fprintf(stderr, "SKIP: %s\n", err.msg);
		return NULL;
	}
	ck_assert_msg(rc == 0, "backend_cudaemu_new: %s", err.msg);
	return be;
}

START_TEST(test_device_tier)
{
	/* _i: model index * 4 + real GPU * 2 + prefetch */
	const bool async = _i & 1, gpu = _i & 2;
	const char *path = emu_model(_i / 4);
	if (!path)
		return;
	struct backend *be = device_backend(gpu);
	if (!be)
		return;
	struct smk_err err = { 0 };
	struct wdev *dev;
	int rc = gpu ? cuda_wdev_new(&dev, be, &err) : cuda_wdev_emu_new(&dev, be, &err);
	ck_assert_msg(rc == 0, "%s", err.msg);
	counted.copy_in = dev->copy_in;
	dev->copy_in = counted_copy_in;
	struct model *m;
	ck_assert_msg(model_load(&m, path, &err) == 0, "%s", err.msg);
	size_t maxb = (size_t)max_block_bytes(m);
	uint8_t *want = malloc(maxb), *got = malloc(maxb);
	ck_assert(want && got);
	/* The emulator refuses a download from host memory: what the views
	 * are downloaded from below is device memory.  (CUDA would take a
	 * host pointer there with unified addressing.) */
	if (!gpu)
		ck_assert_int_ne(backend_download(be, got, want, 64, &err), 0);
	struct wstore_opts wo;
	wstore_opts_default(&wo);
	wo.check_budgets = true;
	wo.async_prefetch = async;
	wo.dev = dev;
	uint64_t dev_budget;
	struct wstore *ws = open_store(m, &wo, m->weight_bytes / 3, &dev_budget);
	for (int i = 0; i < plan_len(m); i++) {
		int b = plan_block(m, i);
		const struct wblock *B = wstore_acquire(ws, b, &err);
		ck_assert_msg(B, "%s: block %d: %s", path, b, err.msg);
		for (int k = 0; k < LT_COUNT; k++) {
			if (!B->has[k])
				continue;
			const struct wtensor *t = &B->t[k];
			ck_assert_msg(backend_download(be, got, t->data, (size_t)t->nbytes, &err) == 0,
				      "%s: block %d tensor %s: not in device memory: %s", path, b,
				      t->name, err.msg);
			file_bytes(m, &m->blocks[b].t[k], want);
			if (memcmp(got, want, (size_t)t->nbytes)) {
				size_t o = 0;
				while (got[o] == want[o])
					o++;
				ck_abort_msg("%s: block %d tensor %s: byte %zu on the device is 0x%02x, the file has 0x%02x",
					     path, b, t->name, o, got[o], want[o]);
			}
		}
		wstore_release(ws, b);
		if (async && i == 0)
			wait_for_prefetch(ws);
	}
	struct wstore_stats st;
	wstore_get_stats(ws, &st);
	check_budgets_held(&st);
	ck_assert(st.dev_real);
	ck_assert(st.ram_dma_pinned);
	const struct wtier_stats *d = &st.tier[WSTORE_TIER_DEV];
	ck_assert_uint_gt(d->bytes_in, 0);
	ck_assert(d->bandwidth > 0);
	if (dev_budget < m->weight_bytes)
		ck_assert_uint_gt(d->evictions, 0);
	else
		fprintf(stderr, "NOTE: %s: the device tier holds the whole model (%llu bytes): no evictions to see\n",
			path, (unsigned long long)dev_budget);
	if (async)
		ck_assert_uint_gt(st.prefetch_issued, 0);
	else
		ck_assert_uint_eq(st.prefetch_issued, 0);
	/* The device tier books the bytes of the copies the store made
	 * through copy_in: a prefetch may still be copying (counted here when
	 * it returns, by the store a moment later, at most WT_JOBS of them);
	 * without prefetch every copy is booked.  (Not the two busy times:
	 * the same events summed in two places, read at two moments, differ
	 * by a copy landing in between.) */
	pthread_mutex_lock(&counted.mu);
	ck_assert_uint_le(d->bytes_in, counted.bytes);
	if (async)
		ck_assert_uint_le(counted.bytes - d->bytes_in, 2 * maxb);
	else
		ck_assert_uint_eq(d->bytes_in, counted.bytes);
	pthread_mutex_unlock(&counted.mu);
	wstore_stats_print(&st, stderr);
	wstore_free(ws);
	/* The copy stream's accounting (bench_gpu's diagnosis of overlap),
	 * read with the store gone and so every copy returned: one copy per
	 * copy_in that succeeded; waiting and idle time are never negative. */
	struct wdev_times tm;
	ck_assert_ptr_nonnull(dev->times);
	dev->times(dev->ctx, &tm);
	ck_assert_uint_gt(tm.copies, 0);
	ck_assert_uint_eq(tm.copies, counted.copies);
	ck_assert(tm.wait_s >= 0 && tm.idle_s >= 0);
	fprintf(stderr, "copy stream: %llu copies, busy %.6f s (device tier %.6f s), waiting for kernels "
		"%.6f s, idle %.6f s\n", (unsigned long long)tm.copies, tm.busy_s, d->busy_s, tm.wait_s, tm.idle_s);
	/* The same wdev serves a second store (init again): a short pass. */
	ws = open_store(m, &wo, dev_budget, NULL);
	for (int b = 0; b < m->n_blocks; b++) {
		const struct wblock *B = wstore_acquire(ws, b, &err);
		ck_assert_msg(B, "second store: block %d: %s", b, err.msg);
		wstore_release(ws, b);
	}
	wstore_free(ws);
	free(want);
	free(got);
	model_free(m);
	if (gpu)
		cuda_wdev_free(dev);
	else
		cuda_wdev_emu_free(dev);
	backend_free(be);
}
END_TEST

START_TEST(test_emu_refuses_cpu_backend)
{
	struct backend *be;
	struct backend_limits lim = { .max_cols = 64, .max_rows = 1, .max_ctx = 16, .max_heads = 1,
				      .n_threads = 1 };
	struct smk_err err = { 0 };
	ck_assert_int_eq(backend_cpu_new(&be, &lim, &err), 0);
	struct wdev *dev = NULL;
	int rc = cuda_wdev_emu_new(&dev, be, &err);
	ck_assert_msg(rc == -EINVAL || rc == -ENOSYS, "rc %d: %s", rc, err.msg);
	ck_assert_ptr_null(dev);
	rc = cuda_wdev_new(&dev, be, &err);
	ck_assert_msg(rc == -EINVAL || rc == -ENODEV, "rc %d: %s", rc, err.msg);
	backend_free(be);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("wdev");
	TCase *tc = tcase_create("fake");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_fake_device, 0, 4);
	tcase_add_test(tc, test_fake_copy_fails);
	tcase_add_test(tc, test_fake_unused_from_ram);
	suite_add_tcase(s, tc);
	tc = tcase_create("emu");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_emu_refuses_cpu_backend);
	tcase_add_loop_test(tc, test_device_tier, 0, 4 * N_EMU_MODELS);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ck_run(suite());
}
