/* hierarchy.c - the weight hierarchy's benchmark: decode speed through small
 * budgets, against the resident store and against the disk, in one run.
 *
 *   bench_hierarchy [--model PATH] [--ram-cache SIZE] [--gpu-memory SIZE]
 *                   [-n N] [--warm N] [--threads N] [--configs LIST]
 *                   [--io auto|pread|direct] [--no-resident] [--cold]
 *                   [--disk-bw SIZE] [--read-test SIZE]
 *
 * Prints, for one model:
 *  - tier-0 read bandwidth, warm page cache: pread vs memcpy out of the
 *    mapping ("mmap-touch"), over the layer tensors (skipped with --cold);
 *  - --disk-bw SIZE: the disk's bandwidth, O_DIRECT sequential reads of the
 *    first SIZE bytes of the file, the better of one and two readers (the
 *    streaming bound's numerator);
 *  - --read-test SIZE: the three ways to read tier 0 (O_DIRECT, pread,
 *    mmap-touch), each from a cold page cache, over the first SIZE bytes
 *    of layer tensors, with the CPU seconds each spends per GB;
 *  - decode tok/s of the resident store (the peer; --no-resident skips it)
 *    and of the tiered store in each configuration of --configs, with the
 *    ratio to resident, the fraction of decode wall time stalled on
 *    weights, compute and disk time per token, tier hit rates, bytes read
 *    from tier 0 per token and the streaming bound (disk or pread
 *    bandwidth / bytes per token) with our ratio to it.  Statistics cover
 *    the decode steps of the measured generation only (from its first
 *    token on), after a --warm generation: the "once warm" figures.
 *
 * Configurations (--configs, comma-separated, or "none"): TIER-POLICY[-sync][@IO],
 * TIER "dev" (device stand-in computes; RAM stages) or "ram" (compute from
 * the RAM tier, enable_cpu_offload without a GPU), POLICY pred|lru|lfu|fifo,
 * IO auto|pread|direct (default: --io).  Budgets: dev configs use
 * --gpu-memory on the device and --ram-cache in RAM; ram configs give the
 * RAM tier --ram-cache + --gpu-memory (the same total memory).
 *
 * --cold drops the model file from the page cache (posix_fadvise
 * DONTNEED) before each measurement.  Each figure is printed as a table
 * row and as a "RESULT key=value ..." line for bench/hierarchy-ooc.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "engine/engine.h"

static const char *prompt = "The history of the city begins in the early middle ages, when";

struct bopts {
	const char *path;
	int n, warm, threads;
	bool cold;
};

struct run {
	double tok_s, stall_frac, bytes_per_tok, compute_per_tok, wall;
	int n_dec;
	struct wstore_stats a, b;       /* at the first token, at the end */
};

/* Drop the model's pages from the page cache: what a cold start sees.
 * Works for pages no process has mapped (ours are unmapped by then). */
static void drop_file_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
}

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec * 1e-6;
}

/* The first token marks the end of the prefill: decode figures start here. */
struct mark {
	struct engine *e;
	struct wstore_stats *at;
	double *t;
	bool seen;
};

static int on_token(void *ctx, const char *text, size_t len, int32_t token)
{
	struct mark *m = ctx;
	(void)text;
	(void)len;
	if (token >= 0 && !m->seen) {
		m->seen = true;
		wstore_get_stats(m->e->ws, m->at);
		*m->t = smk_now();
	}
	return 0;
}

static int one_gen(struct engine *e, int n_predict, struct mark *mk, int *n_gen, struct smk_err *err)
{
	int32_t ids[256];
	size_t n = 0;
	int rc = tokenizer_encode(e->tok, prompt, strlen(prompt), true, true, ids, 256, &n, err);
	if (rc)
		return rc;
	struct kvcache *kv;
	struct sampler *s;
	struct sampler_params sp;
	sampler_params_default(&sp);
	sp.temperature = 0;
	if ((rc = kvcache_new(&kv, e->model, (int)n + n_predict + 1, e->be, err)))
		return rc;
	if ((rc = sampler_new(&s, e->model->hp.n_vocab, &sp, err))) {
		kvcache_free(kv);
		return rc;
	}
	struct gen_stats gs;
	rc = engine_generate(e, kv, ids, (int)n, n_predict, s, mk ? on_token : NULL, mk, &gs, err);
	*n_gen = gs.n_gen;
	sampler_free(s);
	kvcache_free(kv);
	return rc;
}

