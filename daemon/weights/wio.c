/* wio.c - tier 0 of the weight hierarchy: reading a unit's tensors from the
 * model's files into its RAM slot, with pread(2) or with O_DIRECT, and the
 * choice between the two.
 *
 * Why two ways (measured by bench/hierarchy-ooc, figures in
 * docs/hierarchy.md): when the page cache can hold the file, buffered pread
 * turns every read after the first pass into a memory copy, far faster than
 * the disk.  When it cannot (a model several times the memory it is given,
 * the very case the hierarchy exists for), the cache never hits: each read
 * costs the disk transfer plus a copy out of the cache plus the reclaim that
 * makes room for it, on the same cores the compute needs.  O_DIRECT moves
 * the bytes from the disk into the slot by DMA and spends almost no CPU.
 * mmap-touch (copying out of the mapping) pays the page faults on top of
 * the buffered path and turns a truncated file into SIGBUS, so it is not
 * offered.
 *
 * O_DIRECT wants the file offset, the length and the buffer aligned to the
 * device's logical block (WT_DIRECT_ALIGN covers 512 and 4096).  GGUF aligns
 * tensors to 32 bytes only, and a vocabulary shard starts at any row, so a
 * unit's slot mirrors the file instead of packing tensors: each run of
 * tensors adjacent in one file (a layer's nine tensors are one run) becomes
 * a span, read as the aligned superset into a 4 KiB-aligned place in the
 * slot, and each tensor is then found at its own offset inside the span.
 * Slots are all multiples of WT_DIRECT_ALIGN, so every slot the first-fit
 * arena hands out starts aligned.
 */
#include "weights/wtiered.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/gguf.h"
#include "objstore/osrc.h"

/* Tensors of one unit closer than this in the file are read as one span
 * (the gap is read too): GGUF pads tensors to its alignment, nothing more. */
#define WT_SPAN_GAP (64u << 10)

static uint64_t align_down(uint64_t x)
{
	return x / WT_DIRECT_ALIGN * WT_DIRECT_ALIGN;
}

static uint64_t align_up(uint64_t x)
{
	return (x + WT_DIRECT_ALIGN - 1) / WT_DIRECT_ALIGN * WT_DIRECT_ALIGN;
}

/* ---- how much the page cache could hold ---- */

/* One number from a small kernel file ("max" reads as UINT64_MAX). */
static bool read_u64(const char *path, uint64_t *v)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	char buf[64];
	bool ok = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	if (!ok)
		return false;
	if (!strncmp(buf, "max", 3)) {
		*v = UINT64_MAX;
		return true;
	}
	char *end;
	errno = 0;
	unsigned long long x = strtoull(buf, &end, 10);
	if (errno || end == buf)
		return false;
	*v = x;
	return true;
}

/* "key value" from memory.stat, or "Key:   value kB" from /proc/meminfo
 * (scale 1024). */