/* Warm up with a short generation, then measure a full one; the figures are
 * differences over its decode steps (first token to last). */
static int measure(const struct bopts *bo, const struct wstore_opts *wo, struct run *r, struct smk_err *err)
{
	if (bo->cold)
		drop_file_cache(bo->path);
	struct engine_opts eo = { .model_path = bo->path, .n_ctx = 512, .n_batch = 64, .weights = wo,
				  .n_threads = bo->threads };
	struct engine *e;
	int rc = engine_open(&e, &eo, err);
	if (rc)
		return rc;
	int g;
	double t_first = 0;
	memset(r, 0, sizeof(*r));
	if (bo->warm > 0 && (rc = one_gen(e, bo->warm, NULL, &g, err)))
		goto out;
	struct mark mk = { .e = e, .at = &r->a, .t = &t_first };
	if ((rc = one_gen(e, bo->n, &mk, &g, err)))
		goto out;
	double t_end = smk_now();
	wstore_get_stats(e->ws, &r->b);
	r->n_dec = g - 1;
	r->wall = t_end - t_first;
	if (r->n_dec <= 0 || r->wall <= 0)
		goto out;
	r->tok_s = r->n_dec / r->wall;
	r->stall_frac = (r->b.stall_s - r->a.stall_s) / r->wall;
	r->compute_per_tok = (r->b.compute_s - r->a.compute_s) / r->n_dec;
	/* What crossed tier 0: the RAM tier's intake. */
	r->bytes_per_tok = (double)(r->b.tier[WSTORE_TIER_RAM].bytes_in - r->a.tier[WSTORE_TIER_RAM].bytes_in) /
			   r->n_dec;
out:
	engine_close(e);
	return rc;
}

/* ---- tier-0 read bandwidth ---- */

/* The layer tensors' (offset, size) in file order, up to `limit` bytes. */
struct extent {
	uint64_t off, n;
};

static int layer_extents(const char *path, uint64_t limit, struct extent **out, int *n_out, uint64_t *max)
{
	struct model *m;
	if (model_load(&m, path, NULL))
		return -1;
	/* every block between the first layer's and the head (MoE: experts too) */
	int cap = (model_layer_block(m, m->hp.n_layer) - model_layer_block(m, 0)) * LT_COUNT, n = 0;
	struct extent *x = calloc((size_t)cap, sizeof(*x));
	uint64_t total = 0;
	*max = 0;
	for (int b = model_layer_block(m, 0); x && b < model_layer_block(m, m->hp.n_layer) && total < limit; b++)
		for (int i = 0; i < LT_COUNT && total < limit; i++)
			if (m->blocks[b].has[i] && m->blocks[b].t[i].source == 0) {
				const struct wtensor *t = &m->blocks[b].t[i];
				x[n++] = (struct extent){ t->file_offset, t->nbytes };
				total += t->nbytes;
				if (t->nbytes > *max)
					*max = t->nbytes;
			}
	model_free(m);
	*out = x;
	*n_out = n;
	return x ? 0 : -1;
}

enum rmode { RM_PREAD, RM_MMAP, RM_DIRECT };

/* Read the extents one way; bytes/s, CPU seconds per GB. */
static int read_pass(const char *path, enum rmode mode, const struct extent *x, int n, uint8_t *buf,
		     double *bw, double *cpu_per_gb)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | (mode == RM_DIRECT ? O_DIRECT : 0));
	if (fd < 0)
		return -1;
	struct stat sb;
	uint8_t *map = NULL;
	if (mode == RM_MMAP) {
		if (fstat(fd, &sb) || (map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED) {
			close(fd);
			return -1;
		}
	}
	uint64_t bytes = 0;
	double c0 = cpu_seconds(), t0 = smk_now();
	int rc = 0;
	for (int i = 0; i < n && !rc; i++) {
		if (mode == RM_MMAP) {
			memcpy(buf, map + x[i].off, (size_t)x[i].n);
		} else if (mode == RM_PREAD) {
			rc = pread(fd, buf, (size_t)x[i].n, (off_t)x[i].off) == (ssize_t)x[i].n ? 0 : -1;
		} else {
			uint64_t a = x[i].off / 4096 * 4096, e = (x[i].off + x[i].n + 4095) / 4096 * 4096;
			rc = pread(fd, buf, (size_t)(e - a), (off_t)a) >= (ssize_t)(x[i].off + x[i].n - a) ? 0 : -1;
		}
		bytes += x[i].n;
	}
	double t1 = smk_now(), c1 = cpu_seconds();
	if (map)
		munmap(map, (size_t)sb.st_size);
	close(fd);
	*bw = bytes / (t1 - t0);
	*cpu_per_gb = (c1 - c0) / (bytes / 1e9);
	return rc;
}

/* One reader of the disk bandwidth test: [off, off + len) in req-byte
 * O_DIRECT requests. */
struct dreader {
	const char *path;
	uint64_t off, len, done;
	size_t req;
};

static void *dreader_main(void *arg)
{
	struct dreader *d = arg;
	int fd = open(d->path, O_RDONLY | O_CLOEXEC | O_DIRECT);
	void *buf = NULL;
	if (fd < 0 || posix_memalign(&buf, 4096, d->req)) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	while (d->done < d->len) {
		ssize_t r = pread(fd, buf, d->req, (off_t)(d->off + d->done));
		if (r <= 0)
			break;
		d->done += (uint64_t)r;
	}
	free(buf);
	close(fd);
	return NULL;
}

/* O_DIRECT sequential reads of the file's first `limit` bytes by `streams`
 * readers, each its own contiguous part; bytes/s. */
static double disk_read(const char *path, uint64_t limit, int streams, size_t req)
{
	struct dreader d[2];
	pthread_t th[2];
	uint64_t part = limit / (uint64_t)streams / 4096 * 4096;
	double t0 = smk_now();
	for (int i = 0; i < streams; i++) {
		d[i] = (struct dreader){ path, (uint64_t)i * part, part, 0, req };
		if (pthread_create(&th[i], NULL, dreader_main, &d[i]))
			return 0;
	}
	uint64_t done = 0;
	for (int i = 0; i < streams; i++) {
		pthread_join(th[i], NULL);
		done += d[i].done;
	}
	double t = smk_now() - t0;
	return t > 0 ? done / t : 0;
}

/* The disk's bandwidth, the best of two patterns: one reader with 4 MiB
 * requests, and two readers with requests of the largest unit (what the
 * prefetcher does: two units in flight; `unit` bytes each, which the
 * memory cap of bench/hierarchy-ooc leaves room for since the arenas are
 * not allocated yet).  On this VM each wins on some runs
 * (docs/hierarchy.md); the larger keeps the streaming bound conservative. */
static double disk_bandwidth(const char *path, uint64_t limit, uint64_t unit)
{
	size_t req = (size_t)((unit + (4u << 20) - 1) / (4u << 20) * (4u << 20));
	double one = disk_read(path, limit, 1, 4u << 20);
	double two = disk_read(path, limit, 2, req);
	printf("disk: O_DIRECT sequential read of %.2f GB: one reader, 4 MiB requests %.2f GB/s; two readers, %zu MiB requests %.2f GB/s\n",
	       limit / 1e9, one / 1e9, req >> 20, two / 1e9);
	return one > two ? one : two;
}

static void read_test(const struct bopts *bo, uint64_t limit, double *pread_bw)
{
	struct extent *x;
	int n;
	uint64_t max;
	if (layer_extents(bo->path, limit, &x, &n, &max))
		return;
	void *buf = NULL;
	if (posix_memalign(&buf, 4096, max + 8192)) {
		free(x);
		return;
	}
	static const char *names[] = { "pread (page cache)", "mmap-touch (memcpy from the mapping)", "O_DIRECT" };
	static const char *keys[] = { "pread", "mmap", "direct" };
	uint64_t bytes = 0;
	for (int i = 0; i < n; i++)
		bytes += x[i].n;
	printf("tier-0 reads, cold page cache, %.2f GB of layer tensors:\n", bytes / 1e9);
	for (int mode = RM_DIRECT; mode >= RM_PREAD; mode--) {
		double bw = 0, cpu = 0;
		drop_file_cache(bo->path);
		if (read_pass(bo->path, (enum rmode)mode, x, n, buf, &bw, &cpu)) {
			printf("  %-38s failed\n", names[mode]);
			continue;
		}
		printf("  %-38s %6.2f GB/s  %6.2f CPU s per GB\n", names[mode], bw / 1e9, cpu);
		printf("RESULT read=%s bw=%.4e cpu_per_gb=%.4f\n", keys[mode], bw, cpu);
		if (mode == RM_PREAD)
			*pread_bw = bw;
	}
	drop_file_cache(bo->path);
	free(buf);
	free(x);
}