static bool read_field(const char *path, const char *key, uint64_t scale, uint64_t *v)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	char line[256];
	size_t kl = strlen(key);
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, kl) || (line[kl] != ' ' && line[kl] != ':'))
			continue;
		char *p = line + kl + 1, *end;
		errno = 0;
		unsigned long long x = strtoull(p, &end, 10);
		if (!errno && end != p && x <= UINT64_MAX / scale) {
			*v = x * scale;
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* The room a memory cgroup leaves for the page cache: its limit minus what
 * it holds that is not cache; the smallest over the cgroup and its
 * ancestors.  dir is modified (components stripped). */
static uint64_t cgroup_room(char *dir, size_t base_len, bool v2)
{
	uint64_t room = UINT64_MAX;
	char path[4200];
	for (;;) {
		uint64_t limit, usage, cache = 0;
		snprintf(path, sizeof(path), "%s/%s", dir, v2 ? "memory.max" : "memory.limit_in_bytes");
		bool have = read_u64(path, &limit);
		snprintf(path, sizeof(path), "%s/%s", dir, v2 ? "memory.current" : "memory.usage_in_bytes");
		have = have && read_u64(path, &usage);
		snprintf(path, sizeof(path), "%s/memory.stat", dir);
		read_field(path, v2 ? "file" : "total_cache", 1, &cache);
		/* v1 reports "no limit" as a page-rounded 2^63. */
		if (have && limit < (UINT64_C(1) << 62)) {
			uint64_t hard = usage > cache ? usage - cache : 0;
			uint64_t r = limit > hard ? limit - hard : 0;
			if (r < room)
				room = r;
		}
		char *slash = strrchr(dir, '/');
		if (!slash || (size_t)(slash - dir) < base_len)
			break;
		*slash = '\0';
	}
	return room;
}

uint64_t wt_io_cache_room(void)
{
	uint64_t room = UINT64_MAX, avail;
	if (read_field("/proc/meminfo", "MemAvailable", 1024, &avail))
		room = avail;
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return room;
	/* "id:controllers:path"; v1 names "memory" among the controllers, v2
	 * is the line "0::path". */
	char line[4096];
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2 || c2[1] != '/')
			continue;
		*c2 = '\0';
		const char *ctl = c1 + 1, *cg = c2 + 1;
		bool v1 = false;
		for (const char *p = ctl; *p;) {
			size_t n = strcspn(p, ",");
			if (n == 6 && !strncmp(p, "memory", 6))
				v1 = true;
			p += n + (p[n] == ',');
		}
		bool v2 = !strcmp(line, "0") && !*ctl;
		if (!v1 && !v2)
			continue;
		const char *base = v1 ? "/sys/fs/cgroup/memory" : "/sys/fs/cgroup";
		char dir[4200];
		size_t bl = strlen(base);
		if (snprintf(dir, sizeof(dir), "%s%s", base, cg) >= (int)sizeof(dir))
			continue;
		size_t len = strlen(dir);
		if (len > bl && dir[len - 1] == '/')
			dir[len - 1] = '\0';
		uint64_t r = cgroup_room(dir, bl, v2);
		if (r < room)
			room = r;
	}
	fclose(f);
	return room;
}

/* ---- choosing and opening ---- */

void wt_io_close(struct wstore_tiered *ws)
{
	if (ws->dfds) {
		for (int i = 0; i < ws->n_fds; i++)
			if (ws->dfds[i] >= 0)
				close(ws->dfds[i]);
		free(ws->dfds);
		ws->dfds = NULL;
	}
	ws->direct = false;
	ws->remote = false;
}

/* Open source i with O_DIRECT and read its first block: some file systems
 * (tmpfs, some FUSE) refuse O_DIRECT at open, others only at the read. */
static int open_direct(const char *path, int *fd_out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
	if (fd < 0)
		return -errno;
	void *buf = NULL;
	int rc = posix_memalign(&buf, WT_DIRECT_ALIGN, WT_DIRECT_ALIGN);
	if (rc) {
		close(fd);
		return -rc;
	}
	ssize_t r = pread(fd, buf, WT_DIRECT_ALIGN, 0);
	rc = r < 0 ? -errno : 0;
	free(buf);
	if (rc) {
		close(fd);
		return rc;
	}
	*fd_out = fd;
	return 0;
}