/* Warm page cache: pread vs memcpy out of the mapping (3 passes, best). */
static void warm_read_test(const struct bopts *bo, double *pbw)
{
	struct extent *x;
	int n;
	uint64_t max;
	if (layer_extents(bo->path, UINT64_MAX, &x, &n, &max))
		return;
	void *buf = NULL;
	if (posix_memalign(&buf, 4096, max + 8192)) {
		free(x);
		return;
	}
	double best[2] = { 0, 0 }, cpu;
	for (int pass = 0; pass < 3; pass++)
		for (int mode = RM_PREAD; mode <= RM_MMAP; mode++) {
			double bw = 0;
			if (!read_pass(bo->path, (enum rmode)mode, x, n, buf, &bw, &cpu) && bw > best[mode])
				best[mode] = bw;
		}
	printf("tier-0 read, warm page cache: pread %.2f GB/s, memcpy from the mapping %.2f GB/s (ratio %.2f)\n",
	       best[0] / 1e9, best[1] / 1e9, best[1] > 0 ? best[0] / best[1] : 0);
	*pbw = best[0];
	free(buf);
	free(x);
}

/* ---- configurations ---- */

struct cfg {
	char name[64];
	bool ram, async;
	enum wpolicy p;
	enum wstore_io io;
};

static int parse_io(const char *s, enum wstore_io *io)
{
	if (!strcmp(s, "auto"))
		*io = WSTORE_IO_AUTO;
	else if (!strcmp(s, "pread"))
		*io = WSTORE_IO_PREAD;
	else if (!strcmp(s, "direct"))
		*io = WSTORE_IO_DIRECT;
	else
		return -1;
	return 0;
}

/* "ram-pred-sync@direct" -> cfg; -1 if malformed. */
static int parse_cfg(const char *tok, enum wstore_io dflt, struct cfg *c)
{
	char buf[64];
	if (strlen(tok) >= sizeof(buf))
		return -1;
	strcpy(buf, tok);
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", tok);
	c->async = true;
	c->io = dflt;
	char *at = strchr(buf, '@');
	if (at) {
		*at = '\0';
		if (parse_io(at + 1, &c->io))
			return -1;
	}
	char *tier = strtok(buf, "-"), *pol = strtok(NULL, "-"), *mode = strtok(NULL, "-");
	if (!tier || !pol || strtok(NULL, "-"))
		return -1;
	if (!strcmp(tier, "ram"))
		c->ram = true;
	else if (strcmp(tier, "dev"))
		return -1;
	static const struct { const char *n; enum wpolicy p; } pols[] = {
		{ "pred", WPOLICY_PREDICTIVE }, { "lru", WPOLICY_LRU }, { "lfu", WPOLICY_LFU }, { "fifo", WPOLICY_FIFO },
	};
	int k = -1;
	for (int i = 0; i < 4; i++)
		if (!strcmp(pol, pols[i].n))
			k = i;
	if (k < 0)
		return -1;
	c->p = pols[k].p;
	if (mode && strcmp(mode, "sync"))
		return -1;
	c->async = mode == NULL;
	return 0;
}

static long peak_rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	long kb = 0;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmHWM:", 6))
			kb = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kb;
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--model PATH] [--ram-cache SIZE] [--gpu-memory SIZE] [-n N] [--warm N] [--threads N]\n"
		"       [--configs LIST] [--io auto|pread|direct] [--no-resident] [--cold] [--disk-bw SIZE] [--read-test SIZE]\n"
		"  LIST: comma-separated TIER-POLICY[-sync][@IO]; TIER dev|ram, POLICY pred|lru|lfu|fifo\n",
		argv0);
}