int wt_io_open(struct wstore_tiered *ws, uint64_t arena_bytes, struct smk_err *err)
{
	ws->direct = false;
	ws->io_room = UINT64_MAX;
	/* SMOKE_WEIGHTS_IO=pread|direct overrides AUTO's choice (to run the
	 * test suite or a benchmark through one path); still AUTO in that it
	 * falls back to pread where O_DIRECT is refused. */
	const char *env = ws->o.io == WSTORE_IO_AUTO ? getenv("SMOKE_WEIGHTS_IO") : NULL;
	if (ws->o.io == WSTORE_IO_PREAD || (env && !strcmp(env, "pread")))
		return 0;
	/* Object storage: ranged GETs (or its disk cache), one per span of
	 * adjacent tensors, laid out as for O_DIRECT: a request costs a round
	 * trip, so a layer's tensors are one request rather than nine. */
	for (int i = 0; i < ws->n_fds; i++)
		if (gguf_source_remote(ws->m->gguf, i)) {
			ws->remote = true;
			return 0;
		}
	if (ws->o.io == WSTORE_IO_AUTO && !(env && !strcmp(env, "direct"))) {
		/* The arenas are not allocated yet, so MemAvailable still
		 * counts the memory they will take. */
		ws->io_room = wt_io_cache_room();
		uint64_t room = ws->io_room > arena_bytes ? ws->io_room - arena_bytes : 0;
		if (ws->m->weight_bytes <= room)
			return 0;
	}
	ws->dfds = malloc(sizeof(int) * (size_t)ws->n_fds);
	if (!ws->dfds)
		return smk_fail(err, -ENOMEM, "weight hierarchy: out of memory");
	for (int i = 0; i < ws->n_fds; i++)
		ws->dfds[i] = -1;
	for (int i = 0; i < ws->n_fds; i++) {
		int rc = open_direct(gguf_source_path(ws->m->gguf, i), &ws->dfds[i]);
		if (rc) {
			const char *src = gguf_source_path(ws->m->gguf, i);
			wt_io_close(ws);
			if (ws->o.io == WSTORE_IO_AUTO)
				return 0; /* the file system says no: pread it is */
			return smk_fail(err, rc, "%s: cannot read with O_DIRECT: %s", src, strerror(-rc));
		}
	}
	ws->direct = true;
	return 0;
}

/* ---- layout ---- */

void wt_io_layout(struct wstore_tiered *ws, int u)
{
	struct wt_unit *U = &ws->units[u];
	struct wt_tensor *T = &ws->tens[U->first_tensor];
	U->first_span = ws->n_spans;
	U->n_spans = 0;
	uint64_t size = 0;
	if (!ws->direct && !ws->remote) {
		/* Packed in plan order, each tensor 64-byte aligned. */
		for (int k = 0; k < U->n_tensors; k++) {
			T[k].slot_off = size;
			size += warena_round(T[k].nbytes);
		}
		U->size = size ? size : WARENA_ALIGN; /* never empty: keeps the arena logic uniform */
		return;
	}
	/* File-backed tensors by (source, offset): at most LT_COUNT, so an
	 * insertion sort of their indices. */
	int order[LT_COUNT], n = 0;
	for (int k = 0; k < U->n_tensors && n < LT_COUNT; k++) {
		if (T[k].source < 0)
			continue;
		int j = n++;
		while (j > 0 && (T[order[j - 1]].source > T[k].source ||
				 (T[order[j - 1]].source == T[k].source &&
				  T[order[j - 1]].file_off > T[k].file_off))) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = k;
	}
	struct wt_span *s = NULL;
	uint64_t end = 0; /* file end of the current span's tensors */
	for (int i = 0; i < n; i++) {
		struct wt_tensor *t = &T[order[i]];
		if (!s || t->source != s->source || t->file_off > end + WT_SPAN_GAP) {
			if (s) {
				s->need = end - s->file_off;
				s->len = align_up(end) - s->file_off;
				size += s->len;
			}
			s = &ws->spans[ws->n_spans++];
			U->n_spans++;
			s->source = t->source;
			s->file_off = align_down(t->file_off);
			s->slot_off = size;
			end = t->file_off;
		}
		t->slot_off = s->slot_off + (t->file_off - s->file_off);
		if (t->file_off + t->nbytes > end)
			end = t->file_off + t->nbytes;
	}
	if (s) {
		s->need = end - s->file_off;
		s->len = align_up(end) - s->file_off;
		size += s->len;
	}
	/* Tensors that live only in memory (converted at load) follow. */
	for (int k = 0; k < U->n_tensors; k++)
		if (T[k].source < 0) {
			T[k].slot_off = size;
			size += warena_round(T[k].nbytes);
		}
	U->size = size ? align_up(size) : WT_DIRECT_ALIGN;
}

/* ---- reading ---- */

typedef ssize_t (*pread_fn)(int, void *, size_t, off_t);

/* The message of a failed read of `nbytes` bytes of `name` at file_off:
 * r < 0 an error (e), else the file ended at `at`. */
static int fail_read_at(char *msg, size_t msg_len, const char *path, const char *name,
			uint64_t nbytes, uint64_t file_off, uint64_t at, ssize_t r, int e)
{
	if (r < 0) {
		snprintf(msg, msg_len, "%s: reading tensor '%s' (%llu bytes at offset %llu) failed: %s",
			 path, name, (unsigned long long)nbytes, (unsigned long long)file_off,
			 strerror(e));
		return -e;
	}
	snprintf(msg, msg_len, "%s: tensor '%s' (%llu bytes at offset %llu) is cut short: the file ends at offset %llu (truncated while the model was loaded?)",
		 path, name, (unsigned long long)nbytes, (unsigned long long)file_off,
		 (unsigned long long)at);
	return -EIO;
}

static int fail_read(char *msg, size_t msg_len, const char *path, const struct wt_tensor *t,
		     uint64_t at, ssize_t r, int e)
{
	return fail_read_at(msg, msg_len, path, t->name, t->nbytes, t->file_off, at, r, e);
}

/* n bytes at off of fd into dst, in reads of at most 1 GiB, retrying EINTR
 * and short reads.  0, or -1 with *done the bytes read and *r the failed
 * read's result (< 0: errno says why; 0: end of file). */
static int pread_full(pread_fn rd, int fd, uint8_t *dst, uint64_t n, uint64_t off, uint64_t *done,
		      ssize_t *r)
{
	*done = 0;
	while (*done < n) {
		uint64_t chunk = n - *done;
		if (chunk > (1u << 30))
			chunk = 1u << 30;
		*r = rd(fd, dst + *done, (size_t)chunk, (off_t)(off + *done));
		if (*r < 0 && errno == EINTR)
			continue;
		if (*r <= 0)
			return -1;
		*done += (uint64_t)*r;
	}
	return 0;
}

/* A tensor of a source in object storage (objstore/osrc.h): the message
 * names the URL, the tensor and the reason (status, retries). */
static int read_remote(struct wstore_tiered *ws, int source, void *dst, uint64_t n, uint64_t off,
		       const char *name, char *msg, size_t msg_len)
{
	struct smk_err e = { 0 };
	int rc = osrc_read(gguf_source_remote(ws->m->gguf, source), dst, n, off, &e);
	if (rc)
		snprintf(msg, msg_len, "reading tensor '%s': %s", name, e.msg);
	return rc;
}

int wt_io_read_bytes(struct wstore_tiered *ws, int source, void *dst, uint64_t n, uint64_t off,
		     const char *name, char *msg, size_t msg_len)
{
	if (gguf_source_remote(ws->m->gguf, source))
		return read_remote(ws, source, dst, n, off, name, msg, msg_len);
	pread_fn rd = ws->o.pread_fn ? ws->o.pread_fn : pread;
	uint64_t done;
	ssize_t r = 0;
	if (pread_full(rd, ws->fds[source], dst, n, off, &done, &r))
		return fail_read_at(msg, msg_len, gguf_source_path(ws->m->gguf, source), name, n, off,
				    off + done, r, errno ? errno : EIO);
	return 0;
}