int main(int argc, char **argv)
{
	struct bopts bo = { .n = 32, .warm = 4 };
	const char *path = getenv("SMOKE_MODEL");
	char def[4096];
	if (!path) {
		snprintf(def, sizeof(def), "%s/.cache/smoke/models/gemma-3-270m-q4_k_m.gguf",
			 getenv("HOME") ? getenv("HOME") : "");
		path = def;
	}
	uint64_t ram = 0, gpu = 0, disk_bytes = 0, read_bytes = 0;
	bool resident = true;
	enum wstore_io io = WSTORE_IO_AUTO;
	const char *configs = "dev-pred,dev-pred-sync,dev-lru,dev-lfu,dev-fifo,ram-pred,ram-pred-sync";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--no-resident"))
			resident = false;
		else if (!strcmp(a, "--cold"))
			bo.cold = true;
		else if (!v)
			goto bad;
		else if (!strcmp(a, "--model"))
			path = v, i++;
		else if (!strcmp(a, "--ram-cache") && !config_parse_size(v, &ram))
			i++;
		else if (!strcmp(a, "--gpu-memory") && !config_parse_size(v, &gpu))
			i++;
		else if (!strcmp(a, "--disk-bw") && !config_parse_size(v, &disk_bytes))
			i++;
		else if (!strcmp(a, "--read-test") && !config_parse_size(v, &read_bytes))
			i++;
		else if (!strcmp(a, "-n"))
			bo.n = atoi(v), i++;
		else if (!strcmp(a, "--warm"))
			bo.warm = atoi(v), i++;
		else if (!strcmp(a, "--threads"))
			bo.threads = atoi(v), i++;
		else if (!strcmp(a, "--configs"))
			configs = v, i++;
		else if (!strcmp(a, "--io") && !parse_io(v, &io))
			i++;
		else
			goto bad;
	}
	bo.path = path;
	if (bo.n < 2 || bo.warm < 0)
		goto bad;
	struct cfg cfgs[32];
	int n_cfg = 0;
	char list[1024];
	if (strlen(configs) >= sizeof(list))
		goto bad;
	strcpy(list, configs);
	for (char *save, *t = strtok_r(list, ",", &save); t && strcmp(configs, "none"); t = strtok_r(NULL, ",", &save)) {
		if (n_cfg == 32 || parse_cfg(t, io, &cfgs[n_cfg])) {
			fprintf(stderr, "bench_hierarchy: bad configuration '%s'\n", t);
			goto bad;
		}
		n_cfg++;
	}

	struct model *m;
	struct smk_err err = { 0 };
	if (model_load(&m, path, &err)) {
		fprintf(stderr, "bench_hierarchy: %s\n", err.msg);
		return 1;
	}
	/* weight_bytes counts a tied table once */
	uint64_t big = 0, layer = m->blocks[model_layer_block(m, 0)].nbytes, total = m->weight_bytes;
	for (int b = 0; b < m->n_blocks; b++)
		if (m->blocks[b].nbytes > big)
			big = m->blocks[b].nbytes;
	printf("plan: %d embedding shard(s), %d layers, %d head shard(s); largest block %.1f MiB\n",
	       m->n_emb_blocks, m->hp.n_layer, m->n_head_blocks, big / 1048576.0);
	model_free(m);
	/* Default: the tightest budgets the model allows (its largest block
	 * plus two layers on the device, one block's staging in RAM), with
	 * room for O_DIRECT's aligned spans. */
	if (!gpu)
		gpu = big + 2 * layer + 65536;
	if (!ram)
		ram = big + 65536;
	printf("model %s: %.1f MiB of unique weights; budgets gpu_memory %.1f MiB + ram_cache %.1f MiB = %.1f%% of the weights\n",
	       path, total / 1048576.0, gpu / 1048576.0, ram / 1048576.0, 100.0 * (gpu + ram) / total);
	printf("RESULT model weights=%llu ram=%llu gpu=%llu\n", (unsigned long long)total,
	       (unsigned long long)ram, (unsigned long long)gpu);

	/* The streaming bound's bandwidth: the disk when the runs are cold,
	 * the page cache's pread when warm. */
	double bound_bw = 0, pbw = 0;
	if (disk_bytes) {
		drop_file_cache(path);
		bound_bw = disk_bandwidth(path, disk_bytes, big);
		printf("RESULT disk bw=%.4e\n", bound_bw);
	}
	if (read_bytes)
		read_test(&bo, read_bytes, &pbw);
	if (!bo.cold) {
		warm_read_test(&bo, &pbw);
		if (!disk_bytes)
			bound_bw = pbw;
	}

	struct run res = { 0 };
	if (resident) {
		if (measure(&bo, NULL, &res, &err)) {
			fprintf(stderr, "bench_hierarchy: %s\n", err.msg);
			return 1;
		}
		printf("%-26s %8.3f tok/s\n", "resident (peer)", res.tok_s);
		printf("RESULT config=resident tok_s=%.5f\n", res.tok_s);
	}

	if (n_cfg)
		printf("%-26s %8s %6s %7s %8s %8s %7s %7s %9s %8s %6s\n", "tiered", "tok/s", "vs res",
		       "stalled", "comp s/t", "disk s/t", "hit dev", "hit ram", "MiB/tok", "vs bound", "io");
	for (int i = 0; i < n_cfg; i++) {
		const struct cfg *c = &cfgs[i];
		struct wstore_opts wo;
		wstore_opts_default(&wo);
		wo.policy = c->p;
		wo.async_prefetch = c->async;
		wo.compute_from_ram = c->ram;
		wo.dev_budget = c->ram ? 0 : gpu;
		wo.ram_budget = c->ram ? gpu + ram : ram;
		wo.io = c->io;
		struct run r;
		fflush(stdout);
		if (measure(&bo, &wo, &r, &err)) {
			printf("%-26s failed: %s\n", c->name, err.msg);
			continue;
		}
		const struct wtier_stats *d = &r.b.tier[WSTORE_TIER_DEV], *rm = &r.b.tier[WSTORE_TIER_RAM];
		const struct wtier_stats *d0 = &r.a.tier[WSTORE_TIER_DEV], *rm0 = &r.a.tier[WSTORE_TIER_RAM];
		double dh = (double)(d->hits - d0->hits), dm = (double)(d->misses - d0->misses);
		double rh = (double)(rm->hits - rm0->hits), rmm = (double)(rm->misses - rm0->misses);
		double bound = r.bytes_per_tok > 0 && bound_bw > 0 ? bound_bw / r.bytes_per_tok : 0;
		double disk_per_tok = bound_bw > 0 ? r.bytes_per_tok / bound_bw : 0;
		const char *iom = r.b.io == WSTORE_IO_DIRECT ? "direct" : "pread";
		printf("%-26s %8.3f %6.2f %6.1f%% %8.3f %8.3f %6.1f%% %6.1f%% %9.1f %8.2f %6s\n", c->name, r.tok_s,
		       res.tok_s > 0 ? r.tok_s / res.tok_s : 0, 100 * r.stall_frac, r.compute_per_tok, disk_per_tok,
		       d->active ? 100.0 * dh / (dh + dm + 1e-9) : 0.0, 100.0 * rh / (rh + rmm + 1e-9),
		       r.bytes_per_tok / 1048576.0, bound > 0 ? r.tok_s / bound : 0, iom);
		printf("RESULT config=%s tok_s=%.5f stall=%.4f compute_per_tok=%.4f bytes_per_tok=%.0f bound_tok_s=%.5f io=%s n_dec=%d prefetch_issued=%llu prefetch_used=%llu predictor=%.4f lookahead=%d\n",
		       c->name, r.tok_s, r.stall_frac, r.compute_per_tok, r.bytes_per_tok, bound, iom, r.n_dec,
		       (unsigned long long)(r.b.prefetch_issued - r.a.prefetch_issued),
		       (unsigned long long)(r.b.prefetch_used - r.a.prefetch_used), r.b.predictor_accuracy,
		       r.b.lookahead);
		fflush(stdout);
	}
	if (n_cfg)
		printf("(vs bound: tok/s over %s / bytes read from tier 0 per token; disk s/t: those bytes at that bandwidth)\n",
		       disk_bytes ? "the disk's O_DIRECT bandwidth" : "warm pread bandwidth");
	printf("RESULT peak_rss=%ld\n", peak_rss_kb() * 1024);
	return 0;
bad:
	usage(argv[0]);
	return 2;
}