static int read_packed(struct wstore_tiered *ws, const struct wt_unit *U, uint8_t *dst, pread_fn rd,
		       char *msg, size_t msg_len)
{
	for (int k = 0; k < U->n_tensors; k++) {
		const struct wt_tensor *t = &ws->tens[U->first_tensor + k];
		if (t->source < 0)
			continue;
		if (gguf_source_remote(ws->m->gguf, t->source)) {
			int rc = read_remote(ws, t->source, dst + t->slot_off, t->nbytes, t->file_off,
					     t->name, msg, msg_len);
			if (rc)
				return rc;
			continue;
		}
		uint64_t done;
		ssize_t r = 0;
		if (pread_full(rd, ws->fds[t->source], dst + t->slot_off, t->nbytes, t->file_off, &done,
			       &r))
			return fail_read(msg, msg_len, gguf_source_path(ws->m->gguf, t->source), t,
					 t->file_off + done, r, errno ? errno : EIO);
	}
	return 0;
}

/* The first tensor of span s that reaches past file offset `at` (what a
 * failed or short read failed to deliver). */
static const struct wt_tensor *span_tensor(const struct wstore_tiered *ws, const struct wt_unit *U,
					   const struct wt_span *s, uint64_t at)
{
	const struct wt_tensor *best = NULL;
	for (int k = 0; k < U->n_tensors; k++) {
		const struct wt_tensor *t = &ws->tens[U->first_tensor + k];
		if (t->source != s->source || t->file_off < s->file_off ||
		    t->file_off >= s->file_off + s->len || t->file_off + t->nbytes <= at)
			continue;
		if (!best || t->file_off < best->file_off)
			best = t;
	}
	return best ? best : &ws->tens[U->first_tensor];
}

static int read_direct(struct wstore_tiered *ws, const struct wt_unit *U, uint8_t *dst, pread_fn rd,
		       char *msg, size_t msg_len)
{
	for (int i = 0; i < U->n_spans; i++) {
		const struct wt_span *s = &ws->spans[U->first_span + i];
		const char *path = gguf_source_path(ws->m->gguf, s->source);
		uint8_t *d = dst + s->slot_off;
		if (gguf_source_remote(ws->m->gguf, s->source)) {
			int rc = read_remote(ws, s->source, d, s->need, s->file_off,
					     span_tensor(ws, U, s, s->file_off)->name, msg, msg_len);
			if (rc)
				return rc;
			continue;
		}
		if ((uintptr_t)d % WT_DIRECT_ALIGN) {
			/* The layout guarantees it; a bug otherwise. */
			snprintf(msg, msg_len, "%s: O_DIRECT slot at %p is not %u-byte aligned", path,
				 (void *)d, WT_DIRECT_ALIGN);
			return -EINVAL;
		}
		uint64_t done = 0;
		while (done < s->need) {
			uint64_t chunk = s->len - done;
			if (chunk > (1u << 30))
				chunk = 1u << 30;
			ssize_t r = rd(ws->dfds[s->source], d + done, (size_t)chunk,
				       (off_t)(s->file_off + done));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return fail_read(msg, msg_len, path, span_tensor(ws, U, s, s->file_off + done),
						 s->file_off + done, r, errno ? errno : EIO);
			done += (uint64_t)r;
			/* A read that ends off the block grid hit the end of
			 * the file; another would be refused as unaligned. */
			if (done < s->need && done % WT_DIRECT_ALIGN)
				return fail_read(msg, msg_len, path, span_tensor(ws, U, s, s->file_off + done),
						 s->file_off + done, 0, EIO);
		}
	}
	return 0;
}

int wt_io_read_unit(struct wstore_tiered *ws, const struct wt_unit *U, uint8_t *dst, char *msg,
		    size_t msg_len)
{
	pread_fn rd = ws->o.pread_fn ? ws->o.pread_fn : pread;
	int rc = ws->direct || ws->remote ? read_direct(ws, U, dst, rd, msg, msg_len)
			    : read_packed(ws, U, dst, rd, msg, msg_len);
	if (rc)
		return rc;
	/* Converted at load (memory.default_dtype): RAM is their tier 0. */
	for (int k = 0; k < U->n_tensors; k++) {
		const struct wt_tensor *t = &ws->tens[U->first_tensor + k];
		if (t->source < 0)
			memcpy(dst + t->slot_off, t->mem, (size_t)t->nbytes);
	}
	return 0;
}
